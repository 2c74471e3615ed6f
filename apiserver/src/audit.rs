//! The audit log (`--audit-log-path`): one upstream `audit.k8s.io/v1` `Event` per authenticated request, one JSON line each, handed to a writer thread through a bounded channel so request handling never waits on the file (a full channel drops the event and counts it).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::{self, Decision, UserInfo};
use crate::metrics::Metrics;
use crate::request::Query;
use crate::serve::Body;

/// Events waiting for the writer; beyond this they are dropped (and counted).
const BUFFER: usize = 10_000;

/// Audit annotations added while a request is served (upstream's
/// `admission.Attributes.AddAnnotation`): PodSecurity's audit mode and webhooks add theirs.
pub type Annotations = Arc<parking_lot::Mutex<Vec<(String, String)>>>;

tokio::task_local! {
    static ANNOTATIONS: Annotations;
}

/// Record `key: value` in the audit event of the request being served (the first value of a
/// key wins, as upstream refuses to overwrite one). Outside a request it does nothing.
pub fn annotate(key: &str, value: impl Into<String>) {
    let _ = ANNOTATIONS.try_with(|sink| {
        let mut sink = sink.lock();
        if !sink.iter().any(|(k, _)| k == key) {
            sink.push((key.to_string(), value.into()));
        }
    });
}

/// Serve `request` with an annotation sink; returns its response and what was annotated.
pub async fn collecting<F: std::future::Future>(request: F) -> (F::Output, Vec<(String, String)>) {
    let sink = Annotations::default();
    let output = ANNOTATIONS.scope(sink.clone(), request).await;
    let annotations = std::mem::take(&mut *sink.lock());
    (output, annotations)
}

/// How much of each request the log records (upstream's `--audit-log-level` subset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Who did what to which object, and how it ended.
    #[default]
    Metadata,
    /// Also the request body (`requestObject`).
    Request,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Metadata => "Metadata",
            Level::Request => "Request",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "Metadata" => Ok(Level::Metadata),
            "Request" => Ok(Level::Request),
            other => Err(format!(
                "unsupported audit level {other:?} (supported: Metadata, Request)"
            )),
        }
    }
}

/// The audit log of one server: where events go.
pub struct Auditor {
    tx: SyncSender<Vec<u8>>,
    level: Level,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("level", &self.level)
            .finish()
    }
}

impl Auditor {
    /// Open (create 0600, else append to) `path` and start its writer thread.
    pub fn open(path: &Path, level: Level, metrics: Arc<Metrics>) -> std::io::Result<Auditor> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(BUFFER);
        let writer_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("k1s-audit".into())
            .spawn(move || write_loop(file, &rx, &writer_metrics))?;
        Ok(Auditor { tx, level, metrics })
    }
}

/// Append every event the channel brings, flushing once the channel is empty; ends when every
/// sender is gone.
fn write_loop(file: std::fs::File, rx: &Receiver<Vec<u8>>, metrics: &Metrics) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
    let mut warned = false;
    while let Ok(first) = rx.recv() {
        let mut result = out.write_all(&first);
        while result.is_ok()
            && let Ok(line) = rx.try_recv()
        {
            result = out.write_all(&line);
        }
        if let Err(e) = result.and_then(|()| out.flush()) {
            metrics.audit_errors.fetch_add(1, Ordering::Relaxed);
            if !warned {
                tracing::warn!(error = %e, "cannot write the audit log");
                warned = true;
            }
        }
    }
}

