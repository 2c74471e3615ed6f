//! The garbage collector's dependency graph (upstream's `GraphBuilder`): a node per uid with its owners and dependents, changed by informer (and virtual) events one at a time, each change answering with the work it calls for; and the pure decision `attemptToDelete` takes from an object's classified owners.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::client::PropagationPolicy;

/// The finalizer of a deletion whose dependents go first (`metav1.FinalizerDeleteDependents`).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of a deletion that orphans its dependents (`metav1.FinalizerOrphanDependents`).
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Where an object is: an owner reference's coordinates and a namespace (upstream's
/// `objectReference`). Empty namespace: cluster-scoped (or, for a virtual node, unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// As upstream prints an `objectReference` in events and logs.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

impl Identity {
    /// The identity of an object seen through an informer of `api_version`/`kind`.
    pub fn of(object: &Value, api_version: &str, kind: &str) -> Option<Identity> {
        let meta = object.get("metadata")?;
        let text = |f: &str| meta.get(f).and_then(Value::as_str).unwrap_or_default();
        let uid = text("uid");
        if uid.is_empty() {
            return None;
        }
        Some(Identity {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: text("namespace").to_string(),
            name: text("name").to_string(),
            uid: uid.to_string(),
        })
    }

    /// The object reference an event about this object carries.
    pub fn reference(&self) -> Value {
        let mut r = serde_json::json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        });
        if !self.namespace.is_empty() {
            r["namespace"] = Value::String(self.namespace.clone());
        }
        r
    }

    /// Ordering of alternate identities (upstream's `referenceLessThan`): kind, apiVersion,
    /// namespace, name, uid.
    fn order_key(&self) -> (&str, &str, &str, &str, &str) {
        (
            &self.kind,
            &self.api_version,
            &self.namespace,
            &self.name,
            &self.uid,
        )
    }
}

/// One entry of `metadata.ownerReferences`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: Option<bool>,
    pub block_owner_deletion: Option<bool>,
}

impl OwnerRef {
    pub fn from_value(value: &Value) -> Option<OwnerRef> {
        let text = |f: &str| value.get(f).and_then(Value::as_str).map(str::to_string);
        Some(OwnerRef {
            api_version: text("apiVersion").unwrap_or_default(),
            kind: text("kind").unwrap_or_default(),
            name: text("name").unwrap_or_default(),
            uid: text("uid")?,
            controller: value.get("controller").and_then(Value::as_bool),
            block_owner_deletion: value.get("blockOwnerDeletion").and_then(Value::as_bool),
        })
    }

    /// Whether this reference holds its owner's foreground deletion.
    pub fn blocks(&self) -> bool {
        self.block_owner_deletion == Some(true)
    }

    /// The owner's identity as seen from a dependent in `namespace`.
    pub fn identity_in(&self, namespace: &str) -> Identity {
        Identity {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: namespace.to_string(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    /// Whether uid, name, kind and apiVersion all match `identity`.
    fn matches(&self, identity: &Identity) -> bool {
        self.uid == identity.uid
            && self.name == identity.name
            && self.kind == identity.kind
            && self.api_version == identity.api_version
    }
}

/// The owner references of an object.
pub fn owner_refs(object: &Value) -> Vec<OwnerRef> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(OwnerRef::from_value)
        .collect()
}

/// The finalizers of an object.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// Whether an object has a deletionTimestamp.
pub fn being_deleted(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// What the graph keeps of an object's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub owners: Vec<OwnerRef>,
    pub finalizers: Vec<String>,
    pub being_deleted: bool,
}

impl Meta {
    pub fn of(object: &Value) -> Meta {
        Meta {
            owners: owner_refs(object),
            finalizers: finalizers(object),
            being_deleted: being_deleted(object),
        }
    }

    fn has(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Whether this state starts a deletion held by `finalizer` that `old` was not in yet
    /// (upstream's `deletionStartsWithFinalizer`).
    fn starts_deletion_with(&self, old: Option<&Meta>, finalizer: &str) -> bool {
        if !self.being_deleted || !self.has(finalizer) {
            return false;
        }
        old.is_none_or(|old| !old.being_deleted || !old.has(finalizer))
    }
}

/// An object the graph knows of, or (virtual) one only named by owner references.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerRef>,
    /// Uids of the nodes naming this one as an owner.
    pub dependents: BTreeSet<String>,
    pub being_deleted: bool,
    /// Being deleted with the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// Never observed through an informer: created for an owner reference.
    pub virtual_node: bool,
}

/// Whether a change comes from an informer or was made up by the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Added or updated.
    Upsert,
    Delete,
}

/// One event for the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Made up by the collector after a lookup found no such object (only deletes).
    pub virtual_event: bool,
    pub identity: Identity,
    pub meta: Meta,
    /// The previous state, for updates.
    pub old: Option<Meta>,
}

