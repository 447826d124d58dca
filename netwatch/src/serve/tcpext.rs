//! TcpExt ListenOverflows and ListenDrops from /proc/net/netstat: the
//! kernel's own count of SYNs and handshakes dropped at full listen queues
//! (docs/design.md#syn-recv), for this network namespace.

use anyhow::{bail, Context as _, Result};
use netwatch_common::tcp;

use crate::seed::{diag::DiagSocket, own_netns, SeedSocket};

/// `ListenOverflows + ListenDrops` (drops already includes overflows on
/// current kernels, but older ones counted them apart; the sum only ever
/// grows, which is all a growth alert needs).
pub fn read() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").context("reading /proc/net/netstat")?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<u64> {
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let Some(values) = lines.next() else { break };
        let (Some(names), Some(values)) = (names.strip_prefix("TcpExt:"), values.strip_prefix("TcpExt:")) else {
            continue;
        };
        let mut sum = 0u64;
        let mut found = 0;
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if n == "ListenOverflows" || n == "ListenDrops" {
                sum += v.parse::<u64>().with_context(|| format!("TcpExt {n} is not a number: {v:?}"))?;
                found += 1;
            }
        }
        if found == 0 {
            bail!("/proc/net/netstat has no ListenOverflows or ListenDrops");
        }
        return Ok(sum);
    }
    bail!("/proc/net/netstat has no TcpExt section")
}

/// This namespace's TCP listeners as sock_diag reports them now, with their
/// accept queues (`rx_queue`: waiting to be accepted, `tx_queue`: backlog).
pub fn listeners() -> Result<Vec<SeedSocket>> {
    let netns = own_netns().context("reading /proc/self/ns/net")?;
    let diag = DiagSocket::open().context("opening a sock_diag socket")?;
    let mut out = Vec::new();
    diag.dump_tcp_each(1 << tcp::LISTEN, netns, &mut out).context("dumping listeners")?;
    Ok(out)
}

/// Listeners whose accept queue is full (the kernel drops a handshake when
/// the queue holds more than the backlog allows), fullest first: the likely
/// cause of drops the TcpExt counters only count.
pub fn full_queues(listeners: &[SeedSocket]) -> Vec<&SeedSocket> {
    let mut full: Vec<&SeedSocket> = listeners.iter().filter(|l| l.rx_queue > 0 && l.rx_queue >= l.tx_queue).collect();
    full.sort_by_key(|l| std::cmp::Reverse(l.rx_queue));
    full
}

#[cfg(test)]
mod tests {
    #[test]
    fn full_queues_are_those_at_their_backlog() {
        let l = |port: u16, rx: u32, tx: u32| crate::seed::SeedSocket {
            rx_queue: rx,
            tx_queue: tx,
            ..crate::seed::SeedSocket::fixture(crate::seed::TcpState::Listen, &format!("127.0.0.1:{port}"), "0.0.0.0:0")
        };
        let socks = [l(1, 0, 0), l(2, 3, 128), l(3, 1, 0), l(4, 5, 5), l(5, 0, 4096)];
        let ports: Vec<u16> = super::full_queues(&socks).iter().map(|s| s.local.port()).collect();
        assert_eq!(ports, [4, 3]);
    }

    #[test]
    fn sums_overflows_and_drops() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                    TcpExt: 1 7 9 100\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(super::parse(text).unwrap(), 16);
        assert!(super::parse("IpExt: A\nIpExt: 1\n").is_err());
    }
}
