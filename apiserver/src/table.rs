//! `meta.k8s.io/v1` Tables, as `kubectl get` asks for them: NAME, the resource's columns, AGE, and each row's PartialObjectMetadata.

use serde_json::{Map, Value, json};

use crate::registry::Resource;

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

#[cfg(test)]
mod tests {
    use super::human_duration;

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
}
