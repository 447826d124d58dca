//! What one check counts, and its label.

use std::net::IpAddr;

use crate::{
    event::display_ip,
    plugin::{self, Perfdata, Status, Threshold},
    seed::Proto,
    socket::TcpState,
    table::Row,
};

/// One check: the sockets its selectors pick, and its ranges.
#[derive(Clone, Debug, Default)]
pub struct Check {
    /// Any of these states; empty: every state but LISTEN.
    pub states: Vec<TcpState>,
    /// Either end on any of these ports; empty: any.
    pub ports: Vec<u16>,
    /// Remote address any of these (canonical: IPv4-mapped as IPv4).
    pub remotes: Vec<IpAddr>,
    pub warning: Option<Threshold>,
    pub critical: Option<Threshold>,
    pub custom_label: Option<String>,
}

impl Check {
    pub fn matches(&self, r: &Row) -> bool {
        let state_ok = match self.states.is_empty() {
            true => r.state != TcpState::Listen,
            false => self.states.contains(&r.state),
        };
        r.proto == Proto::Tcp
            && state_ok
            && (self.ports.is_empty() || self.ports.contains(&r.local.port()) || self.ports.contains(&r.remote.port()))
            && (self.remotes.is_empty() || self.remotes.contains(&display_ip(r.remote.ip())))
    }

    /// `--label`, else one made from the selectors: `established`,
    /// `port_443`, `port_443_syn_recv`, `remote_10.0.0.5`, `connections`.
    pub fn label(&self) -> String {
        if let Some(l) = &self.custom_label {
            return l.clone();
        }
        let join = |v: Vec<String>| v.join("+");
        let mut parts = Vec::new();
        if !self.ports.is_empty() {
            parts.push(format!("port_{}", join(self.ports.iter().map(u16::to_string).collect())));
        }
        if !self.remotes.is_empty() {
            parts.push(format!("remote_{}", join(self.remotes.iter().map(IpAddr::to_string).collect())));
        }
        if !self.states.is_empty() {
            parts.push(join(self.states.iter().map(|s| s.name().to_ascii_lowercase()).collect()));
        }
        if parts.is_empty() {
            "connections".to_owned()
        } else {
            parts.join("_")
        }
    }

    pub fn status(&self, count: u64) -> Status {
        // Socket counts are far below 2^53: exact as f64.
        plugin::evaluate(count as f64, self.warning.as_ref(), self.critical.as_ref())
    }

    pub fn perfdata(&self, count: u64) -> Perfdata {
        Perfdata {
            label: self.label(),
            value: count,
            warning: self.warning.as_ref().map(|t| t.as_str().to_owned()),
            critical: self.critical.as_ref().map(|t| t.as_str().to_owned()),
            min: Some(0),
            max: None,
        }
    }
}
