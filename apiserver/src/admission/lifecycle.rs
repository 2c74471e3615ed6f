//! NamespaceLifecycle: nothing is created in a missing or terminating namespace, and default, kube-system and kube-public are never deleted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{Attributes, Lookup, Operation, Plugin};
use crate::status::{ApiError, ApiResult};

/// Namespaces that may not be deleted (upstream's `immortalNamespaces`).
const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

/// How long after a namespace's deletion creates in it read the namespace from the store
/// rather than trusting the cache (upstream's `forceLiveLookupTTL`).
const FORCE_LIVE_LOOKUP: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct NamespaceLifecycle {
    /// Namespaces recently deleted, when: the cache may not show them terminating yet.
    deleted: Mutex<HashMap<String, Instant>>,
}

impl NamespaceLifecycle {
    async fn check(
        &self,
        attrs: &Attributes<'_>,
        object: Option<&Value>,
        cluster: &dyn Lookup,
    ) -> ApiResult<()> {
        let is_namespace = attrs.is("", "namespaces");
        if attrs.operation == Operation::Delete && is_namespace {
            if IMMORTAL.contains(&attrs.name) {
                return Err(attrs.forbidden(None, "this namespace may not be deleted"));
            }
            let now = Instant::now();
            let mut deleted = self.deleted.lock();
            deleted.retain(|_, at| now.duration_since(*at) < FORCE_LIVE_LOOKUP);
            deleted.insert(attrs.name.to_string(), now);
        }
        // Namespaces themselves, cluster-scoped objects, deletes and updates always pass; so
        // do access reviews (their answer must not leak whether a namespace exists).
        if is_namespace
            || attrs.namespace.is_empty()
            || attrs.operation != Operation::Create
            || attrs.is("authorization.k8s.io", "localsubjectaccessreviews")
        {
            return Ok(());
        }
        let ns = attrs.namespace;
        let live = self
            .deleted
            .lock()
            .get(ns)
            .is_some_and(|at| at.elapsed() < FORCE_LIVE_LOOKUP);
        let namespaces = crate::registry::namespaces();
        let namespace = match live {
            true => cluster.get_live(namespaces, None, ns).await?,
            false => cluster.get(namespaces, None, ns).await?,
        };
        let Some(namespace) = namespace else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        if namespace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
            || namespace.pointer("/metadata/deletionTimestamp").is_some()
        {
            let mut err = attrs.forbidden(
                object,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            if let Some(details) = err.details.as_mut() {
                details["causes"] = json!([{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }]);
            }
            return Err(err);
        }
        Ok(())
    }
}

impl Plugin for NamespaceLifecycle {
    fn admit<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: &'a mut Value,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move { self.check(attrs, Some(&*object), cluster).await })
    }

    /// Deletes have no mutating phase here: the immortal namespaces are checked on validation.
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        _object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            match attrs.operation {
                Operation::Delete => self.check(attrs, None, cluster).await,
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fake, admin, run};
    use super::*;

    #[test]
    fn creates_need_an_active_namespace() {
        let user = admin();
        let cluster = Fake::with(vec![
            (
                "namespaces",
                json!({"metadata": {"name": "live"}, "status": {"phase": "Active"}}),
            ),
            (
                "namespaces",
                json!({"metadata": {"name": "dying", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Terminating"}}),
            ),
        ]);
        let mut cm = json!({"metadata": {"name": "x"}});
        let attrs = super::super::testing::create("", "configmaps", "live", "x", &user);
        run(&NamespaceLifecycle::default(), &attrs, &mut cm, &cluster).unwrap();
        let attrs = super::super::testing::create("", "configmaps", "dying", "x", &user);
        let err = run(&NamespaceLifecycle::default(), &attrs, &mut cm, &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "configmaps \"x\" is forbidden: unable to create new content in namespace dying because it is being terminated"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][0]["reason"],
            "NamespaceTerminating"
        );
        let attrs = super::super::testing::create("", "configmaps", "gone", "x", &user);
        let err = run(&NamespaceLifecycle::default(), &attrs, &mut cm, &cluster).unwrap_err();
        assert_eq!(err.message, "namespaces \"gone\" not found");
    }

    #[test]
    fn immortal_namespaces_cannot_be_deleted() {
        let user = admin();
        let cluster = Fake::default();
        let mut attrs = super::super::testing::create("", "namespaces", "", "kube-system", &user);
        attrs.operation = Operation::Delete;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(
                super::super::Chain {
                    plugins: vec![Box::new(NamespaceLifecycle::default())],
                }
                .delete(&attrs, &cluster),
            )
            .unwrap_err();
        assert_eq!(
            err.message,
            "namespaces \"kube-system\" is forbidden: this namespace may not be deleted"
        );
        assert_eq!(err.code, http::StatusCode::FORBIDDEN);
    }

    /// The cache still shows the namespace active; the store has it terminating.
    struct Stale;

    impl Lookup for Stale {
        fn get<'a>(
            &'a self,
            _: &'static crate::registry::Resource,
            _: Option<&'a str>,
            name: &'a str,
        ) -> BoxFuture<'a, ApiResult<Option<Value>>> {
            let ns = json!({"metadata": {"name": name}, "status": {"phase": "Active"}});
            Box::pin(std::future::ready(Ok(Some(ns))))
        }

        fn get_live<'a>(
            &'a self,
            _: &'static crate::registry::Resource,
            _: Option<&'a str>,
            name: &'a str,
        ) -> BoxFuture<'a, ApiResult<Option<Value>>> {
            let ns = json!({"metadata": {"name": name}, "status": {"phase": "Terminating"}});
            Box::pin(std::future::ready(Ok(Some(ns))))
        }

        fn list<'a>(
            &'a self,
            _: &'static crate::registry::Resource,
            _: Option<&'a str>,
            _: bool,
        ) -> BoxFuture<'a, ApiResult<Vec<Value>>> {
            Box::pin(std::future::ready(Ok(Vec::new())))
        }

        fn replace<'a>(
            &'a self,
            _: &'static crate::registry::Resource,
            _: &'a Value,
        ) -> BoxFuture<'a, ApiResult<bool>> {
            Box::pin(std::future::ready(Ok(false)))
        }
    }

    #[test]
    fn a_recently_deleted_namespace_is_read_from_the_store() {
        let user = admin();
        let plugin = NamespaceLifecycle::default();
        let mut cm = json!({"metadata": {"name": "x"}});
        let attrs = super::super::testing::create("", "configmaps", "old", "x", &user);
        run(&plugin, &attrs, &mut cm, &Stale).unwrap();
        let mut delete = super::super::testing::create("", "namespaces", "", "old", &user);
        delete.operation = Operation::Delete;
        run(&plugin, &delete, &mut json!({}), &Stale).unwrap();
        let err = run(&plugin, &attrs, &mut cm, &Stale).unwrap_err();
        assert!(
            err.message.ends_with("because it is being terminated"),
            "{}",
            err.message
        );
    }
}
