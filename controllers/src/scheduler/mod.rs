//! The scheduler (`default-scheduler`): assigns each pending pod of `schedulerName: default-scheduler` to a node by filtering and scoring, as upstream's kube-scheduler does, and binds it through `pods/binding`.
//!
//! One loop takes pods from the [`queue`] in priority order. Each cycle filters the nodes of a
//! [`cache`] snapshot (stopping after upstream's `percentageOfNodesToScore` of feasible nodes,
//! starting where the last cycle stopped), scores the feasible ones, assumes the pod on the
//! best node and binds it in the background; the next cycle already counts the assumed pod. A
//! pod no node fits gets `PodScheduled=False` with upstream's message and a `FailedScheduling`
//! event, may preempt lower-priority pods ([`preemption`]), and waits for a cluster change.

pub mod cache;
pub mod plugins;
mod preemption;
pub mod queue;
pub mod resources;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, PatchType, Resource};
use crate::events::{self, Recorder};
use crate::informer::{Event, Informer, Informers, key_of, split_key};
use cache::Cache;
use plugins::{Cycle, Failure};
use queue::{SchedulingQueue, hint};

/// The scheduler's name in pods' `spec.schedulerName` and in its events.
pub const NAME: &str = "default-scheduler";

/// Feasible nodes looked for before scoring, at least (upstream's `minFeasibleNodesToFind`).
const MIN_FEASIBLE: usize = 100;

/// Settings of the scheduler.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Wait this long before each bind (tests use it to show assumed pods at work).
    pub bind_delay: Duration,
    /// Who this process is when contending for the `kube-scheduler` lease.
    pub identity: String,
}

/// Upstream's `numFeasibleNodesToFind` with the adaptive percentage.
pub fn feasible_to_find(nodes: usize) -> usize {
    if nodes < MIN_FEASIBLE {
        return nodes;
    }
    let percentage = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percentage / 100).max(MIN_FEASIBLE)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn pods_resource() -> Resource {
    Resource::core("pods", true)
}

/// Whether the scheduler places this pod: unassigned, ours, not terminating or finished.
fn responsible(pod: &Value) -> bool {
    let scheduler = match str_at(pod, "/spec/schedulerName") {
        "" => NAME,
        s => s,
    };
    scheduler == NAME
        && str_at(pod, "/spec/nodeName").is_empty()
        && pod.pointer("/metadata/deletionTimestamp").is_none()
        && !terminal(pod)
}

fn terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn assigned(pod: &Value) -> bool {
    !str_at(pod, "/spec/nodeName").is_empty()
}

/// Whether a node change may let a waiting pod fit.
fn node_change_matters(old: &Value, new: &Value) -> bool {
    [
        "/spec/unschedulable",
        "/spec/taints",
        "/metadata/labels",
        "/status/allocatable",
    ]
    .iter()
    .any(|p| old.pointer(p) != new.pointer(p))
        || conditions(old) != conditions(new)
}

fn conditions(node: &Value) -> Vec<(String, String)> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                str_at(c, "/type").to_string(),
                str_at(c, "/status").to_string(),
            )
        })
        .collect()
}

