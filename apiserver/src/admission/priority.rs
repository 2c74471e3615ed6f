//! Priority: a new pod's `spec.priority` and `preemptionPolicy` come from its PriorityClass (or the global default), and at most one PriorityClass is the global default.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Attributes, Lookup, Operation, Plugin, resource};
use crate::object::meta_str;
use crate::status::ApiResult;

pub struct Priority;

fn classes() -> &'static crate::registry::Resource {
    resource("scheduling.k8s.io", "priorityclasses")
}

/// The global default class: the lowest-valued one if a race made several.
fn default_class(list: &[Value]) -> Option<&Value> {
    list.iter()
        .filter(|pc| pc.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|pc| pc.get("value").and_then(Value::as_i64).unwrap_or(0))
}

impl Priority {
    async fn admit_pod(
        &self,
        attrs: &Attributes<'_>,
        pod: &mut Value,
        cluster: &dyn Lookup,
    ) -> ApiResult<()> {
        let Some(spec) = pod.get("spec").filter(|s| s.is_object()).cloned() else {
            return Ok(());
        };
        if attrs.operation == Operation::Update {
            // The priority set at creation stays (validation forbids changing it).
            let old = attrs.old_object.and_then(|o| o.get("spec"));
            for field in ["priority", "preemptionPolicy"] {
                if spec.get(field).is_none()
                    && let Some(v) = old.and_then(|o| o.get(field))
                {
                    pod["spec"][field] = v.clone();
                }
            }
            return Ok(());
        }
        let class_name = spec
            .get("priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (name, priority, policy) = if class_name.is_empty() {
            let list = cluster.list(classes(), None, false).await?;
            match default_class(&list) {
                Some(pc) => (
                    meta_str(pc, "name").unwrap_or("").to_string(),
                    pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                    pc.get("preemptionPolicy")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ),
                None => (String::new(), 0, Some("PreemptLowerPriority".to_string())),
            }
        } else {
            let Some(pc) = cluster.get(classes(), None, &class_name).await? else {
                return Err(attrs.forbidden(
                    Some(pod),
                    &format!("no PriorityClass with name {class_name} was found"),
                ));
            };
            (
                class_name,
                pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                pc.get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )
        };
        if !name.is_empty() {
            pod["spec"]["priorityClassName"] = json!(name);
        }
        if let Some(given) = pod["spec"].get("priority").and_then(Value::as_i64)
            && given != priority
        {
            return Err(attrs.forbidden(
                    Some(pod),
                    &format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"),
                ));
        }
        pod["spec"]["priority"] = json!(priority);
        if let Some(policy) = policy {
            if let Some(given) = pod["spec"].get("preemptionPolicy").and_then(Value::as_str)
                && given != policy
            {
                return Err(attrs.forbidden(
                        Some(pod),
                        &format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"),
                    ));
            }
            pod["spec"]["preemptionPolicy"] = json!(policy);
        }
        Ok(())
    }
}

impl Plugin for Priority {
    fn admit<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: &'a mut Value,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            if attrs.is("", "pods")
                && attrs.subresource.is_none()
                && matches!(attrs.operation, Operation::Create | Operation::Update)
            {
                self.admit_pod(attrs, object, cluster).await?;
            }
            Ok(())
        })
    }

    /// At most one PriorityClass is the global default (the check `cluster.rs` keeps with the
    /// resource).
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            let Some(pc) = object else { return Ok(()) };
            if !attrs.is("scheduling.k8s.io", "priorityclasses")
                || attrs.subresource.is_some()
                || pc.get("globalDefault").and_then(Value::as_bool) != Some(true)
            {
                return Ok(());
            }
            let list = cluster.list(classes(), None, false).await?;
            crate::cluster::admit_priority_class(pc, &list)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fake, admin, create, run};
    use super::*;

    fn cluster(default: bool) -> Fake {
        Fake::with(vec![
            (
                "priorityclasses",
                json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"}),
            ),
            (
                "priorityclasses",
                json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}),
            ),
            (
                "priorityclasses",
                json!({"metadata": {"name": "low"}, "value": 10, "globalDefault": default, "preemptionPolicy": "PreemptLowerPriority"}),
            ),
        ])
    }

    #[test]
    fn pods_get_their_class_priority() {
        let user = admin();
        let attrs = create("", "pods", "default", "p", &user);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "high"}});
        run(&Priority, &attrs, &mut pod, &cluster(false)).unwrap();
        assert_eq!(pod["spec"]["priority"], 1000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "Never");

        let mut pod = json!({"metadata": {"name": "p"}, "spec": {}});
        run(&Priority, &attrs, &mut pod, &cluster(false)).unwrap();
        assert_eq!(
            pod["spec"],
            json!({"priority": 0, "preemptionPolicy": "PreemptLowerPriority"})
        );

        let mut pod = json!({"metadata": {"name": "p"}, "spec": {}});
        run(&Priority, &attrs, &mut pod, &cluster(true)).unwrap();
        assert_eq!(pod["spec"]["priorityClassName"], "low");
        assert_eq!(pod["spec"]["priority"], 10);

        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "nope"}});
        let err = run(&Priority, &attrs, &mut pod, &cluster(false)).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: no PriorityClass with name nope was found"
        );

        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "high", "priority": 5}});
        let err = run(&Priority, &attrs, &mut pod, &cluster(false)).unwrap_err();
        assert!(err.message.ends_with("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"), "{}", err.message);
    }

    #[test]
    fn only_one_global_default() {
        let user = admin();
        let attrs = create("scheduling.k8s.io", "priorityclasses", "", "second", &user);
        let mut pc = json!({"metadata": {"name": "second"}, "value": 5, "globalDefault": true});
        let err = run(&Priority, &attrs, &mut pc, &cluster(true)).unwrap_err();
        assert_eq!(
            err.message,
            "priorityclasses.scheduling.k8s.io \"second\" is forbidden: PriorityClass low is marked as default. Only one default can exist"
        );
        run(&Priority, &attrs, &mut pc, &cluster(false)).unwrap();
    }
}
