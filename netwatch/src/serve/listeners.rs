//! Which listener a socket belongs to: rows of the same network namespace
//! whose local port is a listener's, and whose local address is the
//! listener's or the listener's is a wildcard. That is how accepted
//! connections and half-open ones (SYN_RECV) are grouped per listener; an
//! outgoing connection that happens to use a listener's port as its local
//! port would be counted too (the kernel forbids it unless SO_REUSEADDR).

use std::collections::HashMap;

use crate::{
    event::display_ip,
    seed::Proto,
    socket::TcpState,
    table::{Row, Table},
};

pub struct ListenerIndex<'a> {
    by_port: HashMap<(u32, u16), Vec<&'a Row>>,
}

impl<'a> ListenerIndex<'a> {
    pub fn new(table: &'a Table) -> Self {
        let mut by_port: HashMap<(u32, u16), Vec<&Row>> = HashMap::new();
        for r in table.rows().filter(|r| r.proto == Proto::Tcp && r.state == TcpState::Listen) {
            by_port.entry((r.netns, r.local.port())).or_default().push(r);
        }
        Self { by_port }
    }

    /// The listener `r` (a TCP row, not a listener) came through, if any.
    pub fn find(&self, r: &Row) -> Option<&'a Row> {
        if r.proto != Proto::Tcp || r.state == TcpState::Listen {
            return None;
        }
        let ls = self.by_port.get(&(r.netns, r.local.port()))?;
        let ip = display_ip(r.local.ip());
        ls.iter()
            .find(|l| display_ip(l.local.ip()) == ip)
            .or_else(|| ls.iter().find(|l| l.local.ip().is_unspecified()))
            .copied()
    }
}
