//! tracefs: the classic (syscall) tracepoints need it, and a fresh machine
//! here does not mount it.

use std::{ffi::CString, path::Path};

use anyhow::{bail, Result};

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at its standard place unless it is already there. It is
/// left mounted on exit: that is every distribution's normal state, and
/// another tracer may have started using it meanwhile.
pub fn ensure_mounted() -> Result<()> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let c = |s: &str| CString::new(s).expect("no NUL in literal");
    let (src, target, fstype) = (c("tracefs"), c(TRACEFS), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!("mounting tracefs at {TRACEFS}: {err} (try `mount -t tracefs tracefs {TRACEFS}`)");
    }
    Ok(())
}
