//! `nw-peer client` and `nw-peer refuse`: outgoing connections.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// `count` sequential connections: connect, write one byte, hold, close.
///
/// Just `close`, no `shutdown` first: a close after a shutdown makes the
/// kernel "move" FIN_WAIT1 to FIN_WAIT1 again, a transition tests would
/// then have to expect.
pub(super) fn run(to: SocketAddr, count: u64, hold_ms: u64) -> Result<Value> {
    let mut local_ports = Vec::new();
    for i in 0..count {
        let mut stream = TcpStream::connect(to).with_context(|| format!("connection {i}: connecting to {to}"))?;
        let local = stream.local_addr().context("getsockname after connect")?;
        local_ports.push(local.port());
        stream.write_all(b"x").context("writing one byte")?;
        sleep(Duration::from_millis(hold_ms));
        drop(stream);
    }
    Ok(json!({
        "pid": std::process::id(),
        "local_ports": local_ports,
        "connections": count,
    }))
}

/// One connect that must be refused (nothing listens at `to`).
pub(super) fn refuse(to: SocketAddr) -> Result<Value> {
    match TcpStream::connect(to) {
        Ok(stream) => bail!("connect to {to} succeeded (from {:?}); something listens there", stream.local_addr()),
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
            Ok(json!({ "pid": std::process::id(), "error": err.to_string() }))
        }
        Err(err) => Err(err).with_context(|| format!("connect to {to} failed, but was not refused")),
    }
}
