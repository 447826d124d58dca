//! `-r`: the kernel routing tables from `/proc/net/route` and
//! `/proc/net/ipv6_route` (lib/inet_gr.c `rprint_fib`, lib/inet6_gr.c
//! `rprint_fib6`).

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, Result};

use super::{
    addr::{pad, parse_hex16},
    names::{Names, NUM_DEFAULT, NUM_HOST_BIT},
};

const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_HOST: u32 = 0x0004;
const RTF_REJECT: u32 = 0x0200;
const RTF_CACHE: u32 = 0x0100_0000;

/// IPv4 flag letters in net-tools order; `!` (reject) replaces what came before.
const FLAGS4: [(u32, &str); 19] = [
    (RTF_UP, "U"),
    (RTF_GATEWAY, "G"),
    (RTF_REJECT, "!"),
    (RTF_HOST, "H"),
    (0x0008, "R"),
    (0x0010, "D"),
    (0x0020, "M"),
    (0x0001_0000, "d"),
    (0x0002_0000, "a"),
    (0x0004_0000, "c"),
    (0x0020_0000, "o"),
    (0x0040_0000, "e"),
    (RTF_CACHE, "c"),
    (0x0200_0000, "f"),
    (0x0400_0000, "p"),
    (0x8000_0000, "l"),
    (0x0040, "u"),
    (0x0080, "w"),
    (0x0100, "i"),
];
/// `RTF_NOTCACHED`, printed last.
const NOTCACHED: (u32, &str) = (0x0400, "n");

const FLAGS6: [(u32, &str); 12] = [
    (RTF_UP, "U"),
    (RTF_REJECT, "!"),
    (RTF_GATEWAY, "G"),
    (RTF_HOST, "H"),
    (0x0001_0000, "D"),
    (0x0004_0000, "A"),
    (RTF_CACHE, "C"),
    (0x0002_0000, "a"),
    (0x0040_0000, "e"),
    (0x0020, "m"),
    (0x0020_0000, "n"),
    (0x0200_0000, "f"),
];

/// One `/proc/net/route` line, in netstat's column terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route4 {
    pub iface: String,
    pub dest: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub flags: u32,
    pub refcnt: i32,
    pub use_: i32,
    pub metric: i32,
    pub mask: Ipv4Addr,
    pub mss: i32,
    pub window: i32,
    pub irtt: i32,
}

/// Parses by header names, as `proc_gen_fmt` does.
pub fn parse4(text: &str) -> Result<Vec<Route4>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_ascii_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name).ok_or_else(|| anyhow!("no {name} column"));
    let idx = ["Iface", "Destination", "Gateway", "Flags", "RefCnt", "Use", "Metric", "Mask", "MTU", "Window", "IRTT"]
        .map(col);
    let idx: Vec<usize> = idx.into_iter().collect::<Result<_>>().map_err(|e| anyhow!("/proc/net/route: {e}"))?;
    let routes = lines.filter_map(|line| {
        let cols: Vec<&str> = line.split_ascii_whitespace().collect();
        let get = |i: usize| cols.get(idx[i]).copied();
        let addr = |i| get(i).and_then(|h| u32::from_str_radix(h, 16).ok()).map(|v| Ipv4Addr::from(v.to_le_bytes()));
        let int = |i| get(i).and_then(|v| v.parse::<i32>().ok());
        Some(Route4 {
            iface: get(0)?.chars().take(15).collect(),
            dest: addr(1)?,
            gateway: addr(2)?,
            flags: get(3).and_then(|f| u32::from_str_radix(f, 16).ok())?,
            refcnt: int(4)?,
            use_: int(5)?,
            metric: int(6)?,
            mask: addr(7)?,
            mss: int(8)?,
            window: int(9)?,
            irtt: int(10).unwrap_or(0),
        })
    });
    Ok(routes.collect())
}

