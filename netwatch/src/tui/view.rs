//! Which rows the table shows, and in what order: pure, unit tested.
//!
//! The screen works on [`Entry`], an owned copy of each row's displayed
//! fields taken when the table changed, and an order: indices into those
//! entries, filtered and sorted. Changing the sort, filter or mode only
//! recomputes the indices; nothing is formatted except the visible rows.

use std::{
    cmp::Ordering,
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
};

use super::format;
use crate::{
    filter::{Filter, RowAt},
    output::snapshot::{proto_label, state_name},
    socket::{label, Proto, TcpState},
    table::Row,
};

/// Closing states older than this are collapsed into count lines (by
/// default): on a busy server they are thousands of rows that say only
/// "connections ended here".
pub const COLLAPSE_AFTER_NS: u64 = 5_000_000_000;

/// What the table shows, as netstat's `-t`, `-u`, `-l` (and none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    All,
    Tcp,
    Udp,
    /// TCP LISTEN sockets and unconnected UDP sockets, as `netstat -l`.
    Listening,
}

impl Mode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Listening => "listening",
        }
    }

    pub fn shows(self, e: &Entry) -> bool {
        match self {
            Self::All => true,
            Self::Tcp => e.row.proto == Proto::Tcp,
            Self::Udp => e.row.proto == Proto::Udp,
            Self::Listening => match e.row.proto {
                Proto::Tcp => e.row.state == TcpState::Listen,
                Proto::Udp => e.row.state == TcpState::Close,
            },
        }
    }
}

/// The table's columns, in screen order; also the sort keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Proto,
    Local,
    Remote,
    State,
    Owner,
    Age,
    /// Payload bytes per second received, sent.
    RxRate,
    TxRate,
    /// Payload bytes received, sent, since netwatch started counting.
    RxBytes,
    TxBytes,
    /// Not shown: the `b` key's sort, both rates together ("top talkers").
    Bandwidth,
    /// How long `connect()` took (SYN_SENT to ESTABLISHED), for the
    /// connections netwatch saw open.
    Connect,
    /// The smoothed RTT: the kernel's `tcp_info` now, or the one the
    /// handshake left where the live dump does not reach (other namespaces).
    Rtt,
}

impl Column {
    pub const ALL: [Self; 12] = [
        Self::Proto,
        Self::Local,
        Self::Remote,
        Self::State,
        Self::Owner,
        Self::Age,
        Self::RxRate,
        Self::TxRate,
        Self::RxBytes,
        Self::TxBytes,
        Self::Connect,
        Self::Rtt,
    ];

    pub const fn title(self) -> &'static str {
        match self {
            Self::Proto => "Proto",
            Self::Local => "Local Address",
            Self::Remote => "Foreign Address",
            Self::State => "State",
            Self::Owner => "PID/Program",
            Self::Age => "Age",
            Self::RxRate => "Rx/s",
            Self::TxRate => "Tx/s",
            Self::RxBytes => "Rx",
            Self::TxBytes => "Tx",
            Self::Bandwidth => "Rx+Tx/s",
            Self::Connect => "Connect",
            Self::Rtt => "RTT",
        }
    }

    /// Whether the column's title is highlighted for sort `by`.
    pub fn sorted_by(self, by: Self) -> bool {
        self == by || (by == Self::Bandwidth && matches!(self, Self::RxRate | Self::TxRate))
    }

    /// The `s` key's cycle.
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|&c| c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub reverse: bool,
}

impl Default for Sort {
    /// Listeners first, then the rest by state, each by local port.
    fn default() -> Self {
        Self { column: Column::State, reverse: false }
    }
}

/// One row's displayed fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// First owner's `PID/comm`; `None` for TIME_WAIT and request sockets.
    pub owner: Option<(u32, String)>,
    /// Other processes holding it (a socket shared across fork).
    pub more_owners: usize,
    /// Start of the Age column (CLOCK_MONOTONIC ns).
    pub start_ns: u64,
    /// Whether `start_ns` is the connection's start, or only when
    /// netwatch first saw it.
    pub start_known: bool,
    /// Payload bytes/s and totals (zero while the kernel has not counted any).
    pub rx_rate: u64,
    pub tx_rate: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Where the first owner runs, once the view resolved it (the `w`
    /// column, and text the `/` filter matches).
    pub workload: Option<crate::workload::Workload>,
    /// When the socket entered its state, when an event said so.
    pub state_since_ns: Option<u64>,
    /// The Connect and RTT columns, in microseconds (see [`Column`]).
    pub connect_us: Option<u64>,
    pub rtt_us: Option<u32>,
    /// The whole row: its columns, the filter expression, the details pane.
    pub row: Row,
    /// Sort keys, computed once per copy so that sorting compares integers.
    local_key: AddrKey,
    remote_key: AddrKey,
    rank: u8,
    /// The remote's name from DNS (`crate::names`), where known: shown in
    /// REMOTE with the `n` key.
    pub rhost: Option<std::sync::Arc<str>>,
}

