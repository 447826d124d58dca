//! `cargo xtask vmtest`: the integration tests on a matrix of kernels.
//!
//! The test binaries are built once on the host; each kernel boots once and
//! runs them one after another with `--test-threads=1` (they load eBPF and
//! share the guest's only loopback), so a boot's 15-40 s is paid once per
//! kernel. Results are counted per binary from libtest's own summary lines.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::{
    kernel,
    qemu::{self, quote},
    GUEST_CPUS,
};
use crate::{cmd, libtest::Tally};

/// The developer's matrix: Debian 11's kernel (Amazon Linux 2's series),
/// Debian 12's own, its newer 6.12, and the newest Debian has. The host's
/// kernel is covered by `cargo xtask test`.
pub const DEFAULT_KERNELS: &[&str] = &["5.10", "6.1", "6.12", "newest"];

/// Test binaries that cannot run in a guest, and why.
const SKIPPED_BINARIES: &[(&str, &str)] = &[(
    "install",
    "runs `cargo xtask install`, which rebuilds netwatch with cargo (many minutes under TCG); it tests \
     packaging, which does not depend on the kernel",
)];

/// What runs in each guest.
pub enum Selection {
    /// Every test (minus [`SKIPPED_BINARIES`]), with these libtest arguments (e.g. a name filter).
    All(Vec<String>),
    /// Exactly these `(binary, test)` pairs; each must exist and run.
    Exact(&'static [(&'static str, &'static str)]),
}

/// What one kernel's run gave.
#[derive(Default)]
pub struct KernelResult {
    pub spec: String,
    pub release: String,
    pub tally: Tally,
    pub failed_tests: Vec<String>,
    pub elapsed: Duration,
    /// Why the kernel counts as failed besides failed tests (boot, missing results).
    pub problem: Option<String>,
    /// Each kernel lockup that ended a boot, with its console lines.
    pub lockups: Vec<String>,
}

impl KernelResult {
    /// A test that failed before a lockup fails the kernel even if its rerun passed.
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.tally.failed == 0 && self.failed_tests.is_empty()
    }
}

/// A test binary cargo built.
struct TestBinary {
    name: String,
    path: PathBuf,
}

/// Builds netwatch and the test binaries, then runs `selection` on each kernel in turn.
pub fn run(kernels: &[String], selection: &Selection, timeout: Duration, verbose: bool) -> Result<Vec<KernelResult>> {
    qemu::require_qemu()?;
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "netwatch"])).context("building netwatch failed")?;
    let binaries = test_binaries()?;
    for (name, reason) in SKIPPED_BINARIES {
        eprintln!("xtask vmtest: skipping the `{name}` tests in guests: {reason}");
    }
    let netwatch = cmd::release_bin("netwatch");
    Ok(kernels.iter().map(|spec| run_kernel(spec, &binaries, selection, &netwatch, timeout, verbose)).collect())
}

/// `cargo test --no-run` for the tests crate; the integration-test
/// executables come from cargo's JSON messages (their names carry a hash).
fn test_binaries() -> Result<Vec<TestBinary>> {
    let mut build = cmd::cargo();
    build.args(["test", "--release", "-p", "netwatch-tests", "--no-run", "--message-format=json-render-diagnostics"]);
    let mut child =
        build.stdout(Stdio::piped()).spawn().with_context(|| format!("could not start `{}`", cmd::describe(&build)))?;
    let stdout = child.stdout.take().context("cargo's stdout was not captured")?;
    let mut binaries = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        if let Some(binary) = integration_test(&line) {
            binaries.push(binary);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    cmd::check(&build, status).context("building the integration tests failed")?;
    if binaries.is_empty() {
        bail!("`{}` reported no integration-test executables", cmd::describe(&build));
    }
    binaries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(binaries)
}

/// An integration-test (`tests/*.rs`) executable from one cargo JSON message.
fn integration_test(line: &str) -> Option<TestBinary> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
        return None;
    }
    if !message["target"]["kind"].as_array()?.iter().any(|kind| kind == "test") {
        return None;
    }
    Some(TestBinary {
        name: message["target"]["name"].as_str()?.to_string(),
        path: PathBuf::from(message["executable"].as_str()?),
    })
}

/// Names the binary whose output follows, in the guest's console stream.
const BINARY_HEADER: &str = "xtask-vmtest: running ";

