//! Alerts on real conditions: a SYN flood in a namespace of the test's own,
//! a suspicious port, a listener absent from the baseline.

use std::time::Duration;

use netwatch_tests::held::Held;
use netwatch_tests::netns::{TestNetns, SINK};
use netwatch_tests::{free_port, netwatch_bin, wait};
use serde_json::Value;

use super::harness::{Serve, TempDir};
use super::{config, hold, only_alerts, own_peer};

const ALERT_TIMEOUT: Duration = Duration::from_secs(15);
/// SYNs sent: a few thousand, once; the flood process exits by itself.
const SYNS: u16 = 3000;

/// Alert lines of the export file that satisfy `pred`.
fn exported_alerts(path: &std::path::Path, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad export line {l:?}: {e}")))
        .filter(|v| v["event"] == "alert" && pred(v))
        .collect()
}

#[test]
fn syn_flood_fires_naming_the_listener_and_its_process() {
    // The flood needs a namespace made for it (see `TestNetns::with_syn_sink`);
    // the test, serve and its metrics port go in one of their own.
    let _own = super::setup_in("synflood");
    let dir = TempDir::new("synflood");
    let ns = TestNetns::with_syn_sink("serve");
    // Serve first: the flood comes while it runs, so the half-open
    // connections reach the table live (the agent re-reads request sockets
    // of namespaces with listeners once a second).
    // Threshold under what the flood makes: the alert must fire, once, and
    // name the listener in the namespace and the process holding it.
    let threshold = 50;
    let export = dir.path("events.jsonl");
    let cfg = config(&dir, &only_alerts(&["syn_backlog"]));
    let alert = format!("syn_backlog={threshold}/1h");
    let serve =
        Serve::start(&cfg, &["--alert", &alert, "--export-file", export.to_str().unwrap(), "--export-kinds", "alert"]);

    let peer = netwatch_tests::nw_peer_bin();
    let mut cmd =
        ns.command(peer.to_str().expect("UTF-8"), &["synflood", "--from", SINK, "--count", &SYNS.to_string()]);
    cmd.args(["--max-seconds", "60"]);
    let flood = Held::spawn(cmd);
    let addr = flood.announced["addr"].as_str().expect("addr").to_owned();
    let half_open = netwatch_tests::ss::run("-tane", Some(ns.name())).iter().filter(|s| s.state == "SYN_RECV").count();
    assert!(half_open >= 100, "the flood made only {half_open} half-open connections");

    let netns = ns.inode().to_string();
    let line = serve.wait_stderr(ALERT_TIMEOUT, "about the flood", |l| {
        l.contains("alert: syn_backlog") && l.contains(&format!("{addr} (netns {netns})"))
    });
    assert!(line.contains(&format!("pid {} (", flood.pid())), "alert does not name the flood's process: {line}");

    let key = format!("{netns}/{addr}");
    let ours = wait::until("the alert in the export file", ALERT_TIMEOUT, || {
        let ours = exported_alerts(&export, |v| v["key"] == key.as_str());
        wait::check(!ours.is_empty(), || "no line yet").map(|()| ours)
    });
    let a = &ours[0];
    assert_eq!((a["alert"].as_str(), a["state"].as_str()), (Some("syn_backlog"), Some("firing")));
    assert_eq!(a["pid"].as_u64(), Some(u64::from(flood.pid())));
    assert!(a["value"].as_u64().unwrap() >= threshold, "{a}");
    assert_eq!(a["threshold"].as_u64(), Some(threshold));
    let listener = &a["sockets"][0];
    assert_eq!(listener["state"], "LISTEN");
    assert_eq!(format!("{}:{}", listener["saddr"].as_str().unwrap(), listener["sport"]), addr);
    assert_eq!(a["sockets"][1]["state"], "SYN_RECV");
    assert_eq!(a["sockets"][1]["daddr"], SINK);
    // The flood's listener closes: its request sockets go, the alert clears.
    drop(flood);
    serve.wait_stderr(ALERT_TIMEOUT, "the flood alert cleared", |l| {
        l.contains("syn_backlog cleared") && l.contains(&format!("{addr} (netns {netns})"))
    });
    // From firing to cleared, however long the checks above took: said
    // once (a window of 1 h), not again at each evaluation.
    let firing = exported_alerts(&export, |v| v["key"] == key.as_str() && v["state"] == "firing");
    assert_eq!(firing.len(), 1, "one alert while the flood held (no re-firing each second): {firing:?}");
    serve.nw.stop_with(libc::SIGTERM);
}

