//! Latency histograms and failure counters (`crate::why`), fed event by
//! event. Labelled by port only, the service's (a connect's remote port, a
//! listener's local port), and at most [`MAX_PORTS`] of them: a client
//! connecting to many ports must not make many series
//! (docs/design.md#metrics-cardinality).

use std::{cell::RefCell, collections::HashSet};

use netwatch_common::EventKind;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use super::metrics::{reg, reg_with};
use crate::{event::Event, why};

/// Ports that get their own series; later ones are summed as `other`.
pub const MAX_PORTS: usize = 64;

/// Seconds. Fine below a millisecond (loopback, a LAN), then boundaries
/// between the SYN retransmit times (1 s, 3 s, 7 s, 15 s, 31 s after the
/// first SYN, with Linux's 1 s initial timeout): a handshake's bucket says
/// how many of its SYNs were lost.
const BUCKETS: [f64; 17] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabel {
    port: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

type Histograms = Family<PortLabel, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

pub struct WhyMetrics {
    connect: Histograms,
    handshake: Histograms,
    srtt: Histograms,
    syn_retransmits: Counter,
    failures: Family<ReasonLabel, Counter>,
    ports: RefCell<HashSet<u16>>,
    listen_drops: Family<PortLabel, Counter>,
    /// Each listener's drop counter at the last reading, by cookie.
    listen_seen: RefCell<std::collections::HashMap<u64, u64>>,
}

impl WhyMetrics {
    /// Registered into `r`, in the order their series are listed.
    pub fn new(r: &mut Registry) -> Self {
        let histograms = || Histograms::new_with_constructor(histogram);
        let m = Self {
            connect: reg_with(
                r,
                "netwatch_connect_latency_seconds",
                "TCP connect latency (SYN_SENT -> ESTABLISHED), by remote port",
                histograms(),
            ),
            handshake: reg_with(
                r,
                "netwatch_handshake_seconds",
                "Passive handshake time (the accepted child's birth -> ESTABLISHED), by listening port",
                histograms(),
            ),
            srtt: reg_with(
                r,
                "netwatch_srtt_seconds",
                "Smoothed RTT of TCP connections at close, by service port (the lower of the two)",
                histograms(),
            ),
            syn_retransmits: reg(
                r,
                "netwatch_syn_retransmits",
                "SYNs and SYN-ACKs sent again during handshakes that completed or failed",
            ),
            failures: reg(
                r,
                "netwatch_connection_failures",
                "Failed connects and abnormal closes, by reason (failed connect() calls included)",
            ),
            ports: RefCell::default(),
            listen_drops: reg(
                r,
                "netwatch_listen_drops",
                "SYNs and handshakes dropped by TCP listeners (each listener's own drop counter: accept queue \
                 full, mostly), by listening port",
            ),
            listen_seen: RefCell::default(),
        };
        for reason in why::Reason::ALL {
            // Present from the start, so rate() works on the first failure.
            drop(m.failures.get_or_create(&ReasonLabel { reason: reason.name() }));
        }
        m
    }

    pub fn observe(&self, e: &Event) {
        let l = why::latency(e);
        if let Some(us) = l.connect_us {
            self.connect.get_or_create(&self.port(e.remote.port())).observe(seconds(us));
        }
        if let Some(us) = l.handshake_us {
            self.handshake.get_or_create(&self.port(e.local.port())).observe(seconds(us));
        }
        if e.kind == EventKind::Close {
            if let Some(us) = l.srtt_us {
                let service = e.local.port().min(e.remote.port());
                self.srtt.get_or_create(&self.port(service)).observe(seconds(u64::from(us)));
            }
        }
        if let Some(n) = l.syn_retransmits {
            self.syn_retransmits.inc_by(u64::from(n));
        }
        if let Some(f) = why::failure(e) {
            self.failures.get_or_create(&ReasonLabel { reason: f.reason.name() }).inc();
        }
    }

    /// Raises the per-port counters by what each listener's own counter
    /// rose since the last reading: all of it for a listener not seen
    /// before (a counter starts at the agent's start anyway). A listener's
    /// port has its series from the first reading, at 0 if need be, so
    /// `rate()` sees the first drop.
    pub fn listen_drops(&self, samples: &[super::listen_drops::Sample]) {
        let mut seen = self.listen_seen.borrow_mut();
        let mut now = std::collections::HashMap::with_capacity(samples.len());
        for s in samples {
            let rose = s.drops.saturating_sub(seen.get(&s.cookie).copied().unwrap_or(0));
            self.listen_drops.get_or_create(&self.port(s.local.port())).inc_by(rose);
            now.insert(s.cookie, s.drops);
        }
        *seen = now;
    }

    /// The label for `port`: its own while fewer than [`MAX_PORTS`] have one.
    fn port(&self, port: u16) -> PortLabel {
        let mut ports = self.ports.borrow_mut();
        if ports.contains(&port) || ports.len() < MAX_PORTS && ports.insert(port) {
            PortLabel { port: port.to_string() }
        } else {
            PortLabel { port: super::metrics::OTHER.to_owned() }
        }
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::TcpState;

    fn established(remote_port: u16, us: u64) -> Event {
        Event {
            ts_ns: 10_000_000_000 + us * 1000,
            start_ns: Some(10_000_000_000),
            remote: std::net::SocketAddr::new([127, 0, 0, 1].into(), remote_port),
            ..crate::event::fixture(EventKind::Established, TcpState::SynSent, TcpState::Established)
        }
    }

    fn registered() -> (Registry, WhyMetrics) {
        let mut r = Registry::default();
        let m = WhyMetrics::new(&mut r);
        (r, m)
    }

    fn text(r: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, r).unwrap();
        out
    }

    #[test]
    fn connect_latency_lands_in_its_bucket_by_port() {
        let (r, m) = registered();
        let mut slow = established(8080, 1_020_000);
        slow.traffic.total_retrans = 1;
        m.observe(&slow);
        m.observe(&established(8080, 80));
        let out = text(&r);
        assert!(out.contains("netwatch_connect_latency_seconds_count{port=\"8080\"} 2\n"), "{out}");
        assert!(out.contains("netwatch_connect_latency_seconds_bucket{le=\"0.0001\",port=\"8080\"} 1\n"), "{out}");
        assert!(out.contains("netwatch_connect_latency_seconds_bucket{le=\"0.5\",port=\"8080\"} 1\n"), "{out}");
        assert!(out.contains("netwatch_connect_latency_seconds_bucket{le=\"1.5\",port=\"8080\"} 2\n"), "{out}");
        assert!(out.contains("netwatch_syn_retransmits_total 1\n"), "{out}");
        assert!(out.contains("netwatch_connection_failures_total{reason=\"refused\"} 0\n"), "{out}");
    }

    #[test]
    fn ports_beyond_the_limit_are_other() {
        let (r, m) = registered();
        for port in 1..=(MAX_PORTS as u16 + 5) {
            m.observe(&established(port, 100));
        }
        let out = text(&r);
        assert!(out.contains("netwatch_connect_latency_seconds_count{port=\"other\"} 5\n"), "{out}");
        assert_eq!(out.matches("netwatch_connect_latency_seconds_count{").count(), MAX_PORTS + 1);
    }

    #[test]
    fn failures_count_by_reason() {
        let (r, m) = registered();
        let mut refused = established(9, 0);
        (refused.kind, refused.new_state, refused.traffic.sk_err) = (EventKind::ConnectFailed, TcpState::Close, 111);
        m.observe(&refused);
        assert!(text(&r).contains("netwatch_connection_failures_total{reason=\"refused\"} 1\n"));
    }
}
