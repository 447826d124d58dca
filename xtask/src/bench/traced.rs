//! The shape shared by every scenario that runs netwatch: start it, wait
//! until it traces, run the churn, read its CPU time, stop it, keep its summary.

use std::{thread, time::Duration};

use anyhow::Result;

use super::{agent::Agent, agent::Summary, burner::Burner, peer, peer::Churn, report::Section, Ctx};

/// Lets netwatch drain what the churn left in its ring buffer, so the CPU
/// reading covers all the work for these connections.
const SETTLE: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Default)]
pub struct Load {
    /// Paced connections per second; `None` is as fast as the peer can go.
    pub rate: Option<u32>,
    /// Busy-loop on every core while the churn runs.
    pub saturate: bool,
}

pub struct TracedRun {
    pub churn: Churn,
    pub summary: Summary,
    /// netwatch's CPU time from ready to stop; start-up (BTF, loading) is excluded.
    pub cpu_seconds: f64,
}

pub fn run(ctx: &Ctx, load: Load) -> Result<TracedRun> {
    let agent = Agent::start(&ctx.netwatch)?;
    let cpu_at_ready = agent.cpu_seconds()?;
    let burner = load.saturate.then(Burner::start);
    let churn = peer::churn(ctx, load.rate);
    drop(burner);
    let churn = churn?;
    thread::sleep(SETTLE);
    let cpu_seconds = agent.cpu_seconds()? - cpu_at_ready;
    let summary = agent.stop()?;
    Ok(TracedRun { churn, summary, cpu_seconds })
}

impl TracedRun {
    /// Connections netwatch reported from both ends.
    pub fn seen(&self) -> Result<u64> {
        Ok(self.summary.get("connects")?.min(self.summary.get("accepts")?))
    }

    /// Whether netwatch saw every connection: made, seen, lost.
    pub fn report_delivery(&self, section: &mut Section) -> Result<()> {
        let made = self.churn.connections;
        let seen = self.seen()?;
        let lost = self.summary.get("lost")?;
        section.row("connections made", made);
        section.check("connections seen", format!("{seen} ({})", percent(seen, made)), "100%", seen >= made);
        section.check("events lost", lost, "0", lost == 0);
        Ok(())
    }

    pub fn report_cpu(&self, section: &mut Section) {
        section.row("netwatch CPU per 10k connections", format!("{:.3} s", self.cpu_per_10k()));
    }

    pub fn report_latency(&self, section: &mut Section) -> Result<()> {
        let (p50, p99, max) = self.latency_us()?;
        section.row("latency p50 / p99 / max", format!("{p50} / {p99} / {max} us"));
        Ok(())
    }

    pub fn latency_us(&self) -> Result<(u64, u64, u64)> {
        let get = |key| self.summary.get(key);
        Ok((get("latency_p50_us")?, get("latency_p99_us")?, get("latency_max_us")?))
    }

    fn cpu_per_10k(&self) -> f64 {
        if self.churn.connections == 0 {
            return 0.0;
        }
        self.cpu_seconds * 10_000.0 / self.churn.connections as f64
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

pub fn rate(per_second: f64) -> String {
    format!("{per_second:.0}/s")
}
