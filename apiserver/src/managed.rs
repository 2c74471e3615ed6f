//! Field ownership and server-side apply: `metadata.managedFields` kept on every write, apply merging with conflict detection, as upstream's field manager does.
//!
//! A [`FieldSet`] is a set of field paths in upstream's `FieldsV1` form: a tree whose edges are
//! path elements (`f:<field>`, `k:<key object>` for list-map items, `v:<value>` for set items,
//! `i:<index>`), where a node is in the set when it is a leaf or carries the `.` marker. What
//! kind of path element a list gets comes from the schema's `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` (see `patchmeta.rs` for built-in
//! types; custom resources carry them in their schemas).
//!
//! Every create, update and non-apply patch records the fields it set or changed for its
//! manager (operation `Update`) and takes them from other managers; fields it removed leave
//! every set. An apply (operation `Apply`) owns exactly the fields of its configuration: a
//! field another manager owns with a different value is a conflict (409) unless forced, a
//! field this manager applied before and no longer does is removed unless someone else owns it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub use crate::patch::Schema;
use crate::status::{ApiError, ApiResult};

/// The longest manager name upstream accepts.
pub const MAX_MANAGER_LENGTH: usize = 128;

/// Metadata fields the system owns; never tracked.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Struct fields Go declares by value, so they exist in a type's zero value and an update that
/// fills them does not own them as a whole (no `.` marker), as upstream's comparison against
/// the zero object yields. (An approximation by field name; the OpenAPI schema does not say.)
const NON_POINTER_STRUCTS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "jobTemplate",
    "strategy",
    "updateStrategy",
    "resources",
    "loadBalancer",
    "daemonEndpoints",
    "kubeletEndpoint",
    "nodeInfo",
    "involvedObject",
    "source",
    "roleRef",
];

/// A set of field paths (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    fn leaf() -> FieldSet {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Parse `fieldsV1`.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        let Some(map) = value.as_object() else {
            return FieldSet::default();
        };
        let mut set = FieldSet {
            member: map.is_empty(),
            children: BTreeMap::new(),
        };
        for (k, v) in map {
            if k == "." {
                set.member = true;
            } else {
                set.children.insert(k.clone(), FieldSet::from_fields_v1(v));
            }
        }
        set
    }

    /// The `fieldsV1` form.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), json!({}));
        }
        for (k, child) in &self.children {
            map.insert(k.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, child) in &other.children {
            self.children.entry(k.clone()).or_default().union(child);
        }
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, child) in &self.children {
            let rest = match other.children.get(k) {
                Some(o) => child.difference(o),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(k.clone(), rest);
            }
        }
        out
    }

    /// The paths in both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, child) in &self.children {
            if let Some(o) = other.children.get(k) {
                let both = child.intersection(o);
                if !both.is_empty() {
                    out.children.insert(k.clone(), both);
                }
            }
        }
        out
    }

    /// Every path in the set, each as its elements.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, child) in &self.children {
            prefix.push(k.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The paths of every interior node (nodes with children), members or not.
    fn node_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_nodes(&mut Vec::new(), &mut out);
        out
    }

    fn collect_nodes(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if !self.children.is_empty() {
            out.push(prefix.clone());
        }
        for (k, child) in &self.children {
            prefix.push(k.clone());
            child.collect_nodes(prefix, out);
            prefix.pop();
        }
    }

    /// The node at `path`, if the set has anything there.
    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        let mut at = self;
        for element in path {
            at = at.children.get(element)?;
        }
        Some(at)
    }

    /// Whether the set has `path` or anything below it.
    fn touches(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    fn insert(&mut self, path: &[String]) {
        let mut at = self;
        for element in path {
            at = at.children.entry(element.clone()).or_default();
        }
        at.member = true;
    }
}

/// How a field's value is tracked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Shape {
    /// An object whose fields are tracked one by one (structs and granular maps).
    #[default]
    Granular,
    /// Tracked as one value.
    Atomic,
    /// A list whose items are identified by these keys.
    ListMap(Vec<String>),
    /// A list of unique primitives.
    ListSet,
}

