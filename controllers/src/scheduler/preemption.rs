//! Preemption (upstream's DefaultPreemption): when no node fits, find the node where evicting the fewest, least important lower-priority pods makes room, honouring PodDisruptionBudgets as far as possible.
//!
//! PodDisruptionBudgets count as allowing no disruption unless their
//! `status.disruptionsAllowed` says otherwise (the disruption controller that computes it
//! comes later), so victims they cover are spared first and nodes needing fewer such
//! victims win.

use std::sync::Arc;

use serde_json::Value;

use super::cache::{NodeInfo, PodInfo};
use super::plugins::{Code, Cycle, Failure, label_selector_matches};

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// What preemption came to.
pub enum Outcome {
    /// Evict these pods from that node; the preemptor waits for them to go.
    Nominated {
        node: String,
        victims: Vec<Arc<Value>>,
    },
    /// Nothing to do: upstream's `preemption: …` message.
    Failed(String),
    /// Victims of an earlier preemption are still leaving the nominated node: keep the
    /// nomination and wait (the message says so).
    Waiting(String),
}

struct Candidate {
    node: String,
    victims: Vec<Arc<PodInfo>>,
    violations: usize,
}

/// Whether evicting `pod` would break a PodDisruptionBudget (one that selects it and allows
/// no disruption).
fn violates_budget(pod: &PodInfo, budgets: &[Arc<Value>]) -> bool {
    budgets.iter().any(|b| {
        b.pointer("/metadata/namespace").and_then(Value::as_str) == Some(pod.namespace())
            && b.pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                <= 0
            && b.pointer("/spec/selector").is_some_and(|s| {
                label_selector_matches(Some(s), pod.labels())
                    && !s.as_object().is_some_and(|o| o.is_empty())
            })
    })
}

/// Upstream's `selectVictimsOnNode`: remove every lower-priority pod; if the preemptor then
/// fits, add back as many as possible (budget-protected ones first, then by priority).
fn victims_on(cycle: &Cycle, node: &NodeInfo, budgets: &[Arc<Value>]) -> Option<Candidate> {
    let priority = cycle.info.priority;
    let mut lower: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    let mut trial = node.clone();
    for p in &lower {
        trial.remove_pod(&p.key);
    }
    if cycle.filter(&trial).is_err() {
        return None;
    }
    // Reprieve in order: budget-violating first, then higher priority first.
    lower.sort_by_key(|p| (!violates_budget(p, budgets), std::cmp::Reverse(p.priority)));
    let mut victims = Vec::new();
    let mut violations = 0;
    for p in lower {
        trial.add_pod(p.clone());
        if cycle.filter(&trial).is_err() {
            trial.remove_pod(&p.key);
            if violates_budget(&p, budgets) {
                violations += 1;
            }
            victims.push(p);
        }
    }
    Some(Candidate {
        node: node.name.clone(),
        victims,
        violations,
    })
}

