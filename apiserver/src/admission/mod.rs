//! The admission chain: upstream's built-in plugins and the admission webhooks in upstream order, mutating then validating, run on every create, update, patch, apply and delete before the store write.
//!
//! `rest.rs` calls [`Chain::write`] once the resource strategy has defaulted and validated an
//! object: the mutating plugins run, the strategy runs again if they changed anything (its
//! validation then covers their changes, as upstream validates after mutating admission), then
//! the validating plugins. Deletes run the validating plugins on the stored object. Any plugin
//! may reject with the upstream `Status`.
//!
//! Plugins read cluster state through [`Lookup`], which [`Rest`] implements over its watch
//! cache (a cache miss is confirmed against the store, as upstream's plugins do a live lookup
//! when their informer has not seen an object yet). ResourceQuota also writes: it charges
//! usage with a compare-and-swap of the quota.

mod certificates;
mod lifecycle;
mod limitranger;
mod noderestriction;
mod podsecurity;
mod priority;
mod quantity;
mod quota;
mod serviceaccount;
mod tolerations;
pub(crate) mod webhook;

use std::sync::LazyLock;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use k1s_store::{RangeRequest, WriteOutcome};
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::cache::Freshness;
use crate::object::meta_str;
use crate::registry::{self, Resource};
use crate::rest::Rest;
use crate::status::{ApiError, ApiResult};

/// What a request does to an object (upstream's `admission.Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    #[allow(
        dead_code,
        reason = "exec, attach and port-forward arrive with the agent"
    )]
    Connect,
}

/// Everything a plugin knows of a request besides the object itself (upstream's
/// `admission.Attributes`).
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    pub operation: Operation,
    pub resource: &'static Resource,
    pub subresource: Option<&'a str>,
    /// Empty for cluster-scoped resources.
    pub namespace: &'a str,
    /// The object's name; empty on a create that asks for `generateName`.
    pub name: &'a str,
    /// The stored object, on update and delete.
    pub old_object: Option<&'a Value>,
    pub user: &'a UserInfo,
    pub dry_run: bool,
}

impl Attributes<'_> {
    /// Whether the request is for the resource `group`/`plural` itself (no subresource).
    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.resource.group == group && self.resource.plural == plural
    }

    /// 403 `<resource> "<name>" is forbidden: <detail>`, naming the object as upstream's
    /// `admission.NewForbidden` does: the request's name, else the object's `generateName`.
    pub fn forbidden(&self, object: Option<&Value>, detail: &str) -> ApiError {
        let name = match self.name {
            "" => object
                .and_then(|o| meta_str(o, "name").or(meta_str(o, "generateName")))
                .unwrap_or("Unknown"),
            name => name,
        };
        ApiError::forbidden(
            self.resource.group,
            self.resource.plural,
            name,
            detail,
            None,
        )
    }
}

/// How plugins read (and ResourceQuota writes) cluster state.
pub trait Lookup: Send + Sync {
    /// One object (with its resourceVersion), from the cache, or from the store when the
    /// cache does not hold it.
    fn get<'a>(
        &'a self,
        resource: &'static Resource,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Value>>>;

    /// One object read from the store, when the cache may be behind.
    fn get_live<'a>(
        &'a self,
        resource: &'static Resource,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Value>>> {
        self.get(resource, namespace, name)
    }

    /// The objects of a resource in one namespace (or all of a cluster-scoped one), from the
    /// cache; `fresh` reads the store instead.
    fn list<'a>(
        &'a self,
        resource: &'static Resource,
        namespace: Option<&'a str>,
        fresh: bool,
    ) -> BoxFuture<'a, ApiResult<Vec<Value>>>;

    /// The objects of a cluster-scoped resource as the cache holds them, without confirming an
    /// empty answer against the store (webhook configurations, read on every request, as
    /// upstream reads its informer).
    fn cached<'a>(&'a self, resource: &'static Resource) -> BoxFuture<'a, ApiResult<Vec<Value>>> {
        self.list(resource, None, false)
    }

    /// Write `object` if it is still at its resourceVersion: false when it changed meanwhile.
    fn replace<'a>(
        &'a self,
        resource: &'static Resource,
        object: &'a Value,
    ) -> BoxFuture<'a, ApiResult<bool>>;

    /// Whether the server's authorizers allow `attrs` (what upstream's plugins that want an
    /// authorizer ask on a request's behalf, such as `approve` on a CSR's signer). By default
    /// everything is, as with authorization off (unit tests' lookups that never deny).
    fn authorized<'a>(&'a self, _attrs: &'a crate::auth::Attributes) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(true))
    }
}

