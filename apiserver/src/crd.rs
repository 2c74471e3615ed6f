//! apiextensions.k8s.io/v1 CustomResourceDefinitions and the custom resources they define: validation and status of the definitions, and registering each served version as a resource with its schema, subresources and printer columns.
//!
//! After every write of a definition the served custom resources are rebuilt from all
//! stored definitions ([`refresh`]): routing, discovery and OpenAPI then see the change at
//! once, so a custom resource can be created right after its definition. Resources live for
//! the process as `&'static` like built-in ones; identical definitions are interned, so only
//! a changed definition costs memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use bytes::Bytes;
use k1s_store::{RangeRequest, Store};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::object::meta_str;
use crate::openapi::OpenApi;
use crate::registry::{self, BASE, Column, NAME, PrinterColumn, Resource, ScalePaths};
use crate::status::{ApiError, ApiResult, FieldCause};
use crate::strategy::Strategy;
use crate::structural;

const GROUP: &str = "apiextensions.k8s.io";
const KIND: &str = "CustomResourceDefinition";
/// The finalizer that holds a definition until its custom resources are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const PRINTER_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_list(items: &[String]) -> &'static [&'static str] {
    Box::leak(
        items
            .iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Upstream's version priority: GA over beta over alpha, higher numbers first, then
/// non-Kubernetes versions alphabetically.
fn version_priority(version: &str) -> (u8, i64, i64, String) {
    let parse = |rest: &str| -> Option<(u8, i64, i64)> {
        let (major, tail) = match rest.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let major: i64 = major.parse().ok()?;
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (stage, rank) in [("beta", 1u8), ("alpha", 2u8)] {
            if let Some(minor) = tail.strip_prefix(stage) {
                let minor: i64 = minor.parse().ok()?;
                return Some((rank, -major, -minor));
            }
        }
        None
    };
    match version.strip_prefix('v').and_then(parse) {
        Some((rank, major, minor)) => (rank, major, minor, String::new()),
        None => (3, 0, 0, version.to_string()),
    }
}

/// The CustomResourceDefinition strategy: defaults, validation, the status upstream's
/// controllers would write (names accepted, established, stored versions), and a warning for
/// every validation rule k1s does not enforce.
#[derive(Debug)]
pub struct Crds;
pub static CRDS: Crds = Crds;

fn defaults(crd: &mut Value) {
    let kind = text(crd, "/spec/names/kind").to_string();
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        if names
            .get("singular")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("conversion")
            .or_insert_with(|| json!({"strategy": "None"}));
    }
}

