//! `nw-peer`: socket workloads run as separate processes, so that the events
//! netwatch reports can be checked against a PID that is not the test's own.
//!
//! Every subcommand prints exactly one JSON line to stdout describing what it
//! did (its PID, the ports it used); the test harness parses that line. Only
//! loopback addresses are ever used.

mod bulk;
mod churn;
mod client;
mod hold;
mod server;
mod synflood;
mod traffic;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

pub use churn::{churn, ChurnConfig, ChurnReport, CloseFirst};
pub use traffic::Proto as TrafficProto;

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
        /// Listen here, accept in a forked worker (as a pre-forking server
        /// does), and announce its pid as `"worker"` too.
        #[arg(long)]
        accept_in_child: bool,
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
    /// print `{"connections","seconds","rate"}` and, where the scheduler
    /// says, `"ran_seconds","waited_seconds"` (see `ChurnReport`).
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
    /// Open sockets and hold them until stdin closes; print what was opened,
    /// then obey `connect ADDR`, `close PORT`, `reset PORT` lines on stdin.
    Hold {
        /// TCP listener (repeatable); accepted connections are held and announced.
        #[arg(long)]
        listen: Vec<SocketAddr>,
        /// Self-connected pairs to make on each listener first (both ends held).
        #[arg(long, default_value_t = 0)]
        pairs: u32,
        /// Outgoing TCP connection to hold (repeatable).
        #[arg(long)]
        connect: Vec<SocketAddr>,
        /// Unconnected UDP socket (repeatable).
        #[arg(long)]
        udp_bind: Vec<SocketAddr>,
        /// Connected UDP socket, from an ephemeral port (repeatable).
        #[arg(long)]
        udp_connect: Vec<SocketAddr>,
        /// Fork a child that holds every socket too (two owners each).
        #[arg(long)]
        share: bool,
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
    /// One loopback TCP stream of `--bytes` (or for `--seconds`) as fast as
    /// it goes; print `{"bytes","seconds","rate","sender_cpu","receiver_cpu"}`
    /// (rate in bytes/s).
    Bulk {
        #[arg(long, default_value_t = 4 << 30)]
        bytes: u64,
        /// Send for this long instead of a fixed number of bytes.
        #[arg(long, conflicts_with = "bytes")]
        seconds: Option<f64>,
        /// Use ::1 instead of 127.0.0.1.
        #[arg(long)]
        v6: bool,
        /// Pin the sending thread to this CPU.
        #[arg(long)]
        sender_cpu: Option<usize>,
        /// Pin the receiving thread to this CPU.
        #[arg(long)]
        receiver_cpu: Option<usize>,
    },
    /// Listen (TCP) or bind (UDP), print `{"pid","addr"}`; take one peer's
    /// `--expect` bytes, answer `--send` bytes, and when the peer is done
    /// print `{"pid","local","peer","received","sent"}`.
    TrafficServer {
        #[arg(long, value_enum, default_value_t = traffic::Proto::Tcp)]
        proto: traffic::Proto,
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Connect (TCP) or bind an unconnected socket (UDP), print
    /// `{"pid","local"}`; send `--send` bytes, take `--expect` back, hold,
    /// close, print `{"pid","local","received","sent"}`.
    TrafficClient {
        #[arg(long, value_enum, default_value_t = traffic::Proto::Tcp)]
        proto: traffic::Proto,
        #[arg(long)]
        to: SocketAddr,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Listen, send raw SYNs from a spoofed loopback source (in a namespace
    /// whose SYN-ACKs go nowhere), hold the half-open connections until stdin closes.
    Synflood {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.2")]
        from: Ipv4Addr,
        #[arg(long, default_value_t = 8)]
        count: u16,
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
}

/// How a traffic peer moves its bytes.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Bytes to send.
    #[arg(long, default_value_t = 0)]
    send: u64,
    /// Bytes to receive before answering (server) or closing (client).
    #[arg(long, default_value_t = 0)]
    expect: u64,
    /// Write size, or datagram size for UDP.
    #[arg(long, default_value_t = 1000)]
    chunk: usize,
    /// Pause between writes, in ms.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Keep the socket open this long after the transfer, in ms.
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Close with SO_LINGER 0, which sends a reset (TCP client).
    #[arg(long)]
    reset: bool,
}

impl PlanArgs {
    fn plan(&self) -> traffic::Plan {
        traffic::Plan {
            send: self.send,
            expect: self.expect,
            chunk: self.chunk,
            interval_ms: self.interval_ms,
            hold_ms: self.hold_ms,
            reset: self.reset,
        }
    }
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
        Command::Server { addr, count, accept_in_child } => return server::run(addr, count, accept_in_child),
        // These announce themselves once set up, then hold until stdin closes.
        Command::Hold { listen, pairs, connect, udp_bind, udp_connect, share, max_seconds } => {
            return hold::run(&hold::HoldConfig { listen, pairs, connect, udp_bind, udp_connect, share, max_seconds })
        }
        Command::Synflood { listen, from, count, max_seconds } => {
            return synflood::run(listen, from, count, max_seconds)
        }
        Command::TrafficServer { proto, addr, plan } => return traffic::server(proto, addr, &plan.plan()),
        Command::TrafficClient { proto, to, plan } => return traffic::client(proto, to, &plan.plan()),
        Command::Client { to, count, hold_ms } => client::run(to, count, hold_ms)?,
        Command::Bulk { bytes, seconds, v6, sender_cpu, receiver_cpu } => {
            if seconds.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                anyhow::bail!("--seconds must be a positive number");
            }
            bulk::run(&bulk::BulkConfig { bytes, seconds, v6, sender_cpu, receiver_cpu })?
        }
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
            let mut line = serde_json::json!({
                "connections": report.connections,
                "seconds": report.seconds,
                "rate": report.rate,
            });
            if let (Some(ran), Some(waited)) = (report.ran_seconds, report.waited_seconds) {
                line["ran_seconds"] = serde_json::json!((ran * 1e6).round() / 1e6);
                line["waited_seconds"] = serde_json::json!((waited * 1e6).round() / 1e6);
            }
            line
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