/// How a value of this type is tracked, from its list and map extensions.
fn shape(schema: Schema<'_>) -> Shape {
    match schema
        .extension("x-kubernetes-list-type")
        .and_then(Value::as_str)
    {
        Some("map") => {
            let keys = schema
                .extension("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| {
                    k.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            return Shape::ListMap(keys);
        }
        Some("set") => return Shape::ListSet,
        Some(_) => return Shape::Atomic,
        None => {}
    }
    if schema
        .extension("x-kubernetes-map-type")
        .and_then(Value::as_str)
        == Some("atomic")
    {
        return Shape::Atomic;
    }
    // Lists without a list type are atomic, as upstream treats them.
    if schema.resolved().get("type").and_then(Value::as_str) == Some("array") {
        return Shape::Atomic;
    }
    Shape::Granular
}

fn shape_of(schema: Option<Schema<'_>>, value: &Value) -> Shape {
    match schema {
        Some(s) => shape(s),
        // Without a schema: objects are granular, lists atomic.
        None if value.is_array() => Shape::Atomic,
        None => Shape::Granular,
    }
}

/// The defaults upstream's schemas give list-map key fields that clients may leave out.
fn key_default(field: &str) -> Option<Value> {
    (field == "protocol").then(|| json!("TCP"))
}

/// `k:{"name":"x"}` for a list-map item (key fields sorted by name, as upstream encodes them).
fn key_element(item: &Value, keys: &[String]) -> Option<String> {
    let mut fields: Vec<(&String, Value)> = Vec::new();
    for key in keys {
        match item.get(key).cloned().or_else(|| key_default(key)) {
            Some(v) => fields.push((key, v)),
            None => continue,
        }
    }
    if fields.is_empty() {
        return None;
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let object: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.clone(), v)).collect();
    Some(format!("k:{}", Value::Object(object)))
}

/// The set of fields `value` sets, below a node of type `schema`.
fn set_of(value: &Value, schema: Option<Schema<'_>>) -> FieldSet {
    match (value, shape_of(schema, value)) {
        (Value::Object(map), Shape::Granular) if !map.is_empty() => {
            let mut set = FieldSet::default();
            for (k, v) in map {
                let child = set_of(v, schema.and_then(|s| s.property(k)));
                set.children.insert(format!("f:{k}"), child);
            }
            set
        }
        (Value::Array(items), Shape::ListMap(keys)) if !items.is_empty() => {
            let item_schema = schema.and_then(Schema::items);
            let mut set = FieldSet::default();
            for (i, item) in items.iter().enumerate() {
                let element = key_element(item, &keys).unwrap_or_else(|| format!("i:{i}"));
                let mut child = set_of(item, item_schema);
                child.member = true;
                set.children.insert(element, child);
            }
            set
        }
        (Value::Array(items), Shape::ListSet) if !items.is_empty() => {
            let mut set = FieldSet::default();
            for item in items {
                set.children.insert(format!("v:{item}"), FieldSet::leaf());
            }
            set
        }
        _ => FieldSet::leaf(),
    }
}

/// The value at `path` (elements as in `FieldsV1`).
fn value_at<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut at = value;
    for element in path {
        at = child(at, element)?;
    }
    Some(at)
}

fn child<'v>(value: &'v Value, element: &str) -> Option<&'v Value> {
    if let Some(field) = element.strip_prefix("f:") {
        return value.get(field);
    }
    let items = value.as_array()?;
    if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter().find(|item| {
            key.iter()
                .all(|(k, v)| item.get(k).cloned().or_else(|| key_default(k)).as_ref() == Some(v))
        });
    }
    if let Some(literal) = element.strip_prefix("v:") {
        let wanted: Value = serde_json::from_str(literal).ok()?;
        return items.iter().find(|item| **item == wanted);
    }
    let index: usize = element.strip_prefix("i:")?.parse().ok()?;
    items.get(index)
}

