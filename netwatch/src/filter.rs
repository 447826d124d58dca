//! Event filters (`--pid`, `--port`, `-4`, `-6`, `--netns`, `--unit`,
//! `--container`, `--cgroup`), applied in the agent: the kernel must still
//! see every event to keep its owner records right.

use crate::{event::Event, workload::Workload};

#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Owner PIDs to keep; empty keeps all.
    pub pids: Vec<u32>,
    /// Ports to keep, matched at either end; empty keeps all.
    pub ports: Vec<u16>,
    /// Keep only IPv4 (`Some(true)`) or only IPv6 (`Some(false)`) traffic.
    pub ipv4: Option<bool>,
    /// Network namespaces (inodes) to keep; empty keeps all.
    pub netns: Vec<u32>,
    /// Where the owner runs (`crate::workload`); empty keeps all.
    pub workload: WorkloadFilter,
}

/// `--unit` (exact), `--container` (a name or an id prefix), `--cgroup` (a
/// path prefix, whole components): each keeps an owner matching any of its
/// values; an owner of unknown workload matches none.
#[derive(Clone, Debug, Default)]
pub struct WorkloadFilter {
    pub units: Vec<String>,
    pub containers: Vec<String>,
    pub cgroups: Vec<String>,
}

impl WorkloadFilter {
    /// Whether any of them is set: the workload must then be resolved.
    pub fn is_set(&self) -> bool {
        !(self.units.is_empty() && self.containers.is_empty() && self.cgroups.is_empty())
    }

    pub fn matches(&self, w: Option<&Workload>) -> bool {
        if !self.is_set() {
            return true;
        }
        let Some(w) = w else { return false };
        (self.units.is_empty() || w.unit.as_deref().is_some_and(|u| self.units.iter().any(|x| x == u)))
            && (self.containers.is_empty() || self.containers.iter().any(|c| w.container_is(c)))
            && (self.cgroups.is_empty() || self.cgroups.iter().any(|p| under(&w.cgroup, p)))
    }
}

/// Whether cgroup `path` is `prefix` or below it (`/a/b` is under `/a`,
/// `/ab` is not); the leading `/` is optional.
fn under(path: &str, prefix: &str) -> bool {
    let (path, prefix) = (path.trim_matches('/'), prefix.trim_matches('/'));
    prefix.is_empty() || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        (self.pids.is_empty() || self.pids.contains(&e.pid))
            && (self.ports.is_empty() || self.ports.contains(&e.local.port()) || self.ports.contains(&e.remote.port()))
            && self.ipv4.is_none_or(|v4| e.is_ipv4_traffic() == v4)
            && (self.netns.is_empty() || self.netns.contains(&e.netns))
            && self.workload.matches(e.workload.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use netwatch_common::{EventKind, OwnerSource};

    use super::*;
    use crate::{
        event::Comm,
        socket::{Family, TcpState},
    };

    fn ev(pid: u32, local: &str, remote: &str) -> Event {
        Event {
            kind: EventKind::State,
            ts_ns: 0,
            start_ns: None,
            cookie: 0,
            inode: 0,
            family: if local.starts_with('[') { Family::V6 } else { Family::V4 },
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            pid,
            comm: Comm::default(),
            uid: 0,
            netns: 0,
            old_state: TcpState::Established,
            new_state: TcpState::Established,
            owner: OwnerSource::Unknown,
            traffic: netwatch_common::Traffic::ZERO,
            thread: None,
            accepted: None,
            cgroup: 0,
            workload: None,
        }
    }

    #[test]
    fn each_filter_narrows() {
        let a = ev(1, "127.0.0.1:5000", "127.0.0.1:80");
        let b = ev(2, "[::1]:6000", "[::1]:443");
        let mapped = ev(3, "[::ffff:127.0.0.1]:7000", "[::ffff:127.0.0.1]:22");
        let all = Filter::default();
        assert!([&a, &b, &mapped].iter().all(|e| all.matches(e)));
        let pid = Filter { pids: vec![2], ..Default::default() };
        assert!(!pid.matches(&a) && pid.matches(&b));
        let port = Filter { ports: vec![80, 6000], ..Default::default() };
        assert!(port.matches(&a) && port.matches(&b) && !port.matches(&mapped));
        let v4 = Filter { ipv4: Some(true), ..Default::default() };
        assert!(v4.matches(&a) && !v4.matches(&b) && v4.matches(&mapped));
        let v6 = Filter { ipv4: Some(false), ..Default::default() };
        assert!(!v6.matches(&a) && v6.matches(&b) && !v6.matches(&mapped));
        let in_ns = Event { netns: 4_026_532_000, ..ev(4, "127.0.0.1:5000", "127.0.0.1:80") };
        let ns = Filter { netns: vec![4_026_532_000], ..Default::default() };
        assert!(ns.matches(&in_ns) && !ns.matches(&a) && !ns.matches(&b));
    }

    #[test]
    fn workload_filters() {
        use std::sync::Arc;

        use crate::workload::{Container, Info, Runtime};
        let id = "ab".repeat(32);
        let web = Workload(Arc::new(Info {
            cgroup: format!("/system.slice/docker-{id}.scope").into(),
            unit: Some(format!("docker-{id}.scope").into()),
            container: Some(Container { runtime: Runtime::Docker, id: id.as_str().into(), name: Some("web".into()) }),
            pod_uid: None,
        }));
        let ssh = Workload(Arc::new(Info {
            cgroup: "/system.slice/ssh.service".into(),
            unit: Some("ssh.service".into()),
            container: None,
            pod_uid: None,
        }));
        let f = |units: &[&str], containers: &[&str], cgroups: &[&str]| WorkloadFilter {
            units: units.iter().map(|s| s.to_string()).collect(),
            containers: containers.iter().map(|s| s.to_string()).collect(),
            cgroups: cgroups.iter().map(|s| s.to_string()).collect(),
        };
        assert!(f(&[], &[], &[]).matches(None));
        assert!(!f(&["ssh.service"], &[], &[]).matches(None));
        assert!(f(&["ssh.service"], &[], &[]).matches(Some(&ssh)));
        assert!(!f(&["ssh"], &[], &[]).matches(Some(&ssh)));
        assert!(f(&[], &["web"], &[]).matches(Some(&web)) && f(&[], &["abab"], &[]).matches(Some(&web)));
        assert!(!f(&[], &["web"], &[]).matches(Some(&ssh)) && !f(&[], &["we"], &[]).matches(Some(&web)));
        assert!(f(&[], &[], &["/system.slice"]).matches(Some(&ssh)));
        assert!(f(&[], &[], &["system.slice/ssh.service/"]).matches(Some(&ssh)));
        assert!(!f(&[], &[], &["/system.sl"]).matches(Some(&ssh)));
        assert!(f(&[], &[], &["/"]).matches(Some(&ssh)));
        // Each flag narrows: both must hold.
        assert!(!f(&["ssh.service"], &["web"], &[]).matches(Some(&web)));
        let e = Event { workload: Some(ssh), ..ev(1, "127.0.0.1:5000", "127.0.0.1:80") };
        let by_unit = Filter { workload: f(&["ssh.service"], &[], &[]), ..Default::default() };
        assert!(by_unit.matches(&e) && !by_unit.matches(&ev(1, "127.0.0.1:5000", "127.0.0.1:80")));
    }
}
