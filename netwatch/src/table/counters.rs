//! Per-state counts (current) and cumulative counters (since start).

use netwatch_common::tcp;

use super::row::Row;
use crate::seed::Proto;

/// Current sockets per protocol and state: derived from the rows on demand,
/// so it can never drift from the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Indexed by kernel state number.
    pub tcp: [u32; 14],
    /// UDP sockets: unconnected (CLOSE) and connected (ESTABLISHED).
    pub udp: [u32; 14],
}

impl StateCounts {
    pub fn of<'a>(rows: impl Iterator<Item = &'a Row>) -> Self {
        let mut c = Self::default();
        for r in rows {
            let slot = match r.proto {
                Proto::Tcp => &mut c.tcp,
                Proto::Udp => &mut c.udp,
            };
            if let Some(n) = slot.get_mut(usize::from(r.state)) {
                *n += 1;
            }
        }
        c
    }

    pub fn tcp(&self, state: u8) -> u32 {
        self.tcp.get(usize::from(state)).copied().unwrap_or(0)
    }

    pub fn tcp_total(&self) -> u32 {
        self.tcp.iter().sum()
    }

    pub fn udp_total(&self) -> u32 {
        self.udp.iter().sum()
    }

    /// `(name, count)` for every TCP state with sockets, netstat's names.
    pub fn tcp_named(&self) -> Vec<(&'static str, u32)> {
        (tcp::ESTABLISHED..=tcp::CLOSING).filter(|&s| self.tcp(s) > 0).map(|s| (tcp::name(s), self.tcp(s))).collect()
    }
}

/// Cumulative counters since netwatch started.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Connections this machine opened (`connect()` completed).
    pub opened_active: u64,
    /// Connections this machine accepted (handshake completed).
    pub opened_passive: u64,
    pub closed: u64,
    pub failed_connects: u64,
    pub resets: u64,
    pub lost_events: u64,
    /// Times the table was rebuilt from the kernel after lost events.
    pub reseeds: u64,
}