fn validate(crd: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let name = meta_str(crd, "name").unwrap_or_default();
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    if group.is_empty() {
        causes.push(FieldCause::required("spec.group"));
    } else if !group.contains('.') {
        causes.push(FieldCause::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(FieldCause::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    for (field, value) in [
        ("plural", plural),
        ("singular", text(crd, "/spec/names/singular")),
        ("kind", text(crd, "/spec/names/kind")),
        ("listKind", text(crd, "/spec/names/listKind")),
    ] {
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            causes.push(FieldCause::required(&path));
        } else if matches!(field, "plural" | "singular") {
            let ok = value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && value.starts_with(|c: char| c.is_ascii_lowercase());
            if !ok {
                causes.push(FieldCause::invalid(
                    &path,
                    value,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                ));
            }
        }
    }
    let scope = text(crd, "/spec/scope");
    if scope.is_empty() {
        causes.push(FieldCause::required("spec.scope"));
    } else if !matches!(scope, "Cluster" | "Namespaced") {
        causes.push(FieldCause::not_supported(
            "spec.scope",
            scope,
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(FieldCause::invalid_raw(
            "spec.versions",
            "[]apiextensions.CustomResourceDefinitionVersion(nil)",
            "must have exactly one version marked as storage version",
        ));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            causes.push(FieldCause::invalid_raw(
                "spec.versions",
                "[]apiextensions.CustomResourceDefinitionVersion{...}",
                "must have exactly one version marked as storage version",
            ));
        }
    }
    let mut seen = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let vname = text(version, "/name");
        if vname.is_empty() {
            causes.push(FieldCause::required(&format!("{at}.name")));
        } else if seen.contains(&vname) {
            causes.push(FieldCause::duplicate(
                &format!("{at}.name"),
                &format!("{vname:?}"),
            ));
        }
        seen.push(vname);
        match version.pointer("/schema/openAPIV3Schema") {
            None => causes.push(FieldCause {
                reason: "FieldValueRequired",
                field: format!("{at}.schema.openAPIV3Schema"),
                message: "Required value: schemas are required".into(),
            }),
            Some(schema) => {
                if text(schema, "/type") != "object" {
                    causes.push(FieldCause {
                        reason: "FieldValueRequired",
                        field: format!("{at}.schema.openAPIV3Schema.type"),
                        message: "Required value: must not be empty at the root".into(),
                    });
                }
                if structural::depth(schema) > 48 {
                    causes.push(FieldCause::forbidden(
                        &format!("{at}.schema.openAPIV3Schema"),
                        "the schema nests too deeply",
                    ));
                }
            }
        }
        for (j, column) in version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cat = format!("{at}.additionalPrinterColumns[{j}]");
            if text(column, "/name").is_empty() {
                causes.push(FieldCause::required(&format!("{cat}.name")));
            }
            let type_ = text(column, "/type");
            if !PRINTER_TYPES.contains(&type_) {
                causes.push(FieldCause::not_supported(
                    &format!("{cat}.type"),
                    type_,
                    PRINTER_TYPES,
                ));
            }
            let path = text(column, "/jsonPath");
            if path.is_empty() {
                causes.push(FieldCause::required(&format!("{cat}.jsonPath")));
            } else if !path.starts_with('.') || !crate::jsonpath::is_supported(path) {
                causes.push(FieldCause::invalid(
                    &format!("{cat}.jsonPath"),
                    path,
                    "must be a simple json path starting with .",
                ));
            }
        }
        if let Some(scale) = version.pointer("/subresources/scale") {
            for (field, prefix) in [
                ("specReplicasPath", ".spec."),
                ("statusReplicasPath", ".status."),
            ] {
                let path = text(scale, &format!("/{field}"));
                if path.is_empty() {
                    causes.push(FieldCause::required(&format!(
                        "{at}.subresources.scale.{field}"
                    )));
                } else if !path.starts_with(prefix) {
                    causes.push(FieldCause::invalid(
                        &format!("{at}.subresources.scale.{field}"),
                        path,
                        &format!(
                            "should be a json path under {}",
                            prefix.trim_end_matches('.')
                        ),
                    ));
                }
            }
        }
    }
    causes
}

/// The status upstream's naming and establishing controllers arrive at.
fn status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let storage: Vec<String> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut stored = strings(crd.pointer("/status/storedVersions"));
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let now = crate::object::now_rfc3339();
    let old_conditions = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |type_: &str, reason: &str, message: &str| {
        let since = old_conditions
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == "True")
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now));
        json!({"type": type_, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let mut conditions = vec![
        condition("NamesAccepted", "NoConflicts", "no conflicts found"),
        condition(
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        ),
    ];
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        conditions.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": now, "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"}));
    }
    crd["status"] =
        json!({"conditions": conditions, "acceptedNames": names, "storedVersions": stored});
}

/// A warning per `x-kubernetes-validations` rule: they are stored but not enforced.
fn rule_warnings(crd: &Value) -> Vec<String> {
    let mut rules = Vec::new();
    for (i, version) in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            structural::validation_rules(
                schema,
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                &mut rules,
            );
        }
    }
    rules
        .into_iter()
        .map(|(at, rule)| {
            format!(
                "{at}.x-kubernetes-validations: rule {rule:?} is not enforced: k1s does not evaluate CEL yet"
            )
        })
        .collect()
}

