//! (b) Full-rate churn with `netwatch events --json` tracing it: what
//! tracing costs the traced workload, and whether every connection is seen.

use anyhow::Result;

use super::{
    agent::Agent,
    pairs, peer,
    report::Section,
    traced::{self, rate, Load},
    Ctx,
};

pub const TITLE: &str = "with netwatch: full-rate churn, `netwatch events --json`";
/// Traced rate over untraced rate.
const RATIO_TARGET: f64 = 0.9;
/// Alternating runs for the drift-proof ratio (see `pairs`).
const PAIRS: usize = 6;
const PAIR_SECONDS: u64 = 2;

pub fn run(ctx: &Ctx, baseline_rate: Option<f64>, section: &mut Section) -> Result<()> {
    let run = traced::run(ctx, Load::default())?;
    run.report_delivery(section)?;
    let with = run.churn.rate;
    match baseline_rate {
        Some(without) if without > 0.0 => {
            section.row("rate without / with", format!("{} / {}", rate(without), rate(with)));
            let ratio = with / without;
            section.check("rate ratio", format!("{ratio:.2}"), &format!(">= {RATIO_TARGET}"), ratio >= RATIO_TARGET);
        }
        _ => section.row("rate with (no baseline to compare)", rate(with)),
    }
    run.report_cpu(section);
    run.report_latency(section)?;
    // The single long run of each side above measures the machine's drift
    // as much as netwatch; alternating short runs cancel it.
    let short = Ctx { netwatch: ctx.netwatch.clone(), peer: ctx.peer.clone(), seconds: PAIR_SECONDS };
    let alone = || Ok(peer::churn(&short, None)?.rate);
    let traced = || {
        let agent = Agent::start(&ctx.netwatch)?;
        let churn = peer::churn(&short, None);
        agent.stop()?;
        Ok(churn?.rate)
    };
    let p = pairs::run(PAIRS, alone, traced)?;
    p.report(section, &format!("churn, {PAIR_SECONDS} s runs, alone / traced"), Some(RATIO_TARGET))
}
