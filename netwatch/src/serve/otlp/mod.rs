//! OTLP export: events (and `lost`, alerts) as OTLP log records, the
//! metrics of `/metrics` as OTLP metrics, to an OpenTelemetry collector
//! over gRPC or HTTP/protobuf.
//!
//! The agent loop only appends JSON lines to a buffer and hands it over
//! once per batch; a thread of its own (with its own runtime, so a slow
//! collector never delays event intake) turns them into records, batches
//! them by size and time, and sends them with retry and backoff. What it
//! holds is bounded by `queue` records: past that, new records are
//! dropped at once and counted (`netwatch_export_errors_total{output=
//! "otlp_logs",reason="queue_full"}`), so the count equals what is missing.

mod encode;
mod metrics;
mod records;
mod send;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{any_value::Value as V, AnyValue, InstrumentationScope, KeyValue},
    metrics::v1::{ResourceMetrics, ScopeMetrics},
    resource::v1::Resource,
};
use prost::Message as _;
use tokio::sync::mpsc;

use super::config::{ExportKind, KindSet, OtlpExport, OtlpProtocol};
use send::{Client, Failure};

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
    Ok(())
}

enum Item {
    /// JSON lines, each one record.
    Lines(Vec<u8>, usize),
    /// A `/metrics` exposition.
    Metrics(String),
}

/// The agent's side: non-blocking, allocation per batch not per event.
pub struct Otlp {
    tx: mpsc::UnboundedSender<Item>,
    kinds: KindSet,
    /// Records handed over and not yet sent or dropped by the thread.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    pending: Vec<u8>,
    pending_n: usize,
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
        let closing = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            closing: Arc::clone(&closing),
            gave_up: false,
            client,
            rx,
            queued: Arc::clone(&queued),
            batch: cfg.batch,
            batch_delay: cfg.batch_delay,
            resource: resource(),
            resource_field: field(&resource().encode_to_vec()),
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
            capacity: cfg.queue,
            pending: Vec::with_capacity(64 << 10),
            pending_n: 0,
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

    /// One JSON line (with its newline), or a drop if the queue is full.
    pub fn line(&mut self, line: &[u8]) {
        if self.queued.load(Relaxed) + self.pending_n >= self.capacity {
            COUNTERS.queue_full.fetch_add(1, Relaxed);
            self.dropped += 1;
            return;
        }
        self.pending.extend_from_slice(line);
        self.pending_n += 1;
    }