/// Remove the value at `path`; false if it was not there.
fn remove_at(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut at = value;
    for element in parents {
        let next = match element.strip_prefix("f:") {
            Some(field) => at.get_mut(field),
            None => {
                let position = at.as_array().and_then(|items| {
                    items
                        .iter()
                        .position(|i| Some(i) == child_ref(items, element))
                });
                match position {
                    Some(p) => at.as_array_mut().and_then(|a| a.get_mut(p)),
                    None => None,
                }
            }
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    if let Some(field) = last.strip_prefix("f:") {
        return at.as_object_mut().and_then(|m| m.remove(field)).is_some();
    }
    let Some(items) = at.as_array() else {
        return false;
    };
    let Some(position) = items.iter().position(|i| Some(i) == child_ref(items, last)) else {
        return false;
    };
    at.as_array_mut().map(|a| a.remove(position)).is_some()
}

fn child_ref<'v>(items: &'v [Value], element: &str) -> Option<&'v Value> {
    let list = Value::Array(Vec::new());
    let _ = list;
    // `child` needs a `&Value` list; search the slice the same way.
    if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter().find(|item| {
            key.iter()
                .all(|(k, v)| item.get(k).cloned().or_else(|| key_default(k)).as_ref() == Some(v))
        });
    }
    if let Some(literal) = element.strip_prefix("v:") {
        let wanted: Value = serde_json::from_str(literal).ok()?;
        return items.iter().find(|item| **item == wanted);
    }
    let index: usize = element.strip_prefix("i:")?.parse().ok()?;
    items.get(index)
}

/// The tracked fields of a whole object: everything but type meta, system metadata and the
/// part a subresource does not write (`status` for the main resource when there is a status
/// subresource; everything but `status` through `/status`).
fn object_set(object: &Value, schema: Option<Schema<'_>>, scope: Scope) -> FieldSet {
    let Some(map) = object.as_object() else {
        return FieldSet::default();
    };
    let mut trimmed = Map::new();
    for (k, v) in map {
        let keep = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => scope != Scope::MainWithStatus,
            "metadata" => scope != Scope::Status,
            _ => scope != Scope::Status,
        };
        if !keep {
            continue;
        }
        if k == "metadata" {
            let mut meta = v.as_object().cloned().unwrap_or_default();
            for field in UNTRACKED_METADATA {
                meta.remove(*field);
            }
            if !meta.is_empty() {
                trimmed.insert(k.clone(), Value::Object(meta));
            }
            continue;
        }
        trimmed.insert(k.clone(), v.clone());
    }
    if trimmed.is_empty() {
        return FieldSet::default();
    }
    set_of(&Value::Object(trimmed), schema)
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole object (resources without a status subresource).
    Main,
    /// Everything but `status`.
    MainWithStatus,
    /// Only `status`.
    Status,
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

