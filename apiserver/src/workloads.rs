//! Workload resources: apps/v1 (deployments, replicasets, statefulsets, daemonsets, controllerrevisions), batch/v1 (jobs, cronjobs), and core/v1 replicationcontrollers and podtemplates.

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use serde_json::{Map, Value, json};

use crate::object::{meta_str, metadata_mut};
use crate::registry::{AGE, BASE, Column, NAME, NameRule, Resource, ScalePaths, WORKLOAD_SCALE};
use crate::status::{ApiError, ApiResult, FieldCause};
use crate::strategy::{FieldLabel, Strategy};

// ---------------------------------------------------------------------------------------------
// JSON helpers

/// `object[key]`, made an empty object first when it is absent or null.
fn child<'a>(object: &'a mut Value, key: &str) -> &'a mut Value {
    if !object.is_object() {
        *object = json!({});
    }
    let map = object.as_object_mut().expect("just made an object");
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = json!({});
    }
    slot
}

/// Set `object[key]` to `value` when it is absent or null (upstream's `if x == nil { x = … }`).
fn default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let slot = map.entry(key.to_string()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// Set `object[key]` when it is absent, null or an empty string (upstream's `if x == ""`).
fn default_str(object: &mut Value, key: &str, value: &str) {
    if object
        .get(key)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && let Some(map) = object.as_object_mut()
    {
        map.insert(key.to_string(), json!(value));
    }
}

fn get<'a>(object: &'a Value, pointer: &str) -> Option<&'a Value> {
    object.pointer(pointer).filter(|v| !v.is_null())
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn string<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn labels_of<'a>(object: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    object.pointer(pointer).and_then(Value::as_object)
}

fn object_name(object: &Value) -> String {
    meta_str(object, "name").unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// Field errors, worded as upstream's `field.Error`

fn required(field: &str, detail: &str) -> FieldCause {
    let mut cause = FieldCause::required(field);
    if !detail.is_empty() {
        cause.message = format!("Required value: {detail}");
    }
    cause
}

/// `Invalid value: <value>: <detail>` with the value already rendered as Go prints it.
fn invalid(field: &str, rendered: &str, detail: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueInvalid",
        field: field.to_string(),
        message: format!("Invalid value: {rendered}: {detail}"),
    }
}

fn not_supported(field: &str, rendered: &str, valid: &[&str]) -> FieldCause {
    let valid = valid
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    FieldCause {
        reason: "FieldValueNotSupported",
        field: field.to_string(),
        message: format!("Unsupported value: {rendered}: supported values: {valid}"),
    }
}

fn forbidden(field: &str, detail: &str) -> FieldCause {
    FieldCause::forbidden(field, detail)
}

const NEGATIVE: &str = "must be greater than or equal to 0";
const IMMUTABLE: &str = "field is immutable";

/// `ValidateNonnegativeField` of the integer at `pointer` (absent counts as valid).
fn nonnegative(causes: &mut Vec<FieldCause>, object: &Value, pointer: &str, field: &str) {
    if let Some(n) = int(object, pointer).filter(|n| *n < 0) {
        causes.push(invalid(field, &n.to_string(), NEGATIVE));
    }
}

/// A JSON value as Go's `%#v`/`%v` would print the corresponding field value in a message.
fn go_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

/// A `map[string]string` as Go's `%#v` prints it (keys sorted).
fn go_map(map: Option<&Value>) -> String {
    match map.and_then(Value::as_object) {
        None => "map[string]string(nil)".into(),
        Some(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let body = pairs
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ");
            format!("map[string]string{{{body}}}")
        }
    }
}

