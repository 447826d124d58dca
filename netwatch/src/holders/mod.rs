//! Keeping every socket's holders current (docs/design.md#holders).
//!
//! A socket outlives the process that made it: a daemon listens, forks and
//! the parent exits; a pre-fork server shares one listener among its
//! workers; `systemd-socket-activate` execs the server in the process that
//! opened the listener; a descriptor is sent over a unix socket
//! (SCM_RIGHTS) and the sender closes its copy. The kernel's socket events
//! only name the process of a socket's birth and of `accept()`, so without
//! help the row would name a dead process or a stale program name forever.
//!
//! The kernel reports process lifecycle on a ring of its own
//! (`netwatch-ebpf/src/process.rs`: exec, exit of a group leader, fork of a
//! new process). Here:
//!
//! - **exec**: every row that process holds gets the new program name at
//!   once (the same pid still holds it);
//! - **exit** of a holder, **fork** of a holder: the holders of every socket
//!   are found again (a *walk*), at most once per [`MIN_WALK_INTERVAL`];
//! - **descriptor passing** has no hook that runs in process context and
//!   is not on a hot path, so a walk also runs every [`PERIODIC_WALK`]
//!   while the table has sockets with files.
//!
//! A walk is the socket-file iterator the seed uses (`probe::iter`: the
//! kernel walks every task's descriptor table in one pass, no /proc
//! reads). Without it (Linux 5.10: no `bpf_sock_from_file`; or not in the
//! initial PID namespace) it is one `/proc/*/fd` scan: at most once per
//! [`PROC_SCAN_WANTED`] when an event asks for it, and the periodic one
//! at most once per [`PROC_SCAN_INTERVAL`].
//!
//! Holders are listed in ascending pid order, as the walk finds them, so
//! the first one is the one `netstat -p` prints (it keeps the first
//! process it meets in /proc, which lists pids in ascending order).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use netwatch_common::{OwnerSource, ProcEvent, ProcKind};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::{
    event::{clock::monotonic_ns, listeners::ListenerOwners},
    socket::{Comm, Owner, Owners},
    table::{Row, Table},
};

/// Walks at most this often, however many processes come and go.
pub const MIN_WALK_INTERVAL: Duration = Duration::from_millis(250);
/// A walk this often regardless, for descriptors passed between processes
/// (longer where walks are slow: see [`WALK_SHARE`]).
pub const PERIODIC_WALK: Duration = Duration::from_secs(1);
/// The periodic walk takes at most 1/50 of the time: a walk costs about
/// 1.2 µs a socket with the iterator (12 ms for 10,000 sockets on a loaded
/// 2-CPU machine), so up to 16,000 sockets it runs every second, and with
/// 100,000 about every 6 s.
const WALK_SHARE: u32 = 50;
/// Without the iterator, the periodic walk (for passed descriptors) is a
/// full `/proc` scan at most this often: a scan reads every process's
/// descriptor table through /proc, several times the iterator's cost.
pub const PROC_SCAN_INTERVAL: Duration = Duration::from_secs(3);
/// Without the iterator, a scan an exit or fork asked for at most this
/// often: the bound for naming a daemon's child.
pub const PROC_SCAN_WANTED: Duration = Duration::from_millis(750);
/// How long a fork is remembered, for a holder whose socket's first event
/// is applied only after the fork was (the two rings are drained apart).
const FORK_MEMORY_NS: u64 = 2_000_000_000;

/// Socket inode -> its holders, ascending by pid.
pub type Walk = FxHashMap<u64, Owners>;

#[derive(Debug, Default)]
pub struct Holders {
    /// A walk is wanted: a holder exited or forked.
    wanted: bool,
    /// When the last walk started (`Instant` for pacing, monotonic ns to
    /// compare with the kernel's timestamps).
    last_walk: Option<(Instant, u64)>,
    /// Holders that ended since the last walk: a row the walk does not
    /// cover (no file: a connection not accepted yet) loses them then.
    exited: FxHashSet<u32>,
    /// Processes that forked lately: parent tgid -> kernel time of its
    /// latest fork.
    forked: FxHashMap<u32, u64>,
    /// Whether the socket-file iterator can be used (decided once).
    iterator: Option<bool>,
    /// Walks done, and how long the last one took (for `--stats`-like
    /// reporting and the tests).
    pub walks: u64,
    pub last_walk_cost: Duration,
}

