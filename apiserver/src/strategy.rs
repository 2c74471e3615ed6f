//! Per-resource behaviour, one strategy value per resource: defaulting on create and update, and the fields a field selector may name.

use base64::Engine;
use serde_json::{Value, json};

use crate::object::{meta_str, metadata_mut};
use crate::status::{ApiError, ApiResult};

/// A field a field selector may name: its label, where it lives, and its value when absent.
#[derive(Debug)]
pub struct FieldLabel {
    pub name: &'static str,
    pub pointer: &'static str,
    pub default: &'static str,
}

/// What differs between resources. Defaults do nothing, so a resource without special
/// behaviour uses [`PLAIN`].
pub trait Strategy: Sync + std::fmt::Debug {
    /// Fields beyond `metadata.name` and `metadata.namespace` that field selectors may use.
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[]
    }

    /// Defaulting and normalisation before a create.
    fn prepare_create(&self, _object: &mut Value) -> ApiResult<()> {
        Ok(())
    }

    /// Table columns computed at run time (custom resources' `additionalPrinterColumns`);
    /// `None`: the resource's static columns.
    fn printer_columns(&self) -> Option<&[crate::registry::PrinterColumn]> {
        None
    }

    /// `Warning:` headers a create or update of `object` gets.
    fn warnings(&self, _object: &Value) -> Vec<String> {
        Vec::new()
    }

    /// Whether an update bumps `metadata.generation` (resources that track it): by default,
    /// any change outside metadata and status.
    fn bumps_generation(&self, old: &Value, new: &Value) -> bool {
        crate::object::spec_changed(old, new)
    }

    /// Defaulting and normalisation before an update; `old` is the stored object.
    fn prepare_update(&self, _old: &Value, object: &mut Value) -> ApiResult<()> {
        self.prepare_create(object)
    }

    /// The `metadata` fields a write to `/status` changes besides the status (none by
    /// default: the stored ones are kept).
    fn status_metadata(&self) -> &'static [&'static str] {
        &[]
    }
}

/// No special behaviour.
#[derive(Debug)]
pub struct Plain;
impl Strategy for Plain {}
pub static PLAIN: Plain = Plain;

/// Namespaces: the `kubernetes.io/metadata.name` label, the `kubernetes` finalizer, phase Active.
#[derive(Debug)]
pub struct Namespaces;
pub static NAMESPACES: Namespaces = Namespaces;

impl Strategy for Namespaces {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "status.phase",
            pointer: "/status/phase",
            default: "",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        let labels = metadata_mut(object)
            .entry("labels")
            .or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        if object.pointer("/spec/finalizers").is_none() {
            object["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        if object.pointer("/status/phase").is_none() {
            object["status"] = json!({"phase": "Active"});
        }
        Ok(())
    }

    /// `spec.finalizers` change only through `/finalize` (which restores them after this).
    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        self.prepare_create(object)?;
        match old.pointer("/spec/finalizers") {
            Some(finalizers) => {
                crate::object::set_pointer(object, "/spec/finalizers", finalizers.clone())
            }
            None => {
                if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
            }
        }
        Ok(())
    }
}

/// Secrets: type Opaque by default; write-only `stringData` merged into `data`.
#[derive(Debug)]
pub struct Secrets;
pub static SECRETS: Secrets = Secrets;

impl Strategy for Secrets {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "type",
            pointer: "/type",
            default: "",
        }]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        if object
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            object["type"] = json!("Opaque");
        }
        let Some(Value::Object(string_data)) =
            object.as_object_mut().and_then(|o| o.remove("stringData"))
        else {
            return Ok(());
        };
        let Some(map) = object.as_object_mut() else {
            return Ok(());
        };
        let Some(data) = map
            .entry("data")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        else {
            return Err(ApiError::bad_request("secret data must be an object"));
        };
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
        Ok(())
    }
}

/// Nodes: selectable by `spec.unschedulable`.
#[derive(Debug)]
pub struct Nodes;
pub static NODES: Nodes = Nodes;

impl Strategy for Nodes {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[FieldLabel {
            name: "spec.unschedulable",
            pointer: "/spec/unschedulable",
            default: "false",
        }]
    }
}

/// Events: selectable by what they are about and who reported them.
#[derive(Debug)]
pub struct Events;
pub static EVENTS: Events = Events;

impl Strategy for Events {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[
            FieldLabel {
                name: "involvedObject.kind",
                pointer: "/involvedObject/kind",
                default: "",
            },
            FieldLabel {
                name: "involvedObject.namespace",
                pointer: "/involvedObject/namespace",
                default: "",
            },
            FieldLabel {
                name: "involvedObject.name",
                pointer: "/involvedObject/name",
                default: "",
            },
            FieldLabel {
                name: "involvedObject.uid",
                pointer: "/involvedObject/uid",
                default: "",
            },
            FieldLabel {
                name: "involvedObject.apiVersion",
                pointer: "/involvedObject/apiVersion",
                default: "",
            },
            FieldLabel {
                name: "involvedObject.resourceVersion",
                pointer: "/involvedObject/resourceVersion",
                default: "",
            },
            FieldLabel {
                name: "involvedObject.fieldPath",
                pointer: "/involvedObject/fieldPath",
                default: "",
            },
            FieldLabel {
                name: "reason",
                pointer: "/reason",
                default: "",
            },
            FieldLabel {
                name: "reportingComponent",
                pointer: "/reportingComponent",
                default: "",
            },
            FieldLabel {
                name: "source",
                pointer: "/source/component",
                default: "",
            },
            FieldLabel {
                name: "type",
                pointer: "/type",
                default: "",
            },
        ]
    }
}
