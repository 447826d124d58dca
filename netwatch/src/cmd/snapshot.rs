//! `netwatch snapshot`: the table once, for scripts.
//!
//! A one-shot view has no events to wait for, so it reads the kernel's
//! sockets into the same [`Table`] the live view keeps, without attaching
//! the programs: start-up cost is the enumeration alone.

use std::io::{self, BufWriter, Write};

use anyhow::{Context as _, Result};

use crate::{cli::SnapshotArgs, event::clock::monotonic_ns, output::snapshot, seed, table::Table};

pub fn run(args: &SnapshotArgs) -> Result<()> {
    let seed = seed::seed_all().context("enumerating sockets")?;
    for w in &seed.stats.warnings {
        eprintln!("netwatch: warning: {w}");
    }
    let mut table = Table::new(0);
    table.seed(seed.sockets, monotonic_ns());
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.json {
        snapshot::json(&mut out, &table)?;
    } else {
        snapshot::text(&mut out, &table)?;
    }
    out.flush()?;
    Ok(())
}
