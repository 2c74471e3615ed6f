//! Policy and cluster-configuration resources: rbac.authorization.k8s.io/v1, policy/v1, scheduling.k8s.io/v1, storage.k8s.io/v1, certificates.k8s.io/v1, apiregistration.k8s.io/v1, admissionregistration.k8s.io/v1 (in `admissionregistration`), and core/v1 limitranges, resourcequotas, persistentvolumes and persistentvolumeclaims.

pub mod admissionregistration;

use base64::Engine;
use k8s_openapi::api::certificates::v1 as certificates;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::api::scheduling::v1 as scheduling;
use k8s_openapi::api::storage::v1 as storage;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use serde_json::{Value, json};

use crate::object::{meta_str, now_rfc3339, validate_name};
use crate::registry::{AGE, BASE, Column, NAME, NameRule, Resource};
use crate::status::{ApiError, ApiResult, FieldCause};
use crate::strategy::{FieldLabel, Strategy};

const RBAC: &str = "rbac.authorization.k8s.io";
const POLICY: &str = "policy";
const SCHEDULING: &str = "scheduling.k8s.io";
const STORAGE: &str = "storage.k8s.io";
const CERTIFICATES: &str = "certificates.k8s.io";
const APIREGISTRATION: &str = "apiregistration.k8s.io";

// ---------------------------------------------------------------------------------------------
// Helpers: reading JSON, and field causes rendered as upstream's field errors render them.

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn name(object: &Value) -> String {
    meta_str(object, "name").unwrap_or_default().to_string()
}

fn array<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn map_of<'a>(object: &'a Value, key: &str) -> Option<&'a serde_json::Map<String, Value>> {
    object
        .get(key)
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
}

/// Whether `key` is absent, null, or an empty string, list or map.
fn unset(object: &Value, key: &str) -> bool {
    match object.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

/// Set `key` to `value` unless it holds something already.
fn default_field(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        match map.get(key) {
            None | Some(Value::Null) => {
                map.insert(key.to_string(), value);
            }
            Some(Value::String(s)) if s.is_empty() => {
                map.insert(key.to_string(), value);
            }
            Some(_) => {}
        }
    }
}

