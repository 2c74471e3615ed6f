//! admissionregistration.k8s.io/v1 MutatingWebhookConfiguration and ValidatingWebhookConfiguration: upstream's defaulting and validation (the webhooks themselves are called by `admission::webhook`).

use k8s_openapi::api::admissionregistration::v1 as admissionregistration;
use serde_json::{Value, json};

use super::{
    array, check, default_field, duplicate, go_strings, invalid, not_supported, quote, required,
    subdomain_errors,
};
use crate::registry::{AGE, BASE, Column, NAME, Resource};
use crate::status::{ApiResult, FieldCause};
use crate::strategy::Strategy;

pub const GROUP: &str = "admissionregistration.k8s.io";

/// The AdmissionReview versions this server speaks (upstream's `AcceptedAdmissionReviewVersions`).
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
const NO_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const REINVOCATION_POLICIES: &[&str] = &["IfNeeded", "Never"];
const URL_FORM: &str = "; desired format: https://host[/path]";

/// Webhook configurations of one kind.
#[derive(Debug)]
pub struct WebhookConfigurations {
    kind: &'static str,
    mutating: bool,
}

pub static MUTATING: WebhookConfigurations = WebhookConfigurations {
    kind: "MutatingWebhookConfiguration",
    mutating: true,
};
pub static VALIDATING: WebhookConfigurations = WebhookConfigurations {
    kind: "ValidatingWebhookConfiguration",
    mutating: false,
};

/// `SetDefaults_{Validating,Mutating}Webhook`, `SetDefaults_Rule`, `SetDefaults_ServiceReference`.
fn default_webhooks(object: &mut Value, mutating: bool) {
    let Some(hooks) = object.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for hook in hooks.iter_mut().filter(|h| h.is_object()) {
        default_field(hook, "failurePolicy", json!("Fail"));
        default_field(hook, "matchPolicy", json!("Equivalent"));
        if hook.get("namespaceSelector").is_none_or(Value::is_null) {
            hook["namespaceSelector"] = json!({});
        }
        if hook.get("objectSelector").is_none_or(Value::is_null) {
            hook["objectSelector"] = json!({});
        }
        if hook.get("timeoutSeconds").is_none_or(Value::is_null) {
            hook["timeoutSeconds"] = json!(10);
        }
        if mutating {
            default_field(hook, "reinvocationPolicy", json!("Never"));
        }
        if let Some(rules) = hook.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut().filter(|r| r.is_object()) {
                default_field(rule, "scope", json!("*"));
            }
        }
        if let Some(service) = hook
            .pointer_mut("/clientConfig/service")
            .filter(|s| s.is_object())
            && service.get("port").is_none_or(Value::is_null)
        {
            service["port"] = json!(443);
        }
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().unwrap_or("")).collect())
        .unwrap_or_default()
}

