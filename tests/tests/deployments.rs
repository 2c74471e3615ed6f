//! Deployments as kubectl users meet them: ReplicaSets named after the template hash, revisions, rolling updates within maxSurge and maxUnavailable, Recreate, `kubectl rollout status|history|undo|pause|resume`, proportional scaling, adoption, the progress deadline and events.
//!
//! FIXME(controllers issue): no ReplicaSet controller runs yet, so these tests play its part:
//! after the Deployment controller creates or scales a ReplicaSet, the test writes that
//! ReplicaSet's status (`kubectl patch --subresource=status`) as if its pods had come up or
//! gone. The full acceptance (`kubectl create deployment web --image=busybox --replicas=3`
//! giving 3 Running pods, and the surge/unavailable invariants checked on a pod watch) is to
//! be added here once the ReplicaSet controller and simulated nodes are merged.

use std::time::{Duration, Instant};

use k1s_tests::Server;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(30);

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

fn apply(s: &Server, dir: &tempfile::TempDir, yaml: &str) {
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, yaml).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
        .unwrap();
}

fn eventually<T>(s: &Server, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- server log ---\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&all).unwrap()).unwrap()
}

fn deployment(s: &Server, name: &str) -> Value {
    get_json(s, &["deployment", name])
}

/// The ReplicaSets whose controller is the Deployment `name`, oldest revision first.
fn replica_sets(s: &Server, name: &str) -> Vec<Value> {
    let d = deployment(s, name);
    let uid = d["metadata"]["uid"].clone();
    let mut list: Vec<Value> = get_json(s, &["replicasets"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["uid"] == uid && r["controller"] == true)
                })
        })
        .cloned()
        .collect();
    list.sort_by_key(revision);
    list
}

fn annotation<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"]["annotations"][key].as_str().unwrap_or("")
}

fn revision(rs: &Value) -> i64 {
    annotation(rs, "deployment.kubernetes.io/revision")
        .parse()
        .unwrap_or(0)
}

fn rs_name(rs: &Value) -> &str {
    rs["metadata"]["name"].as_str().unwrap()
}

fn spec_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap()
}

/// `(name, spec.replicas)` of the Deployment's ReplicaSets, oldest revision first.
fn sizes(s: &Server, name: &str) -> Vec<(String, i64)> {
    replica_sets(s, name)
        .iter()
        .map(|rs| (rs_name(rs).to_string(), spec_replicas(rs)))
        .collect()
}

/// Play the ReplicaSet controller: the ReplicaSet reports `ready` ready and available pods of
/// `replicas`, having observed its current generation.
fn report(s: &Server, rs: &str, replicas: i64, ready: i64) {
    let generation = get_json(s, &["rs", rs])["metadata"]["generation"].clone();
    let patch = json!({"status": {
        "replicas": replicas,
        "fullyLabeledReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": generation,
    }});
    s.kubectl_ok(&[
        "patch",
        "rs",
        rs,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ])
    .unwrap();
}

/// Every ReplicaSet of the Deployment has exactly its wanted pods, all available.
fn settle(s: &Server, name: &str) {
    for rs in replica_sets(s, name) {
        let n = spec_replicas(&rs);
        if rs["status"]["availableReplicas"].as_i64().unwrap_or(0) != n
            || rs["status"]["replicas"].as_i64().unwrap_or(0) != n
            || rs["status"]["observedGeneration"] != rs["metadata"]["generation"]
        {
            report(s, rs_name(&rs), n, n);
        }
    }
}

fn condition(d: &Value, type_: &str) -> (String, String, String) {
    let c = d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null);
    let field = |k: &str| c[k].as_str().unwrap_or("").to_string();
    (field("status"), field("reason"), field("message"))
}

/// The Deployment's status once the controller has caught up with its spec.
fn observed(s: &Server, name: &str) -> Value {
    eventually(s, "the deployment's generation to be observed", || {
        let d = deployment(s, name);
        (d["status"]["observedGeneration"] == d["metadata"]["generation"]).then_some(d)
    })
}

