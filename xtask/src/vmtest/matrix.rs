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
pub struct KernelResult {
    pub spec: String,
    pub release: String,
    pub tally: Tally,
    pub failed_tests: Vec<String>,
    pub elapsed: Duration,
    /// Why the kernel counts as failed besides failed tests (boot, missing results).
    pub problem: Option<String>,
}

impl KernelResult {
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.tally.failed == 0
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
    let mut result = KernelResult {
        spec: spec.to_string(),
        release: String::from("?"),
        tally: Tally::default(),
        failed_tests: Vec::new(),
        elapsed: Duration::ZERO,
        problem: None,
    };
    if let Err(err) = boot_and_test(spec, binaries, selection, netwatch, timeout, verbose, &mut result) {
        result.problem = Some(format!("{err:#}"));
    }
    result.elapsed = started.elapsed();
    result
}

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
    eprintln!("xtask vmtest: [{spec}] booting {} ({}) under TCG", kernel.label, kernel.release);
    let argv = ["sh".to_string(), "-c".to_string(), guest_script(&planned)];
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
    let mut per_binary: BTreeMap<String, Tally> = BTreeMap::new();
    let mut current = String::new();
    let status = qemu::run(&run, &mut |line| {
        qemu::print_line(&format!("[{spec}] {line}"));
        if let Some(name) = line.strip_prefix(BINARY_HEADER) {
            current = name.to_string();
            per_binary.entry(current.clone()).or_default();
            return;
        }
        if let Some(test) = line.strip_prefix("test ").and_then(|rest| rest.strip_suffix(" ... FAILED")) {
            result.failed_tests.push(format!("{current}::{test}"));
        }
        let tally = per_binary.entry(current.clone()).or_default();
        tally.add_line(line);
        result.tally.add_line(line);
    })?;
    let mut problems = Vec::new();
    for Planned { binary, expected, .. } in &planned {
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
    if status != 0 && result.tally.failed == 0 && problems.is_empty() {
        problems.push(format!("the guest's test run exited with status {status}"));
    }
    if !problems.is_empty() {
        result.problem = Some(problems.join("; "));
    }
    Ok(())
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
fn guest_script(planned: &[Planned]) -> String {
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
        if let Some(problem) = &result.problem {
            eprintln!("           {problem}");
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
    use super::{guest_script, integration_test, plan, Selection, TestBinary};

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
    fn all_selection_skips_install_and_keeps_filters() {
        let binaries = binaries();
        let planned = plan(&binaries, &Selection::All(vec!["owners".into()])).unwrap();
        let names: Vec<&str> = planned.iter().map(|p| p.binary.name.as_str()).collect();
        assert_eq!(names, ["events", "table"]);
        let script = guest_script(&planned);
        assert!(script.contains("'/t/events-1' --test-threads=1 --color=never 'owners' || status=1\n"), "{script}");
        assert!(script.ends_with("exit $status\n"));
    }
}
