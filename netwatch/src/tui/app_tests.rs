use netwatch_common::{tcp, EventKind};

use super::*;
use crate::tui::fixtures::{self, event, short_lived};

fn app() -> App {
    let mut a = App::new(None, TimeZone::UTC);
    a.ui.page = 3;
    a
}

fn update(events: Vec<Event>) -> Update {
    Update { events, ..Update::default() }
}

/// [`app`] with a snapshot of the fixture table taken at `now_ns`, ordered.
fn refreshed(now_ns: u64) -> (Table, App) {
    let t = fixtures::table();
    let mut a = app();
    a.refresh(&t, now_ns);
    a.reorder();
    (t, a)
}

#[test]
fn refresh_copies_rows_counts_and_history() {
    let (mut t, mut a) = refreshed(20_000_000);
    assert_eq!((a.snap.entries.len(), a.order.len()), (6, 5));
    assert_eq!(a.collapsed, [(TcpState::TimeWait, 1)], "TIME_WAIT is a count line by default");
    assert_eq!(a.snap.counts.tcp(tcp::LISTEN), 2);
    fixtures::live(&mut t, &mut a, short_lived());
    assert!(a.table_dirty());
    a.refresh(&t, 30_000_000);
    assert_eq!(a.snap.events.len(), 5, "destroy is not shown");
    assert_eq!(a.snap.closed.len(), 1);
    assert_eq!(a.snap.closed[0].duration_ns, Some(3_000_000));
    assert_eq!(a.snap.totals.opened_active, 1);
    assert!(!a.table_dirty());
}

#[test]
fn unchanged_rows_are_not_copied_or_sorted_again() {
    let (mut t, mut a) = refreshed(1);
    assert!(!a.order_dirty);
    a.mark_table_dirty();
    a.refresh(&t, 2);
    assert!(!a.order_dirty, "same rows: order kept");
    t.apply(&event(EventKind::Listen, 5, tcp::CLOSE, tcp::LISTEN));
    a.refresh(&t, 3);
    assert!(!a.order_dirty, "nothing said the table changed");
    a.mark_table_dirty();
    a.refresh(&t, 4);
    assert!(a.order_dirty, "housekeeping changed a row: the fingerprint moved");
    assert_eq!(a.snap.entries.len(), 7);
    a.reorder();
    fixtures::live(&mut t, &mut a, vec![event(EventKind::State, 6, tcp::LISTEN, tcp::CLOSE)]);
    a.refresh(&t, 5);
    assert!(a.order_dirty, "events: copied without asking the fingerprint");
    assert_eq!(a.snap.entries.len(), 6);
}

#[test]
fn pause_freezes_the_snapshot_but_keeps_events() {
    let mut t = fixtures::table();
    let mut a = app();
    a.refresh(&t, 1);
    a.toggle_pause();
    fixtures::live(&mut t, &mut a, short_lived());
    a.refresh(&t, 2);
    assert_eq!((a.snap.events.len(), a.snap.closed.len(), a.snap.taken_ns), (0, 0, 1));
    assert_eq!(a.now_for_ages(99), 1, "ages stop too");
    a.toggle_pause();
    a.refresh(&t, 3);
    assert_eq!((a.snap.events.len(), a.snap.closed.len()), (5, 1), "nothing lost while paused");
}

#[test]
fn recent_events_are_bounded() {
    let mut a = app();
    let many = (0..RECENT as u64 + 10).map(|i| event(EventKind::Listen, i, 7, 10)).collect();
    a.ingest(update(many));
    assert_eq!(a.events.len(), RECENT);
    assert_eq!(a.events.front().map(|e| e.ts_ns), Some(10_000_000), "oldest dropped");
}

