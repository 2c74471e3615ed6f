//! OpenAPI v2: `/openapi/v2`, the Swagger 2.0 document of every served group/version (as JSON and as gnostic's `openapi_v2.Document` protobuf), derived from the v3 documents `openapi.rs` builds.
//!
//! kubectl 1.27 and 1.28 ask this document (in protobuf only) whether the server validates
//! fields, before `create -f` and `apply`: a PATCH operation carrying the kind's
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter; without it they
//! fail. Every release reads it for `explain --output plaintext-openapiv2`, and kubectl falls
//! back to its definitions (with the `x-kubernetes-patch-*` extensions) for client-side
//! validation and `apply` patches when v3 is missing. kubectl parses it with kube-openapi's
//! `proto` package, which accepts a `$ref` only as `#/definitions/<name>` with no `type` or
//! `properties` beside it, ignores `allOf` and rejects arrays without `items`; the conversion
//! writes each v3 `allOf: [{$ref}]` as a plain `$ref`, as upstream's v2 document does.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use parking_lot::Mutex;
use prost::Message as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::status::ApiError;

/// The protobuf media type served (and accepted).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The protobuf media type kubectl asks for: `@` makes it unparseable as a response
/// `Content-Type` for Go's `mime`, so it is answered with [`PROTOBUF`], as upstream does.
const PROTOBUF_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The last document built, keyed by the hashes of the v3 documents it came from: built on
/// first use, rebuilt only when a group/version changes (a custom resource definition).
#[derive(Default)]
pub struct Cache(Mutex<Option<(String, Arc<Swagger>)>>);

impl Cache {
    /// The document for the v3 documents whose hashes are `hashes`; `v3` gives their JSON when
    /// it has to be built.
    pub fn get<'a>(
        &self,
        hashes: impl IntoIterator<Item = &'a str>,
        v3: impl FnOnce() -> Vec<Value>,
    ) -> Arc<Swagger> {
        let key = hashes.into_iter().collect::<Vec<_>>().join(",");
        let mut slot = self.0.lock();
        if let Some((built_from, swagger)) = slot.as_ref()
            && *built_from == key
        {
            return swagger.clone();
        }
        let version = format!("v1.{}.0", crate::KUBERNETES_MINOR);
        let swagger = Arc::new(Swagger::build(&v3(), &version));
        *slot = Some((key, swagger.clone()));
        swagger
    }
}

/// The encoded `/openapi/v2` documents.
pub struct Swagger {
    json: Bytes,
    protobuf: Bytes,
    etag: String,
}

impl Swagger {
    /// Build the document from the v3 group/version documents (each with `paths` and
    /// `components.schemas`).
    pub fn build<'a>(v3: impl IntoIterator<Item = &'a Value>, version: &str) -> Swagger {
        let doc = document(v3, version);
        let json = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        let protobuf = Bytes::from(pb::document(&doc).encode_to_vec());
        let etag = Sha512::digest(&json)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>();
        Swagger {
            json,
            protobuf,
            etag: format!("\"{etag}\""),
        }
    }

    /// The body and content type for an `Accept` header, as upstream's handler chooses them:
    /// the first acceptable clause by quality wins, JSON for `*/*`, 406 when none is served.
    pub fn negotiate(&self, accept: &str) -> Result<(Bytes, &'static str), ApiError> {
        let accept = if accept.trim().is_empty() {
            "*/*"
        } else {
            accept
        };
        let mut clauses: Vec<(&str, f32)> = accept
            .split(',')
            .map(|clause| {
                let mut parts = clause.split(';');
                let media = parts.next().unwrap_or("").trim();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.parse().ok())
                    .unwrap_or(1.0);
                (media, q)
            })
            .collect();
        clauses.sort_by(|a, b| b.1.total_cmp(&a.1));
        let served = [
            ("application/json", false),
            (PROTOBUF_DEPRECATED, true),
            (PROTOBUF, true),
        ];
        for (media, q) in clauses {
            if q <= 0.0 {
                continue;
            }
            let (kind, sub) = media.split_once('/').unwrap_or((media, ""));
            for (offered, protobuf) in served {
                let (okind, osub) = offered.split_once('/').unwrap_or((offered, ""));
                if (kind == okind || kind == "*") && (sub == osub || sub == "*") {
                    return Ok(if protobuf {
                        (self.protobuf.clone(), PROTOBUF)
                    } else {
                        (self.json.clone(), "application/json")
                    });
                }
            }
        }
        Err(ApiError {
            code: StatusCode::NOT_ACCEPTABLE,
            reason: "NotAcceptable",
            message: format!(
                "only the following media types are accepted: application/json, {PROTOBUF}"
            ),
            details: None,
        })
    }

    /// The quoted `ETag` of both encodings: upstream's, the SHA-512 of the JSON (responses
    /// vary by `Accept`).
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