    /// Hands the batch's lines to the exporter thread.
    pub fn flush(&mut self) {
        self.say_drops();
        if self.pending_n == 0 {
            return;
        }
        let lines = std::mem::replace(&mut self.pending, Vec::with_capacity(64 << 10));
        let n = std::mem::take(&mut self.pending_n);
        self.queued.fetch_add(n, Relaxed);
        if self.tx.send(Item::Lines(lines, n)).is_err() {
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
        self.flush();
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
    /// holds once, then ends, rather than retrying for a handle that is gone.
    fn drop(&mut self) {
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

/// One export request's worth of log records, encoded.
struct Batch {
    body: Bytes,
    records: usize,
}

/// `bytes` as field 1 of a message.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    encode::bytes_field(1, bytes, &mut out);
    out
}

struct Worker {
    closing: Arc<AtomicBool>,
    /// A send failed while closing: the rest is dropped unsent.
    gave_up: bool,
    client: Client,
    rx: mpsc::UnboundedReceiver<Item>,
    queued: Arc<AtomicUsize>,
    batch: usize,
    batch_delay: Duration,
    resource: Resource,
    /// `ResourceLogs.resource` and `ScopeLogs.scope`, encoded once.
    resource_field: Vec<u8>,
    scope_field: Vec<u8>,
    started_ns: u64,
    /// When each failure message was last logged.
    reports: Mutex<Vec<(String, Instant)>>,
}

impl Worker {
    async fn run(mut self) {
        let mut ready: std::collections::VecDeque<Batch> = std::collections::VecDeque::new();
        // The batch being filled: encoded records, how many, since when.
        let (mut current, mut count, mut oldest) = (Vec::with_capacity(1 << 20), 0, None::<Instant>);
        let (mut clock, mut scratch) = (encode::Clock::new(), Vec::with_capacity(1024));
        let mut metrics: Option<String> = None;
        let mut open = true;
        while open || count > 0 || !ready.is_empty() || metrics.is_some() {
            if open && ready.is_empty() && metrics.is_none() {
                let item = match oldest {
                    Some(t) => tokio::time::timeout_at((t + self.batch_delay).into(), self.rx.recv()).await.ok(),
                    None => Some(self.rx.recv().await),
                };
                match item {
                    Some(Some(Item::Lines(lines, n))) => {
                        let observed = now_ns();
                        let mut taken = 0;
                        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                            if !encode::record(line, observed, &mut clock, &mut scratch, &mut current) {
                                continue;
                            }
                            taken += 1;
                            count += 1;
                            oldest.get_or_insert_with(Instant::now);
                            if count == self.batch {
                                ready.push_back(self.seal(&mut current, &mut count));
                                oldest = None;
                            }
                        }
                        // Unreadable lines (never, from netwatch's writers) leave the queue too.
                        self.queued.fetch_sub(n - taken, Relaxed);
                    }
                    // Only the newest exposition matters: every value in it is cumulative.
                    Some(Some(Item::Metrics(text))) => metrics = Some(text),
                    Some(None) => open = false,
                    None => {}
                }
            }
            if count > 0 && (!open || oldest.is_some_and(|t| t.elapsed() >= self.batch_delay)) {
                ready.push_back(self.seal(&mut current, &mut count));
                oldest = None;
            }
            if let Some(text) = metrics.take() {
                self.send_metrics(&text, open).await;
            }
            while let Some(b) = ready.pop_front() {
                let n = b.records;
                self.send_logs(b, open).await;
                self.queued.fetch_sub(n, Relaxed);
            }
        }
    }

    /// The filled batch as a request, ready to send.
    fn seal(&self, current: &mut Vec<u8>, count: &mut usize) -> Batch {
        let body = encode::request(&self.resource_field, &self.scope_field, current);
        current.clear();
        Batch { body: Bytes::from(body), records: std::mem::take(count) }
    }

    /// Sends one batch, retrying (with backoff) until it is taken or
    /// refused; at shutdown (`retry` false) one attempt only.
    async fn send_logs(&mut self, batch: Batch, retry: bool) {
        let n = batch.records as u64;
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.gave_up {
                COUNTERS.queue_full.fetch_add(n, Relaxed);
                return;
            }
            match self.client.logs(batch.body.clone()).await {
                Ok(()) => {
                    COUNTERS.sent.fetch_add(n, Relaxed);
                    return;
                }
                Err(Failure::Rejected(why)) => {
                    COUNTERS.rejected.fetch_add(n, Relaxed);
                    self.report("rejected", &format!("the collector refused {n} log records ({why}); dropped"));
                    return;
                }
                Err(Failure::Retry(why)) => {
                    COUNTERS.retry.fetch_add(1, Relaxed);
                    if !retry || self.closing.load(Relaxed) {
                        self.gave_up = true;
                        self.report("shutdown", &format!("log records not sent at exit or reload ({why}); dropped"));
                        continue;
                    }
                    self.report("retry", &format!("sending log records failed ({why}); retrying"));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn send_metrics(&mut self, text: &str, retry: bool) {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics: metrics::from_exposition(text, self.started_ns, now_ns()),
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        };
        let mut backoff = FIRST_BACKOFF;
        // A few tries only: a later exposition supersedes this one anyway.
        for attempt in 0..4 {
            match self.client.metrics(req.clone()).await {
                Ok(()) => return,
                Err(Failure::Rejected(why)) => {
                    COUNTERS.metrics_rejected.fetch_add(1, Relaxed);
                    self.report("metrics rejected", &format!("the collector refused the metrics ({why})"));
                    return;
                }
                Err(Failure::Retry(why)) => {
                    COUNTERS.metrics_retry.fetch_add(1, Relaxed);
                    self.report("metrics retry", &format!("sending the metrics failed ({why})"));
                    if !retry || attempt == 3 || self.closing.load(Relaxed) {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Logs a failure, at most once per [`REPORT_INTERVAL`] per kind.
    fn report(&self, kind: &str, message: &str) {
        let Ok(mut reports) = self.reports.lock() else { return };
        let now = Instant::now();
        match reports.iter_mut().find(|(k, _)| k == kind) {
            Some((_, t)) if now.duration_since(*t) < REPORT_INTERVAL => return,
            Some((_, t)) => *t = now,
            None => reports.push((kind.to_owned(), now)),
        }
        eprintln!("netwatch: warning: OTLP export: {message} (counted in netwatch_export_errors_total)");
    }
}
