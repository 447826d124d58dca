//! The live model: kernel events applied to a seeded [`Table`].
//!
//! Order matters (docs/design.md#seeding-races): the programs are attached first,
//! so every change from then on is queued in the ring buffer and the
//! channel; then the kernel's current sockets are enumerated; then the
//! queued events are applied on top. Nothing falls between the two.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    sync::mpsc,
};

use crate::{
    event::{clock::monotonic_ns, Decoder, Event},
    holders::Holders,
    probe::{Attached, Options, Probes},
    seed,
    stats::Latency,
    stream::{Batch, Loss, Reader, ReaderOptions},
    table::Table,
};

/// How often TIME_WAIT rows are expired and TIME_WAIT and request sockets
/// re-read from sock_diag: the tracepoint reports neither (docs/design.md#time-wait,
/// #syn-recv). Both walk the table, so not on every batch.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Events one step applies, about (whole batches are taken, so it can
/// end up to one batch over): the rest stays queued for the next step.
/// Under churn everything queued while the model was busy (a sock_diag
/// re-read, a redraw) is hundreds of thousands of events; taking it all in
/// one step held all of them decoded at once (55 MiB in heaptrack), so
/// netwatch's memory followed the worst backlog it had met so far.
const STEP_EVENTS: usize = 16_384;

/// Events applied between two chances for the task's other work (the
/// live view's keys): about 5 ms of work on a loaded machine.
const SLICE_EVENTS: usize = 2048;

/// What one step of the live model brought.
#[derive(Debug, Default)]
pub struct Update {
    /// Events applied, in kernel order (after tuple completion).
    pub events: Vec<Event>,
    /// Events the kernel lost in this step.
    pub lost: Loss,
    /// Whether the table was rebuilt from the kernel.
    pub reseeded: bool,
    /// Problems worth showing (a full-screen view must not have them
    /// printed over it).
    pub warnings: Vec<String>,
}

/// The kernel side, running: the programs attached and the reader thread
/// draining their ring into `rx`. Every command that follows events starts
/// and stops it the same way, here.
pub struct Tracing {
    pub attached: Attached,
    pub rx: mpsc::Receiver<Batch>,
    reader: Reader,
}

impl Tracing {
    /// `queue`: batches the channel holds while the consumer is busy.
    pub fn start(opts: &Options, queue: usize) -> Result<Self> {
        let (attached, ring) = Probes::attach(opts)?.into_parts();
        let (tx, rx) = mpsc::channel(queue);
        let reader = Reader::spawn(ring, ReaderOptions::default(), tx)?;
        Ok(Self { attached, rx, reader })
    }

    /// What works less well than it should, and why, for the user.
    pub fn warnings(&self) -> Vec<String> {
        let a = &self.attached;
        [
            (&a.traffic_degraded, "no traffic counters ("),
            (&a.degraded, "accepted connections keep their listener's owner (accept tracing unavailable: "),
            (&a.holders_degraded, "sockets keep the process that opened them after it forks, execs or exits ("),
            (&a.dns_degraded, "remote ends are not named (DNS capture unavailable: "),
        ]
        .into_iter()
        .filter_map(|(why, says)| why.as_ref().map(|why| format!("{says}{why})")))
        .collect()
    }

    /// Stops the reader, hands `rest` what was still queued (so that its
    /// final drain is never blocked on a full channel) and detaches every
    /// program.
    pub async fn finish(self, mut rest: impl FnMut(Batch)) -> Result<Latency> {
        let Self { attached, mut rx, reader } = self;
        let finishing = tokio::task::spawn_blocking(move || reader.finish());
        while let Some(b) = rx.recv().await {
            rest(b);
        }
        let latency = finishing.await.context("joining the ring buffer reader")??;
        drop(attached);
        Ok(latency)
    }
}

/// SIGINT and SIGTERM: the two ways to ask every long-running command to
/// stop. Install them before anything slow, so that a stop during start-up
/// still ends the run cleanly (even when the shell started us with SIGINT
/// ignored).
pub struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    pub fn install() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Returns once either arrives.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// The kernel's sockets now, read off the async runtime (it takes a while
/// on a busy machine).
pub async fn enumerate() -> Result<seed::Seed> {
    tokio::task::spawn_blocking(seed::seed_all).await.context("joining the socket enumeration")?
}

/// Fills the model with the kernel's sockets now: at start-up, after the
/// programs are attached, and again (`reseed`) after lost events made it
/// wrong. Every command that follows events seeds this way.
pub async fn seed_model(decoder: &mut Decoder, table: &mut Table, reseed: bool) -> Result<seed::SeedStats> {
    let seed = enumerate().await.context("enumerating existing sockets")?;
    // Listeners older than netwatch: their children inherit their owner.
    decoder.listeners.seed(&seed.sockets);
    if reseed {
        table.reseed(seed.sockets, monotonic_ns());
    } else {
        table.seed(seed.sockets, monotonic_ns());
    }
    Ok(seed.stats)
}

