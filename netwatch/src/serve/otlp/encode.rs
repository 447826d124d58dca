//! The hot path of the OTLP export: an `events --json` line straight to
//! the protobuf bytes of its `LogRecord`, without building the message
//! (serde_json values, then prost structs, then their encoding cost three
//! times as much, ~10 µs a record, at 100,000 records a second under
//! churn). It reads the flat objects netwatch's JSON writer makes: string
//! values without escapes, numbers, booleans. Any other line (an alert with
//! its nested sockets, a process name with a quote) goes through
//! [`super::records::log_record`] and prost; a unit test holds the two to
//! the same result.

use prost::{
    encoding::{encode_key, encode_varint, encoded_len_varint, WireType},
    Message as _,
};

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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Scalar<'a> {
    Str(&'a str),
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
            Self::Str(s) => bytes_field(field::STRING, s.as_bytes(), out),
            Self::Int(i) => {
                encode_key(field::INT, WireType::Varint, out);
                encode_varint(i as u64, out);
            }
            Self::Double(d) => {
                encode_key(field::DOUBLE, WireType::SixtyFourBit, out);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Self::Bool(b) => {
                encode_key(field::BOOL, WireType::Varint, out);
                encode_varint(u64::from(b), out);
            }
        }
    }
}

/// One attribute; `prefix` + `key` is its name.
fn attribute(prefix: &str, key: &str, v: Scalar<'_>, out: &mut Vec<u8>) {
    let klen = prefix.len() + key.len();
    let any = v.any_len();
    let kv = 1 + encoded_len_varint(klen as u64) + klen + 1 + encoded_len_varint(any as u64) + any;
    encode_key(field::ATTRIBUTES, WireType::LengthDelimited, out);
    encode_varint(kv as u64, out);
    encode_key(field::KV_KEY, WireType::LengthDelimited, out);
    encode_varint(klen as u64, out);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(key.as_bytes());
    encode_key(field::KV_VALUE, WireType::LengthDelimited, out);
    encode_varint(any as u64, out);
    v.encode_any(out);
}

