//! Helpers for netwatch's privileged integration tests (`tests/events.rs`),
//! and `nw-peer`, the workload generator they drive.
//!
//! Two conventions: a test that makes traffic runs in a network namespace of
//! its own ([`netns::own`]) and picks netwatch's output by that namespace;
//! a test that needs something to have happened waits for it with
//! [`wait::until`], never with a fixed sleep.

pub mod bpf;
pub mod conn;
pub mod drops;
pub mod event;
pub mod held;
pub mod netns;
pub mod netwatch;
pub mod oneshot;
pub mod peer;
pub mod peer_proc;
pub mod process;
pub mod snapshot;
pub mod ss;
pub mod table_diff;
pub mod traffic_peer;
pub mod wait;

pub use conn::{Owner, Problems, Role};
pub use event::{Parsed, SockEvent};
pub use netwatch::{netwatch_bin, require_root, Netwatch, Stopped};
pub use peer_proc::{nw_peer_bin, set_nw_peer_bin, ClientReport, Peer, ServerInfo};

/// A port nothing listens on right now (bound, then released).
pub fn free_port(ip: std::net::IpAddr) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).expect("binding an ephemeral port");
    l.local_addr().expect("getsockname").port()
}

/// Start of every privileged test: fails unless root, and records where
/// `nw-peer` is (pass `env!("CARGO_BIN_EXE_nw-peer")`).
pub fn setup(nw_peer: &str) {
    require_root();
    set_nw_peer_bin(nw_peer);
}
