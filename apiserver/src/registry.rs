//! The resource table: one entry per served resource drives routing, discovery and table printing.

use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use schemars::{Schema, generate::SchemaGenerator};
use serde_json::{Value, json};

/// How a resource names its objects (upstream's name validation per resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label (namespaces).
    Dns1123Label,
    /// RFC 1123 subdomain (most resources).
    Dns1123Subdomain,
}

/// A `kubectl get` column beyond NAME and AGE.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub description: &'static str,
    /// 0 = default output, 1 = `-o wide` only.
    pub priority: u8,
    pub cell: fn(&Value) -> Value,
}

/// One served resource.
#[derive(Debug)]
pub struct Resource {
    /// "" for the core (legacy) group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources with their own verbs (e.g. `status`).
    pub subresources: &'static [&'static str],
    pub name_rule: NameRule,
    /// Columns between NAME and AGE.
    pub columns: &'static [Column],
    /// Adds the object's schema to an OpenAPI generator and returns a reference to it.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
pub const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store prefix holding every object of this resource.
    pub fn prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }

    /// The store prefix for a list: one namespace, or all.
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }
}

/// Entries in an object-valued or array-valued field (0 when absent).
fn len(object: &Value, field: &str) -> usize {
    match object.get(field) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    }
}

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
        columns: &[Column {
            name: "Status",
            type_: "string",
            description: "The status of the namespace",
            priority: 0,
            cell: |o| o.pointer("/status/phase").cloned().unwrap_or(json!("")),
        }],
        schema: |g| g.subschema_for::<core::Namespace>(),
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
        columns: &[Column {
            name: "Data",
            type_: "string",
            description: "Number of entries in data and binaryData",
            priority: 0,
            cell: |o| json!(len(o, "data") + len(o, "binaryData")),
        }],
        schema: |g| g.subschema_for::<core::ConfigMap>(),
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
            Column {
                name: "Type",
                type_: "string",
                description: "The type of the secret",
                priority: 0,
                cell: |o| o.get("type").cloned().unwrap_or(json!("Opaque")),
            },
            Column {
                name: "Data",
                type_: "string",
                description: "Number of entries in data and stringData",
                priority: 0,
                cell: |o| json!(len(o, "data") + len(o, "stringData")),
            },
        ],
        schema: |g| g.subschema_for::<core::Secret>(),
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
        columns: &[Column {
            name: "Secrets",
            type_: "string",
            description: "Number of secrets of the service account",
            priority: 0,
            cell: |o| json!(len(o, "secrets")),
        }],
        schema: |g| g.subschema_for::<core::ServiceAccount>(),
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
        columns: &[Column {
            name: "Holder",
            type_: "string",
            description: "The holder of the lease",
            priority: 0,
            cell: |o| {
                o.pointer("/spec/holderIdentity")
                    .cloned()
                    .unwrap_or(json!(""))
            },
        }],
        schema: |g| g.subschema_for::<coordination::Lease>(),
    },
];

/// The groups served, in discovery order (core first), each with its versions.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    groups
}

/// The resource a URL names.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn namespaces() -> &'static Resource {
    find("", "v1", "namespaces").expect("namespaces are served")
}
