//! (d) A paced churn, so latency is measured at a known load rather than at
//! whatever rate the machine saturates.

use anyhow::Result;

use super::{
    report::Section,
    traced::{self, rate, Load},
    Ctx,
};

const RATE: u32 = 20_000;
const P99_TARGET_US: u64 = 2_000;

pub fn title() -> String {
    format!("latency: churn paced at {RATE} connections/s, with netwatch")
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let run = traced::run(ctx, Load { rate: Some(RATE), ..Load::default() })?;
    run.report_delivery(section)?;
    section.row("rate reached", format!("{} of {}", rate(run.churn.rate), rate(RATE.into())));
    run.report_cpu(section);
    let (p50, p99, max) = run.latency_us()?;
    section.row("latency p50", format!("{p50} us"));
    section.check("latency p99", format!("{p99} us"), &format!("< {P99_TARGET_US} us"), p99 < P99_TARGET_US);
    section.row("latency max", format!("{max} us"));
    Ok(())
}
