//! `/etc/services`, `/etc/protocols` and `/etc/networks`, read the way
//! lib/inet.c `read_services` and glibc's files backend read them.
//!
//! net-tools prepends every entry to a list and takes the first match, so
//! the last line of the file wins for a port; protocols (for raw sockets)
//! come after `raw` services and so win over them. `getnetbyaddr` returns
//! the first matching line.

use std::collections::HashMap;

/// The protocols whose service names netstat looks up.
const PROTOS: [&str; 3] = ["tcp", "udp", "raw"];

#[derive(Debug, Default)]
pub struct Services {
    /// Names by port and protocol (one of [`PROTOS`]).
    ports: HashMap<(u16, &'static str), String>,
    networks: Vec<(u32, String)>,
}

fn known(proto: &str) -> Option<&'static str> {
    PROTOS.into_iter().find(|p| *p == proto)
}

impl Services {
    pub fn load() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Self::parse(&read("/etc/services"), &read("/etc/protocols"), &read("/etc/networks"))
    }

    pub fn parse(services: &str, protocols: &str, networks: &str) -> Self {
        let mut s = Self::default();
        for (name, port, proto) in lines(services).filter_map(service_line) {
            if let Some(proto) = known(proto) {
                s.ports.insert((port, proto), name.to_owned());
            }
        }
        for mut fields in lines(protocols) {
            let (Some(name), Some(Ok(number))) = (fields.next(), fields.next().map(str::parse::<u32>)) else {
                continue;
            };
            // `htons(p_proto)` keeps the low 16 bits.
            s.ports.insert((number as u16, "raw"), name.to_owned());
        }
        for mut fields in lines(networks) {
            if let (Some(name), Some(Some(net))) = (fields.next(), fields.next().map(inet_network)) {
                s.networks.push((net, name.to_owned()));
            }
        }
        s
    }

    /// The service name of `port` for `proto` (`tcp`, `udp`, `raw`).
    pub fn service(&self, port: u16, proto: &str) -> Option<&str> {
        self.ports.get(&(port, known(proto)?)).map(String::as_str)
    }

    /// `getnetbyaddr(net, AF_INET)`, `net` in host byte order.
    pub fn network(&self, net: u32) -> Option<&str> {
        self.networks.iter().find(|(n, _)| *n == net).map(|(_, name)| name.as_str())
    }
}

/// Whitespace-separated fields of each line, comments (`#`) removed.
fn lines(text: &str) -> impl Iterator<Item = std::str::SplitAsciiWhitespace<'_>> {
    text.lines().map(|l| l.split('#').next().unwrap_or("").split_ascii_whitespace())
}

/// `name port/proto [aliases]`; the port as `strtoul(.., 0)` reads it.
fn service_line(mut fields: std::str::SplitAsciiWhitespace<'_>) -> Option<(&str, u16, &str)> {
    let name = fields.next()?;
    let (port, proto) = fields.next()?.split_once('/')?;
    let port = c_number(port)?;
    if proto.is_empty() {
        return None;
    }
    Some((name, port as u16, proto))
}

/// A C integer literal: decimal, `0x` hex or leading-`0` octal.
fn c_number(s: &str) -> Option<u32> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None if s.len() > 1 && s.starts_with('0') => (&s[1..], 8),
        None => (s, 10),
    };
    u32::from_str_radix(digits, radix).ok()
}

/// glibc `inet_network`: up to four parts, each shifted in from the right.
fn inet_network(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    parts.iter().try_fold(0u32, |acc, part| {
        let v = c_number(part).filter(|v| *v <= 255)?;
        Some((acc << 8) | v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_wins_and_protocols_win_for_raw() {
        let services = "# comment\nssh\t\t22/tcp\t\t\t# SSH\nhttp 80/tcp www\nalt 80/tcp\ndomain 53/udp\nping 1/raw\n";
        let protocols = "ip\t0\tIP\nicmp\t1\tICMP\nipv6-icmp 58 IPv6-ICMP\n";
        let s = Services::parse(services, protocols, "loopback 127.0.0.0\nlink-local\t169.254.0.0\n");
        assert_eq!(s.service(22, "tcp"), Some("ssh"));
        assert_eq!(s.service(80, "tcp"), Some("alt"));
        assert_eq!(s.service(53, "udp"), Some("domain"));
        assert_eq!(s.service(53, "tcp"), None);
        assert_eq!(s.service(1, "raw"), Some("icmp"));
        assert_eq!(s.service(58, "raw"), Some("ipv6-icmp"));
        assert_eq!(s.network(0x7f00_0000), Some("loopback"));
        assert_eq!(s.network(0xa9fe_0000), Some("link-local"));
        assert_eq!(s.network(0x0a00_0000), None);
    }

    #[test]
    fn inet_network_shifts_parts() {
        assert_eq!(inet_network("127.0.0.0"), Some(0x7f00_0000));
        assert_eq!(inet_network("10"), Some(10));
        assert_eq!(inet_network("0x7f.1"), Some(0x7f01));
        assert_eq!(inet_network("1.2.3.4.5"), None);
    }
}
