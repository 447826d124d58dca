//! The table printed once: netstat-like text, or one JSON document.

use std::io::{self, Write};

use serde::Serialize;

use super::json::JsonTraffic;
use crate::{
    event::display_ip,
    socket::{Family, Owner, Proto, TcpState},
    table::{Closed, Row, Table, Totals},
};

/// netstat's protocol column: `tcp`, `tcp6`, `udp`, `udp6` (`tcp6` for an
/// IPv6 socket, even one carrying IPv4-mapped traffic).
pub const fn proto_label(proto: Proto, family: Family) -> &'static str {
    match (proto, family) {
        (Proto::Tcp, Family::V4) => "tcp",
        (Proto::Tcp, Family::V6) => "tcp6",
        (Proto::Udp, Family::V4) => "udp",
        (Proto::Udp, Family::V6) => "udp6",
    }
}

/// netstat's State column. UDP has no states: netstat prints nothing for
/// an unconnected socket and ESTABLISHED for a connected one.
pub const fn state_name(proto: Proto, state: TcpState) -> &'static str {
    match (proto, state) {
        (Proto::Tcp, _) => state.name(),
        (Proto::Udp, TcpState::Established) => "ESTABLISHED",
        (Proto::Udp, _) => "",
    }
}

/// `state` in the JSON document: `UNCONN` for unconnected UDP, as ss says.
pub fn json_state(r: &Row) -> &'static str {
    if r.proto == Proto::Udp && r.state != TcpState::Established {
        "UNCONN"
    } else {
        r.state.name()
    }
}

/// Rows in a stable order: protocol, local port, local address, remote
/// address and port, state.
pub fn sorted(table: &Table) -> Vec<&Row> {
    // Addresses as integers (IPv4 before IPv6, as `IpAddr` orders them):
    // comparing `SocketAddr`s field by field was a fifth of a 40,000-row
    // snapshot.
    fn ip_key(ip: std::net::IpAddr) -> (bool, u128) {
        match ip {
            std::net::IpAddr::V4(v4) => (false, u128::from(v4.to_bits())),
            std::net::IpAddr::V6(v6) => (true, v6.to_bits()),
        }
    }
    let mut rows: Vec<_> = table
        .rows()
        .map(|r| {
            let key = (r.proto, r.local.port(), ip_key(r.local.ip()), ip_key(r.remote.ip()), r.remote.port(), r.state);
            (key, r)
        })
        .collect();
    rows.sort_unstable_by_key(|&(key, _)| key);
    rows.into_iter().map(|(_, r)| r).collect()
}

