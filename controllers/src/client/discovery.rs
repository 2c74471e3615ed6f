//! Legacy API discovery (`/api`, `/apis`, then `/api/v1` and `/apis/<group>/<version>`): every served resource once, at its group's preferred version, with partial results when some groups fail, as client-go's `ServerPreferredResources`.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::Value;

use super::{Client, Resource};

/// A served resource as discovery describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiResource {
    pub resource: Resource,
    pub kind: String,
    pub verbs: Vec<String>,
}

impl ApiResource {
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// A group version whose document could not be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryFailure {
    /// `v1` or `group/version`; empty when the group list itself failed.
    pub group_version: String,
    pub message: String,
}

/// What discovery found.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// Top-level resources (no subresources), each at the first version that serves it in
    /// its group's order (the preferred version first).
    pub resources: Vec<ApiResource>,
    /// Documents that could not be fetched; `resources` lacks what they would have listed.
    pub failures: Vec<DiscoveryFailure>,
    /// `groupVersion` strings of documents that do not parse as a group version.
    pub unparsable: Vec<String>,
}

impl Discovery {
    /// Upstream's message for a discovery that missed something (`ErrGroupDiscoveryFailed`,
    /// or the group list's own error), if it did.
    pub fn error_message(&self) -> Option<String> {
        if let Some(whole) = self.failures.iter().find(|f| f.group_version.is_empty()) {
            return Some(whole.message.clone());
        }
        if self.failures.is_empty() {
            return None;
        }
        let mut groups: Vec<String> = self
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.group_version, f.message))
            .collect();
        groups.sort();
        Some(format!(
            "unable to retrieve the complete list of server APIs: {}",
            groups.join(", ")
        ))
    }

    /// The number of group versions that failed (for upstream's condition message).
    pub fn failed_groups(&self) -> usize {
        self.failures.len()
    }
}

/// A group's versions, preferred first.
fn group_versions(groups: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for group in groups["groups"].as_array().into_iter().flatten() {
        let Some(name) = group["name"].as_str() else {
            continue;
        };
        let preferred = group
            .pointer("/preferredVersion/version")
            .and_then(Value::as_str);
        let mut versions: Vec<String> = preferred.map(str::to_string).into_iter().collect();
        for v in group["versions"].as_array().into_iter().flatten() {
            if let Some(v) = v["version"].as_str()
                && Some(v) != preferred
            {
                versions.push(v.to_string());
            }
        }
        out.push((name.to_string(), versions));
    }
    out
}

/// Parse `v1` or `group/version`.
fn parse_group_version(gv: &str) -> Option<(&str, &str)> {
    match gv.split('/').collect::<Vec<_>>()[..] {
        [v] if !v.is_empty() => Some(("", v)),
        [g, v] if !v.is_empty() => Some((g, v)),
        _ => None,
    }
}

pub(super) async fn discover(client: &Client) -> Discovery {
    let mut discovery = Discovery::default();
    let core = client.get_path("/api").await;
    let named = client.get_path("/apis").await;
    let mut order: Vec<(String, Vec<String>)> = Vec::new();
    match core {
        Ok(core) => {
            let versions = core["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            order.push((String::new(), versions));
        }
        Err(e) => discovery.failures.push(DiscoveryFailure {
            group_version: String::new(),
            message: e.to_string(),
        }),
    }
    match named {
        Ok(groups) => order.extend(group_versions(&groups)),
        Err(e) => discovery.failures.push(DiscoveryFailure {
            group_version: String::new(),
            message: e.to_string(),
        }),
    }

    let targets: Vec<(String, String)> = order
        .iter()
        .flat_map(|(g, vs)| vs.iter().map(move |v| (g.clone(), v.clone())))
        .collect();
    let documents = join_all(targets.iter().map(|(g, v)| {
        let path = if g.is_empty() {
            format!("/api/{v}")
        } else {
            format!("/apis/{g}/{v}")
        };
        async move { client.get_path(&path).await }
    }))
    .await;

    let mut seen = BTreeSet::new();
    for ((group, version), document) in targets.iter().zip(documents) {
        let gv = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let document = match document {
            Ok(d) => d,
            Err(e) => {
                discovery.failures.push(DiscoveryFailure {
                    group_version: gv,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let declared = document["groupVersion"].as_str().unwrap_or(&gv);
        let Some((group, version)) = parse_group_version(declared) else {
            discovery.unparsable.push(declared.to_string());
            continue;
        };
        for r in document["resources"].as_array().into_iter().flatten() {
            let Some(name) = r["name"].as_str() else {
                continue;
            };
            // Subresources are reached through their parent.
            if name.contains('/') || !seen.insert((group.to_string(), name.to_string())) {
                continue;
            }
            discovery.resources.push(ApiResource {
                resource: Resource::new(
                    group,
                    version,
                    name,
                    r["namespaced"].as_bool().unwrap_or(false),
                ),
                kind: r["kind"].as_str().unwrap_or_default().to_string(),
                verbs: r["verbs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            });
        }
    }
    discovery
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn preferred_version_first() {
        let groups = json!({"groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1beta1", "version": "v1beta1"}, {"groupVersion": "apps/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]});
        assert_eq!(
            group_versions(&groups),
            vec![(
                "apps".to_string(),
                vec!["v1".to_string(), "v1beta1".to_string()]
            )]
        );
        assert_eq!(parse_group_version("v1"), Some(("", "v1")));
        assert_eq!(parse_group_version("apps/v1"), Some(("apps", "v1")));
        assert_eq!(parse_group_version("a/b/c"), None);
    }

    #[test]
    fn failure_messages() {
        let d = Discovery {
            failures: vec![
                DiscoveryFailure {
                    group_version: "metrics.k8s.io/v1beta1".into(),
                    message: "the server is currently unable to handle the request".into(),
                },
                DiscoveryFailure {
                    group_version: "example.com/v1".into(),
                    message: "boom".into(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            d.error_message().unwrap(),
            "unable to retrieve the complete list of server APIs: example.com/v1: boom, metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
        );
        assert_eq!(Discovery::default().error_message(), None);
    }
}
