//! The Deployment controller's pure decisions, as upstream's `deployment/util` has them: fenceposts, the pod-template hash, revisions and annotations, which ReplicaSet is new, how many replicas each gets (rolling, proportional, unhealthy first), status, conditions and progress.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The annotation `extensions/v1beta1` rollbacks left behind (upstream still honours it).
pub const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream's cap on the revision-history annotation's length.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;
/// `math.MaxInt32`: "no limit" for revisionHistoryLimit and progressDeadlineSeconds.
const MAX_INT32: i64 = i32::MAX as i64;

// Condition types and reasons (upstream's names).
pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const NEW_REPLICA_SET: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const ROLLBACK_REVISION_NOT_FOUND: &str = "DeploymentRollbackRevisionNotFound";
pub const ROLLBACK_TEMPLATE_UNCHANGED: &str = "DeploymentRollbackTemplateUnchanged";
pub const ROLLBACK_DONE: &str = "DeploymentRollback";

// ---------------------------------------------------------------------------------------------
// Field access

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn i32_at(v: &Value, pointer: &str) -> i32 {
    int_at(v, pointer).unwrap_or(0).clamp(0, MAX_INT32) as i32
}

pub fn name(v: &Value) -> &str {
    str_at(v, "/metadata/name")
}

pub fn uid(v: &Value) -> &str {
    str_at(v, "/metadata/uid")
}

pub fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Set an annotation, creating the map; whether it changed.
pub fn set_annotation(v: &mut Value, key: &str, value: &str) -> bool {
    if annotation(v, key) == Some(value) {
        return false;
    }
    let meta = &mut v["metadata"];
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta["annotations"] = json!({});
    }
    meta["annotations"][key] = json!(value);
    true
}

pub fn remove_annotation(v: &mut Value, key: &str) -> bool {
    v.pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        .is_some_and(|a| a.remove(key).is_some())
}

pub fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `spec.replicas` (defaulted to 1 by the API, as upstream).
pub fn replicas(v: &Value) -> i32 {
    int_at(v, "/spec/replicas").unwrap_or(1).clamp(0, MAX_INT32) as i32
}

pub fn set_replicas(v: &mut Value, n: i32) {
    v["spec"]["replicas"] = json!(n);
}

pub fn status_replicas(rs: &Value) -> i32 {
    i32_at(rs, "/status/replicas")
}

pub fn ready_replicas(rs: &Value) -> i32 {
    i32_at(rs, "/status/readyReplicas")
}

pub fn available_replicas(rs: &Value) -> i32 {
    i32_at(rs, "/status/availableReplicas")
}

pub fn generation(v: &Value) -> i64 {
    int_at(v, "/metadata/generation").unwrap_or(0)
}

pub fn observed_generation(v: &Value) -> i64 {
    int_at(v, "/status/observedGeneration").unwrap_or(0)
}

/// Whether a ReplicaSet's status reflects its spec: its controller has observed its
/// generation and no longer counts pods it is to remove (a ReplicaSet being deleted counts as
/// current: its controller leaves it to the garbage collector).
pub fn status_current(rs: &Value) -> bool {
    deleting(rs)
        || (observed_generation(rs) >= generation(rs) && status_replicas(rs) <= replicas(rs))
}

pub fn paused(d: &Value) -> bool {
    d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true)
}

pub fn is_rolling(d: &Value) -> bool {
    str_at(d, "/spec/strategy/type") != "Recreate"
}

/// upstream's `HasProgressDeadline`.
pub fn has_progress_deadline(d: &Value) -> bool {
    int_at(d, "/spec/progressDeadlineSeconds").is_some_and(|s| s != MAX_INT32)
}

/// upstream's `HasRevisionHistoryLimit`: the limit, unless absent or "keep all".
pub fn revision_history_limit(d: &Value) -> Option<usize> {
    int_at(d, "/spec/revisionHistoryLimit")
        .filter(|&l| l != MAX_INT32)
        .map(|l| l.max(0) as usize)
}

