//! The Deployment controller (upstream's `deployment-controller`): each Deployment's ReplicaSets, the current one named `<deployment>-<pod-template-hash>` and found by template equality, rolled out RollingUpdate (maxSurge, maxUnavailable) or Recreate, scaled proportionally mid-rollout, paused and resumed, rolled back, revisions recorded and old ones cleaned up, status and the Progressing and Available conditions kept.
//!
//! It creates, scales and deletes ReplicaSets only; the ReplicaSet controller makes their pods,
//! and their status is what this controller reads back.

pub mod util;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client, DeleteParams, PatchType, Resource};
use crate::controller::{self, Action, Reconciler};
use crate::events::{self, Recorder};
use crate::informer::{Event, Informer, Informers, key_of, split_key};
use crate::queue::{RateLimiter, WorkQueue};
use crate::scheduler::plugins::label_selector_matches;

use util::*;

/// kube-controller-manager's `--concurrent-deployment-syncs` default.
const WORKERS: usize = 5;
const CONTROLLER: &str = "deployment-controller";

/// Why a sync of a Deployment failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write to the API failed.
    #[error("cannot {verb} {what} {namespace}/{name}")]
    Api {
        verb: &'static str,
        what: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: client::Error,
    },
    /// The Deployment was deleted or replaced while ReplicaSets were being adopted.
    #[error("cannot adopt replicasets for deployment {key}: {reason}")]
    CannotAdopt { key: String, reason: String },
    /// The ReplicaSet name the template hash gives is taken by another object: the collision
    /// count was raised and the next sync tries another name.
    #[error("replicaset {namespace}/{name} already exists with another template (hash collision)")]
    Collision { namespace: String, name: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn deployments() -> Resource {
    Resource::new("apps", "v1", "deployments", true)
}

fn replica_sets() -> Resource {
    Resource::new("apps", "v1", "replicasets", true)
}

fn pods() -> Resource {
    Resource::core("pods", true)
}

fn labels(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.pointer("/metadata/labels").and_then(Value::as_object)
}

fn namespace(v: &Value) -> &str {
    str_at(v, "/metadata/namespace")
}

/// The Deployment controller.
pub struct DeploymentController {
    client: Client,
    deployments: Informer,
    replica_sets: Informer,
    pods: Informer,
    queue: WorkQueue,
    recorder: Recorder,
    /// The generation of each ReplicaSet (by uid) as this controller last wrote it, until its
    /// informer has caught up.
    written: parking_lot::Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for DeploymentController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentController")
            .finish_non_exhaustive()
    }
}

/// The Deployments of `namespace` whose (non-empty) selector matches these labels (upstream's
/// `GetDeploymentsForReplicaSet`).
fn deployments_selecting(deployments: &Informer, namespace: &str, object: &Value) -> Vec<String> {
    let Some(object_labels) = labels(object).filter(|l| !l.is_empty()) else {
        return Vec::new();
    };
    deployments
        .list_namespace(namespace)
        .iter()
        .filter(|d| {
            let selector = d.pointer("/spec/selector");
            selector.is_some_and(|s| s != &json!({}))
                && label_selector_matches(selector, Some(object_labels))
        })
        .filter_map(|d| key_of(d))
        .collect()
}

/// The Deployment a controller reference points at, if it is in the cache with that uid.
fn resolve(deployments: &Informer, namespace: &str, reference: &Value) -> Option<Arc<Value>> {
    if str_at(reference, "/kind") != "Deployment" {
        return None;
    }
    let d = deployments.get(&format!("{namespace}/{}", str_at(reference, "/name")))?;
    (uid(&d) == str_at(reference, "/uid")).then_some(d)
}

