//! iproute2 `ss`, the reference netwatch's table is compared with: run with
//! `-anpe -H` (all sockets, numeric, processes, inode and cookie, no
//! header) and parsed into the same terms as netwatch's JSON.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

/// One socket as `ss -tuanpe -H` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsSocket {
    /// `tcp` or `udp`.
    pub proto: String,
    /// `IPv4` or `IPv6` (bracketed or `*` local address), as netwatch names them.
    pub family: String,
    /// netstat's state names, as netwatch's JSON has them: `ESTABLISHED`,
    /// `TIME_WAIT`, ...; `UNCONN` for unconnected UDP.
    pub state: String,
    /// `None` for ss's `*` (any address, either family).
    pub saddr: Option<IpAddr>,
    pub sport: u16,
    pub daddr: Option<IpAddr>,
    pub dport: u16,
    pub inode: u64,
    /// The socket cookie (`sk:` in hex).
    pub cookie: u64,
    /// `uid:` (ss prints it only when it is not 0).
    pub uid: u32,
    /// `(pid, comm)` of every process holding it, once per process.
    pub owners: BTreeSet<(u32, String)>,
    pub line: String,
}

/// Runs `ss ARGS -H` (inside network namespace `netns` when given, through
/// `ip netns exec`) and parses every line; panics on a line it cannot read.
pub fn run(args: &str, netns: Option<&str>) -> Vec<SsSocket> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ss"]);
            c
        }
        None => Command::new("ss"),
    };
    cmd.args([args, "-H"]);
    let out = cmd.output().unwrap_or_else(|e| panic!("running ss {args} (is iproute2 installed?): {e}"));
    assert!(out.status.success(), "ss {args} failed: {}", String::from_utf8_lossy(&out.stderr));
    let default_proto = if args.contains('u') { None } else { Some("tcp") };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_line(l, default_proto).unwrap_or_else(|e| panic!("cannot parse `ss {args}` line ({e}): {l}")))
        .collect()
}

/// `ss -tuanpe` in our own namespace: every TCP and UDP socket.
pub fn tcp_udp() -> Vec<SsSocket> {
    run("-tuanpe", None)
}

/// Parses one line. Without a Netid column (only one protocol asked for),
/// `default_proto` names the protocol.
pub fn parse_line(line: &str, default_proto: Option<&str>) -> Result<SsSocket, String> {
    let mut words = line.split_whitespace().peekable();
    let proto = match words.peek() {
        Some(&p) if p == "tcp" || p == "udp" => {
            words.next();
            p.to_owned()
        }
        _ => default_proto.ok_or("no Netid column")?.to_owned(),
    };
    let ss_state = words.next().ok_or("no state")?;
    let state = state_name(&proto, ss_state)?;
    let _recv_q = words.next().ok_or("no Recv-Q")?;
    let _send_q = words.next().ok_or("no Send-Q")?;
    let local = words.next().ok_or("no local address")?;
    let family = if local.starts_with(['[', '*']) { "IPv6" } else { "IPv4" }.to_owned();
    let (saddr, sport) = endpoint(local)?;
    let (daddr, dport) = endpoint(words.next().ok_or("no peer address")?)?;
    let mut s = SsSocket {
        proto,
        family,
        state,
        saddr,
        sport,
        daddr,
        dport,
        inode: 0,
        cookie: 0,
        uid: 0,
        owners: owners(line)?,
        line: line.to_owned(),
    };
    let mut cookie = None;
    for w in words {
        if let Some(v) = w.strip_prefix("ino:") {
            s.inode = v.parse().map_err(|_| format!("bad ino {v:?}"))?;
        } else if let Some(v) = w.strip_prefix("sk:") {
            cookie = Some(u64::from_str_radix(v, 16).map_err(|_| format!("bad sk {v:?}"))?);
        } else if let Some(v) = w.strip_prefix("uid:") {
            s.uid = v.parse().map_err(|_| format!("bad uid {v:?}"))?;
        }
    }
    s.cookie = cookie.ok_or("no sk: (socket cookie); is -e missing?")?;
    Ok(s)
}

