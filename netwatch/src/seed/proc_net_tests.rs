//! Fixtures captured from Linux 6.18 on x86_64 in a scratch netns (so only
//! little-endian hosts run these); `ss -tanpe` at capture time agreed with
//! every value asserted here.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use super::*;
use crate::socket::TcpState;

const NETNS: u32 = 4026532000;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
}

fn fixture(file: ProcNetFile) -> ProcNetTable {
    read_proc_net(&fixture_dir(), file, NETNS).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn find<'a>(t: &'a ProcNetTable, local: &str, remote: &str) -> &'a SeedSocket {
    let (l, r) = (addr(local), addr(remote));
    t.sockets.iter().find(|s| s.local == l && s.remote == r).unwrap_or_else(|| panic!("no row {local} -> {remote}"))
}

#[test]
fn tcp4_rows() {
    let t = fixture(ProcNetFile::Tcp);
    assert!(!t.truncated);
    assert_eq!(t.sockets.len(), 8);
    assert!(t.sockets.iter().all(|s| s.proto == Proto::Tcp
        && s.family == Family::V4
        && s.netns == NETNS
        && s.cookie.is_none()
        && s.owners.is_empty()));

    let any = find(&t, "0.0.0.0:8080", "0.0.0.0:0");
    assert_eq!((any.state, any.inode, any.uid), (TcpState::Listen, 2768895, 0));
    // One connection waits in the accept queue: Recv-Q 1, as ss showed.
    assert_eq!((any.rx_queue, any.tx_queue, any.timer), (1, 0, None));

    let lo = find(&t, "127.0.0.1:8081", "0.0.0.0:0");
    assert_eq!((lo.state, lo.inode), (TcpState::Listen, 2768896));

    let unread = find(&t, "127.0.0.1:8081", "127.0.0.1:43678");
    assert_eq!((unread.state, unread.inode, unread.rx_queue), (TcpState::Established, 2776070, 5));

    // Accepted by the kernel, not yet by the process: no inode yet.
    let queued = find(&t, "127.0.0.1:8080", "127.0.0.1:41696");
    assert_eq!((queued.state, queued.inode), (TcpState::Established, 0));
}

#[test]
fn tcp4_time_wait_and_syn_recv() {
    let t = fixture(ProcNetFile::Tcp);
    let tw = find(&t, "127.0.0.1:43680", "127.0.0.1:8081");
    assert_eq!((tw.state, tw.inode, tw.uid), (TcpState::TimeWait, 0, 0));
    let timer = tw.timer.unwrap();
    assert_eq!(timer.kind, TimerKind::TimeWait);
    assert_eq!(timer.expires, Duration::from_millis(0x175A * 10));

    let req = find(&t, "10.9.9.1:8080", "10.9.9.2:40000");
    assert_eq!((req.state, req.inode), (TcpState::SynRecv, 0));
    let timer = req.timer.unwrap();
    assert_eq!((timer.kind, timer.expires, timer.retransmits), (TimerKind::Retransmit, Duration::from_millis(780), 0));
}

#[test]
fn tcp6_byte_order() {
    let t = fixture(ProcNetFile::Tcp6);
    assert_eq!(t.sockets.len(), 9);
    assert!(t.sockets.iter().all(|s| s.family == Family::V6));

    assert_eq!(find(&t, "[::]:8082", "[::]:0").inode, 2776065);
    assert_eq!(find(&t, "[::1]:8083", "[::]:0").inode, 2776066);
    assert_eq!(find(&t, "[fe80::1]:8084", "[::]:0").inode, 2776068);
    let loopback = find(&t, "[::1]:48396", "[::1]:8083");
    assert_eq!((loopback.state, loopback.inode), (TcpState::Established, 2776071));
    assert_eq!(find(&t, "[fe80::1]:8084", "[fe80::1]:36592").inode, 2776076);

    // A v6 socket talking IPv4 keeps the mapped form.
    let mapped = find(&t, "[::ffff:127.0.0.1]:8082", "[::ffff:127.0.0.1]:39902");
    assert_eq!(mapped.inode, 2776074);
    let IpAddr::V6(ip) = mapped.local.ip() else { panic!("not v6") };
    assert_eq!(ip.to_ipv4_mapped(), Some([127, 0, 0, 1].into()));
}

#[test]
fn udp_rows() {
    let t = fixture(ProcNetFile::Udp);
    assert_eq!(t.sockets.len(), 2);
    let bound = find(&t, "0.0.0.0:5353", "0.0.0.0:0");
    assert_eq!((bound.proto, bound.state, bound.inode), (Proto::Udp, TcpState::Close, 2776081));
    assert_eq!((bound.rx_queue, bound.timer), (832, None));
    let connected = find(&t, "127.0.0.1:49639", "127.0.0.1:5353");
    assert_eq!((connected.state, connected.inode), (TcpState::Established, 2776082));

    let t = fixture(ProcNetFile::Udp6);
    assert_eq!(t.sockets.len(), 3);
    assert_eq!(find(&t, "[::]:5354", "[::]:0").state, TcpState::Close);
    assert_eq!(find(&t, "[::1]:52973", "[::1]:5354").inode, 2776084);
    assert_eq!(find(&t, "[::ffff:127.0.0.1]:52739", "[::ffff:127.0.0.1]:5353").inode, 2776085);
}

