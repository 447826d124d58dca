//! How events cross into userspace: a dedicated thread drains the ring
//! buffer and hands batches to the agent.
//!
//! Wakeups, not throughput, are what slow the traced workload. A ring
//! buffer wakeup is an interrupt on the CPU of the process that caused the
//! event, and the woken reader tends to be placed on that CPU, right where
//! the busy workload runs. So while events flow the reader drains on its
//! own clock (a short, precise thread sleep between drains) and tells the
//! kernel programs, through `READER_AWAKE`, to submit without waking it;
//! after a quiet spell it clears the flag and sleeps until the kernel's
//! wakeup for the next event. The same thread polls the kernel's loss
//! counters.
//!
//! The thread is a normal one. It used to ask for real-time priority, so
//! as not to wait behind busy processes on a saturated machine; but a
//! real-time thread wakes where it last ran and preempts whatever runs
//! there, which under churn was the traced workload: with its timer
//! wakeups, that cost the workload more than everything else netwatch
//! does. As a normal thread the scheduler moves it to the idle CPU. On a
//! saturated machine its fair share still drains the 16 MiB ring far
//! faster than it fills (the bench's saturated scenario: nothing lost).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use netwatch_common::{Counter, DnsEvent, ProcEvent, SockEvent};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::mpsc,
};

use crate::{
    event::{clock::monotonic_ns, decode},
    probe::{misses::SkippedRuns, RingMaps},
    stats::Latency,
};

/// What the reader thread sends.
#[derive(Debug)]
pub enum Batch {
    Events(Vec<SockEvent>),
    /// Events lost since the previous report.
    Lost(Loss),
    /// Process lifecycle records (exec, exit, fork), for `holders`.
    Procs(Vec<ProcEvent>),
    /// DNS answers, for the address-to-name map (`names`). Always sent
    /// before the socket events drained with them (see [`Dns::before`]).
    Dns(Vec<DnsEvent>),
    /// DNS answers the kernel could not hand over (its ring was full)
    /// since the previous report: names never learnt.
    DnsLost(u64),
    /// Packets whose socket found no room in the full `TRAFFIC` map since
    /// the previous report: traffic never counted.
    TrafficUncounted(u64),
}

/// Events lost, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    /// Found the ring buffer full.
    pub ring_full: u64,
    /// Never made: runs of a sending program the kernel skipped
    /// (`probe::misses`).
    pub skipped: u64,
}

impl Loss {
    pub const fn total(&self) -> u64 {
        self.ring_full.saturating_add(self.skipped)
    }

    /// The causes in a few words, for a line of output: "ring buffer full",
    /// "hook runs skipped", or both with their counts.
    pub fn causes(&self) -> String {
        match (self.ring_full, self.skipped) {
            (_, 0) => "ring buffer full".to_owned(),
            (0, _) => "hook runs skipped".to_owned(),
            (full, skipped) => format!("{full} ring buffer full, {skipped} hook runs skipped"),
        }
    }
}

impl std::ops::AddAssign for Loss {
    fn add_assign(&mut self, other: Self) {
        self.ring_full = self.ring_full.saturating_add(other.ring_full);
        self.skipped = self.skipped.saturating_add(other.skipped);
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ReaderOptions {
    /// Sleep between drains while events flow fast: the shortest pause.
    pub batch_delay: Duration,
    /// The longest pause, while events trickle (see [`Pace`]).
    pub max_batch_delay: Duration,
    /// How long without a record before the reader sleeps until woken.
    pub quiet_after: Duration,
    /// How often loss counters are read.
    pub counter_interval: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            batch_delay: Duration::from_millis(1),
            max_batch_delay: Duration::from_millis(8),
            quiet_after: Duration::from_millis(20),
            counter_interval: Duration::from_millis(50),
        }
    }
}

/// The pause between drains while events flow: each wake-up of the reader
/// (and of the agent loop it hands the batch to) is a context switch on a
/// CPU the traced workload may be waiting for, so a trickle of events is
/// taken in batches rather than every millisecond. The next pause is the
/// time the last rate takes to bring [`Pace::BATCH`] records, between
/// `batch_delay` and `max_batch_delay`: under a churn of tens of thousands
/// of connections a second it is the shortest (the delivery latency the
/// bench holds), while a resolver loop's few thousand records a second
/// wake the agent some two hundred times a second rather than a thousand.
#[derive(Clone, Copy, Debug)]
struct Pace {
    delay: Duration,
    min: Duration,
    max: Duration,
    last: Instant,
}

impl Pace {
    /// Records a drain should find at the rate of the last one.
    const BATCH: u32 = 128;

    fn new(opts: &ReaderOptions) -> Self {
        let max = opts.max_batch_delay.max(opts.batch_delay);
        Self { delay: opts.batch_delay, min: opts.batch_delay, max, last: Instant::now() }
    }

