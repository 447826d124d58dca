//! Names of maps, programs and globals in the eBPF object. The kernel crate
//! declares items with exactly these names (a test in the agent checks the
//! object for each); the agent looks them up only through these constants.

/// Ring buffer carrying [`crate::SockEvent`] records to the agent.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU array of [`crate::Counter`] values (lost events, a full traffic map).
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Array of one u32 the agent writes: 1 while its reader drains the ring
/// on its own clock, so the programs submit without waking it.
pub const MAP_READER_AWAKE: &str = "READER_AWAKE";

/// Every program name starts with this, so `bpftool prog show` tells at a
/// glance whether anything of netwatch is still attached; 15 characters at
/// most, where the kernel truncates program names (both checked below).
pub const PROG_PREFIX: &str = "nw_";

/// `tp_btf/inet_sock_set_state`: every TCP state transition.
pub const PROG_SET_STATE: &str = "nw_set_state";
/// `tp_btf/tcp_destroy_sock`: a TCP socket is freed.
pub const PROG_DESTROY_SOCK: &str = "nw_destroy_sock";
/// `tracepoint/syscalls/sys_exit_accept4`: the accepting process takes ownership.
pub const PROG_ACCEPT4_EXIT: &str = "nw_accept4_exit";
/// `tracepoint/syscalls/sys_exit_accept`: same, for the older syscall.
pub const PROG_ACCEPT_EXIT: &str = "nw_accept_exit";
/// `iter/task_file`: writes a [`crate::SocketFd`] per open socket descriptor
/// of every process, when the agent reads the iterator (seeding only; never
/// left attached).
pub const PROG_ITER_SOCKET_FDS: &str = "nw_iter_sockfd";
/// The kernel iterator behind [`PROG_ITER_SOCKET_FDS`] (`bpf_iter_task_file`).
pub const ITER_TASK_FILE: &str = "task_file";
/// Every program attached while tracing, in attach order.
/// ([`PROG_CONNECT_ENTER`] joins them only with [`compat::NO_TASK_REGS`].)
pub const ALL_PROGRAMS: [&str; 5] =
    [PROG_SET_STATE, PROG_DESTROY_SOCK, PROG_ACCEPT4_EXIT, PROG_ACCEPT_EXIT, PROG_CONNECT_EXIT];

/// Tracepoints behind the programs above.
pub const TP_SET_STATE: &str = "inet_sock_set_state";
pub const TP_DESTROY_SOCK: &str = "tcp_destroy_sock";
pub const TP_ACCEPT4_EXIT: &str = "sys_exit_accept4";
pub const TP_ACCEPT_EXIT: &str = "sys_exit_accept";

/// `tracepoint/syscalls/sys_enter_connect`, with [`compat::NO_TASK_REGS`]
/// only: keeps an IPv4/IPv6 `connect()`'s destination per thread (in
/// [`MAP_CONNECTS`]) for the exit, which cannot read the call's arguments.
pub const PROG_CONNECT_ENTER: &str = "nw_connect_in";
/// `tracepoint/syscalls/sys_exit_connect`: a `ConnectError` event when that
/// `connect()` failed in the system call.
pub const PROG_CONNECT_EXIT: &str = "nw_connect_out";
pub const TP_CONNECT_ENTER: &str = "sys_enter_connect";
pub const TP_CONNECT_EXIT: &str = "sys_exit_connect";
/// Hash map: thread -> the `connect()` it is in.
pub const MAP_CONNECTS: &str = "CONNECTS";

/// Global holding the [`crate::KernelOffsets`] resolved from BTF at load time.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
/// Global `u32`: non-zero makes [`PROG_DESTROY_SOCK`] emit a `Destroy` event
/// for every freed socket (`netwatch events --teardown`); otherwise it sends
/// one only when a reset went out after the close (the final totals).
pub const GLOBAL_TEARDOWN_EVENTS: &str = "TEARDOWN_EVENTS";
/// Global `u32` of [`hollow`] bits, for the bench's floor measurement only
/// (`NETWATCH_BENCH_HOLLOW`): the programs it names stay attached, so the
/// kernel still pays for calling them, but return at once.
pub const GLOBAL_HOLLOW: &str = "HOLLOW";

