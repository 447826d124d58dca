//! The kernel's own listen-drop figures, read with the standard tools
//! inside a namespace: `ss -tlm` (a listener's `sk_drops`, printed `d<N>`
//! in `skmem:(...)`), TcpExt ListenDrops (`/proc/net/netstat`), and a
//! flood that makes them rise by an exact number.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

fn in_ns(ns: &str, program: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} in {ns}: {e}"));
    assert!(out.status.success(), "{program} {args:?} in {ns}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `d<N>` of the listener on `port` in `ss -tlmn`, run in `ns`.
pub fn ss_listener_drops(ns: &str, port: u16) -> u64 {
    let text = in_ns(ns, "ss", &["-tlmnH"]);
    // ss puts `skmem:(...)` on the socket's line or on the next one.
    let needle = format!(":{port} ");
    let at = text.find(&needle).unwrap_or_else(|| panic!("no listener on port {port} in ss -tlm:\n{text}"));
    let skmem = &text[at..];
    let skmem = &skmem[skmem.find("skmem:(").unwrap_or_else(|| panic!("no skmem in ss -tlm:\n{text}"))..];
    let fields = &skmem["skmem:(".len()..skmem.find(')').expect("skmem closes")];
    fields
        .split(',')
        .find_map(|f| f.strip_prefix('d'))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no d<N> in skmem:({fields})"))
}

/// TcpExt ListenDrops of `ns`.
pub fn tcpext_listen_drops(ns: &str) -> u64 {
    let text = in_ns(ns, "cat", &["/proc/net/netstat"]);
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().expect("TcpExt names"), lines.next().expect("TcpExt values"));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ListenDrops")
        .and_then(|(_, v)| v.parse().ok())
        .expect("ListenDrops in TcpExt")
}

/// A listener on 127.0.0.1 (of the calling thread's namespace) with
/// backlog 0: its accept queue holds one connection and is never emptied.
pub fn full_listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    // SAFETY: listen() again on a valid listening descriptor sets the backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    l
}

/// Non-blocking connects to `to`: the first fills the accept queue, the
/// SYN of every other one is dropped there (`tcp_listendrop`). The clients
/// are closed before their first SYN retransmit (1 s), so the listener
/// drops exactly `n - 1` SYNs. Returns the one that got in.
pub fn flood(to: SocketAddr, n: usize) -> OwnedFd {
    let SocketAddr::V4(to) = to else { panic!("IPv4 only") };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*to.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let connect = || {
        // SAFETY: plain socket calls on a descriptor owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `sin` is a valid sockaddr_in for its size.
        let rc = unsafe {
            libc::connect(fd.as_raw_fd(), std::ptr::from_ref(&sin).cast(), size_of::<libc::sockaddr_in>() as u32)
        };
        let err = std::io::Error::last_os_error();
        assert!(rc == 0 || err.raw_os_error() == Some(libc::EINPROGRESS), "connect: {err}");
        fd
    };
    let first = connect();
    // Let its handshake complete (loopback: well under this).
    std::thread::sleep(Duration::from_millis(100));
    let rest: Vec<OwnedFd> = (1..n).map(|_| connect()).collect();
    // The SYNs go out inside connect(); their drop is synchronous on
    // loopback. Close well before the 1 s retransmit.
    std::thread::sleep(Duration::from_millis(200));
    drop(rest);
    first
}

