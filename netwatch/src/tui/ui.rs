//! One frame: header, table, lower pane, footer, and the help overlay.

use ratatui::{
    layout::{Constraint, Layout},
    Frame,
};

use super::{app::App, details, events_pane, header, help, table_view};

pub fn draw(frame: &mut Frame, app: &mut App, now_ns: u64) {
    let area = frame.area();
    // The pane gets a third of the screen; the table keeps at least 5 lines.
    let pane = (area.height / 3).max(6);
    let [top, table, lower, bottom] = Layout::vertical([
        Constraint::Length(header::height(app)),
        Constraint::Min(5),
        Constraint::Length(pane),
        Constraint::Length(1),
    ])
    .areas(area);
    app.ui.page = table_view::page_rows(table);
    app.reorder();
    header::render(frame, top, app);
    table_view::render(frame, table, app, now_ns);
    if app.ui.details.is_some() {
        details::render(frame, lower, app, now_ns);
    } else {
        events_pane::render(frame, lower, app);
    }
    help::footer(frame, bottom, app);
    if app.ui.help {
        help::overlay(frame, area);
    }
}
