//! `-i` / `-ie`: the interface table (lib/interface.c). Names come from
//! `/proc/net/dev` plus `SIOCGIFCONF` (alias labels), sorted with
//! net-tools' `nstrcmp`; flags, MTU and addresses from the same ioctls
//! `ifconfig` uses; counters from `/proc/net/dev`.

use std::{cmp::Ordering, collections::BTreeMap, io::Write as _};

use super::addr::pad;

/// One `/proc/net/dev` row (the version-3 layout with `compressed`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub rx_fifo: u64,
    pub rx_frame: u64,
    pub rx_compressed: u64,
    pub rx_multicast: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub tx_fifo: u64,
    pub collisions: u64,
    pub tx_carrier: u64,
    pub tx_compressed: u64,
}

/// Everything printed for one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub flags: i16,
    pub mtu: i32,
    pub stats: Option<DevStats>,
    /// ARPHRD type and the first 8 bytes of the hardware address.
    pub hw_type: u16,
    pub hw_addr: [u8; 8],
    pub tx_queue_len: Option<i32>,
    /// IPv4 address, netmask, broadcast, point-to-point destination.
    pub inet: Option<[[u8; 4]; 4]>,
    /// (address, prefix length, scope) from `/proc/net/if_inet6`.
    pub inet6: Vec<(std::net::Ipv6Addr, u32, u32)>,
    /// `ifmap`: irq, base address, memory start and end, dma.
    pub map: (u8, u16, u64, u64, u8),
}

/// Parses `/proc/net/dev`: `name: counters...` after two header lines.
pub fn parse_dev(text: &str) -> BTreeMap<String, DevStats> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let v: Vec<u64> = rest.split_ascii_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
        if v.len() < 16 {
            continue;
        }
        let s = DevStats {
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errors: v[2],
            rx_dropped: v[3],
            rx_fifo: v[4],
            rx_frame: v[5],
            rx_compressed: v[6],
            rx_multicast: v[7],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errors: v[10],
            tx_dropped: v[11],
            tx_fifo: v[12],
            collisions: v[13],
            tx_carrier: v[14],
            tx_compressed: v[15],
        };
        out.insert(name.trim().to_owned(), s);
    }
    out
}

/// lib/nstrcmp.c: the stem compared as text, the trailing number as a
/// number, then `:alias` numbers.
pub fn nstrcmp(a: &str, b: &str) -> Ordering {
    fn split(s: &str) -> (&str, Option<&str>) {
        // cutalias: a trailing `:digits` is an alias.
        match s.rfind(':') {
            Some(i) if i + 1 < s.len() && s[i + 1..].bytes().all(|c| c.is_ascii_digit()) => {
                (&s[..i], Some(&s[i + 1..]))
            }
            _ => (s, None),
        }
    }
    let num = |s: &str| s.parse::<i64>().unwrap_or(0);
    let ((a, aa), (b, ba)) = (split(a), split(b));
    let stem = |s: &str| s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (ai, bi) = (stem(a), stem(b));
    let n = ai.min(bi);
    a.as_bytes()[..n]
        .cmp(&b.as_bytes()[..n])
        .then(ai.cmp(&bi))
        .then(num(&a[ai..]).cmp(&num(&b[bi..])))
        .then(a.cmp(b))
        .then(aa.map_or(-1, num).cmp(&ba.map_or(-1, num)))
        .then(match (aa, ba) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => Ordering::Equal,
        })
}

const IFF_FLAGS_SHORT: [(i16, char); 14] = [
    (0x200, 'A'),
    (0x2, 'B'),
    (0x4, 'D'),
    (0x8, 'L'),
    (0x1000, 'M'),
    (-0x8000, 'd'),
    (0x100, 'P'),
    (0x20, 'N'),
    (0x80, 'O'),
    (0x10, 'P'),
    (0x800, 's'),
    (0x400, 'm'),
    (0x40, 'R'),
    (0x1, 'U'),
];

const IFF_FLAGS_LONG: [(i16, &str); 14] = [
    (0x1, "UP"),
    (0x2, "BROADCAST"),
    (0x4, "DEBUG"),
    (0x8, "LOOPBACK"),
    (0x10, "POINTOPOINT"),
    (0x20, "NOTRAILERS"),
    (0x40, "RUNNING"),
    (0x80, "NOARP"),
    (0x100, "PROMISC"),
    (0x200, "ALLMULTI"),
    (0x800, "SLAVE"),
    (0x400, "MASTER"),
    (0x1000, "MULTICAST"),
    (-0x8000, "DYNAMIC"),
];

pub const SHORT_HEADER: &str =
    "Iface             MTU    RX-OK RX-ERR RX-DRP RX-OVR    TX-OK TX-ERR TX-DRP TX-OVR Flg\n";

/// lib/interface.c `ife_print_short`.
pub fn print_short(out: &mut Vec<u8>, i: &Iface) {
    let name: String = i.name.chars().take(15).collect();
    pad(out, name.as_bytes(), 15);
    let _ = write!(out, " {:>5} ", i.mtu);
    match &i.stats {
        Some(s) => {
            let _ = write!(
                out,
                "{:>8} {:>6} {:>6} {:<6} {:>8} {:>6} {:>6} {:>6} ",
                s.rx_packets, s.rx_errors, s.rx_dropped, s.rx_fifo, s.tx_packets, s.tx_errors, s.tx_dropped, s.tx_fifo
            );
        }
        None => pad(out, b"     - no statistics available -", 56),
    }
    if i.flags == 0 {
        out.extend_from_slice(b"[NO FLAGS]");
    }
    out.extend(IFF_FLAGS_SHORT.iter().filter(|(bit, _)| i.flags & bit != 0).map(|&(_, c)| c as u8));
    out.push(b'\n');
}

