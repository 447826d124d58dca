//! Alerts: conditions on the live table (and a few on events and kernel
//! counters), each with a threshold and a window, said as `alert` events to
//! every output and counted in metrics.

mod rules;
mod tracker;

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Instant,
};

use netwatch_common::EventKind;
use serde::Serialize;

use super::{
    config::{self, AlertKind, Rule},
    listen_drops::Sample,
    tcpext,
};
use crate::{
    baseline::ListenerKey,
    event::{display_ip, Event},
    output::snapshot::state_name,
    socket::{Owner, TcpState},
    table::{Row, Table},
};
pub use rules::endpoint;
pub use tracker::Transition;

/// A socket an alert names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SockRef {
    pub proto: &'static str,
    pub saddr: String,
    pub sport: u16,
    pub daddr: String,
    pub dport: u16,
    pub state: &'static str,
    pub netns: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
}

impl SockRef {
    /// A TCP socket by its ends; no owner.
    fn new(local: SocketAddr, remote: SocketAddr, state: &'static str, netns: u32) -> Self {
        Self {
            proto: "tcp",
            saddr: display_ip(local.ip()).to_string(),
            sport: local.port(),
            daddr: display_ip(remote.ip()).to_string(),
            dport: remote.port(),
            state,
            netns,
            pid: None,
            comm: None,
        }
    }

    pub fn of(r: &Row) -> Self {
        let o = r.owners.first();
        Self {
            proto: r.proto.name(),
            pid: o.map(|o| o.pid),
            comm: o.map(|o| o.comm.text().to_owned()),
            ..Self::new(r.local, r.remote, state_name(r.proto, r.state), r.netns)
        }
    }

    fn of_event(e: &Event) -> Self {
        Self {
            pid: (e.pid != 0).then_some(e.pid),
            comm: (e.pid != 0).then(|| e.comm.as_str().into_owned()),
            ..Self::new(e.local, e.remote, e.new_state.name(), e.netns)
        }
    }
}

/// One candidate of a condition and its current figure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    /// What the alert is about, unique within its kind (a listener, an
    /// address, a port).
    pub key: String,
    pub value: u64,
    /// Human words for what `value` counts.
    pub subject: String,
    pub owner: Option<Owner>,
    pub sockets: Vec<SockRef>,
}

/// One alert event, as exported (a JSON line) and logged.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub ts: String,
    pub event: &'static str,
    pub alert: AlertKind,
    pub state: &'static str,
    pub key: String,
    pub value: u64,
    pub threshold: u64,
    pub window_s: f64,
    pub pid: u32,
    pub comm: String,
    pub message: String,
    pub sockets: Vec<SockRef>,
}

impl Alert {
    pub fn firing(&self) -> bool {
        self.state != "cleared"
    }

    pub fn json_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// How many event-seen suspicious connections are kept between checks.
const RECENT_CAP: usize = 1024;

#[derive(Default)]
pub struct Engine {
    cfg: config::Alerts,
    baseline: Option<BTreeSet<ListenerKey>>,
    /// One per kind, indexed as [`AlertKind::ALL`].
    trackers: [tracker::Tracker; AlertKind::ALL.len()],
    /// (when, ListenOverflows + ListenDrops), oldest first, over the window.
    drops: VecDeque<(Instant, u64)>,
    drops_failed: bool,
    recent: Vec<SockRef>,
    /// The listeners' own drop counters as last read, until the next check.
    listeners: Option<Vec<Sample>>,
    /// Per listener (by cookie): (when, its drop counter), oldest first.
    listener_history: HashMap<u64, (Sample, VecDeque<(Instant, u64)>)>,
    /// Whether the counters were read before: listeners first seen later
    /// are new, and every drop they have is news.
    listeners_read: bool,
}

impl Engine {
    pub fn new(cfg: config::Alerts, baseline: Option<BTreeSet<ListenerKey>>) -> Self {
        Self { cfg, baseline, ..Self::default() }
    }

