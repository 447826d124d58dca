//! End-to-end tests of `netwatch serve`: the metrics endpoint against `ss`,
//! alerts on a real SYN flood, suspicious ports and new listeners, the
//! export file's rotation, syslog lines, SIGHUP reload and a clean SIGTERM.
//!
//! They need root and one thread (`cargo xtask test`). Only 127.0.0.0/8 and
//! network namespaces the tests make are used; the machine is shared, so
//! every check is about the test's own ports, processes and namespaces.

#[path = "serve/alerts.rs"]
mod alerts;
#[path = "serve/churn.rs"]
mod churn;
#[path = "serve/drops.rs"]
mod drops;
#[path = "serve/export.rs"]
mod export;
#[path = "serve/harness.rs"]
mod harness;
#[path = "serve/kinds.rs"]
mod kinds;
#[path = "serve/lifecycle.rs"]
mod lifecycle;
#[path = "serve/loss.rs"]
mod loss;
#[path = "serve/metrics.rs"]
mod metrics;
#[path = "serve/otlp.rs"]
mod otlp;
#[path = "serve/why.rs"]
mod why;

use std::path::{Path, PathBuf};
use std::process::Command;

use netwatch_tests::held::Held;

fn setup() {
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}

/// [`setup`], then into a network namespace of the test's own: serve, its
/// metrics port, the test's processes and `ss` all run there, so no other
/// serve on the machine takes the port and no other traffic comes near
/// the test's listeners (netwatch still sees every namespace; checks
/// select the test's own sockets).
#[must_use = "the test leaves its namespace when this is dropped"]
fn setup_in(tag: &str) -> netwatch_tests::netns::Own {
    setup();
    netwatch_tests::netns::own(tag)
}

/// A copy of nw-peer under a name of this test's own, so that its process
/// name is in no other process's connections (other tests run nw-peer too).
fn own_peer(dir: &Path) -> PathBuf {
    let path = dir.join(format!("nwp{}", std::process::id() % 1_000_000));
    std::fs::copy(env!("CARGO_BIN_EXE_nw-peer"), &path).expect("copying nw-peer");
    path
}

/// `OWN_PEER hold ARGS`.
fn hold(peer: &Path, args: &[&str]) -> Held {
    let mut c = Command::new(peer);
    c.arg("hold").args(args);
    Held::spawn(c)
}

/// A config file with `text`, in `dir`.
fn config(dir: &harness::TempDir, text: &str) -> PathBuf {
    let p = dir.path("netwatch.toml");
    std::fs::write(&p, text).expect("writing the config file");
    p
}

/// Every alert but those named is off, so other activity on the machine
/// cannot fill the test's stderr with alerts. The named ones keep their
/// defaults (enabled), so the caller may add their own tables for them.
fn only_alerts(names: &[&str]) -> String {
    ["syn_backlog", "listen_drops", "remote_connections", "suspicious_ports", "new_listener", "total_connections"]
        .iter()
        .filter(|n| !names.contains(n))
        .map(|n| format!("[alerts.{n}]\nenabled = false\n"))
        .collect()
}
