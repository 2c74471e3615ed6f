//! Simulated nodes (as kwok's): Node objects with a Lease and a heartbeat, whose pods "run" by their status alone. One API connection serves them all; each write is made as its node (`system:node:<name>` in `system:nodes`, by impersonation), so the Node authorizer and NodeRestriction apply to it exactly as to a kubelet. Per node the simulator keeps a few words; one timer heap drives every node's registration, lease renewal and status heartbeat, and one work queue every pod.

pub mod objects;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use k1s_controllers::client::{
    self, Client, DeleteParams, ListParams, PatchType, Resource, WatchEvent, WatchParams,
};
use k1s_controllers::controller::{self, Action, Reconciler};
use k1s_controllers::informer::{Event, Informer, Informers, key_of, split_key};
use k1s_controllers::nodeipam::Cidr;
use k1s_controllers::queue::{RateLimiter, WorkQueue};
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use objects::{Capacity, NodeIdentity, PodIps};

/// The group every node identity is in.
const NODES_GROUP: &str = "system:nodes";
/// The ClusterRole (and its binding) that lets a simulator act as its nodes.
pub const SIMULATOR_ROLE: &str = "k1s:node-simulator";
/// Zones the nodes are spread over, in turn.
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// Where InternalIPs come from (one per node, never the .0 or .255 of a /24).
const NODE_IP_BASE: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 0);
const NODE_IP_COUNT: u32 = 1 << 20;
/// Node writes (registration, lease, heartbeat) in flight at once.
const MAX_NODE_WRITES: usize = 64;
/// Pod workers.
const POD_WORKERS: usize = 32;
/// How long to wait before trying again to register a node, or for a node's pod CIDR.
const RETRY: Duration = Duration::from_secs(1);

