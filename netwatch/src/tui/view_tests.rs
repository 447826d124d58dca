use super::*;
use crate::{
    output::snapshot::state_name,
    socket::TcpState,
    tui::fixtures::{rows, tcp},
};

fn entries() -> Vec<Entry> {
    rows().iter().map(Entry::of).collect()
}

fn shown(entries: &[Entry], mode: Mode, filter: &str, sort: Sort) -> Vec<String> {
    let q = Query { mode, text: filter, expr: None, sort, collapse_at: None, now_ns: 0 };
    lines(entries, &q).0
}

/// The rows shown and the count lines.
fn lines(entries: &[Entry], q: &Query<'_>) -> (Vec<String>, Collapsed) {
    let (mut idx, mut collapsed, mut hidden) = (Vec::new(), Vec::new(), Vec::new());
    order(entries, q, &mut idx, &mut collapsed, &mut hidden);
    assert_eq!(hidden.len() as u32, collapsed.iter().map(|(_, n)| n).sum::<u32>());
    let rows = idx
        .iter()
        .map(|&i| {
            let e = &entries[i as usize];
            format!("{} {} {}", state_name(e.row.proto, e.row.state), e.row.local, e.row.remote)
        })
        .collect();
    (rows, collapsed)
}

#[test]
fn closing_states_collapse_into_count_lines() {
    let mut rows = rows();
    rows.push(tcp("127.0.0.1:40003", "127.0.0.1:8080", TcpState::TimeWait, None));
    rows.push(tcp("127.0.0.1:8080", "127.0.0.1:40004", TcpState::CloseWait, Some((100, "server"))));
    rows.push(tcp("127.0.0.1:8080", "127.0.0.1:40005", TcpState::CloseWait, Some((100, "server"))));
    let mut entries: Vec<Entry> = rows.iter().map(Entry::of).collect();
    // One CLOSE_WAIT entered its state a moment ago: still news.
    let now = 60_000_000_000;
    entries.last_mut().unwrap().state_since_ns = Some(now - 1_000_000_000);
    let q = Query { mode: Mode::All, text: "", expr: None, sort: Sort::default(), collapse_at: Some(now), now_ns: now };
    let (shown, collapsed) = lines(&entries, &q);
    assert_eq!(collapsed, [(TcpState::CloseWait, 1), (TcpState::TimeWait, 2)]);
    assert!(shown.iter().all(|r| !r.starts_with("TIME_WAIT")), "{shown:?}");
    assert_eq!(shown.iter().filter(|r| r.starts_with("CLOSE_WAIT")).count(), 1, "{shown:?}");
    assert_eq!(shown.len(), 6);
    let all = lines(&entries, &Query { collapse_at: None, ..q });
    assert_eq!((all.0.len(), all.1.len()), (9, 0), "one key away: every row");
}

#[test]
fn filter_expressions_select_rows() {
    let entries = entries();
    let expr =
        Filter { expr: crate::filter::parse("state established and sport = :8080").unwrap(), ..Filter::default() };
    let q = Query { mode: Mode::All, text: "", expr: Some(&expr), sort: Sort::default(), collapse_at: None, now_ns: 0 };
    assert_eq!(lines(&entries, &q).0, ["ESTABLISHED 127.0.0.1:8080 127.0.0.1:40001"]);
    let expr = Filter { expr: crate::filter::parse("state listening or comm curl").unwrap(), ..Filter::default() };
    assert_eq!(lines(&entries, &Query { expr: Some(&expr), ..q }).0.len(), 3);
}