    /// New settings (SIGHUP). Alerts active under the old thresholds are
    /// re-judged by the new ones at the next check.
    pub fn reconfigure(&mut self, cfg: config::Alerts, baseline: Option<BTreeSet<ListenerKey>>) {
        for (i, (_, rule)) in cfg.rules().into_iter().enumerate() {
            if !rule.enabled {
                self.trackers[i].clear_all();
            }
        }
        self.cfg = cfg;
        self.baseline = baseline;
    }

    /// Remembers connections on suspicious ports from events, so that one
    /// opened and closed between two checks is still reported.
    pub fn observe(&mut self, e: &Event) {
        if !self.cfg.suspicious_ports.enabled || !matches!(e.kind, EventKind::Established | EventKind::Handshake) {
            return;
        }
        let ports = &self.cfg.ports;
        if (ports.contains(&e.local.port()) || ports.contains(&e.remote.port())) && self.recent.len() < RECENT_CAP {
            self.recent.push(SockRef::of_event(e));
        }
    }

    /// The listeners' drop counters for the next [`Self::evaluate`];
    /// `None` when they could not be read (`listen_drops` then watches the
    /// namespace's TcpExt counters).
    pub fn listener_drops(&mut self, samples: Option<Vec<Sample>>) {
        self.listeners = samples;
    }

    /// Checks every enabled condition against `table` now.
    pub fn evaluate(&mut self, table: &Table, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        let recent = std::mem::take(&mut self.recent);
        for (i, (kind, rule)) in self.cfg.rules().into_iter().enumerate() {
            if !rule.enabled {
                continue;
            }
            let Some(found) = self.findings(kind, table, &recent, now, rule) else { continue };
            let over = found.into_iter().filter(|f| f.value >= rule.threshold).collect();
            for (t, f) in self.trackers[i].step(over, now, rule.window) {
                out.push(alert(kind, t, f, rule));
            }
        }
        out
    }

    fn findings(
        &mut self,
        kind: AlertKind,
        table: &Table,
        recent: &[SockRef],
        now: Instant,
        rule: Rule,
    ) -> Option<Vec<Finding>> {
        Some(match kind {
            AlertKind::SynBacklog => rules::syn_backlog(table),
            AlertKind::ListenDrops => match self.listeners.take() {
                Some(samples) => self.listener_drop_growth(samples, table, now, rule),
                None => self.listen_drops(table, now, rule)?,
            },
            AlertKind::RemoteConnections => rules::remote_connections(table),
            AlertKind::SuspiciousPorts => rules::suspicious_ports(table, &self.cfg.ports, recent),
            AlertKind::NewListener => rules::new_listeners(table, self.baseline.as_ref()?, std::process::id()),
            AlertKind::TotalConnections => rules::total_connections(table),
        })
    }

    /// Growth of each listener's own drop counter over the window: the
    /// listeners that dropped SYNs, named by the kernel.
    fn listener_drop_growth(&mut self, samples: Vec<Sample>, table: &Table, now: Instant, rule: Rule) -> Vec<Finding> {
        let first = !std::mem::replace(&mut self.listeners_read, true);
        let mut old = std::mem::take(&mut self.listener_history);
        let mut out = Vec::new();
        for s in samples {
            let (_, mut history) = old.remove(&s.cookie).unwrap_or_else(|| {
                // Born after netwatch's first reading: its drops all fell
                // since then.
                let born = if first { VecDeque::new() } else { VecDeque::from([(now, 0)]) };
                (s, born)
            });
            history.push_back((now, s.drops));
            while history.front().is_some_and(|(t, _)| now.duration_since(*t) > rule.window) {
                history.pop_front();
            }
            let value = s.drops.saturating_sub(history.front().map_or(s.drops, |(_, v)| *v));
            if value > 0 {
                out.push(listener_finding(&s, value, table, rule));
            }
            self.listener_history.insert(s.cookie, (s, history));
        }
        out
    }

