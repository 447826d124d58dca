//! Seeding the connection table: every TCP and UDP socket that exists
//! already, IPv4 and IPv6, in every network namespace, with the processes
//! that hold it.
//!
//! Run after the eBPF programs are attached and again after lost events
//! (docs/design.md#ring-buffer-loss, #seeding-races): anything that changes during the seed is
//! caught by the live stream, and reconciliation happens by socket cookie.
//!
//! Two sources, one result type:
//! - sock_diag netlink ([`diag`]): fast, and gives the socket cookie that the
//!   live events key sockets by. Used for our own netns directly and for
//!   other namespaces through a netlink socket opened after `setns` on a
//!   short-lived thread (needs CAP_SYS_ADMIN).
//! - `/proc/net/{tcp,tcp6,udp,udp6}` text ([`proc_net`]): the fallback when
//!   sock_diag is refused or missing (no `udp_diag`, no privileges), read as
//!   `/proc/PID/net/*` of a process inside each other netns (no `setns`).
//!
//! Owners come from one pass over `/proc/*/fd` ([`owners`]), which also
//! groups processes by network namespace (docs/design.md#namespaces). It is the
//! expensive part (a readlink per descriptor); our own namespace is dumped
//! on a second thread meanwhile, the other namespaces after it.
//!
//! Cost with 40,000 TCP sockets on the 2-CPU development VM (see
//! `bench_tests.rs`): sock_diag dump 25-35 ms, /proc/net text 70-85 ms,
//! descriptor scan 45-100 ms, whole seed 75-110 ms, seed without owners
//! ([`SeedOptions::owners`]) 28-36 ms; `ss -tanp` 0.6-1.2 s.

pub mod diag;
mod minisock;
mod netns;
mod other_netns;
pub mod owners;
pub mod proc_net;
mod sys;

#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod live_tests;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Result;

pub use minisock::{figures_in, minisocks};
pub(crate) use netns::{open_diag_sockets, own_netns};
pub use other_netns::{OtherNamespaces, Tracked};
pub use owners::{find_owners, iterator_usable, scan_netns, scan_owners, socket_pids, OwnerScan, OwnerStats};
pub use proc_net::{parse_proc_net, ProcNetFile, ProcNetTable};

pub use crate::socket::{Family, Proto, TcpState};

/// Which kernel timer is pending, as `/proc/net/tcp` column `tr` and
/// sock_diag `idiag_timer` number them (net/ipv4/tcp_ipv4.c get_tcp4_sock,
/// net/ipv4/inet_diag.c inet_sk_diag_fill).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// 1: retransmission (also RACK reordering and tail loss probe); also
    /// the SYN-ACK timer of a request socket.
    Retransmit,
    /// 2: `sk_timer`: keepalive (or the FIN_WAIT2 timer of an orphan).
    Keepalive,
    /// 3: TIME_WAIT expiry.
    TimeWait,
    /// 4: zero-window probe (ss calls it "persist").
    Probe,
    /// A code this module does not know; kept rather than failing the seed.
    Other(u8),
}

impl TimerKind {
    /// `None` for 0 (no timer pending).
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => return None,
            1 => Self::Retransmit,
            2 => Self::Keepalive,
            3 => Self::TimeWait,
            4 => Self::Probe,
            other => Self::Other(other),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub kind: TimerKind,
    /// Time left; the kernel clamps overdue timers to zero. Resolution is
    /// 10 ms from /proc (USER_HZ ticks), 1 ms from sock_diag.
    pub expires: Duration,
    /// The counter ss prints third in `timer:(...)`: retransmissions for
    /// [`TimerKind::Retransmit`] (SYN-ACK retransmissions for a request
    /// socket), unanswered probes for `Probe` and `Keepalive`, 0 otherwise.
    pub retransmits: u32,
}

