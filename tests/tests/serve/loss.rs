//! Lost events make the agent re-read the kernel's sockets: sockets opened
//! while its ring was full, whose every event was lost, are in the table
//! (and so in the scrape) afterwards, with their owner.

use std::time::Duration;

use netwatch_common::names::MAP_COUNTERS;
use netwatch_common::record::Counter;
use netwatch_tests::{bpf, netns, wait, Peer};

use super::harness::{Serve, TempDir};
use super::{config, hold, only_alerts, own_peer};

/// Connections held through the listener opened during the stall.
const HELD: usize = 2;

#[test]
fn sockets_opened_while_events_were_lost_come_back_by_the_reseed() {
    super::setup();
    let ns = netns::own("reseed");
    let dir = TempDir::new("reseed");
    let peer = own_peer(&dir.0);
    let name = peer.file_name().and_then(|n| n.to_str()).expect("UTF-8 name").to_owned();
    let cfg = config(&dir, &only_alerts(&[]));
    let serve = Serve::start(&cfg, &["--top-processes", "1000", "--top-listeners", "1000"]);
    let counters = bpf::map_of(serve.nw.pid(), MAP_COUNTERS).expect("serve holds its counter map");
    let reseeds = serve.scrape().value("netwatch_table_reseeds_total", &[]);

    // Stalled, as a descheduled agent is: the kernel keeps filling the
    // 16 MiB ring (some 90,000 events) until it overflows.
    serve.nw.signal(libc::SIGSTOP);
    let lost_before = bpf::percpu_sum(counters, Counter::LostEvents as u32);
    let mut connections = 0;
    wait::until("the stopped agent's ring to overflow", Duration::from_secs(120), || {
        let mut churn = Peer::spawn(&["churn", "--seconds", "1"]);
        churn.wait_success(Duration::from_secs(30));
        connections += churn.json_line(Duration::from_secs(5))["connections"].as_u64().expect("churn's connections");
        let lost = bpf::percpu_sum(counters, Counter::LostEvents as u32) - lost_before;
        wait::check(lost > 0, || format!("no event lost after {connections} churn connections"))
    });
    // Opened now, with the ring full: the agent hears nothing of them.
    let lost_full = bpf::percpu_sum(counters, Counter::LostEvents as u32);
    let mut server = hold(&peer, &["--listen", "127.0.0.1:0"]);
    let listener = server.listeners()[0];
    let connects: Vec<String> = (0..HELD).flat_map(|_| ["--connect".to_owned(), listener.to_string()]).collect();
    let _client = hold(&peer, &connects.iter().map(String::as_str).collect::<Vec<_>>());
    server.accepted(HELD);
    let lost_held = bpf::percpu_sum(counters, Counter::LostEvents as u32) - lost_full;
    // The listen, and more than four per connection (connect, established,
    // SYN_RECV, accept).
    assert!(lost_held > 4 * HELD as u64, "only {lost_held} of the held sockets' events were lost");
    serve.nw.signal(libc::SIGCONT);

    let (lbl, inode) = (listener.to_string(), ns.arg());
    let labels = [("listener", lbl.as_str()), ("netns", inode.as_str()), ("state", "ESTABLISHED")];
    let m = wait::until("the re-seeded table in the scrape", Duration::from_secs(30), || {
        let m = serve.scrape();
        let (now, held) =
            (m.value("netwatch_table_reseeds_total", &[]), m.get("netwatch_listener_connections", &labels));
        wait::check(now > reseeds && held == Some(HELD as f64), || {
            format!("reseeds {now} (before the stall {reseeds}), {lbl}'s connections {held:?}")
        })
        .map(|()| m)
    });
    let lost = bpf::percpu_sum(counters, Counter::LostEvents as u32);
    let lost_metric = m.value("netwatch_events_lost_total", &[]);
    assert!(
        lost_metric >= lost as f64,
        "netwatch_events_lost_total {lost_metric}, the kernel counted {lost} events that found the ring full"
    );
    // Both ends of each held connection, owners read at the re-seed.
    assert_eq!(m.value("netwatch_process_connections", &[("process", &name)]), (2 * HELD) as f64, "{name}'s");
    serve.nw.stop_with(libc::SIGTERM);
}
