//! A forced loss: netwatch stopped (SIGSTOP) while connection churn fills a
//! 1 MiB ring, then let go. Every event that found the ring full is
//! reported, in `lost` lines and in the exit summary, the sockets are
//! re-read, and the stream goes on afterwards.

use std::time::Duration;

use netwatch_tests::event::{parse_all, sock_events, Parsed};
use netwatch_tests::held::Held;
use netwatch_tests::{wait, Peer};
use serde_json::Value;

/// A record is 168 bytes plus the ring's 8-byte header: 1 MiB holds about
/// 6,000 events, some 600 connections of ten transitions each. A second of
/// unpaced churn makes several times that even on a loaded machine.
const CHURN_SECONDS: &str = "1";

#[test]
fn full_ring_is_reported_as_lost_and_the_stream_goes_on() {
    let ns = super::setup_in("loss");
    let inode = ns.inode();
    let nw = super::events_in(&ns, &["--ring-size", "1"]);
    nw.signal(libc::SIGSTOP);
    let mut churn = Peer::spawn(&["churn", "--seconds", CHURN_SECONDS]);
    churn.wait_success(Duration::from_secs(30));
    let connections = churn.json_line(Duration::from_secs(5))["connections"].as_u64().expect("churn's connections");
    // A connection made while the ring is still full: its listen, connect
    // and accept are lost, so only the re-read after the loss can name
    // its owner on the events to come.
    let mut holder = Held::hold(&["--listen", "127.0.0.1:0"]);
    let held_port = holder.listeners()[0].port();
    holder.connect(holder.listeners()[0]);
    nw.signal(libc::SIGCONT);
    // The loss is reported after the drain that emptied the ring.
    wait::until("a `lost` line after SIGCONT", Duration::from_secs(10), || {
        let lines = nw.lines();
        wait::check(lines.iter().any(|l| l.contains(r#""event":"lost""#)), || {
            format!("{} lines, the last {:?}", lines.len(), lines.last())
        })
    });

    // After the loss: one more connection, whose events must all arrive.
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(1));
    let client = Peer::client(srv.addr, 1, 1);
    server.wait_success(Duration::from_secs(10));
    // Printed after the `lost` line, so after the re-read that follows it.
    wait::until("the connection made after the loss", Duration::from_secs(10), || {
        let accepted =
            nw.lines().iter().any(|l| l.contains(r#""event":"accept""#) && l.contains(&srv.addr.port().to_string()));
        wait::check(accepted, || "no accept yet".to_owned())
    });
    assert_eq!(holder.close(held_port), 2, "both ends of the held connection");
    let held = |e: &&netwatch_tests::event::SockEvent| e.sport == held_port || e.dport == held_port;
    wait::until("the held connection's close", Duration::from_secs(10), || {
        let closed = sock_events(&parse_all(&nw.lines())).iter().filter(held).any(|e| e.event == "close");
        wait::check(closed, || "no close yet".to_owned())
    });
    let stopped = nw.stop();

    let parsed = stopped.events();
    let lost: Vec<(u64, u64, u64)> =
        stopped.lines.iter().filter(|l| l.contains(r#""event":"lost""#)).map(|l| lost_fields(l)).collect();
    assert!(
        !lost.is_empty(),
        "no `lost` line after {connections} connections into a stopped netwatch's 1 MiB ring; summary {:?}",
        stopped.summary
    );
    for &(count, ring_full, skipped) in &lost {
        assert_eq!(count, ring_full + skipped, "a lost line's count is the sum of its causes: {lost:?}");
    }
    let sum: u64 = lost.iter().map(|l| l.0).sum();
    let ring_full: u64 = lost.iter().map(|l| l.1).sum();
    assert_eq!(
        parsed.iter().filter(|p| matches!(p, Parsed::Lost { .. })).count(),
        lost.len(),
        "every lost line parses as one"
    );
    assert!(ring_full > 0, "lost lines without a ring_full count: {lost:?}");
    assert_eq!(stopped.counter("lost"), sum, "the summary's lost vs the sum of the lost lines {lost:?}");
    let reason = format!("netwatch: {sum} events were lost: {ring_full} found the ring buffer full");
    assert!(
        stopped.stderr.iter().any(|l| l.starts_with(&reason)),
        "no `{reason}...` line on stderr:\n{}",
        stopped.stderr.join("\n")
    );

    // Each churn connection closes two sockets: any close not printed must
    // be among the lost (which also count other namespaces' events).
    let events = sock_events(&parsed);
    let closes = events
        .iter()
        .filter(|e| e.netns == inode && e.event == "close" && e.old_state != "LISTEN" && e.dport != srv.addr.port())
        .filter(|e| e.sport != srv.addr.port())
        .filter(|e| !held(e))
        .count() as u64;
    assert!(
        closes <= 2 * connections && 2 * connections - closes <= sum,
        "{connections} churn connections: {closes} closes printed, {sum} events lost; the rest vanished uncounted"
    );
    let after: Vec<(&str, u64)> = events
        .iter()
        .filter(|e| e.netns == inode && (e.dport == srv.addr.port() || e.sport == srv.addr.port()))
        .filter(|e| matches!(e.event.as_str(), "listen" | "connect" | "accept"))
        .map(|e| (e.event.as_str(), e.pid))
        .collect();
    let (s, c) = (u64::from(srv.pid), u64::from(client.pid));
    assert_eq!(after, [("listen", s), ("connect", c), ("accept", s)], "the connection made after the loss");
    let held: Vec<(&str, u64)> = events.iter().filter(held).map(|e| (e.event.as_str(), e.pid)).collect();
    assert!(!held.is_empty(), "no event of the connection held across the loss");
    let h = u64::from(holder.pid());
    assert!(held.iter().all(|&(_, pid)| pid == h), "owners of the connection held across the loss (pid {h}): {held:?}");
}

/// `(count, ring_full, skipped)` of a `lost` line.
fn lost_fields(line: &str) -> (u64, u64, u64) {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("lost line is not JSON ({e}): {line}"));
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no numeric `{k}` in {line}"));
    (n("count"), n("ring_full"), n("skipped"))
}
