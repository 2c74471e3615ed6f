//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch with upstream's directives, merging lists by the patch strategy and merge key of each field's type.
//!
//! Strategic merge walks the object alongside its OpenAPI schema (the documents `openapi.rs`
//! publishes, annotated from `patchmeta.rs`), as upstream walks its Go types: a list merges by
//! key only where its field says `x-kubernetes-patch-strategy: merge`; every other list is
//! replaced. Without a schema (resources without a typed schema) every list is replaced.

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

/// A place in a group/version's OpenAPI schemas (`components.schemas`): the type of the value
/// a strategic merge patch is merging at that point.
#[derive(Clone, Copy, Debug)]
pub struct Schema<'a> {
    definitions: &'a Map<String, Value>,
    node: &'a Value,
}

/// How a field merges: its `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`.
#[derive(Clone, Copy, Debug, Default)]
struct FieldMeta<'a> {
    /// Lists merge (by `merge_key` for lists of objects, as sets for primitives).
    merge: bool,
    /// Objects are replaced, not merged.
    replace: bool,
    /// Empty when the field has none.
    merge_key: &'a str,
}

impl<'a> Schema<'a> {
    /// The definition `root` (e.g. `io.k8s.api.core.v1.Pod`) in `definitions`.
    pub fn new(definitions: &'a Map<String, Value>, root: &str) -> Option<Schema<'a>> {
        definitions
            .get(root)
            .map(|node| Schema { definitions, node })
    }

    /// The node itself, following `allOf` wrappers and `$ref`s.
    pub(crate) fn resolved(self) -> &'a Value {
        let mut node = self.node;
        for _ in 0..16 {
            if let Some(first) = node
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                node = first;
            } else if let Some(target) = node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .and_then(|name| self.definitions.get(name))
            {
                node = target;
            } else {
                break;
            }
        }
        node
    }

    /// The extension `name` on this node (a field's property schema) or on the type it refers
    /// to.
    pub(crate) fn extension(self, name: &str) -> Option<&'a Value> {
        self.node.get(name).or_else(|| self.resolved().get(name))
    }

    /// The schema of field `key` of this object (or of a map's values).
    pub(crate) fn property(self, key: &str) -> Option<Schema<'a>> {
        self.field(key).0
    }

    fn at(self, node: &'a Value) -> Schema<'a> {
        Schema {
            definitions: self.definitions,
            node,
        }
    }

    /// Field `key` of this object: its schema and how it merges. Values of maps
    /// (`additionalProperties`) have a schema but no metadata.
    fn field(self, key: &str) -> (Option<Schema<'a>>, FieldMeta<'a>) {
        let node = self.resolved();
        if let Some(property) = node.get("properties").and_then(|p| p.get(key)) {
            let strategies = property
                .get("x-kubernetes-patch-strategy")
                .and_then(Value::as_str)
                .unwrap_or("");
            let meta = FieldMeta {
                merge: strategies.split(',').any(|s| s == "merge"),
                replace: strategies.split(',').any(|s| s == "replace"),
                merge_key: property
                    .get("x-kubernetes-patch-merge-key")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            };
            return (Some(self.at(property)), meta);
        }
        match node.get("additionalProperties") {
            Some(values) if values.is_object() => (Some(self.at(values)), FieldMeta::default()),
            _ => (None, FieldMeta::default()),
        }
    }

    /// The schema of this list's elements.
    pub(crate) fn items(self) -> Option<Schema<'a>> {
        self.resolved().get("items").map(|items| self.at(items))
    }
}

fn field_of<'a>(schema: Option<Schema<'a>>, key: &str) -> (Option<Schema<'a>>, FieldMeta<'a>) {
    schema.map(|s| s.field(key)).unwrap_or_default()
}

/// Apply `patch` (the raw body) to `original`. `schema` is the object's type, for strategic
/// merge patches.
pub fn apply(
    kind: PatchKind,
    original: &Value,
    patch: &[u8],
    schema: Option<Schema<'_>>,
) -> ApiResult<Value> {
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
            let Value::Object(p) = decode(patch)? else {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            };
            let Value::Object(target) = doc else {
                return Err(ApiError::internal("the stored object is not a JSON object"));
            };
            doc = Value::Object(merge_map(target, p, schema)?);
        }
    }
    Ok(doc)
}

