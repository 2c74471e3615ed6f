//! The API server as kubectl users meet it: version, discovery, namespaces, configmaps, selectors, watch, errors, authentication and restarts.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use k1s_tests::Server;

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

#[test]
fn kubectl_version_and_discovery() {
    let (_tmp, s) = server();
    let version = s.kubectl_ok(&["version"]).unwrap();
    assert!(
        version.contains("Server Version: v1.33.0+k1s."),
        "{version}"
    );
    let resources = s.kubectl_ok(&["api-resources"]).unwrap();
    let configmaps = resources
        .lines()
        .find(|l| l.starts_with("configmaps"))
        .unwrap();
    assert_eq!(
        configmaps.split_whitespace().collect::<Vec<_>>(),
        ["configmaps", "cm", "v1", "true", "ConfigMap"]
    );
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["leases", "coordination.k8s.io/v1", "true", "Lease"]),
        "{resources}"
    );
    let versions = s.kubectl_ok(&["api-versions"]).unwrap();
    let versions: Vec<&str> = versions.lines().collect();
    for served in [
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
        "v1",
    ] {
        assert!(versions.contains(&served), "{versions:?}");
    }
    // The legacy per-group document is served too (drain and auth can-i read it).
    let legacy = s.kubectl_ok(&["get", "--raw", "/api/v1"]).unwrap();
    assert!(legacy.contains(r#""name":"namespaces/status""#), "{legacy}");
}

#[test]
fn initial_namespaces_exist() {
    let (_tmp, s) = server();
    let out = s.kubectl_ok(&["get", "ns", "-o", "custom-columns=NAME:.metadata.name,STATUS:.status.phase,LABEL:.metadata.labels.kubernetes\\.io/metadata\\.name", "--no-headers"]).unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["default", "Active", "default"],
            vec!["kube-node-lease", "Active", "kube-node-lease"],
            vec!["kube-public", "Active", "kube-public"],
            vec!["kube-system", "Active", "kube-system"],
        ]
    );
}

#[test]
fn configmap_lifecycle_with_kubectl() {
    let (tmp, s) = server();
    let manifest = write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  labels: {app: web}\ndata:\n  a: \"1\"\n  b: \"2\"\n",
    );
    // OpenAPI (needed for client-side validation) arrives later in the apiserver issue.
    assert_eq!(
        s.kubectl_ok(&["create", "-f", &manifest, "--validate=false"])
            .unwrap(),
        "configmap/web-config created\n"
    );
    let err = s
        .kubectl_err(&["create", "-f", &manifest, "--validate=false"])
        .unwrap();
    assert!(
        err.contains(r#"Error from server (AlreadyExists): error when creating "#)
            && err.contains(r#"configmaps "web-config" already exists"#),
        "{err}"
    );

    let table = s.kubectl_ok(&["get", "cm"]).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "DATA", "AGE"]
    );
    // The root CA publisher's ConfigMap is in every namespace, as upstream.
    assert_eq!(
        &lines[1].split_whitespace().collect::<Vec<_>>()[..2],
        ["kube-root-ca.crt", "1"]
    );
    assert_eq!(
        &lines[2].split_whitespace().collect::<Vec<_>>()[..2],
        ["web-config", "2"]
    );

    let yaml = s
        .kubectl_ok(&["get", "cm", "web-config", "-o", "yaml"])
        .unwrap();
    for line in [
        "kind: ConfigMap",
        "  name: web-config",
        "  namespace: default",
        "  a: \"1\"",
        "  uid: ",
        "  resourceVersion: \"",
        "  creationTimestamp: \"",
    ] {
        assert!(yaml.contains(line), "missing {line:?} in\n{yaml}");
    }
    let all = s
        .kubectl_ok(&["get", "cm", "-A", "--show-labels", "--no-headers"])
        .unwrap();
    let labelled = all
        .lines()
        .find(|l| l.contains("web-config"))
        .unwrap_or_else(|| panic!("no web-config in {all}"));
    assert_eq!(
        labelled.split_whitespace().collect::<Vec<_>>()[..3],
        ["default", "web-config", "2"]
    );
    assert!(labelled.trim_end().ends_with("app=web"), "{labelled}");
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "-l", "app=web", "-o", "name"])
            .unwrap(),
        "configmap/web-config\n"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "-l", "app!=web", "-o", "name"])
            .unwrap(),
        "configmap/kube-root-ca.crt\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=web-config",
            "-o",
            "name"
        ])
        .unwrap(),
        "configmap/web-config\n"
    );
    let jsonpath = s
        .kubectl_ok(&["get", "cm", "web-config", "-o", "jsonpath={.data.b}"])
        .unwrap();
    assert_eq!(jsonpath, "2");

    // replace with a stale resourceVersion is a conflict; with the current one it works.
    let current = s
        .kubectl_ok(&[
            "get",
            "cm",
            "web-config",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .unwrap();
    let stale = write(
        tmp.path(),
        "stale.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  resourceVersion: \"1\"\ndata:\n  a: \"9\"\n",
    );
    let err = s
        .kubectl_err(&["replace", "-f", &stale, "--validate=false"])
        .unwrap();
    assert!(err.contains("Operation cannot be fulfilled on configmaps \"web-config\": the object has been modified; please apply your changes to the latest version and try again"), "{err}");
    let fresh = write(
        tmp.path(),
        "fresh.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  resourceVersion: \"{current}\"\ndata:\n  a: \"9\"\n"
        ),
    );
    assert_eq!(
        s.kubectl_ok(&["replace", "-f", &fresh, "--validate=false"])
            .unwrap(),
        "configmap/web-config replaced\n"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "web-config", "-o", "jsonpath={.data.a}"])
            .unwrap(),
        "9"
    );

    // delete waits for the object to go (a watch on its name).
    assert_eq!(
        s.kubectl_ok(&["delete", "cm", "web-config"]).unwrap(),
        "configmap \"web-config\" deleted\n"
    );
    let err = s.kubectl_err(&["get", "cm", "web-config"]).unwrap();
    assert!(
        err.contains(r#"Error from server (NotFound): configmaps "web-config" not found"#),
        "{err}"
    );
}

