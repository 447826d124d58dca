//! The full-screen view, used as a person would: `netwatch` with no
//! subcommand in a tmux pane (a real terminal), keys typed with
//! `send-keys`, the screen read with `capture-pane`.
//!
//! Needs root and one thread (`cargo xtask test`); without root it fails
//! rather than skips. `NETWATCH_BIN` names the netwatch binary (default:
//! `target/release/netwatch`). Each test runs its own tmux server on a
//! private socket, killed on drop; only loopback addresses are used.

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use netwatch_tests::wait;
use serde_json::Value;

/// How long netwatch may take to attach, enumerate sockets and draw.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How soon a new connection must be on screen.
const SHOW_WITHIN: Duration = Duration::from_secs(1);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

fn require_root() {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root: run `cargo xtask test`");
}

fn netwatch_bin() -> PathBuf {
    let path = std::env::var_os("NETWATCH_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/netwatch"), PathBuf::from);
    assert!(path.is_file(), "netwatch not found at {} (build it, or set NETWATCH_BIN)", path.display());
    path
}

/// A tmux server of our own running netwatch in a 200x50 pane. The pane
/// stays after netwatch exits (`remain-on-exit`) so its exit status and
/// terminal modes can be read.
struct Tmux {
    socket: String,
    target: String,
}

impl Tmux {
    /// `tag` keeps tests apart should they ever run in parallel.
    fn start(tag: &str) -> Self {
        require_root();
        let name = format!("nwtest-{}-{tag}", std::process::id());
        let tmux = Self { socket: name.clone(), target: name.clone() };
        let nw = netwatch_bin();
        let nw = nw.to_str().expect("UTF-8 path");
        // One tmux command list, so the option is set before netwatch can exit.
        let new = ["-f", "/dev/null", "new-session", "-d", "-s", &name, "-x", "200", "-y", "50", nw];
        let out = tmux.run(&new, &[";", "set-option", "-t", &name, "remain-on-exit", "on"]);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        tmux.wait_for("the header", START_TIMEOUT, |s| s.contains(" netwatch ") && header(s).contains("view: all"));
        tmux
    }

    fn run(&self, args: &[&str], tail: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .args(tail)
            .stdin(Stdio::null())
            .output()
            .expect("running tmux (is it installed?)")
    }

    fn capture(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", &self.target], &[]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Key names as tmux knows them (`Enter`, `Escape`, `q`).
    fn keys(&self, keys: &[&str]) {
        let out = self.run(&["send-keys", "-t", &self.target], keys);
        assert!(out.status.success(), "send-keys {keys:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", &self.target, "-l"], &[text]);
    }

    /// A pane format variable, such as `#{pane_dead}`.
    fn pane(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", &self.target, format], &[]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Polls the screen until `ok`, and the same a moment later (a
    /// capture can catch a frame half drawn); panics with the last screen.
    fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        wait::until(&format!("{what} on screen"), timeout, || {
            let screen = self.capture();
            // The second capture is the "moment later": tmux takes a few
            // milliseconds to answer.
            let whole = ok(&screen) && self.capture() == screen;
            wait::check(whole, || format!("the screen:\n{screen}")).map(|()| screen)
        })
    }

