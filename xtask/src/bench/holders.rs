//! Tens of thousands of open loopback sockets for the seeding scenario:
//! `nw-peer hold --pairs N` processes (tests crate), each connecting N
//! pairs to its own listener and holding both ends until its stdin closes.
//! Spread over processes because one may hold at most `ulimit -n` files.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use super::Ctx;
use crate::cmd;

/// Making the pairs takes well under a second per 5,000 on an idle machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Holders {
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Holders {
    /// `processes` holders of `pairs` established pairs each, all made
    /// before this returns.
    pub fn start(ctx: &Ctx, processes: usize, pairs: u32) -> Result<Holders> {
        let mut holders = Holders { children: Vec::new() };
        let (tx, rx) = mpsc::channel();
        for _ in 0..processes {
            let mut command = Command::new(&ctx.peer);
            command.args(["hold", "--listen", "127.0.0.1:0", "--pairs", &pairs.to_string(), "--max-seconds", "900"]);
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
            let mut child =
                command.spawn().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().context("nw-peer hold's stdout was not captured")?;
            let tx = tx.clone();
            // The first line comes once every pair is made; EOF means it failed.
            thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            holders.children.push((child, stdin));
        }
        for _ in 0..processes {
            match rx.recv_timeout(READY_TIMEOUT) {
                Ok(line) if line.contains("\"pid\"") => {}
                Ok(line) => {
                    bail!("an `nw-peer hold --pairs {pairs}` failed (its output: {line:?}); is `ulimit -n` too low?")
                }
                Err(_) => bail!("`nw-peer hold --pairs {pairs}` not ready within {} s", READY_TIMEOUT.as_secs()),
            }
        }
        Ok(holders)
    }
}

impl Drop for Holders {
    /// Closing stdin ends a holder; kill whatever does not go.
    fn drop(&mut self) {
        for (child, stdin) in &mut self.children {
            drop(stdin.take());
            if !matches!(cmd::wait_timeout(child, Duration::from_secs(5)), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
