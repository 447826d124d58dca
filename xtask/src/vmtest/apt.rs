//! A private apt configuration for fetching Debian kernel packages from
//! suites this machine does not use (bullseye-security, sid), leaving the
//! system's own apt state alone: its own sources list, lists and cache under
//! our cache directory, never `apt-get install`.
//!
//! The mirror is read at run time from the system's own sources, so the
//! project never names one: a machine behind a local mirror or proxy uses it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context as _, Result};

use crate::cmd;

const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Debian suite names a main archive may be listed under on this machine.
const DEBIAN_SUITES: &[&str] =
    &["bullseye", "bookworm", "trixie", "forky", "sid", "oldstable", "stable", "testing", "unstable"];
/// Package lists younger than this are reused: a kernel series gets a new
/// upload every few weeks, and each refresh costs seconds of download.
const LISTS_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// Which of Debian's two archives a suite lives in.
#[derive(Clone, Copy, Debug)]
pub enum Archive {
    Main,
    Security,
}

/// The archive URIs (and keyring) the system's own sources use.
#[derive(Debug, PartialEq, Eq)]
pub struct Mirrors {
    pub main: String,
    pub security: String,
    pub keyring: Option<String>,
}

impl Mirrors {
    /// From the environment (`NETWATCH_VMTEST_MIRROR`, `NETWATCH_VMTEST_SECURITY_MIRROR`)
    /// or else the system's apt sources.
    pub fn detect() -> Result<Self> {
        let mut texts = Vec::new();
        if let Ok(text) = fs::read_to_string(SOURCES_LIST) {
            texts.push((false, text));
        }
        if let Ok(dir) = fs::read_dir(SOURCES_DIR) {
            let mut paths: Vec<PathBuf> = dir.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
            paths.sort();
            for path in paths {
                let deb822 = match path.extension().and_then(|ext| ext.to_str()) {
                    Some("sources") => true,
                    Some("list") => false,
                    _ => continue,
                };
                if let Ok(text) = fs::read_to_string(&path) {
                    texts.push((deb822, text));
                }
            }
        }
        let sources: Vec<Source> = texts
            .iter()
            .flat_map(|(deb822, text)| if *deb822 { parse_deb822(text) } else { parse_one_line(text) })
            .collect();
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let main = env("NETWATCH_VMTEST_MIRROR").or_else(|| find(&sources, false).map(|s| s.uri.clone()));
        let security = env("NETWATCH_VMTEST_SECURITY_MIRROR").or_else(|| find(&sources, true).map(|s| s.uri.clone()));
        let (Some(main), Some(security)) = (main, security) else {
            bail!(
                "found no Debian main and security archive in {SOURCES_LIST} or {SOURCES_DIR}/: set \
                 NETWATCH_VMTEST_MIRROR and NETWATCH_VMTEST_SECURITY_MIRROR (e.g. a Debian mirror's /debian and \
                 /debian-security URIs)"
            );
        };
        let keyring = find(&sources, false)
            .and_then(|source| source.signed_by.clone())
            .or_else(|| Path::new(DEFAULT_KEYRING).is_file().then(|| DEFAULT_KEYRING.to_string()));
        Ok(Mirrors { main, security, keyring })
    }

    /// A sources.list naming `suites`, each on its archive.
    pub fn sources_list(&self, suites: &[(Archive, &str)]) -> String {
        let options = self.keyring.as_ref().map(|keyring| format!("[signed-by={keyring}] ")).unwrap_or_default();
        suites
            .iter()
            .map(|(archive, suite)| {
                let uri = match archive {
                    Archive::Main => &self.main,
                    Archive::Security => &self.security,
                };
                format!("deb {options}{uri} {suite} main\n")
            })
            .collect()
    }
}

#[derive(Debug)]
struct Source {
    uri: String,
    suites: Vec<String>,
    signed_by: Option<String>,
}

