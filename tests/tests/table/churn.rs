//! The live table after `--for` with heavy churn and the test's own
//! connections opening and closing meanwhile, against `ss` read right after
//! netwatch printed: the test's sockets exactly, TIME_WAIT rows included.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use netwatch_tests::held::Held;
use netwatch_tests::netns::own_inode;
use netwatch_tests::snapshot::{NwSocket, Watch};
use netwatch_tests::{ss, table_diff, wait, Peer};

use super::{assert_none, states, Ours};

const WATCH: Duration = Duration::from_secs(10);
const CHURN_SECONDS: &str = "4";
const CHURN_RATE: &str = "2000";

#[test]
fn live_table_matches_ss_after_churn() {
    let _ns = super::setup_in("churn");
    let mut server = Held::hold(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    let (l4, l6) = match server.listeners()[..] {
        [a, b] => (a, b),
        ref other => panic!("server announced listeners {other:?}"),
    };
    let mut args = Vec::new();
    for to in [l4, l4, l4, l6, l6, l6] {
        args.extend(["--connect".to_owned(), to.to_string()]);
    }
    let mut client = Held::hold(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let pre = client.connected();
    server.accepted(pre.len());

    let watch = Watch::start(WATCH);
    let started = Instant::now();
    let mut churn = Peer::spawn(&["churn", "--seconds", CHURN_SECONDS, "--rate", CHURN_RATE]);
    let churn_port = listener_of(churn.pid());
    // Long-lived connections opened while watching, left open.
    let new: Vec<SocketAddr> = [l4, l6, l4, l6].into_iter().map(|to| client.connect(to).local).collect();
    server.accepted(pre.len() + new.len());
    // Pre-existing ones closed: client first, server first, both (TIME_WAIT), reset.
    assert_eq!(client.close(pre[0].local), 1);
    assert_eq!(server.close(pre[1].local), 1);
    assert_eq!(client.close(pre[2].local), 1);
    assert_eq!(server.close(pre[2].local), 1);
    assert_eq!(client.reset(pre[3].local), 1);
    churn.wait_success(Duration::from_secs(30));
    let made = churn.json_line(Duration::from_secs(5))["connections"].as_u64().expect("connections");
    // Keep the churn's port from becoming someone's ephemeral port while
    // its TIME_WAIT rows are compared (SO_REUSEADDR lets us bind over them).
    let _reserve = TcpListener::bind(("127.0.0.1", churn_port)).expect("re-binding the churn's listener port");
    assert!(started.elapsed() < WATCH, "the workload took longer than the watch ({:?})", started.elapsed());

    let snap = watch.finish();
    let after = ss::run("-tanpe", None);

    // The churn's port is reserved above, so what is at it is the churn's.
    let churn_ep: SocketAddr = ([127, 0, 0, 1], churn_port).into();
    let tcp = Ours::bound("tcp", [l4, l6, churn_ep]);
    let ours = tcp.ss(&after);
    let tw = ours.iter().filter(|s| s.state == "TIME_WAIT" && s.sport == churn_port).count();
    // Fewer TIME_WAIT rows than connections when the TIME_WAIT table is
    // full or a port is reused over one; the comparison below is what counts.
    assert!(made > 1000, "the churn made only {made} connections");
    let nw: Vec<&NwSocket> = tcp.nw(&snap.sockets);
    let problems = table_diff::exact(&ours, &nw, own_inode());
    assert_none(
        &format!(
            "live table after --for {WATCH:?} with {made} churned connections ({tw} TIME_WAIT left) vs ss \
             (ss states {:?}; lost_events {}, reseeds {})",
            states(&ours),
            snap.total("lost_events"),
            snap.total("reseeds")
        ),
        &problems,
    );
}

/// The port of the listener `pid` opened (polls ss until it is there).
fn listener_of(pid: u32) -> u16 {
    wait::until(&format!("nw-peer churn (pid {pid}) to listen"), Duration::from_secs(10), || {
        let found = ss::run("-tlnpe", None).into_iter().find(|s| s.owners.iter().any(|o| o.0 == pid));
        found.map(|s| s.sport).ok_or("no listener of its pid in ss")
    })
}