/// The controller owner reference of an object, if any.
pub fn controller_ref(v: &Value) -> Option<&Value> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// `metav1.NewControllerRef` for a Deployment.
pub fn owner_ref(d: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name(d),
        "uid": uid(d),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

pub fn is_controlled_by(v: &Value, d: &Value) -> bool {
    controller_ref(v).is_some_and(|r| str_at(r, "/uid") == uid(d))
}

// ---------------------------------------------------------------------------------------------
// maxSurge and maxUnavailable

/// `intstr.GetScaledValueFromIntOrPercent`: an int as it is, `"N%"` of `total` rounded up or
/// down; absent is 0.
pub fn int_or_percent(value: Option<&Value>, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|n| n.clamp(i32::MIN as i64, MAX_INT32) as i32)
            .ok_or_else(|| format!("invalid value for IntOrString: {n}")),
        Some(Value::String(s)) => {
            let Some(digits) = s.strip_suffix('%') else {
                return Err(format!(
                    "invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"
                ));
            };
            let percent: i64 = digits
                .parse()
                .map_err(|_| format!("invalid value {s:?}: not a number"))?;
            let scaled = percent * i64::from(total);
            let value = if round_up {
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            } else {
                scaled.div_euclid(100)
            };
            Ok(value.clamp(i32::MIN as i64, MAX_INT32) as i32)
        }
        Some(other) => Err(format!("invalid value for IntOrString: {other}")),
    }
}

/// upstream's `ResolveFenceposts`: maxSurge rounds up, maxUnavailable down, and if both come
/// to 0 maxUnavailable is 1 (surge might be impossible, under a quota say).
pub fn resolve_fenceposts(
    max_surge: Option<&Value>,
    max_unavailable: Option<&Value>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let surge = int_or_percent(max_surge, desired, true)?;
    let mut unavailable = int_or_percent(max_unavailable, desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Value) -> (i32, i32) {
    let rolling = d.pointer("/spec/strategy/rollingUpdate");
    // Validation keeps these well-formed; a bad value counts as 0, as upstream ignores it.
    resolve_fenceposts(
        rolling.and_then(|r| r.get("maxSurge")),
        rolling.and_then(|r| r.get("maxUnavailable")),
        replicas(d),
    )
    .unwrap_or((0, 1))
}

/// upstream's `MaxSurge`.
pub fn max_surge(d: &Value) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// upstream's `MaxUnavailable`.
pub fn max_unavailable(d: &Value) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// upstream's `MinAvailable`.
pub fn min_available(d: &Value) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    replicas(d) - max_unavailable(d)
}

// ---------------------------------------------------------------------------------------------
// Templates and the pod-template hash

/// upstream's `rand.SafeEncodeString` alphabet: no vowels, no 0/1/3 (no bad words, no
/// confusables).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Keys whose empty map means the same as no map (Go's semantic equality of nil and empty
/// maps); other empty objects (`emptyDir: {}`) mean something and stay.
const MAP_FIELDS: &[&str] = &["labels", "annotations", "nodeSelector"];

/// A template as compared and hashed: nulls and empty lists dropped (absent in Go's typed
/// structs), empty label/annotation/nodeSelector maps dropped, key order irrelevant.
fn normalize(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(normalize).collect())),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let Some(v) = normalize(v) else { continue };
                if MAP_FIELDS.contains(&k.as_str()) && v.as_object().is_some_and(Map::is_empty) {
                    continue;
                }
                out.insert(k.clone(), v);
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// JSON with object keys sorted at every level, whatever order the map keeps.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// The `pod-template-hash` of a template: FNV-1a (32 bits) over the template's canonical JSON,
/// then the collision count as 8 little-endian bytes when there is one, the sum's decimal
/// digits mapped onto upstream's alphabet (as `controller.ComputeHash` does over Go's struct
/// dump). The value must never change across k1s versions: existing ReplicaSets keep their
/// names; a golden test pins it.
pub fn compute_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut text = String::new();
    canonical_json(&normalize(template).unwrap_or_else(|| json!({})), &mut text);
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(text.as_bytes());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        feed(&bytes);
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// A template without its hash label, normalized.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    normalize(&t).unwrap_or_else(|| json!({}))
}