#[test]
fn bad_input_gets_upstream_status() {
    let (tmp, s) = server();
    let bad_name = write(
        tmp.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    );
    let err = s
        .kubectl_err(&["create", "-f", &bad_name, "--validate=false"])
        .unwrap();
    assert!(err.contains(r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#), "{err}");
    let no_ns = write(
        tmp.path(),
        "nons.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: nowhere\n",
    );
    let err = s
        .kubectl_err(&["create", "-f", &no_ns, "--validate=false"])
        .unwrap();
    assert!(err.contains(r#"namespaces "nowhere" not found"#), "{err}");
    let err = s.kubectl_err(&["get", "cm", "-l", "a in ()"]).unwrap();
    assert!(err.contains("values set can't be empty"), "{err}");
    let err = s
        .kubectl_err(&["get", "cm", "--field-selector", "spec.x=1"])
        .unwrap();
    assert!(err.contains("field label not supported: spec.x"), "{err}");
    let err = s.kubectl_err(&["get", "--raw", "/api/v1/widgets"]).unwrap();
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn watch_prints_later_changes() {
    let (tmp, s) = server();
    let mut watch = s
        .kubectl()
        .args(["get", "cm", "-w", "--no-headers"])
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
    // Give the watch a moment to start, then change things.
    std::thread::sleep(Duration::from_millis(500));
    let cm = write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  k: v\n",
    );
    s.kubectl_ok(&["create", "-f", &cm, "--validate=false"])
        .unwrap();
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the watch printed nothing")
    };
    // First the list (the root CA publisher's ConfigMap), then the change.
    let line = next();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>()[..2],
        ["kube-root-ca.crt", "1"]
    );
    let line = next();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>()[..2],
        ["watched", "1"]
    );
    s.kubectl_ok(&["delete", "cm", "watched", "--wait=false"])
        .unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn requests_without_a_cluster_client_certificate_are_unauthorized() {
    let (tmp, s) = server();
    // The same server and CA, but a bearer token instead of the client certificate (without
    // any credentials kubectl would prompt for a password).
    let kubeconfig = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let mut anonymous: String = kubeconfig
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    anonymous.push_str("    token: not-a-real-token\n");
    let path = write(tmp.path(), "anon.yaml", &anonymous);
    let out = std::process::Command::new("kubectl")
        .args(["--kubeconfig", &path, "get", "ns"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("error: You must be logged in to the server"),
        "{stderr}"
    );
    // /version stays public to anonymous requests (the kubectl dispatcher reads it before every
    // command); an invalid token is a 401 everywhere, as upstream.
    let version = |extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(s.data_dir.join("tls/ca.crt"))
            .args(extra)
            .arg(format!("{}/version", s.url()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(version(&[]), "200");
    assert_eq!(
        version(&["-H", "Authorization: Bearer not-a-real-token"]),
        "401"
    );
}

#[test]
fn restart_keeps_objects_revisions_and_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cm = write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\ndata:\n  k: v\n",
    );
    let s = Server::start(data.clone(), &[]).unwrap();
    s.kubectl_ok(&["create", "-f", &cm, "--validate=false"])
        .unwrap();
    let before = s
        .kubectl_ok(&[
            "get",
            "cm",
            "kept",
            "-o",
            "jsonpath={.metadata.uid} {.metadata.resourceVersion}",
        ])
        .unwrap();
    let kubeconfig = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let ca = std::fs::read(data.join("tls/ca.crt")).unwrap();
    assert!(s.stop().unwrap().success());

    let s = Server::start(data.clone(), &[]).unwrap();
    assert_eq!(
        std::fs::read(data.join("tls/ca.crt")).unwrap(),
        ca,
        "the CA changed across a restart"
    );
    // The old kubeconfig (same port? no: a new one is written; its credentials are the same).
    let new_kubeconfig = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let creds = |k: &str| {
        k.lines()
            .filter(|l| l.contains("-data:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(creds(&kubeconfig), creds(&new_kubeconfig));
    let after = s
        .kubectl_ok(&[
            "get",
            "cm",
            "kept",
            "-o",
            "jsonpath={.metadata.uid} {.metadata.resourceVersion}",
        ])
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn label_annotate_and_all_three_patch_types() {
    let (tmp, s) = server();
    let cm = write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\n  labels: {app: web}\ndata:\n  a: \"1\"\n  b: \"2\"\n",
    );
    s.kubectl_ok(&["create", "-f", &cm, "--validate=false"])
        .unwrap();
    assert_eq!(
        s.kubectl_ok(&["label", "cm", "p", "tier=front"]).unwrap(),
        "configmap/p labeled\n"
    );
    assert_eq!(
        s.kubectl_ok(&["annotate", "cm", "p", "note=hi"]).unwrap(),
        "configmap/p annotated\n"
    );
    assert_eq!(
        s.kubectl_ok(&["patch", "cm", "p", "-p", r#"{"data":{"c":"3"}}"#])
            .unwrap(),
        "configmap/p patched\n"
    );
    s.kubectl_ok(&[
        "patch",
        "cm",
        "p",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":null}}"#,
    ])
    .unwrap();
    s.kubectl_ok(&[
        "patch",
        "cm",
        "p",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/b","value":"20"}]"#,
    ])
    .unwrap();
    let got = s
        .kubectl_ok(&[
            "get",
            "cm",
            "p",
            "-o",
            "jsonpath={.data} {.metadata.labels} {.metadata.annotations}",
        ])
        .unwrap();
    assert_eq!(
        got,
        r#"{"b":"20","c":"3"} {"app":"web","tier":"front"} {"note":"hi"}"#
    );
    assert_eq!(
        s.kubectl_ok(&["label", "cm", "p", "tier-"]).unwrap(),
        "configmap/p unlabeled\n"
    );
    // A JSON patch whose test fails changes nothing.
    let err = s
        .kubectl_err(&[
            "patch",
            "cm",
            "p",
            "--type",
            "json",
            "-p",
            r#"[{"op":"test","path":"/data/b","value":"x"},{"op":"remove","path":"/data/b"}]"#,
        ])
        .unwrap();
    assert!(err.contains("The request is invalid"), "{err}");
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "p", "-o", "jsonpath={.data.b}"])
            .unwrap(),
        "20"
    );
    // A patch carrying a stale resourceVersion is a conflict.
    let err = s
        .kubectl_err(&[
            "patch",
            "cm",
            "p",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"resourceVersion":"1"},"data":{"z":"1"}}"#,
        ])
        .unwrap();
    assert!(err.contains("the object has been modified"), "{err}");
}

#[test]
fn apply_explain_and_server_side_field_validation() {
    let (tmp, s) = server();
    let v1 = write(
        tmp.path(),
        "v1.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: \"1\"\n  b: \"2\"\n",
    );
    let v2 = write(
        tmp.path(),
        "v2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: \"1\"\n  c: \"3\"\n",
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &v1]).unwrap(),
        "configmap/app created\n"
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &v1]).unwrap(),
        "configmap/app unchanged\n"
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &v2]).unwrap(),
        "configmap/app configured\n"
    );
    // The key dropped from the manifest is removed; the last-applied annotation is kept.
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "app", "-o", "jsonpath={.data}"])
            .unwrap(),
        r#"{"a":"1","c":"3"}"#
    );
    let annotations = s
        .kubectl_ok(&["get", "cm", "app", "-o", "jsonpath={.metadata.annotations}"])
        .unwrap();
    assert!(
        annotations.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{annotations}"
    );

    let typo = write(
        tmp.path(),
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  a: \"1\"\n",
    );
    let err = s.kubectl_err(&["create", "-f", &typo]).unwrap();
    assert!(
        err.contains(r#"Error from server (BadRequest): error when creating"#)
            && err.contains(r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "datta""#),
        "{err}"
    );
    let out = s
        .kubectl()
        .args(["create", "-f", &typo, "--validate=warn"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"Warning: unknown field "datta""#));
    // The unknown field was dropped, not stored.
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "typo", "-o", "jsonpath={.datta}"])
            .unwrap(),
        ""
    );

    let explain = s.kubectl_ok(&["explain", "configmap"]).unwrap();
    assert!(
        explain.contains("KIND:       ConfigMap")
            && explain.contains("ConfigMap holds configuration data for pods to consume."),
        "{explain}"
    );
    let field = s
        .kubectl_ok(&["explain", "lease.spec.holderIdentity"])
        .unwrap();
    assert!(field.contains("FIELD: holderIdentity <string>"), "{field}");
}

