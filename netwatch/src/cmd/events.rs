//! `netwatch events`: the event stream.

use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use netwatch_common::EventKind;

use crate::{
    event::{clock::WallClock, listen_drops::Listeners as ListenDrops, Decoder},
    filter::Filter,
    live::{seed_model, StopSignals, Tracing},
    output::{json::Json, text::Text, EventSink},
    probe::Options,
    stats::Summary,
    stream::{Batch, Loss},
    table::{Table, Totals},
};

#[derive(Debug, Default, Args)]
pub struct EventsArgs {
    /// One JSON object per line instead of text
    #[arg(long)]
    pub json: bool,
    /// Only sockets owned by this PID (repeatable)
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only connections with this port at either end (repeatable)
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Only IPv4 traffic (IPv4-mapped addresses on IPv6 sockets count as IPv4)
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Only IPv6 traffic
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Only sockets of this network namespace: a name from `ip netns`, a
    /// path such as /proc/PID/ns/net, or an inode number as the JSON
    /// `netns` field shows it (repeatable)
    #[arg(long = "netns", value_name = "NETNS")]
    pub netns: Vec<String>,
    /// Count every packet, for UDP totals and on-the-wire bytes on closes
    /// (TCP payload and segment totals come from the kernel either way)
    #[arg(long)]
    pub traffic: bool,
    /// Also print `destroy` events (the kernel freeing a socket)
    #[arg(long)]
    pub teardown: bool,
    /// Exit after this many printed events (1 or more)
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Size of the kernel's event ring buffer, in MiB (a power of two, 1 to
    /// 1024): how long a burst it holds while netwatch is descheduled,
    /// about 130,000 events per 16 MiB
    #[arg(long = "ring-size", value_name = "MIB", default_value_t = 16, value_parser = parse_ring_mib)]
    pub ring_mib: u32,
    #[command(flatten)]
    pub workload: crate::workload::cli::WorkloadArgs,
    /// A filter expression (docs/filters.md), as `ss` takes one: `state
    /// established and dport = :443`; with the flags above, all must hold
    #[arg(long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// The filter expression as trailing words, as after `ss -tan`
    #[arg(value_name = "EXPR", trailing_var_arg = true)]
    pub expr: Vec<String>,
}

/// `-4` and `-6` as the filter's `family`.
const fn ipv4(args: &EventsArgs) -> Option<bool> {
    match (args.ipv4, args.ipv6) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// A ring size in MiB: the kernel wants a power of two number of pages.
fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let mib: u32 = s.parse().map_err(|_| format!("`{s}` is not a whole number of MiB"))?;
    if !(1..=1024).contains(&mib) || !mib.is_power_of_two() {
        return Err(format!("{mib} MiB: the ring size must be a power of two from 1 to 1024"));
    }
    Ok(mib)
}

pub async fn run(args: &EventsArgs) -> Result<()> {
    let mut stop = StopSignals::install()?;
    // Before loading anything: a namespace that does not exist is a typo.
    let netns = super::netns::resolve_all(&args.netns)?;
    let flags =
        Filter { workload: args.workload.filter(), ..Filter::from_flags(&args.pids, &args.ports, ipv4(args), &netns) };
    let filter = super::filter_of(&args.filter, &args.expr, flags)?;
    // Nothing per packet unless asked: a tracer of connections should cost
    // nothing on a busy data path (TCP totals need no packet counting).
    let opts = Options {
        teardown_events: args.teardown,
        packet_counters: args.traffic,
        ring_bytes: args.ring_mib << 20,
        ..Options::default()
    };
    let mut tracing = Tracing::start(&opts, 1024)?;
    super::warn_all(tracing.warnings());
    let mut printer = Printer::new(args, filter, tracing.attached.traffic.as_ref().is_some_and(|t| t.packets));
    // After attaching (so nothing falls between): what already exists.
    match seed_model(&mut printer.decoder, &mut printer.table, false).await {
        // What the seed had to do without (the socket-file iterator, a
        // namespace it could not enter), as `snapshot` says it.
        Ok(stats) => super::warn_all(&stats.warnings),
        Err(e) => eprintln!("netwatch: warning: owners of sockets opened before start are unknown: {e:#}"),
    }
    match ListenDrops::open(&printer.table.listener_namespaces()) {
        Ok((l, warnings)) => {
            say_unread(&warnings);
            printer.listen_drops = Some(l);
        }
        Err(e) => eprintln!("netwatch: warning: listeners' drop counters cannot be read, no listen_drop events: {e}"),
    }
    eprintln!("netwatch: tracing TCP and UDP sockets (Ctrl-C to stop)");

    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(256 << 10);
    printer.sink.header(&mut buf)?;
    flush(&mut out, &mut buf)?;

    let mut done = false;
    while !done {
        tokio::select! {
            batch = tracing.rx.recv() => match batch {
                Some(b) => done = printer.batch(&mut buf, b)?,
                None => break,
            },
            () = stop.recv() => break,
            // Holders are re-checked on a clock too (`holders`), also
            // while no event comes.
            () = tokio::time::sleep(crate::holders::MIN_WALK_INTERVAL) => {}
        }
        if !done {
            done = printer.maintain(&mut buf).await?;
        }
        flush(&mut out, &mut buf)?;
    }
    // What the reader still drains is printed too (up to --count).
    let mut failed = Ok(());
    let latency = tracing
        .finish(|b| {
            if !done && failed.is_ok() {
                match printer.batch(&mut buf, b) {
                    Ok(d) => done = d,
                    Err(e) => failed = Err(e),
                }
            }
        })
        .await?;
    failed?;
    flush(&mut out, &mut buf)?;
    let counts = &printer.shown;
    eprintln!("{}", Summary(counts, &latency));
    if let Some(why) = loss_report(&printer.lost) {
        eprintln!("netwatch: {why}");
    }
    Ok(())
}

