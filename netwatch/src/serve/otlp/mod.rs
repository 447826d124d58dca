//! OTLP export: events (and `lost`, alerts) as OTLP log records, the
//! metrics of `/metrics` as OTLP metrics, to an OpenTelemetry collector
//! over gRPC or HTTP/protobuf.
//!
//! The agent loop encodes each event's log record straight into a buffer
//! (encode.rs: no JSON is written for it), one buffer per owner (process
//! and workload): the owner's attributes are said once, on the `Resource`
//! its records are grouped under, not in every record. It hands the
//! buffers themselves over once they hold [`HAND_OVER_BYTES`] or their
//! first record is [`HAND_OVER_DELAY`] old; a thread of its own (with its
//! own runtime, so a slow collector never delays event intake) batches the
//! records by count and time, and sends them with retry and backoff. A
//! request's body is the agent's buffers as they are, each owner's after a
//! small head: no record is copied in this process (the kernel's copy into
//! the socket is the only one), and each buffer comes back to the agent
//! loop, warm, once sent. What it
//! holds is bounded by `queue` records: past that, new records are
//! dropped at once and counted (`netwatch_export_errors_total{output=
//! "otlp_logs",reason="queue_full"}`), so the count equals what is missing.

mod encode;
mod metrics;
mod records;
mod send;
mod worker;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use opentelemetry_proto::tonic::{
    common::v1::{any_value::Value as V, AnyValue, InstrumentationScope, KeyValue},
    resource::v1::Resource,
};
use prost::Message as _;
use tokio::sync::mpsc;

use super::config::{ExportKind, KindSet, OtlpExport, OtlpProtocol};
use crate::{event::Event, socket::Comm, workload::Workload};
use send::Client;
use worker::{field, Worker};

/// Failures since the agent started (kept across reloads): the
/// `reason`s of `netwatch_export_errors_total`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Log records dropped because the queue was full.
    pub queue_full: AtomicU64,
    /// Log records the collector refused for good (bad credentials, ...).
    pub rejected: AtomicU64,
    /// Log export requests that failed and were retried.
    pub retry: AtomicU64,
    /// Metrics exports refused for good.
    pub metrics_rejected: AtomicU64,
    /// Metrics exports that failed and were retried.
    pub metrics_retry: AtomicU64,
    /// Log records the collector took.
    pub sent: AtomicU64,
}

pub static COUNTERS: Counters = Counters {
    queue_full: AtomicU64::new(0),
    rejected: AtomicU64::new(0),
    retry: AtomicU64::new(0),
    metrics_rejected: AtomicU64::new(0),
    metrics_retry: AtomicU64::new(0),
    sent: AtomicU64::new(0),
};

/// Longest wait between two attempts while the collector is down.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Failure messages are logged at most this often per kind.
const REPORT_INTERVAL: Duration = Duration::from_secs(60);
/// The agent loop hands its buffers of records to the exporter thread once
/// they hold this much (about 500 records) or their first record is
/// [`HAND_OVER_DELAY`] old, so the thread wakes a few hundred times a
/// second at most, not once per batch of events read.
pub(super) const HAND_OVER_BYTES: usize = 256 << 10;
/// Room kept for the record that fills a hand-over: the buffers go once
/// they hold [`HAND_OVER_BYTES`] less this, so one owner's buffer (grown by
/// doubling from a power of two) ends within `HAND_OVER_BYTES` of capacity
/// rather than doubling once more for its last record. A buffer of twice
/// the size would take two places in the spares' budget, and every one
/// the budget lets go is a fresh allocation the agent loop grows again
/// (copies and page faults, a tenth of the export's cost in `perf`).
const RECORD_ROOM: usize = 16 << 10;
const HAND_OVER_DELAY: Duration = Duration::from_millis(20);

/// Owners whose records one hand-over holds at most (a pre-forking
/// server's workers are an owner each); one more hands the buffers over
/// first.
const MAX_GROUPS: usize = 512;

/// A new buffer for one owner's records, when no spare is left: small,
/// since a hand-over's bytes are shared among its owners (a busy owner's
/// buffer grows, then comes back as a spare).
fn new_buffer() -> Vec<u8> {
    Vec::with_capacity(4 << 10)
}

