//! The live model: kernel events applied to a seeded [`Table`].
//!
//! Order matters (KERNEL-NOTES point 10): the programs are attached first,
//! so every change from then on is queued in the ring buffer and the
//! channel; then the kernel's current sockets are enumerated; then the
//! queued events are applied on top. Nothing falls between the two.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;

use crate::{
    event::{clock::monotonic_ns, Decoder, Event},
    probe::{Attached, Options, Probes},
    seed,
    stats::Latency,
    stream::{Batch, Reader, ReaderOptions},
    table::Table,
};

/// How often TIME_WAIT rows are expired and TIME_WAIT and request sockets
/// re-read from sock_diag: the tracepoint reports neither (KERNEL-NOTES
/// points 2 and 3). Both walk the table, so not on every batch.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Events an [`Update`] hands on, the newest: what the full-screen view
/// keeps. Under churn one step can apply hundreds of thousands of events
/// (everything queued while the model was busy); keeping them all made
/// netwatch's memory follow its worst backlog so far, about 200 bytes an
/// event, for consumers that keep the last few thousand or none.
pub const RECENT_EVENTS: usize = 10_000;

/// What one step of the live model brought.
#[derive(Debug, Default)]
pub struct Update {
    /// The newest [`RECENT_EVENTS`] events applied, in kernel order (after
    /// tuple completion).
    pub events: VecDeque<Event>,
    /// Every event applied, including those older than `events` holds.
    pub applied: u64,
    /// Events the kernel lost in this step.
    pub lost: u64,
    /// Whether the table was rebuilt from the kernel.
    pub reseeded: bool,
    /// Problems worth showing (a full-screen view must not have them
    /// printed over it).
    pub warnings: Vec<String>,
}

impl Update {
    fn push(&mut self, e: Event) {
        self.applied += 1;
        if self.events.len() == RECENT_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

pub struct Live {
    pub table: Table,
    pub decoder: Decoder,
    pub seed_stats: seed::SeedStats,
    rx: mpsc::Receiver<Batch>,
    reader: Reader,
    attached: Attached,
    last_maintain: Instant,
}

impl Live {
    pub async fn start(history: usize) -> Result<Self> {
        let (attached, events, counters) = Probes::attach(&Options::default())?.into_parts();
        let (tx, rx) = mpsc::channel(4096);
        let reader = Reader::spawn(events, counters, ReaderOptions::default(), tx)?;
        let mut live = Self {
            table: Table::new(history),
            decoder: Decoder::default(),
            seed_stats: seed::SeedStats::default(),
            rx,
            reader,
            attached,
            last_maintain: Instant::now(),
        };
        live.seed().await?;
        Ok(live)
    }

    /// Why the traffic counters are missing, if they are.
    pub fn traffic_degraded(&self) -> Option<&str> {
        self.attached.traffic_degraded.as_deref()
    }

    /// Why ownership is degraded, if it is.
    pub fn degraded(&self) -> Option<&str> {
        self.attached.degraded.as_deref()
    }

    async fn seed(&mut self) -> Result<()> {
        let seed = tokio::task::spawn_blocking(seed::seed_all)
            .await
            .context("joining the socket enumeration")?
            .context("enumerating existing sockets")?;
        // Listeners older than netwatch: their children inherit their owner.
        self.attached.seed_listeners(&seed.sockets);
        self.seed_stats = seed.stats;
        self.table.seed(seed.sockets, monotonic_ns());
        Ok(())
    }

    /// Waits for the next batch from the kernel (or `timeout`), applies it
    /// and returns what changed; `None` once the reader has stopped.
    pub async fn next(&mut self, timeout: Duration) -> Option<Update> {
        let mut update = Update::default();
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(batch)) => self.apply(batch, &mut update),
            Ok(None) => return None,
            Err(_) => {}
        }
        // Take whatever else is already queued, so one redraw covers it.
        while let Ok(batch) = self.rx.try_recv() {
            self.apply(batch, &mut update);
        }
        if update.lost > 0 {
            // The table is wrong now: rebuild it from the kernel.
            match self.reseed().await {
                Ok(()) => update.reseeded = true,
                Err(e) => update.warnings.push(format!("re-reading sockets after lost events failed: {e:#}")),
            }
        }
        self.maintain(&mut update).await;
        Some(update)
    }

    async fn reseed(&mut self) -> Result<()> {
        let seed = tokio::task::spawn_blocking(seed::seed_all).await??;
        self.attached.seed_listeners(&seed.sockets);
        self.seed_stats = seed.stats;
        self.table.reseed(seed.sockets, monotonic_ns());
        Ok(())
    }

