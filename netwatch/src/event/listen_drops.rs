//! `listen_drop` events: a TCP listener dropped SYNs or completed
//! handshakes since its counter was last read.
//!
//! The kernel counts these drops on the listener itself: `tcp_listendrop()`
//! (include/net/tcp.h) adds one to the listener's `sk_drops` for every SYN
//! or handshake it refuses (accept queue full, SYN queue full without
//! syncookies, no memory), where it also counts the namespace's TcpExt
//! ListenDrops. sock_diag reports that counter in `INET_DIAG_SKMEMINFO`
//! (`ss -tlm` prints it as `d<N>`). No tracepoint marks the drop itself (a
//! SYN refused by a full accept queue is freed as consumed, not dropped),
//! so the agent reads the counters, a dump of LISTEN sockets only, and
//! turns each rise into an event.

use std::{collections::HashMap, io, net::SocketAddr};

use netwatch_common::{tcp, EventKind, OwnerSource, Traffic};

use super::{Comm, Event};
use crate::{
    seed::{diag::DiagSocket, OtherNamespaces, Tracked},
    socket::{Family, Proto, TcpState},
};

/// One listener's drop counter now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub netns: u32,
    pub local: SocketAddr,
    /// Tells a listener from a later one on the same address.
    pub cookie: u64,
    pub drops: u64,
}

/// Appends the drop counter of every TCP listener in namespace `ns`, read
/// through `diag` (a sock_diag socket of that namespace, asking for
/// figures): the kernel walks its listener hash only.
pub fn read(diag: &DiagSocket, ns: u32, out: &mut Vec<Sample>) -> io::Result<()> {
    let mut socks = Vec::new();
    for family in [Family::V4, Family::V6] {
        diag.dump_states(Proto::Tcp, family, 1 << tcp::LISTEN, ns, &mut socks)?;
    }
    out.extend(socks.into_iter().filter_map(|s| {
        Some(Sample { netns: s.netns, local: s.local, cookie: s.cookie?, drops: u64::from(s.figures?.drops?) })
    }));
    Ok(())
}

/// Turns successive readings into events.
#[derive(Debug, Default)]
pub struct Watch {
    /// Each listener's namespace and counter at the last reading, by cookie.
    last: rustc_hash::FxHashMap<u64, (u32, u64)>,
    /// When the first reading, the baseline, was taken: what a listener
    /// dropped before it is no event.
    since_ns: Option<u64>,
}

impl Watch {
    /// An event for each listener whose counter rose since the last
    /// reading, at `ts_ns` (CLOCK_MONOTONIC), carrying the rise in its
    /// totals' `drops`. A listener missing from `samples` is forgotten,
    /// unless its namespace is one of `unread` (its read failed this time).
    /// A listener not read before counts from zero when it was opened
    /// after the baseline; `opened_ns(cookie)` says when, as the caller's
    /// model knows it: `Some(None)` for a socket older than netwatch,
    /// `None` for one the model has not seen yet (so newer than its seed).
    /// The events name no owner yet: the model lends its listener's.
    pub fn events(
        &mut self,
        samples: &[Sample],
        unread: &[u32],
        ts_ns: u64,
        opened_ns: impl Fn(u64) -> Option<Option<u64>>,
    ) -> Vec<Event> {
        let since = *self.since_ns.get_or_insert(ts_ns);
        let mut out = Vec::new();
        let mut now = rustc_hash::FxHashMap::with_capacity_and_hasher(samples.len(), Default::default());
        for s in samples {
            let before = self.last.get(&s.cookie).map(|&(_, drops)| drops).or_else(|| {
                let new = ts_ns > since && opened_ns(s.cookie).is_none_or(|at| at.is_some_and(|at| at >= since));
                new.then_some(0)
            });
            if let Some(rose) = before.map(|b| s.drops.saturating_sub(b)).filter(|&r| r > 0) {
                out.push(event(s, rose, ts_ns));
            }
            now.insert(s.cookie, (s.netns, s.drops));
        }
        if !unread.is_empty() {
            now.extend(self.last.iter().filter(|(_, (ns, _))| unread.contains(ns)));
        }
        self.last = now;
        out
    }
}

/// Appends every listener of each namespace in `others`; returns those
/// whose read failed (none of their listeners is then in `out`).
pub fn read_others(others: &OtherNamespaces, out: &mut Vec<Sample>) -> Vec<u32> {
    let mut unread = Vec::new();
    for (ns, diag) in others.sockets() {
        let start = out.len();
        if read(diag, ns, out).is_err() {
            out.truncate(start);
            unread.push(ns);
        }
    }
    unread
}

/// The listeners' drop counters for `events`: those of netwatch's own
/// namespace, and those of every other namespace with a listener in the
/// model (a container's), as serve reads them (`serve::listen_drops`).
pub struct Listeners {
    own: DiagSocket,
    others: OtherNamespaces,
    watch: Watch,
}

impl Listeners {
    /// Opens sock_diag and takes the baseline reading of the listeners in
    /// netwatch's namespace and in each of `namespaces` (as
    /// [`Self::poll`]); with the namespaces that could not be entered.
    pub fn open(namespaces: &HashMap<u32, Vec<u32>>) -> io::Result<(Self, Vec<String>)> {
        let own = DiagSocket::open()?.with_figures();
        let mut listeners = Self { own, others: OtherNamespaces::default(), watch: Watch::default() };
        let (_, warnings) = listeners.poll(namespaces, |_| None)?;
        Ok((listeners, warnings))
    }

