//! CPU affinity for processes the bench starts.

use std::{io, os::unix::process::CommandExt as _, process::Command};

/// Makes `command` (and every thread it creates) run on `cpu` only: set in
/// the child between fork and exec, so no thread escapes it.
pub fn pin(command: &mut Command, cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("CPU {cpu} is beyond a cpu_set_t")));
    }
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET stays within it (checked above).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is within the set (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the closure only calls sched_setaffinity, which is async-signal-safe, on a set
    // copied into it; nothing is allocated between fork and exec.
    unsafe {
        command.pre_exec(move || match libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        });
    }
    Ok(())
}
