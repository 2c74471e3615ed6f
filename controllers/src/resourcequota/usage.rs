//! Quota usage as upstream's evaluators compute it: which quota resources each evaluator tracks (pods, services, persistent volume claims, object counts), what one object uses, which scopes it matches, and the sum over a namespace's objects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::quantity::{Format, Quantity};

/// Quota resource names and amounts (`requests.cpu` → `1500m`).
pub type ResourceList = BTreeMap<String, Quantity>;

/// Upstream's `quota.Add`: every key of both, summed where both have it.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut result = a.clone();
    for (name, quantity) in b {
        result
            .entry(name.clone())
            .and_modify(|q| q.add(*quantity))
            .or_insert(*quantity);
    }
    result
}

/// In place `add`.
fn add_into(a: &mut ResourceList, b: &ResourceList) {
    for (name, quantity) in b {
        a.entry(name.clone())
            .and_modify(|q| q.add(*quantity))
            .or_insert(*quantity);
    }
}

/// The amounts of `list` whose names are in `names` (upstream's `quota.Mask`).
pub fn mask(list: &ResourceList, names: &BTreeSet<String>) -> ResourceList {
    list.iter()
        .filter(|(name, _)| names.contains(*name))
        .map(|(n, q)| (n.clone(), *q))
        .collect()
}

/// A resource list from JSON (`spec.hard`, `status.used`); amounts that do not parse are
/// left out (the API server validates them).
pub fn parse_list(value: Option<&Value>) -> Option<ResourceList> {
    let map = value?.as_object()?;
    Some(
        map.iter()
            .filter_map(|(name, q)| Some((name.clone(), Quantity::from_json(q).ok()?)))
            .collect(),
    )
}

/// A resource list as JSON, amounts in canonical form.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(name, q)| (name.clone(), Value::String(q.to_string())))
            .collect(),
    )
}

/// One scope requirement: a `spec.scopes` entry (operator `Exists`) or a `scopeSelector`
/// expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// Every scope requirement of a quota: `spec.scopes` as `Exists`, then the selector's.
pub fn scope_requirements(quota: &Value) -> Vec<ScopeRequirement> {
    let mut requirements: Vec<ScopeRequirement> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|scope| ScopeRequirement {
            scope: scope.to_string(),
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    for expr in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        requirements.push(ScopeRequirement {
            scope: text(expr.get("scopeName")).to_string(),
            operator: text(expr.get("operator")).to_string(),
            values: expr
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        });
    }
    requirements
}

fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or("")
}

/// A label requirement on one key against a set holding at most that key (upstream converts
/// scope selectors to label selectors this way).
fn selector_matches(requirement: &ScopeRequirement, value: Option<&str>) -> bool {
    match (requirement.operator.as_str(), value) {
        ("In", Some(v)) => requirement.values.iter().any(|x| x == v),
        ("In", None) => false,
        ("NotIn", Some(v)) => !requirement.values.iter().any(|x| x == v),
        ("NotIn", None) => true,
        ("Exists", v) => v.is_some(),
        ("DoesNotExist", v) => v.is_none(),
        _ => false,
    }
}

/// What knows how to measure one resource's usage (upstream's `quota.Evaluator`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Evaluator {
    Pods,
    Services,
    PersistentVolumeClaims,
    /// Objects counted: `count/<resource>[.<group>]`, and a legacy name for a few core ones.
    Count {
        group: String,
        resource: String,
        alias: Option<&'static str>,
    },
}

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];
const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];
const PVC_RESOURCES: &[&str] = &["persistentvolumeclaims", "requests.storage"];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Upstream's `IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Upstream's `IsExtendedResourceName`: a domain-prefixed name outside `kubernetes.io/`,
/// not starting `requests.`, that is valid after `requests.` too.
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

/// The `count/` name of a resource (upstream's `ObjectCountQuotaResourceNameFor`).
pub fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// The evaluators with special logic, and the legacy object counts (upstream's
/// `core.NewEvaluators`).
pub fn static_evaluators() -> Vec<Evaluator> {
    let mut all = vec![
        Evaluator::Pods,
        Evaluator::Services,
        Evaluator::PersistentVolumeClaims,
    ];
    for (resource, alias) in [
        ("configmaps", "configmaps"),
        ("resourcequotas", "resourcequotas"),
        ("replicationcontrollers", "replicationcontrollers"),
        ("secrets", "secrets"),
    ] {
        all.push(Evaluator::Count {
            group: String::new(),
            resource: resource.into(),
            alias: Some(alias),
        });
    }
    all
}

