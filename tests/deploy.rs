//! The launchers in `deploy/`, checked for what can be checked on one machine:
//! the scripts parse, the Kubernetes manifest is YAML of the expected kinds and
//! wires the scheduler, its Service, the workers and the token together, and the
//! container file builds where a container engine runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

#[test]
fn the_scripts_parse_as_bash_and_start_brisk() {
    for script in ["slurm.sbatch", "ssh-cluster.sh"] {
        let path = deploy(script);
        let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&path).unwrap();
        for needed in [
            "brisk scheduler --listen ",
            "0.0.0.0:",
            "brisk worker ",
            "brisk status --scheduler",
            "BRISK_TOKEN",
        ] {
            assert!(text.contains(needed), "{script} lacks {needed:?}");
        }
    }
    let slurm = std::fs::read_to_string(deploy("slurm.sbatch")).unwrap();
    assert!(
        slurm.contains("#SBATCH --nodes=") && slurm.contains("srun "),
        "not a Slurm batch script"
    );
}

/// `doc[key]`, failing with the path when absent.
fn at<'a>(doc: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(doc, |node, key| {
        let next = &node[*key];
        assert!(!next.is_badvalue(), "no {} in {doc:?}", path.join("."));
        next
    })
}

fn strings(node: &Yaml) -> Vec<String> {
    node.as_vec().unwrap().iter().map(|a| a.as_str().expect("a string").to_string()).collect()
}

#[test]
fn the_kubernetes_manifest_wires_scheduler_service_workers_and_token() {
    let text = std::fs::read_to_string(deploy("kubernetes.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("the manifest is YAML");
    let kind = |doc: &Yaml| {
        format!(
            "{}/{}",
            at(doc, &["kind"]).as_str().unwrap(),
            at(doc, &["metadata", "name"]).as_str().unwrap()
        )
    };
    let kinds: Vec<String> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        ["Deployment/brisk-scheduler", "Service/brisk-scheduler", "Deployment/brisk-worker"]
    );
    // No token in the repository: the Secret is made by the user, as the header says.
    assert!(
        text.contains("kubectl create secret generic brisk-token --from-literal=token="),
        "{text}"
    );
    let container = |doc: &Yaml| {
        at(doc, &["spec", "template", "spec", "containers"]).as_vec().unwrap()[0].clone()
    };
    let (scheduler_doc, service, worker_doc) = (&docs[0], &docs[1], &docs[2]);
    let scheduler = container(scheduler_doc);
    let worker = container(worker_doc);
    // The scheduler listens on every interface, on the port the Service forwards.
    let args = strings(at(&scheduler, &["args"]));
    assert_eq!(args[..2], ["scheduler", "--listen"]);
    let port = args[2].rsplit_once(':').unwrap().1.parse::<i64>().unwrap();
    assert_eq!(at(service, &["spec", "ports"])[0]["targetPort"].as_i64(), Some(port));
    let service_port = at(service, &["spec", "ports"])[0]["port"].as_i64().unwrap();
    // The Service selects the scheduler's pods.
    assert_eq!(
        at(service, &["spec", "selector"]),
        at(scheduler_doc, &["spec", "template", "metadata", "labels"])
    );
    // Workers dial the Service, and say their pod's address.
    let args = strings(at(&worker, &["args"]));
    assert_eq!(args[0], "worker");
    assert_eq!(args[1], format!("brisk-scheduler:{service_port}"));
    assert!(args.windows(2).any(|w| w == ["--contact-address", "$(POD_IP)"]), "{args:?}");
    // Both take the token from the Secret.
    for c in [&scheduler, &worker] {
        let env = at(c, &["env"]).as_vec().unwrap();
        let token =
            env.iter().find(|e| e["name"].as_str() == Some("BRISK_TOKEN")).expect("BRISK_TOKEN");
        assert_eq!(at(token, &["valueFrom", "secretKeyRef", "name"]).as_str(), Some("brisk-token"));
        assert_eq!(at(token, &["valueFrom", "secretKeyRef", "key"]).as_str(), Some("token"));
    }
}

#[test]
fn the_container_file_builds_where_an_engine_runs() {
    let text = std::fs::read_to_string(deploy("Containerfile")).unwrap();
    assert!(text.contains("cargo build --release --locked --bin brisk"), "{text}");
    assert!(text.contains("ENTRYPOINT [\"brisk\"]"), "{text}");
    // A container engine, not only a client: `docker info` or `podman info` answers.
    let engine = ["docker", "podman"]
        .into_iter()
        .find(|tool| Command::new(tool).arg("info").output().is_ok_and(|o| o.status.success()));
    let Some(engine) = engine else {
        eprintln!(
            "skipped building deploy/Containerfile: no container engine runs here (docker or podman info fails)"
        );
        return;
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(engine)
        .args(["build", "-f", "deploy/Containerfile", "-t", "brisk-test:latest", "."])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{engine} build: {}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(engine)
        .args(["run", "--rm", "brisk-test:latest", "--version"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&run.stdout).contains("brisk"));
}
