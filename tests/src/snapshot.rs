//! `netwatch snapshot --json [--for D]`: run, and its document parsed
//! strictly (every field of the contract present with its type).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::netwatch::{netwatch_bin, require_root};
use crate::process::{kill_and_reap, wait_timeout, Lines};

/// Printed on stderr once the programs are attached and the table seeded.
pub const WATCHING_PREFIX: &str = "netwatch: watching";
/// Attaching, seeding every namespace, on a busy 2-CPU machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Beyond `--for`: final reads, printing, detaching.
const EXIT_GRACE: Duration = Duration::from_secs(30);

/// One row of `sockets`.
#[derive(Clone, Debug)]
pub struct NwSocket {
    pub proto: String,
    pub family: String,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub state: String,
    pub netns: u64,
    pub cookie: Option<u64>,
    pub inode: u64,
    pub uid: u32,
    /// `(pid, comm)`, once per process.
    pub owners: BTreeSet<(u32, String)>,
    pub traffic: crate::event::Traffic,
    pub json: String,
}

/// One entry of `closed`.
#[derive(Clone, Debug)]
pub struct NwClosed {
    pub proto: String,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub netns: u64,
    pub pid: u32,
    pub comm: String,
    pub last_state: String,
    pub ending: String,
    pub duration_ms: Option<f64>,
    pub traffic: crate::event::Traffic,
    pub json: String,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub sockets: Vec<NwSocket>,
    pub closed: Vec<NwClosed>,
    pub totals: BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn total(&self, key: &str) -> u64 {
        *self.totals.get(key).unwrap_or_else(|| panic!("totals has no `{key}`: {:?}", self.totals))
    }
}

