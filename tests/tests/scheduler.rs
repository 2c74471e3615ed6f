//! The scheduler as kubectl users meet it: placement by nodeSelector, node affinity, pod affinity and anti-affinity, taints and tolerations (and NoExecute eviction), resources, upstream's FailedScheduling messages, a burst that never over-commits a node, and priority preemption. Placement and taints run on simulated nodes; the burst and preemption tests register Node objects through the API (no node finishes deletes there, so the test does).

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

/// A Node as a kubelet registers it: labels, allocatable, Ready.
fn node_yaml(name: &str, labels: &str, cpu: &str, memory: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}{labels}}}\nstatus:\n  capacity: {{cpu: \"{cpu}\", memory: {memory}, pods: \"110\"}}\n  allocatable: {{cpu: \"{cpu}\", memory: {memory}, pods: \"110\"}}\n  conditions: [{{type: Ready, status: \"True\", reason: KubeletReady, message: kubelet is posting ready status}}]\n---\n"
    )
}

fn pod_yaml(name: &str, labels: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n{spec}---\n"
    )
}

fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node_of(s: &Server, pod: &str) -> String {
    s.kubectl_ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
        .unwrap()
}

fn bound(s: &Server, pod: &str) -> String {
    eventually(
        &format!("{pod} to be bound"),
        Duration::from_secs(20),
        || Some(node_of(s, pod)).filter(|n| !n.is_empty()),
    )
}

/// The latest FailedScheduling message of a pod that stays unbound.
fn unschedulable(s: &Server, pod: &str) -> String {
    let message = eventually(
        &format!("{pod} to be reported unschedulable"),
        Duration::from_secs(20),
        || {
            let out = s
                .kubectl_ok(&[
                    "get",
                    "pod",
                    pod,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
                ])
                .unwrap();
            (!out.is_empty()).then_some(out)
        },
    );
    assert_eq!(node_of(s, pod), "", "{pod} is unschedulable yet bound");
    message
}

/// Three simulated nodes n0 (nodeenv=pro), n1 (nodeenv=test) and n2, 4 CPUs and 8 GiB each.
fn three_nodes(s: &Server) {
    eventually("3 simulated nodes", Duration::from_secs(30), || {
        let out = s
            .kubectl_ok(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.spec.podCIDR} {end}",
            ])
            .unwrap();
        (out.split_whitespace().count() == 3).then_some(())
    });
    s.kubectl_ok(&["label", "node", "n0", "nodeenv=pro"])
        .unwrap();
    s.kubectl_ok(&["label", "node", "n1", "nodeenv=test"])
        .unwrap();
}

/// A server with three simulated nodes (`three_nodes`); pods on them run after 100 ms and a
/// graceful delete is finished after `delete_delay`.
fn simulated(delete_delay: &str) -> (tempfile::TempDir, Server) {
    server(&[
        "--simulated-nodes",
        "3",
        "--simulated-node-prefix",
        "n",
        "--simulated-node-capacity",
        "cpu=4,memory=8Gi,pods=110",
        "--simulated-pod-start-delay",
        "100ms",
        "--simulated-pod-delete-delay",
        delete_delay,
    ])
}

