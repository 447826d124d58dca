//! `cargo xtask test`: every check CI runs, in order, stopping at the first
//! failure. Then the privileged integration tests run as root (failing if none
//! of them really ran), and last a subset of them on other kernels under qemu
//! (`vmtest::CI_KERNELS`), which `--no-vm` or `NETWATCH_NO_VM=1` skips locally.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, ExitStatus, Stdio},
};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::{cmd, libtest::Tally, setup, vmtest};

struct Stage {
    name: &'static str,
    command: fn() -> Command,
    hint: &'static str,
}

/// Default members only for fmt, clippy and the unit tests: the eBPF crate
/// builds for the BPF target through netwatch/build.rs, never for the host, so
/// its own clippy stage runs for that target with the toolchain that builds it.
const STAGES: &[Stage] = &[
    Stage { name: "fmt", command: || cargo(&["fmt", "--all", "--", "--check"]), hint: "run `cargo fmt --all`" },
    Stage {
        name: "clippy",
        command: || cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]),
        hint: "fix the warnings above",
    },
    Stage { name: "clippy (eBPF crate)", command: setup::ebpf_clippy, hint: "fix the warnings above" },
    Stage {
        name: "unit tests",
        command: || cargo(&["test", "--workspace", "--exclude", "netwatch-tests", "--exclude", "netwatch-ebpf"]),
        hint: "fix the failing tests above",
    },
];

fn cargo(args: &[&str]) -> Command {
    let mut cargo = cmd::cargo();
    cargo.args(args);
    cargo
}

const INTEGRATION: &str = "integration tests";
const KERNELS: &str = "integration tests on other kernels";
/// The checks, the host's integration tests, the other kernels'.
const TOTAL: usize = STAGES.len() + 2;
/// Set to 1 to skip the kernel stage, like `--no-vm`.
const NO_VM_ENV: &str = "NETWATCH_NO_VM";

/// `libtest_args` go to the integration tests' harness (e.g. a name filter).
pub fn test(libtest_args: &[String], no_vm: bool) -> Result<()> {
    setup::setup()?;
    let total = TOTAL;
    for (index, stage) in STAGES.iter().enumerate() {
        let mut command = (stage.command)();
        announce(index + 1, total, stage.name, &command);
        if let Err(err) = cmd::run(&mut command) {
            bail!("{}: {err:#}; {}", failed_at(index, stage.name), stage.hint);
        }
    }
    let tally =
        integration(libtest_args, total).map_err(|err| anyhow!("{}: {err:#}", failed_at(STAGES.len(), INTEGRATION)))?;
    let kernels = match vm_skip_reason(libtest_args, no_vm) {
        Some(reason) => {
            eprintln!("xtask test: [{total}/{total}] {KERNELS}: skipped ({reason})");
            format!("{KERNELS} skipped")
        }
        None => {
            eprintln!("xtask test: [{total}/{total}] {KERNELS}: {}", vmtest::CI_KERNELS.join(", "));
            let summary =
                vmtest::ci_stage().map_err(|err| anyhow!("{}: {err:#}", failed_at(STAGES.len() + 1, KERNELS)))?;
            format!("{KERNELS} ({summary})")
        }
    };
    eprintln!("xtask test: ok: {}, {INTEGRATION} ({tally}), {kernels}", stage_names(STAGES.len()));
    Ok(())
}

/// Why the kernel stage does not run, if it does not: CI always runs it.
fn vm_skip_reason(libtest_args: &[String], no_vm: bool) -> Option<&'static str> {
    if no_vm {
        return Some("--no-vm");
    }
    if std::env::var_os(NO_VM_ENV).is_some_and(|value| value == "1") {
        return Some("NETWATCH_NO_VM=1");
    }
    // A filtered run is a developer iterating; `cargo xtask vmtest -- FILTER` covers kernels.
    (!libtest_args.is_empty()).then_some("a test filter was given; use `cargo xtask vmtest -- FILTER`")
}

fn announce(number: usize, total: usize, name: &str, cmd: &Command) {
    eprintln!("xtask test: [{number}/{total}] {name}: {}", cmd::describe(cmd));
}

/// The summary line for a failure at stage `index` (0-based).
fn failed_at(index: usize, name: &str) -> String {
    let passed = if index == 0 { "none".to_string() } else { stage_names(index) };
    format!("xtask test: FAILED at [{}/{TOTAL}] {name} (passed: {passed})", index + 1)
}

fn stage_names(count: usize) -> String {
    let names = STAGES.iter().map(|stage| stage.name).chain([INTEGRATION, KERNELS]);
    names.take(count).collect::<Vec<_>>().join(", ")
}