fn decode(patch: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

const DIRECTIVE: &str = "$patch";
const REPLACE: &str = "replace";
const DELETE: &str = "delete";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn bad_patch(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn no_merge_key(item: &Value, key: &str) -> ApiError {
    bad_patch(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

/// Strategic merge of `patch` into `original`, whose type is `schema`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Option<Schema<'_>>,
) -> ApiResult<Map<String, Value>> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some(REPLACE) => Ok(clean_map(patch)),
            Some(DELETE) => Ok(Map::new()),
            _ => Err(bad_patch(format!("unknown patch type: {directive} in map"))),
        };
    }
    retain_keys(&mut original, &mut patch)?;
    set_element_orders(&mut original, &mut patch, schema)?;
    for (key, value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(field) => (field.to_string(), true),
            None => (key, false),
        };
        if value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let Some(slot) = original.get_mut(&key) else {
            if !delete_list && let Some(value) = clean(value) {
                original.insert(key, value);
            }
            continue;
        };
        match (slot, value) {
            (Value::Object(current), Value::Object(value)) => {
                let (sub, meta) = field_of(schema, &key);
                let taken = std::mem::take(current);
                *current = if meta.replace {
                    clean_map(value)
                } else {
                    merge_map(taken, value, sub)?
                };
            }
            (Value::Array(current), Value::Array(value)) => {
                let (sub, meta) = field_of(schema, &key);
                let taken = std::mem::take(current);
                *current =
                    merge_list(taken, value, sub.and_then(Schema::items), meta, delete_list)?;
            }
            // A delete list for something that is not a list deletes nothing.
            _ if delete_list => {}
            (slot, value) => match clean(value) {
                Some(value) => *slot = value,
                None => {
                    original.shift_remove(&key);
                }
            },
        }
    }
    Ok(original)
}

/// `$retainKeys`: drop every field of `original` the list does not name. Every field the
/// patch sets must be in the list.
fn retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> ApiResult<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(keep) = retain else {
        return Err(bad_patch("invalid patch format of retainKeys"));
    };
    let kept = |k: &str| keep.iter().any(|v| v.as_str() == Some(k));
    let outside = patch.iter().any(|(k, v)| {
        !v.is_null()
            && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !k.starts_with(SET_ELEMENT_ORDER)
            && !kept(k)
    });
    if outside {
        return Err(bad_patch("invalid patch format of retainKeys"));
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// `$setElementOrder/<field>`: merge the field's patch list (if any) into its current list, then
/// order the result: the items the order list names in its order, the others where they were.
fn set_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<Schema<'_>>,
) -> ApiResult<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let field = &key[SET_ELEMENT_ORDER.len()..];
        let Some(Value::Array(order)) = patch.remove(&key) else {
            return Err(bad_patch("invalid patch format of setElementOrder list"));
        };
        let (sub, meta) = field_of(schema, field);
        let current = match original.get(field) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => {
                return Err(bad_patch(format!("{field}: expected a list, got {other}")));
            }
        };
        let patched = match patch.remove(field) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                return Err(bad_patch(format!("{field}: expected a list, got {other}")));
            }
        };
        check_order(
            patched.as_deref().unwrap_or_default(),
            &order,
            meta.merge_key,
        )?;
        let merged = match (current.clone(), patched) {
            (Some(current), None) => current,
            (None, Some(patched)) => clean_list(patched),
            (Some(current), Some(patched)) => {
                merge_list(current, patched, sub.and_then(Schema::items), meta, false)?
            }
            (None, None) => continue,
        };
        let server_order = current.unwrap_or_default();
        let (named, server_only) = partition(merged, &order, meta.merge_key)?;
        let ordered = normalize(named, server_only, &order, &server_order, meta.merge_key)?;
        original.insert(field.to_string(), Value::Array(ordered));
    }
    Ok(())
}

