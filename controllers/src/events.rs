//! Recording `events.k8s.io/v1` Events about objects, as upstream components do with their reporting controller name (`default-scheduler`, …); writes are fire-and-forget so a slow API never holds up a control loop.

use serde_json::{Value, json};

use crate::client::{Client, Resource};

/// Event types.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Emits events as one reporting controller.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
}

/// upstream's `metav1.MicroTime` form.
fn micro_time(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The object reference an event is about.
pub fn reference(object: &Value, kind: &str, api_version: &str) -> Value {
    let meta = |f: &str| object.pointer(&format!("/metadata/{f}")).cloned();
    let mut r = json!({"kind": kind, "apiVersion": api_version});
    for field in ["namespace", "name", "uid", "resourceVersion"] {
        if let Some(v) = meta(field) {
            r[field] = v;
        }
    }
    r
}

impl Recorder {
    /// `controller` is the reporting controller (`default-scheduler`); the instance adds the
    /// host name, as upstream's recorders do.
    pub fn new(client: Client, controller: &str) -> Recorder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Recorder {
            client,
            controller: controller.to_string(),
            instance: format!("{controller}-{host}"),
        }
    }

    /// The event, as it would be sent.
    pub fn event(
        &self,
        regarding: &Value,
        type_: &str,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Value {
        let now = time::OffsetDateTime::now_utc();
        let namespace = regarding
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        let name = regarding
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("object");
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {
                "name": format!("{name}.{:x}", now.unix_timestamp_nanos()),
                "namespace": namespace,
            },
            "eventTime": micro_time(now),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": action,
            "reason": reason,
            "regarding": regarding,
            "note": note,
            "type": type_,
        })
    }

    /// Send an event in the background (failures are logged, not returned).
    pub fn emit(&self, regarding: &Value, type_: &str, reason: &str, action: &str, note: &str) {
        let event = self.event(regarding, type_, reason, action, note);
        let client = self.client.clone();
        let namespace = event["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        tokio::spawn(async move {
            let events = Resource::new("events.k8s.io", "v1", "events", true);
            if let Err(e) = client.create(&events, Some(&namespace), &event).await {
                tracing::debug!(error = %crate::error_chain(&e), "cannot record an event");
            }
        });
    }
}
