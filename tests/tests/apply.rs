//! Client-side `kubectl apply` and the strategic merge patches behind it, as users meet them: re-applying an unchanged manifest changes nothing, an edit merges lists by their keys and prunes what the manifest dropped, and `kubectl patch` honours every `$patch` directive.

use k1s_tests::Server;

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

/// Write `yaml` to `name` in the test's temp dir and `kubectl apply -f` it; kubectl's output.
fn apply(s: &Server, dir: &tempfile::TempDir, name: &str, yaml: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    s.kubectl_ok(&["apply", "-f", &path.display().to_string()])
        .unwrap()
        .trim()
        .to_string()
}

fn jsonpath(s: &Server, what: &[&str], path: &str) -> String {
    let template = format!("jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", &template]);
    s.kubectl_ok(&args).unwrap()
}

const SERVICE: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: https
    port: 443
    targetPort: 8443
  - name: dns
    port: 53
    protocol: UDP
";

#[test]
fn reapplying_a_service_with_several_ports_changes_nothing() {
    let (tmp, s) = server();
    assert_eq!(apply(&s, &tmp, "svc.yaml", SERVICE), "service/web created");
    let ip = jsonpath(&s, &["svc", "web"], "{.spec.clusterIP}");
    // The live ports carry defaulted protocols the manifest lacks; they merge by port.
    assert_eq!(
        apply(&s, &tmp, "svc.yaml", SERVICE),
        "service/web unchanged"
    );

    // Change one target port, drop a port, add one: the others keep their server-side fields.
    let edited = SERVICE
        .replace("targetPort: 8443", "targetPort: 9443")
        .replace("  - name: http\n    port: 80\n    targetPort: 8080\n", "")
        + "  - name: metrics\n    port: 9090\n";
    assert_eq!(
        apply(&s, &tmp, "svc.yaml", &edited),
        "service/web configured"
    );
    assert_eq!(
        jsonpath(
            &s,
            &["svc", "web"],
            "{range .spec.ports[*]}{.name}:{.port}/{.protocol}->{.targetPort} {end}"
        ),
        "https:443/TCP->9443 dns:53/UDP->53 metrics:9090/TCP->9090 "
    );
    assert_eq!(jsonpath(&s, &["svc", "web"], "{.spec.clusterIP}"), ip);
    assert_eq!(
        apply(&s, &tmp, "svc.yaml", &edited),
        "service/web unchanged"
    );
}

const POD: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels:
    app: p
spec:
  # Without it the ServiceAccount admission plugin appends its token volume and mounts, and
  # kubectl then always sends `$setElementOrder` for the longer live lists (it prints configured).
  automountServiceAccountToken: false
  containers:
  - name: web
    image: nginx:1.27
    env:
    - name: MODE
      value: dev
    ports:
    - containerPort: 80
    volumeMounts:
    - name: scratch
      mountPath: /scratch
  - name: side
    image: busybox:1.36
  volumes:
  - name: scratch
    emptyDir: {}
";

