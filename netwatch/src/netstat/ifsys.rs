//! The interface ioctls of lib/interface.c `if_fetch`, on an AF_INET
//! datagram socket of our own network namespace.

use std::{
    collections::BTreeSet,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{Context as _, Result};

use super::iface::{nstrcmp, parse_dev, Iface};

/// `struct ifreq`: 16 bytes of name, then a 24-byte union.
type IfReq = [u8; 40];

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(sock: &OwnedFd, name: &str, request: libc::Ioctl, prefill: Option<u16>) -> Option<IfReq> {
    let mut req: IfReq = [0; 40];
    let n = name.len().min(15);
    req[..n].copy_from_slice(&name.as_bytes()[..n]);
    if let Some(family) = prefill {
        req[16..18].copy_from_slice(&family.to_ne_bytes());
    }
    // SAFETY: every request used here reads and writes at most one ifreq.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, req.as_mut_ptr()) };
    (rc == 0).then_some(req)
}

/// SIOCGIFCONF: the names of interfaces (and alias labels) with IPv4.
fn conf_names(sock: &OwnedFd) -> Vec<String> {
    let mut count = 30usize;
    loop {
        let mut buf = vec![0u8; 40 * count];
        let mut conf = libc::ifconf {
            ifc_len: buf.len() as i32,
            ifc_ifcu: libc::__c_anonymous_ifc_ifcu { ifcu_buf: buf.as_mut_ptr().cast() },
        };
        // SAFETY: ifc_buf points at ifc_len writable bytes.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFCONF, &mut conf) } < 0 {
            return Vec::new();
        }
        let len = conf.ifc_len as usize;
        if len == buf.len() {
            count *= 2;
            continue;
        }
        return buf[..len]
            .chunks_exact(40)
            .map(|r| String::from_utf8_lossy(r[..16].split(|&b| b == 0).next().unwrap_or_default()).into_owned())
            .collect();
    }
}

/// Every interface netstat would list, in its order, with `-a` or only the up ones.
pub fn collect(all: bool) -> Result<Vec<Iface>> {
    let sock = socket().context("opening an AF_INET socket for interface ioctls")?;
    let dev = std::fs::read_to_string("/proc/net/dev").map(|t| parse_dev(&t)).unwrap_or_default();
    let inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let mut names: BTreeSet<String> = dev.keys().cloned().collect();
    names.extend(conf_names(&sock));
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by(|a, b| nstrcmp(a, b));
    names.dedup_by(|a, b| nstrcmp(a, b).is_eq());
    let mut out = Vec::new();
    for name in names {
        let get = |request, af| ioctl(&sock, &name, request, af);
        let Some(flags) = get(libc::SIOCGIFFLAGS, None) else {
            eprintln!("{name}: error fetching interface information: Device not found");
            continue;
        };
        let flags = i16::from_ne_bytes([flags[16], flags[17]]);
        if flags & 1 == 0 && !all {
            continue;
        }
        let mut i = Iface { name: name.clone(), flags, stats: dev.get(&name).cloned(), ..Default::default() };
        let int = |r: IfReq| i32::from_ne_bytes([r[16], r[17], r[18], r[19]]);
        i.mtu = get(libc::SIOCGIFMTU, None).map_or(0, int);
        if let Some(r) = get(libc::SIOCGIFHWADDR, None) {
            i.hw_type = u16::from_ne_bytes([r[16], r[17]]);
            i.hw_addr.copy_from_slice(&r[18..26]);
        }
        i.tx_queue_len = get(libc::SIOCGIFTXQLEN, None).map(int);
        if let Some(r) = get(libc::SIOCGIFMAP, None) {
            let u64_at = |at: usize| u64::from_ne_bytes(r[at..at + 8].try_into().unwrap_or_default());
            i.map = (r[34], u16::from_ne_bytes([r[32], r[33]]), u64_at(16), u64_at(24), r[35]);
        }
        let af = Some(libc::AF_INET as u16);
        if let Some(a) = get(libc::SIOCGIFADDR, af) {
            let ip = |r: Option<IfReq>| r.map_or([0; 4], |r| [r[20], r[21], r[22], r[23]]);
            i.inet = Some([
                ip(Some(a)),
                ip(get(libc::SIOCGIFNETMASK, af)),
                ip(get(libc::SIOCGIFBRDADDR, af)),
                ip(get(libc::SIOCGIFDSTADDR, af)),
            ]);
        }
        i.inet6 = inet6_of(&inet6, &name);
        out.push(i);
    }
    Ok(out)
}

/// `/proc/net/if_inet6` lines of one device: address, index, prefix
/// length, scope, flags, name.
pub fn inet6_of(text: &str, name: &str) -> Vec<(std::net::Ipv6Addr, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_ascii_whitespace().collect();
            if c.len() < 6 || c[5] != name {
                return None;
            }
            let addr = u128::from_str_radix(c[0], 16).ok()?;
            Some((addr.into(), u32::from_str_radix(c[2], 16).ok()?, u32::from_str_radix(c[3], 16).ok()?))
        })
        .collect()
}
