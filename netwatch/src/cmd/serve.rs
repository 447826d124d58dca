//! `netwatch serve`: the long-running agent. Its flags, and how they
//! override the config file; the agent itself is [`crate::serve`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Result;
use clap::Args;

use crate::serve::config::{self, AlertFlag, Config};

#[derive(Clone, Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML config file (a missing default file means defaults; a missing file named here is an error)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics on this address [config: metrics.listen; default 127.0.0.1:9977]
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// No metrics endpoint
    #[arg(long, conflicts_with = "metrics")]
    pub no_metrics: bool,
    /// Process names with their own connection-count series; the rest sum as `other`
    #[arg(long, value_name = "N")]
    pub top_processes: Option<usize>,
    /// Listeners with their own per-state connection series; the rest sum as `other`
    #[arg(long, value_name = "N")]
    pub top_listeners: Option<usize>,
    /// Append events as JSON lines to this file [config: export.file.path]
    #[arg(long, value_name = "PATH")]
    pub export_file: Option<PathBuf>,
    /// Rotate the export file at this size in bytes
    #[arg(long, value_name = "BYTES")]
    pub export_max_bytes: Option<u64>,
    /// Rotated export files kept
    #[arg(long, value_name = "K")]
    pub export_keep: Option<usize>,
    /// Event kinds written to the export file (comma-separated, or `all`)
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub export_kinds: Vec<String>,
    /// Send events to syslog (RFC 5424 over a unix datagram socket)
    #[arg(long)]
    pub syslog: bool,
    /// The syslog socket [default: /dev/log]
    #[arg(long, value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,
    /// Event kinds sent to syslog (comma-separated, or `all`) [default: alert,lost]
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub syslog_kinds: Vec<String>,
    /// Alert on listening sockets absent from this `netwatch snapshot --json` document
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Set an alert's threshold and window, or turn it off (repeatable): syn_backlog, listen_drops,
    /// remote_connections, suspicious_ports, new_listener, total_connections
    #[arg(long = "alert", value_name = "NAME=THRESHOLD[/WINDOW]|NAME=off", value_parser = config::parse_alert_flag)]
    pub alerts: Vec<AlertFlag>,
    /// Ports whose connections raise `suspicious_ports` (comma-separated)
    #[arg(long, value_name = "PORTS", value_delimiter = ',')]
    pub suspicious_ports: Vec<u16>,
    /// A group that may read the export file and its rotations (0640; otherwise 0600) [config: export.file.group]
    #[arg(long, value_name = "GROUP")]
    pub export_group: Option<String>,
    /// Send events as OTLP logs and the metrics as OTLP metrics to this collector (http:// or https://)
    /// [config: export.otlp.endpoint]
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP over gRPC (usually port 4317) or HTTP/protobuf (4318) [default: grpc]
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<config::OtlpProtocol>,
    /// Event kinds sent as OTLP logs (comma-separated, or `all`)
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub otlp_kinds: Vec<String>,
    /// Compress OTLP requests [default: gzip]
    #[arg(long, value_name = "HOW")]
    pub otlp_compression: Option<config::Compression>,
    /// PEM file of the CA that signed the collector's certificate (https endpoints)
    #[arg(long, value_name = "PATH")]
    pub otlp_ca_file: Option<PathBuf>,
    /// File of `Name: value` header lines sent with each request (auth tokens stay out of argv)
    #[arg(long, value_name = "PATH")]
    pub otlp_headers_file: Option<PathBuf>,
    /// Log records held while the collector is slow or down; more are dropped and counted [default: 100000]
    #[arg(long, value_name = "N")]
    pub otlp_queue: Option<usize>,
    /// Log records per request [default: 2048]
    #[arg(long, value_name = "N")]
    pub otlp_batch: Option<usize>,
    /// Longest a log record waits for its batch to fill [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_duration)]
    pub otlp_batch_delay: Option<Duration>,
    /// How often the metrics are sent over OTLP; 0s for never [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_duration)]
    pub otlp_metrics_interval: Option<Duration>,
    /// PEM client certificate for a collector that requires one (mTLS; with --otlp-client-key-file)
    #[arg(long, value_name = "PATH")]
    pub otlp_client_cert_file: Option<PathBuf>,
    /// PEM private key of the OTLP client certificate (read by the agent, never logged)
    #[arg(long, value_name = "PATH")]
    pub otlp_client_key_file: Option<PathBuf>,
}

