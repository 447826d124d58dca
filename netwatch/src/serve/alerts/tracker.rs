//! When an alert is said: on entering its condition, again each window
//! while it holds, and once more (cleared) on leaving it. Without this a
//! condition checked every second would fire every second.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::Finding;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Firing,
    /// Still holding after a window: said again with the current figure.
    Repeat,
    Cleared,
}

#[derive(Debug, Default)]
pub struct Tracker {
    /// Active keys: when last said, and the finding then (for the clear).
    active: HashMap<String, (Instant, Finding)>,
}

impl Tracker {
    /// `over`: the findings at or above the threshold now; `below`: the
    /// current values of keys under it (for the clear's figure).
    pub fn step(&mut self, over: Vec<Finding>, now: Instant, window: Duration) -> Vec<(Transition, Finding)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for f in over {
            seen.insert(f.key.clone());
            match self.active.get_mut(&f.key) {
                None => {
                    self.active.insert(f.key.clone(), (now, f.clone()));
                    out.push((Transition::Firing, f));
                }
                Some((last, prev)) => {
                    if now.duration_since(*last) >= window {
                        *last = now;
                        *prev = f.clone();
                        out.push((Transition::Repeat, f));
                    }
                }
            }
        }
        let gone = self.active.extract_if(|k, _| !seen.contains(k));
        out.extend(gone.map(|(_, (_, f))| (Transition::Cleared, Finding { value: 0, ..f })));
        out.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        out
    }

    pub fn clear_all(&mut self) {
        self.active.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(key: &str, value: u64) -> Finding {
        Finding { key: key.to_owned(), value, ..Finding::default() }
    }

    #[test]
    fn fires_once_repeats_after_window_clears_on_leaving() {
        let mut t = Tracker::default();
        let w = Duration::from_secs(10);
        let t0 = Instant::now();
        let kinds = |v: Vec<(Transition, Finding)>| v.into_iter().map(|(t, f)| (t, f.key)).collect::<Vec<_>>();
        assert_eq!(kinds(t.step(vec![f("a", 5)], t0, w)), [(Transition::Firing, "a".to_owned())]);
        assert!(t.step(vec![f("a", 6)], t0 + Duration::from_secs(1), w).is_empty());
        assert!(t.step(vec![f("a", 6)], t0 + Duration::from_secs(9), w).is_empty());
        assert_eq!(kinds(t.step(vec![f("a", 7)], t0 + w, w)), [(Transition::Repeat, "a".to_owned())]);
        let out = t.step(vec![f("b", 1)], t0 + w + Duration::from_secs(1), w);
        assert_eq!(kinds(out), [(Transition::Cleared, "a".to_owned()), (Transition::Firing, "b".to_owned())]);
        assert!(t.step(vec![f("b", 1)], t0 + w + Duration::from_secs(2), w).is_empty());
    }
}
