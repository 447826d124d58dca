//! `netwatch serve`: the agent. One loop owns the live table and everything
//! fed from it: metrics (computed from the table at each scrape), export of
//! events, and alerts checked once a second. Signals: SIGTERM/SIGINT stop it
//! (detaching every program), SIGHUP reloads the config file.

pub mod alerts;
pub mod config;
pub mod export;
pub mod http;
pub mod latency;
pub mod listen_drops;
pub mod listeners;
pub mod metrics;
pub mod netns_minisocks;
pub mod otlp;
pub mod rotate;
pub mod syslog;
pub mod tcpext;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use crate::{event::clock::monotonic_ns, live::Live};
use alerts::Engine;
use config::Config;
use export::Exporter;
use metrics::Metrics;

/// Closed connections kept: none, the agent reads no history.
const HISTORY: usize = 0;
/// How often alerts are checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for kernel events before scrapes and signals are looked at.
const POLL: Duration = Duration::from_millis(100);

enum Control {
    Stop,
    Reload,
}

/// SIGINT/SIGTERM (stop) and SIGHUP (reload), as messages the agent loop
/// reads between batches.
fn signals() -> Result<mpsc::UnboundedReceiver<Control>> {
    let mut stop = crate::live::StopSignals::install()?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                () = stop.recv() => Control::Stop,
                _ = sighup.recv() => Control::Reload,
            };
            if tx.send(c).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// What a config (re)load produces.
struct Settings {
    config: Config,
    baseline: Option<std::collections::BTreeSet<crate::baseline::ListenerKey>>,
    exporter: Exporter,
}

/// Where the settings come from: the config file (named in messages) and
/// how to read it with the command line laid over it, again on SIGHUP.
pub struct Source<L> {
    pub path: std::path::PathBuf,
    pub load: L,
}

fn settings(load: impl Fn() -> Result<Config>) -> Result<Settings> {
    let config = load()?;
    let baseline = config.alerts.baseline.as_deref().map(crate::baseline::Baseline::load).transpose()?;
    let baseline = baseline.map(|b| b.listener_keys());
    let exporter = Exporter::new(&config.export)?;
    Ok(Settings { config, baseline, exporter })
}

pub async fn run<L: Fn() -> Result<Config>>(source: Source<L>) -> Result<()> {
    let Settings { config, baseline, exporter } = settings(&source.load)?;
    let mut agent = Agent {
        metrics: Metrics::new(config.metrics.top_processes, config.metrics.top_listeners),
        alerts: Engine::new(config.alerts.clone(), baseline),
        exporter,
        config,
        namespaces: crate::seed::OtherNamespaces::default(),
        drops: listen_drops::Reader::default(),
        drop_events: crate::event::listen_drops::Watch::default(),
    };
    let (scrape_tx, mut scrapes) = mpsc::channel::<http::Scrape>(16);
    let server = match agent.config.metrics_addr()? {
        Some(addr) => {
            if !addr.ip().is_loopback() {
                eprintln!("netwatch: warning: metrics on {addr} are reachable from other machines");
            }
            Some(http::spawn(addr, scrape_tx).await?)
        }
        None => None,
    };
    let mut control = signals()?;

    let mut live = Live::start(HISTORY).await?;
    // The export's JSON carries each event's workload (and a reload may
    // turn the export on), so the model resolves it for every event.
    live.table.event_workloads = true;
    for w in live.warnings() {
        eprintln!("netwatch: warning: {w}");
    }
    eprintln!(
        "netwatch: tracing TCP and UDP sockets as a service: metrics {}, export {}, pid {}",
        server.as_ref().map_or_else(|| "off".to_owned(), |(a, _)| format!("http://{a}/metrics")),
        agent.exporter.describe(),
        std::process::id()
    );
    let mut next_check = Instant::now();
    // `Live::next` is awaited to the end every time, never raced against
    // other futures in a select: once it has applied a batch to the table,
    // dropping it half-way (in its sock_diag re-read) would lose that
    // batch's events for export and alerts. Scrapes and signals wait at
    // most one POLL.
    let result = loop {
        let Some(update) = live.next(POLL).await else { break Err(anyhow::anyhow!("the event reader stopped")) };
        agent.update(update);
        while let Ok(reply) = scrapes.try_recv() {
            let _ = reply.send(agent.metrics.scrape(&live.table, agent.exporter.errors));
        }
        if let Some(o) = &mut agent.exporter.otlp {
            if o.metrics_due() {
                o.metrics(agent.metrics.scrape(&live.table, agent.exporter.errors));
            }
        }
        match control.try_recv() {
            Ok(Control::Stop) => break Ok(()),
            Ok(Control::Reload) => agent.reload(&source),
            Err(_) => {}
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + CHECK_INTERVAL;
            for w in netns_minisocks::refresh(&mut agent.namespaces, &mut live.table, monotonic_ns()) {
                eprintln!("netwatch: warning: {w}");
            }
            agent.check(&live.table);
        }
    };
    if let Some((_, task)) = server {
        task.abort();
    }
    agent.exporter.flush();
    agent.exporter.finish();
    let counts = live.table.totals.clone();
    let latency = live.finish().await?;
    eprintln!("{}", crate::stats::Summary(&counts, &latency));
    result
}

