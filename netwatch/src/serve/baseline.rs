//! The listeners a baseline expects: the LISTEN rows of a
//! `netwatch snapshot --json` document (UDP sockets are not listeners in
//! that sense: they have no state to say so).

use std::{collections::BTreeSet, net::IpAddr, path::Path};

use anyhow::{Context as _, Result};
use serde::Deserialize;

/// A listening endpoint as the snapshot spells it: protocol, address
/// (IPv4-mapped shown as IPv4) and port.
pub type Listener = (String, IpAddr, u16);

#[derive(Deserialize)]
struct Doc {
    sockets: Vec<Socket>,
}

#[derive(Deserialize)]
struct Socket {
    proto: String,
    state: String,
    saddr: IpAddr,
    sport: u16,
}

/// Reads the listeners of a snapshot document.
pub fn listeners(path: &Path) -> Result<BTreeSet<Listener>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the baseline {}", path.display()))?;
    parse(&text)
        .with_context(|| format!("the baseline {} is not a `netwatch snapshot --json` document", path.display()))
}

pub fn parse(text: &str) -> Result<BTreeSet<Listener>> {
    let doc: Doc = serde_json::from_str(text)?;
    Ok(doc.sockets.into_iter().filter(|s| s.state == "LISTEN").map(|s| (s.proto, s.saddr, s.sport)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_listen_rows_only() {
        let doc = r#"{"ts":"x","counts":{},"totals":{},"closed":[],"sockets":[
            {"proto":"tcp","family":"IPv4","saddr":"127.0.0.1","sport":22,"daddr":"0.0.0.0","dport":0,"state":"LISTEN"},
            {"proto":"tcp","family":"IPv6","saddr":"::","sport":80,"daddr":"::","dport":0,"state":"LISTEN"},
            {"proto":"tcp","family":"IPv4","saddr":"127.0.0.1","sport":5000,"daddr":"127.0.0.1","dport":22,"state":"ESTABLISHED"},
            {"proto":"udp","family":"IPv4","saddr":"0.0.0.0","sport":53,"daddr":"0.0.0.0","dport":0,"state":"UNCONN"}]}"#;
        let l = parse(doc).unwrap();
        let want: BTreeSet<Listener> =
            [("tcp".to_owned(), "127.0.0.1".parse().unwrap(), 22), ("tcp".to_owned(), "::".parse().unwrap(), 80)]
                .into();
        assert_eq!(l, want);
        assert!(parse("{\"sockets\": 3}").is_err());
        assert!(parse("not json").is_err());
    }
}