/// upstream's `EqualIgnoreHash`: the templates are equal but for the hash label. This, not the
/// hash, finds a Deployment's current ReplicaSet.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    without_hash(a) == without_hash(b)
}

/// The template of a ReplicaSet with the hash label removed (what a rollback copies back).
pub fn template_without_hash_label(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Ordering

/// upstream's `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
pub fn by_creation(a: &Value, b: &Value) -> Ordering {
    let t =
        |v: &Value| OffsetDateTime::parse(str_at(v, "/metadata/creationTimestamp"), &Rfc3339).ok();
    t(a).cmp(&t(b)).then_with(|| name(a).cmp(name(b)))
}

/// upstream's `ReplicaSetsByRevision`: lowest revision first, creation order on ties or
/// unparsable revisions.
pub fn by_revision(a: &Value, b: &Value) -> Ordering {
    match (revision(a), revision(b)) {
        (Ok(x), Ok(y)) if x != y => x.cmp(&y),
        _ => by_creation(a, b),
    }
}

/// upstream's `ReplicaSetsBySizeNewer`: largest first, newest first on ties.
fn by_size_newer(a: &Value, b: &Value) -> Ordering {
    replicas(b)
        .cmp(&replicas(a))
        .then_with(|| by_creation(b, a))
}

/// upstream's `ReplicaSetsBySizeOlder`: largest first, oldest first on ties.
fn by_size_older(a: &Value, b: &Value) -> Ordering {
    replicas(b)
        .cmp(&replicas(a))
        .then_with(|| by_creation(a, b))
}

// ---------------------------------------------------------------------------------------------
// Revisions and annotations

/// upstream's `Revision`: 0 without the annotation, an error if it is not a number.
pub fn revision(v: &Value) -> Result<i64, String> {
    match annotation(v, REVISION) {
        None => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| format!("invalid revision {s:?} on {}", name(v))),
    }
}

