//! `netwatch diff BASELINE [CURRENT]`: listeners and established peers that
//! appeared or disappeared since a `netwatch snapshot --json` baseline. The
//! current side is read from the kernel as `snapshot` reads it (no eBPF
//! program), or from a second document. Exit codes are diff(1)'s: 0 no
//! change, 1 changed, 2 trouble.

mod changes;
mod print;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::Args;

pub use changes::{compare, Changes, Direction, Entry, Key, Scope};

use crate::{baseline::Baseline, event::clock::monotonic_ns, seed, table::Table};

#[derive(Debug, Default, Args)]
#[command(after_help = "\
A listener is its protocol, address and port; a peer its remote address and the service port \
(the local port of a connection this host accepted, the remote port of one it opened), so client \
ports, PIDs and namespace inodes changing are not changes. Owners are shown from the side where \
the socket exists. Listeners are TCP LISTEN and bound, unconnected UDP sockets; peers are TCP \
ESTABLISHED connections.

Owners need root (the /proc/*/fd scan); so do other network namespaces (without it, baseline sockets in \
namespaces that cannot be read are left out, not reported as disappeared).

Examples:
  netwatch snapshot --json > base.json
  netwatch diff base.json                  # exit 1 and one line per change
  netwatch diff --listeners base.json      # services only
  netwatch diff --json base.json | jq .appeared
  netwatch diff monday.json tuesday.json   # two saved snapshots")]
pub struct DiffArgs {
    /// A document from `netwatch snapshot --json` (`-` reads stdin)
    #[arg(value_name = "BASELINE")]
    pub baseline: PathBuf,
    /// Compare with this document instead of the sockets now
    #[arg(value_name = "CURRENT")]
    pub current: Option<PathBuf>,
    /// One JSON document instead of text
    #[arg(long)]
    pub json: bool,
    /// Only listeners, no peers
    #[arg(long)]
    pub listeners: bool,
    /// Only sockets with this port at either end (repeatable)
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Only sockets of this network namespace: a name from `ip netns`, a path such as
    /// /proc/PID/ns/net, or an inode number (repeatable)
    #[arg(long = "netns", value_name = "NETNS")]
    pub netns: Vec<String>,
}

pub fn run(args: &DiffArgs) -> ExitCode {
    match diff(args) {
        Ok(changes) if changes.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) if crate::is_broken_pipe(&e) => ExitCode::from(1),
        Err(e) => {
            eprintln!("netwatch diff: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn diff(args: &DiffArgs) -> Result<Changes> {
    let netns = super::netns::resolve_all(&args.netns)?;
    let mut before = Baseline::load(&args.baseline)?;
    let after = match &args.current {
        Some(path) => Baseline::load(path)?,
        None => {
            let (after, unread) = now(&netns)?;
            leave_out_unread(&mut before, &unread);
            after
        }
    };
    let scope = Scope { netns, ports: args.ports.clone(), listeners_only: args.listeners };
    let changes = compare(&before, &after, &scope, &changes::ephemeral_range());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        print::json(&mut out, &changes, &before, args)?;
    } else {
        print::text(&mut out, &changes)?;
    }
    std::io::Write::flush(&mut out).context("writing to stdout")?;
    Ok(changes)
}

/// The sockets now, with owners, as `netwatch snapshot` reads them, and the
/// namespaces whose sockets could not be read (no privilege to enter them).
fn now(netns: &[u32]) -> Result<(Baseline, Vec<u32>)> {
    let seed = seed::seed_all().context("enumerating sockets")?;
    super::warn_all(&seed.stats.warnings);
    super::netns::require_read(netns, &seed)?;
    let mut table = Table::new(0);
    table.seed(seed.sockets, monotonic_ns());
    Ok((Baseline::from_table(&table), seed.stats.namespaces_unread))
}

/// A namespace netwatch could not read now (not root) has sockets nobody
/// knows: the baseline's sockets there are left out rather than reported as
/// disappeared, and stderr says so.
fn leave_out_unread(before: &mut Baseline, unread: &[u32]) {
    let count = before.sockets.len();
    before.sockets.retain(|s| !unread.contains(&s.netns));
    let left_out = count - before.sockets.len();
    if left_out > 0 {
        let list: Vec<String> = unread.iter().map(u32::to_string).collect();
        eprintln!(
            "netwatch: warning: {left_out} baseline socket(s) in network namespace(s) {} not compared: \
             they could not be read now (root needed)",
            list.join(", ")
        );
    }
}
