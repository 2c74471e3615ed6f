//! Namespace deletion as kubectl users meet it: everything in a deleted namespace goes with it, a terminating namespace refuses new content, and its conditions report what remains, as upstream's namespace controller does.

use std::time::{Duration, Instant};

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

/// Poll `check` until it returns `Some`, for up to `timeout`.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The namespace's conditions, one `Type Status Reason: Message` line each.
fn conditions(s: &Server, ns: &str) -> String {
    s.kubectl_ok(&[
        "get",
        "ns",
        ns,
        "-o",
        r#"jsonpath={range .status.conditions[*]}{.type} {.status} {.reason}: {.message}{"\n"}{end}"#,
    ])
    .unwrap()
}

fn jsonpath(s: &Server, args: &[&str], path: &str) -> String {
    let output = format!("jsonpath={path}");
    let mut all = args.to_vec();
    all.extend(["-o", &output]);
    s.kubectl_ok(&all).unwrap()
}

#[test]
fn deleting_a_namespace_deletes_everything_in_it() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();
    assert_eq!(
        jsonpath(&s, &["get", "ns", "team"], "{.spec.finalizers}"),
        r#"["kubernetes"]"#
    );
    // The root CA publisher puts its ConfigMap into every new namespace.
    eventually("kube-root-ca.crt in team", Duration::from_secs(30), || {
        s.kubectl_ok(&["get", "cm", "kube-root-ca.crt", "-n", "team"])
            .ok()
    });
    for name in ["one", "two", "three"] {
        s.kubectl_ok(&[
            "create",
            "configmap",
            name,
            "-n",
            "team",
            "--from-literal=k=v",
        ])
        .unwrap();
    }
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team",
        "--from-literal=password=x",
    ])
    .unwrap();
    s.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "team",
        "--tcp=80:8080",
    ])
    .unwrap();
    let pods = write(
        tmp.path(),
        "pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: team\nspec:\n  containers:\n  - name: c\n    image: busybox\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n  namespace: team\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
    );
    s.kubectl_ok(&["create", "-f", &pods]).unwrap();
    // Something in another namespace with the same names stays.
    s.kubectl_ok(&["create", "configmap", "one", "--from-literal=k=v"])
        .unwrap();
    let listed = s
        .kubectl_ok(&[
            "get",
            "cm,secrets,svc,pods",
            "-n",
            "team",
            "--no-headers",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(listed.lines().count(), 8, "{listed}");

    // kubectl waits for the namespace to go, which happens once its content is gone.
    let started = Instant::now();
    assert_eq!(
        s.kubectl_ok(&["delete", "namespace", "team", "--timeout=60s"])
            .unwrap(),
        "namespace \"team\" deleted\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let err = s.kubectl_err(&["get", "namespace", "team"]).unwrap();
    assert!(
        err.contains(r#"Error from server (NotFound): namespaces "team" not found"#),
        "{err}"
    );
    let left = s
        .kubectl_ok(&["get", "cm,secrets,svc,pods", "-n", "team", "-o", "name"])
        .unwrap();
    assert_eq!(left, "");
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "one", "-n", "default", "-o", "name"])
            .unwrap(),
        "configmap/one\n"
    );

    // The name can be used again, for a new namespace holding only the root CA.
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();
    eventually(
        "a fresh kube-root-ca.crt in team",
        Duration::from_secs(30),
        || {
            let names = s
                .kubectl_ok(&["get", "cm", "-n", "team", "-o", "name"])
                .unwrap();
            (names == "configmap/kube-root-ca.crt\n").then_some(())
        },
    );
}

