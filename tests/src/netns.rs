//! Network namespaces of the test's own (`ip netns add`), deleted on drop.
//!
//! [`own`] is what most tests start with, as aya's integration tests do: a
//! fresh namespace that the test's thread enters, so that everything the
//! test then starts (nw-peer, netwatch, ss, netstat) and every socket it
//! opens lives there, alone. netwatch still traces every namespace, so a
//! test picks its events and rows by the namespace's inode; other helpers'
//! and other tests' traffic on the machine can then never disturb it, and
//! ports can no longer collide with theirs.
//!
//! [`TestNetns::with_syn_sink`] is a namespace where SYN-ACKs to 127.0.0.2
//! vanish: the way to keep request sockets (SYN_RECV) alive with nothing
//! but loopback addresses.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

/// The spoofed source whose SYN-ACKs go nowhere.
pub const SINK: &str = "127.0.0.2";

pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// `ip netns add nwtest-PID-TAG`, with lo up and 127.0.0.2 routed to a
    /// veth whose peer is down (its packets are dropped).
    ///
    /// 127.0.0.2 stops being local (the `local 127.0.0.0/8` route goes;
    /// 127.0.0.1 keeps its own), and `route_localnet` lets a loopback
    /// source leave through a non-loopback device; otherwise our own stack
    /// would answer each SYN-ACK with a RST and end the half-open connection.
    pub fn with_syn_sink(tag: &str) -> Self {
        let name = format!("nwtest-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        let n = ns.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&["-n", n, "link", "add", "nwsink0", "type", "veth", "peer", "name", "nwsink1"]);
        ip(&["-n", n, "link", "set", "nwsink0", "up"]);
        ip(&["netns", "exec", n, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"]);
        ip(&["-n", n, "route", "del", "127.0.0.0/8", "dev", "lo", "table", "local"]);
        ip(&["-n", n, "route", "add", &format!("{SINK}/32"), "dev", "nwsink0"]);
        // A permanent neighbour entry: otherwise ARP for the sink fails after
        // ~3 s, the resulting ICMP host-unreachable reaches the listener, and
        // the kernel drops every half-open connection (tcp_req_err) while
        // the test still counts on them.
        ip(&["-n", n, "neigh", "add", SINK, "lladdr", "02:00:00:00:00:02", "dev", "nwsink0", "nud", "permanent"]);
        ns
    }

    /// `ip netns add nwtest-PID-TAG` with lo up and nothing else: a
    /// namespace whose sockets are exactly the ones the test makes there.
    pub fn plain(tag: &str) -> Self {
        let name = format!("nwtest-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ip(&["-n", ns.name.as_str(), "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Inode of the namespace, as netwatch reports it in `netns`.
    pub fn inode(&self) -> u64 {
        let path = format!("/run/netns/{}", self.name);
        std::fs::metadata(&path).unwrap_or_else(|e| panic!("stat {path}: {e}")).ino()
    }

    /// `ip netns exec NAME program args...`: `ip` execs the program, so the
    /// child's pid is the program's.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// The inode of the calling thread's network namespace: the one [`own`]
/// entered, if it did (`/proc/self` would name the main thread's).
pub fn own_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").expect("stat /proc/thread-self/ns/net").ino()
}

/// The calling thread inside a namespace until drop, which takes it back.
///
/// setns(2) moves only the calling thread; processes it spawns start in
/// its namespace (a fork copies the forking thread's), and so do threads
/// it starts. Nothing else in the test binary moves.
pub struct Entered {
    back: File,
}

impl Entered {
    fn new(path: &str) -> Self {
        let back = File::open("/proc/thread-self/ns/net").expect("opening /proc/thread-self/ns/net");
        let target = File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        setns(&target, path);
        Self { back }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        setns(&self.back, "the test's previous network namespace");
    }
}

fn setns(ns: &File, what: &str) {
    // SAFETY: setns(2) only reads the descriptor, which `ns` keeps open.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {what}: {}", std::io::Error::last_os_error());
}

/// A fresh namespace (lo up) that the calling thread is in until drop,
/// when it goes back and the namespace is deleted. Start the test's
/// processes after this, and drop it last (declare it first).
pub struct Own {
    // Field order is drop order: leave the namespace, then delete it.
    _entered: Entered,
    ns: TestNetns,
}

/// Enters a namespace of the test's own; see [`Own`].
#[must_use = "the test leaves the namespace when this is dropped"]
pub fn own(tag: &str) -> Own {
    let ns = TestNetns::plain(tag);
    let entered = Entered::new(&format!("/run/netns/{}", ns.name()));
    Own { _entered: entered, ns }
}

impl Own {
    /// Its inode, as netwatch reports it (`netns` in JSON, the Netns column).
    pub fn inode(&self) -> u64 {
        self.ns.inode()
    }

    /// Its inode as a `--netns` argument.
    pub fn arg(&self) -> String {
        self.inode().to_string()
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("running ip {args:?}: {e}"));
    assert!(out.status.success(), "ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces of the test's own joined by a veth pair: `a` holds
/// [`VethPair::A_ADDR`], `b` holds [`VethPair::B_ADDR`] (documentation
/// addresses, which exist only inside these namespaces). Traffic between
/// them crosses the veth, unlike traffic inside one namespace, which the
/// kernel delivers over loopback however it is addressed.
pub struct VethPair {
    pub a: TestNetns,
    pub b: TestNetns,
}

impl VethPair {
    pub const A_ADDR: &'static str = "192.0.2.1";
    pub const B_ADDR: &'static str = "192.0.2.2";
    const B_DEV: &'static str = "nwvb";

    pub fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let make = |side: &str| {
            let name = format!("nwtest-{pid}-{tag}-{side}");
            ip(&["netns", "add", &name]);
            ip(&["-n", &name, "link", "set", "lo", "up"]);
            TestNetns { name }
        };
        let (a, b) = (make("a"), make("b"));
        let (na, nb) = (a.name(), b.name());
        ip(&["-n", na, "link", "add", "nwva", "type", "veth", "peer", "name", Self::B_DEV, "netns", nb]);
        ip(&["-n", na, "addr", "add", &format!("{}/24", Self::A_ADDR), "dev", "nwva"]);
        ip(&["-n", nb, "addr", "add", &format!("{}/24", Self::B_ADDR), "dev", Self::B_DEV]);
        ip(&["-n", na, "link", "set", "nwva", "up"]);
        ip(&["-n", nb, "link", "set", Self::B_DEV, "up"]);
        Self { a, b }
    }

    /// Makes `b` unable to answer `a` (a blackhole route), or able again.
    /// Meanwhile `a`'s segments still arrive but no ACK comes back, so `a`
    /// must retransmit, as after a loss on the wire: its transmits succeed,
    /// unlike with the link down, where `veth_xmit` refuses them at once
    /// and TCP re-sends them as new data. This stands in for a netem loss
    /// qdisc, which this kernel does not have.
    pub fn set_b_answers(&self, answers: bool) {
        let route = format!("{}/32", Self::A_ADDR);
        ip(&["-n", self.b.name(), "route", if answers { "del" } else { "add" }, "blackhole", &route]);
    }
}
