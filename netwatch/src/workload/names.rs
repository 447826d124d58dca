//! Container names from the runtimes' own state on disk: no daemon round
//! trip, and each file read once per container (or once per change).
//!
//! - podman and CRI-O keep every container of their storage in
//!   `overlay-containers/containers.json` (an array of `{id, names}`)
//!   under the storage root, `/var/lib/containers/storage` for root;
//! - docker keeps `containers/<id>/config.v2.json` (`"Name": "/web"`)
//!   under `/var/lib/docker`;
//! - an LXC container's cgroup already has its name.
//!
//! containerd's names live in its bolt database and Kubernetes' in the API
//! server: not read (the pod UID names the pod).

use std::{path::PathBuf, time::SystemTime};

use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::Runtime;

#[derive(Debug)]
pub struct Names {
    storage: PathBuf,
    docker: PathBuf,
    /// podman/CRI-O names by id, from `containers.json` as of `read_at`.
    storage_names: FxHashMap<String, String>,
    read_at: Option<SystemTime>,
    /// docker names by id; `None` when its config said none.
    docker_names: FxHashMap<String, Option<String>>,
}

impl Default for Names {
    fn default() -> Self {
        Self::at("/var/lib/containers/storage".into(), "/var/lib/docker".into())
    }
}

#[derive(Deserialize)]
struct StorageContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "Name", default)]
    name: String,
}

impl Names {
    pub fn at(storage: PathBuf, docker: PathBuf) -> Self {
        Self { storage, docker, storage_names: FxHashMap::default(), read_at: None, docker_names: FxHashMap::default() }
    }

    pub fn name(&mut self, runtime: Runtime, id: &str) -> Option<String> {
        match runtime {
            Runtime::Podman | Runtime::Crio => {
                if !self.storage_names.contains_key(id) {
                    self.reread_storage();
                }
                self.storage_names.get(id).cloned()
            }
            Runtime::Docker => {
                if !self.docker_names.contains_key(id) {
                    let path = self.docker.join("containers").join(id).join("config.v2.json");
                    let name = std::fs::read(path).ok().and_then(|b| docker_name(&b));
                    self.docker_names.insert(id.to_owned(), name);
                }
                self.docker_names.get(id).cloned().flatten()
            }
            Runtime::Lxc => Some(id.to_owned()),
            Runtime::Containerd | Runtime::Cri => None,
        }
    }

    /// Re-reads `containers.json` when it changed since the last read (a
    /// container unknown to it stays unknown until it changes).
    fn reread_storage(&mut self) {
        let path = self.storage.join("overlay-containers/containers.json");
        let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else { return };
        if self.read_at == Some(modified) {
            return;
        }
        self.read_at = Some(modified);
        if let Ok(bytes) = std::fs::read(&path) {
            self.storage_names = storage_names(&bytes);
        }
    }
}

/// id -> first name, from a `containers.json`.
pub fn storage_names(json: &[u8]) -> FxHashMap<String, String> {
    let list: Vec<StorageContainer> = serde_json::from_slice(json).unwrap_or_default();
    list.into_iter().filter_map(|c| Some((c.id, c.names.into_iter().next()?))).collect()
}

/// The name in a docker `config.v2.json`, without docker's leading `/`.
pub fn docker_name(json: &[u8]) -> Option<String> {
    let c: DockerConfig = serde_json::from_slice(json).ok()?;
    let name = c.name.trim_start_matches('/');
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_storage() {
        let json =
            br#"[{"id":"aa","names":["web"],"image":"x","layer":"l","metadata":"{}","created":"2026-12-06T15:00:00Z"},
            {"id":"bb","names":[]}]"#;
        let m = storage_names(json);
        assert_eq!(m.get("aa").map(String::as_str), Some("web"));
        assert!(!m.contains_key("bb"));
        assert!(storage_names(b"not json").is_empty());
    }

    #[test]
    fn docker_config() {
        assert_eq!(docker_name(br#"{"ID":"x","Name":"/web","State":{}}"#).as_deref(), Some("web"));
        assert_eq!(docker_name(br#"{"ID":"x"}"#), None);
        assert_eq!(docker_name(b"{"), None);
    }

    #[test]
    fn files_on_disk() {
        let dir = std::env::temp_dir().join(format!("nw-names-{}", std::process::id()));
        let id = "c".repeat(64);
        std::fs::create_dir_all(dir.join("storage/overlay-containers")).unwrap();
        std::fs::create_dir_all(dir.join(format!("docker/containers/{id}"))).unwrap();
        std::fs::write(
            dir.join("storage/overlay-containers/containers.json"),
            format!(r#"[{{"id":"{id}","names":["pm"]}}]"#),
        )
        .unwrap();
        std::fs::write(dir.join(format!("docker/containers/{id}/config.v2.json")), r#"{"Name":"/dk"}"#).unwrap();
        let mut n = Names::at(dir.join("storage"), dir.join("docker"));
        assert_eq!(n.name(Runtime::Podman, &id).as_deref(), Some("pm"));
        assert_eq!(n.name(Runtime::Docker, &id).as_deref(), Some("dk"));
        assert_eq!(n.name(Runtime::Podman, "nope"), None);
        assert_eq!(n.name(Runtime::Lxc, "box").as_deref(), Some("box"));
        assert_eq!(n.name(Runtime::Containerd, &id), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
