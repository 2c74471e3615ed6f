//! The node IPAM controller's range allocator (upstream's node-ipam-controller with `--allocate-node-cidrs`): every Node without `spec.podCIDR` gets the next free block of the cluster CIDR, blocks of existing nodes are remembered at start and freed when their node goes, and a `CIDRNotAvailable` event is recorded on a node when none is left.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client, PatchType, Resource};
use crate::controller::{self, Action, Reconciler};
use crate::informer::{Event, Informer, Informers};
use crate::queue::{RateLimiter, WorkQueue};

/// k1s's default cluster CIDR (k3s's).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// kube-controller-manager's defaults: `--node-cidr-mask-size` 24 for IPv4, 64 for IPv6.
pub const DEFAULT_MASK_SIZE_V4: u8 = 24;
pub const DEFAULT_MASK_SIZE_V6: u8 = 64;
/// Upstream's limit: a bitmap of at most 2^16 blocks for IPv6 (IPv4 has no such limit).
const MAX_V6_DIFF: u8 = 16;
/// Upstream's `cidrUpdateWorkers`.
const WORKERS: usize = 30;
/// The component upstream's allocator records its events as.
const COMPONENT: &str = "cidrAllocator";

/// Why a node's CIDR could not be assigned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every block of the cluster CIDR is taken.
    #[error(
        "failed to allocate cidr from cluster cidr at idx:0: CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
    )]
    Exhausted,
    /// Patching the node's `spec.podCIDRs` failed.
    #[error("cannot set the pod cidr {cidr} of node {node}")]
    Patch {
        node: String,
        cidr: String,
        #[source]
        source: client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An IP network: the address as a number, its prefix length, and whether it is IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: u128,
    pub prefix: u8,
    pub v6: bool,
}

impl Cidr {
    /// Parse `a.b.c.d/n` or `x::/n`; the address is masked to the prefix.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (ip, prefix) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {text}"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR address: {text}"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("invalid CIDR address: {text}"))?;
        let (addr, v6) = match ip {
            IpAddr::V4(v4) => (u32::from(v4) as u128, false),
            IpAddr::V6(v6) => (u128::from(v6), true),
        };
        let cidr = Cidr { addr, prefix, v6 };
        if prefix > cidr.bits() {
            return Err(format!("invalid CIDR address: {text}"));
        }
        Ok(Cidr {
            addr: addr & cidr.mask(),
            ..cidr
        })
    }

    /// 32 or 128.
    pub fn bits(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    /// Every bit of an address of this family.
    fn full(&self) -> u128 {
        if self.v6 { u128::MAX } else { u32::MAX as u128 }
    }

    fn mask_of(&self, prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            (self.full() << (self.bits() - prefix)) & self.full()
        }
    }

    fn mask(&self) -> u128 {
        self.mask_of(self.prefix)
    }

    /// How many addresses the network holds (saturating for a whole IPv6 space).
    pub fn size(&self) -> u128 {
        1u128
            .checked_shl(u32::from(self.bits() - self.prefix))
            .unwrap_or(u128::MAX)
    }

    /// The last address of the network.
    pub fn last(&self) -> u128 {
        self.addr | (!self.mask() & self.full())
    }

    pub fn contains(&self, addr: u128) -> bool {
        addr & self.mask() == self.addr
    }

    /// The address `addr` in text.
    pub fn format_addr(&self, addr: u128) -> String {
        if self.v6 {
            std::net::Ipv6Addr::from(addr).to_string()
        } else {
            std::net::Ipv4Addr::from(addr as u32).to_string()
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.format_addr(self.addr), self.prefix)
    }
}

/// The allocator's settings: the cluster CIDR (`--cluster-cidr`) and the size of each node's
/// block (`--node-cidr-mask-size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub cluster_cidr: Cidr,
    pub node_mask_size: u8,
}

impl Config {
    /// Validate as kube-controller-manager does at start.
    pub fn new(cluster_cidr: &str, node_mask_size: Option<u8>) -> Result<Config, String> {
        if cluster_cidr.contains(',') {
            return Err(format!(
                "--cluster-cidr {cluster_cidr}: dual-stack cluster CIDRs are not supported yet"
            ));
        }
        let cluster = Cidr::parse(cluster_cidr)?;
        let mask = node_mask_size.unwrap_or(if cluster.v6 {
            DEFAULT_MASK_SIZE_V6
        } else {
            DEFAULT_MASK_SIZE_V4
        });
        if mask < cluster.prefix || mask > cluster.bits() {
            return Err(format!(
                "--node-cidr-mask-size {mask} must be between the cluster CIDR's prefix length {} and {}",
                cluster.prefix,
                cluster.bits()
            ));
        }
        if cluster.v6 && mask - cluster.prefix > MAX_V6_DIFF {
            return Err("New CIDR set failed; the node CIDR size is too big".into());
        }
        if !cluster.v6 && mask - cluster.prefix > 24 {
            return Err(format!(
                "--node-cidr-mask-size {mask} splits {cluster} into more than 2^24 blocks"
            ));
        }
        Ok(Config {
            cluster_cidr: cluster,
            node_mask_size: mask,
        })
    }
}

