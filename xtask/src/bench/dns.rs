//! (i) What DNS capture costs a DNS-heavy workload: a resolver loop (glibc's
//! `getaddrinfo` from Python, one UDP query and answer each) against the
//! tests' own DNS server (tests/dns_server.py) in a namespace of the
//! bench's own, with and without `netwatch events` tracing, interleaved in
//! the same run, each traced run between two untraced ones. Every answer is copied to the agent and
//! parsed there; the ratio of the two rates is the figure (issue 18's
//! target: at least 0.95). Then the same loop over TCP (`options use-vc`:
//! a connection, a query and an answer each), where each answer is a
//! segment the capture copies, and the resolver's connection makes events
//! of its own: a connection a query, so what it costs is what `compare`
//! measures for the churn, and it is reported beside, with no target.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use super::{
    agent::Agent,
    pairs::{self, Pairs},
    report::Section,
    Ctx,
};
use crate::cmd;

const TARGET: f64 = 0.95;
/// Pairs per arm, and the length of each run.
const ROUNDS: usize = 6;
const RUN_SECONDS: f64 = 2.0;
const NAME: &str = "svc.bench.internal";

pub const TITLE: &str = "dns: resolver loop (getaddrinfo, UDP, then TCP) with netwatch tracing vs without, same run";

const CLIENT: &str = r#"
import socket, sys, time
name, seconds = sys.argv[1], float(sys.argv[2])
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)
    n += 1
print(n / seconds, flush=True)
"#;

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let ns = Netns::new()?;
    let _server = ns.server()?;
    // With netwatch; with it but no DNS capture (NETWATCH_NO_DNS=1), which
    // tells the capture's own cost from the rest of what tracing a query
    // costs (its UDP socket's events). Each run is bracketed by runs
    // without, as in `compare`: one pair is noise on these machines.
    let traced = |no_capture: &'static str| {
        let (ns, netwatch) = (&ns, ctx.netwatch.clone());
        move || -> Result<f64> {
            let agent = Agent::start_on(&netwatch, &["events", "--json"], &[("NETWATCH_NO_DNS", no_capture)], None)?;
            let traced = ns.query_loop(RUN_SECONDS);
            agent.stop()?;
            traced
        }
    };
    let (mut capture, mut no_capture) = (traced("0"), traced("1"));
    let arms = pairs::rotate(ROUNDS, || ns.query_loop(RUN_SECONDS), &mut [&mut capture, &mut no_capture])?;
    let [capture, no_capture] = <[Pairs; 2]>::try_from(arms).ok().context("one result per arm")?;
    capture.report(section, "with netwatch (DNS capture on), queries/s", Some(TARGET))?;
    no_capture.report(section, "with netwatch, NETWATCH_NO_DNS=1, queries/s", None)?;
    // Over TCP: the resolv.conf is read by each loop's process.
    ns.resolv_conf(true)?;
    let mut tcp = traced("0");
    let arms = pairs::rotate(ROUNDS, || ns.query_loop(RUN_SECONDS), &mut [&mut tcp])?;
    let [tcp] = <[Pairs; 1]>::try_from(arms).ok().context("one result per arm")?;
    // No target of its own: each query is a TCP connection opened and
    // closed, so this is the churn's figure (`compare`) at a resolver's pace.
    tcp.report(section, "over TCP (use-vc), with netwatch (DNS capture on), queries/s", None)?;
    Ok(())
}

/// `ip netns add`, with lo up and a resolv.conf naming 127.0.0.1; deleted
/// (with the resolv.conf) on drop.
struct Netns {
    name: String,
    dir: PathBuf,
}

impl Netns {
    fn new() -> Result<Self> {
        let name = format!("nwbench-dns-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let dir = PathBuf::from("/etc/netns").join(&name);
        let ns = Self { name, dir };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        std::fs::create_dir_all(&ns.dir).with_context(|| format!("creating {}", ns.dir.display()))?;
        ns.resolv_conf(false)?;
        Ok(ns)
    }

    /// Points the namespace's resolver at the server, over TCP only with `tcp`.
    fn resolv_conf(&self, tcp: bool) -> Result<()> {
        let options = if tcp { "options use-vc\n" } else { "" };
        std::fs::write(self.dir.join("resolv.conf"), format!("nameserver 127.0.0.1\n{options}"))
            .context("writing the resolv.conf")
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    fn server(&self) -> Result<Server> {
        let script = cmd::root().join("tests/dns_server.py");
        let zone = format!("{{\"{NAME}\": [[\"A\", 300, \"127.0.0.77\"]]}}");
        let mut c = self.exec(&["python3", &script.to_string_lossy(), &zone]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = c.spawn().with_context(|| format!("could not start `{}`", cmd::describe(&c)))?;
        let mut first = String::new();
        BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut first)?;
        let server = Server(child);
        if !first.starts_with("ready") {
            bail!("the DNS server did not start (it said {first:?})");
        }
        Ok(server)
    }

    /// Queries per second of one resolver loop of `seconds`.
    fn query_loop(&self, seconds: f64) -> Result<f64> {
        let mut c = self.exec(&["python3", "-c", CLIENT, NAME, &seconds.to_string()]);
        let out = c.output().with_context(|| format!("could not run `{}`", cmd::describe(&c)))?;
        cmd::check(&c, out.status)?;
        String::from_utf8_lossy(&out.stdout).trim().parse().context("reading the resolver loop's rate")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let mut c = Command::new("ip");
    c.args(args);
    let status = c.status().with_context(|| format!("could not run `{}`", cmd::describe(&c)))?;
    cmd::check(&c, status)
}