    /// The netwatch process: the pane's process, or its child if tmux's
    /// shell did not exec.
    fn netwatch_pid(&self) -> u32 {
        let pane: u32 = self.pane("#{pane_pid}").parse().expect("pane_pid");
        let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm(pane).trim() == "netwatch" {
            return pane;
        }
        let children = std::fs::read_to_string(format!("/proc/{pane}/task/{pane}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .find(|&p| comm(p).trim() == "netwatch")
            .unwrap_or_else(|| panic!("no netwatch process under pane process {pane}"))
    }

    /// Waits until tmux has reaped netwatch: `pane_dead` turns 1 when the
    /// terminal closes, the status only once the exit is collected.
    fn wait_exit(&self, pid: u32) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match self.pane("#{pane_dead}:#{pane_dead_status}#{pane_dead_signal}").as_str() {
                "1:" => {
                    // Debian's tmux lets libutempter swap in its own SIGCHLD
                    // handler when a pane closes; a child exiting then is never
                    // reaped (tmux/tmux#311). Repeat the signal for it.
                    let server: i32 = self.pane("#{pid}").parse().unwrap_or(0);
                    if server > 0 {
                        // SAFETY: kill(2) with a PID tmux reported and a valid signal.
                        unsafe { libc::kill(server, libc::SIGCHLD) };
                    }
                }
                s if s.starts_with("1:") => return,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "netwatch still running; threads:\n{}\n{}",
                threads(pid),
                self.capture()
            );
            sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"], &[]);
    }
}

/// An `nw-peer` process, killed on drop.
struct Peer {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nw-peer"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning nw-peer {args:?}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self { child, stdout }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The JSON line nw-peer prints (a server at once, a client at the end).
    fn report(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("reading nw-peer's stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("nw-peer printed {line:?}: {e}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line (the footer also says `filter:` while one is typed).
fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or_default()
}

/// Table rows on screen (the lower pane's lines start with a time).
fn table_rows(screen: &str) -> Vec<&str> {
    screen.lines().filter(|l| l.starts_with("tcp") || l.starts_with("udp")).collect()
}

fn has_row(screen: &str, needles: &[&str]) -> bool {
    screen.lines().any(|l| needles.iter().all(|n| l.contains(n)))
}

/// Whether the test thread's namespace has an ESTABLISHED socket whose
/// remote port is `port` (`/proc/net` would be the main thread's).
fn established_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp").expect("reading /proc/thread-self/net/tcp");
    let remote = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[2].ends_with(&remote) && f[3] == "01"
    })
}

