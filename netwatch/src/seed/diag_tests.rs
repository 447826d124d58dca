use std::{
    fs,
    io::ErrorKind,
    net::{TcpListener, TcpStream, UdpSocket},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
};

use netwatch_common::tcp;

use super::*;
use crate::socket::TcpState;

/// One netlink message: header plus payload, padded to 4 bytes.
fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + payload.len();
    let mut m = Vec::new();
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(len.next_multiple_of(4), 0);
    m
}

/// An inet_diag_msg for [::1]:8083 <- [::1]:48396, ESTABLISHED, plus an
/// attribute the parser must skip.
fn diag_msg_v6() -> Vec<u8> {
    let mut p = vec![0u8; MSG_LEN];
    p[0] = libc::AF_INET6 as u8;
    p[1] = tcp::ESTABLISHED;
    p[2] = 1;
    p[3] = 2;
    p[4..6].copy_from_slice(&8083u16.to_be_bytes());
    p[6..8].copy_from_slice(&48396u16.to_be_bytes());
    p[23] = 1;
    p[39] = 1;
    // Cookie (two words), expiry, rqueue, wqueue, uid, inode.
    let words = [0x1122_3344u32, 0x5566_7788, 200, 5, 7, 1000, 2776072];
    for (at, w) in (44..).step_by(4).zip(words) {
        p[at..at + 4].copy_from_slice(&w.to_ne_bytes());
    }
    p.extend_from_slice(&[5, 0, 8, 0, 1, 0, 0, 0]);
    p
}

fn parse(buf: &[u8], seq: u32) -> (io::Result<bool>, Vec<SeedSocket>, DumpInfo) {
    let (mut out, mut info) = (Vec::new(), DumpInfo::default());
    let r = parse_datagram(buf, SOCK_DIAG_BY_FAMILY, seq, Proto::Tcp, 7, &mut out, &mut info);
    (r, out, info)
}

#[test]
fn parses_messages_until_done() {
    let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 9, &diag_msg_v6());
    buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 2, 8, &diag_msg_v6())); // stale seq
    buf.extend(nlmsg(libc::NLMSG_DONE as u16, 2, 9, &0i32.to_ne_bytes()));
    let (r, out, info) = parse(&buf, 9);
    assert!(r.unwrap());
    assert_eq!(info, DumpInfo { sockets: 1, interrupted: false });
    let s = &out[0];
    assert_eq!(s.local, "[::1]:8083".parse().unwrap());
    assert_eq!(s.remote, "[::1]:48396".parse().unwrap());
    assert_eq!((s.family, s.state, s.inode, s.uid, s.netns), (Family::V6, TcpState::Established, 2776072, 1000, 7));
    assert_eq!(s.cookie, Some(0x5566_7788_1122_3344));
    assert_eq!((s.rx_queue, s.tx_queue), (5, 7));
    let timer = s.timer.unwrap();
    assert_eq!((timer.kind, timer.expires, timer.retransmits), (TimerKind::Retransmit, Duration::from_millis(200), 2));
}

#[test]
fn listener_send_queue_follows_netstat() {
    let mut msg = diag_msg_v6();
    msg[1] = tcp::LISTEN;
    let (_, out, _) = parse(&nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &msg), 1);
    assert_eq!((out[0].rx_queue, out[0].tx_queue), (5, 0));
}

#[test]
fn not_done_yet_and_interrupted() {
    let (r, out, info) = parse(&nlmsg(SOCK_DIAG_BY_FAMILY, 2 | 0x10, 3, &diag_msg_v6()), 3);
    assert!(!r.unwrap());
    assert_eq!((out.len(), info.interrupted), (1, true));
}

#[test]
fn kernel_errors_become_io_errors() {
    let err = nlmsg(libc::NLMSG_ERROR as u16, 0, 4, &(-libc::ENOENT).to_ne_bytes());
    assert_eq!(parse(&err, 4).0.unwrap_err().kind(), ErrorKind::NotFound);
    let done = nlmsg(libc::NLMSG_DONE as u16, 0, 4, &(-libc::EINTR).to_ne_bytes());
    assert_eq!(parse(&done, 4).0.unwrap_err().raw_os_error(), Some(libc::EINTR));
}