    /// The events for what the listeners dropped since the last call
    /// (`opened_ns` as for [`Watch::events`]), reading the namespaces of
    /// `namespaces` (each with a listener, with its owners' PIDs: the way
    /// in); with the namespaces that could not be entered, said once each.
    /// An error only for netwatch's own namespace.
    pub fn poll(
        &mut self,
        namespaces: &HashMap<u32, Vec<u32>>,
        opened_ns: impl Fn(u64) -> Option<Option<u64>>,
    ) -> io::Result<(Vec<Event>, Vec<String>)> {
        let Tracked { warnings, .. } = self.others.track(namespaces);
        let mut samples = Vec::new();
        read(&self.own, self.others.own(), &mut samples)?;
        let unread = read_others(&self.others, &mut samples);
        Ok((self.watch.events(&samples, &unread, super::clock::monotonic_ns(), opened_ns), warnings))
    }
}

fn event(s: &Sample, rose: u64, ts_ns: u64) -> Event {
    let (family, unspecified) = match s.local {
        SocketAddr::V4(_) => (Family::V4, SocketAddr::from(([0u8; 4], 0))),
        SocketAddr::V6(_) => (Family::V6, SocketAddr::from(([0u16; 8], 0))),
    };
    Event {
        kind: EventKind::ListenDrop,
        ts_ns,
        start_ns: None,
        cookie: s.cookie,
        inode: 0,
        family,
        local: s.local,
        remote: unspecified,
        pid: 0,
        comm: Comm::default(),
        uid: 0,
        netns: s.netns,
        old_state: TcpState::Listen,
        new_state: TcpState::Listen,
        owner: OwnerSource::Unknown,
        traffic: Traffic { drops: u32::try_from(rose).unwrap_or(u32::MAX), ..Traffic::ZERO },
        thread: None,
        accepted: None,
        cgroup: 0,
        workload: None,
        rhost: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(cookie: u64, port: u16, drops: u64) -> Sample {
        Sample { netns: 7, local: SocketAddr::from(([127, 0, 0, 1], port)), cookie, drops }
    }

    fn rises(events: &[Event]) -> Vec<(u64, u16, u32)> {
        events.iter().map(|e| (e.cookie, e.local.port(), e.traffic.drops)).collect()
    }

    /// What the model knows of the listeners in these tests: 5 and 6 are
    /// older than netwatch, 3 was opened at 15, the rest it has not seen.
    fn opened(cookie: u64) -> Option<Option<u64>> {
        match cookie {
            5 | 6 => Some(None),
            3 => Some(Some(15)),
            _ => None,
        }
    }

    #[test]
    fn the_first_reading_is_the_baseline_and_each_rise_one_event() {
        let mut w = Watch::default();
        assert!(w.events(&[s(1, 80, 40), s(2, 22, 0)], &[], 10, opened).is_empty());
        assert!(w.events(&[s(1, 80, 40), s(2, 22, 0)], &[], 20, opened).is_empty());
        let e = w.events(&[s(1, 80, 43), s(2, 22, 1)], &[], 30, opened);
        assert_eq!(rises(&e), [(1, 80, 3), (2, 22, 1)]);
        assert_eq!(e[0].kind, EventKind::ListenDrop);
        assert_eq!((e[0].ts_ns, e[0].netns, e[0].new_state), (30, 7, TcpState::Listen));
        assert!(e[0].remote.ip().is_unspecified() && e[0].remote.port() == 0);
    }

    #[test]
    fn a_listener_of_a_namespace_that_could_not_be_read_is_kept() {
        let mut w = Watch::default();
        assert!(w.events(&[s(1, 80, 5)], &[], 10, opened).is_empty());
        // Namespace 7 failed to read: 1 is kept with its count...
        assert!(w.events(&[], &[7], 20, opened).is_empty());
        // ...so only its rise since then is an event, though the model has
        // never seen it open (which would count all 8 as new).
        assert_eq!(rises(&w.events(&[s(1, 80, 8)], &[], 30, opened)), [(1, 80, 3)]);
        // A namespace read and without it: forgotten.
        assert!(w.events(&[], &[9], 40, opened).is_empty());
        assert!(w.last.is_empty());
    }

    #[test]
    fn a_listener_first_seen_later_counts_from_zero_only_when_opened_later() {
        let mut w = Watch::default();
        assert!(w.events(&[s(1, 80, 5)], &[], 10, opened).is_empty());
        // 3 was opened after the baseline: all it dropped is new; so is
        // what 4 dropped, which the model has not seen open yet (a seed
        // would have had it). 6, older than netwatch, was missing from the
        // baseline reading: its count then is its baseline.
        let e = w.events(&[s(1, 80, 5), s(3, 8080, 2), s(4, 81, 1), s(6, 82, 9)], &[], 20, opened);
        assert_eq!(rises(&e), [(3, 8080, 2), (4, 81, 1)]);
        assert_eq!(rises(&w.events(&[s(1, 80, 5), s(6, 82, 11)], &[], 30, opened)), [(6, 82, 2)]);
        // 1 closed; a new listener on its port is another cookie.
        assert_eq!(rises(&w.events(&[s(7, 80, 1)], &[], 40, opened)), [(7, 80, 1)]);
        assert!(!w.last.contains_key(&1));
    }

    #[test]
    fn an_ipv6_listener_has_an_ipv6_unspecified_remote() {
        let mut w = Watch::default();
        w.events(&[], &[], 0, opened);
        let l = Sample { netns: 1, local: "[::1]:443".parse().unwrap(), cookie: 9, drops: 2 };
        let e = w.events(&[l], &[], 5, opened);
        assert_eq!(e[0].family, Family::V6);
        assert_eq!(e[0].remote, "[::]:0".parse::<SocketAddr>().unwrap());
    }
}
