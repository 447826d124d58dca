//! `--port`, `--pid`, `-4` and `-6` keep exactly the matching events.

use std::net::SocketAddr;

use netwatch_tests::conn::show;
use netwatch_tests::event::sock_events;
use netwatch_tests::netns;
use netwatch_tests::{free_port, wait, Netwatch, Peer, SockEvent, Stopped};

const PER_SERVER: u64 = 20;

/// Runs `PER_SERVER` connections to each address, then waits for the servers.
fn traffic(servers: &mut [(Peer, SocketAddr)]) {
    for (_, addr) in servers.iter() {
        Peer::client(*addr, PER_SERVER, 1);
    }
    for (peer, _) in servers.iter_mut() {
        peer.wait_success(std::time::Duration::from_secs(20));
    }
}

fn server(bind: &str) -> (Peer, SocketAddr, u32) {
    let (peer, info) = Peer::server(bind, Some(PER_SERVER));
    (peer, info.addr, info.pid)
}

fn events_of(stopped: &Stopped) -> Vec<SockEvent> {
    sock_events(&stopped.events())
}

fn count(events: &[SockEvent], pred: impl Fn(&SockEvent) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

fn assert_all(events: &[SockEvent], what: &str, pred: impl Fn(&SockEvent) -> bool) {
    let wrong: Vec<&SockEvent> = events.iter().filter(|e| !pred(e)).collect();
    assert!(wrong.is_empty(), "{} event(s) that are not {what} got through the filter:\n{}", wrong.len(), show(&wrong));
}

#[test]
fn filters_filter_by_port() {
    let ns = super::setup_in("port");
    let port = free_port("127.0.0.1".parse().expect("ip"));
    let nw = super::events_in(&ns, &["--port", &port.to_string()]);
    let (matched, addr, _) = server(&format!("127.0.0.1:{port}"));
    let (other, other_addr, _) = server("127.0.0.1:0");
    traffic(&mut [(matched, addr), (other, other_addr)]);
    let stopped = nw.stop();
    let events = events_of(&stopped);

    assert_all(&events, &format!("on port {port}"), |e| e.sport == port || e.dport == port);
    let n = PER_SERVER as usize;
    let connects = count(&events, |e| e.event == "connect" && e.dport == port);
    let accepts = count(&events, |e| e.event == "accept" && e.sport == port);
    let listens = count(&events, |e| e.event == "listen" && e.sport == port);
    assert!(
        connects == n && accepts == n && listens == 1,
        "--port {port}: expected {n} connects, {n} accepts, 1 listen; got {connects}, {accepts}, {listens}:\n{}",
        show(&events.iter().collect::<Vec<_>>())
    );
    // The exit summary counts what was printed, not the other server's
    // connections too.
    let summary = (stopped.counter("events"), stopped.counter("connects"), stopped.counter("accepts"));
    assert_eq!(summary, (events.len() as u64, n as u64, n as u64), "summary (events, connects, accepts)");
}

/// Destroy events (a socket freed) only with `--teardown`: the kernel only
/// makes them when asked (they are two of every connection's twelve runs).
#[test]
fn teardown_shows_every_freed_socket_and_only_when_asked() {
    let ns = super::setup_in("teardown");
    let port = free_port("127.0.0.1".parse().expect("ip"));
    let with = super::events_in(&ns, &["--teardown", "--port", &port.to_string()]);
    let without = super::events_in(&ns, &["--port", &port.to_string()]);
    let (matched, addr, _) = server(&format!("127.0.0.1:{port}"));
    traffic(&mut [(matched, addr)]);
    let n = PER_SERVER as usize;
    // The listener goes when its server exits, a moment later.
    let destroys = |l: &String| l.contains(r#""event":"destroy""#);
    wait::until("every socket's destroy event", std::time::Duration::from_secs(10), || {
        let seen = with.lines().iter().filter(|l| destroys(l)).count();
        wait::check(seen == 2 * n + 1, || format!("{seen} destroy events"))
    });
    let (with, without) = (events_of(&with.stop()), events_of(&without.stop()));

    let destroyed = count(&with, |e| e.event == "destroy");
    // Both ends of every connection, and the listener.
    assert_eq!(destroyed, 2 * n + 1, "with --teardown:\n{}", show(&with.iter().collect::<Vec<_>>()));
    assert_all(&with, "destroy on CLOSE", |e| {
        e.event != "destroy" || (e.old_state == "CLOSE" && e.new_state == "CLOSE")
    });
    assert_eq!(count(&without, |e| e.event == "destroy"), 0);
    // Everything else is the same stream.
    assert_eq!(with.len() - destroyed, without.len());
}

#[test]
fn filters_filter_by_pid() {
    let ns = super::setup_in("pid");
    let (matched, addr, pid) = server("127.0.0.1:0");
    let (other, other_addr, _) = server("127.0.0.1:0");
    let nw = super::events_in(&ns, &["--pid", &pid.to_string()]);
    traffic(&mut [(matched, addr), (other, other_addr)]);
    let events = events_of(&nw.stop());

    assert_all(&events, &format!("owned by pid {pid}"), |e| e.pid == u64::from(pid));
    let n = PER_SERVER as usize;
    let accepts = count(&events, |e| e.event == "accept" && e.sport == addr.port());
    // Connections only: the listener's own LISTEN -> CLOSE at exit is
    // owned by the same process but is not one of them.
    let closes = count(&events, |e| e.event == "close" && e.sport == addr.port() && e.old_state != "LISTEN");
    assert!(
        accepts == n && closes == n,
        "--pid {pid}: expected {n} accepts and {n} closes on port {}; got {accepts}, {closes}:\n{}",
        addr.port(),
        show(&events.iter().collect::<Vec<_>>())
    );
}

#[test]
fn filters_filter_ipv6_only() {
    family_filter("-6", "IPv6");
}

#[test]
fn filters_filter_ipv4_only() {
    family_filter("-4", "IPv4");
}

fn family_filter(flag: &str, family: &str) {
    let ns = super::setup_in("family");
    let nw = super::events_in(&ns, &[flag]);
    let (v4, v4_addr, _) = server("127.0.0.1:0");
    let (v6, v6_addr, _) = server("[::1]:0");
    traffic(&mut [(v4, v4_addr), (v6, v6_addr)]);
    let events = events_of(&nw.stop());

    assert_all(&events, family, |e| e.family == family);
    let kept = if family == "IPv6" { v6_addr } else { v4_addr };
    let n = PER_SERVER as usize;
    let connects = count(&events, |e| e.event == "connect" && e.dport == kept.port());
    let accepts = count(&events, |e| e.event == "accept" && e.sport == kept.port());
    assert!(
        connects == n && accepts == n,
        "{flag}: expected {n} connects and accepts for {kept}; got {connects}, {accepts}:\n{}",
        show(&events.iter().collect::<Vec<_>>())
    );
}

/// `--netns` keeps the events of one namespace, named as `ip netns` names
/// it: the same server and client run in one namespace of the test's and
/// in another (where the test itself is), on the same port, and only the namespace's connections are printed,
/// each with its process. A name that does not exist is an error.
#[test]
fn filters_filter_by_netns() {
    use netwatch_tests::netns::TestNetns;
    use netwatch_tests::{netwatch_bin, nw_peer_bin};
    super::setup();
    let out = std::process::Command::new(netwatch_bin())
        .args(["events", "--netns", "nwtest-no-such-namespace"])
        .output()
        .expect("running netwatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "--netns of a missing namespace exited 0; stderr:\n{stderr}");
    assert!(stderr.contains("nwtest-no-such-namespace"), "expected the name in the error; stderr:\n{stderr}");

    let _outer = netns::own("evnetns-outer");
    let ns = TestNetns::plain("evnetns");
    let nw = Netwatch::start(&["events", "--json", "--netns", ns.name()]);
    let peer_in_ns = |args: &[&str]| Peer::spawn_program(ns.command(&nw_peer_bin().to_string_lossy(), &[]), args);
    let per_server = PER_SERVER.to_string();
    let mut inner = peer_in_ns(&["server", "--addr", "127.0.0.1:0", "--count", &per_server]);
    let announced = inner.json_line(std::time::Duration::from_secs(10));
    let addr: SocketAddr = announced["addr"].as_str().and_then(|a| a.parse().ok()).expect("server address");
    let inner_pid = u64::from(inner.pid());
    let (outer, outer_addr, _) = server(&addr.to_string());
    let mut client = peer_in_ns(&["client", "--to", &addr.to_string(), "--count", &per_server, "--hold-ms", "1"]);
    client.wait_success(std::time::Duration::from_secs(30));
    let client_pid = u64::from(client.pid());
    traffic(&mut [(outer, outer_addr)]);
    inner.wait_success(std::time::Duration::from_secs(20));
    let stopped = nw.stop();
    let events = events_of(&stopped);

    let inode = ns.inode();
    assert_all(&events, &format!("in netns {inode}"), |e| e.netns == inode);
    let n = PER_SERVER as usize;
    let connects = count(&events, |e| e.event == "connect" && e.dport == addr.port() && e.pid == client_pid);
    let accepts = count(&events, |e| e.event == "accept" && e.sport == addr.port() && e.pid == inner_pid);
    assert!(
        connects == n && accepts == n,
        "--netns {}: expected {n} connects by {client_pid} and {n} accepts by {inner_pid}; got {connects}, {accepts}:\n{}",
        ns.name(),
        show(&events.iter().collect::<Vec<_>>())
    );
}

/// A filter expression as trailing words (docs/filters.md): only the
/// clients' `established` events to the matched server get through.
#[test]
fn expression_keeps_only_what_it_says() {
    let ns = super::setup_in("expr");
    let port = free_port("127.0.0.1".parse().expect("ip"));
    let dport = format!(":{port}");
    let nw = super::events_in(
        &ns,
        &["state", "established", "and", "(", "dport", "=", &dport, "or", "dport", "=", ":1", ")"],
    );
    let (matched, addr, _) = server(&format!("127.0.0.1:{port}"));
    let (other, other_addr, _) = server("127.0.0.1:0");
    traffic(&mut [(matched, addr), (other, other_addr)]);
    let events = events_of(&nw.stop());
    assert_all(&events, &format!("ESTABLISHED with dport {port}"), |e| e.new_state == "ESTABLISHED" && e.dport == port);
    let n = PER_SERVER as usize;
    assert_eq!(count(&events, |e| e.event == "established"), n, "{}", show(&events.iter().collect::<Vec<_>>()));
}
