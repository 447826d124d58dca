//! `nw-peer server`: a listener whose accepted connections are read to EOF.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};
use serde_json::json;

/// Binds, announces `{"pid","addr"}` right away (the harness waits for it
/// before connecting), then serves `count` connections, or forever. With
/// `in_child`, a forked worker serves them, and the announcement names it
/// (`"worker"`); this process only listened, and waits for it.
pub(super) fn run(addr: SocketAddr, count: Option<u64>, in_child: bool) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("getsockname on the listener")?;
    let pid = std::process::id();
    if !in_child {
        super::print_line(&json!({ "pid": pid, "addr": local.to_string() }))?;
        return serve(&listener, count);
    }
    // SAFETY: this process has one thread, so the child inherits a
    // consistent copy and may run ordinary code.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            let status = match serve(&listener, count) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("nw-peer server worker: {e:#}");
                    1
                }
            };
            // SAFETY: ends the worker without running the parent's exit path twice.
            unsafe { libc::_exit(status) }
        }
        worker => {
            super::print_line(&json!({ "pid": pid, "worker": worker, "addr": local.to_string() }))?;
            let mut status = 0;
            // SAFETY: waits for our own child into a local.
            if unsafe { libc::waitpid(worker, &mut status, 0) } != worker {
                return Err(std::io::Error::last_os_error()).context("waitpid");
            }
            anyhow::ensure!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the worker failed: {status}");
            Ok(())
        }
    }
}

fn serve(listener: &TcpListener, count: Option<u64>) -> Result<()> {
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
