//! The traffic counters: cgroup_skb and cgroup sock programs on the cgroup
//! v2 root (every socket of every process, in every network namespace, is
//! under it) and the TCP retransmit/reset BTF tracepoints.
//!
//! Attached through bpf_link, like everything else, so closing our fds
//! detaches them: nothing stays in the kernel after netwatch exits.

use std::{fs::File, os::fd::AsFd as _, path::PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use aya::{
    maps::{HashMap, Map},
    programs::{links::CgroupAttachMode, BtfTracePoint, CgroupSkb, CgroupSkbAttachType, CgroupSock},
    Btf, Ebpf,
};
use netwatch_common::{names, Traffic};

use super::program;

/// Environment variable that leaves the traffic programs out (`1`), e.g. to
/// measure what they cost.
pub const DISABLE_ENV: &str = "NETWATCH_NO_TRAFFIC";

/// Whether the user asked for no traffic counting.
pub fn disabled_by_env() -> bool {
    std::env::var_os(DISABLE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Environment variable that sizes the per-socket counter map: how many
/// sockets can have traffic counted at once (default
/// [`netwatch_common::TRAFFIC_SOCKETS`]).
pub const SOCKETS_ENV: &str = "NETWATCH_TRAFFIC_SOCKETS";

/// The most [`SOCKETS_ENV`] may ask for: 16 Mi rows are about 1.9 GiB
/// of kernel memory, and the kernel refuses far larger maps with a bare
/// E2BIG.
const MAX_SOCKETS: u32 = 1 << 24;

/// The map size the user asked for, if any.
pub fn sockets_from_env() -> Result<Option<u32>> {
    let Some(v) = std::env::var_os(SOCKETS_ENV) else { return Ok(None) };
    let v = v.to_string_lossy();
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_SOCKETS).contains(&n) => Ok(Some(n)),
        _ => Err(anyhow!("{SOCKETS_ENV}={v:?}: expected a number of sockets from 1 to {MAX_SOCKETS}")),
    }
}

/// The warning for the first packets the full map left out. The map is
/// not LRU (a live socket's counts must not vanish), so it stays full
/// until enough sockets close.
pub fn full_warning(packets: u64) -> String {
    // The size this run loaded with: the environment was read at load.
    let size = sockets_from_env().ok().flatten().unwrap_or(netwatch_common::TRAFFIC_SOCKETS);
    format!(
        "the traffic map is full ({size} sockets): {packets} packets of sockets that found no room were not \
         counted, so their rates, UDP totals and drops read low (serve counts them in \
         netwatch_traffic_uncounted_packets); set {SOCKETS_ENV} to hold more"
    )
}

/// The per-socket counters the kernel keeps, by socket cookie.
pub struct TrafficMap {
    /// A hash map (checked at attach).
    map: Map,
    /// Whether every packet is counted; without, the map only has
    /// retransmits and resets.
    pub packets: bool,
    /// The last reading, its buffer kept for the next.
    rows: Vec<(u64, Traffic)>,
    /// Why the kernel refused a batch read, once it did: walked key by key
    /// from then on.
    no_batch: Option<std::io::Error>,
}

impl TrafficMap {
    /// Every socket's counters now: one pass over the kernel map, in
    /// batches; a row deleted meanwhile is skipped, not an error.
    pub fn read_all(&mut self) -> &[(u64, Traffic)] {
        self.rows.clear();
        if let (None, Map::HashMap(data)) = (&self.no_batch, &self.map) {
            match super::sys::lookup_batch(data.fd().as_fd(), &mut self.rows) {
                Ok(()) => return &self.rows,
                Err(e) => {
                    // Not a reason to stop counting: the walk reads the same.
                    eprintln!("netwatch: note: the traffic map is read key by key (batch read refused: {e})");
                    self.rows.clear();
                    self.no_batch = Some(e);
                }
            }
        }
        if let Ok(map) = HashMap::<_, u64, Traffic>::try_from(&self.map) {
            self.rows.extend(map.iter().filter_map(Result::ok));
        }
        &self.rows
    }
}

/// Where cgroup v2 is mounted, from a mountinfo text: the unified
/// hierarchy's root (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid layout).
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS`
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mut f = left.split_whitespace();
        let root = f.nth(3)?;
        let mountpoint = f.next()?;
        // Only a mount of the hierarchy's root sees every process.
        (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape(mountpoint)))
    })
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The cgroup v2 root, from our mount namespace or else from init's: `ip
/// netns exec` runs us in a mount namespace with a fresh /sys, where the
/// hierarchy is not mounted, yet it is the same hierarchy, reachable
/// through `/proc/1/root`. Where init's root is closed to us (an init that
/// is not dumpable, as some container and sandbox inits are), through our
/// nearest ancestor's that has it: the shell that ran `ip netns exec` is
/// still in the namespace it left.
pub(crate) fn open_cgroup_root() -> Result<(PathBuf, File)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    if let Some(path) = cgroup2_mount(&text) {
        let file = File::open(&path).with_context(|| format!("opening the cgroup v2 root {}", path.display()))?;
        return Ok((path, file));
    }
    let mut last = None;
    for pid in std::iter::once(1).chain(ancestors()) {
        let Some(mount) =
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok().and_then(|t| cgroup2_mount(&t))
        else {
            continue;
        };
        let path = PathBuf::from(format!("/proc/{pid}/root")).join(mount.strip_prefix("/").unwrap_or(&mount));
        match File::open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) => last = Some(anyhow!(e).context(format!("opening the cgroup v2 root {}", path.display()))),
        }
    }
    Err(last.unwrap_or_else(|| {
        anyhow!(
            "no cgroup v2 hierarchy is mounted (here or in init's mount namespace), and the \
             traffic counters attach to its root: mount it with `mount -t cgroup2 none /sys/fs/cgroup`"
        )
    }))
}

