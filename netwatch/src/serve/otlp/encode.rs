//! The hot path of the OTLP export: an `Event` straight to the protobuf
//! bytes of its `LogRecord`, through the same walk over its fields that
//! writes `events --json` ([`json::fields`]): the two cannot drift, and no
//! JSON is written or read for an event. Building the message instead
//! (serde_json values, then prost structs, then their encoding) cost ~10 µs
//! a record, at 100,000 records a second under churn; reading the JSON line
//! back, ~1 µs (docs/performance.md).
//!
//! Once warm it allocates nothing per record: each attribute's name is a
//! constant of the walk ([`json::Key`]), written with its length at compile
//! time, and the record goes straight into the batch. `lost` lines and
//! alerts (rare) take the general path: their JSON line through
//! [`super::records::log_record`] and prost.

use netwatch_common::EventKind;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use super::records;
use crate::{
    event::{clock::WallClock, Event},
    output::json::{self, Key},
    socket::Family,
};

/// Field numbers of the OTLP messages written here (logs.proto, common.proto).
mod field {
    pub const TIME: u32 = 1;
    pub const SEVERITY_NUMBER: u32 = 2;
    pub const SEVERITY_TEXT: u32 = 3;
    pub const BODY: u32 = 5;
    pub const ATTRIBUTES: u32 = 6;
    /// `Resource.attributes`, and `ResourceLogs.resource`.
    pub const RESOURCE_ATTRIBUTES: u32 = 1;
    pub const RESOURCE: u32 = 1;
    pub const OBSERVED_TIME: u32 = 11;
    pub const EVENT_NAME: u32 = 12;
    pub const KV_KEY: u32 = 1;
    pub const KV_VALUE: u32 = 2;
    pub const STRING: u32 = 1;
    pub const INT: u32 = 3;
    pub const DOUBLE: u32 = 4;
}

/// The one-byte key of field `n` (< 16) with wire type `w`.
const fn tag(n: u32, w: WireType) -> u8 {
    debug_assert!(n < 16);
    ((n << 3) | w as u32) as u8
}

/// A varint into a `Vec` (prost's generic `encode_varint` goes through
/// `BufMut` a byte at a time: an eighth of the encoder's time).
#[inline(always)]
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Scalar<'a> {
    /// Text: UTF-8.
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
}

impl Scalar<'_> {
    /// The encoded length of the AnyValue holding it.
    #[inline(always)]
    fn any_len(self) -> usize {
        match self {
            Self::Str(s) => 1 + encoded_len_varint(s.len() as u64) + s.len(),
            Self::Int(i) => 1 + encoded_len_varint(i as u64),
            Self::Double(_) => 1 + 8,
        }
    }

    #[inline(always)]
    fn encode_any(self, out: &mut Vec<u8>) {
        match self {
            Self::Str(s) => {
                out.push(tag(field::STRING, WireType::LengthDelimited));
                varint(s.len() as u64, out);
                out.extend_from_slice(s);
            }
            Self::Int(i) => {
                out.push(tag(field::INT, WireType::Varint));
                varint(i as u64, out);
            }
            Self::Double(d) => {
                out.push(tag(field::DOUBLE, WireType::SixtyFourBit));
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
    }
}

/// One attribute named by a walk's [`Key`], as field `n` of its message
/// (a `LogRecord`'s or a `Resource`'s attributes): every length but the
/// value's is a constant once inlined.
#[inline(always)]
fn attribute(n: u32, key: Key, v: Scalar<'_>, out: &mut Vec<u8>) {
    let klen = key.attr.len();
    let any = v.any_len();
    // `Key::new` holds names under 128 bytes: a one-byte length.
    let kv = 2 + klen + 1 + encoded_len_varint(any as u64) + any;
    out.push(tag(n, WireType::LengthDelimited));
    varint(kv as u64, out);
    out.push(tag(field::KV_KEY, WireType::LengthDelimited));
    out.push(klen as u8);
    out.extend_from_slice(key.attr.as_bytes());
    out.push(tag(field::KV_VALUE, WireType::LengthDelimited));
    varint(any as u64, out);
    v.encode_any(out);
}

/// `network.transport`, which has no JSON key of its own.
const TRANSPORT: Key = Key { json: "", json_str: "", attr: "network.transport", owner: false };

/// [`json::Fields`] as the attributes (and time, severity, body, event
/// name) of one `LogRecord`, the fields that describe the event; or, with
/// `OWNER`, as the attributes its owner adds to the `Resource` its record
/// is grouped under ([`json::describes_owner`]). Each field goes to one of
/// the two, decided at compile time by its key.
struct Record<'a, const OWNER: bool> {
    out: Vec<u8>,
    /// An address as text, reused.
    text: &'a mut Vec<u8>,
}