/// Upstream's `CidrSet`: which node-sized blocks of the cluster CIDR are used, and where the
/// next search for a free one starts (after the last one handed out, wrapping around).
#[derive(Debug)]
pub struct CidrSet {
    cluster: Cidr,
    node_mask: u8,
    max: usize,
    allocated: usize,
    next_candidate: usize,
    used: Vec<u64>,
}

impl CidrSet {
    pub fn new(config: Config) -> CidrSet {
        let max = 1usize << (config.node_mask_size - config.cluster_cidr.prefix);
        CidrSet {
            cluster: config.cluster_cidr,
            node_mask: config.node_mask_size,
            max,
            allocated: 0,
            next_candidate: 0,
            used: vec![0; max.div_ceil(64)],
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, on: bool) {
        if self.bit(i) == on {
            return;
        }
        if on {
            self.used[i / 64] |= 1 << (i % 64);
            self.allocated += 1;
        } else {
            self.used[i / 64] &= !(1 << (i % 64));
            self.allocated -= 1;
        }
    }

    fn block(&self, index: usize) -> Cidr {
        Cidr {
            addr: self.cluster.addr | ((index as u128) << (self.cluster.bits() - self.node_mask)),
            prefix: self.node_mask,
            v6: self.cluster.v6,
        }
    }

    fn index_of(&self, addr: u128) -> usize {
        ((addr ^ self.cluster.addr) >> (self.cluster.bits() - self.node_mask)) as usize
    }

    /// The next free block, marked used; `None` when every block is.
    pub fn allocate_next(&mut self) -> Option<Cidr> {
        if self.allocated == self.max {
            return None;
        }
        let mut candidate = self.next_candidate;
        for _ in 0..self.max {
            if !self.bit(candidate) {
                break;
            }
            candidate = (candidate + 1) % self.max;
        }
        self.next_candidate = (candidate + 1) % self.max;
        self.set(candidate, true);
        Some(self.block(candidate))
    }

    /// The blocks `cidr` covers (upstream's `getBeginningAndEndIndices`).
    fn range(&self, cidr: &str) -> Result<(usize, usize), String> {
        let cidr = Cidr::parse(cidr)?;
        if cidr.v6 != self.cluster.v6
            || (!self.cluster.contains(cidr.addr) && !cidr.contains(self.cluster.addr))
        {
            return Err(format!(
                "cidr {cidr} is out the range of cluster cidr {}",
                self.cluster
            ));
        }
        if cidr.prefix <= self.cluster.prefix {
            return Ok((0, self.max - 1));
        }
        Ok((self.index_of(cidr.addr), self.index_of(cidr.last())))
    }

    /// Mark the blocks `cidr` covers as used (it may have been already).
    pub fn occupy(&mut self, cidr: &str) -> Result<(), String> {
        let (begin, end) = self.range(cidr)?;
        (begin..=end).for_each(|i| self.set(i, true));
        Ok(())
    }

    /// Mark the blocks `cidr` covers as free.
    pub fn release(&mut self, cidr: &str) -> Result<(), String> {
        let (begin, end) = self.range(cidr)?;
        (begin..=end).for_each(|i| self.set(i, false));
        Ok(())
    }

    /// How many blocks are used.
    pub fn allocated(&self) -> usize {
        self.allocated
    }
}

fn nodes() -> Resource {
    Resource::core("nodes", false)
}

fn pod_cidrs(node: &Value) -> Vec<String> {
    let list: Vec<String> = node
        .pointer("/spec/podCIDRs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if !list.is_empty() {
        return list;
    }
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(|c| vec![c.to_string()])
        .unwrap_or_default()
}

fn name_of(node: &Value) -> Option<&str> {
    node.pointer("/metadata/name").and_then(Value::as_str)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn timestamp(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// What the allocator knows: the blocks in use, the block it chose for each node it is
/// assigning one to, and the event it last recorded on each node (to count repeats).
#[derive(Debug)]
struct State {
    set: CidrSet,
    reserved: HashMap<String, Cidr>,
    events: HashMap<(String, &'static str), (String, u64)>,
}

impl State {
    fn occupy(&mut self, node: &Value) {
        let name = name_of(node).unwrap_or_default();
        for cidr in pod_cidrs(node) {
            if let Err(e) = self.set.occupy(&cidr) {
                tracing::error!(controller = "node-ipam", node = name, cidr, error = %e, "cannot occupy the node's pod cidr");
            }
        }
    }

    fn release(&mut self, node: &Value) {
        let name = name_of(node).unwrap_or_default();
        for cidr in pod_cidrs(node) {
            if let Err(e) = self.set.release(&cidr) {
                tracing::warn!(controller = "node-ipam", node = name, cidr, error = %e, "cannot release the node's pod cidr");
            }
        }
        if let Some(cidr) = self.reserved.remove(name) {
            let _ = self.set.release(&cidr.to_string());
        }
        self.events.retain(|(node, _), _| node != name);
    }
}

/// The node IPAM controller.
pub struct NodeIpamController {
    client: Client,
    nodes: Informer,
    queue: WorkQueue,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for NodeIpamController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIpamController").finish_non_exhaustive()
    }
}

impl NodeIpamController {
    pub fn new(client: Client, informers: &Informers, config: Config) -> Arc<NodeIpamController> {
        let nodes = informers.informer(&nodes());
        let queue = WorkQueue::new("node-ipam", RateLimiter::default());
        let state = Arc::new(Mutex::new(State {
            set: CidrSet::new(config),
            reserved: HashMap::new(),
            events: HashMap::new(),
        }));
        // Nodes that have blocks occupy them as they are seen (so every existing node's block
        // is known once the cache has synced, before any worker runs); nodes without one are
        // queued.
        let (enqueue, shared) = (queue.clone(), state.clone());
        nodes.add_handler(move |event| match event {
            Event::Added(node) | Event::Updated { new: node, .. } => {
                if pod_cidrs(node).is_empty() {
                    if let Some(name) = name_of(node) {
                        enqueue.add(name);
                    }
                } else {
                    shared.lock().occupy(node);
                }
            }
            Event::Deleted(node) => shared.lock().release(node),
        });
        Arc::new(NodeIpamController {
            client,
            nodes,
            queue,
            state,
        })
    }

    /// Run until `shutdown`, once the node cache has synced.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.nodes.wait_synced(&shutdown).await {
            return;
        }
        tracing::info!(
            controller = "node-ipam",
            workers = WORKERS,
            "controller started"
        );
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
    }

    /// Upstream's `AllocateOrOccupyCIDR` and `updateCIDRsAllocation` for one node.
    async fn sync(&self, name: &str) -> Result<Action> {
        let Some(node) = self.nodes.get(name) else {
            return Ok(Action::Done);
        };
        let has = pod_cidrs(&node);
        let cidr = {
            let mut state = self.state.lock();
            if !has.is_empty() {
                // Assigned (by us or another); a block we reserved for it meanwhile goes back.
                if let Some(mine) = state.reserved.remove(name)
                    && !has.contains(&mine.to_string())
                {
                    let _ = state.set.release(&mine.to_string());
                }
                state.occupy(&node);
                return Ok(Action::Done);
            }
            match state.reserved.get(name) {
                Some(cidr) => Some(*cidr),
                None => {
                    let next = state.set.allocate_next();
                    if let Some(cidr) = next {
                        state.reserved.insert(name.to_string(), cidr);
                    }
                    next
                }
            }
        };
        let Some(cidr) = cidr else {
            self.record(&node, "CIDRNotAvailable").await;
            return Err(Error::Exhausted);
        };
        let text = cidr.to_string();
        let patch = json!({"spec": {"podCIDR": text, "podCIDRs": [text]}});
        match self
            .client
            .patch(&nodes(), None, name, PatchType::Strategic, &patch)
            .await
        {
            Ok(_) => {
                tracing::info!(controller = "node-ipam", node = name, cidr = %text, "set node pod cidr");
                Ok(Action::Done)
            }
            Err(e) if e.is_not_found() => {
                self.unreserve(name);
                Ok(Action::Done)
            }
            Err(source) => {
                self.record(&node, "CIDRAssignmentFailed").await;
                // A timeout may have gone through: keep the block (a restart returns it).
                if !matches!(source, client::Error::Timeout { .. }) && source.code() != Some(504) {
                    self.unreserve(name);
                }
                Err(Error::Patch {
                    node: name.to_string(),
                    cidr: text,
                    source,
                })
            }
        }
    }

    fn unreserve(&self, name: &str) {
        let mut state = self.state.lock();
        if let Some(cidr) = state.reserved.remove(name) {
            let _ = state.set.release(&cidr.to_string());
        }
    }

    /// Upstream's `RecordNodeStatusChange`: a Normal event "Node <n> status is now: <status>"
    /// about the node, in `default`; a repeat counts up the one recorded before.
    async fn record(&self, node: &Value, status: &'static str) {
        let name = name_of(node).unwrap_or_default().to_string();
        let at = now();
        let previous = self
            .state
            .lock()
            .events
            .get(&(name.clone(), status))
            .cloned();
        let events = Resource::core("events", true);
        if let Some((event, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": timestamp(at)});
            match self
                .client
                .patch(&events, Some("default"), &event, PatchType::Merge, &patch)
                .await
            {
                Ok(_) => {
                    self.state
                        .lock()
                        .events
                        .insert((name, status), (event, count + 1));
                    return;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(controller = "node-ipam", node = %name, error = %e, "cannot record an event");
                    return;
                }
            }
        }
        let event_name = format!("{name}.{:x}", at.unix_timestamp_nanos());
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": "default"},
            "involvedObject": {
                "kind": "Node",
                "apiVersion": "v1",
                "name": name,
                "uid": node.pointer("/metadata/uid").cloned().unwrap_or(json!("")),
            },
            "reason": status,
            "message": format!("Node {name} status is now: {status}"),
            "type": "Normal",
            "source": {"component": COMPONENT},
            "firstTimestamp": timestamp(at),
            "lastTimestamp": timestamp(at),
            "count": 1,
            "reportingComponent": COMPONENT,
            "reportingInstance": "",
        });
        match self.client.create(&events, Some("default"), &event).await {
            Ok(_) => {
                self.state
                    .lock()
                    .events
                    .insert((name, status), (event_name, 1));
            }
            Err(e) => {
                tracing::warn!(controller = "node-ipam", node = %name, error = %e, "cannot record an event")
            }
        }
    }
}