fn addr(ip: std::net::IpAddr, port: u16) -> String {
    let mut out = Vec::new();
    push_addr(&mut out, ip, port);
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` in `width` columns (never cut, as `{:<width}`/`{:>width}`), then
/// the separating space. Only for ASCII text (addresses, numbers,
/// netwatch's own labels): widths are counted in bytes.
fn column(buf: &mut Vec<u8>, s: impl AsRef<[u8]>, width: usize, right: bool) {
    let s = s.as_ref();
    let pad = width.saturating_sub(s.len());
    if right {
        buf.resize(buf.len() + pad, b' ');
    }
    buf.extend_from_slice(s);
    if !right {
        buf.resize(buf.len() + pad, b' ');
    }
    buf.push(b' ');
}

/// Pads the line being written to `width` columns, then a space.
fn pad_line(buf: &mut Vec<u8>, width: usize) {
    let start = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    buf.resize(buf.len().max(start + width), b' ');
    buf.push(b' ');
}

/// `addr:port`, or `addr:*` for port 0, appended to `out`.
fn push_addr(out: &mut Vec<u8>, ip: std::net::IpAddr, port: u16) {
    super::write_ip(out, ip);
    match port {
        0 => out.extend_from_slice(b":*"),
        p => {
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(p).as_bytes());
        }
    }
}

/// Where the rows' owners run (`crate::workload`), resolved once per
/// owner PID before printing, and what the snapshot does with it.
#[derive(Default)]
pub struct Workloads {
    pub by_pid: rustc_hash::FxHashMap<u32, crate::workload::Workload>,
    /// The WORKLOAD column of the text table.
    pub column: bool,
    /// Rows none of whose owners match are left out.
    pub filter: crate::filter::WorkloadFilter,
}

impl Workloads {
    /// Resolves every owner of the table's rows.
    pub fn resolve(table: &Table) -> Self {
        let mut by_pid = rustc_hash::FxHashMap::default();
        for o in table.rows().flat_map(|r| r.owners.iter()).filter(|o| o.pid != 0) {
            if let std::collections::hash_map::Entry::Vacant(v) = by_pid.entry(o.pid) {
                if let Some(w) = table.workload_of(o.pid) {
                    v.insert(w);
                }
            }
        }
        Self { by_pid, ..Self::default() }
    }

    fn of(&self, o: &Owner) -> Option<&crate::workload::Workload> {
        self.by_pid.get(&o.pid)
    }

    fn keeps(&self, r: &Row) -> bool {
        !self.filter.is_set() || r.owners.iter().any(|o| self.filter.matches(self.of(o)))
    }
}

/// Where the Name column (`--names`) starts: after netstat's columns and
/// the Workload column, if shown.
const fn name_at(workload: bool) -> usize {
    149 + 24 + if workload { 1 + 24 } else { 0 }
}

/// The table as netstat prints it, with the rows' workloads and, with
/// `names`, the remote's name from DNS.
pub fn text_with(out: &mut dyn Write, table: &Table, workloads: &Workloads, names: bool) -> io::Result<()> {
    write!(
        out,
        "{:<5} {:>6} {:>6} {:<39} {:<39} {:<11} {:<10} {:>12} {:>12} PID/Program name",
        "Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State", "Netns", "TX bytes", "RX bytes"
    )?;
    write!(out, "{}", if workloads.column { "         Workload" } else { "" })?;
    match (names, workloads.column) {
        (true, true) => writeln!(out, "{:>21}", "Name")?,
        (true, false) => writeln!(out, "         Name")?,
        (false, _) => writeln!(out)?,
    }
    // Rows are formatted into one buffer, written once, with hand-padded
    // columns and reused address strings: tens of thousands of rows are the
    // normal case, and `{:<39}` pads one `write_char` at a time.
    let rows: Vec<_> = sorted(table).into_iter().filter(|r| workloads.keeps(r)).collect();
    let mut buf = Vec::with_capacity(rows.len() * 140);
    let mut cell = Vec::with_capacity(48);
    let mut num = itoa::Buffer::new();
    for r in rows {
        column(&mut buf, proto_label(r.proto, r.family), 5, false);
        column(&mut buf, num.format(r.rx_queue), 6, true);
        column(&mut buf, num.format(r.tx_queue), 6, true);
        for a in [r.local, r.remote] {
            cell.clear();
            push_addr(&mut cell, a.ip(), a.port());
            column(&mut buf, &cell, 39, false);
        }
        column(&mut buf, state_name(r.proto, r.state), 11, false);
        column(&mut buf, num.format(r.netns), 10, false);
        column(&mut buf, num.format(r.traffic.totals.tx_bytes), 12, true);
        column(&mut buf, num.format(r.traffic.totals.rx_bytes), 12, true);
        match r.owners.first() {
            Some(o) if o.pid != 0 => {
                buf.extend_from_slice(num.format(o.pid).as_bytes());
                buf.push(b'/');
                buf.extend_from_slice(o.comm.bytes());
            }
            _ => buf.push(b'-'),
        }
        if r.owners.len() > 1 {
            buf.extend_from_slice(b" (+");
            buf.extend_from_slice(num.format(r.owners.len() - 1).as_bytes());
            buf.push(b')');
        }
        if workloads.column {
            // The first owner's, in a column after netstat's last one.
            let w = r.owners.first().and_then(|o| workloads.of(o));
            // netstat's columns, then the owner's padded to 24.
            pad_line(&mut buf, 149 + 24);
            buf.extend_from_slice(w.map_or("-", |w| w.label()).as_bytes());
        }
        if names {
            pad_line(&mut buf, name_at(workloads.column));
            buf.extend_from_slice(table.row_name(r).as_deref().unwrap_or("-").as_bytes());
        }
        buf.push(b'\n');
    }
    out.write_all(&buf)?;
    if table.history().next().is_some() {
        writeln!(out, "\nClosed while watching:")?;
        writeln!(
            out,
            "{:<5} {:<39} {:<39} {:<11} {:<7} {:>11} {:>12} {:>12} PID/Program name",
            "Proto", "Local Address", "Foreign Address", "Last state", "Ending", "Lifetime", "TX bytes", "RX bytes"
        )?;
        for c in table.history() {
            let owner = Owner::label(c.owner.as_ref()).to_string();
            let lifetime =
                c.duration_ns.map_or_else(|| "-".to_owned(), |ns| format!("{:.3}ms", super::duration_ms(ns)));
            writeln!(
                out,
                "{:<5} {:<39} {:<39} {:<11} {:<7} {lifetime:>11} {:>12} {:>12} {owner}",
                proto_label(c.proto, c.family),
                addr(c.local.ip(), c.local.port()),
                addr(c.remote.ip(), c.remote.port()),
                c.last_state.name(),
                c.ending.name(),
                c.traffic.tx_bytes,
                c.traffic.rx_bytes,
            )?;
        }
    }
    writeln!(out)?;
    let c = table.counts();
    let states: Vec<String> = c.tcp_named().iter().map(|(n, k)| format!("{n} {k}")).collect();
    writeln!(out, "TCP: {} sockets ({})", c.tcp_total(), states.join(", "))?;
    writeln!(out, "UDP: {} sockets", c.udp_total())?;
    let t = &table.totals;
    if t != &Totals::default() {
        writeln!(
            out,
            "Since start: TCP opened {} active, {} passive; TCP closed {}; failed connects {}; resets {}; lost events {}",
            t.opened_active, t.opened_passive, t.closed, t.failed_connects, t.resets, t.lost_events
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonOwner<'a> {
    pid: u32,
    comm: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    workload: Option<JsonWorkload<'a>>,
}

/// Where an owner runs, named as in `netwatch events --json` (the tests'
/// serde oracle of that line has it too).
#[derive(Serialize)]
pub(super) struct JsonWorkload<'a> {
    cgroup: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_runtime: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_uid: Option<&'a str>,
}

impl<'a> From<&'a crate::workload::Workload> for JsonWorkload<'a> {
    fn from(w: &'a crate::workload::Workload) -> Self {
        let c = w.container.as_ref();
        Self {
            cgroup: &w.cgroup,
            unit: w.unit.as_deref(),
            container_runtime: c.map(|c| c.runtime.name()),
            container_id: c.map(|c| &*c.id),
            container_name: c.and_then(|c| c.name.as_deref()),
            pod_uid: w.pod_uid.as_deref(),
        }
    }
}

/// The addressing fields every socket and closed connection carries, named
/// as in `netwatch events --json`.
#[derive(Serialize)]
struct JsonEnds {
    proto: &'static str,
    family: &'static str,
    saddr: String,
    sport: u16,
    daddr: String,
    dport: u16,
}

impl JsonEnds {
    fn new(proto: Proto, family: Family, local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Self {
        Self {
            proto: if proto == Proto::Tcp { "tcp" } else { "udp" },
            family: family.name(),
            saddr: display_ip(local.ip()).to_string(),
            sport: local.port(),
            daddr: display_ip(remote.ip()).to_string(),
            dport: remote.port(),
        }
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    ends: JsonEnds,
    state: &'static str,
    netns: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    cookie: Option<u64>,
    inode: u64,
    uid: u32,
    owners: Vec<JsonOwner<'a>>,
    recv_q: u32,
    send_q: u32,
    #[serde(flatten)]
    traffic: JsonTraffic,
    /// Payload bytes per second over the last second, each way.
    tx_rate: u64,
    rx_rate: u64,
    /// How it opened (`crate::why`), when netwatch saw it open.
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_latency_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    syn_retransmits: Option<u32>,
    /// Listeners: SYNs and handshakes the kernel dropped there (its
    /// `sk_drops`: a full accept queue, mostly), from sock_diag.
    #[serde(skip_serializing_if = "Option::is_none")]
    drops: Option<u32>,
    /// Connected TCP sockets: the kernel's smoothed RTT and its mean
    /// deviation now, and segments retransmitted over the connection's
    /// life (`tcp_info`, as `ss -ti`).
    #[serde(skip_serializing_if = "Option::is_none")]
    srtt_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rttvar_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_retrans: Option<u32>,
    /// The remote's name from DNS (`crate::names`), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    rhost: Option<String>,
}

/// Drops and RTT per socket cookie, from a sock_diag dump that asked for
/// them (`crate::seed::SeedOptions::figures`).
pub type FiguresByCookie = rustc_hash::FxHashMap<u64, crate::seed::diag::Figures>;

#[derive(Serialize)]
struct JsonSnapshot<'a> {
    ts: String,
    counts: serde_json::Value,
    totals: &'a Totals,
    sockets: Vec<JsonRow<'a>>,
    /// Connections that ended while netwatch watched, oldest first.
    closed: Vec<JsonClosed<'a>>,
    /// Traffic per process name (live and closed sockets), busiest first.
    processes: Vec<JsonProcess>,
}

#[derive(Serialize)]
struct JsonProcess {
    comm: String,
    sockets: u32,
    #[serde(flatten)]
    traffic: JsonTraffic,
    tx_rate: u64,
    rx_rate: u64,
}

/// Process names listed in the JSON snapshot before the rest is summed up.
const TOP_PROCESSES: usize = 20;

#[derive(Serialize)]
struct JsonClosed<'a> {
    #[serde(flatten)]
    ends: JsonEnds,
    netns: u32,
    cookie: Option<u64>,
    pid: u32,
    comm: &'a str,
    last_state: &'static str,
    ending: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(flatten)]
    traffic: JsonTraffic,
    /// The smoothed RTT at close, and why it ended if not by the FIN
    /// handshake (`crate::why`).
    #[serde(skip_serializing_if = "Option::is_none")]
    srtt_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<std::borrow::Cow<'static, str>>,
}

fn closed_json(c: &Closed) -> JsonClosed<'_> {
    let failure = match c.proto {
        Proto::Tcp => crate::why::closed_failure(c.last_state, c.traffic.sk_err),
        Proto::Udp => None,
    };
    JsonClosed {
        ends: JsonEnds::new(c.proto, c.family, c.local, c.remote),
        netns: c.netns,
        cookie: c.cookie,
        pid: c.owner.as_ref().map_or(0, |o| o.pid),
        comm: c.owner.as_ref().map_or("", |o| o.comm.text()),
        last_state: c.last_state.name(),
        ending: c.ending.name(),
        duration_ms: c.duration_ns.map(super::duration_ms),
        traffic: JsonTraffic::from(&c.traffic),
        srtt_us: (c.traffic.srtt_us != 0).then_some(c.traffic.srtt_us),
        reason: failure.map(|f| f.reason.name()),
        errno: failure.filter(|f| f.errno != 0).map(|f| crate::why::errno_name(f.errno)),
    }
}

/// `tcp_info` of a TCP socket past its handshake (a listener's is all
/// zeros; a SYN_SENT socket's RTT has no sample yet).
fn connected_rtt(r: &Row, f: Option<&crate::seed::diag::Figures>) -> Option<crate::seed::diag::Rtt> {
    let rtt = f?.rtt?;
    (r.proto == Proto::Tcp && !matches!(r.state, TcpState::Listen | TcpState::SynSent) && rtt.srtt_us != 0)
        .then_some(rtt)
}

/// The table as one JSON document, with the owners' workloads and, where
/// dumped, the kernel's figures of each socket.
pub fn json_with(
    out: &mut dyn Write,
    table: &Table,
    workloads: &Workloads,
    figures: &FiguresByCookie,
) -> io::Result<()> {
    let c = table.counts();
    let tcp: serde_json::Map<String, serde_json::Value> =
        c.tcp_named().into_iter().map(|(n, k)| (n.to_owned(), k.into())).collect();
    let sockets = sorted(table)
        .into_iter()
        .filter(|r| workloads.keeps(r))
        .map(|r| (r, r.cookie.and_then(|c| figures.get(&c))))
        .map(|(r, f)| JsonRow {
            ends: JsonEnds::new(r.proto, r.family, r.local, r.remote),
            state: json_state(r),
            netns: r.netns,
            cookie: r.cookie,
            inode: r.inode,
            uid: r.uid,
            owners: r
                .owners
                .iter()
                .map(|o| JsonOwner { pid: o.pid, comm: o.comm.text(), workload: workloads.of(o).map(Into::into) })
                .collect(),
            recv_q: r.rx_queue,
            send_q: r.tx_queue,
            traffic: JsonTraffic::from(&r.traffic.totals),
            tx_rate: r.traffic.tx_rate,
            rx_rate: r.traffic.rx_rate,
            connect_latency_us: r.traffic.opened.and_then(|l| l.connect_us),
            handshake_us: r.traffic.opened.and_then(|l| l.handshake_us),
            syn_retransmits: r.traffic.opened.and_then(|l| l.syn_retransmits),
            drops: f.and_then(|f| f.drops).filter(|_| r.proto == Proto::Tcp && r.state == TcpState::Listen),
            srtt_us: connected_rtt(r, f).map(|t| t.srtt_us),
            rttvar_us: connected_rtt(r, f).map(|t| t.rttvar_us),
            total_retrans: connected_rtt(r, f).map(|t| t.total_retrans),
            rhost: table.row_name(r).map(|h| h.to_string()),
        })
        .collect();
    let doc = JsonSnapshot {
        ts: super::json::rfc3339(jiff::Timestamp::now()),
        counts: serde_json::json!({ "tcp": tcp, "tcp_total": c.tcp_total(), "udp_total": c.udp_total() }),
        totals: &table.totals,
        sockets,
        closed: table.history().map(closed_json).collect(),
        processes: table
            .traffic_by_process(TOP_PROCESSES)
            .into_iter()
            .map(|p| JsonProcess {
                traffic: JsonTraffic::from(&p.totals),
                comm: p.name,
                sockets: p.sockets,
                tx_rate: p.tx_rate,
                rx_rate: p.rx_rate,
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &doc)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod names_tests {
    use super::*;
    use crate::{names::parse::Answer, seed::SeedSocket};

    /// `--names`: the remote's name in a column after netstat's (and the
    /// Workload column), `-` where none is known.
    #[test]
    fn names_column() {
        let mut t = Table::new(0);
        t.seed(
            vec![
                SeedSocket::fixture(TcpState::Established, "127.0.0.1:40000", "127.0.0.77:443").owned_by(5, "curl"),
                SeedSocket::fixture(TcpState::Established, "127.0.0.1:40001", "127.0.0.78:443").owned_by(5, "curl"),
            ],
            1_000,
        );
        let netns = t.rows().next().expect("a row").netns;
        let web = Answer { name: "web.test".into(), addrs: vec![("127.0.0.77".parse().unwrap(), 300)] };
        t.hosts.insert(netns, &web, 0);
        for workload in [false, true] {
            let mut out = Vec::new();
            let w = Workloads { column: workload, ..Workloads::default() };
            text_with(&mut out, &t, &w, true).unwrap();
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let at = name_at(workload) + 1;
            assert_eq!(lines[0].find("Name"), Some(at), "{text}");
            let named = lines.iter().find(|l| l.contains("127.0.0.77:443")).expect("row");
            assert_eq!(named.get(at..), Some("web.test"), "{text}");
            let other = lines.iter().find(|l| l.contains("127.0.0.78:443")).expect("row");
            assert_eq!(other.get(at..), Some("-"), "{text}");
        }
        // Without the flag, netstat's columns alone.
        let mut out = Vec::new();
        text_with(&mut out, &t, &Workloads::default(), false).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("web.test"));
    }
}
