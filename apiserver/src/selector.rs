//! Label and field selectors, parsed as upstream parses them (`k=v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`).

use serde_json::Value;

use crate::status::{ApiError, ApiResult};
use crate::strategy::FieldLabel;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Split on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl LabelSelector {
    pub fn parse(input: &str) -> ApiResult<LabelSelector> {
        let bad =
            |detail: &str| ApiError::bad_request(format!("unable to parse requirement: {detail}"));
        let mut reqs = Vec::new();
        for term in split_terms(input)
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, set, negate)) = set_term(term) {
                let values: Vec<String> = set
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                if values.is_empty() {
                    return Err(bad(&format!(
                        "for 'in', 'notin' operators, values set can't be empty: {term:?}"
                    )));
                }
                if negate {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                }
            } else {
                Requirement::Exists(term.to_string())
            };
            let (key, values): (&str, Vec<&str>) = match &req {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, vec![v.as_str()]),
                Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                    (k, vs.iter().map(String::as_str).collect())
                }
                Requirement::Exists(k) | Requirement::NotExists(k) => (k, vec![]),
            };
            if !valid_key(key) {
                return Err(bad(&format!("invalid label key {key:?}")));
            }
            if let Some(v) = values.iter().find(|v| !valid_value(v)) {
                return Err(bad(&format!("invalid label value: {v:?}")));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let label = |k: &str| {
            object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        })
    }
}

/// `key in (a,b)` / `key notin (a,b)` → (key, "a,b", negated).
fn set_term(term: &str) -> Option<(String, &str, bool)> {
    let open = term.find('(')?;
    let close = term.rfind(')').filter(|&close| close > open)?;
    let head = term[..open].trim();
    let set = &term[open + 1..close];
    if let Some(key) = head.strip_suffix(" notin") {
        Some((key.trim().to_string(), set, true))
    } else {
        head.strip_suffix(" in")
            .map(|key| (key.trim().to_string(), set, false))
    }
}

/// One `field=value` or `field!=value` term, with where the field lives in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    pointer: String,
    default: &'static str,
    equal: bool,
    value: String,
}

/// A field selector over `metadata.name`, `metadata.namespace` and the fields the resource's
/// strategy declares (pods' `spec.nodeName`, events' `involvedObject.*`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldTerm>);

impl FieldSelector {
    pub fn parse(input: &str, labels: &[FieldLabel]) -> ApiResult<FieldSelector> {
        let mut terms = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                )));
            };
            let (pointer, default) = match field {
                "metadata.name" => ("/metadata/name".to_string(), ""),
                "metadata.namespace" => ("/metadata/namespace".to_string(), ""),
                _ => match labels.iter().find(|l| l.name == field) {
                    Some(label) => (label.pointer.to_string(), label.default),
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {field}"
                        )));
                    }
                },
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                pointer,
                default,
                equal,
                value: value.to_string(),
            });
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|t| {
            let actual = match object.pointer(&t.pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => t.default.to_string(),
            };
            (actual == t.value) == t.equal
        })
    }

    /// The single name this selector pins, if any (lets a watch or list read one key).
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|t| t.field == "metadata.name" && t.equal)
            .map(|t| t.value.as_str())
    }
}

/// A `metav1.LabelSelector` object as the selector string upstream prints for it (requirements
/// sorted by key; `matchLabels` as `k=v`).
pub fn label_selector_string(selector: &Value) -> String {
    let mut terms: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            terms.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expr["key"].as_str().unwrap_or_default().to_string();
        let mut values: Vec<&str> = expr["values"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        values.sort_unstable();
        let term = match expr["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        terms.push((key, term));
    }
    terms.sort_by(|a, b| a.0.cmp(&b.0));
    terms
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selectors() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("env notin (prod)", true),
            ("tier", true),
            ("!tier", false),
            ("!env,app in (web)", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in ()").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=a", &[])
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace!=ns", &[])
                .unwrap()
                .matches(&o)
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a", &[]).unwrap().name(),
            Some("a")
        );
        let err = FieldSelector::parse("spec.foo=x", &[]).unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
