//! The hot path of the OTLP export: an `events --json` line straight to
//! the protobuf bytes of its `LogRecord`, without building the message
//! (serde_json values, then prost structs, then their encoding cost three
//! times as much, ~10 µs a record, at 100,000 records a second under
//! churn). It reads the flat objects netwatch's JSON writer makes: string
//! values without escapes, numbers, booleans. Any other line (an alert with
//! its nested sockets, a process name with a quote) goes through
//! [`super::records::log_record`] and prost; a unit test holds the two to
//! the same result.
//!
//! Once warm it allocates nothing per record: the line is read and the
//! record written in one pass into a reused buffer, attribute names come
//! from a cache of encoded names ([`Names`]), and the timestamp's whole
//! seconds are parsed once per second ([`Clock`]). Reading the JSON line
//! (rather than the `Event`) keeps one schema for every output; its price
//! is the scan, about half of the ~1 µs a record costs (docs/performance.md).

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use super::records::{self, semconv};

/// Field numbers of the OTLP messages written here (logs.proto, common.proto).
mod field {
    pub const TIME: u32 = 1;
    pub const SEVERITY_NUMBER: u32 = 2;
    pub const SEVERITY_TEXT: u32 = 3;
    pub const BODY: u32 = 5;
    pub const ATTRIBUTES: u32 = 6;
    pub const OBSERVED_TIME: u32 = 11;
    pub const EVENT_NAME: u32 = 12;
    pub const KV_KEY: u32 = 1;
    pub const KV_VALUE: u32 = 2;
    pub const STRING: u32 = 1;
    pub const BOOL: u32 = 2;
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
    /// Text (ASCII: anything else takes the general path).
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Scalar<'_> {
    /// The encoded length of the AnyValue holding it.
    fn any_len(self) -> usize {
        match self {
            Self::Str(s) => 1 + encoded_len_varint(s.len() as u64) + s.len(),
            Self::Int(i) => 1 + encoded_len_varint(i as u64),
            Self::Double(_) => 1 + 8,
            Self::Bool(_) => 2,
        }
    }

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
            Self::Bool(b) => {
                out.push(tag(field::BOOL, WireType::Varint));
                out.push(u8::from(b));
            }
        }
    }
}

/// One attribute; `prefix` + `key` is its name.
fn attribute(prefix: &str, key: &str, v: Scalar<'_>, out: &mut Vec<u8>) {
    let klen = prefix.len() + key.len();
    let any = v.any_len();
    let kv = 1 + encoded_len_varint(klen as u64) + klen + 1 + encoded_len_varint(any as u64) + any;
    out.push(tag(field::ATTRIBUTES, WireType::LengthDelimited));
    varint(kv as u64, out);
    out.push(tag(field::KV_KEY, WireType::LengthDelimited));
    varint(klen as u64, out);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(key.as_bytes());
    out.push(tag(field::KV_VALUE, WireType::LengthDelimited));
    varint(any as u64, out);
    v.encode_any(out);
}

/// Attribute names as `KeyValue.key` fields (tag, length, name), by JSON
/// key: each made the first time its key is seen ([`semconv`], else
/// `netwatch.KEY`), then found with a cheap hash and one comparison, and
/// copied whole. Matching every key against the semantic-convention list
/// and writing its name piece by piece cost a quarter of the encoder's time.
pub struct Names {
    /// Open addressing, linear probing.
    slots: Vec<Option<Name>>,
}

/// A JSON key and its attribute's encoded key field.
type Name = (Box<[u8]>, Box<[u8]>);

const NAME_SLOTS: usize = 256;

impl Names {
    fn new() -> Self {
        Self { slots: vec![None; NAME_SLOTS] }
    }

    /// Spreads netwatch's key names (3 to ~20 bytes) well enough over 256
    /// slots: length, first, middle and last bytes.
    fn slot(key: &[u8]) -> usize {
        let (Some(&first), Some(&last)) = (key.first(), key.last()) else { return 0 };
        let mid = key[key.len() / 2];
        (key.len() * 131 + usize::from(first) * 31 + usize::from(mid) * 7 + usize::from(last)) % NAME_SLOTS
    }

