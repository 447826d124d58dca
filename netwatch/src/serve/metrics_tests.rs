use netwatch_common::tcp;

use super::*;
use crate::{
    seed::SeedSocket,
    serve::alerts::tests::{sock, table as seeded},
};

fn table() -> Table {
    let mut s = vec![
        sock(tcp::LISTEN, "0.0.0.0:8080", "0.0.0.0:0", Some((10, "web"))),
        sock(tcp::LISTEN, "127.0.0.1:22", "0.0.0.0:0", Some((11, "sshd"))),
        sock(tcp::ESTABLISHED, "127.0.0.1:22", "127.0.0.1:5000", Some((11, "sshd"))),
        sock(tcp::TIME_WAIT, "127.0.0.1:8080", "127.0.0.1:5001", None),
        SeedSocket { proto: Proto::Udp, ..sock(tcp::CLOSE, "0.0.0.0:53", "0.0.0.0:0", Some((12, "dns"))) },
        SeedSocket { proto: Proto::Udp, ..sock(tcp::ESTABLISHED, "127.0.0.1:4000", "127.0.0.1:53", Some((13, "dig"))) },
    ];
    for i in 0..3 {
        s.push(sock(tcp::ESTABLISHED, "127.0.0.1:8080", &format!("127.0.0.9:{}", 6000 + i), Some((10, "web"))));
        s.push(sock(tcp::SYN_RECV, "127.0.0.1:8080", &format!("127.0.0.2:{}", 7000 + i), None));
    }
    seeded(s)
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
}

