use netwatch_common::{EventKind, OwnerSource};

use super::*;
use crate::{
    event::Comm,
    socket::{Family, TcpState},
};

fn ev(pid: u32, local: &str, remote: &str) -> Event {
    Event {
        ts_ns: 0,
        start_ns: None,
        cookie: 0,
        family: if local.starts_with('[') { Family::V6 } else { Family::V4 },
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        pid,
        netns: 0,
        owner: OwnerSource::Unknown,
        ..crate::event::fixture(EventKind::State, TcpState::Established, TcpState::Established)
    }
}

fn with_state(mut e: Event, s: TcpState) -> Event {
    e.new_state = s;
    e
}

fn keeps(expr: &str, e: &Event) -> bool {
    parse(expr).unwrap_or_else(|err| panic!("{expr}: {err}")).matches(e)
}

/// A listener on 127.0.0.1:8080 in netns 9 (cookie 5, inode 77), held by
/// pid 10 `comm` and opened at 1 µs.
fn listener(comm: &str) -> Row {
    Row {
        netns: 9,
        cookie: Some(5),
        inode: 77,
        owners: smallvec::smallvec![crate::socket::Owner { pid: 10, comm: Comm::new(comm) }],
        opened_ns: Some(1_000),
        ..Row::fixture(TcpState::Listen, "127.0.0.1:8080", "0.0.0.0:0")
    }
}

#[test]
fn each_flag_narrows() {
    let a = ev(1, "127.0.0.1:5000", "127.0.0.1:80");
    let b = ev(2, "[::1]:6000", "[::1]:443");
    let mapped = ev(3, "[::ffff:127.0.0.1]:7000", "[::ffff:127.0.0.1]:22");
    let all = Filter::default();
    assert!([&a, &b, &mapped].iter().all(|e| all.matches(*e)));
    let pid = Filter::from_flags(&[2], &[], None, &[]);
    assert!(!pid.matches(&a) && pid.matches(&b));
    let port = Filter::from_flags(&[], &[80, 6000], None, &[]);
    assert!(port.matches(&a) && port.matches(&b) && !port.matches(&mapped));
    let v4 = Filter::from_flags(&[], &[], Some(true), &[]);
    assert!(v4.matches(&a) && !v4.matches(&b) && v4.matches(&mapped));
    let v6 = Filter::from_flags(&[], &[], Some(false), &[]);
    assert!(!v6.matches(&a) && v6.matches(&b) && !v6.matches(&mapped));
    let in_ns = Event { netns: 4_026_532_000, ..ev(4, "127.0.0.1:5000", "127.0.0.1:80") };
    let ns = Filter::from_flags(&[], &[], None, &[4_026_532_000]);
    assert!(ns.matches(&in_ns) && !ns.matches(&a) && !ns.matches(&b));
    // Flags and an expression all hold.
    let both = Filter::from_flags(&[1, 2], &[], None, &[]).with_words(&["dport".into(), ":443".into()]).unwrap();
    assert!(!both.matches(&a) && both.matches(&b));
}

#[test]
fn flags_build_the_expression_they_stand_for() {
    let flags = Filter::from_flags(&[5, 6], &[80], Some(true), &[]);
    assert_eq!(flags.expr, parse("( pid = 5 or pid = 6 ) and ( sport = 80 or dport = 80 ) and family = 4").unwrap());
}

#[test]
fn ports_with_every_operator() {
    let e = ev(1, "127.0.0.1:5000", "127.0.0.1:443");
    for yes in [
        "dport = :443",
        "dport :443",
        "dport 443",
        "dport == 443",
        "dport eq :443",
        "dport != :80",
        "dport neq 80",
        "sport > :1024",
        "sport gt 1024",
        "sport >= 5000",
        "sport ge 5000",
        "dport < 444",
        "dport lt 444",
        "dport <= 443",
        "dport le 443",
        "dport=:443",
    ] {
        assert!(keeps(yes, &e), "{yes}");
    }
    for no in ["dport = :80", "dport != 443", "sport < 5000", "sport le 4999", "dport > 443", "sport = :443"] {
        assert!(!keeps(no, &e), "{no}");
    }
}

#[test]
fn addresses_and_prefixes() {
    let v4 = ev(1, "127.0.0.2:5000", "127.0.0.1:443");
    let v6 = ev(1, "[::1]:5000", "[::1]:443");
    let mapped = ev(1, "[::ffff:127.0.0.2]:5000", "[::ffff:127.0.0.1]:443");
    for (expr, on4, on6, onmapped) in [
        ("src 127.0.0.0/8", true, false, true),
        ("dst 127.0.0.1", true, false, true),
        ("dst = 127.0.0.1:443", true, false, true),
        ("dst 127.0.0.1:80", false, false, false),
        ("src 127.0.0.1", false, false, false),
        ("src != 127.0.0.1", true, true, true),
        ("dst [::1]", false, true, false),
        ("dst ::1", false, true, false),
        ("dst [::1]:443", false, true, false),
        ("src [::]/0", false, true, false),
        ("dst *:443", true, true, true),
        ("dst :443", true, true, true),
        ("src 10.0.0.0/8", false, false, false),
    ] {
        assert_eq!((keeps(expr, &v4), keeps(expr, &v6), keeps(expr, &mapped)), (on4, on6, onmapped), "{expr}");
    }
}