#[test]
fn suspicious_port_and_new_listener() {
    let _ns = super::setup_in("listener");
    let dir = TempDir::new("listener");
    let peer = own_peer(&dir.0);
    // The baseline: every listener now.
    let baseline = dir.path("base.json");
    let out = std::process::Command::new(netwatch_bin()).args(["snapshot", "--json"]).output().expect("snapshot");
    assert!(out.status.success(), "snapshot failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&baseline, &out.stdout).expect("writing the baseline");

    let port = free_port([127, 0, 0, 1].into());
    let export = dir.path("events.jsonl");
    let cfg = config(&dir, &only_alerts(&["suspicious_ports", "new_listener"]));
    let ports = port.to_string();
    let serve = Serve::start(
        &cfg,
        &[
            "--baseline",
            baseline.to_str().unwrap(),
            "--suspicious-ports",
            &ports,
            "--export-file",
            export.to_str().unwrap(),
            "--export-kinds",
            "alert",
        ],
    );
    let addr = format!("127.0.0.1:{port}");
    let mut server = hold(&peer, &["--listen", &addr]);
    let new =
        serve.wait_stderr(ALERT_TIMEOUT, "new_listener", |l| l.contains("alert: new_listener") && l.contains(&addr));
    assert!(new.contains(&format!("pid {} (", server.pid())), "{new}");
    let client = hold(&peer, &["--connect", &addr]);
    server.accepted(1);
    let conn = client.connected()[0];
    let sus = serve.wait_stderr(ALERT_TIMEOUT, "suspicious_ports", |l| {
        l.contains("alert: suspicious_ports") && l.contains(&format!("port {port}"))
    });
    assert!(
        sus.contains(&format!("pid {} (", server.pid())) || sus.contains(&format!("pid {} (", client.pid())),
        "{sus}"
    );

    // The export file has both, with the sockets.
    let susp = wait::until("the suspicious_ports alert in the export file", ALERT_TIMEOUT, || {
        let susp = exported_alerts(&export, |v| v["alert"] == "suspicious_ports" && v["key"] == ports.as_str());
        wait::check(!susp.is_empty(), || "not there yet").map(|()| susp)
    });
    let socks = susp.last().unwrap()["sockets"].as_array().unwrap().clone();
    assert!(socks.iter().any(|s| s["sport"] == port && s["state"] == "LISTEN"), "{socks:?}");
    let newl =
        exported_alerts(&export, |v| v["alert"] == "new_listener" && v["key"].as_str().unwrap().ends_with(&addr));
    assert_eq!(newl.len(), 1, "{newl:?}");
    assert_eq!(newl[0]["pid"].as_u64(), Some(u64::from(server.pid())));

    // The connection goes, the listener goes: both clear.
    drop(client);
    drop(server);
    serve.wait_stderr(ALERT_TIMEOUT, "new_listener cleared", |l| {
        l.contains("new_listener cleared") && l.contains(&addr)
    });
    serve.wait_stderr(ALERT_TIMEOUT, "suspicious_ports cleared", |l| {
        l.contains("suspicious_ports cleared") && l.contains(&format!("port {port}"))
    });
    let _ = conn;
    serve.nw.stop_with(libc::SIGTERM);
}

/// A listener with backlog 0 that never accepts, and a few connects: the
/// kernel drops the handshakes past the first, the listener's own drop
/// counter says so, and the alert names that listener and its process.
#[test]
fn listen_drops_names_the_listener_with_a_full_queue() {
    // Serve reads TcpExt of its own namespace: the test's, where only the
    // test's listener can drop anything.
    let _ns = super::setup_in("drops");
    let dir = TempDir::new("drops");
    let port = free_port([127, 0, 0, 1].into());
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = config(&dir, &only_alerts(&["listen_drops"]));
    let serve = Serve::start(&cfg, &["--alert", "listen_drops=1/2s"]);

    // SAFETY: plain socket calls on a descriptor this test owns.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in for its size.
    let bound =
        unsafe { libc::bind(fd, std::ptr::from_ref(&sin).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t) };
    assert_eq!(bound, 0, "bind {addr}: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a bound TCP socket.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0, "listen: {}", std::io::Error::last_os_error());

    let clients: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(4))))
        .collect();
    let line = serve.wait_stderr(ALERT_TIMEOUT, "listen_drops naming the listener", |l| {
        l.contains("alert: listen_drops") && l.contains(&format!("by listener {addr} (netns "))
    });
    assert!(line.contains(&format!(") of pid {} (", std::process::id())), "{line}");
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    for c in clients {
        let _ = c.join();
    }
}
