//! TCP states as the kernel numbers them (`include/net/tcp_states.h`) and as
//! net-tools `netstat` names them (`netstat.c: tcp_state[]`).

pub const ESTABLISHED: u8 = 1;
pub const SYN_SENT: u8 = 2;
pub const SYN_RECV: u8 = 3;
pub const FIN_WAIT1: u8 = 4;
pub const FIN_WAIT2: u8 = 5;
pub const TIME_WAIT: u8 = 6;
pub const CLOSE: u8 = 7;
pub const CLOSE_WAIT: u8 = 8;
pub const LAST_ACK: u8 = 9;
pub const LISTEN: u8 = 10;
pub const CLOSING: u8 = 11;
/// A request socket (half-open connection); never a full socket's state.
pub const NEW_SYN_RECV: u8 = 12;
/// Bound but inactive (Linux 6.10+).
pub const BOUND_INACTIVE: u8 = 13;

/// netstat's name for a state; `UNKNOWN` for anything it would not print.
pub const fn name(state: u8) -> &'static str {
    match state {
        ESTABLISHED => "ESTABLISHED",
        SYN_SENT => "SYN_SENT",
        SYN_RECV | NEW_SYN_RECV => "SYN_RECV",
        FIN_WAIT1 => "FIN_WAIT1",
        FIN_WAIT2 => "FIN_WAIT2",
        TIME_WAIT => "TIME_WAIT",
        CLOSE => "CLOSE",
        CLOSE_WAIT => "CLOSE_WAIT",
        LAST_ACK => "LAST_ACK",
        LISTEN => "LISTEN",
        CLOSING => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// Inverse of [`name`], for filters and parsers.
pub fn from_name(name: &str) -> Option<u8> {
    (ESTABLISHED..=CLOSING).find(|&s| self::name(s).eq_ignore_ascii_case(name))
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
