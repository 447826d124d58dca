//! What the kernel knows about netwatch's counting programs: which of a
//! process's programs are `cgroup_skb` ones (from its fds' fdinfo), whether
//! they are attached (`bpftool cgroup tree`), and how often they ran and for
//! how long (fdinfo `run_cnt` / `run_time_ns`, kept while [`RunTimeStats`]
//! lives).
//!
//! The process's own fds, not program names, say which programs are ours:
//! other engineers' netwatch instances load programs with the same names on
//! this machine at the same time.

use std::{
    os::fd::{FromRawFd as _, OwnedFd},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

/// `BPF_PROG_TYPE_CGROUP_SKB` in fdinfo's `prog_type`.
const CGROUP_SKB: u32 = 8;
/// `BPF_ENABLE_STATS` command and `BPF_STATS_RUN_TIME` type (uapi/linux/bpf.h).
const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;

/// The kernel times every BPF program run while this lives. Taken with
/// `BPF_ENABLE_STATS`, which is reference-counted in the kernel, rather
/// than by writing `kernel.bpf_stats_enabled`: another engineer toggling
/// that sysctl meanwhile can then neither switch ours off nor be switched
/// off by us when we restore it.
pub struct RunTimeStats(#[allow(dead_code)] OwnedFd);

impl RunTimeStats {
    pub fn enable() -> Result<RunTimeStats> {
        let attr = BPF_STATS_RUN_TIME;
        // SAFETY: bpf(2) reads `size` bytes of `attr`, a live u32; enable_stats is a lone u32.
        let fd = unsafe {
            libc::syscall(libc::SYS_bpf, BPF_ENABLE_STATS, &raw const attr, size_of::<u32>() as libc::c_uint)
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME)");
        }
        let fd = i32::try_from(fd).context("bpf() returned an fd beyond i32")?;
        // SAFETY: the kernel just gave us this fd and nothing else owns it.
        Ok(RunTimeStats(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProgStat {
    pub id: u32,
    pub runs: u64,
    pub ns: u64,
}

/// The `cgroup_skb` programs process `pid` holds, with their counters.
pub fn skb_programs(pid: u32) -> Result<Vec<ProgStat>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let path = entry.with_context(|| format!("listing {dir}"))?.path();
        // An fd closed since the listing is no program of interest.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        if let Some(stat) = parse_fdinfo(&text) {
            if !found.iter().any(|p: &ProgStat| p.id == stat.id) {
                found.push(stat);
            }
        }
    }
    Ok(found)
}

/// A `cgroup_skb` program's fdinfo as a [`ProgStat`]; `None` for any other fd.
fn parse_fdinfo(text: &str) -> Option<ProgStat> {
    let field = |key: &str| -> Option<u64> {
        text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
    };
    if field("prog_type")? != u64::from(CGROUP_SKB) {
        return None;
    }
    Some(ProgStat { id: u32::try_from(field("prog_id")?).ok()?, runs: field("run_cnt")?, ns: field("run_time_ns")? })
}

/// Ids of every program attached to some cgroup at ingress or egress.
pub fn attached_skb_ids() -> Result<Vec<u32>> {
    let out = Command::new("bpftool").args(["cgroup", "tree"]).output().context("running `bpftool cgroup tree`")?;
    if !out.status.success() {
        bail!("`bpftool cgroup tree` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(parse_tree(&String::from_utf8_lossy(&out.stdout)))
}

/// Lines `ID  AttachType  AttachFlags  Name` under each cgroup path.
fn parse_tree(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let id = words.next()?.parse().ok()?;
            matches!(words.next()?, "cgroup_inet_ingress" | "cgroup_inet_egress").then_some(id)
        })
        .collect()
}

/// Runs and nanoseconds between two readings of the same programs.
pub fn delta(before: &[ProgStat], after: &[ProgStat]) -> (u64, u64) {
    after.iter().fold((0, 0), |(runs, ns), a| match before.iter().find(|b| b.id == a.id) {
        Some(b) => (runs + a.runs.saturating_sub(b.runs), ns + a.ns.saturating_sub(b.ns)),
        None => (runs + a.runs, ns + a.ns),
    })
}

#[cfg(test)]
mod tests {
    use super::{delta, parse_fdinfo, parse_tree, ProgStat};

    #[test]
    fn fdinfo_of_a_counting_program() {
        let text = "pos:\t0\nflags:\t02000002\nprog_type:\t8\nprog_jited:\t1\nprog_id:\t15404\n\
                    run_time_ns:\t22356402\nrun_cnt:\t139038\n";
        assert_eq!(parse_fdinfo(text), Some(ProgStat { id: 15404, runs: 139038, ns: 22356402 }));
        assert_eq!(parse_fdinfo(&text.replace("prog_type:\t8", "prog_type:\t26")), None);
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t17\n"), None);
    }

    #[test]
    fn tree_keeps_ingress_and_egress_only() {
        let text = "CgroupPath\nID       AttachType      AttachFlags     Name\n/sys/fs/cgroup/unified\n\
                    15404    cgroup_inet_ingress multi           nw_skb_ingress\n\
                    15405    cgroup_inet_egress multi           nw_skb_egress\n\
                    15337    cgroup_inet_sock_release multi           nw_sock_release\n";
        assert_eq!(parse_tree(text), vec![15404, 15405]);
    }

    #[test]
    fn delta_counts_new_programs_whole() {
        let before = [ProgStat { id: 1, runs: 10, ns: 100 }];
        let after = [ProgStat { id: 1, runs: 15, ns: 160 }, ProgStat { id: 2, runs: 3, ns: 30 }];
        assert_eq!(delta(&before, &after), (8, 90));
    }
}
