//! Packets the kernel dropped, per reason (issue 18), in the scrape: a UDP
//! socket of the test's own namespace loses datagrams for two reasons
//! (`netwatch_tests::drops::TwoReasons`), and once it is closed each
//! reason's series has risen by exactly that socket's count.
//!
//! The series are machine-wide (reasons are the only label): a drop of the
//! same reason elsewhere on the machine in the same second would show here
//! too, so the test compares scrapes taken just around its own close.

use std::time::Duration;

use netwatch_tests::wait;

use super::harness::{Serve, TempDir};
use super::{config, only_alerts};

const METRIC: &str = "netwatch_packet_drops_total";

#[test]
fn drops_per_reason_reach_the_scrape_when_the_socket_closes() {
    let _ns = super::setup_in("drops-metric");
    let dir = TempDir::new("drops-metric");
    let serve = Serve::start(&config(&dir, &only_alerts(&[])), &[]);
    let lost = netwatch_tests::drops::TwoReasons::new();
    let now = |reason: &str| serve.scrape().get(METRIC, &[("reason", reason)]).unwrap_or(0.0);
    let (netfilter, rcvbuf) = (now("NETFILTER_DROP"), now("SOCKET_RCVBUFF"));
    // Open sockets' drops are not in the series yet.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!((now("NETFILTER_DROP"), now("SOCKET_RCVBUFF")), (netfilter, rcvbuf), "before the close");
    drop(lost.a);
    if !netwatch_tests::drops::reasons_traced() {
        // Before Linux 5.17 no drop is counted per connection: said once on
        // stderr, and the series stay as they were after the close.
        serve.wait_stderr(Duration::from_secs(10), "saying drops are not counted", |l| {
            l.contains(netwatch_tests::drops::NOT_COUNTED_NOTE)
        });
        std::thread::sleep(wait::scaled(Duration::from_secs(1)));
        assert_eq!((now("NETFILTER_DROP"), now("SOCKET_RCVBUFF")), (netfilter, rcvbuf), "after the close");
        return;
    }
    // Before Linux 6.11 drops on arrival are not counted per socket.
    let arrived = if netwatch_tests::drops::rx_sk_named() { lost.rcvbuf } else { 0 };
    let want = (netfilter + 1.0, rcvbuf + arrived as f64);
    wait::until("both reasons in the scrape", Duration::from_secs(10), || {
        let got = (now("NETFILTER_DROP"), now("SOCKET_RCVBUFF"));
        wait::check(got.0 >= want.0 && got.1 >= want.1, || format!("{got:?}, want {want:?}"))
    });
    assert_eq!((now("NETFILTER_DROP"), now("SOCKET_RCVBUFF")), want);
    drop(lost.b);
}
