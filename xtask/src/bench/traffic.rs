//! The traffic counters' cost: a bulk loopback TCP stream (every packet
//! passes both cgroup_skb programs) with and without netwatch in the same
//! run, and the churn generator with the counters on and off
//! (`NETWATCH_NO_TRAFFIC=1`), each under `netwatch events --json`.

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use super::{agent::Agent, peer, report::Section, traced::rate, Ctx};
use crate::cmd;

pub const TITLE: &str = "traffic counters: bulk loopback stream and churn, counting on vs off";
/// Throughput with netwatch over throughput without.
const RATIO_TARGET: f64 = 0.95;
/// Per bulk run: several GB, a couple of seconds at loopback speed.
const BULK_BYTES: u64 = 2 << 30;
/// Alternating rounds; the best of each side is kept, since noise from
/// other work on a shared machine only ever slows a run down (and on a
/// 2-CPU machine shared with other builds it is large: the programs' own
/// cost, measured by the kernel below, is the steadier figure).
const ROUNDS: usize = 8;
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// Churn runs per side, alternating, best kept.
const CHURN_ROUNDS: usize = 2;
const BULK_LIMIT: Duration = Duration::from_secs(120);

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let (mut without, mut with) = (0.0f64, 0.0f64);
    for _ in 0..ROUNDS {
        without = without.max(bulk(ctx)?);
        let agent = Agent::start(&ctx.netwatch)?;
        let traced = bulk(ctx);
        agent.stop()?;
        with = with.max(traced?);
    }
    // Apart from the comparison: timing every program run costs time too.
    let (runs, ns) = program_cost(ctx)?;
    let gib = BULK_BYTES >> 30;
    section
        .row(&format!("bulk {gib} GiB over 127.0.0.1, without / with"), format!("{} / {}", gbit(without), gbit(with)));
    let ratio = with / without;
    section.check("bulk throughput ratio", format!("{ratio:.3}"), &format!(">= {RATIO_TARGET}"), ratio >= RATIO_TARGET);
    if runs > 0 {
        let per_gib = ns as f64 / 1e6 / (BULK_BYTES as f64 / f64::from(1u32 << 30));
        section.row(
            "counting programs (kernel's bpf_stats)",
            format!("{} runs, {:.0} ns each, {per_gib:.1} ms CPU per GiB streamed", runs, ns as f64 / runs as f64),
        );
    }

    let (mut off, mut on) = (0.0f64, 0.0f64);
    for _ in 0..CHURN_ROUNDS {
        off = off.max(churn(ctx, &[(NO_TRAFFIC, "1")])?);
        on = on.max(churn(ctx, &[])?);
    }
    section.row("churn under netwatch, counters off / on", format!("{} / {}", rate(off), rate(on)));
    section.row("churn ratio on / off", format!("{:.3}", on / off));
    Ok(())
}

const NO_TRAFFIC: &str = "NETWATCH_NO_TRAFFIC";

/// `kernel.bpf_stats_enabled` on while alive, back to what it was after:
/// the kernel then times every program run.
struct BpfStats(String);

impl BpfStats {
    fn enable() -> Result<Self> {
        let old = std::fs::read_to_string(BPF_STATS).with_context(|| format!("reading {BPF_STATS}"))?;
        std::fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(Self(old.trim().to_owned()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.0);
    }
}

/// One bulk run under netwatch with the kernel timing every program run:
/// runs and nanoseconds of netwatch's cgroup_skb programs.
fn program_cost(ctx: &Ctx) -> Result<(u64, u64)> {
    let others = skb_programs()?;
    let agent = Agent::start(&ctx.netwatch)?;
    let stats = BpfStats::enable()?;
    let traced = bulk(ctx);
    let now = skb_programs();
    drop(stats);
    agent.stop()?;
    traced?;
    // Ours are the ones that were not there before it started.
    Ok(now?.iter().filter(|p| !others.iter().any(|o| o.id == p.id)).fold((0, 0), |(r, n), p| (r + p.runs, n + p.ns)))
}

struct Program {
    id: u32,
    runs: u64,
    ns: u64,
}

/// Every loaded `nw_skb_*` program with its run count and time, from
/// `bpftool prog show` (one block per program, starting `ID: type`).
fn skb_programs() -> Result<Vec<Program>> {
    let out = Command::new("bpftool").args(["prog", "show"]).output().context("running bpftool prog show")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.split(':').next().is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())) {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push(' ');
        }
    }
    Ok(blocks
        .iter()
        .filter(|b| b.contains("name nw_skb_"))
        .filter_map(|b| {
            let field = |key: &str| -> u64 {
                let mut words = b.split_whitespace();
                words.find(|w| *w == key).and_then(|_| words.next()).and_then(|v| v.parse().ok()).unwrap_or(0)
            };
            let id = b.split(':').next()?.parse().ok()?;
            Some(Program { id, runs: field("run_cnt"), ns: field("run_time_ns") })
        })
        .collect())
}
fn gbit(bytes_per_second: f64) -> String {
    format!("{:.2} Gbit/s", bytes_per_second * 8.0 / 1e9)
}

/// One `nw-peer bulk` run; its rate in bytes per second.
fn bulk(ctx: &Ctx) -> Result<f64> {
    let mut command = Command::new(&ctx.peer);
    command.args(["bulk", "--bytes", &BULK_BYTES.to_string()]).stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
    let Some(status) = cmd::wait_timeout(&mut child, BULK_LIMIT)? else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("`{}` still running after {} s: killed", cmd::describe(&command), BULK_LIMIT.as_secs());
    };
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).context("reading nw-peer's output")?;
    }
    cmd::check(&command, status)?;
    let fields = peer::flat_json(stdout.trim()).with_context(|| format!("unexpected nw-peer output {stdout:?}"))?;
    fields.get("rate").context("no `rate` in nw-peer's output")?.parse().context("`rate` is not a number")
}

/// Full-rate churn for `ctx.seconds` under `netwatch events --json` run
/// with `env`; the churn's connection rate.
fn churn(ctx: &Ctx, env: &[(&str, &str)]) -> Result<f64> {
    let agent = Agent::start_env(&ctx.netwatch, env)?;
    let churn = peer::churn(ctx, None);
    agent.stop()?;
    Ok(churn?.rate)
}
