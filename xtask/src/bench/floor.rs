//! (b') The floor under the full-rate figure: what the kernel charges the
//! churn generator for calling netwatch's hooks at all, before they do
//! anything (`NETWATCH_BENCH_HOLLOW`: the programs stay attached and
//! return at once).
//!
//! Three arms against one baseline, interleaved ([`pairs::rotate`]):
//! - every program hollow: the cost of the attachments themselves
//!   (tracepoint and cgroup dispatch on each of a connection's 10 state
//!   transitions, 2 teardowns, 2 releases and its accept);
//! - `nw_set_state` hollow, every other program as shipped;
//! - as shipped.
//!
//! The rows translate each arm's ratio into time per connection, and say
//! how much of the target's budget is left for `nw_set_state`'s body once
//! everything else is paid for: the most any body on that hook can cost.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::{
    agent::Agent,
    pairs::{self, Pairs},
    peer,
    report::Section,
    spread::Spread,
    steal, Ctx,
};

pub const TITLE: &str = "the floor: full-rate churn with netwatch's programs attached but hollow";
/// As in `overhead`.
const RATIO_TARGET: f64 = 0.9;
/// Ten: with six, single disturbed runs on a noisy host moved the medians by 5%.
const ROUNDS: usize = 10;
const RUN_SECONDS: u64 = 2;
/// Read by netwatch (`probe::hollow`).
const HOLLOW_ENV: &str = "NETWATCH_BENCH_HOLLOW";
/// State transitions per connection of `nw-peer churn` (connect, accept,
/// close on both ends: five each side).
const TRANSITIONS: f64 = 10.0;

/// The churn's rate per second it was given the CPU.
pub fn given(churn: peer::Churn) -> Result<f64> {
    churn.given_rate().context("the peer could not say how long it was given the CPU")
}

/// One run of the churn under `netwatch events --json` of `binary`, with
/// `env`: its rate per second given.
pub fn traced_rate(short: &Ctx, binary: &Path, env: &[(&str, &str)]) -> Result<f64> {
    let agent = Agent::start_on(binary, &["events", "--json"], env, None)?;
    let churn = peer::churn(short, None);
    agent.stop()?;
    given(churn?)
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let short = Ctx { netwatch: ctx.netwatch.clone(), peer: ctx.peer.clone(), seconds: RUN_SECONDS };
    let traced = |hollow: &'static str| {
        let short = &short;
        move || traced_rate(short, &short.netwatch, &[(HOLLOW_ENV, hollow)])
    };
    let (mut all, mut set_state, mut shipped) = (traced("all"), traced("set_state"), traced("none"));
    let before = steal::Ticks::now()?;
    let arms =
        pairs::rotate(ROUNDS, || given(peer::churn(&short, None)?), &mut [&mut all, &mut set_state, &mut shipped])?;
    let stolen = steal::Ticks::now()?.stolen_since(&before);
    section.row("hypervisor steal during the runs", format!("{:.0}% of CPU time", stolen * 100.0));
    let [all, set_state, shipped] = <[Pairs; 3]>::try_from(arms).ok().context("one result per arm")?;
    let what = format!("{RUN_SECONDS} s runs, alone / traced, per second given");
    all.report(section, &format!("every program hollow, {what}"), None)?;
    set_state.report(section, &format!("nw_set_state hollow, the rest as shipped, {what}"), None)?;
    shipped.report(section, &format!("as shipped, {what}"), None)?;

    // Each ratio r as time added per connection: (1/r - 1) x the untraced
    // time per connection.
    let alone = Spread::of(&shipped.without).context("no untraced runs")?.median;
    let per_connection = 1e9 / alone;
    let added = |p: &Pairs| Spread::of(&p.ratios).map(|r| (1.0 / r.median - 1.0) * per_connection);
    let (Some(hooks), Some(rest), Some(full)) = (added(&all), added(&set_state), added(&shipped)) else {
        anyhow::bail!("no ratios measured");
    };
    let budget = (1.0 / RATIO_TARGET - 1.0) * per_connection;
    section.row("untraced: ns per connection", format!("{per_connection:.0}"));
    section.row(
        "added per connection, ns: hooks alone / all but nw_set_state's body / as shipped",
        format!("{hooks:.0} / {rest:.0} / {full:.0}"),
    );
    section.row(&format!("budget per connection at >= {RATIO_TARGET}, ns"), format!("{budget:.0}"));
    section.row(
        "left for nw_set_state's body: ns per connection; per transition",
        format!("{:.0}; {:.0}", budget - rest, (budget - rest) / TRANSITIONS),
    );
    section.row("nw_set_state's body as shipped: ns per transition", format!("{:.0}", (full - rest) / TRANSITIONS));
    Ok(())
}
