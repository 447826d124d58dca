//! TIME_WAIT rows that end before their 60 seconds: the kernel kills a
//! TIME_WAIT socket when a new connection takes over its 4-tuple (a SYN
//! from the same client port on the server side, `tcp_tw_reuse` on the
//! client side), and no tracepoint says so. Busy clients reuse ports all the
//! time: under `nw-peer churn` the kernel holds about 14,000 TIME_WAIT
//! sockets while every connection's active close made a row here, so
//! between two sock_diag re-reads the table held twice the rows the kernel
//! had, and its peak (and so netwatch's memory) followed the longest gap
//! between re-reads so far. The new socket's first complete tuple retires
//! the row instead: the kernel's established hash holds one socket per
//! tuple and namespace, so the TIME_WAIT one is gone by then.

use std::{
    hash::{Hash as _, Hasher as _},
    net::SocketAddr,
};

use rustc_hash::FxHasher;

use super::{Row, Table};
use crate::{event::Event, seed::TimerKind, socket::TcpState};

/// A TIME_WAIT socket, synthesized from an active close or dumped by
/// sock_diag (whose substate may read FIN_WAIT2: its timer tells).
pub(super) fn is_time_wait(r: &Row) -> bool {
    r.state == TcpState::TimeWait || r.timer.is_some_and(|t| t.kind == TimerKind::TimeWait)
}

/// What the index is keyed on: a hash of the network namespace, local and
/// remote address (the kernel's established hash has one socket per such
/// tuple). A hash, not the 68-byte tuple, so the index costs 16 bytes a
/// row; a collision only costs a retirement missed until the next re-read,
/// as every hit is checked against the row.
fn tuple_hash(r: &Row) -> Option<u64> {
    if r.local.port() == 0 || r.remote.port() == 0 {
        return None;
    }
    let mut h = FxHasher::default();
    (r.netns, r.local, r.remote).hash(&mut h);
    Some(h.finish())
}

/// `(netns, local, remote)`: what the kernel's established hash is keyed on.
type Tuple = (u32, SocketAddr, SocketAddr);

impl Table {
    /// Remembers a TIME_WAIT row's tuple, so the socket that reuses it can
    /// retire the row.
    pub(super) fn index_time_wait(&mut self, key: u64) {
        let Some(r) = self.rows.get(&key) else { return };
        if let (true, Some(hash)) = (is_time_wait(r), tuple_hash(r)) {
            self.time_wait.insert(hash, key);
        }
    }

    /// A socket with a complete tuple (its row is under `key`) retires the
    /// TIME_WAIT row the kernel killed to make way for it.
    pub(super) fn retire_reused(&mut self, key: u64, e: &Event) {
        if self.time_wait.is_empty() || !matches!(e.new_state, TcpState::SynRecv | TcpState::Established) {
            return;
        }
        let Some(r) = self.rows.get(&key) else { return };
        let Some(hash) = tuple_hash(r) else { return };
        let tuple: Tuple = (r.netns, r.local, r.remote);
        let Some(old) = self.time_wait.remove(&hash) else { return };
        // The index is pruned lazily and keyed by a hash: act only on a row
        // that still is what was indexed.
        let killed = self.rows.get(&old).is_some_and(|o| is_time_wait(o) && (o.netns, o.local, o.remote) == tuple);
        if old != key && killed {
            self.remove(old);
        }
    }

    /// Drops index entries whose rows have gone (expired, re-read, replaced).
    pub(super) fn prune_time_wait(&mut self) {
        let rows = &self.rows;
        self.time_wait
            .retain(|hash, key| rows.get(key).is_some_and(|r| is_time_wait(r) && tuple_hash(r) == Some(*hash)));
    }
}

#[cfg(test)]
mod tests;
