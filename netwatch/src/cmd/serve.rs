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
        if self.export_file.is_some() {
            file.path.clone_from(&self.export_file);
        }
        set(&mut file.max_bytes, self.export_max_bytes);
        set(&mut file.keep, self.export_keep);
        if !self.export_kinds.is_empty() {
            file.kinds =
                config::parse_kinds(self.export_kinds.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
        }
        let syslog = &mut c.export.syslog;
        syslog.enabled |= self.syslog;
        set(&mut syslog.socket, self.syslog_socket.clone());
        if !self.syslog_kinds.is_empty() {
            syslog.kinds =
                config::parse_kinds(self.syslog_kinds.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
        }
        if self.baseline.is_some() {
            c.alerts.baseline.clone_from(&self.baseline);
        }
        if !self.suspicious_ports.is_empty() {
            c.alerts.ports = self.suspicious_ports.iter().copied().collect();
        }
        for a in &self.alerts {
            let rule = c.alerts.rule_mut(a.kind);
            match a.threshold {
                None => rule.enabled = false,
                Some(t) => {
                    rule.enabled = true;
                    rule.threshold = t;
                }
            }
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
