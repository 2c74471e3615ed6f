//! LimitRanger: the LimitRange objects of a namespace default container requests and limits of new pods, and bound containers, pods and claims by min, max and maxLimitRequestRatio.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::quantity::{self, Quantity};
use super::{Attributes, Lookup, Operation, Plugin, resource};
use crate::status::ApiResult;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

pub struct LimitRanger;

type List = BTreeMap<String, Quantity>;

fn limits_of(range: &Value) -> Vec<&Value> {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

fn kind(limit: &Value) -> &str {
    limit.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Set the range's container defaults where a container has no value; record what was set in
/// the `kubernetes.io/limit-ranger` annotation.
pub fn apply_defaults(range: &Value, pod: &mut Value) {
    let mut requests = Map::new();
    let mut limits = Map::new();
    for limit in limits_of(range)
        .into_iter()
        .filter(|l| kind(l) == "Container")
    {
        for (field, into) in [("defaultRequest", &mut requests), ("default", &mut limits)] {
            if let Some(m) = limit.get(field).and_then(Value::as_object) {
                into.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(list) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for container in list {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut set = |part: &str, defaults: &Map<String, Value>| -> Vec<String> {
                let mut names = Vec::new();
                for (k, v) in defaults {
                    let res = container
                        .as_object_mut()
                        .map(|c| c.entry("resources").or_insert_with(|| json!({})));
                    let Some(res) = res.and_then(Value::as_object_mut) else {
                        continue;
                    };
                    let list = res.entry(part).or_insert_with(|| json!({}));
                    if let Some(list) = list.as_object_mut()
                        && !list.contains_key(k)
                    {
                        list.insert(k.clone(), v.clone());
                        names.push(k.clone());
                    }
                }
                names.sort();
                names
            };
            let req = set("requests", &requests);
            let lim = set("limits", &limits);
            if !req.is_empty() {
                notes.push(format!("{} request for {what} {name}", req.join(", ")));
            }
            if !lim.is_empty() {
                notes.push(format!("{} limit for {what} {name}", lim.join(", ")));
            }
        }
    }
    if !notes.is_empty() {
        let annotations = crate::object::metadata_mut(pod)
            .entry("annotations")
            .or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(
                ANNOTATION.into(),
                json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
            );
        }
    }
}

fn min_constraint(
    kind: &str,
    name: &str,
    enforced: Quantity,
    req: &List,
    lim: &List,
) -> Option<String> {
    let Some(r) = req.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if enforced > *r {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {r}"
        ));
    }
    match lim.get(name) {
        Some(l) if enforced > *l => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {l}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    enforced: Quantity,
    req: &List,
    lim: &List,
) -> Option<String> {
    let Some(l) = lim.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if *l > enforced {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {l}"
        ));
    }
    match req.get(name) {
        Some(r) if *r > enforced => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: Quantity,
    req: &List,
) -> Option<String> {
    match req.get(name) {
        None => Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
        )),
        Some(r) if *r > enforced => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

/// `limit / request` to six decimals, rounded half to even, as upstream prints it.
fn ratio_text(limit: Quantity, request: Quantity) -> String {
    let (l, r) = (limit.nanos.abs(), request.nanos.abs());
    let scaled = l * 10_000_000 / r; // seven decimals, truncated
    let exact = l * 10_000_000 % r == 0;
    let (mut six, last) = (scaled / 10, scaled % 10);
    if last > 5 || (last == 5 && (!exact || six % 2 == 1)) {
        six += 1;
    }
    format!("{}.{:06}", six / 1_000_000, six % 1_000_000)
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: Quantity,
    req: &List,
    lim: &List,
) -> Option<String> {
    let r = req.get(name).filter(|r| !r.is_zero());
    let Some(r) = r else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    };
    let l = lim.get(name).filter(|l| !l.is_zero());
    let Some(l) = l else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    };
    // limit > request * ratio, in nanos: l * 1e9 > r * ratio_nanos.
    if l.nanos.abs() * 1_000_000_000 > r.nanos.abs() * enforced.nanos {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {}",
            ratio_text(*l, *r)
        ));
    }
    None
}

