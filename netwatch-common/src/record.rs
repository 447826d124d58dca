//! The records written by the kernel programs and read by the agent.

use core::mem::size_of;

/// 16 bytes aligned to 8: addresses and task names. The BPF backend copies
/// 8-aligned values with two 64-bit moves instead of byte by byte. (Zeroing
/// is another matter: it emits a call to a byte-loop `memset` for any
/// zero-fill, so the kernel side avoids zero-filled arrays altogether;
/// padding here is integers, never byte arrays, for the same reason.)
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bytes16(pub [u8; 16]);

impl Bytes16 {
    pub const ZERO: Self = Self([0; 16]);
}

/// What happened to a socket. Derived in the kernel from the transition so
/// the agent and every consumer agree on one classification.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Any transition not named below (e.g. `ESTABLISHED -> FIN_WAIT1`).
    State = 0,
    /// `CLOSE -> LISTEN`.
    Listen = 1,
    /// `CLOSE -> SYN_SENT`: an active open started (process context).
    Connect = 2,
    /// `SYN_SENT -> ESTABLISHED`: an active open succeeded.
    Established = 3,
    /// `SYN_RECV -> ESTABLISHED`: a passive open completed, the handshake
    /// (the connection is in the listener's accept queue; netstat -s counts
    /// it as a passive connection opening). It runs in softirq: the owner
    /// is the listener's, lent by the agent.
    Handshake = 4,
    /// `SYN_SENT -> CLOSE`: refused, timed out, unreachable or aborted.
    ConnectFailed = 5,
    /// `X -> CLOSE` for any other X: the connection is over.
    Close = 6,
    /// `tcp_destroy_sock`: the kernel freed the socket; its identity may be
    /// reused from now on.
    Destroy = 7,
    /// `accept()`/`accept4()` returned the socket to a process, now its
    /// owner, with its descriptor (`fd`) and full tuple; the state is
    /// unchanged (old and new state are both the socket's state then).
    Accept = 8,
    /// A UDP socket was released (its last file closed): the end of its
    /// traffic totals. UDP has no state machine, so no other event exists.
    UdpClose = 9,
    /// `connect()` on an IPv4/IPv6 TCP or UDP socket failed in the system
    /// call itself (no route, a firewall or cgroup hook refused, no local
    /// address...), before or without the TCP state machine: the errno is
    /// in the totals' `sk_err`, the destination in `daddr`/`dport`, the
    /// caller is the owner. No socket transition goes with it.
    ConnectError = 10,
    /// Made by the agent, never by a kernel program: a TCP listener's own
    /// drop counter (`sk_drops`, which `tcp_listendrop()` raises for every
    /// SYN or completed handshake it drops: accept queue or SYN queue full,
    /// no memory) rose since the agent last read it. The totals' `drops`
    /// says by how many; the event names the listener and its owner. No
    /// tracepoint fires for these drops (a SYN refused by a full accept
    /// queue is freed as consumed), so the agent reads the counters.
    ListenDrop = 11,
}

impl EventKind {
    /// Every kind, in wire order: what the agent derives its event names,
    /// export kinds and counters from, so that a new kind is everywhere.
    pub const ALL: [Self; 12] = [
        Self::State,
        Self::Listen,
        Self::Connect,
        Self::Established,
        Self::Handshake,
        Self::ConnectFailed,
        Self::Close,
        Self::Destroy,
        Self::Accept,
        Self::UdpClose,
        Self::ConnectError,
        Self::ListenDrop,
    ];

    /// The name users see: the JSON `event` field, the text column, the
    /// export kinds of `netwatch serve`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Listen => "listen",
            Self::Connect => "connect",
            Self::Established => "established",
            Self::Handshake => "handshake",
            Self::ConnectFailed => "connect_failed",
            Self::Close => "close",
            Self::Destroy => "destroy",
            Self::Accept => "accept",
            Self::UdpClose => "udp_close",
            Self::ConnectError => "connect_error",
            Self::ListenDrop => "listen_drop",
        }
    }

    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::State,
            1 => Self::Listen,
            2 => Self::Connect,
            3 => Self::Established,
            4 => Self::Handshake,
            5 => Self::ConnectFailed,
            6 => Self::Close,
            7 => Self::Destroy,
            8 => Self::Accept,
            9 => Self::UdpClose,
            10 => Self::ConnectError,
            11 => Self::ListenDrop,
            _ => return None,
        })
    }
}

/// How the owner attached to an event was established.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwnerSource {
    /// The socket was never seen in process context (created before netwatch
    /// started, or its listener was unknown).
    Unknown = 0,
    /// The process in whose system call the event ran: the one that
    /// called `connect()` or `listen()`, or the `close()` or `shutdown()`
    /// that began the socket's FIN handshake.
    Current = 1,
    /// Inherited from the listening socket (passive open, before
    /// `accept()`); lent by the agent, never written by the kernel programs.
    Listener = 2,
    /// The process whose `accept()` returned the socket.
    Accept = 3,
    /// Found by the agent in /proc when it started (the socket predates
    /// netwatch); never written by the kernel programs.
    Proc = 4,
}

