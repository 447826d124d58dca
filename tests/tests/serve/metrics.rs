//! The scrape against connections the test made and `ss`.

use std::collections::BTreeMap;
use std::time::Duration;

use netwatch_tests::{ss, Peer};

use super::harness::{http_get, Serve, TempDir};
use super::{config, hold, only_alerts, own_peer};

/// Connections the test holds through its listener.
const HELD: usize = 6;

/// Per-state counts `ss` shows on our listener's port (listener excluded).
fn ss_states(port: u16) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in ss::run("-tanpe", None).into_iter().filter(|s| s.sport == port && s.state != "LISTEN") {
        *out.entry(s.state).or_default() += 1.0;
    }
    out
}

#[test]
fn scrape_matches_ss_for_the_tests_own_connections() {
    super::setup();
    let dir = TempDir::new("metrics");
    let peer = own_peer(&dir.0);
    let name = peer.file_name().unwrap().to_str().unwrap().to_owned();
    let cfg = config(&dir, &only_alerts(&[]));
    let serve = Serve::start(&cfg, &["--top-processes", "1000", "--top-listeners", "1000"]);
    let before = serve.scrape();

    let mut server = hold(&peer, &["--listen", "127.0.0.1:0"]);
    let listener = server.listeners()[0];
    let connects: Vec<String> = (0..HELD).flat_map(|_| ["--connect".to_owned(), listener.to_string()]).collect();
    let mut client = hold(&peer, &connects.iter().map(String::as_str).collect::<Vec<_>>());
    let conns = client.connected();
    server.accepted(HELD);
    std::thread::sleep(Duration::from_millis(300));

    // Both ends of every connection are our process name's, nothing else is.
    let m = serve.scrape();
    assert_eq!(m.value("netwatch_process_connections", &[("process", &name)]), (2 * HELD) as f64);
    let lbl = listener.to_string();
    assert_eq!(m.value("netwatch_listener_connections", &[("listener", &lbl), ("state", "ESTABLISHED")]), HELD as f64);

    // Move some to other states: the client closes one first (CLOSE_WAIT
    // on our listener's side) and resets another (gone at once).
    assert_eq!(client.close(conns[0].local.port()), 1);
    assert_eq!(client.reset(conns[2].local.port()), 1);
    std::thread::sleep(Duration::from_millis(500));

    let want = ss_states(listener.port());
    let m = serve.scrape();
    let got: BTreeMap<String, f64> = m
        .all("netwatch_listener_connections")
        .into_iter()
        .filter(|(l, v)| l.get("listener") == Some(&lbl) && *v > 0.0)
        .map(|(l, v)| (l["state"].clone(), v))
        .collect();
    assert_eq!(got, want, "netwatch_listener_connections for {lbl} vs ss");
    assert_eq!(want.get("CLOSE_WAIT"), Some(&1.0), "the test made one CLOSE_WAIT: {want:?}");

    // Counters only grow, by at least what the test did.
    let (refused, _) =
        Peer::refuse(format!("127.0.0.1:{}", netwatch_tests::free_port([127, 0, 0, 1].into())).parse().unwrap());
    assert!(refused > 0);
    std::thread::sleep(Duration::from_millis(500));
    let after = serve.scrape();
    let grew = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    let active = [("proto", "tcp"), ("direction", "active")];
    let passive = [("proto", "tcp"), ("direction", "passive")];
    assert!(grew("netwatch_connections_opened_total", &active) >= HELD as f64);
    assert!(grew("netwatch_connections_opened_total", &passive) >= HELD as f64);
    assert!(grew("netwatch_connect_failures_total", &[]) >= 1.0);
    assert!(grew("netwatch_resets_total", &[]) >= 1.0, "the reset was not counted");
    assert!(grew("netwatch_connections_closed_total", &[("proto", "tcp")]) >= 2.0);
    assert_eq!(after.value("netwatch_events_lost_total", &[]), 0.0);

    // The table's own figures agree with each other.
    let tcp: f64 = after.all("netwatch_sockets").iter().filter(|(l, _)| l["proto"] == "tcp").map(|(_, v)| v).sum();
    let udp: f64 = after.all("netwatch_sockets").iter().filter(|(l, _)| l["proto"] == "udp").map(|(_, v)| v).sum();
    assert_eq!(tcp + udp, after.value("netwatch_table_rows", &[]));
    assert_eq!(
        after.value("netwatch_sockets", &[("proto", "tcp"), ("state", "LISTEN")]),
        after.value("netwatch_listeners", &[("proto", "tcp")])
    );
    assert!(after.value("netwatch_sockets", &[("proto", "tcp"), ("state", "ESTABLISHED")]) >= (2 * HELD - 2) as f64);
    assert!(after.value("netwatch_ring_drain_events_count", &[]) >= 1.0);
    for kind in ["syn_backlog", "new_listener", "suspicious_ports"] {
        assert_eq!(after.value("netwatch_alerts_total", &[("kind", kind)]), 0.0);
    }
    // The endpoint answers more than /metrics sensibly.
    assert!(http_get(serve.metrics, "/").contains("/metrics"));
    drop((client, server));
    serve.nw.stop_with(libc::SIGTERM);
}