/// Each thread's name and where it sleeps, for a process that will not exit.
fn threads(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return format!("{pid} is gone") };
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default().trim().to_owned();
    tasks
        .flatten()
        .map(|t| {
            format!(
                "  {}: {} in {}",
                t.file_name().to_string_lossy(),
                read(t.path().join("comm")),
                read(t.path().join("wchan"))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// BPF program ids held open by `pid` (its program and link fds).
fn prog_ids(pid: u32) -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("reading fdinfo").flatten() {
        let info = std::fs::read_to_string(entry.path()).unwrap_or_default();
        ids.extend(
            info.lines().filter_map(|l| l.strip_prefix("prog_id:")).filter_map(|v| v.trim().parse::<u32>().ok()),
        );
    }
    ids
}

/// `(id, name)` of every loaded BPF program.
fn loaded_programs() -> Vec<(u32, String)> {
    let out = Command::new("bpftool").args(["-j", "prog", "show"]).output().expect("running bpftool");
    assert!(out.status.success(), "bpftool: {}", String::from_utf8_lossy(&out.stderr));
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    progs
        .iter()
        .filter_map(|p| Some((p["id"].as_u64()? as u32, p["name"].as_str().unwrap_or_default().to_owned())))
        .collect()
}

/// After netwatch exited: normal status, terminal out of the alternate
/// screen, and none of its programs still loaded.
fn assert_clean_exit(tmux: &Tmux, pid: u32, progs: &BTreeSet<u32>) {
    tmux.wait_exit(pid);
    let status = tmux.pane("#{pane_dead_status} #{pane_dead_signal}");
    assert_eq!(status, "0", "exit status and signal; screen:\n{}", tmux.capture());
    assert_eq!(tmux.pane("#{alternate_on}"), "0", "terminal left in the alternate screen");
    // The kernel frees a program after its last reference goes, not at once.
    wait::until("our programs to be unloaded after exit", Duration::from_secs(5), || {
        let left: Vec<_> = loaded_programs().into_iter().filter(|(id, _)| progs.contains(id)).collect();
        wait::check(left.is_empty(), || format!("still loaded: {left:?}"))
    });
}

/// The programs this netwatch attached, checked to be netwatch's own.
fn attached_programs(tmux: &Tmux) -> BTreeSet<u32> {
    let ids = prog_ids(tmux.netwatch_pid());
    let names: Vec<_> = loaded_programs().into_iter().filter(|(id, _)| ids.contains(id)).collect();
    assert!(
        !names.is_empty() && names.iter().all(|(_, n)| n.starts_with(netwatch_tests::bpf::PROG_PREFIX)),
        "programs: {names:?}"
    );
    ids
}

#[test]
fn live_rows_filter_modes_closed_pane_and_quit() {
    // tmux, netwatch and the test's sockets in a namespace of the test's
    // own: the rows the test looks for are then the only ones like them
    // (the view still shows every namespace's sockets).
    let _ns = netwatch_tests::netns::own("tui-live");
    // A listener of the test's own, older than netwatch: seeded, and the
    // row the filter must hide.
    let decoy = TcpListener::bind("127.0.0.1:0").expect("binding the decoy listener");
    let decoy = format!("127.0.0.1:{}", decoy.local_addr().unwrap().port());
    let tmux = Tmux::start("live");
    let pid = tmux.netwatch_pid();
    let progs = attached_programs(&tmux);
    tmux.wait_for("the seeded decoy listener", SHOW_WITHIN, |s| has_row(s, &[&decoy, "LISTEN"]));

    let mut server = Peer::spawn(&["server", "--addr", "127.0.0.1:0"]);
    let addr: SocketAddr = server.report()["addr"].as_str().expect("addr").parse().expect("server addr");
    let (addr_s, port) = (addr.to_string(), addr.port().to_string());
    let server_owner = format!("{}/nw-peer", server.pid());
    tmux.wait_for("the new listener", SHOW_WITHIN, |s| has_row(s, &["tcp ", &addr_s, "LISTEN", &server_owner]));

    tmux.keys(&["/"]);
    tmux.type_text(&port);
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the port filter", SHOW_WITHIN, |s| header(s).contains(&format!("filter: {port}")));
    let rows = table_rows(&s);
    assert!(!rows.is_empty() && rows.iter().all(|r| r.contains(&port)), "filtered rows:\n{s}");
    assert!(!s.contains(&decoy), "the decoy is filtered out:\n{s}");

    let held = Peer::spawn(&["client", "--to", &addr_s, "--count", "1", "--hold-ms", "3000"]);
    let client_owner = format!("{}/nw-peer", held.pid());
    wait::until("the held connection to reach ESTABLISHED", Duration::from_secs(5), || {
        wait::check(established_to(addr.port()), || "not in /proc/thread-self/net/tcp")
    });
    let s = tmux
        .wait_for("the held connection", SHOW_WITHIN, |s| has_row(s, &["tcp ", &addr_s, "ESTABLISHED", &client_owner]));
    let client_row = table_rows(&s).into_iter().find(|r| r.contains(&client_owner)).unwrap();
    assert!(client_row.find(&addr_s) > client_row.find("127.0.0.1:"), "server is the Foreign Address: {client_row}");

    tmux.keys(&["l"]);
    let s = tmux.wait_for("the listening view", SHOW_WITHIN, |s| header(s).contains("view: listening"));
    let rows = table_rows(&s);
    assert!(!rows.is_empty() && rows.iter().all(|r| r.contains("LISTEN")), "listening rows:\n{s}");
    assert!(has_row(&s, &[&addr_s, &server_owner]), "{s}");
    tmux.keys(&["a"]);
    tmux.wait_for("the full view", SHOW_WITHIN, |s| header(s).contains("view: all"));

    let mut short = Peer::spawn(&["client", "--to", &addr_s, "--count", "1", "--hold-ms", "3"]);
    let report = short.report();
    let local = format!("127.0.0.1:{}", report["local_ports"][0].as_u64().expect("local port"));
    tmux.wait_for("the short connection's close event", SHOW_WITHIN, |s| has_row(s, &["close ", &local]));
    tmux.keys(&["c"]);
    let s = tmux.wait_for("the closed pane", SHOW_WITHIN, |s| s.contains("[c] Closed"));
    let pane = s.lines().skip_while(|l| !l.contains("[c] Closed"));
    let closed = pane.into_iter().find(|l| l.contains(&local) && l.contains(&addr_s));
    let closed = closed.unwrap_or_else(|| panic!("{local} not in the closed pane:\n{s}"));
    // A few milliseconds, shown in ms; where the whole machine runs slower
    // (an emulated kernel: wait::scaled) the server's end may take a second.
    let slow = wait::scaled(Duration::from_secs(1)) > Duration::from_secs(1);
    let lifetime = closed.trim_end();
    assert!(
        closed.contains("closed") && (lifetime.ends_with("ms") || slow && lifetime.ends_with('s')),
        "lifetime shown: {closed}"
    );

    tmux.keys(&["q"]);
    assert_clean_exit(&tmux, pid, &progs);
}

/// No namespace of its own: no socket is looked at.
#[test]
fn sigterm_restores_the_terminal_and_detaches() {
    let tmux = Tmux::start("term");
    let progs = attached_programs(&tmux);
    let pid = tmux.netwatch_pid();
    // SAFETY: kill(2) with a PID we just looked up and a valid signal.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0, "kill -TERM {pid}");
    assert_clean_exit(&tmux, pid, &progs);
}

/// TIME_WAIT sockets in the test's namespace, by ss.
fn time_wait_count() -> usize {
    let out = Command::new("ss").args(["-tanH", "state", "time-wait"]).output().expect("running ss");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

/// Fills the namespace with TIME_WAIT sockets: loopback connections closed
/// by the client, over two listeners (each has its own port space), until
/// `want` or the time is up; returns how many there are.
fn make_time_wait(want: usize) -> usize {
    // The namespace's own setting: room for more ports per destination.
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "1024 65000").expect("widening the port range");
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut have = time_wait_count();
    while have < want && Instant::now() < deadline {
        let ok = Command::new(env!("CARGO_BIN_EXE_nw-peer"))
            .args(["churn", "--seconds", "2", "--close-first", "client", "--listeners", "4"])
            .stdout(Stdio::null())
            .status()
            .expect("running nw-peer churn");
        assert!(ok.success(), "nw-peer churn failed");
        have = time_wait_count();
    }
    have
}

/// Issue 21's busy server: tens of thousands of TIME_WAIT sockets, a small
/// service; the first screen shows the service, at most 3 TIME_WAIT rows.
/// Then grouping by listener, the details pane of a short-lived
/// connection from the closed list, and filter expressions and errors.
#[test]
fn busy_server_first_screen_groups_details_and_filters() {
    let ns = netwatch_tests::netns::own("tui-busy");
    let tw = make_time_wait(30_000);
    // Fewer where the machine is slow; the view's point holds from thousands.
    assert!(tw >= 5_000, "only {tw} TIME_WAIT sockets made");
    eprintln!("tui busy server: {tw} TIME_WAIT sockets");
    let service = netwatch_tests::held::Held::hold(&["--listen", "127.0.0.1:0", "--pairs", "2"]);
    let listener = service.listeners()[0];
    let (laddr, lport) = (listener.to_string(), listener.port());
    let owner = format!("{}/nw-peer", service.pid());

    let tmux = Tmux::start("busy");
    let pid = tmux.netwatch_pid();
    let progs = attached_programs(&tmux);
    let s = tmux.wait_for("the service and the TIME_WAIT count line", START_TIMEOUT, |s| {
        has_row(s, &[&laddr, "LISTEN", &owner]) && s.contains("sockets collapsed")
    });
    let rows = table_rows(&s);
    let established: Vec<&&str> = rows.iter().filter(|r| r.contains("ESTABLISHED") && r.contains(&owner)).collect();
    assert_eq!(established.len(), 4, "both ends of both pairs on the first screen:\n{s}");
    let tw_rows = rows.iter().filter(|r| r.contains("TIME_WAIT")).count();
    assert!(tw_rows <= 3, "{tw_rows} TIME_WAIT rows on the first screen:\n{s}");
    let count =
        s.lines().find(|l| l.contains("sockets collapsed") && l.contains("TIME_WAIT")).expect("TIME_WAIT count");
    let n: usize = count.split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or(0);
    assert!(n + 1000 >= tw, "count line says {n} of {tw}: {count}");

    // The same expression as ss, narrowed to the namespace.
    tmux.keys(&["/"]);
    tmux.type_text(&format!("netns = {} and state established and sport = :{lport}", ns.inode()));
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the expression", SHOW_WITHIN, |s| header(s).contains("filter: netns"));
    let out = Command::new("ss")
        .args(["-tanH", "state", "established", "sport", "=", &format!(":{lport}")])
        .output()
        .expect("running ss");
    let want = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!((table_rows(&s).len(), want), (2, 2), "rows selected, as ss selects them:\n{s}");

    // Group by listener, within the namespace (no state named: collapsed).
    tmux.keys(&["/"]);
    for _ in 0..120 {
        tmux.keys(&["BSpace"]);
    }
    tmux.type_text(&format!("netns = {}", ns.inode()));
    tmux.keys(&["Enter", "o"]);
    let head = format!("listener {laddr}");
    let s = tmux.wait_for("the listener's group", SHOW_WITHIN, |s| {
        header(s).contains("group: listener") && has_row(s, &["[+]", &head])
    });
    let group = s.lines().find(|l| l.contains(&head)).unwrap();
    assert!(group.contains("3 sockets: LISTEN 1, ESTABLISHED 2") && group.contains("accept queue 0/"), "{group}");
    assert!(table_rows(&s).is_empty(), "groups start collapsed:\n{s}");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the expanded group", SHOW_WITHIN, |s| has_row(s, &["[-]", &head]));
    let members = table_rows(&s);
    assert_eq!(members.len(), 3, "the listener and the two accepted ends:\n{s}");
    assert!(members.iter().all(|r| r.contains(&laddr)), "{s}");
    tmux.keys(&["-"]);
    tmux.wait_for("the group collapsed again", SHOW_WITHIN, |s| {
        has_row(s, &["[+]", &head]) && table_rows(s).is_empty()
    });
    // Rates: ten connections accepted (and closed by the client) within
    // the 5 s window show as accepted/s in the header, about 2/s.
    for _ in 0..10 {
        drop(std::net::TcpStream::connect(listener).expect("connecting to the service"));
    }
    // Rates move on the next refresh (at most a second) after the events.
    let s = tmux.wait_for("the listener's accept rate", 4 * SHOW_WITHIN, |s| {
        s.lines().find(|l| l.contains(&head)).and_then(accepted_per_sec).is_some_and(|r| r >= 1.0)
    });
    let group = s.lines().find(|l| l.contains(&head)).unwrap();
    let rate = accepted_per_sec(group).unwrap();
    assert!((1.0..=10.0).contains(&rate), "10 connections within the last 5 s: {group}");
    assert!(group.contains("closed ") && group.contains("/s"), "{group}");
    // By program, by workload, then none.
    tmux.keys(&["o", "o", "o"]);
    tmux.wait_for("no grouping", SHOW_WITHIN, |s| !header(s).contains("group:"));

    // A connection of a few milliseconds, from the closed list.
    let mut server = Peer::spawn(&["server", "--addr", "127.0.0.1:0"]);
    let addr = server.report()["addr"].as_str().expect("addr").to_owned();
    let mut short = Peer::spawn(&["client", "--to", &addr, "--count", "1", "--hold-ms", "3"]);
    let local_port = short.report()["local_ports"][0].as_u64().expect("local port");
    let local = format!("127.0.0.1:{local_port}");
    tmux.keys(&["/"]);
    for _ in 0..40 {
        tmux.keys(&["BSpace"]);
    }
    tmux.type_text(&format!("sport = :{local_port}"));
    tmux.keys(&["Enter", "c"]);
    tmux.wait_for("the short connection closed", Duration::from_secs(5), |s| {
        s.lines().skip_while(|l| !l.contains("[c] Closed")).any(|l| l.contains(&local) && l.contains("closed"))
    });
    tmux.keys(&["D"]);
    let s = tmux.wait_for("its details", SHOW_WITHIN, |s| s.contains("Details: closed connection"));
    let pane: Vec<&str> = s.lines().skip_while(|l| !l.contains("Details:")).collect();
    let text = pane.join("\n");
    assert!(text.contains(&format!("{local} -> {addr}")) && text.contains("ending closed"), "{text}");
    assert!(text.contains("lifetime") && text.contains("history:"), "{text}");
    // A FIN close: an RTT was sampled, and nothing went wrong.
    let why = pane.iter().find(|l| l.contains(" srtt ")).unwrap_or_else(|| panic!("no srtt in:\n{text}"));
    assert!(!why.contains("srtt -") && why.contains("reason -"), "{why}");
    for step in ["CLOSE -> SYN_SENT", "SYN_SENT -> ESTABLISHED", "ESTABLISHED -> FIN_WAIT1", "-> CLOSE"] {
        let line = pane.iter().find(|l| l.contains(step)).unwrap_or_else(|| panic!("no {step} in:\n{text}"));
        // The kernel's CLOCK_MONOTONIC stamp, to the nanosecond.
        let stamp = line.split(['(', ')']).nth(1).unwrap_or_default();
        assert!(stamp.split_once('.').is_some_and(|(_, ns)| ns.len() == 9), "{line}");
    }
    tmux.keys(&["Escape"]);
    tmux.wait_for("the details closed", SHOW_WITHIN, |s| !s.contains("Details:"));

    // A bad expression: the error names the word; the old filter stays.
    tmux.keys(&["/"]);
    for _ in 0..40 {
        tmux.keys(&["BSpace"]);
    }
    tmux.type_text("dport = :http");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the filter error", SHOW_WITHIN, |s| s.contains("error: dport: expected a port number"));
    assert!(s.contains("at character 9") && header(&s).contains(&format!("sport = :{local_port}")), "{s}");
    tmux.keys(&["Escape"]);
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux, pid, &progs);
    drop(server);
}

/// The `accepted N/s` of a listener group's header line.
fn accepted_per_sec(line: &str) -> Option<f64> {
    let rest = &line[line.find("accepted ")? + "accepted ".len()..];
    rest[..rest.find("/s")?].parse().ok()
}

/// Issue 18: a listener whose accept queue is full and that dropped SYNs.
/// Grouped by listener, its header says the listener's own drop count
/// (`drops N`, in the State column),
/// the figure `ss -tlm` prints (`d<N>`), re-read once a second.
#[test]
fn listener_header_says_the_kernels_drop_count() {
    let ns = netwatch_tests::netns::own("tui-drops");
    let listener = netwatch_tests::drops::full_listener();
    let addr = listener.local_addr().expect("addr");
    let _in_queue = netwatch_tests::drops::flood(addr, 4);
    let ss = netwatch_tests::drops::ss_listener_drops(ns.name(), addr.port());
    assert!(ss >= 3, "{ss} drops for 3 refused SYNs");

    let tmux = Tmux::start("drops");
    let pid = tmux.netwatch_pid();
    let progs = attached_programs(&tmux);
    tmux.keys(&["/"]);
    tmux.type_text(&format!("netns = {}", ns.inode()));
    tmux.keys(&["Enter", "o"]);
    let head = format!("listener {addr}");
    let dropped = format!("drops {ss}");
    tmux.wait_for("the listener's drop count", 3 * SHOW_WITHIN, |s| {
        header(s).contains("group: listener") && s.lines().any(|l| l.contains(&head) && l.contains(&dropped))
    });
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux, pid, &progs);
    drop(listener);
}