/// The first `deb` source carrying a Debian suite (`X-security` for the security archive).
fn find(sources: &[Source], security: bool) -> Option<&Source> {
    sources.iter().find(|source| {
        source.suites.iter().any(|suite| match suite.strip_suffix("-security") {
            Some(base) => security && DEBIAN_SUITES.contains(&base),
            None => !security && DEBIAN_SUITES.contains(&suite.as_str()),
        })
    })
}

/// deb822 `.sources` stanzas; only `Types: deb`, not disabled.
fn parse_deb822(text: &str) -> Vec<Source> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza.lines().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
                })
            };
            if !field("Types")?.split_whitespace().any(|kind| kind == "deb") {
                return None;
            }
            if field("Enabled").is_some_and(|enabled| enabled.eq_ignore_ascii_case("no")) {
                return None;
            }
            let uri = field("URIs")?.split_whitespace().next()?.trim_end_matches('/').to_string();
            let suites = field("Suites")?.split_whitespace().map(str::to_string).collect();
            // An inline key block cannot be passed on; the keyring file is the fallback.
            let signed_by = field("Signed-By").filter(|value| value.starts_with('/'));
            Some(Source { uri, suites, signed_by })
        })
        .collect()
}

/// One-line `deb [options] URI SUITE COMPONENT...` entries.
fn parse_one_line(text: &str) -> Vec<Source> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb ")?.trim_start();
            let (options, rest) = match rest.strip_prefix('[') {
                Some(bracketed) => bracketed.split_once(']')?,
                None => ("", rest),
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?.trim_end_matches('/').to_string();
            let suite = words.next()?.to_string();
            let signed_by =
                options.split_whitespace().find_map(|option| option.strip_prefix("signed-by=")).map(str::to_string);
            Some(Source { uri, suites: vec![suite], signed_by })
        })
        .collect()
}

/// One private apt state directory (sources, lists, cache) for a set of suites.
pub struct Apt {
    dir: PathBuf,
}