#[test]
fn selectors_and_affinity_place_pods() {
    let (tmp, s) = simulated("1s");
    let dir = tmp.path();
    three_nodes(&s);

    // A pod naming a node that does not exist is not the scheduler's: it stays Pending.
    apply(
        &s,
        dir,
        "named.yaml",
        &pod_yaml("named", "", "  nodeName: k8s-node3\n"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = s
        .kubectl_ok(&[
            "get",
            "pod",
            "named",
            "-o",
            "jsonpath={.spec.nodeName} {.status.phase}",
        ])
        .unwrap();
    assert_eq!(out, "k8s-node3 Pending");
    // Another scheduler's pod is left alone: no binding, no condition.
    apply(
        &s,
        dir,
        "other.yaml",
        &pod_yaml("other", "", "  schedulerName: my-scheduler\n"),
    );

    apply(
        &s,
        dir,
        "pro.yaml",
        &pod_yaml("pro", "", "  nodeSelector: {nodeenv: pro}\n"),
    );
    assert_eq!(bound(&s, "pro"), "n0");
    apply(
        &s,
        dir,
        "xxx.yaml",
        &pod_yaml("xxx", "", "  nodeSelector: {nodeenv: xxx}\n"),
    );
    assert_eq!(
        unschedulable(&s, "xxx"),
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    let events = s
        .kubectl_ok(&["get", "events", "--field-selector=involvedObject.name=xxx"])
        .unwrap();
    assert!(events.contains("FailedScheduling"), "{events}");
    let scheduled = s
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=pro,reason=Scheduled",
            "-o",
            "jsonpath={.items[0].message}",
        ])
        .unwrap();
    assert_eq!(scheduled, "Successfully assigned default/pro to n0");
    let other = s
        .kubectl_ok(&[
            "get",
            "pod",
            "other",
            "-o",
            "jsonpath={.spec.nodeName}|{.status.conditions}",
        ])
        .unwrap();
    assert_eq!(other, "|");

    // Required node affinity: Pending until a node gets the label.
    let required = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: nodeenv, operator: In, values: [xxx, yyy]}]\n";
    apply(
        &s,
        dir,
        "required.yaml",
        &pod_yaml("required", "", required),
    );
    unschedulable(&s, "required");
    s.kubectl_ok(&["label", "node", "n2", "nodeenv=yyy"])
        .unwrap();
    assert_eq!(bound(&s, "required"), "n2");
    // A preferred term no node matches does not stop scheduling.
    let preferred = "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 1\n        preference:\n          matchExpressions: [{key: nodeenv, operator: In, values: [zzz]}]\n";
    apply(
        &s,
        dir,
        "preferred.yaml",
        &pod_yaml("preferred", "", preferred),
    );
    bound(&s, "preferred");

    // Pod affinity follows the pod labelled podenv=pro; anti-affinity avoids it.
    apply(
        &s,
        dir,
        "web.yaml",
        &pod_yaml("web", "podenv: pro", "  nodeSelector: {nodeenv: test}\n"),
    );
    assert_eq!(bound(&s, "web"), "n1");
    let term = "        - labelSelector:\n            matchExpressions: [{key: podenv, operator: In, values: [pro, yyy]}]\n          topologyKey: kubernetes.io/hostname\n";
    apply(
        &s,
        dir,
        "near.yaml",
        &pod_yaml(
            "near",
            "",
            &format!(
                "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n{term}"
            ),
        ),
    );
    assert_eq!(bound(&s, "near"), "n1");
    let anti = "        - labelSelector:\n            matchExpressions: [{key: podenv, operator: In, values: [pro]}]\n          topologyKey: kubernetes.io/hostname\n";
    for i in 0..4 {
        let name = format!("far{i}");
        apply(
            &s,
            dir,
            "far.yaml",
            &pod_yaml(
                &name,
                "",
                &format!(
                    "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n{anti}"
                ),
            ),
        );
        assert_ne!(bound(&s, &name), "n1");
    }
}

