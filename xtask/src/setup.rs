//! `cargo xtask setup`: makes this machine able to build and test netwatch.
//!
//! Each step has a cheap check first, so a machine that is already set up
//! costs a few hundred milliseconds; `test`, `run` and `bench` call this
//! before anything else. The recipe and why it is this one:
//! CONTRIBUTING.md#toolchain (Debian's Rust 1.96 ships a prebuilt `core` for
//! the BPF targets, because rustup cannot fetch rust-src on these machines).

use std::{
    path::Path,
    process::{Command, Stdio},
};

use std::io::Write as _;

use anyhow::{bail, Context as _, Result};

use crate::cmd;

/// The eBPF toolchain (Debian's rustc with BPF `core`, LLVM 22 for
/// bpf-linker) and the tools the integration tests drive.
const APT_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    // clippy for that toolchain, which lints the eBPF crate (`cargo xtask test`).
    "rust-web-clippy",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "strace",
    "net-tools",
    "tmux",
    "bpftool",
    "procps",
    // Real servers and peers the integration tests run netwatch against:
    // nginx (daemonizing master and pre-forked workers), ApacheBench to
    // load it, a container runtime (podman with runc: crun cannot run on
    // hybrid cgroup hosts; its image is the VM step's static busybox).
    "nginx-light",
    "apache2-utils",
    "podman",
    "runc",
    // The OTLP receiver and manifest checks of the tests run in a venv (PYTHON_VENV).
    "python3-venv",
    "openssl",
    // nft: the drops test has a rule drop one segment of its own connection.
    "nftables",
];

/// What `cargo xtask vm`/`vmtest` need to boot other kernels: qemu (TCG),
/// a static busybox for the guest's initramfs, kmod's depmod to index the
/// kernels' modules, and xz/zstd to decompress them. Installed without
/// recommends: qemu-system-x86 would otherwise pull in a GTK display stack.
const VM_APT_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod", "xz-utils", "zstd"];

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// Must match the name netwatch/build.rs looks for.
const DEBIAN_TOOLCHAIN: &str = "debian-bpf";
const TRACEFS: &str = "/sys/kernel/tracing";

/// A step installs what is missing and says what it did, or that it was already there.
type Step = fn() -> Result<String>;

/// In dependency order: bpf-linker needs LLVM from apt, the toolchain link needs Debian's rustc.
const STEPS: &[(&str, Step)] = &[
    ("apt packages", apt_packages),
    ("VM packages", vm_apt_packages),
    ("bpf-linker", bpf_linker),
    ("eBPF toolchain", ebpf_toolchain),
    ("tracefs", tracefs),
    ("python packages", python_packages),
];

/// Where the tests' Python packages live (tests/otlp_receiver.py, the
/// Kubernetes manifest check): a venv, so nothing touches the system's Python.
pub const PYTHON_VENV: &str = "/var/cache/netwatch-py";
/// The official OTLP protobuf bindings and gRPC for the test receiver, and
/// the Kubernetes schema validator for deploy/kubernetes.
const PYTHON_PACKAGES: &[&str] = &["opentelemetry-proto==1.45.2", "grpcio==1.85.4", "kubernetes-validate==1.37.0"];

fn python_packages() -> Result<String> {
    let python = format!("{PYTHON_VENV}/bin/python3");
    let stamp = format!("{PYTHON_VENV}/netwatch-packages");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(format!("already present in {PYTHON_VENV}"));
    }
    require_root(&format!("python3 -m venv {PYTHON_VENV}"))?;
    if !Path::new(&python).exists() {
        cmd::run(Command::new("/usr/bin/python3").args(["-m", "venv", PYTHON_VENV]))
            .context("creating the tests' Python venv (needs python3-venv)")?;
    }
    cmd::run(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(PYTHON_PACKAGES))
        .context("pip install of the tests' Python packages failed: check access to PyPI")?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {stamp}"))?;
    Ok(format!("installed {} in {PYTHON_VENV}", PYTHON_PACKAGES.join(" ")))
}

pub fn setup() -> Result<()> {
    for &(name, step) in STEPS {
        let done = step().with_context(|| format!("setup step `{name}` failed"))?;
        // Not eprintln!: it panics when stderr is a closed pipe
        // (`cargo xtask run -- snapshot 2>&1 | head -1`).
        let _ = writeln!(std::io::stderr(), "setup: {name}: {done}");
    }
    Ok(())
}

fn apt_packages() -> Result<String> {
    install_missing(APT_PACKAGES, &[])
}

fn vm_apt_packages() -> Result<String> {
    install_missing(VM_APT_PACKAGES, &["--no-install-recommends"])
}

fn install_missing(packages: &[&str], install_args: &[&str]) -> Result<String> {
    let Some(status) = dpkg_status(packages) else {
        return Ok(format!("no dpkg here, skipped; install the equivalents of: {}", packages.join(" ")));
    };
    let missing: Vec<&str> = packages.iter().copied().filter(|pkg| !is_installed(&status, pkg)).collect();
    if missing.is_empty() {
        return Ok(format!("already present ({} packages)", packages.len()));
    }
    require_root(&format!("apt-get install -y {}", missing.join(" ")))?;
    cmd::run(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))
        .context("apt-get update failed: check the network and /etc/apt/sources.list (bookworm-security is needed)")?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y"])
            .args(install_args)
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get install failed: see apt's message above")?;
    Ok(format!("installed {}", missing.join(" ")))
}

