//! End-to-end tests of `netwatch check`, the monitoring plugin: exit codes
//! 0/1/2/3 and the exact status line and perfdata for connections the test
//! makes itself, in a network namespace of its own (`--netns`), so other
//! activity on the machine cannot change a count.
//!
//! They need root (`cargo xtask test`); without root they fail rather than
//! skip. `NETWATCH_BIN` names the netwatch binary to test.

use netwatch_tests::held::Held;
use netwatch_tests::netns::TestNetns;
use netwatch_tests::oneshot::{self, Outcome};
use netwatch_tests::{nw_peer_bin, ss};

fn setup() {
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}

/// In a fresh namespace: listeners on 7000 and 7001, two self-connected
/// pairs on each, and one more connection to 7001. That is 2 LISTEN and 10
/// ESTABLISHED sockets: 4 with port 7000, 6 with port 7001.
fn build(ns: &TestNetns) -> Held {
    let nw_peer = nw_peer_bin();
    let nw_peer = nw_peer.to_str().expect("UTF-8 path");
    let args = ["hold", "--listen", "127.0.0.1:7000", "--listen", "127.0.0.1:7001", "--pairs", "2"];
    let mut held = Held::spawn(ns.command(nw_peer, &[&args[..], &["--connect", "127.0.0.1:7001"]].concat()));
    held.accepted(1);
    // The test built what it counts on: ss in the namespace agrees.
    let all = ss::run("-tanpe", Some(ns.name()));
    let count = |state: &str, port: Option<u16>| {
        all.iter().filter(|s| s.state == state && port.is_none_or(|p| s.sport == p || s.dport == p)).count()
    };
    let seen = (
        count("LISTEN", None),
        count("ESTABLISHED", None),
        count("ESTABLISHED", Some(7000)),
        count("ESTABLISHED", Some(7001)),
    );
    let lines: Vec<&str> = all.iter().map(|s| s.line.as_str()).collect();
    assert_eq!(seen, (2, 10, 4, 6), "ss in {} (LISTEN, ESTAB, :7000, :7001):\n{}", ns.name(), lines.join("\n"));
    held
}

fn check(ns: &TestNetns, args: &[&str]) -> Outcome {
    oneshot::run(&[&["check", "--netns", ns.name()], args].concat())
}

fn assert_line(out: &Outcome, code: i32, line: &str) {
    out.expect_code(code);
    assert_eq!(out.lines(), vec![line], "netwatch {:?}; stderr:\n{}", out.args, out.stderr);
    // Quiet unless -v: cron mails whatever a job prints.
    assert_eq!(out.stderr, "", "netwatch {:?} wrote to stderr", out.args);
}

#[test]
fn check_counts_states_ports_and_remotes_with_exit_codes() {
    setup();
    let ns = TestNetns::plain("check");
    let _held = build(&ns);

    let ok = check(
        &ns,
        &[
            "--state",
            "ESTABLISHED",
            "-w",
            "20",
            "-c",
            "30",
            "--port",
            "7000",
            "-w",
            "10",
            "-c",
            "20",
            "--state",
            "LISTEN",
            "-c",
            "2:2",
            "--remote",
            "127.0.0.1",
            "--label",
            "from lo",
        ],
    );
    assert_line(
        &ok,
        0,
        "NETWATCH OK - established 10, port_7000 4, listen 2, from lo 10 | established=10;20;30;0 \
         port_7000=4;10;20;0 listen=2;;2:2;0 'from lo'=10;;;0",
    );

    let warning = check(&ns, &["--port", "7001", "-w", "5", "-c", "10", "--port", "7000", "--state", "ESTABLISHED"]);
    assert_line(
        &warning,
        1,
        "NETWATCH WARNING - port_7001 6 (WARNING 5), port_7000_established 4 | port_7001=6;5;10;0 \
         port_7000_established=4;;;0",
    );

    // Several checks: the worst decides; @ ranges alert inside.
    let critical = check(
        &ns,
        &["--state", "ESTABLISHED", "-w", "5", "-c", "9", "--port", "7001", "-w", "@6:6", "--remote", "127.0.0.9"],
    );
    assert_line(
        &critical,
        2,
        "NETWATCH CRITICAL - established 10 (CRITICAL 9), port_7001 6 (WARNING @6:6), remote_127.0.0.9 0 | \
         established=10;5;9;0 port_7001=6;@6:6;;0 remote_127.0.0.9=0;;;0",
    );

    // A listener that must be there, and is not.
    let missing = check(&ns, &["--state", "LISTEN", "--port", "7002", "-c", "1:"]);
    assert_line(&missing, 2, "NETWATCH CRITICAL - port_7002_listen 0 (CRITICAL 1:) | port_7002_listen=0;;1:;0");
}

#[test]
fn check_counts_follow_closes() {
    setup();
    let ns = TestNetns::plain("check-close");
    let mut held = build(&ns);
    let before = check(&ns, &["--port", "7001", "-c", "5"]);
    assert_line(&before, 2, "NETWATCH CRITICAL - port_7001 6 (CRITICAL 5) | port_7001=6;;5;0");
    // Both ends of the three connections on 7001 (the holder has both):
    // none is ESTABLISHED any more; the listener stays.
    assert_eq!(held.close(7001), 6);
    let after = check(&ns, &["--port", "7001", "--state", "ESTABLISHED", "-c", "5"]);
    assert_line(&after, 0, "NETWATCH OK - port_7001_established 0 | port_7001_established=0;;5;0");
}

#[test]
fn check_bad_input_is_unknown() {
    setup();
    for args in [
        &["check"][..],
        &["check", "--state", "NOPE", "-c", "1"],
        &["check", "--port", "80", "-w", "abc"],
        &["check", "--port", "80", "-c", "20:10"],
        &["check", "--port", "99999", "-c", "1"],
        &["check", "--port", "80", "-w", "1", "-w", "2"],
        &["check", "--bogus"],
        &["check", "--netns", "nwtest-no-such-namespace", "--port", "80", "-c", "1"],
    ] {
        let out = oneshot::run(args);
        out.expect_code(3);
        let lines = out.lines();
        assert!(
            lines.len() == 1 && lines[0].starts_with("NETWATCH UNKNOWN - ") && lines[0].len() > 20,
            "netwatch {args:?} printed {lines:?}"
        );
        assert!(!out.stderr.contains("panicked"), "netwatch {args:?} panicked:\n{}", out.stderr);
    }
    // Help is not an error.
    oneshot::run(&["check", "--help"]).expect_code(0);
}