impl Strategy for Crds {
    fn prepare_create(&self, crd: &mut Value) -> ApiResult<()> {
        defaults(crd);
        let causes = validate(crd);
        if !causes.is_empty() {
            let name = meta_str(crd, "name").unwrap_or_default().to_string();
            return Err(ApiError::invalid(GROUP, KIND, &name, causes));
        }
        let finalizers = crate::object::metadata_mut(crd)
            .entry("finalizers")
            .or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut()
            && !list.iter().any(|f| f == CLEANUP_FINALIZER)
        {
            list.push(json!(CLEANUP_FINALIZER));
        }
        status(crd);
        Ok(())
    }

    fn prepare_update(&self, old: &Value, crd: &mut Value) -> ApiResult<()> {
        defaults(crd);
        let mut causes = validate(crd);
        let name = meta_str(crd, "name").unwrap_or_default().to_string();
        if text(old, "/spec/scope") != text(crd, "/spec/scope") {
            causes.push(FieldCause::invalid(
                "spec.scope",
                text(crd, "/spec/scope"),
                "field is immutable",
            ));
        }
        if text(old, "/spec/group") != text(crd, "/spec/group") {
            causes.push(FieldCause::invalid(
                "spec.group",
                text(crd, "/spec/group"),
                "field is immutable",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(GROUP, KIND, &name, causes));
        }
        if crd.get("status").is_none() {
            crd["status"] = old.get("status").cloned().unwrap_or(json!({}));
        }
        status(crd);
        Ok(())
    }

    fn warnings(&self, crd: &Value) -> Vec<String> {
        rule_warnings(crd)
    }
}

/// The CREATED AT column of definitions (upstream's default table).
const CREATED_AT: Column = Column {
    name: "Created At",
    type_: "date",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    priority: 0,
    cell: |o| {
        o.pointer("/metadata/creationTimestamp")
            .cloned()
            .unwrap_or(Value::Null)
    },
};

/// The resources this module serves.
pub static RESOURCES: &[Resource] = &[Resource {
    group: GROUP,
    kind: KIND,
    plural: "customresourcedefinitions",
    singular: "customresourcedefinition",
    namespaced: false,
    short_names: &["crd", "crds"],
    categories: &["api-extensions"],
    subresources: &["status"],
    columns: &[NAME, CREATED_AT],
    strategy: &CRDS,
    schema: |g| g.subschema_for::<apiextensions::CustomResourceDefinition>(),
    generation: true,
    ..BASE
}];

/// Custom resources of one served version: defaulting and validation from its structural
/// schema, generation on any change outside metadata (and status, with a status
/// subresource), and its printer columns.
#[derive(Debug)]
pub struct CustomResources {
    group: &'static str,
    kind: &'static str,
    schema: Value,
    has_status: bool,
    columns: Vec<PrinterColumn>,
}

impl CustomResources {
    fn check(&self, object: &mut Value) -> ApiResult<()> {
        structural::default_and_drop_nulls(&self.schema, object);
        let mut body = object.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
            map.remove("metadata");
        }
        let mut causes = Vec::new();
        structural::validate(&self.schema, &body, "", &mut causes);
        if causes.is_empty() {
            Ok(())
        } else {
            let name = meta_str(object, "name").unwrap_or_default().to_string();
            Err(ApiError::invalid(self.group, self.kind, &name, causes))
        }
    }
}

impl Strategy for CustomResources {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        if self.has_status {
            // With a status subresource, status is not the creator's to set.
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        self.check(object)
    }

    fn prepare_update(&self, _old: &Value, object: &mut Value) -> ApiResult<()> {
        self.check(object)
    }

    fn bumps_generation(&self, old: &Value, new: &Value) -> bool {
        let outside = |o: &Value| -> Vec<(String, Value)> {
            let mut fields: Vec<(String, Value)> = o
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            k.as_str() != "metadata" && !(self.has_status && k.as_str() == "status")
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            fields
        };
        outside(old) != outside(new)
    }

