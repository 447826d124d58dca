//! The live table's memory under endless churn: `netwatch snapshot
//! --for` (table, TIME_WAIT rows, closed history) while `nw-peer churn`
//! runs unpaced. Its RSS after 100,000 and after 1,000,000 connections must
//! be about the same: nothing may grow with the number of connections seen.
//!
//! Connections are counted live from the kernel's `Tcp: ActiveOpens`
//! (/proc/net/snmp, this network namespace): the peer prints its own count
//! only at the end. Other processes' connects are counted too, so run it on
//! a quiet machine.
//!
//! Each sample is the median of readings over one second, the live model's
//! housekeeping period: a single reading also catches whatever is in flight
//! at that instant (events queued behind a busy moment, a sock_diag dump
//! being applied): readings a second apart differed by up to 10% on the
//! shared development VM, by 20% after a stall. The spread of the readings is printed beside it, and
//! the peak (VmHWM) is reported as before.

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::{
    report::Section,
    traced::rate,
    watcher::{mib, Mem, Watcher},
    Ctx,
};
use crate::cmd;

const FIRST: u64 = 100_000;
const SECOND: u64 = 1_000_000;
/// At the ~30-40k connections/s of the development VM, 1,000,000 takes
/// 25-35 s; past this the second sample is taken wherever the count is.
const LIMIT: Duration = Duration::from_secs(60);
const GROWTH_TARGET: f64 = 0.10;
/// Readings per sample, and the time between them: one second in all.
const READINGS: usize = 10;
const READING_GAP: Duration = Duration::from_millis(100);

pub fn title() -> String {
    format!("memory under churn: `netwatch snapshot --for` RSS after {FIRST} and {SECOND} connections")
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let watcher = Watcher::start(&ctx.netwatch, LIMIT + Duration::from_secs(60))?;
    let start_mem = watcher.mem()?;
    let base = active_opens()?;
    let started = Instant::now();
    let mut churn = Churn::start(ctx, LIMIT + Duration::from_secs(5))?;
    let first = sample_at(&watcher, &mut churn, base, FIRST, started)?;
    let second = sample_at(&watcher, &mut churn, base, SECOND, started)?;
    drop(churn);
    watcher.kill();

    section.row("RSS when watching began", mib(start_mem.rss_kib));
    for (label, s) in [("first", &first), ("second", &second)] {
        section.row(
            &format!("RSS after {} connections", s.connections),
            format!(
                "{} ({label}; {:.1} s, {}; readings {}-{})",
                mib(s.rss_kib),
                s.seconds,
                rate(s.connections as f64 / s.seconds),
                mib(s.spread.0),
                mib(s.spread.1)
            ),
        );
    }
    section.row(
        "kernel TIME_WAIT sockets then",
        format!("{} / {} (rows the table must hold)", first.time_wait, second.time_wait),
    );
    section.row("peak RSS (VmHWM)", mib(second.hwm_kib));
    let growth = second.rss_kib as f64 / first.rss_kib.max(1) as f64 - 1.0;
    section.check(
        "RSS growth, second over first",
        format!("{:+.1}%", growth * 100.0),
        &format!("<= {:.0}%", GROWTH_TARGET * 100.0),
        growth <= GROWTH_TARGET,
    );
    if second.connections < SECOND {
        section.row("note", format!("{SECOND} connections not reached within {} s", LIMIT.as_secs()));
    }
    Ok(())
}

struct Sample {
    connections: u64,
    seconds: f64,
    /// Median RSS of the readings, and their lowest and highest.
    rss_kib: u64,
    spread: (u64, u64),
    hwm_kib: u64,
    /// TIME_WAIT sockets in the kernel then: the table keeps a row for each,
    /// so they are memory netwatch must hold, bounded by the kernel's
    /// `tcp_max_tw_buckets`, not by netwatch.
    time_wait: u64,
}

/// Waits until `want` connections have been opened since `base` (or the
/// time limit), then reads netwatch's memory over the next second (the
/// churn goes on meanwhile).
fn sample_at(watcher: &Watcher, churn: &mut Churn, base: u64, want: u64, started: Instant) -> Result<Sample> {
    loop {
        let connections = active_opens()?.saturating_sub(base);
        if connections >= want || started.elapsed() >= LIMIT {
            let seconds = started.elapsed().as_secs_f64();
            let time_wait = time_wait()?;
            let readings = readings(watcher, churn)?;
            let (rss_kib, spread) = median(readings.iter().map(|m| m.rss_kib).collect());
            let hwm_kib = readings.last().map_or(0, |m| m.hwm_kib);
            return Ok(Sample { connections, seconds, rss_kib, spread, hwm_kib, time_wait });
        }
        churn.check()?;
        thread::sleep(Duration::from_millis(20));
    }
}

fn readings(watcher: &Watcher, churn: &mut Churn) -> Result<Vec<Mem>> {
    let mut out = Vec::with_capacity(READINGS);
    for i in 0..READINGS {
        if i > 0 {
            thread::sleep(READING_GAP);
        }
        out.push(watcher.mem()?);
        churn.check()?;
    }
    Ok(out)
}

/// The median (upper one for an even count) and the extremes.
fn median(mut kib: Vec<u64>) -> (u64, (u64, u64)) {
    kib.sort_unstable();
    let at = |i: usize| kib.get(i).copied().unwrap_or(0);
    (at(kib.len() / 2), (at(0), at(kib.len().saturating_sub(1))))
}

/// `nw-peer churn`, unpaced, killed on drop.
struct Churn {
    child: Child,
}

impl Churn {
    fn start(ctx: &Ctx, span: Duration) -> Result<Churn> {
        let mut command = Command::new(&ctx.peer);
        command.args(["churn", "--seconds", &span.as_secs().to_string()]);
        command.stdin(Stdio::null()).stdout(Stdio::null());
        let child = command.spawn().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
        Ok(Churn { child })
    }

    /// Fails if the peer ended early.
    fn check(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("waiting for nw-peer churn")? {
            bail!("nw-peer churn ended early ({status})");
        }
        Ok(())
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tw N` of the `TCP:` line in /proc/net/sockstat.
fn time_wait() -> Result<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").context("reading /proc/net/sockstat")?;
    let line = sockstat.lines().find(|l| l.starts_with("TCP:")).context("no TCP: line in /proc/net/sockstat")?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "tw" {
            return words.next().context("tw without a value")?.parse().context("tw value in /proc/net/sockstat");
        }
    }
    bail!("no tw field in /proc/net/sockstat: {line}")
}

/// `Tcp: ... ActiveOpens` from /proc/net/snmp: connects this namespace began.
fn active_opens() -> Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").context("reading /proc/net/snmp")?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().context("no Tcp: header")?, tcp.next().context("no Tcp: values")?);
    let (_, value) = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ActiveOpens")
        .context("/proc/net/snmp has no Tcp ActiveOpens")?;
    value.parse().with_context(|| format!("ActiveOpens {value:?} is not a count"))
}
