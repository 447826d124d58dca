//! Drives the load generator, `nw-peer churn` (tests crate): a one-thread
//! loopback connect/accept/close loop that prints one JSON line,
//! `{"connections":N,"seconds":S,"rate":R}`.

use std::{
    collections::BTreeMap,
    io::Read as _,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use super::Ctx;
use crate::cmd;

/// Slack beyond `--seconds` before a peer that never finishes is killed.
const GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq)]
pub struct Churn {
    pub connections: u64,
    pub seconds: f64,
    /// Connections per second, as measured by the peer.
    pub rate: f64,
    /// Seconds the scheduler gave the peer: run time plus time waiting
    /// runnable (see `nw-peer churn`); `None` when it could not say.
    pub given_seconds: Option<f64>,
}

impl Churn {
    /// Connections per second the machine gave the generator: wall time
    /// less what a hypervisor took from this VM, which on a shared host
    /// moves the wall-clock rate by tens of percent between runs.
    pub fn given_rate(&self) -> Option<f64> {
        self.given_seconds.filter(|s| *s > 0.0).map(|s| self.connections as f64 / s)
    }
}

/// Runs the peer for `ctx.seconds`, at full speed or paced to `rate` connections/s.
pub fn churn(ctx: &Ctx, rate: Option<u32>) -> Result<Churn> {
    let mut command = Command::new(&ctx.peer);
    command.args(["churn", "--seconds", &ctx.seconds.to_string()]);
    if let Some(rate) = rate {
        command.args(["--rate", &rate.to_string()]);
    }
    let stdout = run(&mut command, Duration::from_secs(ctx.seconds) + GRACE)?;
    parse(&stdout).with_context(|| format!("unexpected output from `{}`: {stdout:?}", cmd::describe(&command)))
}

/// Runs an `nw-peer` command to its end and returns what it printed (one
/// short JSON line); a peer still running after `limit` is killed, and a
/// failed one is an error. stderr stays inherited: the peer's own
/// complaints are worth seeing.
pub fn run(command: &mut Command, limit: Duration) -> Result<String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("could not start `{}`", cmd::describe(command)))?;
    let Some(status) = cmd::wait_timeout(&mut child, limit)? else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("`{}` was still running after {} s: killed", cmd::describe(command), limit.as_secs());
    };
    // One short line: it fits in the pipe, so reading after exit is safe.
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).context("reading nw-peer's output")?;
    }
    cmd::check(command, status)?;
    Ok(stdout)
}

fn parse(stdout: &str) -> Result<Churn> {
    let line = stdout.lines().rev().find(|line| line.trim_start().starts_with('{')).context("no JSON line")?;
    let fields = flat_json(line)?;
    let field = |key: &str| fields.get(key).with_context(|| format!("no `{key}` field"));
    let optional = |key: &str| -> Result<Option<f64>> {
        fields.get(key).map(|v| v.parse().with_context(|| format!("`{key}` is not a number"))).transpose()
    };
    let given = match (optional("ran_seconds")?, optional("waited_seconds")?) {
        (Some(ran), Some(waited)) => Some(ran + waited),
        _ => None,
    };
    Ok(Churn {
        connections: field("connections")?.parse().context("`connections` is not a count")?,
        seconds: field("seconds")?.parse().context("`seconds` is not a number")?,
        rate: field("rate")?.parse().context("`rate` is not a number")?,
        given_seconds: given,
    })
}

/// A flat JSON object of numbers, as the peer prints it; enough for this
/// contract without pulling in a JSON library.
pub(super) fn flat_json(line: &str) -> Result<BTreeMap<String, String>> {
    let body = line.trim().strip_prefix('{').and_then(|rest| rest.strip_suffix('}')).context("not a JSON object")?;
    body.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once(':').with_context(|| format!("`{pair}` is not key:value"))?;
            Ok((key.trim().trim_matches('"').to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse, Churn};

    #[test]
    fn parses_the_last_json_line() {
        let out = "warming up\n{\"connections\": 123456, \"seconds\": 10.0, \"rate\": 12345.6}\n";
        assert_eq!(
            parse(out).unwrap(),
            Churn { connections: 123456, seconds: 10.0, rate: 12345.6, given_seconds: None }
        );
        let out = "{\"connections\":1000,\"seconds\":1.0,\"rate\":1000,\"ran_seconds\":0.4,\"waited_seconds\":0.1}";
        let c = parse(out).unwrap();
        assert_eq!(c.given_rate(), Some(2000.0));
    }

    #[test]
    fn rejects_missing_fields_and_non_json() {
        assert!(parse("{\"connections\":5,\"seconds\":1}").is_err());
        assert!(parse("connections=5").is_err());
        assert!(parse("{\"connections\":-1,\"seconds\":1,\"rate\":2}").is_err());
    }
}
