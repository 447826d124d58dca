//! `netwatch serve`'s configuration: a TOML file (every key optional, so an
//! empty file or none at all means the defaults), then the command-line
//! flags on top. Reloaded on SIGHUP with the same flags re-applied, so a
//! flag always wins over the file.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use netwatch_common::EventKind;
use serde::{Deserialize, Deserializer};

/// Where the systemd unit and a bare `netwatch serve` look.
pub const DEFAULT_PATH: &str = "/etc/netwatch/netwatch.toml";

/// What an exporter may select: every event kind, plus `lost` and `alert`.
/// Derived from [`EventKind::ALL`], so a new kind is exportable (and
/// listed by `all`) without anyone remembering to add it here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    Event(EventKind),
    Lost,
    Alert,
}

impl ExportKind {
    pub fn all() -> impl Iterator<Item = Self> {
        EventKind::ALL.into_iter().map(Self::Event).chain([Self::Lost, Self::Alert])
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Event(k) => k.name(),
            Self::Lost => "lost",
            Self::Alert => "alert",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|k| k.name() == name)
    }

    /// Its bit in a [`KindSet`]: event kinds by wire number, then the two.
    const fn bit(self) -> u32 {
        match self {
            Self::Event(k) => 1 << k as u32,
            Self::Lost => 1 << EventKind::ALL.len(),
            Self::Alert => 1 << (EventKind::ALL.len() + 1),
        }
    }
}

/// A choice of export kinds: one bit test per exported event.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct KindSet(u32);

impl KindSet {
    pub fn of(kinds: impl IntoIterator<Item = ExportKind>) -> Self {
        Self(kinds.into_iter().fold(0, |bits, k| bits | k.bit()))
    }

    pub const fn contains(self, kind: ExportKind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = ExportKind> {
        ExportKind::all().filter(move |&k| self.contains(k))
    }
}

impl std::fmt::Debug for KindSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(ExportKind::name)).finish()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub metrics: Metrics,
    pub export: Export,
    pub alerts: Alerts,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// `host:port` of the Prometheus endpoint; empty disables it.
    pub listen: String,
    /// Process names with their own `netwatch_process_connections` series;
    /// the rest are summed as `other`.
    pub top_processes: usize,
    /// Listeners with their own `netwatch_listener_connections` series.
    pub top_listeners: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9977".to_owned(), top_processes: 10, top_listeners: 20 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Export {
    pub file: FileExport,
    pub syslog: SyslogExport,
    /// Only events this filter expression selects (docs/filters.md) are
    /// exported, to every output; alerts and lost-event reports always are.
    #[serde(deserialize_with = "filter")]
    pub filter: crate::filter::Filter,
    pub otlp: OtlpExport,
}

/// The OTLP wire protocol: gRPC (port 4317) or HTTP with protobuf bodies (4318).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

/// `[export.otlp]`: events as OTLP log records, /metrics as OTLP metrics
/// (serve/otlp). Credentials are named by path only: the files are read
/// by the agent, so no token is ever on a command line or in a log.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpExport {
    /// `http://HOST:PORT` or `https://HOST:PORT` (plus a path prefix for
    /// OTLP/HTTP); unset disables the OTLP export.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    #[serde(deserialize_with = "kinds")]
    pub kinds: KindSet,
    pub compression: Compression,
    /// PEM CA certificate(s) that the collector's certificate must chain
    /// to (https endpoints); unset, the endpoint must be http.
    pub ca_file: Option<PathBuf>,
    /// `Name: value` lines sent with every request (e.g. `authorization: Bearer ...`).
    pub headers_file: Option<PathBuf>,
    /// PEM client certificate (chain) and its private key, for a collector
    /// that requires client certificates (mTLS, https endpoints); both or neither.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Log records held while the collector is slow or down; more are
    /// dropped (and counted) rather than stalling the agent.
    pub queue: usize,
    /// Records per export request.
    pub batch: usize,
    /// Longest a record waits for its batch to fill.
    #[serde(deserialize_with = "duration")]
    pub batch_delay: Duration,
    /// How often the metrics are sent; "0s" sends none.
    #[serde(deserialize_with = "duration")]
    pub metrics_interval: Duration,
    /// One request's deadline.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for OtlpExport {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: OtlpProtocol::Grpc,
            kinds: default_kinds(),
            // The OTLP exporter specification's default: on a node's
            // loopback or cluster network gzip costs more CPU than it saves.
            compression: Compression::None,
            ca_file: None,
            headers_file: None,
            client_cert_file: None,
            client_key_file: None,
            queue: 100_000,
            batch: 2048,
            batch_delay: Duration::from_secs(1),
            metrics_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileExport {
    /// JSON lines go here; unset disables the file export.
    pub path: Option<PathBuf>,
    /// Rotate once the file reaches this size.
    pub max_bytes: u64,
    /// Rotated files kept (`PATH.1` newest .. `PATH.K`).
    pub keep: usize,
    #[serde(deserialize_with = "kinds")]
    pub kinds: KindSet,
    /// A group (name or number) that may read the file and its rotations
    /// (mode 0640); unset, only the agent's user may (0600).
    pub group: Option<String>,
}

