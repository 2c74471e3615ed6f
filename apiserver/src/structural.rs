//! Structural schemas of custom resources: defaulting, dropping nulls, and validation against `openAPIV3Schema` with upstream's messages.

use serde_json::{Map, Value, json};

use crate::status::FieldCause;

/// Deepest nesting walked; deeper values are left alone (and a schema that deep is refused
/// when the CRD is written).
const MAX_DEPTH: usize = 64;

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `%v`-ish rendering of a value in a message (strings quoted).
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Fill in `default`s of missing fields and drop `null`s of fields that are not `nullable`,
/// as upstream does before validation (and when reading from storage).
pub fn default_and_drop_nulls(schema: &Value, value: &mut Value) {
    walk_defaults(schema, value, 0);
}

fn walk_defaults(schema: &Value, value: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = schema.get("properties") {
                // Nulls of non-nullable fields go (then a default may apply).
                map.retain(|k, v| {
                    !(v.is_null()
                        && properties
                            .get(k)
                            .and_then(|p| p.get("nullable"))
                            .and_then(Value::as_bool)
                            != Some(true))
                });
                for (name, property) in properties {
                    if !map.contains_key(name)
                        && let Some(default) = property.get("default")
                    {
                        map.insert(name.clone(), default.clone());
                    }
                }
                for (name, property) in properties {
                    if let Some(child) = map.get_mut(name) {
                        walk_defaults(property, child, depth + 1);
                    }
                }
            } else if let Some(values) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in map.values_mut() {
                    walk_defaults(values, child, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    walk_defaults(item_schema, item, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Validate `value` at `path` against `schema`, appending a cause per violation.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<FieldCause>) {
    validate_at(schema, value, path, causes, 0);
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldCause {
    FieldCause::invalid_raw(path, &render(value), &detail)
}

fn validate_at(
    schema: &Value,
    value: &Value,
    path: &str,
    causes: &mut Vec<FieldCause>,
    depth: usize,
) {
    if depth > MAX_DEPTH || !schema.is_object() {
        return;
    }
    let body = if path.is_empty() {
        "body".to_string()
    } else {
        path.to_string()
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true)
            && schema.get("type").is_some()
        {
            causes.push(invalid(
                path,
                value,
                format!(
                    "{body} in body must be of type {}: \"null\"",
                    schema["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
        if !matches!(type_name(value), "integer" | "string") {
            causes.push(invalid(
                path,
                value,
                format!(
                    "{body} in body must be of type integer,string: {:?}",
                    type_name(value)
                ),
            ));
            return;
        }
    } else if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        let got = type_name(value);
        let ok = got == wanted || (wanted == "number" && got == "integer");
        if !ok {
            causes.push(invalid(
                path,
                &json!(got),
                format!("{body} in body must be of type {wanted}: {got:?}"),
            ));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(render).collect();
        causes.push(FieldCause {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render(value),
                list.join(", ")
            ),
        });
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let exclusive = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && ((exclusive("exclusiveMinimum") && x <= min) || x < min)
            {
                let relation = if exclusive("exclusiveMinimum") {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                causes.push(invalid(
                    path,
                    value,
                    format!("{body} in body should be {relation} {}", schema["minimum"]),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && ((exclusive("exclusiveMaximum") && x >= max) || x > max)
            {
                let relation = if exclusive("exclusiveMaximum") {
                    "less than"
                } else {
                    "less than or equal to"
                };
                causes.push(invalid(
                    path,
                    value,
                    format!("{body} in body should be {relation} {}", schema["maximum"]),
                ));
            }
            if let Some(factor) = schema.get("multipleOf").and_then(Value::as_f64)
                && factor > 0.0
                && (x / factor).fract().abs() > 1e-9
            {
                causes.push(invalid(
                    path,
                    value,
                    format!(
                        "{body} in body should be a multiple of {}",
                        schema["multipleOf"]
                    ),
                ));
            }
        }
        Value::String(s) if !int_or_string || schema.get("type").is_some() => {
            let length = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && length < min
            {
                causes.push(invalid(
                    path,
                    value,
                    format!("{body} in body should be at least {min} chars long"),
                ));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && length > max
            {
                causes.push(FieldCause {
                    reason: "FieldValueTooLong",
                    field: path.to_string(),
                    message: format!("Too long: may not be more than {max} bytes"),
                });
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                match regex_lite::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => causes.push(invalid(
                        path,
                        value,
                        format!("{body} in body should match '{pattern}'"),
                    )),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && count < min
            {
                causes.push(invalid(
                    path,
                    &json!(count),
                    format!("{body} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && count > max
            {
                causes.push(FieldCause {
                    reason: "FieldValueTooMany",
                    field: path.to_string(),
                    message: format!("Too many: {count}: must have at most {max} items"),
                });
            }
            if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true)
                || schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set")
            {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        causes.push(FieldCause::duplicate(
                            &format!("{path}[{i}]"),
                            &render(item),
                        ));
                    }
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(
                        item_schema,
                        item,
                        &format!("{path}[{i}]"),
                        causes,
                        depth + 1,
                    );
                }
            }
        }
        Value::Object(map) => validate_object(schema, map, path, &body, causes, depth),
        _ => {}
    }
}

fn validate_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    body: &str,
    causes: &mut Vec<FieldCause>,
    depth: usize,
) {
    if let Some(Value::Array(required)) = schema.get("required") {
        for field in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(field) {
                causes.push(FieldCause::required(&join(path, field)));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        causes.push(invalid(
            path,
            &json!(count),
            format!("{body} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        causes.push(FieldCause {
            reason: "FieldValueTooMany",
            field: path.to_string(),
            message: format!("Too many: {count}: must have at most {max} items"),
        });
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (k, v) in map {
        match properties.and_then(|p| p.get(k)) {
            Some(property) => validate_at(property, v, &join(path, k), causes, depth + 1),
            None => {
                if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    validate_at(values, v, &join(path, k), causes, depth + 1);
                }
            }
        }
    }
}

/// Every `x-kubernetes-validations` rule in a schema, with where it is (as upstream names the
/// place in the CRD: `...openAPIV3Schema.properties[spec]`).
pub fn validation_rules(schema: &Value, at: &str, out: &mut Vec<(String, String)>) {
    collect_rules(schema, at, out, 0);
}

fn collect_rules(schema: &Value, at: &str, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(Value::Array(rules)) = schema.get("x-kubernetes-validations") {
        for rule in rules {
            if let Some(text) = rule.get("rule").and_then(Value::as_str) {
                out.push((at.to_string(), text.to_string()));
            }
        }
    }
    if let Some(Value::Object(properties)) = schema.get("properties") {
        for (k, v) in properties {
            collect_rules(v, &format!("{at}.properties[{k}]"), out, depth + 1);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_rules(items, &format!("{at}.items"), out, depth + 1);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        collect_rules(
            values,
            &format!("{at}.additionalProperties"),
            out,
            depth + 1,
        );
    }
}

/// How deep a schema nests (for refusing pathological ones).
pub fn depth(schema: &Value) -> usize {
    fn go(schema: &Value, d: usize) -> usize {
        if d > MAX_DEPTH {
            return d;
        }
        let mut deepest = d;
        if let Some(Value::Object(properties)) = schema.get("properties") {
            for v in properties.values() {
                deepest = deepest.max(go(v, d + 1));
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = schema.get(key).filter(|c| c.is_object()) {
                deepest = deepest.max(go(child, d + 1));
            }
        }
        deepest
    }
    go(schema, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
            "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            "port": {"x-kubernetes-int-or-string": true}
        }}}})
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let mut v = json!({"spec": {"size": 2, "name": null}});
        default_and_drop_nulls(&schema(), &mut v);
        assert_eq!(v, json!({"spec": {"size": 2, "color": "red"}}));
    }

    #[test]
    fn violations_read_like_upstream() {
        let mut causes = Vec::new();
        let v = json!({"spec": {"size": "x", "color": "pink", "name": "ABCD", "tags": ["a", "b", "c"], "port": true}});
        validate(&schema(), &v, "", &mut causes);
        let messages: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            messages,
            [
                "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
                "spec.name: Too long: may not be more than 3 bytes",
                "spec.name: Invalid value: \"ABCD\": spec.name in body should match '^[a-z]+$'",
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.port: Invalid value: true: spec.port in body must be of type integer,string: \"boolean\"",
            ]
        );
        let mut causes = Vec::new();
        validate(&schema(), &json!({"spec": {"size": 0}}), "", &mut causes);
        assert_eq!(
            causes[0].message,
            "Invalid value: 0: spec.size in body should be greater than or equal to 1"
        );
        let mut causes = Vec::new();
        validate(&schema(), &json!({"spec": {}}), "", &mut causes);
        assert_eq!(
            (causes[0].field.as_str(), causes[0].message.as_str()),
            ("spec.size", "Required value")
        );
    }

    #[test]
    fn rules_are_found_with_their_place() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.a < self.b"}]}}});
        let mut rules = Vec::new();
        validation_rules(&s, "spec.versions[0].schema.openAPIV3Schema", &mut rules);
        assert_eq!(
            rules,
            [(
                "spec.versions[0].schema.openAPIV3Schema.properties[spec]".to_string(),
                "self.a < self.b".to_string()
            )]
        );
    }
}