/// What a change calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Queue this uid for `attemptToDelete`.
    AttemptToDelete(String),
    /// Queue this uid for `attemptToDelete` after its backoff.
    AttemptToDeleteLater(String),
    /// Queue this uid for `attemptToOrphan`.
    AttemptToOrphan(String),
    /// This owner is known not to exist.
    Absent(Identity),
    /// `dependent` names `owner`, which lives in another namespace (a Warning event).
    InvalidNamespace {
        dependent: Identity,
        owner: OwnerRef,
    },
}

/// The dependency graph: nodes by uid.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.nodes
            .get(uid)
            .into_iter()
            .flat_map(|n| &n.dependents)
            .filter_map(|d| self.nodes.get(d))
            .collect()
    }

    /// The dependents of `uid` whose reference to it has `blockOwnerDeletion`.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| d.owners.iter().any(|o| o.uid == uid && o.blocks()))
            .collect()
    }

    /// Apply one change (upstream's `processGraphChanges`); return the work it calls for.
    pub fn process(&mut self, change: Change) -> Vec<Effect> {
        let mut effects = Vec::new();
        let uid = change.identity.uid.clone();
        let found = self.nodes.contains_key(&uid);
        if found && !change.virtual_event && self.nodes[&uid].virtual_node {
            self.observe(&change.identity, &mut effects);
        }
        match change.kind {
            ChangeKind::Upsert if !found => {
                let node = Node {
                    identity: change.identity.clone(),
                    owners: change.meta.owners.clone(),
                    dependents: BTreeSet::new(),
                    being_deleted: change.meta.being_deleted,
                    deleting_dependents: change.meta.being_deleted
                        && change.meta.has(FOREGROUND_FINALIZER),
                    virtual_node: false,
                };
                self.nodes.insert(uid.clone(), node);
                self.add_dependent_to_owners(&uid, &change.meta.owners, &mut effects);
                self.transitions(&uid, change.old.as_ref(), &change.meta, &mut effects);
            }
            ChangeKind::Upsert => {
                if !change.virtual_event
                    && let Some(node) = self.nodes.get_mut(&uid)
                {
                    node.identity.api_version = change.identity.api_version.clone();
                    node.identity.kind = change.identity.kind.clone();
                }
                let current = self.nodes[&uid].owners.clone();
                let (added, removed, changed) = references_diffs(&current, &change.meta.owners);
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    self.unblocked_owners(&removed, &changed, &mut effects);
                    if let Some(node) = self.nodes.get_mut(&uid) {
                        node.owners = change.meta.owners.clone();
                    }
                    self.add_dependent_to_owners(&uid, &added, &mut effects);
                    for owner in &removed {
                        if let Some(o) = self.nodes.get_mut(&owner.uid) {
                            o.dependents.remove(&uid);
                        }
                    }
                }
                if change.meta.being_deleted
                    && let Some(node) = self.nodes.get_mut(&uid)
                {
                    node.being_deleted = true;
                }
                self.transitions(&uid, change.old.as_ref(), &change.meta, &mut effects);
            }
            ChangeKind::Delete if !found => {}
            ChangeKind::Delete => self.delete(&change, &mut effects),
        }
        effects
    }

    /// A virtual node seen for real: take the observed identity; dependents that named it
    /// otherwise are checked again (and reported when in another namespace).
    fn observe(&mut self, observed: &Identity, effects: &mut Vec<Effect>) {
        let uid = &observed.uid;
        if self.nodes[uid].identity != *observed {
            let (_, nonmatching) = self.partition(uid, observed);
            for dep in nonmatching {
                if !observed.namespace.is_empty()
                    && let Some(d) = self.nodes.get(&dep)
                    && d.identity.namespace != observed.namespace
                    && let Some(owner) = d.owners.iter().find(|o| o.uid == *uid)
                {
                    effects.push(Effect::InvalidNamespace {
                        dependent: d.identity.clone(),
                        owner: owner.clone(),
                    });
                }
                effects.push(Effect::AttemptToDelete(dep));
            }
        }
        if let Some(node) = self.nodes.get_mut(uid) {
            node.identity = observed.clone();
            node.virtual_node = false;
        }
    }

    fn delete(&mut self, change: &Change, effects: &mut Vec<Effect>) {
        let uid = &change.identity.uid;
        let deleted = &change.identity;
        let mut remove = true;
        if change.virtual_event {
            let existing = &self.nodes[uid];
            if existing.virtual_node {
                let (matching, nonmatching) = self.partition(uid, deleted);
                if !nonmatching.is_empty() {
                    // Dependents disagree on who this is: keep the node.
                    remove = false;
                    if !matching.is_empty() {
                        effects.push(Effect::Absent(deleted.clone()));
                        effects.extend(matching.into_iter().map(Effect::AttemptToDelete));
                    }
                    if self.nodes[uid].identity == *deleted
                        && let Some(alternate) = self.alternate_identity(&nonmatching, deleted)
                    {
                        if let Some(node) = self.nodes.get_mut(uid) {
                            node.identity = alternate;
                        }
                        effects.push(Effect::AttemptToDeleteLater(uid.clone()));
                    }
                }
            } else if existing.identity != *deleted {
                // An observed node is not removed by a lookup under other coordinates.
                remove = false;
                let (matching, _) = self.partition(uid, deleted);
                if !matching.is_empty() {
                    effects.push(Effect::Absent(deleted.clone()));
                    effects.extend(matching.into_iter().map(Effect::AttemptToDelete));
                }
            }
        }
        if !remove {
            return;
        }
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        for owner in &node.owners {
            if let Some(o) = self.nodes.get_mut(&owner.uid) {
                o.dependents.remove(uid);
            }
        }
        if !node.dependents.is_empty() {
            effects.push(Effect::Absent(deleted.clone()));
        }
        effects.extend(node.dependents.iter().cloned().map(Effect::AttemptToDelete));
        for owner in &node.owners {
            if self
                .nodes
                .get(&owner.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                // The owner may be waiting only for this one.
                effects.push(Effect::AttemptToDelete(owner.uid.clone()));
            }
        }
    }

    /// Add `uid` to the dependents of `owners`, creating virtual nodes for owners not seen
    /// yet (queued so a lookup confirms them); queue `uid` itself if a reference looks wrong
    /// (upstream's `addDependentToOwners`).
    fn add_dependent_to_owners(
        &mut self,
        uid: &str,
        owners: &[OwnerRef],
        effects: &mut Vec<Effect>,
    ) {
        let Some(dependent) = self.nodes.get(uid).map(|n| n.identity.clone()) else {
            return;
        };
        let mut suspicious = false;
        for owner in owners {
            match self.nodes.get_mut(&owner.uid) {
                None => {
                    let mut node = Node {
                        identity: owner.identity_in(&dependent.namespace),
                        virtual_node: true,
                        ..Default::default()
                    };
                    node.dependents.insert(uid.to_string());
                    self.nodes.insert(owner.uid.clone(), node);
                    effects.push(Effect::AttemptToDelete(owner.uid.clone()));
                }
                Some(node) => {
                    node.dependents.insert(uid.to_string());
                    if suspicious {
                        continue;
                    }
                    let namespaced = !node.identity.namespace.is_empty();
                    if namespaced && node.identity.namespace != dependent.namespace {
                        if !node.virtual_node {
                            effects.push(Effect::InvalidNamespace {
                                dependent: dependent.clone(),
                                owner: owner.clone(),
                            });
                        }
                        suspicious = true;
                    } else if !owner.matches(&node.identity) {
                        suspicious = true;
                    } else if !namespaced
                        && node.identity.namespace != dependent.namespace
                        && node.virtual_node
                    {
                        // Perhaps a namespaced kind named by a cluster-scoped dependent.
                        suspicious = true;
                    }
                }
            }
        }
        if suspicious {
            effects.push(Effect::AttemptToDelete(uid.to_string()));
        }
    }

    /// Owners a removed or no longer blocking reference was holding back get another look
    /// (upstream's `addUnblockedOwnersToDeleteQueue`).
    fn unblocked_owners(
        &self,
        removed: &[OwnerRef],
        changed: &[(OwnerRef, OwnerRef)],
        effects: &mut Vec<Effect>,
    ) {
        let unblocked = removed.iter().filter(|r| r.blocks()).chain(
            changed
                .iter()
                .filter(|(old, new)| old.blocks() && !new.blocks())
                .map(|(_, new)| new),
        );
        for r in unblocked {
            if self.nodes.contains_key(&r.uid) {
                effects.push(Effect::AttemptToDelete(r.uid.clone()));
            }
        }
    }

    /// A deletion that starts with the orphan or foreground finalizer.
    fn transitions(
        &mut self,
        uid: &str,
        old: Option<&Meta>,
        new: &Meta,
        effects: &mut Vec<Effect>,
    ) {
        if new.starts_deletion_with(old, ORPHAN_FINALIZER) {
            effects.push(Effect::AttemptToOrphan(uid.to_string()));
            return;
        }
        if new.starts_deletion_with(old, FOREGROUND_FINALIZER)
            && let Some(node) = self.nodes.get_mut(uid)
        {
            node.deleting_dependents = true;
            effects.extend(node.dependents.iter().cloned().map(Effect::AttemptToDelete));
            effects.push(Effect::AttemptToDelete(uid.to_string()));
        }
    }

    /// The dependents of `uid` whose reference to it matches `identity`, and those whose
    /// reference (or namespace) does not (upstream's `partitionDependents`).
    fn partition(&self, uid: &str, identity: &Identity) -> (Vec<String>, Vec<String>) {
        let (mut matching, mut nonmatching) = (Vec::new(), Vec::new());
        let namespaced = !identity.namespace.is_empty();
        for dep in self.dependents(uid) {
            let (mut matched, mut mismatched) = (false, false);
            if namespaced && identity.namespace != dep.identity.namespace {
                mismatched = true;
            } else {
                for owner in dep.owners.iter().filter(|o| o.uid == identity.uid) {
                    if owner.matches(identity) {
                        matched = true;
                    } else {
                        mismatched = true;
                    }
                }
            }
            if matched {
                matching.push(dep.identity.uid.clone());
            }
            if mismatched {
                nonmatching.push(dep.identity.uid.clone());
            }
        }
        (matching, nonmatching)
    }

    /// Another identity the `dependents` name the absent owner by: the first after `absent`
    /// in upstream's order, else the first (upstream's `getAlternateOwnerIdentity`).
    fn alternate_identity(&self, dependents: &[String], absent: &Identity) -> Option<Identity> {
        let cluster_scoped = absent.namespace.is_empty();
        let mut seen: HashSet<Identity> = HashSet::from([absent.clone()]);
        let mut first: Option<Identity> = None;
        let mut following: Option<Identity> = None;
        for dep in dependents.iter().filter_map(|d| self.nodes.get(d)) {
            for owner in dep.owners.iter().filter(|o| o.uid == absent.uid) {
                if owner.matches(absent)
                    && (cluster_scoped || absent.namespace == dep.identity.namespace)
                {
                    continue;
                }
                let mut candidate = owner.identity_in(&dep.identity.namespace);
                if cluster_scoped
                    && candidate.api_version == absent.api_version
                    && candidate.kind == absent.kind
                {
                    candidate.namespace.clear();
                }
                if !seen.insert(candidate.clone()) {
                    continue;
                }
                if first
                    .as_ref()
                    .is_none_or(|f| candidate.order_key() < f.order_key())
                {
                    first = Some(candidate.clone());
                }
                if absent.order_key() < candidate.order_key()
                    && following
                        .as_ref()
                        .is_none_or(|f| candidate.order_key() < f.order_key())
                {
                    following = Some(candidate);
                }
            }
        }
        following.or(first)
    }
}

