//! `--json`: one object per line; the schema is documented in docs/events.md
//! and shared by every JSON output netwatch has.

use std::io::{self, Write};

use netwatch_common::{EventKind, OwnerSource};
use serde::{Serialize, Serializer};

use super::{duration_ms, EventSink};
use crate::event::{
    clock::{SecondCache, WallClock},
    Event,
};
use crate::stream::Loss;

/// `key` (with its punctuation) and a value that needs no escaping: one of
/// netwatch's own names. Inlined so that each key's length is a constant
/// and its copy a few moves: `extend_from_slice` of a length only known at
/// run time is a call to libc's memmove, and those calls were a quarter of
/// the agent's CPU time under churn.
#[inline(always)]
fn raw(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    short(out, value.as_bytes());
}

/// Appends a short value of run-time length byte by byte (see [`raw`]).
#[inline(always)]
pub(super) fn short(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len());
    for &b in s {
        out.push(b);
    }
}

/// A process name as a JSON string: as is when it needs no escaping (the
/// usual case), through serde_json otherwise.
#[inline(always)]
fn comm(out: &mut Vec<u8>, name: &[u8]) -> io::Result<()> {
    if name.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.push(b'"');
        short(out, name);
        out.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(&mut *out, &*String::from_utf8_lossy(name)).map_err(io::Error::from)
}

/// A socket's traffic totals, in every JSON output that has them (the
/// docs/traffic.md documents how headers are counted).
#[derive(Serialize)]
pub struct JsonTraffic {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub tx_ip_bytes: u64,
    pub rx_ip_bytes: u64,
    pub retransmits: u32,
    pub resets_sent: u32,
    pub resets_received: u32,
}

impl From<&netwatch_common::Traffic> for JsonTraffic {
    fn from(t: &netwatch_common::Traffic) -> Self {
        Self {
            tx_bytes: t.tx_bytes,
            rx_bytes: t.rx_bytes,
            tx_packets: t.tx_packets,
            rx_packets: t.rx_packets,
            tx_ip_bytes: t.tx_ip_bytes,
            rx_ip_bytes: t.rx_ip_bytes,
            retransmits: t.retransmits,
            resets_sent: t.resets_sent,
            resets_received: t.resets_received,
        }
    }
}

/// Latency figures and failure reasons (`crate::why`), in every JSON output
/// that has them; each only where the event says it.
#[derive(Serialize, Default, Debug, PartialEq, Eq)]
pub struct JsonWhy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_latency_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_retransmits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srtt_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<std::borrow::Cow<'static, str>>,
    /// `tcp` or `udp`, on `connect_error` (the other events are TCP's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    /// Packets of this socket the kernel dropped, and the last one's
    /// reason (`skb:kfree_skb`), on events with totals, when any were; on
    /// `listen_drop`, the SYNs and handshakes the listener dropped since
    /// its last such event (no reason: the kernel keeps none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drops: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<std::borrow::Cow<'static, str>>,
    /// `drops` per reason name (`other`: reasons beyond the kernel's
    /// slots), on the same events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drops_by_reason: Option<DropsByReason>,
}

/// Reason name -> count, as a JSON object in name order
/// (`crate::probe::drops_by_reason`).
#[derive(Default, Debug, PartialEq, Eq)]
pub struct DropsByReason(pub Vec<(std::borrow::Cow<'static, str>, u64)>);

impl Serialize for DropsByReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (&**k, v)))
    }
}

impl JsonWhy {
    pub fn of(e: &Event) -> Self {
        let l = crate::why::latency(e);
        let f = crate::why::failure(e);
        let dropped = has_totals(e.kind) && e.traffic.drops != 0;
        Self {
            connect_latency_us: l.connect_us,
            handshake_us: l.handshake_us,
            syn_retransmits: l.syn_retransmits,
            srtt_us: l.srtt_us,
            reason: f.map(|f| f.reason.name()),
            errno: f.filter(|f| f.errno != 0).map(|f| crate::why::errno_name(f.errno)),
            protocol: (e.kind == EventKind::ConnectError)
                .then(|| crate::why::protocol_name(e.traffic.protocol))
                .flatten(),
            drops: (dropped || (e.kind == EventKind::ListenDrop && e.traffic.drops != 0)).then_some(e.traffic.drops),
            drop_reason: dropped.then(|| crate::probe::drop_reason_name(e.traffic.drop_reason)),
            drops_by_reason: dropped.then(|| {
                DropsByReason(
                    crate::probe::drops_by_reason(&e.traffic).into_iter().map(|(r, n)| (r, u64::from(n))).collect(),
                )
            }),
        }
    }
}