/// upstream's `MaxRevision` (unparsable revisions skipped).
pub fn max_revision(rss: &[&Value]) -> i64 {
    rss.iter()
        .filter_map(|rs| revision(rs).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

/// upstream's `LastRevision`: the second highest revision.
pub fn last_revision(rss: &[&Value]) -> i64 {
    let (mut max, mut second) = (0, 0);
    for v in rss.iter().filter_map(|rs| revision(rs).ok()) {
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

fn skip_copy(key: &str) -> bool {
    [
        LAST_APPLIED,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        ROLLBACK_TO,
    ]
    .contains(&key)
}

fn annotations_of(v: &Value) -> Map<String, Value> {
    v.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// upstream's `copyDeploymentAnnotationsToReplicaSet`.
fn copy_annotations(d: &Value, rs: &mut Value) -> bool {
    let mut changed = false;
    for (k, v) in annotations_of(d) {
        if skip_copy(&k) {
            continue;
        }
        if let Some(v) = v.as_str() {
            changed |= set_annotation(rs, &k, v);
        }
    }
    changed
}

/// upstream's `SetDeploymentAnnotationsTo`: the Deployment takes the rolled-back-to
/// ReplicaSet's annotations, keeping its own apply and revision annotations.
pub fn set_deployment_annotations_to(d: &mut Value, rs: &Value) {
    let mut annotations: Map<String, Value> = annotations_of(d)
        .into_iter()
        .filter(|(k, _)| skip_copy(k))
        .collect();
    for (k, v) in annotations_of(rs) {
        if !skip_copy(&k) {
            annotations.insert(k, v);
        }
    }
    d["metadata"]["annotations"] = Value::Object(annotations);
}

/// upstream's `SetReplicasAnnotations`.
pub fn set_replicas_annotations(rs: &mut Value, desired: i32, max: i32) -> bool {
    let a = set_annotation(rs, DESIRED_REPLICAS, &desired.to_string());
    let b = set_annotation(rs, MAX_REPLICAS, &max.to_string());
    a || b
}

/// upstream's `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &Value, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// upstream's `SetNewReplicaSetAnnotations`: copy the Deployment's annotations, raise the
/// revision to `new_revision` (recording the old one in the revision history: a rollback),
/// and on creation add the replicas annotations. Whether anything changed.
pub fn set_new_rs_annotations(d: &Value, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
    let mut changed = copy_annotations(d, rs);
    let old = annotation(rs, REVISION).map(str::to_string);
    let old_revision = match old.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_revision < new_revision {
        set_annotation(rs, REVISION, &new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotation(rs, REVISION_HISTORY).unwrap_or("").to_string();
            if history.is_empty() {
                set_annotation(rs, REVISION_HISTORY, &old);
            } else {
                let mut entries: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
                    total -= entries[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REVISION_HISTORY_CHARS {
                    entries = entries.split_off(start);
                    entries.push(&old);
                    set_annotation(rs, REVISION_HISTORY, &entries.join(","));
                }
            }
        }
    }
    if !exists {
        let desired = replicas(d);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge(d));
    }
    changed
}

/// upstream's `getRollbackTo`: the revision of the deprecated rollback annotation.
pub fn rollback_to(d: &Value) -> Option<i64> {
    annotation(d, ROLLBACK_TO)
        .filter(|s| !s.is_empty())?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Which ReplicaSets

/// upstream's `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the
/// Deployment's, ignoring the hash label.
pub fn find_new<'a>(d: &Value, rss: &[&'a Value]) -> Option<&'a Value> {
    let template = d.pointer("/spec/template").unwrap_or(&Value::Null);
    let mut sorted: Vec<&Value> = rss.to_vec();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| {
        equal_ignore_hash(
            rs.pointer("/spec/template").unwrap_or(&Value::Null),
            template,
        )
    })
}

/// The active ReplicaSets (`spec.replicas > 0`).
pub fn active<'a>(rss: impl IntoIterator<Item = &'a Value>) -> Vec<&'a Value> {
    rss.into_iter().filter(|rs| replicas(rs) > 0).collect()
}

/// upstream's `FindActiveOrLatest`: the only active ReplicaSet, or the newest if none is;
/// `None` when several are active (they scale proportionally).
pub fn find_active_or_latest<'a>(new: Option<&'a Value>, old: &[&'a Value]) -> Option<&'a Value> {
    let mut old_sorted = old.to_vec();
    old_sorted.sort_by(|a, b| by_creation(b, a));
    let all: Vec<&Value> = active(old_sorted.iter().copied().chain(new));
    match all.len() {
        0 => new.or_else(|| old_sorted.first().copied()),
        1 => Some(all[0]),
        _ => None,
    }
}

pub fn sum_spec(rss: &[&Value]) -> i32 {
    rss.iter().map(|rs| replicas(rs)).sum()
}

pub fn sum_status(rss: &[&Value], f: fn(&Value) -> i32) -> i32 {
    rss.iter().map(|rs| f(rs)).sum()
}

/// upstream's `GetTerminatingReplicaCountForReplicaSets`: unknown (`None`) when a ReplicaSet
/// its controller has seen does not report the count.
pub fn terminating_replicas(rss: &[&Value]) -> Option<i64> {
    let mut total = 0;
    for rs in rss {
        let count = int_at(rs, "/status/terminatingReplicas");
        if observed_generation(rs) == 0 && count.is_none() {
            continue;
        }
        total += count?;
    }
    Some(total)
}

/// upstream's `IsSaturated`: the new ReplicaSet has, wants and runs all desired replicas.
pub fn is_saturated(d: &Value, rs: Option<&Value>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = annotation(rs, DESIRED_REPLICAS).and_then(|s| s.parse::<i32>().ok()) else {
        return false;
    };
    replicas(rs) == replicas(d) && desired == replicas(d) && available_replicas(rs) == replicas(d)
}

// ---------------------------------------------------------------------------------------------
// How many replicas

/// upstream's `NewRSNewReplicas`: the new ReplicaSet's next size.
pub fn new_rs_new_replicas(d: &Value, all: &[&Value], new: &Value) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let max_total = replicas(d) + max_surge(d);
    let current = sum_spec(all);
    if current >= max_total {
        return replicas(new);
    }
    let up = (max_total - current).min(replicas(d) - replicas(new));
    replicas(new) + up
}