/// References added, removed and changed (by uid) from `old` to `new`.
#[allow(clippy::type_complexity)]
fn references_diffs(
    old: &[OwnerRef],
    new: &[OwnerRef],
) -> (Vec<OwnerRef>, Vec<OwnerRef>, Vec<(OwnerRef, OwnerRef)>) {
    let by_uid: HashMap<&str, &OwnerRef> = old.iter().map(|r| (r.uid.as_str(), r)).collect();
    let mut remaining: HashSet<&str> = by_uid.keys().copied().collect();
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for r in new {
        match by_uid.get(r.uid.as_str()) {
            Some(before) => {
                if *before != r {
                    changed.push(((*before).clone(), r.clone()));
                }
                remaining.remove(r.uid.as_str());
            }
            None => added.push(r.clone()),
        }
    }
    let removed = old
        .iter()
        .filter(|r| remaining.contains(r.uid.as_str()))
        .cloned()
        .collect();
    (added, removed, changed)
}

/// What a lookup found of an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// It exists and is not waiting for its dependents.
    Solid,
    /// It does not exist (or has another uid).
    Dangling,
    /// It is being deleted with the `foregroundDeletion` finalizer.
    WaitingForDependentsDeletion,
}

/// What `attemptToDelete` does with an object, given its owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Leave it: no owners, or only solid ones.
    Keep,
    /// It has a solid owner: remove the references to these (dangling or waiting) owners.
    RemoveOwnerReferences(Vec<String>),
    /// An owner waits for its dependents and this object has dependents of its own: delete
    /// it in the foreground, first making its owner references non-blocking when one of its
    /// dependents is itself deleting dependents (a possible cycle).
    DeleteForeground { unblock_first: bool },
    /// No solid owner: delete it, honouring a finalizer it already has.
    Delete(PropagationPolicy),
}

