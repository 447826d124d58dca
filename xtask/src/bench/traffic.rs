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
const BULK_BYTES: u64 = 4 << 30;
/// Alternating rounds; the best of each side is kept, since noise from
/// other work on a shared machine only ever slows a run down.
const ROUNDS: usize = 2;
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
    let gib = BULK_BYTES >> 30;
    section
        .row(&format!("bulk {gib} GiB over 127.0.0.1, without / with"), format!("{} / {}", gbit(without), gbit(with)));
    let ratio = with / without;
    section.check("bulk throughput ratio", format!("{ratio:.3}"), &format!(">= {RATIO_TARGET}"), ratio >= RATIO_TARGET);

    let off = churn(ctx, &[(NO_TRAFFIC, "1")])?;
    let on = churn(ctx, &[])?;
    section.row("churn under netwatch, counters off / on", format!("{} / {}", rate(off), rate(on)));
    section.row("churn ratio on / off", format!("{:.3}", on / off));
    Ok(())
}

const NO_TRAFFIC: &str = "NETWATCH_NO_TRAFFIC";

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