/// What can stop the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server's `/version` could not be read.
    #[error("cannot read the server version")]
    Version(#[source] client::Error),
    /// The RBAC grant for the simulator could not be written.
    #[error("cannot grant {user} the right to act as its nodes ({what})")]
    Grant {
        user: String,
        what: &'static str,
        #[source]
        source: client::Error,
    },
    /// No InternalIP is left for a node.
    #[error("no node ip left in {NODE_IP_BASE}/12 for {0} nodes")]
    NoNodeIp(usize),
    /// A pod's status or deletion could not be written.
    #[error("cannot {what} pod {key} as node {node}")]
    Pod {
        what: &'static str,
        key: String,
        node: String,
        #[source]
        source: client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the simulated nodes behave.
#[derive(Clone, Debug)]
pub struct Config {
    /// The nodes' names.
    pub names: Vec<String>,
    pub capacity: Capacity,
    /// How often each node renews its Lease (the kubelet's 10 s by default).
    pub lease_period: Duration,
    /// How often each node re-posts its status when nothing changed (the kubelet's
    /// `nodeStatusReportFrequency`, 5 minutes).
    pub status_report_period: Duration,
    /// How long after a pod is bound to a node it is Running.
    pub pod_start_delay: Duration,
    /// How long after a pod is marked for deletion its node finishes the deletion.
    pub pod_delete_delay: Duration,
}

impl Config {
    pub const DEFAULT_LEASE_PERIOD: Duration = Duration::from_secs(10);
    pub const DEFAULT_STATUS_REPORT_PERIOD: Duration = Duration::from_secs(300);
    pub const DEFAULT_POD_START_DELAY: Duration = Duration::from_millis(500);
    pub const DEFAULT_POD_DELETE_DELAY: Duration = Duration::from_secs(1);

    /// `count` nodes named `<prefix>0`, `<prefix>1`, ..., with the default behaviour.
    pub fn new(prefix: &str, count: usize) -> Config {
        Config {
            names: (0..count).map(|i| format!("{prefix}{i}")).collect(),
            capacity: Capacity::default(),
            lease_period: Self::DEFAULT_LEASE_PERIOD,
            status_report_period: Self::DEFAULT_STATUS_REPORT_PERIOD,
            pod_start_delay: Self::DEFAULT_POD_START_DELAY,
            pod_delete_delay: Self::DEFAULT_POD_DELETE_DELAY,
        }
    }
}

fn node_user(name: &str) -> String {
    format!("system:node:{name}")
}

fn nodes() -> Resource {
    Resource::core("nodes", false)
}

fn pods() -> Resource {
    Resource::core("pods", true)
}

fn leases() -> Resource {
    Resource::new("coordination.k8s.io", "v1", "leases", true)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Let `user` act as the nodes `names` (and read nodes and pods): a ClusterRole allowing
/// `impersonate` on exactly those users and on the group `system:nodes`, bound to `user`.
/// Names already granted stay. RBAC has no prefix match on resource names, so the names are
/// listed; an identity bound to this role can act as these nodes and no other user.
pub async fn grant(admin: &Client, user: &str, names: &[String]) -> Result<()> {
    let err = |what: &'static str| {
        let user = user.to_string();
        move |source| Error::Grant { user, what, source }
    };
    let roles = Resource::new("rbac.authorization.k8s.io", "v1", "clusterroles", false);
    let bindings = Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        false,
    );
    let existing = match admin.get(&roles, None, SIMULATOR_ROLE).await {
        Ok(role) => Some(role),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(err("read role")(e)),
    };
    let mut users: Vec<String> = existing
        .as_ref()
        .and_then(|r| r.pointer("/rules/0/resourceNames"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let known: HashSet<String> = users.iter().cloned().collect();
    users.extend(
        names
            .iter()
            .map(|n| node_user(n))
            .filter(|u| !known.contains(u)),
    );
    let mut role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": SIMULATOR_ROLE},
        "rules": [
            {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": users},
            {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": [NODES_GROUP]},
            {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["get", "list", "watch"]},
        ],
    });
    match existing {
        Some(old) => {
            role["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            admin
                .update(&roles, None, SIMULATOR_ROLE, &role)
                .await
                .map_err(err("update role"))?;
        }
        None => {
            admin
                .create(&roles, None, &role)
                .await
                .map_err(err("create role"))?;
        }
    }
    let binding_name = format!("{SIMULATOR_ROLE}:{user}");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": binding_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SIMULATOR_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    });
    match admin.create(&bindings, None, &binding).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(err("create binding")(e)),
    }
}

/// Wait (a few seconds at most) until the server's authorizer has seen a [`grant`]: until
/// `client` may list nodes.
pub async fn wait_for_grant(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let params = k1s_controllers::client::ListParams {
        limit: Some(1),
        ..Default::default()
    };
    while Instant::now() < deadline {
        match client.list(&nodes(), None, &params).await {
            Err(e) if e.code() == Some(403) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return,
        }
    }
}

/// One simulated node: what is needed to write as it.
#[derive(Debug)]
struct SimNode {
    name: Box<str>,
    ip: Ipv4Addr,
}

/// What a node's timer fires for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Beat {
    Register,
    Lease { first: bool },
    Status,
}

/// What a pod is waiting for, and from when on it may happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Start(Instant),
    Delete(Instant),
}

struct Simulator {
    client: Client,
    config: Config,
    kubelet_version: String,
    nodes: Vec<SimNode>,
    index: Arc<HashMap<Box<str>, u32>>,
    /// What the simulator knows of its nodes' Node objects, by node index.
    node_state: Mutex<Vec<NodeState>>,
    pods: Informer,
    queue: WorkQueue,
    /// Pod IPs handed out, per node (created when the node's first pod starts).
    pod_ips: Mutex<HashMap<u32, PodIps>>,
    /// The IP each pod on our nodes holds, by pod key.
    assigned: Mutex<HashMap<String, (u32, String)>>,
    /// Pods waiting for their start or the end of their deletion.
    pending: Mutex<HashMap<String, Pending>>,
}

/// Run the nodes of `config` against the server `client` reaches until `shutdown`. The
/// client's identity must be allowed to impersonate the nodes (see [`grant`]) and to read
/// nodes and pods.
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    let version = client.get_path("/version").await.map_err(Error::Version)?;
    let kubelet_version = version["gitVersion"]
        .as_str()
        .unwrap_or("v0.0.0")
        .to_string();
    let wanted: HashSet<&str> = config.names.iter().map(String::as_str).collect();
    let listed = loop {
        match list_nodes(&client, &wanted).await {
            Ok(listed) => break listed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list nodes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    };
    let sim_nodes =
        assign_node_ips(&config.names, &listed.ips).ok_or(Error::NoNodeIp(config.names.len()))?;
    let index: Arc<HashMap<Box<str>, u32>> = Arc::new(
        sim_nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i as u32))
            .collect(),
    );
    let node_state = sim_nodes
        .iter()
        .map(|n| listed.ours.get(&*n.name).copied().unwrap_or_default())
        .collect();
    let informers = Informers::new(client.clone(), shutdown.clone());
    let pods = informers.informer(&pods());
    let queue = WorkQueue::new("simulated-pods", RateLimiter::default());
    let sim = Arc::new(Simulator {
        client,
        kubelet_version,
        nodes: sim_nodes,
        index: index.clone(),
        node_state: Mutex::new(node_state),
        pods: pods.clone(),
        queue: queue.clone(),
        pod_ips: Mutex::default(),
        assigned: Mutex::default(),
        pending: Mutex::default(),
        config,
    });
    {
        let sim = sim.clone();
        pods.add_handler(move |event| sim.on_pod(event));
    }
    tracing::info!(
        nodes = sim.nodes.len(),
        lease_period = ?sim.config.lease_period,
        "simulated nodes starting"
    );
    let watch = tokio::spawn(
        sim.clone()
            .watch_nodes(listed.resource_version, shutdown.clone()),
    );
    let beats = tokio::spawn(sim.clone().heartbeats(shutdown.clone()));
    if pods.wait_synced(&shutdown).await {
        controller::run_workers(sim.clone(), queue, POD_WORKERS, shutdown.clone()).await;
    }
    let _ = beats.await;
    let _ = watch.await;
    informers.stopped().await;
    Ok(())
}

