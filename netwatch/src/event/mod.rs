//! Turning raw kernel records into events: pure functions, unit tested.

pub mod clock;
pub mod listen_drops;
pub mod listeners;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{bail, Result};
use netwatch_common::{
    tcp::{AF_INET, AF_INET6},
    EventKind, OwnerSource, SockEvent, Traffic, SOCK_EVENT_HEAD,
};

pub use crate::socket::Comm;
use crate::socket::{Family, TcpState};

/// Reads one ring-buffer record: a whole [`SockEvent`], or its head alone
/// (every event without traffic totals), whose totals are then zero. The
/// ring only guarantees 8-byte alignment and the length of what was
/// written, so both are checked here rather than trusted.
pub fn decode(bytes: &[u8]) -> Result<SockEvent> {
    let len = bytes.len();
    if len != size_of::<SockEvent>() && len != SOCK_EVENT_HEAD {
        bail!("ring buffer record of {len} bytes, expected {} or {SOCK_EVENT_HEAD}", size_of::<SockEvent>());
    }
    let mut out = std::mem::MaybeUninit::<SockEvent>::zeroed();
    // SAFETY: at most size_of::<SockEvent>() bytes into a zeroed SockEvent,
    // plain data valid for any bits.
    Ok(unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), len);
        out.assume_init()
    })
}

/// Turns ring-buffer records into typed events. What an event lacks is then
/// completed by the connection table (`Table::complete_and_apply`), the one
/// per-socket state every consumer of the stream shares.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Listener owners, lent to passive children (before the table lends
    /// the child's own to its later events).
    pub listeners: listeners::ListenerOwners,
    /// [`final_totals`] of the batch being decoded.
    final_totals: rustc_hash::FxHashMap<u64, Traffic>,
    /// Cookies of the latest `ConnectFailed` events (see [`Decoder::decode`]).
    failed_connects: std::collections::VecDeque<u64>,
}

/// How many recent failed connects [`Decoder`] remembers: a blocking
/// connect's `connect_error` follows its `connect_failed` within the same
/// system call, so only a burst of this many other failures in between
/// could let a duplicate through.
const FAILED_CONNECTS_KEPT: usize = 256;

impl Decoder {
    /// Call before decoding a batch's records (see [`final_totals`]).
    pub fn start_batch(&mut self, records: &[SockEvent]) {
        self.final_totals = final_totals(records);
    }

    /// `None` for a record no event can be made of (unknown kind, family
    /// or state).
    pub fn decode(&mut self, r: &SockEvent) -> Option<Event> {
        let mut e = Event::from_record(r)?;
        match e.kind {
            EventKind::ConnectFailed => {
                if self.failed_connects.len() == FAILED_CONNECTS_KEPT {
                    self.failed_connects.pop_front();
                }
                self.failed_connects.push_back(e.cookie);
            }
            // A blocking connect() that the TCP state machine failed
            // (refused, timed out) returns that error too: the failure was
            // reported already, with its reason, as `connect_failed`.
            EventKind::ConnectError if e.cookie != 0 && self.failed_connects.contains(&e.cookie) => return None,
            _ => {}
        }
        self.listeners.observe(&mut e);
        if matches!(e.kind, EventKind::Close | EventKind::ConnectFailed) {
            if let Some(t) = self.final_totals.get(&e.cookie) {
                e.traffic = e.traffic.after_close(t);
            }
        }
        Some(e)
    }
}

/// The final traffic totals that `Destroy` records of a batch carry, by
/// cookie. An abortive close sends its RST after the `-> CLOSE` event, so a
/// close event takes its totals from its socket's destroy when that came in
/// the same batch (it almost always does: both happen in one close()).
pub fn final_totals(records: &[SockEvent]) -> rustc_hash::FxHashMap<u64, Traffic> {
    records
        .iter()
        .filter(|r| r.kind == EventKind::Destroy as u8 && r.traffic != Traffic::ZERO)
        .map(|r| (r.cookie, r.traffic))
        .collect()
}

