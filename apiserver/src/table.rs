//! The `meta.k8s.io` forms a read can be asked for (`as=` in the Accept header): Tables as `kubectl get` asks for them (NAME, the resource's columns, AGE, each row's object), PartialObjectMetadata and PartialObjectMetadataList.

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::registry::Resource;
use crate::status::{ApiError, ApiResult};

/// Upstream's `duration.HumanDuration`, which AGE columns use.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => {
            if s % 60 == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{}s", s % 60)
            }
        }
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => {
            if m % 60 == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{}m", m % 60)
            }
        }
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => {
            if h % 24 == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{}h", h % 24)
            }
        }
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if y < 8 => {
            let days = d - y * 365;
            if days == 0 {
                format!("{y}y")
            } else {
                format!("{y}y{days}d")
            }
        }
        _ => format!("{y}y"),
    }
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub fn age(object: &Value) -> String {
    since(object, &["/metadata/creationTimestamp"])
}

/// Time since the first of `pointers` that holds an RFC 3339 timestamp, as upstream prints it.
pub fn since(object: &Value, pointers: &[&str]) -> String {
    let Some(at) = pointers.iter().find_map(|p| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    }) else {
        return "<unknown>".into();
    };
    match time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339) {
        Ok(t) => human_duration((time::OffsetDateTime::now_utc() - t).whole_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

fn column(name: &str, type_: &str, format: &str, description: &str, priority: u8) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// The row's object: the object's metadata as a PartialObjectMetadata.
fn partial(object: &Value) -> Value {
    let metadata = object
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
}

pub fn table(r: &Resource, objects: Vec<Value>, list_meta: Value) -> Value {
    if let Some(printer) = r.strategy.printer_columns() {
        return custom_table(printer, objects, list_meta);
    }
    let columns: Vec<Value> = r
        .columns
        .iter()
        .map(|c| column(c.name, c.type_, c.format, c.description, c.priority))
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            // Columns read the stored form (events.k8s.io events print as core events).
            let stored = r.conversion.map(|c| (c.to_stored)(o.clone()));
            let source = stored.as_ref().unwrap_or(o);
            let cells: Vec<Value> = r.columns.iter().map(|c| (c.cell)(source)).collect();
            json!({"cells": cells, "object": partial(o)})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows})
}

/// A table of custom resources: NAME, then each printer column evaluated by its JSONPath.
fn custom_table(
    printer: &[crate::registry::PrinterColumn],
    objects: Vec<Value>,
    list_meta: Value,
) -> Value {
    let mut columns = vec![column(NAME_COLUMN.0, "string", "name", NAME_COLUMN.1, 0)];
    columns.extend(
        printer
            .iter()
            .map(|c| column(&c.name, &c.type_, &c.format, &c.description, c.priority)),
    );
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
            cells.extend(
                printer
                    .iter()
                    .map(|c| crate::jsonpath::cell(o, &c.json_path, &c.type_)),
            );
            json!({"cells": cells, "object": partial(o)})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows})
}

/// The NAME column's name and description.
const NAME_COLUMN: (&str, &str) = (
    "Name",
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
);

/// The `meta.k8s.io` version a transformed response is in (the `v=` of its Accept clause).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// What each Table row carries in `object` (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// The object's metadata as a PartialObjectMetadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
    /// Nothing (`null`).
    None,
}

/// What a read answers with: the object itself, or the `meta.k8s.io` form the client asked for
/// with `as=` in its Accept header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Object,
    Table(MetaVersion, IncludeObject),
    PartialObjectMetadata(MetaVersion),
    PartialObjectMetadataList(MetaVersion),
}

/// The media types resource endpoints accept, as upstream's 406 lists them.
const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

fn not_acceptable(message: String) -> ApiError {
    ApiError {
        code: StatusCode::NOT_ACCEPTABLE,
        reason: "NotAcceptable",
        message,
        details: None,
    }
}

