//! What a simulated node writes: its Node as a kubelet registers it, its Lease, and the status a kubelet reports for a running pod; plus the per-node pod IP allocator. Pure functions of their inputs, so they are tested without a server.

use std::collections::HashSet;

use k1s_controllers::nodeipam::Cidr;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// The label every simulated node carries (kwok's convention).
pub const SIMULATED_LABEL: (&str, &str) = ("type", "simulated");
/// How long a lease is valid without renewal (the kubelet's `nodeLeaseDurationSeconds`).
pub const LEASE_DURATION_SECONDS: i64 = 40;
/// The kubelet's port, reported in `status.daemonEndpoints`.
const KUBELET_PORT: u16 = 10250;

/// `2006-01-02T15:04:05Z`.
pub fn timestamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2006-01-02T15:04:05.000000Z` (a `MicroTime`, as leases use).
pub fn micro_timestamp(t: OffsetDateTime) -> String {
    format!(
        "{}.{:06}Z",
        timestamp(t).trim_end_matches('Z'),
        t.microsecond()
    )
}

/// A simulated node's resources: capacity, all of it allocatable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub ephemeral_storage: String,
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            cpu: "32".into(),
            memory: "256Gi".into(),
            pods: "110".into(),
            ephemeral_storage: "1Ti".into(),
        }
    }
}

impl std::str::FromStr for Capacity {
    type Err = String;

    /// `cpu=32,memory=256Gi,pods=110,ephemeral-storage=1Ti`; resources left out keep their
    /// defaults.
    fn from_str(text: &str) -> Result<Capacity, String> {
        let mut capacity = Capacity::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not resource=quantity"))?;
            let value = value.trim();
            let valid = !value.is_empty()
                && value.starts_with(|c: char| c.is_ascii_digit())
                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
            if !valid {
                return Err(format!("{value:?} is not a quantity"));
            }
            let slot = match key.trim() {
                "cpu" => &mut capacity.cpu,
                "memory" => &mut capacity.memory,
                "pods" => &mut capacity.pods,
                "ephemeral-storage" => &mut capacity.ephemeral_storage,
                other => {
                    return Err(format!(
                        "unknown resource {other:?} (cpu, memory, pods, ephemeral-storage)"
                    ));
                }
            };
            *slot = value.to_string();
        }
        Ok(capacity)
    }
}

impl Capacity {
    fn to_json(&self) -> Value {
        json!({
            "cpu": self.cpu,
            "ephemeral-storage": self.ephemeral_storage,
            "memory": self.memory,
            "pods": self.pods,
        })
    }
}

/// Who a simulated node is.
#[derive(Clone, Debug)]
pub struct NodeIdentity<'a> {
    pub name: &'a str,
    pub internal_ip: &'a str,
    pub zone: &'a str,
    pub capacity: &'a Capacity,
    /// The server's `/version` gitVersion, reported as the kubelet's.
    pub kubelet_version: &'a str,
}

/// The node conditions of a healthy kubelet, in the kubelet's order.
pub fn node_conditions(heartbeat: &str, transition: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        })
    };
    json!([
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The Node a kubelet registers: labels, capacity, conditions, addresses and node info.
pub fn node(id: &NodeIdentity<'_>, now: &str) -> Value {
    let resources = id.capacity.to_json();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": id.name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": id.name,
                "kubernetes.io/os": "linux",
                "topology.kubernetes.io/zone": id.zone,
                SIMULATED_LABEL.0: SIMULATED_LABEL.1,
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": node_conditions(now, now),
            "addresses": [
                {"type": "InternalIP", "address": id.internal_ip},
                {"type": "Hostname", "address": id.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "",
                "osImage": "k1s simulated node",
                "containerRuntimeVersion": format!("k1s-simulated://{}", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": id.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

/// The heartbeat a kubelet posts: every condition with a fresh `lastHeartbeatTime`, as a
/// strategic merge patch of `nodes/status` (conditions merge by type, so the server keeps
/// each one's `lastTransitionTime` while its status stays the same).
pub fn node_heartbeat(now: &str) -> Value {
    let mut conditions = node_conditions(now, now);
    for condition in conditions.as_array_mut().into_iter().flatten() {
        if let Some(c) = condition.as_object_mut() {
            c.remove("lastTransitionTime");
        }
    }
    json!({"status": {"conditions": conditions}})
}

/// The node's Lease in `kube-node-lease`, renewed at `now` (a `MicroTime`).
pub fn lease(node: &str, node_uid: Option<&str>, now: &str) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": now,
        },
    });
    if let Some(uid) = node_uid.filter(|u| !u.is_empty()) {
        lease["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]);
    }
    lease
}

/// A node's `spec.podCIDR`, if it has one.
pub fn pod_cidr(node: &Value) -> Option<Cidr> {
    let text = node
        .pointer("/spec/podCIDRs/0")
        .or_else(|| node.pointer("/spec/podCIDR"))?
        .as_str()?;
    Cidr::parse(text).ok()
}

/// A node's InternalIP.
pub fn internal_ip(node: &Value) -> Option<&str> {
    node.pointer("/status/addresses")?
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?
        .get("address")?
        .as_str()
}

fn is_true(pod: &Value, kind: &str) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// Whether the pod already shows what a simulated node writes (Running, an IP, Ready).
pub fn running(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty())
        && is_true(pod, "Ready")
}

/// Whether the pod ended (a node never restarts those).
pub fn finished(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

pub fn terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// 64 hex digits derived from `seed` (FNV-1a, four lanes): stands in for digests and ids.
fn hex_id(seed: &str) -> String {
    (0..4u64)
        .map(|lane| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ lane;
            for b in seed.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("{h:016x}")
        })
        .collect()
}

/// The status a kubelet reports once every container runs: phase Running, the node's IP as
/// hostIP, `pod_ip`, init containers completed, containers running, ready and started, and
/// the five pod conditions True. Conditions of other types (readiness gates) and an earlier
/// `startTime` or PodScheduled transition are kept.
pub fn pod_status(pod: &Value, host_ip: &str, pod_ip: &str, now: &str) -> Value {
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let old = &pod["status"];
    let start = old
        .get("startTime")
        .and_then(Value::as_str)
        .unwrap_or(now)
        .to_string();
    let container_id = |name: &str| format!("k1s-simulated://{}", hex_id(&format!("{uid}/{name}")));
    let image = |c: &Value| {
        c.get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let image_id = |c: &Value| {
        let image = image(c);
        let repo = image.split('@').next().unwrap_or("");
        let repo = match repo.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repo,
        };
        format!("{repo}@sha256:{}", hex_id(&image))
    };
    let name = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let running = |c: &Value| {
        json!({
            "name": name(c),
            "state": {"running": {"startedAt": start}},
            "lastState": {},
            "ready": true,
            "restartCount": 0,
            "image": image(c),
            "imageID": image_id(c),
            "containerID": container_id(&name(c)),
            "started": true,
        })
    };
    let spec = &pod["spec"];
    let init: Vec<Value> = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
                // A sidecar: it keeps running.
                return running(c);
            }
            json!({
                "name": name(c),
                "state": {"terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": start,
                    "finishedAt": start,
                    "containerID": container_id(&name(c)),
                }},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": image(c),
                "imageID": image_id(c),
                "containerID": container_id(&name(c)),
                "started": false,
            })
        })
        .collect();
    let containers: Vec<Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(running)
        .collect();

    const OURS: [&str; 5] = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    let old_conditions: Vec<&Value> = old["conditions"].as_array().into_iter().flatten().collect();
    let mut conditions: Vec<Value> = OURS
        .iter()
        .map(|kind| {
            let kept = old_conditions
                .iter()
                .find(|c| c["type"] == *kind && c["status"] == "True")
                .and_then(|c| c.get("lastTransitionTime"))
                .and_then(Value::as_str)
                .unwrap_or(now);
            json!({
                "type": kind,
                "status": "True",
                "lastProbeTime": null,
                "lastTransitionTime": kept,
            })
        })
        .collect();
    conditions.extend(
        old_conditions
            .iter()
            .filter(|c| !OURS.iter().any(|k| c["type"] == *k))
            .map(|c| (*c).clone()),
    );

    let mut status = Map::new();
    status.insert("phase".into(), json!("Running"));
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("hostIP".into(), json!(host_ip));
    status.insert("hostIPs".into(), json!([{"ip": host_ip}]));
    status.insert("podIP".into(), json!(pod_ip));
    status.insert("podIPs".into(), json!([{"ip": pod_ip}]));
    status.insert("startTime".into(), json!(start));
    if !init.is_empty() {
        status.insert("initContainerStatuses".into(), Value::Array(init));
    }
    status.insert("containerStatuses".into(), Value::Array(containers));
    Value::Object(status)
}

/// One node's pod IPs: handed out in turn from its pod CIDR (as host-local IPAM does),
/// skipping the network address, the gateway (`.1`) and the broadcast address.
#[derive(Debug)]
pub struct PodIps {
    cidr: Cidr,
    last: u128,
    used: HashSet<u32>,
}

impl PodIps {
    pub fn new(cidr: Cidr) -> PodIps {
        PodIps {
            cidr,
            last: 1,
            used: HashSet::new(),
        }
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// Offsets that can be handed out: 2 ..= size - 2 (at most 2^32 of them).
    fn bounds(&self) -> (u128, u128) {
        let size = self.cidr.size().min(1 << 32);
        (2, size.saturating_sub(2))
    }

    /// The next free address, marked used.
    pub fn allocate(&mut self) -> Option<String> {
        let (low, high) = self.bounds();
        if high < low {
            return None;
        }
        let span = high - low + 1;
        let from = self.last.max(low - 1);
        for step in 1..=span {
            let offset = low + (from + step - low) % span;
            if self.used.insert(offset as u32) {
                self.last = offset;
                return Some(self.cidr.format_addr(self.cidr.addr + offset));
            }
        }
        None
    }

    /// Mark `ip` used (a pod that already has it); false if it is not in the CIDR.
    pub fn occupy(&mut self, ip: &str) -> bool {
        match self.offset(ip) {
            Some(offset) => {
                self.used.insert(offset);
                true
            }
            None => false,
        }
    }

    pub fn release(&mut self, ip: &str) {
        if let Some(offset) = self.offset(ip) {
            self.used.remove(&offset);
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    fn offset(&self, ip: &str) -> Option<u32> {
        let addr = Cidr::parse(&format!("{ip}/{}", self.cidr.bits())).ok()?;
        if addr.v6 != self.cidr.v6 || !self.cidr.contains(addr.addr) {
            return None;
        }
        u32::try_from(addr.addr - self.cidr.addr).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_flag() {
        let c: Capacity = "cpu=4, memory=8Gi".parse().unwrap();
        assert_eq!(
            c,
            Capacity {
                cpu: "4".into(),
                memory: "8Gi".into(),
                ..Capacity::default()
            }
        );
        assert!("gpu=1".parse::<Capacity>().is_err());
        assert!("cpu".parse::<Capacity>().is_err());
        assert!("cpu=lots".parse::<Capacity>().is_err());
    }

    #[test]
    fn registered_node() {
        let capacity = Capacity::default();
        let n = node(
            &NodeIdentity {
                name: "sim-1",
                internal_ip: "172.16.0.2",
                zone: "zone-b",
                capacity: &capacity,
                kubelet_version: "v1.33.0+k1s.0.1.0",
            },
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "sim-1");
        assert_eq!(
            n["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "zone-b"
        );
        assert_eq!(n["metadata"]["labels"]["type"], "simulated");
        assert_eq!(n["status"]["capacity"], n["status"]["allocatable"]);
        assert_eq!(n["status"]["capacity"]["pods"], "110");
        assert_eq!(n["status"]["conditions"][3]["type"], "Ready");
        assert_eq!(n["status"]["conditions"][3]["reason"], "KubeletReady");
        assert_eq!(internal_ip(&n), Some("172.16.0.2"));
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.33.0+k1s.0.1.0"
        );

        let later = node_heartbeat("2026-01-01T00:05:00Z");
        let ready = &later["status"]["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastHeartbeatTime"], "2026-01-01T00:05:00Z");
        assert!(ready.get("lastTransitionTime").is_none());
    }

    #[test]
    fn pod_status_of_a_running_pod() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {
                "nodeName": "sim-0",
                "initContainers": [
                    {"name": "setup", "image": "busybox"},
                    {"name": "proxy", "image": "envoy:v1", "restartPolicy": "Always"},
                ],
                "containers": [{"name": "app", "image": "registry.local:5000/app:1.2"}],
                "readinessGates": [{"conditionType": "example.com/gate"}],
            },
            "status": {
                "phase": "Pending",
                "qosClass": "BestEffort",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "example.com/gate", "status": "True"},
                ],
            },
        });
        let s = pod_status(&pod, "172.16.0.1", "10.42.0.2", "2026-01-01T00:00:01Z");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["hostIP"], "172.16.0.1");
        assert_eq!(s["hostIPs"], json!([{"ip": "172.16.0.1"}]));
        assert_eq!(s["podIPs"], json!([{"ip": "10.42.0.2"}]));
        assert_eq!(s["startTime"], "2026-01-01T00:00:01Z");
        let types: Vec<&str> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
                "example.com/gate"
            ]
        );
        assert!(
            s["conditions"].as_array().unwrap()[..5]
                .iter()
                .all(|c| c["status"] == "True")
        );
        assert_eq!(
            s["conditions"][4]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            s["conditions"][2]["lastTransitionTime"],
            "2026-01-01T00:00:01Z"
        );
        let app = &s["containerStatuses"][0];
        assert_eq!(app["state"]["running"]["startedAt"], "2026-01-01T00:00:01Z");
        assert_eq!(
            (
                app["ready"].clone(),
                app["started"].clone(),
                app["restartCount"].clone()
            ),
            (json!(true), json!(true), json!(0))
        );
        assert_eq!(app["image"], "registry.local:5000/app:1.2");
        assert!(
            app["imageID"]
                .as_str()
                .unwrap()
                .starts_with("registry.local:5000/app@sha256:")
        );
        assert!(
            app["containerID"]
                .as_str()
                .unwrap()
                .starts_with("k1s-simulated://")
        );
        let setup = &s["initContainerStatuses"][0];
        assert_eq!(setup["state"]["terminated"]["reason"], "Completed");
        assert_eq!(setup["state"]["terminated"]["exitCode"], 0);
        assert!(s["initContainerStatuses"][1]["state"]["running"].is_object());

        let mut now_running = pod.clone();
        now_running["status"] = s.clone();
        assert!(running(&now_running) && !running(&pod));
        // A second write keeps the first one's times.
        let again = pod_status(
            &now_running,
            "172.16.0.1",
            "10.42.0.2",
            "2026-01-01T00:09:00Z",
        );
        assert_eq!(again, s);
    }

    #[test]
    fn pod_ips_skip_network_gateway_and_broadcast() {
        let mut ips = PodIps::new(Cidr::parse("10.42.1.0/29").unwrap());
        let got: Vec<String> = std::iter::from_fn(|| ips.allocate()).collect();
        assert_eq!(
            got,
            [
                "10.42.1.2",
                "10.42.1.3",
                "10.42.1.4",
                "10.42.1.5",
                "10.42.1.6"
            ]
        );
        ips.release("10.42.1.4");
        assert_eq!(ips.allocate().as_deref(), Some("10.42.1.4"));
        assert!(ips.allocate().is_none());
        let mut ips = PodIps::new(Cidr::parse("10.42.1.0/24").unwrap());
        assert!(ips.occupy("10.42.1.2"));
        assert!(!ips.occupy("10.42.2.2"));
        assert_eq!(ips.allocate().as_deref(), Some("10.42.1.3"));
        assert_eq!(ips.in_use(), 2);
    }

    #[test]
    fn times() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_123_456_789).unwrap();
        assert_eq!(timestamp(t), "2026-01-01T00:00:00Z");
        assert_eq!(micro_timestamp(t), "2026-01-01T00:00:00.123456Z");
    }
}
