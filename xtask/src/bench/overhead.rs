//! (b) Full-rate churn with `netwatch events --json` tracing it: what
//! tracing costs the traced workload, and whether every connection is seen.

use anyhow::Result;

use super::{
    agent::Agent,
    pairs::{self, Pairs},
    peer::{self, Churn},
    report::Section,
    steal,
    traced::{self, rate, Load},
    Ctx,
};

pub const TITLE: &str = "with netwatch: full-rate churn, `netwatch events --json`";
/// Traced rate over untraced rate.
const RATIO_TARGET: f64 = 0.9;
/// Alternating runs for the drift-proof ratio (see `pairs`).
const PAIRS: usize = 8;
const PAIR_SECONDS: u64 = 2;

/// Rates are compared per second the machine gave the generator (run time
/// plus run-queue wait, see `peer::Churn::given_rate`): on a shared host the
/// hypervisor takes 10-50% of this VM's CPU time, varying from second to
/// second, and the wall-clock rate measures that as much as netwatch. What
/// netwatch costs the workload stays in: its programs run in the
/// generator's time, and its agent, when it takes the generator's CPU,
/// shows up as waiting. The wall-clock figures are shown beside, with the
/// steal.
pub fn run(ctx: &Ctx, baseline: Option<&Churn>, section: &mut Section) -> Result<()> {
    let run = traced::run(ctx, Load::default())?;
    run.report_delivery(section)?;
    let with = &run.churn;
    match baseline {
        Some(without) if without.rate > 0.0 => {
            section.row("rate without / with (wall clock)", format!("{} / {}", rate(without.rate), rate(with.rate)));
            let wall = with.rate / without.rate;
            match (without.given_rate(), with.given_rate()) {
                (Some(a), Some(b)) => {
                    section.row("rate ratio (wall clock)", format!("{wall:.2}"));
                    section.row("rate without / with (per second given)", format!("{} / {}", rate(a), rate(b)));
                    let ratio = b / a;
                    let target = format!(">= {RATIO_TARGET}");
                    section.check(
                        "rate ratio (per second given)",
                        format!("{ratio:.2}"),
                        &target,
                        ratio >= RATIO_TARGET,
                    );
                }
                _ => section.check(
                    "rate ratio",
                    format!("{wall:.2}"),
                    &format!(">= {RATIO_TARGET}"),
                    wall >= RATIO_TARGET,
                ),
            }
        }
        _ => section.row("rate with (no baseline to compare)", rate(with.rate)),
    }
    run.report_cpu(section);
    run.report_latency(section)?;
    // The single long run of each side above measures the machine's drift
    // as much as netwatch; alternating short runs cancel it.
    let short = Ctx { netwatch: ctx.netwatch.clone(), peer: ctx.peer.clone(), seconds: PAIR_SECONDS };
    let alone = || peer::churn(&short, None);
    let traced = || {
        let agent = Agent::start(&ctx.netwatch)?;
        let churn = peer::churn(&short, None);
        agent.stop()?;
        churn
    };
    let before = steal::Ticks::now()?;
    let (without, with) = pairs::runs(PAIRS, alone, traced)?;
    let stolen = steal::Ticks::now()?.stolen_since(&before);
    section.row("hypervisor steal during the pairs", format!("{:.0}% of CPU time", stolen * 100.0));
    let what = format!("churn, {PAIR_SECONDS} s runs, alone / traced");
    let wall = |runs: &[Churn]| runs.iter().map(|c| c.rate).collect::<Vec<_>>();
    let given = |runs: &[Churn]| runs.iter().map(Churn::given_rate).collect::<Option<Vec<_>>>();
    match (given(&without), given(&with)) {
        (Some(a), Some(b)) => {
            Pairs::of(wall(&without), wall(&with))?.report(section, &format!("{what}, wall clock"), None)?;
            Pairs::of(a, b)?.report(section, &format!("{what}, per second given"), Some(RATIO_TARGET))
        }
        _ => Pairs::of(wall(&without), wall(&with))?.report(section, &what, Some(RATIO_TARGET)),
    }
}
