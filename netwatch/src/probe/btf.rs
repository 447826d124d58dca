//! Resolves the kernel struct offsets the programs read, from the running
//! kernel's BTF (no CO-RE relocations in Rust eBPF: docs/design.md#no-co-re).
//!
//! A small BTF reader of its own rather than a general crate: a general one
//! decodes all ~125k vmlinux types eagerly (about 200 ms, most of the start-up
//! of the one-shot commands), while netwatch needs a handful of members of
//! eight structs. One linear pass records where each type starts; members are
//! then read on demand. The format is the kernel's Documentation/bpf/btf.rst.
//! Every read is checked, so a truncated or corrupt file is an error, not a panic.

use anyhow::{anyhow, bail, Context as _, Result};
use netwatch_common::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The structs [`resolve_offsets`] reads members of; the index pass records their ids.
const STRUCTS: &[&str] =
    &["sock", "net", "task_struct", "files_struct", "fdtable", "file", "socket", "socket_alloc", "tcp_sock", "sk_buff"];

/// The enum the `skb:kfree_skb` tracepoint's reason is a value of.
const DROP_REASON_ENUM: &str = "skb_drop_reason";

const MAGIC: u16 = 0xeb9f;
/// `struct btf_header` up to and including `str_len`; later versions may append fields.
const HEADER_LEN: usize = 24;
/// `struct btf_type`: name_off, info, size/type.
const TYPE_LEN: usize = 12;
/// Typedef and qualifier chains in real kernels are a few links long; the cap
/// stops a corrupt file whose chain loops.
const MAX_CHAIN: usize = 16;
/// Same for anonymous struct/union members nested in each other.
const MAX_ANON_DEPTH: usize = 16;

// BTF_KIND_* numbers (include/uapi/linux/btf.h).
const INT: u8 = 1;
const PTR: u8 = 2;
const ARRAY: u8 = 3;
const STRUCT: u8 = 4;
const UNION: u8 = 5;
const ENUM: u8 = 6;
const FWD: u8 = 7;
const TYPEDEF: u8 = 8;
const VOLATILE: u8 = 9;
const CONST: u8 = 10;
const RESTRICT: u8 = 11;
const FUNC: u8 = 12;
const FUNC_PROTO: u8 = 13;
const VAR: u8 = 14;
const DATASEC: u8 = 15;
const FLOAT: u8 = 16;
const DECL_TAG: u8 = 17;
const TYPE_TAG: u8 = 18;
const ENUM64: u8 = 19;

/// The fixed part of one type, decoded from its `struct btf_type`.
struct TypeHeader {
    name_off: u32,
    kind: u8,
    /// Member/parameter/value count of the kinds that have a list.
    vlen: u32,
    /// For structs and unions: member offsets carry a bitfield size in bits 24-31.
    kind_flag: bool,
    /// Size for INT/STRUCT/UNION/ENUM/..., the referenced type id for
    /// PTR/TYPEDEF/qualifiers/FUNC/VAR/TYPE_TAG.
    size_or_type: u32,
    /// Byte offset of the trailing data (members etc.) in the type section.
    data: usize,
}

/// Bytes of trailing data after the `btf_type` of each kind; an unknown kind
/// cannot be skipped, so the rest of the section would be misread.
fn trailing_len(id: usize, kind: u8, vlen: u32) -> Result<usize> {
    let vlen = vlen as usize;
    Ok(match kind {
        INT => 4,                    // encoding, offset, bits
        ARRAY => 12,                 // struct btf_array
        STRUCT | UNION => 12 * vlen, // struct btf_member
        ENUM => 8 * vlen,            // struct btf_enum
        FUNC_PROTO => 8 * vlen,      // struct btf_param
        VAR => 4,                    // struct btf_var (linkage)
        DATASEC => 12 * vlen,        // struct btf_var_secinfo
        DECL_TAG => 4,               // struct btf_decl_tag (component_idx)
        ENUM64 => 12 * vlen,         // struct btf_enum64
        PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
        other => bail!("BTF type id {id} has unknown kind {other} (newer than this netwatch understands)"),
    })
}

/// Reads a native-endian `u32` at `off`, `None` past the end.
fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let bytes = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// `buf[start..start + len]`, as an error naming `what` when out of range.
fn section<'a>(buf: &'a [u8], start: usize, len: u32, what: &str) -> Result<&'a [u8]> {
    start
        .checked_add(len as usize)
        .and_then(|end| buf.get(start..end))
        .ok_or_else(|| anyhow!("BTF {what} section ({len} bytes at {start}) runs past the end of the file"))
}