fn status_counts(d: &Value) -> [i64; 5] {
    [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ]
    .map(|k| d["status"][k].as_i64().unwrap_or(0))
}

/// The notes of the deployment controller's events about `name`.
fn event_notes(s: &Server, name: &str) -> Vec<String> {
    get_json(s, &["events.v1.events.k8s.io"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["regarding"]["name"] == name && e["reportingController"] == "deployment-controller"
        })
        .map(|e| {
            format!(
                "{} {}",
                e["reason"].as_str().unwrap_or(""),
                e["note"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Wait until the Deployment's status shows `available` available replicas (so the
/// controller has seen the ReplicaSets' status).
fn available(s: &Server, name: &str, available: i64) {
    eventually(s, "the deployment to see its replicas available", || {
        (deployment(s, name)["status"]["availableReplicas"] == available).then_some(())
    });
}

/// Roll the Deployment to its template, settling the ReplicaSets at each step, and check
/// that no step goes over replicas + maxSurge or under replicas - maxUnavailable available.
fn roll(s: &Server, name: &str, replicas: i64, surge: i64, unavailable: i64) {
    let deadline = Instant::now() + TIMEOUT;
    settle(s, name);
    loop {
        let rss = replica_sets(s, name);
        let total: i64 = rss.iter().map(spec_replicas).sum();
        assert!(
            total <= replicas + surge,
            "over the surge: {:?}",
            sizes(s, name)
        );
        let available: i64 = rss
            .iter()
            .map(|rs| {
                rs["status"]["availableReplicas"]
                    .as_i64()
                    .unwrap_or(0)
                    .min(spec_replicas(rs))
            })
            .sum();
        assert!(
            available >= replicas - unavailable,
            "too few available: {:?}",
            sizes(s, name)
        );
        let d = deployment(s, name);
        let (_, reason, _) = condition(&d, "Progressing");
        if reason == "NewReplicaSetAvailable"
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
        {
            return;
        }
        settle(s, name);
        assert!(
            Instant::now() < deadline,
            "the rollout never finished: {:?}\n{}",
            sizes(s, name),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rolling_update_history_undo_pause_and_scale() {
    let (_tmp, s) = server();
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "deployment",
            "web",
            "--image=busybox:1.36",
            "--replicas=3"
        ])
        .unwrap(),
        "deployment.apps/web created\n"
    );

    // The first ReplicaSet: named after the hash, owned, annotated, at full size at once.
    let first = eventually(&s, "the first replicaset", || {
        replica_sets(&s, "web")
            .into_iter()
            .find(|rs| spec_replicas(rs) == 3)
    });
    let hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    assert_eq!(rs_name(&first), format!("web-{hash}"));
    assert_eq!(
        first["spec"]["selector"]["matchLabels"],
        json!({"app": "web", "pod-template-hash": hash})
    );
    assert_eq!(
        first["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web", "pod-template-hash": hash})
    );
    let owner = &first["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["name"].as_str(),
            &owner["controller"],
            &owner["blockOwnerDeletion"]
        ),
        (Some("Deployment"), Some("web"), &json!(true), &json!(true))
    );
    for (key, value) in [
        ("deployment.kubernetes.io/revision", "1"),
        ("deployment.kubernetes.io/desired-replicas", "3"),
        ("deployment.kubernetes.io/max-replicas", "4"),
    ] {
        assert_eq!(annotation(&first, key), value, "{key}");
    }
    let d = observed(&s, "web");
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "1");
    // The revision annotation comes with the status write: the generation stays.
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(
        condition(&d, "Progressing"),
        (
            "True".into(),
            "NewReplicaSetCreated".into(),
            format!("Created new replica set \"web-{hash}\"")
        )
    );
    assert_eq!(
        condition(&d, "Available"),
        (
            "False".into(),
            "MinimumReplicasUnavailable".into(),
            "Deployment does not have minimum availability.".into()
        )
    );
    assert_eq!(status_counts(&d), [0, 0, 0, 0, 3]);
    let waiting = s
        .kubectl_ok(&["rollout", "status", "deployment/web", "--watch=false"])
        .unwrap();
    assert_eq!(
        waiting,
        "Waiting for deployment \"web\" rollout to finish: 0 out of 3 new replicas have been updated...\n"
    );
    eventually(&s, "the scaling event", || {
        event_notes(&s, "web")
            .contains(&format!(
                "ScalingReplicaSet Scaled up replica set web-{hash} from 0 to 3"
            ))
            .then_some(())
    });

    // Its pods come up: the rollout is complete.
    report(&s, &format!("web-{hash}"), 3, 3);
    let d = eventually(&s, "a complete rollout", || {
        let d = deployment(&s, "web");
        (condition(&d, "Progressing").1 == "NewReplicaSetAvailable").then_some(d)
    });
    assert_eq!(status_counts(&d), [3, 3, 3, 3, 0]);
    assert_eq!(
        condition(&d, "Progressing").2,
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
    assert_eq!(
        condition(&d, "Available"),
        (
            "True".into(),
            "MinimumReplicasAvailable".into(),
            "Deployment has minimum availability.".into()
        )
    );
    assert_eq!(
        s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
            .unwrap(),
        "deployment \"web\" successfully rolled out\n"
    );

    // A new image: revision 2 surges one replica (25% of 3 rounded up) and loses none (25%
    // rounded down), step by step as pods become available.
    s.kubectl_ok(&["set", "image", "deployment/web", "busybox=busybox:1.37"])
        .unwrap();
    let second = eventually(&s, "the second replicaset", || {
        replica_sets(&s, "web")
            .into_iter()
            .find(|rs| revision(rs) == 2)
    });
    let second_name = rs_name(&second).to_string();
    assert_ne!(second_name, format!("web-{hash}"));
    assert_eq!(spec_replicas(&second), 1);
    assert_eq!(
        sizes(&s, "web"),
        [(format!("web-{hash}"), 3), (second_name.clone(), 1)]
    );
    let d = observed(&s, "web");
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "2");
    roll(&s, "web", 3, 1, 0);
    assert_eq!(
        sizes(&s, "web"),
        [(format!("web-{hash}"), 0), (second_name.clone(), 3)]
    );
    for note in [
        format!("ScalingReplicaSet Scaled up replica set {second_name} from 0 to 1"),
        format!("ScalingReplicaSet Scaled down replica set web-{hash} from 3 to 2"),
        format!("ScalingReplicaSet Scaled down replica set web-{hash} from 1 to 0"),
    ] {
        eventually(&s, &note, || {
            event_notes(&s, "web").contains(&note).then_some(())
        });
    }
    let history = s
        .kubectl_ok(&["rollout", "history", "deployment/web"])
        .unwrap();
    assert_eq!(
        history,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );

    // Undo: the first ReplicaSet comes back as revision 3; no new ReplicaSet.
    assert_eq!(
        s.kubectl_ok(&["rollout", "undo", "deployment/web"])
            .unwrap(),
        "deployment.apps/web rolled back\n"
    );
    let back = eventually(&s, "revision 3", || {
        replica_sets(&s, "web")
            .into_iter()
            .find(|rs| revision(rs) == 3)
    });
    assert_eq!(rs_name(&back), format!("web-{hash}"));
    assert_eq!(
        annotation(&back, "deployment.kubernetes.io/revision-history"),
        "1"
    );
    roll(&s, "web", 3, 1, 0);
    assert_eq!(
        sizes(&s, "web"),
        [(second_name.clone(), 0), (format!("web-{hash}"), 3)]
    );
    let d = deployment(&s, "web");
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "3");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );

    // Paused: template changes wait; scaling does not.
    s.kubectl_ok(&["rollout", "pause", "deployment/web"])
        .unwrap();
    s.kubectl_ok(&["set", "image", "deployment/web", "busybox=busybox:1.38"])
        .unwrap();
    let d = observed(&s, "web");
    assert_eq!(
        condition(&d, "Progressing"),
        (
            "Unknown".into(),
            "DeploymentPaused".into(),
            "Deployment is paused".into()
        )
    );
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=5"])
        .unwrap();
    eventually(&s, "the paused deployment to scale", || {
        (sizes(&s, "web") == [(second_name.clone(), 0), (format!("web-{hash}"), 5)]).then_some(())
    });
    let current = get_json(&s, &["rs", &format!("web-{hash}")]);
    assert_eq!(
        annotation(&current, "deployment.kubernetes.io/desired-replicas"),
        "5"
    );
    // 25% of 5 rounds up to 2.
    assert_eq!(
        annotation(&current, "deployment.kubernetes.io/max-replicas"),
        "7"
    );
    observed(&s, "web");
    assert_eq!(
        replica_sets(&s, "web").len(),
        2,
        "a paused deployment rolled"
    );
    settle(&s, "web");
    available(&s, "web", 5);

    // Resumed: revision 4 rolls out.
    s.kubectl_ok(&["rollout", "resume", "deployment/web"])
        .unwrap();
    let fourth = eventually(&s, "revision 4", || {
        replica_sets(&s, "web")
            .into_iter()
            .find(|rs| revision(rs) == 4)
    });
    assert_eq!(
        fourth["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.38"
    );
    roll(&s, "web", 5, 2, 1);
    assert_eq!(
        s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
            .unwrap(),
        "deployment \"web\" successfully rolled out\n"
    );
    assert_eq!(status_counts(&deployment(&s, "web")), [5, 5, 5, 5, 0]);
}

#[test]
fn recreate_scales_old_to_zero_before_new_up() {
    let (tmp, s) = server();
    apply(
        &s,
        &tmp,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: db\nspec:\n  replicas: 2\n  strategy:\n    type: Recreate\n  selector:\n    matchLabels: {app: db}\n  template:\n    metadata:\n      labels: {app: db}\n    spec:\n      containers: [{name: db, image: busybox:1.36}]\n",
    );
    let first = eventually(&s, "the first replicaset", || {
        replica_sets(&s, "db")
            .into_iter()
            .find(|rs| spec_replicas(rs) == 2)
    });
    let first = rs_name(&first).to_string();
    settle(&s, "db");
    eventually(&s, "a complete rollout", || {
        (condition(&deployment(&s, "db"), "Progressing").1 == "NewReplicaSetAvailable")
            .then_some(())
    });

    s.kubectl_ok(&["set", "image", "deployment/db", "db=busybox:1.37"])
        .unwrap();
    eventually(&s, "the old replicaset to scale to zero", || {
        (sizes(&s, "db") == [(first.clone(), 0)]).then_some(())
    });
    // Its pods are still there: no new ReplicaSet yet.
    let d = observed(&s, "db");
    assert_eq!(status_counts(&d), [2, 0, 2, 2, 0]);
    assert_eq!(replica_sets(&s, "db").len(), 1);
    // They are gone: the new one comes up at full size.
    report(&s, &first, 0, 0);
    let second = eventually(&s, "the second replicaset", || {
        replica_sets(&s, "db")
            .into_iter()
            .find(|rs| revision(rs) == 2)
    });
    assert_eq!(spec_replicas(&second), 2);
    assert_eq!(
        sizes(&s, "db"),
        [(first.clone(), 0), (rs_name(&second).to_string(), 2)]
    );
    settle(&s, "db");
    assert_eq!(
        s.kubectl_ok(&["rollout", "status", "deployment/db", "--timeout=30s"])
            .unwrap(),
        "deployment \"db\" successfully rolled out\n"
    );
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let (tmp, s) = server();
    let manifest = |image: &str, replicas: i64| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: {replicas}\n  strategy:\n    rollingUpdate: {{maxSurge: 3, maxUnavailable: 2}}\n  selector:\n    matchLabels: {{app: api}}\n  template:\n    metadata:\n      labels: {{app: api}}\n    spec:\n      containers: [{{name: api, image: \"{image}\"}}]\n"
        )
    };
    apply(&s, &tmp, &manifest("busybox:1.36", 10));
    let first = eventually(&s, "the first replicaset", || {
        replica_sets(&s, "api")
            .into_iter()
            .find(|rs| spec_replicas(rs) == 10)
    });
    let first = rs_name(&first).to_string();
    settle(&s, "api");
    eventually(&s, "a complete rollout", || {
        (condition(&deployment(&s, "api"), "Progressing").1 == "NewReplicaSetAvailable")
            .then_some(())
    });

    // The rollout starts: 2 old replicas go (the unavailability allowed) and 5 new come
    // (up to 13, the surge); the new pods never become available, so it stops there.
    apply(&s, &tmp, &manifest("busybox:1.37", 10));
    let second = eventually(&s, "the rollout's first steps", || {
        let rss = sizes(&s, "api");
        (rss.len() == 2 && rss[0] == (first.clone(), 8) && rss[1].1 == 5).then(|| rss[1].0.clone())
    });
    report(&s, &first, 8, 8);
    available(&s, "api", 8);

    // 10 → 20, 13 (10 + 3) annotated as the old maximum and 23 the new: old 8 → 14 (8 × 23 /
    // 13 rounded), new 5 → 9.
    s.kubectl_ok(&["scale", "deployment/api", "--replicas=20"])
        .unwrap();
    eventually(&s, "proportional scaling", || {
        (sizes(&s, "api") == [(first.clone(), 14), (second.clone(), 9)]).then_some(())
    });
    for rs in replica_sets(&s, "api") {
        assert_eq!(
            annotation(&rs, "deployment.kubernetes.io/desired-replicas"),
            "20"
        );
        assert_eq!(
            annotation(&rs, "deployment.kubernetes.io/max-replicas"),
            "23"
        );
    }
    eventually(&s, "the scaling events", || {
        let notes = event_notes(&s, "api");
        (notes.contains(&format!(
            "ScalingReplicaSet Scaled up replica set {first} from 8 to 14"
        )) && notes.contains(&format!(
            "ScalingReplicaSet Scaled up replica set {second} from 5 to 9"
        )))
        .then_some(())
    });
    roll(&s, "api", 20, 3, 2);
    assert_eq!(sizes(&s, "api"), [(first, 0), (second, 20)]);
}

#[test]
fn orphans_are_adopted_and_released() {
    let (tmp, s) = server();
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=1",
    ])
    .unwrap();
    eventually(&s, "the first replicaset", || {
        (replica_sets(&s, "web").len() == 1).then_some(())
    });
    // An orphan whose labels the Deployment selects: adopted, as an old ReplicaSet.
    apply(
        &s,
        &tmp,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: stray\n  labels: {app: web}\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: web, v: old}\n  template:\n    metadata:\n      labels: {app: web, v: old}\n    spec:\n      containers: [{name: c, image: busybox:old}]\n",
    );
    eventually(&s, "the orphan to be adopted", || {
        let rs = get_json(&s, &["rs", "stray"]);
        let owner = &rs["metadata"]["ownerReferences"][0];
        (owner["kind"] == "Deployment" && owner["name"] == "web" && owner["controller"] == true)
            .then_some(())
    });
    // Its labels change: released.
    s.kubectl_ok(&["label", "rs", "stray", "app=other", "--overwrite"])
        .unwrap();
    eventually(&s, "the replicaset to be released", || {
        let rs = get_json(&s, &["rs", "stray"]);
        rs["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty)
            .then_some(())
    });
    assert_eq!(replica_sets(&s, "web").len(), 1);
}

