//! The `connect()` failure hooks (the eBPF crate's `connect`): optional,
//! since every other event flows without them.

use anyhow::{anyhow, Context, Result};
use aya::{programs::TracePoint, Ebpf};
use netwatch_common::names;

use super::tracefs;

/// Loads and attaches the entry and exit programs; the exit first, so that
/// no destination is kept with nothing to take it back out.
pub(super) fn attach(ebpf: &mut Ebpf) -> Result<()> {
    tracefs::ensure_mounted()?;
    for (prog, tp) in
        [(names::PROG_CONNECT_EXIT, names::TP_CONNECT_EXIT), (names::PROG_CONNECT_ENTER, names::TP_CONNECT_ENTER)]
    {
        let p: &mut TracePoint =
            ebpf.program_mut(prog).ok_or_else(|| anyhow!("program {prog} missing from the eBPF object"))?.try_into()?;
        if p.fd().is_err() {
            p.load().with_context(|| format!("loading {prog}"))?;
        }
        p.attach(names::SYSCALL_CATEGORY, tp).with_context(|| {
            format!("attaching to tracepoint {}/{tp} (needs CONFIG_FTRACE_SYSCALLS)", names::SYSCALL_CATEGORY)
        })?;
    }
    Ok(())
}