/// What the simulator keeps of one of its Node objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NodeState {
    exists: bool,
    pod_cidr: Option<Cidr>,
}

impl NodeState {
    fn of(node: &Value) -> NodeState {
        NodeState {
            exists: true,
            pod_cidr: objects::pod_cidr(node),
        }
    }
}

/// The nodes as first listed: every node's InternalIP, our nodes' state, and the version to
/// watch from.
#[derive(Debug, Default)]
struct Listed {
    ips: HashMap<String, Ipv4Addr>,
    ours: HashMap<String, NodeState>,
    resource_version: String,
}

/// List the nodes a page at a time, keeping only what the simulator needs (so 5,000 Node
/// objects never sit in memory at once).
async fn list_nodes(client: &Client, wanted: &HashSet<&str>) -> Result<Listed, Box<client::Error>> {
    let mut listed = Listed::default();
    let mut params = ListParams {
        limit: Some(500),
        ..Default::default()
    };
    loop {
        let page = client.list(&nodes(), None, &params).await?;
        for node in page["items"].as_array().into_iter().flatten() {
            let name = node
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some(ip) = objects::internal_ip(node).and_then(|ip| ip.parse().ok()) {
                listed.ips.insert(name.to_string(), ip);
            }
            if wanted.contains(name) {
                listed.ours.insert(name.to_string(), NodeState::of(node));
            }
        }
        let meta = &page["metadata"];
        listed.resource_version = meta["resourceVersion"].as_str().unwrap_or("").to_string();
        match meta["continue"].as_str().filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token.to_string()),
            None => return Ok(listed),
        }
    }
}