#[test]
fn revision_history_limit_deletes_old_replica_sets() {
    let (_tmp, s) = server();
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1",
        "--replicas=1",
    ])
    .unwrap();
    s.kubectl_ok(&[
        "patch",
        "deployment/web",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":1}}"#,
    ])
    .unwrap();
    for image in ["busybox:2", "busybox:3"] {
        roll(&s, "web", 1, 1, 0);
        s.kubectl_ok(&[
            "set",
            "image",
            "deployment/web",
            &format!("busybox={image}"),
        ])
        .unwrap();
    }
    roll(&s, "web", 1, 1, 0);
    // Revisions 2 (the one kept) and 3 (current); 1 is deleted.
    eventually(&s, "revision 1 to be cleaned up", || {
        let revisions: Vec<i64> = replica_sets(&s, "web").iter().map(revision).collect();
        (revisions == [2, 3]).then_some(())
    });
}

#[test]
fn progress_deadline_exceeded() {
    let (tmp, s) = server();
    apply(
        &s,
        &tmp,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: slow\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels: {app: slow}\n  template:\n    metadata:\n      labels: {app: slow}\n    spec:\n      containers: [{name: c, image: busybox}]\n",
    );
    let rs = eventually(&s, "the replicaset", || {
        replica_sets(&s, "slow").into_iter().next()
    });
    // No pod ever becomes available: no progress within 2 s.
    let d = eventually(&s, "the deadline to pass", || {
        let d = deployment(&s, "slow");
        (condition(&d, "Progressing").1 == "ProgressDeadlineExceeded").then_some(d)
    });
    assert_eq!(
        condition(&d, "Progressing"),
        (
            "False".into(),
            "ProgressDeadlineExceeded".into(),
            format!("ReplicaSet \"{}\" has timed out progressing.", rs_name(&rs))
        )
    );
    let err = s
        .kubectl_err(&["rollout", "status", "deployment/slow", "--timeout=10s"])
        .unwrap();
    assert_eq!(
        err,
        "error: deployment \"slow\" exceeded its progress deadline\n"
    );
    // Progress after all: complete.
    report(&s, rs_name(&rs), 1, 1);
    eventually(&s, "the rollout to complete", || {
        (condition(&deployment(&s, "slow"), "Progressing").1 == "NewReplicaSetAvailable")
            .then_some(())
    });
}

