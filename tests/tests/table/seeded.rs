//! The table `netwatch snapshot` seeds from the kernel, against `ss`: the
//! sockets this test made (every TCP state it can hold still, UDP bound and
//! connected, two owners for shared sockets, half-open connections in a
//! namespace of its own) exactly, and the rest of the namespace as far as
//! other activity lets two `ss` reads agree.
//!
//! UDP is checked here only: netwatch has no live UDP events yet, so its
//! UDP rows are what the seed read.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use netwatch_tests::held::Held;
use netwatch_tests::netns::{own_inode, TestNetns, SINK};
use netwatch_tests::snapshot::{self, NwSocket};
use netwatch_tests::{nw_peer_bin, ss, table_diff, wait, Peer};

use super::{assert_none, expect_states, lines, states, Ours};

/// Half-open connections made in the namespace.
const HALF_OPEN: u16 = 8;
/// Attempts at the whole-namespace comparison, which other processes'
/// sockets changing in between can spoil.
const ATTEMPTS: usize = 3;

#[test]
fn seeded_table_matches_ss() {
    let _own = super::setup_in("seed-own");
    let ns = TestNetns::with_syn_sink("seed");
    let nw_peer = nw_peer_bin();
    let nw_peer = nw_peer.to_str().expect("UTF-8 path");
    let flood = Held::spawn(ns.command(nw_peer, &["synflood", "--from", SINK, "--count", &HALF_OPEN.to_string()]));

    let overflows = super::tw_overflows();
    // Listeners and UDP sockets shared with a forked child: two owners each.
    let mut server = Held::hold(&[
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "[::1]:0",
        "--udp-bind",
        "127.0.0.1:0",
        "--udp-bind",
        "[::1]:0",
        "--share",
    ]);
    let (l4, l6) = match server.listeners()[..] {
        [a, b] => (a, b),
        ref other => panic!("server announced listeners {other:?}"),
    };
    let udp_servers: Vec<SocketAddr> = server.udp().iter().map(|u| u.0).collect();
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", l4.port()).parse().expect("address");
    let mut connect_args = Vec::new();
    for to in [l4, l4, l4, l6, l6, l6, mapped] {
        connect_args.extend(["--connect".to_owned(), to.to_string()]);
    }
    for to in &udp_servers {
        connect_args.extend(["--udp-connect".to_owned(), to.to_string()]);
    }
    let mut client = Held::hold(&connect_args.iter().map(String::as_str).collect::<Vec<_>>());
    let conns = client.connected();
    server.accepted(conns.len());
    // Client closes first: FIN_WAIT2 (an orphan) here, CLOSE_WAIT there.
    assert_eq!(client.close(conns[0].local), 1);
    // Server closes first: the other way round.
    assert_eq!(server.close(conns[3].local), 1);
    // An active close that ends in TIME_WAIT, on the client's side.
    let (mut tw_server, tw_srv) = Peer::server("127.0.0.1:0", Some(2));
    Peer::client(tw_srv.addr, 2, 0);
    tw_server.wait_success(Duration::from_secs(10));
    // The last FINs and ACKs: both clients' ends in TIME_WAIT.
    wait::until("the two TIME_WAIT ends", Duration::from_secs(5), || {
        let rows = ss::run("-tanpe", None);
        let tw = rows.iter().filter(|s| s.state == "TIME_WAIT" && s.dport == tw_srv.addr.port()).count();
        wait::check(tw == 2, || format!("{tw} in TIME_WAIT"))
    });

    // The TIME_WAIT server is gone: only its clients' ends are ours.
    let mut tcp = Ours::bound("tcp", [l4, l6]);
    tcp.remote.insert(tw_srv.addr);
    let udp = Ours::bound("udp", udp_servers.iter().copied());
    let own = own_inode();

    let mut whole = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let before = ss::tcp_udp();
        let snap = snapshot::once();
        let after = ss::tcp_udp();

        for (what, rows_of) in [("TCP", &tcp), ("UDP", &udp)] {
            let (b, a) = (rows_of.ss(&before), rows_of.ss(&after));
            assert!(
                table_diff::ss_same_set(&b, &a),
                "the test's {what} sockets changed between two ss reads:\n{}---\n{}",
                lines(&b),
                lines(&a)
            );
            let nw: Vec<&NwSocket> = rows_of.nw(&snap.sockets).into_iter().filter(|n| n.netns == own).collect();
            assert_none(
                &format!("the test's {what} sockets, ss vs netwatch snapshot"),
                &table_diff::exact(&a, &nw, own),
            );
        }
        if attempt == 1 {
            let overflowed = super::tw_overflows() - overflows;
            check_built(&tcp.ss(&before), &udp.ss(&before), &server, &client, overflowed);
            check_namespace(&ns, &flood, &snap.sockets);
        }

        let own_tcp = |rows: &[ss::SsSocket]| rows.iter().filter(|s| s.proto == "tcp").cloned().collect::<Vec<_>>();
        let (b, a) = (own_tcp(&before), own_tcp(&after));
        let nw: Vec<&NwSocket> = snap.sockets.iter().filter(|n| n.proto == "tcp" && n.netns == own).collect();
        whole = table_diff::between(&b.iter().collect::<Vec<_>>(), &a.iter().collect::<Vec<_>>(), &nw);
        if whole.is_empty() {
            break;
        }
        eprintln!("attempt {attempt}: {} difference(s) in the whole TCP table, trying again", whole.len());
    }
    assert_none(&format!("our namespace's whole TCP table vs ss (in each of {ATTEMPTS} attempts)"), &whole);
}