#[test]
fn states_and_ss_groups() {
    let s = |st| with_state(ev(1, "127.0.0.1:5000", "127.0.0.1:443"), st);
    let (est, listen, tw, sent, close) = (
        s(TcpState::Established),
        s(TcpState::Listen),
        s(TcpState::TimeWait),
        s(TcpState::SynSent),
        s(TcpState::Close),
    );
    let row = |expr: &str| [&est, &listen, &tw, &sent, &close].map(|e| keeps(expr, e));
    assert_eq!(row("state established"), [true, false, false, false, false]);
    assert_eq!(row("state ESTABLISHED"), [true, false, false, false, false], "netstat's names too");
    assert_eq!(row("state listening"), [false, true, false, false, false]);
    assert_eq!(row("state connected"), [true, false, true, true, false]);
    assert_eq!(row("state synchronized"), [true, false, true, false, false]);
    assert_eq!(row("state bucket"), [false, false, true, false, false]);
    assert_eq!(row("state big"), [true, true, false, true, true]);
    assert_eq!(row("state all"), [true; 5]);
    assert_eq!(row("state established state listening"), [true, true, false, false, false], "ss adds states up");
    assert_eq!(row("exclude time-wait"), [true, true, false, true, true]);
    assert_eq!(row("state connected exclude time-wait"), [true, false, false, true, false]);
}

#[test]
fn boolean_operators_precedence_and_implicit_and() {
    let e = ev(7, "127.0.0.1:5000", "127.0.0.1:443");
    assert!(keeps("dport = :443 or sport = :443", &e));
    assert!(keeps("( dport = :443 || sport = :443 ) && pid = 7", &e));
    // As in ss: left to right, `and` no tighter than `or`.
    assert!(keeps("dport = :80 or sport = :5000 and pid = 7", &e));
    assert!(!keeps("dport = :443 or sport = :80 and pid = 8", &e), "(a or b) and c");
    assert!(keeps("dport = :443 or (sport = :80 and pid = 8)", &e));
    assert!(keeps("pid = 8 and sport = :80 or dport = :443", &e), "(a and b) or c");
    assert!(!keeps("(dport = :443 or sport = :80) pid 8", &e), "implicit and");
    assert!(keeps("not dport = :80", &e) && keeps("! dport = :80", &e) && keeps("!(dport = :80)", &e));
    assert!(!keeps("not not dport = :80", &e));
    assert!(keeps("", &e) && keeps("   ", &e));
}

#[test]
fn netwatch_fields() {
    let mut e = ev(42, "127.0.0.1:5000", "127.0.0.1:443");
    e.netns = 4_026_531_840;
    e.start_ns = Some(1_000_000_000);
    e.ts_ns = 3_500_000_000;
    e.traffic.rx_bytes = 3 << 20;
    e.traffic.tx_bytes = 10;
    assert!(keeps("pid 42 and comm = curl and comm ~ ur and comm != wget", &e));
    assert!(keeps("netns = 4026531840 and proto = tcp and family = 4 and uid = 0", &e));
    assert!(keeps("bytes > 3M and bytes < 4M and bytes >= 3145738", &e));
    assert!(keeps("lifetime > 2s and lifetime < 2600ms", &e));
    assert!(!keeps("lifetime > 3s", &e));
    e.start_ns = None;
    assert!(!keeps("lifetime > 0s", &e) && !keeps("lifetime < 1h", &e), "unknown lifetime matches no comparison");
    e.pid = 0;
    assert!(!keeps("pid = 42", &e) && keeps("pid != 42", &e), "no owner: != holds");
}

#[test]
fn errors_point_at_the_offending_word() {
    let err = |s: &str| parse(s).unwrap_err();
    let e = err("state established and dport = :http");
    assert_eq!((e.at, e.len), (30, 5), "{e}");
    assert!(e.message.starts_with("dport: expected a port number"), "{e}");
    let shown = e.to_string();
    assert_eq!(shown.lines().nth(1), Some("  state established and dport = :http"));
    assert_eq!(shown.lines().nth(2), Some(&*format!("  {}^^^^^", " ".repeat(30))));
    // Where (if asserted), how long (if asserted), and what it says.
    for (expr, at, len, says) in [
        ("bogus = 1", Some(0), Some(5), &["unknown word", "lifetime"][..]),
        ("state establishd", Some(6), Some(10), &["unknown state"]),
        ("( dport = 1", Some(0), None, &["never closed"]),
        ("dport = 1 )", Some(10), None, &[]),
        ("dport =", Some(7), None, &["ends"]),
        ("src > 127.0.0.1", Some(4), Some(1), &[]),
        ("src 127.0.0.1/33", Some(4), None, &[]),
        ("dport = 1 or", None, None, &["ends"]),
        ("comm < x", None, None, &["does not apply"]),
    ] {
        let e = err(expr);
        assert!(at.is_none_or(|at| e.at == at) && len.is_none_or(|len| e.len == len), "{expr}: {e:?}");
        assert!(says.iter().all(|s| e.message.contains(s)), "{expr}: {e}");
    }
}

