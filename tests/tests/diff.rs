//! End-to-end tests of `netwatch diff` against `netwatch snapshot --json`
//! baselines: the listener and the connection the test opens, and nothing
//! else, appear with their owners (exit 1); once closed, nothing did (exit
//! 0). Everything happens in a network namespace of the test's own and the
//! diff is restricted to it (`--netns`), so other tests' sockets on the
//! same machine cannot show up.
//!
//! They need root (`cargo xtask test`); `NETWATCH_BIN` names the binary.

use std::collections::BTreeSet;

use netwatch_tests::held::Held;
use netwatch_tests::netns::TestNetns;
use netwatch_tests::nw_peer_bin;
use netwatch_tests::oneshot::{self, TempDir};
use serde_json::Value;

fn setup() {
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}

fn hold(ns: &TestNetns, args: &[&str]) -> Held {
    let nw_peer = nw_peer_bin();
    Held::spawn(ns.command(nw_peer.to_str().expect("UTF-8 path"), &[&["hold"], args].concat()))
}

/// `(kind, direction or "", address, port, owners)` of each entry.
type Seen = BTreeSet<(String, String, String, u64, BTreeSet<(u64, String)>)>;

fn entries(doc: &Value, key: &str) -> Seen {
    let list = doc[key].as_array().unwrap_or_else(|| panic!("no `{key}` array in {doc}"));
    list.iter()
        .map(|e| {
            let owners = e["owners"].as_array().expect("owners");
            let owners = owners.iter().map(|o| (o["pid"].as_u64().expect("pid"), o["comm"].to_string())).collect();
            let addr = e.get("addr").or(e.get("remote")).and_then(Value::as_str).expect("address");
            let dir = e["direction"].as_str().unwrap_or("");
            let kind = e["kind"].as_str().expect("kind");
            (kind.to_owned(), dir.to_owned(), addr.to_owned(), e["port"].as_u64().expect("port"), owners)
        })
        .collect()
}

fn owned(pid: u32) -> BTreeSet<(u64, String)> {
    [(u64::from(pid), "\"nw-peer\"".to_owned())].into()
}

