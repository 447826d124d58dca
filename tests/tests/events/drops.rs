//! Packets the kernel dropped, on the connection they belonged to, with the
//! reason (issue 18): a netfilter rule of the test's own namespace drops
//! exactly one segment of an established connection, and its close event
//! says so, as the rule's own counter does; a UDP socket that lost
//! datagrams for two reasons has each counted apart.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn nft(script: &str) -> String {
    let out = Command::new("nft").arg(script).output().unwrap_or_else(|e| panic!("running nft {script:?}: {e}"));
    assert!(out.status.success(), "nft {script:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `counter packets N` in an `nft list` text.
fn counted(listing: &str) -> u64 {
    let after = listing.split("counter packets ").nth(1).unwrap_or_else(|| panic!("no counter in:\n{listing}"));
    after.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("bad counter in:\n{listing}"))
}

/// Before Linux 5.17 (no drop reason in `skb:kfree_skb`) netwatch counts
/// no drops: it says so once on stderr, and no event carries a drop field.
/// Returns whether that is the case here (then the test is done).
fn uncounted_here(stopped: &netwatch_tests::Stopped, events: &[Value]) -> bool {
    if netwatch_tests::drops::reasons_traced() {
        return false;
    }
    let notes = stopped.stderr.iter().filter(|l| l.contains(netwatch_tests::drops::NOT_COUNTED_NOTE)).count();
    assert_eq!(notes, 1, "said once: {:?}", stopped.stderr);
    let with = |k: &str| events.iter().filter(|e| e.get(k).is_some()).count();
    assert_eq!((with("drops"), with("drop_reason"), with("drops_by_reason")), (0, 0, 0), "{events:?}");
    true
}

#[test]
fn a_dropped_segment_is_counted_on_its_connection_with_the_reason() {
    let ns = super::setup_in("drops-nft");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let nw = super::events_in(&ns, &[]);
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    let sport = client.local_addr().expect("addr").port();
    // Once established: the first segment towards the listener is dropped
    // at the output hook (a one-packet burst, then nothing more matches),
    // and TCP sends it again a moment later.
    nft(&format!(
        "add table inet nw_drops; add chain inet nw_drops out {{ type filter hook output priority 0; }}; \
         add rule inet nw_drops out tcp dport {port} limit rate 1/minute burst 1 packets counter drop"
    ));
    client.write_all(b"hello").expect("write");
    server.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut got = [0u8; 5];
    server.read_exact(&mut got).expect("the segment, sent again");
    assert_eq!(&got, b"hello");
    let dropped = counted(&nft("list table inet nw_drops"));
    nft("delete table inet nw_drops");
    assert_eq!(dropped, 1, "the rule dropped one packet");
    drop(client);
    drop(server);
    let stopped = nw.stop();
    let events: Vec<Value> = stopped.lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if uncounted_here(&stopped, &events) {
        return;
    }
    let closes: Vec<&Value> = events.iter().filter(|e| e["event"] == "close" && e["dport"] != 0).collect();
    let by_sport = |p: u16| {
        let found: Vec<&&Value> = closes.iter().filter(|e| e["sport"] == p).collect();
        let [e] = found.as_slice() else { panic!("expected one close from port {p}, got {found:?}; all: {closes:?}") };
        **e
    };
    let c = by_sport(sport);
    assert_eq!(c["drops"], dropped, "{c}");
    assert_eq!(c["drop_reason"], "NETFILTER_DROP", "{c}");
    assert_eq!(c["drops_by_reason"], serde_json::json!({"NETFILTER_DROP": dropped}), "{c}");
    assert_eq!(c["pid"], std::process::id(), "{c}");
    // The accepted side lost nothing: neither field appears.
    let s = by_sport(port);
    assert!(s.get("drops").is_none() && s.get("drop_reason").is_none() && s.get("drops_by_reason").is_none(), "{s}");
}

