//! Seeding with 40,000 open sockets: how fast `netwatch snapshot`
//! enumerates a busy machine next to `ss -tanp` and `netstat -tanp` (each
//! with process owners), how fast `netwatch -tanp` (netstat's own view)
//! is next to `netstat -tanp`, and what the live table costs in memory.
//! The four listings are timed in alternation within one run, so both
//! ratios come from the same moments of a shared machine.

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
/// Rounds; each runs the four commands once, in a rotating order.
const ROUNDS: usize = 9;
/// `netwatch snapshot` against `ss -tanp` (issue 19).
const SS_TARGET: f64 = 5.0;
/// `netwatch -tanp` against `netstat -tanp`: no worse than the 7.4x measured
/// when issue 19 was filed.
const NETSTAT_TARGET: f64 = 7.4;
const WATCH: Duration = Duration::from_secs(3);

pub fn title() -> String {
    format!("seeding: {} open loopback sockets ({PROCESSES} processes)", PROCESSES * PAIRS as usize * 2)
}

/// The four one-shot listings timed, each with process owners.
const SNAPSHOT: usize = 0;
const SS: usize = 1;
const COMPAT: usize = 2;
const NETSTAT: usize = 3;

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let (idle_end, idle_peak) = Watcher::start(&ctx.netwatch, WATCH)?.finish()?;
    let started = Instant::now();
    let holders = Holders::start(ctx, PROCESSES, PAIRS)?;
    section.row("sockets opened in", format!("{:.1} s", started.elapsed().as_secs_f64()));
    section.row("TCP sockets in the table", tcp_sockets(ctx)?);

    let commands: [(&OsStr, &str, &str); 4] = [
        (ctx.netwatch.as_os_str(), "snapshot", "netwatch snapshot"),
        ("ss".as_ref(), "-tanp", "ss -tanp"),
        // The same view in netstat's format: what `netwatch -tanp` replaces.
        (ctx.netwatch.as_os_str(), "-tanp", "netwatch -tanp"),
        ("netstat".as_ref(), "-tanp", "netstat -tanp"),
    ];
    let times = alternate(&commands)?;
    let medians = times.clone().map(|mut t| median(&mut t));
    for ((_, _, label), m) in commands.iter().zip(medians) {
        section.row(&format!("{label} (median of {ROUNDS})"), ms(m));
    }
    ratio(section, "ss -tanp / netwatch snapshot", &times, SS, SNAPSHOT, SS_TARGET);
    ratio(section, "netstat -tanp / netwatch -tanp", &times, NETSTAT, COMPAT, NETSTAT_TARGET);
    section.row(
        "netstat -tanp / netwatch snapshot",
        format!("{:.1}x", medians[NETSTAT].as_secs_f64() / medians[SNAPSHOT].as_secs_f64()),
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

/// Wall times of `ROUNDS` rounds of every command, output to /dev/null;
/// each must succeed. The commands alternate, starting one later each
/// round, so that a burst of load elsewhere on a shared machine falls on
/// all of them alike rather than on whichever ran during it.
fn alternate(commands: &[(&OsStr, &str, &str); 4]) -> Result<[Vec<Duration>; 4]> {
    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..ROUNDS {
        for i in (0..commands.len()).map(|k| (k + round) % commands.len()) {
            let (program, arg, _) = commands[i];
            let mut command = Command::new(program);
            command.arg(arg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            let start = Instant::now();
            let status = command.status().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
            times[i].push(start.elapsed());
            cmd::check(&command, status)?;
        }
    }
    Ok(times)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `times[slow] / times[fast]`: the ratio of the medians, checked against
/// `target`, with the median and range of the per-round ratios (each of
/// two runs moments apart) beside it.
fn ratio(section: &mut Section, label: &str, times: &[Vec<Duration>; 4], slow: usize, fast: usize, target: f64) {
    let (mut s, mut f) = (times[slow].clone(), times[fast].clone());
    let of_medians = median(&mut s).as_secs_f64() / median(&mut f).as_secs_f64();
    let mut rounds: Vec<f64> =
        times[slow].iter().zip(&times[fast]).map(|(s, f)| s.as_secs_f64() / f.as_secs_f64()).collect();
    rounds.sort_by(f64::total_cmp);
    let value = format!(
        "{of_medians:.1}x (per round: median {:.1}x, {:.1}-{:.1}x)",
        rounds[rounds.len() / 2],
        rounds[0],
        rounds[rounds.len() - 1]
    );
    section.check(label, value, &format!(">= {target}x"), of_medians >= target);
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
