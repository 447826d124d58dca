//! The kernel's own listen-drop figures, read with the standard tools
//! inside a namespace: `ss -tlm` (a listener's `sk_drops`, printed `d<N>`
//! in `skmem:(...)`), TcpExt ListenDrops (`/proc/net/netstat`), and a
//! flood that makes them rise by an exact number.

use std::net::{SocketAddr, TcpListener};
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
