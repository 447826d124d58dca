//! Traffic in the table: each row's counters and rates, read from the
//! kernel's per-socket map, closed UDP sockets, and totals per process name.

use netwatch_common::Traffic;
use rustc_hash::FxHashMap;

use super::{row::Ending, Closed, Table};
use crate::{
    event::Event,
    socket::{Owner, Proto},
};

/// A row's counters (as the kernel last reported them) and the rates
/// derived from the two latest reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowTraffic {
    pub totals: Traffic,
    /// Payload bytes per second, sent and received, over the last interval.
    pub tx_rate: u64,
    pub rx_rate: u64,
    /// CLOCK_MONOTONIC ns of the report `totals` came from; 0 before any.
    pub sampled_ns: u64,
    /// How the connection opened (`crate::why`): its connect latency or
    /// passive handshake time and SYN retransmits, from its `ESTABLISHED`
    /// event; `None` for sockets that did not open while netwatch watched.
    pub opened: Option<crate::why::Latency>,
    /// A listener's own drop counter (SYNs and handshakes it dropped), from
    /// the live model's periodic LISTEN dump; `None` until read.
    pub listen_drops: Option<u32>,
    /// A connected TCP socket's smoothed RTT now, from `tcp_info` (the live
    /// model's periodic dump, while the live view asks for it: `Live`'s
    /// `live_rtt`); `None` until read, and while the kernel had no sample.
    pub rtt: Option<crate::seed::diag::Rtt>,
}

impl RowTraffic {
    fn update(&mut self, new: Traffic, now_ns: u64) {
        if self.sampled_ns != 0 && now_ns > self.sampled_ns {
            let per_sec = |old: u64, new: u64| {
                (u128::from(new.saturating_sub(old)) * 1_000_000_000 / u128::from(now_ns - self.sampled_ns)) as u64
            };
            self.tx_rate = per_sec(self.totals.tx_bytes, new.tx_bytes);
            self.rx_rate = per_sec(self.totals.rx_bytes, new.rx_bytes);
        }
        self.totals = new;
        self.sampled_ns = now_ns;
    }
}

/// Traffic of every socket of one process name, live and closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessTraffic {
    /// Process name, `-` for sockets without a known owner, `other` for the
    /// names beyond the top N.
    pub name: String,
    pub totals: Traffic,
    /// Current payload rates of its live sockets, bytes/s.
    pub tx_rate: u64,
    pub rx_rate: u64,
    /// Live sockets.
    pub sockets: u32,
}

impl ProcessTraffic {
    pub fn rate(&self) -> u64 {
        self.tx_rate.saturating_add(self.rx_rate)
    }

    fn add(&mut self, t: &Traffic) {
        add(&mut self.totals, t);
    }
}

/// Adds `b` into `a`, field by field.
pub fn add(a: &mut Traffic, b: &Traffic) {
    a.tx_bytes += b.tx_bytes;
    a.rx_bytes += b.rx_bytes;
    a.tx_packets += b.tx_packets;
    a.rx_packets += b.rx_packets;
    a.tx_ip_bytes += b.tx_ip_bytes;
    a.rx_ip_bytes += b.rx_ip_bytes;
    a.retransmits += b.retransmits;
    a.resets_sent += b.resets_sent;
    a.resets_received += b.resets_received;
}

/// Takes `b` out of `a` (an earlier addition being replaced).
fn sub(a: &mut Traffic, b: &Traffic) {
    a.tx_bytes = a.tx_bytes.saturating_sub(b.tx_bytes);
    a.rx_bytes = a.rx_bytes.saturating_sub(b.rx_bytes);
    a.tx_packets = a.tx_packets.saturating_sub(b.tx_packets);
    a.rx_packets = a.rx_packets.saturating_sub(b.rx_packets);
    a.tx_ip_bytes = a.tx_ip_bytes.saturating_sub(b.tx_ip_bytes);
    a.rx_ip_bytes = a.rx_ip_bytes.saturating_sub(b.rx_ip_bytes);
    a.retransmits = a.retransmits.saturating_sub(b.retransmits);
    a.resets_sent = a.resets_sent.saturating_sub(b.resets_sent);
    a.resets_received = a.resets_received.saturating_sub(b.resets_received);
}

impl Table {
    /// Applies one reading of the kernel's per-socket counters (socket
    /// cookie -> totals). Rows the kernel has no counters for keep theirs.
    pub fn update_traffic(&mut self, counters: &[(u64, Traffic)], now_ns: u64) {
        for (cookie, t) in counters {
            if let Some(row) = self.rows.get_mut(cookie) {
                row.traffic.update(*t, now_ns);
            }
        }
    }

