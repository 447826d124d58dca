//! Median and spread of a handful of samples: the figures a noisy machine
//! allows one to trust (a mean would be dragged by one disturbed run).

/// Sorted copy of the samples; NaNs are dropped (they compare with nothing).
fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `q` quantile (0..=1), linearly interpolated between neighbours.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

#[derive(Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(samples: &[f64]) -> Option<Spread> {
        let s = sorted(samples);
        Some(Spread {
            min: *s.first()?,
            q1: quantile(&s, 0.25)?,
            median: quantile(&s, 0.5)?,
            q3: quantile(&s, 0.75)?,
            max: *s.last()?,
        })
    }
}

/// A distribution-free 95% confidence interval for the median: the k-th
/// smallest and k-th largest samples, k the largest rank for which
/// P(Binomial(n, 1/2) < k) <= 2.5%. Needs no assumption about the noise's
/// shape, which on a shared machine is anything but normal. `None` below 6
/// samples, where even the extremes do not reach 95%.
pub fn median_ci95(samples: &[f64]) -> Option<(f64, f64)> {
    let s = sorted(samples);
    let n = s.len();
    // P(X <= j) for X ~ Binomial(n, 1/2), accumulated term by term.
    let mut term = 0.5f64.powi(i32::try_from(n).ok()?);
    let mut below = 0.0;
    let mut k = 0;
    for j in 0..n {
        below += term;
        if below > 0.025 {
            break;
        }
        k = j + 1;
        term *= (n - j) as f64 / (j + 1) as f64;
    }
    (k >= 1).then(|| (s[k - 1], s[n - k]))
}

#[cfg(test)]
mod tests {
    use super::{median_ci95, Spread};

    #[test]
    fn median_interval_ranks() {
        // n = 12: P(X <= 2) = 0.019, P(X <= 3) = 0.073, so the 3rd smallest and 3rd largest.
        let v: Vec<f64> = (1..=12).map(f64::from).collect();
        assert_eq!(median_ci95(&v), Some((3.0, 10.0)));
        // n = 6: P(X = 0) = 0.016, the extremes; n = 5: 0.031, none.
        assert_eq!(median_ci95(&[6.0, 1.0, 2.0, 3.0, 4.0, 5.0]), Some((1.0, 6.0)));
        assert_eq!(median_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        // n = 20: P(X <= 5) = 0.021, P(X <= 6) = 0.058: 6th smallest and 6th largest.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(median_ci95(&v), Some((6.0, 15.0)));
    }

    #[test]
    fn odd_and_even_counts() {
        let s = Spread::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(s, Spread { min: 1.0, q1: 2.0, median: 3.0, q3: 4.0, max: 5.0 });
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.min, s.q1, s.median, s.q3, s.max), (1.0, 1.75, 2.5, 3.25, 4.0));
    }

    #[test]
    fn empty_and_nan() {
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[f64::NAN]).is_none());
        assert_eq!(Spread::of(&[f64::NAN, 2.0]).unwrap().median, 2.0);
    }
}
