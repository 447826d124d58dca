//! Why connections fail and how long they took to open (issue 18): each
//! case made for real in a namespace of the test's own, checked against
//! what the kernel gives exactly (errno, retransmit counts) and, where
//! timing is involved, against the client's own clock.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("running ip {args:?}: {e}"));
    assert!(out.status.success(), "ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn json(stopped: &netwatch_tests::Stopped) -> Vec<Value> {
    stopped.lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
}

fn show(events: &[&Value]) -> String {
    events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

/// The one event of `kind` whose `key` port is `port`.
fn one<'a>(events: &'a [Value], kind: &str, key: &str, port: u16) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["event"] == kind && e[key] == port).collect();
    let [e] = found.as_slice() else {
        let all: Vec<&Value> = events.iter().collect();
        panic!("expected one `{kind}` with {key} {port}, got {}; all events:\n{}", found.len(), show(&all));
    };
    e
}

/// An unused port on 127.0.0.1 of this namespace (nothing listens there once
/// the probe listener is gone).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn refused_connect_says_refused_with_errno_once() {
    let ns = super::setup_in("why-refused");
    let port = closed_port();
    let nw = super::events_in(&ns, &[]);
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("nothing listens");
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    let events = json(&nw.stop());
    let failed = one(&events, "connect_failed", "dport", port);
    assert_eq!(failed["reason"], "refused", "{failed}");
    assert_eq!(failed["errno"], "ECONNREFUSED", "{failed}");
    assert_eq!(failed["syn_retransmits"], 0, "{failed}");
    assert_eq!(failed["pid"], std::process::id(), "{failed}");
    // The blocking connect() returned the same error: reported once, here.
    assert!(!events.iter().any(|e| e["event"] == "connect_error"), "a second report of the refusal");
}

#[test]
fn unroutable_connects_are_connect_errors_with_errno() {
    let ns = super::setup_in("why-route");
    ip(&["-n", ns.name(), "route", "add", "unreachable", "10.98.0.0/24"]);
    ip(&["-n", ns.name(), "route", "add", "prohibit", "10.97.0.0/24"]);
    let nw = super::events_in(&ns, &[]);
    // (destination, errno the kernel gives, reason, name); the namespace
    // has no default route, so 203.0.113.0/24 has none at all.
    let cases = [
        ("10.98.0.5:81", libc::EHOSTUNREACH, "unreachable", "EHOSTUNREACH"),
        ("10.97.0.5:82", libc::EACCES, "permission", "EACCES"),
        ("203.0.113.7:83", libc::ENETUNREACH, "no_route", "ENETUNREACH"),
    ];
    for (to, errno, ..) in cases {
        let to: SocketAddr = to.parse().expect("addr");
        let err = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect_err("no route");
        assert_eq!(err.raw_os_error(), Some(errno), "TCP to {to}");
    }
    let udp = UdpSocket::bind("0.0.0.0:0").expect("udp bind");
    let err = udp.connect("10.98.0.6:53").expect_err("no route");
    assert_eq!(err.raw_os_error(), Some(libc::EHOSTUNREACH));
    let events = json(&nw.stop());
    for (to, _, reason, name) in cases {
        let to: SocketAddr = to.parse().expect("addr");
        let e = one(&events, "connect_error", "dport", to.port());
        assert_eq!(
            (e["daddr"].as_str(), e["reason"].as_str(), e["errno"].as_str()),
            (Some(&*to.ip().to_string()), Some(reason), Some(name)),
            "{e}"
        );
        assert_eq!(
            (e["protocol"].as_str(), e["pid"].as_u64()),
            (Some("tcp"), Some(u64::from(std::process::id()))),
            "{e}"
        );
        assert_eq!(e["netns"], ns.inode(), "{e}");
    }
    let e = one(&events, "connect_error", "dport", 53);
    assert_eq!(
        (e["daddr"].as_str(), e["errno"].as_str(), e["protocol"].as_str()),
        (Some("10.98.0.6"), Some("EHOSTUNREACH"), Some("udp")),
        "{e}"
    );
    // None of them reached the TCP state machine.
    assert!(!events.iter().any(|e| e["event"] == "connect"), "a connect event for a call that failed first");
}