    /// Growth of the listen-drop counters over the window. `None` when they
    /// cannot be read (said once on stderr).
    fn listen_drops(&mut self, table: &Table, now: Instant, rule: Rule) -> Option<Vec<Finding>> {
        let window = rule.window;
        let total = tcpext::read()
            .inspect_err(|e| {
                if !std::mem::replace(&mut self.drops_failed, true) {
                    eprintln!("netwatch: warning: listen_drops alert disabled: {e:#}");
                }
            })
            .ok()?;
        self.drops.push_back((now, total));
        while self.drops.front().is_some_and(|(t, _)| now.duration_since(*t) > window) {
            self.drops.pop_front();
        }
        let oldest = self.drops.front().map_or(total, |(_, v)| *v);
        let value = total.saturating_sub(oldest);
        // The counters say how many, not where: name the listeners whose
        // accept queue is full now (read only when the alert would fire).
        let (owner, sockets) = if value >= rule.threshold { full_listeners(table) } else { (None, Vec::new()) };
        let named = sockets.first().map_or_else(String::new, |s| {
            format!("; full accept queue now: {}:{} of {}", s.saddr, s.sport, rules::owner_text(owner.as_ref()))
        });
        Some(vec![Finding {
            key: "netns".to_owned(),
            value,
            subject: format!(
                "SYNs or handshakes dropped at full listen queues in {:.0}s (TcpExt ListenOverflows + ListenDrops, \
                 netwatch's own network namespace{named})",
                window.as_secs_f64()
            ),
            owner,
            sockets,
        }])
    }
}

fn alert(kind: AlertKind, t: Transition, f: Finding, rule: Rule) -> Alert {
    let (state, message) = match t {
        Transition::Cleared => {
            ("cleared", format!("{} cleared (under {} now): {}", kind.name(), rule.threshold, f.subject))
        }
        Transition::Firing | Transition::Repeat => {
            ("firing", format!("{}: {} {} (threshold {})", kind.name(), f.value, f.subject, rule.threshold))
        }
    };
    Alert {
        ts: crate::output::json::rfc3339(jiff::Timestamp::now()),
        event: "alert",
        alert: kind,
        state,
        key: f.key,
        value: f.value,
        threshold: rule.threshold,
        window_s: rule.window.as_secs_f64(),
        pid: f.owner.as_ref().map_or(0, |o| o.pid),
        comm: f.owner.map(|o| o.comm.text().to_owned()).unwrap_or_default(),
        message,
        sockets: f.sockets,
    }
}

/// A listener whose drop counter rose by `value`, with its owner from the
/// table.
fn listener_finding(s: &Sample, value: u64, table: &Table, rule: Rule) -> Finding {
    let row = table.rows().find(|r| {
        r.state == TcpState::Listen && r.netns == s.netns && r.local == s.local && r.cookie == Some(s.cookie)
    });
    let owner = row.and_then(|r| r.owners.first().cloned());
    let any: IpAddr = if s.local.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let sock = row.map_or_else(|| SockRef::new(s.local, (any, 0).into(), "LISTEN", s.netns), SockRef::of);
    Finding {
        key: format!("{}/{}", s.netns, endpoint(s.local)),
        value,
        subject: format!(
            "SYNs or handshakes dropped in {:.0}s by listener {} (netns {}) of {} (the listener's own drop \
             counter: its accept queue was full, mostly)",
            rule.window.as_secs_f64(),
            endpoint(s.local),
            s.netns,
            rules::owner_text(owner.as_ref())
        ),
        owner,
        sockets: vec![sock],
    }
}

/// Listeners of netwatch's namespace whose accept queue is full now, fullest
/// first, with their owners from the table; nothing if they cannot be read.
fn full_listeners(table: &Table) -> (Option<Owner>, Vec<SockRef>) {
    let Ok(listeners) = tcpext::listeners() else { return (None, Vec::new()) };
    let rows: Vec<&Row> = table.rows().filter(|r| r.state == TcpState::Listen).collect();
    let refs: Vec<(Option<Owner>, SockRef)> = tcpext::full_queues(&listeners)
        .into_iter()
        .take(rules::SAMPLE)
        .map(|l| {
            let row = rows.iter().find(|r| r.netns == l.netns && r.local == l.local).copied();
            let owner = row.and_then(|r| r.owners.first().cloned());
            let sock =
                row.map_or_else(|| SockRef::new(l.local, (l.remote.ip(), 0).into(), "LISTEN", l.netns), SockRef::of);
            (owner, sock)
        })
        .collect();
    let owner = refs.first().and_then(|(o, _)| *o);
    (owner, refs.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
#[path = "tests.rs"]
pub(super) mod tests;
