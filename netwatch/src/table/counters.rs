//! Per-state counts (current) and cumulative counters (since start).

use netwatch_common::{tcp, EventKind};

use super::row::Row;
use crate::seed::Proto;
use crate::{event::Event, socket::TcpState};

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
            if let Some(n) = slot.get_mut(r.state as usize) {
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

/// Cumulative counters since netwatch started: the one set every consumer
/// of events keeps (the table's, and `netwatch events` for what it printed).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Events counted (the exit summary; not in snapshot documents).
    #[serde(skip)]
    pub events: u64,
    /// Active opens started (`connect()` called).
    #[serde(skip)]
    pub connects: u64,
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
    /// Packets whose socket found the kernel's traffic map full: counted
    /// nowhere, so that socket's rates and UDP totals read low.
    #[serde(skip)]
    pub traffic_uncounted: u64,
}

impl Totals {
    /// Counts packets the full traffic map left out; true the first time,
    /// when the user is to be told (the map stays full while those
    /// sockets live, so once is enough).
    pub fn count_uncounted(&mut self, packets: u64) -> bool {
        let first = self.traffic_uncounted == 0;
        self.traffic_uncounted += packets;
        first
    }

    /// Counts one event. A listener's close ends no connection: netstat
    /// counts none, and counting it would make closes run ahead of opens.
    pub fn count(&mut self, e: &Event) {
        self.events += 1;
        match e.kind {
            EventKind::Connect => self.connects += 1,
            EventKind::Established => self.opened_active += 1,
            // netstat -s's passive opens: handshakes completed, accepted
            // or not.
            EventKind::Handshake => self.opened_passive += 1,
            EventKind::ConnectFailed => self.failed_connects += 1,
            EventKind::Close if e.old_state != TcpState::Listen => {
                self.closed += 1;
                self.resets += u64::from(super::ending(e.old_state) == super::Ending::Reset);
            }
            _ => {}
        }
    }
}
