//! Event export: the rotated JSON-lines file and RFC 5424 syslog lines.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netwatch_tests::{wait, Peer};
use serde_json::Value;

use super::config;
use super::harness::{Serve, TempDir};

/// Fields of a `netwatch events --json` line (`duration_ms` on closes).
const EVENT_FIELDS: &[&str] = &[
    "ts",
    "event",
    "pid",
    "comm",
    "uid",
    "family",
    "saddr",
    "sport",
    "daddr",
    "dport",
    "old_state",
    "new_state",
    "netns",
    "cookie",
    "owner",
];

/// Added to [`EVENT_FIELDS`] on the events that end a socket.
const TRAFFIC_FIELDS: &[&str] = &[
    "tx_bytes",
    "rx_bytes",
    "tx_packets",
    "rx_packets",
    "tx_ip_bytes",
    "rx_ip_bytes",
    "retransmits",
    "resets_sent",
    "resets_received",
];

#[test]
fn export_file_rotates_by_size_keeping_k() {
    let _ns = super::setup_in("rotate");
    let dir = TempDir::new("rotate");
    let path = dir.path("events.jsonl");
    let cfg = config(&dir, &super::only_alerts(&[]));
    let p = path.to_str().unwrap();
    let serve = Serve::start(&cfg, &["--export-file", p, "--export-max-bytes", "4000", "--export-keep", "2"]);
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(40));
    let client = Peer::client(srv.addr, 40, 0);
    server.wait_success(Duration::from_secs(20));
    let rotated = |i: usize| dir.path(&format!("events.jsonl.{i}"));
    // The server's listener closes last, when it exits.
    let last =
        format!(r#""sport":{},"daddr":"0.0.0.0","dport":0,"old_state":"LISTEN","new_state":"CLOSE""#, srv.addr.port());
    wait::until("the export of the listener's close", Duration::from_secs(10), || {
        let text: String = [path.clone(), rotated(1), rotated(2)]
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect();
        wait::check(text.contains(&last), || format!("{} bytes exported, without {last}", text.len()))
    });
    // Later lines may still come (a slow guest's last closes): the files are
    // read once they have stopped changing, never between a rotation's rename and create.
    let sizes = || [path.clone(), rotated(1), rotated(2)].map(|f| std::fs::metadata(f).map(|m| m.len()).ok());
    wait::until("the export files to stop changing", Duration::from_secs(10), || {
        let before = sizes();
        std::thread::sleep(wait::scaled(Duration::from_millis(300)));
        let after = sizes();
        wait::check(before == after && after[0].is_some(), || format!("{before:?} then {after:?}"))
    });

    assert!(rotated(1).is_file() && rotated(2).is_file(), "40 connections (~240 lines) did not rotate twice");
    assert!(!rotated(3).exists(), "keep=2, yet events.jsonl.3 exists");
    for f in [path.clone(), rotated(1), rotated(2)] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{} is {mode:o}: every user could read it", f.display());
    }
    let mut ours = BTreeSet::new();
    for f in [path.clone(), rotated(1), rotated(2)] {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.len() <= 4000, "{} is {} bytes, over the 4000 limit", f.display(), text.len());
        assert!(text.is_empty() || text.ends_with('\n'), "{} ends mid-line", f.display());
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
            let obj = v.as_object().unwrap();
            if v["event"] == "alert" || v["event"] == "lost" {
                continue;
            }
            // The optional fields are checked by the events parser.
            netwatch_tests::event::parse_line(line).unwrap_or_else(|e| panic!("not an event ({e}): {line}"));
            let optional = |k: &str| {
                ["duration_ms", "tid", "thread", "fd", "accept_queue_us"].contains(&k)
                    || netwatch_tests::event::WORKLOAD_FIELDS.contains(&k)
                    || netwatch_tests::event::WHY_FIELDS.contains(&k)
            };
            let keys: BTreeSet<&str> = obj.keys().map(String::as_str).filter(|k| !optional(k)).collect();
            let closing = netwatch_tests::event::CLOSING.contains(&v["event"].as_str().unwrap_or(""));
            let extra = if closing { TRAFFIC_FIELDS } else { &[] };
            let want: BTreeSet<&str> = EVENT_FIELDS.iter().chain(extra).copied().collect();
            assert_eq!(keys, want, "not the events --json schema: {line}");
            let port = srv.addr.port();
            if v["sport"] == port && v["pid"] == srv.pid || v["dport"] == port && v["pid"] == client.pid {
                ours.insert(v["cookie"].as_u64().unwrap());
            }
        }
    }
    // The newest files hold the last connections: at least some of ours.
    assert!(!ours.is_empty(), "no event of the test's connections is in the kept files");
    serve.nw.stop_with(libc::SIGTERM);
}

