//! The default profile's filters and scores, as upstream's plugins of the same names: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread and InterPodAffinity filter; NodeResourcesFit (LeastAllocated), NodeResourcesBalancedAllocation, ImageLocality, InterPodAffinity, NodeAffinity, PodTopologySpread and TaintToleration score.
//!
//! A cycle first computes what needs the whole cluster (upstream's PreFilter: topology counts
//! and affinity matches) into a [`Cycle`]; filters and scores then look at one node at a time.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::cache::{NodeInfo, PodInfo, ports_conflict};

pub const MAX_NODE_SCORE: i64 = 100;

/// Whether preemption could make a node fit (upstream's `Unschedulable` vs
/// `UnschedulableAndUnresolvable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    Unresolvable,
}

/// Why a node does not fit: upstream's reason strings (counted in the failure message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub reasons: Vec<String>,
}

fn fail(code: Code, reason: impl Into<String>) -> Result<(), Failure> {
    Err(Failure {
        code,
        reasons: vec![reason.into()],
    })
}

pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Selectors

pub use crate::labels::label_selector_matches;

/// One `NodeSelectorRequirement` against a value (a label, or a field for matchFields).
fn requirement_matches(req: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = array(req.get("values"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let int = |s: &str| s.parse::<i64>().ok();
    match str_at(req, "/operator") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(int), values.as_slice()) else {
                return false;
            };
            let Some(bound) = int(bound) else {
                return false;
            };
            if str_at(req, "/operator") == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// A `NodeSelectorTerm`: its expressions and fields ANDed; an empty term matches nothing.
fn node_selector_term_matches(term: &Value, node: &NodeInfo) -> bool {
    let expressions = array(term.get("matchExpressions"));
    let fields = array(term.get("matchFields"));
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|e| requirement_matches(e, node.label(str_at(e, "/key"))))
        && fields.iter().all(|f| {
            let value = (str_at(f, "/key") == "metadata.name").then_some(node.name.as_str());
            requirement_matches(f, value)
        })
}

/// `nodeSelector` and required node affinity (terms ORed).
pub fn node_affinity_matches(pod: &Value, node: &NodeInfo) -> bool {
    let selector_ok = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| node.label(k) == v.as_str());
    if !selector_ok {
        return false;
    }
    match pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
    {
        Some(required) if required.is_object() => array(required.get("nodeSelectorTerms"))
            .iter()
            .any(|t| node_selector_term_matches(t, node)),
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Taints and tolerations

/// upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = str_at(toleration, "/effect");
    if !effect.is_empty() && effect != str_at(taint, "/effect") {
        return false;
    }
    let key = str_at(toleration, "/key");
    if !key.is_empty() && key != str_at(taint, "/key") {
        return false;
    }
    match str_at(toleration, "/operator") {
        "Exists" => true,
        "" | "Equal" => str_at(toleration, "/value") == str_at(taint, "/value"),
        _ => false,
    }
}

fn tolerations(pod: &Value) -> &[Value] {
    array(pod.pointer("/spec/tolerations"))
}

fn taints(node: &NodeInfo) -> &[Value] {
    &node.taints
}

fn taint_text(taint: &Value) -> String {
    format!("{{{}: {}}}", str_at(taint, "/key"), str_at(taint, "/value"))
}

// ---------------------------------------------------------------------------------------------
// Inter-pod affinity and topology spread

/// A pod affinity term, resolved against the pod that carries it.
#[derive(Debug)]
pub struct Term {
    topology_key: String,
    selector: Value,
    /// Namespaces named; `None` with `all_namespaces` false means the carrier's own.
    namespaces: Vec<String>,
    namespace_selector: Option<Value>,
    weight: i64,
}

impl Term {
    /// `carrier` is the pod whose spec holds the term (for its namespace and matchLabelKeys).
    fn parse(term: &Value, carrier: &Value, weight: i64) -> Term {
        let mut selector = term.get("labelSelector").cloned().unwrap_or(Value::Null);
        let carrier_labels = carrier.pointer("/metadata/labels");
        // matchLabelKeys: the carrier's values for those keys join the selector.
        for key in array(term.get("matchLabelKeys"))
            .iter()
            .filter_map(Value::as_str)
        {
            if let Some(v) = carrier_labels
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                && selector.is_object()
            {
                let exprs = selector.as_object_mut().map(|s| {
                    s.entry("matchExpressions")
                        .or_insert_with(|| Value::Array(vec![]))
                });
                if let Some(Value::Array(list)) = exprs {
                    list.push(serde_json::json!({"key": key, "operator": "In", "values": [v]}));
                }
            }
        }
        let mut namespaces: Vec<String> = array(term.get("namespaces"))
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let namespace_selector = term
            .get("namespaceSelector")
            .filter(|s| s.is_object())
            .cloned();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(str_at(carrier, "/metadata/namespace").to_string());
        }
        Term {
            topology_key: str_at(term, "/topologyKey").to_string(),
            selector,
            namespaces,
            namespace_selector,
            weight,
        }
    }

    fn matches(
        &self,
        pod: &PodInfo,
        namespace_labels: &dyn Fn(&str) -> Option<Map<String, Value>>,
    ) -> bool {
        let ns = pod.namespace();
        let in_namespace = self.namespaces.iter().any(|n| n == ns)
            || self.namespace_selector.as_ref().is_some_and(|sel| {
                label_selector_matches(Some(sel), namespace_labels(ns).as_ref())
            });
        in_namespace && label_selector_matches(Some(&self.selector), pod.labels())
    }
}

