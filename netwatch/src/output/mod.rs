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
/// written octet by octet: through `Display` it was a sizeable share of
/// both the event stream's and a large snapshot's CPU.
pub fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match crate::event::display_ip(ip) {
        std::net::IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                json::short(out, n.format(octet).as_bytes());
            }
        }
        // Writing to a Vec cannot fail.
        v6 => _ = io::Write::write_fmt(out, format_args!("{v6}")),
    }
}

pub fn duration_ms(ns: u64) -> f64 {
    (ns / 1000) as f64 / 1000.0
}
