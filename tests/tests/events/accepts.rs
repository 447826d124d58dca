//! Who an event names, and what `accept` means (issue 17): the process
//! (thread group) and its program's name, never a thread's; `handshake` when
//! the kernel completes a passive open (the connection waits in the accept
//! queue), `accept` when a process's accept() returns it, naming that
//! process and thread, with the descriptor and the full tuple.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use netwatch_tests::conn::show;
use netwatch_tests::event::sock_events;
use netwatch_tests::process::{kill_and_reap, wait_timeout};
use netwatch_tests::{wait, Problems, SockEvent};

/// A listener whose accepting thread is named `acceptor-7`: it waits
/// `DELAY_S` before accepting, accepts `ACCEPTS` connections, prints one line
/// per accept (`fd tid peer_port`), then `held` and keeps them open until its
/// stdin closes. Connections beyond `ACCEPTS` are never accepted.
const SERVER: &str = r#"
import ctypes, socket, sys, threading, time
libc = ctypes.CDLL(None)
accepts, delay = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print("port", s.getsockname()[1], flush=True)
held = []
def acceptor():
    libc.prctl(15, b"acceptor-7", 0, 0, 0)  # PR_SET_NAME
    sys.stdin.readline()  # the clients have connected
    time.sleep(delay)
    for _ in range(accepts):
        c, peer = s.accept()
        held.append(c)
        print(c.fileno(), threading.get_native_id(), peer[1], flush=True)
    print("held", flush=True)
t = threading.Thread(target=acceptor)
t.start()
t.join()
sys.stdin.read()
"#;

const ACCEPTS: usize = 2;
const DELAY_S: f64 = 0.4;

struct PyServer {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<std::process::ChildStdout>,
}

