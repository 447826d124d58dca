//! Keys to actions. Pure: the loop in `mod.rs` feeds terminal events in
//! and redraws or quits as told.

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{
    app::{App, Pane},
    view::{Column, Mode, Sort},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing visible changed.
    None,
    Redraw,
    Quit,
}

pub fn on_terminal_event(app: &mut App, ev: &TermEvent) -> Action {
    match ev {
        TermEvent::Key(key) if key.kind != KeyEventKind::Release => on_key(app, key),
        TermEvent::Resize(..) => Action::Redraw,
        _ => Action::None,
    }
}

pub fn on_key(app: &mut App, key: &KeyEvent) -> Action {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
        return Action::Quit;
    }
    if app.ui.input.is_some() {
        return on_filter_key(app, key);
    }
    if app.ui.help {
        // Any key closes the overlay; `q` still quits.
        app.ui.help = false;
        return if key.code == KeyCode::Char('q') { Action::Quit } else { Action::Redraw };
    }
    let page = app.ui.page.max(1) as isize;
    match key.code {
        KeyCode::Char('q') => return Action::Quit,
        KeyCode::Char('?') | KeyCode::Char('h') => app.ui.help = true,
        KeyCode::Char('/') => app.ui.input = Some(app.ui.filter.clone()),
        // Esc closes the details first, then clears the filter.
        KeyCode::Esc if app.ui.details.is_some() => app.ui.details = None,
        KeyCode::Esc => _ = app.set_filter(""),
        KeyCode::Enter => app.enter(),
        KeyCode::Char('o') => app.set_group_by(app.ui.group_by.next()),
        KeyCode::Char('+') | KeyCode::Right => _ = app.expand(Some(true)),
        KeyCode::Char('-') | KeyCode::Left => _ = app.expand(Some(false)),
        KeyCode::Char('O') => app.expand_all(app.ui.expanded.is_empty()),
        KeyCode::Char('D') => app.closed_details(),
        KeyCode::Char('[') => app.ui.closed_cursor = app.ui.closed_cursor.saturating_sub(1),
        KeyCode::Char(']') => app.ui.closed_cursor += 1,
        KeyCode::Char('z') => app.toggle_show_all(),
        KeyCode::Char('s') => app.set_sort(Sort { column: app.ui.sort.column.next(), ..app.ui.sort }),
        KeyCode::Char('r') => app.set_sort(Sort { reverse: !app.ui.sort.reverse, ..app.ui.sort }),
        KeyCode::Char('p') | KeyCode::Char(' ') => app.toggle_pause(),
        KeyCode::Char('t') => app.set_mode(Mode::Tcp),
        KeyCode::Char('u') => app.set_mode(Mode::Udp),
        KeyCode::Char('l') => app.set_mode(Mode::Listening),
        KeyCode::Char('a') => app.set_mode(Mode::All),
        KeyCode::Char('e') => app.ui.pane = Pane::Events,
        KeyCode::Char('c') => app.ui.pane = Pane::Closed,
        KeyCode::Char('P') => app.ui.pane = Pane::Processes,
        KeyCode::Char('w') => app.ui.workload = !app.ui.workload,
        KeyCode::Char('n') => app.ui.names = !app.ui.names,
        // Top talkers: the busiest connections first.
        KeyCode::Char('b') => app.set_sort(Sort { column: Column::Bandwidth, reverse: false }),
        // How slow: the longest RTT first; again, the slowest connects.
        KeyCode::Char('L') => {
            let column = if app.ui.sort.column == Column::Rtt { Column::Connect } else { Column::Rtt };
            app.set_sort(Sort { column, reverse: false });
        }
        KeyCode::Tab | KeyCode::BackTab => {
            app.ui.pane = match app.ui.pane {
                Pane::Events => Pane::Closed,
                Pane::Closed => Pane::Processes,
                Pane::Processes => Pane::Events,
            }
        }
        KeyCode::Up | KeyCode::Char('k') => app.scroll_by(-1),
        KeyCode::Down | KeyCode::Char('j') => app.scroll_by(1),
        KeyCode::PageUp => app.scroll_by(-page),
        KeyCode::PageDown => app.scroll_by(page),
        KeyCode::Home | KeyCode::Char('g') => app.scroll_by(isize::MIN),
        KeyCode::End | KeyCode::Char('G') => app.scroll_to_end(),
        _ => return Action::None,
    }
    Action::Redraw
}