impl DeploymentController {
    pub fn new(client: Client, informers: &Informers) -> Arc<DeploymentController> {
        let deployment_informer = informers.informer(&deployments());
        let rs_informer = informers.informer(&replica_sets());
        let pod_informer = informers.informer(&pods());
        let queue = WorkQueue::new("deployment", RateLimiter::default());

        let enqueue = queue.clone();
        deployment_informer.add_handler(move |event| {
            let d = match event {
                Event::Added(d) | Event::Updated { new: d, .. } | Event::Deleted(d) => d,
            };
            if let Some(key) = key_of(d) {
                enqueue.add(&key);
            }
        });

        let enqueue = queue.clone();
        let ds = deployment_informer.clone();
        rs_informer.add_handler(move |event| {
            let add = |d: &Value| {
                if let Some(key) = key_of(d) {
                    enqueue.add(&key);
                }
            };
            let orphan = |rs: &Value| {
                for key in deployments_selecting(&ds, namespace(rs), rs) {
                    enqueue.add(&key);
                }
            };
            match event {
                Event::Added(rs) | Event::Deleted(rs) => {
                    match controller_ref(rs) {
                        Some(r) => {
                            if let Some(d) = resolve(&ds, namespace(rs), r) {
                                add(&d);
                            }
                        }
                        // An orphan: the Deployments that might adopt it look (a deleted
                        // orphan concerns nobody).
                        None if matches!(event, Event::Added(_)) && !deleting(rs) => orphan(rs),
                        None => {}
                    }
                }
                Event::Updated { old, new } => {
                    if old.pointer("/metadata/resourceVersion")
                        == new.pointer("/metadata/resourceVersion")
                    {
                        return;
                    }
                    let (old_ref, new_ref) = (controller_ref(old), controller_ref(new));
                    let changed = old_ref != new_ref;
                    if changed
                        && let Some(r) = old_ref
                        && let Some(d) = resolve(&ds, namespace(old), r)
                    {
                        add(&d);
                    }
                    match new_ref {
                        Some(r) => {
                            if let Some(d) = resolve(&ds, namespace(new), r) {
                                add(&d);
                            }
                        }
                        None if changed || labels(old) != labels(new) => orphan(new),
                        None => {}
                    }
                }
            }
        });

        // A Recreate Deployment waits for its old pods to be gone: the last one's deletion
        // wakes it.
        let enqueue = queue.clone();
        let (ds, rss, pod_list) = (
            deployment_informer.clone(),
            rs_informer.clone(),
            pod_informer.clone(),
        );
        pod_informer.add_handler(move |event| {
            let Event::Deleted(pod) = event else { return };
            let ns = namespace(pod);
            let Some(r) = controller_ref(pod).filter(|r| str_at(r, "/kind") == "ReplicaSet") else {
                return;
            };
            let Some(rs) = rss
                .get(&format!("{ns}/{}", str_at(r, "/name")))
                .filter(|rs| uid(rs) == str_at(r, "/uid"))
            else {
                return;
            };
            let Some(d) = controller_ref(&rs).and_then(|r| resolve(&ds, ns, r)) else {
                return;
            };
            if str_at(&d, "/spec/strategy/type") != "Recreate" {
                return;
            }
            let owned: HashSet<String> = rss
                .list_namespace(ns)
                .iter()
                .filter(|rs| is_controlled_by(rs, &d))
                .map(|rs| uid(rs).to_string())
                .collect();
            let remaining = pod_list
                .list_namespace(ns)
                .iter()
                .any(|p| controller_ref(p).is_some_and(|r| owned.contains(str_at(r, "/uid"))));
            if !remaining && let Some(key) = key_of(&d) {
                enqueue.add(&key);
            }
        });

        Arc::new(DeploymentController {
            recorder: Recorder::new(client.clone(), CONTROLLER),
            client,
            deployments: deployment_informer,
            replica_sets: rs_informer,
            pods: pod_informer,
            queue,
            written: parking_lot::Mutex::default(),
        })
    }

