//! API discovery: aggregated (`apidiscovery.k8s.io/v2` and `v2beta1`) and legacy (`APIVersions`, `APIGroupList`, `APIResourceList`), built from the resource table.

use serde_json::{Value, json};

use crate::registry::{self, Resource, SUBRESOURCE_VERBS, VERBS};

/// Which aggregated discovery version the client accepts, if any (v2 preferred).
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    let wants = |v: &str| {
        accept.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&format!("v={v}").as_str())
        })
    };
    ["v2", "v2beta1"].into_iter().find(|v| wants(v))
}

pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

fn gvk(r: &Resource) -> Value {
    json!({"group": r.group, "version": r.version, "kind": r.kind})
}

/// The verbs a resource serves: the review resources are create-only.
fn verbs(r: &Resource) -> &'static [&'static str] {
    match r.group {
        "authentication.k8s.io" | "authorization.k8s.io" => &["create"],
        _ => VERBS,
    }
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": gvk(r),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        entry["subresources"] = r
            .subresources
            .iter()
            .map(|sub| subresource_entry(r, sub))
            .collect();
    }
    entry
}

fn subresource_entry(r: &Resource, sub: &str) -> Value {
    match sub {
        "token" => {
            json!({"subresource": sub, "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}, "verbs": ["create"]})
        }
        "finalize" => json!({"subresource": sub, "responseKind": gvk(r), "verbs": ["update"]}),
        "binding" => {
            json!({"subresource": sub, "responseKind": {"group": "", "version": "v1", "kind": "Binding"}, "verbs": ["create"]})
        }
        "ephemeralcontainers" => {
            json!({"subresource": sub, "responseKind": gvk(r), "verbs": SUBRESOURCE_VERBS})
        }
        "eviction" => {
            json!({"subresource": sub, "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"}, "verbs": ["create"]})
        }
        "scale" => {
            json!({"subresource": sub, "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": SUBRESOURCE_VERBS})
        }
        _ => json!({"subresource": sub, "responseKind": gvk(r), "verbs": SUBRESOURCE_VERBS}),
    }
}

/// The aggregated document for `/api` (core) or `/apis` (every named group).
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, ver)| {
            let resources: Vec<Value> = registry::all().iter().copied().filter(|r| r.group == group && r.version == ver).map(aggregated_resource).collect();
            let metadata = if core { json!({"creationTimestamp": null}) } else { json!({"name": group, "creationTimestamp": null}) };
            json!({"metadata": metadata, "versions": [{"version": ver, "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items})
}

/// Legacy `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// Legacy `/apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/<group>`.
pub fn group(name: &str) -> Option<Value> {
    let (g, v) = registry::groups()
        .into_iter()
        .find(|(g, _)| !g.is_empty() && *g == name)?;
    let mut entry = group_entry(g, v);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

/// Legacy `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = registry::all()
        .iter()
        .copied()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in served {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let sub_entry = subresource_entry(r, sub);
            let kind = sub_entry
                .pointer("/responseKind/kind")
                .cloned()
                .unwrap_or(json!(r.kind));
            let mut legacy = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
            });
            let (sub_group, sub_version) = (
                sub_entry
                    .pointer("/responseKind/group")
                    .and_then(Value::as_str),
                sub_entry
                    .pointer("/responseKind/version")
                    .and_then(Value::as_str),
            );
            if let (Some(g), Some(v)) = (sub_group, sub_version)
                && (g, v) != (r.group, r.version)
            {
                legacy["group"] = json!(g);
                legacy["version"] = json!(v);
            }
            legacy["kind"] = kind;
            legacy["verbs"] = sub_entry["verbs"].clone();
            resources.push(legacy);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_aggregated_discovery() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(kubectl), Some("v2"));
        assert_eq!(
            aggregated_version(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            ),
            Some("v2beta1")
        );
        assert_eq!(aggregated_version("application/json"), None);
    }

    #[test]
    fn core_discovery_lists_namespaces_with_subresources() {
        let doc = aggregated(true, "v2");
        let resources = doc
            .pointer("/items/0/versions/0/resources")
            .unwrap()
            .as_array()
            .unwrap();
        let ns = resources
            .iter()
            .find(|r| r["resource"] == "namespaces")
            .unwrap();
        assert_eq!(ns["scope"], "Cluster");
        assert_eq!(ns["shortNames"], json!(["ns"]));
        assert!(doc.pointer("/items/0/metadata/name").is_none());
        let legacy = resource_list("", "v1").unwrap();
        assert!(
            legacy["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "namespaces/status")
        );
        assert!(resource_list("", "v2").is_none());
    }
}