/// Upstream's `FitError` text: `0/N nodes are available: <counted reasons>.` and the
/// preemption's own.
pub fn fit_message(total: usize, failures: &[Failure], postfilter: Option<&str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in failures {
        for r in &f.reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut reasons: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    reasons.sort();
    let mut message = format!("0/{total} nodes are available:");
    if !reasons.is_empty() {
        message.push_str(&format!(" {}.", reasons.join(", ")));
    }
    if let Some(post) = postfilter {
        message.push_str(&format!(" {post}"));
    }
    message
}

/// The scheduler and what it shares with its informer handlers and bind tasks.
pub struct Scheduler {
    client: Client,
    pods: Informer,
    nodes: Informer,
    namespaces: Informer,
    pdbs: Informer,
    cache: Arc<Mutex<Cache>>,
    queue: Arc<SchedulingQueue>,
    recorder: Recorder,
    options: Options,
    next_start: Mutex<usize>,
}

impl Scheduler {
    pub fn new(client: Client, informers: &Informers, options: Options) -> Arc<Scheduler> {
        let pods = informers.informer(&pods_resource());
        let nodes = informers.informer(&Resource::core("nodes", false));
        let namespaces = informers.informer(&Resource::core("namespaces", false));
        let pdbs = informers.informer(&Resource::new("policy", "v1", "poddisruptionbudgets", true));
        let cache = Arc::new(Mutex::new(Cache::default()));
        let queue = Arc::new(SchedulingQueue::default());
        {
            let (cache, queue) = (cache.clone(), queue.clone());
            pods.add_handler(move |event| on_pod(&cache, &queue, event));
        }
        {
            let (cache, queue) = (cache.clone(), queue.clone());
            nodes.add_handler(move |event| match event {
                Event::Added(node) => {
                    cache.lock().set_node(node.clone());
                    queue.move_all(hint::NODE_CHANGED);
                }
                Event::Updated { old, new } => {
                    cache.lock().set_node(new.clone());
                    if node_change_matters(old, new) {
                        queue.move_all(hint::NODE_CHANGED);
                    }
                }
                Event::Deleted(node) => {
                    cache.lock().remove_node(str_at(node, "/metadata/name"));
                }
            });
        }
        Arc::new(Scheduler {
            recorder: Recorder::new(client.clone(), NAME),
            client,
            pods,
            nodes,
            namespaces,
            pdbs,
            cache,
            queue,
            options,
            next_start: Mutex::new(0),
        })
    }

    /// Schedule until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        for informer in [&self.pods, &self.nodes, &self.namespaces, &self.pdbs] {
            if !informer.wait_synced(&shutdown).await {
                return;
            }
        }
        tracing::info!(scheduler = NAME, "scheduler started");
        let flusher = {
            let queue = self.queue.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tick.tick() => queue.flush_stale(),
                    }
                }
            })
        };
        let closer = {
            let queue = self.queue.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                queue.close();
            })
        };
        while let Some((key, cycle)) = self.queue.pop().await {
            self.schedule_one(&key, cycle).await;
        }
        flusher.abort();
        closer.abort();
    }

    fn namespace_labels(&self, namespace: &str) -> Option<Map<String, Value>> {
        self.namespaces.get(namespace).and_then(|ns| {
            ns.pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
        })
    }

    async fn schedule_one(self: &Arc<Self>, key: &str, cycle_number: u64) {
        let Some(pod) = self.pods.get(key) else {
            self.queue.remove(key);
            return;
        };
        if !responsible(&pod) || self.cache.lock().is_assumed(key) {
            self.queue.done(key);
            return;
        }
        let snapshot = self.cache.lock().snapshot();
        if snapshot.is_empty() {
            self.record_failure(
                &pod,
                key,
                cycle_number,
                "no nodes available to schedule pods",
                hint::NODE,
            )
            .await;
            return;
        }
        let cycle = Cycle::new(pod.clone(), &snapshot, &|ns| self.namespace_labels(ns));
        let total = snapshot.len();
        let to_find = feasible_to_find(total);
        let start = *self.next_start.lock() % total;
        let mut feasible = Vec::new();
        let mut failures: Vec<(usize, Failure)> = Vec::new();
        let mut processed = 0;
        for i in 0..total {
            let index = (start + i) % total;
            processed += 1;
            match cycle.filter(&snapshot[index]) {
                Ok(()) => {
                    feasible.push(index);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Err(f) => failures.push((index, f)),
            }
        }
        *self.next_start.lock() = (start + processed) % total;
        if feasible.is_empty() {
            let only: Vec<Failure> = failures.iter().map(|(_, f)| f.clone()).collect();
            let hints = only.iter().fold(0, |h, f| h | failure_hint(f));
            let outcome = preemption::preempt(&cycle, &snapshot, &failures, &self.pdbs.list());
            let (message, nominated, hints) = match outcome {
                preemption::Outcome::Nominated { node, victims } => {
                    self.preempt(&pod, &node, &victims).await;
                    // Its victims leaving is what it waits for.
                    let message = fit_message(total, &only, None);
                    (message, Some(node), hints | hint::POD_DELETED)
                }
                preemption::Outcome::Waiting(post) => {
                    let node = str_at(&pod, "/status/nominatedNodeName").to_string();
                    let message = fit_message(total, &only, Some(&post));
                    (message, Some(node), hints | hint::POD_DELETED)
                }
                preemption::Outcome::Failed(post) => {
                    (fit_message(total, &only, Some(&post)), None, hints)
                }
            };
            self.record_failure_nominated(
                &pod,
                key,
                cycle_number,
                &message,
                nominated.as_deref(),
                hints,
            )
            .await;
            return;
        }
        let chosen = if feasible.len() == 1 {
            feasible[0]
        } else {
            let candidates: Vec<&cache::NodeInfo> =
                feasible.iter().map(|&i| snapshot[i].as_ref()).collect();
            let scores = cycle.scores(&candidates);
            select_host(&feasible, &scores)
        };
        let node = snapshot[chosen].name.clone();
        self.cache.lock().assume(pod.clone(), &node);
        let this = self.clone();
        let key = key.to_string();
        tokio::spawn(async move { this.bind(pod, key, node).await });
    }

    async fn bind(self: Arc<Self>, pod: Arc<Value>, key: String, node: String) {
        if !self.options.bind_delay.is_zero() {
            tokio::time::sleep(self.options.bind_delay).await;
        }
        let (namespace, name) = split_key(&key);
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": str_at(&pod, "/metadata/uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let path = format!(
            "{}/binding",
            pods_resource().object_path(Some(namespace), name)
        );
        match self
            .client
            .request(Method::POST, &path, Some(("application/json", &binding)))
            .await
        {
            Ok(_) => {
                self.queue.done(&key);
                self.recorder.emit(
                    &events::reference(&pod, "Pod", "v1"),
                    events::NORMAL,
                    "Scheduled",
                    "Binding",
                    &format!("Successfully assigned {namespace}/{name} to {node}"),
                );
            }
            Err(e) => {
                self.cache.lock().forget(&key);
                let gone = e.is_not_found() || e.is_conflict();
                tracing::debug!(pod = %key, %node, error = %crate::error_chain(&e), "binding failed");
                if gone {
                    // Deleted, or bound by someone else: the informer tells the rest.
                    self.queue.done(&key);
                } else {
                    self.queue.retry(&key);
                }
                self.recorder.emit(
                    &events::reference(&pod, "Pod", "v1"),
                    events::WARNING,
                    "FailedScheduling",
                    "Scheduling",
                    &format!("Binding rejected: {}", crate::error_chain(&e)),
                );
            }
        }
    }

    async fn record_failure(&self, pod: &Value, key: &str, cycle: u64, message: &str, hints: u8) {
        self.record_failure_nominated(pod, key, cycle, message, None, hints)
            .await;
    }

    /// Upstream's `handleSchedulingFailure`: the event, the PodScheduled condition (and the
    /// nominated node), and the pod back to the queue.
    async fn record_failure_nominated(
        &self,
        pod: &Value,
        key: &str,
        cycle: u64,
        message: &str,
        nominated: Option<&str>,
        hints: u8,
    ) {
        tracing::debug!(pod = %key, %message, "unschedulable");
        self.recorder.emit(
            &events::reference(pod, "Pod", "v1"),
            events::WARNING,
            "FailedScheduling",
            "Scheduling",
            message,
        );
        let current = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| str_at(c, "/type") == "PodScheduled");
        let same = current.is_some_and(|c| {
            str_at(c, "/status") == "False"
                && str_at(c, "/reason") == "Unschedulable"
                && str_at(c, "/message") == message
        });
        let nominated_same =
            nominated.is_none_or(|n| str_at(pod, "/status/nominatedNodeName") == n);
        if !same || !nominated_same {
            let mut status = json!({"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": crate::rfc3339_now(),
            }]});
            if let Some(node) = nominated {
                status["nominatedNodeName"] = json!(node);
            }
            let (namespace, name) = split_key(key);
            if let Err(e) = self
                .client
                .patch_subresource(
                    &pods_resource(),
                    Some(namespace),
                    name,
                    "status",
                    PatchType::Strategic,
                    &json!({"status": status}),
                )
                .await
            {
                tracing::debug!(pod = %key, error = %crate::error_chain(&e), "cannot update the PodScheduled condition");
            }
        }
        self.queue.unschedulable(key, cycle, hints);
    }

    /// Delete the victims gracefully, each with a `Preempted` event.
    async fn preempt(&self, pod: &Value, node: &str, victims: &[Arc<Value>]) {
        for victim in victims {
            let Some(key) = key_of(victim) else {
                continue;
            };
            let (namespace, name) = split_key(&key);
            self.recorder.emit(
                &events::reference(victim, "Pod", "v1"),
                events::NORMAL,
                "Preempted",
                "Preempting",
                &format!(
                    "Preempted by pod {} on node {node}",
                    str_at(pod, "/metadata/uid")
                ),
            );
            let params = crate::client::DeleteParams {
                precondition_uid: Some(str_at(victim, "/metadata/uid").to_string()),
                ..Default::default()
            };
            if let Err(e) = self
                .client
                .delete(&pods_resource(), Some(namespace), name, &params)
                .await
                && !e.is_not_found()
            {
                tracing::warn!(pod = %key, error = %crate::error_chain(&e), "cannot delete a preemption victim");
            }
        }
    }

    /// Pods waiting: (active, backoff, unschedulable).
    pub fn pending(&self) -> (usize, usize, usize) {
        self.queue.lengths()
    }
}

