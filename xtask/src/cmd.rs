//! Small helpers shared by the subcommands: where the workspace is, how to
//! call cargo, how to run a command and say clearly what failed.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

/// The workspace root; xtask always lives one level below it.
pub fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` if set (relative to the
/// root, where every cargo call here runs), else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// A release binary built from this workspace.
pub fn release_bin(name: &str) -> PathBuf {
    target_dir().join("release").join(name)
}

/// `cargo`, run from the workspace root. Prefers the cargo that runs xtask
/// (`$CARGO`) so every stage uses the same toolchain.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// The command line as a user would type it, for messages.
pub fn describe(cmd: &Command) -> String {
    let program = cmd.get_program();
    // `$CARGO` is a long toolchain path; users know it as `cargo`.
    let is_cargo = env::var_os("CARGO").is_some_and(|cargo| cargo == program);
    let mut line = if is_cargo { "cargo".to_string() } else { program.to_string_lossy().into_owned() };
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` with inherited stdio; an error names the command and its status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("could not start `{}`: is it installed?", describe(cmd)))?;
    check(cmd, status)
}

/// Runs `cmd` and returns its stdout if it succeeded, `None` if it could not
/// start or failed. For probes, where failure just means "not there".
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn check(cmd: &Command, status: ExitStatus) -> Result<()> {
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Waits for `child` at most `limit`; `None` if it is still running then.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program` as a command that runs as root: itself when we are root, else
/// through `sudo -E` (keeping the environment, e.g. NETWATCH_BIN).
pub fn as_root(program: &Path) -> Result<Command> {
    if is_root() {
        return Ok(Command::new(program));
    }
    require_sudo(&program.display().to_string())?;
    let mut cmd = Command::new("sudo");
    cmd.arg("-E").arg(program);
    Ok(cmd)
}

/// Fails clearly when `what` must run as root and there is no sudo to get there.
pub fn require_sudo(what: &str) -> Result<()> {
    if probe(Command::new("sudo").arg("--version")).is_none() {
        bail!("{what} must run as root and sudo is not available: run this command as root");
    }
    Ok(())
}
