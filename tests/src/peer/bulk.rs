//! `nw-peer bulk`: one loopback TCP stream as fast as it goes, for the
//! traffic counters' throughput benchmark. Prints
//! `{"bytes":N,"seconds":S,"rate":R,"segs_out":N,"segs_in":N,"sender_cpu":C,"receiver_cpu":C}`
//! (R in bytes per second; segs are the sending socket's packets each way,
//! from TCP_INFO; a CPU is -1 when the thread was not pinned), plus
//! `cpu_seconds`: the process's CPU time, which on loopback includes the
//! receive softirqs run on the way out of the sender's system calls.
//!
//! The stream is either a fixed size (`--bytes`) or a fixed time
//! (`--seconds`): the benchmark wants many short runs, and a time bound
//! keeps each one short however fast or slow the machine is at that moment.
//! Sender and receiver threads can be pinned to CPUs so that two runs
//! compared with each other get the same placement: on loopback the
//! receive path (softirq) runs on the sender's CPU, so where each thread
//! runs decides which CPU does how much of the work.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Write size: large, as a bulk sender's would be.
const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug)]
pub struct BulkConfig {
    /// How much to send, unless `seconds` bounds the run instead.
    pub bytes: u64,
    /// Send for this long instead of a fixed size.
    pub seconds: Option<f64>,
    pub v6: bool,
    pub sender_cpu: Option<usize>,
    pub receiver_cpu: Option<usize>,
}

pub(super) fn run(config: &BulkConfig) -> Result<Value> {
    let ip = if config.v6 { Ipv6Addr::LOCALHOST.into() } else { Ipv4Addr::LOCALHOST.into() };
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).context("binding the receiver")?;
    let addr = listener.local_addr().context("getsockname")?;
    let receiver_cpu = config.receiver_cpu;
    let receiver = std::thread::spawn(move || -> Result<u64> {
        if let Some(cpu) = receiver_cpu {
            pin(cpu).context("pinning the receiver thread")?;
        }
        receive(&listener)
    });
    if let Some(cpu) = config.sender_cpu {
        pin(cpu).context("pinning the sender thread")?;
    }
    let start = Instant::now();
    let (sent, info) = send(addr, config, start)?;
    let got = receiver.join().map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
    let seconds = start.elapsed().as_secs_f64();
    if got != sent {
        bail!("received {got} of {sent} bytes");
    }
    let cpu = |c: Option<usize>| c.map_or(-1, |c| c as i64);
    Ok(json!({
        "bytes": sent,
        "seconds": seconds,
        "rate": sent as f64 / seconds,
        "segs_out": info.tcpi_segs_out,
        "segs_in": info.tcpi_segs_in,
        "cpu_seconds": cpu_seconds()?,
        "sender_cpu": cpu(config.sender_cpu),
        "receiver_cpu": cpu(receiver_cpu),
    }))
}

/// Connects and writes until the size or time bound is reached, then closes;
/// returns the bytes sent and the socket's TCP_INFO just before closing.
fn send(addr: SocketAddr, config: &BulkConfig, start: Instant) -> Result<(u64, libc::tcp_info)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    let buf = vec![b'b'; CHUNK];
    let deadline = config.seconds.map(|secs| start + Duration::from_secs_f64(secs));
    let mut sent = 0u64;
    loop {
        let n = match deadline {
            Some(deadline) if Instant::now() >= deadline => break,
            Some(_) => CHUNK,
            None if sent >= config.bytes => break,
            None => (config.bytes - sent).min(CHUNK as u64) as usize,
        };
        s.write_all(&buf[..n]).context("writing")?;
        sent += n as u64;
    }
    Ok((sent, tcp_info(&s)?))
}

/// The kernel's TCP_INFO for `s`: its packet counts tell the benchmark how
/// many times each per-packet program ran for this stream.
fn tcp_info(s: &TcpStream) -> Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain integers; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes and `len` is passed by pointer as getsockopt expects.
    let rc =
        unsafe { libc::getsockopt(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getsockopt(TCP_INFO)");
    }
    Ok(info)
}

fn receive(listener: &TcpListener) -> Result<u64> {
    let (mut s, _) = listener.accept().context("accept")?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf).context("reading")? {
            0 => return Ok(got),
            n => got += n as u64,
        }
    }
}

/// User plus system time of this process so far, both threads.
fn cpu_seconds() -> Result<f64> {
    // SAFETY: rusage is plain integers; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// Pins the calling thread to one CPU.
fn pin(cpu: usize) -> Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        bail!("CPU {cpu} is beyond what a cpu_set_t holds");
    }
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET stays within it (checked above).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is within the set (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("sched_setaffinity to CPU {cpu}"));
    }
    Ok(())
}