/// Whose records a group holds: the fields an owner puts on its resource
/// ([`crate::output::json::describes_owner`]), the workload by its
/// address (its group holds it, so the address cannot be reused
/// meanwhile). `None`: records of no owner (`lost` lines, alerts).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Owner {
    pid: u32,
    uid: u32,
    comm: Comm,
    cgroup: u64,
    workload: usize,
}

impl Owner {
    fn of(e: &Event) -> Self {
        let workload = e.workload.as_ref().map_or(0, |w| Arc::as_ptr(&w.0) as usize);
        Self { pid: e.pid, uid: e.uid, comm: e.comm, cgroup: e.cgroup, workload }
    }
}

/// One owner's records of a hand-over.
struct Group {
    /// The encoded `ResourceLogs.resource` field they go under.
    resource: bytes::Bytes,
    /// `ScopeLogs.log_records` fields, and how many.
    records: Vec<u8>,
    n: usize,
}

/// Buffers of records the exporter thread is done with, for the agent loop
/// to encode into again.
type Spares = Arc<Mutex<Vec<Vec<u8>>>>;

/// Checks `[export.otlp]` (files included) without starting anything.
pub fn validate(cfg: &OtlpExport) -> Result<()> {
    let Some(endpoint) = &cfg.endpoint else { return Ok(()) };
    let uri: hyper::Uri =
        endpoint.parse().with_context(|| format!("export.otlp.endpoint {endpoint:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") if cfg.ca_file.is_some() => {}
        Some("https") => bail!("export.otlp.endpoint is https: export.otlp.ca_file must name the CA to trust"),
        _ => bail!("export.otlp.endpoint {endpoint:?} must start with http:// or https://"),
    }
    if uri.host().is_none() {
        bail!("export.otlp.endpoint {endpoint:?} has no host");
    }
    if cfg.queue == 0 || cfg.batch == 0 {
        bail!("export.otlp.queue and export.otlp.batch must be at least 1");
    }
    if let Some(p) = &cfg.headers_file {
        send::read_headers(p)?;
    }
    if send::read_identity(cfg)?.is_some() && uri.scheme_str() != Some("https") {
        bail!("export.otlp.client_cert_file is set: export.otlp.endpoint must be https");
    }
    Ok(())
}

enum Item {
    /// Encoded log records by owner.
    Records(Vec<Group>),
    /// A `/metrics` exposition.
    Metrics(String),
}