/// Typing after `/`: Enter applies, Esc clears the filter.
fn on_filter_key(app: &mut App, key: &KeyEvent) -> Action {
    let Some(input) = app.ui.input.as_mut() else { return Action::None };
    match key.code {
        KeyCode::Char(c) => input.push(c),
        KeyCode::Backspace => _ = input.pop(),
        KeyCode::Enter => {
            let typed = input.trim().to_owned();
            // A bad expression stays open for editing, its error shown.
            if app.set_filter(&typed) {
                app.ui.input = None;
            }
        }
        KeyCode::Esc => {
            app.ui.input = None;
            app.set_filter("");
        }
        _ => return Action::None,
    }
    Action::Redraw
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::view::Column;

    fn app() -> App {
        App::new(None, jiff::tz::TimeZone::UTC)
    }

    fn press(app: &mut App, code: KeyCode) -> Action {
        on_key(app, &KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn type_str(app: &mut App, s: &str) {
        for c in s.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    #[test]
    fn quit_keys() {
        let mut a = app();
        assert_eq!(press(&mut a, KeyCode::Char('q')), Action::Quit);
        assert_eq!(on_key(&mut a, &KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::Quit);
        // Even while typing a filter.
        press(&mut a, KeyCode::Char('/'));
        assert_eq!(press(&mut a, KeyCode::Char('q')), Action::Redraw, "q is text in the filter");
        assert_eq!(on_key(&mut a, &KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::Quit);
    }

    #[test]
    fn filter_applies_on_enter_and_esc_clears() {
        let mut a = app();
        press(&mut a, KeyCode::Char('/'));
        type_str(&mut a, "Curlx");
        press(&mut a, KeyCode::Backspace);
        assert_eq!(a.ui.filter, "", "not applied while typing");
        press(&mut a, KeyCode::Enter);
        assert_eq!((a.ui.filter.as_str(), a.ui.input.is_none()), ("curl", true));
        press(&mut a, KeyCode::Char('/'));
        assert_eq!(a.ui.input.as_deref(), Some("curl"), "editing starts from the current filter");
        press(&mut a, KeyCode::Esc);
        assert_eq!((a.ui.filter.as_str(), a.ui.input.is_none()), ("", true));
    }

    #[test]
    fn modes_sort_pane_pause_and_help() {
        let mut a = app();
        for (key, mode) in [('l', Mode::Listening), ('t', Mode::Tcp), ('a', Mode::All)] {
            press(&mut a, KeyCode::Char(key));
            assert_eq!(a.ui.mode, mode);
        }
        press(&mut a, KeyCode::Char('s'));
        assert_eq!(a.ui.sort.column, Column::Owner);
        press(&mut a, KeyCode::Char('r'));
        assert!(a.ui.sort.reverse);
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.ui.pane, Pane::Closed);
        press(&mut a, KeyCode::Char('e'));
        assert_eq!(a.ui.pane, Pane::Events);
        press(&mut a, KeyCode::Char('p'));
        assert!(a.ui.paused);
        press(&mut a, KeyCode::Char('?'));
        assert!(a.ui.help);
        assert_eq!(press(&mut a, KeyCode::Char('l')), Action::Redraw);
        assert!(!a.ui.help && a.ui.mode == Mode::All, "a key closing help does nothing else");
        assert_eq!(press(&mut a, KeyCode::F(5)), Action::None);
    }

    #[test]
    fn expression_filters_and_their_errors() {
        let mut a = app();
        press(&mut a, KeyCode::Char('/'));
        type_str(&mut a, "dport = :http");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.ui.input.as_deref(), Some("dport = :http"), "still editing");
        let err = a.ui.filter_error.clone().expect("an error");
        assert!(err.starts_with("dport: expected a port number") && err.contains("at character 9"), "{err}");
        assert!(a.ui.expr.is_none() && a.ui.filter.is_empty());
        for _ in 0..5 {
            press(&mut a, KeyCode::Backspace);
        }
        type_str(&mut a, ":80 or state listening");
        press(&mut a, KeyCode::Enter);
        assert!(a.ui.input.is_none() && a.ui.filter_error.is_none());
        assert_eq!(a.ui.filter, "dport = :80 or state listening");
        assert!(a.ui.expr.is_some());
        press(&mut a, KeyCode::Esc);
        assert!(a.ui.expr.is_none() && a.ui.filter.is_empty());
    }

    #[test]
    fn collapse_toggle_and_details_keys() {
        let mut a = app();
        assert!(!a.ui.show_all);
        press(&mut a, KeyCode::Char('z'));
        assert!(a.ui.show_all);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.ui.details, None, "no row, no details");
        let t = crate::tui::fixtures::table();
        a.refresh(&t, 1);
        a.reorder();
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Enter);
        let selected = a.selected().map(|e| e.row.local);
        assert!(matches!(a.ui.details, Some(crate::tui::app::Details::Row { local, .. }) if Some(local) == selected));
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.ui.details, None);
    }

    #[test]
    fn grouping_expand_and_collapse() {
        use crate::tui::group::{GroupBy, Line};
        let mut a = app();
        a.ui.page = 20;
        let t = crate::tui::fixtures::table();
        a.refresh(&t, 1);
        press(&mut a, KeyCode::Char('o'));
        assert_eq!(a.ui.group_by, GroupBy::Listener);
        a.reorder();
        let headers = a.lines.len();
        assert!(a.lines.iter().all(|l| matches!(l, Line::Group(_))) && headers == a.groups.len());
        press(&mut a, KeyCode::Enter);
        a.reorder();
        assert!(a.lines.len() > headers, "Enter on a header expands it");
        assert_eq!(a.ui.details, None, "and opens no details");
        press(&mut a, KeyCode::Char('-'));
        a.reorder();
        assert_eq!(a.lines.len(), headers);
        press(&mut a, KeyCode::Char('O'));
        a.reorder();
        assert_eq!(a.lines.len(), headers + a.groups.iter().map(|g| g.rows.len()).sum::<usize>());
        press(&mut a, KeyCode::Char('o'));
        press(&mut a, KeyCode::Char('o'));
        assert_eq!(a.ui.group_by, GroupBy::Workload);
        press(&mut a, KeyCode::Char('o'));
        assert_eq!(a.ui.group_by, GroupBy::None);
    }
}
