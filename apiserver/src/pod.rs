//! Pods: upstream's defaulting, validation, update rules, QoS class, field labels and `kubectl get` columns.

use serde_json::{Value, json};

use crate::object::default_field;
use crate::registry::{AGE, BASE, Column, NAME, Resource};
use crate::status::{ApiError, ApiResult, FieldCause};
use crate::strategy::{FieldLabel, Strategy};

#[derive(Debug)]
pub struct Pods;
pub static PODS: Pods = Pods;

/// A resource quantity in thousandths (`100m` → 100, `1` → 1000, `1Ki` → 1,024,000).
pub fn milli(quantity: &str) -> Option<i128> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (mantissa, exponent) = match number.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (number, 0),
    };
    let value: f64 = mantissa.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some((value * factor * 10f64.powi(exponent) * 1000.0).round() as i128)
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers"]
        .into_iter()
        .flat_map(move |field| {
            spec.get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
}

/// Upstream's QoS class: Guaranteed when every container limits cpu and memory and requests
/// equal limits, BestEffort when nothing is requested or limited, Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in containers(spec) {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&serde_json::Map<String, Value>>| {
            m.map(|m| m.keys().filter(|k| *k == "cpu" || *k == "memory").count())
                .unwrap_or(0)
        };
        if relevant(requests) + relevant(limits) > 0 {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits
                .and_then(|l| l.get(resource))
                .and_then(Value::as_str)
                .and_then(milli);
            let request = requests
                .and_then(|r| r.get(resource))
                .and_then(Value::as_str)
                .and_then(milli)
                .or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// `SetDefaults_Container`: pull policy from the image tag, termination message, protocols.
pub fn default_container(c: &mut Value) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let last = image.rsplit('/').next().unwrap_or("");
    let tag = if image.contains('@') {
        Some("digest")
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    let policy = if matches!(tag, None | Some("latest")) {
        "Always"
    } else {
        "IfNotPresent"
    };
    default_field(c, "imagePullPolicy", json!(policy));
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    default_field(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default_field(port, "protocol", json!("TCP"));
        }
    }
}

/// `SetDefaults_PodSpec` and friends (pods and every pod template).
pub fn default_spec(spec: &mut Value) {
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    default_field(spec, "enableServiceLinks", json!(true));
    for field in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(list) = spec.get_mut(field).and_then(Value::as_array_mut) {
            list.iter_mut().for_each(default_container);
        }
    }
}

fn validate_spec(name: &str, spec: &Value) -> ApiResult<()> {
    let causes = spec_causes("spec", spec);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("", "Pod", name, causes))
    }
}

/// What is wrong with a pod spec found at `path` (`spec`, or `spec.template.spec` in a
/// template).
pub fn spec_causes(path: &str, spec: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    match spec.get("containers").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => {
            for (i, c) in list.iter().enumerate() {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
                if cname.is_empty() {
                    causes.push(FieldCause::required(&format!(
                        "{path}.containers[{i}].name"
                    )));
                } else {
                    causes.extend(crate::object::validate_name(
                        crate::registry::NameRule::Dns1123Label,
                        cname,
                        &format!("{path}.containers[{i}].name"),
                    ));
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(FieldCause::required(&format!(
                        "{path}.containers[{i}].image"
                    )));
                }
            }
        }
        _ => causes.push(FieldCause::required(&format!("{path}.containers"))),
    }
    causes
}

const UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

