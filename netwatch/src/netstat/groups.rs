//! `-g`: multicast group memberships from `/proc/net/igmp` and
//! `/proc/net/igmp6` (netstat.c `igmp_do_one`).
//!
//! igmp (net/ipv4/igmp.c `igmp_mc_seq_show`): a device line
//! `%d\t%-10s: %5d %7s` followed by group lines `\t\t\t\t%08X %5d ...`.
//! igmp6 (net/ipv6/mcast.c `igmp6_mc_seq_show`): `%-4d %-15s %pi6 %5d ...`.

use std::{
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use super::{
    addr::{pad, parse_hex16},
    names::Names,
};

/// One `Interface RefCnt Group` line before name resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    V4 { device: String, users: i64, group: Ipv4Addr },
    V6 { device: String, users: i64, group: Ipv6Addr },
}

pub const HEADER: &str =
    "IPv6/IPv4 Group Memberships\nInterface       RefCnt Group\n--------------- ------ ---------------------\n";

/// `/proc/net/igmp`: the device is what `%15c` after the index holds, cut
/// at its last `:` (so the kernel's padding stays, as in netstat).
pub fn parse_igmp(text: &str) -> Vec<Group> {
    let mut device = String::new();
    let mut groups = Vec::new();
    for line in text.lines().skip(1) {
        if let Some(rest) = line.strip_prefix('\t') {
            let mut cols = rest.split_ascii_whitespace();
            let group = cols.next().and_then(|h| u32::from_str_radix(h, 16).ok());
            let users = cols.next().and_then(|u| u.parse().ok());
            if let (Some(group), Some(users)) = (group, users) {
                let group = Ipv4Addr::from(group.to_ne_bytes());
                groups.push(Group::V4 { device: device.clone(), users, group });
            }
        } else {
            let rest = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
            let field: String = rest.chars().take(15).collect();
            device = match field.rfind(':') {
                Some(i) => field[..i].to_owned(),
                None => field,
            };
        }
    }
    groups
}

/// `/proc/net/igmp6`: no header.
pub fn parse_igmp6(text: &str) -> Vec<Group> {
    let group = |line: &str| {
        let mut cols = line.split_ascii_whitespace().skip(1);
        let (device, hex, users) = (cols.next()?, cols.next()?, cols.next()?);
        let (group, users) = (parse_hex16(hex)?, users.parse().ok()?);
        Some(Group::V6 { device: device.chars().take(15).collect(), users, group })
    };
    text.lines().filter_map(group).collect()
}

pub fn format(out: &mut Vec<u8>, g: &Group, names: &mut Names) {
    let (device, users, group) = match g {
        Group::V4 { device, users, group } => (device, users, names.inet_sprint(*group)),
        Group::V6 { device, users, group } => (device, users, names.inet6(*group, names.num_host)),
    };
    pad(out, device.as_bytes(), 15);
    let _ = writeln!(out, " {users:<6} {group}");
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn igmp_devices_keep_kernel_padding() {
        let text = "Idx\tDevice    :  Count Querier\tGroup    Users Timer\tReporter\n\
                    1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    2\tveth-nw-test1:     2      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    \t\t\t\t0A0000EF     3 0:00000000\t\t0\n";
        let groups = parse_igmp(text);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0], Group::V4 { device: "lo        ".into(), users: 1, group: Ipv4Addr::new(224, 0, 0, 1) });
        assert_eq!(
            groups[2],
            Group::V4 { device: "veth-nw-test1".into(), users: 3, group: Ipv4Addr::new(239, 0, 0, 10) }
        );
        let mut names = Names::new(true, true, true);
        let mut out = Vec::new();
        format(&mut out, &groups[0], &mut names);
        assert_eq!(String::from_utf8(out).unwrap(), "lo              1      224.0.0.1\n");
    }

    #[test]
    fn igmp6_rows() {
        let text = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n";
        let groups = parse_igmp6(text);
        let mut names = Names::new(true, true, true);
        let mut out = Vec::new();
        format(&mut out, &groups[0], &mut names);
        assert_eq!(String::from_utf8(out).unwrap(), "lo              1      ff02::1\n");
    }
}
