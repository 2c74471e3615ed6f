//! The garbage collector as kubectl users meet it: deleting an owner takes its dependents along (background), leaves them without the owner reference (`--cascade=orphan`), or stays until they are gone (`--cascade=foreground`); references to owners that do not exist (wrong uid, another namespace) are collected with upstream's warning, custom resources included.

use std::time::{Duration, Instant};

use k1s_tests::Server;
use serde_json::{Value, json};

/// How long the collector may take to react on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
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

/// `kubectl apply` of one object given as JSON.
fn apply(s: &Server, dir: &std::path::Path, object: &Value) {
    let path = dir.join(format!(
        "{}-{}.json",
        object["kind"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap()
    ));
    std::fs::write(&path, object.to_string()).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
        .unwrap();
}

/// The object as JSON, or `None` once it is gone.
fn get(s: &Server, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let out = s.kubectl().args(&all).output().unwrap();
    if out.status.success() {
        return Some(serde_json::from_slice(&out.stdout).unwrap());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NotFound"), "kubectl {all:?}: {stderr}");
    None
}

fn uid(s: &Server, args: &[&str]) -> String {
    get(s, args).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn gone(s: &Server, args: &[&str]) {
    eventually(&format!("{args:?} to be gone"), TIMEOUT, || {
        get(s, args).is_none().then_some(())
    });
}

/// A reference to the ConfigMap `name` with `uid`.
fn owned_by(name: &str, uid: &str, block: bool) -> Value {
    let mut r = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid});
    if block {
        r["blockOwnerDeletion"] = json!(true);
    }
    json!([r])
}

fn configmap(ns: &str, name: &str, owners: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owners},
        "data": {"k": "v"}})
}

fn secret(ns: &str, name: &str, owners: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owners},
        "stringData": {"k": "v"}})
}

/// The OwnerRefInvalidNamespace events in `ns`, as `name: note` lines.
fn invalid_namespace_events(s: &Server, ns: &str) -> Vec<String> {
    let events = get(s, &["events.events.k8s.io", "-n", ns]).unwrap();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "OwnerRefInvalidNamespace")
        .map(|e| {
            assert_eq!(e["type"], "Warning");
            assert_eq!(e["reportingController"], "garbage-collector-controller");
            format!(
                "{}/{}: {}",
                e["regarding"]["kind"].as_str().unwrap_or(""),
                e["regarding"]["name"].as_str().unwrap_or(""),
                e["note"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn deleting_an_owner_deletes_its_dependents_in_the_background() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "configmap", "owner", "--from-literal=k=v"])
        .unwrap();
    s.kubectl_ok(&["create", "configmap", "bystander", "--from-literal=k=v"])
        .unwrap();
    let owner = uid(&s, &["configmap", "owner"]);
    apply(
        &s,
        tmp.path(),
        &configmap("default", "dep-cm", owned_by("owner", &owner, false)),
    );
    apply(
        &s,
        tmp.path(),
        &secret("default", "dep-secret", owned_by("owner", &owner, true)),
    );
    s.kubectl_ok(&["delete", "configmap", "owner"]).unwrap();
    gone(&s, &["configmap", "dep-cm"]);
    gone(&s, &["secret", "dep-secret"]);
    assert!(get(&s, &["configmap", "bystander"]).is_some());
}

#[test]
fn cascade_orphan_leaves_dependents_without_the_owner_reference() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "configmap", "owner", "--from-literal=k=v"])
        .unwrap();
    s.kubectl_ok(&["create", "configmap", "other-owner", "--from-literal=k=v"])
        .unwrap();
    let owner = uid(&s, &["configmap", "owner"]);
    let other = uid(&s, &["configmap", "other-owner"]);
    apply(
        &s,
        tmp.path(),
        &configmap("default", "dep-cm", owned_by("owner", &owner, true)),
    );
    // Two owners: only the deleted one's reference goes.
    let mut both = owned_by("owner", &owner, false);
    both.as_array_mut()
        .unwrap()
        .push(owned_by("other-owner", &other, false)[0].clone());
    apply(&s, tmp.path(), &secret("default", "dep-secret", both));
    s.kubectl_ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=orphan",
        "--wait=false",
    ])
    .unwrap();
    gone(&s, &["configmap", "owner"]);
    let dep = get(&s, &["configmap", "dep-cm"]).expect("orphaned dependent kept");
    assert_eq!(dep["metadata"].get("ownerReferences"), None, "{dep}");
    let secret = get(&s, &["secret", "dep-secret"]).expect("orphaned dependent kept");
    let refs: Vec<&str> = secret["metadata"]["ownerReferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["other-owner"]);
}

