//! The connection table: every current socket, kept true by events.
//!
//! Rows are keyed by socket cookie, the one identity that the live events
//! and sock_diag seeding share and that the kernel never reuses (ports and
//! socket addresses are reused: docs/design.md#partial-tuples, #socket-reuse). Rows seeded
//! from /proc text have no cookie; they get a local id and are matched to
//! events by their tuple the first time one arrives.
//!
//! What the tracepoint never reports is filled in here (docs/design.md#time-wait, #syn-recv):
//! an active close that ends in TIME_WAIT becomes a TIME_WAIT row with no
//! owner, as netstat shows it, expiring when the kernel's would; the
//! reconciliation pass ([`Table::reconcile_minisocks`]) replaces TIME_WAIT and
//! request-socket (SYN_RECV) rows with what sock_diag reports.

pub mod counters;
mod names;
pub mod row;
mod time_wait;
pub mod traffic;

use std::{cell::RefCell, collections::VecDeque, net::SocketAddr};

use netwatch_common::{EventKind, OwnerSource};
use rustc_hash::{FxHashMap, FxHashSet};

pub use counters::{StateCounts, Totals};
pub use row::{Closed, Ending, Row};
pub use traffic::{ProcessTraffic, RowTraffic};

use crate::{
    event::{Comm, Event},
    seed::{self, SeedSocket},
    socket::{merge_addr, Owner, Owners, Proto, TcpState},
    workload::{Resolver, Workload},
};

/// The kernel's TIME_WAIT length (`TCP_TIMEWAIT_LEN`, 60 s).
pub const TIME_WAIT_NS: u64 = 60_000_000_000;

/// Local ids for cookie-less rows live above every real cookie.
const LOCAL_ID_BASE: u64 = 1 << 63;

#[derive(Debug)]
pub struct Table {
    rows: FxHashMap<u64, Row>,
    /// (netns, local, remote) -> key, only for rows without a cookie.
    uncookied: FxHashMap<(u32, SocketAddr, SocketAddr), u64>,
    /// Hash of (netns, local, remote) -> key of TIME_WAIT rows; may name
    /// rows gone since (see [`time_wait`]).
    time_wait: FxHashMap<u64, u64>,
    next_local_id: u64,
    history: VecDeque<Closed>,
    history_cap: usize,
    names: names::ProcNames,
    pub totals: Totals,
    /// Keep a closed socket's row until its `destroy` event rather than
    /// drop it at the close: only when destroy events are shown (`events
    /// --teardown`; the kernel sends few otherwise).
    pub until_destroy: bool,
    /// Make a TIME_WAIT row of each active close, as netstat shows it. Only
    /// for a table that is shown and re-read from sock_diag (which bounds
    /// them to the kernel's); `events` shows no rows, and at churn rates a
    /// minute of them would be millions.
    pub time_wait_rows: bool,
    /// Traffic of closed sockets per process name, for per-process totals
    /// that do not shrink when a connection ends.
    closed_traffic: FxHashMap<String, netwatch_common::Traffic>,
    /// Where owners run: the one resolver every consumer asks (events,
    /// rows, metrics labels, export), so all name the same workload for an
    /// owner and read each owner's cgroup once. A cache, so reads through
    /// `&self` fill it too; made on first use, so a table no one asks
    /// (`check`, the one the live model lends its own for) costs nothing.
    workloads: RefCell<Option<Resolver>>,
    /// Give every event its owner's workload in [`Self::complete_and_apply`]:
    /// only where an output shows or filters on it (a lookup per event).
    pub event_workloads: bool,
    /// Names of remote addresses from DNS answers (`rhost`).
    pub hosts: crate::names::Names,
    /// By cookie, the holder a live socket's row had when its last holder
    /// exited: the process that closed it, usually, whose socket finishes
    /// its FIN handshake in softirq after it is gone. Its remaining events
    /// name that process; the row itself shows no holder, as `ss` shows none.
    departed: FxHashMap<u64, Owner>,
}

impl Table {
    pub fn new(history_cap: usize) -> Self {
        Self {
            rows: FxHashMap::default(),
            uncookied: FxHashMap::default(),
            time_wait: FxHashMap::default(),
            next_local_id: LOCAL_ID_BASE,
            history: VecDeque::with_capacity(history_cap.min(4096)),
            history_cap,
            names: names::ProcNames::default(),
            totals: Totals::default(),
            until_destroy: false,
            time_wait_rows: true,
            closed_traffic: FxHashMap::default(),
            workloads: RefCell::default(),
            event_workloads: false,
            hosts: crate::names::Names::default(),
            departed: FxHashMap::default(),
        }
    }

