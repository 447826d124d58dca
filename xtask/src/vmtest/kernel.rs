//! Which kernel to boot: a Debian kernel series, resolved to its newest
//! package at download time, or a directory the user prepared.
//!
//! Packages are fetched with `apt-get download` (never installed), unpacked
//! with `dpkg -x` into a cache shared by every checkout, their modules
//! decompressed (busybox's modprobe in the guest reads plain `.ko` files) and
//! indexed with `depmod`, since a package's postinst, which would do that, never runs.

use std::{
    fs,
    os::unix::io::AsRawFd as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use super::apt::{Apt, Archive, Mirrors};
use crate::cmd;

/// A Debian kernel series and where to look for it.
struct Series {
    name: &'static str,
    suites: &'static [(Archive, &'static str)],
    /// The leading version numbers every package of the series has; empty: any.
    version_prefix: &'static [u64],
}

const SERIES: &[Series] = &[
    // Debian 11's kernel, the series Amazon Linux 2 also runs.
    Series {
        name: "5.10",
        suites: &[(Archive::Main, "bullseye"), (Archive::Security, "bullseye-security")],
        version_prefix: &[5, 10],
    },
    // Debian 12's own kernel.
    Series {
        name: "6.1",
        suites: &[
            (Archive::Main, "bookworm"),
            (Archive::Main, "bookworm-updates"),
            (Archive::Security, "bookworm-security"),
        ],
        version_prefix: &[6, 1],
    },
    // The newer kernel Debian 12 offers (`6.12.*+deb12`).
    Series { name: "6.12", suites: &[(Archive::Security, "bookworm-security")], version_prefix: &[6, 12] },
    Series { name: "newest", suites: &[(Archive::Main, "sid")], version_prefix: &[] },
];

/// The names `--kernel` accepts besides a directory.
pub fn series_names() -> Vec<&'static str> {
    SERIES.iter().map(|series| series.name).collect()
}

