//! Resolves the kernel struct offsets the programs read, from the running
//! kernel's BTF (KERNEL-NOTES point 8: no CO-RE relocations in Rust eBPF).

use anyhow::{anyhow, bail, Context as _, Result};
use btf_rs::{Btf, Type};
use netwatch_common::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Byte offset of `path` (member names, descending through named members)
/// inside `struct outer`, looking through anonymous unions and structs as C does.
fn offset(btf: &Btf, outer: &str, path: &[&str]) -> Result<u32> {
    let what = || format!("struct {outer}.{}", path.join("."));
    let mut ty = struct_by_name(btf, outer).with_context(what)?;
    let mut total = 0;
    for (i, name) in path.iter().enumerate() {
        let (bits, member_ty) =
            find_member(btf, &ty, name)?.ok_or_else(|| anyhow!("{} not found in kernel BTF", what()))?;
        total += bits / 8;
        if i + 1 < path.len() {
            ty = member_ty;
        }
    }
    Ok(total)
}

fn struct_by_name(btf: &Btf, name: &str) -> Result<Type> {
    btf.resolve_types_by_name(name)
        .with_context(|| format!("struct {name} not in kernel BTF"))?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
        .ok_or_else(|| anyhow!("struct {name} not in kernel BTF"))
}

/// Strips typedefs and qualifiers down to the struct or union they name.
fn resolve_aggregate(btf: &Btf, mut ty: Type) -> Result<Type> {
    for _ in 0..16 {
        ty = match ty {
            Type::Typedef(t) => btf.resolve_chained_type(&t)?,
            Type::Volatile(t) | Type::Const(t) | Type::Restrict(t) => btf.resolve_chained_type(&t)?,
            other => return Ok(other),
        };
    }
    bail!("type chain too deep")
}

/// Finds `name` among the members of `ty`, recursing into anonymous members.
/// Returns the member's bit offset from the start of `ty` and its type.
fn find_member(btf: &Btf, ty: &Type, name: &str) -> Result<Option<(u32, Type)>> {
    let members = match ty {
        Type::Struct(s) | Type::Union(s) => &s.members,
        _ => return Ok(None),
    };
    for m in members {
        let member_name = btf.resolve_name(m).unwrap_or_default();
        let member_ty = resolve_aggregate(btf, btf.resolve_chained_type(m)?)?;
        if member_name == name {
            return Ok(Some((m.bit_offset(), member_ty)));
        }
        if member_name.is_empty() {
            if let Some((bits, t)) = find_member(btf, &member_ty, name)? {
                return Ok(Some((m.bit_offset() + bits, t)));
            }
        }
    }
    Ok(None)
}

/// Reads every offset in [`KernelOffsets`] from the kernel's BTF.
pub fn resolve_offsets() -> Result<KernelOffsets> {
    if !std::path::Path::new(VMLINUX_BTF).exists() {
        bail!(
            "kernel BTF not found at {VMLINUX_BTF}: netwatch needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    let btf = Btf::from_file(VMLINUX_BTF).with_context(|| format!("parsing kernel BTF {VMLINUX_BTF}"))?;
    let sc = |f: &str| offset(&btf, "sock", &["__sk_common", f]);
    Ok(KernelOffsets {
        skc_daddr: sc("skc_daddr")?,
        skc_rcv_saddr: sc("skc_rcv_saddr")?,
        skc_dport: sc("skc_dport")?,
        skc_num: sc("skc_num")?,
        skc_family: sc("skc_family")?,
        skc_net: sc("skc_net")?,
        skc_v6_daddr: sc("skc_v6_daddr")?,
        skc_v6_rcv_saddr: sc("skc_v6_rcv_saddr")?,
        sk_protocol: offset(&btf, "sock", &["sk_protocol"])?,
        net_inum: offset(&btf, "net", &["ns", "inum"])?,
        task_files: offset(&btf, "task_struct", &["files"])?,
        files_fdt: offset(&btf, "files_struct", &["fdt"])?,
        fdt_fd: offset(&btf, "fdtable", &["fd"])?,
        fdt_max_fds: offset(&btf, "fdtable", &["max_fds"])?,
        file_private_data: offset(&btf, "file", &["private_data"])?,
        socket_sk: offset(&btf, "socket", &["sk"])?,
        sk_socket: offset(&btf, "sock", &["sk_socket"])?,
        socket_ino: offset(&btf, "socket_alloc", &["vfs_inode", "i_ino"])?
            .checked_sub(offset(&btf, "socket_alloc", &["socket"])?)
            .ok_or_else(|| anyhow!("struct socket_alloc: vfs_inode precedes socket"))?,
        skc_cookie: sc("skc_cookie")?,
        task_tgid: offset(&btf, "task_struct", &["tgid"])?,
        task_comm: offset(&btf, "task_struct", &["comm"])?,
        _pad: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
