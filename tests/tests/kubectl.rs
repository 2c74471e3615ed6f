//! The kubectl 1.33 user journey beyond single resources: `create <generator>` objects equal to their YAML twins, get output formats and sorting, describe, diff, explain, replace and delete.

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

/// The object as JSON without what differs between two creations (identity, time, the
/// namespace, managers, and allocated addresses and ports).
fn comparable(s: &Server, kind: &str, name: &str, namespace: &str) -> Value {
    let out = s
        .kubectl_ok(&[
            "get",
            kind,
            name,
            "-n",
            namespace,
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .unwrap();
    let object: Value = serde_json::from_str(&out).unwrap();
    // Generated labels and selectors carry the object's uid (jobs).
    let uid = object["metadata"]["uid"]
        .as_str()
        .unwrap_or("-")
        .to_string();
    let mut object: Value = serde_json::from_str(&out.replace(&uid, "UID")).unwrap();
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "namespace",
            "managedFields",
        ] {
            meta.remove(field);
        }
    }
    if let Some(spec) = object["spec"].as_object_mut() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
    }
    object
}

/// Whether `describe` output has a `key:   value` line (any indentation and padding).
fn has_field(text: &str, key: &str, value: &str) -> bool {
    text.lines().any(|l| {
        l.trim_start()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|rest| rest.trim() == value)
    })
}

#[test]
fn generators_make_the_same_objects_as_yaml() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "namespace", "gen"]).unwrap();
    s.kubectl_ok(&["create", "namespace", "yaml"]).unwrap();
    // A real certificate and key: the server's admin pair.
    let tls = s.kubeconfig().parent().unwrap().join("tls");
    let (cert, key) = (tls.join("admin.crt"), tls.join("admin.key"));
    let generators: Vec<Vec<String>> = vec![
        vec!["configmap", "cm1", "--from-literal=a=1"],
        vec!["secret", "generic", "s1", "--from-literal=password=hunter2"],
        vec![
            "secret",
            "docker-registry",
            "reg",
            "--docker-server=registry.local:5000",
            "--docker-username=u",
            "--docker-password=p",
        ],
        vec!["serviceaccount", "robot"],
        vec!["service", "clusterip", "c1", "--tcp=80:8080"],
        vec!["service", "nodeport", "n1", "--tcp=80:8080"],
        vec!["service", "loadbalancer", "l1", "--tcp=443:8443"],
        vec![
            "service",
            "externalname",
            "e1",
            "--external-name=example.com",
        ],
        vec!["deployment", "web", "--image=nginx:1.25", "--replicas=2"],
        vec!["job", "once", "--image=busybox"],
        vec![
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/5 * * * *",
        ],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_string).collect())
    .collect();
    let mut generators = generators;
    generators.push(
        [
            "secret",
            "tls",
            "t1",
            &format!("--cert={}", cert.display()),
            &format!("--key={}", key.display()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    );
    for args in &generators {
        let mut create: Vec<&str> = vec!["create"];
        create.extend(args.iter().map(String::as_str));
        // The generator's object, as YAML, created through the other path.
        let mut dry = create.clone();
        dry.extend(["--dry-run=client", "-o", "yaml", "-n", "yaml"]);
        let yaml = s.kubectl_ok(&dry).unwrap();
        let file = write(tmp.path(), "object.yaml", &yaml);
        s.kubectl_ok(&["create", "-f", &file, "-n", "yaml"])
            .unwrap();
        create.extend(["-n", "gen"]);
        let created = s.kubectl_ok(&create).unwrap();
        let (kind, name) = created
            .split_whitespace()
            .next()
            .and_then(|n| n.split_once('/'))
            .unwrap();
        assert_eq!(
            comparable(&s, kind, name, "gen"),
            comparable(&s, kind, name, "yaml"),
            "{args:?}"
        );
    }
    // The generated service kinds print as upstream.
    let services = s.kubectl_ok(&["get", "svc", "-n", "gen"]).unwrap();
    let types: Vec<&str> = services
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        types,
        ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
    );
}