#[test]
fn syslog_lines_are_rfc5424_per_kind() {
    super::setup();
    let dir = TempDir::new("syslog");
    let sock_path = dir.path("log.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("binding our syslog socket");
    // A Unix datagram socket queues only net.unix.max_dgram_qlen lines (10
    // by default), and serve, which must not block on its log, drops what
    // does not fit. It logs every process's connects, so a burst from tests
    // running alongside can fill the queue just as ours comes: the socket is
    // drained from the start by a thread of its own, and a connection whose
    // line was dropped all the same is followed by another.
    let lines = drain(sock);
    let cfg = config(
        &dir,
        &format!(
            "[export.syslog]\nenabled = true\nsocket = {sock_path:?}\nkinds = [\"connect\"]\nfacility = \"local3\"\n{}",
            super::only_alerts(&[])
        ),
    );
    let serve = Serve::start(&cfg, &[]);
    let (_server, srv) = Peer::server("127.0.0.1:0", None);

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut kinds = BTreeSet::new();
    let mut clients = BTreeSet::new();
    let mut next_client = Instant::now();
    let found = loop {
        assert!(
            Instant::now() < deadline,
            "no syslog line for any of our {} connects; kinds seen: {kinds:?}",
            clients.len()
        );
        if Instant::now() >= next_client {
            clients.insert(Peer::client(srv.addr, 1, 0).pid);
            next_client = Instant::now() + Duration::from_secs(1);
        }
        let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) else { continue };
        // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
        let parts: Vec<&str> = line.splitn(8, ' ').collect();
        assert_eq!(parts.len(), 8, "not RFC 5424: {line}");
        kinds.insert(parts[5].to_owned());
        // local3 (19) * 8 + informational (6).
        assert_eq!(parts[0], "<158>1", "{line}");
        let ts = parts[1].as_bytes();
        assert!(ts.len() == 27 && ts[10] == b'T' && ts[26] == b'Z', "timestamp {:?} is not RFC 3339 UTC", parts[1]);
        assert_eq!((parts[3], parts[4], parts[6]), ("netwatch", serve.nw.pid().to_string().as_str(), "-"), "{line}");
        let v: Value = serde_json::from_str(parts[7]).unwrap_or_else(|e| panic!("message is not JSON: {line}: {e}"));
        assert_eq!(v["event"].as_str(), Some(parts[5]));
        let pid = v["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        if v["dport"] == srv.addr.port() && pid.is_some_and(|p| clients.contains(&p)) {
            break v;
        }
    };
    assert_eq!(found["event"], "connect");
    assert_eq!(kinds, ["connect".to_owned()].into(), "syslog carried kinds it was not asked for");
    serve.nw.stop_with(libc::SIGTERM);
}

/// Every datagram `sock` receives, as text, until the receiver is dropped.
fn drain(sock: UnixDatagram) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let line = String::from_utf8(buf[..n].to_vec()).expect("UTF-8 syslog line");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// `[export] filter` (docs/filters.md): only the events it selects reach
/// the file; the other server's connections, and every other kind of event
/// of the matched one, stay out.
#[test]
fn export_filter_keeps_only_what_it_selects() {
    let _ns = super::setup_in("export-filter");
    let dir = TempDir::new("export-filter");
    let path = dir.path("events.jsonl");
    let port = netwatch_tests::free_port("127.0.0.1".parse().unwrap());
    let text = format!("{}[export]\nfilter = \"state established and dport = :{port}\"\n", super::only_alerts(&[]));
    let cfg = config(&dir, &text);
    let serve = Serve::start(&cfg, &["--export-file", path.to_str().unwrap()]);
    let (mut matched, srv) = Peer::server(&format!("127.0.0.1:{port}"), Some(10));
    let (mut other, other_srv) = Peer::server("127.0.0.1:0", Some(10));
    Peer::client(srv.addr, 10, 0);
    Peer::client(other_srv.addr, 10, 0);
    matched.wait_success(Duration::from_secs(20));
    other.wait_success(Duration::from_secs(20));
    let events = || -> Vec<Value> {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .filter(|v| v["event"] != "alert" && v["event"] != "lost")
            .collect()
    };
    wait::until("the ten established events", Duration::from_secs(10), || {
        let n = events().iter().filter(|v| v["event"] == "established").count();
        wait::check(n >= 10, || format!("{n} of 10"))
    });
    // A moment for anything the filter would wrongly let through.
    std::thread::sleep(Duration::from_millis(500));
    let all = events();
    let wrong: Vec<&Value> = all.iter().filter(|v| v["new_state"] != "ESTABLISHED" || v["dport"] != port).collect();
    assert!(wrong.is_empty(), "exported despite the filter: {wrong:?}");
    assert_eq!(all.iter().filter(|v| v["event"] == "established").count(), 10, "{all:?}");
    drop(serve);
}
