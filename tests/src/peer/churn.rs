//! `nw-peer churn`: a single-threaded loopback connection generator for the
//! overhead benchmark.
//!
//! Each round connects to one of our own listeners, accepts, and closes both
//! ends, so every connection goes through the whole TCP state machine: ten
//! `inet_sock_set_state` transitions (client CLOSE->SYN_SENT->ESTABLISHED,
//! child SYN_RECV->ESTABLISHED, then FIN_WAIT1/FIN_WAIT2/CLOSE on the side
//! that closes first and CLOSE_WAIT/LAST_ACK/CLOSE on the other).
//!
//! At tens of thousands of connections per second the TIME_WAIT sockets
//! matter: if the client closes first it keeps its ephemeral port in
//! TIME_WAIT and `connect` soon fails with EADDRNOTAVAIL (tcp_tw_reuse only
//! recycles a TIME_WAIT port after a second). Closing the server side first
//! puts TIME_WAIT on the listener's 4-tuple instead; a new SYN for the same
//! tuple is accepted over it (RFC 6191 with timestamps), so the client can
//! reuse its port at once.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Which end of each connection calls `close` first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseFirst {
    Server,
    Client,
}

#[derive(Clone, Debug)]
pub struct ChurnConfig {
    pub seconds: f64,
    pub v6: bool,
    /// Connections per second to aim for; `None` runs unpaced.
    pub rate: Option<f64>,
    pub close_first: CloseFirst,
    /// Listeners to rotate over: 127.0.0.1, .2, ... (all on ::1 for IPv6).
    pub listeners: u8,
}

#[derive(Clone, Copy, Debug)]
pub struct ChurnReport {
    pub connections: u64,
    pub seconds: f64,
    pub rate: f64,
    /// Seconds this thread ran, and waited runnable behind other tasks, by
    /// the scheduler's own account (`/proc/thread-self/schedstat`; `None`
    /// without CONFIG_SCHED_INFO). Their sum is the time the machine gave
    /// the generator: unlike wall time it leaves out what a hypervisor stole
    /// (with paravirt steal accounting), and unlike CPU time it keeps the
    /// time another process on the same CPU (a tracer) held it up.
    pub ran_seconds: Option<f64>,
    pub waited_seconds: Option<f64>,
}

/// (run time, run-queue wait) of the calling thread, in nanoseconds.
fn schedstat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some((fields.next()?.ok()?, fields.next()?.ok()?))
}

/// Runs the generator for `config.seconds` and reports what it achieved.
pub fn churn(config: &ChurnConfig) -> Result<ChurnReport> {
    let listeners = (1..=config.listeners.max(1))
        .map(|i| {
            let ip = if config.v6 { IpAddr::V6(Ipv6Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)) };
            TcpListener::bind((ip, 0)).with_context(|| format!("binding a listener on {ip}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let targets = listeners
        .iter()
        .map(|l| l.local_addr().context("getsockname on a listener"))
        .collect::<Result<Vec<SocketAddr>>>()?;

    let duration = Duration::from_secs_f64(config.seconds.max(0.0));
    let interval = config.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
    let sched_start = schedstat();
    let start = Instant::now();
    let mut connections = 0u64;
    let mut addr_busy = 0u64;
    while start.elapsed() < duration {
        if let Some(interval) = interval {
            let due = interval.saturating_mul(u32::try_from(connections).unwrap_or(u32::MAX));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                sleep(wait);
            }
        }
        let i = usize::try_from(connections).unwrap_or(0) % listeners.len();
        match one_connection(&listeners[i], targets[i], config.close_first) {
            Ok(()) => connections += 1,
            Err(err) if err.kind() == ErrorKind::AddrNotAvailable => {
                // Ephemeral ports exhausted: back off briefly instead of spinning.
                addr_busy += 1;
                sleep(Duration::from_micros(100));
            }
            Err(err) => return Err(err).context("churn connection"),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let sched = sched_start
        .zip(schedstat())
        .map(|((r0, w0), (r1, w1))| (r1.saturating_sub(r0) as f64 / 1e9, w1.saturating_sub(w0) as f64 / 1e9));
    if addr_busy > 0 {
        eprintln!("nw-peer churn: {addr_busy} connects failed with EADDRNOTAVAIL");
    }
    Ok(ChurnReport {
        connections,
        seconds: (seconds * 1000.0).round() / 1000.0,
        rate: (connections as f64 / seconds * 10.0).round() / 10.0,
        ran_seconds: sched.map(|s| s.0),
        waited_seconds: sched.map(|s| s.1),
    })
}

fn one_connection(listener: &TcpListener, to: SocketAddr, close_first: CloseFirst) -> std::io::Result<()> {
    let client = TcpStream::connect(to)?;
    let (server, _) = listener.accept()?;
    match close_first {
        CloseFirst::Server => {
            drop(server);
            drop(client);
        }
        CloseFirst::Client => {
            drop(client);
            drop(server);
        }
    }
    Ok(())
}
