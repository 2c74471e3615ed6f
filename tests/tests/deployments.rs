//! Deployments as kubectl users meet them, on simulated nodes whose pods really start and stop: ReplicaSets named after the template hash, revisions, rolling updates that stay within maxSurge and maxUnavailable at every pod and ReplicaSet event, Recreate, `kubectl rollout status|history|undo|pause|resume|restart`, scaling (proportional mid-rollout), adoption, the progress deadline, cascading deletion, namespace deletion and a server restart mid-rollout.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k1s_tests::Server;
use serde_json::{Value, json};

/// Bound of every wait: generous, since the machine may be loaded.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The simulated cluster every test but the pod-less ones runs on: two nodes whose pods are
/// Ready 200 ms after binding and gone 200 ms after a graceful delete.
const NODES: [&str; 6] = [
    "--simulated-nodes",
    "2",
    "--simulated-pod-start-delay",
    "200ms",
    "--simulated-pod-delete-delay",
    "200ms",
];

/// An ephemeral server with `args`.
fn server_with(args: &[&str]) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let mut all = vec!["--ephemeral"];
    all.extend_from_slice(args);
    let server = Server::start(tmp.path().join("data"), &all).unwrap();
    (tmp, server)
}

/// An ephemeral server with simulated nodes.
fn server() -> (tempfile::TempDir, Server) {
    server_with(&NODES)
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

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn deployment(s: &Server, name: &str) -> Value {
    get_json(s, &["deployment", name])
}

fn owned_by(object: &Value, uid: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| &r["uid"] == uid && r["controller"] == true)
        })
}

/// The ReplicaSets whose controller is the Deployment `name`, oldest revision first.
fn replica_sets(s: &Server, name: &str) -> Vec<Value> {
    let uid = deployment(s, name)["metadata"]["uid"].clone();
    let mut list: Vec<Value> = items(&get_json(s, &["replicasets"]))
        .into_iter()
        .filter(|rs| owned_by(rs, &uid))
        .collect();
    list.sort_by_key(revision);
    list
}

fn annotation<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"]["annotations"][key].as_str().unwrap_or("")
}

fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"]["labels"][key].as_str().unwrap_or("")
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn revision(rs: &Value) -> i64 {
    annotation(rs, "deployment.kubernetes.io/revision")
        .parse()
        .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(0)
}