/// Whether an event of this kind carries the socket's final totals.
pub const fn has_totals(kind: EventKind) -> bool {
    matches!(kind, EventKind::Close | EventKind::ConnectFailed | EventKind::UdpClose)
}

/// [`has_totals`], when it is known: a TCP socket's totals come from its own
/// counters in the kernel, a UDP socket's only from the per-packet counters.
pub const fn totals_known(kind: EventKind, packet_counters: bool) -> bool {
    has_totals(kind) && (packet_counters || !matches!(kind, EventKind::UdpClose))
}

/// `.uuuuuuZ`: the fixed-width fraction of an RFC 3339 timestamp.
#[inline(always)]
fn micros(out: &mut Vec<u8>, us: u32) {
    let mut digits = [b'0'; 6];
    let mut v = us.min(999_999);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push(b'.');
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

#[inline(always)]
fn number(out: &mut Vec<u8>, n: &mut itoa::Buffer, key: &str, value: impl itoa::Integer) {
    out.extend_from_slice(key.as_bytes());
    short(out, n.format(value).as_bytes());
}

pub struct Json {
    seconds: SecondCache,
    packets: bool,
}

impl Json {
    /// With totals from the per-packet counters.
    pub fn new() -> Self {
        Self { seconds: SecondCache::new("%Y-%m-%dT%H:%M:%S", jiff::tz::TimeZone::UTC), packets: true }
    }

    /// Whether totals come from the per-packet counters (see [`fields`]).
    pub const fn packets(&self) -> bool {
        self.packets
    }

    /// Without per-packet counters only a TCP socket's own counters are
    /// known: a UDP close carries no totals, a TCP close no `*_ip_bytes`.
    pub fn without_packet_counters() -> Self {
        Self { packets: false, ..Self::new() }
    }
}

impl Default for Json {
    fn default() -> Self {
        Self::new()
    }
}

pub const fn owner_name(o: OwnerSource) -> &'static str {
    match o {
        OwnerSource::Unknown => "unknown",
        OwnerSource::Current => "process",
        OwnerSource::Listener => "listener",
        OwnerSource::Accept => "accept",
        OwnerSource::Proc => "proc",
    }
}

/// RFC 3339 in UTC with microseconds, for one-off timestamps.
pub fn rfc3339(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// JSON key -> OpenTelemetry semantic-convention attribute, for the keys
/// that have one (the OTLP export names the rest `netwatch.KEY`).
/// `saddr`/`sport` are the socket's local end, `daddr`/`dport` its remote
/// end, whichever side opened the connection (docs/serve.md#otlp).
pub const fn semconv(key: &str) -> Option<&'static str> {
    Some(match key.as_bytes() {
        b"pid" => "process.pid",
        b"comm" => "process.executable.name",
        b"uid" => "process.user.id",
        b"family" => "network.type",
        b"saddr" => "source.address",
        b"sport" => "source.port",
        b"daddr" => "destination.address",
        b"dport" => "destination.port",
        // The thread the event ran in (`accept()`, `connect()`...).
        b"tid" => "thread.id",
        b"thread" => "thread.name",
        // The owner's workload (cgroup -> container, pod), where known.
        b"container_id" => "container.id",
        b"container_name" => "container.name",
        b"pod_uid" => "k8s.pod.uid",
        _ => return None,
    })
}

/// The JSON keys that describe an event's owner (its process and that
/// process's workload) rather than the event: the OTLP export puts them on
/// the resource its records are grouped under, as the semantic conventions
/// have `process.*`, `container.*` and `k8s.*` (and as the collector's
/// `k8sattributes` processor looks for them), not on each record.
pub const fn describes_owner(key: &str) -> bool {
    matches!(
        key.as_bytes(),
        b"pid"
            | b"comm"
            | b"uid"
            | b"cgroup_id"
            | b"cgroup"
            | b"unit"
            | b"container_runtime"
            | b"container_id"
            | b"container_name"
            | b"pod_uid"
    )
}