impl PyServer {
    fn start() -> (Self, u16) {
        let mut child = Command::new("python3")
            .args(["-c", SERVER, &ACCEPTS.to_string(), &DELAY_S.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python3");
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut s = Self { child, stdin, out };
        let line = s.line();
        let port = line.strip_prefix("port ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
        (s, port)
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).expect("reading the server's stdout");
        assert!(!l.is_empty(), "the python server ended early");
        l.trim_end().to_owned()
    }

    fn say(&mut self, what: &str) {
        self.stdin.as_mut().expect("stdin").write_all(what.as_bytes()).expect("writing to the server");
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if wait_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
            kill_and_reap(&mut self.child);
        }
    }
}

/// What the server said of one accept() it made.
struct Accepted {
    fd: u64,
    tid: u64,
    peer: u16,
}

#[test]
fn a_named_acceptor_thread_and_a_late_accept() {
    let ns = super::setup_in("acceptor");
    let nw = super::events_in(&ns, &[]);
    let (mut srv, port) = PyServer::start();
    let pid = u64::from(srv.child.id());
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    // One more than the server accepts: that one only ever has its handshake.
    let clients: Vec<TcpStream> = (0..=ACCEPTS).map(|_| TcpStream::connect(to).expect("connecting")).collect();
    let client_ports: BTreeSet<u16> = clients.iter().map(|c| c.local_addr().expect("getsockname").port()).collect();
    srv.say("go\n");
    let accepted: Vec<Accepted> = (0..ACCEPTS)
        .map(|_| {
            let line = srv.line();
            let f: Vec<u64> = line.split(' ').map(|w| w.parse().unwrap_or_else(|_| panic!("{line:?}"))).collect();
            Accepted { fd: f[0], tid: f[1], peer: f[2] as u16 }
        })
        .collect();
    assert_eq!(srv.line(), "held");
    // netstat names the process and its program, as every event must.
    let netstat = Command::new("netstat").arg("-tnp").output().expect("running netstat -tnp");
    let netstat = String::from_utf8_lossy(&netstat.stdout).into_owned();
    let mut problems = Problems::default();
    for a in &accepted {
        let row = netstat.lines().find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 7 && f[3] == format!("127.0.0.1:{port}") && f[4] == format!("127.0.0.1:{}", a.peer)
        });
        match row.map(|r| r.split_whitespace().nth(6).unwrap_or_default().to_owned()) {
            Some(p) if p == format!("{pid}/python3") => {}
            other => problems.push(format!("netstat -tnp names {other:?} for port {}, not {pid}/python3", a.peer)),
        }
    }
    drop(srv);
    drop(clients);
    let events = sock_events(&nw.stop().events());
    let context = format!("python3 server pid {pid}, port {port}, clients {client_ports:?}");

    let mine: Vec<&SockEvent> = events.iter().filter(|e| e.pid == pid).collect();
    if let Some(e) = mine.iter().find(|e| e.comm != "python3") {
        problems.push(format!("an event of the server names {:?}, not python3: {}", e.comm, e.line));
    }
    match events.iter().find(|e| e.event == "listen" && e.sport == port) {
        Some(l) if l.pid == pid && l.tid == Some(pid) && l.thread.as_deref() == Some("python3") => {}
        other => problems.push(format!("expected a listen by pid {pid} in its main thread, got {other:?}")),
    }
    for &client in &client_ports {
        let child: Vec<&SockEvent> = events.iter().filter(|e| e.sport == port && e.dport == client).collect();
        let what = format!("the server's side of client port {client}");
        let at = |kind: &str| child.iter().position(|e| e.event == kind);
        let handshakes = child.iter().filter(|e| e.event == "handshake").count();
        let accepts: Vec<&&SockEvent> = child.iter().filter(|e| e.event == "accept").collect();
        if handshakes != 1 {
            problems.push(format!("{what}: expected one handshake:\n{}", show(&child)));
            continue;
        }
        let h = child[at("handshake").expect("one handshake")];
        if h.pid != pid || h.tid.is_some() || !h.line.contains(r#""owner":"listener""#) {
            problems.push(format!("{what}: the handshake (softirq) names the listener's owner, no thread: {}", h.line));
        }
        let Some(a) = accepted.iter().find(|a| a.peer == client) else {
            if !accepts.is_empty() {
                problems.push(format!("{what}: never accepted, yet:\n{}", show(&child)));
            }
            continue;
        };
        let [e] = accepts[..] else {
            problems.push(format!("{what}: expected one accept:\n{}", show(&child)));
            continue;
        };
        if at("accept") < at("handshake") {
            problems.push(format!("{what}: accept before its handshake:\n{}", show(&child)));
        }
        let tuple = (e.saddr.as_str(), e.sport, e.daddr.as_str(), e.dport);
        if (e.pid, e.comm.as_str(), e.tid, e.thread.as_deref(), e.fd, tuple)
            != (pid, "python3", Some(a.tid), Some("acceptor-7"), Some(a.fd), ("127.0.0.1", port, "127.0.0.1", client))
        {
            problems.push(format!(
                "{what}: expected accept by {pid}/python3, tid {} acceptor-7, fd {}: {}",
                a.tid, a.fd, e.line
            ));
        }
        // It waited at least the server's sleep after the handshake.
        match e.accept_queue_us {
            Some(us) if (400_000..30_000_000).contains(&us) => {}
            other => {
                problems.push(format!("{what}: accept_queue_us {other:?}, expected {DELAY_S} s or more: {}", e.line))
            }
        }
    }
    let unaccepted = client_ports.iter().filter(|p| !accepted.iter().any(|a| a.peer == **p)).count();
    if unaccepted != 1 {
        problems.push(format!("expected one connection never accepted, got {unaccepted}"));
    }
    problems.assert_none(&context);
}

/// nginx as Debian ships it, daemonized: the process started calls
/// listen() and exits while the master it forked forks two workers, which
/// accept. Every `accept` must name a worker, never the process that
/// listened nor the master.
#[test]
fn nginx_accepts_name_its_workers() {
    nginx_under_ab("");
}

/// The same with `reuseport`: one listening socket per worker.
#[test]
fn nginx_reuseport_accepts_name_its_workers() {
    nginx_under_ab(" reuseport");
}

const REQUESTS: usize = 300;
const CONCURRENCY: usize = 4;

/// A daemonized nginx from a temporary prefix of its own, stopped (through
/// its pid file) when dropped.
struct Nginx {
    dir: PathBuf,
    launcher: u32,
}

