//! netwatch's netstat flags against net-tools `netstat` itself (issue 4).
//!
//! Each test builds a machine state inside a network namespace it creates
//! (`ip netns add`, a veth pair with IPv4/IPv6 addresses and routes) and
//! runs `netstat FLAGS` and `netwatch FLAGS` there back to back with
//! `ip netns exec`, then compares their output line by line after sorting.
//! The namespace keeps the rest of the machine's churn out, so the
//! connection views must match exactly; only kernel counters (`-i`, `-s`)
//! and timer countdowns (`-o`) are masked.
//!
//! The sockets are held by this test binary run again inside the
//! namespace (`holder` below, selected by an environment variable).
//! Needs root and one thread (`cargo xtask test`); fails without root.
//! `NETWATCH_BIN` names the netwatch binary (default: the workspace's
//! `target/release/netwatch`).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::net::{UnixDatagram, UnixListener, UnixStream},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
    time::Duration,
};

use netwatch_tests::process::{kill_and_reap, Lines};
use netwatch_tests::wait;

const HOLD_ENV: &str = "NW_NETSTAT_HOLDER";
/// A long address on the veth, to exercise netstat's truncation.
const LONG_V6: &str = "fd00:200:1234:5678:9abc:def0:1234:5678";

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root: run `cargo xtask test`");
}

fn netwatch_bin() -> PathBuf {
    let path = std::env::var_os("NETWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/netwatch"));
    assert!(path.is_file(), "netwatch not found at {} (build it, or set NETWATCH_BIN)", path.display());
    path
}

fn sh(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(status.success(), "{args:?} failed: {status}");
}

/// A network namespace with lo, a veth pair, addresses and routes, and a
/// holder process inside it; all removed on drop.
struct Ns {
    name: String,
    holder: Child,
    /// Kept open so the holder's harness can print its result on the way out.
    _holder_out: BufReader<ChildStdout>,
}

impl Ns {
    fn new(tag: &str) -> Self {
        require_root();
        let name = format!("nw-ns-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        sh(&["ip", "netns", "add", &name]);
        let ip = |args: &str| {
            let mut argv = vec!["ip", "-n", name.as_str()];
            argv.extend(args.split_whitespace());
            sh(&argv);
        };
        ip("link set lo up");
        ip("link add veth0 type veth peer name veth1");
        ip("addr add 10.200.0.1/24 dev veth0");
        ip("addr add 10.200.0.2/24 dev veth1");
        ip("-6 addr add fd00:200::1/64 dev veth0 nodad");
        ip(&format!("-6 addr add {LONG_V6}/64 dev veth0 nodad"));
        ip("link set veth0 up");
        ip("link set veth1 up");
        ip("route add 10.201.0.0/16 via 10.200.0.2");
        ip("route add 10.202.0.7 via 10.200.0.2 metric 5");
        ip("-6 route add fd00:201::/64 via fd00:200::2");
        let mut holder = Command::new("ip")
            .args(["netns", "exec", &name])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "holder", "--nocapture", "--test-threads=1"])
            .env(HOLD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        let mut out = BufReader::new(holder.stdout.take().unwrap());
        while !ready.contains("holder ready") {
            ready.clear();
            assert!(out.read_line(&mut ready).unwrap() > 0, "the socket holder exited early");
        }
        let ns = Ns { name, holder, _holder_out: out };
        // The holder's two closed connections down to their TIME_WAIT ends,
        // nothing else half-way through a close.
        wait::until("the namespace's TCP sockets to settle", Duration::from_secs(5), || {
            let states = ns.output("ss", "-Htan", "");
            let states: Vec<&str> = states.lines().filter_map(|l| l.split_whitespace().next()).collect();
            let tw = states.iter().filter(|s| **s == "TIME-WAIT").count();
            let closing = ["FIN-WAIT-1", "FIN-WAIT-2", "LAST-ACK", "CLOSING", "SYN-SENT", "SYN-RECV"];
            let busy = states.iter().any(|s| closing.contains(s));
            wait::check(tw == 2 && !busy, || format!("ss states {states:?}"))
        });
        ns
    }

