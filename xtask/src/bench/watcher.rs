//! A running `netwatch snapshot --json --for D` (the live table, printed to
//! /dev/null at the end) whose memory is read: VmRSS and VmHWM from
//! /proc/PID/status while it runs, and the peak RSS the kernel reports at
//! exit (wait4's ru_maxrss).

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::cmd;

/// netwatch prints this on stderr once attached and seeded.
const WATCHING: &str = "netwatch: watching";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Beyond `--for`: the final print and detaching.
const EXIT_GRACE: Duration = Duration::from_secs(30);

pub struct Watcher {
    child: Child,
    span: Duration,
}

/// Memory of a process, in KiB, from /proc/PID/status.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Watcher {
    /// Starts it and waits until it watches.
    pub fn start(netwatch: &Path, span: Duration) -> Result<Watcher> {
        let mut command = Command::new(netwatch);
        command.args(["snapshot", "--json", "--for", &format!("{}ms", span.as_millis())]);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
        let stderr = child.stderr.take().context("netwatch's stderr was not captured")?;
        let (tx, rx) = mpsc::channel();
        // Keeps draining stderr so netwatch never blocks on it.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with(WATCHING) {
                    let _ = tx.send(());
                }
            }
        });
        let mut watcher = Watcher { child, span };
        if rx.recv_timeout(READY_TIMEOUT).is_err() {
            let _ = watcher.child.kill();
            bail!("`{}` did not print `{WATCHING}` within {} s", cmd::describe(&command), READY_TIMEOUT.as_secs());
        }
        Ok(watcher)
    }

    pub fn mem(&self) -> Result<Mem> {
        mem(self.child.id())
    }

    /// Waits for the end of `--for`, sampling memory meanwhile; returns the
    /// last sample before exit and the kernel's peak RSS (KiB).
    pub fn finish(mut self) -> Result<(Mem, u64)> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid does not fit pid_t")?;
        let deadline = Instant::now() + self.span + EXIT_GRACE;
        let mut last = Mem::default();
        loop {
            if let Ok(m) = self.mem() {
                last = m;
            }
            let mut status = 0;
            // SAFETY: zeroed rusage is a valid value for this plain C struct.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: pid is our unreaped child; status and usage are live out-pointers.
            let rc = unsafe { libc::wait4(pid, &raw mut status, libc::WNOHANG, &raw mut usage) };
            if rc == pid {
                if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                    bail!("netwatch snapshot --for exited abnormally (wait status {status:#x})");
                }
                return Ok((last, u64::try_from(usage.ru_maxrss).unwrap_or(0)));
            }
            if rc < 0 {
                bail!("wait4 on netwatch: {}", std::io::Error::last_os_error());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("netwatch snapshot --for still running {} s after its end: killed", EXIT_GRACE.as_secs());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it early (SIGKILL; it keeps nothing in the kernel once gone).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // After finish() reaped it through wait4, kill() fails harmlessly.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// VmRSS and VmHWM of `pid`.
pub fn mem(pid: u32) -> Result<Mem> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |key: &str| -> Result<u64> {
        let line = status.lines().find(|l| l.starts_with(key)).with_context(|| format!("{path} has no {key}"))?;
        let kib = line.split_whitespace().nth(1).with_context(|| format!("{path}: empty {key}"))?;
        kib.parse().with_context(|| format!("{path}: {key} {kib:?} is not a number"))
    };
    Ok(Mem { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