/// `ss -tin`'s smoothed RTT (`rtt:SRTT/...`, ms) of the connection from
/// local port `sport` in namespace `ns`, in µs.
fn ss_srtt_us(ns: &str, sport: u16) -> f64 {
    let out = Command::new("ip").args(["netns", "exec", ns, "ss", "-tinH"]).output().expect("ss -tin");
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find(&format!(":{sport} ")).unwrap_or_else(|| panic!("no socket on {sport} in ss -tin:\n{text}"));
    let rest = &text[at..];
    let rtt = &rest[rest.find(" rtt:").unwrap_or_else(|| panic!("no rtt in ss -tin:\n{text}")) + 5..];
    let srtt = &rtt[..rtt.find('/').unwrap_or_else(|| panic!("rtt:{rtt}"))];
    srtt.parse::<f64>().unwrap_or_else(|e| panic!("rtt {srtt:?}: {e}")) * 1000.0
}

/// A latency cell's value and the precision it is printed to, in µs.
type Figure = Option<(f64, f64)>;

/// A Connect or RTT cell: `45us`, `1.5ms` (tenths), `12ms`, `2s`; `None`
/// for `-`.
fn latency_cell(cell: &str) -> Figure {
    let num = |s: &str| s.parse::<f64>().unwrap_or_else(|e| panic!("latency cell {cell:?}: {e}"));
    if cell == "-" {
        None
    } else if let Some(us) = cell.strip_suffix("us") {
        Some((num(us), 1.0))
    } else if let Some(ms) = cell.strip_suffix("ms") {
        Some((num(ms) * 1000.0, if ms.contains('.') { 100.0 } else { 1000.0 }))
    } else if let Some(s) = cell.strip_suffix('s') {
        Some((num(s) * 1e6, 1e6))
    } else {
        panic!("not a latency: {cell:?}")
    }
}

