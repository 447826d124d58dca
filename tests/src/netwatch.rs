//! The netwatch process under test: started, waited for, stopped, and never
//! left running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::event::{parse_all, Parsed};
use crate::process::{kill_and_reap, send_signal, wait_timeout, Lines};

/// How long netwatch may take to load and attach its programs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long netwatch may take to exit after a signal.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Prefix of the stderr line printed once the programs are attached.
pub const READY_PREFIX: &str = "netwatch: tracing";
/// Prefix of the stderr line printed at exit.
pub const SUMMARY_PREFIX: &str = "netwatch: summary";

/// Panics unless running as root: these tests load eBPF programs and must
/// never pass by skipping.
pub fn require_root() {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests need root: run `cargo xtask test`");
}

/// `$NETWATCH_BIN`, else `<workspace>/target/release/netwatch`.
pub fn netwatch_bin() -> PathBuf {
    let path = std::env::var_os("NETWATCH_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/netwatch"), PathBuf::from);
    assert!(
        path.is_file(),
        "netwatch binary not found at {} (build it with `cargo build --release -p netwatch` or set NETWATCH_BIN)",
        path.display()
    );
    path
}

/// A running `netwatch`; killed (SIGKILL) on drop unless stopped.
pub struct Netwatch {
    child: Child,
    stdout: Option<Lines>,
    stderr: Lines,
    args: Vec<String>,
}

/// What a stopped netwatch left behind.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: Vec<String>,
    /// `key=value` pairs of the summary line.
    pub summary: BTreeMap<String, u64>,
}

impl Netwatch {
    /// Starts netwatch with `args`, collecting stdout, and waits until ready.
    pub fn start(args: &[&str]) -> Self {
        let (mut nw, stdout) = Self::start_raw(args);
        nw.stdout = Some(Lines::spawn(stdout));
        nw
    }

    /// Like [`Netwatch::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let (mut nw, stdout) = Self::spawn(args, env);
        nw.stdout = Some(Lines::spawn(stdout));
        nw
    }

    /// Like [`Netwatch::start`], but hands stdout to the caller.
    pub fn start_raw(args: &[&str]) -> (Self, ChildStdout) {
        Self::spawn(args, &[])
    }

    fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Self, ChildStdout) {
        require_root();
        let mut child = Command::new(netwatch_bin())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning netwatch {args:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = Lines::spawn(child.stderr.take().expect("piped stderr"));
        let mut nw = Self { child, stdout: None, stderr, args: args.iter().map(|s| (*s).to_owned()).collect() };
        if nw.stderr.wait_for(crate::wait::scaled(READY_TIMEOUT), |l| l.starts_with(READY_PREFIX)).is_none() {
            // EOF on stderr usually means it exited; give it a moment to be reaped.
            let status = wait_timeout(&mut nw.child, Duration::from_millis(500));
            kill_and_reap(&mut nw.child);
            let what = match status {
                Some(status) => format!("exited ({status}) before printing `{READY_PREFIX}`"),
                None => {
                    format!("did not print `{READY_PREFIX}` within {:?} (killed)", crate::wait::scaled(READY_TIMEOUT))
                }
            };
            panic!("netwatch {:?} {what}; stderr:\n{}", nw.args, nw.stderr.snapshot().join("\n"));
        }
        (nw, stdout)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` without waiting (e.g. SIGHUP to reload).
    pub fn signal(&self, signal: libc::c_int) {
        send_signal(&self.child, signal);
    }

    /// `Some(status)` once netwatch has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, Duration::ZERO)
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// Every stderr line, once the pipe has closed (at most 5 s after
    /// exit): all it said, not just what the reader had got to.
    pub fn stderr_to_eof(&mut self) -> Vec<String> {
        std::mem::replace(&mut self.stderr, Lines::empty()).finish(Duration::from_secs(5))
    }

    /// Stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.as_ref().map(Lines::snapshot).unwrap_or_default()
    }

    /// Lets the output settle: waits until stdout has been quiet for 300 ms
    /// (at most 5 s), so the events of finished traffic are all out.
    pub fn settle(&mut self) {
        if let Some(out) = &mut self.stdout {
            out.wait_quiet(Duration::from_millis(300), Duration::from_secs(5));
        }
    }

    /// Settles, sends SIGINT, and checks for exit 0 and a summary line.
    pub fn stop(self) -> Stopped {
        self.stop_with(libc::SIGINT)
    }

    /// Settles, sends `signal`, and checks for exit 0 and a summary line.
    pub fn stop_with(mut self, signal: libc::c_int) -> Stopped {
        self.settle();
        let stopped = self.signal_and_wait(signal);
        assert!(
            stopped.status.success(),
            "netwatch {:?} exited with {} after signal {signal}; stderr:\n{}",
            self.args,
            stopped.status,
            stopped.stderr.join("\n")
        );
        assert!(
            stopped.stderr.iter().any(|l| l.starts_with(SUMMARY_PREFIX)),
            "netwatch printed no `{SUMMARY_PREFIX}` line; stderr:\n{}",
            stopped.stderr.join("\n")
        );
        stopped
    }

    /// Sends `signal` and waits for exit, without judging the outcome.
    pub fn signal_and_wait(&mut self, signal: libc::c_int) -> Stopped {
        send_signal(&self.child, signal);
        let Some(status) = wait_timeout(&mut self.child, EXIT_TIMEOUT) else {
            kill_and_reap(&mut self.child);
            panic!(
                "netwatch {:?} still running {EXIT_TIMEOUT:?} after signal {signal}; killed. stderr:\n{}",
                self.args,
                self.stderr.snapshot().join("\n")
            );
        };
        self.collect(status)
    }

    /// Waits at most `timeout` for netwatch to exit by itself (no signal),
    /// without judging the outcome; panics, with what it printed, if it
    /// is still running.
    pub fn wait_exit(mut self, timeout: Duration) -> Stopped {
        let Some(status) = wait_timeout(&mut self.child, timeout) else {
            kill_and_reap(&mut self.child);
            panic!(
                "netwatch {:?} still running {timeout:?} later, not having exited by itself; killed. \
                 stdout:\n{}\nstderr:\n{}",
                self.args,
                self.lines().join("\n"),
                self.stderr.snapshot().join("\n")
            );
        };
        self.collect(status)
    }

    /// Everything it printed, once it has exited with `status`.
    fn collect(&mut self, status: ExitStatus) -> Stopped {
        let lines = self.stdout.take().map(|o| o.finish(Duration::from_secs(5))).unwrap_or_default();
        let stderr = std::mem::replace(&mut self.stderr, Lines::empty()).finish(Duration::from_secs(5));
        let summary = stderr.iter().rev().find_map(|l| parse_summary(l)).unwrap_or_default();
        Stopped { status, lines, stderr, summary }
    }
}

impl Drop for Netwatch {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

impl Stopped {
    /// Every stdout line parsed as a JSON event (panics on a malformed line).
    pub fn events(&self) -> Vec<Parsed> {
        parse_all(&self.lines)
    }

    /// A summary counter (panics if absent).
    pub fn counter(&self, key: &str) -> u64 {
        *self.summary.get(key).unwrap_or_else(|| {
            panic!("summary has no `{key}`: {:?}\nstderr:\n{}", self.summary, self.stderr.join("\n"))
        })
    }
}

/// Parses `netwatch: summary k=v ...` into its counters.
pub fn parse_summary(line: &str) -> Option<BTreeMap<String, u64>> {
    let rest = line.strip_prefix(SUMMARY_PREFIX)?;
    rest.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}