#[test]
fn kubectl_create_generators_send_protobuf() {
    let (_tmp, s) = server();
    assert_eq!(
        s.kubectl_ok(&["create", "namespace", "team-a"]).unwrap(),
        "namespace/team-a created\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "configmap",
            "cfg",
            "-n",
            "team-a",
            "--from-literal=a=1",
            "--from-literal=b=2"
        ])
        .unwrap(),
        "configmap/cfg created\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "s1",
            "-n",
            "team-a",
            "--from-literal=password=hunter2"
        ])
        .unwrap(),
        "secret/s1 created\n"
    );
    assert_eq!(
        s.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "team-a"])
            .unwrap(),
        "serviceaccount/robot created\n"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "cfg", "-n", "team-a", "-o", "jsonpath={.data}"])
            .unwrap(),
        r#"{"a":"1","b":"2"}"#
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "secret",
            "s1",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.type} {.data.password}"
        ])
        .unwrap(),
        "Opaque aHVudGVyMg=="
    );
    assert_eq!(
        s.kubectl_ok(&["get", "ns", "team-a", "-o", "jsonpath={.status.phase}"])
            .unwrap(),
        "Active"
    );
    let err = s
        .kubectl_err(&["create", "configmap", "cfg", "-n", "team-a"])
        .unwrap();
    assert!(err.contains(r#"configmaps "cfg" already exists"#), "{err}");
}

#[test]
fn dry_run_status_subresource_and_delete_collection() {
    let (_tmp, s) = server();
    // dryRun=All answers with the object but stores nothing.
    let dry = s
        .kubectl_ok(&[
            "create",
            "cm",
            "dry",
            "--from-literal=a=1",
            "--dry-run=server",
            "-o",
            "jsonpath={.metadata.name}",
        ])
        .unwrap();
    assert_eq!(dry, "dry");
    assert!(
        s.kubectl_err(&["get", "cm", "dry"])
            .unwrap()
            .contains(r#"configmaps "dry" not found"#)
    );

    // Status changes only through /status; /status changes only the status.
    s.kubectl_ok(&["create", "ns", "x"]).unwrap();
    s.kubectl_ok(&[
        "patch",
        "ns",
        "x",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Foo"},"metadata":{"labels":{"l":"1"}}}"#,
    ])
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "ns",
            "x",
            "-o",
            "jsonpath={.status.phase} {.metadata.labels.l}"
        ])
        .unwrap(),
        "Active 1"
    );
    s.kubectl_ok(&[
        "patch",
        "ns",
        "x",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Foo"},"metadata":{"labels":{"m":"1"}}}"#,
    ])
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "ns",
            "x",
            "-o",
            "jsonpath={.status.phase} {.metadata.labels.m}"
        ])
        .unwrap(),
        "Foo "
    );

    // DELETE on a collection removes what the selector matches.
    for name in ["c1", "c2", "c3"] {
        s.kubectl_ok(&["create", "cm", name]).unwrap();
    }
    s.kubectl_ok(&["label", "cm", "c1", "c2", "del=yes"])
        .unwrap();
    s.kubectl_ok(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/default/configmaps?labelSelector=del%3Dyes",
    ])
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "-o", "name"]).unwrap(),
        "configmap/c3\nconfigmap/kube-root-ca.crt\n"
    );
    // Empty strings in protobuf bodies are unset fields, not stored values.
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "c3", "-o", "jsonpath={.metadata.generateName}"])
            .unwrap(),
        ""
    );
    let raw = s
        .kubectl_ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps/c3"])
        .unwrap();
    assert!(!raw.contains("generateName"), "{raw}");
}