/// Min, max and ratio of one limit item against one set of requests and limits.
fn check_item(limit: &Value, kind: &str, req: &List, lim: &List, errors: &mut Vec<String>) {
    for (k, v) in quantity::list(limit.get("min")) {
        errors.extend(min_constraint(kind, &k, v, req, lim));
    }
    for (k, v) in quantity::list(limit.get("max")) {
        errors.extend(max_constraint(kind, &k, v, req, lim));
    }
    for (k, v) in quantity::list(limit.get("maxLimitRequestRatio")) {
        errors.extend(ratio_constraint(kind, &k, v, req, lim));
    }
}

fn add_into(total: &mut List, list: &List) {
    for (k, v) in list {
        let sum = total.get(k).copied().unwrap_or(Quantity::ZERO).add(*v);
        total.insert(k.clone(), sum);
    }
}

fn max_into(total: &mut List, list: &List) {
    for (k, v) in list {
        if total.get(k).is_none_or(|t| v > t) {
            total.insert(k.clone(), *v);
        }
    }
}

/// The pod's effective requests or limits (`part`): the sum over containers and sidecars, or
/// the largest init container's if that is more (upstream's `podRequests`/`podLimits`).
pub fn pod_total(spec: &Value, part: &str) -> List {
    let of = |c: &Value| quantity::list(c.pointer(&format!("/resources/{part}")));
    let list = |f: &str| {
        spec.get(f)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut total = List::new();
    for c in list("containers") {
        add_into(&mut total, &of(&c));
    }
    let mut sidecars = List::new();
    let mut init = List::new();
    for c in list("initContainers") {
        let own = of(&c);
        let effective = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut tmp = own;
            add_into(&mut tmp, &sidecars);
            tmp
        };
        max_into(&mut init, &effective);
    }
    max_into(&mut total, &init);
    total
}

/// Every violation of `range` by a pod.
pub fn pod_violations(range: &Value, pod: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    for limit in limits_of(range) {
        match kind(limit) {
            "Container" => {
                for field in ["containers", "initContainers"] {
                    for c in spec
                        .get(field)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let req = quantity::list(c.pointer("/resources/requests"));
                        let lim = quantity::list(c.pointer("/resources/limits"));
                        check_item(limit, "Container", &req, &lim, &mut errors);
                    }
                }
            }
            "Pod" => {
                let req = pod_total(&spec, "requests");
                let lim = pod_total(&spec, "limits");
                check_item(limit, "Pod", &req, &lim, &mut errors);
            }
            _ => {}
        }
    }
    errors
}

/// Every violation of `range` by a claim's storage request.
fn claim_violations(range: &Value, claim: &Value, old: Option<&Value>) -> Vec<String> {
    let mut errors = Vec::new();
    let req = quantity::list(claim.pointer("/spec/resources/requests"));
    let old_req = old
        .map(|o| quantity::list(o.pointer("/spec/resources/requests")))
        .unwrap_or_default();
    let unchanged = |k: &str| matches!((req.get(k), old_req.get(k)), (Some(a), Some(b)) if a == b);
    for limit in limits_of(range)
        .into_iter()
        .filter(|l| kind(l) == "PersistentVolumeClaim")
    {
        for (k, v) in quantity::list(limit.get("min")) {
            if !unchanged(&k) {
                errors.extend(min_constraint(
                    "PersistentVolumeClaim",
                    &k,
                    v,
                    &req,
                    &List::new(),
                ));
            }
        }
        for (k, v) in quantity::list(limit.get("max")) {
            if !unchanged(&k) {
                errors.extend(max_request_constraint("PersistentVolumeClaim", &k, v, &req));
            }
        }
    }
    errors
}

/// Upstream's error aggregate: one message, or `[a, b]`.
fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        1 => unique.remove(0),
        _ => format!("[{}]", unique.join(", ")),
    }
}

