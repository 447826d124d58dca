//! `cargo xtask install [--prefix P] [--destdir D]`: the binary, the systemd
//! unit, the example configuration, man pages and shell completions, where
//! operators and packagers expect them. Man pages and completions come from
//! the netwatch binary itself (`netwatch man`, `netwatch completions`), so
//! xtask does not depend on the netwatch crate.
//!
//! Idempotent: a file whose content and mode are already right is left
//! alone, and each file is reported as installed, updated or unchanged. A
//! configuration the operator already has is never overwritten.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, setup};

/// The path the unit file names, rewritten for another prefix.
const UNIT_BINARY: &str = "/usr/local/bin/netwatch";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Installation prefix
    #[arg(long, value_name = "DIR", default_value = "/usr/local")]
    prefix: PathBuf,
    /// Stage everything under this directory instead of / (for packaging)
    #[arg(long, value_name = "DIR")]
    destdir: Option<PathBuf>,
    /// Install this netwatch binary instead of building one
    #[arg(long, value_name = "FILE")]
    netwatch: Option<PathBuf>,
}

/// One file to put in place.
struct Item {
    /// Absolute path on the target system (before DESTDIR).
    path: PathBuf,
    content: Vec<u8>,
    mode: u32,
    /// Leave an existing file alone (configuration the operator edits).
    keep_existing: bool,
}

pub fn install(opts: &Options) -> Result<()> {
    if !opts.prefix.is_absolute() {
        bail!("--prefix must be an absolute path, not {}", opts.prefix.display());
    }
    let binary = match &opts.netwatch {
        Some(path) => path.clone(),
        None => build()?,
    };
    let items = items(&binary, &opts.prefix)?;
    let mut changed = 0;
    for item in &items {
        let target = staged(opts.destdir.as_deref(), &item.path);
        let outcome = put(item, &target)?;
        changed += usize::from(matches!(outcome, "installed" | "updated"));
        eprintln!("xtask install: {outcome:<9} {}", target.display());
    }
    eprintln!("xtask install: {} files, {changed} changed", items.len());
    if opts.destdir.is_none() && changed > 0 {
        eprintln!("xtask install: to start the agent: systemctl daemon-reload && systemctl enable --now netwatch");
    }
    Ok(())
}

fn build() -> Result<PathBuf> {
    setup::setup()?;
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "netwatch"])).context("building netwatch failed")?;
    Ok(cmd::release_bin("netwatch"))
}

fn items(binary: &Path, prefix: &Path) -> Result<Vec<Item>> {
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
    let dist = cmd::root().join("netwatch/dist");
    let at = |rel: &str| prefix.join(rel);
    let bin_path = at("bin/netwatch");
    let unit = String::from_utf8(read(&dist.join("netwatch.service"))?).context("netwatch.service is not UTF-8")?;
    let unit = unit.replace(UNIT_BINARY, &bin_path.display().to_string());
    let file = |path: PathBuf, content: Vec<u8>| Item { path, content, mode: 0o644, keep_existing: false };

    let mut items = vec![
        Item { path: bin_path, content: read(binary)?, mode: 0o755, keep_existing: false },
        file(at("lib/systemd/system/netwatch.service"), unit.into_bytes()),
    ];
    // The serve command's example configuration, when this tree has one.
    let config = dist.join("netwatch.toml");
    if config.is_file() {
        let content = read(&config)?;
        items.push(file(at("share/doc/netwatch/netwatch.toml"), content.clone()));
        items.push(Item { keep_existing: true, ..file(PathBuf::from("/etc/netwatch/netwatch.toml"), content) });
    }
    for (name, content) in man_pages(binary)? {
        items.push(file(at("share/man/man1").join(name), content));
    }
    for (shell, rel) in [
        ("bash", "share/bash-completion/completions/netwatch"),
        ("zsh", "share/zsh/site-functions/_netwatch"),
        ("fish", "share/fish/vendor_completions.d/netwatch.fish"),
    ] {
        items.push(file(at(rel), output(Command::new(binary).args(["completions", shell]))?));
    }
    Ok(items)
}

/// Every page `netwatch man --dir` writes, by file name.
fn man_pages(binary: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = std::env::temp_dir().join(format!("netwatch-man-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let result = (|| {
        output(Command::new(binary).arg("man").arg("--dir").arg(&dir))?;
        let mut pages = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).context("man page name is not UTF-8")?.to_owned();
            pages.push((name, fs::read(&path).with_context(|| format!("reading {}", path.display()))?));
        }
        pages.sort();
        anyhow::Ok(pages)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

fn output(command: &mut Command) -> Result<Vec<u8>> {
    let out = command.output().with_context(|| format!("could not start `{}`", cmd::describe(command)))?;
    if !out.status.success() {
        bail!("`{}` failed ({}): {}", cmd::describe(command), out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

fn staged(destdir: Option<&Path>, path: &Path) -> PathBuf {
    match destdir {
        Some(d) => d.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// Writes `item` at `target` unless it is already there; says what it did.
fn put(item: &Item, target: &Path) -> Result<&'static str> {
    let existing = fs::read(target).ok();
    let mode = fs::metadata(target).map(|m| m.permissions().mode() & 0o7777).ok();
    if existing.is_some() && item.keep_existing {
        return Ok(if existing.as_deref() == Some(&item.content[..]) { "unchanged" } else { "kept" });
    }
    if existing.as_deref() == Some(&item.content[..]) && mode == Some(item.mode) {
        return Ok("unchanged");
    }
    let dir = target.parent().context("target has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // A new file renamed over the old one: replacing a running binary in
    // place would fail (ETXTBSY), and a reader never sees half a file.
    let tmp = dir.join(format!(".{}.xtask-install", target.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    fs::write(&tmp, &item.content).with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(item.mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    fs::rename(&tmp, target).with_context(|| format!("moving {} to {}", tmp.display(), target.display()))?;
    Ok(if existing.is_some() { "updated" } else { "installed" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destdir_prefixes_absolute_paths() {
        let p = Path::new("/usr/local/bin/netwatch");
        assert_eq!(staged(Some(Path::new("/tmp/root")), p), PathBuf::from("/tmp/root/usr/local/bin/netwatch"));
        assert_eq!(staged(None, p), p.to_path_buf());
    }

    #[test]
    fn put_is_idempotent_and_keeps_edited_config() {
        let dir = std::env::temp_dir().join(format!("xtask-install-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let target = dir.join("a/b/file");
        let item = |content: &str, mode, keep_existing| Item {
            path: PathBuf::from("/a/b/file"),
            content: content.as_bytes().to_vec(),
            mode,
            keep_existing,
        };
        assert_eq!(put(&item("one", 0o644, false), &target).unwrap(), "installed");
        assert_eq!(put(&item("one", 0o644, false), &target).unwrap(), "unchanged");
        assert_eq!(put(&item("one", 0o755, false), &target).unwrap(), "updated");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(put(&item("two", 0o644, true), &target).unwrap(), "kept");
        assert_eq!(fs::read_to_string(&target).unwrap(), "one");
        assert_eq!(put(&item("two", 0o644, false), &target).unwrap(), "updated");
        assert_eq!(fs::read_to_string(&target).unwrap(), "two");
        fs::remove_dir_all(&dir).unwrap();
    }
}
