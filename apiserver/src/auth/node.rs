//! The Node authorizer: a kubelet identity (`system:node:<name>` in `system:nodes`) may read only its own Node and Lease and the pods bound to its node with their secrets, configmaps, persistent volume claims and volumes, and create tokens only for those pods' service accounts; otherwise upstream's node rules apply.

use std::sync::LazyLock;

use serde_json::Value;

use super::rbac::{Rule, rules_of};
use super::{Attributes, Decision};
use crate::cache::{Freshness, WatchCache};

const NODES_GROUP: &str = "system:nodes";

/// The node name of a kubelet identity.
pub fn node_name(attrs: &Attributes) -> Option<&str> {
    if !attrs.user.in_group(NODES_GROUP) {
        return None;
    }
    attrs
        .user
        .name
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty())
}

/// The node rules: the `system:node` ClusterRole's, except the per-object ones this
/// authorizer decides from the pods on the node.
static NODE_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    super::policy::bootstrap()
        .iter()
        .find(|(_, o)| o["metadata"]["name"] == "system:node")
        .map(|(_, o)| rules_of(o))
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            !r.resources.iter().any(|res| {
                matches!(
                    res.as_str(),
                    "secrets"
                        | "configmaps"
                        | "persistentvolumeclaims"
                        | "persistentvolumes"
                        | "serviceaccounts/token"
                )
            })
        })
        .collect()
});

/// The objects a pod's spec names, as `(plural, name)`.
pub fn pod_references(pod: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let spec = &pod["spec"];
    let mut add = |plural: &'static str, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            out.push((plural, name.to_string()));
        }
    };
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    for secret in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add("secrets", s(secret, "/name").as_deref());
    }
    add(
        "serviceaccounts",
        Some(
            s(spec, "/serviceAccountName")
                .as_deref()
                .unwrap_or("default"),
        ),
    );
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        add("secrets", s(volume, "/secret/secretName").as_deref());
        add("configmaps", s(volume, "/configMap/name").as_deref());
        add(
            "persistentvolumeclaims",
            s(volume, "/persistentVolumeClaim/claimName").as_deref(),
        );
        for source in volume
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add("secrets", s(source, "/secret/name").as_deref());
            add("configmaps", s(source, "/configMap/name").as_deref());
        }
    }
    let containers = ["containers", "initContainers", "ephemeralContainers"];
    for c in containers
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
    {
        for from in c["envFrom"].as_array().into_iter().flatten() {
            add("secrets", s(from, "/secretRef/name").as_deref());
            add("configmaps", s(from, "/configMapRef/name").as_deref());
        }
        for env in c["env"].as_array().into_iter().flatten() {
            add("secrets", s(env, "/valueFrom/secretKeyRef/name").as_deref());
            add(
                "configmaps",
                s(env, "/valueFrom/configMapKeyRef/name").as_deref(),
            );
        }
    }
    out
}

/// Whether a pod on `node` in `namespace` references `plural`/`name`.
async fn related(
    cache: &WatchCache,
    node: &str,
    namespace: &str,
    plural: &str,
    name: &str,
) -> bool {
    let prefix = "/registry/core/pods/";
    let Ok(Some(pods)) = cache
        .list(prefix, &format!("{prefix}{namespace}/"), Freshness::Any)
        .await
    else {
        return false;
    };
    pods.items.iter().any(|item| {
        let pod = item.object();
        pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
            && pod_references(pod)
                .iter()
                .any(|(p, n)| *p == plural && n == name)
    })
}