impl Reconciler for NodeIpamController {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action> {
        self.sync(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cidr: &str, mask: u8) -> CidrSet {
        CidrSet::new(Config::new(cidr, Some(mask)).unwrap())
    }

    fn next(s: &mut CidrSet) -> String {
        s.allocate_next().map(|c| c.to_string()).unwrap_or_default()
    }

    #[test]
    fn allocates_the_next_free_block() {
        let mut s = set("10.42.0.0/16", 24);
        assert_eq!(next(&mut s), "10.42.0.0/24");
        assert_eq!(next(&mut s), "10.42.1.0/24");
        s.occupy("10.42.2.0/24").unwrap();
        assert_eq!(next(&mut s), "10.42.3.0/24");
        assert_eq!(s.allocated(), 4);
        // Blocks of existing nodes may be smaller or larger than a node's.
        s.occupy("10.42.4.128/25").unwrap();
        assert_eq!(next(&mut s), "10.42.5.0/24");
        assert!(s.occupy("10.43.0.0/24").is_err());
        assert!(s.occupy("fd00::/64").is_err());
        assert!(s.occupy("garbage").is_err());
    }

    #[test]
    fn reuses_a_released_block_and_reports_exhaustion() {
        let mut s = set("10.42.0.0/30", 31);
        assert_eq!(next(&mut s), "10.42.0.0/31");
        assert_eq!(next(&mut s), "10.42.0.2/31");
        assert!(s.allocate_next().is_none());
        s.release("10.42.0.0/31").unwrap();
        assert_eq!(next(&mut s), "10.42.0.0/31");
        assert!(s.allocate_next().is_none());
        // Releasing twice counts once.
        s.release("10.42.0.2/31").unwrap();
        s.release("10.42.0.2/31").unwrap();
        assert_eq!(s.allocated(), 1);
    }