impl Strategy for Pods {
    fn field_labels(&self) -> &'static [FieldLabel] {
        &[
            FieldLabel {
                name: "spec.nodeName",
                pointer: "/spec/nodeName",
                default: "",
            },
            FieldLabel {
                name: "spec.restartPolicy",
                pointer: "/spec/restartPolicy",
                default: "",
            },
            FieldLabel {
                name: "spec.schedulerName",
                pointer: "/spec/schedulerName",
                default: "",
            },
            FieldLabel {
                name: "spec.serviceAccountName",
                pointer: "/spec/serviceAccountName",
                default: "",
            },
            FieldLabel {
                name: "spec.hostNetwork",
                pointer: "/spec/hostNetwork",
                default: "false",
            },
            FieldLabel {
                name: "status.phase",
                pointer: "/status/phase",
                default: "",
            },
            FieldLabel {
                name: "status.podIP",
                pointer: "/status/podIP",
                default: "",
            },
            FieldLabel {
                name: "status.nominatedNodeName",
                pointer: "/status/nominatedNodeName",
                default: "",
            },
        ]
    }

    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        let name = crate::object::meta_str(object, "name")
            .unwrap_or_default()
            .to_string();
        let spec = object.get_mut("spec").filter(|s| s.is_object());
        let Some(spec) = spec else {
            return Err(ApiError::invalid(
                "",
                "Pod",
                &name,
                vec![FieldCause::required("spec.containers")],
            ));
        };
        default_spec(spec);
        validate_spec(&name, spec)?;
        let qos = qos_class(spec);
        // A new pod starts Pending; its status is the node's to write.
        object["status"] = json!({"phase": "Pending", "qosClass": qos});
        Ok(())
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        let name = crate::object::meta_str(object, "name")
            .unwrap_or_default()
            .to_string();
        let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
            return Err(ApiError::invalid(
                "",
                "Pod",
                &name,
                vec![FieldCause::required("spec")],
            ));
        };
        default_spec(spec);
        validate_spec(&name, spec)?;
        // Compare with the mutable fields taken from the old spec: anything else that differs
        // is a forbidden change.
        let mut comparable = spec.clone();
        let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
        for field in ["containers", "initContainers"] {
            if let (Some(new), Some(prev)) = (
                comparable.get_mut(field).and_then(Value::as_array_mut),
                old_spec.get(field).and_then(Value::as_array),
            ) {
                for (n, p) in new.iter_mut().zip(prev) {
                    if let Some(image) = p.get("image") {
                        n["image"] = image.clone();
                    }
                }
            }
        }
        for field in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            match old_spec.get(field) {
                Some(v) => comparable[field] = v.clone(),
                None => drop(comparable.as_object_mut().map(|m| m.remove(field))),
            }
        }
        if comparable != old_spec {
            return Err(ApiError::invalid(
                "",
                "Pod",
                &name,
                vec![FieldCause::forbidden("spec", UPDATE_FORBIDDEN)],
            ));
        }
        Ok(())
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// kubectl's STATUS and READY for a pod, computed as upstream's printer does.
fn status_and_ready(pod: &Value) -> (String, usize, usize, i64) {
    let mut reason = text(pod, "/status/phase").to_string();
    if !text(pod, "/status/reason").is_empty() {
        reason = text(pod, "/status/reason").to_string();
    }
    let empty = Vec::new();
    let init_statuses = pod
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let init_count = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut restarts = 0i64;
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(t) = c.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            let r = text(t, "/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if let Some(signal) = t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0)
            {
                format!("Init:Signal:{signal}")
            } else {
                format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                )
            };
        } else if c.get("started").and_then(Value::as_bool) == Some(true)
            && c.get("ready").is_some()
        {
            // A running restartable (sidecar) init container does not hold up the pod.
            continue;
        } else if !text(c, "/state/waiting/reason").is_empty()
            && text(c, "/state/waiting/reason") != "PodInitializing"
        {
            reason = format!("Init:{}", text(c, "/state/waiting/reason"));
        } else {
            reason = format!("Init:{i}/{init_count}");
        }
        initializing = true;
        break;
    }
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut ready = 0;
    if !initializing {
        restarts = 0;
        let mut running = false;
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for c in statuses.iter().rev() {
            restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            let waiting = text(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                let r = text(t, "/reason");
                reason = if !r.is_empty() {
                    r.to_string()
                } else if let Some(signal) =
                    t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0)
                {
                    format!("Signal:{signal}")
                } else {
                    format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    )
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            let pod_ready = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .is_some_and(|c| c["status"] == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if text(pod, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    (reason, ready, total, restarts)
}

fn or_none(s: &str) -> Value {
    json!(if s.is_empty() { "<none>" } else { s })
}

pub const COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Ready",
        type_: "string",
        format: "",
        description: "The aggregate readiness state of this pod for accepting traffic.",
        priority: 0,
        cell: |p| {
            let (_, ready, total, _) = status_and_ready(p);
            json!(format!("{ready}/{total}"))
        },
    },
    Column {
        name: "Status",
        type_: "string",
        format: "",
        description: "The aggregate status of the containers in this pod.",
        priority: 0,
        cell: |p| json!(status_and_ready(p).0),
    },
    Column {
        name: "Restarts",
        type_: "string",
        format: "",
        description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        priority: 0,
        cell: |p| json!(status_and_ready(p).3.to_string()),
    },
    AGE,
    Column {
        name: "IP",
        type_: "string",
        format: "",
        description: "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
        priority: 1,
        cell: |p| or_none(text(p, "/status/podIP")),
    },
    Column {
        name: "Node",
        type_: "string",
        format: "",
        description: "NodeName is a request to schedule this pod onto a specific node.",
        priority: 1,
        cell: |p| or_none(text(p, "/spec/nodeName")),
    },
    Column {
        name: "Nominated Node",
        type_: "string",
        format: "",
        description: "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
        priority: 1,
        cell: |p| or_none(text(p, "/status/nominatedNodeName")),
    },
    Column {
        name: "Readiness Gates",
        type_: "string",
        format: "",
        description: "If specified, all readiness gates will be evaluated for pod readiness.",
        priority: 1,
        cell: |p| {
            let gates = p
                .pointer("/spec/readinessGates")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if gates == 0 {
                return json!("<none>");
            }
            let conditions = p.pointer("/status/conditions").and_then(Value::as_array);
            let met = p
                .pointer("/spec/readinessGates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|g| {
                    conditions.is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                    })
                });
            json!(format!("{}/{gates}", met.count()))
        },
    },
];

