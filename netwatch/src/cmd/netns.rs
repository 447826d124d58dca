//! `--netns NETNS` as `check` and `diff` take it: a name from `ip netns`,
//! a path to a namespace file, or an inode number as netwatch prints it.

use std::os::{fd::AsRawFd as _, unix::fs::MetadataExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::seed::Seed;

/// Where `ip netns add` bind-mounts named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The namespace's inode. A number must name a namespace that exists now
/// and a path a network namespace's file: anything else would filter out
/// every socket without a word.
pub fn resolve(spec: &str) -> Result<u32> {
    if let Ok(inode) = spec.parse::<u32>() {
        if !exists(inode) {
            bail!(
                "network namespace {inode} was not found: no process lives in it and none is mounted under \
                 {NETNS_DIR} (`ls -L -i /proc/*/ns/net` lists them; other users' processes need root)"
            );
        }
        return Ok(inode);
    }
    let path = if spec.contains('/') { PathBuf::from(spec) } else { Path::new(NETNS_DIR).join(spec) };
    let file = std::fs::File::open(&path)
        .with_context(|| format!("network namespace {spec:?}: cannot open {}", path.display()))?;
    // NS_GET_NSTYPE (linux/nsfs.h, Linux 4.11): which kind of namespace
    // the file is; ENOTTY for any other file.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb7 << 8 | 0x3;
    // SAFETY: an ioctl without argument on a descriptor we own.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        let what = if kind < 0 { "not a namespace file" } else { "a namespace, but not a network namespace" };
        bail!("network namespace {spec:?}: {} is {what}", path.display());
    }
    let meta =
        file.metadata().with_context(|| format!("network namespace {spec:?}: cannot stat {}", path.display()))?;
    u32::try_from(meta.ino()).with_context(|| format!("network namespace {spec:?}: an inode beyond 32 bits"))
}

/// Whether a process lives in network namespace `inode` or it is mounted
/// under [`NETNS_DIR`].
fn exists(inode: u32) -> bool {
    let is_it = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.ino() == u64::from(inode));
    let named = std::fs::read_dir(NETNS_DIR).into_iter().flatten().flatten().any(|e| is_it(&e.path()));
    named
        || std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|e| {
            e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                && is_it(&e.path().join("ns/net"))
        })
}

/// Every `--netns` resolved; an empty list means every namespace.
pub fn resolve_all(specs: &[String]) -> Result<Vec<u32>> {
    specs.iter().map(|s| resolve(s)).collect()
}

/// Fails unless each requested namespace is one the seed read: counting
/// nothing in a namespace netwatch could not see would read as "all fine".
pub fn require_read(wanted: &[u32], seed: &Seed) -> Result<()> {
    if let Some(missing) = wanted.iter().find(|ns| !seed.namespaces.contains(ns)) {
        bail!(
            "network namespace {missing} was not found (netwatch finds namespaces that a process lives in, which \
             needs CAP_SYS_PTRACE for other users' processes, or that are mounted under {NETNS_DIR})"
        );
    }
    if let Some(unread) = wanted.iter().find(|ns| seed.stats.namespaces_unread.contains(ns)) {
        bail!(
            "network namespace {unread} could not be read (entering a namespace no process lives in needs \
             CAP_SYS_ADMIN): {}",
            seed.stats.warnings.join("; ")
        );
    }
    Ok(())
}