/// The template as k1s hashes it: nulls, empty lists and empty label, annotation and
/// nodeSelector maps dropped, keys sorted (the controller's own rule, restated so that a
/// change to it fails here too).
fn canonical(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(format!(
            "[{}]",
            items
                .iter()
                .filter_map(canonical)
                .collect::<Vec<_>>()
                .join(",")
        )),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .filter_map(|k| {
                    let value = canonical(&map[k])?;
                    let empty_map = ["labels", "annotations", "nodeSelector"].contains(&k.as_str())
                        && value == "{}";
                    (!empty_map).then(|| format!("{}:{value}", Value::String(k.clone())))
                })
                .collect();
            Some(format!("{{{}}}", fields.join(",")))
        }
        other => Some(other.to_string()),
    }
}

/// `pod-template-hash`: FNV-1a over the canonical template and the collision count, its
/// decimal digits in upstream's alphabet.
fn pod_template_hash(template: &Value, collision_count: Option<u32>) -> String {
    let mut bytes = canonical(template).unwrap().into_bytes();
    if let Some(count) = collision_count {
        bytes.extend(count.to_le_bytes());
        bytes.extend([0; 4]);
    }
    let hash = bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|d| char::from(alphabet[usize::from(d) % alphabet.len()]))
        .collect()
}

