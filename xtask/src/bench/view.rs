//! (i) The live view on a busy server (issue 21): `netwatch` full screen
//! in a tmux pane over 100,000 rows (TIME_WAIT sockets of an unpaced churn)
//! while a churn paced at 10,000 connections/s runs. A key (`s`, the next
//! sort) is pressed every few hundred milliseconds and the time until the
//! screen shows its effect is measured; the view's CPU is set beside
//! `netwatch events --json`'s on the same churn.

use std::{
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::{
    agent::{clock_ticks_per_second, cpu_ticks, Agent},
    peer,
    report::Section,
    traced::rate,
    Ctx,
};

const RATE: u32 = 10_000;
const ROWS: usize = 100_000;
const KEY_TARGET: Duration = Duration::from_millis(100);
const PRESSES: usize = 20;

pub fn title() -> String {
    format!("view: key-to-redraw of the live view with {ROWS} rows, churn paced at {RATE}/s; CPU vs events --json")
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let rows = fill(ctx)?;
    section.row("TIME_WAIT sockets", rows);
    let tmux = Tmux::start(&ctx.netwatch)?;
    let result = measure(ctx, &tmux, section);
    tmux.stop();
    result
}

fn time_wait() -> Result<usize> {
    let out = Command::new("ss").args(["-tanH", "state", "time-wait"]).output().context("running ss")?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

/// Unpaced churn, closing the client side first (TIME_WAIT on ephemeral
/// ports, over several listeners), until there are `ROWS` TIME_WAIT sockets.
fn fill(ctx: &Ctx) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut have = time_wait()?;
    while have < ROWS && Instant::now() < deadline {
        let mut command = Command::new(&ctx.peer);
        command.args(["churn", "--seconds", "3", "--close-first", "client", "--listeners", "8"]);
        peer::run(&mut command, Duration::from_secs(60))?;
        have = time_wait()?;
    }
    Ok(have)
}

fn measure(ctx: &Ctx, tmux: &Tmux, section: &mut Section) -> Result<()> {
    let events = Agent::start(&ctx.netwatch)?;
    let view_pid = tmux.netwatch_pid()?;
    let (view_at, events_at) = (cpu(view_pid)?, events.cpu_seconds()?);
    let peer_ctx = Ctx { netwatch: ctx.netwatch.clone(), peer: ctx.peer.clone(), seconds: ctx.seconds };
    let churn = thread::spawn(move || peer::churn(&peer_ctx, Some(RATE)));
    thread::sleep(Duration::from_secs(1));
    let mut latencies = Vec::new();
    for _ in 0..PRESSES {
        let before = tmux.header()?;
        let pressed = Instant::now();
        tmux.key("s")?;
        while tmux.header()? == before {
            if pressed.elapsed() > Duration::from_secs(5) {
                bail!("the view did not redraw within 5 s of a key");
            }
            thread::sleep(Duration::from_millis(2));
        }
        latencies.push(pressed.elapsed());
        thread::sleep(Duration::from_millis(300));
    }
    let churn = churn.join().map_err(|_| anyhow::anyhow!("the churn thread panicked"))??;
    let seconds = churn.seconds.max(0.001);
    let view_cpu = cpu(view_pid)? - view_at;
    let events_cpu = events.cpu_seconds()? - events_at;
    events.stop()?;
    let shown = tmux.capture()?.lines().find(|l| l.contains("Connections:")).unwrap_or_default().trim().to_owned();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = latencies.last().copied().unwrap_or_default();
    section.row("rate reached", format!("{} of {}", rate(churn.rate), rate(RATE.into())));
    section.row("table", shown);
    section.row("key-to-redraw p50", format!("{} ms", p50.as_millis()));
    section.check("key-to-redraw max", format!("{} ms", max.as_millis()), "< 100 ms", max < KEY_TARGET);
    section.row("view CPU", format!("{:.1}% of a core", view_cpu / seconds * 100.0));
    section.row("events --json CPU", format!("{:.1}% of a core", events_cpu / seconds * 100.0));
    Ok(())
}

fn cpu(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(cpu_ticks(&stat)? as f64 / clock_ticks_per_second())
}

/// A private tmux server running the view in a 200x50 pane.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(netwatch: &Path) -> Result<Tmux> {
        let tmux = Tmux { socket: format!("nw-bench-view-{}", std::process::id()) };
        let bin = netwatch.to_str().context("netwatch's path is not UTF-8")?;
        tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "view", "-x", "200", "-y", "50", bin])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !tmux.header()?.contains(" netwatch ") {
            if Instant::now() > deadline {
                bail!("the view did not start within 60 s:\n{}", tmux.capture()?);
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running tmux (is it installed?)")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn capture(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-t", "view"])
    }

    fn header(&self) -> Result<String> {
        Ok(self.capture()?.lines().next().unwrap_or_default().to_owned())
    }

    fn key(&self, key: &str) -> Result<()> {
        self.run(&["send-keys", "-t", "view", key]).map(drop)
    }

    /// The pane's process, or its child when tmux ran it under a shell.
    fn netwatch_pid(&self) -> Result<u32> {
        let pane: u32 = self.run(&["display-message", "-p", "-t", "view", "#{pane_pid}"])?.trim().parse()?;
        let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm(pane).trim() == "netwatch" {
            return Ok(pane);
        }
        let children = std::fs::read_to_string(format!("/proc/{pane}/task/{pane}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .find(|&p| comm(p).trim() == "netwatch")
            .context("no netwatch process in the tmux pane")
    }

    fn stop(self) {
        let _ = self.key("q");
        thread::sleep(Duration::from_secs(2));
        let _ = self.run(&["kill-server"]);
    }
}