fn set_linger_zero(fd: i32) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&raw const l).cast(), size_of::<libc::linger>() as u32)
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

#[test]
fn abortive_close_is_reset_locally_here_and_reset_by_peer_there() {
    let ns = super::setup_in("why-reset");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let nw = super::events_in(&ns, &[]);
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let client_port = client.local_addr().expect("addr").port();
    let (server, _) = listener.accept().expect("accept");
    set_linger_zero(server.as_raw_fd());
    drop(server);
    let err = client.read(&mut [0; 8]).expect_err("the peer reset");
    assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
    drop(client);
    let events = json(&nw.stop());
    let closes: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "close" && e["old_state"] == "ESTABLISHED").collect();
    let here = closes.iter().find(|e| e["sport"] == port && e["dport"] == client_port);
    let there = closes.iter().find(|e| e["sport"] == client_port && e["dport"] == port);
    let (Some(here), Some(there)) = (here, there) else {
        panic!("expected both ends to close from ESTABLISHED:\n{}", show(&closes));
    };
    assert_eq!(here["reason"], "reset_locally", "{here}");
    assert!(here.get("errno").is_none(), "a local abort has no errno: {here}");
    assert_eq!(
        (there["reason"].as_str(), there["errno"].as_str()),
        (Some("reset_by_peer"), Some("ECONNRESET")),
        "{there}"
    );
    // Loopback round trips: measured, well under a second.
    for e in [here, there] {
        let srtt = e["srtt_us"].as_u64().unwrap_or_else(|| panic!("no srtt_us: {e}"));
        assert!((1..1_000_000).contains(&srtt), "{e}");
    }
}

#[test]
fn connect_into_a_full_accept_queue_waits_for_a_syn_retransmit() {
    let ns = super::setup_in("why-queue");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    // listen() again changes the backlog: 0 queues one connection, and
    // drops the next SYN while that one waits (`sk_acceptq_is_full`).
    // SAFETY: a valid listening descriptor.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let port = listener.local_addr().expect("addr").port();
    let nw = super::events_in(&ns, &[]);
    let first = TcpStream::connect(("127.0.0.1", port)).expect("first connect");
    let second = std::thread::spawn(move || {
        let start = Instant::now();
        let s = TcpStream::connect(("127.0.0.1", port)).expect("second connect");
        (s.local_addr().expect("addr").port(), start.elapsed(), s)
    });
    // Its first SYN is dropped; taking the first connection off the queue
    // lets the retransmitted one (1 s later) in.
    std::thread::sleep(Duration::from_millis(300));
    let (a, _) = listener.accept().expect("accept first");
    let (second_port, waited, _s) = second.join().expect("second client");
    let (b, _) = listener.accept().expect("accept second");
    drop((a, b, first));
    let events = json(&nw.stop());
    let slow = one(&events, "established", "sport", second_port);
    let latency = slow["connect_latency_us"].as_u64().unwrap_or_else(|| panic!("no connect_latency_us: {slow}"));
    assert!(latency >= 1_000_000, "a connect that waited for a SYN retransmit took {latency} us: {slow}");
    // The kernel's timestamps lie inside the client's own connect() call
    // (tolerance: scheduling around the call, 50 ms).
    let client_us = waited.as_micros() as u64;
    assert!(
        latency <= client_us + 50_000 && latency + 50_000 >= client_us,
        "netwatch {latency} us, the client {client_us} us"
    );
    assert_eq!(slow["syn_retransmits"], 1, "{slow}");
    let first_port = events
        .iter()
        .find(|e| e["event"] == "established" && e["dport"] == port && e["sport"] != second_port)
        .unwrap_or_else(|| panic!("no established for the first client"));
    assert!(first_port["connect_latency_us"].as_u64().is_some_and(|us| us < 1_000_000), "{first_port}");
    assert_eq!(first_port["syn_retransmits"], 0, "{first_port}");
    // The server side of the slow one: its handshake, no SYN-ACK sent again.
    // By transition, not kind: the completed passive handshake's event.
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e["old_state"] == "SYN_RECV" && e["new_state"] == "ESTABLISHED" && e["dport"] == second_port)
        .collect();
    let [child] = done.as_slice() else { panic!("expected one SYN_RECV -> ESTABLISHED:\n{}", show(&done)) };
    assert!(child["handshake_us"].as_u64().is_some(), "{child}");
    assert_eq!(child["syn_retransmits"], 0, "{child}");
}

