//! The iterator program, taken out of netwatch's eBPF object: its
//! instructions, and the `.rodata` image its one relocation points into
//! (the offsets global).

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

/// `BPF_LD | BPF_IMM | BPF_DW`: the two-slot 64-bit load a global's
/// address compiles to.
const LD_IMM64: u8 = 0x18;
const INSN: usize = 8;

/// One program section, ready to be pointed at a map holding `rodata`.
#[derive(Debug)]
pub struct Program {
    /// Raw instructions, 8 bytes each.
    pub insns: Vec<u8>,
    /// The object's `.rodata` section, with `global` overwritten.
    pub rodata: Vec<u8>,
    /// Instruction indices that load an address in `.rodata`, with the
    /// offset inside it they load.
    relocations: Vec<(usize, u32)>,
}

impl Program {
    /// Extracts `section` from `elf` and writes `value` over the
    /// `.rodata` global named `global` (its size must match).
    pub fn extract(elf: &[u8], section: &str, global: &str, value: &[u8]) -> Result<Program> {
        let file = object::File::parse(elf).context("parsing netwatch's eBPF object")?;
        let code = file.section_by_name(section).ok_or_else(|| anyhow!("section {section} missing from the object"))?;
        let insns = code.data().with_context(|| format!("reading section {section}"))?.to_vec();
        ensure!(insns.len().is_multiple_of(INSN), "section {section} is not a whole number of instructions");
        let rodata_section =
            file.section_by_name(".rodata").ok_or_else(|| anyhow!(".rodata missing from the object"))?;
        let mut rodata = rodata_section.data().context("reading .rodata")?.to_vec();

        let sym = file.symbol_by_name(global).ok_or_else(|| anyhow!("global {global} missing from the object"))?;
        ensure!(sym.section_index() == Some(rodata_section.index()), "global {global} is not in .rodata");
        ensure!(sym.size() == value.len() as u64, "global {global} is {} bytes, expected {}", sym.size(), value.len());
        let start = usize::try_from(sym.address())?;
        rodata
            .get_mut(start..start + value.len())
            .ok_or_else(|| anyhow!("global {global} lies outside .rodata"))?
            .copy_from_slice(value);

        let mut relocations = Vec::new();
        for (offset, reloc) in code.relocations() {
            let RelocationTarget::Symbol(index) = reloc.target() else {
                bail!("section {section}: relocation at {offset:#x} has no symbol");
            };
            let target = file.symbol_by_index(index).context("relocation symbol")?;
            if target.section_index() != Some(rodata_section.index()) {
                bail!(
                    "section {section}: relocation at {offset:#x} refers to {:?}, which this loader does not handle \
                     (only .rodata globals)",
                    target.name().unwrap_or("?")
                );
            }
            let at = usize::try_from(offset)?;
            let insn = insns.get(at..at + 2 * INSN).ok_or_else(|| anyhow!("relocation at {offset:#x} out of range"))?;
            ensure!(insn[0] == LD_IMM64, "relocation at {offset:#x} is not a 64-bit load");
            // The addend (offset from the symbol) sits in the first immediate.
            let addend = u32::from_le_bytes(insn[4..8].try_into()?);
            let within = u32::try_from(target.address())? + addend;
            ensure!((within as usize) < rodata.len(), "relocation at {offset:#x} points outside .rodata");
            relocations.push((at / INSN, within));
        }
        Ok(Program { insns, rodata, relocations })
    }

    /// Points every `.rodata` load at `map_fd`, as `BPF_PSEUDO_MAP_VALUE`
    /// (the kernel turns it into the map value's address).
    pub fn relocate(&mut self, map_fd: i32) {
        const BPF_PSEUDO_MAP_VALUE: u8 = 2;
        for &(index, within) in &self.relocations {
            let insn = &mut self.insns[index * INSN..(index + 2) * INSN];
            insn[1] = (insn[1] & 0x0f) | (BPF_PSEUDO_MAP_VALUE << 4);
            insn[4..8].copy_from_slice(&map_fd.to_le_bytes());
            insn[12..16].copy_from_slice(&within.to_le_bytes());
        }
    }

    #[cfg(test)]
    pub fn relocation_count(&self) -> usize {
        self.relocations.len()
    }
}

#[cfg(test)]
mod tests {
    use netwatch_common::names;

    use super::*;

    #[test]
    fn extracts_the_iterator_from_the_built_object() {
        let value = [0xabu8; size_of::<netwatch_common::KernelOffsets>()];
        let mut p = Program::extract(crate::probe::OBJECT, "iter/task_file", names::GLOBAL_OFFSETS, &value).unwrap();
        assert!(!p.insns.is_empty());
        assert!(p.relocation_count() >= 1, "the program reads the offsets global");
        assert!(p.rodata.windows(value.len()).any(|w| w == value), "offsets written into the .rodata image");
        p.relocate(7);
        let (index, _) = p.relocations[0];
        let insn = &p.insns[index * INSN..];
        assert_eq!((insn[0], insn[1] >> 4), (LD_IMM64, 2));
        assert_eq!(i32::from_le_bytes(insn[4..8].try_into().unwrap()), 7);
    }

    #[test]
    fn missing_pieces_are_errors() {
        let obj = crate::probe::OBJECT;
        assert!(Program::extract(obj, "iter/nope", names::GLOBAL_OFFSETS, &[0; 88]).is_err());
        assert!(Program::extract(obj, "iter/task_file", "NOPE", &[0; 88]).is_err());
        assert!(Program::extract(obj, "iter/task_file", names::GLOBAL_OFFSETS, &[0; 3]).is_err());
        assert!(Program::extract(b"not an elf", "iter/task_file", names::GLOBAL_OFFSETS, &[0; 88]).is_err());
    }
}
