use netwatch_common::{tcp, EventKind, Traffic};

use super::super::{Table, TIME_WAIT_NS};
use crate::{
    event::{Comm, Event},
    seed::{SeedSocket, Timer, TimerKind},
    socket::TcpState,
};

const SERVER: &str = "127.0.0.1:80";

struct Ev {
    kind: EventKind,
    cookie: u64,
    old: u8,
    new: u8,
    local: String,
    remote: String,
    netns: u32,
}

fn ev(e: Ev, ts_ns: u64, traffic: Traffic) -> Event {
    Event {
        ts_ns,
        start_ns: Some(ts_ns),
        cookie: e.cookie,
        local: e.local.parse().unwrap(),
        remote: e.remote.parse().unwrap(),
        pid: 5,
        comm: Comm::new("app"),
        netns: e.netns,
        traffic,
        ..crate::event::fixture_of(e.kind, e.old, e.new)
    }
}

/// One loopback connection from `client_port`, the server closing first (so
/// the server's socket, `cookie`, ends in TIME_WAIT; the client's is
/// `cookie + 1`), as the kernel reports it, with `bytes` each way.
fn connection(t: &mut Table, cookie: u64, client_port: u16, netns: u32, ts_ns: u64, bytes: u64) {
    let client = format!("127.0.0.1:{client_port}");
    let (s, c) = ((SERVER.to_owned(), client.clone()), (client, SERVER.to_owned()));
    let total = Traffic { tx_bytes: bytes, rx_bytes: bytes, tx_packets: 4, rx_packets: 4, ..Traffic::ZERO };
    let steps = [
        (EventKind::Connect, cookie + 1, tcp::CLOSE, tcp::SYN_SENT, ("127.0.0.1:0".to_owned(), SERVER.to_owned())),
        (EventKind::State, cookie, tcp::LISTEN, tcp::SYN_RECV, s.clone()),
        (EventKind::Established, cookie + 1, tcp::SYN_SENT, tcp::ESTABLISHED, c.clone()),
        (EventKind::Handshake, cookie, tcp::SYN_RECV, tcp::ESTABLISHED, s.clone()),
        (EventKind::State, cookie, tcp::ESTABLISHED, tcp::FIN_WAIT1, s.clone()),
        (EventKind::State, cookie + 1, tcp::ESTABLISHED, tcp::CLOSE_WAIT, c.clone()),
        (EventKind::State, cookie + 1, tcp::CLOSE_WAIT, tcp::LAST_ACK, c.clone()),
        (EventKind::State, cookie, tcp::FIN_WAIT1, tcp::FIN_WAIT2, s.clone()),
        (EventKind::Close, cookie + 1, tcp::LAST_ACK, tcp::CLOSE, c.clone()),
        (EventKind::Close, cookie, tcp::FIN_WAIT2, tcp::CLOSE, s.clone()),
        (EventKind::Destroy, cookie + 1, tcp::CLOSE, tcp::CLOSE, c),
        (EventKind::Destroy, cookie, tcp::CLOSE, tcp::CLOSE, s),
    ];
    for (i, (kind, cookie, old, new, (local, remote))) in steps.into_iter().enumerate() {
        let traffic = if new == tcp::CLOSE && kind != EventKind::Destroy { total } else { Traffic::ZERO };
        t.apply(&ev(Ev { kind, cookie, old, new, local, remote, netns }, ts_ns + i as u64, traffic));
    }
}

fn time_wait_rows(t: &Table) -> Vec<(String, u64)> {
    t.rows().filter(|r| r.state == TcpState::TimeWait).map(|r| (r.remote.to_string(), r.cookie.unwrap())).collect()
}

#[test]
fn a_new_connection_on_the_tuple_retires_the_time_wait_row() {
    let mut t = Table::new(10);
    connection(&mut t, 10, 40_000, 7, 1_000, 100);
    assert_eq!(time_wait_rows(&t), [("127.0.0.1:40000".to_owned(), 10)]);
    // The same client port again: the kernel killed the TIME_WAIT socket
    // to let the new SYN in.
    connection(&mut t, 20, 40_000, 7, 2_000, 100);
    assert_eq!(time_wait_rows(&t), [("127.0.0.1:40000".to_owned(), 20)]);
    assert_eq!(t.len(), 1);
    // Another port, or the same tuple in another namespace: a different
    // kernel socket, which stays.
    connection(&mut t, 30, 40_001, 7, 3_000, 100);
    connection(&mut t, 40, 40_000, 8, 4_000, 100);
    assert_eq!(t.len(), 3);
    assert_eq!(t.history().count(), 8, "every close is in the history");
}

