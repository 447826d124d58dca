//! The `PID/Program name` column: netstat.c `prg_cache_load`.
//!
//! netstat walks `/proc` in pid order and keeps the first process found
//! holding each socket inode; the name is argv[0] from `/proc/PID/cmdline`
//! (its basename when it starts with `/`), and `PID/name` is cut to 19
//! bytes (a 20-byte buffer). The `(inode, pid)` pairs come from the seed
//! module's [`socket_pids`] (the socket-file iterator, else a `/proc/*/fd`
//! scan), sorted by inode then pid.

use std::{path::Path, sync::Arc};

use anyhow::Result;
use rustc_hash::FxHashMap;

use crate::seed::socket_pids;

/// netstat's `PROGNAME_WIDTH`: the buffer size, so 19 bytes of text.
pub const PROGNAME_WIDTH: usize = 20;

#[derive(Debug, Default)]
pub struct Programs {
    names: FxHashMap<u64, Arc<[u8]>>,
    /// Some process could not be inspected (not root).
    pub denied: bool,
}

impl Programs {
    /// Scans every process under `proc_root`.
    pub fn load(proc_root: &Path) -> Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        let (pairs, denied) = socket_pids(proc_root, threads)?;
        let cmdline = |pid: u32| std::fs::read(proc_root.join(pid.to_string()).join("cmdline")).ok();
        Ok(Self { denied, ..Self::from_pairs(&pairs, cmdline) })
    }

    /// Builds the map from `(inode, pid)` pairs sorted by inode then pid,
    /// reading each needed command line once.
    pub fn from_pairs(pairs: &[(u64, u32)], mut cmdline: impl FnMut(u32) -> Option<Vec<u8>>) -> Self {
        let mut by_pid: FxHashMap<u32, Option<Arc<[u8]>>> = FxHashMap::default();
        let mut names = FxHashMap::default();
        names.reserve(pairs.len());
        for owners in pairs.chunk_by(|a, b| a.0 == b.0) {
            // A process whose cmdline cannot be read is skipped, as netstat skips it.
            let name = owners.iter().find_map(|&(_, pid)| {
                by_pid.entry(pid).or_insert_with(|| cmdline(pid).map(|c| label(pid, &c).into())).clone()
            });
            if let Some(name) = name {
                names.insert(owners[0].0, name);
            }
        }
        Self { names, denied: false }
    }

    /// The column text for `inode`, `-` when no process was found.
    pub fn get(&self, inode: u64) -> &[u8] {
        self.names.get(&inode).map_or(b"-", |name| name)
    }

    /// netstat's warnings on stderr when not every process could be read.
    pub fn warn(&self) {
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        // netstat warns when opening some /proc/PID/fd failed with EACCES,
        // which root never sees; the scan's count also covers other reads.
        if !self.denied || euid == 0 {
            return;
        }
        if self.names.is_empty() {
            eprintln!("(No info could be read for \"-p\": geteuid()={euid} but you should be root.)");
        } else {
            eprintln!(
                "(Not all processes could be identified, non-owned process info\n will not be shown, you would have \
                 to be root to see it all.)"
            );
        }
    }
}

/// `PID/argv0` as netstat builds it, cut to 19 bytes.
pub fn label(pid: u32, cmdline: &[u8]) -> Vec<u8> {
    // netstat reads at most 511 bytes and uses them as a C string.
    let buf = &cmdline[..cmdline.len().min(511)];
    let argv0 = buf.split(|&b| b == 0).next().unwrap_or_default();
    let name = match argv0.first() {
        Some(b'/') => argv0.rsplit(|&b| b == b'/').next().unwrap_or_default(),
        _ => argv0,
    };
    let mut out = format!("{pid}/").into_bytes();
    out.extend_from_slice(name);
    out.truncate(PROGNAME_WIDTH - 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_netstat() {
        assert_eq!(label(42, b"/usr/sbin/sshd\0-D\0"), b"42/sshd");
        assert_eq!(label(7, b"sshd: root@pts/0\0"), b"7/sshd: root@pts/0");
        assert_eq!(label(1234, b"/usr/lib/systemd/systemd-resolved\0"), b"1234/systemd-resolv");
        assert_eq!(label(3, b""), b"3/");
        assert_eq!(label(5, b"python3 /srv/app.py --with args"), b"5/python3 /srv/app.");
    }

    #[test]
    fn first_readable_owner_by_pid_wins() {
        let pairs = [(10, 100), (10, 200), (11, 200), (11, 300), (12, 400)];
        let progs = Programs::from_pairs(&pairs, |pid| match pid {
            100 => Some(b"/bin/nc\0".to_vec()),
            200 => Some(b"srv\0".to_vec()),
            _ => None,
        });
        assert_eq!(progs.get(10), b"100/nc");
        assert_eq!(progs.get(11), b"200/srv");
        assert_eq!(progs.get(12), b"-");
        assert_eq!(progs.get(13), b"-");
    }
}
