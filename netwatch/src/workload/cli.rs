//! The workload flags every socket view shares (events, snapshot, the live
//! view): a column switch and the three filters.

use clap::Args;

use crate::filter::WorkloadFilter;

#[derive(Clone, Debug, Default, Args)]
pub struct WorkloadArgs {
    /// Show where each owner runs: a last column with its container
    /// (name, else short id), else its systemd unit, else its cgroup path
    #[arg(short = 'W', long = "workload")]
    pub show: bool,
    /// Only sockets whose owner runs in this systemd unit or scope, e.g.
    /// nginx.service or session-3.scope (repeatable)
    #[arg(long = "unit", value_name = "UNIT")]
    pub units: Vec<String>,
    /// Only sockets whose owner runs in this container: its name, or a
    /// prefix of its id (repeatable)
    #[arg(long = "container", value_name = "NAME|ID")]
    pub containers: Vec<String>,
    /// Only sockets whose owner's cgroup v2 path is this one or below it,
    /// e.g. /system.slice (repeatable)
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,
}

impl WorkloadArgs {
    pub fn filter(&self) -> WorkloadFilter {
        WorkloadFilter { units: self.units.clone(), containers: self.containers.clone(), cgroups: self.cgroups.clone() }
    }
}
