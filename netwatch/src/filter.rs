//! Event filters (`--pid`, `--port`, `-4`, `-6`, `--netns`), applied in the agent: the
//! kernel must still see every event to keep its owner records right.

use crate::event::Event;

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
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        (self.pids.is_empty() || self.pids.contains(&e.pid))
            && (self.ports.is_empty() || self.ports.contains(&e.local.port()) || self.ports.contains(&e.remote.port()))
            && self.ipv4.is_none_or(|v4| e.is_ipv4_traffic() == v4)
            && (self.netns.is_empty() || self.netns.contains(&e.netns))
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
}