#[test]
fn scrape_reflects_the_table_with_bounded_labels() {
    let t = table();
    let mut m = Metrics::new(1, 1);
    m.drained(40);
    m.drained(3);
    let text = m.scrape(&t, Errors { file: 2, syslog: 0 });
    has(&text, r#"netwatch_sockets{proto="tcp",state="ESTABLISHED"} 4"#);
    has(&text, r#"netwatch_sockets{proto="tcp",state="SYN_RECV"} 3"#);
    has(&text, r#"netwatch_sockets{proto="tcp",state="CLOSE_WAIT"} 0"#);
    has(&text, r#"netwatch_sockets{proto="udp",state="UNCONN"} 1"#);
    has(&text, r#"netwatch_sockets{proto="udp",state="ESTABLISHED"} 1"#);
    has(&text, r#"netwatch_listeners{proto="tcp"} 2"#);
    has(&text, "netwatch_table_rows 12");
    // Top 1 process by open connections, the rest as `other`.
    has(&text, r#"netwatch_process_connections{process="web"} 3"#);
    has(&text, r#"netwatch_process_connections{process="other"} 1"#);
    // Top 1 listener: 8080 (3 ESTABLISHED, 3 SYN_RECV, 1 TIME_WAIT); 22 is `other`.
    has(&text, r#"netwatch_listener_connections{listener="0.0.0.0:8080",netns="7",state="SYN_RECV"} 3"#);
    has(&text, r#"netwatch_listener_connections{listener="0.0.0.0:8080",netns="7",state="TIME_WAIT"} 1"#);
    has(&text, r#"netwatch_listener_connections{listener="other",netns="",state="ESTABLISHED"} 1"#);
    has(&text, r#"netwatch_export_errors_total{output="file",reason="write"} 2"#);
    has(&text, "netwatch_ring_drain_max_events 40");
    has(&text, r#"netwatch_alerts_total{kind="syn_backlog"} 0"#);
    assert!(text.ends_with("# EOF\n"));
    // The drain maximum is per scrape.
    has(&m.scrape(&t, Errors::default()), "netwatch_ring_drain_max_events 0");
}

#[test]
fn counters_follow_the_totals() {
    let mut t = table();
    let m = Metrics::new(10, 10);
    t.totals.resets = 5;
    t.totals.opened_active = 7;
    has(&m.scrape(&t, Errors::default()), "netwatch_resets_total 5");
    t.totals.resets = 9;
    let text = m.scrape(&t, Errors::default());
    has(&text, "netwatch_resets_total 9");
    has(&text, r#"netwatch_connections_opened_total{proto="tcp",direction="active"} 7"#);
}

/// Payload per process name and direction, from the kernel's per-socket
/// counters, top N by bytes and the rest as `other`.
#[test]
fn traffic_per_process_top_n() {
    let mut rows = vec![
        sock(tcp::ESTABLISHED, "127.0.0.1:8080", "127.0.0.9:6000", Some((10, "web"))),
        sock(tcp::ESTABLISHED, "127.0.0.1:22", "127.0.0.1:5000", Some((11, "sshd"))),
        sock(tcp::ESTABLISHED, "127.0.0.1:4000", "127.0.0.1:53", Some((13, "dig"))),
    ];
    for (i, r) in rows.iter_mut().enumerate() {
        r.cookie = Some(100 + i as u64);
    }
    let mut t = seeded(rows);
    let bytes = |tx: u64, rx: u64| netwatch_common::Traffic {
        tx_bytes: tx,
        rx_bytes: rx,
        tx_packets: tx / 1000,
        rx_packets: rx / 1000,
        ..Default::default()
    };
    t.update_traffic(&[(100, bytes(5_000_000, 20_000)), (101, bytes(3_000, 1_000)), (102, bytes(2_000, 4_000))], 2);
    let text = Metrics::new(1, 1).scrape(&t, Errors::default());
    has(&text, r#"netwatch_process_traffic_bytes{process="web",direction="tx"} 5000000"#);
    has(&text, r#"netwatch_process_traffic_bytes{process="web",direction="rx"} 20000"#);
    has(&text, r#"netwatch_process_traffic_bytes{process="other",direction="tx"} 5000"#);
    has(&text, r#"netwatch_process_traffic_bytes{process="other",direction="rx"} 5000"#);
    has(&text, r#"netwatch_process_traffic_packets{process="web",direction="tx"} 5000"#);
    assert!(!text.contains("sshd"), "beyond the top 1, names are summed:\n{text}");
}

/// The per-process series carry the owner's unit and container where it
/// has them; one name in two units is two series; `other` has neither.
#[test]
fn process_series_carry_unit_and_container_labels() {
    let mut s: Vec<_> = (0..3)
        .map(|i| sock(tcp::ESTABLISHED, "127.0.0.1:8080", &format!("127.0.0.9:{}", 6000 + i), Some((10, "web"))))
        .collect();
    s.push(sock(tcp::ESTABLISHED, "127.0.0.1:8081", "127.0.0.9:7000", Some((20, "web"))));
    s.push(sock(tcp::ESTABLISHED, "127.0.0.1:22", "127.0.0.9:7001", Some((11, "sshd"))));
    let t = seeded(s);
    let labels = |pid: u32| match pid {
        10 => vec![("unit", "web.service".to_owned())],
        20 => vec![("unit", "libpod-x.scope".to_owned()), ("container", "web1".to_owned())],
        _ => Vec::new(),
    };
    let top = top_processes(&t, 2, labels);
    assert_eq!(
        top,
        vec![
            (("web".to_owned(), vec![("unit", "web.service".to_owned())]), 3),
            (("sshd".to_owned(), Vec::new()), 1),
            ((OTHER.to_owned(), Vec::new()), 1),
        ]
    );
    // How the labels are written: after `process`, only those present.
    let m = Metrics::new(10, 10);
    m.processes.get_or_create(&Process { process: "web".into(), workload: labels(20) }).set(1);
    m.processes.get_or_create(&Process { process: "sshd".into(), workload: labels(11) }).set(1);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
    has(&out, r#"netwatch_process_connections{process="web",unit="libpod-x.scope",container="web1"} 1"#);
    has(&out, r#"netwatch_process_connections{process="sshd"} 1"#);
}

/// Per-port listen drops follow each listener's counter by cookie: a new
/// listener adds all it has, one seen before adds its growth, one gone
/// (or replaced on the same port) takes nothing away.
#[test]
fn listen_drops_count_each_listeners_growth_by_port() {
    use crate::serve::listen_drops::Sample;
    let s = |cookie, port: u16, drops| Sample {
        netns: 7,
        local: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        cookie,
        drops,
    };
    let m = Metrics::new(10, 10);
    m.listen_drops(&[s(1, 8080, 4), s(2, 22, 0)]);
    m.listen_drops(&[s(1, 8080, 6), s(2, 22, 0)]);
    // 8080's listener replaced: the new one starts from its own 1.
    m.listen_drops(&[s(3, 8080, 1)]);
    let text = m.scrape(&Table::new(0), Errors::default());
    has(&text, r#"netwatch_listen_drops_total{port="8080"} 7"#);
    has(&text, r#"netwatch_listen_drops_total{port="22"} 0"#);
}

/// The DNS health series follow the address-to-name map: answers taken
/// in, and answers the kernel lost to a full ring.
#[test]
fn dns_answers_and_losses_follow_the_names_map() {
    let mut t = table();
    let m = Metrics::new(10, 10);
    has(&m.scrape(&t, Errors::default()), "netwatch_dns_lost_total 0");
    t.hosts.answers = 4;
    t.hosts.lost = 3;
    let text = m.scrape(&t, Errors::default());
    has(&text, "netwatch_dns_answers_total 4");
    has(&text, "netwatch_dns_lost_total 3");
    t.hosts.lost = 10;
    has(&m.scrape(&t, Errors::default()), "netwatch_dns_lost_total 10");
}

/// Each closing socket's drops per reason add to that reason's series;
/// events without totals add nothing, whatever their record holds.
#[test]
fn packet_drops_add_up_per_reason_from_closes() {
    use netwatch_common::EventKind;
    let m = Metrics::new(10, 10);
    let with = |kind, drops, slots, counts| {
        let mut e = crate::output::json::tests::event();
        e.kind = kind;
        (e.traffic.drops, e.traffic.drop_slots, e.traffic.drop_counts) = (drops, slots, counts);
        e
    };
    m.observe(&with(EventKind::Close, 3, 9999 | (9998 << 16), [1, 2, 0]));
    m.observe(&with(EventKind::UdpClose, 5, 9998, [4, 0, 0]));
    m.observe(&with(EventKind::State, 7, 9998, [7, 0, 0]));
    let text = m.scrape(&Table::new(0), Errors::default());
    has(&text, r#"netwatch_packet_drops_total{reason="9999"} 1"#);
    has(&text, r#"netwatch_packet_drops_total{reason="9998"} 6"#);
    has(&text, r#"netwatch_packet_drops_total{reason="other"} 1"#);
}
