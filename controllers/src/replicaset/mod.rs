//! The ReplicaSet controller (and the ReplicationController one, the same code over core/v1): create and delete pods to match `spec.replicas`, in slow-start batches, never acting on a stale cache (expectations), adopting orphans and releasing pods whose labels stop matching, and reporting status, the ReplicaFailure condition and events as upstream's `replicaset` package does.

pub mod expectations;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client, DeleteParams, PatchType, Resource};
use crate::controller::{self, Action, Reconciler};
use crate::events::{self, Recorder};
use crate::informer::{Event, Informer, Informers, key_of, split_key};
use crate::labels::label_selector_matches;
use crate::queue::{RateLimiter, WorkQueue};
use expectations::Expectations;

/// At most this many creates or deletes per sync (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// The first slow-start batch (upstream's `SlowStartInitialBatchSize`).
const INITIAL_BATCH: usize = 1;
/// kube-controller-manager's `--concurrent-replicaset-syncs`.
const WORKERS: usize = 5;

/// Which of the two kinds a controller runs for.
#[derive(Clone, Debug)]
pub struct Kind {
    pub resource: Resource,
    pub kind: &'static str,
    pub api_version: &'static str,
    /// The reporting controller and queue name (`replicaset-controller`).
    pub controller: &'static str,
}

impl Kind {
    pub fn replica_sets() -> Kind {
        Kind {
            resource: Resource::new("apps", "v1", "replicasets", true),
            kind: "ReplicaSet",
            api_version: "apps/v1",
            controller: "replicaset-controller",
        }
    }

    pub fn replication_controllers() -> Kind {
        Kind {
            resource: Resource::core("replicationcontrollers", true),
            kind: "ReplicationController",
            api_version: "v1",
            controller: "replication-controller",
        }
    }

    /// The selector as a `metav1.LabelSelector` (a ReplicationController's is a plain map).
    fn selector(&self, owner: &Value) -> Value {
        match owner.pointer("/spec/selector") {
            Some(s) if self.kind == "ReplicationController" => json!({"matchLabels": s}),
            Some(s) => s.clone(),
            None => Value::Null,
        }
    }
}

/// Why a sync failed (the key is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create pods for {key}: {message}")]
    Create { key: String, message: String },
    #[error("cannot delete pods of {key}: {message}")]
    Delete { key: String, message: String },
    #[error("cannot update the status of {key}")]
    Status {
        key: String,
        #[source]
        source: client::Error,
    },
    #[error("cannot adopt or release pods of {key}")]
    Claim {
        key: String,
        #[source]
        source: client::Error,
    },
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn pods() -> Resource {
    Resource::core("pods", true)
}

/// The ownerReference with `controller: true`, if any.
pub fn controller_ref(object: &Value) -> Option<&Value> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

fn active(pod: &Value) -> bool {
    !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
        && pod.pointer("/metadata/deletionTimestamp").is_none()
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| str_at(c, "/type") == "Ready")
}

