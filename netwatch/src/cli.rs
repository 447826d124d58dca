//! Command-line definition (clap). Parsing only: validation that needs the
//! system happens in the commands.

use clap::{error::ErrorKind, CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "netwatch",
    version,
    args_conflicts_with_subcommands = true,
    about = "Live TCP and UDP connection tracer: every connection, with its process, as the kernel sees it",
    long_about = "netwatch traces TCP connections with eBPF programs on the kernel's TCP state \
                  machine: every connect, accept, state change and close, and every UDP \
                  socket's close, with the owning process, including connections too \
                  short-lived for netstat or ss to see.\n\n\
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
    Events(crate::cmd::events::EventsArgs),
    /// Print the table of sockets once, with per-state counts, and exit
    #[command(after_help = "Examples:\n  netwatch snapshot\n  netwatch snapshot --json > base.json\n  \
                            netwatch snapshot --for 10s     # also every connection that came and went")]
    Snapshot(crate::cmd::snapshot::SnapshotArgs),
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
    if let Some(word) = stray_word(&err) {
        // clap calls any word after netstat flags a subcommand.
        let msg = format!(
            "unexpected argument '{word}': the netstat views take flags only (net-tools netstat ignores \
             extra words; netwatch refuses them rather than guess what they meant)"
        );
        Cli::command().error(ErrorKind::UnknownArgument, msg).exit();
    }
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

/// The word clap took for a subcommand after netstat flags, when it names
/// none (`netwatch -tanp 2`, as netstat's delay).
fn stray_word(err: &clap::Error) -> Option<String> {
    if err.kind() != ErrorKind::ArgumentConflict {
        return None;
    }
    let clap::error::ContextValue::String(word) = err.get(clap::error::ContextKind::InvalidSubcommand)? else {
        return None;
    };
    Cli::command().find_subcommand(word).is_none().then(|| word.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
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

    #[test]
    fn a_word_after_netstat_flags_is_named_as_stray() {
        let stray = |args: &[&str]| stray_word(&Cli::try_parse_from(args).unwrap_err());
        assert_eq!(stray(&["netwatch", "-tanp", "2"]).as_deref(), Some("2"));
        assert_eq!(stray(&["netwatch", "-s", "extra"]).as_deref(), Some("extra"));
        // A real subcommand after flags keeps clap's own message.
        assert_eq!(stray(&["netwatch", "-t", "events"]), None);
    }

    #[test]
    fn top_level_cli_takes_netstat_flags_and_subcommands() {
        let cli = Cli::try_parse_from(["netwatch", "-tulpn"]).unwrap();
        assert!(cli.command.is_none() && cli.netstat.requested() && cli.netstat.tcp);
        let cli = Cli::try_parse_from(["netwatch", "events", "--json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Events(_))) && !cli.netstat.requested());
        assert!(!Cli::try_parse_from(["netwatch"]).unwrap().netstat.requested());
        assert!(Cli::try_parse_from(["netwatch", "-t", "events"]).is_err());
    }
}
