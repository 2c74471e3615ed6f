//! RBAC: policy rules and their matching, an in-memory index of Roles, ClusterRoles and their bindings kept current by one store watch (with ClusterRole aggregation), the authorizer over it, and escalation checks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use k1s_store::{EventKind, RangeRequest, Store, WatchMessage, WatchStart, WriteOutcome};
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Attributes, UserInfo};

/// Where RBAC objects live in the store (all four resources under one prefix).
const PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// One `PolicyRule`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

impl Rule {
    /// Upstream's `RuleAllows`.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !has(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self
                .non_resource_urls
                .iter()
                .any(|u| url_matches(u, &a.path));
        }
        has(&self.api_groups, &a.api_group)
            && resource_matches(&self.resources, &a.resource, &a.subresource)
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }

    /// JSON form (`rules[]` entries, SelfSubjectRulesReview).
    pub fn to_json(&self) -> Value {
        let mut v = json!({"verbs": self.verbs});
        if !self.non_resource_urls.is_empty() {
            v["nonResourceURLs"] = json!(self.non_resource_urls);
            return v;
        }
        v["apiGroups"] = json!(self.api_groups);
        v["resources"] = json!(self.resources);
        if !self.resource_names.is_empty() {
            v["resourceNames"] = json!(self.resource_names);
        }
        v
    }

    /// Upstream's `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
    pub fn compact(&self) -> String {
        let q = |l: &[String]| {
            l.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:[{}]", q(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:[{}]", q(&self.resources)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!("NonResourceURLs:[{}]", q(&self.non_resource_urls)));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:[{}]", q(&self.resource_names)));
        }
        parts.push(format!("Verbs:[{}]", q(&self.verbs)));
        format!("{{{}}}", parts.join(", "))
    }
}

fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Upstream's `ResourceMatches`: `*`, `resource/subresource` exactly, or `*/subresource`.
fn resource_matches(rules: &[String], resource: &str, subresource: &str) -> bool {
    rules.iter().any(|r| {
        if r == "*" {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        r.split_once('/')
            .is_some_and(|(res, sub)| sub == subresource && (res == resource || res == "*"))
    })
}

/// Parse `rules` of a role object.
pub fn rules_of(object: &Value) -> Vec<Rule> {
    object
        .get("rules")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default()
}

/// Whether `owner` rules together allow everything `servant` grants (upstream's `Covers`);
/// the rules not covered, broken down to one verb/resource/name each.
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    let mut missing = Vec::new();
    for rule in servant {
        for atom in break_down(rule) {
            if !owner.iter().any(|o| covers(o, &atom)) {
                missing.push(atom);
            }
        }
    }
    missing
}

/// Merge single-valued rules that differ only in their verbs, sorted as upstream's
/// `CompactRules` and `SortableRuleSlice` leave them.
pub fn compact_rules(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for rule in rules {
        let same = out.iter_mut().find(|o| {
            o.api_groups == rule.api_groups
                && o.resources == rule.resources
                && o.resource_names == rule.resource_names
                && o.non_resource_urls == rule.non_resource_urls
        });
        match same {
            Some(o) => {
                for v in rule.verbs {
                    if !o.verbs.contains(&v) {
                        o.verbs.push(v);
                    }
                }
            }
            None => out.push(rule),
        }
    }
    out.sort_by_key(Rule::compact);
    out
}

fn break_down(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    let one = |s: &String| vec![s.clone()];
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(Rule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Rule::default()
            });
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                if rule.resource_names.is_empty() {
                    out.push(Rule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        ..Rule::default()
                    });
                }
                for name in &rule.resource_names {
                    out.push(Rule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..Rule::default()
                    });
                }
            }
        }
    }
    out
}

/// Whether `owner` covers the single-valued `atom` (upstream's `ruleCovers`).
fn covers(owner: &Rule, atom: &Rule) -> bool {
    let verb = &atom.verbs[0];
    if !owner.verbs.iter().any(|v| v == "*" || v == verb) {
        return false;
    }
    if let Some(url) = atom.non_resource_urls.first() {
        return owner.non_resource_urls.iter().any(|o| {
            o == "*" || o == url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p))
        });
    }
    let (group, resource) = (&atom.api_groups[0], &atom.resources[0]);
    if !owner.api_groups.iter().any(|g| g == "*" || g == group) {
        return false;
    }
    let resource_ok = owner.resources.iter().any(|o| {
        o == "*"
            || o == resource
            || (o.starts_with("*/")
                && resource
                    .split_once('/')
                    .is_some_and(|(_, sub)| o[2..] == *sub))
            || (o.ends_with("/*")
                && resource
                    .split_once('/')
                    .is_some_and(|(res, _)| o[..o.len() - 2] == *res))
    });
    if !resource_ok {
        return false;
    }
    owner.resource_names.is_empty()
        || atom
            .resource_names
            .first()
            .is_some_and(|n| owner.resource_names.contains(n))
}