#[test]
fn get_formats_sorting_describe_diff_explain_replace_delete() {
    let (tmp, s) = server();
    let deployment = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx:1.25}]
";
    let file = write(tmp.path(), "deploy.yaml", deployment);
    s.kubectl_ok(&["apply", "-f", &file]).unwrap();
    for (name, size) in [("b", "2"), ("a", "3"), ("c", "1")] {
        s.kubectl_ok(&[
            "create",
            "configmap",
            name,
            &format!("--from-literal=size={size}"),
        ])
        .unwrap();
        s.kubectl_ok(&["label", "configmap", name, &format!("size={size}")])
            .unwrap();
    }
    let sorted = s
        .kubectl_ok(&[
            "get",
            "cm",
            "-l",
            "size",
            "--sort-by=.data.size",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(sorted, "configmap/c\nconfigmap/b\nconfigmap/a\n");
    let labelled = s
        .kubectl_ok(&["get", "cm", "a", "-L", "size", "--no-headers"])
        .unwrap();
    assert!(labelled.trim_end().ends_with(" 3"), "{labelled}");
    let all = s
        .kubectl_ok(&["get", "deploy", "-A", "-o", "wide"])
        .unwrap();
    assert!(
        all.lines().next().unwrap().starts_with("NAMESPACE")
            && all.contains("nginx:1.25")
            && all.contains("app=web"),
        "{all}"
    );
    let yaml = s
        .kubectl_ok(&["get", "deploy", "web", "-o", "yaml"])
        .unwrap();
    assert!(yaml.contains("kind: Deployment") && yaml.contains("replicas: 2"));

    // describe: deployment, pod and node.
    let described = s.kubectl_ok(&["describe", "deployment", "web"]).unwrap();
    for (key, value) in [
        ("Name", "web"),
        ("StrategyType", "RollingUpdate"),
        ("Image", "nginx:1.25"),
    ] {
        assert!(
            has_field(&described, key, value),
            "{key}: {value} in:\n{described}"
        );
    }
    assert!(described.contains("2 desired"), "{described}");
    s.kubectl_ok(&["run", "p1", "--image=busybox", "--labels=app=p"])
        .unwrap();
    let pod = s.kubectl_ok(&["describe", "pod", "p1"]).unwrap();
    assert!(
        has_field(&pod, "Status", "Pending") && has_field(&pod, "Image", "busybox"),
        "{pod}"
    );
    let node = write(
        tmp.path(),
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {kubernetes.io/hostname: n1}}\nspec: {}\n",
    );
    s.kubectl_ok(&["create", "-f", &node]).unwrap();
    let described = s.kubectl_ok(&["describe", "node", "n1"]).unwrap();
    assert!(
        has_field(&described, "Name", "n1") && described.contains("kubernetes.io/hostname=n1"),
        "{described}"
    );

    // diff: nothing, then a change (exit status 1 with the change shown).
    let out = s.kubectl().args(["diff", "-f", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let changed = write(
        tmp.path(),
        "deploy2.yaml",
        &deployment.replace("replicas: 2", "replicas: 4"),
    );
    let out = s.kubectl().args(["diff", "-f", &changed]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout.contains("-  replicas: 2") && stdout.contains("+  replicas: 4"),
        "{stdout}"
    );

    let explained = s
        .kubectl_ok(&["explain", "deployment.spec.strategy"])
        .unwrap();
    assert!(
        explained.contains("GROUP:      apps") && explained.contains("rollingUpdate"),
        "{explained}"
    );

    // replace, then delete waits until the object is gone.
    s.kubectl_ok(&["replace", "-f", &changed]).unwrap();
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .unwrap(),
        "4"
    );
    s.kubectl_ok(&["delete", "-f", &changed]).unwrap();
    let err = s.kubectl_err(&["get", "deploy", "web"]).unwrap();
    assert!(err.contains(r#"deployments.apps "web" not found"#), "{err}");
}