#[test]
fn diff_shows_new_listener_and_connection_with_owners() {
    setup();
    let ns = TestNetns::plain("diff");
    let tmp = TempDir::new("diff");
    let base = tmp.path().join("base.json");
    let ns_args = ["--netns", ns.name()];

    // Already there at baseline time: not a change.
    let mut old = hold(&ns, &["--listen", "127.0.0.1:7100"]);
    oneshot::save_baseline(&base);
    let unchanged = oneshot::run(&[&["diff"][..], &ns_args, &[base.to_str().expect("path")]].concat());
    unchanged.expect_code(0);
    assert_eq!(unchanged.stdout, "", "a diff with no change prints nothing");

    let new = hold(&ns, &["--listen", "127.0.0.1:7200", "--connect", "127.0.0.1:7100"]);
    let accepted = old.accepted(1);
    let client_port = accepted[0].remote.port();
    let base_arg = base.to_str().expect("path");

    let json = oneshot::run(&[&["diff", "--json"][..], &ns_args, &[base_arg]].concat());
    let doc = json.expect_code(1).json();
    let want: Seen = [
        ("listener".into(), String::new(), "127.0.0.1".into(), 7200, owned(new.pid())),
        ("peer".into(), "in".into(), "127.0.0.1".into(), 7100, owned(old.pid())),
        ("peer".into(), "out".into(), "127.0.0.1".into(), 7100, owned(new.pid())),
    ]
    .into();
    assert_eq!(entries(&doc, "appeared"), want, "appeared, in {doc}");
    assert_eq!(entries(&doc, "disappeared"), Seen::new(), "disappeared, in {doc}");
    assert_eq!(doc["changed"], Value::Bool(true));

    let text = oneshot::run(&[&["diff"][..], &ns_args, &[base_arg]].concat());
    text.expect_code(1);
    let lines: Vec<String> = text.lines().iter().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        lines,
        vec![
            format!("+ listen tcp 127.0.0.1:7200 {}/nw-peer", new.pid()),
            format!("+ peer tcp 127.0.0.1 -> local port 7100 {}/nw-peer", old.pid()),
            format!("+ peer tcp local -> 127.0.0.1:7100 {}/nw-peer", new.pid()),
        ]
    );
    // --port keeps the sockets with that port at either end.
    let only_7200 = oneshot::run(&[&["diff", "--listeners", "--port", "7200"][..], &ns_args, &[base_arg]].concat());
    assert_eq!(only_7200.expect_code(1).lines().len(), 1, "{}", only_7200.stdout);

    // Close both: diff against the baseline taken while they were open
    // says they disappeared; a fresh baseline, that nothing changed.
    let (open, closed) = (tmp.path().join("open.json"), tmp.path().join("closed.json"));
    oneshot::save_baseline(&open);
    drop(new);
    assert_eq!(old.close(client_port), 1);
    let (open_arg, closed_arg) = (open.to_str().expect("path"), closed.to_str().expect("path"));
    let gone = oneshot::run(&[&["diff", "--json"][..], &ns_args, &[open_arg]].concat());
    let gone_doc = gone.expect_code(1).json();
    assert_eq!(entries(&gone_doc, "disappeared"), want, "disappeared, in {gone_doc}");
    assert_eq!(entries(&gone_doc, "appeared"), Seen::new(), "appeared, in {gone_doc}");
    oneshot::run(&[&["diff"][..], &ns_args, &[base_arg]].concat()).expect_code(0);

    oneshot::save_baseline(&closed);
    let fresh = oneshot::run(&[&["diff"][..], &ns_args, &[closed_arg]].concat());
    assert_eq!(fresh.expect_code(0).stdout, "");
    // Two saved documents, compared with each other.
    let saved = oneshot::run(&[&["diff", "--json"][..], &ns_args, &[open_arg, closed_arg]].concat());
    assert_eq!(entries(&saved.expect_code(1).json(), "disappeared"), want);
    oneshot::run(&[&["diff"][..], &ns_args, &[base_arg, closed_arg]].concat()).expect_code(0);
}

#[test]
fn diff_errors_exit_2() {
    setup();
    let tmp = TempDir::new("diff-bad");
    let not_json = tmp.path().join("not.json");
    std::fs::write(&not_json, "this is not json").expect("write");
    let events = tmp.path().join("events.json");
    std::fs::write(&events, "{\"event\":\"close\"}").expect("write");
    for args in [
        vec!["diff".to_owned()],
        vec!["diff".into(), "/nonexistent/base.json".into()],
        vec!["diff".into(), not_json.display().to_string()],
        vec!["diff".into(), events.display().to_string()],
        vec!["diff".into(), "--netns".into(), "nwtest-no-such-ns".into(), not_json.display().to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = oneshot::run(&args);
        out.expect_code(2);
        assert!(out.stderr.contains("netwatch") && !out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
}

/// Without root, namespaces of other users' processes cannot be read: their
/// sockets are unknown now, not gone. A listener in such a namespace must
/// not be reported as disappeared (a false exit 1 would page someone).
#[test]
fn diff_as_non_root_leaves_unreadable_namespaces_out() {
    use std::os::unix::fs::PermissionsExt as _;
    setup();
    let ns = TestNetns::plain("diff-nobody");
    let tmp = TempDir::new("diff-nobody");
    let _listener = hold(&ns, &["--listen", "127.0.0.1:17345"]);
    let base = tmp.path().join("base.json");
    oneshot::save_baseline(&base);
    let bin = tmp.path().join("netwatch");
    std::fs::copy(netwatch_tests::netwatch_bin(), &bin).expect("copying netwatch");
    for (path, mode) in [(tmp.path(), 0o755), (bin.as_path(), 0o755), (base.as_path(), 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["diff", "--port", "17345"])
        .arg(&base)
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running setpriv");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "diff as uid 65534\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout, "", "nothing changed that netwatch could see");
    assert!(stderr.contains(&ns.inode().to_string()), "the namespace left out is named on stderr:\n{stderr}");
}