const HEADER: &str =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const GOOD: &str = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 42 1 0000000000000000 100 0 0 10 0\n";

fn parse4(rows: &str) -> Result<ProcNetTable> {
    parse_proc_net(ProcNetFile::Tcp, "/proc/net/tcp", &format!("{HEADER}{GOOD}{rows}"), NETNS)
}

fn error_of(rows: &str) -> String {
    format!("{:#}", parse4(rows).unwrap_err())
}

#[test]
fn good_row() {
    let t = parse4("").unwrap();
    assert_eq!(t.sockets[0].local, addr("127.0.0.1:8080"));
    assert_eq!((t.sockets[0].uid, t.sockets[0].inode), (1000, 42));
}

#[test]
fn malformed_rows_name_file_and_line() {
    let e = error_of("   1: 0100007F:1F90 00000000:0000\n");
    assert!(e.contains("/proc/net/tcp line 3") && e.contains("missing column st"), "{e}");
    let e = error_of("   1: 0100007G:1F90 00000000:0000 0A 0:0 00:0 0 0 0 7\n");
    assert!(e.contains("line 3") && e.contains("bad address"), "{e}");
    let e = error_of("   1: 0100007F:1F90 00000000:0000 0A 0:0 00:0 0 0 0 inode\n");
    assert!(e.contains("bad inode"), "{e}");
    let e = error_of("   1: 0100007F:+F90 00000000:0000 0A 0:0 00:0 0 0 0 7\n");
    assert!(e.contains("bad address"), "{e}");
    let e = error_of("   1: 0100007F:10000 00000000:0000 0A 0:0 00:0 0 0 0 7\n");
    assert!(e.contains("bad address"), "{e}");
    let e = error_of("   x: 0100007F:1F90 00000000:0000 0A 0:0 00:0 0 0 0 7\n");
    assert!(e.contains("bad slot"), "{e}");
    let e = error_of("   1: 0100007F:1F90 00000000:0000 0A 0:0 00 0 0 0 7\n");
    assert!(e.contains("bad timer"), "{e}");
}

#[test]
fn family_mismatch_is_an_error() {
    let v6 = "   1: 00000000000000000000000001000000:1F93 00000000000000000000000000000000:0000 0A 0:0 00:0 0 0 0 7\n";
    assert!(error_of(v6).contains("does not fit the file's family"));
    let text = format!("{HEADER}{GOOD}");
    let e = parse_proc_net(ProcNetFile::Tcp6, "tcp6", &text, 0).unwrap_err();
    assert!(format!("{e:#}").contains("tcp6 line 2"), "{e:#}");
}

#[test]
fn header_checks() {
    assert!(parse_proc_net(ProcNetFile::Udp, "udp", "", 0).is_err());
    assert!(parse_proc_net(ProcNetFile::Udp, "udp", GOOD, 0).is_err());
    assert!(parse_proc_net(ProcNetFile::Udp, "udp", HEADER, 0).unwrap().sockets.is_empty());
}

#[test]
fn truncated_last_line_is_dropped_and_flagged() {
    let cut = &GOOD[..40];
    let t = parse4(cut).unwrap();
    assert!(t.truncated);
    assert_eq!(t.sockets.len(), 1);
    // Cut inside the header: nothing to read, nothing wrong.
    let t = parse_proc_net(ProcNetFile::Tcp, "tcp", &HEADER[..10], 0).unwrap();
    assert!(t.truncated && t.sockets.is_empty());
}

#[test]
fn reads_this_machine() {
    for file in ProcNetFile::ALL {
        match read_proc_net(Path::new("/proc/net"), file, 0) {
            Ok(_) => {}
            // tcp6 and udp6 are missing when IPv6 is disabled.
            Err(e) if file.family() == Family::V6 && format!("{e:#}").contains("No such file") => {}
            Err(e) => panic!("{e:#}"),
        }
    }
}

/// Every single-character corruption of real rows parses or fails cleanly.
#[test]
fn corrupted_rows_never_panic() {
    let text = std::fs::read_to_string(fixture_dir().join("tcp6")).unwrap();
    let lines: Vec<&str> = text.lines().take(3).collect();
    let base = format!("{}\n", lines.join("\n"));
    for i in 0..base.len() {
        for c in ['0', 'F', 'é', ':', ' ', '\n', '-'] {
            let mut s = base.clone();
            if s.is_char_boundary(i) && s.is_char_boundary(i + 1) {
                s.replace_range(i..=i, &c.to_string());
                let _ = parse_proc_net(ProcNetFile::Tcp6, "tcp6", &s, 0);
            }
        }
        let _ = parse_proc_net(ProcNetFile::Tcp6, "tcp6", &base[..i], 0);
    }
}
