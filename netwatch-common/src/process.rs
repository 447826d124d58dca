//! Process lifecycle records: the kernel tells the agent that a process
//! exec'd, ended or forked, so that every socket names a process that holds
//! it now (the agent's `holders` module). They travel on a ring buffer of
//! their own ([`crate::names::MAP_PROC_EVENTS`]), so the socket event record
//! and its hot path are untouched.

use crate::Bytes16;

/// What happened to a process.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcKind {
    /// `execve()` succeeded: `comm` is the new program name.
    Exec = 1,
    /// The thread-group leader ended (the exiting task's pid is its tgid).
    Exit = 2,
    /// A new process (not a thread): `tgid` is the child, `parent` the
    /// process that forked it.
    Fork = 3,
}

impl ProcKind {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            2 => Some(Self::Exit),
            3 => Some(Self::Fork),
            _ => None,
        }
    }
}

/// One lifecycle record. Integers in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// A [`ProcKind`].
    pub kind: u32,
    /// The process (thread-group id): the exec'd or ended one, or the child.
    pub tgid: u32,
    /// The forking process's tgid ([`ProcKind::Fork`]); 0 otherwise.
    pub parent: u32,
    pub _pad: u32,
    /// The process's `comm` at the event, NUL-padded (after exec: the new one).
    pub comm: Bytes16,
}

const _: () = assert!(size_of::<ProcEvent>() == 40);

#[cfg(feature = "user")]
// SAFETY: plain integers and a byte array, no padding (asserted above).
unsafe impl aya::Pod for ProcEvent {}