/// One field of an event: its JSON key with the punctuation before its
/// value, and its OTLP attribute name, both made at compile time so that
/// neither writer looks anything up per field.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// `,"name":` (the first field's `{"ts":`).
    pub json: &'static str,
    /// The same with a string value's opening quote: one copy, not two.
    pub json_str: &'static str,
    /// The attribute name: [`semconv`]'s, else `netwatch.` and the key
    /// (one string, so the OTLP writer copies it in one go).
    pub attr: &'static str,
    /// [`describes_owner`]: an OTLP resource attribute, not a record's.
    pub owner: bool,
}

impl Key {
    /// `netwatch_name`: `netwatch.` and `name`, for a name without a
    /// semantic convention.
    const fn new(json: &'static str, json_str: &'static str, name: &'static str, netwatch_name: &'static str) -> Self {
        let attr = match semconv(name) {
            Some(s) => s,
            None => netwatch_name,
        };
        // The OTLP writer encodes the name's length as one byte.
        assert!(attr.len() < 128);
        Self { json, json_str, attr, owner: describes_owner(name) }
    }
}

/// The fields of an event, in the order `events --json` writes them.
pub mod key {
    use super::Key;

    macro_rules! keys {
        ($($k:ident),* $(,)?) => {
            $(
                #[expect(non_upper_case_globals, reason = "named as the JSON key, so a grep finds both")]
                pub const $k: Key = Key::new(
                    concat!(",\"", stringify!($k), "\":"),
                    concat!(",\"", stringify!($k), "\":\""),
                    stringify!($k),
                    concat!("netwatch.", stringify!($k)),
                );
            )*
            /// Every key but `ts`, for the tests.
            #[cfg(test)]
            pub const ALL: &[Key] = &[$($k),*];
        };
    }

    #[expect(non_upper_case_globals, reason = "named as the JSON key, so a grep finds both")]
    pub const ts: Key = Key::new("{\"ts\":", "{\"ts\":\"", "ts", "netwatch.ts");
    keys!(
        event,
        pid,
        comm,
        uid,
        family,
        saddr,
        sport,
        daddr,
        dport,
        old_state,
        new_state,
        netns,
        cookie,
        owner,
        duration_ms,
        tx_bytes,
        rx_bytes,
        tx_packets,
        rx_packets,
        tx_ip_bytes,
        rx_ip_bytes,
        retransmits,
        resets_sent,
        resets_received,
        tid,
        thread,
        fd,
        accept_queue_us,
        cgroup_id,
        cgroup,
        unit,
        container_runtime,
        container_id,
        container_name,
        pod_uid,
        connect_latency_us,
        handshake_us,
        syn_retransmits,
        srtt_us,
        reason,
        errno,
        protocol,
        drops,
        drop_reason,
        drops_by_reason,
        rhost,
    );
}