/// `(name, spec.replicas)` of the Deployment's ReplicaSets, oldest revision first.
fn sizes(s: &Server, name_: &str) -> Vec<(String, i64)> {
    replica_sets(s, name_)
        .iter()
        .map(|rs| (name(rs).to_string(), spec_replicas(rs)))
        .collect()
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

/// `reason note` of the events `controller` reported about `name`.
fn event_notes(s: &Server, controller: &str, name: &str) -> Vec<String> {
    items(&get_json(s, &["events.v1.events.k8s.io"]))
        .iter()
        .filter(|e| e["regarding"]["name"] == name && e["reportingController"] == controller)
        .map(|e| {
            format!(
                "{} {}",
                e["reason"].as_str().unwrap_or(""),
                e["note"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn pods(s: &Server, selector: &str) -> Vec<Value> {
    items(&get_json(s, &["pods", "-l", selector]))
}

fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Wait for the Deployment `name` (its pods labelled `app=<name>`) to be rolled out:
/// `kubectl rollout status` returns, and exactly `replicas` pods are left, all Running and
/// Ready, all of the newest ReplicaSet, none terminating. Returns that ReplicaSet.
fn rolled_out(s: &Server, name_: &str, replicas: usize) -> Value {
    let status = s
        .kubectl_ok(&[
            "rollout",
            "status",
            &format!("deployment/{name_}"),
            "--timeout=60s",
        ])
        .unwrap();
    assert!(
        status.ends_with(&format!("deployment \"{name_}\" successfully rolled out\n")),
        "{status}"
    );
    eventually(s, "only the new replicaset's pods, all ready", || {
        let d = deployment(s, name_);
        if d["status"]["observedGeneration"] != d["metadata"]["generation"] {
            return None;
        }
        let newest = replica_sets(s, name_).into_iter().max_by_key(revision)?;
        let hash = label(&newest, "pod-template-hash").to_string();
        let pods = pods(s, &format!("app={name_}"));
        let done = pods.len() == replicas
            && pods.iter().all(|p| {
                !terminating(p)
                    && pod_ready(p)
                    && label(p, "pod-template-hash") == hash
                    && owned_by(p, &newest["metadata"]["uid"])
            })
            && status_counts(&d)
                == [
                    replicas as i64,
                    replicas as i64,
                    replicas as i64,
                    replicas as i64,
                    0,
                ];
        done.then_some(newest)
    })
}

/// `kubectl get <kind> -l <selector> -w -o json --output-watch-events` running in a thread
/// that records every event.
struct Watch {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    reader: Option<JoinHandle<()>>,
}

impl Watch {
    /// Start watching, and wait until the initial list (`initial` objects) has arrived.
    fn start(s: &Server, kind: &str, selector: &str, initial: usize) -> Watch {
        let mut child = s
            .kubectl()
            .args(["get", kind, "-l", selector, "-w", "-o", "json"])
            .arg("--output-watch-events")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let reader = std::thread::spawn(move || {
            let stream = serde_json::Deserializer::from_reader(BufReader::new(stdout));
            for event in stream.into_iter::<Value>() {
                let Ok(event) = event else { break };
                sink.lock().unwrap().push(event);
            }
        });
        let watch = Watch {
            child,
            events,
            reader: Some(reader),
        };
        eventually(s, &format!("the initial list of {kind}"), || {
            (watch.state().len() >= initial).then_some(())
        });
        watch
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// The objects as the events so far leave them, by name.
    fn state(&self) -> BTreeMap<String, Value> {
        let mut state = BTreeMap::new();
        replay(&self.events(), |_, _| {}, &mut state);
        state
    }

    /// Stop once the watch has seen `done` (what the test has seen by polling), and return
    /// every event.
    fn stop(mut self, s: &Server, done: impl Fn(&BTreeMap<String, Value>) -> bool) -> Vec<Value> {
        eventually(s, "the watch to catch up", || {
            done(&self.state()).then_some(())
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.events()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Apply `events` to `state` one by one, calling `check` with each event's index and the
/// objects it leaves.
fn replay(
    events: &[Value],
    mut check: impl FnMut(usize, &BTreeMap<String, Value>),
    state: &mut BTreeMap<String, Value>,
) {
    for (i, event) in events.iter().enumerate() {
        let object = &event["object"];
        let key = name(object).to_string();
        if event["type"] == "DELETED" {
            state.remove(&key);
        } else {
            state.insert(key, object.clone());
        }
        check(i, state);
    }
}

/// The pods for a failure message: names, marked `[ready]` and `[terminating]`.
fn describe(pods: &BTreeMap<String, Value>) -> String {
    pods.values()
        .map(|p| {
            format!(
                "{}{}{}",
                name(p),
                if pod_ready(p) { "[ready]" } else { "" },
                if terminating(p) { "[terminating]" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Watches of a Deployment's pods and ReplicaSets during a rollout.
struct Rollout {
    pods: Watch,
    replica_sets: Watch,
}

impl Rollout {
    /// Watch the pods and ReplicaSets of the Deployment `name` (labelled `app=<name>`), which
    /// has `replicas` pods now.
    fn watch(s: &Server, name: &str, replicas: usize) -> Rollout {
        let selector = format!("app={name}");
        Rollout {
            pods: Watch::start(s, "pods", &selector, replicas),
            replica_sets: Watch::start(s, "replicasets", &selector, 1),
        }
    }

    /// Once the rollout is over (see [`rolled_out`]) check that at every event the pods not
    /// being deleted were at most `replicas + surge`, at least `replicas - unavailable` of them
    /// Ready, and that the ReplicaSets' `spec.replicas` never summed above `replicas + surge`.
    fn check(self, s: &Server, new: &Value, replicas: usize, surge: usize, unavailable: usize) {
        let hash = label(new, "pod-template-hash").to_string();
        let events = self.pods.stop(s, |pods| {
            pods.len() == replicas
                && pods
                    .values()
                    .all(|p| label(p, "pod-template-hash") == hash && pod_ready(p))
        });
        let mut primed = false;
        replay(
            &events,
            |i, pods| {
                let live: Vec<&Value> = pods.values().filter(|p| !terminating(p)).collect();
                let ready = live.iter().filter(|p| pod_ready(p)).count();
                // The initial list is complete once all the pods from before are there.
                primed |= ready >= replicas;
                if !primed {
                    return;
                }
                assert!(
                    live.len() <= replicas + surge,
                    "pod event {i}: {} pods over {replicas} + {surge}: {}",
                    live.len(),
                    describe(pods)
                );
                assert!(
                    ready + unavailable >= replicas,
                    "pod event {i}: {ready} ready pods under {replicas} - {unavailable}: {}",
                    describe(pods)
                );
            },
            &mut BTreeMap::new(),
        );
        assert!(primed, "the pod watch never saw the pods: {events:?}");
        let new_name = name(new).to_string();
        let events = self.replica_sets.stop(s, |rss| {
            rss.values().all(|rs| {
                spec_replicas(rs)
                    == if name(rs) == new_name {
                        replicas as i64
                    } else {
                        0
                    }
            })
        });
        replay(
            &events,
            |i, rss| {
                let total: i64 = rss.values().map(spec_replicas).sum();
                let all: Vec<(&str, i64)> = rss
                    .values()
                    .map(|rs| (name(rs), spec_replicas(rs)))
                    .collect();
                assert!(
                    total <= (replicas + surge) as i64,
                    "replicaset event {i}: {total} replicas over {replicas} + {surge}: {all:?}"
                );
            },
            &mut BTreeMap::new(),
        );
    }
}

#[test]
fn rolling_update_history_undo_pause_restart_and_scale() {
    let (_tmp, s) = server();
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "deployment",
            "web",
            "--image=busybox",
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
    let hash = label(&first, "pod-template-hash").to_string();
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    let first_name = format!("web-{hash}");
    assert_eq!(name(&first), first_name);
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

    // Three pods come up on the nodes: the rollout is complete.
    rolled_out(&s, "web", 3);
    for pod in pods(&s, "app=web") {
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| n.starts_with("sim-node-")),
            "{pod}"
        );
    }
    let d = deployment(&s, "web");
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "1");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(
        condition(&d, "Progressing"),
        (
            "True".into(),
            "NewReplicaSetAvailable".into(),
            format!("ReplicaSet \"{first_name}\" has successfully progressed.")
        )
    );
    assert_eq!(
        condition(&d, "Available"),
        (
            "True".into(),
            "MinimumReplicasAvailable".into(),
            "Deployment has minimum availability.".into()
        )
    );
    let notes = event_notes(&s, "deployment-controller", "web");
    assert!(
        notes.contains(&format!(
            "ScalingReplicaSet Scaled up replica set {first_name} from 0 to 3"
        )),
        "{notes:?}"
    );

    // A new image: revision 2 surges one replica (25% of 3 rounded up) and loses none (25%
    // rounded down), at every step.
    let watch = Rollout::watch(&s, "web", 3);
    s.kubectl_ok(&["set", "image", "deployment/web", "busybox=busybox:1.37"])
        .unwrap();
    let second = eventually(&s, "the second replicaset", || {
        replica_sets(&s, "web")
            .into_iter()
            .find(|rs| revision(rs) == 2)
    });
    let second_name = name(&second).to_string();
    assert_ne!(second_name, first_name);
    let new = rolled_out(&s, "web", 3);
    assert_eq!(name(&new), second_name);
    watch.check(&s, &new, 3, 1, 0);
    assert_eq!(
        sizes(&s, "web"),
        [(first_name.clone(), 0), (second_name.clone(), 3)]
    );
    assert_eq!(
        annotation(&deployment(&s, "web"), "deployment.kubernetes.io/revision"),
        "2"
    );
    // Later scalings about the same Deployment may join this event's series.
    let note = format!("ScalingReplicaSet Scaled up replica set {second_name} from 0 to 1");
    eventually(&s, &note, || {
        event_notes(&s, "deployment-controller", "web")
            .contains(&note)
            .then_some(())
    });
    assert_eq!(
        s.kubectl_ok(&["rollout", "history", "deployment/web"])
            .unwrap(),
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );

    // Undo: the first ReplicaSet comes back as revision 3; no new ReplicaSet.
    let watch = Rollout::watch(&s, "web", 3);
    assert_eq!(
        s.kubectl_ok(&["rollout", "undo", "deployment/web"])
            .unwrap(),
        "deployment.apps/web rolled back\n"
    );
    let back = rolled_out(&s, "web", 3);
    assert_eq!(name(&back), first_name);
    assert_eq!(revision(&back), 3);
    assert_eq!(
        annotation(&back, "deployment.kubernetes.io/revision-history"),
        "1"
    );
    watch.check(&s, &back, 3, 1, 0);
    assert_eq!(
        sizes(&s, "web"),
        [(second_name.clone(), 0), (first_name.clone(), 3)]
    );
    let d = deployment(&s, "web");
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "3");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
    assert_eq!(
        s.kubectl_ok(&["rollout", "history", "deployment/web"])
            .unwrap(),
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n"
    );

    // Paused: template changes wait; scaling does not.
    assert_eq!(
        s.kubectl_ok(&["rollout", "pause", "deployment/web"])
            .unwrap(),
        "deployment.apps/web paused\n"
    );
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
        (sizes(&s, "web") == [(second_name.clone(), 0), (first_name.clone(), 5)]).then_some(())
    });
    let current = get_json(&s, &["rs", &first_name]);
    assert_eq!(
        annotation(&current, "deployment.kubernetes.io/desired-replicas"),
        "5"
    );
    // 25% of 5 rounds up to 2.
    assert_eq!(
        annotation(&current, "deployment.kubernetes.io/max-replicas"),
        "7"
    );
    eventually(&s, "five ready pods", || {
        let pods = pods(&s, "app=web");
        (pods.len() == 5 && pods.iter().all(pod_ready)).then_some(())
    });
    observed(&s, "web");
    assert_eq!(
        replica_sets(&s, "web").len(),
        2,
        "a paused deployment rolled"
    );

    // Resumed: revision 4 rolls out, 2 over and 1 under (25% of 5).
    let watch = Rollout::watch(&s, "web", 5);
    assert_eq!(
        s.kubectl_ok(&["rollout", "resume", "deployment/web"])
            .unwrap(),
        "deployment.apps/web resumed\n"
    );
    let fourth = rolled_out(&s, "web", 5);
    assert_eq!(revision(&fourth), 4);
    assert_eq!(
        fourth["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.38"
    );
    watch.check(&s, &fourth, 5, 2, 1);

    // Restarted: the same image in a fifth ReplicaSet.
    let watch = Rollout::watch(&s, "web", 5);
    assert_eq!(
        s.kubectl_ok(&["rollout", "restart", "deployment/web"])
            .unwrap(),
        "deployment.apps/web restarted\n"
    );
    let fifth = rolled_out(&s, "web", 5);
    assert_eq!(revision(&fifth), 5);
    assert_ne!(name(&fifth), name(&fourth));
    assert!(
        !annotation(
            &fifth["spec"]["template"],
            "kubectl.kubernetes.io/restartedAt"
        )
        .is_empty(),
        "{fifth}"
    );
    watch.check(&s, &fifth, 5, 2, 1);

    // Scaled down, then up.
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=2"])
        .unwrap();
    let rs = rolled_out(&s, "web", 2);
    assert_eq!(name(&rs), name(&fifth));
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=4"])
        .unwrap();
    let rs = rolled_out(&s, "web", 4);
    assert_eq!(name(&rs), name(&fifth));
    assert_eq!(replica_sets(&s, "web").len(), 4);
}

#[test]
fn recreate_deletes_old_pods_before_new_ones_start() {
    let (tmp, s) = server();
    apply(
        &s,
        &tmp,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: db\nspec:\n  replicas: 2\n  strategy:\n    type: Recreate\n  selector:\n    matchLabels: {app: db}\n  template:\n    metadata:\n      labels: {app: db}\n    spec:\n      containers: [{name: db, image: busybox:1.36}]\n",
    );
    let first = rolled_out(&s, "db", 2);
    let old_hash = label(&first, "pod-template-hash").to_string();

    let watch = Watch::start(&s, "pods", "app=db", 2);
    s.kubectl_ok(&["set", "image", "deployment/db", "db=busybox:1.37"])
        .unwrap();
    let second = rolled_out(&s, "db", 2);
    assert_eq!(revision(&second), 2);
    assert_eq!(
        sizes(&s, "db"),
        [
            (name(&first).to_string(), 0),
            (name(&second).to_string(), 2)
        ]
    );
    let new_hash = label(&second, "pod-template-hash").to_string();
    let events = watch.stop(&s, |pods| {
        pods.len() == 2
            && pods
                .values()
                .all(|p| label(p, "pod-template-hash") == new_hash)
    });
    // No new pod while any old one, even a terminating one, is left.
    replay(
        &events,
        |i, pods| {
            let old = pods
                .values()
                .any(|p| label(p, "pod-template-hash") == old_hash);
            let new = pods
                .values()
                .any(|p| label(p, "pod-template-hash") == new_hash);
            assert!(!(old && new), "pod event {i}: {}", describe(pods));
        },
        &mut BTreeMap::new(),
    );
    let note = format!(
        "ScalingReplicaSet Scaled down replica set {} from 2 to 0",
        name(&first)
    );
    let notes = event_notes(&s, "deployment-controller", "db");
    assert!(notes.contains(&note), "{note} not in {notes:?}");
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let (tmp, s) = server();
    let manifest = |selector: &str, replicas: i64| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: {replicas}\n  strategy:\n    rollingUpdate: {{maxSurge: 3, maxUnavailable: 2}}\n  selector:\n    matchLabels: {{app: api}}\n  template:\n    metadata:\n      labels: {{app: api}}\n    spec:\n      nodeSelector: {selector}\n      containers: [{{name: api, image: busybox}}]\n"
        )
    };
    apply(&s, &tmp, &manifest("{type: simulated}", 10));
    let first = name(&rolled_out(&s, "api", 10)).to_string();

    // The rollout starts, to nodes that do not exist: 2 old replicas go (the unavailability
    // allowed) and 5 new come (up to 13, the surge); the new pods never become available, so
    // it stops there.
    apply(&s, &tmp, &manifest("{disk: ssd}", 10));
    let second = eventually(&s, "the rollout's first steps", || {
        let rss = sizes(&s, "api");
        (rss.len() == 2 && rss[0] == (first.clone(), 8) && rss[1].1 == 5).then(|| rss[1].0.clone())
    });
    eventually(&s, "8 old pods and 5 pending new ones", || {
        let pods = pods(&s, "app=api");
        let live: Vec<&Value> = pods.iter().filter(|p| !terminating(p)).collect();
        let ready = live.iter().filter(|p| pod_ready(p)).count();
        (live.len() == 13 && ready == 8 && pods.len() == 13).then_some(())
    });
    eventually(&s, "the deployment to see 8 available", || {
        (deployment(&s, "api")["status"]["availableReplicas"] == 8).then_some(())
    });

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
    // The scale-up event of the larger (old) ReplicaSet comes first; the new one's, in the same
    // sync about the same Deployment, joins its event series.
    let note = format!("ScalingReplicaSet Scaled up replica set {first} from 8 to 14");
    eventually(&s, &note, || {
        event_notes(&s, "deployment-controller", "api")
            .contains(&note)
            .then_some(())
    });

    // The nodes get the label: the pending pods are scheduled and the rollout finishes.
    for node in ["sim-node-0", "sim-node-1"] {
        s.kubectl_ok(&["label", "node", node, "disk=ssd"]).unwrap();
    }
    let new = rolled_out(&s, "api", 20);
    assert_eq!(name(&new), second);
    assert_eq!(sizes(&s, "api"), [(first, 0), (second, 20)]);
}

#[test]
fn rolling_update_without_surge_stays_within_unavailability() {
    let (tmp, s) = server();
    let manifest = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nosurge\nspec:\n  replicas: 6\n  strategy:\n    rollingUpdate: {{maxSurge: 0, maxUnavailable: 34%}}\n  selector:\n    matchLabels: {{app: nosurge}}\n  template:\n    metadata:\n      labels: {{app: nosurge}}\n    spec:\n      containers: [{{name: c, image: \"{image}\"}}]\n"
        )
    };
    apply(&s, &tmp, &manifest("busybox:1"));
    let first = rolled_out(&s, "nosurge", 6);
    // 34% of 6 rounds down to 2: old pods go two at a time before new ones come.
    let watch = Rollout::watch(&s, "nosurge", 6);
    apply(&s, &tmp, &manifest("busybox:2"));
    let second = rolled_out(&s, "nosurge", 6);
    assert_ne!(name(&second), name(&first));
    watch.check(&s, &second, 6, 0, 2);
    let note = format!(
        "ScalingReplicaSet Scaled down replica set {} from 6 to 4",
        name(&first)
    );
    let notes = event_notes(&s, "deployment-controller", "nosurge");
    assert!(notes.contains(&note), "{note} not in {notes:?}");
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
        rolled_out(&s, "web", 1);
        s.kubectl_ok(&[
            "set",
            "image",
            "deployment/web",
            &format!("busybox={image}"),
        ])
        .unwrap();
    }
    rolled_out(&s, "web", 1);
    // Revisions 2 (the one kept) and 3 (current); 1 is deleted, with its pods.
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
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: slow\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels: {app: slow}\n  template:\n    metadata:\n      labels: {app: slow}\n    spec:\n      nodeSelector: {disk: hdd}\n      containers: [{name: c, image: busybox}]\n",
    );
    let rs = eventually(&s, "the replicaset", || {
        replica_sets(&s, "slow").into_iter().next()
    });
    // No node fits, so no pod ever becomes available: no progress within 2 s.
    let d = eventually(&s, "the deadline to pass", || {
        let d = deployment(&s, "slow");
        (condition(&d, "Progressing").1 == "ProgressDeadlineExceeded").then_some(d)
    });
    assert_eq!(
        condition(&d, "Progressing"),
        (
            "False".into(),
            "ProgressDeadlineExceeded".into(),
            format!("ReplicaSet \"{}\" has timed out progressing.", name(&rs))
        )
    );
    let err = s
        .kubectl_err(&["rollout", "status", "deployment/slow", "--timeout=10s"])
        .unwrap();
    assert_eq!(
        err,
        "error: deployment \"slow\" exceeded its progress deadline\n"
    );
    // A node fits after all: the pod runs and the rollout completes.
    s.kubectl_ok(&["label", "node", "sim-node-0", "disk=hdd"])
        .unwrap();
    eventually(&s, "the rollout to complete", || {
        (condition(&deployment(&s, "slow"), "Progressing").1 == "NewReplicaSetAvailable")
            .then_some(())
    });
    rolled_out(&s, "slow", 1);
}

#[test]
fn orphans_are_adopted_and_released() {
    let (tmp, s) = server_with(&[]);
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
    let (tmp, s) = server_with(&[]);
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
        name(&rs),
        format!("web-{}", pod_template_hash(&d["spec"]["template"], Some(1)))
    );
    // The other one is untouched.
    let other = get_json(&s, &["rs", &format!("web-{hash}")]);
    assert!(other["metadata"]["ownerReferences"].is_null());
}

/// Create the Deployment `name` of `replicas` busybox pods in `ns` and wait for them to run;
/// returns its ReplicaSet.
fn running(s: &Server, ns: &str, name_: &str, replicas: usize) -> Value {
    s.kubectl_ok(&[
        "create",
        "deployment",
        name_,
        "-n",
        ns,
        "--image=busybox",
        &format!("--replicas={replicas}"),
    ])
    .unwrap();
    eventually(s, "the deployment's pods to run", || {
        let rss = items(&get_json(
            s,
            &["rs", "-n", ns, "-l", &format!("app={name_}")],
        ));
        let pods = items(&get_json(
            s,
            &["pods", "-n", ns, "-l", &format!("app={name_}")],
        ));
        (rss.len() == 1 && pods.len() == replicas && pods.iter().all(pod_ready))
            .then(|| rss[0].clone())
    })
}

/// Whether `kubectl get <args>` finds nothing.
fn none(s: &Server, args: &[&str]) -> bool {
    items(&get_json(s, args)).is_empty()
}

#[test]
fn deleting_a_deployment_cascades_as_asked() {
    // Pods take 2 s to go, so the foreground deletion can be seen waiting for them.
    let (_tmp, s) = server_with(&[
        "--simulated-nodes",
        "1",
        "--simulated-pod-start-delay",
        "200ms",
        "--simulated-pod-delete-delay",
        "2s",
    ]);

    // Background (kubectl's default): the Deployment goes at once, its ReplicaSet and pods
    // after it.
    running(&s, "default", "bg", 2);
    assert_eq!(
        s.kubectl_ok(&["delete", "deployment", "bg"]).unwrap(),
        "deployment.apps \"bg\" deleted\n"
    );
    eventually(&s, "the background deletion", || {
        (none(&s, &["rs", "-l", "app=bg"]) && none(&s, &["pods", "-l", "app=bg"])).then_some(())
    });

    // Orphan: the ReplicaSet and its pods stay, no longer owned.
    let rs = running(&s, "default", "orphan", 2);
    let before: Vec<String> = pods(&s, "app=orphan")
        .iter()
        .map(|p| name(p).to_string())
        .collect();
    s.kubectl_ok(&["delete", "deployment", "orphan", "--cascade=orphan"])
        .unwrap();
    eventually(&s, "the ownerReference to be removed", || {
        let now = get_json(&s, &["rs", name(&rs)]);
        now["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty)
            .then_some(())
    });
    assert!(
        s.kubectl_err(&["get", "deployment", "orphan"])
            .unwrap()
            .contains("NotFound")
    );
    let after = pods(&s, "app=orphan");
    assert_eq!(
        after
            .iter()
            .map(|p| name(p).to_string())
            .collect::<Vec<_>>(),
        before
    );
    for pod in &after {
        assert!(!terminating(pod), "{pod}");
        assert!(owned_by(pod, &rs["metadata"]["uid"]), "{pod}");
    }
    assert_eq!(get_json(&s, &["rs", name(&rs)])["spec"]["replicas"], 2);

    // Foreground: the Deployment stays, being deleted, until its pods are gone.
    running(&s, "default", "fg", 2);
    s.kubectl_ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ])
    .unwrap();
    let d = deployment(&s, "fg");
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    assert_eq!(d["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    eventually(&s, "the pods to be deleted", || {
        let pods = pods(&s, "app=fg");
        (!pods.is_empty() && pods.iter().all(terminating)).then_some(())
    });
    assert!(deployment(&s, "fg")["metadata"]["deletionTimestamp"].is_string());
    eventually(&s, "the deployment to go", || {
        // The Deployment first: once it is gone, its pods must have gone before it.
        let gone = s.kubectl_err(&["get", "deployment", "fg"]).is_ok();
        let left = pods(&s, "app=fg");
        if gone {
            assert!(
                left.is_empty(),
                "the deployment went before its pods: {left:?}"
            );
        }
        gone.then_some(())
    });
    assert!(none(&s, &["rs", "-l", "app=fg"]));
}

#[test]
fn deleting_a_namespace_leaves_nothing_behind() {
    let (tmp, s) = server();
    apply(
        &s,
        &tmp,
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    );
    s.kubectl_ok(&["create", "namespace", "shop"]).unwrap();
    running(&s, "shop", "web", 3);
    eventually(&s, "the widget kind to be served", || {
        s.kubectl_ok(&["get", "widgets", "-n", "shop"]).ok()
    });
    apply(
        &s,
        &tmp,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: shop\nspec: {size: 1}\n",
    );

    s.kubectl_ok(&["delete", "namespace", "shop", "--timeout=60s"])
        .unwrap();
    eventually(&s, "the namespace to go", || {
        s.kubectl_err(&["get", "namespace", "shop"])
            .is_ok()
            .then_some(())
    });
    for kind in ["pods", "replicasets", "deployments", "widgets"] {
        let left: Vec<Value> = items(&get_json(&s, &[kind, "-A"]))
            .into_iter()
            .filter(|o| o["metadata"]["namespace"] == "shop")
            .collect();
        assert!(left.is_empty(), "{kind} left in shop: {left:?}");
    }
}

#[test]
fn a_restart_mid_rollout_finishes_it_without_extra_pods() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = [
        "--simulated-nodes",
        "2",
        "--simulated-pod-start-delay",
        "2s",
        "--simulated-pod-delete-delay",
        "500ms",
    ];
    let s = Server::start(data.clone(), &args).unwrap();
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1",
        "--replicas=4",
    ])
    .unwrap();
    rolled_out(&s, "web", 4);
    s.kubectl_ok(&["set", "image", "deployment/web", "busybox=busybox:2"])
        .unwrap();
    // Stop while the new pods are starting.
    let new = eventually(&s, "the new replicaset's first pods", || {
        let rs = replica_sets(&s, "web")
            .into_iter()
            .find(|rs| revision(rs) == 2)?;
        let uid = rs["metadata"]["uid"].clone();
        pods(&s, "app=web")
            .iter()
            .any(|p| owned_by(p, &uid))
            .then_some(rs)
    });
    s.stop().unwrap();

    let s = Server::start(data, &args).unwrap();
    let done = rolled_out(&s, "web", 4);
    assert_eq!(name(&done), name(&new));
    assert_eq!(done["metadata"]["uid"], new["metadata"]["uid"]);
    assert_eq!(
        sizes(&s, "web")
            .into_iter()
            .map(|(_, n)| n)
            .collect::<Vec<_>>(),
        [0, 4]
    );
    // The ReplicaSet controller created no more than four pods for the new ReplicaSet and
    // deleted none (a restarted controller that forgot what it had created would make extra
    // pods and then delete them). Repeats of an event count in its series.
    let count = |reason: &str| -> i64 {
        items(&get_json(&s, &["events.v1.events.k8s.io"]))
            .iter()
            .filter(|e| {
                e["regarding"]["name"] == name(&new)
                    && e["reportingController"] == "replicaset-controller"
                    && e["reason"] == reason
            })
            .map(|e| e["series"]["count"].as_i64().unwrap_or(1))
            .sum()
    };
    assert!(
        count("SuccessfulCreate") <= 4,
        "{}",
        count("SuccessfulCreate")
    );
    assert_eq!(count("SuccessfulDelete"), 0);
    let all = get_json(&s, &["pods", "-A"]);
    assert_eq!(items(&all).len(), 4, "{all}");
}
