//! Builds the kernel programs (netwatch-ebpf) and embeds the object in the
//! netwatch binary, so `cargo build --release` yields one self-contained
//! executable.
//!
//! Toolchain choice, automatic: a rustup nightly with `rust-src` builds with
//! `-Z build-std` as usual; otherwise the `debian-bpf` toolchain (Debian's
//! rustc with a prebuilt `core` for the BPF targets, linked by
//! `cargo xtask setup`) builds with no unstable flags at all except
//! `RUSTC_BOOTSTRAP=aya_ebpf,netwatch`, which enables unstable features for
//! those two crates only: the one aya-ebpf uses, and `core_intrinsics` in
//! the kernel programs (crate `netwatch`, the eBPF binary) for the atomic
//! adds of the traffic counters. A list, not `1`: aya-build would add
//! `-Z build-std` for `1`, which needs rust-src.

use std::{path::Path, process::Command};

use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

const DEBIAN_TOOLCHAIN: &str = "debian-bpf";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=NETWATCH_BPF_TOOLCHAIN");
    let toolchain = match std::env::var("NETWATCH_BPF_TOOLCHAIN").ok().as_deref() {
        Some("nightly") => Toolchain::Nightly,
        Some(other) if !other.is_empty() => Toolchain::Custom(Box::leak(other.to_owned().into_boxed_str())),
        _ if nightly_has_rust_src() => Toolchain::Nightly,
        _ if has_toolchain(DEBIAN_TOOLCHAIN) => Toolchain::Custom(DEBIAN_TOOLCHAIN),
        _ => {
            return Err(anyhow!(
                "no toolchain can build the eBPF programs: need rustup nightly with rust-src, \
                 or the `{DEBIAN_TOOLCHAIN}` link made by `cargo xtask setup`"
            ))
        }
    };
    if matches!(toolchain, Toolchain::Custom(_)) {
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf,netwatch") };
    }
    let pkg = Package { name: "netwatch-ebpf", root_dir: "../netwatch-ebpf", ..Default::default() };
    aya_build::build_ebpf([pkg], toolchain).context("building the eBPF programs (netwatch-ebpf)")
}

fn rustup(args: &[&str]) -> Option<String> {
    let out = Command::new("rustup").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn nightly_has_rust_src() -> bool {
    rustup(&["run", "nightly", "rustc", "--print", "sysroot"])
        .is_some_and(|sysroot| Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core").is_dir())
}

fn has_toolchain(name: &str) -> bool {
    rustup(&["toolchain", "list"]).is_some_and(|list| list.lines().any(|l| l.split_whitespace().next() == Some(name)))
}