/// A table row's last two cells, Connect and RTT (the 200-column pane
/// has room for them; the Workload column is off).
fn connect_and_rtt(row: &str) -> (Figure, Figure) {
    let mut cells = row.split_whitespace().rev();
    let rtt = cells.next().expect("an RTT cell");
    let connect = cells.next().expect("a Connect cell");
    (latency_cell(connect), latency_cell(rtt))
}

/// A loopback connection in the calling thread's namespace, both ends,
/// after five exchanges and time for the delayed ACKs: idle, so the
/// kernel's RTT does not move until the next send; with how long
/// `connect()` took, in µs.
fn idle_connection() -> (std::net::TcpStream, std::net::TcpStream, f64) {
    use std::io::{Read as _, Write as _};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let started = Instant::now();
    let mut client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let connect_took = started.elapsed().as_secs_f64() * 1e6;
    let (mut server, _) = listener.accept().expect("accept");
    for _ in 0..5 {
        client.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).expect("read");
        server.write_all(b"pong").expect("write");
        client.read_exact(&mut buf).expect("read");
    }
    sleep(Duration::from_millis(300));
    (client, server, connect_took)
}

/// The Connect and RTT columns and the `L` sort, on a loopback connection
/// opened while netwatch watched. Connect: within the test's own clock
/// around `connect()` (the kernel's SYN_SENT -> ESTABLISHED is inside that
/// call). RTT: `ss -tin` on the same idle connection (the kernel's figure
/// does not move without new ACKs), to the cell's printed precision.
#[test]
fn latency_columns_say_the_connect_time_and_the_rtt_ss_says() {
    let ns = netwatch_tests::netns::own("tui-lat");
    let tmux = Tmux::start("lat");
    let pid = tmux.netwatch_pid();
    let progs = attached_programs(&tmux);
    let s = tmux.capture();
    assert!(s.lines().any(|l| l.contains("Foreign Address") && l.contains("Connect") && l.contains("RTT")), "{s}");

    let (client, _server, connect_took) = idle_connection();
    let local = client.local_addr().expect("addr").to_string();
    let sport = client.local_addr().expect("addr").port();
    let ss = ss_srtt_us(ns.name(), sport);

    tmux.keys(&["/"]);
    tmux.type_text(&local);
    tmux.keys(&["Enter"]);
    // The RTT is re-read once a second.
    let s = tmux.wait_for("both ends with an RTT", 3 * SHOW_WITHIN, |s| {
        let rows = table_rows(s);
        rows.len() == 2 && rows.iter().all(|r| r.contains("ESTABLISHED") && connect_and_rtt(r).1.is_some())
    });
    let rows = table_rows(&s);
    let client_row = rows.iter().find(|r| r.split_whitespace().nth(1) == Some(local.as_str())).expect("client row");
    let server_row = rows.iter().find(|r| r.split_whitespace().nth(2) == Some(local.as_str())).expect("server row");
    let (connect, rtt) = connect_and_rtt(client_row);
    let (connect, connect_precision) = connect.unwrap_or_else(|| panic!("no connect latency: {client_row}"));
    assert!(
        connect > 0.0 && connect <= connect_took + connect_precision,
        "{connect} us, connect() took {connect_took} us"
    );
    let (rtt, precision) = rtt.expect("RTT");
    assert!(rtt > 0.0 && (rtt - ss).abs() <= precision, "netwatch {rtt} us, ss {ss} us: {client_row}");
    assert_eq!(connect_and_rtt(server_row).0, None, "a passive open has no connect latency: {server_row}");

    // Slowest RTT first; pressed again, the slowest connect.
    tmux.keys(&["L"]);
    let s = tmux.wait_for("the RTT sort", SHOW_WITHIN, |s| header(s).contains("sort: RTT ^"));
    let rtts: Vec<f64> = table_rows(&s).iter().map(|r| connect_and_rtt(r).1.expect("RTT").0).collect();
    assert!(rtts.len() == 2 && rtts[0] >= rtts[1], "{rtts:?}:\n{s}");
    tmux.keys(&["L"]);
    let s = tmux.wait_for("the connect sort", SHOW_WITHIN, |s| header(s).contains("sort: Connect ^"));
    assert_eq!(table_rows(&s).first().and_then(|r| r.split_whitespace().nth(1)), Some(local.as_str()), "{s}");

    tmux.keys(&["q"]);
    assert_clean_exit(&tmux, pid, &progs);
}