/// Processes holding the socket (an owner is listed once per descriptor).
fn distinct_pids(r: &Row) -> usize {
    let o = &r.owners;
    (0..o.len()).filter(|&i| !o[..i].iter().any(|p| p.pid == o[i].pid)).count()
}

/// IPv4 (and IPv4-mapped) before IPv6, then address, then port.
type AddrKey = (u8, u128, u16);

fn addr_key(sa: SocketAddr) -> AddrKey {
    match sa.ip().to_canonical() {
        IpAddr::V4(ip) => (0, u128::from(u32::from(ip)), sa.port()),
        IpAddr::V6(ip) => (1, u128::from(ip), sa.port()),
    }
}

impl Entry {
    pub fn of(r: &Row) -> Self {
        Self {
            owner: r.owners.first().map(|o| (o.pid, o.comm.text().to_owned())),
            more_owners: distinct_pids(r).saturating_sub(1),
            start_ns: r.opened_ns.unwrap_or(r.seen_ns),
            start_known: r.opened_ns.is_some(),
            rx_rate: r.traffic.rx_rate,
            tx_rate: r.traffic.tx_rate,
            rx_bytes: r.traffic.totals.rx_bytes,
            tx_bytes: r.traffic.totals.tx_bytes,
            workload: None,
            state_since_ns: None,
            connect_us: r.traffic.opened.and_then(|l| l.connect_us),
            rtt_us: r.traffic.rtt.map(|t| t.srtt_us).or_else(|| r.traffic.opened.and_then(|l| l.srtt_us)),
            row: r.clone(),
            local_key: addr_key(r.local),
            remote_key: addr_key(r.remote),
            rank: state_rank(r.state),
            rhost: None,
        }
    }

    /// The PID/Program cell.
    pub fn owner_label(&self) -> String {
        let owner = label(self.owner.as_ref().map(|(pid, comm)| (*pid, comm)));
        match self.more_owners {
            0 => owner.to_string(),
            n => format!("{owner} (+{n})"),
        }
    }

    /// Whether any cell contains `needle` (lowercase), ignoring case.
    /// `buf` is scratch space reused across rows.
    pub fn matches(&self, needle: &str, buf: &mut String) -> bool {
        if needle.is_empty() {
            return true;
        }
        let c = format::contains_ci;
        if c(proto_label(self.row.proto, self.row.family), needle)
            || c(state_name(self.row.proto, self.row.state), needle)
        {
            return true;
        }
        buf.clear();
        format::push_endpoint(buf, self.row.local);
        buf.push(' ');
        format::push_endpoint(buf, self.row.remote);
        buf.push(' ');
        let _ = write!(buf, "{}", label(self.owner.as_ref().map(|(pid, comm)| (*pid, comm))));
        if let Some(h) = &self.rhost {
            let _ = write!(buf, " {h}");
        }
        if let Some(w) = &self.workload {
            let _ = write!(buf, " {}", w.cgroup);
            if let Some(c) = &w.container {
                let _ = write!(buf, " {} {}", c.id, c.name.as_deref().unwrap_or(""));
            }
        }
        c(buf, needle)
    }
}

/// TIME_WAIT, and the other closing states once they are past
/// [`COLLAPSE_AFTER_NS`] in it (or since netwatch saw them, when no event
/// said when they entered it).
pub fn collapsible(e: &Entry, now_ns: u64) -> bool {
    match (e.row.proto, e.row.state) {
        (Proto::Tcp, TcpState::TimeWait) => true,
        (
            Proto::Tcp,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::CloseWait | TcpState::LastAck | TcpState::Closing,
        ) => {
            let since = e.state_since_ns.unwrap_or(e.row.seen_ns);
            now_ns.saturating_sub(since) > COLLAPSE_AFTER_NS
        }
        _ => false,
    }
}

/// Listeners first, then states in the order a connection lives them.
pub(super) fn state_rank(state: TcpState) -> u8 {
    match state {
        TcpState::Listen => 0,
        TcpState::Established => 1,
        TcpState::SynSent => 2,
        TcpState::SynRecv | TcpState::NewSynRecv => 3,
        TcpState::FinWait1 => 4,
        TcpState::FinWait2 => 5,
        TcpState::CloseWait => 6,
        TcpState::LastAck => 7,
        TcpState::Closing => 8,
        TcpState::TimeWait => 9,
        TcpState::Close => 10,
        TcpState::BoundInactive => 11,
    }
}

