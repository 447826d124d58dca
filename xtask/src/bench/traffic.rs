//! The traffic counters' cost: a bulk loopback TCP stream (every packet
//! passes both cgroup_skb programs) with and without netwatch, and the churn
//! generator under netwatch with the counters on and off
//! (`NETWATCH_NO_TRAFFIC=1`), both as interleaved pairs of short runs.
//!
//! # Why the bulk method is sound on a shared, noisy 2-CPU machine
//!
//! Comparing the best of N runs per side, or one long run per side, gave
//! ratios from 0.82 to 1.22: other engineers' builds and tests come and go
//! on the same two CPUs within seconds, and whichever side they happened to
//! land on lost. So:
//!
//! - **Short runs, interleaved**: `W0 A1 W1 A2 W2 ...` where `W` is a
//!   stream with no netwatch of ours and `A` one with netwatch running with
//!   its counters attached (the programs cannot be detached from a running
//!   agent from outside, so the two states are "agent absent" and "agent
//!   present"). Each run lasts [`RUN_SECONDS`], short enough that a burst
//!   of foreign load usually spoils one run rather than a whole side.
//! - **Bracketed pairs**: each `A_i` is compared with the mean of the two
//!   `W` runs around it, which cancels any load that drifts linearly over
//!   the ~2 s a pair takes.
//! - **Median of the pair ratios** is the figure, with min/max and the
//!   interquartile range beside it: a disturbed pair moves the extremes, not
//!   the median, and the IQR says how far the figure can be trusted.
//!   The median's 95% interval (order statistics, no assumption about the
//!   noise's shape) decides: the target is shown met only when the whole
//!   interval is above it, shown missed only when all of it is below.
//! - **Throughput per CPU-second as well as per wall-clock second.** The
//!   stream is CPU-bound, so its wall-clock rate is its CPU share times its
//!   bytes per CPU-second; the share is whatever the scheduler leaves it
//!   beside other engineers' work on that CPU (runs without netwatch varied
//!   2x within one bench), the bytes per CPU-second are what netwatch's
//!   programs change. The stream's CPU time is the peer's own (getrusage;
//!   without IRQ time accounting, as here, the loopback receive softirqs
//!   run inside the sender's system calls are charged to it) plus the
//!   sending CPU's ksoftirqd meanwhile. Both ratios are reported against the
//!   target; the CPU one is the throughput the stream would have on a CPU
//!   of its own, the question the target asks, and is the steadier one.
//! - **Same placement in both states**: sender and receiver threads are
//!   pinned to one CPU ([`PLACEMENT`]). On loopback the receive softirq runs
//!   on the sending CPU anyway, so the whole stream and all four program
//!   runs per round trip (data egress and ingress, ACK egress and ingress)
//!   load that one CPU, which is then the bottleneck in both states; the
//!   cost model below depends on exactly that. Unpinned, the scheduler
//!   sometimes splits the threads over both CPUs (a ~40% slower placement
//!   here, as the copy then crosses caches), which alone moved runs more
//!   than the effect measured.
//! - **netwatch's own threads run on the other CPU** ([`AGENT_CPU`]). A
//!   bulk stream gives netwatch no events to handle, so on a quiet machine
//!   its userspace sleeps; here it is busy with other engineers' churn (tens
//!   of thousands of connections a second), work that is not caused by the
//!   stream and varies from second to second. Left free, the scheduler puts
//!   it on the stream's CPU some of the time, which is noise, not the
//!   counting programs' cost. Its CPU share during the streams is reported.
//!   The kernel side (every program, including the counting ones) runs
//!   where the packets are, i.e. on the stream's CPU, as in real use.
//! - **Everything else is the same machine state in both**: buffer sizes
//!   (kernel autotuning, `tcp_wmem`/`tcp_rmem` unchanged) and segmentation
//!   on lo (MTU 64 KiB, so one TCP segment is one packet of up to 64 KiB;
//!   the report shows bytes per program run). Other engineers' counting
//!   programs may be attached meanwhile; they run in both states alike, and
//!   the report says how many there were.
//!
//! # The cross-check
//!
//! With run-time statistics on (`BPF_ENABLE_STATS`, the same switch as
//! `kernel.bpf_stats_enabled`) the kernel gives our two programs' run count
//! and time over stream windows. The programs see every packet on the
//! machine (other engineers' churn made more runs than the stream in some
//! benches), so the stream's share is bounded from its own packet count
//! (TCP_INFO segs out + in): the ingress program runs once per packet, the
//! egress one at most once (measured: about 0.6 per packet, as the sender
//! hands some segments down together), so at most two runs per packet at
//! the windows' mean cost per run. When other traffic is small, an
//! equally long window without the stream, just before, is subtracted
//! instead for a closer figure. Each byte costs `1/per_cpu` seconds of the
//! stream's CPU without netwatch and `ns_per_byte` more with, so the
//! expected ratio is `1 / (1 + ns_per_byte * per_cpu_without)`. The stats
//! themselves time every run, which inflates the per-run cost a little,
//! so the expected ratios are slight underestimates.