/// A process holding a file descriptor to a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Thread-group id as seen in our `/proc` (host PIDs when netwatch runs
    /// in the initial PID namespace).
    pub pid: u32,
    /// `/proc/PID/comm` (docs/design.md#comm-is-a-thread-name).
    pub comm: String,
    pub fd: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSocket {
    pub proto: Proto,
    pub family: Family,
    /// Addresses exactly as the kernel holds them (no v4-mapped
    /// normalisation; IPv6 scope id always 0).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's state. Request sockets show `SynRecv`, TIME_WAIT
    /// minisockets their substate (`TimeWait`, or `FinWait2` for an orphan
    /// in tcp_fin_timeout). UDP: `Close` when unconnected, `Established`
    /// when connected, as /proc/net/udp shows.
    pub state: TcpState,
    /// Socket inode; 0 for TIME_WAIT and request sockets, and for a child
    /// still in its listener's accept queue.
    pub inode: u64,
    /// Owner uid; for a request socket the listener's, for TIME_WAIT 0.
    pub uid: u32,
    /// Socket cookie (sock_diag only; the live events key sockets by it).
    pub cookie: Option<u64>,
    /// Inode of the socket's network namespace.
    pub netns: u32,
    /// One entry per (process, fd) holding the socket, as `ss -p` lists
    /// them; empty when the socket has no inode.
    pub owners: Vec<Process>,
    pub timer: Option<Timer>,
    /// netstat's Recv-Q: bytes not yet read, or for a listener the current
    /// accept-queue length; for UDP the receive memory in use.
    pub rx_queue: u32,
    /// netstat's Send-Q: bytes not yet acknowledged (0 for listeners, as
    /// /proc shows; ss prints the maximum backlog there instead); for UDP
    /// the send memory in use.
    pub tx_queue: u32,
    /// Drops and RTT, from sock_diag dumps that asked for them
    /// ([`SeedOptions::figures`]); `None` otherwise.
    pub figures: Option<diag::Figures>,
}

/// Unit-test sockets: one builder for every module's fixtures.
#[cfg(test)]
impl SeedSocket {
    /// A TCP socket in namespace 7 with no owner; the family follows the
    /// address (`[..]` is IPv6). Change the rest with the methods below or
    /// struct update syntax.
    pub(crate) fn fixture(state: TcpState, local: &str, remote: &str) -> Self {
        Self {
            proto: Proto::Tcp,
            family: if local.starts_with('[') { Family::V6 } else { Family::V4 },
            local: local.parse().expect("fixture address"),
            remote: remote.parse().expect("fixture address"),
            state,
            inode: 0,
            uid: 0,
            cookie: None,
            netns: 7,
            owners: Vec::new(),
            timer: None,
            rx_queue: 0,
            tx_queue: 0,
            figures: None,
        }
    }

    /// Held by `pid` (fd 3); a socket with an owner has an inode, 99
    /// unless one was set.
    pub(crate) fn owned_by(mut self, pid: u32, comm: &str) -> Self {
        self.owners.push(Process { pid, comm: comm.into(), fd: 3 });
        if self.inode == 0 {
            self.inode = 99;
        }
        self
    }
}

/// How to enumerate sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// sock_diag where it works, /proc text where it does not.
    Auto,
    /// /proc text only (no cookies): what net-tools netstat sees. Only the
    /// tests choose it, to compare the two sources.
    #[cfg_attr(not(test), expect(dead_code, reason = "chosen by the tests only"))]
    ProcOnly,
}

