//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch with upstream's directives and per-field merge keys.

use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

/// The patch formats, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
}

impl PatchKind {
    pub fn from_content_type(media: &str) -> Option<PatchKind> {
        match media {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            _ => None,
        }
    }
}

/// How a list field merges under a strategic merge patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Elements are objects matched by this key.
    MergeByKey(&'static str),
    /// Elements are primitives merged as a set (e.g. `metadata.finalizers`).
    MergePrimitives,
}

/// The list fields with a merge strategy, by path from the object root. Fields not listed
/// are replaced wholesale, as upstream does for fields without `patchStrategy`.
fn list_strategy(path: &[&str]) -> Option<ListStrategy> {
    use ListStrategy::*;
    const CONTAINERS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];
    match path {
        ["metadata", "ownerReferences"] => Some(MergeByKey("uid")),
        ["metadata", "finalizers"] => Some(MergePrimitives),
        ["secrets"] => Some(MergeByKey("name")),
        ["status", "conditions"] => Some(MergeByKey("type")),
        // Pod specs, wherever they are embedded (pods, templates of workloads).
        [.., "spec", list] if CONTAINERS.contains(list) => Some(MergeByKey("name")),
        [.., "spec", "volumes" | "imagePullSecrets"] => Some(MergeByKey("name")),
        [.., "spec", "hostAliases"] => Some(MergeByKey("ip")),
        [.., container, "ports"] if CONTAINERS.contains(container) => {
            Some(MergeByKey("containerPort"))
        }
        [.., container, "env"] if CONTAINERS.contains(container) => Some(MergeByKey("name")),
        [.., container, "volumeMounts"] if CONTAINERS.contains(container) => {
            Some(MergeByKey("mountPath"))
        }
        [.., container, "volumeDevices"] if CONTAINERS.contains(container) => {
            Some(MergeByKey("devicePath"))
        }
        _ => None,
    }
}

/// Apply `patch` (the raw body) to `original`.
pub fn apply(kind: PatchKind, original: &Value, patch: &[u8]) -> ApiResult<Value> {
    let mut doc = original.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(patch)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::unprocessable(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
        PatchKind::Merge => {
            let p: Value = decode(patch)?;
            json_patch::merge(&mut doc, &p);
        }
        PatchKind::Strategic => {
            let p: Value = decode(patch)?;
            let Value::Object(p) = p else {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            };
            let Value::Object(target) = &mut doc else {
                return Err(ApiError::internal("the stored object is not a JSON object"));
            };
            merge_object(target, p, &mut Vec::new())?;
        }
    }
    Ok(doc)
}

fn decode(patch: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Strategic merge of `patch` into `target`, at `path` from the root.
fn merge_object(
    target: &mut Map<String, Value>,
    mut patch: Map<String, Value>,
    path: &mut Vec<String>,
) -> ApiResult<()> {
    match patch.remove("$patch").as_ref().and_then(Value::as_str) {
        Some("replace") => {
            strip_directives(&mut patch);
            *target = patch;
            return Ok(());
        }
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
    }
    if let Some(retain) = patch.remove("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            orders.push((field.to_string(), value));
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove: Vec<Value> = value.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|v| !remove.contains(v));
            }
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(sub) => match target.get_mut(&key) {
                Some(Value::Object(existing)) => merge_object(existing, sub, path)?,
                _ => {
                    let mut fresh = Map::new();
                    merge_object(&mut fresh, sub, path)?;
                    target.insert(key.clone(), Value::Object(fresh));
                }
            },
            Value::Array(items) => {
                let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                let merged = match (list_strategy(&segments), target.remove(&key)) {
                    (Some(strategy), Some(Value::Array(existing))) => {
                        merge_list(strategy, existing, items, path)?
                    }
                    (_, _) => items
                        .into_iter()
                        .filter(|i| !is_delete_directive(i))
                        .collect(),
                };
                target.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                target.insert(key.clone(), scalar);
            }
        }
        path.pop();
    }
    for (field, order) in orders {
        if let (Some(Value::Array(items)), Some(order)) = (target.get_mut(&field), order.as_array())
        {
            path.push(field.clone());
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            reorder(items, order, list_strategy(&segments));
            path.pop();
        }
    }
    Ok(())
}

fn is_delete_directive(item: &Value) -> bool {
    item.get("$patch").and_then(Value::as_str) == Some("delete")
}

fn strip_directives(map: &mut Map<String, Value>) {
    map.retain(|k, _| !k.starts_with('$'));
}