/// A decoded socket event with owned, typed fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// When the owner was recorded; `None` for sockets older than netwatch.
    pub start_ns: Option<u64>,
    pub cookie: u64,
    /// 0 while no file holds the socket.
    pub inode: u64,
    pub family: Family,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub pid: u32,
    pub comm: Comm,
    pub uid: u32,
    pub netns: u32,
    pub old_state: TcpState,
    pub new_state: TcpState,
    pub owner: OwnerSource,
    /// Totals on `Close`, `ConnectFailed` and `UdpClose`; zero otherwise.
    pub traffic: Traffic,
    /// The thread the event ran in, where it ran in a process's context
    /// (`pid`/`comm` are then its process and the process's name).
    pub thread: Option<Thread>,
    /// What `accept()` returned, on `Accept` events.
    pub accepted: Option<Accepted>,
    /// The owner's cgroup v2 id: from the kernel in the owner's own system
    /// call, else the owner's as the workload resolver knows it; 0 unknown.
    pub cgroup: u64,
    /// Where the owner runs, once resolved (`crate::workload`).
    pub workload: Option<crate::workload::Workload>,
    /// The name the socket's namespace resolved for the remote address
    /// (`crate::names`), set by the table.
    pub rhost: Option<std::sync::Arc<str>>,
}

/// The thread an event ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thread {
    pub tid: u32,
    /// The thread's own name (`prctl(PR_SET_NAME)`, `pthread_setname_np`).
    pub name: Comm,
}

/// An `Accept` event's own facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The descriptor `accept()` returned.
    pub fd: u32,
    /// How long the connection waited in the accept queue: from its
    /// handshake (the socket's start) to this `accept()`; `None` where the
    /// start is unknown (a connection older than netwatch).
    pub queued_ns: Option<u64>,
}

impl Event {
    pub fn from_record(r: &SockEvent) -> Option<Self> {
        let family = match r.family {
            AF_INET => Family::V4,
            AF_INET6 => Family::V6,
            _ => return None,
        };
        let kind = EventKind::from_u8(r.kind)?;
        Some(Self {
            kind,
            ts_ns: r.ts_ns,
            start_ns: (r.start_ns != 0).then_some(r.start_ns),
            cookie: r.cookie,
            inode: r.inode,
            family,
            local: SocketAddr::new(ip(family, &r.saddr.0), r.sport),
            remote: SocketAddr::new(ip(family, &r.daddr.0), r.dport),
            pid: r.pid,
            comm: Comm(r.comm.0),
            uid: r.uid,
            netns: r.netns,
            old_state: TcpState::from_u8(r.old_state)?,
            new_state: TcpState::from_u8(r.new_state)?,
            owner: OwnerSource::from_u8(r.owner_source),
            traffic: r.traffic,
            thread: (r.tid != 0).then_some(Thread { tid: r.tid, name: Comm(r.thread.0) }),
            accepted: u32::try_from(r.fd)
                .ok()
                .filter(|_| kind == EventKind::Accept)
                .map(|fd| Accepted { fd, queued_ns: None }),
            cgroup: r.cgroup,
            workload: None,
            rhost: None,
        })
    }

    /// Fills in what the kernel sends only with a socket's birth and
    /// accept (see `Table::complete_and_apply`), from what its earlier events said: the
    /// owner (pid, name, uid and how it was learnt) while the event has
    /// none, the start and the inode. What the event carries is kept.
    pub fn lend(&mut self, owner: Option<(u32, Comm, u32, OwnerSource)>, start_ns: Option<u64>, inode: u64) {
        if self.pid == 0 {
            if let Some((pid, comm, uid, source)) = owner {
                (self.pid, self.comm, self.uid, self.owner) = (pid, comm, uid, source);
            }
        }
        if self.start_ns.is_none() {
            self.start_ns = start_ns;
        }
        if self.inode == 0 {
            self.inode = inode;
        }
        if let Some(a) = &mut self.accepted {
            a.queued_ns = self.start_ns.map(|s| self.ts_ns.saturating_sub(s));
        }
    }

    /// The connection's lifetime so far, when its start is known.
    pub fn duration_ns(&self) -> Option<u64> {
        self.start_ns.map(|s| self.ts_ns.saturating_sub(s))
    }

