//! The metrics of `/metrics` as OTLP metrics: the very text exposition a
//! Prometheus scrape gets, read back family by family, so both carry the
//! same names, labels and values with no second registry. Counters become
//! cumulative monotonic sums (family name without `_total`, which a
//! Prometheus exporter in the collector adds back), gauges gauges,
//! histograms explicit-bucket histograms.

use opentelemetry_proto::tonic::{
    common::v1::{any_value::Value as V, AnyValue, KeyValue},
    metrics::v1::{
        metric::Data, number_data_point::Value as N, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
        Metric, NumberDataPoint, Sum,
    },
};

/// Label pairs of one sample, in exposition order.
type Labels = Vec<(String, String)>;

/// The metrics in `text` (OpenMetrics), stamped `now_ns`, counting from `start_ns`.
pub fn from_exposition(text: &str, start_ns: u64, now_ns: u64) -> Vec<Metric> {
    let mut out: Vec<Metric> = Vec::new();
    let mut help = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').map_or("", |(_, h)| h).to_owned();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let Some((name, kind)) = rest.split_once(' ') else { continue };
            let data = match kind {
                "counter" => Data::Sum(Sum {
                    data_points: Vec::new(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
                "gauge" => Data::Gauge(Gauge { data_points: Vec::new() }),
                "histogram" => Data::Histogram(Histogram {
                    data_points: Vec::new(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
                _ => continue,
            };
            out.push(Metric {
                name: name.to_owned(),
                description: std::mem::take(&mut help),
                data: Some(data),
                ..Metric::default()
            });
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((sample, labels, value)) = parse_sample(line) else { continue };
        let Some(m) = out.last_mut() else { continue };
        let suffix = sample.strip_prefix(m.name.as_str()).unwrap_or("?");
        match (&mut m.data, suffix) {
            (Some(Data::Sum(s)), "_total") => s.data_points.push(number(labels, value, start_ns, now_ns)),
            (Some(Data::Gauge(g)), "") => g.data_points.push(number(labels, value, start_ns, now_ns)),
            (Some(Data::Histogram(h)), _) => histogram_sample(h, suffix, labels, value, start_ns, now_ns),
            _ => {}
        }
    }
    out
}

fn attributes(labels: Labels) -> Vec<KeyValue> {
    labels
        .into_iter()
        .map(|(k, v)| KeyValue { key_strindex: 0, key: k, value: Some(AnyValue { value: Some(V::StringValue(v)) }) })
        .collect()
}

fn number(labels: Labels, value: f64, start_ns: u64, now_ns: u64) -> NumberDataPoint {
    // Whole numbers (every counter and gauge netwatch has) as integers.
    let v = if value.fract() == 0.0 && value.abs() < 9.0e15 { N::AsInt(value as i64) } else { N::AsDouble(value) };
    NumberDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        value: Some(v),
        ..NumberDataPoint::default()
    }
}

/// Histogram samples arrive as `_sum`, `_count`, then cumulative
/// `_bucket{le=...}`s; OTLP wants per-bucket counts and the finite bounds.
fn histogram_sample(h: &mut Histogram, suffix: &str, mut labels: Labels, value: f64, start_ns: u64, now_ns: u64) {
    let le = labels.iter().position(|(k, _)| k == "le").map(|i| labels.remove(i).1);
    let attrs = attributes(labels);
    if h.data_points.last().is_none_or(|p| p.attributes != attrs) {
        h.data_points.push(HistogramDataPoint {
            attributes: attrs,
            start_time_unix_nano: start_ns,
            time_unix_nano: now_ns,
            ..HistogramDataPoint::default()
        });
    }
    let Some(p) = h.data_points.last_mut() else { return };
    match suffix {
        "_sum" => p.sum = Some(value),
        "_count" => p.count = value as u64,
        "_bucket" => {
            let cumulative = value as u64;
            let below: u64 = p.bucket_counts.iter().sum();
            p.bucket_counts.push(cumulative.saturating_sub(below));
            p.explicit_bounds.extend(le.and_then(|le| le.parse::<f64>().ok()).filter(|b| b.is_finite()));
        }
        _ => {}
    }
}

/// `name{k="v",...} value` (labels optional; a trailing timestamp ignored).
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (name, rest) = line.split_once(' ')?;
            return Some((name, Vec::new(), parse_value(rest)?));
        }
    };
    let mut labels = Vec::new();
    let mut chars = rest.char_indices();
    loop {
        let (start, c) = chars.next()?;
        if c == '}' {
            return Some((name, labels, parse_value(rest[start + 1..].trim_start())?));
        }
        if c == ',' {
            continue;
        }
        let eq = rest[start..].find("=\"")? + start;
        let key = rest[start..eq].to_owned();
        while chars.next()?.0 < eq + 1 {}
        let mut v = String::new();
        loop {
            match chars.next()?.1 {
                '"' => break,
                '\\' => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                c => v.push(c),
            }
        }
        labels.push((key, v));
    }
}

/// The first word as a number (Rust's `f64` parsing takes `+Inf` and `-Inf`).
fn parse_value(s: &str) -> Option<f64> {
    s.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP netwatch_sockets Current sockets.\n# TYPE netwatch_sockets gauge\n\
        netwatch_sockets{proto=\"tcp\",state=\"LISTEN\"} 3\n\
        # HELP netwatch_connections_opened TCP connections opened.\n# TYPE netwatch_connections_opened counter\n\
        netwatch_connections_opened_total{proto=\"tcp\",direction=\"active\"} 4\n\
        # TYPE netwatch_resets counter\nnetwatch_resets_total 0\n\
        # TYPE netwatch_listener_connections gauge\n\
        netwatch_listener_connections{listener=\"a\\\"b,c}\",netns=\"1\",state=\"ESTABLISHED\"} 2\n\
        # TYPE netwatch_ring_drain_events histogram\nnetwatch_ring_drain_events_sum 10.0\n\
        netwatch_ring_drain_events_count 3\nnetwatch_ring_drain_events_bucket{le=\"1.0\"} 1\n\
        netwatch_ring_drain_events_bucket{le=\"4.0\"} 2\nnetwatch_ring_drain_events_bucket{le=\"+Inf\"} 3\n# EOF\n";

    #[test]
    fn exposition_to_otlp() {
        let m = from_exposition(TEXT, 1, 2);
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "netwatch_sockets",
                "netwatch_connections_opened",
                "netwatch_resets",
                "netwatch_listener_connections",
                "netwatch_ring_drain_events"
            ]
        );
        assert_eq!(m[0].description, "Current sockets.");
        let Some(Data::Sum(s)) = &m[1].data else { panic!() };
        assert!(s.is_monotonic);
        assert_eq!(s.data_points[0].value, Some(N::AsInt(4)));
        assert_eq!(s.data_points[0].attributes[1].key, "direction");
        let Some(Data::Sum(s)) = &m[2].data else { panic!() };
        assert_eq!((s.data_points.len(), s.data_points[0].attributes.len()), (1, 0));
        let Some(Data::Gauge(g)) = &m[3].data else { panic!() };
        let v = &g.data_points[0].attributes[0].value;
        assert_eq!(v.as_ref().and_then(|v| v.value.clone()), Some(V::StringValue("a\"b,c}".into())));
        let Some(Data::Histogram(h)) = &m[4].data else { panic!() };
        let p = &h.data_points[0];
        assert_eq!(
            (p.count, p.sum, &p.bucket_counts[..], &p.explicit_bounds[..]),
            (3, Some(10.0), &[1, 1, 1][..], &[1.0, 4.0][..])
        );
    }
}
