//! Program runs the kernel skipped: the other way events are lost.
//!
//! A BTF or classic tracepoint program does not run while another run of
//! the same program is under way on that CPU: when a hardware interrupt
//! lands while `nw_set_state` handles a transition in process context
//! (`connect()`, `close()`), and the softirq on its way out moves another
//! socket to a new state, that second transition is dropped and only
//! counted in the program's `recursion_misses` (kernel 5.12 on; classic
//! tracepoints from 6.7). Each such run would have sent one record, so
//! they are lost events just as a full ring's are, and are reported and
//! repaired the same way (no silent loss: docs/design.md#ring-buffer-loss). aya 0.14
//! does not expose the counter, so it is read with `BPF_OBJ_GET_INFO_BY_FD`.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
};

use anyhow::{anyhow, Context as _, Result};
use aya::Ebpf;
use aya_obj::generated::bpf_prog_info;

/// `bpf(2)` command number (uapi/linux/bpf.h, stable since 4.13).
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The `info` member of `union bpf_attr` for that command.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The programs whose every run sends one record, by their own fds.
#[derive(Debug)]
pub struct SkippedRuns {
    programs: Vec<(&'static str, OwnedFd)>,
}

impl SkippedRuns {
    /// Watches `names` among `ebpf`'s loaded programs; a name that is not
    /// loaded (a degraded optional hook) is left out.
    pub fn watch(ebpf: &Ebpf, names: &[&'static str]) -> Result<Self> {
        let loaded = names.iter().filter_map(|&name| Some((name, ebpf.program(name)?.fd().ok()?)));
        let programs = loaded.map(|(name, fd)| {
            let owned = fd.as_fd().try_clone_to_owned().with_context(|| format!("duplicating the fd of {name}"))?;
            Ok((name, owned))
        });
        let watched = Self { programs: programs.collect::<Result<_>>()? };
        // Said now, at start, rather than by the reader mid-run.
        watched.total()?;
        Ok(watched)
    }

    /// Runs skipped so far, over every watched program.
    pub fn total(&self) -> Result<u64> {
        self.programs.iter().try_fold(0u64, |sum, (name, fd)| {
            let n = recursion_misses(fd.as_fd()).with_context(|| format!("reading the run counters of {name}"))?;
            Ok(sum.saturating_add(n))
        })
    }
}

fn recursion_misses(fd: BorrowedFd<'_>) -> Result<u64> {
    // SAFETY: a plain C struct of integers; all-zero is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let len = u32::try_from(size_of::<bpf_prog_info>()).map_err(|_| anyhow!("bpf_prog_info size"))?;
    let attr = InfoAttr { bpf_fd: fd.as_raw_fd() as u32, info_len: len, info: (&raw mut info) as u64 };
    // SAFETY: `attr` names a live buffer of `info_len` bytes; the kernel
    // writes at most that many (fewer on an older kernel, the rest stays 0).
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &raw const attr, size_of::<InfoAttr>() as libc::c_uint)
    };
    if r < 0 {
        return Err(io::Error::last_os_error()).context("BPF_OBJ_GET_INFO_BY_FD");
    }
    Ok(info.recursion_misses)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout the kernel fills: `recursion_misses` follows `run_cnt`
    /// at the offset uapi/linux/bpf.h gives it.
    #[test]
    fn info_layout_matches_the_uapi() {
        assert_eq!(std::mem::offset_of!(bpf_prog_info, run_time_ns), 192);
        assert_eq!(std::mem::offset_of!(bpf_prog_info, recursion_misses), 208);
        assert_eq!(size_of::<InfoAttr>(), 16);
    }

    #[test]
    fn a_non_program_fd_is_an_error_not_a_zero() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(recursion_misses(f.as_fd()).is_err());
    }
}
