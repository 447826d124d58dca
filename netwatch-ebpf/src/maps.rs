//! Every map and load-time global, named as `netwatch_common::names` says.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use netwatch_common::{offsets::KernelOffsets, record::COUNTER_SLOTS};

/// 16 MiB: at 112 bytes an event with the ring's header (176 for a close)
/// this absorbs ~130,000 events, several hundred milliseconds of the
/// heaviest churn, while the agent is descheduled.
/// The agent may resize it at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Each program's event being written (`emit::Draft`).
#[map]
pub static SCRATCH: PerCpuArray<netwatch_common::SockEvent> =
    PerCpuArray::with_max_entries(crate::emit::SCRATCH_SLOTS, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Written by the agent (see `netwatch_common::names::MAP_READER_AWAKE`).
#[map]
pub static READER_AWAKE: Array<u32> = Array::with_max_entries(1, 0);

/// Set to 1 by `nw_set_state` itself the first time it sees a passive
/// child whose `LISTEN -> SYN_RECV` fired before the kernel filled it in
/// (see `state::late_child`); never set where the kernel fills children
/// first, so there the one lookup per passive connection finds 0.
#[map]
pub static LATE_CHILDREN: Array<u32> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn late_children() -> bool {
    LATE_CHILDREN.get(0).is_some_and(|v| *v != 0)
}

#[inline(always)]
pub fn set_late_children() {
    if let Some(v) = LATE_CHILDREN.get_ptr_mut(0) {
        // SAFETY: a map value; a racing writer writes the same 1.
        unsafe { core::ptr::write_volatile(v, 1) };
    }
}

/// Set by the agent before load; read-only for the programs, so the verifier
/// sees the offsets as constants.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    skc_daddr: 0,
    skc_rcv_saddr: 0,
    skc_dport: 0,
    skc_num: 0,
    skc_family: 0,
    skc_net: 0,
    skc_v6_daddr: 0,
    skc_v6_rcv_saddr: 0,
    sk_protocol: 0,
    net_inum: 0,
    task_files: 0,
    files_fdt: 0,
    fdt_fd: 0,
    fdt_max_fds: 0,
    file_private_data: 0,
    socket_sk: 0,
    sk_socket: 0,
    socket_ino: 0,
    skc_cookie: 0,
    task_tgid: 0,
    task_comm: 0,
    tcp_bytes_sent: 0,
    tcp_bytes_retrans: 0,
    tcp_bytes_received: 0,
    tcp_segs_out: 0,
    tcp_segs_in: 0,
    sk_flags: 0,
    skc_state: 0,
    inet_sport: 0,
    task_group_leader: 0,
    sk_err: 0,
    sk_err_soft: 0,
    tcp_srtt_us: 0,
    tcp_total_retrans: 0,
    skb_sk: 0,
    skc_hash: 0,
};

/// Set by the agent before load (`netwatch_common::names::GLOBAL_TEARDOWN_EVENTS`).
#[unsafe(no_mangle)]
pub static TEARDOWN_EVENTS: u32 = 0;

#[inline(always)]
pub fn teardown_events() -> bool {
    // SAFETY: a plain read of a global, volatile for the same reason as OFFSETS.
    unsafe { core::ptr::read_volatile(&TEARDOWN_EVENTS) != 0 }
}

/// Set by the agent before load (`netwatch_common::names::GLOBAL_HOLLOW`);
/// 0 except when the bench measures what the hooks cost on their own.
#[unsafe(no_mangle)]
pub static HOLLOW: u32 = 0;

/// Whether the programs named by `bit` (`names::hollow`) must return at
/// once. In a normal run this costs each program one load from the frozen
/// global and a branch never taken (`bpftool prog dump xlated` shows both).
#[inline(always)]
fn hollow(bit: u32) -> bool {
    // SAFETY: a plain read of a global, volatile for the same reason as OFFSETS.
    unsafe { core::ptr::read_volatile(&HOLLOW) & bit != 0 }
}

#[inline(always)]
pub fn set_state_hollow() -> bool {
    hollow(netwatch_common::names::hollow::SET_STATE)
}

#[inline(always)]
pub fn others_hollow() -> bool {
    hollow(netwatch_common::names::hollow::OTHERS)
}

