//! Hand-built rows and events for the unit tests.

use netwatch_common::{tcp, EventKind};

use super::app::App;
use crate::{
    event::{Comm, Event},
    live::Update,
    seed::{Process, SeedSocket},
    socket::{Owner, Proto, TcpState},
    table::{Row, Table},
    workload::{Runtime, Workload},
};

/// A row; `owner` as `(pid, comm)`, `opened` in ms since boot.
pub fn row(
    proto: Proto,
    local: &str,
    remote: &str,
    state: TcpState,
    owner: Option<(u32, &str)>,
    opened_ms: Option<u64>,
) -> Row {
    Row {
        proto,
        netns: 4026531840,
        cookie: Some(1),
        owners: owner.map(|(pid, comm)| Owner { pid, comm: comm.into() }).into_iter().collect(),
        opened_ns: opened_ms.map(|ms| ms * 1_000_000),
        seen_ns: 1_000_000,
        ..Row::fixture(state, local, remote)
    }
}

pub fn tcp(local: &str, remote: &str, state: TcpState, owner: Option<(u32, &str)>) -> Row {
    row(Proto::Tcp, local, remote, state, owner, None)
}

/// A listener and a few connections, every TCP state the header shows.
pub fn rows() -> Vec<Row> {
    vec![
        tcp("127.0.0.1:8080", "0.0.0.0:0", TcpState::Listen, Some((100, "server"))),
        tcp("127.0.0.1:8080", "127.0.0.1:40001", TcpState::Established, Some((100, "server"))),
        tcp("127.0.0.1:40001", "127.0.0.1:8080", TcpState::Established, Some((200, "curl"))),
        tcp("127.0.0.1:40002", "127.0.0.1:8080", TcpState::TimeWait, None),
        tcp("[::1]:22", "[::]:0", TcpState::Listen, Some((1, "sshd"))),
        row(Proto::Udp, "127.0.0.53:53", "0.0.0.0:0", TcpState::Close, Some((50, "resolved")), None),
    ]
}

pub fn event(kind: EventKind, ts_ms: u64, old: u8, new: u8) -> Event {
    Event {
        ts_ns: ts_ms * 1_000_000,
        start_ns: Some(ts_ms.saturating_sub(3) * 1_000_000),
        cookie: 9,
        local: "127.0.0.1:40003".parse().unwrap(),
        remote: "127.0.0.1:8080".parse().unwrap(),
        pid: 300,
        comm: Comm::new("nw-peer"),
        ..crate::event::fixture_of(kind, old, new)
    }
}

/// A table seeded with [`rows`] (at 1 ms).
pub fn table() -> Table {
    let mut t = Table::new(100);
    let sockets = rows().into_iter().enumerate().map(|(i, r)| seed_socket(i as u64 + 1, r)).collect();
    t.seed(sockets, 1_000_000);
    t
}

fn seed_socket(cookie: u64, r: Row) -> SeedSocket {
    SeedSocket {
        proto: r.proto,
        family: r.family,
        cookie: Some(cookie),
        netns: r.netns,
        owners: r.owners.into_iter().map(|o| Process { pid: o.pid, comm: o.comm.text().to_owned(), fd: 3 }).collect(),
        ..SeedSocket::fixture(r.state, &r.local.to_string(), &r.remote.to_string())
    }
}

/// A connection that lives 3 ms (10 ms to 13 ms) and closes passively.
pub fn short_lived() -> Vec<Event> {
    vec![
        event(EventKind::Connect, 10, tcp::CLOSE, tcp::SYN_SENT),
        event(EventKind::Established, 11, tcp::SYN_SENT, tcp::ESTABLISHED),
        event(EventKind::State, 12, tcp::ESTABLISHED, tcp::CLOSE_WAIT),
        event(EventKind::State, 12, tcp::CLOSE_WAIT, tcp::LAST_ACK),
        event(EventKind::Close, 13, tcp::LAST_ACK, tcp::CLOSE),
        event(EventKind::Destroy, 13, tcp::CLOSE, tcp::CLOSE),
    ]
}

/// `events` applied to `t` and handed to `app`, as `Live::next` does.
pub fn live(t: &mut Table, app: &mut App, events: Vec<Event>) {
    for e in &events {
        t.apply(e);
    }
    app.ingest(Update { events, ..Update::default() });
}

/// A workload: its cgroup, its unit, and a podman container of that name.
pub fn workload(cgroup: &str, unit: Option<&str>, podman: Option<&str>) -> Workload {
    let id = "ab".repeat(32);
    Workload::fixture(cgroup, unit, podman.map(|name| (Runtime::Podman, id.as_str(), Some(name))), None)
}
