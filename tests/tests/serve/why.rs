//! The latency histograms and failure counters (issue 18) against
//! connections the test makes in its own namespace.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use netwatch_tests::wait;

use super::harness::{Serve, TempDir};
use super::{config, only_alerts};

#[test]
fn connect_latency_and_refusals_reach_the_scrape() {
    let _ns = super::setup_in("why-metrics");
    let dir = TempDir::new("why-metrics");
    let serve = Serve::start(&config(&dir, &only_alerts(&[])), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let before = serve.scrape().value("netwatch_connection_failures_total", &[("reason", "refused")]);
    const N: usize = 3;
    let held: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect();
    let refused = TcpStream::connect(("127.0.0.1", closed)).expect_err("nothing listens");
    assert_eq!(refused.raw_os_error(), Some(libc::ECONNREFUSED));
    let p = port.to_string();
    // The port label is the service's: the listener's port, for the
    // connects to it and for their passive handshakes. (Serve keeps 64
    // ports; the machine's other traffic since it started is far less.)
    wait::until("the test's connects in the scrape", Duration::from_secs(10), || {
        let m = serve.scrape();
        let connects = m.get("netwatch_connect_latency_seconds_count", &[("port", &p)]);
        let handshakes = m.get("netwatch_handshake_seconds_count", &[("port", &p)]);
        let refusals = m.value("netwatch_connection_failures_total", &[("reason", "refused")]) - before;
        wait::check(connects >= Some(N as f64) && handshakes >= Some(N as f64) && refusals >= 1.0, || {
            format!("connects {connects:?}, handshakes {handshakes:?}, refusals {refusals}")
        })
    });
    // Loopback connects of a test's own: none near the first SYN
    // retransmit (1 s), so every one is below the 0.5 s bucket's bound.
    let m = serve.scrape();
    let buckets =
        m.0.samples
            .iter()
            .find_map(|s| match &s.value {
                prometheus_parse::Value::Histogram(h)
                    if s.metric == "netwatch_connect_latency_seconds" && s.labels.get("port") == Some(&p) =>
                {
                    Some(h.clone())
                }
                _ => None,
            })
            .expect("the port's connect latency histogram");
    let count = |le: f64| buckets.iter().find(|b| b.less_than == le).map(|b| b.count);
    assert_eq!(count(0.5), count(f64::INFINITY), "a loopback connect over 0.5 s: {buckets:?}");
    drop(held);
    drop(listener);
}

/// SYNs dropped at a full accept queue: the scrape's
/// `netwatch_listen_drops_total{port}` is the listener's own counter, as
/// `ss -tlm` and TcpExt ListenDrops say it in the test's namespace, and
/// the `listen_drops` alert names that listener and its process.
#[test]
fn listen_drops_per_listener_reach_the_scrape_and_the_alert() {
    let ns = super::setup_in("why-drops");
    let dir = TempDir::new("why-drops");
    let export = dir.path("events.jsonl");
    let text = format!(
        "{}[export.file]\npath = {:?}\nkinds = [\"listen_drop\"]\n",
        only_alerts(&["listen_drops"]),
        export.to_str().expect("UTF-8")
    );
    let serve = Serve::start(&config(&dir, &text), &["--alert", "listen_drops=1/5s"]);
    let listener = netwatch_tests::drops::full_listener();
    let addr = listener.local_addr().expect("addr");
    let p = addr.port().to_string();
    // Serve has read the listener once (its series is there, at 0) before
    // the flood: the drops are growth it sees.
    wait::until("the listener's series", Duration::from_secs(10), || {
        let v = serve.scrape().get("netwatch_listen_drops_total", &[("port", &p)]);
        wait::check(v == Some(0.0), || format!("{v:?}"))
    });
    const N: usize = 4;
    let _in_queue = netwatch_tests::drops::flood(addr, N);
    let ss = netwatch_tests::drops::ss_listener_drops(ns.name(), addr.port());
    assert_eq!(ss, netwatch_tests::drops::tcpext_listen_drops(ns.name()), "ss -tlm and TcpExt disagree");
    assert!(ss >= N as u64 - 1, "{ss} drops for {} refused SYNs", N - 1);
    let line = serve.wait_stderr(Duration::from_secs(15), "listen_drops naming the listener", |l| {
        l.contains("alert: listen_drops") && l.contains(&format!("by listener {addr} (netns {})", ns.inode()))
    });
    // All of them, unless a check fell between two of the flood's connects
    // (they are microseconds apart): then the first part.
    let said: u64 = line
        .split("listen_drops: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"));
    assert!(said >= 1 && said <= ss, "the alert says {said} of {ss}: {line}");
    assert!(line.contains(&format!("of pid {} (", std::process::id())), "{line}");
    wait::until("the drops in the scrape", Duration::from_secs(10), || {
        let v = serve.scrape().get("netwatch_listen_drops_total", &[("port", &p)]);
        wait::check(v == Some(ss as f64), || format!("{v:?}, ss says {ss}"))
    });
    // The export's `listen_drop` events of the listener add up to its
    // counter, each naming it and its process.
    wait::until("listen_drop events in the export", Duration::from_secs(10), || {
        let events: Vec<serde_json::Value> = std::fs::read_to_string(&export)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad export line {l:?}: {e}")))
            .filter(|e: &serde_json::Value| e["event"] == "listen_drop" && e["sport"] == addr.port())
            .collect();
        let sum: u64 = events.iter().map(|e| e["drops"].as_u64().expect("drops")).sum();
        let named = events.iter().all(|e| e["pid"] == std::process::id() && e["netns"] == ns.inode());
        wait::check(sum == ss && named, || format!("{sum} of {ss}: {events:?}"))
    });
    drop(listener);
}