/// upstream's `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Default, Serialize)]
struct User {
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl From<&UserInfo> for User {
    fn from(u: &UserInfo) -> User {
        User {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    subresource: String,
}

/// upstream's `audit.k8s.io/v1` `Event`, in its field order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    kind: &'static str,
    api_version: &'static str,
    level: &'static str,
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: &'static str,
    #[serde(rename = "requestURI")]
    request_uri: String,
    verb: String,
    user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_user: Option<User>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<Value>,
    request_received_timestamp: String,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    annotations: Map<String, Value>,
}

/// upstream's `metav1.MicroTime` form: RFC 3339 in UTC with microseconds.
fn micro_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// upstream's source IPs: `X-Forwarded-For`, then `X-Real-Ip`, then the peer unless it is the
/// last one already named.
fn source_ips(headers: &http::HeaderMap, peer: IpAddr) -> Vec<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut ips: Vec<IpAddr> = header("x-forwarded-for")
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    if let Some(real) = header("x-real-ip").and_then(|v| v.trim().parse().ok())
        && !ips.contains(&real)
    {
        ips.push(real);
    }
    if ips.last() != Some(&peer) {
        ips.push(peer);
    }
    ips.iter().map(IpAddr::to_string).collect()
}

/// One request's event while it is served. Inert when the audit log is off, and for requests
/// that never authenticate.
#[derive(Debug, Default)]
pub struct Record(Option<Box<Pending>>);

#[derive(Debug)]
struct Pending {
    tx: SyncSender<Vec<u8>>,
    level: Level,
    metrics: Arc<Metrics>,
    event: Event,
    authenticated: bool,
    impersonating: bool,
}

impl Record {
    /// Start the record of `req` (from `peer`) if there is an audit log.
    pub fn begin<B>(auditor: Option<&Auditor>, req: &http::Request<B>, peer: SocketAddr) -> Record {
        let Some(auditor) = auditor else {
            return Record(None);
        };
        let headers = req.headers();
        let uri = req.uri();
        let attrs = auth::request_attributes(
            req.method(),
            uri.path(),
            &Query::parse(uri.query()),
            &UserInfo::default(),
        );
        let object_ref = attrs.resource_request.then(|| ObjectRef {
            resource: attrs.resource,
            namespace: attrs.namespace,
            name: attrs.name,
            api_group: attrs.api_group,
            api_version: attrs.api_version,
            subresource: attrs.subresource,
            ..ObjectRef::default()
        });
        let audit_id = headers
            .get("audit-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
        let now = micro_time(time::OffsetDateTime::now_utc());
        let event = Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: auditor.level.as_str(),
            audit_id,
            stage: "ResponseComplete",
            request_uri: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
            verb: attrs.verb,
            user: User::default(),
            impersonated_user: None,
            source_ips: source_ips(headers, peer.ip()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            object_ref,
            response_status: None,
            request_object: None,
            request_received_timestamp: now.clone(),
            stage_timestamp: now,
            annotations: Map::new(),
        };
        Record(Some(Box::new(Pending {
            tx: auditor.tx.clone(),
            level: auditor.level,
            metrics: auditor.metrics.clone(),
            event,
            authenticated: false,
            impersonating: headers.contains_key("impersonate-user"),
        })))
    }

    /// The authenticated user (before impersonation); only authenticated requests are logged.
    pub fn authenticated(&mut self, user: &UserInfo) {
        if let Some(p) = &mut self.0 {
            p.event.user = User::from(user);
            p.authenticated = true;
        }
    }

    /// The user the request acts as, recorded when it impersonates.
    pub fn impersonated(&mut self, user: &UserInfo) {
        if let Some(p) = &mut self.0
            && p.impersonating
        {
            p.event.impersonated_user = Some(User::from(user));
        }
    }

    /// The authorization decision, as upstream's annotations.
    pub fn decision(&mut self, decision: &Decision) {
        if let Some(p) = &mut self.0 {
            let (decision, reason) = match decision {
                Decision::Allow(reason) => ("allow", reason),
                Decision::Deny(reason) => ("forbid", reason),
            };
            let annotations = &mut p.event.annotations;
            annotations.insert("authorization.k8s.io/decision".into(), decision.into());
            annotations.insert("authorization.k8s.io/reason".into(), reason.as_str().into());
        }
    }

    /// Annotations the request's admission added (kept only when the log is on).
    pub fn annotations(&mut self, annotations: Vec<(String, String)>) {
        if let Some(p) = &mut self.0 {
            for (key, value) in annotations {
                p.event.annotations.insert(key, Value::String(value));
            }
        }
    }

    /// The request body: completes `objectRef` from a written object's metadata (as upstream
    /// does at every level) and, at level Request, is the `requestObject`. JSON, YAML and
    /// protobuf bodies are decoded to JSON (as upstream logs the decoded object); others are
    /// not recorded.
    pub fn request_body(&mut self, body: &Bytes, content_type: &str) {
        let Some(p) = &mut self.0 else {
            return;
        };
        let writes_object = matches!(p.event.verb.as_str(), "create" | "update");
        if body.is_empty() || (!writes_object && p.level < Level::Request) {
            return;
        }
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let object = match media.as_str() {
            crate::protobuf::MEDIA_TYPE => crate::protobuf::decode_object(body).ok(),
            "application/yaml" => serde_norway::from_slice::<Value>(body).ok(),
            m if m == "application/json" || m.ends_with("+json") => {
                serde_json::from_slice::<Value>(body).ok()
            }
            _ => None,
        };
        let Some(object) = object else {
            return;
        };
        if writes_object && let Some(r) = &mut p.event.object_ref {
            let meta = |field: &str| {
                object
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            for (slot, field) in [
                (&mut r.namespace, "namespace"),
                (&mut r.name, "name"),
                (&mut r.uid, "uid"),
                (&mut r.resource_version, "resourceVersion"),
            ] {
                if slot.is_empty() {
                    *slot = meta(field);
                }
            }
        }
        if p.level >= Level::Request {
            p.event.request_object = Some(object);
        }
    }

    /// Complete the event with the response and queue it (at `ResponseStarted` for a watch that
    /// streams); returns the response, with its `Audit-Id` header.
    pub async fn finish(self, response: Response<Body>) -> Response<Body> {
        let Some(mut p) = self.0 else {
            return response;
        };
        if !p.authenticated {
            return response;
        }
        let code = response.status();
        let (mut parts, body) = response.into_parts();
        let mut status = serde_json::json!({"metadata": {}, "code": code.as_u16()});
        let body = if code.as_u16() >= 400 && !parts.headers.contains_key(header::CONTENT_ENCODING)
        {
            // Error bodies are small complete `Status`es; their bounded fields go in the event.
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&bytes)
                && object.get("kind").and_then(Value::as_str) == Some("Status")
            {
                for field in ["status", "message", "reason", "details"] {
                    if let Some(v) = object.get(field) {
                        status[field] = v.clone();
                    }
                }
            }
            Full::new(bytes).boxed_unsync()
        } else {
            body
        };
        p.event.response_status = Some(status);
        if p.event.verb == "watch" && code == StatusCode::OK {
            p.event.stage = "ResponseStarted";
        }
        p.event.stage_timestamp = micro_time(time::OffsetDateTime::now_utc());
        if let Ok(value) = http::HeaderValue::from_str(&p.event.audit_id) {
            parts.headers.insert("audit-id", value);
        }
        p.send();
        Response::from_parts(parts, body)
    }
}

impl Pending {
    fn send(&self) {
        let Ok(mut line) = serde_json::to_vec(&self.event) else {
            return;
        };
        line.push(b'\n');
        self.metrics.audit_events.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.audit_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auditor(level: Level, buffer: usize) -> (Auditor, Receiver<Vec<u8>>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(buffer);
        let metrics = Arc::new(Metrics::new());
        (Auditor { tx, level, metrics }, rx)
    }

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    fn response(code: u16, body: &str) -> Response<Body> {
        Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
            .unwrap()
    }

    fn line(rx: &Receiver<Vec<u8>>) -> Value {
        let bytes = rx.try_recv().expect("an event");
        assert_eq!(bytes.last(), Some(&b'\n'));
        serde_json::from_slice(&bytes).unwrap()
    }

    fn peer() -> SocketAddr {
        "10.1.2.3:5555".parse().unwrap()
    }

    fn is_micro_time(s: &str) -> bool {
        s.len() == 27
            && s.ends_with('Z')
            && s.as_bytes()[10] == b'T'
            && s.as_bytes()[19] == b'.'
            && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_ok()
    }

    #[tokio::test]
    async fn create_event_shape() {
        let (a, rx) = auditor(Level::Request, 8);
        let req = request(
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
            &[("user-agent", "kubectl/v1.33.0")],
        );
        let mut r = Record::begin(Some(&a), &req, peer());
        r.authenticated(&user("admin", &["system:masters", "system:authenticated"]));
        r.impersonated(&user("admin", &[]));
        r.decision(&Decision::Allow("RBAC: allowed".into()));
        r.request_body(
            &Bytes::from_static(
                br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}}"#,
            ),
            "application/json",
        );
        let resp = r.finish(response(201, "{}")).await;
        assert!(resp.headers().contains_key("audit-id"));
        let ev = line(&rx);
        assert_eq!(ev["kind"], "Event");
        assert_eq!(ev["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(ev["level"], "Request");
        assert_eq!(ev["stage"], "ResponseComplete");
        assert_eq!(ev["verb"], "create");
        assert_eq!(
            ev["requestURI"],
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create"
        );
        assert!(uuid::Uuid::parse_str(ev["auditID"].as_str().unwrap()).is_ok());
        assert_eq!(
            resp.headers()["audit-id"].to_str().unwrap(),
            ev["auditID"].as_str().unwrap()
        );
        assert_eq!(
            ev["user"],
            serde_json::json!({"username": "admin", "groups": ["system:masters", "system:authenticated"]})
        );
        assert!(ev.get("impersonatedUser").is_none());
        assert_eq!(ev["sourceIPs"], serde_json::json!(["10.1.2.3"]));
        assert_eq!(ev["userAgent"], "kubectl/v1.33.0");
        assert_eq!(
            ev["objectRef"],
            serde_json::json!({"resource": "configmaps", "namespace": "default", "name": "x", "apiVersion": "v1"})
        );
        assert_eq!(
            ev["responseStatus"],
            serde_json::json!({"metadata": {}, "code": 201})
        );
        assert_eq!(ev["requestObject"]["metadata"]["name"], "x");
        assert!(is_micro_time(
            ev["requestReceivedTimestamp"].as_str().unwrap()
        ));
        assert!(is_micro_time(ev["stageTimestamp"].as_str().unwrap()));
        assert_eq!(ev["annotations"]["authorization.k8s.io/decision"], "allow");
        assert_eq!(
            ev["annotations"]["authorization.k8s.io/reason"],
            "RBAC: allowed"
        );
        let keys: Vec<&str> = ev.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys[..5],
            ["kind", "apiVersion", "level", "auditID", "stage"]
        );
    }

