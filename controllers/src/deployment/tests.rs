//! Unit tests of the Deployment controller's decisions: the hash, fenceposts, which ReplicaSet is new, rolling and proportional sizes, revisions, rollback, cleanup, status and conditions.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::util::*;

fn at(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(t, &Rfc3339).unwrap()
}

fn now() -> OffsetDateTime {
    at("2026-01-01T12:00:00Z")
}

fn template(image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]},
    })
}

/// A Deployment of `replicas` with these fenceposts (`null` for Recreate).
fn deployment(replicas: i32, surge: Value, unavailable: Value) -> Value {
    let strategy = if surge.is_null() && unavailable.is_null() {
        json!({"type": "Recreate"})
    } else {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    };
    json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template("nginx:1"),
            "strategy": strategy,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    })
}

/// A ReplicaSet created `second` seconds into the test day, of `replicas` with `available`
/// of them available.
fn rs(name: &str, second: u32, replicas: i32, available: i32) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": format!("{name}-uid"),
            "creationTimestamp": format!("2026-01-01T00:00:{second:02}Z"),
            "annotations": {},
            "generation": 1,
        },
        "spec": {"replicas": replicas, "template": template(name)},
        "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available, "observedGeneration": 1},
    })
}

fn with_annotation(mut v: Value, key: &str, value: &str) -> Value {
    set_annotation(&mut v, key, value);
    v
}

// ---------------------------------------------------------------------------------------------
// The hash

#[test]
fn hash_golden_values_never_change() {
    // These names are in every cluster that ran k1s: a change renames every ReplicaSet.
    // (FNV-1a of `{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":
    // "nginx:1.27","name":"web"}]}}` is 2748304581, each digit mapped onto the alphabet.)
    assert_eq!(compute_hash(&template("nginx:1.27"), None), "6c8d7489d5");
    assert_eq!(compute_hash(&template("nginx:1.27"), Some(1)), "d898ff9b");
    assert_eq!(compute_hash(&json!({}), None), "5859f96865");
}

#[test]
fn hash_uses_upstreams_alphabet_and_ignores_key_order_and_nulls() {
    let a = compute_hash(&template("nginx"), None);
    assert!(
        a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{a}"
    );
    let reordered = json!({
        "spec": {"containers": [{"image": "nginx", "name": "web"}]},
        "metadata": {"creationTimestamp": null, "labels": {"app": "web"}, "annotations": {}},
    });
    assert_eq!(compute_hash(&reordered, None), a);
    assert_ne!(compute_hash(&template("nginx:2"), None), a);
    // The collision count gives another name.
    assert_ne!(compute_hash(&template("nginx"), Some(0)), a);
    assert_ne!(
        compute_hash(&template("nginx"), Some(1)),
        compute_hash(&template("nginx"), Some(2))
    );
}

