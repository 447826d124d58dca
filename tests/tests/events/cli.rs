//! The command line itself: human output, flag errors, missing privileges.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use netwatch_tests::event::sock_events;
use netwatch_tests::netns;
use netwatch_tests::process::run_for;
use netwatch_tests::{bpf, netwatch_bin, Netwatch, Peer};

#[test]
fn text_output_lines() {
    let ns = super::setup_in("text");
    let nw = Netwatch::start(&["events", "--netns", &ns.arg()]);
    let (mut s4, srv4) = Peer::server("127.0.0.1:0", Some(3));
    let (mut s6, srv6) = Peer::server("[::1]:0", Some(3));
    let c4 = Peer::client(srv4.addr, 3, 1);
    let c6 = Peer::client(srv6.addr, 3, 1);
    s4.wait_success(Duration::from_secs(10));
    s6.wait_success(Duration::from_secs(10));
    let lines = nw.stop().lines;

    let json = lines.iter().filter(|l| l.starts_with('{')).count();
    assert_eq!(json, 0, "text mode printed JSON lines:\n{}", lines.join("\n"));
    let expect = [
        ("connect", c4.pid, format!("127.0.0.1:{}", srv4.addr.port())),
        ("accept", srv4.pid, format!("127.0.0.1:{}", srv4.addr.port())),
        ("listen", srv4.pid, format!("127.0.0.1:{}", srv4.addr.port())),
        ("connect", c6.pid, format!("[::1]:{}", srv6.addr.port())),
        ("accept", srv6.pid, format!("[::1]:{}", srv6.addr.port())),
        ("listen", srv6.pid, format!("[::1]:{}", srv6.addr.port())),
    ];
    for (event, pid, addr) in expect {
        let owner = format!("{pid}/nw-peer");
        assert!(
            lines.iter().any(|l| l.contains(event) && l.contains(&owner) && l.contains(&addr)),
            "no text line containing {event:?}, {owner:?} and {addr:?}:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn bad_flags_exit_2() {
    super::setup();
    let out = Command::new(netwatch_bin()).args(["events", "--bogus"]).output().expect("running netwatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "`netwatch events --bogus`: {}; stderr:\n{stderr}", out.status);
    assert!(
        stderr.contains("--bogus") && stderr.contains("Usage:"),
        "expected clap's error naming --bogus and a usage line; stderr:\n{stderr}"
    );
    // Zero events to print would have run until interrupted; a negative
    // count is refused as a value, not answered with clap's hint to write
    // `-- -1` (which would then be read as a filter).
    for n in ["0", "-1"] {
        let out = Command::new(netwatch_bin()).args(["events", "--count", n]).output().expect("running netwatch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "`netwatch events --count {n}`: {}; stderr:\n{stderr}", out.status);
        assert!(stderr.contains("--count") && !stderr.contains("-- -1"), "stderr:\n{stderr}");
    }
}

/// `--netns` given a file that is no network namespace, or the number of
/// none that exists, fails before anything is loaded, rather than trace
/// while filtering out every socket.
#[test]
fn a_netns_that_is_none_is_a_clear_error() {
    super::setup();
    for (spec, says) in [
        ("/etc/passwd", "/etc/passwd is not a namespace file"),
        ("/proc/self/ns/mnt", "is a namespace, but not a network namespace"),
        ("7", "network namespace 7 was not found"),
    ] {
        let out = Command::new(netwatch_bin()).args(["events", "--netns", spec]).output().expect("running netwatch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--netns {spec}: {}; stderr:\n{stderr}", out.status);
        assert!(stderr.contains(says) && !stderr.contains("tracing"), "--netns {spec}: stderr:\n{stderr}");
    }
}

#[test]
fn not_root_is_a_clear_error() {
    super::setup();
    // A copy nobody can reach, whatever the permissions of the build tree.
    let dir = std::env::temp_dir().join(format!("netwatch-not-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    let bin = dir.join("netwatch");
    std::fs::copy(netwatch_bin(), &bin).expect("copying netwatch");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod netwatch");

    let ran = run_for(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("events")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .current_dir(&dir),
        Duration::from_secs(10),
    );
    let (status, stdout, stderr) = (ran.status, ran.stdout, ran.stderr);
    let _ = std::fs::remove_dir_all(&dir);

    let text = stderr.join("\n");
    let Some(status) = status else {
        panic!("netwatch as uid 65534 was still running after 10 s; stderr:\n{text}");
    };
    assert!(!status.success(), "netwatch as uid 65534 exited 0; stderr:\n{text}\nstdout:\n{}", stdout.join("\n"));
    let nonempty: Vec<&String> = stderr.iter().filter(|l| !l.trim().is_empty()).collect();
    let lower = text.to_lowercase();
    assert!(
        nonempty.len() == 1 && (lower.contains("root") || lower.contains("privilege")),
        "expected one stderr line mentioning root or privileges; got {} line(s):\n{text}",
        nonempty.len()
    );
    assert!(
        !lower.contains("panicked") && !lower.contains("backtrace"),
        "netwatch as uid 65534 panicked or printed a backtrace:\n{text}"
    );
}

/// `--ring-size` sizes the kernel's ring (in MiB, as `bpftool` shows its
/// `max_entries` in bytes) and events still flow through a small one; a
/// size the kernel cannot take is refused before anything loads.
#[test]
fn ring_size_sets_the_kernel_ring() {
    super::setup();
    let out = Command::new(netwatch_bin()).args(["events", "--ring-size", "3"]).output().expect("running netwatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "`--ring-size 3`: {}; stderr:\n{stderr}", out.status);
    assert!(stderr.contains("power of two"), "expected the reason; stderr:\n{stderr}");

    let ns = netns::own("ringsize");
    let nw = super::events_in(&ns, &["--ring-size", "1"]);
    let ring = bpf::map_of(nw.pid(), netwatch_common::names::MAP_EVENTS).expect("netwatch holds its event ring");
    assert_eq!(bpf::max_entries(ring), 1 << 20, "EVENTS map of `--ring-size 1`");
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(1));
    let client = Peer::client(srv.addr, 1, 1);
    server.wait_success(Duration::from_secs(10));
    let stopped = nw.stop();
    // The client's side (its `connect` shows local port 0: the kernel has
    // not picked one yet).
    let seen = sock_events(&stopped.events())
        .iter()
        .filter(|e| e.dport == srv.addr.port() && e.pid == u64::from(client.pid))
        .map(|e| e.event.clone())
        .collect::<Vec<_>>();
    assert_eq!(seen, ["connect", "established", "state", "state", "close"], "the client's events");
}

/// `NETWATCH_BENCH_HOLLOW`, the bench's floor measurement: every program is
/// attached (linked, so the kernel calls it) yet returns at once, so
/// connections leave no event; a value netwatch does not know is refused
/// before anything loads. No namespace of its own: nothing may be printed
/// for any namespace, the test's connections included.
#[test]
fn hollow_programs_are_attached_and_send_nothing() {
    super::setup();
    const HOLLOW: &str = "NETWATCH_BENCH_HOLLOW";
    let ran = run_for(Command::new(netwatch_bin()).args(["events"]).env(HOLLOW, "bogus"), Duration::from_secs(10));
    let stderr = ran.stderr.join("\n");
    let Some(status) = ran.status else { panic!("{HOLLOW}=bogus was still running after 10 s; stderr:\n{stderr}") };
    assert!(!status.success(), "{HOLLOW}=bogus exited 0; stderr:\n{stderr}");
    assert!(stderr.contains(HOLLOW) && stderr.contains("bogus"), "expected the variable named; stderr:\n{stderr}");

    let nw = Netwatch::start_with_env(&["events", "--json"], &[(HOLLOW, "all")]);
    let warned = nw.stderr_lines().iter().any(|l| l.contains(HOLLOW) && l.contains("events will be missing"));
    assert!(warned, "no warning on stderr:\n{}", nw.stderr_lines().join("\n"));
    let ours = bpf::held_by(nw.pid(), "prog_id");
    let mut linked: std::collections::BTreeSet<u64> =
        bpf::links().into_iter().map(|(_, prog)| prog).filter(|p| ours.contains(p)).collect();
    linked.extend(bpf::perf_attached(nw.pid()));
    let names = bpf::nw_programs();
    for name in netwatch_common::names::ALL_PROGRAMS {
        assert!(
            linked.iter().any(|id| names.get(id).is_some_and(|n| n == name)),
            "{name} is not attached while hollow (linked: {linked:?})"
        );
    }
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(5));
    Peer::client(srv.addr, 5, 1);
    server.wait_success(Duration::from_secs(10));
    let stopped = nw.stop();
    assert!(stopped.lines.is_empty(), "hollow programs sent events:\n{}", stopped.lines.join("\n"));
    assert_eq!(stopped.summary.get("events"), Some(&0), "summary: {:?}", stopped.summary);
}

/// `--count N` ends netwatch by itself, exit 0, once N events were
/// printed: exactly N lines, the summary counting N, though the traffic
/// made many more. Only the test's namespace is printed (`--netns`), so
/// the first of them is its server's `listen`.
#[test]
fn count_exits_after_exactly_n_events() {
    const N: usize = 7;
    let ns = super::setup_in("count");
    let n = N.to_string();
    let nw = super::events_in(&ns, &["--count", &n]);
    // Three connections make thirty-odd events, far more than N.
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(3));
    let client = Peer::client(srv.addr, 3, 1);
    server.wait_success(Duration::from_secs(10));
    let stopped = nw.wait_exit(Duration::from_secs(10));

    assert!(
        stopped.status.success(),
        "--count {N} exited with {}; stderr:\n{}",
        stopped.status,
        stopped.stderr.join("\n")
    );
    assert_eq!(stopped.lines.len(), N, "--count {N} printed:\n{}", stopped.lines.join("\n"));
    let events = sock_events(&stopped.events());
    assert_eq!(events.len(), N, "every line is a socket event");
    let inode = ns.inode();
    let wrong: Vec<&String> = events.iter().filter(|e| e.netns != inode).map(|e| &e.line).collect();
    assert!(wrong.is_empty(), "events from outside netns {inode}: {wrong:?}");
    let first = &events[0];
    assert_eq!(
        (first.event.as_str(), first.pid, first.sport, first.old_state.as_str(), first.new_state.as_str()),
        ("listen", u64::from(srv.pid), srv.addr.port(), "CLOSE", "LISTEN"),
        "the first event: {}",
        first.line
    );
    let from_client = events.iter().filter(|e| e.pid == u64::from(client.pid)).count();
    assert!(from_client > 0, "no event of the client {} among the {N}", client.pid);
    assert_eq!(stopped.counter("events"), N as u64, "the summary's events");
}