    /// After a drain that took `drained` records at `now`.
    fn after(&mut self, drained: usize, now: Instant) {
        let elapsed = now.duration_since(self.last);
        self.last = now;
        self.delay = match u32::try_from(drained) {
            Ok(0) => self.max,
            Ok(n) => (elapsed * Self::BATCH / n).clamp(self.min, self.max),
            Err(_) => self.min,
        };
    }
}

/// The running reader; dropping it stops the thread.
pub struct Reader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Latency>>>,
}

impl Reader {
    pub fn spawn(maps: RingMaps, opts: ReaderOptions, tx: mpsc::Sender<Batch>) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("netwatch-ring".into())
            .spawn(move || run(maps, opts, tx, &flag))
            .context("starting the ring buffer reader thread")?;
        Ok(Self { stop, handle: Some(handle) })
    }

    /// Stops the thread after a final drain and returns its latency record.
    pub fn finish(mut self) -> Result<Latency> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => anyhow::bail!("the ring buffer reader thread panicked"),
            None => Ok(Latency::default()),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(maps: RingMaps, opts: ReaderOptions, tx: mpsc::Sender<Batch>, stop: &AtomicBool) -> Result<Latency> {
    let RingMaps { events, counters, mut awake, skipped, mut procs, dns } = maps;
    let mut dns = Dns { maps: dns, lost: 0, uncounted: false };
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    rt.block_on(async {
        // SAFETY: the ring buffer owns its map fd for as long as the AsyncFd
        // owns the ring buffer, and never swaps it.
        let mut ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("registering the ring buffer with epoll")?;
        let mut latency = Latency::default();
        let mut loss = LossTracker::default();
        let mut last_counters = Instant::now();
        let mut last_batch = 0;
        let mut pace = Pace::new(&opts);
        // When the last record was drained while on our own clock; None
        // while asleep.
        let mut quiet: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            match quiet {
                Some(since) => {
                    // A full drain may have left records behind: no pause.
                    if last_batch < MAX_DRAIN {
                        std::thread::sleep(pace.delay);
                    }
                    let mut batch = drain(ring.get_mut(), &mut latency, last_batch + last_batch / 4);
                    pace.after(batch.len(), Instant::now());
                    quiet = if batch.is_empty() { Some(since) } else { Some(Instant::now()) };
                    if quiet.is_some_and(|since| since.elapsed() >= opts.quiet_after) {
                        set_awake(&mut awake, false)?;
                        quiet = None;
                        // Whatever was submitted unannounced before the flag
                        // changed, once programs that read the old flag are
                        // done (they run for microseconds); anything later
                        // wakes us, as the ring is then empty.
                        std::thread::sleep(opts.batch_delay);
                        batch = drain(ring.get_mut(), &mut latency, 64);
                    }
                    last_batch = batch.len();
                    if !batch.is_empty() && dns.before(&tx, Batch::Events(batch)).await.is_err() {
                        break; // the agent is gone
                    }
                }
                None => {
                    // Wake on data, or every counter interval regardless: the
                    // timeout also bounds how long a stop request waits.
                    let woken = match tokio::time::timeout(opts.counter_interval, ring.readable_mut()).await {
                        Ok(guard) => {
                            guard.context("waiting on the ring buffer")?.clear_ready();
                            true
                        }
                        Err(_) => false,
                    };
                    // A record left in the ring would keep the kernel from
                    // ever waking us again (it only wakes a reader that had
                    // caught up), so a timeout drains too.
                    let batch = if woken { Vec::new() } else { drain(ring.get_mut(), &mut latency, 64) };
                    if woken || !batch.is_empty() {
                        set_awake(&mut awake, true)?;
                        quiet = Some(Instant::now());
                        pace = Pace::new(&opts);
                        last_batch = batch.len();
                    }
                    if !batch.is_empty() && dns.before(&tx, Batch::Events(batch)).await.is_err() {
                        break;
                    }
                }
            }
            if last_counters.elapsed() >= opts.counter_interval {
                last_counters = Instant::now();
                for b in loss.poll(&counters, &skipped)?.into_iter().flatten() {
                    if tx.send(b).await.is_err() {
                        return Ok(latency);
                    }
                }
                // Process records wake nobody (see netwatch-ebpf's
                // process.rs): they are drained on this clock. Socket
                // events made before them (the listen() before a daemon's
                // fork and exit) must be applied first, or the exit would
                // find no row to re-check: so the socket ring is drained
                // after the process ring and sent before it.
                if let Some(lifecycle) = procs.as_mut().map(drain_records::<ProcEvent>).filter(|p| !p.is_empty()) {
                    let before = drain(ring.get_mut(), &mut latency, 64);
                    if !before.is_empty() && dns.before(&tx, Batch::Events(before)).await.is_err() {
                        return Ok(latency);
                    }
                    if tx.send(Batch::Procs(lifecycle)).await.is_err() {
                        return Ok(latency);
                    }
                }
                // Answers no socket event followed (yet): taken on this
                // clock, so the ring never fills while sockets are quiet.
                if dns.send(&tx).await.is_err() || dns.send_lost(&tx).await.is_err() {
                    return Ok(latency);
                }
            }
        }
        // Final drain so that a clean stop loses nothing already queued.
        let batch = drain(ring.get_mut(), &mut latency, last_batch);
        if !batch.is_empty() {
            let _ = dns.before(&tx, Batch::Events(batch)).await;
        }
        for b in loss.poll(&counters, &skipped)?.into_iter().flatten() {
            let _ = tx.send(b).await;
        }
        let _ = dns.send_lost(&tx).await;
        Ok(latency)
    })
}