    /// Remembers whom the row `cookie` named before its last holder exited
    /// (see [`Self::departed`]).
    pub fn departed(&mut self, cookie: u64, owner: Owner) {
        self.departed.insert(cookie, owner);
    }

    /// Where process `pid` runs (a row's owner's workload), from the
    /// model's one resolver.
    pub fn workload_of(&self, pid: u32) -> Option<Workload> {
        self.workloads.borrow_mut().get_or_insert_with(Resolver::default).of(pid, 0)
    }

    /// The name the row's namespace resolved for its remote address
    /// ([`crate::names::Names::remote_name`] for a row: `snapshot --for`,
    /// the live view).
    pub fn row_name(&self, r: &Row) -> Option<std::sync::Arc<str>> {
        if r.remote.ip().is_unspecified() {
            return None;
        }
        self.hosts.name(r.netns, r.remote.ip(), r.opened_ns.unwrap_or(r.seen_ns))
    }

    /// Where a row's first owner runs: the row's workload.
    pub fn row_workload(&self, r: &Row) -> Option<Workload> {
        r.owners.first().and_then(|o| self.workload_of(o.pid))
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// When the socket with `cookie` opened, as far as the model knows:
    /// `None` when it has no row for it, `Some(None)` when the row is
    /// older than netwatch (seeded).
    pub fn opened_ns(&self, cookie: u64) -> Option<Option<u64>> {
        self.rows.get(&cookie).map(|r| r.opened_ns)
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    /// Each network namespace with a TCP listener, with the PIDs of its
    /// listeners' owners: the ways into it.
    pub fn listener_namespaces(&self) -> std::collections::HashMap<u32, Vec<u32>> {
        self.namespaces_of(|r| r.proto == Proto::Tcp && r.state == TcpState::Listen)
    }

    /// Each network namespace with a TCP socket, with the PIDs of their
    /// owners.
    pub fn tcp_namespaces(&self) -> std::collections::HashMap<u32, Vec<u32>> {
        self.namespaces_of(|r| r.proto == Proto::Tcp)
    }

    fn namespaces_of(&self, keep: impl Fn(&Row) -> bool) -> std::collections::HashMap<u32, Vec<u32>> {
        let mut out: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
        for r in self.rows().filter(|r| keep(r)) {
            out.entry(r.netns).or_default().extend(r.owners.iter().map(|o| o.pid));
        }
        for pids in out.values_mut() {
            pids.sort_unstable();
            pids.dedup();
        }
        out
    }

    /// A row as it stands, keyed by its cookie (unit tests elsewhere).
    #[cfg(test)]
    pub fn insert_row_for_tests(&mut self, row: Row) {
        self.rows.insert(row.cookie.unwrap_or(0), row);
    }

    /// For `holders`, which keeps each row's holders current.
    pub fn rows_mut(&mut self) -> impl Iterator<Item = &mut Row> {
        self.rows.values_mut()
    }

    /// Most recent last.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Closed> {
        self.history.iter()
    }

    /// Keeps only the rows and closed connections a filter selects, for a
    /// table about to be printed once (`snapshot EXPR`): its indices are
    /// not kept in step, so no event may be applied after.
    pub fn retain_for_output(&mut self, mut row: impl FnMut(&Row) -> bool, closed: impl FnMut(&Closed) -> bool) {
        self.rows.retain(|_, r| row(r));
        self.history.retain(closed);
    }

    pub fn counts(&self) -> StateCounts {
        StateCounts::of(self.rows.values())
    }

    /// Replaces every row with what the kernel reports now (start-up, and
    /// after lost events made the table wrong). History and totals stay.
    pub fn seed(&mut self, sockets: Vec<SeedSocket>, now_ns: u64) {
        self.rows.clear();
        self.uncookied.clear();
        self.time_wait.clear();
        self.departed.clear();
        self.rows.reserve(sockets.len());
        for s in sockets {
            self.insert_seeded(s, now_ns);
        }
    }

    /// Rebuild after lost events.
    pub fn reseed(&mut self, sockets: Vec<SeedSocket>, now_ns: u64) {
        self.totals.reseeds += 1;
        self.seed(sockets, now_ns);
    }

    fn insert_seeded(&mut self, s: SeedSocket, now_ns: u64) {
        let key = match s.cookie {
            Some(c) => c,
            None => {
                let id = self.next_local_id;
                self.next_local_id += 1;
                self.uncookied.insert((s.netns, s.local, s.remote), id);
                id
            }
        };
        self.rows.insert(key, seeded_row(s, now_ns));
        self.index_time_wait(key);
    }

    /// Replaces the rows the tracepoint cannot see (TIME_WAIT and request
    /// sockets) of network namespace `netns` with a fresh sock_diag dump of
    /// exactly those states there. A socket dumped again replaces its row in
    /// place: removing and re-inserting every one of 130,000 TIME_WAIT rows
    /// once a second took 80-100 ms, all of it on the live view's task.
    pub fn reconcile_minisocks(&mut self, netns: u32, sockets: Vec<SeedSocket>, now_ns: u64) {
        let dumped: Vec<SeedSocket> =
            sockets.into_iter().filter(|s| s.proto == Proto::Tcp && is_seed_minisock(s)).collect();
        let again: FxHashSet<u64> = dumped.iter().filter_map(|s| s.cookie).collect();
        self.rows
            .retain(|key, r| r.netns != netns || !is_minisock(r) || (r.cookie == Some(*key) && again.contains(key)));
        for s in dumped {
            let Some(cookie) = s.cookie else {
                self.insert_seeded(s, now_ns);
                continue;
            };
            // A row the events already track (a full socket) wins.
            if self.rows.get(&cookie).is_some_and(|r| r.netns != netns || !is_minisock(r)) {
                continue;
            }
            self.rows.insert(cookie, seeded_row(s, now_ns));
            self.index_time_wait(cookie);
        }
        self.prune_time_wait();
    }

    /// Replaces the UDP rows of `netns` with a fresh dump, keeping the owners
    /// already known by cookie. Returns the dumped sockets whose owners are
    /// unknown (new since the last read), for the caller to look up.
    pub fn reconcile_udp(&mut self, netns: u32, sockets: Vec<SeedSocket>, now_ns: u64) -> Vec<u64> {
        let mut known: FxHashMap<u64, (Owners, u64)> = FxHashMap::default();
        let mut traffic: FxHashMap<u64, RowTraffic> = FxHashMap::default();
        self.rows.retain(|key, r| {
            let drop = r.proto == Proto::Udp && r.netns == netns;
            if drop && !r.owners.is_empty() {
                known.insert(*key, (std::mem::take(&mut r.owners), r.seen_ns));
            }
            if drop && r.traffic != RowTraffic::default() {
                traffic.insert(*key, r.traffic);
            }
            !drop
        });
        let mut unowned = Vec::new();
        for s in sockets.into_iter().filter(|s| s.proto == Proto::Udp) {
            let (cookie, inode) = (s.cookie, s.inode);
            self.insert_seeded(s, now_ns);
            let Some(cookie) = cookie else { continue };
            if let (Some(t), Some(row)) = (traffic.remove(&cookie), self.rows.get_mut(&cookie)) {
                row.traffic = t;
            }
            match (known.remove(&cookie), self.rows.get_mut(&cookie)) {
                (Some((owners, seen)), Some(row)) => (row.owners, row.seen_ns) = (owners, seen),
                (None, Some(_)) if inode != 0 => unowned.push(inode),
                _ => {}
            }
        }
        unowned
    }

    /// Gives rows found by inode their owners.
    pub fn set_owners(&mut self, owners: &mut std::collections::HashMap<u64, Vec<seed::Process>>) {
        for r in self.rows.values_mut().filter(|r| r.owners.is_empty() && r.inode != 0) {
            if let Some(ps) = owners.remove(&r.inode) {
                r.owners = distinct(ps);
            }
        }
    }

    /// Drops synthesized TIME_WAIT rows the kernel has expired by now.
    pub fn expire(&mut self, now_ns: u64) {
        self.rows.retain(|_, r| r.expires_ns.is_none_or(|t| t > now_ns));
        if !self.departed.is_empty() {
            // Rows that went without a close (a re-read found them gone).
            let rows = &self.rows;
            self.departed.retain(|cookie, _| rows.contains_key(cookie));
        }
        self.prune_time_wait();
        self.trim();
    }

    /// Gives memory back after a burst: a hash map keeps the capacity of its
    /// largest size, and a churn burst leaves up to `tcp_max_tw_buckets`
    /// TIME_WAIT rows that expire a minute later. Shrinks once the rows fill
    /// under a quarter of it, to twice the rows, so a steady table does not
    /// shrink and regrow.
    pub fn trim(&mut self) {
        shrink(&mut self.rows);
        shrink(&mut self.uncookied);
        shrink(&mut self.time_wait);
    }

    /// Fills in what the kernel left out of `e` from the socket's row (a
    /// local port the socket has given back by the time it is freed; the
    /// owner of a socket older than netwatch, from the seed), then applies
    /// it, with what the model adds ([`Self::enrich`]). What the live model
    /// hands on (`events`, the full-screen view's events, `serve`'s export)
    /// is then as complete as the table, without a second per-socket cache
    /// beside it.
    pub fn complete_and_apply(&mut self, e: &mut Event) {
        self.complete(e);
        e.rhost = self.hosts.remote_name(e);
        self.apply(e);
    }

    /// What the model adds to an event from outside the kernel's record,
    /// once for every consumer: what earlier events of its socket said
    /// (owner, start, inode; see [`Event::lend`]), and its owner's
    /// workload where asked for ([`Self::event_workloads`]). Changes no row:
    /// also for events the agent makes (`listen_drop`).
    pub fn complete(&self, e: &mut Event) {
        // A failed connect() carries all it has, and names no live socket.
        let row = self.rows.get(&e.cookie).filter(|_| e.kind != EventKind::ConnectError);
        if let Some(row) = row {
            e.local = merge_addr(e.local, row.local);
            e.remote = merge_addr(e.remote, row.remote);
            if e.netns == 0 {
                // Kernels' records of a socket may lack its namespace.
                e.netns = row.netns;
            }
            let holder = row.owners.first().or_else(|| self.departed.get(&e.cookie));
            let owner = holder.map(|o| (o.pid, o.comm, row.uid, row.owner_source));
            e.lend(owner, row.opened_ns, row.inode);
        }
        if self.event_workloads {
            let mut workloads = self.workloads.borrow_mut();
            let w = workloads.get_or_insert_with(Resolver::default);
            e.workload = w.of(e.pid, e.cgroup);
            if e.cgroup == 0 {
                e.cgroup = w.cgroup_of(e.pid).unwrap_or(0);
            }
        }
    }

    /// Applies one kernel event.
    pub fn apply(&mut self, e: &Event) {
        self.totals.count(e);
        // Neither changes a socket: a failed connect() names none, a
        // listener's drops change only its counter.
        if matches!(e.kind, EventKind::ConnectError | EventKind::ListenDrop) {
            return;
        }
        let key = self.key_for(e);
        if e.kind == EventKind::Accept {
            // accept() returned it: the owner and, now, a file (inode).
            if let Some(row) = self.rows.get_mut(&key) {
                set_owner(row, e, &mut self.names);
                row.inode = e.inode;
            }
            return;
        }
        if e.kind == EventKind::UdpClose {
            self.udp_close(key, e);
            return;
        }
        if e.kind == EventKind::Destroy {
            self.final_traffic(e);
            // The socket is freed; a TIME_WAIT row made from it stays.
            if self.rows.get(&key).is_some_and(|r| r.state != TcpState::TimeWait) {
                self.remove(key);
            }
            return;
        }
        if e.new_state == TcpState::Close {
            self.close(key, e);
            return;
        }
        let row = self.rows.entry(key).or_insert_with(|| event_row(e));
        row.state = e.new_state;
        if e.new_state == TcpState::Established && matches!(e.old_state, TcpState::SynSent | TcpState::SynRecv) {
            row.traffic.opened = Some(crate::why::latency(e));
        }
        if e.inode != 0 {
            row.inode = e.inode;
        }
        row.local = merge_addr(e.local, row.local);
        row.remote = merge_addr(e.remote, row.remote);
        if row.opened_ns.is_none() {
            row.opened_ns = e.start_ns;
        }
        // An orphan's owner was lent from `departed`: no process holds it,
        // and the lent name is not the kernel's word about a holder.
        let lent_departed = row.owners.is_empty() && self.departed.contains_key(&key);
        if e.pid != 0 && !lent_departed {
            match row.owners.iter().position(|o| o.pid == e.pid) {
                // The kernel named one of its holders (the one closing it):
                // the socket's later events, in softirq, name that one.
                Some(i) => {
                    row.owners[..=i].rotate_right(1);
                    // Its name too: a walk may have met it before an exec
                    // (a forked child that runs another program).
                    row.owners[0].comm = self.names.name(e.pid, e.comm);
                    row.owner_source = e.owner;
                }
                // The kernel's owner changed (accept handed the socket to
                // another process, or a holder the walk had not found yet
                // closed it) or the row had none: its word is newer.
                None => set_owner(row, e, &mut self.names),
            }
        }
        self.retire_reused(key, e);
    }

    fn key_for(&mut self, e: &Event) -> u64 {
        if !self.uncookied.is_empty() && !self.rows.contains_key(&e.cookie) {
            if let Some(id) = self.uncookied.remove(&(e.netns, e.local, e.remote)) {
                // From now on the row answers to its real identity.
                if let Some(mut row) = self.rows.remove(&id) {
                    row.cookie = Some(e.cookie);
                    self.rows.insert(e.cookie, row);
                }
            }
        }
        e.cookie
    }

    fn remove(&mut self, key: u64) -> Option<Row> {
        let row = self.rows.remove(&key)?;
        self.departed.remove(&key);
        if row.cookie.is_none() {
            self.uncookied.remove(&(row.netns, row.local, row.remote));
        }
        Some(row)
    }

    /// Whom a closed connection's history names: the row's holder the
    /// kernel named (the row has its process name resolved already), else
    /// its first, else the event's own.
    fn closing_owner(&mut self, row: Option<&Row>, e: &Event) -> Option<Owner> {
        // The kernel's closer, where it named one, else the first holder.
        let first = row.and_then(|r| r.owners.first()).filter(|_| e.pid == 0);
        let held = row.and_then(|r| r.owners.iter().find(|o| o.pid == e.pid)).or(first);
        held.copied().or_else(|| (e.pid != 0).then(|| Owner { pid: e.pid, comm: self.names.name(e.pid, e.comm) }))
    }

    fn push_history(&mut self, closed: Closed) {
        if self.history_cap == 0 {
            return;
        }
        let len = self.history.len();
        if len >= self.history_cap {
            self.history.pop_front();
        } else if len == self.history.capacity() {
            // Doubling, but never past the cap: the deque's own doubling
            // would leave up to half of it unused for good (131,072 slots,
            // 27 MiB, for the 100,000 `snapshot --for` keeps).
            self.history.reserve_exact(len.max(1).min(self.history_cap - len));
        }
        self.history.push_back(closed);
    }

    fn close(&mut self, key: u64, e: &Event) {
        let ending = ending(e.old_state);
        let row = self.remove(key);
        let (mut local, mut remote) = (e.local, e.remote);
        let mut opened = e.start_ns;
        if let Some(r) = &row {
            // The row's tuple wins: the close may name a port the kernel
            // already gave back.
            local = merge_addr(r.local, local);
            remote = merge_addr(r.remote, remote);
            opened = opened.or(r.opened_ns);
        }
        let owner = self.closing_owner(row.as_ref(), e);
        self.add_closed_traffic(owner.as_ref(), &e.traffic);
        if let Some(mut r) = row.filter(|_| self.until_destroy) {
            // Its destroy event is still to come, and is completed from
            // this row (the tuple and the owner); the destroy removes it.
            (r.state, r.local, r.remote) = (TcpState::Close, local, remote);
            self.rows.insert(key, r);
        } else if self.time_wait_rows && matches!(e.old_state, TcpState::FinWait2 | TcpState::Closing) {
            // tcp_time_wait(): the full socket closes and a TIME_WAIT
            // minisock with the same cookie takes over its tuple.
            self.rows.insert(key, time_wait_row(e, local, remote));
            self.index_time_wait(key);
        }
        self.push_history(Closed {
            proto: Proto::Tcp,
            family: e.family,
            local,
            remote,
            netns: e.netns,
            cookie: Some(e.cookie),
            owner,
            last_state: e.old_state,
            ending,
            closed_ns: e.ts_ns,
            duration_ns: opened.map(|s| e.ts_ns.saturating_sub(s)),
            traffic: e.traffic,
        });
    }
}

/// The row a socket dumped from the kernel starts as.
fn seeded_row(s: SeedSocket, now_ns: u64) -> Row {
    Row {
        proto: s.proto,
        family: s.family,
        local: s.local,
        remote: s.remote,
        state: s.state,
        netns: s.netns,
        cookie: s.cookie,
        inode: s.inode,
        uid: s.uid,
        owners: distinct(s.owners),
        owner_source: OwnerSource::Proc,
        opened_ns: None,
        seen_ns: now_ns,
        expires_ns: None,
        timer: s.timer,
        rx_queue: s.rx_queue,
        tx_queue: s.tx_queue,
        traffic: RowTraffic::default(),
    }
}

/// [`Table::trim`] for one map: to twice its entries (at least 4096) once
/// they fill under a quarter of it.
fn shrink<K: Eq + std::hash::Hash, V>(map: &mut FxHashMap<K, V>) {
    const MIN_ROWS: usize = 4096;
    let rows = map.len().max(MIN_ROWS);
    if map.capacity() > 4 * rows {
        map.shrink_to(2 * rows);
    }
}

/// Which dumped sockets [`Table::reconcile_minisocks`] keeps: TIME_WAIT
/// (whose substate may read FIN_WAIT2: its timer tells) and request sockets.
fn is_seed_minisock(s: &SeedSocket) -> bool {
    s.state == TcpState::TimeWait
        || s.timer.is_some_and(|t| t.kind == seed::TimerKind::TimeWait)
        || (s.state == TcpState::SynRecv && s.inode == 0)
}

/// TIME_WAIT minisockets (whose substate may read FIN_WAIT2: they are told
/// apart by their TIME_WAIT timer) and request sockets: kernel objects no
/// tracepoint reports, so only sock_diag can say which exist.
fn is_minisock(r: &Row) -> bool {
    r.proto == Proto::Tcp
        && (r.expires_ns.is_some()
            || time_wait::is_time_wait(r)
            || (r.state == TcpState::SynRecv && r.inode == 0 && r.owners.is_empty()))
}

/// The event's process becomes the row's one owner.
fn set_owner(row: &mut Row, e: &Event, names: &mut names::ProcNames) {
    row.owners = smallvec::smallvec![Owner { pid: e.pid, comm: names.name(e.pid, e.comm) }];
    row.owner_source = e.owner;
    row.uid = e.uid;
}

/// Each process once (the scan lists a process once per descriptor), in
/// the order found: the first is the one `netstat -p` names.
fn distinct(ps: Vec<seed::Process>) -> Owners {
    let mut owners = Owners::new();
    for p in ps {
        if !owners.iter().any(|o: &Owner| o.pid == p.pid) {
            owners.push(Owner { pid: p.pid, comm: Comm::new(&p.comm) });
        }
    }
    owners
}

/// How a connection that reached CLOSE from `old` ended.
fn ending(old: TcpState) -> Ending {
    use TcpState::{Closing, FinWait1, FinWait2, LastAck, Listen, SynSent, TimeWait};
    match old {
        SynSent => Ending::Failed,
        // The FIN handshake ends in these; anything else skipped it.
        FinWait2 | Closing | LastAck | TimeWait | Listen | FinWait1 => Ending::Closed,
        _ => Ending::Reset,
    }
}

/// The row an event about a socket the table has none for starts as.
fn event_row(e: &Event) -> Row {
    Row {
        proto: Proto::Tcp,
        family: e.family,
        local: e.local,
        remote: e.remote,
        state: e.new_state,
        netns: e.netns,
        cookie: Some(e.cookie),
        inode: e.inode,
        uid: e.uid,
        owners: Owners::new(),
        owner_source: e.owner,
        opened_ns: None,
        seen_ns: e.ts_ns,
        expires_ns: None,
        timer: None,
        rx_queue: 0,
        tx_queue: 0,
        traffic: RowTraffic::default(),
    }
}

fn time_wait_row(e: &Event, local: SocketAddr, remote: SocketAddr) -> Row {
    Row {
        local,
        remote,
        state: TcpState::TimeWait,
        inode: 0,
        uid: 0,
        owner_source: OwnerSource::Unknown,
        expires_ns: Some(e.ts_ns + TIME_WAIT_NS),
        ..event_row(e)
    }
}

#[cfg(test)]
mod tests;
