//! Rows of `/proc/net/{tcp,udp,udplite,raw}{,6}` and their netstat lines
//! (netstat.c `tcp_do_one`, `udp_do_one`, `raw_do_one`, `finish_this_one`).
//!
//! The tables are parsed by the seed module's `/proc` parser, the very text
//! netstat reads; the two timer columns that parser does not keep
//! (`retrnsmt`, `timeout`) are read here for `-o`.

use std::{io::Write as _, net::SocketAddr};

use anyhow::Result;
use netwatch_common::tcp;

use super::{
    addr::pad,
    flags::Opts,
    names::Names,
    progs::{Programs, PROGNAME_WIDTH},
};
use crate::seed::{diag::DiagSocket, parse_proc_net, Family, ProcNetFile, Proto, SeedSocket, TimerKind};

/// One socket kind netstat lists, with its two files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Udp,
    UdpLite,
    Raw,
}

impl Kind {
    /// (file under /proc/net, label in the Proto column, parser layout).
    pub const fn files(self) -> [(&'static str, &'static str, ProcNetFile); 2] {
        match self {
            Self::Tcp => [("tcp", "tcp", ProcNetFile::Tcp), ("tcp6", "tcp6", ProcNetFile::Tcp6)],
            Self::Udp => [("udp", "udp", ProcNetFile::Udp), ("udp6", "udp6", ProcNetFile::Udp6)],
            Self::UdpLite => [("udplite", "udpl", ProcNetFile::Udp), ("udplite6", "udpl6", ProcNetFile::Udp6)],
            Self::Raw => [("raw", "raw", ProcNetFile::Udp), ("raw6", "raw6", ProcNetFile::Udp6)],
        }
    }

    /// The Proto column's label for an IPv4 or an IPv6 socket.
    pub const fn label(self, ipv6: bool) -> &'static str {
        self.files()[ipv6 as usize].1
    }

    /// The protocol whose service names apply (`get_sname`).
    pub const fn service_proto(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp | Self::UdpLite => "udp",
            Self::Raw => "raw",
        }
    }
}

/// One row with every field netstat prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InetRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub rx_queue: u32,
    pub tx_queue: u32,
    /// `tr`: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 probe.
    pub timer: u8,
    /// `tm->when` in USER_HZ ticks.
    pub when: u64,
    pub retrnsmt: u64,
    pub timeout: i64,
    pub uid: u32,
    pub inode: u64,
}

/// Parses one table's text into rows.
pub fn parse(file: ProcNetFile, source: &str, text: &str) -> Result<Vec<InetRow>> {
    let table = parse_proc_net(file, source, text, 0)?;
    let extra = timer_columns(text);
    let extra = if extra.len() == table.sockets.len() { extra } else { vec![(0, 0); table.sockets.len()] };
    Ok(table.sockets.iter().zip(extra).map(|(s, (retrnsmt, timeout))| row(s, retrnsmt, timeout)).collect())
}

/// The TCP rows of our namespace from sock_diag, or `None` to fall back
/// to /proc text. Every field netstat shows without `-o` is /proc's
/// (the seed module reports a listener's send queue as /proc does).
pub fn dump_tcp(diag: &DiagSocket, layout: ProcNetFile) -> Option<Vec<InetRow>> {
    let mut sockets = Vec::new();
    let info = diag.dump(Proto::Tcp, layout.family(), 0, &mut sockets).ok()?;
    // A dump the kernel flags as interrupted may miss rows: read the text.
    (!info.interrupted).then(|| sockets.iter().map(|s| row(s, 0, 0)).collect())
}

/// [`dump_tcp`] for both families in one dump (one walk of the kernel's
/// TCP tables instead of two): the IPv4 rows, then the IPv6 rows, each in
/// the order its own dump gives. `None` when the kernel does not offer it.
pub fn dump_tcp_both(diag: &DiagSocket) -> Option<[Vec<InetRow>; 2]> {
    let mut sockets = Vec::new();
    let info = diag.dump_tcp(crate::seed::diag::ALL_STATES, 0, &mut sockets).ok()?;
    if info.interrupted {
        return None;
    }
    let (v4, v6): (Vec<_>, Vec<_>) = sockets.iter().partition(|s| s.family == Family::V4);
    Some([v4, v6].map(|rows| rows.into_iter().map(|s| row(s, 0, 0)).collect()))
}

fn row(s: &SeedSocket, retrnsmt: u64, timeout: i64) -> InetRow {
    let (timer, when) = match s.timer {
        None => (0, 0),
        Some(t) => {
            let code = match t.kind {
                TimerKind::Retransmit => 1,
                TimerKind::Keepalive => 2,
                TimerKind::TimeWait => 3,
                TimerKind::Probe => 4,
                TimerKind::Other(code) => code,
            };
            (code, (t.expires.as_millis() / 10) as u64)
        }
    };
    InetRow {
        local: s.local,
        remote: s.remote,
        state: s.state as u8,
        rx_queue: s.rx_queue,
        tx_queue: s.tx_queue,
        timer,
        when,
        retrnsmt,
        timeout,
        uid: s.uid,
        inode: s.inode,
    }
}