/// InternalIPs for `names`: a node that exists keeps its own; the others get free addresses
/// of 172.16.0.0/12 in turn. `existing` is every node's InternalIP.
/// `None` when the range runs out.
fn assign_node_ips(names: &[String], existing: &HashMap<String, Ipv4Addr>) -> Option<Vec<SimNode>> {
    let mut used: HashSet<Ipv4Addr> = existing.values().copied().collect();
    let base = u32::from(NODE_IP_BASE);
    let mut offset = 0u32;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let ip = match existing.get(name) {
            Some(ip) => *ip,
            None => loop {
                offset += 1;
                if offset >= NODE_IP_COUNT {
                    return None;
                }
                let ip = Ipv4Addr::from(base + offset);
                let last = ip.octets()[3];
                if last != 0 && last != 255 && used.insert(ip) {
                    break ip;
                }
            },
        };
        out.push(SimNode {
            name: name.as_str().into(),
            ip,
        });
    }
    Some(out)
}

impl Simulator {
    fn as_node(&self, i: u32) -> Client {
        let name = &self.nodes[i as usize].name;
        self.client.impersonating(&node_user(name), &[NODES_GROUP])
    }

    fn node_state(&self, i: u32) -> NodeState {
        self.node_state.lock()[i as usize]
    }

    fn set_node_state(&self, node: &Value, state: NodeState) {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(i) = self.index.get(name) {
            self.node_state.lock()[*i as usize] = state;
        }
    }

