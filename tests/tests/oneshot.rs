//! One-shot commands load only what they use (issue 19): `netwatch
//! snapshot` without `--for` and `netwatch -tanp` read the kernel's tables
//! once, so no tracing program of theirs may be loaded or attached. The one
//! program they may load is the socket-file iterator (`nw_iter_sockfd`),
//! which finds socket owners in one pass over the file tables; `-tan`
//! (no owners) needs no program at all.
//!
//! Each run is traced with `strace -f -e trace=bpf,perf_event_open`, which
//! sees every program load and attachment whatever the program is called
//! and however briefly it lives; `bpftool prog` could miss a program loaded
//! and closed between two looks. A control run (`snapshot --for`, which
//! does trace) must show its tracing programs through the same parser, so
//! the check cannot pass by seeing nothing.
//!
//! Needs root and one thread (`cargo xtask test`), and strace (installed by
//! `cargo xtask setup`). `NETWATCH_BIN` names the netwatch binary.

use std::net::TcpListener;
use std::process::{Command, Stdio};

use netwatch_common::names::{PROG_ITER_SOCKET_FDS as ITERATOR, PROG_SET_STATE};
use netwatch_tests::{netwatch_bin, require_root};

/// What one traced run did with bpf(2) and perf_event_open(2).
#[derive(Debug, Default)]
struct Trace {
    /// Every `BPF_PROG_LOAD`: (name, program type, expected attach type).
    loads: Vec<(String, String, String)>,
    /// Every attachment: the bpf command (with its attach type for
    /// `BPF_LINK_CREATE`) or `perf_event_open`.
    attaches: Vec<String>,
    stdout: String,
    /// All of strace's output, for failure messages.
    raw: String,
}

/// `key=VALUE` in a decoded strace line, up to the next `,` or `}`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

fn parse(raw: &str) -> Trace {
    let mut trace = Trace { raw: raw.to_owned(), ..Trace::default() };
    for line in raw.lines() {
        let get = |key| field(line, key).unwrap_or("?").to_owned();
        if line.contains("bpf(BPF_PROG_LOAD") {
            trace.loads.push((get("prog_name"), get("prog_type"), get("expected_attach_type")));
        } else if line.contains("bpf(BPF_LINK_CREATE") {
            trace.attaches.push(format!("BPF_LINK_CREATE {}", get("attach_type")));
        } else if let Some(cmd) = ["BPF_RAW_TRACEPOINT_OPEN", "BPF_PROG_ATTACH"].iter().find(|c| line.contains(**c)) {
            trace.attaches.push((*cmd).to_owned());
        } else if line.contains("perf_event_open(") {
            trace.attaches.push("perf_event_open".to_owned());
        }
    }
    trace
}

/// Runs `netwatch ARGS` under strace, to completion; it must succeed.
fn traced(args: &[&str]) -> Trace {
    require_root();
    let log = std::env::temp_dir().join(format!("nwtest-{}-oneshot.strace", std::process::id()));
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=bpf,perf_event_open", "-e", "signal=none", "-o"])
        .arg(&log)
        .arg(netwatch_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running strace (is it installed? `cargo xtask setup` installs it): {e}"));
    let raw = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("reading {}: {e}", log.display()));
    let _ = std::fs::remove_file(&log);
    assert!(
        out.status.success(),
        "strace netwatch {args:?} failed: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Trace { stdout: String::from_utf8_lossy(&out.stdout).into_owned(), ..parse(&raw) }
}

/// Only the iterator was loaded, at least once (a failed load is retried
/// once for the verifier's log), and attached only as an iterator.
fn assert_iterator_only(what: &str, trace: &Trace) {
    assert!(
        !trace.loads.is_empty(),
        "{what} loaded no program: were owners found without the iterator?\n{}",
        trace.raw
    );
    for load in &trace.loads {
        let want = (ITERATOR.to_owned(), "BPF_PROG_TYPE_TRACING".to_owned(), "BPF_TRACE_ITER".to_owned());
        assert_eq!(load, &want, "{what} loaded a program it does not use\n{}", trace.raw);
    }
    for attach in &trace.attaches {
        assert_eq!(attach, "BPF_LINK_CREATE BPF_TRACE_ITER", "{what} attached something\n{}", trace.raw);
    }
}

/// A line of `out` naming `port` as a local port and `pid` as its owner.
fn owned_line(out: &str, port: u16, pid: u32) -> bool {
    out.lines().any(|l| l.contains(&format!(":{port} ")) && l.contains(&format!(" {pid}/")))
}

/// `netwatch ARGS` loads the iterator alone, and did its job with it: our
/// loopback listener is shown with us as its owner.
fn loads_only_the_iterator(args: &[&str]) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback listener");
    let port = listener.local_addr().expect("getsockname").port();
    let what = format!("netwatch {}", args.join(" "));
    let trace = traced(args);
    assert_iterator_only(&what, &trace);
    assert!(
        owned_line(&trace.stdout, port, std::process::id()),
        "{what} shows no 127.0.0.1:{port} owned by pid {}:\n{}",
        std::process::id(),
        trace.stdout
    );
}

