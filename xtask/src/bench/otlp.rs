//! (h) What OTLP export costs: agents side by side under the same paced
//! churn: `netwatch serve` without export, `netwatch serve` sending every
//! event as an OTLP log record (OTLP/HTTP without compression, the OTLP
//! exporter specification's default, the defaults otherwise) to a sink
//! that answers 200 to each request, and `netwatch events --json >
//! /dev/null`. The OTLP agent's CPU beyond the plain one's is the figure
//! (with the exporter thread's share and wake-ups, to see which side pays);
//! none of its records may be dropped.
//! `NETWATCH_BENCH_OTLP_COMPRESSION=gzip` compresses;
//! `NETWATCH_BENCH_OTLP_COMPARE=BIN` runs another build's exporting serve
//! beside this one's (each with its own sink), for same-run figures.
//! `NETWATCH_BENCH_OTLP_PROTOCOL=grpc` sends over OTLP/gRPC instead, to
//! tests/otlp_receiver.py's counting sink (grpcio, in the tests' venv).

use std::{
    io::{BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use super::{agent::Agent, peer, report::Section, traced::rate, Ctx};

const RATE: u32 = 10_000;
/// Extra CPU, as a share of one core (issue 20's target).
const EXTRA_TARGET: f64 = 0.05;

pub fn title() -> String {
    format!("otlp: `netwatch serve` exporting every event over OTLP, CPU beyond serve alone, churn paced at {RATE}/s")
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("nw-bench-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let protocol = std::env::var("NETWATCH_BENCH_OTLP_PROTOCOL").unwrap_or_else(|_| "http".to_owned());
    // NETWATCH_BENCH_OTLP_COMPRESSION=gzip measures with gzip; none is
    // the OTLP exporter specification's default.
    let compression = std::env::var("NETWATCH_BENCH_OTLP_COMPRESSION").unwrap_or_else(|_| "none".to_owned());
    // NETWATCH_BENCH_OTLP_COMPARE=BIN: another build's exporting serve in
    // the same run (its own sink), so the two figures share the machine's load.
    let other = std::env::var_os("NETWATCH_BENCH_OTLP_COMPARE").map(std::path::PathBuf::from);
    let plain_cfg = dir.join("plain.toml");
    std::fs::write(&plain_cfg, "").context("writing the plain config")?;
    let plain_s = plain_cfg.to_string_lossy().into_owned();
    let plain = Agent::start_with(&ctx.netwatch, &["serve", "--config", &plain_s, "--no-metrics"])?;
    let mut exporters = vec![Exporting::start(&ctx.netwatch, "this build", &dir, &protocol, &compression)?];
    if let Some(bin) = &other {
        exporters.push(Exporting::start(bin, &bin.display().to_string(), &dir, &protocol, &compression)?);
    }
    let events = Agent::start(&ctx.netwatch)?;
    let at = [plain.cpu_seconds()?, events.cpu_seconds()?];
    for e in &mut exporters {
        e.mark()?;
    }

    let churn = peer::churn(ctx, Some(RATE))?;
    thread::sleep(Duration::from_millis(250));
    let cpu = [plain.cpu_seconds()? - at[0], events.cpu_seconds()? - at[1]];
    let threads = exporters.iter().map(Exporting::threads).collect::<Result<Vec<_>>>()?;
    plain.stop()?;
    events.stop()?;
    let seconds = churn.seconds.max(0.001);
    let share = |c: f64| format!("{:.1}% of a core", c / seconds * 100.0);
    section.row("rate reached", format!("{} of {}", rate(churn.rate), rate(RATE.into())));
    section.row("OTLP protocol, compression", format!("{protocol}, {compression}"));
    section.row("serve CPU", share(cpu[0]));
    section.row("events --json CPU", share(cpu[1]));
    for (e, threads) in exporters.into_iter().zip(threads) {
        let name = e.name.clone();
        let Outcome { lost, sent, dropped, refused, requests, bytes } = e.stop()?;
        let added = threads.total() - cpu[0];
        section.row(&format!("[{name}] serve + OTLP CPU"), share(threads.total()));
        section.row(
            &format!("[{name}] of which the exporter thread"),
            format!("{}, {:.0} wake-ups/s", share(threads.exporter), threads.exporter_wakeups / seconds),
        );
        section.row(&format!("[{name}] OTLP records sent"), format!("{sent} in {requests} requests"));
        section.row(&format!("[{name}] OTLP bytes"), bytes);
        section.row(&format!("[{name}] OTLP CPU per record"), format!("{:.2} µs", added / (sent.max(1) as f64) * 1e6));
        section.check(
            &format!("[{name}] OTLP records dropped or refused"),
            dropped + refused,
            "0",
            dropped + refused == 0,
        );
        section.check(&format!("[{name}] serve + OTLP events lost"), lost, "0", lost == 0);
        let extra = added / seconds;
        section.check(
            &format!("[{name}] OTLP extra CPU"),
            format!("{:+.1}% of a core", extra * 100.0),
            &format!("< {:.0}%", EXTRA_TARGET * 100.0),
            extra < EXTRA_TARGET,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One `netwatch serve` exporting every event to a sink of its own.
struct Exporting {
    name: String,
    agent: Agent,
    sink: Either,
    /// CPU and wake-ups when the churn started.
    at: Threads,
}

/// An agent's CPU seconds since it started, and the exporter thread's
/// share of them with its wake-ups (voluntary context switches).
#[derive(Clone, Copy, Default)]
struct Threads {
    rest: f64,
    exporter: f64,
    exporter_wakeups: f64,
}

impl Threads {
    fn total(&self) -> f64 {
        self.rest + self.exporter
    }

    fn read(pid: u32) -> Result<Threads> {
        let mut t = Threads::default();
        let path = format!("/proc/{pid}/stat");
        // The whole process's, ended threads included.
        let all =
            std::fs::read_to_string(&path).with_context(|| format!("reading {path}: did netwatch exit early?"))?;
        let all = super::agent::cpu_ticks(&all)? as f64 / super::agent::clock_ticks_per_second();
        let dir = format!("/proc/{pid}/task");
        for task in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))?.flatten() {
            // A thread may end between the listing and the read.
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            let cpu = super::agent::cpu_ticks(&stat)? as f64 / super::agent::clock_ticks_per_second();
            if stat.contains("(nw-otlp)") {
                t.exporter += cpu;
                let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
                let switches = status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"));
                t.exporter_wakeups += switches.and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0);
            }
        }
        t.rest = all - t.exporter;
        Ok(t)
    }
}

impl std::ops::Sub for Threads {
    type Output = Threads;

    fn sub(self, o: Threads) -> Threads {
        Threads {
            rest: self.rest - o.rest,
            exporter: self.exporter - o.exporter,
            exporter_wakeups: self.exporter_wakeups - o.exporter_wakeups,
        }
    }
}

impl Exporting {
    fn start(
        netwatch: &std::path::Path,
        name: &str,
        dir: &std::path::Path,
        protocol: &str,
        compression: &str,
    ) -> Result<Exporting> {
        let sink = match protocol {
            "http" => Either::Http(Sink::start()?),
            "grpc" => Either::Grpc(GrpcSink::start()?),
            other => bail!("NETWATCH_BENCH_OTLP_PROTOCOL={other:?}: http or grpc"),
        };
        let cfg = dir.join(format!("otlp-{}.toml", sink.addr().port()));
        let text = format!(
            "[export.otlp]\nendpoint = \"http://{}\"\nprotocol = {protocol:?}\nkinds = [\"all\"]\nmetrics_interval = \"10s\"\n\
             compression = {compression:?}\n",
            sink.addr()
        );
        std::fs::write(&cfg, text).context("writing the OTLP config")?;
        let cfg = cfg.to_string_lossy().into_owned();
        let agent = Agent::start_with(netwatch, &["serve", "--config", &cfg, "--no-metrics"])?;
        Ok(Exporting { name: name.to_owned(), agent, sink, at: Threads::default() })
    }

    fn mark(&mut self) -> Result<()> {
        self.at = Threads::read(self.agent.pid())?;
        Ok(())
    }

    fn threads(&self) -> Result<Threads> {
        Ok(Threads::read(self.agent.pid())? - self.at)
    }

    /// Stops the agent and its sink: what each said.
    fn stop(self) -> Result<Outcome> {
        let (summary, tail) = self.agent.stop_with_tail()?;
        let line = tail.iter().find(|l| l.starts_with("netwatch: OTLP export:")).context("no OTLP summary line")?;
        let n: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
        let [sent, dropped, refused] = n[..] else { bail!("unexpected OTLP summary {line:?}") };
        let (requests, bytes) = match self.sink {
            Either::Http(s) => (s.requests.load(Ordering::Relaxed), s.bytes.load(Ordering::Relaxed)),
            Either::Grpc(s) => s.stop()?,
        };
        Ok(Outcome { lost: summary.get("lost")?, sent, dropped, refused, requests, bytes })
    }
}

/// An exporting agent's counts: events it lost, OTLP records it sent,
/// dropped and had refused; the requests and bytes its sink took.
struct Outcome {
    lost: u64,
    sent: u64,
    dropped: u64,
    refused: u64,
    requests: u64,
    bytes: u64,
}

enum Either {
    Http(Sink),
    Grpc(GrpcSink),
}

impl Either {
    fn addr(&self) -> SocketAddr {
        match self {
            Self::Http(s) => s.addr,
            Self::Grpc(s) => s.addr,
        }
    }
}

/// tests/otlp_receiver.py --sink: an OTLP/gRPC endpoint that counts.
struct GrpcSink {
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
}

impl GrpcSink {
    fn start() -> Result<GrpcSink> {
        use std::io::BufRead as _;
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).context("a free port")?.port();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/otlp_receiver.py");
        let python = format!("{}/bin/python3", crate::setup::PYTHON_VENV);
        let mut child = std::process::Command::new(&python)
            .arg(&script)
            .args(["--protocol", "grpc", "--sink", "--port", &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("starting {} with {python} (`cargo xtask setup` makes the venv)", script.display())
            })?;
        let mut stdout = BufReader::new(child.stdout.take().context("the sink's stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).context("the sink's ready line")?;
        if !line.starts_with("ready") {
            let _ = child.kill();
            bail!("the OTLP/gRPC sink said {line:?}");
        }
        Ok(GrpcSink { child, stdout, addr: SocketAddr::from(([127, 0, 0, 1], port)) })
    }

    /// Stops it: requests and bytes it took.
    fn stop(mut self) -> Result<(u64, u64)> {
        use std::io::BufRead as _;
        // SAFETY: the pid of our own child, not yet waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut line = String::new();
        self.stdout.read_line(&mut line).context("the sink's counts")?;
        let _ = self.child.wait();
        let n: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [requests, bytes] = n[..] else { bail!("the OTLP/gRPC sink said {line:?}") };
        Ok((requests, bytes))
    }
}

/// An OTLP/HTTP endpoint that takes every request and keeps nothing.
struct Sink {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Sink {
    fn start() -> Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the OTLP sink")?;
        let addr = listener.local_addr().context("the OTLP sink's address")?;
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (r, b) = (requests.clone(), bytes.clone());
        thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (r, b) = (r.clone(), b.clone());
                thread::spawn(move || {
                    let mut w = stream.try_clone().ok();
                    let mut reader = BufReader::new(stream);
                    while let Some(len) = head(&mut reader) {
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            break;
                        }
                        r.fetch_add(1, Ordering::Relaxed);
                        b.fetch_add(len as u64, Ordering::Relaxed);
                        let ok =
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        if w.as_mut().is_none_or(|w| w.write_all(ok).is_err()) {
                            break;
                        }
                    }
                });
            }
        });
        Ok(Sink { addr, requests, bytes })
    }
}

/// Reads one request head; its content-length.
fn head(reader: &mut impl std::io::BufRead) -> Option<usize> {
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some(len);
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
}
