//! Where each socket's owner runs (issue 17 item 4): cgroup, systemd unit,
//! container and pod on every event and snapshot row, and the `--unit`,
//! `--container` and `--cgroup` filters, with real processes moved into
//! cgroup directories shaped like a systemd unit's, docker's and
//! containerd-in-Kubernetes', and a real podman container.
//!
//! They need root and one thread (`cargo xtask test`), as every privileged
//! test.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use netwatch_tests::{held::Held, netns, nw_peer_bin, wait, Netwatch, Peer};
use serde_json::Value;

#[path = "serve/harness.rs"]
#[expect(dead_code, reason = "the serve tests' harness, of which this binary uses a part")]
mod harness;

fn setup() {
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}

/// 64 hex digits, different per run (and per test in a run).
fn hex_id(salt: u64) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    let seed = t ^ (u64::from(std::process::id()) << 32) ^ salt;
    (0..4u64)
        .map(|i| format!("{:016x}", seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(i as u32 * 16) ^ i))
        .collect()
}

/// The cgroup2 mount: /sys/fs/cgroup/unified here (hybrid), /sys/fs/cgroup
/// on a pure v2 host.
fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(left.split(' ').nth(4).expect("mount point")))
        })
        .expect("no cgroup2 mount: these tests need cgroup v2 (pure or hybrid)")
}

/// Cgroup directories the test made, removed (deepest first) on drop,
/// once the processes it moved in are gone.
struct TestCgroup {
    dir: PathBuf,
    made: Vec<PathBuf>,
}

impl TestCgroup {
    fn new(path: &str) -> Self {
        let mount = cgroup2_mount();
        let mut made = Vec::new();
        let mut dir = mount.clone();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            dir.push(c);
            if !dir.exists() {
                std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                made.push(dir.clone());
            }
        }
        Self { dir, made }
    }

    /// Its cgroup id: the inode of its directory.
    fn id(&self) -> u64 {
        std::fs::metadata(&self.dir).expect("cgroup dir").ino()
    }

    /// `nw-peer ARGS`, moved into this cgroup before it does anything.
    fn spawn(&self, args: &[&str]) -> Peer {
        Peer::spawn_program(self.command(&nw_peer_bin()), args)
    }

    /// `program`, moved into this cgroup before it does anything (the
    /// caller adds its arguments).
    fn command(&self, program: &std::path::Path) -> Command {
        let procs = self.dir.join("cgroup.procs");
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("echo $$ > {} && exec \"$0\" \"$@\"", procs.display())]).arg(program);
        sh
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            // A process just reaped may still count for a moment.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// What every event and row of the test's processes must say.
#[derive(Debug)]
struct Expect<'a> {
    cgroup: &'a str,
    unit: Option<&'a str>,
    runtime: Option<&'a str>,
    id: Option<&'a str>,
    name: Option<&'a str>,
    pod: Option<&'a str>,
}

/// Each workload field equal to the expected one, absent where none is.
fn check(v: &Value, e: &Expect) -> Result<(), String> {
    let fields = [
        ("cgroup", Some(e.cgroup)),
        ("unit", e.unit),
        ("container_runtime", e.runtime),
        ("container_id", e.id),
        ("container_name", e.name),
        ("pod_uid", e.pod),
    ];
    for (key, want) in fields {
        if v.get(key).and_then(Value::as_str) != want {
            return Err(format!("`{key}` is {:?}, expected {want:?} in {v}", v.get(key)));
        }
    }
    Ok(())
}

fn socket_events(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .filter(|v| v["event"] != "lost")
        .collect()
}

