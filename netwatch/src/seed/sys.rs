//! The few libc calls the /proc scan makes per entry, without allocating:
//! `std::fs::read_dir` allocates a name per entry and `read_link` a path
//! and a result, and a scan visits every fd of every process.

use std::{
    ffi::CStr,
    fmt,
    io::{self, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

/// Formats a relative path into `buf` as a NUL-terminated C string.
pub(crate) fn cpath<'a>(buf: &'a mut [u8], args: fmt::Arguments<'_>) -> io::Result<&'a CStr> {
    let cap = buf.len();
    let mut rest = &mut buf[..cap - 1];
    rest.write_fmt(args)?;
    let len = cap - 1 - rest.len();
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).map_err(|_| io::ErrorKind::InvalidInput.into())
}

pub(crate) fn open_dir_at(dirfd: RawFd, path: &CStr) -> io::Result<OwnedFd> {
    open_at(dirfd, path, libc::O_DIRECTORY)
}

/// `openat` read-only and close-on-exec, plus `flags`.
fn open_at(dirfd: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated; the returned fd is owned by us.
    let fd = unsafe { libc::openat(dirfd, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `readlinkat` into `buf`; the link text, which the kernel cuts at the
/// buffer length.
pub(crate) fn readlink_at<'a>(dirfd: RawFd, path: &CStr, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
    // SAFETY: `path` is NUL-terminated and `buf` is writable for its length.
    let n = unsafe { libc::readlinkat(dirfd, path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    // Negative: failed, with the reason in errno.
    usize::try_from(n).map(|n| &buf[..n]).map_err(|_| io::Error::last_os_error())
}

/// Reads up to `buf.len()` bytes of a small file such as `PID/comm`.
pub(crate) fn read_at<'a>(dirfd: RawFd, path: &CStr, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
    let fd = open_at(dirfd, path, 0)?;
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map(|n| &buf[..n]).map_err(|_| io::Error::last_os_error())
}

/// A directory stream; yields entry names without `.` and `..`.
pub(crate) struct Dir(std::ptr::NonNull<libc::DIR>);

impl Dir {
    pub(crate) fn open_at(dirfd: RawFd, path: &CStr) -> io::Result<Self> {
        Self::from_fd(open_dir_at(dirfd, path)?)
    }

    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        use std::os::fd::IntoRawFd;
        let raw = fd.into_raw_fd();
        // SAFETY: `raw` is an open directory fd whose ownership passes to the
        // DIR stream (closedir closes it).
        match std::ptr::NonNull::new(unsafe { libc::fdopendir(raw) }) {
            Some(dir) => Ok(Self(dir)),
            None => {
                let err = io::Error::last_os_error();
                // SAFETY: fdopendir failed, so `raw` is still ours to close.
                unsafe { libc::close(raw) };
                Err(err)
            }
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        // SAFETY: the stream is open for as long as `self` lives.
        unsafe { libc::dirfd(self.0.as_ptr()) }
    }

    /// The next entry's name, `None` at the end.
    pub(crate) fn next_name(&mut self) -> Option<io::Result<&CStr>> {
        loop {
            // SAFETY: readdir reports errors through errno only, so clear it.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: the stream is open; the entry stays valid until the
            // next readdir on this stream, which the borrow on `self` rules out.
            let ent = unsafe { libc::readdir(self.0.as_ptr()) };
            if ent.is_null() {
                let err = io::Error::last_os_error();
                return (err.raw_os_error() != Some(0)).then_some(Err(err));
            }
            // SAFETY: `d_name` is NUL-terminated within the entry.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            if !matches!(name.to_bytes(), b"." | b"..") {
                return Some(Ok(name));
            }
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the stream is open and is not used after this.
        unsafe { libc::closedir(self.0.as_ptr()) };
    }
}

// SAFETY: a DIR stream may move between threads; it is used by one at a time.
unsafe impl Send for Dir {}

/// Parses an ASCII decimal number (the whole slice).
pub(crate) fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then_some(())?;
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The number inside `prefix[N]`, as in `socket:[123]` or `net:[4026531840]`.
pub(crate) fn bracketed(link: &[u8], prefix: &[u8]) -> Option<u64> {
    parse_dec(link.strip_prefix(prefix)?.strip_prefix(b"[")?.strip_suffix(b"]")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_dec(b"0"), Some(0));
        assert_eq!(parse_dec(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_dec(b"18446744073709551616"), None);
        assert_eq!(parse_dec(b""), None);
        assert_eq!(parse_dec(b"+1"), None);
        assert_eq!(bracketed(b"socket:[2329663]", b"socket:"), Some(2329663));
        assert_eq!(bracketed(b"net:[4026531840]", b"net:"), Some(4026531840));
        assert_eq!(bracketed(b"pipe:[12]", b"socket:"), None);
        assert_eq!(bracketed(b"socket:[12", b"socket:"), None);
        assert_eq!(bracketed(b"/dev/null", b"socket:"), None);
    }

    #[test]
    fn paths() {
        let mut buf = [0u8; 16];
        assert_eq!(cpath(&mut buf, format_args!("{}/fd", 4194304)).unwrap().to_bytes(), b"4194304/fd");
        let mut small = [0u8; 4];
        assert!(cpath(&mut small, format_args!("{}/fd", 1)).is_err());
    }

    #[test]
    fn lists_a_directory() {
        let mut dir = Dir::open_at(libc::AT_FDCWD, c"/proc/self/fd").unwrap();
        let mut names = Vec::new();
        while let Some(name) = dir.next_name() {
            names.push(name.unwrap().to_owned());
        }
        assert!(names.iter().any(|n| n.to_bytes() == b"0"));
        assert!(!names.iter().any(|n| n.to_bytes() == b"."));
    }
}
