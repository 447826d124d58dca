//! End-to-end tests of `netwatch events`: the real binary, real programs in
//! the kernel, real sockets from separate `nw-peer` processes.
//!
//! They need root and one thread (`cargo xtask test`); without root they
//! fail rather than skip. `NETWATCH_BIN` names the netwatch binary to test
//! (default: `target/release/netwatch`).

#[path = "events/children.rs"]
mod children;
#[path = "events/cli.rs"]
mod cli;
#[path = "events/filters.rs"]
mod filters;
#[path = "events/lifecycle.rs"]
mod lifecycle;
#[path = "events/owners.rs"]
mod owners;

/// Every test starts here.
fn setup() {
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}