    /// Applies the listeners' drop counters of a sock_diag dump that asked
    /// for them (`crate::seed::diag::Figures`).
    pub fn update_listen_drops(&mut self, listeners: &[crate::seed::SeedSocket]) {
        for s in listeners {
            let (Some(cookie), Some(drops)) = (s.cookie, s.figures.and_then(|f| f.drops)) else { continue };
            if let Some(row) = self.rows.get_mut(&cookie) {
                row.traffic.listen_drops = Some(drops);
            }
        }
    }

    /// Applies the connected sockets' RTT of a sock_diag dump that asked
    /// for it (`crate::seed::Minisocks::connected`). A socket with no RTT
    /// sample yet (0) keeps `None`.
    pub fn update_rtt(&mut self, connected: &[crate::seed::SeedSocket]) {
        for s in connected {
            let (Some(cookie), Some(rtt)) = (s.cookie, s.figures.and_then(|f| f.rtt)) else { continue };
            if let Some(row) = self.rows.get_mut(&cookie) {
                row.traffic.rtt = (rtt.srtt_us != 0).then_some(rtt);
            }
        }
    }

    /// Totals per process name, live sockets plus closed ones, busiest
    /// (most bytes both ways) first; names beyond `top` are summed into one
    /// `other` entry. Low cardinality by construction, for metrics (one
    /// series per name and direction, never per connection).
    pub fn traffic_by_process(&self, top: usize) -> Vec<ProcessTraffic> {
        let mut by: FxHashMap<&str, ProcessTraffic> = FxHashMap::default();
        for (name, t) in &self.closed_traffic {
            by.entry(name).or_insert_with(|| named(name)).add(t);
        }
        for r in self.rows.values() {
            let name = r.owners.first().map_or("-", |o| o.comm.text());
            let p = by.entry(name).or_insert_with(|| named(name));
            p.add(&r.traffic.totals);
            p.tx_rate += r.traffic.tx_rate;
            p.rx_rate += r.traffic.rx_rate;
            p.sockets += 1;
        }
        let mut all: Vec<ProcessTraffic> = by.into_values().collect();
        all.sort_by(|a, b| bytes(&b.totals).cmp(&bytes(&a.totals)).then_with(|| a.name.cmp(&b.name)));
        if all.len() > top {
            let mut other = named("other");
            for p in all.drain(top..) {
                other.add(&p.totals);
                other.tx_rate += p.tx_rate;
                other.rx_rate += p.rx_rate;
                other.sockets += p.sockets;
            }
            all.push(other);
        }
        all
    }

    /// A destroyed socket's final totals (see `event::final_totals`) replace
    /// what its close event carried, when they differ: a reset sent after
    /// the close, in a later batch. Only recent history is searched: the
    /// destroy follows the close within the same close() or timer.
    pub(super) fn final_traffic(&mut self, e: &Event) {
        if e.traffic == Traffic::ZERO {
            return;
        }
        let Some(c) = self.history.iter_mut().rev().take(64).find(|c| c.cookie == Some(e.cookie)) else { return };
        let merged = c.traffic.after_close(&e.traffic);
        if c.traffic == merged {
            return;
        }
        let (old, owner) = (c.traffic, c.owner);
        c.traffic = merged;
        // The per-process sum took the old totals: replace them.
        let name = owner.as_ref().map_or("-", |o| o.comm.text());
        if let Some(sum) = self.closed_traffic.get_mut(name) {
            sub(sum, &old);
            add(sum, &merged);
        }
    }

    pub(super) fn add_closed_traffic(&mut self, owner: Option<&Owner>, t: &Traffic) {
        if *t == Traffic::ZERO {
            return;
        }
        let name = owner.map_or("-", |o| o.comm.text());
        match self.closed_traffic.get_mut(name) {
            Some(sum) => add(sum, t),
            None => {
                self.closed_traffic.insert(name.to_owned(), *t);
            }
        }
    }

    /// A UDP socket's last file closed: the row goes to the history with
    /// its final totals.
    pub(super) fn udp_close(&mut self, key: u64, e: &Event) {
        let row = self.remove(key);
        let owner = self.closing_owner(row.as_ref(), e);
        self.add_closed_traffic(owner.as_ref(), &e.traffic);
        let (local, remote) = row.as_ref().map_or((e.local, e.remote), |r| (r.local, r.remote));
        self.push_history(Closed {
            proto: Proto::Udp,
            family: e.family,
            local,
            remote,
            netns: e.netns,
            cookie: Some(e.cookie),
            owner,
            last_state: e.old_state,
            ending: Ending::Closed,
            closed_ns: e.ts_ns,
            duration_ns: e.lifetime_ns(),
            traffic: e.traffic,
        });
    }
}

fn named(name: &str) -> ProcessTraffic {
    ProcessTraffic { name: name.to_owned(), ..Default::default() }
}

fn bytes(t: &Traffic) -> u64 {
    t.tx_bytes.saturating_add(t.rx_bytes)
}

#[cfg(test)]
mod tests;