/// One `dpkg-query` line per known package. It exits 1 when some packages
/// are unknown but still reports the others, so its status is not checked;
/// `None` only when there is no dpkg (not a Debian system).
fn dpkg_status(packages: &[&str]) -> Option<String> {
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${Status}\n")
        .args(packages)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Multi-arch packages may report one line per architecture; any installed one counts.
fn is_installed(dpkg_status: &str, package: &str) -> bool {
    dpkg_status
        .lines()
        .any(|line| line.strip_prefix(package).and_then(|rest| rest.strip_prefix(' ')) == Some("install ok installed"))
}

fn bpf_linker() -> Result<String> {
    if bpf_linker_ok() {
        return Ok(format!("{BPF_LINKER_VERSION} already installed"));
    }
    cmd::run(
        cmd::cargo()
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )
    .context("installing bpf-linker failed: it needs llvm-22-dev and libpolly-22-dev (the apt step)")?;
    if !bpf_linker_ok() {
        bail!("bpf-linker {BPF_LINKER_VERSION} was installed but `bpf-linker --version` does not find it: add ~/.cargo/bin to PATH");
    }
    Ok(format!("installed {BPF_LINKER_VERSION}"))
}

fn bpf_linker_ok() -> bool {
    cmd::probe(Command::new("bpf-linker").arg("--version"))
        .is_some_and(|out| out.split_whitespace().any(|word| word == BPF_LINKER_VERSION))
}

/// netwatch/build.rs prefers a nightly with rust-src (a laptop) and falls
/// back to the `debian-bpf` link; only the fallback needs setting up.
fn ebpf_toolchain() -> Result<String> {
    if nightly_has_rust_src() {
        return Ok("rustup nightly with rust-src present, it builds the eBPF crate".into());
    }
    let list = cmd::probe(Command::new("rustup").args(["toolchain", "list"]))
        .context("`rustup toolchain list` failed: netwatch's build needs rustup (https://rustup.rs)")?;
    if list.lines().any(|line| line.split_whitespace().next() == Some(DEBIAN_TOOLCHAIN)) {
        return Ok(format!("`{DEBIAN_TOOLCHAIN}` toolchain already linked"));
    }
    if !Path::new("/usr/bin/rustc").exists() {
        bail!("/usr/bin/rustc is missing: the apt step installs it (package rustc-web)");
    }
    cmd::run(Command::new("rustup").args(["toolchain", "link", DEBIAN_TOOLCHAIN, "/usr"]))
        .context("linking Debian's rustc as a rustup toolchain failed")?;
    Ok(format!("linked /usr as the `{DEBIAN_TOOLCHAIN}` toolchain"))
}

/// clippy on the eBPF crate, for the BPF target, with the toolchain that
/// builds it as netwatch/build.rs chooses it (the host's clippy stage cannot
/// build that crate).
pub fn ebpf_clippy() -> Command {
    let mut cargo = Command::new("rustup");
    cargo.current_dir(cmd::root());
    let mut args = vec!["clippy", "--release", "--target", "bpfel-unknown-none", "-p", "netwatch-ebpf"];
    if nightly_has_rust_src() {
        cargo.args(["run", "nightly", "cargo"]);
        args.extend(["-Z", "build-std=core"]);
    } else {
        // Debian's rustc ships `core` for the BPF target; the crate's
        // unstable features are allowed for it alone (its binary is called
        // `netwatch`), as netwatch/build.rs does.
        cargo.args(["run", DEBIAN_TOOLCHAIN, "cargo"]).env("RUSTC_BOOTSTRAP", "aya_ebpf,netwatch");
    }
    cargo.args(args).args(["--", "-D", "warnings"]);
    cargo
}

fn nightly_has_rust_src() -> bool {
    // Never let a probe download a toolchain.
    cmd::probe(
        Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]).env("RUSTUP_AUTO_INSTALL", "0"),
    )
    .is_some_and(|sysroot| Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core").is_dir())
}

fn tracefs() -> Result<String> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(format!("already mounted at {TRACEFS}"));
    }
    let mount = format!("mount -t tracefs tracefs {TRACEFS}");
    require_root(&mount)?;
    cmd::run(Command::new("mount").args(["-t", "tracefs", "tracefs", TRACEFS]))
        .context("mounting tracefs failed: does this kernel have CONFIG_TRACING?")?;
    Ok(format!("mounted at {TRACEFS}"))
}

fn require_root(what: &str) -> Result<()> {
    if !cmd::is_root() {
        bail!("this machine needs `{what}`, which needs root: run it with sudo (or run `cargo xtask setup` as root), then retry");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_installed;

    #[test]
    fn installed_needs_the_exact_package_and_status() {
        let status = "llvm-22-dev install ok installed\nllvm-22 deinstall ok config-files\nzlib1g-dev install ok installed\nzlib1g-dev install ok installed\n";
        assert!(is_installed(status, "llvm-22-dev"));
        assert!(!is_installed(status, "llvm-22"));
        assert!(!is_installed(status, "zlib1g"));
        assert!(!is_installed(status, "tmux"));
    }
}
