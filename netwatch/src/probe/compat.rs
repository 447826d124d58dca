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
//! - `bpf_task_pt_regs` (5.15), on x86-64: without it the failed-`connect()`
//!   hook is refused, and an entry program keeps each call's arguments.
//!
//! Where the tracing programs cannot make cookies, two cgroup programs
//! make them instead, ahead of the tracepoints (the eBPF crate's `cookies`).
//!
//! The bits are frozen globals: on a kernel that has both helpers the
//! verifier sees them as constants and drops the paths never taken.

use anyhow::{Context as _, Result};
use aya::{
    programs::{links::CgroupAttachMode, CgroupSock, SockOps, TracePoint},
    Btf, Ebpf,
};
use netwatch_common::names::{self, compat};

use super::{program, Globals};

/// Live sockets netwatch can keep its own ids for (`names::MAP_IDS`); one
/// beyond that has an id per event until its kernel cookie exists.
pub const IDS_ENTRIES: u32 = 131_072;

/// What [`load`] made: the object, the compatibility bits it was loaded
/// with, and the one line to tell the user when any change what they see.
pub(crate) struct Loaded {
    pub ebpf: Ebpf,
    pub bits: u32,
    pub note: Option<String>,
}

/// Loads the object with the compatibility bits this kernel needs.
pub(crate) fn load(globals: &Globals, btf: &Btf) -> Result<Loaded> {
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
    // The register offsets the exit reads are x86-64's.
    if !cfg!(target_arch = "x86_64") || load_tracepoint(&mut ebpf, names::PROG_CONNECT_EXIT).is_err() {
        bits |= compat::NO_TASK_REGS;
    }
    if bits == 0 {
        return Ok(Loaded { ebpf, bits, note: None });
    }
    // Frozen globals are set when the maps are made: a second load.
    drop(ebpf);
    let mut ebpf = globals.load(btf, bits)?;
    let note = why.map(|e| {
        let lacks = format!("this kernel's tracing programs cannot make socket cookies ({})", refusal(&e));
        match make_cookies(&mut ebpf) {
            Ok(()) => format!(
                "{lacks}: they are made as sockets are created; sockets the kernel opens for itself carry \
                 an id of netwatch's own (2^52 and up) as their cookie"
            ),
            Err(e) => format!(
                "{lacks}, nor can netwatch have them made ({e:#}): sockets that had none when first seen \
                 carry an id of netwatch's own (2^52 and up) as their cookie"
            ),
        }
    });
    Ok(Loaded { ebpf, bits, note })
}

/// Attaches the programs that make kernel cookies where the tracepoints
/// cannot (the eBPF crate's `cookies` module says when each runs).
fn make_cookies(ebpf: &mut Ebpf) -> Result<()> {
    let (path, cgroup) = super::traffic::open_cgroup_root()?;
    let p: &mut CgroupSock = program(ebpf, names::PROG_SOCK_CREATE)?.try_into()?;
    p.load().with_context(|| format!("loading {}", names::PROG_SOCK_CREATE))?;
    p.attach(&cgroup, CgroupAttachMode::Single)
        .with_context(|| format!("attaching {} to {}", names::PROG_SOCK_CREATE, path.display()))?;
    let p: &mut SockOps = program(ebpf, names::PROG_SOCK_OPS)?.try_into()?;
    p.load().with_context(|| format!("loading {}", names::PROG_SOCK_OPS))?;
    p.attach(&cgroup, CgroupAttachMode::Single)
        .with_context(|| format!("attaching {} to {}", names::PROG_SOCK_OPS, path.display()))?;
    Ok(())
}

fn load_tracepoint(ebpf: &mut Ebpf, prog: &str) -> Result<()> {
    let p: &mut TracePoint = program(ebpf, prog)?.try_into()?;
    Ok(p.load()?)
}

/// The verifier's reason, where it names the missing function, else the
/// error's first line: what a user needs of a refusal, in one line.
pub fn refusal(e: &anyhow::Error) -> String {
    refusal_line(&format!("{e:#}"))
}

/// [`refusal`] of an error already written out.
pub fn refusal_line(text: &str) -> String {
    text.lines()
        .find(|l| l.contains("unknown func") || l.contains("invalid func"))
        .unwrap_or_else(|| text.lines().next().unwrap_or_default())
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn refusal_names_the_missing_function() {
        let log = "the BPF_PROG_LOAD syscall failed. Verifier output: 0: R1=ctx() R10=fp0\n\
                   ; let sk = ...\n\
                   12: (85) call bpf_get_socket_cookie#46\n\
                   unknown func bpf_get_socket_cookie#46\n\
                   processed 12 insns";
        let e = anyhow::anyhow!("{log}").context("loading nw_set_state for BTF tracepoint inet_sock_set_state");
        assert_eq!(refusal(&e), "unknown func bpf_get_socket_cookie#46");
    }

    #[test]
    fn an_iterator_refusal_is_one_line() {
        let log = "loading program nw_iter_sockfd (verifier says:  R1=ctx(id=0,off=0,imm=0) R10=fp0\n\
                   7: (85) call unknown#162\n\
                   invalid func unknown#162\n\
                   processed 8 insns): Invalid argument (os error 22)";
        assert_eq!(super::refusal_line(log), "invalid func unknown#162");
    }

    #[test]
    fn refusal_without_a_verifier_line_is_the_first_line() {
        let e = anyhow::anyhow!("Operation not permitted (os error 1)\nmore").context("loading nw_set_state");
        assert_eq!(refusal(&e), "loading nw_set_state: Operation not permitted (os error 1)");
    }
}