#[test]
fn rows_and_closed_connections() {
    use crate::table::Ending;
    let row = listener("nginx");
    let at = RowAt { row: &row, now_ns: 2_000_001_000, workload: None };
    let p = |s: &str| parse(s).unwrap();
    assert!(p("state listening sport = :8080 comm nginx netns 9 cookie 5 lifetime >= 2s").matches(&at));
    assert!(!p("state connected").matches(&at));
    let closed = Closed {
        proto: Proto::Tcp,
        family: Family::V4,
        local: "127.0.0.1:40000".parse().unwrap(),
        remote: "127.0.0.1:8080".parse().unwrap(),
        netns: 9,
        cookie: Some(6),
        owner: None,
        last_state: TcpState::FinWait2,
        ending: Ending::Closed,
        closed_ns: 0,
        duration_ns: Some(3_000_000),
        traffic: netwatch_common::Traffic::ZERO,
    };
    assert!(p("dport 8080 and lifetime < 4ms and state closed and pid != 1").matches(&closed));
}

#[test]
fn which_expressions_name_states() {
    for (expr, yes) in
        [("state established", true), ("dport 1 or not exclude time-wait", true), ("netns 5 and pid 1", false)]
    {
        assert_eq!(parse(expr).unwrap().names_state(), yes, "{expr}");
    }
}

#[test]
fn expression_or_text() {
    for expr in ["state established", "dport = :80", "!(sport 1)", "( pid 1 )", "exclude time-wait", "comm x"] {
        assert!(looks_like_expression(expr), "{expr}");
    }
    for text in ["8080", "curl", "127.0.0.1", "ESTAB", ""] {
        assert!(!looks_like_expression(text), "{text}");
    }
}

#[test]
fn workload_filters() {
    use crate::workload::Runtime;
    let id = "ab".repeat(32);
    let (cgroup, unit) = (format!("/system.slice/docker-{id}.scope"), format!("docker-{id}.scope"));
    let web = Workload::fixture(&cgroup, Some(&unit), Some((Runtime::Docker, &id, Some("web"))), None);
    let ssh = Workload::fixture("/system.slice/ssh.service", Some("ssh.service"), None, None);
    let f = |units: &[&str], containers: &[&str], cgroups: &[&str]| WorkloadFilter {
        units: units.iter().map(|s| s.to_string()).collect(),
        containers: containers.iter().map(|s| s.to_string()).collect(),
        cgroups: cgroups.iter().map(|s| s.to_string()).collect(),
    };
    assert!(f(&[], &[], &[]).matches(None));
    assert!(!f(&["ssh.service"], &[], &[]).matches(None));
    assert!(f(&["ssh.service"], &[], &[]).matches(Some(&ssh)));
    assert!(!f(&["ssh"], &[], &[]).matches(Some(&ssh)));
    assert!(f(&[], &["web"], &[]).matches(Some(&web)) && f(&[], &["abab"], &[]).matches(Some(&web)));
    assert!(!f(&[], &["web"], &[]).matches(Some(&ssh)) && !f(&[], &["we"], &[]).matches(Some(&web)));
    assert!(f(&[], &[], &["/system.slice"]).matches(Some(&ssh)));
    assert!(f(&[], &[], &["system.slice/ssh.service/"]).matches(Some(&ssh)));
    assert!(!f(&[], &[], &["/system.sl"]).matches(Some(&ssh)));
    assert!(f(&[], &[], &["/"]).matches(Some(&ssh)));
    // Each flag narrows: both must hold.
    assert!(!f(&["ssh.service"], &["web"], &[]).matches(Some(&web)));
    let at = |w: &Workload| {
        let row = listener("sshd");
        let f = |e: &str| Filter { expr: parse(e).unwrap(), ..Filter::default() };
        let at = RowAt { row: &row, now_ns: 0, workload: Some(w) };
        [f("unit = ssh.service"), f("container = web"), f("container ~ abab"), f("cgroup ~ system.slice")]
            .map(|f| f.matches(&at))
    };
    assert_eq!(at(&ssh), [true, false, false, true]);
    assert_eq!(at(&web), [false, true, true, true]);
}

#[test]
fn rhost_matches_the_name_from_dns() {
    let f = |e: &str| Filter { expr: parse(e).unwrap(), ..Filter::default() };
    let mut e = ev(10, "127.0.0.1:40000", "127.0.0.77:443");
    let named = |e: &Event| [f("rhost = web.test"), f("rhost ~ web"), f("rhost != web.test")].map(|f| f.matches(e));
    // Not named: no value equals or contains anything (as an unknown unit).
    assert_eq!(named(&e), [false, false, true]);
    e.rhost = Some("web.test".into());
    assert_eq!(named(&e), [true, true, false]);
}