impl Output {
    /// Negotiate the Accept header of a resource request as upstream does: clauses by
    /// descending `q`, the first the server can produce wins; plain clauses of any served media
    /// type get the object (as JSON); `as=Table` needs JSON or YAML, `as=PartialObjectMetadata`
    /// and `as=PartialObjectMetadataList` any served type, all in `meta.k8s.io` v1 or v1beta1.
    /// `include_object` is the `includeObject` query parameter, validated for tables only.
    pub fn negotiate(accept: &str, include_object: Option<&str>) -> ApiResult<Output> {
        let mut clauses: Vec<(f32, &str)> = accept
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                let q = c
                    .split(';')
                    .skip(1)
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| k.trim() == "q")
                    .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (q, c)
            })
            .collect();
        if clauses.is_empty() {
            return Ok(Output::Object);
        }
        // `q=0`: not acceptable.
        clauses.retain(|(q, _)| *q > 0.0);
        clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, clause) in clauses {
            let mut parts = clause.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if !matches!(
                media.as_str(),
                "application/json"
                    | "application/yaml"
                    | "application/vnd.kubernetes.protobuf"
                    | "application/*"
                    | "*/*"
            ) {
                continue;
            }
            let (mut kind, mut group, mut version) = (None, None, None);
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim() {
                    "as" => kind = Some(value),
                    "g" => group = Some(value),
                    "v" => version = Some(value),
                    _ => {}
                }
            }
            if kind.is_none() && group.is_none() && version.is_none() {
                return Ok(Output::Object);
            }
            let version = match (group, version) {
                (Some("meta.k8s.io"), Some("v1")) => MetaVersion::V1,
                (Some("meta.k8s.io"), Some("v1beta1")) => MetaVersion::V1beta1,
                _ => continue,
            };
            match kind {
                Some("Table")
                    if matches!(media.as_str(), "application/json" | "application/yaml") =>
                {
                    let include = match include_object {
                        None | Some("" | "Metadata") => IncludeObject::Metadata,
                        Some("Object") => IncludeObject::Object,
                        Some("None") => IncludeObject::None,
                        Some(other) => {
                            return Err(ApiError::bad_request(format!(
                                "Unable to convert to Table as requested: includeObject: Invalid value: {}: must be 'Metadata', 'Object', 'None', or empty",
                                Value::String(other.to_string())
                            )));
                        }
                    };
                    return Ok(Output::Table(version, include));
                }
                Some("PartialObjectMetadata") => return Ok(Output::PartialObjectMetadata(version)),
                Some("PartialObjectMetadataList") => {
                    return Ok(Output::PartialObjectMetadataList(version));
                }
                _ => continue,
            }
        }
        Err(not_acceptable(format!(
            "only the following media types are accepted: {ACCEPTED}"
        )))
    }

    /// Whether reads must decode every object (anything but the object itself).
    pub fn transforms(self) -> bool {
        self != Output::Object
    }
}

/// The Go type upstream names in its 406 messages: the internal type of a built-in resource,
/// `unstructured.Unstructured` for custom resources.
fn go_type(r: &Resource, list: bool) -> String {
    let package = match r.group {
        "" | "events.k8s.io" => Some("core"),
        "apps" | "batch" | "policy" | "autoscaling" => Some(r.group),
        "coordination.k8s.io"
        | "rbac.authorization.k8s.io"
        | "scheduling.k8s.io"
        | "storage.k8s.io"
        | "discovery.k8s.io"
        | "certificates.k8s.io"
        | "networking.k8s.io"
        | "node.k8s.io"
        | "apiregistration.k8s.io"
        | "apiextensions.k8s.io"
        | "admissionregistration.k8s.io"
        | "flowcontrol.apiserver.k8s.io" => r.group.split('.').next(),
        _ => None,
    };
    let suffix = if list { "List" } else { "" };
    match package {
        Some(package) => format!("*{package}.{}{suffix}", r.kind),
        None => format!("*unstructured.Unstructured{suffix}"),
    }
}

/// The object's metadata as a `meta.k8s.io` PartialObjectMetadata.
fn partial_in(object: &Value, version: MetaVersion) -> Value {
    let metadata = object
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({"kind": "PartialObjectMetadata", "apiVersion": version.api_version(), "metadata": metadata})
}

/// A Table of `objects` as `version` asks, rows carrying what `include` says; without
/// `headers`, `columnDefinitions` is null (watch events after the first).
fn table_as(
    r: &Resource,
    version: MetaVersion,
    include: IncludeObject,
    objects: Vec<Value>,
    list_meta: Value,
    headers: bool,
) -> Value {
    let whole = (include == IncludeObject::Object).then(|| objects.clone());
    let mut t = table(r, objects, list_meta);
    if version != MetaVersion::V1 {
        t["apiVersion"] = json!(version.api_version());
    }
    if !headers {
        t["columnDefinitions"] = Value::Null;
    }
    if let Some(Value::Array(rows)) = t.get_mut("rows") {
        let mut whole = whole.map(Vec::into_iter);
        for row in rows.iter_mut() {
            let object = match include {
                IncludeObject::Object => whole
                    .as_mut()
                    .and_then(Iterator::next)
                    .unwrap_or(Value::Null),
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata if version == MetaVersion::V1 => continue,
                IncludeObject::Metadata => {
                    partial_in(row.get("object").unwrap_or(&Value::Null), version)
                }
            };
            row["object"] = object;
        }
    }
    t
}

