//! Cgroup path -> systemd unit, container and pod: pure functions over the
//! path shapes systemd, the container runtimes and the kubelet create (the
//! same rules Coroot and Inspektor Gadget apply).
//!
//! - systemd: a process's unit is the first `.service` or `.scope`
//!   component from the root (`system.slice/nginx.service`,
//!   `user.slice/user-1000.slice/session-3.scope`,
//!   `user.slice/user-1000.slice/user@1000.service/app.slice/...` is
//!   `user@1000.service`). What lies below a unit is delegated to it (a
//!   user manager, a container runtime), so a unit nested deeper, such as
//!   one inside a container, is the enclosing unit's business: the
//!   process's host unit stays the outer one.
//! - containers: the first component naming one: docker
//!   `docker-<id>.scope` or `docker/<id>` (cgroupfs driver), podman
//!   `libpod-<id>.scope` or `libpod_parent/libpod-<id>`, containerd
//!   `cri-containerd-<id>.scope` or `...:cri-containerd:<id>`, CRI-O
//!   `crio-<id>.scope` or `crio-<id>`, LXC `lxc.payload.<name>` or
//!   `lxc/<name>`; a 64-hex component under a Kubernetes pod of the
//!   cgroupfs driver (`kubepods/burstable/pod<uid>/<id>`) names a
//!   container of an unnamed CRI runtime (`cri`). The runtimes' own
//!   helpers (`libpod-conmon-*`, `crio-conmon-*`, `lxc.monitor.*`) are not
//!   the container.
//! - pods: `kubepods-<qos>-pod<uid with _>.slice` (systemd driver) or
//!   `pod<uid>` under `kubepods` (cgroupfs driver).

use super::Runtime;

/// What one cgroup path says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub unit: Option<&'a str>,
    pub container: Option<(Runtime, &'a str)>,
    pub pod_uid: Option<String>,
}

pub fn parse(path: &str) -> Parsed<'_> {
    let mut p = Parsed::default();
    let mut prev = "";
    let mut in_kubepods = false;
    for c in path.split('/').filter(|c| !c.is_empty()) {
        // Nothing inside a container is the host's unit.
        if p.unit.is_none() && p.container.is_none() && (c.ends_with(".service") || c.ends_with(".scope")) {
            p.unit = Some(c);
        }
        in_kubepods |= c == "kubepods" || c.starts_with("kubepods-") || c == "kubepods.slice";
        if p.pod_uid.is_none() && in_kubepods {
            p.pod_uid = pod_uid(c);
        }
        if p.container.is_none() {
            p.container = container(prev, c, p.pod_uid.is_some());
        }
        prev = c;
    }
    p
}

/// A container named by component `c` (under `prev`).
fn container<'a>(prev: &str, c: &'a str, in_pod: bool) -> Option<(Runtime, &'a str)> {
    let scope = c.strip_suffix(".scope").unwrap_or(c);
    let prefixed = [
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
    ];
    for (prefix, runtime) in prefixed {
        if let Some(id) = scope.strip_prefix(prefix) {
            if is_id(id) {
                return Some((runtime, id));
            }
        }
    }
    // containerd with the systemd driver, as the kubelet names it:
    // `kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`.
    if let Some((_, id)) = c.split_once(":cri-containerd:") {
        return is_id(id).then_some((Runtime::Containerd, id));
    }
    if let Some(name) = c.strip_prefix("lxc.payload.") {
        return (!name.is_empty()).then_some((Runtime::Lxc, name));
    }
    match prev {
        "docker" if is_id(c) => Some((Runtime::Docker, c)),
        "lxc" if !c.is_empty() => Some((Runtime::Lxc, c)),
        _ if in_pod && is_id(c) => Some((Runtime::Cri, c)),
        _ => None,
    }
}

