use std::{
    fs,
    net::TcpListener,
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
};

use super::*;

/// A fake procfs tree, removed on drop.
struct FakeProc(PathBuf);

impl FakeProc {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("netwatch-seed-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn process(&self, pid: u32, netns: Option<u32>, comm: Option<&str>, fds: &[(u32, &str)]) {
        let base = self.0.join(pid.to_string());
        if let Some(ns) = netns {
            fs::create_dir_all(base.join("ns")).unwrap();
            std::os::unix::fs::symlink(format!("net:[{ns}]"), base.join("ns/net")).unwrap();
            fs::create_dir_all(base.join("fd")).unwrap();
        }
        if let Some(comm) = comm {
            fs::write(base.join("comm"), format!("{comm}\n")).unwrap();
        }
        for (fd, target) in fds {
            std::os::unix::fs::symlink(target, base.join("fd").join(fd.to_string())).unwrap();
        }
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn p(pid: u32, comm: &str, fd: u32) -> Process {
    Process { pid, comm: comm.into(), fd }
}

#[test]
fn fake_proc_tree() {
    let fake = FakeProc::new("owners");
    fake.process(100, Some(4026531840), Some("nginx"), &[(3, "socket:[555]"), (4, "/dev/null"), (5, "socket:[556]")]);
    fake.process(200, Some(4026532999), Some("worker thread"), &[(7, "socket:[555]"), (8, "socket:[bad]")]);
    // Exited between readdir of /proc and our visit: the directory is empty.
    fs::create_dir_all(fake.0.join("300")).unwrap();
    // No sockets, so its comm is never read (and there is none).
    fake.process(400, Some(4026531840), None, &[(1, "pipe:[1]")]);
    std::os::unix::fs::symlink("100", fake.0.join("self")).unwrap();

    for threads in [1, 3] {
        let scan = scan_owners(&fake.0, threads).unwrap();
        assert_eq!(scan.owners.len(), 2);
        assert_eq!(scan.owners[&555], [p(100, "nginx", 3), p(200, "worker thread", 7)]);
        assert_eq!(scan.owners[&556], [p(100, "nginx", 5)]);
        let netns: Vec<_> = scan.netns.iter().map(|(k, v)| (*k, v.clone())).collect();
        assert_eq!(netns, [(4026531840, vec![100, 400]), (4026532999, vec![200])]);
        let want = OwnerStats { processes: 4, vanished: 1, socket_fds: 3, ..Default::default() };
        assert_eq!(scan.stats, want);
    }
}

#[test]
fn netns_only_scan_reads_no_descriptors() {
    let fake = FakeProc::new("netns-only");
    fake.process(100, Some(4026531840), None, &[(3, "socket:[555]")]);
    let scan = scan_netns(&fake.0).unwrap();
    assert!(scan.owners.is_empty());
    assert_eq!(scan.netns[&4026531840], [100]);
    assert_eq!(scan.stats, OwnerStats { processes: 1, ..Default::default() });
}

#[test]
fn missing_root_is_a_clear_error() {
    let e = scan_owners(Path::new("/nonexistent/proc"), 1).unwrap_err();
    assert!(format!("{e:#}").starts_with("scanning /nonexistent/proc: "), "{e:#}");
}

#[test]
fn finds_our_own_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = listener.as_raw_fd();
    let inode = fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
    let scan = scan_owners(Path::new("/proc"), 2).unwrap();
    let owners = &scan.owners[&inode];
    let me = std::process::id();
    assert!(owners.iter().any(|o| o.pid == me && o.fd == fd as u32), "{owners:?}");
    let comm = fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(owners[0].comm, comm.trim_end());
    assert!(scan.netns.values().any(|pids| pids.contains(&me)));
}

/// A socket far above the others: probing by number gives up and the
/// directory listing finds it.
#[test]
fn finds_a_socket_behind_a_gap() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we own.
    let fd = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 900) };
    assert!(fd >= 900, "{}", io::Error::last_os_error());
    // SAFETY: `fd` is open and owned by nothing else.
    let high = unsafe { OwnedFd::from_raw_fd(fd) };
    let inode = fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
    let scan = scan_owners(Path::new("/proc"), 1).unwrap();
    let me = std::process::id();
    let owners = &scan.owners[&inode];
    assert!(owners.iter().any(|o| o.pid == me && o.fd == fd as u32), "{owners:?}");
    assert!(owners.iter().any(|o| o.pid == me && o.fd == listener.as_raw_fd() as u32), "{owners:?}");
    drop(high);
}
