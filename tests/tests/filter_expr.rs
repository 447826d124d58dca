//! One filter language (docs/filters.md): the same expression selects in
//! `netwatch snapshot` what `ss -tan` selects, on every test state; a bad
//! expression stops each command with the offending word marked.
//!
//! Needs root and one thread (`cargo xtask test`). The sockets are in a
//! network namespace of the test's own, and every netwatch expression is
//! narrowed to it with `netns = INODE` (ss sees only that namespace).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use netwatch_tests::{held::Held, netns, netwatch_bin, require_root, snapshot, ss};

fn setup() {
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}

/// (state, sport, dport) of each TCP socket, as both sides name states.
type Selected = BTreeSet<(String, u16, u16)>;

fn ss_selects(expr: &str) -> Selected {
    let out = Command::new("ss")
        .args(["-tanpe", "-H"])
        .args(expr.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("running ss: {e}"));
    assert!(out.status.success(), "ss -tan {expr}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // ss leaves the State column out when one state is asked for.
            let line = match single_state(expr) {
                Some(state) => format!("{state} {l}"),
                None => l.to_owned(),
            };
            ss::parse_line(&line, Some("tcp")).unwrap_or_else(|e| panic!("ss line ({e}): {l}"))
        })
        .map(|s| (s.state, s.sport, s.dport))
        .collect()
}

/// ss's name of the one state `expr` asks for, if it asks for one only.
fn single_state(expr: &str) -> Option<&'static str> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    if words.iter().filter(|w| **w == "state" || **w == "exclude").count() != 1 || words.first() != Some(&"state") {
        return None;
    }
    Some(match words[1] {
        "established" => "ESTAB",
        "listening" => "LISTEN",
        "time-wait" => "TIME-WAIT",
        "fin-wait-2" => "FIN-WAIT-2",
        "close-wait" => "CLOSE-WAIT",
        _ => return None,
    })
}

fn netwatch_selects(expr: &str, ns: &netns::Own) -> Selected {
    let narrowed = format!("( {expr} ) and netns = {}", ns.inode());
    let out = Command::new(netwatch_bin())
        .args(["snapshot", "--json", &narrowed])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running netwatch snapshot: {e}"));
    assert!(out.status.success(), "netwatch snapshot {narrowed}: {}", String::from_utf8_lossy(&out.stderr));
    let snap = snapshot::parse(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|e| panic!("{narrowed}: {e}"));
    snap.sockets.into_iter().filter(|s| s.proto == "tcp").map(|s| (s.state, s.sport, s.dport)).collect()
}

