//! `netwatch check`'s command line. Several checks fit in one call, as in
//! check_disk: each check is a run of selectors (`--state`, `--port`,
//! `--remote`) followed by its thresholds (`-w`, `-c`, `--label`); the next
//! selector after a threshold starts the next check. clap parses the flags;
//! their order, which clap keeps as argument indices, decides the grouping.

use std::net::IpAddr;

use clap::{error::ErrorKind, ArgMatches, Args, FromArgMatches};

use super::select::Check;
use crate::{plugin::Threshold, socket::TcpState};

const AFTER_HELP: &str = "\
Selectors of one check combine (a socket must match each kind given; several values of one kind \
are alternatives); -w/-c/--label after them close the check. Counts are TCP sockets; without \
--state a check counts every state but LISTEN (connections, not listeners). --port matches the \
local or the remote port; --remote the remote address (IPv4-mapped IPv6 counts as IPv4).

Ranges (monitoring-plugins syntax): 10 = alert above 10; 10: = below 10; ~:10 = above 10; \
10:20 = outside 10..20; @10:20 = inside 10..20.

Output: one line, `NETWATCH STATUS - text | perfdata`, perfdata `label=value;warn;crit;0`; \
exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments, no access). Several checks: the \
worst status.

Privileges: none for the network namespace netwatch runs in (sock_diag needs no root). Other \
namespaces (containers, --netns) need root: CAP_SYS_PTRACE to find them through their processes \
and read them, CAP_SYS_ADMIN for a namespace no process lives in. A --netns that cannot be read \
is UNKNOWN, never a count of 0. No eBPF program is loaded: it reads the kernel's socket tables once, which costs a few \
milliseconds, so it suits cron and NRPE.

Examples:
  netwatch check --state ESTABLISHED -w 500 -c 1000
  netwatch check --port 443 -w 200 -c 400 --state SYN_RECV -w 50 -c 100
  netwatch check --port 443 --state SYN_RECV -c 100 --label https_half_open
  netwatch check --remote 10.0.0.5 -w 20 -c 50
  netwatch check --state LISTEN --port 22 -c 1:   # critical unless something listens on 22";

/// The flags as clap sees them, one list per flag.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
struct Flags {
    /// Count TCP sockets in this state: ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2,
    /// TIME_WAIT, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING (starts or extends a check)
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    states: Vec<TcpState>,
    /// Count sockets with this port at either end (starts or extends a check)
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// Count sockets connected to this remote address (starts or extends a check)
    #[arg(long = "remote", value_name = "ADDRESS")]
    remotes: Vec<IpAddr>,
    /// Warning range for the check before it
    #[arg(short = 'w', long = "warning", value_name = "RANGE", value_parser = Threshold::parse, allow_hyphen_values = true)]
    warnings: Vec<Threshold>,
    /// Critical range for the check before it
    #[arg(short = 'c', long = "critical", value_name = "RANGE", value_parser = Threshold::parse, allow_hyphen_values = true)]
    criticals: Vec<Threshold>,
    /// Perfdata label for the check before it (default: made from its selectors, e.g. port_443)
    #[arg(short = 'l', long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Only sockets of this network namespace: a name from `ip netns`, a path such as
    /// /proc/PID/ns/net, or the namespace's inode number (repeatable; default: every namespace)
    #[arg(long = "netns", value_name = "NETNS")]
    netns: Vec<String>,
    /// Print on stderr what was worked around while reading the sockets (fallbacks, namespaces
    /// without access); quiet by default, as cron mails whatever a job prints
    #[arg(short = 'v', long)]
    verbose: bool,
}

/// `netwatch check`'s arguments, grouped into checks.
#[derive(Clone, Debug, Default)]
pub struct CheckArgs {
    pub checks: Vec<Check>,
    pub netns: Vec<String>,
    pub verbose: bool,
}

fn parse_state(s: &str) -> Result<TcpState, String> {
    netwatch_common::tcp::from_name(&s.replace('-', "_"))
        .and_then(TcpState::from_u8)
        .ok_or_else(|| format!("unknown TCP state {s:?} (try ESTABLISHED, SYN_RECV, TIME_WAIT, LISTEN, ...)"))
}

/// One flag occurrence, in command-line order.
enum Item {
    State(TcpState),
    Port(u16),
    Remote(IpAddr),
    Warning(Threshold),
    Critical(Threshold),
    Label(String),
}

impl Item {
    const fn is_selector(&self) -> bool {
        matches!(self, Self::State(_) | Self::Port(_) | Self::Remote(_))
    }
}

