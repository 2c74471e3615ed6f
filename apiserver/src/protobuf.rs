//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as kubectl's typed clients send them, decoded into the same JSON objects the rest of the server handles.
//!
//! The wire format is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` envelope whose
//! `raw` field holds the typed message. Each served kind has a converter below; a kind without
//! one gets 415, so a client never has its fields silently dropped.

use base64::Engine;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::registry::Resource;
use crate::status::{ApiError, ApiResult};

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

fn bad(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf request body: {detail}"))
}

/// Decode a protobuf body for `resource` into its JSON form.
pub fn decode(resource: &Resource, body: &[u8]) -> ApiResult<Value> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let unknown = Unknown::decode(envelope).map_err(bad)?;
    let raw = unknown.raw.unwrap_or_default();
    let type_meta = unknown.type_meta.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_else(|| resource.kind.to_string());
    let api_version = type_meta
        .api_version
        .unwrap_or_else(|| resource.api_version());
    let mut object = match (resource.group, kind.as_str()) {
        ("", "Namespace") => namespace(core::Namespace::decode(raw.as_slice()).map_err(bad)?),
        ("", "ConfigMap") => config_map(core::ConfigMap::decode(raw.as_slice()).map_err(bad)?),
        ("", "Secret") => secret(core::Secret::decode(raw.as_slice()).map_err(bad)?),
        ("", "ServiceAccount") => {
            service_account(core::ServiceAccount::decode(raw.as_slice()).map_err(bad)?)
        }
        ("coordination.k8s.io", "Lease") => {
            lease(coordination::Lease::decode(raw.as_slice()).map_err(bad)?)
        }
        _ => return Err(ApiError::unsupported_media_type(MEDIA_TYPE)),
    };
    object.insert("kind".into(), json!(kind));
    object.insert("apiVersion".into(), json!(api_version));
    Ok(Value::Object(object))
}

fn b64(bytes: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn put<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    // Go's generated marshallers write every string field, so an empty string means unset.
    match value.map(Into::into) {
        Some(Value::String(s)) if s.is_empty() => {}
        Some(v) => {
            map.insert(key.to_string(), v);
        }
        None => {}
    }
}

fn put_map<V: Clone + Into<Value>>(
    map: &mut Map<String, Value>,
    key: &str,
    entries: &std::collections::BTreeMap<String, V>,
) {
    if !entries.is_empty() {
        let object: Map<String, Value> = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        map.insert(key.to_string(), Value::Object(object));
    }
}

fn object_meta(m: Option<meta::ObjectMeta>) -> Value {
    let m = m.unwrap_or_default();
    let mut out = Map::new();
    put(&mut out, "name", m.name);
    put(&mut out, "generateName", m.generate_name);
    put(&mut out, "namespace", m.namespace);
    put(&mut out, "resourceVersion", m.resource_version);
    put_map(&mut out, "labels", &m.labels);
    put_map(&mut out, "annotations", &m.annotations);
    if !m.owner_references.is_empty() {
        let refs: Vec<Value> = m
            .owner_references
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                put(&mut o, "apiVersion", r.api_version);
                put(&mut o, "kind", r.kind);
                put(&mut o, "name", r.name);
                put(&mut o, "uid", r.uid);
                put(&mut o, "controller", r.controller);
                put(&mut o, "blockOwnerDeletion", r.block_owner_deletion);
                Value::Object(o)
            })
            .collect();
        out.insert("ownerReferences".into(), Value::Array(refs));
    }
    if !m.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(m.finalizers));
    }
    Value::Object(out)
}

fn with_meta(m: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(m));
    out
}

fn namespace(ns: core::Namespace) -> Map<String, Value> {
    let mut out = with_meta(ns.metadata);
    if let Some(spec) = ns.spec.filter(|s| !s.finalizers.is_empty()) {
        out.insert("spec".into(), json!({"finalizers": spec.finalizers}));
    }
    out
}

fn config_map(cm: core::ConfigMap) -> Map<String, Value> {
    let mut out = with_meta(cm.metadata);
    put(&mut out, "immutable", cm.immutable);
    put_map(&mut out, "data", &cm.data);
    if !cm.binary_data.is_empty() {
        let data: Map<String, Value> = cm
            .binary_data
            .iter()
            .map(|(k, v)| (k.clone(), b64(v)))
            .collect();
        out.insert("binaryData".into(), Value::Object(data));
    }
    out
}

fn secret(s: core::Secret) -> Map<String, Value> {
    let mut out = with_meta(s.metadata);
    put(&mut out, "immutable", s.immutable);
    if !s.data.is_empty() {
        let data: Map<String, Value> = s.data.iter().map(|(k, v)| (k.clone(), b64(v))).collect();
        out.insert("data".into(), Value::Object(data));
    }
    put_map(&mut out, "stringData", &s.string_data);
    put(&mut out, "type", s.r#type);
    out
}

fn service_account(sa: core::ServiceAccount) -> Map<String, Value> {
    let mut out = with_meta(sa.metadata);
    if !sa.secrets.is_empty() {
        let secrets: Vec<Value> = sa
            .secrets
            .into_iter()
            .map(|r| json!({"name": r.name.unwrap_or_default()}))
            .collect();
        out.insert("secrets".into(), Value::Array(secrets));
    }
    if !sa.image_pull_secrets.is_empty() {
        let secrets: Vec<Value> = sa
            .image_pull_secrets
            .into_iter()
            .map(|r| json!({"name": r.name.unwrap_or_default()}))
            .collect();
        out.insert("imagePullSecrets".into(), Value::Array(secrets));
    }
    put(
        &mut out,
        "automountServiceAccountToken",
        sa.automount_service_account_token,
    );
    out
}

fn lease(l: coordination::Lease) -> Map<String, Value> {
    let mut out = with_meta(l.metadata);
    if let Some(spec) = l.spec {
        let mut s = Map::new();
        put(&mut s, "holderIdentity", spec.holder_identity);
        put(&mut s, "leaseDurationSeconds", spec.lease_duration_seconds);
        put(&mut s, "leaseTransitions", spec.lease_transitions);
        out.insert("spec".into(), Value::Object(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    fn envelope(kind: &str, api_version: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    #[test]
    fn decodes_a_configmap_as_kubectl_sends_it() {
        let cm = core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                name: Some("c".into()),
                ..Default::default()
            }),
            data: [("a".to_string(), "1".to_string())].into(),
            binary_data: [("b".to_string(), vec![0u8, 1, 2])].into(),
            ..Default::default()
        };
        let body = envelope("ConfigMap", "v1", cm.encode_to_vec());
        let got = decode(registry::find("", "v1", "configmaps").unwrap(), &body).unwrap();
        assert_eq!(
            got,
            json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": "AAEC"}, "kind": "ConfigMap", "apiVersion": "v1"})
        );
    }

    #[test]
    fn garbage_is_a_bad_request_and_unknown_kinds_are_415() {
        let cm = registry::find("", "v1", "configmaps").unwrap();
        assert_eq!(decode(cm, b"nope").unwrap_err().code.as_u16(), 400);
        assert_eq!(
            decode(cm, b"k8s\0\xff\xff\xff").unwrap_err().code.as_u16(),
            400
        );
        assert_eq!(
            decode(cm, &envelope("Pod", "v1", vec![]))
                .unwrap_err()
                .code
                .as_u16(),
            415
        );
    }
}