    fn printer_columns(&self) -> Option<&[PrinterColumn]> {
        Some(&self.columns)
    }
}

/// `.spec.replicas` → `/spec/replicas`.
fn pointer_of(json_path: &str) -> &'static str {
    leak(&json_path.replace('.', "/"))
}

/// Every served version of `crd` as a resource with its object schema.
fn resources_of(crd: &Value) -> Vec<(&'static Resource, Value)> {
    let group = text(crd, "/spec/group");
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let namespaced = text(crd, "/spec/scope") == "Namespaced";
    let mut versions: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions.sort_by_key(|v| version_priority(text(v, "/name")));
    let mut out = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let schema = version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or(json!({"type": "object"}));
        let key =
            json!({"group": group, "names": names, "namespaced": namespaced, "version": version});
        let resource = intern(&key.to_string(), || {
            build(group, &names, namespaced, &version, schema.clone())
        });
        out.push((resource, schema));
    }
    out
}

fn intern(key: &str, make: impl FnOnce() -> Resource) -> &'static Resource {
    static INTERNED: LazyLock<Mutex<HashMap<String, &'static Resource>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut interned = INTERNED.lock();
    if let Some(r) = interned.get(key) {
        return r;
    }
    let resource: &'static Resource = Box::leak(Box::new(make()));
    interned.insert(key.to_string(), resource);
    resource
}

fn build(group: &str, names: &Value, namespaced: bool, version: &Value, schema: Value) -> Resource {
    let has_status = version.pointer("/subresources/status").is_some();
    let scale = version.pointer("/subresources/scale").map(|s| ScalePaths {
        spec_replicas: pointer_of(text(s, "/specReplicasPath")),
        status_replicas: pointer_of(text(s, "/statusReplicasPath")),
        selector: Some(text(s, "/labelSelectorPath"))
            .filter(|p| !p.is_empty())
            .map(pointer_of),
    });
    let mut subresources = Vec::new();
    if has_status {
        subresources.push("status".to_string());
    }
    if scale.is_some() {
        subresources.push("scale".to_string());
    }
    let mut columns: Vec<PrinterColumn> = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| PrinterColumn {
            name: text(c, "/name").to_string(),
            type_: text(c, "/type").to_string(),
            format: text(c, "/format").to_string(),
            description: text(c, "/description").to_string(),
            priority: c
                .get("priority")
                .and_then(Value::as_u64)
                .map_or(0, |p| p.min(u8::MAX as u64) as u8),
            json_path: text(c, "/jsonPath").to_string(),
        })
        .collect();
    if columns.is_empty() {
        columns.push(PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: CREATED_AT.description.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        });
    }
    let kind = leak(text(names, "/kind"));
    let group = leak(group);
    let strategy: &'static CustomResources = Box::leak(Box::new(CustomResources {
        group,
        kind,
        schema,
        has_status,
        columns,
    }));
    Resource {
        group,
        version: leak(text(version, "/name")),
        kind,
        plural: leak(text(names, "/plural")),
        singular: leak(text(names, "/singular")),
        namespaced,
        short_names: leak_list(&strings(names.get("shortNames"))),
        categories: leak_list(&strings(names.get("categories"))),
        subresources: leak_list(&subresources),
        columns: &[],
        strategy,
        schema: |g| g.subschema_for::<Value>(),
        generation: true,
        scale,
        ..BASE
    }
}

