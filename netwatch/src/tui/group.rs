//! Grouping rows: by listener (a service and the connections it accepted),
//! by program, by workload (container, else systemd unit, else cgroup).
//! Pure, unit tested.
//!
//! Grouping is generic over a key function ([`GroupBy::key`]): a new way to
//! group (by systemd unit, by container) is one variant and one arm there.
//! The view lists one header line per group, with its counts by state, and
//! the group's rows under it when expanded.

use std::net::SocketAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use super::view::{self, Entry};
use crate::socket::{Proto, TcpState};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    #[default]
    None,
    Listener,
    Program,
    /// Where the owner runs: its container, else its unit, else its cgroup.
    Workload,
}

impl GroupBy {
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Listener => "listener",
            Self::Program => "program",
            Self::Workload => "workload",
        }
    }

    /// The `o` key's cycle.
    pub const fn next(self) -> Self {
        match self {
            Self::None => Self::Listener,
            Self::Listener => Self::Program,
            Self::Program => Self::Workload,
            Self::Workload => Self::None,
        }
    }

    /// The group of an entry, as its header names it.
    fn key(self, e: &Entry, listeners: &Listeners) -> String {
        match self {
            Self::None => String::new(),
            Self::Listener => match listeners.of(e) {
                Some(l) => format!("listener {}", crate::output::text::endpoint(l)),
                None => "no listener (outgoing and unconnected)".to_owned(),
            },
            Self::Program => match &e.owner {
                Some((_, comm)) => format!("program {comm}"),
                None => "no owner (TIME_WAIT, half-open)".to_owned(),
            },
            Self::Workload => match &e.workload {
                Some(w) if w.container.is_some() => format!("container {}", w.label()),
                Some(w) if w.unit.is_some() => format!("unit {}", w.label()),
                Some(w) => format!("cgroup {}", w.label()),
                None => "no known workload".to_owned(),
            },
        }
    }
}

/// TCP listeners by (netns, port), to find the one a connection came in on.
#[derive(Default)]
struct Listeners(FxHashMap<(u32, u16), Vec<SocketAddr>>);

impl Listeners {
    fn of_entries(entries: &[Entry]) -> Self {
        let mut map: FxHashMap<(u32, u16), Vec<SocketAddr>> = FxHashMap::default();
        for e in entries.iter().filter(|e| e.row.proto == Proto::Tcp && e.row.state == TcpState::Listen) {
            map.entry((e.row.netns, e.row.local.port())).or_default().push(e.row.local);
        }
        Self(map)
    }

    /// A listener's own row is its group; an accepted connection's is the
    /// listener on its local port (same address, else a wildcard one).
    fn of(&self, e: &Entry) -> Option<SocketAddr> {
        (e.row.proto == Proto::Tcp).then(|| self.of_local(e.row.netns, e.row.local)).flatten()
    }

    /// The listener a TCP socket with this local address was accepted from.
    fn of_local(&self, netns: u32, local: SocketAddr) -> Option<SocketAddr> {
        let candidates = self.0.get(&(netns, local.port()))?;
        let ip = local.ip().to_canonical();
        candidates
            .iter()
            .find(|l| l.ip().to_canonical() == ip)
            .or_else(|| candidates.iter().find(|l| l.ip().is_unspecified()))
            .copied()
    }
}

/// One group: its header's label and counts, and its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub label: String,
    /// Rows per state (TCP state numbers; UDP counted under its state too).
    pub states: Vec<(TcpState, u32)>,
    /// For a listener: its accept queue (connections waiting, backlog).
    pub queue: Option<(u32, u32)>,
    /// Indices into the entries, in display order; collapsible ones last
    /// counted but listed only when `show_all`.
    pub rows: Vec<u32>,
    /// For a listener: its connections accepted and closed lately.
    pub rates: Option<Rates>,
    /// For a listener: SYNs and handshakes it dropped (its own counter).
    pub drops: Option<u32>,
}

/// Handshakes completed and connections closed over a recent span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub accepted: u32,
    pub closed: u32,
    pub span_ms: u32,
}

impl Rates {
    pub fn per_sec(self, n: u32) -> f64 {
        if self.span_ms == 0 {
            return 0.0;
        }
        f64::from(n) * 1000.0 / f64::from(self.span_ms)
    }
}

/// What the events said lately, by the local address of the socket: TCP
/// handshakes completed (a connection accepted) and connections closed.
#[derive(Debug, Default)]
pub struct Activity {
    pub by_local: FxHashMap<(u32, SocketAddr), (u32, u32)>,
    pub span_ms: u32,
}

/// One line of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    Row(u32),
    /// A collapsed state and how many rows it stands for.
    Count(TcpState, u32),
    /// A group header: index into the groups.
    Group(u32),
}

