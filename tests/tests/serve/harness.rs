//! `netwatch serve` under test: a config file of the test's own, a metrics
//! port nobody else uses, scrapes parsed with a real Prometheus text-format
//! parser, and waiting for alert lines.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use netwatch_tests::{free_port, wait, Netwatch};

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("nw-serve-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        Self(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Serve {
    pub nw: Netwatch,
    pub metrics: SocketAddr,
}

impl Serve {
    /// `netwatch serve --config CONFIG --metrics 127.0.0.1:FREE ARGS`.
    pub fn start(config: &Path, args: &[&str]) -> Self {
        Self::start_with_env(config, args, &[])
    }

    /// Like [`Serve::start`], with extra environment variables.
    pub fn start_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let metrics = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port(Ipv4Addr::LOCALHOST.into()));
        let (c, m) = (config.to_str().expect("UTF-8 path").to_owned(), metrics.to_string());
        let mut all = vec!["serve", "--config", &c, "--metrics", &m];
        all.extend(args);
        Self { nw: Netwatch::start_with_env(&all, env), metrics }
    }

    pub fn scrape(&self) -> Metrics {
        Metrics::parse(&http_get(self.metrics, "/metrics"))
    }

    /// Waits until a stderr line satisfies `pred`; panics with stderr after `timeout`.
    pub fn wait_stderr(&self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait::until(&format!("a stderr line {what}"), timeout, || {
            let lines = self.nw.stderr_lines();
            lines.iter().find(|l| pred(l)).cloned().ok_or_else(|| format!("stderr:\n{}", lines.join("\n")))
        })
    }
}

/// A plain HTTP/1.1 GET: the response body (panics unless 200).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("sending the request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("reading the response");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {resp:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

/// One parsed scrape.
pub struct Metrics(pub Scrape);

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        Self(Scrape::parse(lines).unwrap_or_else(|e| panic!("parsing the scrape: {e}\n{text}")))
    }

    /// The value of sample `name` whose labels include all of `labels`;
    /// `None` if there is none. Panics if several match.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
                Value::Summary(_) => f64::NAN,
            })
            .collect();
        assert!(found.len() <= 1, "{name}{labels:?} matches {} samples", found.len());
        found.first().copied()
    }

    /// Like [`Metrics::get`], but the sample must exist.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            let names: std::collections::BTreeSet<&str> = self.0.samples.iter().map(|s| s.metric.as_str()).collect();
            panic!("no sample {name}{labels:?}; metrics present: {names:?}")
        })
    }

    /// Every sample of `name` as (labels, value).
    pub fn all(&self, name: &str) -> Vec<(std::collections::HashMap<String, String>, f64)> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(((*s.labels).clone(), v)),
                _ => None,
            })
            .collect()
    }
}