fn terms(pod: &Value, pointer: &str, weighted: bool) -> Vec<Term> {
    array(pod.pointer(pointer))
        .iter()
        .map(|t| {
            if weighted {
                let weight = t.get("weight").and_then(Value::as_i64).unwrap_or(0);
                Term::parse(
                    t.get("podAffinityTerm").unwrap_or(&Value::Null),
                    pod,
                    weight,
                )
            } else {
                Term::parse(t, pod, 1)
            }
        })
        .collect()
}

const REQUIRED_AFFINITY: &str =
    "/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution";
const REQUIRED_ANTI: &str =
    "/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED_AFFINITY: &str =
    "/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution";
const PREFERRED_ANTI: &str =
    "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution";

/// Counts per topology key, then per value (looked up without allocating).
type TopologyCounts = HashMap<String, HashMap<String, i64>>;

fn bump(counts: &mut TopologyCounts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(value) = node.label(key) {
        if let Some(count) = counts.get_mut(key).and_then(|values| values.get_mut(value)) {
            *count += by;
            return;
        }
        *counts
            .entry(key.to_string())
            .or_default()
            .entry(value.to_string())
            .or_default() += by;
    }
}

/// The count for the node's own value of `key` (0 when it has none).
fn count_at(counts: &TopologyCounts, node: &NodeInfo, key: &str) -> i64 {
    node.label(key)
        .and_then(|value| counts.get(key)?.get(value))
        .copied()
        .unwrap_or(0)
}

/// The sum over every key of the node's own value's count.
fn sum_at(counts: &TopologyCounts, node: &NodeInfo) -> i64 {
    counts
        .iter()
        .filter_map(|(key, values)| values.get(node.label(key)?))
        .sum()
}

/// A pod's own affinity terms, parsed once when it is counted on a node (what other pods'
/// cycles check against them).
#[derive(Debug, Default)]
pub struct PodTerms {
    required_affinity: Vec<Term>,
    required_anti: Vec<Term>,
    preferred_affinity: Vec<Term>,
    preferred_anti: Vec<Term>,
}

impl PodTerms {
    pub fn of(pod: &Value) -> PodTerms {
        PodTerms {
            required_affinity: terms(pod, REQUIRED_AFFINITY, false),
            required_anti: terms(pod, REQUIRED_ANTI, false),
            preferred_affinity: terms(pod, PREFERRED_AFFINITY, true),
            preferred_anti: terms(pod, PREFERRED_ANTI, true),
        }
    }
}

/// One topology spread constraint with its counts.
#[derive(Debug)]
struct Spread {
    max_skew: i64,
    topology_key: String,
    selector: Value,
    hard: bool,
    min_domains: i64,
    /// Matching pods per domain value, over eligible nodes.
    counts: HashMap<String, i64>,
    self_match: bool,
}

/// What a scheduling cycle knows of the whole cluster for one pod.
pub struct Cycle {
    pub pod: Arc<Value>,
    pub info: PodInfo,
    ports: Vec<super::cache::HostPort>,
    affinity: Vec<Term>,
    anti_affinity: Vec<Term>,
    /// Per required affinity term: matching pods per topology pair.
    affinity_counts: Vec<TopologyCounts>,
    /// Whether any pod in the cluster matches each required affinity term.
    affinity_any: Vec<bool>,
    anti_counts: TopologyCounts,
    existing_anti_counts: TopologyCounts,
    spreads: Vec<Spread>,
    /// Preferred inter-pod affinity score per topology pair.
    preferred_affinity: TopologyCounts,
    /// Nodes holding each of the pod's images (for ImageLocality's spread).
    image_nodes: HashMap<String, usize>,
    total_nodes: usize,
    /// Parsed from the pod once: its tolerations, nodeSelector, required and preferred node
    /// affinity terms, and its containers' normalised images.
    tolerations: Vec<Value>,
    node_selector: Vec<(String, Value)>,
    required_terms: Option<Vec<Value>>,
    preferred_terms: Vec<(i64, Value)>,
    images: Vec<String>,
}

