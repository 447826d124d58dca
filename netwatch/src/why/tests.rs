use netwatch_common::EventKind;

use super::*;

fn event(kind: EventKind, old: TcpState, new: TcpState) -> Event {
    Event { ts_ns: 1_500_000_000, start_ns: Some(250_000_000), ..crate::event::fixture(kind, old, new) }
}

#[test]
fn errno_decides_the_reason() {
    let mut e = event(EventKind::ConnectFailed, TcpState::SynSent, TcpState::Close);
    for (errno, reason, name) in [
        (111, Reason::Refused, "ECONNREFUSED"),
        (110, Reason::TimedOut, "ETIMEDOUT"),
        (113, Reason::Unreachable, "EHOSTUNREACH"),
        (101, Reason::NoRoute, "ENETUNREACH"),
        (13, Reason::Permission, "EACCES"),
        (1, Reason::Permission, "EPERM"),
        (104, Reason::ResetByPeer, "ECONNRESET"),
        (32, Reason::ResetByPeer, "EPIPE"),
        (99, Reason::AddressUnavailable, "EADDRNOTAVAIL"),
        (105, Reason::Error, "ENOBUFS"),
    ] {
        e.traffic.sk_err = errno;
        assert_eq!(failure(&e), Some(Failure { reason, errno }));
        assert_eq!(errno_name(errno), name);
    }
    assert_eq!(errno_name(4095), "4095");
}

#[test]
fn no_error_closes_are_normal_or_local_aborts() {
    let closed = |old| failure(&event(EventKind::Close, old, TcpState::Close));
    for old in [TcpState::FinWait2, TcpState::LastAck, TcpState::Closing, TcpState::Listen, TcpState::FinWait1] {
        assert_eq!(closed(old), None, "{old:?}");
    }
    for old in [TcpState::Established, TcpState::CloseWait] {
        assert_eq!(closed(old), Some(Failure { reason: Reason::ResetLocally, errno: 0 }));
    }
    let gave_up = event(EventKind::ConnectFailed, TcpState::SynSent, TcpState::Close);
    assert_eq!(failure(&gave_up).map(|f| f.reason), Some(Reason::Aborted));
    assert_eq!(failure(&event(EventKind::State, TcpState::Established, TcpState::FinWait1)), None);
}

#[test]
fn connect_error_always_has_a_reason() {
    let mut e = event(EventKind::ConnectError, TcpState::Close, TcpState::Close);
    e.traffic.sk_err = 101;
    e.traffic.protocol = 17;
    assert_eq!(failure(&e), Some(Failure { reason: Reason::NoRoute, errno: 101 }));
    assert_eq!(protocol_name(e.traffic.protocol), Some("udp"));
    assert_eq!(latency(&e), Latency::default());
}

#[test]
fn latency_by_transition() {
    let mut e = event(EventKind::Established, TcpState::SynSent, TcpState::Established);
    e.traffic.total_retrans = 2;
    e.traffic.srtt_us = 40;
    let l = latency(&e);
    assert_eq!(
        (l.connect_us, l.handshake_us, l.syn_retransmits, l.srtt_us),
        (Some(1_250_000), None, Some(2), Some(40))
    );
    let passive = latency(&event(EventKind::Handshake, TcpState::SynRecv, TcpState::Established));
    assert_eq!((passive.connect_us, passive.handshake_us, passive.syn_retransmits), (None, Some(1_250_000), Some(0)));
    let mut close = event(EventKind::Close, TcpState::FinWait2, TcpState::Close);
    close.traffic.srtt_us = 12;
    assert_eq!(latency(&close), Latency { srtt_us: Some(12), ..Latency::default() });
    close.traffic.srtt_us = 0;
    assert_eq!(latency(&close), Latency::default());
    let mut failed = event(EventKind::ConnectFailed, TcpState::SynSent, TcpState::Close);
    failed.traffic.total_retrans = 1;
    assert_eq!(latency(&failed).syn_retransmits, Some(1));
    let mut unknown_start = event(EventKind::Established, TcpState::SynSent, TcpState::Established);
    unknown_start.start_ns = None;
    assert_eq!(latency(&unknown_start).connect_us, None);
}