/// Listeners on 127.0.0.1 and ::1, established pairs on each, a closed
/// connection and TIME_WAIT sockets from a churn.
fn every_state() -> (Held, u16, u16) {
    let mut held = Held::hold(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0", "--pairs", "2"]);
    let listeners = held.listeners();
    let (l4, l6) = (listeners[0].port(), listeners[1].port());
    let extra = held.connect(listeners[0]);
    // Both ends are the holder's: closing them leaves a TIME_WAIT and
    // whatever the second close finds.
    assert!(held.close(extra.local.port()) >= 1, "closing one connection");
    let churn = Command::new(netwatch_tests::nw_peer_bin())
        .args(["churn", "--seconds", "0.3", "--close-first", "client"])
        .stdout(Stdio::null())
        .status()
        .expect("running nw-peer churn");
    assert!(churn.success(), "nw-peer churn failed");
    (held, l4, l6)
}

#[test]
fn snapshot_selects_what_ss_selects() {
    setup();
    require_root();
    let ns = netns::own("filter-ss");
    let (_held, l4, l6) = every_state();
    let have = ss_selects("");
    for state in ["ESTABLISHED", "LISTEN", "TIME_WAIT"] {
        assert!(have.iter().any(|(s, _, _)| s == state), "no {state} socket to test on: {have:?}");
    }
    let exprs = [
        "state established".to_owned(),
        "state listening".to_owned(),
        "state time-wait".to_owned(),
        "state fin-wait-2".to_owned(),
        "state close-wait".to_owned(),
        "state connected".to_owned(),
        "state synchronized".to_owned(),
        "state bucket".to_owned(),
        "state big".to_owned(),
        "state all".to_owned(),
        "state established state listening".to_owned(),
        "state connected exclude time-wait".to_owned(),
        format!("sport = :{l4}"),
        format!("dport = :{l4}"),
        format!("dport :{l4}"),
        format!("( sport = :{l4} or dport = :{l4} )"),
        format!("state established ( dport = :{l4} or sport = :{l4} )"),
        format!("sport > :{l4}"),
        format!("sport < :{l4}"),
        format!("dport >= :{l6}"),
        format!("dport <= :{l6}"),
        format!("sport != :{l4}"),
        format!("sport gt :{l4} and dport lt :{l6}"),
        format!("sport ge :{l4} and sport le :{l4}"),
        format!("dport eq :{l6} or dport neq :{l4} and sport eq :{l6}"),
        format!("dport = :{l4} || sport = :{l6} && ! dport = :0"),
        format!("not ( sport = :{l4} or sport = :{l6} )"),
        "src 127.0.0.0/8".to_owned(),
        "dst 127.0.0.1".to_owned(),
        "src [::1]".to_owned(),
        format!("dst [::1]:{l6}"),
        format!("src 127.0.0.1:{l4}"),
        "not src 127.0.0.1".to_owned(),
        "state established not dst [::1]".to_owned(),
    ];
    let mut wrong = Vec::new();
    for expr in &exprs {
        // ss first, then netwatch, then ss again: a socket that moved in
        // between (a TIME_WAIT expiring) shows as a difference of the two ss runs.
        let before = ss_selects(expr);
        let got = netwatch_selects(expr, &ns);
        let after = ss_selects(expr);
        if before != after {
            continue;
        }
        if got != before {
            wrong.push(format!("{expr}:\n  ss:       {before:?}\n  netwatch: {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "netwatch and ss select differently:\n{}", wrong.join("\n"));
}

/// Runs `netwatch ARGS` expecting a refusal; returns stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(netwatch_bin()).args(args).stdin(Stdio::null()).output().expect("running netwatch");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "netwatch {args:?} exit status; stderr:\n{stderr}");
    stderr
}

#[test]
fn bad_expressions_name_the_word_in_every_command() {
    setup();
    for args in [
        &["events", "state", "established", "and", "dport", "=", ":https"][..],
        &["events", "--filter", "state established and dport = :https"],
        &["snapshot", "state", "established", "and", "dport", "=", ":https"],
        &["snapshot", "--for", "1s", "--filter", "state established and dport = :https"],
    ] {
        let stderr = refused(args);
        let lines: Vec<&str> = stderr.lines().collect();
        let at = lines.iter().position(|l| l.contains("bad filter expression")).unwrap_or_else(|| panic!("{stderr}"));
        assert!(lines[at].contains("dport: expected a port number") && lines[at].contains("character 31"), "{stderr}");
        assert_eq!(lines.get(at + 1).copied(), Some("  state established and dport = :https"), "{stderr}");
        assert_eq!(lines.get(at + 2).copied(), Some(&*format!("  {}^^^^^^", " ".repeat(30))), "{stderr}");
    }
    let stderr = refused(&["snapshot", "state", "establishd"]);
    assert!(stderr.contains("unknown state") && stderr.contains("      ^^^^^^^^^^"), "{stderr}");
    let stderr = refused(&["events", "(", "sport", "=", ":1"]);
    assert!(stderr.contains("never closed"), "{stderr}");
    // The serve configuration too, before anything is loaded.
    let dir = std::env::temp_dir().join(format!("nw-filter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = dir.join("netwatch.toml");
    std::fs::write(&cfg, "[export]\nfilter = \"bytes > lots\"\n").expect("writing the config");
    let out = Command::new(netwatch_bin())
        .args(["serve", "--config", cfg.to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .output()
        .expect("running netwatch serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !out.status.success() && stderr.contains("bytes: expected a whole number") && stderr.contains("^^^^"),
        "{stderr}"
    );
}