/// The agent's side: non-blocking, allocation per batch not per event.
pub struct Otlp {
    tx: mpsc::UnboundedSender<Item>,
    kinds: KindSet,
    /// Records handed over and not yet sent or dropped by the thread.
    queued: Arc<AtomicUsize>,
    spares: Spares,
    capacity: usize,
    /// Encoded records not yet handed over, by owner (with the owner's
    /// workload, held), each owner's index among them, and the last
    /// record's owner and index; how many records, their bytes, and their
    /// observed time.
    pending: Vec<(Option<Workload>, Group)>,
    index: std::collections::HashMap<Option<Owner>, usize>,
    last: Option<(Option<Owner>, usize)>,
    pending_n: usize,
    pending_bytes: usize,
    observed_ns: u64,
    encoder: encode::Encoder,
    /// Who sends the records (host, netwatch): the encoded attributes
    /// every resource starts with.
    base: Vec<u8>,
    endpoint: String,
    protocol: OtlpProtocol,
    metrics_interval: Duration,
    next_metrics: Instant,
    /// Set at exit or reload: the thread stops retrying.
    closing: Arc<AtomicBool>,
    /// Records this handle dropped for a full queue, and when that was last said.
    dropped: u64,
    dropped_said: Option<(Instant, u64)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Otlp {
    /// `None` when no endpoint is configured.
    pub fn new(cfg: &OtlpExport) -> Result<Option<Self>> {
        let Some(endpoint) = cfg.endpoint.clone() else { return Ok(None) };
        validate(cfg)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the OTLP exporter's runtime")?;
        let client = {
            let _guard = rt.enter();
            Client::new(cfg, &endpoint)?
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let spares = Spares::default();
        let closing = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            closing: Arc::clone(&closing),
            gave_up: false,
            client,
            rx,
            queued: Arc::clone(&queued),
            spares: Arc::clone(&spares),
            batch: cfg.batch,
            batch_delay: cfg.batch_delay,
            resource: resource(),
            scope_field: field(&scope().encode_to_vec()),
            started_ns: now_ns(),
            reports: Mutex::new(Vec::new()),
        };
        let thread = std::thread::Builder::new()
            .name("nw-otlp".to_owned())
            .spawn(move || rt.block_on(worker.run()))
            .context("starting the OTLP exporter thread")?;
        Ok(Some(Self {
            tx,
            kinds: cfg.kinds,
            queued,
            spares,
            capacity: cfg.queue,
            pending: Vec::new(),
            index: std::collections::HashMap::new(),
            last: None,
            pending_n: 0,
            pending_bytes: 0,
            observed_ns: 0,
            encoder: encode::Encoder::new(),
            base: resource().encode_to_vec(),
            endpoint,
            protocol: cfg.protocol,
            metrics_interval: cfg.metrics_interval,
            next_metrics: Instant::now() + cfg.metrics_interval,
            closing,
            dropped: 0,
            dropped_said: None,
            thread: Some(thread),
        }))
    }

    pub fn describe(&self) -> String {
        format!("otlp {} ({:?})", self.endpoint, self.protocol).to_lowercase()
    }

    pub const fn wants(&self, kind: ExportKind) -> bool {
        self.kinds.contains(kind)
    }

    /// Whether the queue has room for one more record; if not, it is
    /// dropped and counted.
    fn room(&mut self) -> bool {
        if self.queued.load(Relaxed) + self.pending_n >= self.capacity {
            COUNTERS.queue_full.fetch_add(1, Relaxed);
            self.dropped += 1;
            return false;
        }
        if self.pending_n == 0 {
            // When the agent took the batch's first record: one clock read a batch.
            self.observed_ns = now_ns();
        }
        true
    }

    /// One event's record (`packets` as the JSON writer has it), or a drop
    /// if the queue is full.
    pub fn event(&mut self, e: &Event, packets: bool, clock: &crate::event::clock::WallClock) {
        if self.room() {
            self.add(Some((e, clock)), |enc, observed_ns, out| {
                enc.event(e, packets, clock, observed_ns, out);
                true
            });
            if self.pending_bytes >= HAND_OVER_BYTES - RECORD_ROOM {
                self.hand_over();
            }
        }
    }

    /// One JSON line (`lost`, an alert), or a drop if the queue is full.
    pub fn line(&mut self, line: &[u8]) {
        if self.room() {
            self.add(None, |enc, observed_ns, out| enc.record(line, observed_ns, out));
        }
    }

    /// Appends one record to the buffer of `e`'s owner with `write`, which
    /// says whether it wrote one, and counts it.
    fn add(
        &mut self,
        e: Option<(&Event, &crate::event::clock::WallClock)>,
        write: impl FnOnce(&mut encode::Encoder, u64, &mut Vec<u8>) -> bool,
    ) {
        let i = self.group(e);
        let g = &mut self.pending[i].1;
        let before = g.records.len();
        if write(&mut self.encoder, self.observed_ns, &mut g.records) {
            g.n += 1;
            self.pending_n += 1;
            self.pending_bytes += g.records.len() - before;
        }
    }

    /// The index of the group of `e`'s owner (`None`: no owner) among
    /// those pending, made if there is none yet.
    fn group(&mut self, e: Option<(&Event, &crate::event::clock::WallClock)>) -> usize {
        let owner = e.map(|(e, _)| Owner::of(e));
        // Consecutive events mostly share their owner: no lookup then.
        if let Some((o, i)) = self.last {
            if o == owner {
                return i;
            }
        }
        let i = match self.index.get(&owner) {
            Some(&i) => i,
            None => {
                if self.pending.len() >= MAX_GROUPS {
                    self.hand_over();
                    self.observed_ns = now_ns();
                }
                let resource = self.encoder.resource(e, &self.base).into();
                let records = self.spares.lock().ok().and_then(|mut s| s.pop()).unwrap_or_else(new_buffer);
                let workload = e.and_then(|(e, _)| e.workload.clone());
                self.pending.push((workload, Group { resource, records, n: 0 }));
                self.index.insert(owner, self.pending.len() - 1);
                self.pending.len() - 1
            }
        };
        self.last = Some((owner, i));
        i
    }

    /// After each batch of events: hands the records over if their buffer
    /// has waited [`HAND_OVER_DELAY`] (a full one went at once).
    pub fn flush(&mut self) {
        self.say_drops();
        if self.pending_n > 0 && now_ns().saturating_sub(self.observed_ns) >= HAND_OVER_DELAY.as_nanos() as u64 {
            self.hand_over();
        }
    }

    /// Hands the buffers of records to the exporter thread (the next
    /// records take spare ones, or new ones).
    fn hand_over(&mut self) {
        if self.pending_n == 0 {
            return;
        }
        let groups = self.pending.drain(..).map(|(_, g)| g).collect();
        self.index.clear();
        self.last = None;
        let n = std::mem::take(&mut self.pending_n);
        self.pending_bytes = 0;
        self.queued.fetch_add(n, Relaxed);
        if self.tx.send(Item::Records(groups)).is_err() {
            // The thread is gone (it never exits while we hold `tx`): drop.
            self.queued.fetch_sub(n, Relaxed);
            COUNTERS.queue_full.fetch_add(n as u64, Relaxed);
        }
    }

    /// Says that records were dropped at intake: at once the first time,
    /// then at most once per [`REPORT_INTERVAL`] with the count since.
    fn say_drops(&mut self) {
        let said = self.dropped_said.map_or(0, |(_, n)| n);
        if self.dropped == said || self.dropped_said.is_some_and(|(t, _)| t.elapsed() < REPORT_INTERVAL) {
            return;
        }
        eprintln!(
            "netwatch: warning: OTLP export: queue full ({} records): {} log records dropped (counted in \
             netwatch_export_errors_total)",
            self.capacity,
            self.dropped - said
        );
        self.dropped_said = Some((Instant::now(), self.dropped));
    }

    /// Whether the metrics are due; if so the next time is set.
    pub fn metrics_due(&mut self) -> bool {
        if self.metrics_interval.is_zero() || Instant::now() < self.next_metrics {
            return false;
        }
        self.next_metrics = Instant::now() + self.metrics_interval;
        true
    }

    pub fn metrics(&mut self, exposition: String) {
        let _ = self.tx.send(Item::Metrics(exposition));
    }

    /// Sends what is left and waits for the thread: one attempt, and once
    /// one fails (the collector is down) the rest is dropped and counted,
    /// so that stopping never waits on a dead collector for long.
    pub fn finish(mut self) {
        self.say_drops();
        self.hand_over();
        self.closing.store(true, Relaxed);
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = t.join();
        }
        let c = &COUNTERS;
        eprintln!(
            "netwatch: OTLP export: {} log records sent, {} dropped (queue full or unsent at exit), {} refused",
            c.sent.load(Relaxed),
            c.queue_full.load(Relaxed),
            c.rejected.load(Relaxed)
        );
    }
}