fn set_awake(awake: &mut Array<MapData, u32>, on: bool) -> Result<()> {
    awake.set(0, u32::from(on), 0).context("writing the reader flag map")
}

/// Records taken per drain at most. A drain that went on while the kernel
/// kept producing would never end under a sustained load faster than the
/// agent, and neither would the final drain after Ctrl-C; the loop checks
/// its stop flag between drains. (A 16 MiB ring holds about 150,000.)
const MAX_DRAIN: usize = 65_536;

fn drain(ring: &mut RingBuf<MapData>, latency: &mut Latency, expect: usize) -> Vec<SockEvent> {
    // Sized like the previous batch: growing a Vec of 168-byte decoded records by
    // doubling copied each batch about twice over.
    let mut out = Vec::with_capacity(expect.clamp(64, MAX_DRAIN));
    let now = monotonic_ns();
    while out.len() < MAX_DRAIN {
        let Some(item) = ring.next() else { break };
        match decode(&item) {
            Ok(ev) => {
                latency.record(now.saturating_sub(ev.ts_ns));
                out.push(ev);
            }
            // Cannot happen with a matching object; say so rather than guess.
            Err(e) => eprintln!("netwatch: skipping malformed record: {e:#}"),
        }
    }
    out
}

/// The DNS answer ring and its loss counter, when DNS capture is on.
struct Dns {
    maps: Option<crate::probe::dns::Maps>,
    /// Answers lost as last reported.
    lost: u64,
    /// The loss counter could not be read (said once).
    uncounted: bool,
}

impl Dns {
    /// Sends `events` after every answer the kernel submitted before them.
    /// A process reads the answer before it connects, so the answer was in
    /// the ring before the connect's event was; the events were drained
    /// first, so draining the answers now finds every answer that came
    /// before any of them (and perhaps some later ones), which the agent
    /// then applies first: the connect's event finds its name.
    async fn before(&mut self, tx: &mpsc::Sender<Batch>, events: Batch) -> Result<(), ()> {
        self.send(tx).await?;
        tx.send(events).await.map_err(drop)
    }

    async fn send(&mut self, tx: &mpsc::Sender<Batch>) -> Result<(), ()> {
        let Some(ring) = self.maps.as_mut().map(|m| &mut m.ring) else { return Ok(()) };
        let out = drain_records::<DnsEvent>(ring);
        if out.is_empty() {
            return Ok(());
        }
        tx.send(Batch::Dns(out)).await.map_err(drop)
    }

    /// Sends the answers lost since the last report, if any were. A counter
    /// that cannot be read is said once, on stderr: names still flow.
    async fn send_lost(&mut self, tx: &mpsc::Sender<Batch>) -> Result<(), ()> {
        let Some(maps) = self.maps.as_ref().filter(|_| !self.uncounted) else { return Ok(()) };
        match maps.lost() {
            Ok(now) => match lost_since(&mut self.lost, now) {
                0 => Ok(()),
                n => tx.send(Batch::DnsLost(n)).await.map_err(drop),
            },
            Err(e) => {
                eprintln!("netwatch: warning: lost DNS answers are not counted: {e:#}");
                self.uncounted = true;
                Ok(())
            }
        }
    }
}

/// What a cumulative counter grew by since `seen`, which it updates; a
/// smaller reading is no negative loss.
fn lost_since(seen: &mut u64, now: u64) -> u64 {
    let new = now.saturating_sub(*seen);
    *seen = (*seen).max(now);
    new
}

/// Every record in `ring` (the DNS answer or the process ring) as a `T`;
/// a record too short to hold one is skipped.
fn drain_records<T: aya::Pod>(ring: &mut RingBuf<MapData>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() >= size_of::<T>() {
            // SAFETY: `T: Pod` promises that any bytes of its size are a
            // valid `T` (DnsEvent and ProcEvent are plain old data), the
            // record holds at least that many, and `read_unaligned` needs
            // no alignment.
            out.push(unsafe { item.as_ptr().cast::<T>().read_unaligned() });
        }
    }
    out
}

