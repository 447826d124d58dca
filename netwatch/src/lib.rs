//! netwatch: a live TCP connection tracer.
//!
//! Follow an event from birth to screen: the kernel programs in
//! `netwatch-ebpf` write [`netwatch_common::SockEvent`] records; [`probe`]
//! loads and attaches them; [`stream`] drains the ring buffer; [`event`]
//! decodes records; [`filter`] and [`output`] decide what is shown and how;
//! [`cmd`] holds one module per command.

mod baseline;
mod cli;
mod cmd;
mod duration;
mod event;
mod filter;
mod live;
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
