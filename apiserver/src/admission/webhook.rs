//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook: the webhooks of the cluster's webhook configurations, matched by rules and selectors, called with an `admission.k8s.io` AdmissionReview (mutating ones in order with JSON patches and one reinvocation round, validating ones concurrently).
//!
//! Configurations are read from the watch cache on every request (upstream reads an
//! informer), sorted by name, their webhooks in order. A webhook that cannot be reached or
//! answers nonsense fails the request (`failurePolicy: Fail`, 500 `failed calling webhook`)
//! or is skipped (`Ignore`); a webhook that says no fails it with its own status
//! (`admission webhook "x" denied the request: ...`).
//!
//! Not done: `matchConditions` (CEL), `matchPolicy: Equivalent` across versions of a
//! resource (every k1s resource is served at one version, so Exact and Equivalent agree),
//! calling mutating webhooks on DELETE, and re-running the built-in mutating plugins after a
//! webhook mutated (the resource's own defaulting and validation do run again).

mod call;

use std::time::Duration;

use base64::Engine;
use futures_util::future::{BoxFuture, join_all};
use serde_json::{Map, Value, json};

pub use call::ca_roots;

use super::{Attributes, Lookup, Operation, Plugin, resource};
use crate::object::meta_str;
use crate::status::{ApiError, ApiResult};

const GROUP: &str = "admissionregistration.k8s.io";

/// The mutating webhooks.
pub struct MutatingAdmissionWebhook;

/// The validating webhooks.
pub struct ValidatingAdmissionWebhook;

/// One webhook of one configuration.
struct Hook {
    configuration: String,
    spec: Value,
}

impl Hook {
    fn name(&self) -> &str {
        self.spec.get("name").and_then(Value::as_str).unwrap_or("")
    }

    fn str(&self, key: &str) -> &str {
        self.spec.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn ignores_failures(&self) -> bool {
        self.str("failurePolicy") == "Ignore"
    }

    fn timeout(&self) -> Duration {
        let seconds = self
            .spec
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(10);
        Duration::from_secs(seconds.clamp(1, 30))
    }

    fn reinvocable(&self) -> bool {
        self.str("reinvocationPolicy") == "IfNeeded"
    }
}

/// Upstream exempts the admission configuration resources from webhooks, so a broken webhook
/// can always be removed.
fn exempt(attrs: &Attributes<'_>) -> bool {
    attrs.resource.group == GROUP
        && matches!(
            attrs.resource.kind,
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

/// The webhooks of every configuration of `plural`, configurations sorted by name.
async fn hooks(cluster: &dyn Lookup, plural: &str) -> ApiResult<Vec<Hook>> {
    let mut configs = cluster.cached(resource(GROUP, plural)).await?;
    configs.sort_by(|a, b| meta_str(a, "name").cmp(&meta_str(b, "name")));
    let mut out = Vec::new();
    for config in configs {
        let name = meta_str(&config, "name").unwrap_or("").to_string();
        for spec in config
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push(Hook {
                configuration: name.clone(),
                spec: spec.clone(),
            });
        }
    }
    Ok(out)
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

fn listed(rule: &Value, key: &str, wanted: &str) -> bool {
    rule.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|item| item == "*" || item == wanted)
}

/// upstream's `rules.Matcher`: scope, operation, group, version, resource/subresource.
fn rule_matches(rule: &Value, attrs: &Attributes<'_>) -> bool {
    let r = attrs.resource;
    let is_namespace = r.group.is_empty() && r.plural == "namespaces";
    let scope = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "*" => true,
        "Namespaced" => !is_namespace && !attrs.namespace.is_empty(),
        "Cluster" => is_namespace || attrs.namespace.is_empty(),
        _ => false,
    };
    let subresource = attrs.subresource.unwrap_or("");
    let resource = rule
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|res_sub| {
            let (res, sub) = res_sub.split_once('/').unwrap_or((res_sub, ""));
            (res == "*" || res == r.plural) && (sub == "*" || sub == subresource)
        });
    scope
        && listed(rule, "operations", operation_name(attrs.operation))
        && listed(rule, "apiGroups", r.group)
        && listed(rule, "apiVersions", r.version)
        && resource
}