/// Upstream's decision in `attemptToDeleteItem` once the owners are classified.
pub fn decide(
    owners: &[(OwnerRef, OwnerState)],
    dependents: usize,
    a_dependent_deletes_dependents: bool,
    finalizers: &[String],
) -> Decision {
    if owners.is_empty() {
        return Decision::Keep;
    }
    let of = |state| {
        owners
            .iter()
            .filter(move |(_, s)| *s == state)
            .map(|(r, _)| r.uid.clone())
    };
    let solid = of(OwnerState::Solid).count();
    let dangling: Vec<String> = of(OwnerState::Dangling).collect();
    let waiting: Vec<String> = of(OwnerState::WaitingForDependentsDeletion).collect();
    if solid > 0 {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Keep;
        }
        return Decision::RemoveOwnerReferences(dangling.into_iter().chain(waiting).collect());
    }
    if !waiting.is_empty() && dependents > 0 {
        return Decision::DeleteForeground {
            unblock_first: a_dependent_deletes_dependents,
        };
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    Decision::Delete(if has(ORPHAN_FINALIZER) {
        PropagationPolicy::Orphan
    } else if has(FOREGROUND_FINALIZER) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ns: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner(name: &str, uid: &str, block: bool) -> OwnerRef {
        OwnerRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: block.then_some(true),
        }
    }

    fn upsert(identity: Identity, owners: Vec<OwnerRef>) -> Change {
        Change {
            kind: ChangeKind::Upsert,
            virtual_event: false,
            identity,
            meta: Meta {
                owners,
                ..Default::default()
            },
            old: None,
        }
    }

    fn delete(identity: Identity, virtual_event: bool) -> Change {
        Change {
            kind: ChangeKind::Delete,
            virtual_event,
            identity,
            meta: Meta::default(),
            old: None,
        }
    }

    fn del(uid: &str) -> Effect {
        Effect::AttemptToDelete(uid.into())
    }

    #[test]
    fn dependents_link_to_owners_and_virtual_owners_are_checked() {
        let mut g = Graph::default();
        assert_eq!(g.process(upsert(id("a", "owner", "o"), vec![])), []);
        assert_eq!(
            g.process(upsert(id("a", "dep", "d"), vec![owner("owner", "o", true)])),
            []
        );
        assert_eq!(
            g.node("o").unwrap().dependents,
            BTreeSet::from(["d".into()])
        );
        assert_eq!(g.blocking_dependents("o").len(), 1);
        // An owner never seen becomes a virtual node, queued for a lookup.
        assert_eq!(
            g.process(upsert(
                id("a", "dep2", "d2"),
                vec![owner("ghost", "g", false)]
            )),
            [del("g")]
        );
        let ghost = g.node("g").unwrap();
        assert!(ghost.virtual_node);
        assert_eq!(ghost.identity, id("a", "ghost", "g"));
        // The lookup found nothing: the virtual node goes, its dependents are checked.
        assert_eq!(
            g.process(delete(id("a", "ghost", "g"), true)),
            [Effect::Absent(id("a", "ghost", "g")), del("d2")]
        );
        assert!(g.node("g").is_none());
    }

    #[test]
    fn owner_deletion_queues_dependents_and_records_absence() {
        let mut g = Graph::default();
        g.process(upsert(id("a", "owner", "o"), vec![]));
        g.process(upsert(
            id("a", "dep", "d"),
            vec![owner("owner", "o", false)],
        ));
        assert_eq!(
            g.process(delete(id("a", "owner", "o"), false)),
            [Effect::Absent(id("a", "owner", "o")), del("d")]
        );
        // The dependent's owner reference removed: nothing points anywhere.
        assert_eq!(g.process(upsert(id("a", "dep", "d"), vec![])), []);
        assert!(g.node("o").is_none());
    }

    #[test]
    fn foreground_and_orphan_transitions() {
        let mut g = Graph::default();
        g.process(upsert(id("a", "owner", "o"), vec![]));
        g.process(upsert(id("a", "dep", "d"), vec![owner("owner", "o", true)]));
        let mut deleting = upsert(id("a", "owner", "o"), vec![]);
        deleting.meta.being_deleted = true;
        deleting.meta.finalizers = vec![FOREGROUND_FINALIZER.into()];
        deleting.old = Some(Meta::default());
        assert_eq!(g.process(deleting.clone()), [del("d"), del("o")]);
        assert!(g.node("o").unwrap().deleting_dependents);
        // Seen again in the same state: no new work.
        deleting.old = Some(deleting.meta.clone());
        assert_eq!(g.process(deleting), []);
        // The blocking dependent goes: the owner is looked at again.
        assert_eq!(g.process(delete(id("a", "dep", "d"), false)), [del("o")]);

        let mut g = Graph::default();
        g.process(upsert(id("a", "owner", "o"), vec![]));
        let mut orphaning = upsert(id("a", "owner", "o"), vec![]);
        orphaning.meta.being_deleted = true;
        orphaning.meta.finalizers = vec![ORPHAN_FINALIZER.into()];
        assert_eq!(g.process(orphaning), [Effect::AttemptToOrphan("o".into())]);
    }

    #[test]
    fn removing_a_blocking_reference_unblocks_the_owner() {
        let mut g = Graph::default();
        g.process(upsert(id("a", "owner", "o"), vec![]));
        g.process(upsert(id("a", "dep", "d"), vec![owner("owner", "o", true)]));
        assert_eq!(
            g.process(upsert(
                id("a", "dep", "d"),
                vec![owner("owner", "o", false)]
            )),
            [del("o")]
        );
        assert_eq!(g.process(upsert(id("a", "dep", "d"), vec![])), []);
        assert!(g.node("o").unwrap().dependents.is_empty());
    }

    #[test]
    fn an_owner_in_another_namespace_is_reported() {
        let mut g = Graph::default();
        g.process(upsert(id("a", "owner", "o"), vec![]));
        let r = owner("owner", "o", false);
        assert_eq!(
            g.process(upsert(id("b", "dep", "d"), vec![r.clone()])),
            [
                Effect::InvalidNamespace {
                    dependent: id("b", "dep", "d"),
                    owner: r.clone()
                },
                del("d")
            ]
        );
        // A cluster-scoped dependent naming it too.
        let role = Identity {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: "ClusterRole".into(),
            namespace: String::new(),
            name: "role".into(),
            uid: "c".into(),
        };
        assert_eq!(
            g.process(upsert(role.clone(), vec![r.clone()])),
            [
                Effect::InvalidNamespace {
                    dependent: role,
                    owner: r
                },
                del("c")
            ]
        );
    }

    #[test]
    fn a_dependent_seen_before_its_owner_in_another_namespace_is_reported() {
        let mut g = Graph::default();
        let r = owner("owner", "o", false);
        assert_eq!(
            g.process(upsert(id("b", "dep", "d"), vec![r.clone()])),
            [del("o")]
        );
        assert_eq!(
            g.process(upsert(id("a", "owner", "o"), vec![])),
            [
                Effect::InvalidNamespace {
                    dependent: id("b", "dep", "d"),
                    owner: r
                },
                del("d")
            ]
        );
        let node = g.node("o").unwrap();
        assert!(!node.virtual_node);
        assert_eq!(node.identity.namespace, "a");
    }

    #[test]
    fn a_virtual_delete_keeps_a_node_named_otherwise() {
        let mut g = Graph::default();
        g.process(upsert(id("a", "d1", "d1"), vec![owner("x", "o", false)]));
        g.process(upsert(id("a", "d2", "d2"), vec![owner("y", "o", false)]));
        // The lookup of "x" found nothing; "y" may still exist.
        assert_eq!(
            g.process(delete(id("a", "x", "o"), true)),
            [
                Effect::Absent(id("a", "x", "o")),
                del("d1"),
                Effect::AttemptToDeleteLater("o".into())
            ]
        );
        assert_eq!(g.node("o").unwrap().identity, id("a", "y", "o"));
    }

    #[test]
    fn decisions() {
        use OwnerState::*;
        let a = owner("a", "1", false);
        let b = owner("b", "2", true);
        assert_eq!(decide(&[], 0, false, &[]), Decision::Keep);
        assert_eq!(decide(&[(a.clone(), Solid)], 0, false, &[]), Decision::Keep);
        assert_eq!(
            decide(&[(a.clone(), Solid), (b.clone(), Dangling)], 0, false, &[]),
            Decision::RemoveOwnerReferences(vec!["2".into()])
        );
        assert_eq!(
            decide(
                &[
                    (a.clone(), WaitingForDependentsDeletion),
                    (b.clone(), Solid)
                ],
                3,
                false,
                &[]
            ),
            Decision::RemoveOwnerReferences(vec!["1".into()])
        );
        assert_eq!(
            decide(&[(a.clone(), WaitingForDependentsDeletion)], 2, true, &[]),
            Decision::DeleteForeground {
                unblock_first: true
            }
        );
        assert_eq!(
            decide(&[(a.clone(), WaitingForDependentsDeletion)], 0, false, &[]),
            Decision::Delete(PropagationPolicy::Background)
        );
        assert_eq!(
            decide(
                &[(a.clone(), Dangling), (b.clone(), Dangling)],
                1,
                false,
                &[]
            ),
            Decision::Delete(PropagationPolicy::Background)
        );
        assert_eq!(
            decide(
                &[(a.clone(), Dangling)],
                1,
                false,
                &[ORPHAN_FINALIZER.into()]
            ),
            Decision::Delete(PropagationPolicy::Orphan)
        );
        assert_eq!(
            decide(&[(a, Dangling)], 1, false, &[FOREGROUND_FINALIZER.into()]),
            Decision::Delete(PropagationPolicy::Foreground)
        );
    }

    #[test]
    fn identities_print_as_upstream() {
        assert_eq!(
            owner("owner", "u", false).identity_in("b").to_string(),
            "[v1/ConfigMap, namespace: b, name: owner, uid: u]"
        );
    }
}
