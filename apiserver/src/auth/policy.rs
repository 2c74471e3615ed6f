//! The bootstrap RBAC policy: upstream's default ClusterRoles and ClusterRoleBindings (cluster-admin, the aggregated admin/edit/view, discovery, the system components and controllers), created at first start and reconciled at every start.

use serde_json::{Value, json};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn meta(name: &str, labels: Value) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    json!({
        "name": name,
        "labels": labels,
        "annotations": {AUTOUPDATE: "true"},
    })
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    cluster_role_labelled(name, json!({}), rules)
}

fn cluster_role_labelled(name: &str, labels: Value, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(name, labels),
        "rules": rules,
    })
}

fn aggregated(name: &str, labels: Value, selector_label: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]},
    })
}

/// A ClusterRoleBinding of ClusterRole `role` named `name` to `subjects` (`(kind, name)`,
/// service accounts as `ns/name`).
fn binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, who)| match *kind {
            "ServiceAccount" => {
                let (ns, sa) = who.split_once('/').unwrap_or(("kube-system", who));
                json!({"kind": kind, "name": sa, "namespace": ns})
            }
            _ => json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": who}),
        })
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(name, json!({})),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The controllers' roles (`system:controller:<name>`), as upstream's `controller_policy.go`.
fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    let events = || {
        vec![
            r(&["create", "update", "patch"], &[""], &["events"]),
            r(
                &["create", "update", "patch"],
                &["events.k8s.io"],
                &["events"],
            ),
        ]
    };
    let with_events = |mut rules: Vec<Value>| {
        rules.extend(events());
        rules
    };
    vec![
        (
            "namespace-controller",
            with_events(vec![
                r(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
                r(
                    &["update"],
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                r(
                    &["get", "list", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
            ]),
        ),
        (
            "service-account-controller",
            with_events(vec![r(&["create"], &[""], &["serviceaccounts"])]),
        ),
        (
            "root-ca-cert-publisher",
            with_events(vec![r(&["create", "update"], &[""], &["configmaps"])]),
        ),
        (
            "replication-controller",
            with_events(vec![
                r(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                r(&["update"], &[""], &["replicationcontrollers/status"]),
                r(&["update"], &[""], &["replicationcontrollers/finalizers"]),
                r(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
            ]),
        ),
        (
            "replicaset-controller",
            with_events(vec![
                r(
                    &["get", "list", "watch", "update"],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                r(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/status"],
                ),
                r(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/finalizers"],
                ),
                r(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
            ]),
        ),
        (
            "deployment-controller",
            with_events(vec![
                r(
                    &["get", "list", "watch", "update"],
                    &["apps", "extensions"],
                    &["deployments"],
                ),
                r(
                    &["update"],
                    &["apps", "extensions"],
                    &["deployments/status"],
                ),
                r(
                    &["update"],
                    &["apps", "extensions"],
                    &["deployments/finalizers"],
                ),
                r(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                r(&["get", "list", "watch", "update"], &[""], &["pods"]),
            ]),
        ),
        (
            "generic-garbage-collector",
            with_events(vec![r(
                &["get", "list", "watch", "patch", "update", "delete"],
                &["*"],
                &["*"],
            )]),
        ),
        (
            "resourcequota-controller",
            with_events(vec![
                r(&["list", "watch"], &["*"], &["*"]),
                r(&["update"], &[""], &["resourcequotas/status"]),
            ]),
        ),
        (
            "job-controller",
            with_events(vec![
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &["batch"],
                    &["jobs"],
                ),
                r(&["update", "patch"], &["batch"], &["jobs/status"]),
                r(&["update"], &["batch"], &["jobs/finalizers"]),
                r(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
            ]),
        ),
        (
            "endpointslice-controller",
            with_events(vec![
                r(
                    &["get", "list", "watch"],
                    &[""],
                    &["services", "pods", "nodes"],
                ),
                r(&["update"], &[""], &["services/finalizers"]),
                r(
                    &["get", "list", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ]),
        ),
        (
            "node-controller",
            with_events(vec![
                r(
                    &["get", "list", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                r(&["patch", "update"], &[""], &["nodes/status"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
                r(&["list", "delete"], &[""], &["pods"]),
            ]),
        ),
    ]
}

/// Every bootstrap object with its resource's plural, roles first.
pub fn bootstrap() -> Vec<(&'static str, Value)> {
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            vec![r(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", json!({}), AGG_ADMIN),
        aggregated("edit", json!({AGG_ADMIN: "true"}), AGG_EDIT),
        aggregated("view", json!({AGG_EDIT: "true"}), AGG_VIEW),
        cluster_role_labelled(
            "system:aggregate-to-admin",
            json!({AGG_ADMIN: "true"}),
            vec![
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                r(
                    READ_WRITE,
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings"],
                ),
            ],
        ),
        cluster_role_labelled(
            "system:aggregate-to-edit",
            json!({AGG_EDIT: "true"}),
            vec![
                r(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                r(&["impersonate"], &[""], &["serviceaccounts"]),
                r(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                r(&["create"], &[""], &["pods/eviction"]),
                r(
                    WRITE,
                    &[""],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                r(&["create"], &[""], &["serviceaccounts/token"]),
                r(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                r(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                r(WRITE, &["batch"], &["jobs", "cronjobs"]),
                r(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "ingresses",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                r(WRITE, &["policy"], &["poddisruptionbudgets"]),
                r(
                    WRITE,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses"],
                ),
                r(WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        cluster_role_labelled(
            "system:aggregate-to-view",
            json!({AGG_VIEW: "true"}),
            vec![
                r(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                r(
                    READ,
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                r(READ, &[""], &["namespaces"]),
                r(READ, &["discovery.k8s.io"], &["endpointslices"]),
                r(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                    ],
                ),
                r(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                r(
                    READ,
                    &["batch"],
                    &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
                ),
                r(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                r(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                r(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
                r(READ, &["events.k8s.io"], &["events"]),
            ],
        ),
        cluster_role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                r(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:node",
            vec![
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews", "localsubjectaccessreviews"],
                ),
                r(READ, &[""], &["services"]),
                r(&["create", "get", "list", "watch"], &[""], &["nodes"]),
                r(&["update", "patch"], &[""], &["nodes/status"]),
                r(&["update", "patch"], &[""], &["nodes"]),
                r(
                    &["create", "update", "patch"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                r(READ, &[""], &["pods"]),
                r(&["create", "delete"], &[""], &["pods"]),
                r(&["update", "patch"], &[""], &["pods/status"]),
                r(&["create"], &[""], &["pods/eviction"]),
                r(&["get"], &[""], &["secrets", "configmaps"]),
                r(
                    &["get", "update"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                r(
                    &["update", "patch"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                r(&["get"], &[""], &["endpoints"]),
                r(
                    &["create", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                r(
                    &["get", "create", "update", "patch", "delete"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                r(&["create"], &[""], &["serviceaccounts/token"]),
                r(
                    &["get", "list", "watch"],
                    &["storage.k8s.io"],
                    &["csidrivers", "csinodes", "volumeattachments"],
                ),
                r(
                    &["get", "list", "watch"],
                    &["node.k8s.io"],
                    &["runtimeclasses"],
                ),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                r(READ, &[""], &["nodes"]),
                r(&["proxy"], &[""], &["nodes"]),
                r(
                    &["*"],
                    &[""],
                    &["nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"],
                ),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![r(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:node-proxier",
            vec![
                r(&["list", "watch"], &[""], &["services", "endpoints"]),
                r(&["get", "list", "watch"], &[""], &["nodes"]),
                r(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                r(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-scheduler",
            vec![
                r(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                r(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-scheduler"],
                ),
                r(&["get", "list", "watch"], &[""], &["nodes"]),
                // Delete: preemption's victims.
                r(&["delete", "get", "list", "watch"], &[""], &["pods"]),
                r(&["create"], &[""], &["pods/binding", "bindings"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
                r(
                    &["get", "list", "watch"],
                    &["", "apps"],
                    &[
                        "replicationcontrollers",
                        "services",
                        "replicasets",
                        "statefulsets",
                    ],
                ),
                r(
                    &["get", "list", "watch"],
                    &["policy"],
                    &["poddisruptionbudgets"],
                ),
                r(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                r(
                    &["get", "list", "watch"],
                    &["storage.k8s.io"],
                    &[
                        "csinodes",
                        "csidrivers",
                        "csistoragecapacities",
                        "storageclasses",
                    ],
                ),
                r(&["get", "list", "watch"], &[""], &["namespaces"]),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                r(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                r(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-controller-manager"],
                ),
                r(&["create"], &[""], &["secrets", "serviceaccounts"]),
                r(&["delete"], &[""], &["secrets"]),
                r(
                    &["get"],
                    &[""],
                    &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                ),
                r(&["update"], &[""], &["secrets", "serviceaccounts"]),
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                r(&["list", "watch"], &["*"], &["*"]),
                r(&["create"], &[""], &["serviceaccounts/token"]),
            ],
        ),
    ];
    let controllers = controller_roles();
    for (name, rules) in &controllers {
        roles.push(cluster_role(
            &format!("system:controller:{name}"),
            rules.clone(),
        ));
    }
    let mut objects: Vec<(&'static str, Value)> =
        roles.into_iter().map(|r| ("clusterroles", r)).collect();
    let mut bindings = vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            &[("Group", "system:masters")],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            &[("Group", "system:monitoring")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            // Upstream binds only `system:serviceaccounts`; k1s publishes the issuer's keys to
            // everyone, as upstream documents for public issuers.
            &[
                ("Group", "system:serviceaccounts"),
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        binding("system:node", "system:node", &[]),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            &[("User", "system:kube-proxy")],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            &[("User", "system:kube-controller-manager")],
        ),
    ];
    for (name, _) in &controllers {
        let sa = format!("kube-system/{name}");
        bindings.push(binding(
            &format!("system:controller:{name}"),
            &format!("system:controller:{name}"),
            &[("ServiceAccount", sa.as_str())],
        ));
    }
    objects.extend(bindings.into_iter().map(|b| ("clusterrolebindings", b)));
    objects
}

/// Bootstrap objects earlier k1s versions created and this one no longer does, as
/// `(plural, name)`: the bindings that gave `system:kube-controller-manager` every controller's
/// role while the controllers shared its identity. Upstream's reconciliation never deletes,
/// but these are k1s's own, and left in place they would keep granting what the per-controller
/// service accounts were introduced to take away; so each start deletes them (see
/// `is_retirable`).
pub fn retired() -> Vec<(&'static str, String)> {
    controller_roles()
        .into_iter()
        .map(|(name, _)| {
            (
                "clusterrolebindings",
                format!("k1s:kube-controller-manager:{name}"),
            )
        })
        .collect()
}

/// Whether a stored object named by `retired` is still the one bootstrap made (labelled
/// `kubernetes.io/bootstrapping: rbac-defaults`) and was not claimed by its owner
/// (`rbac.authorization.kubernetes.io/autoupdate: "false"`), and so may be deleted.
pub fn is_retirable(stored: &Value) -> bool {
    stored
        .pointer("/metadata/labels/kubernetes.io~1bootstrapping")
        .and_then(Value::as_str)
        == Some("rbac-defaults")
        && !keeps_own(stored)
}

/// Whether a stored bootstrap object opted out of reconciliation
/// (`rbac.authorization.kubernetes.io/autoupdate: "false"`).
pub fn keeps_own(stored: &Value) -> bool {
    stored
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        == Some("false")
}

/// What a bootstrap object becomes at a start, as upstream's reconciliation leaves it: the
/// stored role keeps rules (and the binding subjects) it gained, and gets back any bootstrap one
/// it lost.
pub fn reconcile(desired: &Value, stored: Option<&Value>) -> Value {
    let mut merged = desired.clone();
    let Some(stored) = stored else {
        return merged;
    };
    for field in ["rules", "subjects"] {
        let (Some(wanted), Some(kept)) = (
            desired.get(field).and_then(Value::as_array),
            stored.get(field).and_then(Value::as_array),
        ) else {
            continue;
        };
        let mut union = kept.clone();
        for item in wanted {
            if !union.contains(item) {
                union.push(item.clone());
            }
        }
        merged[field] = Value::Array(union);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciliation_keeps_additions_and_restores_losses() {
        let desired = json!({"rules": [{"verbs": ["get"]}, {"verbs": ["list"]}], "subjects": [{"kind": "Group", "name": "a"}]});
        let stored = json!({"rules": [{"verbs": ["list"]}, {"verbs": ["watch"]}], "subjects": [{"kind": "User", "name": "u"}]});
        assert_eq!(
            reconcile(&desired, Some(&stored)),
            json!({"rules": [{"verbs": ["list"]}, {"verbs": ["watch"]}, {"verbs": ["get"]}], "subjects": [{"kind": "User", "name": "u"}, {"kind": "Group", "name": "a"}]})
        );
        assert_eq!(reconcile(&desired, None), desired);
    }

    #[test]
    fn the_controller_manager_holds_only_its_own_role() {
        let objects = bootstrap();
        let held: Vec<&str> =
            objects
                .iter()
                .filter(|(p, _)| *p == "clusterrolebindings")
                .filter(|(_, b)| {
                    b["subjects"].as_array().into_iter().flatten().any(|s| {
                        s["kind"] == "User" && s["name"] == "system:kube-controller-manager"
                    })
                })
                .filter_map(|(_, b)| b["roleRef"]["name"].as_str())
                .collect();
        assert_eq!(held, ["system:kube-controller-manager"]);
        // Each controller's role is bound to its service account in kube-system.
        let binding = objects
            .iter()
            .find(|(_, o)| {
                o["metadata"]["name"] == "system:controller:namespace-controller"
                    && o["kind"] == "ClusterRoleBinding"
            })
            .map(|(_, b)| b)
            .unwrap();
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "namespace-controller", "namespace": "kube-system"}])
        );
        // What it needs to give the controllers their identities.
        let role = objects
            .iter()
            .find(|(p, o)| {
                *p == "clusterroles" && o["metadata"]["name"] == "system:kube-controller-manager"
            })
            .map(|(_, r)| r)
            .unwrap();
        for rule in [
            r(&["create"], &[""], &["serviceaccounts/token"]),
            r(&["create"], &[""], &["secrets", "serviceaccounts"]),
            r(&["list", "watch"], &["*"], &["*"]),
        ] {
            assert!(role["rules"].as_array().unwrap().contains(&rule), "{rule}");
        }
    }

    #[test]
    fn retired_bindings_go_unless_claimed() {
        let retired = retired();
        assert!(retired.contains(&(
            "clusterrolebindings",
            "k1s:kube-controller-manager:namespace-controller".to_string()
        )));
        let current = bootstrap();
        for (_, name) in &retired {
            assert!(
                !current
                    .iter()
                    .any(|(_, o)| o["metadata"]["name"] == name.as_str()),
                "{name} is retired and bootstrapped"
            );
        }
        let stale = binding(
            "k1s:kube-controller-manager:namespace-controller",
            "system:controller:namespace-controller",
            &[("User", "system:kube-controller-manager")],
        );
        assert!(is_retirable(&stale));
        let mut claimed = stale.clone();
        claimed["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert!(!is_retirable(&claimed));
        let mut foreign = stale;
        foreign["metadata"]["labels"] = json!({});
        assert!(!is_retirable(&foreign));
    }

    #[test]
    fn every_binding_names_a_bootstrap_role() {
        let objects = bootstrap();
        let roles: Vec<&str> = objects
            .iter()
            .filter(|(p, _)| *p == "clusterroles")
            .filter_map(|(_, o)| o["metadata"]["name"].as_str())
            .collect();
        for (_, b) in objects.iter().filter(|(p, _)| *p == "clusterrolebindings") {
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(roles.contains(&role), "{role}");
        }
        for name in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
            "system:node",
            "system:kube-scheduler",
            "system:kube-controller-manager",
            "system:controller:namespace-controller",
            "system:service-account-issuer-discovery",
        ] {
            assert!(roles.contains(&name), "{name}");
        }
    }
}
