//! Process names for owners the kernel reported (docs/design.md#comm-is-a-thread-name):
//! the kernel gives the 16-byte name of the *thread* that made the call
//! ("Socket Thread" for firefox); users and `ss` want the process's. It is
//! read from /proc while the process lives, and the kernel's name is kept
//! for processes already gone.

use rustc_hash::FxHashMap;

use crate::event::Comm;

/// Bound on remembered (pid, thread name) pairs; past it the cache starts
/// over rather than grow with every short-lived process.
const MAX_ENTRIES: usize = 1 << 16;

#[derive(Debug, Default)]
pub struct ProcNames {
    known: FxHashMap<(u32, Comm), Comm>,
}

impl ProcNames {
    /// The process name of `pid`, whose thread the kernel called `thread`.
    /// Keyed by both so that a reused pid running another program is read
    /// again.
    pub fn name(&mut self, pid: u32, thread: Comm) -> Comm {
        if let Some(&n) = self.known.get(&(pid, thread)) {
            return n;
        }
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map_or(thread, |s| Comm::new(s.trim_end_matches('\n')));
        if self.known.len() >= MAX_ENTRIES {
            self.known.clear();
        }
        self.known.insert((pid, thread), name);
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_process_gets_its_proc_name_gone_one_keeps_the_kernels() {
        let mut names = ProcNames::default();
        let me = std::process::id();
        let expected = std::fs::read_to_string("/proc/self/comm").unwrap().trim_end().to_owned();
        assert_eq!(names.name(me, Comm::new("some-thread")).text(), expected);
        // No such pid (pid_max is at most 2^22).
        assert_eq!(names.name(u32::MAX - 1, Comm::new("gone")).text(), "gone");
    }
}