#[test]
fn templates_compare_ignoring_the_hash_label() {
    let mut with_hash = template("nginx");
    with_hash["metadata"]["labels"][HASH_LABEL] = json!("5d4f8b7c9");
    assert!(equal_ignore_hash(&with_hash, &template("nginx")));
    assert!(!equal_ignore_hash(&with_hash, &template("nginx:2")));
    // Absent and empty lists and maps are the same, as in Go; an empty emptyDir is not absent.
    let mut empty_lists = template("nginx");
    empty_lists["spec"]["volumes"] = json!([]);
    empty_lists["metadata"]["annotations"] = json!({});
    assert!(equal_ignore_hash(&empty_lists, &template("nginx")));
    let mut volume = template("nginx");
    volume["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
    let mut other = template("nginx");
    other["spec"]["volumes"] = json!([{"name": "v"}]);
    assert!(!equal_ignore_hash(&volume, &other));
}

// ---------------------------------------------------------------------------------------------
// Fenceposts

#[test]
fn int_or_percent_rounds_as_upstream() {
    let check = |v: Value, total, up| int_or_percent(Some(&v), total, up);
    assert_eq!(check(json!(3), 10, true), Ok(3));
    assert_eq!(check(json!("25%"), 10, true), Ok(3));
    assert_eq!(check(json!("25%"), 10, false), Ok(2));
    assert_eq!(check(json!("100%"), 7, false), Ok(7));
    assert_eq!(check(json!("0%"), 7, true), Ok(0));
    assert_eq!(int_or_percent(None, 7, true), Ok(0));
    assert!(check(json!("25"), 10, true).is_err());
    assert!(check(json!("x%"), 10, true).is_err());
}

#[test]
fn fenceposts_resolve_together() {
    let check = |surge: Value, unavailable: Value, desired| {
        resolve_fenceposts(Some(&surge), Some(&unavailable), desired)
    };
    assert_eq!(check(json!("0%"), json!("0%"), 0), Ok((0, 1)));
    assert_eq!(check(json!("39%"), json!("39%"), 10), Ok((4, 3)));
    assert_eq!(check(json!("25%"), json!("25%"), 3), Ok((1, 0)));
    assert_eq!(check(json!("0%"), json!("1%"), 2), Ok((0, 1)));
    assert_eq!(check(json!(5), json!("50%"), 10), Ok((5, 5)));
    assert_eq!(check(json!(0), json!(0), 10), Ok((0, 1)));
    assert!(check(json!("oops"), json!(1), 10).is_err());
    assert!(check(json!("55%"), json!("urg"), 10).is_err());
}

#[test]
fn max_surge_and_unavailable_of_a_deployment() {
    let d = deployment(10, json!("25%"), json!("25%"));
    assert_eq!(
        (max_surge(&d), max_unavailable(&d), min_available(&d)),
        (3, 2, 8)
    );
    // maxUnavailable never exceeds the replicas; nothing is unavailable of zero.
    let d = deployment(2, json!(0), json!(5));
    assert_eq!(max_unavailable(&d), 2);
    let d = deployment(0, json!(1), json!(1));
    assert_eq!(max_unavailable(&d), 0);
    // Recreate has no fenceposts.
    let d = deployment(3, Value::Null, Value::Null);
    assert_eq!(
        (max_surge(&d), max_unavailable(&d), min_available(&d)),
        (0, 0, 0)
    );
}

// ---------------------------------------------------------------------------------------------
// Which ReplicaSets

#[test]
fn new_replica_set_is_the_oldest_with_the_template() {
    let mut d = deployment(3, json!(1), json!(1));
    let mut a = rs("a", 1, 0, 0);
    let mut b = rs("b", 2, 0, 0);
    let c = rs("c", 3, 0, 0);
    a["spec"]["template"] = template("nginx:1");
    b["spec"]["template"] = template("nginx:1");
    b["spec"]["template"]["metadata"]["labels"][HASH_LABEL] = json!("xyz");
    assert_eq!(find_new(&d, &[&c, &b, &a]).map(name), Some("a"));
    d["spec"]["template"] = template("c");
    assert_eq!(find_new(&d, &[&a, &b, &c]).map(name), Some("c"));
    d["spec"]["template"] = template("nginx:9");
    assert_eq!(find_new(&d, &[&a, &b, &c]), None);
}

#[test]
fn active_or_latest() {
    let (a, b, c) = (rs("a", 1, 0, 0), rs("b", 2, 3, 3), rs("c", 3, 0, 0));
    assert_eq!(
        find_active_or_latest(Some(&c), &[&a, &b]).map(name),
        Some("b")
    );
    assert_eq!(find_active_or_latest(Some(&c), &[&a]).map(name), Some("c"));
    assert_eq!(find_active_or_latest(None, &[&a, &c]).map(name), Some("c"));
    let d = rs("d", 4, 1, 1);
    assert_eq!(find_active_or_latest(Some(&d), &[&a, &b]), None);
    assert_eq!(find_active_or_latest(None, &[]), None);
}

// ---------------------------------------------------------------------------------------------
// Sizes

#[test]
fn new_replica_set_size_while_rolling() {
    // 3 replicas, surge 1: old 3 + new 0 → the new one may have 1.
    let d = deployment(3, json!(1), json!(0));
    let (old, new) = (rs("old", 1, 3, 3), rs("new", 2, 0, 0));
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 1);
    // At the ceiling: no more.
    let (old, new) = (rs("old", 1, 3, 3), rs("new", 2, 1, 0));
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 1);
    // Never beyond the desired replicas.
    let d = deployment(3, json!(10), json!(0));
    let (old, new) = (rs("old", 1, 1, 1), rs("new", 2, 2, 0));
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
    // Recreate: all at once.
    let d = deployment(5, Value::Null, Value::Null);
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 5);
}

