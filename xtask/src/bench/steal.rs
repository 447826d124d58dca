//! How much CPU time the hypervisor took from this VM while the bench ran
//! (`steal` in /proc/stat). On a shared host it changes connection rates by
//! tens of percent between runs, so the overhead figures say how much there
//! was and rest on the time the machine really had (see `peer::Churn`).

use anyhow::{Context as _, Result};

/// Cumulative CPU time of all CPUs, in clock ticks: (steal, total).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ticks {
    steal: u64,
    total: u64,
}

impl Ticks {
    pub fn now() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse(&text).context("/proc/stat has no aggregate `cpu` line")
    }

    /// Share of CPU time stolen since `earlier`.
    pub fn stolen_since(&self, earlier: &Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.steal.saturating_sub(earlier.steal) as f64 / total as f64
    }
}

fn parse(stat: &str) -> Option<Ticks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice],
    // where guest time is already counted in user.
    Some(Ticks { steal: *fields.get(7)?, total: fields.iter().take(8).sum() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_share_between_two_readings() {
        let a = parse("cpu  100 0 50 800 0 0 10 40 0 0\ncpu0 1 2 3\n").unwrap();
        let b = parse("cpu  150 0 70 900 0 0 10 70 5 0\n").unwrap();
        assert_eq!(a, Ticks { steal: 40, total: 1000 });
        assert!((b.stolen_since(&a) - 30.0 / 200.0).abs() < 1e-9);
        assert!(parse("intr 1 2\n").is_none());
    }
}