#[test]
fn yaml_bodies_are_accepted_and_malformed_ones_are_bad_requests() {
    let (_tmp, s) = server();
    let curl = |body: &str| {
        s.curl(
            "application/yaml",
            "/api/v1/namespaces/default/configmaps",
            body,
        )
    };
    let created =
        curl("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: \"1\"\n");
    assert!(created.ends_with("\n201"), "{created}");
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "from-yaml", "-o", "jsonpath={.data.a}"])
            .unwrap(),
        "1"
    );
    let bad = curl("apiVersion: v1\nkind: [unclosed\n");
    assert!(
        bad.ends_with("\n400") && bad.contains(r#""reason":"BadRequest""#),
        "{bad}"
    );
}

#[test]
fn nodes_print_upstream_columns_and_cordon() {
    let (tmp, s) = server();
    let node = write(
        tmp.path(),
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: edge-1\n  labels:\n    node-role.kubernetes.io/control-plane: \"\"\nstatus:\n  conditions:\n  - type: Ready\n    status: \"True\"\n  addresses:\n  - type: InternalIP\n    address: 192.0.2.10\n  nodeInfo:\n    kubeletVersion: v1.33.0\n    osImage: Debian GNU/Linux 12 (bookworm)\n    kernelVersion: 6.18.0\n    containerRuntimeVersion: k1s://0.1.0\n    machineID: \"\"\n    systemUUID: \"\"\n    bootID: \"\"\n    kubeProxyVersion: \"\"\n    operatingSystem: linux\n    architecture: amd64\n",
    );
    s.kubectl_ok(&["apply", "-f", &node]).unwrap();
    let wide = s.kubectl_ok(&["get", "nodes", "-o", "wide"]).unwrap();
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[2], row[4], row[5], row[6]),
        (
            "edge-1",
            "Ready",
            "control-plane",
            "v1.33.0",
            "192.0.2.10",
            "<none>"
        )
    );
    assert_eq!(
        s.kubectl_ok(&["cordon", "edge-1"]).unwrap(),
        "node/edge-1 cordoned\n"
    );
    let row = s
        .kubectl_ok(&["get", "no", "edge-1", "--no-headers"])
        .unwrap();
    assert_eq!(
        row.split_whitespace().nth(1),
        Some("Ready,SchedulingDisabled")
    );
    let unschedulable = |v: &str| {
        s.kubectl_ok(&[
            "get",
            "nodes",
            "--field-selector",
            &format!("spec.unschedulable={v}"),
            "-o",
            "name",
        ])
        .unwrap()
    };
    assert_eq!(unschedulable("true"), "node/edge-1\n");
    assert_eq!(unschedulable("false"), "");
    s.kubectl_ok(&["uncordon", "edge-1"]).unwrap();
    assert_eq!(unschedulable("false"), "node/edge-1\n");
    // Status is kept away from main-resource writes: a label patch cannot flip it.
    s.kubectl_ok(&[
        "patch",
        "node",
        "edge-1",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[]}}"#,
    ])
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "no",
            "edge-1",
            "-o",
            "jsonpath={.status.conditions[0].type}"
        ])
        .unwrap(),
        "Ready"
    );
}

