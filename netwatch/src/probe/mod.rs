//! Loading and attaching the kernel programs. Everything attached here is
//! owned by [`Probes`]: links are fd-based and never pinned, so dropping it
//! (on return, error, panic unwinding, or the kernel closing our fds after a
//! SIGKILL) detaches everything.

pub mod btf;
pub mod compat;
mod drop_reasons;
pub use drop_reasons::by_reason as drops_by_reason;
pub use drop_reasons::name as drop_reason_name;
mod connect;
pub mod dns;
pub mod hollow;
pub mod iter;
pub mod misses;
pub mod privilege;
mod sys;
pub mod tracefs;
pub mod traffic;

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{Array, Map, MapData, MapError, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint},
    Btf, Ebpf, EbpfLoader,
};
use netwatch_common::names;

/// The object built from netwatch-ebpf by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netwatch"));

/// The kernel side of the crossing: the ring, the loss counters, and the
/// flag that says whether the reader is draining on its own clock.
pub struct RingMaps {
    pub events: RingBuf<MapData>,
    pub counters: PerCpuArray<MapData, u64>,
    pub awake: Array<MapData, u32>,
    /// Runs of the sending programs the kernel skipped: lost events too.
    pub skipped: misses::SkippedRuns,
    /// Process lifecycle records (`holders`); `None` where the programs
    /// could not be attached.
    pub procs: Option<RingBuf<MapData>>,
    /// DNS answers (`names`); `None` where capture is off or unavailable.
    pub dns: Option<dns::Maps>,
}

/// Load-time settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Attach the traffic programs (off with `NETWATCH_NO_TRAFFIC=1`).
    pub traffic: bool,
    /// With them, count every packet (cgroup_skb): live per-socket
    /// totals and UDP totals. Without, TCP totals still come from the
    /// kernel's own counters at close, and nothing runs per packet.
    pub packet_counters: bool,
    /// Emit a `Destroy` event for every freed socket (`events --teardown`).
    pub teardown_events: bool,
    /// Capture DNS answers for `rhost` (off with `NETWATCH_NO_DNS=1`).
    pub dns: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ring_bytes: 16 << 20,
            traffic: !traffic::disabled_by_env(),
            packet_counters: true,
            teardown_events: false,
            dns: !dns::disabled_by_env(),
        }
    }
}

/// Attached programs plus the maps the agent reads.
pub struct Probes {
    attached: Attached,
    ring: RingMaps,
}

/// Keeps the programs attached while alive; dropping it detaches them all.
pub struct Attached {
    _ebpf: Ebpf,
    /// Why accept attribution is unavailable, when it is.
    pub degraded: Option<String>,
    /// Per-socket traffic counters; `None` when turned off or unavailable.
    pub traffic: Option<traffic::TrafficMap>,
    /// Why the traffic counters are unavailable, when they were wanted.
    pub traffic_degraded: Option<String>,
    /// Why process lifecycle is not followed (holders go stale), if so.
    pub holders_degraded: Option<String>,
    /// Why DNS answers are not captured (no `rhost`), when they were wanted.
    pub dns_degraded: Option<String>,
}

/// The load-time globals and map sizes of one load of the object.
pub(crate) struct Globals {
    offsets: netwatch_common::KernelOffsets,
    teardown: u32,
    hollow: u32,
    ring_bytes: u32,
    /// `TRAFFIC`'s size, when the user set one.
    traffic_sockets: Option<u32>,
}

impl Globals {
    /// Creates the object's maps, with these globals and `compat` frozen in.
    fn load(&self, btf: &Btf, compat: u32) -> Result<Ebpf> {
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(btf))
            .override_global(names::GLOBAL_OFFSETS, &self.offsets, true)
            .override_global(names::GLOBAL_TEARDOWN_EVENTS, &self.teardown, true)
            .override_global(names::GLOBAL_HOLLOW, &self.hollow, true)
            .override_global(names::GLOBAL_COMPAT, &compat, true)
            .map_max_entries(names::MAP_EVENTS, self.ring_bytes);
        if let Some(n) = self.traffic_sockets {
            loader.map_max_entries(names::MAP_TRAFFIC, n);
        }
        if compat & names::compat::OWN_IDS != 0 {
            loader.map_max_entries(names::MAP_IDS, compat::IDS_ENTRIES);
        }
        loader.load(OBJECT).context("loading netwatch's eBPF object into the kernel")
    }
}

