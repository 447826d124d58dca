//! netwatch: a live TCP/UDP connection tracer.
//!
//! How an event travels, folder by folder:
//!
//! 1. Born in the kernel: the programs of the `netwatch-ebpf` crate run on
//!    the TCP state machine and write [`netwatch_common::SockEvent`]
//!    records into a ring buffer.
//! 2. Loaded by `probe` (programs, maps, kernel offsets), started and
//!    stopped by `live::Tracing`.
//! 3. Crosses into user space in `stream`: a reader thread drains the ring
//!    into batches.
//! 4. Decoded in `event` (typed, its tuple and owner completed), in the
//!    words of `socket` (protocol, family, TCP state, owner).
//! 5. Applied to the live model, `live` + `table`: every socket (seeded
//!    from the kernel by `seed`), its owners, the closed history and the
//!    counters.
//! 6. Shown by one consumer per output: `cmd::events` (the event stream,
//!    through `output::text` / `output::json`), `tui` (the full-screen
//!    view), `cmd::snapshot` with `output::snapshot`, `serve` (metrics,
//!    export, alerts) and `netstat` (net-tools' views, `-c` included).
//!
//! `cli` is the command line, `cmd` one module per command; `main.rs` only
//! parses and calls [`run`].

mod baseline;
mod cli;
mod cmd;
mod duration;
mod event;
mod filter;
mod holders;
mod live;
mod names;
mod netstat;
mod output;
mod plugin;
mod probe;
mod seed;
mod serve;
mod socket;
mod stats;
mod stream;
mod table;
mod tui;
mod why;
mod workload;

use std::{io::IsTerminal as _, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
pub use cli::{parse, Cli};

/// Closed connections the live views keep: enough that a burst of tens of
/// thousands of closes elsewhere does not push a short-lived connection of
/// interest out before anyone looked.
const HISTORY: usize = 10_000;

/// Runs the parsed command line. Most commands succeed or fail; `check`
/// and `diff` have exit codes of their own (monitoring plugins, diff(1)).
pub fn run(cli: Cli) -> Result<ExitCode> {
    if cli.command.is_none() && cli.netstat.requested() {
        return netstat::run(&cli.netstat).map(|()| ExitCode::SUCCESS);
    }
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async {
        match cli.command {
            Some(cli::Command::Events(args)) => cmd::events::run(&args).await,
            Some(cli::Command::Snapshot(args)) => cmd::snapshot::run(&args).await,
            Some(cli::Command::Serve(args)) => cmd::serve::run(&args).await,
            Some(cli::Command::Check(args)) => return Ok(cmd::check::run(&args)),
            Some(cli::Command::Diff(args)) => return Ok(cmd::diff::run(&args)),
            Some(cli::Command::Completions(args)) => cmd::docs::completions(&args, Cli::command()),
            Some(cli::Command::Man(args)) => cmd::docs::man(&args, Cli::command()),
            // The full-screen view needs a terminal; scripts get the stream.
            None if std::io::stdout().is_terminal() => tui::run(live::Live::start(HISTORY).await?).await,
            None => cmd::events::run(&Default::default()).await,
        }
        .map(|()| ExitCode::SUCCESS)
    })
}

/// A closed stdout (`netwatch events | head`) is a normal way to stop.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
