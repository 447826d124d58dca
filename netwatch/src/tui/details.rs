//! The details pane: everything the view knows about one connection, as
//! `ss -tiep` shows one socket, plus its history (each transition with the
//! kernel's timestamp). It follows the connection: once the row is gone,
//! the closed list's record of it (same cookie) is shown.

use netwatch_common::Traffic;
use ratatui::{
    layout::Rect,
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Borders, Paragraph, Wrap},
    Frame,
};

use super::{
    app::{App, Details},
    format,
    view::Entry,
};
use crate::{
    output::{
        snapshot::{proto_label, state_name},
        text::endpoint,
    },
    socket::Owner,
    table::{Closed, Row},
    workload::Workload,
};

pub fn render(frame: &mut Frame, area: Rect, app: &App, now_ns: u64) {
    let Some(target) = app.ui.details else { return };
    let (title, lines) = match find(app, target) {
        Found::Row(e) => {
            (" Details: open connection (Esc closes) ", row_lines(app, &e.row, e.workload.as_ref(), now_ns))
        }
        Found::Closed(c) => (" Details: closed connection (Esc closes) ", closed_lines(app, c)),
        Found::Gone => (" Details (Esc closes) ", vec![Line::from(" no longer in the table or the closed list")]),
    };
    let block =
        Block::new().borders(Borders::TOP).title(Line::from(title).style(Style::new().add_modifier(Modifier::BOLD)));
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}

enum Found<'a> {
    Row(&'a Entry),
    Closed(&'a Closed),
    Gone,
}

fn find(app: &App, target: Details) -> Found<'_> {
    let closed = |cookie: Option<u64>, local| {
        app.snap.closed.iter().rev().find(|c| c.cookie == cookie && (cookie.is_some() || c.local == local))
    };
    match target {
        Details::Row { cookie, local, remote } => {
            let row = app.snap.entries.iter().find(|e| match cookie {
                Some(_) => e.row.cookie == cookie,
                None => e.row.local == local && e.row.remote == remote,
            });
            match (row, closed(cookie, local)) {
                (Some(e), _) => Found::Row(e),
                (None, Some(c)) if cookie.is_some() => Found::Closed(c),
                _ => Found::Gone,
            }
        }
        Details::Closed { cookie, local, closed_ns } => {
            let exact = app.snap.closed.iter().rev().find(|c| c.closed_ns == closed_ns && c.local == local);
            exact.or_else(|| closed(cookie, local)).map_or(Found::Gone, Found::Closed)
        }
    }
}

fn kv(pairs: &[(&str, String)]) -> Line<'static> {
    let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} {v}")).collect();
    Line::from(format!(" {}", text.join("   ")))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn traffic_lines(t: &Traffic) -> Line<'static> {
    kv(&[
        ("sent", format!("{} bytes / {} packets", t.tx_bytes, t.tx_packets)),
        ("received", format!("{} bytes / {} packets", t.rx_bytes, t.rx_packets)),
        ("retransmits", t.retransmits.to_string()),
        ("resets sent", t.resets_sent.to_string()),
        ("resets received", t.resets_received.to_string()),
    ])
}

/// Packets of the socket the kernel dropped, and how many for each
/// reason (`crate::probe::drops_by_reason`): live from the kernel's
/// per-socket row while the socket is open, from its close event after.
fn drops_line(t: &Traffic) -> Option<Line<'static>> {
    if t.drops == 0 {
        return None;
    }
    let reasons: Vec<String> =
        crate::probe::drops_by_reason(t).into_iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    Some(kv(&[("dropped", t.drops.to_string()), ("by reason", reasons.join(", "))]))
}