#[test]
fn taints_resources_and_their_messages() {
    // Evicted pods linger for 5 s before their node lets go.
    let (tmp, s) = simulated("5s");
    let dir = tmp.path();
    three_nodes(&s);
    s.kubectl_ok(&["cordon", "n1", "n2"]).unwrap();
    s.kubectl_ok(&["taint", "node", "n0", "tag=test:PreferNoSchedule"])
        .unwrap();
    apply(&s, dir, "a.yaml", &pod_yaml("a", "", ""));
    assert_eq!(bound(&s, "a"), "n0");
    s.kubectl_ok(&["taint", "node", "n0", "tag=test:NoSchedule"])
        .unwrap();
    apply(&s, dir, "b.yaml", &pod_yaml("b", "", ""));
    assert_eq!(
        unschedulable(&s, "b"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {tag: test}, 2 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    let tolerating =
        "  tolerations: [{key: tag, operator: Equal, value: test, effect: NoSchedule}]\n";
    apply(&s, dir, "c.yaml", &pod_yaml("c", "", tolerating));
    assert_eq!(bound(&s, "c"), "n0");
    // Removing the taint lets the waiting pod in.
    s.kubectl_ok(&["taint", "node", "n0", "tag=test:NoSchedule-"])
        .unwrap();
    assert_eq!(bound(&s, "b"), "n0");

    // NoExecute: untolerated pods are evicted at once, a pod tolerating it for 2 s after 2 s.
    let for_a_while =
        "  tolerations: [{key: tag, operator: Exists, effect: NoExecute, tolerationSeconds: 2}]\n";
    apply(&s, dir, "slow.yaml", &pod_yaml("slow", "", for_a_while));
    assert_eq!(bound(&s, "slow"), "n0");
    s.kubectl_ok(&["taint", "node", "n0", "tag=test:NoExecute"])
        .unwrap();
    // Marked for deletion, or already gone (its node finished the delete).
    let deleting = |pod: &str| {
        let out = s
            .kubectl_ok(&[
                "get",
                "pod",
                pod,
                "--ignore-not-found",
                "-o",
                "jsonpath={.metadata.name}/{.metadata.deletionTimestamp}",
            ])
            .unwrap();
        out.is_empty() || !out.ends_with('/')
    };
    let started = Instant::now();
    eventually(
        "the untolerated pods to be evicted",
        Duration::from_secs(20),
        || ["a", "b", "c"].iter().all(|p| deleting(p)).then_some(()),
    );
    if started.elapsed() < Duration::from_millis(1500) {
        assert!(
            !deleting("slow"),
            "a pod tolerating NoExecute for 2 s went early"
        );
    }
    eventually(
        "the tolerating pod's time to run out",
        Duration::from_secs(20),
        || deleting("slow").then_some(()),
    );
    let condition = s
        .kubectl_ok(&[
            "get",
            "pod",
            "a",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
        ])
        .unwrap();
    assert_eq!(condition, "DeletionByTaintManager");
    let event = s
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=a,reason=TaintManagerEviction",
            "-o",
            "jsonpath={.items[0].message}",
        ])
        .unwrap();
    assert_eq!(event, "Marking for deletion Pod default/a");
    let tolerating =
        "  tolerations: [{key: tag, operator: Equal, value: test, effect: NoExecute}]\n";
    apply(&s, dir, "d.yaml", &pod_yaml("d", "", tolerating));
    assert_eq!(bound(&s, "d"), "n0");
    s.kubectl_ok(&["taint", "node", "n0", "tag-"]).unwrap();

    s.kubectl_ok(&["uncordon", "n1", "n2"]).unwrap();
    let huge =
        "  containers: [{name: c, image: busybox, resources: {requests: {memory: 1000Gi}}}]\n";
    let yaml =
        pod_yaml("huge", "", huge).replace("  containers: [{name: c, image: busybox}]\n", "");
    apply(&s, dir, "huge.yaml", &yaml);
    let message = unschedulable(&s, "huge");
    assert_eq!(
        message,
        "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    let described = s.kubectl_ok(&["describe", "pod", "huge"]).unwrap();
    assert!(described.contains("Insufficient memory"), "{described}");
    assert!(described.contains("FailedScheduling"), "{described}");
}

#[test]
fn a_burst_never_overcommits_a_node() {
    // Slow binds: only the scheduler's assumed pods, not the informer, keep it honest.
    let (tmp, s) = server(&["--scheduler-bind-delay", "20ms"]);
    let dir = tmp.path();
    let nodes: String = (0..10)
        .map(|i| node_yaml(&format!("n{i}"), "", "4", "64Gi"))
        .collect();
    apply(&s, dir, "nodes.yaml", &nodes);
    // 500 pods of 120m: 60 CPUs asked of 40; 33 fit on each node.
    let resources =
        "  containers: [{name: c, image: busybox, resources: {requests: {cpu: 120m}}}]\n";
    let pods: String = (0..500)
        .map(|i| {
            pod_yaml(&format!("p{i}"), "app: burst", resources)
                .replace("  containers: [{name: c, image: busybox}]\n", "")
        })
        .collect();
    // Every binding as a watch sees it: no node may ever hold more than fits.
    let mut watch = s
        .kubectl()
        .args([
            "get",
            "pods",
            "-w",
            "-o",
            "jsonpath={.metadata.name} {.spec.nodeName}{\"\\n\"}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let watcher = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut node_of = std::collections::HashMap::<String, String>::new();
        let mut per_node = std::collections::HashMap::<String, usize>::new();
        let mut most = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            let (Some(pod), Some(node)) = (parts.next(), parts.next()) else {
                continue;
            };
            if node_of.insert(pod.to_string(), node.to_string()).is_none() {
                let count = per_node.entry(node.to_string()).or_default();
                *count += 1;
                most = most.max(*count);
                assert!(*count <= 33, "{node} over-committed with {count} pods");
            }
            if node_of.len() == 330 {
                break;
            }
        }
        (node_of.len(), most)
    });
    apply(&s, dir, "pods.yaml", &pods);
    let counts = eventually("the burst to settle", Duration::from_secs(120), || {
        let out = s.kubectl_ok(&["get", "pods", "-o", "json"]).unwrap();
        let list: Value = serde_json::from_str(&out).unwrap();
        let items = list["items"].as_array().unwrap();
        let mut per_node = std::collections::BTreeMap::<String, usize>::new();
        let mut pending_reported = 0;
        for p in items {
            match p["spec"]["nodeName"].as_str() {
                Some(n) => *per_node.entry(n.to_string()).or_default() += 1,
                None => {
                    let reported = p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| {
                            c["type"] == "PodScheduled"
                                && c["message"]
                                    .as_str()
                                    .unwrap_or("")
                                    .contains("10 Insufficient cpu")
                        });
                    pending_reported += usize::from(reported);
                }
            }
        }
        let bound: usize = per_node.values().sum();
        (bound == 330 && pending_reported == 170).then_some(per_node)
    });
    for (node, count) in counts {
        assert_eq!(count, 33, "{node}");
    }
    let (seen, most) = watcher.join().expect("no node over-committed on the watch");
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!((seen, most), (330, 33));
}

