//! `cargo xtask install --destdir DIR`: every file where it belongs, a unit
//! that systemd accepts, man pages that render, completions that know the
//! subcommands, and a second run that changes nothing.
//!
//! Runs the xtask binary directly (`XTASK_BIN`, set by `cargo xtask test`,
//! else `target/debug/xtask`) with `--netwatch NETWATCH_BIN`, so no cargo
//! is started while cargo runs the tests.
//!
//! No network namespace of its own: installing writes files and opens no
//! socket, and netwatch is not run as a tracer here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netwatch_tests::netwatch_bin;
use netwatch_tests::oneshot::TempDir;

const SUBCOMMANDS: [&str; 4] = ["events", "snapshot", "check", "diff"];

fn xtask_bin() -> PathBuf {
    let path = std::env::var_os("XTASK_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/xtask"), PathBuf::from);
    assert!(path.is_file(), "xtask binary not found at {} (run `cargo xtask test`, or set XTASK_BIN)", path.display());
    path
}

fn install(destdir: &Path) -> String {
    let out = Command::new(xtask_bin())
        .args(["install", "--destdir"])
        .arg(destdir)
        .arg("--netwatch")
        .arg(netwatch_bin())
        .output()
        .expect("running xtask install");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "xtask install failed ({}):\n{stderr}", out.status);
    stderr
}

/// Whether `program` runs here at all (optional tools are checked only
/// where they exist).
fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn ok(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed ({}):\n{stderr}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn install_into_destdir_is_complete_and_idempotent() {
    netwatch_tests::require_root();
    let tmp = TempDir::new("install");
    let root = tmp.path();
    let first = install(root);
    let at = |rel: &str| root.join(rel);

    let bin = at("usr/local/bin/netwatch");
    assert_eq!(std::fs::read(&bin).expect("installed binary"), std::fs::read(netwatch_bin()).expect("binary"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&bin).expect("stat").permissions());
    assert_eq!(mode & 0o777, 0o755, "binary mode");

    let unit_path = at("usr/local/lib/systemd/system/netwatch.service");
    let unit = std::fs::read_to_string(&unit_path).expect("installed unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/netwatch serve --config /etc/netwatch/netwatch.toml"), "{unit}");
    if have("systemd-analyze") {
        // Verified as installed, with ExecStart pointing into DESTDIR so the
        // binary it names exists; unknown keys only warn, so stderr must be empty.
        let copy = at("verify/netwatch.service");
        std::fs::create_dir_all(copy.parent().expect("dir")).expect("mkdir");
        std::fs::write(&copy, unit.replace("/usr/local/bin/netwatch", &bin.display().to_string())).expect("write");
        let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().expect("run");
        ok(&out, "systemd-analyze verify");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "systemd-analyze verify warned");
    }

    let man_dir = at("usr/local/share/man/man1");
    for page in std::iter::once("netwatch".to_owned()).chain(SUBCOMMANDS.iter().map(|s| format!("netwatch-{s}"))) {
        let path = man_dir.join(format!("{page}.1"));
        assert!(path.is_file(), "no man page {}", path.display());
        if have("man") {
            let out = Command::new("man").arg("-l").arg(&path).env("MANWIDTH", "100").output().expect("man");
            let text = ok(&out, &format!("man -l {}", path.display()));
            assert!(text.contains("NAME") && text.contains(&page), "{page}.1 renders as:\n{text}");
        }
    }
    for rel in [
        "usr/local/share/bash-completion/completions/netwatch",
        "usr/local/share/zsh/site-functions/_netwatch",
        "usr/local/share/fish/vendor_completions.d/netwatch.fish",
    ] {
        let text = std::fs::read_to_string(at(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "{rel} does not mention `{sub}`");
        }
    }
    // The serve branch's example configuration, when this tree has one:
    // installed, and never overwritten once the operator has edited it.
    let config = at("etc/netwatch/netwatch.toml");
    let has_example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../netwatch/dist/netwatch.toml").is_file();
    assert_eq!(config.is_file(), has_example, "config installed iff netwatch/dist/netwatch.toml exists");
    if has_example {
        std::fs::write(&config, "# edited by the operator\n").expect("edit config");
    }

    let second = install(root);
    let files = first.lines().filter(|l| l.contains(" installed ")).count();
    assert!(files >= 5 + SUBCOMMANDS.len(), "first run:\n{first}");
    assert!(second.contains(&format!("{files} files, 0 changed")), "second run changed something:\n{second}");
    if has_example {
        assert_eq!(std::fs::read_to_string(&config).expect("config"), "# edited by the operator\n");
        assert!(second.contains("kept"), "{second}");
    }
}

/// `netwatch completions bash | head -1` and the like: the reader goes away
/// before netwatch writes, which must end it quietly (exit 0, as every other
/// netwatch output does), not with a panic and a backtrace.
#[test]
fn completions_and_man_into_a_closed_pipe_exit_quietly() {
    let tmp = TempDir::new("closed-pipe");
    let dir = tmp.path().join("man1");
    let dir = dir.to_str().expect("UTF-8 path");
    for args in [vec!["completions", "bash"], vec!["completions", "zsh"], vec!["man"], vec!["man", "--dir", dir]] {
        let mut child = Command::new(netwatch_bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running netwatch");
        // Closed before netwatch has started writing.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("waiting for netwatch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "netwatch {args:?} panicked:\n{stderr}");
        assert_eq!(out.status.code(), Some(0), "netwatch {args:?}: {}\n{stderr}", out.status);
    }
}
