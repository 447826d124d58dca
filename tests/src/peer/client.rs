//! `nw-peer client` and `nw-peer refuse`: outgoing connections.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// `count` sequential connections: connect, write one byte, hold, close.
///
/// Just `close`, no `shutdown` first: a close after a shutdown makes the
/// kernel "move" FIN_WAIT1 to FIN_WAIT1 again, a transition tests would
/// then have to expect.
pub(super) fn run(to: SocketAddr, count: u64, hold_ms: u64) -> Result<Value> {
    let mut local_ports = Vec::new();
    for i in 0..count {
        let mut stream = TcpStream::connect(to).with_context(|| format!("connection {i}: connecting to {to}"))?;
        let local = stream.local_addr().context("getsockname after connect")?;
        local_ports.push(local.port());
        stream.write_all(b"x").context("writing one byte")?;
        sleep(Duration::from_millis(hold_ms));
        drop(stream);
    }
    Ok(json!({
        "pid": std::process::id(),
        "local_ports": local_ports,
        "connections": count,
    }))
}

/// One connect that must be refused (nothing listens at `to`). Made with
/// libc rather than std, whose failed connect drops the socket unnamed:
/// after the refusal `getsockname` still shows the local port the kernel
/// had chosen (the socket keeps it in `inet_sport`), and the caller checks
/// that `connect_failed` names it.
pub(super) fn refuse(to: SocketAddr) -> Result<Value> {
    let family = if to.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket creation; the fd is owned below.
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("socket()");
    }
    // SAFETY: a fresh fd nobody else owns; closed when dropped.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let (addr, len) = to_sockaddr(to);
    // SAFETY: addr holds a valid sockaddr of `len` bytes.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    if rc == 0 {
        bail!("connect to {to} succeeded; something listens there");
    }
    let err = std::io::Error::last_os_error();
    if err.kind() != ErrorKind::ConnectionRefused {
        return Err(err).with_context(|| format!("connect to {to} failed, but was not refused"));
    }
    // SAFETY: a zeroed sockaddr_storage is valid; getsockname writes at most `len`.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(size_of::<libc::sockaddr_storage>()).expect("small struct");
    // SAFETY: `name` is writable for `len` bytes, `len` passed by pointer as getsockname expects.
    if unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut name).cast(), &mut len) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getsockname after the refused connect");
    }
    // Both sockaddr_in and sockaddr_in6 keep the port, network order,
    // right after the 2-byte family.
    // SAFETY: sockaddr_storage is large and aligned enough for either.
    let port = u16::from_be(unsafe { (*(&raw const name).cast::<libc::sockaddr_in>()).sin_port });
    Ok(json!({ "pid": std::process::id(), "error": err.to_string(), "local_port": port }))
}

fn to_sockaddr(to: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; the right variant is
    // written over it.
    let mut out: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match to {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and aligned for it.
            unsafe { (&raw mut out).cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { (&raw mut out).cast::<libc::sockaddr_in6>().write(sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (out, libc::socklen_t::try_from(len).expect("small struct"))
}