/// Groups of `order` (already filtered and sorted), in order of their
/// first row; the groups' counts include `hidden` rows (the collapsed ones).
pub fn groups(entries: &[Entry], order: &[u32], hidden: &[u32], by: GroupBy, activity: &Activity) -> Vec<Group> {
    let listeners = Listeners::of_entries(entries);
    let mut index: FxHashMap<String, usize> = FxHashMap::default();
    let mut out: Vec<Group> = Vec::new();
    for (&i, listed) in order.iter().map(|i| (i, true)).chain(hidden.iter().map(|i| (i, false))) {
        let e = &entries[i as usize];
        let label = by.key(e, &listeners);
        let g = *index.entry(label.clone()).or_insert_with(|| {
            out.push(Group { label, states: Vec::new(), queue: None, rows: Vec::new(), rates: None, drops: None });
            out.len() - 1
        });
        let group = &mut out[g];
        match group.states.iter_mut().find(|(s, _)| *s == e.row.state) {
            Some((_, n)) => *n += 1,
            None => group.states.push((e.row.state, 1)),
        }
        if e.row.proto == Proto::Tcp && e.row.state == TcpState::Listen && by == GroupBy::Listener {
            group.queue = Some((e.row.rx_queue, e.row.tx_queue));
            group.drops = e.row.traffic.listen_drops;
        }
        if listed {
            group.rows.push(i);
        }
    }
    for g in &mut out {
        g.states.sort_by_key(|&(s, _)| view::state_rank(s));
        if g.queue.is_some() {
            g.rates = Some(Rates { span_ms: activity.span_ms, ..Rates::default() });
        }
    }
    if by == GroupBy::Listener {
        for (&(netns, local), &(accepted, closed)) in &activity.by_local {
            let Some(l) = listeners.of_local(netns, local) else { continue };
            let label = format!("listener {}", crate::output::text::endpoint(l));
            if let Some(r) = index.get(&label).and_then(|&g| out[g].rates.as_mut()) {
                r.accepted += accepted;
                r.closed += closed;
            }
        }
    }
    out
}

/// The table's lines: without grouping, the rows then the count lines;
/// grouped, each group's header and, when expanded, its rows.
pub fn lines(order: &[u32], collapsed: &view::Collapsed, groups: &[Group], expanded: &FxHashSet<String>) -> Vec<Line> {
    if groups.is_empty() {
        let rows = order.iter().map(|&i| Line::Row(i));
        return rows.chain(collapsed.iter().map(|&(s, n)| Line::Count(s, n))).collect();
    }
    let mut out = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        out.push(Line::Group(g as u32));
        if expanded.contains(&group.label) {
            out.extend(group.rows.iter().map(|&i| Line::Row(i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures::{rows, tcp};

    #[test]
    fn by_listener_and_by_program() {
        let mut rows = rows();
        rows.push(tcp("127.0.0.1:8080", "127.0.0.1:40009", TcpState::TimeWait, None));
        for r in rows.iter_mut().filter(|r| r.state == TcpState::Listen && r.local.port() == 8080) {
            r.traffic.listen_drops = Some(3);
        }
        let entries: Vec<Entry> = rows.iter().map(Entry::of).collect();
        let order: Vec<u32> = (0..entries.len() as u32).collect();
        let g = groups(&entries, &order, &[], GroupBy::Listener, &Activity::default());
        let labels: Vec<&str> = g.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(
            labels,
            ["listener 127.0.0.1:8080", "no listener (outgoing and unconnected)", "listener [::1]:22"],
            "in order of first row"
        );
        let l = &g[0];
        assert_eq!(l.states, [(TcpState::Listen, 1), (TcpState::Established, 1), (TcpState::TimeWait, 1)]);
        assert_eq!(l.rows.len(), 3);
        assert_eq!(l.queue, Some((0, 0)));
        assert_eq!((l.drops, g[2].drops), (Some(3), None), "the listener's own counter, where read");
        let p = groups(&entries, &order, &[], GroupBy::Program, &Activity::default());
        let labels: Vec<&str> = p.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(
            labels,
            ["program server", "program curl", "no owner (TIME_WAIT, half-open)", "program sshd", "program resolved"]
        );
        assert_eq!(p[2].states, [(TcpState::TimeWait, 2)]);
    }

    #[test]
    fn by_workload() {
        use crate::tui::fixtures::workload;
        let unit = workload("/system.slice/nginx.service", Some("nginx.service"), None);
        let web = workload("/libpod_parent/libpod-ab", None, Some("web"));
        let mut entries: Vec<Entry> = rows().iter().map(Entry::of).collect();
        entries[0].workload = Some(unit.clone());
        entries[1].workload = Some(web);
        entries[2].workload = Some(unit);
        let order: Vec<u32> = (0..entries.len() as u32).collect();
        let g = groups(&entries, &order, &[], GroupBy::Workload, &Activity::default());
        let labels: Vec<&str> = g.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["unit nginx.service", "container web", "no known workload"]);
        assert_eq!(g[0].rows, [0, 2]);
    }

    #[test]
    fn collapsed_groups_list_only_headers() {
        let entries: Vec<Entry> = rows().iter().map(Entry::of).collect();
        let order: Vec<u32> = (0..entries.len() as u32 - 1).collect();
        let hidden = [entries.len() as u32 - 1];
        let g = groups(&entries, &order, &hidden, GroupBy::Program, &Activity::default());
        let mut expanded = FxHashSet::default();
        let all = lines(&order, &Vec::new(), &g, &expanded);
        assert!(all.iter().all(|l| matches!(l, Line::Group(_))));
        assert_eq!(all.len(), g.len());
        expanded.insert("program server".to_owned());
        let open = lines(&order, &Vec::new(), &g, &expanded);
        assert_eq!(open[..3], [Line::Group(0), Line::Row(0), Line::Row(1)]);
        // Ungrouped: rows, then count lines.
        let flat = lines(&order, &vec![(TcpState::TimeWait, 7)], &[], &expanded);
        assert_eq!(flat.last(), Some(&Line::Count(TcpState::TimeWait, 7)));
    }
}