/// What an event's fields are written to: `events --json` ([`Json`]) and
/// the OTLP export's log records (serve/otlp/encode.rs). Both take them
/// from [`fields`], so a field added there reaches both.
pub trait Fields {
    fn ts(&mut self, key: Key, at: jiff::Timestamp);
    fn kind(&mut self, key: Key, kind: EventKind);
    fn family(&mut self, key: Key, family: crate::socket::Family);
    /// One of netwatch's own names: nothing to escape.
    fn name(&mut self, key: Key, value: &str);
    /// Text from outside netwatch (a process name, a path): escaped, and
    /// read as UTF-8 with replacement characters.
    fn text(&mut self, key: Key, value: &[u8]);
    fn u64(&mut self, key: Key, value: u64);
    fn f64(&mut self, key: Key, value: f64);
    fn ip(&mut self, key: Key, ip: std::net::IpAddr);
    /// Counts by name (an object in JSON, a key-value list in OTLP); the
    /// names are netwatch's or the kernel's (nothing to escape).
    fn counts(&mut self, key: Key, counts: &[(std::borrow::Cow<'static, str>, u64)]);

    /// [`Self::u64`], [`Self::name`] and [`Self::text`] of a field only
    /// some events have: nothing where it is `None`.
    #[inline(always)]
    fn opt_u64(&mut self, key: Key, value: Option<impl Into<u64>>) {
        if let Some(v) = value {
            self.u64(key, v.into());
        }
    }

    #[inline(always)]
    fn opt_name(&mut self, key: Key, value: Option<&str>) {
        if let Some(v) = value {
            self.name(key, v);
        }
    }

    #[inline(always)]
    fn opt_text(&mut self, key: Key, value: Option<&str>) {
        if let Some(v) = value {
            self.text(key, v.as_bytes());
        }
    }
}

/// The one list of an event's fields, in JSON order, each only where the
/// event has it (docs/events.md). `packets`: whether the per-packet
/// counters run (see [`Json::without_packet_counters`]).
#[inline(always)]
pub fn fields<W: Fields>(e: &Event, packets: bool, clock: &WallClock, w: &mut W) {
    use key as k;
    w.ts(k::ts, clock.at(e.ts_ns));
    w.kind(k::event, e.kind);
    w.u64(k::pid, e.pid.into());
    w.text(k::comm, e.comm.bytes());
    w.u64(k::uid, e.uid.into());
    w.family(k::family, e.family);
    w.ip(k::saddr, e.local.ip());
    w.u64(k::sport, e.local.port().into());
    w.ip(k::daddr, e.remote.ip());
    w.u64(k::dport, e.remote.port().into());
    w.name(k::old_state, e.old_state.name());
    w.name(k::new_state, e.new_state.name());
    w.u64(k::netns, e.netns.into());
    w.u64(k::cookie, e.cookie);
    w.name(k::owner, owner_name(e.owner));
    if let Some(ns) = e.lifetime_ns() {
        w.f64(k::duration_ms, duration_ms(ns));
    }
    if totals_known(e.kind, packets) {
        let t = &e.traffic;
        w.u64(k::tx_bytes, t.tx_bytes);
        w.u64(k::rx_bytes, t.rx_bytes);
        w.u64(k::tx_packets, t.tx_packets);
        w.u64(k::rx_packets, t.rx_packets);
        if packets {
            w.u64(k::tx_ip_bytes, t.tx_ip_bytes);
            w.u64(k::rx_ip_bytes, t.rx_ip_bytes);
        }
        w.u64(k::retransmits, t.retransmits.into());
        w.u64(k::resets_sent, t.resets_sent.into());
        w.u64(k::resets_received, t.resets_received.into());
    }
    if let Some(t) = &e.thread {
        w.u64(k::tid, t.tid.into());
        w.text(k::thread, t.name.bytes());
    }
    if let Some(a) = &e.accepted {
        w.u64(k::fd, a.fd.into());
        w.opt_u64(k::accept_queue_us, a.queued_ns.map(|q| q / 1000));
    }
    w.opt_u64(k::cgroup_id, (e.cgroup != 0).then_some(e.cgroup));
    if let Some(wl) = &e.workload {
        w.text(k::cgroup, wl.cgroup.as_bytes());
        w.opt_text(k::unit, wl.unit.as_deref());
        if let Some(c) = &wl.container {
            w.name(k::container_runtime, c.runtime.name());
            w.text(k::container_id, c.id.as_bytes());
            w.opt_text(k::container_name, c.name.as_deref());
        }
        w.opt_text(k::pod_uid, wl.pod_uid.as_deref());
    }
    let why = JsonWhy::of(e);
    w.opt_u64(k::connect_latency_us, why.connect_latency_us);
    w.opt_u64(k::handshake_us, why.handshake_us);
    w.opt_u64(k::syn_retransmits, why.syn_retransmits);
    w.opt_u64(k::srtt_us, why.srtt_us);
    w.opt_name(k::reason, why.reason);
    w.opt_name(k::errno, why.errno.as_deref());
    w.opt_name(k::protocol, why.protocol);
    w.opt_u64(k::drops, why.drops);
    w.opt_name(k::drop_reason, why.drop_reason.as_deref());
    if let Some(v) = &why.drops_by_reason {
        w.counts(k::drops_by_reason, &v.0);
    }
    w.opt_text(k::rhost, e.rhost.as_deref());
}

/// [`Fields`] as JSON text: each key's bytes a constant, each call inlined
/// into the one [`fields`] made for it.
struct Writer<'a> {
    out: Vec<u8>,
    seconds: &'a mut SecondCache,
    n: itoa::Buffer,
    /// Escaping through serde_json failed (it cannot, writing to a `Vec`).
    failed: Option<io::Error>,
}

impl Writer<'_> {
    #[inline(always)]
    fn quoted(&mut self, key: Key, value: &str) {
        raw(&mut self.out, key.json_str, value);
        self.out.push(b'"');
    }
}

impl Fields for Writer<'_> {
    #[inline(always)]
    fn ts(&mut self, key: Key, at: jiff::Timestamp) {
        let (prefix, us) = self.seconds.split(at);
        raw(&mut self.out, key.json_str, prefix);
        micros(&mut self.out, us);
        self.out.push(b'"');
    }