    #[test]
    fn search_continues_after_the_last_block_handed_out() {
        let mut s = set("10.0.0.0/22", 24);
        assert_eq!(next(&mut s), "10.0.0.0/24");
        assert_eq!(next(&mut s), "10.0.1.0/24");
        s.release("10.0.0.0/24").unwrap();
        assert_eq!(next(&mut s), "10.0.2.0/24");
        assert_eq!(next(&mut s), "10.0.3.0/24");
        assert_eq!(next(&mut s), "10.0.0.0/24");
    }

    #[test]
    fn ipv6_and_validation() {
        let mut s = set("fd00:42::/56", 64);
        assert_eq!(next(&mut s), "fd00:42::/64");
        assert_eq!(next(&mut s), "fd00:42:0:1::/64");
        assert_eq!(
            Config::new("10.42.0.0/16", None).unwrap().node_mask_size,
            24
        );
        assert_eq!(Config::new("fd00::/48", None).unwrap().node_mask_size, 64);
        assert!(Config::new("fd00::/32", None).is_err());
        assert!(Config::new("10.42.0.0/16", Some(8)).is_err());
        assert!(Config::new("10.42.0.0/16", Some(33)).is_err());
        assert!(Config::new("10.42.0.0/33", None).is_err());
        assert!(Config::new("10.42.0.0/16,fd00::/48", None).is_err());
        let c = Cidr::parse("10.42.3.7/24").unwrap();
        assert_eq!(c.to_string(), "10.42.3.0/24");
        assert_eq!(c.format_addr(c.last()), "10.42.3.255");
        assert!(c.contains(Cidr::parse("10.42.3.9/32").unwrap().addr));
    }
}
