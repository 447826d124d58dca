//! The bpf(2) commands netwatch issues itself, where aya has no call for
//! them: the four a one-shot iterator needs (each returning an owned fd, so
//! that everything is released when the caller is done), and reading a
//! hash map in batches.

use std::{
    ffi::CStr,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use aya_obj::generated::{
    bpf_attach_type::BPF_TRACE_ITER, bpf_attr, bpf_cmd, bpf_map_type::BPF_MAP_TYPE_ARRAY,
    bpf_prog_type::BPF_PROG_TYPE_TRACING, BPF_F_RDONLY_PROG,
};

/// bpf(2); `attr` is mutable because some commands write their answer back into it.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: `attr` is a fully initialised bpf_attr that outlives the call;
    // the kernel reads (and for some commands writes) only within its size.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd as libc::c_long, attr as *mut bpf_attr, size_of::<bpf_attr>()) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n),
    }
}

fn bpf_fd(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = i32::try_from(bpf(cmd, attr)?).map_err(|_| io::Error::other("bpf(2) returned an impossible fd"))?;
    // SAFETY: the kernel just created this fd for us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn zeroed() -> bpf_attr {
    // SAFETY: bpf_attr is plain data; the kernel requires unused fields zero.
    unsafe { std::mem::zeroed() }
}

fn name16(name: &str) -> [libc::c_char; 16] {
    let mut out = [0; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b as libc::c_char;
    }
    out
}

/// A one-element array map holding `value`, read-only for programs and
/// frozen, as aya makes `.rodata`.
pub fn rodata_map(name: &str, value: &[u8]) -> Result<OwnedFd> {
    let mut attr = zeroed();
    // SAFETY: writing the union member the command reads.
    let create = unsafe { &mut attr.__bindgen_anon_1 };
    create.map_type = BPF_MAP_TYPE_ARRAY as u32;
    create.key_size = 4;
    create.value_size = u32::try_from(value.len()).context("global data too large")?;
    create.max_entries = 1;
    create.map_flags = BPF_F_RDONLY_PROG;
    create.map_name = name16(name);
    let map = bpf_fd(bpf_cmd::BPF_MAP_CREATE, &mut attr).with_context(|| format!("creating map {name}"))?;

    let key = 0u32;
    let mut attr = zeroed();
    // SAFETY: as above.
    let update = unsafe { &mut attr.__bindgen_anon_2 };
    update.map_fd = map.as_raw_fd() as u32;
    update.key = &key as *const u32 as u64;
    update.__bindgen_anon_1.value = value.as_ptr() as u64;
    bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr).with_context(|| format!("filling map {name}"))?;

    let mut attr = zeroed();
    // BPF_MAP_FREEZE reads map_fd.
    attr.__bindgen_anon_2.map_fd = map.as_raw_fd() as u32;
    bpf(bpf_cmd::BPF_MAP_FREEZE, &mut attr).with_context(|| format!("freezing map {name}"))?;
    Ok(map)
}

/// Loads a `BPF_TRACE_ITER` program for the kernel function `btf_id`
/// (`bpf_iter_<target>` in vmlinux BTF). On failure the verifier's log is
/// part of the error.
pub fn load_iter(name: &str, insns: &[u8], btf_id: u32) -> Result<OwnedFd> {
    let license: &CStr = c"Dual MIT/GPL"; // as the object declares (netwatch-ebpf/src/main.rs)
    let attempt = |log: &mut [u8]| {
        let mut attr = zeroed();
        // SAFETY: writing the union member BPF_PROG_LOAD reads.
        let load = unsafe { &mut attr.__bindgen_anon_3 };
        load.prog_type = BPF_PROG_TYPE_TRACING as u32;
        load.expected_attach_type = BPF_TRACE_ITER as u32;
        load.insns = insns.as_ptr() as u64;
        load.insn_cnt = (insns.len() / 8) as u32;
        load.license = license.as_ptr() as u64;
        load.attach_btf_id = btf_id;
        load.prog_name = name16(name);
        if !log.is_empty() {
            load.log_level = 1;
            load.log_buf = log.as_mut_ptr() as u64;
            load.log_size = log.len() as u32;
        }
        bpf_fd(bpf_cmd::BPF_PROG_LOAD, &mut attr)
    };
    match attempt(&mut []) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 16];
            let again = attempt(&mut log);
            let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned();
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let why = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
            drop(again);
            Err(first).with_context(|| format!("loading program {name} (verifier says: {why})"))
        }
    }
}

/// Creates the iterator link for `prog` and opens a readable iterator.
pub fn open_iter(prog: &OwnedFd) -> Result<OwnedFd> {
    let mut attr = zeroed();
    // SAFETY: writing the union member BPF_LINK_CREATE reads.
    let create = unsafe { &mut attr.link_create };
    create.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    create.attach_type = BPF_TRACE_ITER as u32;
    let link = bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr).context("creating the iterator link")?;

    let mut attr = zeroed();
    attr.iter_create.link_fd = link.as_raw_fd() as u32;
    // The iterator fd keeps what it needs; the link fd can go.
    bpf_fd(bpf_cmd::BPF_ITER_CREATE, &mut attr).context("opening the iterator")
}

