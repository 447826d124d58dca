//! The top lines: what the view shows, per-state counts, totals and rate.

use ratatui::{
    layout::Rect,
    style::{Color, Modifier, Style, Stylize as _},
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use super::app::App;

pub fn height(app: &App) -> u16 {
    3 + u16::from(app.degraded.is_some()) + u16::from(app.warning.is_some())
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    frame.render_widget(Paragraph::new(lines(app)), area);
}

fn lines(app: &App) -> Vec<Line<'static>> {
    let mut out = vec![title(app), states(app), totals(app)];
    if let Some(why) = &app.degraded {
        out.push(Line::from(format!("process attribution degraded: {why}").fg(Color::Yellow)));
    }
    if let Some((at, why)) = &app.warning {
        let at = app.clock.at(*at).to_zoned(app.tz.clone()).strftime("%H:%M:%S");
        out.push(Line::from(format!("warning at {at}: {why}").fg(Color::Yellow)));
    }
    out
}

fn label(s: &str) -> Span<'static> {
    Span::styled(s.to_owned(), Style::new().fg(Color::DarkGray))
}

fn value(s: impl ToString) -> Span<'static> {
    Span::styled(s.to_string(), Style::new().add_modifier(Modifier::BOLD))
}

fn title(app: &App) -> Line<'static> {
    let c = &app.snap.counts;
    let ui = &app.ui;
    let arrow = if ui.sort.reverse { "v" } else { "^" };
    let mut spans = vec![
        Span::styled(" netwatch ", Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD)),
        Span::raw("  "),
        value(c.tcp_total()),
        label(" tcp  "),
        value(c.udp_total()),
        label(" udp   view: "),
        value(ui.mode.name()),
        label("   sort: "),
        value(format!("{} {arrow}", ui.sort.column.title())),
    ];
    if ui.group_by != super::group::GroupBy::None {
        spans.extend([label("   group: "), value(ui.group_by.name())]);
    }
    if !ui.filter.is_empty() {
        let style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
        spans.extend([label("   filter: "), Span::styled(ui.filter.clone(), style)]);
    }
    if ui.paused {
        let style = Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD);
        spans.extend([Span::raw("   "), Span::styled(" PAUSED ", style)]);
    }
    Line::from(spans)
}

fn states(app: &App) -> Line<'static> {
    let named = app.snap.counts.tcp_named();
    if named.is_empty() {
        return Line::from(label(" no TCP sockets"));
    }
    let mut spans = vec![Span::raw(" ")];
    for (i, (name, n)) in named.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        spans.extend([Span::styled(name, Style::new().fg(state_color(name))), Span::raw(" "), value(n)]);
    }
    Line::from(spans)
}

fn totals(app: &App) -> Line<'static> {
    let t = &app.snap.totals;
    let mut spans = vec![
        label(" opened "),
        value(t.opened_active),
        label(" active / "),
        value(t.opened_passive),
        label(" passive   closed "),
        value(t.closed),
        label("   failed "),
        value(t.failed_connects),
        label("   resets "),
        value(t.resets),
    ];
    let red = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    // Lost events mean the table was rebuilt: never hide them.
    let lost = if t.lost_events > 0 { red } else { Style::new() };
    spans.extend([
        label("   lost "),
        Span::styled(t.lost_events.to_string(), lost),
        label("   reseeds "),
        value(t.reseeds),
    ]);
    // Only once it happens: a full traffic map leaves rates low.
    if t.traffic_uncounted > 0 {
        spans.extend([label("   uncounted pkts "), Span::styled(t.traffic_uncounted.to_string(), red)]);
    }
    spans.extend([label("   rate "), value(format!("{:.1}", app.snap.rate)), label(" conn/s")]);
    Line::from(spans)
}

pub fn state_color(name: &str) -> Color {
    match name {
        "ESTABLISHED" => Color::Green,
        "LISTEN" => Color::Cyan,
        "SYN_SENT" | "SYN_RECV" => Color::Yellow,
        "TIME_WAIT" => Color::DarkGray,
        "" => Color::Reset,
        _ => Color::Magenta,
    }
}