fn labels(object: Option<&Value>) -> Option<&Map<String, Value>> {
    object?.pointer("/metadata/labels")?.as_object()
}

/// Whether a webhook applies: a rule matches, then its namespace and object selectors.
async fn applies(
    hook: &Hook,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    cluster: &dyn Lookup,
) -> ApiResult<bool> {
    let rules = hook.spec.get("rules").and_then(Value::as_array);
    if !rules.into_iter().flatten().any(|r| rule_matches(r, attrs)) {
        return Ok(false);
    }
    let empty = json!({});
    let selector = |key: &str| {
        hook.spec
            .get(key)
            .filter(|s| s.is_object())
            .unwrap_or(&empty)
            .clone()
    };
    let namespace_selector = selector("namespaceSelector");
    let r = attrs.resource;
    let is_namespace = r.group.is_empty() && r.plural == "namespaces";
    if !crate::workloads::selector_empty(&namespace_selector)
        && (is_namespace || !attrs.namespace.is_empty())
    {
        let own_labels = is_namespace
            && attrs.subresource.is_none()
            && matches!(attrs.operation, Operation::Create | Operation::Update);
        let matched = if own_labels {
            crate::workloads::selector_matches(Some(&namespace_selector), labels(object))
        } else {
            let name = if is_namespace {
                attrs.name
            } else {
                attrs.namespace
            };
            let namespace = cluster
                .get(resource("", "namespaces"), None, name)
                .await?
                .ok_or_else(|| ApiError::not_found("", "namespaces", name))?;
            crate::workloads::selector_matches(Some(&namespace_selector), labels(Some(&namespace)))
        };
        if !matched {
            return Ok(false);
        }
    }
    let object_selector = selector("objectSelector");
    if !crate::workloads::selector_empty(&object_selector) {
        let new = crate::workloads::selector_matches(Some(&object_selector), labels(object));
        let old = attrs.old_object.is_some()
            && crate::workloads::selector_matches(Some(&object_selector), labels(attrs.old_object));
        if !new && !old {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The AdmissionReview version a webhook accepts (v1 preferred).
fn review_version(hook: &Hook) -> Option<&'static str> {
    let versions: Vec<&str> = hook
        .spec
        .get("admissionReviewVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ["v1", "v1beta1"].into_iter().find(|v| versions.contains(v))
}

/// upstream's `CreateV1AdmissionReview`.
fn review(api_version: &str, uid: &str, attrs: &Attributes<'_>, object: Option<&Value>) -> Value {
    let r = attrs.resource;
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let gvr = json!({"group": r.group, "version": r.version, "resource": r.plural});
    let mut user = json!({"username": attrs.user.name});
    if !attrs.user.uid.is_empty() {
        user["uid"] = json!(attrs.user.uid);
    }
    if !attrs.user.groups.is_empty() {
        user["groups"] = json!(attrs.user.groups);
    }
    if !attrs.user.extra.is_empty() {
        user["extra"] = json!(attrs.user.extra);
    }
    let typed = |o: &Value| crate::object::with_type_meta(r, o.clone());
    let options = match attrs.operation {
        Operation::Create => json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Update => json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Delete => json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Connect => Value::Null,
    };
    let mut request = Map::new();
    request.insert("uid".into(), json!(uid));
    request.insert("kind".into(), kind.clone());
    request.insert("resource".into(), gvr.clone());
    if let Some(sub) = attrs.subresource {
        request.insert("subResource".into(), json!(sub));
    }
    request.insert("requestKind".into(), kind);
    request.insert("requestResource".into(), gvr);
    if let Some(sub) = attrs.subresource {
        request.insert("requestSubResource".into(), json!(sub));
    }
    let name = match attrs.name {
        "" => object.and_then(|o| meta_str(o, "name")).unwrap_or(""),
        name => name,
    };
    if !name.is_empty() {
        request.insert("name".into(), json!(name));
    }
    if !attrs.namespace.is_empty() {
        request.insert("namespace".into(), json!(attrs.namespace));
    }
    request.insert("operation".into(), json!(operation_name(attrs.operation)));
    request.insert("userInfo".into(), user);
    request.insert("object".into(), object.map_or(Value::Null, typed));
    request.insert(
        "oldObject".into(),
        attrs.old_object.map_or(Value::Null, typed),
    );
    request.insert("dryRun".into(), json!(attrs.dry_run));
    request.insert("options".into(), options);
    json!({
        "kind": "AdmissionReview",
        "apiVersion": format!("admission.k8s.io/{api_version}"),
        "request": request,
    })
}

/// What a call came to, short of success.
enum Failure {
    /// The webhook could not be called or its answer was unusable (subject to failurePolicy).
    Calling(String),
    /// A final error (a rejection, or dry run unsupported).
    Status(ApiError),
}

/// What a webhook answered.
struct Answer {
    patch: Option<Vec<u8>>,
}

/// The `metav1.StatusReason`s, so a webhook's reason can be passed on.
const REASONS: &[&str] = &[
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "Gone",
    "Invalid",
    "ServerTimeout",
    "StoreReadError",
    "Timeout",
    "TooManyRequests",
    "BadRequest",
    "MethodNotAllowed",
    "NotAcceptable",
    "RequestEntityTooLarge",
    "UnsupportedMediaType",
    "InternalError",
    "Expired",
    "ServiceUnavailable",
];

/// upstream's `webhookerrors.ToStatusErr`.
fn denied(webhook: &str, result: Option<&Value>) -> ApiError {
    let empty = json!({});
    let result = result.filter(|r| r.is_object()).unwrap_or(&empty);
    let text = |key: &str| result.get(key).and_then(Value::as_str).unwrap_or("");
    let code = result
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| (400..=599).contains(c))
        .unwrap_or(400) as u16;
    let by = format!("admission webhook \"{webhook}\" denied the request");
    let message = match (text("message"), text("reason")) {
        ("", "") => format!("{by} without explanation"),
        ("", reason) => format!("{by}: {reason}"),
        (message, _) => format!("{by}: {message}"),
    };
    let reason = REASONS
        .iter()
        .copied()
        .find(|r| *r == text("reason"))
        .unwrap_or("");
    ApiError {
        code: http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_REQUEST),
        reason,
        message,
        details: result.get("details").filter(|d| d.is_object()).cloned(),
    }
}

/// upstream's `NewInternalError` of an `ErrCallingWebhook`.
fn failed_calling(webhook: &str, reason: &str) -> ApiError {
    let error = format!("failed calling webhook \"{webhook}\": {reason}");
    ApiError::internal(format!("Internal error occurred: {error}"))
        .with_details(json!({"causes": [{"message": error}]}))
}

/// Call one webhook; `mutating` allows (and requires well-formed) patches.
async fn call(
    hook: &Hook,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    cluster: &dyn Lookup,
    warnings: &mut Vec<String>,
    mutating: bool,
) -> Result<Answer, Failure> {
    let name = hook.name();
    if attrs.dry_run && !matches!(hook.str("sideEffects"), "None" | "NoneOnDryRun") {
        return Err(Failure::Status(ApiError::bad_request(format!(
            "admission webhook \"{name}\" does not support dry run"
        ))));
    }
    let Some(version) = review_version(hook) else {
        return Err(Failure::Calling(
            "webhook does not accept known AdmissionReview versions (v1, v1beta1)".into(),
        ));
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&review(version, &uid, attrs, object))
        .map_err(|e| Failure::Calling(format!("could not create admission objects: {e}")))?;
    let timeout = hook.timeout();
    let client_config = hook.spec.get("clientConfig").cloned().unwrap_or_default();
    let target = call::resolve(&client_config, timeout, cluster)
        .await
        .map_err(Failure::Calling)?;
    let prefix = if mutating {
        "failed to call webhook: "
    } else {
        ""
    };
    let bytes = call::post(&target, body, timeout)
        .await
        .map_err(|reason| Failure::Calling(format!("{prefix}{reason}")))?;
    let invalid = |reason: &str| {
        let prefix = if mutating {
            "received invalid webhook response: "
        } else {
            ""
        };
        Failure::Calling(format!("{prefix}{reason}"))
    };
    let answer: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(&format!("cannot decode the response: {e}")))?;
    let got_version = answer
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let got_kind = answer.get("kind").and_then(Value::as_str).unwrap_or("");
    let want_version = format!("admission.k8s.io/{version}");
    if got_version != want_version || got_kind != "AdmissionReview" {
        return Err(invalid(&format!(
            "expected webhook response of {want_version}, Kind=AdmissionReview, got {got_version}, Kind={got_kind}"
        )));
    }
    let Some(response) = answer.get("response").filter(|r| r.is_object()) else {
        return Err(invalid("webhook response was absent"));
    };
    let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(invalid(&format!(
            "expected response.uid=\"{uid}\", got \"{got_uid}\""
        )));
    }
    let patch = response
        .get("patch")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let patch_type = response
        .get("patchType")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    match (mutating, patch, patch_type) {
        (false, Some(_), _) => {
            return Err(invalid("validating webhook may not return response.patch"));
        }
        (false, _, Some(_)) => {
            return Err(invalid(
                "validating webhook may not return response.patchType",
            ));
        }
        (true, Some(_), None) if version == "v1" => {
            return Err(invalid(
                "webhook returned response.patch but not response.patchType",
            ));
        }
        (true, None, Some(_)) => {
            return Err(invalid(
                "webhook returned response.patchType but not response.patch",
            ));
        }
        (true, _, Some(t)) if t != "JSONPatch" => {
            return Err(invalid(&format!(
                "webhook returned invalid response.patchType of \"{t}\""
            )));
        }
        _ => {}
    }
    if let Some(annotations) = response.get("auditAnnotations").and_then(Value::as_object) {
        for (key, value) in annotations {
            if let Some(value) = value.as_str() {
                crate::audit::annotate(&format!("{name}/{key}"), value);
            }
        }
    }
    for warning in response
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        warnings.push(warning.to_string());
    }
    if response.get("allowed").and_then(Value::as_bool) != Some(true) {
        return Err(Failure::Status(denied(name, response.get("status"))));
    }
    let patch = match patch {
        None => None,
        Some(p) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| {
                    Failure::Calling(format!(
                        "received undecodable patch in webhook response: {e}"
                    ))
                })?,
        ),
    };
    Ok(Answer { patch })
}

