//! Boots a kernel under qemu and runs one command in it.
//!
//! TCG, not KVM: this machine kind's /dev/kvm only runs kernels built for
//! it (PVM), and stock Debian kernels die in their decompressor there. TCG
//! runs CPU-bound code about 10x slower but boots any kernel. The host's
//! `/` is shared read-only over virtio-9p, with a tmpfs overlay, so the
//! guest sees the project's build output at the same paths and writes
//! nothing back. The command's exit status comes back on the serial
//! console after a marker line only this boot knows.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context as _, Result};

use super::{initramfs, kernel::Kernel};
use crate::cmd;

const QEMU: &str = "qemu-system-x86_64";
const INIT: &str = include_str!("init.sh");
/// Environment variables handed to the guest's command from ours, besides
/// every `NETWATCH_*` and `XTASK_*` one: what a test run needs, nothing host-specific.
const PASSED_ENV: &[&str] = &["PATH", "TERM", "LANG", "LC_ALL", "RUST_BACKTRACE", "RUST_LOG", "NO_COLOR"];

/// One command to run in one boot.
pub struct Run<'a> {
    pub kernel: &'a Kernel,
    pub argv: &'a [String],
    /// Added to (and overriding) the variables passed through.
    pub env: &'a [(String, String)],
    pub cwd: PathBuf,
    pub timeout: Duration,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Show the kernel's boot messages and trace the init script.
    pub verbose: bool,
}

/// Boots, runs, powers off. Every console line (the command's stdout and
/// stderr, merged) goes to `on_line`; returns the command's exit status.
pub fn run(run: &Run, on_line: &mut dyn FnMut(&str)) -> Result<i32> {
    let nonce = nonce();
    let marker = format!("xtask-vm-exit-{nonce:x}:");
    let modules = run.kernel.modules.to_str().context("the kernel's modules path is not UTF-8")?;
    let init = INIT
        .replace("@MARKER@", &marker)
        .replace("@RELEASE@", &run.kernel.release)
        .replace("@MODULES@", modules)
        .replace("@TRACE@", if run.verbose { "set -x" } else { "" });
    let image = initramfs::build(run.kernel, &init, &command_script(run))?;
    let initrd = std::env::temp_dir().join(format!("netwatch-vm-{nonce:x}.cpio"));
    std::fs::write(&initrd, image).with_context(|| format!("writing {}", initrd.display()))?;
    let result = boot(run, &initrd, &marker, on_line);
    let _ = std::fs::remove_file(&initrd);
    result
}

fn boot(run: &Run, initrd: &Path, marker: &str, on_line: &mut dyn FnMut(&str)) -> Result<i32> {
    let mut qemu = qemu_command(run, initrd);
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {QEMU}: `cargo xtask setup` installs it (qemu-system-x86)"))?;
    let stdout = child.stdout.take().context("qemu's stdout was not captured")?;
    let (lines, received) = mpsc::channel();
    // A thread, so the timeout holds even when the guest prints nothing.
    thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + run.timeout;
    let mut reported = None;
    // The init script puts an empty line before the marker (the output may not
    // end with a newline); it is held back so it is only shown if it was output.
    let mut blank_held = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            // After the marker, only the kernel's power-off messages remain.
            Ok(_) if reported.is_some() => {}
            Ok(line) if line.is_empty() && !blank_held => blank_held = true,
            Ok(line) => {
                if let Some(status) = line.strip_prefix(marker) {
                    reported = Some(status.trim().to_string());
                    continue;
                }
                if std::mem::take(&mut blank_held) {
                    on_line("");
                }
                on_line(&line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the guest ({}) did not finish within {} s; stopped it", run.kernel.label, run.timeout.as_secs());
            }
        }
    }
    let status = child.wait().context("waiting for qemu")?;
    match reported.as_deref() {
        Some("setup-failed") => bail!("the guest's init failed before running the command (its message is above)"),
        Some(code) => code.parse().with_context(|| format!("the guest reported an exit status `{code}`")),
        None => bail!(
            "qemu ended ({status}) without the command's exit status: the kernel panicked or failed to boot \
             (rerun with --verbose to see its messages)"
        ),
    }
}

