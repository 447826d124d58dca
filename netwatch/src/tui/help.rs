//! The bottom line (keys, or the filter being typed) and the `?` overlay.

use ratatui::{
    layout::{Constraint, Flex, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph},
    Frame,
};

use super::app::App;

const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("/", "filter: text in any column, or an expression (state established and dport = :443)"),
    ("z", "list every row (closing states are collapsed into counts)"),
    ("Enter", "details of the selected row (Esc closes), or open/close a group"),
    ("o", "group rows: by listener, by program, by workload, none"),
    ("+ - O", "expand / collapse the selected group; expand or collapse all"),
    ("D [ ]", "details of the selected closed connection; move that selection"),
    ("s / r", "next sort column / reverse order"),
    ("t u l a", "view: TCP, UDP, listening, all"),
    ("e c P Tab", "lower pane: events, closed connections, traffic per process, cycle"),
    ("b", "sort by bandwidth, busiest first (top talkers)"),
    ("w", "workload column: container, else systemd unit, else cgroup"),
    ("n", "names: the remote's name from DNS answers in REMOTE, where known"),
    ("L", "sort by RTT, slowest first; again: by connect latency"),
    ("p, Space", "pause the display (events are still collected)"),
    ("Up Down PgUp PgDn", "scroll (also j k)"),
    ("Home End", "first / last rows (also g G)"),
    ("?", "this help; any key closes it"),
];

pub fn footer(frame: &mut Frame, area: Rect, app: &App) {
    let line = match &app.ui.input {
        Some(typed) => {
            let mut spans = vec![
                Span::styled(" filter: ", Style::new().fg(Color::Yellow)),
                Span::raw(typed.clone()),
                Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            ];
            match &app.ui.filter_error {
                // The first line: the message and where.
                Some(e) => spans.push(Span::styled(
                    format!("   error: {}", e.lines().next().unwrap_or_default()),
                    Style::new().fg(Color::Red),
                )),
                None => spans.push(Span::styled("   Enter apply  Esc clear", Style::new().fg(Color::DarkGray))),
            }
            Line::from(spans)
        }
        None => Line::from(Span::styled(
            " q quit  / filter  Enter details  z all  o group  s sort  b bandwidth  r reverse  t/u/l/a view  e/c/P/Tab pane  p pause  ? help",
            Style::new().fg(Color::DarkGray),
        )),
    };
    frame.render_widget(Paragraph::new(line), area);
}

pub fn overlay(frame: &mut Frame, area: Rect) {
    // Key column (19) + description + border and margin.
    let width = KEYS.iter().map(|(_, d)| d.len()).max().unwrap_or(40) as u16 + 22;
    let height = KEYS.len() as u16 + 2;
    let [area] = Layout::horizontal([Constraint::Length(width)]).flex(Flex::Center).areas(area);
    let [area] = Layout::vertical([Constraint::Length(height)]).flex(Flex::Center).areas(area);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, d)| {
            Line::from(vec![
                Span::styled(format!(" {k:<18}"), Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)),
                Span::raw(*d),
            ])
        })
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" netwatch keys ")), area);
}