    /// The encoded key field of `key`'s attribute.
    fn get(&mut self, key: &[u8]) -> &[u8] {
        let mut i = Self::slot(key);
        // Never full: the keys netwatch writes are far fewer than the slots;
        // past half full, names are made afresh each time instead.
        for _ in 0..NAME_SLOTS / 2 {
            match &self.slots[i] {
                Some((k, _)) if **k == *key => break,
                Some(_) => i = (i + 1) % NAME_SLOTS,
                None => {
                    // ASCII, checked by the scan.
                    let Ok(key) = std::str::from_utf8(key) else { return b"" };
                    let mut field = Vec::with_capacity(key.len() + 12);
                    let (prefix, rest) = semconv(key).map_or(("netwatch.", key), |name| ("", name));
                    field.push(tag(field::KV_KEY, WireType::LengthDelimited));
                    varint((prefix.len() + rest.len()) as u64, &mut field);
                    field.extend_from_slice(prefix.as_bytes());
                    field.extend_from_slice(rest.as_bytes());
                    self.slots[i] = Some((key.as_bytes().into(), field.into()));
                    break;
                }
            }
        }
        match &self.slots[i] {
            Some((k, field)) if **k == *key => field,
            _ => b"",
        }
    }
}

/// One attribute whose key field [`Names`] made.
fn named_attribute(key_field: &[u8], v: Scalar<'_>, out: &mut Vec<u8>) {
    let any = v.any_len();
    let kv = key_field.len() + 1 + encoded_len_varint(any as u64) + any;
    out.push(tag(field::ATTRIBUTES, WireType::LengthDelimited));
    varint(kv as u64, out);
    out.extend_from_slice(key_field);
    out.push(tag(field::KV_VALUE, WireType::LengthDelimited));
    varint(any as u64, out);
    v.encode_any(out);
}

/// A cursor over a flat JSON object as netwatch's writer makes it: ASCII
/// keys and string values without escapes, numbers, booleans. Anything
/// else (an escape, `null`, nesting, non-ASCII text) is `Err`, and the line
/// takes the general path.
struct Flat<'a> {
    b: &'a [u8],
    i: usize,
    /// The index of the closing brace.
    end: usize,
}

struct NotFlat;

impl<'a> Flat<'a> {
    fn new(line: &'a [u8]) -> Option<Self> {
        let end = line.iter().rposition(|&b| !b.is_ascii_whitespace())?;
        (line.first() == Some(&b'{') && line[end] == b'}').then_some(Self { b: line, i: 1, end })
    }

    /// A quoted ASCII string without escapes, from `self.i` (its quote).
    fn string(&mut self) -> Result<&'a [u8], NotFlat> {
        if self.b.get(self.i) != Some(&b'"') {
            return Err(NotFlat);
        }
        let start = self.i + 1;
        let rest = self.b.get(start..self.end).ok_or(NotFlat)?;
        // An iterator's `position`: no bounds check per byte.
        let len = rest.iter().position(|&b| matches!(b, b'"' | b'\\' | 0x80..)).ok_or(NotFlat)?;
        if rest[len] != b'"' {
            return Err(NotFlat);
        }
        self.i = start + len + 1;
        Ok(&rest[..len])
    }

    /// The next field, `None` after the last.
    fn next(&mut self) -> Result<Option<(&'a [u8], Scalar<'a>)>, NotFlat> {
        if self.i >= self.end {
            return Ok(None);
        }
        let key = self.string()?;
        if self.b.get(self.i) != Some(&b':') {
            return Err(NotFlat);
        }
        self.i += 1;
        let value = if self.b.get(self.i) == Some(&b'"') {
            Scalar::Str(self.string()?)
        } else {
            let rest = self.b.get(self.i..self.end).ok_or(NotFlat)?;
            let len = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            self.i += len;
            number(&rest[..len]).ok_or(NotFlat)?
        };
        if self.i < self.end {
            // A comma, and a field after it.
            self.i += 1;
            if self.i >= self.end {
                return Err(NotFlat);
            }
        }
        Ok(Some((key, value)))
    }
}