/// `netwatch snapshot --json ARGS`.
fn snapshot(args: &[&str]) -> Value {
    let out = Command::new(netwatch_tests::netwatch_bin())
        .args(["snapshot", "--json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running netwatch snapshot");
    assert!(out.status.success(), "snapshot {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("snapshot JSON")
}

/// `netwatch snapshot ARGS`, as text.
fn snapshot_text(args: &[&str]) -> String {
    let out = Command::new(netwatch_tests::netwatch_bin())
        .arg("snapshot")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running netwatch snapshot");
    assert!(out.status.success(), "snapshot {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no `{key}` in {v}"))
}

/// A listener and a client in cgroup `path`: every event netwatch prints
/// for them (selected by `--cgroup path`, so that the filter is tested too)
/// carries `expect` and the cgroup's id; the snapshot row of the listener
/// (selected by `filter`) names it too.
fn run(path: &str, expect: &Expect, filter: &[&str], label: &str) {
    setup();
    let ns = netns::own("workload");
    let cg = TestCgroup::new(path);
    const N: u64 = 20;
    let nw = Netwatch::start(&["events", "--json", "--netns", &ns.arg(), "--cgroup", path]);
    let n = N.to_string();
    let mut server = cg.spawn(&["server", "--addr", "127.0.0.1:0", "--count", &n]);
    let hello = server.json_line(Duration::from_secs(10));
    let (server_pid, addr) = (u64_of(&hello, "pid"), hello["addr"].as_str().expect("addr").to_owned());
    let port: u16 = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");

    // The listener's row, found by the workload filter alone.
    let snap = snapshot(filter);
    let rows: Vec<&Value> = snap["sockets"].as_array().expect("sockets").iter().collect();
    assert!(
        rows.iter().any(|r| r["sport"] == port && r["state"] == "LISTEN"),
        "snapshot {filter:?} lacks the listener on port {port}: {rows:?}"
    );
    for r in &rows {
        let owners = r["owners"].as_array().expect("owners");
        assert!(
            owners.iter().any(|o| check(o, expect).is_ok()),
            "snapshot {filter:?} kept a row none of whose owners is in {path}: {r}"
        );
    }
    let listener = rows.iter().find(|r| r["sport"] == port && r["state"] == "LISTEN").expect("listener row");
    let owner = &listener["owners"][0];
    assert_eq!(u64_of(owner, "pid"), server_pid, "{listener}");
    check(owner, expect).unwrap_or_else(|e| panic!("listener row: {e}"));
    // The text table's Workload column (`-W`), last on the row.
    let text = snapshot_text(&["-W"]);
    let row = text
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port} ")) && l.contains("LISTEN"))
        .unwrap_or_else(|| panic!("no listener row for port {port} in:\n{text}"));
    assert!(row.ends_with(&format!(" {label}")), "the Workload column is not {label:?}: {row}");

    let mut client = cg.spawn(&["client", "--to", &addr, "--count", &n, "--hold-ms", "0"]);
    client.wait_success(Duration::from_secs(60));
    let client_pid = u64_of(&client.json_line(Duration::from_secs(5)), "pid");
    server.wait_success(Duration::from_secs(30));
    let stopped = nw.stop();

    let events = socket_events(&stopped.lines);
    let id = cg.id();
    let mut problems = Vec::new();
    for v in &events {
        let pid = u64_of(v, "pid");
        if pid != server_pid && pid != client_pid {
            problems.push(format!("--cgroup {path} let through another process's event: {v}"));
        }
        if let Err(e) = check(v, expect) {
            problems.push(e);
        }
        if v["cgroup_id"].as_u64() != Some(id) {
            problems.push(format!("cgroup_id is not {id}: {v}"));
        }
    }
    let count = |kind: &str| events.iter().filter(|v| v["event"] == kind).count() as u64;
    let listens = events.iter().filter(|v| v["event"] == "listen" && v["sport"] == port).count();
    if count("connect") != N || listens != 1 {
        problems.push(format!("expected {N} connects and 1 listen, got {} and {listens}", count("connect")));
    }
    assert!(
        problems.is_empty(),
        "{} problems, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(10)].join("\n")
    );
}

#[test]
fn systemd_unit_cgroup_names_the_unit() {
    let unit = format!("nwtest-{}.service", &hex_id(1)[..12]);
    let path = format!("/system.slice/{unit}");
    let e = Expect { cgroup: &path, unit: Some(&unit), runtime: None, id: None, name: None, pod: None };
    run(&path, &e, &["--unit", &unit], &unit);
}

#[test]
fn docker_cgroup_names_the_container() {
    let id = hex_id(2);
    let scope = format!("docker-{id}.scope");
    let path = format!("/system.slice/{scope}");
    let e = Expect { cgroup: &path, unit: Some(&scope), runtime: Some("docker"), id: Some(&id), name: None, pod: None };
    // A prefix of the id, as `docker ps` shows it.
    run(&path, &e, &["--container", &id[..12]], &id[..12]);
}