impl Holders {
    /// Applies a batch of lifecycle records to the table's rows: new
    /// program names at once, and a walk asked for when a holder ended or
    /// forked.
    pub fn on_procs(&mut self, table: &mut Table, listeners: &mut ListenerOwners, procs: &[ProcEvent]) {
        let mut execs: FxHashMap<u32, Comm> = FxHashMap::default();
        let mut exits: FxHashSet<u32> = FxHashSet::default();
        for p in procs {
            match ProcKind::from_u32(p.kind) {
                Some(ProcKind::Exec) => {
                    execs.insert(p.tgid, Comm(p.comm.0));
                    // A pid that exec'd again is not the one that exited.
                    exits.remove(&p.tgid);
                }
                Some(ProcKind::Exit) => {
                    exits.insert(p.tgid);
                    execs.remove(&p.tgid);
                    self.forked.remove(&p.tgid);
                }
                Some(ProcKind::Fork) => {
                    self.forked.insert(p.parent, p.ts_ns);
                }
                None => {}
            }
        }
        let now = monotonic_ns();
        self.forked.retain(|_, ts| now.saturating_sub(*ts) < FORK_MEMORY_NS);
        let walked_ns = self.last_walk.map_or(0, |(_, ns)| ns);
        let forked = &self.forked;
        let fresh_fork = |pid: u32| forked.get(&pid).is_some_and(|&ts| ts >= walked_ns);
        if execs.is_empty() && exits.is_empty() && forked.is_empty() {
            return;
        }
        let mut want = false;
        for row in table.rows_mut() {
            want |= update_row(row, &execs, &exits, &fresh_fork, listeners);
        }
        self.wanted |= want;
        if want {
            self.exited.extend(exits);
        }
    }

    /// Whether a walk is due now.
    pub fn due(&mut self, table: &Table) -> bool {
        let since = self.last_walk.map(|(at, _)| at.elapsed());
        // Walks asked for by events are paced too, to a tenth of the time
        // at most (a pre-fork server recycling workers asks all the time).
        if since.is_some_and(|s| s < MIN_WALK_INTERVAL.max(self.last_walk_cost * 10)) {
            return false;
        }
        let iterator = *self.iterator.get_or_insert_with(crate::seed::iterator_usable);
        if self.wanted {
            // A holder that exits or forks is named within a second either
            // way; a /proc scan is not repeated faster than that.
            return iterator || since.is_none_or(|s| s >= PROC_SCAN_WANTED);
        }
        let least = if iterator { PERIODIC_WALK } else { PROC_SCAN_INTERVAL };
        let period = least.max(self.last_walk_cost * WALK_SHARE);
        if since.is_some_and(|s| s < period) {
            return false;
        }
        if table.rows().any(|r| r.inode != 0) {
            return true;
        }
        // Nothing a walk could change: look again a period from now, not
        // on every step (this is called once per batch of events).
        self.last_walk = Some((Instant::now(), self.last_walk.map_or(0, |(_, ns)| ns)));
        false
    }

    /// Walks now if due (off the async runtime) and applies what it found.
    pub async fn maintain(&mut self, table: &mut Table, listeners: &mut ListenerOwners) -> Option<String> {
        if !self.due(table) {
            return None;
        }
        let iterator = self.iterator.unwrap_or(false);
        let started = (Instant::now(), monotonic_ns());
        self.last_walk = Some(started);
        self.wanted = false;
        let walk = match tokio::task::spawn_blocking(move || walk(iterator)).await.map_err(anyhow::Error::from) {
            Ok(Ok(w)) => w,
            // A kernel that refuses the iterator (5.10: no
            // `bpf_iter_task_file` helpers it uses) refuses it every time:
            // scan /proc from now on, and say so once, in one line.
            Ok(Err(e)) if iterator => {
                self.iterator = Some(false);
                self.wanted = true;
                let why = crate::probe::compat::refusal_line(&format!("{e:#}"));
                return Some(format!("socket-file iterator unavailable, holders come from /proc/*/fd scans: {why}"));
            }
            Ok(Err(e)) | Err(e) => return Some(format!("finding the processes that hold each socket: {e:#}")),
        };
        self.walks += 1;
        self.last_walk_cost = started.0.elapsed();
        apply_walk(table, listeners, &walk, &std::mem::take(&mut self.exited));
        None
    }
}