    #[inline(always)]
    fn kind(&mut self, key: Key, kind: EventKind) {
        self.quoted(key, kind.name());
    }

    #[inline(always)]
    fn family(&mut self, key: Key, family: crate::socket::Family) {
        self.quoted(key, family.name());
    }

    #[inline(always)]
    fn name(&mut self, key: Key, value: &str) {
        self.quoted(key, value);
    }

    #[inline(always)]
    fn text(&mut self, key: Key, value: &[u8]) {
        self.out.extend_from_slice(key.json.as_bytes());
        if let Err(e) = comm(&mut self.out, value) {
            self.failed = Some(e);
        }
    }

    #[inline(always)]
    fn u64(&mut self, key: Key, value: u64) {
        // Most values (pids, ports, counts) fit 32 bits, whose digits
        // itoa finds with cheaper divisions.
        match u32::try_from(value) {
            Ok(v) => number(&mut self.out, &mut self.n, key.json, v),
            Err(_) => number(&mut self.out, &mut self.n, key.json, value),
        }
    }

    #[inline(always)]
    fn f64(&mut self, key: Key, value: f64) {
        self.out.extend_from_slice(key.json.as_bytes());
        if let Err(e) = serde_json::to_writer(&mut self.out, &value) {
            self.failed = Some(e.into());
        }
    }

    #[inline(always)]
    fn ip(&mut self, key: Key, ip: std::net::IpAddr) {
        self.out.extend_from_slice(key.json_str.as_bytes());
        super::write_ip(&mut self.out, ip);
        self.out.push(b'"');
    }

