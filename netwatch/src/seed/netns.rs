//! Reading the sockets of every network namespace (docs/design.md#namespaces).
//!
//! sock_diag and /proc/net show only the reader's namespace. For each other
//! namespace we open a sock_diag socket inside it from a short-lived thread
//! that `setns`es there (the socket stays in the namespace it was created
//! in; needs CAP_SYS_ADMIN), and otherwise read `/proc/PID/net/*` of one of
//! its processes, which shows that namespace without `setns`.

use std::{
    collections::BTreeMap,
    fs::File,
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use super::{
    diag::{self, DiagSocket, DumpInfo},
    owners::OwnerScan,
    proc_net::{read_proc_net, ProcNetFile},
    proc_net_dir, Method, Proto, SeedOptions, SeedSocket, SeedStats,
};

/// Ways into one namespace: its processes, and a bind mount if it has one.
#[derive(Debug, Default)]
struct Entry {
    pids: Vec<u32>,
    /// A bind mount such as `/run/netns/NAME`.
    mount: Option<PathBuf>,
}

impl Entry {
    /// Its ways in as nsfs paths, the mount first.
    fn paths(&self, proc_root: &Path) -> Vec<PathBuf> {
        let pids = self.pids.iter().map(|pid| proc_root.join(format!("{pid}/ns/net")));
        self.mount.iter().cloned().chain(pids).collect()
    }
}

/// Reads our own namespace (needs nothing from the /proc scan, so it runs
/// alongside it). Returns its inode.
pub(super) fn read_own(opts: &SeedOptions, out: &mut Vec<SeedSocket>, stats: &mut SeedStats) -> Result<u32> {
    let own_path = opts.proc_root.join("self/ns/net");
    let own = ns_inode(&own_path).with_context(|| format!("reading {}", own_path.display()))?;
    let diag = match opts.method {
        Method::Auto => DiagSocket::open()
            .map(|d| if opts.figures { d.with_figures() } else { d })
            .map_err(|e| stats.warnings.push(format!("sock_diag unavailable ({e}); reading /proc/net")))
            .ok(),
        Method::ProcOnly => None,
    };
    if read_tables(own, diag.as_ref(), &[], &opts.proc_root, out, stats) == 0 {
        bail!("could not read any socket table of our own network namespace: {}", stats.warnings.join("; "));
    }
    Ok(own)
}

/// Reads every namespace other than `own` found by the scan or mounted
/// under `opts.netns_dir`; returns their inodes, ascending.
pub(super) fn read_others(
    opts: &SeedOptions,
    own: u32,
    scan: &OwnerScan,
    out: &mut Vec<SeedSocket>,
    stats: &mut SeedStats,
) -> Vec<u32> {
    let mut others: BTreeMap<u32, Entry> = BTreeMap::new();
    for (&ns, pids) in scan.netns.iter().filter(|(&ns, _)| ns != own) {
        others.entry(ns).or_default().pids.clone_from(pids);
    }
    if let Some(dir) = &opts.netns_dir {
        for (ns, path) in mounted_namespaces(&opts.proc_root, dir) {
            if ns != own {
                others.entry(ns).or_default().mount = Some(path);
            }
        }
    }
    let sockets: BTreeMap<u32, _> = match opts.method {
        Method::Auto if !others.is_empty() => {
            open_diag_sockets(others.iter().map(|(&ns, e)| (ns, e.paths(&opts.proc_root))), opts.figures)
                .into_iter()
                .collect()
        }
        _ => BTreeMap::new(),
    };
    let mut refused = Vec::new();
    for (&ns, entry) in &others {
        let diag = sockets.get(&ns).and_then(|s| s.as_ref().map_err(|e| refused.push(e.to_string())).ok());
        if diag.is_none() && entry.pids.is_empty() {
            stats.warnings.push(format!("netns {ns}: no process to read it through, and no sock_diag"));
            stats.namespaces_vanished += 1;
            stats.namespaces_unread.push(ns);
            continue;
        }
        if read_tables(ns, diag, &entry.pids, &opts.proc_root, out, stats) == 0 {
            stats.namespaces_unread.push(ns);
        }
    }
    if let Some(first) = refused.first() {
        stats.warnings.push(format!(
            "sock_diag refused in {} other namespaces (first: {first}); read /proc/PID/net instead (no cookies)",
            refused.len()
        ));
    }
    others.into_keys().collect()
}

/// Reads the four tables of one namespace: sock_diag if `diag` is given,
/// else (and for any table sock_diag fails on) the /proc text, from
/// `/proc/net` when `pids` is empty (our own namespace), else from the
/// first of `pids` still alive and still in `ns`. Returns how many tables
/// were read; failures become warnings.
fn read_tables(
    ns: u32,
    diag: Option<&DiagSocket>,
    pids: &[u32],
    proc_root: &Path,
    out: &mut Vec<SeedSocket>,
    stats: &mut SeedStats,
) -> usize {
    let mut via_proc = diag.is_none();
    let mut pid_idx = 0;
    let mut read = 0;
    // Both TCP tables in one dump where the kernel offers it; the loop
    // below reads them one family at a time otherwise.
    let tcp_done = diag.and_then(|d| d.dump_tcp(diag::ALL_STATES, ns, out).ok()).map(|info| {
        stats.dumps_interrupted += usize::from(info.interrupted);
        read += 2;
    });
    'tables: for file in ProcNetFile::ALL {
        if tcp_done.is_some() && file.proto() == Proto::Tcp {
            continue;
        }
        if let Some(diag) = diag {
            let start = out.len();
            match diag.dump(file.proto(), file.family(), ns, out) {
                Ok(DumpInfo { interrupted, .. }) => {
                    stats.dumps_interrupted += usize::from(interrupted);
                    read += 1;
                    continue;
                }
                Err(e) => {
                    out.truncate(start);
                    stats.warnings.push(format!("netns {ns}: sock_diag {}: {e}; reading /proc instead", file.name()));
                    via_proc = true;
                }
            }
        }
        loop {
            let pid = match pids.get(pid_idx) {
                Some(&pid) => Some(pid),
                None if pids.is_empty() => None,
                None => {
                    stats.warnings.push(format!("netns {ns}: every process exited before its sockets were read"));
                    break 'tables;
                }
            };
            match read_via(proc_root, ns, pid, file) {
                Ok(table) => {
                    stats.truncated_lines += usize::from(table.truncated);
                    out.extend(table.sockets);
                    read += 1;
                    break;
                }
                Err(ReadError::Gone) => pid_idx += 1,
                Err(ReadError::Other(e)) => {
                    stats.warnings.push(format!("netns {ns}: {e:#}"));
                    break;
                }
            }
        }
    }
    match (read, via_proc) {
        (0, _) => stats.namespaces_vanished += 1,
        (_, true) => stats.namespaces_proc += 1,
        (_, false) => stats.namespaces_diag += 1,
    }
    read
}

