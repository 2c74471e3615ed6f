//! The resource table: one entry per served resource drives routing, discovery and table printing.

use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use schemars::{Schema, generate::SchemaGenerator};
use serde_json::{Value, json};

use crate::strategy::{self, Strategy};

/// How a resource names its objects (upstream's name validation per resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label (namespaces).
    Dns1123Label,
    /// RFC 1123 subdomain (most resources).
    Dns1123Subdomain,
    /// Any name usable as a URL path segment: not `.` or `..`, no `/` or `%` (RBAC roles and
    /// bindings, certificate signing requests, APIServices).
    PathSegment,
}

/// A `kubectl get` column.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    /// `name` for the NAME column, empty otherwise.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 = default output, 1 = `-o wide` only.
    pub priority: u8,
    pub cell: fn(&Value) -> Value,
}

/// A column defined at run time by a JSONPath into the object (custom resources).
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: u8,
    pub json_path: String,
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
    /// Table columns, in upstream's order.
    pub columns: &'static [Column],
    /// Defaulting and field labels (see [`Strategy`]).
    pub strategy: &'static dyn Strategy,
    /// Objects expire after the server's `--event-ttl` from their last write (events).
    pub expires: bool,
    /// Adds the object's schema to an OpenAPI generator and returns a reference to it.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// `metadata.generation` is 1 on create and bumped on every change to the spec (anything
    /// outside metadata and status).
    pub generation: bool,
    /// Where the `scale` subresource reads and writes the replica count.
    pub scale: Option<ScalePaths>,
    /// Objects are stored as another resource's (events.k8s.io events as core events) under
    /// that resource's prefix, converted on every read and write.
    pub conversion: Option<&'static Conversion>,
}

/// A served version whose objects live in another resource's storage.
#[derive(Debug)]
pub struct Conversion {
    /// `/registry/core/events/`: the storage prefix shared with the stored form.
    pub prefix: &'static str,
    pub from_stored: fn(Value) -> Value,
    pub to_stored: fn(Value) -> Value,
}

/// JSON pointers the `scale` subresource maps onto `autoscaling/v1` Scale.
#[derive(Debug)]
pub struct ScalePaths {
    pub spec_replicas: &'static str,
    pub status_replicas: &'static str,
    /// A label selector object (`metav1.LabelSelector`) serialised into `status.selector`.
    pub selector: Option<&'static str>,
}

/// The usual scale paths of workloads (`spec.replicas`, `status.replicas`, `spec.selector`).
pub const WORKLOAD_SCALE: ScalePaths = ScalePaths {
    spec_replicas: "/spec/replicas",
    status_replicas: "/status/replicas",
    selector: Some("/spec/selector"),
};

/// What an entry does not say: a namespaced core resource without subresources, columns
/// beyond NAME and AGE, special behaviour, generation or scale. Entries start from it with
/// `..BASE`.
pub const BASE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "",
    plural: "",
    singular: "",
    namespaced: true,
    short_names: &[],
    categories: &[],
    subresources: &[],
    name_rule: NameRule::Dns1123Subdomain,
    columns: &[NAME, AGE],
    strategy: &strategy::PLAIN,
    expires: false,
    schema: |g| g.subschema_for::<serde_json::Value>(),
    generation: false,
    scale: None,
    conversion: None,
};

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
        if let Some(conversion) = self.conversion {
            return conversion.prefix.to_string();
        }
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

/// The NAME column, as upstream describes it.
pub const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
    cell: |o| text(o, "/metadata/name", ""),
};

/// The AGE column, as upstream describes it.
pub const AGE: Column = Column {
    name: "Age",
    type_: "string",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    priority: 0,
    cell: |o| json!(crate::table::age(o)),
};

/// A string field at `pointer`, or `default`.
pub(crate) fn text(object: &Value, pointer: &str, default: &str) -> Value {
    json!(
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or(default)
    )
}

/// Entries in an object-valued or array-valued field (0 when absent).
pub(crate) fn len(object: &Value, field: &str) -> usize {
    match object.get(field) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    }
}

/// The API groups in the order upstream's discovery lists them.
const GROUP_ORDER: &[&str] = &[
    "",
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];

/// The built-in resources, group by group (core first).
fn builtin() -> &'static [&'static Resource] {
    static BUILTIN: LazyLock<Vec<&'static Resource>> = LazyLock::new(|| {
        let mut all: Vec<&'static Resource> = [
            crate::core::RESOURCES,
            crate::pod::RESOURCES,
            crate::service::RESOURCES,
            crate::events::RESOURCES,
            crate::workloads::RESOURCES,
            crate::cluster::RESOURCES,
            crate::cluster::admissionregistration::RESOURCES,
            crate::crd::RESOURCES,
            crate::auth::reviews::RESOURCES,
        ]
        .into_iter()
        .flatten()
        .collect();
        // Upstream's discovery order of groups; within a group, the order of the entries.
        all.sort_by_key(|r| GROUP_ORDER.iter().position(|g| *g == r.group));
        all
    });
    &BUILTIN
}

/// The served resources: the built-in ones, then those custom resource definitions add.
static SERVED: LazyLock<RwLock<Arc<Vec<&'static Resource>>>> =
    LazyLock::new(|| RwLock::new(Arc::new(builtin().to_vec())));

/// Every served resource, group by group (core first, custom resources last), as of now.
pub fn all() -> Arc<Vec<&'static Resource>> {
    SERVED.read().clone()
}

/// Replace the custom resources served (every established CRD's served versions).
pub fn set_custom(custom: Vec<&'static Resource>) {
    let mut served = builtin().to_vec();
    served.extend(custom);
    *SERVED.write() = Arc::new(served);
}

/// The groups served, in discovery order (core first), each with its versions.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in all().iter() {
        if !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    groups
}

/// The resource a URL names.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    all()
        .iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn namespaces() -> &'static Resource {
    find("", "v1", "namespaces").expect("namespaces are served")
}