    #[tokio::test]
    async fn impersonated_forbidden_get() {
        let (a, rx) = auditor(Level::Metadata, 8);
        let req = request(
            "GET",
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            &[
                ("impersonate-user", "bob"),
                ("x-forwarded-for", "192.0.2.1, 192.0.2.2"),
            ],
        );
        let mut r = Record::begin(Some(&a), &req, peer());
        r.authenticated(&user("admin", &["system:masters"]));
        r.impersonated(&user("bob", &["system:authenticated"]));
        r.decision(&Decision::Deny(String::new()));
        let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no","reason":"Forbidden","details":{"name":"d"},"code":403}"#;
        let resp = r.finish(response(403, status)).await;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, status.as_bytes(), "the body is passed on intact");
        let ev = line(&rx);
        assert_eq!(ev["level"], "Metadata");
        assert_eq!(ev["verb"], "get");
        assert_eq!(ev["user"]["username"], "admin");
        assert_eq!(ev["impersonatedUser"]["username"], "bob");
        assert_eq!(
            ev["sourceIPs"],
            serde_json::json!(["192.0.2.1", "192.0.2.2", "10.1.2.3"])
        );
        assert_eq!(
            ev["objectRef"],
            serde_json::json!({"resource": "deployments", "namespace": "ns", "name": "d", "apiGroup": "apps", "apiVersion": "v1", "subresource": "scale"})
        );
        assert_eq!(
            ev["responseStatus"],
            serde_json::json!({"metadata": {}, "status": "Failure", "message": "no", "reason": "Forbidden", "details": {"name": "d"}, "code": 403})
        );
        assert_eq!(ev["annotations"]["authorization.k8s.io/decision"], "forbid");
        assert_eq!(ev["annotations"]["authorization.k8s.io/reason"], "");
        assert!(ev.get("requestObject").is_none());
    }

