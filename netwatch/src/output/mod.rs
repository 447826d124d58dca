//! Where events are shown: one formatter per output style.

pub mod json;
pub mod snapshot;
pub mod text;

use std::io;

use crate::{
    event::{clock::WallClock, Event},
    stream::Loss,
};

/// One way of printing the event stream. Sinks format into a byte buffer
/// and the caller writes a whole batch at once: at hundreds of thousands of
/// lines a second, many small writes through a `dyn Write` cost more than
/// the formatting itself (measured with perf).
pub trait EventSink {
    fn header(&mut self, _out: &mut Vec<u8>) -> io::Result<()> {
        Ok(())
    }
    fn event(&mut self, out: &mut Vec<u8>, e: &Event, clock: &WallClock) -> io::Result<()>;
    fn lost(&mut self, out: &mut Vec<u8>, loss: &Loss, at: jiff::Timestamp) -> io::Result<()>;
}

/// Milliseconds with microsecond precision, as tcplife prints them.
/// Appends `ip` as `Display` would, IPv4-mapped shown as IPv4, with IPv4
/// written octet by octet from a table of their digits, into one copy:
/// through `Display` it was a sizeable share of both the event stream's
/// and a large snapshot's CPU, and formatting each octet as a number was
/// still a tenth of the OTLP encoder's.
pub fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match crate::event::display_ip(ip) {
        std::net::IpAddr::V4(v4) => {
            // At most 4 octets of 3 digits and 3 dots; each octet's 3
            // bytes are copied whole (the rest overwritten or left out).
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                let (digits, n) = OCTETS[usize::from(octet)];
                text[len..len + 3].copy_from_slice(&digits);
                len += usize::from(n);
            }
            out.extend_from_slice(&text[..len]);
        }
        // Writing to a Vec cannot fail.
        v6 => _ = io::Write::write_fmt(out, format_args!("{v6}")),
    }
}

/// Each octet's decimal digits, NUL-padded, and how many.
const OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0; 3], 0); 256];
    let mut i = 0;
    while i < 256 {
        let (h, t, o) = (b'0' + (i / 100) as u8, b'0' + (i / 10 % 10) as u8, b'0' + (i % 10) as u8);
        table[i] = match i {
            100.. => ([h, t, o], 3),
            10.. => ([t, o, 0], 2),
            _ => ([o, 0, 0], 1),
        };
        i += 1;
    }
    table
};

pub fn duration_ms(ns: u64) -> f64 {
    (ns / 1000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Every octet in every position as `Display` writes it; IPv4-mapped
    /// IPv6 as IPv4, other IPv6 as `Display`.
    #[test]
    fn write_ip_is_display() {
        let text = |ip: IpAddr| {
            let mut out = b"x".to_vec();
            super::write_ip(&mut out, ip);
            String::from_utf8(out).unwrap()
        };
        for o in 0..=255u8 {
            for ip in [Ipv4Addr::new(o, 255 - o, o / 3, 9), Ipv4Addr::new(255 - o, o, 10, o)] {
                assert_eq!(text(ip.into()), format!("x{ip}"));
            }
        }
        let mapped = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped();
        assert_eq!(text(mapped.into()), "x127.0.0.1");
        assert_eq!(text(Ipv6Addr::LOCALHOST.into()), "x::1");
    }
}
