//! net-tools `netstat`, flag for flag and byte for byte: `netwatch -tulpn`
//! prints what `netstat -tulpn` prints, so pipelines written for netstat
//! keep working (issue 4).
//!
//! Each view reads what netstat reads, from our own network namespace:
//! connections from `/proc/net/{tcp,udp,udplite,raw}{,6}` (through the seed
//! module's parser) and `/proc/net/unix`, owners from one `/proc/*/fd`
//! scan, routes, interfaces, counters and groups from their `/proc/net`
//! files and the interface ioctls. The formatting follows net-tools 2.10
//! (`netstat.c`, `lib/inet.c`, `lib/inet_gr.c`, `lib/interface.c`,
//! `statistics.c`); each module names the function it mirrors.
//!
//! `-c` repeats the view every second; for connection views it also lists
//! the connections that opened and closed between two refreshes, from the
//! live eBPF model ([`continuous`]).

pub mod addr;
pub mod conn;
mod continuous;
pub mod flags;
pub mod groups;
pub mod iface;
mod ifsys;
pub mod inet;
pub mod names;
pub mod progs;
pub mod route;
mod services;
pub mod stats;
mod stats_tables;
pub mod unix;

use std::{io::Write as _, path::Path, time::Duration};

use anyhow::{Context as _, Result};

pub use flags::NetstatArgs;
use flags::{Af, Opts, View};
use names::Names;

/// The pause between two refreshes of `-c`.
const INTERVAL: Duration = Duration::from_secs(1);

/// Runs the netstat view the flags ask for. A usage error (contradictory
/// flags) exits with status 2, as clap does for unknown ones.
pub fn run(args: &NetstatArgs) -> Result<()> {
    let (view, o) = match args.resolve() {
        Ok(resolved) => resolved,
        Err(msg) => {
            eprintln!("netwatch: {msg}");
            std::process::exit(2);
        }
    };
    let mut names = Names::new(o.num_host, o.num_port, o.num_user);
    let proc_root = Path::new("/proc");
    match view {
        View::Interfaces => repeat(&o, |out, first| interfaces(out, &o, first)),
        View::Connections if o.continuous => continuous::run(&o, &mut names),
        View::Statistics => {
            let mut out = Vec::new();
            print_view(&mut out, view, &o, &mut names, proc_root)?;
            emit(&out)
        }
        View::Route | View::Connections => repeat(&o, |out, _| print_view(out, view, &o, &mut names, proc_root)),
    }
}

/// One listing of a /proc-based view; output stays in `out` even on error.
fn print_view(out: &mut Vec<u8>, view: View, o: &Opts, names: &mut Names, proc_root: &Path) -> Result<()> {
    let net = proc_root.join("net");
    match view {
        View::Statistics => statistics(out, o, &net),
        View::Route => routes(out, o, names, &net),
        View::Connections => {
            let snap = conn::read(o, proc_root)?;
            out.reserve(
                snap.inet.iter().flat_map(|(_, t)| t).flat_map(|t| t.rows.iter()).map(Vec::len).sum::<usize>() * 160,
            );
            conn::render(out, &snap, o, names)
        }
        View::Interfaces => interfaces(out, o, true),
    }
}

fn emit(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")
}

/// Prints once, or every second with `-c` (netstat's `wait_continous`).
fn repeat(o: &Opts, mut view: impl FnMut(&mut Vec<u8>, bool) -> Result<()>) -> Result<()> {
    let mut first = true;
    loop {
        let mut out = Vec::new();
        let result = view(&mut out, first);
        emit(&out)?;
        result?;
        if !o.continuous {
            return Ok(());
        }
        first = false;
        std::thread::sleep(INTERVAL);
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn routes(out: &mut Vec<u8>, o: &Opts, names: &mut Names, net: &Path) -> Result<()> {
    // `-r` swaps one and two `-e`: plain -r shows MSS/Window/irtt.
    let ext = match o.exp {
        1 => 2,
        2 => 1,
        n => n,
    };
    let numeric = o.num_host || o.symbolic;
    let families = if o.families.is_empty() { vec![Af::Inet] } else { o.families.clone() };
    for af in families {
        match af {
            Af::Inet => route::print4(out, &route::parse4(&read(&net.join("route"))?)?, ext, numeric, names),
            Af::Inet6 => route::print6(out, &route::parse6(&read(&net.join("ipv6_route"))?), numeric, names),
            Af::Unix => unreachable!("rejected by NetstatArgs::resolve"),
        }
    }
    Ok(())
}

fn interfaces(out: &mut Vec<u8>, o: &Opts, first: bool) -> Result<()> {
    if first {
        out.extend_from_slice(b"Kernel Interface table\n");
    }
    let print = if o.exp > 1 { iface::print_long } else { iface::print_short };
    if o.exp <= 1 {
        out.extend_from_slice(iface::SHORT_HEADER.as_bytes());
    }
    for i in ifsys::collect(o.all)? {
        print(out, &i);
    }
    Ok(())
}

fn statistics(out: &mut Vec<u8>, o: &Opts, net: &Path) -> Result<()> {
    let select = stats::Select { raw: o.raw, tcp: o.tcp, udp: o.udp, sctp: o.sctp };
    if o.families.first() == Some(&Af::Inet6) {
        stats::print_inet6(out, select, &read(&net.join("snmp6"))?, &read(&net.join("snmp"))?);
    } else {
        let netstat = std::fs::read_to_string(net.join("netstat")).ok();
        let sctp = std::fs::read_to_string(net.join("sctp/snmp")).ok();
        stats::print_inet(out, select, &read(&net.join("snmp"))?, netstat.as_deref(), sctp.as_deref());
    }
    Ok(())
}

#[cfg(test)]
#[path = "fixture_tests.rs"]
mod fixture_tests;