impl Evaluator {
    /// The group and plural of the objects it measures.
    pub fn group_resource(&self) -> (&str, &str) {
        match self {
            Evaluator::Pods => ("", "pods"),
            Evaluator::Services => ("", "services"),
            Evaluator::PersistentVolumeClaims => ("", "persistentvolumeclaims"),
            Evaluator::Count {
                group, resource, ..
            } => (group, resource),
        }
    }

    /// The names of `input` this evaluator tracks (upstream's `MatchingResources`).
    pub fn matching_resources<'a>(
        &self,
        input: impl IntoIterator<Item = &'a String>,
    ) -> Vec<String> {
        input
            .into_iter()
            .filter(|name| self.tracks(name))
            .cloned()
            .collect()
    }

    fn tracks(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name)
                    || name.starts_with("hugepages-")
                    || name.starts_with("requests.hugepages-")
                    || (!is_native(name) && name.starts_with("requests."))
            }
            Evaluator::Services => SERVICE_RESOURCES.contains(&name),
            Evaluator::PersistentVolumeClaims => {
                name == "count/persistentvolumeclaims"
                    || PVC_RESOURCES.contains(&name)
                    || PVC_RESOURCES
                        .iter()
                        .any(|r| name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
            }
            Evaluator::Count {
                group,
                resource,
                alias,
            } => name == count_name(group, resource) || alias.is_some_and(|a| a == name),
        }
    }

    /// Whether `object` matches one scope requirement (upstream's `MatchesScopeFunc`s;
    /// services and plain counts match no scope).
    pub fn matches_scope(&self, requirement: &ScopeRequirement, object: &Value) -> bool {
        match self {
            Evaluator::Pods => pod_matches_scope(requirement, object),
            Evaluator::PersistentVolumeClaims => pvc_matches_scope(requirement, object),
            _ => false,
        }
    }

    /// What one object uses (upstream's `Usage`). `now` decides whether a pod past its
    /// deletion grace period still counts.
    pub fn usage(&self, object: &Value, now: OffsetDateTime) -> ResourceList {
        let one = || Quantity::from_units(1, Format::DecimalSi);
        match self {
            Evaluator::Pods => pod_usage(object, now),
            Evaluator::Services => service_usage(object),
            Evaluator::PersistentVolumeClaims => pvc_usage(object),
            Evaluator::Count {
                group,
                resource,
                alias,
            } => {
                let mut usage = ResourceList::new();
                usage.insert(count_name(group, resource), one());
                if let Some(alias) = alias {
                    usage.insert((*alias).to_string(), one());
                }
                usage
            }
        }
    }

    /// The usage of every object of `objects` matching every scope requirement, for
    /// `resources` (each starting at zero), as upstream's `CalculateUsageStats`.
    pub fn usage_stats(
        &self,
        objects: &[Arc<Value>],
        requirements: &[ScopeRequirement],
        resources: &[String],
        now: OffsetDateTime,
    ) -> ResourceList {
        let mut used: ResourceList = resources
            .iter()
            .map(|r| (r.clone(), Quantity::zero()))
            .collect();
        for object in objects {
            if requirements.iter().all(|r| self.matches_scope(r, object)) {
                add_into(&mut used, &self.usage(object, now));
            }
        }
        used
    }
}

/// Upstream's `quota.CalculateUsage`: the usage of the quota resources in `hard` that some
/// evaluator tracks, each evaluator summing its objects (`objects` gives an evaluator's
/// objects in the quota's namespace).
pub fn calculate_usage<'a>(
    hard: &ResourceList,
    requirements: &[ScopeRequirement],
    evaluators: &[Evaluator],
    objects: impl Fn(&Evaluator) -> &'a [Arc<Value>],
    now: OffsetDateTime,
) -> ResourceList {
    let hard_names: BTreeSet<String> = hard.keys().cloned().collect();
    let matched: BTreeSet<String> = evaluators
        .iter()
        .flat_map(|e| e.matching_resources(&hard_names))
        .collect();
    let mut usage = ResourceList::new();
    for evaluator in evaluators {
        let intersection = evaluator.matching_resources(&matched);
        if intersection.is_empty() {
            continue;
        }
        let stats = evaluator.usage_stats(objects(evaluator), requirements, &intersection, now);
        add_into(&mut usage, &stats);
    }
    mask(&usage, &matched)
}