/// How much longer the tests' deadlines are in a TCG guest.
const TCG_TIME_SCALE: u32 = 8;

fn run_kernel(
    spec: &str,
    binaries: &[TestBinary],
    selection: &Selection,
    netwatch: &std::path::Path,
    timeout: Duration,
    verbose: bool,
) -> KernelResult {
    let started = Instant::now();
    let mut result = KernelResult { spec: spec.to_string(), release: String::from("?"), ..KernelResult::default() };
    if let Err(err) = boot_and_test(spec, binaries, selection, netwatch, timeout, verbose, &mut result) {
        result.problem = Some(format!("{err:#}"));
    }
    result.elapsed = started.elapsed();
    result
}

/// Whether a console line says the guest kernel locked up: a CPU stuck in
/// the kernel, which the watchdog turns into a panic (see qemu.rs).
fn is_lockup(line: &str) -> bool {
    line.contains("BUG: soft lockup") || line.contains("Kernel panic - not syncing: softlockup")
}

/// Console lines kept from a lockup on: the message, the stuck task's
/// registers and backtrace, the panic.
const LOCKUP_LINES: usize = 80;

/// Boots `spec` and runs `selection`; a boot that ends in a kernel lockup is
/// followed by one more boot for the binaries that had not finished.
///
/// Why a retry: the lockups seen here were TCG's (both vCPUs stuck at a
/// re-patched jump label, see qemu.rs), which one host thread for both
/// vCPUs avoids; should another kind remain, one boot must not fail CI, and
/// the lockup is still reported, with its backtrace, after the summary. A
/// test that failed before the lockup still fails the kernel.
fn boot_and_test(
    spec: &str,
    binaries: &[TestBinary],
    selection: &Selection,
    netwatch: &std::path::Path,
    timeout: Duration,
    verbose: bool,
    result: &mut KernelResult,
) -> Result<()> {
    let kernel = kernel::get(spec)?;
    result.release = kernel.release.clone();
    let planned = plan(binaries, selection)?;
    run_planned(spec, &planned, result, |todo, on_line| {
        eprintln!("xtask vmtest: [{spec}] booting {} ({}) under TCG", kernel.label, kernel.release);
        let argv = ["sh".to_string(), "-c".to_string(), guest_script(todo)];
        let env = [
            ("NETWATCH_BIN".to_string(), netwatch.display().to_string()),
            ("RUST_BACKTRACE".to_string(), "1".to_string()),
            // The tests' deadlines (tests/src/wait.rs) stretch by this much:
            // TCG ran the suite about 7 times slower than the host.
            ("NETWATCH_TEST_TIME_SCALE".to_string(), TCG_TIME_SCALE.to_string()),
        ];
        let run = qemu::Run {
            kernel: &kernel,
            argv: &argv,
            env: &env,
            // Where cargo runs test binaries: the tests crate's directory.
            cwd: cmd::root().join("tests"),
            timeout,
            memory_mib: super::DEFAULT_MEMORY_MIB,
            cpus: GUEST_CPUS,
            verbose,
        };
        qemu::run(&run, &mut |line| {
            qemu::print_line(&format!("[{spec}] {line}"));
            on_line(line);
        })
    })
}

