//! `nw-peer hold`: sockets kept open in chosen states until stdin closes,
//! for tests that compare netwatch's table with `ss` and for the seeding
//! benchmark (tens of thousands of established pairs).
//!
//! It prints one JSON line once everything is set up, then one line per
//! connection its listeners accept (`{"accepted":{...}}`) and one per
//! command read from stdin:
//!
//! - `connect ADDR`: open one more connection, held (`{"connected":{...}}`);
//! - `close PORT` or `close ADDR`: close the held connections whose local
//!   or peer port is PORT, or whose local or peer address is ADDR
//!   (`{"closed":ARG,"count":N}`): on a server, the client's address names
//!   one accepted connection (the listener's port, all of them);
//! - `reset PORT`: the same with SO_LINGER 0, so the close sends a RST.
//!
//! EOF on stdin (the test died or is done) ends the process, and so does
//! `--max-seconds`: nothing it holds can outlive the run that made it.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

#[derive(Clone, Debug, Default)]
pub struct HoldConfig {
    /// TCP listeners, accepting (and holding) whatever connects.
    pub listen: Vec<SocketAddr>,
    /// Self-connected pairs made to each listener before anything else:
    /// both ends are held, neither is announced one by one.
    pub pairs: u32,
    /// Outgoing connections, held.
    pub connect: Vec<SocketAddr>,
    /// Unconnected UDP sockets.
    pub udp_bind: Vec<SocketAddr>,
    /// UDP sockets bound to an ephemeral port of the target's loopback
    /// address and connected to the target.
    pub udp_connect: Vec<SocketAddr>,
    /// Fork a child that holds every socket open at that moment as well, so
    /// each has two owners. Sockets it shares stay open when closed here.
    pub share: bool,
    pub max_seconds: u64,
}

type Streams = Arc<Mutex<Vec<TcpStream>>>;

pub(super) fn run(cfg: &HoldConfig) -> Result<()> {
    let listeners = cfg
        .listen
        .iter()
        .map(|a| TcpListener::bind(a).with_context(|| format!("binding {a}")))
        .collect::<Result<Vec<_>>>()?;
    let streams: Streams = Arc::default();
    for l in &listeners {
        let to = l.local_addr().context("getsockname on a listener")?;
        for i in 0..cfg.pairs {
            let client = TcpStream::connect(to).with_context(|| format!("pair {i}: connecting to {to}"))?;
            let (server, _) = l.accept().with_context(|| format!("pair {i}: accepting on {to}"))?;
            lock(&streams).extend([client, server]);
        }
    }
    let mut connected = Vec::new();
    for to in &cfg.connect {
        let s = TcpStream::connect(to).with_context(|| format!("connecting to {to}"))?;
        connected.push(ends(&s)?);
        lock(&streams).push(s);
    }
    let mut udp = Vec::new();
    for a in &cfg.udp_bind {
        udp.push(UdpSocket::bind(a).with_context(|| format!("binding UDP {a}"))?);
    }
    for to in &cfg.udp_connect {
        let s = UdpSocket::bind((to.ip(), 0)).with_context(|| format!("binding UDP on {}", to.ip()))?;
        s.connect(to).with_context(|| format!("connecting UDP to {to}"))?;
        udp.push(s);
    }
    // Before any thread exists: fork() copies only the calling thread.
    let sharer = if cfg.share { Some(fork_sharer()?) } else { None };

    let udp_json: Vec<Value> = udp
        .iter()
        .map(|s| {
            Ok(json!({ "local": s.local_addr()?.to_string(), "remote": s.peer_addr().ok().map(|a| a.to_string()) }))
        })
        .collect::<std::io::Result<_>>()
        .context("getsockname on a UDP socket")?;
    let listen_json: Vec<String> =
        listeners.iter().map(|l| l.local_addr().map(|a| a.to_string())).collect::<std::io::Result<_>>()?;
    super::print_line(&json!({
        "pid": std::process::id(),
        "sharer": sharer,
        "listeners": listen_json,
        "pairs": cfg.pairs,
        "connected": connected,
        "udp": udp_json,
    }))?;

    for l in listeners {
        let streams = Arc::clone(&streams);
        thread::spawn(move || accept_forever(&l, &streams));
    }
    let max = Duration::from_secs(cfg.max_seconds);
    thread::spawn(move || {
        thread::sleep(max);
        eprintln!("nw-peer hold: --max-seconds reached, exiting");
        std::process::exit(0);
    });
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        let reply = command(line.trim(), &streams).unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
        super::print_line(&reply)?;
    }
    drop(udp);
    if let Some(pid) = sharer {
        reap(pid);
    }
    Ok(())
}