pub fn pod_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some_and(|c| str_at(c, "/status") == "True")
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Ready for at least `min_ready` (upstream's `IsPodAvailable`).
pub fn pod_available(pod: &Value, min_ready: Duration, now: time::OffsetDateTime) -> bool {
    let Some(c) = ready_condition(pod).filter(|c| str_at(c, "/status") == "True") else {
        return false;
    };
    if min_ready.is_zero() {
        return true;
    }
    parse_time(str_at(c, "/lastTransitionTime")).is_some_and(|t| t + min_ready <= now)
}

fn phase_ordinal(pod: &Value) -> u8 {
    match str_at(pod, "/status/phase") {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    str_at(
        pod,
        "/metadata/annotations/controller.kubernetes.io~1pod-deletion-cost",
    )
    .parse()
    .unwrap_or(0)
}

fn max_restarts(pod: &Value) -> i64 {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .max()
        .unwrap_or(0)
}

/// upstream's `afterOrZero`: a missing time sorts first, else the later one does.
fn after_or_zero(a: &str, b: &str) -> Ordering {
    match (parse_time(a), parse_time(b)) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// upstream's `ActivePodsWithRanks.Less`: which pods go first on a scale-down. `rank` is how
/// many related pods share the pod's node.
fn delete_order(a: (&Value, usize), b: (&Value, usize)) -> Ordering {
    let (pa, ra) = a;
    let (pb, rb) = b;
    let (na, nb) = (str_at(pa, "/spec/nodeName"), str_at(pb, "/spec/nodeName"));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    phase_ordinal(pa)
        .cmp(&phase_ordinal(pb))
        .then_with(|| pod_ready(pa).cmp(&pod_ready(pb)))
        .then_with(|| deletion_cost(pa).cmp(&deletion_cost(pb)))
        .then_with(|| rb.cmp(&ra))
        .then_with(|| {
            if pod_ready(pa) && pod_ready(pb) {
                let t = |p: &Value| {
                    ready_condition(p)
                        .map(|c| str_at(c, "/lastTransitionTime").to_string())
                        .unwrap_or_default()
                };
                after_or_zero(&t(pa), &t(pb))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(pb).cmp(&max_restarts(pa)))
        .then_with(|| {
            after_or_zero(
                str_at(pa, "/metadata/creationTimestamp"),
                str_at(pb, "/metadata/creationTimestamp"),
            )
        })
}

/// The `count` pods to delete first.
pub fn pods_to_delete(pods: &[Arc<Value>], count: usize) -> Vec<Arc<Value>> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in pods {
        let node = str_at(p, "/spec/nodeName");
        if !node.is_empty() {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Value| {
        per_node
            .get(str_at(p, "/spec/nodeName"))
            .copied()
            .unwrap_or(0)
    };
    let mut ranked: Vec<(Arc<Value>, usize)> = pods.iter().map(|p| (p.clone(), rank(p))).collect();
    ranked.sort_by(|a, b| delete_order((&a.0, a.1), (&b.0, b.1)));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

/// upstream's `slowStartBatch`: run `count` calls in batches of 1, 2, 4, … (each batch
/// concurrently) and stop after a batch with any failure; the successes and the first error.
pub async fn slow_start<F, Fut>(count: usize, initial: usize, call: F) -> (usize, Option<String>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = remaining.min(initial);
    while batch > 0 {
        let results = join_all((0..batch).map(|_| call())).await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        successes += batch - errors.len();
        if let Some(first) = errors.into_iter().next() {
            return (successes, Some(first));
        }
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    (successes, None)
}

/// The pod a controller creates from its template.
fn pod_from_template(kind: &Kind, owner: &Value) -> Value {
    let template = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let mut metadata = Map::new();
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}")) {
            metadata.insert(field.into(), v.clone());
        }
    }
    metadata.insert(
        "generateName".into(),
        json!(format!("{}-", str_at(owner, "/metadata/name"))),
    );
    metadata.insert(
        "ownerReferences".into(),
        json!([owner_reference(kind, owner)]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

fn owner_reference(kind: &Kind, owner: &Value) -> Value {
    json!({
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "name": str_at(owner, "/metadata/name"),
        "uid": str_at(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The ReplicaSet (or ReplicationController) controller.
pub struct ReplicaSetController {
    kind: Kind,
    client: Client,
    owners: Informer,
    pods: Informer,
    queue: WorkQueue,
    expectations: Arc<Expectations>,
    recorder: Recorder,
}

impl ReplicaSetController {
    pub fn new(kind: Kind, client: Client, informers: &Informers) -> Arc<ReplicaSetController> {
        let owners = informers.informer(&kind.resource);
        let pods = informers.informer(&pods());
        let queue = WorkQueue::new(kind.controller, RateLimiter::default());
        let expectations = Arc::new(Expectations::default());
        {
            let queue = queue.clone();
            owners.add_handler(move |event| match event {
                Event::Added(o) | Event::Updated { new: o, .. } | Event::Deleted(o) => {
                    if let Some(key) = key_of(o) {
                        queue.add(&key);
                    }
                }
            });
        }
        {
            let (queue, expectations, owners_cache) =
                (queue.clone(), expectations.clone(), owners.clone());
            let kind = kind.clone();
            pods.add_handler(move |event| {
                on_pod(&kind, &queue, &expectations, &owners_cache, event);
            });
        }
        Arc::new(ReplicaSetController {
            recorder: Recorder::new(client.clone(), kind.controller),
            kind,
            client,
            owners,
            pods,
            queue,
            expectations,
        })
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.owners.wait_synced(&shutdown).await || !self.pods.wait_synced(&shutdown).await {
            return;
        }
        tracing::info!(
            controller = self.kind.controller,
            workers = WORKERS,
            "controller started"
        );
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
    }

    /// upstream's `syncReplicaSet`.
    async fn sync(&self, key: &str) -> Result<Action, Error> {
        let Some(owner) = self.owners.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
        };
        let (namespace, _) = split_key(key);
        let deleting = owner.pointer("/metadata/deletionTimestamp").is_some();
        let needs_sync = self.expectations.satisfied(key) && !deleting;
        let selector = self.kind.selector(&owner);
        let candidates: Vec<Arc<Value>> = self
            .pods
            .list_namespace(namespace)
            .into_iter()
            .filter(|p| active(p))
            .collect();
        let owned = self.claim(key, &owner, &selector, candidates).await?;
        let manage = if needs_sync {
            self.manage(key, &owner, &owned).await
        } else {
            Ok(())
        };
        let min_ready = Duration::from_secs(
            owner
                .pointer("/spec/minReadySeconds")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        );
        let uid = str_at(&owner, "/metadata/uid");
        let terminating = self
            .pods
            .list_namespace(namespace)
            .iter()
            .filter(|p| {
                p.pointer("/metadata/deletionTimestamp").is_some()
                    && !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
                    && controller_ref(p).is_some_and(|r| str_at(r, "/uid") == uid)
            })
            .count();
        let mut status = self.status(&owner, &owned, manage.as_ref().err(), min_ready);
        // 1.35's DeploymentReplicaSetTerminatingReplicas: pods on their way out (ReplicaSets
        // only; ReplicationControllers have no such field).
        if self.kind.kind == "ReplicaSet" {
            status["terminatingReplicas"] = json!(terminating);
        }
        self.update_status(key, &owner, status.clone()).await?;
        manage?;
        let replicas = status["replicas"].as_i64().unwrap_or(0);
        if !min_ready.is_zero()
            && status["readyReplicas"].as_i64() == Some(replicas)
            && status["availableReplicas"].as_i64() != Some(replicas)
        {
            return Ok(Action::RequeueAfter(min_ready));
        }
        Ok(Action::Done)
    }

    /// upstream's `ClaimPods`: keep our pods that still match, release the ones that do not,
    /// adopt matching orphans (never while we are being deleted).
    async fn claim(
        &self,
        key: &str,
        owner: &Value,
        selector: &Value,
        candidates: Vec<Arc<Value>>,
    ) -> Result<Vec<Arc<Value>>, Error> {
        let uid = str_at(owner, "/metadata/uid");
        let deleting = owner.pointer("/metadata/deletionTimestamp").is_some();
        let claim_error = |source| Error::Claim {
            key: key.to_string(),
            source,
        };
        let mut owned = Vec::new();
        for pod in candidates {
            let matches = label_selector_matches(
                Some(selector),
                pod.pointer("/metadata/labels").and_then(Value::as_object),
            );
            let (pod_ns, pod_name) = (
                str_at(&pod, "/metadata/namespace"),
                str_at(&pod, "/metadata/name"),
            );
            match controller_ref(&pod) {
                Some(r) if str_at(r, "/uid") != uid => {}
                Some(_) if matches || deleting => owned.push(pod),
                Some(_) => {
                    let patch = json!({"metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": uid}],
                        "uid": str_at(&pod, "/metadata/uid"),
                    }});
                    match self
                        .client
                        .patch(
                            &pods(),
                            Some(pod_ns),
                            pod_name,
                            PatchType::Strategic,
                            &patch,
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() || e.code() == Some(422) => {}
                        Err(e) => return Err(claim_error(e)),
                    }
                }
                None if deleting || !matches => {}
                None => {
                    let patch = json!({"metadata": {
                        "ownerReferences": [owner_reference(&self.kind, owner)],
                        "uid": str_at(&pod, "/metadata/uid"),
                    }});
                    match self
                        .client
                        .patch(
                            &pods(),
                            Some(pod_ns),
                            pod_name,
                            PatchType::Strategic,
                            &patch,
                        )
                        .await
                    {
                        Ok(adopted) => owned.push(Arc::new(adopted)),
                        Err(e) if e.is_not_found() || e.code() == Some(422) => {}
                        Err(e) => return Err(claim_error(e)),
                    }
                }
            }
        }
        Ok(owned)
    }

    /// upstream's `manageReplicas`.
    async fn manage(&self, key: &str, owner: &Value, owned: &[Arc<Value>]) -> Result<(), Error> {
        let want = owner
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let (namespace, _) = split_key(key);
        let reference = events::reference(owner, self.kind.kind, self.kind.api_version);
        if owned.len() < want {
            let diff = (want - owned.len()).min(BURST_REPLICAS);
            self.expectations.expect_creations(key, diff);
            let pod = pod_from_template(&self.kind, owner);
            let (successes, error) = slow_start(diff, INITIAL_BATCH, || async {
                match self.client.create(&pods(), Some(namespace), &pod).await {
                    Ok(created) => {
                        self.recorder.emit(
                            &reference,
                            events::NORMAL,
                            "SuccessfulCreate",
                            "Create",
                            &format!("Created pod: {}", str_at(&created, "/metadata/name")),
                        );
                        Ok(())
                    }
                    Err(e) => {
                        let message = e
                            .status()
                            .map_or_else(|| crate::error_chain(&e), |s| s.message.clone());
                        // A namespace being deleted refuses creates: not a failure to report.
                        let terminating = e.status().is_some_and(|s| {
                            s.details
                                .as_ref()
                                .is_some_and(|d| d.to_string().contains("NamespaceTerminating"))
                        });
                        if terminating {
                            return Ok(());
                        }
                        self.recorder.emit(
                            &reference,
                            events::WARNING,
                            "FailedCreate",
                            "Create",
                            &format!("Error creating: {message}"),
                        );
                        Err(message)
                    }
                }
            })
            .await;
            // Creates skipped or failed will never be observed.
            for _ in successes..diff {
                self.expectations.creation_observed(key);
            }
            if let Some(message) = error {
                return Err(Error::Create {
                    key: key.to_string(),
                    message,
                });
            }
        } else if owned.len() > want {
            let diff = (owned.len() - want).min(BURST_REPLICAS);
            let victims = pods_to_delete(owned, diff);
            self.expectations.expect_deletions(key, victims.len());
            let results = join_all(victims.iter().map(|pod| async {
                let name = str_at(pod, "/metadata/name");
                let params = DeleteParams {
                    precondition_uid: Some(str_at(pod, "/metadata/uid").to_string()),
                    ..Default::default()
                };
                match self
                    .client
                    .delete(&pods(), Some(namespace), name, &params)
                    .await
                {
                    Ok(_) => {
                        self.recorder.emit(
                            &reference,
                            events::NORMAL,
                            "SuccessfulDelete",
                            "Delete",
                            &format!("Deleted pod: {name}"),
                        );
                        Ok(())
                    }
                    Err(e) => {
                        // Not going to be observed.
                        self.expectations.deletion_observed(key);
                        if e.is_not_found() {
                            return Ok(());
                        }
                        let message = e
                            .status()
                            .map_or_else(|| crate::error_chain(&e), |s| s.message.clone());
                        self.recorder.emit(
                            &reference,
                            events::WARNING,
                            "FailedDelete",
                            "Delete",
                            &format!("Error deleting: {message}"),
                        );
                        Err(message)
                    }
                }
            }))
            .await;
            if let Some(message) = results.into_iter().find_map(Result::err) {
                return Err(Error::Delete {
                    key: key.to_string(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// upstream's `calculateStatus`.
    fn status(
        &self,
        owner: &Value,
        owned: &[Arc<Value>],
        error: Option<&Error>,
        min_ready: Duration,
    ) -> Value {
        let now = time::OffsetDateTime::now_utc();
        let template_labels = owner
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object);
        let fully_labeled = owned
            .iter()
            .filter(|p| {
                let labels = p.pointer("/metadata/labels").and_then(Value::as_object);
                template_labels
                    .into_iter()
                    .flatten()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .count();
        let ready = owned.iter().filter(|p| pod_ready(p)).count();
        let available = owned
            .iter()
            .filter(|p| pod_available(p, min_ready, now))
            .count();
        let mut status = owner.get("status").cloned().unwrap_or(json!({}));
        if !status.is_object() {
            status = json!({});
        }
        status["replicas"] = json!(owned.len());
        status["fullyLabeledReplicas"] = json!(fully_labeled);
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(available);
        status["observedGeneration"] = owner
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(0));
        let mut conditions: Vec<Value> = status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let existing = conditions
            .iter()
            .position(|c| str_at(c, "/type") == "ReplicaFailure");
        match (error, existing) {
            (Some(e), existing) => {
                let reason = match e {
                    Error::Delete { .. } => "FailedDelete",
                    _ => "FailedCreate",
                };
                let message = match e {
                    Error::Create { message, .. } | Error::Delete { message, .. } => {
                        message.clone()
                    }
                    other => other.to_string(),
                };
                let condition = json!({
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": crate::rfc3339_now(),
                    "reason": reason,
                    "message": message,
                });
                match existing {
                    // upstream's SetCondition: the same status and reason is left as it is.
                    Some(i) if str_at(&conditions[i], "/reason") == reason => {}
                    Some(i) => conditions[i] = condition,
                    None => conditions.push(condition),
                }
            }
            (None, Some(i)) => {
                conditions.remove(i);
            }
            (None, None) => {}
        }
        if let Some(object) = status.as_object_mut() {
            if conditions.is_empty() {
                object.remove("conditions");
            } else {
                object.insert("conditions".into(), Value::Array(conditions));
            }
        }
        status
    }

    async fn update_status(&self, key: &str, owner: &Value, status: Value) -> Result<(), Error> {
        if owner.get("status") == Some(&status) {
            return Ok(());
        }
        let (namespace, name) = split_key(key);
        let mut updated = owner.clone();
        updated["status"] = status.clone();
        let mut attempt = self
            .client
            .update_subresource(
                &self.kind.resource,
                Some(namespace),
                name,
                "status",
                &updated,
            )
            .await;
        if let Err(e) = &attempt
            && e.is_conflict()
        {
            // One retry on the live object, as upstream.
            if let Ok(mut live) = self
                .client
                .get(&self.kind.resource, Some(namespace), name)
                .await
            {
                live["status"] = status;
                attempt = self
                    .client
                    .update_subresource(&self.kind.resource, Some(namespace), name, "status", &live)
                    .await;
            }
        }
        match attempt {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(source) => Err(Error::Status {
                key: key.to_string(),
                source,
            }),
        }
    }
}

impl Reconciler for ReplicaSetController {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        self.sync(key).await
    }
}

/// The owner key a pod's controllerRef names, if it is one of ours.
fn owner_key(kind: &Kind, pod: &Value) -> Option<String> {
    let r = controller_ref(pod)?;
    if str_at(r, "/kind") != kind.kind {
        return None;
    }
    Some(format!(
        "{}/{}",
        str_at(pod, "/metadata/namespace"),
        str_at(r, "/name")
    ))
}

/// Owners in the pod's namespace whose selector matches it (candidates to adopt an orphan).
fn matching_owners(kind: &Kind, owners: &Informer, pod: &Value) -> Vec<String> {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    owners
        .list_namespace(str_at(pod, "/metadata/namespace"))
        .iter()
        .filter(|o| label_selector_matches(Some(&kind.selector(o)), labels))
        .filter_map(|o| key_of(o))
        .collect()
}

fn on_pod(
    kind: &Kind,
    queue: &WorkQueue,
    expectations: &Expectations,
    owners: &Informer,
    event: Event<'_>,
) {
    match event {
        Event::Added(pod) => {
            if let Some(key) = owner_key(kind, pod) {
                expectations.creation_observed(&key);
                queue.add(&key);
            } else if controller_ref(pod).is_none() {
                for key in matching_owners(kind, owners, pod) {
                    queue.add(&key);
                }
            }
        }
        Event::Updated { old, new } => {
            let (old_owner, new_owner) = (owner_key(kind, old), owner_key(kind, new));
            if old_owner != new_owner
                && let Some(key) = &old_owner
            {
                queue.add(key);
            }
            match new_owner {
                Some(key) => queue.add(&key),
                None if controller_ref(new).is_none()
                    && (old.pointer("/metadata/labels") != new.pointer("/metadata/labels")
                        || old_owner.is_some()) =>
                {
                    for key in matching_owners(kind, owners, new) {
                        queue.add(&key);
                    }
                }
                None => {}
            }
            // A pod that starts terminating is as good as deleted for the count.
            if old.pointer("/metadata/deletionTimestamp").is_none()
                && new.pointer("/metadata/deletionTimestamp").is_some()
                && let Some(key) = owner_key(kind, new)
            {
                expectations.deletion_observed(&key);
            }
        }
        Event::Deleted(pod) => {
            if let Some(key) = owner_key(kind, pod) {
                if pod.pointer("/metadata/deletionTimestamp").is_none() {
                    expectations.deletion_observed(&key);
                }
                queue.add(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    #[tokio::test]
    async fn slow_start_batches_stop_after_a_failure() {
        // 10 may succeed: batches 1, 2, 4 (7), then 8 of which 3 succeed → 15 calls.
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start(100, 1, || async {
            let n = calls.fetch_add(1, AtomicOrdering::SeqCst);
            if n < 10 {
                Ok(())
            } else {
                Err("exceeded quota".to_string())
            }
        })
        .await;
        assert_eq!(calls.load(AtomicOrdering::SeqCst), 15);
        assert_eq!(ok, 10);
        assert_eq!(err.as_deref(), Some("exceeded quota"));
        let (ok, err) = slow_start(5, 1, || async { Ok(()) }).await;
        assert_eq!((ok, err), (5, None));
    }

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: &str) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": created}]},
        }))
    }

    #[test]
    fn deletion_order_follows_upstream_ranks() {
        let pods = vec![
            pod("running-old", "n1", "Running", true, "2026-01-01T00:00:00Z"),
            pod("running-new", "n2", "Running", true, "2026-01-02T00:00:00Z"),
            pod("pending", "n1", "Pending", false, "2026-01-01T00:00:00Z"),
            pod("unassigned", "", "Pending", false, "2026-01-01T00:00:00Z"),
            pod("not-ready", "n2", "Running", false, "2026-01-01T00:00:00Z"),
        ];
        let order: Vec<String> = pods_to_delete(&pods, 5)
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            order,
            [
                "unassigned",
                "pending",
                "not-ready",
                "running-new",
                "running-old"
            ]
        );
        // Doubled-up nodes first among equals.
        let pods = vec![
            pod("alone", "n1", "Running", true, "2026-01-01T00:00:00Z"),
            pod("pair-a", "n2", "Running", true, "2026-01-01T00:00:00Z"),
            pod("pair-b", "n2", "Running", true, "2026-01-01T00:00:00Z"),
        ];
        let first = pods_to_delete(&pods, 1);
        assert_ne!(first[0]["metadata"]["name"], "alone");
    }

    #[test]
    fn pods_come_from_the_template_with_a_controller_ref() {
        let rs = json!({"metadata": {"name": "web", "uid": "u1"}, "spec": {"template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }}});
        let p = pod_from_template(&Kind::replica_sets(), &rs);
        assert_eq!(p["metadata"]["generateName"], "web-");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(
            p["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1", "controller": true, "blockOwnerDeletion": true})
        );
        assert_eq!(p["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let now = time::OffsetDateTime::now_utc();
        let since = |secs: i64| {
            (now - time::Duration::seconds(secs))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since(5)}]}});
        assert!(pod_available(&p, Duration::ZERO, now));
        assert!(pod_available(&p, Duration::from_secs(3), now));
        assert!(!pod_available(&p, Duration::from_secs(10), now));
    }
}