#[test]
fn a_higher_priority_pod_preempts() {
    let (tmp, s) = server(&[]);
    let dir = tmp.path();
    apply(&s, dir, "node.yaml", &node_yaml("n1", "", "1", "8Gi"));
    let asks = |cpu: &str| {
        format!(
            "  containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: {cpu}}}}}}}]\n"
        )
    };
    let strip = |y: String| y.replace("  containers: [{name: c, image: busybox}]\n", "");
    apply(
        &s,
        dir,
        "low.yaml",
        &strip(pod_yaml("low", "", &asks("800m"))),
    );
    assert_eq!(bound(&s, "low"), "n1");
    apply(
        &s,
        dir,
        "high-class.yaml",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n",
    );
    let high = format!("{}  priorityClassName: high\n", asks("500m"));
    apply(&s, dir, "high.yaml", &strip(pod_yaml("high", "", &high)));
    // The victim is deleted gracefully (its node would finish that) and the preemptor
    // nominated to its node.
    eventually(
        "the low pod to be preempted",
        Duration::from_secs(20),
        || {
            let out = s
                .kubectl_ok(&[
                    "get",
                    "pod",
                    "low",
                    "-o",
                    "jsonpath={.metadata.deletionTimestamp}",
                ])
                .unwrap();
            (!out.is_empty()).then_some(())
        },
    );
    let nominated = eventually("the nomination", Duration::from_secs(20), || {
        let out = s
            .kubectl_ok(&[
                "get",
                "pod",
                "high",
                "-o",
                "jsonpath={.status.nominatedNodeName}",
            ])
            .unwrap();
        (!out.is_empty()).then_some(out)
    });
    assert_eq!(nominated, "n1");
    let preempted = s
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=low,reason=Preempted",
            "-o",
            "jsonpath={.items[0].message}",
        ])
        .unwrap();
    assert!(
        preempted.starts_with("Preempted by pod ") && preempted.ends_with(" on node n1"),
        "{preempted}"
    );
    // No kubelet here: finish the graceful delete as the node would.
    s.kubectl_ok(&["delete", "pod", "low", "--grace-period=0", "--force"])
        .unwrap();
    assert_eq!(bound(&s, "high"), "n1");
}