/// A container's connection has its live RTT too: netwatch runs in the
/// host's namespace, the connection lives in another (the test's own,
/// entered after netwatch started), and the details pane's `rtt now` is
/// what `ss -tin` says there, read through a sock_diag socket netwatch
/// keeps in that namespace (before, only the handshake's RTT was known).
#[test]
fn another_namespaces_connection_shows_its_rtt_now() {
    let tmux = Tmux::start("lat-other");
    let pid = tmux.netwatch_pid();
    let progs = attached_programs(&tmux);
    let ns = netwatch_tests::netns::own("tui-lat-other");
    let (client, server, _) = idle_connection();
    let sport = client.local_addr().expect("addr").port();
    let ss = ss_srtt_us(ns.name(), sport);

    tmux.keys(&["/"]);
    tmux.type_text(&format!("netns = {} and sport = :{sport}", ns.inode()));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the client's row", 3 * SHOW_WITHIN, |s| {
        let rows = table_rows(s);
        rows.len() == 1 && rows[0].contains(&format!("127.0.0.1:{sport}"))
    });
    tmux.keys(&["Enter"]);
    // The RTT is re-read once a second.
    let s = tmux.wait_for("its RTT now in the details", 3 * SHOW_WITHIN, |s| s.contains("rtt now"));
    let line = s.lines().find(|l| l.contains("rtt now")).expect("the rtt line");
    let cell = line.split("rtt now").nth(1).and_then(|r| r.split_whitespace().next()).expect("a figure");
    let (rtt, precision) = latency_cell(cell).unwrap_or_else(|| panic!("no RTT: {line}"));
    assert!(rtt > 0.0 && (rtt - ss).abs() <= precision, "netwatch {rtt} us, ss {ss} us: {line}");

    tmux.keys(&["Escape"]);
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux, pid, &progs);
    drop((client, server));
}

