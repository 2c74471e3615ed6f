//! The JSONPath subset custom resource printer columns use (`.spec.replicas`, `.items[0].name`, `.items[*].name`, `.conditions[?(@.type=="Ready")].status`), evaluated into table cells as upstream's table convertor does.

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.<field> == <value>)]`
    Filter(Vec<String>, Value),
}

/// Parse a simple JSONPath; `None` for anything outside the subset.
fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut steps = Vec::new();
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name.is_empty() {
                    return None;
                }
                steps.push(Step::Field(name));
            }
            '[' => {
                let close = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                i = close + 1;
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(index) = inner.parse::<i64>() {
                    steps.push(Step::Index(index));
                } else if let Some(filter) =
                    inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
                {
                    let (lhs, rhs) = filter.split_once("==")?;
                    let field: Vec<String> = lhs
                        .trim()
                        .strip_prefix("@.")?
                        .split('.')
                        .map(str::to_string)
                        .collect();
                    let rhs = rhs.trim();
                    let value = if let Some(s) = rhs
                        .strip_prefix('"')
                        .and_then(|r| r.strip_suffix('"'))
                        .or_else(|| rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
                    {
                        json!(s)
                    } else {
                        serde_json::from_str(rhs).ok()?
                    };
                    steps.push(Step::Filter(field, value));
                } else if let Some(name) =
                    inner.strip_prefix('\'').and_then(|n| n.strip_suffix('\''))
                {
                    steps.push(Step::Field(name.to_string()));
                } else {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// Every value `path` selects in `object`, in order.
pub fn find<'v>(object: &'v Value, path: &str) -> Vec<&'v Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![object];
    for step in &steps {
        let mut next = Vec::new();
        for value in current {
            match step {
                Step::Field(name) => next.extend(value.get(name)),
                Step::Index(i) => {
                    if let Some(items) = value.as_array() {
                        let index = if *i < 0 { items.len() as i64 + i } else { *i };
                        if let Ok(index) = usize::try_from(index) {
                            next.extend(items.get(index));
                        }
                    }
                }
                Step::All => match value {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter(field, wanted) => {
                    if let Some(items) = value.as_array() {
                        next.extend(items.iter().filter(|item| {
                            let mut at = Some(*item);
                            for f in field {
                                at = at.and_then(|v| v.get(f));
                            }
                            at == Some(wanted)
                        }));
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// Whether `path` is in the subset this module evaluates.
pub fn is_supported(path: &str) -> bool {
    parse(path).is_some_and(|steps| !steps.is_empty())
}

/// A printer column's cell: the first value `path` selects, typed as the column says
/// (`null`, which kubectl prints as `<none>`, when nothing matches or the type differs).
pub fn cell(object: &Value, path: &str, type_: &str) -> Value {
    let Some(value) = find(object, path).into_iter().next() else {
        return Value::Null;
    };
    match type_ {
        "string" => match value {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
        "integer" => match value.as_i64() {
            Some(n) => json!(n),
            None => value
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map_or(Value::Null, |f| json!(f as i64)),
        },
        "number" => value.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => value.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => value.as_str().map_or(Value::Null, |s| json!(s)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_paths() {
        let o = json!({"spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "x"}}});
        assert_eq!(cell(&o, ".spec.replicas", "integer"), json!(3));
        assert_eq!(cell(&o, ".spec.items[1].name", "string"), json!("b"));
        assert_eq!(cell(&o, ".spec.items[*].name", "string"), json!("a"));
        assert_eq!(
            cell(
                &o,
                r#".status.conditions[?(@.type=="Synced")].status"#,
                "string"
            ),
            json!("False")
        );
        assert_eq!(
            cell(&o, r".metadata.labels.app\.kubernetes\.io/name", "string"),
            json!("x")
        );
        assert_eq!(cell(&o, ".spec.missing", "string"), Value::Null);
        assert_eq!(cell(&o, ".spec.replicas", "string"), json!("3"));
        assert!(!is_supported("spec"));
        assert!(is_supported(".spec.replicas"));
    }
}