/// Each value of flag `id` paired with its position on the command line.
fn positioned<T: Clone>(m: &ArgMatches, id: &str, values: Vec<T>, wrap: fn(T) -> Item) -> Vec<(usize, Item)> {
    let indices: Vec<usize> = m.indices_of(id).map(Iterator::collect).unwrap_or_default();
    indices.into_iter().zip(values).map(|(i, v)| (i, wrap(v))).collect()
}

fn group(items: Vec<(usize, Item)>) -> Result<Vec<Check>, String> {
    let mut checks: Vec<Check> = Vec::new();
    // Whether the current check has had a threshold or label: a selector
    // after one starts the next check.
    let mut closed = true;
    for (_, item) in items {
        if closed && (item.is_selector() || checks.is_empty()) {
            checks.push(Check::default());
        }
        let check = checks.last_mut().ok_or("internal: no check")?;
        closed = !item.is_selector();
        let dup = |what: &str| format!("{what} given twice for check `{}`", check.label());
        match item {
            Item::State(s) => check.states.push(s),
            Item::Port(p) => check.ports.push(p),
            Item::Remote(r) => check.remotes.push(r.to_canonical()),
            Item::Warning(_) if check.warning.is_some() => return Err(dup("-w")),
            Item::Critical(_) if check.critical.is_some() => return Err(dup("-c")),
            Item::Label(_) if check.custom_label.is_some() => return Err(dup("--label")),
            Item::Warning(t) => check.warning = Some(t),
            Item::Critical(t) => check.critical = Some(t),
            Item::Label(l) => check.custom_label = Some(l),
        }
    }
    if checks.is_empty() {
        return Err("nothing to check: give a selector (--state, --port, --remote) and its -w/-c ranges, \
                    e.g. --state ESTABLISHED -w 500 -c 1000"
            .to_owned());
    }
    Ok(checks)
}

impl FromArgMatches for CheckArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let f = Flags::from_arg_matches(m)?;
        let mut items = positioned(m, "states", f.states, Item::State);
        items.extend(positioned(m, "ports", f.ports, Item::Port));
        items.extend(positioned(m, "remotes", f.remotes, Item::Remote));
        items.extend(positioned(m, "warnings", f.warnings, Item::Warning));
        items.extend(positioned(m, "criticals", f.criticals, Item::Critical));
        items.extend(positioned(m, "labels", f.labels, Item::Label));
        items.sort_by_key(|(i, _)| *i);
        let checks = group(items).map_err(|e| clap::Error::raw(ErrorKind::ArgumentConflict, e))?;
        Ok(Self { checks, netns: f.netns, verbose: f.verbose })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for CheckArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Flags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Flags::augment_args_for_update(cmd)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CheckArgs,
    }

    fn parse(args: &[&str]) -> Result<CheckArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("check").chain(args.iter().copied())).map(|c| c.args)
    }

    fn thresholds(c: &Check) -> (Option<&str>, Option<&str>) {
        (c.warning.as_ref().map(Threshold::as_str), c.critical.as_ref().map(Threshold::as_str))
    }

    #[test]
    fn thresholds_close_the_check_before_them() {
        let a = parse(&[
            "--state",
            "established",
            "-w",
            "500",
            "-c",
            "1000",
            "--port",
            "443",
            "--state",
            "SYN-RECV",
            "-c",
            "@5:",
            "--remote",
            "::ffff:10.0.0.5",
            "--label",
            "db",
        ])
        .unwrap();
        assert_eq!(a.checks.len(), 3);
        let [est, https, db] = &a.checks[..] else { unreachable!() };
        assert_eq!(
            (est.states.as_slice(), thresholds(est)),
            (&[TcpState::Established][..], (Some("500"), Some("1000")))
        );
        assert_eq!((https.states.as_slice(), https.ports.as_slice()), (&[TcpState::SynRecv][..], &[443u16][..]));
        assert_eq!(thresholds(https), (None, Some("@5:")));
        assert_eq!(db.remotes, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(db.label(), "db");
    }

    #[test]
    fn thresholds_first_check_every_connection() {
        let a = parse(&["-w", "10", "-c", "20", "--netns", "x", "-v"]).unwrap();
        assert!(a.verbose);
        assert_eq!(a.checks.len(), 1);
        assert_eq!(a.checks[0].label(), "connections");
        assert_eq!(a.netns, vec!["x".to_owned()]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        for bad in [
            &[][..],
            &["--state", "BOGUS", "-c", "1"],
            &["--port", "70000"],
            &["--remote", "example.com"],
            &["--port", "1", "-w", "5", "-w", "6"],
            &["--port", "1", "-c", "x"],
            &["--port", "1", "-c", "20:10"],
            &["--bogus"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
