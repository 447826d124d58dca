//! `nw-peer`: socket workloads run as separate processes, so that the events
//! netwatch reports can be checked against a PID that is not the test's own.
//!
//! Every subcommand prints exactly one JSON line to stdout describing what it
//! did (its PID, the ports it used); the test harness parses that line. Only
//! loopback addresses are ever used.

mod churn;
mod client;
mod server;

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

pub use churn::{churn, ChurnConfig, ChurnReport, CloseFirst};

/// Command line of `nw-peer`.
#[derive(Debug, Parser)]
#[command(name = "nw-peer", about = "Loopback socket workloads for netwatch's tests and benchmarks")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Listen, print `{"pid","addr"}`, accept connections (each read to EOF, then closed).
    Server {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Exit after this many connections (default: serve forever).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Make N sequential connections; print `{"pid","local_ports","connections"}`.
    Client {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// How long each connection stays open after writing its byte.
        #[arg(long, default_value_t = 3)]
        hold_ms: u64,
    },
    /// Connect once to a port where nothing listens; print `{"pid","error"}`.
    Refuse {
        #[arg(long)]
        to: SocketAddr,
    },
    /// Loopback connect/accept/close as fast as possible (or at --rate);
    /// print `{"connections","seconds","rate"}`.
    Churn {
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Use ::1 instead of 127.0.0.0/8.
        #[arg(long)]
        v6: bool,
        /// Target connections per second (default: unpaced).
        #[arg(long)]
        rate: Option<f64>,
        /// Which end closes first (and so holds the TIME_WAIT).
        #[arg(long, value_enum, default_value_t = CloseFirstArg::Server)]
        close_first: CloseFirstArg,
        /// Listeners to rotate over (127.0.0.1, 127.0.0.2, ...; ports differ for ::1).
        #[arg(long, default_value_t = 1)]
        listeners: u8,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CloseFirstArg {
    Server,
    Client,
}

/// Runs one subcommand and prints its JSON line.
pub fn run(cli: Cli) -> Result<()> {
    let line = match cli.command {
        // The server announces itself when it starts listening, not at the end.
        Command::Server { addr, count } => return server::run(addr, count),
        Command::Client { to, count, hold_ms } => client::run(to, count, hold_ms)?,
        Command::Refuse { to } => client::refuse(to)?,
        Command::Churn { seconds, v6, rate, close_first, listeners } => {
            let config = ChurnConfig {
                seconds,
                v6,
                rate,
                close_first: match close_first {
                    CloseFirstArg::Server => CloseFirst::Server,
                    CloseFirstArg::Client => CloseFirst::Client,
                },
                listeners,
            };
            let report = churn(&config)?;
            serde_json::json!({
                "connections": report.connections,
                "seconds": report.seconds,
                "rate": report.rate,
            })
        }
    };
    print_line(&line)
}

/// Prints one JSON line and flushes, so a parent reading a pipe sees it now.
pub(crate) fn print_line(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}").context("writing to stdout")?;
    out.flush().context("flushing stdout")
}
