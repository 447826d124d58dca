//! Checking privileges before touching the kernel, so the user gets one
//! clear sentence instead of an EPERM from deep inside a load.

use anyhow::{bail, Result};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Whether tracing programs can be loaded: CAP_BPF and CAP_PERFMON, or
/// CAP_SYS_ADMIN. Capabilities, not uid 0: the systemd unit runs netwatch as
/// an unprivileged user holding just these.
pub fn can_load() -> bool {
    let caps = effective_caps();
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Loading tracing programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN,
/// which also covers mounting tracefs).
pub fn check() -> Result<()> {
    if can_load() {
        return Ok(());
    }
    bail!(
        "root privileges are needed to load eBPF programs (CAP_BPF and CAP_PERFMON, or \
         CAP_SYS_ADMIN): run it with sudo"
    )
}
