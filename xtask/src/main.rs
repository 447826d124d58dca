//! `cargo xtask`: sets this machine up, then builds, tests, runs and
//! benchmarks netwatch. Each subcommand lives in its own module; this file
//! only parses the command line and dispatches.

mod bench;
mod cmd;
mod install;
mod libtest;
mod run;
mod setup;
mod test;
mod vmtest;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Set up, build, test, run and benchmark netwatch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine is missing: apt packages, bpf-linker, the
    /// eBPF toolchain link, the tracefs mount. Fast when nothing is missing.
    Setup,
    /// Set up, then run fmt, clippy, the unit tests, the privileged
    /// integration tests (as root) and a subset of them on kernels 6.1 and
    /// 5.10 under qemu, stopping at the first failure.
    Test {
        /// Skip the last stage, the integration tests on other kernels under
        /// qemu (also NETWATCH_NO_VM=1). CI runs it.
        #[arg(long)]
        no_vm: bool,
        /// Arguments for the integration tests' harness, e.g. a test-name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build netwatch (release) and run it as root with these arguments.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, and measure netwatch's overhead, loss and latency.
    Bench(bench::Options),
    /// Build netwatch (release) and install it with its systemd unit, example
    /// configuration, man pages and bash/zsh/fish completions. Idempotent.
    Install(install::Options),
    /// Boot a Debian kernel (5.10, 6.1, 6.12, newest) under qemu and run a
    /// command in it, in this machine's root filesystem; exits with its status.
    Vm(vmtest::VmOptions),
    /// Build netwatch and its integration tests, then run the tests on each
    /// kernel of a matrix (5.10, 6.1, 6.12, newest), each booted under qemu.
    Vmtest(vmtest::VmtestOptions),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Setup => setup::setup(),
        Command::Test { args, no_vm } => test::test(&args, no_vm),
        Command::Run { args } => run::run(&args),
        Command::Bench(options) => bench::bench(&options),
        Command::Install(options) => install::install(&options),
        // The guest command's own exit status is ours.
        Command::Vm(options) => match vmtest::vm(&options) {
            Ok(status) => return ExitCode::from(status),
            Err(err) => Err(err),
        },
        Command::Vmtest(options) => vmtest::vmtest(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