impl Cycle {
    /// Upstream's PreFilter step over the snapshot.
    pub fn new(
        pod: Arc<Value>,
        nodes: &[Arc<NodeInfo>],
        namespace_labels: &dyn Fn(&str) -> Option<Map<String, Value>>,
    ) -> Cycle {
        let info = PodInfo::new(pod.clone());
        let affinity = terms(&pod, REQUIRED_AFFINITY, false);
        let anti_affinity = terms(&pod, REQUIRED_ANTI, false);
        let preferred = terms(&pod, PREFERRED_AFFINITY, true);
        let preferred_anti = terms(&pod, PREFERRED_ANTI, true);
        let mut affinity_counts = vec![TopologyCounts::new(); affinity.len()];
        let mut affinity_any = vec![false; affinity.len()];
        let mut anti_counts = TopologyCounts::new();
        let mut existing_anti_counts = TopologyCounts::new();
        let mut preferred_affinity = TopologyCounts::new();
        let mut image_nodes: HashMap<String, usize> = HashMap::new();
        let needs_pods = !affinity.is_empty()
            || !anti_affinity.is_empty()
            || !preferred.is_empty()
            || !preferred_anti.is_empty();
        let any_affinity = nodes.iter().any(|n| n.affinity_pods > 0);
        let images: Vec<String> = array(pod.pointer("/spec/containers"))
            .iter()
            .map(|c| normalize_image(str_at(c, "/image")))
            .collect();
        for node in nodes {
            for (names, _) in &node.images {
                for image in images.iter().filter(|i| names.contains(i)) {
                    *image_nodes.entry(image.clone()).or_default() += 1;
                }
            }
            if !needs_pods && !any_affinity {
                continue;
            }
            for existing in &node.pods {
                if needs_pods {
                    for (i, term) in affinity.iter().enumerate() {
                        if term.matches(existing, namespace_labels) {
                            affinity_any[i] = true;
                            bump(&mut affinity_counts[i], node, &term.topology_key, 1);
                        }
                    }
                    for term in &anti_affinity {
                        if term.matches(existing, namespace_labels) {
                            bump(&mut anti_counts, node, &term.topology_key, 1);
                        }
                    }
                    for (terms, sign) in [(&preferred, 1), (&preferred_anti, -1)] {
                        for term in terms.iter() {
                            if term.matches(existing, namespace_labels) {
                                bump(
                                    &mut preferred_affinity,
                                    node,
                                    &term.topology_key,
                                    sign * term.weight,
                                );
                            }
                        }
                    }
                }
                // Existing pods' terms about the incoming pod (symmetry), parsed once per pod.
                let Some(theirs) = &existing.terms else {
                    continue;
                };
                for term in &theirs.required_anti {
                    if term.matches(&info, namespace_labels) {
                        bump(&mut existing_anti_counts, node, &term.topology_key, 1);
                    }
                }
                // Existing pods' required affinity counts with weight 1 (upstream's
                // hardPodAffinityWeight), their preferred terms with theirs.
                for (terms, sign) in [
                    (&theirs.required_affinity, 1),
                    (&theirs.preferred_affinity, 1),
                    (&theirs.preferred_anti, -1),
                ] {
                    for term in terms {
                        if term.matches(&info, namespace_labels) {
                            bump(
                                &mut preferred_affinity,
                                node,
                                &term.topology_key,
                                sign * term.weight,
                            );
                        }
                    }
                }
            }
        }
        let spreads = spreads(&pod, &info, nodes);
        let required_terms = pod
            .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
            .filter(|r| r.is_object())
            .map(|r| array(r.get("nodeSelectorTerms")).to_vec());
        let preferred_terms = array(pod.pointer(
            "/spec/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution",
        ))
        .iter()
        .map(|t| {
            (
                t.get("weight").and_then(Value::as_i64).unwrap_or(0),
                t.get("preference").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
        Cycle {
            tolerations: tolerations(&pod).to_vec(),
            node_selector: pod
                .pointer("/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            required_terms,
            preferred_terms,
            images,
            ports: super::cache::host_ports(&pod),
            pod,
            info,
            affinity,
            anti_affinity,
            affinity_counts,
            affinity_any,
            anti_counts,
            existing_anti_counts,
            spreads,
            preferred_affinity,
            image_nodes,
            total_nodes: nodes.len(),
        }
    }

    /// Every filter, in upstream's order; the first that fails decides.
    pub fn filter(&self, node: &NodeInfo) -> Result<(), Failure> {
        self.node_unschedulable(node)?;
        self.taint_toleration(node)?;
        if !self.node_affinity(node) {
            return fail(Code::Unresolvable, ERR_NODE_AFFINITY);
        }
        self.node_ports(node)?;
        self.resources_fit(node)?;
        self.topology_spread(node)?;
        self.inter_pod_affinity(node)
    }

    /// `nodeSelector` and required node affinity, from the parsed pod.
    fn node_affinity(&self, node: &NodeInfo) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| node.label(k) == v.as_str())
            && self
                .required_terms
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| node_selector_term_matches(t, node)))
    }