#[test]
fn events_print_upstream_columns_and_expire_after_the_event_ttl() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        tmp.path().join("data"),
        &["--ephemeral", "--event-ttl", "2s"],
    )
    .unwrap();
    let event = write(
        tmp.path(),
        "ev.yaml",
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: web.17a\ninvolvedObject:\n  kind: Pod\n  name: web\n  namespace: default\n  fieldPath: spec.containers{nginx}\nreason: Pulled\nmessage: \"  Successfully pulled image  \"\ntype: Normal\nsource:\n  component: kubelet\n  host: edge-1\ncount: 3\n",
    );
    s.kubectl_ok(&["create", "-f", &event]).unwrap();
    let out = s.kubectl_ok(&["get", "events", "-o", "wide"]).unwrap();
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME"
        ]
    );
    let row = lines.next().unwrap();
    for cell in [
        "Normal",
        "Pulled",
        "pod/web",
        "spec.containers{nginx}",
        "kubelet, edge-1",
        "Successfully pulled image",
        "3",
        "web.17a",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    // Field selectors on what the event is about, as upstream supports them.
    let sel = |selector: &str| {
        s.kubectl_ok(&["get", "events", "--field-selector", selector, "-o", "name"])
            .unwrap()
    };
    assert_eq!(
        sel("involvedObject.name=web,involvedObject.kind=Pod"),
        "event/web.17a\n"
    );
    assert_eq!(sel("involvedObject.name=other"), "");
    assert_eq!(
        sel("source=kubelet,type=Normal,reason=Pulled"),
        "event/web.17a\n"
    );
    // Events expire --event-ttl after their last write (here 2 s), as a store delete.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let out = s.kubectl_ok(&["get", "events", "-o", "name"]).unwrap();
        if out.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event never expired: {out}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// POST a JSON body as the admin (for endpoints kubectl has no verb for).
fn post(s: &Server, path: &str, body: &str) -> String {
    s.curl("application/json", path, body)
}

#[test]
fn pods_default_bind_and_delete_gracefully() {
    let (_tmp, s) = server();
    assert_eq!(
        s.kubectl_ok(&["run", "web", "--image=nginx:1.27", "--port=80"])
            .unwrap(),
        "pod/web created\n"
    );
    let spec = s.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.spec.restartPolicy} {.spec.schedulerName} {.spec.containers[0].imagePullPolicy} {.spec.containers[0].ports[0].protocol} {.status.phase} {.status.qosClass}"]).unwrap();
    assert_eq!(
        spec,
        "Always default-scheduler IfNotPresent TCP Pending BestEffort"
    );
    let row = s.kubectl_ok(&["get", "pods", "--no-headers"]).unwrap();
    assert_eq!(
        row.split_whitespace().take(4).collect::<Vec<_>>(),
        ["web", "0/1", "Pending", "0"]
    );

    // Pod updates may change images, not the rest of the spec.
    s.kubectl_ok(&["set", "image", "pod/web", "web=nginx:1.28"])
        .unwrap();
    let err = s
        .kubectl_err(&[
            "patch",
            "pod",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"restartPolicy":"Never"}}"#,
        ])
        .unwrap();
    assert!(
        err.contains("pod updates may not change fields other than `spec.containers[*].image`"),
        "{err}"
    );

    // The scheduler's write: a binding assigns the pod once.
    let bind = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web"},"target":{"kind":"Node","name":"edge-1"}}"#;
    let out = post(&s, "/api/v1/namespaces/default/pods/web/binding", bind);
    assert!(out.ends_with("\n201"), "{out}");
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.nodeName} {.status.conditions[0].type}"
        ])
        .unwrap(),
        "edge-1 PodScheduled"
    );
    let again = post(&s, "/api/v1/namespaces/default/pods/web/binding", bind);
    assert!(
        again.ends_with("\n409")
            && again.contains(r#"pod web is already assigned to node \"edge-1\""#),
        "{again}"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=edge-1",
            "-o",
            "name"
        ])
        .unwrap(),
        "pod/web\n"
    );

    // A pod on a node is only marked for deletion (its node finishes it); --force removes it.
    s.kubectl_ok(&["delete", "pod", "web", "--wait=false"])
        .unwrap();
    let marked = s
        .kubectl_ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.metadata.deletionGracePeriodSeconds}",
        ])
        .unwrap();
    assert_eq!(marked, "30");
    assert_eq!(
        s.kubectl_ok(&["get", "pods", "--no-headers"])
            .unwrap()
            .split_whitespace()
            .nth(2),
        Some("Terminating")
    );
    s.kubectl_ok(&["delete", "pod", "web", "--grace-period=0", "--force"])
        .unwrap();
    assert_eq!(s.kubectl_ok(&["get", "pods", "-o", "name"]).unwrap(), "");
    // An unscheduled pod goes at once.
    s.kubectl_ok(&["run", "idle", "--image=busybox"]).unwrap();
    assert_eq!(
        s.kubectl_ok(&["delete", "pod", "idle"]).unwrap(),
        "pod \"idle\" deleted\n"
    );
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let (tmp, s) = server();
    let cm = write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n",
    );
    s.kubectl_ok(&["create", "-f", &cm]).unwrap();
    s.kubectl_ok(&["delete", "cm", "held", "--wait=false"])
        .unwrap();
    let ts = s
        .kubectl_ok(&[
            "get",
            "cm",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .unwrap();
    assert!(!ts.is_empty(), "no deletionTimestamp");
    let err = s
        .kubectl_err(&[
            "patch",
            "cm",
            "held",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/more"}]"#,
        ])
        .unwrap();
    assert!(
        err.contains("no new finalizers can be added if the object is being deleted"),
        "{err}"
    );
    s.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .unwrap();
    assert!(
        s.kubectl_err(&["get", "cm", "held"])
            .unwrap()
            .contains("not found")
    );
}

#[test]
fn streaming_list_watch_ends_initial_events_with_a_bookmark() {
    let (_tmp, s) = server();
    s.kubectl_ok(&["create", "cm", "one"]).unwrap();
    // Watch streams stay open: read what arrives within a second, then stop.
    let watch = |query: &str| {
        let out = s
            .kubectl()
            .args([
                "get",
                "--raw",
                &format!(
                    "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&{query}"
                ),
            ])
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (events, _) =
        watch("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true");
    let lines: Vec<&str> = events.lines().collect();
    // The root CA publisher's ConfigMap, ours, then the bookmark.
    assert_eq!(lines.len(), 3, "{events}");
    assert!(
        lines[0].starts_with(r#"{"type":"ADDED""#)
            && lines[0].contains(r#""name":"kube-root-ca.crt""#),
        "{events}"
    );
    assert!(
        lines[1].starts_with(r#"{"type":"ADDED""#) && lines[1].contains(r#""name":"one""#),
        "{events}"
    );
    assert!(
        lines[2].starts_with(r#"{"type":"BOOKMARK""#)
            && lines[2].contains(r#""k8s.io/initial-events-end":"true""#),
        "{events}"
    );
    // Without the required companions: 422, as upstream.
    let (_, err) = watch("sendInitialEvents=true");
    assert!(
        err.contains("ListOptions \"\" is invalid")
            && err.contains(
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
            ),
        "{err}"
    );
    // sendInitialEvents=false: only changes from now on.
    let (events, _) = watch("sendInitialEvents=false");
    assert_eq!(events, "");
}

#[test]
fn ephemeral_containers_are_only_added_through_their_subresource() {
    let (_tmp, s) = server();
    s.kubectl_ok(&["run", "p1", "--image=nginx"]).unwrap();
    s.kubectl_ok(&["debug", "p1", "--image=busybox", "-c", "dbg"])
        .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "pod",
            "p1",
            "-o",
            "jsonpath={.spec.ephemeralContainers[0].name} {.spec.ephemeralContainers[0].terminationMessagePolicy}"
        ])
        .unwrap(),
        "dbg File"
    );
    // Removing one is refused; the main resource cannot add one either.
    let path = "/api/v1/namespaces/default/pods/p1/ephemeralcontainers";
    let out = s.curl_with(
        "PATCH",
        "application/merge-patch+json",
        path,
        r#"{"spec":{"ephemeralContainers":[]}}"#,
    );
    assert!(
        out.contains(r#"existing ephemeral containers \"dbg\" may not be removed"#)
            && out.ends_with("422"),
        "{out}"
    );
    let err = s
        .kubectl_err(&[
            "patch",
            "pod",
            "p1",
            "--type=merge",
            "-p",
            r#"{"spec":{"ephemeralContainers":[{"name":"x","image":"busybox"}]}}"#,
        ])
        .unwrap();
    assert!(
        err.contains("Forbidden: pod updates may not change fields"),
        "{err}"
    );
}

#[test]
fn metadata_is_validated_as_upstream() {
    let (_tmp, s) = server();
    let big = "a".repeat(300 * 1024);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big","annotations":{{"a":"{big}"}}}}}}"#
    );
    let out = s.curl(
        "application/json",
        "/api/v1/namespaces/default/configmaps",
        &body,
    );
    assert!(
        out.contains("metadata.annotations: Too long: may not be more than 262144 bytes")
            && out.ends_with("422"),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
    let out = s.curl(
        "application/json",
        "/api/v1/namespaces/default/configmaps",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l","labels":{"bad key":"v"},"finalizers":["no/pe/x"]}}"#,
    );
    assert!(
        out.contains(r#"metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters"#)
            && out.contains("metadata.finalizers[0]")
            && out.ends_with("422"),
        "{out}"
    );
}

#[test]
fn propagation_policies_are_recorded_as_finalizers() {
    // Without controllers: the garbage collector would act on the finalizers at once.
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        tmp.path().join("data"),
        &["--ephemeral", "--disable-controller-manager"],
    )
    .unwrap();
    for name in ["orphaned", "foreground", "background"] {
        s.kubectl_ok(&["create", "configmap", name]).unwrap();
    }
    s.kubectl_ok(&[
        "delete",
        "cm",
        "orphaned",
        "--cascade=orphan",
        "--wait=false",
    ])
    .unwrap();
    s.kubectl_ok(&[
        "delete",
        "cm",
        "foreground",
        "--cascade=foreground",
        "--wait=false",
    ])
    .unwrap();
    s.kubectl_ok(&["delete", "cm", "background"]).unwrap();
    let left = s
        .kubectl_ok(&[
            "get",
            "cm",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.finalizers}{\"\\n\"}{end}",
        ])
        .unwrap();
    assert!(left.contains(r#"orphaned=["orphan"]"#), "{left}");
    assert!(
        left.contains(r#"foreground=["foregroundDeletion"]"#),
        "{left}"
    );
    assert!(!left.contains("background"), "{left}");
    let out = s.curl_with(
        "DELETE",
        "application/json",
        "/api/v1/namespaces/default/configmaps/orphaned?propagationPolicy=Sideways",
        "",
    );
    assert!(
        out.contains(r#"propagationPolicy: Unsupported value: \"Sideways\""#)
            && out.ends_with("422"),
        "{out}"
    );
}
