//! OTLP export against a real receiver (tests/otlp_receiver.py, built on
//! the official protobuf definitions with grpcio): exact records over gRPC,
//! HTTP with TLS and a token, a wrong token, and a receiver that is down
//! for 10 s with a queue too small to hold what happened meanwhile.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netwatch_tests::{free_port, wait, Peer};
use serde_json::{Map, Value};

use super::config;
use super::harness::{Serve, TempDir};

const PYTHON: &str = "/var/cache/netwatch-py/bin/python3";

/// A running receiver; killed on drop.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(protocol: &str, port: u16, out: &Path, extra: &[&str]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/otlp_receiver.py");
        assert!(Path::new(PYTHON).exists(), "{PYTHON} missing: run `cargo xtask setup` (the python packages step)");
        let mut child = Command::new(PYTHON)
            .args([script, "--protocol", protocol, "--port", &port.to_string(), "--out", out.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the OTLP receiver");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).expect("receiver's ready line");
        assert!(first.starts_with("ready"), "receiver said {first:?}");
        Self { child, port, out: out.to_owned() }
    }

    /// Everything received so far, one JSON object each.
    fn received(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).expect("receiver's own JSON")).collect()
    }

    fn logs(&self) -> Vec<Value> {
        self.received().into_iter().filter(|v| v["type"] == "log").collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The attributes an `events --json` line must arrive with: the test's own
/// copy of the mapping that docs/serve.md#otlp documents.
fn expected_attributes(line: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let kind = line["event"].as_str().unwrap();
    if kind != "lost" && kind != "alert" {
        // A connect_error says its own (a UDP connect() fails there too).
        let transport = match line.get("protocol").and_then(Value::as_str) {
            Some(p) => p,
            None if kind.starts_with("udp") => "udp",
            None => "tcp",
        };
        out.insert("network.transport".into(), transport.into());
    }
    for (k, v) in line {
        let name = match k.as_str() {
            "ts" => continue,
            "event" => "netwatch.event".to_owned(),
            "pid" => "process.pid".into(),
            "comm" => "process.executable.name".into(),
            "uid" => "process.user.id".into(),
            "family" => "network.type".into(),
            "saddr" => "source.address".into(),
            "sport" => "source.port".into(),
            "daddr" => "destination.address".into(),
            "dport" => "destination.port".into(),
            "tid" => "thread.id".into(),
            "thread" => "thread.name".into(),
            "container_id" => "container.id".into(),
            "container_name" => "container.name".into(),
            "pod_uid" => "k8s.pod.uid".into(),
            other => format!("netwatch.{other}"),
        };
        let v = match (k.as_str(), v) {
            ("family", Value::String(s)) => Value::String(s.to_lowercase()),
            (_, Value::Number(n)) if n.as_i64().is_none() && n.is_u64() => Value::String(n.to_string()),
            _ => v.clone(),
        };
        out.insert(name, v);
    }
    out
}

fn file_lines(path: &Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str::<Map<String, Value>>(l).expect("export line")).collect()
}

fn touches(attrs: &Value, port: u16) -> bool {
    attrs["source.port"] == port || attrs["destination.port"] == port
}