#[test]
fn a_terminating_namespace_refuses_content_and_reports_what_remains() {
    let (tmp, s) = server();
    // Our own finalizers keep the namespace, and one configmap in it, from going.
    let manifest = write(
        tmp.path(),
        "held.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stuck\n  namespace: held\n  finalizers: [example.com/hold]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n  namespace: held\n",
    );
    s.kubectl_ok(&["create", "-f", &manifest]).unwrap();
    assert_eq!(
        s.kubectl_ok(&["delete", "namespace", "held", "--wait=false"])
            .unwrap(),
        "namespace \"held\" deleted\n"
    );
    assert_eq!(
        jsonpath(&s, &["get", "ns", "held"], "{.status.phase}"),
        "Terminating"
    );

    let late = write(
        tmp.path(),
        "late.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n  namespace: held\n",
    );
    let err = s.kubectl_err(&["create", "-f", &late]).unwrap();
    assert!(
        err.starts_with("Error from server (Forbidden): error when creating ")
            && err.contains(r#"configmaps "late" is forbidden: unable to create new content in namespace held because it is being terminated"#),
        "{err}"
    );

    // The controller deletes what it can and says what remains, and why.
    let expected = "\
NamespaceDeletionDiscoveryFailure False ResourcesDiscovered: All resources successfully discovered
NamespaceDeletionGroupVersionParsingFailure False ParsedGroupVersions: All legacy kube types successfully parsed
NamespaceDeletionContentFailure False ContentDeleted: All content successfully deleted, may be waiting on finalization
NamespaceContentRemaining True SomeResourcesRemain: Some resources are remaining: configmaps. has 1 resource instances
NamespaceFinalizersRemaining True SomeFinalizerRemain: Some finalizers are remaining: example.com/hold in 1 resource instances
";
    eventually("the content conditions", Duration::from_secs(30), || {
        (conditions(&s, "held") == expected).then_some(())
    });
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "-n", "held", "-o", "name"])
            .unwrap(),
        "configmap/stuck\n"
    );
    assert_ne!(
        jsonpath(
            &s,
            &["get", "cm", "stuck", "-n", "held"],
            "{.metadata.deletionTimestamp}"
        ),
        ""
    );
    assert_eq!(
        jsonpath(&s, &["get", "ns", "held"], "{.spec.finalizers}"),
        r#"["kubernetes"]"#
    );

    // Once the configmap's finalizer goes, so does the controller's.
    s.kubectl_ok(&[
        "patch",
        "cm",
        "stuck",
        "-n",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .unwrap();
    eventually(
        "the kubernetes finalizer to go",
        Duration::from_secs(60),
        || {
            // An emptied list is left out (`spec: {}`), as upstream stores it.
            let finalizers = jsonpath(&s, &["get", "ns", "held"], "{.spec.finalizers}");
            finalizers.is_empty().then_some(())
        },
    );
    assert_eq!(
        conditions(&s, "held"),
        "\
NamespaceDeletionDiscoveryFailure False ResourcesDiscovered: All resources successfully discovered
NamespaceDeletionGroupVersionParsingFailure False ParsedGroupVersions: All legacy kube types successfully parsed
NamespaceDeletionContentFailure False ContentDeleted: All content successfully deleted, may be waiting on finalization
NamespaceContentRemaining False ContentRemoved: All content successfully removed
NamespaceFinalizersRemaining False ContentRemoved: All content successfully removed
"
    );
    // Our metadata finalizer still holds it, terminating.
    assert_eq!(
        jsonpath(&s, &["get", "ns", "held"], "{.status.phase}"),
        "Terminating"
    );
    s.kubectl_ok(&[
        "patch",
        "ns",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .unwrap();
    s.kubectl_ok(&["wait", "--for=delete", "namespace/held", "--timeout=30s"])
        .unwrap();
}

#[test]
fn pods_on_a_node_hold_their_namespace_until_the_node_lets_go() {
    let (tmp, s) = server();
    let manifest = write(
        tmp.path(),
        "bound.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: busy\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: running\n  namespace: busy\nspec:\n  nodeName: node-a\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: busybox\n",
    );
    s.kubectl_ok(&["create", "-f", &manifest]).unwrap();
    s.kubectl_ok(&["delete", "namespace", "busy", "--wait=false"])
        .unwrap();

    // Within its grace period the pod is expected to go: content remains, no failure yet.
    eventually(
        "the remaining pod to be reported",
        Duration::from_secs(30),
        || {
            conditions(&s, "busy")
            .contains("NamespaceContentRemaining True SomeResourcesRemain: Some resources are remaining: pods. has 1 resource instances\n")
            .then_some(())
        },
    );
    assert_ne!(
        jsonpath(
            &s,
            &["get", "pod", "running", "-n", "busy"],
            "{.metadata.deletionTimestamp}"
        ),
        ""
    );
    // Past it, a pod that is still there (its node never confirmed) is a content failure,
    // retried with backoff, as upstream reports it.
    eventually("the content failure", Duration::from_secs(30), || {
        conditions(&s, "busy")
            .contains("NamespaceDeletionContentFailure True ContentDeletionFailed: Failed to delete all resource types, 1 remaining: unexpected items still remain in namespace: busy for gvr: /v1, Resource=pods\n")
            .then_some(())
    });

    // The node lets go (as its agent does once the containers stop): the namespace goes.
    s.kubectl_ok(&[
        "delete",
        "pod",
        "running",
        "-n",
        "busy",
        "--grace-period=0",
        "--force",
    ])
    .unwrap();
    s.kubectl_ok(&["wait", "--for=delete", "namespace/busy", "--timeout=60s"])
        .unwrap();
}