    /// Run until `shutdown`, once the caches have synced.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        for informer in [&self.deployments, &self.replica_sets, &self.pods] {
            if !informer.wait_synced(&shutdown).await {
                return;
            }
        }
        tracing::info!(
            controller = CONTROLLER,
            workers = WORKERS,
            "controller started"
        );
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
    }

    fn event(&self, d: &Value, type_: &str, reason: &str, action: &str, note: &str) {
        self.recorder.emit(
            &events::reference(d, "Deployment", "apps/v1"),
            type_,
            reason,
            action,
            note,
        );
    }

    fn api_error(
        verb: &'static str,
        what: &'static str,
        object: &Value,
    ) -> impl FnOnce(client::Error) -> Error {
        let (namespace, name) = (namespace(object).to_string(), name(object).to_string());
        move |source| Error::Api {
            verb,
            what,
            namespace,
            name,
            source,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Writes

    /// PUT the Deployment's status (which carries its annotations too, as upstream's status
    /// strategy keeps them); `d` becomes what the server stored.
    async fn update_status(&self, d: &mut Value) -> Result<()> {
        let annotations = |v: &Value| {
            v.pointer("/metadata/annotations")
                .filter(|a| a.as_object().is_some_and(|a| !a.is_empty()))
                .cloned()
        };
        let sent = annotations(d);
        let stored = self
            .client
            .update_subresource(&deployments(), Some(namespace(d)), name(d), "status", d)
            .await
            .map_err(Self::api_error("update", "deployment status", d))?;
        *d = stored;
        if annotations(d) != sent {
            // This API server keeps metadata out of status writes: the revision annotation
            // goes through the resource itself.
            let mut object = d.clone();
            object["metadata"]["annotations"] = sent.unwrap_or_else(|| json!({}));
            *d = self
                .client
                .update(&deployments(), Some(namespace(d)), name(d), &object)
                .await
                .map_err(Self::api_error("update", "deployment", d))?;
        }
        Ok(())
    }

    async fn update_deployment(&self, d: &mut Value) -> Result<()> {
        *d = self
            .client
            .update(&deployments(), Some(namespace(d)), name(d), d)
            .await
            .map_err(Self::api_error("update", "deployment", d))?;
        Ok(())
    }

    async fn update_rs(&self, rs: &Value) -> Result<Value> {
        let updated = self
            .client
            .update(&replica_sets(), Some(namespace(rs)), name(rs), rs)
            .await
            .map_err(Self::api_error("update", "replicaset", rs))?;
        self.written
            .lock()
            .insert(uid(&updated).to_string(), generation(&updated));
        Ok(updated)
    }

    /// Whether the informer holds every ReplicaSet of `rss` as this controller last wrote it.
    fn cache_current(&self, rss: &[&Value]) -> bool {
        let mut written = self.written.lock();
        let mut current = true;
        for rs in rss {
            if let Some(&wrote) = written.get(uid(rs)) {
                if generation(rs) >= wrote {
                    written.remove(uid(rs));
                } else {
                    current = false;
                }
            }
        }
        current
    }

    /// upstream's `scaleReplicaSetAndRecordEvent`: whether it scaled, and the ReplicaSet now.
    async fn scale_rs(&self, rs: &Value, size: i32, d: &Value) -> Result<(bool, Value)> {
        if replicas(rs) == size {
            return Ok((false, rs.clone()));
        }
        let operation = if replicas(rs) < size { "up" } else { "down" };
        self.scale_rs_with(rs, size, d, operation).await
    }

    /// upstream's `scaleReplicaSet`: the size and the replicas annotations, one update, and a
    /// `ScalingReplicaSet` event when the size changed.
    async fn scale_rs_with(
        &self,
        rs: &Value,
        size: i32,
        d: &Value,
        operation: &str,
    ) -> Result<(bool, Value)> {
        let desired = replicas(d);
        let max = desired + max_surge(d);
        let resize = replicas(rs) != size;
        if !resize && !replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let before = replicas(rs);
        let mut copy = rs.clone();
        set_replicas(&mut copy, size);
        set_replicas_annotations(&mut copy, desired, max);
        let updated = self.update_rs(&copy).await?;
        if resize {
            self.event(
                d,
                events::NORMAL,
                "ScalingReplicaSet",
                "Scaling",
                &format!(
                    "Scaled {operation} replica set {} from {before} to {size}",
                    name(rs)
                ),
            );
        }
        Ok((resize, updated))
    }

    // -----------------------------------------------------------------------------------------
    // Which ReplicaSets are the Deployment's

    /// upstream's `getReplicaSetsForDeployment`: the ReplicaSets this Deployment controls,
    /// adopting matching orphans and releasing owned ones its selector no longer matches.
    async fn claim_replica_sets(&self, d: &Value) -> Result<Vec<Value>> {
        let selector = d.pointer("/spec/selector");
        let mut owned = Vec::new();
        let mut adoption_checked = false;
        for rs in self.replica_sets.list_namespace(namespace(d)) {
            let matches = label_selector_matches(selector, labels(&rs));
            match controller_ref(&rs) {
                Some(r) if str_at(r, "/uid") != uid(d) => {}
                Some(_) if matches => owned.push((*rs).clone()),
                Some(_) => {
                    if !deleting(d) {
                        self.release(d, &rs).await?;
                    }
                }
                None => {
                    if deleting(d) || !matches || deleting(&rs) {
                        continue;
                    }
                    if !adoption_checked {
                        self.recheck_for_adoption(d).await?;
                        adoption_checked = true;
                    }
                    if let Some(adopted) = self.adopt(d, &rs).await? {
                        owned.push(adopted);
                    }
                }
            }
        }
        Ok(owned)
    }

    /// upstream's `RecheckDeletionTimestamp`: a fresh read, so that a Deployment deleted (or
    /// replaced) since the cache saw it adopts nothing.
    async fn recheck_for_adoption(&self, d: &Value) -> Result<()> {
        let key = format!("{}/{}", namespace(d), name(d));
        let fresh = self
            .client
            .get(&deployments(), Some(namespace(d)), name(d))
            .await
            .map_err(Self::api_error("get", "deployment", d))?;
        if uid(&fresh) != uid(d) {
            return Err(Error::CannotAdopt {
                reason: format!(
                    "original Deployment {key} is gone: got uid {}, wanted {}",
                    uid(&fresh),
                    uid(d)
                ),
                key,
            });
        }
        if deleting(&fresh) {
            return Err(Error::CannotAdopt {
                reason: format!(
                    "{key} has just been deleted at {}",
                    str_at(&fresh, "/metadata/deletionTimestamp")
                ),
                key,
            });
        }
        Ok(())
    }

    async fn adopt(&self, d: &Value, rs: &Value) -> Result<Option<Value>> {
        let patch = json!({"metadata": {"ownerReferences": [owner_ref(d)], "uid": uid(rs)}});
        match self
            .client
            .patch(
                &replica_sets(),
                Some(namespace(rs)),
                name(rs),
                PatchType::Strategic,
                &patch,
            )
            .await
        {
            Ok(adopted) => Ok(Some(adopted)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Self::api_error("adopt", "replicaset", rs)(e)),
        }
    }

    async fn release(&self, d: &Value, rs: &Value) -> Result<()> {
        let patch = json!({"metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": uid(d)}],
            "uid": uid(rs),
        }});
        match self
            .client
            .patch(
                &replica_sets(),
                Some(namespace(rs)),
                name(rs),
                PatchType::Strategic,
                &patch,
            )
            .await
        {
            Ok(_) => Ok(()),
            // Gone, or no longer ours (422): nothing to release.
            Err(e) if e.is_not_found() || e.code() == Some(422) => Ok(()),
            Err(e) => Err(Self::api_error("release", "replicaset", rs)(e)),
        }
    }

    /// upstream's `getPodMapForDeployment`: the pods of each owned ReplicaSet, by its uid.
    fn pod_map(&self, d: &Value, rss: &[Value]) -> HashMap<String, Vec<Arc<Value>>> {
        let mut map: HashMap<String, Vec<Arc<Value>>> = rss
            .iter()
            .map(|rs| (uid(rs).to_string(), Vec::new()))
            .collect();
        let selector = d.pointer("/spec/selector");
        for pod in self.pods.list_namespace(namespace(d)) {
            if !label_selector_matches(selector, labels(&pod)) {
                continue;
            }
            if let Some(list) = controller_ref(&pod).and_then(|r| map.get_mut(str_at(r, "/uid"))) {
                list.push(pod);
            }
        }
        map
    }

    // -----------------------------------------------------------------------------------------
    // The sync

    /// upstream's `syncDeployment`.
    async fn sync(&self, key: &str) -> Result<Action> {
        let Some(cached) = self.deployments.get(key) else {
            return Ok(Action::Done);
        };
        let mut d = (*cached).clone();
        if d.pointer("/spec/selector") == Some(&json!({})) {
            self.event(
                &d,
                events::WARNING,
                "SelectingAll",
                "Selecting",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            if observed_generation(&d) < generation(&d) {
                d["status"]["observedGeneration"] = json!(generation(&d));
                self.update_status(&mut d).await?;
            }
            return Ok(Action::Done);
        }
        let mut rss = self.claim_replica_sets(&d).await?;
        let pod_map = self.pod_map(&d, &rss);
        if deleting(&d) {
            let (new, old) = self.all_replica_sets(&mut d, &mut rss, false).await?;
            self.sync_deployment_status(&mut d, new.as_ref(), &old)
                .await?;
            return Ok(Action::Done);
        }
        self.check_paused_conditions(&mut d).await?;
        if paused(&d) {
            self.scale_sync(&mut d, &mut rss).await?;
            return Ok(Action::Done);
        }
        if rollback_to(&d).is_some() {
            self.rollback(&mut d, &mut rss).await?;
            return Ok(Action::Done);
        }
        if self.is_scaling_event(&mut d, &mut rss).await? {
            self.scale_sync(&mut d, &mut rss).await?;
            return Ok(Action::Done);
        }
        if is_rolling(&d) {
            self.rollout_rolling(&mut d, &mut rss).await
        } else {
            self.rollout_recreate(&mut d, &mut rss, &pod_map).await
        }
    }

    /// upstream's `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when asked
    /// and missing) with its revision brought up to date, and all the old ones.
    async fn all_replica_sets(
        &self,
        d: &mut Value,
        rss: &mut Vec<Value>,
        create: bool,
    ) -> Result<(Option<Value>, Vec<Value>)> {
        let refs: Vec<&Value> = rss.iter().collect();
        let existing = find_new(d, &refs).cloned();
        let old: Vec<Value> = rss
            .iter()
            .filter(|rs| existing.as_ref().is_none_or(|n| uid(n) != uid(rs)))
            .cloned()
            .collect();
        let new = self.new_replica_set(d, existing, &old, create).await?;
        // Later steps of this sync see the ReplicaSet as it is now.
        if let Some(new) = &new {
            match rss.iter_mut().find(|rs| uid(rs) == uid(new)) {
                Some(rs) => *rs = new.clone(),
                None => rss.push(new.clone()),
            }
        }
        Ok((new, old))
    }

    /// upstream's `getNewReplicaSet`.
    async fn new_replica_set(
        &self,
        d: &mut Value,
        existing: Option<Value>,
        old: &[Value],
        create: bool,
    ) -> Result<Option<Value>> {
        let old_refs: Vec<&Value> = old.iter().collect();
        let new_revision = max_revision(&old_refs) + 1;
        if let Some(existing) = existing {
            let mut copy = existing.clone();
            let annotations_changed = set_new_rs_annotations(d, &mut copy, new_revision, true);
            let min_ready = int_at(d, "/spec/minReadySeconds").unwrap_or(0);
            if annotations_changed
                || int_at(&copy, "/spec/minReadySeconds").unwrap_or(0) != min_ready
            {
                copy["spec"]["minReadySeconds"] = json!(min_ready);
                return Ok(Some(self.update_rs(&copy).await?));
            }
            let revision = annotation(&copy, REVISION).unwrap_or("").to_string();
            let mut needs_update = set_annotation(d, REVISION, &revision);
            let empty = json!({});
            if has_progress_deadline(d)
                && get_condition(d.get("status").unwrap_or(&empty), PROGRESSING).is_none()
            {
                let message = format!("Found new replica set {:?}", name(&copy));
                set_condition(
                    &mut d["status"],
                    condition(
                        PROGRESSING,
                        "True",
                        FOUND_NEW_RS,
                        &message,
                        OffsetDateTime::now_utc(),
                    ),
                );
                needs_update = true;
            }
            if needs_update {
                self.update_status(d).await?;
            }
            return Ok(Some(copy));
        }
        if !create {
            return Ok(None);
        }

        // A new ReplicaSet: the template with the hash label, named after the hash.
        let collision_count = int_at(d, "/status/collisionCount");
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = compute_hash(&template, collision_count);
        let mut template = template;
        if !template
            .pointer("/metadata/labels")
            .is_some_and(Value::is_object)
        {
            template["metadata"]["labels"] = json!({});
        }
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        if !selector.get("matchLabels").is_some_and(Value::is_object) {
            selector["matchLabels"] = json!({});
        }
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let rs_name = format!("{}-{hash}", name(d));
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace(d),
                "ownerReferences": [owner_ref(d)],
                "labels": template["metadata"]["labels"],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int_at(d, "/spec/minReadySeconds").unwrap_or(0),
                "selector": selector,
                "template": template,
            },
        });
        let size = {
            let all: Vec<&Value> = old.iter().chain(std::iter::once(&rs)).collect();
            new_rs_new_replicas(d, &all, &rs)
        };
        set_replicas(&mut rs, size);
        set_new_rs_annotations(d, &mut rs, new_revision, false);

        let ns = namespace(d).to_string();
        let (created, already_existed) =
            match self.client.create(&replica_sets(), Some(&ns), &rs).await {
                Ok(created) => (created, false),
                Err(e) if e.is_conflict() => {
                    // Ours from an earlier sync the cache has not seen yet, or a hash collision.
                    let current = self
                        .client
                        .get(&replica_sets(), Some(&ns), &rs_name)
                        .await
                        .map_err(Self::api_error("get", "replicaset", &rs))?;
                    let template = d.pointer("/spec/template").unwrap_or(&Value::Null);
                    if is_controlled_by(&current, d)
                        && equal_ignore_hash(
                            template,
                            current.pointer("/spec/template").unwrap_or(&Value::Null),
                        )
                    {
                        (current, true)
                    } else {
                        d["status"]["collisionCount"] = json!(collision_count.unwrap_or(0) + 1);
                        if self.update_status(d).await.is_ok() {
                            tracing::info!(
                                controller = CONTROLLER,
                                deployment = %format!("{ns}/{}", name(d)),
                                "found a hash collision; bumping collisionCount"
                            );
                        }
                        return Err(Error::Collision {
                            namespace: ns,
                            name: rs_name,
                        });
                    }
                }
                Err(e) if crate::serviceaccount::namespace_terminating(&e) => {
                    return Err(Self::api_error("create", "replicaset", &rs)(e));
                }
                Err(e) => {
                    let message = format!(
                        "Failed to create new replica set {rs_name:?}: {}",
                        e.status()
                            .map_or_else(|| e.to_string(), |s| s.message.clone())
                    );
                    if has_progress_deadline(d) {
                        set_condition(
                            &mut d["status"],
                            condition(
                                PROGRESSING,
                                "False",
                                FAILED_RS_CREATE,
                                &message,
                                OffsetDateTime::now_utc(),
                            ),
                        );
                        let _ = self.update_status(d).await;
                    }
                    self.event(d, events::WARNING, FAILED_RS_CREATE, "Creating", &message);
                    return Err(Self::api_error("create", "replicaset", &rs)(e));
                }
            };
        if !already_existed && size > 0 {
            self.event(
                d,
                events::NORMAL,
                "ScalingReplicaSet",
                "Scaling",
                &format!("Scaled up replica set {rs_name} from 0 to {size}"),
            );
        }
        let mut needs_update = set_annotation(d, REVISION, &new_revision.to_string());
        if !already_existed && has_progress_deadline(d) {
            let message = format!("Created new replica set {rs_name:?}");
            set_condition(
                &mut d["status"],
                condition(
                    PROGRESSING,
                    "True",
                    NEW_REPLICA_SET,
                    &message,
                    OffsetDateTime::now_utc(),
                ),
            );
            needs_update = true;
        }
        if needs_update {
            self.update_status(d).await?;
        }
        Ok(Some(created))
    }

    /// upstream's `checkPausedConditions`.
    async fn check_paused_conditions(&self, d: &mut Value) -> Result<()> {
        if let Some(c) = paused_condition(d, OffsetDateTime::now_utc()) {
            if !d.get("status").is_some_and(Value::is_object) {
                d["status"] = json!({});
            }
            set_condition(&mut d["status"], c);
            self.update_status(d).await?;
        }
        Ok(())
    }

    /// upstream's `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    async fn is_scaling_event(&self, d: &mut Value, rss: &mut Vec<Value>) -> Result<bool> {
        let (new, old) = self.all_replica_sets(d, rss, false).await?;
        let desired = replicas(d);
        Ok(active(old.iter().chain(new.as_ref())).iter().any(|rs| {
            annotation(rs, DESIRED_REPLICAS)
                .and_then(|s| s.parse::<i32>().ok())
                .is_some_and(|n| n != desired)
        }))
    }

    /// upstream's `sync`: scaling (of a paused Deployment, or mid-rollout) without rolling.
    async fn scale_sync(&self, d: &mut Value, rss: &mut Vec<Value>) -> Result<()> {
        let (mut new, mut old) = self.all_replica_sets(d, rss, false).await?;
        self.scale(d, &mut new, &mut old).await?;
        if paused(d) && rollback_to(d).is_none() {
            self.cleanup(d, &old).await?;
        }
        self.sync_deployment_status(d, new.as_ref(), &old).await
    }

    /// upstream's `scale`.
    async fn scale(&self, d: &Value, new: &mut Option<Value>, old: &mut [Value]) -> Result<()> {
        let old_refs: Vec<&Value> = old.iter().collect();
        if let Some(only) = find_active_or_latest(new.as_ref(), &old_refs) {
            if replicas(only) == replicas(d) {
                return Ok(());
            }
            let only_uid = uid(only).to_string();
            let only = only.clone();
            let (_, updated) = self.scale_rs(&only, replicas(d), d).await?;
            replace_by_uid(new, old, &only_uid, updated);
            return Ok(());
        }
        if is_saturated(d, new.as_ref()) {
            for rs in old.iter_mut().filter(|rs| replicas(rs) > 0) {
                let (_, updated) = self.scale_rs(rs, 0, d).await?;
                *rs = updated;
            }
            return Ok(());
        }
        if is_rolling(d) {
            let all: Vec<Value> = old.iter().chain(new.iter()).cloned().collect();
            let active_rss = active(all.iter());
            let (sizes, operation) = proportional_scale(d, &active_rss);
            for (i, size) in sizes {
                let rs = active_rss[i];
                let (_, updated) = self.scale_rs_with(rs, size, d, operation).await?;
                replace_by_uid(new, old, uid(rs), updated);
            }
        }
        Ok(())
    }

    /// upstream's `cleanupDeployment`: old revisions beyond revisionHistoryLimit go.
    async fn cleanup(&self, d: &Value, old: &[Value]) -> Result<()> {
        let refs: Vec<&Value> = old.iter().collect();
        for rs in to_clean_up(d, &refs) {
            tracing::debug!(
                controller = CONTROLLER,
                replicaset = name(rs),
                "deleting old replica set"
            );
            match self
                .client
                .delete(
                    &replica_sets(),
                    Some(namespace(rs)),
                    name(rs),
                    &DeleteParams::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Self::api_error("delete", "replicaset", rs)(e)),
            }
        }
        Ok(())
    }

    /// upstream's `syncDeploymentStatus`.
    async fn sync_deployment_status(
        &self,
        d: &mut Value,
        new: Option<&Value>,
        old: &[Value],
    ) -> Result<()> {
        let all: Vec<&Value> = old.iter().chain(new).collect();
        let status = calculate_status(d, &all, new, OffsetDateTime::now_utc());
        if d.get("status") == Some(&status) {
            return Ok(());
        }
        d["status"] = status;
        self.update_status(d).await
    }

    /// upstream's `syncRolloutStatus`; asks to be run again when a progress deadline is
    /// pending.
    async fn sync_rollout_status(
        &self,
        d: &mut Value,
        new: Option<&Value>,
        old: &[Value],
    ) -> Result<Action> {
        let all: Vec<&Value> = old.iter().chain(new).collect();
        let now = OffsetDateTime::now_utc();
        let status = rollout_status(d, &all, new, now);
        if d.get("status") == Some(&status) {
            return Ok(match requeue_stuck(d, &status, now) {
                Some(after) => Action::RequeueAfter(after),
                None => Action::Done,
            });
        }
        d["status"] = status;
        self.update_status(d).await?;
        Ok(Action::Done)
    }

    /// upstream's `rolloutRolling`.
    async fn rollout_rolling(&self, d: &mut Value, rss: &mut Vec<Value>) -> Result<Action> {
        // k1s takes a step only once the ReplicaSets' controller has acted on the last one:
        // upstream reads their spec and status as current, and a stale one (the informer not yet
        // holding this controller's last write, or a status from before the last resize) lets
        // the pods go over maxSurge or under maxUnavailable for a moment. The ReplicaSets'
        // events bring the Deployment back.
        if !self.cache_current(&rss.iter().collect::<Vec<_>>()) {
            return Ok(Action::Done);
        }
        let (new, mut old) = self.all_replica_sets(d, rss, true).await?;
        let Some(mut new) = new else {
            return Ok(Action::Done);
        };
        if !old.iter().chain(std::iter::once(&new)).all(status_current) {
            return self.sync_rollout_status(d, Some(&new), &old).await;
        }
        // Scale up, if we can.
        if replicas(&new) != replicas(d) {
            let size = if replicas(&new) > replicas(d) {
                replicas(d)
            } else {
                let all: Vec<&Value> = old.iter().chain(std::iter::once(&new)).collect();
                new_rs_new_replicas(d, &all, &new)
            };
            let (scaled, updated) = self.scale_rs(&new, size, d).await?;
            new = updated;
            if scaled {
                return self.sync_rollout_status(d, Some(&new), &old).await;
            }
        }
        // Scale down, if we can.
        if self.reconcile_old(d, &new, &mut old).await? {
            return self.sync_rollout_status(d, Some(&new), &old).await;
        }
        if deployment_complete(d, d.get("status").unwrap_or(&Value::Null)) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, Some(&new), &old).await
    }

    /// upstream's `reconcileOldReplicaSets`: unhealthy old replicas first, then old ones as
    /// far as availability allows. Whether any went.
    async fn reconcile_old(&self, d: &Value, new: &Value, old: &mut [Value]) -> Result<bool> {
        let active_old: Vec<usize> = (0..old.len()).filter(|&i| replicas(&old[i]) > 0).collect();
        if active_old.is_empty() {
            return Ok(false);
        }
        let bound = {
            let all: Vec<&Value> = active_old
                .iter()
                .map(|&i| &old[i])
                .chain(std::iter::once(new))
                .collect();
            max_scaled_down(d, &all, new)
        };
        if bound <= 0 {
            return Ok(false);
        }
        let mut total = 0;
        let plan = {
            let refs: Vec<&Value> = active_old.iter().map(|&i| &old[i]).collect();
            cleanup_unhealthy(&refs, bound)
        };
        for (j, size) in plan {
            let i = active_old[j];
            total += replicas(&old[i]) - size;
            let (_, updated) = self.scale_rs(&old[i], size, d).await?;
            old[i] = updated;
        }
        let available = {
            let all: Vec<&Value> = active_old
                .iter()
                .map(|&i| &old[i])
                .chain(std::iter::once(new))
                .collect();
            sum_status(&all, available_replicas)
        };
        let plan = {
            let refs: Vec<&Value> = active_old.iter().map(|&i| &old[i]).collect();
            scale_down_old_for_rolling(d, &refs, available)
        };
        for (j, size) in plan {
            let i = active_old[j];
            total += replicas(&old[i]) - size;
            let (_, updated) = self.scale_rs(&old[i], size, d).await?;
            old[i] = updated;
        }
        Ok(total > 0)
    }

    /// upstream's `rolloutRecreate`: old ReplicaSets to zero, wait for their pods to go, then
    /// the new one to full size.
    async fn rollout_recreate(
        &self,
        d: &mut Value,
        rss: &mut Vec<Value>,
        pod_map: &HashMap<String, Vec<Arc<Value>>>,
    ) -> Result<Action> {
        let (mut new, mut old) = self.all_replica_sets(d, rss, false).await?;
        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| replicas(rs) > 0) {
            let (scaled, updated) = self.scale_rs(rs, 0, d).await?;
            if scaled {
                *rs = updated;
                scaled_down = true;
            }
        }
        if scaled_down {
            return self.sync_rollout_status(d, new.as_ref(), &old).await;
        }
        if old_pods_running(new.as_ref(), &old, pod_map) {
            return self.sync_rollout_status(d, new.as_ref(), &old).await;
        }
        if new.is_none() {
            (new, old) = self.all_replica_sets(d, rss, true).await?;
        }
        if let Some(rs) = &new {
            let (_, updated) = self.scale_rs(rs, replicas(d), d).await?;
            new = Some(updated);
        }
        if deployment_complete(d, d.get("status").unwrap_or(&Value::Null)) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, new.as_ref(), &old).await
    }

    /// upstream's `rollback` (the deprecated `deprecated.deployment.rollback.to` annotation;
    /// `kubectl rollout undo` copies the old template into the Deployment itself instead).
    async fn rollback(&self, d: &mut Value, rss: &mut Vec<Value>) -> Result<()> {
        let (new, old) = self.all_replica_sets(d, rss, true).await?;
        let all: Vec<&Value> = old.iter().chain(new.as_ref()).collect();
        let mut to = rollback_to(d).unwrap_or(0);
        if to == 0 {
            to = last_revision(&all);
            if to == 0 {
                self.event(
                    d,
                    events::WARNING,
                    ROLLBACK_REVISION_NOT_FOUND,
                    "Rollback",
                    "Unable to find last revision.",
                );
                return self.clear_rollback_to(d).await;
            }
        }
        let Some(target) = all.iter().find(|rs| revision(rs).ok() == Some(to)) else {
            self.event(
                d,
                events::WARNING,
                ROLLBACK_REVISION_NOT_FOUND,
                "Rollback",
                "Unable to find the revision to rollback to.",
            );
            return self.clear_rollback_to(d).await;
        };
        let template = target
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        if equal_ignore_hash(
            d.pointer("/spec/template").unwrap_or(&Value::Null),
            &template,
        ) {
            let message = format!(
                "The rollback revision contains the same template as current deployment {:?}",
                name(d)
            );
            self.event(
                d,
                events::WARNING,
                ROLLBACK_TEMPLATE_UNCHANGED,
                "Rollback",
                &message,
            );
            return self.clear_rollback_to(d).await;
        }
        d["spec"]["template"] = template_without_hash_label(&template);
        set_deployment_annotations_to(d, target);
        self.clear_rollback_to(d).await?;
        let message = format!("Rolled back deployment {:?} to revision {to}", name(d));
        self.event(d, events::NORMAL, ROLLBACK_DONE, "Rollback", &message);
        Ok(())
    }

    async fn clear_rollback_to(&self, d: &mut Value) -> Result<()> {
        remove_annotation(d, ROLLBACK_TO);
        self.update_deployment(d).await
    }
}