/// One object (a get, or a write's result) in the form `output` asks for.
pub fn object(r: &Resource, output: Output, object: Value) -> ApiResult<Value> {
    match output {
        Output::Object => Ok(object),
        Output::Table(version, include) => {
            let rv = object
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let meta = json!({"resourceVersion": rv});
            Ok(table_as(r, version, include, vec![object], meta, true))
        }
        Output::PartialObjectMetadata(version) => Ok(partial_in(&object, version)),
        Output::PartialObjectMetadataList(_) => Err(not_acceptable(format!(
            "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
            go_type(r, false)
        ))),
    }
}

/// A list's items and list metadata in the form `output` asks for (not [`Output::Object`],
/// which lists write directly).
pub fn list(
    r: &Resource,
    output: Output,
    objects: Vec<Value>,
    list_meta: Value,
) -> ApiResult<Value> {
    match output {
        Output::Table(version, include) => {
            Ok(table_as(r, version, include, objects, list_meta, true))
        }
        Output::PartialObjectMetadataList(version) => {
            let items: Vec<Value> = objects.iter().map(|o| partial_in(o, version)).collect();
            Ok(json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": version.api_version(),
                "metadata": list_meta,
                "items": items,
            }))
        }
        Output::PartialObjectMetadata(_) => Err(not_acceptable(format!(
            "you requested PartialObjectMetadata, but the requested object is a list ({})",
            go_type(r, true)
        ))),
        Output::Object => {
            let items: Vec<Value> = objects;
            Ok(
                json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": list_meta, "items": items}),
            )
        }
    }
}

