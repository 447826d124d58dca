//! `cargo xtask run -- ARGS`: set up, build, then become `netwatch ARGS` as
//! root. Exec rather than spawn, so the full-screen view owns the terminal
//! and netwatch's exit code is ours.

use std::os::unix::process::CommandExt as _;

use anyhow::{Context as _, Result};

use crate::{cmd, setup};

pub fn run(args: &[String]) -> Result<()> {
    setup::setup()?;
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "netwatch"])).context("building netwatch failed")?;
    let netwatch = cmd::release_bin("netwatch");
    let mut command = cmd::as_root(&netwatch)?;
    command.args(args);
    // exec only returns on failure.
    let err = command.exec();
    Err(err).with_context(|| format!("could not start `{}`", cmd::describe(&command)))
}
