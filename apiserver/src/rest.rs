//! The resource verbs over the store: get, list, create, update, delete and watch, with upstream's object semantics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use k1s_store::{
    Error as StoreError, Event, EventKind, RangeRequest, Revision, Store, WatchMessage, WatchStart,
    WriteOutcome,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cache::{CachedItem, Freshness, WatchCache};
use crate::crd;
use crate::managed;
use crate::object::{self, meta_str};
use crate::openapi::OpenApi;
use crate::patch::{self, PatchKind};
use crate::registry::Resource;
use crate::request::{Query, ResourceRequest, Verb};
use crate::selector::{FieldSelector, LabelSelector};
use crate::service;
use crate::status::{ApiError, ApiResult, FieldCause};
use crate::table;

/// What a handler answers.
pub enum Reply {
    /// A JSON body already serialised.
    Raw(StatusCode, Bytes),
    /// An object, with `Warning` headers to send.
    Json(StatusCode, Value, Vec<String>),
    /// A watch: newline-delimited JSON events until the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

/// How long a watch without `timeoutSeconds` runs: upstream picks 30–60 minutes at random.
fn default_watch_timeout() -> Duration {
    Duration::from_secs(rand::random_range(1800..3600))
}

/// How long a watch stream may wait for its client to take an event before it is closed.
const UNRESPONSIVE_WATCHER: Duration = Duration::from_secs(10);
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

pub struct Rest {
    pub store: Store,
    pub openapi: OpenApi,
    /// How long objects of expiring resources (events) live after their last write.
    pub event_ttl: Duration,
    pub cache: WatchCache,
    /// The RBAC index admission plugins authorize with on a request's behalf (the Node
    /// authorizer reads `cache`); `None` when authorization is off and everything is allowed.
    pub authorizer: Option<crate::auth::rbac::Cache>,
}

/// What to do with fields the schema does not know (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// What a DELETE may carry, in its query or as a `DeleteOptions` body.
#[derive(Debug, Default)]
struct DeleteOptions {
    grace: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
    /// `propagationPolicy` (or the deprecated `orphanDependents`): the garbage collector's
    /// finalizer the deletion records, if any.
    propagation: Option<Propagation>,
}

/// How dependents go with their owner (upstream's `DeletionPropagation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// The garbage collector's finalizers a deletion records.
const ORPHAN_FINALIZER: &str = "orphan";
const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

impl DeleteOptions {
    fn parse(query: &Query, body: &[u8]) -> ApiResult<DeleteOptions> {
        let body: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        let grace =
            match query.get("gracePeriodSeconds") {
                Some(g) => Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?),
                None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
            };
        let pre = |field: &str| {
            body.pointer(&format!("/preconditions/{field}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let policy = query
            .get("propagationPolicy")
            .map(str::to_string)
            .or_else(|| {
                body.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        let orphan = match query.get("orphanDependents") {
            Some(o) => Some(o == "true"),
            None => body.get("orphanDependents").and_then(Value::as_bool),
        };
        let mut causes = Vec::new();
        let propagation = match policy.as_deref() {
            None => None,
            Some("Orphan") => Some(Propagation::Orphan),
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some(other) => {
                causes.push(FieldCause::not_supported(
                    "propagationPolicy",
                    other,
                    &["Foreground", "Background", "Orphan", "nil"],
                ));
                None
            }
        };
        if let (Some(orphan), Some(_)) = (orphan, &policy) {
            causes.push(FieldCause::invalid_raw(
                "orphanDependents",
                &orphan.to_string(),
                "OrphanDependents and DeletionPropagation cannot be both set",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                causes,
            ));
        }
        let propagation = propagation.or(match orphan {
            Some(true) => Some(Propagation::Orphan),
            Some(false) => Some(Propagation::Background),
            None => None,
        });
        Ok(DeleteOptions {
            grace,
            uid: pre("uid"),
            resource_version: pre("resourceVersion"),
            propagation,
        })
    }

    fn check_preconditions(&self, r: &Resource, name: &str, object: &Value) -> ApiResult<()> {
        let actual = |field: &str| meta_str(object, field).unwrap_or("").to_string();
        for (wanted, field, label) in [
            (&self.uid, "uid", "UID"),
            (&self.resource_version, "resourceVersion", "ResourceVersion"),
        ] {
            if let Some(wanted) = wanted
                && *wanted != actual(field)
            {
                let detail = format!(
                    "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {}",
                    actual(field)
                );
                return Err(ApiError::conflict_message(r.group, r.plural, name, &detail));
            }
        }
        Ok(())
    }
}

/// How long a pod's deletion waits for its node: 0 (at once) when it is not on a node or has
/// finished; otherwise the requested grace period or the pod's own (30 s by default).
fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let on_node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !on_node || finished {
        return 0;
    }
    requested
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// The options every write takes.
struct WriteOptions {
    validation: FieldValidation,
    /// `dryRun=All`: do everything but persist.
    dry_run: bool,
    /// Who the write's fields belong to (`metadata.managedFields`).
    manager: String,
    /// A server-side apply: ownership comes from the applied configuration, not the diff.
    apply: bool,
    /// The subresource a write through the main object stands for (`scale`), for
    /// managedFields.
    via: &'static str,
    /// Who writes (admission plugins read it).
    user: crate::auth::UserInfo,
    /// `Warning:`s admission gave an update (`modify` has no warnings of its own to add to).
    admitted: parking_lot::Mutex<Vec<String>>,
}

impl WriteOptions {
    /// Options of the server's own writes (bootstrap objects).
    fn internal() -> WriteOptions {
        WriteOptions {
            validation: FieldValidation::Strict,
            dry_run: false,
            manager: "k1s".into(),
            apply: false,
            via: "",
            user: crate::auth::UserInfo::system(),
            admitted: Default::default(),
        }
    }

    fn from_query(query: &Query, user_agent: &str) -> ApiResult<WriteOptions> {
        let dry_run = match query.get("dryRun") {
            None => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value {other:?}: supported values are: All"
                )));
            }
        };
        let field_manager = query.get("fieldManager");
        if field_manager.is_some_and(|m| m.len() > managed::MAX_MANAGER_LENGTH) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![FieldCause {
                    reason: "FieldValueTooLong",
                    field: "fieldManager".into(),
                    message: format!(
                        "Too long: may not be more than {} bytes",
                        managed::MAX_MANAGER_LENGTH
                    ),
                }],
            ));
        }
        Ok(WriteOptions {
            validation: FieldValidation::from_query(query)?,
            dry_run,
            manager: managed::manager_name(field_manager, user_agent),
            apply: false,
            via: "",
            user: crate::auth::UserInfo::system(),
            admitted: Default::default(),
        })
    }
}

impl FieldValidation {
    fn from_query(query: &Query) -> ApiResult<FieldValidation> {
        match query.get("fieldValidation") {
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Warn") | None => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::FutureRevision { requested, .. } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: unknown"
        )),
        other => ApiError::internal(format!("{other:#}")),
    }
}

/// A stored object, decoded, with its resourceVersion set from the store revision.
/// Where a list reads from.
enum ListRead {
    /// The watch cache, as fresh as asked.
    Cache(Freshness),
    /// The store at an exact revision (`None`: current), resuming after a key.
    Store(Option<Revision>, Option<Bytes>),
}

