//! The resource quota controller: for every ResourceQuota, `status.hard` is `spec.hard` and `status.used` the usage upstream's evaluators compute from the shared informers' caches; recomputed when counted objects change, and every sync period.

pub mod usage;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{self, ApiResource, Client, Resource};
use crate::controller::{self, Action, Reconciler};
use crate::informer::{Event, Informer, Informers, key_of, split_key};
use crate::queue::{RateLimiter, WorkQueue};
use usage::Evaluator;

/// kube-controller-manager's `--concurrent-resource-quota-syncs`.
const WORKERS: usize = 5;
/// kube-controller-manager's `--resource-quota-sync-period`.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(300);
/// How long a sync waits for a newly started informer before trying again later.
const SYNC_WAIT: Duration = Duration::from_secs(10);
/// Discovery is asked again for an unknown `count/` resource at most this often.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);
/// Resources upstream's quota monitor ignores (`DefaultIgnoredResources`).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// Why a sync of a quota failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the quota's status failed.
    #[error("cannot update the status of resourcequota {key}")]
    UpdateStatus {
        key: String,
        #[source]
        source: client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn resource_quotas() -> Resource {
    Resource::core("resourcequotas", true)
}

/// The quota resource names a quota constrains: `spec.hard`'s (what the controller computes)
/// and `status.hard`'s (what admission charges).
fn constrained(quota: &Value) -> BTreeSet<String> {
    ["/spec/hard", "/status/hard"]
        .iter()
        .filter_map(|p| quota.pointer(p).and_then(Value::as_object))
        .flat_map(|m| m.keys().cloned())
        .collect()
}

/// Whether an update of a counted object can change what a quota sees (upstream's monitor
/// only replenishes on such updates; creates are charged by admission, but recounting them
/// here keeps usage current without it).
fn update_matters(evaluator: &Evaluator, old: &Value, new: &Value) -> bool {
    let now = OffsetDateTime::now_utc();
    match evaluator {
        Evaluator::Pods => {
            usage::pod_usage(old, now) != usage::pod_usage(new, now)
                || usage::pod_scope_facts(old) != usage::pod_scope_facts(new)
        }
        Evaluator::Services => {
            usage::service_quota_type(old) != usage::service_quota_type(new)
                || evaluator.usage(old, now) != evaluator.usage(new, now)
        }
        Evaluator::PersistentVolumeClaims => {
            usage::pvc_replenish_facts(old) != usage::pvc_replenish_facts(new)
                || evaluator.usage(old, now) != evaluator.usage(new, now)
        }
        Evaluator::Count { .. } => false,
    }
}

/// Discovery's namespaced resources, fetched when a `count/` name is unknown.
#[derive(Default)]
struct DiscoveryCache {
    fetched: Option<Instant>,
    resources: Vec<ApiResource>,
}

/// The resource quota controller.
pub struct ResourceQuotaController {
    client: Client,
    informers: Informers,
    quotas: Informer,
    queue: WorkQueue,
    sync_period: Duration,
    /// The informer of each evaluator's resource, once it has a replenishment handler.
    monitored: Mutex<HashMap<Evaluator, Informer>>,
    discovery: tokio::sync::Mutex<DiscoveryCache>,
}

impl std::fmt::Debug for ResourceQuotaController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceQuotaController")
            .finish_non_exhaustive()
    }
}

impl ResourceQuotaController {
    /// A controller recomputing every quota each `sync_period` besides on changes.
    pub fn new(
        client: Client,
        informers: &Informers,
        sync_period: Duration,
    ) -> Arc<ResourceQuotaController> {
        let quotas = informers.informer(&resource_quotas());
        let queue = WorkQueue::new("resourcequota", RateLimiter::default());
        let enqueue = queue.clone();
        quotas.add_handler(move |event| {
            let quota = match event {
                Event::Added(q) | Event::Deleted(q) => q,
                // Status writes are this controller's own: only a changed spec needs a sync.
                Event::Updated { old, new } if old.get("spec") != new.get("spec") => new,
                Event::Updated { .. } => return,
            };
            if let Some(key) = key_of(quota) {
                enqueue.add(&key);
            }
        });
        Arc::new(ResourceQuotaController {
            client,
            informers: informers.clone(),
            quotas,
            queue,
            sync_period,
            monitored: Mutex::new(HashMap::new()),
            discovery: tokio::sync::Mutex::new(DiscoveryCache::default()),
        })
    }

