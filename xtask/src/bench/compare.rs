//! (b'') This build against another netwatch binary, interleaved in one run
//! (`--compare BIN`): the check a change to a kernel program or to the
//! events path owes, since the churn ratio moves by about 0.05 between runs
//! on these shared machines and only arms measured side by side can be
//! compared. Both arms run `events --json` against one untraced baseline,
//! rotated round by round ([`pairs::rotate`]).

use std::path::Path;

use anyhow::{Context as _, Result};

use super::{
    floor,
    pairs::{self, Pairs},
    peer,
    report::Section,
    steal, Ctx,
};

pub const TITLE: &str = "compare: full-rate churn, this build against another binary";
/// As in `floor`: fewer rounds let one disturbed run move a median by 5%.
const ROUNDS: usize = 10;
const RUN_SECONDS: u64 = 2;

pub fn run(ctx: &Ctx, other: &Path, section: &mut Section) -> Result<()> {
    if !other.is_file() {
        anyhow::bail!(
            "--compare {}: no such file (give a netwatch binary, e.g. main's target/release/netwatch)",
            other.display()
        );
    }
    let short = Ctx { netwatch: ctx.netwatch.clone(), peer: ctx.peer.clone(), seconds: RUN_SECONDS };
    let traced = |binary: &Path| {
        let (short, binary) = (&short, binary.to_path_buf());
        move || floor::traced_rate(short, &binary, &[])
    };
    let (mut this, mut that) = (traced(&ctx.netwatch), traced(other));
    let before = steal::Ticks::now()?;
    let arms = pairs::rotate(ROUNDS, || floor::given(peer::churn(&short, None)?), &mut [&mut this, &mut that])?;
    let stolen = steal::Ticks::now()?.stolen_since(&before);
    section.row("hypervisor steal during the runs", format!("{:.0}% of CPU time", stolen * 100.0));
    section.row("the other binary", other.display().to_string());
    let [this, that] = <[Pairs; 2]>::try_from(arms).ok().context("one result per arm")?;
    let what = format!("{RUN_SECONDS} s runs, alone / traced, per second given");
    this.report(section, &format!("this build, {what}"), None)?;
    that.report(section, &format!("the other binary, {what}"), None)?;
    Ok(())
}
