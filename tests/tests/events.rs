//! End-to-end tests of `netwatch events`: the real binary, real programs in
//! the kernel, real sockets from separate `nw-peer` processes.
//!
//! They need root and one thread (`cargo xtask test`); without root they
//! fail rather than skip. `NETWATCH_BIN` names the netwatch binary to test
//! (default: `target/release/netwatch`).

#[path = "events/accepts.rs"]
mod accepts;
#[path = "events/children.rs"]
mod children;
#[path = "events/cli.rs"]
mod cli;
#[path = "events/dns.rs"]
mod dns;
#[path = "events/drops.rs"]
mod drops;
#[path = "events/filters.rs"]
mod filters;
#[path = "events/lifecycle.rs"]
mod lifecycle;
#[path = "events/loss.rs"]
mod loss;
#[path = "events/owners.rs"]
mod owners;
#[path = "events/why.rs"]
mod why;

/// Every test starts here.
fn setup() {
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}

/// [`setup`], then into a network namespace of the test's own (see
/// `netwatch_tests::netns`): keep it until the test ends.
#[must_use = "the test leaves its namespace when this is dropped"]
fn setup_in(tag: &str) -> netwatch_tests::netns::Own {
    setup();
    netwatch_tests::netns::own(tag)
}

/// `netwatch events --json --netns OWN ARGS`: only the test's namespace,
/// so that nothing else on the machine reaches what the test checks.
fn events_in(ns: &netwatch_tests::netns::Own, args: &[&str]) -> netwatch_tests::Netwatch {
    let own = ns.arg();
    let mut all = vec!["events", "--json", "--netns", &own];
    all.extend(args);
    netwatch_tests::Netwatch::start(&all)
}
