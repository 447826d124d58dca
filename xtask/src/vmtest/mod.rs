//! `cargo xtask vm` and `cargo xtask vmtest`: netwatch on other kernels.
//!
//! `vm` boots one Debian kernel under qemu and runs one command in it (the
//! host's root, read-only, with netwatch's build output at the same paths);
//! `vmtest` runs the integration tests that way on a matrix of kernels.

mod apt;
mod initramfs;
mod kernel;
mod qemu;

use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;

/// Memory for each guest: the tests' processes and the overlay's writes live in it.
const DEFAULT_MEMORY_MIB: u32 = 2048;
/// Two vCPUs, like this machine; TCG runs one host thread per vCPU.
const GUEST_CPUS: u32 = 2;

#[derive(Args)]
pub struct VmOptions {
    /// Kernel to boot: 5.10, 6.1, 6.12, newest, or a directory holding
    /// boot/vmlinuz-<release> and lib/modules/<release>/ (a `dpkg -x` of a linux-image package).
    #[arg(long)]
    kernel: String,
    /// Stop the guest after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB)]
    memory: u32,
    /// Set NAME=VALUE in the command's environment (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = qemu::parse_env)]
    env: Vec<(String, String)>,
    /// Show the kernel's boot messages and trace the guest's init.
    #[arg(long)]
    verbose: bool,
    /// The command, run as root in the host's root filesystem inside the guest.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs the command in the guest and returns its exit status.
pub fn vm(options: &VmOptions) -> Result<u8> {
    qemu::require_qemu()?;
    let kernel = kernel::get(&options.kernel)?;
    eprintln!("xtask vm: booting {} ({}) under TCG", kernel.label, kernel.release);
    let run = qemu::Run {
        kernel: &kernel,
        argv: &options.command,
        env: &options.env,
        cwd: std::env::current_dir().context("reading the current directory")?,
        timeout: Duration::from_secs(options.timeout),
        memory_mib: options.memory,
        cpus: GUEST_CPUS,
        verbose: options.verbose,
    };
    let status = qemu::run(&run, &mut |line| qemu::print_line(line))?;
    // Statuses beyond a byte do not exist in sh; keep them failing.
    Ok(u8::try_from(status).unwrap_or(255))
}
