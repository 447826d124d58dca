//! A passive child's first event is its own, on every kernel: its own
//! cookie and its full tuple, never its listener's.
//!
//! Up to at least Linux 6.12 the kernel reports `LISTEN -> SYN_RECV` while
//! the child is still a bare copy of its listener (cookie and addresses
//! included); netwatch then reports the child's birth at its next
//! transition instead. A wildcard listener makes the difference visible:
//! the copy would say 0.0.0.0, the child says 127.0.0.1.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netwatch_tests::conn::{by_cookie, show, stillborn};
use netwatch_tests::event::sock_events;
use netwatch_tests::{Peer, Problems, SockEvent};

#[test]
fn wildcard_ipv4_listener_children_are_born_with_their_own_identity() {
    run("0.0.0.0:0", "127.0.0.1", "IPv4");
}

#[test]
fn wildcard_ipv6_listener_children_are_born_with_their_own_identity() {
    run("[::]:0", "::1", "IPv6");
}

fn run(bind: &str, lo: &str, family: &str) {
    let ns = super::setup_in("children");
    let n = 20;
    let nw = super::events_in(&ns, &[]);
    let (mut server, srv) = Peer::server(bind, Some(n));
    let to = SocketAddr::new(lo.parse::<IpAddr>().expect("ip"), srv.addr.port());
    let client = Peer::client(to, n, 2);
    server.wait_success(Duration::from_secs(30));
    let stopped = nw.stop();
    let events = sock_events(&stopped.events());
    let sp = srv.addr.port();
    let context = format!("{n} {family} connections to a listener on {bind} (port {sp}, server pid {})", srv.pid);

    let listen: Vec<&SockEvent> = events.iter().filter(|e| e.event == "listen" && e.sport == sp).collect();
    let [listen] = listen.as_slice() else {
        panic!("{context}: expected one `listen`, got:\n{}", show(&listen));
    };
    let mut problems = Problems::default();
    let cookies = by_cookie(&events);
    // The listener's cookie never names a child's transition.
    let on_listener: Vec<&SockEvent> = cookies[&listen.cookie]
        .iter()
        .copied()
        .filter(|e| e.new_state != "LISTEN" && e.old_state != "LISTEN")
        .collect();
    if !on_listener.is_empty() || cookies[&listen.cookie].iter().any(|e| e.new_state == "SYN_RECV") {
        problems.push(format!("the listener's cookie carries child events:\n{}", show(&cookies[&listen.cookie])));
    }
    for &port in &client.local_ports {
        let all_births: Vec<&SockEvent> = events
            .iter()
            .filter(|e| e.family == family && e.old_state == "LISTEN" && e.new_state == "SYN_RECV" && e.dport == port)
            .collect();
        for b in all_births.iter().filter(|b| b.cookie == listen.cookie || b.pid != u64::from(srv.pid)) {
            problems
                .push(format!("client port {port}: a child on its listener's cookie or not the server's: {}", b.line));
        }
        let births: Vec<&SockEvent> = all_births.iter().copied().filter(|b| !stillborn(&cookies[&b.cookie])).collect();
        let [birth] = births.as_slice() else {
            problems.push(format!("client port {port}: expected one LISTEN -> SYN_RECV, got:\n{}", show(&all_births)));
            continue;
        };
        if (birth.saddr.as_str(), birth.sport, birth.daddr.as_str()) != (lo, sp, lo) {
            problems.push(format!(
                "client port {port}: the child's birth should be {lo}:{sp} <- {lo}:{port}: {}",
                birth.line
            ));
        }
        if birth.cookie == listen.cookie {
            problems.push(format!("client port {port}: the child's birth has its listener's cookie: {}", birth.line));
        }
        let mine = &cookies[&birth.cookie];
        if mine.first().map(|e| e.line.as_str()) != Some(birth.line.as_str()) {
            problems.push(format!("client port {port}: the birth is not the child's first event:\n{}", show(mine)));
        }
        let accepts = mine.iter().filter(|e| e.event == "accept").count();
        if accepts != 1 {
            problems.push(format!("client port {port}: expected one `accept` on the child's cookie:\n{}", show(mine)));
        }
        for e in mine {
            let owner = owner_of(e);
            // `process` from the server's own close() on (CLOSE_WAIT -> LAST_ACK).
            if e.pid != u64::from(srv.pid) || !["listener", "accept", "process"].contains(&owner.as_str()) {
                problems.push(format!("client port {port}: not owned by the server (owner {owner}): {}", e.line));
            }
        }
    }
    problems.assert_none(&context);
}

fn owner_of(e: &SockEvent) -> String {
    let v: serde_json::Value = serde_json::from_str(&e.line).expect("JSON line");
    v["owner"].as_str().unwrap_or_default().to_owned()
}