#[test]
fn snapshot_loads_only_the_iterator() {
    loads_only_the_iterator(&["snapshot"]);
}

#[test]
fn netstat_view_loads_only_the_iterator() {
    loads_only_the_iterator(&["-tanp"]);
}

#[test]
fn netstat_view_without_owners_loads_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback listener");
    let port = listener.local_addr().expect("getsockname").port();
    let trace = traced(&["-tan"]);
    assert!(trace.loads.is_empty() && trace.attaches.is_empty(), "netwatch -tan used eBPF:\n{}", trace.raw);
    assert!(trace.stdout.lines().any(|l| l.contains(&format!("127.0.0.1:{port} "))), "{}", trace.stdout);
}

/// The control: a run that does trace shows its programs through the same
/// parser, so the checks above cannot pass by seeing nothing.
#[test]
fn a_tracing_run_is_seen_loading_and_attaching() {
    let trace = traced(&["snapshot", "--for", "1s"]);
    let names: Vec<&str> = trace.loads.iter().map(|(name, _, _)| name.as_str()).collect();
    assert!(names.contains(&PROG_SET_STATE), "no {PROG_SET_STATE} load seen in `snapshot --for 1s`: {names:?}");
    assert!(
        trace.attaches.iter().any(|a| a != "BPF_LINK_CREATE BPF_TRACE_ITER"),
        "no tracing attachment seen in `snapshot --for 1s`: {:?}",
        trace.attaches
    );
}

#[test]
fn strace_lines_are_read_field_by_field() {
    let raw = "\
12 bpf(BPF_PROG_LOAD, {prog_type=BPF_PROG_TYPE_TRACING, insn_cnt=58, prog_name=\"nw_iter_sockfd\", \
expected_attach_type=BPF_TRACE_ITER, prog_btf_fd=0}, 152) = 11
12 bpf(BPF_LINK_CREATE, {link_create={prog_fd=11, target_fd=0, attach_type=BPF_TRACE_ITER, flags=0}}, 152) = 12
13 bpf(BPF_RAW_TRACEPOINT_OPEN, {raw_tracepoint={name=NULL, prog_fd=14}}, 152) = 15
13 perf_event_open({type=PERF_TYPE_TRACEPOINT, size=0x88}, -1, 0, -1, PERF_FLAG_FD_CLOEXEC) = 16
";
    let trace = parse(raw);
    assert_eq!(
        trace.loads,
        [("nw_iter_sockfd".to_owned(), "BPF_PROG_TYPE_TRACING".to_owned(), "BPF_TRACE_ITER".to_owned())]
    );
    assert_eq!(trace.attaches, ["BPF_LINK_CREATE BPF_TRACE_ITER", "BPF_RAW_TRACEPOINT_OPEN", "perf_event_open"]);
}