// ---------------------------------------------------------------------------------------------
// Pods

fn timestamp(value: Option<&Value>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value?.as_str()?, &Rfc3339).ok()
}

/// Upstream's `QuotaV1Pod`: a pod is charged unless it is terminal or marked for deletion
/// past its grace period.
pub fn pod_is_charged(pod: &Value, now: OffsetDateTime) -> bool {
    let phase = text(pod.pointer("/status/phase"));
    if phase == "Failed" || phase == "Succeeded" {
        return false;
    }
    if let (Some(deleted), Some(grace)) = (
        timestamp(pod.pointer("/metadata/deletionTimestamp")),
        pod.pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64),
    ) && now > deleted + time::Duration::seconds(grace)
    {
        return false;
    }
    true
}

fn resource_list_at(value: &Value, pointer: &str) -> ResourceList {
    parse_list(value.pointer(pointer)).unwrap_or_default()
}

/// Upstream's `maxResourceList`: the larger amount of each.
fn max_into(list: &mut ResourceList, other: &ResourceList) {
    for (name, quantity) in other {
        match list.get(name) {
            Some(stored) if stored >= quantity => {}
            _ => {
                list.insert(name.clone(), *quantity);
            }
        }
    }
}

/// The containers' requests or limits summed, init containers as upstream's
/// `AggregateContainerRequests` counts them (restartable sidecars add to everything after
/// them; other init containers need their amount plus the sidecars before them, once).
fn aggregate_containers(spec: &Value, field: &str) -> ResourceList {
    let pointer = format!("/resources/{field}");
    let mut total = ResourceList::new();
    for container in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add_into(&mut total, &resource_list_at(container, &pointer));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for container in spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let own = resource_list_at(container, &pointer);
        let needed = if text(container.get("restartPolicy")) == "Always" {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        max_into(&mut init, &needed);
    }
    max_into(&mut total, &init);
    total
}

/// Pod-level resources override the containers' for cpu and memory.
fn pod_level(spec: &Value, field: &str, list: &mut ResourceList) {
    let own = resource_list_at(spec, &format!("/resources/{field}"));
    for name in ["cpu", "memory"] {
        if let Some(q) = own.get(name) {
            list.insert(name.to_string(), *q);
        }
    }
}

/// Upstream's `PodRequests`: containers, pod-level resources, then the overhead.
pub fn pod_requests(pod: &Value) -> ResourceList {
    let spec = &pod["spec"];
    let mut requests = aggregate_containers(spec, "requests");
    pod_level(spec, "requests", &mut requests);
    add_into(&mut requests, &resource_list_at(spec, "/overhead"));
    requests
}

/// Upstream's `PodLimits`: containers, pod-level resources, then the overhead of what is
/// limited at all.
pub fn pod_limits(pod: &Value) -> ResourceList {
    let spec = &pod["spec"];
    let mut limits = aggregate_containers(spec, "limits");
    pod_level(spec, "limits", &mut limits);
    for (name, overhead) in resource_list_at(spec, "/overhead") {
        if let Some(limit) = limits.get_mut(&name) {
            limit.add(overhead);
        }
    }
    limits
}

/// Upstream's `podComputeUsageHelper`.
fn pod_compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut result = ResourceList::new();
    result.insert("pods".into(), Quantity::from_units(1, Format::DecimalSi));
    for resource in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(request) = requests.get(resource) {
            result.insert(resource.to_string(), *request);
            result.insert(format!("requests.{resource}"), *request);
        }
        if let Some(limit) = limits.get(resource) {
            result.insert(format!("limits.{resource}"), *limit);
        }
    }
    for (resource, request) in requests {
        if resource.starts_with("hugepages-") {
            result.insert(resource.clone(), *request);
            result.insert(format!("requests.{resource}"), *request);
        }
        if is_extended(resource) {
            result.insert(format!("requests.{resource}"), *request);
        }
    }
    result
}