/// One rolling step with the planners, as `rolloutRolling` takes it; `(new, old)` sizes.
fn rolling_step(d: &Value, new: &mut Value, old: &mut Value) {
    if replicas(new) != replicas(d) {
        let size = new_rs_new_replicas(d, &[&*old, &*new], new);
        if size != replicas(new) {
            set_replicas(new, size);
            return;
        }
    }
    if replicas(old) == 0 {
        return;
    }
    let bound = max_scaled_down(d, &[&*old, &*new], new);
    if bound <= 0 {
        return;
    }
    if let Some(&(_, size)) = cleanup_unhealthy(&[&*old], bound).first() {
        set_replicas(old, size);
    }
    let available = available_replicas(old) + available_replicas(new);
    if let Some(&(_, size)) = scale_down_old_for_rolling(d, &[&*old], available).first() {
        set_replicas(old, size);
    }
}

/// The ReplicaSet controller's part: pods made or removed, all of them available at once.
fn settle(rs: &mut Value) {
    let n = replicas(rs);
    rs["status"] =
        json!({"replicas": n, "readyReplicas": n, "availableReplicas": n, "observedGeneration": 1});
}

#[test]
fn rolling_update_keeps_within_surge_and_unavailability() {
    for (replicas_, surge, unavailable) in [
        (3, json!("25%"), json!("25%")),
        (10, json!("25%"), json!("25%")),
        (4, json!(0), json!(1)),
        (5, json!(2), json!(0)),
        (1, json!("0%"), json!("1%")),
    ] {
        let d = deployment(replicas_, surge.clone(), unavailable.clone());
        let (max_total, min_up) = (replicas_ + max_surge(&d), replicas_ - max_unavailable(&d));
        let mut old = rs("old", 1, replicas_, replicas_);
        let mut new = rs("new", 2, 0, 0);
        let mut steps = 0;
        while replicas(&new) != replicas_ || replicas(&old) != 0 || available_replicas(&old) != 0 {
            let before = (replicas(&new), replicas(&old));
            rolling_step(&d, &mut new, &mut old);
            assert!(
                replicas(&new) + replicas(&old) <= max_total,
                "{surge} {unavailable}: surge exceeded"
            );
            // Scaling down takes available pods away at once; new ones come up later.
            let available = available_replicas(&new) + available_replicas(&old).min(replicas(&old));
            assert!(
                available >= min_up,
                "{surge} {unavailable}: too few available ({available})"
            );
            assert_ne!(before, (replicas(&new), replicas(&old)), "no progress");
            settle(&mut new);
            settle(&mut old);
            steps += 1;
            assert!(steps < 50, "the rollout never ends");
        }
    }
}

#[test]
fn unhealthy_old_replicas_go_first() {
    let (o1, o2) = (rs("o1", 1, 3, 1), rs("o2", 2, 2, 2));
    assert_eq!(cleanup_unhealthy(&[&o2, &o1], 3), vec![(1, 1)]);
    assert_eq!(cleanup_unhealthy(&[&o2, &o1], 1), vec![(1, 2)]);
    assert_eq!(cleanup_unhealthy(&[&o2], 3), vec![]);
}

#[test]
fn old_replica_sets_scale_down_oldest_first() {
    let d = deployment(3, json!(1), json!(1));
    let (o1, o2) = (rs("o1", 1, 2, 2), rs("o2", 2, 3, 3));
    // 4 available, 2 must stay: 2 may go, all from the oldest.
    assert_eq!(scale_down_old_for_rolling(&d, &[&o2, &o1], 4), vec![(1, 0)]);
    assert_eq!(
        scale_down_old_for_rolling(&d, &[&o2, &o1], 5),
        vec![(1, 0), (0, 2)]
    );
    assert_eq!(scale_down_old_for_rolling(&d, &[&o2, &o1], 2), vec![]);
}

