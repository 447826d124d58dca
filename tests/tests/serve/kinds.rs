//! `--export-kinds all` exports every kind of event, as `netwatch events
//! --json` would print it: UDP's close included, which a hand-written list
//! of kinds once left out.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use netwatch_tests::Peer;
use serde_json::Value;

use super::config;
use super::harness::{Serve, TempDir};

#[test]
fn export_kinds_all_carries_every_kind_of_our_sockets() {
    super::setup();
    let dir = TempDir::new("kinds");
    let path = dir.path("events.jsonl");
    let cfg = config(&dir, &super::only_alerts(&[]));
    let serve = Serve::start(&cfg, &["--export-file", path.to_str().unwrap(), "--export-kinds", "all"]);

    // A whole TCP connection: listen, connect, established, accept, the
    // FIN states, close.
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(1));
    let client = Peer::client(srv.addr, 1, 0);
    server.wait_success(Duration::from_secs(20));
    // A refused connect, to a port that was free a moment ago.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (refuser, _) = Peer::refuse(closed);
    // A UDP socket that carried a datagram, then closed.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    udp.send_to(b"x", udp.local_addr().unwrap()).unwrap();
    drop(udp);

    let want: BTreeSet<&str> =
        ["listen", "connect", "established", "handshake", "accept", "state", "close", "connect_failed", "udp_close"]
            .into();
    let port = srv.addr.port();
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
            let kind = v["event"].as_str().unwrap_or_default().to_owned();
            let ours = match kind.as_str() {
                "udp_close" => v["sport"] == udp_port && v["pid"] == std::process::id(),
                "connect_failed" => v["dport"] == closed.port() && v["pid"] == refuser,
                _ => v["sport"] == port || (v["dport"] == port && v["pid"] == client.pid),
            };
            if ours {
                seen.insert(kind);
            }
        }
        if want.iter().all(|k| seen.contains(*k)) || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    assert!(want.is_subset(&seen), "exported kinds of our sockets: {seen:?}, missing {:?}", &want - &seen);
    serve.nw.stop_with(libc::SIGTERM);
}