pub struct Live {
    pub table: Table,
    pub decoder: Decoder,
    pub seed_stats: seed::SeedStats,
    /// Keeps each row's holders current (process exec, exit, fork).
    pub holders: Holders,
    tracing: Tracing,
    last_maintain: Instant,
    /// Re-read every connected TCP socket's RTT with the minisockets (the
    /// live view's RTT column), in every namespace with TCP sockets, and
    /// the other namespaces' listener drop counters too. Off by default:
    /// that dump walks every connection each second, which only a screen
    /// showing them needs.
    pub live_rtt: bool,
    /// The live view's way into the other namespaces ([`Self::live_rtt`]).
    others: seed::OtherNamespaces,
}

impl Live {
    pub async fn start(history: usize) -> Result<Self> {
        let tracing = Tracing::start(&Options::default(), 4096)?;
        let mut live = Self {
            table: Table::new(history),
            decoder: Decoder::default(),
            seed_stats: seed::SeedStats::default(),
            holders: Holders::default(),
            tracing,
            last_maintain: Instant::now(),
            live_rtt: false,
            others: seed::OtherNamespaces::default(),
        };
        live.seed(false).await?;
        Ok(live)
    }

    /// What works less well than it should, and why (see [`Tracing`]).
    pub fn warnings(&self) -> Vec<String> {
        self.tracing.warnings()
    }

    /// Why ownership is degraded, if it is (for the full-screen header).
    pub fn degraded(&self) -> Option<&str> {
        self.tracing.attached.degraded.as_deref()
    }

    /// Fills the table, or (`reseed`) rebuilds it, from the kernel's sockets.
    async fn seed(&mut self, reseed: bool) -> Result<()> {
        self.seed_stats = seed_model(&mut self.decoder, &mut self.table, reseed).await?;
        Ok(())
    }

    /// Waits for the next batch from the kernel (or `timeout`), applies it
    /// and returns what changed; `None` once the reader has stopped. It
    /// yields now and then; dropped before it returns, it may leave the
    /// table empty (lent to the sock_diag re-read): only to finish.
    pub async fn next(&mut self, timeout: Duration) -> Option<Update> {
        let mut update = Update::default();
        match tokio::time::timeout(timeout, self.tracing.rx.recv()).await {
            Ok(Some(batch)) => self.apply(batch, &mut update),
            Ok(None) => return None,
            Err(_) => {}
        }
        // Take what else is already queued, so one redraw covers it, up to
        // a step's worth.
        // A few thousand events at a time, letting the task go between
        // them: the live view answers keys while a step is pending.
        loop {
            let held = update.events.len();
            if held >= STEP_EVENTS {
                break;
            }
            let Self { tracing, decoder, table, holders, .. } = &mut *self;
            take_queued(&mut tracing.rx, (held + SLICE_EVENTS).min(STEP_EVENTS), held, |batch| {
                apply(decoder, table, holders, batch, &mut update);
                update.events.len()
            });
            if update.events.len() == held {
                break;
            }
            tokio::task::yield_now().await;
        }
        self.reseed_if_lost(&mut update).await;
        if let Some(w) = self.holders.maintain(&mut self.table, &mut self.decoder.listeners).await {
            update.warnings.push(w);
        }
        self.maintain(&mut update).await;
        Some(update)
    }

    async fn reseed_if_lost(&mut self, update: &mut Update) {
        if update.lost.total() > 0 {
            // The table is wrong now: rebuild it from the kernel.
            match self.seed(true).await {
                Ok(()) => update.reseeded = true,
                Err(e) => update.warnings.push(format!("re-reading sockets after lost events failed: {e:#}")),
            }
        }
    }

    fn apply(&mut self, batch: Batch, update: &mut Update) {
        apply(&mut self.decoder, &mut self.table, &mut self.holders, batch, update);
    }