/// Why events were lost, for the exit message; None when none were.
fn loss_report(loss: &Loss) -> Option<String> {
    let (lost, ring_full, skipped) = (loss.total(), loss.ring_full, loss.skipped);
    let mut causes = Vec::new();
    if ring_full > 0 {
        causes.push(format!("{ring_full} found the ring buffer full (a larger --ring-size holds longer bursts)"));
    }
    if skipped > 0 {
        causes.push(format!(
            "{skipped} were never made: the kernel skipped a hook run that began while another was under way on \
             the same CPU"
        ));
    }
    (lost > 0).then(|| format!("{lost} events were lost: {}", causes.join("; ")))
}

/// One write per batch: the lines of a batch leave together, so a reader
/// such as `grep` sees each line as soon as its batch arrived.
fn flush(out: &mut impl Write, buf: &mut Vec<u8>) -> io::Result<()> {
    if !buf.is_empty() {
        out.write_all(buf)?;
        out.flush()?;
        buf.clear();
    }
    Ok(())
}

/// The events consumer of the live model: each record is decoded, then
/// completed by and applied to the same connection table the live view,
/// `snapshot --for`, `serve` and `netstat -c` keep (without their history
/// or sock_diag re-reads), so every output names the same owner for the
/// same event. It does not go through `Live::next`, which gathers a step's
/// events into one `Vec` for a redraw and re-reads sock_diag every second:
/// `events` prints each batch as it arrives and stops at `--count`.
struct Printer {
    sink: Box<dyn EventSink>,
    filter: Filter,
    clock: WallClock,
    decoder: Decoder,
    table: Table,
    /// Keeps each row's holders current, so later events name them.
    holders: crate::holders::Holders,
    /// Events were lost since the table was last seeded: it is wrong until
    /// re-read from the kernel.
    reseed: bool,
    teardown: bool,
    remaining: Option<u64>,
    /// The events printed (what the filters let through), and every lost
    /// one: what the exit summary counts. (The decoder counts everything
    /// it decodes.)
    shown: Totals,
    /// The lost events by cause, for the exit message.
    lost: Loss,
    /// The listeners' drop counters, read for `listen_drop` events at
    /// most once a [`LISTEN_DROPS_INTERVAL`].
    listen_drops: Option<ListenDrops>,
    listen_drops_due: std::time::Instant,
}

/// Namespaces whose listeners could not be read, each said once.
fn say_unread(warnings: &[String]) {
    warnings.iter().for_each(|w| eprintln!("netwatch: warning: {w}; its listen_drop events are missing"));
}