fn row_lines(app: &App, r: &Row, workload: Option<&Workload>, now_ns: u64) -> Vec<Line<'static>> {
    let owners: Vec<String> = r.owners.iter().map(ToString::to_string).collect();
    let age = r.opened_ns.map(|o| format::duration(now_ns.saturating_sub(o)));
    let mut lines = vec![
        kv(&[
            ("", proto_label(r.proto, r.family).to_owned()),
            ("", format!("{} -> {}", endpoint(r.local), endpoint(r.remote))),
            ("state", state_name(r.proto, r.state).to_owned()),
            ("age", opt(age)),
        ]),
        kv(&[
            ("holders", if owners.is_empty() { "-".to_owned() } else { owners.join(", ") }),
            ("uid", r.uid.to_string()),
            ("netns", r.netns.to_string()),
            ("cookie", opt(r.cookie)),
            ("inode", r.inode.to_string()),
        ]),
        kv(&[
            ("recv-q", r.rx_queue.to_string()),
            ("send-q", r.tx_queue.to_string()),
            ("timer", opt(r.timer.map(|t| format!("{:?} {:?}", t.kind, t.expires)))),
            ("opened", opt(r.opened_ns.map(|ns| kernel_ts(app, ns)))),
        ]),
        traffic_lines(&r.traffic.totals),
    ];
    lines.extend(drops_line(&r.traffic.totals));
    lines.extend(r.traffic.opened.map(|l| latency_line(&l)));
    if let Some(t) = r.traffic.rtt {
        // `tcp_info` now (the handshake's srtt above is from then).
        let us = |v: u32| format::latency(u64::from(v));
        lines.push(kv(&[
            ("rtt now", us(t.srtt_us)),
            ("rttvar", us(t.rttvar_us)),
            ("retransmitted", t.total_retrans.to_string()),
        ]));
    }
    lines.extend(r.traffic.listen_drops.map(|d| kv(&[("dropped SYNs", d.to_string())])));
    lines.extend(workload.map(workload_line));
    lines.extend(history(app, r.cookie));
    lines
}

/// Where the first holder runs (`crate::workload`).
fn workload_line(w: &Workload) -> Line<'static> {
    let c = w.container.as_ref();
    kv(&[
        ("cgroup", w.cgroup.to_string()),
        ("unit", opt(w.unit.as_deref())),
        ("container", opt(c.map(|c| format!("{} {}", c.runtime.name(), c.name.as_deref().unwrap_or(&c.id))))),
        ("pod", opt(w.pod_uid.as_deref())),
    ])
}

/// How the connection opened (`crate::why`): connect latency or the
/// passive handshake, the handshake's retransmits, the RTT then.
fn latency_line(l: &crate::why::Latency) -> Line<'static> {
    let us = |v: Option<u64>| opt(v.map(|us| format::duration(us * 1000)));
    kv(&[
        ("connect latency", us(l.connect_us)),
        ("handshake", us(l.handshake_us)),
        ("syn retransmits", opt(l.syn_retransmits)),
        ("srtt", us(l.srtt_us.map(u64::from))),
    ])
}

fn closed_lines(app: &App, c: &Closed) -> Vec<Line<'static>> {
    let mut lines = vec![
        kv(&[
            ("", proto_label(c.proto, c.family).to_owned()),
            ("", format!("{} -> {}", endpoint(c.local), endpoint(c.remote))),
            ("last state", c.last_state.name().to_owned()),
            ("ending", c.ending.name().to_owned()),
            ("lifetime", opt(c.duration_ns.map(format::duration))),
        ]),
        kv(&[
            ("owner", Owner::label(c.owner.as_ref()).to_string()),
            ("netns", c.netns.to_string()),
            ("cookie", opt(c.cookie)),
            ("closed", kernel_ts(app, c.closed_ns)),
        ]),
        traffic_lines(&c.traffic),
        kv(&[
            ("srtt", opt((c.traffic.srtt_us != 0).then(|| format::duration(u64::from(c.traffic.srtt_us) * 1000)))),
            ("reason", opt(crate::why::closed_failure(c.last_state, c.traffic.sk_err).map(|f| f.label(" ")))),
        ]),
    ];
    lines.extend(drops_line(&c.traffic));
    lines.extend(history(app, c.cookie));
    lines
}

/// A CLOCK_MONOTONIC time as the kernel stamped it, with the wall clock.
fn kernel_ts(app: &App, ns: u64) -> String {
    let wall = app.clock.at(ns).to_zoned(app.tz.clone()).strftime("%H:%M:%S%.6f").to_string();
    format!("{wall} ({}.{:09})", ns / 1_000_000_000, ns % 1_000_000_000)
}

fn history(app: &App, cookie: Option<u64>) -> Vec<Line<'static>> {
    let Some(list) = cookie.and_then(|c| app.transitions.get(&c)).filter(|l| !l.is_empty()) else {
        return vec![Line::from(" history: none seen (the socket is older than this view)")];
    };
    let mut lines = vec![Line::from(" history:")];
    lines.extend(list.iter().map(|t| {
        let at = kernel_ts(app, t.ts_ns);
        Line::from(format!("   {at}  {:<14} {} -> {}", t.kind.name(), t.old.name(), t.new.name()))
    }));
    lines
}
