//! Parser for `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! Row formats: net/ipv4/tcp_ipv4.c `get_tcp4_sock`, `get_openreq4`,
//! `get_timewait4_sock`; net/ipv6/tcp_ipv6.c `get_tcp6_sock` and friends;
//! net/ipv4/udp.c `udp4_format_sock`, net/ipv6/datagram.c
//! `__ip6_dgram_sock_seq_show`. The ten columns up to `inode` are common to
//! all of them; what follows differs by row kind and is ignored.
//!
//! Addresses are printed as `%08X` of each 32-bit word of the network-order
//! address read as a host-order integer, so the bytes come back with
//! `to_ne_bytes` (on x86, 127.0.0.1 is `0100007F`, ::1 ends in `01000000`).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use anyhow::{anyhow, Context, Result};

use super::{Family, Proto, SeedSocket, TcpState, Timer, TimerKind};

/// The kernel reports /proc timer values in USER_HZ ticks, which the ABI
/// fixes at 100 on the architectures netwatch runs on.
const USER_HZ: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcNetFile {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
}

impl ProcNetFile {
    pub const ALL: [Self; 4] = [Self::Tcp, Self::Tcp6, Self::Udp, Self::Udp6];

    /// File name under `/proc/net`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tcp6 => "tcp6",
            Self::Udp => "udp",
            Self::Udp6 => "udp6",
        }
    }

    pub const fn proto(self) -> Proto {
        match self {
            Self::Tcp | Self::Tcp6 => Proto::Tcp,
            Self::Udp | Self::Udp6 => Proto::Udp,
        }
    }

    pub const fn family(self) -> Family {
        match self {
            Self::Tcp | Self::Udp => Family::V4,
            Self::Tcp6 | Self::Udp6 => Family::V6,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ProcNetTable {
    /// Rows in file order, `owners` empty, `cookie` `None`.
    pub sockets: Vec<SeedSocket>,
    /// The text did not end in a newline: its last line was dropped.
    pub truncated: bool,
}

/// Reads `dir/<file>`; `dir` is `/proc/net` or `/proc/PID/net` (the latter
/// shows the sockets of PID's network namespace).
pub fn read_proc_net(dir: &Path, file: ProcNetFile, netns: u32) -> Result<ProcNetTable> {
    let path = dir.join(file.name());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_proc_net(file, &path.display().to_string(), &text, netns)
}

/// Parses the text of one table. `source` names it in errors. Any malformed
/// line is an error naming `source` and the line number, except a last line
/// without its newline, which a reader racing the kernel may see: that one
/// is dropped and flagged in [`ProcNetTable::truncated`].
pub fn parse_proc_net(file: ProcNetFile, source: &str, text: &str, netns: u32) -> Result<ProcNetTable> {
    let mut table = ProcNetTable::default();
    let mut body = text;
    if !body.is_empty() && !body.ends_with('\n') {
        body = body.rfind('\n').map_or("", |i| &body[..=i]);
        table.truncated = true;
    }
    let mut lines = body.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim_start().starts_with("sl") => {}
        Some(_) => return Err(anyhow!("{source} line 1: expected the `sl ...` header")),
        None if table.truncated => return Ok(table),
        None => return Err(anyhow!("{source}: empty, expected at least a header")),
    }
    table.sockets.reserve(body.len() / 150);
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let socket = parse_row(file, line, netns)
            .map_err(|what| anyhow!("{source} line {}: {what}: {:?}", i + 1, line.trim()))?;
        table.sockets.push(socket);
    }
    Ok(table)
}

fn parse_row(file: ProcNetFile, line: &str, netns: u32) -> Result<SeedSocket, String> {
    let mut cols = line.split_ascii_whitespace();
    let mut next = |name: &str| cols.next().ok_or_else(|| format!("missing column {name}"));
    let sl = next("sl")?;
    if sl.strip_suffix(':').and_then(|n| n.parse::<u32>().ok()).is_none() {
        return Err(format!("bad slot {sl:?}"));
    }
    let local = parse_endpoint(next("local_address")?, file.family())?;
    let remote = parse_endpoint(next("rem_address")?, file.family())?;
    let state = hex(next("st")?).and_then(TcpState::from_u8).ok_or("bad state")?;
    let (tx_queue, rx_queue) = hex_pair(next("tx_queue:rx_queue")?).ok_or("bad queues")?;
    let (tr, when) = next("tr:tm->when")?
        .split_once(':')
        .and_then(|(tr, when)| Some((hex(tr)?, hex::<u64>(when)?)))
        .ok_or("bad timer")?;
    let retrnsmt = hex(next("retrnsmt")?).ok_or("bad retrnsmt")?;
    let uid = next("uid")?.parse::<u32>().map_err(|_| "bad uid")?;
    let probes = next("timeout")?.parse::<u32>().map_err(|_| "bad timeout")?;
    let inode = next("inode")?.parse::<u64>().map_err(|_| "bad inode")?;

    let timer = TimerKind::from_code(tr).map(|kind| Timer {
        kind,
        expires: Duration::from_millis(when.saturating_mul(1000 / USER_HZ)),
        retransmits: match kind {
            TimerKind::Retransmit => retrnsmt,
            TimerKind::Probe | TimerKind::Keepalive => probes,
            TimerKind::TimeWait | TimerKind::Other(_) => 0,
        },
    });
    Ok(SeedSocket {
        proto: file.proto(),
        family: file.family(),
        local,
        remote,
        state,
        inode,
        uid,
        cookie: None,
        netns,
        owners: Vec::new(),
        timer,
        rx_queue,
        tx_queue,
        figures: None,
    })
}

/// `0100007F:1F90` or `00000000000000000000000001000000:1F90`.
fn parse_endpoint(s: &str, family: Family) -> Result<SocketAddr, String> {
    let bad = || format!("bad address {s:?}");
    let (addr, port) = s.split_once(':').ok_or_else(bad)?;
    let port = hex(port).ok_or_else(bad)?;
    let ip = match (family, addr.len()) {
        (Family::V4, 8) => IpAddr::V4(Ipv4Addr::from(hex::<u32>(addr).ok_or_else(bad)?.to_ne_bytes())),
        (Family::V6, 32) => {
            let mut bytes = [0u8; 16];
            for (word, chunk) in bytes.chunks_exact_mut(4).zip(addr.as_bytes().chunks_exact(4 * 2)) {
                let digits = std::str::from_utf8(chunk).map_err(|_| bad())?;
                word.copy_from_slice(&hex::<u32>(digits).ok_or_else(bad)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return Err(format!("address {s:?} does not fit the file's family")),
    };
    Ok(SocketAddr::new(ip, port))
}

fn hex_pair(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((hex(a)?, hex(b)?))
}

/// Hex digits only (`from_str_radix` alone would also take a sign), as a `T`.
fn hex<T: TryFrom<u64>>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    T::try_from(u64::from_str_radix(s, 16).ok()?).ok()
}

#[cfg(all(test, target_endian = "little"))]
#[path = "proc_net_tests.rs"]
mod tests;
