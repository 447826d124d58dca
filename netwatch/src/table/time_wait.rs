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

use std::net::SocketAddr;

use netwatch_common::tcp;

use super::{Row, Table};
use crate::{event::Event, seed::TimerKind};

/// Network namespace, local and remote address: what the kernel's
/// established hash is keyed on.
pub(super) type Tuple = (u32, SocketAddr, SocketAddr);

/// A TIME_WAIT socket, synthesized from an active close or dumped by
/// sock_diag (whose substate may read FIN_WAIT2: its timer tells).
pub(super) fn is_time_wait(r: &Row) -> bool {
    r.state == tcp::TIME_WAIT || r.timer.is_some_and(|t| t.kind == TimerKind::TimeWait)
}

fn complete(local: SocketAddr, remote: SocketAddr) -> bool {
    local.port() != 0 && remote.port() != 0
}

impl Table {
    /// Remembers a TIME_WAIT row's tuple, so the socket that reuses it can
    /// retire the row.
    pub(super) fn index_time_wait(&mut self, key: u64) {
        let Some(r) = self.rows.get(&key) else { return };
        if is_time_wait(r) && complete(r.local, r.remote) {
            self.time_wait.insert((r.netns, r.local, r.remote), key);
        }
    }

    /// A socket with a complete tuple (its row is under `key`) retires the TIME_WAIT row the kernel killed to make way for it.
    pub(super) fn retire_reused(&mut self, key: u64, e: &Event) {
        if self.time_wait.is_empty() || !matches!(e.new_state, tcp::SYN_RECV | tcp::ESTABLISHED) {
            return;
        }
        let Some(r) = self.rows.get(&key) else { return };
        let tuple = (r.netns, r.local, r.remote);
        if !complete(tuple.1, tuple.2) {
            return;
        }
        let Some(old) = self.time_wait.remove(&tuple) else { return };
        // The index is pruned lazily: act only on a row that still is what
        // was indexed.
        if old != key && self.rows.get(&old).is_some_and(|r| is_time_wait(r) && (r.netns, r.local, r.remote) == tuple) {
            self.remove(old);
        }
    }

    /// Drops index entries whose rows have gone (expired, re-read, replaced).
    pub(super) fn prune_time_wait(&mut self) {
        let rows = &self.rows;
        self.time_wait.retain(|tuple, key| {
            rows.get(key).is_some_and(|r| is_time_wait(r) && (r.netns, r.local, r.remote) == *tuple)
        });
    }
}

#[cfg(test)]
mod tests;
