use std::time::Duration;

use super::*;

#[test]
fn empty_file_is_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.metrics.listen, "127.0.0.1:9977");
    assert_eq!(c.alerts.ports, [1234, 4444, 5555, 6666, 7777, 8888, 9999].into());
    assert!(c.export.file.path.is_none() && !c.export.syslog.enabled);
}

#[test]
fn file_values_and_errors() {
    let c = parse(
        r#"
        [metrics]
        listen = "127.0.0.1:9100"
        [export.file]
        path = "/tmp/x.jsonl"
        kinds = ["close", "alert"]
        [alerts.syn_backlog]
        threshold = 50
        window = "30s"
        [alerts]
        ports = [31337]
        "#,
    )
    .unwrap();
    assert_eq!(c.metrics.listen, "127.0.0.1:9100");
    assert_eq!(c.export.file.kinds, KindSet::of([ExportKind::Alert, ExportKind::Event(EventKind::Close)]));
    assert_eq!((c.alerts.syn_backlog.threshold, c.alerts.syn_backlog.window), (50, Duration::from_secs(30)));
    assert!(c.alerts.syn_backlog.enabled);
    assert_eq!(c.alerts.ports, [31337].into());
    for bad in [
        "[metrics]\nlisten = \"nowhere\"",
        "[export.file]\nkinds = [\"bogus\"]",
        "[alerts.syn_backlog]\nwindow = \"5 parsecs\"",
        "[alerts.syn_backlog]\nwindow = \"0s\"",
        "[alerts.nope]\nthreshold = 1",
        "[export.syslog]\nfacility = \"mail2\"",
        "not toml =",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn missing_files() {
    let nowhere = Path::new("/nonexistent/netwatch.toml");
    assert_eq!(load(nowhere, false).unwrap(), Config::default());
    let e = load(nowhere, true).unwrap_err();
    assert!(format!("{e:#}").contains("/nonexistent/netwatch.toml"), "{e:#}");
}

#[test]
fn alert_flag_syntax() {
    assert!(parse_alert_flag("syn_backlog").is_err());
    assert!(parse_alert_flag("bogus=1").is_err());
    assert!(parse_alert_flag("syn_backlog=x").is_err());
    assert!(parse_alert_flag("syn_backlog=1/5 parsecs").is_err());
    assert_eq!(parse_alert_flag("new_listener=off").unwrap().threshold, None);
    let f = parse_alert_flag("syn_backlog=100/30s").unwrap();
    assert_eq!((f.threshold, f.window), (Some(100), Some(Duration::from_secs(30))));
}

#[test]
fn shipped_example_is_the_defaults() {
    let text = include_str!("../../dist/netwatch.toml");
    assert_eq!(parse(text).unwrap(), Config::default());
}

/// `all` is every kind there is, `udp_close` included (it was once left
/// out of a hand-written list), and every name parses back to its kind.
#[test]
fn all_export_kinds_are_every_event_kind_plus_lost_and_alert() {
    let all = parse_kinds(["all"]).unwrap();
    let names: Vec<_> = all.iter().map(ExportKind::name).collect();
    let want = "state listen connect established handshake connect_failed close destroy accept udp_close \
                connect_error listen_drop lost alert";
    assert_eq!(names, want.split(' ').collect::<Vec<_>>());
    for k in EventKind::ALL {
        assert!(all.contains(ExportKind::Event(k)), "{k:?} not in all");
        assert_eq!(parse_kinds([k.name()]).unwrap(), KindSet::of([ExportKind::Event(k)]));
    }
    let defaults = FileExport::default().kinds;
    assert!(defaults.contains(ExportKind::Event(EventKind::UdpClose)));
    assert!(!defaults.contains(ExportKind::Event(EventKind::Destroy)));
    assert!(parse_kinds(["udp"]).unwrap_err().contains("udp_close"));
}

/// An alert's name is also its `[alerts.NAME]` table in the config file:
/// setting each table must set that kind's rule and no other.
#[test]
fn alert_names_are_their_config_tables() {
    for kind in AlertKind::ALL {
        let c = parse(&format!("[alerts.{}]\nthreshold = 777\n", kind.name())).unwrap();
        for (k, rule) in c.alerts.rules() {
            assert_eq!(rule.threshold == 777, k == kind, "{} set by [alerts.{}]", k.name(), kind.name());
        }
        let flag = parse_alert_flag(&format!("{}=off", kind.name())).unwrap();
        assert_eq!(flag.kind, kind);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.name()));
    }
}

#[test]
fn export_filter_is_an_expression() {
    let c = parse("[export]\nfilter = \"state established and dport = :443\"\n").unwrap();
    assert_eq!(c.export.filter.expr, crate::filter::parse("state established dport :443").unwrap());
    let err = format!("{:#}", parse("[export]\nfilter = \"dport = :https\"\n").unwrap_err());
    assert!(err.contains("bad filter expression") && err.contains("^^^^^^"), "{err}");
}

/// deploy/kubernetes/configmap.yaml's netwatch.toml (the block scalar under
/// `netwatch.toml: |`) is a config netwatch accepts, OTLP section included.
#[test]
fn kubernetes_configmap_config_parses() {
    let yaml = include_str!("../../../deploy/kubernetes/configmap.yaml");
    let start = yaml.find("netwatch.toml: |").expect("the netwatch.toml key");
    let toml: String = yaml[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let c = parse(&toml).unwrap_or_else(|e| panic!("{e:#}\n{toml}"));
    assert_eq!(c.export.otlp.protocol, OtlpProtocol::Grpc);
    assert!(c.export.otlp.endpoint.as_deref().is_some_and(|e| e.ends_with(":4317")));
    assert!(c.export.otlp.kinds.contains(ExportKind::Alert));
}

#[test]
fn otlp_settings_are_checked() {
    let bad = |text: &str, want: &str| {
        let e = format!("{:#}", parse(text).unwrap_err());
        assert!(e.contains(want), "{text:?}: {e}");
    };
    bad("[export.otlp]\nendpoint = \"127.0.0.1:4317\"\n", "http:// or https://");
    bad("[export.otlp]\nendpoint = \"https://c:4317\"\n", "ca_file");
    bad("[export.otlp]\nendpoint = \"http://c:4317\"\nqueue = 0\n", "at least 1");
    bad("[export.otlp]\nprotocol = \"udp\"\n", "unknown variant");
    bad("[export.otlp]\nendpoint = \"http://c:4317\"\nheaders_file = \"/nonexistent/h\"\n", "/nonexistent/h");
    let mtls = "[export.otlp]\nendpoint = \"http://c:4317\"\nclient_cert_file = \"/nonexistent/c\"\n";
    bad(mtls, "both or neither");
    bad(&format!("{mtls}client_key_file = \"/nonexistent/k\"\n"), "/nonexistent/c");
    let c =
        parse("[export.otlp]\nendpoint = \"http://c:4318\"\nprotocol = \"http\"\nbatch_delay = \"250ms\"\n").unwrap();
    assert_eq!((c.export.otlp.protocol, c.export.otlp.batch_delay), (OtlpProtocol::Http, Duration::from_millis(250)));
}
