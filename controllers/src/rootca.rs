//! The root CA publisher: a `kube-root-ca.crt` ConfigMap holding the cluster CA in every namespace, created again when deleted and restored when edited (upstream's `rootcacertpublisher`).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client, Resource};
use crate::controller::{self, Action, Reconciler};
use crate::informer::{Event, Informer, Informers, key_of};
use crate::queue::{RateLimiter, WorkQueue};
use crate::serviceaccount::namespace_terminating;

/// The ConfigMap's name, its one data key and the annotation describing it, as upstream.
pub const CONFIGMAP: &str = "kube-root-ca.crt";
pub const DATA_KEY: &str = "ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// kube-controller-manager runs this controller with one worker.
const WORKERS: usize = 1;

/// Why a sync of a namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ConfigMap could not be created or updated.
    #[error("cannot {action} configmap {namespace}/kube-root-ca.crt")]
    Write {
        action: &'static str,
        namespace: String,
        #[source]
        source: client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn namespaces() -> Resource {
    Resource::core("namespaces", false)
}

fn configmaps() -> Resource {
    Resource::core("configmaps", true)
}

/// The ConfigMap as it should be, from the one found (other metadata kept), or `None` when
/// it already is: data exactly `ca.crt`, and a description annotation.
fn desired(found: &Value, ca_pem: &str) -> Option<Value> {
    let data = json!({DATA_KEY: ca_pem});
    let described = found
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty());
    if found.get("data") == Some(&data) && described {
        return None;
    }
    let mut updated = found.clone();
    updated["data"] = data;
    if !updated["metadata"]["annotations"].is_object() {
        updated["metadata"]["annotations"] = json!({});
    }
    updated["metadata"]["annotations"][DESCRIPTION_ANNOTATION] = json!(DESCRIPTION);
    Some(updated)
}

/// The root CA publisher.
pub struct RootCaPublisher {
    client: Client,
    ca_pem: String,
    namespaces: Informer,
    configmaps: Informer,
    queue: WorkQueue,
}

impl std::fmt::Debug for RootCaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCaPublisher").finish_non_exhaustive()
    }
}

impl RootCaPublisher {
    /// A publisher of `ca_pem`, the PEM bundle clients verify the API server with.
    pub fn new(client: Client, informers: &Informers, ca_pem: String) -> Arc<RootCaPublisher> {
        let namespaces = informers.informer(&namespaces());
        let configmaps = informers.informer(&configmaps());
        let queue = WorkQueue::new("root_ca_cert_publisher", RateLimiter::default());
        let enqueue = queue.clone();
        namespaces.add_handler(move |event| {
            let ns = match event {
                Event::Added(ns) => ns,
                Event::Updated { new, .. }
                    if new.pointer("/status/phase").and_then(Value::as_str) == Some("Active") =>
                {
                    new
                }
                _ => return,
            };
            if let Some(key) = key_of(ns) {
                enqueue.add(&key);
            }
        });
        let enqueue = queue.clone();
        configmaps.add_handler(move |event| {
            let cm = match event {
                Event::Updated { new, .. } => new,
                Event::Deleted(cm) => cm,
                Event::Added(_) => return,
            };
            if cm.pointer("/metadata/name").and_then(Value::as_str) == Some(CONFIGMAP)
                && let Some(ns) = cm.pointer("/metadata/namespace").and_then(Value::as_str)
            {
                enqueue.add(ns);
            }
        });
        Arc::new(RootCaPublisher {
            client,
            ca_pem,
            namespaces,
            configmaps,
            queue,
        })
    }

    /// Run until `shutdown`, once both caches have synced.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.namespaces.wait_synced(&shutdown).await
            || !self.configmaps.wait_synced(&shutdown).await
        {
            return;
        }
        tracing::info!(
            controller = "root-ca-cert-publisher",
            workers = WORKERS,
            "controller started"
        );
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
    }

    /// Upstream's `syncNamespace`: create the ConfigMap if missing (not in a namespace that
    /// is gone or terminating), else make its data and annotation right.
    async fn sync(&self, namespace: &str) -> Result<Action> {
        let write_error = |action, source| Error::Write {
            action,
            namespace: namespace.to_string(),
            source,
        };
        let Some(found) = self.configmaps.get(&format!("{namespace}/{CONFIGMAP}")) else {
            let configmap = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": CONFIGMAP,
                    "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
                },
                "data": {DATA_KEY: self.ca_pem},
            });
            return match self
                .client
                .create(&configmaps(), Some(namespace), &configmap)
                .await
            {
                Ok(_) => {
                    tracing::info!(
                        controller = "root-ca-cert-publisher",
                        namespace,
                        "root ca configmap created"
                    );
                    Ok(Action::Done)
                }
                Err(e) if e.is_not_found() || namespace_terminating(&e) => Ok(Action::Done),
                Err(source) => Err(write_error("create", source)),
            };
        };
        let Some(updated) = desired(&found, &self.ca_pem) else {
            return Ok(Action::Done);
        };
        match self
            .client
            .update(&configmaps(), Some(namespace), CONFIGMAP, &updated)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    controller = "root-ca-cert-publisher",
                    namespace,
                    "root ca configmap restored"
                );
                Ok(Action::Done)
            }
            Err(source) => Err(write_error("update", source)),
        }
    }
}

impl Reconciler for RootCaPublisher {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action> {
        self.sync(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_wrong_configmap_is_rewritten() {
        let right = json!({
            "metadata": {"name": CONFIGMAP, "resourceVersion": "5", "annotations": {DESCRIPTION_ANNOTATION: "anything", "x": "y"}},
            "data": {"ca.crt": "PEM"},
        });
        assert_eq!(desired(&right, "PEM"), None);

        let mut edited = right.clone();
        edited["data"]["extra"] = json!("1");
        edited["metadata"]["annotations"] = json!({"x": "y"});
        let fixed = desired(&edited, "PEM").unwrap();
        assert_eq!(fixed["data"], json!({"ca.crt": "PEM"}));
        assert_eq!(
            fixed["metadata"]["annotations"],
            json!({"x": "y", DESCRIPTION_ANNOTATION: DESCRIPTION})
        );
        assert_eq!(fixed["metadata"]["resourceVersion"], "5");

        let bare = json!({"metadata": {"name": CONFIGMAP}});
        let fixed = desired(&bare, "PEM").unwrap();
        assert_eq!(
            fixed["metadata"]["annotations"][DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
    }
}