    /// Keep `node_state` current: watch the nodes from `resource_version`, list again when
    /// it is gone.
    async fn watch_nodes(
        self: Arc<Self>,
        mut resource_version: String,
        shutdown: CancellationToken,
    ) {
        let wanted: HashSet<&str> = self.nodes.iter().map(|n| &*n.name).collect();
        loop {
            if resource_version.is_empty() {
                match tokio::select! {
                    r = list_nodes(&self.client, &wanted) => r,
                    _ = shutdown.cancelled() => return,
                } {
                    Ok(listed) => {
                        let mut state = self.node_state.lock();
                        for (n, slot) in self.nodes.iter().zip(state.iter_mut()) {
                            *slot = listed.ours.get(&*n.name).copied().unwrap_or_default();
                        }
                        resource_version = listed.resource_version;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list nodes; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY) => {}
                            _ = shutdown.cancelled() => return,
                        }
                        continue;
                    }
                }
            }
            let params = WatchParams {
                resource_version: Some(resource_version.clone()),
                allow_bookmarks: true,
                timeout_seconds: Some(rand::rng().random_range(300..600)),
                ..Default::default()
            };
            let resource = nodes();
            let mut stream = match tokio::select! {
                r = self.client.watch(&resource, None, &params) => r,
                _ = shutdown.cancelled() => return,
            } {
                Ok(stream) => stream,
                Err(e) => {
                    if e.is_gone() {
                        resource_version.clear();
                    } else {
                        tracing::warn!(error = %e, "cannot watch nodes; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                    continue;
                }
            };
            loop {
                let event = tokio::select! {
                    e = stream.next() => e,
                    _ = shutdown.cancelled() => return,
                };
                let advance = |object: &Value, rv: &mut String| {
                    if let Some(v) = object
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                    {
                        *rv = v.to_string();
                    }
                };
                match event {
                    Some(Ok(WatchEvent::Added(node) | WatchEvent::Modified(node))) => {
                        advance(&node, &mut resource_version);
                        self.set_node_state(&node, NodeState::of(&node));
                    }
                    Some(Ok(WatchEvent::Deleted(node))) => {
                        advance(&node, &mut resource_version);
                        self.set_node_state(&node, NodeState::default());
                    }
                    Some(Ok(WatchEvent::Bookmark {
                        resource_version: rv,
                        ..
                    })) => {
                        if !rv.is_empty() {
                            resource_version = rv;
                        }
                    }
                    Some(Ok(WatchEvent::Error(status))) => {
                        if status.code == 410 {
                            resource_version.clear();
                        } else {
                            tokio::time::sleep(RETRY).await;
                        }
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "node watch failed; resuming");
                        tokio::time::sleep(RETRY).await;
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    fn node_of(&self, pod: &Value) -> Option<u32> {
        let name = pod.pointer("/spec/nodeName").and_then(Value::as_str)?;
        self.index.get(name).copied()
    }

    /// The pod informer's handler: queue pods on our nodes that need a start or the end of
    /// their deletion, each after its delay; forget pods that are gone.
    fn on_pod(&self, event: Event<'_>) {
        match event {
            Event::Added(pod) | Event::Updated { new: pod, .. } => {
                if self.node_of(pod).is_none() {
                    return;
                }
                let Some(key) = key_of(pod) else { return };
                let now = Instant::now();
                let at = {
                    let mut pending = self.pending.lock();
                    if objects::terminating(pod) {
                        match pending.get(&key) {
                            Some(Pending::Delete(at)) => *at,
                            _ => {
                                let at = now + self.config.pod_delete_delay;
                                pending.insert(key.clone(), Pending::Delete(at));
                                at
                            }
                        }
                    } else if objects::finished(pod) {
                        return;
                    } else if objects::running(pod) {
                        if self.assigned.lock().contains_key(&key) {
                            return;
                        }
                        // Running from before this simulator started: adopt its IP.
                        now
                    } else {
                        match pending.get(&key) {
                            Some(Pending::Start(at) | Pending::Delete(at)) => *at,
                            None => {
                                let at = now + self.config.pod_start_delay;
                                pending.insert(key.clone(), Pending::Start(at));
                                at
                            }
                        }
                    }
                };
                self.queue
                    .add_after(&key, at.saturating_duration_since(now));
            }
            Event::Deleted(pod) => {
                let Some(key) = key_of(pod) else { return };
                self.pending.lock().remove(&key);
                self.release_ip(&key);
            }
        }
    }

    fn release_ip(&self, key: &str) {
        if let Some((node, ip)) = self.assigned.lock().remove(key)
            && let Some(ips) = self.pod_ips.lock().get_mut(&node)
        {
            ips.release(&ip);
        }
    }

    /// The pod IP for `key` on node `i`: the one it holds, else the next free one.
    fn pod_ip(&self, key: &str, i: u32, cidr: Cidr, pod: &Value) -> Option<String> {
        let mut assigned = self.assigned.lock();
        let mut all = self.pod_ips.lock();
        let ips = all.entry(i).or_insert_with(|| PodIps::new(cidr));
        if ips.cidr() != cidr {
            *ips = PodIps::new(cidr);
        }
        if let Some((node, ip)) = assigned.get(key)
            && *node == i
        {
            return Some(ip.clone());
        }
        let current = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .filter(|ip| ips.occupy(ip))
            .map(str::to_string);
        let ip = current.or_else(|| ips.allocate())?;
        assigned.insert(key.to_string(), (i, ip.clone()));
        Some(ip)
    }

    /// Wait for `pending`'s time; `Some` while it has not come.
    fn not_yet(&self, key: &str, want_delete: bool) -> Option<Duration> {
        let at = match self.pending.lock().get(key) {
            Some(Pending::Delete(at)) if want_delete => *at,
            Some(Pending::Start(at)) if !want_delete => *at,
            _ => return None,
        };
        let left = at.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    async fn sync_pod(&self, key: &str) -> Result<Action> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(Action::Done);
        };
        let Some(i) = self.node_of(&pod) else {
            return Ok(Action::Done);
        };
        let node_name = self.nodes[i as usize].name.to_string();
        let (namespace, name) = split_key(key);
        let pod_err = |what: &'static str| {
            let (key, node) = (key.to_string(), node_name.clone());
            move |source| Error::Pod {
                what,
                key,
                node,
                source,
            }
        };
        if objects::terminating(&pod) {
            if let Some(left) = self.not_yet(key, true) {
                return Ok(Action::RequeueAfter(left));
            }
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: pod
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..Default::default()
            };
            match self
                .as_node(i)
                .delete(&pods(), Some(namespace), name, &params)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(pod_err("delete")(e)),
            }
            self.pending.lock().remove(key);
            return Ok(Action::Done);
        }
        if objects::finished(&pod) {
            self.pending.lock().remove(key);
            return Ok(Action::Done);
        }
        let Some(cidr) = self.node_state(i).pod_cidr else {
            // No pod CIDR yet: the node IPAM controller assigns one shortly.
            return Ok(Action::RequeueAfter(RETRY));
        };
        if objects::running(&pod) {
            self.pod_ip(key, i, cidr, &pod);
            self.pending.lock().remove(key);
            return Ok(Action::Done);
        }
        if let Some(left) = self.not_yet(key, false) {
            return Ok(Action::RequeueAfter(left));
        }
        let Some(pod_ip) = self.pod_ip(key, i, cidr, &pod) else {
            tracing::warn!(pod = key, node = %node_name, %cidr, "no pod ip left on the node");
            return Ok(Action::RequeueAfter(RETRY * 5));
        };
        let host_ip = self.nodes[i as usize].ip.to_string();
        let status = objects::pod_status(&pod, &host_ip, &pod_ip, &objects::timestamp(now()));
        let patch = json!({"metadata": {"uid": pod["metadata"]["uid"]}, "status": status});
        match self
            .as_node(i)
            .patch_subresource(
                &pods(),
                Some(namespace),
                name,
                "status",
                PatchType::Merge,
                &patch,
            )
            .await
        {
            Ok(_) => {
                self.pending.lock().remove(key);
                Ok(Action::Done)
            }
            Err(e) if e.is_not_found() => Ok(Action::Done),
            Err(e) => Err(pod_err("update the status of")(e)),
        }
    }