#[derive(Clone, Debug)]
pub struct SeedOptions {
    pub method: Method,
    /// Find owners (the `/proc/*/fd` scan: about 2-3 µs per descriptor,
    /// most of a large seed). Without, `owners` stays empty and the seed
    /// costs little more than the socket dumps; [`scan_owners`] and
    /// [`attach_owners`] can fill them in later.
    pub owners: bool,
    /// Threads for the `/proc/*/fd` scan (readlink is the cost).
    pub scan_threads: usize,
    /// Where procfs is mounted (`/host/proc` when run in a container).
    pub proc_root: PathBuf,
    /// Also read namespaces bind-mounted here (`ip netns add`) even when no
    /// process lives in them; only possible through sock_diag.
    pub netns_dir: Option<PathBuf>,
    /// Ask sock_diag for each socket's [`SeedSocket::figures`] (drops, RTT):
    /// a bigger dump, for `snapshot` only.
    pub figures: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            method: Method::Auto,
            owners: true,
            scan_threads: 2,
            proc_root: PathBuf::from("/proc"),
            netns_dir: Some(PathBuf::from("/run/netns")),
            figures: false,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedStats {
    pub sockets: usize,
    /// Sockets with at least one owner.
    pub owned: usize,
    pub owner_scan: OwnerStats,
    pub namespaces_diag: usize,
    pub namespaces_proc: usize,
    /// Namespaces whose processes all exited before their sockets were read.
    pub namespaces_vanished: usize,
    /// Namespaces none of whose socket tables could be read (gone, or no
    /// privilege to enter them): listed in [`Seed::namespaces`] all the same.
    pub namespaces_unread: Vec<u32>,
    /// /proc tables whose last line was cut short (tolerated, dropped).
    pub truncated_lines: usize,
    /// sock_diag dumps the kernel flagged as possibly inconsistent
    /// (`NLM_F_DUMP_INTR`); the live stream corrects them.
    pub dumps_interrupted: usize,
    /// Problems that were worked around (fallbacks to /proc, unreadable
    /// namespaces), one line each.
    pub warnings: Vec<String>,
    /// The /proc scan, and the socket dumps (our namespace runs alongside
    /// the scan, the others after it), so the two overlap.
    pub elapsed_owners: Duration,
    pub elapsed_sockets: Duration,
    pub elapsed: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct Seed {
    pub sockets: Vec<SeedSocket>,
    /// Every network namespace found, own first, then ascending (one that
    /// could not be read is still listed; see `stats.warnings`).
    pub namespaces: Vec<u32>,
    pub stats: SeedStats,
}

/// Every TCP and UDP socket in every network namespace, with owners.
pub fn seed_all() -> Result<Seed> {
    seed(&SeedOptions::default())
}

pub fn seed(opts: &SeedOptions) -> Result<Seed> {
    let start = Instant::now();
    // Our own namespace needs nothing from the /proc scan: read it on a
    // second thread meanwhile (both are mostly kernel time).
    let (scan, own) = std::thread::scope(|s| {
        let own = s.spawn(|| {
            let (mut sockets, mut stats) = (Vec::new(), SeedStats::default());
            let ns = netns::read_own(opts, &mut sockets, &mut stats)?;
            stats.elapsed_sockets = start.elapsed();
            anyhow::Ok((ns, sockets, stats))
        });
        let scan =
            if opts.owners { find_owners(&opts.proc_root, opts.scan_threads) } else { scan_netns(&opts.proc_root) };
        let scan = scan.map(|scan| (scan, start.elapsed()));
        let own = own.join().unwrap_or_else(|_| Err(anyhow::anyhow!("reading our own namespace panicked")));
        (scan, own)
    });
    let ((mut scan, elapsed_owners), (own, mut sockets, mut stats)) = (scan?, own?);
    stats.elapsed_owners = elapsed_owners;
    if let Some(e) = &scan.stats.iterator_error {
        // The verifier's whole log is no start-up line: its reason is.
        let why = crate::probe::compat::refusal_line(e);
        stats.warnings.push(format!("socket-file iterator unavailable, scanned /proc/*/fd instead: {why}"));
    }
    stats.owner_scan = scan.stats.clone();

    let others_start = Instant::now();
    let others = netns::read_others(opts, own, &scan, &mut sockets, &mut stats);
    stats.elapsed_sockets += others_start.elapsed();

    attach_owners(&mut sockets, &mut scan);
    stats.sockets = sockets.len();
    stats.owned = sockets.iter().filter(|s| !s.owners.is_empty()).count();
    stats.elapsed = start.elapsed();
    let namespaces = std::iter::once(own).chain(others).collect();
    Ok(Seed { sockets, namespaces, stats })
}

/// Moves each inode's owners onto its socket. Socket inodes are unique
/// across namespaces (one sockfs), so one map serves every netns.
pub fn attach_owners(sockets: &mut [SeedSocket], scan: &mut OwnerScan) {
    for s in sockets.iter_mut().filter(|s| s.inode != 0) {
        if let Some(owners) = scan.owners.remove(&s.inode) {
            s.owners = owners;
        }
    }
}

fn proc_net_dir(proc_root: &Path, pid: Option<u32>) -> PathBuf {
    pid.map_or_else(|| proc_root.join("net"), |pid| proc_root.join(pid.to_string()).join("net"))
}
