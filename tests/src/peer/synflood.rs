//! `nw-peer synflood`: half-open connections (request sockets in SYN_RECV)
//! on a listener of our own, from raw SYNs with a spoofed source whose
//! SYN-ACKs go nowhere.
//!
//! Meant to run inside a network namespace the test made (`ip netns exec`),
//! where the spoofed source (127.0.0.2) is routed to a veth whose peer is
//! down, so the SYN-ACKs are dropped instead of answered with a RST by our
//! own stack; the request sockets then live while the kernel retransmits
//! the SYN-ACK (about a minute with the default tcp_synack_retries). IPv4 and
//! 127.0.0.0/8 only. Prints `{"pid","addr","from","sports"}`, then holds the
//! listener until stdin closes or `--max-seconds` pass.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

const TCP_SYN: u8 = 0x02;
/// Source ports of the spoofed SYNs: `SPORT_BASE + i`.
const SPORT_BASE: u16 = 40_000;

pub(super) fn run(listen: SocketAddr, from: Ipv4Addr, count: u16, max_seconds: u64) -> Result<()> {
    let SocketAddr::V4(_) = listen else { bail!("synflood is IPv4 only, not {listen}") };
    if !listen.ip().is_loopback() || !from.is_loopback() {
        bail!("synflood only uses 127.0.0.0/8 ({listen}, {from})");
    }
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let SocketAddr::V4(to) = listener.local_addr().context("getsockname")? else { unreachable!("bound v4") };
    let raw = raw_socket()?;
    let mut sports = Vec::new();
    for i in 0..count {
        let sport = SPORT_BASE + i;
        let packet = syn(SocketAddrV4::new(from, sport), to, 0x1000_0000 + u32::from(i) * 7919);
        send(&raw, &packet, to)?;
        sports.push(sport);
    }
    super::print_line(&json!({
        "pid": std::process::id(),
        "addr": to.to_string(),
        "from": from.to_string(),
        "sports": sports,
    }))?;
    let max = Duration::from_secs(max_seconds);
    thread::spawn(move || {
        thread::sleep(max);
        std::process::exit(0);
    });
    // Hold the listener (and so its request sockets) until stdin closes.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(listener);
    Ok(())
}

/// `socket(AF_INET, SOCK_RAW, IPPROTO_RAW)`: we write the IP header
/// (IP_HDRINCL is implied); the kernel fills in its checksum and length.
fn raw_socket() -> Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening a raw socket (needs CAP_NET_RAW)");
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send(raw: &OwnedFd, packet: &[u8], to: SocketAddrV4) -> Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET fits"),
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(*to.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let len = libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).expect("small struct");
    // SAFETY: packet and addr are live for the call, with the lengths given.
    let n = unsafe {
        libc::sendto(raw.as_raw_fd(), packet.as_ptr().cast(), packet.len(), 0, (&raw const addr).cast(), len)
    };
    if usize::try_from(n).ok() != Some(packet.len()) {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("sending a SYN to {to}"));
    }
    Ok(())
}

/// An IPv4 header plus a 20-byte TCP header with only SYN set.
fn syn(from: SocketAddrV4, to: SocketAddrV4, seq: u32) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20);
    tcp.extend(from.port().to_be_bytes());
    tcp.extend(to.port().to_be_bytes());
    tcp.extend(seq.to_be_bytes());
    tcp.extend(0u32.to_be_bytes()); // ack
    tcp.extend([5 << 4, TCP_SYN]); // data offset 5 words, flags
    tcp.extend(65_535u16.to_be_bytes()); // window
    tcp.extend([0, 0, 0, 0]); // checksum, urgent pointer
    let mut pseudo = Vec::with_capacity(12 + tcp.len());
    pseudo.extend(from.ip().octets());
    pseudo.extend(to.ip().octets());
    pseudo.extend([0, 6]); // zero, protocol TCP
    pseudo.extend(u16::try_from(tcp.len()).expect("short").to_be_bytes());
    pseudo.extend(&tcp);
    tcp[16..18].copy_from_slice(&checksum(&pseudo).to_be_bytes());

    let total = u16::try_from(20 + tcp.len()).expect("short");
    let mut ip = vec![0x45, 0];
    ip.extend(total.to_be_bytes());
    ip.extend([0, 0, 0, 0]); // id (kernel fills it), flags/fragment
    ip.extend([64, 6, 0, 0]); // ttl, protocol, checksum (kernel fills it)
    ip.extend(from.ip().octets());
    ip.extend(to.ip().octets());
    ip.extend(tcp);
    ip
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded to 16 bits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_checksums_verify() {
        let from = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 40_000);
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
        let p = syn(from, to, 1);
        assert_eq!((p.len(), p[33]), (40, TCP_SYN));
        let mut pseudo = p[12..20].to_vec();
        pseudo.extend([0, 6, 0, 20]);
        pseudo.extend(&p[20..]);
        assert_eq!(checksum(&pseudo), 0, "a correct checksum sums to zero");
    }
}
