//! The core (legacy, `v1`) group's resources other than pods: their table entries and printer columns.

use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use serde_json::{Value, json};

use crate::registry::{AGE, BASE, Column, NAME, NameRule, Resource, len, text};
use crate::strategy;

/// A node's STATUS: Ready/NotReady/Unknown from its Ready condition, plus SchedulingDisabled.
fn node_status(node: &Value) -> Value {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conds| conds.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str());
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

/// A node's ROLES, from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node_roles(node: &Value) -> Value {
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k
                .strip_prefix("node-role.kubernetes.io/")
                .filter(|r| !r.is_empty())
            {
                roles.push(role.to_string());
            } else if k == "kubernetes.io/role"
                && let Some(role) = v.as_str().filter(|r| !r.is_empty())
            {
                roles.push(role.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    json!(if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    })
}

/// An event's OBJECT: `<kind>/<name>` of what it is about.
fn event_object(event: &Value) -> Value {
    let kind = text(event, "/involvedObject/kind", "");
    let name = text(event, "/involvedObject/name", "");
    json!(format!(
        "{}/{}",
        kind.as_str().unwrap_or("").to_lowercase(),
        name.as_str().unwrap_or("")
    ))
}

/// An event's SOURCE: component and host, or the reporting controller and instance.
fn event_source(event: &Value) -> Value {
    let pick = |a: &str, b: &str| {
        let a = event.pointer(a).and_then(Value::as_str).unwrap_or("");
        if a.is_empty() {
            event
                .pointer(b)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        } else {
            a.to_string()
        }
    };
    let component = pick("/source/component", "/reportingComponent");
    let host = pick("/source/host", "/reportingInstance");
    json!(if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    })
}

fn node_address(node: &Value, kind: &str) -> Value {
    let address = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|addr| addr["type"] == kind))
        .and_then(|addr| addr["address"].as_str());
    json!(address.unwrap_or("<none>"))
}

/// Event columns (core/v1 and, through conversion, events.k8s.io/v1).
pub const EVENT_COLUMNS: &[Column] = &[
    Column {
        name: "Last Seen",
        type_: "string",
        format: "",
        description: "The time at which the most recent occurrence of this event was recorded.",
        priority: 0,
        cell: |o| {
            json!(crate::table::since(
                o,
                &[
                    "/series/lastObservedTime",
                    "/lastTimestamp",
                    "/eventTime",
                    "/firstTimestamp",
                    "/metadata/creationTimestamp"
                ]
            ))
        },
    },
    Column {
        name: "Type",
        type_: "string",
        format: "",
        description: "Type of this event (Normal, Warning), new types could be added in the future",
        priority: 0,
        cell: |o| text(o, "/type", ""),
    },
    Column {
        name: "Reason",
        type_: "string",
        format: "",
        description: "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        priority: 0,
        cell: |o| text(o, "/reason", ""),
    },
    Column {
        name: "Object",
        type_: "string",
        format: "",
        description: "The object that this event is about.",
        priority: 0,
        cell: event_object,
    },
    Column {
        name: "Subobject",
        type_: "string",
        format: "",
        description: "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
        priority: 1,
        cell: |o| text(o, "/involvedObject/fieldPath", ""),
    },
    Column {
        name: "Source",
        type_: "string",
        format: "",
        description: "The component reporting this event. Should be a short machine understandable string.",
        priority: 1,
        cell: event_source,
    },
    Column {
        name: "Message",
        type_: "string",
        format: "",
        description: "A human-readable description of the status of this operation.",
        priority: 0,
        cell: |o| {
            json!(
                o.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
            )
        },
    },
    Column {
        name: "First Seen",
        type_: "string",
        format: "",
        description: "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        priority: 1,
        cell: |o| {
            json!(crate::table::since(
                o,
                &[
                    "/firstTimestamp",
                    "/eventTime",
                    "/metadata/creationTimestamp"
                ]
            ))
        },
    },
    Column {
        name: "Count",
        type_: "string",
        format: "",
        description: "The number of times this event has occurred.",
        priority: 1,
        cell: |o| {
            json!(
                o.pointer("/series/count")
                    .or_else(|| o.get("count"))
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )
        },
    },
    Column {
        format: "name",
        priority: 1,
        ..NAME
    },
];

pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &["status", "finalize"],
        name_rule: NameRule::Dns1123Label,
        columns: &[
            NAME,
            Column {
                name: "Status",
                type_: "string",
                format: "",
                description: "The status of the namespace",
                priority: 0,
                cell: |o| o.pointer("/status/phase").cloned().unwrap_or(json!("")),
            },
            AGE,
        ],
        strategy: &strategy::NAMESPACES,
        expires: false,
        schema: |g| g.subschema_for::<core::Namespace>(),
        ..BASE
    },
    Resource {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        name_rule: NameRule::Dns1123Subdomain,
        columns: &[
            NAME,
            Column {
                name: "Data",
                type_: "string",
                format: "",
                description: "Number of entries in data and binaryData",
                priority: 0,
                cell: |o| json!(len(o, "data") + len(o, "binaryData")),
            },
            AGE,
        ],
        strategy: &strategy::PLAIN,
        expires: false,
        schema: |g| g.subschema_for::<core::ConfigMap>(),
        ..BASE
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        name_rule: NameRule::Dns1123Subdomain,
        columns: &[
            NAME,
            Column {
                name: "Type",
                type_: "string",
                format: "",
                description: "The type of the secret",
                priority: 0,
                cell: |o| o.get("type").cloned().unwrap_or(json!("Opaque")),
            },
            Column {
                name: "Data",
                type_: "string",
                format: "",
                description: "Number of entries in data and stringData",
                priority: 0,
                cell: |o| json!(len(o, "data") + len(o, "stringData")),
            },
            AGE,
        ],
        strategy: &strategy::SECRETS,
        expires: false,
        schema: |g| g.subschema_for::<core::Secret>(),
        ..BASE
    },
    Resource {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &["token"],
        name_rule: NameRule::Dns1123Subdomain,
        columns: &[
            NAME,
            Column {
                name: "Secrets",
                type_: "string",
                format: "",
                description: "Number of secrets of the service account",
                priority: 0,
                cell: |o| json!(len(o, "secrets")),
            },
            AGE,
        ],
        strategy: &strategy::PLAIN,
        expires: false,
        schema: |g| g.subschema_for::<core::ServiceAccount>(),
        ..BASE
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        name_rule: NameRule::Dns1123Subdomain,
        columns: &[
            NAME,
            Column {
                name: "Holder",
                type_: "string",
                format: "",
                description: "The holder of the lease",
                priority: 0,
                cell: |o| {
                    o.pointer("/spec/holderIdentity")
                        .cloned()
                        .unwrap_or(json!(""))
                },
            },
            AGE,
        ],
        strategy: &strategy::PLAIN,
        expires: false,
        schema: |g| g.subschema_for::<coordination::Lease>(),
        ..BASE
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &["status"],
        name_rule: NameRule::Dns1123Subdomain,
        columns: &[
            NAME,
            Column {
                name: "Status",
                type_: "string",
                format: "",
                description: "The status of the node",
                priority: 0,
                cell: node_status,
            },
            Column {
                name: "Roles",
                type_: "string",
                format: "",
                description: "The roles of the node",
                priority: 0,
                cell: node_roles,
            },
            AGE,
            Column {
                name: "Version",
                type_: "string",
                format: "",
                description: "Kubelet Version reported by the node.",
                priority: 0,
                cell: |o| text(o, "/status/nodeInfo/kubeletVersion", ""),
            },
            Column {
                name: "Internal-IP",
                type_: "string",
                format: "",
                description: "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses",
                priority: 1,
                cell: |o| node_address(o, "InternalIP"),
            },
            Column {
                name: "External-IP",
                type_: "string",
                format: "",
                description: "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses",
                priority: 1,
                cell: |o| node_address(o, "ExternalIP"),
            },
            Column {
                name: "OS-Image",
                type_: "string",
                format: "",
                description: "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                priority: 1,
                cell: |o| text(o, "/status/nodeInfo/osImage", "<unknown>"),
            },
            Column {
                name: "Kernel-Version",
                type_: "string",
                format: "",
                description: "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                priority: 1,
                cell: |o| text(o, "/status/nodeInfo/kernelVersion", "<unknown>"),
            },
            Column {
                name: "Container-Runtime",
                type_: "string",
                format: "",
                description: "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                priority: 1,
                cell: |o| text(o, "/status/nodeInfo/containerRuntimeVersion", "<unknown>"),
            },
        ],
        strategy: &strategy::NODES,
        expires: false,
        schema: |g| g.subschema_for::<core::Node>(),
        ..BASE
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        name_rule: NameRule::Dns1123Subdomain,
        columns: EVENT_COLUMNS,
        strategy: &strategy::EVENTS,
        expires: true,
        schema: |g| g.subschema_for::<core::Event>(),
        ..BASE
    },
];