    /// The socket's lifetime, on the events that end one (where it is
    /// known): what every output prints as `duration_ms` or a lifetime.
    pub fn lifetime_ns(&self) -> Option<u64> {
        self.duration_ns().filter(|_| crate::output::json::has_totals(self.kind))
    }
}

fn ip(family: Family, raw: &[u8; 16]) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(*raw)),
    }
}

/// Formats an address for display: IPv4-mapped IPv6 shown as IPv4.
pub fn display_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A test event: `kind`, `old` to `new`, on a loopback IPv4 connection
/// (127.0.0.1:40000 to 127.0.0.1:80) of pid 1 "curl" in netns 1, cookie
/// 1, at 1 s, opened at 0.5 s; everything else zero or absent. Tests set
/// what they look at (`Event { pid: 7, ..fixture(...) }`).
#[cfg(test)]
pub(crate) fn fixture(kind: EventKind, old: TcpState, new: TcpState) -> Event {
    Event {
        kind,
        ts_ns: 1_000_000_000,
        start_ns: Some(500_000_000),
        cookie: 1,
        inode: 0,
        family: Family::V4,
        local: SocketAddr::from(([127, 0, 0, 1], 40000)),
        remote: SocketAddr::from(([127, 0, 0, 1], 80)),
        pid: 1,
        comm: Comm::new("curl"),
        uid: 0,
        netns: 1,
        old_state: old,
        new_state: new,
        owner: OwnerSource::Current,
        traffic: Traffic::ZERO,
        thread: None,
        accepted: None,
        cgroup: 0,
        workload: None,
        rhost: None,
    }
}

/// [`fixture`] with the states as the kernel's numbers (`netwatch_common::tcp`).
#[cfg(test)]
pub(crate) fn fixture_of(kind: EventKind, old: u8, new: u8) -> Event {
    let state = |s| TcpState::from_u8(s).expect("a TCP state");
    fixture(kind, state(old), state(new))
}

#[cfg(test)]
mod tests {
    use netwatch_common::{tcp, Bytes16};

    use super::*;
    use crate::filter::Subject as _;

    pub fn record() -> SockEvent {
        let mut saddr = Bytes16::ZERO;
        saddr.0[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut comm = Bytes16::ZERO;
        comm.0[..4].copy_from_slice(b"curl");
        SockEvent {
            ts_ns: 5_000_000,
            start_ns: 2_000_000,
            cookie: 77,
            inode: 4242,
            saddr,
            daddr: saddr,
            comm,
            pid: 1234,
            uid: 1000,
            netns: 4026531840,
            sport: 40000,
            dport: 8080,
            family: AF_INET,
            kind: EventKind::Close as u8,
            old_state: tcp::FIN_WAIT2,
            new_state: tcp::CLOSE,
            owner_source: OwnerSource::Current as u8,
            _pad: 0,
            thread: comm,
            tid: 1235,
            fd: -1,
            cgroup: 0,
            traffic: Traffic::ZERO,
        }
    }

    #[test]
    fn decode_checks_length_and_reads_unaligned() {
        let r = record();
        let mut buf = vec![0u8; size_of::<SockEvent>() + 1];
        // SAFETY: copying a plain-data record into a byte buffer at offset 1.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const r).cast::<u8>(), buf.as_mut_ptr().add(1), size_of::<SockEvent>())
        };
        assert_eq!(decode(&buf[1..]).unwrap(), r);
        assert!(decode(&buf).is_err());
        assert!(decode(&buf[..10]).is_err());
    }

    #[test]
    fn a_head_alone_decodes_with_zero_totals() {
        let mut r = record();
        r.traffic.tx_bytes = 99;
        // SAFETY: viewing a plain-data record as bytes.
        let bytes = unsafe { std::slice::from_raw_parts((&raw const r).cast::<u8>(), size_of::<SockEvent>()) };
        let head = decode(&bytes[..SOCK_EVENT_HEAD]).unwrap();
        assert_eq!(head, SockEvent { traffic: Traffic::ZERO, ..r });
        assert_eq!(decode(bytes).unwrap().traffic.tx_bytes, 99);
        assert!(decode(&bytes[..SOCK_EVENT_HEAD + 8]).is_err());
    }