/// A container id as runtimes write it: 64 lowercase hex digits.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pod UID a component names, with dashes (the systemd driver writes
/// them as underscores, `-` being its slice separator).
fn pod_uid(c: &str) -> Option<String> {
    let rest = match c.strip_suffix(".slice") {
        // `kubepods-pod<uid>.slice`, `kubepods-besteffort-pod<uid>.slice`.
        Some(slice) => &slice[slice.rfind("-pod")? + 4..],
        None => c.strip_prefix("pod")?,
    };
    let uid = rest.replace('_', "-");
    let uuid_like = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    uuid_like.then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";
    const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

    fn p(path: &str) -> (Option<&str>, Option<(Runtime, &str)>, Option<String>) {
        let r = parse(path);
        (r.unit, r.container, r.pod_uid)
    }

    #[test]
    fn systemd_units() {
        assert_eq!(p("/system.slice/nginx.service"), (Some("nginx.service"), None, None));
        assert_eq!(p("/user.slice/user-1000.slice/session-3.scope"), (Some("session-3.scope"), None, None));
        assert_eq!(
            p("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-42.scope"),
            (Some("user@1000.service"), None, None)
        );
        assert_eq!(p("/init.scope"), (Some("init.scope"), None, None));
        assert_eq!(p("/"), (None, None, None));
        assert_eq!(p("/system.slice"), (None, None, None));
        assert_eq!(p(""), (None, None, None));
    }

    #[test]
    fn docker() {
        let systemd = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(p(&systemd), (Some(&*format!("docker-{ID}.scope")), Some((Runtime::Docker, ID)), None));
        assert_eq!(p(&format!("/docker/{ID}")), (None, Some((Runtime::Docker, ID)), None));
        // Not an id: no container.
        assert_eq!(p("/system.slice/docker-abc.scope").1, None);
        assert_eq!(p("/system.slice/docker.service"), (Some("docker.service"), None, None));
    }

    #[test]
    fn podman() {
        let systemd = format!("/machine.slice/libpod-{ID}.scope");
        assert_eq!(p(&systemd).1, Some((Runtime::Podman, ID)));
        assert_eq!(p(&format!("{systemd}/container")).1, Some((Runtime::Podman, ID)));
        assert_eq!(p(&format!("/libpod_parent/libpod-{ID}")), (None, Some((Runtime::Podman, ID)), None));
        // conmon, the runtime's monitor, is not the container.
        assert_eq!(p(&format!("/machine.slice/libpod-conmon-{ID}.scope")).1, None);
    }

    #[test]
    fn a_unit_inside_a_container_is_the_containers() {
        let nested = format!("/machine.slice/libpod-{ID}.scope/system.slice/nginx.service");
        assert_eq!(p(&nested), (Some(&*format!("libpod-{ID}.scope")), Some((Runtime::Podman, ID)), None));
    }

    #[test]
    fn kubernetes_systemd_driver() {
        let under = UID.replace('-', "_");
        let containerd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{under}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            p(&containerd),
            (Some(&*format!("cri-containerd-{ID}.scope")), Some((Runtime::Containerd, ID)), Some(UID.into()))
        );
        let guaranteed = format!("/kubepods.slice/kubepods-pod{under}.slice/crio-{ID}.scope");
        assert_eq!(p(&guaranteed).1, Some((Runtime::Crio, ID)));
        assert_eq!(p(&guaranteed).2.as_deref(), Some(UID));
        assert_eq!(p(&format!("/kubepods.slice/kubepods-pod{under}.slice/crio-conmon-{ID}.scope")).1, None);
        let in_containerd =
            format!("/system.slice/containerd.service/kubepods-besteffort-pod{under}.slice:cri-containerd:{ID}");
        assert_eq!(p(&in_containerd), (Some("containerd.service"), Some((Runtime::Containerd, ID)), None));
    }

    #[test]
    fn kubernetes_cgroupfs_driver() {
        let path = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(p(&path), (None, Some((Runtime::Cri, ID)), Some(UID.into())));
        let crio = format!("/kubepods/besteffort/pod{UID}/crio-{ID}");
        assert_eq!(p(&crio).1, Some((Runtime::Crio, ID)));
        // A pod's own cgroup: the pod, no container yet.
        assert_eq!(p(&format!("/kubepods/pod{UID}")), (None, None, Some(UID.into())));
        // `pod<uid>` outside kubepods is just a name.
        assert_eq!(p(&format!("/pod{UID}/{ID}")), (None, None, None));
    }

    #[test]
    fn lxc() {
        assert_eq!(p("/lxc.payload.web1"), (None, Some((Runtime::Lxc, "web1")), None));
        assert_eq!(p("/lxc.payload.web1/system.slice/nginx.service"), (None, Some((Runtime::Lxc, "web1")), None));
        assert_eq!(p("/lxc/web1").1, Some((Runtime::Lxc, "web1")));
        assert_eq!(p("/lxc.monitor.web1").1, None);
    }
}
