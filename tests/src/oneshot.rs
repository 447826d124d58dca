//! One-shot netwatch commands (`check`, `diff`, `snapshot --json`) run to
//! completion, with their exit code and output kept for assertions.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::netwatch::{netwatch_bin, require_root};

/// What a finished command left.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code (a death by signal fails the test).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Outcome {
    /// Stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("netwatch {:?}: stdout is not JSON ({e}):\n{}", self.args, self.stdout))
    }

    /// Panics with everything it printed unless it exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "netwatch {:?} exited {} (want {code})\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `netwatch ARGS` to completion.
pub fn run(args: &[&str]) -> Outcome {
    require_root();
    let out = Command::new(netwatch_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running netwatch {args:?}: {e}"));
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let code = out.status.code().unwrap_or_else(|| panic!("netwatch {args:?} died: {}", out.status));
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args,
    }
}

/// `netwatch snapshot --json > path`: a baseline file.
pub fn save_baseline(path: &Path) {
    let out = run(&["snapshot", "--json"]);
    out.expect_code(0);
    std::fs::write(path, &out.stdout).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("nwtest-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
