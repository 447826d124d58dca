//! The words every layer uses for a socket: its protocol and family. One
//! definition each, from the seed and the decoder up to every output.

use std::net::SocketAddr;

use netwatch_common::tcp;

/// Transport protocol of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// As metric labels and alerts spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// The socket's address family, as the kernel created it. An `AF_INET6`
/// socket carrying IPv4 keeps its `::ffff:a.b.c.d` addresses and reports
/// `V6`, as the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// As the JSON `family` field spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }
}

/// `preferred` where it says something (a port other than 0, an address
/// other than the unspecified one), `fallback` where it does not. Events
/// of one socket each carry part of its tuple: `connect` comes before the
/// kernel picks the local port, and by the time a socket closes or is
/// freed it may have given that port back. Every place that completes a
/// tuple from an earlier one goes through here (docs/design.md#partial-tuples).
pub fn merge_addr(preferred: SocketAddr, fallback: SocketAddr) -> SocketAddr {
    let port = if preferred.port() != 0 { preferred.port() } else { fallback.port() };
    let ip = if preferred.ip().is_unspecified() { fallback.ip() } else { preferred.ip() };
    SocketAddr::new(ip, port)
}

/// A TCP state as the kernel numbers them (`include/net/tcp_states.h`;
/// the numbers are `netwatch_common::tcp`'s, which the kernel programs use).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    Established = tcp::ESTABLISHED,
    SynSent = tcp::SYN_SENT,
    SynRecv = tcp::SYN_RECV,
    FinWait1 = tcp::FIN_WAIT1,
    FinWait2 = tcp::FIN_WAIT2,
    TimeWait = tcp::TIME_WAIT,
    Close = tcp::CLOSE,
    CloseWait = tcp::CLOSE_WAIT,
    LastAck = tcp::LAST_ACK,
    Listen = tcp::LISTEN,
    Closing = tcp::CLOSING,
    /// A request socket (half-open connection); never a full socket's state.
    NewSynRecv = tcp::NEW_SYN_RECV,
    /// Bound but inactive (Linux 6.10+).
    BoundInactive = tcp::BOUND_INACTIVE,
}

impl TcpState {
    pub const ALL: [Self; 13] = [
        Self::Established,
        Self::SynSent,
        Self::SynRecv,
        Self::FinWait1,
        Self::FinWait2,
        Self::TimeWait,
        Self::Close,
        Self::CloseWait,
        Self::LastAck,
        Self::Listen,
        Self::Closing,
        Self::NewSynRecv,
        Self::BoundInactive,
    ];

    /// `None` for a number the kernel has not defined (yet).
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u8 == v)
    }

    /// netstat's name (the JSON `old_state`/`new_state`, the text column).
    pub const fn name(self) -> &'static str {
        tcp::name(self as u8)
    }
}

/// The kernel's 16-byte, NUL-padded task name, kept inline: one event
/// should not cost an allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Comm(pub [u8; 16]);

impl Comm {
    pub fn new(name: &str) -> Self {
        let mut raw = [0; 16];
        let n = name.len().min(15);
        raw[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self(raw)
    }

    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.bytes())
    }

    /// The name as text, up to its first byte that is not UTF-8 (names are
    /// ASCII in practice): borrowed, for labels and JSON.
    pub fn text(&self) -> &str {
        let b = self.bytes();
        std::str::from_utf8(b).unwrap_or_else(|e| std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default())
    }

    /// The name's bytes, without the NUL padding.
    pub fn bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        &self.0[..end]
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // pad, not write_str: column widths apply.
        f.pad(&self.as_str())
    }
}

impl From<&str> for Comm {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl serde::Serialize for Comm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Comm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::new(&name))
    }
}

/// A process holding a socket. Its name is the process's (`/proc/PID/comm`,
/// at most 15 bytes like the kernel's own), kept inline so that a row or
/// an event naming its owner costs no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: Comm,
}

/// The processes holding a socket: nearly always one, held inline so that a
/// row made from an event costs no allocation (see [`Owner`]).
pub type Owners = smallvec::SmallVec<[Owner; 1]>;

impl Owner {
    /// `PID/comm`, or `-` for none (see [`label`]).
    pub fn label(owner: Option<&Self>) -> Label<&str> {
        label(owner.map(|o| (o.pid, o.comm.text())))
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        label(Some((self.pid, &self.comm))).fmt(f)
    }
}

/// An owner as netstat's `-p` column shows it, `PID/comm`, or `-` when
/// there is none (an event's pid 0 means none): the one place every output
/// formats an owner, so that they all name it alike.
pub struct Label<C>(Option<(u32, C)>);

pub const fn label<C: std::fmt::Display>(owner: Option<(u32, C)>) -> Label<C> {
    Label(owner)
}

/// An event's owner: pid 0 is "not known".
pub fn event_label(pid: u32, comm: &Comm) -> Label<&Comm> {
    label((pid != 0).then_some((pid, comm)))
}

impl<C: std::fmt::Display> std::fmt::Display for Label<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            // Through pad so that width and alignment apply to the whole.
            Some((pid, comm)) => f.pad(&format!("{pid}/{comm}")),
            None => f.pad("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_addresses_take_what_the_preferred_one_says() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(merge_addr(a("127.0.0.1:0"), a("127.0.0.2:80")), a("127.0.0.1:80"));
        assert_eq!(merge_addr(a("0.0.0.0:443"), a("127.0.0.2:80")), a("127.0.0.2:443"));
        assert_eq!(merge_addr(a("0.0.0.0:0"), a("[::1]:80")), a("[::1]:80"));
        assert_eq!(merge_addr(a("[::1]:9"), a("0.0.0.0:0")), a("[::1]:9"));
    }

    #[test]
    fn tcp_states_are_the_kernels_numbers_and_netstats_names() {
        assert_eq!(TcpState::ALL.map(|s| s as u8), std::array::from_fn(|i| i as u8 + 1));
        assert_eq!(TcpState::from_u8(tcp::LISTEN), Some(TcpState::Listen));
        assert_eq!((TcpState::from_u8(0), TcpState::from_u8(14)), (None, None));
        assert_eq!(TcpState::FinWait2.name(), "FIN_WAIT2");
        assert_eq!(TcpState::NewSynRecv.name(), "SYN_RECV");
    }

    #[test]
    fn owners_are_labelled_as_netstat_does() {
        let o = Owner { pid: 42, comm: "nginx".into() };
        assert_eq!(o.to_string(), "42/nginx");
        assert_eq!(Owner::label(Some(&o)).to_string(), "42/nginx");
        assert_eq!(Owner::label(None).to_string(), "-");
        assert_eq!(format!("{:<10}|", Owner::label(Some(&o))), "42/nginx  |");
        let comm = Comm::new("curl");
        assert_eq!(event_label(7, &comm).to_string(), "7/curl");
        assert_eq!(event_label(0, &comm).to_string(), "-");
    }
}
