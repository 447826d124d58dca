//! Bracketed pairs: `without, with, without, with, ..., without`, each
//! `with` divided by the mean of the `without` runs on either side. On a
//! machine whose load drifts (other builds, other tests), one long run of
//! each side measures the drift as much as the cost; alternating short runs
//! cancel it, and the median of the pair ratios, with its distribution-free
//! interval, says how far the figure can be trusted.

use anyhow::{Context as _, Result};

use super::{
    report::Section,
    spread::{median_ci95, Spread},
    traced::rate,
};

pub struct Pairs {
    pub without: Vec<f64>,
    pub with: Vec<f64>,
    pub ratios: Vec<f64>,
}

/// Runs `n` bracketed pairs; each closure returns one run's rate.
pub fn run(n: usize, mut without: impl FnMut() -> Result<f64>, mut with: impl FnMut() -> Result<f64>) -> Result<Pairs> {
    let mut p = Pairs { without: vec![without()?], with: Vec::new(), ratios: Vec::new() };
    for _ in 0..n {
        let w = with()?;
        let after = without()?;
        let before = *p.without.last().context("no run before the pair")?;
        p.ratios.push(w / ((before + after) / 2.0));
        p.with.push(w);
        p.without.push(after);
    }
    Ok(p)
}

impl Pairs {
    /// Rows: the median rates of each side, then the median ratio, checked
    /// against `target` when one is given, with its spread and interval.
    pub fn report(&self, section: &mut Section, what: &str, target: Option<f64>) -> Result<()> {
        let median = |v: &[f64]| Spread::of(v).map_or(0.0, |s| s.median);
        section.row(
            &format!("{what}: without / with (medians)"),
            format!("{} / {}", rate(median(&self.without)), rate(median(&self.with))),
        );
        let r = Spread::of(&self.ratios).context("no pairs measured")?;
        let label = format!("{what}: ratio, median of {} pairs", self.ratios.len());
        match target {
            Some(t) => section.check(&label, format!("{:.3}", r.median), &format!(">= {t}"), r.median >= t),
            None => section.row(&label, format!("{:.3}", r.median)),
        }
        let interval = median_ci95(&self.ratios).map_or("too few pairs".into(), |(lo, hi)| format!("{lo:.3}..{hi:.3}"));
        section.row("  spread; 95% interval of median", format!("min {:.3} max {:.3}; {interval}", r.min, r.max));
        Ok(())
    }
}
