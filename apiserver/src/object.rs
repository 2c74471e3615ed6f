//! Object metadata as upstream maintains it: names, uid, timestamps, resourceVersion, and per-resource defaulting.

use serde_json::{Map, Value, json};

use crate::registry::{NameRule, Resource};
use crate::status::FieldCause;

/// RFC 3339 with second precision, as `metav1.Time` serialises.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// `at` as `metav1.Time` serialises it.
pub fn rfc3339(now: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Set `key` unless the object has it (upstream's `SetDefaults_*` for optional fields).
pub fn default_field(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.entry(key.to_string()).or_insert(value);
    }
}

pub fn metadata(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    metadata(object)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        // Callers hand objects; anything else becomes one rather than a panic.
        *object = json!({});
    }
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn set_meta(object: &mut Value, field: &str, value: Value) {
    metadata_mut(object).insert(field.to_string(), value);
}

pub fn remove_meta(object: &mut Value, field: &str) {
    metadata_mut(object).remove(field);
}

/// Put `kind`, `apiVersion` and `metadata` first, then everything else in its order (upstream's
/// field order, and the layout list responses rely on to skip decoding stored objects).
pub fn with_type_meta(resource: &Resource, object: Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(resource.kind));
    out.insert("apiVersion".into(), json!(resource.api_version()));
    out.insert("metadata".into(), json!({}));
    if let Value::Object(map) = object {
        for (k, v) in map {
            if k != "kind" && k != "apiVersion" {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub(crate) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub(crate) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Upstream's name checks for `rule`, as field causes on `field`.
pub fn validate_name(rule: NameRule, name: &str, field: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    match rule {
        NameRule::Dns1123Label => {
            if name.len() > 63 {
                causes.push(FieldCause::invalid(
                    field,
                    name,
                    "must be no more than 63 characters",
                ));
            }
            if !is_label(&name[..name.len().min(63)]) || name.is_empty() {
                causes.push(FieldCause::invalid(field, name, DNS1123_LABEL_MSG));
            }
        }
        NameRule::Dns1123Subdomain => {
            if name.len() > 253 {
                causes.push(FieldCause::invalid(
                    field,
                    name,
                    "must be no more than 253 characters",
                ));
            }
            if name.is_empty() || !name.split('.').all(is_label) {
                causes.push(FieldCause::invalid(field, name, DNS1123_SUBDOMAIN_MSG));
            }
        }
        NameRule::PathSegment => {
            if name.is_empty() {
                causes.push(FieldCause {
                    message: "Required value: name or generateName is required".into(),
                    ..FieldCause::required(field)
                });
            } else if name == "." || name == ".." {
                causes.push(FieldCause::invalid(
                    field,
                    name,
                    &format!("may not be '{name}'"),
                ));
            } else {
                for bad in ["/", "%"] {
                    if name.contains(bad) {
                        causes.push(FieldCause::invalid(
                            field,
                            name,
                            &format!("may not contain '{bad}'"),
                        ));
                    }
                }
            }
        }
    }
    causes
}

/// Five random characters from upstream's alphabet, for `generateName`.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Set the field at a JSON pointer, creating the objects on the way.
pub fn set_pointer(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(part) = parts.next() {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().expect("just made an object");
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        at = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

/// Whether anything outside `metadata` and `status` differs (what bumps `metadata.generation`).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let outside = |o: &Value| -> Vec<(String, Value)> {
        o.as_object()
            .map(|m| {
                let mut fields: Vec<(String, Value)> = m
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                fields
            })
            .unwrap_or_default()
    };
    outside(old) != outside(new)
}

/// Upstream's limit on the total size of an object's annotations.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What is wrong with a qualified name (`prefix/name` or `name`), as upstream words it.
fn qualified_name_problems(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 characters".to_string());
        }
        if !is_name_part(name) {
            out.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            out.push("prefix part must be non-empty".to_string());
        } else if prefix.len() > 253 || !prefix.split('.').all(is_label) {
            out.push(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
        }
    }
    out
}

/// Upstream's `ValidateObjectMeta` checks of labels, annotations and finalizers.
pub fn validate_metadata(object: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let Some(meta) = metadata(object) else {
        return causes;
    };
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for problem in qualified_name_problems(k) {
                causes.push(FieldCause::invalid("metadata.labels", k, &problem));
            }
            let value = v.as_str().unwrap_or_default();
            if value.len() > 63 {
                causes.push(FieldCause::invalid(
                    "metadata.labels",
                    value,
                    "must be no more than 63 characters",
                ));
            }
            if !value.is_empty() && !is_name_part(value) {
                causes.push(FieldCause::invalid(
                    "metadata.labels",
                    value,
                    LABEL_VALUE_MSG,
                ));
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            for problem in qualified_name_problems(&k.to_lowercase()) {
                causes.push(FieldCause::invalid("metadata.annotations", k, &problem));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > MAX_ANNOTATIONS_BYTES {
            causes.push(FieldCause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: format!("Too long: may not be more than {MAX_ANNOTATIONS_BYTES} bytes"),
            });
        }
    }
    if let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in finalizers.iter().enumerate() {
            let f = f.as_str().unwrap_or_default();
            for problem in qualified_name_problems(f) {
                causes.push(FieldCause::invalid(
                    &format!("metadata.finalizers[{i}]"),
                    f,
                    &problem,
                ));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name(NameRule::Dns1123Subdomain, "a.b-c", "metadata.name").is_empty());
        assert_eq!(
            validate_name(NameRule::Dns1123Subdomain, "Bad_Name", "metadata.name").len(),
            1
        );
        assert_eq!(
            validate_name(NameRule::Dns1123Label, "a.b", "metadata.name").len(),
            1
        );
        assert_eq!(
            validate_name(NameRule::Dns1123Label, &"a".repeat(64), "metadata.name").len(),
            1
        );
        assert!(validate_name(NameRule::Dns1123Label, "kube-system", "metadata.name").is_empty());
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z'));
    }
}
