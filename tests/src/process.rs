//! Child processes with timeouts: line readers that never block the test
//! forever, and waits that give up.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Lines of one pipe, read by a background thread: every line is kept, and
/// also handed out in order through [`Lines::next_line`].
pub struct Lines {
    rx: Receiver<String>,
    all: Arc<Mutex<Vec<String>>>,
    closed: bool,
}

impl Lines {
    pub fn spawn(pipe: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&all);
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_owned();
                        lock(&keep).push(line.clone());
                        // The receiver may be gone; the line is kept anyway.
                        let _ = tx.send(line);
                    }
                }
            }
        });
        Self { rx, all, closed: false }
    }

    /// A reader of nothing, already at EOF.
    pub fn empty() -> Self {
        let (_, rx) = mpsc::channel();
        Self { rx, all: Arc::default(), closed: true }
    }

    /// Every line read so far.
    pub fn snapshot(&self) -> Vec<String> {
        lock(&self.all).clone()
    }

    /// The next line not yet handed out, or `None` at a timeout or EOF.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        if self.closed {
            return None;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                None
            }
        }
    }

    /// Skips lines until one satisfies `pred`; `None` at the deadline or EOF.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let line = self.next_line(left)?;
            if pred(&line) {
                return Some(line);
            }
        }
        None
    }

    /// Waits until no line has arrived for `quiet`, or `max` has passed.
    pub fn wait_quiet(&mut self, quiet: Duration, max: Duration) {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline && !self.closed {
            if self.next_line(quiet).is_none() {
                return;
            }
        }
    }

    /// Waits (at most `timeout`) for EOF, then returns every line.
    pub fn finish(mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            self.next_line(left);
        }
        self.snapshot()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `Child::wait` with a deadline; `None` if the child is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(err) => panic!("waiting for child {}: {err}", child.id()),
        }
    }
}

/// What a command that should end by itself printed, and how it ended.
pub struct Ran {
    /// `None`: still running after the timeout (then killed).
    pub status: Option<ExitStatus>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// Runs `command` (stdin empty, output captured) for at most `timeout`: a
/// command expected to fail at once must not hang the test when it does not.
pub fn run_for(command: &mut Command, timeout: Duration) -> Ran {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
    let stdout = Lines::spawn(child.stdout.take().expect("piped stdout"));
    let stderr = Lines::spawn(child.stderr.take().expect("piped stderr"));
    let status = wait_timeout(&mut child, timeout);
    kill_and_reap(&mut child);
    let finish = Duration::from_secs(2);
    Ran { status, stdout: stdout.finish(finish), stderr: stderr.finish(finish) }
}

/// Kills and reaps a child that is still running (used from `Drop`).
pub fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends `signal` to a child process.
pub fn send_signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
    // own unreaped child, so it cannot have been recycled.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
}