/// A JSON number or boolean token as serde_json reads it: an integer in
/// i64's range as one, an unsigned one above it (cookies) as its digits'
/// text, a fraction or exponent as a double.
fn number(t: &[u8]) -> Option<Scalar<'_>> {
    match t {
        b"true" => return Some(Scalar::Bool(true)),
        b"false" => return Some(Scalar::Bool(false)),
        _ => {}
    }
    let (neg, digits) = match t.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, t),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    let mut integer = true;
    for &d in digits {
        if !d.is_ascii_digit() {
            integer = false;
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if integer {
        return match (neg, i64::try_from(v)) {
            (false, Ok(i)) => Some(Scalar::Int(i)),
            (false, Err(_)) => Some(Scalar::Str(t)),
            (true, Ok(i)) => Some(Scalar::Int(-i)),
            (true, Err(_)) => (v == 1 << 63).then_some(Scalar::Int(i64::MIN)),
        };
    }
    if !digits.iter().all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok().map(Scalar::Double)
}

/// Parses `ts` (RFC 3339, UTC) as nanoseconds, reusing the whole seconds
/// of the previous call: lines of one second share them.
pub struct Clock {
    second: String,
    second_ns: u64,
}

impl Clock {
    pub const fn new() -> Self {
        Self { second: String::new(), second_ns: 0 }
    }

    fn nanos(&mut self, ts: &[u8]) -> u64 {
        // ASCII, checked by the scan.
        let Ok(ts) = std::str::from_utf8(ts) else { return 0 };
        // YYYY-MM-DDTHH:MM:SS.uuuuuuZ, as netwatch writes it.
        let fixed = ts.len() == 27 && ts.as_bytes()[19] == b'.' && ts.ends_with('Z');
        if fixed {
            if let Ok(us) = ts[20..26].parse::<u64>() {
                if ts[..19] != self.second {
                    let Ok(t) = format!("{}Z", &ts[..19]).parse::<jiff::Timestamp>() else { return 0 };
                    self.second.clear();
                    self.second.push_str(&ts[..19]);
                    self.second_ns = t.as_nanosecond() as u64;
                }
                return self.second_ns + us * 1000;
            }
        }
        ts.parse::<jiff::Timestamp>().map_or(0, |t| t.as_nanosecond() as u64)
    }
}

/// `bytes` as field `tag` of a message (tag, length, bytes).
pub fn bytes_field(n: u32, b: &[u8], out: &mut Vec<u8>) {
    out.push(tag(n, WireType::LengthDelimited));
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// `ExportLogsServiceRequest { resource_logs: [ResourceLogs { resource,
/// scope_logs: [ScopeLogs { scope, log_records }] }] }` around `records`
/// (encoded by [`record`]); `resource` and `scope` are the encoded fields.
pub fn request(resource: &[u8], scope: &[u8], records: &[u8]) -> Vec<u8> {
    let scope_logs = scope.len() + records.len();
    let resource_logs = resource.len() + 1 + encoded_len_varint(scope_logs as u64) + scope_logs;
    let mut out = Vec::with_capacity(resource_logs + 8);
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(resource_logs as u64, &mut out);
    out.extend_from_slice(resource);
    encode_key(2, WireType::LengthDelimited, &mut out);
    encode_varint(scope_logs as u64, &mut out);
    out.extend_from_slice(scope);
    out.extend_from_slice(records);
    out
}

/// What the encoding reuses from one record to the next.
pub struct Encoder {
    clock: Clock,
    names: Names,
    scratch: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self { clock: Clock::new(), names: Names::new(), scratch: Vec::with_capacity(1024) }
    }

    /// Appends one line's `LogRecord` to `out` as a `ScopeLogs.log_records`
    /// field (tag, length, message). Returns whether the line was a JSON object.
    pub fn record(&mut self, line: &[u8], observed_ns: u64, out: &mut Vec<u8>) -> bool {
        let scratch = &mut self.scratch;
        scratch.clear();
        let flat = Flat::new(line)
            .is_some_and(|f| encode_flat(f, observed_ns, &mut self.clock, &mut self.names, scratch).is_ok());
        if !flat {
            scratch.clear();
            match records::log_record(line, observed_ns) {
                Some(r) => prost::Message::encode_raw(&r, scratch),
                None => return false,
            }
        }
        // ScopeLogs.log_records is field 2.
        out.push(tag(2, WireType::LengthDelimited));
        varint(scratch.len() as u64, out);
        out.extend_from_slice(scratch);
        true
    }
}

/// Writes the record field by field as the line is read: no allocation.
fn encode_flat(
    mut f: Flat<'_>,
    observed_ns: u64,
    clock: &mut Clock,
    names: &mut Names,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    let mut kind = None;
    let mut protocol = None;
    while let Some((key, v)) = f.next()? {
        match (key, v) {
            (b"ts", Scalar::Str(ts)) => {
                out.push(tag(field::TIME, WireType::SixtyFourBit));
                out.extend_from_slice(&clock.nanos(ts).to_le_bytes());
            }
            (b"event", Scalar::Str(k)) => {
                // ASCII, checked by the scan.
                let k = std::str::from_utf8(k).map_err(|_| NotFlat)?;
                kind = Some(k);
                let (number, text) = records::severity(k);
                out.push(tag(field::SEVERITY_NUMBER, WireType::Varint));
                varint(number as u64, out);
                bytes_field(field::SEVERITY_TEXT, text.as_bytes(), out);
                out.push(tag(field::BODY, WireType::LengthDelimited));
                varint(v.any_len() as u64, out);
                v.encode_any(out);
                out.push(tag(field::EVENT_NAME, WireType::LengthDelimited));
                varint(("netwatch.".len() + k.len()) as u64, out);
                out.extend_from_slice(b"netwatch.");
                out.extend_from_slice(k.as_bytes());
                attribute("", "netwatch.event", v, out);
            }
            (b"family", Scalar::Str(f)) => {
                let lower = match f {
                    b"IPv4" => b"ipv4",
                    b"IPv6" => b"ipv6",
                    other => other,
                };
                attribute("", "network.type", Scalar::Str(lower), out);
            }
            (k, v) => {
                if let (b"protocol", Scalar::Str(p)) = (k, v) {
                    protocol = Some(p);
                }
                named_attribute(names.get(k), v, out);
            }
        }
    }
    if let Some(t) = kind.and_then(|k| records::transport(k, protocol)) {
        attribute("", "network.transport", Scalar::Str(t.as_bytes()), out);
    }
    out.push(tag(field::OBSERVED_TIME, WireType::SixtyFourBit));
    out.extend_from_slice(&observed_ns.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};
    use prost::Message as _;

    use super::*;

    /// Decoded back with prost, the fast encoding is the same record as the
    /// general path builds (attributes in JSON order there, sorted here).
    fn same_as_general(line: &[u8]) {
        let mut out = Vec::new();
        assert!(Encoder::new().record(line, 5, &mut out));
        let mut fast = ScopeLogs::decode(&out[..]).unwrap().log_records.remove(0);
        let mut general: LogRecord = records::log_record(line, 5).unwrap();
        fast.attributes.sort_by(|a, b| a.key.cmp(&b.key));
        general.attributes.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(fast, general, "{}", String::from_utf8_lossy(line));
    }

    #[test]
    fn fast_encoding_equals_the_general_one() {
        same_as_general(br#"{"ts":"2026-12-06T15:00:00.000001Z","event":"close","pid":42,"comm":"srv","uid":0,"family":"IPv6","saddr":"::1","sport":80,"daddr":"::1","dport":5000,"old_state":"LAST_ACK","new_state":"CLOSE","netns":4026531840,"cookie":18446744073709551615,"owner":"accept","duration_ms":3.5,"tx_bytes":7}"#);
        same_as_general(br#"{"ts":"2026-12-06T15:00:01.999999Z","event":"udp_close","pid":1,"comm":"a b","uid":4294967295,"family":"IPv4","saddr":"127.0.0.1","sport":53,"daddr":"0.0.0.0","dport":0,"container_id":"abc","pod_uid":"u-1","flag":true,"neg":-3}"#);
        same_as_general(b"{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"event\":\"lost\",\"count\":17,\"ring_full\":15,\"skipped\":2}\n");
        // A UDP connect() that failed: its transport is its `protocol`'s.
        same_as_general(br#"{"ts":"2026-12-06T15:00:00.000001Z","event":"connect_error","pid":7,"comm":"dig","uid":0,"family":"IPv4","saddr":"0.0.0.0","sport":0,"daddr":"10.98.0.6","dport":53,"reason":"unreachable","errno":"EHOSTUNREACH","protocol":"udp"}"#);
        same_as_general(br#"{"ts":"2026-12-06T15:00:00.000001Z","event":"connect_error","pid":7,"errno":"EACCES","protocol":"tcp"}"#);
        // Through the general path: an escape, nesting.
        same_as_general(br#"{"ts":"2026-12-06T15:00:00.000001Z","event":"connect","comm":"a\"b","pid":1}"#);
        same_as_general(
            br#"{"ts":"2026-12-06T15:00:00.000000Z","event":"alert","state":"firing","sockets":[{"sport":1}]}"#,
        );
    }

    #[test]
    fn request_decodes_as_the_message() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        let (mut resource, mut scope, mut records) = (Vec::new(), Vec::new(), Vec::new());
        bytes_field(1, &super::super::resource().encode_to_vec(), &mut resource);
        bytes_field(1, &super::super::scope().encode_to_vec(), &mut scope);
        let line = br#"{"ts":"2026-12-06T15:00:00.000001Z","event":"listen","pid":42}"#;
        let mut enc = Encoder::new();
        for _ in 0..3 {
            enc.record(line, 1, &mut records);
        }
        let req = ExportLogsServiceRequest::decode(&request(&resource, &scope, &records)[..]).unwrap();
        let scope_logs = &req.resource_logs[0].scope_logs[0];
        assert_eq!(req.resource_logs[0].resource, Some(super::super::resource()));
        assert_eq!(scope_logs.scope, Some(super::super::scope()));
        assert_eq!(scope_logs.log_records.len(), 3);
        assert_eq!(scope_logs.log_records[2], records::log_record(line, 1).unwrap());
    }

    fn flat(line: &[u8]) -> Option<Vec<(&[u8], Scalar<'_>)>> {
        let mut f = Flat::new(line)?;
        let mut out = Vec::new();
        while let Some(kv) = f.next().ok()? {
            out.push(kv);
        }
        Some(out)
    }

    #[test]
    fn scan_takes_only_flat_objects() {
        assert_eq!(
            flat(br#"{"a":1,"b":"x"}"#),
            Some(vec![(&b"a"[..], Scalar::Int(1)), (&b"b"[..], Scalar::Str(b"x"))])
        );
        assert_eq!(flat(b"{}\n"), Some(vec![]));
        assert!(flat(br#"{"a":1,}"#).is_none());
        assert!(flat(br#"{"a":[1]}"#).is_none());
        assert!(flat(br#"{"a":"x\"y"}"#).is_none());
        assert!(flat(br#"{"a":null}"#).is_none());
        assert!(flat("{\"a\":\"é\"}".as_bytes()).is_none());
        assert!(flat(b"not json").is_none());
        assert_eq!(flat(br#"{"a":1.5e3}"#), Some(vec![(&b"a"[..], Scalar::Double(1500.0))]));
    }

    #[test]
    fn numbers_as_serde_json_reads_them() {
        assert_eq!(number(b"-0"), Some(Scalar::Int(0)));
        assert_eq!(number(b"-9223372036854775808"), Some(Scalar::Int(i64::MIN)));
        assert_eq!(number(b"9223372036854775807"), Some(Scalar::Int(i64::MAX)));
        assert_eq!(number(b"18446744073709551615"), Some(Scalar::Str(b"18446744073709551615")));
        assert_eq!(number(b"18446744073709551616"), None);
        assert_eq!(number(b"-"), None);
        assert_eq!(number(b"1x"), None);
        assert_eq!(number(b"true"), Some(Scalar::Bool(true)));
    }

    #[test]
    fn clock_reuses_the_second() {
        let mut c = Clock::new();
        let a = c.nanos(b"2026-12-06T15:00:00.000001Z");
        let b = c.nanos(b"2026-12-06T15:00:00.500000Z");
        assert_eq!(b - a, 499_999_000);
        assert_eq!(c.nanos(b"2026-12-06T15:00:01.000000Z"), a - 1000 + 1_000_000_000);
        assert_eq!(c.nanos(b"1970-01-01T00:00:00Z"), 0);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release -p netwatch speed -- --ignored --nocapture`:
    /// the encoder's cost per record, alone.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn ns_per_record() {
        let line = br#"{"ts":"2026-11-22T07:05:18.304049Z","event":"close","pid":19421,"comm":"python3","uid":0,"tid":19421,"thread":"python3","family":"IPv4","saddr":"127.0.0.1","sport":8080,"daddr":"127.0.0.1","dport":34162,"old_state":"FIN_WAIT2","new_state":"CLOSE","netns":4026531833,"cookie":109463105,"owner":"accept","duration_ms":5.49,"tx_bytes":10000,"rx_bytes":200000,"tx_packets":8,"rx_packets":11,"retransmits":0,"resets_sent":0,"resets_received":0}"#;
        let (mut enc, mut out) = (Encoder::new(), Vec::with_capacity(1 << 20));
        // CPU time, not wall time: the machine is shared.
        let cpu = || {
            let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: a valid clock id and a timespec to fill.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut t) };
            t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
        };
        let n = 200_000;
        let t = cpu();
        for _ in 0..n {
            if out.len() > (1 << 20) - 2048 {
                out.clear();
            }
            enc.record(line, 1, &mut out);
        }
        eprintln!("{:.0} ns of CPU per record", (cpu() - t) / f64::from(n));
        let t = cpu();
        let mut fields = 0;
        for _ in 0..n {
            let mut f = Flat::new(std::hint::black_box(line)).unwrap();
            while let Ok(Some(kv)) = f.next() {
                std::hint::black_box(kv);
                fields += 1;
            }
        }
        eprintln!("{:.0} ns of CPU per record to scan {} fields", (cpu() - t) / f64::from(n), fields / n);
    }
}
