//! A running `netwatch events --json` under measurement: started and waited
//! for until it says it is tracing, its CPU time read from /proc, stopped
//! with SIGINT like a user's Ctrl-C, its final summary line parsed.

use std::{
    collections::{BTreeMap, VecDeque},
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, ChildStderr, Command, Stdio},
    sync::mpsc::{self, RecvTimeoutError},
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{anyhow, Context as _, Result};

use crate::cmd;

/// netwatch prints this on stderr once its programs are attached.
const READY: &str = "netwatch: tracing";
const SUMMARY: &str = "netwatch: summary";
/// Loading BTF and attaching can take a while on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How much of netwatch's stderr an error message quotes.
const TAIL_LINES: usize = 20;

pub struct Agent {
    child: Child,
    stderr: Option<JoinHandle<StderrLog>>,
}

#[derive(Default)]
struct StderrLog {
    tail: VecDeque<String>,
    summary: Option<String>,
}

/// The `key=value` pairs of netwatch's summary line, kept as text so new keys need no change here.
pub struct Summary(BTreeMap<String, String>);

impl Agent {
    pub fn start(netwatch: &Path) -> Result<Agent> {
        Self::start_with(netwatch, &["events", "--json"])
    }

    /// `netwatch ARGS` with extra environment (e.g. `NETWATCH_NO_TRAFFIC=1`),
    /// confined to `cpu` if given.
    pub fn start_on(netwatch: &Path, args: &[&str], env: &[(&str, &str)], cpu: Option<usize>) -> Result<Agent> {
        Self::start_full(netwatch, args, env, cpu)
    }

    /// `netwatch ARGS`, stdout to /dev/null.
    pub fn start_with(netwatch: &Path, args: &[&str]) -> Result<Agent> {
        Self::start_full(netwatch, args, &[], None)
    }

    fn start_full(netwatch: &Path, args: &[&str], env: &[(&str, &str)], cpu: Option<usize>) -> Result<Agent> {
        let mut command = Command::new(netwatch);
        if let Some(cpu) = cpu {
            super::cpu::pin(&mut command, cpu).context("confining netwatch to one CPU")?;
        }
        command.envs(env.iter().copied());
        command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("could not start `{}`", cmd::describe(&command)))?;
        let stderr = child.stderr.take().context("netwatch's stderr was not captured")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = thread::spawn(move || read_stderr(stderr, &ready_tx));
        let mut agent = Agent { child, stderr: Some(reader) };
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(()) => Ok(agent),
            // The reader hung up without a ready line: netwatch closed stderr, i.e. exited.
            Err(RecvTimeoutError::Disconnected) => Err(agent.fail("exited before it was ready")),
            Err(RecvTimeoutError::Timeout) => {
                Err(agent.fail(&format!("printed no `{READY}` line within {} s", READY_TIMEOUT.as_secs())))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time so far, all threads.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat =
            std::fs::read_to_string(&path).with_context(|| format!("reading {path}: did netwatch exit early?"))?;
        Ok(cpu_ticks(&stat)? as f64 / clock_ticks_per_second())
    }

    /// SIGINT, wait, and return the summary netwatch prints on the way out.
    pub fn stop(self) -> Result<Summary> {
        self.stop_with_tail().map(|(summary, _)| summary)
    }

    /// [`Agent::stop`], with the last lines netwatch printed on stderr.
    pub fn stop_with_tail(mut self) -> Result<(Summary, Vec<String>)> {
        let pid = libc::pid_t::try_from(self.child.id()).context("netwatch's pid does not fit pid_t")?;
        // SAFETY: kill has no memory-safety preconditions; pid is our own child, not yet reaped.
        if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
            return Err(self.fail(&format!("could not be sent SIGINT: {}", std::io::Error::last_os_error())));
        }
        let Some(status) = cmd::wait_timeout(&mut self.child, STOP_TIMEOUT)? else {
            return Err(self.fail(&format!("was still running {} s after SIGINT: killed", STOP_TIMEOUT.as_secs())));
        };
        let log = self.join_stderr();
        let line = log.summary.as_deref().ok_or_else(|| {
            anyhow!("netwatch exited ({status}) without a `{SUMMARY}` line; its stderr ended with:\n{}", tail(&log))
        })?;
        Ok((Summary::parse(line)?, log.tail.iter().cloned().collect()))
    }

    /// Kills netwatch and returns an error quoting the end of its stderr.
    fn fail(&mut self, what: &str) -> anyhow::Error {
        let _ = self.child.kill();
        let status = self.child.wait().map_or_else(|err| err.to_string(), |status| status.to_string());
        let log = self.join_stderr();
        anyhow!("netwatch {what} ({status}); its stderr ended with:\n{}", tail(&log))
    }

    fn join_stderr(&mut self) -> StderrLog {
        self.stderr.take().and_then(|reader| reader.join().ok()).unwrap_or_default()
    }
}

