use std::time::{Duration, Instant};

use netwatch_common::tcp;

use super::*;
use crate::{
    seed::{Proto, SeedSocket},
    serve::{config, listen_drops::Sample},
};

/// A TCP socket (the metrics tests' too).
pub(crate) fn sock(state: u8, local: &str, remote: &str, owner: Option<(u32, &str)>) -> SeedSocket {
    let s = SeedSocket::fixture(TcpState::from_u8(state).expect("a TCP state"), local, remote);
    match owner {
        Some((pid, comm)) => s.owned_by(pid, comm),
        None => s,
    }
}

pub(crate) fn table(socks: Vec<SeedSocket>) -> Table {
    let mut t = Table::new(0);
    t.seed(socks, 1);
    t
}

/// A listener on 0.0.0.0:8080 of pid 10 with `n` half-open connections,
/// plus a listener elsewhere with one.
fn flood(n: u16) -> Table {
    let mut s = vec![
        sock(tcp::LISTEN, "0.0.0.0:8080", "0.0.0.0:0", Some((10, "web"))),
        sock(tcp::LISTEN, "127.0.0.1:22", "0.0.0.0:0", Some((11, "sshd"))),
        sock(tcp::SYN_RECV, "127.0.0.1:22", "127.0.0.9:1000", None),
    ];
    s.extend((0..n).map(|i| sock(tcp::SYN_RECV, "127.0.0.1:8080", &format!("127.0.0.2:{}", 40000 + i), None)));
    table(s)
}

fn only(cfg: impl FnOnce(&mut config::Alerts)) -> config::Alerts {
    let mut c = config::Alerts::default();
    for kind in AlertKind::ALL {
        c.rule_mut(kind).enabled = false;
    }
    cfg(&mut c);
    c
}

#[test]
fn syn_backlog_names_the_listener_and_its_process() {
    let cfg = only(|c| c.syn_backlog = Rule { enabled: true, threshold: 5, window: Duration::from_secs(10) });
    let mut e = Engine::new(cfg, None);
    let t0 = Instant::now();
    let fired = e.evaluate(&flood(6), t0);
    assert_eq!(fired.len(), 1, "{fired:?}");
    let a = &fired[0];
    assert_eq!((a.alert.name(), a.state, a.value, a.pid, a.comm.as_str()), ("syn_backlog", "firing", 6, 10, "web"));
    assert_eq!(a.key, "7/0.0.0.0:8080");
    assert!(a.message.contains("0.0.0.0:8080") && a.message.contains("pid 10 (web)"), "{}", a.message);
    assert_eq!(a.sockets[0].state, "LISTEN");
    assert_eq!(a.sockets.len(), 1 + rules::SAMPLE);
    // Holding: quiet until the window passes, then said again.
    assert!(e.evaluate(&flood(7), t0 + Duration::from_secs(1)).is_empty());
    assert_eq!(e.evaluate(&flood(7), t0 + Duration::from_secs(11))[0].value, 7);
    let cleared = e.evaluate(&flood(2), t0 + Duration::from_secs(12));
    assert_eq!((cleared.len(), cleared[0].state), (1, "cleared"));
    assert!(e.evaluate(&flood(2), t0 + Duration::from_secs(13)).is_empty());
}

#[test]
fn suspicious_ports_from_table_and_events() {
    let cfg = only(|c| {
        c.suspicious_ports.enabled = true;
        c.ports = [4444].into();
    });
    let mut e = Engine::new(cfg, None);
    let t = table(vec![sock(tcp::ESTABLISHED, "127.0.0.1:50000", "127.0.0.1:4444", Some((12, "nc")))]);
    let a = e.evaluate(&t, Instant::now());
    assert_eq!((a.len(), a[0].key.as_str(), a[0].pid, a[0].sockets[0].dport), (1, "4444", 12, 4444));
    let empty = table(Vec::new());
    assert_eq!(e.evaluate(&empty, Instant::now())[0].state, "cleared");
}

#[test]
fn new_listener_against_baseline() {
    let baseline = [ListenerKey::new(Proto::Tcp, "127.0.0.1:22".parse().unwrap())].into();
    let cfg = only(|c| c.new_listener.enabled = true);
    let mut e = Engine::new(cfg, Some(baseline));
    let a = e.evaluate(&flood(0), Instant::now());
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0].key.as_str(), a[0].pid), ("7/0.0.0.0:8080", 10));
}