/// Serve exactly the custom resources the stored definitions define (all of them, rebuilt):
/// routing, discovery and OpenAPI documents.
pub async fn refresh(store: &Store, openapi: &OpenApi) -> ApiResult<()> {
    static LOCK: LazyLock<tokio::sync::Mutex<Vec<(String, String)>>> =
        LazyLock::new(|| tokio::sync::Mutex::new(Vec::new()));
    let mut served_gvs = LOCK.lock().await;
    let crds = registry::find(GROUP, "v1", "customresourcedefinitions")
        .ok_or_else(|| ApiError::internal("customresourcedefinitions are not served"))?;
    let mut start_after = None;
    let mut all = Vec::new();
    loop {
        let page = store
            .range(RangeRequest {
                prefix: Bytes::from(crds.prefix()),
                start_after: start_after.clone(),
                ..RangeRequest::default()
            })
            .await
            .map_err(|e| ApiError::internal(format!("listing custom resource definitions: {e}")))?;
        let last = page.kvs.last().map(|kv| kv.key.clone());
        for kv in page.kvs {
            if let Ok(crd) = serde_json::from_slice::<Value>(&kv.value) {
                all.push(crd);
            }
        }
        if page.remaining == 0 {
            break;
        }
        start_after = last;
    }
    let mut custom = Vec::new();
    let mut by_gv: BTreeMap<(String, String), Vec<(&'static Resource, Value)>> = BTreeMap::new();
    for crd in &all {
        for (r, schema) in resources_of(crd) {
            custom.push(r);
            by_gv
                .entry((r.group.to_string(), r.version.to_string()))
                .or_default()
                .push((r, schema));
        }
    }
    registry::set_custom(custom);
    for (group, version) in served_gvs.iter() {
        if !by_gv.contains_key(&(group.clone(), version.clone())) {
            openapi.set_custom(group, version, &[]);
        }
    }
    for ((group, version), kinds) in &by_gv {
        openapi.set_custom(group, version, kinds);
    }
    *served_gvs = by_gv.into_keys().collect();
    Ok(())
}

/// The store prefix of the custom resources a definition defines (all versions share it).
pub fn objects_prefix(crd: &Value) -> String {
    format!(
        "/registry/{}/{}/",
        text(crd, "/spec/group"),
        text(crd, "/spec/names/plural")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                        "x-kubernetes-validations": [{"rule": "self.replicas >= 0"}],
                        "properties": {"replicas": {"type": "integer"}}}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]}]}
        })
    }

    #[test]
    fn definitions_default_and_get_their_status() {
        let mut c = crd();
        CRDS.prepare_create(&mut c).unwrap();
        assert_eq!(c["spec"]["names"]["singular"], "crontab");
        assert_eq!(c["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        assert_eq!(c["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(
            CRDS.warnings(&c),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations: rule \"self.replicas >= 0\" is not enforced: k1s does not evaluate CEL yet"
            ]
        );
    }

    #[test]
    fn bad_definitions_get_upstream_messages() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong");
        c["spec"]["versions"][0]["storage"] = json!(false);
        let err = CRDS.prepare_create(&mut c).unwrap_err();
        assert!(err.message.contains("metadata.name: Invalid value: \"wrong\": must be spec.names.plural+\".\"+spec.group"), "{}", err.message);
        assert!(
            err.message
                .contains("must have exactly one version marked as storage version"),
            "{}",
            err.message
        );
    }

    #[test]
    fn served_versions_become_resources() {
        let mut c = crd();
        CRDS.prepare_create(&mut c).unwrap();
        let resources = resources_of(&c);
        assert_eq!(resources.len(), 1);
        let r = resources[0].0;
        assert_eq!(
            (r.group, r.version, r.plural, r.kind),
            ("stable.example.com", "v1", "crontabs", "CronTab")
        );
        assert_eq!(r.subresources, ["status", "scale"]);
        assert_eq!(r.scale.as_ref().unwrap().spec_replicas, "/spec/replicas");
        // The same definition is interned.
        assert!(std::ptr::eq(r, resources_of(&c)[0].0));
    }

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v = vec!["v1alpha1", "v2", "v1beta1", "foo", "v1", "v10beta3"];
        v.sort_by_key(|s| version_priority(s));
        assert_eq!(v, ["v2", "v1", "v10beta3", "v1beta1", "v1alpha1", "foo"]);
    }
}