#[test]
fn default_sort_is_state_then_local_port() {
    let got = shown(&entries(), Mode::All, "", Sort::default());
    assert_eq!(
        got,
        [
            "LISTEN [::1]:22 [::]:0",
            "LISTEN 127.0.0.1:8080 0.0.0.0:0",
            "ESTABLISHED 127.0.0.1:8080 127.0.0.1:40001",
            "ESTABLISHED 127.0.0.1:40001 127.0.0.1:8080",
            "TIME_WAIT 127.0.0.1:40002 127.0.0.1:8080",
            " 127.0.0.53:53 0.0.0.0:0",
        ]
    );
    let reversed = shown(&entries(), Mode::All, "", Sort { reverse: true, ..Sort::default() });
    assert_eq!(reversed.first().map(String::as_str), Some(" 127.0.0.53:53 0.0.0.0:0"));
    assert_eq!(reversed.last().map(String::as_str), Some("LISTEN [::1]:22 [::]:0"));
}

#[test]
fn other_columns_sort_with_state_as_tie_break() {
    let e = entries();
    let by_owner = shown(&e, Mode::All, "", Sort { column: Column::Owner, reverse: false });
    // curl, resolved, server (LISTEN before ESTABLISHED), sshd, then no owner.
    assert!(by_owner[0].contains(":40001 "));
    assert!(by_owner[1].contains("127.0.0.53:53"));
    assert!(by_owner[2].starts_with("LISTEN 127.0.0.1:8080"));
    assert!(by_owner[3].starts_with("ESTABLISHED 127.0.0.1:8080"));
    assert!(by_owner[4].contains("[::1]:22"));
    assert!(by_owner[5].starts_with("TIME_WAIT"));
    let by_local = shown(&e, Mode::All, "", Sort { column: Column::Local, reverse: false });
    assert!(by_local[0].starts_with("LISTEN 127.0.0.1:8080"), "{by_local:?}");
    assert!(by_local[5].contains("[::1]:22"), "IPv6 after IPv4: {by_local:?}");
}

#[test]
fn age_sorts_youngest_first() {
    let mut rows = [
        tcp("127.0.0.1:1", "127.0.0.1:2", TcpState::Established, None),
        tcp("127.0.0.1:3", "127.0.0.1:4", TcpState::Established, None),
    ];
    rows[0].opened_ns = Some(5_000);
    rows[1].opened_ns = Some(9_000);
    let e: Vec<Entry> = rows.iter().map(Entry::of).collect();
    let got = shown(&e, Mode::All, "", Sort { column: Column::Age, reverse: false });
    assert!(got[0].contains("127.0.0.1:3 "), "{got:?}");
    assert!(e[0].start_known);
}

#[test]
fn column_cycle_visits_every_column() {
    let mut c = Column::State;
    let mut seen = Vec::new();
    for _ in 0..Column::ALL.len() {
        c = c.next();
        seen.push(c);
    }
    assert_eq!(c, Column::State);
    assert!(Column::ALL.iter().all(|c| seen.contains(c)));
}

#[test]
fn filter_matches_any_column_ignoring_case() {
    let e = entries();
    let n = |f: &str| shown(&e, Mode::All, f, Sort::default()).len();
    assert_eq!(n(""), 6);
    assert_eq!(n("8080"), 4, "local or remote port");
    assert_eq!(n(":40001"), 2);
    assert_eq!(n("curl"), 1);
    assert_eq!(n("200/"), 1, "PID");
    assert_eq!(n("time_wait"), 1, "state, any case");
    assert_eq!(n("tcp6"), 1);
    assert_eq!(n("udp"), 1);
    assert_eq!(n("[::1]"), 1);
    assert_eq!(n("nothing-like-this"), 0);
}

#[test]
fn modes_follow_netstat_flags() {
    let e = entries();
    assert_eq!(shown(&e, Mode::Tcp, "", Sort::default()).len(), 5);
    assert_eq!(shown(&e, Mode::Udp, "", Sort::default()).len(), 1);
    let listening = shown(&e, Mode::Listening, "", Sort::default());
    assert_eq!(listening.len(), 3, "{listening:?}");
    assert!(listening.iter().all(|l| l.starts_with("LISTEN") || l.contains(":53 ")));
    assert_eq!(shown(&e, Mode::Listening, "8080", Sort::default()).len(), 1, "mode and filter combine");
}

