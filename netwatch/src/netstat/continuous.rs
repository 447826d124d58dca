//! `-c` for the connection views: netstat's listing every second, and
//! after it the TCP connections and UDP sockets that opened and closed
//! between two refreshes, which netstat cannot see. Those come from the
//! live eBPF model ([`crate::live::Live`]); without it (not root, no BPF)
//! the listing still refreshes, as netstat's does, and says why once.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{addr::pad, conn, emit, flags::Opts, inet::Kind, names::Names, INTERVAL};
use crate::{event::clock::monotonic_ns, live::Live, seed::Proto, table::Closed};

/// Closed connections kept by the live model between two refreshes.
const HISTORY: usize = 65_536;

pub fn run(o: &Opts, names: &mut Names) -> Result<()> {
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async {
        let mut live = if conn::wants(o, Kind::Tcp) || conn::wants(o, Kind::Udp) {
            let live = Live::start(HISTORY).await;
            live.inspect_err(|e| eprintln!("netwatch: -c without the closed-connections block: {e:#}")).ok()
        } else {
            None
        };
        let netns = crate::seed::own_netns().unwrap_or(0);
        let mut shown: HashSet<(SocketAddr, SocketAddr)> = HashSet::new();
        let mut last_ns = monotonic_ns();
        loop {
            let snap = conn::read(o, Path::new("/proc"))?;
            let now_ns = monotonic_ns();
            let mut out = Vec::new();
            let result = conn::render(&mut out, &snap, o, names);
            if let Some(live) = &live {
                let closed: Vec<&Closed> = live
                    .table
                    .history()
                    .filter(|c| conn::wants(o, kind(c)) && c.netns == netns && c.closed_ns > last_ns)
                    .filter(|c| !shown.contains(&(c.local, c.remote)) && family_wanted(o, c))
                    .collect();
                closed_block(&mut out, &closed, o, names);
            }
            emit(&out)?;
            result?;
            shown = snap
                .inet
                .iter()
                .flat_map(|(_, t)| t)
                .flat_map(|t| t.rows.iter().flatten())
                .map(|r| (r.local, r.remote))
                .collect();
            last_ns = now_ns;
            let until = Instant::now() + INTERVAL;
            match &mut live {
                Some(live) => {
                    while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                        if live.next(left.min(Duration::from_millis(200))).await.is_none() {
                            break;
                        }
                    }
                }
                None => tokio::time::sleep(INTERVAL).await,
            }
        }
    })
}

/// The netstat listing a closed socket belongs to.
const fn kind(c: &Closed) -> Kind {
    match c.proto {
        Proto::Tcp => Kind::Tcp,
        Proto::Udp => Kind::Udp,
    }
}

/// The flags' family and `-a`/`-l` choice, as the listing applies them
/// (a TCP listener is a row without a remote port).
fn family_wanted(o: &Opts, c: &Closed) -> bool {
    let family = match c.local {
        SocketAddr::V4(_) => !o.arg || o.inet,
        SocketAddr::V6(_) => !o.arg || o.inet6,
    };
    family && (o.all || (c.remote.port() != 0) != o.listening)
}

/// The connections that came and went since the last refresh, in the
/// connection view's columns; the State column says how each ended.
fn closed_block(out: &mut Vec<u8>, closed: &[&Closed], o: &Opts, names: &mut Names) {
    if closed.is_empty() {
        return;
    }
    out.extend_from_slice(b"Opened and closed since last refresh (netwatch, from eBPF)\n");
    out.extend_from_slice(
        b"Proto Local Address           Foreign Address         State       PID/Program name     Lifetime\n",
    );
    for c in closed {
        let kind = kind(c);
        pad(out, kind.label(!c.local.is_ipv4()).as_bytes(), 5);
        out.push(b' ');
        names.push_endpoint(out, c.local, kind.service_proto(), o.wide);
        out.push(b' ');
        names.push_endpoint(out, c.remote, kind.service_proto(), o.wide);
        out.push(b' ');
        pad(out, c.ending.name().to_uppercase().as_bytes(), 11);
        out.push(b' ');
        let owner = crate::socket::Owner::label(c.owner.as_ref()).to_string();
        pad(out, owner.as_bytes(), 20);
        // Milliseconds, as `snapshot --for` and `events` give them: the
        // connections listed here mostly lived for less than one.
        let lifetime =
            c.duration_ns.map_or_else(|| "-".to_owned(), |ns| format!("{:.3}ms", crate::output::duration_ms(ns)));
        out.push(b' ');
        out.extend_from_slice(lifetime.as_bytes());
        out.push(b'\n');
    }
}
