//! Starting and stopping: nothing stays in the kernel after a signal, and a
//! closed stdout ends netwatch quietly.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use netwatch_common::names::ALL_PROGRAMS as PROGRAMS;
use netwatch_tests::bpf::{held_by, links, nw_programs, pinned};
use netwatch_tests::{Netwatch, Peer};

#[test]
fn sigterm_detaches_everything() {
    super::setup();
    detaches_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_detaches_everything() {
    super::setup();
    detaches_on(libc::SIGINT, "SIGINT");
}

fn detaches_on(signal: libc::c_int, name: &str) {
    let pinned_before = pinned();
    let nw = Netwatch::start(&["events", "--json"]);

    // Programs of other netwatches (other tests run at the same time) are
    // not ours: ours are those this process holds.
    let held = held_by(nw.pid(), "prog_id");
    let ours: Vec<(u64, String)> = nw_programs().into_iter().filter(|(id, _)| held.contains(id)).collect();
    let names: BTreeSet<&str> = ours.iter().map(|(_, n)| n.as_str()).collect();
    for want in PROGRAMS {
        assert!(names.contains(want), "while running, `bpftool prog show` lacks {want}; new nw_ programs: {ours:?}");
    }
    let new_pins: Vec<_> = pinned().difference(&pinned_before).cloned().collect();
    assert!(new_pins.is_empty(), "netwatch pinned under /sys/fs/bpf: {new_pins:?}");

    nw.stop_with(signal);
    // Program memory is released asynchronously after the last fd closes.
    let ids: BTreeSet<u64> = ours.iter().map(|(id, _)| *id).collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    let left = loop {
        let left: Vec<(u64, String)> = nw_programs().into_iter().filter(|(id, _)| ids.contains(id)).collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(left.is_empty(), "after {name} and exit 0, still loaded: {left:?}");
    let stale_links: Vec<(u64, u64)> = links().into_iter().filter(|(_, prog)| ids.contains(prog)).collect();
    assert!(stale_links.is_empty(), "after {name}, links to our programs remain: {stale_links:?}");
    let new_pins: Vec<_> = pinned().difference(&pinned_before).cloned().collect();
    assert!(new_pins.is_empty(), "after {name}, left pinned under /sys/fs/bpf: {new_pins:?}");
}

#[test]
fn closed_pipe_ends_quietly() {
    super::setup();
    let (mut nw, stdout) = Netwatch::start_raw(&["events", "--json"]);
    let (_server, srv) = Peer::server("127.0.0.1:0", None);

    // `netwatch events | head -1`: read one line, then close the pipe.
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        Peer::client(srv.addr, 1, 0);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "netwatch printed no event in 10 s");
    };
    reader.join().expect("reader thread");
    assert!(line.starts_with('{'), "first line is not a JSON event: {line:?}");

    // Keep making events so netwatch writes into the closed pipe.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = nw.try_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "netwatch still running 5 s after its stdout was closed; stderr:\n{}",
            nw.stderr_lines().join("\n")
        );
        Peer::client(srv.addr, 5, 0);
        thread::sleep(Duration::from_millis(50));
    };
    thread::sleep(Duration::from_millis(200)); // let the stderr reader catch up
    let stderr = nw.stderr_lines().join("\n");
    assert!(status.success(), "netwatch exited with {status} after its stdout closed; stderr:\n{stderr}");
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("broken pipe") && !lower.contains("panicked"),
        "netwatch complained about the closed pipe:\n{stderr}"
    );
}

/// Events reach the output while netwatch runs, whether the reader was
/// draining on its own clock (a burst) or had gone to sleep after a quiet
/// spell (a lone connection later): every connection's two closes are
/// printed within a second, before netwatch is stopped.
#[test]
fn events_arrive_after_bursts_and_quiet_spells() {
    super::setup();
    let rounds: [u64; 4] = [50, 1, 20, 1];
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(rounds.iter().sum()));
    let port = srv.addr.port().to_string();
    let nw = Netwatch::start(&["events", "--json", "--port", &port]);
    // Connections' closes, not the listener's (the server exits after its count).
    let closes = || {
        let lines = nw.lines();
        lines.iter().filter(|l| l.contains("\"event\":\"close\"") && !l.contains("\"old_state\":\"LISTEN\"")).count()
            as u64
    };
    let mut expected = 0;
    for (i, n) in rounds.into_iter().enumerate() {
        // Quiet long enough for the reader to stop draining on its clock.
        thread::sleep(Duration::from_millis(300));
        Peer::client(srv.addr, n, 1);
        expected += 2 * n;
        let deadline = Instant::now() + Duration::from_secs(1);
        while closes() < expected && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(closes(), expected, "round {i} ({n} connections): closes printed within a second");
    }
    server.wait_success(Duration::from_secs(10));
    nw.stop();
}
