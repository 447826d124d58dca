//! SIGHUP reloads the config (a bad one is refused and the old one kept);
//! SIGTERM exits 0 and leaves no program of ours loaded.

use std::collections::BTreeSet;
use std::time::Duration;

use netwatch_tests::bpf::{held_by, links, nw_programs};
use netwatch_tests::{free_port, wait};

use super::harness::{Serve, TempDir};
use super::{config, hold, only_alerts, own_peer};

#[test]
fn sighup_reload_changes_a_threshold() {
    let ns = super::setup_in("reload");
    let dir = TempDir::new("reload");
    let peer = own_peer(&dir.0);
    let port = free_port([127, 0, 0, 1].into());
    let base = format!("{}[alerts]\nports = [{port}]\n", only_alerts(&["suspicious_ports"]));
    // One socket on the port (our listener) stays under a threshold of 10.
    let cfg = config(&dir, &format!("{base}[alerts.suspicious_ports]\nthreshold = 10\nwindow = \"1h\"\n"));
    let serve = Serve::start(&cfg, &["--top-listeners", "1000"]);
    let addr = format!("127.0.0.1:{port}");
    let mut server = hold(&peer, &["--listen", &addr]);
    // Three sockets on the port (the listener and one connection's two
    // ends), under the threshold of 10. Once the table has them, alerts are
    // computed on them; the end of the test checks that none fired under
    // this threshold (every alert line names threshold 1).
    let _client = hold(&peer, &["--connect", &addr]);
    server.accepted(1);
    let inode = ns.arg();
    let labels = [("listener", addr.as_str()), ("netns", inode.as_str()), ("state", "ESTABLISHED")];
    wait::until("the held connection in the scrape", Duration::from_secs(10), || {
        let held = serve.scrape().get("netwatch_listener_connections", &labels);
        wait::check(held == Some(1.0), || format!("{addr}'s ESTABLISHED: {held:?}"))
    });

    // A broken file is refused; the agent goes on with the old settings.
    std::fs::write(&cfg, "[alerts.suspicious_ports]\nthreshold = \"lots\"\n").unwrap();
    serve.nw.signal(libc::SIGHUP);
    serve.wait_stderr(Duration::from_secs(5), "refusing the bad config", |l| l.contains("keeping the previous config"));
    assert!(serve.nw.stderr_lines().iter().all(|l| !l.contains("alert: suspicious_ports")));

    std::fs::write(&cfg, format!("{base}[alerts.suspicious_ports]\nthreshold = 1\nwindow = \"1h\"\n")).unwrap();
    serve.nw.signal(libc::SIGHUP);
    serve.wait_stderr(Duration::from_secs(5), "reloaded", |l| l.starts_with("netwatch: reloaded"));
    let line = serve.wait_stderr(Duration::from_secs(5), "the alert under the new threshold", |l| {
        l.contains("alert: suspicious_ports") && l.contains(&format!("port {port}"))
    });
    assert!(line.contains("(threshold 1)"), "{line}");
    let alerts: Vec<String> =
        serve.nw.stderr_lines().into_iter().filter(|l| l.contains("alert: suspicious_ports")).collect();
    assert!(alerts.iter().all(|l| l.contains("(threshold 1)")), "fired under threshold 10: {alerts:?}");
    serve.nw.stop_with(libc::SIGTERM);
}

#[test]
fn sigterm_exits_0_and_detaches_everything() {
    let _ns = super::setup_in("term");
    let dir = TempDir::new("term");
    let cfg = config(&dir, "");
    let serve = Serve::start(&cfg, &[]);
    // Only the programs this serve holds: other tests run netwatches too.
    let held = held_by(serve.nw.pid(), "prog_id");
    let ours: BTreeSet<u64> = nw_programs().into_keys().filter(|id| held.contains(id)).collect();
    assert!(!ours.is_empty(), "no nw_ program appeared while serve ran");
    serve.nw.stop_with(libc::SIGTERM);
    wait::until("our programs to be unloaded after SIGTERM", Duration::from_secs(3), || {
        let left: Vec<(u64, String)> = nw_programs().into_iter().filter(|(id, _)| ours.contains(id)).collect();
        wait::check(left.is_empty(), || format!("still loaded: {left:?}"))
    });
    assert!(links().iter().all(|(_, prog)| !ours.contains(prog)), "links to our programs remain");
}
