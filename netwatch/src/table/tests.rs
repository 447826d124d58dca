use netwatch_common::{tcp, OwnerSource};

use super::*;
use crate::{event::Comm, seed::Process, socket::TcpState};

fn ev(kind: EventKind, cookie: u64, old: u8, new: u8, local: &str, remote: &str, pid: u32) -> Event {
    Event {
        ts_ns: 1_000_000_000 + cookie * 1000 + u64::from(new),
        start_ns: Some(1_000_000_000),
        cookie,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        pid,
        comm: Comm::new("app"),
        netns: 7,
        ..crate::event::fixture_of(kind, old, new)
    }
}

fn seeded(cookie: Option<u64>, state: u8, local: &str, remote: &str, pid: Option<u32>) -> SeedSocket {
    let s = SeedSocket { cookie, ..SeedSocket::fixture(TcpState::from_u8(state).expect("a TCP state"), local, remote) };
    pid.into_iter().fold(s, |s, pid| s.owned_by(pid, "seeded"))
}

/// The client side of a normal connection, as the kernel reports it.
fn client_lifecycle(t: &mut Table, cookie: u64) {
    let (l, r) = ("127.0.0.1:40000", "127.0.0.1:80");
    t.apply(&ev(EventKind::Connect, cookie, tcp::CLOSE, tcp::SYN_SENT, "127.0.0.1:0", r, 5));
    t.apply(&ev(EventKind::Established, cookie, tcp::SYN_SENT, tcp::ESTABLISHED, l, r, 5));
    t.apply(&ev(EventKind::State, cookie, tcp::ESTABLISHED, tcp::FIN_WAIT1, l, r, 5));
    t.apply(&ev(EventKind::State, cookie, tcp::FIN_WAIT1, tcp::FIN_WAIT2, l, r, 5));
    t.apply(&ev(EventKind::Close, cookie, tcp::FIN_WAIT2, tcp::CLOSE, "127.0.0.1:0", r, 5));
}

#[test]
fn active_close_leaves_an_ownerless_time_wait_row_and_history() {
    let mut t = Table::new(10);
    client_lifecycle(&mut t, 1);
    let rows: Vec<_> = t.rows().cloned().collect();
    assert_eq!(rows.len(), 1);
    let tw = &rows[0];
    assert_eq!(tw.state, TcpState::TimeWait);
    assert_eq!(tw.local, "127.0.0.1:40000".parse().unwrap(), "port kept from ESTABLISHED");
    assert!(tw.owners.is_empty());
    assert_eq!(owner_label(tw), "-");
    let h: Vec<_> = t.history().collect();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].owner.as_ref().map(|o| o.pid), Some(5));
    assert_eq!(h[0].ending, Ending::Closed);
    assert!(h[0].duration_ns.unwrap() > 0);
    assert_eq!((t.totals.opened_active, t.totals.closed), (1, 1));
    // The full socket's destroy must not remove the TIME_WAIT row.
    t.apply(&ev(EventKind::Destroy, 1, tcp::CLOSE, tcp::CLOSE, "127.0.0.1:0", "0.0.0.0:0", 5));
    assert_eq!(t.len(), 1);
    t.expire(tw.seen_ns + TIME_WAIT_NS - 1);
    assert_eq!(t.len(), 1);
    t.expire(1_000_000_000 + 1000 + u64::from(tcp::CLOSE) + TIME_WAIT_NS);
    assert_eq!(t.len(), 0);
}