impl<const OWNER: bool> Record<'_, OWNER> {
    /// The field the attributes are of its message: a `Resource`'s or a
    /// `LogRecord`'s.
    const FIELD: u32 = if OWNER { field::RESOURCE_ATTRIBUTES } else { field::ATTRIBUTES };

    /// Whether this walk writes `key`'s field.
    #[inline(always)]
    const fn takes(key: Key) -> bool {
        key.owner == OWNER
    }

    /// `key`'s attribute, if this walk writes it.
    #[inline(always)]
    fn attribute(&mut self, key: Key, v: Scalar<'_>) {
        if Self::takes(key) {
            attribute(Self::FIELD, key, v, &mut self.out);
        }
    }
}

impl<const OWNER: bool> json::Fields for Record<'_, OWNER> {
    #[inline(always)]
    fn ts(&mut self, _: Key, at: jiff::Timestamp) {
        if OWNER {
            return;
        }
        // Microseconds, as `events --json` has it: both say the same time.
        // (Not through `as_nanosecond`: an i128 division costs more than
        // the rest of the field.)
        let ns = at.as_second() as u64 * 1_000_000_000 + u64::from(at.subsec_nanosecond() as u32 / 1000 * 1000);
        self.out.push(tag(field::TIME, WireType::SixtyFourBit));
        self.out.extend_from_slice(&ns.to_le_bytes());
    }

    #[inline(always)]
    fn kind(&mut self, key: Key, kind: EventKind) {
        if OWNER {
            return;
        }
        let name = kind.name();
        let (number, text) = records::severity(name);
        let out = &mut self.out;
        out.push(tag(field::SEVERITY_NUMBER, WireType::Varint));
        varint(number as u64, out);
        bytes_field(field::SEVERITY_TEXT, text.as_bytes(), out);
        let v = Scalar::Str(name.as_bytes());
        out.push(tag(field::BODY, WireType::LengthDelimited));
        varint(v.any_len() as u64, out);
        v.encode_any(out);
        out.push(tag(field::EVENT_NAME, WireType::LengthDelimited));
        varint(("netwatch.".len() + name.len()) as u64, out);
        out.extend_from_slice(b"netwatch.");
        out.extend_from_slice(name.as_bytes());
        attribute(field::ATTRIBUTES, key, v, out);
    }

    #[inline(always)]
    fn family(&mut self, key: Key, family: Family) {
        // The semantic convention's spelling.
        let v = match family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        };
        self.attribute(key, Scalar::Str(v.as_bytes()));
    }

    #[inline(always)]
    fn name(&mut self, key: Key, value: &str) {
        self.attribute(key, Scalar::Str(value.as_bytes()));
    }

    #[inline(always)]
    fn text(&mut self, key: Key, value: &[u8]) {
        if !Self::takes(key) {
            return;
        }
        // A protobuf string is UTF-8; JSON's escaping reads it the same way.
        // Checked first: `from_utf8_lossy`'s chunk walk cost a tenth of the
        // encoder's time in the agent loop, for names that are valid nearly always.
        match std::str::from_utf8(value) {
            Ok(s) => self.attribute(key, Scalar::Str(s.as_bytes())),
            Err(_) => self.attribute(key, Scalar::Str(String::from_utf8_lossy(value).as_bytes())),
        }
    }

    #[inline(always)]
    fn u64(&mut self, key: Key, value: u64) {
        match i64::try_from(value) {
            Ok(i) => self.attribute(key, Scalar::Int(i)),
            // Above i64's range (cookies): the digits, as a JSON reader
            // (serde_json, the collector's) keeps them.
            Err(_) => {
                let mut n = itoa::Buffer::new();
                self.attribute(key, Scalar::Str(n.format(value).as_bytes()));
            }
        }
    }

    #[inline(always)]
    fn f64(&mut self, key: Key, value: f64) {
        self.attribute(key, Scalar::Double(value));
    }

    #[inline(always)]
    fn ip(&mut self, key: Key, ip: std::net::IpAddr) {
        if !Self::takes(key) {
            return;
        }
        self.text.clear();
        crate::output::write_ip(self.text, ip);
        attribute(Self::FIELD, key, Scalar::Str(self.text), &mut self.out);
    }

    /// A key-value list, built with prost: only events with dropped
    /// packets have one.
    fn counts(&mut self, key: Key, counts: &[(std::borrow::Cow<'static, str>, u64)]) {
        if !Self::takes(key) {
            return;
        }
        use opentelemetry_proto::tonic::common::v1::{any_value::Value as V, AnyValue, KeyValue, KeyValueList};
        let values = counts
            .iter()
            .map(|(name, n)| KeyValue {
                key: name.to_string(),
                value: Some(AnyValue { value: Some(V::IntValue(*n as i64)) }),
                ..KeyValue::default()
            })
            .collect();
        let list = AnyValue { value: Some(V::KvlistValue(KeyValueList { values })) };
        let kv = KeyValue { key: key.attr.to_owned(), value: Some(list), ..KeyValue::default() };
        bytes_field(Self::FIELD, &prost::Message::encode_to_vec(&kv), &mut self.out);
    }
}

/// `bytes` as field `tag` of a message (tag, length, bytes).
pub fn bytes_field(n: u32, b: &[u8], out: &mut Vec<u8>) {
    out.push(tag(n, WireType::LengthDelimited));
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// The head of `ExportLogsServiceRequest { resource_logs: [ResourceLogs {
/// resource, scope_logs: [ScopeLogs { scope, log_records }] }] }`, whose
/// `log_records` (`records` bytes, encoded by [`Encoder`]) follow it as they
/// are: `resource` and `scope` are the encoded fields. The request is this
/// head and the records' buffers one after the other, so a batch's records
/// are never copied into a request.
pub fn head(resource: &[u8], scope: &[u8], records: usize) -> Vec<u8> {
    let scope_logs = scope.len() + records;
    let resource_logs = resource.len() + 1 + encoded_len_varint(scope_logs as u64) + scope_logs;
    let mut head = Vec::with_capacity(resource.len() + scope.len() + 2 * (1 + 10));
    encode_key(1, WireType::LengthDelimited, &mut head);
    encode_varint(resource_logs as u64, &mut head);
    head.extend_from_slice(resource);
    encode_key(2, WireType::LengthDelimited, &mut head);
    encode_varint(scope_logs as u64, &mut head);
    head.extend_from_slice(scope);
    head
}

/// What the encoding reuses from one record to the next.
pub struct Encoder {
    scratch: Vec<u8>,
    text: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self { scratch: Vec::with_capacity(1024), text: Vec::with_capacity(64) }
    }

    /// Appends one JSON line's `LogRecord` (a `lost` line, an alert) to
    /// `out` as a `ScopeLogs.log_records` field (tag, length, message).
    /// Returns whether the line was a JSON object.
    pub fn record(&mut self, line: &[u8], observed_ns: u64, out: &mut Vec<u8>) -> bool {
        let Some(r) = records::log_record(line, observed_ns) else { return false };
        self.scratch.clear();
        prost::Message::encode_raw(&r, &mut self.scratch);
        bytes_field(2, &self.scratch, out);
        true
    }

    /// The `ResourceLogs.resource` field (tag, length, message) that the
    /// records of `e`'s owner are grouped under: `base`, the encoded
    /// attributes of who sent them (host, netwatch), then the attributes
    /// of the owner's fields ([`json::describes_owner`]). `None`: the
    /// records of no owner (`lost` lines, alerts).
    pub fn resource(&mut self, e: Option<(&Event, &WallClock)>, base: &[u8]) -> Vec<u8> {
        let mut attrs = base.to_vec();
        if let Some((e, clock)) = e {
            let mut w = Record::<true> { out: attrs, text: &mut self.text };
            json::fields(e, false, clock, &mut w);
            attrs = w.out;
        }
        let mut out = Vec::with_capacity(attrs.len() + 4);
        bytes_field(field::RESOURCE, &attrs, &mut out);
        out
    }

    /// Appends `e`'s `LogRecord` to `out` as a `ScopeLogs.log_records`
    /// field: the attributes `events --json` has as fields (`packets` as
    /// for [`json::Json`]), each under its OTLP name, and
    /// `network.transport`; but its owner's, which go on the resource the
    /// record is grouped under ([`Self::resource`]).
    pub fn event(&mut self, e: &Event, packets: bool, clock: &WallClock, observed_ns: u64, out: &mut Vec<u8>) {
        // Written in place after a two-byte length (a record is 128 bytes
        // to 16 KiB), moved only if its length needs another size.
        out.push(tag(2, WireType::LengthDelimited));
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        // The buffer moved in and back: see `json::Json::event`.
        let mut w = Record::<false> { out: std::mem::take(out), text: &mut self.text };
        json::fields(e, packets, clock, &mut w);
        *out = w.out;
        let protocol =
            if e.kind == EventKind::ConnectError { crate::why::protocol_name(e.traffic.protocol) } else { None };
        if let Some(t) = records::transport(e.kind.name(), protocol.map(str::as_bytes)) {
            attribute(field::ATTRIBUTES, TRANSPORT, Scalar::Str(t.as_bytes()), out);
        }
        out.push(tag(field::OBSERVED_TIME, WireType::SixtyFourBit));
        out.extend_from_slice(&observed_ns.to_le_bytes());
        let len = out.len() - at - 2;
        if (128..1 << 14).contains(&len) {
            out[at] = len as u8 | 0x80;
            out[at + 1] = (len >> 7) as u8;
        } else {
            self.scratch.clear();
            varint(len as u64, &mut self.scratch);
            out.splice(at..at + 2, self.scratch.iter().copied());
        }
    }
}

/// The records of a buffer `Encoder` filled: each `ScopeLogs.log_records`
/// field whole (tag, length, message).
pub fn split(mut records: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let mut len: usize = 0;
        let mut i = 1;
        for shift in (0..64).step_by(7) {
            let &b = records.get(i)?;
            i += 1;
            len |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
        }
        let end = i.checked_add(len).filter(|&end| end <= records.len())?;
        let (one, rest) = records.split_at(end);
        records = rest;
        Some(one)
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};
    use prost::Message as _;

    use super::*;
    use crate::output::{json::Json, EventSink as _};

    /// Decoded with prost, the record written from the `Event`, with its
    /// owner's resource attributes, is the one the general path makes of
    /// the event's `events --json` line: every JSON key (but `ts`, the
    /// record's time) one attribute with the same value, plus
    /// `network.transport`; the owner's keys on the resource only.
    fn same_as_its_json_line(e: &Event, mut j: Json) {
        use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
        let clock = WallClock::new();
        let mut line = Vec::new();
        j.event(&mut line, e, &clock).unwrap();
        let mut out = Vec::new();
        let mut enc = Encoder::new();
        enc.event(e, j.packets(), &clock, 5, &mut out);
        let mut fast = ScopeLogs::decode(&out[..]).unwrap().log_records.remove(0);
        let base = super::super::resource().encode_to_vec();
        let resource = ResourceLogs::decode(&enc.resource(Some((e, &clock)), &base)[..]).unwrap().resource.unwrap();
        let (host, owner) = resource.attributes.split_at(super::super::resource().attributes.len());
        assert_eq!(host, super::super::resource().attributes);
        let text = String::from_utf8_lossy(&line);
        let owner_keys = json::key::ALL.iter().filter(|k| k.owner).map(|k| k.attr.to_owned());
        let owner_keys: Vec<String> = owner_keys.collect();
        assert!(owner.iter().all(|kv| owner_keys.contains(&kv.key)), "{owner:?}");
        assert!(!fast.attributes.iter().any(|kv| owner_keys.contains(&kv.key)), "{text}");
        assert!(owner.iter().any(|kv| kv.key == "process.pid"), "{text}");
        fast.attributes.extend_from_slice(owner);
        let mut general: LogRecord = records::log_record(&line, 5).unwrap();
        let keys = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&line).unwrap().len();
        assert_eq!(fast.attributes.len(), keys - 1 + 1, "{text}");
        fast.attributes.sort_by(|a, b| a.key.cmp(&b.key));
        general.attributes.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(fast, general, "{}", String::from_utf8_lossy(&line));
    }

    #[test]
    fn event_encoding_equals_its_json_lines() {
        let mut cases = json::tests::cases();
        // A UDP connect() that failed: its transport is its `protocol`'s.
        let mut udp = json::tests::event();
        (udp.kind, udp.traffic.sk_err, udp.traffic.protocol) = (EventKind::ConnectError, 113, 17);
        cases.push(udp);
        for kind in EventKind::ALL {
            let mut e = json::tests::event();
            e.kind = kind;
            cases.push(e);
        }
        for e in &cases {
            same_as_its_json_line(e, Json::new());
            same_as_its_json_line(e, Json::without_packet_counters());
        }
    }

    #[test]
    fn record_lengths_of_every_size() {
        // Under 128 bytes, 128 to 16 KiB, above: the length is rewritten in place or moved.
        let mut small = json::tests::event();
        small.kind = EventKind::Listen;
        let mut big = json::tests::cases().pop().unwrap();
        big.rhost = Some("a.".repeat(10_000).into());
        let (clock, mut enc, mut out) = (WallClock::new(), Encoder::new(), Vec::new());
        for e in [&small, &big, &json::tests::event(), &big] {
            enc.event(e, true, &clock, 5, &mut out);
        }
        let records: Vec<&[u8]> = split(&out).collect();
        assert_eq!(records.len(), 4);
        assert_eq!(records.iter().map(|r| r.len()).sum::<usize>(), out.len());
        let decoded = ScopeLogs::decode(&out[..]).unwrap().log_records;
        assert_eq!(decoded.len(), 4);
        assert_eq!(
            decoded[1].attributes.iter().find(|kv| kv.key == "netwatch.rhost").map(|kv| kv.encoded_len() > 20_000),
            Some(true)
        );
        for (r, d) in records.iter().zip(&decoded) {
            assert_eq!(&ScopeLogs::decode(*r).unwrap().log_records[0], d);
        }
        assert_eq!(split(&out[..out.len() - 1]).count(), 3, "a cut record is not one");
    }

    #[test]
    fn every_key_named_as_the_general_path_names_it() {
        for k in json::key::ALL.iter().chain([&json::key::ts]) {
            let key = k.json.trim_start_matches([',', '{']).trim_matches(['"', ':']);
            assert_eq!(k.attr, records::attribute_name(key), "{}", k.json);
        }
    }

    #[test]
    fn lines_take_the_general_path() {
        let line = b"{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"event\":\"lost\",\"count\":17,\"ring_full\":15,\"skipped\":2}\n";
        let mut out = Vec::new();
        assert!(Encoder::new().record(line, 5, &mut out));
        let fast = ScopeLogs::decode(&out[..]).unwrap().log_records.remove(0);
        assert_eq!(fast, records::log_record(line, 5).unwrap());
        assert!(!Encoder::new().record(b"not json", 5, &mut out));
    }

    #[test]
    fn request_decodes_as_the_message() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        let (mut resource, mut scope) = (Vec::new(), Vec::new());
        bytes_field(1, &super::super::resource().encode_to_vec(), &mut resource);
        bytes_field(1, &super::super::scope().encode_to_vec(), &mut scope);
        let mut records = Vec::new();
        let line = br#"{"ts":"2026-12-06T15:00:00.000001Z","event":"listen","pid":42}"#;
        let mut enc = Encoder::new();
        for _ in 0..3 {
            enc.record(line, 1, &mut records);
        }
        let mut e = json::tests::event();
        e.kind = EventKind::Listen;
        enc.event(&e, true, &WallClock::new(), 1, &mut records);
        let mut body = head(&resource, &scope, records.len());
        body.extend_from_slice(&records);
        let req = ExportLogsServiceRequest::decode(&body[..]).unwrap();
        let scope_logs = &req.resource_logs[0].scope_logs[0];
        assert_eq!(req.resource_logs[0].resource, Some(super::super::resource()));
        assert_eq!(scope_logs.scope, Some(super::super::scope()));
        assert_eq!(scope_logs.log_records.len(), 4);
        assert_eq!(scope_logs.log_records[2], records::log_record(line, 1).unwrap());
        assert_eq!(scope_logs.log_records[3].event_name, "netwatch.listen");
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::output::{json::Json, EventSink as _};

    /// CPU time, not wall time: the machine is shared.
    pub(super) fn cpu() -> f64 {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid clock id and a timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut t) };
        t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
    }

    /// `cargo test --release -p netwatch --lib speed -- --ignored --nocapture`:
    /// the encoder's cost per record, alone, beside the JSON writer's for
    /// the same event (a `close` with its totals, 25 fields).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn ns_per_record() {
        let mut e = json::tests::event();
        e.comm = crate::event::Comm::new("python3");
        e.local = "127.0.0.1:8080".parse().unwrap();
        e.remote = "127.0.0.1:34162".parse().unwrap();
        e.family = Family::V4;
        (e.pid, e.netns, e.cookie) = (19421, 4_026_531_833, 109_463_105);
        (e.traffic.tx_bytes, e.traffic.rx_bytes, e.traffic.tx_packets, e.traffic.rx_packets) = (10_000, 200_000, 8, 11);
        e.thread = Some(crate::event::Thread { tid: 19421, name: crate::event::Comm::new("python3") });
        let clock = WallClock::new();
        let (mut enc, mut out) = (Encoder::new(), Vec::with_capacity(1 << 20));
        let n = 200_000;
        for round in 0..3 {
            let t = cpu();
            for _ in 0..n {
                if out.len() > (1 << 20) - 2048 {
                    out.clear();
                }
                enc.event(std::hint::black_box(&e), true, &clock, 1, &mut out);
            }
            let otlp = (cpu() - t) / f64::from(n);
            let mut j = Json::new();
            out.clear();
            let t = cpu();
            for _ in 0..n {
                if out.len() > (1 << 20) - 2048 {
                    out.clear();
                }
                j.event(&mut out, std::hint::black_box(&e), &clock).unwrap();
            }
            let json = (cpu() - t) / f64::from(n);
            out.clear();
            eprintln!("round {round}: {otlp:.0} ns of CPU per OTLP record, {json:.0} ns per JSON line");
        }
    }
}