#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    // A volatile read of the address, not of the struct: the compiler
    // cannot fold the zero initialiser the loader replaces, yet each
    // program loads only the fields it uses (a volatile copy of the whole
    // struct cost every event some fifty instructions). The verifier still
    // sees every field as a constant of the frozen map.
    let at: *const KernelOffsets = &raw const OFFSETS;
    // SAFETY: reading a local; the address is that of a static.
    unsafe { &*core::ptr::read_volatile(&at) }
}

/// Socket cookie -> traffic totals. Keyed by cookie because that is the one
/// identity the cgroup_skb hook, the TCP tracepoints and the agent's table
/// share: `bpf_get_socket_cookie(skb)` names the socket a packet belongs to
/// in both directions (the ingress hook runs with the receiving socket set,
/// verified on this kernel), so an unconnected UDP socket talking to many
/// peers keeps one row and a listener's children each get their own, where
/// a 4-tuple key would merge reused ports and split an unconnected socket's
/// peers. A listener's row counts the handshakes it answers (the SYN-ACK
/// leaves from a request socket, which the egress hook charges to its
/// listener); each accepted child counts its own traffic from its first
/// packet on. The netns and tuple come with the table row of the same cookie.
/// Not LRU (a live row must not vanish); a full map is counted. Rows are
/// deleted at `tcp_destroy_sock` (TCP) and `sock_release` (everything else).
#[map]
pub static TRAFFIC: HashMap<u64, netwatch_common::Traffic> =
    HashMap::with_max_entries(netwatch_common::TRAFFIC_SOCKETS, 0);

/// How many rows `TRAFFIC` has, kept by the code that adds and deletes
/// them. Without the per-packet counters rows are rare (a reset or a
/// retransmit makes one), and a zero here spares every closing socket
/// three hash operations that would find nothing.
#[map]
pub static TRAFFIC_ROWS: Array<u64> = Array::with_max_entries(1, 0);

/// UDP socket cookie -> when `socket()` made it (`sock_create`), for its
/// lifetime at `sock_release`, which deletes the row. LRU: a socket older
/// than netwatch has no row, and where more UDP sockets are open than this
/// holds the oldest births go first (their lifetimes are then unknown);
/// a birth never waits for room. 16,384 rows are 1.3 MB of kernel memory
/// (65,536 were 5.2 MB), for more UDP sockets open at once than servers
/// and resolvers keep.
#[map]
pub static UDP_BORN: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16_384, 0);

/// The TCP socket whose last file this CPU is closing, and the task
/// closing it: `[sk, pid_tgid]`, written by `sock_release`, which runs in
/// `inet_release()` just before `tcp_close()` in the same task. A `-> CLOSE`
/// of that socket while that task is current is the closer's own (an
/// abortive close: unread data, `SO_LINGER` 0), so it names the closer
/// rather than the owner the agent would lend. The task check makes a
/// stale slot harmless: whoever matches is the task that released the
/// socket. A task that sleeps in `tcp_close()` and wakes on another CPU
/// just misses, and its close is lent an owner as before.
#[map]
pub static RELEASING: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Notes that the current task is releasing TCP socket `sk` ([`RELEASING`]).
#[inline(always)]
pub fn note_release(sk: u64) {
    if let Some(slot) = RELEASING.get_ptr_mut(0) {
        let task = aya_ebpf::helpers::bpf_get_current_pid_tgid();
        // SAFETY: this CPU's slot of a map we own, written whole.
        unsafe { slot.write([sk, task]) };
    }
}

/// Whether the current task is the one releasing `sk` on this CPU
/// ([`RELEASING`]); a match is taken once.
#[inline(always)]
pub fn released_by_current(sk: u64) -> bool {
    let Some(slot) = RELEASING.get_ptr_mut(0) else { return false };
    // SAFETY: this CPU's slot of a map we own, copied out.
    let [noted, task] = unsafe { slot.read() };
    if noted != sk || task != aya_ebpf::helpers::bpf_get_current_pid_tgid() {
        return false;
    }
    // SAFETY: as above.
    unsafe { slot.write([0, 0]) };
    true
}

/// Thread (`pid_tgid`) -> the `connect()` it is in: the destination read at
/// `sys_enter_connect`, kept for `sys_exit_connect`, which reports the call
/// only if it failed (`connect`). Deleted at the exit; a thread is in one
/// system call at a time, so the map holds one row per thread inside
/// `connect()` at most. A full map costs a failed connect its event, never
/// a connection.
#[map]
pub static CONNECTS: HashMap<u64, crate::connect::Pending> = HashMap::with_max_entries(16_384, 0);
