//! Seeding against the running kernel. Own-netns tests need no root; the
//! namespace test needs root and skips without it. Benchmarks are in
//! `bench_tests.rs`.
//!
//! Helper processes are this test binary re-run as
//! [`helper_process`] with `NETWATCH_SEED_HELPER` set: they open sockets,
//! print `ready PORT`, and hold them until their stdin closes.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::*;

const HELPER_ENV: &str = "NETWATCH_SEED_HELPER";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn inode_of(fd: &impl AsRawFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().ino()
}

pub(super) fn own_netns() -> u32 {
    std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32
}

fn by_inode(seed: &Seed, inode: u64) -> &SeedSocket {
    seed.sockets.iter().find(|s| s.inode == inode).unwrap_or_else(|| panic!("inode {inode} not seeded"))
}

fn owned_by_me(s: &SeedSocket, fd: &impl AsRawFd) -> bool {
    s.owners.iter().any(|o| o.pid == std::process::id() && o.fd == fd.as_raw_fd() as u32)
}

/// The sockets of one process: listener, both ends of a connection, a
/// TIME_WAIT left by an active close, bound and connected UDP, and IPv6.
struct Zoo {
    listener: TcpListener,
    client: TcpStream,
    server: TcpStream,
    time_wait: (SocketAddr, SocketAddr),
    udp_bound: UdpSocket,
    udp_connected: UdpSocket,
    v6: TcpListener,
}

impl Zoo {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let closer = TcpStream::connect(addr).unwrap();
        let (peer, _) = listener.accept().unwrap();
        let time_wait = (closer.local_addr().unwrap(), addr);
        closer.shutdown(Shutdown::Both).unwrap();
        drop(closer);
        let _ = (&peer).read(&mut [0u8; 1]);
        drop(peer);
        let udp_bound = UdpSocket::bind("0.0.0.0:0").unwrap();
        let udp_connected = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp_connected.connect(udp_bound.local_addr().unwrap()).unwrap();
        let v6 = TcpListener::bind("[::1]:0").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        Self { listener, client, server, time_wait, udp_bound, udp_connected, v6 }
    }

    fn inodes(&self) -> [u64; 6] {
        [
            inode_of(&self.listener),
            inode_of(&self.client),
            inode_of(&self.server),
            inode_of(&self.udp_bound),
            inode_of(&self.udp_connected),
            inode_of(&self.v6),
        ]
    }

    fn check(&self, seed: &Seed) {
        let ns = own_netns();
        assert_eq!(seed.namespaces[0], ns);
        let cookies = seed.stats.namespaces_diag > 0;
        for (fd, proto, state) in [
            (self.listener.as_raw_fd(), Proto::Tcp, TcpState::Listen),
            (self.client.as_raw_fd(), Proto::Tcp, TcpState::Established),
            (self.server.as_raw_fd(), Proto::Tcp, TcpState::Established),
            (self.udp_bound.as_raw_fd(), Proto::Udp, TcpState::Close),
            (self.udp_connected.as_raw_fd(), Proto::Udp, TcpState::Established),
            (self.v6.as_raw_fd(), Proto::Tcp, TcpState::Listen),
        ] {
            let s = by_inode(seed, inode_of(&fd));
            assert_eq!((s.proto, s.state, s.netns), (proto, state, ns), "{s:?}");
            assert!(owned_by_me(s, &fd), "{s:?}");
            let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
            assert_eq!(s.owners[0].comm, comm.trim_end());
            if proto == Proto::Tcp && cookies {
                assert!(s.cookie.is_some(), "{s:?}");
            }
        }
        let c = by_inode(seed, inode_of(&self.client));
        assert_eq!((c.local, c.remote), (self.client.local_addr().unwrap(), self.client.peer_addr().unwrap()));
        assert_eq!(by_inode(seed, inode_of(&self.v6)).family, Family::V6);
        let u = by_inode(seed, inode_of(&self.udp_connected));
        let bound_port = self.udp_bound.local_addr().unwrap().port();
        assert_eq!(u.remote, SocketAddr::from(([127, 0, 0, 1], bound_port)));

        let tw = seed
            .sockets
            .iter()
            .find(|s| (s.local, s.remote) == self.time_wait)
            .unwrap_or_else(|| panic!("no TIME_WAIT {:?}", self.time_wait));
        assert_eq!((tw.state, tw.inode, tw.owners.len()), (TcpState::TimeWait, 0, 0));
        assert_eq!(tw.timer.map(|t| t.kind), Some(TimerKind::TimeWait));
        assert_eq!(tw.cookie.is_some(), cookies);
    }
}