/// `validateResources`: subresource wildcards may not overlap.
fn resource_causes(resources: &[&str], path: &str, raw: Option<&Value>) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    if resources.is_empty() {
        causes.push(required(path, ""));
    }
    let mut wildcard_subresources: Vec<&str> = Vec::new();
    let mut wildcard_resources: Vec<&str> = Vec::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, res_sub) in resources.iter().enumerate() {
        if res_sub.is_empty() {
            causes.push(required(&format!("{path}[{i}]"), ""));
            continue;
        }
        double |= *res_sub == "*/*";
        single |= *res_sub == "*";
        let Some((res, sub)) = res_sub.split_once('/') else {
            plain = *res_sub != "*";
            continue;
        };
        if wildcard_subresources.contains(&res) {
            causes.push(invalid(
                &format!("{path}[{i}]"),
                &quote(res_sub),
                &format!("if '{res}/*' is present, must not specify {res_sub}"),
            ));
        }
        if wildcard_resources.contains(&sub) {
            causes.push(invalid(
                &format!("{path}[{i}]"),
                &quote(res_sub),
                &format!("if '*/{sub}' is present, must not specify {res_sub}"),
            ));
        }
        if sub == "*" {
            wildcard_subresources.push(res);
        }
        if res == "*" {
            wildcard_resources.push(sub);
        }
    }
    if resources.len() > 1 && double {
        causes.push(invalid(
            path,
            &go_strings(raw),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        causes.push(invalid(
            path,
            &go_strings(raw),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
    causes
}

/// `validateRuleWithOperations`.
fn rule_causes(rule: &Value, path: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let operations = strings(rule.get("operations"));
    if operations.is_empty() {
        causes.push(required(&format!("{path}.operations"), ""));
    }
    if operations.len() > 1 && operations.contains(&"*") {
        causes.push(FieldCause {
            reason: "FieldValueInvalid",
            field: format!("{path}.operations"),
            message: format!(
                "Invalid value: []admissionregistration.OperationType{{{}}}: if '*' is present, must not specify other operations",
                operations
                    .iter()
                    .map(|o| quote(o))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    for (i, op) in operations.iter().enumerate() {
        if !OPERATIONS.contains(op) {
            causes.push(not_supported(
                &format!("{path}.operations[{i}]"),
                &quote(op),
                OPERATIONS,
            ));
        }
    }
    let groups = strings(rule.get("apiGroups"));
    if groups.is_empty() {
        causes.push(required(&format!("{path}.apiGroups"), ""));
    }
    if groups.len() > 1 && groups.contains(&"*") {
        causes.push(invalid(
            &format!("{path}.apiGroups"),
            &go_strings(rule.get("apiGroups")),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = strings(rule.get("apiVersions"));
    if versions.is_empty() {
        causes.push(required(&format!("{path}.apiVersions"), ""));
    }
    if versions.len() > 1 && versions.contains(&"*") {
        causes.push(invalid(
            &format!("{path}.apiVersions"),
            &go_strings(rule.get("apiVersions")),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            causes.push(required(&format!("{path}.apiVersions[{i}]"), ""));
        }
    }
    causes.extend(resource_causes(
        &strings(rule.get("resources")),
        &format!("{path}.resources"),
        rule.get("resources"),
    ));
    if let Some(scope) = rule.get("scope").and_then(Value::as_str)
        && !SCOPES.contains(&scope)
    {
        causes.push(not_supported(
            &format!("{path}.scope"),
            &quote(scope),
            SCOPES,
        ));
    }
    causes
}

/// `ValidateWebhookURL` (https only).
fn url_causes(url: &str, path: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if scheme != "https" {
        causes.push(invalid(
            path,
            &quote(scheme),
            &format!("'https' is the only allowed URL scheme{URL_FORM}"),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if host.is_empty() {
        causes.push(invalid(
            path,
            "\"\"",
            &format!("host must be specified{URL_FORM}"),
        ));
    }
    if let Some(user) = user {
        causes.push(invalid(
            path,
            &quote(user),
            "user information is not permitted in the URL",
        ));
    }
    if let Some((_, fragment)) = rest.split_once('#')
        && !fragment.is_empty()
    {
        causes.push(invalid(
            path,
            &quote(fragment),
            "fragments are not permitted in the URL",
        ));
    }
    let before_fragment = rest.split('#').next().unwrap_or("");
    if let Some((_, query)) = before_fragment.split_once('?')
        && !query.is_empty()
    {
        causes.push(invalid(
            path,
            &quote(query),
            "query parameters are not permitted in the URL",
        ));
    }
    causes
}

/// `ValidateWebhookService`.
fn service_causes(service: &Value, path: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    for field in ["name", "namespace"] {
        if service
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            causes.push(required(&format!("{path}.{field}"), ""));
        }
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        causes.push(invalid(
            &format!("{path}.port"),
            &port.to_string(),
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let Some(url_path) = service.get("path").and_then(Value::as_str) else {
        return causes;
    };
    if url_path.is_empty() || url_path == "/" {
        return causes;
    }
    let at = format!("{path}.path");
    if url_path == "//" {
        causes.push(invalid(
            &at,
            &quote(url_path),
            "segment[0] may not be empty",
        ));
        return causes;
    }
    if !url_path.starts_with('/') {
        causes.push(invalid(&at, &quote(url_path), "must start with a '/'"));
    }
    let trimmed = url_path.strip_prefix('/').unwrap_or(url_path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    for (i, step) in trimmed.split('/').enumerate() {
        if step.is_empty() {
            causes.push(invalid(
                &at,
                &quote(url_path),
                &format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for failure in subdomain_errors(step) {
            causes.push(invalid(
                &at,
                &quote(url_path),
                &format!("segment[{i}]: {failure}"),
            ));
        }
    }
    causes
}

/// `validateAdmissionReviewVersions`.
fn review_version_causes(hook: &Value, path: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let versions = strings(hook.get("admissionReviewVersions"));
    if versions.is_empty() {
        causes.push(required(
            path,
            &format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        ));
        return causes;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        if seen.contains(v) {
            causes.push(invalid(
                &format!("{path}[{i}]"),
                &quote(v),
                "duplicate version",
            ));
            continue;
        }
        seen.push(v);
        if !super::is_dns1035_label(v) {
            causes.push(invalid(
                &format!("{path}[{i}]"),
                &quote(v),
                super::DNS1035_MSG,
            ));
        }
    }
    if !versions.iter().any(|v| REVIEW_VERSIONS.contains(v)) {
        causes.push(invalid(
            path,
            &go_strings(hook.get("admissionReviewVersions")),
            &format!(
                "must include at least one of {}",
                REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
    causes
}

/// `IsFullyQualifiedName`.
fn fully_qualified_causes(name: &str, path: &str) -> Vec<FieldCause> {
    if name.is_empty() {
        return vec![required(path, "")];
    }
    let errors = subdomain_errors(name);
    if !errors.is_empty() {
        return vec![invalid(path, &quote(name), &errors.join(","))];
    }
    if name.split('.').count() < 3 {
        return vec![invalid(
            path,
            &quote(name),
            "should be a domain with at least three segments separated by dots",
        )];
    }
    Vec::new()
}

fn one_of(hook: &Value, key: &str, path: &str, supported: &[&str]) -> Option<FieldCause> {
    let value = hook.get(key)?.as_str().unwrap_or("");
    (!supported.contains(&value)).then(|| not_supported(path, &quote(value), supported))
}

/// `validate{Mutating,Validating}WebhookConfiguration` (as on create: no side effects, a
/// known AdmissionReview version and unique webhook names required).
fn configuration_causes(object: &Value, mutating: bool) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, hook) in array(object, "webhooks").iter().enumerate() {
        let path = format!("webhooks[{i}]");
        let name = hook.get("name").and_then(Value::as_str).unwrap_or("");
        causes.extend(fully_qualified_causes(name, &format!("{path}.name")));
        for (j, rule) in array(hook, "rules").iter().enumerate() {
            causes.extend(rule_causes(rule, &format!("{path}.rules[{j}]")));
        }
        causes.extend(one_of(
            hook,
            "failurePolicy",
            &format!("{path}.failurePolicy"),
            FAILURE_POLICIES,
        ));
        causes.extend(one_of(
            hook,
            "matchPolicy",
            &format!("{path}.matchPolicy"),
            MATCH_POLICIES,
        ));
        match hook.get("sideEffects").and_then(Value::as_str) {
            None => causes.push(required(
                &format!("{path}.sideEffects"),
                &format!("must specify one of {}", NO_SIDE_EFFECTS.join(", ")),
            )),
            Some(s) if !NO_SIDE_EFFECTS.contains(&s) => causes.push(not_supported(
                &format!("{path}.sideEffects"),
                &quote(s),
                NO_SIDE_EFFECTS,
            )),
            Some(_) => {}
        }
        if let Some(t) = hook.get("timeoutSeconds").and_then(Value::as_i64)
            && !(1..=30).contains(&t)
        {
            causes.push(invalid(
                &format!("{path}.timeoutSeconds"),
                &t.to_string(),
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
        for selector in ["namespaceSelector", "objectSelector"] {
            if let Some(s) = hook.get(selector).filter(|s| s.is_object()) {
                causes.extend(crate::workloads::selector_requirement_causes(
                    &format!("{path}.{selector}"),
                    s,
                ));
            }
        }
        if mutating {
            causes.extend(one_of(
                hook,
                "reinvocationPolicy",
                &format!("{path}.reinvocationPolicy"),
                REINVOCATION_POLICIES,
            ));
        }
        let config = hook.get("clientConfig").cloned().unwrap_or(Value::Null);
        let url = config.get("url").and_then(Value::as_str);
        let service = config.get("service").filter(|s| s.is_object());
        match (url, service) {
            (Some(url), None) => {
                causes.extend(url_causes(url, &format!("{path}.clientConfig.url")))
            }
            (None, Some(service)) => causes.extend(service_causes(
                service,
                &format!("{path}.clientConfig.service"),
            )),
            _ => causes.push(required(
                &format!("{path}.clientConfig"),
                "exactly one of url or service is required",
            )),
        }
        if let Some(bundle) = config.get("caBundle").and_then(Value::as_str)
            && crate::admission::webhook::ca_roots(bundle).is_err()
        {
            causes.push(invalid(
                &format!("{path}.clientConfig.caBundle"),
                "[]byte{...}",
                "data does not contain any valid RSA or ECDSA certificates",
            ));
        }
        causes.extend(review_version_causes(
            hook,
            &format!("{path}.admissionReviewVersions"),
        ));
        if !name.is_empty() {
            if names.contains(&name) {
                causes.push(duplicate(&format!("{path}.name"), &quote(name)));
            } else {
                names.push(name);
            }
        }
    }
    causes
}

impl Strategy for WebhookConfigurations {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_webhooks(object, self.mutating);
        check(
            GROUP,
            self.kind,
            object,
            configuration_causes(object, self.mutating),
        )
    }
}

fn webhook_count(o: &Value) -> Value {
    json!(array(o, "webhooks").len())
}

const WEBHOOKS: Column = Column {
    name: "Webhooks",
    type_: "integer",
    format: "",
    description: "Webhooks is a list of webhooks and the affected resources and operations.",
    priority: 0,
    cell: webhook_count,
};

pub static RESOURCES: &[Resource] = &[
    Resource {
        group: GROUP,
        kind: "MutatingWebhookConfiguration",
        plural: "mutatingwebhookconfigurations",
        singular: "mutatingwebhookconfiguration",
        namespaced: false,
        categories: &["api-extensions"],
        columns: &[NAME, WEBHOOKS, AGE],
        strategy: &MUTATING,
        schema: |g| g.subschema_for::<admissionregistration::MutatingWebhookConfiguration>(),
        ..BASE
    },
    Resource {
        group: GROUP,
        kind: "ValidatingWebhookConfiguration",
        plural: "validatingwebhookconfigurations",
        singular: "validatingwebhookconfiguration",
        namespaced: false,
        categories: &["api-extensions"],
        columns: &[NAME, WEBHOOKS, AGE],
        strategy: &VALIDATING,
        schema: |g| g.subschema_for::<admissionregistration::ValidatingWebhookConfiguration>(),
        ..BASE
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hook: Value) -> Value {
        json!({"metadata": {"name": "c"}, "webhooks": [hook]})
    }

    fn messages(object: &mut Value, strategy: &WebhookConfigurations) -> Vec<String> {
        match strategy.prepare_create(object) {
            Ok(()) => Vec::new(),
            Err(e) => e.details.unwrap()["causes"]
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
                .collect(),
        }
    }

    #[test]
    fn defaults() {
        let mut o = config(json!({
            "name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "s", "namespace": "n"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        }));
        assert!(messages(&mut o, &MUTATING).is_empty());
        let hook = &o["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["namespaceSelector"], json!({}));
        assert_eq!(hook["objectSelector"], json!({}));
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "Never");
        assert_eq!(hook["rules"][0]["scope"], "*");
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
    }

    #[test]
    fn upstream_messages() {
        let mut o = config(json!({
            "name": "short", "admissionReviewVersions": [],
            "timeoutSeconds": 31, "failurePolicy": "Maybe",
            "clientConfig": {"url": "http://x/y?z=1"},
            "rules": [{"operations": ["*", "CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["*/*", "pods"]}],
        }));
        let got = messages(&mut o, &VALIDATING);
        for want in [
            "webhooks[0].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots",
            "webhooks[0].rules[0].operations: Invalid value: []admissionregistration.OperationType{\"*\", \"CREATE\"}: if '*' is present, must not specify other operations",
            "webhooks[0].rules[0].resources: Invalid value: []string{\"*/*\", \"pods\"}: if '*/*' is present, must not specify other resources",
            "webhooks[0].failurePolicy: Unsupported value: \"Maybe\": supported values: \"Fail\", \"Ignore\"",
            "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
            "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
            "webhooks[0].clientConfig.url: Invalid value: \"z=1\": query parameters are not permitted in the URL",
            "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
        ] {
            assert!(got.iter().any(|g| g == want), "missing {want}\n{got:#?}");
        }
        let mut o = config(json!({
            "name": "a.b.c", "sideEffects": "Some", "admissionReviewVersions": ["v2"],
            "clientConfig": {"service": {"name": "s", "namespace": "n", "path": "x"}},
        }));
        let got = messages(&mut o, &VALIDATING);
        for want in [
            "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
            "webhooks[0].clientConfig.service.path: Invalid value: \"x\": must start with a '/'",
            "webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1",
        ] {
            assert!(got.iter().any(|g| g == want), "missing {want}\n{got:#?}");
        }
        let mut o = config(
            json!({"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"], "clientConfig": {}}),
        );
        assert_eq!(
            messages(&mut o, &VALIDATING),
            ["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]
        );
    }
}