/// The Swagger 2.0 document as JSON.
fn document<'a>(v3: impl IntoIterator<Item = &'a Value>, version: &str) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for doc in v3 {
        if let Some(schemas) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, schema) in schemas {
                let mut schema = schema_v2(schema);
                if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
                    && let Value::Object(schema) = &mut schema
                {
                    // Upstream's v2 form (kubectl's v2 `explain` prints `<string>`).
                    schema.insert("type".into(), json!("string"));
                    schema.insert("format".into(), json!("int-or-string"));
                }
                merge_definition(&mut definitions, name, schema);
            }
        }
        if let Some(items) = doc.get("paths").and_then(Value::as_object) {
            for (path, item) in items {
                paths.insert(path.clone(), path_item(item));
            }
        }
    }
    definitions.sort_keys();
    paths.sort_keys();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths,
        "definitions": definitions,
    })
}

/// Definitions shared by several group/versions (ObjectMeta, Status, …) appear once; their
/// `x-kubernetes-group-version-kind` lists are joined.
fn merge_definition(definitions: &mut Map<String, Value>, name: &str, schema: Value) {
    const GVK: &str = "x-kubernetes-group-version-kind";
    let Some(existing) = definitions.get_mut(name) else {
        definitions.insert(name.to_string(), schema);
        return;
    };
    let Some(kinds) = schema.get(GVK).and_then(Value::as_array) else {
        return;
    };
    let Some(existing) = existing.as_object_mut() else {
        return;
    };
    let list = existing.entry(GVK).or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        for kind in kinds {
            if !list.contains(kind) {
                list.push(kind.clone());
            }
        }
    }
}