struct Agent {
    config: Config,
    metrics: Metrics,
    alerts: Engine,
    exporter: Exporter,
    namespaces: crate::seed::OtherNamespaces,
    drops: listen_drops::Reader,
    /// Turns the listeners' counters into `listen_drop` events.
    drop_events: crate::event::listen_drops::Watch,
}

impl Agent {
    fn update(&mut self, u: crate::live::Update) {
        self.metrics.drained(u.events.len());
        for e in &u.events {
            self.metrics.observe(e);
            self.alerts.observe(e);
            self.exporter.event(e);
        }
        if u.lost.total() > 0 {
            eprintln!(
                "netwatch: warning: {} events lost ({}); table re-read from the kernel",
                u.lost.total(),
                u.lost.causes()
            );
            self.exporter.lost(&u.lost);
        }
        for w in &u.warnings {
            eprintln!("netwatch: warning: {w}");
        }
        self.exporter.flush();
    }

    fn check(&mut self, table: &crate::table::Table) {
        let drops = self.drops.read_or_warn(table, &self.namespaces);
        if let Some((d, unread)) = &drops {
            self.metrics.listen_drops(d);
            for mut e in self.drop_events.events(d, unread, monotonic_ns(), |cookie| table.opened_ns(cookie)) {
                table.complete(&mut e);
                self.metrics.observe(&e);
                self.exporter.event(&e);
            }
        }
        self.alerts.listener_drops(drops.map(|(d, _)| d));
        for a in self.alerts.evaluate(table, Instant::now()) {
            eprintln!("netwatch: alert: {}", a.message);
            if a.firing() {
                self.metrics.alert(a.alert);
            }
            self.exporter.alert(&a.json_line(), a.firing());
        }
        self.exporter.flush();
    }

    /// SIGHUP: the whole config is read and checked before any of it is
    /// used, so a bad file changes nothing.
    fn reload<L: Fn() -> Result<Config>>(&mut self, source: &Source<L>) {
        let path = &source.path;
        match settings(&source.load) {
            Ok(s) => {
                if s.config.metrics.listen != self.config.metrics.listen {
                    eprintln!(
                        "netwatch: warning: metrics.listen changes only at restart; still serving the old address"
                    );
                }
                self.exporter.flush();
                // The old exporter thread sends what it holds, without retries.
                let mut old = std::mem::replace(&mut self.exporter, s.exporter);
                std::thread::spawn(move || old.finish());
                self.metrics.set_limits(s.config.metrics.top_processes, s.config.metrics.top_listeners);
                self.alerts.reconfigure(s.config.alerts.clone(), s.baseline);
                self.config = s.config;
                eprintln!("netwatch: reloaded {}", path.display());
            }
            Err(e) => {
                eprintln!("netwatch: error: reloading {} failed, keeping the previous config: {e:#}", path.display())
            }
        }
    }
}