/// Run the scheduler against the API server `config` points at (as `system:kube-scheduler`,
/// with its own informers, as the separate kube-scheduler upstream) until `shutdown`; stopping
/// before it cancels `shutdown`.
pub async fn run(
    config: crate::ClientConfig,
    options: Options,
    shutdown: CancellationToken,
) -> crate::Result<()> {
    let client = match Client::new(&config) {
        Ok(client) => client,
        Err(source) => {
            shutdown.cancel();
            return Err(crate::Error::Client {
                server: config.server.clone(),
                source,
            });
        }
    };
    let mut elector = crate::leaderelection::Elector::new(
        client.clone(),
        "kube-system",
        "kube-scheduler",
        options.identity.clone(),
    );
    if !elector.acquire(&shutdown).await {
        return Ok(());
    }
    let leader = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kept = elector.keep(&shutdown).await;
            if kept {
                elector.release().await;
            } else {
                shutdown.cancel();
            }
            kept
        })
    };
    let informers = Informers::new(client.clone(), shutdown.clone());
    let scheduler = Scheduler::new(client, &informers, options);
    scheduler.run(shutdown.clone()).await;
    if let Ok(false) = leader.await {
        informers.stopped().await;
        return Err(crate::Error::Stopped {
            name: "scheduler",
            message: "the leader lease was lost".into(),
        });
    }
    let result = if shutdown.is_cancelled() {
        Ok(())
    } else {
        shutdown.cancel();
        Err(crate::Error::Stopped {
            name: "scheduler",
            message: "returned before shutdown".into(),
        })
    };
    informers.stopped().await;
    result
}