enum ReadError {
    /// The process exited or moved to another namespace: try the next one.
    Gone,
    Other(anyhow::Error),
}

fn read_via(proc_root: &Path, ns: u32, pid: Option<u32>, file: ProcNetFile) -> Result<super::ProcNetTable, ReadError> {
    let table = read_proc_net(&proc_net_dir(proc_root, pid), file, ns).map_err(|e| {
        let gone = pid.is_some() && e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::NotFound);
        if gone {
            ReadError::Gone
        } else {
            ReadError::Other(e)
        }
    })?;
    // The pid may have been reused by a process elsewhere while we read.
    if let Some(pid) = pid {
        if ns_inode(&proc_root.join(format!("{pid}/ns/net"))).ok() != Some(ns) {
            return Err(ReadError::Gone);
        }
    }
    Ok(table)
}

pub(crate) fn ns_inode(path: &Path) -> io::Result<u32> {
    let ino = std::fs::metadata(path)?.ino();
    u32::try_from(ino).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "namespace inode over 32 bits"))
}

/// Namespaces bind-mounted under `dir` (none if it does not exist). Only
/// nsfs files count: an `ip netns add` that failed half-way leaves a plain
/// file behind.
fn mounted_namespaces(proc_root: &Path, dir: &Path) -> Vec<(u32, PathBuf)> {
    let nsfs = std::fs::metadata(proc_root.join("self/ns/net")).map(|m| m.dev());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let meta = std::fs::metadata(&path).ok()?;
            let ino = u32::try_from(meta.ino()).ok()?;
            (nsfs.as_ref().ok() == Some(&meta.dev())).then_some((ino, path))
        })
        .collect()
}

/// netwatch's own network namespace (its inode).
pub(crate) fn own_netns() -> io::Result<u32> {
    ns_inode(Path::new("/proc/self/ns/net"))
}

/// A sock_diag socket opened inside each namespace of `targets`, entered
/// through the first of its paths (a bind mount, `/proc/PID/ns/net`) that
/// still is that namespace. A netlink socket stays in the namespace it was
/// opened in, so one short-lived thread `setns`es from one namespace to the
/// next (needs CAP_SYS_ADMIN) and netwatch's own threads never move. Every
/// reader of other namespaces' sockets opens them here.
pub(crate) fn open_diag_sockets(
    targets: impl IntoIterator<Item = (u32, Vec<PathBuf>)> + Send,
    figures: bool,
) -> Vec<(u32, io::Result<DiagSocket>)> {
    let enter = |ns: u32, paths: Vec<PathBuf>| -> io::Result<DiagSocket> {
        let mut last = None;
        for path in paths {
            // Holding the file pins the namespace; its inode proves the pid
            // was not reused by a process elsewhere.
            let file = match File::open(&path) {
                Ok(f) if f.metadata().map(|m| m.ino()).ok() == Some(u64::from(ns)) => f,
                Ok(_) => continue,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            // SAFETY: setns(2) on an open namespace fd; it changes only
            // this thread, which ends after this loop.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            return DiagSocket::open().map(|d| if figures { d.with_figures() } else { d });
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no process or mount is left to enter it by")))
    };
    std::thread::scope(|s| {
        s.spawn(|| targets.into_iter().map(|(ns, paths)| (ns, enter(ns, paths))).collect()).join().unwrap_or_default()
    })
}
