//! The service account controller: a `default` ServiceAccount in every active namespace, created again when it is deleted (upstream's `ServiceAccountsController`).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client, Resource};
use crate::controller::{self, Action, Reconciler};
use crate::informer::{Event, Informer, Informers, key_of};
use crate::queue::{RateLimiter, WorkQueue};

/// The service accounts every namespace gets (kube-controller-manager's default).
const SERVICE_ACCOUNTS: &[&str] = &["default"];
/// kube-controller-manager runs this controller with one worker.
const WORKERS: usize = 1;

/// Why a sync of a namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service account could not be created.
    #[error("cannot create serviceaccount {namespace}/{name}")]
    Create {
        namespace: String,
        name: &'static str,
        #[source]
        source: client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn namespaces() -> Resource {
    Resource::core("namespaces", false)
}

fn service_accounts() -> Resource {
    Resource::core("serviceaccounts", true)
}

/// Whether an API error is a refusal to create in a terminating namespace (upstream's
/// `HasStatusCause(err, NamespaceTerminatingCause)`).
pub(crate) fn namespace_terminating(error: &client::Error) -> bool {
    error
        .status()
        .and_then(|s| s.details.as_ref())
        .and_then(|d| d.get("causes"))
        .and_then(Value::as_array)
        .is_some_and(|causes| {
            causes
                .iter()
                .any(|c| c.get("reason").and_then(Value::as_str) == Some("NamespaceTerminating"))
        })
}

/// A namespace that is neither being deleted nor in another phase than `Active`.
pub(crate) fn active(namespace: &Value) -> bool {
    let phase = namespace.pointer("/status/phase").and_then(Value::as_str);
    namespace
        .pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null)
        && matches!(phase, None | Some("Active"))
}

/// The service account controller.
pub struct ServiceAccountController {
    client: Client,
    namespaces: Informer,
    accounts: Informer,
    queue: WorkQueue,
}

impl std::fmt::Debug for ServiceAccountController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountController")
            .finish_non_exhaustive()
    }
}

impl ServiceAccountController {
    pub fn new(client: Client, informers: &Informers) -> Arc<ServiceAccountController> {
        let namespaces = informers.informer(&namespaces());
        let accounts = informers.informer(&service_accounts());
        let queue = WorkQueue::new("serviceaccount", RateLimiter::default());
        let enqueue = queue.clone();
        namespaces.add_handler(move |event| match event {
            Event::Added(ns) | Event::Updated { new: ns, .. } => {
                if let Some(key) = key_of(ns) {
                    enqueue.add(&key);
                }
            }
            Event::Deleted(_) => {}
        });
        let enqueue = queue.clone();
        accounts.add_handler(move |event| {
            if let Event::Deleted(sa) = event
                && let Some(name) = sa.pointer("/metadata/name").and_then(Value::as_str)
                && SERVICE_ACCOUNTS.contains(&name)
                && let Some(ns) = sa.pointer("/metadata/namespace").and_then(Value::as_str)
            {
                enqueue.add(ns);
            }
        });
        Arc::new(ServiceAccountController {
            client,
            namespaces,
            accounts,
            queue,
        })
    }

    /// Run until `shutdown`, once both caches have synced.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.namespaces.wait_synced(&shutdown).await
            || !self.accounts.wait_synced(&shutdown).await
        {
            return;
        }
        tracing::info!(
            controller = "serviceaccount",
            workers = WORKERS,
            "controller started"
        );
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
    }

    /// Upstream's `syncNamespace`.
    async fn sync(&self, namespace: &str) -> Result<Action> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Ok(Action::Done);
        };
        if !active(&ns) {
            return Ok(Action::Done);
        }
        for &name in SERVICE_ACCOUNTS {
            if self.accounts.get(&format!("{namespace}/{name}")).is_some() {
                continue;
            }
            let account = json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name},
            });
            match self
                .client
                .create(&service_accounts(), Some(namespace), &account)
                .await
            {
                Ok(_) => {
                    tracing::info!(
                        controller = "serviceaccount",
                        namespace,
                        name,
                        "service account created"
                    );
                }
                Err(e) if e.is_conflict() || e.is_not_found() || namespace_terminating(&e) => {}
                Err(source) => {
                    return Err(Error::Create {
                        namespace: namespace.to_string(),
                        name,
                        source,
                    });
                }
            }
        }
        Ok(Action::Done)
    }
}

impl Reconciler for ServiceAccountController {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action> {
        self.sync(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_namespaces() {
        assert!(active(&json!({"metadata": {"name": "a"}})));
        assert!(active(&json!({"status": {"phase": "Active"}})));
        assert!(!active(&json!({"status": {"phase": "Terminating"}})));
        assert!(!active(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Active"}})
        ));
    }

    #[test]
    fn terminating_cause() {
        let error = client::Error::Api {
            method: http::Method::POST,
            path: "/api/v1/namespaces/x/serviceaccounts".into(),
            status: Box::new(client::Status {
                code: 403,
                reason: "Forbidden".into(),
                message:
                    "unable to create new content in namespace x because it is being terminated"
                        .into(),
                details: Some(
                    json!({"causes": [{"reason": "NamespaceTerminating", "message": "namespace x is being terminated", "field": "metadata.namespace"}]}),
                ),
            }),
        };
        assert!(namespace_terminating(&error));
    }
}
