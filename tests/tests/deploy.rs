//! deploy/: the Kubernetes manifests against the Kubernetes API schema
//! (PyPI's kubernetes-validate, strict: unknown fields are errors), the
//! DaemonSet's capabilities against the systemd unit's, and the config
//! map's netwatch.toml against netwatch itself. What needs a cluster (the
//! pods starting, the programs loading under a container runtime's
//! seccomp/AppArmor) is not tested here: docs/kubernetes.md says so.

use std::path::{Path, PathBuf};
use std::process::Command;

const VENV: &str = "/var/cache/netwatch-py/bin";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn validate(files: &[&Path]) -> (bool, String) {
    let tool = format!("{VENV}/kubernetes-validate");
    assert!(Path::new(&tool).exists(), "{tool} missing: run `cargo xtask setup` (the python packages step)");
    let out = Command::new(tool).arg("--strict").args(files).output().expect("running kubernetes-validate");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The documents of a YAML file as JSON, through the venv's PyYAML.
fn yaml_docs(path: &Path) -> Vec<serde_json::Value> {
    let script = "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let out = Command::new(format!("{VENV}/python3")).args(["-c", script]).arg(path).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON from PyYAML")
}

#[test]
fn manifests_pass_the_kubernetes_schema() {
    let ds = repo("deploy/kubernetes/daemonset.yaml");
    let cm = repo("deploy/kubernetes/configmap.yaml");
    let (ok, text) = validate(&[&ds, &cm]);
    assert!(ok, "kubernetes-validate refused deploy/kubernetes:\n{text}");
    assert_eq!(text.matches("passed").count(), 3, "{text}");
    // The validator does refuse: a misspelt field fails.
    let bad = std::env::temp_dir().join(format!("nw-bad-ds-{}.yaml", std::process::id()));
    let text = std::fs::read_to_string(&ds).unwrap().replace("hostPID: true", "hostPid: true");
    std::fs::write(&bad, text).unwrap();
    let (ok, out) = validate(&[&bad]);
    let _ = std::fs::remove_file(&bad);
    assert!(!ok, "a misspelt field passed: {out}");
}

#[test]
fn daemonset_has_the_units_capabilities_and_mounts() {
    let unit = std::fs::read_to_string(repo("netwatch/dist/netwatch.service")).unwrap();
    let caps = unit.lines().find_map(|l| l.strip_prefix("AmbientCapabilities=")).expect("unit capabilities");
    let mut want: Vec<String> = caps.split_whitespace().map(|c| c.trim_start_matches("CAP_").to_owned()).collect();
    want.sort();
    let docs = yaml_docs(&repo("deploy/kubernetes/daemonset.yaml"));
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").expect("a DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!((pod["hostPID"].as_bool(), pod["hostNetwork"].as_bool()), (Some(true), Some(true)));
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let mut got: Vec<String> =
        sc["capabilities"]["add"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    got.sort();
    assert_eq!(got, want, "the DaemonSet's capabilities differ from the systemd unit's");
    let mounts: Vec<&str> =
        c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    for m in ["/sys/kernel/btf", "/sys/fs/cgroup", "/sys/kernel/tracing", "/etc/netwatch"] {
        assert!(mounts.contains(&m), "no mount at {m}: {mounts:?}");
    }
}