/// `pods/<name>/ephemeralcontainers`: the new list of ephemeral containers, defaulted and
/// checked as upstream's `ValidatePodEphemeralContainersUpdate` does (added only; existing ones
/// unchanged; names unique across the pod; no ports, probes or resources).
pub fn update_ephemeral_containers(old: &Value, new: &mut Value) -> ApiResult<()> {
    let name = crate::object::meta_str(old, "name")
        .unwrap_or_default()
        .to_string();
    let mut causes = Vec::new();
    let old_list: Vec<Value> = old
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(list) = new
        .pointer_mut("/spec/ephemeralContainers")
        .and_then(Value::as_array_mut)
    {
        for c in list.iter_mut() {
            default_container(c);
        }
    }
    let new_list: Vec<Value> = new
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for existing in &old_list {
        let ename = existing["name"].as_str().unwrap_or_default();
        match new_list.iter().position(|c| c["name"] == existing["name"]) {
            None => causes.push(FieldCause::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {ename:?} may not be removed"),
            )),
            Some(i) if new_list[i] != *existing => causes.push(FieldCause::forbidden(
                &format!("spec.ephemeralContainers[{i}]"),
                &format!("existing ephemeral containers {ename:?} may not be changed"),
            )),
            Some(_) => {}
        }
    }
    let mut names: Vec<String> = containers(&old["spec"])
        .filter(|c| !old_list.contains(c))
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    for (i, c) in new_list.iter().enumerate() {
        let at = format!("spec.ephemeralContainers[{i}]");
        let cname = c["name"].as_str().unwrap_or_default();
        if cname.is_empty() {
            causes.push(FieldCause::required(&format!("{at}.name")));
        } else if names.iter().any(|n| n == cname) {
            causes.push(FieldCause::duplicate(
                &format!("{at}.name"),
                &format!("{cname:?}"),
            ));
        }
        names.push(cname.to_string());
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(FieldCause::required(&format!("{at}.image")));
        }
        for field in [
            "ports",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
        ] {
            if c.get(field).is_some_and(|v| !v.is_null()) {
                causes.push(FieldCause::forbidden(
                    &format!("{at}.{field}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        if c.pointer("/resources")
            .and_then(Value::as_object)
            .is_some_and(|r| !r.is_empty())
        {
            causes.push(FieldCause::forbidden(
                &format!("{at}.resources"),
                "cannot be set for an Ephemeral Container",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("", "Pod", &name, causes))
    }
}

/// The pods resource.
pub static RESOURCES: &[Resource] = &[Resource {
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    categories: &["all"],
    subresources: &["status", "binding", "ephemeralcontainers"],
    columns: COLUMNS,
    strategy: &PODS,
    schema: |g| g.subschema_for::<k8s_openapi::api::core::v1::Pod>(),
    ..BASE
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(milli("100m"), Some(100));
        assert_eq!(milli("1"), Some(1000));
        assert_eq!(milli("0.5"), Some(500));
        assert_eq!(milli("1Ki"), Some(1_024_000));
        assert_eq!(milli("1e3"), Some(1_000_000));
        assert_eq!(milli("2G"), Some(2_000_000_000_000));
        assert_eq!(milli("1x"), None);
    }

    #[test]
    fn qos_classes() {
        let c = |resources: Value| json!({"containers": [{"name": "a", "image": "x", "resources": resources}]});
        assert_eq!(qos_class(&c(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&c(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&c(
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&c(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
    }

    #[test]
    fn defaults_and_pull_policy() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "reg:5000/x:1.2", "ports": [{"containerPort": 80}]}]}});
        PODS.prepare_create(&mut pod).unwrap();
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
    }

    #[test]
    fn printer_status() {
        let pod = json!({"spec": {"containers": [{}, {}]}, "status": {"phase": "Running", "containerStatuses": [
            {"ready": true, "restartCount": 1, "state": {"running": {}}},
            {"ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(
            status_and_ready(&pod),
            ("CrashLoopBackOff".to_string(), 1, 2, 3)
        );
        let init = json!({"spec": {"initContainers": [{}, {}], "containers": [{}]}, "status": {"phase": "Pending", "initContainerStatuses": [
            {"restartCount": 0, "state": {"terminated": {"exitCode": 0}}}, {"restartCount": 0, "state": {"running": {}}}]}});
        assert_eq!(status_and_ready(&init).0, "Init:1/2");
    }
}
