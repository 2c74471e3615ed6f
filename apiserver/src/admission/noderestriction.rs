//! NodeRestriction: a node (`system:node:<name>` in `system:nodes`) may change only its own Node (not its taints, nor labels outside the kubelet's set), its own Lease, mirror pods bound to itself and the status of pods bound to itself.

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Attributes, Lookup, Operation, Plugin, resource};
use crate::object::meta_str;
use crate::status::{ApiError, ApiResult};

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Labels a kubelet may set on its Node (upstream's `kubeletLabels`), besides the
/// `kubelet.kubernetes.io` and `node.kubernetes.io` namespaces.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

pub struct NodeRestriction;

/// The node a user is, if it is one: `Some("")` for a node user whose name names no node.
fn node_name<'a>(attrs: &Attributes<'a>) -> Option<&'a str> {
    if !attrs.user.in_group("system:nodes") {
        return None;
    }
    Some(attrs.user.name.strip_prefix("system:node:").unwrap_or(""))
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_namespace(ns: &str, domain: &str) -> bool {
    ns == domain || ns.ends_with(&format!(".{domain}"))
}

/// Upstream's `getForbiddenLabels`: node-restriction labels, and kubernetes.io / k8s.io
/// labels outside the kubelet's set.
fn forbidden_labels(new: &Value, old: Option<&Value>) -> Vec<String> {
    let labels = |o: Option<&Value>| {
        o.and_then(|o| o.pointer("/metadata/labels"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (a, b) = (labels(Some(new)), labels(old));
    let mut modified = BTreeSet::new();
    for (k, v) in &a {
        if b.get(k) != Some(v) {
            modified.insert(k.clone());
        }
    }
    for (k, v) in &b {
        if a.get(k) != Some(v) {
            modified.insert(k.clone());
        }
    }
    modified
        .into_iter()
        .filter(|key| {
            let ns = label_namespace(key);
            let kubernetes = in_namespace(ns, "kubernetes.io") || in_namespace(ns, "k8s.io");
            let kubelet = KUBELET_LABELS.contains(&key.as_str())
                || in_namespace(ns, "kubelet.kubernetes.io")
                || in_namespace(ns, "node.kubernetes.io");
            in_namespace(ns, "node-restriction.kubernetes.io") || (kubernetes && !kubelet)
        })
        .collect()
}

fn references(pod: &Value, needle: &str) -> bool {
    pod.get("spec")
        .is_some_and(|s| s.to_string().contains(needle))
}

impl NodeRestriction {
    fn pod_create(attrs: &Attributes<'_>, node: &str, pod: &Value) -> ApiResult<()> {
        let deny = |detail: String| Err(attrs.forbidden(Some(pod), &detail));
        let mirror = pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(MIRROR_ANNOTATION))
            .is_some();
        if !mirror {
            return deny(format!(
                "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
            ));
        }
        if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) {
            return deny(format!(
                "node \"{node}\" can only create pods with spec.nodeName set to itself"
            ));
        }
        let owners = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if owners.len() > 1 {
            return deny(format!(
                "node \"{node}\" can only create pods with a single owner reference set to itself"
            ));
        }
        if let Some(owner) = owners.first() {
            let field = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or("");
            if field("apiVersion") != "v1" || field("kind") != "Node" || field("name") != node {
                return deny(format!(
                    "node \"{node}\" can only create pods with an owner reference set to itself"
                ));
            }
            if owner.get("controller").and_then(Value::as_bool) != Some(true) {
                return deny(format!(
                    "node \"{node}\" can only create pods with a controller owner reference set to itself"
                ));
            }
            if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
                return deny(format!(
                    "node \"{node}\" must not set blockOwnerDeletion on an owner reference"
                ));
            }
        }
        if pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return deny(format!(
                "node \"{node}\" can not create pods that reference a service account"
            ));
        }
        for (needle, what) in [
            ("\"secretName\"", "secrets"),
            ("\"secretKeyRef\"", "secrets"),
            ("\"secretRef\"", "secrets"),
            ("\"configMapKeyRef\"", "configmaps"),
            ("\"configMapRef\"", "configmaps"),
            ("\"configMap\"", "configmaps"),
            ("\"persistentVolumeClaim\"", "persistentvolumeclaims"),
        ] {
            if references(pod, needle) {
                return deny(format!(
                    "node \"{node}\" can not create pods that reference {what}"
                ));
            }
        }
        Ok(())
    }

    fn node(attrs: &Attributes<'_>, node: &str, object: Option<&Value>) -> ApiResult<()> {
        let deny = |detail: String| Err(attrs.forbidden(object, &detail));
        let requested = match attrs.name {
            "" => object.and_then(|o| meta_str(o, "name")).unwrap_or(""),
            name => name,
        };
        if requested != node {
            return deny(format!(
                "node \"{node}\" is not allowed to modify node \"{requested}\""
            ));
        }
        if let (Operation::Create, Some(new)) = (attrs.operation, object) {
            let forbidden = forbidden_labels(new, None);
            if !forbidden.is_empty() {
                return deny(format!(
                    "node \"{node}\" is not allowed to set the following labels: {}",
                    forbidden.join(", ")
                ));
            }
        }
        if let (Operation::Update, Some(new), Some(old)) =
            (attrs.operation, object, attrs.old_object)
        {
            if new.pointer("/spec/taints") != old.pointer("/spec/taints") {
                return deny(format!("node \"{node}\" is not allowed to modify taints"));
            }
            let forbidden = forbidden_labels(new, Some(old));
            if !forbidden.is_empty() {
                return deny(format!(
                    "is not allowed to modify labels: {}",
                    forbidden.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn lease(attrs: &Attributes<'_>, node: &str, object: Option<&Value>) -> ApiResult<()> {
        if attrs.namespace != NODE_LEASE_NAMESPACE {
            return Err(attrs.forbidden(
                object,
                &format!(
                    "can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"
                ),
            ));
        }
        let name = match attrs.operation {
            Operation::Create => object.and_then(|o| meta_str(o, "name")).unwrap_or(""),
            _ => attrs.name,
        };
        if name != node {
            return Err(attrs.forbidden(
                object,
                "can only access node lease with the same name as the requesting node",
            ));
        }
        Ok(())
    }

    /// Everything but deletes (which the chain validates).
    fn check(attrs: &Attributes<'_>, object: Option<&Value>) -> ApiResult<()> {
        let Some(node) = node_name(attrs) else {
            return Ok(());
        };
        if node.is_empty() {
            return Err(attrs.forbidden(
                object,
                &format!("could not determine node from user \"{}\"", attrs.user.name),
            ));
        }
        if attrs.is("", "pods") {
            return match (attrs.subresource, attrs.operation) {
                (None, Operation::Create) => Self::pod_create(attrs, node, object.unwrap_or(&Value::Null)),
                (None, op) => Err(attrs.forbidden(
                    object,
                    &format!(
                        "unexpected operation \"{}\", node \"{node}\" can only create and delete mirror pods",
                        op_name(op)
                    ),
                )),
                (Some("status"), Operation::Update) => {
                    let old = attrs.old_object.unwrap_or(&Value::Null);
                    if old.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) {
                        return Err(attrs.forbidden(object, &format!("node \"{node}\" can only update pod status for pods with spec.nodeName set to itself")));
                    }
                    if object.and_then(|o| o.pointer("/metadata/labels")) != old.pointer("/metadata/labels") {
                        return Err(attrs.forbidden(object, &format!("node \"{node}\" cannot update labels through pod status")));
                    }
                    Ok(())
                }
                (Some("status"), op) => Err(attrs.forbidden(
                    object,
                    &format!("unexpected operation \"{}\"", op_name(op)),
                )),
                (Some("eviction"), op) => Err(attrs.forbidden(
                    object,
                    &format!("unexpected operation {}", op_name(op)),
                )),
                (Some(other), _) => Err(attrs.forbidden(
                    object,
                    &format!("unexpected pod subresource \"{other}\", only 'status' and 'eviction' are allowed"),
                )),
            };
        }
        if attrs.is("", "nodes") {
            return Self::node(attrs, node, object);
        }
        if attrs.is("coordination.k8s.io", "leases") {
            return Self::lease(attrs, node, object);
        }
        if attrs.is("", "persistentvolumeclaims") && attrs.subresource != Some("status") {
            return Err(attrs.forbidden(object, "may only update PVC status"));
        }
        Ok(())
    }
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

impl Plugin for NodeRestriction {
    fn admit<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: &'a mut Value,
        _cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(std::future::ready(Self::check(attrs, Some(&*object))))
    }

    /// Deletes: a node deletes only its own Node and Lease and pods bound to itself.
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        _object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            let Some(node) = node_name(attrs).filter(|_| attrs.operation == Operation::Delete)
            else {
                return Ok(());
            };
            if attrs.is("", "pods") {
                let pod = match attrs.old_object {
                    Some(pod) => Some(pod.clone()),
                    None => {
                        cluster
                            .get(resource("", "pods"), Some(attrs.namespace), attrs.name)
                            .await?
                    }
                };
                let Some(pod) = pod else {
                    return Err(ApiError::not_found("", "pods", attrs.name));
                };
                if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) {
                    return Err(attrs.forbidden(
                        None,
                        &format!(
                            "node \"{node}\" can only delete pods with spec.nodeName set to itself"
                        ),
                    ));
                }
                return Ok(());
            }
            Self::check(attrs, None)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{Fake, create, run};
    use super::*;
    use crate::auth::UserInfo;

    fn node_user(name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:node:{name}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            ..UserInfo::default()
        }
    }

    #[test]
    fn nodes_create_only_their_own_mirror_pods() {
        let user = node_user("n1");
        let attrs = create("", "pods", "default", "p", &user);
        let mut pod =
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}});
        let err = run(&NodeRestriction, &attrs, &mut pod, &Fake::default()).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
        );
        let mut mirror = json!({"metadata": {"name": "p", "annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": "n2", "containers": []}});
        let err = run(&NodeRestriction, &attrs, &mut mirror, &Fake::default()).unwrap_err();
        assert!(
            err.message
                .ends_with("node \"n1\" can only create pods with spec.nodeName set to itself")
        );
        mirror["spec"]["nodeName"] = json!("n1");
        run(&NodeRestriction, &attrs, &mut mirror, &Fake::default()).unwrap();
        // Anyone else is not restricted.
        let admin = UserInfo::system();
        let attrs = create("", "pods", "default", "p", &admin);
        run(&NodeRestriction, &attrs, &mut pod, &Fake::default()).unwrap();
    }

    #[test]
    fn nodes_change_only_their_own_node_and_allowed_labels() {
        let user = node_user("n1");
        let old = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}, "spec": {}});
        let mut attrs = create("", "nodes", "", "n2", &user);
        attrs.operation = Operation::Update;
        attrs.old_object = Some(&old);
        let mut other = json!({"metadata": {"name": "n2"}});
        let err = run(&NodeRestriction, &attrs, &mut other, &Fake::default()).unwrap_err();
        assert_eq!(
            err.message,
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );
        // Another node's name is refused before its labels are looked at.
        let registering = create("", "nodes", "", "n2", &user);
        let mut labeled =
            json!({"metadata": {"name": "n2", "labels": {"foo.kubernetes.io/x": "v"}}});
        let err = run(
            &NodeRestriction,
            &registering,
            &mut labeled,
            &Fake::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );
        attrs.name = "n1";
        let mut relabeled = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/control-plane": "", "topology.kubernetes.io/zone": "a"}}, "spec": {}});
        let err = run(&NodeRestriction, &attrs, &mut relabeled, &Fake::default()).unwrap_err();
        assert_eq!(
            err.message,
            "nodes \"n1\" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/control-plane"
        );
        let mut tainted = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        let err = run(&NodeRestriction, &attrs, &mut tainted, &Fake::default()).unwrap_err();
        assert!(
            err.message
                .ends_with("node \"n1\" is not allowed to modify taints")
        );
    }

    #[test]
    fn node_leases_and_deletes() {
        let user = node_user("n1");
        let attrs = create(
            "coordination.k8s.io",
            "leases",
            "kube-node-lease",
            "n2",
            &user,
        );
        let err = run(
            &NodeRestriction,
            &attrs,
            &mut json!({"metadata": {"name": "n2"}}),
            &Fake::default(),
        )
        .unwrap_err();
        assert!(
            err.message
                .ends_with("can only access node lease with the same name as the requesting node")
        );
        let attrs = create(
            "coordination.k8s.io",
            "leases",
            "kube-node-lease",
            "n1",
            &user,
        );
        run(
            &NodeRestriction,
            &attrs,
            &mut json!({"metadata": {"name": "n1"}}),
            &Fake::default(),
        )
        .unwrap();

        let other = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}});
        let mut attrs = create("", "pods", "default", "p", &user);
        attrs.operation = Operation::Delete;
        attrs.old_object = Some(&other);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chain = super::super::Chain {
            plugins: vec![Box::new(NodeRestriction)],
        };
        let err = rt
            .block_on(chain.delete(&attrs, &Fake::default()))
            .unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself"
        );
    }
}
