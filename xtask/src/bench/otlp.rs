//! (h) What OTLP export costs: three agents side by side under the same
//! paced churn: `netwatch serve` without export, `netwatch serve` sending
//! every event as an OTLP log record (OTLP/HTTP, gzip, the defaults
//! otherwise) to a sink that answers 200 to each request, and `netwatch
//! events --json > /dev/null`. The OTLP agent's CPU beyond the plain one's
//! is the figure; none of its records may be dropped.
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
    let sink = match protocol.as_str() {
        "http" => Either::Http(Sink::start()?),
        "grpc" => Either::Grpc(GrpcSink::start()?),
        other => bail!("NETWATCH_BENCH_OTLP_PROTOCOL={other:?}: http or grpc"),
    };
    let plain_cfg = dir.join("plain.toml");
    let otlp_cfg = dir.join("otlp.toml");
    std::fs::write(&plain_cfg, "").context("writing the plain config")?;
    // NETWATCH_BENCH_OTLP_COMPRESSION=none measures without gzip.
    let compression = std::env::var("NETWATCH_BENCH_OTLP_COMPRESSION").unwrap_or_else(|_| "gzip".to_owned());
    let otlp = format!(
        "[export.otlp]\nendpoint = \"http://{}\"\nprotocol = {protocol:?}\nkinds = [\"all\"]\nmetrics_interval = \"10s\"\n\
         compression = {compression:?}\n",
        sink.addr()
    );
    std::fs::write(&otlp_cfg, otlp).context("writing the OTLP config")?;
    let (plain_s, otlp_s) = (plain_cfg.to_string_lossy().into_owned(), otlp_cfg.to_string_lossy().into_owned());
    let plain = Agent::start_with(&ctx.netwatch, &["serve", "--config", &plain_s, "--no-metrics"])?;
    let exporting = Agent::start_with(&ctx.netwatch, &["serve", "--config", &otlp_s, "--no-metrics"])?;
    let events = Agent::start(&ctx.netwatch)?;
    let at = [plain.cpu_seconds()?, exporting.cpu_seconds()?, events.cpu_seconds()?];

    let churn = peer::churn(ctx, Some(RATE))?;
    thread::sleep(Duration::from_millis(250));
    let cpu = [plain.cpu_seconds()? - at[0], exporting.cpu_seconds()? - at[1], events.cpu_seconds()? - at[2]];
    plain.stop()?;
    let (summary, tail) = exporting.stop_with_tail()?;
    events.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    let line = tail.iter().find(|l| l.starts_with("netwatch: OTLP export:")).context("no OTLP summary line")?;
    let n: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    let [sent, dropped, refused] = n[..] else { bail!("unexpected OTLP summary {line:?}") };

    let seconds = churn.seconds.max(0.001);
    let share = |c: f64| format!("{:.1}% of a core", c / seconds * 100.0);
    section.row("rate reached", format!("{} of {}", rate(churn.rate), rate(RATE.into())));
    section.row("serve CPU", share(cpu[0]));
    section.row("serve + OTLP CPU", share(cpu[1]));
    section.row("events --json CPU", share(cpu[2]));
    let (requests, bytes, bytes_are) = match sink {
        Either::Http(s) => (s.requests.load(Ordering::Relaxed), s.bytes.load(Ordering::Relaxed), compression),
        Either::Grpc(s) => {
            let (r, b) = s.stop()?;
            (r, b, "uncompressed".to_owned())
        }
    };
    section.row("OTLP protocol", &protocol);
    section.row("OTLP records sent", format!("{sent} in {requests} requests"));
    section.row(&format!("OTLP bytes ({bytes_are})"), bytes);
    section.row("OTLP CPU per record", format!("{:.2} µs", (cpu[1] - cpu[0]) / (sent.max(1) as f64) * 1e6));
    section.check("OTLP records dropped or refused", dropped + refused, "0", dropped + refused == 0);
    section.check("serve + OTLP events lost", summary.get("lost")?, "0", summary.get("lost")? == 0);
    let extra = (cpu[1] - cpu[0]) / seconds;
    section.check(
        "OTLP extra CPU",
        format!("{:+.1}% of a core", extra * 100.0),
        &format!("< {:.0}%", EXTRA_TARGET * 100.0),
        extra < EXTRA_TARGET,
    );
    Ok(())
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
