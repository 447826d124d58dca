//! The socket-file iterator: which process holds which socket, read from
//! the kernel's file tables in one pass instead of a `readlink` per
//! `/proc/PID/fd/N` (the program: `netwatch-ebpf/src/iter.rs`).
//!
//! Loaded with four plain bpf(2) calls ([`sys`]) rather than through aya:
//! aya parses the kernel's whole BTF (5 MB; 25 ms idle, over 100 ms on a
//! busy machine) once in `EbpfLoader::new` and again for `Iter::load`, which
//! would be most of a one-shot `netwatch -tanp`. The iterator needs little:
//! its instructions ([`object`]), the offsets global in a frozen read-only
//! map, and the BTF id of `bpf_iter_task_file`, found by [`super::btf`] in
//! the same pass as the offsets. Every fd is dropped on return: nothing
//! stays loaded, attached or pinned.

mod object;

use super::sys;
use std::{
    fs::File,
    io::Read as _,
    sync::atomic::{AtomicBool, Ordering::Relaxed},
};

use anyhow::{bail, Context as _, Result};
use netwatch_common::{names, SocketFd};

use super::{btf, OBJECT};

/// Whether this kernel's verifier refused the iterator program (5.10: no
/// `bpf_sock_from_file`). It refuses it every time, so once is enough:
/// every later walk (the seed's re-read after lost events, the holders'
/// walks) scans `/proc` instead, without a load or a warning each time.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether the kernel has refused the iterator program in this process.
pub fn refused() -> bool {
    REFUSED.load(Relaxed)
}

/// Every socket descriptor of every process, as `(inode, tgid, fd, comm)`.
pub fn socket_fds() -> Result<Vec<SocketFd>> {
    let target = format!("bpf_iter_{}", names::ITER_TASK_FILE);
    let (offsets, btf_id) = btf::resolve_with_func(&target)?;
    // SAFETY: viewing a plain-old-data struct as its bytes.
    let offsets = unsafe {
        std::slice::from_raw_parts(
            (&offsets as *const netwatch_common::KernelOffsets).cast::<u8>(),
            size_of_val(&offsets),
        )
    };
    let section = format!("iter/{}", names::ITER_TASK_FILE);
    let mut program = object::Program::extract(OBJECT, &section, names::GLOBAL_OFFSETS, offsets)?;
    let rodata = sys::rodata_map("nw_iter_rodata", &program.rodata)?;
    program.relocate(std::os::fd::AsRawFd::as_raw_fd(&rodata));
    let prog = sys::load_iter(names::PROG_ITER_SOCKET_FDS, &program.insns, btf_id).inspect_err(|_| {
        REFUSED.store(true, Relaxed);
    })?;
    let mut iter = File::from(sys::open_iter(&prog)?);
    let mut bytes = Vec::with_capacity(1 << 20);
    iter.read_to_end(&mut bytes).context("reading the socket-file iterator")?;
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Result<Vec<SocketFd>> {
    const SIZE: usize = size_of::<SocketFd>();
    if !bytes.len().is_multiple_of(SIZE) {
        bail!("socket-file iterator returned {} bytes, not a whole number of {SIZE}-byte records", bytes.len());
    }
    Ok(bytes
        .chunks_exact(SIZE)
        // SAFETY: SocketFd is plain old data and the chunk holds exactly one.
        .map(|chunk| unsafe { chunk.as_ptr().cast::<SocketFd>().read_unaligned() })
        .collect())
}

#[cfg(test)]
mod tests {
    use netwatch_common::Bytes16;

    use super::*;

    #[test]
    fn parses_whole_records_and_rejects_partial_ones() {
        let rec = SocketFd { inode: 42, tgid: 7, fd: 3, comm: Bytes16(*b"sshd\0\0\0\0\0\0\0\0\0\0\0\0") };
        // SAFETY: viewing a plain-old-data record as its bytes.
        let raw = unsafe { std::slice::from_raw_parts((&rec as *const SocketFd).cast::<u8>(), size_of::<SocketFd>()) };
        let two = [raw, raw].concat();
        assert_eq!(parse(&two).unwrap(), vec![rec, rec]);
        assert!(parse(&two[..40]).is_err());
        assert!(parse(&[]).unwrap().is_empty());
    }
}
