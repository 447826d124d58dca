//! Run statistics: delivery latency, and the exit summary of it and the
//! counters ([`Totals`]).

use std::fmt;

use crate::table::Totals;

/// Kernel-to-agent latency histogram: buckets of 1 µs up to 1 ms, then
/// 10 µs up to 100 ms, then one overflow bucket. Fixed memory, O(1) record.
#[derive(Clone, Debug)]
pub struct Latency {
    fine: Box<[u64; 1000]>,
    coarse: Box<[u64; 9900]>,
    overflow: u64,
    max_ns: u64,
    count: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Self { fine: Box::new([0; 1000]), coarse: Box::new([0; 9900]), overflow: 0, max_ns: 0, count: 0 }
    }
}

impl Latency {
    pub fn record(&mut self, ns: u64) {
        let us = ns / 1000;
        match us {
            0..1000 => self.fine[us as usize] += 1,
            1000..100_000 => self.coarse[((us - 1000) / 10) as usize] += 1,
            _ => self.overflow += 1,
        }
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
    }

    /// The upper edge, in µs, of the bucket holding quantile `q`, but never
    /// above the largest latency seen (a p99 above the max reads as a bug).
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.bucket_edge_us(q).min(self.max_us())
    }

    fn bucket_edge_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        // Each bucket's upper edge: 1 µs wide up to 1 ms, then 10 µs.
        let edges = (1..=1000).chain((1..=9900).map(|i| 1000 + i * 10));
        let mut seen = 0;
        let bucket = self.fine.iter().chain(self.coarse.iter()).zip(edges).find(|&(n, _)| {
            seen += n;
            seen >= target
        });
        bucket.map_or(self.max_us(), |(_, edge)| edge)
    }

    pub fn max_us(&self) -> u64 {
        self.max_ns / 1000
    }
}

/// The exit summary: one `key=value` line, stable for scripts and the bench.
pub struct Summary<'a>(pub &'a Totals, pub &'a Latency);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, l) = (self.0, self.1);
        write!(
            f,
            "netwatch: summary events={} connects={} accepts={} closes={} failed={} lost={} \
             latency_p50_us={} latency_p99_us={} latency_max_us={} uncounted_packets={}",
            c.events,
            c.connects,
            c.opened_passive,
            c.closed,
            c.failed_connects,
            c.lost_events,
            l.quantile_us(0.5),
            l.quantile_us(0.99),
            l.max_us(),
            c.traffic_uncounted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwatch_common::{tcp, EventKind};

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let mut l = Latency::default();
        for us in 1..=100 {
            l.record(us * 1000 - 1);
        }
        assert_eq!(l.quantile_us(0.5), 50);
        assert_eq!(l.quantile_us(0.99), 99);
        l.record(1_500_000);
        // Its bucket ends at 1510 µs; no sample was above 1500.
        assert_eq!(l.quantile_us(1.0), 1500);
        l.record(5_000_000_000);
        assert_eq!(l.max_us(), 5_000_000);
        assert_eq!(l.quantile_us(1.0), 5_000_000);
        assert_eq!(Latency::default().quantile_us(0.99), 0);
    }

    #[test]
    fn counts_by_kind_and_summary_format() {
        let mut c = Totals::default();
        for k in
            [EventKind::Connect, EventKind::Handshake, EventKind::Close, EventKind::ConnectFailed, EventKind::State]
        {
            c.count(&crate::tui::fixtures::event(k, 1, tcp::FIN_WAIT2, tcp::CLOSE));
        }
        // A listener's close ends no connection.
        c.count(&crate::tui::fixtures::event(EventKind::Close, 1, tcp::LISTEN, tcp::CLOSE));
        // accepts= counts handshakes (netstat -s's passive opens), not the
        // accept() that returns each one later.
        c.count(&crate::tui::fixtures::event(EventKind::Accept, 1, tcp::ESTABLISHED, tcp::ESTABLISHED));
        c.lost_events = 3;
        c.traffic_uncounted = 5;
        let s = Summary(&c, &Latency::default()).to_string();
        assert_eq!(
            s,
            "netwatch: summary events=7 connects=1 accepts=1 closes=1 failed=1 lost=3 \
             latency_p50_us=0 latency_p99_us=0 latency_max_us=0 uncounted_packets=5"
        );
    }
}
