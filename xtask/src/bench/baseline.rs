//! (a) The peer alone: the connection rate this machine reaches untraced,
//! which the traced scenarios are compared against.

use anyhow::Result;

use super::{peer, peer::Churn, report::Section, traced::rate, Ctx};

pub const TITLE: &str = "baseline: nw-peer churn, no tracing";

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<Churn> {
    let churn = peer::churn(ctx, None)?;
    section.row("connections made", churn.connections);
    section.row("rate", rate(churn.rate));
    Ok(churn)
}