#[test]
fn each_reason_is_counted_apart_on_one_socket() {
    let ns = super::setup_in("drops-two");
    // A UDP socket's totals, drops with them, need the per-packet counters.
    let nw = super::events_in(&ns, &["--traffic"]);
    let lost = netwatch_tests::drops::TwoReasons::new();
    let port = lost.port();
    drop(lost.a);
    drop(lost.b);
    let stopped = nw.stop();
    let events: Vec<Value> = stopped.lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if uncounted_here(&stopped, &events) {
        return;
    }
    let found: Vec<&Value> = events.iter().filter(|e| e["event"] == "udp_close" && e["sport"] == port).collect();
    let [c] = found.as_slice() else { panic!("expected one udp_close from port {port}: {events:?}") };
    // Before Linux 6.11 the tracepoint does not name the socket of a drop
    // on arrival, and netwatch says so once: then only the first reason.
    let notes: Vec<&String> = stopped.stderr.iter().filter(|l| l.contains("rx_sk")).collect();
    assert_eq!(notes.is_empty(), netwatch_tests::drops::rx_sk_named(), "{:?}", stopped.stderr);
    if notes.is_empty() {
        assert_eq!(c["drops"], 1 + lost.rcvbuf, "{c}");
        assert_eq!(
            c["drops_by_reason"],
            serde_json::json!({"NETFILTER_DROP": 1, "SOCKET_RCVBUFF": lost.rcvbuf}),
            "{c}"
        );
        assert_eq!(c["drop_reason"], "SOCKET_RCVBUFF", "the last one: {c}");
    } else {
        assert_eq!(notes.len(), 1, "said once: {:?}", stopped.stderr);
        assert_eq!(c["drops"], 1, "{c}");
        assert_eq!(c["drops_by_reason"], serde_json::json!({"NETFILTER_DROP": 1}), "{c}");
        assert_eq!(c["drop_reason"], "NETFILTER_DROP", "{c}");
    }
    assert_eq!(c["pid"], std::process::id(), "{c}");
}

/// The side that closes first ends in TIME_WAIT, and the peer's FIN it got
/// meanwhile stays in its receive queue until the kernel tears the socket
/// down and frees the queue as a drop (`QUEUE_PURGE`). That comes after the
/// teardown freed the socket's `TRAFFIC` row and its close event carried
/// its totals: counting it must not make a new row, which nothing would
/// ever free (one per connection: under churn the map filled in seconds,
/// and every read of it slowed down). Either side closing first, every
/// connection's sockets leave the map once their close events are out.
#[test]
fn a_torn_down_connection_leaves_no_row_behind() {
    use netwatch_tests::bpf;
    let ns = super::setup_in("drops-rows");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let nw = super::events_in(&ns, &[]);
    let map = bpf::map_of(nw.pid(), netwatch_common::names::MAP_TRAFFIC).expect("netwatch holds its traffic map");
    const EACH: usize = 10;
    for server_first in [true, false] {
        for _ in 0..EACH {
            let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (mut server, _) = listener.accept().expect("accept");
            client.write_all(b"x").expect("write");
            let mut got = [0u8; 1];
            server.read_exact(&mut got).expect("read");
            // The second to close reads the first one's FIN before it does.
            let (first, mut second) = if server_first { (server, client) } else { (client, server) };
            drop(first);
            second.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            assert_eq!(second.read(&mut got).expect("read the FIN"), 0, "end of stream");
            drop(second);
        }
    }
    // Both sides' close events, then the rows: freed at the teardown that
    // follows each close at once (the last ACK, or TIME_WAIT's start).
    let cookies = netwatch_tests::wait::until("every connection's two close events", Duration::from_secs(10), || {
        let closes: Vec<Value> = nw
            .lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "close" && (e["sport"] == port || e["dport"] == port) && e["dport"] != 0)
            .collect();
        let cookies: std::collections::BTreeSet<u64> = closes.iter().filter_map(|e| e["cookie"].as_u64()).collect();
        if cookies.len() == 4 * EACH {
            Ok(cookies)
        } else {
            Err(format!("{} closes: {closes:?}", closes.len()))
        }
    });
    netwatch_tests::wait::until("no row left for the connections' sockets", Duration::from_secs(5), || {
        let left: Vec<u64> = bpf::map_keys(map)
            .iter()
            .map(|k| u64::from_le_bytes(k.as_slice().try_into().expect("an 8-byte key")))
            .filter(|k| cookies.contains(k))
            .collect();
        netwatch_tests::wait::check(left.is_empty(), || format!("{} rows left: {left:?}", left.len()))
    });
    let stopped = nw.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
}
