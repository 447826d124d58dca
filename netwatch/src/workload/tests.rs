use std::os::unix::fs::MetadataExt;

use super::*;

const ID: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";

#[test]
fn mounts() {
    let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    assert_eq!(cgroup2_mount(hybrid), Some("/sys/fs/cgroup/unified".into()));
    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(cgroup2_mount(v2), Some("/sys/fs/cgroup".into()));
    assert_eq!(cgroup2_mount("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"), None);
}

fn info(unit: Option<&str>, container: Option<(Runtime, &str, Option<&str>)>) -> Workload {
    Workload::fixture("/x", unit, container, None)
}

#[test]
fn labels_and_container_match() {
    assert_eq!(info(None, None).label(), "/x");
    assert_eq!(info(Some("nginx.service"), None).label(), "nginx.service");
    let anon = info(Some("u.scope"), Some((Runtime::Docker, ID, None)));
    assert_eq!(anon.label(), &ID[..12]);
    let named = info(None, Some((Runtime::Podman, ID, Some("web"))));
    assert_eq!(named.label(), "web");
    assert!(named.container_is("web") && named.container_is(&ID[..6]) && named.container_is(ID));
    assert!(!named.container_is("we") && !named.container_is("ff"));
    assert!(!info(Some("web"), None).container_is("web"));
}

/// A fake /proc and cgroup2 mount: by PID from /proc/PID/cgroup (checked
/// against the kernel's id), by id from a walk once the process is gone.
#[test]
fn resolver_by_pid_then_by_id() {
    let dir = std::env::temp_dir().join(format!("nw-workload-{}", std::process::id()));
    let mount = dir.join("cg");
    let unit = mount.join("system.slice/web.service");
    let docker = mount.join(format!("system.slice/docker-{ID}.scope"));
    std::fs::create_dir_all(&unit).unwrap();
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::create_dir_all(dir.join("proc/10")).unwrap();
    std::fs::write(dir.join("proc/10/cgroup"), "0::/system.slice/web.service\n").unwrap();
    let unit_id = std::fs::metadata(&unit).unwrap().ino();
    let docker_id = std::fs::metadata(&docker).unwrap().ino();
    let names = names::Names::at(dir.join("none"), dir.join("none"));
    let mut r = Resolver::at(Some(mount), dir.join("proc"), names);

    let w = r.of(10, unit_id).unwrap();
    assert_eq!(
        (&*w.cgroup, w.unit.as_deref(), &w.container),
        ("/system.slice/web.service", Some("web.service"), &None)
    );
    assert_eq!(r.cgroup_of(10), Some(unit_id));
    // Lent (no id): the PID's.
    assert_eq!(r.of(10, 0), Some(w.clone()));
    // PID 10 is not in the docker cgroup the kernel names: the id decides.
    let d = r.of(10, docker_id).unwrap();
    assert_eq!(d.container.as_ref().map(|c| (c.runtime, &*c.id)), Some((Runtime::Docker, ID)));
    // ... and is what the PID's events without an id get from now on.
    assert_eq!(r.of(10, 0), Some(d.clone()));
    assert_eq!(r.cgroup_of(10), Some(docker_id));
    // Gone from /proc: by id only.
    assert_eq!(r.of(99, unit_id), Some(w.clone()));
    assert_eq!(r.of(99, 0), Some(w.clone()), "remembered from the kernel's id");
    assert_eq!(r.of(96, 0), None);
    assert_eq!(r.of(0, 12_345_678_901), None);
    // Equal workloads share one allocation.
    assert!(Arc::ptr_eq(&r.of(97, unit_id).unwrap().0, &r.of(98, unit_id).unwrap().0));
    std::fs::remove_dir_all(dir).unwrap();
}