use std::{thread, time::Duration};

use anyhow::{bail, Context as _, Result};

use super::{
    agent::Agent,
    bulk::{self, Placement},
    pairs, peer, progstats,
    report::Section,
    spread::{median_ci95, Spread},
    Ctx,
};

pub const TITLE: &str = "traffic counters: bulk loopback stream and churn, counting on vs off";
/// Throughput with netwatch over throughput without.
const RATIO_TARGET: f64 = 0.95;
/// Bracketed with/without pairs; each costs an agent start and stop.
/// 20 puts the median's 95% interval at the 6th smallest..6th largest.
const PAIRS: usize = 20;
/// One stream: long enough to reach steady state (a few ms), short enough
/// that foreign load spoils single runs, not a whole side.
const RUN_SECONDS: f64 = 0.5;
/// Both threads on CPU 1: CPU 0 takes more of the machine's interrupts.
const PLACEMENT: Placement = Placement { sender_cpu: 1, receiver_cpu: 1 };
/// netwatch's userspace: the CPU the stream does not use.
const AGENT_CPU: usize = 0;
/// How netwatch runs in the "with" state; see [`counting_agent`].
const AGENT_ARGS: &[&str] = &["events", "--json", "--traffic"];
/// After netwatch says it is tracing: let its start-up work (seeding,
/// first ring buffer drains) finish before a stream is timed.
const SETTLE: Duration = Duration::from_millis(300);
/// Stream windows timed by the kernel's run-time statistics.
const STATS_ROUNDS: usize = 3;
/// Churn on/off pairs, and each run's length (`--seconds` does not apply:
/// short interleaved runs are the point, as for the bulk stream).
const CHURN_PAIRS: usize = 8;
const CHURN_SECONDS: u64 = 1;
const NO_TRAFFIC: &str = "NETWATCH_NO_TRAFFIC";

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let pairs = bulk_pairs(ctx)?;
    report_pairs(&pairs, section)?;
    let cost = program_cost(ctx)?;
    report_cost(&cost, &pairs, section);

    churn_pairs(ctx, section)
}

/// The churn generator under netwatch with counters off, on, off, ...:
/// the same bracketed pairs as the bulk stream, each `on` run over the mean
/// of the `off` runs around it. Churn is what netwatch's userspace works
/// hardest on, so netwatch is not confined here; both states have it.
fn churn_pairs(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let short = Ctx { netwatch: ctx.netwatch.clone(), peer: ctx.peer.clone(), seconds: CHURN_SECONDS };
    let pairs = pairs::run(CHURN_PAIRS, || churn(&short, false), || churn(&short, true))?;
    pairs.report(section, &format!("churn, {CHURN_SECONDS} s runs, counters off / on"), None)
}