/// One binding's grant to a subject: the rules it gives and how to name it in a reason.
#[derive(Clone, Debug)]
pub struct Grant {
    pub rules: Arc<Vec<Rule>>,
    /// `ClusterRoleBinding "x" of ClusterRole "y"`.
    pub source: Arc<str>,
}

#[derive(Default, Debug)]
struct SubjectMap {
    users: HashMap<String, Vec<(Grant, String)>>,
    groups: HashMap<String, Vec<(Grant, String)>>,
}

impl SubjectMap {
    fn add(&mut self, subject: &Value, default_ns: &str, grant: &Grant) {
        let s = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or("");
        let (map, key, shown) = match s("kind") {
            "User" => (&mut self.users, s("name").to_string(), "User"),
            "Group" => (&mut self.groups, s("name").to_string(), "Group"),
            "ServiceAccount" => {
                let ns = if s("namespace").is_empty() {
                    default_ns
                } else {
                    s("namespace")
                };
                (
                    &mut self.users,
                    format!("system:serviceaccount:{ns}:{}", s("name")),
                    "ServiceAccount",
                )
            }
            _ => return,
        };
        let describe = if shown == "ServiceAccount" {
            format!(
                "{shown} \"{}/{}\"",
                key.rsplit(':').nth(1).unwrap_or(""),
                s("name")
            )
        } else {
            format!("{shown} \"{key}\"")
        };
        map.entry(key).or_default().push((grant.clone(), describe));
    }

    fn visit<'a>(&'a self, user: &UserInfo, out: &mut Vec<&'a (Grant, String)>) {
        if let Some(g) = self.users.get(&user.name) {
            out.extend(g);
        }
        for group in &user.groups {
            if let Some(g) = self.groups.get(group) {
                out.extend(g);
            }
        }
    }
}

/// The RBAC objects, indexed for authorization.
#[derive(Default, Debug)]
pub struct Index {
    cluster: SubjectMap,
    namespaced: HashMap<String, SubjectMap>,
    /// ClusterRole name → its effective rules (aggregated ones computed).
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    /// `(namespace, name)` → Role rules.
    roles: HashMap<(String, String), Arc<Vec<Rule>>>,
    /// Aggregated ClusterRoles whose stored rules differ from the computed ones.
    stale_aggregates: Vec<(String, Vec<Rule>)>,
}

