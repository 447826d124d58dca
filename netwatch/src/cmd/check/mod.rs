//! `netwatch check`: a monitoring plugin (Nagios, Icinga, NRPE, cron) on
//! connection counts. One-shot like `netwatch snapshot`: it reads the
//! kernel's sockets once (sock_diag) without loading any eBPF program and
//! without the `/proc/*/fd` owner scan, which counts do not need.
//!
//! Every failure, including bad arguments (see [`crate::cli::parse`]), is
//! reported as `NETWATCH UNKNOWN - ...` with exit code 3, never as clap's
//! or anyhow's usual exit codes, which a scheduler would read as WARNING or
//! CRITICAL.

mod args;
mod select;

use std::{io::Write as _, process::ExitCode};

use anyhow::{Context as _, Result};

pub use args::CheckArgs;
pub use select::Check;

use crate::{
    event::clock::monotonic_ns,
    plugin::{status_line, Perfdata, Status},
    seed::{self, SeedOptions},
    table::Table,
};

/// The service name monitoring plugins start their line with.
pub const SERVICE: &str = "NETWATCH";

pub fn run(args: &CheckArgs) -> ExitCode {
    let (status, line) = match evaluate(args) {
        Ok(report) => report,
        Err(e) => unknown(&format!("{e:#}")),
    };
    // Nothing useful is left to do if stdout is gone; the code still counts.
    let _ = writeln!(std::io::stdout(), "{line}");
    ExitCode::from(status.code())
}

/// The UNKNOWN line for an error.
pub fn unknown(message: &str) -> (Status, String) {
    (Status::Unknown, status_line(SERVICE, Status::Unknown, message, &[]))
}

fn evaluate(args: &CheckArgs) -> Result<(Status, String)> {
    let netns = super::netns::resolve_all(&args.netns)?;
    let opts = SeedOptions { owners: false, ..SeedOptions::default() };
    let seed = seed::seed(&opts).context("reading the kernel's socket tables")?;
    if args.verbose {
        super::warn_all(&seed.stats.warnings);
    }
    super::netns::require_read(&netns, &seed)?;
    let mut table = Table::new(0);
    table.seed(seed.sockets, monotonic_ns());
    let rows: Vec<_> = table.rows().filter(|r| netns.is_empty() || netns.contains(&r.netns)).collect();
    let counts: Vec<u64> = args.checks.iter().map(|c| rows.iter().filter(|r| c.matches(r)).count() as u64).collect();
    Ok(report(&args.checks, &counts))
}

/// The status line for checks and their counts: alerting checks first in
/// the text, with the range they broke; perfdata in command-line order.
pub fn report(checks: &[Check], counts: &[u64]) -> (Status, String) {
    let mut status = Status::Ok;
    let (mut alerts, mut fine) = (Vec::new(), Vec::new());
    let mut perfdata: Vec<Perfdata> = Vec::new();
    for (check, &count) in checks.iter().zip(counts) {
        let s = check.status(count);
        status = status.worst(s);
        let range = match s {
            Status::Critical => check.critical.as_ref(),
            Status::Warning => check.warning.as_ref(),
            _ => None,
        };
        match range {
            Some(r) => alerts.push(format!("{} {count} ({} {})", check.label(), s.name(), r.as_str())),
            None => fine.push(format!("{} {count}", check.label())),
        }
        perfdata.push(check.perfdata(count));
    }
    alerts.extend(fine);
    (status, status_line(SERVICE, status, &alerts.join(", "), &perfdata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Threshold;

    fn check(ports: &[u16], w: Option<&str>, c: Option<&str>) -> Check {
        Check {
            ports: ports.to_vec(),
            warning: w.map(|w| Threshold::parse(w).unwrap()),
            critical: c.map(|c| Threshold::parse(c).unwrap()),
            ..Check::default()
        }
    }

    #[test]
    fn worst_check_decides() {
        let checks = [check(&[80], Some("5"), Some("10")), check(&[443], Some("1"), None)];
        assert_eq!(
            report(&checks, &[3, 0]),
            (Status::Ok, "NETWATCH OK - port_80 3, port_443 0 | port_80=3;5;10;0 port_443=0;1;;0".to_owned())
        );
        assert_eq!(report(&checks, &[3, 2]).0, Status::Warning);
        assert_eq!(report(&checks, &[11, 2]), (
            Status::Critical,
            "NETWATCH CRITICAL - port_80 11 (CRITICAL 10), port_443 2 (WARNING 1) | port_80=11;5;10;0 port_443=2;1;;0"
                .to_owned()
        ));
    }

    #[test]
    fn unknown_line() {
        assert_eq!(unknown("bad | thing"), (Status::Unknown, "NETWATCH UNKNOWN - bad / thing".to_owned()));
    }
}
