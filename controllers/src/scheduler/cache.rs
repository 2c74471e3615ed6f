//! The scheduler's view of the cluster: every node with the pods on it and what they request, including pods assumed on a node between the scheduling decision and the informer seeing their binding (so a burst never over-commits a node).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::resources::{self, Resources};
use crate::informer::key_of;

/// One pod as the scheduler counts it.
#[derive(Debug)]
pub struct PodInfo {
    pub key: String,
    pub pod: Arc<Value>,
    pub requests: Resources,
    pub non_zero: Resources,
    pub priority: i64,
    /// Whether it has pod affinity or anti-affinity terms (that other pods' cycles check).
    pub has_affinity: bool,
    /// Those terms, parsed once.
    pub terms: Option<super::plugins::PodTerms>,
    /// Its namespace and labels, copied once (affinity and spread look at them for every pod
    /// of every cycle).
    namespace: String,
    labels: serde_json::Map<String, Value>,
}

impl PodInfo {
    pub fn new(pod: Arc<Value>) -> PodInfo {
        let has_affinity = ["podAffinity", "podAntiAffinity"].iter().any(|k| {
            pod.pointer(&format!("/spec/affinity/{k}"))
                .is_some_and(|v| !v.is_null())
        });
        PodInfo {
            key: key_of(&pod).unwrap_or_default(),
            requests: resources::pod_requests(&pod, false),
            non_zero: resources::pod_requests(&pod, true),
            priority: priority(&pod),
            has_affinity,
            terms: has_affinity.then(|| super::plugins::PodTerms::of(&pod)),
            namespace: PodInfo::namespace_of(&pod).to_string(),
            labels: pod
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            pod,
        }
    }

    pub fn labels(&self) -> Option<&serde_json::Map<String, Value>> {
        Some(&self.labels)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn namespace_of(pod: &Value) -> &str {
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// `spec.priority` (0 when unset).
pub fn priority(pod: &Value) -> i64 {
    pod.pointer("/spec/priority")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// A host port a container asks for: (protocol, host IP, port).
pub type HostPort = (String, String, i64);

/// The host ports of a pod's containers.
pub fn host_ports(pod: &Value) -> Vec<HostPort> {
    let mut out = Vec::new();
    for field in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let port = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
                if port <= 0 {
                    continue;
                }
                let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                let ip = p
                    .get("hostIP")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("0.0.0.0");
                out.push((protocol.to_string(), ip.to_string(), port));
            }
        }
    }
    out
}

/// Whether two host ports collide (the same protocol and port on overlapping addresses).
pub fn ports_conflict(a: &HostPort, b: &HostPort) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
}

/// A node and the pods counted on it.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods are known on a node the informer has not delivered yet.
    pub node: Option<Arc<Value>>,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// How many of its pods have pod affinity terms.
    pub affinity_pods: usize,
    /// Parsed from the Node once, for the filters and scores: labels, taints, cordon, and the
    /// images it holds (normalised names, size).
    pub labels: serde_json::Map<String, Value>,
    pub taints: Vec<Value>,
    pub unschedulable: bool,
    pub images: Vec<(Vec<String>, i64)>,
}

impl NodeInfo {
    pub fn node(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.node.as_deref().unwrap_or(&NULL)
    }

