//! The guest's initramfs: a static busybox, the few modules needed before
//! the host's root can be mounted (virtio PCI, 9p, overlayfs, with their
//! dependencies), the init script and the command to run. Written as a
//! `newc` cpio archive (the format the kernel unpacks), built in memory: it
//! is a few megabytes and takes milliseconds, so it is never cached.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{bail, Context as _, Result};

use super::kernel::Kernel;

/// Statically linked, from the busybox-static package: the initramfs has no libc.
const BUSYBOX: &str = "/bin/busybox";
/// What mounting the host's root over virtio-9p and overlaying it needs.
/// Debian builds all of these as modules.
const EARLY_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// The initramfs for `kernel`, with `/init` = `init` and `/cmd` = `command`.
pub fn build(kernel: &Kernel, init: &str, command: &str) -> Result<Vec<u8>> {
    let busybox =
        fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}: `cargo xtask setup` installs busybox-static"))?;
    // A dynamic busybox (package `busybox`) would find no loader in the guest.
    if busybox.windows(12).any(|window| window == b"/lib64/ld-li") {
        bail!("{BUSYBOX} is dynamically linked: install busybox-static instead of busybox");
    }
    let mut cpio = Cpio::default();
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "lib",
        "lib/modules",
        "early",
        "lower",
        "rw",
        "newroot",
        "tmp",
    ] {
        cpio.dir(dir);
    }
    cpio.char_device("dev/console", 5, 1);
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.file("init", 0o755, init.as_bytes());
    cpio.file("cmd", 0o644, command.as_bytes());
    for (index, module) in early_modules(&kernel.modules)?.iter().enumerate() {
        let data = fs::read(kernel.modules.join(module)).with_context(|| format!("reading module {module}"))?;
        let name = Path::new(module).file_name().map_or_else(|| module.clone(), |name| name.to_string_lossy().into());
        // The numeric prefix keeps the load order when the shell globs /early/*.ko.
        cpio.file(&format!("early/{index:02}-{name}"), 0o644, &data);
    }
    Ok(cpio.finish())
}

/// The module files (relative to the modules directory) to insmod, each after its dependencies.
fn early_modules(modules: &Path) -> Result<Vec<String>> {
    let dep_file = modules.join("modules.dep");
    let text = fs::read_to_string(&dep_file).with_context(|| format!("reading {}", dep_file.display()))?;
    let deps = parse_modules_dep(&text);
    let by_name: BTreeMap<String, &str> = deps.keys().map(|path| (module_name(path), path.as_str())).collect();
    let mut order = Vec::new();
    for wanted in EARLY_MODULES {
        // Not in modules.dep: built into this kernel, nothing to load.
        if let Some(path) = by_name.get(&wanted.replace('-', "_")) {
            push_with_deps(path, &deps, &mut order);
        }
    }
    Ok(order)
}

/// `kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko ...` -> path -> dependency paths.
fn parse_modules_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| {
            let (module, deps) = line.split_once(':')?;
            Some((module.trim().to_string(), deps.split_whitespace().map(str::to_string).collect()))
        })
        .collect()
}

/// `kernel/net/9p/9pnet_virtio.ko` -> `9pnet_virtio`; dashes and underscores are the same to the kernel.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).replace('-', "_")
}

fn push_with_deps(path: &str, deps: &BTreeMap<String, Vec<String>>, order: &mut Vec<String>) {
    if order.iter().any(|done| done == path) {
        return;
    }
    for dep in deps.get(path).into_iter().flatten() {
        push_with_deps(dep, deps, order);
    }
    order.push(path.to_string());
}

/// A `newc` (SVR4, no CRC) cpio archive writer.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, 0, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, 0, data);
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020_600, (major << 8) | minor, &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) {
        self.inode += 1;
        let name_size = u32::try_from(name.len() + 1).expect("short names");
        let file_size = u32::try_from(data.len()).expect("initramfs entries are far below 4 GiB");
        let (rdev_major, rdev_minor) = (rdev >> 8, rdev & 0xff);
        let fields = [self.inode, mode, 0, 0, 1, 0, file_size, 0, 0, rdev_major, rdev_minor, name_size, 0];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::{module_name, parse_modules_dep, push_with_deps, Cpio};

    #[test]
    fn dependencies_load_first_and_once() {
        let deps = parse_modules_dep(
            "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko\n\
             kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko\nkernel/net/9p/9pnet.ko:\nkernel/fs/netfs/netfs.ko:\n",
        );
        let mut order = Vec::new();
        push_with_deps("kernel/net/9p/9pnet_virtio.ko", &deps, &mut order);
        push_with_deps("kernel/fs/9p/9p.ko", &deps, &mut order);
        assert_eq!(
            order,
            [
                "kernel/net/9p/9pnet.ko",
                "kernel/net/9p/9pnet_virtio.ko",
                "kernel/fs/netfs/netfs.ko",
                "kernel/fs/9p/9p.ko"
            ]
        );
    }

    #[test]
    fn module_names_ignore_directories_and_dashes() {
        assert_eq!(module_name("kernel/drivers/virtio/virtio_pci.ko"), "virtio_pci");
        assert_eq!(module_name("kernel/a/some-mod.ko"), "some_mod");
    }

    #[test]
    fn newc_header_layout() {
        let mut cpio = Cpio::default();
        cpio.file("init", 0o755, b"#!");
        let out = cpio.finish();
        // 110-byte header, "init\0" padded to 4 bytes from the start, then data padded.
        assert_eq!(&out[..6], b"070701");
        assert_eq!(&out[14..22], b"000081ed");
        assert_eq!(&out[54..62], b"00000002");
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..118], b"#!");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