/// A watch event's object in the form `output` asks for. Tables carry `columnDefinitions` only
/// when `headers` (the stream's first event). A transformation that cannot apply to a single
/// object (`PartialObjectMetadataList`) leaves the object as it is, as upstream's watch does.
pub fn watch_object(r: &Resource, output: Output, object: Value, headers: bool) -> Value {
    match output {
        Output::Table(version, include) => {
            let rv = object
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let meta = json!({"resourceVersion": rv});
            table_as(r, version, include, vec![object], meta, headers)
        }
        Output::PartialObjectMetadata(version) => partial_in(&object, version),
        Output::Object | Output::PartialObjectMetadataList(_) => object,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_upstream() {
        for (s, want) in [
            (0, "0s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 86400 * 10, "3y10d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    fn negotiated(accept: &str, include: Option<&str>) -> String {
        match Output::negotiate(accept, include) {
            Ok(output) => format!("{output:?}"),
            Err(e) => format!("{} {}", e.code.as_u16(), e.message),
        }
    }

    #[test]
    fn accept_negotiation() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiated(kubectl_get, None), "Table(V1, Metadata)");
        assert_eq!(negotiated(kubectl_get, Some("Object")), "Table(V1, Object)");
        assert_eq!(
            negotiated(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
                Some("None")
            ),
            "Table(V1beta1, None)"
        );
        assert_eq!(
            negotiated(kubectl_get, Some("Everything")),
            "400 Unable to convert to Table as requested: includeObject: Invalid value: \"Everything\": must be 'Metadata', 'Object', 'None', or empty"
        );
        // The metadata client: protobuf first, then JSON, then the plain object.
        assert_eq!(
            negotiated(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
                None
            ),
            "PartialObjectMetadataList(V1)"
        );
        assert_eq!(
            negotiated(
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                None
            ),
            "PartialObjectMetadata(V1)"
        );
        assert_eq!(negotiated("application/json", None), "Object");
        assert_eq!(negotiated("*/*", None), "Object");
        assert_eq!(
            negotiated("application/vnd.kubernetes.protobuf, */*", None),
            "Object"
        );
        // Tables are JSON or YAML only; unknown kinds, groups and versions are skipped.
        assert_eq!(
            negotiated(
                "application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1,application/json",
                None
            ),
            "Object"
        );
        let refused = "406 only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";
        for accept in [
            "application/json;as=Widget;g=meta.k8s.io;v=v1",
            "application/json;as=Table;g=meta.k8s.io;v=v2",
            "application/json;as=Table;g=example.com;v=v1",
            "text/html",
            "application/json;q=0",
        ] {
            assert_eq!(negotiated(accept, None), refused, "{accept}");
        }
        // Higher q wins over order.
        assert_eq!(
            negotiated(
                "application/json;q=0.5,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                None
            ),
            "PartialObjectMetadata(V1)"
        );
    }

    fn configmaps() -> &'static Resource {
        crate::registry::find("", "v1", "configmaps").unwrap()
    }

    fn cm(name: &str, rv: &str) -> Value {
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name, "namespace": "default", "resourceVersion": rv, "labels": {"a": "b"}}, "data": {"k": "v"}})
    }

    #[test]
    fn partial_object_metadata_of_objects_and_lists() {
        let r = configmaps();
        let pom = Output::PartialObjectMetadata(MetaVersion::V1);
        assert_eq!(
            object(r, pom, cm("a", "5")).unwrap(),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a", "namespace": "default", "resourceVersion": "5", "labels": {"a": "b"}}})
        );
        let list = list(
            r,
            Output::PartialObjectMetadataList(MetaVersion::V1beta1),
            vec![cm("a", "5"), cm("b", "6")],
            json!({"resourceVersion": "9"}),
        )
        .unwrap();
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(list["metadata"], json!({"resourceVersion": "9"}));
        assert_eq!(list["items"][1]["kind"], "PartialObjectMetadata");
        assert_eq!(list["items"][1]["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(list["items"][1]["metadata"]["name"], "b");
        assert!(list["items"][1].get("data").is_none());

        let e = super::list(r, pom, vec![], json!({})).unwrap_err();
        assert_eq!(
            (e.code.as_u16(), e.reason, e.message.as_str()),
            (
                406,
                "NotAcceptable",
                "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)"
            )
        );
        let e = object(
            r,
            Output::PartialObjectMetadataList(MetaVersion::V1),
            cm("a", "5"),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)"
        );
    }

    #[test]
    fn tables_with_include_object_and_versions() {
        let r = configmaps();
        let one = object(
            r,
            Output::Table(MetaVersion::V1, IncludeObject::Metadata),
            cm("a", "5"),
        )
        .unwrap();
        assert_eq!(one["metadata"], json!({"resourceVersion": "5"}));
        assert_eq!(one["rows"][0]["cells"][0], "a");
        assert_eq!(one["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(
            one["columnDefinitions"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        );

        let whole = list(
            r,
            Output::Table(MetaVersion::V1, IncludeObject::Object),
            vec![cm("a", "5"), cm("b", "6")],
            json!({"resourceVersion": "9"}),
        )
        .unwrap();
        assert_eq!(whole["rows"][1]["object"], cm("b", "6"));

        let none = list(
            r,
            Output::Table(MetaVersion::V1beta1, IncludeObject::None),
            vec![cm("a", "5")],
            json!({}),
        )
        .unwrap();
        assert_eq!(none["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(none["rows"][0]["object"], Value::Null);

        let beta = list(
            r,
            Output::Table(MetaVersion::V1beta1, IncludeObject::Metadata),
            vec![cm("a", "5")],
            json!({}),
        )
        .unwrap();
        assert_eq!(
            beta["rows"][0]["object"]["apiVersion"],
            "meta.k8s.io/v1beta1"
        );
        assert_eq!(beta["rows"][0]["object"]["metadata"]["name"], "a");
    }

    #[test]
    fn watch_events_carry_headers_only_first() {
        let r = configmaps();
        let output = Output::Table(MetaVersion::V1, IncludeObject::Metadata);
        let first = watch_object(r, output, cm("a", "5"), true);
        let later = watch_object(r, output, cm("a", "6"), false);
        assert!(
            first["columnDefinitions"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        );
        assert_eq!(later["columnDefinitions"], Value::Null);
        assert_eq!(later["metadata"]["resourceVersion"], "6");
        assert_eq!(later["rows"][0]["cells"][0], "a");
        let pom = watch_object(
            r,
            Output::PartialObjectMetadata(MetaVersion::V1),
            cm("a", "5"),
            true,
        );
        assert_eq!(pom["kind"], "PartialObjectMetadata");
        // A list form cannot apply to one object: the event carries the object.
        let same = watch_object(
            r,
            Output::PartialObjectMetadataList(MetaVersion::V1),
            cm("a", "5"),
            true,
        );
        assert_eq!(same, cm("a", "5"));
    }
}