impl Nginx {
    fn start(port: u16, listen_opts: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nw-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating nginx's prefix");
        let d = dir.display();
        let conf = format!(
            "daemon on;\nmaster_process on;\nworker_processes 2;\nuser root;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 0;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  server {{\n    listen 127.0.0.1:{port}{listen_opts};\n    \
             location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("writing nginx.conf");
        let mut launch = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .spawn()
            .expect("starting nginx");
        let launcher = launch.id();
        let status = wait_timeout(&mut launch, Duration::from_secs(20)).expect("nginx daemonizes");
        let ng = Self { dir, launcher };
        assert!(status.success(), "nginx failed to start: {}", ng.log());
        ng
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn master(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("nginx.pid")).ok()?.trim().parse().ok()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(master) = self.master() {
            // SAFETY: kill(2) with a pid nginx wrote and a plain signal.
            unsafe { libc::kill(master as i32, libc::SIGTERM) };
            let gone = || !Path::new(&format!("/proc/{master}")).exists();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !gone() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The children of `pid` (`pgrep -P`).
fn children_of(pid: u32) -> BTreeSet<u64> {
    let out = Command::new("pgrep").args(["-P", &pid.to_string()]).output().expect("running pgrep");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn nginx_under_ab(listen_opts: &str) {
    let ns = super::setup_in("nginx");
    let nw = super::events_in(&ns, &[]);
    let port = netwatch_tests::free_port([127, 0, 0, 1].into());
    let nginx = Nginx::start(port, listen_opts);
    let master = wait::until("nginx's pid file", Duration::from_secs(10), || nginx.master().ok_or("no pid file yet"));
    let workers = wait::until("nginx's two workers", Duration::from_secs(10), || match children_of(master) {
        w if w.len() == 2 => Ok(w),
        w => Err(format!("workers {w:?}")),
    });
    let url = format!("http://127.0.0.1:{port}/");
    let ab = Command::new("ab")
        .args(["-q", "-n", &REQUESTS.to_string(), "-c", &CONCURRENCY.to_string(), &url])
        .output()
        .expect("running ab");
    let report = String::from_utf8_lossy(&ab.stdout).into_owned();
    assert!(
        ab.status.success() && report.contains(&format!("Complete requests:      {REQUESTS}")),
        "ab failed: {report}{}\nnginx: {}",
        String::from_utf8_lossy(&ab.stderr),
        nginx.log()
    );
    // Still the same two workers: each pid below was alive throughout.
    assert_eq!(children_of(master), workers, "nginx's workers changed under ab");
    let events = sock_events(&nw.stop().events());
    let launcher = nginx.launcher;
    drop(nginx);
    let context =
        format!("nginx{listen_opts} on port {port}: launcher {launcher}, master {master}, workers {workers:?}");

    let mut problems = Problems::default();
    let accepts: Vec<&SockEvent> = events.iter().filter(|e| e.event == "accept" && e.sport == port).collect();
    let handshakes = events.iter().filter(|e| e.event == "handshake" && e.sport == port).count();
    // ab opens a connection per request, and may open up to its
    // concurrency more that it closes unused once the requests are done.
    let most = REQUESTS + CONCURRENCY;
    if !(REQUESTS..=most).contains(&handshakes) || !(REQUESTS..=handshakes).contains(&accepts.len()) {
        problems.push(format!(
            "expected {REQUESTS} to {most} handshakes, accepted as many or a few fewer: got {handshakes} and {}",
            accepts.len()
        ));
    }
    let wrong: Vec<&SockEvent> = accepts
        .iter()
        .copied()
        .filter(|e| {
            !workers.contains(&e.pid)
                || e.comm != "nginx"
                || e.tid != Some(e.pid)
                || e.thread.as_deref() != Some("nginx")
                || e.fd.is_none()
                || e.daddr != "127.0.0.1"
                || e.dport == 0
        })
        .collect();
    if !wrong.is_empty() {
        problems.push(format!("{} accept(s) not by a worker, or incomplete:\n{}", wrong.len(), show(&wrong)));
    }
    // The connections the workers accepted are the workers' from then on.
    let worker_cookies: BTreeSet<u64> = accepts.iter().map(|e| e.cookie).collect();
    let later: Vec<&SockEvent> = events
        .iter()
        .filter(|e| worker_cookies.contains(&e.cookie) && e.new_state == "CLOSE" && !workers.contains(&e.pid))
        .collect();
    if !later.is_empty() {
        problems.push(format!("closes of accepted connections not named by a worker:\n{}", show(&later)));
    }
    problems.assert_none(&context);
}
