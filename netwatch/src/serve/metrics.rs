//! The Prometheus metrics, built from the live table at each scrape (so a
//! scrape is exact as of the last applied batch) plus counters fed as events
//! and alerts happen. Labels are per protocol, state, direction, process
//! name and alert kind; never per 4-tuple (docs/design.md#metrics-cardinality).

use std::{collections::HashMap, sync::atomic::Ordering::Relaxed};

use netwatch_common::tcp;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::{Metric, Registry},
};

use super::{alerts::endpoint, config::AlertKind, export::Errors, listeners::ListenerIndex};
use crate::{
    socket::{Proto, TcpState},
    table::Table,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtoState {
    proto: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtoLabel {
    proto: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Opened {
    proto: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Process {
    process: String,
    /// `unit` and `container` where the owner has them ([`workload_labels`]).
    #[prometheus(flatten)]
    workload: WorkloadLabels,
}

/// Labels of where a process runs: none, `unit`, `container`, or both.
type WorkloadLabels = Vec<(&'static str, String)>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerState {
    listener: String,
    netns: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessDirection {
    process: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Output {
    output: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropReason {
    reason: String,
}

/// The label a process-name series gets once the top N are taken.
pub const OTHER: &str = "other";

pub struct Metrics {
    registry: Registry,
    sockets: Family<ProtoState, Gauge>,
    listeners: Family<ProtoLabel, Gauge>,
    opened: Family<Opened, Counter>,
    closed: Family<ProtoLabel, Counter>,
    connect_failures: Counter,
    resets: Counter,
    lost: Counter,
    reseeds: Counter,
    processes: Family<Process, Gauge>,
    process_bytes: Family<ProcessDirection, Gauge>,
    process_packets: Family<ProcessDirection, Gauge>,
    per_listener: Family<ListenerState, Gauge>,
    alerts: Family<Kind, Counter>,
    table_rows: Gauge,
    drain_events: Histogram,
    drain_max: Gauge,
    export_errors: Family<Output, Counter>,
    top_processes: usize,
    top_listeners: usize,
    why: super::latency::WhyMetrics,
    /// The address-to-name map (`crate::names`): addresses held, answers
    /// taken in, entries evicted to stay within its bound.
    dns_names: Gauge,
    dns_answers: Counter,
    dns_evictions: Counter,
    /// Answers the kernel could not hand over: its DNS ring was full.
    dns_lost: Counter,
    /// Packets of closed sockets the kernel dropped, by reason (a bounded
    /// kernel enum, plus `other`).
    packet_drops: Family<DropReason, Counter>,
    /// Packets whose socket found no room in the kernel's full traffic map.
    traffic_uncounted: Counter,
}

impl Metrics {
    pub fn new(top_processes: usize, top_listeners: usize) -> Self {
        let mut registry = Registry::default();
        let r = &mut registry;
        let m = Self {
            sockets: reg(r, "netwatch_sockets", "Current sockets by protocol and state (the live table)"),
            listeners: reg(r, "netwatch_listeners", "Listening TCP sockets and unconnected UDP sockets"),
            opened: reg(
                r,
                "netwatch_connections_opened",
                "TCP connections opened: active (connect) or passive (accepted handshake)",
            ),
            closed: reg(r, "netwatch_connections_closed", "TCP connections closed"),
            connect_failures: reg(r, "netwatch_connect_failures", "Active opens that failed (SYN_SENT -> CLOSE)"),
            resets: reg(r, "netwatch_resets", "Connections torn down without the FIN handshake"),
            lost: reg(
                r,
                "netwatch_events_lost",
                "Events lost: the ring buffer was full, or the kernel skipped a hook run (the table is then re-read)",
            ),
            reseeds: reg(r, "netwatch_table_reseeds", "Table rebuilds from the kernel after lost events"),
            processes: reg(
                r,
                "netwatch_process_connections",
                "Open TCP connections (listeners excluded) by owning process name, with its systemd unit and \
                 container where known: the top N, the rest as `other`",
            ),
            // Gauges, not counters: a name moves in and out of the top N (and of
            // `other`) between scrapes, so no series is guaranteed to only grow.
            process_bytes: reg(
                r,
                "netwatch_process_traffic_bytes",
                "Payload bytes sent (tx) and received (rx) since netwatch started, by owning process name, live \
                 and closed sockets: the top N by bytes, the rest as `other`",
            ),
            process_packets: reg(
                r,
                "netwatch_process_traffic_packets",
                "Packets sent (tx) and received (rx) since netwatch started, by owning process name (as \
                 netwatch_process_traffic_bytes)",
            ),
            per_listener: reg(
                r,
                "netwatch_listener_connections",
                "TCP connections per listener (accepted and half-open) by state: the N listeners with most, \
                 the rest summed as listener=\"other\"",
            ),
            alerts: reg(r, "netwatch_alerts", "Alerts fired, by kind"),
            table_rows: reg(r, "netwatch_table_rows", "Rows in the live table (agent health)"),
            drain_events: reg_with(
                r,
                "netwatch_ring_drain_events",
                "Events taken from the ring buffer per drain (agent health: aya exposes no fill level, so \
                 the batch size and netwatch_events_lost_total are what shows the ring filling)",
                Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            ),
            drain_max: reg(
                r,
                "netwatch_ring_drain_max_events",
                "Largest number of events taken in one drain since the previous scrape",
            ),
            export_errors: reg(
                r,
                "netwatch_export_errors",
                "Export failures per output and reason: failed writes (file, syslog); OTLP log records dropped \
                 (queue_full, rejected) and failed requests that are retried (retry)",
            ),
            top_processes,
            top_listeners,
            why: super::latency::WhyMetrics::new(r),
            dns_names: reg(r, "netwatch_dns_names", "Addresses with a name from DNS answers held (agent health)"),
            dns_answers: reg(r, "netwatch_dns_answers", "DNS answers that named an address"),
            dns_evictions: reg(
                r,
                "netwatch_dns_evictions",
                "Address names dropped, oldest first, to keep the map within its bound",
            ),
            dns_lost: reg(
                r,
                "netwatch_dns_lost",
                "DNS answers lost, the kernel's DNS ring buffer full: the addresses they named have no name",
            ),
            packet_drops: reg(
                r,
                "netwatch_packet_drops",
                "Packets the kernel dropped (skb:kfree_skb), by drop reason, counted from sockets as they close",
            ),
            traffic_uncounted: reg(
                r,
                "netwatch_traffic_uncounted_packets",
                "Packets not counted per socket: their socket found the kernel's traffic map full \
                 (NETWATCH_TRAFFIC_SOCKETS sizes it)",
            ),
            registry,
        };
        for kind in AlertKind::ALL {
            // Every kind present from the start, so rate() works on the first alert.
            drop(m.alerts.get_or_create(&Kind { kind: kind.name() }));
        }
        m
    }

    /// Latency and failure figures of one event (`super::latency`).
    pub fn observe(&self, e: &crate::event::Event) {
        self.why.observe(e);
        if crate::output::json::has_totals(e.kind) && e.traffic.drops != 0 {
            for (reason, n) in crate::probe::drops_by_reason(&e.traffic) {
                self.packet_drops.get_or_create(&DropReason { reason: reason.into_owned() }).inc_by(n.into());
            }
        }
    }

    /// The listeners' drop counters, read once a check interval.
    pub fn listen_drops(&self, samples: &[super::listen_drops::Sample]) {
        self.why.listen_drops(samples);
    }

    pub fn set_limits(&mut self, top_processes: usize, top_listeners: usize) {
        self.top_processes = top_processes;
        self.top_listeners = top_listeners;
    }

    /// One drain of the ring buffer brought `events` events.
    pub fn drained(&mut self, events: usize) {
        if events == 0 {
            return;
        }
        self.drain_events.observe(events as f64);
        let n = i64::try_from(events).unwrap_or(i64::MAX);
        if n > self.drain_max.get() {
            self.drain_max.set(n);
        }
    }

    pub fn alert(&self, kind: AlertKind) {
        self.alerts.get_or_create(&Kind { kind: kind.name() }).inc();
    }

    /// The text exposition of everything, as of `table` now.
    pub fn scrape(&self, table: &Table, errors: Errors) -> String {
        self.update_from(table, errors);
        let mut out = String::with_capacity(8 << 10);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        self.drain_max.set(0);
        out
    }

    fn update_from(&self, table: &Table, errors: Errors) {
        let counts = table.counts();
        let udp_connected = counts.udp[usize::from(tcp::ESTABLISHED)];
        let udp_unconn = counts.udp_total() - udp_connected;
        let tcp_states = (tcp::ESTABLISHED..=tcp::CLOSING).map(|s| (Proto::Tcp, tcp::name(s), counts.tcp(s)));
        let udp_states = [(Proto::Udp, "ESTABLISHED", udp_connected), (Proto::Udp, "UNCONN", udp_unconn)];
        for (proto, state, n) in tcp_states.chain(udp_states) {
            self.sockets.get_or_create(&ProtoState { proto: proto.name(), state }).set(n.into());
        }
        self.listeners.get_or_create(&ProtoLabel { proto: Proto::Tcp.name() }).set(counts.tcp(tcp::LISTEN).into());
        self.listeners.get_or_create(&ProtoLabel { proto: Proto::Udp.name() }).set(udp_unconn.into());

        let t = &table.totals;
        sync(&self.opened.get_or_create(&Opened { proto: Proto::Tcp.name(), direction: "active" }), t.opened_active);
        sync(&self.opened.get_or_create(&Opened { proto: Proto::Tcp.name(), direction: "passive" }), t.opened_passive);
        sync(&self.closed.get_or_create(&ProtoLabel { proto: Proto::Tcp.name() }), t.closed);
        sync(&self.connect_failures, t.failed_connects);
        sync(&self.resets, t.resets);
        sync(&self.lost, t.lost_events);
        sync(&self.reseeds, t.reseeds);
        sync(&self.traffic_uncounted, t.traffic_uncounted);
        self.table_rows.set(i64::try_from(table.len()).unwrap_or(i64::MAX));
        self.dns_names.set(i64::try_from(table.hosts.len()).unwrap_or(i64::MAX));
        sync(&self.dns_answers, table.hosts.answers);
        sync(&self.dns_evictions, table.hosts.evictions);
        sync(&self.dns_lost, table.hosts.lost);
        let otlp = &super::otlp::COUNTERS;
        for (output, reason, n) in [
            ("file", "write", errors.file),
            ("syslog", "write", errors.syslog),
            ("otlp_logs", "queue_full", otlp.queue_full.load(Relaxed)),
            ("otlp_logs", "rejected", otlp.rejected.load(Relaxed)),
            ("otlp_logs", "retry", otlp.retry.load(Relaxed)),
            ("otlp_metrics", "rejected", otlp.metrics_rejected.load(Relaxed)),
            ("otlp_metrics", "retry", otlp.metrics_retry.load(Relaxed)),
        ] {
            sync(&self.export_errors.get_or_create(&Output { output, reason }), n);
        }

        self.processes.clear();
        let workload = |pid| workload_labels(table.workload_of(pid).as_ref());
        for ((process, workload), n) in top_processes(table, self.top_processes, workload) {
            self.processes.get_or_create(&Process { process, workload }).set(n);
        }
        self.process_bytes.clear();
        self.process_packets.clear();
        for p in table.traffic_by_process(self.top_processes) {
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            for (direction, bytes, packets) in
                [("tx", p.totals.tx_bytes, p.totals.tx_packets), ("rx", p.totals.rx_bytes, p.totals.rx_packets)]
            {
                let labels = ProcessDirection { process: p.name.clone(), direction };
                self.process_bytes.get_or_create(&labels).set(gauge(bytes));
                self.process_packets.get_or_create(&labels).set(gauge(packets));
            }
        }
        self.per_listener.clear();
        for ((listener, netns, state), n) in per_listener(table, self.top_listeners) {
            self.per_listener.get_or_create(&ListenerState { listener, netns, state }).set(n);
        }
    }
}

/// A new metric, registered as `name` with `help`: the exposition lists
/// the metrics in the order they were registered.
pub(super) fn reg<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    reg_with(r, name, help, M::default())
}

pub(super) fn reg_with<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

/// Brings a counter up to a total kept elsewhere (the table's).
fn sync(c: &Counter, total: u64) {
    c.inc_by(total.saturating_sub(c.get()));
}

/// The `unit` and `container` labels of a workload (the container's name,
/// else its short id): bounded like the process names they go with, and
/// absent where unknown, so the series of a process outside any unit or
/// container keeps its plain `process` label.
fn workload_labels(w: Option<&crate::workload::Workload>) -> WorkloadLabels {
    let Some(w) = w else { return Vec::new() };
    let unit = w.unit.as_ref().map(|u| ("unit", u.to_string()));
    unit.into_iter().chain(w.container.is_some().then(|| ("container", w.label().to_owned()))).collect()
}

/// Open TCP connections (not listeners, not TIME_WAIT or half-open rows,
/// which have no owner) per first owner's name and `workload` labels (by
/// PID): the `n` largest, then the rest summed as [`OTHER`]. Sorted by
/// count, then name, for stable output.
pub fn top_processes(
    table: &Table,
    n: usize,
    mut workload: impl FnMut(u32) -> WorkloadLabels,
) -> Vec<((String, WorkloadLabels), i64)> {
    let mut per: HashMap<(&str, u32), i64> = HashMap::new();
    for r in table.rows().filter(|r| r.proto == Proto::Tcp && r.state != TcpState::Listen) {
        if let Some(o) = r.owners.first() {
            *per.entry((o.comm.text(), o.pid)).or_default() += 1;
        }
    }
    // Per process name and workload: one name may run in several units.
    let mut named: HashMap<(&str, WorkloadLabels), i64> = HashMap::new();
    for ((name, pid), k) in per {
        *named.entry((name, workload(pid))).or_default() += k;
    }
    let mut all: Vec<_> = named.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rest: i64 = all.iter().skip(n).map(|(_, k)| k).sum();
    let mut out: Vec<_> = all.into_iter().take(n).map(|((s, w), k)| ((s.to_owned(), w), k)).collect();
    if rest > 0 {
        out.push(((OTHER.to_owned(), Vec::new()), rest));
    }
    out
}

/// Connections per (listener, netns, state) for the `n` listeners with the
/// most connections; the others' summed per state as listener `other`.
fn per_listener(table: &Table, n: usize) -> Vec<((String, String, &'static str), i64)> {
    let index = ListenerIndex::new(table);
    let mut per: HashMap<(u32, std::net::SocketAddr), HashMap<TcpState, i64>> = HashMap::new();
    for r in table.rows() {
        if let Some(l) = index.find(r) {
            *per.entry((l.netns, l.local)).or_default().entry(r.state).or_default() += 1;
        }
    }
    let mut all: Vec<_> = per.into_iter().map(|(k, states)| (states.values().sum::<i64>(), k, states)).collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = Vec::new();
    let mut other: HashMap<TcpState, i64> = HashMap::new();
    for (i, (_, (netns, local), states)) in all.into_iter().enumerate() {
        for (state, k) in states {
            if i < n {
                out.push(((endpoint(local), netns.to_string(), state.name()), k));
            } else {
                *other.entry(state).or_default() += k;
            }
        }
    }
    out.extend(other.into_iter().map(|(state, k)| ((OTHER.to_owned(), String::new(), state.name()), k)));
    out
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
