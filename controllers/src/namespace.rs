//! The namespace controller: for a namespace being deleted, delete everything in it (every namespaced resource discovery lists, custom resources included), report progress in upstream's status conditions, then remove the `kubernetes` finalizer through `/finalize` so the API server can remove the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::client::{
    self, ApiResource, Client, DeleteParams, ListParams, PropagationPolicy, Resource,
};
use crate::controller::{self, Action, Reconciler};
use crate::informer::{Event, Informer, Informers, key_of};
use crate::queue::{DEFAULT_BASE_DELAY, DEFAULT_BURST, DEFAULT_QPS, RateLimiter, WorkQueue};

/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";
/// Concurrent namespace syncs (kube-controller-manager's `--concurrent-namespace-syncs`).
const WORKERS: usize = 10;
/// Retries of a namespace back off to at most a minute (upstream's `nsControllerRateLimiter`).
const MAX_DELAY: Duration = Duration::from_secs(60);
/// How long objects held by finalizers are assumed to need (upstream's estimate).
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;
/// Resource types deleted at once.
const PARALLEL_RESOURCES: usize = 8;

/// Why a sync of a namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request about the namespace itself failed.
    #[error("cannot {action} namespace {namespace}")]
    Namespace {
        action: &'static str,
        namespace: String,
        #[source]
        source: client::Error,
    },
    /// The namespace was deleted and recreated while we worked on it.
    #[error("namespace {namespace} uid has changed across retries")]
    UidChanged { namespace: String },
    /// Some content could not be discovered or deleted (the namespace's conditions say which).
    #[error("deleting the content of namespace {namespace}: {}", messages.join("; "))]
    Content {
        namespace: String,
        messages: Vec<String>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn namespaces() -> Resource {
    Resource::core("namespaces", false)
}

fn now() -> String {
    crate::rfc3339_now()
}

fn deleting(namespace: &Value) -> bool {
    namespace
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn str_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The namespace controller.
pub struct NamespaceController {
    client: Client,
    namespaces: Informer,
    queue: WorkQueue,
}

impl std::fmt::Debug for NamespaceController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceController")
            .finish_non_exhaustive()
    }
}

impl NamespaceController {
    pub fn new(client: Client, informers: &Informers) -> Arc<NamespaceController> {
        let namespaces = informers.informer(&namespaces());
        let queue = WorkQueue::new(
            "namespace",
            RateLimiter::new(DEFAULT_BASE_DELAY, MAX_DELAY, DEFAULT_QPS, DEFAULT_BURST),
        );
        // Upstream waits 5 s before acting on a namespace event so that other API servers of
        // an HA control plane see the deletion (and refuse new content) first; k1s has one
        // API server, whose admission sees the deletion as soon as it is stored.
        let enqueue = queue.clone();
        namespaces.add_handler(move |event| {
            let namespace = match event {
                Event::Added(ns) | Event::Updated { new: ns, .. } => ns,
                Event::Deleted(_) => return,
            };
            if deleting(namespace)
                && let Some(key) = key_of(namespace)
            {
                enqueue.add(&key);
            }
        });
        Arc::new(NamespaceController {
            client,
            namespaces,
            queue,
        })
    }

