//! List consistency as upstream defines it, served through the watch cache: read-your-writes, resourceVersion NotOlderThan and Exact, continue pages at the first page's revision, 504 for a resourceVersion from the future, and the list-option validation errors.

use k1s_tests::Server;
use serde_json::Value;

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

fn raw(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.kubectl_ok(&["get", "--raw", path]).unwrap()).unwrap()
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn reads_see_every_acknowledged_write() {
    let (_tmp, s) = server();
    for i in 0..30 {
        let name = format!("cm-{i}");
        s.kubectl_ok(&["create", "configmap", &name, "--from-literal=i=1"])
            .unwrap();
        let list = raw(&s, "/api/v1/namespaces/default/configmaps");
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&name.as_str()),
            "{name} missing from {names:?}"
        );
        let selected = raw(
            &s,
            &format!("/api/v1/configmaps?fieldSelector=metadata.name%3D{name}"),
        );
        assert_eq!(selected["items"].as_array().unwrap().len(), 1);
    }
    // Pages: the first from the cache, the rest from the store at the same revision.
    let chunked = s
        .kubectl_ok(&["get", "configmaps", "--chunk-size=7", "-o", "name"])
        .unwrap();
    assert_eq!(chunked.lines().filter(|l| l.contains("cm-")).count(), 30);
}

#[test]
fn resource_versions_select_old_or_fresh_state() {
    let (_tmp, s) = server();
    s.kubectl_ok(&["create", "configmap", "a", "--from-literal=v=old"])
        .unwrap();
    let old = raw(&s, "/api/v1/namespaces/default/configmaps/a");
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "a",
        "--type=merge",
        "-p",
        r#"{"data":{"v":"new"}}"#,
    ])
    .unwrap();
    let old_rv = rv(&old);

    let exact = raw(
        &s,
        &format!(
            "/api/v1/namespaces/default/configmaps?resourceVersion={old_rv}&resourceVersionMatch=Exact"
        ),
    );
    assert_eq!(exact["items"][0]["data"]["v"], "old");
    assert_eq!(rv(&exact), old_rv);

    let not_older = raw(
        &s,
        &format!("/api/v1/namespaces/default/configmaps?resourceVersion={old_rv}"),
    );
    assert_eq!(not_older["items"][0]["data"]["v"], "new");
    assert!(rv(&not_older) > old_rv);

    let any = raw(
        &s,
        "/api/v1/namespaces/default/configmaps?resourceVersion=0",
    );
    assert_eq!(any["items"][0]["data"]["v"], "new");

    let err = s
        .kubectl_err(&["get", "--raw", "/api/v1/configmaps?resourceVersion=999999"])
        .unwrap();
    assert!(
        err.contains("Too large resource version: 999999, current: "),
        "{err}"
    );
    let err = s
        .kubectl_err(&[
            "get",
            "--raw",
            "/api/v1/configmaps?resourceVersionMatch=Exact",
        ])
        .unwrap();
    assert!(
        err.contains("resourceVersionMatch is forbidden unless resourceVersion is provided"),
        "{err}"
    );
    let err = s
        .kubectl_err(&[
            "get",
            "--raw",
            "/api/v1/configmaps?resourceVersion=0&resourceVersionMatch=Exact",
        ])
        .unwrap();
    assert!(
        err.contains(r#"resourceVersionMatch "exact" is forbidden for resourceVersion "0""#),
        "{err}"
    );
}