#[test]
fn reapplying_a_pod_changes_nothing_and_an_edit_is_merged() {
    let (tmp, s) = server();
    assert_eq!(apply(&s, &tmp, "pod.yaml", POD), "pod/p created");
    assert_eq!(apply(&s, &tmp, "pod.yaml", POD), "pod/p unchanged");
    let edited = POD
        .replace("nginx:1.27", "nginx:1.28")
        .replace("app: p", "app: p\n    tier: front");
    assert_eq!(apply(&s, &tmp, "pod.yaml", &edited), "pod/p configured");
    assert_eq!(
        jsonpath(
            &s,
            &["pod", "p"],
            "{.spec.containers[*].image} {.metadata.labels.tier} {.spec.containers[0].env[0].value} {.spec.containers[0].ports[0].protocol}"
        ),
        "nginx:1.28 busybox:1.36 front dev TCP"
    );
    assert_eq!(apply(&s, &tmp, "pod.yaml", &edited), "pod/p unchanged");
    // Removing a label the manifest set removes it (pruned through the last-applied annotation).
    assert_eq!(apply(&s, &tmp, "pod.yaml", POD), "pod/p configured");
    assert_eq!(
        jsonpath(&s, &["pod", "p"], "{.metadata.labels}"),
        r#"{"app":"p"}"#
    );
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
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
        env:
        - name: A
          value: '1'
        - name: B
          value: '2'
        ports:
        - containerPort: 80
        - containerPort: 443
        volumeMounts:
        - name: cfg
          mountPath: /etc/cfg
      - name: side
        image: busybox:1.36
        command: [sleep, infinity]
      volumes:
      - name: cfg
        configMap:
          name: cfg
      - name: scratch
        emptyDir: {}
";

const DEPLOYMENT_EDITED: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
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
        env:
        - name: A
          value: '1'
        - name: C
          value: '3'
        ports:
        - containerPort: 80
        - containerPort: 443
        - containerPort: 8080
          name: alt
        volumeMounts:
        - name: cfg
          mountPath: /etc/cfg
      volumes:
      - name: cfg
        secret:
          secretName: cfg
      - name: scratch
        emptyDir: {}
";

#[test]
fn reapplying_a_deployment_changes_nothing_and_edits_merge_by_key() {
    let (tmp, s) = server();
    assert_eq!(
        apply(&s, &tmp, "deploy.yaml", DEPLOYMENT),
        "deployment.apps/web created"
    );
    assert_eq!(
        apply(&s, &tmp, "deploy.yaml", DEPLOYMENT),
        "deployment.apps/web unchanged"
    );

    // Drop env B and add C, add a named port, switch a volume's source (volumes are
    // `merge,retainKeys`) and remove the second container.
    assert_eq!(
        apply(&s, &tmp, "deploy.yaml", DEPLOYMENT_EDITED),
        "deployment.apps/web configured"
    );
    assert_eq!(
        jsonpath(
            &s,
            &["deploy", "web"],
            "{.spec.template.spec.containers[*].name} {.spec.template.spec.containers[0].env[*].name} {.spec.template.spec.containers[0].ports[*].containerPort} {.spec.template.spec.containers[0].ports[2].protocol}"
        ),
        "web A C 80 443 8080 TCP"
    );
    assert_eq!(
        jsonpath(
            &s,
            &["deploy", "web"],
            "{.spec.template.spec.volumes[*].name} {.spec.template.spec.volumes[0].secret.secretName} [{.spec.template.spec.volumes[0].configMap}]"
        ),
        "cfg scratch cfg []"
    );
    assert_eq!(
        apply(&s, &tmp, "deploy.yaml", DEPLOYMENT_EDITED),
        "deployment.apps/web unchanged"
    );

    // A change made with another command is reverted by the next apply, and only it.
    s.kubectl_ok(&["set", "image", "deploy/web", "web=nginx:1.29"])
        .unwrap();
    s.kubectl_ok(&["set", "env", "deploy/web", "EXTRA=1"])
        .unwrap();
    assert_eq!(
        apply(&s, &tmp, "deploy.yaml", DEPLOYMENT_EDITED),
        "deployment.apps/web configured"
    );
    assert_eq!(
        jsonpath(
            &s,
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.27"
    );
    let env = jsonpath(
        &s,
        &["deploy", "web"],
        "{.spec.template.spec.containers[0].env[*].name}",
    );
    let mut env: Vec<&str> = env.split_whitespace().collect();
    env.sort();
    assert_eq!(env, ["A", "C", "EXTRA"]);
}

#[test]
fn label_annotate_and_every_patch_type() {
    let (tmp, s) = server();
    apply(&s, &tmp, "svc.yaml", SERVICE);
    assert_eq!(
        s.kubectl_ok(&["label", "svc", "web", "tier=front"])
            .unwrap()
            .trim(),
        "service/web labeled"
    );
    assert_eq!(
        s.kubectl_ok(&["annotate", "svc", "web", "note=hi"])
            .unwrap()
            .trim(),
        "service/web annotated"
    );
    s.kubectl_ok(&["label", "svc", "web", "tier-"]).unwrap();
    s.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"m":"1"}}}"#,
    ])
    .unwrap();
    s.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
    ])
    .unwrap();
    assert_eq!(
        jsonpath(
            &s,
            &["svc", "web"],
            "{.metadata.labels} {.metadata.annotations.note}"
        ),
        r#"{"j":"2","m":"1"} hi"#
    );
    let ports = |s: &Server| {
        jsonpath(
            s,
            &["svc", "web"],
            "{range .spec.ports[*]}{.port}/{.protocol}->{.targetPort} {end}",
        )
    };
    let patch = |p: &str| {
        s.kubectl_ok(&["patch", "svc", "web", "-p", p])
            .unwrap()
            .trim()
            .to_string()
    };

    // Plain strategic merge: by port, the live fields kept.
    assert_eq!(
        patch(r#"{"spec":{"ports":[{"port":443,"targetPort":9443}]}}"#),
        "service/web patched"
    );
    assert_eq!(ports(&s), "80/TCP->8080 443/TCP->9443 53/UDP->53 ");
    // $patch: delete, of a list element.
    patch(r#"{"spec":{"ports":[{"port":53,"$patch":"delete"}]}}"#);
    assert_eq!(ports(&s), "80/TCP->8080 443/TCP->9443 ");
    // $setElementOrder.
    patch(r#"{"spec":{"$setElementOrder/ports":[{"port":443},{"port":80}]}}"#);
    assert_eq!(ports(&s), "443/TCP->9443 80/TCP->8080 ");
    // $patch: replace, of a list.
    patch(r#"{"spec":{"ports":[{"$patch":"replace"},{"port":8000,"targetPort":8001}]}}"#);
    assert_eq!(ports(&s), "8000/TCP->8001 ");
    // $patch: replace, of a map.
    patch(r#"{"spec":{"selector":{"$patch":"replace","role":"api"}}}"#);
    assert_eq!(
        jsonpath(&s, &["svc", "web"], "{.spec.selector}"),
        r#"{"role":"api"}"#
    );
    // $patch: delete, of a map.
    patch(r#"{"metadata":{"annotations":{"$patch":"delete"}}}"#);
    // (Upstream's typed decoding then omits the empty map; k1s keeps it.)
    let annotations = jsonpath(&s, &["svc", "web"], "{.metadata.annotations}");
    assert!(matches!(annotations.as_str(), "" | "{}"), "{annotations}");
    // $patch: merge is refused, as upstream refuses it.
    let err = s
        .kubectl_err(&[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"ports":[{"$patch":"merge"}]}}"#,
        ])
        .unwrap();
    assert!(
        err.contains("merging lists cannot yet be specified in the patch"),
        "{err}"
    );
    let err = s
        .kubectl_err(&[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"$patch":"merge"}}"#,
        ])
        .unwrap();
    assert!(err.contains(r#"unknown patch type: "merge""#), "{err}");

    // Primitive lists with strategy merge (finalizers) are sets; $deleteFromPrimitiveList.
    patch(r#"{"metadata":{"finalizers":["example.com/a","example.com/b"]}}"#);
    patch(r#"{"metadata":{"finalizers":["example.com/b","example.com/c"]}}"#);
    assert_eq!(
        jsonpath(&s, &["svc", "web"], "{.metadata.finalizers}"),
        r#"["example.com/a","example.com/b","example.com/c"]"#
    );
    patch(
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/a","example.com/c"]}}"#,
    );
    assert_eq!(
        jsonpath(&s, &["svc", "web"], "{.metadata.finalizers}"),
        r#"["example.com/b"]"#
    );
    patch(r#"{"metadata":{"finalizers":null}}"#);

    // $retainKeys: a deployment's strategy switched to Recreate drops rollingUpdate.
    apply(&s, &tmp, "deploy.yaml", DEPLOYMENT);
    assert_eq!(
        jsonpath(&s, &["deploy", "web"], "{.spec.strategy.type}"),
        "RollingUpdate"
    );
    s.kubectl_ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#,
    ])
    .unwrap();
    assert_eq!(
        jsonpath(&s, &["deploy", "web"], "{.spec.strategy}"),
        r#"{"type":"Recreate"}"#
    );
    let err = s
        .kubectl_err(&[
            "patch",
            "deploy",
            "web",
            "-p",
            r#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}"#,
        ])
        .unwrap();
    assert!(err.contains("invalid patch format of retainKeys"), "{err}");
}