/// What kind of cluster change may cure a filter failure.
fn failure_hint(failure: &Failure) -> u8 {
    failure.reasons.iter().fold(0, |h, reason| {
        h | match reason.as_str() {
            plugins::ERR_AFFINITY => hint::POD_AFFINITY,
            plugins::ERR_ANTI_AFFINITY | plugins::ERR_EXISTING_ANTI_AFFINITY => {
                hint::POD_ANTI_AFFINITY
            }
            plugins::ERR_SPREAD => hint::SPREAD,
            plugins::ERR_PORTS => hint::RESOURCES,
            r if r.starts_with("Insufficient ") || r == "Too many pods" => hint::RESOURCES,
            _ => hint::NODE,
        }
    })
}

/// The highest score; ties broken at random (reservoir sampling, as upstream's `selectHost`).
fn select_host(feasible: &[usize], scores: &[i64]) -> usize {
    let mut best = feasible[0];
    let mut best_score = i64::MIN;
    let mut ties = 0u32;
    for (&index, &score) in feasible.iter().zip(scores) {
        if score > best_score {
            best = index;
            best_score = score;
            ties = 1;
        } else if score == best_score {
            ties += 1;
            if rand::random::<u32>().is_multiple_of(ties) {
                best = index;
            }
        }
    }
    best
}