#[test]
fn proportional_scaling_up_and_down() {
    let ann = |v: Value, max: &str| with_annotation(v, MAX_REPLICAS, max);
    // 5 → 10 mid-rollout (no surge): old 3 and new 2 grow to 6 and 4.
    let d = deployment(10, json!(0), json!(1));
    let (old, new) = (ann(rs("old", 1, 3, 3), "5"), ann(rs("new", 2, 2, 2), "5"));
    let (sizes, op) = proportional_scale(&d, &[&old, &new]);
    assert_eq!((sizes, op), (vec![(0, 6), (1, 4)], "up"));
    // 10 → 5: old 6 and new 4 shrink to 3 and 2.
    let d = deployment(5, json!(0), json!(1));
    let (old, new) = (ann(rs("old", 1, 6, 6), "10"), ann(rs("new", 2, 4, 4), "10"));
    let (sizes, op) = proportional_scale(&d, &[&old, &new]);
    assert_eq!((sizes, op), (vec![(0, 3), (1, 2)], "down"));
    // 5 → 6 over 2, 2, 1: nobody's share rounds to a whole replica; the leftover goes to the
    // largest (newest of equals).
    let d = deployment(6, json!(0), json!(1));
    let (a, b, c) = (
        ann(rs("a", 1, 2, 2), "5"),
        ann(rs("b", 2, 2, 2), "5"),
        ann(rs("c", 3, 1, 1), "5"),
    );
    let (sizes, _) = proportional_scale(&d, &[&a, &b, &c]);
    assert_eq!(sizes, vec![(1, 3), (0, 2), (2, 1)]);
    // Surge counts: 5 (+1 surge) → 7 (+1 surge, 8) over 4 and 2.
    let d = deployment(7, json!(1), json!(0));
    let (old, new) = (ann(rs("old", 1, 4, 4), "6"), ann(rs("new", 2, 2, 2), "6"));
    let (sizes, _) = proportional_scale(&d, &[&old, &new]);
    assert_eq!(sizes, vec![(0, 5), (1, 3)]);
    // To zero: everything goes.
    let d = deployment(0, json!(1), json!(0));
    let (sizes, op) = proportional_scale(&d, &[&old, &new]);
    assert_eq!((sizes, op), (vec![(0, 0), (1, 0)], "down"));
}

#[test]
fn saturation_needs_size_annotation_and_availability() {
    let d = deployment(3, json!(1), json!(1));
    let new = with_annotation(rs("new", 1, 3, 3), DESIRED_REPLICAS, "3");
    assert!(is_saturated(&d, Some(&new)));
    assert!(!is_saturated(&d, Some(&rs("new", 1, 3, 3))));
    assert!(!is_saturated(
        &d,
        Some(&with_annotation(rs("new", 1, 3, 2), DESIRED_REPLICAS, "3"))
    ));
    assert!(!is_saturated(&d, None));
}

// ---------------------------------------------------------------------------------------------
// Revisions

#[test]
fn revisions() {
    let r = |name, n: &str| with_annotation(rs(name, 1, 0, 0), REVISION, n);
    let (a, b, c, bad) = (r("a", "1"), r("b", "3"), r("c", "2"), r("x", "x"));
    assert_eq!(max_revision(&[&a, &b, &c, &bad]), 3);
    assert_eq!(last_revision(&[&a, &b, &c, &bad]), 2);
    assert_eq!(max_revision(&[]), 0);
    assert_eq!(revision(&rs("none", 1, 0, 0)), Ok(0));
    assert!(revision(&bad).is_err());
}