    #[tokio::test]
    async fn verbs_watch_stage_and_metadata_level() {
        let (a, rx) = auditor(Level::Metadata, 16);
        let cases = [
            ("GET", "/api/v1/pods", "list"),
            ("GET", "/api/v1/pods?watch=true", "watch"),
            ("GET", "/api/v1/watch/namespaces/a/pods", "watch"),
            ("DELETE", "/api/v1/namespaces/a/pods", "deletecollection"),
            ("DELETE", "/api/v1/namespaces/a/pods/p", "delete"),
            ("PATCH", "/api/v1/namespaces/a/pods/p", "patch"),
            ("PUT", "/api/v1/namespaces/a/pods/p", "update"),
            ("GET", "/healthz", "get"),
        ];
        for (method, uri, verb) in cases {
            let mut r = Record::begin(Some(&a), &request(method, uri, &[]), peer());
            r.authenticated(&user("u", &[]));
            r.request_body(&Bytes::from_static(b"{\"a\":1}"), "application/json");
            r.finish(response(200, "{}")).await;
            let ev = line(&rx);
            assert_eq!(ev["verb"], verb, "{method} {uri}");
            let stage = if verb == "watch" {
                "ResponseStarted"
            } else {
                "ResponseComplete"
            };
            assert_eq!(ev["stage"], stage, "{method} {uri}");
            assert!(ev.get("requestObject").is_none(), "Metadata level");
            assert!(ev.get("impersonatedUser").is_none());
            assert_eq!(ev.get("objectRef").is_some(), uri != "/healthz");
        }
    }

