//! Seeding with 40,000 open sockets: how fast `netwatch snapshot`
//! enumerates a busy machine next to `ss -tanp` and `netstat -tanp` (each
//! with process owners), how fast `netwatch -tanp` (netstat's own view)
//! is next to `netstat -tanp`, and what the live table costs in memory.

use std::{
    ffi::OsStr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{
    holders::Holders,
    report::Section,
    watcher::{mib, Watcher},
    Ctx,
};
use crate::cmd;

/// 4 processes x 5,000 pairs = 40,000 sockets (the per-process file limit
/// here is 20,000).
const PROCESSES: usize = 4;
const PAIRS: u32 = 5_000;
const RUNS: usize = 5;
const SPEEDUP_TARGET: f64 = 5.0;
const WATCH: Duration = Duration::from_secs(3);

pub fn title() -> String {
    format!("seeding: {} open loopback sockets ({PROCESSES} processes)", PROCESSES * PAIRS as usize * 2)
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let (idle_end, idle_peak) = Watcher::start(&ctx.netwatch, WATCH)?.finish()?;
    let started = Instant::now();
    let holders = Holders::start(ctx, PROCESSES, PAIRS)?;
    section.row("sockets opened in", format!("{:.1} s", started.elapsed().as_secs_f64()));
    section.row("TCP sockets in the table", tcp_sockets(ctx)?);

    let netwatch = median(ctx.netwatch.as_os_str(), "snapshot")?;
    let ss = median("ss".as_ref(), "-tanp")?;
    let netstat = median("netstat".as_ref(), "-tanp")?;
    section.row(&format!("netwatch snapshot (median of {RUNS})"), ms(netwatch));
    section.row(&format!("ss -tanp (median of {RUNS})"), ms(ss));
    section.row(&format!("netstat -tanp (median of {RUNS})"), ms(netstat));
    let vs_ss = ss.as_secs_f64() / netwatch.as_secs_f64();
    section.check(
        "ss -tanp / netwatch",
        format!("{vs_ss:.1}x"),
        &format!(">= {SPEEDUP_TARGET}x"),
        vs_ss >= SPEEDUP_TARGET,
    );
    section.row("netstat -tanp / netwatch", format!("{:.1}x", netstat.as_secs_f64() / netwatch.as_secs_f64()));
    // The same view, in netstat's format: what `netwatch -tanp` replaces.
    let compat = median(ctx.netwatch.as_os_str(), "-tanp")?;
    section.row(&format!("netwatch -tanp (median of {RUNS})"), ms(compat));
    let vs_netstat = netstat.as_secs_f64() / compat.as_secs_f64();
    section.check(
        "netstat -tanp / netwatch -tanp",
        format!("{vs_netstat:.1}x"),
        &format!(">= {SPEEDUP_TARGET}x"),
        vs_netstat >= SPEEDUP_TARGET,
    );

    let (busy_end, busy_peak) = Watcher::start(&ctx.netwatch, WATCH)?.finish()?;
    drop(holders);
    let rss = |end: u64, peak: u64| format!("{} at end, {} peak", mib(end), mib(peak));
    section.row(&format!("--for {}s RSS, without them", WATCH.as_secs()), rss(idle_end.rss_kib, idle_peak));
    section.row(&format!("--for {}s RSS, with them", WATCH.as_secs()), rss(busy_end.rss_kib, busy_peak));
    let sockets = (PROCESSES * PAIRS as usize * 2) as f64;
    let per_socket = busy_end.rss_kib.saturating_sub(idle_end.rss_kib) as f64 * 1024.0 / sockets;
    section.row("RSS per socket (end, busy - idle)", format!("{per_socket:.0} bytes"));
    Ok(())
}

/// Median wall time of `RUNS` runs of `program arg`, output to /dev/null;
/// each must succeed.
fn median(program: &OsStr, arg: &str) -> Result<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let mut command = Command::new(program);
        command.arg(arg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let start = Instant::now();
        let status = command.status().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
        times.push(start.elapsed());
        cmd::check(&command, status)?;
    }
    times.sort();
    Ok(times[RUNS / 2])
}

/// The `TCP: N sockets (...)` line of `netwatch snapshot`.
fn tcp_sockets(ctx: &Ctx) -> Result<String> {
    let mut command = Command::new(&ctx.netwatch);
    command.arg("snapshot").stdin(Stdio::null()).stderr(Stdio::null());
    let out = command.output().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
    cmd::check(&command, out.status)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("TCP: ")).context("netwatch snapshot printed no `TCP: ` line")?;
    Ok(line.trim_start_matches("TCP: ").to_owned())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
