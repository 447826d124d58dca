//! The lower pane: the latest events, or the recently closed connections
//! with their lifetimes (where a 3 ms connection stays visible after the
//! table has dropped it). Newest on top; the table's filter applies here too.

use std::fmt::Write as _;

use netwatch_common::EventKind;
use ratatui::{
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Row},
    Frame,
};

use super::{
    app::{App, Pane},
    format,
};
use crate::{
    event::Event,
    filter::Subject,
    output::text::endpoint,
    socket::{event_label, Owner},
    table::{Closed, Ending},
};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let fit = usize::from(area.height.saturating_sub(2));
    let (titles, widths, rows): (_, _, Vec<Row>) = match app.ui.pane {
        Pane::Events => (
            ["Time", "Event", "PID/Program", "Local Address", "Foreign Address", "Transition", "Lifetime"],
            [14, 14, 22, 0, 0, 26, 9],
            newest(&app.snap.events, app, fit, event_text).map(|e| event_row(app, e)).collect(),
        ),
        Pane::Closed => (
            ["Closed", "Ending", "PID/Program", "Local Address", "Foreign Address", "Last State", "Lifetime"],
            [14, 8, 22, 0, 0, 12, 9],
            newest_closed(app)
                .take(fit)
                .enumerate()
                .map(|(i, c)| super::table_view::selected(closed_row(app, c), i == app.ui.closed_cursor))
                .collect(),
        ),
        Pane::Processes => (
            ["Program", "Sockets", "Rx/s", "Tx/s", "Rx", "Tx", "Retrans/RST"],
            [22, 8, 0, 0, 0, 0, 12],
            // An expression is about sockets: the per-program totals stay whole.
            super::talkers::rows(&app.snap.processes, if app.ui.expr.is_some() { "" } else { &app.ui.filter }, fit),
        ),
    };
    let block = Block::new().borders(Borders::TOP).title(tabs(app));
    frame.render_widget(super::table_view::table(rows, titles, &widths, block), area);
}

/// The `fit` newest items matching the table's filter (an expression, or
/// lowercase text), newest first: the same `/` narrows both halves of the
/// screen.
fn newest<'a, T: Subject>(
    items: &'a [T],
    app: &'a App,
    fit: usize,
    text: fn(&T, &mut String),
) -> impl Iterator<Item = &'a T> + 'a {
    let mut buf = String::new();
    let (filter, expr) = (app.ui.filter.as_str(), app.ui.expr.as_ref());
    items
        .iter()
        .rev()
        .filter(move |item| match expr {
            Some(f) => f.matches(*item),
            None => {
                filter.is_empty() || {
                    buf.clear();
                    text(item, &mut buf);
                    format::contains_ci(&buf, filter)
                }
            }
        })
        .take(fit)
}

/// Every closed connection the filter keeps, newest first (the closed pane's
/// rows).
pub fn newest_closed(app: &App) -> impl Iterator<Item = &Closed> {
    newest(&app.snap.closed, app, usize::MAX, closed_text)
}

/// An event's searchable text: its cells, except the time.
fn event_text(e: &Event, buf: &mut String) {
    let _ = write!(buf, "{} {} ", e.kind.name(), event_label(e.pid, &e.comm));
    format::push_endpoint(buf, e.local);
    buf.push(' ');
    format::push_endpoint(buf, e.remote);
    let _ = write!(buf, " {} -> {}", e.old_state.name(), e.new_state.name());
}

fn closed_text(c: &Closed, buf: &mut String) {
    buf.push_str(c.ending.name());
    if let Some(o) = &c.owner {
        let _ = write!(buf, " {o}");
    }
    buf.push(' ');
    format::push_endpoint(buf, c.local);
    buf.push(' ');
    format::push_endpoint(buf, c.remote);
    let _ = write!(buf, " {}", c.last_state.name());
}

fn tabs(app: &App) -> Line<'static> {
    let tabs = [
        (format!(" [e] Events ({}) ", app.snap.events.len()), Pane::Events),
        (format!(" [c] Closed ({}) ", app.snap.closed.len()), Pane::Closed),
        (" [P] Traffic per process ".to_owned(), Pane::Processes),
    ];
    let mut spans = vec![Span::raw(" ")];
    for (text, pane) in tabs {
        let style = if app.ui.pane == pane {
            Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::DarkGray)
        };
        spans.extend([Span::styled(text, style), Span::raw(" ")]);
    }
    Line::from(spans)
}

fn time(app: &App, mono_ns: u64) -> String {
    app.clock.at(mono_ns).to_zoned(app.tz.clone()).strftime("%H:%M:%S%.3f").to_string()
}

fn event_row(app: &App, e: &Event) -> Row<'static> {
    let lifetime = e.lifetime_ns().map(format::duration).unwrap_or_default();
    let color = match e.kind {
        EventKind::ConnectFailed => Color::Red,
        EventKind::Close => Color::DarkGray,
        EventKind::Established | EventKind::Handshake | EventKind::Accept => Color::Green,
        EventKind::Listen => Color::Cyan,
        _ => Color::Reset,
    };
    Row::new([
        Cell::from(time(app, e.ts_ns)),
        Cell::from(e.kind.name()).style(Style::new().fg(color)),
        Cell::from(event_label(e.pid, &e.comm).to_string()),
        Cell::from(endpoint(e.local)),
        Cell::from(endpoint(e.remote)),
        Cell::from(format!("{} -> {}", e.old_state.name(), e.new_state.name())),
        Cell::from(lifetime),
    ])
}

fn closed_row(app: &App, c: &Closed) -> Row<'static> {
    let color = match c.ending {
        Ending::Closed => Color::Reset,
        Ending::Failed => Color::Red,
        Ending::Reset => Color::Yellow,
    };
    let who = Owner::label(c.owner.as_ref()).to_string();
    Row::new([
        Cell::from(time(app, c.closed_ns)),
        Cell::from(c.ending.name()).style(Style::new().fg(color)),
        Cell::from(who),
        Cell::from(endpoint(c.local)),
        Cell::from(endpoint(c.remote)),
        Cell::from(c.last_state.name()),
        Cell::from(c.duration_ns.map(format::duration).unwrap_or_else(|| "?".to_owned())),
    ])
}