fn name_ns(o: &Value) -> (String, String) {
    let s = |f: &str| {
        o.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (s("namespace"), s("name"))
}

impl Index {
    /// Build from every stored RBAC object (`(plural, object)`).
    pub fn build(objects: &[(&str, &Value)]) -> Index {
        let mut index = Index::default();
        fn select<'a>(
            objects: &'a [(&'a str, &'a Value)],
            plural: &'a str,
        ) -> impl Iterator<Item = &'a Value> + 'a {
            objects
                .iter()
                .filter(move |(p, _)| *p == plural)
                .map(|(_, o)| *o)
        }
        let of = |plural: &'static str| select(objects, plural);
        let cluster_roles: Vec<&Value> = of("clusterroles").collect();
        for role in &cluster_roles {
            let (_, name) = name_ns(role);
            index.cluster_roles.insert(name, Arc::new(rules_of(role)));
        }
        // Aggregation: the union of the rules of every ClusterRole a selector matches, in name
        // order, without duplicates.
        for role in &cluster_roles {
            let Some(selectors) = role
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
            else {
                continue;
            };
            let (_, name) = name_ns(role);
            let selectors: Vec<crate::selector::LabelSelector> = selectors
                .iter()
                .filter_map(|s| {
                    crate::selector::LabelSelector::parse(&crate::selector::label_selector_string(
                        s,
                    ))
                    .ok()
                })
                .collect();
            let mut sources: Vec<&&Value> = cluster_roles
                .iter()
                .filter(|other| name_ns(other).1 != name)
                .filter(|other| selectors.iter().any(|s| s.matches(other)))
                .collect();
            sources.sort_by_key(|o| name_ns(o).1);
            let mut rules: Vec<Rule> = Vec::new();
            for source in sources {
                for rule in rules_of(source) {
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
            }
            if rules != rules_of(role) {
                index.stale_aggregates.push((name.clone(), rules.clone()));
            }
            index.cluster_roles.insert(name, Arc::new(rules));
        }
        for role in of("roles") {
            let (ns, name) = name_ns(role);
            index.roles.insert((ns, name), Arc::new(rules_of(role)));
        }
        let subjects = |b: &Value| {
            b.get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for binding in of("clusterrolebindings") {
            let (_, name) = name_ns(binding);
            let role = binding
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(rules) = index.cluster_roles.get(role).cloned() else {
                continue;
            };
            let grant = Grant {
                rules,
                source: format!("ClusterRoleBinding \"{name}\" of ClusterRole \"{role}\"").into(),
            };
            for s in subjects(binding) {
                index.cluster.add(&s, "", &grant);
            }
        }
        for binding in of("rolebindings") {
            let (ns, name) = name_ns(binding);
            let role = binding
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = binding
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let rules = if kind == "ClusterRole" {
                index.cluster_roles.get(role).cloned()
            } else {
                index.roles.get(&(ns.clone(), role.to_string())).cloned()
            };
            let Some(rules) = rules else { continue };
            let grant = Grant {
                rules,
                source: format!("RoleBinding \"{name}/{ns}\" of {kind} \"{role}\"").into(),
            };
            let map = index.namespaced.entry(ns.clone()).or_default();
            for s in subjects(binding) {
                map.add(&s, &ns, &grant);
            }
        }
        index
    }

    /// Every grant that applies to `user` in `namespace` ("" for cluster-wide only).
    pub fn grants<'a>(&'a self, user: &UserInfo, namespace: &str) -> Vec<&'a (Grant, String)> {
        let mut out = Vec::new();
        self.cluster.visit(user, &mut out);
        if !namespace.is_empty()
            && let Some(map) = self.namespaced.get(namespace)
        {
            map.visit(user, &mut out);
        }
        out
    }

    /// Every rule `user` holds in `namespace`.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Rule> {
        let mut rules = Vec::new();
        if user.in_group("system:masters") {
            rules.push(Rule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..Rule::default()
            });
            rules.push(Rule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
                ..Rule::default()
            });
        }
        for (grant, _) in self.grants(user, namespace) {
            rules.extend(grant.rules.iter().cloned());
        }
        rules
    }

    /// The RBAC decision: the reason when allowed.
    pub fn authorize(&self, a: &Attributes) -> Option<String> {
        if a.user.in_group("system:masters") {
            return Some(String::new());
        }
        self.grants(&a.user, &a.namespace)
            .into_iter()
            .find(|(grant, _)| grant.rules.iter().any(|r| r.allows(a)))
            .map(|(grant, subject)| format!("RBAC: allowed by {} to {subject}", grant.source))
    }

    /// The rules of the role a binding's `roleRef` names (in `namespace` for a Role).
    pub fn role_rules(&self, namespace: &str, kind: &str, name: &str) -> Option<Arc<Vec<Rule>>> {
        if kind == "ClusterRole" {
            self.cluster_roles.get(name).cloned()
        } else {
            self.roles
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        }
    }
}

/// The shared RBAC index, replaced whole after each change.
#[derive(Clone, Default)]
pub struct Cache {
    index: Arc<RwLock<Arc<Index>>>,
    ready: Arc<tokio::sync::Notify>,
}

impl Cache {
    pub fn index(&self) -> Arc<Index> {
        self.index.read().clone()
    }

    /// Start feeding from `store` until it closes; returns once the first build is in.
    pub async fn start(store: Store) -> Cache {
        let cache = Cache::default();
        let ready = cache.ready.notified();
        tokio::spawn(feed(store, cache.clone()));
        ready.await;
        cache
    }

    /// Replace the index (tests and the feed).
    pub fn set(&self, index: Index) {
        *self.index.write() = Arc::new(index);
        self.ready.notify_waiters();
    }
}