/// Entries a batch asks for at first: a hash map's bucket must fit whole,
/// and a larger batch is taken where one does not (ENOSPC).
const BATCH: usize = 4096;

/// Appends every entry of the hash map `map` to `out`, with
/// `BPF_MAP_LOOKUP_BATCH` (Linux 5.6): one system call per few thousand
/// entries, where a walk with `BPF_MAP_GET_NEXT_KEY` and a lookup makes two
/// per entry (at 70,000 sockets, a sixth of a core once a second). `K` and
/// `V` must be the map's key and value, plain data. Entries added or
/// removed meanwhile may be missed, as in any walk of a live map.
pub fn lookup_batch<K: aya::Pod, V: aya::Pod>(map: BorrowedFd<'_>, out: &mut Vec<(K, V)>) -> io::Result<()> {
    let mut room = BATCH;
    let (mut keys, mut values) = (vec![pod_zero::<K>(); room], vec![pod_zero::<V>(); room]);
    // Where the last call stopped, for the next (a hash map's bucket index,
    // 4 bytes; 8 leave room); no position before the first call.
    let (mut at, mut next) = (0u64, 0u64);
    let mut first = true;
    loop {
        let mut attr = zeroed();
        // SAFETY: writing the union member the batch commands read.
        let batch = unsafe { &mut attr.batch };
        batch.in_batch = if first { 0 } else { &raw const at as u64 };
        batch.out_batch = &raw mut next as u64;
        batch.keys = keys.as_mut_ptr() as u64;
        batch.values = values.as_mut_ptr() as u64;
        batch.count = room as u32;
        batch.map_fd = map.as_raw_fd() as u32;
        let done = match bpf(bpf_cmd::BPF_MAP_LOOKUP_BATCH, &mut attr) {
            Ok(_) => false,
            // The end, with the last entries copied.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            // SAFETY: reading back the member the kernel wrote.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && unsafe { attr.batch.count } == 0 => {
                // A bucket larger than the batch: ask for more at once.
                room = room.checked_mul(2).filter(|r| *r <= 1 << 22).ok_or(e)?;
                keys.resize(room, pod_zero());
                values.resize(room, pod_zero());
                continue;
            }
            Err(e) => return Err(e),
        };
        // SAFETY: as above; the kernel filled that many keys and values.
        let got = (unsafe { attr.batch.count } as usize).min(room);
        out.extend(keys[..got].iter().copied().zip(values[..got].iter().copied()));
        if done {
            return Ok(());
        }
        (at, first) = (next, false);
    }
}

fn pod_zero<T: aya::Pod>() -> T {
    // SAFETY: plain data, for which zero bytes are a value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd as _;

    use aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_HASH;

    use super::*;

    fn hash_map(entries: u32) -> OwnedFd {
        let mut attr = zeroed();
        // SAFETY: writing the union member BPF_MAP_CREATE reads.
        let create = unsafe { &mut attr.__bindgen_anon_1 };
        create.map_type = BPF_MAP_TYPE_HASH as u32;
        create.key_size = 8;
        create.value_size = 16;
        create.max_entries = entries;
        create.map_name = name16("nw_test_batch");
        bpf_fd(bpf_cmd::BPF_MAP_CREATE, &mut attr).expect("creating a hash map")
    }

    fn insert(map: &OwnedFd, key: u64, value: [u64; 2]) {
        let mut attr = zeroed();
        // SAFETY: writing the union member BPF_MAP_UPDATE_ELEM reads.
        let update = unsafe { &mut attr.__bindgen_anon_2 };
        update.map_fd = map.as_raw_fd() as u32;
        update.key = &raw const key as u64;
        update.__bindgen_anon_1.value = value.as_ptr() as u64;
        bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr).expect("inserting");
    }

    /// More entries than one batch holds: every one comes back once, with
    /// its value, across the calls; an empty map reads as empty.
    #[test]
    fn batches_read_every_entry_once() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: creating a BPF map needs root");
            return;
        }
        let map = hash_map(20_000);
        let mut out: Vec<(u64, [u64; 2])> = Vec::new();
        lookup_batch(map.as_fd(), &mut out).expect("reading an empty map");
        assert!(out.is_empty());
        let n = 2 * BATCH as u64 + 1000;
        for k in 0..n {
            insert(&map, k * 7919, [k, !k]);
        }
        lookup_batch(map.as_fd(), &mut out).expect("reading in batches");
        out.sort_unstable();
        assert_eq!(out.len() as u64, n);
        for (k, (key, value)) in out.into_iter().enumerate() {
            let k = k as u64;
            assert_eq!((key, value), (k * 7919, [k, !k]));
        }
    }
}