/// Global `u32` of [`compat`] bits: what the running kernel lacks, found
/// by the agent at load time by trying the programs without them set.
pub const GLOBAL_COMPAT: &str = "COMPAT";
/// Hash map: socket address -> socket id, used only with
/// [`compat::OWN_IDS`] (one entry otherwise; the agent sizes it).
pub const MAP_IDS: &str = "IDS";

/// `cgroup/sock_create` on the cgroup v2 root, with the traffic programs:
/// a UDP socket's birth time, into [`MAP_UDP_BORN`]; with
/// [`compat::OWN_IDS`] (attached then even without them), each new
/// socket's kernel cookie too.
pub const PROG_SOCK_CREATE: &str = "nw_sock_create";
/// `sock_ops` on the cgroup v2 root, with [`compat::OWN_IDS`] only: makes
/// each passive child's kernel cookie before its handshake completes.
pub const PROG_SOCK_OPS: &str = "nw_sock_ops";

/// Bits of [`GLOBAL_COMPAT`].
pub mod compat {
    /// Tracing programs cannot call `bpf_get_socket_cookie` (before Linux
    /// 5.12): sockets without a kernel cookie at their first event get an
    /// id of netwatch's own (see the eBPF crate's `ident`).
    pub const OWN_IDS: u32 = 1;
    /// No `bpf_get_current_task_btf` (before 5.11): the accept hooks read
    /// the task with probe reads.
    pub const UNTYPED_TASK: u32 = 2;
    /// No `bpf_task_pt_regs` (before 5.15), or not x86-64: the failed
    /// `connect()` hook cannot read the call's arguments at its exit, so an
    /// entry program keeps them per thread ([`super::PROG_CONNECT_ENTER`]).
    pub const NO_TASK_REGS: u32 = 4;
}

/// Bits of [`GLOBAL_HOLLOW`].
pub mod hollow {
    /// [`super::PROG_SET_STATE`] returns at once.
    pub const SET_STATE: u32 = 1;
    /// Every other program attached while tracing returns at once (the
    /// socket-file iterator, which only seeds, is not affected).
    pub const OTHERS: u32 = 2;
}

/// Tracepoints of the `syscalls` category attached by [`PROG_ACCEPT4_EXIT`]
/// and [`PROG_ACCEPT_EXIT`] (they need tracefs).
pub const SYSCALL_CATEGORY: &str = "syscalls";

/// Hash map: socket cookie -> [`crate::Traffic`] (bytes, packets,
/// retransmits, resets), one row per socket.
pub const MAP_TRAFFIC: &str = "TRAFFIC";
/// How many rows `TRAFFIC` holds (kernel-side only).
pub const MAP_TRAFFIC_ROWS: &str = "TRAFFIC_ROWS";
/// `cgroup_skb/ingress` on the cgroup v2 root: every packet a socket receives.
pub const PROG_SKB_INGRESS: &str = "nw_skb_ingress";
/// `cgroup_skb/egress` on the cgroup v2 root: every packet a socket sends.
pub const PROG_SKB_EGRESS: &str = "nw_skb_egress";
/// `cgroup/sock_release`: a UDP socket's totals, and its `TRAFFIC` row freed.
pub const PROG_SOCK_RELEASE: &str = "nw_sock_release";
/// LRU hash map: UDP socket cookie -> birth time (kernel-side only).
pub const MAP_UDP_BORN: &str = "UDP_BORN";
/// `tp_btf/tcp_retransmit_skb`.
pub const PROG_RETRANSMIT: &str = "nw_retransmit";
/// `tp_btf/tcp_send_reset`.
pub const PROG_SEND_RESET: &str = "nw_send_reset";
/// `tp_btf/tcp_receive_reset`.
pub const PROG_RECV_RESET: &str = "nw_recv_reset";
/// The traffic counting programs, in attach order.
pub const TRAFFIC_PROGRAMS: [&str; 7] = [
    PROG_SKB_INGRESS,
    PROG_SKB_EGRESS,
    PROG_SOCK_CREATE,
    PROG_SOCK_RELEASE,
    PROG_RETRANSMIT,
    PROG_SEND_RESET,
    PROG_RECV_RESET,
];
pub const TP_RETRANSMIT: &str = "tcp_retransmit_skb";
pub const TP_SEND_RESET: &str = "tcp_send_reset";
pub const TP_RECV_RESET: &str = "tcp_receive_reset";
/// `tp_btf/kfree_skb`: packets dropped, by socket and reason (attached
/// with the traffic programs where the kernel has drop reasons).
pub const PROG_KFREE_SKB: &str = "nw_kfree_skb";
pub const TP_KFREE_SKB: &str = "kfree_skb";
/// The same for kernels whose `kfree_skb` has no `rx_sk` argument (before
/// Linux 6.11): the agent attaches it where [`PROG_KFREE_SKB`] is refused.
pub const PROG_KFREE_SKB_NO_RX_SK: &str = "nw_kfree_skb_sk";