    /// Run until `shutdown`, once the namespace cache has synced.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.namespaces.wait_synced(&shutdown).await {
            return;
        }
        tracing::info!(
            controller = "namespace",
            workers = WORKERS,
            "controller started"
        );
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
    }

    async fn get(&self, name: &str) -> Result<Option<Value>> {
        match self.client.get(&namespaces(), None, name).await {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(source) => Err(Error::Namespace {
                action: "get",
                namespace: name.to_string(),
                source,
            }),
        }
    }

    /// Apply `change` to the namespace and PUT it to `subresource`, reading it again after a
    /// conflict (refusing to carry on if its uid changed). `None` if the namespace is gone, or
    /// if `change` says there is nothing to write.
    async fn write_retrying(
        &self,
        mut namespace: Value,
        subresource: &'static str,
        change: impl Fn(&Value) -> Option<Value>,
    ) -> Result<Option<Value>> {
        let name = namespace["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        loop {
            let Some(desired) = change(&namespace) else {
                return Ok(Some(namespace));
            };
            match self
                .client
                .update_subresource(&namespaces(), None, &name, subresource, &desired)
                .await
            {
                Ok(written) => return Ok(Some(written)),
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) if e.is_conflict() => {
                    let Some(latest) = self.get(&name).await? else {
                        return Ok(None);
                    };
                    if latest["metadata"]["uid"] != namespace["metadata"]["uid"] {
                        return Err(Error::UidChanged { namespace: name });
                    }
                    namespace = latest;
                }
                Err(source) => {
                    return Err(Error::Namespace {
                        action: if subresource == "finalize" {
                            "finalize"
                        } else {
                            "update the status of"
                        },
                        namespace: name,
                        source,
                    });
                }
            }
        }
    }

    /// Upstream's `namespacedResourcesDeleter.Delete`.
    async fn sync(&self, name: &str) -> Result<Action> {
        // Work from the latest state: other actors edit a terminating namespace too.
        let Some(namespace) = self.get(name).await? else {
            return Ok(Action::Done);
        };
        if !deleting(&namespace) {
            return Ok(Action::Done);
        }
        let terminating = |ns: &Value| {
            (ns.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating")).then(
                || {
                    let mut ns = ns.clone();
                    ns["status"]["phase"] = json!("Terminating");
                    ns
                },
            )
        };
        let Some(namespace) = self
            .write_retrying(namespace, "status", terminating)
            .await?
        else {
            return Ok(Action::Done);
        };
        if !deleting(&namespace) {
            return Ok(Action::Done);
        }
        if str_list(namespace.pointer("/spec/finalizers")).is_empty() {
            return Ok(Action::Done);
        }

        let (estimate, namespace) = self.delete_all_content(namespace).await?;
        if estimate > 0 {
            let wait = Duration::from_secs(u64::try_from(estimate / 2 + 1).unwrap_or(1));
            tracing::debug!(
                namespace = name,
                wait_s = wait.as_secs(),
                "content remaining in namespace"
            );
            return Ok(Action::RequeueAfter(wait));
        }

        let finalize = |ns: &Value| {
            let mut remaining: Vec<String> = str_list(ns.pointer("/spec/finalizers"))
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect();
            remaining.sort();
            remaining.dedup();
            let mut ns = ns.clone();
            // An empty list is left out, as upstream's typed encoding does.
            if remaining.is_empty() {
                if let Some(spec) = ns["spec"].as_object_mut() {
                    spec.remove("finalizers");
                }
            } else {
                ns["spec"]["finalizers"] = json!(remaining);
            }
            Some(ns)
        };
        if self
            .write_retrying(namespace, "finalize", finalize)
            .await?
            .is_some()
        {
            tracing::info!(namespace = name, "namespace content deleted; finalized");
        }
        Ok(Action::Done)
    }

    /// Delete every namespaced resource in the namespace; update the conditions; return the
    /// estimated seconds until what remains is gone (0: nothing remains) and the namespace as
    /// last written.
    async fn delete_all_content(&self, namespace: Value) -> Result<(i64, Value)> {
        let name = namespace["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let deleted_at = namespace["metadata"]["deletionTimestamp"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        let mut conditions = Conditions::default();
        let mut errors = Vec::new();

        let discovery = self.client.discover().await;
        if let Some(message) = discovery.error_message() {
            let whole = discovery
                .failures
                .iter()
                .any(|f| f.group_version.is_empty());
            conditions.discovery_failed(if whole {
                message.clone()
            } else {
                format!(
                    "Discovery failed for some groups, {} failing: {message}",
                    discovery.failed_groups()
                )
            });
            errors.push(message);
        }
        let mut deletable: Vec<ApiResource> = Vec::new();
        if let Some(bad) = discovery.unparsable.first() {
            // Upstream drops every resource when one group version does not parse.
            let message = format!("unexpected GroupVersion string: {bad}");
            conditions.group_version_failed(message.clone());
            errors.push(message);
        } else {
            deletable = discovery
                .resources
                .into_iter()
                .filter(|r| r.resource.namespaced && r.supports("delete"))
                .collect();
        }

        let outcomes: Vec<(Resource, Remaining, Option<String>)> =
            futures_util::stream::iter(deletable)
                .map(|r| {
                    let name = name.as_str();
                    async move {
                        let (remaining, error) = self.delete_all_of(&r, name, deleted_at).await;
                        (r.resource, remaining, error)
                    }
                })
                .buffer_unordered(PARALLEL_RESOURCES)
                .collect()
                .await;

        let mut estimate = 0;
        let mut by_resource = BTreeMap::new();
        let mut by_finalizer: BTreeMap<String, usize> = BTreeMap::new();
        let mut content_errors = Vec::new();
        for (resource, remaining, error) in outcomes {
            if let Some(e) = error {
                content_errors.push(e);
            }
            estimate = estimate.max(remaining.estimate);
            if remaining.objects > 0 {
                by_resource.insert(resource, remaining.objects);
                for (finalizer, n) in remaining.finalizers {
                    *by_finalizer.entry(finalizer).or_default() += n;
                }
            }
        }
        conditions.content_totals(&by_resource, &by_finalizer);
        conditions.content_errors(&content_errors);
        errors.extend(content_errors);

        // Always written when different: a condition that was failing must say so no longer.
        let mut namespace = namespace;
        if let Some(updated) = conditions.apply(&namespace) {
            match self
                .client
                .update_subresource(&namespaces(), None, &name, "status", &updated)
                .await
            {
                Ok(written) => namespace = written,
                Err(e) => tracing::warn!(
                    namespace = name,
                    error = %crate::error_chain(&e),
                    "cannot update the namespace's conditions"
                ),
            }
        }
        if errors.is_empty() {
            Ok((estimate, namespace))
        } else {
            Err(Error::Content {
                namespace: name,
                messages: errors,
            })
        }
    }

    /// Delete every object of one resource in the namespace and see what remains (upstream's
    /// `deleteAllContentForGroupVersionResource`).
    async fn delete_all_of(
        &self,
        r: &ApiResource,
        namespace: &str,
        deleted_at: OffsetDateTime,
    ) -> (Remaining, Option<String>) {
        let resource = &r.resource;
        let gvr = format!(
            "{}/{}, Resource={}",
            resource.group, resource.version, resource.plural
        );
        let fail = |estimate, e: client::Error| {
            (
                Remaining {
                    estimate,
                    ..Default::default()
                },
                Some(e.to_string()),
            )
        };
        let estimate = match self.estimate(resource, namespace, deleted_at).await {
            Ok(estimate) => estimate,
            Err(e) => return fail(0, e),
        };
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let unsupported = |e: &client::Error| e.is_method_not_supported() || e.is_not_found();
        let mut collection_deleted = false;
        if r.supports("deletecollection") {
            match self
                .client
                .delete_collection(
                    resource,
                    Some(namespace),
                    &ListParams::default(),
                    &background,
                )
                .await
            {
                Ok(_) => collection_deleted = true,
                Err(e) if unsupported(&e) => {}
                Err(e) => return fail(estimate, e),
            }
        }
        if !r.supports("list") {
            return (
                Remaining {
                    estimate,
                    ..Default::default()
                },
                None,
            );
        }
        let list = |r: &Resource| {
            let client = self.client.clone();
            let r = r.clone();
            async move {
                client
                    .list_all(&r, Some(namespace), &ListParams::default())
                    .await
                    .map(|(items, _)| items)
            }
        };
        if !collection_deleted {
            let items = match list(resource).await {
                Ok(items) => items,
                Err(e) if unsupported(&e) => return (Remaining::default(), None),
                Err(e) => return fail(estimate, e),
            };
            for item in items {
                let Some(name) = item.pointer("/metadata/name").and_then(Value::as_str) else {
                    continue;
                };
                match self
                    .client
                    .delete(resource, Some(namespace), name, &background)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if unsupported(&e) => {}
                    Err(e) => return fail(estimate, e),
                }
            }
        }
        let items = match list(resource).await {
            Ok(items) => items,
            Err(e) if unsupported(&e) => return (Remaining::default(), None),
            Err(e) => return fail(estimate, e),
        };
        if items.is_empty() {
            return (Remaining::default(), None);
        }
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for item in &items {
            for f in str_list(item.pointer("/metadata/finalizers")) {
                *finalizers.entry(f).or_default() += 1;
            }
        }
        let objects = items.len();
        if estimate != 0 {
            return (
                Remaining {
                    estimate,
                    objects,
                    finalizers,
                },
                None,
            );
        }
        if !finalizers.is_empty() {
            return (
                Remaining {
                    estimate: FINALIZER_ESTIMATE_SECONDS,
                    objects,
                    finalizers,
                },
                None,
            );
        }
        (
            Remaining {
                estimate,
                objects,
                finalizers,
            },
            Some(format!(
                "unexpected items still remain in namespace: {namespace} for gvr: {gvr}"
            )),
        )
    }

    /// How long graceful deletion may still take: for pods, the longest grace period of a pod
    /// not yet finished, unless that much time has passed since the namespace was deleted.
    async fn estimate(
        &self,
        r: &Resource,
        namespace: &str,
        deleted_at: OffsetDateTime,
    ) -> client::Result<i64> {
        if !(r.group.is_empty() && r.plural == "pods") {
            return Ok(0);
        }
        let (pods, _) = self
            .client
            .list_all(r, Some(namespace), &ListParams::default())
            .await?;
        let estimate = pods
            .iter()
            .filter(|p| {
                !matches!(
                    p.pointer("/status/phase").and_then(Value::as_str),
                    Some("Succeeded" | "Failed")
                )
            })
            .filter_map(|p| {
                p.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .max()
            .unwrap_or(0);
        let elapsed = (OffsetDateTime::now_utc() - deleted_at).whole_seconds();
        Ok(if elapsed >= estimate { 0 } else { estimate })
    }
}

impl Reconciler for NamespaceController {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action> {
        if self.namespaces.get(key).is_none() {
            tracing::debug!(namespace = key, "namespace has been deleted");
            return Ok(Action::Done);
        }
        self.sync(key).await
    }
}

/// What remains of one resource in the namespace.
#[derive(Debug, Default)]
struct Remaining {
    /// Seconds until it is expected gone (0: no estimate).
    estimate: i64,
    objects: usize,
    /// Objects per finalizer they still carry.
    finalizers: BTreeMap<String, usize>,
}

/// The condition types this controller maintains, in upstream's order.
const CONDITION_TYPES: [&str; 5] = [
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
];

/// Reason and message of each condition type when all is well.
fn ok_condition(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "NamespaceDeletionDiscoveryFailure" => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        "NamespaceDeletionGroupVersionParsingFailure" => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        "NamespaceDeletionContentFailure" => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        _ => ("ContentRemoved", "All content successfully removed"),
    }
}