#[test]
fn seed_sees_our_sockets_both_ways() {
    let zoo = Zoo::new();
    let auto = seed_all().unwrap();
    assert!(auto.stats.namespaces_diag >= 1, "{:?}", auto.stats);
    zoo.check(&auto);
    let opts = SeedOptions { method: Method::ProcOnly, ..Default::default() };
    let proc = seed(&opts).unwrap();
    assert_eq!(proc.stats.namespaces_diag, 0);
    zoo.check(&proc);
}

/// As root, owners come from the kernel's socket-file iterator; they must be
/// exactly what the `/proc/*/fd` scan finds for our own sockets (pid, fd,
/// comm), and the seed must say which way it went.
#[test]
fn iterator_owners_match_the_proc_scan() {
    if !is_root() {
        eprintln!("skipping: the socket-file iterator needs root");
        return;
    }
    let zoo = Zoo::new();
    let fast = find_owners(Path::new("/proc"), 2).unwrap();
    assert!(fast.stats.via_iterator, "iterator not used: {:?}", fast.stats.iterator_error);
    let slow = scan_owners(Path::new("/proc"), 2).unwrap();
    assert!(!slow.stats.via_iterator);
    let me = std::process::id();
    for inode in zoo.inodes() {
        let mine = |scan: &OwnerScan| -> Vec<Process> {
            scan.owners.get(&inode).into_iter().flatten().filter(|p| p.pid == me).cloned().collect()
        };
        let (a, b) = (mine(&fast), mine(&slow));
        assert_eq!(a.len(), 1, "inode {inode}: {a:?}");
        assert_eq!(a, b, "inode {inode}");
    }
    // Other processes come and go between the two scans; ours stays.
    assert!(fast.netns.get(&own_netns()).is_some_and(|pids| pids.contains(&me)), "{:?}", fast.netns);
    zoo.check(&seed_all().unwrap());
}

/// Compares the seed with `ss -tuanpe` for the zoo's sockets: state,
/// inode, cookie (`sk:`) and the owner's fd.
#[test]
fn seed_agrees_with_ss() {
    let zoo = Zoo::new();
    let Ok(out) = Command::new("ss").args(["-tuanpeH"]).output() else {
        eprintln!("skipping: no ss");
        return;
    };
    let seed = seed_all().unwrap();
    let ss = String::from_utf8_lossy(&out.stdout);
    let mut compared = 0;
    for line in ss.lines() {
        let field = |key: &str| line.split_whitespace().find_map(|f| f.strip_prefix(key).map(str::to_owned));
        let (Some(ino), Some(sk)) = (field("ino:"), field("sk:")) else {
            continue;
        };
        let cookie = u64::from_str_radix(&sk, 16).unwrap();
        let Some(s) = seed.sockets.iter().find(|s| s.cookie == Some(cookie)) else {
            continue;
        };
        let mine = zoo.inodes().contains(&s.inode) || (s.local, s.remote) == zoo.time_wait;
        if !mine {
            continue;
        }
        assert_eq!(s.inode.to_string(), ino, "{line}");
        let state = line.split_whitespace().nth(1).unwrap();
        let ss_state = match (s.proto, s.state) {
            (Proto::Udp, TcpState::Close) => "UNCONN",
            (_, TcpState::Established) => "ESTAB",
            (_, st) => st.name(),
        };
        assert_eq!(state.replace('-', "_"), ss_state, "{line}");
        for o in &s.owners {
            assert!(line.contains(&format!("pid={},fd={}", o.pid, o.fd)), "{line} vs {:?}", s.owners);
        }
        compared += 1;
    }
    assert_eq!(compared, 7, "{ss}");
}

