//! The taint eviction controller (upstream's NoExecute taint manager): pods on a node with a NoExecute taint they do not tolerate are deleted at once, pods tolerating it for `tolerationSeconds` after that long, each with a `DisruptionTarget` condition and a `TaintManagerEviction` event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client, DeleteParams, PatchType, Resource};
use crate::controller::{self, Action, Reconciler};
use crate::events::{self, Recorder};
use crate::informer::{Event, Informer, Informers, key_of, split_key};
use crate::queue::{RateLimiter, WorkQueue};
use crate::scheduler::plugins::tolerates;

/// Upstream's worker count for this controller.
const WORKERS: usize = 8;

/// Why evicting a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot evict pod {key}")]
    Evict {
        key: String,
        #[source]
        source: client::Error,
    },
}

fn pods() -> Resource {
    Resource::core("pods", true)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn no_execute_taints(node: &Value) -> Vec<&Value> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| str_at(t, "/effect") == "NoExecute")
        .collect()
}

/// How long a pod may stay on a node with these NoExecute taints: `Some(ZERO)` when one is
/// not tolerated, `None` when all are tolerated forever (upstream's
/// `getMinTolerationTime` over the tolerations that match).
pub fn allowed_time(pod: &Value, taints: &[&Value]) -> Option<Duration> {
    if taints.is_empty() {
        return None;
    }
    let tolerations: Vec<&Value> = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| matches!(str_at(t, "/effect"), "" | "NoExecute"))
        .collect();
    let mut min: Option<Duration> = None;
    for taint in taints {
        let matching: Vec<&&Value> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(Duration::ZERO);
        }
        for t in matching {
            if let Some(seconds) = t.get("tolerationSeconds").and_then(Value::as_i64) {
                let d = Duration::from_secs(seconds.max(0) as u64);
                min = Some(min.map_or(d, |m| m.min(d)));
            }
        }
    }
    min
}

/// The taint eviction controller.
pub struct TaintEviction {
    client: Client,
    pods: Informer,
    nodes: Informer,
    queue: WorkQueue,
    recorder: Recorder,
    /// When each pod's countdown started (upstream keys its timed queue the same way).
    started: Mutex<HashMap<String, Instant>>,
}

impl TaintEviction {
    pub fn new(client: Client, informers: &Informers) -> Arc<TaintEviction> {
        let pods = informers.informer(&pods());
        let nodes = informers.informer(&Resource::core("nodes", false));
        let queue = WorkQueue::new("taint_eviction", RateLimiter::default());
        let enqueue = queue.clone();
        pods.add_handler(move |event| {
            let pod = match event {
                Event::Added(p) | Event::Updated { new: p, .. } => p,
                Event::Deleted(p) => p,
            };
            if !str_at(pod, "/spec/nodeName").is_empty()
                && let Some(key) = key_of(pod)
            {
                enqueue.add(&key);
            }
        });
        let enqueue = queue.clone();
        let pod_list = pods.clone();
        nodes.add_handler(move |event| {
            let (node, changed) = match event {
                Event::Added(n) => (n, !no_execute_taints(n).is_empty()),
                Event::Updated { old, new } => {
                    (new, no_execute_taints(old) != no_execute_taints(new))
                }
                Event::Deleted(_) => return,
            };
            if !changed {
                return;
            }
            let name = str_at(node, "/metadata/name");
            for pod in pod_list.list() {
                if str_at(&pod, "/spec/nodeName") == name
                    && let Some(key) = key_of(&pod)
                {
                    enqueue.add(&key);
                }
            }
        });
        Arc::new(TaintEviction {
            recorder: Recorder::new(client.clone(), "taint-eviction-controller"),
            client,
            pods,
            nodes,
            queue,
            started: Mutex::new(HashMap::new()),
        })
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.pods.wait_synced(&shutdown).await || !self.nodes.wait_synced(&shutdown).await {
            return;
        }
        tracing::info!(
            controller = "taint-eviction-controller",
            workers = WORKERS,
            "controller started"
        );
        let queue = self.queue.clone();
        controller::run_workers(self, queue, WORKERS, shutdown).await;
    }

    fn cancel(&self, key: &str, pod: Option<&Value>) {
        if self.started.lock().remove(key).is_some()
            && let Some(pod) = pod
        {
            self.recorder.emit(
                &events::reference(pod, "Pod", "v1"),
                events::NORMAL,
                "TaintManagerEviction",
                "Cancelling",
                &format!("Cancelling deletion of Pod {key}"),
            );
        }
    }

    async fn sync(&self, key: &str) -> Result<Action, Error> {
        let Some(pod) = self.pods.get(key) else {
            self.started.lock().remove(key);
            return Ok(Action::Done);
        };
        let node_name = str_at(&pod, "/spec/nodeName");
        if node_name.is_empty() || pod.pointer("/metadata/deletionTimestamp").is_some() {
            self.started.lock().remove(key);
            return Ok(Action::Done);
        }
        let node = self.nodes.get(node_name);
        let taints = node.as_deref().map(no_execute_taints).unwrap_or_default();
        let Some(allowed) = allowed_time(&pod, &taints) else {
            self.cancel(key, Some(&pod));
            return Ok(Action::Done);
        };
        let now = Instant::now();
        let started = *self.started.lock().entry(key.to_string()).or_insert(now);
        let due = started + allowed;
        if due > now {
            return Ok(Action::RequeueAfter(due - now));
        }
        self.evict(key, &pod).await?;
        self.started.lock().remove(key);
        Ok(Action::Done)
    }

    /// The DisruptionTarget condition, the event, then the delete.
    async fn evict(&self, key: &str, pod: &Value) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let failed = |source| Error::Evict {
            key: key.to_string(),
            source,
        };
        let condition = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": crate::rfc3339_now(),
        }]}});
        match self
            .client
            .patch_subresource(
                &pods(),
                Some(namespace),
                name,
                "status",
                PatchType::Strategic,
                &condition,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(failed(e)),
        }
        self.recorder.emit(
            &events::reference(pod, "Pod", "v1"),
            events::NORMAL,
            "TaintManagerEviction",
            "Deleting",
            &format!("Marking for deletion Pod {key}"),
        );
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
                tracing::info!(
                    controller = "taint-eviction-controller",
                    pod = key,
                    "pod evicted"
                );
                Ok(())
            }
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }
}

impl Reconciler for TaintEviction {
    type Error = Error;

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        self.sync(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toleration_time() {
        let taint = json!({"key": "tag", "value": "test", "effect": "NoExecute"});
        let taints = [&taint];
        let pod = |tolerations: Value| json!({"spec": {"tolerations": tolerations}});
        assert_eq!(allowed_time(&pod(json!([])), &taints), Some(Duration::ZERO));
        assert_eq!(
            allowed_time(
                &pod(json!([{"key": "tag", "operator": "Exists", "effect": "NoExecute"}])),
                &taints
            ),
            None
        );
        assert_eq!(
            allowed_time(
                &pod(
                    json!([{"key": "tag", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}])
                ),
                &taints
            ),
            Some(Duration::from_secs(30))
        );
        // A NoSchedule toleration does not tolerate NoExecute.
        assert_eq!(
            allowed_time(
                &pod(json!([{"key": "tag", "operator": "Exists", "effect": "NoSchedule"}])),
                &taints
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(allowed_time(&pod(json!([])), &[]), None);
    }
}