    /// Every node's registration, lease renewals and status heartbeats, from one timer heap,
    /// with at most `MAX_NODE_WRITES` writes in flight.
    async fn heartbeats(self: Arc<Self>, shutdown: CancellationToken) {
        let start = Instant::now();
        let mut heap: BinaryHeap<Reverse<(Instant, u32, Beat)>> = (0..self.nodes.len() as u32)
            .map(|i| Reverse((start, i, Beat::Register)))
            .collect();
        let mut inflight = FuturesUnordered::new();
        loop {
            let now = Instant::now();
            while inflight.len() < MAX_NODE_WRITES
                && heap.peek().is_some_and(|Reverse((at, ..))| *at <= now)
            {
                let Some(Reverse((_, i, beat))) = heap.pop() else {
                    break;
                };
                let sim = self.clone();
                inflight.push(async move { (i, sim.beat(i, beat).await) });
            }
            let next = heap.peek().map(|Reverse((at, ..))| *at);
            let room = inflight.len() < MAX_NODE_WRITES;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some((i, again)) = inflight.next(), if !inflight.is_empty() => {
                    heap.extend(again.into_iter().map(|(at, beat)| Reverse((at, i, beat))));
                }
                _ = tokio::time::sleep_until(next.unwrap_or(now + Duration::from_secs(3600))), if room => {}
            }
        }
    }

    /// One timer firing for node `i`; returns what to schedule next.
    async fn beat(&self, i: u32, beat: Beat) -> Vec<(Instant, Beat)> {
        let now = Instant::now();
        let name = &*self.nodes[i as usize].name;
        let node = self.as_node(i);
        match beat {
            Beat::Register => {
                if self.node_state(i).exists {
                    // Registered before (a restart): post a fresh status right away.
                    return vec![(now, Beat::Lease { first: true }), (now, Beat::Status)];
                }
                let ip = self.nodes[i as usize].ip.to_string();
                let object = objects::node(
                    &NodeIdentity {
                        name,
                        internal_ip: &ip,
                        zone: ZONES[i as usize % ZONES.len()],
                        capacity: &self.config.capacity,
                        kubelet_version: &self.kubelet_version,
                    },
                    &objects::timestamp(now_utc()),
                );
                match node.create(&nodes(), None, &object).await {
                    Ok(_) => {
                        tracing::debug!(node = name, "simulated node registered");
                    }
                    Err(e) if e.is_conflict() => {}
                    Err(e) => {
                        tracing::warn!(node = name, error = %e, "cannot register the simulated node");
                        return vec![(now + RETRY, Beat::Register)];
                    }
                }
                vec![
                    (now, Beat::Lease { first: true }),
                    (now + self.config.status_report_period, Beat::Status),
                ]
            }
            Beat::Lease { first } => {
                let renew = objects::micro_timestamp(now_utc());
                let patch = json!({"spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": objects::LEASE_DURATION_SECONDS,
                    "renewTime": renew,
                }});
                let lease = Some("kube-node-lease");
                let result = match node
                    .patch(&leases(), lease, name, PatchType::Merge, &patch)
                    .await
                {
                    Err(e) if e.is_not_found() => {
                        let uid = node
                            .get(&nodes(), None, name)
                            .await
                            .ok()
                            .and_then(|n| n.pointer("/metadata/uid").cloned());
                        let object =
                            objects::lease(name, uid.as_ref().and_then(Value::as_str), &renew);
                        node.create(&leases(), lease, &object).await.map(drop)
                    }
                    other => other.map(drop),
                };
                if let Err(e) = result {
                    tracing::warn!(node = name, error = %e, "cannot renew the simulated node's lease");
                    // The kubelet retries a failed renewal at 200 ms doubling to 7 s.
                    return vec![(now + RETRY, Beat::Lease { first })];
                }
                let period = self.config.lease_period;
                let next = if first {
                    // Spread the nodes' renewals over the period.
                    period.mul_f64(rand::rng().random_range(0.5..1.5))
                } else {
                    period
                };
                vec![(now + next, Beat::Lease { first: false })]
            }
            Beat::Status => {
                let patch = objects::node_heartbeat(&objects::timestamp(now_utc()));
                match node
                    .patch_subresource(&nodes(), None, name, "status", PatchType::Strategic, &patch)
                    .await
                {
                    Ok(_) => vec![(now + self.config.status_report_period, Beat::Status)],
                    // Deleted by someone: register again, as a kubelet does when it restarts.
                    Err(e) if e.is_not_found() => vec![(now, Beat::Register)],
                    Err(e) => {
                        tracing::warn!(node = name, error = %e, "cannot post the simulated node's status");
                        vec![(now + RETRY, Beat::Status)]
                    }
                }
            }
        }
    }
}

fn now_utc() -> OffsetDateTime {
    now()
}

impl Reconciler for Simulator {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action> {
        self.sync_pod(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ips_keep_existing_and_skip_used() {
        let existing: HashMap<String, Ipv4Addr> = [
            ("sim-1".to_string(), Ipv4Addr::new(172, 16, 0, 9)),
            ("other".to_string(), Ipv4Addr::new(172, 16, 0, 1)),
        ]
        .into();
        let names: Vec<String> = (0..3).map(|i| format!("sim-{i}")).collect();
        let nodes = assign_node_ips(&names, &existing).unwrap();
        let ips: Vec<String> = nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(ips, ["172.16.0.2", "172.16.0.9", "172.16.0.3"]);
        let many: Vec<String> = (0..300).map(|i| format!("n{i}")).collect();
        let nodes = assign_node_ips(&many, &HashMap::new()).unwrap();
        assert_eq!(nodes[253].ip.to_string(), "172.16.0.254");
        assert_eq!(nodes[254].ip.to_string(), "172.16.1.1");
    }
}
