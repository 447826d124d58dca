//! `nw-peer bulk`: one loopback TCP stream as fast as it goes, for the
//! traffic counters' throughput benchmark. Prints
//! `{"bytes":N,"seconds":S,"rate":R}` (R in bytes per second).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Write size: large, as a bulk sender's would be.
const CHUNK: usize = 1 << 20;

pub(super) fn run(bytes: u64, v6: bool) -> Result<Value> {
    let ip = if v6 { Ipv6Addr::LOCALHOST.into() } else { Ipv4Addr::LOCALHOST.into() };
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).context("binding the receiver")?;
    let addr = listener.local_addr().context("getsockname")?;
    let receiver = std::thread::spawn(move || -> Result<u64> {
        let (mut s, _) = listener.accept().context("accept")?;
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf).context("reading")? {
                0 => return Ok(got),
                n => got += n as u64,
            }
        }
    });
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    let buf = vec![b'b'; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        s.write_all(&buf[..n]).context("writing")?;
        left -= n as u64;
    }
    drop(s);
    let got = receiver.join().map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
    let seconds = start.elapsed().as_secs_f64();
    if got != bytes {
        bail!("received {got} of {bytes} bytes");
    }
    Ok(json!({ "bytes": bytes, "seconds": seconds, "rate": bytes as f64 / seconds }))
}
