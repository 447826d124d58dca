//! `netwatch snapshot`: the table once, for scripts.
//!
//! Without `--for`, there are no events to wait for, so it reads the
//! kernel's sockets into the same [`Table`] the live view keeps without
//! attaching the programs: start-up cost is the enumeration alone. With
//! `--for`, it runs the live model for that long and prints its table, the
//! connections that came and went meanwhile, and the counters.

use std::{
    io::{self, BufWriter, Write},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::{
    event::clock::monotonic_ns,
    filter::{Filter, RowAt},
    live::Live,
    output::snapshot,
    seed,
    table::Table,
};

#[derive(Debug, Default, Args)]
pub struct SnapshotArgs {
    /// One JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// Watch the kernel's events for this long (e.g. 500ms, 10s, 2m) first, then print the live
    /// table and the connections that opened and closed meanwhile (needs root)
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::duration::parse_duration)]
    pub watch: Option<Duration>,
    /// How many closed connections to keep for --for
    #[arg(long, value_name = "N", default_value_t = 100_000, requires = "watch")]
    pub history: usize,
    #[command(flatten)]
    pub workload: crate::workload::cli::WorkloadArgs,
    /// A Name column: the remote address's name from the DNS answers its
    /// namespace received while watching (JSON has `rhost` regardless)
    #[arg(long, requires = "watch")]
    pub names: bool,
    /// Only the sockets (and closed connections) a filter expression selects
    /// (docs/filters.md); counts are of those too
    #[arg(long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// The filter expression as trailing words, as after `ss -tan`
    #[arg(value_name = "EXPR", trailing_var_arg = true)]
    pub expr: Vec<String>,
}

pub async fn run(args: &SnapshotArgs) -> Result<()> {
    let filter = super::filter_of(&args.filter, &args.expr, Filter::default())?;
    if let Some(span) = args.watch {
        let mut table = watch(span, args.history).await?;
        select(&mut table, &filter);
        // The live table has no RTT or drop counters: read them now.
        let figures = if args.json { figures_now()? } else { snapshot::FiguresByCookie::default() };
        return print(args, &table, &figures);
    }
    let opts = seed::SeedOptions { figures: args.json, ..seed::SeedOptions::default() };
    let seed = seed::seed(&opts).context("enumerating sockets")?;
    super::warn_all(&seed.stats.warnings);
    let figures = figures_of(&seed.sockets);
    let mut table = Table::new(0);
    table.seed(seed.sockets, monotonic_ns());
    select(&mut table, &filter);
    let printed = print(args, &table, &figures);
    // A one-shot about to exit: freeing tens of thousands of rows one by one
    // would only delay it (a tenth of a 40,000-socket run).
    std::mem::forget(table);
    printed
}

/// Runs the live model for `span`; returns its table.
async fn watch(span: Duration, history: usize) -> Result<Table> {
    let mut live = Live::start(history).await?;
    super::warn_all(live.warnings());
    eprintln!("netwatch: watching for {:.1}s", span.as_secs_f64());
    let deadline = Instant::now() + span;
    let mut result = Ok(());
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match live.next(left.min(Duration::from_millis(200))).await {
            Some(update) => super::warn_all(&update.warnings),
            None => {
                result = Err(anyhow::anyhow!("the event reader stopped early"));
                break;
            }
        }
    }
    // Apply what is queued, then re-read what events cannot report, so the
    // table printed is exact as of now.
    if let Some(update) = live.next(Duration::ZERO).await {
        super::warn_all(&update.warnings);
    }
    super::warn_all(live.refresh().await);
    let table = std::mem::replace(&mut live.table, Table::new(0));
    live.finish().await?;
    result.map(|()| table)
}

fn select(table: &mut Table, filter: &Filter) {
    if !filter.is_all() {
        let now_ns = monotonic_ns();
        // The expression may name `unit`, `container` or `cgroup`: a row's
        // is its first owner's. The table's resolver reads each owner's
        // cgroup once, for filtering and printing.
        let workloads = snapshot::Workloads::resolve(table);
        let of = |row: &crate::table::Row| row.owners.first().and_then(|o| workloads.by_pid.get(&o.pid));
        table.retain_for_output(|row| filter.matches(&RowAt { row, now_ns, workload: of(row) }), |c| filter.matches(c));
    }
}

/// The kernel's figures (drops, RTT) of the seeded sockets, by cookie.
fn figures_of(sockets: &[seed::SeedSocket]) -> snapshot::FiguresByCookie {
    sockets.iter().filter_map(|s| Some((s.cookie?, s.figures?))).collect()
}

/// The figures of every socket now, from a dump without the owner scan.
fn figures_now() -> Result<snapshot::FiguresByCookie> {
    let opts = seed::SeedOptions { owners: false, figures: true, ..seed::SeedOptions::default() };
    let seed = seed::seed(&opts).context("reading RTT and drop counters")?;
    Ok(figures_of(&seed.sockets))
}

fn print(args: &SnapshotArgs, table: &Table, figures: &snapshot::FiguresByCookie) -> Result<()> {
    let filter = args.workload.filter();
    let workloads = if args.json || args.workload.show || filter.is_set() {
        let resolved = snapshot::Workloads::resolve(table);
        snapshot::Workloads { column: args.workload.show, filter, ..resolved }
    } else {
        snapshot::Workloads::default()
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.json {
        snapshot::json_with(&mut out, table, &workloads, figures)?;
    } else {
        snapshot::text_with(&mut out, table, &workloads, args.names)?;
    }
    out.flush()?;
    Ok(())
}
