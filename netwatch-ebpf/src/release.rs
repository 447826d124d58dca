//! `cgroup/sock_create` and `cgroup/sock_release` on the cgroup v2 root:
//! they run in `inet_create()` when `socket()` makes an IPv4/IPv6 socket
//! and in `inet_release()` when its last file closes, in the calling
//! process's context (neither runs for the kernel's own sockets).
//!
//! UDP has no state machine, so these are where a UDP socket begins and
//! ends. Its birth is only noted (`UDP_BORN`), for the lifetime its close
//! reports: an event per `socket()` would double what a DNS client's
//! queries cost the ring, to say what the close says anyway. UDP has no
//! destroy tracepoint either, so the release is where a UDP socket ends:
//! its totals leave in an `UdpClose` event and its `TRAFFIC` row is freed.
//! TCP rows are left alone: a closed TCP socket still flushes its send
//! queue and exchanges FINs, and its totals leave with the `-> CLOSE`
//! transition; `tcp_destroy_sock` frees the row. A TCP release only notes
//! who is closing the socket, for an abortive close (`RELEASING`). Any
//! other socket with a row (a raw socket sees TCP/UDP packets too) is
//! simply freed.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_get_socket_cookie},
    macros::cgroup_sock,
    programs::SockContext,
};
use netwatch_common::{tcp::CLOSE, EventKind, OwnerSource};

use crate::{
    emit::{Draft, Slot, Who},
    maps::{offsets, UDP_BORN},
    sock::{inet_tuple, inode, Fields as _, Probe},
    traffic,
};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

#[cgroup_sock(sock_create)]
pub fn nw_sock_create(ctx: SockContext) -> i32 {
    created(&ctx);
    // 1 lets `socket()` go on: this program only watches.
    1
}

#[inline(always)]
fn created(ctx: &SockContext) {
    let sk = ctx.sock;
    // SAFETY: field pointers of the context, read one by one.
    let (ty, proto) = unsafe { (read(&raw const (*sk).type_), read(&raw const (*sk).protocol)) };
    let udp = ty == SOCK_DGRAM && proto == IPPROTO_UDP;
    // Where tracing programs cannot make cookies, every socket's is made
    // here, before its first event (`cookies`); elsewhere only UDP's.
    if !udp && !crate::ident::own_ids() {
        return;
    }
    // SAFETY: the context is the socket being made; the cookie it gets
    // now is the one its events and its release read.
    let cookie = unsafe { bpf_get_socket_cookie(sk.cast()) };
    if !udp || crate::maps::others_hollow() {
        return;
    }
    // SAFETY: no arguments, no side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    // A failed insert loses a lifetime, nothing else.
    let _ = UDP_BORN.insert(cookie, now, 0);
}

#[cgroup_sock(sock_release)]
pub fn nw_sock_release(ctx: SockContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_release(&ctx);
    }
    // The return value of a release program is ignored; 1 is "allow".
    1
}

#[inline(always)]
fn read(p: *const u32) -> u32 {
    // SAFETY: a field of the program's context. Volatile: the verifier
    // only accepts 4-byte reads of these, which LLVM must not merge.
    unsafe { core::ptr::read_volatile(p) }
}

fn try_release(ctx: &SockContext) -> Result<(), i64> {
    let sk = ctx.sock;
    // SAFETY: field pointers of the context, read one by one.
    let (ty, proto) = unsafe { (read(&raw const (*sk).type_), read(&raw const (*sk).protocol)) };
    if ty == SOCK_STREAM && proto == IPPROTO_TCP {
        // `tcp_close()` follows in this task: its abortive `-> CLOSE`
        // names the closer (`RELEASING`).
        crate::maps::note_release(sk as u64);
        return Ok(());
    }
    // SAFETY: the context is the socket being released.
    let cookie = unsafe { bpf_get_socket_cookie(sk.cast()) };
    if ty != SOCK_DGRAM || proto != IPPROTO_UDP {
        traffic::forget(cookie);
        return Ok(());
    }
    // Its birth row goes on every path from here.
    // SAFETY: copied out at once; the row is this socket's alone.
    let start = unsafe { UDP_BORN.get(cookie) }.copied().unwrap_or(0);
    let _ = UDP_BORN.remove(cookie);
    // The context is the `struct sock` itself, and this attach type may
    // not read the addresses from it directly (the verifier limits
    // sock_release to bound_dev_if, mark, priority, family, type, protocol
    // and state), so they are read the way the tracepoints read them.
    let off = offsets();
    let mut t = match inet_tuple::<Probe>(sk as u64, off) {
        Ok(t) => t,
        Err(e) => {
            traffic::forget(cookie);
            return Err(e);
        }
    };
    if t.sport == 0 {
        // No port now: `connect(AF_UNSPEC)` took it back (its
        // `udp_port_hash` keeps it: the port it used), or it never had one
        // (a resolver's spare socket, opened and left unused), which sent
        // and received nothing and was in no listing: no event.
        t.sport = Probe::at::<u16>(sk as u64, off.skc_hash).unwrap_or(0);
        if t.sport == 0 {
            traffic::forget(cookie);
            return Ok(());
        }
    }
    // SAFETY: no arguments, no side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a context field.
    let state = unsafe { read(&raw const (*sk).state) } as u8;
    let file = inode::<Probe>(sk as u64, off);
    let who = Who::Current(OwnerSource::Current, start);
    let mut e = Draft::scratch(Slot::Release)?;
    e.head(EventKind::UdpClose, now, cookie, &t, who, file, state, CLOSE);
    // The totals are read straight into the record: a copy of them on
    // the stack beside it left this program over its 512 bytes.
    e.send_with_totals(|totals| traffic::totals_into(cookie, totals));
    traffic::forget(cookie);
    Ok(())
}
