//! SIGHUP reloads the config (a bad one is refused and the old one kept);
//! SIGTERM exits 0 and leaves no program of ours loaded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use netwatch_tests::bpf::{held_by, links, nw_programs};
use netwatch_tests::free_port;

use super::harness::{Serve, TempDir};
use super::{config, hold, only_alerts, own_peer};

#[test]
fn sighup_reload_changes_a_threshold() {
    super::setup();
    let dir = TempDir::new("reload");
    let peer = own_peer(&dir.0);
    let port = free_port([127, 0, 0, 1].into());
    let base = format!("{}[alerts]\nports = [{port}]\n", only_alerts(&["suspicious_ports"]));
    // One socket on the port (our listener) stays under a threshold of 10.
    let cfg = config(&dir, &format!("{base}[alerts.suspicious_ports]\nthreshold = 10\nwindow = \"1h\"\n"));
    let serve = Serve::start(&cfg, &[]);
    let addr = format!("127.0.0.1:{port}");
    let _server = hold(&peer, &["--listen", &addr]);
    std::thread::sleep(Duration::from_secs(2));
    let quiet = serve.nw.stderr_lines();
    assert!(!quiet.iter().any(|l| l.contains("alert: suspicious_ports")), "fired above its threshold: {quiet:?}");

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
    serve.nw.stop_with(libc::SIGTERM);
}

#[test]
fn sigterm_exits_0_and_detaches_everything() {
    super::setup();
    let dir = TempDir::new("term");
    let cfg = config(&dir, "");
    let serve = Serve::start(&cfg, &[]);
    // Only the programs this serve holds: other tests run netwatches too.
    let held = held_by(serve.nw.pid(), "prog_id");
    let ours: BTreeSet<u64> = nw_programs().into_keys().filter(|id| held.contains(id)).collect();
    assert!(!ours.is_empty(), "no nw_ program appeared while serve ran");
    serve.nw.stop_with(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    let left = loop {
        let left: Vec<(u64, String)> = nw_programs().into_iter().filter(|(id, _)| ours.contains(id)).collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(left.is_empty(), "after SIGTERM, still loaded: {left:?}");
    assert!(links().iter().all(|(_, prog)| !ours.contains(prog)), "links to our programs remain");
}