#[test]
fn connect_to_a_silent_peer_times_out_after_its_syn_retries() {
    let ns = super::setup_in("why-timeout");
    let n = ns.name();
    // One SYN retry: gives up 3 s after the first SYN (1 s, then 2 s).
    let out = Command::new("ip")
        .args(["netns", "exec", n, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
        .output()
        .expect("sysctl");
    assert!(out.status.success(), "sysctl: {}", String::from_utf8_lossy(&out.stderr));
    // A peer that never answers: a veth whose other end drops everything
    // (frames to a made-up MAC), with a permanent neighbour so no ARP
    // failure ends the connect early.
    ip(&["-n", n, "link", "add", "nwwhy0", "type", "veth", "peer", "name", "nwwhy1"]);
    ip(&["-n", n, "addr", "add", "192.0.2.1/24", "dev", "nwwhy0"]);
    ip(&["-n", n, "link", "set", "nwwhy0", "up"]);
    ip(&["-n", n, "link", "set", "nwwhy1", "up"]);
    ip(&["-n", n, "neigh", "add", "192.0.2.9", "lladdr", "02:00:00:00:00:09", "dev", "nwwhy0", "nud", "permanent"]);
    let nw = super::events_in(&ns, &[]);
    let to = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 9), 84));
    let start = Instant::now();
    let err = TcpStream::connect(to).expect_err("nobody answers");
    let waited = start.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
    let events = json(&nw.stop());
    let failed = one(&events, "connect_failed", "dport", 84);
    assert_eq!(
        (failed["reason"].as_str(), failed["errno"].as_str()),
        (Some("timed_out"), Some("ETIMEDOUT")),
        "{failed}"
    );
    // The retransmits are the SYNs after the first: exactly what the
    // socket sent (1 or 2 with one retry: the kernel gives up by elapsed
    // time, 3 s, and the timer firing at 3 s may still send one).
    let sent = failed["tx_packets"].as_u64().expect("tx_packets");
    assert!(sent >= 2, "{failed}");
    assert_eq!(failed["syn_retransmits"].as_u64(), Some(sent - 1), "{failed}");
    assert_eq!(failed["retransmits"].as_u64(), Some(sent - 1), "{failed}");
    let ms = failed["duration_ms"].as_f64().unwrap_or_else(|| panic!("no duration_ms: {failed}"));
    // 1 s + 2 s of retransmit timeouts; within the client's own call.
    assert!(ms >= 2_900.0 && ms <= waited.as_secs_f64() * 1000.0 + 50.0, "{ms} ms, the client waited {waited:?}");
    assert!(!events.iter().any(|e| e["event"] == "connect_error"), "a second report of the timeout");
}

/// The `snapshot --json` row of the test namespace's socket on local port
/// `port` in `state`, as JSON.
fn snapshot_row(snap: &netwatch_tests::snapshot::Snapshot, netns: u64, port: u16, state: &str) -> Value {
    let rows: Vec<&netwatch_tests::snapshot::NwSocket> =
        snap.sockets.iter().filter(|s| s.netns == netns && s.sport == port && s.state == state).collect();
    let [row] = rows.as_slice() else { panic!("expected one {state} row on port {port}: {rows:?}") };
    serde_json::from_str(&row.json).expect("row JSON")
}