/// Runs `planned` through `boot` (which runs the binaries it is given and
/// feeds each console line to its callback), then judges what ran. A boot
/// that failed after a kernel lockup is followed by one more boot for the
/// binaries that had not finished.
fn run_planned(
    spec: &str,
    planned: &[Planned],
    result: &mut KernelResult,
    mut boot: impl FnMut(&[&Planned], &mut dyn FnMut(&str)) -> Result<i32>,
) -> Result<()> {
    let mut per_binary: BTreeMap<String, Tally> = BTreeMap::new();
    let mut boots = 0;
    let status = loop {
        boots += 1;
        let todo: Vec<&Planned> = planned.iter().filter(|p| !finished(&per_binary, &p.binary.name)).collect();
        let mut lockup = Vec::new();
        let mut current = String::new();
        let booted = boot(&todo, &mut |line| {
            if (!lockup.is_empty() || is_lockup(line)) && lockup.len() < LOCKUP_LINES {
                lockup.push(line.to_string());
            }
            if let Some(name) = line.strip_prefix(BINARY_HEADER) {
                current = name.to_string();
                per_binary.insert(current.clone(), Tally::default());
                return;
            }
            if let Some(test) = line.strip_prefix("test ").and_then(|rest| rest.strip_suffix(" ... FAILED")) {
                result.failed_tests.push(format!("{current}::{test}"));
            }
            per_binary.entry(current.clone()).or_default().add_line(line);
            result.tally.add_line(line);
        });
        if booted.is_ok() || lockup.is_empty() {
            break booted?;
        }
        let which =
            todo.iter().find(|p| !finished(&per_binary, &p.binary.name)).map_or("?", |p| p.binary.name.as_str());
        result.lockups.push(format!("boot {boots}, in the `{which}` tests:\n{}", lockup.join("\n")));
        if boots > 1 {
            break booted?;
        }
        eprintln!(
            "xtask vmtest: [{spec}] the guest kernel locked up in the `{which}` tests; booting once more for the \
             unfinished tests"
        );
    };
    let mut problems = Vec::new();
    for Planned { binary, expected, .. } in planned {
        match per_binary.get(&binary.name) {
            Some(tally) if tally.binaries == 1 => {
                let ran = tally.passed + tally.failed;
                if let Some(expected) = expected {
                    if ran != *expected {
                        problems.push(format!(
                            "{}: {ran} of the {expected} chosen tests ran: a test of the subset was renamed or removed",
                            binary.name
                        ));
                    }
                }
            }
            _ => problems.push(format!("{} printed no test result (it crashed or never started)", binary.name)),
        }
    }
    if result.tally.passed == 0 {
        problems.push("no test passed".into());
    }
    if result.tally.ignored > 0 {
        problems.push(format!("{} tests were ignored: every one must run", result.tally.ignored));
    }
    if status != 0 && result.tally.failed == 0 && result.failed_tests.is_empty() && problems.is_empty() {
        problems.push(format!("the guest's test run exited with status {status}"));
    }
    if !problems.is_empty() {
        result.problem = Some(problems.join("; "));
    }
    Ok(())
}

fn finished(per_binary: &BTreeMap<String, Tally>, name: &str) -> bool {
    per_binary.get(name).is_some_and(|tally| tally.binaries == 1)
}

/// One binary to run, its libtest arguments, and how many tests must run (exact selections).
struct Planned<'a> {
    binary: &'a TestBinary,
    expected: Option<u64>,
    args: Vec<String>,
}

fn plan<'a>(binaries: &'a [TestBinary], selection: &Selection) -> Result<Vec<Planned<'a>>> {
    let runnable = binaries.iter().filter(|binary| !SKIPPED_BINARIES.iter().any(|(name, _)| *name == binary.name));
    match selection {
        Selection::All(args) => {
            Ok(runnable.map(|binary| Planned { binary, expected: None, args: args.clone() }).collect())
        }
        Selection::Exact(tests) => {
            for (name, _) in *tests {
                if !binaries.iter().any(|binary| binary.name == *name) {
                    bail!("the kernel subset names a test binary `{name}` that cargo did not build");
                }
            }
            Ok(runnable
                .filter_map(|binary| {
                    let names: Vec<String> = tests
                        .iter()
                        .filter(|(name, _)| *name == binary.name)
                        .map(|(_, test)| test.to_string())
                        .collect();
                    let expected = Some(names.len() as u64);
                    (!names.is_empty()).then(|| {
                        let args = std::iter::once("--exact".to_string()).chain(names).collect();
                        Planned { binary, expected, args }
                    })
                })
                .collect())
        }
    }
}

/// Runs every planned binary even after a failure, so one run reports them all.
/// No colours: the console is a terminal, and results are parsed from it.
fn guest_script(planned: &[&Planned]) -> String {
    let mut script = String::from("status=0\n");
    for Planned { binary, args, .. } in planned {
        let args: Vec<String> = args.iter().map(|arg| quote(arg)).collect();
        script.push_str(&format!(
            "echo {}\n{} --test-threads=1 --color=never {} || status=1\n",
            quote(&format!("{BINARY_HEADER}{}", binary.name)),
            quote(&binary.path.to_string_lossy()),
            args.join(" ")
        ));
    }
    script.push_str("exit $status\n");
    script
}