#[test]
fn new_listener_spares_the_agents_own_metrics_endpoint() {
    let baseline = [ListenerKey::new(Proto::Tcp, "127.0.0.1:22".parse().unwrap())].into();
    let t = table(vec![
        sock(tcp::LISTEN, "127.0.0.1:22", "0.0.0.0:0", Some((11, "sshd"))),
        sock(tcp::LISTEN, "127.0.0.1:9977", "0.0.0.0:0", Some((42, "netwatch"))),
        sock(tcp::LISTEN, "127.0.0.1:4000", "0.0.0.0:0", Some((43, "nc"))),
    ]);
    let found = rules::new_listeners(&t, &baseline, 42);
    let keys: Vec<&str> = found.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["7/127.0.0.1:4000"]);
}

#[test]
fn remote_and_total_connections() {
    let cfg = only(|c| {
        c.remote_connections = Rule { enabled: true, threshold: 3, window: Duration::from_secs(60) };
        c.total_connections = Rule { enabled: true, threshold: 4, window: Duration::from_secs(60) };
    });
    let mut e = Engine::new(cfg, None);
    let mut s: Vec<SeedSocket> = (0..3)
        .map(|i| sock(tcp::ESTABLISHED, &format!("127.0.0.1:{}", 5000 + i), "127.0.0.5:80", Some((20, "curl"))))
        .collect();
    s.push(sock(tcp::ESTABLISHED, "127.0.0.1:6000", "127.0.0.6:80", Some((21, "wget"))));
    let a = e.evaluate(&table(s), Instant::now());
    let got: Vec<(&str, &str, u64, u32)> = a.iter().map(|a| (a.alert.name(), a.key.as_str(), a.value, a.pid)).collect();
    assert_eq!(got, [("remote_connections", "127.0.0.5", 3, 20), ("total_connections", "all", 4, 20)]);
}

fn drops(cookie: u64, local: &str, drops: u64) -> Sample {
    Sample { netns: 7, local: local.parse().unwrap(), cookie, drops }
}

/// The kernel's per-listener counters: drops already there at the first
/// reading are old news; growth names its listener and owner; a listener
/// first seen later counts from 0; the alert clears when growth stops.
#[test]
fn listen_drops_names_each_listener_whose_counter_rose() {
    let cfg = only(|c| c.listen_drops = Rule { enabled: true, threshold: 2, window: Duration::from_secs(10) });
    let mut e = Engine::new(cfg, None);
    let web = SeedSocket { cookie: Some(1), ..sock(tcp::LISTEN, "0.0.0.0:8080", "0.0.0.0:0", Some((10, "web"))) };
    let t = table(vec![web]);
    let t0 = Instant::now();
    e.listener_drops(Some(vec![drops(1, "0.0.0.0:8080", 5)]));
    assert!(e.evaluate(&t, t0).is_empty(), "drops from before the first reading");
    e.listener_drops(Some(vec![drops(1, "0.0.0.0:8080", 6), drops(2, "127.0.0.1:22", 3)]));
    let fired = e.evaluate(&t, t0 + Duration::from_secs(1));
    let [a] = fired.as_slice() else { panic!("{fired:?}") };
    // 8080 rose by 1 (under the threshold), 22 was born with 3.
    assert_eq!((a.key.as_str(), a.value, a.pid), ("7/127.0.0.1:22", 3, 0));
    assert!(a.message.contains("by listener 127.0.0.1:22 (netns 7) of an unknown process"), "{}", a.message);
    assert_eq!((a.sockets[0].sport, a.sockets[0].state), (22, "LISTEN"));
    e.listener_drops(Some(vec![drops(1, "0.0.0.0:8080", 9), drops(2, "127.0.0.1:22", 3)]));
    let fired = e.evaluate(&t, t0 + Duration::from_secs(2));
    let [a] = fired.as_slice() else { panic!("{fired:?}") };
    assert_eq!((a.key.as_str(), a.value, a.pid, a.comm.as_str()), ("7/0.0.0.0:8080", 4, 10, "web"));
    assert!(a.message.contains("listener 0.0.0.0:8080 (netns 7) of pid 10 (web)"), "{}", a.message);
    // No growth for longer than the window: both clear.
    e.listener_drops(Some(vec![drops(1, "0.0.0.0:8080", 9), drops(2, "127.0.0.1:22", 3)]));
    let cleared = e.evaluate(&t, t0 + Duration::from_secs(14));
    assert_eq!(cleared.iter().filter(|a| a.state == "cleared").count(), 2, "{cleared:?}");
}
