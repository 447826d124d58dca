//! What an older kernel lacks, found by trying: the object is loaded with
//! no compatibility bits and the programs that need the newer helpers are
//! loaded; where the kernel refuses one, the object is loaded again with
//! the bits (`names::GLOBAL_COMPAT`) that steer the programs around what is
//! missing. Never by version number: distributions backport helpers.
//!
//! - `bpf_get_socket_cookie` from tracing programs (Linux 5.12): without
//!   it `nw_set_state` is refused, and the programs name sockets with ids
//!   of their own where the kernel has no cookie yet (the eBPF crate's
//!   `ident` module says how they stay one per socket).
//! - `bpf_get_current_task_btf` (5.11): without it the accept hooks are
//!   refused, and walk the accepting task's descriptors with probe reads.
//!
//! The bits are frozen globals: on a kernel that has both helpers the
//! verifier sees them as constants and drops the paths never taken.

use anyhow::Result;
use aya::{programs::TracePoint, Btf, Ebpf};
use netwatch_common::names::{self, compat};

use super::Globals;

/// Live sockets netwatch can keep its own ids for (`names::MAP_IDS`); one
/// beyond that has an id per event until its kernel cookie exists.
pub const IDS_ENTRIES: u32 = 131_072;

/// Loads the object with the compatibility bits this kernel needs, and the
/// one line to tell the user when it needs any that change what they see.
pub(crate) fn load(globals: &Globals, btf: &Btf) -> Result<(Ebpf, Option<String>)> {
    let mut ebpf = globals.load(btf, 0)?;
    let mut bits = 0;
    let mut why = None;
    if let Err(e) = super::load_btf(&mut ebpf, btf, names::PROG_SET_STATE, names::TP_SET_STATE) {
        bits |= compat::OWN_IDS;
        why = Some(e);
    }
    if load_tracepoint(&mut ebpf, names::PROG_ACCEPT4_EXIT).is_err() {
        bits |= compat::UNTYPED_TASK;
    }
    if bits == 0 {
        return Ok((ebpf, None));
    }
    // Frozen globals are set when the maps are made: a second load.
    drop(ebpf);
    let ebpf = globals.load(btf, bits)?;
    let note = why.map(|e| {
        format!(
            "this kernel's tracing programs cannot make socket cookies ({}): sockets that had none \
             when first seen carry an id of netwatch's own (2^52 and up) as their cookie",
            refusal(&e)
        )
    });
    Ok((ebpf, note))
}

fn load_tracepoint(ebpf: &mut Ebpf, prog: &str) -> Result<()> {
    let p: &mut TracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| anyhow::anyhow!("program {prog} missing from the eBPF object"))?
        .try_into()?;
    p.load()?;
    Ok(())
}

/// The verifier's reason, where it names the missing function, else the
/// error's first line.
fn refusal(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.lines()
        .find(|l| l.contains("unknown func") || l.contains("invalid func"))
        .unwrap_or_else(|| text.lines().next().unwrap_or_default())
        .trim()
        .to_owned()
}
