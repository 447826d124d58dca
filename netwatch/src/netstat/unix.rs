//! `/proc/net/unix` and netstat's `Active UNIX domain sockets` view
//! (netstat.c `unix_do_one`, `unix_info`).
//!
//! Kernel format (net/unix/af_unix.c `unix_seq_show`):
//! `%pK: %08X %08X %08X %04X %02X %5lu` then ` path` when bound; abstract
//! names print `@` for their NUL bytes. netstat reads the path with `%s`,
//! so a path with whitespace is cut at the first blank.

use std::io::Write as _;

use anyhow::{anyhow, Result};

use super::{addr::pad, flags::Opts, progs::Programs};

/// `__SO_ACCEPTCON`: the socket listens.
const SO_ACCEPTCON: u32 = 1 << 16;
const SO_WAITDATA: u32 = 1 << 17;
const SO_NOSPACE: u32 = 1 << 18;
const SS_UNCONNECTED: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixRow {
    pub refcnt: u64,
    pub proto: u64,
    pub flags: u32,
    pub kind: u32,
    pub state: u32,
    pub inode: u64,
    /// Up to the first blank, as netstat reads it; empty when unbound.
    pub path: Vec<u8>,
}

impl UnixRow {
    fn listening(&self) -> bool {
        self.state == SS_UNCONNECTED && self.flags & SO_ACCEPTCON != 0
    }
}

/// C `isspace` in the C locale.
fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Parses the whole file; the header line is required, bogus lines are
/// errors naming their line number (netstat warns and skips them).
pub fn parse(text: &[u8]) -> Result<Vec<UnixRow>> {
    let mut lines = text.split(|&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    if !header.starts_with(b"Num") {
        return Err(anyhow!("/proc/net/unix line 1: expected the `Num RefCount ...` header"));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.iter().all(is_space) {
            continue;
        }
        rows.push(parse_line(line).ok_or_else(|| {
            anyhow!("/proc/net/unix line {}: bogus unix line {:?}", i + 2, String::from_utf8_lossy(line))
        })?);
    }
    Ok(rows)
}

fn parse_line(line: &[u8]) -> Option<UnixRow> {
    let mut cols = line.split(is_space).filter(|c| !c.is_empty());
    cols.next()?.strip_suffix(b":")?;
    let mut hex = || -> Option<u64> { u64::from_str_radix(std::str::from_utf8(cols.next()?).ok()?, 16).ok() };
    let (refcnt, proto, flags, kind, state) = (hex()?, hex()?, hex()?, hex()?, hex()?);
    let inode = std::str::from_utf8(cols.next()?).ok()?.parse().ok()?;
    let path = cols.next().unwrap_or_default().to_vec();
    Some(UnixRow { refcnt, proto, flags: flags as u32, kind: kind as u32, state: state as u32, inode, path })
}

/// Whether netstat shows the row for these `-a`/`-l` flags.
pub fn shown(row: &UnixRow, o: &Opts) -> bool {
    o.all || row.listening() == o.listening
}

/// The section header lines.
pub fn header(out: &mut Vec<u8>, o: &Opts) {
    out.extend_from_slice(b"Active UNIX domain sockets ");
    out.extend_from_slice(super::conn::scope(o).as_bytes());
    out.extend_from_slice(b"\nProto RefCnt Flags       Type       State         I-Node  ");
    if o.programs {
        out.push(b' ');
        pad(out, b"PID/Program name", 20);
    }
    out.extend_from_slice(b" Path\n");
}

pub fn format_row(out: &mut Vec<u8>, row: &UnixRow, o: &Opts, progs: &Programs) {
    let proto = if row.proto == 0 { "unix" } else { "??" };
    let kind = match row.kind {
        1 => "STREAM",
        2 => "DGRAM",
        3 => "RAW",
        4 => "RDM",
        5 => "SEQPACKET",
        _ => "UNKNOWN",
    };
    let state = match row.state {
        0 => "FREE",
        1 if row.flags & SO_ACCEPTCON != 0 => "LISTENING",
        1 => "",
        2 => "CONNECTING",
        3 => "CONNECTED",
        4 => "DISCONNECTING",
        _ => "UNKNOWN",
    };
    let bits = [(SO_ACCEPTCON, "ACC "), (SO_WAITDATA, "W "), (SO_NOSPACE, "N ")];
    let set: String = bits.into_iter().filter(|(bit, _)| row.flags & bit != 0).map(|(_, text)| text).collect();
    let flags = format!("[ {set}]");
    let _ = write!(out, "{proto:<5} {:<6} {flags:<11} {kind:<10} {state:<13} {:<8}", row.refcnt, row.inode);
    if o.programs {
        out.push(b' ');
        pad(out, progs.get(row.inode), 20);
    }
    out.push(b' ');
    out.extend_from_slice(&row.path);
    out.push(b'\n');
}

#[cfg(test)]
#[path = "unix_tests.rs"]
mod tests;