    pub fn labels(&self) -> Option<&serde_json::Map<String, Value>> {
        Some(&self.labels)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)?.as_str()
    }

    pub fn add_pod(&mut self, info: Arc<PodInfo>) {
        self.requested.add(&info.requests);
        self.non_zero_requested.add(&info.non_zero);
        self.used_ports.extend(host_ports(&info.pod));
        self.affinity_pods += usize::from(info.has_affinity);
        self.pods.push(info);
    }

    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(at) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let info = self.pods.swap_remove(at);
        self.requested.sub(&info.requests);
        self.non_zero_requested.sub(&info.non_zero);
        self.affinity_pods -= usize::from(info.has_affinity);
        for port in host_ports(&info.pod) {
            if let Some(i) = self.used_ports.iter().position(|p| *p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        true
    }

    pub(crate) fn set_node(&mut self, node: Arc<Value>) {
        self.allocatable = resources::allocatable(&node);
        let get = |pointer: &str| node.pointer(pointer);
        self.labels = get("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        self.taints = get("/spec/taints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.unschedulable = get("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
        self.images = get("/status/images")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|image| {
                let names = image
                    .get("names")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(super::plugins::normalize_image)
                    .collect();
                (
                    names,
                    image.get("sizeBytes").and_then(Value::as_i64).unwrap_or(0),
                )
            })
            .collect();
        self.node = Some(node);
    }
}

/// Where a pod is counted, and whether only the scheduler thinks so yet.
#[derive(Clone, Debug)]
struct PodState {
    node: String,
    assumed: bool,
}

/// Every node and the pods counted on it. Node infos are shared copy-on-write with the
/// snapshots scheduling cycles take.
#[derive(Default)]
pub struct Cache {
    nodes: BTreeMap<String, Arc<NodeInfo>>,
    pods: HashMap<String, PodState>,
}

impl Cache {
    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        let entry = self.nodes.entry(name.to_string()).or_insert_with(|| {
            Arc::new(NodeInfo {
                name: name.to_string(),
                ..NodeInfo::default()
            })
        });
        Arc::make_mut(entry)
    }

    pub fn set_node(&mut self, node: Arc<Value>) {
        let Some(name) = node.pointer("/metadata/name").and_then(Value::as_str) else {
            return;
        };
        let name = name.to_string();
        self.node_mut(&name).set_node(node);
    }

    pub fn remove_node(&mut self, name: &str) {
        let keep_pods = self.nodes.get(name).is_some_and(|n| !n.pods.is_empty());
        if keep_pods {
            // Pods still bound to it stay counted until they go (upstream keeps a ghost node).
            let info = self.node_mut(name);
            info.node = None;
            info.allocatable = Resources::default();
        } else {
            self.nodes.remove(name);
        }
    }

    /// An assigned pod the informer delivered (added or changed): counted on its node,
    /// replacing an assumption.
    pub fn add_pod(&mut self, pod: Arc<Value>) {
        let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) else {
            return;
        };
        let node = node.to_string();
        let info = Arc::new(PodInfo::new(pod));
        let key = info.key.clone();
        if let Some(state) = self.pods.get(&key).cloned() {
            let old = self.node_mut(&state.node);
            old.remove_pod(&key);
            if old.node.is_none() && old.pods.is_empty() {
                self.nodes.remove(&state.node);
            }
        }
        self.node_mut(&node).add_pod(info);
        self.pods.insert(
            key,
            PodState {
                node,
                assumed: false,
            },
        );
    }

    pub fn remove_pod(&mut self, key: &str) {
        if let Some(state) = self.pods.remove(key) {
            let info = self.node_mut(&state.node);
            info.remove_pod(key);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(&state.node);
            }
        }
    }

    /// Count `pod` on `node` from the scheduling decision on.
    pub fn assume(&mut self, pod: Arc<Value>, node: &str) {
        let mut assumed = (*pod).clone();
        assumed["spec"]["nodeName"] = Value::String(node.to_string());
        let info = Arc::new(PodInfo::new(Arc::new(assumed)));
        let key = info.key.clone();
        self.remove_pod(&key);
        self.node_mut(node).add_pod(info);
        self.pods.insert(
            key,
            PodState {
                node: node.to_string(),
                assumed: true,
            },
        );
    }

    /// Drop an assumption whose binding failed (a confirmed pod stays).
    pub fn forget(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|s| s.assumed) {
            self.remove_pod(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// The nodes the informer has delivered, in name order.
    pub fn snapshot(&self) -> Vec<Arc<NodeInfo>> {
        self.nodes
            .values()
            .filter(|n| n.node.is_some())
            .cloned()
            .collect()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.values().filter(|n| n.node.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"}}}),
        )
    }

    fn pod(name: &str, node: Option<&str>) -> Arc<Value> {
        let mut p = json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "1"}}, "ports": [{"containerPort": 80, "hostPort": 8080}]}
        ]}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        Arc::new(p)
    }

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut cache = Cache::default();
        cache.set_node(node("n1"));
        let snapshot = cache.snapshot();
        cache.assume(pod("a", None), "n1");
        // The earlier snapshot is unchanged (copy on write).
        assert_eq!(snapshot[0].requested.milli_cpu, 0);
        let n1 = &cache.snapshot()[0];
        assert_eq!(n1.requested.milli_cpu, 1000);
        assert_eq!(n1.used_ports.len(), 1);
        assert!(cache.is_assumed("ns/a"));
        // The informer delivers the bound pod: counted once.
        cache.add_pod(pod("a", Some("n1")));
        assert!(!cache.is_assumed("ns/a"));
        assert_eq!(cache.snapshot()[0].requested.milli_cpu, 1000);
        cache.forget("ns/a");
        assert_eq!(cache.snapshot()[0].requested.milli_cpu, 1000);
        cache.assume(pod("b", None), "n1");
        cache.forget("ns/b");
        assert_eq!(cache.snapshot()[0].requested.milli_cpu, 1000);
        cache.remove_pod("ns/a");
        assert_eq!(cache.snapshot()[0].requested.milli_cpu, 0);
        assert!(cache.snapshot()[0].used_ports.is_empty());
    }

    #[test]
    fn pods_before_their_node_and_after_it_goes() {
        let mut cache = Cache::default();
        cache.add_pod(pod("a", Some("n1")));
        assert_eq!(cache.node_count(), 0);
        cache.set_node(node("n1"));
        assert_eq!(cache.snapshot()[0].pods.len(), 1);
        cache.remove_node("n1");
        assert_eq!(cache.node_count(), 0);
        cache.remove_pod("ns/a");
        assert!(cache.nodes.is_empty());
    }

    #[test]
    fn host_ports_conflict_on_overlapping_addresses() {
        let any = ("TCP".to_string(), "0.0.0.0".to_string(), 80);
        let one = ("TCP".to_string(), "10.0.0.1".to_string(), 80);
        let two = ("TCP".to_string(), "10.0.0.2".to_string(), 80);
        let udp = ("UDP".to_string(), "0.0.0.0".to_string(), 80);
        assert!(ports_conflict(&any, &one));
        assert!(!ports_conflict(&one, &two));
        assert!(!ports_conflict(&any, &udp));
    }
}