fn merge_list(
    strategy: ListStrategy,
    mut existing: Vec<Value>,
    patch: Vec<Value>,
    path: &mut Vec<String>,
) -> ApiResult<Vec<Value>> {
    match strategy {
        ListStrategy::MergePrimitives => {
            for item in patch {
                if !existing.contains(&item) {
                    existing.push(item);
                }
            }
            Ok(existing)
        }
        ListStrategy::MergeByKey(key) => {
            for item in patch {
                let Value::Object(mut item) = item else {
                    return Err(ApiError::bad_request(format!(
                        "list elements of {} must be objects",
                        path.join(".")
                    )));
                };
                let id = item.get(key).cloned();
                let found = existing
                    .iter()
                    .position(|e| id.is_some() && e.get(key) == id.as_ref());
                match (item.get("$patch").and_then(Value::as_str), found) {
                    (Some("delete"), Some(at)) => {
                        existing.remove(at);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(at)) => {
                        if let Value::Object(target) = &mut existing[at] {
                            merge_object(target, item, path)?;
                        }
                    }
                    (_, None) => {
                        item.remove("$patch");
                        existing.push(Value::Object(item));
                    }
                }
            }
            Ok(existing)
        }
    }
}

/// Order `items` as `$setElementOrder` lists them; items it does not name keep their relative
/// order after the named ones.
fn reorder(items: &mut [Value], order: &[Value], strategy: Option<ListStrategy>) {
    let id = |v: &Value| match strategy {
        Some(ListStrategy::MergeByKey(key)) => v.get(key).cloned(),
        _ => Some(v.clone()),
    };
    let rank = |v: &Value| {
        let v = id(v);
        order
            .iter()
            .position(|o| {
                Some(o.clone()) == v
                    || (v.is_some()
                        && o.as_object()
                            .is_some_and(|m| m.values().any(|x| Some(x.clone()) == v)))
            })
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value) -> Value {
        apply(
            PatchKind::Strategic,
            &original,
            patch.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn strategic_merges_maps_and_deletes_with_null() {
        let got = smp(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}),
            json!({"metadata": {"labels": {"b": null, "c": "3"}}}),
        );
        assert_eq!(
            got,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "data": {"x": "1"}})
        );
    }

    #[test]
    fn strategic_lists_merge_by_key_or_replace() {
        let original = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}], "finalizers": ["x"]}, "list": [1, 2]});
        let got = smp(
            original,
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "B"}, {"uid": "1", "$patch": "delete"}, {"uid": "3", "name": "c"}], "finalizers": ["y"]}, "list": [3]}),
        );
        assert_eq!(
            got["metadata"]["ownerReferences"],
            json!([{"uid": "2", "name": "B"}, {"uid": "3", "name": "c"}])
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(got["list"], json!([3]));
    }

    #[test]
    fn strategic_merges_pod_containers_by_name() {
        let pod = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "side", "image": "busybox"}]}});
        let got = smp(
            pod,
            json!({"spec": {"containers": [{"name": "web", "image": "nginx:1.28", "ports": [{"containerPort": 443}]}]}}),
        );
        assert_eq!(got["spec"]["containers"][0]["image"], "nginx:1.28");
        assert_eq!(
            got["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}])
        );
        assert_eq!(got["spec"]["containers"][1]["name"], "side");
    }

    #[test]
    fn strategic_directives() {
        let got = smp(
            json!({"data": {"a": "1", "b": "2"}}),
            json!({"data": {"$patch": "replace", "c": "3"}}),
        );
        assert_eq!(got, json!({"data": {"c": "3"}}));
        let got = smp(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "c"]));
        let got = smp(
            json!({"spec": {"a": 1, "b": 2, "c": 3}}),
            json!({"spec": {"$retainKeys": ["a", "d"], "d": 4}}),
        );
        assert_eq!(got["spec"], json!({"a": 1, "d": 4}));
        let got = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["b", "a"]));
    }

    #[test]
    fn json_and_merge_patches() {
        let original = json!({"data": {"a": "1"}});
        let got = apply(
            PatchKind::Json,
            &original,
            br#"[{"op":"add","path":"/data/b","value":"2"},{"op":"remove","path":"/data/a"}]"#,
        )
        .unwrap();
        assert_eq!(got, json!({"data": {"b": "2"}}));
        let err = apply(
            PatchKind::Json,
            &original,
            br#"[{"op":"test","path":"/data/a","value":"9"}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code.as_u16(), 422);
        let got = apply(
            PatchKind::Merge,
            &original,
            br#"{"data":{"a":null,"c":"3"}}"#,
        )
        .unwrap();
        assert_eq!(got, json!({"data": {"c": "3"}}));
        assert_eq!(
            apply(PatchKind::Merge, &original, b"{not json")
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
    }
}
