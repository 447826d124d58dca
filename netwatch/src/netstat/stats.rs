//! `-s`: per-protocol counters from `/proc/net/snmp`, `/proc/net/netstat`
//! and `/proc/net/snmp6`, worded and laid out as net-tools `statistics.c`
//! does, quirks included: entries found by `bsearch` in partly unsorted
//! tables (a miss prints `Name: value` when non-zero), the indentation of
//! unknown tables inherited from the table before, and unknown tables
//! (IcmpMsg, IpExt, MPTcpExt, UdpLite...) printed whatever `-t`/`-u` say.

use super::stats_tables as tables;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Number,
    OptNumber,
    Forward,
    InpIcmp,
    OutpIcmp,
    RtoAlg,
}

impl Kind {
    const fn indent(self) -> usize {
        match self {
            Self::InpIcmp | Self::OutpIcmp => 8,
            Self::RtoAlg => 0,
            Self::Number | Self::OptNumber | Self::Forward => 4,
        }
    }
}

#[derive(Debug)]
pub struct Entry {
    pub title: &'static str,
    pub out: &'static str,
    pub kind: Kind,
    /// `I_STATIC`: never printed (netstat's `print_static` is 0).
    pub stat: bool,
    /// `I_TITLE`: opens a histogram.
    pub titled: bool,
}

/// Which tables `-w`, `-t`, `-u` (`-S`) select; unknown tables always print.
#[derive(Clone, Copy, Debug, Default)]
pub struct Select {
    pub raw: bool,
    pub tcp: bool,
    pub udp: bool,
    pub sctp: bool,
}

struct Table {
    entries: Option<&'static [Entry]>,
    on: bool,
}

struct Printer<'a> {
    out: &'a mut Vec<u8>,
    state: Kind,
    select: Select,
}

impl Printer<'_> {
    fn line(&mut self, indent: usize, text: &str) {
        self.out.resize(self.out.len() + indent, b' ');
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'\n');
    }

    /// statistics.c `newtable`: a known table prints its title when
    /// selected and resets the indentation; an unknown one always prints.
    fn table(&mut self, v6: bool, title: &str) -> Table {
        let s = self.select;
        let (entries, on): (&'static [Entry], bool) = match (v6, title) {
            (false, "Ip") => (tables::IP, s.raw),
            (false, "Icmp") => (tables::ICMP, s.raw),
            (false, "Tcp") | (true, "Tcp6") => (tables::TCP, s.tcp),
            (false, "Udp") => (tables::UDP, s.udp),
            (false, "Sctp") => (tables::SCTP, s.sctp),
            (false, "TcpExt") => (tables::TCPEXT, s.tcp),
            (true, "Ip6") => (tables::IP6, s.raw),
            (true, "Icmp6") => (tables::ICMP6, s.raw),
            (true, "Udp6") => (tables::UDP6, s.udp),
            _ => {
                self.line(0, &format!("{title}:"));
                return Table { entries: None, on: true };
            }
        };
        if on {
            self.line(0, &format!("{title}:"));
        }
        self.state = Kind::Number;
        Table { entries: Some(entries), on }
    }

    /// statistics.c `printval`; nothing for a table `-w`/`-t`/`-u` left out.
    fn value(&mut self, table: &Table, title: &str, val: u64) {
        if !table.on {
            return;
        }
        let Some(ent) = table.entries.and_then(|e| bsearch(e, title)) else {
            if val != 0 {
                self.line(self.state.indent(), &format!("{title}: {val}"));
            }
            return;
        };
        if ent.stat || ent.out.is_empty() {
            return;
        }
        // Only ICMP entries are titled (`t` in the tables).
        if ent.titled && self.state != ent.kind {
            let title = if ent.kind == Kind::InpIcmp { "ICMP input histogram:" } else { "ICMP output histogram:" };
            self.line(self.state.indent(), title);
        }
        let printed = match ent.kind {
            Kind::Number => true,
            Kind::OptNumber | Kind::InpIcmp | Kind::OutpIcmp => val != 0,
            Kind::Forward | Kind::RtoAlg => false,
        };
        if printed {
            self.line(ent.kind.indent(), &ent.out.replacen("%llu", &val.to_string(), 1));
        }
        self.state = ent.kind;
    }
}