#[test]
fn scrolling_stays_within_the_rows() {
    let (_, mut a) = refreshed(1);
    // 5 rows and the TIME_WAIT count line, 3 per page; the page follows the cursor.
    for (delta, want, why) in
        [(2, (2, 0), ""), (1, (3, 1), ""), (100, (5, 3), "last page stays full"), (-100, (0, 0), "")]
    {
        a.scroll_by(delta);
        assert_eq!((a.ui.cursor, a.ui.scroll), want, "{why}");
    }
    a.scroll_to_end();
    assert_eq!((a.ui.cursor, a.ui.scroll), (5, 3));
    a.set_filter("8080");
    a.reorder();
    assert_eq!(
        (a.ui.cursor, a.ui.scroll, a.order.len(), a.collapsed.len()),
        (0, 0, 3, 1),
        "a new filter starts at the top"
    );
}

#[test]
fn a_long_copy_lets_keys_in_and_a_pause_abandons_it() {
    let (t, mut a) = refreshed(1);
    let first = a.snap.entries.len();
    assert_eq!(first, 6);
    a.copy_slice = 2;
    a.mark_table_dirty();
    a.ingest(update(vec![event(EventKind::Listen, 5, tcp::CLOSE, tcp::LISTEN)]));
    let mut calls = 0;
    let mut seen = Vec::new();
    let go_on = a
        .refresh_sliced(&t, 2, |a| {
            calls += 1;
            // The screen meanwhile still has the whole previous snapshot.
            seen.push(a.snap.entries.len());
            a.set_sort(Sort::default());
            Ok::<_, ()>(true)
        })
        .unwrap();
    assert!(go_on);
    assert_eq!(calls, 3, "6 rows in slices of 2: a look at the keys after each full slice");
    assert_eq!(seen, [6, 6, 6]);
    assert!(!a.table_dirty() && a.snap.taken_ns == 2);

    a.ingest(update(vec![event(EventKind::Listen, 6, tcp::CLOSE, tcp::LISTEN)]));
    let quit = a.refresh_sliced(&t, 3, |_| Ok::<_, ()>(false)).unwrap();
    assert!(!quit, "a quit key stops the copy");
    assert_eq!(a.snap.taken_ns, 2, "the snapshot is left as it was");
    a.refresh_sliced(&t, 4, |a| {
        a.toggle_pause();
        Ok::<_, ()>(true)
    })
    .unwrap();
    assert!(a.table_dirty() && a.snap.taken_ns == 2, "paused mid-copy: nothing taken, still due");
}

#[test]
fn listener_groups_show_accepts_and_closes_per_second() {
    const S: u64 = 1_000_000_000;
    let t = fixtures::table();
    let mut a = app();
    a.refresh(&t, S);
    a.set_group_by(GroupBy::Listener);
    // Over the next 4 s, 20 connections accepted on 127.0.0.1:8080 and 8
    // of them closed; one handshake on a port nothing listens on.
    let at = |kind, ms: u64, local: &str| {
        let mut e = event(kind, ms, tcp::SYN_RECV, tcp::ESTABLISHED);
        e.local = local.parse().unwrap();
        e.netns = 4026531840;
        e
    };
    let mut events: Vec<Event> = (0..20).map(|i| at(EventKind::Handshake, 1000 + i * 150, "127.0.0.1:8080")).collect();
    events.extend((0..8).map(|i| at(EventKind::Close, 2000 + i * 200, "127.0.0.1:8080")));
    events.push(at(EventKind::Handshake, 3000, "127.0.0.1:9999"));
    a.ingest(update(events));
    a.refresh(&t, 5 * S);
    a.reorder();
    let g = a.groups.iter().find(|g| g.label == "listener 127.0.0.1:8080").expect("the listener's group");
    let r = g.rates.expect("a listener group has rates");
    assert_eq!((r.accepted, r.closed, r.span_ms), (20, 8, 4000));
    assert_eq!((r.per_sec(r.accepted), r.per_sec(r.closed)), (5.0, 2.0));
    assert!(a.groups.iter().filter(|g| g.queue.is_none()).all(|g| g.rates.is_none()), "only listeners have rates");
    // A quiet listener's rates fall back to zero once the window passed.
    a.refresh(&t, 20 * S);
    a.reorder();
    let g = a.groups.iter().find(|g| g.label == "listener 127.0.0.1:8080").unwrap();
    assert_eq!(g.rates.map(|r| (r.accepted, r.closed, r.span_ms)), Some((0, 0, 5000)));
}
