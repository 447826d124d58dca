//! `cargo xtask vm` and `cargo xtask vmtest`: netwatch on other kernels.
//!
//! `vm` boots one Debian kernel under qemu and runs one command in it (the
//! host's root, read-only, with netwatch's build output at the same paths);
//! `vmtest` runs the integration tests that way on a matrix of kernels.

mod apt;
mod initramfs;
mod kernel;
mod matrix;
mod qemu;

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Args;

/// Memory for each guest: the tests' processes and the overlay's writes live in it.
const DEFAULT_MEMORY_MIB: u32 = 2048;
/// Two vCPUs, like this machine; TCG runs one host thread per vCPU.
const GUEST_CPUS: u32 = 2;

/// The kernels CI tests besides the host's: Debian 12's own (6.1) and
/// Debian 11's (5.10, also Amazon Linux 2's series), the two most common
/// server kernels older than the host's.
pub const CI_KERNELS: &[&str] = &["6.1", "5.10"];

/// The integration tests CI runs on each of [`CI_KERNELS`], as
/// `(test binary, exact test name)`. The whole suite takes ~9 min per kernel
/// under TCG, too long for CI twice over, so CI runs the tests of what differs
/// between kernels, about 100 s under TCG: socket owners at connect and accept
/// (hook points and helpers), a passive child's own identity (the kernels
/// that report it before filling it in), refused connects, IPv6, attach and
/// detach (lifecycle), the start-up snapshot (seeding: iterators or the /proc
/// fallback) and what a one-shot snapshot loads, a snapshot diff with owners,
/// metrics, TCP and UDP traffic counters, no traffic row left at teardown.
/// Left out besides the slow ones: tests whose timing TCG's slowness breaks on
/// every kernel (measured on the newest: the 500-connection owner tests lose
/// events, the table churn, the 2 ms history entry, netstat -c, the TUI).
pub const CI_SUBSET: &[(&str, &str)] = &[
    ("events", "owners::listener_older_than_netwatch_gives_children_right_owner"),
    ("events", "owners::a_prefork_servers_connections_move_from_listener_to_worker_at_accept"),
    ("events", "owners::refused_connect_is_reported_as_failed"),
    ("events", "accepts::a_named_acceptor_thread_and_a_late_accept"),
    ("events", "children::wildcard_ipv4_listener_children_are_born_with_their_own_identity"),
    ("events", "children::wildcard_ipv6_listener_children_are_born_with_their_own_identity"),
    ("events", "filters::filters_filter_ipv6_only"),
    ("events", "filters::filters_filter_by_pid"),
    ("events", "lifecycle::sigterm_detaches_everything"),
    ("events", "cli::hollow_programs_are_attached_and_send_nothing"),
    // The failed-connect hook reads its arguments two ways (5.10: entry program).
    ("events", "why::unroutable_connects_are_connect_errors_with_errno"),
    // What each kernel frees at a socket's teardown, as drops (6.1 too: a
    // row per connection leaked there as on the newest).
    ("events", "drops::a_torn_down_connection_leaves_no_row_behind"),
    // The closer named from its own close(), a new kernel-side owner read.
    ("holders", "an_execd_program_that_closes_as_it_exits_is_named"),
    ("table", "seeded::seeded_table_matches_ss"),
    ("oneshot", "snapshot_loads_only_the_iterator"),
    ("diff", "diff_shows_new_listener_and_connection_with_owners"),
    ("serve", "metrics::scrape_matches_ss_for_the_tests_own_connections"),
    ("serve", "lifecycle::sigterm_exits_0_and_detaches_everything"),
    ("traffic", "tcp_counts_are_exact_live_and_at_close"),
    ("traffic", "udp_counts_are_exact_live_and_at_close"),
];

/// Generous for a TCG boot that runs [`CI_SUBSET`]; a hung guest must not hang CI.
const CI_TIMEOUT: Duration = Duration::from_secs(20 * 60);

#[derive(Args)]
pub struct VmtestOptions {
    /// A kernel to test on (repeatable): 5.10, 6.1, 6.12, newest or a
    /// directory as for `cargo xtask vm`. Default: 5.10, 6.1, 6.12, newest.
    #[arg(long = "kernel", value_name = "KERNEL")]
    kernels: Vec<String>,
    /// Run only the subset CI runs under TCG instead of every test.
    #[arg(long, conflicts_with = "filters")]
    ci_subset: bool,
    /// Stop a kernel's guest after this many seconds (the full suite takes over an hour under TCG).
    #[arg(long, default_value_t = 3 * 3600)]
    timeout: u64,
    /// Show the kernels' boot messages and trace the guests' init.
    #[arg(long)]
    verbose: bool,
    /// Arguments for the test binaries' harness, e.g. a test-name filter.
    #[arg(last = true, value_name = "FILTER")]
    filters: Vec<String>,
}

/// Runs the integration tests on each kernel; fails if any kernel fails.
pub fn vmtest(options: &VmtestOptions) -> Result<()> {
    crate::setup::setup()?;
    let kernels: Vec<String> = if options.kernels.is_empty() {
        matrix::DEFAULT_KERNELS.iter().map(ToString::to_string).collect()
    } else {
        options.kernels.clone()
    };
    let selection = if options.ci_subset {
        matrix::Selection::Exact(CI_SUBSET)
    } else {
        matrix::Selection::All(options.filters.clone())
    };
    let results = matrix::run(&kernels, &selection, Duration::from_secs(options.timeout), options.verbose)?;
    matrix::summarize(&results)
}

/// CI's kernel stage (`cargo xtask test`): [`CI_SUBSET`] on [`CI_KERNELS`]. Returns a one-line summary.
pub fn ci_stage() -> Result<String> {
    let kernels: Vec<String> = CI_KERNELS.iter().map(ToString::to_string).collect();
    let results = matrix::run(&kernels, &matrix::Selection::Exact(CI_SUBSET), CI_TIMEOUT, false)?;
    matrix::summarize(&results)?;
    Ok(results
        .iter()
        .map(|result| {
            let lockups = match result.lockups.len() {
                0 => String::new(),
                n => format!(" (after {n} kernel lockup(s), see above)"),
            };
            format!("{}: {} passed in {} s{lockups}", result.spec, result.tally.passed, result.elapsed.as_secs())
        })
        .collect::<Vec<_>>()
        .join(", "))
}

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
    if options.command.is_empty() {
        bail!("no command given: `cargo xtask vm --kernel 6.1 -- CMD ARGS...`");
    }
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