/// One admission plugin. Both phases default to doing nothing.
pub trait Plugin: Send + Sync {
    /// Mutating phase: may change `object`.
    fn admit<'a>(
        &'a self,
        _attrs: &'a Attributes<'a>,
        _object: &'a mut Value,
        _cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Validating phase: `object` is `None` on delete.
    fn validate<'a>(
        &'a self,
        _attrs: &'a Attributes<'a>,
        _object: Option<&'a Value>,
        _cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The plugins in upstream's order (kube-apiserver's `AllOrderedPlugins`).
pub struct Chain {
    plugins: Vec<Box<dyn Plugin>>,
}

/// The chain every request goes through.
pub static CHAIN: LazyLock<Chain> = LazyLock::new(|| Chain {
    plugins: vec![
        Box::new(lifecycle::NamespaceLifecycle::default()),
        Box::new(limitranger::LimitRanger),
        Box::new(serviceaccount::ServiceAccount),
        Box::new(noderestriction::NodeRestriction),
        Box::new(podsecurity::PodSecurity),
        Box::new(priority::Priority),
        Box::new(tolerations::DefaultTolerationSeconds),
        Box::new(certificates::CertificateApproval),
        Box::new(certificates::CertificateSigning),
        Box::new(certificates::CertificateSubjectRestriction),
        Box::new(webhook::MutatingAdmissionWebhook),
        Box::new(webhook::ValidatingAdmissionWebhook),
        Box::new(quota::ResourceQuota),
    ],
});

impl Chain {
    /// Admit a create or update: mutating plugins, then `prepare` (the strategy's defaulting
    /// and validation) again if they changed the object, then validating plugins.
    pub async fn write(
        &self,
        attrs: &Attributes<'_>,
        object: &mut Value,
        cluster: &dyn Lookup,
        warnings: &mut Vec<String>,
        prepare: impl FnOnce(&mut Value) -> ApiResult<()>,
    ) -> ApiResult<()> {
        let before = object.clone();
        for plugin in &self.plugins {
            plugin.admit(attrs, object, cluster, warnings).await?;
        }
        if *object != before {
            prepare(object)?;
        }
        for plugin in &self.plugins {
            plugin
                .validate(attrs, Some(&*object), cluster, warnings)
                .await?;
        }
        Ok(())
    }

    /// Admit a delete of `attrs.old_object`.
    pub async fn delete(&self, attrs: &Attributes<'_>, cluster: &dyn Lookup) -> ApiResult<()> {
        let mut warnings = Vec::new();
        for plugin in &self.plugins {
            plugin.validate(attrs, None, cluster, &mut warnings).await?;
        }
        Ok(())
    }
}

/// A resource every cluster serves, by group and plural.
fn resource(group: &str, plural: &str) -> &'static Resource {
    registry::all()
        .iter()
        .copied()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap_or_else(|| panic!("{plural}.{group} is served"))
}

fn with_revision(mut object: Value, revision: u64) -> Value {
    crate::object::set_meta(&mut object, "resourceVersion", json!(revision.to_string()));
    object
}

fn decode(value: &[u8], revision: u64) -> ApiResult<Value> {
    let object: Value = serde_json::from_slice(value)
        .map_err(|e| ApiError::internal(format!("stored object is not valid JSON: {e}")))?;
    Ok(with_revision(object, revision))
}

fn store_error(e: k1s_store::Error) -> ApiError {
    ApiError::internal(format!("{e:#}"))
}

