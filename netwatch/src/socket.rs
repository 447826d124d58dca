//! The words every layer uses for a socket: its protocol and family. One
//! definition each, from the seed and the decoder up to every output.

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

/// The kernel's 16-byte, NUL-padded task name, kept inline: one event
/// should not cost an allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

    /// The name's bytes, without the NUL padding.
    pub fn bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        &self.0[..end]
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// A process holding a socket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
}

impl Owner {
    /// `PID/comm`, or `-` for none (see [`label`]).
    pub fn label(owner: Option<&Self>) -> Label<&str> {
        label(owner.map(|o| (o.pid, o.comm.as_str())))
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
    fn owners_are_labelled_as_netstat_does() {
        let o = Owner { pid: 42, comm: "nginx".to_owned() };
        assert_eq!(o.to_string(), "42/nginx");
        assert_eq!(Owner::label(Some(&o)).to_string(), "42/nginx");
        assert_eq!(Owner::label(None).to_string(), "-");
        assert_eq!(format!("{:<10}|", Owner::label(Some(&o))), "42/nginx  |");
        let comm = Comm::new("curl");
        assert_eq!(event_label(7, &comm).to_string(), "7/curl");
        assert_eq!(event_label(0, &comm).to_string(), "-");
    }
}