#[test]
fn cascade_foreground_keeps_the_owner_until_blocking_dependents_are_gone() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "configmap", "owner", "--from-literal=k=v"])
        .unwrap();
    let owner = uid(&s, &["configmap", "owner"]);
    // The blocking dependent is held by a finalizer of its own, so it outlives its deletion.
    let mut held = configmap("default", "held", owned_by("owner", &owner, true));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    apply(&s, tmp.path(), &held);
    apply(
        &s,
        tmp.path(),
        &configmap("default", "plain", owned_by("owner", &owner, false)),
    );
    s.kubectl_ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ])
    .unwrap();
    gone(&s, &["configmap", "plain"]);
    eventually("the blocking dependent to be deleted", TIMEOUT, || {
        get(&s, &["configmap", "held"]).filter(|h| h["metadata"]["deletionTimestamp"].is_string())
    });
    let kept = get(&s, &["configmap", "owner"]).expect("owner kept while held exists");
    assert!(kept["metadata"]["deletionTimestamp"].is_string(), "{kept}");
    assert_eq!(
        kept["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    // Still there a moment later: it waits for `held`.
    std::thread::sleep(Duration::from_secs(1));
    assert!(get(&s, &["configmap", "owner"]).is_some());

    s.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .unwrap();
    gone(&s, &["configmap", "held"]);
    gone(&s, &["configmap", "owner"]);
}

#[test]
fn references_to_absent_owners_are_collected() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "namespace", "other"]).unwrap();
    s.kubectl_ok(&["create", "configmap", "owner", "--from-literal=k=v"])
        .unwrap();
    let owner = uid(&s, &["configmap", "owner"]);
    // The right name, another uid: that owner does not exist.
    apply(
        &s,
        tmp.path(),
        &configmap(
            "default",
            "wrong-uid",
            owned_by("owner", "6d1f3a55-0000-4000-8000-000000000000", false),
        ),
    );
    // An owner reference has no namespace: from `other`, the owner is looked for in `other`.
    apply(
        &s,
        tmp.path(),
        &configmap("other", "cross", owned_by("owner", &owner, false)),
    );
    // A cluster-scoped object cannot be owned by a namespaced one: left alone.
    apply(
        &s,
        tmp.path(),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "gc-test", "ownerReferences": owned_by("owner", &owner, false)},
            "rules": []}),
    );
    // Nor when that owner does not exist at all.
    apply(
        &s,
        tmp.path(),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "gc-test-ghost",
                "ownerReferences": owned_by("ghost", "6d1f3a55-0000-4000-8000-000000000001", false)},
            "rules": []}),
    );
    gone(&s, &["configmap", "wrong-uid"]);
    gone(&s, &["configmap", "cross", "-n", "other"]);
    assert!(get(&s, &["configmap", "owner"]).is_some());

    let events = eventually("the cross-namespace warning", TIMEOUT, || {
        let e = invalid_namespace_events(&s, "other");
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(
        events,
        [format!(
            r#"ConfigMap/cross: ownerRef [v1/ConfigMap, namespace: other, name: owner, uid: {owner}] does not exist in namespace "other""#
        )]
    );
    let events = eventually("the cluster-scoped warning", TIMEOUT, || {
        let e = invalid_namespace_events(&s, "default");
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(
        events,
        [format!(
            r#"ClusterRole/gc-test: ownerRef [v1/ConfigMap, namespace: , name: owner, uid: {owner}] does not exist in namespace """#
        )]
    );
    assert!(get(&s, &["clusterrole", "gc-test"]).is_some());
    assert!(get(&s, &["clusterrole", "gc-test-ghost"]).is_some());
}

#[test]
fn custom_resources_are_owned_and_owners() {
    let (tmp, s) = server();
    apply(
        &s,
        tmp.path(),
        &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
    );
    s.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=60s",
    ])
    .unwrap();
    s.kubectl_ok(&["create", "configmap", "owner", "--from-literal=k=v"])
        .unwrap();
    let owner = uid(&s, &["configmap", "owner"]);
    let widget = |name: &str, owners: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "default", "ownerReferences": owners},
            "spec": {"size": 1}})
    };
    apply(
        &s,
        tmp.path(),
        &widget("owned", owned_by("owner", &owner, true)),
    );
    apply(&s, tmp.path(), &widget("parent", json!([])));
    let parent = uid(&s, &["widget", "parent"]);
    apply(
        &s,
        tmp.path(),
        &configmap(
            "default",
            "child",
            json!([{"apiVersion": "example.com/v1", "kind": "Widget", "name": "parent", "uid": parent}]),
        ),
    );

    s.kubectl_ok(&["delete", "configmap", "owner"]).unwrap();
    gone(&s, &["widget", "owned"]);
    s.kubectl_ok(&[
        "delete",
        "widget",
        "parent",
        "--cascade=orphan",
        "--wait=false",
    ])
    .unwrap();
    gone(&s, &["widget", "parent"]);
    let child = get(&s, &["configmap", "child"]).expect("orphaned child kept");
    assert_eq!(child["metadata"].get("ownerReferences"), None, "{child}");

    // And a custom resource owning a ConfigMap, deleted in the background.
    apply(&s, tmp.path(), &widget("parent2", json!([])));
    let parent2 = uid(&s, &["widget", "parent2"]);
    apply(
        &s,
        tmp.path(),
        &configmap(
            "default",
            "child2",
            json!([{"apiVersion": "example.com/v1", "kind": "Widget", "name": "parent2", "uid": parent2}]),
        ),
    );
    s.kubectl_ok(&["delete", "widget", "parent2"]).unwrap();
    gone(&s, &["configmap", "child2"]);
}
