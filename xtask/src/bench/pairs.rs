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
pub fn run(n: usize, without: impl FnMut() -> Result<f64>, with: impl FnMut() -> Result<f64>) -> Result<Pairs> {
    let (without, with) = runs(n, without, with)?;
    Pairs::of(without, with)
}

/// Runs `n` bracketed pairs and keeps every run's result, for figures
/// that need more than one rate per run: `n + 1` without, `n` with.
pub fn runs<T>(
    n: usize,
    mut without: impl FnMut() -> Result<T>,
    mut with: impl FnMut() -> Result<T>,
) -> Result<(Vec<T>, Vec<T>)> {
    let mut out = (vec![without()?], Vec::new());
    for _ in 0..n {
        out.1.push(with()?);
        out.0.push(without()?);
    }
    Ok(out)
}

/// Several variants measured against one baseline, interleaved so that
/// drift reaches them all alike: `rounds` times each arm in turn, every run
/// bracketed by runs without (`without, a, without, b, without, a, ...`).
/// One [`Pairs`] per arm, in order.
pub fn rotate(
    rounds: usize,
    mut without: impl FnMut() -> Result<f64>,
    arms: &mut [&mut dyn FnMut() -> Result<f64>],
) -> Result<Vec<Pairs>> {
    let mut bracketed: Vec<Vec<(f64, f64, f64)>> = arms.iter().map(|_| Vec::with_capacity(rounds)).collect();
    let mut before = without()?;
    for _ in 0..rounds {
        for (arm, runs) in arms.iter_mut().zip(&mut bracketed) {
            let with = arm()?;
            let after = without()?;
            runs.push((before, with, after));
            before = after;
        }
    }
    Ok(bracketed.into_iter().map(Pairs::bracketed).collect())
}

impl Pairs {
    /// Pairs from `(before, with, after)` runs, each run without used as is
    /// (they may be shared with other arms: see [`rotate`]).
    fn bracketed(runs: Vec<(f64, f64, f64)>) -> Self {
        let ratios = runs.iter().map(|(b, w, a)| w / ((b + a) / 2.0)).collect();
        let mut without: Vec<f64> = runs.iter().map(|r| r.0).collect();
        without.extend(runs.last().map(|r| r.2));
        Self { without, with: runs.iter().map(|r| r.1).collect(), ratios }
    }

    /// Pairs from bracketed rates: `without` has one more than `with`.
    pub fn of(without: Vec<f64>, with: Vec<f64>) -> Result<Self> {
        if without.len() != with.len() + 1 {
            anyhow::bail!("{} runs without for {} with: not bracketed", without.len(), with.len());
        }
        let ratios =
            with.iter().zip(without.windows(2)).map(|(w, around)| w / ((around[0] + around[1]) / 2.0)).collect();
        Ok(Self { without, with, ratios })
    }

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

#[cfg(test)]
mod tests {
    use super::Pairs;

    #[test]
    fn each_with_is_divided_by_the_mean_of_its_neighbours() {
        let p = Pairs::of(vec![100.0, 300.0, 200.0], vec![180.0, 125.0]).unwrap();
        assert_eq!(p.ratios, vec![0.9, 0.5]);
        assert!(Pairs::of(vec![1.0, 2.0], vec![1.0, 2.0]).is_err());
    }

    #[test]
    fn rotated_arms_each_get_the_runs_on_either_side() {
        let mut rates = [100.0, 90.0, 300.0, 30.0, 200.0, 180.0, 100.0, 10.0, 300.0].into_iter();
        let mut next = || Ok(rates.next().unwrap());
        let next = std::cell::RefCell::new(&mut next);
        let without = || (*next.borrow_mut())();
        let (mut a, mut b) = (|| (*next.borrow_mut())(), || (*next.borrow_mut())());
        let arms = super::rotate(2, without, &mut [&mut a, &mut b]).unwrap();
        // without 100, a 90, without 300, b 30, without 200, a 180, without 100, b 10, without 300
        assert_eq!(arms[0].ratios, vec![90.0 / 200.0, 180.0 / 150.0]);
        assert_eq!(arms[1].ratios, vec![30.0 / 250.0, 10.0 / 200.0]);
        assert_eq!(arms[0].without, vec![100.0, 200.0, 100.0]);
    }
}
