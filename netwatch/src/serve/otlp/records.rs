//! JSON lines as OTLP log records, the general path: `lost` lines and
//! alerts, and the oracle the tests hold the event encoder
//! (`encode.rs`) to. Each key becomes one attribute: keys with an
//! OpenTelemetry semantic-convention meaning ([`semconv`]) get that name,
//! the rest keep their JSON name under `netwatch.`.

use opentelemetry_proto::tonic::{
    common::v1::{any_value::Value as V, AnyValue, ArrayValue, KeyValue, KeyValueList},
    logs::v1::{LogRecord, SeverityNumber},
};
use serde_json::Value;

use crate::output::json::semconv;

/// The attribute name of a JSON key: [`semconv`], else `netwatch.KEY`.
pub fn attribute_name(key: &str) -> String {
    semconv(key).map_or_else(|| format!("netwatch.{key}"), str::to_owned)
}

/// A JSON value as an OTLP value: `family`'s `IPv4`/`IPv6` become the
/// semantic convention's `ipv4`/`ipv6`.
fn value(key: &str, v: Value) -> Option<AnyValue> {
    let v = match v {
        Value::Null => return None,
        Value::Bool(b) => V::BoolValue(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::IntValue(i),
            // u64 above i64::MAX (cookies) keep their bits' meaning as text.
            None if n.is_u64() => V::StringValue(n.to_string()),
            None => V::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) if key == "family" => V::StringValue(s.to_ascii_lowercase()),
        Value::String(s) => V::StringValue(s),
        Value::Array(a) => V::ArrayValue(ArrayValue { values: a.into_iter().filter_map(|v| value("", v)).collect() }),
        Value::Object(o) => V::KvlistValue(KeyValueList {
            values: o.into_iter().map(|(k, v)| KeyValue { key_strindex: 0, value: value(&k, v), key: k }).collect(),
        }),
    };
    Some(AnyValue { value: Some(v) })
}

fn string(s: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(V::StringValue(s.to_owned())) })
}

/// One JSON line (an event, `lost` or an alert) as a log record; `None`
/// if it is not a JSON object (never, from netwatch's own writers).
pub fn log_record(line: &[u8], observed_ns: u64) -> Option<LogRecord> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(line) else { return None };
    let mut r = LogRecord { observed_time_unix_nano: observed_ns, ..LogRecord::default() };
    let mut attributes = Vec::with_capacity(fields.len() + 1);
    for (key, v) in fields {
        match (key.as_str(), v) {
            ("ts", Value::String(ts)) => {
                r.time_unix_nano = ts.parse::<jiff::Timestamp>().map_or(0, |t| t.as_nanosecond() as u64);
            }
            ("event", Value::String(kind)) => {
                let (number, text) = severity(&kind);
                r.severity_number = number as i32;
                r.severity_text = text.to_owned();
                r.body = string(&kind);
                r.event_name = format!("netwatch.{kind}");
                attributes.push(KeyValue { key_strindex: 0, key: "netwatch.event".to_owned(), value: string(&kind) });
            }
            (k, v) => {
                let name = attribute_name(k);
                if let Some(v) = value(k, v) {
                    attributes.push(KeyValue { key_strindex: 0, key: name, value: Some(v) });
                }
            }
        }
    }
    let protocol = text(&attributes, "netwatch.protocol").map(str::as_bytes);
    if let Some(t) = r.event_name.strip_prefix("netwatch.").and_then(|k| transport(k, protocol)) {
        attributes.push(KeyValue { key_strindex: 0, key: "network.transport".to_owned(), value: string(t) });
    }
    // An alert line says whether it is firing in its `state`.
    if r.event_name == "netwatch.alert" && text(&attributes, "netwatch.state") == Some("firing") {
        r.severity_number = SeverityNumber::Warn as i32;
        r.severity_text = "WARN".to_owned();
    }
    r.attributes = attributes;
    Some(r)
}

/// The string value of attribute `key`.
fn text<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match &kv.value {
        Some(AnyValue { value: Some(V::StringValue(s)) }) => Some(s.as_str()),
        _ => None,
    })
}