/// The flat object's fields in order, or `None` for anything else.
fn scan(line: &[u8]) -> Option<Vec<(&str, Scalar<'_>)>> {
    let s = std::str::from_utf8(line).ok()?.trim_end();
    let mut rest = s.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::with_capacity(32);
    while !rest.is_empty() {
        let r = rest.strip_prefix('"')?;
        let end = r.find('"')?;
        let key = &r[..end];
        if key.contains('\\') {
            return None;
        }
        let r = r[end + 1..].strip_prefix(':')?;
        let (value, r) = if let Some(r) = r.strip_prefix('"') {
            let end = r.find(['"', '\\'])?;
            if r.as_bytes()[end] == b'\\' {
                return None;
            }
            (Scalar::Str(&r[..end]), &r[end + 1..])
        } else {
            let end = r.find(',').unwrap_or(r.len());
            let token = &r[..end];
            let v = match token {
                "true" => Scalar::Bool(true),
                "false" => Scalar::Bool(false),
                t if t.contains(['.', 'e', 'E']) => Scalar::Double(t.parse().ok()?),
                t if t.starts_with('-') => Scalar::Int(t.parse().ok()?),
                // Above i64::MAX (cookies): the digits, as text.
                t => t
                    .parse::<i64>()
                    .map_or_else(|_| t.parse::<u64>().ok().map(|_| Scalar::Str(t)), |i| Some(Scalar::Int(i)))?,
            };
            (v, &r[end..])
        };
        out.push((key, value));
        rest = match r.strip_prefix(',') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return None,
            None if r.is_empty() => r,
            None => return None,
        };
    }
    Some(out)
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

    fn nanos(&mut self, ts: &str) -> u64 {
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
pub fn bytes_field(tag: u32, b: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(b.len() as u64, out);
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

/// Appends one line's `LogRecord` to `out` as a `ScopeLogs.log_records`
/// field (tag, length, message); `scratch` is reused between calls.
/// Returns whether the line was a JSON object.
pub fn record(line: &[u8], observed_ns: u64, clock: &mut Clock, scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
    scratch.clear();
    match scan(line) {
        Some(fields) => encode_flat(&fields, observed_ns, clock, scratch),
        None => match records::log_record(line, observed_ns) {
            Some(r) => r.encode_raw(scratch),
            None => return false,
        },
    }
    // ScopeLogs.log_records is field 2.
    bytes_field(2, scratch, out);
    true
}

fn encode_flat(fields: &[(&str, Scalar<'_>)], observed_ns: u64, clock: &mut Clock, out: &mut Vec<u8>) {
    for &(key, v) in fields {
        match (key, v) {
            ("ts", Scalar::Str(ts)) => {
                encode_key(field::TIME, WireType::SixtyFourBit, out);
                out.extend_from_slice(&clock.nanos(ts).to_le_bytes());
            }
            ("event", Scalar::Str(kind)) => {
                let (number, text) = records::severity(kind);
                encode_key(field::SEVERITY_NUMBER, WireType::Varint, out);
                encode_varint(number as u64, out);
                bytes_field(field::SEVERITY_TEXT, text.as_bytes(), out);
                encode_key(field::BODY, WireType::LengthDelimited, out);
                encode_varint(v.any_len() as u64, out);
                v.encode_any(out);
                let name_len = "netwatch.".len() + kind.len();
                encode_key(field::EVENT_NAME, WireType::LengthDelimited, out);
                encode_varint(name_len as u64, out);
                out.extend_from_slice(b"netwatch.");
                out.extend_from_slice(kind.as_bytes());
                if kind != "lost" && kind != "alert" {
                    let transport = if kind.starts_with("udp") { "udp" } else { "tcp" };
                    attribute("", "network.transport", Scalar::Str(transport), out);
                }
                attribute("", "netwatch.event", v, out);
            }
            ("family", Scalar::Str(f)) => {
                let lower = match f {
                    "IPv4" => "ipv4",
                    "IPv6" => "ipv6",
                    other => other,
                };
                attribute("", "network.type", Scalar::Str(lower), out);
            }
            (k, v) => match semconv(k) {
                Some(name) => attribute("", name, v, out),
                None => attribute("netwatch.", k, v, out),
            },
        }
    }
    encode_key(field::OBSERVED_TIME, WireType::SixtyFourBit, out);
    out.extend_from_slice(&observed_ns.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};

    use super::*;

    /// Decoded back with prost, the fast encoding is the same record as the
    /// general path builds (attributes in JSON order there, sorted here).
    fn same_as_general(line: &[u8]) {
        let mut out = Vec::new();
        assert!(record(line, 5, &mut Clock::new(), &mut Vec::new(), &mut out));
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
        for _ in 0..3 {
            record(line, 1, &mut Clock::new(), &mut Vec::new(), &mut records);
        }
        let req = ExportLogsServiceRequest::decode(&request(&resource, &scope, &records)[..]).unwrap();
        let scope_logs = &req.resource_logs[0].scope_logs[0];
        assert_eq!(req.resource_logs[0].resource, Some(super::super::resource()));
        assert_eq!(scope_logs.scope, Some(super::super::scope()));
        assert_eq!(scope_logs.log_records.len(), 3);
        assert_eq!(scope_logs.log_records[2], records::log_record(line, 1).unwrap());
    }

    #[test]
    fn scan_takes_only_flat_objects() {
        assert!(scan(br#"{"a":1,"b":"x"}"#).is_some());
        assert!(scan(br#"{"a":1,}"#).is_none());
        assert!(scan(br#"{"a":[1]}"#).is_none());
        assert!(scan(br#"{"a":"x\"y"}"#).is_none());
        assert!(scan(b"not json").is_none());
        assert!(scan(br#"{"a":1.5e3}"#).is_some_and(|f| f[0].1 == Scalar::Double(1500.0)));
    }

    #[test]
    fn clock_reuses_the_second() {
        let mut c = Clock::new();
        let a = c.nanos("2026-12-06T15:00:00.000001Z");
        let b = c.nanos("2026-12-06T15:00:00.500000Z");
        assert_eq!(b - a, 499_999_000);
        assert_eq!(c.nanos("2026-12-06T15:00:01.000000Z"), a - 1000 + 1_000_000_000);
        assert_eq!(c.nanos("1970-01-01T00:00:00Z"), 0);
    }
}