/// The one place that chooses how netwatch runs in the "with" state.
/// `events --json --traffic` attaches the per-packet counters (as the
/// live model of `snapshot --for`, the TUI and `serve` does); whichever
/// command is used, the programs are checked to be attached, so a change
/// in what attaches them fails here instead of silently measuring nothing. With `counters` false they are switched off and
/// checked to be absent.
/// `cpu` confines netwatch's threads (not its kernel programs) to one CPU.
fn counting_agent(ctx: &Ctx, counters: bool, cpu: Option<usize>) -> Result<Running> {
    let env: &[(&str, &str)] = if counters { &[] } else { &[(NO_TRAFFIC, "1")] };
    let agent = Agent::start_on(&ctx.netwatch, AGENT_ARGS, env, cpu)?;
    let ours = progstats::skb_programs(agent.pid())?;
    let attached = progstats::attached_skb_ids()?;
    let ours_attached = ours.iter().filter(|p| attached.contains(&p.id)).count();
    match (counters, ours_attached) {
        (true, 2) | (false, 0) => {}
        (true, n) => bail!("netwatch (pid {}) has {n} counting programs attached, not 2", agent.pid()),
        (false, n) => bail!("netwatch with {NO_TRAFFIC}=1 still has {n} counting programs attached"),
    }
    let others = attached.len() - ours_attached;
    Ok(Running { agent, others })
}

struct Running {
    agent: Agent,
    /// Counting programs of other netwatch instances attached at the start.
    others: usize,
}

/// One `A` run of the interleaved sequence against the `W` runs around it.
struct Pair {
    /// Wall-clock throughput over the neighbours' mean.
    wall: f64,
    /// Bytes per CPU-second over the neighbours' mean.
    cpu: f64,
    with: Sample,
    others: usize,
    agent_cpu: f64,
}

/// One stream's two figures: bytes per second of wall-clock time, and per
/// second of CPU time (the throughput it would have on a CPU of its own).
#[derive(Clone, Copy)]
struct Sample {
    rate: f64,
    per_cpu: f64,
}

impl Sample {
    fn of(stream: &bulk::Stream) -> Sample {
        Sample { rate: stream.rate, per_cpu: stream.bytes as f64 / stream.cpu_seconds.max(f64::MIN_POSITIVE) }
    }
}

struct Pairs {
    pairs: Vec<Pair>,
    without: Vec<Sample>,
}

/// `W0 A1 W1 ... A_n W_n`; each `A_i` over the mean of `W_{i-1}` and `W_i`.
/// Every run starts [`SETTLE`] after netwatch started or exited, so neither
/// state inherits the other's transition (attaching, or the kernel freeing
/// programs and maps after exit).
fn bulk_pairs(ctx: &Ctx) -> Result<Pairs> {
    let stream = || bulk::run(ctx, RUN_SECONDS, PLACEMENT).map(|s| Sample::of(&s));
    let mut without = vec![stream()?];
    let mut pairs = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let running = counting_agent(ctx, true, Some(AGENT_CPU))?;
        thread::sleep(SETTLE);
        let cpu_before = running.agent.cpu_seconds()?;
        let with = stream();
        let agent_cpu = running.agent.cpu_seconds()? - cpu_before;
        running.agent.stop()?;
        let with = with?;
        thread::sleep(SETTLE);
        let after = stream()?;
        let before = *without.last().context("no run before the pair")?;
        without.push(after);
        pairs.push(Pair {
            wall: with.rate / ((before.rate + after.rate) / 2.0),
            cpu: with.per_cpu / ((before.per_cpu + after.per_cpu) / 2.0),
            with,
            others: running.others,
            agent_cpu,
        });
    }
    Ok(Pairs { pairs, without })
}

