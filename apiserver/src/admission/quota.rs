//! ResourceQuota (last in the chain): a create is charged against every matching quota of its namespace, compare-and-swapping each quota's `status.used`, and refused when it would exceed `status.hard`.
//!
//! As upstream, a quota matches only once its controller has filled `status.hard`, usage is
//! only ever added here (the controller recounts and releases it), and a dry run is checked
//! but not charged.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::limitranger::pod_total;
use super::quantity::{self, Quantity};
use super::{Attributes, Lookup, Operation, Plugin, resource};
use crate::object::meta_str;
use crate::status::{ApiError, ApiResult};

pub struct ResourceQuota;

type List = BTreeMap<String, Quantity>;
/// Which quota resource names an evaluator counts.
type Tracks = Box<dyn Fn(&str) -> bool>;

/// How often a quota that changed under us is read again before giving up.
const RETRIES: usize = 3;

/// Resources the pod evaluator tracks (besides hugepages and extended resources).
const POD_RESOURCES: &[&str] = &[
    "pods",
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
];

/// Pod resources every container must declare once a quota limits them (upstream's
/// `validationSet`).
const DECLARED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

fn one() -> Quantity {
    Quantity::from_int(1)
}

fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests.")
}

/// Upstream's `podComputeUsageHelper` over a pod's (or a container's) requests and limits.
fn compute_usage(requests: &List, limits: &List) -> List {
    let mut out = List::new();
    out.insert("pods".into(), one());
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.into(), *q);
            out.insert(format!("requests.{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), *q);
            out.insert(format!("requests.{name}"), *q);
        }
        if is_extended(name) {
            out.insert(format!("requests.{name}"), *q);
        }
    }
    out
}

fn pod_usage(pod: &Value) -> List {
    let mut out = List::new();
    out.insert("count/pods".into(), one());
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return out;
    }
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    out.extend(compute_usage(
        &pod_total(&spec, "requests"),
        &pod_total(&spec, "limits"),
    ));
    out
}

/// The object count name upstream gives a resource: `count/<plural>[.<group>]`.
fn count_name(attrs: &Attributes<'_>) -> String {
    match attrs.resource.group {
        "" => format!("count/{}", attrs.resource.plural),
        group => format!("count/{}.{group}", attrs.resource.plural),
    }
}

/// What the object being created uses, and which quota resource names count it.
fn usage(attrs: &Attributes<'_>, object: &Value) -> (List, Tracks) {
    let count = count_name(attrs);
    match (attrs.resource.group, attrs.resource.plural) {
        ("", "pods") => (
            pod_usage(object),
            Box::new(|n: &str| {
                POD_RESOURCES.contains(&n)
                    || n.starts_with("hugepages-")
                    || n.starts_with("requests.hugepages-")
                    || (n.starts_with("requests.") && is_extended(&n["requests.".len()..]))
            }),
        ),
        ("", "services") => {
            let mut out = List::new();
            out.insert("services".into(), one());
            out.insert(count.clone(), one());
            let kind = object
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ports = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as i64;
            if kind == "LoadBalancer" {
                out.insert("services.loadbalancers".into(), one());
            }
            if matches!(kind, "LoadBalancer" | "NodePort") {
                out.insert("services.nodeports".into(), Quantity::from_int(ports));
            }
            let names = [
                "services",
                "services.loadbalancers",
                "services.nodeports",
                "count/services",
            ];
            (out, Box::new(move |n: &str| names.contains(&n)))
        }
        ("", "persistentvolumeclaims") => {
            let mut out = List::new();
            out.insert("persistentvolumeclaims".into(), one());
            out.insert(count.clone(), one());
            let storage = quantity::list(object.pointer("/spec/resources/requests"))
                .get("storage")
                .copied();
            if let Some(s) = storage {
                out.insert("requests.storage".into(), s);
            }
            if let Some(class) = object
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            {
                out.insert(
                    format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                    one(),
                );
                if let Some(s) = storage {
                    out.insert(
                        format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                        s,
                    );
                }
            }
            (
                out,
                Box::new(|n: &str| {
                    matches!(
                        n,
                        "persistentvolumeclaims"
                            | "requests.storage"
                            | "count/persistentvolumeclaims"
                    ) || n.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims")
                        || n.ends_with(".storageclass.storage.k8s.io/requests.storage")
                }),
            )
        }
        ("", plural @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            let legacy = plural.to_string();
            let mut out = List::new();
            out.insert(legacy.clone(), one());
            out.insert(count.clone(), one());
            (out, Box::new(move |n: &str| n == legacy || n == count))
        }
        _ => {
            let mut out = List::new();
            out.insert(count.clone(), one());
            (out, Box::new(move |n: &str| n == count))
        }
    }
}

fn best_effort(pod: &Value) -> bool {
    crate::pod::qos_class(pod.get("spec").unwrap_or(&Value::Null)) == "BestEffort"
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|d| d >= 0)
}