#[test]
fn failed_connect_and_reset_are_counted_and_leave_no_row() {
    let mut t = Table::new(10);
    t.apply(&ev(EventKind::Connect, 1, tcp::CLOSE, tcp::SYN_SENT, "127.0.0.1:0", "127.0.0.1:9", 5));
    t.apply(&ev(EventKind::ConnectFailed, 1, tcp::SYN_SENT, tcp::CLOSE, "127.0.0.1:0", "127.0.0.1:9", 5));
    t.apply(&ev(EventKind::Handshake, 2, tcp::SYN_RECV, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5000", 6));
    t.apply(&ev(EventKind::Close, 2, tcp::ESTABLISHED, tcp::CLOSE, "127.0.0.1:80", "127.0.0.1:5000", 6));
    assert_eq!(t.len(), 0);
    assert_eq!(t.totals.failed_connects, 1);
    assert_eq!(t.totals.resets, 1);
    assert_eq!(t.totals.closed, 1);
    assert_eq!(t.totals.opened_passive, 1);
    let endings: Vec<_> = t.history().map(|c| c.ending).collect();
    assert_eq!(endings, [Ending::Failed, Ending::Reset]);
}

#[test]
fn a_listener_closing_is_not_a_connection_closed() {
    let mut t = Table::new(10);
    t.apply(&ev(EventKind::Listen, 1, tcp::CLOSE, tcp::LISTEN, "127.0.0.1:80", "0.0.0.0:0", 6));
    t.apply(&ev(EventKind::Handshake, 2, tcp::SYN_RECV, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5000", 6));
    t.apply(&ev(EventKind::Close, 2, tcp::ESTABLISHED, tcp::CLOSE, "127.0.0.1:80", "127.0.0.1:5000", 6));
    t.apply(&ev(EventKind::Close, 1, tcp::LISTEN, tcp::CLOSE, "127.0.0.1:80", "0.0.0.0:0", 6));
    assert_eq!(t.len(), 0);
    assert_eq!((t.totals.opened_passive, t.totals.closed), (1, 1), "{:?}", t.totals);
}

#[test]
fn history_is_bounded() {
    let mut t = Table::new(3);
    for cookie in 1..=10 {
        client_lifecycle(&mut t, cookie);
    }
    assert_eq!(t.history().count(), 3);
    assert_eq!(t.history().next().unwrap().cookie, Some(8));
}

#[test]
fn seeded_rows_keep_owners_and_meet_events_by_cookie() {
    let mut t = Table::new(10);
    t.seed(vec![seeded(Some(40), tcp::ESTABLISHED, "127.0.0.1:22", "127.0.0.1:5555", Some(100))], 1);
    t.apply(&ev(EventKind::State, 40, tcp::ESTABLISHED, tcp::CLOSE_WAIT, "127.0.0.1:22", "127.0.0.1:5555", 0));
    let r = t.rows().next().unwrap();
    assert_eq!(r.state, TcpState::CloseWait);
    assert_eq!(owner_label(r), "100/seeded", "an event without owner keeps the seeded one");
    assert_eq!(t.counts().tcp(tcp::CLOSE_WAIT), 1);
}

#[test]
fn proc_seeded_rows_are_matched_by_tuple_then_keyed_by_cookie() {
    let mut t = Table::new(10);
    t.seed(vec![seeded(None, tcp::ESTABLISHED, "127.0.0.1:22", "127.0.0.1:5555", Some(100))], 1);
    t.apply(&ev(EventKind::State, 41, tcp::ESTABLISHED, tcp::FIN_WAIT1, "127.0.0.1:22", "127.0.0.1:5555", 0));
    assert_eq!(t.len(), 1);
    let r = t.rows().next().unwrap();
    assert_eq!((r.cookie, r.state), (Some(41), TcpState::FinWait1));
}

#[test]
fn reconcile_replaces_only_minisocks() {
    let mut t = Table::new(10);
    client_lifecycle(&mut t, 1); // synthesized TIME_WAIT, which the kernel says is gone
    t.apply(&ev(EventKind::Handshake, 2, tcp::SYN_RECV, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5000", 6));
    let tw = seeded(Some(3), tcp::TIME_WAIT, "127.0.0.1:80", "127.0.0.1:6000", None);
    let syn = seeded(Some(4), tcp::SYN_RECV, "127.0.0.1:80", "127.0.0.1:6001", None);
    let mut elsewhere = seeded(Some(9), tcp::TIME_WAIT, "127.0.0.1:80", "127.0.0.1:7000", None);
    elsewhere.netns = 8;
    t.seed(vec![elsewhere], 1);
    client_lifecycle(&mut t, 1);
    t.apply(&ev(EventKind::Handshake, 2, tcp::SYN_RECV, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5000", 6));
    t.reconcile_minisocks(7, vec![tw, syn], 5);
    let mut states: Vec<_> = t.rows().map(|r| (r.cookie, r.state)).collect();
    states.sort();
    // Namespace 8 was not re-read: its TIME_WAIT row stays.
    assert_eq!(
        states,
        [
            (Some(2), TcpState::Established),
            (Some(3), TcpState::TimeWait),
            (Some(4), TcpState::SynRecv),
            (Some(9), TcpState::TimeWait)
        ]
    );
}

#[test]
fn a_second_reconcile_updates_rows_dumped_again_and_drops_the_rest() {
    let mut t = Table::new(10);
    let tw = |cookie: u64, port: u16| {
        seeded(Some(cookie), tcp::TIME_WAIT, "127.0.0.1:80", &format!("127.0.0.1:{port}"), None)
    };
    t.reconcile_minisocks(7, vec![tw(3, 6000), tw(4, 6001)], 5);
    let mut again = tw(3, 6000);
    again.rx_queue = 7;
    t.reconcile_minisocks(7, vec![again, tw(5, 6002)], 9);
    let mut rows: Vec<_> = t.rows().map(|r| (r.cookie, r.seen_ns, r.rx_queue)).collect();
    rows.sort();
    // As a fresh dump: the row dumped again is the new one (seen now, its
    // new queue), the one gone from the dump is gone.
    assert_eq!(rows, [(Some(3), 9, 7), (Some(5), 9, 0)]);
    // Its index entry still retires it when a new socket takes the tuple.
    t.apply(&ev(EventKind::Handshake, 20, tcp::SYN_RECV, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:6000", 6));
    assert!(t.rows().all(|r| r.cookie != Some(3)), "the reused TIME_WAIT row is retired");
}

#[test]
fn accept_moves_ownership_to_the_accepting_process() {
    let mut t = Table::new(10);
    t.apply(&ev(EventKind::Handshake, 2, tcp::SYN_RECV, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5000", 6));
    t.apply(&ev(EventKind::State, 2, tcp::ESTABLISHED, tcp::CLOSE_WAIT, "127.0.0.1:80", "127.0.0.1:5000", 9));
    assert_eq!(t.rows().next().unwrap().owners.iter().map(|o| o.pid).collect::<Vec<_>>(), [9]);
}

#[test]
fn udp_reconcile_keeps_known_owners_and_reports_new_sockets() {
    let mut t = Table::new(10);
    let udp = |cookie: u64, port: u16, pid: Option<u32>| {
        let mut s = seeded(Some(cookie), tcp::CLOSE, &format!("127.0.0.1:{port}"), "0.0.0.0:0", pid);
        s.proto = Proto::Udp;
        s.inode = 90 + cookie;
        s
    };
    t.seed(vec![udp(1, 53, Some(10)), udp(2, 54, Some(11))], 1);
    // Socket 2 was closed, socket 3 is new (the dump has no owners).
    let unowned = t.reconcile_udp(7, vec![udp(1, 53, None), udp(3, 55, None)], 2);
    let mut rows: Vec<_> = t.rows().map(|r| (r.cookie, owner_label(r))).collect();
    rows.sort();
    assert_eq!(rows, [(Some(1), "10/seeded".to_owned()), (Some(3), "-".to_owned())]);
    assert_eq!(unowned, [93]);
    let mut owners = std::collections::HashMap::from([(93, vec![Process { pid: 12, comm: "dns".into(), fd: 5 }])]);
    t.set_owners(&mut owners);
    assert!(t.rows().any(|r| r.cookie == Some(3) && owner_label(r) == "12/dns"));
}

#[test]
fn accept_gives_the_row_its_accepting_owner_and_inode() {
    let mut t = Table::new(10);
    t.apply(&ev(EventKind::Handshake, 2, tcp::SYN_RECV, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5000", 6));
    assert_eq!(t.rows().next().unwrap().inode, 0, "not accepted yet: no file");
    let mut accept = ev(EventKind::Accept, 2, tcp::ESTABLISHED, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5000", 9);
    accept.inode = 777;
    t.apply(&accept);
    let r = t.rows().next().unwrap();
    assert_eq!((r.inode, r.state, r.owners[0].pid), (777, TcpState::Established, 9));
    // Accepting a socket the table never saw creates nothing.
    t.apply(&ev(EventKind::Accept, 3, tcp::ESTABLISHED, tcp::ESTABLISHED, "127.0.0.1:80", "127.0.0.1:5001", 9));
    assert_eq!(t.len(), 1);
}

/// The live model hands events on completed from the table: a socket older
/// than netwatch gets its seeded owner, and a local port the kernel no
/// longer reports comes from the row.
#[test]
fn events_are_completed_from_their_row() {
    let mut t = Table::new(10);
    t.seed(vec![seeded(Some(40), tcp::ESTABLISHED, "127.0.0.1:22", "127.0.0.1:5555", Some(100))], 1);
    let mut e = ev(EventKind::Close, 40, tcp::ESTABLISHED, tcp::CLOSE, "127.0.0.1:0", "127.0.0.1:5555", 0);
    t.complete_and_apply(&mut e);
    assert_eq!((e.local.port(), e.pid, e.comm.as_str().as_ref(), e.owner), (22, 100, "seeded", OwnerSource::Proc));
    // A kernel-known owner is left alone.
    let mut e = ev(EventKind::Connect, 50, tcp::CLOSE, tcp::SYN_SENT, "127.0.0.1:0", "127.0.0.1:9", 5);
    t.complete_and_apply(&mut e);
    assert_eq!((e.pid, e.owner), (5, OwnerSource::Current));
}

/// The kernel names a socket's owner on its birth and at accept only: the
/// events between get it from the row, with how it was learnt and when the
/// connection began.
#[test]
fn softirq_events_get_the_owner_of_the_birth_or_the_accept() {
    let mut t = Table::new(10);
    let mut born = ev(EventKind::State, 60, tcp::LISTEN, tcp::SYN_RECV, "127.0.0.1:80", "127.0.0.1:4000", 10);
    born.owner = OwnerSource::Listener;
    t.complete_and_apply(&mut born);
    let bare = |kind, old, new| {
        let mut e = ev(kind, 60, old, new, "127.0.0.1:80", "127.0.0.1:4000", 0);
        e.start_ns = None;
        e.owner = OwnerSource::Unknown;
        e
    };
    let mut handshake = bare(EventKind::Handshake, tcp::SYN_RECV, tcp::ESTABLISHED);
    t.complete_and_apply(&mut handshake);
    assert_eq!((handshake.pid, handshake.owner, handshake.start_ns), (10, OwnerSource::Listener, Some(1_000_000_000)));
    let mut accept = ev(EventKind::Accept, 60, tcp::ESTABLISHED, tcp::ESTABLISHED, "0.0.0.0:0", "0.0.0.0:0", 11);
    (accept.owner, accept.start_ns, accept.inode, accept.netns) = (OwnerSource::Accept, None, 888, 0);
    accept.accepted = Some(crate::event::Accepted { fd: 4, queued_ns: None });
    t.complete_and_apply(&mut accept);
    // The wait in the accept queue: since the handshake, the row's start.
    let queued = accept.ts_ns - 1_000_000_000;
    assert_eq!(accept.accepted, Some(crate::event::Accepted { fd: 4, queued_ns: Some(queued) }));
    let mut fin = bare(EventKind::State, tcp::ESTABLISHED, tcp::CLOSE_WAIT);
    t.complete_and_apply(&mut fin);
    assert_eq!((fin.pid, fin.owner, fin.start_ns, fin.inode), (11, OwnerSource::Accept, Some(1_000_000_000), 888));
}

/// A socket's `destroy` comes after its close, with the local port given
/// back: with destroy events shown, the closed row stays to complete it
/// (owner too), then goes; otherwise the close drops it. TIME_WAIT rows
/// only where asked for (the live model, not `events`).
#[test]
fn closed_rows_stay_for_their_destroy_only_when_asked() {
    // (until_destroy, time_wait_rows): events --teardown, events, the live model.
    for (until_destroy, time_wait_rows) in [(true, false), (false, false), (false, true)] {
        let mut t = Table::new(0);
        (t.until_destroy, t.time_wait_rows) = (until_destroy, time_wait_rows);
        let (l, r) = ("127.0.0.1:4000", "127.0.0.1:80");
        // A passive close (no TIME_WAIT) and an active one.
        t.apply(&ev(EventKind::Established, 5, tcp::SYN_SENT, tcp::ESTABLISHED, l, r, 9));
        t.apply(&ev(EventKind::State, 5, tcp::CLOSE_WAIT, tcp::LAST_ACK, l, r, 9));
        t.complete_and_apply(&mut ev(EventKind::Close, 5, tcp::LAST_ACK, tcp::CLOSE, "127.0.0.1:0", r, 0));
        client_lifecycle(&mut t, 6);
        let destroy = |t: &mut Table, cookie| {
            let mut d = ev(EventKind::Destroy, cookie, tcp::CLOSE, tcp::CLOSE, "127.0.0.1:0", "0.0.0.0:0", 0);
            t.complete_and_apply(&mut d);
            (d.local.port(), d.remote.port(), d.pid)
        };
        let (passive, active) = (destroy(&mut t, 5), destroy(&mut t, 6));
        let states: Vec<u8> = t.rows().map(|r| r.state as u8).collect();
        match (until_destroy, time_wait_rows) {
            (true, _) => assert_eq!((passive, active, states), ((4000, 80, 9), (40000, 80, 5), vec![])),
            (false, false) => assert_eq!((passive, active, states), ((0, 0, 0), (0, 0, 0), vec![])),
            // From the TIME_WAIT row, which has no owner and stays.
            (false, true) => assert_eq!((passive, active, states), ((0, 0, 0), (40000, 80, 0), vec![tcp::TIME_WAIT])),
        }
    }
}

/// After a burst of rows has gone, the table gives the memory back.
#[test]
fn memory_is_given_back_after_a_burst() {
    let mut t = Table::new(10);
    let burst: Vec<SeedSocket> = (0..100_000u64)
        .map(|i| {
            let remote = format!("127.0.0.2:{}", 1024 + i % 60_000);
            let mut s = seeded(Some(1_000 + i), tcp::TIME_WAIT, "127.0.0.1:80", &remote, None);
            s.netns = 7 + (i / 60_000) as u32;
            s
        })
        .collect();
    t.seed(burst, 1);
    assert!(t.rows.capacity() >= 100_000);
    t.seed(vec![seeded(Some(1), tcp::ESTABLISHED, "127.0.0.1:22", "127.0.0.1:5555", Some(100))], 2);
    t.trim();
    assert!(t.rows.capacity() < 20_000, "capacity {} after the burst", t.rows.capacity());
    assert_eq!(t.len(), 1);
    // A steady table is left alone.
    let before = t.rows.capacity();
    t.trim();
    assert_eq!(t.rows.capacity(), before);
}

/// `PID/name` of the first owner, as netstat's `-p` column shows it.
fn owner_label(r: &Row) -> String {
    Owner::label(r.owners.first()).to_string()
}

/// How a connection opened stays on its row (the snapshot's figures); a
/// failed connect() is counted but names no socket and makes no row.
#[test]
fn a_row_keeps_how_it_opened_and_connect_errors_make_no_row() {
    let mut t = Table::new(10);
    let r = "127.0.0.1:80";
    t.apply(&ev(EventKind::Connect, 60, tcp::CLOSE, tcp::SYN_SENT, "127.0.0.1:0", r, 5));
    let mut done = ev(EventKind::Established, 60, tcp::SYN_SENT, tcp::ESTABLISHED, "127.0.0.1:40000", r, 5);
    done.traffic.total_retrans = 1;
    t.apply(&done);
    let opened = t.rows().find(|row| row.cookie == Some(60)).and_then(|row| row.traffic.opened);
    let want_us = (done.ts_ns - 1_000_000_000) / 1000;
    assert_eq!(opened.map(|l| (l.connect_us, l.syn_retransmits)), Some((Some(want_us), Some(1))));
    let before = t.len();
    let mut error = ev(EventKind::ConnectError, 0, tcp::CLOSE, tcp::CLOSE, "0.0.0.0:0", "10.0.0.1:80", 5);
    error.traffic.sk_err = 113;
    t.complete_and_apply(&mut error);
    assert_eq!(t.len(), before);
    assert_eq!(t.totals.events, 3);
}

/// The model gives an event its owner's workload once, when asked to, and
/// the same one a row of that owner has: a lent owner's included.
#[test]
fn events_get_their_owners_workload_from_the_one_resolver() {
    let me = std::process::id();
    let (l, r) = ("127.0.0.1:40000", "127.0.0.1:80");
    for on in [false, true] {
        let mut t = Table::new(0);
        t.event_workloads = on;
        t.seed(vec![seeded(Some(1), tcp::ESTABLISHED, l, r, Some(me))], 0);
        // The kernel named no owner (softirq): the row's is lent.
        let mut e = ev(EventKind::State, 1, tcp::ESTABLISHED, tcp::FIN_WAIT1, l, r, 0);
        t.complete_and_apply(&mut e);
        assert_eq!(e.pid, me);
        let row = t.rows().next().unwrap().clone();
        let expected = Resolver::default().of(me, 0);
        assert!(expected.is_some(), "this process has a cgroup");
        assert_eq!(t.row_workload(&row), expected);
        assert_eq!(e.workload, if on { expected } else { None });
    }
}

/// A holder the walk met before it exec'd another program closes the
/// socket: the kernel's word names the new program, and the socket's later
/// events (in softirq, lent from the row) name it too, not the old name.
#[test]
fn a_known_holder_that_execd_is_renamed_by_its_close() {
    let (l, r) = ("127.0.0.1:80", "127.0.0.1:40000");
    // A pid no process has here, so the name is the kernel's, not /proc's.
    let pid = u32::MAX - 1;
    let mut t = Table::new(10);
    t.seed(vec![seeded(Some(9), tcp::ESTABLISHED, l, r, Some(pid))], 0);
    let mut close = ev(EventKind::State, 9, tcp::ESTABLISHED, tcp::FIN_WAIT1, l, r, pid);
    close.comm = Comm::new("sleep");
    t.complete_and_apply(&mut close);
    let mut later = ev(EventKind::State, 9, tcp::FIN_WAIT1, tcp::FIN_WAIT2, l, r, 0);
    t.complete_and_apply(&mut later);
    assert_eq!((later.pid, later.comm.text()), (pid, "sleep"));
    let row = t.rows().find(|r| r.cookie == Some(9)).expect("the row");
    assert_eq!(row.owners.iter().map(|o| (o.pid, o.comm.text())).collect::<Vec<_>>(), [(pid, "sleep")]);
}

/// An orphaned socket whose closer has exited: its remaining events name
/// the closer the table kept aside, and its row still shows no holder, as
/// `ss` shows none (the lent owner is not taken for the kernel's word).
#[test]
fn a_departed_closer_names_the_last_events_but_holds_no_row() {
    let (l, r) = ("127.0.0.1:80", "127.0.0.1:40000");
    let mut t = Table::new(10);
    t.seed(vec![seeded(Some(9), tcp::FIN_WAIT1, l, r, Some(42))], 0);
    for row in t.rows_mut() {
        row.owners.clear();
    }
    t.departed(9, Owner { pid: 42, comm: Comm::new("closer") });
    let mut e = ev(EventKind::State, 9, tcp::FIN_WAIT1, tcp::FIN_WAIT2, l, r, 0);
    t.complete_and_apply(&mut e);
    assert_eq!((e.pid, e.comm.text()), (42, "closer"));
    let row = t.rows().find(|r| r.cookie == Some(9)).expect("the row");
    assert!(row.owners.is_empty(), "{:?}", row.owners);
    let mut close = ev(EventKind::Close, 9, tcp::FIN_WAIT2, tcp::CLOSE, l, r, 0);
    t.complete_and_apply(&mut close);
    assert_eq!(close.pid, 42);
    assert_eq!(t.history().last().and_then(|c| c.owner.as_ref()).map(|o| o.pid), Some(42));
}
