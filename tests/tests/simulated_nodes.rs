//! Simulated nodes and node pod-CIDR allocation, as a user meets them: `k1s server --simulated-nodes` registers Ready nodes with pod CIDRs and renewed Leases, pods bound to them run and are deleted by their node, `k1s simulate` adds nodes to a running server, and an exhausted cluster CIDR is reported on the node that got none.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use k1s_tests::Server;
use serde_json::Value;

/// Bound of every wait: generous, since CI machines are slow.
const WAIT: Duration = Duration::from_secs(30);

/// Poll `check` until it returns `Ok`, for up to `WAIT`; the last value seen is in the failure
/// message.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; last seen: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(s: &Server, args: &[&str]) -> Result<Value, String> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = s.kubectl_ok(&all).map_err(|e| e.to_string())?;
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `a.b.c.d` as a number.
fn ipv4(text: &str) -> u32 {
    text.parse::<std::net::Ipv4Addr>()
        .map(u32::from)
        .unwrap_or(0)
}

/// Whether `ip` is in `cidr` (`a.b.c.d/n`).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let bits: u32 = bits.parse().unwrap_or(33);
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    bits <= 32 && ipv4(ip) & mask == ipv4(net) & mask
}

/// The Ready nodes whose name starts with `prefix`, by name, once there are `count`.
fn ready_nodes(s: &Server, prefix: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} ready nodes named {prefix}*"), || {
        let list = json(s, &["get", "nodes"])?;
        let mut nodes: Vec<Value> = list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| text(n, "/metadata/name").starts_with(prefix))
            .collect();
        nodes.sort_by(|a, b| text(a, "/metadata/name").cmp(text(b, "/metadata/name")));
        let done = nodes.len() == count
            && nodes
                .iter()
                .all(|n| ready(n) && !text(n, "/spec/podCIDR").is_empty());
        if done {
            Ok(nodes)
        } else {
            Err(serde_json::to_string(&nodes).unwrap_or_default())
        }
    })
}

