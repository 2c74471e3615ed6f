//! The ReplicaSet controller through kubectl: pods from the template with a controller reference, scaling both ways, adopting a matching orphan and releasing a relabelled pod, ReplicationControllers alike, and slow-start batches against a pod quota counted from the audit log.

use std::path::Path;
use std::time::{Duration, Instant};

use k1s_tests::Server;
use serde_json::Value;

fn server(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["--ephemeral"];
    args.extend_from_slice(extra);
    let server = Server::start(tmp.path().join("data"), &args).unwrap();
    (tmp, server)
}

fn apply(s: &Server, dir: &Path, name: &str, yaml: &str) {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
        .unwrap();
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pods(s: &Server, ns: &str, selector: &str) -> Vec<Value> {
    let out = s
        .kubectl_ok(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"])
        .unwrap();
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn replica_set(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
    )
}

#[test]
fn replica_sets_create_scale_adopt_and_release() {
    let (tmp, s) = server(&[]);
    let dir = tmp.path();
    apply(&s, dir, "rs.yaml", &replica_set("web", 3));
    let uid = s
        .kubectl_ok(&["get", "rs", "web", "-o", "jsonpath={.metadata.uid}"])
        .unwrap();
    let three = eventually("3 pods", || {
        let p = pods(&s, "default", "app=web");
        (p.len() == 3).then_some(p)
    });
    for p in &three {
        let r = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                r["kind"].as_str(),
                r["name"].as_str(),
                r["uid"].as_str(),
                r["controller"].as_bool()
            ),
            (
                Some("ReplicaSet"),
                Some("web"),
                Some(uid.as_str()),
                Some(true)
            )
        );
        assert!(p["metadata"]["name"].as_str().unwrap().starts_with("web-"));
    }
    eventually("status.replicas 3", || {
        let out = s
            .kubectl_ok(&["get", "rs", "web", "-o", "jsonpath={.status.replicas} {.status.fullyLabeledReplicas} {.status.observedGeneration}"])
            .unwrap();
        (out == "3 3 1").then_some(())
    });
    let events = s
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=web,reason=SuccessfulCreate",
            "-o",
            "name",
        ])
        .unwrap();
    assert!(!events.is_empty());

    s.kubectl_ok(&["scale", "rs", "web", "--replicas=1"])
        .unwrap();
    eventually("1 pod", || {
        (pods(&s, "default", "app=web").len() == 1).then_some(())
    });
    s.kubectl_ok(&["scale", "rs", "web", "--replicas=2"])
        .unwrap();
    eventually("2 pods", || {
        (pods(&s, "default", "app=web").len() == 2).then_some(())
    });

    // A pod made by hand with matching labels is adopted (and the surplus removed).
    apply(
        &s,
        dir,
        "orphan.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: orphan, labels: {app: web}}\nspec: {containers: [{name: c, image: busybox}]}\n",
    );
    eventually("the orphan's adoption", || {
        let out = s
            .kubectl_ok(&[
                "get",
                "pod",
                "orphan",
                "--ignore-not-found",
                "-o",
                "jsonpath={.metadata.ownerReferences[0].uid}",
            ])
            .unwrap();
        // Adopted, or adopted and then chosen as the surplus to delete.
        (out == uid || out.is_empty()).then_some(())
    });
    eventually("2 pods again", || {
        (pods(&s, "default", "app=web").len() == 2).then_some(())
    });

    // Relabelled, a pod is released and replaced.
    let victim = pods(&s, "default", "app=web")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    s.kubectl_ok(&["label", "pod", &victim, "app=other", "--overwrite"])
        .unwrap();
    eventually("the release", || {
        let out = s
            .kubectl_ok(&[
                "get",
                "pod",
                &victim,
                "-o",
                "jsonpath={.metadata.ownerReferences}",
            ])
            .unwrap();
        (out.is_empty() || out == "[]").then_some(())
    });
    eventually("a replacement", || {
        (pods(&s, "default", "app=web").len() == 2).then_some(())
    });

    // ReplicationControllers are managed alike.
    apply(
        &s,
        dir,
        "rc.yaml",
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: legacy}\nspec:\n  replicas: 2\n  selector: {app: legacy}\n  template:\n    metadata: {labels: {app: legacy}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    eventually("2 legacy pods", || {
        (pods(&s, "default", "app=legacy").len() == 2).then_some(())
    });
    let owner =
        pods(&s, "default", "app=legacy")[0]["metadata"]["ownerReferences"][0]["kind"].clone();
    assert_eq!(owner, "ReplicationController");
}

/// (time, status code) of each pod create the ReplicaSet controller sent, from the audit log.
fn controller_creates(log: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "pods"
                && e["objectRef"]["subresource"].is_null()
                && e["user"]["username"]
                    == "system:serviceaccount:kube-system:replicaset-controller"
        })
        .map(|e| {
            (
                e["requestReceivedTimestamp"].as_str().unwrap().to_string(),
                e["responseStatus"]["code"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn micros(t: &str) -> i128 {
    let parsed =
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    parsed.unix_timestamp_nanos() / 1000
}

#[test]
fn slow_start_batches_against_a_quota() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    let s = Server::start(
        tmp.path().join("data"),
        &["--ephemeral", "--audit-log-path", log.to_str().unwrap()],
    )
    .unwrap();
    let dir = tmp.path();
    s.kubectl_ok(&["create", "namespace", "q"]).unwrap();
    s.kubectl_ok(&["create", "quota", "pods", "--hard=pods=10", "-n", "q"])
        .unwrap();
    eventually("the quota's status", || {
        let out = s
            .kubectl_ok(&[
                "get",
                "quota",
                "pods",
                "-n",
                "q",
                "-o",
                "jsonpath={.status.hard.pods}",
            ])
            .unwrap();
        (out == "10").then_some(())
    });
    let path = dir.join("big.yaml");
    std::fs::write(&path, replica_set("big", 100)).unwrap();
    s.kubectl_ok(&["apply", "-n", "q", "-f", path.to_str().unwrap()])
        .unwrap();
    // Let a few backoff rounds pass.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(pods(&s, "q", "app=big").len(), 10);
    let creates = controller_creates(&log);
    assert!(creates.len() > 20, "{creates:?}");
    // The first sync: batches of 1, 2, 4 and 8; the last batch stops the sync.
    let first: Vec<u64> = creates[..15].iter().map(|(_, c)| *c).collect();
    assert_eq!(first.iter().filter(|c| **c == 201).count(), 10, "{first:?}");
    assert_eq!(first.iter().filter(|c| **c == 403).count(), 5, "{first:?}");
    // Later syncs: one create each, rejected, spaced by a growing backoff.
    let later = &creates[15..];
    assert!(later.iter().all(|(_, c)| *c == 403), "{later:?}");
    let gaps: Vec<i128> = later
        .windows(2)
        .map(|w| micros(&w[1].0) - micros(&w[0].0))
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= 2_000),
        "two creates in one sync: {gaps:?}"
    );
    assert!(*gaps.last().unwrap() >= 300_000, "no backoff: {gaps:?}");

    let condition = s
        .kubectl_ok(&[
            "get",
            "rs",
            "big",
            "-n",
            "q",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"ReplicaFailure\")].reason}",
        ])
        .unwrap();
    assert_eq!(condition, "FailedCreate");
    let message = s
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            "q",
            "--field-selector=involvedObject.name=big,reason=FailedCreate",
            "-o",
            "jsonpath={.items[0].message}",
        ])
        .unwrap();
    assert!(
        message.starts_with("Error creating: pods \"big-") && message.contains("is forbidden: exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10"),
        "{message}"
    );
}