/// SYNs dropped at a full accept queue, counted per listener by the kernel:
/// `snapshot --json` says the listener's `drops` exactly as `ss -tlm` and
/// the namespace's TcpExt ListenDrops do (nothing else listens in the
/// test's namespace).
#[test]
fn snapshot_says_the_drops_of_a_listener_with_a_full_accept_queue() {
    let ns = super::setup_in("why-drops");
    let listener = netwatch_tests::drops::full_listener();
    let addr = listener.local_addr().expect("addr");
    const N: usize = 5;
    let _in_queue = netwatch_tests::drops::flood(addr, N);
    let ss = netwatch_tests::drops::ss_listener_drops(ns.name(), addr.port());
    let tcpext = netwatch_tests::drops::tcpext_listen_drops(ns.name());
    assert_eq!(ss, tcpext, "ss -tlm and TcpExt ListenDrops disagree");
    assert!(ss >= N as u64 - 1, "{ss} drops for {} refused SYNs", N - 1);
    let snap = netwatch_tests::snapshot::once();
    let row = snapshot_row(&snap, ns.inode(), addr.port(), "LISTEN");
    assert_eq!(row["drops"].as_u64(), Some(ss), "{row}");
}

/// `ss -tin`'s `rtt:SRTT/RTTVAR` (ms) of the connection from local port
/// `sport`, in µs.
fn ss_rtt_us(ns: &str, sport: u16) -> (f64, f64) {
    let out = Command::new("ip").args(["netns", "exec", ns, "ss", "-tinH"]).output().expect("ss -tin");
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find(&format!(":{sport} ")).unwrap_or_else(|| panic!("no socket on {sport} in ss -tin:\n{text}"));
    let rest = &text[at..];
    let rtt = &rest[rest.find(" rtt:").unwrap_or_else(|| panic!("no rtt in ss -tin:\n{text}")) + 5..];
    let rtt = &rtt[..rtt.find(' ').unwrap_or(rtt.len())];
    let (srtt, var) = rtt.split_once('/').unwrap_or_else(|| panic!("rtt:{rtt}"));
    let ms = |v: &str| v.trim().parse::<f64>().unwrap_or_else(|e| panic!("rtt {v:?}: {e}"));
    (ms(srtt) * 1000.0, ms(var) * 1000.0)
}

/// A loopback connection's live smoothed RTT in `snapshot --json`, against
/// `ss -tin` on the same idle connection: the kernel's figure does not move
/// without new ACKs, so the two agree to ss's printing precision (it
/// prints ms with `%g`: tolerance 1 µs).
#[test]
fn snapshot_says_the_live_rtt_that_ss_says() {
    let ns = super::setup_in("why-rtt");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    // A few exchanges give the RTT estimator samples beyond the handshake.
    for _ in 0..5 {
        std::io::Write::write_all(&mut client, b"ping").expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).expect("read");
        std::io::Write::write_all(&mut server, b"pong").expect("write");
        client.read_exact(&mut buf).expect("read");
    }
    // Let the delayed ACKs go out: then nothing moves until the next send.
    std::thread::sleep(Duration::from_millis(300));
    let sport = client.local_addr().expect("addr").port();
    let snap = netwatch_tests::snapshot::once();
    let (ss_srtt, ss_var) = ss_rtt_us(ns.name(), sport);
    let row = snapshot_row(&snap, ns.inode(), sport, "ESTABLISHED");
    let srtt = row["srtt_us"].as_u64().unwrap_or_else(|| panic!("no srtt_us: {row}")) as f64;
    let var = row["rttvar_us"].as_u64().unwrap_or_else(|| panic!("no rttvar_us: {row}")) as f64;
    assert!(srtt > 0.0 && srtt < 1_000_000.0, "loopback srtt {srtt} us");
    assert!((srtt - ss_srtt).abs() <= 1.0 && (var - ss_var).abs() <= 1.0, "netwatch {row}, ss {ss_srtt}/{ss_var} us");
    assert_eq!(row["total_retrans"], 0, "{row}");
    // A listener has no RTT to speak of.
    let l = snapshot_row(&snap, ns.inode(), listener.local_addr().expect("addr").port(), "LISTEN");
    assert!(l.get("srtt_us").is_none(), "{l}");
}