impl Drop for Otlp {
    /// Without [`Otlp::finish`] (an error path): the thread sends what it
    /// holds once, then ends, rather than retrying for a handle that is gone;
    /// records not yet handed over are counted as dropped.
    fn drop(&mut self) {
        COUNTERS.queue_full.fetch_add(std::mem::take(&mut self.pending_n) as u64, Relaxed);
        self.closing.store(true, Relaxed);
    }
}

/// Host name, boot id, netwatch's name and version: who sent the records.
fn resource() -> Resource {
    let s = |k: &str, v: String| KeyValue {
        key_strindex: 0,
        key: k.to_owned(),
        value: Some(AnyValue { value: Some(V::StringValue(v)) }),
    };
    let read = |p: &str| std::fs::read_to_string(p).map(|t| t.trim().to_owned()).unwrap_or_default();
    let mut attributes = vec![
        s("service.name", "netwatch".to_owned()),
        s("service.version", env!("CARGO_PKG_VERSION").to_owned()),
        s("host.name", read("/proc/sys/kernel/hostname")),
    ];
    let boot = read("/proc/sys/kernel/random/boot_id");
    if !boot.is_empty() {
        attributes.push(s("host.boot.id", boot));
    }
    Resource { attributes, ..Resource::default() }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "netwatch".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}

