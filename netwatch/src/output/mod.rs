//! Where events are shown: one formatter per output style.

pub mod json;
pub mod text;

use std::io::{self, Write};

use crate::event::{clock::WallClock, Event};

/// One way of printing the event stream.
pub trait EventSink {
    fn header(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
    fn event(&mut self, out: &mut dyn Write, e: &Event, clock: &WallClock) -> io::Result<()>;
    fn lost(&mut self, out: &mut dyn Write, count: u64, at: jiff::Timestamp) -> io::Result<()>;
}

/// Milliseconds with microsecond precision, as tcplife prints them.
pub fn duration_ms(ns: u64) -> f64 {
    (ns / 1000) as f64 / 1000.0
}
