//! `netwatch diff` output: one line per change, or one JSON document.

use std::{
    io::{self, Write},
    net::SocketAddr,
};

use serde_json::{json, Value};

use super::{Changes, DiffArgs, Entry, Key};
use crate::baseline::Baseline;

/// `+ listen  tcp  127.0.0.1:8080  1234/python3`, `- peer ...`; the
/// disappeared first. Nothing at all when nothing changed, as diff(1).
pub fn text(out: &mut dyn Write, c: &Changes) -> io::Result<()> {
    for (sign, entries) in [('-', &c.disappeared), ('+', &c.appeared)] {
        for e in entries {
            writeln!(out, "{sign} {}", line(e))?;
        }
    }
    Ok(())
}

fn line(e: &Entry) -> String {
    let (kind, proto, what) = match e.key {
        Key::Listener(k) => ("listen", k.proto, SocketAddr::new(k.addr, k.port).to_string()),
        Key::Peer { proto, direction: super::Direction::In, remote, port } => {
            ("peer", proto, format!("{remote} -> local port {port}"))
        }
        Key::Peer { proto, direction: super::Direction::Out, remote, port } => {
            ("peer", proto, format!("local -> {}", SocketAddr::new(remote, port)))
        }
    };
    let owners: Vec<String> = e.owners.iter().map(ToString::to_string).collect();
    let owners = if owners.is_empty() { "-".to_owned() } else { owners.join(",") };
    let count = if e.sockets > 1 { format!(" ({} sockets)", e.sockets) } else { String::new() };
    format!("{kind:<6} {:<4} {what:<52} {owners}{count}", proto.name())
}

fn entry_json(e: &Entry) -> Value {
    let mut v = match e.key {
        Key::Listener(k) => json!({
            "kind": "listener", "proto": k.proto.name(), "addr": k.addr.to_string(), "port": k.port,
        }),
        Key::Peer { proto: p, direction, remote, port } => json!({
            "kind": "peer", "proto": p.name(), "direction": direction.name(), "remote": remote.to_string(),
            "port": port,
        }),
    };
    v["sockets"] = json!(e.sockets);
    v["netns"] = json!(e.netns);
    v["owners"] = e.owners.iter().map(|o| json!({ "pid": o.pid, "comm": o.comm })).collect();
    v
}

pub fn json(out: &mut dyn Write, c: &Changes, before: &Baseline, args: &DiffArgs) -> io::Result<()> {
    let doc = json!({
        "baseline": args.baseline.display().to_string(),
        "baseline_ts": before.ts,
        "current": args.current.as_ref().map(|p| p.display().to_string()),
        "changed": !c.is_empty(),
        "appeared": c.appeared.iter().map(entry_json).collect::<Vec<_>>(),
        "disappeared": c.disappeared.iter().map(entry_json).collect::<Vec<_>>(),
    });
    serde_json::to_writer(&mut *out, &doc)?;
    out.write_all(b"\n")
}