/// The test really made what it compares: each state, and two owners
/// where the sockets are shared.
fn check_built(tcp: &[&ss::SsSocket], udp: &[&ss::SsSocket], server: &Held, client: &Held, overflowed: u64) {
    let want_tcp =
        expect_states(&[("LISTEN", 2), ("ESTABLISHED", 10), ("FIN_WAIT2", 2), ("CLOSE_WAIT", 2), ("TIME_WAIT", 2)]);
    assert_eq!(
        states(tcp),
        want_tcp,
        "ss does not show what the test built ({overflowed} TIME_WAIT table overflows meanwhile: other \
         processes' churn can leave no room for TIME_WAIT and orphaned FIN_WAIT2):\n{}",
        lines(tcp)
    );
    assert_eq!(states(udp), expect_states(&[("UNCONN", 2), ("ESTABLISHED", 2)]), "UDP:\n{}", lines(udp));
    let sharer = server.sharer().expect("--share announces the child");
    let shared: BTreeSet<u32> = [server.pid(), sharer].into();
    for s in tcp.iter().filter(|s| s.state == "LISTEN").chain(udp.iter().filter(|s| s.state == "UNCONN")) {
        let pids: BTreeSet<u32> = s.owners.iter().map(|o| o.0).collect();
        assert_eq!(pids, shared, "shared socket owners: {}", s.line);
    }
    let client_pid = client.pid();
    assert!(
        tcp.iter().any(|s| s.family == "IPv6" && s.saddr == Some("127.0.0.1".parse().expect("ip"))),
        "no IPv4-mapped connection from {client_pid}:\n{}",
        lines(tcp)
    );
}

/// The namespace's listener and half-open connections, in netwatch with
/// the namespace's inode, exactly as `ip netns exec NS ss` shows them.
fn check_namespace(ns: &TestNetns, flood: &Held, nw: &[NwSocket]) {
    let inode = ns.inode();
    let in_ns = ss::run("-tanpe", Some(ns.name()));
    let want = expect_states(&[("LISTEN", 1), ("SYN_RECV", usize::from(HALF_OPEN))]);
    let all: Vec<&ss::SsSocket> = in_ns.iter().collect();
    assert_eq!(states(&all), want, "namespace {} (synflood pid {}):\n{}", ns.name(), flood.pid(), lines(&all));
    let nw_ns: Vec<&NwSocket> = nw.iter().filter(|n| n.netns == inode).collect();
    assert_none(
        &format!("namespace {} (inode {inode}), ss vs netwatch", ns.name()),
        &table_diff::exact(&all, &nw_ns, inode),
    );
}
