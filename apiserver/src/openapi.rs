//! OpenAPI v3: the `/openapi/v3` index with hashed, cacheable URLs and one document per group/version, built once from the resource table and k8s-openapi's schemas.

use std::collections::BTreeMap;

use bytes::Bytes;
use parking_lot::RwLock;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::patchmeta;
use crate::registry::{self, Resource};

/// Every group/version document, serialised once.
///
/// Documents live for the process (built-in ones are built at start; a custom resource
/// definition's is built when it changes), so they are leaked and handed out as `&'static`:
/// a custom resource definition's change leaks the previous document, which is bounded by
/// the number of such changes.
pub struct OpenApi {
    /// Keyed by the path under `/openapi/v3/` (`api/v1`, `apis/coordination.k8s.io/v1`).
    docs: RwLock<BTreeMap<String, &'static Document>>,
    /// `/openapi/v2`, derived from `docs` (kubectl 1.27 and 1.28 need it for `create -f` and
    /// `apply`).
    v2: crate::openapi_v2::Cache,
}

pub struct Document {
    json: Bytes,
    hash: String,
    /// `components.schemas`, for server-side field validation.
    schemas: Map<String, Value>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvk(r: &Resource, kind: &str) -> Value {
    json!({"group": r.group, "kind": kind, "version": r.version})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The component name a `$ref` points at.
fn ref_name(schema: &Value) -> Option<String> {
    schema
        .get("$ref")?
        .as_str()?
        .rsplit('/')
        .next()
        .map(str::to_string)
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present.",
        ),
    ];
    if patch {
        params.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    params
}

fn response(schema: &Value) -> Value {
    json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}, "401": {"description": "Unauthorized"}})
}