/// How often `events` reads the listeners' drop counters: a SYN flood
/// shows within a second, for a dump of the listener hash alone in each
/// namespace with a listener.
const LISTEN_DROPS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Printer {
    fn new(args: &EventsArgs, filter: Filter, packet_counters: bool) -> Self {
        let sink: Box<dyn EventSink> = if args.json {
            Box::new(if packet_counters { Json::new() } else { Json::without_packet_counters() })
        } else {
            let text = if packet_counters { Text::new() } else { Text::without_packet_counters() };
            Box::new(if args.workload.show { text.with_workload() } else { text })
        };
        let mut table = Table::new(0);
        table.until_destroy = args.teardown;
        table.time_wait_rows = false;
        // Only what shows or filters it pays for resolving it (a filter
        // expression may name `unit`, `container` or `cgroup`).
        table.event_workloads = args.json || args.workload.show || !filter.is_all();
        Self {
            sink,
            filter,
            clock: WallClock::new(),
            decoder: Decoder::default(),
            table,
            holders: crate::holders::Holders::default(),
            reseed: false,
            teardown: args.teardown,
            remaining: args.count,
            shown: Totals::default(),
            lost: Loss::default(),
            listen_drops: None,
            listen_drops_due: std::time::Instant::now() + LISTEN_DROPS_INTERVAL,
        }
    }

    /// Prints one batch; returns true once `--count` events were printed.
    fn batch(&mut self, out: &mut Vec<u8>, batch: Batch) -> io::Result<bool> {
        match batch {
            Batch::Events(records) => {
                self.decoder.start_batch(&records);
                for r in &records {
                    let Some(mut e) = self.decoder.decode(r) else { continue };
                    // Before any filtering: every event of a socket
                    // completes the next.
                    self.table.complete_and_apply(&mut e);
                    // Destroy is teardown detail unless asked for.
                    let hidden = e.kind == EventKind::Destroy && !self.teardown;
                    if !hidden && self.show(out, &e)? {
                        return Ok(true);
                    }
                }
            }
            Batch::Lost(loss) => {
                self.shown.lost_events += loss.total();
                self.lost += loss;
                self.reseed = true;
                self.sink.lost(out, &loss, jiff::Timestamp::now())?;
            }
            Batch::Procs(procs) => self.holders.on_procs(&mut self.table, &mut self.decoder.listeners, &procs),
            Batch::Dns(answers) => self.table.hosts.learn(&answers),
            Batch::DnsLost(n) => {
                self.table.hosts.lost += n;
                // Not an event lost: names, said apart from the stream.
                eprintln!("netwatch: warning: {}", crate::names::lost_warning(n));
            }
            Batch::TrafficUncounted(n) => {
                if self.shown.count_uncounted(n) {
                    eprintln!("netwatch: warning: {}", crate::probe::traffic::full_warning(n));
                }
            }
        }
        Ok(false)
    }

    /// What events cannot drive: re-reading the kernel's sockets after a
    /// loss, and the listeners' drop counters (`listen_drop` events, into
    /// `out`; true once `--count` events were printed).
    async fn maintain(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        if std::mem::take(&mut self.reseed) {
            if let Err(e) = seed_model(&mut self.decoder, &mut self.table, true).await {
                eprintln!("netwatch: warning: re-reading sockets after lost events failed: {e:#}");
            }
        }
        super::warn_all(self.holders.maintain(&mut self.table, &mut self.decoder.listeners).await);
        let now = std::time::Instant::now();
        let Some(listeners) = self.listen_drops.as_mut().filter(|_| now >= self.listen_drops_due) else {
            return Ok(false);
        };
        self.listen_drops_due = now + LISTEN_DROPS_INTERVAL;
        let namespaces = self.table.listener_namespaces();
        let events = match listeners.poll(&namespaces, |cookie| self.table.opened_ns(cookie)) {
            Ok((events, warnings)) => {
                say_unread(&warnings);
                events
            }
            Err(e) => {
                eprintln!(
                    "netwatch: warning: reading listeners' drop counters failed, no more listen_drop events: {e}"
                );
                self.listen_drops = None;
                return Ok(false);
            }
        };
        for mut e in events {
            self.table.complete(&mut e);
            if self.show(out, &e)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Prints `e` if the filter keeps it; returns true once `--count`
    /// events were printed.
    fn show(&mut self, out: &mut Vec<u8>, e: &crate::event::Event) -> io::Result<bool> {
        if !self.filter.matches(e) {
            return Ok(false);
        }
        self.shown.count(e);
        self.sink.event(out, e, &self.clock)?;
        Ok(self.printed_enough())
    }

    fn printed_enough(&mut self) -> bool {
        match &mut self.remaining {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_mib("1"), Ok(1));
        assert_eq!(parse_ring_mib("64"), Ok(64));
        assert_eq!(parse_ring_mib("1024"), Ok(1024));
        for bad in ["0", "3", "48", "2048", "-1", "1.5", "big"] {
            assert!(parse_ring_mib(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn loss_report_names_each_cause() {
        let at = |ring_full, skipped| Loss { ring_full, skipped };
        assert_eq!(loss_report(&at(0, 0)), None);
        let full = loss_report(&at(5, 0)).unwrap();
        assert!(full.starts_with("5 events were lost: 5 found the ring buffer full"), "{full}");
        assert!(!full.contains("never made"), "{full}");
        let both = loss_report(&at(5, 2)).unwrap();
        assert!(both.contains("5 found the ring buffer full") && both.contains("2 were never made"), "{both}");
        let skipped = loss_report(&at(0, 2)).unwrap();
        assert!(skipped.starts_with("2 events were lost: 2 were never made"), "{skipped}");
    }
}