impl Probes {
    /// Checks privileges, resolves offsets, loads and attaches every program.
    pub fn attach(opts: &Options) -> Result<Self> {
        privilege::check()?;
        let offsets = btf::resolve_offsets()?;
        let kernel_btf = Btf::from_sys_fs().context("reading kernel BTF from /sys/kernel/btf/vmlinux")?;
        let globals = Globals {
            offsets,
            teardown: u32::from(opts.teardown_events),
            hollow: hollow::from_env()?,
            ring_bytes: opts.ring_bytes,
            traffic_sockets: traffic::sockets_from_env()?,
        };
        let compat::Loaded { mut ebpf, bits: compat_bits, note: compat_note } = compat::load(&globals, &kernel_btf)?;
        if let Some(note) = compat_note {
            // Said here, once, whichever command runs.
            eprintln!("netwatch: note: {note}");
        }

        attach_btf(&mut ebpf, &kernel_btf, names::PROG_SET_STATE, names::TP_SET_STATE)?;
        attach_btf(&mut ebpf, &kernel_btf, names::PROG_DESTROY_SOCK, names::TP_DESTROY_SOCK)?;
        let degraded = attach_accept(&mut ebpf).err().map(|e| format!("{e:#}"));
        // Failed connect() calls are an addition too.
        if let Err(e) = connect::attach(&mut ebpf, compat_bits) {
            eprintln!("netwatch: note: connect() failures are not reported: {e:#}");
        }
        // Counters are an addition: without them every event still flows.
        let (traffic, traffic_degraded) =
            optional(opts.traffic.then(|| traffic::attach(&mut ebpf, &kernel_btf, opts.packet_counters)).transpose());

        let events = open_map(&mut ebpf, names::MAP_EVENTS, "the event ring buffer")?;
        let counters = open_map(&mut ebpf, names::MAP_COUNTERS, "the counter map")?;
        let awake = open_map(&mut ebpf, names::MAP_READER_AWAKE, "the reader flag map")?;
        // Programs that send a record on every run. The destroy hook sends
        // one on every run only when teardown events are asked for;
        // otherwise only after an abortive close, whose skipped run would
        // lose the final totals of a connection already reported closed.
        let mut sending = vec![names::PROG_SET_STATE, names::PROG_ACCEPT4_EXIT, names::PROG_ACCEPT_EXIT];
        if opts.teardown_events {
            sending.push(names::PROG_DESTROY_SOCK);
        }
        let skipped = misses::SkippedRuns::watch(&ebpf, &sending)?;
        // Process lifecycle only keeps holders current: every event flows
        // without it.
        let (procs, holders_degraded) = optional(attach_process(&mut ebpf, &kernel_btf).map(Some));
        // Names are an addition too.
        let (dns, dns_degraded) = optional(opts.dns.then(|| dns::attach(&mut ebpf)).transpose());
        Ok(Self {
            attached: Attached { _ebpf: ebpf, degraded, traffic, traffic_degraded, holders_degraded, dns_degraded },
            ring: RingMaps { events, counters, awake, skipped, procs, dns },
        })
    }

    /// Splits the attachment guard from the maps the reader consumes.
    pub fn into_parts(self) -> (Attached, RingMaps) {
        (self.attached, self.ring)
    }
}

/// What an optional part gave (`None` when not wanted), or why it failed.
fn optional<T>(r: Result<Option<T>>) -> (Option<T>, Option<String>) {
    r.map_or_else(|e| (None, Some(format!("{e:#}"))), |v| (v, None))
}

/// Map `name`, taken out of the object, as a `T` (`what` in the error).
fn open_map<T: TryFrom<Map, Error = MapError>>(ebpf: &mut Ebpf, name: &str, what: &str) -> Result<T> {
    let map = ebpf.take_map(name).ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))?;
    T::try_from(map).with_context(|| format!("opening {what}"))
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name).ok_or_else(|| anyhow!("program {name} missing from the eBPF object"))
}

fn attach_btf(ebpf: &mut Ebpf, btf: &Btf, prog: &str, tracepoint: &str) -> Result<()> {
    // `compat::load` may have loaded it already, to see whether it can be.
    if ebpf.program(prog).is_none_or(|p| p.fd().is_err()) {
        load_btf(ebpf, btf, prog, tracepoint)?;
    }
    let p: &mut BtfTracePoint = program(ebpf, prog)?.try_into()?;
    p.attach().with_context(|| format!("attaching to BTF tracepoint {tracepoint}"))?;
    Ok(())
}

fn load_btf(ebpf: &mut Ebpf, btf: &Btf, prog: &str, tracepoint: &str) -> Result<()> {
    let p: &mut BtfTracePoint = program(ebpf, prog)?.try_into()?;
    p.load(tracepoint, btf)
        .with_context(|| format!("loading {prog} for BTF tracepoint {tracepoint} (does this kernel have it?)"))
}

/// The accept hooks only refine ownership (listener -> accepting process), so
/// a kernel without syscall tracepoints still gets every event.
fn attach_accept(ebpf: &mut Ebpf) -> Result<()> {
    tracefs::ensure_mounted()?;
    for (prog, tp) in
        [(names::PROG_ACCEPT4_EXIT, names::TP_ACCEPT4_EXIT), (names::PROG_ACCEPT_EXIT, names::TP_ACCEPT_EXIT)]
    {
        let p: &mut TracePoint = program(ebpf, prog)?.try_into()?;
        if p.fd().is_err() {
            p.load().with_context(|| format!("loading {prog}"))?;
        }
        p.attach(names::SYSCALL_CATEGORY, tp).with_context(|| {
            format!(
                "attaching to tracepoint {}/{tp} (needs tracefs at {} and CONFIG_FTRACE_SYSCALLS)",
                names::SYSCALL_CATEGORY,
                tracefs::TRACEFS
            )
        })?;
    }
    Ok(())
}

/// The exec, exit and fork programs, and their ring (`holders`).
fn attach_process(ebpf: &mut Ebpf, btf: &Btf) -> Result<RingBuf<MapData>> {
    for (prog, tracepoint) in names::PROCESS_PROGRAMS {
        attach_btf(ebpf, btf, prog, tracepoint)?;
    }
    open_map(ebpf, names::MAP_PROC_EVENTS, "the process event ring buffer")
}
