//! Socket ownership, taken only where the kernel runs in the owner's own
//! system call (KERNEL-NOTES point 1).
//!
//! The kernel keeps no owner per socket: a socket's owner rides on its birth
//! event (connect, listen, accept) and the agent lends it to the socket's
//! later events, which mostly run in softirq where the kernel could only
//! have looked it up again. The one owner the kernel must remember is a
//! listener's: its passive children are born in softirq, and their first
//! event names the listener's owner from `LISTENERS`.

use netwatch_common::{Counter, ListenKey, Owner};

use crate::{
    emit::count,
    maps::LISTENERS,
    sock::{zero_in_place, Tuple},
};

#[inline(always)]
fn listen_key(t: &Tuple) -> ListenKey {
    ListenKey { netns: t.netns, port: t.sport, family: t.family, addr: t.saddr }
}

/// Registers a listening socket and its owner (`owner.cookie` names the
/// socket).
#[inline(always)]
pub fn remember_listener(t: &Tuple, owner: &Owner) {
    if LISTENERS.insert(&listen_key(t), owner, 0).is_err() {
        count(Counter::ListenersFull);
    }
}

/// Deletes the listener entry, unless another socket has since registered
/// the same address and port (SO_REUSEPORT): only the socket `cookie` that
/// registered it may (or anyone, for a listener older than netwatch whose
/// cookie the agent did not know).
#[inline(always)]
pub fn forget_listener(t: &Tuple, cookie: u64) {
    let key = listen_key(t);
    // SAFETY: read and compared at once.
    if let Some(o) = unsafe { LISTENERS.get(&key) } {
        if o.cookie == cookie || o.cookie == 0 {
            let _ = LISTENERS.remove(&key);
        }
    }
}

/// The owner of the listener a passive child was accepted on: the exact
/// local address first, then the wildcard. The reference is to the map's
/// value, read at once by the caller.
#[inline(always)]
pub fn of_listener(t: &Tuple) -> Option<&'static Owner> {
    let mut key = listen_key(t);
    // SAFETY: the value is read at once; a concurrent delete leaves it
    // readable until the program ends (RCU), at worst stale.
    unsafe {
        if let Some(o) = LISTENERS.get(&key) {
            return Some(o);
        }
        zero_in_place(&mut key.addr);
        LISTENERS.get(&key)
    }
}