/// A kernel ready to boot.
#[derive(Debug)]
pub struct Kernel {
    /// What the user asked for (`6.1`) and what it resolved to, for reports.
    pub label: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>`, decompressed and with `modules.dep`.
    pub modules: PathBuf,
    /// `uname -r` in the guest.
    pub release: String,
}

/// The directory for downloads and unpacked kernels: `NETWATCH_VMTEST_CACHE`,
/// else `/var/cache/netwatch-vmtest` for root, else the user's cache directory.
/// Shared by every checkout, so each kernel is fetched once per machine.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("NETWATCH_VMTEST_CACHE").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if cmd::is_root() {
        return Ok(PathBuf::from("/var/cache/netwatch-vmtest"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .context("neither NETWATCH_VMTEST_CACHE, XDG_CACHE_HOME nor HOME is set: cannot choose a kernel cache")?;
    Ok(base.join("netwatch-vmtest"))
}

/// Resolves `spec` (a series name or a directory) to a bootable kernel.
pub fn get(spec: &str) -> Result<Kernel> {
    if let Some(series) = SERIES.iter().find(|series| series.name == spec) {
        return from_series(series);
    }
    let path = Path::new(spec);
    if path.is_dir() {
        // Used as it is: a user's directory is never modified, so needs no lock.
        return prepared(path, spec.to_string());
    }
    bail!(
        "unknown kernel `{spec}`: use one of {} or a directory holding boot/vmlinuz-* and lib/modules/<release>/ \
         (as `dpkg -x` unpacks a linux-image package)",
        series_names().join(", ")
    )
}

fn from_series(series: &Series) -> Result<Kernel> {
    let cache = cache_dir()?;
    fs::create_dir_all(&cache).with_context(|| format!("creating the kernel cache {}", cache.display()))?;
    // Several checkouts may fetch the same series at once.
    let _lock = lock(&cache)?;
    let mirrors = Mirrors::detect()?;
    let apt = Apt::new(&cache.join("apt").join(series.name), &mirrors.sources_list(series.suites))?;
    apt.update().with_context(|| format!("fetching the package lists for kernel {}", series.name))?;
    let package = newest_package(&apt.package_names("linux-image-")?, series.version_prefix)
        .with_context(|| format!("no linux-image-*-amd64 package of series {} in {:?}", series.name, series.suites))?;
    let (version, depends) = apt.candidate(&package)?;
    let unpacked = cache.join("kernels").join(format!("{package}_{version}"));
    if !unpacked.join(READY).exists() {
        eprintln!("xtask vm: fetching {package} {version}");
        let mut debs = vec![apt.download(&package, &version, &cache.join("debs"))?];
        // Newer Debian kernels (sid) split the image into a vmlinuz package and a modules package.
        let suffix = package.trim_start_matches("linux-image-");
        for part in ["linux-binary-", "linux-modules-"].map(|prefix| format!("{prefix}{suffix}")) {
            if depends.contains(&part) {
                let (part_version, _) = apt.candidate(&part)?;
                debs.push(apt.download(&part, &part_version, &cache.join("debs"))?);
            }
        }
        unpack(&debs, &unpacked)?;
    }
    prepared(&unpacked, format!("{} ({package} {version})", series.name))
}

/// The newest generic `linux-image-<version>-amd64` whose version starts with
/// `prefix`; cloud and realtime flavours are skipped (the cloud one has no 9p).
fn newest_package(names: &[String], prefix: &[u64]) -> Option<String> {
    names
        .iter()
        .filter_map(|name| Some((image_version(name)?, name)))
        .filter(|(version, _)| version.starts_with(prefix))
        .max()
        .map(|(_, name)| name.clone())
}

/// `linux-image-5.10.0-46-amd64` -> [5, 10, 0, 46]; `linux-image-6.12.48+deb12-amd64`
/// -> [6, 12, 48]; `None` for flavours, meta packages and anything else.
fn image_version(name: &str) -> Option<Vec<u64>> {
    let version = name.strip_prefix("linux-image-")?.strip_suffix("-amd64")?;
    let end = version.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(version.len());
    let (numbers, rest) = version.split_at(end);
    // `+deb12` is a build tag; a flavour (`-rt`, `-cloud`) follows a dash.
    let tag_ok = rest.strip_prefix('+').is_some_and(|tag| tag.chars().all(|c| c.is_ascii_alphanumeric()));
    if !(rest.is_empty() || tag_ok) {
        return None;
    }
    let parts: Vec<u64> = numbers.split(['.', '-']).map(str::parse).collect::<Result<_, _>>().ok()?;
    // A real image has at least major.minor.patch; `linux-image-6.1-amd64` is a meta package.
    (parts.len() >= 3).then_some(parts)
}

/// Written last into an unpacked kernel's directory, so a half-done unpack is never used.
const READY: &str = ".netwatch-vm-ready";

/// `dpkg -x` (each of the kernel's packages) into a scratch directory, lay the modules out where depmod
/// wants them, decompress and index them, then move into place.
fn unpack(debs: &[PathBuf], dest: &Path) -> Result<()> {
    let mut scratch = dest.as_os_str().to_owned();
    scratch.push(".partial");
    let scratch = PathBuf::from(scratch);
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    for deb in debs {
        cmd::run(Command::new("dpkg").arg("-x").arg(deb).arg(&scratch))
            .context("unpacking the kernel package failed")?;
    }
    // Packages built for merged /usr (sid) ship usr/lib/modules; depmod -b looks in lib/modules.
    let usr_modules = scratch.join("usr/lib/modules");
    if usr_modules.is_dir() && !scratch.join("lib/modules").exists() {
        fs::create_dir_all(scratch.join("lib")).context("creating lib/")?;
        fs::rename(&usr_modules, scratch.join("lib/modules")).context("moving usr/lib/modules to lib/modules")?;
    }
    let release = release_of(&scratch)?;
    decompress_modules(&scratch.join("lib/modules").join(&release))?;
    cmd::run(Command::new("depmod").arg("-b").arg(&scratch).arg(&release))
        .context("indexing the kernel's modules failed: depmod comes with the kmod package (`cargo xtask setup`)")?;
    fs::write(scratch.join(READY), "").context("marking the kernel unpacked")?;
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    fs::rename(&scratch, dest).with_context(|| format!("moving the unpacked kernel to {}", dest.display()))
}

/// Where a package put the kernel image: `boot/vmlinuz-<release>`, or (the
/// split packages of newer Debian) `lib/modules/<release>/vmlinuz`.
fn vmlinuz(root: &Path, release: &str) -> Option<PathBuf> {
    [root.join("boot").join(format!("vmlinuz-{release}")), root.join("lib/modules").join(release).join("vmlinuz")]
        .into_iter()
        .find(|path| path.is_file())
}

/// The one release under `root/lib/modules` that also has a kernel image.
fn release_of(root: &Path) -> Result<String> {
    let modules = root.join("lib/modules");
    let entries = fs::read_dir(&modules).with_context(|| format!("{} has no lib/modules/", root.display()))?;
    let releases: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|release| vmlinuz(root, release).is_some())
        .collect();
    match releases.as_slice() {
        [release] => Ok(release.clone()),
        [] => bail!(
            "{} has no boot/vmlinuz-<release> or lib/modules/<release>/vmlinuz matching a lib/modules/<release>",
            root.display()
        ),
        _ => bail!("{} holds several kernels ({}): point at one", root.display(), releases.join(", ")),
    }
}

/// `.ko.xz` and `.ko.zst` to `.ko`, in batches (one process per file would take minutes).
fn decompress_modules(dir: &Path) -> Result<()> {
    let mut xz = Vec::new();
    let mut zst = Vec::new();
    collect_compressed(dir, &mut xz, &mut zst)?;
    for chunk in xz.chunks(256) {
        cmd::run(Command::new("xz").args(["-d", "-q", "--"]).args(chunk))
            .context("decompressing modules (xz-utils)")?;
    }
    for chunk in zst.chunks(256) {
        cmd::run(Command::new("zstd").args(["-d", "-q", "--rm", "--"]).args(chunk))
            .context("decompressing modules (zstd)")?;
    }
    Ok(())
}

fn collect_compressed(dir: &Path, xz: &mut Vec<PathBuf>, zst: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type().with_context(|| format!("reading {}", path.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() {
            collect_compressed(&path, xz, zst)?;
        } else if name.ends_with(".ko.xz") {
            xz.push(path);
        } else if name.ends_with(".ko.zst") {
            zst.push(path);
        }
    }
    Ok(())
}

/// A kernel directory that [`unpack`] (or the user) prepared.
fn prepared(root: &Path, label: String) -> Result<Kernel> {
    let release = release_of(root)?;
    let modules = root.join("lib/modules").join(&release);
    if !modules.join("modules.dep").is_file() {
        bail!(
            "{} has no modules.dep: run `depmod -b {} {release}` (after decompressing any .ko.xz/.ko.zst)",
            modules.display(),
            root.display()
        );
    }
    let root = fs::canonicalize(root).with_context(|| format!("resolving {}", root.display()))?;
    Ok(Kernel {
        label,
        vmlinuz: vmlinuz(&root, &release).context("the kernel image vanished")?,
        modules: root.join("lib/modules").join(&release),
        release,
    })
}

/// An exclusive lock on `dir`, held until the returned file is dropped.
fn lock(dir: &Path) -> Result<fs::File> {
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening the lock {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; it is released when the file closes.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("locking {}", path.display()));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::{image_version, newest_package};

    #[test]
    fn versions_of_generic_images_only() {
        assert_eq!(image_version("linux-image-5.10.0-46-amd64"), Some(vec![5, 10, 0, 46]));
        assert_eq!(image_version("linux-image-6.12.48+deb12-amd64"), Some(vec![6, 12, 48]));
        for name in [
            "linux-image-5.10.0-46-cloud-amd64",
            "linux-image-5.10.0-46-rt-amd64",
            "linux-image-6.12.118+deb12-rt-amd64",
            "linux-image-6.12.118+deb12-cloud-amd64",
            "linux-image-5.10.0-46-amd64-unsigned",
            "linux-image-5.10.0-46-amd64-dbg",
            "linux-image-6.1-amd64",
            "linux-image-amd64",
            "linux-image-6.1.0-37-arm64",
        ] {
            assert_eq!(image_version(name), None, "{name}");
        }
    }

    #[test]
    fn newest_compares_numbers_not_text() {
        let names: Vec<String> = [
            "linux-image-5.10.0-9-amd64",
            "linux-image-5.10.0-46-amd64",
            "linux-image-5.10.0-46-cloud-amd64",
            "linux-image-6.1.0-37-amd64",
            "linux-image-amd64",
        ]
        .map(String::from)
        .into();
        assert_eq!(newest_package(&names, &[5, 10]).as_deref(), Some("linux-image-5.10.0-46-amd64"));
        assert_eq!(newest_package(&names, &[6, 1]).as_deref(), Some("linux-image-6.1.0-37-amd64"));
        assert_eq!(newest_package(&names, &[]).as_deref(), Some("linux-image-6.1.0-37-amd64"));
        assert_eq!(newest_package(&names, &[6, 12]), None);
    }
}