impl Default for FileExport {
    fn default() -> Self {
        Self { path: None, max_bytes: 100 << 20, keep: 5, kinds: default_kinds(), group: None }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogExport {
    pub enabled: bool,
    /// A unix datagram socket speaking syslog.
    pub socket: PathBuf,
    /// RFC 5424 facility name (`daemon`, `local0` .. `local7`, ...).
    pub facility: String,
    #[serde(deserialize_with = "kinds")]
    pub kinds: KindSet,
}

impl Default for SyslogExport {
    fn default() -> Self {
        Self {
            enabled: false,
            socket: PathBuf::from("/dev/log"),
            facility: "daemon".to_owned(),
            // A SIEM wants the security-relevant part, not every state change.
            kinds: KindSet::of([ExportKind::Alert, ExportKind::Lost]),
        }
    }
}

/// Everything but teardown detail (`destroy`), as `netwatch events`
/// prints by default.
fn default_kinds() -> KindSet {
    KindSet::of(ExportKind::all().filter(|k| !matches!(k, ExportKind::Event(EventKind::Destroy))))
}

fn filter<'de, D: Deserializer<'de>>(d: D) -> Result<crate::filter::Filter, D::Error> {
    let text = String::deserialize(d)?;
    crate::filter::parse(&text)
        .map(|expr| crate::filter::Filter { expr, ..Default::default() })
        .map_err(|e| serde::de::Error::custom(format!("bad filter expression: {e}")))
}

fn kinds<'de, D: Deserializer<'de>>(d: D) -> Result<KindSet, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    parse_kinds(list.iter().map(String::as_str)).map_err(serde::de::Error::custom)
}

/// Validates kind names; `all` stands for every kind.
pub fn parse_kinds<'a>(list: impl IntoIterator<Item = &'a str>) -> Result<KindSet, String> {
    let mut out = Vec::new();
    for k in list {
        match k {
            "all" => out.extend(ExportKind::all()),
            k => out.push(ExportKind::from_name(k).ok_or_else(|| {
                let names: Vec<_> = ExportKind::all().map(ExportKind::name).collect();
                format!("unknown event kind {k:?} (one of: all, {})", names.join(", "))
            })?),
        }
    }
    Ok(KindSet::of(out))
}

/// One alert's knobs.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    pub enabled: bool,
    pub threshold: u64,
    /// Level alerts fire again after this long while the condition holds;
    /// growth alerts also measure their growth over it.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
}

impl Rule {
    const fn new(threshold: u64, window_s: u64) -> Self {
        Self { enabled: true, threshold, window: Duration::from_secs(window_s) }
    }
}

impl Default for Rule {
    fn default() -> Self {
        Self::new(1, 60)
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::duration::parse_duration(&s).map_err(serde::de::Error::custom)
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    /// SYN_RECV (half-open) connections per listener.
    pub syn_backlog: Rule,
    /// Growth of TcpExt ListenOverflows + ListenDrops within the window.
    pub listen_drops: Rule,
    /// Current connections with one remote address.
    pub remote_connections: Rule,
    /// Connections with one of `ports` at either end.
    pub suspicious_ports: Rule,
    pub ports: BTreeSet<u16>,
    /// A listening socket absent from the baseline (needs `baseline`).
    pub new_listener: Rule,
    /// A `netwatch snapshot --json` document whose listeners are expected.
    pub baseline: Option<PathBuf>,
    /// All current TCP connections (listeners excluded).
    pub total_connections: Rule,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            syn_backlog: Rule::new(256, 60),
            listen_drops: Rule::new(1, 60),
            remote_connections: Rule::new(500, 60),
            suspicious_ports: Rule::new(1, 300),
            ports: [1234, 4444, 5555, 6666, 7777, 8888, 9999].into(),
            new_listener: Rule::new(1, 3600),
            baseline: None,
            total_connections: Rule::new(50_000, 60),
        }
    }
}

