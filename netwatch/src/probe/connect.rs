//! The `connect()` failure hooks (the eBPF crate's `connect`): optional,
//! since every other event flows without them.

use anyhow::{Context, Result};
use aya::{programs::TracePoint, Ebpf};
use netwatch_common::names;

use super::{program, tracefs};

/// Loads and attaches the exit program, and where the object was loaded
/// with `compat::NO_TASK_REGS` the entry program too; the exit first, so
/// that no destination is kept with nothing to take it back out.
pub(super) fn attach(ebpf: &mut Ebpf, compat_bits: u32) -> Result<()> {
    tracefs::ensure_mounted()?;
    let mut programs = vec![(names::PROG_CONNECT_EXIT, names::TP_CONNECT_EXIT)];
    if compat_bits & names::compat::NO_TASK_REGS != 0 {
        programs.push((names::PROG_CONNECT_ENTER, names::TP_CONNECT_ENTER));
    }
    for (prog, tp) in programs {
        let p: &mut TracePoint = program(ebpf, prog)?.try_into()?;
        if p.fd().is_err() {
            p.load().with_context(|| format!("loading {prog}"))?;
        }
        p.attach(names::SYSCALL_CATEGORY, tp).with_context(|| {
            format!("attaching to tracepoint {}/{tp} (needs CONFIG_FTRACE_SYSCALLS)", names::SYSCALL_CATEGORY)
        })?;
    }
    Ok(())
}
