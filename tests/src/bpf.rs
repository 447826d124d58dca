//! What is loaded in the kernel, as `bpftool` and bpffs show it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub use netwatch_common::names::PROG_PREFIX;

fn bpftool(args: &[&str]) -> Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running bpftool {args:?} (is bpftool installed?): {e}"));
    assert!(out.status.success(), "bpftool {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bpftool {args:?} printed no JSON: {e}"))
}

fn bpftool_json(args: &[&str]) -> Vec<Value> {
    match bpftool(args) {
        Value::Array(items) => items,
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

/// The programs process `pid` attached through a perf event rather than a
/// BPF link: where the kernel has no perf links (before 5.15), classic
/// tracepoints attach this way, and `bpftool link` does not list them.
pub fn perf_attached(pid: u32) -> BTreeSet<u64> {
    bpftool_json(&["perf", "show"])
        .iter()
        .filter(|p| p["pid"].as_u64() == Some(u64::from(pid)))
        .filter_map(|p| p["prog_id"].as_u64())
        .collect()
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

/// The ids of the BPF objects (`what`: "map_id", "prog_id") that process
/// `pid` holds open, as its fds' fdinfo names them: how a test tells its
/// own netwatch's programs and maps from those of netwatches other tests
/// run at the same time.
pub fn held_by(pid: u32, what: &str) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_to_string(fd.path()).ok())
        .filter_map(|info| {
            info.lines().find_map(|l| l.strip_prefix(what)?.strip_prefix(':')?.trim().parse::<u64>().ok())
        })
        .collect()
}

/// The id of the map called `name` that process `pid` holds open.
pub fn map_of(pid: u32, name: &str) -> Option<u64> {
    let held = held_by(pid, "map_id");
    bpftool_json(&["map", "show"])
        .iter()
        .filter(|m| m["name"] == name)
        .filter_map(|m| m["id"].as_u64())
        .find(|id| held.contains(id))
}

/// `max_entries` of map `id` (a ring buffer's size in bytes).
pub fn max_entries(id: u64) -> u64 {
    let id = id.to_string();
    let shown = bpftool(&["map", "show", "id", &id]);
    shown["max_entries"].as_u64().unwrap_or_else(|| panic!("bpftool map show id {id}: {shown}"))
}

/// The keys of map `id`, as bytes.
pub fn map_keys(id: u64) -> Vec<Vec<u8>> {
    let id = id.to_string();
    bpftool_json(&["map", "dump", "id", &id])
        .iter()
        .map(|entry| {
            let bytes = entry["key"].as_array().unwrap_or_else(|| panic!("bpftool map dump: no key in {entry}"));
            bytes
                .iter()
                .map(|b| {
                    let hex = b.as_str().and_then(|s| s.strip_prefix("0x"));
                    hex.and_then(|h| u8::from_str_radix(h, 16).ok())
                        .unwrap_or_else(|| panic!("bpftool map dump: key byte {b}"))
                })
                .collect()
        })
        .collect()
}

/// `bpftool map lookup` of `key` (a `u32` index) in map `id`.
fn lookup(id: u64, key: u32) -> Value {
    let id = id.to_string();
    let key: Vec<String> = key.to_le_bytes().iter().map(u8::to_string).collect();
    let mut args = vec!["map", "lookup", "id", &id, "key"];
    args.extend(key.iter().map(String::as_str));
    bpftool(&args)
}

/// bpftool's `["0x01", ...]` as bytes.
fn bytes(v: &Value) -> Vec<u8> {
    let items = v.as_array().unwrap_or_else(|| panic!("bpftool: not a byte array: {v}"));
    items
        .iter()
        .map(|b| {
            let hex = b.as_str().and_then(|s| s.strip_prefix("0x"));
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or_else(|| panic!("bpftool: byte {b}"))
        })
        .collect()
}

/// Little-endian integer of up to 8 bytes.
fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |n, b| n << 8 | u64::from(*b))
}

/// Slot `key` of array `id` (its value as a little-endian integer), e.g.
/// the agent's reader flag.
pub fn array_value(id: u64, key: u32) -> u64 {
    let found = lookup(id, key);
    le(&bytes(&found["value"]))
}

/// Slot `key` of per-CPU array `id`, summed over the CPUs: how the kernel
/// side keeps its counters (e.g. events that found the ring full).
pub fn percpu_sum(id: u64, key: u32) -> u64 {
    let found = lookup(id, key);
    let values = found["values"].as_array().unwrap_or_else(|| panic!("bpftool lookup in map {id}: {found}"));
    values.iter().map(|v| le(&bytes(&v["value"]))).sum()
}