/// Every event of the test's connections exported to the file arrives
/// exactly once over gRPC with every field, the resource says who sent it,
/// and the metrics arrive with /metrics' names.
#[test]
fn grpc_records_equal_the_json_lines() {
    let ns = super::setup_in("otlp-grpc");
    let dir = TempDir::new("otlp-grpc");
    let rx = Receiver::start("grpc", free_port("127.0.0.1".parse().unwrap()), &dir.path("rx.jsonl"), &[]);
    let file = dir.path("events.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "[export.file]\npath = {file:?}\nkinds = [\"all\"]\n[export.otlp]\nendpoint = \"http://127.0.0.1:{}\"\n\
             kinds = [\"all\"]\nbatch_delay = \"100ms\"\nmetrics_interval = \"1s\"\n{}",
            rx.port,
            super::only_alerts(&[])
        ),
    );
    let serve = Serve::start(&cfg, &[]);
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(3));
    Peer::client(srv.addr, 3, 0);
    server.wait_success(Duration::from_secs(20));
    let port = srv.addr.port();
    // connect() calls the kernel refuses at once, UDP and TCP: connect_error records.
    let st = Command::new("ip").args(["-n", ns.name(), "route", "add", "unreachable", "10.98.0.0/24"]).status();
    assert!(st.is_ok_and(|s| s.success()), "ip route add unreachable");
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp bind");
    let err = udp.connect(("10.98.0.6", port)).expect_err("no route");
    assert_eq!(err.raw_os_error(), Some(libc::EHOSTUNREACH));
    let to = std::net::SocketAddr::from(([10, 98, 0, 5], port));
    let err = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect_err("no route");
    assert_eq!(err.raw_os_error(), Some(libc::EHOSTUNREACH));
    wait::until("the listener's close over OTLP", Duration::from_secs(20), || {
        let n = rx
            .logs()
            .iter()
            .filter(|r| {
                touches(&r["attributes"], port)
                    && r["attributes"]["netwatch.old_state"] == "LISTEN"
                    && r["attributes"]["netwatch.new_state"] == "CLOSE"
            })
            .count();
        wait::check(n == 1, || format!("{n} listener closes received"))
    });
    wait::until("metrics over OTLP/gRPC", Duration::from_secs(10), || {
        let got = rx.received().iter().any(|v| v["type"] == "metrics");
        wait::check(got, || format!("no metrics; stderr: {:?}", serve.nw.stderr_lines()))
    });
    let scrape = serve.scrape();
    serve.nw.stop_with(libc::SIGTERM);

    let want: Vec<Map<String, Value>> = file_lines(&file)
        .iter()
        .filter(|l| l["sport"] == port || l["dport"] == port)
        .map(expected_attributes)
        .collect();
    let logs = rx.logs();
    let mut got: Vec<Map<String, Value>> = logs
        .iter()
        .filter(|r| touches(&r["attributes"], port))
        .map(|r| r["attributes"].as_object().unwrap().clone())
        .collect();
    // 3 connections: both ends' connect/accept/state changes/closes, plus the listener.
    assert!(want.len() >= 3 * 8, "only {} file lines of our connections", want.len());
    let key = |m: &Map<String, Value>| serde_json::to_string(m).unwrap();
    let mut want_sorted = want.clone();
    want_sorted.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want_sorted, "OTLP records differ from the export file's lines");
    let kinds: std::collections::BTreeSet<&str> = want.iter().map(|m| m["netwatch.event"].as_str().unwrap()).collect();
    for k in ["listen", "connect", "established", "accept", "state", "close", "connect_error"] {
        assert!(kinds.contains(k), "no {k} among {kinds:?}");
    }
    let errors: Vec<(&Value, &Value, &Value)> = logs
        .iter()
        .map(|r| &r["attributes"])
        .filter(|a| a["netwatch.event"] == "connect_error" && a["destination.port"] == port)
        .map(|a| (&a["destination.address"], &a["netwatch.protocol"], &a["network.transport"]))
        .collect();
    let (udp, tcp) = (Value::from("udp"), Value::from("tcp"));
    let (udp_to, tcp_to) = (Value::from("10.98.0.6"), Value::from("10.98.0.5"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.contains(&(&udp_to, &udp, &udp)), "the UDP connect_error: {errors:?}");
    assert!(errors.contains(&(&tcp_to, &tcp, &tcp)), "the TCP connect_error: {errors:?}");
    let error = logs.iter().find(|r| r["attributes"]["netwatch.event"] == "connect_error").unwrap();
    assert_eq!((error["severity_text"].as_str(), error["severity_number"].as_u64()), (Some("NOTICE"), Some(10)));

    // Who owns each socket is said on the resource its records are grouped
    // under, not in every record; the records of one owner share a resource.
    for r in logs.iter().filter(|r| touches(&r["attributes"], port)) {
        let own = r["record_attributes"].as_object().unwrap();
        for k in ["process.pid", "process.executable.name", "process.user.id", "netwatch.cgroup_id"] {
            assert!(!own.contains_key(k), "{k} in a record: {r}");
            assert_eq!(r["resource"][k], r["attributes"][k], "{r}");
        }
    }
    let r = &logs[0]["resource"];
    assert_eq!(r["service.name"], "netwatch");
    assert_eq!(r["service.version"], env!("CARGO_PKG_VERSION"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(r["host.name"], host.trim());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(r["host.boot.id"], boot.trim());
    let close =
        logs.iter().find(|r| touches(&r["attributes"], port) && r["attributes"]["netwatch.event"] == "close").unwrap();
    assert_eq!((close["severity_text"].as_str(), close["event_name"].as_str()), (Some("INFO"), Some("netwatch.close")));

    let metrics = rx.received().into_iter().rfind(|v| v["type"] == "metrics").expect("no metrics export");
    let names: std::collections::BTreeSet<String> =
        metrics["metrics"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect();
    let mut scraped: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for s in &scrape.0.samples {
        let n = s.metric.trim_end_matches("_total").to_owned();
        scraped.insert(n);
    }
    for n in &names {
        assert!(scraped.contains(n), "OTLP metric {n} is not on /metrics ({scraped:?})");
    }
    // Alerts are all off: each kind's counter is 0 in both.
    let alerts = metrics["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "netwatch_alerts").unwrap();
    assert_eq!(alerts["kind"], "sum");
    let points = alerts["points"].as_array().unwrap();
    assert_eq!(points.len(), scrape.all("netwatch_alerts_total").len());
    assert!(points.iter().all(|p| p["value"] == 0));
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl").args(args).stderr(Stdio::null()).status().expect("running openssl");
    assert!(st.success(), "openssl {args:?} failed");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made now.
fn test_ca(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.path(n).to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=netwatch test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    let (pem, key) = signed(dir, "srv", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1");
    (dir.path("ca.pem"), pem, key)
}

/// A client certificate signed by [`test_ca`]'s CA (after it ran).
fn client_cert(dir: &TempDir) -> (PathBuf, PathBuf) {
    signed(dir, "client", "/CN=netwatch-agent", "extendedKeyUsage=clientAuth")
}

/// A key `NAME.key` and its certificate `NAME.pem` for `subject`, with the
/// extension line `ext`, signed by [`test_ca`]'s CA.
fn signed(dir: &TempDir, name: &str, subject: &str, ext: &str) -> (PathBuf, PathBuf) {
    let p = |suffix: &str| dir.path(&format!("{name}.{suffix}")).to_str().unwrap().to_owned();
    let (ca, ca_key) = (dir.path("ca.pem"), dir.path("ca.key"));
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &p("key"), "-out", &p("csr")]);
    std::fs::write(p("ext"), format!("{ext}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("csr"),
        "-CA",
        ca.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p("ext"),
        "-out",
        &p("pem"),
    ]);
    (PathBuf::from(p("pem")), PathBuf::from(p("key")))
}

/// A receiver that requires client certificates (mTLS), over gRPC and
/// HTTP: with the agent's certificate and key the records arrive, the key
/// is in no log line; without them the receiver takes nothing.
#[test]
fn mtls_client_certificate_over_grpc_and_http() {
    let _ns = super::setup_in("otlp-mtls");
    let dir = TempDir::new("otlp-mtls");
    let (ca, cert, key) = test_ca(&dir);
    let (client_pem, client_key) = client_cert(&dir);
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let key_text = std::fs::read_to_string(&client_key).unwrap();
    let secret = key_text.lines().nth(1).unwrap().to_owned();
    let cfg = config(&dir, &super::only_alerts(&[]));
    for (protocol, with_cert) in [("grpc", true), ("http", true), ("http", false)] {
        let rx = Receiver::start(
            protocol,
            free_port("127.0.0.1".parse().unwrap()),
            &dir.path(&format!("rx-{protocol}-{with_cert}.jsonl")),
            &["--cert", &s(&cert), "--key", &s(&key), "--client-ca", &s(&ca)],
        );
        let endpoint = format!("https://127.0.0.1:{}", rx.port);
        let mut args = vec![
            "--otlp-endpoint".to_owned(),
            endpoint,
            "--otlp-protocol".to_owned(),
            protocol.to_owned(),
            "--otlp-ca-file".to_owned(),
            s(&ca),
            "--otlp-batch-delay".to_owned(),
            "100ms".to_owned(),
            "--otlp-metrics-interval".to_owned(),
            "0s".to_owned(),
        ];
        if with_cert {
            args.extend(["--otlp-client-cert-file".to_owned(), s(&client_pem)]);
            args.extend(["--otlp-client-key-file".to_owned(), s(&client_key)]);
        }
        let serve = Serve::start(&cfg, &args.iter().map(String::as_str).collect::<Vec<_>>());
        let (mut server, srv) = Peer::server("127.0.0.1:0", Some(1));
        let client = Peer::client(srv.addr, 1, 0);
        server.wait_success(Duration::from_secs(20));
        let ours = |rx: &Receiver| {
            rx.logs().iter().any(|r| {
                let a = &r["attributes"];
                a["netwatch.event"] == "established"
                    && a["process.pid"] == client.pid
                    && a["destination.port"] == srv.addr.port()
            })
        };
        if with_cert {
            wait::until(
                &format!("the client's connect over OTLP {protocol} with mTLS"),
                Duration::from_secs(20),
                || wait::check(ours(&rx), || format!("{} records received, none our established", rx.logs().len())),
            );
        } else {
            // Several batch delays and retries.
            std::thread::sleep(Duration::from_secs(3));
            assert!(rx.logs().is_empty(), "records taken without a client certificate");
        }
        let stopped = serve.nw.stop_with(libc::SIGTERM);
        assert!(!stopped.stderr.iter().any(|l| l.contains(&secret)), "the key is in the log: {:?}", stopped.stderr);
        let summary = stopped.stderr.iter().find(|l| l.starts_with("netwatch: OTLP export:")).expect("summary line");
        assert_eq!(
            summary.starts_with("netwatch: OTLP export: 0 log records sent"),
            !with_cert,
            "{protocol}, client certificate {with_cert}: {summary}"
        );
    }
}

/// OTLP/HTTP over TLS (a CA made by the test) with a bearer token from a
/// headers file: records arrive, and the token is in no log line.
#[test]
fn http_with_tls_and_token() {
    let _ns = super::setup_in("otlp-http");
    let dir = TempDir::new("otlp-http");
    let (ca, cert, key) = test_ca(&dir);
    let token = "s3cret-token-for-the-test";
    let rx = Receiver::start(
        "http",
        free_port("127.0.0.1".parse().unwrap()),
        &dir.path("rx.jsonl"),
        &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap(), "--token", token],
    );
    let headers = dir.path("headers");
    std::fs::write(&headers, format!("# for the test\nAuthorization: Bearer {token}\n")).unwrap();
    let cfg = config(&dir, &super::only_alerts(&[]));
    let endpoint = format!("https://127.0.0.1:{}", rx.port);
    let serve = Serve::start(
        &cfg,
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-protocol",
            "http",
            "--otlp-ca-file",
            ca.to_str().unwrap(),
            "--otlp-headers-file",
            headers.to_str().unwrap(),
            "--otlp-batch-delay",
            "100ms",
            "--otlp-metrics-interval",
            "1s",
            "--otlp-compression",
            "gzip",
        ],
    );
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(1));
    let client = Peer::client(srv.addr, 1, 0);
    server.wait_success(Duration::from_secs(20));
    wait::until("the client's connect over OTLP/HTTPS", Duration::from_secs(20), || {
        let logs = rx.logs();
        let found = logs.iter().any(|r| {
            let a = &r["attributes"];
            a["netwatch.event"] == "established"
                && a["process.pid"] == client.pid
                && a["destination.port"] == srv.addr.port()
        });
        wait::check(found, || format!("{} records received, none our established", logs.len()))
    });
    wait::until("metrics over OTLP/HTTPS", Duration::from_secs(10), || {
        wait::check(rx.received().iter().any(|v| v["type"] == "metrics"), || "no metrics".to_owned())
    });
    assert!(!rx.received().iter().any(|v| v["type"] == "rejected"), "the right token was refused");
    assert!(rx.received().iter().any(|v| v["type"] == "gzip"), "no gzip-encoded request");
    let stopped = serve.nw.stop_with(libc::SIGTERM);
    assert!(!stopped.stderr.iter().any(|l| l.contains(token)), "the token is in the log: {:?}", stopped.stderr);
}

/// A wrong token: refused by the receiver, counted, logged (without the
/// token), and the export file and /metrics go on as before.
#[test]
fn wrong_token_is_counted_and_logged() {
    let _ns = super::setup_in("otlp-token");
    let dir = TempDir::new("otlp-token");
    let rx =
        Receiver::start("grpc", free_port("127.0.0.1".parse().unwrap()), &dir.path("rx.jsonl"), &["--token", "right"]);
    let headers = dir.path("headers");
    std::fs::write(&headers, "authorization: Bearer wrong-one-4711\n").unwrap();
    let file = dir.path("events.jsonl");
    let cfg = config(&dir, &super::only_alerts(&[]));
    let endpoint = format!("http://127.0.0.1:{}", rx.port);
    let serve = Serve::start(
        &cfg,
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-headers-file",
            headers.to_str().unwrap(),
            "--otlp-batch-delay",
            "100ms",
            "--export-file",
            file.to_str().unwrap(),
        ],
    );
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(1));
    Peer::client(srv.addr, 1, 0);
    server.wait_success(Duration::from_secs(20));
    serve.wait_stderr(Duration::from_secs(20), "saying the collector refused", |l| {
        l.contains("refused") && l.contains("Unauthenticated")
    });
    wait::until("the refusal counted", Duration::from_secs(10), || {
        let m = serve.scrape();
        let n =
            m.get("netwatch_export_errors_total", &[("output", "otlp_logs"), ("reason", "rejected")]).unwrap_or(0.0);
        wait::check(n >= 1.0, || format!("rejected = {n}"))
    });
    assert!(rx.logs().is_empty(), "records were taken with a wrong token");
    assert!(rx.received().iter().any(|v| v["type"] == "rejected"));
    let port = srv.addr.port();
    wait::until("the export file going on", Duration::from_secs(10), || {
        let n = file_lines(&file).iter().filter(|l| l["sport"] == port && l["new_state"] == "LISTEN").count();
        wait::check(n == 1, || format!("{n} listen lines"))
    });
    let stopped = serve.nw.stop_with(libc::SIGTERM);
    assert!(!stopped.stderr.iter().any(|l| l.contains("wrong-one-4711")), "the token is in the log");
}