#[test]
fn kubernetes_containerd_cgroup_names_container_and_pod() {
    let id = hex_id(3);
    let h = hex_id(4);
    let uid = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
    let under = uid.replace('-', "_");
    let scope = format!("cri-containerd-{id}.scope");
    let path = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{under}.slice/{scope}");
    let e = Expect {
        cgroup: &path,
        unit: Some(&scope),
        runtime: Some("containerd"),
        id: Some(&id),
        name: None,
        pod: Some(&uid),
    };
    run(&path, &e, &["--cgroup", "/kubepods.slice/kubepods-burstable.slice"], &id[..12]);
}

/// `podman rm -f` on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", "-t", "0", &self.0]).stdout(Stdio::null()).status();
    }
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).stdin(Stdio::null()).output().expect("running podman");
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An image of busybox alone, made locally (no registry here).
fn busybox_image() -> &'static str {
    const IMAGE: &str = "localhost/nwtest-busybox";
    let exists = Command::new("podman").args(["image", "exists", IMAGE]).status().expect("running podman");
    if !exists.success() {
        let dir = std::env::temp_dir().join(format!("nwtest-rootfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs/bin")).expect("mkdir rootfs");
        std::fs::copy("/bin/busybox", dir.join("rootfs/bin/busybox")).expect("busybox-static is installed");
        let tar = dir.join("rootfs.tar");
        let ok = Command::new("tar").arg("-C").arg(dir.join("rootfs")).arg("-cf").arg(&tar).arg(".").status();
        assert!(ok.is_ok_and(|s| s.success()), "tar of the rootfs failed");
        podman(&["import", tar.to_str().expect("utf-8 path"), IMAGE]);
        let _ = std::fs::remove_dir_all(dir);
    }
    IMAGE
}

/// A real container: its listener's row and the events of the process in
/// it name runtime `podman`, the container's id and its name; the client
/// (run in the container's network namespace, but not in the container)
/// names none.
#[test]
fn podman_container_names_its_sockets() {
    setup();
    let image = busybox_image();
    let name = format!("nwtest-wl-{}", &hex_id(5)[..8]);
    let id = podman(&[
        "--runtime",
        "runc",
        "--cgroup-manager=cgroupfs",
        "run",
        "-d",
        "--name",
        &name,
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        // Only its own loopback: the test connects from inside its network
        // namespace, and podman's bridge network would leave NAT rules in
        // the host's namespace, which make the kernel track (and, under
        // churn, drop) every host connection.
        "--network",
        "none",
        image,
        "/bin/busybox",
        "nc",
        "-ll",
        "-p",
        "8080",
        "-e",
        "/bin/cat",
    ]);
    let _guard = Container(name.clone());
    assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "podman run printed {id:?}");
    let pid: u64 = podman(&["inspect", "-f", "{{.State.Pid}}", &name]).parse().expect("container pid");
    let netns = format!("/proc/{pid}/ns/net");
    let expect =
        Expect { cgroup: "", unit: None, runtime: Some("podman"), id: Some(&id), name: Some(&name), pod: None };
    let container_fields = |v: &Value| -> Result<(), String> {
        // The cgroup path and unit depend on the host's layout and the
        // runtime's driver (runc puts it in `/libpod_parent/libpod-ID` in
        // both hierarchies here; with other runtimes only the v1 paths
        // may name it).
        for (key, want) in
            [("container_runtime", expect.runtime), ("container_id", expect.id), ("container_name", expect.name)]
        {
            if v.get(key).and_then(Value::as_str) != want {
                return Err(format!("`{key}` is {:?}, expected {want:?} in {v}", v.get(key)));
            }
        }
        Ok(())
    };
    // The listener, by the container's name.
    let rows = wait::until("the container's listener in the snapshot", Duration::from_secs(10), || {
        let snap = snapshot(&["--container", &name]);
        let rows = snap["sockets"].as_array().cloned().unwrap_or_default();
        if rows.iter().any(|r| r["sport"] == 8080 && r["state"] == "LISTEN") {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    });
    for r in &rows {
        let owner = &r["owners"][0];
        container_fields(owner).unwrap_or_else(|e| panic!("row {r}: {e}"));
    }
    let listener = rows.iter().find(|r| r["sport"] == 8080 && r["state"] == "LISTEN").expect("listener");
    assert_eq!(u64_of(&listener["owners"][0], "pid"), pid, "{listener}");

    // Connections into it, from its own network namespace.
    let nw = Netwatch::start(&["events", "--json", "--netns", &netns]);
    const N: u64 = 5;
    let mut nsenter = Command::new("nsenter");
    nsenter.args(["-t", &pid.to_string(), "-n"]).arg(nw_peer_bin());
    let n = N.to_string();
    let mut client =
        Peer::spawn_program(nsenter, &["client", "--to", "127.0.0.1:8080", "--count", &n, "--hold-ms", "100"]);
    client.wait_success(Duration::from_secs(60));
    let client_pid = u64_of(&client.json_line(Duration::from_secs(5)), "pid");
    let stopped = nw.stop();
    let events = socket_events(&stopped.lines);
    let mut problems = Vec::new();
    let (mut server_side, mut client_side) = (0, 0);
    for v in &events {
        let p = u64_of(v, "pid");
        if p == pid {
            server_side += 1;
            if let Err(e) = container_fields(v) {
                problems.push(e);
            }
        } else if p == client_pid {
            client_side += 1;
            if v.get("container_id").is_some() || v.get("container_runtime").is_some() {
                problems.push(format!("the client is not in the container: {v}"));
            }
        }
    }
    let accepts = events.iter().filter(|v| v["event"] == "accept" && u64_of(v, "pid") == pid).count() as u64;
    if accepts != N || client_side < N {
        problems.push(format!("expected {N} accepts by the container's nc and the client's events, got {accepts} and {client_side} ({server_side} of the container's)"));
    }
    assert!(
        problems.is_empty(),
        "{} problems, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(10)].join("\n")
    );
}

