//! An append-only file rotated by size: `PATH` is current, `PATH.1` the
//! newest old one, up to `PATH.K`; older ones are overwritten.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file, including `pending`.
    size: u64,
    max_bytes: u64,
    keep: usize,
    pending: Vec<u8>,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> Result<Self> {
        let file = append(path)?;
        let size = file.metadata().with_context(|| format!("reading the size of {}", path.display()))?.len();
        Ok(Self { path: path.to_owned(), file, size, max_bytes, keep, pending: Vec::with_capacity(64 << 10) })
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
        self.file = append(&self.path).map_err(io::Error::other)?;
        self.size = 0;
        Ok(())
    }
}

pub fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the export file {}", path.display()))
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
        let mut f = RotatingFile::open(&path, 25, 2).unwrap();
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
}