    #[tokio::test]
    async fn unauthenticated_and_disabled_write_nothing() {
        let (a, rx) = auditor(Level::Request, 8);
        let r = Record::begin(Some(&a), &request("GET", "/api", &[]), peer());
        r.finish(response(401, "{}")).await;
        assert!(rx.try_recv().is_err());
        let mut r = Record::begin(None, &request("GET", "/api", &[]), peer());
        r.authenticated(&user("u", &[]));
        let resp = r.finish(response(200, "{}")).await;
        assert!(!resp.headers().contains_key("audit-id"));
    }

    #[tokio::test]
    async fn full_channel_drops_and_counts() {
        let (a, rx) = auditor(Level::Metadata, 1);
        for _ in 0..3 {
            let mut r = Record::begin(Some(&a), &request("GET", "/api", &[]), peer());
            r.authenticated(&user("u", &[]));
            r.finish(response(200, "{}")).await;
        }
        assert_eq!(a.metrics.audit_events.load(Ordering::Relaxed), 3);
        assert_eq!(a.metrics.audit_errors.load(Ordering::Relaxed), 2);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn file_is_created_private_and_appended() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let a = Auditor::open(&path, Level::Metadata, Arc::new(Metrics::new())).unwrap();
        a.tx.send(b"one\n".to_vec()).unwrap();
        a.tx.send(b"two\n".to_vec()).unwrap();
        drop(a);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap() != "one\ntwo\n" {
            assert!(std::time::Instant::now() < deadline, "lines not written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn yaml_body_is_decoded_and_other_media_are_not() {
        let (a, rx) = auditor(Level::Request, 8);
        let req = request("PUT", "/api/v1/namespaces/a/configmaps/c", &[]);
        let mut r = Record::begin(Some(&a), &req, peer());
        r.authenticated(&user("u", &[]));
        r.request_body(
            &Bytes::from_static(b"kind: ConfigMap\nmetadata:\n  name: c\n  uid: u1\n"),
            "application/yaml",
        );
        r.finish(response(200, "{}")).await;
        let ev = line(&rx);
        assert_eq!(ev["verb"], "update");
        assert_eq!(ev["objectRef"]["uid"], "u1");
        assert_eq!(ev["requestObject"]["kind"], "ConfigMap");
        let mut r = Record::begin(Some(&a), &req, peer());
        r.authenticated(&user("u", &[]));
        r.request_body(&Bytes::from_static(b"\x00\x01"), "application/octet-stream");
        r.finish(response(200, "{}")).await;
        assert!(line(&rx).get("requestObject").is_none());
    }

    #[test]
    fn levels_parse() {
        assert_eq!("Metadata".parse::<Level>(), Ok(Level::Metadata));
        assert_eq!("Request".parse::<Level>(), Ok(Level::Request));
        assert!("RequestResponse".parse::<Level>().is_err());
        assert_eq!(Level::default(), Level::Metadata);
    }
}