/// `netwatch snapshot --json`: the table once, from the kernel's sockets.
pub fn once() -> Snapshot {
    require_root();
    let out = Command::new(netwatch_bin())
        .args(["snapshot", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running netwatch snapshot --json: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "netwatch snapshot --json exited with {}; stderr:\n{stderr}", out.status);
    parse(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|e| panic!("netwatch snapshot --json: {e}"))
}

/// A running `netwatch snapshot --json --for D`; killed on drop.
pub struct Watch {
    child: Child,
    stdout: Option<Lines>,
    stderr: Lines,
    span: Duration,
}

impl Watch {
    /// Starts it and waits until it watches (programs attached, table seeded).
    pub fn start(span: Duration) -> Self {
        Self::start_with(span, &[])
    }

    /// [`Watch::start`] with more arguments (e.g. `--history N`).
    pub fn start_with(span: Duration, extra: &[&str]) -> Self {
        require_root();
        let for_arg = format!("{}ms", span.as_millis());
        let mut child = Command::new(netwatch_bin())
            .args(["snapshot", "--json", "--for", &for_arg])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning netwatch snapshot --for {for_arg}: {e}"));
        let stdout = Some(Lines::spawn(child.stdout.take().expect("piped stdout")));
        let stderr = Lines::spawn(child.stderr.take().expect("piped stderr"));
        let mut w = Self { child, stdout, stderr, span };
        if w.stderr.wait_for(READY_TIMEOUT, |l| l.starts_with(WATCHING_PREFIX)).is_none() {
            kill_and_reap(&mut w.child);
            panic!(
                "netwatch snapshot --for {for_arg} printed no `{WATCHING_PREFIX}` within {READY_TIMEOUT:?}; stderr:\n{}",
                w.stderr.snapshot().join("\n")
            );
        }
        w
    }

    /// Waits for it to print and exit 0; returns the document.
    pub fn finish(mut self) -> Snapshot {
        let limit = self.span + EXIT_GRACE;
        let Some(status) = wait_timeout(&mut self.child, limit) else {
            kill_and_reap(&mut self.child);
            panic!("netwatch snapshot --for still running after {limit:?}; killed. stderr:\n{}", self.stderr());
        };
        let lines = self.stdout.take().map(|o| o.finish(Duration::from_secs(10))).unwrap_or_default();
        assert!(status.success(), "netwatch snapshot --for exited with {status}; stderr:\n{}", self.stderr());
        parse(&lines.join("\n")).unwrap_or_else(|e| panic!("netwatch snapshot --for: {e}; stderr:\n{}", self.stderr()))
    }

    fn stderr(&self) -> String {
        self.stderr.snapshot().join("\n")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Parses the one JSON document.
pub fn parse(text: &str) -> Result<Snapshot, String> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| format!("output is not one JSON document: {e}"))?;
    let array = |key: &str| v.get(key).and_then(Value::as_array).ok_or_else(|| format!("no `{key}` array"));
    let sockets = array("sockets")?.iter().map(socket).collect::<Result<_, _>>()?;
    let closed = array("closed")?.iter().map(closed).collect::<Result<_, _>>()?;
    let totals = v
        .get("totals")
        .and_then(Value::as_object)
        .ok_or("no `totals` object")?
        .iter()
        .map(|(k, n)| Ok((k.clone(), n.as_u64().ok_or_else(|| format!("totals.{k} is not a count"))?)))
        .collect::<Result<_, String>>()?;
    Ok(Snapshot { sockets, closed, totals })
}

fn socket(v: &Value) -> Result<NwSocket, String> {
    let json = v.to_string();
    let ctx = |e: String| format!("{e} in socket {json}");
    let owners = v
        .get("owners")
        .and_then(Value::as_array)
        .ok_or_else(|| ctx("no `owners` array".into()))?
        .iter()
        .map(|o| Ok((u32_of(o, "pid")?, string(o, "comm")?)))
        .collect::<Result<_, String>>()
        .map_err(ctx)?;
    let cookie = match v.get("cookie") {
        None | Some(Value::Null) => None,
        Some(c) => Some(c.as_u64().ok_or_else(|| ctx("cookie is not a number".into()))?),
    };
    Ok(NwSocket {
        proto: string(v, "proto").map_err(ctx)?,
        family: string(v, "family").map_err(ctx)?,
        saddr: ip(v, "saddr").map_err(ctx)?,
        sport: port(v, "sport").map_err(ctx)?,
        daddr: ip(v, "daddr").map_err(ctx)?,
        dport: port(v, "dport").map_err(ctx)?,
        state: string(v, "state").map_err(ctx)?,
        netns: u64_of(v, "netns").map_err(ctx)?,
        cookie,
        inode: u64_of(v, "inode").map_err(ctx)?,
        uid: u32_of(v, "uid").map_err(ctx)?,
        owners,
        traffic: crate::event::Traffic::from_json(v).map_err(ctx)?,
        json,
    })
}

fn closed(v: &Value) -> Result<NwClosed, String> {
    let json = v.to_string();
    let ctx = |e: String| format!("{e} in closed entry {json}");
    let duration_ms = match v.get("duration_ms") {
        None | Some(Value::Null) => None,
        Some(d) => Some(d.as_f64().ok_or_else(|| ctx("duration_ms is not a number".into()))?),
    };
    Ok(NwClosed {
        proto: string(v, "proto").map_err(ctx)?,
        saddr: ip(v, "saddr").map_err(ctx)?,
        sport: port(v, "sport").map_err(ctx)?,
        daddr: ip(v, "daddr").map_err(ctx)?,
        dport: port(v, "dport").map_err(ctx)?,
        netns: u64_of(v, "netns").map_err(ctx)?,
        pid: u32_of(v, "pid").map_err(ctx)?,
        comm: string(v, "comm").map_err(ctx)?,
        last_state: string(v, "last_state").map_err(ctx)?,
        ending: string(v, "ending").map_err(ctx)?,
        duration_ms,
        traffic: crate::event::Traffic::from_json(v).map_err(ctx)?,
        json,
    })
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("`{key}` missing or not a string"))
}

fn u64_of(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key).and_then(Value::as_u64).ok_or_else(|| format!("`{key}` missing or not an unsigned integer"))
}

fn u32_of(v: &Value, key: &str) -> Result<u32, String> {
    u32::try_from(u64_of(v, key)?).map_err(|_| format!("`{key}` does not fit u32"))
}

fn port(v: &Value, key: &str) -> Result<u16, String> {
    u16::try_from(u64_of(v, key)?).map_err(|_| format!("`{key}` is not a port"))
}

fn ip(v: &Value, key: &str) -> Result<IpAddr, String> {
    let s = string(v, key)?;
    s.parse().map_err(|_| format!("`{key}` = {s:?} is not an IP address"))
}