/// The `listen_drop` events of the listener on `port`, from `lines`.
fn listen_drops(lines: &[String], port: u16) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "listen_drop" && e["sport"] == port)
        .collect()
}

/// SYNs dropped at a full accept queue are `listen_drop` events: each names
/// the listener (address, namespace, cookie, its process), and their `drops`
/// add up to exactly what the listener's own counter (`ss -tlm`'s `d<N>`)
/// rose by while netwatch ran; what it dropped before is no event. The text
/// output says the same with a `drops=N` word.
#[test]
fn listen_drops_are_events_naming_the_listener_and_counting_exactly() {
    let ns = super::setup_in("why-ldrop");
    // A listener that dropped SYNs before netwatch started.
    let listener = netwatch_tests::drops::full_listener();
    let addr = listener.local_addr().expect("addr");
    let _in_queue = netwatch_tests::drops::flood(addr, 3);
    let before = netwatch_tests::drops::ss_listener_drops(ns.name(), addr.port());
    assert!(before >= 2, "{before} drops before start");
    let json_nw = super::events_in(&ns, &[]);
    let own = ns.arg();
    let text_nw = netwatch_tests::Netwatch::start(&["events", "--netns", &own]);
    // While it runs: the same listener again (its queue is still full, so
    // every SYN is refused; the one connect flood keeps would go on
    // retransmitting its SYN into the full queue: closed too), and one
    // opened after the start.
    drop(netwatch_tests::drops::flood(addr, 4));
    let later = netwatch_tests::drops::full_listener();
    let later_addr = later.local_addr().expect("addr");
    let _later_queue = netwatch_tests::drops::flood(later_addr, 5);
    let after = netwatch_tests::drops::ss_listener_drops(ns.name(), addr.port());
    let later_drops = netwatch_tests::drops::ss_listener_drops(ns.name(), later_addr.port());
    assert!(after >= before + 4 && later_drops >= 4, "ss: {before} -> {after}, later {later_drops}");
    let total = |events: &[Value]| events.iter().map(|e| e["drops"].as_u64().expect("drops")).sum::<u64>();
    netwatch_tests::wait::until("listen_drop events adding up to ss's counts", Duration::from_secs(10), || {
        // Read again: a SYN that a slow machine (a TCG guest) took over a
        // second to close was retransmitted into the full queue.
        let after = netwatch_tests::drops::ss_listener_drops(ns.name(), addr.port());
        let later_drops = netwatch_tests::drops::ss_listener_drops(ns.name(), later_addr.port());
        let lines = json_nw.lines();
        let (old, new) = (total(&listen_drops(&lines, addr.port())), total(&listen_drops(&lines, later_addr.port())));
        netwatch_tests::wait::check(old == after - before && new == later_drops, || {
            let said: Vec<&String> = lines.iter().filter(|l| l.contains("listen")).collect();
            format!("events say {old} and {new}, ss {} and {later_drops} (from {before}): {said:?}", after - before)
        })
    });
    let events = json(&json_nw.stop());
    let listens: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "listen" && e["sport"] == later_addr.port()).collect();
    for e in listen_drops(&events.iter().map(Value::to_string).collect::<Vec<_>>(), later_addr.port()) {
        assert_eq!(e["pid"], std::process::id(), "{e}");
        assert_eq!(e["saddr"], "127.0.0.1", "{e}");
        assert_eq!((e["daddr"].as_str(), e["dport"].as_u64()), (Some("0.0.0.0"), Some(0)), "{e}");
        assert_eq!((e["old_state"].as_str(), e["new_state"].as_str()), (Some("LISTEN"), Some("LISTEN")), "{e}");
        assert_eq!(e["netns"], ns.inode(), "{e}");
        assert!(e.get("drop_reason").is_none(), "{e}");
        // The same socket as its `listen` event.
        assert!(listens.iter().any(|l| l["cookie"] == e["cookie"]), "no listen event with the cookie of {e}");
    }
    let text = text_nw.stop();
    let said: u64 = text
        .lines
        .iter()
        .filter(|l| l.contains(" listen_drop ") && l.contains(&format!("127.0.0.1:{} ", later_addr.port())))
        .map(|l| {
            let word = l.split_whitespace().find_map(|w| w.strip_prefix("drops=")).unwrap_or_else(|| panic!("{l}"));
            word.parse::<u64>().unwrap_or_else(|e| panic!("{l}: {e}"))
        })
        .sum();
    assert_eq!(said, later_drops, "text lines:\n{}", text.lines.join("\n"));
    drop((listener, later));
}

