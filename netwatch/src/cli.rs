//! Command-line definition (clap). Parsing only: validation that needs the
//! system happens in the commands.

use clap::{error::ErrorKind, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "netwatch",
    version,
    args_conflicts_with_subcommands = true,
    about = "Live TCP connection tracer: every connection, with its process, as the kernel sees it",
    long_about = "netwatch traces TCP connections with eBPF programs on the kernel's TCP state \
                  machine: every connect, accept, state change and close, with the owning \
                  process, including connections too short-lived for netstat or ss to see.\n\n\
                  Needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// net-tools netstat's flags: `netwatch -tulpn` prints what `netstat -tulpn` prints.
    #[command(flatten)]
    pub(crate) netstat: crate::netstat::NetstatArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Stream connection events, one line each (the default when stdout is not a terminal)
    #[command(after_help = "Examples:\n  netwatch events\n  netwatch events --json --port 443\n  \
                            netwatch events -6 --pid 1234 | grep close\n  \
                            netwatch events --netns /proc/4242/ns/net")]
    Events(EventsArgs),
    /// Print the table of sockets once, with per-state counts, and exit
    #[command(after_help = "Examples:\n  netwatch snapshot\n  netwatch snapshot --json > base.json\n  \
                            netwatch snapshot --for 10s     # also every connection that came and went")]
    Snapshot(SnapshotArgs),
    /// Run as a service: Prometheus metrics, JSON/syslog export and alerts, until SIGTERM
    #[command(after_help = "Examples:\n  netwatch serve\n  netwatch serve --config /etc/netwatch/netwatch.toml\n  \
                            netwatch serve --metrics 127.0.0.1:9977 --export-file /var/log/netwatch.jsonl \\\n      \
                            --alert syn_backlog=100/30s --baseline base.json")]
    Serve(Box<crate::cmd::serve::ServeArgs>),
    /// Monitoring plugin (Nagios, Icinga, NRPE): thresholds on connection counts per state, port
    /// or remote address; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
    Check(crate::cmd::check::CheckArgs),
    /// Listeners and established peers that appeared or disappeared since a baseline saved with
    /// `netwatch snapshot --json`; exit 0 no change, 1 changed, 2 error
    Diff(crate::cmd::diff::DiffArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(crate::cmd::docs::CompletionsArgs),
    /// Print the man page (roff), or write one page per command into a directory
    Man(crate::cmd::docs::ManArgs),
}

/// Parses the process's command line, exiting on errors as clap does, except
/// that `netwatch check` follows the monitoring-plugin convention: a bad
/// command line prints `NETWATCH UNKNOWN - ...` on stdout and exits 3
/// (clap's exit code 2 would read as CRITICAL to a scheduler).
pub fn parse() -> Cli {
    let err = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    let is_check = std::env::args_os().nth(1).is_some_and(|a| a == "check");
    let informational = matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !is_check || informational {
        err.exit();
    }
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or("bad arguments");
    let (_, line) = crate::cmd::check::unknown(first.trim_start_matches("error: "));
    println!("{line}");
    eprint!("{rendered}");
    std::process::exit(i32::from(crate::plugin::Status::Unknown.code()));
}

#[derive(Debug, Default, Args)]
pub struct SnapshotArgs {
    /// One JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// Watch the kernel's events for this long (e.g. 500ms, 10s, 2m) first, then print the live
    /// table and the connections that opened and closed meanwhile (needs root)
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub watch: Option<std::time::Duration>,
    /// How many closed connections to keep for --for
    #[arg(long, value_name = "N", default_value_t = 100_000, requires = "watch")]
    pub history: usize,
}

/// `500ms`, `10s`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?} (try 500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use ms, s, m or h)")),
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

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
    /// Exit after this many printed events
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Size of the kernel's event ring buffer, in MiB (a power of two, 1 to
    /// 1024): how long a burst it holds while netwatch is descheduled,
    /// about 130,000 events per 16 MiB
    #[arg(long = "ring-size", value_name = "MIB", default_value_t = 16, value_parser = parse_ring_mib)]
    pub ring_mib: u32,
}

/// A ring size in MiB: the kernel wants a power of two number of pages.
fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let mib: u32 = s.parse().map_err(|_| format!("`{s}` is not a whole number of MiB"))?;
    if !(1..=1024).contains(&mib) || !mib.is_power_of_two() {
        return Err(format!("{mib} MiB: the ring size must be a power of two from 1 to 1024"));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

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
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(std::time::Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(std::time::Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(std::time::Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn events_flags_parse_and_conflict() {
        let cli =
            Cli::try_parse_from(["netwatch", "events", "--json", "--pid", "5", "--port", "80", "--port", "443", "-6"])
                .unwrap();
        let Some(Command::Events(a)) = cli.command else { panic!("not events") };
        assert!(a.json && a.ipv6 && !a.ipv4);
        assert_eq!((a.pids, a.ports), (vec![5], vec![80, 443]));
        assert!(Cli::try_parse_from(["netwatch", "events", "-4", "-6"]).is_err());
        assert!(Cli::try_parse_from(["netwatch", "events", "--port", "70000"]).is_err());
        assert!(Cli::try_parse_from(["netwatch", "events", "--bogus"]).is_err());
    }
}
