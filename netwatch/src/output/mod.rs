//! Where events are shown: one formatter per output style.

pub mod json;
pub mod snapshot;
pub mod text;

use std::io;

use crate::event::{clock::WallClock, Event};

/// One way of printing the event stream. Sinks format into a byte buffer
/// and the caller writes a whole batch at once: at hundreds of thousands of
/// lines a second, many small writes through a `dyn Write` cost more than
/// the formatting itself (measured with perf).
pub trait EventSink {
    fn header(&mut self, _out: &mut Vec<u8>) -> io::Result<()> {
        Ok(())
    }
    fn event(&mut self, out: &mut Vec<u8>, e: &Event, clock: &WallClock) -> io::Result<()>;
    fn lost(&mut self, out: &mut Vec<u8>, count: u64, at: jiff::Timestamp) -> io::Result<()>;
}

/// Milliseconds with microsecond precision, as tcplife prints them.
pub fn duration_ms(ns: u64) -> f64 {
    (ns / 1000) as f64 / 1000.0
}