/// Issue 18: an open UDP socket that lost datagrams for two reasons
/// (`netwatch_tests::drops::TwoReasons`): its details pane says how many,
/// and how many for each reason, read live from the kernel's row.
#[test]
fn details_say_an_open_sockets_drops_per_reason() {
    let ns = netwatch_tests::netns::own("tui-drop-reasons");
    let tmux = Tmux::start("dropreasons");
    let pid = tmux.netwatch_pid();
    let progs = attached_programs(&tmux);
    // After netwatch attached: its packet counters make the socket's cookie.
    let lost = netwatch_tests::drops::TwoReasons::new();
    let local = format!("127.0.0.1:{}", lost.port());
    tmux.keys(&["/"]);
    tmux.type_text(&format!("netns = {} and sport = :{}", ns.inode(), lost.port()));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the socket's row", 3 * SHOW_WITHIN, |s| {
        let rows = table_rows(s);
        rows.len() == 1 && rows[0].contains(&local)
    });
    tmux.keys(&["Enter"]);
    if !netwatch_tests::drops::reasons_traced() {
        // Before Linux 5.17 no drop is counted per connection: the pane,
        // with the socket's traffic in it, has no drops line.
        let s = tmux.wait_for("the details", 3 * SHOW_WITHIN, |s| s.contains("Details: open connection"));
        assert!(!s.contains("dropped "), "{s}");
        tmux.keys(&["Escape", "q"]);
        assert_clean_exit(&tmux, pid, &progs);
        return;
    }
    // Before Linux 6.11 drops on arrival are not counted per socket.
    let arrived = if netwatch_tests::drops::rx_sk_named() { lost.rcvbuf } else { 0 };
    let total = format!("dropped {}   by reason", 1 + arrived);
    let s = tmux.wait_for("its drops in the details", 3 * SHOW_WITHIN, |s| {
        s.contains("Details: open connection") && s.contains(&total)
    });
    let line = s.lines().find(|l| l.contains(&total)).expect("the drops line");
    let want = match arrived {
        0 => "by reason NETFILTER_DROP 1".to_owned(),
        n => format!("by reason NETFILTER_DROP 1, SOCKET_RCVBUFF {n}"),
    };
    assert!(line.contains(&want), "{line:?}, want {want:?}");
    tmux.keys(&["Escape", "q"]);
    assert_clean_exit(&tmux, pid, &progs);
    drop(lost);
}