impl OwnerSource {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Current,
            2 => Self::Listener,
            3 => Self::Accept,
            4 => Self::Proc,
            _ => Self::Unknown,
        }
    }
}

/// One socket lifecycle event.
///
/// Byte order: addresses are in network order exactly as the kernel stores
/// them (an IPv4 address in the first 4 bytes, the rest zero); ports and all
/// other integers are in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockEvent {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// When the socket was born (connect, listen, or the first sight of a
    /// passive child), on birth events only; 0 on the others, whose start
    /// the agent knows from the birth.
    pub start_ns: u64,
    /// The socket cookie: unique per socket for the whole boot, unlike the
    /// kernel address, which is reused (docs/design.md#socket-reuse).
    pub cookie: u64,
    /// Inode number of the socket's file, as `ss -e` and /proc show it, on
    /// the events that carry an owner; 0 on the others and while no file
    /// holds the socket (a child not accepted yet, or after close()).
    pub inode: u64,
    pub saddr: Bytes16,
    pub daddr: Bytes16,
    /// The owner's process name, NUL-padded: the 16-byte comm of its
    /// thread group's leader (what netstat and `/proc/PID/comm` show), not
    /// that of the thread that made the call (see `thread`).
    pub comm: Bytes16,
    /// Owner's tgid (the PID users know); 0 when the kernel does not say.
    /// Only a socket's birth (connect, listen), `accept()` and a UDP
    /// release carry the owner; the agent lends it to the socket's later
    /// events (`event::tuples`, `table`), and a listener's to its passive
    /// children until accept (`event::listeners`).
    pub pid: u32,
    pub uid: u32,
    /// Inode number of the socket's network namespace.
    pub netns: u32,
    pub sport: u16,
    pub dport: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// An [`EventKind`].
    pub kind: u8,
    pub old_state: u8,
    pub new_state: u8,
    /// An [`OwnerSource`].
    pub owner_source: u8,
    pub _pad: u16,
    /// The calling thread's own comm, on events made in a process's
    /// context (those with `tid` != 0); zero on the others.
    pub thread: Bytes16,
    /// The calling thread's id (the kernel's pid); 0 where the event did
    /// not run in a process's context (softirq, or a lent owner).
    pub tid: u32,
    /// The descriptor `accept()` returned, on `Accept` events; -1 on the
    /// others.
    pub fd: i32,
    /// The owner's cgroup v2 id (`bpf_get_current_cgroup_id()`: the inode
    /// of its directory in the cgroup2 mount), on the events written in the
    /// owner's own system call; 0 on the others, whose owner (and so its
    /// workload) the agent lends (`workload`).
    pub cgroup: u64,
    /// The socket's traffic totals on `Close`, `ConnectFailed`, `UdpClose`,
    /// `ConnectError` (its errno only), an `Established` or `Handshake` whose
    /// handshake retransmitted (its `total_retrans` and `srtt_us` only)
    /// and (final, including a reset sent after the close) `Destroy`
    /// events (tcplife's TX_KB/RX_KB); zero on every other event.
    pub traffic: crate::Traffic,
}

const _: () = assert!(size_of::<SockEvent>() == 240);

/// Bytes of a [`SockEvent`] before its traffic totals. An event without
/// totals (every one but a close) is sent as this head alone: two cache
/// lines of ring instead of three for nine events in ten.
pub const SOCK_EVENT_HEAD: usize = core::mem::offset_of!(SockEvent, traffic);

// A multiple of 8, as the ring keeps records aligned.
const _: () = assert!(SOCK_EVENT_HEAD == 136);

/// One socket held open by a process, as the socket-file iterator writes
/// it: the seed's owner scan (`/proc/*/fd` without a readlink per fd).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketFd {
    /// Inode of the socket (what `/proc/PID/fd/N` shows as `socket:[N]`).
    pub inode: u64,
    /// Thread-group id of the process holding the descriptor.
    pub tgid: u32,
    pub fd: u32,
    /// The process's command (the group leader's `comm`).
    pub comm: Bytes16,
}

const _: () = assert!(size_of::<SocketFd>() == 32);

/// Slots of the per-CPU counter array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Ring-buffer reservations that failed: events the agent never saw.
    LostEvents = 0,
    /// Sockets whose traffic could not be counted: `TRAFFIC` was full.
    TrafficFull = 1,
}

/// Number of slots in the counter array.
pub const COUNTER_SLOTS: u32 = 2;

#[cfg(feature = "user")]
mod pod {
    // SAFETY (each): plain-old-data records that cross the kernel boundary:
    // repr(C), integers and byte arrays only, no padding (sizes pinned by
    // const assertions), so every bit pattern is a valid value.
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SocketFd {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::KernelOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::Traffic {}
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    /// `ALL` is what every name and export kind is derived from: it must
    /// hold each kind the wire can carry, in wire order.
    #[test]
    fn all_is_every_kind_in_wire_order() {
        let decodable = (0..=u8::MAX).filter_map(EventKind::from_u8).count();
        assert_eq!(decodable, EventKind::ALL.len());
        for (i, k) in EventKind::ALL.into_iter().enumerate() {
            assert_eq!(EventKind::from_u8(i as u8), Some(k));
        }
    }
}
