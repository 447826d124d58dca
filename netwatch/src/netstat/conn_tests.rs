use std::net::SocketAddr;

use super::*;
use crate::netstat::inet::{InetRow, Kind};

fn row(local: &str, remote: &str) -> InetRow {
    InetRow {
        local: local.parse::<SocketAddr>().unwrap(),
        remote: remote.parse().unwrap(),
        state: 10,
        rx_queue: 0,
        tx_queue: 0,
        timer: 0,
        when: 0,
        retrnsmt: 0,
        timeout: 0,
        uid: 0,
        inode: 1,
    }
}

#[test]
fn listeners_are_told_apart_as_netstat_does() {
    let plain = Opts::default();
    let listening = Opts { listening: true, ..Opts::default() };
    let all = Opts { all: true, ..Opts::default() };
    // TCP goes by the remote port, UDP and raw by the remote address.
    let odd = row("10.0.0.1:5", "10.0.0.2:0");
    assert!(inet::shown(Kind::Tcp, &odd, &listening) && !inet::shown(Kind::Tcp, &odd, &plain));
    assert!(inet::shown(Kind::Udp, &odd, &plain) && !inet::shown(Kind::Udp, &odd, &listening));
    assert!(inet::shown(Kind::Raw, &odd, &all));
}

#[test]
fn scope_titles() {
    assert_eq!(scope(&Opts::default()), "(w/o servers)");
    assert_eq!(scope(&Opts { listening: true, ..Opts::default() }), "(only servers)");
    assert_eq!(scope(&Opts { all: true, listening: true, ..Opts::default() }), "(servers and established)");
}

#[test]
fn timer_columns_follow_the_parser_rows() {
    let text = concat!(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        "   0: 0100007F:1F90 0200007F:D431 08 00000000:00000005 01:00000014 00000003 0 2 4243 1 0 20 4 30 10 -1\n",
        "\n",
        "   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99 1 0 100 0 0 10 0\n",
        "   2: 0100007F:0017 00000000:00",
    );
    let rows = inet::parse(crate::seed::ProcNetFile::Tcp, "test", text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].timer, rows[0].when, rows[0].retrnsmt, rows[0].timeout), (1, 20, 3, 2));
    assert_eq!((rows[1].inode, rows[1].retrnsmt), (99, 0));
}
