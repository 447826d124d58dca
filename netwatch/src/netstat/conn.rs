//! The connection views (`-t -u -U -w -x -g`, `-a -l`, `-e -p -o -W -n`):
//! the sections, in netstat.c `main()` order, of our own network
//! namespace, read from `/proc/net` as netstat reads it.

use std::{fs, io, net::IpAddr, path::Path};

use anyhow::{anyhow, Context as _, Result};

use super::{
    addr::pad,
    flags::Opts,
    groups::{self, Group},
    inet::{self, InetRow, Kind},
    names::Names,
    progs::Programs,
    unix::{self, UnixRow},
};
use crate::seed::diag::DiagSocket;

/// One table file: its Proto label and rows, or `None` when it is missing.
pub struct Table {
    pub prot: &'static str,
    pub rows: Option<Vec<InetRow>>,
}

/// Everything one refresh prints, read before any formatting.
#[derive(Default)]
pub struct Snapshot {
    /// Sections in print order; each has its IPv4 and/or IPv6 file.
    pub inet: Vec<(Kind, Vec<Table>)>,
    /// `Some(true)` when the SCTP files exist (netwatch does not list SCTP).
    pub sctp: Option<bool>,
    /// `-g`: each file is `None` when not asked for, `Some(None)` when missing.
    pub groups: Option<[Option<Option<Vec<Group>>>; 2]>,
    pub unix: Option<Option<Vec<UnixRow>>>,
    pub programs: Programs,
}

/// `(servers and established)` and friends.
pub fn scope(o: &Opts) -> &'static str {
    match (o.all, o.listening) {
        (true, _) => "(servers and established)",
        (false, true) => "(only servers)",
        (false, false) => "(w/o servers)",
    }
}

fn wants_inet(o: &Opts) -> bool {
    !o.arg || o.tcp || o.sctp || o.udp || o.udplite || o.raw
}

/// Whether the flags ask for `kind`'s sockets (no protocol flag: all).
pub(super) fn wants(o: &Opts, kind: Kind) -> bool {
    !o.arg
        || match kind {
            Kind::Tcp => o.tcp,
            Kind::Udp => o.udp,
            Kind::UdpLite => o.udplite,
            Kind::Raw => o.raw,
        }
}

/// Reads every file the flags ask for; the `/proc/*/fd` scan for `-p`
/// runs alongside on its own thread.
pub fn read(o: &Opts, proc_root: &Path) -> Result<Snapshot> {
    let net = proc_root.join("net");
    std::thread::scope(|s| {
        let progs = (o.programs && (wants_inet(o) || !o.arg || o.unix)).then(|| s.spawn(|| Programs::load(proc_root)));
        let mut snap = read_tables(o, &net)?;
        if let Some(progs) = progs {
            snap.programs = progs.join().map_err(|_| anyhow!("the /proc scan panicked"))??;
        }
        Ok(snap)
    })
}

fn read_tables(o: &Opts, net: &Path) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let diag_socket = DiagSocket::open().ok();
    for kind in [Kind::Tcp, Kind::Udp, Kind::UdpLite, Kind::Raw] {
        if !wants(o, kind) {
            continue;
        }
        let [v4, v6] = kind.files();
        // TCP through sock_diag when its fields are /proc's (all but -o
        // timers), and only for the real /proc: ten times faster to read.
        let diag = (kind == Kind::Tcp && !o.timers && net == Path::new("/proc/net"))
            .then_some(&diag_socket)
            .and_then(Option::as_ref);
        let mut tables = Vec::new();
        // Both families from one dump when the kernel offers it, else one
        // dump per family.
        let mut both = diag.and_then(inet::dump_tcp_both).map(|[v4, v6]| [Some(v4), Some(v6)]);
        for (i, ((file, prot, layout), on)) in [(v4, !o.arg || o.inet), (v6, !o.arg || o.inet6)].into_iter().enumerate()
        {
            if !on {
                continue;
            }
            let dumped = match both.as_mut() {
                Some(both) => both[i].take(),
                None => diag.and_then(|d| inet::dump_tcp(d, layout)),
            };
            if let Some(rows) = dumped {
                tables.push(Table { prot, rows: Some(rows) });
                continue;
            }
            let path = net.join(file);
            let rows = read_optional(&path, |p| fs::read_to_string(p))?;
            let rows = rows.map(|text| inet::parse(layout, &path.display().to_string(), &text)).transpose()?;
            tables.push(Table { prot, rows });
        }
        snap.inet.push((kind, tables));
    }
    if !o.arg || o.sctp {
        snap.sctp = Some(net.join("sctp").join("eps").exists());
    }
    if o.groups {
        let read = |on: bool, file: &str, parse: fn(&str) -> Vec<Group>| -> Result<_> {
            let text = on.then(|| read_optional(&net.join(file), |p| fs::read_to_string(p))).transpose()?;
            Ok(text.map(|t| t.map(|t| parse(&t))))
        };
        snap.groups = Some([
            read(!o.arg || o.inet, "igmp", groups::parse_igmp)?,
            read(!o.arg || o.inet6, "igmp6", groups::parse_igmp6)?,
        ]);
    }
    if !o.arg || o.unix {
        snap.unix = Some(read_optional(&net.join("unix"), |p| fs::read(p))?.map(|t| unix::parse(&t)).transpose()?);
    }
    Ok(snap)
}

