//! Driving `nw-peer traffic-server` and `traffic-client` from a test.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::peer_proc::{nw_peer_bin, Peer};

/// One side of a transfer, as it announced itself.
pub struct Side {
    pub peer: Peer,
    pub pid: u32,
    /// The server's bound address, or the client's local address.
    pub addr: SocketAddr,
}

fn addr_of(v: &Value, key: &str) -> SocketAddr {
    v[key].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no address {key:?} in {v}"))
}

fn announced(mut peer: Peer, key: &str) -> Side {
    let v = peer.json_line(Duration::from_secs(15));
    let pid = v["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).unwrap_or_else(|| panic!("no pid in {v}"));
    assert_eq!(pid, peer.pid(), "announced another pid: {v}");
    Side { addr: addr_of(&v, key), pid, peer }
}

/// `nw-peer traffic-server PROTO --addr ADDR ARGS...`, run inside `netns`
/// when given (`ip netns exec` execs, so the pid is nw-peer's own).
pub fn server(proto: &str, addr: &str, args: &[&str], netns: Option<&str>) -> Side {
    let mut all = vec!["traffic-server", "--proto", proto, "--addr", addr];
    all.extend_from_slice(args);
    announced(spawn(&all, netns), "addr")
}

/// `nw-peer traffic-client PROTO --to TO ARGS...`.
pub fn client(proto: &str, to: SocketAddr, args: &[&str], netns: Option<&str>) -> Side {
    let to = to.to_string();
    let mut all = vec!["traffic-client", "--proto", proto, "--to", &to];
    all.extend_from_slice(args);
    announced(spawn(&all, netns), "local")
}

fn spawn(args: &[&str], netns: Option<&str>) -> Peer {
    match netns {
        None => Peer::spawn(args),
        Some(ns) => {
            let bin = nw_peer_bin();
            let bin = bin.to_str().expect("nw-peer path is UTF-8");
            let mut all = vec!["netns", "exec", ns, bin];
            all.extend_from_slice(args);
            Peer::spawn_program(Command::new("ip"), &all)
        }
    }
}

impl Side {
    /// Waits for the final report and exit 0; returns the report.
    pub fn finish(&mut self, timeout: Duration) -> Value {
        self.peer.wait_success(timeout);
        self.peer.json_line(Duration::from_secs(5))
    }
}