/// Upstream's `isPodUpdated`: a change beyond resourceVersion, generation, managedFields,
/// finalizers and status.
fn spec_or_meta_changed(old: &Value, new: &Value) -> bool {
    let strip = |pod: &Value| {
        let mut p = pod.clone();
        if let Some(o) = p.as_object_mut() {
            o.remove("status");
        }
        if let Some(meta) = p.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "resourceVersion",
                "generation",
                "managedFields",
                "finalizers",
            ] {
                meta.remove(field);
            }
        }
        p
    };
    strip(old) != strip(new)
}

/// Keep the cache and queue current with the pods informer.
fn on_pod(cache: &Mutex<Cache>, queue: &SchedulingQueue, event: Event<'_>) {
    match event {
        Event::Added(pod) | Event::Updated { new: pod, .. } => {
            let Some(key) = key_of(pod) else {
                return;
            };
            if assigned(pod) {
                if terminal(pod) {
                    cache.lock().remove_pod(&key);
                    queue.move_all(hint::POD_DELETED);
                } else {
                    let fresh = matches!(event, Event::Added(_))
                        || matches!(event, Event::Updated { old, .. } if !assigned(old));
                    cache.lock().add_pod(pod.clone());
                    if fresh {
                        // A newly bound pod may satisfy another's pod affinity.
                        queue.move_all(hint::POD_ADDED);
                    }
                }
                queue.remove(&key);
            } else if responsible(pod) {
                // Status-only changes (the scheduler's own condition) do not retry a pod.
                if let Event::Updated { old, new } = event
                    && !spec_or_meta_changed(old, new)
                {
                    return;
                }
                queue.add(&key, cache::priority(pod));
            } else {
                queue.remove(&key);
                cache.lock().forget(&key);
            }
        }
        Event::Deleted(pod) => {
            let Some(key) = key_of(pod) else {
                return;
            };
            queue.remove(&key);
            let mut cache = cache.lock();
            if assigned(pod) || cache.is_assumed(&key) {
                cache.remove_pod(&key);
                drop(cache);
                queue.move_all(hint::POD_DELETED);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugins::Code;

    #[test]
    fn feasible_nodes_to_find() {
        assert_eq!(feasible_to_find(50), 50);
        assert_eq!(feasible_to_find(100), 100);
        // 1,000 nodes: 50 - 8 = 42 %.
        assert_eq!(feasible_to_find(1000), 420);
        // 5,000 nodes: 50 - 40 = 10 %.
        assert_eq!(feasible_to_find(5000), 500);
        // 10,000 nodes: floor of 5 %.
        assert_eq!(feasible_to_find(10_000), 500);
    }

    #[test]
    fn messages_as_upstream() {
        let f = |code, r: &str| Failure {
            code,
            reasons: vec![r.to_string()],
        };
        let failures = [
            f(
                Code::Unresolvable,
                "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",
            ),
            f(Code::Unschedulable, "Insufficient memory"),
            f(Code::Unschedulable, "Insufficient memory"),
        ];
        assert_eq!(
            fit_message(
                3,
                &failures,
                Some(
                    "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
                )
            ),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn ties_are_broken_among_the_best() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(select_host(&[0, 1, 2], &[5, 9, 9]));
        }
        assert_eq!(seen, [1, 2].into_iter().collect());
    }

    #[test]
    fn responsibility() {
        assert!(responsible(&json!({"spec": {}})));
        assert!(!responsible(&json!({"spec": {"schedulerName": "other"}})));
        assert!(!responsible(&json!({"spec": {"nodeName": "n"}})));
        assert!(!responsible(
            &json!({"spec": {}, "metadata": {"deletionTimestamp": "x"}})
        ));
        assert!(!responsible(
            &json!({"spec": {}, "status": {"phase": "Failed"}})
        ));
    }
}