fn operation(
    r: &Resource,
    action: &str,
    verb_id: &str,
    kind: &str,
    out: &Value,
    params: Vec<Value>,
    body: Option<Value>,
) -> Value {
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let group = if r.group.is_empty() {
        "core".to_string()
    } else {
        r.group.split('.').next().unwrap_or(r.group).to_string()
    };
    let mut op = json!({
        "tags": [format!("{}_{}", group, r.version)],
        "description": format!("{action} {kind}"),
        "operationId": format!("{verb_id}{}{}{scope}{}", capitalize(&group), capitalize(r.version), kind),
        "parameters": params,
        "responses": response(out),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(r, r.kind),
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn body(schema: &Value) -> Value {
    json!({"content": {"*/*": {"schema": schema}}, "required": true})
}

fn patch_body() -> Value {
    let patch = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    let content: Map<String, Value> = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ]
    .iter()
    .map(|t| (t.to_string(), json!({"schema": patch})))
    .collect();
    json!({"content": content, "required": true})
}

fn path_params(namespaced: bool, named: bool) -> Vec<Value> {
    let mut params = Vec::new();
    if named {
        params.push(json!({"name": "name", "in": "path", "description": "name of the resource", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
    }
    if namespaced {
        params.push(json!({"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams and projects", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
    }
    params
}

/// The paths of one resource.
fn resource_paths(r: &Resource, item: &Value, list: &Value, paths: &mut Map<String, Value>) {
    let base = format!("/{}", gv_path(r.group, r.version));
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let list_kind = format!("{}List", r.kind);
    let mut coll = json!({
        "get": operation(r, "list", "list", &list_kind, list, vec![], None),
        "post": operation(r, "post", "create", r.kind, item, write_params(false), Some(body(item))),
        "delete": operation(r, "deletecollection", "deleteCollection", r.kind, &schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status"), vec![], None),
        "parameters": path_params(r.namespaced, false),
    });
    coll["get"]["x-kubernetes-group-version-kind"] = gvk(r, r.kind);
    paths.insert(collection.clone(), coll);
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": operation(r, "get", "read", r.kind, item, vec![], None),
            "put": operation(r, "put", "replace", r.kind, item, write_params(false), Some(body(item))),
            "patch": operation(r, "patch", "patch", r.kind, item, write_params(true), Some(patch_body())),
            "delete": operation(r, "delete", "delete", r.kind, item, vec![], None),
            "parameters": path_params(r.namespaced, true),
        }),
    );
    if r.namespaced {
        paths.insert(
            format!("{base}/{}", r.plural),
            json!({"get": operation(r, "list", "list", &list_kind, list, vec![], None), "parameters": []}),
        );
    }
}

fn list_schema(r: &Resource, item_name: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.", "type": "string"},
            "items": {"description": format!("List of {}.", r.plural), "type": "array", "items": {"allOf": [schema_ref(item_name)], "default": {}}},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": {"allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")], "default": {}, "description": "Standard list metadata."},
        },
        "x-kubernetes-group-version-kind": [gvk(r, &format!("{}List", r.kind))],
    })
}

impl OpenApi {
    pub fn build() -> OpenApi {
        let mut docs = BTreeMap::new();
        for (group, version) in registry::groups() {
            let mut generator = SchemaGenerator::new(SchemaSettings::openapi3());
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Patch>();
            let mut paths = Map::new();
            let mut extra = Map::new();
            let mut kinds = Vec::new();
            for r in registry::all()
                .iter()
                .filter(|r| r.group == group && r.version == version)
            {
                let item = (r.schema)(&mut generator).to_value();
                let Some(item_name) = ref_name(&item) else {
                    continue;
                };
                let list_name = format!("{}List", item_name);
                extra.insert(list_name.clone(), list_schema(r, &item_name));
                resource_paths(r, &item, &schema_ref(&list_name), &mut paths);
                kinds.push((item_name, gvk(r, r.kind)));
            }
            let mut schemas = generator.take_definitions(true);
            schemas.extend(extra);
            annotate(&mut schemas);
            for (name, gvk) in kinds {
                if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                    schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
                }
            }
            // k8s-openapi's Patch is an empty struct; upstream documents it as a free object.
            schemas.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(), json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}));
            let doc = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::KUBERNETES_MINOR)},
                "paths": paths,
                "components": {"schemas": schemas},
            });
            let json = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
            let hash = Sha512::digest(&json)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>();
            let document: &'static Document = Box::leak(Box::new(Document {
                json,
                hash,
                schemas: schemas_of(&doc),
            }));
            docs.insert(gv_path(group, version), document);
        }
        OpenApi {
            docs: RwLock::new(docs),
            v2: Default::default(),
        }
    }

    /// `/openapi/v2`: the Swagger 2.0 form of the current documents, built when first asked
    /// for and again only after one of them changes.
    pub fn v2(&self) -> std::sync::Arc<crate::openapi_v2::Swagger> {
        let docs: Vec<&'static Document> = self.docs.read().values().copied().collect();
        self.v2.get(docs.iter().map(|d| d.hash.as_str()), || {
            docs.iter()
                .filter_map(|d| serde_json::from_slice(&d.json).ok())
                .collect()
        })
    }

    /// Build and serve the document of a custom group/version: `kinds` are its resources with
    /// their object schemas (`openAPIV3Schema`, without apiVersion, kind and metadata).
    pub fn set_custom(&self, group: &str, version: &str, kinds: &[(&'static Resource, Value)]) {
        let path = gv_path(group, version);
        if kinds.is_empty() {
            self.docs.write().remove(&path);
            return;
        }
        let mut generator = SchemaGenerator::new(SchemaSettings::openapi3());
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
        let mut schemas = generator.take_definitions(true);
        annotate(&mut schemas);
        schemas.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(), json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}));
        let mut paths = Map::new();
        // Upstream names a custom kind's schema by its reversed group: `com.example.v1.Foo`.
        let reversed: Vec<&str> = group.split('.').rev().collect();
        for (r, schema) in kinds {
            let item_name = format!("{}.{version}.{}", reversed.join("."), r.kind);
            let mut item = schema.clone();
            if !item.is_object() {
                item = json!({"type": "object"});
            }
            let properties = item
                .as_object_mut()
                .map(|o| o.entry("properties").or_insert_with(|| json!({})));
            if let Some(Value::Object(properties)) = properties {
                properties.insert("apiVersion".into(), json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}));
                properties.insert("kind".into(), json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}));
                properties.insert("metadata".into(), json!({"allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
            }
            item["x-kubernetes-group-version-kind"] = json!([gvk(r, r.kind)]);
            let list_name = format!("{item_name}List");
            schemas.insert(list_name.clone(), list_schema(r, &item_name));
            schemas.insert(item_name.clone(), item);
            resource_paths(
                r,
                &schema_ref(&item_name),
                &schema_ref(&list_name),
                &mut paths,
            );
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
            "paths": paths,
            "components": {"schemas": schemas},
        });
        let json = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        let hash = Sha512::digest(&json)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>();
        let document: &'static Document = Box::leak(Box::new(Document {
            json,
            hash,
            schemas: schemas_of(&doc),
        }));
        self.docs.write().insert(path, document);
    }

    /// `/openapi/v3`.
    pub fn index(&self) -> Value {
        let paths: Map<String, Value> = self
            .docs
            .read()
            .iter()
            .map(|(path, doc)| {
                (
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
                )
            })
            .collect();
        json!({"paths": paths})
    }

    /// `/openapi/v3/<path>`, and whether `hash` names its current content.
    pub fn document(&self, path: &str, hash: Option<&str>) -> Option<(Bytes, bool)> {
        self.docs
            .read()
            .get(path)
            .map(|d| (d.json.clone(), hash == Some(d.hash.as_str())))
    }

    /// The component schemas of a resource's group/version, and its schema's name.
    pub fn schema_of(&self, r: &Resource) -> Option<(&'static Map<String, Value>, String)> {
        let doc: &'static Document = *self.docs.read().get(&gv_path(r.group, r.version))?;
        let name = doc.schemas.iter().find_map(|(name, s)| {
            let kinds = s.get("x-kubernetes-group-version-kind")?.as_array()?;
            kinds
                .iter()
                .any(|k| k["kind"] == r.kind)
                .then(|| name.clone())
        })?;
        Some((&doc.schemas, name))
    }

    /// The type of a resource's objects, for strategic merge patches.
    pub fn patch_schema(&self, r: &Resource) -> Option<crate::patch::Schema<'_>> {
        let (schemas, root) = self.schema_of(r)?;
        crate::patch::Schema::new(schemas, &root)
    }
}

