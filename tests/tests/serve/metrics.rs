//! The scrape against connections the test made and `ss`.

use std::collections::BTreeMap;
use std::time::Duration;

use netwatch_tests::{ss, wait, Peer};

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
    let ns = super::setup_in("metrics");
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

    // Both ends of every connection are our process name's, nothing else is.
    let lbl = listener.to_string();
    let inode = ns.arg();
    let ours = |state| [("listener", lbl.as_str()), ("netns", inode.as_str()), ("state", state)];
    wait::until("the held connections in the scrape", Duration::from_secs(10), || {
        let m = serve.scrape();
        let (procs, held) = (
            m.get("netwatch_process_connections", &[("process", &name)]),
            m.get("netwatch_listener_connections", &ours("ESTABLISHED")),
        );
        let want = (Some((2 * HELD) as f64), Some(HELD as f64));
        wait::check((procs, held) == want, || format!("{name}'s connections {procs:?}, {lbl}'s {held:?}"))
    });

    // Move some to other states: the client closes one first (CLOSE_WAIT
    // on our listener's side) and resets another (gone at once).
    assert_eq!(client.close(conns[0].local), 1);
    assert_eq!(client.reset(conns[2].local), 1);

    // ss first shows the test's CLOSE_WAIT, then netwatch must agree with it.
    wait::until(
        &format!("netwatch_listener_connections for {lbl} to be what ss shows"),
        Duration::from_secs(10),
        || {
            let want = ss_states(listener.port());
            let got: BTreeMap<String, f64> = serve
                .scrape()
                .all("netwatch_listener_connections")
                .into_iter()
                .filter(|(l, v)| l.get("listener") == Some(&lbl) && l.get("netns") == Some(&inode) && *v > 0.0)
                .map(|(l, v)| (l["state"].clone(), v))
                .collect();
            let made = want.get("CLOSE_WAIT") == Some(&1.0);
            wait::check(made && got == want, || format!("ss {want:?} (the test made one CLOSE_WAIT), netwatch {got:?}"))
        },
    );

    // Counters only grow, by at least what the test did.
    let (refused, _) =
        Peer::refuse(format!("127.0.0.1:{}", netwatch_tests::free_port([127, 0, 0, 1].into())).parse().unwrap());
    assert!(refused > 0);
    let after = wait::until("the refused connect in the scrape", Duration::from_secs(10), || {
        let m = serve.scrape();
        let failed =
            m.value("netwatch_connect_failures_total", &[]) - before.value("netwatch_connect_failures_total", &[]);
        wait::check(failed >= 1.0, || format!("{failed} more failed connects")).map(|()| m)
    });
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
    // Both ends of the held connections (less the two the test closed): a
    // client end's row comes with its `established` event, which on a slow
    // guest may still be on its way when the refused connect has arrived.
    wait::until("both ends of the held connections in netwatch_sockets", Duration::from_secs(10), || {
        let n = serve.scrape().value("netwatch_sockets", &[("proto", "tcp"), ("state", "ESTABLISHED")]);
        wait::check(n >= (2 * HELD - 2) as f64, || format!("{n} ESTABLISHED rows, want at least {}", 2 * HELD - 2))
    });
    assert!(after.value("netwatch_ring_drain_events_count", &[]) >= 1.0);
    for kind in ["syn_backlog", "new_listener", "suspicious_ports"] {
        assert_eq!(after.value("netwatch_alerts_total", &[("kind", kind)]), 0.0);
    }
    // The endpoint answers more than /metrics sensibly.
    assert!(http_get(serve.metrics, "/").contains("/metrics"));
    drop((client, server));
    serve.nw.stop_with(libc::SIGTERM);
}

/// With room for one socket in the traffic map, two UDP sockets of the
/// test's own, 100 datagrams from one to the other: whichever end found
/// no row (at least one) had 100 packets, all in the uncounted series, and
/// stderr says once that the map is full.
#[test]
fn a_full_traffic_map_counts_its_uncounted_packets() {
    let _ns = super::setup_in("traffic-full");
    let dir = TempDir::new("traffic-full");
    let serve = Serve::start_with_env(&config(&dir, &only_alerts(&[])), &[], &[("NETWATCH_TRAFFIC_SOCKETS", "1")]);
    let uncounted = || serve.scrape().get("netwatch_traffic_uncounted_packets_total", &[]).unwrap_or(0.0);
    let (a, b) = (bound_udp(), bound_udp());
    const DATAGRAMS: usize = 100;
    for _ in 0..DATAGRAMS {
        a.send_to(&[7; 100], b.local_addr().unwrap()).expect("sending a datagram");
        b.recv(&mut [0; 200]).expect("receiving a datagram");
    }
    wait::until("the uncounted packets in the scrape", Duration::from_secs(10), || {
        let n = uncounted();
        wait::check(n >= DATAGRAMS as f64, || format!("{n} uncounted packets"))
    });
    serve.wait_stderr(Duration::from_secs(5), "saying the map is full", |l| {
        l.contains("netwatch: warning: the traffic map is full (1 sockets)")
    });
    let warned = serve.nw.stderr_lines().iter().filter(|l| l.contains("the traffic map is full")).count();
    assert_eq!(warned, 1, "said once");
}

fn bound_udp() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket")
}
