//! `nw-peer traffic-server` / `traffic-client`: move exact byte counts
//! between two processes, over TCP or UDP, so that netwatch's counters can
//! be checked against what the applications really wrote and read.
//!
//! UDP: datagrams of `--chunk` bytes from an unconnected socket (`sendto`);
//! the receiver's buffer is forced large (SO_RCVBUFFORCE) so that loopback
//! never drops a datagram for want of room, which would make the counts
//! differ for reasons that are not netwatch's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    Tcp,
    Udp,
}

/// How one side moves its bytes.
#[derive(Clone, Debug)]
pub struct Plan {
    pub send: u64,
    pub expect: u64,
    /// Write size (TCP) or datagram size (UDP).
    pub chunk: usize,
    /// Pause between writes (0: none).
    pub interval_ms: u64,
    /// How long to keep the socket open after the transfer.
    pub hold_ms: u64,
    /// Close with SO_LINGER 0: a reset instead of a FIN (TCP).
    pub reset: bool,
}

/// Gives up on a transfer that stalls this long.
const STALL: Duration = Duration::from_secs(30);

pub(super) fn server(proto: Proto, addr: SocketAddr, plan: &Plan) -> Result<()> {
    match proto {
        Proto::Tcp => tcp_server(addr, plan),
        Proto::Udp => udp_server(addr, plan),
    }
}

pub(super) fn client(proto: Proto, to: SocketAddr, plan: &Plan) -> Result<()> {
    match proto {
        Proto::Tcp => tcp_client(to, plan),
        Proto::Udp => udp_client(to, plan),
    }
}

fn tcp_server(addr: SocketAddr, plan: &Plan) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("getsockname")?;
    super::print_line(&json!({ "pid": std::process::id(), "addr": local.to_string() }))?;
    let (mut s, peer) = listener.accept().context("accept")?;
    s.set_read_timeout(Some(STALL)).context("SO_RCVTIMEO")?;
    let received = read_exact_count(&mut s, plan.expect)?;
    write_count(&mut s, plan)?;
    // Hold until the client ends it: EOF after its FIN, an error after its RST.
    let end = match s.read(&mut [0u8; 64]) {
        Ok(0) => "eof".to_owned(),
        Ok(n) => bail!("{n} bytes more than expected from {peer}"),
        Err(e) => e.kind().to_string(),
    };
    sleep(Duration::from_millis(plan.hold_ms));
    drop(s);
    super::print_line(&json!({
        "pid": std::process::id(), "local": local.to_string(), "peer": peer.to_string(),
        "received": received, "sent": plan.send, "end": end,
    }))
}

fn tcp_client(to: SocketAddr, plan: &Plan) -> Result<()> {
    let mut s = TcpStream::connect(to).with_context(|| format!("connecting to {to}"))?;
    s.set_read_timeout(Some(STALL)).context("SO_RCVTIMEO")?;
    let local = s.local_addr().context("getsockname")?;
    super::print_line(&json!({ "pid": std::process::id(), "local": local.to_string() }))?;
    write_count(&mut s, plan)?;
    let received = read_exact_count(&mut s, plan.expect)?;
    sleep(Duration::from_millis(plan.hold_ms));
    if plan.reset {
        linger_zero(&s)?;
    }
    drop(s);
    super::print_line(&json!({
        "pid": std::process::id(), "local": local.to_string(), "received": received, "sent": plan.send,
    }))
}

fn write_count(s: &mut TcpStream, plan: &Plan) -> Result<()> {
    let buf = vec![b'x'; plan.chunk.max(1)];
    let mut left = plan.send;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).context("writing")?;
        left -= n as u64;
        pause(plan);
    }
    Ok(())
}

fn read_exact_count(s: &mut TcpStream, want: u64) -> Result<u64> {
    let mut buf = vec![0u8; 65536];
    let mut got = 0;
    while got < want {
        let n = s.read(&mut buf[..(want - got).min(65536) as usize]).context("reading")?;
        if n == 0 {
            bail!("EOF after {got} of {want} bytes");
        }
        got += n as u64;
    }
    Ok(got)
}

fn pause(plan: &Plan) {
    if plan.interval_ms > 0 {
        sleep(Duration::from_millis(plan.interval_ms));
    }
}

fn udp_server(addr: SocketAddr, plan: &Plan) -> Result<()> {
    let s = UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
    big_receive_buffer(&s)?;
    let local = s.local_addr().context("getsockname")?;
    super::print_line(&json!({ "pid": std::process::id(), "addr": local.to_string() }))?;
    let (received, peer) = udp_receive(&s, plan.expect)?;
    let peer = peer.context("no datagram came, so there is nobody to answer")?;
    udp_send(&s, peer, plan)?;
    sleep(Duration::from_millis(plan.hold_ms));
    drop(s);
    super::print_line(&json!({
        "pid": std::process::id(), "local": local.to_string(), "peer": peer.to_string(),
        "received": received, "sent": plan.send,
    }))
}

fn udp_client(to: SocketAddr, plan: &Plan) -> Result<()> {
    let any: SocketAddr = if to.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.parse().expect("literal");
    let s = UdpSocket::bind(any).context("binding the client socket")?;
    big_receive_buffer(&s)?;
    let local = s.local_addr().context("getsockname")?;
    super::print_line(&json!({ "pid": std::process::id(), "local": local.to_string() }))?;
    udp_send(&s, to, plan)?;
    let (received, _) = udp_receive(&s, plan.expect)?;
    sleep(Duration::from_millis(plan.hold_ms));
    drop(s);
    super::print_line(&json!({
        "pid": std::process::id(), "local": local.to_string(), "received": received, "sent": plan.send,
    }))
}

fn udp_send(s: &UdpSocket, to: SocketAddr, plan: &Plan) -> Result<()> {
    let buf = vec![b'u'; plan.chunk.max(1)];
    let mut left = plan.send;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        let sent = s.send_to(&buf[..n], to).with_context(|| format!("sendto {to}"))?;
        if sent != n {
            bail!("short datagram: {sent} of {n} bytes");
        }
        left -= n as u64;
        pause(plan);
    }
    Ok(())
}

fn udp_receive(s: &UdpSocket, want: u64) -> Result<(u64, Option<SocketAddr>)> {
    s.set_read_timeout(Some(STALL)).context("SO_RCVTIMEO")?;
    let mut buf = vec![0u8; 65536];
    let (mut got, mut from) = (0, None);
    let start = Instant::now();
    while got < want {
        let (n, peer) = s.recv_from(&mut buf).with_context(|| format!("recvfrom after {got} of {want} bytes"))?;
        got += n as u64;
        from = Some(peer);
        if start.elapsed() > STALL {
            bail!("only {got} of {want} bytes within {STALL:?}");
        }
    }
    Ok((got, from))
}

fn big_receive_buffer(s: &UdpSocket) -> Result<()> {
    let bytes: libc::c_int = 16 << 20;
    setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &bytes).context("SO_RCVBUFFORCE (needs root)")
}

/// SO_LINGER {on, 0}: close() then sends a RST and drops unsent data.
fn linger_zero(s: &TcpStream) -> Result<()> {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &l).context("SO_LINGER")
}

fn setsockopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: &T) -> std::io::Result<()> {
    // SAFETY: `value` points at a T of the size passed.
    let rc =
        unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
