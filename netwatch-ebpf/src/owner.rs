//! Socket ownership, recorded only where the kernel runs in the owner's own
//! system call (KERNEL-NOTES point 1).

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid, generated};
use netwatch_common::{Bytes16, Counter, ListenKey, Owner, OwnerSource};

use crate::{
    emit::count,
    maps::{LISTENERS, SOCK_OWNERS},
    sock::{zero16, zero_in_place, Tuple},
};

/// The current task as an owner. Only call this from process context.
#[inline(always)]
pub fn current(now: u64, source: OwnerSource) -> Owner {
    let mut comm = core::mem::MaybeUninit::<Bytes16>::uninit();
    // SAFETY: the helper writes all 16 bytes (NUL-padded, or zeroed on error).
    let comm = unsafe {
        generated::bpf_get_current_comm(comm.as_mut_ptr().cast(), 16);
        comm.assume_init()
    };
    Owner {
        start_ns: now,
        comm,
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        uid: bpf_get_current_uid_gid() as u32,
        source: source as u32,
        _pad: 0,
    }
}

#[inline(always)]
pub fn unknown() -> Owner {
    Owner { start_ns: 0, comm: zero16(), pid: 0, uid: 0, source: OwnerSource::Unknown as u32, _pad: 0 }
}

#[inline(always)]
pub fn remember(sk: u64, owner: &Owner) {
    if SOCK_OWNERS.insert(&sk, owner, 0).is_err() {
        count(Counter::OwnersFull);
    }
}

#[inline(always)]
pub fn lookup(sk: u64) -> Option<Owner> {
    // SAFETY: the value is copied out at once; a concurrent delete can at
    // worst hand us a stale owner, never an invalid read.
    unsafe { SOCK_OWNERS.get(&sk).copied() }
}

#[inline(always)]
pub fn forget(sk: u64) {
    let _ = SOCK_OWNERS.remove(&sk);
}

#[inline(always)]
fn listen_key(t: &Tuple) -> ListenKey {
    ListenKey { netns: t.netns, port: t.sport, family: t.family, addr: t.saddr }
}

#[inline(always)]
pub fn remember_listener(t: &Tuple, owner: &Owner) {
    if LISTENERS.insert(&listen_key(t), owner, 0).is_err() {
        count(Counter::ListenersFull);
    }
}

/// Deletes the listener entry, unless another socket has since registered
/// the same address and port (SO_REUSEPORT): that one is told apart by its
/// own start time.
#[inline(always)]
pub fn forget_listener(t: &Tuple, start_ns: u64) {
    let key = listen_key(t);
    // SAFETY: read and compared at once.
    if let Some(o) = unsafe { LISTENERS.get(&key) } {
        if o.start_ns == start_ns {
            let _ = LISTENERS.remove(&key);
        }
    }
}

/// The owner of the listener a passive child was accepted on: the exact
/// local address first, then the wildcard.
#[inline(always)]
pub fn of_listener(t: &Tuple, now: u64) -> Option<Owner> {
    let mut key = listen_key(t);
    // SAFETY: copied out at once.
    let mut found = unsafe { LISTENERS.get(&key).copied() };
    if found.is_none() {
        zero_in_place(&mut key.addr);
        // SAFETY: copied out at once.
        found = unsafe { LISTENERS.get(&key).copied() };
    }
    found.map(|mut o| {
        o.start_ns = now;
        o.source = OwnerSource::Listener as u32;
        o
    })
}
