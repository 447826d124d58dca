//! Where an owner runs: its cgroup, the systemd unit and the container
//! (runtime, id, name) and Kubernetes pod that cgroup belongs to.
//!
//! The kernel tags each event written in the owner's own system call with
//! the owner's cgroup v2 id (`SockEvent::cgroup`); the agent lends owners
//! to the other events, and their workload follows the owner's PID here.
//! A PID's workload comes from `/proc/PID/cgroup` (which also has the v1
//! paths a hybrid host may need, see [`proc`]); for a process already gone
//! the id is mapped to a path by walking the cgroup2 mount. Everything is
//! cached: a workload is resolved once per process, not per event.

pub mod cli;
pub mod names;
pub mod path;
pub mod proc;

use std::{
    fmt,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;

/// A container runtime, as the cgroup path names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    Crio,
    Lxc,
    /// A Kubernetes container of the cgroupfs driver, whose path does not
    /// say which CRI runtime made it.
    Cri,
}

impl Runtime {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
            Self::Containerd => "containerd",
            Self::Crio => "cri-o",
            Self::Lxc => "lxc",
            Self::Cri => "cri",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Container {
    pub runtime: Runtime,
    pub id: Box<str>,
    /// From the runtime's state on disk, where it keeps one (see [`names`]).
    pub name: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Info {
    /// The cgroup v2 path, from the cgroup2 mount's root (`/` included).
    pub cgroup: Box<str>,
    pub unit: Option<Box<str>>,
    pub container: Option<Container>,
    pub pod_uid: Option<Box<str>>,
}

/// One owner's workload: shared, so an event carries it for a pointer copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload(pub Arc<Info>);

impl std::ops::Deref for Workload {
    type Target = Info;
    fn deref(&self) -> &Info {
        &self.0
    }
}

impl Workload {
    /// The short label of the text column and metrics: the container's
    /// name (or the first 12 digits of its id, as docker shows it), else
    /// the unit, else the cgroup path.
    pub fn label(&self) -> &str {
        match &self.container {
            Some(Container { name: Some(n), .. }) => n,
            Some(c) => &c.id[..c.id.len().min(12)],
            None => self.unit.as_deref().unwrap_or(&self.cgroup),
        }
    }

    /// Whether `--container` names it: a name, or a prefix of its id.
    pub fn container_is(&self, want: &str) -> bool {
        self.container.as_ref().is_some_and(|c| c.name.as_deref() == Some(want) || c.id.starts_with(want))
    }
}

#[cfg(test)]
impl Workload {
    /// A test workload; its container as `(runtime, id, name)`.
    pub(crate) fn fixture(
        cgroup: &str,
        unit: Option<&str>,
        container: Option<(Runtime, &str, Option<&str>)>,
        pod_uid: Option<&str>,
    ) -> Self {
        Self(Arc::new(Info {
            cgroup: cgroup.into(),
            unit: unit.map(Into::into),
            container: container.map(|(runtime, id, name)| Container {
                runtime,
                id: id.into(),
                name: name.map(Into::into),
            }),
            pod_uid: pod_uid.map(Into::into),
        }))
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How long a cgroup id missing from the last walk waits for the next.
const WALK_EVERY: Duration = Duration::from_secs(1);
/// PIDs remembered before the cache starts over (churn makes many).
const MAX_PIDS: usize = 1 << 16;

/// Cgroup id or PID -> [`Workload`], cached.
#[derive(Debug)]
pub struct Resolver {
    /// The cgroup2 mount; `None` on a v1-only host.
    mount: Option<PathBuf>,
    proc: PathBuf,
    /// By PID, with the cgroup id it was resolved for.
    by_pid: FxHashMap<u32, (u64, Option<Workload>)>,
    by_id: FxHashMap<u64, Option<Workload>>,
    /// Cgroup id -> v2 path, from the last walk of the mount.
    paths: FxHashMap<u64, String>,
    walked: Option<Instant>,
    /// Every distinct workload, so that equal ones share one allocation.
    interned: FxHashMap<Info, Workload>,
    names: names::Names,
}

impl Default for Resolver {
    fn default() -> Self {
        let mount = std::fs::read_to_string("/proc/self/mountinfo").ok().and_then(|m| cgroup2_mount(&m));
        Self::at(mount, "/proc".into(), names::Names::default())
    }
}

impl Resolver {
    pub fn at(mount: Option<PathBuf>, proc: PathBuf, names: names::Names) -> Self {
        Self {
            mount,
            proc,
            by_pid: FxHashMap::default(),
            by_id: FxHashMap::default(),
            paths: FxHashMap::default(),
            walked: None,
            interned: FxHashMap::default(),
            names,
        }
    }

    /// The workload of process `pid` (0: unknown) whose cgroup id the
    /// kernel said was `cgroup` (0: not said).
    pub fn of(&mut self, pid: u32, cgroup: u64) -> Option<Workload> {
        if pid != 0 {
            if let Some((id, w)) = self.by_pid.get(&pid) {
                if cgroup == 0 || *id == cgroup {
                    return w.clone();
                }
            }
            if let Some((id, w)) = self.read_proc(pid, cgroup) {
                self.remember(pid, id, w.clone());
                return w;
            }
        }
        if cgroup == 0 {
            return None;
        }
        let w = self.of_id(cgroup);
        // What the kernel said last is what the PID's lent events get.
        if pid != 0 {
            self.remember(pid, cgroup, w.clone());
        }
        w
    }

    fn remember(&mut self, pid: u32, cgroup: u64, w: Option<Workload>) {
        if self.by_pid.len() >= MAX_PIDS {
            self.by_pid.clear();
        }
        self.by_pid.insert(pid, (cgroup, w));
    }

    /// The cgroup id a workload was resolved for, when known.
    pub fn cgroup_of(&self, pid: u32) -> Option<u64> {
        self.by_pid.get(&pid).map(|(id, _)| *id).filter(|&id| id != 0)
    }

    /// From `/proc/PID/cgroup`: `None` when the process is gone, or is not
    /// in cgroup `cgroup` (it moved since, or its PID is another's now).
    fn read_proc(&mut self, pid: u32, cgroup: u64) -> Option<(u64, Option<Workload>)> {
        let text = std::fs::read_to_string(self.proc.join(pid.to_string()).join("cgroup")).ok()?;
        let pc = proc::ProcCgroup::parse(&text);
        let id = pc.v2.as_deref().and_then(|p| self.id_of_path(p)).unwrap_or(0);
        if cgroup != 0 && id != cgroup {
            return None;
        }
        Some((id, self.make(&pc)))
    }

    fn id_of_path(&self, path: &str) -> Option<u64> {
        let dir = self.mount.as_ref()?.join(path.trim_start_matches('/'));
        std::fs::metadata(dir).ok().map(|m| m.ino())
    }

    fn of_id(&mut self, cgroup: u64) -> Option<Workload> {
        if let Some(w) = self.by_id.get(&cgroup) {
            return w.clone();
        }
        if !self.paths.contains_key(&cgroup) && self.walked.is_none_or(|t| t.elapsed() >= WALK_EVERY) {
            self.walked = Some(Instant::now());
            if let Some(mount) = &self.mount {
                self.paths.clear();
                walk(mount, mount, &mut self.paths);
            }
        }
        // Not found: the cgroup is gone, or newer than the last walk. Not
        // remembered, so a later walk finds a new one; the walks themselves
        // are at most one per WALK_EVERY.
        let path = self.paths.get(&cgroup)?.clone();
        let w = self.make(&proc::ProcCgroup { v2: Some(path), v1: Vec::new() });
        self.by_id.insert(cgroup, w.clone());
        w
    }

    fn make(&mut self, pc: &proc::ProcCgroup) -> Option<Workload> {
        let cgroup = pc.v2.as_deref().or(pc.v1.first().map(String::as_str))?;
        let d = pc.derive();
        let container = d.container.map(|(runtime, id)| Container {
            runtime,
            id: id.into(),
            name: self.names.name(runtime, id).map(Into::into),
        });
        let info =
            Info { cgroup: cgroup.into(), unit: d.unit.map(Into::into), container, pod_uid: d.pod_uid.map(Into::into) };
        Some(self.interned.entry(info.clone()).or_insert_with(|| Workload(Arc::new(info))).clone())
    }
}

/// Every cgroup directory under `dir`, by inode (the cgroup id).
fn walk(root: &Path, dir: &Path, out: &mut FxHashMap<u64, String>) {
    if let Ok(m) = std::fs::metadata(dir) {
        let rel = dir.strip_prefix(root).map(|p| format!("/{}", p.display())).unwrap_or_default();
        out.insert(m.ino(), rel);
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &e.path(), out);
        }
    }
}

/// The cgroup2 mount point in a `/proc/self/mountinfo`: /sys/fs/cgroup on
/// a pure v2 host, /sys/fs/cgroup/unified on a hybrid one.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(point))
    })
}

#[cfg(test)]
mod tests;
