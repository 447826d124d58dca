//! `netwatch snapshot`'s text output, row by row: the sockets a test holds
//! in a namespace of its own, each with its exact columns (protocol,
//! queues, addresses and ports, state, namespace, bytes, PID/program), in
//! the documented order, and the header above them.

use std::net::SocketAddr;
use std::process::Command;

use netwatch_tests::held::Held;
use netwatch_tests::oneshot;

const HEADER: &str =
    "Proto Recv-Q Send-Q Local Address                           Foreign Address                         \
                      State       Netns          TX bytes     RX bytes PID/Program name";

#[test]
fn snapshot_text_rows_are_exact() {
    let ns = super::setup_in("snaptext");
    let inode = ns.inode().to_string();
    let mut server = Held::hold(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0", "--udp-bind", "127.0.0.1:0"]);
    let (l4, l6) = match server.listeners()[..] {
        [a, b] => (a, b),
        ref other => panic!("server announced listeners {other:?}"),
    };
    let udp = server.udp()[0].0;
    let client = Held::hold(&["--connect", &l4.to_string(), "--connect", &l6.to_string()]);
    let conns = client.connected();
    server.accepted(2);
    let (sp, cp) = (format!("{}/nw-peer", server.pid()), format!("{}/nw-peer", client.pid()));

    let out = oneshot::run(&["snapshot"]);
    out.expect_code(0);
    let lines = out.lines();
    assert_eq!(lines.first().copied(), Some(HEADER), "the header:\n{}", out.stdout);

    // Idle sockets: empty queues but a listener's Send-Q, its backlog, and
    // no bytes counted since this netwatch started (a moment ago).
    let row = |proto: &str, send_q: &str, local: SocketAddr, remote: String, state: &str, owner: &str| {
        let mut r = vec![proto.to_owned(), "0".into(), send_q.into(), addr(local), remote];
        if !state.is_empty() {
            r.push(state.to_owned());
        }
        r.extend([inode.clone(), "0".into(), "0".into(), owner.to_owned()]);
        r
    };
    let (b4, b6) = (backlog(l4), backlog(l6));
    let (c4, c6) = (conns[0].local, conns[1].local);
    let mut want = vec![
        (l4.port(), row("tcp", &b4, l4, "0.0.0.0:*".into(), "LISTEN", &sp)),
        (l4.port(), row("tcp", "0", l4, addr(c4), "ESTABLISHED", &sp)),
        (c4.port(), row("tcp", "0", c4, addr(l4), "ESTABLISHED", &cp)),
        (l6.port(), row("tcp6", &b6, l6, ":::*".into(), "LISTEN", &sp)),
        (l6.port(), row("tcp6", "0", l6, addr(c6), "ESTABLISHED", &sp)),
        (c6.port(), row("tcp6", "0", c6, addr(l6), "ESTABLISHED", &cp)),
    ];
    // Sorted as documented: protocol, then local port; a listener before
    // its children (remote 0.0.0.0 sorts first).
    want.sort_by_key(|(port, _)| *port);
    let mut want: Vec<Vec<String>> = want.into_iter().map(|(_, r)| r).collect();
    want.push(row("udp", "0", udp, "0.0.0.0:*".into(), "", &sp));

    let got: Vec<Vec<String>> = lines
        .iter()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 8 && cols.contains(&inode))
        .collect();
    assert_eq!(got, want, "the namespace's rows (netns {inode}) of `netwatch snapshot`:\n{}", out.stdout);
}

/// `ADDR:PORT` as netstat writes it: IPv6 without brackets.
fn addr(a: SocketAddr) -> String {
    format!("{}:{}", a.ip(), a.port())
}

/// A listener's backlog, `ss`'s Send-Q for it: the kernel's cap on the
/// `listen` argument, which netwatch must show the same way.
fn backlog(listener: SocketAddr) -> String {
    let out =
        Command::new("ss").args(["-Hltn", &format!("sport = :{}", listener.port())]).output().expect("running ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let cols: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert!(cols.len() >= 4, "ss -ltn for {listener}: {text:?}");
    cols[2].to_owned()
}
