//! Server-side apply and managedFields through kubectl: ownership per manager, conflicts and `--force-conflicts`, pruning of fields an applier stops applying, the scale subresource as a manager, and kubectl's client-side to server-side migration.

use k1s_tests::Server;
use serde_json::Value;

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

fn managers(s: &Server, what: &[&str]) -> Vec<(String, String, String, Value)> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json", "--show-managed-fields"]);
    let object: Value = serde_json::from_str(&s.kubectl_ok(&args).unwrap()).unwrap();
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (
                text("manager"),
                text("operation"),
                text("subresource"),
                e["fieldsV1"].clone(),
            )
        })
        .collect()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env: [{name: A, value: \"1\"}, {name: B, value: \"2\"}]
";

#[test]
fn apply_owns_prunes_and_conflicts() {
    let (tmp, s) = server();
    let path = write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {x: \"1\", z: \"2\"}\n",
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "--server-side", "-f", &path])
            .unwrap()
            .trim(),
        "configmap/c1 serverside-applied"
    );
    let owned = managers(&s, &["cm", "c1"]);
    assert_eq!(owned.len(), 1);
    assert_eq!(
        (owned[0].0.as_str(), owned[0].1.as_str()),
        ("kubectl", "Apply")
    );
    assert_eq!(
        owned[0].3,
        serde_json::json!({"f:data": {"f:x": {}, "f:z": {}}})
    );

    // Dropping y from the configuration removes it.
    let path = write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {x: \"1\"}\n",
    );
    s.kubectl_ok(&["apply", "--server-side", "-f", &path])
        .unwrap();
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "c1", "-o", "jsonpath={.data}"])
            .unwrap(),
        r#"{"x":"1"}"#
    );

    // Another manager changing x conflicts; the same value is shared; force takes it.
    let other = write(
        tmp.path(),
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {x: \"9\"}\n",
    );
    let err = s
        .kubectl_err(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &other,
        ])
        .unwrap();
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .data.x"#),
        "{err}"
    );
    let same = write(
        tmp.path(),
        "same.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {x: \"1\"}\n",
    );
    s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &same,
    ])
    .unwrap();
    assert_eq!(managers(&s, &["cm", "c1"]).len(), 2);
    s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=other",
        "-f",
        &other,
    ])
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "c1", "-o", "jsonpath={.data.x}"])
            .unwrap(),
        "9"
    );
    let owned = managers(&s, &["cm", "c1"]);
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0].0, "other");

    // An update records its changes for its manager.
    s.kubectl_ok(&["label", "cm", "c1", "team=a"]).unwrap();
    let owned = managers(&s, &["cm", "c1"]);
    let label = owned.iter().find(|m| m.0 == "kubectl-label").unwrap();
    assert_eq!(label.1, "Update");
    assert_eq!(
        label.3,
        serde_json::json!({"f:metadata": {"f:labels": {".": {}, "f:team": {}}}})
    );
}

#[test]
fn scale_and_client_side_apply_are_managers_too() {
    let (tmp, s) = server();
    let path = write(tmp.path(), "deploy.yaml", DEPLOYMENT);
    s.kubectl_ok(&["apply", "-f", &path]).unwrap();
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &path]).unwrap().trim(),
        "deployment.apps/web unchanged"
    );
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"])
        .unwrap();
    let owned = managers(&s, &["deploy", "web"]);
    assert!(
        owned.iter().any(|m| m.0 == "kubectl"
            && m.2 == "scale"
            && m.3 == serde_json::json!({"f:spec": {"f:replicas": {}}})),
        "{owned:?}"
    );
    // Server-side apply after client-side apply: kubectl migrates the client-side manager;
    // only the scaled replicas conflict.
    let err = s
        .kubectl_err(&["apply", "--server-side", "-f", &path])
        .unwrap();
    assert!(
        err.contains(r#"conflict with "kubectl" with subresource "scale" using apps/v1"#)
            && err.contains(": .spec.replicas"),
        "{err}"
    );
    s.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &path])
        .unwrap();
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .unwrap(),
        "2"
    );
    // Removing an env var from the configuration removes it from the object.
    let smaller = write(
        tmp.path(),
        "deploy2.yaml",
        &DEPLOYMENT.replace(", {name: B, value: \"2\"}", ""),
    );
    s.kubectl_ok(&["apply", "--server-side", "-f", &smaller])
        .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[*].name}"
        ])
        .unwrap(),
        "A"
    );
}

#[test]
fn apply_patches_need_a_field_manager() {
    let (_tmp, s) = server();
    let path = "/api/v1/namespaces/default/configmaps/x";
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n";
    let out = s.curl_with("PATCH", "application/apply-patch+yaml", path, config);
    assert!(
        out.contains("fieldManager: Required value: is required for apply patch")
            && out.ends_with("422"),
        "{out}"
    );
    // Apply creates a missing object (201), then answers 200.
    let out = s.curl_with(
        "PATCH",
        "application/apply-patch+yaml",
        &format!("{path}?fieldManager=me"),
        config,
    );
    assert!(out.ends_with("201"), "{out}");
    let out = s.curl_with(
        "PATCH",
        "application/merge-patch+json",
        &format!("{path}?force=true"),
        "{}",
    );
    assert!(
        out.contains("force: Forbidden: may not be specified for non-apply patch"),
        "{out}"
    );
}