#[test]
fn simulated_nodes_register_run_pods_and_renew_leases() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        tmp.path().join("data"),
        &[
            "--ephemeral",
            "--simulated-nodes",
            "3",
            "--simulated-node-lease-period",
            "1s",
        ],
    )
    .unwrap();

    // Three Ready nodes, labelled as a kubelet labels them, each with its own /24.
    let nodes = ready_nodes(&s, "sim-node-", 3);
    let mut cidrs: Vec<&str> = nodes.iter().map(|n| text(n, "/spec/podCIDR")).collect();
    cidrs.sort();
    assert_eq!(cidrs, ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"]);
    let mut zones = Vec::new();
    for node in &nodes {
        let name = text(node, "/metadata/name");
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["kubernetes.io/hostname"], name);
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels["type"], "simulated");
        zones.push(labels["topology.kubernetes.io/zone"].as_str().unwrap_or(""));
        assert_eq!(node["spec"]["podCIDRs"][0], node["spec"]["podCIDR"]);
        let status = &node["status"];
        assert_eq!(status["capacity"]["cpu"], "32");
        assert_eq!(status["capacity"]["memory"], "256Gi");
        assert_eq!(status["capacity"]["pods"], "110");
        assert_eq!(status["allocatable"], status["capacity"]);
        assert!(text(node, "/status/nodeInfo/kubeletVersion").starts_with("v1."));
    }
    zones.sort();
    assert_eq!(zones, ["zone-a", "zone-b", "zone-c"]);
    let table = s.kubectl_ok(&["get", "nodes"]).unwrap();
    assert_eq!(table.matches(" Ready ").count(), 3, "{table}");

    // The embedded simulator may act as its nodes and nothing more.
    for (what, expect) in [
        ("users/system:node:sim-node-0", "yes"),
        ("users/system:node:elsewhere", "no"),
        ("users/admin", "no"),
        ("groups/system:nodes", "yes"),
        ("groups/system:masters", "no"),
    ] {
        let out = s
            .kubectl()
            .args(["auth", "can-i", "impersonate", what])
            .args(["--as", "system:k1s:node-simulator"])
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(answer, expect, "impersonate {what}");
    }

    // A pod bound to a node runs there, with an IP of the node's CIDR.
    let node = &nodes[1];
    let node_name = text(node, "/metadata/name").to_string();
    let pod = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "web", "namespace": "default"}},
            "spec": {{"nodeName": "{node_name}", "containers": [{{"name": "app", "image": "nginx:1.27"}}]}}}}"#
    );
    let manifest = tmp.path().join("pod.json");
    std::fs::write(&manifest, pod).unwrap();
    s.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])
        .unwrap();
    let running = eventually("pod web to run", || {
        let pod = json(&s, &["get", "pod", "web"])?;
        let ok = text(&pod, "/status/phase") == "Running"
            && !text(&pod, "/status/podIP").is_empty()
            && ready(&pod);
        if ok {
            Ok(pod)
        } else {
            Err(pod["status"].to_string())
        }
    });
    let pod_ip = text(&running, "/status/podIP");
    assert!(
        in_cidr(pod_ip, text(node, "/spec/podCIDR")),
        "{pod_ip} is not in {}",
        text(node, "/spec/podCIDR")
    );
    let host_ip = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .map(|a| a["address"].clone())
        .unwrap();
    assert_eq!(running["status"]["hostIP"], host_ip);
    let app = &running["status"]["containerStatuses"][0];
    assert_eq!(app["ready"], true);
    assert_eq!(app["started"], true);
    assert!(app["state"]["running"]["startedAt"].is_string());
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(
            running["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == kind && c["status"] == "True"),
            "{kind}: {}",
            running["status"]
        );
    }
    let wide = s.kubectl_ok(&["get", "pod", "web", "-o", "wide"]).unwrap();
    assert!(wide.contains("Running") && wide.contains(pod_ip), "{wide}");

    // A graceful delete is finished by the node: kubectl's wait returns.
    s.kubectl_ok(&["delete", "pod", "web", "--timeout=30s"])
        .unwrap();
    let left = s.kubectl_ok(&["get", "pods", "-o", "name"]).unwrap();
    assert_eq!(left.trim(), "");

    // Every node has a Lease it renews.
    let renewals = |s: &Server| -> Result<Vec<(String, String)>, String> {
        let list = json(s, &["get", "leases", "-n", "kube-node-lease"])?;
        let mut out: Vec<(String, String)> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| text(l, "/metadata/name").starts_with("sim-node-"))
            .map(|l| {
                assert_eq!(l["spec"]["holderIdentity"], l["metadata"]["name"]);
                assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
                (
                    text(l, "/metadata/name").to_string(),
                    text(l, "/spec/renewTime").to_string(),
                )
            })
            .collect();
        out.sort();
        if out.len() == 3 {
            Ok(out)
        } else {
            Err(format!("{out:?}"))
        }
    };
    let first = eventually("three node leases", || renewals(&s));
    eventually("every lease to be renewed", || {
        let now = renewals(&s)?;
        let advanced = now.iter().zip(&first).all(|(a, b)| a.1 > b.1);
        if advanced {
            Ok(())
        } else {
            Err(format!("{first:?} then {now:?}"))
        }
    });

    // `k1s simulate` adds nodes to the running server, with the next free CIDRs.
    let mut simulate = Simulate(
        k1s_tests::k1s()
            .args(["simulate", "--nodes", "2", "--name-prefix", "extra-"])
            .arg("--kubeconfig")
            .arg(s.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let extra = ready_nodes(&s, "extra-", 2);
    let mut cidrs: Vec<&str> = extra.iter().map(|n| text(n, "/spec/podCIDR")).collect();
    cidrs.sort();
    assert_eq!(cidrs, ["10.42.3.0/24", "10.42.4.0/24"]);
    let ips: Vec<&str> = nodes
        .iter()
        .chain(&extra)
        .flat_map(|n| n["status"]["addresses"].as_array().unwrap())
        .filter(|a| a["type"] == "InternalIP")
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "node IPs collide: {ips:?}");
    simulate.0.kill().unwrap();
    simulate.0.wait().unwrap();
}

/// A `k1s simulate` process, killed when dropped.
struct Simulate(Child);