#[test]
fn new_replica_set_annotations() {
    let mut d = deployment(3, json!(1), json!(1));
    set_annotation(&mut d, "team", "blue");
    set_annotation(&mut d, REVISION, "7");
    set_annotation(
        &mut d,
        "kubectl.kubernetes.io/last-applied-configuration",
        "{}",
    );
    let mut new = rs("new", 1, 0, 0);
    assert!(set_new_rs_annotations(&d, &mut new, 1, false));
    assert_eq!(
        new["metadata"]["annotations"],
        json!({"team": "blue", REVISION: "1", DESIRED_REPLICAS: "3", MAX_REPLICAS: "4"})
    );
    assert!(!set_new_rs_annotations(&d, &mut new, 1, true));
    // A rollback: revision 1 becomes 3, the history keeps 1.
    assert!(set_new_rs_annotations(&d, &mut new, 3, true));
    assert_eq!(annotation(&new, REVISION), Some("3"));
    assert_eq!(annotation(&new, REVISION_HISTORY), Some("1"));
    assert!(set_new_rs_annotations(&d, &mut new, 5, true));
    assert_eq!(annotation(&new, REVISION_HISTORY), Some("1,3"));
    // A lower revision never replaces a higher one.
    assert!(!set_new_rs_annotations(&d, &mut new, 4, true));
    assert_eq!(annotation(&new, REVISION), Some("5"));
}

#[test]
fn rollback_takes_the_replica_sets_annotations() {
    let mut d = deployment(3, json!(1), json!(1));
    set_annotation(&mut d, REVISION, "2");
    set_annotation(&mut d, "kubernetes.io/change-cause", "v2");
    set_annotation(&mut d, ROLLBACK_TO, "1");
    let mut old = rs("old", 1, 0, 0);
    set_annotation(&mut old, REVISION, "1");
    set_annotation(&mut old, DESIRED_REPLICAS, "3");
    set_annotation(&mut old, "kubernetes.io/change-cause", "v1");
    assert_eq!(rollback_to(&d), Some(1));
    set_deployment_annotations_to(&mut d, &old);
    assert_eq!(
        d["metadata"]["annotations"],
        json!({REVISION: "2", ROLLBACK_TO: "1", "kubernetes.io/change-cause": "v1"})
    );
    let mut rs_template = template("nginx:0");
    rs_template["metadata"]["labels"][HASH_LABEL] = json!("abc");
    assert_eq!(
        template_without_hash_label(&rs_template),
        template("nginx:0")
    );
}