/// Apply a mutating webhook's JSON patch; whether the object changed.
fn apply_patch(name: &str, patch: &[u8], object: &mut Value) -> Result<bool, Failure> {
    let operations: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| {
        Failure::Calling(format!(
            "received undecodable patch in webhook response: {e}"
        ))
    })?;
    if operations.0.is_empty() {
        return Ok(false);
    }
    let before = object.clone();
    json_patch::patch(object, &operations).map_err(|e| {
        *object = before.clone();
        Failure::Status(ApiError::internal(format!(
            "Internal error occurred: admission webhook \"{name}\" returned a patch that does not apply: {e}"
        )))
    })?;
    Ok(*object != before)
}

impl MutatingAdmissionWebhook {
    /// One round over the webhooks; `only` restricts it to reinvocations.
    #[allow(clippy::too_many_arguments, reason = "one round's whole state")]
    async fn round(
        &self,
        hooks: &[Hook],
        round: usize,
        only: Option<&[usize]>,
        attrs: &Attributes<'_>,
        object: &mut Value,
        cluster: &dyn Lookup,
        warnings: &mut Vec<String>,
        invoked: &mut Vec<usize>,
        reinvoke: &mut Vec<usize>,
    ) -> ApiResult<()> {
        for (i, hook) in hooks.iter().enumerate() {
            if only.is_some_and(|only| !only.contains(&i)) {
                continue;
            }
            if !applies(hook, attrs, Some(object), cluster).await? {
                continue;
            }
            let result = match call(hook, attrs, Some(object), cluster, warnings, true).await {
                Ok(Answer { patch: Some(patch) }) => apply_patch(hook.name(), &patch, object),
                Ok(Answer { patch: None }) => Ok(false),
                Err(failure) => Err(failure),
            };
            let changed = matches!(result, Ok(true));
            crate::audit::annotate(
                &format!("mutation.webhook.admission.k8s.io/round_{round}_index_{i}"),
                json!({
                    "configuration": hook.configuration,
                    "webhook": hook.name(),
                    "mutated": changed,
                })
                .to_string(),
            );
            if changed {
                // As upstream: every reinvocable webhook called before this change sees it again.
                reinvoke.append(invoked);
            }
            if hook.reinvocable() {
                invoked.push(i);
            }
            match result {
                Ok(_) => {}
                Err(Failure::Calling(reason)) if hook.ignores_failures() => {
                    tracing::warn!(webhook = hook.name(), %reason, "failed calling webhook, failing open");
                }
                Err(Failure::Calling(reason)) => return Err(failed_calling(hook.name(), &reason)),
                Err(Failure::Status(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Plugin for MutatingAdmissionWebhook {
    fn admit<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: &'a mut Value,
        cluster: &'a dyn Lookup,
        warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            if exempt(attrs) {
                return Ok(());
            }
            let hooks = hooks(cluster, "mutatingwebhookconfigurations").await?;
            if hooks.is_empty() {
                return Ok(());
            }
            let (mut invoked, mut reinvoke) = (Vec::new(), Vec::new());
            self.round(
                &hooks,
                0,
                None,
                attrs,
                object,
                cluster,
                warnings,
                &mut invoked,
                &mut reinvoke,
            )
            .await?;
            if !reinvoke.is_empty() {
                let only = std::mem::take(&mut reinvoke);
                self.round(
                    &hooks,
                    1,
                    Some(&only),
                    attrs,
                    object,
                    cluster,
                    warnings,
                    &mut invoked,
                    &mut reinvoke,
                )
                .await?;
            }
            Ok(())
        })
    }
}

impl Plugin for ValidatingAdmissionWebhook {
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            if exempt(attrs) {
                return Ok(());
            }
            let hooks = hooks(cluster, "validatingwebhookconfigurations").await?;
            let mut relevant = Vec::new();
            for hook in &hooks {
                if applies(hook, attrs, object, cluster).await? {
                    relevant.push(hook);
                }
            }
            // Concurrently, as upstream; the first failure in webhook order is the answer.
            let results = join_all(relevant.iter().map(|hook| async move {
                let mut own = Vec::new();
                let result = call(hook, attrs, object, cluster, &mut own, false).await;
                (hook, result, own)
            }))
            .await;
            let mut first = None;
            for (hook, result, own) in results {
                warnings.extend(own);
                match result {
                    Ok(_) => {}
                    Err(Failure::Calling(reason)) if hook.ignores_failures() => {
                        tracing::warn!(webhook = hook.name(), %reason, "failed calling webhook, failing open");
                    }
                    Err(Failure::Calling(reason)) => {
                        first.get_or_insert(failed_calling(hook.name(), &reason));
                    }
                    Err(Failure::Status(e)) => {
                        first.get_or_insert(e);
                    }
                }
            }
            first.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::testing;

    fn attrs<'a>(
        op: Operation,
        plural: &str,
        namespace: &'a str,
        subresource: Option<&'a str>,
        user: &'a crate::auth::UserInfo,
    ) -> Attributes<'a> {
        let mut a = testing::create("", plural, namespace, "x", user);
        a.operation = op;
        a.subresource = subresource;
        a
    }

    #[test]
    fn rules_match_as_upstream() {
        let user = testing::admin();
        let pods = attrs(Operation::Create, "pods", "ns", None, &user);
        let status = attrs(Operation::Update, "pods", "ns", Some("status"), &user);
        let nodes = attrs(Operation::Create, "nodes", "", None, &user);
        let rule = |ops: &[&str], resources: &[&str], scope: &str| json!({"operations": ops, "apiGroups": [""], "apiVersions": ["v1"], "resources": resources, "scope": scope});
        assert!(rule_matches(&rule(&["CREATE"], &["pods"], "*"), &pods));
        assert!(!rule_matches(&rule(&["UPDATE"], &["pods"], "*"), &pods));
        assert!(rule_matches(&rule(&["*"], &["*"], "*"), &pods));
        // "*" is every resource but no subresource; "*/*" both; "pods/*" pods and its subresources.
        assert!(!rule_matches(&rule(&["*"], &["*"], "*"), &status));
        assert!(rule_matches(&rule(&["*"], &["*/*"], "*"), &status));
        assert!(rule_matches(&rule(&["*"], &["pods/*"], "*"), &status));
        assert!(rule_matches(&rule(&["*"], &["*/status"], "*"), &status));
        // upstream's matcher lets a `/*` subresource wildcard match the resource itself too.
        assert!(rule_matches(&rule(&["*"], &["pods/*"], "*"), &pods));
        assert!(!rule_matches(&rule(&["*"], &["*"], "Cluster"), &pods));
        assert!(rule_matches(&rule(&["*"], &["*"], "Cluster"), &nodes));
        assert!(!rule_matches(&rule(&["*"], &["*"], "Namespaced"), &nodes));
    }

    #[test]
    fn denial_status_as_upstream() {
        let e = denied(
            "v.example.com",
            Some(&json!({"message": "no", "code": 403, "reason": "Forbidden"})),
        );
        assert_eq!(e.code.as_u16(), 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "admission webhook \"v.example.com\" denied the request: no"
        );
        let e = denied("v.example.com", None);
        assert_eq!(e.code.as_u16(), 400);
        assert_eq!(
            e.message,
            "admission webhook \"v.example.com\" denied the request without explanation"
        );
        let e = denied(
            "v.example.com",
            Some(&json!({"code": 200, "reason": "Custom"})),
        );
        assert_eq!(e.code.as_u16(), 400);
        assert_eq!(
            e.message,
            "admission webhook \"v.example.com\" denied the request: Custom"
        );
    }

    #[test]
    fn review_shape() {
        let user = crate::auth::UserInfo {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            extra: Default::default(),
        };
        let a = attrs(Operation::Update, "pods", "ns", Some("status"), &user);
        let pod = json!({"metadata": {"name": "x"}});
        let r = review("v1", "u1", &a, Some(&pod));
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
        let req = &r["request"];
        assert_eq!(req["uid"], "u1");
        assert_eq!(
            req["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(
            req["resource"],
            json!({"group": "", "version": "v1", "resource": "pods"})
        );
        assert_eq!(req["subResource"], "status");
        assert_eq!(req["operation"], "UPDATE");
        assert_eq!(
            req["userInfo"],
            json!({"username": "alice", "groups": ["system:authenticated"]})
        );
        assert_eq!(req["object"]["kind"], "Pod");
        assert_eq!(req["oldObject"], Value::Null);
        assert_eq!(req["options"]["kind"], "UpdateOptions");
        assert_eq!(req["dryRun"], false);
    }

    #[test]
    fn patches_apply_or_fail_cleanly() {
        let mut pod = json!({"metadata": {"name": "x"}});
        let add = br#"[{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]"#;
        assert!(matches!(apply_patch("m", add, &mut pod), Ok(true)));
        assert_eq!(pod["metadata"]["labels"]["a"], "b");
        let bad = br#"[{"op": "replace", "path": "/nope/x", "value": 1}]"#;
        assert!(matches!(
            apply_patch("m", bad, &mut pod),
            Err(Failure::Status(_))
        ));
        assert_eq!(pod["metadata"]["labels"]["a"], "b");
        assert!(matches!(
            apply_patch("m", b"{", &mut pod),
            Err(Failure::Calling(_))
        ));
    }
}