/// An index over a BTF blob: where each type starts, plus the ids of the wanted structs.
struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// `starts[id - 1]` is the offset of type `id` in `types` (id 0 is `void`).
    starts: Vec<u32>,
    /// Wanted struct names with the id of their first definition that has members.
    structs: Vec<(&'a str, u32)>,
    /// Wanted function names (`FUNC` types) with their ids: a tracing
    /// program names the kernel function it attaches to by this id.
    funcs: Vec<(&'a str, u32)>,
}

impl<'a> Btf<'a> {
    /// Checks the header and indexes the type section in one pass, noting the
    /// ids of the structs named in `wanted`.
    fn parse(data: &'a [u8], wanted: &[&'a str], funcs: &[&'a str]) -> Result<Self> {
        let header = data.get(..HEADER_LEN).ok_or_else(|| anyhow!("BTF truncated: {} bytes", data.len()))?;
        // The kernel writes BTF in its own byte order, which is ours.
        let magic = u16::from_ne_bytes([header[0], header[1]]);
        if magic == MAGIC.swap_bytes() {
            bail!("BTF is in the other byte order than this machine");
        }
        if magic != MAGIC {
            bail!("not BTF: magic {magic:#06x}, expected {MAGIC:#06x}");
        }
        if header[2] != 1 {
            bail!("unsupported BTF version {}", header[2]);
        }
        let field = |i: usize| u32_at(header, 4 + 4 * i).unwrap_or_default();
        let (hdr_len, type_off, type_len, str_off, str_len) = (field(0), field(1), field(2), field(3), field(4));
        if (hdr_len as usize) < HEADER_LEN {
            bail!("BTF header length {hdr_len} is shorter than {HEADER_LEN}");
        }
        // Section offsets count from the end of the header.
        let base = |off: u32| (hdr_len as usize).saturating_add(off as usize);
        let mut btf = Btf {
            types: section(data, base(type_off), type_len, "type")?,
            strings: section(data, base(str_off), str_len, "string")?,
            starts: Vec::new(),
            structs: Vec::new(),
            funcs: Vec::new(),
        };
        btf.index(wanted, funcs)?;
        Ok(btf)
    }

    /// The linear pass: each type's start, and the wanted structs' ids.
    fn index(&mut self, wanted: &[&'a str], funcs: &[&'a str]) -> Result<()> {
        // vmlinux types average a little over 30 bytes; avoids regrowing.
        self.starts.reserve(self.types.len() / 32);
        let mut pos = 0;
        while pos < self.types.len() {
            let id = self.starts.len() + 1;
            let start = u32::try_from(pos).context("BTF type section larger than 4 GiB")?;
            self.starts.push(start);
            let ty = self.header_at(id, pos)?;
            // Enums are indexed with the structs: the names never meet.
            let wanted = match ty.kind {
                STRUCT | ENUM if ty.vlen > 0 => wanted,
                FUNC => funcs,
                _ => &[],
            };
            if !wanted.is_empty() {
                let name = self.name(ty.name_off)?;
                if let Some(&want) = wanted.iter().find(|w| w.as_bytes() == name) {
                    let found = if ty.kind == FUNC { &mut self.funcs } else { &mut self.structs };
                    if !found.iter().any(|&(n, _)| n == want) {
                        found.push((want, id as u32));
                    }
                }
            }
            let len = trailing_len(id, ty.kind, ty.vlen)?;
            pos = ty.data.checked_add(len).filter(|&end| end <= self.types.len()).ok_or_else(|| {
                anyhow!("BTF truncated: type id {id} (kind {}) runs past the end of the type section", ty.kind)
            })?;
        }
        Ok(())
    }

    /// Decodes the `btf_type` of type `id`, which starts at `pos`.
    fn header_at(&self, id: usize, pos: usize) -> Result<TypeHeader> {
        let word =
            |i: usize| u32_at(self.types, pos + 4 * i).ok_or_else(|| anyhow!("BTF truncated inside type id {id}"));
        let info = word(1)?;
        Ok(TypeHeader {
            name_off: word(0)?,
            kind: ((info >> 24) & 0x1f) as u8,
            vlen: info & 0xffff,
            kind_flag: info >> 31 == 1,
            size_or_type: word(2)?,
            data: pos + TYPE_LEN,
        })
    }

    fn header(&self, id: u32) -> Result<TypeHeader> {
        let pos = id
            .checked_sub(1)
            .and_then(|i| self.starts.get(i as usize))
            .ok_or_else(|| anyhow!("BTF refers to type id {id}, but there are {} types", self.starts.len()))?;
        self.header_at(id as usize, *pos as usize)
    }

    /// The NUL-terminated name at `off` in the string section, without the NUL.
    fn name(&self, off: u32) -> Result<&'a [u8]> {
        let rest = self.strings.get(off as usize..).filter(|r| !r.is_empty());
        let rest = rest.ok_or_else(|| anyhow!("BTF name offset {off} is outside the string section"))?;
        let len = rest.iter().position(|&b| b == 0).ok_or_else(|| anyhow!("BTF name at {off} is not terminated"))?;
        Ok(&rest[..len])
    }

    fn struct_id(&self, name: &str) -> Option<u32> {
        self.structs.iter().find(|(n, _)| *n == name).map(|&(_, id)| id)
    }

    /// Follows typedefs and qualifiers to the type they name (0 for `void`).
    fn strip(&self, mut id: u32) -> Result<u32> {
        for _ in 0..MAX_CHAIN {
            if id == 0 {
                return Ok(0);
            }
            let ty = self.header(id)?;
            match ty.kind {
                // TYPE_TAG is a qualifier too (e.g. `__user`), so it is looked through alike.
                TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => id = ty.size_or_type,
                _ => return Ok(id),
            }
        }
        bail!("BTF typedef/qualifier chain from type id {id} is longer than {MAX_CHAIN}")
    }

    /// Finds member `name` of the struct or union `id` (through typedefs),
    /// looking inside anonymous members as C does. Returns its bit offset from
    /// the start of `id` and its (unstripped) type.
    fn find_member(&self, id: u32, name: &str, depth: usize) -> Result<Option<(u32, u32)>> {
        if depth > MAX_ANON_DEPTH {
            bail!("BTF anonymous members nested deeper than {MAX_ANON_DEPTH}");
        }
        let id = self.strip(id)?;
        if id == 0 {
            return Ok(None);
        }
        let ty = self.header(id)?;
        if !matches!(ty.kind, STRUCT | UNION) {
            return Ok(None);
        }
        for i in 0..ty.vlen as usize {
            // struct btf_member: name_off, type, offset; the index pass checked the bounds.
            let word = |j: usize| u32_at(self.types, ty.data + 12 * i + 4 * j).unwrap_or_default();
            let (member_name, member_ty, raw_offset) = (self.name(word(0))?, word(1), word(2));
            // With kind_flag the top 8 bits are the bitfield size, the low 24 the bit offset.
            let bits = if ty.kind_flag { raw_offset & 0x00ff_ffff } else { raw_offset };
            if member_name == name.as_bytes() {
                return Ok(Some((bits, member_ty)));
            }
            if member_name.is_empty() {
                if let Some((inner, t)) = self.find_member(member_ty, name, depth + 1)? {
                    let total = bits.checked_add(inner).ok_or_else(|| anyhow!("BTF member offset overflows"))?;
                    return Ok(Some((total, t)));
                }
            }
        }
        Ok(None)
    }

    /// The values and names of the indexed `enum name`.
    fn enum_values(&self, name: &str) -> Result<Vec<(u32, String)>> {
        let id = self.struct_id(name).ok_or_else(|| anyhow!("enum {name} not in kernel BTF"))?;
        let ty = self.header(id)?;
        (0..ty.vlen as usize)
            .map(|i| {
                // struct btf_enum: name_off, val; the index pass checked the bounds.
                let word = |j: usize| u32_at(self.types, ty.data + 8 * i + 4 * j).unwrap_or_default();
                Ok((word(1), String::from_utf8_lossy(self.name(word(0))?).into_owned()))
            })
            .collect()
    }

    /// Byte offset of `path` (member names, each inside the previous one's
    /// type) inside `struct outer`.
    fn offset(&self, outer: &str, path: &[&str]) -> Result<u32> {
        let what = || format!("struct {outer}.{}", path.join("."));
        let mut ty =
            self.struct_id(outer).ok_or_else(|| anyhow!("struct {outer} not in kernel BTF")).with_context(what)?;
        let mut total: u32 = 0;
        for name in path {
            let (bits, member_ty) = self
                .find_member(ty, name, 0)
                .with_context(what)?
                .ok_or_else(|| anyhow!("{} not found in kernel BTF", what()))?;
            total = total.checked_add(bits / 8).ok_or_else(|| anyhow!("{}: offset overflows", what()))?;
            ty = member_ty;
        }
        Ok(total)
    }
}