/// The file read with `read`, or `None` when it is missing or closed to us.
fn read_optional<T>(path: &Path, read: fn(&Path) -> io::Result<T>) -> Result<Option<T>> {
    match read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Every address the snapshot will print under these flags.
fn addresses(snap: &Snapshot, o: &Opts) -> Vec<IpAddr> {
    let rows = snap.inet.iter().flat_map(|(kind, tables)| {
        tables.iter().filter_map(|t| t.rows.as_ref()).flatten().filter(move |r| inet::shown(*kind, r, o))
    });
    rows.flat_map(|r| [r.local.ip(), r.remote.ip()]).collect()
}

/// Formats a snapshot as netstat prints it. `Err` after printing when a
/// requested protocol is missing from this kernel (netstat exits 1 there).
pub fn render(out: &mut Vec<u8>, snap: &Snapshot, o: &Opts, names: &mut Names) -> Result<()> {
    if !o.num_host {
        names.prefetch(addresses(snap, o));
    }
    let progs = &snap.programs;
    if o.programs {
        progs.warn();
    }
    if wants_inet(o) {
        inet_header(out, o);
    }
    let missing = |name: &str| -> Result<()> {
        if !o.noprot && (o.arg || o.verbose) {
            eprintln!("netwatch: no support for `{name}' on this system.");
        }
        if !o.noprot && o.arg {
            return Err(anyhow!("no support for `{name}' on this system"));
        }
        Ok(())
    };
    for (kind, tables) in &snap.inet {
        // SCTP comes between TCP and UDP in netstat's order.
        if *kind == Kind::Udp {
            sctp(snap, o, &missing)?;
        }
        // A missing IPv4 file fails the section after its IPv6 rows.
        let mut failed = Ok(());
        for table in tables {
            match &table.rows {
                Some(rows) => {
                    for row in rows.iter().filter(|r| inet::shown(*kind, r, o)) {
                        inet::format_row(out, *kind, table.prot, row, o, names, progs);
                    }
                }
                None if table.prot.ends_with('6') => {}
                None => failed = missing(&format!("AF INET ({})", kind.files()[0].0)),
            }
        }
        failed?;
    }
    if !snap.inet.iter().any(|(k, _)| *k == Kind::Udp) {
        sctp(snap, o, &missing)?;
    }
    if let Some([v4, v6]) = &snap.groups {
        out.extend_from_slice(groups::HEADER.as_bytes());
        let failed = if matches!(v4, Some(None)) { missing("AF INET (igmp)") } else { Ok(()) };
        for g in [v4, v6].into_iter().flatten().flatten().flatten() {
            groups::format(out, g, names);
        }
        failed?;
    }
    if let Some(rows) = &snap.unix {
        unix::header(out, o);
        match rows {
            Some(rows) => rows.iter().filter(|r| unix::shown(r, o)).for_each(|r| unix::format_row(out, r, o, progs)),
            None => missing("AF UNIX")?,
        }
    }
    Ok(())
}

fn sctp(snap: &Snapshot, o: &Opts, missing: &dyn Fn(&str) -> Result<()>) -> Result<()> {
    match snap.sctp {
        Some(false) => missing("AF INET (sctp)"),
        Some(true) if o.sctp || o.verbose => {
            eprintln!("netwatch: SCTP sockets are not listed (netstat would show them)");
            Ok(())
        }
        _ => Ok(()),
    }
}

fn inet_header(out: &mut Vec<u8>, o: &Opts) {
    out.extend_from_slice(b"Active Internet connections ");
    out.extend_from_slice(scope(o).as_bytes());
    out.extend_from_slice(b"\nProto Recv-Q Send-Q Local Address           Foreign Address         State      ");
    if o.exp > 1 {
        out.extend_from_slice(b" User       Inode     ");
    }
    if o.programs {
        out.push(b' ');
        pad(out, b"PID/Program name", 20);
    }
    if o.timers {
        out.extend_from_slice(b" Timer");
    }
    out.push(b'\n');
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