/// The conditions an alert watches. Its name is the `[alerts.NAME]` table
/// of the config file (a unit test holds the two together), the `--alert`
/// flag's NAME, the `kind` label of `netwatch_alerts_total` and the
/// exported `alert` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    SynBacklog,
    ListenDrops,
    RemoteConnections,
    SuspiciousPorts,
    NewListener,
    TotalConnections,
}

impl AlertKind {
    pub const ALL: [Self; 6] = [
        Self::SynBacklog,
        Self::ListenDrops,
        Self::RemoteConnections,
        Self::SuspiciousPorts,
        Self::NewListener,
        Self::TotalConnections,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::SynBacklog => "syn_backlog",
            Self::ListenDrops => "listen_drops",
            Self::RemoteConnections => "remote_connections",
            Self::SuspiciousPorts => "suspicious_ports",
            Self::NewListener => "new_listener",
            Self::TotalConnections => "total_connections",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl Alerts {
    /// Every rule with its kind, in [`AlertKind::ALL`] order, read through a
    /// copy so that one match ([`Alerts::rule_mut`]) maps kinds to fields.
    pub fn rules(&self) -> [(AlertKind, Rule); AlertKind::ALL.len()] {
        let mut c = self.clone();
        AlertKind::ALL.map(|k| (k, *c.rule_mut(k)))
    }

    pub fn rule_mut(&mut self, kind: AlertKind) -> &mut Rule {
        match kind {
            AlertKind::SynBacklog => &mut self.syn_backlog,
            AlertKind::ListenDrops => &mut self.listen_drops,
            AlertKind::RemoteConnections => &mut self.remote_connections,
            AlertKind::SuspiciousPorts => &mut self.suspicious_ports,
            AlertKind::NewListener => &mut self.new_listener,
            AlertKind::TotalConnections => &mut self.total_connections,
        }
    }
}

/// `--alert NAME=THRESHOLD[/WINDOW]` or `--alert NAME=off`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertFlag {
    pub kind: AlertKind,
    /// `None` for `off`.
    pub threshold: Option<u64>,
    pub window: Option<Duration>,
}

pub fn parse_alert_flag(s: &str) -> Result<AlertFlag, String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("expected NAME=THRESHOLD[/WINDOW], not {s:?}"))?;
    let kind = AlertKind::from_name(name).ok_or_else(|| {
        let names: Vec<_> = AlertKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown alert {name:?} (one of: {})", names.join(", "))
    })?;
    if value == "off" {
        return Ok(AlertFlag { kind, threshold: None, window: None });
    }
    let (threshold, window) = match value.split_once('/') {
        Some((t, w)) => (t, Some(crate::duration::parse_duration(w)?)),
        None => (value, None),
    };
    let threshold = threshold.parse().map_err(|_| format!("threshold of {name} must be a whole number: {s:?}"))?;
    Ok(AlertFlag { kind, threshold: Some(threshold), window })
}

/// Reads the file: `explicit` says whether the user named it (then it must
/// exist); the default path may be absent.
pub fn load(path: &Path, explicit: bool) -> Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Config::default()),
        Err(e) => return Err(e).with_context(|| format!("reading the config file {}", path.display())),
    };
    parse(&text).with_context(|| format!("in the config file {}", path.display()))
}

pub fn parse(text: &str) -> Result<Config> {
    let config: Config = toml::from_str(text)?;
    config.validate()?;
    Ok(config)
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        self.metrics_addr()?;
        if self.export.file.keep == 0 || self.export.file.max_bytes == 0 {
            bail!("export.file.keep and export.file.max_bytes must be at least 1");
        }
        super::syslog::facility(&self.export.syslog.facility)?;
        super::otlp::validate(&self.export.otlp)?;
        for (kind, rule) in self.alerts.rules() {
            if rule.window.is_zero() {
                bail!("alerts.{}.window must be longer than 0", kind.name());
            }
        }
        Ok(())
    }

    /// The metrics address, `None` when disabled.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        if self.metrics.listen.is_empty() {
            return Ok(None);
        }
        let addr = self.metrics.listen.parse().with_context(|| {
            format!("metrics.listen {:?} is not an IP:PORT address (e.g. 127.0.0.1:9977)", self.metrics.listen)
        })?;
        Ok(Some(addr))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
