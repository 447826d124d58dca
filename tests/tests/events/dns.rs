//! Names on events from DNS answers (issue 18, "who is that?"): a DNS
//! server of the test's own (tests/dns_server.py) answers made-up names in
//! the test's namespace; a client resolves one through glibc, run with
//! `ip netns exec`, which bind-mounts the namespace's own resolv.conf
//! (/etc/netns/NAME/resolv.conf) over /etc/resolv.conf, then connects to
//! the answered address, where the test listens. Every event of that
//! connection must carry the name the client asked for (`rhost`).
//!
//! The client is Python's `getaddrinfo` (glibc's, through nsswitch's
//! `dns`), not `getent ahosts`: getent asks with AI_ADDRCONFIG, which
//! answers nothing in a namespace that has only loopback addresses.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// The DNS server, and the namespace's resolv.conf pointing at it; both
/// gone on drop.
struct Dns {
    child: Child,
    dir: PathBuf,
}

impl Dns {
    /// `nameserver`: 127.0.0.1 or ::1 (the server answers on both).
    fn start(ns: &netwatch_tests::netns::Own, nameserver: &str, zone: &Value) -> Self {
        let dns = Self::serve(ns, zone);
        dns.resolv_conf(nameserver, "");
        dns
    }

    /// The server alone: [`Dns::resolv_conf`] points the namespace at it.
    fn serve(ns: &netwatch_tests::netns::Own, zone: &Value) -> Self {
        let dir = PathBuf::from("/etc/netns").join(ns.name());
        std::fs::create_dir_all(&dir).expect("creating /etc/netns/NAME");
        // Spawned from this thread, so in the test's namespace.
        let mut child = Command::new("python3")
            .args([concat!(env!("CARGO_MANIFEST_DIR"), "/dns_server.py"), &zone.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the test DNS server");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut first).expect("server's ready line");
        assert!(first.starts_with("ready"), "DNS server said {first:?}");
        Self { child, dir }
    }

    /// Points the namespace's resolver at `nameserver`, with resolv.conf
    /// `options` besides one try with a short timeout (a missing answer
    /// fails fast). Read by each `ip netns exec` that follows.
    fn resolv_conf(&self, nameserver: &str, options: &str) {
        std::fs::write(
            self.dir.join("resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:2 attempts:1 {options}\n"),
        )
        .expect("writing the namespace's resolv.conf");
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const CLIENT: &str = r#"
import socket, sys, time
name, family, port, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
f = socket.AF_INET if family == "4" else socket.AF_INET6
addr = socket.getaddrinfo(name, port, f, socket.SOCK_STREAM)[0][4]
time.sleep(delay)
c = socket.create_connection(addr[:2])
print(addr[0], flush=True)
c.recv(1)
c.close()
"#;

/// Runs the client in the namespace: resolves `name`, waits `delay`
/// seconds, connects to `port` on the answer; the test's `listener`
/// accepts and closes. Returns the client's pid and the address it got.
fn resolve_and_connect(
    ns: &netwatch_tests::netns::Own,
    listener: &TcpListener,
    name: &str,
    family: &str,
    delay: &str,
) -> (u32, String) {
    let port = listener.local_addr().expect("addr").port().to_string();
    // `ip` execs python: the child's pid is the client's.
    let mut client = Command::new("ip")
        .args(["netns", "exec", ns.name(), "python3", "-c", CLIENT, name, family, &port, delay])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the client");
    let pid = client.id();
    let (server, _) = listener.accept().expect("accepting the client");
    drop(server); // the client's recv sees EOF and it closes too
    let mut out = String::new();
    client.stdout.take().expect("piped").read_to_string(&mut out).expect("client output");
    let status = client.wait().expect("client exit");
    assert!(status.success(), "the client failed to resolve {name} or connect");
    (pid, out.trim().to_owned())
}

fn json_events(stopped: &netwatch_tests::Stopped) -> Vec<Value> {
    stopped.lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
}

/// Every event of the connection `pid` made to `port`, found by its
/// `connect` event's cookie; at least its connect, establishment and close.
fn connection(events: &[Value], pid: u32, port: u16) -> Vec<&Value> {
    let connect = events
        .iter()
        .find(|e| e["event"] == "connect" && e["pid"] == pid && e["dport"] == port)
        .unwrap_or_else(|| panic!("no connect by {pid} to port {port} in:\n{}", show(events.iter())));
    let all: Vec<&Value> = events.iter().filter(|e| e["cookie"] == connect["cookie"]).collect();
    for kind in ["connect", "established", "close"] {
        assert!(
            all.iter().any(|e| e["event"] == kind),
            "no {kind} of the connection in:\n{}",
            show(all.iter().copied())
        );
    }
    all
}

fn show<'a>(events: impl Iterator<Item = &'a Value>) -> String {
    events.map(Value::to_string).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_event_of_the_clients_connection_carries_the_name_it_resolved() {
    let ns = super::setup_in("dns-a");
    let zone = json!({"web.nwtest.internal": [["A", 300, "127.0.0.77"]]});
    let _dns = Dns::start(&ns, "127.0.0.1", &zone);
    let listener = TcpListener::bind("127.0.0.77:0").expect("listening on 127.0.0.77");
    let port = listener.local_addr().expect("addr").port();
    let nw = super::events_in(&ns, &[]);
    let (pid, got) = resolve_and_connect(&ns, &listener, "Web.NWTest.internal", "4", "0");
    assert_eq!(got, "127.0.0.77");
    let events = json_events(&nw.stop());
    for e in connection(&events, pid, port) {
        // The name as asked (DNS names compare without case: lower case).
        assert_eq!(e["rhost"], "web.nwtest.internal", "{e}");
        assert_eq!(e["daddr"], "127.0.0.77", "{e}");
    }
    // The resolver's own socket talks to an address nobody resolved.
    let udp: Vec<&Value> = events.iter().filter(|e| e["event"] == "udp_close" && e["dport"] == 53).collect();
    assert!(udp.iter().all(|e| e.get("rhost").is_none()), "{}", show(udp.into_iter()));
}

#[test]
fn a_cname_chain_over_an_ipv6_resolver_names_the_queried_name() {
    let ns = super::setup_in("dns-v6");
    let out = Command::new("ip")
        .args(["-n", ns.name(), "addr", "add", "fd00::77/128", "dev", "lo", "nodad"])
        .output()
        .expect("ip addr add");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let zone = json!({
        "api.nwtest.internal": [["CNAME", 60, "edge.cdn.nwtest.internal"]],
        "edge.cdn.nwtest.internal": [["CNAME", 60, "node7.nwtest.internal"]],
        "node7.nwtest.internal": [["AAAA", 60, "fd00::77"]],
    });
    let _dns = Dns::start(&ns, "::1", &zone);
    let listener = TcpListener::bind("[fd00::77]:0").expect("listening on fd00::77");
    let port = listener.local_addr().expect("addr").port();
    let nw = super::events_in(&ns, &[]);
    let (pid, got) = resolve_and_connect(&ns, &listener, "api.nwtest.internal", "6", "0");
    assert_eq!(got, "fd00::77");
    let events = json_events(&nw.stop());
    for e in connection(&events, pid, port) {
        assert_eq!(e["rhost"], "api.nwtest.internal", "{e}");
        assert_eq!((e["family"].as_str(), e["daddr"].as_str()), (Some("IPv6"), Some("fd00::77")), "{e}");
    }
}

/// An answer names connections for its TTL plus one second (so a TTL-0
/// answer still names the connection made right after it), never later.
#[test]
fn an_expired_answer_names_nothing() {
    let ns = super::setup_in("dns-ttl");
    let zone = json!({
        "now.nwtest.internal": [["A", 0, "127.0.0.78"]],
        "later.nwtest.internal": [["A", 0, "127.0.0.79"]],
    });
    let _dns = Dns::start(&ns, "127.0.0.1", &zone);
    let at_once = TcpListener::bind("127.0.0.78:0").expect("listen");
    let late = TcpListener::bind("127.0.0.79:0").expect("listen");
    let nw = super::events_in(&ns, &[]);
    let (pid_now, _) = resolve_and_connect(&ns, &at_once, "now.nwtest.internal", "4", "0");
    let (pid_late, _) = resolve_and_connect(&ns, &late, "later.nwtest.internal", "4", "2.5");
    let events = json_events(&nw.stop());
    for e in connection(&events, pid_now, at_once.local_addr().unwrap().port()) {
        assert_eq!(e["rhost"], "now.nwtest.internal", "{e}");
    }
    for e in connection(&events, pid_late, late.local_addr().unwrap().port()) {
        assert!(e.get("rhost").is_none(), "named after its TTL: {e}");
    }
}

/// `snapshot --for` names a connection it watched being resolved and made
/// (the same map, kept by the same live model).
#[test]
fn snapshot_for_names_the_connection_in_its_row() {
    use netwatch_tests::snapshot::Watch;

    let ns = super::setup_in("dns-snap");
    let zone = json!({"snap.nwtest.internal": [["A", 300, "127.0.0.80"]]});
    let _dns = Dns::start(&ns, "127.0.0.1", &zone);
    let listener = TcpListener::bind("127.0.0.80:0").expect("listening on 127.0.0.80");
    let port = listener.local_addr().expect("addr").port();
    // Stretched in a guest: there the client's start alone can take longer.
    let watch = Watch::start(netwatch_tests::wait::scaled(std::time::Duration::from_secs(4)));
    let mut client = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "python3",
            "-c",
            CLIENT,
            "snap.nwtest.internal",
            "4",
            &port.to_string(),
            "0",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting the client");
    // Held open until the snapshot is printed.
    let (server, _) = listener.accept().expect("accepting the client");
    let snapshot = watch.finish();
    drop(server);
    assert!(client.wait().expect("client exit").success(), "the client failed");
    let row = snapshot
        .sockets
        .iter()
        .find(|s| s.netns == ns.inode() && s.dport == port && s.state == "ESTABLISHED")
        .unwrap_or_else(|| panic!("no client row to port {port}"));
    let v: Value = serde_json::from_str(&row.json).expect("row JSON");
    assert_eq!(v["rhost"], "snap.nwtest.internal", "{v}");
}

/// DNS over TCP: with `options use-vc` glibc asks over TCP only, and the
/// test's server answers each query in one segment (length prefix and
/// message in one write). Every event of the connection that follows
/// carries the name, over an IPv4 and an IPv6 resolver; the resolver's own
/// TCP connections to port 53 show the answers came that way, and no UDP
/// socket of the clients talked to port 53.
#[test]
fn answers_over_tcp_name_the_connection_that_follows() {
    let ns = super::setup_in("dns-tcp");
    let out = Command::new("ip")
        .args(["-n", ns.name(), "addr", "add", "fd00::81/128", "dev", "lo", "nodad"])
        .output()
        .expect("ip addr add");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let zone = json!({
        "tcp4.nwtest.internal": [["A", 300, "127.0.0.81"]],
        "tcp6.nwtest.internal": [["CNAME", 300, "node81.nwtest.internal"]],
        "node81.nwtest.internal": [["AAAA", 300, "fd00::81"]],
    });
    let dns = Dns::serve(&ns, &zone);
    let v4 = TcpListener::bind("127.0.0.81:0").expect("listening on 127.0.0.81");
    let v6 = TcpListener::bind("[fd00::81]:0").expect("listening on fd00::81");
    let nw = super::events_in(&ns, &[]);
    dns.resolv_conf("127.0.0.1", "use-vc");
    let (pid4, got4) = resolve_and_connect(&ns, &v4, "tcp4.nwtest.internal", "4", "0");
    dns.resolv_conf("::1", "use-vc");
    let (pid6, got6) = resolve_and_connect(&ns, &v6, "tcp6.nwtest.internal", "6", "0");
    assert_eq!((got4.as_str(), got6.as_str()), ("127.0.0.81", "fd00::81"));
    let events = json_events(&nw.stop());
    for (pid, listener, name, resolver) in
        [(pid4, &v4, "tcp4.nwtest.internal", "127.0.0.1"), (pid6, &v6, "tcp6.nwtest.internal", "::1")]
    {
        let port = listener.local_addr().expect("addr").port();
        let addr = listener.local_addr().expect("addr").ip().to_string();
        for e in connection(&events, pid, port) {
            assert_eq!(e["rhost"], name, "{e}");
            assert_eq!(e["daddr"], addr.as_str(), "{e}");
        }
        // The question went over TCP: the client's connection to port 53.
        let asked = connection(&events, pid, 53);
        assert!(asked.iter().all(|e| e["daddr"] == resolver), "{}", show(asked.into_iter()));
        let udp: Vec<&Value> =
            events.iter().filter(|e| e["event"] == "udp_close" && e["dport"] == 53 && e["pid"] == pid).collect();
        assert!(udp.is_empty(), "the client asked over UDP too: {}", show(udp.into_iter()));
    }
}

/// Answers the kernel cannot hand over are counted, and `events` says so
/// on stderr: netwatch is stopped (SIGSTOP) while a burst of answers
/// arrives, more than its DNS ring holds, then let go.
#[test]
fn answers_finding_the_ring_full_are_counted_and_said() {
    /// The answers sent; the 1 MiB ring holds 1,927 of 544 bytes (a 536
    /// byte record and the ring's 8-byte header), so at least the rest
    /// are lost.
    const SENT: u64 = 5_000;
    const HELD: u64 = (1 << 20) / 544;
    const BURST: &str = r#"
import socket, struct, sys
n = int(sys.argv[1])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.bind(("127.0.0.1", 53))
q = b"\x04burst\x07nwtest\x08internal\x00\x00\x01\x00\x01"
a = struct.pack(">HHHHHH", 1, 0x8180, 1, 1, 0, 0) + q + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04\x7f\x00\x00\x52"
for i in range(n):
    tx.sendto(a, rx.getsockname())
"#;
    let ns = super::setup_in("dns-lost");
    let nw = super::events_in(&ns, &[]);
    nw.signal(libc::SIGSTOP);
    // In the test's namespace, as spawned from this thread.
    let status = Command::new("python3").args(["-c", BURST, &SENT.to_string()]).status().expect("running the burst");
    assert!(status.success(), "the burst of answers failed");
    nw.signal(libc::SIGCONT);
    let said = |lines: &[String]| -> u64 {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("netwatch: warning: ")?.strip_suffix(SAID)?.parse::<u64>().ok())
            .sum()
    };
    netwatch_tests::wait::until("a warning of lost DNS answers", std::time::Duration::from_secs(10), || {
        let lost = said(&nw.stderr_lines());
        netwatch_tests::wait::check(lost > 0, || format!("stderr: {:?}", nw.stderr_lines()))
    });
    let stopped = nw.stop();
    let lost = said(&stopped.stderr);
    assert!(
        (SENT - HELD..=SENT).contains(&lost),
        "{SENT} answers into a stopped netwatch's ring of {HELD}: {lost} said lost; stderr:\n{}",
        stopped.stderr.join("\n")
    );
}

/// The end of `events`' warning, after the count.
const SAID: &str =
    " DNS answers lost: the kernel's DNS ring buffer was full, so connections to the addresses they named \
                    carry no rhost";