/// Not a test: the body of helper processes (see the module comment).
#[test]
#[ignore = "helper process for other tests"]
fn helper_process() {
    let Ok(what) = std::env::var(HELPER_ENV) else {
        return;
    };
    raise_nofile();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut held = Vec::new();
    // `rst-pairs` close with a reset, leaving no TIME_WAIT behind to skew
    // the next benchmark run.
    let (rst, n) = match what.split_once(':') {
        Some(("pairs", n)) => (false, n.parse::<usize>().unwrap()),
        Some(("rst-pairs", n)) => (true, n.parse::<usize>().unwrap()),
        _ => (false, 0),
    };
    for _ in 0..n {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        if rst {
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: `linger` is a valid SO_LINGER value for its size.
            unsafe {
                libc::setsockopt(
                    client.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                )
            };
        }
        held.push(client);
        held.push(listener.accept().unwrap().0);
    }
    println!("ready {}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit to fill and then pass back.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// A helper process, killed (stdin closed) on drop.
pub(super) struct Helper {
    child: Child,
    port: u16,
    /// Kept open so the helper's harness can still report when it ends.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Helper {
    pub(super) fn spawn(wrapper: &[&str], what: &str) -> Self {
        let exe = std::env::current_exe().unwrap();
        let (prog, args) = match wrapper.split_first() {
            Some((p, rest)) => {
                (p.to_string(), rest.iter().map(|s| s.to_string()).chain([exe.display().to_string()]).collect())
            }
            None => (exe.display().to_string(), Vec::new()),
        };
        let mut child = Command::new(prog)
            .args(args)
            .args(["--ignored", "--exact", "seed::live_tests::helper_process", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, what)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            // The harness prints `test ... ` before the helper's own output.
            .find_map(|l| l.ok()?.rsplit_once("ready ").map(|(_, p)| p.trim().parse().unwrap()))
            .expect("helper never got ready");
        Self { child, port, _stdout: lines }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `ip netns add` on creation, `ip netns del` on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> Self {
        let name = format!("nwseed{}", std::process::id());
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("ip").args(["netns", "add", &name]));
        ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Self(name)
    }

    fn inode(&self) -> u32 {
        std::fs::metadata(format!("/run/netns/{}", self.0)).unwrap().ino() as u32
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn finds_sockets_in_other_netns() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let ns = NetNs::new();
    let helper = Helper::spawn(&["ip", "netns", "exec", &ns.0], "pairs:1");
    for method in [Method::Auto, Method::ProcOnly] {
        let seed = seed(&SeedOptions { method, ..Default::default() }).unwrap();
        assert!(seed.namespaces.contains(&ns.inode()), "{method:?}: {:?}", seed.namespaces);
        let listener = seed
            .sockets
            .iter()
            .find(|s| s.netns == ns.inode() && s.state == TcpState::Listen && s.local.port() == helper.port)
            .unwrap_or_else(|| panic!("{method:?}: helper's listener not found"));
        assert_eq!(listener.owners.len(), 1, "{listener:?}");
        assert_eq!(listener.owners[0].pid, helper.child.id());
        assert_eq!(listener.cookie.is_some(), method == Method::Auto);
        let pair = seed.sockets.iter().filter(|s| s.netns == ns.inode() && s.state == TcpState::Established).count();
        assert_eq!(pair, 2, "{method:?}");
    }

    // With its only process gone, the namespace is reachable only through
    // its bind mount, with sock_diag; the closed pair left a TIME_WAIT.
    drop(helper);
    let seed_now = seed_all().unwrap();
    let tw = seed_now.sockets.iter().find(|s| s.netns == ns.inode() && s.state == TcpState::TimeWait);
    assert!(tw.is_some_and(|s| s.cookie.is_some() && s.owners.is_empty()), "{:?}", seed_now.stats);
    let opts = SeedOptions { method: Method::ProcOnly, ..Default::default() };
    let proc_only = seed(&opts).unwrap();
    assert!(!proc_only.sockets.iter().any(|s| s.netns == ns.inode()));
    let named = ns.inode().to_string();
    assert!(proc_only.stats.warnings.iter().any(|w| w.contains(&named)), "{:?}", proc_only.stats);
}

/// Prints the seed like `ss -tuanpe` for eyeballing: `cargo test ... --
/// --ignored --nocapture print_seed`.
#[test]
#[ignore = "prints the seed"]
fn print_seed() {
    let seed = seed_all().unwrap();
    for s in &seed.sockets {
        let users: Vec<String> =
            s.owners.iter().map(|o| format!("(\"{}\",pid={},fd={})", o.comm, o.pid, o.fd)).collect();
        println!(
            "{:?} {:<11} {:>6} {:>6} {:<45} {:<45} users:({}) ino:{} sk:{:x} netns:{} uid:{} timer:{:?}",
            s.proto,
            s.state.name(),
            s.rx_queue,
            s.tx_queue,
            s.local,
            s.remote,
            users.join(","),
            s.inode,
            s.cookie.unwrap_or(0),
            s.netns,
            s.uid,
            s.timer
        );
    }
    eprintln!("{:#?}", seed.stats);
}
