//! The garbage collector: an ownerReferences graph over every deletable resource (custom resources included, found by periodic discovery), whose workers delete objects all of whose owners are gone (background), delete the dependents of owners being deleted in the foreground before removing their `foregroundDeletion` finalizer, and remove owner references from the dependents of owners deleted with the `orphan` finalizer, as upstream's `pkg/controller/garbagecollector`.
//!
//! Informer events (metadata-only informers, or the shared full ones where they run) go
//! through one channel to one task that owns the graph's writes (upstream's
//! `processGraphChanges`); it queues uids on `attemptToDelete` and `attemptToOrphan`, whose
//! workers decide from the graph and from fresh reads of the objects (never from the graph
//! alone) and write through the API with uid and resourceVersion preconditions.

mod graph;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{
    self, ApiResource, Client, DeleteParams, PatchType, PropagationPolicy, Resource,
};
use crate::events::{Recorder, WARNING};
use crate::informer::{Event, Informer, Informers};
use crate::queue::{RateLimiter, WorkQueue};

pub use graph::{
    Change, ChangeKind, Decision, Effect, FOREGROUND_FINALIZER, Graph, Identity, Meta,
    ORPHAN_FINALIZER, OwnerRef, OwnerState, decide,
};

/// Workers of each queue (kube-controller-manager's `--concurrent-gc-syncs`).
const WORKERS: usize = 20;
/// How often discovery is read again for new or removed resources (upstream's 30 s).
const RESYNC_PERIOD: Duration = Duration::from_secs(30);
/// After a CustomResourceDefinition changes, discovery is read again this soon.
const RESYNC_AFTER_CRD: Duration = Duration::from_millis(500);
/// How long the workers wait for the first lists before they start anyway.
const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Owners known to be absent that are remembered (upstream's `ReferenceCache` of 500).
const ABSENT_OWNERS: usize = 500;
/// Attempts of a read-modify-write that meets conflicts before the key is retried later.
const CONFLICT_RETRIES: usize = 5;
/// The reporting controller of the collector's events.
const COMPONENT: &str = "garbage-collector-controller";

/// Why one attempt on an object failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Discovery does not (yet) know the kind.
    #[error("unable to get REST mapping for {kind}.{api_version}")]
    Mapping { api_version: String, kind: String },
    /// A cluster-scoped object names a namespaced owner: never resolved by retrying.
    #[error("cluster-scoped objects cannot refer to namespaced owners")]
    NamespacedOwnerOfClusterScopedObject,
    /// A request failed.
    #[error("cannot {action} {identity}")]
    Api {
        action: &'static str,
        identity: Box<Identity>,
        #[source]
        source: client::Error,
    },
    /// Writes kept meeting conflicts.
    #[error("cannot {action} {identity}: still conflicting after {CONFLICT_RETRIES} attempts")]
    Conflicts {
        action: &'static str,
        identity: Box<Identity>,
    },
    /// Some dependents could not be orphaned.
    #[error("failed to orphan dependents of owner {owner}: {}", errors.join("; "))]
    Orphan {
        owner: Box<Identity>,
        errors: Vec<String>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What becomes of a queued uid after a successful attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Forget,
    /// Again after its backoff (a virtual node not yet observed).
    Requeue,
}

/// Owners known not to exist, the oldest forgotten first.
#[derive(Debug, Default)]
struct AbsentOwners {
    set: HashSet<Identity>,
    order: VecDeque<Identity>,
}

impl AbsentOwners {
    fn add(&mut self, identity: Identity) {
        if self.set.insert(identity.clone()) {
            self.order.push_back(identity);
            while self.order.len() > ABSENT_OWNERS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn has(&self, identity: &Identity) -> bool {
        self.set.contains(identity)
    }
}

/// `(group, kind)` → the resource serving it (upstream's REST mapper), from discovery.
type Mapper = HashMap<(String, String), Resource>;

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The garbage collector.
pub struct GarbageCollector {
    client: Client,
    informers: Informers,
    recorder: Recorder,
    graph: RwLock<Graph>,
    changes: mpsc::UnboundedSender<Change>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
    attempt_to_delete: WorkQueue,
    attempt_to_orphan: WorkQueue,
    absent: Mutex<AbsentOwners>,
    mapper: RwLock<Mapper>,
    /// The resources watched, with their informers.
    monitors: Mutex<BTreeMap<Resource, Informer>>,
    /// Rings when CustomResourceDefinitions change.
    resync: Arc<Notify>,
}

impl std::fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarbageCollector").finish_non_exhaustive()
    }
}

/// Whether the collector watches a resource: it must list, watch and delete; events are
/// left out (upstream's `DefaultIgnoredResources`).
fn collectable(r: &ApiResource) -> bool {
    let events =
        r.resource.plural == "events" && matches!(r.resource.group.as_str(), "" | "events.k8s.io");
    !events && ["delete", "list", "watch"].iter().all(|v| r.supports(v))
}

fn is_crds(r: &Resource) -> bool {
    r.group == "apiextensions.k8s.io" && r.plural == "customresourcedefinitions"
}

/// The graph change an informer event makes.
fn change_of(event: Event<'_>, api_version: &str, kind: &str) -> Option<Change> {
    let (kind_of_change, object, old) = match event {
        Event::Added(o) => (ChangeKind::Upsert, o, None),
        Event::Updated { old, new } => (ChangeKind::Upsert, new, Some(Meta::of(old))),
        Event::Deleted(o) => (ChangeKind::Delete, o, None),
    };
    Some(Change {
        kind: kind_of_change,
        virtual_event: false,
        identity: Identity::of(object, api_version, kind)?,
        meta: Meta::of(object),
        old,
    })
}

impl GarbageCollector {
    pub fn new(client: Client, informers: &Informers) -> Arc<GarbageCollector> {
        let (changes, receiver) = mpsc::unbounded_channel();
        Arc::new(GarbageCollector {
            recorder: Recorder::new(client.clone(), COMPONENT),
            client,
            informers: informers.clone(),
            graph: RwLock::new(Graph::default()),
            changes,
            receiver: Mutex::new(Some(receiver)),
            attempt_to_delete: WorkQueue::new(
                "garbage_collector_attempt_to_delete",
                RateLimiter::default(),
            ),
            attempt_to_orphan: WorkQueue::new(
                "garbage_collector_attempt_to_orphan",
                RateLimiter::default(),
            ),
            absent: Mutex::new(AbsentOwners::default()),
            mapper: RwLock::new(Mapper::new()),
            monitors: Mutex::new(BTreeMap::new()),
            resync: Arc::new(Notify::new()),
        })
    }

    /// Run until `shutdown`: watch what discovery lists, build the graph, and collect.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        if let Some(mut receiver) = self.receiver.lock().take() {
            let gc = self.clone();
            tasks.spawn(async move {
                while let Some(change) = receiver.recv().await {
                    let effects = gc.graph.write().process(change);
                    gc.apply(effects);
                }
            });
        }
        self.sync_monitors().await;
        let monitors: Vec<Informer> = self.monitors.lock().values().cloned().collect();
        let synced = async {
            for informer in &monitors {
                if !informer.wait_synced(&shutdown).await {
                    return;
                }
            }
        };
        if tokio::time::timeout(INITIAL_SYNC_TIMEOUT, synced)
            .await
            .is_err()
        {
            tracing::info!(
                controller = "garbagecollector",
                "not all resource monitors could be synced; proceeding anyway"
            );
        }
        if shutdown.is_cancelled() {
            return;
        }
        tracing::info!(
            controller = "garbagecollector",
            workers = WORKERS,
            resources = monitors.len(),
            "controller started"
        );
        for _ in 0..WORKERS {
            tasks.spawn(self.clone().work(self.attempt_to_delete.clone(), false));
            tasks.spawn(self.clone().work(self.attempt_to_orphan.clone(), true));
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RESYNC_PERIOD) => {}
                _ = self.resync.notified() => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(RESYNC_AFTER_CRD) => {}
                    }
                }
            }
            self.sync_monitors().await;
        }
        self.attempt_to_delete.shut_down();
        self.attempt_to_orphan.shut_down();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Read discovery; watch the collectable resources not yet watched, stop watching those
    /// no longer served (keeping those of groups discovery failed on), refresh the mapper
    /// (upstream's `Sync` and `syncMonitors`).
    async fn sync_monitors(&self) {
        let discovery = self.client.discover().await;
        if let Some(message) = discovery.error_message() {
            tracing::info!(
                controller = "garbagecollector",
                error = message,
                "discovery incomplete"
            );
        }
        let whole_failure = discovery
            .failures
            .iter()
            .any(|f| f.group_version.is_empty());
        let failed: HashSet<&str> = discovery
            .failures
            .iter()
            .map(|f| f.group_version.as_str())
            .collect();
        let kept = |r: &Resource| whole_failure || failed.contains(r.api_version().as_str());
        {
            let mut mapper = self.mapper.write();
            let mut fresh: Mapper = mapper
                .iter()
                .filter(|(_, r)| kept(r))
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            for r in &discovery.resources {
                fresh.insert(
                    (r.resource.group.clone(), r.kind.clone()),
                    r.resource.clone(),
                );
            }
            *mapper = fresh;
        }
        let wanted: BTreeMap<Resource, String> = discovery
            .resources
            .iter()
            .filter(|r| collectable(r))
            .map(|r| (r.resource.clone(), r.kind.clone()))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut monitors = self.monitors.lock();
        let removed: Vec<Resource> = monitors
            .keys()
            .filter(|r| !wanted.contains_key(*r) && !kept(r))
            .cloned()
            .collect();
        for r in removed {
            if self.informers.has_metadata_informer(&r) {
                self.informers.stop_metadata_informer(&r);
                monitors.remove(&r);
                tracing::info!(controller = "garbagecollector", resource = %r, "stopped watching");
            }
        }
        let mut added = 0;
        for (r, kind) in wanted {
            if monitors.contains_key(&r) {
                continue;
            }
            let informer = self.informers.metadata_informer(&r);
            let (api_version, tx) = (r.api_version(), self.changes.clone());
            let resync = is_crds(&r).then(|| self.resync.clone());
            informer.add_handler(move |event| {
                if let Some(change) = change_of(event, &api_version, &kind) {
                    let _ = tx.send(change);
                }
                if let Some(resync) = &resync {
                    resync.notify_one();
                }
            });
            monitors.insert(r, informer);
            added += 1;
        }
        if added > 0 {
            tracing::debug!(
                controller = "garbagecollector",
                added,
                watched = monitors.len(),
                "monitors synced"
            );
        }
    }

    /// Carry out what a graph change calls for.
    fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::AttemptToDelete(uid) => self.attempt_to_delete.add(&uid),
                Effect::AttemptToDeleteLater(uid) => self.attempt_to_delete.add_rate_limited(&uid),
                Effect::AttemptToOrphan(uid) => self.attempt_to_orphan.add(&uid),
                Effect::Absent(identity) => self.absent.lock().add(identity),
                Effect::InvalidNamespace { dependent, owner } => {
                    let note = format!(
                        "ownerRef {} does not exist in namespace {:?}",
                        owner.identity_in(&dependent.namespace),
                        dependent.namespace
                    );
                    tracing::info!(
                        controller = "garbagecollector",
                        item = %dependent,
                        "{note}"
                    );
                    self.recorder.emit(
                        &dependent.reference(),
                        WARNING,
                        "OwnerRefInvalidNamespace",
                        "GarbageCollect",
                        &note,
                    );
                }
            }
        }
    }

    /// One worker of a queue.
    async fn work(self: Arc<Self>, queue: WorkQueue, orphan: bool) {
        while let Some(uid) = queue.get().await {
            let result = if orphan {
                self.attempt_to_orphan(&uid).await
            } else {
                self.attempt_to_delete(&uid).await
            };
            match result {
                Ok(Outcome::Forget) => queue.forget(&uid),
                Ok(Outcome::Requeue) => queue.add_rate_limited(&uid),
                Err(e) => {
                    tracing::warn!(
                        controller = "garbagecollector",
                        queue = queue.name(),
                        uid,
                        retries = queue.requeues(&uid),
                        error = %crate::error_chain(&e),
                        "error syncing item; retrying with backoff"
                    );
                    queue.add_rate_limited(&uid);
                }
            }
            queue.done(&uid);
        }
    }

    fn node(&self, uid: &str) -> Option<graph::Node> {
        self.graph.read().node(uid).cloned()
    }

    /// The resource of `api_version`/`kind`.
    fn resource(&self, api_version: &str, kind: &str) -> Result<Resource> {
        self.mapper
            .read()
            .get(&(group_of(api_version).to_string(), kind.to_string()))
            .cloned()
            .ok_or_else(|| Error::Mapping {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }

    /// The object at `identity` as metadata; `None` if it is gone or has another uid.
    async fn get_latest(&self, identity: &Identity) -> Result<Option<Value>> {
        let r = self.resource(&identity.api_version, &identity.kind)?;
        if r.namespaced && identity.namespace.is_empty() {
            // A namespaced kind named by a cluster-scoped dependent: no such object.
            return Ok(None);
        }
        match self
            .client
            .get_metadata(&r, Some(&identity.namespace), &identity.name)
            .await
        {
            Ok(o) if o.pointer("/metadata/uid").and_then(Value::as_str) == Some(&identity.uid) => {
                Ok(Some(o))
            }
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(source) => Err(Error::Api {
                action: "get",
                identity: Box::new(identity.clone()),
                source,
            }),
        }
    }

    /// Tell the graph that a lookup found no object at `identity`.
    fn virtual_delete(&self, identity: &Identity) {
        let _ = self.changes.send(Change {
            kind: ChangeKind::Delete,
            virtual_event: true,
            identity: identity.clone(),
            meta: Meta::default(),
            old: None,
        });
    }

    /// Upstream's `attemptToDeleteWorker`.
    async fn attempt_to_delete(&self, uid: &str) -> Result<Outcome> {
        let Some(node) = self.node(uid) else {
            return Ok(Outcome::Forget);
        };
        match self.attempt_to_delete_item(&node).await {
            Ok(Outcome::Forget) if node.virtual_node => {
                // Not observed yet: check again until an informer sees it (or it is gone).
                match self.node(uid) {
                    Some(n) if n.virtual_node => Ok(Outcome::Requeue),
                    _ => Ok(Outcome::Forget),
                }
            }
            Err(Error::NamespacedOwnerOfClusterScopedObject) => {
                tracing::debug!(controller = "garbagecollector", item = %node.identity, "cluster-scoped item refers to a namespaced owner");
                Ok(Outcome::Forget)
            }
            other => other,
        }
    }

    /// Upstream's `attemptToDeleteItem`: delete the object if it has owners and none is
    /// solid; drop its references to absent owners if one is.
    async fn attempt_to_delete_item(&self, node: &graph::Node) -> Result<Outcome> {
        let identity = &node.identity;
        // Being deleted is a one-way trip: its dependents are handled once it is gone.
        if node.being_deleted && !node.deleting_dependents {
            return Ok(Outcome::Forget);
        }
        let Some(latest) = self.get_latest(identity).await? else {
            self.virtual_delete(identity);
            return Ok(Outcome::Forget);
        };
        if node.deleting_dependents {
            return self.process_deleting_dependents(node).await;
        }
        let owners = graph::owner_refs(&latest);
        if owners.is_empty() {
            return Ok(Outcome::Forget);
        }
        let mut classified = Vec::with_capacity(owners.len());
        for owner in owners {
            let state = self.classify(&owner, identity).await?;
            classified.push((owner, state));
        }
        let (dependents, a_dependent_deletes_dependents) = {
            let graph = self.graph.read();
            let dependents = graph.dependents(&identity.uid);
            (
                dependents.len(),
                dependents.iter().any(|d| d.deleting_dependents),
            )
        };
        let decision = graph::decide(
            &classified,
            dependents,
            a_dependent_deletes_dependents,
            &graph::finalizers(&latest),
        );
        let policy = match decision {
            Decision::Keep => return Ok(Outcome::Forget),
            Decision::RemoveOwnerReferences(uids) => {
                tracing::debug!(controller = "garbagecollector", item = %identity, owners = ?uids, "removing references to absent or waiting owners");
                self.remove_owner_references(identity, &uids).await?;
                return Ok(Outcome::Forget);
            }
            Decision::DeleteForeground { unblock_first } => {
                if unblock_first {
                    self.unblock_owner_references(identity).await?;
                }
                PropagationPolicy::Foreground
            }
            Decision::Delete(policy) => policy,
        };
        tracing::info!(controller = "garbagecollector", item = %identity, ?policy, "deleting item");
        match self.delete_object(identity, &latest, policy).await {
            Err(Error::Api { source, .. }) if source.is_not_found() => {
                self.virtual_delete(identity);
                Ok(Outcome::Forget)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(Outcome::Forget),
        }
    }

    /// Whether `owner`, named by `item`, exists (upstream's `isDangling` and
    /// `classifyReferences`). A namespaced owner is looked up in the item's namespace only.
    async fn classify(&self, owner: &OwnerRef, item: &Identity) -> Result<OwnerState> {
        // Before the absent owners: a namespaced owner looked up (and not found) from a
        // cluster-scoped dependent is recorded as absent without a namespace.
        if item.namespace.is_empty()
            && self
                .resource(&owner.api_version, &owner.kind)
                .is_ok_and(|r| r.namespaced)
        {
            return Err(Error::NamespacedOwnerOfClusterScopedObject);
        }
        let mut key = owner.identity_in("");
        if self.absent.lock().has(&key) {
            return Ok(OwnerState::Dangling);
        }
        key.namespace = item.namespace.clone();
        if self.absent.lock().has(&key) {
            return Ok(OwnerState::Dangling);
        }
        let r = self.resource(&owner.api_version, &owner.kind)?;
        if !r.namespaced {
            key.namespace.clear();
        }
        if item.namespace.is_empty() && r.namespaced {
            return Err(Error::NamespacedOwnerOfClusterScopedObject);
        }
        let found = match self
            .client
            .get_metadata(&r, Some(&item.namespace), &owner.name)
            .await
        {
            Ok(found) => found,
            Err(e) if e.is_not_found() => {
                self.absent.lock().add(key);
                return Ok(OwnerState::Dangling);
            }
            Err(source) => {
                return Err(Error::Api {
                    action: "get owner of",
                    identity: Box::new(item.clone()),
                    source,
                });
            }
        };
        if found.pointer("/metadata/uid").and_then(Value::as_str) != Some(&owner.uid) {
            self.absent.lock().add(key);
            return Ok(OwnerState::Dangling);
        }
        let meta = Meta::of(&found);
        Ok(
            if meta.being_deleted && meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                OwnerState::WaitingForDependentsDeletion
            } else {
                OwnerState::Solid
            },
        )
    }

    /// An owner being deleted in the foreground: remove its finalizer once no dependent
    /// blocks it, else make sure the blocking ones are being collected.
    async fn process_deleting_dependents(&self, node: &graph::Node) -> Result<Outcome> {
        let blocking: Vec<(String, bool)> = self
            .graph
            .read()
            .blocking_dependents(&node.identity.uid)
            .iter()
            .map(|d| (d.identity.uid.clone(), d.deleting_dependents))
            .collect();
        if blocking.is_empty() {
            tracing::debug!(controller = "garbagecollector", item = %node.identity, "removing the foregroundDeletion finalizer");
            self.remove_finalizer(&node.identity, FOREGROUND_FINALIZER)
                .await?;
            return Ok(Outcome::Forget);
        }
        for (uid, deleting_dependents) in blocking {
            if !deleting_dependents {
                self.attempt_to_delete.add(&uid);
            }
        }
        Ok(Outcome::Forget)
    }

    /// Upstream's `attemptToOrphanWorker`: remove the owner from its dependents' references,
    /// then its `orphan` finalizer.
    async fn attempt_to_orphan(&self, uid: &str) -> Result<Outcome> {
        let (owner, dependents) = {
            let graph = self.graph.read();
            let Some(owner) = graph.node(uid) else {
                return Ok(Outcome::Forget);
            };
            let dependents: Vec<Identity> = graph
                .dependents(uid)
                .iter()
                .map(|d| d.identity.clone())
                .collect();
            (owner.identity.clone(), dependents)
        };
        let owner_uid = [owner.uid.clone()];
        let results = futures_util::future::join_all(
            dependents
                .iter()
                .map(|d| self.remove_owner_references(d, &owner_uid)),
        )
        .await;
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|e| crate::error_chain(&e)))
            .collect();
        if !errors.is_empty() {
            return Err(Error::Orphan {
                owner: Box::new(owner),
                errors,
            });
        }
        self.remove_finalizer(&owner, ORPHAN_FINALIZER).await?;
        Ok(Outcome::Forget)
    }

    /// Read `identity` and write back what `change` makes of it (a JSON merge patch carrying
    /// the resourceVersion read, so it applies only to that state), again after conflicts.
    /// Nothing happens if the object is gone or `change` has nothing to change.
    async fn modify(
        &self,
        identity: &Identity,
        action: &'static str,
        change: impl Fn(&Value) -> Option<Value>,
    ) -> Result<()> {
        let r = self.resource(&identity.api_version, &identity.kind)?;
        for _ in 0..CONFLICT_RETRIES {
            let Some(latest) = self.get_latest(identity).await? else {
                return Ok(());
            };
            let Some(mut metadata) = change(&latest) else {
                return Ok(());
            };
            metadata["resourceVersion"] = latest
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            let patch = json!({ "metadata": metadata });
            match self
                .client
                .patch(
                    &r,
                    Some(&identity.namespace),
                    &identity.name,
                    PatchType::Merge,
                    &patch,
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(source) => {
                    return Err(Error::Api {
                        action,
                        identity: Box::new(identity.clone()),
                        source,
                    });
                }
            }
        }
        Err(Error::Conflicts {
            action,
            identity: Box::new(identity.clone()),
        })
    }

    /// Remove the references to `owners` (uids) from `identity`.
    async fn remove_owner_references(&self, identity: &Identity, owners: &[String]) -> Result<()> {
        self.modify(identity, "remove owner references from", |latest| {
            let refs = latest.pointer("/metadata/ownerReferences")?.as_array()?;
            let kept: Vec<Value> = refs
                .iter()
                .filter(|r| {
                    !r.get("uid")
                        .and_then(Value::as_str)
                        .is_some_and(|u| owners.iter().any(|o| o == u))
                })
                .cloned()
                .collect();
            (kept.len() != refs.len()).then(|| {
                json!({"ownerReferences": if kept.is_empty() { Value::Null } else { Value::Array(kept) }})
            })
        })
        .await
    }

    /// Set `blockOwnerDeletion: false` on every owner reference of `identity`.
    async fn unblock_owner_references(&self, identity: &Identity) -> Result<()> {
        self.modify(identity, "unblock owner references of", |latest| {
            let refs = latest.pointer("/metadata/ownerReferences")?.as_array()?;
            if !refs.iter().any(|r| r["blockOwnerDeletion"] == json!(true)) {
                return None;
            }
            let unblocked: Vec<Value> = refs
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r["blockOwnerDeletion"] = json!(false);
                    r
                })
                .collect();
            Some(json!({ "ownerReferences": unblocked }))
        })
        .await
    }

    /// Remove `finalizer` from `identity`.
    async fn remove_finalizer(&self, identity: &Identity, finalizer: &str) -> Result<()> {
        self.modify(identity, "remove a finalizer of", |latest| {
            let all = graph::finalizers(latest);
            if !all.iter().any(|f| f == finalizer) {
                return None;
            }
            let kept: Vec<&String> = all.iter().filter(|f| *f != finalizer).collect();
            Some(json!({"finalizers": if kept.is_empty() { Value::Null } else { json!(kept) }}))
        })
        .await
    }

    /// DELETE `identity` as `latest` shows it: only that uid at that resourceVersion, or,
    /// when only the resourceVersion moved and the owner references did not, that uid
    /// (upstream's `deleteObject`).
    async fn delete_object(
        &self,
        identity: &Identity,
        latest: &Value,
        policy: PropagationPolicy,
    ) -> Result<()> {
        let r = self.resource(&identity.api_version, &identity.kind)?;
        let rv = latest
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            .map(str::to_string);
        let api = |source| Error::Api {
            action: "delete",
            identity: Box::new(identity.clone()),
            source,
        };
        let mut params = DeleteParams {
            propagation_policy: Some(policy),
            precondition_uid: Some(identity.uid.clone()),
            precondition_resource_version: rv.clone(),
            ..Default::default()
        };
        let ns = Some(identity.namespace.as_str());
        match self.client.delete(&r, ns, &identity.name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() && rv.is_some() => {
                let live = self
                    .client
                    .get_metadata(&r, ns, &identity.name)
                    .await
                    .map_err(api)?;
                let meta = |o: &Value, f: &str| o.pointer(&format!("/metadata/{f}")).cloned();
                let same_owners = meta(&live, "ownerReferences") == meta(latest, "ownerReferences");
                if meta(&live, "uid") == Some(json!(identity.uid))
                    && meta(&live, "resourceVersion") != rv.clone().map(Value::String)
                    && same_owners
                {
                    params.precondition_resource_version = None;
                    self.client
                        .delete(&r, ns, &identity.name, &params)
                        .await
                        .map(|_| ())
                        .map_err(api)
                } else {
                    Err(api(e))
                }
            }
            Err(e) => Err(api(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_owners_forget_the_oldest() {
        let mut absent = AbsentOwners::default();
        let id = |i: usize| Identity {
            uid: i.to_string(),
            ..Default::default()
        };
        for i in 0..=ABSENT_OWNERS {
            absent.add(id(i));
        }
        assert!(!absent.has(&id(0)));
        assert!(absent.has(&id(1)) && absent.has(&id(ABSENT_OWNERS)));
        assert_eq!(absent.set.len(), ABSENT_OWNERS);
    }

    #[test]
    fn collectable_resources() {
        let r = |group: &str, plural: &str, verbs: &[&str]| ApiResource {
            resource: Resource::new(group, "v1", plural, true),
            kind: "K".into(),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
        };
        let all = ["create", "delete", "get", "list", "watch"];
        assert!(collectable(&r("", "configmaps", &all)));
        assert!(!collectable(&r("", "events", &all)));
        assert!(!collectable(&r("events.k8s.io", "events", &all)));
        assert!(!collectable(&r("", "bindings", &["create"])));
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("apps/v1"), "apps");
    }
}