/// Runs `nft` with `script` (in the calling thread's namespace).
pub fn nft(script: &str) -> String {
    let out = Command::new("nft").arg(script).output().unwrap_or_else(|e| panic!("running nft {script:?}: {e}"));
    assert!(out.status.success(), "nft {script:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `counter packets N` in an `nft list` text.
pub fn nft_counted(listing: &str) -> u64 {
    let after = listing.split("counter packets ").nth(1).unwrap_or_else(|| panic!("no counter in:\n{listing}"));
    after.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("bad counter in:\n{listing}"))
}

/// A UDP socket that lost packets for two reasons, still open, with its
/// peer: `a` sent two datagrams to `b` and a netfilter rule dropped the
/// first (`NETFILTER_DROP`, on its way out); then `b` sent `a` more than
/// `a`'s smallest receive buffer holds, unread (`SOCKET_RCVBUFF`, on its
/// way in). `rcvbuf` is how many of those `a` lost, from what it then
/// read, and checked against the kernel's own count (`/proc/net/udp`).
pub struct TwoReasons {
    pub a: UdpSocket,
    pub b: UdpSocket,
    pub rcvbuf: u64,
}

/// Datagrams `b` sends `a` (1000 bytes each); a couple fit the buffer.
const FLOOD: u64 = 20;

impl TwoReasons {
    pub fn new() -> Self {
        let bind = || UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (a, b) = (bind(), bind());
        let (a_at, b_at) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
        a.connect(b_at).expect("connect");
        b.connect(a_at).expect("connect");
        // A first datagram that arrives: its counting makes `a`'s socket
        // cookie, which a drop's program cannot make, so a UDP socket's
        // drops count from its first packet on.
        a.send(b"zero").expect("send");
        b.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 1000];
        let n = b.recv(&mut buf).expect("the first datagram");
        assert_eq!(&buf[..n], b"zero");
        let one: libc::c_int = 1;
        // SAFETY: a valid socket, an int option of the size given; the
        // kernel raises it to its minimum (about 2.3 KB).
        let r = unsafe {
            libc::setsockopt(
                a.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        nft(&format!(
            "add table inet nw_drops; add chain inet nw_drops out {{ type filter hook output priority 0; }}; \
             add rule inet nw_drops out udp dport {} limit rate 1/minute burst 1 packets counter drop",
            b_at.port()
        ));
        // The first is dropped (netfilter's verdict makes send() fail
        // with EPERM), the second arrives.
        let _ = a.send(b"one");
        a.send(b"two").expect("send");
        let n = b.recv(&mut buf).expect("the second datagram");
        assert_eq!(&buf[..n], b"two");
        let dropped = nft_counted(&nft("list table inet nw_drops"));
        nft("delete table inet nw_drops");
        assert_eq!(dropped, 1, "the rule dropped one datagram");
        for i in 0..FLOOD {
            b.send(&[i as u8; 1000]).expect("send to a");
        }
        // Loopback delivers in the sender's softirq; what arrived is queued.
        std::thread::sleep(Duration::from_millis(100));
        a.set_nonblocking(true).expect("nonblocking");
        let mut got = 0;
        while a.recv(&mut buf).is_ok() {
            got += 1;
        }
        a.set_nonblocking(false).expect("blocking");
        let rcvbuf = FLOOD - got;
        assert!(rcvbuf > 0 && got > 0, "{got} of {FLOOD} datagrams fit a's receive buffer");
        assert_eq!(udp_drops(a_at.port()), rcvbuf, "the kernel's count for a");
        Self { a, b, rcvbuf }
    }

    /// `a`'s local port.
    pub fn port(&self) -> u16 {
        self.a.local_addr().expect("addr").port()
    }
}

impl Default for TwoReasons {
    fn default() -> Self {
        Self::new()
    }
}

/// The `drops` column of the 127.0.0.1 socket on `port` in the calling
/// thread's namespace's `/proc/net/udp` (`sk_drops`).
fn udp_drops(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/udp").expect("/proc/thread-self/net/udp");
    let local = format!("0100007F:{port:04X}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .unwrap_or_else(|| panic!("no {local} in /proc/net/udp:\n{text}"));
    line.split_whitespace().last().and_then(|d| d.parse().ok()).expect("drops column")
}

/// What netwatch's stderr note says where [`reasons_traced`] is false.
pub const NOT_COUNTED_NOTE: &str = "packet drops are not counted";

/// Whether the running kernel's `skb:kfree_skb` has a drop reason (Linux
/// 5.17): before, netwatch counts no drops per connection and says so once
/// ([`NOT_COUNTED_NOTE`]).
/// By version, an oracle apart from netwatch's own trial load.
pub fn reasons_traced() -> bool {
    kernel_at_least(5, 17)
}

/// Whether the running kernel's `skb:kfree_skb` names the receiving socket
/// (`rx_sk`, Linux 6.11): only then are drops on arrival before the socket
/// took the packet (`SOCKET_RCVBUFF`) counted on it.
pub fn rx_sk_named() -> bool {
    kernel_at_least(6, 11)
}

fn kernel_at_least(want_major: u32, want_minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (want_major, want_minor)
}