/// The per-kernel table; an error if any kernel failed.
pub fn summarize(results: &[KernelResult]) -> Result<()> {
    eprintln!("\nxtask vmtest: results per kernel");
    eprintln!(
        "{:<8} {:<22} {:>6} {:>6} {:>7} {:>9} {:>8}  result",
        "kernel", "release", "passed", "failed", "ignored", "filtered", "time"
    );
    for result in results {
        let Tally { passed, failed, ignored, filtered_out, .. } = result.tally;
        let secs = result.elapsed.as_secs();
        let verdict = if result.ok() { "ok".to_string() } else { "FAILED".to_string() };
        eprintln!(
            "{:<8} {:<22} {passed:>6} {failed:>6} {ignored:>7} {filtered_out:>9} {:>5}m{:02}s  {verdict}",
            result.spec,
            result.release,
            secs / 60,
            secs % 60
        );
        for test in &result.failed_tests {
            eprintln!("           failed: {test}");
        }
        if !result.lockups.is_empty() {
            eprintln!(
                "           the guest kernel locked up {} time(s) (below); after the first, the unfinished tests ran on a new boot",
                result.lockups.len()
            );
        }
        if let Some(problem) = &result.problem {
            eprintln!("           {problem}");
        }
    }
    // Last, so that a log's tail shows them: a lockup is news even when the rerun passed.
    for result in results {
        for lockup in &result.lockups {
            eprintln!("\nxtask vmtest: the {} guest kernel locked up, {lockup}", result.spec);
        }
    }
    let failed: Vec<&str> = results.iter().filter(|result| !result.ok()).map(|result| result.spec.as_str()).collect();
    if !failed.is_empty() {
        bail!("the integration tests failed on kernel {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use anyhow::{bail, Result};

    use super::{
        guest_script, integration_test, is_lockup, plan, run_planned, KernelResult, Planned, Selection, TestBinary,
        BINARY_HEADER,
    };

    fn binaries() -> Vec<TestBinary> {
        ["events", "install", "table"]
            .map(|name| TestBinary { name: name.into(), path: format!("/t/{name}-1").into() })
            .into()
    }

    #[test]
    fn only_integration_test_executables() {
        let test = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"events"},"profile":{"test":true},"executable":"/w/target/release/deps/events-abc"}"#;
        let binary = integration_test(test).unwrap();
        assert_eq!((binary.name.as_str(), binary.path.to_str()), ("events", Some("/w/target/release/deps/events-abc")));
        let lib = test.replace(r#"["test"]"#, r#"["lib"]"#);
        let not_test = test.replace(r#""test":true"#, r#""test":false"#);
        let no_exe = test.replace(r#""/w/target/release/deps/events-abc""#, "null");
        for line in [lib.as_str(), &not_test, &no_exe, r#"{"reason":"build-finished","success":true}"#, "not json"] {
            assert!(integration_test(line).is_none(), "{line}");
        }
    }

    /// A boot that prints, for each binary it is given, what `script`
    /// says for it: its test lines and summary, or a lockup that ends the boot.
    #[allow(clippy::type_complexity)]
    fn fake_boots<'a>(
        script: &'a [&'a [(&'a str, &'a [&'a str])]],
        asked: &'a mut Vec<Vec<String>>,
    ) -> impl FnMut(&[&Planned], &mut dyn FnMut(&str)) -> Result<i32> + 'a {
        move |todo, on_line| {
            asked.push(todo.iter().map(|p| p.binary.name.clone()).collect());
            let boot = script[asked.len() - 1];
            for p in todo {
                on_line(&format!("{BINARY_HEADER}{}", p.binary.name));
                let lines = boot.iter().find(|(name, _)| *name == p.binary.name).map_or(&[][..], |(_, l)| *l);
                for line in lines {
                    on_line(line);
                }
                if lines.iter().any(|line| is_lockup(line)) {
                    bail!("qemu ended without the command's exit status");
                }
            }
            Ok(0)
        }
    }

    const PASS: &str = "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s";
    const LOCKUP: &str = "[  44.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [tokio-rt-worker:380]";

    #[test]
    fn a_lockup_reboots_once_for_the_unfinished_binaries() {
        let binaries = binaries();
        let planned = plan(&binaries, &Selection::All(vec![])).unwrap();
        let (mut result, mut asked) = (KernelResult::default(), Vec::new());
        let script: &[&[(&str, &[&str])]] = &[
            &[("events", &["test a ... ok", PASS]), ("table", &["test b ... ", LOCKUP, "Call Trace:"])],
            &[("table", &["test b ... ok", PASS])],
        ];
        run_planned("5.10", &planned, &mut result, fake_boots(script, &mut asked)).unwrap();
        assert_eq!(asked, [vec!["events", "table"], vec!["table"]]);
        assert!(result.ok(), "{:?}", result.problem);
        assert_eq!(result.tally.passed, 2);
        assert_eq!(result.lockups.len(), 1);
        assert!(
            result.lockups[0].starts_with("boot 1, in the `table` tests:\n[  44.0] watchdog"),
            "{}",
            result.lockups[0]
        );
        assert!(result.lockups[0].ends_with("Call Trace:"));
    }

    #[test]
    fn a_second_lockup_fails_and_a_failure_before_one_still_counts() {
        let binaries = binaries();
        let planned = plan(&binaries, &Selection::All(vec![])).unwrap();
        let (mut result, mut asked) = (KernelResult::default(), Vec::new());
        let script: &[&[(&str, &[&str])]] = &[&[("events", &[LOCKUP])], &[("events", &[LOCKUP])]];
        assert!(run_planned("5.10", &planned, &mut result, fake_boots(script, &mut asked)).is_err());
        assert_eq!((asked.len(), result.lockups.len()), (2, 2));

        let (mut result, mut asked) = (KernelResult::default(), Vec::new());
        let script: &[&[(&str, &[&str])]] =
            &[&[("events", &["test a ... FAILED", LOCKUP])], &[("events", &[PASS]), ("table", &[PASS])]];
        run_planned("5.10", &planned, &mut result, fake_boots(script, &mut asked)).unwrap();
        assert_eq!(result.tally.passed, 2);
        assert!(!result.ok(), "a test that failed before the lockup fails the kernel");
    }

    #[test]
    fn a_boot_that_fails_without_a_lockup_is_not_retried() {
        let binaries = binaries();
        let planned = plan(&binaries, &Selection::All(vec![])).unwrap();
        let (mut result, mut asked) = (KernelResult::default(), Vec::new());
        let mut boot = |todo: &[&Planned], _: &mut dyn FnMut(&str)| -> Result<i32> {
            asked.push(todo.len());
            bail!("the guest did not finish within 1200 s")
        };
        assert!(run_planned("5.10", &planned, &mut result, &mut boot).is_err());
        assert_eq!(asked, [2]);
        assert!(result.lockups.is_empty());
    }

    #[test]
    fn exact_selection_runs_only_named_binaries_and_counts_them() {
        let binaries = binaries();
        let subset: &'static [(&str, &str)] = &[("table", "a::b"), ("table", "c"), ("install", "x")];
        let planned = plan(&binaries, &Selection::Exact(subset)).unwrap();
        assert_eq!(planned.len(), 1, "install is skipped in guests");
        assert_eq!(planned[0].binary.name, "table");
        assert_eq!(planned[0].expected, Some(2));
        assert_eq!(planned[0].args, ["--exact", "a::b", "c"]);
        assert!(plan(&binaries, &Selection::Exact(&[("nope", "t")])).is_err());
    }

    #[test]
    fn a_soft_lockup_is_recognised_and_a_test_failure_is_not() {
        assert!(is_lockup("[  404.651210] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [owners::listene:371]"));
        assert!(is_lockup("[   44.1] Kernel panic - not syncing: softlockup: hung tasks"));
        assert!(!is_lockup("test owners::listener_older_than_netwatch ... FAILED"));
    }

    #[test]
    fn all_selection_skips_install_and_keeps_filters() {
        let binaries = binaries();
        let planned = plan(&binaries, &Selection::All(vec!["owners".into()])).unwrap();
        let names: Vec<&str> = planned.iter().map(|p| p.binary.name.as_str()).collect();
        assert_eq!(names, ["events", "table"]);
        let script = guest_script(&planned.iter().collect::<Vec<_>>());
        assert!(script.contains("'/t/events-1' --test-threads=1 --color=never 'owners' || status=1\n"), "{script}");
        assert!(script.ends_with("exit $status\n"));
    }
}