    /// Run until `shutdown`, once the quota cache has synced; every sync period, queue
    /// every quota for a full recount.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.quotas.wait_synced(&shutdown).await {
            return;
        }
        tracing::info!(
            controller = "resourcequota",
            workers = WORKERS,
            sync_period_s = self.sync_period.as_secs_f64(),
            "controller started"
        );
        let resync = {
            let (quotas, queue, period) =
                (self.quotas.clone(), self.queue.clone(), self.sync_period);
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = shutdown.cancelled() => return,
                    }
                    let all = quotas.list();
                    tracing::debug!(
                        controller = "resourcequota",
                        quotas = all.len(),
                        "full resync of quota usage"
                    );
                    for quota in all {
                        if let Some(key) = key_of(&quota) {
                            queue.add(&key);
                        }
                    }
                }
            })
        };
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
        let _ = resync.await;
    }

    /// The evaluators for `names`: the static ones, and an object count for each `count/`
    /// name of a served namespaced resource that has none.
    async fn evaluators_for(&self, names: &BTreeSet<String>) -> Vec<Evaluator> {
        let mut evaluators = usage::static_evaluators();
        let covered: HashSet<(String, String)> = evaluators
            .iter()
            .map(|e| {
                let (g, r) = e.group_resource();
                (g.to_string(), r.to_string())
            })
            .collect();
        let wanted: Vec<(String, String)> = names
            .iter()
            .filter_map(|n| n.strip_prefix("count/"))
            .map(|gr| match gr.split_once('.') {
                Some((resource, group)) => (group.to_string(), resource.to_string()),
                None => (String::new(), gr.to_string()),
            })
            .filter(|gr| !covered.contains(gr))
            .filter(|(g, r)| !IGNORED.contains(&(g.as_str(), r.as_str())))
            .collect();
        if wanted.is_empty() {
            return evaluators;
        }
        let served = self.served(&wanted).await;
        for (group, resource) in wanted {
            if served.contains(&(group.clone(), resource.clone())) {
                evaluators.push(Evaluator::Count {
                    group,
                    resource,
                    alias: None,
                });
            }
        }
        evaluators
    }

    /// Which of `wanted` discovery lists as namespaced resources a quota can count (upstream's
    /// `GetQuotableResources`: create, list, watch and delete).
    async fn served(&self, wanted: &[(String, String)]) -> HashSet<(String, String)> {
        let mut cache = self.discovery.lock().await;
        let known = |cache: &DiscoveryCache| {
            wanted.iter().all(|(g, r)| {
                cache
                    .resources
                    .iter()
                    .any(|a| a.resource.group == *g && a.resource.plural == *r)
            })
        };
        let stale = cache
            .fetched
            .is_none_or(|at| at.elapsed() >= DISCOVERY_INTERVAL);
        if !known(&cache) && stale {
            let discovery = self.client.discover().await;
            if let Some(message) = discovery.error_message() {
                tracing::warn!(
                    controller = "resourcequota",
                    error = message,
                    "discovery incomplete"
                );
            }
            cache.resources = discovery
                .resources
                .into_iter()
                .filter(|a| {
                    a.resource.namespaced
                        && ["create", "list", "watch", "delete"]
                            .iter()
                            .all(|v| a.supports(v))
                })
                .collect();
            cache.fetched = Some(Instant::now());
        }
        cache
            .resources
            .iter()
            .map(|a| (a.resource.group.clone(), a.resource.plural.clone()))
            .collect()
    }

    /// The resource an evaluator reads, at the version discovery prefers (core ones at v1).
    async fn resource_of(&self, evaluator: &Evaluator) -> Option<Resource> {
        let (group, plural) = evaluator.group_resource();
        // The static evaluators' resources are all core/v1.
        if usage::static_evaluators().contains(evaluator) {
            return Some(Resource::core(plural, true));
        }
        let cache = self.discovery.lock().await;
        cache
            .resources
            .iter()
            .find(|a| a.resource.group == group && a.resource.plural == plural)
            .map(|a| a.resource.clone())
    }

    /// The informer of `evaluator`'s resource, with a handler that queues the quotas of a
    /// namespace whose counted objects change; started on first use.
    async fn monitor(&self, evaluator: &Evaluator) -> Option<Informer> {
        if let Some(informer) = self.monitored.lock().get(evaluator) {
            return Some(informer.clone());
        }
        let resource = self.resource_of(evaluator).await?;
        let mut monitored = self.monitored.lock();
        if let Some(informer) = monitored.get(evaluator) {
            return Some(informer.clone());
        }
        let informer = self.informers.informer(&resource);
        let (quotas, queue, watched) = (self.quotas.clone(), self.queue.clone(), evaluator.clone());
        informer.add_handler(move |event| {
            let object = match event {
                Event::Added(o) | Event::Deleted(o) => o,
                Event::Updated { old, new } if update_matters(&watched, old, new) => new,
                Event::Updated { .. } => return,
            };
            let Some(key) = key_of(object) else { return };
            let (namespace, _) = split_key(&key);
            for quota in quotas.list_namespace(namespace) {
                if !watched.matching_resources(&constrained(&quota)).is_empty()
                    && let Some(quota_key) = key_of(&quota)
                {
                    queue.add(&quota_key);
                }
            }
        });
        tracing::debug!(controller = "resourcequota", resource = %resource, "monitoring resource for quota");
        monitored.insert(evaluator.clone(), informer.clone());
        Some(informer)
    }

    /// Upstream's `syncResourceQuota`.
    async fn sync(&self, key: &str) -> Result<Action> {
        let Some(quota) = self.quotas.get(key) else {
            return Ok(Action::Done);
        };
        let (namespace, name) = split_key(key);
        let spec_hard = usage::parse_list(quota.pointer("/spec/hard")).unwrap_or_default();
        let status_hard = usage::parse_list(quota.pointer("/status/hard"));
        let status_used = usage::parse_list(quota.pointer("/status/used"));
        let mut dirty = status_hard.as_ref() != Some(&spec_hard) || status_used.is_none();

        let names: BTreeSet<String> = spec_hard.keys().cloned().collect();
        let all = self.evaluators_for(&names).await;
        let mut evaluators = Vec::new();
        let mut objects: HashMap<Evaluator, Vec<Arc<Value>>> = HashMap::new();
        for evaluator in all {
            if evaluator.matching_resources(&names).is_empty() {
                continue;
            }
            let Some(informer) = self.monitor(&evaluator).await else {
                continue;
            };
            if !informer.has_synced() {
                let waited = tokio::time::timeout(SYNC_WAIT, async {
                    informer.wait_synced(&CancellationToken::new()).await
                })
                .await;
                if waited.is_err() {
                    tracing::debug!(
                        controller = "resourcequota",
                        key,
                        resource = %informer.resource(),
                        "cache not synced yet; retrying later"
                    );
                    return Ok(Action::RequeueAfter(Duration::from_secs(1)));
                }
            }
            let mut items = informer.list_namespace(namespace);
            items.sort_by_key(|o| key_of(o));
            objects.insert(evaluator.clone(), items);
            evaluators.push(evaluator);
        }

        let requirements = usage::scope_requirements(&quota);
        let computed = usage::calculate_usage(
            &spec_hard,
            &requirements,
            &evaluators,
            |e| objects.get(e).map_or(&[][..], Vec::as_slice),
            OffsetDateTime::now_utc(),
        );
        let mut used = status_used.clone().unwrap_or_default();
        used.extend(computed);
        let used = usage::mask(&used, &names);
        dirty = dirty || status_used.as_ref() != Some(&used);
        if !dirty {
            return Ok(Action::Done);
        }

        let mut updated = (*quota).clone();
        let mut status = json!({"hard": usage::to_json(&spec_hard)});
        if !used.is_empty() {
            status["used"] = usage::to_json(&used);
        }
        updated["status"] = status;
        match self
            .client
            .update_subresource(
                &resource_quotas(),
                Some(namespace),
                name,
                "status",
                &updated,
            )
            .await
        {
            Ok(_) => {
                tracing::debug!(
                    controller = "resourcequota",
                    key,
                    used = %updated["status"]["used"],
                    "quota usage updated"
                );
                Ok(Action::Done)
            }
            Err(e) if e.is_not_found() => Ok(Action::Done),
            Err(source) => Err(Error::UpdateStatus {
                key: key.to_string(),
                source,
            }),
        }
    }
}

impl Reconciler for ResourceQuotaController {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action> {
        self.sync(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constrained_names_come_from_spec_and_status() {
        let quota = json!({"spec": {"hard": {"pods": "1"}}, "status": {"hard": {"secrets": "1"}}});
        assert_eq!(
            constrained(&quota).into_iter().collect::<Vec<_>>(),
            ["pods", "secrets"]
        );
    }

    #[test]
    fn only_usage_changing_updates_matter() {
        let pod = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}, "status": {"phase": "Running"}});
        let mut labelled = pod.clone();
        labelled["metadata"] = json!({"labels": {"a": "b"}});
        assert!(!update_matters(&Evaluator::Pods, &pod, &labelled));
        let mut done = pod.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert!(update_matters(&Evaluator::Pods, &pod, &done));
        let count = usage::static_evaluators().pop().unwrap();
        assert!(!update_matters(&count, &pod, &done));
        let svc = json!({"spec": {"type": "ClusterIP"}});
        let np = json!({"spec": {"type": "NodePort"}});
        assert!(update_matters(&Evaluator::Services, &svc, &np));
    }
}
