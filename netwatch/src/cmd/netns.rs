//! `--netns NETNS` as `check` and `diff` take it: a name from `ip netns`,
//! a path to a namespace file, or an inode number as netwatch prints it.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::seed::Seed;

/// Where `ip netns add` bind-mounts named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The namespace's inode.
pub fn resolve(spec: &str) -> Result<u32> {
    if let Ok(inode) = spec.parse::<u32>() {
        return Ok(inode);
    }
    let path = if spec.contains('/') { PathBuf::from(spec) } else { Path::new(NETNS_DIR).join(spec) };
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("network namespace {spec:?}: cannot stat {}", path.display()))?;
    let Ok(inode) = u32::try_from(meta.ino()) else {
        bail!("network namespace {spec:?}: {} is not a namespace file", path.display());
    };
    Ok(inode)
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
