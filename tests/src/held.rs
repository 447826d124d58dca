//! Driving `nw-peer hold` and `nw-peer synflood`: processes that keep
//! sockets open until their stdin closes, steered by lines on stdin.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::peer_proc::nw_peer_bin;
use crate::process::{kill_and_reap, wait_timeout, Lines};

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running holder; its sockets close when it is dropped.
pub struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
    what: String,
    /// Every JSON line read so far, in order.
    pub log: Vec<Value>,
    /// The first line: what it opened.
    pub announced: Value,
}

/// One connection's ends as the holder reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl Held {
    /// `nw-peer hold ARGS`.
    pub fn hold(args: &[&str]) -> Self {
        let mut cmd = Command::new(nw_peer_bin());
        cmd.arg("hold").args(args);
        Self::spawn(cmd)
    }

    /// Runs `cmd` (an nw-peer holder, maybe under `ip netns exec`) and
    /// waits for its announcement.
    pub fn spawn(mut cmd: Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = Lines::spawn(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::spawn(child.stderr.take().expect("piped stderr"));
        let mut held = Self { child, stdin, stdout, stderr, what, log: Vec::new(), announced: Value::Null };
        held.announced = held.next_json(ANNOUNCE_TIMEOUT);
        held
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pid of the `--share` child, if any.
    pub fn sharer(&self) -> Option<u32> {
        self.announced["sharer"].as_u64().map(|p| u32::try_from(p).expect("pid"))
    }

    /// `listeners` of the announcement.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        self.announced["listeners"].as_array().map(|a| a.iter().map(addr).collect()).unwrap_or_default()
    }

    /// `connected` of the announcement.
    pub fn connected(&self) -> Vec<Ends> {
        self.announced["connected"].as_array().map(|a| a.iter().map(ends).collect()).unwrap_or_default()
    }

    /// `udp` of the announcement: `(local, remote if connected)`.
    pub fn udp(&self) -> Vec<(SocketAddr, Option<SocketAddr>)> {
        let items = self.announced["udp"].as_array().cloned().unwrap_or_default();
        items.iter().map(|u| (addr(&u["local"]), u["remote"].as_str().map(|_| addr(&u["remote"])))).collect()
    }

    /// Waits until the listeners have accepted `n` connections in all;
    /// returns them.
    pub fn accepted(&mut self, n: usize) -> Vec<Ends> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let got: Vec<Ends> =
                self.log.iter().filter(|v| v.get("accepted").is_some()).map(|v| ends(&v["accepted"])).collect();
            if got.len() >= n {
                return got;
            }
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            assert!(
                !left.is_zero(),
                "{}: {} of {n} connections accepted within {REPLY_TIMEOUT:?}",
                self.what,
                got.len()
            );
            self.next_json(left);
        }
    }

    /// `connect ADDR`: one more held connection.
    pub fn connect(&mut self, to: SocketAddr) -> Ends {
        ends(&self.command(&format!("connect {to}"), "connected")["connected"])
    }

    /// `close PORT` or `close ADDR` (a connection's end: one connection,
    /// where a port may name an IPv4 and an IPv6 one); returns how many
    /// connections it closed.
    pub fn close(&mut self, end: impl std::fmt::Display) -> u64 {
        self.command(&format!("close {end}"), "closed")["count"].as_u64().expect("count")
    }

    /// `reset PORT|ADDR` (SO_LINGER 0, then close); returns how many.
    pub fn reset(&mut self, end: impl std::fmt::Display) -> u64 {
        self.command(&format!("reset {end}"), "reset")["count"].as_u64().expect("count")
    }

    fn command(&mut self, line: &str, reply_key: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).unwrap_or_else(|e| panic!("{}: {line}: {e}", self.what));
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            let v = self.next_json(left);
            if let Some(e) = v.get("error") {
                panic!("{}: `{line}` failed: {e}", self.what);
            }
            if v.get(reply_key).is_some() {
                return v;
            }
        }
    }

    fn next_json(&mut self, timeout: Duration) -> Value {
        let Some(line) = self.stdout.next_line(timeout) else {
            panic!("{} printed nothing within {timeout:?}; stderr: {:?}", self.what, self.stderr.snapshot());
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: bad JSON {line:?}: {e}", self.what));
        self.log.push(v.clone());
        v
    }
}

impl Drop for Held {
    /// Closing stdin ends it cleanly; a kill makes sure.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if wait_timeout(&mut self.child, Duration::from_secs(2)).is_none() {
            kill_and_reap(&mut self.child);
        }
    }
}

fn addr(v: &Value) -> SocketAddr {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a socket address: {v}"))
}

fn ends(v: &Value) -> Ends {
    Ends { local: addr(&v["local"]), remote: addr(&v["remote"]) }
}