fn accept_forever(listener: &TcpListener, streams: &Streams) {
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                let line = ends(&s).map(|e| json!({ "accepted": e }));
                lock(streams).push(s);
                if let Ok(line) = line {
                    // Stdout gone means the harness is gone; stdin EOF ends us.
                    let _ = super::print_line(&line);
                }
            }
            Err(e) => {
                eprintln!("nw-peer hold: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn command(line: &str, streams: &Streams) -> Result<Value> {
    let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "connect" => {
            let to: SocketAddr = arg.parse().with_context(|| format!("bad address {arg:?}"))?;
            let s = TcpStream::connect(to).with_context(|| format!("connecting to {to}"))?;
            let e = ends(&s)?;
            lock(streams).push(s);
            Ok(json!({ "connected": e }))
        }
        "close" | "reset" => {
            let end = End::parse(arg)?;
            let taken: Vec<TcpStream> = {
                let mut held = lock(streams);
                let (take, keep) = std::mem::take(&mut *held).into_iter().partition(|s| end.of(s));
                *held = keep;
                take
            };
            let count = taken.len();
            for s in taken {
                if verb == "reset" {
                    linger_zero(&s)?;
                }
                drop(s);
            }
            let key = if verb == "close" { "closed" } else { "reset" };
            Ok(json!({ key: arg, "count": count }))
        }
        _ => bail!("unknown command {line:?} (connect ADDR, close PORT|ADDR, reset PORT|ADDR)"),
    }
}

/// Which held connections a `close`/`reset` means: those with an end on
/// a port, or on one exact address (a port alone can name two: an IPv4
/// and an IPv6 client may get the same ephemeral port).
enum End {
    Port(u16),
    Addr(SocketAddr),
}

impl End {
    fn parse(arg: &str) -> Result<Self> {
        match arg.parse::<u16>() {
            Ok(port) => Ok(Self::Port(port)),
            Err(_) => Ok(Self::Addr(arg.parse().with_context(|| format!("neither a port nor an address: {arg:?}"))?)),
        }
    }

    fn of(&self, s: &TcpStream) -> bool {
        let ends = [s.local_addr().ok(), s.peer_addr().ok()];
        ends.into_iter().flatten().any(|a| match self {
            Self::Port(p) => a.port() == *p,
            Self::Addr(x) => a == *x,
        })
    }
}

fn ends(s: &TcpStream) -> Result<Value> {
    let local = s.local_addr().context("getsockname")?;
    let remote = s.peer_addr().context("getpeername")?;
    Ok(json!({ "local": local.to_string(), "remote": remote.to_string() }))
}

/// SO_LINGER {on, 0}: close() then aborts the connection with a RST.
fn linger_zero(s: &TcpStream) -> Result<()> {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    let len = libc::socklen_t::try_from(size_of::<libc::linger>()).expect("small struct");
    // SAFETY: a valid socket fd, and a pointer to a live linger struct of `len` bytes.
    let rc =
        unsafe { libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&raw const linger).cast(), len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setsockopt(SO_LINGER)");
    }
    Ok(())
}

/// Forks a child that keeps copies of every descriptor and sleeps until
/// this process dies (PR_SET_PDEATHSIG). Returns its pid.
fn fork_sharer() -> Result<u32> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: no other thread exists yet (see the caller), so the child
    // inherits a consistent process; it only calls async-signal-safe functions.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            // SAFETY: prctl/getppid/pause/_exit are async-signal-safe syscalls.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The parent may have died before the prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
        }
        child => Ok(u32::try_from(child).expect("positive pid")),
    }
}

/// Kills and reaps the sharer, rather than leave a zombie for init.
fn reap(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill/waitpid on our own child, with a null status pointer.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