impl LimitRanger {
    /// Pod creates and claim creates and updates, without subresource, of objects not being
    /// deleted.
    fn applies(attrs: &Attributes<'_>) -> bool {
        if attrs.subresource.is_some() {
            return false;
        }
        if attrs
            .old_object
            .is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_some())
        {
            return false;
        }
        (attrs.is("", "pods") && attrs.operation == Operation::Create)
            || (attrs.is("", "persistentvolumeclaims")
                && matches!(attrs.operation, Operation::Create | Operation::Update))
    }

    async fn ranges(attrs: &Attributes<'_>, cluster: &dyn Lookup) -> ApiResult<Vec<Value>> {
        cluster
            .list(resource("", "limitranges"), Some(attrs.namespace), false)
            .await
    }
}

impl Plugin for LimitRanger {
    fn admit<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: &'a mut Value,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            if !Self::applies(attrs) || !attrs.is("", "pods") {
                return Ok(());
            }
            for range in Self::ranges(attrs, cluster).await? {
                apply_defaults(&range, object);
            }
            Ok(())
        })
    }

    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            let Some(object) = object else { return Ok(()) };
            if !Self::applies(attrs) {
                return Ok(());
            }
            for range in Self::ranges(attrs, cluster).await? {
                let errors = if attrs.is("", "pods") {
                    pod_violations(&range, object)
                } else {
                    claim_violations(&range, object, attrs.old_object)
                };
                if !errors.is_empty() {
                    return Err(attrs.forbidden(Some(object), &aggregate(errors)));
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fake, admin, create, run};
    use super::*;

    fn range() -> Value {
        json!({"metadata": {"name": "lr", "namespace": "ns"}, "spec": {"limits": [
            {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "250m", "memory": "128Mi"},
             "max": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "100m"}, "maxLimitRequestRatio": {"cpu": "4"}},
            {"type": "Pod", "max": {"memory": "2Gi"}},
        ]}})
    }

    #[test]
    fn defaults_requests_and_limits() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let cluster = Fake::with(vec![("limitranges", range())]);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "web", "resources": {"limits": {"cpu": "800m"}}},
        ]}});
        run(&LimitRanger, &attrs, &mut pod, &cluster).unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "800m", "memory": "256Mi"}, "requests": {"cpu": "250m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container web; memory limit for container web"
        );
    }

    #[test]
    fn rejects_with_upstream_messages() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let cluster = Fake::with(vec![("limitranges", range())]);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "big", "resources": {"limits": {"cpu": "2"}}},
        ]}});
        let err = run(&LimitRanger, &attrs, &mut pod, &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, cpu max limit to request ratio per Container is 4, but provided ratio is 8.000000]"
        );
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "small", "resources": {"requests": {"cpu": "50m"}}},
        ]}});
        let err = run(&LimitRanger, &attrs, &mut pod, &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, cpu max limit to request ratio per Container is 4, but provided ratio is 10.000000]"
        );
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"memory": "1536Mi"}}},
        ]}});
        let err = run(&LimitRanger, &attrs, &mut pod, &cluster).unwrap_err();
        assert!(
            err.message
                .contains("maximum memory usage per Container is 1Gi, but limit is 1536Mi"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("maximum memory usage per Pod is 2Gi, but limit is 2560Mi"),
            "{}",
            err.message
        );
    }

    #[test]
    fn ratio_is_printed_to_six_decimals() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(ratio_text(q("1"), q("3")), "0.333333");
        assert_eq!(ratio_text(q("2"), q("3")), "0.666667");
        assert_eq!(ratio_text(q("800m"), q("100m")), "8.000000");
    }

    #[test]
    fn pod_totals_take_init_containers_and_sidecars() {
        let spec = json!({
            "containers": [{"resources": {"requests": {"cpu": "1"}}}, {"resources": {"requests": {"cpu": "500m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}}, {"restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}],
        });
        assert_eq!(pod_total(&spec, "requests")["cpu"].to_string(), "2");
    }
}
