//! TcpExt ListenOverflows and ListenDrops from /proc/net/netstat: the
//! kernel's own count of SYNs and handshakes dropped at full listen queues
//! (KERNEL-NOTES point 3), for this network namespace.

use anyhow::{bail, Context as _, Result};

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

#[cfg(test)]
mod tests {
    #[test]
    fn sums_overflows_and_drops() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                    TcpExt: 1 7 9 100\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(super::parse(text).unwrap(), 16);
        assert!(super::parse("IpExt: A\nIpExt: 1\n").is_err());
    }
}
