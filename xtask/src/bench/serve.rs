//! (g) The agent's cost: `netwatch serve` (live table, metrics scraped once
//! a second, alerts checked once a second; no export) and `netwatch events
//! --json > /dev/null` run side by side under the same paced churn; serve's
//! CPU beyond what the event stream costs is the figure.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::{agent::Agent, peer, report::Section, traced::rate, Ctx};

const RATE: u32 = 10_000;
/// Extra CPU, as a share of one core.
const EXTRA_TARGET: f64 = 0.05;
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

pub fn title() -> String {
    format!("serve: `netwatch serve` CPU beyond `netwatch events --json`, churn paced at {RATE}/s")
}

pub fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("nw-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("netwatch.toml");
    // Defaults, written out so no /etc file of the machine's changes the run.
    std::fs::write(&config, "").with_context(|| format!("writing {}", config.display()))?;
    let metrics = free_addr()?;
    let (config_s, metrics_s) = (config.to_string_lossy().into_owned(), metrics.to_string());
    let serve = Agent::start_with(&ctx.netwatch, &["serve", "--config", &config_s, "--metrics", &metrics_s])?;
    let events = Agent::start(&ctx.netwatch)?;
    let (serve_at, events_at) = (serve.cpu_seconds()?, events.cpu_seconds()?);

    let scraper = Scraper::start(metrics);
    let churn = peer::churn(ctx, Some(RATE));
    let scrapes = scraper.stop();
    let churn = churn?;
    thread::sleep(Duration::from_millis(250));
    let serve_cpu = serve.cpu_seconds()? - serve_at;
    let events_cpu = events.cpu_seconds()? - events_at;
    let serve_summary = serve.stop()?;
    events.stop()?;
    let _ = std::fs::remove_dir_all(&dir);

    let seconds = churn.seconds.max(0.001);
    section.row("rate reached", format!("{} of {}", rate(churn.rate), rate(RATE.into())));
    section.row("scrapes answered", scrapes);
    section.row("serve CPU", format!("{:.1}% of a core", serve_cpu / seconds * 100.0));
    section.row("events --json CPU", format!("{:.1}% of a core", events_cpu / seconds * 100.0));
    section.row("serve events lost", serve_summary.get("lost")?);
    let extra = (serve_cpu - events_cpu) / seconds;
    section.check(
        "serve extra CPU",
        format!("{:+.1}% of a core", extra * 100.0),
        &format!("< {:.0}%", EXTRA_TARGET * 100.0),
        extra < EXTRA_TARGET,
    );
    Ok(())
}

fn free_addr() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port for the metrics endpoint")?;
    l.local_addr().context("reading the free port")
}

/// Scrapes the endpoint once a second, as Prometheus would (more often).
struct Scraper {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<()>,
    count: Arc<AtomicU64>,
}

impl Scraper {
    fn start(addr: SocketAddr) -> Scraper {
        let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (flag, n) = (stop.clone(), count.clone());
        let handle = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if scrape(addr).is_ok_and(|body| body.contains("netwatch_sockets")) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(SCRAPE_EVERY);
            }
        });
        Scraper { stop, handle, count }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.count.load(Ordering::Relaxed)
    }
}

fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}
