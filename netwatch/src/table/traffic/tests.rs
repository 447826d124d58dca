use netwatch_common::{EventKind, Traffic};

use super::super::Table;
use crate::{
    event::{Comm, Event},
    seed::{Proto, SeedSocket},
    socket::TcpState,
};

fn sock(cookie: u64, proto: Proto, port: u16, pid: u32, comm: &str) -> SeedSocket {
    let s = SeedSocket::fixture(TcpState::Established, &format!("127.0.0.1:{port}"), "127.0.0.1:9000");
    SeedSocket { proto, inode: 10 + cookie, cookie: Some(cookie), ..s }.owned_by(pid, comm)
}

fn traffic(tx: u64, rx: u64) -> Traffic {
    Traffic { tx_bytes: tx, rx_bytes: rx, tx_packets: 1, rx_packets: 1, ..Traffic::ZERO }
}

fn table() -> Table {
    let mut t = Table::new(10);
    t.seed(
        vec![
            sock(1, Proto::Tcp, 1000, 10, "curl"),
            sock(2, Proto::Tcp, 1001, 10, "curl"),
            sock(3, Proto::Udp, 1002, 20, "dnsd"),
            sock(4, Proto::Tcp, 1003, 30, "sshd"),
        ],
        0,
    );
    t
}

#[test]
fn rates_come_from_two_readings() {
    let mut t = table();
    t.update_traffic(&[(1, traffic(1000, 50)), (99, traffic(5, 5))], 1_000_000_000);
    let row = t.rows().find(|r| r.cookie == Some(1)).unwrap();
    assert_eq!((row.traffic.totals.tx_bytes, row.traffic.tx_rate), (1000, 0), "no rate from one reading");
    t.update_traffic(&[(1, traffic(3000, 550))], 1_500_000_000);
    let row = t.rows().find(|r| r.cookie == Some(1)).unwrap();
    assert_eq!((row.traffic.tx_rate, row.traffic.rx_rate), (4000, 1000));
}

#[test]
fn per_process_totals_with_other_and_closed_connections() {
    let mut t = table();
    t.update_traffic(&[(1, traffic(100, 0)), (2, traffic(0, 900)), (3, traffic(40, 40)), (4, traffic(1, 2))], 1);
    let all = t.traffic_by_process(10);
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["curl", "dnsd", "sshd"]);
    assert_eq!((all[0].totals.tx_bytes, all[0].totals.rx_bytes, all[0].sockets), (100, 900, 2));
    let top = t.traffic_by_process(1);
    assert_eq!(top.len(), 2);
    assert_eq!((top[1].name.as_str(), top[1].totals.tx_bytes, top[1].sockets), ("other", 41, 2));

    // A UDP socket's release moves it to the history, and its totals stay
    // with its program.
    let e = Event {
        ts_ns: 5,
        start_ns: None,
        cookie: 3,
        local: "127.0.0.1:1002".parse().unwrap(),
        remote: "0.0.0.0:0".parse().unwrap(),
        pid: 20,
        comm: Comm::new("dnsd"),
        netns: 7,
        traffic: traffic(70, 80),
        ..crate::event::fixture(EventKind::UdpClose, TcpState::Close, TcpState::Close)
    };
    t.apply(&e);
    assert!(t.rows().all(|r| r.cookie != Some(3)));
    let closed = t.history().last().unwrap();
    assert_eq!((closed.proto, closed.traffic.tx_bytes, closed.traffic.rx_bytes), (Proto::Udp, 70, 80));
    assert_eq!(closed.owner.as_ref().map(|o| o.comm.text()), Some("dnsd"));
    let dnsd = t.traffic_by_process(10).into_iter().find(|p| p.name == "dnsd").unwrap();
    assert_eq!((dnsd.totals.tx_bytes, dnsd.sockets), (70, 0));
}

#[test]
fn udp_rows_keep_their_counters_across_the_sock_diag_reread() {
    let mut t = table();
    t.update_traffic(&[(3, traffic(40, 40))], 1);
    t.reconcile_udp(7, vec![sock(3, Proto::Udp, 1002, 20, "dnsd")], 2);
    let row = t.rows().find(|r| r.cookie == Some(3)).unwrap();
    assert_eq!(row.traffic.totals.tx_bytes, 40);
}

#[test]
fn listen_drops_land_on_their_rows_by_cookie() {
    let mut t = table();
    let figures = Some(crate::seed::diag::Figures { drops: Some(3), rtt: None });
    let dumped =
        SeedSocket { cookie: Some(4), figures, ..SeedSocket::fixture(TcpState::Listen, "127.0.0.1:1003", "0.0.0.0:0") };
    // Not in the table, or no counter: nothing changes.
    let gone = SeedSocket { cookie: Some(99), ..dumped.clone() };
    let bare = SeedSocket { cookie: Some(1), figures: None, ..dumped.clone() };
    t.update_listen_drops(&[dumped, gone, bare]);
    let drops: Vec<(u64, Option<u32>)> = t.rows().map(|r| (r.cookie.unwrap(), r.traffic.listen_drops)).collect();
    assert!(drops.contains(&(4, Some(3))) && drops.contains(&(1, None)), "{drops:?}");
    assert_eq!(t.len(), 4);
}

#[test]
fn live_rtt_lands_on_its_row_by_cookie_and_a_zero_is_no_sample() {
    use crate::seed::diag::{Figures, Rtt};
    let mut t = table();
    let rtt = |srtt_us| Some(Figures { drops: Some(0), rtt: Some(Rtt { srtt_us, rttvar_us: 7, total_retrans: 1 }) });
    let dumped = SeedSocket { figures: rtt(52), ..sock(1, Proto::Tcp, 1000, 10, "curl") };
    let no_sample = SeedSocket { figures: rtt(0), ..sock(2, Proto::Tcp, 1001, 10, "curl") };
    let gone = SeedSocket { figures: rtt(9), ..sock(99, Proto::Tcp, 1009, 10, "curl") };
    t.update_rtt(&[dumped, no_sample, gone]);
    let of = |t: &Table, c| t.rows().find(|r| r.cookie == Some(c)).unwrap().traffic.rtt;
    assert_eq!(of(&t, 1), Some(Rtt { srtt_us: 52, rttvar_us: 7, total_retrans: 1 }));
    assert_eq!((of(&t, 2), of(&t, 4)), (None, None));
    assert_eq!(t.len(), 4);
    // The next reading replaces it.
    t.update_rtt(&[SeedSocket { figures: rtt(60), ..sock(1, Proto::Tcp, 1000, 10, "curl") }]);
    assert_eq!(of(&t, 1).map(|r| r.srtt_us), Some(60));
}
