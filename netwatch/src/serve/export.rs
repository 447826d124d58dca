//! Event export: JSON lines, in exactly `netwatch events --json`'s schema
//! (the same [`Json`] sink formats them), to a rotated file and to syslog,
//! each with its own choice of event kinds. Alerts go the same way.
//!
//! A failing output never stops the agent: errors are counted (metrics) and
//! reported on stderr at most once a minute per output.

use std::time::{Duration, Instant};

use anyhow::Result;
use netwatch_common::EventKind;

use super::{
    config::{Export, ExportKind, KindSet},
    rotate::RotatingFile,
    syslog::{Severity, Syslog},
};
use crate::{
    event::{clock::WallClock, Event},
    output::{json::Json, EventSink},
    stream::Loss,
};

const ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    pub file: u64,
    pub syslog: u64,
}

pub struct Exporter {
    json: Json,
    clock: WallClock,
    file: Option<(RotatingFile, KindSet)>,
    syslog: Option<(Syslog, KindSet)>,
    /// OTLP logs and metrics (serve/otlp), on a thread of its own.
    pub otlp: Option<super::otlp::Otlp>,
    line: Vec<u8>,
    filter: crate::filter::Filter,
    pub errors: Errors,
    last_report: Option<Instant>,
}

impl Exporter {
    pub fn new(cfg: &Export) -> Result<Self> {
        let file = match &cfg.file.path {
            Some(p) => {
                let gid = cfg.file.group.as_deref().map(super::rotate::group_id).transpose()?;
                let access = super::rotate::Access { gid };
                Some((RotatingFile::open(p, cfg.file.max_bytes, cfg.file.keep, access)?, cfg.file.kinds))
            }
            None => None,
        };
        let syslog =
            cfg.syslog.enabled.then(|| Syslog::connect(&cfg.syslog.socket, &cfg.syslog.facility)).transpose()?;
        Ok(Self {
            json: Json::new(),
            clock: WallClock::new(),
            file,
            syslog: syslog.map(|s| (s, cfg.syslog.kinds)),
            otlp: super::otlp::Otlp::new(&cfg.otlp)?,
            line: Vec::with_capacity(512),
            filter: cfg.filter.clone(),
            errors: Errors::default(),
            last_report: None,
        })
    }

    /// Where the outputs go, for the start-up log line.
    pub fn describe(&self) -> String {
        let file = self.file.as_ref().map(|(f, _)| format!("file {}", f.path().display()));
        let syslog = self.syslog.as_ref().map(|_| "syslog".to_owned());
        let parts: Vec<String> =
            [file, syslog, self.otlp.as_ref().map(super::otlp::Otlp::describe)].into_iter().flatten().collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Whether the file, syslog and OTLP outputs want `kind`.
    fn wants(&self, kind: ExportKind) -> (bool, bool, bool) {
        (
            self.file.as_ref().is_some_and(|(_, k)| k.contains(kind)),
            self.syslog.as_ref().is_some_and(|(_, k)| k.contains(kind)),
            self.otlp.as_ref().is_some_and(|o| o.wants(kind)),
        )
    }

    pub fn event(&mut self, e: &Event) {
        let kind = ExportKind::Event(e.kind);
        let (file, syslog, otlp) = self.wants(kind);
        if !file && !syslog && !otlp || !self.filter.matches(e) {
            return;
        }
        // Straight from the event: no JSON line unless a file or syslog wants one.
        if let Some(o) = self.otlp.as_mut().filter(|_| otlp) {
            o.event(e, self.json.packets(), &self.clock);
        }
        if !file && !syslog {
            return;
        }
        self.line.clear();
        if self.json.event(&mut self.line, e, &self.clock).is_err() {
            return;
        }
        let severity = match e.kind {
            EventKind::ConnectFailed | EventKind::ConnectError => Severity::Notice,
            // Clients were turned away: as lost events are, a warning.
            EventKind::ListenDrop => Severity::Warning,
            _ => Severity::Info,
        };
        self.emit(file, syslog, kind, severity);
    }

    pub fn lost(&mut self, loss: &Loss) {
        let (file, syslog, otlp) = self.wants(ExportKind::Lost);
        if !file && !syslog && !otlp {
            return;
        }
        self.line.clear();
        if self.json.lost(&mut self.line, loss, jiff::Timestamp::now()).is_ok() {
            if otlp {
                self.send_otlp();
            }
            self.emit(file, syslog, ExportKind::Lost, Severity::Warning);
        }
    }

    /// One alert, already a JSON line (with its newline).
    pub fn alert(&mut self, json_line: &str, firing: bool) {
        let (file, syslog, otlp) = self.wants(ExportKind::Alert);
        self.line.clear();
        self.line.extend_from_slice(json_line.as_bytes());
        if otlp {
            self.send_otlp();
        }
        let severity = if firing { Severity::Warning } else { Severity::Notice };
        self.emit(file, syslog, ExportKind::Alert, severity);
    }

    fn emit(&mut self, file: bool, syslog: bool, kind: ExportKind, severity: Severity) {
        if let Some((f, _)) = self.file.as_mut().filter(|_| file) {
            if let Err(e) = f.line(&self.line) {
                self.errors.file += 1;
                report(&mut self.last_report, "export file", &e);
            }
        }
        if let Some((s, _)) = self.syslog.as_mut().filter(|_| syslog) {
            let text = String::from_utf8_lossy(self.line.strip_suffix(b"\n").unwrap_or(&self.line));
            let ts = crate::output::json::rfc3339(jiff::Timestamp::now());
            if let Err(e) = s.send(severity, kind.name(), &ts, &text) {
                self.errors.syslog += 1;
                report(&mut self.last_report, "syslog", &e);
            }
        }
    }

    /// The current line, to the OTLP exporter.
    fn send_otlp(&mut self) {
        if let Some(o) = &mut self.otlp {
            o.line(&self.line);
        }
    }

    /// Sends what the OTLP exporter still holds (at exit or reload).
    pub fn finish(&mut self) {
        if let Some(o) = self.otlp.take() {
            o.finish();
        }
    }

    /// Writes the file's queued lines, hands the OTLP exporter its batch: once per batch.
    pub fn flush(&mut self) {
        if let Some(o) = &mut self.otlp {
            o.flush();
        }
        if let Some((f, _)) = &mut self.file {
            if let Err(e) = f.flush() {
                self.errors.file += 1;
                report(&mut self.last_report, "export file", &e);
            }
        }
    }
}

fn report(last: &mut Option<Instant>, what: &str, e: &std::io::Error) {
    if last.is_none_or(|t| t.elapsed() >= ERROR_REPORT_INTERVAL) {
        *last = Some(Instant::now());
        eprintln!("netwatch: warning: writing to {what} failed: {e} (counted in netwatch_export_errors_total)");
    }
}