    /// Runs `prog flags...` inside the namespace, through `sh -c` when
    /// `pipeline` is given (`netstat -an | grep :22`).
    fn output(&self, prog: &str, flags: &str, pipeline: &str) -> String {
        let cmd = format!("{prog} {flags} {pipeline}");
        let out = Command::new("ip").args(["netns", "exec", &self.name, "sh", "-c", &cmd]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// netstat then netwatch, back to back; sorted lines, `mask` applied.
    /// Live values can move between the two reads (an IPv6 route's Ref
    /// count when a multicast packet holds it, a queue), so a difference is
    /// re-read up to twice: it must be there every time to count.
    fn compare_with(&self, flags: &str, pipeline: &str, mask: fn(&str) -> String) {
        let netwatch = netwatch_bin();
        let sorted = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(mask).collect();
            lines.sort();
            lines
        };
        wait::until(&format!("`{flags} {pipeline}` to be netstat's"), Duration::from_secs(2), || {
            let want = sorted(&self.output("netstat", flags, pipeline));
            let got = sorted(&self.output(netwatch.to_str().unwrap(), flags, pipeline));
            assert!(!want.is_empty(), "netstat {flags} {pipeline} printed nothing");
            let only_netstat: Vec<_> = want.iter().filter(|l| !got.contains(l)).collect();
            let only_netwatch: Vec<_> = got.iter().filter(|l| !want.contains(l)).collect();
            wait::check(want == got, || {
                format!("a difference\nonly netstat:  {only_netstat:#?}\nonly netwatch: {only_netwatch:#?}")
            })
        });
    }

    fn compare(&self, flags: &str) {
        self.compare_with(flags, "", str::to_owned);
    }

    fn netwatch_status(&self, flags: &[&str]) -> i32 {
        let out =
            Command::new("ip").args(["netns", "exec", &self.name]).arg(netwatch_bin()).args(flags).output().unwrap();
        out.status.code().unwrap_or(-1)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        // Closing stdin tells the holder to close its sockets and remove its
        // socket files; it is killed only if it has not done so in time, so
        // no directory is left behind for a later holder with the same PID
        // (pid_max is 32768 on these machines and a build wraps it).
        drop(self.holder.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.holder.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Digits replaced: counters and countdowns differ between two reads.
fn mask_numbers(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Only the timer countdowns of `-o` (`(7199.93/0/0)`) masked.
fn mask_timers(line: &str) -> String {
    match line.rfind(" (") {
        Some(i) => {
            let (head, tail) = line.split_at(i);
            let rest = tail.split_once('/').map_or("", |(_, r)| r);
            format!("{head} (X/{rest}")
        }
        None => line.to_owned(),
    }
}

/// `-i`: name, MTU and flags; counters masked.
fn mask_iface(line: &str) -> String {
    let cols: Vec<&str> = line.split_whitespace().collect();
    match cols.as_slice() {
        [name, mtu, .., flags] if mtu.parse::<u32>().is_ok() => format!("{name} {mtu} {flags}"),
        _ => line.to_owned(),
    }
}

#[test]
fn connection_views_match_netstat() {
    let ns = Ns::new("conn");
    for flags in [
        "-tulpn",
        "-an",
        "-anp",
        "-lnp",
        "-tnp",
        "-ln",
        "-a",
        "-ap",
        "-l",
        "-t",
        "-ta",
        "-u",
        "-ua",
        "-w",
        "-wa",
        "-e",
        "-ae",
        "-aee",
        "-aep",
        "-W",
        "-aW",
        "-anW",
        "-aeW",
        "-4",
        "-6",
        "-a4",
        "-an6",
        "-aUn",
        "-aw -n",
        "-A inet6 -a",
        "--all --tcp --udp --numeric --programs --extend --wide",
        "--listening --program",
        "--numeric-hosts -a",
        "--numeric-ports -a",
        "--numeric-users -ae",
        "-x",
        "-ax",
        "-axp",
        "-xl",
        "-xn -a",
        "--unix --all --programs",
    ] {
        ns.compare(flags);
    }
    for flags in ["-ano", "-tnpo", "-unoa", "-aoe"] {
        ns.compare_with(flags, "", mask_timers);
    }
}

#[test]
fn pipelines_give_netstats_answers() {
    let ns = Ns::new("pipe");
    let same = str::to_owned;
    ns.compare_with("-tulpn", "", same);
    ns.compare_with("-an", "| grep :22", same);
    ns.compare_with("-an", "| awk '/^tcp/ {print $6}' | sort | uniq -c", same);
    ns.compare_with("-anp", "| grep ESTABLISHED", same);
    ns.compare_with("-lnp", "| grep :80", same);
    ns.compare_with("-rn", "", same);
    ns.compare_with("-i", "", mask_iface);
    ns.compare_with("-s", "| grep -i retrans", mask_numbers);
}

#[test]
fn other_views_match_netstat() {
    let ns = Ns::new("views");
    for flags in ["-rn", "-r", "-rne", "-re", "-ree", "-rnee", "-6rn", "-6r", "-A inet6 -rn", "-4 -6 -rn", "-gn", "-g"]
    {
        ns.compare(flags);
    }
    for flags in ["-i", "-ia"] {
        ns.compare_with(flags, "", mask_iface);
    }
    for flags in ["-ie", "-iea", "-s", "-st", "-su", "-sw", "-6s", "-6st"] {
        ns.compare_with(flags, "", mask_numbers);
    }
}

#[test]
fn bad_flags_exit_2_and_help_lists_netstat_flags() {
    let ns = Ns::new("flags");
    for flags in [
        &["-r", "-i"][..],
        &["-s", "-4", "-6"],
        &["-rx"],
        &["--bogus"],
        &["-A", "nope"],
        &["-t", "events"],
        &["-tanp", "2"],
    ] {
        assert_eq!(ns.netwatch_status(flags), 2, "netwatch {flags:?}");
    }
    let help = Command::new(netwatch_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in
        ["netstat views", "--route", "--interfaces", "--statistics", "--groups", "--programs", "netwatch -tulpn"]
    {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

/// `-c`'s closed block: a TCP connection and a UDP socket that opened and
/// closed between two refreshes, each under its protocol's flag only.
#[test]
fn continuous_lists_connections_that_came_and_went() {
    let tcp = "'exec 3<>/dev/tcp/127.0.0.1/8080; exec 3>&-; echo done'";
    // A connected UDP socket (bash's /dev/udp): a port, a peer, a datagram.
    let udp = "'exec 3<>/dev/udp/127.0.0.1/9999; echo x >&3; exec 3>&-; echo done'";
    // Lifetimes in milliseconds: a connection this short read 0.000s.
    let ms = |row: &str| -> f64 {
        let ms = row.rsplit(' ').next().and_then(|l| l.strip_suffix("ms")).and_then(|n| n.parse().ok());
        ms.unwrap_or(-1.0)
    };
    let tcp_row = continuous("-tnc", tcp, "127.0.0.1:8080", "udp");
    assert!(tcp_row.starts_with("tcp "), "{tcp_row:?}");
    assert!(ms(&tcp_row) > 0.0 && ms(&tcp_row) < 5000.0, "lifetime in ms: {tcp_row:?}");
    let udp_row = continuous("-unc", udp, "127.0.0.1:9999", "tcp");
    let cols: Vec<&str> = udp_row.split_whitespace().collect();
    assert_eq!((cols[0], cols[2], cols[3]), ("udp", "127.0.0.1:9999", "CLOSED"), "{udp_row:?}");
    assert!(cols[4].ends_with("/bash"), "the owner: {udp_row:?}");
    assert!(ms(&udp_row) > 0.0 && ms(&udp_row) < 5000.0, "lifetime in ms: {udp_row:?}");
}

/// Runs `netwatch FLAGS` in a namespace of its own, runs `script` there
/// with bash, and returns the closed block's row for `remote`; no row of
/// `other` protocol may show in any closed block.
fn continuous(flags: &str, script: &str, remote: &str, other: &str) -> String {
    let ns = Ns::new("cont");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(netwatch_bin())
        .arg(flags)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::spawn(child.stdout.take().unwrap());
    const HEADER: &str = "Active Internet connections (w/o servers)";
    let listings = || lines.snapshot().iter().filter(|l| l.contains(HEADER)).count();
    // The eBPF programs load before the first listing.
    wait::until("the first listing", Duration::from_secs(10), || {
        let n = listings();
        wait::check(n >= 1, || format!("{n} listings"))
    });
    // A socket opened and closed inside one refresh interval.
    let done = ns.output("bash", "-c", script);
    assert!(done.contains("done"), "could not connect inside the namespace: {done}");
    let out = wait::until("the short-lived socket in a closed block", Duration::from_secs(10), || {
        let out = lines.snapshot().join("\n");
        let block = out.split("Opened and closed since last refresh").nth(1).unwrap_or_default();
        wait::check(block.contains(remote), || format!("output so far:\n{out}")).map(|()| out)
    });
    kill_and_reap(&mut child);
    assert!(out.matches(HEADER).count() >= 2, "no repeated listing:\n{out}");
    let block = out.split("Opened and closed since last refresh").nth(1).unwrap_or_default();
    let row = block.lines().find(|l| l.contains(remote)).expect("the row");
    let strays: Vec<&str> = out
        .split("Opened and closed since last refresh")
        .skip(1)
        .flat_map(str::lines)
        .filter(|l| l.starts_with(&format!("{other} ")) || l.starts_with(&format!("{other}6 ")))
        .collect();
    assert!(strays.is_empty(), "{other} rows under {flags}: {strays:?}");
    row.to_owned()
}

/// Not a test of its own: the socket holder, run inside the namespace by
/// [`Ns::new`]. Holds every socket until its stdin closes.
#[test]
fn holder() {
    if std::env::var_os(HOLD_ENV).is_none() {
        return;
    }
    let mut keep_tcp = Vec::new();
    let listen = |addr: &str| TcpListener::bind(addr).unwrap();
    let l22 = listen("0.0.0.0:22");
    let l8080 = listen("127.0.0.1:8080");
    let l8443 = listen("[::1]:8443");
    let l80 = listen("[::]:80");
    let long = listen(&format!("[{LONG_V6}]:8443"));
    for (listener, addr) in
        [(&l22, "127.0.0.1:22"), (&l8080, "127.0.0.1:8080"), (&l8443, "[::1]:8443"), (&l80, "[::1]:80")]
    {
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(b"0123456789").unwrap();
        keep_tcp.push(client);
        keep_tcp.push(listener.accept().unwrap().0);
    }
    let mut long_client =
        TcpStream::connect(SocketAddr::new(LONG_V6.parse::<Ipv6Addr>().unwrap().into(), 8443)).unwrap();
    long_client.write_all(b"x").unwrap();
    keep_tcp.push(long_client);
    keep_tcp.push(long.accept().unwrap().0);
    // TIME_WAIT on the client side, IPv4 and IPv6.
    for (listener, addr) in [(&l8080, "127.0.0.1:8080"), (&l8443, "[::1]:8443")] {
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(client);
        drop(server);
    }
    let udp = |addr: &str| UdpSocket::bind(addr).unwrap();
    let u1 = udp("0.0.0.0:5353");
    let u2 = udp("[::1]:5354");
    let u3 = udp("127.0.0.1:0");
    u3.connect("127.0.0.1:5353").unwrap();
    u3.send(b"queued").unwrap();
    let u4 = udp("[::1]:0");
    u4.connect("[::1]:5354").unwrap();
    let dir = std::env::temp_dir().join(format!("nw-netstat-{}", std::process::id()));
    // A holder killed before its cleanup leaves this directory for the next
    // process that gets its PID; binding into it would fail with EADDRINUSE.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stream.sock");
    let ul = UnixListener::bind(&path).unwrap();
    let uc = UnixStream::connect(&path).unwrap();
    let ua = ul.accept().unwrap().0;
    let (pa, pb) = UnixStream::pair().unwrap();
    let ud = UnixDatagram::bind(dir.join("dgram.sock")).unwrap();
    // SAFETY: plain socket(2); a raw ICMP socket for `-w`.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(raw >= 0, "raw socket: {}", std::io::Error::last_os_error());
    println!("holder ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop((keep_tcp, l22, l8080, l8443, l80, long, u1, u2, u3, u4, ul, uc, ua, pa, pb, ud));
    let _ = std::fs::remove_dir_all(&dir);
}