/// The failing conditions found by one sync (upstream's `namespaceConditionUpdater`); every
/// other maintained condition is set to its "ok" form.
#[derive(Debug, Default)]
struct Conditions {
    failing: BTreeMap<&'static str, (&'static str, String)>,
}

impl Conditions {
    fn discovery_failed(&mut self, message: String) {
        self.failing.insert(
            "NamespaceDeletionDiscoveryFailure",
            ("DiscoveryFailed", message),
        );
    }

    fn group_version_failed(&mut self, message: String) {
        self.failing.insert(
            "NamespaceDeletionGroupVersionParsingFailure",
            ("GroupVersionParsingFailed", message),
        );
    }

    fn content_errors(&mut self, errors: &[String]) {
        if errors.is_empty() {
            return;
        }
        let mut messages = errors.to_vec();
        messages.sort();
        self.failing.insert(
            "NamespaceDeletionContentFailure",
            (
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    errors.len(),
                    messages.join(", ")
                ),
            ),
        );
    }

    fn content_totals(
        &mut self,
        by_resource: &BTreeMap<Resource, usize>,
        by_finalizer: &BTreeMap<String, usize>,
    ) {
        if !by_resource.is_empty() {
            let mut parts: Vec<String> = by_resource
                .iter()
                .map(|(r, n)| format!("{}.{} has {n} resource instances", r.plural, r.group))
                .collect();
            parts.sort();
            self.failing.insert(
                "NamespaceContentRemaining",
                (
                    "SomeResourcesRemain",
                    format!("Some resources are remaining: {}", parts.join(", ")),
                ),
            );
        }
        if !by_finalizer.is_empty() {
            let mut parts: Vec<String> = by_finalizer
                .iter()
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            parts.sort();
            self.failing.insert(
                "NamespaceFinalizersRemaining",
                (
                    "SomeFinalizerRemain",
                    format!("Some finalizers are remaining: {}", parts.join(", ")),
                ),
            );
        }
    }

    /// The namespace with its conditions brought up to date, or `None` if they already are.
    /// A condition's lastTransitionTime changes only when its status does.
    fn apply(&self, namespace: &Value) -> Option<Value> {
        let mut conditions: Vec<Value> = namespace
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut changed = false;
        for kind in CONDITION_TYPES {
            let (status, reason, message) = match self.failing.get(kind) {
                Some((reason, message)) => ("True", *reason, message.clone()),
                None => {
                    let (reason, message) = ok_condition(kind);
                    ("False", reason, message.to_string())
                }
            };
            match conditions.iter_mut().find(|c| c["type"] == kind) {
                None => {
                    conditions.push(json!({
                        "type": kind,
                        "status": status,
                        "lastTransitionTime": now(),
                        "reason": reason,
                        "message": message,
                    }));
                    changed = true;
                }
                Some(old) => {
                    if old["status"] != status
                        || old["reason"] != reason
                        || old["message"] != message.as_str()
                    {
                        if old["status"] != status {
                            old["lastTransitionTime"] = json!(now());
                        }
                        old["status"] = json!(status);
                        old["reason"] = json!(reason);
                        old["message"] = json!(message);
                        changed = true;
                    }
                }
            }
        }
        changed.then(|| {
            let mut ns = namespace.clone();
            ns["status"]["conditions"] = json!(conditions);
            ns
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(ns: &Value) -> Vec<String> {
        ns["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{} {} {}: {}",
                    c["type"].as_str().unwrap(),
                    c["status"].as_str().unwrap(),
                    c["reason"].as_str().unwrap(),
                    c["message"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn conditions_as_upstream() {
        let ns = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        let mut c = Conditions::default();
        let by_resource = BTreeMap::from([
            (Resource::core("pods", true), 2),
            (Resource::new("example.com", "v1", "widgets", true), 1),
        ]);
        let by_finalizer = BTreeMap::from([("example.com/hold".to_string(), 3)]);
        c.content_totals(&by_resource, &by_finalizer);
        c.content_errors(&["b failed".into(), "a failed".into()]);
        let ns = c.apply(&ns).unwrap();
        assert_eq!(
            summary(&ns),
            [
                "NamespaceDeletionDiscoveryFailure False ResourcesDiscovered: All resources successfully discovered",
                "NamespaceDeletionGroupVersionParsingFailure False ParsedGroupVersions: All legacy kube types successfully parsed",
                "NamespaceDeletionContentFailure True ContentDeletionFailed: Failed to delete all resource types, 2 remaining: a failed, b failed",
                "NamespaceContentRemaining True SomeResourcesRemain: Some resources are remaining: pods. has 2 resource instances, widgets.example.com has 1 resource instances",
                "NamespaceFinalizersRemaining True SomeFinalizerRemain: Some finalizers are remaining: example.com/hold in 3 resource instances",
            ]
        );
        // The same outcome again changes nothing.
        assert!(c.apply(&ns).is_none());
        // All well: every condition flips to its ok form, with a new transition time only
        // where the status changed.
        let mut stamped = ns.clone();
        for cond in stamped["status"]["conditions"].as_array_mut().unwrap() {
            cond["lastTransitionTime"] = json!("2020-01-01T00:00:00Z");
        }
        let ok = Conditions::default().apply(&stamped).unwrap();
        let times: Vec<&str> = ok["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["lastTransitionTime"].as_str().unwrap())
            .collect();
        assert_eq!(times[..2], ["2020-01-01T00:00:00Z"; 2]);
        assert!(times[2..].iter().all(|t| *t != "2020-01-01T00:00:00Z"));
        assert_eq!(
            summary(&ok)[4],
            "NamespaceFinalizersRemaining False ContentRemoved: All content successfully removed"
        );
    }
}