/// Our parent, its parent, and so on up to init (which is left out).
fn ancestors() -> impl Iterator<Item = u32> {
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    std::iter::successors(Some(std::os::unix::process::parent_id()), move |&pid| parent(pid))
        .take_while(|&pid| pid > 1)
        .take(64)
}

/// Loads and attaches the traffic programs, the per-packet ones only with
/// `packets`; returns the counter map.
pub fn attach(ebpf: &mut Ebpf, btf: &Btf, packets: bool) -> Result<TrafficMap> {
    let (path, cgroup) = open_cgroup_root()?;
    let at = || format!("the cgroup v2 root {}", path.display());
    let per_packet = [
        (names::PROG_SKB_INGRESS, CgroupSkbAttachType::Ingress),
        (names::PROG_SKB_EGRESS, CgroupSkbAttachType::Egress),
    ];
    for (prog, dir) in per_packet.into_iter().filter(|_| packets) {
        let p: &mut CgroupSkb = program(ebpf, prog)?.try_into()?;
        p.load().with_context(|| format!("loading {prog}"))?;
        // `Single` is flags 0, which bpf_link_create requires for cgroups
        // (any flag is EINVAL): a cgroup link always runs alongside other
        // tools' programs on the root, as BPF_F_ALLOW_MULTI would.
        p.attach(&cgroup, dir, CgroupAttachMode::Single).with_context(|| format!("attaching {prog} to {}", at()))?;
    }
    for prog in [names::PROG_SOCK_CREATE, names::PROG_SOCK_RELEASE] {
        let p: &mut CgroupSock = program(ebpf, prog)?.try_into()?;
        if p.fd().is_ok() {
            // Loaded and attached already, to make cookies (probe::compat).
            continue;
        }
        p.load().with_context(|| format!("loading {prog}"))?;
        p.attach(&cgroup, CgroupAttachMode::Single).with_context(|| format!("attaching {prog} to {}", at()))?;
    }
    for (prog, tp) in [
        (names::PROG_RETRANSMIT, names::TP_RETRANSMIT),
        (names::PROG_SEND_RESET, names::TP_SEND_RESET),
        (names::PROG_RECV_RESET, names::TP_RECV_RESET),
    ] {
        super::attach_btf(ebpf, btf, prog, tp)?;
    }
    // Drops are an addition to the counters: without them every count flows.
    if let Err(e) = attach_drops(ebpf, btf) {
        eprintln!("netwatch: note: packet drops are not counted per connection: {e:#}");
    }
    let map = ebpf.take_map(names::MAP_TRAFFIC).ok_or_else(|| anyhow!("map {} missing", names::MAP_TRAFFIC))?;
    HashMap::<_, u64, Traffic>::try_from(&map).context("opening the traffic map")?;
    if !matches!(map, Map::HashMap(_)) {
        bail!("map {} is not a hash map", names::MAP_TRAFFIC);
    }
    Ok(TrafficMap { map, packets, rows: Vec::new(), no_batch: None })
}

/// Said once where only [`names::PROG_KFREE_SKB_NO_RX_SK`] loads.
const NO_RX_SK: &str = "packets dropped on arrival before their socket took them (a full receive buffer, a \
                            socket filter) are not counted per connection: this kernel's skb:kfree_skb does not name \
                            the receiving socket (rx_sk, Linux 6.11)";

/// The `skb:kfree_skb` program, which reads the drop reason that argument
/// only has since Linux 5.17: on older kernels the verifier refuses it.
/// The one that also reads the receiving socket (`rx_sk`, Linux 6.11)
/// first; where the verifier refuses that argument, the one without.
fn attach_drops(ebpf: &mut Ebpf, btf: &Btf) -> Result<()> {
    let tp = names::TP_KFREE_SKB;
    let p: &mut BtfTracePoint = program(ebpf, names::PROG_KFREE_SKB)?.try_into()?;
    if p.load(tp, btf).is_ok() {
        p.attach().with_context(|| format!("attaching to BTF tracepoint {tp}"))?;
        return Ok(());
    }
    let prog = names::PROG_KFREE_SKB_NO_RX_SK;
    let p: &mut BtfTracePoint = program(ebpf, prog)?.try_into()?;
    p.load(tp, btf).with_context(|| {
        format!("loading {prog} for BTF tracepoint {tp} (its drop reason needs Linux 5.17 or later)")
    })?;
    p.attach().with_context(|| format!("attaching to BTF tracepoint {tp}"))?;
    eprintln!("netwatch: note: {NO_RX_SK}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unified_root_in_a_hybrid_layout() {
        let text = "\
24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 24 0:27 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(cgroup2_mount(text), Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn skips_subtree_mounts_and_unescapes() {
        let text = "\
50 31 0:38 /user.slice /mnt/sub rw - cgroup2 cgroup2 rw
51 31 0:38 / /mnt/my\\040cg rw shared:1 - cgroup2 none rw
";
        assert_eq!(cgroup2_mount(text), Some(PathBuf::from("/mnt/my cg")));
    }

    #[test]
    fn none_without_cgroup2() {
        assert_eq!(cgroup2_mount("24 30 0:22 / /sys rw - sysfs sysfs rw\n"), None);
    }
}