/// Go's `%q`.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Go's `%#v` of a `[]string`.
fn go_strings(value: Option<&Value>) -> String {
    match value.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(items) => format!(
            "[]string{{{}}}",
            items
                .iter()
                .map(|i| quote(i.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Go's `%#v` of a `[]byte`.
fn go_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "[]byte(nil)".into(),
        Some(b) => format!(
            "[]byte{{{}}}",
            b.iter()
                .map(|x| format!("0x{x:x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `Required value` with upstream's detail, if any.
fn required(field: &str, detail: &str) -> FieldCause {
    let mut cause = FieldCause::required(field);
    if !detail.is_empty() {
        cause.message = format!("Required value: {detail}");
    }
    cause
}

/// `Invalid value` with the value already rendered (Go's `%#v`, or `%q` for strings).
fn invalid(field: &str, rendered: &str, detail: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueInvalid",
        field: field.to_string(),
        message: format!("Invalid value: {rendered}: {detail}"),
    }
}

/// `Unsupported value: "x": supported values: "a", "b"`.
fn not_supported(field: &str, rendered: &str, supported: &[&str]) -> FieldCause {
    let list = supported
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ");
    FieldCause {
        reason: "FieldValueNotSupported",
        field: field.to_string(),
        message: format!("Unsupported value: {rendered}: supported values: {list}"),
    }
}

fn duplicate(field: &str, rendered: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueDuplicate",
        field: field.to_string(),
        message: format!("Duplicate value: {rendered}"),
    }
}

/// An enumerated string field: unset is fine (defaulting or `required` handles it).
fn one_of(object: &Value, key: &str, path: &str, supported: &[&str]) -> Option<FieldCause> {
    let value = object.get(key).and_then(Value::as_str)?;
    (!value.is_empty() && !supported.contains(&value))
        .then(|| not_supported(path, &quote(value), supported))
}

fn check(group: &str, kind: &str, object: &Value, causes: Vec<FieldCause>) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(group, kind, &name(object), causes))
    }
}

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Upstream's `IsDNS1123Subdomain` messages.
fn subdomain_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 253 {
        errors.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(crate::object::is_label) {
        errors.push(crate::object::DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errors
}

/// Upstream's `IsQualifiedName` messages (`prefix/name`, the prefix a DNS subdomain).
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                errors.extend(
                    subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_string());
    }
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        errors.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errors
}

fn is_dns1035_label(s: &str) -> bool {
    crate::object::is_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// The NAME column of resources upstream prints with its default table convertor, which
/// shows `CREATED AT` rather than AGE.
const CREATED_AT: Column = Column {
    name: "Created At",
    type_: "date",
    format: "",
    description: AGE.description,
    priority: 0,
    cell: |o| json!(str_at(o, "/metadata/creationTimestamp")),
};

/// A string column at a JSON pointer.
macro_rules! column {
    ($name:expr, $type_:expr, $description:expr, $priority:expr, $cell:expr) => {
        Column {
            name: $name,
            type_: $type_,
            format: "",
            description: $description,
            priority: $priority,
            cell: $cell,
        }
    };
}

// ---------------------------------------------------------------------------------------------
// rbac.authorization.k8s.io/v1

/// Roles and cluster roles: rule validation (and aggregation rules on cluster roles).
#[derive(Debug)]
pub struct Roles {
    kind: &'static str,
    cluster: bool,
}
pub static ROLES: Roles = Roles {
    kind: "Role",
    cluster: false,
};
pub static CLUSTER_ROLES: Roles = Roles {
    kind: "ClusterRole",
    cluster: true,
};

/// Upstream's `ValidatePolicyRule`.
fn rule_causes(rule: &Value, namespaced: bool, path: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let count = |key: &str| array(rule, key).len();
    if count("verbs") == 0 {
        causes.push(required(
            &format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    if count("nonResourceURLs") > 0 {
        let urls = go_strings(rule.get("nonResourceURLs"));
        let field = format!("{path}.nonResourceURLs");
        if namespaced {
            causes.push(invalid(
                &field,
                &urls,
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if count("apiGroups") > 0 || count("resources") > 0 || count("resourceNames") > 0 {
            causes.push(invalid(
                &field,
                &urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return causes;
    }
    if count("apiGroups") == 0 {
        causes.push(required(
            &format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if count("resources") == 0 {
        causes.push(required(
            &format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
    causes
}

impl Strategy for Roles {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        let mut causes = Vec::new();
        for (i, rule) in array(object, "rules").iter().enumerate() {
            causes.extend(rule_causes(rule, !self.cluster, &format!("rules[{i}]")));
        }
        if self.cluster
            && let Some(rule) = object.get("aggregationRule").filter(|a| !a.is_null())
            && array(rule, "clusterRoleSelectors").is_empty()
        {
            causes.push(required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        check(RBAC, self.kind, object, causes)
    }
}

/// Role bindings and cluster role bindings: defaulting of API groups, subject and roleRef
/// validation, and the immutable roleRef.
#[derive(Debug)]
pub struct Bindings {
    kind: &'static str,
    cluster: bool,
}
pub static ROLE_BINDINGS: Bindings = Bindings {
    kind: "RoleBinding",
    cluster: false,
};
pub static CLUSTER_ROLE_BINDINGS: Bindings = Bindings {
    kind: "ClusterRoleBinding",
    cluster: true,
};

/// `rbac/v1` defaulting: the roleRef's API group, and users' and groups' API group.
fn default_binding(object: &mut Value) {
    if !object.get("roleRef").is_some_and(Value::is_object) {
        object["roleRef"] = json!({});
    }
    default_field(&mut object["roleRef"], "apiGroup", json!(RBAC));
    if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects {
            if matches!(str_at(subject, "/kind"), "User" | "Group") {
                default_field(subject, "apiGroup", json!(RBAC));
            }
        }
    }
}

/// Upstream's `ValidateRoleBindingSubject`.
fn subject_causes(subject: &Value, namespaced: bool, path: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let name = str_at(subject, "/name");
    let api_group = str_at(subject, "/apiGroup");
    if name.is_empty() {
        causes.push(FieldCause::required(&format!("{path}.name")));
    }
    match str_at(subject, "/kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                causes.extend(validate_name(
                    NameRule::Dns1123Subdomain,
                    name,
                    &format!("{path}.name"),
                ));
            }
            if !api_group.is_empty() {
                causes.push(not_supported(
                    &format!("{path}.apiGroup"),
                    &quote(api_group),
                    &[""],
                ));
            }
            if !namespaced && str_at(subject, "/namespace").is_empty() {
                causes.push(FieldCause::required(&format!("{path}.namespace")));
            }
        }
        "User" | "Group" => {
            if api_group != RBAC {
                causes.push(not_supported(
                    &format!("{path}.apiGroup"),
                    &quote(api_group),
                    &[RBAC],
                ));
            }
        }
        other => causes.push(not_supported(
            &format!("{path}.kind"),
            &quote(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
    causes
}

fn role_ref_go(role_ref: &Value) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        quote(str_at(role_ref, "/apiGroup")),
        quote(str_at(role_ref, "/kind")),
        quote(str_at(role_ref, "/name"))
    )
}

impl Bindings {
    fn causes(&self, object: &Value) -> Vec<FieldCause> {
        let mut causes = Vec::new();
        let role_ref = &object["roleRef"];
        let api_group = str_at(role_ref, "/apiGroup");
        if api_group != RBAC {
            causes.push(not_supported(
                "roleRef.apiGroup",
                &quote(api_group),
                &[RBAC],
            ));
        }
        let kinds: &[&str] = if self.cluster {
            &["ClusterRole"]
        } else {
            &["Role", "ClusterRole"]
        };
        let kind = str_at(role_ref, "/kind");
        if !kinds.contains(&kind) {
            causes.push(not_supported("roleRef.kind", &quote(kind), kinds));
        }
        let role = str_at(role_ref, "/name");
        if role.is_empty() {
            causes.push(FieldCause::required("roleRef.name"));
        } else {
            causes.extend(validate_name(NameRule::PathSegment, role, "roleRef.name"));
        }
        for (i, subject) in array(object, "subjects").iter().enumerate() {
            causes.extend(subject_causes(
                subject,
                !self.cluster,
                &format!("subjects[{i}]"),
            ));
        }
        causes
    }
}

impl Strategy for Bindings {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_binding(object);
        check(RBAC, self.kind, object, self.causes(object))
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_binding(object);
        let mut causes = self.causes(object);
        if old.get("roleRef") != object.get("roleRef") {
            causes.push(invalid(
                "roleRef",
                &role_ref_go(&object["roleRef"]),
                "cannot change roleRef",
            ));
        }
        check(RBAC, self.kind, object, causes)
    }
}

/// `kubectl get rolebindings`' USERS, GROUPS and SERVICEACCOUNTS (upstream's `SubjectsStrings`).
fn subjects_of(binding: &Value, kind: &str) -> Value {
    let names: Vec<String> = array(binding, "subjects")
        .iter()
        .filter(|s| str_at(s, "/kind") == kind)
        .map(|s| {
            if kind == "ServiceAccount" {
                format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name"))
            } else {
                str_at(s, "/name").to_string()
            }
        })
        .collect();
    json!(names.join(", "))
}

const fn binding_columns(
    role: &'static str,
    users: &'static str,
    groups: &'static str,
    service_accounts: &'static str,
) -> [Column; 6] {
    [
        NAME,
        column!("Role", "string", role, 0, |o| json!(format!(
            "{}/{}",
            str_at(o, "/roleRef/kind"),
            str_at(o, "/roleRef/name")
        ))),
        AGE,
        column!("Users", "string", users, 1, |o| subjects_of(o, "User")),
        column!("Groups", "string", groups, 1, |o| subjects_of(o, "Group")),
        column!("ServiceAccounts", "string", service_accounts, 1, |o| {
            subjects_of(o, "ServiceAccount")
        }),
    ]
}

const ROLE_BINDING_COLUMNS: [Column; 6] = binding_columns(
    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
    "Users in the roleBinding",
    "Groups in the roleBinding",
    "ServiceAccounts in the roleBinding",
);
const CLUSTER_ROLE_BINDING_COLUMNS: [Column; 6] = binding_columns(
    "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
    "Users in the clusterRoleBinding",
    "Groups in the clusterRoleBinding",
    "ServiceAccounts in the clusterRoleBinding",
);

// ---------------------------------------------------------------------------------------------
// policy/v1

/// Pod disruption budgets: status reset on create, spec validation, status counters.
#[derive(Debug)]
pub struct PodDisruptionBudgets;
pub static POD_DISRUPTION_BUDGETS: PodDisruptionBudgets = PodDisruptionBudgets;

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

fn int_or_string_go(value: &Value) -> String {
    match value {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            quote(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

/// Upstream's `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
fn int_or_percent_causes(value: &Value, path: &str) -> Vec<FieldCause> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) if i < 0 => vec![invalid(
                path,
                &i.to_string(),
                "must be greater than or equal to 0",
            )],
            Some(_) => Vec::new(),
            None => vec![invalid(
                path,
                &n.to_string(),
                "must be an integer or percentage (e.g '5%')",
            )],
        },
        Value::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits {
                None => vec![invalid(path, &int_or_string_go(value), PERCENT_MSG)],
                Some(d) if d.parse::<u64>().map_or(true, |p| p > 100) => vec![invalid(
                    path,
                    &int_or_string_go(value),
                    "must not be greater than 100%",
                )],
                Some(_) => Vec::new(),
            }
        }
        other => vec![invalid(
            path,
            &other.to_string(),
            "must be an integer or percentage (e.g '5%')",
        )],
    }
}

fn pdb_spec_go(spec: &Value) -> String {
    let pointer = |key: &str, render: &dyn Fn(&Value) -> String| match spec.get(key) {
        Some(v) if !v.is_null() => format!("&{}", render(v)),
        _ => "nil".to_string(),
    };
    // Upstream prints the pointers' addresses; the values they point at say more.
    format!(
        "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, Selector:{}, MaxUnavailable:{}, UnhealthyPodEvictionPolicy:{}}}",
        pointer("minAvailable", &int_or_string_go),
        pointer("selector", &|v| format!("v1.LabelSelector{}", v)),
        pointer("maxUnavailable", &int_or_string_go),
        pointer("unhealthyPodEvictionPolicy", &|v| quote(
            v.as_str().unwrap_or("")
        )),
    )
}

fn pdb_causes(object: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").cloned().unwrap_or(json!({}));
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        causes.push(invalid(
            "spec",
            &pdb_spec_go(&spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(min) = min {
        causes.extend(int_or_percent_causes(min, "spec.minAvailable"));
    }
    if let Some(max) = max {
        causes.extend(int_or_percent_causes(max, "spec.maxUnavailable"));
    }
    causes.extend(one_of(
        &spec,
        "unhealthyPodEvictionPolicy",
        "spec.unhealthyPodEvictionPolicy",
        &["AlwaysAllow", "IfHealthyBudget"],
    ));
    for field in [
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
    ] {
        if let Some(n) = object
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_i64)
            .filter(|n| *n < 0)
        {
            causes.push(invalid(
                &format!("status.{field}"),
                &n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    causes
}

impl Strategy for PodDisruptionBudgets {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        // The disruption controller fills the status; its counters are not optional.
        object["status"] = json!({
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0,
        });
        check(POLICY, "PodDisruptionBudget", object, pdb_causes(object))
    }

    fn prepare_update(&self, _old: &Value, object: &mut Value) -> ApiResult<()> {
        check(POLICY, "PodDisruptionBudget", object, pdb_causes(object))
    }
}

fn pdb_bound(pdb: &Value, key: &str) -> Value {
    match pdb.pointer(&format!("/spec/{key}")) {
        Some(Value::String(s)) => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => json!("N/A"),
    }
}

// ---------------------------------------------------------------------------------------------
// scheduling.k8s.io/v1

/// Priority classes: default preemption policy, reserved `system-` names, immutable value and
/// preemption policy.
#[derive(Debug)]
pub struct PriorityClasses;
pub static PRIORITY_CLASSES: PriorityClasses = PriorityClasses;

/// Upstream's `HighestUserDefinablePriority`.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// The priority classes every cluster has: name, value, description.
const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

fn priority_class_causes(object: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let pc_name = name(object);
    let value = object.get("value").and_then(Value::as_i64).unwrap_or(0);
    let global = object
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if pc_name.starts_with("system-") {
        let error = match SYSTEM_PRIORITY_CLASSES
            .iter()
            .find(|(n, _, _)| *n == pc_name)
        {
            None => Some(format!("{pc_name} is not a known system priority class")),
            Some((n, v, _)) if *v != value => {
                Some(format!("value of {n} PriorityClass must be {v}"))
            }
            Some((n, _, _)) if global => {
                Some(format!("globalDefault of {n} PriorityClass must be false"))
            }
            Some(_) => None,
        };
        if let Some(error) = error {
            causes.push(FieldCause::forbidden(
                "metadata.name",
                &format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {error}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        causes.push(FieldCause::forbidden(
            "value",
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
    match object.get("preemptionPolicy").and_then(Value::as_str) {
        Some("") => causes.push(FieldCause::required("preemptionPolicy")),
        Some(p) if !matches!(p, "PreemptLowerPriority" | "Never") => causes.push(not_supported(
            "preemptionPolicy",
            &quote(p),
            &["PreemptLowerPriority", "Never"],
        )),
        _ => {}
    }
    causes
}

fn default_priority_class(object: &mut Value) {
    default_field(object, "value", json!(0));
    if object.get("preemptionPolicy").is_none_or(Value::is_null) {
        object["preemptionPolicy"] = json!("PreemptLowerPriority");
    }
}

impl Strategy for PriorityClasses {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_priority_class(object);
        check(
            SCHEDULING,
            "PriorityClass",
            object,
            priority_class_causes(object),
        )
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_priority_class(object);
        let mut causes = priority_class_causes(object);
        if old.get("value") != object.get("value") {
            causes.push(FieldCause::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if old.get("preemptionPolicy") != object.get("preemptionPolicy") {
            causes.push(invalid(
                "preemptionPolicy",
                &quote(str_at(object, "/preemptionPolicy")),
                "field is immutable",
            ));
        }
        check(SCHEDULING, "PriorityClass", object, causes)
    }
}

/// Upstream's priority admission for priority classes: at most one may be the global default.
/// `existing` are the stored priority classes; `object` is being created or updated. Upstream
/// answers 403 Forbidden, naming the class that is already the default.
pub fn admit_priority_class(object: &Value, existing: &[Value]) -> ApiResult<()> {
    if object.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let me = name(object);
    let other = existing.iter().find(|pc| {
        pc.get("globalDefault").and_then(Value::as_bool) == Some(true) && name(pc) != me
    });
    match other {
        None => Ok(()),
        Some(default) => Err(ApiError {
            code: http::StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message: format!(
                "priorityclasses.scheduling.k8s.io \"{me}\" is forbidden: PriorityClass {} is marked as default. Only one default can exist",
                name(default)
            ),
            details: Some(json!({"name": me, "group": SCHEDULING, "kind": "priorityclasses"})),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// storage.k8s.io/v1

/// Storage classes: default reclaim policy and binding mode; provisioner, parameters, reclaim
/// policy and binding mode fixed once created.
#[derive(Debug)]
pub struct StorageClasses;
pub static STORAGE_CLASSES: StorageClasses = StorageClasses;

fn storage_class_causes(object: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let provisioner = str_at(object, "/provisioner");
    if provisioner.is_empty() {
        causes.push(FieldCause::required("provisioner"));
    } else {
        let lower = provisioner.to_lowercase();
        for msg in qualified_name_errors(&lower) {
            causes.push(invalid("provisioner", &quote(&lower), &msg));
        }
    }
    if let Some(params) = map_of(object, "parameters") {
        if params.len() > 512 {
            causes.push(FieldCause {
                reason: "FieldValueTooLong",
                field: "parameters".into(),
                message: "Too long: may not be more than 512 items".into(),
            });
        }
        let mut size = 0;
        for (k, v) in params {
            if k.is_empty() {
                causes.push(invalid("parameters", "\"\"", "field can not be empty."));
            }
            size += k.len() + v.as_str().map_or(0, str::len);
        }
        if size > 256 * 1024 {
            causes.push(FieldCause {
                reason: "FieldValueTooLong",
                field: "parameters".into(),
                message: "Too long: may not be more than 262144 bytes".into(),
            });
        }
    }
    causes.extend(one_of(
        object,
        "reclaimPolicy",
        "reclaimPolicy",
        &["Delete", "Retain"],
    ));
    causes.extend(one_of(
        object,
        "volumeBindingMode",
        "volumeBindingMode",
        &["Immediate", "WaitForFirstConsumer"],
    ));
    causes
}

fn default_storage_class(object: &mut Value) {
    default_field(object, "reclaimPolicy", json!("Delete"));
    default_field(object, "volumeBindingMode", json!("Immediate"));
}

impl Strategy for StorageClasses {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_storage_class(object);
        check(
            STORAGE,
            "StorageClass",
            object,
            storage_class_causes(object),
        )
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_storage_class(object);
        let mut causes = storage_class_causes(object);
        if map_of(old, "parameters") != map_of(object, "parameters") {
            causes.push(FieldCause::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if old.get("provisioner") != object.get("provisioner") {
            causes.push(FieldCause::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if old.get("reclaimPolicy") != object.get("reclaimPolicy") {
            causes.push(FieldCause::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        if old.get("volumeBindingMode") != object.get("volumeBindingMode") {
            causes.push(invalid(
                "volumeBindingMode",
                &quote(str_at(object, "/volumeBindingMode")),
                "field is immutable",
            ));
        }
        check(STORAGE, "StorageClass", object, causes)
    }
}

/// Upstream's `IsDefaultAnnotation`: the GA or the beta default-class annotation.
fn is_default_class(object: &Value) -> bool {
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|a| {
        object
            .pointer("/metadata/annotations")
            .and_then(|m| m.get(a))
            .and_then(Value::as_str)
            == Some("true")
    })
}

// ---------------------------------------------------------------------------------------------
// certificates.k8s.io/v1

/// Certificate signing requests: request, signer and usages validated; the spec fixed once
/// created; conditions validated and time-stamped on status and approval writes.
#[derive(Debug)]
pub struct CertificateSigningRequests;
pub static CERTIFICATE_SIGNING_REQUESTS: CertificateSigningRequests = CertificateSigningRequests;

/// Every key usage upstream knows, sorted as its error messages list them.
const KEY_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

fn decode_bytes(object: &Value, pointer: &str) -> ApiResult<Option<Vec<u8>>> {
    match object.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("illegal base64 data in {pointer}: {e}"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{pointer} must be a base64-encoded string"
        ))),
    }
}

/// Upstream's `validateCSR`: one `CERTIFICATE REQUEST` PEM block holding a parseable request.
fn csr_request_error(request: &[u8]) -> Option<String> {
    let pem = match x509_parser::pem::parse_x509_pem(request) {
        Ok((_, pem)) if pem.label == "CERTIFICATE REQUEST" => pem,
        _ => return Some("PEM block type must be CERTIFICATE REQUEST".into()),
    };
    use x509_parser::prelude::FromDer;
    match x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents) {
        Ok(_) => None,
        Err(e) => Some(format!("x509: malformed certificate request: {e}")),
    }
}

/// Upstream's `ValidateSignerName`.
fn signer_name_causes(signer: &str) -> Vec<FieldCause> {
    let field = "spec.signerName";
    if signer.is_empty() {
        return vec![FieldCause::required(field)];
    }
    let Some((domain, path)) = signer.split_once('/').filter(|(_, p)| !p.contains('/')) else {
        return vec![invalid(
            field,
            &quote(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut causes: Vec<FieldCause> = subdomain_errors(domain)
        .into_iter()
        .map(|m| {
            invalid(
                field,
                &quote(signer),
                &format!("validating domain component: {m}"),
            )
        })
        .collect();
    if path.is_empty() {
        causes.push(invalid(
            field,
            &quote(signer),
            "validating path: must not be empty",
        ));
    }
    causes
}

fn conditions_go(conditions: &[Value]) -> String {
    let items: Vec<String> = conditions
        .iter()
        .map(|c| {
            format!(
                "certificates.CertificateSigningRequestCondition{{Type:{}, Status:{}, Reason:{}, Message:{}}}",
                quote(str_at(c, "/type")),
                quote(str_at(c, "/status")),
                quote(str_at(c, "/reason")),
                quote(str_at(c, "/message"))
            )
        })
        .collect();
    format!(
        "[]certificates.CertificateSigningRequestCondition{{{}}}",
        items.join(", ")
    )
}

/// Upstream's `validateConditions`.
fn condition_causes(object: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut seen = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        let path = format!("status.conditions[{i}]");
        let type_ = str_at(c, "/type");
        let status = str_at(c, "/status");
        if type_.is_empty() {
            causes.push(FieldCause::required(&format!("{path}.type")));
        }
        match status {
            "True" | "False" | "Unknown" => {}
            "" => causes.push(FieldCause::required(&format!("{path}.status"))),
            other => causes.push(not_supported(
                &format!("{path}.status"),
                &quote(other),
                &["False", "True", "Unknown"],
            )),
        }
        if seen.contains(&type_) {
            causes.push(duplicate(&format!("{path}.type"), &quote(type_)));
        }
        seen.push(type_);
        if matches!(type_, "Approved" | "Denied") && status != "True" {
            causes.push(invalid(
                &format!("{path}.status"),
                &quote(status),
                &format!("{type_} condition may only have a status of `True`"),
            ));
        }
    }
    if seen.contains(&"Approved") && seen.contains(&"Denied") {
        causes.push(invalid(
            "status.conditions",
            &conditions_go(conditions),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    causes
}

fn csr_causes(object: &Value) -> ApiResult<Vec<FieldCause>> {
    let mut causes = Vec::new();
    let request = decode_bytes(object, "/spec/request")?;
    if let Some(error) = csr_request_error(request.as_deref().unwrap_or_default()) {
        causes.push(invalid(
            "spec.request",
            &go_bytes(request.as_deref()),
            &error,
        ));
    }
    let usages = array(&object["spec"], "usages");
    if usages.is_empty() {
        causes.push(FieldCause::required("spec.usages"));
    }
    let mut seen = Vec::new();
    for (i, usage) in usages.iter().enumerate() {
        let usage = usage.as_str().unwrap_or("");
        if !KEY_USAGES.contains(&usage) {
            causes.push(not_supported(
                &format!("spec.usages[{i}]"),
                &quote(usage),
                KEY_USAGES,
            ));
        }
        if seen.contains(&usage) {
            causes.push(duplicate(&format!("spec.usages[{i}]"), &quote(usage)));
        }
        seen.push(usage);
    }
    let signer = str_at(object, "/spec/signerName");
    if signer == "kubernetes.io/legacy-unknown" {
        causes.push(invalid(
            "spec.signerName",
            &quote(signer),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        causes.extend(signer_name_causes(signer));
    }
    if let Some(seconds) = object
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .filter(|s| *s < 600)
    {
        causes.push(invalid(
            "spec.expirationSeconds",
            &seconds.to_string(),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    causes.extend(condition_causes(object));
    if let Some(certificate) =
        decode_bytes(object, "/status/certificate")?.filter(|c| !c.is_empty())
    {
        let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&certificate).collect();
        let error = if blocks.iter().any(Result::is_err) {
            Some("must contain only CERTIFICATE PEM blocks")
        } else if blocks.is_empty() {
            Some("must contain at least one CERTIFICATE PEM block")
        } else if blocks
            .iter()
            .flatten()
            .any(|b| b.label != "CERTIFICATE" || b.parse_x509().is_err())
        {
            Some("must contain only valid CERTIFICATE PEM blocks")
        } else {
            None
        };
        if let Some(error) = error {
            causes.push(invalid(
                "status.certificate",
                "\"<certificate data>\"",
                error,
            ));
        }
    }
    Ok(causes)
}

fn conditions_of(object: &Value, type_: &str) -> usize {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(0, |cs| cs.iter().filter(|c| c["type"] == type_).count())
}

/// Upstream's `populateConditionTimestamps`: new conditions get the time of the write; a
/// condition whose type and status are unchanged keeps its transition time.
fn stamp_conditions(old: &Value, object: &mut Value) {
    let now = now_rfc3339();
    let old_conditions = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(conditions) = object
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in conditions.iter_mut().filter(|c| c.is_object()) {
        default_field(c, "lastUpdateTime", json!(now));
        if unset(c, "lastTransitionTime") {
            let previous = old_conditions
                .iter()
                .find(|o| {
                    o["type"] == c["type"]
                        && o["status"] == c["status"]
                        && !unset(o, "lastTransitionTime")
                })
                .map_or(json!(now), |o| o["lastTransitionTime"].clone());
            c["lastTransitionTime"] = previous;
        }
    }
}

impl Strategy for CertificateSigningRequests {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "spec.signerName",
            pointer: "/spec/signerName",
            default: "",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        // SECURITY: upstream overwrites spec.username, uid, groups and extra with the
        // authenticated requester, so a signer can trust them. They are stored as sent until
        // the request's identity reaches strategies; until then a client can claim to be anyone.
        object["status"] = json!({});
        let causes = csr_causes(object)?;
        check(CERTIFICATES, "CertificateSigningRequest", object, causes)
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        // The spec never changes after creation; upstream silently keeps the stored one.
        object["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
        // Status and approval writes (the main resource keeps its status): upstream lets
        // `/status` set the certificate and other conditions, and `/approval` only the
        // Approved and Denied conditions. The strategy cannot tell the two apart, so both may
        // do either; what neither may do is enforced.
        stamp_conditions(old, object);
        let mut causes = csr_causes(object)?;
        for type_ in ["Approved", "Denied", "Failed"] {
            if conditions_of(object, type_) < conditions_of(old, type_) {
                causes.push(FieldCause::forbidden(
                    "status.conditions",
                    &format!(
                        "updates may not remove a condition of type {}",
                        quote(type_)
                    ),
                ));
            }
        }
        let certificate = |o: &Value| str_at(o, "/status/certificate").to_string();
        if !certificate(old).is_empty() && certificate(old) != certificate(object) {
            causes.push(FieldCause::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
        check(CERTIFICATES, "CertificateSigningRequest", object, causes)
    }
}

/// `kubectl get csr`'s CONDITION (upstream's `extractCSRStatus`).
fn csr_condition(csr: &Value) -> Value {
    let has = |t: &str| conditions_of(csr, t) > 0;
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_at(csr, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    json!(status)
}

// ---------------------------------------------------------------------------------------------
// apiregistration.k8s.io/v1

/// APIServices: the name is `version.group`, local ones (no service) are always available.
#[derive(Debug)]
pub struct ApiServices;
pub static API_SERVICES: ApiServices = ApiServices;

fn api_service_causes(object: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").cloned().unwrap_or(json!({}));
    let group = str_at(&spec, "/group");
    let version = str_at(&spec, "/version");
    let wanted = format!("{version}.{group}");
    let own = name(object);
    if validate_name(NameRule::PathSegment, &own, "metadata.name").is_empty() && own != wanted {
        causes.push(invalid(
            "metadata.name",
            &quote(&own),
            &format!(
                "must be `spec.version+\".\"+spec.group`: {}",
                quote(&wanted)
            ),
        ));
    }
    if group.is_empty() && version != "v1" {
        causes.push(required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for msg in subdomain_errors(group) {
            causes.push(invalid("spec.group", &quote(group), &msg));
        }
    }
    if !is_dns1035_label(version) {
        if version.len() > 63 {
            causes.push(invalid(
                "spec.version",
                &quote(version),
                "must be no more than 63 characters",
            ));
        }
        causes.push(invalid("spec.version", &quote(version), DNS1035_MSG));
    }
    let group_priority = spec
        .get("groupPriorityMinimum")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if !(1..=20000).contains(&group_priority) {
        causes.push(invalid(
            "spec.groupPriorityMinimum",
            &group_priority.to_string(),
            "must be positive and less than 20000",
        ));
    }
    let version_priority = spec
        .get("versionPriority")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if !(1..=1000).contains(&version_priority) {
        causes.push(invalid(
            "spec.versionPriority",
            &version_priority.to_string(),
            "must be positive and less than 1000",
        ));
    }
    let insecure = spec.get("insecureSkipTLSVerify").and_then(Value::as_bool) == Some(true);
    let ca_bundle = str_at(&spec, "/caBundle");
    match spec.get("service").filter(|s| !s.is_null()) {
        None => {
            if !ca_bundle.is_empty() {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(ca_bundle)
                    .map_or(0, |b| b.len());
                causes.push(invalid(
                    "spec.caBundle",
                    &quote(&format!("{bytes} bytes")),
                    "local APIServices may not have a caBundle",
                ));
            }
            if insecure {
                causes.push(invalid(
                    "spec.insecureSkipTLSVerify",
                    "true",
                    "local APIServices may not have insecureSkipTLSVerify",
                ));
            }
        }
        Some(service) => {
            for key in ["namespace", "name"] {
                if str_at(service, &format!("/{key}")).is_empty() {
                    causes.push(FieldCause::required(&format!("spec.service.{key}")));
                }
            }
            let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
            if !(1..=65535).contains(&port) {
                causes.push(invalid(
                    "spec.service.port",
                    &port.to_string(),
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
            if insecure && !ca_bundle.is_empty() {
                causes.push(invalid(
                    "spec.insecureSkipTLSVerify",
                    "true",
                    "may not be true if caBundle is present",
                ));
            }
        }
    }
    causes
}

fn default_api_service(object: &mut Value) {
    if let Some(service) = object
        .pointer_mut("/spec/service")
        .filter(|s| s.is_object())
    {
        default_field(service, "port", json!(443));
    }
}

impl Strategy for ApiServices {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_api_service(object);
        // Upstream clears the status and its availability controller answers at once for a
        // local APIService; one backed by a service waits for that controller.
        object["status"] = if object.pointer("/spec/service").is_none_or(Value::is_null) {
            json!({"conditions": [{
                "type": "Available",
                "status": "True",
                "lastTransitionTime": now_rfc3339(),
                "reason": "Local",
                "message": "Local APIServices are always available",
            }]})
        } else {
            json!({})
        };
        check(
            APIREGISTRATION,
            "APIService",
            object,
            api_service_causes(object),
        )
    }

    fn prepare_update(&self, _old: &Value, object: &mut Value) -> ApiResult<()> {
        default_api_service(object);
        check(
            APIREGISTRATION,
            "APIService",
            object,
            api_service_causes(object),
        )
    }
}

fn api_service_available(object: &Value) -> Value {
    let condition = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
    json!(match condition {
        None => "Unknown".to_string(),
        Some(c) => {
            let status = str_at(c, "/status");
            let reason = str_at(c, "/reason");
            if status == "True" || reason.is_empty() {
                status.to_string()
            } else {
                format!("{status} ({reason})")
            }
        }
    })
}

/// The group and version priorities kube-apiserver's autoregistration gives built-in groups
/// (kube-aggregator's generic table merged with kube-apiserver's).
const API_SERVICE_PRIORITIES: &[(&str, &str, i64, i64)] = &[
    ("", "v1", 18000, 1),
    ("apiregistration.k8s.io", "v1", 18000, 15),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v1", 17500, 15),
    ("autoscaling", "v2", 17500, 30),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("resource.k8s.io", "v1beta2", 16200, 15),
    ("resource.k8s.io", "v1beta1", 16200, 9),
    ("discovery.k8s.io", "v1", 16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1", 16100, 21),
    ("internal.apiserver.k8s.io", "v1alpha1", 16000, 9),
    ("storagemigration.k8s.io", "v1alpha1", 15800, 9),
];

/// The local APIService upstream's autoregistration creates for one served group/version, or
/// none for a group/version it has no priority for (as upstream skips those).
fn api_service_for(group: &str, version: &str) -> Option<Value> {
    let (_, _, group_priority, version_priority) = API_SERVICE_PRIORITIES
        .iter()
        .find(|(g, v, _, _)| *g == group && *v == version)?;
    Some(json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {
            "name": format!("{version}.{group}"),
            "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"},
        },
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": group_priority,
            "versionPriority": version_priority,
        },
    }))
}

/// Every object this module wants created at first start, with the plural of its resource:
/// the system priority classes, then a local APIService for every served group/version.
pub fn bootstrap_objects() -> Vec<(&'static str, Value)> {
    let mut objects: Vec<(&'static str, Value)> = SYSTEM_PRIORITY_CLASSES
        .iter()
        .rev()
        .map(|(name, value, description)| {
            (
                "priorityclasses",
                json!({
                    "apiVersion": "scheduling.k8s.io/v1",
                    "kind": "PriorityClass",
                    "metadata": {"name": name},
                    "value": value,
                    "description": description,
                }),
            )
        })
        .collect();
    for (group, version) in crate::registry::groups() {
        match api_service_for(group, version) {
            Some(service) => objects.push(("apiservices", service)),
            None => tracing::warn!(group, version, "no APIService priority for a served group"),
        }
    }
    objects
}

// ---------------------------------------------------------------------------------------------
// core/v1: limit ranges and resource quotas

/// Resource names that may appear without a `/` prefix (upstream's `standardResources`).
const STANDARD_RESOURCES: &[&str] = &[
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
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// Resources quota counts in whole units (upstream's `IsIntegerResourceName`).
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// A quantity in thousandths, or upstream's decoding error (a 400, as upstream fails to decode).
fn quantity(value: &Value) -> ApiResult<i128> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    crate::pod::milli(&text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {})",
            quote(&text)
        ))
    })
}

fn quantity_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Upstream's `validateResourceName` with the standard-name check `standard` decides.
fn resource_name_causes(
    resource: &str,
    path: &str,
    standard: fn(&str) -> bool,
    message: &str,
) -> Vec<FieldCause> {
    let mut causes: Vec<FieldCause> = qualified_name_errors(resource)
        .into_iter()
        .map(|m| invalid(path, &quote(resource), &m))
        .collect();
    if !resource.contains('/') && !standard(resource) {
        causes.push(invalid(path, &quote(resource), message));
    }
    causes
}

/// Limit ranges: upstream's defaulting of container defaults and validation of each limit.
#[derive(Debug)]
pub struct LimitRanges;
pub static LIMIT_RANGES: LimitRanges = LimitRanges;

/// `SetDefaults_LimitRangeItem`: a container limit's default is its max, its default request
/// its default (or min).
fn default_limit(limit: &mut Value) {
    if str_at(limit, "/type") != "Container" {
        return;
    }
    let entries = |l: &Value, key: &str| l.get(key).and_then(Value::as_object).cloned();
    let mut default = entries(limit, "default").unwrap_or_default();
    for (k, v) in entries(limit, "max").unwrap_or_default() {
        default.entry(k).or_insert(v);
    }
    let mut request = entries(limit, "defaultRequest").unwrap_or_default();
    for (k, v) in default
        .iter()
        .chain(entries(limit, "min").unwrap_or_default().iter())
    {
        request.entry(k.clone()).or_insert(v.clone());
    }
    if !default.is_empty() {
        limit["default"] = Value::Object(default);
    }
    if !request.is_empty() {
        limit["defaultRequest"] = Value::Object(request);
    }
}

fn limit_range_causes(object: &Value) -> ApiResult<Vec<FieldCause>> {
    let mut causes = Vec::new();
    let mut types = Vec::new();
    let limits = object
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, limit) in limits.iter().enumerate() {
        let path = format!("spec.limits[{i}]");
        let type_ = str_at(limit, "/type");
        causes.extend(resource_name_causes(
            type_,
            &format!("{path}.type"),
            |t| matches!(t, "Pod" | "Container" | "PersistentVolumeClaim"),
            "must be a standard limit type or fully qualified",
        ));
        if types.contains(&type_) {
            causes.push(duplicate(&format!("{path}.type"), &quote(type_)));
        }
        types.push(type_);
        let mut values: std::collections::BTreeMap<&str, [Option<(i128, String)>; 5]> =
            Default::default();
        for (slot, key) in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ]
        .iter()
        .enumerate()
        {
            for (resource, q) in limit
                .get(*key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let field = format!("{path}.{key}[{resource}]");
                if slot < 4 {
                    let standard = if matches!(type_, "Pod" | "Container") {
                        |r: &str| {
                            matches!(r, "cpu" | "memory" | "ephemeral-storage")
                                || r.starts_with("hugepages-")
                        }
                    } else {
                        |r: &str| STANDARD_RESOURCES.contains(&r) || is_hugepages(r)
                    };
                    let message = if matches!(type_, "Pod" | "Container") {
                        "must be a standard resource for containers"
                    } else {
                        "must be a standard resource type or fully qualified"
                    };
                    causes.extend(resource_name_causes(resource, &field, standard, message));
                }
                values.entry(resource).or_default()[slot] = Some((quantity(q)?, quantity_text(q)));
            }
        }
        if type_ == "Pod" {
            for key in ["default", "defaultRequest"] {
                if map_of(limit, key).is_some() {
                    causes.push(FieldCause::forbidden(
                        &format!("{path}.{key}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        if type_ == "PersistentVolumeClaim"
            && limit.pointer("/min/storage").is_none()
            && limit.pointer("/max/storage").is_none()
        {
            causes.push(required(
                &format!("{path}.limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        for (resource, [max, min, default, request, ratio]) in &values {
            let at = |key: &str| format!("{path}.{key}[{resource}]");
            let mut compare = |low: &Option<(i128, String)>,
                               high: &Option<(i128, String)>,
                               key: &str,
                               shown: &Option<(i128, String)>,
                               what: (&str, &str)| {
                if let (Some(l), Some(h), Some(s)) = (low, high, shown)
                    && l.0 > h.0
                {
                    causes.push(invalid(
                        &at(key),
                        &quote(&s.1),
                        &format!(
                            "{} value {} is greater than {} value {}",
                            what.0, l.1, what.1, h.1
                        ),
                    ));
                }
            };
            compare(min, max, "min", min, ("min", "max"));
            compare(
                min,
                request,
                "defaultRequest",
                request,
                ("min", "default request"),
            );
            compare(
                request,
                max,
                "defaultRequest",
                request,
                ("default request", "max"),
            );
            compare(
                request,
                default,
                "defaultRequest",
                request,
                ("default request", "default limit"),
            );
            compare(min, default, "default", default, ("min", "default"));
            compare(default, max, "default", default, ("default", "max"));
            if let Some((r, text)) = ratio
                && *r < 1000
            {
                causes.push(invalid(
                    &at("maxLimitRequestRatio"),
                    &quote(text),
                    &format!("ratio {text} is less than 1"),
                ));
            }
        }
    }
    Ok(causes)
}

impl Strategy for LimitRanges {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        if let Some(limits) = object
            .pointer_mut("/spec/limits")
            .and_then(Value::as_array_mut)
        {
            limits.iter_mut().for_each(default_limit);
        }
        let causes = limit_range_causes(object)?;
        check("", "LimitRange", object, causes)
    }
}

/// Resource quotas: the status is the quota controller's; spec names and quantities validated.
#[derive(Debug)]
pub struct ResourceQuotas;
pub static RESOURCE_QUOTAS: ResourceQuotas = ResourceQuotas;

fn quota_causes(object: &Value) -> ApiResult<Vec<FieldCause>> {
    let mut causes = Vec::new();
    for (section, path) in [
        ("/spec/hard", "spec.hard"),
        ("/status/hard", "status.hard"),
        ("/status/used", "status.used"),
    ] {
        for (resource, q) in object
            .pointer(section)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let field = format!("{path}[{resource}]");
            if path == "spec.hard" {
                causes.extend(resource_name_causes(
                    resource,
                    &field,
                    |r| STANDARD_RESOURCES.contains(&r) || is_hugepages(r),
                    "must be a standard resource for quota",
                ));
            }
            let milli = quantity(q)?;
            if milli < 0 {
                causes.push(invalid(
                    &field,
                    &quote(&quantity_text(q)),
                    "must be greater than or equal to 0",
                ));
            }
            if (INTEGER_RESOURCES.contains(&resource.as_str()) || resource.starts_with("count/"))
                && milli % 1000 != 0
            {
                causes.push(invalid(
                    &field,
                    &quote(&quantity_text(q)),
                    "must be an integer",
                ));
            }
        }
    }
    const SCOPES: &[&str] = &[
        "Terminating",
        "NotTerminating",
        "BestEffort",
        "NotBestEffort",
        "PriorityClass",
        "CrossNamespacePodAffinity",
        "VolumeAttributesClass",
    ];
    for (i, scope) in array(&object["spec"], "scopes").iter().enumerate() {
        let scope = scope.as_str().unwrap_or("");
        if !SCOPES.contains(&scope) {
            causes.push(not_supported(
                &format!("spec.scopes[{i}]"),
                &quote(scope),
                SCOPES,
            ));
        }
    }
    Ok(causes)
}

impl Strategy for ResourceQuotas {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        object["status"] = json!({});
        let causes = quota_causes(object)?;
        check("", "ResourceQuota", object, causes)
    }

    fn prepare_update(&self, _old: &Value, object: &mut Value) -> ApiResult<()> {
        let causes = quota_causes(object)?;
        check("", "ResourceQuota", object, causes)
    }
}

/// `kubectl get quota`'s REQUEST (`limits_only` false) or LIMIT column: `name: used/hard` for
/// every resource in the status, sorted by name.
fn quota_usage(quota: &Value, limits_only: bool) -> Value {
    let Some(hard) = quota.pointer("/status/hard").and_then(Value::as_object) else {
        return json!("");
    };
    let mut names: Vec<&String> = hard
        .keys()
        .filter(|k| k.starts_with("limits.") == limits_only)
        .collect();
    names.sort();
    let cells: Vec<String> = names
        .iter()
        .map(|k| {
            let used = quota
                .pointer("/status/used")
                .and_then(|u| u.get(k.as_str()))
                .map_or("0".to_string(), quantity_text);
            format!("{k}: {used}/{}", quantity_text(&hard[k.as_str()]))
        })
        .collect();
    json!(cells.join(", "))
}

// ---------------------------------------------------------------------------------------------
// core/v1: persistent volumes and claims

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// The volume sources a persistent volume may name, exactly one of them.
const VOLUME_SOURCES: &[&str] = &[
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

fn access_mode_causes(spec: &Value, required_detail: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let modes = array(spec, "accessModes");
    if modes.is_empty() {
        causes.push(required("spec.accessModes", required_detail));
    }
    let mut once_pod = false;
    for mode in modes {
        let mode = mode.as_str().unwrap_or("");
        once_pod |= mode == "ReadWriteOncePod";
        if !ACCESS_MODES.contains(&mode) {
            causes.push(not_supported(
                "spec.accessModes",
                &quote(mode),
                ACCESS_MODES,
            ));
        }
    }
    if once_pod && modes.len() > 1 {
        causes.push(FieldCause::forbidden(
            "spec.accessModes",
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    causes
}

fn class_name_causes(spec: &Value) -> Vec<FieldCause> {
    let class = str_at(spec, "/storageClassName");
    if class.is_empty() {
        return Vec::new();
    }
    subdomain_errors(class)
        .into_iter()
        .map(|m| invalid("spec.storageClassName", &quote(class), &m))
        .collect()
}

/// Persistent volumes: upstream's defaulting (Retain, Filesystem, phase Pending) and validation.
#[derive(Debug)]
pub struct PersistentVolumes;
pub static PERSISTENT_VOLUMES: PersistentVolumes = PersistentVolumes;

fn default_volume_spec(object: &mut Value) {
    if !object.get("spec").is_some_and(Value::is_object) {
        object["spec"] = json!({});
    }
    default_field(
        &mut object["spec"],
        "persistentVolumeReclaimPolicy",
        json!("Retain"),
    );
    default_field(&mut object["spec"], "volumeMode", json!("Filesystem"));
}

fn pv_causes(object: &Value) -> ApiResult<Vec<FieldCause>> {
    let spec = &object["spec"];
    let mut causes = access_mode_causes(spec, "");
    let capacity = spec.get("capacity").and_then(Value::as_object);
    if capacity.is_none_or(|c| c.is_empty()) {
        causes.push(FieldCause::required("spec.capacity"));
    }
    if capacity.is_none_or(|c| c.len() != 1 || !c.contains_key("storage")) {
        let rendered = match capacity {
            None => "core.ResourceList(nil)".to_string(),
            Some(c) => format!(
                "core.ResourceList{{{}}}",
                c.iter()
                    .map(|(k, v)| format!("{}:{}", quote(k), quote(&quantity_text(v))))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        causes.push(not_supported("spec.capacity", &rendered, &["storage"]));
    }
    for (resource, q) in capacity.into_iter().flatten() {
        if quantity(q)? <= 0 {
            causes.push(invalid(
                &format!("spec.capacity[{resource}]"),
                &quote(&quantity_text(q)),
                "must be greater than zero",
            ));
        }
    }
    causes.extend(one_of(
        spec,
        "persistentVolumeReclaimPolicy",
        "spec.persistentVolumeReclaimPolicy",
        &["Delete", "Recycle", "Retain"],
    ));
    causes.extend(one_of(
        spec,
        "volumeMode",
        "spec.volumeMode",
        &["Block", "Filesystem"],
    ));
    causes.extend(class_name_causes(spec));
    let sources: Vec<&str> = VOLUME_SOURCES
        .iter()
        .copied()
        .filter(|s| spec.get(*s).is_some_and(|v| !v.is_null()))
        .collect();
    match sources.as_slice() {
        [] => causes.push(required("spec", "must specify a volume type")),
        [first, rest @ ..] => {
            for extra in rest {
                causes.push(FieldCause::forbidden(
                    &format!("spec.{extra}"),
                    "may not specify more than 1 volume type",
                ));
            }
            let source = &spec[*first];
            let need: &[&str] = match *first {
                "hostPath" | "local" => &["path"],
                "nfs" => &["server", "path"],
                "csi" => &["driver", "volumeHandle"],
                "iscsi" => &["targetPortal", "iqn"],
                "cephfs" => &["monitors"],
                "rbd" => &["monitors", "image"],
                "glusterfs" => &["endpoints", "path"],
                _ => &[],
            };
            for key in need {
                if unset(source, key) {
                    causes.push(FieldCause::required(&format!("spec.{first}.{key}")));
                }
            }
            if *first == "local" && unset(spec, "nodeAffinity") {
                causes.push(required(
                    "spec.nodeAffinity",
                    "Local volume requires node affinity",
                ));
            }
        }
    }
    Ok(causes)
}

impl Strategy for PersistentVolumes {
    fn field_labels(&self) -> &'static [FieldLabel] {
        // Upstream's legacy field, kept "for backward compatibility".
        &[FieldLabel {
            name: "name",
            pointer: "/metadata/name",
            default: "",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_volume_spec(object);
        object["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()});
        let causes = pv_causes(object)?;
        check("", "PersistentVolume", object, causes)
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_volume_spec(object);
        if !object.get("status").is_some_and(Value::is_object) {
            object["status"] = json!({});
        }
        default_field(&mut object["status"], "phase", json!("Pending"));
        // A phase change without a new transition time gets the time of this write.
        if old.pointer("/status/phase") != object.pointer("/status/phase")
            && (unset(&object["status"], "lastPhaseTransitionTime")
                || old.pointer("/status/lastPhaseTransitionTime")
                    == object.pointer("/status/lastPhaseTransitionTime"))
        {
            object["status"]["lastPhaseTransitionTime"] = json!(now_rfc3339());
        }
        let mut causes = pv_causes(object)?;
        let source = |o: &Value| -> Vec<(String, Value)> {
            VOLUME_SOURCES
                .iter()
                .filter_map(|s| o["spec"].get(*s).map(|v| (s.to_string(), v.clone())))
                .collect()
        };
        if source(old) != source(object) {
            causes.push(FieldCause::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        if old.pointer("/spec/volumeMode") != object.pointer("/spec/volumeMode") {
            causes.push(invalid(
                "volumeMode",
                &quote(str_at(object, "/spec/volumeMode")),
                "field is immutable",
            ));
        }
        if !unset(&old["spec"], "nodeAffinity")
            && old.pointer("/spec/nodeAffinity") != object.pointer("/spec/nodeAffinity")
        {
            causes.push(invalid("nodeAffinity", "\"object\"", "field is immutable"));
        }
        check("", "PersistentVolume", object, causes)
    }
}

/// Persistent volume claims: volume mode Filesystem, phase Pending, and a spec fixed once
/// created except for the bound claim's storage request and the volume name set once.
#[derive(Debug)]
pub struct PersistentVolumeClaims;
pub static PERSISTENT_VOLUME_CLAIMS: PersistentVolumeClaims = PersistentVolumeClaims;

fn pvc_causes(object: &Value) -> ApiResult<Vec<FieldCause>> {
    let spec = &object["spec"];
    let mut causes = access_mode_causes(spec, "at least 1 access mode is required");
    match spec.pointer("/resources/requests/storage") {
        None => causes.push(FieldCause::required("spec.resources[storage]")),
        Some(q) if quantity(q)? <= 0 => causes.push(invalid(
            "spec.resources[storage]",
            &quote(&quantity_text(q)),
            "must be greater than zero",
        )),
        Some(_) => {}
    }
    causes.extend(one_of(
        spec,
        "volumeMode",
        "spec.volumeMode",
        &["Block", "Filesystem"],
    ));
    causes.extend(class_name_causes(spec));
    Ok(causes)
}

fn default_claim(object: &mut Value) {
    if !object.get("spec").is_some_and(Value::is_object) {
        object["spec"] = json!({});
    }
    default_field(&mut object["spec"], "volumeMode", json!("Filesystem"));
    if !object.get("status").is_some_and(Value::is_object) {
        object["status"] = json!({});
    }
    default_field(&mut object["status"], "phase", json!("Pending"));
}

impl Strategy for PersistentVolumeClaims {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "name",
            pointer: "/metadata/name",
            default: "",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        object["status"] = json!({});
        default_claim(object);
        let causes = pvc_causes(object)?;
        check("", "PersistentVolumeClaim", object, causes)
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_claim(object);
        let mut causes = pvc_causes(object)?;
        let mut old_spec = old["spec"].clone();
        let mut new_spec = object["spec"].clone();
        if str_at(old, "/spec/volumeName").is_empty() {
            match new_spec.get("volumeName") {
                Some(v) => old_spec["volumeName"] = v.clone(),
                None => drop(old_spec.as_object_mut().map(|m| m.remove("volumeName"))),
            }
        }
        if str_at(object, "/status/phase") == "Bound"
            && let Some(storage) = old.pointer("/spec/resources/requests/storage")
            && new_spec
                .pointer("/resources/requests")
                .is_some_and(Value::is_object)
        {
            new_spec["resources"]["requests"]["storage"] = storage.clone();
        }
        for spec in [&mut old_spec, &mut new_spec] {
            if let Some(m) = spec.as_object_mut() {
                m.remove("volumeAttributesClassName");
            }
        }
        if old_spec != new_spec {
            causes.push(FieldCause::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        let size = |o: &Value| o.pointer("/spec/resources/requests/storage").map(quantity);
        if let (Some(old_size), Some(new_size)) = (size(old), size(object))
            && new_size? < old_size?
        {
            causes.push(FieldCause::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than previous value",
            ));
        }
        check("", "PersistentVolumeClaim", object, causes)
    }
}

/// Upstream's `GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.iter().any(|m| m == mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class of a volume or claim: the beta annotation wins over the field.
fn storage_class_of(object: &Value) -> Value {
    let annotation = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .and_then(Value::as_str);
    json!(annotation.unwrap_or_else(|| str_at(object, "/spec/storageClassName")))
}

fn unset_or(object: &Value, pointer: &str) -> Value {
    json!(
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("<unset>")
    )
}

fn phase_or_terminating(object: &Value) -> Value {
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        json!("Terminating")
    } else {
        json!(str_at(object, "/status/phase"))
    }
}

// ---------------------------------------------------------------------------------------------
// The table.

pub static RESOURCES: &[Resource] = &[
    Resource {
        kind: "LimitRange",
        plural: "limitranges",
        singular: "limitrange",
        short_names: &["limits"],
        columns: &[NAME, CREATED_AT],
        strategy: &LIMIT_RANGES,
        schema: |g| g.subschema_for::<core::LimitRange>(),
        ..BASE
    },
    Resource {
        kind: "ResourceQuota",
        plural: "resourcequotas",
        singular: "resourcequota",
        short_names: &["quota"],
        subresources: &["status"],
        columns: &[
            NAME,
            column!(
                "Request",
                "string",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
                0,
                |o| quota_usage(o, false)
            ),
            column!(
                "Limit",
                "string",
                "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                0,
                |o| quota_usage(o, true)
            ),
            AGE,
        ],
        strategy: &RESOURCE_QUOTAS,
        schema: |g| g.subschema_for::<core::ResourceQuota>(),
        ..BASE
    },
    Resource {
        kind: "PersistentVolume",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        namespaced: false,
        short_names: &["pv"],
        subresources: &["status"],
        columns: &[
            NAME,
            column!(
                "Capacity",
                "string",
                "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity",
                0,
                |o| json!(
                    o.pointer("/spec/capacity/storage")
                        .map_or("0".to_string(), quantity_text)
                )
            ),
            column!(
                "Access Modes",
                "string",
                "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes",
                0,
                |o| json!(access_modes(array(&o["spec"], "accessModes")))
            ),
            column!(
                "Reclaim Policy",
                "string",
                "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming",
                0,
                |o| json!(str_at(o, "/spec/persistentVolumeReclaimPolicy"))
            ),
            column!(
                "Status",
                "string",
                "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase",
                0,
                phase_or_terminating
            ),
            column!(
                "Claim",
                "string",
                "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding",
                0,
                |o| json!(match o.pointer("/spec/claimRef") {
                    Some(r) if r.is_object() =>
                        format!("{}/{}", str_at(r, "/namespace"), str_at(r, "/name")),
                    _ => String::new(),
                })
            ),
            column!(
                "StorageClass",
                "string",
                "StorageClass of the pv",
                0,
                storage_class_of
            ),
            column!(
                "VolumeAttributesClass",
                "string",
                "VolumeAttributesClass of the pv",
                0,
                |o| unset_or(o, "/spec/volumeAttributesClassName")
            ),
            column!(
                "Reason",
                "string",
                "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
                0,
                |o| json!(str_at(o, "/status/reason"))
            ),
            AGE,
            column!(
                "VolumeMode",
                "string",
                "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.",
                1,
                |o| unset_or(o, "/spec/volumeMode")
            ),
        ],
        strategy: &PERSISTENT_VOLUMES,
        schema: |g| g.subschema_for::<core::PersistentVolume>(),
        ..BASE
    },
    Resource {
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        short_names: &["pvc"],
        subresources: &["status"],
        columns: &[
            NAME,
            column!(
                "Status",
                "string",
                "phase represents the current phase of PersistentVolumeClaim.",
                0,
                phase_or_terminating
            ),
            column!(
                "Volume",
                "string",
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
                0,
                |o| json!(str_at(o, "/spec/volumeName"))
            ),
            column!(
                "Capacity",
                "string",
                "capacity represents the actual resources of the underlying volume.",
                0,
                |o| json!(if str_at(o, "/spec/volumeName").is_empty() {
                    String::new()
                } else {
                    o.pointer("/status/capacity/storage")
                        .map_or("0".to_string(), quantity_text)
                })
            ),
            column!(
                "Access Modes",
                "string",
                "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
                0,
                |o| json!(if str_at(o, "/spec/volumeName").is_empty() {
                    String::new()
                } else {
                    access_modes(array(&o["status"], "accessModes"))
                })
            ),
            column!(
                "StorageClass",
                "string",
                "StorageClass of the pvc",
                0,
                storage_class_of
            ),
            column!(
                "VolumeAttributesClass",
                "string",
                "VolumeAttributesClass of the pvc",
                0,
                |o| unset_or(o, "/spec/volumeAttributesClassName")
            ),
            AGE,
            column!(
                "VolumeMode",
                "string",
                "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.",
                1,
                |o| unset_or(o, "/spec/volumeMode")
            ),
        ],
        strategy: &PERSISTENT_VOLUME_CLAIMS,
        schema: |g| g.subschema_for::<core::PersistentVolumeClaim>(),
        ..BASE
    },
    Resource {
        group: APIREGISTRATION,
        kind: "APIService",
        plural: "apiservices",
        singular: "apiservice",
        namespaced: false,
        subresources: &["status"],
        name_rule: NameRule::PathSegment,
        columns: &[
            NAME,
            column!(
                "Service",
                "string",
                "The reference to the service that hosts this API endpoint.",
                0,
                |o| json!(match o.pointer("/spec/service") {
                    Some(s) if s.is_object() =>
                        format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name")),
                    _ => "Local".to_string(),
                })
            ),
            column!(
                "Available",
                "string",
                "Whether this service is available.",
                0,
                api_service_available
            ),
            AGE,
        ],
        strategy: &API_SERVICES,
        schema: |g| g.subschema_for::<apiregistration::APIService>(),
        ..BASE
    },
    Resource {
        group: CERTIFICATES,
        kind: "CertificateSigningRequest",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        namespaced: false,
        short_names: &["csr"],
        subresources: &["status", "approval"],
        name_rule: NameRule::PathSegment,
        columns: &[
            NAME,
            AGE,
            column!(
                "SignerName",
                "string",
                "signerName indicates the requested signer, and is a qualified name.",
                0,
                |o| json!(match str_at(o, "/spec/signerName") {
                    "" => "<none>",
                    s => s,
                })
            ),
            column!(
                "Requestor",
                "string",
                "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded.",
                0,
                |o| json!(str_at(o, "/spec/username"))
            ),
            column!(
                "RequestedDuration",
                "string",
                "expirationSeconds is the requested duration of validity of the issued certificate.",
                0,
                |o| json!(
                    o.pointer("/spec/expirationSeconds")
                        .and_then(Value::as_i64)
                        .map_or("<none>".to_string(), crate::table::human_duration)
                )
            ),
            column!(
                "Condition",
                "string",
                "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".",
                0,
                csr_condition
            ),
        ],
        strategy: &CERTIFICATE_SIGNING_REQUESTS,
        schema: |g| g.subschema_for::<certificates::CertificateSigningRequest>(),
        ..BASE
    },
    Resource {
        group: POLICY,
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        short_names: &["pdb"],
        subresources: &["status"],
        columns: &[
            NAME,
            column!(
                "Min Available",
                "string",
                "The minimum number of pods that must be available.",
                0,
                |o| pdb_bound(o, "minAvailable")
            ),
            column!(
                "Max Unavailable",
                "string",
                "The maximum number of pods that may be unavailable.",
                0,
                |o| pdb_bound(o, "maxUnavailable")
            ),
            column!(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
                0,
                |o| json!(
                    o.pointer("/status/disruptionsAllowed")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                )
            ),
            AGE,
        ],
        strategy: &POD_DISRUPTION_BUDGETS,
        schema: |g| g.subschema_for::<policy::PodDisruptionBudget>(),
        generation: true,
        ..BASE
    },
    Resource {
        group: RBAC,
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        name_rule: NameRule::PathSegment,
        columns: &CLUSTER_ROLE_BINDING_COLUMNS,
        strategy: &CLUSTER_ROLE_BINDINGS,
        schema: |g| g.subschema_for::<rbac::ClusterRoleBinding>(),
        ..BASE
    },
    Resource {
        group: RBAC,
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        name_rule: NameRule::PathSegment,
        columns: &[NAME, CREATED_AT],
        strategy: &CLUSTER_ROLES,
        schema: |g| g.subschema_for::<rbac::ClusterRole>(),
        ..BASE
    },
    Resource {
        group: RBAC,
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        name_rule: NameRule::PathSegment,
        columns: &ROLE_BINDING_COLUMNS,
        strategy: &ROLE_BINDINGS,
        schema: |g| g.subschema_for::<rbac::RoleBinding>(),
        ..BASE
    },
    Resource {
        group: RBAC,
        kind: "Role",
        plural: "roles",
        singular: "role",
        name_rule: NameRule::PathSegment,
        columns: &[NAME, CREATED_AT],
        strategy: &ROLES,
        schema: |g| g.subschema_for::<rbac::Role>(),
        ..BASE
    },
    Resource {
        group: STORAGE,
        kind: "StorageClass",
        plural: "storageclasses",
        singular: "storageclass",
        namespaced: false,
        short_names: &["sc"],
        columns: &[
            Column {
                cell: |o| {
                    let own = name(o);
                    json!(if is_default_class(o) {
                        format!("{own} (default)")
                    } else {
                        own
                    })
                },
                ..NAME
            },
            column!(
                "Provisioner",
                "string",
                "provisioner indicates the type of the provisioner.",
                0,
                |o| json!(str_at(o, "/provisioner"))
            ),
            column!(
                "ReclaimPolicy",
                "string",
                "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.",
                0,
                |o| json!(
                    o.get("reclaimPolicy")
                        .and_then(Value::as_str)
                        .unwrap_or("Delete")
                )
            ),
            column!(
                "VolumeBindingMode",
                "string",
                "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.",
                0,
                |o| json!(
                    o.get("volumeBindingMode")
                        .and_then(Value::as_str)
                        .unwrap_or("Immediate")
                )
            ),
            column!(
                "AllowVolumeExpansion",
                "string",
                "allowVolumeExpansion shows whether the storage class allow volume expand.",
                0,
                |o| json!(
                    o.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                )
            ),
            AGE,
        ],
        strategy: &STORAGE_CLASSES,
        schema: |g| g.subschema_for::<storage::StorageClass>(),
        ..BASE
    },
    Resource {
        group: SCHEDULING,
        kind: "PriorityClass",
        plural: "priorityclasses",
        singular: "priorityclass",
        namespaced: false,
        short_names: &["pc"],
        columns: &[
            NAME,
            column!(
                "Value",
                "integer",
                "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.",
                0,
                |o| json!(o.get("value").and_then(Value::as_i64).unwrap_or(0))
            ),
            column!(
                "Global-Default",
                "boolean",
                "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.",
                0,
                |o| json!(
                    o.get("globalDefault")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                )
            ),
            AGE,
            column!(
                "PreemptionPolicy",
                "string",
                "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.",
                0,
                |o| json!(str_at(o, "/preemptionPolicy"))
            ),
        ],
        strategy: &PRIORITY_CLASSES,
        schema: |g| g.subschema_for::<scheduling::PriorityClass>(),
        ..BASE
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(plural: &str, object: &Value) -> Vec<Value> {
        let r = RESOURCES.iter().find(|r| r.plural == plural).unwrap();
        r.columns
            .iter()
            .filter(|c| c.name != "Age" && c.name != "Created At")
            .map(|c| (c.cell)(object))
            .collect()
    }

    fn message(result: ApiResult<()>) -> String {
        result.unwrap_err().message
    }

    #[test]
    fn rbac_rules_and_bindings_validate_as_upstream() {
        let mut role = json!({"metadata": {"name": "r"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
        ]});
        assert_eq!(
            message(ROLES.prepare_create(&mut role)),
            "Role.rbac.authorization.k8s.io \"r\" is invalid: [rules[0].verbs: Required value: verbs must contain at least one value, rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs]"
        );
        let mut cluster_role = json!({"metadata": {"name": "c"}, "aggregationRule": {},
            "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert_eq!(
            message(CLUSTER_ROLES.prepare_create(&mut cluster_role)),
            "ClusterRole.rbac.authorization.k8s.io \"c\" is invalid: aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"
        );

        let mut binding = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "sa"}]});
        ROLE_BINDINGS.prepare_create(&mut binding).unwrap();
        assert_eq!(binding["roleRef"]["apiGroup"], RBAC);
        assert_eq!(binding["subjects"][0]["apiGroup"], RBAC);
        assert!(binding["subjects"][1].get("apiGroup").is_none());
        let old = binding.clone();
        binding["roleRef"]["name"] = json!("other");
        assert!(
            message(ROLE_BINDINGS.prepare_update(&old, &mut binding)).ends_with(
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef"
            )
        );
        let mut cluster_binding = json!({"metadata": {"name": "cb"}, "roleRef": {"kind": "Role", "name": "a/b"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "x"}]});
        assert_eq!(
            message(CLUSTER_ROLE_BINDINGS.prepare_create(&mut cluster_binding)),
            "ClusterRoleBinding.rbac.authorization.k8s.io \"cb\" is invalid: [roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\", roleRef.name: Invalid value: \"a/b\": may not contain '/', subjects[0].namespace: Required value, subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"]"
        );
    }

    #[test]
    fn binding_columns_list_subjects_by_kind() {
        let binding = json!({"roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [
            {"kind": "User", "name": "a"}, {"kind": "User", "name": "b"},
            {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        assert_eq!(
            cells("rolebindings", &binding),
            [
                json!(""),
                json!("ClusterRole/view"),
                json!("a, b"),
                json!(""),
                json!("ns/sa")
            ]
        );
    }

    #[test]
    fn pod_disruption_budgets() {
        let mut pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}});
        POD_DISRUPTION_BUDGETS.prepare_create(&mut pdb).unwrap();
        assert_eq!(
            pdb["status"],
            json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
        );
        assert_eq!(
            cells("poddisruptionbudgets", &pdb),
            [json!("p"), json!("50%"), json!("N/A"), json!(0)]
        );
        let mut both =
            json!({"metadata": {"name": "p"}, "spec": {"minAvailable": -1, "maxUnavailable": "x"}});
        assert_eq!(
            message(POD_DISRUPTION_BUDGETS.prepare_create(&mut both)),
            "PodDisruptionBudget.policy \"p\" is invalid: [spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:&intstr.IntOrString{Type:0, IntVal:-1, StrVal:\"\"}, Selector:nil, MaxUnavailable:&intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}, UnhealthyPodEvictionPolicy:nil}: minAvailable and maxUnavailable cannot be both set, spec.minAvailable: Invalid value: -1: must be greater than or equal to 0, spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')]"
        );
    }

    #[test]
    fn priority_classes() {
        let mut pc = json!({"metadata": {"name": "high"}, "value": 10});
        PRIORITY_CLASSES.prepare_create(&mut pc).unwrap();
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(
            cells("priorityclasses", &pc),
            [
                json!("high"),
                json!(10),
                json!(false),
                json!("PreemptLowerPriority")
            ]
        );
        let old = pc.clone();
        pc["value"] = json!(11);
        pc["preemptionPolicy"] = json!("Never");
        assert_eq!(
            message(PRIORITY_CLASSES.prepare_update(&old, &mut pc)),
            "PriorityClass.scheduling.k8s.io \"high\" is invalid: [value: Forbidden: may not be changed in an update., preemptionPolicy: Invalid value: \"Never\": field is immutable]"
        );
        let mut system = json!({"metadata": {"name": "system-node-critical"}, "value": 5});
        assert!(
            message(PRIORITY_CLASSES.prepare_create(&mut system)).ends_with(
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-node-critical PriorityClass must be 2000001000"
            )
        );
        for (_, mut object) in bootstrap_objects()
            .into_iter()
            .filter(|(p, _)| *p == "priorityclasses")
        {
            PRIORITY_CLASSES.prepare_create(&mut object).unwrap();
        }

        let existing = [json!({"metadata": {"name": "old"}, "globalDefault": true})];
        let new = json!({"metadata": {"name": "new"}, "globalDefault": true});
        let err = admit_priority_class(&new, &existing).unwrap_err();
        assert_eq!(err.code, http::StatusCode::FORBIDDEN);
        assert_eq!(
            err.message,
            "priorityclasses.scheduling.k8s.io \"new\" is forbidden: PriorityClass old is marked as default. Only one default can exist"
        );
        admit_priority_class(&existing[0], &existing).unwrap();
    }

    #[test]
    fn storage_classes() {
        let mut sc = json!({"metadata": {"name": "s", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "Example.com/Disk"});
        STORAGE_CLASSES.prepare_create(&mut sc).unwrap();
        assert_eq!(
            (&sc["reclaimPolicy"], &sc["volumeBindingMode"]),
            (&json!("Delete"), &json!("Immediate"))
        );
        let row = cells("storageclasses", &sc);
        assert_eq!(row[0], "s (default)");
        assert_eq!(row[4], json!(false));
        let mut bad =
            json!({"metadata": {"name": "s"}, "provisioner": "-bad", "volumeBindingMode": "Later"});
        assert_eq!(
            message(STORAGE_CLASSES.prepare_create(&mut bad)),
            "StorageClass.storage.k8s.io \"s\" is invalid: [provisioner: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'), volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"]"
        );
    }

    #[test]
    fn certificate_signing_requests() {
        let mut csr = json!({"metadata": {"name": "c"}, "spec": {"request": "aGk=", "signerName": "example.com", "usages": ["client auth", "flying", "client auth"], "expirationSeconds": 60}});
        assert_eq!(
            message(CERTIFICATE_SIGNING_REQUESTS.prepare_create(&mut csr)),
            "CertificateSigningRequest.certificates.k8s.io \"c\" is invalid: [spec.request: Invalid value: []byte{0x68, 0x69}: PEM block type must be CERTIFICATE REQUEST, spec.usages[1]: Unsupported value: \"flying\": supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\", spec.usages[2]: Duplicate value: \"client auth\", spec.signerName: Invalid value: \"example.com\": must be a fully qualified domain and path of the form 'example.com/signer-name', spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)]"
        );
        let csr = json!({"spec": {"signerName": "example.com/x", "username": "jane", "expirationSeconds": 3600},
            "status": {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}], "certificate": "eA=="}});
        assert_eq!(
            cells("certificatesigningrequests", &csr),
            [
                json!(""),
                json!("example.com/x"),
                json!("jane"),
                json!("60m"),
                json!("Approved,Failed,Issued")
            ]
        );

        let old = json!({"status": {"conditions": [{"type": "Approved", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}});
        let mut new = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}]}});
        stamp_conditions(&old, &mut new);
        assert_eq!(
            new["status"]["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert!(new["status"]["conditions"][1]["lastUpdateTime"].is_string());
    }

    #[test]
    fn api_services() {
        let objects = bootstrap_objects();
        let service = objects
            .iter()
            .find(|(_, o)| o["metadata"]["name"] == "v1.rbac.authorization.k8s.io")
            .map(|(_, o)| o.clone())
            .unwrap();
        let mut service = service;
        API_SERVICES.prepare_create(&mut service).unwrap();
        assert_eq!(service["spec"]["groupPriorityMinimum"], 17000);
        assert_eq!(
            cells("apiservices", &service),
            [
                json!("v1.rbac.authorization.k8s.io"),
                json!("Local"),
                json!("True")
            ]
        );
        let mut remote = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
            "groupPriorityMinimum": 100, "versionPriority": 100, "service": {"namespace": "kube-system", "name": "metrics-server"}}});
        API_SERVICES.prepare_create(&mut remote).unwrap();
        assert_eq!(remote["spec"]["service"]["port"], 443);
        assert_eq!(remote["status"], json!({}));
        assert_eq!(
            cells("apiservices", &remote)[1..],
            [json!("kube-system/metrics-server"), json!("Unknown")]
        );
        let mut bad = json!({"metadata": {"name": "v1.x"}, "spec": {"version": "v2", "groupPriorityMinimum": 0, "versionPriority": 1}});
        assert_eq!(
            message(API_SERVICES.prepare_create(&mut bad)),
            "APIService.apiregistration.k8s.io \"v1.x\" is invalid: [metadata.name: Invalid value: \"v1.x\": must be `spec.version+\".\"+spec.group`: \"v2.\", spec.group: Required value: only v1 may have an empty group and it better be legacy kube, spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000]"
        );
    }

    #[test]
    fn limit_ranges_default_and_compare() {
        let mut lr = json!({"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}});
        LIMIT_RANGES.prepare_create(&mut lr).unwrap();
        assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
        assert_eq!(
            lr["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "2", "memory": "1Mi"})
        );
        let mut bad = json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Container", "max": {"cpu": "1"}, "default": {"cpu": "2"}, "maxLimitRequestRatio": {"cpu": "500m"}},
            {"type": "PersistentVolumeClaim"}]}});
        assert_eq!(
            message(LIMIT_RANGES.prepare_create(&mut bad)),
            "LimitRange \"l\" is invalid: [spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod', spec.limits[1].defaultRequest[cpu]: Invalid value: \"2\": default request value 2 is greater than max value 1, spec.limits[1].default[cpu]: Invalid value: \"2\": default value 2 is greater than max value 1, spec.limits[1].maxLimitRequestRatio[cpu]: Invalid value: \"500m\": ratio 500m is less than 1, spec.limits[2].limits: Required value: either minimum or maximum storage value is required, but neither was provided]"
        );
    }

    #[test]
    fn resource_quota_columns_split_requests_and_limits() {
        let quota = json!({"status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi", "count/secrets": "5"},
            "used": {"pods": "1", "limits.cpu": "500m"}}});
        assert_eq!(
            cells("resourcequotas", &quota),
            [
                json!(""),
                json!("count/secrets: 0/5, pods: 1/10, requests.memory: 0/1Gi"),
                json!("limits.cpu: 500m/2")
            ]
        );
        let mut quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "-1", "count/pods": "2"}}, "status": {"used": {"x": "1"}}});
        assert_eq!(
            message(RESOURCE_QUOTAS.prepare_create(&mut quota)),
            "ResourceQuota \"q\" is invalid: spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0"
        );
        assert_eq!(quota["status"], json!({}));
    }

    #[test]
    fn volumes_and_claims() {
        let mut pv = json!({"metadata": {"name": "v"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "nfs": {"server": "s", "path": "/"}, "claimRef": {"namespace": "ns", "name": "c"}}});
        PERSISTENT_VOLUMES.prepare_create(&mut pv).unwrap();
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pv["status"]["phase"], "Pending");
        assert_eq!(
            cells("persistentvolumes", &pv),
            [
                json!("v"),
                json!("1Gi"),
                json!("RWO,ROX"),
                json!("Retain"),
                json!("Pending"),
                json!("ns/c"),
                json!(""),
                json!("<unset>"),
                json!(""),
                json!("Filesystem")
            ]
        );
        let old = pv.clone();
        pv["status"]["phase"] = json!("Available");
        pv["spec"]["volumeMode"] = json!("Block");
        assert_eq!(
            message(PERSISTENT_VOLUMES.prepare_update(&old, &mut pv)),
            "PersistentVolume \"v\" is invalid: volumeMode: Invalid value: \"Block\": field is immutable"
        );
        let mut two = json!({"metadata": {"name": "v"}, "spec": {"capacity": {"storage": "0"}, "accessModes": ["ReadWriteOncePod", "ReadWriteOnce"],
            "hostPath": {}, "local": {"path": "/x"}}});
        assert_eq!(
            message(PERSISTENT_VOLUMES.prepare_create(&mut two)),
            "PersistentVolume \"v\" is invalid: [spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes, spec.capacity[storage]: Invalid value: \"0\": must be greater than zero, spec.local: Forbidden: may not specify more than 1 volume type, spec.hostPath.path: Required value]"
        );

        let mut pvc = json!({"metadata": {"name": "c", "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        PERSISTENT_VOLUME_CLAIMS.prepare_create(&mut pvc).unwrap();
        assert_eq!(
            (&pvc["spec"]["volumeMode"], &pvc["status"]),
            (&json!("Filesystem"), &json!({"phase": "Pending"}))
        );
        assert_eq!(
            cells("persistentvolumeclaims", &pvc),
            [
                json!("c"),
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!("beta"),
                json!("<unset>"),
                json!("Filesystem")
            ]
        );
        let old = pvc.clone();
        pvc["spec"]["volumeName"] = json!("v");
        PERSISTENT_VOLUME_CLAIMS
            .prepare_update(&old, &mut pvc)
            .unwrap();
        let old = pvc.clone();
        pvc["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(message(PERSISTENT_VOLUME_CLAIMS.prepare_update(&old, &mut pvc)).ends_with(
            "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
        ));
        pvc["status"]["phase"] = json!("Bound");
        PERSISTENT_VOLUME_CLAIMS
            .prepare_update(&old, &mut pvc)
            .unwrap();
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name_errors("kubernetes.io/no-provisioner").is_empty());
        assert_eq!(
            qualified_name_errors("/x"),
            ["prefix part must be non-empty"]
        );
        assert_eq!(qualified_name_errors("a/b/c").len(), 1);
    }
}