#[test]
fn history_limit_cleans_oldest_idle_revisions() {
    let mut d = deployment(3, json!(1), json!(1));
    d["spec"]["revisionHistoryLimit"] = json!(1);
    let r = |name, second, n: &str, replicas| {
        with_annotation(rs(name, second, replicas, 0), REVISION, n)
    };
    let (a, b, c) = (r("a", 3, "1", 0), r("b", 1, "2", 0), r("c", 2, "3", 0));
    let names = |v: Vec<&Value>| {
        v.into_iter()
            .map(name)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(to_clean_up(&d, &[&c, &b, &a])), ["a", "b"]);
    // Still running, or not yet observed: kept.
    let busy = r("b", 1, "2", 1);
    assert_eq!(names(to_clean_up(&d, &[&c, &busy, &a])), ["a"]);
    let mut unobserved = a.clone();
    unobserved["metadata"]["generation"] = json!(2);
    assert_eq!(names(to_clean_up(&d, &[&c, &b, &unobserved])), ["b"]);
    d["spec"]["revisionHistoryLimit"] = json!(i32::MAX);
    assert!(to_clean_up(&d, &[&c, &b, &a]).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Status and conditions

#[test]
fn status_counts_from_the_replica_sets() {
    let d = deployment(3, json!(1), json!(1));
    let (old, new) = (rs("old", 1, 2, 2), rs("new", 2, 2, 1));
    let status = calculate_status(&d, &[&old, &new], Some(&new), now());
    assert_eq!(
        status,
        json!({
            "observedGeneration": 1,
            "replicas": 4,
            "updatedReplicas": 2,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "unavailableReplicas": 1,
            "conditions": [{
                "type": "Available", "status": "True",
                "lastUpdateTime": "2026-01-01T12:00:00Z", "lastTransitionTime": "2026-01-01T12:00:00Z",
                "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
            }],
        })
    );
    let status = calculate_status(&d, &[&rs("new", 2, 3, 1)], None, now());
    let available = get_condition(&status, AVAILABLE).unwrap();
    assert_eq!(
        (available["status"].as_str(), available["reason"].as_str()),
        (Some("False"), Some("MinimumReplicasUnavailable"))
    );
}

#[test]
fn terminating_replicas_are_unknown_when_a_replica_set_does_not_say() {
    let mut a = rs("a", 1, 1, 1);
    let mut b = rs("b", 2, 1, 1);
    a["status"]["terminatingReplicas"] = json!(2);
    assert_eq!(terminating_replicas(&[&a, &b]), None);
    b["status"]["terminatingReplicas"] = json!(1);
    assert_eq!(terminating_replicas(&[&a, &b]), Some(3));
    // The ReplicaSet controller of this version does not report them: unknown, left out.
    let d = deployment(1, json!(1), json!(0));
    assert!(
        calculate_status(&d, &[&rs("a", 1, 1, 1)], None, now())
            .get("terminatingReplicas")
            .is_none()
    );
    // Never observed by its controller: not counted.
    let fresh =
        json!({"metadata": {"name": "c"}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
    assert_eq!(terminating_replicas(&[&a, &b, &fresh]), Some(3));
}

#[test]
fn set_condition_keeps_transition_time_for_same_status() {
    let mut status = json!({});
    let earlier = at("2026-01-01T11:00:00Z");
    set_condition(
        &mut status,
        condition(PROGRESSING, "True", NEW_REPLICA_SET, "created", earlier),
    );
    // Same status and reason: nothing changes, not even the message.
    set_condition(
        &mut status,
        condition(PROGRESSING, "True", NEW_REPLICA_SET, "other", now()),
    );
    assert_eq!(status["conditions"][0]["message"], "created");
    set_condition(
        &mut status,
        condition(PROGRESSING, "True", REPLICA_SET_UPDATED, "progress", now()),
    );
    let c = &status["conditions"][0];
    assert_eq!(
        (
            c["reason"].as_str(),
            c["lastTransitionTime"].as_str(),
            c["lastUpdateTime"].as_str()
        ),
        (
            Some("ReplicaSetUpdated"),
            Some("2026-01-01T11:00:00Z"),
            Some("2026-01-01T12:00:00Z")
        )
    );
    set_condition(
        &mut status,
        condition(PROGRESSING, "False", TIMED_OUT, "late", now()),
    );
    assert_eq!(
        status["conditions"][0]["lastTransitionTime"],
        "2026-01-01T12:00:00Z"
    );
    remove_condition(&mut status, PROGRESSING);
    assert_eq!(status, json!({}));
}

fn progressing(d: &Value) -> (String, String, String) {
    let c = get_condition(d.get("status").unwrap(), PROGRESSING).expect("a Progressing condition");
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
        c["message"].as_str().unwrap().into(),
    )
}

#[test]
fn rollout_progress_complete_and_deadline() {
    let mut d = deployment(3, json!(1), json!(1));
    d["spec"]["progressDeadlineSeconds"] = json!(60);
    let started = at("2026-01-01T11:59:30Z");
    set_condition(
        &mut d["status"],
        condition(
            PROGRESSING,
            "True",
            NEW_REPLICA_SET,
            "Created new replica set \"web-1\"",
            started,
        ),
    );
    // New replicas come up: progressing.
    let (old, new) = (rs("old", 1, 3, 3), rs("web-1", 2, 1, 0));
    d["status"] = rollout_status(&d, &[&old, &new], Some(&new), now());
    assert_eq!(
        progressing(&d),
        (
            "True".into(),
            "ReplicaSetUpdated".into(),
            "ReplicaSet \"web-1\" is progressing.".into()
        )
    );
    // Nothing moves for longer than the deadline: timed out.
    let later = now() + time::Duration::seconds(61);
    assert_eq!(
        requeue_stuck(&d, &d["status"], now()),
        Some(std::time::Duration::from_secs(61))
    );
    d["status"] = rollout_status(&d, &[&old, &new], Some(&new), later);
    assert_eq!(
        progressing(&d),
        (
            "False".into(),
            "ProgressDeadlineExceeded".into(),
            "ReplicaSet \"web-1\" has timed out progressing.".into()
        )
    );
    assert_eq!(requeue_stuck(&d, &d["status"], later), None);
    // All updated and available: complete.
    let new = rs("web-1", 2, 3, 3);
    d["status"] = rollout_status(&d, &[&new], Some(&new), later);
    assert_eq!(
        progressing(&d),
        (
            "True".into(),
            "NewReplicaSetAvailable".into(),
            "ReplicaSet \"web-1\" has successfully progressed.".into()
        )
    );
    assert!(deployment_complete(&d, &d["status"]));
    assert_eq!(requeue_stuck(&d, &d["status"], later), None);
}

#[test]
fn no_deadline_no_progressing_condition() {
    let mut d = deployment(1, json!(1), json!(0));
    d["spec"]["progressDeadlineSeconds"] = json!(i32::MAX);
    set_condition(
        &mut d["status"],
        condition(PROGRESSING, "True", NEW_REPLICA_SET, "x", now()),
    );
    let new = rs("new", 1, 1, 1);
    let status = rollout_status(&d, &[&new], Some(&new), now());
    assert!(get_condition(&status, PROGRESSING).is_none());
    assert!(paused_condition(&d, now()).is_none());
}

#[test]
fn replica_failures_become_deployment_conditions() {
    let d = deployment(1, json!(1), json!(0));
    let mut new = rs("new", 1, 1, 0);
    new["status"]["conditions"] = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota", "lastTransitionTime": "2026-01-01T10:00:00Z"}]);
    let status = rollout_status(&d, &[&new], Some(&new), now());
    let failure = get_condition(&status, REPLICA_FAILURE).unwrap();
    assert_eq!(failure["reason"], "FailedCreate");
    assert_eq!(failure["lastUpdateTime"], "2026-01-01T10:00:00Z");
}

#[test]
fn pause_and_resume_conditions() {
    let mut d = deployment(1, json!(1), json!(0));
    d["spec"]["paused"] = json!(true);
    let c = paused_condition(&d, now()).unwrap();
    assert_eq!(
        (
            c["status"].as_str(),
            c["reason"].as_str(),
            c["message"].as_str()
        ),
        (
            Some("Unknown"),
            Some("DeploymentPaused"),
            Some("Deployment is paused")
        )
    );
    set_condition(&mut d["status"], c);
    assert!(paused_condition(&d, now()).is_none());
    d["spec"]["paused"] = json!(false);
    let c = paused_condition(&d, now()).unwrap();
    assert_eq!(
        (c["reason"].as_str(), c["message"].as_str()),
        (Some("DeploymentResumed"), Some("Deployment is resumed"))
    );
    // A timed-out Deployment keeps saying so.
    set_condition(
        &mut d["status"],
        condition(PROGRESSING, "False", TIMED_OUT, "late", now()),
    );
    d["spec"]["paused"] = json!(true);
    assert!(paused_condition(&d, now()).is_none());
}

#[test]
fn a_replica_set_status_is_current_once_its_controller_acted_on_the_spec() {
    let rs = |generation: i64, spec: i64, observed: i64, status: i64| {
        json!({
            "metadata": {"generation": generation},
            "spec": {"replicas": spec},
            "status": {"observedGeneration": observed, "replicas": status},
        })
    };
    assert!(status_current(&rs(2, 3, 2, 3)));
    // Scaled up: the pods still to come do not matter.
    assert!(status_current(&rs(2, 3, 2, 1)));
    // Resized and not yet seen.
    assert!(!status_current(&rs(3, 2, 2, 3)));
    // Seen, but still counting a pod it is deleting.
    assert!(!status_current(&rs(3, 2, 3, 3)));
    // A ReplicaSet being deleted is left to the garbage collector.
    let mut deleted = rs(3, 2, 2, 3);
    deleted["metadata"]["deletionTimestamp"] = json!("2026-01-01T12:00:00Z");
    assert!(status_current(&deleted));
}