/// Whether `name` is a program name `bpftool` shows whole, with the prefix.
const fn well_named(name: &str) -> bool {
    let (n, p) = (name.as_bytes(), PROG_PREFIX.as_bytes());
    if n.len() > 15 || n.len() < p.len() {
        return false;
    }
    let mut i = 0;
    while i < p.len() {
        if n[i] != p[i] {
            return false;
        }
        i += 1;
    }
    true
}

const _: () = {
    let mut i = 0;
    while i < ALL_PROGRAMS.len() {
        assert!(well_named(ALL_PROGRAMS[i]));
        i += 1;
    }
    let mut i = 0;
    while i < TRAFFIC_PROGRAMS.len() {
        assert!(well_named(TRAFFIC_PROGRAMS[i]));
        i += 1;
    }
    assert!(well_named(PROG_ITER_SOCKET_FDS));
    assert!(well_named(PROG_SOCK_OPS));
    assert!(well_named(PROG_KFREE_SKB));
    assert!(well_named(PROG_KFREE_SKB_NO_RX_SK));
};

/// Ring buffer carrying [`crate::ProcEvent`] records (exec, exit, fork) to
/// the agent, apart from [`MAP_EVENTS`] so socket events are untouched.
pub const MAP_PROC_EVENTS: &str = "PROC_EVENTS";
/// `tp_btf/sched_process_exec`: a process runs a new program.
pub const PROG_PROC_EXEC: &str = "nw_proc_exec";
/// `tp_btf/sched_process_exit`: a task ends (reported for group leaders).
pub const PROG_PROC_EXIT: &str = "nw_proc_exit";
/// `tp_btf/sched_process_fork`: a task is cloned (reported for new processes).
pub const PROG_PROC_FORK: &str = "nw_proc_fork";
/// The process lifecycle programs with their tracepoints, in attach order.
pub const PROCESS_PROGRAMS: [(&str, &str); 3] = [
    (PROG_PROC_EXEC, "sched_process_exec"),
    (PROG_PROC_EXIT, "sched_process_exit"),
    (PROG_PROC_FORK, "sched_process_fork"),
];

const _: () = {
    let mut i = 0;
    while i < PROCESS_PROGRAMS.len() {
        assert!(well_named(PROCESS_PROGRAMS[i].0));
        i += 1;
    }
};

/// Ring buffer carrying [`crate::DnsEvent`] records (DNS answers) to the agent.
pub const MAP_DNS_EVENTS: &str = "DNS_EVENTS";
/// `cgroup_skb/ingress` on the cgroup v2 root: copies every UDP datagram
/// from port 53 a socket receives (DNS answers), and every TCP segment from
/// port 53 that starts with a whole message, into [`MAP_DNS_EVENTS`].
pub const PROG_DNS_INGRESS: &str = "nw_dns_in";
/// Per-CPU array of one u64: DNS answers that found [`MAP_DNS_EVENTS`] full.
pub const MAP_DNS_LOST: &str = "DNS_LOST";

const _: () = assert!(well_named(PROG_DNS_INGRESS));