/// glibc `bsearch` with `strcmp`, so unsorted stretches miss as in netstat.
fn bsearch<'a>(entries: &'a [Entry], key: &str) -> Option<&'a Entry> {
    let (mut l, mut u) = (0, entries.len());
    while l < u {
        let idx = (l + u) / 2;
        match key.as_bytes().cmp(entries[idx].title.as_bytes()) {
            std::cmp::Ordering::Less => u = idx,
            std::cmp::Ordering::Greater => l = idx + 1,
            std::cmp::Ordering::Equal => return Some(&entries[idx]),
        }
    }
    None
}

/// `strtoull(s, .., 10)` on one token: a leading `-` negates modulo 2^64.
fn strtoull(s: &str) -> u64 {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    let v = digits[..end].parse::<u64>().unwrap_or(if end == 0 { 0 } else { u64::MAX });
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// statistics.c `process_fd`: header/value line pairs. `filter` keeps only
/// tables whose name starts with it. `Err` on a malformed pair.
fn pairs(p: &mut Printer<'_>, text: &str, filter: Option<&str>) -> Result<(), ()> {
    let mut lines = text.split_inclusive('\n');
    while let Some(head) = lines.next() {
        if head.starts_with('\n') {
            continue;
        }
        let Some(values) = lines.next() else { break };
        let (Some((title, names)), Some((_, values))) = (head.split_once(':'), values.split_once(':')) else {
            return Err(());
        };
        if filter.is_some_and(|f| !title.starts_with(f)) {
            continue;
        }
        let table = p.table(false, title);
        let mut values = values.split_ascii_whitespace();
        for name in names.split_ascii_whitespace() {
            p.value(&table, name, values.next().map_or(0, strtoull));
        }
    }
    Ok(())
}

/// statistics.c `process6_fd`: `Name value` lines; a table per prefix up
/// to the first `6`.
fn lines6(p: &mut Printer<'_>, text: &str) {
    let mut current: Option<(String, Table)> = None;
    for line in text.lines() {
        let mut cols = line.split_ascii_whitespace();
        let Some(name) = cols.next() else { continue };
        let val = cols.next().map_or(0, strtoull);
        if !current.as_ref().is_some_and(|(prefix, _)| name.contains(prefix.as_str())) {
            let prefix = name[..name.find('6').map_or(name.len(), |i| i + 1)].to_owned();
            let table = p.table(true, &prefix);
            current = Some((prefix, table));
        }
        if let Some((_, table)) = &current {
            p.value(table, name, val);
        }
    }
}

/// `netstat -s` (IPv4): snmp, then netstat (TcpExt...), then SCTP.
pub fn print_inet(out: &mut Vec<u8>, select: Select, snmp: &str, netstat: Option<&str>, sctp: Option<&str>) {
    let mut p = Printer { out, state: Kind::Number, select };
    for (file, text) in [("snmp", Some(snmp)), ("netstat", netstat)] {
        if text.is_some_and(|text| pairs(&mut p, text, None).is_err()) {
            eprintln!("Problem while parsing /proc/net/{file}");
        }
    }
    if let Some(text) = sctp {
        let table = p.table(false, "Sctp");
        for line in text.lines() {
            let mut cols = line.split_ascii_whitespace();
            if let (Some(name), Some(val)) = (cols.next(), cols.next()) {
                p.value(&table, name, strtoull(val));
            }
        }
    }
}

/// `netstat -s -6`: snmp6, then the Tcp table of snmp.
pub fn print_inet6(out: &mut Vec<u8>, select: Select, snmp6: &str, snmp: &str) {
    let mut p = Printer { out, state: Kind::Number, select };
    lines6(&mut p, snmp6);
    let _ = pairs(&mut p, snmp, Some("Tcp"));
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
