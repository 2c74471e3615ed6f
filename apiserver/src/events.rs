//! events.k8s.io/v1 events: the same stored objects as core/v1 events, converted field by field on every read and write.

use k8s_openapi::api::events::v1 as events;
use serde_json::{Map, Value, json};

use crate::object::meta_str;
use crate::registry::{BASE, Conversion, Resource};
use crate::status::{ApiError, ApiResult, FieldCause};
use crate::strategy::{FieldLabel, Strategy};

/// Field pairs (events.k8s.io/v1, core/v1) that carry the same value under another name.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// Fields with the same name in both versions.
const SHARED: &[&str] = &[
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
];

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Object(m) => !m.is_empty(),
        Value::Number(n) => n.as_i64() != Some(0),
        _ => true,
    }
}

/// A core/v1 event as events.k8s.io/v1 shows it.
fn from_stored(core: Value) -> Value {
    let Value::Object(mut core) = core else {
        return core;
    };
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert(
        "metadata".into(),
        core.remove("metadata").unwrap_or(json!({})),
    );
    // Upstream's field order; eventTime is always written (a null MicroTime).
    let order = [
        "eventTime",
        "series",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "regarding",
        "related",
        "note",
        "type",
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    ];
    for field in order {
        let stored_name = RENAMED
            .iter()
            .find(|(new, _)| *new == field)
            .map_or(field, |(_, old)| old);
        match core.remove(stored_name) {
            Some(v) if non_empty(&v) => {
                out.insert(field.into(), v);
            }
            _ if field == "eventTime" => {
                out.insert(field.into(), Value::Null);
            }
            _ if field == "regarding" => {
                out.insert(field.into(), json!({}));
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 event in its stored (core/v1) form.
fn to_stored(event: Value) -> Value {
    let Value::Object(mut event) = event else {
        return event;
    };
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("v1"));
    out.insert(
        "metadata".into(),
        event.remove("metadata").unwrap_or(json!({})),
    );
    for (new, old) in RENAMED {
        if let Some(v) = event.remove(*new).filter(non_empty) {
            out.insert((*old).into(), v);
        }
    }
    for field in SHARED {
        if let Some(v) = event.remove(*field).filter(non_empty) {
            out.insert((*field).into(), v);
        }
    }
    // Core events always have these (non-omitempty upstream).
    out.entry("involvedObject").or_insert(json!({}));
    out.entry("source").or_insert(json!({}));
    out.entry("firstTimestamp").or_insert(Value::Null);
    out.entry("lastTimestamp").or_insert(Value::Null);
    out.entry("eventTime").or_insert(Value::Null);
    out.entry("reportingComponent").or_insert(json!(""));
    out.entry("reportingInstance").or_insert(json!(""));
    Value::Object(out)
}

static CONVERSION: Conversion = Conversion {
    prefix: "/registry/core/events/",
    from_stored,
    to_stored,
};

/// events.k8s.io/v1: `ValidateEventCreate` for the new API's required fields.
#[derive(Debug)]
pub struct Events;
pub static EVENTS: Events = Events;

fn validate(event: &Value) -> ApiResult<()> {
    let name = meta_str(event, "name").unwrap_or_default();
    let mut causes = Vec::new();
    let missing = |field: &str| event.get(field).is_none_or(|v| !non_empty(v));
    for field in [
        "eventTime",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        if missing(field) {
            causes.push(FieldCause::required(field));
        }
    }
    match event.get("type").and_then(Value::as_str) {
        Some("Normal" | "Warning") => {}
        Some(other) => causes.push(FieldCause::not_supported(
            "type",
            other,
            &["Normal", "Warning"],
        )),
        None => causes.push(FieldCause::required("type")),
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("events.k8s.io", "Event", name, causes))
    }
}

impl Strategy for Events {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[
            FieldLabel {
                name: "regarding.kind",
                pointer: "/regarding/kind",
                default: "",
            },
            FieldLabel {
                name: "regarding.namespace",
                pointer: "/regarding/namespace",
                default: "",
            },
            FieldLabel {
                name: "regarding.name",
                pointer: "/regarding/name",
                default: "",
            },
            FieldLabel {
                name: "regarding.uid",
                pointer: "/regarding/uid",
                default: "",
            },
            FieldLabel {
                name: "regarding.apiVersion",
                pointer: "/regarding/apiVersion",
                default: "",
            },
            FieldLabel {
                name: "regarding.resourceVersion",
                pointer: "/regarding/resourceVersion",
                default: "",
            },
            FieldLabel {
                name: "regarding.fieldPath",
                pointer: "/regarding/fieldPath",
                default: "",
            },
            FieldLabel {
                name: "reason",
                pointer: "/reason",
                default: "",
            },
            FieldLabel {
                name: "reportingController",
                pointer: "/reportingController",
                default: "",
            },
            FieldLabel {
                name: "type",
                pointer: "/type",
                default: "",
            },
        ]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        validate(object)
    }

    fn prepare_update(&self, _old: &Value, object: &mut Value) -> ApiResult<()> {
        validate(object)
    }
}

/// The resources this module serves.
pub static RESOURCES: &[Resource] = &[Resource {
    group: "events.k8s.io",
    kind: "Event",
    plural: "events",
    singular: "event",
    // No `ev`: kubectl would warn on every `kubectl get ev` that the short name also matches
    // this lower-priority resource.
    columns: crate::core::EVENT_COLUMNS,
    strategy: &EVENTS,
    expires: true,
    schema: |g| g.subschema_for::<events::Event>(),
    conversion: Some(&CONVERSION),
    ..BASE
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let new = json!({
            "kind": "Event", "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"},
            "reportingController": "k1s.io/test", "reportingInstance": "node-1",
            "action": "Testing", "reason": "Tested",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "note": "hello", "type": "Normal",
        });
        let stored = to_stored(new.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "hello");
        assert_eq!(stored["reportingComponent"], "k1s.io/test");
        assert_eq!(from_stored(stored), new);
    }

    #[test]
    fn core_events_convert() {
        let core = json!({
            "kind": "Event", "apiVersion": "v1", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node", "name": "n"}, "reason": "Starting",
            "message": "Starting kubelet.", "source": {"component": "kubelet", "host": "n"},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
            "count": 1, "type": "Normal", "eventTime": null, "reportingComponent": "", "reportingInstance": "",
        });
        let new = from_stored(core);
        assert_eq!(new["eventTime"], Value::Null);
        assert_eq!(new["regarding"]["kind"], "Node");
        assert_eq!(new["deprecatedSource"]["component"], "kubelet");
        assert_eq!(new["deprecatedCount"], 1);
        assert!(new.get("reportingController").is_none());
    }

    #[test]
    fn new_api_requires_its_fields() {
        let err = EVENTS
            .prepare_create(&mut json!({"metadata": {"name": "e"}, "type": "Normal"}))
            .unwrap_err();
        assert_eq!(
            err.message,
            "Event.events.k8s.io \"e\" is invalid: [eventTime: Required value, reportingController: Required value, reportingInstance: Required value, action: Required value, reason: Required value]"
        );
    }
}