fn plural_of(key: &[u8]) -> String {
    String::from_utf8_lossy(&key[PREFIX.len()..])
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

async fn feed(store: Store, cache: Cache) {
    loop {
        match feed_once(&store, &cache).await {
            Err(k1s_store::Error::Closed) => return,
            Err(e) => {
                tracing::debug!(error = %e, "rbac cache restarts its watch");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(()) => return,
        }
    }
}

async fn feed_once(store: &Store, cache: &Cache) -> Result<(), k1s_store::Error> {
    let mut objects: std::collections::BTreeMap<Bytes, (String, Value)> = Default::default();
    let mut start_after = None;
    let revision = loop {
        let page = store
            .range(RangeRequest {
                prefix: Bytes::from_static(PREFIX.as_bytes()),
                start_after: start_after.clone(),
                revision: None,
                limit: 0,
                count_only: false,
            })
            .await?;
        let last = page.kvs.last().map(|kv| kv.key.clone());
        for kv in page.kvs {
            if let Ok(v) = serde_json::from_slice(&kv.value) {
                objects.insert(kv.key.clone(), (plural_of(&kv.key), v));
            }
        }
        if page.remaining == 0 {
            break page.revision;
        }
        start_after = last;
    };
    let mut watcher = store
        .watch(PREFIX.as_bytes(), WatchStart::After(revision))
        .await?;
    rebuild(store, cache, &objects).await;
    loop {
        // One rebuild for every event already delivered (a burst of writes).
        let mut message = Some(watcher.next().await?);
        let mut changed = false;
        while let Some(m) = message {
            if let WatchMessage::Event(event) = m {
                changed = true;
                match event.kind {
                    EventKind::Put => {
                        if let Ok(v) = serde_json::from_slice(&event.kv.value) {
                            objects.insert(event.kv.key.clone(), (plural_of(&event.kv.key), v));
                        }
                    }
                    EventKind::Delete => {
                        objects.remove(&event.kv.key);
                    }
                }
            }
            message = match futures_util::FutureExt::now_or_never(watcher.next()) {
                Some(next) => Some(next?),
                None => None,
            };
        }
        if changed {
            rebuild(store, cache, &objects).await;
        }
    }
}

async fn rebuild(
    store: &Store,
    cache: &Cache,
    objects: &std::collections::BTreeMap<Bytes, (String, Value)>,
) {
    let all: Vec<(&str, &Value)> = objects.values().map(|(p, v)| (p.as_str(), v)).collect();
    let mut index = Index::build(&all);
    let stale = std::mem::take(&mut index.stale_aggregates);
    cache.set(index);
    // As upstream's aggregation controller: write the computed rules into the ClusterRole.
    for (name, rules) in stale {
        let key = format!("{PREFIX}clusterroles/{name}");
        let Ok((_, Some(kv))) = store.get(key.as_bytes(), None).await else {
            continue;
        };
        let Ok(mut object) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        object["rules"] = rules.iter().map(Rule::to_json).collect();
        let Ok(bytes) = serde_json::to_vec(&object) else {
            continue;
        };
        match store
            .update(key.as_bytes(), Bytes::from(bytes), kv.mod_revision, None)
            .await
        {
            Ok(WriteOutcome::Committed { .. } | WriteOutcome::Conflict { .. }) => {}
            Err(e) => tracing::warn!(role = name, error = %e, "cannot aggregate a ClusterRole"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    fn attrs(u: &UserInfo, verb: &str, ns: &str, group: &str, resource: &str) -> Attributes {
        Attributes {
            user: u.clone(),
            verb: verb.into(),
            namespace: ns.into(),
            api_group: group.into(),
            resource: resource.into(),
            resource_request: true,
            ..Attributes::default()
        }
    }

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rule_matching() {
        let u = user("bob", &[]);
        let pods =
            rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}));
        assert!(pods.allows(&attrs(&u, "get", "a", "", "pods")));
        assert!(!pods.allows(&attrs(&u, "delete", "a", "", "pods")));
        assert!(!pods.allows(&attrs(&u, "get", "a", "apps", "pods")));
        let mut log = attrs(&u, "get", "a", "", "pods");
        log.subresource = "log".into();
        assert!(!pods.allows(&log));
        assert!(
            rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}))
                .allows(&log)
        );
        assert!(
            rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]})).allows(&log)
        );
        let named = rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}),
        );
        let mut get = attrs(&u, "get", "a", "", "pods");
        assert!(!named.allows(&get));
        get.name = "web".into();
        assert!(named.allows(&get));
        let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        let path = |p: &str| Attributes {
            user: u.clone(),
            verb: "get".into(),
            path: p.into(),
            ..Attributes::default()
        };
        assert!(urls.allows(&path("/healthz")));
        assert!(urls.allows(&path("/apis/apps/v1")));
        assert!(!urls.allows(&path("/metrics")));
        assert!(!pods.allows(&path("/healthz")));
    }

    fn index() -> Index {
        let objects = [
            (
                "clusterroles".to_string(),
                json!({"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-view": "true"}}]}}),
            ),
            (
                "clusterroles".to_string(),
                json!({"metadata": {"name": "view-core", "labels": {"agg-view": "true"}}, "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}),
            ),
            (
                "clusterroles".to_string(),
                json!({"metadata": {"name": "view-apps", "labels": {"agg-view": "true"}}, "rules": [{"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]}]}),
            ),
            (
                "roles".to_string(),
                json!({"metadata": {"name": "cm", "namespace": "b"}, "rules": [{"verbs": ["*"], "apiGroups": [""], "resources": ["configmaps"]}]}),
            ),
            (
                "rolebindings".to_string(),
                json!({"metadata": {"name": "bob-view", "namespace": "a"}, "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "bob"}]}),
            ),
            (
                "rolebindings".to_string(),
                json!({"metadata": {"name": "sa-cm", "namespace": "b"}, "roleRef": {"kind": "Role", "name": "cm"}, "subjects": [{"kind": "ServiceAccount", "name": "builder"}]}),
            ),
            (
                "clusterrolebindings".to_string(),
                json!({"metadata": {"name": "devs"}, "roleRef": {"kind": "ClusterRole", "name": "view-apps"}, "subjects": [{"kind": "Group", "name": "devs"}]}),
            ),
        ];
        let refs: Vec<(&str, &Value)> = objects.iter().map(|(p, v)| (p.as_str(), v)).collect();
        Index::build(&refs)
    }

    #[test]
    fn bindings_aggregation_and_scopes() {
        let index = index();
        let bob = user("bob", &["system:authenticated"]);
        assert!(
            index
                .authorize(&attrs(&bob, "list", "a", "", "pods"))
                .is_some()
        );
        assert!(
            index
                .authorize(&attrs(&bob, "list", "b", "", "pods"))
                .is_none()
        );
        assert_eq!(
            index
                .authorize(&attrs(&bob, "get", "a", "apps", "deployments"))
                .unwrap(),
            "RBAC: allowed by RoleBinding \"bob-view/a\" of ClusterRole \"view\" to User \"bob\""
        );
        assert_eq!(index.stale_aggregates.len(), 1);
        let sa = user("system:serviceaccount:b:builder", &[]);
        assert!(
            index
                .authorize(&attrs(&sa, "delete", "b", "", "configmaps"))
                .is_some()
        );
        assert!(
            index
                .authorize(&attrs(&sa, "delete", "a", "", "configmaps"))
                .is_none()
        );
        let dev = user("carol", &["devs"]);
        assert!(
            index
                .authorize(&attrs(&dev, "get", "x", "apps", "deployments"))
                .is_some()
        );
        assert!(
            index
                .authorize(&attrs(&dev, "get", "", "apps", "deployments"))
                .is_some()
        );
        let admin = user("root", &["system:masters"]);
        assert!(
            index
                .authorize(&attrs(&admin, "delete", "", "", "nodes"))
                .is_some()
        );
    }

    #[test]
    fn escalation_coverage() {
        let owner = vec![
            rule(
                json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
            ),
            rule(json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["*"]})),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/logs/*"]})),
        ];
        let ok = vec![
            rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})),
            rule(
                json!({"verbs": ["delete"], "apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["x"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/logs/a"]})),
        ];
        assert!(uncovered(&owner, &ok).is_empty());
        let bad = vec![rule(
            json!({"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods", "secrets"]}),
        )];
        let missing: Vec<String> = compact_rules(uncovered(&owner, &bad))
            .iter()
            .map(Rule::compact)
            .collect();
        assert_eq!(
            missing,
            [
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}",
            ]
        );
    }
}