/// The patch list must list its items in the order `$setElementOrder` does, and only items it
/// names (deletions aside).
fn check_order(patched: &[Value], order: &[Value], merge_key: &str) -> ApiResult<()> {
    if patched.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = patched
        .iter()
        .filter(|v| merge_key.is_empty() || !is_directive(v, DELETE))
        .collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if same_item(items[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(bad_patch(format!(
            "the order in patch list {} doesn't match $setElementOrder list {}",
            Value::Array(patched.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

fn same_item(a: &Value, b: &Value, merge_key: &str) -> ApiResult<bool> {
    if merge_key.is_empty() {
        return Ok(a == b);
    }
    let left = a.get(merge_key).ok_or_else(|| no_merge_key(a, merge_key))?;
    let right = b.get(merge_key).ok_or_else(|| no_merge_key(b, merge_key))?;
    Ok(left == right)
}

fn is_directive(item: &Value, directive: &str) -> bool {
    item.get(DIRECTIVE).and_then(Value::as_str) == Some(directive)
}

/// Merge a patch list into a list field: by key (or as a set of primitives) when the field's
/// strategy is `merge` or the patch is a `$deleteFromPrimitiveList`, else the patch replaces it.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Option<Schema<'_>>,
    meta: FieldMeta<'_>,
    delete_list: bool,
) -> ApiResult<Vec<Value>> {
    if !meta.merge && !delete_list {
        return Ok(clean_list(patch));
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let objects = of_objects(&original, &patch)?;
    let key = if objects { meta.merge_key } else { "" };
    let (original, patch, merged) = if !objects {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        if key.is_empty() {
            return Err(bad_patch(
                "cannot merge lists of objects without a merge key",
            ));
        }
        let (original, patch) = special_elements(original, patch, key)?;
        let merged = merge_by_key(original.clone(), &patch, key, items)?;
        (original, patch, merged)
    };
    let (in_patch, server_only) = partition(merged, &patch, key)?;
    normalize(in_patch, server_only, &patch, &original, key)
}

/// Whether the lists hold objects (else primitives); mixed or nested lists are errors.
fn of_objects(original: &[Value], patch: &[Value]) -> ApiResult<bool> {
    fn kind(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    let mut all = original.iter().chain(patch);
    let Some(first) = all.next() else {
        return Ok(false);
    };
    if first.is_array() {
        return Err(ApiError::unprocessable("lists of lists are not supported"));
    }
    if all.any(|v| kind(v) != kind(first)) {
        return Err(bad_patch("list element types are not identical"));
    }
    Ok(first.is_object())
}

/// Apply the `$patch` elements of a patch list: `delete` removes the items with its key,
/// `replace` makes the rest of the patch list the whole list.
fn special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> ApiResult<(Vec<Value>, Vec<Value>)> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                let id = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                original.retain(|o| o.get(key) != Some(id));
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => {
                return Err(bad_patch(
                    "merging lists cannot yet be specified in the patch",
                ));
            }
            _ => {
                return Err(bad_patch(format!(
                    "unknown patch type: {directive} in list"
                )));
            }
        }
    }
    if replace {
        Ok((clean_list(rest), Vec::new()))
    } else {
        Ok((original, rest))
    }
}

/// Merge each patch item into the item of `original` with the same key, or append it.
fn merge_by_key(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    items: Option<Schema<'_>>,
) -> ApiResult<Vec<Value>> {
    for item in patch {
        let id = item.get(key).ok_or_else(|| no_merge_key(item, key))?;
        let Value::Object(fields) = item.clone() else {
            return Err(bad_patch("list element types are not identical"));
        };
        match original.iter().position(|o| o.get(key) == Some(id)) {
            Some(at) => {
                let Value::Object(current) = std::mem::take(&mut original[at]) else {
                    return Err(bad_patch("list element types are not identical"));
                };
                original[at] = Value::Object(merge_map(current, fields, items)?);
            }
            None => original.push(Value::Object(clean_map(fields))),
        }
    }
    Ok(original)
}

/// What identifies a list item: its merge key's value, or (primitives) the item itself.
fn identity<'v>(item: &'v Value, key: &str) -> Option<&'v Value> {
    if key.is_empty() {
        Some(item)
    } else {
        item.get(key)
    }
}

fn position(list: &[Value], item: &Value, key: &str) -> Option<usize> {
    let id = identity(item, key);
    list.iter().position(|v| identity(v, key) == id)
}

/// Split `merged` into the items `by` names and the others, keeping their order.
fn partition(merged: Vec<Value>, by: &[Value], key: &str) -> ApiResult<(Vec<Value>, Vec<Value>)> {
    let mut named = Vec::new();
    let mut others = Vec::new();
    for item in merged {
        if !key.is_empty() && item.get(key).is_none() {
            return Err(no_merge_key(&item, key));
        }
        if position(by, &item, key).is_some() {
            named.push(item);
        } else {
            others.push(item);
        }
    }
    Ok((named, others))
}

/// Upstream's list order after a merge: the patch's items in the patch's order, the
/// server-only items in their old order, interleaved by where they stood in the old list
/// (an item the old list does not have comes before the server-only item it meets).
fn normalize(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
) -> ApiResult<Vec<Value>> {
    let patch_items = sort_by(patch_items, patch_order, key)?;
    let server_only = sort_by(server_only, server_order, key)?;
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, key), position(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    Ok(out)
}

/// Stable sort of `items` by their position in `order` (those it lacks last), with `$patch:
/// delete` items at the end.
fn sort_by(items: Vec<Value>, order: &[Value], key: &str) -> ApiResult<Vec<Value>> {
    if !key.is_empty()
        && let Some(bad) = items.iter().chain(order).find(|v| v.get(key).is_none())
    {
        return Err(no_merge_key(bad, key));
    }
    let (deletes, mut keep): (Vec<Value>, Vec<Value>) = items
        .into_iter()
        .partition(|v| !key.is_empty() && is_directive(v, DELETE));
    keep.sort_by_key(|v| position(order, v, key).unwrap_or(usize::MAX));
    keep.extend(deletes);
    Ok(keep)
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// A patch value taken as it is (its field is new): objects carrying `$patch` are dropped,
/// as upstream drops them; other directives and null fields are removed, as upstream's decoding
/// into typed objects removes them.
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(fields) if fields.contains_key(DIRECTIVE) => None,
        Value::Object(fields) => Some(Value::Object(clean_map(fields))),
        Value::Array(items) => Some(Value::Array(clean_list(items))),
        other => Some(other),
    }
}

fn clean_map(fields: Map<String, Value>) -> Map<String, Value> {
    fields
        .into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(clean).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod, core::v1::Service};
    use schemars::JsonSchema;
    use schemars::generate::{SchemaGenerator, SchemaSettings};
    use serde_json::json;

    use super::*;

    /// One kind's schemas, annotated as the group/version documents publish them, and its name.
    type Types = (Map<String, Value>, String);

    fn types<T: JsonSchema>() -> Types {
        let mut generator = SchemaGenerator::new(SchemaSettings::openapi3());
        let root = generator.subschema_for::<T>().to_value();
        let name = root["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let mut definitions = generator.take_definitions(true);
        crate::openapi::annotate(&mut definitions);
        (definitions, name.to_string())
    }

    static POD: LazyLock<Types> = LazyLock::new(types::<Pod>);
    static DEPLOYMENT: LazyLock<Types> = LazyLock::new(types::<Deployment>);
    static SERVICE: LazyLock<Types> = LazyLock::new(types::<Service>);

    fn try_smp(types: &Types, original: Value, patch: Value) -> ApiResult<Value> {
        let schema = Schema::new(&types.0, &types.1);
        assert!(schema.is_some(), "{} has a schema", types.1);
        apply(
            PatchKind::Strategic,
            &original,
            patch.to_string().as_bytes(),
            schema,
        )
    }

    /// A strategic merge patch of a pod.
    fn smp(original: Value, patch: Value) -> Value {
        try_smp(&POD, original, patch).unwrap()
    }

    fn smp_error(types: &Types, original: Value, patch: Value) -> (u16, String) {
        let err = try_smp(types, original, patch).unwrap_err();
        (err.code.as_u16(), err.message)
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
        // As upstream: without `$setElementOrder`, an item the live list lacks goes before the
        // server-only items it meets.
        assert_eq!(got["metadata"]["finalizers"], json!(["y", "x"]));
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
            json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}])
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

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "finalizers": ["a", "b"]},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                            "args": ["--a", "--b"],
                        }],
                        "volumes": [{"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}}],
                        "tolerations": [{"key": "k", "operator": "Exists"}],
                    },
                },
            },
        })
    }

    fn pod_spec(d: &Value) -> &Value {
        &d["spec"]["template"]["spec"]
    }

    #[test]
    fn deployment_lists_merge_by_their_keys() {
        // What `kubectl apply` sends after an edit: env B removed, C added, a port added, an
        // image changed.
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{
                    "name": "web", "image": "nginx:1.28",
                    "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                    "env": [{"name": "C", "value": "3"}, {"name": "B", "$patch": "delete"}],
                    "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                    "ports": [{"containerPort": 443}],
                }],
            }}}}),
        )
        .unwrap();
        let c = &pod_spec(&got)["containers"][0];
        assert_eq!(c["image"], "nginx:1.28");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            c["env"],
            json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}])
        );
        assert_eq!(
            c["volumeMounts"],
            deployment()["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        );
        // Atomic lists (args, tolerations) are replaced whole.
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {
                "containers": [{"name": "web", "args": ["--c"]}],
                "tolerations": [{"key": "other", "operator": "Exists"}],
            }}}}),
        )
        .unwrap();
        assert_eq!(pod_spec(&got)["containers"][0]["args"], json!(["--c"]));
        assert_eq!(
            pod_spec(&got)["tolerations"],
            json!([{"key": "other", "operator": "Exists"}])
        );
    }

    #[test]
    fn patch_replace_in_lists_and_maps() {
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"$patch": "replace"},
                {"name": "only", "image": "busybox", "$retainKeys": ["name", "image"]},
            ]}}}}),
        )
        .unwrap();
        assert_eq!(
            pod_spec(&got)["containers"],
            json!([{"name": "only", "image": "busybox"}])
        );
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "tier": "front"}}}}}),
        )
        .unwrap();
        assert_eq!(
            got["spec"]["template"]["metadata"]["labels"],
            json!({"tier": "front"})
        );
    }

    #[test]
    fn patch_delete_in_lists_and_maps() {
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {
                "volumes": [{"name": "cfg", "$patch": "delete"}],
                "containers": [{"name": "web", "volumeMounts": [{"mountPath": "/etc/cfg", "$patch": "delete"}]}],
            }}, "strategy": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert_eq!(pod_spec(&got)["volumes"], json!([]));
        assert_eq!(pod_spec(&got)["containers"][0]["volumeMounts"], json!([]));
        assert_eq!(got["spec"]["strategy"], json!({}));
        // Deleting an item the list does not have changes nothing.
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "nope", "$patch": "delete"}]}}}}),
        )
        .unwrap();
        assert_eq!(got, deployment());
    }

    #[test]
    fn patch_merge_and_unknown_directives() {
        // Upstream applies only `replace` and `delete`: `$patch: merge` is refused in maps and
        // lists alike.
        let (code, message) = smp_error(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"metadata": {"labels": {"$patch": "merge", "tier": "front"}}}}}),
        );
        assert_eq!(code, 400);
        assert!(
            message.contains("unknown patch type: \"merge\""),
            "{message}"
        );
        let (code, message) = smp_error(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}),
        );
        assert_eq!(code, 400);
        assert!(
            message.contains("merging lists cannot yet be specified"),
            "{message}"
        );
        let (code, message) = smp_error(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"$patch": "explode"}}}),
        );
        assert_eq!(code, 400);
        assert!(message.contains("unknown patch type"), "{message}");
        let (code, message) = smp_error(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        );
        assert_eq!(code, 400);
        assert!(
            message.contains("does not contain declared merge key: name"),
            "{message}"
        );
    }

    #[test]
    fn retain_keys() {
        // What kubectl sends for a strategy switched to Recreate (DeploymentSpec.strategy is
        // `retainKeys`): rollingUpdate goes although the patch does not mention it.
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        )
        .unwrap();
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
        // Volumes are `merge,retainKeys`: a volume's source can change kind.
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"template": {"spec": {"volumes": [
                {"$retainKeys": ["name", "secret"], "name": "cfg", "secret": {"secretName": "s"}},
                {"$retainKeys": ["emptyDir", "name"], "name": "tmp", "emptyDir": {}},
            ]}}}}),
        )
        .unwrap();
        assert_eq!(
            pod_spec(&got)["volumes"],
            json!([{"name": "cfg", "secret": {"secretName": "s"}}, {"name": "tmp", "emptyDir": {}}])
        );
        let (code, message) = smp_error(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        );
        assert_eq!(
            (code, message.as_str()),
            (400, "invalid patch format of retainKeys")
        );
        let (code, _) = smp_error(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        );
        assert_eq!(code, 400);
    }

    #[test]
    fn set_element_order() {
        let mut two = deployment();
        two["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "side", "image": "busybox"}));
        // Reorder only.
        let got = try_smp(
            &DEPLOYMENT,
            two.clone(),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]}}}}),
        )
        .unwrap();
        let names: Vec<&Value> = pod_spec(&got)["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("side"), &json!("web")]);
        // Add between, keeping the server-only item where it was.
        let got = try_smp(
            &DEPLOYMENT,
            two.clone(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "mid"}],
                "containers": [{"name": "mid", "image": "x"}],
            }}}}),
        )
        .unwrap();
        let names: Vec<&str> = pod_spec(&got)["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "mid", "side"]);
        // The patch list must follow the order list.
        let (code, message) = smp_error(
            &DEPLOYMENT,
            two,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                "containers": [{"name": "side", "image": "y"}, {"name": "web", "image": "z"}],
            }}}}),
        );
        assert_eq!(code, 400);
        assert!(
            message.contains("doesn't match $setElementOrder"),
            "{message}"
        );
        // Primitive lists: the upstream example (live [1, 2, 4], patch adds 3 after 2).
        let got = smp(
            json!({"metadata": {"finalizers": ["1", "2", "4"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["1", "2", "3", "4"]));
        // A list the object lacks is created from the patch list.
        let got = smp(
            json!({"metadata": {}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["a"], "finalizers": ["a"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["a"]));
    }

    #[test]
    fn delete_from_primitive_list() {
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["a", "c"],
                "finalizers": ["c"],
                "$deleteFromPrimitiveList/finalizers": ["b", "zz"],
            }}),
        )
        .unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "c"]));
        // A delete list for a field the object lacks creates nothing.
        let got = smp(
            json!({"metadata": {"name": "p"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(got, json!({"metadata": {"name": "p"}}));
        // Primitive merge lists are sets.
        let got = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));
    }

    #[test]
    fn new_fields_lose_their_directives() {
        let got = try_smp(
            &DEPLOYMENT,
            deployment(),
            json!({"spec": {
                "minReadySeconds": 5,
                "selector": {"matchLabels": {"app": "web", "gone": null}},
                "paused": {"$patch": "delete"},
                "template": {"spec": {"initContainers": [{"name": "init", "$setElementOrder/env": [], "env": []}]}},
            }}),
        )
        .unwrap();
        assert_eq!(got["spec"]["minReadySeconds"], 5);
        assert_eq!(
            got["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert!(got["spec"].get("paused").is_none());
        assert_eq!(
            pod_spec(&got)["initContainers"],
            json!([{"name": "init", "env": []}])
        );
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {
                "type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                "selector": {"app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
                ],
            },
        })
    }

    #[test]
    fn service_ports_merge_by_port() {
        // kubectl apply's patch after changing one target port and dropping https.
        let got = try_smp(
            &SERVICE,
            service(),
            json!({"spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 9090}],
                "ports": [{"port": 80, "targetPort": 8081}, {"port": 9090, "name": "metrics"}, {"port": 443, "$patch": "delete"}],
                "selector": {"tier": "front"},
            }}),
        )
        .unwrap();
        assert_eq!(
            got["spec"]["ports"],
            json!([
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081},
                {"port": 9090, "name": "metrics"},
            ])
        );
        assert_eq!(
            got["spec"]["selector"],
            json!({"app": "web", "tier": "front"})
        );
        assert_eq!(got["spec"]["clusterIP"], "10.43.0.10");
        // clusterIPs is atomic: replaced.
        let got = try_smp(
            &SERVICE,
            service(),
            json!({"spec": {"clusterIPs": ["10.43.0.11"]}}),
        )
        .unwrap();
        assert_eq!(got["spec"]["clusterIPs"], json!(["10.43.0.11"]));
    }

    #[test]
    fn without_a_schema_lists_are_replaced() {
        let got = apply(
            PatchKind::Strategic,
            &json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            br#"{"spec":{"containers":[{"name":"c"}]}}"#,
            None,
        )
        .unwrap();
        assert_eq!(got, json!({"spec": {"containers": [{"name": "c"}]}}));
    }

    #[test]
    fn mismatched_and_nested_lists() {
        let got = smp(
            json!({"spec": {"nodeName": "a"}}),
            json!({"spec": {"nodeName": {"x": 1}}}),
        );
        assert_eq!(got["spec"]["nodeName"], json!({"x": 1}));
        let (code, _) = smp_error(
            &POD,
            json!({"metadata": {"finalizers": []}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
        );
        assert_eq!(code, 422);
        let (code, _) = smp_error(
            &POD,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [1]}}),
        );
        assert_eq!(code, 400);
    }

    #[test]
    fn json_and_merge_patches() {
        let original = json!({"data": {"a": "1"}});
        let got = apply(
            PatchKind::Json,
            &original,
            br#"[{"op":"add","path":"/data/b","value":"2"},{"op":"remove","path":"/data/a"}]"#,
            None,
        )
        .unwrap();
        assert_eq!(got, json!({"data": {"b": "2"}}));
        let err = apply(
            PatchKind::Json,
            &original,
            br#"[{"op":"test","path":"/data/a","value":"9"}]"#,
            None,
        )
        .unwrap_err();
        assert_eq!(err.code.as_u16(), 422);
        let got = apply(
            PatchKind::Merge,
            &original,
            br#"{"data":{"a":null,"c":"3"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(got, json!({"data": {"c": "3"}}));
        assert_eq!(
            apply(PatchKind::Merge, &original, b"{not json", None)
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
    }
}