#[test]
fn hash_collisions_bump_the_collision_count() {
    let (tmp, s) = server();
    apply(
        &s,
        &tmp,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  paused: true\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: c, image: busybox}]\n",
    );
    // Paused from the start: no ReplicaSet yet. Another object takes the name the template's
    // hash gives.
    let d = observed(&s, "web");
    assert!(replica_sets(&s, "web").is_empty());
    let hash = pod_template_hash(&d["spec"]["template"], None);
    apply(
        &s,
        &tmp,
        &format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-{hash}\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {{app: other}}\n  template:\n    metadata:\n      labels: {{app: other}}\n    spec:\n      containers: [{{name: c, image: busybox}}]\n"
        ),
    );
    s.kubectl_ok(&["rollout", "resume", "deployment/web"])
        .unwrap();
    let rs = eventually(&s, "a replicaset under another name", || {
        replica_sets(&s, "web").into_iter().next()
    });
    assert_eq!(deployment(&s, "web")["status"]["collisionCount"], 1);
    assert_eq!(
        rs_name(&rs),
        format!("web-{}", pod_template_hash(&d["spec"]["template"], Some(1)))
    );
    // The other one is untouched.
    let other = get_json(&s, &["rs", &format!("web-{hash}")]);
    assert!(other["metadata"]["ownerReferences"].is_null());
}
