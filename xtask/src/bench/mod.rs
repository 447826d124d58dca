//! `cargo xtask bench`: how much netwatch costs and whether it keeps up.
//!
//! One run measures every scenario in order, each in its own file, and prints
//! one report with the targets beside the figures. Missing a target is a
//! finding, not a failure: the exit status is non-zero only when a scenario
//! could not run. A new scenario is a new file plus one line in [`bench`].

mod agent;
mod baseline;
mod bulk;
mod burner;
mod churn_rss;
mod compare;
mod cpu;
mod dns;
mod floor;
mod holders;
mod latency;
mod otlp;
mod overhead;
mod pairs;
mod peer;
mod progstats;
mod report;
mod saturated;
mod seeding;
mod serve;
mod spread;
mod steal;
mod traced;
mod traffic;
mod view;
mod watcher;

use std::{os::unix::process::CommandExt as _, path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, setup};
use report::Report;

#[derive(clap::Args)]
pub struct Options {
    /// Length of each measured run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Run only the scenarios whose title contains this text (repeatable;
    /// case-insensitive), e.g. `--only seeding --only overhead`.
    #[arg(long, value_name = "TEXT")]
    only: Vec<String>,
    /// Another netwatch binary (e.g. main's build) to run the full-rate churn
    /// under, interleaved with this build's in the same run ("compare").
    #[arg(long, value_name = "BIN")]
    compare: Option<PathBuf>,
    /// Skip set-up and build: used when bench re-runs itself under sudo.
    #[arg(long, hide = true)]
    measure_only: bool,
}

/// What every scenario needs.
pub struct Ctx {
    pub netwatch: PathBuf,
    /// The load generator from the tests crate (`nw-peer churn`).
    pub peer: PathBuf,
    pub seconds: u64,
}

pub fn bench(options: &Options) -> Result<()> {
    if !options.measure_only {
        setup::setup()?;
        build()?;
        if !cmd::is_root() {
            return reexec_as_root(options);
        }
    }
    let ctx = Ctx::new(options.seconds)?;
    let mut report = Report::new(options.only.clone());
    // First, while no churn's TIME_WAIT rows inflate the tables it times.
    report.scenario_if(&seeding::title(), false, |section| seeding::run(&ctx, section));
    let overhead_wanted = report.selected(overhead::TITLE);
    let baseline = report.scenario_if(baseline::TITLE, overhead_wanted, |section| baseline::run(&ctx, section));
    report.scenario_if(overhead::TITLE, false, |section| overhead::run(&ctx, baseline.as_ref(), section));
    report.scenario_if(floor::TITLE, false, |section| floor::run(&ctx, section));
    if let Some(other) = &options.compare {
        // Asked for by naming the binary, so it runs whatever --only says.
        report.scenario(compare::TITLE, |section| compare::run(&ctx, other, section));
    }
    report.scenario_if(&saturated::title(), false, |section| saturated::run(&ctx, section));
    report.scenario_if(&latency::title(), false, |section| latency::run(&ctx, section));
    report.scenario_if(&churn_rss::title(), false, |section| churn_rss::run(&ctx, section));
    report.scenario_if(&serve::title(), false, |section| serve::run(&ctx, section));
    report.scenario_if(&otlp::title(), false, |section| otlp::run(&ctx, section));
    report.scenario_if(traffic::TITLE, false, |section| traffic::run(&ctx, section));
    report.scenario_if(&view::title(), false, |section| view::run(&ctx, section));
    report.scenario_if(dns::TITLE, false, |section| dns::run(&ctx, section));
    println!("netwatch bench: {} s per run\n\n{report}", ctx.seconds);
    match report.failures() {
        0 => Ok(()),
        failed => bail!("{failed} bench scenario(s) could not run; see the report above"),
    }
}

fn build() -> Result<()> {
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "netwatch"])).context("building netwatch failed")?;
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "netwatch-tests", "--bins"]))
        .context("building the tests crate's binaries (nw-peer) failed")
}

/// netwatch must run as root and its CPU time is read from /proc, so the
/// measuring half runs as root; the build above stayed with this user.
fn reexec_as_root(options: &Options) -> Result<()> {
    let xtask = std::env::current_exe().context("cannot find the running xtask binary to re-run it under sudo")?;
    let mut command: Command = cmd::as_root(&xtask)?;
    command.args(["bench", "--measure-only", "--seconds", &options.seconds.to_string()]);
    for only in &options.only {
        command.args(["--only", only]);
    }
    if let Some(other) = &options.compare {
        command.arg("--compare").arg(other);
    }
    let err = command.exec();
    Err(err).with_context(|| format!("could not start `{}`", cmd::describe(&command)))
}

impl Ctx {
    fn new(seconds: u64) -> Result<Ctx> {
        let netwatch = cmd::release_bin("netwatch");
        let peer = cmd::release_bin("nw-peer");
        if !netwatch.is_file() {
            bail!("{} is missing: run `cargo build --release -p netwatch`", netwatch.display());
        }
        if !peer.is_file() {
            bail!(
                "{} is missing: the netwatch-tests crate must provide the `nw-peer` binary \
                 (`cargo build --release -p netwatch-tests --bins`)",
                peer.display()
            );
        }
        Ok(Ctx { netwatch, peer, seconds })
    }
}