    fn apply(&mut self, batch: Batch, update: &mut Update) {
        match batch {
            Batch::Events(records) => {
                self.decoder.start_batch(&records);
                for r in &records {
                    let Some(mut e) = self.decoder.decode(r) else { continue };
                    self.table.complete_and_apply(&mut e);
                    update.push(e);
                }
            }
            Batch::Lost(n) => {
                self.decoder.counts.lost += n;
                self.table.totals.lost_events += n;
                update.lost += n;
            }
            Batch::OwnersFull(n) => self.decoder.counts.owners_full += n,
        }
    }

    /// Re-reads what events cannot report, now (for a final, exact table).
    pub async fn refresh(&mut self) -> Vec<String> {
        let mut update = Update::default();
        self.last_maintain = Instant::now() - MAINTAIN_INTERVAL;
        self.maintain(&mut update).await;
        update.warnings
    }

    /// Housekeeping that events cannot drive: TIME_WAIT expiry and the
    /// minisocket re-read.
    async fn maintain(&mut self, update: &mut Update) {
        if self.last_maintain.elapsed() < MAINTAIN_INTERVAL {
            return;
        }
        self.last_maintain = Instant::now();
        let now = monotonic_ns();
        self.table.expire(now);
        give_back_memory();
        self.read_traffic(now);
        let m = match tokio::task::spawn_blocking(seed::minisocks).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return update.warnings.push(format!("re-reading TIME_WAIT/SYN_RECV/UDP sockets: {e:#}")),
            Err(e) => return update.warnings.push(format!("re-reading TIME_WAIT/SYN_RECV/UDP sockets: {e}")),
        };
        self.table.reconcile_minisocks(m.netns, m.tcp, now);
        let unowned = self.table.reconcile_udp(m.netns, m.udp, now);
        if unowned.is_empty() {
            return;
        }
        // New UDP sockets: one /proc scan finds their owners, and only when
        // there are new ones, so a quiet machine pays nothing.
        match tokio::task::spawn_blocking(|| seed::scan_owners(std::path::Path::new("/proc"), 2)).await {
            Ok(Ok(mut scan)) => self.table.set_owners(&mut scan.owners),
            Ok(Err(e)) => update.warnings.push(format!("finding owners of new UDP sockets: {e:#}")),
            Err(e) => update.warnings.push(format!("finding owners of new UDP sockets: {e}")),
        }
    }

    /// Copies the kernel's per-socket counters into the rows (once a second:
    /// rates are per second, and one pass over the map costs two syscalls a
    /// socket).
    fn read_traffic(&mut self, now: u64) {
        if let Some(map) = &self.attached.traffic {
            self.table.update_traffic(&map.read_all(), now);
        }
    }

    /// Stops the reader and detaches everything.
    pub async fn finish(mut self) -> Result<Latency> {
        let reader = self.reader;
        let finishing = tokio::task::spawn_blocking(move || reader.finish());
        while self.rx.recv().await.is_some() {}
        let latency = finishing.await.context("joining the ring buffer reader")??;
        drop(self.attached);
        Ok(latency)
    }
}

/// Hands the memory freed since the last call back to the kernel. glibc
/// keeps freed memory for reuse, and once a large block (a table resize, a
/// burst's event batches) has been freed it raises its mmap and trim
/// thresholds (up to 32 and 64 MiB), after which such blocks come from the
/// heap and stay there: under churn the main arena held 63-124 MiB free
/// beside 23-49 MiB in use, all of it in RSS, more after every burst.
/// Once a second it costs about a millisecond.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reads and releases glibc's own free lists; it
    // is thread-safe (takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use netwatch_common::{tcp, EventKind};

    use super::*;
    use crate::tui::fixtures::event;

    /// A step that applies a flood keeps only the newest events, whatever
    /// the backlog was: memory must not follow the worst one.
    #[test]
    fn an_update_keeps_the_newest_events_only() {
        let mut u = Update::default();
        let flood = 10 * RECENT_EVENTS as u64;
        for ms in 0..flood {
            u.push(event(EventKind::State, ms, tcp::ESTABLISHED, tcp::FIN_WAIT1));
        }
        assert_eq!((u.applied, u.events.len()), (flood, RECENT_EVENTS));
        assert_eq!(u.events.front().map(|e| e.ts_ns), Some((flood - RECENT_EVENTS as u64) * 1_000_000));
        assert_eq!(u.events.back().map(|e| e.ts_ns), Some((flood - 1) * 1_000_000));
        assert!(u.events.capacity() < 2 * RECENT_EVENTS, "capacity {}", u.events.capacity());
    }
}
