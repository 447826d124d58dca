//! The DNS answer program (the eBPF crate's `dns`): a `cgroup_skb` ingress
//! program on the cgroup v2 root, attached beside the traffic counters
//! whether or not those count packets. Optional: every event flows without
//! it, only without names (`rhost`).

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{links::CgroupAttachMode, CgroupSkb, CgroupSkbAttachType},
    Ebpf,
};
use netwatch_common::names;

use super::program;

/// Environment variable that leaves DNS capture out (`1`).
pub const DISABLE_ENV: &str = "NETWATCH_NO_DNS";

/// Whether the user asked for no DNS capture.
pub fn disabled_by_env() -> bool {
    std::env::var_os(DISABLE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// What the program fills.
pub struct Maps {
    /// The answers.
    pub ring: RingBuf<MapData>,
    /// Answers that found the ring full, per CPU (one slot).
    pub lost: PerCpuArray<MapData, u64>,
}

impl Maps {
    /// Answers lost since the program was loaded.
    pub fn lost(&self) -> Result<u64> {
        let per_cpu = self.lost.get(&0, 0).context("reading the DNS loss counter")?;
        Ok(per_cpu.iter().sum())
    }
}

/// Loads and attaches the program; returns the maps it fills.
pub(super) fn attach(ebpf: &mut Ebpf) -> Result<Maps> {
    let (path, cgroup) = super::traffic::open_cgroup_root()?;
    let prog = names::PROG_DNS_INGRESS;
    let p: &mut CgroupSkb = program(ebpf, prog)?.try_into()?;
    p.load().with_context(|| format!("loading {prog}"))?;
    // Flags 0, as for the traffic programs: runs alongside any other.
    p.attach(&cgroup, CgroupSkbAttachType::Ingress, CgroupAttachMode::Single)
        .with_context(|| format!("attaching {prog} to the cgroup v2 root {}", path.display()))?;
    let mut take = |name: &str| ebpf.take_map(name).ok_or_else(|| anyhow!("map {name} missing"));
    let ring = RingBuf::try_from(take(names::MAP_DNS_EVENTS)?).context("opening the DNS answer ring buffer")?;
    let lost = PerCpuArray::try_from(take(names::MAP_DNS_LOST)?).context("opening the DNS loss counter")?;
    Ok(Maps { ring, lost })
}