/// `netwatch serve`'s per-process series carry the unit and container:
/// one program name held open by a process in a unit and by one in a
/// docker-shaped container is two series, each with its own labels.
#[test]
fn serve_labels_process_series_with_unit_and_container() {
    setup();
    let _ns = netns::own("workload-serve");
    let dir = harness::TempDir::new("workload");
    // A name of this test's own: no other process's connections count.
    let peer = dir.path(&format!("nwwl{}", std::process::id() % 1_000_000));
    std::fs::copy(nw_peer_bin(), &peer).expect("copying nw-peer");
    let name = peer.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
    let config = dir.path("netwatch.toml");
    let off: String =
        ["syn_backlog", "listen_drops", "remote_connections", "suspicious_ports", "new_listener", "total_connections"]
            .iter()
            .map(|n| format!("[alerts.{n}]\nenabled = false\n"))
            .collect();
    std::fs::write(&config, off).expect("writing the config");
    let serve = harness::Serve::start(&config, &["--top-processes", "1000"]);

    let unit = format!("nwtest-{}.service", &hex_id(6)[..12]);
    let in_unit = TestCgroup::new(&format!("/system.slice/{unit}"));
    let id = hex_id(7);
    let scope = format!("docker-{id}.scope");
    let in_docker = TestCgroup::new(&format!("/system.slice/{scope}"));
    const HELD: usize = 4;
    let mut server = Held::spawn({
        let mut c = in_unit.command(&peer);
        c.args(["hold", "--listen", "127.0.0.1:0"]);
        c
    });
    let listener = server.listeners()[0].to_string();
    let client = Held::spawn({
        let mut c = in_docker.command(&peer);
        c.arg("hold");
        for _ in 0..HELD {
            c.args(["--connect", &listener]);
        }
        c
    });
    assert_eq!(client.connected().len(), HELD);
    server.accepted(HELD);

    let short = &id[..12];
    let want = HELD as f64;
    wait::until("the unit's and the container's series", Duration::from_secs(10), || {
        let m = serve.scrape();
        let by_unit = m.get("netwatch_process_connections", &[("process", &name), ("unit", &unit)]);
        let by_container =
            m.get("netwatch_process_connections", &[("process", &name), ("unit", &scope), ("container", short)]);
        let all: Vec<_> = m
            .all("netwatch_process_connections")
            .into_iter()
            .filter(|(l, _)| l.get("process") == Some(&name))
            .collect();
        wait::check(by_unit == Some(want) && by_container == Some(want) && all.len() == 2, || {
            format!("unit {by_unit:?}, container {by_container:?}, want {want} each; {name}'s series: {all:?}")
        })
    });
    let unit_series = serve.scrape().all("netwatch_process_connections");
    let ours = unit_series
        .iter()
        .find(|(l, _)| l.get("unit") == Some(&unit) && l.get("process") == Some(&name))
        .expect("the unit's series");
    assert!(!ours.0.contains_key("container"), "a unit's process has no container label: {ours:?}");
    drop((server, client));
}
