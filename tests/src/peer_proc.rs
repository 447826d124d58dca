//! Driving `nw-peer` processes from a test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::process::{kill_and_reap, wait_timeout, Lines};

static NW_PEER_BIN: OnceLock<PathBuf> = OnceLock::new();

/// Records where `nw-peer` is: integration tests pass
/// `env!("CARGO_BIN_EXE_nw-peer")`, which only they can see.
pub fn set_nw_peer_bin(path: impl Into<PathBuf>) {
    let path = path.into();
    let first = NW_PEER_BIN.get_or_init(|| path.clone());
    assert_eq!(*first, path, "nw-peer binary set twice, differently");
}

/// Path of `nw-peer`: as set, else next to the test binary's `deps/` folder.
pub fn nw_peer_bin() -> PathBuf {
    let path = NW_PEER_BIN.get().cloned().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent().and_then(|deps| deps.parent()).expect("test binary in target/*/deps").join("nw-peer")
    });
    assert!(path.is_file(), "nw-peer not found at {}", path.display());
    path
}

/// A running `nw-peer`; killed on drop if still running.
pub struct Peer {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    args: Vec<String>,
}

/// What `nw-peer server` announced.
#[derive(Clone, Copy, Debug)]
pub struct ServerInfo {
    pub pid: u32,
    pub addr: SocketAddr,
}

/// What `nw-peer client` reported after its last connection.
#[derive(Clone, Debug)]
pub struct ClientReport {
    pub pid: u32,
    pub local_ports: Vec<u16>,
}

impl Peer {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_program(Command::new(nw_peer_bin()), args)
    }

    /// Like [`Peer::spawn`], through another program (e.g. `ip netns exec`).
    pub fn spawn_program(mut program: Command, args: &[&str]) -> Self {
        let mut child = program
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning nw-peer {args:?}: {e}"));
        let stdout = Lines::spawn(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::spawn(child.stderr.take().expect("piped stderr"));
        Self { child, stdout, stderr, args: args.iter().map(|s| (*s).to_owned()).collect() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next JSON line on stdout (panics after `timeout`).
    pub fn json_line(&mut self, timeout: Duration) -> Value {
        let Some(line) = self.stdout.next_line(timeout) else {
            panic!("nw-peer {:?} printed no line within {timeout:?}; stderr: {:?}", self.args, self.stderr.snapshot())
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("nw-peer {:?}: bad JSON {line:?}: {e}", self.args))
    }

    /// Waits for exit (panics after `timeout` or on a non-zero status).
    pub fn wait_success(&mut self, timeout: Duration) -> ExitStatus {
        let status = wait_timeout(&mut self.child, timeout);
        match status {
            Some(s) if s.success() => s,
            other => panic!(
                "nw-peer {:?}: expected exit 0 within {timeout:?}, got {other:?}; stderr: {:?}",
                self.args,
                self.stderr.snapshot()
            ),
        }
    }

    /// Starts `nw-peer server` and reads its announcement.
    pub fn server(addr: &str, count: Option<u64>) -> (Self, ServerInfo) {
        let count = count.map(|n| n.to_string());
        let mut args = vec!["server", "--addr", addr];
        if let Some(n) = &count {
            args.extend(["--count", n]);
        }
        let mut peer = Self::spawn(&args);
        let (info, _) = peer.server_announcement();
        (peer, info)
    }

    /// A server's first line: its pid and address, and what else it said.
    fn server_announcement(&mut self) -> (ServerInfo, Value) {
        let v = self.json_line(Duration::from_secs(10));
        let info = ServerInfo {
            pid: json_u32(&v, "pid"),
            addr: v["addr"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad addr in {v}")),
        };
        assert_eq!(info.pid, self.pid(), "server announced another pid: {v}");
        (info, v)
    }

    /// Starts `nw-peer server --accept-in-child`: this process listens, a
    /// forked worker accepts. Returns the worker's pid with the rest.
    pub fn prefork_server(addr: &str, count: u64) -> (Self, ServerInfo, u32) {
        let count = count.to_string();
        let mut peer = Self::spawn(&["server", "--addr", addr, "--count", &count, "--accept-in-child"]);
        let (info, v) = peer.server_announcement();
        (peer, info, json_u32(&v, "worker"))
    }

    /// Runs `nw-peer client` to completion.
    pub fn client(to: SocketAddr, count: u64, hold_ms: u64) -> ClientReport {
        let (to, count_s, hold) = (to.to_string(), count.to_string(), hold_ms.to_string());
        let mut peer = Self::spawn(&["client", "--to", &to, "--count", &count_s, "--hold-ms", &hold]);
        let timeout = Duration::from_secs(30 + count * (hold_ms + 20) / 1000);
        peer.wait_success(timeout);
        let v = peer.json_line(Duration::from_secs(5));
        let ports = v["local_ports"].as_array().unwrap_or_else(|| panic!("no local_ports in {v}"));
        let local_ports: Vec<u16> =
            ports.iter().map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()).expect("port")).collect();
        assert_eq!(local_ports.len() as u64, count, "client reported {v}");
        ClientReport { pid: json_u32(&v, "pid"), local_ports }
    }

    /// Runs `nw-peer refuse` (which must be refused); returns its pid and
    /// the local port its connect had used.
    pub fn refuse(to: SocketAddr) -> (u32, u16) {
        let to = to.to_string();
        let mut peer = Self::spawn(&["refuse", "--to", &to]);
        peer.wait_success(Duration::from_secs(10));
        let v = peer.json_line(Duration::from_secs(5));
        let port = json_u32(&v, "local_port");
        (json_u32(&v, "pid"), u16::try_from(port).unwrap_or_else(|_| panic!("local_port {port} in {v}")))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

fn json_u32(v: &Value, key: &str) -> u32 {
    v[key].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or_else(|| panic!("no numeric {key:?} in {v}"))
}
