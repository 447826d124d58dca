//! sock_diag netlink dumps: `NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY`
//! with `struct inet_diag_req_v2` (include/uapi/linux/inet_diag.h), one
//! dump per (protocol, family), as `ss` does; and for TCP the older
//! `TCPDIAG_GETSOCK` request, which returns both families in one dump
//! ([`DiagSocket::dump_tcp`]). Hand-rolled on libc: three fixed-layout
//! structs do not justify a netlink crate.
//!
//! A netlink socket stays in the network namespace it was created in, so
//! a socket opened by a thread that did `setns` dumps that namespace.
//!
//! Field meanings (net/ipv4/inet_diag.c `inet_sk_diag_fill`,
//! `inet_twsk_diag_fill`, `inet_req_diag_fill`; tcp_diag.c, udp_diag.c)
//! match the /proc/net columns, with expiry in ms instead of USER_HZ ticks,
//! and for listeners the maximum backlog in place of the send queue.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use super::{Family, Proto, SeedSocket, TcpState, Timer, TimerKind};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The original inet_diag request, still served: the kernel runs it as a
/// dump with family `AF_UNSPEC` (inet_diag.c `inet_diag_dump_compat`), so
/// one walk of the TCP hash tables returns IPv4 and IPv6 sockets. A dump
/// per family walks every bucket and every socket twice: with 40,000 IPv4
/// sockets the IPv6 dump alone took 20-25 ms of kernel time to return
/// nothing. Replies carry this type instead of `SOCK_DIAG_BY_FAMILY`.
const TCPDIAG_GETSOCK: u16 = 18;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_req`: family, two prefix lengths, ext, the 48-byte
/// `inet_diag_sockid`, states, dbs.
const COMPAT_REQ_LEN: usize = 60;
/// `struct inet_diag_msg`.
const MSG_LEN: usize = 72;
/// Every state from ESTABLISHED (bit 1) to NEW_SYN_RECV (bit 12). Leaves
/// out BOUND_INACTIVE (bit 13, bound but neither listening nor connected),
/// which /proc/net/tcp and netstat do not show either.
pub const ALL_STATES: u32 = 0x1ffe;
/// The kernel sends at most ~32 KiB per datagram (netlink_recvmsg caps
/// max_recvmsg_len there); a bigger buffer costs nothing.
const RECV_BUF: usize = 64 * 1024;

/// A `NETLINK_SOCK_DIAG` socket, bound to the netns it was opened in.
#[derive(Debug)]
pub struct DiagSocket {
    fd: OwnedFd,
    seq: AtomicU32,
    /// `idiag_ext`: the attributes asked for after each full socket's
    /// `inet_diag_msg` (0: none, the cheapest dump).
    ext: u8,
}

/// `INET_DIAG_INFO`: `struct tcp_info` (include/uapi/linux/tcp.h).
const INET_DIAG_INFO: u16 = 2;
/// `INET_DIAG_SKMEMINFO`: `u32 [SK_MEMINFO_VARS]` (include/uapi/linux/sock_diag.h).
const INET_DIAG_SKMEMINFO: u16 = 7;
/// `tcp_info.tcpi_rtt`, `tcpi_rttvar` (µs), `tcpi_total_retrans`.
const TCPI_RTT: usize = 68;
const TCPI_RTTVAR: usize = 72;
const TCPI_TOTAL_RETRANS: usize = 100;
/// `SK_MEMINFO_DROPS`, the ninth `u32` (since Linux 4.6): `sk->sk_drops`.
const SK_MEMINFO_DROPS: usize = 8 * 4;

/// What the kernel says of a full socket beyond `inet_diag_msg`, read when
/// the dump asked for it ([`DiagSocket::with_figures`]). Request and
/// TIME_WAIT minisockets carry none (inet_req_diag_fill and
/// inet_twsk_diag_fill ignore `idiag_ext`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// `sk->sk_drops` (ss -m `d`). On a listener, `tcp_listendrop` adds
    /// one for every SYN or handshake it dropped (accept queue full, no
    /// memory for the request socket, a failed child): the per-listener
    /// share of TcpExt ListenDrops. On other sockets, packets dropped at
    /// receive (full receive buffer, socket filter).
    pub drops: Option<u32>,
    /// From `tcp_info` (TCP only; `ss -ti` `rtt:SRTT/RTTVAR` in ms): the
    /// smoothed RTT and its mean deviation in µs (0 before any sample,
    /// and on listeners) and segments retransmitted over the connection.
    pub rtt: Option<Rtt>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub total_retrans: u32,
}

/// What a dump said about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpInfo {
    pub sockets: usize,
    /// The kernel flagged the dump as possibly inconsistent
    /// (`NLM_F_DUMP_INTR`: the tables changed under it).
    pub interrupted: bool,
}

impl DiagSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, seq: AtomicU32::new(1), ext: 0 })
    }

    /// Asks for `tcp_info` and the memory counters with every full socket
    /// ([`SeedSocket::figures`]): about 300 more bytes per socket to copy,
    /// so only for the dumps that print them.
    #[must_use]
    pub fn with_figures(mut self) -> Self {
        self.ext = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
        self
    }

    /// Appends every socket of `proto`/`family` to `out`, labelled `netns`.
    pub fn dump(&self, proto: Proto, family: Family, netns: u32, out: &mut Vec<SeedSocket>) -> io::Result<DumpInfo> {
        self.dump_states(proto, family, ALL_STATES, netns, out)
    }

    /// Like [`Self::dump`], for the sockets whose state bit (`1 << state`)
    /// is set in `states`: the kernel filters, so a dump of a few states
    /// costs little even beside thousands of other sockets.
    pub fn dump_states(
        &self,
        proto: Proto,
        family: Family,
        states: u32,
        netns: u32,
        out: &mut Vec<SeedSocket>,
    ) -> io::Result<DumpInfo> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.send(&request(proto, family, states, self.ext, seq))?;
        self.receive(SOCK_DIAG_BY_FAMILY, seq, proto, netns, out)
    }

    /// [`Self::dump_states`] of TCP, IPv4 then IPv6.
    pub fn dump_tcp_each(&self, states: u32, netns: u32, out: &mut Vec<SeedSocket>) -> io::Result<()> {
        for family in [Family::V4, Family::V6] {
            self.dump_states(Proto::Tcp, family, states, netns, out)?;
        }
        Ok(())
    }

    /// Every TCP socket whose state bit is set in `states`, IPv4 and IPv6,
    /// in one dump (see [`TCPDIAG_GETSOCK`]), in the kernel's order:
    /// listeners, then the established table. An error (a kernel without
    /// the old request) leaves `out` as it was; [`Self::dump_states`] per
    /// family gives the same sockets.
    pub fn dump_tcp(&self, states: u32, netns: u32, out: &mut Vec<SeedSocket>) -> io::Result<DumpInfo> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let start = out.len();
        let dumped = self
            .send(&compat_request(states, self.ext, seq))
            .and_then(|()| self.receive(TCPDIAG_GETSOCK, seq, Proto::Tcp, netns, out));
        if dumped.is_err() {
            out.truncate(start);
        }
        dumped
    }

    /// [`Self::dump_tcp`] where the kernel offers it (one walk of the TCP
    /// tables for both families), else [`Self::dump_tcp_each`].
    pub fn dump_tcp_any(&self, states: u32, netns: u32, out: &mut Vec<SeedSocket>) -> io::Result<()> {
        self.dump_tcp(states, netns, out).map(drop).or_else(|_| self.dump_tcp_each(states, netns, out))
    }

    /// Reads the replies to request `seq`, messages of type `ty`.
    fn receive(&self, ty: u16, seq: u32, proto: Proto, netns: u32, out: &mut Vec<SeedSocket>) -> io::Result<DumpInfo> {
        let mut buf = vec![0u8; RECV_BUF];
        let mut info = DumpInfo::default();
        loop {
            let n = self.recv(&mut buf)?;
            if parse_datagram(&buf[..n], ty, seq, proto, netns, out, &mut info)? {
                return Ok(info);
            }
        }
    }

    fn send(&self, req: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero is a valid sockaddr_nl; nl_pid 0 is the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `req` and `kernel` are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                std::ptr::from_ref(&kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is writable for its length. MSG_TRUNC makes the
            // kernel return the real datagram length, so a cut one shows.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(invalid(format!("netlink datagram of {n} bytes exceeds the {} byte buffer", buf.len())));
            }
            if n == 0 {
                return Err(invalid("netlink socket closed mid-dump".into()));
            }
            return Ok(n);
        }
    }
}

fn request(proto: Proto, family: Family, states: u32, ext: u8, seq: u32) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut req = [0u8; NLMSG_HDRLEN + REQ_LEN];
    req[0..4].copy_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    req[16] = match family {
        Family::V4 => libc::AF_INET as u8,
        Family::V6 => libc::AF_INET6 as u8,
    };
    req[17] = match proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    };
    req[18] = ext;
    req[20..24].copy_from_slice(&states.to_ne_bytes());
    req
}

fn compat_request(states: u32, ext: u8, seq: u32) -> [u8; NLMSG_HDRLEN + COMPAT_REQ_LEN] {
    let mut req = [0u8; NLMSG_HDRLEN + COMPAT_REQ_LEN];
    req[0..4].copy_from_slice(&((NLMSG_HDRLEN + COMPAT_REQ_LEN) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // Family, prefix lengths and the socket id stay zero: any.
    req[NLMSG_HDRLEN + 3] = ext;
    let states_at = NLMSG_HDRLEN + 4 + 48;
    req[states_at..states_at + 4].copy_from_slice(&states.to_ne_bytes());
    req
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walks the netlink messages of one datagram, taking sockets from those
/// of type `socket_ty`; `Ok(true)` at `NLMSG_DONE`.
fn parse_datagram(
    mut buf: &[u8],
    socket_ty: u16,
    seq: u32,
    proto: Proto,
    netns: u32,
    out: &mut Vec<SeedSocket>,
    info: &mut DumpInfo,
) -> io::Result<bool> {
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(invalid(format!("netlink message length {len} with {} bytes left", buf.len())));
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let flags = u16::from_ne_bytes([buf[6], buf[7]]);
        let msg_seq = u32_at(buf, 8);
        let payload = &buf[NLMSG_HDRLEN..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        if msg_seq != seq {
            // Left over from an earlier dump that was abandoned on error.
            continue;
        }
        if flags & libc::NLM_F_DUMP_INTR as u16 != 0 {
            info.interrupted = true;
        }
        match i32::from(ty) {
            libc::NLMSG_DONE => {
                // A dump that failed part-way reports the error here.
                return match errno_of(payload) {
                    Some(err) if err < 0 => Err(io::Error::from_raw_os_error(-err)),
                    _ => Ok(true),
                };
            }
            libc::NLMSG_ERROR => match errno_of(payload) {
                Some(0) => {}
                Some(err) => return Err(io::Error::from_raw_os_error(-err)),
                None => return Err(invalid("short NLMSG_ERROR".into())),
            },
            _ if ty == socket_ty => {
                out.push(parse_msg(payload, proto, netns)?);
                info.sockets += 1;
            }
            _ => {}
        }
    }
    Ok(false)
}

/// The `int error` leading an `NLMSG_ERROR` or `NLMSG_DONE` payload.
fn errno_of(payload: &[u8]) -> Option<i32> {
    payload.get(0..4).map(|e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
}

/// One `struct inet_diag_msg`, and the [`Figures`] among the attributes
/// after it.
fn parse_msg(p: &[u8], proto: Proto, netns: u32) -> io::Result<SeedSocket> {
    if p.len() < MSG_LEN {
        return Err(invalid(format!("inet_diag_msg of {} bytes, expected {MSG_LEN}", p.len())));
    }
    let (family, src, dst) = match i32::from(p[0]) {
        libc::AF_INET => {
            let v4 = |at: usize| IpAddr::V4(Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]));
            (Family::V4, v4(8), v4(24))
        }
        libc::AF_INET6 => {
            let v6 = |at: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&p[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            (Family::V6, v6(8), v6(24))
        }
        other => return Err(invalid(format!("inet_diag_msg of address family {other}"))),
    };
    // Only the states the request's mask named come back, all known ones.
    let state = TcpState::from_u8(p[1]).ok_or_else(|| invalid(format!("unknown socket state {}", p[1])))?;
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let cookie = u64::from(u32_at(p, 44)) | (u64::from(u32_at(p, 48)) << 32);
    let timer = TimerKind::from_code(p[2]).map(|kind| Timer {
        kind,
        expires: Duration::from_millis(u64::from(u32_at(p, 52))),
        retransmits: u32::from(p[3]),
    });
    let wqueue = u32_at(p, 60);
    Ok(SeedSocket {
        proto,
        family,
        local: SocketAddr::new(src, sport),
        remote: SocketAddr::new(dst, dport),
        state,
        inode: u64::from(u32_at(p, 68)),
        uid: u32_at(p, 64),
        cookie: Some(cookie),
        netns,
        owners: Vec::new(),
        timer,
        rx_queue: u32_at(p, 56),
        // netstat semantics (see `SeedSocket::tx_queue`).
        tx_queue: if proto == Proto::Tcp && state == TcpState::Listen { 0 } else { wqueue },
        figures: figures(&p[MSG_LEN..]),
    })
}

/// The `rtattr`s after an `inet_diag_msg`; `None` when none of ours is
/// there (not asked for, or a minisocket). A short or unknown attribute is
/// skipped, not an error: a figure is never worth failing a dump.
fn figures(mut attrs: &[u8]) -> Option<Figures> {
    let mut f = Figures::default();
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        let data = &attrs[4..len];
        match ty {
            INET_DIAG_SKMEMINFO if data.len() >= SK_MEMINFO_DROPS + 4 => f.drops = Some(u32_at(data, SK_MEMINFO_DROPS)),
            INET_DIAG_INFO if data.len() >= TCPI_TOTAL_RETRANS + 4 => {
                f.rtt = Some(Rtt {
                    srtt_us: u32_at(data, TCPI_RTT),
                    rttvar_us: u32_at(data, TCPI_RTTVAR),
                    total_retrans: u32_at(data, TCPI_TOTAL_RETRANS),
                });
            }
            _ => {}
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    // `None` unless an attribute was read (each sets its field to `Some`).
    (f != Figures::default()).then_some(f)
}

#[cfg(test)]
#[path = "diag_tests.rs"]
mod tests;
