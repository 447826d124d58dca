//! Who is that: the name a namespace resolved for an address, from the DNS
//! answers the kernel saw delivered there (the eBPF crate's `dns`), never
//! from reverse DNS and never by asking anyone.
//!
//! Each answer maps its addresses to the name that was asked about (the
//! question's name, through any CNAME chain), in the namespace of the
//! socket that received it, for as long as its TTL says (and at least
//! [`GRACE_NS`], so the connection its asker makes right away is named even
//! after a TTL-0 answer). A connection is named by the answer that was
//! valid when it started, so every one of its events carries the same name,
//! however long it lives. The map holds a bounded number of addresses at
//! most ([`DEFAULT_CAPACITY`]); the entry updated longest ago goes first, counted in
//! [`Names::evictions`].

pub(crate) mod parse;

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use netwatch_common::{dns::PROTO_TCP, DnsEvent};
use rustc_hash::FxHashMap;

use crate::event::Event;

/// How long past its TTL an answer still names a new connection.
pub const GRACE_NS: u64 = 1_000_000_000;
/// Addresses held by default: about 1.5 MiB with names of 40 bytes.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// What `events` says on stderr when `n` answers were lost.
pub fn lost_warning(n: u64) -> String {
    format!(
        "{n} DNS answers lost: the kernel's DNS ring buffer was full, so connections to the addresses they named \
         carry no rhost"
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    name: Arc<str>,
    /// CLOCK_MONOTONIC ns until which a new connection takes the name.
    until_ns: u64,
    /// Key of this entry in `Names::order`.
    seq: u64,
}

/// Address-to-name map, per network namespace.
#[derive(Debug)]
pub struct Names {
    by_addr: FxHashMap<(u32, IpAddr), Entry>,
    /// Entries by when they were last written: the first goes first.
    order: BTreeMap<u64, (u32, IpAddr)>,
    next_seq: u64,
    capacity: usize,
    /// Entries dropped to make room, since start.
    pub evictions: u64,
    /// DNS answers that named at least one address, since start.
    pub answers: u64,
    /// DNS answers the kernel could not hand over (its ring was full),
    /// since start: the addresses they named have no name here.
    pub lost: u64,
}

impl Default for Names {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Names {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            by_addr: FxHashMap::default(),
            order: BTreeMap::new(),
            next_seq: 0,
            capacity: capacity.max(1),
            evictions: 0,
            answers: 0,
            lost: 0,
        }
    }

    /// Addresses held now.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Takes in the answers among `records` (anything else is skipped).
    pub fn learn(&mut self, records: &[DnsEvent]) {
        for r in records {
            let data = &r.payload[..usize::from(r.len).min(r.payload.len())];
            if r.protocol == PROTO_TCP {
                for msg in parse::tcp_messages(data) {
                    self.learn_one(r, msg);
                }
            } else {
                self.learn_one(r, data);
            }
        }
    }

    fn learn_one(&mut self, r: &DnsEvent, msg: &[u8]) {
        if let Some(a) = parse::answer(msg) {
            self.insert(r.netns, &a, r.ts_ns);
        }
    }

    /// Maps each address of `a`, as seen in `netns` at `ts_ns`.
    pub fn insert(&mut self, netns: u32, a: &parse::Answer, ts_ns: u64) {
        self.answers += 1;
        let name: Arc<str> = Arc::from(a.name.as_str());
        for &(ip, ttl) in &a.addrs {
            let until_ns = ts_ns.saturating_add(u64::from(ttl) * 1_000_000_000).saturating_add(GRACE_NS);
            let key = (netns, ip.to_canonical());
            let seq = self.next_seq;
            self.next_seq += 1;
            let entry = Entry { name: name.clone(), until_ns, seq };
            match self.by_addr.insert(key, entry) {
                Some(old) => {
                    self.order.remove(&old.seq);
                }
                None if self.by_addr.len() > self.capacity => self.evict_oldest(),
                None => {}
            }
            self.order.insert(seq, key);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.by_addr.remove(&key);
            self.evictions += 1;
        }
    }

    /// The name `netns` resolved for `ip`, if an answer for it was valid
    /// at `at_ns`.
    pub fn name(&self, netns: u32, ip: IpAddr, at_ns: u64) -> Option<Arc<str>> {
        let e = self.by_addr.get(&(netns, ip.to_canonical()))?;
        (at_ns <= e.until_ns).then(|| e.name.clone())
    }

    /// The name of `e`'s remote end, as of the connection's start (its
    /// event's time where the start is unknown).
    pub fn remote_name(&self, e: &Event) -> Option<Arc<str>> {
        let ip = e.remote.ip();
        if ip.is_unspecified() || self.by_addr.is_empty() {
            return None;
        }
        self.name(e.netns, ip, e.start_ns.unwrap_or(e.ts_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::{parse::Answer, *};

    const S: u64 = 1_000_000_000;

    fn answer(name: &str, addrs: &[(&str, u32)]) -> Answer {
        Answer { name: name.into(), addrs: addrs.iter().map(|(ip, ttl)| (ip.parse().unwrap(), *ttl)).collect() }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_namespace_and_by_ttl() {
        let mut n = Names::default();
        n.insert(7, &answer("a.test", &[("127.0.0.77", 30)]), 10 * S);
        assert_eq!(n.name(7, ip("127.0.0.77"), 11 * S).as_deref(), Some("a.test"));
        // Another namespace asked nothing.
        assert_eq!(n.name(8, ip("127.0.0.77"), 11 * S), None);
        // Valid for the TTL and the grace, not after.
        assert!(n.name(7, ip("127.0.0.77"), 41 * S).is_some());
        assert_eq!(n.name(7, ip("127.0.0.77"), 41 * S + 1), None);
        // A mapped address is the same address.
        assert_eq!(n.name(7, ip("::ffff:127.0.0.77"), 11 * S).as_deref(), Some("a.test"));
    }

    #[test]
    fn a_ttl_zero_answer_names_only_what_follows_at_once() {
        let mut n = Names::default();
        n.insert(7, &answer("z.test", &[("10.0.0.1", 0)]), 10 * S);
        assert!(n.name(7, ip("10.0.0.1"), 10 * S + GRACE_NS / 2).is_some());
        assert_eq!(n.name(7, ip("10.0.0.1"), 12 * S), None);
    }

    #[test]
    fn the_latest_answer_wins() {
        let mut n = Names::default();
        n.insert(7, &answer("old.test", &[("10.0.0.1", 30)]), S);
        n.insert(7, &answer("new.test", &[("10.0.0.1", 30)]), 2 * S);
        assert_eq!(n.name(7, ip("10.0.0.1"), 3 * S).as_deref(), Some("new.test"));
        assert_eq!((n.len(), n.evictions), (1, 0));
    }

    #[test]
    fn bounded_oldest_first_and_counted() {
        let mut n = Names::with_capacity(2);
        n.insert(1, &answer("a.test", &[("10.0.0.1", 30)]), S);
        n.insert(1, &answer("b.test", &[("10.0.0.2", 30)]), S);
        // Rewriting a makes b the oldest.
        n.insert(1, &answer("a.test", &[("10.0.0.1", 30)]), S);
        n.insert(1, &answer("c.test", &[("10.0.0.3", 30)]), S);
        assert_eq!((n.len(), n.evictions), (2, 1));
        assert_eq!(n.name(1, ip("10.0.0.2"), S), None);
        assert!(n.name(1, ip("10.0.0.1"), S).is_some() && n.name(1, ip("10.0.0.3"), S).is_some());
        assert_eq!(n.order.len(), 2);
    }

    /// A kernel record of `data`, taken in namespace 5 at `S`.
    fn record(ip_version: u8, protocol: u8, data: &[u8]) -> DnsEvent {
        let mut r =
            DnsEvent { ts_ns: S, cookie: 1, netns: 5, len: data.len() as u16, ip_version, protocol, payload: [0; 512] };
        r.payload[..data.len()].copy_from_slice(data);
        r
    }

    /// An answer naming `LABEL.test` 127.0.0.`last` for 30 s.
    fn msg(label: u8, last: u8) -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, label, 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1];
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, last]);
        m
    }

    #[test]
    fn learns_from_kernel_records() {
        let r = record(4, netwatch_common::dns::PROTO_UDP, &msg(b'k', 9));
        let mut bad = r;
        bad.len = 9999; // more than the payload: read as all of it
        let mut n = Names::default();
        n.learn(&[r, bad]);
        assert_eq!(n.name(5, ip("127.0.0.9"), S).as_deref(), Some("k.test"));
        assert_eq!(n.answers, 2);
    }

    /// Over TCP a record holds length-prefixed messages: each is learnt.
    #[test]
    fn learns_every_message_of_a_tcp_record() {
        let framed = |m: Vec<u8>| [(m.len() as u16).to_be_bytes().to_vec(), m].concat();
        let data = [framed(msg(b'a', 1)), framed(msg(b'b', 2))].concat();
        let mut n = Names::default();
        n.learn(&[record(6, PROTO_TCP, &data)]);
        assert_eq!(n.name(5, ip("127.0.0.1"), S).as_deref(), Some("a.test"));
        assert_eq!(n.name(5, ip("127.0.0.2"), S).as_deref(), Some("b.test"));
        assert_eq!(n.answers, 2);
        // The same bytes read as one UDP message: the length prefix makes
        // it no answer.
        let mut n = Names::default();
        n.learn(&[record(6, netwatch_common::dns::PROTO_UDP, &data)]);
        assert_eq!(n.answers, 0);
    }
}