fn report_pairs(p: &Pairs, section: &mut Section) -> Result<()> {
    let spread = |f: &dyn Fn(&Pair) -> f64| Spread::of(&p.pairs.iter().map(f).collect::<Vec<_>>());
    let (wall, cpu) = (spread(&|x| x.wall), spread(&|x| x.cpu));
    let (Some(wall), Some(cpu)) = (wall, cpu) else { bail!("no bulk pairs measured") };
    let rate = |v: &[Sample], f: fn(&Sample) -> f64| Spread::of(&v.iter().map(f).collect::<Vec<_>>());
    let with: Vec<Sample> = p.pairs.iter().map(|x| x.with).collect();
    let without_rate = rate(&p.without, |s| s.rate).context("no run without netwatch")?;
    let with_rate = rate(&with, |s| s.rate).context("no run with netwatch")?;
    let without_cpu = rate(&p.without, |s| s.per_cpu).context("no run without netwatch")?;
    let with_cpu = rate(&with, |s| s.per_cpu).context("no run with netwatch")?;
    section.row(
        &format!("bulk 127.0.0.1, {} pairs x {RUN_SECONDS} s", p.pairs.len()),
        format!(
            "sender and receiver on CPU {}/{}, netwatch on CPU {AGENT_CPU}",
            PLACEMENT.sender_cpu, PLACEMENT.receiver_cpu
        ),
    );
    section.row(
        "  per CPU-second, without / with",
        format!("median {} / {}", gbit(without_cpu.median), gbit(with_cpu.median)),
    );
    ratio_rows(section, "bulk ratio per CPU-second", &p.pairs.iter().map(|x| x.cpu).collect::<Vec<_>>(), &cpu);
    section.row(
        "  wall clock, without / with",
        format!("median {} / {}", gbit(without_rate.median), gbit(with_rate.median)),
    );
    ratio_rows(section, "bulk ratio wall clock", &p.pairs.iter().map(|x| x.wall).collect::<Vec<_>>(), &wall);
    section.row("  runs without, wall clock", format!("min {} max {}", gbit(without_rate.min), gbit(without_rate.max)));
    let others: Vec<usize> = p.pairs.iter().map(|pair| pair.others).collect();
    section.row(
        "  other counting programs attached",
        format!("{}..{}", others.iter().min().unwrap_or(&0), others.iter().max().unwrap_or(&0)),
    );
    let agent: f64 = p.pairs.iter().map(|pair| pair.agent_cpu).sum();
    section.row(
        "  netwatch's own CPU during streams",
        format!("{:.1}% of one CPU", agent / (p.pairs.len() as f64 * RUN_SECONDS) * 100.0),
    );
    Ok(())
}

/// The median against the target, its 95% interval and what that shows.
fn ratio_rows(section: &mut Section, label: &str, ratios: &[f64], s: &Spread) {
    section.check(label, format!("{:.3} (median)", s.median), &format!(">= {RATIO_TARGET}"), s.median >= RATIO_TARGET);
    section.row("  spread of pair ratios", format!("min {:.3} IQR {:.3}..{:.3} max {:.3}", s.min, s.q1, s.q3, s.max));
    let Some((lo, hi)) = median_ci95(ratios) else {
        section.row("  95% interval of the median", "too few pairs");
        return;
    };
    let verdict = if lo >= RATIO_TARGET {
        "target shown met"
    } else if hi < RATIO_TARGET {
        "target shown missed"
    } else {
        "neither shown met nor missed"
    };
    section.row("  95% interval of the median", format!("{lo:.3}..{hi:.3}: {verdict}"));
}

/// Our programs' runs while streams ran, and the streams' own packets.
struct Cost {
    /// Runs and nanoseconds in the stream windows (other traffic included).
    runs: u64,
    ns: u64,
    /// Runs and nanoseconds in equally long windows without our stream.
    idle_runs: u64,
    idle_ns: u64,
    bytes: u64,
    packets: u64,
}

