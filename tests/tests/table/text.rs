//! `netwatch snapshot`'s text output, row by row: the sockets a test holds
//! in a namespace of its own, each with its exact columns (protocol,
//! queues, addresses and ports, state, namespace, bytes, PID/program), in
//! the documented order, and the header above them.

use std::net::SocketAddr;

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

    // Idle sockets: empty queues (a listener's Send-Q is 0 as in netstat,
    // not its backlog as in ss; its Recv-Q, the accept queue, is empty too),
    // and no bytes counted since this netwatch started a moment ago.
    let row = |proto: &str, local: SocketAddr, remote: String, state: &str, owner: &str| {
        let mut r = vec![proto.to_owned(), "0".into(), "0".into(), addr(local), remote];
        if !state.is_empty() {
            r.push(state.to_owned());
        }
        r.extend([inode.clone(), "0".into(), "0".into(), owner.to_owned()]);
        r
    };
    let (c4, c6) = (conns[0].local, conns[1].local);
    let mut want = vec![
        (l4.port(), row("tcp", l4, "0.0.0.0:*".into(), "LISTEN", &sp)),
        (l4.port(), row("tcp", l4, addr(c4), "ESTABLISHED", &sp)),
        (c4.port(), row("tcp", c4, addr(l4), "ESTABLISHED", &cp)),
        (l6.port(), row("tcp6", l6, ":::*".into(), "LISTEN", &sp)),
        (l6.port(), row("tcp6", l6, addr(c6), "ESTABLISHED", &sp)),
        (c6.port(), row("tcp6", c6, addr(l6), "ESTABLISHED", &cp)),
    ];
    // Sorted as documented: protocol, then local port; a listener before
    // its children (remote 0.0.0.0 sorts first).
    want.sort_by_key(|(port, _)| *port);
    let mut want: Vec<Vec<String>> = want.into_iter().map(|(_, r)| r).collect();
    want.push(row("udp", udp, "0.0.0.0:*".into(), "", &sp));

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