    /// Applies what is queued now and re-reads what events cannot report
    /// (for a final, exact table). The events are not handed on.
    pub async fn refresh(&mut self) -> Vec<String> {
        let mut update = Update::default();
        // Only what is queued now: the kernel goes on sending meanwhile.
        for _ in 0..self.tracing.rx.len() {
            let Ok(batch) = self.tracing.rx.try_recv() else { break };
            self.apply(batch, &mut update);
            update.events.clear();
        }
        self.reseed_if_lost(&mut update).await;
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
        // The kernel's per-socket counters into the rows, once a second
        // too: rates are per second, and one pass over the map costs two
        // syscalls a socket.
        if let Some(map) = &mut self.tracing.attached.traffic {
            self.table.update_traffic(map.read_all(), now);
        }
        // Walking and re-reading 130,000 TIME_WAIT rows takes 100 ms and
        // more on a loaded machine: done on a blocking thread, with the
        // table lent to it, so that the task stays free meanwhile (the live
        // view answers keys from its snapshot; nothing else reads the table
        // while this step is pending).
        let mut table = std::mem::replace(&mut self.table, Table::new(0));
        let mut others = std::mem::take(&mut self.others);
        let rtt = self.live_rtt;
        let joined = tokio::task::spawn_blocking(move || {
            table.expire(now);
            give_back_memory();
            let read = seed::minisocks(rtt).map(|m| {
                table.reconcile_minisocks(m.netns, m.tcp, now);
                table.update_listen_drops(&m.listeners);
                table.update_rtt(&m.connected);
                table.reconcile_udp(m.netns, m.udp, now)
            });
            let mut warnings = Vec::new();
            if rtt {
                // Containers' connections too: the sockets kept in each
                // other namespace with TCP sockets.
                warnings = others.track(&table.tcp_namespaces()).warnings;
                let (found, failed) = seed::figures_in(&others);
                table.update_listen_drops(&found.listeners);
                table.update_rtt(&found.connected);
                warnings.extend(failed);
            }
            (table, others, read, warnings)
        })
        .await;
        let (table, others, read, warnings) = match joined {
            Ok(done) => done,
            // As if it had panicked here, where it ran before.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.table = table;
        self.others = others;
        update.warnings.extend(warnings);
        let unowned = match read {
            Ok(unowned) => unowned,
            Err(e) => return update.warnings.push(format!("re-reading TIME_WAIT/SYN_RECV/UDP sockets: {e:#}")),
        };
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

    /// Stops the reader and detaches everything.
    pub async fn finish(self) -> Result<Latency> {
        // What is still queued changes nothing anyone will look at.
        self.tracing.finish(drop).await
    }
}

/// Applies one batch from the reader to the table.
fn apply(decoder: &mut Decoder, table: &mut Table, holders: &mut Holders, batch: Batch, update: &mut Update) {
    match batch {
        Batch::Events(records) => {
            decoder.start_batch(&records);
            for r in &records {
                let Some(mut e) = decoder.decode(r) else { continue };
                table.complete_and_apply(&mut e);
                update.events.push(e);
            }
        }
        Batch::Lost(loss) => {
            table.totals.lost_events += loss.total();
            update.lost += loss;
        }
        Batch::Procs(procs) => holders.on_procs(table, &mut decoder.listeners, &procs),
        Batch::Dns(answers) => table.hosts.learn(&answers),
        Batch::DnsLost(n) => table.hosts.lost += n,
        Batch::TrafficUncounted(n) => {
            if table.totals.count_uncounted(n) {
                update.warnings.push(crate::probe::traffic::full_warning(n));
            }
        }
    }
}

/// Hands queued batches to `apply` (which returns the events the step holds
/// then) until the step holds `limit` events; `held` are there already.
fn take_queued(rx: &mut mpsc::Receiver<Batch>, limit: usize, mut held: usize, mut apply: impl FnMut(Batch) -> usize) {
    while held < limit {
        let Ok(batch) = rx.try_recv() else { break };
        held = apply(batch);
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
    use netwatch_common::SockEvent;

    use super::*;

    fn batch(n: usize) -> Batch {
        // SAFETY: SockEvent is plain integers and byte arrays (it crosses
        // the kernel boundary), for which all zeroes is a valid value.
        Batch::Events(vec![unsafe { std::mem::zeroed::<SockEvent>() }; n])
    }

    /// Events one step takes from `rx` when it holds `held` already.
    fn step(rx: &mut mpsc::Receiver<Batch>, held: usize) -> usize {
        let mut n = held;
        take_queued(rx, STEP_EVENTS, held, |b| {
            if let Batch::Events(records) = b {
                n += records.len();
            }
            n
        });
        n - held
    }

    /// A backlog is applied a step's worth at a time, whatever its size:
    /// one step must not hold all of it decoded.
    #[test]
    fn a_step_takes_a_bounded_share_of_the_backlog() {
        let (tx, mut rx) = mpsc::channel(64);
        for _ in 0..10 {
            tx.try_send(batch(STEP_EVENTS / 3)).unwrap();
        }
        // Whole batches, up to the one that fills the step.
        assert_eq!((step(&mut rx, 0), rx.len()), (4 * (STEP_EVENTS / 3), 6));
        assert_eq!((step(&mut rx, 0), rx.len()), (4 * (STEP_EVENTS / 3), 2));
        // Events the step holds already count.
        assert_eq!((step(&mut rx, STEP_EVENTS), rx.len()), (0, 2));
        assert_eq!((step(&mut rx, 0), rx.len()), (2 * (STEP_EVENTS / 3), 0));
    }
}