#[test]
fn malformed_datagrams_are_errors() {
    let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &diag_msg_v6());
    buf[0..4].copy_from_slice(&9999u32.to_ne_bytes());
    assert_eq!(parse(&buf, 1).0.unwrap_err().kind(), ErrorKind::InvalidData);
    let short = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &[0u8; 20]);
    assert_eq!(parse(&short, 1).0.unwrap_err().kind(), ErrorKind::InvalidData);
    let mut msg = diag_msg_v6();
    msg[0] = 1; // AF_UNIX
    assert_eq!(parse(&nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &msg), 1).0.unwrap_err().kind(), ErrorKind::InvalidData);
}

fn cookie_of(fd: &impl AsRawFd) -> u64 {
    let mut cookie = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_COOKIE, (&raw mut cookie).cast(), &mut len)
    };
    assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    cookie
}

fn inode_of(fd: &impl AsRawFd) -> u64 {
    fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().ino()
}

/// sock_diag needs no privileges for dumps of one's own netns.
#[test]
fn dumps_our_own_sockets() {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let diag = DiagSocket::open().unwrap();
    let mut out = Vec::new();
    diag.dump(Proto::Tcp, Family::V6, 1, &mut out).unwrap();
    let find = |fd: &dyn AsRawFd, out: &[SeedSocket]| {
        out.iter().find(|s| s.cookie == Some(cookie_of(&fd.as_raw_fd()))).cloned()
    };
    let l = find(&listener, &out).expect("listener in dump");
    assert_eq!((l.state, l.local, l.inode), (TcpState::Listen, listener.local_addr().unwrap(), inode_of(&listener)));
    let c = find(&client, &out).expect("client in dump");
    assert_eq!(
        (c.state, c.remote, c.inode),
        (TcpState::Established, listener.local_addr().unwrap(), inode_of(&client))
    );

    match diag.dump(Proto::Udp, Family::V4, 1, &mut out) {
        Ok(_) => {
            let u = find(&udp, &out).expect("udp socket in dump");
            assert_eq!((u.proto, u.state, u.local), (Proto::Udp, TcpState::Close, udp.local_addr().unwrap()));
        }
        // No udp_diag module on this kernel: seeding falls back to /proc.
        Err(e) => eprintln!("udp sock_diag unavailable: {e}"),
    }
}

/// Every single-byte corruption and truncation of a datagram parses or
/// fails cleanly.
#[test]
fn corrupted_datagrams_never_panic() {
    let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &diag_msg_v6());
    buf.extend(nlmsg(libc::NLMSG_DONE as u16, 2, 1, &0i32.to_ne_bytes()));
    for i in 0..buf.len() {
        for b in [0u8, 1, 3, 0x7f, 0xff] {
            let mut d = buf.clone();
            d[i] = b;
            let _ = parse(&d, 1);
        }
        let _ = parse(&buf[..i], 1);
    }
}

#[test]
fn the_compat_request_asks_for_any_family() {
    let req = compat_request(1 << tcp::LISTEN, 0, 5);
    assert_eq!(req.len(), 76);
    assert_eq!(u32_at(&req, 0), 76);
    assert_eq!(u16::from_ne_bytes([req[4], req[5]]), TCPDIAG_GETSOCK);
    assert_eq!(u32_at(&req, 8), 5);
    assert_eq!(req[16], 0, "family AF_UNSPEC");
    assert_eq!(u32_at(&req, 68), 1 << tcp::LISTEN);
    assert!(req[17..68].iter().chain(&req[72..]).all(|&b| b == 0), "no prefix, extension or socket id");
}

#[test]
fn replies_of_another_type_are_not_sockets() {
    let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 9, &diag_msg_v6());
    buf.extend(nlmsg(TCPDIAG_GETSOCK, 2, 9, &diag_msg_v6()));
    buf.extend(nlmsg(libc::NLMSG_DONE as u16, 2, 9, &0i32.to_ne_bytes()));
    let (mut out, mut info) = (Vec::new(), DumpInfo::default());
    assert!(parse_datagram(&buf, TCPDIAG_GETSOCK, 9, Proto::Tcp, 7, &mut out, &mut info).unwrap());
    assert_eq!(info.sockets, 1);
}