#[cfg(test)]
mod export_speed {
    use std::{
        sync::atomic::Ordering::Relaxed,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::serve::config::{Compression, OtlpExport, OtlpProtocol};

    /// A thread's CPU time so far (ns), by its name: the first field of
    /// its schedstat.
    fn thread_ns(name: &str) -> Option<f64> {
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            if std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name) {
                let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                return stat.split_whitespace().next()?.parse().ok();
            }
        }
        None
    }

    /// `cargo test --release -p netwatch --lib export_speed -- --ignored --nocapture`:
    /// the whole export's CPU per record without the kernel side: the
    /// agent's share (encoding into the batch, thread time of the caller)
    /// and the exporter thread's (batching, HTTP to a local sink), for
    /// 200,000 `close` events handed over 100 at a time as the agent loop
    /// does. `NETWATCH_SPEED_GZIP=1` compresses as the default config does.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn export_cpu_per_record() {
        let gzip = std::env::var_os("NETWATCH_SPEED_GZIP").is_some();
        let cfg = OtlpExport {
            endpoint: Some(format!("http://{}", super::super::tests::sink(false).0)),
            protocol: OtlpProtocol::Http,
            compression: if gzip { Compression::Gzip } else { Compression::None },
            metrics_interval: Duration::ZERO,
            batch_delay: Duration::from_millis(200),
            queue: 1_000_000,
            ..OtlpExport::default()
        };
        let mut otlp = super::super::Otlp::new(&cfg).unwrap().unwrap();
        let mut e = json::tests::event();
        e.family = Family::V4;
        e.local = "127.0.0.1:8080".parse().unwrap();
        e.remote = "127.0.0.1:34162".parse().unwrap();
        (e.traffic.tx_bytes, e.traffic.rx_bytes, e.traffic.tx_packets, e.traffic.rx_packets) = (10_000, 200_000, 8, 11);
        let clock = WallClock::new();
        let n: u64 = 200_000;
        let sent = super::super::COUNTERS.sent.load(Relaxed);
        // The thread names itself once running.
        let mut exporter = None;
        for _ in 0..100 {
            exporter = thread_ns("nw-otlp");
            if exporter.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let exporter = exporter.expect("the exporter thread");
        let agent = speed::cpu();
        for i in 0..n {
            otlp.event(std::hint::black_box(&e), true, &clock);
            if i % 100 == 99 {
                otlp.flush();
            }
        }
        otlp.flush();
        let agent = speed::cpu() - agent;
        let deadline = Instant::now() + Duration::from_secs(60);
        while super::super::COUNTERS.sent.load(Relaxed) - sent < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            // As the agent loop does at least once per poll: the last records go once they have waited.
            otlp.flush();
        }
        let exporter = thread_ns("nw-otlp").unwrap() - exporter;
        assert_eq!(super::super::COUNTERS.sent.load(Relaxed) - sent, n);
        otlp.finish();
        let per = |ns: f64| ns / n as f64;
        eprintln!(
            "gzip {gzip}: {:.0} ns of CPU per record: {:.0} in the agent loop, {:.0} in the exporter thread",
            per(agent + exporter),
            per(agent),
            per(exporter)
        );
    }
}