/// Put `updated` in place of the ReplicaSet with this uid.
fn replace_by_uid(new: &mut Option<Value>, old: &mut [Value], rs_uid: &str, updated: Value) {
    if let Some(n) = new.as_mut().filter(|n| uid(n) == rs_uid) {
        *n = updated;
        return;
    }
    if let Some(o) = old.iter_mut().find(|o| uid(o) == rs_uid) {
        *o = updated;
    }
}

/// upstream's `oldPodsRunning`: old ReplicaSets still report pods, or own a pod that has not
/// finished (an Unknown phase counts as running).
fn old_pods_running(
    new: Option<&Value>,
    old: &[Value],
    pod_map: &HashMap<String, Vec<Arc<Value>>>,
) -> bool {
    if old.iter().map(status_replicas).sum::<i32>() > 0 {
        return true;
    }
    pod_map.iter().any(|(rs_uid, pods)| {
        new.is_none_or(|n| uid(n) != rs_uid)
            && pods
                .iter()
                .any(|p| !matches!(str_at(p, "/status/phase"), "Failed" | "Succeeded"))
    })
}

impl Reconciler for DeploymentController {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action> {
        let (namespace, name) = split_key(key);
        let started = std::time::Instant::now();
        let result = self.sync(key).await;
        tracing::trace!(
            controller = CONTROLLER,
            namespace,
            name,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "finished syncing deployment"
        );
        result
    }
}

#[cfg(test)]
mod tests;