impl Rest {
    async fn read_store(&self, prefix: String) -> ApiResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .store
                .range(RangeRequest {
                    prefix: Bytes::from(prefix.clone()),
                    start_after: start_after.clone(),
                    revision: None,
                    limit: 500,
                    count_only: false,
                })
                .await
                .map_err(store_error)?;
            start_after = page.kvs.last().map(|kv| kv.key.clone());
            for kv in &page.kvs {
                out.push(decode(&kv.value, kv.mod_revision)?);
            }
            if page.remaining == 0 || page.kvs.is_empty() {
                return Ok(out);
            }
        }
    }
}

impl Lookup for Rest {
    fn get<'a>(
        &'a self,
        resource: &'static Resource,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Value>>> {
        Box::pin(async move {
            let key = resource.key(namespace, name);
            if let Some(snapshot) = self
                .cache
                .list(&resource.prefix(), &key, Freshness::Any)
                .await?
                && let Some(item) = snapshot.items.iter().find(|i| i.key == key.as_bytes())
            {
                return Ok(Some(with_revision(
                    item.object().clone(),
                    item.mod_revision,
                )));
            }
            // Not in the cache (yet): ask the store.
            self.get_live(resource, namespace, name).await
        })
    }

    fn get_live<'a>(
        &'a self,
        resource: &'static Resource,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Value>>> {
        Box::pin(async move {
            let key = resource.key(namespace, name);
            match self
                .store
                .get(key.as_bytes(), None)
                .await
                .map_err(store_error)?
            {
                (_, Some(kv)) => Ok(Some(decode(&kv.value, kv.mod_revision)?)),
                (_, None) => Ok(None),
            }
        })
    }

    fn list<'a>(
        &'a self,
        resource: &'static Resource,
        namespace: Option<&'a str>,
        fresh: bool,
    ) -> BoxFuture<'a, ApiResult<Vec<Value>>> {
        Box::pin(async move {
            let prefix = resource.list_prefix(namespace);
            if !fresh
                && let Some(snapshot) = self
                    .cache
                    .list(&resource.prefix(), &prefix, Freshness::Any)
                    .await?
            {
                // An empty cache may not have seen a new object yet: confirm with the
                // store (upstream's live lookup on a miss).
                if !snapshot.items.is_empty() {
                    return Ok(snapshot
                        .items
                        .iter()
                        .map(|i| with_revision(i.object().clone(), i.mod_revision))
                        .collect());
                }
            }
            self.read_store(prefix).await
        })
    }

    fn cached<'a>(&'a self, resource: &'static Resource) -> BoxFuture<'a, ApiResult<Vec<Value>>> {
        Box::pin(async move {
            let prefix = resource.list_prefix(None);
            match self
                .cache
                .list(&resource.prefix(), &prefix, Freshness::Any)
                .await?
            {
                Some(snapshot) => Ok(snapshot
                    .items
                    .iter()
                    .map(|i| with_revision(i.object().clone(), i.mod_revision))
                    .collect()),
                None => self.read_store(prefix).await,
            }
        })
    }

    fn replace<'a>(
        &'a self,
        resource: &'static Resource,
        object: &'a Value,
    ) -> BoxFuture<'a, ApiResult<bool>> {
        Box::pin(async move {
            let revision: u64 = meta_str(object, "resourceVersion")
                .and_then(|rv| rv.parse().ok())
                .ok_or_else(|| ApiError::internal("replacing an object without resourceVersion"))?;
            let key = resource.key(
                meta_str(object, "namespace"),
                meta_str(object, "name").unwrap_or(""),
            );
            let mut stored = object.clone();
            crate::object::remove_meta(&mut stored, "resourceVersion");
            let bytes =
                serde_json::to_vec(&stored).map_err(|e| ApiError::internal(e.to_string()))?;
            match self
                .store
                .update(key.as_bytes(), Bytes::from(bytes), revision, None)
                .await
                .map_err(store_error)?
            {
                WriteOutcome::Committed { .. } => Ok(true),
                WriteOutcome::Conflict { .. } => Ok(false),
            }
        })
    }

    fn authorized<'a>(&'a self, attrs: &'a crate::auth::Attributes) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match &self.authorizer {
                None => true,
                Some(rbac) => matches!(
                    crate::auth::authorize(attrs, rbac, &self.cache).await,
                    crate::auth::Decision::Allow(_)
                ),
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! An in-memory [`Lookup`] for the plugins' unit tests.

    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    pub struct Fake {
        /// (resource plural, object)
        pub objects: Mutex<Vec<(&'static str, Value)>>,
        /// The authorizer's decision; `None` allows everything (authorization off).
        pub authorizer: Option<fn(&crate::auth::Attributes) -> bool>,
    }

    impl Fake {
        pub fn with(objects: Vec<(&'static str, Value)>) -> Fake {
            Fake {
                objects: Mutex::new(objects),
                authorizer: None,
            }
        }

        pub fn find(&self, plural: &str, name: &str) -> Option<Value> {
            self.objects
                .lock()
                .iter()
                .find(|(p, o)| *p == plural && meta_str(o, "name") == Some(name))
                .map(|(_, o)| o.clone())
        }
    }

    impl Lookup for Fake {
        fn get<'a>(
            &'a self,
            resource: &'static Resource,
            namespace: Option<&'a str>,
            name: &'a str,
        ) -> BoxFuture<'a, ApiResult<Option<Value>>> {
            let found = self
                .objects
                .lock()
                .iter()
                .find(|(p, o)| {
                    *p == resource.plural
                        && meta_str(o, "name") == Some(name)
                        && (namespace.is_none() || meta_str(o, "namespace") == namespace)
                })
                .map(|(_, o)| o.clone());
            Box::pin(std::future::ready(Ok(found)))
        }

        fn list<'a>(
            &'a self,
            resource: &'static Resource,
            namespace: Option<&'a str>,
            _fresh: bool,
        ) -> BoxFuture<'a, ApiResult<Vec<Value>>> {
            let found = self
                .objects
                .lock()
                .iter()
                .filter(|(p, o)| {
                    *p == resource.plural
                        && (namespace.is_none() || meta_str(o, "namespace") == namespace)
                })
                .map(|(_, o)| o.clone())
                .collect();
            Box::pin(std::future::ready(Ok(found)))
        }

        fn replace<'a>(
            &'a self,
            resource: &'static Resource,
            object: &'a Value,
        ) -> BoxFuture<'a, ApiResult<bool>> {
            let mut objects = self.objects.lock();
            let slot = objects.iter_mut().find(|(p, o)| {
                *p == resource.plural && meta_str(o, "name") == meta_str(object, "name")
            });
            let ok = match slot {
                Some((_, o))
                    if meta_str(o, "resourceVersion") == meta_str(object, "resourceVersion") =>
                {
                    let rv: u64 = meta_str(o, "resourceVersion")
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0);
                    *o = object.clone();
                    crate::object::set_meta(o, "resourceVersion", json!((rv + 1).to_string()));
                    true
                }
                _ => false,
            };
            Box::pin(std::future::ready(Ok(ok)))
        }

        fn authorized<'a>(&'a self, attrs: &'a crate::auth::Attributes) -> BoxFuture<'a, bool> {
            let allowed = self.authorizer.is_none_or(|decide| decide(attrs));
            Box::pin(std::future::ready(allowed))
        }
    }

    pub fn admin() -> UserInfo {
        UserInfo::system()
    }

    /// Attributes of a create of `resource` in `namespace`.
    pub fn create<'a>(
        group: &str,
        plural: &str,
        namespace: &'a str,
        name: &'a str,
        user: &'a UserInfo,
    ) -> Attributes<'a> {
        Attributes {
            operation: Operation::Create,
            resource: resource(group, plural),
            subresource: None,
            namespace,
            name,
            old_object: None,
            user,
            dry_run: false,
        }
    }

    /// Run one plugin's both phases as the chain would.
    pub fn run(
        plugin: &dyn Plugin,
        attrs: &Attributes<'_>,
        object: &mut Value,
        cluster: &dyn Lookup,
    ) -> ApiResult<Vec<String>> {
        // A paused clock: the plugins' waits pass at once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut warnings = Vec::new();
            plugin.admit(attrs, object, cluster, &mut warnings).await?;
            plugin
                .validate(attrs, Some(&*object), cluster, &mut warnings)
                .await?;
            Ok(warnings)
        })
    }
}