/// `network.transport` of an event kind: a `connect_error` says its own
/// (its `protocol` field: a UDP `connect()` fails there too), the `udp_*`
/// kinds are UDP, the rest TCP; `lost` and alerts have none.
pub fn transport(kind: &str, protocol: Option<&[u8]>) -> Option<&'static str> {
    match (kind, protocol) {
        ("lost" | "alert", _) => None,
        (_, Some(b"udp")) => Some("udp"),
        (_, Some(b"tcp")) => Some("tcp"),
        (k, _) if k.starts_with("udp") => Some("udp"),
        _ => Some("tcp"),
    }
}

/// As the syslog export grades them: failed connects and resolved alerts
/// are notices (INFO2), lost events and firing alerts warnings.
pub fn severity(kind: &str) -> (SeverityNumber, &'static str) {
    match kind {
        "connect_failed" | "connect_error" | "alert" => (SeverityNumber::Info2, "NOTICE"),
        "lost" | "listen_drop" => (SeverityNumber::Warn, "WARN"),
        _ => (SeverityNumber::Info, "INFO"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a V> {
        r.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    #[test]
    fn event_line_fields_become_semconv_attributes() {
        let line = br#"{"ts":"2026-12-06T15:00:00.000001Z","event":"close","pid":42,"comm":"srv","uid":0,"family":"IPv6","saddr":"::1","sport":80,"daddr":"::1","dport":5000,"old_state":"LAST_ACK","new_state":"CLOSE","netns":4026531840,"cookie":18446744073709551615,"owner":"accept","duration_ms":3.5,"tx_bytes":7}"#;
        let r = log_record(line, 1).unwrap();
        assert_eq!(r.time_unix_nano, 1_796_569_200_000_001_000);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (SeverityNumber::Info as i32, "INFO"));
        assert_eq!(r.event_name, "netwatch.close");
        assert_eq!(attr(&r, "process.pid"), Some(&V::IntValue(42)));
        assert_eq!(attr(&r, "process.executable.name"), Some(&V::StringValue("srv".into())));
        assert_eq!(attr(&r, "network.type"), Some(&V::StringValue("ipv6".into())));
        assert_eq!(attr(&r, "network.transport"), Some(&V::StringValue("tcp".into())));
        assert_eq!(attr(&r, "source.port"), Some(&V::IntValue(80)));
        assert_eq!(attr(&r, "destination.port"), Some(&V::IntValue(5000)));
        assert_eq!(attr(&r, "netwatch.cookie"), Some(&V::StringValue("18446744073709551615".into())));
        assert_eq!(attr(&r, "netwatch.duration_ms"), Some(&V::DoubleValue(3.5)));
        assert_eq!(attr(&r, "netwatch.tx_bytes"), Some(&V::IntValue(7)));
        assert_eq!(attr(&r, "netwatch.event"), Some(&V::StringValue("close".into())));
        // Every JSON key but `ts` is an attribute, plus network.transport.
        assert_eq!(r.attributes.len(), 16 + 1);
    }

    #[test]
    fn firing_alert_is_a_warning_and_nested_values_survive() {
        let line = br#"{"ts":"2026-12-06T15:00:00.000000Z","event":"alert","alert":"syn_backlog","state":"firing","sockets":[{"sport":1}]}"#;
        let r = log_record(line, 1).unwrap();
        assert_eq!(r.severity_text, "WARN");
        assert!(attr(&r, "network.transport").is_none());
        let Some(V::ArrayValue(a)) = attr(&r, "netwatch.sockets") else { panic!("{r:?}") };
        assert_eq!(a.values.len(), 1);
        assert!(log_record(b"not json", 1).is_none());
    }

    #[test]
    fn connect_error_transport_is_its_protocol() {
        let line = br#"{"ts":"2026-12-06T15:00:00.000000Z","event":"connect_error","dport":53,"errno":"EHOSTUNREACH","protocol":"udp"}"#;
        let r = log_record(line, 1).unwrap();
        assert_eq!(attr(&r, "network.transport"), Some(&V::StringValue("udp".into())));
        assert_eq!(attr(&r, "netwatch.protocol"), Some(&V::StringValue("udp".into())));
        assert_eq!(r.severity_text, "NOTICE");
        assert_eq!(transport("udp_close", None), Some("udp"));
        assert_eq!(transport("connect_error", Some(b"tcp")), Some("tcp"));
        assert_eq!(transport("lost", None), None);
    }
}