/// Add upstream's patch and list metadata (`x-kubernetes-patch-merge-key`,
/// `x-kubernetes-patch-strategy`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
/// `x-kubernetes-map-type`) to the definitions and their properties, as upstream publishes them:
/// kubectl computes `apply` patches from them, and strategic merge patches follow them.
pub(crate) fn annotate(schemas: &mut Map<String, Value>) {
    for (name, schema) in schemas.iter_mut() {
        let Value::Object(schema) = schema else {
            continue;
        };
        if let Some(map_type) = patchmeta::definition_map_type(name) {
            schema.insert("x-kubernetes-map-type".into(), json!(map_type));
        }
        let Some(Value::Object(properties)) = schema.get_mut("properties") else {
            continue;
        };
        for field in patchmeta::fields_of(name) {
            if let Some(Value::Object(property)) = properties.get_mut(field.name) {
                for (key, value) in field.extensions() {
                    property.insert(key.into(), value);
                }
            }
        }
    }
}

fn schemas_of(doc: &Value) -> Map<String, Value> {
    doc.pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Remove every field of `object` the schema does not know, returning their paths as
/// upstream's strict decoding names them (`spec.foo`, `metadata.labelz`).
pub fn prune_unknown_fields(
    schemas: &Map<String, Value>,
    root: &str,
    object: &mut Value,
) -> Vec<String> {
    let mut out = Vec::new();
    walk(schemas, &schema_ref(root), object, "", &mut out);
    out
}

fn resolve<'a>(schemas: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(name) = ref_name(schema) {
            match schemas.get(&name) {
                Some(s) => schema = s,
                None => return schema,
            }
        } else if let Some(first) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            schema = first;
        } else {
            return schema;
        }
    }
    schema
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    schemas: &Map<String, Value>,
    schema: &Value,
    value: &mut Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let schema = resolve(schemas, schema);
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                map.retain(|k, v| match props.get(k) {
                    Some(s) => {
                        walk(schemas, s, v, &join(path, k), out);
                        true
                    }
                    None => {
                        out.push(join(path, k));
                        false
                    }
                });
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (k, v) in map.iter_mut() {
                    walk(schemas, additional, v, &join(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    walk(schemas, item_schema, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_documents() {
        let api = OpenApi::build();
        let index = api.index();
        let url = index
            .pointer("/paths/api~1v1/serverRelativeURL")
            .and_then(Value::as_str)
            .unwrap();
        assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
        let hash = url.split("hash=").nth(1).unwrap();
        let (doc, fresh) = api.document("api/v1", Some(hash)).unwrap();
        assert!(fresh);
        let doc: Value = serde_json::from_slice(&doc).unwrap();
        let cm = doc
            .pointer("/components/schemas/io.k8s.api.core.v1.ConfigMap")
            .unwrap();
        assert_eq!(
            cm["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "ConfigMap", "version": "v1"}])
        );
        assert!(
            doc.pointer("/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
                .is_some()
        );
        let patch = doc
            .pointer("/paths/~1api~1v1~1namespaces~1{namespace}~1configmaps~1{name}/patch")
            .unwrap();
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "ConfigMap"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(api.document("apis/coordination.k8s.io/v1", None).is_some());
    }

    #[test]
    fn finds_unknown_fields() {
        let api = OpenApi::build();
        let (schemas, root) = api
            .schema_of(registry::find("", "v1", "configmaps").unwrap())
            .unwrap();
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labelz": {}}, "data": {"k": "v"}, "spec": {}});
        assert_eq!(
            prune_unknown_fields(schemas, &root, &mut object),
            vec!["metadata.labelz", "spec"]
        );
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn publishes_patch_metadata() {
        let api = OpenApi::build();
        let doc: Value = serde_json::from_slice(&api.document("api/v1", None).unwrap().0).unwrap();
        let schemas = &doc["components"]["schemas"];
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let volumes = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        let ports = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["port", "protocol"])
        );
        let selector = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["selector"];
        assert_eq!(selector["x-kubernetes-map-type"], "atomic");
        let meta = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"];
        assert_eq!(
            meta["ownerReferences"]["x-kubernetes-patch-merge-key"],
            "uid"
        );
        assert_eq!(meta["finalizers"]["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(meta["finalizers"]["x-kubernetes-list-type"], "set");
        assert_eq!(
            schemas["io.k8s.api.core.v1.LocalObjectReference"]["x-kubernetes-map-type"],
            "atomic"
        );
    }

    /// Every field the table names for a published definition is a property of it: the
    /// table's names are the names k8s-openapi's schemas use. The table is generated from a
    /// newer release; these fields are newer than the API k1s serves.
    #[test]
    fn patch_metadata_names_published_fields() {
        const NEWER: &[&str] = &["declaredFeatures", "restartPolicyRules"];
        let api = OpenApi::build();
        let mut annotated = 0;
        for (path, doc) in api.docs.read().iter() {
            for (name, schema) in &doc.schemas {
                for field in patchmeta::fields_of(name) {
                    let property = schema.pointer(&format!("/properties/{}", field.name));
                    match property {
                        Some(p) => {
                            for (key, value) in field.extensions() {
                                assert_eq!(
                                    p.get(key),
                                    Some(&value),
                                    "{path} {name}.{}",
                                    field.name
                                );
                            }
                            annotated += 1;
                        }
                        None => assert!(
                            NEWER.contains(&field.name),
                            "{path}: {name} has no field {}",
                            field.name
                        ),
                    }
                }
            }
        }
        assert!(annotated > 100, "{annotated}");
    }
}