#[test]
fn owner_label_counts_extra_owners() {
    let mut r = tcp("127.0.0.1:1", "0.0.0.0:0", TcpState::Listen, Some((7, "nginx")));
    assert_eq!(Entry::of(&r).owner_label(), "7/nginx");
    r.owners.push(crate::socket::Owner { pid: 7, comm: "nginx".into() });
    assert_eq!(Entry::of(&r).owner_label(), "7/nginx", "a second descriptor of the same process");
    r.owners.push(crate::socket::Owner { pid: 8, comm: "nginx".into() });
    assert_eq!(Entry::of(&r).owner_label(), "7/nginx (+1)", "as snapshot text shows it");
    r.owners.clear();
    assert_eq!(Entry::of(&r).owner_label(), "-");
}

#[test]
fn bandwidth_sort_puts_the_top_talkers_first() {
    let mut rows = rows();
    // The UDP socket receives a little; the 40001 client sends a lot.
    for r in &mut rows {
        match r.local.port() {
            53 => r.traffic.rx_rate = 500,
            40001 => (r.traffic.tx_rate, r.traffic.totals.tx_bytes) = (90_000, 1 << 20),
            _ => {}
        }
    }
    let entries: Vec<Entry> = rows.iter().map(Entry::of).collect();
    let got = shown(&entries, Mode::All, "", Sort { column: Column::Bandwidth, reverse: false });
    assert_eq!(&got[..2], ["ESTABLISHED 127.0.0.1:40001 127.0.0.1:8080", " 127.0.0.53:53 0.0.0.0:0"]);
    let by_tx = shown(&entries, Mode::All, "", Sort { column: Column::TxBytes, reverse: false });
    assert_eq!(by_tx[0], "ESTABLISHED 127.0.0.1:40001 127.0.0.1:8080");
    assert!(Column::RxRate.sorted_by(Column::Bandwidth) && !Column::Age.sorted_by(Column::Bandwidth));
}

#[test]
fn latency_sorts_put_the_slowest_first_and_rows_without_a_figure_last() {
    use crate::{seed::diag::Rtt, why::Latency};
    let mut rows = rows();
    for r in &mut rows {
        match (r.local.port(), r.state) {
            // The server's side: a live RTT from tcp_info, beside the
            // handshake's (which the live one replaces).
            (8080, TcpState::Established) => {
                r.traffic.rtt = Some(Rtt { srtt_us: 40, rttvar_us: 20, total_retrans: 0 });
                r.traffic.opened = Some(Latency { srtt_us: Some(900), ..Latency::default() });
            }
            // The client: netwatch saw it connect; no live RTT read yet.
            (40001, _) => {
                r.traffic.opened =
                    Some(Latency { connect_us: Some(2_050_000), srtt_us: Some(75), ..Latency::default() })
            }
            _ => {}
        }
    }
    let entries: Vec<Entry> = rows.iter().map(Entry::of).collect();
    let server = "ESTABLISHED 127.0.0.1:8080 127.0.0.1:40001";
    let client = "ESTABLISHED 127.0.0.1:40001 127.0.0.1:8080";
    let by_rtt = shown(&entries, Mode::All, "", Sort { column: Column::Rtt, reverse: false });
    assert_eq!(&by_rtt[..2], [client, server]);
    let by_connect = shown(&entries, Mode::All, "", Sort { column: Column::Connect, reverse: false });
    assert_eq!(by_connect[0], client);
    // Reversed: the fastest first, the rows without a figure before them.
    let fastest = shown(&entries, Mode::All, "", Sort { column: Column::Rtt, reverse: true });
    assert_eq!(&fastest[fastest.len() - 2..], [server, client]);
    let server = entries.iter().find(|e| e.row.local.port() == 8080 && e.row.state == TcpState::Established).unwrap();
    assert_eq!((server.rtt_us, server.connect_us), (Some(40), None));
}