impl Apt {
    /// Creates `dir` with its sources list if needed.
    pub fn new(dir: &Path, sources_list: &str) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let list = dir.join("sources.list");
        if fs::read_to_string(&list).ok().as_deref() != Some(sources_list) {
            fs::write(&list, sources_list).with_context(|| format!("writing {}", list.display()))?;
            // New sources: the old lists no longer describe them.
            let _ = fs::remove_file(dir.join("updated"));
        }
        Ok(Apt { dir: dir.to_path_buf() })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let option = |name: &str, value: &Path| format!("{name}={}", value.display());
        command
            .arg("-o")
            .arg(option("Dir::Etc::SourceList", &self.dir.join("sources.list")))
            .args(["-o", "Dir::Etc::SourceParts=/dev/null"])
            .arg("-o")
            .arg(option("Dir::State::Lists", &self.dir.join("lists")))
            .arg("-o")
            .arg(option("Dir::Cache", &self.dir.join("cache")))
            // Our private directories belong to us, not to apt's `_apt` sandbox user.
            .args(["-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    /// Refreshes the package lists when older than [`LISTS_MAX_AGE`]. A failed
    /// refresh with lists already present only warns: the cached kernels still boot.
    pub fn update(&self) -> Result<()> {
        let stamp = self.dir.join("updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age < LISTS_MAX_AGE);
        if fresh {
            return Ok(());
        }
        let mut update = self.command("apt-get");
        update.args(["-q", "update"]);
        let out = update.output().with_context(|| format!("could not start `{}`", cmd::describe(&update)))?;
        if out.status.success() {
            fs::write(&stamp, "").with_context(|| format!("writing {}", stamp.display()))?;
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if self.dir.join("updated").exists() || has_lists(&self.dir.join("lists")) {
            eprintln!("xtask vm: warning: `apt-get update` failed, using the package lists already here: {stderr}");
            return Ok(());
        }
        bail!("`{}` failed ({}): {stderr}", cmd::describe(&update), out.status)
    }

    /// Every package name apt knows that starts with `prefix`.
    pub fn package_names(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = self.command("apt-cache");
        names.args(["pkgnames", prefix]);
        let out = cmd::probe(&mut names).with_context(|| format!("`{}` failed", cmd::describe(&names)))?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// The version apt would download for `package`, and the packages it depends on.
    pub fn candidate(&self, package: &str) -> Result<(String, Vec<String>)> {
        let mut show = self.command("apt-cache");
        show.args(["show", "--no-all-versions", package]);
        let out = cmd::probe(&mut show).with_context(|| format!("`{}` failed", cmd::describe(&show)))?;
        let field = |name: &str| out.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
        let version = field("Version: ").with_context(|| format!("`{}` printed no Version", cmd::describe(&show)))?;
        Ok((version.to_string(), field("Depends: ").map(depends_names).unwrap_or_default()))
    }

    /// Downloads `package` into `dir` (its current directory) and returns the .deb's path.
    pub fn download(&self, package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let deb = dir.join(format!("{package}_{}_amd64.deb", version.replace(':', "%3a")));
        if deb.is_file() {
            return Ok(deb);
        }
        let mut download = self.command("apt-get");
        download.current_dir(dir).args(["-q", "download"]).arg(format!("{package}={version}"));
        cmd::run(&mut download).context("downloading a kernel package failed")?;
        if !deb.is_file() {
            bail!("`{}` succeeded but {} is not there", cmd::describe(&download), deb.display());
        }
        Ok(deb)
    }
}

/// `a (>= 1) | b, c (= 2)` -> [a, c]: the first choice of each dependency.
fn depends_names(depends: &str) -> Vec<String> {
    depends
        .split(',')
        .filter_map(|choices| choices.split('|').next()?.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn has_lists(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| entry.file_name().to_string_lossy().ends_with("_Packages"))
    })
}

#[cfg(test)]
mod tests {
    use super::{depends_names, find, parse_deb822, parse_one_line, Archive, Mirrors};

    #[test]
    fn depends_keep_the_first_choice() {
        assert_eq!(
            depends_names("dracut | initramfs-tools (>= 0.120), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1),kmod"),
            ["dracut", "linux-binary-7.2.13+deb14-amd64", "kmod"]
        );
    }

    const DEB822: &str =
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\
        Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
        Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
        Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n";

    #[test]
    fn deb822_finds_main_and_security() {
        let sources = parse_deb822(DEB822);
        assert_eq!(sources.len(), 3);
        let main = find(&sources, false).unwrap();
        assert_eq!(main.uri, "http://mirror.example/debian");
        assert_eq!(main.signed_by.as_deref(), Some("/usr/share/keyrings/debian-archive-keyring.gpg"));
        assert_eq!(find(&sources, true).unwrap().uri, "http://mirror.example/debian-security");
    }

    #[test]
    fn disabled_and_source_stanzas_are_skipped() {
        let text = "Types: deb-src\nURIs: http://a/debian\nSuites: sid\n\n\
            Types: deb\nURIs: http://b/debian\nSuites: sid\nEnabled: no\n";
        assert!(parse_deb822(text).is_empty());
    }

    #[test]
    fn one_line_sources_with_options() {
        let text = "# deb http://old/debian buster main\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main\n\
            deb http://m/debian-security/ bookworm-security main contrib\ndeb https://packages.example/apt cloud-sdk main\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 3);
        assert_eq!(find(&sources, false).unwrap().signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(find(&sources, true).unwrap().uri, "http://m/debian-security");
    }

    #[test]
    fn sources_list_puts_each_suite_on_its_archive() {
        let mirrors = Mirrors { main: "http://m/debian".into(), security: "http://m/ds".into(), keyring: None };
        assert_eq!(
            mirrors.sources_list(&[(Archive::Main, "bullseye"), (Archive::Security, "bullseye-security")]),
            "deb http://m/debian bullseye main\ndeb http://m/ds bullseye-security main\n"
        );
    }
}
