//! The connection table: only the rows on screen are formatted.

use ratatui::{
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Row, Table},
    Frame,
};

use super::{
    app::App,
    format,
    group::{self, Group},
    header::state_color,
    view::{Column, Entry},
};
use crate::{
    output::{
        snapshot::{proto_label, state_name},
        text::endpoint,
    },
    socket::{Proto, TcpState},
};

/// The narrowest table that also shows the Connect and RTT columns: the
/// other columns' widths and gaps (87), those two (16), and two address
/// columns of 24, enough for most IPv4 endpoints and short IPv6 ones.
/// Narrower, the addresses keep the room; the details pane and the sorts
/// still give both figures.
const LATENCY_MIN_WIDTH: u16 = 87 + 16 + 2 * 24;

/// Table rows that fit in `area` (inside the border, below the titles).
pub fn page_rows(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(3))
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, now_ns: u64) {
    let now = app.now_for_ages(now_ns);
    let ui = &app.ui;
    let page = page_rows(area);
    let workload_width = if ui.workload { 25 } else { 0 };
    let latency = area.width >= LATENCY_MIN_WIDTH + workload_width;
    let rows: Vec<Row> = (ui.scroll..app.lines.len().min(ui.scroll + page))
        .map(|line| {
            let r = match app.lines[line] {
                group::Line::Row(i) => row(&app.snap.entries[i as usize], now, ui.workload, ui.names, latency),
                group::Line::Count(state, n) => count_line((state, n)),
                group::Line::Group(g) => group_line(&app.groups[g as usize], &ui.expanded),
            };
            selected(r, line == ui.cursor)
        })
        .collect();
    let columns = Column::ALL.into_iter().filter(|&c| latency || !matches!(c, Column::Connect | Column::Rtt));
    let titles = columns.map(|c| {
        if c.sorted_by(ui.sort.column) {
            let arrow = if ui.sort.reverse { "v" } else { "^" };
            Cell::from(format!("{} {arrow}", c.title())).style(Style::new().fg(Color::Cyan))
        } else {
            Cell::from(c.title())
        }
    });
    let shown = app.lines.len();
    let first = if shown == 0 { 0 } else { ui.scroll + 1 };
    let last = (ui.scroll + page).min(shown);
    let block = Block::new()
        .borders(Borders::TOP | Borders::BOTTOM)
        .title(Line::from(format!(
            " Connections: {} shown of {}{} ",
            app.order.len(),
            app.snap.entries.len(),
            if app.collapsed.is_empty() { "" } else { " (z: list collapsed states)" }
        )))
        .title(Line::from(format!(" rows {first}-{last} ")).right_aligned());
    let mut titles: Vec<Cell> = titles.collect();
    let mut widths = vec![5, 0, 0, 12, 24, 9, 7, 7, 7, 7];
    if latency {
        widths.extend([7, 7]);
    }
    if ui.workload {
        titles.push(Cell::from("Workload"));
        widths.push(24);
    }
    frame.render_widget(table(rows, titles, &widths, block), area);
}

/// A table of `rows` under bold `titles`, its columns `widths` wide (`0`:
/// a share of the room the others leave).
pub fn table<'a, T: IntoIterator<Item: Into<Cell<'a>>>>(
    rows: Vec<Row<'a>>,
    titles: T,
    widths: &[u16],
    block: Block<'a>,
) -> Table<'a> {
    let widths = widths.iter().map(|&w| if w == 0 { Constraint::Fill(1) } else { Constraint::Length(w) });
    Table::new(rows, widths)
        .header(Row::new(titles).style(Style::new().add_modifier(Modifier::BOLD)))
        .block(block)
        .column_spacing(1)
}

/// `row`, shown reversed where it is the selected one.
pub fn selected(row: Row<'_>, on: bool) -> Row<'_> {
    if on {
        row.style(Style::new().add_modifier(Modifier::REVERSED))
    } else {
        row
    }
}

/// A group's header: its label, then its counts by state.
fn group_line(g: &Group, expanded: &rustc_hash::FxHashSet<String>) -> Row<'static> {
    let mark = if expanded.contains(&g.label) { "[-]" } else { "[+]" };
    let counts: Vec<String> = g.states.iter().map(|&(s, n)| format!("{} {n}", state_name(Proto::Tcp, s))).collect();
    let total: u32 = g.states.iter().map(|(_, n)| n).sum();
    let queue = g.queue.map(|(q, backlog)| format!("accept queue {q}/{backlog}")).unwrap_or_default();
    // Beside the label: the counts' column is too narrow for more once a
    // listener has connections in a few states.
    let rates = g
        .rates
        .map(|r| format!("  accepted {}/s closed {}/s", per_sec(r.per_sec(r.accepted)), per_sec(r.per_sec(r.closed))))
        .unwrap_or_default();
    Row::new([
        Cell::from(mark),
        Cell::from(Line::from(vec![
            Span::styled(g.label.clone(), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(rates),
        ])),
        Cell::from(format!("{total} sockets: {}", counts.join(", "))),
        // In the State column: the counts' is full by now.
        Cell::from(g.drops.map(|d| format!("drops {d}")).unwrap_or_default()),
        // In the PID/Program column: the address columns narrow where the
        // latency columns show.
        Cell::from(queue),
    ])
}

/// A rate: tenths while small, whole numbers from 10 on.
fn per_sec(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// The line standing for the rows of a collapsed state.
fn count_line((state, n): (TcpState, u32)) -> Row<'static> {
    let name = state_name(Proto::Tcp, state);
    Row::new([
        Cell::from(""),
        Cell::from(format!("{n} sockets collapsed")).style(Style::new().fg(Color::DarkGray)),
        Cell::from("(z lists them)").style(Style::new().fg(Color::DarkGray)),
        Cell::from(name).style(Style::new().fg(state_color(name))),
    ])
}

/// REMOTE: the address, or with `names` the name from DNS where known
/// (`name:port`).
fn remote(e: &Entry, names: bool) -> String {
    match (&e.rhost, names) {
        (Some(h), true) => format!("{h}:{}", e.row.remote.port()),
        _ => endpoint(e.row.remote),
    }
}

fn row(e: &Entry, now_ns: u64, workload: bool, names: bool, latency: bool) -> Row<'static> {
    let state = state_name(e.row.proto, e.row.state);
    let mut cells = vec![
        Cell::from(proto_label(e.row.proto, e.row.family)),
        Cell::from(endpoint(e.row.local)),
        Cell::from(remote(e, names)),
        Cell::from(state).style(Style::new().fg(state_color(state))),
        Cell::from(e.owner_label()),
        Cell::from(format::age(now_ns.saturating_sub(e.start_ns), e.start_known)),
        Cell::from(format::bytes(e.rx_rate)),
        Cell::from(format::bytes(e.tx_rate)),
        Cell::from(format::bytes(e.rx_bytes)),
        Cell::from(format::bytes(e.tx_bytes)),
    ];
    if latency {
        cells.push(Cell::from(e.connect_us.map_or_else(|| "-".to_owned(), format::latency)));
        cells.push(Cell::from(e.rtt_us.map_or_else(|| "-".to_owned(), |us| format::latency(u64::from(us)))));
    }
    if workload {
        cells.push(Cell::from(e.workload.as_ref().map_or_else(|| "-".to_owned(), |w| w.label().to_owned())));
    }
    Row::new(cells)
}
