//! Recording `events.k8s.io/v1` Events about objects, as upstream components do with their reporting controller name (`default-scheduler`, …); writes are fire-and-forget so a slow API never holds up a control loop, and repeats are folded into the first event's `series`, as client-go's events broadcaster does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::{Client, PatchType, Resource};

/// A repeat within this long of the last one joins its series (client-go's 6 minutes).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// A series' count is written back at most this often after its second occurrence
/// (client-go's heartbeat is 30 minutes; k1s writes on a much shorter period so `kubectl`
/// shows counts that move).
const SERIES_FLUSH: Duration = Duration::from_secs(30);

/// An event already sent and how often it recurred since.
struct Sent {
    namespace: String,
    name: String,
    count: u64,
    last: Instant,
    flushed: Instant,
}

/// client-go's isomorphism key: action, reason and the object.
type Key = (String, String, String);

/// Event types.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Emits events as one reporting controller.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    sent: Arc<Mutex<HashMap<Key, Sent>>>,
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
            sent: Arc::default(),
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

    /// Send an event in the background (failures are logged, not returned). A repeat of an
    /// event sent within the last 6 minutes (same action, reason and object) counts in that
    /// event's `series` instead.
    pub fn emit(&self, regarding: &Value, type_: &str, reason: &str, action: &str, note: &str) {
        let key: Key = (
            action.to_string(),
            reason.to_string(),
            regarding.to_string(),
        );
        let now = Instant::now();
        let mut sent = self.sent.lock();
        sent.retain(|_, s| now - s.last < SERIES_WINDOW);
        if let Some(series) = sent.get_mut(&key) {
            series.count += 1;
            series.last = now;
            // The second occurrence starts the series; later ones are written periodically.
            if series.count == 2 || now - series.flushed >= SERIES_FLUSH {
                series.flushed = now;
                let patch = json!({"series": {
                    "count": series.count,
                    "lastObservedTime": micro_time(time::OffsetDateTime::now_utc()),
                }});
                let (client, namespace, name) = (
                    self.client.clone(),
                    series.namespace.clone(),
                    series.name.clone(),
                );
                tokio::spawn(async move {
                    let resource = events_resource();
                    let patched = client
                        .patch(&resource, Some(&namespace), &name, PatchType::Merge, &patch)
                        .await;
                    if let Err(e) = patched {
                        tracing::debug!(error = %crate::error_chain(&e), "cannot update an event series");
                    }
                });
            }
            return;
        }
        let event = self.event(regarding, type_, reason, action, note);
        let namespace = event["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = event["metadata"]["name"].as_str().unwrap_or("").to_string();
        sent.insert(
            key,
            Sent {
                namespace: namespace.clone(),
                name,
                count: 1,
                last: now,
                flushed: now,
            },
        );
        drop(sent);
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client
                .create(&events_resource(), Some(&namespace), &event)
                .await
            {
                tracing::debug!(error = %crate::error_chain(&e), "cannot record an event");
            }
        });
    }
}

fn events_resource() -> Resource {
    Resource::new("events.k8s.io", "v1", "events", true)
}