/// One compat dump returns what the two per-family dumps return together.
#[test]
fn one_tcp_dump_holds_both_families() {
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let c4 = TcpStream::connect(l4.local_addr().unwrap()).unwrap();
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let c6 = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
    let ours: Vec<u64> = [cookie_of(&l4), cookie_of(&c4), cookie_of(&l6), cookie_of(&c6)].into();
    let diag = DiagSocket::open().unwrap();
    let mut both = Vec::new();
    let info = diag.dump_tcp(ALL_STATES, 1, &mut both).unwrap();
    assert_eq!(info.sockets, both.len());
    let mut apart = Vec::new();
    diag.dump(Proto::Tcp, Family::V4, 1, &mut apart).unwrap();
    diag.dump(Proto::Tcp, Family::V6, 1, &mut apart).unwrap();
    let pick = |v: &[SeedSocket]| {
        let mut found: Vec<SeedSocket> =
            v.iter().filter(|s| s.cookie.is_some_and(|c| ours.contains(&c))).cloned().collect();
        found.sort_by_key(|s| s.cookie);
        found
    };
    let (both, apart) = (pick(&both), pick(&apart));
    assert_eq!(both.len(), 4, "{both:?}");
    assert_eq!(both, apart);
    let families: Vec<Family> =
        ours.iter().map(|c| both.iter().find(|s| s.cookie == Some(*c)).unwrap().family).collect();
    assert_eq!(families, [Family::V4, Family::V4, Family::V6, Family::V6]);
}

#[test]
fn requests_carry_the_extensions_asked_for() {
    let ext = DiagSocket::open().unwrap().with_figures().ext;
    assert_eq!(ext, 0x42, "INET_DIAG_INFO and INET_DIAG_SKMEMINFO");
    assert_eq!(request(Proto::Tcp, Family::V4, 2, ext, 1)[18], 0x42);
    assert_eq!(compat_request(2, ext, 1)[NLMSG_HDRLEN + 3], 0x42);
}

fn rtattr(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(data);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

#[test]
fn figures_come_from_tcp_info_and_meminfo() {
    let mut info = vec![0u8; 232];
    info[TCPI_RTT..TCPI_RTT + 4].copy_from_slice(&1234u32.to_ne_bytes());
    info[TCPI_RTTVAR..TCPI_RTTVAR + 4].copy_from_slice(&617u32.to_ne_bytes());
    info[TCPI_TOTAL_RETRANS..TCPI_TOTAL_RETRANS + 4].copy_from_slice(&3u32.to_ne_bytes());
    let mut mem = vec![0u8; 9 * 4];
    mem[SK_MEMINFO_DROPS..].copy_from_slice(&42u32.to_ne_bytes());
    let mut msg = diag_msg_v6();
    msg.extend(rtattr(INET_DIAG_SKMEMINFO, &mem));
    msg.extend(rtattr(INET_DIAG_INFO, &info));
    let s = parse_msg(&msg, Proto::Tcp, 7).unwrap();
    let rtt = Rtt { srtt_us: 1234, rttvar_us: 617, total_retrans: 3 };
    assert_eq!(s.figures, Some(Figures { drops: Some(42), rtt: Some(rtt) }));
    // Not asked for (only the unknown attribute of the fixture), or cut short.
    assert_eq!(parse_msg(&diag_msg_v6(), Proto::Tcp, 7).unwrap().figures, None);
    let mut short = diag_msg_v6();
    short.extend(rtattr(INET_DIAG_SKMEMINFO, &mem[..8 * 4]));
    assert_eq!(parse_msg(&short, Proto::Tcp, 7).unwrap().figures, None);
}

/// A listener with backlog 0 holds one connection; the SYN of the next is
/// dropped (`tcp_listendrop`) and shows in the listener's own counter. The
/// established pair has a smoothed RTT once its handshake gave a sample.
#[test]
fn dumps_with_figures_say_listener_drops_and_rtt() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: a valid listening descriptor; listen() again sets the backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let first = TcpStream::connect(addr).unwrap();
    // The second connect waits for a SYN retransmit (1 s): let it run.
    let second = std::thread::spawn(move || TcpStream::connect_timeout(&addr, Duration::from_secs(3)));
    let diag = DiagSocket::open().unwrap().with_figures();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let drops = loop {
        let mut out = Vec::new();
        diag.dump_tcp(ALL_STATES, 1, &mut out).unwrap();
        let l = out.iter().find(|s| s.cookie == Some(cookie_of(&listener))).expect("listener in dump");
        let drops = l.figures.and_then(|f| f.drops).unwrap_or_else(|| panic!("drops asked for: {l:?}"));
        if drops > 0 || std::time::Instant::now() > deadline {
            let c = out.iter().find(|s| s.cookie == Some(cookie_of(&first))).expect("client in dump");
            let rtt = c.figures.and_then(|f| f.rtt).expect("tcp_info asked for");
            assert!(rtt.srtt_us > 0, "{rtt:?}");
            break drops;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(drops >= 1, "no SYN dropped at a full accept queue");
    drop(listener);
    let _ = second.join();
}