fn state_name(proto: &str, ss: &str) -> Result<String, String> {
    Ok(match (proto, ss) {
        ("udp", "UNCONN") => "UNCONN",
        ("tcp", "UNCONN") => "CLOSE",
        (_, "ESTAB") => "ESTABLISHED",
        (_, "SYN-SENT") => "SYN_SENT",
        (_, "SYN-RECV") => "SYN_RECV",
        (_, "FIN-WAIT-1") => "FIN_WAIT1",
        (_, "FIN-WAIT-2") => "FIN_WAIT2",
        (_, "TIME-WAIT") => "TIME_WAIT",
        (_, "CLOSE-WAIT") => "CLOSE_WAIT",
        (_, "LAST-ACK") => "LAST_ACK",
        (_, "LISTEN") => "LISTEN",
        (_, "CLOSING") => "CLOSING",
        _ => return Err(format!("unknown state {ss:?}")),
    }
    .to_owned())
}

/// `127.0.0.1:80`, `[::1]:80`, `*:80`, `0.0.0.0:*`, `127.0.0.53%lo:53`;
/// IPv4-mapped IPv6 addresses become IPv4, as netwatch shows them.
fn endpoint(s: &str) -> Result<(Option<IpAddr>, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("no port in {s:?}"))?;
    let port = if port == "*" { 0 } else { port.parse().map_err(|_| format!("bad port in {s:?}"))? };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.split_once('%').map_or(host, |(h, _)| h);
    if host == "*" {
        return Ok((None, port));
    }
    let ip: IpAddr = host.parse().map_err(|_| format!("bad address in {s:?}"))?;
    Ok((Some(ip.to_canonical()), port))
}

/// `users:(("nw-peer",pid=12,fd=3),("nw-peer",pid=13,fd=3))`.
fn owners(line: &str) -> Result<BTreeSet<(u32, String)>, String> {
    let mut out = BTreeSet::new();
    let Some(start) = line.find("users:(") else { return Ok(out) };
    let mut rest = &line[start..];
    while let Some(open) = rest.find("(\"") {
        rest = &rest[open + 2..];
        let end = rest.find("\",pid=").ok_or_else(|| format!("unterminated process name in {line:?}"))?;
        let comm = rest[..end].to_owned();
        rest = &rest[end + 6..];
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let pid = rest[..digits].parse().map_err(|_| format!("bad pid in {line:?}"))?;
        out.insert((pid, comm));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_udp_and_namespace_lines() {
        let l = r#"tcp   ESTAB  0      0     [::ffff:127.0.0.1]:42058 [::1]:42085 users:(("nw-peer",pid=3201,fd=9),("nw peer",pid=3199,fd=9)) ino:16967341 sk:5daafc cgroup:/ <->"#;
        let s = parse_line(l, None).expect("parses");
        assert_eq!((s.proto.as_str(), s.state.as_str(), s.sport, s.dport), ("tcp", "ESTABLISHED", 42058, 42085));
        assert_eq!((s.saddr, s.family.as_str()), (Some("127.0.0.1".parse().expect("ip")), "IPv6"));
        assert_eq!((s.inode, s.cookie), (16967341, 0x5daafc));
        let pids: Vec<u32> = s.owners.iter().map(|o| o.0).collect();
        assert_eq!(pids, [3199, 3201]);
        assert!(s.owners.contains(&(3199, "nw peer".to_owned())));

        let l = "udp   UNCONN 0      0          *:5353      *:*     uid:101 ino:1 sk:a <->";
        let s = parse_line(l, None).expect("parses");
        assert_eq!((s.state.as_str(), s.saddr, s.dport, s.uid), ("UNCONN", None, 0, 101));

        let l = "SYN-RECV 0      0          127.0.0.1:33703    127.0.0.2:40002 timer:(on,,0) ino:0 sk:5e0aed";
        let s = parse_line(l, Some("tcp")).expect("parses");
        assert_eq!((s.state.as_str(), s.dport, s.owners.len()), ("SYN_RECV", 40002, 0));
        assert!(parse_line("TIME-WAIT 0 0 127.0.0.1:1 127.0.0.1:2 ino:0", Some("tcp")).is_err(), "no cookie");
    }
}