    fn counts(&mut self, key: Key, counts: &[(std::borrow::Cow<'static, str>, u64)]) {
        self.out.extend_from_slice(key.json.as_bytes());
        let mut sep = b'{';
        for (name, n) in counts {
            self.out.push(sep);
            sep = b',';
            if let Err(e) = comm(&mut self.out, name.as_bytes()) {
                self.failed = Some(e);
            }
            self.out.push(b':');
            short(&mut self.out, self.n.format(*n).as_bytes());
        }
        if sep == b'{' {
            self.out.push(b'{');
        }
        self.out.push(b'}');
    }
}

impl EventSink for Json {
    /// Written field by field rather than through serde: with a dozen
    /// events per connection this is the agent's hottest path, and serde
    /// escaped every key and static value. Only the strings a process
    /// chose go through serde_json's escaping; the tests check the result
    /// against a serde-derived struct with the same fields.
    fn event(&mut self, out: &mut Vec<u8>, e: &Event, clock: &WallClock) -> io::Result<()> {
        // The longest line: one allocation check instead of one per field.
        out.reserve(640);
        // The buffer moved into the writer (and back): a local the
        // compiler keeps in registers, where a `&mut Vec` in a struct is
        // reloaded from memory at every byte.
        let mut w =
            Writer { out: std::mem::take(out), seconds: &mut self.seconds, n: itoa::Buffer::new(), failed: None };
        fields(e, self.packets, clock, &mut w);
        *out = w.out;
        if let Some(err) = w.failed {
            return Err(err);
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    /// Of `count`: `ring_full` found the ring buffer full, `skipped` were
    /// never made (hook runs the kernel skipped). `ts` as every line's: RFC
    /// 3339 in UTC with a fixed microsecond precision, so that lines sort
    /// and align as text.
    fn lost(&mut self, out: &mut Vec<u8>, loss: &Loss, at: jiff::Timestamp) -> io::Result<()> {
        let (prefix, us) = self.seconds.split(at);
        writeln!(
            out,
            r#"{{"ts":"{prefix}.{us:06}Z","event":"lost","count":{},"ring_full":{},"skipped":{}}}"#,
            loss.total(),
            loss.ring_full,
            loss.skipped
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::display_ip;
    use crate::output::snapshot::JsonWorkload;
    use crate::{
        event::Comm,
        socket::{Family, TcpState},
    };

    pub fn event() -> Event {
        Event {
            ts_ns: 10_000_000,
            start_ns: Some(6_500_000),
            cookie: 9,
            family: Family::V6,
            local: "[::ffff:127.0.0.1]:5000".parse().unwrap(),
            remote: "[::1]:80".parse().unwrap(),
            pid: 42,
            comm: Comm::new("srv \"x\""),
            owner: OwnerSource::Accept,
            ..crate::event::fixture(EventKind::Close, TcpState::LastAck, TcpState::Close)
        }
    }

    /// The schema as serde would write it: the oracle for the hand-written
    /// encoder.
    #[derive(Serialize)]
    struct JsonEvent<'a> {
        ts: String,
        event: &'static str,
        pid: u32,
        comm: &'a str,
        uid: u32,
        family: &'static str,
        saddr: String,
        sport: u16,
        daddr: String,
        dport: u16,
        old_state: &'static str,
        new_state: &'static str,
        netns: u32,
        cookie: u64,
        owner: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<f64>,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        traffic: Option<JsonTraffic>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        thread: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fd: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        accept_queue_us: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cgroup_id: Option<u64>,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        workload: Option<JsonWorkload<'a>>,
        #[serde(flatten)]
        why: JsonWhy,
        #[serde(skip_serializing_if = "Option::is_none")]
        rhost: Option<&'a str>,
    }

    fn via_serde(e: &Event, ts: &str) -> String {
        let j = JsonEvent {
            ts: ts.to_owned(),
            event: e.kind.name(),
            pid: e.pid,
            comm: &e.comm.as_str(),
            uid: e.uid,
            family: e.family.name(),
            saddr: display_ip(e.local.ip()).to_string(),
            sport: e.local.port(),
            daddr: display_ip(e.remote.ip()).to_string(),
            dport: e.remote.port(),
            old_state: e.old_state.name(),
            new_state: e.new_state.name(),
            netns: e.netns,
            cookie: e.cookie,
            owner: owner_name(e.owner),
            duration_ms: e.lifetime_ns().map(duration_ms),
            traffic: has_totals(e.kind).then(|| JsonTraffic::from(&e.traffic)),
            tid: e.thread.map(|t| t.tid),
            thread: e.thread.map(|t| t.name.as_str().into_owned()),
            fd: e.accepted.map(|a| a.fd),
            accept_queue_us: e.accepted.and_then(|a| a.queued_ns).map(|q| q / 1000),
            cgroup_id: (e.cgroup != 0).then_some(e.cgroup),
            workload: e.workload.as_ref().map(Into::into),
            why: JsonWhy::of(e),
            rhost: e.rhost.as_deref(),
        };
        serde_json::to_string(&j).unwrap() + "\n"
    }

    /// [`event`], changed by `f`.
    fn with(f: impl FnOnce(&mut Event)) -> Event {
        let mut e = event();
        f(&mut e);
        e
    }

    /// `e` as [`Json`] writes it, read back.
    fn value(e: &Event) -> serde_json::Value {
        let mut out = Vec::new();
        Json::new().event(&mut out, e, &WallClock::new()).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    /// Events of every kind and shape: each optional field present and absent.
    pub(crate) fn cases() -> Vec<Event> {
        let odd = with(|e| {
            e.comm = Comm([b'a', b'"', b'\\', 0x01, b'\n', 0xff, 0xc3, b'\t', b'z', 0, 0, 0, 0, 0, 0, 0]);
            e.local = "10.1.2.3:65535".parse().unwrap();
            e.cookie = u64::MAX;
            e.uid = u32::MAX;
            e.traffic.tx_bytes = u64::MAX;
            e.traffic.retransmits = 7;
        });
        let mut cases = vec![event(), odd];
        let kinds = [
            EventKind::State,
            EventKind::ConnectFailed,
            EventKind::Handshake,
            EventKind::Accept,
            EventKind::Destroy,
            EventKind::UdpClose,
        ];
        cases.extend(kinds.map(|kind| with(|e| e.kind = kind)));
        cases.push(with(|e| e.start_ns = None));
        let accept = with(|e| {
            e.kind = EventKind::Accept;
            e.thread = Some(crate::event::Thread { tid: 43, name: Comm::new("acceptor-\"7\"") });
            e.accepted = Some(crate::event::Accepted { fd: 5, queued_ns: Some(1_234_567) });
        });
        let unqueued = Event { accepted: Some(crate::event::Accepted { fd: 0, queued_ns: None }), ..accept.clone() };
        cases.extend([accept, unqueued]);
        cases.extend(workloads());
        // Every latency and failure field.
        cases.push(with(|e| {
            (e.kind, e.old_state, e.new_state) = (EventKind::Established, TcpState::SynSent, TcpState::Established);
            (e.traffic.total_retrans, e.traffic.srtt_us) = (2, 1500);
        }));
        cases.push(with(|e| {
            (e.kind, e.old_state, e.new_state) = (EventKind::Handshake, TcpState::SynRecv, TcpState::Established);
        }));
        cases.push(with(|e| {
            (e.kind, e.old_state) = (EventKind::ConnectFailed, TcpState::SynSent);
            (e.traffic.sk_err, e.traffic.total_retrans) = (111, 1);
        }));
        cases.push(with(|e| (e.old_state, e.traffic.srtt_us) = (TcpState::Established, 33)));
        cases.push(with(|e| {
            (e.kind, e.old_state, e.traffic.sk_err, e.traffic.protocol) =
                (EventKind::ConnectError, TcpState::Close, 101, 6);
        }));
        // Packets the kernel dropped, with a reason this kernel may not name.
        cases.push(with(|e| {
            (e.traffic.drops, e.traffic.drop_reason) = (2, 9999);
            (e.traffic.drop_slots, e.traffic.drop_counts[0]) = (9999, 2);
        }));
        // A listener's drops: a count and no reason.
        cases.push(with(|e| {
            (e.kind, e.old_state, e.new_state) = (EventKind::ListenDrop, TcpState::Listen, TcpState::Listen);
            e.traffic.drops = 12;
        }));
        // Per reason: three slots and more reasons than slots, on each
        // event that carries totals; and drops none of the slots took.
        for kind in [EventKind::Close, EventKind::ConnectFailed, EventKind::UdpClose] {
            cases.push(with(|e| {
                e.kind = kind;
                let t = &mut e.traffic;
                (t.drops, t.drop_reason, t.drop_slots, t.drop_counts) =
                    (10, 7, 12 | (6 << 16) | (9999 << 32), [3, 4, 1]);
            }));
        }
        cases.push(with(|e| (e.traffic.drops, e.traffic.drop_reason) = (1, 70_000)));
        // Names from DNS answers, one with bytes to escape.
        for name in ["svc.example.test", "a\\010\"b.test"] {
            cases.push(with(|e| e.rhost = Some(name.into())));
        }
        cases
    }

    #[test]
    fn hand_written_encoder_matches_serde_byte_for_byte() {
        let clock = WallClock::new();
        let cases = cases();
        let mut j = Json::new();
        for e in &cases {
            let mut out = Vec::new();
            j.event(&mut out, e, &clock).unwrap();
            let line = String::from_utf8(out).unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(line, via_serde(e, v["ts"].as_str().unwrap()), "{e:?}");
        }
    }

    /// Events with each shape of workload, one with names to escape.
    fn workloads() -> Vec<Event> {
        use crate::workload::{Runtime, Workload};
        let info = |cgroup: &str, unit: Option<&str>, container, pod: Option<&str>| {
            with(|e| {
                e.cgroup = 4242;
                e.workload = Some(Workload::fixture(cgroup, unit, container, pod));
            })
        };
        let id = "0123456789abcdef".repeat(4);
        let c = |name| (Runtime::Containerd, id.as_str(), name);
        vec![
            with(|e| e.cgroup = 7),
            info("/", None, None, None),
            info("/system.slice/nginx.service", Some("nginx.service"), None, None),
            info(
                "/kubepods.slice/x",
                Some("cri-containerd-x.scope"),
                Some(c(None)),
                Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789"),
            ),
            info("/lxc.payload.a\"b\\", None, Some(c(Some("we\"b\n"))), None),
        ]
    }

    #[test]
    fn drops_by_reason_is_an_object_of_counts() {
        let mut e = event();
        let t = &mut e.traffic;
        (t.drops, t.drop_reason, t.drop_slots, t.drop_counts) = (10, 70_000, 9999 | (9998 << 16), [3, 4, 0]);
        let v = value(&e);
        assert_eq!(v["drops_by_reason"], serde_json::json!({"9998": 4, "9999": 3, "other": 3}), "{v}");
        assert_eq!((v["drops"].as_u64(), v["drop_reason"].as_str()), (Some(10), Some("70000")));
        // Not on an event without totals.
        e.kind = EventKind::State;
        assert!(!value(&e).to_string().contains("drops"));
    }

    #[test]
    fn workload_fields() {
        let mut j = Json::new();
        let mut out = Vec::new();
        for e in workloads() {
            j.event(&mut out, &e, &WallClock::new()).unwrap();
        }
        let lines: Vec<serde_json::Value> =
            out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!((lines[0]["cgroup_id"].as_u64(), lines[0].get("cgroup")), (Some(7), None));
        assert_eq!((lines[1]["cgroup"].as_str(), lines[1].get("unit")), (Some("/"), None));
        assert_eq!(lines[2]["unit"], "nginx.service");
        assert!(lines[2].get("container_id").is_none());
        assert_eq!(lines[3]["container_runtime"], "containerd");
        assert_eq!(lines[3]["container_id"].as_str().map(str::len), Some(64));
        assert_eq!(lines[3]["pod_uid"], "0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        assert!(lines[3].get("container_name").is_none());
        assert_eq!(lines[4]["container_name"], "we\"b\n");
        assert_eq!(lines[4]["cgroup"], "/lxc.payload.a\"b\\");
    }

    #[test]
    fn close_event_has_every_field_and_duration() {
        let mut out = Vec::new();
        Json::new().event(&mut out, &event(), &WallClock::new()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "close");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["comm"], "srv \"x\"");
        assert_eq!(v["family"], "IPv6");
        assert_eq!(v["saddr"], "127.0.0.1");
        assert_eq!(v["daddr"], "::1");
        assert_eq!((v["sport"].as_u64(), v["dport"].as_u64()), (Some(5000), Some(80)));
        assert_eq!((v["old_state"].as_str(), v["new_state"].as_str()), (Some("LAST_ACK"), Some("CLOSE")));
        assert_eq!(v["duration_ms"], 3.5);
        assert_eq!(v["owner"], "accept");
        assert_eq!((v["tx_bytes"].as_u64(), v["rx_bytes"].as_u64()), (Some(0), Some(0)));
        assert_eq!(v["retransmits"], 0);
        let ts = v["ts"].as_str().unwrap();
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");
        assert_eq!(ts.len(), "2026-11-22T00:37:00.784084Z".len());
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn accept_names_its_thread_descriptor_and_wait() {
        let mut e = event();
        e.kind = EventKind::Accept;
        e.thread = Some(crate::event::Thread { tid: 43, name: Comm::new("acceptor-7") });
        e.accepted = Some(crate::event::Accepted { fd: 5, queued_ns: Some(1_234_567) });
        let v = value(&e);
        assert_eq!(
            (v["event"].as_str(), v["pid"].as_u64(), v["comm"].as_str()),
            (Some("accept"), Some(42), Some("srv \"x\""))
        );
        assert_eq!((v["tid"].as_u64(), v["thread"].as_str()), (Some(43), Some("acceptor-7")));
        assert_eq!((v["fd"].as_u64(), v["accept_queue_us"].as_u64()), (Some(5), Some(1234)));
        // A lent owner (softirq): no thread, and no descriptor outside accept.
        let v = value(&event());
        assert!(v.get("tid").is_none() && v.get("thread").is_none() && v.get("fd").is_none());
    }

    #[test]
    fn no_duration_outside_closes_or_when_start_unknown() {
        for e in [with(|e| e.kind = EventKind::State), with(|e| e.start_ns = None)] {
            assert!(value(&e).get("duration_ms").is_none());
        }
    }

    #[test]
    fn totals_only_on_closing_events() {
        let mut e = event();
        e.traffic.tx_bytes = 1_000_000;
        e.traffic.rx_bytes = 10_000;
        e.traffic.retransmits = 3;
        e.traffic.resets_received = 1;
        let v = value(&e);
        assert_eq!((v["tx_bytes"].as_u64(), v["rx_bytes"].as_u64()), (Some(1_000_000), Some(10_000)));
        assert_eq!((v["retransmits"].as_u64(), v["resets_received"].as_u64()), (Some(3), Some(1)));
        e.kind = EventKind::State;
        assert!(value(&e).get("tx_bytes").is_none());
    }

    #[test]
    fn lost_line() {
        let mut out = Vec::new();
        let loss = Loss { ring_full: 15, skipped: 2 };
        Json::new().lost(&mut out, &loss, jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"event\":\"lost\",\"count\":17,\"ring_full\":15,\"skipped\":2}\n"
        );
    }
}