/// Upstream's `PodUsageFunc`: `count/pods` always; the rest only while the pod is charged.
pub fn pod_usage(pod: &Value, now: OffsetDateTime) -> ResourceList {
    let mut result = ResourceList::new();
    result.insert(
        "count/pods".into(),
        Quantity::from_units(1, Format::DecimalSi),
    );
    if !pod_is_charged(pod, now) {
        return result;
    }
    add(
        &result,
        &pod_compute_usage(&pod_requests(pod), &pod_limits(pod)),
    )
}

/// Whether the pod is BestEffort: its recorded QoS class, else upstream's rule (no non-zero
/// cpu or memory request or limit anywhere).
pub fn pod_is_best_effort(pod: &Value) -> bool {
    if let Some(class) = pod.pointer("/status/qosClass").and_then(Value::as_str) {
        return class == "BestEffort";
    }
    let spec = &pod["spec"];
    let any = |list: &ResourceList| {
        ["cpu", "memory"]
            .iter()
            .any(|r| list.get(*r).is_some_and(|q| !q.is_zero()))
    };
    let containers = ["containers", "initContainers"]
        .into_iter()
        .flat_map(|f| spec.get(f).and_then(Value::as_array).into_iter().flatten());
    for container in containers {
        if any(&resource_list_at(container, "/resources/requests"))
            || any(&resource_list_at(container, "/resources/limits"))
        {
            return false;
        }
    }
    !(any(&resource_list_at(spec, "/resources/requests"))
        || any(&resource_list_at(spec, "/resources/limits")))
}

fn pod_is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

/// Upstream's `usesCrossNamespacePodAffinity`: an affinity or anti-affinity term naming
/// namespaces or a namespace selector.
fn pod_uses_cross_namespace_affinity(pod: &Value) -> bool {
    let cross = |term: &Value| {
        term.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|n| !n.is_empty())
            || term.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(affinity) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let required = affinity
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(cross);
        let preferred = affinity
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|w| cross(&w["podAffinityTerm"]));
        required || preferred
    })
}

