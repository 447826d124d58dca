//! Address text exactly as net-tools prints it: glibc's `inet_ntop`,
//! lib/inet6.c `fix_v4_address`, and netstat.c `addr_do_one` truncation.

use std::{fmt::Write as _, net::Ipv6Addr};

/// glibc `inet_ntop(AF_INET6)`: the first longest run of two or more zero
/// words becomes `::`; `::a.b.c.d` and `::ffff:a.b.c.d` keep the IPv4 tail.
/// (Rust's `Display` differs for IPv4-compatible addresses.)
pub fn ntop6(ip: &Ipv6Addr) -> String {
    let w = ip.segments();
    let (mut best, mut cur): ((usize, usize), Option<(usize, usize)>) = ((0, 0), None);
    for (i, &word) in w.iter().enumerate() {
        if word == 0 {
            let run = cur.map_or((i, 1), |(base, len)| (base, len + 1));
            cur = Some(run);
            if run.1 > best.1 {
                best = run;
            }
        } else {
            cur = None;
        }
    }
    let best = (best.1 >= 2).then_some(best);
    let mut out = String::with_capacity(40);
    let mut i = 0;
    while i < 8 {
        if let Some((base, len)) = best {
            if i == base {
                out.push(':');
                i += len;
                if i == 8 {
                    out.push(':');
                }
                continue;
            }
        }
        if i != 0 {
            out.push(':');
        }
        let embedded =
            i == 6 && best.is_some_and(|(base, len)| base == 0 && (len == 6 || (len == 5 && w[5] == 0xffff)));
        if embedded {
            let o = ip.octets();
            let _ = write!(out, "{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
            break;
        }
        let _ = write!(out, "{:x}", w[i]);
        i += 1;
    }
    out
}

/// lib/inet6.c `fix_v4_address`: for a v4-mapped address, keep only the
/// text after the last `:` before the first `.` (so `::ffff:1.2.3.4` prints
/// `1.2.3.4`, and a resolved name without dots is kept whole).
pub fn fix_v4_address<'a>(text: &'a str, ip: &Ipv6Addr) -> &'a str {
    if ip.to_ipv4_mapped().is_none() {
        return text;
    }
    let Some(dot) = text.find('.') else { return text };
    match text[..dot].rfind(':') {
        Some(colon) => &text[colon + 1..],
        None => text,
    }
}

/// netstat.c `addr_do_one`: appends `addr:port`, and without `-W`, when
/// longer than `short_len` bytes, the address cut so that both fit (the
/// port keeps at most `short_len - 4` bytes).
pub fn push_addr_port(out: &mut Vec<u8>, addr: &[u8], port: &[u8], short_len: usize, wide: bool) {
    if !wide && addr.len() + port.len() > short_len {
        let port_len = port.len().min(short_len - 4);
        let addr_len = short_len - port_len;
        out.extend_from_slice(&addr[..addr_len.min(addr.len())]);
        out.push(b':');
        out.extend_from_slice(&port[..port_len]);
    } else {
        // snprintf into a 128-byte buffer.
        let start = out.len();
        out.extend_from_slice(addr);
        out.push(b':');
        out.extend_from_slice(port);
        out.truncate(start + 127);
    }
}

/// An IPv6 address as `/proc/net` files print it: 32 hex digits.
pub fn parse_hex16(hex: &str) -> Option<Ipv6Addr> {
    u128::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 32).map(Ipv6Addr::from)
}

/// `printf("%-*s", width, s)` on bytes.
pub fn pad(out: &mut Vec<u8>, s: &[u8], width: usize) {
    out.extend_from_slice(s);
    out.resize(out.len() + width.saturating_sub(s.len()), b' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ntop6_matches_glibc() {
        for (addr, text) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("fe80::1", "fe80::1"),
            ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
            ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("ff02::1:ff00:2", "ff02::1:ff00:2"),
            ("1::", "1::"),
            ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),
        ] {
            assert_eq!(ntop6(&ip(addr)), text, "{addr}");
        }
    }

    #[test]
    fn v4_mapped_loses_its_prefix() {
        assert_eq!(fix_v4_address("::ffff:10.1.2.3", &ip("::ffff:10.1.2.3")), "10.1.2.3");
        assert_eq!(fix_v4_address("localhost", &ip("::ffff:127.0.0.1")), "localhost");
        assert_eq!(fix_v4_address("a.example.com", &ip("::ffff:127.0.0.1")), "a.example.com");
        assert_eq!(fix_v4_address("::1.2.3.4", &ip("::1.2.3.4")), "::1.2.3.4");
    }

    #[test]
    fn long_addresses_are_cut_as_netstat_cuts_them() {
        let addr_port = |addr: &[u8], port: &[u8], short_len, wide| {
            let mut out = Vec::new();
            push_addr_port(&mut out, addr, port, short_len, wide);
            out
        };
        let addr = b"fe80::1234:5678:9abc:def0";
        assert_eq!(addr_port(addr, b"22", 22, false), b"fe80::1234:5678:9abc:22");
        assert_eq!(addr_port(addr, b"22", 22, true), b"fe80::1234:5678:9abc:def0:22");
        assert_eq!(addr_port(b"127.0.0.1", b"ssh", 22, false), b"127.0.0.1:ssh");
        let long_port = b"a-very-long-service-name";
        assert_eq!(addr_port(b"host", long_port, 22, false), b"host:a-very-long-servic");
        assert_eq!(addr_port(b"*", long_port, 22, false), b"*:a-very-long-servic");
    }
}
