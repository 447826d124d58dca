//! RFC 5424 syslog over a unix datagram socket (`/dev/log`).
//!
//! Written here rather than with the `syslog` crate: that crate's RFC 5424
//! formatter only takes a numeric MSGID, and the event kind is the natural
//! MSGID. The header is small and fully specified (RFC 5424 section 6):
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.

use std::{
    io,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

/// Severities used (RFC 5424 table 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// RFC 5424 facility number of a name.
pub fn facility(name: &str) -> Result<u8> {
    Ok(match name {
        "kern" => 0,
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "authpriv" => 10,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => bail!("unknown syslog facility {name:?} (daemon, user, auth, authpriv, local0..local7, ...)"),
    })
}

pub struct Syslog {
    sock: UnixDatagram,
    path: PathBuf,
    facility: u8,
    hostname: String,
    pid: u32,
}

impl Syslog {
    pub fn connect(path: &Path, facility_name: &str) -> Result<Self> {
        let sock = open(path)?;
        Ok(Self {
            sock,
            path: path.to_owned(),
            facility: facility(facility_name)?,
            hostname: hostname(),
            pid: std::process::id(),
        })
    }

    /// Sends one message. Never blocks: a syslog daemon that cannot keep up
    /// loses messages (the caller counts the error) rather than stalling the
    /// agent. A restarted daemon has a new socket: reconnect once.
    pub fn send(&mut self, severity: Severity, msgid: &str, ts: &str, msg: &str) -> io::Result<()> {
        let line = format(self.facility, severity, ts, &self.hostname, self.pid, msgid, msg);
        match self.sock.send(line.as_bytes()) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT | libc::ENOTCONN)) => {
                self.sock = open(&self.path).map_err(io::Error::other)?;
                self.sock.send(line.as_bytes()).map(drop)
            }
            r => r.map(drop),
        }
    }
}

fn open(path: &Path) -> Result<UnixDatagram> {
    let sock = UnixDatagram::unbound().context("creating a unix datagram socket for syslog")?;
    sock.connect(path).with_context(|| format!("connecting to the syslog socket {}", path.display()))?;
    sock.set_nonblocking(true).context("making the syslog socket non-blocking")?;
    Ok(sock)
}

/// One RFC 5424 message. Header fields must be printable US-ASCII without
/// spaces, at most their RFC lengths; empty ones are the NILVALUE `-`. No
/// structured data: the message is the JSON line, which carries it all.
pub fn format(facility: u8, severity: Severity, ts: &str, host: &str, pid: u32, msgid: &str, msg: &str) -> String {
    let pri = u32::from(facility) * 8 + severity as u32;
    format!("<{pri}>1 {ts} {} netwatch {pid} {} - {msg}", header_field(host, 255), header_field(msgid, 32))
}

fn header_field(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if clean.is_empty() {
        "-".to_owned()
    } else {
        clean
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; gethostname
    // NUL-terminates within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_rfc5424() {
        let line = format(3, Severity::Warning, "2026-11-22T03:00:00.000001Z", "host a", 42, "alert", "{\"x\":1}");
        assert_eq!(line, "<28>1 2026-11-22T03:00:00.000001Z hosta netwatch 42 alert - {\"x\":1}");
        let nil = format(16, Severity::Info, "2026-11-22T03:00:00.000001Z", "", 1, "", "m");
        assert_eq!(nil, "<134>1 2026-11-22T03:00:00.000001Z - netwatch 1 - - m");
    }

    #[test]
    fn facilities() {
        assert_eq!(facility("daemon").unwrap(), 3);
        assert_eq!(facility("local7").unwrap(), 23);
        assert!(facility("bogus").is_err());
    }
}