fn cross_namespace_affinity(pod: &Value) -> bool {
    let mut terms = Vec::new();
    for kind in ["podAffinity", "podAntiAffinity"] {
        for (field, nested) in [
            ("requiredDuringSchedulingIgnoredDuringExecution", false),
            ("preferredDuringSchedulingIgnoredDuringExecution", true),
        ] {
            for t in pod
                .pointer(&format!("/spec/affinity/{kind}/{field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                terms.push(if nested {
                    t.get("podAffinityTerm").cloned().unwrap_or(Value::Null)
                } else {
                    t.clone()
                });
            }
        }
    }
    terms.iter().any(|t| {
        t.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|n| !n.is_empty())
            || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
    })
}

/// Whether a pod matches one scope selector requirement.
fn pod_in_scope(pod: &Value, scope: &str, operator: &str, values: &[String]) -> bool {
    match scope {
        "Terminating" => terminating(pod),
        "NotTerminating" => !terminating(pod),
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("");
            match operator {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && values.iter().any(|v| v == class),
                "NotIn" => class.is_empty() || !values.iter().any(|v| v == class),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The quota's scopes (`spec.scopes` and `spec.scopeSelector`) as (scope, operator, values).
fn scopes(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        out.push((
            e.get("scopeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            e.get("operator")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            values,
        ));
    }
    out
}

/// `name=value,...` sorted by name (upstream's `prettyPrint`).
fn pretty(list: &List) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Upstream's pod `Constraints`: with cpu or memory quota'd, every container declares them.
fn pod_constraints(pod: &Value, required: &[String]) -> Option<String> {
    let required: Vec<&String> = required
        .iter()
        .filter(|r| DECLARED.contains(&r.as_str()))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for field in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let declared = compute_usage(
                &quantity::list(c.pointer("/resources/requests")),
                &quantity::list(c.pointer("/resources/limits")),
            );
            for r in &required {
                if !declared.contains_key(r.as_str()) {
                    let name = c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    missing.entry((*r).clone()).or_default().insert(name);
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// Charge `object` to `quotas`: the quotas whose usage changes, with their new `status.used`.
fn charge(attrs: &Attributes<'_>, object: &Value, quotas: &[Value]) -> ApiResult<Vec<Value>> {
    let (usage, tracks) = usage(attrs, object);
    let is_pod = attrs.is("", "pods");
    let mut changed = Vec::new();
    for quota in quotas {
        let name = meta_str(quota, "name").unwrap_or("");
        let hard = quantity::list(quota.pointer("/status/hard"));
        let matched: Vec<String> = hard.keys().filter(|k| tracks(k)).cloned().collect();
        if matched.is_empty() {
            continue;
        }
        let in_scope = scopes(quota)
            .iter()
            .all(|(scope, op, values)| is_pod && pod_in_scope(object, scope, op, values));
        if !in_scope {
            continue;
        }
        if is_pod && let Some(detail) = pod_constraints(object, &matched) {
            return Err(attrs.forbidden(Some(object), &format!("failed quota: {name}: {detail}")));
        }
        let used = quantity::list(quota.pointer("/status/used"));
        if matched.iter().any(|m| !used.contains_key(m)) {
            return Err(attrs.forbidden(
                Some(object),
                &format!(
                    "status unknown for quota: {name}, resources: {}",
                    matched.join(",")
                ),
            ));
        }
        let requested: List = usage
            .iter()
            .filter(|(k, v)| hard.contains_key(*k) && !v.is_zero())
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if requested.is_empty() {
            continue;
        }
        let mut new_used = used.clone();
        for (k, v) in &requested {
            let sum = used.get(k).copied().unwrap_or(Quantity::ZERO).add(*v);
            new_used.insert(k.clone(), sum);
        }
        let exceeded: Vec<&String> = requested
            .keys()
            .filter(|k| new_used[*k] > hard[*k])
            .collect();
        if !exceeded.is_empty() {
            let mask = |l: &List| -> List {
                l.iter()
                    .filter(|(k, _)| exceeded.contains(k))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            };
            return Err(attrs.forbidden(
                Some(object),
                &format!(
                    "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                    pretty(&mask(&requested)),
                    pretty(&mask(&used)),
                    pretty(&mask(&hard))
                ),
            ));
        }
        let mut updated = quota.clone();
        let used_json: serde_json::Map<String, Value> = new_used
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        // Keep any used entry we could not parse as it was.
        if let Some(old) = quota.pointer("/status/used").and_then(Value::as_object) {
            for (k, v) in old {
                if !used_json.contains_key(k) {
                    updated["status"]["used"][k] = v.clone();
                }
            }
        }
        for (k, v) in used_json {
            updated["status"]["used"][k] = v;
        }
        changed.push(updated);
    }
    Ok(changed)
}

impl ResourceQuota {
    async fn admit_create(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
        cluster: &dyn Lookup,
    ) -> ApiResult<()> {
        let quotas_resource = resource("", "resourcequotas");
        let mut quotas = cluster
            .list(quotas_resource, Some(attrs.namespace), false)
            .await?;
        if quotas.is_empty() {
            return Ok(());
        }
        for _ in 0..RETRIES {
            let changed = charge(attrs, object, &quotas)?;
            if attrs.dry_run || changed.is_empty() {
                return Ok(());
            }
            let mut failed = Vec::new();
            for quota in &changed {
                if !cluster.replace(quotas_resource, quota).await? {
                    failed.push(meta_str(quota, "name").unwrap_or("").to_string());
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            // Those changed meanwhile: charge them again from their current state.
            quotas = cluster
                .list(quotas_resource, Some(attrs.namespace), true)
                .await?
                .into_iter()
                .filter(|q| {
                    failed
                        .iter()
                        .any(|f| Some(f.as_str()) == meta_str(q, "name"))
                })
                .collect();
        }
        let name = quotas
            .first()
            .and_then(|q| meta_str(q, "name"))
            .unwrap_or("");
        Err(ApiError::conflict("", "resourcequotas", name))
    }
}

impl Plugin for ResourceQuota {
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            match object {
                Some(object)
                    if attrs.operation == Operation::Create
                        && attrs.subresource.is_none()
                        && !attrs.namespace.is_empty() =>
                {
                    self.admit_create(attrs, object, cluster).await
                }
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{Fake, admin, create, run};
    use super::*;

    fn quota(hard: Value, used: Option<Value>) -> (&'static str, Value) {
        let mut status = json!({"hard": hard});
        if let Some(used) = used {
            status["used"] = used;
        }
        (
            "resourcequotas",
            json!({"metadata": {"name": "q", "namespace": "ns", "resourceVersion": "5"}, "spec": {"hard": hard}, "status": status}),
        )
    }

    fn pod(cpu: &str) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}, "limits": {"cpu": cpu, "memory": "64Mi"}}}]}, "status": {"phase": "Pending"}})
    }

    #[test]
    fn charges_usage_with_compare_and_swap() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let cluster = Fake::with(vec![quota(
            json!({"pods": "2", "requests.cpu": "1"}),
            Some(json!({"pods": "0", "requests.cpu": "0"})),
        )]);
        run(&ResourceQuota, &attrs, &mut pod("500m"), &cluster).unwrap();
        let q = cluster.find("resourcequotas", "q").unwrap();
        assert_eq!(
            q["status"]["used"],
            json!({"pods": "1", "requests.cpu": "500m"})
        );
        assert_eq!(q["metadata"]["resourceVersion"], "6");
        let err = run(&ResourceQuota, &attrs, &mut pod("600m"), &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
        );
    }

    #[test]
    fn unknown_status_and_missing_declarations() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        // No status.hard yet: the quota does not match (upstream).
        let cluster = Fake::with(vec![(
            "resourcequotas",
            json!({"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": {"pods": "1"}}, "status": {}}),
        )]);
        run(&ResourceQuota, &attrs, &mut pod("1"), &cluster).unwrap();
        let cluster = Fake::with(vec![quota(
            json!({"pods": "1", "count/configmaps": "1"}),
            Some(json!({"count/configmaps": "0"})),
        )]);
        let err = run(&ResourceQuota, &attrs, &mut pod("1"), &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: status unknown for quota: q, resources: pods"
        );
        let cluster = Fake::with(vec![quota(
            json!({"limits.cpu": "2", "requests.memory": "1Gi"}),
            Some(json!({"limits.cpu": "0", "requests.memory": "0"})),
        )]);
        let mut bare = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = run(&ResourceQuota, &attrs, &mut bare, &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: failed quota: q: must specify limits.cpu for: a,b; requests.memory for: a,b"
        );
    }

    #[test]
    fn object_counts_and_dry_runs() {
        let user = admin();
        let mut attrs = create("", "configmaps", "ns", "cm", &user);
        let cluster = Fake::with(vec![quota(
            json!({"configmaps": "1"}),
            Some(json!({"configmaps": "1"})),
        )]);
        let err = run(
            &ResourceQuota,
            &attrs,
            &mut json!({"metadata": {"name": "cm"}}),
            &cluster,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "configmaps \"cm\" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"
        );
        let cluster = Fake::with(vec![quota(
            json!({"count/configmaps": "3"}),
            Some(json!({"count/configmaps": "1"})),
        )]);
        attrs.dry_run = true;
        run(
            &ResourceQuota,
            &attrs,
            &mut json!({"metadata": {"name": "cm"}}),
            &cluster,
        )
        .unwrap();
        assert_eq!(
            cluster.find("resourcequotas", "q").unwrap()["status"]["used"]["count/configmaps"],
            "1"
        );
    }
}