fn integration(libtest_args: &[String], total: usize) -> Result<Tally> {
    let mut build = cmd::cargo();
    build.args(["build", "--release", "-p", "netwatch"]);
    announce(total - 1, total, "build netwatch for the integration tests", &build);
    cmd::run(&mut build)?;
    let netwatch = cmd::release_bin("netwatch");

    let mut tests = cmd::cargo();
    tests
        .args(["test", "--release", "-p", "netwatch-tests", "--", "--test-threads=1"])
        .args(libtest_args)
        .env("NETWATCH_BIN", &netwatch)
        // The install test runs this very xtask (cargo is locked meanwhile).
        .env("XTASK_BIN", std::env::current_exe().context("locating the xtask binary")?);
    if !cmd::is_root() {
        // Cargo builds as this user; only the test binaries run as root.
        cmd::require_sudo("the integration tests")?;
        tests.env(runner_env_var()?, "sudo -E");
    }
    announce(total - 1, total, INTEGRATION, &tests);
    let (tally, status) = run_and_tally(&mut tests)?;
    if !status.success() {
        bail!("`{}` failed ({status}): {tally}", cmd::describe(&tests));
    }
    check_tally(&tally, !libtest_args.is_empty())?;
    Ok(tally)
}

/// Streams the command's stdout to ours while counting libtest results.
fn run_and_tally(cmd: &mut Command) -> Result<(Tally, ExitStatus)> {
    let mut child =
        cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("could not start `{}`", cmd::describe(cmd)))?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().context("the test run's stdout was not captured")?;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the test output")?;
        // A closed terminal must not stop the run; the tally is what counts.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        tally.add_line(&line);
    }
    let status = child.wait().context("waiting for cargo test")?;
    Ok((tally, status))
}

/// Cargo exits 0 when nothing ran; the integration tests must really run.
fn check_tally(tally: &Tally, filtered: bool) -> Result<()> {
    if tally.binaries == 0 {
        bail!("no libtest results in the output: the tests crate ran no test harness");
    }
    if tally.passed == 0 {
        bail!("0 integration tests passed ({tally}): they must really run");
    }
    if tally.ignored > 0 {
        bail!("{} integration tests were ignored ({tally}): every one must run here", tally.ignored);
    }
    if tally.filtered_out > 0 && !filtered {
        bail!("{} integration tests were filtered out ({tally}) with no filter given", tally.filtered_out);
    }
    Ok(())
}

/// `CARGO_TARGET_<HOST TRIPLE>_RUNNER`, which makes cargo run test binaries through sudo.
fn runner_env_var() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let info = cmd::probe(Command::new(rustc).arg("-vV")).context("`rustc -vV` failed: is rustc installed?")?;
    let host = info
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .context("`rustc -vV` did not print the host triple")?;
    Ok(format!("CARGO_TARGET_{}_RUNNER", host.trim().to_uppercase().replace(['-', '.'], "_")))
}

#[cfg(test)]
mod tests {
    use super::{check_tally, runner_env_var, vm_skip_reason, Tally};

    #[test]
    fn kernel_stage_runs_unless_asked_or_filtered() {
        assert_eq!(vm_skip_reason(&[], true), Some("--no-vm"));
        assert!(vm_skip_reason(&["owners".into()], false).is_some());
        if std::env::var_os("NETWATCH_NO_VM").is_none() {
            assert_eq!(vm_skip_reason(&[], false), None);
        }
    }

    fn tally(passed: u64, ignored: u64, filtered_out: u64) -> Tally {
        Tally { passed, failed: 0, ignored, filtered_out, binaries: 2 }
    }

    #[test]
    fn nothing_passed_fails() {
        assert!(check_tally(&tally(0, 0, 0), false).is_err());
        assert!(check_tally(&tally(0, 0, 5), true).is_err());
        assert!(check_tally(&Tally::default(), false).is_err());
    }

    #[test]
    fn ignored_always_fails() {
        assert!(check_tally(&tally(3, 1, 0), false).is_err());
        assert!(check_tally(&tally(3, 1, 0), true).is_err());
    }

    #[test]
    fn filtered_out_only_passes_with_a_filter() {
        assert!(check_tally(&tally(3, 0, 2), false).is_err());
        assert!(check_tally(&tally(3, 0, 2), true).is_ok());
        assert!(check_tally(&tally(3, 0, 0), false).is_ok());
    }

    #[test]
    fn runner_variable_names_the_host_triple() {
        let var = runner_env_var().unwrap();
        assert!(var.starts_with("CARGO_TARGET_") && var.ends_with("_RUNNER"), "{var}");
        assert!(!var.contains('-'), "{var}");
    }
}
