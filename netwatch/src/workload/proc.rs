//! `/proc/PID/cgroup`: a process's cgroup v2 path, and its v1 paths for
//! hybrid hosts.
//!
//! On a hybrid host (v1 controllers, v2 mounted at
//! /sys/fs/cgroup/unified) a container runtime using the cgroupfs driver
//! may place its containers in the v1 hierarchies only (runc also creates
//! the v2 cgroup, `/libpod_parent/libpod-ID` for podman; a runtime that
//! does not leaves the process in the v2 cgroup it was started from, often
//! `/`). Then the v2 path says nothing about the container, and the v1
//! paths (the `name=systemd` line, or a controller's) are what name it.
//! That needs the process alive: one gone before its event is read is
//! known by its v2 cgroup id alone.

use super::path::{self, Parsed};

/// The lines of one `/proc/PID/cgroup`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    /// The `0::` line's path; `None` on a v1-only host.
    pub v2: Option<String>,
    /// The v1 hierarchies' paths, `name=systemd` first.
    pub v1: Vec<String>,
}

impl ProcCgroup {
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else { continue };
            if id == "0" && controllers.is_empty() {
                out.v2 = Some(path.to_owned());
            } else if controllers == "name=systemd" {
                out.v1.insert(0, path.to_owned());
            } else {
                out.v1.push(path.to_owned());
            }
        }
        out
    }

    /// What the paths say: the v2 path's unit and container, each
    /// completed from the v1 paths where the v2 path lacks it.
    pub fn derive(&self) -> Parsed<'_> {
        let mut p = self.v2.as_deref().map(path::parse).unwrap_or_default();
        for v1 in &self.v1 {
            let q = path::parse(v1);
            if p.container.is_none() && q.container.is_some() {
                (p.container, p.pod_uid) = (q.container, q.pod_uid.or(p.pod_uid));
                // The container's unit, not the one its launcher ran in.
                p.unit = q.unit;
                continue;
            }
            p.unit = p.unit.or(q.unit);
            p.pod_uid = p.pod_uid.or(q.pod_uid);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Runtime;

    const ID: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";

    #[test]
    fn pure_v2() {
        let c = ProcCgroup::parse("0::/system.slice/nginx.service\n");
        assert_eq!(c.v2.as_deref(), Some("/system.slice/nginx.service"));
        assert_eq!(c.derive().unit, Some("nginx.service"));
    }

    /// A podman container with the cgroupfs driver on this hybrid layout:
    /// only the v1 hierarchies name it.
    #[test]
    fn hybrid_podman_cgroupfs() {
        let text = format!(
            "9:name=systemd:/libpod_parent/libpod-{ID}\n8:pids:/libpod_parent/libpod-{ID}\n\
             4:memory:/process_api/821349e0b2632cb5a3052bc40927bd88\n1:cpu:/libpod_parent/libpod-{ID}\n0::/\n"
        );
        let c = ProcCgroup::parse(&text);
        assert_eq!(c.v2.as_deref(), Some("/"));
        assert_eq!(c.v1[0], format!("/libpod_parent/libpod-{ID}"));
        let d = c.derive();
        assert_eq!(d.container, Some((Runtime::Podman, ID)));
        assert_eq!(d.unit, None);
    }

    #[test]
    fn v2_wins_over_v1() {
        let text = format!("1:name=systemd:/system.slice/ssh.service\n0::/system.slice/docker-{ID}.scope\n");
        let c = ProcCgroup::parse(&text);
        let d = c.derive();
        assert_eq!(d.container, Some((Runtime::Docker, ID)));
        assert_eq!(d.unit, Some(&*format!("docker-{ID}.scope")));
    }

    #[test]
    fn v1_only_host_and_junk() {
        let c = ProcCgroup::parse("1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n");
        let d = c.derive();
        assert_eq!(d.unit, Some("session-3.scope"));
        assert_eq!(ProcCgroup::parse("garbage\n\n"), ProcCgroup::default());
    }
}
