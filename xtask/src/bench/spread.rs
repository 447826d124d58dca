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

#[cfg(test)]
mod tests {
    use super::Spread;

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