    fn node_unschedulable(&self, node: &NodeInfo) -> Result<(), Failure> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint =
            serde_json::json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        if self.tolerations.iter().any(|t| tolerates(t, &taint)) {
            return Ok(());
        }
        fail(Code::Unresolvable, ERR_UNSCHEDULABLE)
    }

    fn taint_toleration(&self, node: &NodeInfo) -> Result<(), Failure> {
        let untolerated = taints(node).iter().find(|taint| {
            matches!(str_at(taint, "/effect"), "NoSchedule" | "NoExecute")
                && !self.tolerations.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            Some(taint) => fail(
                Code::Unresolvable,
                format!("node(s) had untolerated taint {}", taint_text(taint)),
            ),
            None => Ok(()),
        }
    }

    fn node_ports(&self, node: &NodeInfo) -> Result<(), Failure> {
        let conflict = self.ports.iter().any(|want| {
            node.used_ports
                .iter()
                .any(|used| ports_conflict(want, used))
        });
        if conflict {
            return fail(Code::Unschedulable, ERR_PORTS);
        }
        Ok(())
    }

    /// Upstream's `fitsRequest`: every insufficient resource is a reason.
    pub fn resources_fit(&self, node: &NodeInfo) -> Result<(), Failure> {
        let want = &self.info.requests;
        let free = |alloc: i64, used: i64| alloc - used;
        let mut reasons = Vec::new();
        if node.pods.len() as i64 + 1 > node.allocatable.pods {
            reasons.push("Too many pods".to_string());
        }
        let (a, r) = (&node.allocatable, &node.requested);
        if want.milli_cpu > 0 && want.milli_cpu > free(a.milli_cpu, r.milli_cpu) {
            reasons.push("Insufficient cpu".into());
        }
        if want.memory > 0 && want.memory > free(a.memory, r.memory) {
            reasons.push("Insufficient memory".into());
        }
        if want.ephemeral_storage > 0
            && want.ephemeral_storage > free(a.ephemeral_storage, r.ephemeral_storage)
        {
            reasons.push("Insufficient ephemeral-storage".into());
        }
        for (name, amount) in &want.scalar {
            if *amount == 0 {
                continue;
            }
            let alloc = a.scalar.get(name).copied().unwrap_or(0);
            let used = r.scalar.get(name).copied().unwrap_or(0);
            if *amount > free(alloc, used) {
                reasons.push(format!("Insufficient {name}"));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Failure {
                code: Code::Unschedulable,
                reasons,
            })
        }
    }

    fn topology_spread(&self, node: &NodeInfo) -> Result<(), Failure> {
        let hard: Vec<&Spread> = self.spreads.iter().filter(|s| s.hard).collect();
        if hard.is_empty() {
            return Ok(());
        }
        for c in &hard {
            let Some(value) = node.label(&c.topology_key) else {
                return fail(Code::Unresolvable, ERR_SPREAD_LABEL);
            };
            let min = if (c.counts.len() as i64) < c.min_domains {
                0
            } else {
                c.counts.values().copied().min().unwrap_or(0)
            };
            let own = c.counts.get(value).copied().unwrap_or(0);
            let skew = own + i64::from(c.self_match) - min;
            if skew > c.max_skew {
                return fail(Code::Unschedulable, ERR_SPREAD);
            }
        }
        Ok(())
    }

    fn inter_pod_affinity(&self, node: &NodeInfo) -> Result<(), Failure> {
        // Existing pods' anti-affinity towards this pod.
        if self
            .existing_anti_counts
            .keys()
            .any(|key| count_at(&self.existing_anti_counts, node, key) > 0)
        {
            return fail(Code::Unschedulable, ERR_EXISTING_ANTI_AFFINITY);
        }
        for (i, term) in self.affinity.iter().enumerate() {
            if node.label(&term.topology_key).is_none() {
                return fail(Code::Unresolvable, ERR_AFFINITY);
            }
            if count_at(&self.affinity_counts[i], node, &term.topology_key) > 0 {
                continue;
            }
            // No pod matches the term anywhere: the first of a self-affine set may start.
            let all_unmatched = !self.affinity_any.iter().any(|a| *a);
            let self_affine = self
                .affinity
                .iter()
                .all(|t| t.matches(&self.info, &|_| None));
            if !(all_unmatched && self_affine) {
                return fail(Code::Unresolvable, ERR_AFFINITY);
            }
        }
        for term in &self.anti_affinity {
            if count_at(&self.anti_counts, node, &term.topology_key) > 0 {
                return fail(Code::Unschedulable, ERR_ANTI_AFFINITY);
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Scores

    /// The weighted sum of every score plugin's normalised score, per feasible node.
    pub fn scores(&self, nodes: &[&NodeInfo]) -> Vec<i64> {
        let mut total = vec![0i64; nodes.len()];
        let mut add = |raw: Vec<i64>, weight: i64| {
            for (t, s) in total.iter_mut().zip(raw) {
                *t += s * weight;
            }
        };
        // NodeResourcesFit (LeastAllocated) and BalancedAllocation: already 0–100.
        add(nodes.iter().map(|n| self.least_allocated(n)).collect(), 1);
        add(nodes.iter().map(|n| self.balanced(n)).collect(), 1);
        add(nodes.iter().map(|n| self.image_locality(n)).collect(), 1);
        let affinity: Vec<i64> = nodes
            .iter()
            .map(|n| self.preferred_pod_affinity(n))
            .collect();
        add(normalize_min_max(&affinity), 2);
        let node_affinity: Vec<i64> = nodes
            .iter()
            .map(|n| self.preferred_node_affinity(n))
            .collect();
        add(normalize(&node_affinity, false), 2);
        if self.spreads.iter().any(|s| !s.hard) {
            let spread: Vec<i64> = nodes.iter().map(|n| self.spread_score(n)).collect();
            add(normalize_spread(&spread), 2);
        }
        let taints: Vec<i64> = nodes
            .iter()
            .map(|n| self.intolerable_prefer_no_schedule(n))
            .collect();
        add(normalize(&taints, true), 3);
        total
    }

    fn least_allocated(&self, node: &NodeInfo) -> i64 {
        let score = |alloc: i64, requested: i64| {
            if alloc == 0 || requested > alloc {
                0
            } else {
                (alloc - requested) * MAX_NODE_SCORE / alloc
            }
        };
        let (a, r, p) = (
            &node.allocatable,
            &node.non_zero_requested,
            &self.info.non_zero,
        );
        (score(a.milli_cpu, r.milli_cpu + p.milli_cpu) + score(a.memory, r.memory + p.memory)) / 2
    }

    fn balanced(&self, node: &NodeInfo) -> i64 {
        let fraction = |alloc: i64, requested: i64| {
            if alloc == 0 {
                0.0
            } else {
                (requested as f64 / alloc as f64).min(1.0)
            }
        };
        let (a, r, p) = (
            &node.allocatable,
            &node.non_zero_requested,
            &self.info.non_zero,
        );
        let cpu = fraction(a.milli_cpu, r.milli_cpu + p.milli_cpu);
        let memory = fraction(a.memory, r.memory + p.memory);
        let std = (cpu - memory).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }

    fn image_locality(&self, node: &NodeInfo) -> i64 {
        const MB: i64 = 1024 * 1024;
        if self.images.is_empty() || self.total_nodes == 0 || node.images.is_empty() {
            return 0;
        }
        let mut sum = 0i64;
        for image in &self.images {
            if let Some((_, size)) = node.images.iter().find(|(names, _)| names.contains(image)) {
                let spread = self.image_nodes.get(image).copied().unwrap_or(1) as f64
                    / self.total_nodes as f64;
                sum += (*size as f64 * spread) as i64;
            }
        }
        let min = 23 * MB;
        let max = 1000 * MB * self.images.len() as i64;
        let sum = sum.clamp(min, max);
        MAX_NODE_SCORE * (sum - min) / (max - min)
    }

    fn preferred_pod_affinity(&self, node: &NodeInfo) -> i64 {
        sum_at(&self.preferred_affinity, node)
    }

    fn preferred_node_affinity(&self, node: &NodeInfo) -> i64 {
        self.preferred_terms
            .iter()
            .filter(|(_, term)| node_selector_term_matches(term, node))
            .map(|(weight, _)| *weight)
            .sum()
    }

    fn intolerable_prefer_no_schedule(&self, node: &NodeInfo) -> i64 {
        let tolerations: Vec<&Value> = self
            .tolerations
            .iter()
            .filter(|t| matches!(str_at(t, "/effect"), "" | "PreferNoSchedule"))
            .collect();
        taints(node)
            .iter()
            .filter(|taint| str_at(taint, "/effect") == "PreferNoSchedule")
            .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }

    fn spread_score(&self, node: &NodeInfo) -> i64 {
        let mut score = 0f64;
        for c in self.spreads.iter().filter(|s| !s.hard) {
            let Some(value) = node.label(&c.topology_key) else {
                return -1;
            };
            let weight = ((c.counts.len() + 2) as f64).ln();
            let count = c.counts.get(value).copied().unwrap_or(0) as f64;
            score += count * weight + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }
}

/// Upstream's `DefaultNormalizeScore`: scaled to 0–100 by the maximum, reversed if asked.
fn normalize(scores: &[i64], reverse: bool) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    scores
        .iter()
        .map(|&s| match (max, reverse) {
            (0, true) => MAX_NODE_SCORE,
            (0, false) => 0,
            (max, false) => s * MAX_NODE_SCORE / max,
            (max, true) => MAX_NODE_SCORE - s * MAX_NODE_SCORE / max,
        })
        .collect()
}

/// InterPodAffinity's normalisation: (score − min) scaled by the range.
fn normalize_min_max(scores: &[i64]) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    let min = scores.iter().copied().min().unwrap_or(0);
    scores
        .iter()
        .map(|&s| {
            if max == min {
                0
            } else {
                MAX_NODE_SCORE * (s - min) / (max - min)
            }
        })
        .collect()
}

/// PodTopologySpread's normalisation: fewer matching pods score higher; nodes without the
/// topology key (-1) score 0.
fn normalize_spread(scores: &[i64]) -> Vec<i64> {
    let valid: Vec<i64> = scores.iter().copied().filter(|s| *s >= 0).collect();
    let max = valid.iter().copied().max().unwrap_or(0);
    let min = valid.iter().copied().min().unwrap_or(0);
    scores
        .iter()
        .map(|&s| match s {
            s if s < 0 => 0,
            _ if max == 0 => MAX_NODE_SCORE,
            s => MAX_NODE_SCORE * (max + min - s) / max,
        })
        .collect()
}

/// `busybox` → `docker.io/library/busybox:latest`, as the image's identity for locality.
pub(crate) fn normalize_image(image: &str) -> String {
    let (name, tagged) = match image.rsplit_once('/') {
        Some((_, last)) => (image.to_string(), last.contains(':') || last.contains('@')),
        None => (
            image.to_string(),
            image.contains(':') || image.contains('@'),
        ),
    };
    let name = if tagged {
        name
    } else {
        format!("{name}:latest")
    };
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, name.contains('/')) {
        (true, _) => name,
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    }
}

/// The pod's topology spread constraints with their counts over the eligible nodes (those
/// matching its node affinity, upstream's default nodeAffinityPolicy Honor, and holding every
/// constraint's key).
fn spreads(pod: &Value, info: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Vec<Spread> {
    let constraints = array(pod.pointer("/spec/topologySpreadConstraints"));
    if constraints.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Spread> = constraints
        .iter()
        .map(|c| {
            let mut selector = c.get("labelSelector").cloned().unwrap_or(Value::Null);
            for key in array(c.get("matchLabelKeys"))
                .iter()
                .filter_map(Value::as_str)
            {
                if let Some(v) = info
                    .labels()
                    .and_then(|l| l.get(key))
                    .and_then(Value::as_str)
                    && let Some(obj) = selector.as_object_mut()
                    && let Value::Array(list) = obj
                        .entry("matchExpressions")
                        .or_insert_with(|| Value::Array(vec![]))
                {
                    list.push(serde_json::json!({"key": key, "operator": "In", "values": [v]}));
                }
            }
            Spread {
                max_skew: c.get("maxSkew").and_then(Value::as_i64).unwrap_or(1),
                topology_key: str_at(c, "/topologyKey").to_string(),
                self_match: label_selector_matches(Some(&selector), info.labels()),
                selector,
                hard: str_at(c, "/whenUnsatisfiable") != "ScheduleAnyway",
                min_domains: c.get("minDomains").and_then(Value::as_i64).unwrap_or(1),
                counts: HashMap::new(),
            }
        })
        .collect();
    let keys: Vec<String> = out.iter().map(|s| s.topology_key.clone()).collect();
    let namespace = info.namespace();
    for node in nodes {
        if !keys.iter().all(|k| node.label(k).is_some()) || !node_affinity_matches(pod, node) {
            continue;
        }
        for s in out.iter_mut() {
            let value = node.label(&s.topology_key).unwrap_or("").to_string();
            let count = node
                .pods
                .iter()
                .filter(|p| {
                    p.namespace() == namespace
                        && p.pod.pointer("/metadata/deletionTimestamp").is_none()
                        && label_selector_matches(Some(&s.selector), p.labels())
                })
                .count() as i64;
            *s.counts.entry(value).or_default() += count;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: Value, extra: Value) -> Arc<NodeInfo> {
        let mut n = json!({"metadata": {"name": name, "labels": labels}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
        if let Some(spec) = extra.get("spec") {
            n["spec"] = spec.clone();
        }
        let mut info = NodeInfo {
            name: name.into(),
            ..NodeInfo::default()
        };
        info.set_node(Arc::new(n));
        for p in extra
            .get("pods")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut p = p.clone();
            p["spec"]["nodeName"] = json!(name);
            info.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
        }
        Arc::new(info)
    }

    fn pod(spec: Value, labels: Value) -> Arc<Value> {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        }
        Arc::new(
            json!({"metadata": {"name": "p", "namespace": "default", "labels": labels}, "spec": spec}),
        )
    }

    fn filter(pod: &Arc<Value>, nodes: &[Arc<NodeInfo>]) -> Vec<Result<(), Failure>> {
        let cycle = Cycle::new(pod.clone(), nodes, &|_| None);
        nodes.iter().map(|n| cycle.filter(n)).collect()
    }

    fn reason(r: &Result<(), Failure>) -> &str {
        r.as_ref().err().map_or("ok", |f| f.reasons[0].as_str())
    }

    #[test]
    fn node_selector_and_affinity() {
        let nodes = [
            node("n1", json!({"nodeenv": "pro", "size": "10"}), json!({})),
            node("n2", json!({"nodeenv": "test", "size": "3"}), json!({})),
        ];
        let p = pod(json!({"nodeSelector": {"nodeenv": "pro"}}), json!({}));
        let r = filter(&p, &nodes);
        assert_eq!((reason(&r[0]), reason(&r[1])), ("ok", ERR_NODE_AFFINITY));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "nodeenv", "operator": "In", "values": ["xxx", "yyy"]}]},
                {"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["5"]}]},
            ]}}}}),
            json!({}),
        );
        let r = filter(&p, &nodes);
        assert_eq!((reason(&r[0]), reason(&r[1])), ("ok", ERR_NODE_AFFINITY));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]},
            ]}}}}),
            json!({}),
        );
        let r = filter(&p, &nodes);
        assert_eq!((reason(&r[0]), reason(&r[1])), (ERR_NODE_AFFINITY, "ok"));
    }

    #[test]
    fn taints_need_tolerations() {
        let tainted = node(
            "n1",
            json!({}),
            json!({"spec": {"taints": [{"key": "tag", "value": "test", "effect": "NoSchedule"}]}}),
        );
        let p = pod(json!({}), json!({}));
        assert_eq!(
            reason(&filter(&p, std::slice::from_ref(&tainted))[0]),
            "node(s) had untolerated taint {tag: test}"
        );
        for toleration in [
            json!({"key": "tag", "operator": "Equal", "value": "test", "effect": "NoSchedule"}),
            json!({"key": "tag", "operator": "Exists"}),
            json!({"operator": "Exists"}),
        ] {
            let p = pod(json!({"tolerations": [toleration]}), json!({}));
            assert_eq!(reason(&filter(&p, std::slice::from_ref(&tainted))[0]), "ok");
        }
        let p = pod(
            json!({"tolerations": [{"key": "tag", "value": "other"}]}),
            json!({}),
        );
        assert_ne!(reason(&filter(&p, std::slice::from_ref(&tainted))[0]), "ok");
        let cordoned = node("n2", json!({}), json!({"spec": {"unschedulable": true}}));
        assert_eq!(reason(&filter(&p, &[cordoned])[0]), ERR_UNSCHEDULABLE);
    }

    #[test]
    fn resources_and_ports() {
        let busy = node(
            "n1",
            json!({}),
            json!({"pods": [{"metadata": {"name": "x", "namespace": "default"}, "spec": {"containers": [
                {"name": "c", "resources": {"requests": {"cpu": "3", "memory": "7Gi"}}, "ports": [{"containerPort": 1, "hostPort": 80}]}
            ]}}]}),
        );
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "2Gi"}}}]}),
            json!({}),
        );
        let r = filter(&p, std::slice::from_ref(&busy));
        assert_eq!(
            r[0].as_ref().unwrap_err().reasons,
            ["Insufficient cpu", "Insufficient memory"]
        );
        let p = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]}),
            json!({}),
        );
        assert_eq!(reason(&filter(&p, &[busy])[0]), ERR_PORTS);
    }

    #[test]
    fn inter_pod_affinity() {
        let running = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"podenv": "pro"}}, "spec": {"containers": []}});
        let nodes = [
            node(
                "n1",
                json!({"kubernetes.io/hostname": "n1"}),
                json!({"pods": [running]}),
            ),
            node("n2", json!({"kubernetes.io/hostname": "n2"}), json!({})),
        ];
        let term = json!([{"labelSelector": {"matchExpressions": [{"key": "podenv", "operator": "In", "values": ["pro", "yyy"]}]}, "topologyKey": "kubernetes.io/hostname"}]);
        let affine = pod(
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}),
            json!({}),
        );
        let r = filter(&affine, &nodes);
        assert_eq!((reason(&r[0]), reason(&r[1])), ("ok", ERR_AFFINITY));
        let anti = pod(
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}),
            json!({}),
        );
        let r = filter(&anti, &nodes);
        assert_eq!((reason(&r[0]), reason(&r[1])), (ERR_ANTI_AFFINITY, "ok"));
        // The first pod of a self-affine set may go anywhere.
        let empty = [node(
            "n3",
            json!({"kubernetes.io/hostname": "n3"}),
            json!({}),
        )];
        let first = pod(
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}),
            json!({"podenv": "pro"}),
        );
        assert_eq!(reason(&filter(&first, &empty)[0]), "ok");
        assert_eq!(reason(&filter(&affine, &empty)[0]), ERR_AFFINITY);
        // An existing pod's anti-affinity repels a matching newcomer.
        let repelling = json!({"metadata": {"name": "r", "namespace": "default"}, "spec": {"containers": [], "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}}}});
        let nodes = [node(
            "n1",
            json!({"kubernetes.io/hostname": "n1"}),
            json!({"pods": [repelling]}),
        )];
        let newcomer = pod(json!({}), json!({"app": "x"}));
        assert_eq!(
            reason(&filter(&newcomer, &nodes)[0]),
            ERR_EXISTING_ANTI_AFFINITY
        );
    }

    #[test]
    fn topology_spread() {
        let member = |n: &str| json!({"metadata": {"name": n, "namespace": "default", "labels": {"app": "s"}}, "spec": {"containers": []}});
        let nodes = [
            node(
                "a",
                json!({"zone": "z1"}),
                json!({"pods": [member("1"), member("2")]}),
            ),
            node("b", json!({"zone": "z2"}), json!({"pods": [member("3")]})),
            node("c", json!({}), json!({})),
        ];
        let p = pod(
            json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]}),
            json!({"app": "s"}),
        );
        let r = filter(&p, &nodes);
        assert_eq!(
            (reason(&r[0]), reason(&r[1]), reason(&r[2])),
            (ERR_SPREAD, "ok", ERR_SPREAD_LABEL)
        );
    }

    #[test]
    fn scores_prefer_free_untainted_preferred_nodes() {
        let heavy = json!({"metadata": {"name": "h", "namespace": "default"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "3", "memory": "6Gi"}}}
        ]}});
        let nodes = [
            node("busy", json!({}), json!({"pods": [heavy]})),
            node("free", json!({}), json!({})),
            node(
                "tainted",
                json!({}),
                json!({"spec": {"taints": [{"key": "t", "effect": "PreferNoSchedule"}]}}),
            ),
            node("preferred", json!({"zone": "zzz"}), json!({})),
        ];
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["zzz"]}]}}
            ]}}}),
            json!({}),
        );
        let cycle = Cycle::new(p, &nodes, &|_| None);
        let refs: Vec<&NodeInfo> = nodes.iter().map(|n| n.as_ref()).collect();
        let s = cycle.scores(&refs);
        assert!(s[3] > s[1] && s[1] > s[2] && s[1] > s[0], "{s:?}");
    }

    #[test]
    fn images_normalise() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image("me/app:1"), "docker.io/me/app:1");
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use serde_json::json;

    #[test]
    #[ignore = "timing probe"]
    fn cycle_cost_with_5000_nodes() {
        let nodes: Vec<Arc<NodeInfo>> = (0..5000)
            .map(|i| {
                let n = json!({"metadata": {"name": format!("n{i}"), "labels": {"kubernetes.io/hostname": format!("n{i}"), "topology.kubernetes.io/zone": format!("z{}", i % 3)}}, "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}}});
                let mut info = NodeInfo {
                    name: format!("n{i}"),
                    ..NodeInfo::default()
                };
                info.set_node(Arc::new(n));
                Arc::new(info)
            })
            .collect();
        let anti = std::env::var("ANTI").is_ok();
        let spec = if anti {
            json!({"containers": [{"name": "c", "image": "busybox"}], "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "anti"}}, "topologyKey": "kubernetes.io/hostname"}]}}})
        } else {
            json!({"containers": [{"name": "c", "image": "busybox"}]})
        };
        let mut nodes = nodes;
        if anti {
            for (i, n) in nodes.iter_mut().enumerate().take(3000) {
                let mut p = json!({"metadata": {"name": format!("a{i}"), "namespace": "anti", "labels": {"app": "anti"}}, "spec": spec.clone()});
                p["spec"]["nodeName"] = json!(n.name);
                Arc::make_mut(n).add_pod(Arc::new(super::super::cache::PodInfo::new(Arc::new(p))));
            }
        }
        let pod = Arc::new(
            json!({"metadata": {"name": "p", "namespace": "anti", "labels": {"app": "anti"}}, "spec": spec}),
        );
        let rounds = 200;
        let (mut a, mut b, mut c) = (
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
        );
        for _ in 0..rounds {
            let t = std::time::Instant::now();
            let cycle = Cycle::new(pod.clone(), &nodes, &|_| None);
            a += t.elapsed();
            let t = std::time::Instant::now();
            let feasible: Vec<&NodeInfo> = nodes
                .iter()
                .take(500)
                .filter(|n| cycle.filter(n).is_ok())
                .map(|n| n.as_ref())
                .collect();
            b += t.elapsed();
            let t = std::time::Instant::now();
            let _ = cycle.scores(&feasible);
            c += t.elapsed();
        }
        eprintln!(
            "per cycle: new {:?} filter {:?} score {:?}",
            a / rounds,
            b / rounds,
            c / rounds
        );
    }
}