fn qemu_command(run: &Run, initrd: &Path) -> Command {
    // no_timer_check: on a loaded host, TCG can miss the kernel's boot-time
    // IO-APIC timer check, which then panics ("IO-APIC + timer doesn't work").
    // softlockup_panic: a guest whose CPU is stuck in the kernel can only
    // hang until the timeout; panicking ends the boot at once, with the stuck
    // CPU's backtrace. loglevel=5 (not `quiet`): backtraces print at warning
    // level, which `quiet` hides, while the boot's info messages stay hidden.
    let mut append = String::from("console=ttyS0 panic=-1 8250.nr_uarts=1 no_timer_check softlockup_panic=1");
    if !run.verbose {
        append.push_str(" loglevel=5");
    }
    let mut qemu = Command::new(QEMU);
    // thread=single: one host thread runs both vCPUs in turn. With a thread
    // per vCPU (qemu's default), a 5.10 guest locked up about once in 25
    // runs of the CI subset: both vCPUs spun at the jump-label site of the syscall-exit
    // tracepoint, which netwatch's attach and detach re-patch, as if each kept
    // running its stale translation of the patched code. Real CPUs are not
    // prone to this. Costs about a third more time for the CI subset.
    qemu.args(["-accel", "tcg,thread=single", "-cpu", "max"])
        .arg("-smp")
        .arg(run.cpus.to_string())
        .arg("-m")
        .arg(format!("{}M", run.memory_mib))
        .args(["-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&run.kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(append)
        // remap: the host's / spans several filesystems, whose inode numbers could collide.
        .args(["-fsdev", "local,id=host,path=/,readonly=on,security_model=none,multidevs=remap"])
        .args(["-device", "virtio-9p-pci,fsdev=host,mount_tag=host"]);
    qemu
}

/// The shell script the guest runs: the working directory, the environment, the command.
fn command_script(run: &Run) -> String {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| {
            PASSED_ENV.contains(&name.as_str())
                || (name.starts_with("NETWATCH_") && !name.starts_with("NETWATCH_VMTEST_"))
                || name.starts_with("XTASK_")
        })
        .collect();
    env.push(("HOME".into(), "/root".into()));
    env.push(("USER".into(), "root".into()));
    for (name, value) in run.env {
        env.retain(|(existing, _)| existing != name);
        env.push((name.clone(), value.clone()));
    }
    let mut script = format!("cd {} || exit 127\n", quote(&run.cwd.to_string_lossy()));
    for (name, value) in env {
        script.push_str(&format!("export {}\n", quote(&format!("{name}={value}"))));
    }
    let argv: Vec<String> = run.argv.iter().map(|arg| quote(arg)).collect();
    script.push_str(&format!("exec {} </dev/null\n", argv.join(" ")));
    script
}

/// Single-quoted for sh: nothing inside is special except the quote itself.
pub(super) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Different in every boot, so no command output can fake the exit marker by accident.
fn nonce() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// Prints a console line to our stdout; a closed stdout must not stop the run.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// `NAME=VALUE` from the command line.
pub fn parse_env(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => bail!("--env wants NAME=VALUE, got `{text}`"),
    }
}

/// Whether qemu is installed, for a clear error before any download.
pub fn require_qemu() -> Result<()> {
    if cmd::probe(Command::new(QEMU).arg("--version")).is_none() {
        bail!("{QEMU} is not installed: run `cargo xtask setup` (it installs qemu-system-x86 and busybox-static)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_env, quote};

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME;`x`"), "'$HOME;`x`'");
    }

    #[test]
    fn env_needs_a_name() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("A").is_err());
    }
}