impl Drop for Agent {
    /// Never leave netwatch attached when a scenario bails out early.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_stderr(stderr: ChildStderr, ready: &mpsc::Sender<()>) -> StderrLog {
    let mut log = StderrLog::default();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.starts_with(READY) {
            let _ = ready.send(());
        }
        if line.starts_with(SUMMARY) {
            log.summary = Some(line.clone());
        }
        if log.tail.len() == TAIL_LINES {
            log.tail.pop_front();
        }
        log.tail.push_back(line);
    }
    log
}

fn tail(log: &StderrLog) -> String {
    if log.tail.is_empty() {
        return "  (nothing)".into();
    }
    log.tail.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n")
}

impl Summary {
    /// Parses `netwatch: summary events=N connects=N ...`.
    pub fn parse(line: &str) -> Result<Summary> {
        let pairs = line.strip_prefix(SUMMARY).with_context(|| format!("not a summary line: {line:?}"))?;
        let fields = pairs
            .split_whitespace()
            .map(|pair| {
                let (key, value) =
                    pair.split_once('=').with_context(|| format!("`{pair}` in the summary is not key=value"))?;
                Ok((key.to_string(), value.to_string()))
            })
            .collect::<Result<_>>()?;
        Ok(Summary(fields))
    }

    pub fn get(&self, key: &str) -> Result<u64> {
        let value = self.0.get(key).with_context(|| format!("netwatch's summary has no `{key}=`"))?;
        value.parse().with_context(|| format!("netwatch's summary has `{key}={value}`, not a count"))
    }
}

/// utime + stime from a /proc/<pid>/stat line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
pub(super) fn cpu_ticks(stat: &str) -> Result<u64> {
    let (_, after_comm) = stat.rsplit_once(')').context("/proc/<pid>/stat has no `)` after the command name")?;
    // Field 3 (state) is index 0 here, so utime (14) and stime (15) are 11 and 12.
    let mut fields = after_comm.split_whitespace().skip(11);
    let mut next = |name: &str| -> Result<u64> {
        let field = fields.next().with_context(|| format!("/proc/<pid>/stat has no {name} field"))?;
        field.parse().with_context(|| format!("/proc/<pid>/stat {name} is {field:?}, not a number"))
    };
    Ok(next("utime")? + next("stime")?)
}

pub(super) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Every Linux ABI in use has 100; sysconf only fails on exotic systems.
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_ticks, Summary};

    #[test]
    fn summary_fields_parse_generically() {
        let line = "netwatch: summary events=10 connects=4 accepts=4 closes=2 failed=0 lost=0 \
                    latency_p50_us=12 latency_p99_us=340 latency_max_us=1200";
        let summary = Summary::parse(line).unwrap();
        assert_eq!(summary.get("connects").unwrap(), 4);
        assert_eq!(summary.get("latency_p99_us").unwrap(), 340);
        assert!(summary.get("absent").is_err());
        assert!(Summary::parse("netwatch: tracing").is_err());
        assert!(Summary::parse("netwatch: summary lost").is_err());
    }

    #[test]
    fn cpu_ticks_survive_odd_command_names() {
        let stat = "4242 (net watch) (x)) S 1 4242 4242 0 -1 4194560 1500 0 0 0 \
                    250 75 0 0 20 0 3 0 123456 1000000 500 18446744073709551615";
        assert_eq!(cpu_ticks(stat).unwrap(), 325);
        assert!(cpu_ticks("4242 (netwatch) S 1").is_err());
    }
}