/// The default order, also every other column's tie-break, so that rows
/// never swap places between redraws.
fn by_state(a: &Entry, b: &Entry) -> Ordering {
    let key = |e: &Entry| (e.rank, e.row.local.port(), e.local_key, e.remote_key, e.row.proto);
    key(a).cmp(&key(b))
}

pub fn compare(a: &Entry, b: &Entry, column: Column) -> Ordering {
    let primary = match column {
        Column::Proto => a.row.proto.cmp(&b.row.proto).then((a.row.family as u8).cmp(&(b.row.family as u8))),
        Column::Local => a.local_key.cmp(&b.local_key),
        Column::Remote => a.remote_key.cmp(&b.remote_key),
        Column::State => Ordering::Equal,
        // By program name, then PID; sockets without an owner last.
        Column::Owner => {
            none_last(a.owner.as_ref(), b.owner.as_ref(), |(pa, ca), (pb, cb)| ca.cmp(cb).then(pa.cmp(pb)))
        }
        // Youngest first.
        Column::Age => b.start_ns.cmp(&a.start_ns),
        // Traffic: the busiest first.
        Column::RxRate => b.rx_rate.cmp(&a.rx_rate),
        Column::TxRate => b.tx_rate.cmp(&a.tx_rate),
        Column::RxBytes => b.rx_bytes.cmp(&a.rx_bytes),
        Column::TxBytes => b.tx_bytes.cmp(&a.tx_bytes),
        Column::Bandwidth => (b.rx_rate + b.tx_rate)
            .cmp(&(a.rx_rate + a.tx_rate))
            .then((b.rx_bytes + b.tx_bytes).cmp(&(a.rx_bytes + a.tx_bytes))),
        // Latency: the slowest first, rows without a figure after.
        Column::Connect => none_last(a.connect_us, b.connect_us, |a, b| b.cmp(&a)),
        Column::Rtt => none_last(a.rtt_us, b.rtt_us, |a, b| b.cmp(&a)),
    };
    primary.then_with(|| by_state(a, b))
}

/// `Some` by `cmp`, then `None`.
fn none_last<T>(a: Option<T>, b: Option<T>, cmp: impl FnOnce(T, T) -> Ordering) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => cmp(a, b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// What selects and orders the rows.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub mode: Mode,
    /// Plain text to look for in any cell, lowercase.
    pub text: &'a str,
    /// A filter expression, instead of the text.
    pub expr: Option<&'a Filter>,
    pub sort: Sort,
    /// Collapse old closing states into count lines, as of this time
    /// (CLOCK_MONOTONIC ns); `None` lists every row.
    pub collapse_at: Option<u64>,
    /// For the expression's `lifetime`.
    pub now_ns: u64,
}

/// Rows a collapsed state stands for: the count line's state and count.
pub type Collapsed = Vec<(TcpState, u32)>;

/// Indices of the entries the view shows, in display order, the states
/// collapsed into count lines (in state order), and the collapsed rows.
pub fn order(entries: &[Entry], q: &Query<'_>, out: &mut Vec<u32>, collapsed: &mut Collapsed, hidden: &mut Vec<u32>) {
    out.clear();
    collapsed.clear();
    hidden.clear();
    let mut buf = String::new();
    let mut counts = [0u32; 16];
    out.extend(
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                q.mode.shows(e)
                    && match q.expr {
                        Some(f) => f.matches(&RowAt { row: &e.row, now_ns: q.now_ns, workload: e.workload.as_ref() }),
                        None => e.matches(q.text, &mut buf),
                    }
            })
            .filter(|(i, e)| match q.collapse_at {
                Some(now) if collapsible(e, now) => {
                    counts[e.row.state as usize] += 1;
                    hidden.push(*i as u32);
                    false
                }
                _ => true,
            })
            .map(|(i, _)| i as u32),
    );
    let (column, reverse) = (q.sort.column, q.sort.reverse);
    out.sort_unstable_by(|&a, &b| {
        let o = compare(&entries[a as usize], &entries[b as usize], column);
        if reverse {
            o.reverse()
        } else {
            o
        }
    });
    let mut states: Vec<TcpState> = TcpState::ALL.into_iter().filter(|&s| counts[s as usize] > 0).collect();
    states.sort_by_key(|&s| state_rank(s));
    collapsed.extend(states.into_iter().map(|s| (s, counts[s as usize])));
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
