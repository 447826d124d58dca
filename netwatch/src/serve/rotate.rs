//! An append-only file rotated by size: `PATH` is current, `PATH.1` the
//! newest old one, up to `PATH.K`; older ones are overwritten.
//!
//! Every line names a process and both ends of a connection, of every user
//! on the host, so the file is the agent's own: mode 0600, or 0640 with a
//! configured group (as auditd does with `log_group`). The mode is set on
//! the open file, not left to the umask, and also fixes a file an older
//! version created 0644; rotated files keep it, since rename keeps modes.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// Who may read the export file besides root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// A group given read access (0640), `None` for 0600.
    pub gid: Option<u32>,
}

impl Access {
    pub const fn mode(self) -> u32 {
        if self.gid.is_some() {
            0o640
        } else {
            0o600
        }
    }
}

pub struct RotatingFile {
    path: PathBuf,
    access: Access,
    file: File,
    /// Bytes in the current file, including `pending`.
    size: u64,
    max_bytes: u64,
    keep: usize,
    pending: Vec<u8>,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: usize, access: Access) -> Result<Self> {
        let file = append(path, access)?;
        let size = file.metadata().with_context(|| format!("reading the size of {}", path.display()))?.len();
        Ok(Self { path: path.to_owned(), access, file, size, max_bytes, keep, pending: Vec::with_capacity(64 << 10) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one whole line; rotates first if it would not fit, so a line
    /// is never split across two files.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.pending.extend_from_slice(line);
        self.size += len;
        Ok(())
    }

    /// Writes what is queued (once per batch of events).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.pending);
        self.pending.clear();
        r
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.flush()?;
        for i in (1..self.keep).rev() {
            match std::fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = append(&self.path, self.access).map_err(io::Error::other)?;
        self.size = 0;
        Ok(())
    }
}

pub fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn append(path: &Path, access: Access) -> Result<File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(access.mode())
        .open(path)
        .with_context(|| format!("opening the export file {}", path.display()))?;
    // The group first, then the mode: never 0640 with the wrong group.
    if let Some(gid) = access.gid {
        std::os::unix::fs::fchown(&file, None, Some(gid))
            .with_context(|| format!("giving the export file {} to group {gid}", path.display()))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(access.mode()))
        .with_context(|| format!("setting the mode of the export file {}", path.display()))?;
    Ok(file)
}

/// A group name (or number) as its id, from the system's group database.
pub fn group_id(name: &str) -> Result<u32> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    let c = std::ffi::CString::new(name).with_context(|| format!("group name {name:?} contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string; getgrnam returns NULL or
    // a pointer to a static record, read at once before any other call.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        anyhow::bail!("no group named {name:?} (export.file.group / --export-group)");
    }
    // SAFETY: non-NULL, so it points to a valid `group` record (see above).
    Ok(unsafe { (*gr).gr_gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_k() {
        let dir = std::env::temp_dir().join(format!("nw-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ev.jsonl");
        let mut f = RotatingFile::open(&path, 25, 2, Access::default()).unwrap();
        for i in 0..10 {
            f.line(format!("line {i:04}\n").as_bytes()).unwrap(); // 10 bytes each
            f.flush().unwrap();
        }
        // Two lines per file: 8,9 current; 6,7 in .1; 4,5 in .2; no .3.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line 0008\nline 0009\n");
        assert_eq!(std::fs::read_to_string(numbered(&path, 1)).unwrap(), "line 0006\nline 0007\n");
        assert_eq!(std::fs::read_to_string(numbered(&path, 2)).unwrap(), "line 0004\nline 0005\n");
        assert!(!numbered(&path, 3).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_and_rotations_are_0600_or_0640_with_a_group() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = std::env::temp_dir().join(format!("nw-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ev.jsonl");
        // An older version's 0644 file is tightened, not kept.
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        let mut f = RotatingFile::open(&path, 15, 2, Access::default()).unwrap();
        for i in 0..3 {
            f.line(format!("line {i:04}\n").as_bytes()).unwrap();
            f.flush().unwrap();
        }
        assert_eq!((mode(&path), mode(&numbered(&path, 1)), mode(&numbered(&path, 2))), (0o600, 0o600, 0o600));
        drop(f);
        // A group of which the test's user is a member, so that chown works unprivileged.
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        let mut f = RotatingFile::open(&path, 15, 2, Access { gid: Some(gid) }).unwrap();
        f.line(b"line 0009\n").unwrap();
        f.line(b"line 0010\n").unwrap();
        f.flush().unwrap();
        for p in [path.clone(), numbered(&path, 1)] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.mode() & 0o7777, m.gid()), (0o640, gid), "{}", p.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn group_names_and_numbers() {
        assert_eq!(group_id("root").unwrap(), 0);
        assert_eq!(group_id("4").unwrap(), 4);
        let e = group_id("no-such-group-nw").unwrap_err().to_string();
        assert!(e.contains("no-such-group-nw"), "{e}");
    }
}