impl Drop for Simulate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_exhausted_cluster_cidr_is_reported_on_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        tmp.path().join("data"),
        &[
            "--ephemeral",
            "--cluster-cidr",
            "10.42.0.0/30",
            "--node-cidr-mask-size",
            "31",
            "--simulated-nodes",
            "3",
        ],
    )
    .unwrap();
    let (with, without) = eventually("two nodes with a CIDR and one without", || {
        let list = json(&s, &["get", "nodes"])?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let (with, without): (Vec<Value>, Vec<Value>) = items
            .into_iter()
            .partition(|n| !text(n, "/spec/podCIDR").is_empty());
        if with.len() == 2 && without.len() == 1 {
            Ok((with, without))
        } else {
            Err(list.to_string())
        }
    });
    let mut cidrs: Vec<&str> = with.iter().map(|n| text(n, "/spec/podCIDR")).collect();
    cidrs.sort();
    assert_eq!(cidrs, ["10.42.0.0/31", "10.42.0.2/31"]);
    let starved = text(&without[0], "/metadata/name").to_string();
    let event = eventually("a CIDRNotAvailable event", || {
        let list = json(&s, &["get", "events", "-n", "default"])?;
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["reason"] == "CIDRNotAvailable")
            .cloned()
            .ok_or_else(|| list.to_string())
    });
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["involvedObject"]["kind"], "Node");
    assert_eq!(event["involvedObject"]["name"], starved.as_str());
    assert_eq!(
        event["message"],
        format!("Node {starved} status is now: CIDRNotAvailable")
    );
    assert_eq!(event["source"]["component"], "cidrAllocator");
    // The node without a CIDR gets one as soon as another node goes.
    let gone = text(&with[0], "/metadata/name").to_string();
    let freed = text(&with[0], "/spec/podCIDR").to_string();
    s.kubectl_ok(&["delete", "node", &gone]).unwrap();
    eventually("the starved node to get the freed CIDR", || {
        let node = json(&s, &["get", "node", &starved])?;
        if text(&node, "/spec/podCIDR") == freed {
            Ok(())
        } else {
            Err(node["spec"].to_string())
        }
    });
}

/// Create pod `name` bound to `node` and wait until it runs; its pod IP.
fn run_pod(s: &Server, dir: &std::path::Path, name: &str, node: &str) -> String {
    let pod = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "namespace": "default"}},
            "spec": {{"nodeName": "{node}", "restartPolicy": "Never", "containers": [{{"name": "app", "image": "busybox"}}]}}}}"#
    );
    let manifest = dir.join(format!("{name}.json"));
    std::fs::write(&manifest, pod).unwrap();
    s.kubectl_ok(&["create", "-f", manifest.to_str().unwrap()])
        .unwrap();
    eventually(&format!("pod {name} to run"), || {
        let pod = json(s, &["get", "pod", name])?;
        let ip = text(&pod, "/status/podIP");
        if text(&pod, "/status/phase") == "Running" && !ip.is_empty() && ready(&pod) {
            Ok(ip.to_string())
        } else {
            Err(pod["status"].to_string())
        }
    })
}

#[test]
fn a_restarted_server_adopts_its_simulated_nodes_and_their_pods() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = ["--simulated-nodes", "1"];
    let s = Server::start(data.clone(), &args).unwrap();
    let before = ready_nodes(&s, "sim-node-", 1);
    let first = run_pod(&s, tmp.path(), "first", "sim-node-0");
    assert_eq!(first, "10.42.0.2");
    s.stop().unwrap();

    let s = Server::start(data, &args).unwrap();
    let after = ready_nodes(&s, "sim-node-", 1);
    assert_eq!(after[0]["metadata"]["uid"], before[0]["metadata"]["uid"]);
    assert_eq!(after[0]["spec"]["podCIDR"], "10.42.0.0/24");
    assert_eq!(
        after[0]["status"]["addresses"],
        before[0]["status"]["addresses"]
    );
    // The running pod keeps its IP, and a new pod does not get it again.
    let second = run_pod(&s, tmp.path(), "second", "sim-node-0");
    assert_eq!(second, "10.42.0.3");
    let pod = json(&s, &["get", "pod", "first"]).unwrap();
    assert_eq!(text(&pod, "/status/podIP"), first);
}