#[test]
fn an_incomplete_tuple_retires_nothing() {
    let mut t = Table::new(10);
    connection(&mut t, 10, 40_000, 7, 1_000, 100);
    // A connect from port 0 (not chosen yet) to the server looks like no
    // tuple in particular.
    let e = Ev {
        kind: EventKind::Connect,
        cookie: 50,
        old: tcp::CLOSE,
        new: tcp::SYN_SENT,
        local: "127.0.0.1:0".into(),
        remote: "127.0.0.1:40000".into(),
        netns: 7,
    };
    t.apply(&ev(e, 5_000, Traffic::ZERO));
    assert_eq!(time_wait_rows(&t).len(), 1);
}

/// A TIME_WAIT socket found by sock_diag (netwatch started after the close)
/// is retired the same way.
#[test]
fn a_dumped_time_wait_socket_is_retired_too() {
    let mut t = Table::new(10);
    let dumped = SeedSocket {
        cookie: Some(3),
        timer: Some(Timer { kind: TimerKind::TimeWait, expires: std::time::Duration::from_secs(30), retransmits: 0 }),
        // sock_diag's substate of a TIME_WAIT socket; its timer tells.
        ..SeedSocket::fixture(TcpState::FinWait2, SERVER, "127.0.0.1:40000")
    };
    t.reconcile_minisocks(7, vec![dumped], 0);
    assert_eq!(t.len(), 1);
    connection(&mut t, 10, 40_000, 7, 1_000, 100);
    assert_eq!(time_wait_rows(&t), [("127.0.0.1:40000".to_owned(), 10)]);
    assert_eq!(t.len(), 1, "the dumped row is gone");
}

/// Endless churn from a pool of client ports, with traffic on every
/// connection and no sock_diag re-read: the table holds one row per port
/// in use (the kernel's TIME_WAIT sockets), never one per connection seen,
/// and every structure beside it stays as small.
#[test]
fn churn_memory_follows_the_ports_in_use_not_the_connections_seen() {
    const PORTS: u64 = 1_000;
    const CONNECTIONS: u64 = 100_000;
    const HISTORY: usize = 5_000;
    let mut t = Table::new(HISTORY);
    let mut high = 0;
    for i in 0..CONNECTIONS {
        let cookie = 10 + 2 * i;
        let ts_ns = 1_000_000 + i * 20_000;
        connection(&mut t, cookie, 30_000 + (i % PORTS) as u16, 7, ts_ns, 1_000 + i);
        if i % 997 == 0 {
            // What `Live` does once a second: the traffic map, then expiry.
            t.update_traffic(&[(cookie, Traffic { tx_bytes: 5, ..Traffic::ZERO })], ts_ns + 100);
            t.expire(ts_ns + 100);
        }
        high = high.max(t.len());
    }
    assert_eq!(t.len(), PORTS as usize);
    assert_eq!(high, PORTS as usize, "rows never exceed the ports in use");
    assert!(t.rows.capacity() < 4 * PORTS as usize, "rows capacity {}", t.rows.capacity());
    assert!(t.time_wait.len() <= PORTS as usize, "index {}", t.time_wait.len());
    assert!(t.time_wait.capacity() < 4 * 4096, "index capacity {}", t.time_wait.capacity());
    assert!(t.uncookied.capacity() < 4 * 4096);
    assert_eq!(t.history().count(), HISTORY);
    assert_eq!(t.history.capacity(), HISTORY, "the history grows to its cap, not past it");
    assert_eq!(t.closed_traffic.len(), 1, "one process name, one sum");
    let sum = t.traffic_by_process(10);
    assert_eq!(sum[0].totals.tx_bytes, (0..CONNECTIONS).map(|i| 2 * (1_000 + i)).sum::<u64>());
    // Once the churn stops, the TIME_WAIT rows expire and the memory goes.
    t.expire(1_000_000 + CONNECTIONS * 20_000 + TIME_WAIT_NS);
    assert_eq!(t.len(), 0);
    assert!(t.time_wait.is_empty());
}