impl ServeArgs {
    /// The config file named, or the default one.
    pub fn config_path(&self) -> (PathBuf, bool) {
        match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(config::DEFAULT_PATH), false),
        }
    }

    /// Reads the config file and lays the flags over it.
    pub fn load(&self) -> Result<Config> {
        let (path, explicit) = self.config_path();
        let mut c = config::load(&path, explicit)?;
        self.apply(&mut c)?;
        c.validate()?;
        Ok(c)
    }

    fn apply(&self, c: &mut Config) -> Result<()> {
        if let Some(a) = self.metrics {
            c.metrics.listen = a.to_string();
        }
        if self.no_metrics {
            c.metrics.listen.clear();
        }
        set(&mut c.metrics.top_processes, self.top_processes);
        set(&mut c.metrics.top_listeners, self.top_listeners);
        let file = &mut c.export.file;
        set_some(&mut file.path, &self.export_file);
        set(&mut file.max_bytes, self.export_max_bytes);
        set(&mut file.keep, self.export_keep);
        set_some(&mut file.group, &self.export_group);
        set_kinds(&mut file.kinds, &self.export_kinds)?;
        let syslog = &mut c.export.syslog;
        syslog.enabled |= self.syslog;
        set(&mut syslog.socket, self.syslog_socket.clone());
        set_kinds(&mut syslog.kinds, &self.syslog_kinds)?;
        let otlp = &mut c.export.otlp;
        set_some(&mut otlp.endpoint, &self.otlp_endpoint);
        set(&mut otlp.protocol, self.otlp_protocol);
        set(&mut otlp.compression, self.otlp_compression);
        set_kinds(&mut otlp.kinds, &self.otlp_kinds)?;
        set_some(&mut otlp.ca_file, &self.otlp_ca_file);
        set_some(&mut otlp.headers_file, &self.otlp_headers_file);
        set(&mut otlp.queue, self.otlp_queue);
        set(&mut otlp.batch, self.otlp_batch);
        set(&mut otlp.batch_delay, self.otlp_batch_delay);
        set(&mut otlp.metrics_interval, self.otlp_metrics_interval);
        set_some(&mut otlp.client_cert_file, &self.otlp_client_cert_file);
        set_some(&mut otlp.client_key_file, &self.otlp_client_key_file);
        set_some(&mut c.alerts.baseline, &self.baseline);
        if !self.suspicious_ports.is_empty() {
            c.alerts.ports = self.suspicious_ports.iter().copied().collect();
        }
        for a in &self.alerts {
            let rule = c.alerts.rule_mut(a.kind);
            // `NAME=off` has no threshold.
            rule.enabled = a.threshold.is_some();
            set(&mut rule.threshold, a.threshold);
            set::<Duration>(&mut rule.window, a.window);
        }
        Ok(())
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// A flag given replaces the file's optional value.
fn set_some<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        slot.clone_from(value);
    }
}

/// `--*-kinds` given replace the file's choice.
fn set_kinds(slot: &mut config::KindSet, flags: &[String]) -> Result<()> {
    if !flags.is_empty() {
        *slot = config::parse_kinds(flags.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

pub async fn run(args: &ServeArgs) -> Result<()> {
    crate::serve::run(crate::serve::Source { path: args.config_path().0, load: || args.load() }).await
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn args(argv: &[&str]) -> ServeArgs {
        Cmd::try_parse_from(std::iter::once("serve").chain(argv.iter().copied())).unwrap().args
    }

    /// clap takes the flag's help from a doc comment, which cannot be built
    /// from the enum: this keeps the two together.
    #[test]
    fn alert_help_names_every_alert() {
        use clap::CommandFactory as _;
        let cmd = Cmd::command();
        let flag = cmd.get_arguments().find(|a| a.get_id() == "alerts").expect("--alert");
        let help = flag.get_help().expect("--alert has help").to_string();
        for kind in config::AlertKind::ALL {
            assert!(help.contains(kind.name()), "--alert's help does not name {}: {help}", kind.name());
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("nw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("netwatch.toml");
        std::fs::write(&path, "[alerts.syn_backlog]\nthreshold = 50\nwindow = \"30s\"\n[metrics]\ntop_processes = 3\n")
            .unwrap();
        let p = path.to_str().unwrap();
        let c = args(&[
            "--config",
            p,
            "--alert",
            "syn_backlog=7",
            "--alert",
            "total_connections=off",
            "--top-processes",
            "9",
        ])
        .load()
        .unwrap();
        assert_eq!((c.alerts.syn_backlog.threshold, c.alerts.syn_backlog.window), (7, Duration::from_secs(30)));
        assert!(!c.alerts.total_connections.enabled);
        assert_eq!(c.metrics.top_processes, 9);
        let c = args(&["--config", p, "--export-file", "/tmp/e", "--export-kinds", "close,alert", "--syslog"])
            .load()
            .unwrap();
        assert_eq!(c.export.file.path.as_deref(), Some(Path::new("/tmp/e")));
        assert_eq!(c.export.file.kinds.iter().count(), 2);
        assert!(c.export.syslog.enabled);
        let c = args(&["--config", p, "--no-metrics", "--alert", "remote_connections=3/2m"]).load().unwrap();
        assert!(c.metrics_addr().unwrap().is_none());
        assert_eq!(c.alerts.remote_connections.window, Duration::from_secs(120));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
