//! Drives `nw-peer bulk` (tests crate): one loopback TCP stream for a fixed
//! time, sender and receiver threads pinned where the scenario says.

use std::{process::Command, time::Duration};

use anyhow::{bail, Context as _, Result};

use super::{peer, Ctx};
use crate::cmd;

/// Slack beyond the run's own length before a stuck peer is killed.
const GRACE: Duration = Duration::from_secs(30);

/// Where the peer's two threads run.
#[derive(Clone, Copy)]
pub struct Placement {
    pub sender_cpu: usize,
    pub receiver_cpu: usize,
}

/// One run's outcome, as the peer measured it.
pub struct Stream {
    pub bytes: u64,
    /// Bytes per second.
    pub rate: f64,
    /// CPU time the stream took (see [`run`]).
    pub cpu_seconds: f64,
    /// Packets of the connection, both directions (the sender's TCP_INFO
    /// segs_out + segs_in): each passes one egress and one ingress program.
    pub packets: u64,
}

/// One `nw-peer bulk --seconds S` run pinned to `placement`. Its CPU time
/// includes what the sender CPU's ksoftirqd spent meanwhile: loopback
/// receive softirqs run in the sender's system calls, except when they pile
/// up and the kernel hands them to ksoftirqd, whose time is then the
/// stream's too (give or take other softirqs on that CPU).
pub fn run(ctx: &Ctx, seconds: f64, placement: Placement) -> Result<Stream> {
    let softirqd = Ksoftirqd::of(placement.sender_cpu)?;
    let softirq_before = softirqd.cpu_seconds()?;
    let mut stream = run_peer(ctx, seconds, placement)?;
    stream.cpu_seconds += softirqd.cpu_seconds()? - softirq_before;
    Ok(stream)
}

fn run_peer(ctx: &Ctx, seconds: f64, placement: Placement) -> Result<Stream> {
    let mut command = Command::new(&ctx.peer);
    command.args(["bulk", "--seconds", &seconds.to_string()]);
    command.args(["--sender-cpu", &placement.sender_cpu.to_string()]);
    command.args(["--receiver-cpu", &placement.receiver_cpu.to_string()]);
    let stdout = peer::run(&mut command, Duration::from_secs_f64(seconds) + GRACE)?;
    parse(&stdout).with_context(|| format!("unexpected output from `{}`: {stdout:?}", cmd::describe(&command)))
}

fn parse(stdout: &str) -> Result<Stream> {
    let fields = peer::flat_json(stdout.trim())?;
    let field = |key: &str| fields.get(key).with_context(|| format!("no `{key}` field"));
    Ok(Stream {
        bytes: field("bytes")?.parse().context("`bytes` is not a count")?,
        rate: field("rate")?.parse().context("`rate` is not a number")?,
        cpu_seconds: field("cpu_seconds")?.parse().context("`cpu_seconds` is not a number")?,
        packets: field("segs_out")?.parse::<u64>().context("`segs_out` is not a count")?
            + field("segs_in")?.parse::<u64>().context("`segs_in` is not a count")?,
    })
}

/// The per-CPU softirq thread, found by its name.
struct Ksoftirqd {
    pid: u32,
}

impl Ksoftirqd {
    fn of(cpu: usize) -> Result<Ksoftirqd> {
        let name = format!("ksoftirqd/{cpu}");
        for entry in std::fs::read_dir("/proc").context("listing /proc")? {
            let entry = entry.context("listing /proc")?;
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
            // A process gone since the listing is not the kernel thread sought.
            if std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|comm| comm.trim() == name) {
                return Ok(Ksoftirqd { pid });
            }
        }
        bail!("no {name} kernel thread found in /proc")
    }

    /// Time on CPU: the first field of schedstat, in nanoseconds.
    fn cpu_seconds(&self) -> Result<f64> {
        let path = format!("/proc/{}/schedstat", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let ns: u64 = text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path} does not start with a count: {text:?}"))?;
        Ok(ns as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_the_peer_line() {
        let line = r#"{"bytes":957349888,"rate":1905293756.08,"receiver_cpu":1,"seconds":0.5,"cpu_seconds":0.48,"segs_in":698,"segs_out":11973,"sender_cpu":1}"#;
        let stream = parse(line).unwrap();
        assert_eq!(stream.bytes, 957_349_888);
        assert_eq!(stream.rate, 1_905_293_756.08);
        assert_eq!(stream.packets, 12_671);
        assert_eq!(stream.cpu_seconds, 0.48);
        assert!(parse(r#"{"bytes":-5,"rate":1}"#).is_err());
        assert!(parse(r#"{"bytes":5}"#).is_err());
        assert!(parse(r#"{"bytes":5,"rate":1,"cpu_seconds":1,"segs_out":3}"#).is_err());
    }
}
