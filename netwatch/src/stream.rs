//! How events cross into userspace: a dedicated thread drains the ring
//! buffer and hands batches to the agent.
//!
//! Wakeups, not throughput, are what slow the traced workload: with default
//! flags the kernel wakes the reader whenever it finds the ring empty, so a
//! reader that drains instantly is woken for nearly every event. After each
//! wakeup this thread therefore sleeps a short, precise interval (a thread
//! sleep, finer than tokio's 1 ms timer) so that one wakeup collects a
//! batch. The same thread polls the kernel's loss counters.
//!
//! The thread asks for the lowest real-time priority (SCHED_FIFO 1): on a
//! saturated machine a normal thread waits behind every busy process while
//! the ring fills, and the tracer's delivery latency becomes the scheduler's.
//! It only sleeps, drains and decodes, so it cannot starve anyone for long;
//! without the privilege it runs as a normal thread.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use netwatch_common::{Counter, SockEvent};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::mpsc,
};

use crate::{
    event::{clock::monotonic_ns, decode},
    stats::Latency,
};

/// What the reader thread sends.
#[derive(Debug)]
pub enum Batch {
    Events(Vec<SockEvent>),
    /// Events the kernel could not queue since the previous report.
    Lost(u64),
    /// Owner records the kernel could not store since the previous report.
    OwnersFull(u64),
}

#[derive(Clone, Copy, Debug)]
pub struct ReaderOptions {
    /// Sleep after a wakeup before draining.
    pub batch_delay: Duration,
    /// How often loss counters are read.
    pub counter_interval: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self { batch_delay: Duration::from_micros(500), counter_interval: Duration::from_millis(50) }
    }
}

/// The running reader; dropping it stops the thread.
pub struct Reader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Latency>>>,
}

impl Reader {
    pub fn spawn(
        events: RingBuf<MapData>,
        counters: PerCpuArray<MapData, u64>,
        opts: ReaderOptions,
        tx: mpsc::Sender<Batch>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("netwatch-ring".into())
            .spawn(move || run(events, counters, opts, tx, &flag))
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

fn run(
    events: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    opts: ReaderOptions,
    tx: mpsc::Sender<Batch>,
    stop: &AtomicBool,
) -> Result<Latency> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: 0 means the calling thread; failure leaves it unchanged.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
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
        while !stop.load(Ordering::Relaxed) {
            // Wake on data, or every counter interval regardless: the
            // timeout also bounds how long a stop request waits.
            if let Ok(guard) = tokio::time::timeout(opts.counter_interval, ring.readable_mut()).await {
                let mut guard = guard.context("waiting on the ring buffer")?;
                std::thread::sleep(opts.batch_delay);
                let batch = drain(guard.get_inner_mut(), &mut latency, last_batch + last_batch / 4);
                last_batch = batch.len();
                // A full batch may have left records behind: stay ready so
                // the next turn drains again (the kernel only wakes us once
                // the ring ran empty).
                if batch.len() < MAX_DRAIN {
                    guard.clear_ready();
                }
                if !batch.is_empty() && tx.send(Batch::Events(batch)).await.is_err() {
                    break; // the agent is gone
                }
            }
            if last_counters.elapsed() >= opts.counter_interval {
                last_counters = Instant::now();
                for b in loss.poll(&counters)? {
                    if tx.send(b).await.is_err() {
                        return Ok(latency);
                    }
                }
            }
        }
        // Final drain so that a clean stop loses nothing already queued.
        let batch = drain(ring.get_mut(), &mut latency, last_batch);
        if !batch.is_empty() {
            let _ = tx.send(Batch::Events(batch)).await;
        }
        for b in loss.poll(&counters)? {
            let _ = tx.send(b).await;
        }
        Ok(latency)
    })
}

/// Records taken per drain at most. A drain that went on while the kernel
/// kept producing would never end under a sustained load faster than the
/// agent, and neither would the final drain after Ctrl-C; the loop checks
/// its stop flag between drains. (A 16 MiB ring holds about 150,000.)
const MAX_DRAIN: usize = 65_536;

fn drain(ring: &mut RingBuf<MapData>, latency: &mut Latency, expect: usize) -> Vec<SockEvent> {
    // Sized like the previous batch: growing a Vec of 168-byte records by
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

/// Turns the kernel's cumulative per-CPU counters into deltas.
#[derive(Default)]
struct LossTracker {
    lost: u64,
    owners_full: u64,
}

impl LossTracker {
    fn poll(&mut self, counters: &PerCpuArray<MapData, u64>) -> Result<Vec<Batch>> {
        let sum = |c: Counter| -> Result<u64> {
            let values = counters.get(&(c as u32), 0).context("reading netwatch's loss counters")?;
            Ok(values.iter().sum())
        };
        let mut out = Vec::new();
        let lost = sum(Counter::LostEvents)?;
        if lost > self.lost {
            out.push(Batch::Lost(lost - self.lost));
            self.lost = lost;
        }
        let full = sum(Counter::OwnersFull)?;
        if full > self.owners_full {
            out.push(Batch::OwnersFull(full - self.owners_full));
            self.owners_full = full;
        }
        Ok(out)
    }
}
