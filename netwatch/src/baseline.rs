//! Baselines: the document `netwatch snapshot --json` prints, read back
//! (`netwatch diff`, the agent's new-listener alert), and the live table in
//! the same shape, so both sides of a comparison are one type.
//!
//! Only what a comparison needs is read (`sockets`: protocol, ends, state,
//! namespace, owners); other fields, and fields later versions add, are
//! ignored, so an older or newer baseline still reads.
//!
//! A listener's identity is its protocol, local address and port
//! ([`ListenerKey`]): not its PID (a restarted service is the same service)
//! nor its namespace inode (inodes change when a container restarts and
//! differ from boot to boot).

use std::{
    io::Read as _,
    net::{IpAddr, SocketAddr},
    path::Path,
};

use anyhow::{bail, Context as _, Result};
use netwatch_common::tcp;
use serde::Deserialize;

use crate::{
    event::display_ip,
    socket::{Owner, Proto},
    table::Table,
};

/// One socket of a baseline, or of the live table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    /// IPv4-mapped IPv6 addresses as IPv4, as every netwatch output shows them.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// netstat's state name; `UNCONN` for an unconnected UDP socket.
    pub state: String,
    pub netns: u32,
    pub owners: Vec<Owner>,
}

/// What identifies a listening socket across snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerKey {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
}

impl ListenerKey {
    /// The key of a socket listening on `local`, with an IPv4-mapped address
    /// made IPv4 as baselines hold it (for listeners seen in live events).
    pub fn new(proto: Proto, local: SocketAddr) -> Self {
        Self { proto, addr: display_ip(local.ip()), port: local.port() }
    }
}

impl Socket {
    /// TCP in LISTEN, or UDP bound to a port and not connected: what
    /// `netstat -tulpn` lists as listening.
    pub fn is_listener(&self) -> bool {
        match self.proto {
            Proto::Tcp => self.state == "LISTEN",
            Proto::Udp => self.state == "UNCONN" && self.local.port() != 0,
        }
    }

    pub fn listener_key(&self) -> Option<ListenerKey> {
        self.is_listener().then(|| ListenerKey::new(self.proto, self.local))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// When it was taken (`ts` of the document), if it says.
    pub ts: Option<String>,
    pub sockets: Vec<Socket>,
}

/// A `sockets` row as `netwatch snapshot --json` writes it.
#[derive(Deserialize)]
struct RawSocket {
    proto: String,
    saddr: IpAddr,
    sport: u16,
    daddr: IpAddr,
    dport: u16,
    state: String,
    netns: u32,
    #[serde(default)]
    owners: Vec<Owner>,
}

#[derive(Deserialize)]
struct RawDoc {
    ts: Option<String>,
    sockets: Vec<RawSocket>,
}

impl Baseline {
    /// Reads a baseline file; `-` is stdin.
    pub fn load(path: &Path) -> Result<Self> {
        let text = if path == Path::new("-") {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the baseline from stdin")?;
            s
        } else {
            std::fs::read_to_string(path).with_context(|| format!("reading baseline {}", path.display()))?
        };
        Self::parse(&text).with_context(|| format!("baseline {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: RawDoc = serde_json::from_str(text)
            .context("not a `netwatch snapshot --json` document (expected an object with a `sockets` array)")?;
        let sockets = doc.sockets.into_iter().enumerate().map(|(i, r)| socket(r).context(format!("sockets[{i}]")));
        Ok(Self { ts: doc.ts, sockets: sockets.collect::<Result<_>>()? })
    }

    /// The live table in baseline form.
    pub fn from_table(table: &Table) -> Self {
        let sockets = table
            .rows()
            .map(|r| Socket {
                proto: r.proto,
                local: canonical(r.local),
                remote: canonical(r.remote),
                state: crate::output::snapshot::json_state(r).to_owned(),
                netns: r.netns,
                owners: r.owners.to_vec(),
            })
            .collect();
        Self { ts: None, sockets }
    }

    /// Every listener identity in the baseline.
    pub fn listener_keys(&self) -> std::collections::BTreeSet<ListenerKey> {
        self.sockets.iter().filter_map(Socket::listener_key).collect()
    }
}

fn socket(r: RawSocket) -> Result<Socket> {
    let proto = match r.proto.as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => bail!("unknown proto {other:?} (expected tcp or udp)"),
    };
    let known = r.state == "UNCONN" || tcp::from_name(&r.state).is_some();
    if !known {
        bail!("unknown state {:?}", r.state);
    }
    Ok(Socket {
        proto,
        local: canonical(SocketAddr::new(r.saddr, r.sport)),
        remote: canonical(SocketAddr::new(r.daddr, r.dport)),
        state: r.state,
        netns: r.netns,
        owners: r.owners,
    })
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(display_ip(a.ip()), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"ts":"2026-11-22T03:00:00.000000Z","counts":{},"totals":{},"closed":[],"sockets":[
        {"proto":"tcp","family":"IPv4","saddr":"0.0.0.0","sport":22,"daddr":"0.0.0.0","dport":0,"state":"LISTEN",
         "netns":4026531840,"cookie":1,"inode":5,"uid":0,"owners":[{"pid":1,"comm":"sshd"}],"recv_q":0,"send_q":0},
        {"proto":"tcp","family":"IPv6","saddr":"::ffff:127.0.0.1","sport":22,"daddr":"127.0.0.1","dport":50000,
         "state":"ESTABLISHED","netns":4026531840,"inode":6,"uid":0,"owners":[],"recv_q":0,"send_q":0},
        {"proto":"udp","family":"IPv4","saddr":"0.0.0.0","sport":53,"daddr":"0.0.0.0","dport":0,"state":"UNCONN",
         "netns":4026531840,"inode":7,"uid":0,"owners":[{"pid":9,"comm":"dnsmasq"}],"recv_q":0,"send_q":0},
        {"proto":"udp","family":"IPv4","saddr":"0.0.0.0","sport":0,"daddr":"0.0.0.0","dport":0,"state":"UNCONN",
         "netns":4026531840,"inode":8,"uid":0,"owners":[],"recv_q":0,"send_q":0}]}"#;

    #[test]
    fn reads_a_snapshot_document() {
        let b = Baseline::parse(DOC).unwrap();
        assert_eq!(b.ts.as_deref(), Some("2026-11-22T03:00:00.000000Z"));
        assert_eq!(b.sockets.len(), 4);
        assert_eq!(b.sockets[0].owners, vec![Owner { pid: 1, comm: "sshd".into() }]);
        assert_eq!(b.sockets[1].local, "127.0.0.1:22".parse().unwrap(), "mapped address made IPv4");
        let keys: Vec<_> = b.listener_keys().into_iter().map(|k| (k.proto, k.addr.to_string(), k.port)).collect();
        assert_eq!(keys, vec![(Proto::Tcp, "0.0.0.0".into(), 22), (Proto::Udp, "0.0.0.0".into(), 53)]);
        let mapped = ListenerKey::new(Proto::Tcp, "[::ffff:0.0.0.0]:22".parse().unwrap());
        assert!(b.listener_keys().contains(&mapped));
    }

    #[test]
    fn rejects_what_is_not_a_snapshot() {
        for bad in [
            "",
            "[]",
            r#"{"sockets":{}}"#,
            r#"{"events":[]}"#,
            &DOC.replace(r#""proto":"udp""#, r#""proto":"sctp""#),
            &DOC.replace("\"LISTEN\"", "\"LISTENING\""),
            &DOC.replace("\"sport\":22", "\"sport\":70000"),
        ] {
            assert!(Baseline::parse(bad).is_err(), "accepted {bad}");
        }
    }
}