/// A listener of another network namespace (a container's), held by a
/// process that lives there; told a count N on stdin, it makes N connects
/// to it and closes them before their first SYN retransmit (1 s), keeping
/// the first one that got into the accept queue (backlog 0: one), so later
/// SYNs are dropped.
const FLOODED_HOLDER: &str = r#"
import socket, sys, time
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(0)
port = l.getsockname()[1]
print(port, flush=True)
kept = []
for line in sys.stdin:
    clients = []
    for _ in range(int(line)):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        clients.append(c)
    time.sleep(0.3)
    if not kept:
        kept.append(clients.pop(0))
    for c in clients:
        c.close()
    print("flooded", flush=True)
"#;

/// `events` reads the drop counters of the listeners in every namespace
/// it knows a listener in, not only its own: a container's listener that
/// drops SYNs while netwatch runs (in the test's namespace) is a
/// `listen_drop` event naming it and the process that lives there, and the
/// events add up to exactly what its own counter rose by.
#[test]
fn listen_drops_of_another_namespace_are_events_too() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::process::Stdio;
    let _ns = super::setup_in("why-ldrop-own");
    let other = netwatch_tests::netns::TestNetns::plain("why-ldrop-other");
    let mut holder = other
        .command("python3", &["-c", FLOODED_HOLDER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 in the other namespace");
    let mut said = BufReader::new(holder.stdout.take().expect("stdout"));
    let mut to = holder.stdin.take().expect("stdin");
    let mut line = String::new();
    let mut next = |what: &str| {
        line.clear();
        said.read_line(&mut line).expect("the holder's stdout");
        assert!(!line.is_empty(), "the holder exited before {what}");
        line.trim().to_owned()
    };
    let port: u16 = next("its port").parse().expect("a port");
    let mut flood = |n: usize| {
        writeln!(to, "{n}").expect("the holder's stdin");
        assert_eq!(next("flooding"), "flooded");
    };
    // Drops before netwatch starts are no event.
    flood(3);
    let before = netwatch_tests::drops::ss_listener_drops(other.name(), port);
    assert!(before >= 2, "{before} drops before start");
    let nw = netwatch_tests::Netwatch::start(&["events", "--json"]);
    flood(4);
    let inode = other.inode();
    let mine = |lines: &[String]| -> Vec<Value> {
        listen_drops(lines, port).into_iter().filter(|e| e["netns"] == inode).collect()
    };
    netwatch_tests::wait::until("listen_drop events adding up to ss's count", Duration::from_secs(10), || {
        let after = netwatch_tests::drops::ss_listener_drops(other.name(), port);
        let events = mine(&nw.lines());
        let sum: u64 = events.iter().map(|e| e["drops"].as_u64().expect("drops")).sum();
        netwatch_tests::wait::check(after >= before + 4 && sum == after - before, || {
            format!("events say {sum}, ss {} (from {before}): {events:?}", after - before)
        })
    });
    let stopped = nw.stop();
    let events = mine(&stopped.lines);
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["pid"], holder.id(), "{e}");
        assert_eq!(e["comm"], "python3", "{e}");
        assert_eq!((e["saddr"].as_str(), e["sport"].as_u64()), (Some("127.0.0.1"), Some(u64::from(port))), "{e}");
    }
    let warned = stopped.stderr.iter().any(|l| l.contains(&format!("network namespace {inode}:")));
    assert!(!warned, "{}", stopped.stderr.join("\n"));
    drop(to);
    let _ = holder.wait();
}
