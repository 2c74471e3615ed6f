//! The Node authorizer: a kubelet identity (`system:node:<name>` in `system:nodes`) may read only the secrets, configmaps, persistent volume claims and volumes of pods bound to its node, and create tokens only for those pods' service accounts; otherwise upstream's node rules apply.

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

/// The Node authorizer's opinion: `None` for requests not from a node.
pub async fn authorize(attrs: &Attributes, cache: &WatchCache) -> Option<Decision> {
    let node = node_name(attrs)?;
    if !attrs.resource_request {
        return Some(Decision::Deny(String::new()));
    }
    let no_relationship = || {
        Decision::Deny(format!(
            "no relationship found between node '{node}' and this object"
        ))
    };
    let graph_checked = attrs.api_group.is_empty()
        && matches!(
            (attrs.resource.as_str(), attrs.subresource.as_str()),
            (
                "secrets" | "configmaps" | "persistentvolumeclaims" | "persistentvolumes",
                ""
            ) | ("serviceaccounts", "token")
        );
    if graph_checked {
        let verb_ok = if attrs.subresource == "token" {
            attrs.verb == "create"
        } else {
            attrs.verb == "get"
        };
        if !verb_ok || attrs.name.is_empty() {
            return Some(Decision::Deny(format!(
                "can only {} individual resources of this type",
                if attrs.subresource == "token" {
                    "create"
                } else {
                    "get"
                }
            )));
        }
        let ok = if attrs.resource == "persistentvolumes" {
            related_volume(cache, node, &attrs.name).await
        } else {
            related(cache, node, &attrs.namespace, &attrs.resource, &attrs.name).await
        };
        return Some(if ok {
            Decision::Allow(String::new())
        } else {
            no_relationship()
        });
    }
    Some(if NODE_RULES.iter().any(|r| r.allows(attrs)) {
        Decision::Allow(String::new())
    } else {
        Decision::Deny(String::new())
    })
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
            Some(Decision::Allow(String::new()))
        );
        assert_eq!(
            decide(node_attrs("delete", "deployments", "x")).await,
            Some(Decision::Deny(String::new()))
        );
        let mut user = node_attrs("get", "secrets", "s1");
        user.user.groups = vec!["system:authenticated".into()];
        assert_eq!(decide(user).await, None);
    }
}
