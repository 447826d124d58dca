use super::*;

#[test]
fn nstrcmp_orders_like_net_tools() {
    for (a, b, want) in [
        ("eth0", "eth1", Ordering::Less),
        ("eth1", "eth20", Ordering::Less),
        ("eth20", "eth100", Ordering::Less),
        ("eth", "eth2", Ordering::Less),
        ("eth0:1", "eth0:2", Ordering::Less),
        ("eth1:10", "eth13:10", Ordering::Less),
        ("a", "a:", Ordering::Less),
        ("eth2:10", "eth2:1", Ordering::Greater),
        ("eth13:1", "eth1:0", Ordering::Greater),
        ("a1b12", "a1b2", Ordering::Greater),
        ("eth1", "eth01", Ordering::Greater),
        ("eth0", "lo", Ordering::Less),
        ("eth1", "eth1", Ordering::Equal),
    ] {
        assert_eq!(nstrcmp(a, b), want, "{a} vs {b}");
    }
}

fn lo() -> Iface {
    let (packets, bytes) = (44734699, 2510094780);
    let stats =
        DevStats { rx_packets: packets, rx_bytes: bytes, tx_packets: packets, tx_bytes: bytes, ..Default::default() };
    Iface {
        name: "lo".into(),
        flags: 73,
        mtu: 65536,
        stats: Some(stats),
        hw_type: 772,
        tx_queue_len: Some(1000),
        inet: Some([[127, 0, 0, 1], [255, 0, 0, 0], [0; 4], [0; 4]]),
        inet6: vec![("::1".parse().unwrap(), 128, 0x10)],
        ..Default::default()
    }
}

#[test]
fn short_line() {
    let mut out = Vec::new();
    print_short(&mut out, &lo());
    let want = "lo              65536 44734699      0      0 0      44734699      0      0      0 LRU\n";
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn long_form_is_ifconfig() {
    let mut out = Vec::new();
    print_long(&mut out, &lo());
    let want = "lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536
        inet 127.0.0.1  netmask 255.0.0.0
        inet6 ::1  prefixlen 128  scopeid 0x10<host>
        loop  txqueuelen 1000  (Local Loopback)
        RX packets 44734699  bytes 2510094780 (2.3 GiB)
        RX errors 0  dropped 0  overruns 0  frame 0
        TX packets 44734699  bytes 2510094780 (2.3 GiB)
        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0

";
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn sizes_use_binary_units() {
    assert_eq!(human(404392433), "385.6 MiB");
    assert_eq!(human(1128342), "1.0 MiB");
    assert_eq!(human(1000), "1000.0 B");
    assert_eq!(human(2048), "2.0 KiB");
}

#[test]
fn dev_file_parses() {
    let stats = parse_dev(include_str!("../../tests/fixtures/netstat/proc/net/dev"));
    assert!(stats.contains_key("lo") && stats.contains_key("eth0"));
}