fn now_ns() -> u64 {
    jiff::Timestamp::now().as_nanosecond() as u64
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead as _, BufReader, Read as _, Write as _},
        net::TcpListener,
    };

    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

    use super::*;
    use crate::serve::config::{Compression, OtlpExport, OtlpProtocol};

    /// An OTLP/HTTP endpoint that answers 200 to every request, on threads
    /// named `sink`; with `keep`, it keeps each request's body.
    pub(super) fn sink(keep: bool) -> (std::net::SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        let named = || std::thread::Builder::new().name("sink".to_owned());
        let _ = named().spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let kept = Arc::clone(&kept);
                let _ = named().spawn(move || {
                    let mut w = stream.try_clone().unwrap();
                    let mut r = BufReader::new(stream);
                    loop {
                        let mut len = 0;
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end().to_ascii_lowercase();
                            if line.is_empty() {
                                break;
                            }
                            if let Some(v) = line.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; len];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        if keep {
                            kept.lock().unwrap().push(body);
                        }
                        if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, bodies)
    }

    /// An exporter to a [`sink`] that keeps the bodies: OTLP/HTTP without
    /// compression or metrics; only full batches of `batch` go before `finish`.
    fn exporter(batch: usize) -> (Otlp, Arc<Mutex<Vec<Vec<u8>>>>) {
        let (addr, bodies) = sink(true);
        let cfg = OtlpExport {
            endpoint: Some(format!("http://{addr}")),
            protocol: OtlpProtocol::Http,
            compression: Compression::None,
            metrics_interval: Duration::ZERO,
            batch_delay: Duration::from_secs(600),
            batch,
            ..OtlpExport::default()
        };
        (Otlp::new(&cfg).unwrap().unwrap(), bodies)
    }

    /// Events of three owners interleaved, and a `lost` line, over two
    /// hand-overs into one request: one `ResourceLogs` per owner, in the
    /// order the owners came, each owner's records in their order, the
    /// owner's attributes on its resource only; the `lost` line's resource
    /// is netwatch's alone. The same pid in another workload is another owner.
    #[test]
    fn records_grouped_by_owner_under_its_resource() {
        let (mut otlp, bodies) = exporter(OtlpExport::default().batch);
        let clock = crate::event::clock::WallClock::new();
        let base = crate::output::json::tests::event();
        let mut in_pod = base.clone();
        in_pod.workload = Some(Workload::fixture("/kubepods/pod1", None, None, Some("pod1")));
        let owners = [(7, &base), (8, &base), (7, &in_pod)];
        for (i, owner) in [0, 1, 0, 2, 1, 0, 2].into_iter().enumerate() {
            let (pid, e) = owners[owner];
            let mut e = e.clone();
            (e.pid, e.cookie) = (pid, i as u64);
            otlp.event(&e, true, &clock);
            if i == 3 {
                otlp.line(br#"{"ts":"2026-12-06T15:00:00.000000Z","event":"lost","count":1}"#);
                otlp.hand_over();
            }
        }
        otlp.finish();
        let bodies = bodies.lock().unwrap();
        assert_eq!(bodies.len(), 1);
        let req = ExportLogsServiceRequest::decode(&bodies[0][..]).unwrap();
        let value = |kvs: &[KeyValue], key: &str| {
            kvs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()).and_then(|v| v.value)
        };
        // Per owner: its pid and pod on the resource, its records' cookies.
        type Owner = (Option<V>, Option<V>, Vec<Option<V>>);
        let got: Vec<Owner> = req
            .resource_logs
            .iter()
            .map(|rl| {
                let r = &rl.resource.as_ref().unwrap().attributes;
                let records = &rl.scope_logs[0].log_records;
                for rec in records {
                    assert!(value(&rec.attributes, "process.pid").is_none(), "{rec:?}");
                }
                let cookies = records.iter().map(|rec| value(&rec.attributes, "netwatch.cookie")).collect();
                (value(r, "process.pid"), value(r, "k8s.pod.uid"), cookies)
            })
            .collect();
        let int = |i| Some(V::IntValue(i));
        let pod = Some(V::StringValue("pod1".to_owned()));
        assert_eq!(
            got,
            vec![
                (int(7), None, vec![int(0), int(2), int(5)]),
                (int(8), None, vec![int(1), int(4)]),
                (int(7), pod, vec![int(3), int(6)]),
                (None, None, vec![None]),
            ]
        );
        let host = resource().attributes;
        for rl in &req.resource_logs {
            assert_eq!(rl.resource.as_ref().unwrap().attributes[..host.len()], host[..]);
        }
        assert_eq!(req.resource_logs[3].resource.as_ref().unwrap().attributes, host);
        assert_eq!(req.resource_logs[3].scope_logs[0].log_records[0].event_name, "netwatch.lost");
    }

    /// More owners than a hand-over holds ([`MAX_GROUPS`]): the buffers go
    /// over as the next owner comes, and every record arrives once, in
    /// order, under its owner's resource.
    #[test]
    fn more_owners_than_a_hand_over_holds() {
        let (mut otlp, bodies) = exporter(10_000);
        let clock = crate::event::clock::WallClock::new();
        let mut e = crate::output::json::tests::event();
        let n = 2 * MAX_GROUPS as u32 + 100;
        for pid in 0..n {
            e.pid = pid;
            otlp.event(&e, true, &clock);
            assert!(otlp.pending.len() <= MAX_GROUPS);
        }
        otlp.finish();
        let bodies = bodies.lock().unwrap();
        let mut pids = Vec::new();
        for body in bodies.iter() {
            for owner in ExportLogsServiceRequest::decode(&body[..]).unwrap().resource_logs {
                assert_eq!(owner.scope_logs[0].log_records.len(), 1);
                let r = owner.resource.unwrap().attributes;
                pids.push(r.into_iter().find(|kv| kv.key == "process.pid").unwrap().value.unwrap().value.unwrap());
            }
        }
        assert_eq!(pids, (0..n).map(|p| V::IntValue(p.into())).collect::<Vec<_>>());
    }

    /// Buffers of 13 records handed over into batches of 7: each request
    /// holds exactly 7 (the last the rest), every record arrives once and
    /// in order, and the buffers come back to the agent loop once sent.
    #[test]
    fn buffers_cut_into_batches_at_record_ends() {
        let (mut otlp, bodies) = exporter(7);
        let clock = crate::event::clock::WallClock::new();
        let mut e = crate::output::json::tests::event();
        for pid in 0..100 {
            e.pid = pid;
            otlp.event(&e, true, &clock);
            if pid % 13 == 12 {
                otlp.hand_over();
            }
        }
        // 91 records handed over: 13 full batches, sent at once; the last 9 wait.
        let deadline = Instant::now() + Duration::from_secs(20);
        while bodies.lock().unwrap().len() < 13 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(bodies.lock().unwrap().len(), 13);
        // Every buffer handed over is sent and held by nothing else: all
        // are spares again (at least the first, which found none).
        assert!(!otlp.spares.lock().unwrap().is_empty());
        otlp.finish();
        let bodies = bodies.lock().unwrap();
        let mut sizes = Vec::new();
        let mut pids = Vec::new();
        for body in bodies.iter() {
            let req = ExportLogsServiceRequest::decode(&body[..]).unwrap();
            let mut n = 0;
            // One owner (pid) per record: each under a resource of its own.
            for owner in &req.resource_logs {
                let records = &owner.scope_logs[0].log_records;
                assert_eq!(records.len(), 1);
                n += records.len();
                let pid = owner.resource.as_ref().unwrap().attributes.iter().find(|kv| kv.key == "process.pid");
                pids.push(pid.unwrap().value.clone().unwrap().value.unwrap());
            }
            sizes.push(n);
        }
        let mut want = vec![7; 14];
        want.push(2);
        assert_eq!(sizes, want);
        let want: Vec<_> = (0..100).map(V::IntValue).collect();
        assert_eq!(pids, want);
    }
}