impl Entry {
    fn parse(value: &Value) -> Option<Entry> {
        let text = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(Entry {
            manager: text("manager"),
            operation: text("operation"),
            api_version: text("apiVersion"),
            time: text("time"),
            subresource: text("subresource"),
            fields: FieldSet::from_fields_v1(value.get("fieldsV1")?),
        })
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if !self.time.is_empty() {
            entry.insert("time".into(), json!(self.time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            entry.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(entry)
    }

    fn same_manager(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How a conflict names this manager (upstream's `printManager`).
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text = format!("{text} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            text = if self.time.is_empty() {
                format!("{text} using {}", self.api_version)
            } else {
                format!("{text} using {} at {}", self.api_version, self.time)
            };
        }
        text
    }
}

fn entries_of(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

/// Write `entries` into the object, sorted as upstream sorts them; none → no field.
fn store_entries(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|p, q| {
        (
            p.operation.as_str(),
            p.time.as_str(),
            p.manager.as_str(),
            p.api_version.as_str(),
            p.subresource.as_str(),
        )
            .cmp(&(
                q.operation.as_str(),
                q.time.as_str(),
                q.manager.as_str(),
                q.api_version.as_str(),
                q.subresource.as_str(),
            ))
    });
    let meta = crate::object::metadata_mut(object);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// A write's identity: who, with which API version, through which subresource.
#[derive(Clone, Debug)]
pub struct Write<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub scope: Scope,
    pub now: &'a str,
}

/// The managedFields a request carries, when they differ from the stored ones: upstream lets a
/// client reset (`[{}]`) or rewrite them (kubectl's client-side → server-side apply
/// migration). `None`: keep the stored ones.
fn requested_entries(current: Option<&Value>, new: &Value) -> Option<Vec<Entry>> {
    let requested = new.pointer("/metadata/managedFields")?;
    let stored = current.and_then(|c| c.pointer("/metadata/managedFields"));
    if Some(requested) == stored {
        return None;
    }
    Some(
        requested
            .as_array()
            .map(|list| list.iter().filter_map(Entry::parse).collect())
            .unwrap_or_default(),
    )
}

/// Record a create, update or non-apply patch: the fields `write.manager` set or changed are
/// its (operation `Update`), and no longer anyone else's; removed fields leave every set.
pub fn record_update(
    current: Option<&Value>,
    new: &mut Value,
    schema: Option<Schema<'_>>,
    write: &Write<'_>,
) {
    let mut entries = match requested_entries(current, new) {
        Some(requested) => requested,
        None => current.map(entries_of).unwrap_or_default(),
    };
    let new_set = object_set(new, schema, write.scope);
    let old_set = current
        .map(|c| object_set(c, schema, write.scope))
        .unwrap_or_default();
    let mut changed = FieldSet::default();
    // Objects and lists a write brings into being are its own (`.`), as upstream compares
    // against the type's zero value, where Go's non-pointer structs already exist.
    for path in new_set.node_paths() {
        let is_new = current.and_then(|c| value_at(c, &path)).is_none();
        let always_there = path
            .last()
            .and_then(|e| e.strip_prefix("f:"))
            .is_some_and(|f| NON_POINTER_STRUCTS.contains(&f));
        if is_new && !always_there && !path.is_empty() {
            changed.insert(&path);
        }
    }
    for path in new_set.paths() {
        let before = current.and_then(|c| value_at(c, &path));
        let after = value_at(new, &path);
        let is_leaf = new_set.node(&path).is_some_and(|n| n.children.is_empty());
        let differs = match before {
            None => true,
            Some(b) => is_leaf && Some(b) != after,
        };
        if differs {
            changed.insert(&path);
        }
    }
    let removed = old_set.difference(&new_set);
    for entry in &mut entries {
        if entry.subresource == write.subresource || write.scope != Scope::Status {
            entry.fields = entry.fields.difference(&changed).difference(&removed);
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_manager(write.manager, "Update", write.subresource))
        {
            Some(entry) => {
                entry.fields.union(&changed);
                entry.time = write.now.to_string();
                entry.api_version = write.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: write.manager.to_string(),
                operation: "Update".into(),
                api_version: write.api_version.to_string(),
                time: write.now.to_string(),
                subresource: write.subresource.to_string(),
                fields: changed,
            }),
        }
    }
    store_entries(new, entries);
}

/// Merge `applied` into `live` as upstream's structured merge does: fields of the applied
/// configuration win; list-map items merge by key, sets merge, atomic values are replaced.
fn merge(live: &Value, applied: &Value, schema: Option<Schema<'_>>) -> Value {
    match (live, applied, shape_of(schema, applied)) {
        (Value::Object(l), Value::Object(a), Shape::Granular) => {
            let mut out = l.clone();
            for (k, v) in a {
                let merged = match l.get(k) {
                    Some(existing) => merge(existing, v, schema.and_then(|s| s.property(k))),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a), Shape::ListMap(keys)) => {
            let item_schema = schema.and_then(Schema::items);
            let mut out = l.clone();
            for item in a {
                let element = key_element(item, &keys);
                let position = element.as_deref().and_then(|e| {
                    out.iter()
                        .position(|i| key_element(i, &keys).as_deref() == Some(e))
                });
                match position {
                    Some(p) => out[p] = merge(&out[p], item, item_schema),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        (Value::Array(l), Value::Array(a), Shape::ListSet) => {
            let mut out = l.clone();
            for item in a {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Value::Array(out)
        }
        _ => applied.clone(),
    }
}

/// One field another manager owns with a different value.
#[derive(Debug)]
struct Conflict {
    manager: String,
    path: String,
}

/// A path as upstream prints it: `.spec.containers[name="app"].image`.
fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// Upstream's 409 for apply conflicts.
fn conflict_error(conflicts: &[Conflict], group: &str, plural: &str, name: &str) -> ApiError {
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].manager, conflicts[0].path
        )
    } else {
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in conflicts {
            by_manager.entry(&c.manager).or_default().push(&c.path);
        }
        let mut lines = Vec::new();
        for (manager, paths) in by_manager {
            lines.push(format!("conflicts with {manager}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.path})
        })
        .collect();
    let mut details = json!({"name": name, "kind": plural, "causes": causes});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    ApiError::conflict(group, plural, name)
        .with_message(message)
        .with_details(details)
}

/// Apply `applied` (a configuration, as sent) for `write.manager` to `live` (`None` when the
/// object does not exist yet): the merged object with its managedFields.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    schema: Option<Schema<'_>>,
    write: &Write<'_>,
    force: bool,
    what: (&str, &str, &str),
) -> ApiResult<Value> {
    let (group, plural, name) = what;
    let mut entries = match live {
        Some(live) => {
            let entries = entries_of(live);
            if entries.is_empty() {
                // An object no manager has touched yet: what it has belongs to
                // "before-first-apply", as upstream attributes it.
                let fields = object_set(live, schema, write.scope);
                if fields.is_empty() {
                    Vec::new()
                } else {
                    vec![Entry {
                        manager: "before-first-apply".into(),
                        operation: "Update".into(),
                        api_version: write.api_version.to_string(),
                        time: write.now.to_string(),
                        subresource: String::new(),
                        fields,
                    }]
                }
            } else {
                entries
            }
        }
        None => Vec::new(),
    };
    let applied_set = object_set(applied, schema, write.scope);
    let empty = json!({});
    let live_object = live.unwrap_or(&empty);
    let mine = |e: &Entry| e.same_manager(write.manager, "Apply", write.subresource);

    // Conflicts: fields others own whose value the configuration changes.
    let mut conflicts = Vec::new();
    for entry in entries.iter().filter(|e| !mine(e)) {
        for path in applied_set.intersection(&entry.fields).paths() {
            let leaf = applied_set
                .node(&path)
                .is_some_and(|n| n.children.is_empty());
            if leaf && value_at(applied, &path) != value_at(live_object, &path) {
                conflicts.push((entry.describe(), path));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let conflicts: Vec<Conflict> = conflicts
            .into_iter()
            .map(|(manager, path)| Conflict {
                manager,
                path: path_string(&path),
            })
            .collect();
        return Err(conflict_error(&conflicts, group, plural, name));
    }
    // Forced: the conflicting fields change hands.
    if !conflicts.is_empty() {
        let mut taken = FieldSet::default();
        for (_, path) in &conflicts {
            taken.insert(path);
        }
        for entry in entries.iter_mut().filter(|e| !mine(e)) {
            entry.fields = entry.fields.difference(&taken);
        }
    }

    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = merge(live_object, applied, schema);
    // Fields this manager applied before and no longer does go, unless someone else has them.
    let mut others = FieldSet::default();
    for entry in entries.iter().filter(|e| !mine(e)) {
        others.union(&entry.fields);
    }
    let dropped = previous.difference(&applied_set);
    let mut paths = dropped.paths();
    // Deepest first, so an item's fields go before the item.
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in paths {
        if !others.touches(&path) && !applied_set.touches(&path) {
            remove_at(&mut merged, &path);
        }
    }

    // As upstream, an apply that leaves the object as it was keeps the manager's time, so a
    // repeated apply writes nothing.
    let unchanged = live.is_some_and(|live| {
        let bare = |o: &Value| {
            let mut o = o.clone();
            if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            o
        };
        bare(live) == bare(&merged)
    });
    let time = match entries.iter().find(|e| mine(e)) {
        Some(e) if unchanged => e.time.clone(),
        _ => write.now.to_string(),
    };
    entries.retain(|e| !mine(e));
    entries.push(Entry {
        manager: write.manager.to_string(),
        operation: "Apply".into(),
        api_version: write.api_version.to_string(),
        time,
        subresource: write.subresource.to_string(),
        fields: applied_set,
    });
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// The manager a request writes as: its `fieldManager`, else its user agent up to the first
/// `/` (upstream's `managerOrUserAgent`), at most 128 bytes.
pub fn manager_name(field_manager: Option<&str>, user_agent: &str) -> String {
    let name = match field_manager.filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => user_agent.split('/').next().unwrap_or("").to_string(),
    };
    let mut end = name.len().min(MAX_MANAGER_LENGTH);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write<'a>(manager: &'a str) -> Write<'a> {
        Write {
            manager,
            api_version: "v1",
            subresource: "",
            scope: Scope::Main,
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn fields_v1_round_trips() {
        let v1 = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:data": {"f:a": {}}});
        assert_eq!(FieldSet::from_fields_v1(&v1).to_fields_v1(), v1);
    }

    #[test]
    fn create_owns_everything_and_updates_take_what_they_change() {
        let mut cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v", "j": "w"}});
        record_update(None, &mut cm, None, &write("kubectl-create"));
        assert_eq!(
            cm["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {".": {}, "f:j": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
        let mut next = cm.clone();
        next["data"]["k"] = json!("changed");
        next["data"].as_object_mut().unwrap().remove("j");
        record_update(Some(&cm), &mut next, None, &write("kubectl-edit"));
        let entries = next["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0]["fieldsV1"],
            json!({"f:data": {}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
        assert_eq!(entries[1]["manager"], "kubectl-edit");
        assert_eq!(entries[1]["fieldsV1"], json!({"f:data": {"f:k": {}}}));
    }

    #[test]
    fn apply_conflicts_unless_forced_and_prunes_what_it_stops_applying() {
        let mut live = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}, "data": {"a": "1"}});
        record_update(None, &mut live, None, &write("kubectl-create"));
        let applied = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}, "data": {"a": "2", "b": "1"}});
        let err = apply(
            Some(&live),
            &applied,
            None,
            &write("kubectl"),
            false,
            ("", "configmaps", "x"),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1 at 2026-01-01T00:00:00Z: .data.a"
        );
        let forced = apply(
            Some(&live),
            &applied,
            None,
            &write("kubectl"),
            true,
            ("", "configmaps", "x"),
        )
        .unwrap();
        assert_eq!(forced["data"], json!({"a": "2", "b": "1"}));
        // kubectl-create lost .data.a; it keeps the map it created.
        let entries = forced["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries[0]["manager"], "kubectl");
        assert_eq!(entries[1]["manager"], "kubectl-create");
        assert_eq!(entries[1]["fieldsV1"], json!({"f:data": {}}));
        // Applying without b removes b.
        let smaller = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}, "data": {"a": "2"}});
        let pruned = apply(
            Some(&forced),
            &smaller,
            None,
            &write("kubectl"),
            false,
            ("", "configmaps", "x"),
        )
        .unwrap();
        assert_eq!(pruned["data"], json!({"a": "2"}));
    }

    #[test]
    fn same_values_are_shared_not_conflicting() {
        let mut live = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
        record_update(None, &mut live, None, &write("kubectl-create"));
        let applied = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
        let out = apply(
            Some(&live),
            &applied,
            None,
            &write("kubectl"),
            false,
            ("", "configmaps", "x"),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["managedFields"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn list_map_paths_print_like_upstream() {
        let path = vec![
            "f:spec".to_string(),
            "f:containers".to_string(),
            r#"k:{"name":"app"}"#.to_string(),
            "f:image".to_string(),
        ];
        assert_eq!(path_string(&path), r#".spec.containers[name="app"].image"#);
    }

    #[test]
    fn managers_default_to_the_user_agent() {
        assert_eq!(
            manager_name(None, "kubectl/v1.33.0 (linux/amd64)"),
            "kubectl"
        );
        assert_eq!(manager_name(Some("mine"), "kubectl/v1.33.0"), "mine");
        assert_eq!(manager_name(None, &"x".repeat(300)).len(), 128);
    }
}