/// `ext` as netstat passes it: 2 for plain `-r`, 1 for `-re`, 3 for `-ree`.
pub fn print4(out: &mut Vec<u8>, routes: &[Route4], ext: u8, numeric: bool, names: &mut Names) {
    out.extend_from_slice(b"Kernel IP routing table\n");
    let head = "Destination     Gateway         Genmask         ";
    match ext {
        1 => out.extend_from_slice(format!("{head}Flags Metric Ref    Use Iface\n").as_bytes()),
        2 => out.extend_from_slice(format!("{head}Flags   MSS Window  irtt Iface\n").as_bytes()),
        _ => out.extend_from_slice(format!("{head}Flags Metric Ref    Use Iface    MSS   Window irtt\n").as_bytes()),
    }
    let num = u32::from(numeric);
    for r in routes.iter().filter(|r| r.flags & RTF_UP != 0) {
        let host = if r.flags & RTF_HOST != 0 { NUM_HOST_BIT } else { 0 };
        let mut dest = names.inet(r.dest, num | NUM_DEFAULT | host, u32::from_ne_bytes(r.mask.octets()));
        dest.truncate(15);
        let mut gw = names.inet(r.gateway, num | NUM_HOST_BIT, 0xffff_ff00);
        gw.truncate(15);
        let mask = r.mask.to_string();
        let mut flags = String::new();
        for (bit, letter) in FLAGS4.iter().chain([&NOTCACHED]) {
            if r.flags & bit != 0 {
                if *bit == RTF_REJECT {
                    flags.clear();
                }
                flags.push_str(letter);
            }
        }
        let reject = r.flags & RTF_REJECT != 0;
        let line = match (ext, reject) {
            (1, true) => format!("{dest:<15} -               {mask:<15} {flags:<5} {:<6} -  {:>7} -", r.metric, r.use_),
            (1, false) => format!(
                "{dest:<15} {gw:<15} {mask:<15} {flags:<5} {:<6} {:<2} {:>7} {}",
                r.metric, r.refcnt, r.use_, r.iface
            ),
            (2, true) => format!("{dest:<15} -               {mask:<15} {flags:<5}     - -          - -"),
            (2, false) => format!(
                "{dest:<15} {gw:<15} {mask:<15} {flags:<5} {:>5} {:<5} {:>6} {}",
                r.mss, r.window, r.irtt, r.iface
            ),
            (_, true) => format!(
                "{dest:<15} -               {mask:<15} {flags:<5} {:<6} -  {:>7} -        -     -      -",
                r.metric, r.use_
            ),
            (_, false) => format!(
                "{dest:<15} {gw:<15} {mask:<15} {flags:<5} {:<6} {:<3} {:>6} {:<6.6}   {:<5} {:<6} {}",
                r.metric, r.refcnt, r.use_, r.iface, r.mss, r.window, r.irtt
            ),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

/// One `/proc/net/ipv6_route` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route6 {
    pub dest: Ipv6Addr,
    pub plen: u32,
    pub next_hop: Ipv6Addr,
    pub metric: i32,
    pub refcnt: i32,
    pub use_: i32,
    pub flags: u32,
    pub iface: String,
}

pub fn parse6(text: &str) -> Vec<Route6> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    text.lines()
        .filter_map(|line| {
            let c: Vec<&str> = line.split_ascii_whitespace().collect();
            if c.len() < 10 {
                return None;
            }
            Some(Route6 {
                dest: parse_hex16(c[0])?,
                plen: hex(c[1])?,
                next_hop: parse_hex16(c[4])?,
                metric: hex(c[5])? as i32,
                refcnt: hex(c[6])? as i32,
                use_: hex(c[7])? as i32,
                flags: hex(c[8])?,
                iface: c[9].chars().take(15).collect(),
            })
        })
        .collect()
}

pub fn print6(out: &mut Vec<u8>, routes: &[Route6], numeric: bool, names: &mut Names) {
    out.extend_from_slice(b"Kernel IPv6 routing table\n");
    out.extend_from_slice(b"Destination                    Next Hop                   Flag Met Ref  Use If\n");
    for r in routes.iter().filter(|r| r.flags & RTF_CACHE == 0) {
        let dest = format!("{}/{}", names.inet6(r.dest, numeric), r.plen);
        let hop = names.inet6(r.next_hop, numeric);
        let flags: String = FLAGS6.iter().filter(|(bit, _)| r.flags & bit != 0).map(|(_, l)| *l).collect();
        pad(out, dest.as_bytes(), 30);
        out.push(b' ');
        pad(out, hop.as_bytes(), 26);
        let line = format!(" {flags:<4} {:<3} {:<1} {:>6} {}\n", r.metric, r.refcnt, r.use_, r.iface);
        out.extend_from_slice(line.as_bytes());
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