/// [`STATS_ROUNDS`] times: a window without our stream (other traffic
/// only), then a stream, both timed by the kernel, under one counting agent.
fn program_cost(ctx: &Ctx) -> Result<Cost> {
    let running = counting_agent(ctx, true, Some(AGENT_CPU))?;
    let pid = running.agent.pid();
    let stats = progstats::RunTimeStats::enable()?;
    thread::sleep(SETTLE);
    let mut cost = Cost { runs: 0, ns: 0, idle_runs: 0, idle_ns: 0, bytes: 0, packets: 0 };
    for _ in 0..STATS_ROUNDS {
        let start = progstats::skb_programs(pid)?;
        thread::sleep(Duration::from_secs_f64(RUN_SECONDS));
        let idle = progstats::skb_programs(pid)?;
        let stream = bulk::run(ctx, RUN_SECONDS, PLACEMENT)?;
        let end = progstats::skb_programs(pid)?;
        let (idle_runs, idle_ns) = progstats::delta(&start, &idle);
        let (runs, ns) = progstats::delta(&idle, &end);
        cost.runs += runs;
        cost.ns += ns;
        cost.idle_runs += idle_runs;
        cost.idle_ns += idle_ns;
        cost.bytes += stream.bytes;
        cost.packets += stream.packets;
    }
    drop(stats);
    running.agent.stop()?;
    Ok(cost)
}

fn report_cost(cost: &Cost, pairs: &Pairs, section: &mut Section) {
    if cost.runs == 0 || cost.bytes == 0 || cost.packets == 0 {
        section.row("counting programs (kernel's stats)", "no runs during the streams");
        return;
    }
    let ns_per_run = cost.ns as f64 / cost.runs as f64;
    let idle = match cost.idle_runs {
        0 => "no runs".to_string(),
        n => format!("{:.0} ns x {n}", cost.idle_ns as f64 / n as f64),
    };
    section.row(
        "counting programs (kernel's stats)",
        format!("{ns_per_run:.0} ns per run x {} runs in stream windows; as long without: {idle}", cost.runs),
    );
    section.row(
        "  stream",
        format!(
            "{} packets (TCP_INFO), {:.1} KiB each",
            cost.packets,
            cost.bytes as f64 / cost.packets as f64 / 1024.0
        ),
    );
    let Some(without) = Spread::of(&pairs.without.iter().map(|s| s.per_cpu).collect::<Vec<_>>()) else { return };
    // Each byte takes 1/per_cpu seconds of the stream's CPU without netwatch.
    let expected = |ns: f64| {
        let ns_per_byte = ns / cost.bytes as f64;
        format!(
            "{:.3} ({:.2} ms per GiB)",
            1.0 / (1.0 + ns_per_byte * 1e-9 * without.median),
            ns_per_byte * 1.073_741_824e3
        )
    };
    // At most two runs per packet (the egress program runs less often):
    // a bound that other traffic cannot disturb.
    section.row("  expected ratio, at least", expected(ns_per_run * 2.0 * cost.packets as f64));
    // Subtracting the idle windows is closer, when other traffic is small
    // beside the stream; when it is not, the difference is mostly noise.
    if cost.idle_runs * 4 < cost.runs {
        section.row("  expected, idle windows subtracted", expected(cost.ns.saturating_sub(cost.idle_ns) as f64));
    } else {
        section.row("  expected, idle windows subtracted", "other traffic too heavy to subtract");
    }
}

fn gbit(bytes_per_second: f64) -> String {
    format!("{:.2} Gbit/s", bytes_per_second * 8.0 / 1e9)
}

/// Full-rate churn for `ctx.seconds` under netwatch, counters on or off;
/// the churn's connection rate.
fn churn(ctx: &Ctx, counters: bool) -> Result<f64> {
    let running = counting_agent(ctx, counters, None)?;
    let churn = peer::churn(ctx, None);
    running.agent.stop()?;
    Ok(churn?.rate)
}
