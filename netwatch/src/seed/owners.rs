//! Socket inode -> owning processes, from one pass over `/proc/*/fd`.
//!
//! `/proc` lists thread-group leaders only, so every pid here is a tgid and
//! threads sharing an fd table are not listed twice. Each fd costs one
//! `readlinkat` (`socket:[INODE]`, about 1.5 µs of kernel time), which is
//! most of the price of the scan, the directory listing the rest (see
//! [`probe_fds`] for how it is skipped); nothing is allocated per fd that is
//! not a socket. The same pass reads `/proc/PID/ns/net` to group processes
//! by network namespace.
//!
//! Processes exit while we look: ENOENT and ESRCH are counted, not errors.
//!
//! [`find_owners`] first asks the kernel instead: the socket-file iterator
//! (`crate::probe::iter`) walks every file table in one pass at a fraction
//! of the cost, and the scan above remains the fallback (not root, no
//! iterator support, or a PID namespace other than the initial one, where
//! the iterator's process ids would not be the ones our `/proc` shows).

use std::{
    collections::{BTreeMap, HashMap},
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result};

use super::{
    sys::{bracketed, cpath, open_dir_at, parse_dec, read_at, readlink_at, Dir},
    Process,
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerStats {
    /// `/proc/PID` directories visited.
    pub processes: usize,
    /// Processes that exited (or turned zombie) while being read.
    pub vanished: usize,
    /// Processes we may not inspect (EACCES/EPERM: not root).
    pub denied: usize,
    /// Other per-process failures (skipped).
    pub failed: usize,
    /// Descriptors closed between listing and readlink.
    pub fds_vanished: usize,
    /// Socket descriptors found (any socket family).
    pub socket_fds: usize,
    /// Owners came from the kernel's socket-file iterator, not `/proc/*/fd`.
    pub via_iterator: bool,
    /// Why the iterator could not be used although it should have been.
    pub iterator_error: Option<String>,
}

impl OwnerStats {
    fn add(&mut self, o: &Self) {
        self.processes += o.processes;
        self.vanished += o.vanished;
        self.denied += o.denied;
        self.failed += o.failed;
        self.fds_vanished += o.fds_vanished;
        self.socket_fds += o.socket_fds;
    }
}

#[derive(Clone, Debug, Default)]
pub struct OwnerScan {
    /// Socket inode -> one entry per (process, fd), ordered by pid then fd
    /// as found.
    pub owners: HashMap<u64, Vec<Process>>,
    /// Network namespace inode -> pids living in it, ascending.
    pub netns: BTreeMap<u32, Vec<u32>>,
    pub stats: OwnerStats,
}

/// Socket owners by the fastest way available: the socket-file iterator
/// when we are root in the initial PID namespace and read the real
/// `/proc`, else [`scan_owners`].
pub fn find_owners(proc_root: &Path, threads: usize) -> Result<OwnerScan> {
    let mut iterator_error = None;
    if proc_root == Path::new("/proc") && iterator_usable() {
        match crate::probe::iter::socket_fds() {
            Ok(fds) => return Ok(from_socket_fds(fds, scan_netns(proc_root)?)),
            Err(e) => iterator_error = Some(format!("{e:#}")),
        }
    }
    let mut scan = scan_owners(proc_root, threads)?;
    scan.stats.iterator_error = iterator_error;
    Ok(scan)
}

/// Which processes hold which socket, as `(inode, pid)` pairs sorted by
/// inode then pid, without duplicates, and whether some process could not
/// be inspected: what netstat's `-p` needs. Cheaper than [`find_owners`]
/// for that: no name or map entry per descriptor to build and free (with
/// 40,000 sockets those were a fifth of `netwatch -tanp`), and no
/// namespace grouping.
pub fn socket_pids(proc_root: &Path, threads: usize) -> Result<(Vec<(u64, u32)>, bool)> {
    let fds = (proc_root == Path::new("/proc") && iterator_usable()).then(crate::probe::iter::socket_fds);
    let (mut pairs, denied): (Vec<(u64, u32)>, _) = match fds {
        Some(Ok(fds)) => (fds.iter().map(|f| (f.inode, f.tgid)).collect(), false),
        _ => {
            let scan = scan_owners(proc_root, threads)?;
            let pairs = scan.owners.iter().flat_map(|(&inode, owners)| owners.iter().map(move |p| (inode, p.pid)));
            (pairs.collect(), scan.stats.denied > 0)
        }
    };
    pairs.sort_unstable();
    pairs.dedup();
    Ok((pairs, denied))
}

/// The iterator needs CAP_BPF/CAP_PERFMON (not uid 0: the systemd unit
/// grants just those to an unprivileged user), a kernel that has not
/// refused it already, and reports host process ids.
pub fn iterator_usable() -> bool {
    /// `PROC_PID_INIT_INO`: the inode of the initial PID namespace.
    const INIT_PID_NS: &str = "pid:[4026531836]";
    !crate::probe::iter::refused()
        && crate::probe::privilege::can_load()
        && std::fs::read_link("/proc/self/ns/pid").is_ok_and(|ns| ns.as_os_str() == INIT_PID_NS)
}

/// A scan from the iterator's records, with `netns` (a [`scan_netns`]
/// result) for the namespace grouping.
fn from_socket_fds(fds: Vec<netwatch_common::SocketFd>, netns: OwnerScan) -> OwnerScan {
    let mut scan = netns;
    scan.stats.via_iterator = true;
    scan.stats.socket_fds = fds.len();
    scan.owners.reserve(fds.len());
    for f in fds {
        let p = Process { pid: f.tgid, comm: crate::socket::Comm(f.comm.0).as_str().into_owned(), fd: f.fd };
        scan.owners.entry(f.inode).or_insert_with(|| Vec::with_capacity(1)).push(p);
    }
    sort_shared(&mut scan.owners);
    scan
}

/// Orders the holders of shared sockets by pid, then fd; most have one owner.
fn sort_shared(owners: &mut HashMap<u64, Vec<Process>>) {
    for owners in owners.values_mut().filter(|o| o.len() > 1) {
        owners.sort_unstable_by_key(|p| (p.pid, p.fd));
    }
}

/// Scans every process under `proc_root` with up to `threads` threads.
pub fn scan_owners(proc_root: &Path, threads: usize) -> Result<OwnerScan> {
    scan(proc_root, threads, true)
}

/// Only groups processes by network namespace (one readlink per process,
/// no descriptors): `owners` stays empty.
pub fn scan_netns(proc_root: &Path) -> Result<OwnerScan> {
    scan(proc_root, 1, false)
}

fn scan(proc_root: &Path, threads: usize, fds: bool) -> Result<OwnerScan> {
    let ctx = || format!("scanning {}", proc_root.display());
    let root_path = CString::new(proc_root.as_os_str().as_bytes()).with_context(ctx)?;
    let root = open_dir_at(libc::AT_FDCWD, &root_path).with_context(ctx)?;
    let pids = list_pids(root.as_raw_fd()).with_context(ctx)?;
    let mode = if fds { Mode::Fds { probe: is_procfs(&root) } } else { Mode::NetnsOnly };

    let next = AtomicUsize::new(0);
    let work = || scan_pids(root.as_raw_fd(), &pids, &next, mode);
    let parts: Vec<Part> = match threads.clamp(1, 16) {
        1 => vec![work()],
        n => std::thread::scope(|s| {
            let handles: Vec<_> = (1..n).map(|_| s.spawn(work)).collect();
            // A thread that panicked counts as one failure.
            let failed = || Part { stats: OwnerStats { failed: 1, ..Default::default() }, ..Default::default() };
            std::iter::once(work()).chain(handles.into_iter().map(|h| h.join().unwrap_or_else(|_| failed()))).collect()
        }),
    };

    let mut scan = OwnerScan::default();
    scan.owners.reserve(parts.iter().map(|p| p.links.len()).sum());
    for part in parts {
        scan.stats.add(&part.stats);
        for (inode, p) in part.links {
            scan.owners.entry(inode).or_insert_with(|| Vec::with_capacity(1)).push(p);
        }
        for (pid, ns) in part.netns {
            scan.netns.entry(ns).or_default().push(pid);
        }
    }
    scan.netns.values_mut().for_each(|pids| pids.sort_unstable());
    sort_shared(&mut scan.owners);
    Ok(scan)
}

fn list_pids(root: RawFd) -> io::Result<Vec<u32>> {
    let mut dir = Dir::open_at(root, c".")?;
    let mut pids = Vec::with_capacity(1024);
    while let Some(name) = dir.next_name() {
        if let Some(pid) = parse_dec(name?.to_bytes()).and_then(|p| u32::try_from(p).ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

#[derive(Default)]
struct Part {
    links: Vec<(u64, Process)>,
    netns: Vec<(u32, u32)>,
    stats: OwnerStats,
}

/// What went wrong with one process.
enum Skip {
    Vanished,
    Denied,
    Failed,
}

impl From<io::Error> for Skip {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ESRCH) => Self::Vanished,
            Some(libc::EACCES | libc::EPERM) => Self::Denied,
            _ => Self::Failed,
        }
    }
}

/// Takes pids from the shared cursor until none are left, so one process
/// with many descriptors does not leave the other threads idle.
fn scan_pids(root: RawFd, pids: &[u32], next: &AtomicUsize, mode: Mode) -> Part {
    let mut part = Part::default();
    let mut fds = Vec::new();
    while let Some(&pid) = pids.get(next.fetch_add(1, Ordering::Relaxed)) {
        part.stats.processes += 1;
        fds.clear();
        match scan_pid(root, pid, mode, &mut fds, &mut part) {
            Ok(()) => {}
            Err(Skip::Vanished) => part.stats.vanished += 1,
            Err(Skip::Denied) => part.stats.denied += 1,
            Err(Skip::Failed) => part.stats.failed += 1,
        }
    }
    part
}

#[derive(Clone, Copy)]
enum Mode {
    NetnsOnly,
    /// `probe`: try [`probe_fds`] first (only on a real procfs: a test's
    /// fake tree has directory sizes that mean something else).
    Fds {
        probe: bool,
    },
}

fn is_procfs(dir: &OwnedFd) -> bool {
    // SAFETY: all-zero is a valid statfs buffer to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable.
    unsafe { libc::fstatfs(dir.as_raw_fd(), &mut st) == 0 && st.f_type == libc::PROC_SUPER_MAGIC }
}

/// Records `pid`'s network namespace and, unless `mode` says not to, its
/// sockets (into `fds`, a reused buffer, and then `part`).
fn scan_pid(root: RawFd, pid: u32, mode: Mode, fds: &mut Vec<(u64, u32)>, part: &mut Part) -> Result<(), Skip> {
    let mut path = [0u8; 48];
    let mut link = [0u8; 64];
    let ns = readlink_at(root, cpath(&mut path, format_args!("{pid}/ns/net"))?, &mut link)?;
    if let Some(ns) = bracketed(ns, b"net:").and_then(|n| u32::try_from(n).ok()) {
        part.netns.push((pid, ns));
    }
    let Mode::Fds { probe } = mode else {
        return Ok(());
    };

    let dir = open_dir_at(root, cpath(&mut path, format_args!("{pid}/fd"))?)?;
    if !(probe && probe_fds(&dir, fds, &mut link)?) {
        fds.clear();
        list_fds(dir, fds, &mut link, &mut part.stats)?;
    }
    if fds.is_empty() {
        return Ok(());
    }
    let mut buf = [0u8; 128];
    let comm = read_at(root, cpath(&mut path, format_args!("{pid}/comm"))?, &mut buf)?;
    let comm = String::from_utf8_lossy(comm.strip_suffix(b"\n").unwrap_or(comm)).into_owned();
    part.stats.socket_fds += fds.len();
    part.links.extend(fds.iter().map(|&(inode, fd)| (inode, Process { pid, comm: comm.clone(), fd })));
    Ok(())
}

/// Reads descriptors by number, 0 upwards, until as many were found as the
/// kernel says are open (`stat(/proc/PID/fd).st_size`, Linux 6.2+). This
/// skips the directory listing, a third of the cost, but only works for
/// a compact table: gives up (`false`) after `2 * count + 64` numbers, and
/// on older kernels, which report 0.
fn probe_fds(dir: &OwnedFd, fds: &mut Vec<(u64, u32)>, link: &mut [u8]) -> io::Result<bool> {
    // SAFETY: all-zero is a valid stat buffer to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; AT_EMPTY_PATH with "" stats `dir` itself.
    if unsafe { libc::fstatat(dir.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let Ok(count @ 1..) = u32::try_from(st.st_size) else {
        return Ok(false);
    };
    let limit = count.saturating_mul(2).saturating_add(64);
    let mut found = 0;
    for fd in 0..limit {
        let mut name = [0u8; 12];
        match readlink_at(dir.as_raw_fd(), cpath(&mut name, format_args!("{fd}"))?, link) {
            Ok(target) => {
                if let Some(inode) = bracketed(target, b"socket:") {
                    fds.push((inode, fd));
                }
                found += 1;
                if found == count {
                    return Ok(true);
                }
            }
            // A gap in the table (or the process is exiting: the listing
            // that follows will tell).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Lists the descriptor directory and reads each link.
fn list_fds(dir: OwnedFd, fds: &mut Vec<(u64, u32)>, link: &mut [u8], stats: &mut OwnerStats) -> Result<(), Skip> {
    let mut dir = Dir::from_fd(dir)?;
    let dir_fd = dir.fd();
    while let Some(name) = dir.next_name() {
        let name = name?;
        let Some(fd) = parse_dec(name.to_bytes()).and_then(|f| u32::try_from(f).ok()) else {
            continue;
        };
        match readlink_at(dir_fd, name, link) {
            Ok(target) => {
                if let Some(inode) = bracketed(target, b"socket:") {
                    fds.push((inode, fd));
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => stats.fds_vanished += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "owners_tests.rs"]
mod tests;
