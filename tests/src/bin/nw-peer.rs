//! Loopback socket workloads for netwatch's integration tests and benchmarks.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    netwatch_tests::peer::run(netwatch_tests::peer::Cli::parse())
}