fn go_strings(values: Option<&Value>) -> String {
    match values.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(list) => format!(
            "[]string{{{}}}",
            list.iter()
                .map(|v| format!("{:?}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A `metav1.LabelSelector` as Go's `%#v` prints it.
fn go_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return "null".into();
    };
    let expressions = match selector.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => format!(
            "[]v1.LabelSelectorRequirement{{{}}}",
            list.iter()
                .map(|e| format!(
                    "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{}}}",
                    string(e, "/key"),
                    string(e, "/operator"),
                    go_strings(e.get("values"))
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}",
        go_map(selector.get("matchLabels"))
    )
}

/// An `intstr.IntOrString` as Go's `%#v` prints it.
fn go_int_or_string(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
        Some(v) => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            v.as_i64().unwrap_or(0)
        ),
        None => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors

/// Whether a `metav1.LabelSelector` converts to a selector (`LabelSelectorAsSelector` succeeds).
fn selector_convertible(selector: &Value) -> bool {
    selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            match string(e, "/operator") {
                "In" | "NotIn" => values > 0,
                "Exists" | "DoesNotExist" => values == 0,
                _ => false,
            }
        })
}

/// Whether a selector selects nothing in particular (`labels.Everything()`).
pub(crate) fn selector_empty(selector: &Value) -> bool {
    let count = |f: &str| match selector.get(f) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    count("matchLabels") + count("matchExpressions") == 0
}

/// Whether `labels` satisfy a `metav1.LabelSelector`; a missing selector matches nothing.
pub(crate) fn selector_matches(
    selector: Option<&Value>,
    labels: Option<&Map<String, Value>>,
) -> bool {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return false;
    };
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let key = string(e, "/key");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match string(e, "/operator") {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// `ValidateLabelSelector`: each requirement's operator and values.
pub(crate) fn selector_requirement_causes(path: &str, selector: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    for (i, e) in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match string(e, "/operator") {
            "In" | "NotIn" if values == 0 => causes.push(required(
                &format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if values > 0 => causes.push(forbidden(
                &format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(invalid(
                &format!("{at}.operator"),
                &format!("{other:?}"),
                "not a valid selector operator",
            )),
        }
    }
    causes
}

/// `spec.selector` of deployments, replicasets and statefulsets: required, valid, not empty.
fn required_selector_causes(spec: &Value, kind: &str) -> Vec<FieldCause> {
    match get(spec, "/selector") {
        None => vec![required("spec.selector", "")],
        Some(selector) => {
            let mut causes = selector_requirement_causes("spec.selector", selector);
            if selector_empty(selector) {
                causes.push(invalid(
                    "spec.selector",
                    &go_selector(Some(selector)),
                    &format!("empty selector is invalid for {kind}"),
                ));
            }
            causes
        }
    }
}

/// The template's labels must satisfy the selector (skipped for an empty selector, which
/// selects everything; a missing one matches nothing).
fn template_labels_cause(
    selector: Option<&Value>,
    template: &Value,
    path: &str,
) -> Option<FieldCause> {
    if selector.is_some_and(selector_empty) {
        return None;
    }
    let labels = template.pointer("/metadata/labels");
    if selector_matches(selector, labels.and_then(Value::as_object)) {
        return None;
    }
    Some(invalid(
        &format!("{path}.metadata.labels"),
        &go_map(labels),
        "`selector` does not match template `labels`",
    ))
}

/// `selector` is immutable (apps/v1).
fn immutable_selector(old: &Value, new: &Value, pointer: &str, field: &str) -> Option<FieldCause> {
    let (a, b) = (get(old, pointer), get(new, pointer));
    (a != b).then(|| invalid(field, &go_selector(b), IMMUTABLE))
}

// ---------------------------------------------------------------------------------------------
// Pod templates

/// Defaults of a pod template (`SetDefaults_PodSpec` and friends), with the metadata Go always
/// serialises (`creationTimestamp: null`). `enableServiceLinks` is a pod default, not a pod
/// template one, so it is left as the client sent it.
fn default_template(template: &mut Value) {
    let metadata = child(template, "metadata");
    if let Some(map) = metadata.as_object_mut() {
        map.entry("creationTimestamp").or_insert(Value::Null);
    }
    let spec = child(template, "spec");
    let had_links = spec.get("enableServiceLinks").is_some();
    crate::pod::default_spec(spec);
    if !had_links && let Some(map) = spec.as_object_mut() {
        map.remove("enableServiceLinks");
    }
}

/// `ValidatePodTemplateSpec`: the pod spec at `<path>.spec`.
fn template_causes(template: &Value, path: &str) -> Vec<FieldCause> {
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    crate::pod::spec_causes(&format!("{path}.spec"), &spec)
}

/// Workloads whose pods always restart: restartPolicy Always, no activeDeadlineSeconds.
fn always_restart_causes(template: &Value, path: &str, kind: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let policy = string(template, "/spec/restartPolicy");
    if policy != "Always" {
        causes.push(not_supported(
            &format!("{path}.spec.restartPolicy"),
            &format!("{policy:?}"),
            &["Always"],
        ));
    }
    if get(template, "/spec/activeDeadlineSeconds").is_some() {
        causes.push(forbidden(
            &format!("{path}.spec.activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    causes
}

/// `ValidatePodTemplateSpecForReplicaSet` (deployments and replicasets), run only when the
/// selector converts.
fn replica_set_template_causes(spec: &Value) -> Vec<FieldCause> {
    let selector = get(spec, "/selector");
    if selector.is_some_and(|s| !selector_convertible(s)) {
        return vec![invalid(
            "spec.selector",
            &go_selector(selector),
            "invalid label selector",
        )];
    }
    let template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
    let mut causes: Vec<FieldCause> = template_labels_cause(selector, &template, "spec.template")
        .into_iter()
        .collect();
    causes.extend(template_causes(&template, "spec.template"));
    causes.extend(always_restart_causes(
        &template,
        "spec.template",
        "ReplicaSet",
    ));
    causes
}

/// Status validation shared by the replicated workloads (`Validate*Status`): counters are
/// non-negative, the `bounded` ones are at most `status.replicas`, `availableReplicas` is at
/// most `readyReplicas` (worded by `ready_bound`), and `collisionCount` never goes down.
struct StatusRules {
    nonnegative: &'static [&'static str],
    bounded: &'static [&'static str],
    ready_bound: Option<&'static str>,
    collision_count: bool,
}

fn status_causes(old: &Value, object: &Value, rules: &StatusRules) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let status = object.get("status").cloned().unwrap_or_else(|| json!({}));
    for field in rules.nonnegative {
        nonnegative(
            &mut causes,
            &status,
            &format!("/{field}"),
            &format!("status.{field}"),
        );
    }
    let value = |field: &str| int(&status, &format!("/{field}")).unwrap_or(0);
    for field in rules.bounded {
        if value(field) > value("replicas") {
            causes.push(invalid(
                &format!("status.{field}"),
                &value(field).to_string(),
                "cannot be greater than status.replicas",
            ));
        }
    }
    if let Some(detail) = rules.ready_bound
        && value("availableReplicas") > value("readyReplicas")
    {
        causes.push(invalid(
            "status.availableReplicas",
            &value("availableReplicas").to_string(),
            detail,
        ));
    }
    if rules.collision_count {
        let before = int(old, "/status/collisionCount");
        let after = int(object, "/status/collisionCount");
        if before.is_some_and(|b| after.is_none_or(|a| a < b)) {
            causes.push(invalid(
                "status.collisionCount",
                &after.unwrap_or(0).to_string(),
                "cannot be decremented",
            ));
        }
    }
    causes
}

const DEPLOYMENT_STATUS: StatusRules = StatusRules {
    nonnegative: &[
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
        "collisionCount",
    ],
    bounded: &["updatedReplicas", "readyReplicas", "availableReplicas"],
    ready_bound: Some("cannot be greater than readyReplicas"),
    collision_count: true,
};

const REPLICA_SET_STATUS: StatusRules = StatusRules {
    nonnegative: &[
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ],
    bounded: &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
    ready_bound: Some("cannot be greater than readyReplicas"),
    collision_count: false,
};

const STATEFUL_SET_STATUS: StatusRules = StatusRules {
    nonnegative: &[
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
        "observedGeneration",
        "collisionCount",
    ],
    bounded: &[
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
    ],
    ready_bound: Some("cannot be greater than status.readyReplicas"),
    collision_count: true,
};

const DAEMON_SET_STATUS: StatusRules = StatusRules {
    nonnegative: &[
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
        "observedGeneration",
        "updatedNumberScheduled",
        "numberAvailable",
        "numberUnavailable",
        "collisionCount",
    ],
    bounded: &[],
    ready_bound: None,
    collision_count: true,
};

const JOB_STATUS: StatusRules = StatusRules {
    nonnegative: &["active", "succeeded", "failed", "ready", "terminating"],
    bounded: &[],
    ready_bound: None,
    collision_count: false,
};

fn fail(group: &str, kind: &str, object: &Value, causes: Vec<FieldCause>) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(group, kind, &object_name(object), causes))
    }
}

// ---------------------------------------------------------------------------------------------
// Int-or-percent fields

fn percent(value: &str) -> Option<i64> {
    let digits = value.strip_suffix('%')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `getIntOrPercentValue`.
fn int_or_percent_value(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::String(s)) => percent(s).unwrap_or_else(|| s.parse().unwrap_or(0)),
        Some(v) => v.as_i64().unwrap_or(0),
        None => 0,
    }
}

/// `ValidatePositiveIntOrPercent` and, with `max_100`, `IsNotMoreThan100Percent`.
fn int_or_percent_causes(value: Option<&Value>, field: &str, max_100: bool) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    match value {
        Some(Value::String(s)) => match percent(s) {
            None => causes.push(invalid(
                field,
                &go_int_or_string(value),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
            Some(p) if max_100 && p > 100 => causes.push(invalid(
                field,
                &go_int_or_string(value),
                "must not be greater than 100%",
            )),
            Some(_) => {}
        },
        Some(v) => {
            if let Some(n) = v.as_i64().filter(|n| *n < 0) {
                causes.push(invalid(field, &n.to_string(), NEGATIVE));
            }
        }
        None => {}
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// Deployments

#[derive(Debug)]
pub struct Deployments;
pub static DEPLOYMENTS: Deployments = Deployments;

/// `SetDefaults_Deployment` plus the pod template's defaults.
fn default_deployment(object: &mut Value) {
    let spec = child(object, "spec");
    default(spec, "replicas", json!(1));
    let strategy = child(spec, "strategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy["type"] == "RollingUpdate" {
        let rolling = child(strategy, "rollingUpdate");
        default(rolling, "maxUnavailable", json!("25%"));
        default(rolling, "maxSurge", json!("25%"));
    }
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    default_template(child(spec, "template"));
}

fn deployment_strategy_causes(spec: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let rolling = get(spec, "/strategy/rollingUpdate");
    match string(spec, "/strategy/type") {
        "Recreate" => {
            if rolling.is_some() {
                causes.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match rolling {
            None => causes.push(required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(rolling) => {
                let unavailable = get(rolling, "/maxUnavailable");
                let surge = get(rolling, "/maxSurge");
                let at = "spec.strategy.rollingUpdate";
                causes.extend(int_or_percent_causes(
                    unavailable,
                    &format!("{at}.maxUnavailable"),
                    false,
                ));
                causes.extend(int_or_percent_causes(
                    surge,
                    &format!("{at}.maxSurge"),
                    false,
                ));
                if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                    causes.push(invalid(
                        &format!("{at}.maxUnavailable"),
                        &go_int_or_string(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if let Some(Value::String(s)) = unavailable
                    && percent(s).is_some_and(|p| p > 100) {
                        causes.push(invalid(
                            &format!("{at}.maxUnavailable"),
                            &go_int_or_string(unavailable),
                            "must not be greater than 100%",
                        ));
                    }
            }
        },
        other => causes.push(not_supported(
            "spec.strategy",
            &format!(
                "apps.DeploymentStrategy{{Type:{other:?}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}"
            ),
            &["Recreate", "RollingUpdate"],
        )),
    }
    causes
}

/// `ValidateDeploymentSpec`.
fn deployment_causes(object: &Value) -> Vec<FieldCause> {
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut causes = Vec::new();
    nonnegative(&mut causes, &spec, "/replicas", "spec.replicas");
    causes.extend(required_selector_causes(&spec, "deployment"));
    causes.extend(replica_set_template_causes(&spec));
    causes.extend(deployment_strategy_causes(&spec));
    nonnegative(
        &mut causes,
        &spec,
        "/minReadySeconds",
        "spec.minReadySeconds",
    );
    nonnegative(
        &mut causes,
        &spec,
        "/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
    );
    if let Some(deadline) = int(&spec, "/progressDeadlineSeconds") {
        nonnegative(
            &mut causes,
            &spec,
            "/progressDeadlineSeconds",
            "spec.progressDeadlineSeconds",
        );
        if deadline <= int(&spec, "/minReadySeconds").unwrap_or(0) {
            causes.push(invalid(
                "spec.progressDeadlineSeconds",
                &deadline.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    causes
}

impl Strategy for Deployments {
    /// Deployments also count annotation changes (upstream's deployment strategy).
    fn bumps_generation(&self, old: &Value, new: &Value) -> bool {
        crate::object::spec_changed(old, new)
            || old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations")
    }

    /// Upstream's deployment status strategy resets only the spec and the labels: the
    /// deployment controller records `deployment.kubernetes.io/revision` with its status
    /// write, which leaves the generation alone.
    fn status_metadata(&self) -> &'static [&'static str] {
        &["annotations"]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_deployment(object);
        object["status"] = json!({});
        fail("apps", "Deployment", object, deployment_causes(object))
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_deployment(object);
        let mut causes = deployment_causes(object);
        causes.extend(status_causes(old, object, &DEPLOYMENT_STATUS));
        causes.extend(immutable_selector(
            old,
            object,
            "/spec/selector",
            "spec.selector",
        ));
        fail("apps", "Deployment", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// ReplicaSets

#[derive(Debug)]
pub struct ReplicaSets;
pub static REPLICA_SETS: ReplicaSets = ReplicaSets;

fn default_replica_set(object: &mut Value) {
    let spec = child(object, "spec");
    default(spec, "replicas", json!(1));
    default_template(child(spec, "template"));
}

/// `ValidateReplicaSetSpec`.
fn replica_set_causes(object: &Value) -> Vec<FieldCause> {
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut causes = Vec::new();
    nonnegative(&mut causes, &spec, "/replicas", "spec.replicas");
    nonnegative(
        &mut causes,
        &spec,
        "/minReadySeconds",
        "spec.minReadySeconds",
    );
    // Upstream's message says "deployment" for replicasets too.
    causes.extend(required_selector_causes(&spec, "deployment"));
    causes.extend(replica_set_template_causes(&spec));
    causes
}

impl Strategy for ReplicaSets {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "status.replicas",
            pointer: "/status/replicas",
            default: "0",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_replica_set(object);
        object["status"] = json!({"replicas": 0});
        fail("apps", "ReplicaSet", object, replica_set_causes(object))
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_replica_set(object);
        let mut causes = replica_set_causes(object);
        causes.extend(status_causes(old, object, &REPLICA_SET_STATUS));
        causes.extend(immutable_selector(
            old,
            object,
            "/spec/selector",
            "spec.selector",
        ));
        fail("apps", "ReplicaSet", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// StatefulSets

#[derive(Debug)]
pub struct StatefulSets;
pub static STATEFUL_SETS: StatefulSets = StatefulSets;

/// `SetDefaults_StatefulSet` (StatefulSetAutoDeletePVC is GA; MaxUnavailableStatefulSet is off).
fn default_stateful_set(object: &mut Value) {
    let spec = child(object, "spec");
    default_str(spec, "podManagementPolicy", "OrderedReady");
    let strategy = child(spec, "updateStrategy");
    if strategy
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        strategy["type"] = json!("RollingUpdate");
        child(strategy, "rollingUpdate");
    }
    if strategy["type"] == "RollingUpdate"
        && let Some(rolling) = strategy.get_mut("rollingUpdate").filter(|r| r.is_object())
    {
        default(rolling, "partition", json!(0));
    }
    let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
    default_str(retention, "whenDeleted", "Retain");
    default_str(retention, "whenScaled", "Retain");
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default_template(child(spec, "template"));
    // Claim templates are PersistentVolumeClaims with their own defaults.
    for claim in spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter(|c| c.is_object())
    {
        default_str(claim, "apiVersion", "v1");
        default_str(claim, "kind", "PersistentVolumeClaim");
        if let Some(map) = child(claim, "metadata").as_object_mut() {
            map.entry("creationTimestamp").or_insert(Value::Null);
        }
        default_str(child(claim, "spec"), "volumeMode", "Filesystem");
        default_str(child(claim, "status"), "phase", "Pending");
    }
}

fn stateful_set_strategy_causes(spec: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let rolling = get(spec, "/updateStrategy/rollingUpdate");
    match string(spec, "/updateStrategy/type") {
        "" => causes.push(required("spec.updateStrategy", "")),
        "OnDelete" => {
            if rolling.is_some() {
                causes.push(invalid(
                    "spec.updateStrategy.rollingUpdate",
                    &rolling.map(Value::to_string).unwrap_or_default(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = rolling {
                let at = "spec.updateStrategy.rollingUpdate";
                nonnegative(
                    &mut causes,
                    rolling,
                    "/partition",
                    &format!("{at}.partition"),
                );
                if let Some(max) = get(rolling, "/maxUnavailable") {
                    let field = format!("{at}.maxUnavailable");
                    causes.extend(int_or_percent_causes(Some(max), &field, false));
                    if int_or_percent_value(Some(max)) == 0 {
                        causes.push(invalid(&field, &go_int_or_string(Some(max)), "cannot be 0"));
                    }
                    if let Value::String(s) = max
                        && percent(s).is_some_and(|p| p > 100)
                    {
                        causes.push(invalid(
                            &field,
                            &go_int_or_string(Some(max)),
                            "must not be greater than 100%",
                        ));
                    }
                }
            }
        }
        other => causes.push(invalid(
            "spec.updateStrategy",
            &format!("apps.StatefulSetUpdateStrategy{{Type:{other:?}}}"),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    causes
}

/// `ValidateStatefulSetSpec`. Upstream does not validate a statefulset's pod spec beyond its
/// labels, restart policy and deadline, and neither do we.
fn stateful_set_causes(object: &Value) -> Vec<FieldCause> {
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut causes = Vec::new();
    // The service name becomes the pods' subdomain, a DNS label.
    let service = string(&spec, "/serviceName");
    if !service.is_empty() {
        causes.extend(crate::object::validate_name(
            NameRule::Dns1123Label,
            service,
            "spec.serviceName",
        ));
    }
    match string(&spec, "/podManagementPolicy") {
        "" => causes.push(required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => causes.push(invalid(
            "spec.podManagementPolicy",
            &format!("{other:?}"),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    causes.extend(stateful_set_strategy_causes(&spec));
    for field in ["whenDeleted", "whenScaled"] {
        if let Some(policy) = get(
            &spec,
            &format!("/persistentVolumeClaimRetentionPolicy/{field}"),
        ) {
            let value = policy.as_str().unwrap_or_default();
            if !matches!(value, "Retain" | "Delete") {
                causes.push(not_supported(
                    &format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                    &format!("{value:?}"),
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    nonnegative(&mut causes, &spec, "/replicas", "spec.replicas");
    nonnegative(
        &mut causes,
        &spec,
        "/minReadySeconds",
        "spec.minReadySeconds",
    );
    nonnegative(&mut causes, &spec, "/ordinals/start", "spec.ordinals.start");
    causes.extend(required_selector_causes(&spec, "statefulset"));
    let selector = get(&spec, "/selector");
    let template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
    if selector.is_some_and(|s| !selector_convertible(s)) {
        causes.push(invalid("spec.selector", &go_selector(selector), ""));
    } else {
        causes.extend(template_labels_cause(selector, &template, "spec.template"));
    }
    let policy = string(&template, "/spec/restartPolicy");
    if policy != "Always" {
        causes.push(not_supported(
            "spec.template.spec.restartPolicy",
            &format!("{policy:?}"),
            &["Always"],
        ));
    }
    if get(&template, "/spec/activeDeadlineSeconds").is_some() {
        causes.push(forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
    causes
}

impl Strategy for StatefulSets {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_stateful_set(object);
        object["status"] = json!({"availableReplicas": 0, "replicas": 0});
        fail("apps", "StatefulSet", object, stateful_set_causes(object))
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_stateful_set(object);
        let mut causes = stateful_set_causes(object);
        causes.extend(status_causes(old, object, &STATEFUL_SET_STATUS));
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let rest = |o: &Value| -> Map<String, Value> {
            o.get("spec")
                .and_then(Value::as_object)
                .map(|s| {
                    s.iter()
                        .filter(|(k, v)| !mutable.contains(&k.as_str()) && !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (mut a, mut b): (Vec<_>, Vec<_>) = (
            rest(old).into_iter().collect(),
            rest(object).into_iter().collect(),
        );
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        if a != b {
            causes.push(forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
        fail("apps", "StatefulSet", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// DaemonSets

#[derive(Debug)]
pub struct DaemonSets;
pub static DAEMON_SETS: DaemonSets = DaemonSets;

/// apps/v1 keeps the internal `templateGeneration` in this annotation.
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn default_daemon_set(object: &mut Value) {
    let spec = child(object, "spec");
    let strategy = child(spec, "updateStrategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy["type"] == "RollingUpdate" {
        let rolling = child(strategy, "rollingUpdate");
        default(rolling, "maxUnavailable", json!(1));
        default(rolling, "maxSurge", json!(0));
    }
    default(spec, "revisionHistoryLimit", json!(10));
    default_template(child(spec, "template"));
}

fn template_generation(object: &Value) -> i64 {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_GENERATION))
        .and_then(Value::as_str)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(object: &mut Value, generation: i64) {
    let annotations = metadata_mut(object)
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[TEMPLATE_GENERATION] = json!(generation.to_string());
}

fn daemon_set_strategy_causes(spec: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    match string(spec, "/updateStrategy/type") {
        "OnDelete" => {}
        "RollingUpdate" => match get(spec, "/updateStrategy/rollingUpdate") {
            None => causes.push(required("spec.updateStrategy.rollingUpdate", "")),
            Some(rolling) => {
                let at = "spec.updateStrategy.rollingUpdate";
                let unavailable = get(rolling, "/maxUnavailable");
                let surge = get(rolling, "/maxSurge");
                causes.extend(int_or_percent_causes(
                    unavailable,
                    &format!("{at}.maxUnavailable"),
                    true,
                ));
                causes.extend(int_or_percent_causes(
                    surge,
                    &format!("{at}.maxSurge"),
                    true,
                ));
                match (
                    int_or_percent_value(unavailable) != 0,
                    int_or_percent_value(surge) != 0,
                ) {
                    (true, true) => causes.push(invalid(
                        &format!("{at}.maxSurge"),
                        &go_int_or_string(surge),
                        "may not be set when maxUnavailable is non-zero",
                    )),
                    (false, false) => causes.push(required(
                        &format!("{at}.maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    )),
                    _ => {}
                }
            }
        },
        other => causes.push(not_supported(
            "spec.updateStrategy",
            &format!(
                "apps.DaemonSetUpdateStrategy{{Type:{other:?}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}"
            ),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    causes
}

/// `ValidateDaemonSetSpec`.
fn daemon_set_causes(object: &Value) -> Vec<FieldCause> {
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let selector = get(&spec, "/selector");
    let template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
    let mut causes = selector
        .map(|s| selector_requirement_causes("spec.selector", s))
        .unwrap_or_default();
    if selector.is_none_or(selector_convertible)
        && !selector_matches(
            selector,
            template
                .pointer("/metadata/labels")
                .and_then(Value::as_object),
        )
    {
        causes.push(invalid(
            "spec.template.metadata.labels",
            &go_map(template.pointer("/metadata/labels")),
            "`selector` does not match template `labels`",
        ));
    }
    if selector.is_some_and(selector_empty) {
        causes.push(invalid(
            "spec.selector",
            &go_selector(selector),
            "empty selector is invalid for daemonset",
        ));
    }
    causes.extend(template_causes(&template, "spec.template"));
    causes.extend(always_restart_causes(
        &template,
        "spec.template",
        "DaemonSet",
    ));
    nonnegative(
        &mut causes,
        &spec,
        "/minReadySeconds",
        "spec.minReadySeconds",
    );
    causes.extend(daemon_set_strategy_causes(&spec));
    nonnegative(
        &mut causes,
        &spec,
        "/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
    );
    causes
}

impl Strategy for DaemonSets {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_daemon_set(object);
        object["status"] = json!({
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0,
        });
        let generation = template_generation(object).max(1);
        set_template_generation(object, generation);
        fail("apps", "DaemonSet", object, daemon_set_causes(object))
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_daemon_set(object);
        // The template generation is the server's: the old one, bumped when the template
        // changes.
        let changed = old.pointer("/spec/template") != object.pointer("/spec/template");
        set_template_generation(object, template_generation(old).max(1) + i64::from(changed));
        let mut causes = daemon_set_causes(object);
        causes.extend(status_causes(old, object, &DAEMON_SET_STATUS));
        causes.extend(immutable_selector(
            old,
            object,
            "/spec/selector",
            "spec.selector",
        ));
        fail("apps", "DaemonSet", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// ControllerRevisions

#[derive(Debug)]
pub struct ControllerRevisions;
pub static CONTROLLER_REVISIONS: ControllerRevisions = ControllerRevisions;

fn controller_revision_causes(object: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    if get(object, "/data").is_none() {
        causes.push(required("data", "data is mandatory"));
    }
    nonnegative(&mut causes, object, "/revision", "revision");
    causes
}

impl Strategy for ControllerRevisions {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        fail(
            "apps",
            "ControllerRevision",
            object,
            controller_revision_causes(object),
        )
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        let mut causes = controller_revision_causes(object);
        if get(old, "/data") != get(object, "/data") {
            causes.push(invalid("data", &go_value(get(object, "/data")), IMMUTABLE));
        }
        fail("apps", "ControllerRevision", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

#[derive(Debug)]
pub struct Jobs;
pub static JOBS: Jobs = Jobs;

const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// `SetDefaults_Job` on a job spec (the parts a CronJob's job template does not get are done
/// by [`default_job`]).
fn default_job_spec(spec: &mut Value) {
    default_template(child(spec, "template"));
    for rule in spec
        .pointer_mut("/podFailurePolicy/rules")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for pattern in rule
            .get_mut("onPodConditions")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            default_str(pattern, "status", "True");
        }
    }
}

/// `SetDefaults_Job`.
fn default_job(object: &mut Value) {
    let spec = child(object, "spec");
    if get(spec, "/completions").is_none() && get(spec, "/parallelism").is_none() {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    default(spec, "parallelism", json!(1));
    if get(spec, "/backoffLimitPerIndex").is_some() {
        default(spec, "backoffLimit", json!(i32::MAX));
    } else {
        default(spec, "backoffLimit", json!(6));
    }
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let replacement = if get(spec, "/podFailurePolicy").is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default(spec, "podReplacementPolicy", json!(replacement));
    default(spec, "manualSelector", json!(false));
    default_job_spec(spec);
}

/// Upstream shares the template's labels map with the job's when the job has none, so the
/// job ends up labelled with the template's final labels (generated ones included).
fn default_job_labels(object: &mut Value) {
    let Some(labels) = object.pointer("/spec/template/metadata/labels").cloned() else {
        return;
    };
    let meta = metadata_mut(object);
    if meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), labels);
    }
}

/// `generateSelector`: the controller-uid selector and the job-name/controller-uid labels.
fn generate_job_selector(object: &mut Value) {
    let name = object_name(object);
    let uid = meta_str(object, "uid").unwrap_or_default().to_string();
    let spec = child(object, "spec");
    let labels = child(child(child(spec, "template"), "metadata"), "labels");
    for (key, value) in [
        (LEGACY_JOB_NAME, &name),
        (JOB_NAME, &name),
        (LEGACY_CONTROLLER_UID, &uid),
        (CONTROLLER_UID, &uid),
    ] {
        if let Some(map) = labels.as_object_mut() {
            map.entry(key).or_insert_with(|| json!(value));
        }
    }
    let match_labels = child(child(spec, "selector"), "matchLabels");
    if let Some(map) = match_labels.as_object_mut() {
        map.entry(CONTROLLER_UID).or_insert_with(|| json!(uid));
    }
}

/// `validateJobSpec`: what a job and a CronJob's job template share; `path` is `spec` or
/// `spec.jobTemplate.spec`.
fn job_spec_causes(spec: &Value, path: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(
            &mut causes,
            spec,
            &format!("/{field}"),
            &format!("{path}.{field}"),
        );
    }
    if get(spec, "/maxFailedIndexes").is_some() && get(spec, "/backoffLimitPerIndex").is_none() {
        causes.push(required(
            &format!("{path}.backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = get(spec, "/completionMode").and_then(Value::as_str);
    if let Some(mode) = mode
        && !matches!(mode, "NonIndexed" | "Indexed")
    {
        causes.push(not_supported(
            &format!("{path}.completionMode"),
            &format!("{mode:?}"),
            &["NonIndexed", "Indexed"],
        ));
    }
    if mode == Some("Indexed") {
        if get(spec, "/completions").is_none() {
            causes.push(required(
                &format!("{path}.completions"),
                "when completion mode is Indexed",
            ));
        }
        if let Some(p) = int(spec, "/parallelism").filter(|p| *p > 100_000) {
            causes.push(invalid(
                &format!("{path}.parallelism"),
                &p.to_string(),
                "must be less than or equal to 100000 when completion mode is Indexed",
            ));
        }
    } else {
        for field in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = int(spec, &format!("/{field}")) {
                causes.push(invalid(
                    &format!("{path}.{field}"),
                    &v.to_string(),
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if let Some(policy) = get(spec, "/podReplacementPolicy").and_then(Value::as_str) {
        if get(spec, "/podFailurePolicy").is_some() {
            if policy != "Failed" {
                causes.push(not_supported(
                    &format!("{path}.podReplacementPolicy"),
                    &format!("{policy:?}"),
                    &["Failed"],
                ));
            }
        } else if !matches!(policy, "Failed" | "TerminatingOrFailed") {
            causes.push(not_supported(
                &format!("{path}.podReplacementPolicy"),
                &format!("{policy:?}"),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
    causes.extend(template_causes(&template, &format!("{path}.template")));
    // The pod defaults make a missing restartPolicy Always, so both mean "not chosen".
    let restart = format!("{path}.template.spec.restartPolicy");
    match string(&template, "/spec/restartPolicy") {
        "Always" | "" => causes.push(required(&restart, r#"valid values: "OnFailure", "Never""#)),
        "OnFailure" if get(spec, "/podFailurePolicy").is_some() => causes.push(invalid(
            &restart,
            "\"OnFailure\"",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => causes.push(not_supported(
            &restart,
            &format!("{other:?}"),
            &["OnFailure", "Never"],
        )),
    }
    causes
}

/// `validateGeneratedSelector`: an auto-generated selector and labels must be the job's own.
fn generated_selector_causes(object: &Value, prefixed_labels: bool) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    if object.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return causes;
    }
    let Some(selector) = get(object, "/spec/selector") else {
        return causes;
    };
    let uid = meta_str(object, "uid").unwrap_or_default();
    let name = object_name(object);
    if uid.is_empty() {
        causes.push(required("metadata.uid", ""));
    }
    let labels = object.pointer("/spec/template/metadata/labels");
    let mut has_label = |key: &str, expected: &str| {
        let field = format!("spec.template.metadata.labels[{key}]");
        match labels.and_then(|l| l.get(key)).and_then(Value::as_str) {
            None => causes.push(required(&field, expected)),
            Some(actual) if actual != expected => {
                causes.push(invalid(
                    &field,
                    &go_map(labels),
                    &format!("must be '{expected}'"),
                ));
            }
            Some(_) => {}
        }
    };
    has_label(LEGACY_CONTROLLER_UID, uid);
    has_label(LEGACY_JOB_NAME, &name);
    let mut expected = Map::new();
    if prefixed_labels {
        has_label(CONTROLLER_UID, uid);
        has_label(JOB_NAME, &name);
        expected.insert(CONTROLLER_UID.into(), json!(uid));
        expected.insert(JOB_NAME.into(), json!(name));
    }
    expected.insert(LEGACY_CONTROLLER_UID.into(), json!(uid));
    expected.insert(LEGACY_JOB_NAME.into(), json!(name));
    if selector_convertible(selector) && !selector_matches(Some(selector), Some(&expected)) {
        causes.push(invalid(
            "spec.selector",
            &go_selector(Some(selector)),
            "`selector` not auto-generated",
        ));
    }
    causes
}

/// `ValidateJob`.
fn job_causes(object: &Value, prefixed_labels: bool) -> Vec<FieldCause> {
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut causes = generated_selector_causes(object, prefixed_labels);
    causes.extend(job_spec_causes(&spec, "spec"));
    let selector = get(&spec, "/selector");
    match selector {
        None => causes.push(required("spec.selector", "")),
        Some(s) => causes.extend(selector_requirement_causes("spec.selector", s)),
    }
    if selector.is_none_or(selector_convertible) {
        let template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
        let labels = template.pointer("/metadata/labels");
        // An empty selector selects everything; a missing one nothing.
        let matches = selector.is_some_and(selector_empty)
            || selector_matches(selector, labels.and_then(Value::as_object));
        if !matches {
            causes.push(invalid(
                "spec.template.metadata.labels",
                &go_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if string(&spec, "/completionMode") == "Indexed"
        && let Some(completions) = int(&spec, "/completions").filter(|c| *c > 0)
    {
        let hostname = format!("{}-{}", object_name(object), completions - 1);
        if !crate::object::validate_name(NameRule::Dns1123Label, &hostname, "x").is_empty() {
            causes.push(invalid(
                "metadata.name",
                &format!("{:?}", object_name(object)),
                &format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    causes
}

/// The template with the scheduling directives a suspended, never-started job may change
/// taken from `new`.
fn job_template_for_compare(old: &Value, new: &Value, mutable_scheduling: bool) -> Value {
    let mut template = old
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if !mutable_scheduling || !template.is_object() {
        return template;
    }
    let new_template = new
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let copy = |template: &mut Value, pointer: &str| {
        let value = new_template.pointer(pointer).cloned();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer with a parent");
        if let Some(map) = template.pointer_mut(parent).and_then(Value::as_object_mut) {
            match value {
                Some(v) => drop(map.insert(key.to_string(), v)),
                None => drop(map.remove(key)),
            }
        }
    };
    copy(&mut template, "/spec/nodeSelector");
    copy(&mut template, "/spec/tolerations");
    copy(&mut template, "/spec/schedulingGates");
    copy(&mut template, "/metadata/annotations");
    copy(&mut template, "/metadata/labels");
    // Node affinity may change; the rest of the affinity may not.
    let new_node_affinity = new_template.pointer("/spec/affinity/nodeAffinity").cloned();
    match (
        new_template.pointer("/spec/affinity").is_some(),
        template.pointer("/spec/affinity").is_some(),
    ) {
        (false, true) => {
            let emptied = template
                .pointer_mut("/spec/affinity")
                .and_then(Value::as_object_mut)
                .map(|affinity| {
                    affinity.remove("nodeAffinity");
                    affinity.is_empty()
                });
            if emptied == Some(true)
                && let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.remove("affinity");
            }
        }
        (true, false) => {
            let mut affinity = json!({});
            if let Some(node) = new_node_affinity {
                affinity["nodeAffinity"] = node;
            }
            template["spec"]["affinity"] = affinity;
        }
        (true, true) => copy(&mut template, "/spec/affinity/nodeAffinity"),
        (false, false) => {}
    }
    template
}

/// `ValidateJobSpecUpdate`.
fn job_update_causes(old: &Value, new: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let completions = get(new, "/spec/completions");
    if completions != get(old, "/spec/completions") {
        let indexed = string(new, "/spec/completionMode") == "Indexed";
        if !indexed {
            causes.push(invalid(
                "spec.completions",
                &go_value(completions),
                IMMUTABLE,
            ));
        } else if let Some(c) = completions.and_then(Value::as_i64)
            && Some(c) != int(new, "/spec/parallelism")
        {
            causes.push(invalid(
                "spec.completions",
                &c.to_string(),
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    causes.extend(immutable_selector(
        old,
        new,
        "/spec/selector",
        "spec.selector",
    ));
    let mutable_scheduling = old.pointer("/spec/suspend") == Some(&json!(true))
        && get(old, "/status/startTime").is_none();
    let template = new
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if template != job_template_for_compare(old, new, mutable_scheduling) {
        causes.push(invalid("spec.template", &template.to_string(), IMMUTABLE));
    }
    for field in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        let pointer = format!("/spec/{field}");
        if get(old, &pointer) != get(new, &pointer) {
            causes.push(invalid(
                &format!("spec.{field}"),
                &go_value(get(new, &pointer)),
                IMMUTABLE,
            ));
        }
    }
    causes
}

impl Strategy for Jobs {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "status.successful",
            pointer: "/status/succeeded",
            default: "0",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_job(object);
        if object.pointer("/spec/manualSelector") != Some(&json!(true)) {
            generate_job_selector(object);
        }
        default_job_labels(object);
        object["status"] = json!({});
        fail("batch", "Job", object, job_causes(object, true))
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_job(object);
        default_job_labels(object);
        let had = |key: &str| {
            old.pointer("/spec/template/metadata/labels")
                .and_then(|l| l.get(key))
                .is_some()
        };
        let prefixed = had(JOB_NAME) && had(CONTROLLER_UID);
        let mut causes = job_causes(object, prefixed);
        causes.extend(job_update_causes(old, object));
        causes.extend(status_causes(old, object, &JOB_STATUS));
        fail("batch", "Job", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// CronJobs

#[derive(Debug)]
pub struct CronJobs;
pub static CRON_JOBS: CronJobs = CronJobs;

fn default_cron_job(object: &mut Value) {
    let spec = child(object, "spec");
    default_str(spec, "concurrencyPolicy", "Allow");
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    let job_template = child(spec, "jobTemplate");
    if let Some(map) = child(job_template, "metadata").as_object_mut() {
        map.entry("creationTimestamp").or_insert(Value::Null);
    }
    default_job_spec(child(job_template, "spec"));
}

/// `time.LoadLocation` as far as we can tell without Go's embedded database: the name's shape,
/// then the system zoneinfo when there is one.
fn time_zone_error(zone: &str) -> Option<String> {
    let unknown = || Some(format!("unknown time zone {zone}"));
    if zone == "UTC" {
        return None;
    }
    if zone.eq_ignore_ascii_case("local") {
        return Some(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        );
    }
    for part in zone.split('/') {
        let shape = !part.is_empty()
            && part.len() <= 14
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
        if part == "." || part == ".." || part.starts_with('-') || !shape {
            return unknown();
        }
    }
    let root = std::path::Path::new("/usr/share/zoneinfo");
    if root.is_dir() && !root.join(zone).is_file() {
        return unknown();
    }
    None
}

/// robfig/cron's `ParseStandard` error for `spec`, if any.
fn cron_error(spec: &str) -> Option<String> {
    if spec.is_empty() {
        return Some("empty spec string".into());
    }
    let mut spec = spec.to_string();
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let end = spec.find(' ').unwrap_or(spec.len());
        let zone = spec[eq + 1..end.max(eq + 1)].to_string();
        if let Some(e) = time_zone_error(&zone) {
            return Some(format!("provided bad location {zone}: {e}"));
        }
        spec = spec[end..].trim().to_string();
    }
    if let Some(descriptor) = spec.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => None,
            _ => match spec.strip_prefix("@every ") {
                Some(d) if go_duration_ok(d) => None,
                Some(d) => Some(format!(
                    "failed to parse duration {spec}: time: invalid duration {d:?}"
                )),
                None => Some(format!("unrecognized descriptor: {spec}")),
            },
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(i64, i64, &[&str], i64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(bounds) {
        for expr in field.split(',') {
            if let Err(e) = cron_range(expr, min, max, names, first) {
                return Some(e);
            }
        }
    }
    None
}

fn go_duration_ok(text: &str) -> bool {
    let mut rest = text.strip_prefix(['+', '-']).unwrap_or(text);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn cron_int(expr: &str) -> Result<i64, String> {
    let n: i64 = expr.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: {why}")
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    Ok(n)
}

fn cron_range(expr: &str, min: i64, max: i64, names: &[&str], first: i64) -> Result<(), String> {
    let named = |s: &str| -> Result<i64, String> {
        let lower = s.to_ascii_lowercase();
        match names.iter().position(|n| *n == lower) {
            Some(i) => Ok(i as i64 + first),
            None => cron_int(s),
        }
    };
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (min, max)
    } else {
        let start = named(low_high[0])?;
        match low_high.len() {
            1 => (start, start),
            2 => (start, named(low_high[1])?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = cron_int(range_and_step[1])?;
            if low_high.len() == 1 {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

/// `validateCronJobSpec`; `old` is the stored spec on an update.
fn cron_job_causes(object: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut causes = Vec::new();
    let schedule = string(&spec, "/schedule");
    let zone = get(&spec, "/timeZone");
    if schedule.is_empty() {
        causes.push(required("spec.schedule", ""));
    } else {
        let rendered = format!("{schedule:?}");
        if let Some(e) = cron_error(schedule) {
            causes.push(invalid("spec.schedule", &rendered, &e));
        }
        let allow_tz = old.is_some_and(|o| string(o, "/spec/schedule").contains("TZ"));
        if schedule.contains("TZ") {
            if !allow_tz {
                causes.push(invalid(
                    "spec.schedule",
                    &rendered,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            } else if zone.is_some() {
                causes.push(invalid(
                    "spec.schedule",
                    &rendered,
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                ));
            }
        }
    }
    nonnegative(
        &mut causes,
        &spec,
        "/startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
    );
    if old.is_none_or(|o| get(o, "/spec/timeZone") != zone)
        && let Some(zone) = zone
    {
        let text = zone.as_str().unwrap_or_default();
        let error = if text.is_empty() {
            Some("timeZone must be nil or non-empty string".to_string())
        } else {
            time_zone_error(text)
        };
        if let Some(e) = error {
            causes.push(invalid("spec.timeZone", &format!("{text:?}"), &e));
        }
    }
    match string(&spec, "/concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => causes.push(required("spec.concurrencyPolicy", "")),
        other => causes.push(not_supported(
            "spec.concurrencyPolicy",
            &format!("{other:?}"),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec = spec
        .pointer("/jobTemplate/spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    causes.extend(job_spec_causes(&job_spec, "spec.jobTemplate.spec"));
    if let Some(selector) = get(&job_spec, "/selector") {
        causes.push(invalid(
            "spec.jobTemplate.spec.selector",
            &go_selector(Some(selector)),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.get("manualSelector") == Some(&json!(true)) {
        causes.push(not_supported(
            "spec.jobTemplate.spec.manualSelector",
            "true",
            &["nil", "false"],
        ));
    }
    for field in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        nonnegative(
            &mut causes,
            &spec,
            &format!("/{field}"),
            &format!("spec.{field}"),
        );
    }
    causes
}

impl Strategy for CronJobs {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_cron_job(object);
        object["status"] = json!({});
        let mut causes = cron_job_causes(object, None);
        let name = object_name(object);
        if name.len() > 52 {
            causes.push(invalid(
                "metadata.name",
                &format!("{name:?}"),
                "must be no more than 52 characters",
            ));
        }
        fail("batch", "CronJob", object, causes)
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_cron_job(object);
        fail(
            "batch",
            "CronJob",
            object,
            cron_job_causes(object, Some(old)),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// ReplicationControllers

#[derive(Debug)]
pub struct ReplicationControllers;
pub static REPLICATION_CONTROLLERS: ReplicationControllers = ReplicationControllers;

/// `SetDefaults_ReplicationController`: selector and labels from the template's labels.
fn default_replication_controller(object: &mut Value) {
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    let spec = child(object, "spec");
    if let Some(labels) = &labels
        && spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        spec["selector"] = labels.clone();
    }
    default(spec, "replicas", json!(1));
    if let Some(template) = spec.get_mut("template").filter(|t| t.is_object()) {
        default_template(template);
    }
    if let Some(labels) = labels {
        let meta = metadata_mut(object);
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            meta.insert("labels".into(), labels);
        }
    }
}

/// `ValidateReplicationControllerSpec`.
fn replication_controller_causes(object: &Value) -> Vec<FieldCause> {
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut causes = Vec::new();
    nonnegative(
        &mut causes,
        &spec,
        "/minReadySeconds",
        "spec.minReadySeconds",
    );
    let selector = spec.get("selector").and_then(Value::as_object);
    if selector.is_none_or(Map::is_empty) {
        causes.push(required("spec.selector", ""));
    }
    nonnegative(&mut causes, &spec, "/replicas", "spec.replicas");
    match get(&spec, "/template") {
        None => causes.push(required("spec.template", "")),
        Some(template) => {
            if let Some(selector) = selector.filter(|s| !s.is_empty()) {
                let as_selector = json!({"matchLabels": selector});
                causes.extend(template_labels_cause(
                    Some(&as_selector),
                    template,
                    "spec.template",
                ));
            }
            causes.extend(template_causes(template, "spec.template"));
            causes.extend(always_restart_causes(
                template,
                "spec.template",
                "ReplicationController",
            ));
        }
    }
    causes
}

impl Strategy for ReplicationControllers {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "status.replicas",
            pointer: "/status/replicas",
            default: "0",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_replication_controller(object);
        object["status"] = json!({"replicas": 0});
        fail(
            "",
            "ReplicationController",
            object,
            replication_controller_causes(object),
        )
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_replication_controller(object);
        let mut causes = replication_controller_causes(object);
        causes.extend(status_causes(old, object, &REPLICA_SET_STATUS));
        fail("", "ReplicationController", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// PodTemplates

#[derive(Debug)]
pub struct PodTemplates;
pub static POD_TEMPLATES: PodTemplates = PodTemplates;

impl Strategy for PodTemplates {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_template(child(object, "template"));
        let causes = template_causes(&object["template"], "template");
        fail("", "PodTemplate", object, causes)
    }
}

// ---------------------------------------------------------------------------------------------
// Printer columns

const CONTAINERS_DESCRIPTION: &str = "Names of each container in the template.";
const IMAGES_DESCRIPTION: &str = "Images referenced by each container in the template.";

/// `layoutContainerCells`: names and images of the containers at `pointer`, comma-joined.
fn containers(object: &Value, pointer: &str) -> (String, String) {
    let list = object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let join = |field: &str| {
        list.iter()
            .map(|c| c.get(field).and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (join("name"), join("image"))
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when empty.
fn format_selector(object: &Value, pointer: &str) -> Value {
    let text = object
        .pointer(pointer)
        .filter(|s| s.is_object())
        .map(crate::selector::label_selector_string)
        .unwrap_or_default();
    json!(if text.is_empty() {
        "<none>".into()
    } else {
        text
    })
}

/// `labels.FormatLabels`: `k=v` sorted by key, `<none>` when empty.
fn format_labels(object: &Value, pointer: &str) -> Value {
    let mut pairs: Vec<String> = labels_of(object, pointer)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    json!(if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    })
}

fn count(object: &Value, pointer: &str) -> Value {
    json!(int(object, pointer).unwrap_or(0))
}

const fn column(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
    priority: u8,
    cell: fn(&Value) -> Value,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority,
        cell,
    }
}

const fn containers_column(pointer_cell: fn(&Value) -> Value) -> Column {
    column(
        "Containers",
        "string",
        CONTAINERS_DESCRIPTION,
        1,
        pointer_cell,
    )
}

const fn images_column(pointer_cell: fn(&Value) -> Value) -> Column {
    column("Images", "string", IMAGES_DESCRIPTION, 1, pointer_cell)
}

const TEMPLATE_CONTAINERS: &str = "/spec/template/spec/containers";

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Ready",
        "string",
        "Number of the pod with ready state",
        0,
        |o| {
            json!(format!(
                "{}/{}",
                int(o, "/status/readyReplicas").unwrap_or(0),
                int(o, "/spec/replicas").unwrap_or(0)
            ))
        },
    ),
    column(
        "Up-to-date",
        "string",
        "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
        0,
        |o| count(o, "/status/updatedReplicas"),
    ),
    column(
        "Available",
        "string",
        "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
        0,
        |o| count(o, "/status/availableReplicas"),
    ),
    AGE,
    containers_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).0)),
    images_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).1)),
    column(
        "Selector",
        "string",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.",
        1,
        |o| {
            json!(
                o.pointer("/spec/selector")
                    .filter(|s| s.is_object())
                    .map(crate::selector::label_selector_string)
                    .unwrap_or_default()
            )
        },
    ),
];

const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Desired",
        "integer",
        "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
        0,
        |o| count(o, "/spec/replicas"),
    ),
    column(
        "Current",
        "integer",
        "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
        0,
        |o| count(o, "/status/replicas"),
    ),
    column(
        "Ready",
        "integer",
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
        0,
        |o| count(o, "/status/readyReplicas"),
    ),
    AGE,
    containers_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).0)),
    images_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).1)),
    column(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
        |o| format_selector(o, "/spec/selector"),
    ),
];

const STATEFUL_SET_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Ready",
        "string",
        "Number of the pod with ready state",
        0,
        |o| {
            json!(format!(
                "{}/{}",
                int(o, "/status/readyReplicas").unwrap_or(0),
                int(o, "/spec/replicas").unwrap_or(0)
            ))
        },
    ),
    AGE,
    containers_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).0)),
    images_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).1)),
];

const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        0,
        |o| count(o, "/status/desiredNumberScheduled"),
    ),
    column(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        0,
        |o| count(o, "/status/currentNumberScheduled"),
    ),
    column(
        "Ready",
        "integer",
        "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
        0,
        |o| count(o, "/status/numberReady"),
    ),
    column(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
        0,
        |o| count(o, "/status/updatedNumberScheduled"),
    ),
    column(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
        0,
        |o| count(o, "/status/numberAvailable"),
    ),
    column(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
        0,
        |o| format_labels(o, "/spec/template/spec/nodeSelector"),
    ),
    AGE,
    containers_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).0)),
    images_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).1)),
    column(
        "Selector",
        "string",
        "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
        |o| format_selector(o, "/spec/selector"),
    ),
];

const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Controller",
        "string",
        "Controller of the object",
        0,
        controller_of,
    ),
    column(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
        0,
        |o| count(o, "/revision"),
    ),
    AGE,
];

/// `<kind>.<group>/<name>` of the controlling owner (lower-cased kind and group), or `<none>`.
fn controller_of(object: &Value) -> Value {
    let owner = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| refs.iter().find(|r| r["controller"] == json!(true)));
    let Some(owner) = owner else {
        return json!("<none>");
    };
    let group = string(owner, "/apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    let kind = string(owner, "/kind");
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let name = string(owner, "/name");
    json!(if qualified.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", qualified.to_lowercase())
    })
}

fn has_condition(job: &Value, type_: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// A job's STATUS, as upstream's printer decides it.
fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job_completions(job: &Value) -> String {
    let succeeded = int(job, "/status/succeeded").unwrap_or(0);
    match int(job, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

fn timestamp(object: &Value, pointer: &str) -> Option<time::OffsetDateTime> {
    let text = object.pointer(pointer).and_then(Value::as_str)?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

fn job_duration(job: &Value) -> String {
    let Some(start) = timestamp(job, "/status/startTime") else {
        return String::new();
    };
    let end =
        timestamp(job, "/status/completionTime").unwrap_or_else(time::OffsetDateTime::now_utc);
    crate::table::human_duration((end - start).whole_seconds())
}

const JOB_COLUMNS: &[Column] = &[
    NAME,
    column("Status", "string", "Status of the job.", 0, |o| {
        json!(job_status(o))
    }),
    column(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
        0,
        |o| json!(job_completions(o)),
    ),
    column(
        "Duration",
        "string",
        "Time required to complete the job.",
        0,
        |o| json!(job_duration(o)),
    ),
    AGE,
    containers_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).0)),
    images_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).1)),
    column("Selector", "string", JOB_SELECTOR_DESCRIPTION, 1, |o| {
        format_selector(o, "/spec/selector")
    }),
];

const JOB_SELECTOR_DESCRIPTION: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const CRON_CONTAINERS: &str = "/spec/jobTemplate/spec/template/spec/containers";

const CRON_JOB_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
        0,
        |o| json!(string(o, "/spec/schedule")),
    ),
    column(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
        0,
        |o| {
            json!(
                o.pointer("/spec/timeZone")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
            )
        },
    ),
    column(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
        0,
        |o| {
            json!(match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            })
        },
    ),
    column(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
        0,
        |o| {
            json!(
                o.pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            )
        },
    ),
    column(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
        0,
        |o| {
            json!(match o.pointer("/status/lastScheduleTime") {
                Some(Value::String(_)) => crate::table::since(o, &["/status/lastScheduleTime"]),
                _ => "<none>".into(),
            })
        },
    ),
    AGE,
    containers_column(|o| json!(containers(o, CRON_CONTAINERS).0)),
    images_column(|o| json!(containers(o, CRON_CONTAINERS).1)),
    column("Selector", "string", JOB_SELECTOR_DESCRIPTION, 1, |o| {
        format_selector(o, "/spec/jobTemplate/spec/selector")
    }),
];

const REPLICATION_CONTROLLER_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
        0,
        |o| count(o, "/spec/replicas"),
    ),
    column(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
        0,
        |o| count(o, "/status/replicas"),
    ),
    column(
        "Ready",
        "integer",
        "The number of ready replicas for this replication controller.",
        0,
        |o| count(o, "/status/readyReplicas"),
    ),
    AGE,
    containers_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).0)),
    images_column(|o| json!(containers(o, TEMPLATE_CONTAINERS).1)),
    column(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
        |o| format_labels(o, "/spec/selector"),
    ),
];

const POD_TEMPLATE_COLUMNS: &[Column] = &[
    NAME,
    column("Containers", "string", CONTAINERS_DESCRIPTION, 0, |o| {
        json!(containers(o, "/template/spec/containers").0)
    }),
    column("Images", "string", IMAGES_DESCRIPTION, 0, |o| {
        json!(containers(o, "/template/spec/containers").1)
    }),
    column(
        "Pod Labels",
        "string",
        "The labels for the pod template.",
        0,
        |o| format_labels(o, "/template/metadata/labels"),
    ),
];

/// The replication controller's scale: its selector is a plain label map.
const RC_SCALE: ScalePaths = ScalePaths {
    spec_replicas: "/spec/replicas",
    status_replicas: "/status/replicas",
    selector: Some("/spec/selector"),
};

// ---------------------------------------------------------------------------------------------
// The table entries

/// The resources this module serves; within a group in upstream's (alphabetical) discovery
/// order, which `kubectl get all` follows.
pub static RESOURCES: &[Resource] = &[
    Resource {
        kind: "PodTemplate",
        plural: "podtemplates",
        singular: "podtemplate",
        columns: POD_TEMPLATE_COLUMNS,
        strategy: &POD_TEMPLATES,
        schema: |g| g.subschema_for::<core::PodTemplate>(),
        ..BASE
    },
    Resource {
        kind: "ReplicationController",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        short_names: &["rc"],
        categories: &["all"],
        subresources: &["scale", "status"],
        columns: REPLICATION_CONTROLLER_COLUMNS,
        strategy: &REPLICATION_CONTROLLERS,
        schema: |g| g.subschema_for::<core::ReplicationController>(),
        generation: true,
        scale: Some(RC_SCALE),
        ..BASE
    },
    Resource {
        group: "apps",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        columns: CONTROLLER_REVISION_COLUMNS,
        strategy: &CONTROLLER_REVISIONS,
        schema: |g| g.subschema_for::<apps::ControllerRevision>(),
        ..BASE
    },
    Resource {
        group: "apps",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        short_names: &["ds"],
        categories: &["all"],
        subresources: &["status"],
        columns: DAEMON_SET_COLUMNS,
        strategy: &DAEMON_SETS,
        schema: |g| g.subschema_for::<apps::DaemonSet>(),
        generation: true,
        ..BASE
    },
    Resource {
        group: "apps",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &["status", "scale"],
        columns: DEPLOYMENT_COLUMNS,
        strategy: &DEPLOYMENTS,
        schema: |g| g.subschema_for::<apps::Deployment>(),
        generation: true,
        scale: Some(WORKLOAD_SCALE),
        ..BASE
    },
    Resource {
        group: "apps",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        categories: &["all"],
        subresources: &["status", "scale"],
        columns: REPLICA_SET_COLUMNS,
        strategy: &REPLICA_SETS,
        schema: |g| g.subschema_for::<apps::ReplicaSet>(),
        generation: true,
        scale: Some(WORKLOAD_SCALE),
        ..BASE
    },
    Resource {
        group: "apps",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        short_names: &["sts"],
        categories: &["all"],
        subresources: &["status", "scale"],
        name_rule: NameRule::Dns1123Label,
        columns: STATEFUL_SET_COLUMNS,
        strategy: &STATEFUL_SETS,
        schema: |g| g.subschema_for::<apps::StatefulSet>(),
        generation: true,
        scale: Some(WORKLOAD_SCALE),
        ..BASE
    },
    Resource {
        group: "batch",
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        short_names: &["cj"],
        categories: &["all"],
        subresources: &["status"],
        columns: CRON_JOB_COLUMNS,
        strategy: &CRON_JOBS,
        schema: |g| g.subschema_for::<batch::CronJob>(),
        generation: true,
        ..BASE
    },
    Resource {
        group: "batch",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        categories: &["all"],
        subresources: &["status"],
        columns: JOB_COLUMNS,
        strategy: &JOBS,
        schema: |g| g.subschema_for::<batch::Job>(),
        generation: true,
        ..BASE
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(columns: &[Column], object: &Value) -> Vec<Value> {
        columns.iter().map(|c| (c.cell)(object)).collect()
    }

    fn deployment(labels: Value, selector: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": selector,
                "template": {"metadata": {"labels": labels},
                             "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}},
            },
        })
    }

    #[test]
    fn deployment_defaults_as_upstream() {
        let mut d = deployment(
            json!({"app": "web"}),
            json!({"matchLabels": {"app": "web"}}),
        );
        DEPLOYMENTS.prepare_create(&mut d).unwrap();
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        assert!(
            pod.get("enableServiceLinks").is_none(),
            "a pod default only"
        );
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            spec["template"]["metadata"]["creationTimestamp"],
            Value::Null
        );
        assert_eq!(d["status"], json!({}));

        // Recreate gets no rolling-update parameters.
        let mut d = deployment(
            json!({"app": "web"}),
            json!({"matchLabels": {"app": "web"}}),
        );
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        DEPLOYMENTS.prepare_create(&mut d).unwrap();
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn defaults_do_not_depend_on_how_fields_arrive() {
        // What `kubectl create deployment web --image=nginx` sends...
        let mut created = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}},
                     "strategy": {}},
            "status": {},
        });
        // ...and the equivalent manifest.
        let mut applied = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
        });
        DEPLOYMENTS.prepare_create(&mut created).unwrap();
        DEPLOYMENTS.prepare_create(&mut applied).unwrap();
        created["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("creationTimestamp");
        assert_eq!(created, applied);
    }

    #[test]
    fn selector_errors_read_as_upstream() {
        let mut d = deployment(json!({"app": "web"}), Value::Null);
        let err = DEPLOYMENTS.prepare_create(&mut d).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`]"
        );
        let mut d = deployment(
            json!({"app": "web", "tier": "x"}),
            json!({"matchLabels": {"app": "api"}}),
        );
        let err = DEPLOYMENTS.prepare_create(&mut d).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"x\"}: `selector` does not match template `labels`"
        );
        let mut d = deployment(json!({"app": "web"}), json!({}));
        let err = DEPLOYMENTS.prepare_create(&mut d).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        );

        let mut old = deployment(
            json!({"app": "web", "v": "2"}),
            json!({"matchLabels": {"app": "web"}}),
        );
        DEPLOYMENTS.prepare_create(&mut old).unwrap();
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
        let err = DEPLOYMENTS.prepare_update(&old, &mut new).unwrap_err();
        assert_eq!(err.code, http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
        // Same selector: fine, and the replicas may change.
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        DEPLOYMENTS.prepare_update(&old, &mut scaled).unwrap();
    }

    #[test]
    fn deployment_spec_errors() {
        let mut d = deployment(
            json!({"app": "web"}),
            json!({"matchLabels": {"app": "web"}}),
        );
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        d["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        let err = DEPLOYMENTS.prepare_create(&mut d).unwrap_err();
        let causes: Vec<String> = err.details.unwrap()["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c["field"].as_str().unwrap(),
                    c["message"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            causes,
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            ]
        );
    }

    #[test]
    fn replica_sets_and_replication_controllers() {
        let mut rs = deployment(
            json!({"app": "web"}),
            json!({"matchLabels": {"app": "web"}}),
        );
        rs["kind"] = json!("ReplicaSet");
        REPLICA_SETS.prepare_create(&mut rs).unwrap();
        assert_eq!(rs["spec"]["replicas"], 1);
        assert!(rs["spec"].get("strategy").is_none());
        assert_eq!(rs["status"], json!({"replicas": 0}));

        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {"template": {
            "metadata": {"labels": {"app": "old"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        REPLICATION_CONTROLLERS.prepare_create(&mut rc).unwrap();
        assert_eq!(rc["spec"]["selector"], json!({"app": "old"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "old"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["status"], json!({"replicas": 0}));
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {}});
        let err = REPLICATION_CONTROLLERS.prepare_create(&mut rc).unwrap_err();
        assert_eq!(
            err.message,
            "ReplicationController \"rc\" is invalid: [spec.selector: Required value, spec.template: Required value]"
        );
    }

    #[test]
    fn stateful_and_daemon_set_defaults() {
        let mut sts = deployment(json!({"app": "db"}), json!({"matchLabels": {"app": "db"}}));
        STATEFUL_SETS.prepare_create(&mut sts).unwrap();
        let spec = &sts["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            (
                spec["replicas"].clone(),
                spec["revisionHistoryLimit"].clone()
            ),
            (json!(1), json!(10))
        );
        assert_eq!(
            sts["status"],
            json!({"availableReplicas": 0, "replicas": 0})
        );
        let mut dotted = sts.clone();
        dotted["spec"]["serviceName"] = json!("a.b");
        let err = STATEFUL_SETS.prepare_create(&mut dotted).unwrap_err();
        assert!(err.message.starts_with("StatefulSet.apps \"web\" is invalid: spec.serviceName: Invalid value: \"a.b\": a lowercase RFC 1123 label"), "{}", err.message);
        let mut changed = sts.clone();
        changed["spec"]["serviceName"] = json!("other");
        let err = STATEFUL_SETS
            .prepare_update(&sts, &mut changed)
            .unwrap_err();
        assert!(err.message.contains("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"), "{}", err.message);

        let mut ds = deployment(
            json!({"app": "agent"}),
            json!({"matchLabels": {"app": "agent"}}),
        );
        DAEMON_SETS.prepare_create(&mut ds).unwrap();
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        assert_eq!(ds["status"]["numberMisscheduled"], 0);
        let mut updated = ds.clone();
        updated["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        DAEMON_SETS.prepare_update(&ds, &mut updated).unwrap();
        assert_eq!(updated["metadata"]["annotations"][TEMPLATE_GENERATION], "2");
    }

    fn job() -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "1234"},
            "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}], "restartPolicy": "Never"}}},
        })
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let mut j = job();
        JOBS.prepare_create(&mut j).unwrap();
        let spec = &j["spec"];
        for (field, want) in [
            ("parallelism", json!(1)),
            ("completions", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
            ("manualSelector", json!(false)),
        ] {
            assert_eq!(spec[field], want, "{field}");
        }
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}})
        );
        let labels = json!({"batch.kubernetes.io/controller-uid": "1234", "batch.kubernetes.io/job-name": "pi", "controller-uid": "1234", "job-name": "pi"});
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(j["metadata"]["labels"], labels);
        assert_eq!(j["status"], json!({}));

        // Only parallelism given: completions stay unset.
        let mut j = job();
        j["spec"]["parallelism"] = json!(3);
        JOBS.prepare_create(&mut j).unwrap();
        assert!(j["spec"].get("completions").is_none());
        assert_eq!(cells(JOB_COLUMNS, &j)[2], "0/1 of 3");
    }

    #[test]
    fn job_validation() {
        let mut j = job();
        j["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let err = JOBS.prepare_create(&mut j).unwrap_err();
        assert_eq!(
            err.message,
            "Job.batch \"pi\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        );
        let mut j = job();
        j["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        let err = JOBS.prepare_create(&mut j).unwrap_err();
        assert!(err.message.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\", \"batch.kubernetes.io/controller-uid\":\"1234\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated"), "{}", err.message);

        let mut old = job();
        JOBS.prepare_create(&mut old).unwrap();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5");
        let err = JOBS.prepare_update(&old, &mut new).unwrap_err();
        assert!(
            err.message
                .starts_with("Job.batch \"pi\" is invalid: spec.template: Invalid value: "),
            "{}",
            err.message
        );
        assert!(
            err.message.ends_with(": field is immutable"),
            "{}",
            err.message
        );
        let mut new = old.clone();
        new["spec"]["completions"] = json!(2);
        let err = JOBS.prepare_update(&old, &mut new).unwrap_err();
        assert_eq!(
            err.message,
            "Job.batch \"pi\" is invalid: spec.completions: Invalid value: 2: field is immutable"
        );
        // Suspending and changing parallelism are fine.
        let mut new = old.clone();
        new["spec"]["suspend"] = json!(true);
        new["spec"]["parallelism"] = json!(2);
        JOBS.prepare_update(&old, &mut new).unwrap();
        // A suspended job that never started may change its node selector.
        let mut suspended = job();
        suspended["spec"]["suspend"] = json!(true);
        JOBS.prepare_create(&mut suspended).unwrap();
        let mut moved = suspended.clone();
        moved["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        JOBS.prepare_update(&suspended, &mut moved).unwrap();
    }

    #[test]
    fn cron_jobs() {
        let mut cj = json!({
            "metadata": {"name": "hello"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "hello", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}},
        });
        CRON_JOBS.prepare_create(&mut cj).unwrap();
        let spec = &cj["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        assert_eq!(
            spec["jobTemplate"]["metadata"],
            json!({"creationTimestamp": null})
        );
        // The job template gets pod defaults only.
        assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none());
        assert_eq!(
            spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
        assert_eq!(
            cells(CRON_JOB_COLUMNS, &cj)[1..5],
            [
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(0)
            ]
        );
        assert_eq!(cells(CRON_JOB_COLUMNS, &cj)[5], "<none>");

        for (schedule, error) in [
            ("", "spec.schedule: Required value"),
            (
                "foo",
                "spec.schedule: Invalid value: \"foo\": expected exactly 5 fields, found 1: [foo]",
            ),
            (
                "60 * * * *",
                "spec.schedule: Invalid value: \"60 * * * *\": end of range (60) above maximum (59): 60",
            ),
            (
                "* * * * mon-fry",
                "spec.schedule: Invalid value: \"* * * * mon-fry\": failed to parse int from fry: strconv.Atoi: parsing \"fry\": invalid syntax",
            ),
            ("@weekly", ""),
            ("0 0 1 jan,JUL sun", ""),
            (
                "*/0 * * * *",
                "spec.schedule: Invalid value: \"*/0 * * * *\": step of range should be a positive number: */0",
            ),
        ] {
            let mut bad = cj.clone();
            bad["spec"]["schedule"] = json!(schedule);
            match CRON_JOBS.prepare_create(&mut bad) {
                Ok(()) => assert_eq!(error, "", "{schedule}"),
                Err(e) => assert_eq!(
                    e.message,
                    format!("CronJob.batch \"hello\" is invalid: {error}"),
                    "{schedule}"
                ),
            }
        }
        let mut tz = cj.clone();
        tz["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
        let err = CRON_JOBS.prepare_create(&mut tz).unwrap_err();
        assert!(
            err.message
                .ends_with("cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
            "{}",
            err.message
        );
    }

    #[test]
    fn columns_as_upstream_prints_them() {
        let mut d = deployment(
            json!({"app": "web"}),
            json!({"matchLabels": {"app": "web"}}),
        );
        DEPLOYMENTS.prepare_create(&mut d).unwrap();
        d["status"] = json!({"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        let row = cells(DEPLOYMENT_COLUMNS, &d);
        assert_eq!(row[..4], [json!("web"), json!("1/1"), json!(1), json!(1)]);
        assert_eq!(
            row[5..],
            [json!("nginx"), json!("nginx:1.27"), json!("app=web")]
        );
        let names: Vec<&str> = DEPLOYMENT_COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );

        let names: Vec<&str> = DAEMON_SET_COLUMNS
            .iter()
            .filter(|c| c.priority == 0)
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age"
            ]
        );

        let mut j = job();
        JOBS.prepare_create(&mut j).unwrap();
        j["status"] = json!({"succeeded": 1, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:42Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        let row = cells(JOB_COLUMNS, &j);
        assert_eq!(row[1..4], [json!("Complete"), json!("1/1"), json!("42s")]);
        assert_eq!(row[7], "batch.kubernetes.io/controller-uid=1234");
        j["status"] = json!({});
        assert_eq!(
            cells(JOB_COLUMNS, &j)[1..4],
            [json!("Running"), json!("0/1"), json!("")]
        );

        let revision = json!({"metadata": {"name": "web-5d4f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]}, "revision": 2});
        assert_eq!(
            cells(CONTROLLER_REVISION_COLUMNS, &revision)[1..3],
            [json!("statefulset.apps/web"), json!(2)]
        );
        assert_eq!(
            cells(CONTROLLER_REVISION_COLUMNS, &json!({"revision": 1}))[1],
            "<none>"
        );

        let template = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}});
        assert_eq!(
            cells(POD_TEMPLATE_COLUMNS, &template),
            [json!("t"), json!("a,b"), json!("x,y"), json!("a=1,b=2")]
        );
    }

    #[test]
    fn every_entry_is_served_with_upstream_names() {
        let names: Vec<(&str, &[&str])> = RESOURCES
            .iter()
            .map(|r| (r.plural, r.short_names))
            .collect();
        assert_eq!(
            names,
            [
                ("podtemplates", &[][..]),
                ("replicationcontrollers", &["rc"]),
                ("controllerrevisions", &[]),
                ("daemonsets", &["ds"]),
                ("deployments", &["deploy"]),
                ("replicasets", &["rs"]),
                ("statefulsets", &["sts"]),
                ("cronjobs", &["cj"]),
                ("jobs", &[]),
            ]
        );
        for r in RESOURCES {
            assert_eq!(
                r.generation,
                !matches!(r.plural, "controllerrevisions" | "podtemplates"),
                "{}",
                r.plural
            );
        }
    }

    #[test]
    fn status_updates_are_validated() {
        let mut old = deployment(
            json!({"app": "web"}),
            json!({"matchLabels": {"app": "web"}}),
        );
        DEPLOYMENTS.prepare_create(&mut old).unwrap();
        let mut new = old.clone();
        new["status"] = json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": -1});
        let err = DEPLOYMENTS.prepare_update(&old, &mut new).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: [status.availableReplicas: Invalid value: -1: must be greater than or equal to 0, status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas]"
        );
        new["status"] =
            json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 1, "collisionCount": 1});
        DEPLOYMENTS.prepare_update(&old, &mut new).unwrap();
    }
}