    #[test]
    fn ipv4_record_becomes_typed_event() {
        let e = Event::from_record(&record()).unwrap();
        assert_eq!(e.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(e.remote, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.comm.as_str(), "curl");
        assert_eq!(e.kind, EventKind::Close);
        assert_eq!(e.duration_ns(), Some(3_000_000));
        assert_eq!((e.old_state.name(), e.new_state.name()), ("FIN_WAIT2", "CLOSE"));
        assert!(e.ipv4_traffic());
    }

    #[test]
    fn thread_and_accept_fields() {
        let mut r = record();
        let e = Event::from_record(&r).unwrap();
        assert_eq!(e.thread, Some(Thread { tid: 1235, name: Comm::new("curl") }));
        assert_eq!(e.accepted, None);
        // Not in a process's context: no thread.
        r.tid = 0;
        assert_eq!(Event::from_record(&r).unwrap().thread, None);
        r.kind = EventKind::Accept as u8;
        r.fd = 7;
        r.start_ns = 0;
        let mut e = Event::from_record(&r).unwrap();
        assert_eq!(e.accepted, Some(Accepted { fd: 7, queued_ns: None }));
        // The handshake's start, lent by the table, gives the wait.
        e.lend(None, Some(4_000_000), 0);
        assert_eq!(e.accepted.unwrap().queued_ns, Some(1_000_000));
        // Only an accept carries a descriptor.
        r.kind = EventKind::State as u8;
        assert_eq!(Event::from_record(&r).unwrap().accepted, None);
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let mut r = record();
        r.family = AF_INET6;
        r.saddr = Bytes16(Ipv6Addr::LOCALHOST.octets());
        r.daddr = Bytes16("::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets());
        let e = Event::from_record(&r).unwrap();
        assert_eq!(e.local.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(display_ip(e.remote.ip()), "10.1.2.3".parse::<IpAddr>().unwrap());
        assert!(e.ipv4_traffic());
        r.daddr = Bytes16(Ipv6Addr::LOCALHOST.octets());
        assert!(!Event::from_record(&r).unwrap().ipv4_traffic());
    }

    #[test]
    fn close_takes_the_final_totals_of_its_destroy_in_the_same_batch() {
        // The close has the payload (the socket's own counters); the
        // destroy, after an abortive close zeroed those, only the reset.
        let mut close = record();
        close.traffic.tx_bytes = 1000;
        let mut destroy = record();
        destroy.kind = EventKind::Destroy as u8;
        destroy.traffic.resets_sent = 1;
        let mut other = record();
        other.cookie = 78;
        let mut d = Decoder::default();
        d.start_batch(&[close, destroy, other]);
        let e = d.decode(&close).unwrap();
        assert_eq!((e.traffic.tx_bytes, e.traffic.resets_sent), (1000, 1));
        assert_eq!(d.decode(&other).unwrap().traffic, Traffic::ZERO);
        // Another batch: nothing carried over.
        d.start_batch(&[close]);
        assert_eq!(d.decode(&close).unwrap().traffic.resets_sent, 0);
    }

    #[test]
    fn a_connect_error_after_its_connect_failed_is_dropped() {
        let mut failed = record();
        failed.kind = EventKind::ConnectFailed as u8;
        let mut error = record();
        error.kind = EventKind::ConnectError as u8;
        let mut d = Decoder::default();
        assert!(d.decode(&failed).is_some());
        assert!(d.decode(&error).is_none());
        // Another socket's, or one without a cookie: reported.
        error.cookie = 78;
        assert_eq!(d.decode(&error).unwrap().kind, EventKind::ConnectError);
        error.cookie = 0;
        assert!(d.decode(&error).is_some());
    }

    #[test]
    fn unknown_start_and_bad_fields() {
        let mut r = record();
        r.start_ns = 0;
        assert_eq!(Event::from_record(&r).unwrap().duration_ns(), None);
        r.family = 1;
        assert!(Event::from_record(&r).is_none());
        let mut r = record();
        r.kind = 200;
        assert!(Event::from_record(&r).is_none());
        let mut r = record();
        r.new_state = 200;
        assert!(Event::from_record(&r).is_none());
    }
}
