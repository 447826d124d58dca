//! (c) Like the overhead run, with every core busy-looping as well: netwatch
//! must still see every connection and lose nothing when starved of CPU.

use anyhow::Result;

use super::{
    burner,
    report::Section,
    traced::{self, rate, Load},
    Ctx,
};

pub fn title() -> String {
    format!("saturated: as above, plus a busy loop on each of {} cores", burner::cores())
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let run = traced::run(ctx, Load { saturate: true, ..Load::default() })?;
    run.report_delivery(section)?;
    // No ratio: the burners take CPU from the peer too, so it says nothing about netwatch.
    section.row("rate with", rate(run.churn.rate));
    run.report_cpu(section);
    run.report_latency(section)
}