/// The receiver is down for 10 s while connections come and go, with a
/// queue of 40 records: what was queued arrives once it is back, and what
/// did not fit is counted, exactly: sent + dropped = lines exported to the
/// file (the same kinds), and the receiver has every sent one.
#[test]
fn receiver_down_for_10s_queued_arrive_dropped_counted() {
    let _ns = super::setup_in("otlp-down");
    let dir = TempDir::new("otlp-down");
    let port = free_port("127.0.0.1".parse().unwrap());
    let out = dir.path("rx.jsonl");
    let rx = Receiver::start("grpc", port, &out, &[]);
    let file = dir.path("events.jsonl");
    let cfg = config(&dir, &super::only_alerts(&[]));
    let endpoint = format!("http://127.0.0.1:{port}");
    let serve = Serve::start(
        &cfg,
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-queue",
            "40",
            "--otlp-batch",
            "10",
            "--otlp-batch-delay",
            "100ms",
            "--otlp-metrics-interval",
            "0s",
            "--export-file",
            file.to_str().unwrap(),
        ],
    );
    drop(rx);
    let down = std::time::Instant::now();
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(20));
    Peer::client(srv.addr, 20, 0);
    server.wait_success(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed()));
    let rx = Receiver::start("grpc", port, &out, &[]);
    // The queued records (at least the 40 that fit) arrive after the restart.
    wait::until("the queued records", Duration::from_secs(20), || {
        let ours = rx.logs().iter().filter(|r| touches(&r["attributes"], srv.addr.port())).count();
        wait::check(ours > 0, || "none of our records arrived".to_owned())
    });
    let m = serve.scrape();
    assert!(m.value("netwatch_export_errors_total", &[("output", "otlp_logs"), ("reason", "retry")]) >= 1.0);
    let stopped = serve.nw.stop_with(libc::SIGTERM);
    let summary = stopped.stderr.iter().find(|l| l.starts_with("netwatch: OTLP export:")).expect("no OTLP summary");
    let nums: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    let (sent, dropped, refused) = (nums[0], nums[1], nums[2]);
    let exported = file_lines(&file).len() as u64;
    let received = rx.logs().len() as u64;
    assert_eq!(refused, 0);
    assert!(dropped > 0, "20 connections (~200 records) fit a queue of 40? {summary}");
    assert_eq!(sent, received, "sent {sent}, receiver has {received}");
    assert_eq!(sent + dropped, exported, "{summary}; {exported} lines in the export file");
    assert!(
        stopped.stderr.iter().any(|l| l.contains("OTLP export: queue full (40 records)")),
        "the drops were not said: {:?}",
        stopped.stderr
    );
}

