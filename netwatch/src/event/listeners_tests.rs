use netwatch_common::tcp::{CLOSE, ESTABLISHED, LISTEN, SYN_RECV};

use super::*;
use crate::socket::TcpState;

impl ListenerOwners {
    fn len(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

fn ev(kind: EventKind, cookie: u64, old: u8, new: u8, local: &str, pid: u32) -> Event {
    let local: std::net::SocketAddr = local.parse().unwrap();
    Event {
        ts_ns: 5,
        start_ns: None,
        cookie,
        family: if local.is_ipv4() { Family::V4 } else { Family::V6 },
        local,
        remote: if local.is_ipv4() { "127.0.0.1:40000" } else { "[::1]:40000" }.parse().unwrap(),
        pid,
        comm: Comm::new(if pid == 0 { "" } else { "server" }),
        uid: 7,
        owner: if pid == 0 { OwnerSource::Unknown } else { OwnerSource::Current },
        ..crate::event::fixture_of(kind, old, new)
    }
}

fn listen(cookie: u64, local: &str, pid: u32) -> Event {
    ev(EventKind::Listen, cookie, CLOSE, LISTEN, local, pid)
}

fn closed(cookie: u64, local: &str) -> Event {
    ev(EventKind::Close, cookie, LISTEN, CLOSE, local, 0)
}

/// The owner a child accepted on `local` gets: (pid, how it was learnt).
fn child_of(r: &mut ListenerOwners, local: &str) -> (u32, OwnerSource) {
    let mut c = ev(EventKind::State, 99, LISTEN, SYN_RECV, local, 0);
    r.observe(&mut c);
    (c.pid, c.owner)
}

#[test]
fn a_child_gets_its_listeners_owner_exact_address_first() {
    let mut r = ListenerOwners::default();
    r.observe(&mut listen(1, "0.0.0.0:80", 10));
    r.observe(&mut listen(2, "127.0.0.1:80", 20));
    r.observe(&mut listen(3, "[::]:443", 30));
    assert_eq!(child_of(&mut r, "127.0.0.1:80"), (20, OwnerSource::Listener));
    assert_eq!(child_of(&mut r, "10.0.0.1:80"), (10, OwnerSource::Listener));
    // An IPv4 client of a dual-stack listener: an IPv6 child, v4-mapped.
    assert_eq!(child_of(&mut r, "[::ffff:127.0.0.1]:443"), (30, OwnerSource::Listener));
    // No listener on that port (or family): still unknown, not a guess.
    assert_eq!(child_of(&mut r, "127.0.0.1:81"), (0, OwnerSource::Unknown));
    assert_eq!(child_of(&mut r, "[::1]:80"), (0, OwnerSource::Unknown));
}

#[test]
fn only_a_childs_first_event_is_completed_here() {
    let mut r = ListenerOwners::default();
    r.observe(&mut listen(1, "127.0.0.1:80", 10));
    let mut accept = ev(EventKind::Handshake, 99, SYN_RECV, ESTABLISHED, "127.0.0.1:80", 0);
    r.observe(&mut accept);
    assert_eq!(accept.pid, 0, "later events borrow from the first one, elsewhere");
    let mut adopted = ev(EventKind::State, 98, LISTEN, SYN_RECV, "127.0.0.1:80", 44);
    r.observe(&mut adopted);
    assert_eq!(adopted.pid, 44, "an owner the kernel sent is kept");
}

#[test]
fn a_closed_listener_is_forgotten_by_cookie_whatever_its_close_says() {
    let mut r = ListenerOwners::default();
    r.observe(&mut listen(1, "127.0.0.1:5000", 10));
    // A kernel-picked port: the close may come with another port.
    r.observe(&mut closed(1, "127.0.0.1:0"));
    assert!(r.is_empty());
    assert_eq!(child_of(&mut r, "127.0.0.1:5000"), (0, OwnerSource::Unknown));
}

#[test]
fn reuseport_listeners_lend_an_owner_only_when_they_share_one() {
    let mut r = ListenerOwners::default();
    // One process, one listener per thread.
    r.observe(&mut listen(1, "0.0.0.0:80", 10));
    r.observe(&mut listen(2, "0.0.0.0:80", 10));
    assert_eq!(child_of(&mut r, "127.0.0.1:80"), (10, OwnerSource::Listener));
    // A worker process of its own: which listener a child came from is
    // not known, so neither is its owner until accept.
    r.observe(&mut listen(3, "0.0.0.0:80", 20));
    assert_eq!(child_of(&mut r, "127.0.0.1:80"), (0, OwnerSource::Unknown));
    r.observe(&mut closed(3, "0.0.0.0:80"));
    assert_eq!(child_of(&mut r, "127.0.0.1:80").0, 10, "the others still listen");
    r.observe(&mut closed(1, "0.0.0.0:80"));
    r.observe(&mut closed(2, "0.0.0.0:80"));
    assert!(r.is_empty());
}

#[test]
fn namespaces_are_apart() {
    let mut r = ListenerOwners::default();
    r.observe(&mut listen(1, "0.0.0.0:80", 10));
    let mut c = ev(EventKind::State, 99, LISTEN, SYN_RECV, "127.0.0.1:80", 0);
    c.netns = 2;
    r.observe(&mut c);
    assert_eq!(c.pid, 0);
}

fn seeded(cookie: Option<u64>, local: &str, pid: u32) -> SeedSocket {
    let any = if local.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
    SeedSocket { inode: 9, uid: 33, cookie, netns: 1, ..SeedSocket::fixture(TcpState::Listen, local, any) }
        .owned_by(pid, "sshd")
}

#[test]
fn listeners_older_than_netwatch_come_from_the_seed() {
    let mut r = ListenerOwners::default();
    r.seed(&[seeded(Some(4), "0.0.0.0:22", 700), seeded(None, "[::]:22", 701)]);
    let mut c = ev(EventKind::State, 99, LISTEN, SYN_RECV, "127.0.0.1:22", 0);
    r.observe(&mut c);
    assert_eq!((c.pid, c.comm.as_str().as_ref(), c.uid, c.owner), (700, "sshd", 33, OwnerSource::Listener));
    assert_eq!(child_of(&mut r, "[::1]:22").0, 701);
    // Closes: by cookie, and the one without by where it listened.
    r.observe(&mut closed(4, "0.0.0.0:22"));
    r.observe(&mut closed(5, "[::]:22"));
    assert!(r.is_empty());
}

#[test]
fn reseeding_keeps_what_the_kernel_said() {
    let mut r = ListenerOwners::default();
    r.observe(&mut listen(4, "0.0.0.0:22", 10));
    r.seed(&[seeded(Some(4), "0.0.0.0:22", 700)]);
    assert_eq!(r.len(), 1);
    assert_eq!(child_of(&mut r, "127.0.0.1:22").0, 10);
}
