//! The exporter thread: encoded log records in, batched OTLP requests out, with
//! retry and backoff while the collector is down (see the module above).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    metrics::v1::{ResourceMetrics, ScopeMetrics},
    resource::v1::Resource,
};
use tokio::sync::mpsc;

use super::{
    encode, metrics, now_ns, scope,
    send::{Client, Failure, Parts},
    Item, Spares, COUNTERS, FIRST_BACKOFF, MAX_BACKOFF, REPORT_INTERVAL,
};

/// One export request's worth of log records, encoded: its head, then the
/// agent's buffers (or parts of them) as they came.
struct Batch {
    body: Parts,
    records: usize,
}

/// What the spare buffers kept for the agent loop may hold in all (a busy
/// owner's full buffers, and small ones for the others); more are freed.
/// A request's worth at the default batch (2,048 records of about 500
/// bytes) and then some: the buffers of a sent request come back together,
/// and the agent loop needs as many while the next one fills.
const SPARE_BYTES: usize = 8 * super::HAND_OVER_BYTES;

/// A buffer of encoded records that goes back to the agent loop's spares
/// once every part of it is sent or dropped: the agent then encodes into
/// memory already mapped and warm, rather than a fresh allocation's
/// (whose page faults cost more than the encoding).
struct Spare {
    buf: Vec<u8>,
    spares: Spares,
}

impl AsRef<[u8]> for Spare {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if let Ok(mut spares) = self.spares.lock() {
            // One that grew past a hand-over's size (a record of megabytes),
            // or one past the budget, is let go.
            let held: usize = spares.iter().map(Vec::capacity).sum();
            if held + buf.capacity() <= SPARE_BYTES {
                spares.push(buf);
            }
        }
    }
}

/// `bytes` as field 1 of a message.
pub(super) fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    encode::bytes_field(1, bytes, &mut out);
    out
}

/// Part of one owner's records, and the encoded resource they go under.
type Part = (Bytes, Bytes);

pub(super) struct Worker {
    pub(super) closing: Arc<AtomicBool>,
    /// A send failed while closing: the rest is dropped unsent.
    pub(super) gave_up: bool,
    pub(super) client: Client,
    pub(super) rx: mpsc::UnboundedReceiver<Item>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) spares: Spares,
    pub(super) batch: usize,
    pub(super) batch_delay: Duration,
    /// Who sends the metrics (host, netwatch).
    pub(super) resource: Resource,
    /// `ScopeLogs.scope`, encoded once.
    pub(super) scope_field: Vec<u8>,
    pub(super) started_ns: u64,
    /// When each failure message was last logged.
    pub(super) reports: Mutex<Vec<(String, Instant)>>,
}

impl Worker {
    pub(super) async fn run(mut self) {
        let mut ready: VecDeque<Batch> = VecDeque::new();
        // The batch being filled: encoded records, how many, since when.
        let (mut current, mut count, mut oldest) = (Vec::<Part>::new(), 0, None::<Instant>);
        let mut metrics: Option<String> = None;
        let mut open = true;
        while open || count > 0 || !ready.is_empty() || metrics.is_some() {
            if open && ready.is_empty() && metrics.is_none() {
                let item = match oldest {
                    Some(t) => tokio::time::timeout_at((t + self.batch_delay).into(), self.rx.recv()).await.ok(),
                    None => Some(self.rx.recv().await),
                };
                match item {
                    Some(Some(Item::Records(groups))) => {
                        for g in groups {
                            let spare = Spare { buf: g.records, spares: Arc::clone(&self.spares) };
                            let mut records = Bytes::from_owner(spare);
                            let mut left = g.n;
                            while left > 0 && !records.is_empty() {
                                oldest.get_or_insert_with(Instant::now);
                                let take = left.min(self.batch - count);
                                // The batch fills part-way through the buffer: cut it at a record's end.
                                let part = if take == left {
                                    std::mem::take(&mut records)
                                } else {
                                    records.split_to(encode::split(&records).take(take).map(<[u8]>::len).sum())
                                };
                                current.push((g.resource.clone(), part));
                                (count, left) = (count + take, left - take);
                                if count == self.batch {
                                    ready.push_back(self.seal(&mut current, &mut count));
                                    oldest = None;
                                }
                            }
                            // Records cut short (never, from the encoder) leave the queue too.
                            self.queued.fetch_sub(left, Relaxed);
                        }
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

    /// The filled batch as a request, ready to send: one `ResourceLogs`
    /// per owner (its head, then its parts), owners in the order they came.
    fn seal(&self, current: &mut Vec<Part>, count: &mut usize) -> Batch {
        let mut owners: Vec<(Bytes, Vec<Bytes>)> = Vec::new();
        let mut index: std::collections::HashMap<Bytes, usize> = std::collections::HashMap::new();
        for (resource, part) in current.drain(..) {
            let i = *index.entry(resource.clone()).or_insert_with(|| {
                owners.push((resource, Vec::new()));
                owners.len() - 1
            });
            owners[i].1.push(part);
        }
        let mut parts = Vec::with_capacity(owners.len() + owners.iter().map(|o| o.1.len()).sum::<usize>());
        for (resource, records) in owners {
            let len = records.iter().map(Bytes::len).sum();
            parts.push(Bytes::from(encode::head(&resource, &self.scope_field, len)));
            parts.extend(records);
        }
        Batch { body: Parts(parts), records: std::mem::take(count) }
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