fn max_replicas_annotation(rs: &Value) -> Option<i32> {
    annotation(rs, MAX_REPLICAS).and_then(|s| s.parse().ok())
}

/// upstream's `getReplicaSetFraction`.
fn replica_set_fraction(rs: &Value, d: &Value) -> i32 {
    if replicas(d) == 0 {
        return -replicas(rs);
    }
    let deployment_replicas = replicas(d) + max_surge(d);
    let annotated = max_replicas_annotation(rs)
        .unwrap_or_else(|| i32_at(d, "/status/replicas"))
        .max(1);
    let size = f64::from(replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    // Go's `math.Round`: halves away from zero.
    size.round() as i32 - replicas(rs)
}

/// upstream's `GetProportion`: how many replicas this ReplicaSet gains (or loses) of `to_add`,
/// `added` having been given to others already.
pub fn proportion(rs: &Value, d: &Value, to_add: i32, added: i32) -> i32 {
    if replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// A scaling of one ReplicaSet: its index in the input and its new size.
pub type Scale = (usize, i32);

/// upstream's `scale` for a rolling Deployment whose size changed mid-rollout: the active
/// ReplicaSets grow or shrink in proportion to their size, the leftover to the largest.
/// Returns the sizes (unchanged ones included) and "up" or "down".
pub fn proportional_scale(d: &Value, active: &[&Value]) -> (Vec<Scale>, &'static str) {
    let total = sum_spec(active);
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - total;
    let mut order: Vec<usize> = (0..active.len()).collect();
    let operation = match to_add.cmp(&0) {
        Ordering::Greater => {
            order.sort_by(|&a, &b| by_size_newer(active[a], active[b]));
            "up"
        }
        Ordering::Less => {
            order.sort_by(|&a, &b| by_size_older(active[a], active[b]));
            "down"
        }
        Ordering::Equal => "",
    };
    let mut added = 0;
    let mut sizes: Vec<Scale> = Vec::with_capacity(order.len());
    for &i in &order {
        let rs = active[i];
        if to_add != 0 {
            let p = proportion(rs, d, to_add, added);
            sizes.push((i, replicas(rs) + p));
            added += p;
        } else {
            sizes.push((i, replicas(rs)));
        }
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    (sizes, operation)
}

/// upstream's `cleanupUnhealthyReplicas`: scale down the old ReplicaSets' unavailable
/// replicas first (oldest ReplicaSet first), at most `max` of them.
pub fn cleanup_unhealthy(old: &[&Value], max: i32) -> Vec<Scale> {
    let mut order: Vec<usize> = (0..old.len()).collect();
    order.sort_by(|&a, &b| by_creation(old[a], old[b]));
    let mut total = 0;
    let mut out = Vec::new();
    for i in order {
        if total >= max {
            break;
        }
        let rs = old[i];
        let (spec, available) = (replicas(rs), available_replicas(rs));
        if spec == 0 || spec == available {
            continue;
        }
        let down = (max - total).min(spec - available).max(0);
        if down == 0 {
            continue;
        }
        out.push((i, spec - down));
        total += down;
    }
    out
}

/// upstream's `scaleDownOldReplicaSetsForRollingUpdate`: with `available` replicas available
/// in all, scale old ReplicaSets down (oldest first) as far as maxUnavailable allows.
pub fn scale_down_old_for_rolling(d: &Value, old: &[&Value], available: i32) -> Vec<Scale> {
    let min = replicas(d) - max_unavailable(d);
    if available <= min {
        return Vec::new();
    }
    let wanted = available - min;
    let mut order: Vec<usize> = (0..old.len()).collect();
    order.sort_by(|&a, &b| by_creation(old[a], old[b]));
    let mut total = 0;
    let mut out = Vec::new();
    for i in order {
        if total >= wanted {
            break;
        }
        let spec = replicas(old[i]);
        if spec == 0 {
            continue;
        }
        let down = spec.min(wanted - total);
        out.push((i, spec - down));
        total += down;
    }
    out
}

/// upstream's `reconcileOldReplicaSets` bound: how many old replicas may go at most, given the
/// new ReplicaSet's unavailable ones.
pub fn max_scaled_down(d: &Value, all: &[&Value], new: &Value) -> i32 {
    let min = replicas(d) - max_unavailable(d);
    let new_unavailable = replicas(new) - available_replicas(new);
    sum_spec(all) - min - new_unavailable
}

/// Old ReplicaSets that revisionHistoryLimit lets go (upstream's `cleanupDeployment`): the
/// oldest revisions beyond the limit that are scaled to zero, fully observed and not already
/// being deleted.
pub fn to_clean_up<'a>(d: &Value, old: &[&'a Value]) -> Vec<&'a Value> {
    let Some(limit) = revision_history_limit(d) else {
        return Vec::new();
    };
    let mut alive: Vec<&Value> = old.iter().copied().filter(|rs| !deleting(rs)).collect();
    if alive.len() <= limit {
        return Vec::new();
    }
    let diff = alive.len() - limit;
    alive.sort_by(|a, b| by_revision(a, b));
    alive
        .into_iter()
        .take(diff)
        .filter(|rs| {
            status_replicas(rs) == 0
                && replicas(rs) == 0
                && generation(rs) <= observed_generation(rs)
                && !deleting(rs)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Conditions and status

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// upstream's `NewDeploymentCondition`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: OffsetDateTime,
) -> Value {
    let now = rfc3339(now);
    json!({
        "type": type_,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

pub fn get_condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| str_at(c, "/type") == type_)
}

/// upstream's `RemoveDeploymentCondition`.
pub fn remove_condition(status: &mut Value, type_: &str) {
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        conditions.retain(|c| str_at(c, "/type") != type_);
        if conditions.is_empty() {
            status.as_object_mut().map(|s| s.remove("conditions"));
        }
    }
}

/// upstream's `SetDeploymentCondition`: nothing if a condition of that type has the same
/// status and reason; the transition time kept if only the reason changes; the condition goes
/// last.
pub fn set_condition(status: &mut Value, mut condition: Value) {
    let type_ = str_at(&condition, "/type").to_string();
    if let Some(current) = get_condition(status, &type_) {
        if str_at(current, "/status") == str_at(&condition, "/status")
            && str_at(current, "/reason") == str_at(&condition, "/reason")
        {
            return;
        }
        if str_at(current, "/status") == str_at(&condition, "/status") {
            condition["lastTransitionTime"] = current["lastTransitionTime"].clone();
        }
    }
    remove_condition(status, &type_);
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    if let Some(conditions) = status["conditions"].as_array_mut() {
        conditions.push(condition);
    }
}

/// upstream's `calculateStatus`: counts from the ReplicaSets, the conditions carried over and
/// `Available` set from minimum availability. Zero counts are left out, as Go's `omitempty`.
pub fn calculate_status(
    d: &Value,
    all: &[&Value],
    new: Option<&Value>,
    now: OffsetDateTime,
) -> Value {
    let available = sum_status(all, available_replicas);
    let unavailable = (sum_spec(all) - available).max(0);
    let mut status = Map::new();
    let mut put = |key: &str, n: i64| {
        if n != 0 {
            status.insert(key.to_string(), json!(n));
        }
    };
    put("observedGeneration", generation(d));
    put("replicas", i64::from(sum_status(all, status_replicas)));
    put(
        "updatedReplicas",
        i64::from(new.map(status_replicas).unwrap_or(0)),
    );
    put("readyReplicas", i64::from(sum_status(all, ready_replicas)));
    put("availableReplicas", i64::from(available));
    put("unavailableReplicas", i64::from(unavailable));
    if let Some(t) = terminating_replicas(all) {
        status.insert("terminatingReplicas".into(), json!(t));
    }
    if let Some(conditions) = d.pointer("/status/conditions").filter(|c| c.is_array()) {
        status.insert("conditions".into(), conditions.clone());
    }
    if let Some(count) = d.pointer("/status/collisionCount").filter(|c| !c.is_null()) {
        status.insert("collisionCount".into(), count.clone());
    }
    let mut status = Value::Object(status);
    let condition = if available >= replicas(d) - max_unavailable(d) {
        self::condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        self::condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

fn status_int(status: &Value, key: &str) -> i64 {
    int_at(status, &format!("/{key}")).unwrap_or(0)
}

/// upstream's `DeploymentComplete`.
pub fn deployment_complete(d: &Value, status: &Value) -> bool {
    let want = i64::from(replicas(d));
    status_int(status, "updatedReplicas") == want
        && status_int(status, "replicas") == want
        && status_int(status, "availableReplicas") == want
        && status_int(status, "observedGeneration") >= generation(d)
}

/// upstream's `DeploymentProgressing`: more updated, ready or available replicas, or fewer
/// old ones, than the Deployment's current status says.
pub fn deployment_progressing(d: &Value, status: &Value) -> bool {
    let old = d.get("status").unwrap_or(&Value::Null);
    let old_old = status_int(old, "replicas") - status_int(old, "updatedReplicas");
    let new_old = status_int(status, "replicas") - status_int(status, "updatedReplicas");
    status_int(status, "updatedReplicas") > status_int(old, "updatedReplicas")
        || new_old < old_old
        || status_int(status, "readyReplicas") > status_int(old, "readyReplicas")
        || status_int(status, "availableReplicas") > status_int(old, "availableReplicas")
}

fn last_update(condition: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(str_at(condition, "/lastUpdateTime"), &Rfc3339).ok()
}

/// upstream's `DeploymentTimedOut`: the Progressing condition last moved more than
/// progressDeadlineSeconds ago (or says so already).
pub fn deployment_timed_out(d: &Value, status: &Value, now: OffsetDateTime) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(condition) = get_condition(status, PROGRESSING) else {
        return false;
    };
    match str_at(condition, "/reason") {
        NEW_RS_AVAILABLE => false,
        TIMED_OUT => true,
        _ => {
            let deadline = int_at(d, "/spec/progressDeadlineSeconds").unwrap_or(0);
            last_update(condition)
                .is_some_and(|from| from + time::Duration::seconds(deadline) < now)
        }
    }
}

/// upstream's `syncRolloutStatus` minus the write: the status with its Progressing condition
/// brought up to date and ReplicaSet failures carried over.
pub fn rollout_status(
    d: &Value,
    all: &[&Value],
    new: Option<&Value>,
    now: OffsetDateTime,
) -> Value {
    let mut status = calculate_status(d, all, new, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, PROGRESSING);
    }
    let empty = json!({});
    let current = get_condition(d.get("status").unwrap_or(&empty), PROGRESSING).cloned();
    let complete_before = status_int(&status, "replicas") == status_int(&status, "updatedReplicas")
        && current
            .as_ref()
            .is_some_and(|c| str_at(c, "/reason") == NEW_RS_AVAILABLE);
    if has_progress_deadline(d) && !complete_before {
        let subject = |what: &str| match new {
            Some(rs) => format!("ReplicaSet {:?} {what}", name(rs)),
            None => format!("Deployment {:?} {what}", name(d)),
        };
        if deployment_complete(d, &status) {
            let message = subject("has successfully progressed.");
            set_condition(
                &mut status,
                condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &message, now),
            );
        } else if deployment_progressing(d, &status) {
            let message = subject("is progressing.");
            let mut c = condition(PROGRESSING, "True", REPLICA_SET_UPDATED, &message, now);
            if let Some(current) = &current {
                if str_at(current, "/status") == "True" {
                    c["lastTransitionTime"] = current["lastTransitionTime"].clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, c);
        } else if deployment_timed_out(d, &status, now) {
            let message = subject("has timed out progressing.");
            set_condition(
                &mut status,
                condition(PROGRESSING, "False", TIMED_OUT, &message, now),
            );
        }
    }
    match replica_failure(all, new) {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// upstream's `getReplicaFailures`: the new ReplicaSet's ReplicaFailure condition, else an
/// old one's, as a Deployment condition.
fn replica_failure(all: &[&Value], new: Option<&Value>) -> Option<Value> {
    let failure = |rs: &Value| {
        rs.pointer("/status/conditions")
            .and_then(Value::as_array)?
            .iter()
            .find(|c| str_at(c, "/type") == REPLICA_FAILURE)
            .map(|c| {
                json!({
                    "type": REPLICA_FAILURE,
                    "status": c["status"],
                    "lastUpdateTime": c["lastTransitionTime"],
                    "lastTransitionTime": c["lastTransitionTime"],
                    "reason": c["reason"],
                    "message": c["message"],
                })
            })
    };
    new.and_then(failure)
        .or_else(|| all.iter().find_map(|rs| failure(rs)))
}

/// upstream's `requeueStuckDeployment`: when to look again for a deadline that may pass with
/// no event to announce it; `None` when nothing is pending.
pub fn requeue_stuck(
    d: &Value,
    status: &Value,
    now: OffsetDateTime,
) -> Option<std::time::Duration> {
    let empty = json!({});
    let current = get_condition(d.get("status").unwrap_or(&empty), PROGRESSING)?;
    if !has_progress_deadline(d)
        || deployment_complete(d, status)
        || str_at(current, "/reason") == TIMED_OUT
    {
        return None;
    }
    let deadline = int_at(d, "/spec/progressDeadlineSeconds").unwrap_or(0);
    let due = last_update(current)? + time::Duration::seconds(deadline);
    let after = due - now;
    if after < time::Duration::SECOND {
        return Some(std::time::Duration::from_secs(1));
    }
    Some(std::time::Duration::from_secs(
        after.whole_seconds() as u64 + 1,
    ))
}

/// upstream's `checkPausedConditions` minus the write: the Progressing condition a pause or a
/// resume sets, if it changes.
pub fn paused_condition(d: &Value, now: OffsetDateTime) -> Option<Value> {
    if !has_progress_deadline(d) {
        return None;
    }
    let empty = json!({});
    let current = get_condition(d.get("status").unwrap_or(&empty), PROGRESSING);
    if current.is_some_and(|c| str_at(c, "/reason") == TIMED_OUT) {
        return None;
    }
    let paused_before = current.is_some_and(|c| str_at(c, "/reason") == PAUSED);
    if paused(d) && !paused_before {
        Some(condition(
            PROGRESSING,
            "Unknown",
            PAUSED,
            "Deployment is paused",
            now,
        ))
    } else if !paused(d) && paused_before {
        Some(condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed",
            now,
        ))
    } else {
        None
    }
}