/// (`retrnsmt`, `timeout`) of every row, in the order and with the line
/// rules of `parse_proc_net` (header, blank lines, a cut last line).
fn timer_columns(text: &str) -> Vec<(u64, i64)> {
    let body = if text.ends_with('\n') { text } else { text.rfind('\n').map_or("", |i| &text[..=i]) };
    body.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split_ascii_whitespace().skip(6);
            let retr = cols.next().and_then(|c| u64::from_str_radix(c, 16).ok()).unwrap_or(0);
            let timeout = cols.nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            (retr, timeout)
        })
        .collect()
}

/// Whether netstat shows the row under `-a`/`-l`/neither: TCP by the remote
/// port, UDP and raw by the remote address.
pub fn shown(kind: Kind, row: &InetRow, o: &Opts) -> bool {
    let connected = match kind {
        Kind::Tcp => row.remote.port() != 0,
        _ => !row.remote.ip().is_unspecified(),
    };
    o.all || connected != o.listening
}

/// Appends one netstat line for `row`.
pub fn format_row(
    out: &mut Vec<u8>,
    kind: Kind,
    prot: &str,
    row: &InetRow,
    o: &Opts,
    names: &mut Names,
    progs: &Programs,
) {
    let proto = kind.service_proto();
    // netstat prints `%-4s  ` for TCP and raw, `%-5s ` for UDP: the same
    // bytes, as TCP and raw labels are at most 4 long.
    pad(out, prot.as_bytes(), 5);
    out.push(b' ');
    let _ = write!(out, "{:>6} {:>6} ", row.rx_queue, row.tx_queue);
    names.push_endpoint(out, row.local, proto, o.wide);
    out.push(b' ');
    names.push_endpoint(out, row.remote, proto, o.wide);
    out.push(b' ');
    match kind {
        Kind::Tcp => pad(out, tcp_state(row.state).as_bytes(), 11),
        Kind::Udp | Kind::UdpLite => {
            let state: &[u8] = match row.state {
                1 => b"ESTABLISHED",
                7 => b"",
                _ => b"UNKNOWN",
            };
            pad(out, state, 11);
        }
        Kind::Raw => {
            let _ = write!(out, "{:<11}", row.state);
        }
    }
    let timers = if o.timers { timer_text(kind, row) } else { String::new() };
    finish(out, row.uid, row.inode, &timers, o, names, progs);
}

/// netstat.c `finish_this_one`: `-e` user and inode, `-p`, `-o`, newline.
pub fn finish(out: &mut Vec<u8>, uid: u32, inode: u64, timers: &str, o: &Opts, names: &mut Names, progs: &Programs) {
    if o.exp > 1 {
        out.push(b' ');
        pad(out, names.user(uid).as_bytes(), 10);
        let _ = write!(out, " {inode:<10}");
    }
    if o.programs {
        out.push(b' ');
        pad(out, progs.get(inode), PROGNAME_WIDTH);
    }
    if o.timers {
        out.push(b' ');
        out.extend_from_slice(timers.as_bytes());
    }
    out.push(b'\n');
}

/// The `-o` column: `%2.2f` of ticks / 100 is exact in integers.
fn timer_text(kind: Kind, r: &InetRow) -> String {
    // netstat zeroes `retr` for UDP and raw sockets.
    let retr = if kind == Kind::Tcp { r.retrnsmt } else { 0 };
    let name = match (kind, r.timer) {
        (_, 0) => return format!("off (0.00/{retr}/{})", r.timeout),
        (Kind::Tcp, 1) => "on".to_owned(),
        (Kind::Tcp, 2) => "keepalive".to_owned(),
        (Kind::Tcp, 3) => "timewait".to_owned(),
        (Kind::Tcp, 4) => "probe".to_owned(),
        (_, n @ (1 | 2)) => format!("on{n}"),
        (_, n) => format!("unkn-{n}"),
    };
    format!("{name} ({}.{:02}/{retr}/{})", r.when / 100, r.when % 100, r.timeout)
}

/// netstat.c's `tcp_state[]`: empty for 0, the shared names up to CLOSING,
/// `UNKNOWN` past it (netstat predates NEW_SYN_RECV and BOUND_INACTIVE).
fn tcp_state(state: u8) -> &'static str {
    match state {
        0 => "",
        s @ tcp::ESTABLISHED..=tcp::CLOSING => tcp::name(s),
        _ => "UNKNOWN",
    }
}
