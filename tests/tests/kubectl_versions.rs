//! Older kubectl releases against k1s: for each of kubectl 1.27 … 1.32 a smoke subset (discovery, `get -o wide`, `create namespace`, `apply` then `unchanged`, `get -w`, `delete`), skipped when that release is not installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use k1s_tests::Server;

/// Where the Google Cloud SDK installs its kubectl releases (`kubectl.1.27` …).
const RELEASES: &str = "/usr/lib/google-cloud-sdk/bin";

const MANIFEST: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: smoke
  labels:
    app: web
spec:
  replicas: REPLICAS
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: smoke
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: smoke
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
";

/// One kubectl release driving one server, with its own discovery and HTTP cache.
struct Kubectl<'a> {
    version: &'a str,
    bin: PathBuf,
    server: &'a Server,
    cache: PathBuf,
}

impl Kubectl<'_> {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.server.kubeconfig())
            .arg("--cache-dir")
            .arg(&self.cache);
        cmd
    }

    /// Run with `args`; stdout on success, a panic naming the release and both streams
    /// otherwise.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("running kubectl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {} {args:?} failed ({}):\n{stdout}\n{}",
            self.version,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The next line from `lines` that `matches`, within `timeout`.
fn wait_for_line(
    lines: &Receiver<String>,
    timeout: Duration,
    matches: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = lines.recv_timeout(left).ok()?;
        if matches(&line) {
            return Some(line);
        }
    }
}

fn smoke(version: &str) {
    let bin = Path::new(RELEASES).join(format!("kubectl.{version}"));
    if !bin.exists() {
        eprintln!(
            "skipped: kubectl {version} is not installed ({})",
            bin.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    let k = Kubectl {
        version,
        bin,
        server: &server,
        cache: tmp.path().join("kube-cache"),
    };
    let minor = version.rsplit('.').next().unwrap();

    // The binary is the release it claims to be.
    let client = k.ok(&["version", "--client", "-o", "json"]);
    assert!(
        client.contains(&format!("\"minor\": \"{minor}\"")),
        "{client}"
    );

    // Discovery.
    let resources = k.ok(&["api-resources"]);
    assert!(
        resources
            .lines()
            .any(|l| words(l) == ["deployments", "deploy", "apps/v1", "true", "Deployment"]),
        "kubectl {version}:\n{resources}"
    );
    assert!(
        resources
            .lines()
            .any(|l| words(l) == ["configmaps", "cm", "v1", "true", "ConfigMap"]),
        "kubectl {version}:\n{resources}"
    );
    let versions = k.ok(&["api-versions"]);
    for served in ["apps/v1", "coordination.k8s.io/v1", "v1"] {
        assert!(
            versions.lines().any(|l| l == served),
            "kubectl {version}:\n{versions}"
        );
    }

    // `get -o wide` across kinds and namespaces.
    let wide = k.ok(&["get", "pods,svc", "-A", "-o", "wide"]);
    let mut lines = wide.lines();
    assert_eq!(
        lines.next().map(words).unwrap_or_default(),
        [
            "NAMESPACE",
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ],
        "kubectl {version}:\n{wide}"
    );
    let kubernetes = lines
        .find(|l| l.contains("service/kubernetes"))
        .unwrap_or_else(|| panic!("kubectl {version}:\n{wide}"));
    let row = words(kubernetes);
    assert_eq!(
        [row[0], row[1], row[2], row[3], row[4], row[5]],
        [
            "default",
            "service/kubernetes",
            "ClusterIP",
            "10.43.0.1",
            "<none>",
            "443/TCP"
        ],
        "kubectl {version}:\n{wide}"
    );

    // `create namespace` (a protobuf body from 1.31 on, JSON before).
    assert_eq!(
        k.ok(&["create", "namespace", "smoke"]),
        "namespace/smoke created\n"
    );

    // `apply` creates, then finds nothing to change (kubectl 1.27 and 1.28 validate and
    // compute the patch from `/openapi/v2`, later releases from `/openapi/v3`).
    let manifest = tmp.path().join("web.yaml");
    std::fs::write(&manifest, MANIFEST.replace("REPLICAS", "1")).unwrap();
    let manifest = manifest.display().to_string();
    assert_eq!(
        k.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web created\nservice/web created\n",
        "kubectl {version}"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web unchanged\nservice/web unchanged\n",
        "kubectl {version}"
    );

    // `get -w` prints the deployment, then a later change made by a patching `apply`.
    let mut watch = k
        .command()
        .args(["get", "deployments", "-n", "smoke", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listed = wait_for_line(&rx, Duration::from_secs(10), |l| {
        words(l).first() == Some(&"web")
    });
    assert!(
        listed.is_some(),
        "kubectl {version}: the watch printed nothing"
    );
    std::fs::write(&manifest, MANIFEST.replace("REPLICAS", "3")).unwrap();
    assert_eq!(
        k.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web configured\nservice/web unchanged\n",
        "kubectl {version}"
    );
    let changed = wait_for_line(&rx, Duration::from_secs(10), |l| {
        let row = words(l);
        row.first() == Some(&"web") && row.get(1).is_some_and(|ready| ready.ends_with("/3"))
    });
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        changed.is_some(),
        "kubectl {version}: the watch did not print the change"
    );
    // The patch kept the list items it did not touch (merge keys from the OpenAPI schema).
    let env = k.ok(&[
        "get",
        "deployment",
        "web",
        "-n",
        "smoke",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[0].value}",
    ]);
    assert_eq!(env, "3 smoke", "kubectl {version}");

    // `delete` (which waits for the object to go).
    let deleted = k.ok(&["delete", "deployment", "web", "-n", "smoke"]);
    assert!(
        deleted.starts_with("deployment.apps \"web\" deleted"),
        "kubectl {version}: {deleted}"
    );
    assert_eq!(
        k.ok(&["get", "deployments", "-n", "smoke", "-o", "name"]),
        "",
        "kubectl {version}"
    );
}

#[test]
fn kubectl_1_27() {
    smoke("1.27");
}

#[test]
fn kubectl_1_28() {
    smoke("1.28");
}

#[test]
fn kubectl_1_29() {
    smoke("1.29");
}

#[test]
fn kubectl_1_30() {
    smoke("1.30");
}

#[test]
fn kubectl_1_31() {
    smoke("1.31");
}

#[test]
fn kubectl_1_32() {
    smoke("1.32");
}
