//! Resource arithmetic of the scheduler: a pod's effective requests (upstream's `PodRequests`, with init and sidecar containers and overhead), the non-zero requests used for scoring, and a node's allocatable.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity::Quantity;

/// CPU counted for a container without a CPU request when scoring (upstream's
/// `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// Memory counted for a container without a memory request when scoring (200 MiB).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// An amount of each resource the scheduler counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Number of pods (for allocatable) or 1 (for a pod).
    pub pods: i64,
    /// Extended and other resources (`example.com/gpu`, `hugepages-2Mi`), in whole units.
    pub scalar: BTreeMap<String, i64>,
}

fn quantity(value: &Value) -> Option<Quantity> {
    Quantity::from_json(value).ok()
}

impl Resources {
    /// A `ResourceList` (`{"cpu": "500m", "memory": "1Gi", ...}`).
    pub fn from_list(list: Option<&Value>) -> Resources {
        let mut out = Resources::default();
        let Some(list) = list.and_then(Value::as_object) else {
            return out;
        };
        for (name, value) in list {
            let Some(q) = quantity(value) else {
                continue;
            };
            match name.as_str() {
                "cpu" => out.milli_cpu = q.milli_value(),
                "memory" => out.memory = q.value(),
                "ephemeral-storage" => out.ephemeral_storage = q.value(),
                "pods" => out.pods = q.value(),
                other => {
                    out.scalar.insert(other.to_string(), q.value());
                }
            }
        }
        out
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each resource the larger of the two.
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let slot = self.scalar.entry(k.clone()).or_default();
            *slot = (*slot).max(*v);
        }
    }
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn container_requests(container: &Value, non_zero: bool) -> Resources {
    let mut r = Resources::from_list(container.pointer("/resources/requests"));
    if non_zero {
        let requests = container.pointer("/resources/requests");
        if requests.and_then(|r| r.get("cpu")).is_none() {
            r.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if requests.and_then(|r| r.get("memory")).is_none() {
            r.memory = DEFAULT_MEMORY;
        }
    }
    r
}

/// Upstream's `PodRequests`: app containers plus restartable (sidecar) init containers, or
/// for each regular init container its request plus the sidecars started before it, whichever
/// is larger; plus `spec.overhead`. `non_zero` counts unset CPU and memory requests as
/// upstream's scoring defaults. `pods` is 1.
pub fn pod_requests(pod: &Value, non_zero: bool) -> Resources {
    let mut reqs = Resources::default();
    for c in containers(pod, "containers") {
        reqs.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in containers(pod, "initContainers") {
        let mut r = container_requests(c, non_zero);
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init_max.max_with(&r);
    }
    reqs.max_with(&init_max);
    reqs.add(&Resources::from_list(pod.pointer("/spec/overhead")));
    reqs.pods = 1;
    reqs
}

/// A node's `status.allocatable`.
pub fn allocatable(node: &Value) -> Resources {
    Resources::from_list(node.pointer("/status/allocatable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(cpu: &str, mem: &str) -> Value {
        json!({"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}})
    }

    #[test]
    fn effective_requests_follow_upstream() {
        let pod = json!({"spec": {
            "containers": [c("500m", "1Gi"), c("250m", "512Mi")],
            "initContainers": [c("2", "100Mi")],
            "overhead": {"cpu": "10m"},
        }});
        let r = pod_requests(&pod, false);
        // init container's 2 CPU beats 750m of app containers; memory 1.5Gi beats 100Mi.
        assert_eq!(r.milli_cpu, 2010);
        assert_eq!(r.memory, 1536 * 1024 * 1024);
        assert_eq!(r.pods, 1);
        // A sidecar counts with the app containers and before later init containers.
        let mut sidecar = c("1", "1Gi");
        sidecar["restartPolicy"] = json!("Always");
        let pod = json!({"spec": {
            "containers": [c("500m", "1Gi")],
            "initContainers": [sidecar, c("1", "10Mi")],
        }});
        let r = pod_requests(&pod, false);
        assert_eq!(r.milli_cpu, 2000);
        assert_eq!(r.memory, 2 * 1024 * 1024 * 1024);
    }

    #[test]
    fn non_zero_defaults_only_fill_unset_requests() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, c("1", "1Mi")]}});
        let r = pod_requests(&pod, true);
        assert_eq!(r.milli_cpu, 1100);
        assert_eq!(r.memory, DEFAULT_MEMORY + 1024 * 1024);
        assert_eq!(pod_requests(&pod, false).milli_cpu, 1000);
    }

    #[test]
    fn extended_resources_are_scalar() {
        let r = Resources::from_list(Some(
            &json!({"cpu": "32", "memory": "256Gi", "pods": "110", "example.com/gpu": "4"}),
        ));
        assert_eq!(r.milli_cpu, 32000);
        assert_eq!(r.pods, 110);
        assert_eq!(r.scalar["example.com/gpu"], 4);
    }
}