/// SIGHUP starts, moves and stops the OTLP export like the rest of the
/// config: records reach the receiver named by the new file only.
#[test]
fn sighup_switches_the_otlp_receiver() {
    let _ns = super::setup_in("otlp-hup");
    let dir = TempDir::new("otlp-hup");
    let (a, b) = (dir.path("a.jsonl"), dir.path("b.jsonl"));
    let rx_a = Receiver::start("grpc", free_port("127.0.0.1".parse().unwrap()), &a, &[]);
    let rx_b = Receiver::start("http", free_port("127.0.0.1".parse().unwrap()), &b, &[]);
    let base = super::only_alerts(&[]);
    let cfg = config(&dir, &base);
    let serve = Serve::start(&cfg, &[]);
    let otlp = |endpoint: String, protocol: &str| {
        format!("{base}[export.otlp]\nendpoint = {endpoint:?}\nprotocol = \"{protocol}\"\nbatch_delay = \"100ms\"\n")
    };
    let connect_reaches = |rx: &Receiver| {
        let (mut server, srv) = Peer::server("127.0.0.1:0", Some(1));
        let client = Peer::client(srv.addr, 1, 0);
        server.wait_success(Duration::from_secs(20));
        wait::until("our connect over OTLP", Duration::from_secs(20), || {
            let found = rx.logs().iter().any(|r| {
                r["attributes"]["process.pid"] == client.pid && r["attributes"]["netwatch.event"] == "connect"
            });
            wait::check(found, || format!("{} records, not our connect", rx.logs().len()))
        });
        client.pid
    };
    std::fs::write(&cfg, otlp(format!("http://127.0.0.1:{}", rx_a.port), "grpc")).unwrap();
    serve.nw.signal(libc::SIGHUP);
    serve.wait_stderr(Duration::from_secs(5), "reloaded", |l| l.starts_with("netwatch: reloaded"));
    connect_reaches(&rx_a);
    std::fs::write(&cfg, otlp(format!("http://127.0.0.1:{}", rx_b.port), "http")).unwrap();
    serve.nw.signal(libc::SIGHUP);
    wait::until("the second reload", Duration::from_secs(5), || {
        let n = serve.nw.stderr_lines().iter().filter(|l| l.starts_with("netwatch: reloaded")).count();
        wait::check(n == 2, || format!("{n} reloads"))
    });
    let pid = connect_reaches(&rx_b);
    assert!(
        !rx_a.logs().iter().any(|r| r["attributes"]["process.pid"] == pid),
        "a connect made after the reload went to the old receiver"
    );
    serve.nw.stop_with(libc::SIGTERM);
}