/// Upstream's `podMatchesScopeFunc` (the operator matters only for `PriorityClass`).
fn pod_matches_scope(requirement: &ScopeRequirement, pod: &Value) -> bool {
    match requirement.scope.as_str() {
        "Terminating" => pod_is_terminating(pod),
        "NotTerminating" => !pod_is_terminating(pod),
        "BestEffort" => pod_is_best_effort(pod),
        "NotBestEffort" => !pod_is_best_effort(pod),
        "PriorityClass" => {
            let class = text(pod.pointer("/spec/priorityClassName"));
            selector_matches(requirement, Some(class).filter(|c| !c.is_empty()))
        }
        "CrossNamespacePodAffinity" => pod_uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// What decides which scopes a pod matches, to tell whether an update can change usage.
pub fn pod_scope_facts(pod: &Value) -> (bool, bool, String, bool) {
    (
        pod_is_terminating(pod),
        pod_is_best_effort(pod),
        text(pod.pointer("/spec/priorityClassName")).to_string(),
        pod_uses_cross_namespace_affinity(pod),
    )
}

// ---------------------------------------------------------------------------------------------
// Services and persistent volume claims

/// Upstream's service `Usage`: one service; node ports for NodePort and LoadBalancer
/// services (only the explicit ones when a load balancer allocates none); load balancers.
fn service_usage(service: &Value) -> ResourceList {
    let count =
        |n: usize| Quantity::from_units(i64::try_from(n).unwrap_or(i64::MAX), Format::DecimalSi);
    let ports: Vec<&Value> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let mut result = ResourceList::new();
    result.insert("count/services".into(), count(1));
    result.insert("services".into(), count(1));
    result.insert("services.loadbalancers".into(), Quantity::zero());
    result.insert("services.nodeports".into(), Quantity::zero());
    match text(service.pointer("/spec/type")) {
        "NodePort" => {
            result.insert("services.nodeports".into(), count(ports.len()));
        }
        "LoadBalancer" => {
            let allocate = service
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool);
            let node_ports = if allocate == Some(false) {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            result.insert("services.nodeports".into(), count(node_ports));
            result.insert("services.loadbalancers".into(), count(1));
        }
        _ => {}
    }
    result
}

/// The service type as quota sees it (upstream's `GetQuotaServiceType`).
pub fn service_quota_type(service: &Value) -> &str {
    match text(service.pointer("/spec/type")) {
        t @ ("NodePort" | "LoadBalancer") => t,
        _ => "",
    }
}

/// The claim's storage class: the beta annotation first, then `spec.storageClassName`.
fn pvc_class(pvc: &Value) -> &str {
    let annotated =
        text(pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class"));
    if annotated.is_empty() {
        text(pvc.pointer("/spec/storageClassName"))
    } else {
        annotated
    }
}

/// Upstream's `getStorageUsage`: the request rounded up to whole bytes, or the allocated
/// amount when that is larger.
fn pvc_storage(pvc: &Value) -> Option<Quantity> {
    let request = resource_list_at(pvc, "/spec/resources/requests")
        .get("storage")
        .map(Quantity::round_up_to_units)?;
    let allocated = resource_list_at(pvc, "/status/allocatedResources");
    match allocated.get("storage") {
        Some(a) if *a > request => Some(a.round_up_to_units()),
        _ => Some(request),
    }
}

fn pvc_usage(pvc: &Value) -> ResourceList {
    let one = Quantity::from_units(1, Format::DecimalSi);
    let mut result = ResourceList::new();
    result.insert("persistentvolumeclaims".into(), one);
    result.insert("count/persistentvolumeclaims".into(), one);
    let class = pvc_class(pvc);
    if !class.is_empty() {
        result.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            one,
        );
    }
    if let Some(storage) = pvc_storage(pvc) {
        result.insert("requests.storage".into(), storage);
        if !class.is_empty() {
            result.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                storage,
            );
        }
    }
    result
}

/// The volume attributes classes a claim refers to (spec, status, pending modification).
pub fn pvc_attribute_classes(pvc: &Value) -> BTreeSet<String> {
    [
        "/spec/volumeAttributesClassName",
        "/status/currentVolumeAttributesClassName",
        "/status/modifyVolumeStatus/targetVolumeAttributesClassName",
    ]
    .iter()
    .map(|p| text(pvc.pointer(p)).to_string())
    .filter(|name| !name.is_empty())
    .collect()
}

/// Upstream's `pvcMatchesScopeFunc`: only the `VolumeAttributesClass` scope.
fn pvc_matches_scope(requirement: &ScopeRequirement, pvc: &Value) -> bool {
    if requirement.scope != "VolumeAttributesClass" {
        return false;
    }
    let classes = pvc_attribute_classes(pvc);
    if requirement.operator == "Exists" {
        return !classes.is_empty();
    }
    if classes.is_empty() {
        return selector_matches(requirement, None);
    }
    classes
        .iter()
        .any(|c| selector_matches(requirement, Some(c)))
}

/// What of a claim decides its usage beyond its spec (upstream's `RequiresQuotaReplenish`).
pub fn pvc_replenish_facts(pvc: &Value) -> (Option<Quantity>, BTreeSet<String>) {
    (
        resource_list_at(pvc, "/status/allocatedResources")
            .get("storage")
            .copied(),
        pvc_attribute_classes(pvc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-01-01T00:00:00Z", &Rfc3339).unwrap()
    }

    /// `name=amount` lines, sorted, amounts canonical.
    fn show(list: &ResourceList) -> String {
        list.iter()
            .map(|(n, q)| format!("{n}={q}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn hard(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(n, q)| (n.to_string(), Quantity::parse(q).unwrap()))
            .collect()
    }

    fn pod(name: &str, containers: Value) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name}, "spec": {"containers": containers}}))
    }

    fn usage_of(
        hard_list: &ResourceList,
        requirements: &[ScopeRequirement],
        pods: &[Arc<Value>],
        others: &[Arc<Value>],
    ) -> String {
        let evaluators = static_evaluators();
        show(&calculate_usage(
            hard_list,
            requirements,
            &evaluators,
            |e| match e {
                Evaluator::Pods => pods,
                _ => others,
            },
            now(),
        ))
    }

    #[test]
    fn pod_compute_usage_sums_containers() {
        let p = pod(
            "a",
            json!([
                {"name": "x", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}},
                {"name": "y", "resources": {"requests": {"cpu": "250m", "memory": "64Mi", "example.com/gpu": "1", "hugepages-2Mi": "4Mi"}}},
            ]),
        );
        assert_eq!(
            show(&pod_usage(&p, now())),
            "count/pods=1 cpu=500m hugepages-2Mi=4Mi limits.cpu=500m limits.memory=128Mi memory=128Mi pods=1 requests.cpu=500m requests.example.com/gpu=1 requests.hugepages-2Mi=4Mi requests.memory=128Mi"
        );
    }

    #[test]
    fn init_containers_sidecars_and_overhead() {
        let p = json!({"spec": {
            "initContainers": [
                {"name": "big-init", "resources": {"requests": {"cpu": "2"}}},
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "after", "resources": {"requests": {"cpu": "1800m"}}},
            ],
            "containers": [{"name": "main", "resources": {"requests": {"cpu": "1"}}}],
            "overhead": {"cpu": "100m"},
        }});
        // main 1 + sidecar 0.5 = 1.5 running; init needs max(2, 1.8 + 0.5) = 2.3; + 0.1.
        assert_eq!(show(&pod_requests(&p)), "cpu=2400m");
        // Nothing limits cpu: the overhead adds no limit.
        assert_eq!(show(&pod_limits(&p)), "");
    }

    #[test]
    fn terminal_and_expired_pods_only_count_as_objects() {
        let mut done = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}, "status": {"phase": "Succeeded"}});
        assert_eq!(show(&pod_usage(&done, now())), "count/pods=1");
        done["status"]["phase"] = json!("Running");
        done["metadata"] =
            json!({"deletionTimestamp": "2025-12-31T23:59:00Z", "deletionGracePeriodSeconds": 30});
        assert_eq!(show(&pod_usage(&done, now())), "count/pods=1");
        done["metadata"]["deletionGracePeriodSeconds"] = json!(120);
        assert!(pod_is_charged(&done, now()));
    }

    #[test]
    fn quota_usage_masks_to_hard_and_zero_fills() {
        let pods = [
            pod("a", json!([{"resources": {"requests": {"cpu": "500m"}}}])),
            pod("b", json!([{"resources": {"requests": {"cpu": "1"}}}])),
        ];
        let configmaps: Vec<Arc<Value>> = (0..3)
            .map(|i| Arc::new(json!({"metadata": {"name": format!("c{i}")}})))
            .collect();
        let h = hard(&[
            ("pods", "2"),
            ("requests.cpu", "1"),
            ("requests.memory", "1Gi"),
            ("count/configmaps", "5"),
            ("example.com/unknown", "1"),
        ]);
        assert_eq!(
            usage_of(&h, &[], &pods, &configmaps),
            "count/configmaps=3 pods=2 requests.cpu=1500m requests.memory=0"
        );
        assert_eq!(
            usage_of(&h, &[], &[], &[]),
            "count/configmaps=0 pods=0 requests.cpu=0 requests.memory=0"
        );
    }

    #[test]
    fn scopes() {
        let best_effort = pod("be", json!([{"name": "c"}]));
        let mut burstable = json!({"metadata": {"name": "bu"}, "spec": {"activeDeadlineSeconds": 10, "priorityClassName": "high", "containers": [{"resources": {"requests": {"memory": "1Gi"}}}]}});
        let h = hard(&[("pods", "10"), ("requests.memory", "10Gi")]);
        let exists = |scope: &str| ScopeRequirement {
            scope: scope.into(),
            operator: "Exists".into(),
            values: vec![],
        };
        let pods = [best_effort.clone(), Arc::new(burstable.clone())];
        assert_eq!(
            usage_of(&h, &[exists("BestEffort")], &pods, &[]),
            "pods=1 requests.memory=0"
        );
        assert_eq!(
            usage_of(&h, &[exists("NotBestEffort")], &pods, &[]),
            "pods=1 requests.memory=1Gi"
        );
        assert_eq!(
            usage_of(&h, &[exists("Terminating")], &pods, &[]),
            "pods=1 requests.memory=1Gi"
        );
        assert_eq!(
            usage_of(&h, &[exists("NotTerminating")], &pods, &[]),
            "pods=1 requests.memory=0"
        );
        assert_eq!(
            usage_of(&h, &[exists("PriorityClass")], &pods, &[]),
            "pods=1 requests.memory=1Gi"
        );
        let in_high = ScopeRequirement {
            scope: "PriorityClass".into(),
            operator: "In".into(),
            values: vec!["high".into()],
        };
        let not_in_high = ScopeRequirement {
            operator: "NotIn".into(),
            ..in_high.clone()
        };
        assert_eq!(
            usage_of(&h, &[in_high], &pods, &[]),
            "pods=1 requests.memory=1Gi"
        );
        assert_eq!(
            usage_of(&h, &[not_in_high], &pods, &[]),
            "pods=1 requests.memory=0"
        );
        // Objects of other evaluators match no scope.
        let services = [Arc::new(json!({"spec": {"type": "ClusterIP"}}))];
        assert_eq!(
            usage_of(
                &hard(&[("services", "1")]),
                &[exists("BestEffort")],
                &[],
                &services
            ),
            "services=0"
        );
        burstable["status"] = json!({"qosClass": "BestEffort"});
        assert!(pod_is_best_effort(&burstable));
    }

    #[test]
    fn scope_requirements_from_spec() {
        let quota = json!({"spec": {"scopes": ["BestEffort"], "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["a", "b"]}]}}});
        let reqs = scope_requirements(&quota);
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            (reqs[0].scope.as_str(), reqs[0].operator.as_str()),
            ("BestEffort", "Exists")
        );
        assert_eq!(reqs[1].values, ["a", "b"]);
    }

    #[test]
    fn services_and_claims() {
        let services = [
            Arc::new(json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}})),
            Arc::new(json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}})),
            Arc::new(json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})),
            Arc::new(
                json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}, {"port": 81, "nodePort": 30001}]}}),
            ),
        ];
        let h = hard(&[
            ("services", "10"),
            ("services.nodeports", "10"),
            ("services.loadbalancers", "10"),
            ("count/services", "10"),
        ]);
        let stats = Evaluator::Services.usage_stats(
            &services,
            &[],
            &Evaluator::Services.matching_resources(h.keys()),
            now(),
        );
        assert_eq!(
            show(&stats),
            "count/services=4 services=4 services.loadbalancers=2 services.nodeports=4"
        );
        let claims = [
            Arc::new(
                json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}}),
            ),
            Arc::new(
                json!({"spec": {"resources": {"requests": {"storage": "500Mi"}}}, "status": {"allocatedResources": {"storage": "2Gi"}}}),
            ),
        ];
        let h = hard(&[
            ("persistentvolumeclaims", "5"),
            ("requests.storage", "10Gi"),
            ("fast.storageclass.storage.k8s.io/requests.storage", "5Gi"),
            (
                "fast.storageclass.storage.k8s.io/persistentvolumeclaims",
                "5",
            ),
        ]);
        let stats = Evaluator::PersistentVolumeClaims.usage_stats(
            &claims,
            &[],
            &Evaluator::PersistentVolumeClaims.matching_resources(h.keys()),
            now(),
        );
        assert_eq!(
            show(&stats),
            "count/persistentvolumeclaims=2 fast.storageclass.storage.k8s.io/persistentvolumeclaims=1 fast.storageclass.storage.k8s.io/requests.storage=1Gi persistentvolumeclaims=2 requests.storage=3Gi"
        );
    }

    #[test]
    fn object_counts_and_names() {
        let deployments = Evaluator::Count {
            group: "apps".into(),
            resource: "deployments".into(),
            alias: None,
        };
        let names: Vec<String> = ["count/deployments.apps", "pods", "count/deployments"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            deployments.matching_resources(&names),
            ["count/deployments.apps"]
        );
        let secrets = &static_evaluators()[6];
        assert_eq!(secrets.group_resource(), ("", "secrets"));
        assert_eq!(
            show(&secrets.usage(&json!({}), now())),
            "count/secrets=1 secrets=1"
        );
        assert!(Evaluator::Pods.tracks("requests.nvidia.com/gpu"));
        assert!(!Evaluator::Pods.tracks("requests.storage"));
        assert!(!Evaluator::Pods.tracks("requests.kubernetes.io/x"));
    }
}