/// ifconfig's size suffix: one decimal, binary units, `B` below 1 KiB.
fn human(bytes: u64) -> String {
    let units =
        [(1u64 << 60, "EiB"), (1 << 50, "PiB"), (1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (i, (limit, unit)) in units.into_iter().enumerate() {
        if bytes > limit {
            // net-tools divides the EiB case by a tenth of the unit.
            let tenths = if i == 0 { bytes / (limit / 10) } else { bytes.wrapping_mul(10) / limit };
            return format!("{}.{} {unit}", tenths / 10, tenths % 10);
        }
    }
    let tenths = bytes.wrapping_mul(10);
    format!("{}.{} B", tenths / 10, tenths % 10)
}

fn hw_describe(i: &Iface) -> (&'static str, Option<String>, &'static str) {
    let mac = || i.hw_addr[..6].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    match i.hw_type {
        1 => ("ether", Some(mac()), "Ethernet"),
        772 => ("loop", None, "Local Loopback"),
        776 => ("sit", None, "IPv6-in-IPv4"),
        512 => ("ppp", None, "Point-to-Point Protocol"),
        _ => {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&i.hw_addr);
            let text = bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join("-");
            ("unspec", Some(text), "UNSPEC")
        }
    }
}

/// Ends a `<a,b,` list with `>`; a list with no entry loses its last byte.
fn close_list(list: &mut String) {
    if list.pop() == Some(',') {
        list.push('>');
    }
}

/// lib/interface.c `ife_print_long` (what `ifconfig` prints).
pub fn print_long(out: &mut Vec<u8>, i: &Iface) {
    let mut flags = format!("flags={}<", i.flags);
    if i.flags == 0 {
        flags.push('>');
    }
    flags.extend(IFF_FLAGS_LONG.iter().filter(|(bit, _)| i.flags & bit != 0).flat_map(|(_, name)| [*name, ","]));
    close_list(&mut flags);
    let mut text = format!("{}: {flags}  mtu {}\n", i.name, i.mtu);
    if let Some([addr, mask, brd, dst]) = i.inet {
        let ip = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
        text += &format!("        inet {}  netmask {}", ip(addr), ip(mask));
        if i.flags & 0x2 != 0 {
            text += &format!("  broadcast {}", ip(brd));
        }
        if i.flags & 0x10 != 0 {
            text += &format!("  destination {}", ip(dst));
        }
        text.push('\n');
    }
    for (addr, plen, scope) in &i.inet6 {
        text += &format!("        inet6 {}  prefixlen {plen}  scopeid 0x{scope:x}", super::addr::ntop6(addr));
        let mut s = *scope;
        let mut f = String::from("<");
        if s & 0x80 != 0 {
            f += "compat,";
            s -= 0x80;
        }
        let scopes =
            [(s == 0, "global,"), (s & 0x20 != 0, "link,"), (s & 0x40 != 0, "site,"), (s & 0x10 != 0, "host,")];
        f.extend(scopes.into_iter().filter_map(|(cond, name)| cond.then_some(name)));
        close_list(&mut f);
        text += &f;
        text.push('\n');
    }
    let (hw, addr, title) = hw_describe(i);
    text += &match addr {
        Some(a) => format!("        {hw} {a}"),
        None => format!("        {hw}"),
    };
    if let Some(q) = i.tx_queue_len {
        text += &format!("  txqueuelen {q}");
    }
    text += &format!("  ({title})\n");
    if let Some(s) = &i.stats {
        text += &format!("        RX packets {}  bytes {} ({})\n", s.rx_packets, s.rx_bytes, human(s.rx_bytes));
        text += &format!(
            "        RX errors {}  dropped {}  overruns {}  frame {}\n",
            s.rx_errors, s.rx_dropped, s.rx_fifo, s.rx_frame
        );
        text += &format!("        TX packets {}  bytes {} ({})\n", s.tx_packets, s.tx_bytes, human(s.tx_bytes));
        text += &format!(
            "        TX errors {}  dropped {} overruns {}  carrier {}  collisions {}\n",
            s.tx_errors, s.tx_dropped, s.tx_fifo, s.tx_carrier, s.collisions
        );
    }
    let (irq, base, mem_start, mem_end, dma) = i.map;
    if irq != 0 || mem_start != 0 || dma != 0 || base >= 0x100 {
        text += "        device ";
        if irq != 0 {
            text += &format!("interrupt {irq}  ");
        }
        if base >= 0x100 {
            text += &format!("base 0x{base:x}  ");
        }
        if mem_start != 0 {
            text += &format!("memory 0x{mem_start:x}-{mem_end:x}  ");
        }
        if dma != 0 {
            text += &format!("  dma 0x{dma:x}");
        }
        text.push('\n');
    }
    text.push('\n');
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
#[path = "iface_tests.rs"]
mod tests;