/// Turns the kernel's cumulative loss counters into deltas.
#[derive(Default)]
struct LossTracker {
    seen: Loss,
    /// Packets left out of the full `TRAFFIC` map, as last reported.
    uncounted: u64,
}

impl LossTracker {
    /// Events lost and packets uncounted since the last poll, if any.
    fn poll(&mut self, counters: &PerCpuArray<MapData, u64>, skipped: &SkippedRuns) -> Result<[Option<Batch>; 2]> {
        let sum = |c: Counter| -> Result<u64> {
            Ok(counters.get(&(c as u32), 0).context("reading netwatch's loss counters")?.iter().sum())
        };
        let lost = self.update(Loss { ring_full: sum(Counter::LostEvents)?, skipped: skipped.total()? });
        let uncounted = match lost_since(&mut self.uncounted, sum(Counter::TrafficFull)?) {
            0 => None,
            n => Some(Batch::TrafficUncounted(n)),
        };
        Ok([lost, uncounted])
    }

    /// `now`: the cumulative counts.
    fn update(&mut self, now: Loss) -> Option<Batch> {
        let new = Loss {
            ring_full: lost_since(&mut self.seen.ring_full, now.ring_full),
            skipped: lost_since(&mut self.seen.skipped, now.skipped),
        };
        (new.total() > 0).then_some(Batch::Lost(new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_waits_for_a_batch_at_the_last_rate_within_its_bounds() {
        let opts = ReaderOptions::default();
        let mut pace = Pace::new(&opts);
        let (ms, t0) = (Duration::from_millis(1), pace.last);
        // Fast: 128 records a millisecond or more, the shortest pause.
        pace.after(100_000, t0 + ms);
        assert_eq!(pace.delay, ms);
        pace.after(128, t0 + 2 * ms);
        assert_eq!(pace.delay, ms);
        // 32 records in 8 ms: 128 take 32 ms, past the longest pause.
        pace.after(32, t0 + 10 * ms);
        assert_eq!(pace.delay, opts.max_batch_delay);
        // 256 in 8 ms: half of that.
        pace.after(256, t0 + 18 * ms);
        assert_eq!(pace.delay, 4 * ms);
        // Nothing: the longest, until the reader goes to sleep.
        pace.after(0, t0 + 22 * ms);
        assert_eq!(pace.delay, opts.max_batch_delay);
    }

    fn lost(b: Option<Batch>) -> Option<(u64, u64)> {
        match b {
            Some(Batch::Lost(l)) => Some((l.ring_full, l.skipped)),
            _ => None,
        }
    }

    fn at(ring_full: u64, skipped: u64) -> Loss {
        Loss { ring_full, skipped }
    }

    #[test]
    fn loss_is_reported_once_as_it_grows_by_cause() {
        let mut t = LossTracker::default();
        assert_eq!(lost(t.update(at(0, 0))), None);
        assert_eq!(lost(t.update(at(3, 0))), Some((3, 0)));
        assert_eq!(lost(t.update(at(3, 0))), None, "the same total is not lost again");
        assert_eq!(lost(t.update(at(10, 2))), Some((7, 2)));
        assert_eq!(lost(t.update(at(10, 5))), Some((0, 3)));
    }

    #[test]
    fn causes_name_what_happened() {
        assert_eq!(at(4, 0).causes(), "ring buffer full");
        assert_eq!(at(0, 1).causes(), "hook runs skipped");
        assert_eq!(at(4, 1).causes(), "4 ring buffer full, 1 hook runs skipped");
        let mut sum = at(1, 2);
        sum += at(3, 4);
        assert_eq!(sum, at(4, 6));
    }

    #[test]
    fn dns_loss_is_reported_as_it_grows() {
        let mut seen = 0;
        assert_eq!(lost_since(&mut seen, 0), 0);
        assert_eq!(lost_since(&mut seen, 7), 7);
        assert_eq!(lost_since(&mut seen, 7), 0, "the same total is not lost again");
        assert_eq!(lost_since(&mut seen, 5), 0, "nor a smaller one");
        assert_eq!(lost_since(&mut seen, 9), 2);
    }

    #[test]
    fn a_smaller_count_is_not_a_negative_loss() {
        // The counters only grow; were one ever read smaller, nothing
        // would be reported for it, nor reported twice after.
        let mut t = LossTracker::default();
        assert_eq!(lost(t.update(at(5, 1))), Some((5, 1)));
        assert_eq!(lost(t.update(at(4, 1))), None);
        assert_eq!(lost(t.update(at(6, 1))), Some((1, 0)));
    }
}