/// Whether a PV is bound to a claim a pod on `node` uses.
async fn related_volume(cache: &WatchCache, node: &str, name: &str) -> bool {
    let prefix = "/registry/core/persistentvolumes/";
    let Ok(Some(pvs)) = cache
        .list(prefix, &format!("{prefix}{name}"), Freshness::Any)
        .await
    else {
        return false;
    };
    let Some(pv) = pvs
        .items
        .iter()
        .find(|i| i.key.as_ref() == format!("{prefix}{name}").as_bytes())
    else {
        return false;
    };
    let claim = |f: &str| {
        pv.object()
            .pointer(&format!("/spec/claimRef/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (ns, claim_name) = (claim("namespace"), claim("name"));
    !claim_name.is_empty() && related(cache, node, &ns, "persistentvolumeclaims", &claim_name).await
}

/// Whether the pod `namespace`/`name` is bound to `node`.
async fn pod_on_node(cache: &WatchCache, node: &str, namespace: &str, name: &str) -> bool {
    let prefix = "/registry/core/pods/";
    let key = format!("{prefix}{namespace}/{name}");
    let Ok(Some(pods)) = cache.list(prefix, &key, Freshness::Any).await else {
        return false;
    };
    pods.items.iter().any(|item| {
        item.key.as_ref() == key.as_bytes()
            && item
                .object()
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                == Some(node)
    })
}

fn allow() -> Decision {
    Decision::Allow(String::new())
}

/// No opinion (RBAC decides next), with the reason a denial reports.
fn no_opinion(reason: impl Into<String>) -> Decision {
    Decision::Deny(reason.into())
}

/// The graph check: whether the named object is related to `node`.
async fn related_object(attrs: &Attributes, cache: &WatchCache, node: &str) -> Decision {
    if attrs.name.is_empty() {
        return no_opinion("No Object name found");
    }
    let ok = match attrs.resource.as_str() {
        "persistentvolumes" => related_volume(cache, node, &attrs.name).await,
        "pods" => pod_on_node(cache, node, &attrs.namespace, &attrs.name).await,
        resource => related(cache, node, &attrs.namespace, resource, &attrs.name).await,
    };
    if ok {
        allow()
    } else {
        no_opinion(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

/// Upstream's `authorizeGet`: `get` of an object related to the node.
async fn authorize_get(attrs: &Attributes, cache: &WatchCache, node: &str) -> Decision {
    if attrs.verb != "get" {
        return no_opinion("can only get individual resources of this type");
    }
    if !attrs.subresource.is_empty() {
        return no_opinion("cannot get subresource");
    }
    related_object(attrs, cache, node).await
}

/// Upstream's `authorizeReadNamespacedObject`: secrets and configmaps, one at a time.
async fn authorize_read(attrs: &Attributes, cache: &WatchCache, node: &str) -> Decision {
    if !matches!(attrs.verb.as_str(), "get" | "list" | "watch") {
        return no_opinion("can only read resources of this type");
    }
    if !attrs.subresource.is_empty() {
        return no_opinion("cannot read subresource");
    }
    if attrs.namespace.is_empty() {
        return no_opinion("can only read namespaced object of this type");
    }
    related_object(attrs, cache, node).await
}

/// Upstream's `authorizeCreateToken`: tokens for the service accounts of the node's pods.
async fn authorize_token(attrs: &Attributes, cache: &WatchCache, node: &str) -> Decision {
    if attrs.verb != "create" || attrs.name.is_empty() {
        return no_opinion("can only create tokens for individual service accounts");
    }
    if attrs.subresource != "token" {
        return no_opinion("can only create token subresource of serviceaccount");
    }
    related_object(attrs, cache, node).await
}

/// Upstream's `authorizeLease`: the node's own Lease in `kube-node-lease` (NodeRestriction
/// checks the name of a created one).
fn authorize_lease(attrs: &Attributes, node: &str) -> Decision {
    if !matches!(
        attrs.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a node lease");
    }
    if attrs.namespace != "kube-node-lease" {
        return no_opinion("can only access leases in the \"kube-node-lease\" system namespace");
    }
    if attrs.verb != "create" && attrs.name != node {
        return no_opinion("can only access node lease with the same name as the requesting node");
    }
    allow()
}

/// Upstream's `authorizeCSINode`: the node's own CSINode.
fn authorize_csinode(attrs: &Attributes, node: &str) -> Decision {
    if !matches!(
        attrs.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a CSINode");
    }
    if !attrs.subresource.is_empty() {
        return no_opinion("cannot authorize CSINode subresources");
    }
    if attrs.verb != "create" && attrs.name != node {
        return no_opinion("can only access CSINode with the same name as the requesting node");
    }
    allow()
}

/// Upstream's `authorizeNode` (AuthorizeNodeWithSelectors): a node reads only its own Node;
/// writes are left to NodeRestriction.
fn authorize_node(attrs: &Attributes, node: &str) -> Decision {
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => allow(),
        ("", "get" | "list" | "watch") => match attrs.name.as_str() {
            name if name == node => allow(),
            "" => no_opinion(format!(
                "node '{node}' cannot read all nodes, only its own Node object"
            )),
            other => no_opinion(format!(
                "node '{node}' cannot read '{other}', only its own Node object"
            )),
        },
        _ => no_opinion(""),
    }
}

/// Whether a field selector requires `spec.nodeName` to be `node` (`=` or `==`).
fn selects_node(selector: &str, node: &str) -> bool {
    selector.split(',').any(|term| {
        let term = term.trim();
        let value = term
            .strip_prefix("spec.nodeName==")
            .or_else(|| term.strip_prefix("spec.nodeName="));
        value == Some(node)
    })
}

/// Upstream's `authorizePod` (AuthorizeNodeWithSelectors): a node reads the pods bound to it;
/// creates, deletes, status updates and evictions are left to NodeRestriction.
async fn authorize_pod(attrs: &Attributes, cache: &WatchCache, node: &str) -> Decision {
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        ("", "get") => authorize_get(attrs, cache, node).await,
        ("", "list" | "watch") if selects_node(&attrs.field_selector, node) => allow(),
        ("", "list" | "watch") if !attrs.name.is_empty() => {
            related_object(attrs, cache, node).await
        }
        ("", "list" | "watch") => {
            no_opinion("can only list/watch pods with spec.nodeName field selector")
        }
        ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
            allow()
        }
        _ => no_opinion(""),
    }
}

/// The Node authorizer's opinion: `None` for requests not from a node. A `Deny` is upstream's
/// "no opinion": RBAC decides next, and a denial reports its reason.
pub async fn authorize(attrs: &Attributes, cache: &WatchCache) -> Option<Decision> {
    let node = node_name(attrs)?;
    if !attrs.resource_request {
        return Some(no_opinion(""));
    }
    let decision = match (attrs.api_group.as_str(), attrs.resource.as_str()) {
        ("", "secrets" | "configmaps") => authorize_read(attrs, cache, node).await,
        ("", "persistentvolumeclaims") if attrs.subresource == "status" => {
            if !matches!(attrs.verb.as_str(), "update" | "patch") {
                no_opinion("can only get/update/patch this type")
            } else {
                related_object(attrs, cache, node).await
            }
        }
        ("", "persistentvolumeclaims" | "persistentvolumes") => {
            authorize_get(attrs, cache, node).await
        }
        ("", "serviceaccounts") => authorize_token(attrs, cache, node).await,
        ("coordination.k8s.io", "leases") => authorize_lease(attrs, node),
        ("storage.k8s.io", "csinodes") => authorize_csinode(attrs, node),
        ("", "nodes") => authorize_node(attrs, node),
        ("", "pods") => authorize_pod(attrs, cache, node).await,
        _ if NODE_RULES.iter().any(|r| r.allows(attrs)) => allow(),
        _ => no_opinion(""),
    };
    Some(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use serde_json::json;

    fn node_attrs(verb: &str, resource: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo {
                name: "system:node:n1".into(),
                groups: vec![NODES_GROUP.into(), "system:authenticated".into()],
                ..UserInfo::default()
            },
            verb: verb.into(),
            namespace: "default".into(),
            resource: resource.into(),
            name: name.into(),
            resource_request: true,
            ..Attributes::default()
        }
    }

    #[test]
    fn pod_references_cover_volumes_env_and_pull_secrets() {
        let pod = json!({"spec": {
            "serviceAccountName": "builder",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"secret": {"secretName": "vol-secret"}},
                {"configMap": {"name": "vol-cm"}},
                {"persistentVolumeClaim": {"claimName": "data"}},
                {"projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}},
            ],
            "containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "env-secret"}}}], "envFrom": [{"configMapRef": {"name": "env-cm"}}]}],
        }});
        let refs: Vec<String> = pod_references(&pod)
            .into_iter()
            .map(|(p, n)| format!("{p}/{n}"))
            .collect();
        assert_eq!(
            refs,
            [
                "secrets/pull",
                "serviceaccounts/builder",
                "secrets/vol-secret",
                "configmaps/vol-cm",
                "persistentvolumeclaims/data",
                "configmaps/proj-cm",
                "configmaps/env-cm",
                "secrets/env-secret",
            ]
        );
    }

    #[tokio::test]
    async fn node_rules_and_relationships() {
        let store = k1s_store::open(k1s_store::Config::default()).unwrap();
        let cache = WatchCache::new(store.clone());
        let pod = |name: &str, node: &str, secret: &str| {
            json!({"metadata": {"name": name, "namespace": "default", "uid": name},
                   "spec": {"nodeName": node, "volumes": [{"secret": {"secretName": secret}}]}})
        };
        for (name, node, secret) in [("mine", "n1", "s1"), ("theirs", "n2", "s2")] {
            store
                .create(
                    format!("/registry/core/pods/default/{name}").as_bytes(),
                    serde_json::to_vec(&pod(name, node, secret)).unwrap().into(),
                    None,
                )
                .await
                .unwrap();
        }
        let decide = |a: Attributes| {
            let cache = &cache;
            async move { authorize(&a, cache).await }
        };
        assert_eq!(
            decide(node_attrs("get", "secrets", "s1")).await,
            Some(Decision::Allow(String::new()))
        );
        assert_eq!(
            decide(node_attrs("get", "secrets", "s2")).await,
            Some(Decision::Deny(
                "no relationship found between node 'n1' and this object".into()
            ))
        );
        assert!(matches!(
            decide(node_attrs("list", "secrets", "")).await,
            Some(Decision::Deny(_))
        ));
        assert_eq!(
            decide(node_attrs("list", "pods", "")).await,
            Some(Decision::Deny(
                "can only list/watch pods with spec.nodeName field selector".into()
            ))
        );
        for selector in ["spec.nodeName=n1", "status.phase=Running,spec.nodeName==n1"] {
            let attrs = Attributes {
                field_selector: selector.into(),
                ..node_attrs("watch", "pods", "")
            };
            assert_eq!(
                decide(attrs).await,
                Some(Decision::Allow(String::new())),
                "{selector}"
            );
        }
        let other = Attributes {
            field_selector: "spec.nodeName=n2".into(),
            ..node_attrs("list", "pods", "")
        };
        assert!(matches!(decide(other).await, Some(Decision::Deny(_))));
        assert_eq!(
            decide(node_attrs("delete", "deployments", "x")).await,
            Some(Decision::Deny(String::new()))
        );
        // Only its own Node, its own Lease and the pods bound to it.
        let mut own = node_attrs("get", "nodes", "n1");
        own.namespace.clear();
        assert_eq!(
            decide(own.clone()).await,
            Some(Decision::Allow(String::new()))
        );
        own.name = "n2".into();
        assert_eq!(
            decide(own.clone()).await,
            Some(Decision::Deny(
                "node 'n1' cannot read 'n2', only its own Node object".into()
            ))
        );
        own.verb = "patch".into();
        assert_eq!(decide(own).await, Some(Decision::Allow(String::new())));
        assert_eq!(
            decide(node_attrs("get", "pods", "theirs")).await,
            Some(Decision::Deny(
                "no relationship found between node 'n1' and this object".into()
            ))
        );
        assert_eq!(
            decide(node_attrs("get", "pods", "mine")).await,
            Some(Decision::Allow(String::new()))
        );
        let mut lease = node_attrs("update", "leases", "n2");
        lease.api_group = "coordination.k8s.io".into();
        lease.namespace = "kube-node-lease".into();
        assert_eq!(
            decide(lease.clone()).await,
            Some(Decision::Deny(
                "can only access node lease with the same name as the requesting node".into()
            ))
        );
        lease.verb = "create".into();
        assert_eq!(decide(lease).await, Some(Decision::Allow(String::new())));
        let mut user = node_attrs("get", "secrets", "s1");
        user.user.groups = vec!["system:authenticated".into()];
        assert_eq!(decide(user).await, None);
    }
}
