//! What is loaded in the kernel, as `bpftool` and bpffs show it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Prefix of every netwatch program name.
pub const PROG_PREFIX: &str = "nw_";

fn bpftool_json(args: &[&str]) -> Vec<Value> {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running bpftool {args:?} (is bpftool installed?): {e}"));
    assert!(out.status.success(), "bpftool {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(items)) => items,
        other => panic!("bpftool {args:?} printed no JSON array: {other:?}"),
    }
}

/// Loaded programs whose names start with `nw_`, by id.
pub fn nw_programs() -> BTreeMap<u64, String> {
    bpftool_json(&["prog", "show"])
        .iter()
        .filter_map(|p| Some((p["id"].as_u64()?, p["name"].as_str()?.to_owned())))
        .filter(|(_, name)| name.starts_with(PROG_PREFIX))
        .collect()
}

/// Every BPF link, as `(link id, program id)`.
pub fn links() -> Vec<(u64, u64)> {
    bpftool_json(&["link", "show"]).iter().filter_map(|l| Some((l["id"].as_u64()?, l["prog_id"].as_u64()?))).collect()
}

/// Every path under /sys/fs/bpf (empty if bpffs is not mounted there).
pub fn pinned() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, out);
            }
            out.insert(path);
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new("/sys/fs/bpf"), &mut out);
    out
}