/// One row against a batch of lifecycle records; returns whether a walk is
/// needed for it.
fn update_row(
    row: &mut Row,
    execs: &FxHashMap<u32, Comm>,
    exits: &FxHashSet<u32>,
    fresh_fork: &impl Fn(u32) -> bool,
    listeners: &mut ListenerOwners,
) -> bool {
    let mut want = false;
    for o in &mut row.owners {
        if let Some(&comm) = execs.get(&o.pid) {
            o.comm = comm;
            if let Some(cookie) = row.cookie {
                listeners.reown(cookie, o.pid, comm);
            }
        }
        want |= exits.contains(&o.pid) || fresh_fork(o.pid);
    }
    let survives = row.owners.iter().any(|o| !exits.contains(&o.pid));
    if survives && row.owners.iter().any(|o| exits.contains(&o.pid)) {
        // Others still hold it: the dead ones go now. Where none is left
        // (a sole holder, or all exited together) they stay until the walk
        // names a successor or, finding none, keeps the closer for the
        // socket's last events (`Table::departed`): the row is never
        // ownerless meanwhile.
        row.owners.retain(|o| !exits.contains(&o.pid));
        if let (Some(first), Some(cookie)) = (row.owners.first(), row.cookie) {
            listeners.reown(cookie, first.pid, first.comm);
        }
    }
    want
}

/// Gives every row the walk found its holders. Rows it did not find (no
/// file yet, such as a connection not accepted yet, or none any more) keep
/// theirs, less those that ended: nobody holds such a socket, as netstat
/// shows it. A connection not accepted yet that was lent its listener's
/// holder is lent the listener's holder now instead: one that arrived
/// between a daemon's exit and the walk was lent the parent, and its
/// listener's new holder (the child) is known only once the walk is applied.
fn apply_walk(table: &mut Table, listeners: &mut ListenerOwners, walk: &Walk, exited: &FxHashSet<u32>) {
    let mut lent = false;
    let mut departed = Vec::new();
    for row in table.rows_mut() {
        match walk.get(&row.inode).filter(|_| row.inode != 0) {
            Some(owners) if *owners != row.owners => {
                row.owners = owners.clone();
                if let (Some(first), Some(cookie)) = (owners.first(), row.cookie) {
                    listeners.reown(cookie, first.pid, first.comm);
                }
            }
            Some(_) => {}
            None if row.inode == 0 && row.owner_source == OwnerSource::Listener => lent = true,
            None if !exited.is_empty() => {
                let last = row.owners.first().copied();
                row.owners.retain(|o| !exited.contains(&o.pid));
                if let (true, Some(last), Some(cookie)) = (row.owners.is_empty(), last, row.cookie) {
                    departed.push((cookie, last));
                }
            }
            None => {}
        }
    }
    for (cookie, owner) in departed {
        table.departed(cookie, owner);
    }
    if !lent {
        return;
    }
    // After the loop above, which told `listeners` of their new holders.
    for row in table.rows_mut().filter(|r| r.inode == 0 && r.owner_source == OwnerSource::Listener) {
        match listeners.owner_of_child(row.netns, row.family, row.local) {
            Some((pid, comm)) => row.owners = smallvec::smallvec![Owner { pid, comm }],
            None => row.owners.retain(|o| !exited.contains(&o.pid)),
        }
    }
}

/// Every socket's holders now: the kernel's socket-file iterator, or one
/// `/proc/*/fd` scan.
pub fn walk(iterator: bool) -> Result<Walk> {
    let mut pairs: Vec<(u64, u32, Comm)> = if iterator {
        crate::probe::iter::socket_fds()
            .context("walking descriptor tables with the socket-file iterator")?
            .into_iter()
            .map(|f| (f.inode, f.tgid, Comm(f.comm.0)))
            .collect()
    } else {
        let scan = crate::seed::scan_owners(Path::new("/proc"), 2).context("scanning /proc/*/fd")?;
        let owners = scan.owners.into_iter().flat_map(|(inode, ps)| ps.into_iter().map(move |p| (inode, p)));
        owners.map(|(inode, p)| (inode, p.pid, Comm::new(&p.comm))).collect()
    };
    Ok(group(&mut pairs))
}

/// (inode, pid, name) triples, one per descriptor, into holders per inode:
/// each process once, ascending by pid.
fn group(pairs: &mut [(u64, u32, Comm)]) -> Walk {
    pairs.sort_unstable_by_key(|&(inode, pid, _)| (inode, pid));
    let mut walk = Walk::default();
    for &(inode, pid, comm) in pairs.iter() {
        let owners = walk.entry(inode).or_default();
        if owners.last().is_none_or(|o: &Owner| o.pid != pid) {
            owners.push(Owner { pid, comm });
        }
    }
    walk
}

#[cfg(test)]
mod tests;
