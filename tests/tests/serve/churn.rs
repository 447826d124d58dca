//! Scrapes during churn: for the churn's own listener, every state's count
//! in `netwatch_listener_connections` lies between what `ss` showed just
//! before and just after the scrape (widened by what churned in between).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netwatch_tests::process::kill_and_reap;
use netwatch_tests::{nw_peer_bin, ss, wait};

use super::harness::{Serve, TempDir};
use super::{config, only_alerts};

/// Connections per second: enough to fill TIME_WAIT and keep transient
/// states busy, little enough for a shared 2-core machine.
const RATE: f64 = 2000.0;
const SCRAPES: usize = 8;

/// Per-state counts of sockets whose local end is `listener` (listener
/// excluded), from `ss` filtered on the port (quick even on a busy machine).
fn ss_states(listener: &str) -> BTreeMap<String, f64> {
    let port = listener.rsplit_once(':').expect("ip:port").1;
    let out = Command::new("ss").args(["-tanHe", "sport", "=", &format!(":{port}")]).output().expect("running ss");
    assert!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
        let s = ss::parse_line(line, Some("tcp")).unwrap_or_else(|e| panic!("ss line {line:?}: {e}"));
        let local = format!("{}:{}", s.saddr.map_or_else(|| "*".to_owned(), |a| a.to_string()), s.sport);
        if s.state != "LISTEN" && local == listener {
            *counts.entry(s.state).or_default() += 1.0;
        }
    }
    counts
}

#[test]
fn scrapes_during_churn_stay_within_ss_reads() {
    let ns = super::setup_in("churn");
    let inode = ns.arg();
    let dir = TempDir::new("churn");
    let cfg = config(&dir, &only_alerts(&[]));
    let serve = Serve::start(&cfg, &["--top-listeners", "1000"]);
    let mut churn = Command::new(nw_peer_bin())
        .args(["churn", "--seconds", "20", "--rate", &RATE.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting nw-peer churn");
    // The churn's listener: the one its process holds.
    let listener = wait::until("nw-peer churn's listener", Duration::from_secs(5), || {
        let found = ss::run("-tlnpe", None).into_iter().find(|s| s.owners.iter().any(|(pid, _)| *pid == churn.id()));
        found.map(|s| format!("{}:{}", s.saddr.expect("bound address"), s.sport)).ok_or("no listener of its pid")
    });
    // Under way: TIME_WAIT sockets piling up on the listener's side.
    wait::until("TIME_WAIT sockets of the churn", Duration::from_secs(10), || {
        let states = ss_states(&listener);
        let tw = states.get("TIME_WAIT").copied().unwrap_or(0.0);
        wait::check(tw >= RATE / 4.0, || format!("{states:?}"))
    });

    let mut report = Vec::new();
    let mut scrapes = 0;
    // Only while the churn runs: once it has exited its listener is gone,
    // and with it the metric's group, while `ss` still counts the port's
    // TIME_WAIT sockets (under an emulator's slowness the scrapes can
    // outlast the churn's 20 s).
    let running = |churn: &mut std::process::Child| churn.try_wait().expect("polling nw-peer churn").is_none();
    while scrapes < SCRAPES && running(&mut churn) {
        let t0 = Instant::now();
        let before = ss_states(&listener);
        let m = serve.scrape();
        let after = ss_states(&listener);
        if !running(&mut churn) {
            break;
        }
        scrapes += 1;
        // What may have opened or closed between the two reads, plus one
        // MAINTAIN interval (1 s) of churn: a TIME_WAIT socket that a new
        // SYN for its tuple recycles (the churn reuses ports, RFC 6191)
        // sends no event, so the table drops it at its next sock_diag
        // re-read of TIME_WAIT sockets, up to a second later.
        let slack = (RATE * (t0.elapsed().as_secs_f64() + 1.0)).ceil() + 2.0;
        let got: BTreeMap<String, f64> = m
            .all("netwatch_listener_connections")
            .into_iter()
            .filter(|(l, _)| l.get("listener") == Some(&listener) && l.get("netns") == Some(&inode))
            .map(|(l, v)| (l["state"].clone(), v))
            .collect();
        let states: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).chain(got.keys()).collect();
        for st in states {
            let (b, a, g) = (
                before.get(st).copied().unwrap_or(0.0),
                after.get(st).copied().unwrap_or(0.0),
                got.get(st).copied().unwrap_or(0.0),
            );
            let ok = g >= b.min(a) - slack && g <= b.max(a) + slack;
            report.push(format!(
                "{st}: ss {b} then {a}, netwatch {g}, slack {slack}{}",
                if ok { "" } else { "  <-- OUT" }
            ));
        }
    }
    kill_and_reap(&mut churn);
    assert!(scrapes >= 3, "only {scrapes} scrapes while the churn ran:\n{}", report.join("\n"));
    let tw_seen = report.iter().any(|l| l.starts_with("TIME_WAIT"));
    assert!(tw_seen, "the churn made no TIME_WAIT on {listener}:\n{}", report.join("\n"));
    let bad: Vec<&String> = report.iter().filter(|l| l.ends_with("<-- OUT")).collect();
    assert!(bad.is_empty(), "scrapes outside the ss reads for {listener}:\n{}", report.join("\n"));
    serve.nw.stop_with(libc::SIGTERM);
}