/// Reads every offset in [`KernelOffsets`] from the kernel's BTF.
pub fn resolve_offsets() -> Result<KernelOffsets> {
    kernel_btf(STRUCTS, &[], offsets_from)
}

/// [`resolve_offsets`], plus the BTF id of the kernel function `func` (what
/// an iterator or other tracing program attaches to), from the same pass.
pub fn resolve_with_func(func: &str) -> Result<(KernelOffsets, u32)> {
    kernel_btf(STRUCTS, &[func], |btf| {
        let id = btf.funcs.first().map(|&(_, id)| id).ok_or_else(|| {
            anyhow!("function {func} not in kernel BTF (this kernel lacks the BPF iterator netwatch needs)")
        })?;
        Ok((offsets_from(btf)?, id))
    })
}

/// The running kernel's packet drop reasons (`enum skb_drop_reason`, whose
/// numbering changes between kernels), by value, named as the
/// `skb:kfree_skb` tracepoint prints them (`NETFILTER_DROP`, ...).
pub fn drop_reasons() -> Result<Vec<(u32, String)>> {
    kernel_btf(&[DROP_REASON_ENUM], &[], |btf| Ok(reason_names(btf.enum_values(DROP_REASON_ENUM)?)))
}

fn reason_names(values: Vec<(u32, String)>) -> Vec<(u32, String)> {
    let short = |n: &str| n.strip_prefix("SKB_DROP_REASON_").or_else(|| n.strip_prefix("SKB_")).map(str::to_owned);
    values.into_iter().map(|(v, n)| (v, short(&n).unwrap_or(n))).collect()
}