/// A v3 schema as a v2 schema: `#/definitions/` references, `allOf: [{$ref}]` as `$ref`, and
/// what OpenAPI 2 and kube-openapi's parser cannot express removed as upstream's
/// `ToStructuralOpenAPIV2` removes it for custom resources: the other junctors, and
/// `nullable`, which leaves the value untyped.
fn schema_v2(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let is_true = |v: Option<&Value>| v == Some(&Value::Bool(true));
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "$ref" => {
                let name = value
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                out.insert(key.clone(), json!(format!("#/definitions/{name}")));
            }
            "allOf" => {
                if let Some([one]) = value.as_array().map(Vec::as_slice)
                    && one.get("$ref").is_some()
                    && !map.contains_key("type")
                    && !map.contains_key("properties")
                    && let Value::Object(inner) = schema_v2(one)
                {
                    out.extend(inner);
                }
            }
            "properties" => {
                let props = value
                    .as_object()
                    .map(|p| p.iter().map(|(k, v)| (k.clone(), schema_v2(v))).collect())
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" => {
                out.insert(key.clone(), schema_v2(value));
            }
            "nullable" | "oneOf" | "anyOf" | "not" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    // kube-openapi rejects untyped values with items or properties, and arrays without items.
    if is_true(map.get("nullable")) {
        for key in ["type", "items", "properties"] {
            out.remove(key);
        }
    }
    if is_true(map.get("x-kubernetes-preserve-unknown-fields")) {
        out.remove("items");
        out.remove("properties");
        if out.get("type") == Some(&json!("object")) {
            out.remove("type");
        }
    }
    if out.get("type") == Some(&json!("array")) && !out.contains_key("items") {
        out.remove("type");
    }
    // A nullable field is not required (null is how it is left out).
    let nullable: Vec<&String> = map
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, p)| is_true(p.get("nullable")))
        .map(|(name, _)| name)
        .collect();
    if is_true(schema.pointer("/additionalProperties/nullable")) {
        out.remove("required");
    }
    if let Some(Value::Array(required)) = out.get_mut("required") {
        required.retain(|r| !nullable.iter().any(|n| r.as_str() == Some(n.as_str())));
        if required.is_empty() {
            out.remove("required");
        }
    }
    Value::Object(out)
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    let Some(item) = item.as_object() else {
        return Value::Object(out);
    };
    for (key, value) in item {
        match key.as_str() {
            "parameters" => {
                out.insert(key.clone(), parameters(value, None));
            }
            "get" | "put" | "post" | "delete" | "options" | "head" | "patch" => {
                out.insert(key.clone(), operation(value));
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// v3 parameters (`schema` nested) as v2 ones (`type` inline), the request body first as an
/// `in: body` parameter.
fn parameters(params: &Value, body: Option<&Value>) -> Value {
    let mut out = Vec::new();
    if let Some(body) = body {
        let schema = body
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.values().next())
            .and_then(|m| m.get("schema"))
            .map(schema_v2)
            .unwrap_or_else(|| json!({"type": "object"}));
        out.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
    }
    for param in params.as_array().into_iter().flatten() {
        let Some(param) = param.as_object() else {
            continue;
        };
        let mut p = Map::new();
        for (key, value) in param {
            if key == "schema" {
                if let Some(schema) = value.as_object() {
                    p.extend(schema.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            } else {
                p.insert(key.clone(), value.clone());
            }
        }
        out.push(Value::Object(p));
    }
    Value::Array(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let Some(op) = op.as_object() else {
        return Value::Object(out);
    };
    let body = op.get("requestBody");
    for (key, value) in op {
        match key.as_str() {
            "parameters" | "requestBody" => {}
            "responses" => {
                let responses: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, r)| {
                        let mut response = json!({"description": r.get("description").cloned().unwrap_or(json!(""))});
                        if let Some(schema) = r.pointer("/content/application~1json/schema") {
                            response["schema"] = schema_v2(schema);
                        }
                        (code.clone(), response)
                    })
                    .collect();
                out.insert(key.clone(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    let params = op.get("parameters").cloned().unwrap_or(json!([]));
    out.insert("parameters".into(), parameters(&params, body));
    if let Some(content) = body
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
    {
        out.insert(
            "consumes".into(),
            content.keys().cloned().collect::<Vec<_>>().into(),
        );
    }
    out.insert(
        "produces".into(),
        json!([
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf"
        ]),
    );
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

/// gnostic's `openapi_v2` messages (github.com/google/gnostic-models, `openapiv2/OpenAPIv2.proto`),
/// the fields k1s fills, and their conversion from the JSON document.
mod pb {
    use serde_json::{Map, Value};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Document {
        #[prost(string, tag = "1")]
        pub swagger: String,
        #[prost(message, optional, tag = "2")]
        pub info: Option<Info>,
        #[prost(string, repeated, tag = "5")]
        pub schemes: Vec<String>,
        #[prost(message, optional, tag = "8")]
        pub paths: Option<Paths>,
        #[prost(message, optional, tag = "9")]
        pub definitions: Option<Definitions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Info {
        #[prost(string, tag = "1")]
        pub title: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Paths {
        #[prost(message, repeated, tag = "2")]
        pub path: Vec<NamedPathItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedPathItem {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<PathItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathItem {
        #[prost(message, optional, tag = "2")]
        pub get: Option<Operation>,
        #[prost(message, optional, tag = "3")]
        pub put: Option<Operation>,
        #[prost(message, optional, tag = "4")]
        pub post: Option<Operation>,
        #[prost(message, optional, tag = "5")]
        pub delete: Option<Operation>,
        #[prost(message, optional, tag = "8")]
        pub patch: Option<Operation>,
        #[prost(message, repeated, tag = "9")]
        pub parameters: Vec<ParametersItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, repeated, tag = "1")]
        pub tags: Vec<String>,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "5")]
        pub operation_id: String,
        #[prost(string, repeated, tag = "6")]
        pub produces: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub consumes: Vec<String>,
        #[prost(message, repeated, tag = "8")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, optional, tag = "9")]
        pub responses: Option<Responses>,
        #[prost(string, repeated, tag = "10")]
        pub schemes: Vec<String>,
        #[prost(message, repeated, tag = "13")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ParametersItem {
        #[prost(oneof = "parameters_item::Oneof", tags = "1")]
        pub oneof: Option<parameters_item::Oneof>,
    }

    pub mod parameters_item {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            Parameter(super::Parameter),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Parameter {
        #[prost(oneof = "parameter::Oneof", tags = "1, 2")]
        pub oneof: Option<parameter::Oneof>,
    }

    pub mod parameter {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, boxed, tag = "1")]
            BodyParameter(Box<super::BodyParameter>),
            #[prost(message, tag = "2")]
            NonBodyParameter(super::NonBodyParameter),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BodyParameter {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub r#in: String,
        #[prost(bool, tag = "4")]
        pub required: bool,
        #[prost(message, optional, tag = "5")]
        pub schema: Option<Schema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NonBodyParameter {
        #[prost(oneof = "non_body_parameter::Oneof", tags = "3, 4")]
        pub oneof: Option<non_body_parameter::Oneof>,
    }

    pub mod non_body_parameter {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "3")]
            QueryParameterSubSchema(super::QueryParameterSubSchema),
            #[prost(message, tag = "4")]
            PathParameterSubSchema(super::PathParameterSubSchema),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "6")]
        pub r#type: String,
        #[prost(bool, tag = "20")]
        pub unique_items: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "5")]
        pub r#type: String,
        #[prost(bool, tag = "19")]
        pub unique_items: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Responses {
        #[prost(message, repeated, tag = "1")]
        pub response_code: Vec<NamedResponseValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedResponseValue {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<ResponseValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseValue {
        #[prost(oneof = "response_value::Oneof", tags = "1")]
        pub oneof: Option<response_value::Oneof>,
    }

    pub mod response_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            Response(super::Response),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(message, optional, tag = "2")]
        pub schema: Option<SchemaItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SchemaItem {
        #[prost(oneof = "schema_item::Oneof", tags = "1")]
        pub oneof: Option<schema_item::Oneof>,
    }

    pub mod schema_item {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            Schema(super::Schema),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Definitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedSchema {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Schema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Schema {
        #[prost(string, tag = "1")]
        pub xref: String,
        #[prost(string, tag = "2")]
        pub format: String,
        #[prost(string, tag = "3")]
        pub title: String,
        #[prost(string, tag = "4")]
        pub description: String,
        #[prost(message, optional, tag = "5")]
        pub default: Option<Any>,
        #[prost(double, tag = "7")]
        pub maximum: f64,
        #[prost(double, tag = "9")]
        pub minimum: f64,
        #[prost(int64, tag = "11")]
        pub max_length: i64,
        #[prost(int64, tag = "12")]
        pub min_length: i64,
        #[prost(string, tag = "13")]
        pub pattern: String,
        #[prost(int64, tag = "14")]
        pub max_items: i64,
        #[prost(int64, tag = "15")]
        pub min_items: i64,
        #[prost(bool, tag = "16")]
        pub unique_items: bool,
        #[prost(string, repeated, tag = "19")]
        pub required: Vec<String>,
        #[prost(message, repeated, tag = "20")]
        pub r#enum: Vec<Any>,
        #[prost(message, optional, tag = "21")]
        pub additional_properties: Option<AdditionalPropertiesItem>,
        #[prost(message, optional, tag = "22")]
        pub r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "23")]
        pub items: Option<ItemsItem>,
        #[prost(message, repeated, tag = "24")]
        pub all_of: Vec<Schema>,
        #[prost(message, optional, tag = "25")]
        pub properties: Option<Properties>,
        #[prost(bool, tag = "27")]
        pub read_only: bool,
        #[prost(message, repeated, tag = "31")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AdditionalPropertiesItem {
        #[prost(oneof = "additional_properties_item::Oneof", tags = "1, 2")]
        pub oneof: Option<additional_properties_item::Oneof>,
    }

    pub mod additional_properties_item {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, boxed, tag = "1")]
            Schema(Box<super::Schema>),
            #[prost(bool, tag = "2")]
            Boolean(bool),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ItemsItem {
        #[prost(message, repeated, tag = "1")]
        pub schema: Vec<Schema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Properties {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedAny {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Any>,
    }

    /// A value as YAML text (gnostic leaves `value`, a `google.protobuf.Any`, empty).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "2")]
        pub yaml: String,
    }

    fn text(v: &Value, key: &str) -> String {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn strings(v: &Value, key: &str) -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    }

    fn flag(v: &Value, key: &str) -> bool {
        v.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    fn int(v: &Value, key: &str) -> i64 {
        v.get(key).and_then(Value::as_i64).unwrap_or(0)
    }

    fn float(v: &Value, key: &str) -> f64 {
        v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
    }

    /// JSON is YAML (flow style), which is what kube-openapi and kubectl unmarshal.
    fn any(v: &Value) -> Any {
        Any {
            yaml: serde_json::to_string(v).unwrap_or_default(),
        }
    }

    fn extensions(v: &Value) -> Vec<NamedAny> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("x-"))
            .map(|(k, v)| NamedAny {
                name: k.clone(),
                value: Some(any(v)),
            })
            .collect()
    }

    fn named_schemas(v: Option<&Value>) -> Vec<NamedSchema> {
        v.and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, s)| NamedSchema {
                name: name.clone(),
                value: Some(schema(s)),
            })
            .collect()
    }

    pub fn schema(v: &Value) -> Schema {
        let r#type = match v.get("type") {
            Some(Value::String(t)) => Some(TypeItem {
                value: vec![t.clone()],
            }),
            Some(Value::Array(ts)) => Some(TypeItem {
                value: ts
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
            }),
            _ => None,
        };
        let additional_properties = match v.get("additionalProperties") {
            Some(Value::Bool(b)) => Some(additional_properties_item::Oneof::Boolean(*b)),
            Some(s @ Value::Object(_)) => Some(additional_properties_item::Oneof::Schema(
                Box::new(schema(s)),
            )),
            _ => None,
        }
        .map(|oneof| AdditionalPropertiesItem { oneof: Some(oneof) });
        Schema {
            xref: text(v, "$ref"),
            format: text(v, "format"),
            title: text(v, "title"),
            description: text(v, "description"),
            default: v.get("default").map(any),
            maximum: float(v, "maximum"),
            minimum: float(v, "minimum"),
            max_length: int(v, "maxLength"),
            min_length: int(v, "minLength"),
            pattern: text(v, "pattern"),
            max_items: int(v, "maxItems"),
            min_items: int(v, "minItems"),
            unique_items: flag(v, "uniqueItems"),
            required: strings(v, "required"),
            r#enum: v
                .get("enum")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(any)
                .collect(),
            additional_properties,
            r#type,
            items: v.get("items").filter(|i| i.is_object()).map(|i| ItemsItem {
                schema: vec![schema(i)],
            }),
            all_of: v
                .get("allOf")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(schema)
                .collect(),
            properties: v.get("properties").map(|p| Properties {
                additional_properties: named_schemas(Some(p)),
            }),
            read_only: flag(v, "readOnly"),
            vendor_extension: extensions(v),
        }
    }

    fn parameter(v: &Value) -> ParametersItem {
        let oneof = if text(v, "in") == "body" {
            parameter::Oneof::BodyParameter(Box::new(BodyParameter {
                description: text(v, "description"),
                name: text(v, "name"),
                r#in: text(v, "in"),
                required: flag(v, "required"),
                schema: v.get("schema").map(schema),
            }))
        } else if text(v, "in") == "path" {
            parameter::Oneof::NonBodyParameter(NonBodyParameter {
                oneof: Some(non_body_parameter::Oneof::PathParameterSubSchema(
                    PathParameterSubSchema {
                        required: flag(v, "required"),
                        r#in: text(v, "in"),
                        description: text(v, "description"),
                        name: text(v, "name"),
                        r#type: text(v, "type"),
                        unique_items: flag(v, "uniqueItems"),
                    },
                )),
            })
        } else {
            parameter::Oneof::NonBodyParameter(NonBodyParameter {
                oneof: Some(non_body_parameter::Oneof::QueryParameterSubSchema(
                    QueryParameterSubSchema {
                        required: flag(v, "required"),
                        r#in: text(v, "in"),
                        description: text(v, "description"),
                        name: text(v, "name"),
                        r#type: text(v, "type"),
                        unique_items: flag(v, "uniqueItems"),
                    },
                )),
            })
        };
        ParametersItem {
            oneof: Some(parameters_item::Oneof::Parameter(Parameter {
                oneof: Some(oneof),
            })),
        }
    }

    fn parameters(v: &Value) -> Vec<ParametersItem> {
        v.get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(parameter)
            .collect()
    }

    fn operation(v: Option<&Value>) -> Option<Operation> {
        let v = v?;
        let responses = v
            .get("responses")
            .and_then(Value::as_object)
            .map(|r| Responses {
                response_code: r
                    .iter()
                    .map(|(code, r)| NamedResponseValue {
                        name: code.clone(),
                        value: Some(ResponseValue {
                            oneof: Some(response_value::Oneof::Response(Response {
                                description: text(r, "description"),
                                schema: r.get("schema").map(|s| SchemaItem {
                                    oneof: Some(schema_item::Oneof::Schema(schema(s))),
                                }),
                            })),
                        }),
                    })
                    .collect(),
            });
        Some(Operation {
            tags: strings(v, "tags"),
            description: text(v, "description"),
            operation_id: text(v, "operationId"),
            produces: strings(v, "produces"),
            consumes: strings(v, "consumes"),
            parameters: parameters(v),
            responses,
            schemes: strings(v, "schemes"),
            vendor_extension: extensions(v),
        })
    }

    pub fn document(v: &Value) -> Document {
        let empty = Map::new();
        let paths = v.get("paths").and_then(Value::as_object).unwrap_or(&empty);
        Document {
            swagger: text(v, "swagger"),
            info: v.get("info").map(|i| Info {
                title: text(i, "title"),
                version: text(i, "version"),
            }),
            schemes: strings(v, "schemes"),
            paths: Some(Paths {
                path: paths
                    .iter()
                    .map(|(name, item)| NamedPathItem {
                        name: name.clone(),
                        value: Some(PathItem {
                            get: operation(item.get("get")),
                            put: operation(item.get("put")),
                            post: operation(item.get("post")),
                            delete: operation(item.get("delete")),
                            patch: operation(item.get("patch")),
                            parameters: parameters(item),
                        }),
                    })
                    .collect(),
            }),
            definitions: Some(Definitions {
                additional_properties: named_schemas(v.get("definitions")),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::OpenApi;

    fn v2_json(api: &OpenApi) -> Value {
        serde_json::from_slice(&api.v2().negotiate("application/json").unwrap().0).unwrap()
    }

    /// Every `$ref` under `v` names an existing definition, and sits alone as kube-openapi's
    /// v2 parser requires (no `type`, no `properties` beside it); no `allOf` is left.
    fn check_refs(v: &Value, definitions: &Map<String, Value>, at: &str) {
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    let name = r.strip_prefix("#/definitions/").expect(at);
                    assert!(definitions.contains_key(name), "{at}: {r}");
                    assert!(
                        !map.contains_key("type") && !map.contains_key("properties"),
                        "{at}"
                    );
                }
                assert!(!map.contains_key("allOf"), "{at}");
                for (k, v) in map {
                    match (k.as_str(), v) {
                        // Property names (JSONSchemaProps has `$ref` and `allOf` properties).
                        ("properties" | "definitions" | "paths", Value::Object(named)) => {
                            for (name, v) in named {
                                check_refs(v, definitions, &format!("{at}/{k}/{name}"));
                            }
                        }
                        _ => check_refs(v, definitions, &format!("{at}/{k}")),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| check_refs(v, definitions, at)),
            _ => {}
        }
    }

    #[test]
    fn swagger_document_shape() {
        let api = OpenApi::build();
        let doc = v2_json(&api);
        assert_eq!(doc["swagger"], "2.0");
        let definitions = doc["definitions"].as_object().unwrap();
        check_refs(&doc, definitions, "");

        let deployment = &definitions["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(
            deployment["properties"]["spec"],
            json!({"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec", "description": "Specification of the desired behavior of the Deployment."})
        );
        let containers = &definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(
            containers["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container"
        );

        // The fieldValidation probe: a PATCH operation with the kind and an inline query
        // parameter.
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        let params = patch["parameters"].as_array().unwrap();
        assert_eq!(params[0]["in"], "body");
        assert_eq!(
            params[0]["schema"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
        );
        assert!(params.iter().any(|p| p["name"] == "fieldValidation"
            && p["in"] == "query"
            && p["type"] == "string"));
        assert!(
            patch["consumes"]
                .as_array()
                .unwrap()
                .contains(&json!("application/strategic-merge-patch+json"))
        );
        assert_eq!(
            patch["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
        let path_params =
            doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["parameters"]
                .as_array()
                .unwrap();
        assert!(
            path_params
                .iter()
                .any(|p| p["name"] == "namespace" && p["in"] == "path" && p["required"] == true)
        );
        // Definitions shared by several group/versions appear once.
        assert!(definitions.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(definitions.contains_key("io.k8s.api.coordination.v1.Lease"));
        assert_eq!(
            definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
            "int-or-string"
        );
    }

    #[test]
    fn custom_schemas_lose_what_v2_cannot_express() {
        let v3 = json!({
            "type": "object",
            "required": ["a", "b", "c"],
            "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}},
                "c": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"d": {"type": "string"}}},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "meta": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}},
            },
        });
        assert_eq!(
            schema_v2(&v3),
            json!({
                "type": "object",
                "required": ["b", "c"],
                "properties": {
                    "a": {},
                    "b": {"x-kubernetes-preserve-unknown-fields": true},
                    "c": {"x-kubernetes-preserve-unknown-fields": true},
                    "port": {"x-kubernetes-int-or-string": true},
                    "meta": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "default": {}},
                },
            })
        );
    }

    #[test]
    fn protobuf_encoding_decodes() {
        let api = OpenApi::build();
        let (bytes, content_type) = api
            .v2()
            .negotiate("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
            .unwrap();
        assert_eq!(content_type, PROTOBUF);
        let doc = pb::Document::decode(bytes.as_ref()).unwrap();
        assert_eq!(doc.swagger, "2.0");
        let json = v2_json(&api);
        assert_eq!(
            doc.definitions
                .as_ref()
                .unwrap()
                .additional_properties
                .len(),
            json["definitions"].as_object().unwrap().len()
        );
        assert_eq!(
            doc.paths.as_ref().unwrap().path.len(),
            json["paths"].as_object().unwrap().len()
        );

        let definition = |name: &str| {
            doc.definitions
                .as_ref()
                .unwrap()
                .additional_properties
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.value.clone())
                .unwrap()
        };
        let deployment = definition("io.k8s.api.apps.v1.Deployment");
        let gvk = deployment
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .unwrap();
        let gvk: Value = serde_json::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(
            gvk,
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(deployment.r#type.unwrap().value, ["object"]);

        let pod_spec = definition("io.k8s.api.core.v1.PodSpec");
        let containers = pod_spec
            .properties
            .unwrap()
            .additional_properties
            .into_iter()
            .find(|p| p.name == "containers")
            .and_then(|p| p.value)
            .unwrap();
        assert_eq!(containers.r#type.unwrap().value, ["array"]);
        assert_eq!(
            containers.items.unwrap().schema[0].xref,
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        let merge_key = containers
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-patch-merge-key")
            .unwrap();
        assert_eq!(merge_key.value.as_ref().unwrap().yaml, "\"name\"");

        let labels = definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .properties
            .unwrap()
            .additional_properties
            .into_iter()
            .find(|p| p.name == "labels")
            .and_then(|p| p.value)
            .unwrap();
        match labels.additional_properties.unwrap().oneof {
            Some(pb::additional_properties_item::Oneof::Schema(s)) => {
                assert_eq!(s.r#type.unwrap().value, ["string"])
            }
            other => panic!("{other:?}"),
        }

        let patch = doc
            .paths
            .as_ref()
            .unwrap()
            .path
            .iter()
            .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            .and_then(|p| p.value.as_ref())
            .and_then(|p| p.patch.as_ref())
            .unwrap();
        let query: Vec<&str> = patch
            .parameters
            .iter()
            .filter_map(|p| match &p.oneof {
                Some(pb::parameters_item::Oneof::Parameter(pb::Parameter {
                    oneof:
                        Some(pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter {
                            oneof: Some(pb::non_body_parameter::Oneof::QueryParameterSubSchema(q)),
                        })),
                })) => Some(q.name.as_str()),
                _ => None,
            })
            .collect();
        assert!(query.contains(&"fieldValidation"), "{query:?}");
        assert!(
            patch
                .vendor_extension
                .iter()
                .any(|e| e.name == "x-kubernetes-group-version-kind"
                    && e.value.as_ref().unwrap().yaml.contains("\"Deployment\""))
        );
    }

    #[test]
    fn negotiates_as_upstream() {
        let api = OpenApi::build();
        let v2 = api.v2();
        let served = |accept: &str| v2.negotiate(accept).map(|(_, t)| t).map_err(|e| e.code);
        assert_eq!(served("application/json"), Ok("application/json"));
        assert_eq!(served("*/*"), Ok("application/json"));
        assert_eq!(served(""), Ok("application/json"));
        assert_eq!(served("application/*"), Ok("application/json"));
        assert_eq!(served(PROTOBUF_DEPRECATED), Ok(PROTOBUF));
        assert_eq!(served(PROTOBUF), Ok(PROTOBUF));
        assert_eq!(
            served(&format!("application/json;q=0.5, {PROTOBUF_DEPRECATED}")),
            Ok(PROTOBUF)
        );
        assert_eq!(served("text/html"), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(v2.etag().len(), 130);
        assert!(v2.etag().starts_with('"') && v2.etag().ends_with('"'));
        // Built once: the same document until a group/version changes.
        assert!(std::sync::Arc::ptr_eq(&v2, &api.v2()));
    }
}
