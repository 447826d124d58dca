//! `nw-peer server`: a listener whose accepted connections are read to EOF.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};
use serde_json::json;

/// Binds, announces `{"pid","addr"}` right away (the harness waits for it
/// before connecting), then serves `count` connections, or forever.
pub(super) fn run(addr: SocketAddr, count: Option<u64>) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("getsockname on the listener")?;
    super::print_line(&json!({ "pid": std::process::id(), "addr": local.to_string() }))?;
    let mut accepted = 0u64;
    while count.is_none_or(|n| accepted < n) {
        let (mut stream, peer) = listener.accept().context("accept")?;
        accepted += 1;
        let mut buf = [0u8; 256];
        // Read to EOF so the client closes first (FIN_WAIT on its side,
        // CLOSE_WAIT/LAST_ACK on ours); a reset just ends this connection.
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) => {
                    eprintln!("nw-peer server: reading from {peer}: {err}");
                    break;
                }
            }
        }
    }
    Ok(())
}