/// Reads the kernel's BTF and hands `then` its index of `structs` and
/// `funcs`.
fn kernel_btf<T>(structs: &[&str], funcs: &[&str], then: impl FnOnce(&Btf<'_>) -> Result<T>) -> Result<T> {
    let data = match std::fs::read(VMLINUX_BTF) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "kernel BTF not found at {VMLINUX_BTF}: netwatch needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y"
        ),
        other => other.with_context(|| format!("reading kernel BTF {VMLINUX_BTF}"))?,
    };
    then(&Btf::parse(&data, structs, funcs).with_context(|| format!("parsing kernel BTF {VMLINUX_BTF}"))?)
}

fn offsets_from(btf: &Btf) -> Result<KernelOffsets> {
    let sc = |f: &str| btf.offset("sock", &["__sk_common", f]);
    Ok(KernelOffsets {
        skc_daddr: sc("skc_daddr")?,
        skc_rcv_saddr: sc("skc_rcv_saddr")?,
        skc_dport: sc("skc_dport")?,
        skc_num: sc("skc_num")?,
        skc_family: sc("skc_family")?,
        skc_net: sc("skc_net")?,
        skc_v6_daddr: sc("skc_v6_daddr")?,
        skc_v6_rcv_saddr: sc("skc_v6_rcv_saddr")?,
        sk_protocol: btf.offset("sock", &["sk_protocol"])?,
        net_inum: btf.offset("net", &["ns", "inum"])?,
        task_files: btf.offset("task_struct", &["files"])?,
        files_fdt: btf.offset("files_struct", &["fdt"])?,
        fdt_fd: btf.offset("fdtable", &["fd"])?,
        fdt_max_fds: btf.offset("fdtable", &["max_fds"])?,
        file_private_data: btf.offset("file", &["private_data"])?,
        socket_sk: btf.offset("socket", &["sk"])?,
        sk_socket: btf.offset("sock", &["sk_socket"])?,
        socket_ino: btf
            .offset("socket_alloc", &["vfs_inode", "i_ino"])?
            .checked_sub(btf.offset("socket_alloc", &["socket"])?)
            .ok_or_else(|| anyhow!("struct socket_alloc: vfs_inode precedes socket"))?,
        skc_cookie: sc("skc_cookie")?,
        task_tgid: btf.offset("task_struct", &["tgid"])?,
        task_comm: btf.offset("task_struct", &["comm"])?,
        tcp_bytes_sent: btf.offset("tcp_sock", &["bytes_sent"])?,
        tcp_bytes_retrans: btf.offset("tcp_sock", &["bytes_retrans"])?,
        tcp_bytes_received: btf.offset("tcp_sock", &["bytes_received"])?,
        tcp_segs_out: btf.offset("tcp_sock", &["segs_out"])?,
        tcp_segs_in: btf.offset("tcp_sock", &["segs_in"])?,
        sk_flags: sc("skc_flags")?,
        skc_state: sc("skc_state")?,
        inet_sport: btf.offset("tcp_sock", &["inet_conn", "icsk_inet", "inet_sport"])?,
        task_group_leader: btf.offset("task_struct", &["group_leader"])?,
        sk_err: btf.offset("sock", &["sk_err"])?,
        sk_err_soft: btf.offset("sock", &["sk_err_soft"])?,
        tcp_srtt_us: btf.offset("tcp_sock", &["srtt_us"])?,
        tcp_total_retrans: btf.offset("tcp_sock", &["total_retrans"])?,
        skb_sk: btf.offset("sk_buff", &["sk"])?,
        skc_hash: sc("skc_hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds small BTF blobs; types get ids 1, 2, ... in the order they are added.
    struct Blob {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Blob {
        fn new() -> Self {
            // String offset 0 is the empty name.
            Blob { types: Vec::new(), strings: vec![0] }
        }

        fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn words(&mut self, words: &[u32]) -> &mut Self {
            words.iter().for_each(|w| self.types.extend_from_slice(&w.to_ne_bytes()));
            self
        }

        /// A `btf_type`; the caller adds the kind's trailing data.
        fn ty(&mut self, name: &str, kind: u8, vlen: u32, kind_flag: bool, size_or_type: u32) -> &mut Self {
            let name = self.str(name);
            let info = (u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | vlen;
            self.words(&[name, info, size_or_type])
        }

        /// A `btf_member` (also the shape of `btf_var_secinfo` and `btf_enum64`).
        fn member(&mut self, name: &str, ty: u32, offset: u32) -> &mut Self {
            let name = self.str(name);
            self.words(&[name, ty, offset])
        }

        /// A 4-byte `int`.
        fn int(&mut self, name: &str) -> &mut Self {
            self.ty(name, INT, 0, false, 4).words(&[32])
        }

        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_ne_bytes());
            out.extend_from_slice(&[1, 0]); // version, flags
            let (types, strings) = (self.types.len() as u32, self.strings.len() as u32);
            for w in [HEADER_LEN as u32, 0, types, types, strings] {
                out.extend_from_slice(&w.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    fn offset(bytes: &[u8], outer: &'static str, path: &[&str]) -> Result<u32> {
        Btf::parse(bytes, &[outer], &[])?.offset(outer, path)
    }

    /// `struct outer { int x; union { int a; struct inner_t in; }; inner_t t; }`
    /// with `typedef const volatile struct inner inner_t` and
    /// `struct inner { int pad; int field; }`.
    fn nested() -> Vec<u8> {
        let mut b = Blob::new();
        b.int("int"); // 1
        b.ty("inner", STRUCT, 2, false, 8).member("pad", 1, 0).member("field", 1, 32); // 2
        b.ty("", CONST, 0, false, 2); // 3
        b.ty("", VOLATILE, 0, false, 3); // 4
        b.ty("inner_t", TYPEDEF, 0, false, 4); // 5
        b.ty("", UNION, 2, false, 8).member("a", 1, 0).member("in", 5, 0); // 6
        b.ty("outer", STRUCT, 3, false, 24).member("x", 1, 0).member("", 6, 64).member("t", 5, 128); // 7
        b.bytes()
    }

    #[test]
    fn finds_members_inside_anonymous_union() {
        let blob = nested();
        assert_eq!(offset(&blob, "outer", &["x"]).unwrap(), 0);
        assert_eq!(offset(&blob, "outer", &["a"]).unwrap(), 8);
        // Through the anonymous union, then through the typedef chain.
        assert_eq!(offset(&blob, "outer", &["in", "field"]).unwrap(), 12);
    }

    #[test]
    fn descends_through_typedef_and_qualifier_chain() {
        assert_eq!(offset(&nested(), "outer", &["t", "field"]).unwrap(), 20);
    }

    #[test]
    fn missing_struct_or_member_names_the_path() {
        let blob = nested();
        let err = format!("{:#}", offset(&blob, "outer", &["t", "nope"]).unwrap_err());
        assert!(err.contains("struct outer.t.nope not found"), "{err}");
        let err = format!("{:#}", offset(&blob, "absent", &["x"]).unwrap_err());
        assert!(err.contains("struct absent not in kernel BTF"), "{err}");
        // A member of an int has no members.
        let err = format!("{:#}", offset(&blob, "outer", &["x", "y"]).unwrap_err());
        assert!(err.contains("struct outer.x.y not found"), "{err}");
    }

    /// `struct bits { u8 a:3; u8 b:5; int c; u8 d:4 (at bit 72); }` with
    /// kind_flag: the top 8 bits of each offset are the bitfield size.
    #[test]
    fn bitfield_offsets_drop_the_size_bits() {
        let mut b = Blob::new();
        b.int("int"); // 1
        b.ty("bits", STRUCT, 4, true, 12)
            .member("a", 1, 3 << 24)
            .member("b", 1, (5 << 24) | 3)
            .member("c", 1, 32)
            .member("d", 1, (4 << 24) | 72); // 2
        let blob = b.bytes();
        assert_eq!(offset(&blob, "bits", &["a"]).unwrap(), 0);
        assert_eq!(offset(&blob, "bits", &["b"]).unwrap(), 0);
        assert_eq!(offset(&blob, "bits", &["c"]).unwrap(), 4);
        assert_eq!(offset(&blob, "bits", &["d"]).unwrap(), 9);
    }

    /// One type of every kind, each with its trailing data, before the struct
    /// looked up: a wrong skip size would misplace it.
    fn every_kind() -> Vec<u8> {
        let mut b = Blob::new();
        b.int("int"); // 1
        b.ty("", PTR, 0, false, 1); // 2
        b.ty("", ARRAY, 0, false, 0).words(&[1, 1, 4]); // 3: int[4]
        b.ty("fwd", FWD, 0, false, 0); // 4
        b.ty("", UNION, 2, false, 4).member("u1", 1, 0).member("u2", 1, 0); // 5
        b.ty("e", ENUM, 2, false, 4).words(&[0, 0, 0, 1]); // 6
        b.ty("td", TYPEDEF, 0, false, 1); // 7
        b.ty("", VOLATILE, 0, false, 1); // 8
        b.ty("", CONST, 0, false, 1); // 9
        b.ty("", RESTRICT, 0, false, 2); // 10
        b.ty("", FUNC_PROTO, 2, false, 1).words(&[0, 1, 0, 2]); // 11
        b.ty("f", FUNC, 0, false, 11); // 12
        b.ty("v", VAR, 0, false, 1).words(&[1]); // 13
        b.ty(".data", DATASEC, 1, false, 4).member("", 13, 0); // 14 (btf_var_secinfo: type, offset, size)
        b.ty("double", FLOAT, 0, false, 8); // 15
        b.ty("tag", DECL_TAG, 0, false, 12).words(&[u32::MAX]); // 16
        b.ty("user", TYPE_TAG, 0, false, 1); // 17
        b.ty("e64", ENUM64, 2, false, 8).member("", 1, 0).member("", 2, 0); // 18
        b.ty("target", STRUCT, 2, false, 8).member("lo", 1, 0).member("hi", 7, 32); // 19
        b.bytes()
    }

    #[test]
    fn finds_functions_by_name() {
        let blob = every_kind();
        let btf = Btf::parse(&blob, &[], &["f", "absent"]).unwrap();
        assert_eq!(btf.funcs, vec![("f", 12)]);
    }

    #[test]
    fn names_drop_reasons_from_their_enum() {
        let mut b = Blob::new();
        let names = ["SKB_NOT_DROPPED_YET", "SKB_DROP_REASON_NOT_SPECIFIED", "SKB_DROP_REASON_NETFILTER_DROP", "OTHER"];
        let [a, c, d, o] = names.map(|n| b.str(n));
        b.ty(DROP_REASON_ENUM, ENUM, 4, false, 4).words(&[a, 0, c, 2, d, 77, o, 78]);
        let blob = b.bytes();
        let btf = Btf::parse(&blob, &[DROP_REASON_ENUM], &[]).unwrap();
        let got = reason_names(btf.enum_values(DROP_REASON_ENUM).unwrap());
        let want = [(0, "NOT_DROPPED_YET"), (2, "NOT_SPECIFIED"), (77, "NETFILTER_DROP"), (78, "OTHER")];
        assert_eq!(got, want.map(|(v, n)| (v, n.to_owned())));
        assert!(Btf::parse(&blob, &["absent"], &[]).unwrap().enum_values("absent").is_err());
    }

    /// The reason the drop test provokes is named on this kernel.
    #[test]
    fn running_kernel_names_netfilter_drops() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipping: no {VMLINUX_BTF}");
            return;
        }
        let reasons = drop_reasons().unwrap();
        assert!(reasons.iter().any(|(_, n)| n == "NETFILTER_DROP"), "{reasons:?}");
        assert!(reasons.iter().any(|(v, n)| *v == 0 && n == "NOT_DROPPED_YET"), "{reasons:?}");
    }

    /// The iterator target the seed's owner scan attaches to.
    #[test]
    fn finds_the_task_file_iterator_on_running_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipping: no {VMLINUX_BTF}");
            return;
        }
        let (offsets, id) = resolve_with_func("bpf_iter_task_file").unwrap();
        assert_eq!(offsets, resolve_offsets().unwrap());
        assert!(id > 0);
        assert!(resolve_with_func("bpf_iter_no_such_thing").is_err());
    }

    #[test]
    fn skips_trailing_data_of_every_kind() {
        let blob = every_kind();
        // An independent reader accepts the hand-built blob as valid BTF.
        let other = btf_rs::Btf::from_bytes(&blob).unwrap();
        assert_eq!(other.resolve_ids_by_name("target").unwrap(), vec![19]);
        let btf = Btf::parse(&blob, &["target"], &[]).unwrap();
        assert_eq!(btf.starts.len(), 19);
        assert_eq!(btf.struct_id("target"), Some(19));
        assert_eq!(btf.offset("target", &["hi"]).unwrap(), 4);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let blob = every_kind();
        for len in 0..blob.len() {
            assert!(Btf::parse(&blob[..len], &["target"], &[]).is_err(), "prefix of {len} bytes parsed");
        }
    }

    /// A type section cut short (with a header that agrees) parses only when
    /// the cut falls between two types.
    #[test]
    fn type_cut_mid_type_is_an_error() {
        let full = every_kind();
        let starts = Btf::parse(&full, &[], &[]).unwrap().starts;
        let types = &full[HEADER_LEN..full.len() - strings_len(&full)];
        for cut in 0..types.len() {
            let mut b = Blob::new();
            b.types = types[..cut].to_vec();
            b.strings = full[HEADER_LEN + types.len()..].to_vec();
            let bytes = b.bytes();
            let boundary = starts.contains(&(cut as u32));
            assert_eq!(Btf::parse(&bytes, &[], &[]).is_ok(), boundary, "type section cut at {cut}");
        }
    }

    /// Length of the string section of a blob from [`Blob::bytes`].
    fn strings_len(blob: &[u8]) -> usize {
        u32_at(blob, 20).unwrap() as usize
    }

    #[test]
    fn bad_magic_version_or_header_is_an_error() {
        let blob = every_kind();
        let mutated = |at: usize, byte: u8| {
            let mut b = blob.clone();
            b[at] = byte;
            format!("{:#}", Btf::parse(&b, &["target"], &[]).err().unwrap())
        };
        assert!(mutated(0, 0).contains("not BTF: magic"));
        assert!(mutated(2, 2).contains("unsupported BTF version 2"));
        let mut short_header = blob.clone();
        short_header[4..8].copy_from_slice(&8u32.to_ne_bytes());
        assert!(format!("{:#}", Btf::parse(&short_header, &[], &[]).err().unwrap()).contains("header length 8"));
        let mut swapped = blob.clone();
        swapped.swap(0, 1);
        assert!(format!("{:#}", Btf::parse(&swapped, &[], &[]).err().unwrap()).contains("other byte order"));
    }

    #[test]
    fn out_of_range_references_are_errors() {
        let mut b = Blob::new();
        b.ty("s", STRUCT, 1, false, 4).member("m", 99, 0); // 1: member of nonexistent type 99
        b.ty("", TYPEDEF, 0, false, 3); // 2
        b.ty("", TYPEDEF, 0, false, 2); // 3: loops back to 2
        b.ty("loop", STRUCT, 1, false, 4).member("", 2, 0); // 4: anonymous member of the loop
        let blob = b.bytes();
        let err = format!("{:#}", offset(&blob, "s", &["m", "x"]).unwrap_err());
        assert!(err.contains("type id 99"), "{err}");
        let err = format!("{:#}", offset(&blob, "loop", &["x"]).unwrap_err());
        assert!(err.contains("chain"), "{err}");

        let mut selfish = Blob::new();
        selfish.ty("me", STRUCT, 1, false, 4).member("", 1, 0); // 1: anonymous member of itself
        let err = format!("{:#}", offset(&selfish.bytes(), "me", &["x"]).unwrap_err());
        assert!(err.contains("nested deeper"), "{err}");

        let mut bad_name = Blob::new();
        bad_name.words(&[1_000, (u32::from(STRUCT) << 24) | 1, 4]).member("m", 0, 0);
        let err = format!("{:#}", Btf::parse(&bad_name.bytes(), &["s"], &[]).err().unwrap());
        assert!(err.contains("name offset 1000"), "{err}");
    }

    #[test]
    fn unknown_kind_is_named() {
        let mut b = Blob::new();
        b.ty("x", 25, 0, false, 0);
        let err = format!("{:#}", Btf::parse(&b.bytes(), &[], &[]).err().unwrap());
        assert!(err.contains("type id 1 has unknown kind 25"), "{err}");
    }

    /// Runs against this machine's kernel; every kernel netwatch supports has
    /// these structs, so a failure here is a real incompatibility.
    #[test]
    fn resolves_offsets_from_running_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipping: no {VMLINUX_BTF}");
            return;
        }
        let o = resolve_offsets().unwrap();
        // Fixed by the C layout of sock_common since Linux 2.6: daddr first.
        assert_eq!(o.skc_daddr, 0);
        assert_eq!(o.skc_rcv_saddr, 4);
        assert_eq!(o.skc_dport + 2, o.skc_num);
        assert!(o.sk_protocol > o.skc_v6_rcv_saddr);
    }

    /// Every field agrees with what the btf-rs crate computes for this kernel.
    #[test]
    fn matches_btf_rs_on_running_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipping: no {VMLINUX_BTF}");
            return;
        }
        let btf = btf_rs::Btf::from_file(VMLINUX_BTF).unwrap();
        let off = |outer: &str, path: &[&str]| reference::offset(&btf, outer, path);
        let sc = |f: &str| off("sock", &["__sk_common", f]);
        let expected = KernelOffsets {
            skc_daddr: sc("skc_daddr"),
            skc_rcv_saddr: sc("skc_rcv_saddr"),
            skc_dport: sc("skc_dport"),
            skc_num: sc("skc_num"),
            skc_family: sc("skc_family"),
            skc_net: sc("skc_net"),
            skc_v6_daddr: sc("skc_v6_daddr"),
            skc_v6_rcv_saddr: sc("skc_v6_rcv_saddr"),
            sk_protocol: off("sock", &["sk_protocol"]),
            net_inum: off("net", &["ns", "inum"]),
            task_files: off("task_struct", &["files"]),
            files_fdt: off("files_struct", &["fdt"]),
            fdt_fd: off("fdtable", &["fd"]),
            fdt_max_fds: off("fdtable", &["max_fds"]),
            file_private_data: off("file", &["private_data"]),
            socket_sk: off("socket", &["sk"]),
            sk_socket: off("sock", &["sk_socket"]),
            socket_ino: off("socket_alloc", &["vfs_inode", "i_ino"]) - off("socket_alloc", &["socket"]),
            skc_cookie: sc("skc_cookie"),
            task_tgid: off("task_struct", &["tgid"]),
            task_comm: off("task_struct", &["comm"]),
            tcp_bytes_sent: off("tcp_sock", &["bytes_sent"]),
            tcp_bytes_retrans: off("tcp_sock", &["bytes_retrans"]),
            tcp_bytes_received: off("tcp_sock", &["bytes_received"]),
            tcp_segs_out: off("tcp_sock", &["segs_out"]),
            tcp_segs_in: off("tcp_sock", &["segs_in"]),
            sk_flags: sc("skc_flags"),
            skc_state: sc("skc_state"),
            inet_sport: off("tcp_sock", &["inet_conn", "icsk_inet", "inet_sport"]),
            task_group_leader: off("task_struct", &["group_leader"]),
            sk_err: off("sock", &["sk_err"]),
            sk_err_soft: off("sock", &["sk_err_soft"]),
            tcp_srtt_us: off("tcp_sock", &["srtt_us"]),
            tcp_total_retrans: off("tcp_sock", &["total_retrans"]),
            skb_sk: off("sk_buff", &["sk"]),
            skc_hash: sc("skc_hash"),
        };
        assert_eq!(resolve_offsets().unwrap(), expected);
    }

    /// The previous btf-rs based resolver, kept as the reference for the cross-check.
    mod reference {
        use btf_rs::{Btf, Type};

        pub fn offset(btf: &Btf, outer: &str, path: &[&str]) -> u32 {
            let mut ty = btf
                .resolve_types_by_name(outer)
                .unwrap()
                .into_iter()
                .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
                .unwrap();
            let mut total = 0;
            for name in path {
                let (bits, member_ty) = find_member(btf, &ty, name).unwrap_or_else(|| panic!("{outer}.{name}"));
                total += bits / 8;
                ty = member_ty;
            }
            total
        }

        fn strip(btf: &Btf, mut ty: Type) -> Type {
            loop {
                ty = match ty {
                    Type::Typedef(t) => btf.resolve_chained_type(&t).unwrap(),
                    Type::Volatile(t) | Type::Const(t) | Type::Restrict(t) => btf.resolve_chained_type(&t).unwrap(),
                    other => return other,
                };
            }
        }

        fn find_member(btf: &Btf, ty: &Type, name: &str) -> Option<(u32, Type)> {
            let (Type::Struct(s) | Type::Union(s)) = ty else { return None };
            for m in &s.members {
                let member_name = btf.resolve_name(m).unwrap_or_default();
                let member_ty = strip(btf, btf.resolve_chained_type(m).unwrap());
                if member_name == name {
                    return Some((m.bit_offset(), member_ty));
                }
                if member_name.is_empty() {
                    if let Some((bits, t)) = find_member(btf, &member_ty, name) {
                        return Some((m.bit_offset() + bits, t));
                    }
                }
            }
            None
        }
    }
}