/// Upstream's `ValidateListOptions` and the read a list's resourceVersion, match and continue
/// ask for.
fn list_read(query: &Query) -> ApiResult<ListRead> {
    let rv = query.get("resourceVersion").filter(|rv| !rv.is_empty());
    let continue_token = query.get("continue").filter(|c| !c.is_empty());
    let mut causes = Vec::new();
    if let Some(rv_match) = query.get("resourceVersionMatch").filter(|m| !m.is_empty()) {
        if rv.is_none() {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if continue_token.is_some() {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if !matches!(rv_match, "Exact" | "NotOlderThan") {
            causes.push(FieldCause::not_supported(
                "resourceVersionMatch",
                rv_match,
                &["Exact", "NotOlderThan", ""],
            ));
        }
        if rv_match == "Exact" && rv == Some("0") {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if query.get("sendInitialEvents").is_some() {
        causes.push(FieldCause::forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", causes));
    }
    if let Some(token) = continue_token {
        if rv.is_some_and(|rv| rv != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (revision, start) = parse_continue(token)?;
        return Ok(ListRead::Store(Some(revision), Some(Bytes::from(start))));
    }
    Ok(match (rv, query.get("resourceVersionMatch")) {
        (None, _) => ListRead::Cache(Freshness::Consistent),
        (Some("0"), _) => ListRead::Cache(Freshness::Any),
        (Some(rv), Some("Exact")) => ListRead::Store(Some(parse_rv(rv)?), None),
        (Some(rv), _) => ListRead::Cache(Freshness::NotOlderThan(parse_rv(rv)?)),
    })
}

/// A cached object as a response item: converted if the resource is, with its
/// resourceVersion.
fn cached_object(r: &Resource, item: &CachedItem) -> Value {
    let mut object = item.object().clone();
    if let Some(conversion) = r.conversion {
        object = (conversion.from_stored)(object);
    }
    object::set_meta(
        &mut object,
        "resourceVersion",
        json!(item.mod_revision.to_string()),
    );
    object
}

/// The media type of server-side apply patches.
const APPLY_MEDIA_TYPE: &str = "application/apply-patch+yaml";

/// Which part of an object a write owns fields of.
fn managed_scope(r: &Resource, status_only: bool) -> managed::Scope {
    if status_only {
        managed::Scope::Status
    } else if r.subresources.contains(&"status") {
        managed::Scope::MainWithStatus
    } else {
        managed::Scope::Main
    }
}

fn is_namespace(r: &Resource) -> bool {
    r.group.is_empty() && r.plural == "namespaces"
}

fn is_crd(r: &Resource) -> bool {
    r.group == "apiextensions.k8s.io" && r.plural == "customresourcedefinitions"
}

fn is_service(r: &Resource) -> bool {
    r.group.is_empty() && r.plural == "services"
}

fn decode(resource: &Resource, value: &[u8], revision: Revision) -> ApiResult<Value> {
    let mut object: Value = serde_json::from_slice(value).map_err(|e| {
        ApiError::internal(format!("stored {} is not valid JSON: {e}", resource.plural))
    })?;
    if let Some(conversion) = resource.conversion {
        object = (conversion.from_stored)(object);
    } else if object.get("apiVersion").and_then(Value::as_str) != Some(&resource.api_version()) {
        // Custom resources of another served version (conversion strategy None).
        object["apiVersion"] = json!(resource.api_version());
    }
    object::set_meta(&mut object, "resourceVersion", json!(revision.to_string()));
    Ok(object)
}

fn encode(resource: &Resource, object: &Value) -> ApiResult<Bytes> {
    let mut stored = match resource.conversion {
        Some(conversion) => (conversion.to_stored)(object.clone()),
        None => object.clone(),
    };
    object::remove_meta(&mut stored, "resourceVersion");
    serde_json::to_vec(&stored)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The outcome of a compare-and-swap write to an object that must still exist: its new
/// revision, `None` when it changed under us (read again and retry), or 404 when it is gone.
fn swapped(outcome: WriteOutcome, r: &Resource, name: &str) -> ApiResult<Option<Revision>> {
    match outcome {
        WriteOutcome::Committed { revision, .. } => Ok(Some(revision)),
        WriteOutcome::Conflict { current: None } => {
            Err(ApiError::not_found(r.group, r.plural, name))
        }
        WriteOutcome::Conflict { .. } => Ok(None),
    }
}

/// A list item: as stored (bytes and revision) or already decoded.
enum Item {
    Stored(Bytes, Revision),
    Decoded(Value),
}

/// Append a stored object to a list body without decoding it: drop the leading `kind` and
/// `apiVersion` (list items carry neither) and put `resourceVersion` into `metadata`. Stored
/// objects start `{"kind":"K","apiVersion":"V","metadata":{` (see [`encode`]); anything else
/// returns false and is decoded instead.
fn write_stored_item(out: &mut Vec<u8>, stored: &[u8], revision: Revision) -> bool {
    fn skip_string(rest: &[u8]) -> Option<&[u8]> {
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        (rest[end] == b'"').then(|| &rest[end + 1..])
    }
    let Some(rest) = stored.strip_prefix(b"{\"kind\":\"").and_then(skip_string) else {
        return false;
    };
    let Some(rest) = rest
        .strip_prefix(b",\"apiVersion\":\"")
        .and_then(skip_string)
    else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b",\"metadata\":{") else {
        return false;
    };
    out.extend_from_slice(b"{\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if !rest.starts_with(b"}") {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    true
}

fn parse_rv(raw: &str) -> ApiResult<Revision> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version {raw:?}")))
}

/// An opaque continue token: the revision of the first page and the last key returned.
fn continue_token(revision: Revision, last_key: &[u8]) -> String {
    let token = json!({"rv": revision, "start": String::from_utf8_lossy(last_key)});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn parse_continue(token: &str) -> ApiResult<(Revision, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

impl Rest {
    /// Serve one resource request. `media` is the request body's media type.
    #[allow(clippy::too_many_arguments)]
    pub async fn handle(
        &self,
        req: &ResourceRequest,
        query: &Query,
        body: &[u8],
        media: &str,
        output: table::Output,
        user_agent: &str,
        user: &crate::auth::UserInfo,
    ) -> ApiResult<Reply> {
        // Create and update take JSON, YAML or protobuf; all become JSON here.
        let decoded;
        let body = match media {
            _ if !matches!(req.verb, Verb::Create | Verb::Update) => body,
            crate::protobuf::MEDIA_TYPE => {
                decoded = serde_json::to_vec(&crate::protobuf::decode(req.resource, body)?)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                decoded.as_slice()
            }
            "application/yaml" => {
                let value: Value = serde_norway::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
                })?;
                decoded =
                    serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
                decoded.as_slice()
            }
            _ => body,
        };
        let json_body = || {
            if body.is_empty()
                || matches!(
                    media,
                    "application/json" | "application/yaml" | crate::protobuf::MEDIA_TYPE
                )
            {
                Ok(())
            } else {
                Err(ApiError::unsupported_media_type(media))
            }
        };
        let ok = |object| Reply::Json(StatusCode::OK, object, Vec::new());
        let mut opts = WriteOptions::from_query(query, user_agent)?;
        opts.user = user.clone();
        let mut warnings = Vec::new();
        // Subresources: `status` (get, update, patch) where the resource has one; the others
        // (finalize, token) arrive with their issues.
        match (req.subresource.as_deref(), req.verb) {
            (None, _)
            | (Some("status" | "approval"), Verb::Get | Verb::Update | Verb::Patch)
            | (Some("finalize"), Verb::Update)
            | (Some("ephemeralcontainers"), Verb::Get | Verb::Update | Verb::Patch) => {}
            (Some("scale"), Verb::Get | Verb::Update | Verb::Patch) => {
                let scale = self.scale(req, body, media, &opts).await?;
                return Ok(ok(scale));
            }
            (Some("binding"), Verb::Create) => {
                json_body()?;
                return Ok(Reply::Json(
                    StatusCode::CREATED,
                    self.bind(req, body).await?,
                    Vec::new(),
                ));
            }
            _ => return Err(ApiError::method_not_allowed()),
        }
        match req.verb {
            Verb::Get => Ok(ok(table::object(
                req.resource,
                output,
                self.get(req).await?.0,
            )?)),
            Verb::List => self.list(req, query, output).await,
            Verb::Watch => self.watch(req, query, output).await,
            Verb::Create => {
                json_body()?;
                let created = self.create(req, body, &opts, &mut warnings).await?;
                let code = if opts.dry_run {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok(Reply::Json(code, created, warnings))
            }
            Verb::Update => {
                json_body()?;
                let updated = self.update(req, body, &opts, &mut warnings).await?;
                warnings.append(&mut opts.admitted.lock());
                warnings.extend(req.resource.strategy.warnings(&updated));
                Ok(Reply::Json(StatusCode::OK, updated, warnings))
            }
            Verb::Patch if media == APPLY_MEDIA_TYPE => {
                opts.apply = true;
                let (code, applied) = self.apply(req, query, body, &opts, &mut warnings).await?;
                warnings.append(&mut opts.admitted.lock());
                Ok(Reply::Json(code, applied, warnings))
            }
            Verb::Patch => {
                if query.get("force").is_some() {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        "PatchOptions",
                        "",
                        vec![FieldCause::forbidden(
                            "force",
                            "may not be specified for non-apply patch",
                        )],
                    ));
                }
                let kind = PatchKind::from_content_type(media)
                    .ok_or_else(|| ApiError::unsupported_media_type(media))?;
                let patched = self.patch(req, kind, body, &opts, &mut warnings).await?;
                warnings.append(&mut opts.admitted.lock());
                warnings.extend(req.resource.strategy.warnings(&patched));
                Ok(Reply::Json(StatusCode::OK, patched, warnings))
            }
            Verb::Delete => {
                let del = DeleteOptions::parse(query, body)?;
                self.delete(req, &opts, &del).await.map(ok)
            }
            Verb::DeleteCollection => self.delete_collection(req, query, &opts).await.map(ok),
        }
    }

    /// The TTL every write of `r` carries: events expire `--event-ttl` after their last write.
    fn ttl(&self, r: &Resource) -> Option<Duration> {
        r.expires.then_some(self.event_ttl)
    }

    fn name<'a>(&self, req: &'a ResourceRequest) -> &'a str {
        req.name.as_deref().unwrap_or_default()
    }

    /// The object and its revision.
    async fn get(&self, req: &ResourceRequest) -> ApiResult<(Value, Revision)> {
        let r = req.resource;
        let key = r.key(req.namespace.as_deref(), self.name(req));
        match self
            .store
            .get(key.as_bytes(), None)
            .await
            .map_err(store_error)?
        {
            (_, Some(kv)) => Ok((decode(r, &kv.value, kv.mod_revision)?, kv.mod_revision)),
            (_, None) => Err(ApiError::not_found(r.group, r.plural, self.name(req))),
        }
    }

    async fn list(
        &self,
        req: &ResourceRequest,
        query: &Query,
        output: table::Output,
    ) -> ApiResult<Reply> {
        let r = req.resource;
        // Tables and metadata-only forms decode every object.
        let table = output.transforms();
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(
            query.get("fieldSelector").unwrap_or(""),
            r.strategy.field_labels(),
        )?;
        let limit: usize = match query.get("limit") {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        };
        let read = list_read(query)?;
        let prefix = r.list_prefix(req.namespace.as_deref());
        let selective = labels != LabelSelector::default() || fields != FieldSelector::default();
        // Without selectors or a table, items go out as stored: no JSON round trip per object.
        let raw = !table && !selective;
        let mut items = Vec::new();
        let matches = |object: &Value| labels.matches(object) && fields.matches(object);
        let cached = match read {
            ListRead::Cache(freshness) => self.cache.list(&r.prefix(), &prefix, freshness).await?,
            ListRead::Store(..) => None,
        };
        let (list_revision, remaining) = if let Some(snapshot) = cached {
            let mut more = None;
            let mut last_returned: Option<Bytes> = None;
            let total = snapshot.items.len();
            for (i, item) in snapshot.items.iter().enumerate() {
                if limit > 0 && items.len() >= limit {
                    more = last_returned.clone().map(|key| ((total - i) as u64, key));
                    break;
                }
                let entry = if !selective {
                    Some(match raw {
                        true => Item::Stored(item.value.clone(), item.mod_revision),
                        false => Item::Decoded(cached_object(r, item)),
                    })
                } else if r.conversion.is_some() {
                    let object = cached_object(r, item);
                    matches(&object).then_some(Item::Decoded(object))
                } else if matches(item.object()) {
                    Some(match table {
                        true => Item::Decoded(cached_object(r, item)),
                        false => Item::Stored(item.value.clone(), item.mod_revision),
                    })
                } else {
                    None
                };
                if let Some(entry) = entry {
                    items.push(entry);
                    last_returned = Some(item.key.clone());
                }
            }
            (snapshot.revision, more)
        } else {
            let (revision, start_after) = match read {
                ListRead::Store(revision, start_after) => (revision, start_after),
                ListRead::Cache(Freshness::NotOlderThan(n)) => {
                    self.cache.wait_for_store(n).await?;
                    (None, None)
                }
                ListRead::Cache(_) => (None, None),
            };
            let mut next = start_after;
            let mut at = revision;
            // Selectors filter after the read, so read pages until `limit` matches or the end.
            loop {
                let page = self
                    .store
                    .range(RangeRequest {
                        prefix: Bytes::from(prefix.clone()),
                        start_after: next.clone(),
                        revision: at,
                        limit: if limit == 0 { 0 } else { limit - items.len() },
                        count_only: false,
                    })
                    .await
                    .map_err(|e| match e {
                        StoreError::Compacted { .. } if query.get("continue").is_some() => ApiError::expired(
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                        ),
                        other => store_error(other),
                    })?;
                at = Some(page.revision);
                let last = page.kvs.last().map(|kv| kv.key.clone());
                for kv in page.kvs {
                    if raw {
                        items.push(Item::Stored(kv.value, kv.mod_revision));
                        continue;
                    }
                    let object = decode(r, &kv.value, kv.mod_revision)?;
                    if matches(&object) {
                        items.push(Item::Decoded(object));
                    }
                }
                if page.remaining == 0 || (limit > 0 && items.len() >= limit) {
                    let more = if page.remaining > 0 {
                        last.map(|key| (page.remaining, key))
                    } else {
                        None
                    };
                    break (page.revision, more);
                }
                next = last;
            }
        };
        let mut list_meta = json!({"resourceVersion": list_revision.to_string()});
        if let Some((remaining, last_key)) = remaining {
            list_meta["continue"] = json!(continue_token(list_revision, &last_key));
            if labels == LabelSelector::default() && fields.name().is_none() {
                list_meta["remainingItemCount"] = json!(remaining);
            }
        }
        if table {
            let objects = items.into_iter().filter_map(|i| match i {
                Item::Decoded(o) => Some(o),
                Item::Stored(..) => None,
            });
            return Ok(Reply::Json(
                StatusCode::OK,
                table::list(r, output, objects.collect(), list_meta)?,
                Vec::new(),
            ));
        }
        // `{"kind":...,"apiVersion":...,"metadata":...,"items":[...]}`, written directly.
        let header = json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": list_meta});
        let mut out = serde_json::to_vec(&header).map_err(|e| ApiError::internal(e.to_string()))?;
        out.pop(); // the closing brace
        out.extend_from_slice(b",\"items\":[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let object = match item {
                Item::Stored(value, revision) => {
                    if r.conversion.is_none() && write_stored_item(&mut out, &value, revision) {
                        continue;
                    }
                    decode(r, &value, revision)?
                }
                Item::Decoded(object) => object,
            };
            let mut object = object;
            if let Some(map) = object.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            serde_json::to_writer(&mut out, &object)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        out.extend_from_slice(b"]}");
        Ok(Reply::Raw(StatusCode::OK, Bytes::from(out)))
    }

    /// Drop fields the schema does not know: an error under `Strict`, a warning under `Warn`.
    fn check_fields(
        &self,
        r: &Resource,
        object: &mut Value,
        validation: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let Some((schemas, root)) = self.openapi.schema_of(r) else {
            return Ok(());
        };
        let unknown = crate::openapi::prune_unknown_fields(schemas, &root, object);
        if unknown.is_empty() {
            return Ok(());
        }
        let described: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match validation {
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                described.join(", "),
                kind = r.kind,
                version = r.version
            ))),
            FieldValidation::Warn => {
                warnings.extend(described);
                Ok(())
            }
            FieldValidation::Ignore => Ok(()),
        }
    }

    /// The resource's type in its OpenAPI document, for field ownership.
    fn managed_schema(&self, r: &Resource) -> Option<managed::Schema<'_>> {
        self.openapi.patch_schema(r)
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply of the body's configuration
    /// for `fieldManager`, creating the object if it does not exist.
    async fn apply(
        &self,
        req: &ResourceRequest,
        query: &Query,
        body: &[u8],
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> ApiResult<(StatusCode, Value)> {
        let r = req.resource;
        let name = self.name(req).to_string();
        if query.get("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![FieldCause {
                    reason: "FieldValueRequired",
                    field: "fieldManager".into(),
                    message: "Required value: is required for apply patch".into(),
                }],
            ));
        }
        let force = match query.get("force") {
            None | Some("false") => false,
            Some("true") | Some("") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid force {other:?}: must be true or false"
                )));
            }
        };
        let mut applied: Value = serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        }
        for field in ["apiVersion", "kind"] {
            if applied
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "{field} must be set in an apply configuration"
                )));
            }
        }
        let (kind, api_version) = (
            applied["kind"].as_str().unwrap_or_default().to_string(),
            applied["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        if kind != r.kind || api_version != r.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                r.api_version()
            )));
        }
        match meta_str(&applied, "name") {
            Some(n) if n == name => {}
            _ => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
        }
        self.check_fields(r, &mut applied, opts.validation, warnings)?;
        let status_only = req.subresource.as_deref() == Some("status");
        let now = object::now_rfc3339();
        let api_version = r.api_version();
        let write = managed::Write {
            manager: &opts.manager,
            api_version: &api_version,
            subresource: if status_only { "status" } else { "" },
            scope: managed_scope(r, status_only),
            now: &now,
        };
        let what = (r.group, r.plural, name.as_str());
        let result = self
            .modify(req, None, opts, |current| {
                managed::apply(
                    Some(current),
                    &applied,
                    self.managed_schema(r),
                    &write,
                    force,
                    what,
                )
            })
            .await;
        match result {
            Err(e)
                if e.reason == "NotFound"
                    && e.details_name() == Some(name.as_str())
                    && !status_only =>
            {
                let object =
                    managed::apply(None, &applied, self.managed_schema(r), &write, force, what)?;
                let body =
                    serde_json::to_vec(&object).map_err(|e| ApiError::internal(e.to_string()))?;
                let create = ResourceRequest {
                    verb: Verb::Create,
                    ..req.clone()
                };
                let created = self.create(&create, &body, opts, warnings).await?;
                let code = if opts.dry_run {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok((code, created))
            }
            other => other.map(|object| (StatusCode::OK, object)),
        }
    }

    /// Decode and check a request body for this resource.
    fn parse_body(&self, req: &ResourceRequest, body: &[u8]) -> ApiResult<Value> {
        let r = req.resource;
        let object: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or(r.kind);
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| r.api_version());
        if kind != r.kind || api_version != r.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                r.api_version()
            )));
        }
        if let (Some(url_ns), Some(body_ns)) = (
            req.namespace.as_deref(),
            meta_str(&object, "namespace").filter(|ns| !ns.is_empty()),
        ) && url_ns != body_ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(object::with_type_meta(r, object))
    }

    /// Create an object from a JSON value (used for the objects every cluster starts with).
    pub async fn create_object(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        object: &Value,
    ) -> ApiResult<Value> {
        let req = ResourceRequest {
            resource,
            namespace: namespace.map(str::to_string),
            name: None,
            subresource: None,
            verb: Verb::Create,
        };
        let body = serde_json::to_vec(object).map_err(|e| ApiError::internal(e.to_string()))?;
        self.create(&req, &body, &WriteOptions::internal(), &mut Vec::new())
            .await
    }

    /// Create `desired`, or bring an existing object's fields other than metadata and status
    /// (and its labels) in line with it; no write when nothing differs.
    pub async fn ensure_object(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        desired: &Value,
    ) -> ApiResult<Value> {
        let req = ResourceRequest {
            resource,
            namespace: namespace.map(str::to_string),
            name: meta_str(desired, "name").map(str::to_string),
            subresource: None,
            verb: Verb::Update,
        };
        let wanted = |current: &Value| {
            let mut object = current.clone();
            if let (Some(map), Some(fields)) = (object.as_object_mut(), desired.as_object()) {
                for (k, v) in fields {
                    if !matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion") {
                        map.insert(k.clone(), v.clone());
                    }
                }
            }
            if let Some(labels) = desired.pointer("/metadata/labels") {
                object::set_meta(&mut object, "labels", labels.clone());
            }
            object
        };
        let current = match self.get(&req).await {
            Ok((current, _)) => current,
            Err(e) if e.reason == "NotFound" => {
                return self.create_object(resource, namespace, desired).await;
            }
            Err(e) => return Err(e),
        };
        let mut candidate = wanted(&current);
        resource.strategy.prepare_update(&current, &mut candidate)?;
        if candidate == current {
            return Ok(current);
        }
        let opts = WriteOptions::internal();
        self.modify(&req, None, &opts, |current| Ok(wanted(current)))
            .await
    }

    async fn create(
        &self,
        req: &ResourceRequest,
        body: &[u8],
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Value> {
        let r = req.resource;
        let mut object = self.parse_body(req, body)?;
        self.check_fields(r, &mut object, opts.validation, warnings)?;
        let name = match (meta_str(&object, "name"), meta_str(&object, "generateName")) {
            (Some(name), _) => name.to_string(),
            (None, Some(prefix)) => format!("{prefix}{}", object::random_suffix()),
            (None, None) => {
                return Err(ApiError::invalid(
                    r.group,
                    r.kind,
                    "",
                    vec![crate::status::FieldCause::required("metadata.name")],
                ));
            }
        };
        let mut causes = object::validate_name(r.name_rule, &name, "metadata.name");
        causes.extend(object::validate_metadata(&object));
        if !causes.is_empty() {
            return Err(ApiError::invalid(r.group, r.kind, &name, causes));
        }
        let requested_name = meta_str(&object, "name").unwrap_or_default().to_string();
        object::set_meta(&mut object, "name", json!(name));
        if r.namespaced {
            object::set_meta(
                &mut object,
                "namespace",
                json!(req.namespace.as_deref().unwrap_or("default")),
            );
        }
        object::set_meta(&mut object, "uid", json!(uuid::Uuid::new_v4().to_string()));
        object::set_meta(
            &mut object,
            "creationTimestamp",
            json!(object::now_rfc3339()),
        );
        object::remove_meta(&mut object, "deletionTimestamp");
        object::remove_meta(&mut object, "resourceVersion");
        r.strategy.prepare_create(&mut object)?;
        if r.generation {
            object::set_meta(&mut object, "generation", json!(1));
        }
        if !opts.apply {
            let now = object::now_rfc3339();
            let api_version = r.api_version();
            let write = managed::Write {
                manager: &opts.manager,
                api_version: &api_version,
                subresource: "",
                scope: managed_scope(r, false),
                now: &now,
            };
            managed::record_update(None, &mut object, self.managed_schema(r), &write);
        }
        let namespace = meta_str(&object, "namespace")
            .unwrap_or_default()
            .to_string();
        let attrs = crate::admission::Attributes {
            operation: crate::admission::Operation::Create,
            resource: r,
            subresource: None,
            namespace: &namespace,
            name: &requested_name,
            old_object: None,
            user: &opts.user,
            dry_run: opts.dry_run,
        };
        crate::admission::CHAIN
            .write(&attrs, &mut object, self, warnings, |o| {
                r.strategy.prepare_create(o)
            })
            .await?;
        let allocation = match is_service(r) {
            true => Some(service::allocate(&self.store, None, &mut object, opts.dry_run).await?),
            false => None,
        };
        if opts.dry_run {
            return Ok(object);
        }
        let key = r.key(req.namespace.as_deref(), &name);
        let outcome = match encode(r, &object) {
            Ok(bytes) => self
                .store
                .create(key.as_bytes(), bytes, self.ttl(r))
                .await
                .map_err(store_error),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(WriteOutcome::Committed { revision, .. }) => {
                if let Some(allocation) = allocation {
                    allocation.commit(&self.store).await;
                }
                self.written(r).await?;
                object::set_meta(&mut object, "resourceVersion", json!(revision.to_string()));
                warnings.extend(r.strategy.warnings(&object));
                Ok(object)
            }
            Ok(WriteOutcome::Conflict { .. }) => {
                if let Some(allocation) = allocation {
                    allocation.rollback(&self.store).await;
                }
                Err(ApiError::already_exists(r.group, r.plural, &name))
            }
            Err(e) => {
                if let Some(allocation) = allocation {
                    allocation.rollback(&self.store).await;
                }
                Err(e)
            }
        }
    }

    /// PUT: replace the object (or, on `/status`, its status) with the body.
    async fn update(
        &self,
        req: &ResourceRequest,
        body: &[u8],
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Value> {
        let r = req.resource;
        let name = self.name(req);
        let mut object = self.parse_body(req, body)?;
        self.check_fields(r, &mut object, opts.validation, warnings)?;
        match meta_str(&object, "name") {
            Some(n) if n == name => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            None => {
                return Err(ApiError::bad_request(
                    "name is required in the request body",
                ));
            }
        }
        let precondition = meta_str(&object, "resourceVersion")
            .map(parse_rv)
            .transpose()?;
        self.modify(req, precondition, opts, |_current| Ok(object.clone()))
            .await
    }

    /// PATCH: apply the patch to the latest object; 409 only when the patch itself carries a
    /// stale resourceVersion.
    async fn patch(
        &self,
        req: &ResourceRequest,
        kind: PatchKind,
        body: &[u8],
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Value> {
        let r = req.resource;
        let name = self.name(req).to_string();
        let schema = self.openapi.patch_schema(r);
        self.modify(req, None, opts, |current| {
            let mut patched = patch::apply(kind, current, body, schema)?;
            if !patched.is_object() {
                return Err(ApiError::unprocessable(
                    "the patched object is not a JSON object",
                ));
            }
            warnings.clear();
            self.check_fields(r, &mut patched, opts.validation, warnings)?;
            match meta_str(&patched, "resourceVersion") {
                Some(rv) if Some(rv) != meta_str(current, "resourceVersion") => {
                    return Err(ApiError::conflict(r.group, r.plural, &name));
                }
                _ => {}
            }
            if patched.get("kind") != current.get("kind")
                || patched.get("apiVersion") != current.get("apiVersion")
            {
                return Err(ApiError::bad_request(
                    "the patch may not change kind or apiVersion",
                ));
            }
            if meta_str(&patched, "name") != Some(name.as_str())
                || meta_str(&patched, "namespace") != meta_str(current, "namespace")
            {
                return Err(ApiError::bad_request(
                    "the patch may not change the object's name or namespace",
                ));
            }
            Ok(patched)
        })
        .await
    }

    /// Read-modify-write of one object: `change` turns the latest object into the wanted one,
    /// then system fields and the status/spec split are enforced and the store write is a
    /// compare-and-swap, retried on a concurrent change unless `precondition` pins the revision.
    async fn modify(
        &self,
        req: &ResourceRequest,
        precondition: Option<Revision>,
        opts: &WriteOptions,
        mut change: impl FnMut(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Value> {
        let r = req.resource;
        let name = self.name(req);
        // `approval` (certificate signing requests) writes status conditions like `status`.
        let status_only = matches!(req.subresource.as_deref(), Some("status" | "approval"));
        // `namespaces/<name>/finalize` writes only `spec.finalizers`.
        let finalize = req.subresource.as_deref() == Some("finalize");
        let ephemeral = req.subresource.as_deref() == Some("ephemeralcontainers");
        let has_status = r.subresources.contains(&"status");
        loop {
            let (current, revision) = self.get(req).await?;
            if precondition.is_some_and(|p| p != revision) {
                return Err(ApiError::conflict(r.group, r.plural, name));
            }
            let wanted = change(&current)?;
            let mut object = if ephemeral {
                // Only the ephemeral containers change through this subresource.
                let mut object = current.clone();
                let list = wanted
                    .pointer("/spec/ephemeralContainers")
                    .cloned()
                    .unwrap_or(json!([]));
                object::set_pointer(&mut object, "/spec/ephemeralContainers", list);
                object
            } else if finalize {
                let mut object = current.clone();
                match wanted
                    .pointer("/spec/finalizers")
                    .filter(|f| f.as_array().is_some_and(|f| !f.is_empty()))
                {
                    Some(finalizers) => {
                        object::set_pointer(&mut object, "/spec/finalizers", finalizers.clone())
                    }
                    // None left: the field goes (`spec: {}`), as upstream stores it.
                    None => {
                        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("finalizers");
                        }
                    }
                }
                object
            } else if status_only {
                // Only the status changes through /status.
                let mut object = current.clone();
                match wanted.get("status") {
                    Some(status) => object["status"] = status.clone(),
                    None => drop(object.as_object_mut().map(|o| o.remove("status"))),
                }
                for field in r.strategy.status_metadata() {
                    match wanted.pointer(&format!("/metadata/{field}")) {
                        Some(v) => object::set_meta(&mut object, field, v.clone()),
                        None => object::remove_meta(&mut object, field),
                    }
                }
                object
            } else {
                let mut object = wanted;
                if has_status {
                    // ...and never through the main resource.
                    match current.get("status") {
                        Some(status) => object["status"] = status.clone(),
                        None => drop(object.as_object_mut().map(|o| o.remove("status"))),
                    }
                }
                object
            };
            for field in [
                "uid",
                "creationTimestamp",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match current.pointer(&format!("/metadata/{field}")) {
                    Some(v) => object::set_meta(&mut object, field, v.clone()),
                    None => object::remove_meta(&mut object, field),
                }
            }
            let spec_finalizers = object.pointer("/spec/finalizers").cloned();
            let causes = object::validate_metadata(&object);
            if !causes.is_empty() {
                return Err(ApiError::invalid(r.group, r.kind, name, causes));
            }
            if ephemeral {
                crate::pod::update_ephemeral_containers(&current, &mut object)?;
            } else {
                r.strategy.prepare_update(&current, &mut object)?;
            }
            if finalize {
                match spec_finalizers {
                    Some(finalizers) => {
                        object::set_pointer(&mut object, "/spec/finalizers", finalizers)
                    }
                    None => {
                        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("finalizers");
                        }
                    }
                }
            }
            if let Some(generation) = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .filter(|_| r.generation)
            {
                let bump = !status_only && r.strategy.bumps_generation(&current, &object);
                object::set_meta(
                    &mut object,
                    "generation",
                    json!(generation + i64::from(bump)),
                );
            }
            let finalizers = |o: &Value| -> Vec<String> {
                o.pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .map(|f| {
                        f.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            if !opts.apply {
                let now = object::now_rfc3339();
                let api_version = r.api_version();
                let write = managed::Write {
                    manager: &opts.manager,
                    api_version: &api_version,
                    subresource: match (status_only, ephemeral) {
                        (true, _) => "status",
                        (_, true) => "ephemeralcontainers",
                        _ => opts.via,
                    },
                    scope: managed_scope(r, status_only),
                    now: &now,
                };
                managed::record_update(Some(&current), &mut object, self.managed_schema(r), &write);
            }
            let attrs = crate::admission::Attributes {
                operation: crate::admission::Operation::Update,
                resource: r,
                subresource: req.subresource.as_deref(),
                namespace: req
                    .namespace
                    .as_deref()
                    .filter(|_| r.namespaced)
                    .unwrap_or(""),
                name,
                old_object: Some(&current),
                user: &opts.user,
                dry_run: opts.dry_run,
            };
            let mut admitted = Vec::new();
            crate::admission::CHAIN
                .write(
                    &attrs,
                    &mut object,
                    self,
                    &mut admitted,
                    |o| match ephemeral {
                        true => crate::pod::update_ephemeral_containers(&current, o),
                        false => r.strategy.prepare_update(&current, o),
                    },
                )
                .await?;
            *opts.admitted.lock() = admitted;
            let deleting = current.pointer("/metadata/deletionTimestamp").is_some();
            if deleting {
                let old = finalizers(&current);
                let added: Vec<String> = finalizers(&object)
                    .into_iter()
                    .filter(|f| !old.contains(f))
                    .collect();
                if !added.is_empty() {
                    let list = added
                        .iter()
                        .map(|f| format!("{f:?}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let detail = format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                    );
                    return Err(ApiError::invalid(
                        r.group,
                        r.kind,
                        name,
                        vec![FieldCause::forbidden("metadata.finalizers", &detail)],
                    ));
                }
            }
            if opts.dry_run {
                if is_service(r) && !status_only {
                    let allocation =
                        service::allocate(&self.store, Some(&current), &mut object, true).await?;
                    allocation.rollback(&self.store).await;
                }
                object::set_meta(&mut object, "resourceVersion", json!(revision.to_string()));
                return Ok(object);
            }
            let key = r.key(req.namespace.as_deref(), name);
            // The last finalizer of an object being deleted (without a grace period still
            // running) is removed: the object goes.
            let grace = object
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let spec_finalizers_left = object
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
                && is_namespace(r);
            if deleting && finalizers(&object).is_empty() && !spec_finalizers_left && grace == 0 {
                let outcome = self
                    .store
                    .delete(key.as_bytes(), Some(revision))
                    .await
                    .map_err(store_error)?;
                match swapped(outcome, r, name)? {
                    Some(_) => {
                        self.deleted(r, &current).await;
                        return Ok(object);
                    }
                    None => continue,
                }
            }
            // Nothing changed: as upstream, nothing is written and the object keeps its
            // resourceVersion (a repeated apply or update makes no watch event).
            object::set_meta(&mut object, "resourceVersion", json!(revision.to_string()));
            if object == current {
                return Ok(current);
            }
            let allocation = match is_service(r) && !status_only {
                true => {
                    Some(service::allocate(&self.store, Some(&current), &mut object, false).await?)
                }
                false => None,
            };
            let outcome = match encode(r, &object) {
                Ok(bytes) => self
                    .store
                    .update(key.as_bytes(), bytes, revision, self.ttl(r))
                    .await
                    .map_err(store_error)
                    .and_then(|outcome| swapped(outcome, r, name)),
                Err(e) => Err(e),
            };
            if let Some(allocation) = allocation {
                match outcome {
                    Ok(Some(_)) => allocation.commit(&self.store).await,
                    _ => allocation.rollback(&self.store).await,
                }
            }
            match outcome? {
                Some(revision) => {
                    self.written(r).await?;
                    object::set_meta(&mut object, "resourceVersion", json!(revision.to_string()));
                    return Ok(object);
                }
                None if precondition.is_some() => {
                    return Err(ApiError::conflict(r.group, r.plural, name));
                }
                None => continue,
            }
        }
    }

    /// DELETE: objects with finalizers, and pods still on a node, are only marked (a
    /// deletionTimestamp) and go when their finalizers are removed or their node lets go;
    /// everything else goes at once.
    async fn delete(
        &self,
        req: &ResourceRequest,
        opts: &WriteOptions,
        del: &DeleteOptions,
    ) -> ApiResult<Value> {
        let r = req.resource;
        let name = self.name(req);
        loop {
            let (mut object, revision) = self.get(req).await?;
            del.check_preconditions(r, name, &object)?;
            let attrs = crate::admission::Attributes {
                operation: crate::admission::Operation::Delete,
                resource: r,
                subresource: None,
                namespace: req
                    .namespace
                    .as_deref()
                    .filter(|_| r.namespaced)
                    .unwrap_or(""),
                name,
                old_object: Some(&object),
                user: &opts.user,
                dry_run: opts.dry_run,
            };
            crate::admission::CHAIN.delete(&attrs, self).await?;
            let key = r.key(req.namespace.as_deref(), name);
            // The policy is recorded as the garbage collector's finalizer (upstream's
            // `deletionFinalizersForGarbageCollection`); Background needs none.
            match del.propagation {
                Some(policy) if object.pointer("/metadata/deletionTimestamp").is_none() => {
                    let list = object::metadata_mut(&mut object)
                        .entry("finalizers")
                        .or_insert_with(|| json!([]));
                    if let Some(list) = list.as_array_mut() {
                        list.retain(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER);
                        match policy {
                            Propagation::Orphan => list.push(json!(ORPHAN_FINALIZER)),
                            Propagation::Foreground => list.push(json!(FOREGROUND_FINALIZER)),
                            Propagation::Background => {}
                        }
                    }
                    if list.as_array().is_some_and(Vec::is_empty) {
                        object::remove_meta(&mut object, "finalizers");
                    }
                }
                _ => {}
            }
            let has_finalizers = ["/metadata/finalizers", "/spec/finalizers"]
                .iter()
                .filter(|p| **p == "/metadata/finalizers" || is_namespace(r))
                .any(|p| {
                    object
                        .pointer(p)
                        .and_then(Value::as_array)
                        .is_some_and(|f| !f.is_empty())
                });
            let grace = match r.plural {
                "pods" if r.group.is_empty() => pod_grace(&object, del.grace),
                _ => 0,
            };
            if has_finalizers || grace > 0 {
                if object.pointer("/metadata/deletionTimestamp").is_some() {
                    return Ok(object); // already being deleted
                }
                let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(grace);
                object::set_meta(&mut object, "deletionTimestamp", json!(object::rfc3339(at)));
                if is_namespace(r) {
                    // Namespaces carry no grace period (upstream's namespace storage).
                    object::set_pointer(&mut object, "/status/phase", json!("Terminating"));
                } else {
                    object::set_meta(&mut object, "deletionGracePeriodSeconds", json!(grace));
                }
                if let Some(generation) = object
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                {
                    object::set_meta(&mut object, "generation", json!(generation + 1));
                }
                if opts.dry_run {
                    return Ok(object);
                }
                let outcome = self
                    .store
                    .update(key.as_bytes(), encode(r, &object)?, revision, self.ttl(r))
                    .await
                    .map_err(store_error)?;
                match swapped(outcome, r, name)? {
                    Some(revision) => {
                        object::set_meta(
                            &mut object,
                            "resourceVersion",
                            json!(revision.to_string()),
                        );
                        if is_crd(r) {
                            self.delete_custom_objects(req, &object).await?;
                        }
                        return Ok(object);
                    }
                    None => continue,
                }
            }
            if opts.dry_run {
                return Ok(object);
            }
            let outcome = self
                .store
                .delete(key.as_bytes(), Some(revision))
                .await
                .map_err(store_error)?;
            match swapped(outcome, r, name)? {
                Some(deleted_at) => {
                    self.deleted(r, &object).await;
                    // Upstream answers the last state at the delete's revision.
                    object::set_meta(
                        &mut object,
                        "resourceVersion",
                        json!(deleted_at.to_string()),
                    );
                    return Ok(object);
                }
                None => continue,
            }
        }
    }

    /// After an object left the store: give back what it held.
    async fn deleted(&self, r: &Resource, object: &Value) {
        if is_service(r) {
            service::release(&self.store, object).await;
        }
        if is_crd(r)
            && let Err(e) = crd::refresh(&self.store, &self.openapi).await
        {
            tracing::warn!(error = %e.message, "cannot refresh custom resources");
        }
    }

    /// After an object was created or changed: custom resource definitions change what is
    /// served.
    async fn written(&self, r: &Resource) -> ApiResult<()> {
        if is_crd(r) {
            crd::refresh(&self.store, &self.openapi).await?;
        }
        Ok(())
    }

    /// A definition being deleted: delete its custom resources, then let it go by removing
    /// its cleanup finalizer (upstream's finalizing controller, done in the request).
    async fn delete_custom_objects(&self, req: &ResourceRequest, crd: &Value) -> ApiResult<()> {
        crd::refresh(&self.store, &self.openapi).await?;
        let prefix = crd::objects_prefix(crd);
        loop {
            let page = self
                .store
                .range(RangeRequest {
                    prefix: Bytes::from(prefix.clone()),
                    limit: 500,
                    ..RangeRequest::default()
                })
                .await
                .map_err(store_error)?;
            for kv in &page.kvs {
                self.store
                    .delete(&kv.key, Some(kv.mod_revision))
                    .await
                    .map_err(store_error)?;
            }
            if page.kvs.is_empty() {
                break;
            }
        }
        let update = ResourceRequest {
            subresource: None,
            verb: Verb::Update,
            ..req.clone()
        };
        self.modify(&update, None, &WriteOptions::internal(), |current| {
            let mut object = current.clone();
            if let Some(list) = object
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                list.retain(|f| f != crd::CLEANUP_FINALIZER);
            }
            Ok(object)
        })
        .await
        .map(|_| ())
    }

    /// The `scale` subresource: an `autoscaling/v1` Scale view of the object's replica count;
    /// a PUT or PATCH of it changes only the replicas.
    async fn scale(
        &self,
        req: &ResourceRequest,
        body: &[u8],
        media: &str,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let r = req.resource;
        let Some(paths) = r.scale.as_ref() else {
            return Err(ApiError::path_not_found());
        };
        let name = self.name(req).to_string();
        let scale_opts = WriteOptions {
            via: "scale",
            manager: opts.manager.clone(),
            user: opts.user.clone(),
            admitted: Default::default(),
            ..*opts
        };
        let opts = &scale_opts;
        let main = ResourceRequest {
            subresource: None,
            ..req.clone()
        };
        let as_scale = |object: &Value| -> Value {
            let meta = object::metadata(object);
            let pick = |f: &str| meta.and_then(|m| m.get(f)).cloned().unwrap_or(Value::Null);
            let mut metadata = json!({"name": pick("name")});
            for field in ["namespace", "uid", "resourceVersion", "creationTimestamp"] {
                let value = pick(field);
                if !value.is_null() {
                    metadata[field] = value;
                }
            }
            let mut status = json!({
                "replicas": object.pointer(paths.status_replicas).cloned().unwrap_or(json!(0)),
            });
            if let Some(selector) = paths.selector.and_then(|p| object.pointer(p)) {
                let text = match selector {
                    Value::String(s) => s.clone(),
                    // A `metav1.LabelSelector`, or a plain label map (replication controllers).
                    Value::Object(map)
                        if map.contains_key("matchLabels")
                            || map.contains_key("matchExpressions") =>
                    {
                        crate::selector::label_selector_string(selector)
                    }
                    Value::Object(_) => {
                        crate::selector::label_selector_string(&json!({"matchLabels": selector}))
                    }
                    other => crate::selector::label_selector_string(other),
                };
                if !text.is_empty() {
                    status["selector"] = json!(text);
                }
            }
            json!({
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": metadata,
                "spec": {"replicas": object.pointer(paths.spec_replicas).cloned().unwrap_or(json!(0))},
                "status": status,
            })
        };
        let replicas = |scale: &Value| -> ApiResult<i64> {
            let value = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            match value.as_i64() {
                Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n),
                Some(n) if n < 0 => Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    &name,
                    vec![FieldCause::invalid_raw(
                        "spec.replicas",
                        &n.to_string(),
                        "must be greater than or equal to 0",
                    )],
                )),
                _ => Err(ApiError::bad_request(format!(
                    "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: {value} is not an int32"
                ))),
            }
        };
        match req.verb {
            Verb::Get => Ok(as_scale(&self.get(&main).await?.0)),
            Verb::Update => {
                if !matches!(media, "application/json" | "application/yaml" | "") {
                    return Err(ApiError::unsupported_media_type(media));
                }
                let scale: Value = match media {
                    "application/yaml" => serde_norway::from_slice(body).map_err(|e| {
                        ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
                    })?,
                    _ => serde_json::from_slice(body).map_err(|e| {
                        ApiError::bad_request(format!("error decoding request body: {e}"))
                    })?,
                };
                let wanted = replicas(&scale)?;
                let precondition = meta_str(&scale, "resourceVersion")
                    .filter(|rv| !rv.is_empty())
                    .map(parse_rv)
                    .transpose()?;
                let object = self
                    .modify(&main, precondition, opts, |current| {
                        let mut object = current.clone();
                        object::set_pointer(&mut object, paths.spec_replicas, json!(wanted));
                        Ok(object)
                    })
                    .await?;
                Ok(as_scale(&object))
            }
            _ => {
                let kind = PatchKind::from_content_type(media)
                    .ok_or_else(|| ApiError::unsupported_media_type(media))?;
                let object = self
                    .modify(&main, None, opts, |current| {
                        let scale = as_scale(current);
                        let patched = patch::apply(kind, &scale, body, None)?;
                        if meta_str(&patched, "resourceVersion")
                            .is_some_and(|rv| Some(rv) != meta_str(current, "resourceVersion"))
                        {
                            return Err(ApiError::conflict(r.group, r.plural, &name));
                        }
                        let wanted = replicas(&patched)?;
                        let mut object = current.clone();
                        object::set_pointer(&mut object, paths.spec_replicas, json!(wanted));
                        Ok(object)
                    })
                    .await?;
                Ok(as_scale(&object))
            }
        }
    }

    /// POST `pods/<name>/binding`: assign an unassigned pod to a node (the scheduler's write).
    async fn bind(&self, req: &ResourceRequest, body: &[u8]) -> ApiResult<Value> {
        let r = req.resource;
        let name = self.name(req);
        let binding: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                vec![FieldCause::required("target.name")],
            ));
        }
        let pod_req = ResourceRequest {
            subresource: None,
            ..req.clone()
        };
        loop {
            let (mut pod, revision) = self.get(&pod_req).await?;
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict_message(
                    r.group,
                    "pods/binding",
                    name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let current = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !current.is_empty() {
                return Err(ApiError::conflict_message(
                    r.group,
                    "pods/binding",
                    name,
                    &format!("pod {name} is already assigned to node \"{current}\""),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339()});
            let conditions = pod["status"]
                .as_object_mut()
                .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
            if let Some(Value::Array(conditions)) = conditions {
                conditions.retain(|c| c["type"] != "PodScheduled");
                conditions.push(scheduled);
            }
            let key = r.key(req.namespace.as_deref(), name);
            let outcome = self
                .store
                .update(key.as_bytes(), encode(r, &pod)?, revision, None)
                .await
                .map_err(store_error)?;
            if swapped(outcome, r, name)?.is_some() {
                return Ok(
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                );
            }
        }
    }

    /// DELETE on a collection: every object matching the selectors, returned as a list.
    async fn delete_collection(
        &self,
        req: &ResourceRequest,
        query: &Query,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let r = req.resource;
        let list = match self.list(req, query, table::Output::Object).await? {
            Reply::Json(_, list, _) => list,
            Reply::Raw(_, bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))?
            }
            Reply::Stream(_) => {
                return Err(ApiError::internal("listing for deletecollection streamed"));
            }
        };
        let mut deleted = Vec::new();
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let Some(name) = meta_str(&item, "name") else {
                continue;
            };
            let one = ResourceRequest {
                resource: r,
                namespace: meta_str(&item, "namespace")
                    .map(str::to_string)
                    .or_else(|| req.namespace.clone()),
                name: Some(name.to_string()),
                subresource: None,
                verb: Verb::Delete,
            };
            match self.delete(&one, opts, &DeleteOptions::default()).await {
                Ok(object) => deleted.push(object),
                Err(e) if e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(
            json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": {}, "items": deleted}),
        )
    }

    async fn watch(
        &self,
        req: &ResourceRequest,
        query: &Query,
        output: table::Output,
    ) -> ApiResult<Reply> {
        let r = req.resource;
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(
            query.get("fieldSelector").unwrap_or(""),
            r.strategy.field_labels(),
        )?;
        let rv = query
            .get("resourceVersion")
            .filter(|rv| *rv != "0")
            .map(parse_rv)
            .transpose()?;
        if let Some(rv) = rv {
            // A resourceVersion from the future (a write still in flight) is waited for.
            self.cache.wait_for_store(rv).await?;
        }
        let bookmarks = query.flag("allowWatchBookmarks");
        // Where the stream starts: upstream's rules for sendInitialEvents and resourceVersion.
        let start = match query.get("sendInitialEvents") {
            Some("true") => {
                let mut causes = Vec::new();
                if query.get("resourceVersionMatch") != Some("NotOlderThan") {
                    causes.push(FieldCause::forbidden(
                        "resourceVersionMatch",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    ));
                }
                if !bookmarks {
                    causes.push(FieldCause::forbidden(
                        "allowWatchBookmarks",
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    ));
                }
                if !causes.is_empty() {
                    return Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", causes));
                }
                WatchFrom::InitialEvents { end_bookmark: true }
            }
            Some("false") => match rv {
                Some(rv) => WatchFrom::After(rv),
                None => WatchFrom::Now,
            },
            _ => match rv {
                Some(rv) => WatchFrom::After(rv),
                // resourceVersion unset or 0: current state first, as ADDED events.
                None => WatchFrom::InitialEvents {
                    end_bookmark: false,
                },
            },
        };
        // timeoutSeconds unset or 0: upstream's random 30–60 minutes.
        let timeout = match query.get("timeoutSeconds") {
            Some(t) => match t
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?
            {
                0 => default_watch_timeout(),
                seconds => Duration::from_secs(seconds),
            },
            None => default_watch_timeout(),
        };
        let prefix = match fields.name() {
            Some(name) => r.key(req.namespace.as_deref(), name),
            None => r.list_prefix(req.namespace.as_deref()),
        };
        let (tx, rx) = mpsc::channel(256);
        let store = self.store.clone();
        let stream = WatchStream {
            resource: r,
            labels,
            fields,
            tx,
            bookmarks,
            output,
            headers_sent: AtomicBool::new(false),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        tokio::spawn(async move {
            let run = stream.run(store, prefix, start, deadline);
            let _ = tokio::time::timeout_at(deadline, run).await;
        });
        Ok(Reply::Stream(rx))
    }
}

/// Where a watch stream starts.
#[derive(Debug, Clone, Copy)]
enum WatchFrom {
    /// Events after this revision.
    After(Revision),
    /// Events after the current revision.
    Now,
    /// The current state as ADDED events first; with `end_bookmark`, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end` (streaming lists).
    InitialEvents { end_bookmark: bool },
}

/// One watch connection's pump: store events → filtered, typed watch events.
struct WatchStream {
    resource: &'static Resource,
    labels: LabelSelector,
    fields: FieldSelector,
    tx: mpsc::Sender<Bytes>,
    bookmarks: bool,
    /// The form objects go out in: as they are, as PartialObjectMetadata, or as one-row Tables
    /// (`kubectl get -w`), where only the first event carries the column definitions.
    output: table::Output,
    headers_sent: AtomicBool,
}

impl WatchStream {
    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    async fn send(&self, kind: &str, object: Value) -> bool {
        // Every event's object is transformed, bookmarks included (as upstream's watch encoder
        // does); ERROR events carry a Status, which never is.
        let object = match (kind, self.output) {
            ("ERROR", _) | (_, table::Output::Object) => object,
            (_, output) => {
                let headers = !self.headers_sent.swap(true, Ordering::Relaxed);
                table::watch_object(self.resource, output, object, headers)
            }
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        // A client that takes no event for this long is unresponsive: its stream is closed
        // without an ERROR event, as upstream's cache drops blocked watchers.
        matches!(
            tokio::time::timeout(UNRESPONSIVE_WATCHER, self.tx.send(Bytes::from(line))).await,
            Ok(Ok(()))
        )
    }

    async fn run(
        self,
        store: Store,
        prefix: String,
        start: WatchFrom,
        deadline: tokio::time::Instant,
    ) {
        let mut after = match start {
            WatchFrom::After(rv) => rv,
            WatchFrom::Now => store.current_revision(),
            WatchFrom::InitialEvents { end_bookmark } => {
                let Some(rv) = self.initial(&store, &prefix).await else {
                    return;
                };
                if end_bookmark {
                    // Marks the end of the initial state for streaming lists.
                    let bookmark = json!({
                        "kind": self.resource.kind,
                        "apiVersion": self.resource.api_version(),
                        "metadata": {"resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
                    });
                    if !self.send("BOOKMARK", bookmark).await {
                        return;
                    }
                }
                rv
            }
        };
        let mut bookmarks = BookmarkSchedule::new(tokio::time::Instant::now(), deadline);
        'rewatch: loop {
            let mut watch = match store
                .watch(prefix.as_bytes(), WatchStart::After(after))
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    let status = store_error(e).to_status();
                    self.send("ERROR", status).await;
                    return;
                }
            };
            loop {
                tokio::select! {
                    message = watch.next() => match message {
                        Ok(WatchMessage::Event(event)) => {
                            after = event.revision();
                            if !self.forward(&event).await {
                                return;
                            }
                        }
                        Ok(WatchMessage::Progress(rv)) => {
                            after = after.max(rv);
                            if self.bookmarks {
                                let bookmark = json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
                                if !self.send("BOOKMARK", bookmark).await {
                                    return;
                                }
                            }
                        }
                        // Fell behind the store: pick up from the last event delivered.
                        Err(StoreError::Lagged { last_revision }) => {
                            after = last_revision;
                            continue 'rewatch;
                        }
                        Err(e) => {
                            if matches!(e, StoreError::Compacted { .. }) {
                                self.send("ERROR", store_error(e).to_status()).await;
                            }
                            return;
                        }
                    },
                    // The store answers with a Progress message, sent on as a BOOKMARK.
                    _ = bookmarks.tick() => watch.request_progress(),
                    _ = self.tx.closed() => return,
                }
            }
        }
    }

    /// Send the current state as ADDED events; returns the revision it was read at.
    async fn initial(&self, store: &Store, prefix: &str) -> Option<Revision> {
        let mut start_after = None;
        let mut revision = None;
        loop {
            let page = store
                .range(RangeRequest {
                    prefix: Bytes::from(prefix.to_string()),
                    start_after,
                    revision,
                    limit: 500,
                    count_only: false,
                })
                .await
                .ok()?;
            revision = Some(page.revision);
            for kv in &page.kvs {
                let object = decode(self.resource, &kv.value, kv.mod_revision).ok()?;
                if self.matches(&object) && !self.send("ADDED", object).await {
                    return None;
                }
            }
            start_after = page.continue_after();
            if start_after.is_none() {
                return revision;
            }
        }
    }

    /// Translate one store event, honouring selectors: an object entering the selection is
    /// ADDED, leaving it is DELETED (carrying its last state at the revision of the change).
    async fn forward(&self, event: &Event) -> bool {
        let r = self.resource;
        let revision = event.revision();
        let prev = event
            .prev
            .as_ref()
            .and_then(|p| decode(r, &p.value, p.mod_revision).ok());
        let was = prev.as_ref().is_some_and(|p| self.matches(p));
        match event.kind {
            EventKind::Put => {
                let Ok(object) = decode(r, &event.kv.value, revision) else {
                    return true;
                };
                let is = self.matches(&object);
                match (was, is) {
                    (false, true) => self.send("ADDED", object).await,
                    (true, true) => self.send("MODIFIED", object).await,
                    // As upstream: the last state that matched, at the change's revision.
                    (true, false) => {
                        let mut last = prev.unwrap_or(object);
                        object::set_meta(&mut last, "resourceVersion", json!(revision.to_string()));
                        self.send("DELETED", last).await
                    }
                    (false, false) => true,
                }
            }
            EventKind::Delete => match prev {
                Some(mut last) if was => {
                    object::set_meta(&mut last, "resourceVersion", json!(revision.to_string()));
                    self.send("DELETED", last).await
                }
                _ => true,
            },
        }
    }
}

/// When a watch asks the store for progress (a BOOKMARK, when the client allows them), as
/// upstream's cacher schedules bookmarks: about every minute, and once 2 s before the watch's
/// deadline, so that a client resuming after the timeout starts as close to now as possible.
struct BookmarkSchedule {
    deadline: tokio::time::Instant,
    next: Option<tokio::time::Instant>,
}

impl BookmarkSchedule {
    fn new(now: tokio::time::Instant, deadline: tokio::time::Instant) -> BookmarkSchedule {
        BookmarkSchedule {
            deadline,
            next: next_bookmark(now, deadline),
        }
    }

    /// Wait until the next bookmark is due; pending forever once none is left. Cancel-safe:
    /// the schedule moves on only when a tick completes.
    async fn tick(&mut self) {
        let Some(at) = self.next else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(at).await;
        self.next = next_bookmark(at, self.deadline);
    }
}

/// Upstream's `nextBookmarkTime`: a minute after `now`, or 2 s before the deadline if that is
/// sooner; none once that moment is not after `now`.
fn next_bookmark(
    now: tokio::time::Instant,
    deadline: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let heartbeat = now + BOOKMARK_EVERY;
    let pre_timeout = deadline.checked_sub(Duration::from_secs(2))?;
    Some(heartbeat.min(pre_timeout)).filter(|at| *at > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seconds after the start at which a watch running `timeout` asks for bookmarks.
    async fn bookmark_times(timeout: Duration) -> Vec<u64> {
        let start = tokio::time::Instant::now();
        let mut schedule = BookmarkSchedule::new(start, start + timeout);
        let mut times = Vec::new();
        // The stream ends at the deadline; every bookmark comes before it.
        let _ = tokio::time::timeout(timeout, async {
            loop {
                schedule.tick().await;
                times.push((tokio::time::Instant::now() - start).as_secs());
            }
        })
        .await;
        times
    }

    #[tokio::test(start_paused = true)]
    async fn bookmarks_every_minute_and_just_before_the_timeout() {
        assert_eq!(
            bookmark_times(Duration::from_secs(150)).await,
            [60, 120, 148]
        );
        assert_eq!(bookmark_times(Duration::from_secs(30)).await, [28]);
        assert_eq!(bookmark_times(Duration::from_secs(120)).await, [60, 118]);
        assert_eq!(bookmark_times(Duration::from_secs(62)).await, [60]);
        // Too short for a bookmark before the deadline.
        assert_eq!(
            bookmark_times(Duration::from_secs(2)).await,
            Vec::<u64>::new()
        );
        let default = default_watch_timeout();
        assert!((1800..3600).contains(&default.as_secs()), "{default:?}");
        let times = bookmark_times(default).await;
        assert_eq!(times.len() as u64, (default.as_secs() - 2).div_ceil(60));
        assert_eq!(times.last().copied(), Some(default.as_secs() - 2));
    }

    #[test]
    fn stored_items_are_spliced_like_decoded_ones() {
        let r = crate::registry::find("", "v1", "configmaps").unwrap();
        let object = object::with_type_meta(
            r,
            json!({"data": {"metadata": "{"}, "metadata": {"name": "a"}, "kind": "ConfigMap"}),
        );
        let stored = encode(r, &object).unwrap();
        let mut out = Vec::new();
        assert!(write_stored_item(&mut out, &stored, 7));
        let spliced: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            spliced,
            json!({"metadata": {"resourceVersion": "7", "name": "a"}, "data": {"metadata": "{"}})
        );
        // Empty metadata, and layouts this code did not write, which are decoded instead.
        let mut out = Vec::new();
        assert!(write_stored_item(
            &mut out,
            br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{}}"#,
            3
        ));
        assert_eq!(out, br#"{"metadata":{"resourceVersion":"3"}}"#);
        for odd in [
            &br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#[..],
            br#"{"kind":"Con\"figMap","apiVersion":"v1","metadata":{}}"#,
            b"[]",
        ] {
            assert!(!write_stored_item(&mut Vec::new(), odd, 1));
        }
    }
}