/// Try preemption for a pod no node fits; `failures` are the filter results per node index.
pub fn preempt(
    cycle: &Cycle,
    nodes: &[Arc<NodeInfo>],
    failures: &[(usize, Failure)],
    budgets: &[Arc<Value>],
) -> Outcome {
    let policy = cycle
        .pod
        .pointer("/spec/preemptionPolicy")
        .and_then(Value::as_str);
    if policy == Some("Never") {
        return Outcome::Failed("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    // Upstream's PodEligibleToPreemptOthers: while a lower-priority pod is still leaving the
    // nominated node, wait for it rather than preempt again.
    let nominated = cycle
        .pod
        .pointer("/status/nominatedNodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(node) = nodes
        .iter()
        .find(|n| !nominated.is_empty() && n.name == nominated)
        && node.pods.iter().any(|p| {
            p.priority < cycle.info.priority
                && p.pod.pointer("/metadata/deletionTimestamp").is_some()
        })
    {
        return Outcome::Waiting(
            "preemption: not eligible due to a terminating pod on the nominated node.".into(),
        );
    }
    let mut not_helpful = 0;
    let mut no_victims = 0;
    let mut candidates = Vec::new();
    for (index, failure) in failures {
        if failure.code == Code::Unresolvable {
            not_helpful += 1;
            continue;
        }
        match victims_on(cycle, &nodes[*index], budgets) {
            Some(c) => candidates.push(c),
            None => no_victims += 1,
        }
    }
    // Upstream's pickOneNodeForPreemption: fewest budget violations, lowest highest-priority
    // victim, lowest priority sum, fewest victims.
    let best = candidates.into_iter().min_by_key(|c| {
        let highest = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i64::MIN);
        let sum: i64 = c.victims.iter().map(|v| v.priority).sum();
        (c.violations, highest, sum, c.victims.len())
    });
    match best {
        Some(c) => Outcome::Nominated {
            node: c.node,
            victims: c.victims.iter().map(|v| v.pod.clone()).collect(),
        },
        None => {
            let mut reasons = Vec::new();
            if not_helpful > 0 {
                reasons.push(format!("{not_helpful} {NOT_HELPFUL}"));
            }
            if no_victims > 0 {
                reasons.push(format!("{no_victims} {NO_VICTIMS}"));
            }
            reasons.sort();
            Outcome::Failed(format!(
                "preemption: 0/{} nodes are available: {}.",
                nodes.len(),
                reasons.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i64, cpu: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": {
            "priority": priority,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]
        }})
    }

    fn node(name: &str, pods: &[Value]) -> Arc<NodeInfo> {
        let n = json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
        let mut info = NodeInfo {
            name: name.into(),
            ..NodeInfo::default()
        };
        info.set_node(Arc::new(n));
        for p in pods {
            let mut p = p.clone();
            p["spec"]["nodeName"] = json!(name);
            info.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
        }
        Arc::new(info)
    }

    fn run(preemptor: Value, nodes: &[Arc<NodeInfo>], budgets: &[Arc<Value>]) -> Outcome {
        let cycle = Cycle::new(Arc::new(preemptor), nodes, &|_| None);
        let failures: Vec<(usize, Failure)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| cycle.filter(n).err().map(|f| (i, f)))
            .collect();
        preempt(&cycle, nodes, &failures, budgets)
    }

    fn names(outcome: &Outcome) -> (String, Vec<String>) {
        match outcome {
            Outcome::Nominated { node, victims } => (
                node.clone(),
                victims
                    .iter()
                    .map(|v| v["metadata"]["name"].as_str().unwrap().to_string())
                    .collect(),
            ),
            Outcome::Failed(m) | Outcome::Waiting(m) => (m.clone(), vec![]),
        }
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        let nodes = [
            node(
                "a",
                &[pod("a1", 10, "2", json!({})), pod("a2", 5, "2", json!({}))],
            ),
            node(
                "b",
                &[pod("b1", 1, "1", json!({})), pod("b2", 1, "3", json!({}))],
            ),
        ];
        // 2 CPU needed: node a frees it with the priority-5 pod, node b only by evicting
        // the 3-CPU priority-1 pod; b's highest victim is lower, so b wins.
        let (node, victims) = names(&run(pod("p", 100, "2", json!({})), &nodes, &[]));
        assert_eq!((node.as_str(), victims), ("b", vec!["b2".to_string()]));
    }

    #[test]
    fn no_victims_and_never() {
        let nodes = [node("a", &[pod("a1", 100, "4", json!({}))])];
        let (message, _) = names(&run(pod("p", 1, "1", json!({})), &nodes, &[]));
        assert_eq!(
            message,
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
        let mut never = pod("p", 1000, "1", json!({}));
        never["spec"]["preemptionPolicy"] = json!("Never");
        let (message, _) = names(&run(never, &nodes, &[]));
        assert_eq!(
            message,
            "preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn budgets_steer_the_choice() {
        let nodes = [
            node("a", &[pod("a1", 1, "4", json!({"app": "guarded"}))]),
            node("b", &[pod("b1", 1, "4", json!({"app": "free"}))]),
        ];
        let pdb = Arc::new(
            json!({"metadata": {"namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "guarded"}}}}),
        );
        let (node, _) = names(&run(pod("p", 100, "1", json!({})), &nodes, &[pdb]));
        assert_eq!(node, "b");
    }
}
