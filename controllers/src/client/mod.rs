//! A Kubernetes API client: HTTP/2 over TLS with a client certificate or a bearer token, JSON bodies as `serde_json::Value`, typed errors that keep the server's `Status`; it knows nothing of controllers (the agent uses it too).

mod discovery;
mod token;
mod watch;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use discovery::{ApiResource, Discovery, DiscoveryFailure};
pub use token::BearerToken;
pub use watch::{WatchEvent, WatchStream};

/// `Accept` of metadata-only reads (client-go's metadata client): one object, or a watch
/// event's object, as a `PartialObjectMetadata`; a list as a `PartialObjectMetadataList`.
const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// How long a request other than a watch may take, headers and body together.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// HTTP/2 pings keep idle connections (and long watches) honest: a peer that stops answering
/// is dropped after `KEEPALIVE_TIMEOUT`, which ends every stream on it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used (server URL, PEM data, token).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// rustls refused the certificates or key.
    #[error("invalid client tls configuration")]
    Tls(#[source] rustls::Error),
    /// TCP connect or TLS handshake failed.
    #[error("cannot connect to {server}")]
    Connect {
        server: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/2 handshake failed.
    #[error("http/2 handshake with {server} failed")]
    Handshake {
        server: String,
        #[source]
        source: hyper::Error,
    },
    /// The request could not be sent or its response not read.
    #[error("{method} {path} failed")]
    Http {
        method: Method,
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// No complete response within the request timeout.
    #[error("{method} {path} timed out after {timeout:?}")]
    Timeout {
        method: Method,
        path: String,
        timeout: Duration,
    },
    /// The server answered with an error status; `status` is its `Status` object (or one made
    /// from the HTTP status when the body was not a `Status`).
    #[error("{method} {path}: {} ({} {})", status.message, status.code, status.reason)]
    Api {
        method: Method,
        path: String,
        status: Box<Status>,
    },
    /// A successful response whose body is not the JSON expected.
    #[error("{method} {path}: cannot decode the response body")]
    Decode {
        method: Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// A watch stream carried a line that is not a watch event.
    #[error("watch {path}: cannot decode event {line:?}")]
    WatchEvent {
        path: String,
        line: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The Kubernetes `Status` the server answered with, if it answered with an error.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        self.status().map(|s| s.code)
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// 410 Gone: a resourceVersion or continue token older than the server's history.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// 405, or a 404 for a collection that exists in discovery but serves no such verb
    /// (upstream treats both as "not supported").
    pub fn is_method_not_supported(&self) -> bool {
        self.code() == Some(405)
    }

    /// 401: the server did not accept the credentials.
    pub fn is_unauthorized(&self) -> bool {
        self.code() == Some(401)
    }
}

/// A `meta.k8s.io/v1` `Status`, as the API returns it for errors.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Option<Value>,
}

impl Status {
    /// The `Status` for an error response: the body if it is one, else one made from the HTTP
    /// status and the body text.
    fn from_response(code: StatusCode, body: &[u8]) -> Status {
        if let Ok(mut status) = serde_json::from_slice::<Status>(body)
            && !status.reason.is_empty()
        {
            if status.code == 0 {
                status.code = code.as_u16();
            }
            return status;
        }
        let reason = match code.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Status {
            code: code.as_u16(),
            reason: reason.to_string(),
            message: String::from_utf8_lossy(body).trim().to_string(),
            details: None,
        }
    }
}

/// Where the API server is and who we are to it.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://host:port`.
    pub server: String,
    /// PEM certificates the server's certificate must chain to.
    pub ca_pem: String,
    /// Who the client is to the server.
    pub credentials: Credentials,
    /// Sent as `User-Agent` (upstream components send `<binary>/<version> ... /<component>`).
    pub user_agent: String,
}

/// The key stays out of logs.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// How a client proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// A PEM client certificate (chain) and its PEM PKCS#8 key, presented in the TLS handshake.
    Certificate { cert_pem: String, key_pem: String },
    /// `Authorization: Bearer`, read at every request: replacing the token does not disturb
    /// the client or its watches. A 401 to it is reported through `BearerToken::rejected`.
    Token(BearerToken),
}

/// A resource the client addresses: group, version, plural name and scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespaced: bool,
}

impl Resource {
    pub fn new(group: &str, version: &str, plural: &str, namespaced: bool) -> Resource {
        Resource {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    /// A resource of the core group (`/api/v1`).
    pub fn core(plural: &str, namespaced: bool) -> Resource {
        Resource::new("", "v1", plural, namespaced)
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn root(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection path, in `namespace` when the resource is namespaced and one is given
    /// (none lists across all namespaces).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}/namespaces/{}/{}", self.root(), segment(ns), self.plural),
            None => format!("{}/{}", self.root(), self.plural),
        }
    }

    /// The path of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(namespace), segment(name))
    }
}

/// `plural.version.group` (`pods.v1`, `leases.v1.coordination.k8s.io`), as kubectl spells a
/// fully qualified resource.
impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.plural, self.version)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        Ok(())
    }
}

/// Characters escaped in a path segment or query value.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

fn segment(s: &str) -> String {
    utf8_percent_encode(s, ESCAPE).to_string()
}

/// A query string builder.
#[derive(Default)]
struct Query(Vec<String>);

impl Query {
    fn push(&mut self, key: &str, value: impl fmt::Display) {
        self.0
            .push(format!("{key}={}", segment(&value.to_string())));
    }

    fn opt(&mut self, key: &str, value: Option<impl fmt::Display>) {
        if let Some(v) = value {
            self.push(key, v);
        }
    }

    fn append_to(self, path: String) -> String {
        if self.0.is_empty() {
            path
        } else {
            format!("{path}?{}", self.0.join("&"))
        }
    }
}

/// Options of a list (and of the selection a deletecollection applies to).
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Page size; the response's `metadata.continue` fetches the next page.
    pub limit: Option<u32>,
    pub continue_token: Option<String>,
    /// Unset reads the latest state.
    pub resource_version: Option<String>,
}

impl ListParams {
    fn query(&self) -> Query {
        let mut q = Query::default();
        q.opt("labelSelector", self.label_selector.as_deref());
        q.opt("fieldSelector", self.field_selector.as_deref());
        q.opt("limit", self.limit);
        q.opt("continue", self.continue_token.as_deref());
        q.opt("resourceVersion", self.resource_version.as_deref());
        q
    }
}

/// Options of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Events after this version; unset (or "0") starts with the current state as ADDED events.
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    /// The server ends the watch after this long.
    pub timeout_seconds: Option<u32>,
}

/// How dependents of a deleted object are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    Orphan,
    Background,
    Foreground,
}

/// `DeleteOptions`.
#[derive(Clone, Debug, Default)]
pub struct DeleteParams {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<PropagationPolicy>,
    /// Delete only if the object still has this uid.
    pub precondition_uid: Option<String>,
    /// Delete only if the object is still at this resourceVersion.
    pub precondition_resource_version: Option<String>,
}

impl DeleteParams {
    fn body(&self) -> Value {
        let mut body = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(grace) = self.grace_period_seconds {
            body["gracePeriodSeconds"] = json!(grace);
        }
        if let Some(policy) = self.propagation_policy {
            body["propagationPolicy"] = json!(format!("{policy:?}"));
        }
        let mut pre = serde_json::Map::new();
        if let Some(uid) = &self.precondition_uid {
            pre.insert("uid".into(), json!(uid));
        }
        if let Some(rv) = &self.precondition_resource_version {
            pre.insert("resourceVersion".into(), json!(rv));
        }
        if !pre.is_empty() {
            body["preconditions"] = Value::Object(pre);
        }
        body
    }
}

/// The three patch formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
}

impl PatchType {
    fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
        }
    }
}

/// A client of one API server. Cheap to clone; all clones share one HTTP/2 connection, which
/// is re-established on the next request after it drops.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// `Impersonate-User` / `Impersonate-Group` values sent with every request of this clone.
    impersonate: Option<Arc<(String, Vec<String>)>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.base)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// `https://host:port`, no trailing slash.
    base: String,
    /// `host:port` to connect to.
    address: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    user_agent: String,
    token: Option<BearerToken>,
    connection: tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
}

impl Client {
    /// A client for `config`; connects on first use.
    pub fn new(config: &ClientConfig) -> Result<Client> {
        let uri: Uri = config
            .server
            .parse()
            .map_err(|e| Error::Config(format!("server url {:?}: {e}", config.server)))?;
        if uri.scheme_str() != Some("https") {
            return Err(Error::Config(format!(
                "server url {:?} is not https",
                config.server
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| Error::Config(format!("server url {:?} has no host", config.server)))?;
        let port = uri.port_u16().unwrap_or(443);
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare_host.to_string())
            .map_err(|e| Error::Config(format!("server name {bare_host:?}: {e}")))?;

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(config.ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| Error::Config(format!("ca certificate: {e}")))?;
            roots.add(cert).map_err(Error::Tls)?;
        }
        if roots.is_empty() {
            return Err(Error::Config("no ca certificate".into()));
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_root_certificates(roots);
        let (mut tls, token) = match &config.credentials {
            Credentials::Certificate { cert_pem, key_pem } => {
                let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Config(format!("client certificate: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|e| Error::Config(format!("client key: {e}")))?;
                let tls = builder
                    .with_client_auth_cert(certs, key)
                    .map_err(Error::Tls)?;
                (tls, None)
            }
            Credentials::Token(token) => (builder.with_no_client_auth(), Some(token.clone())),
        };
        tls.alpn_protocols = vec![b"h2".to_vec()];

        Ok(Client {
            inner: Arc::new(Inner {
                base: format!("https://{host}:{port}"),
                address: format!("{host}:{port}"),
                server_name,
                tls: TlsConnector::from(Arc::new(tls)),
                user_agent: config.user_agent.clone(),
                token,
                connection: tokio::sync::Mutex::new(None),
            }),
            impersonate: None,
        })
    }

    /// A clone that acts as `user` in `groups` (`Impersonate-User`, `Impersonate-Group`) on the
    /// same connection; the server checks that this client's identity may impersonate them.
    pub fn impersonating(&self, user: &str, groups: &[&str]) -> Client {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        Client {
            inner: self.inner.clone(),
            impersonate: Some(Arc::new((user.to_string(), groups))),
        }
    }

    /// The shared connection, (re)established when there is none or it has closed.
    async fn sender(&self, fresh: bool) -> Result<http2::SendRequest<Full<Bytes>>> {
        let mut slot = self.inner.connection.lock().await;
        if !fresh
            && let Some(sender) = slot.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let server = self.inner.base.clone();
        let connect = |source| Error::Connect {
            server: server.clone(),
            source,
        };
        let tcp = TcpStream::connect(&self.inner.address)
            .await
            .map_err(connect)?;
        tcp.set_nodelay(true).map_err(connect)?;
        let stream = self
            .inner
            .tls
            .connect(self.inner.server_name.clone(), tcp)
            .await
            .map_err(connect)?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| Error::Handshake {
                server: server.clone(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(server, error = %e, "api connection closed");
            }
        });
        tracing::debug!(server = %self.inner.base, "api connection established");
        *slot = Some(sender.clone());
        Ok(sender)
    }

    /// Send one request and return the response head and streaming body; an error status is
    /// turned into `Error::Api` (its body read for the `Status`).
    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<http::Response<Incoming>> {
        let uri = format!("{}{path}", self.inner.base);
        let authorization = self.inner.token.as_ref().map(BearerToken::header);
        let build = || {
            let mut req = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header(header::ACCEPT, accept)
                .header(header::USER_AGENT, &self.inner.user_agent);
            if let Some(value) = &authorization {
                req = req.header(header::AUTHORIZATION, value.clone());
            }
            if let Some((user, groups)) = self.impersonate.as_deref() {
                req = req.header("impersonate-user", user);
                for group in groups {
                    req = req.header("impersonate-group", group);
                }
            }
            let content = match &body {
                Some((content_type, bytes)) => {
                    req = req.header(header::CONTENT_TYPE, *content_type);
                    bytes.clone()
                }
                None => Bytes::new(),
            };
            req.body(Full::new(content))
                .map_err(|e| Error::Config(format!("request {method} {path}: {e}")))
        };
        let http_err = |source| Error::Http {
            method: method.clone(),
            path: path.to_string(),
            source,
        };
        // A connection that died since its last use is replaced once, transparently.
        let mut sender = self.sender(false).await?;
        if sender.ready().await.is_err() {
            sender = self.sender(true).await?;
            sender.ready().await.map_err(http_err)?;
        }
        let response = sender.send_request(build()?).await.map_err(http_err)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status();
        if code == StatusCode::UNAUTHORIZED
            && let (Some(token), Some(sent)) = (&self.inner.token, &authorization)
        {
            token.reject(sent);
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(http_err)?
            .to_bytes();
        Err(Error::Api {
            method,
            path: path.to_string(),
            status: Box::new(Status::from_response(code, &bytes)),
        })
    }

    /// A request with a JSON (or patch) body whose response is one JSON document.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<Value> {
        self.request_as(method, path, "application/json", body)
            .await
    }

    /// `request` with another `Accept` (the `meta.k8s.io` forms).
    async fn request_as(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<Value> {
        let encoded = body.map(|(ct, v)| (ct, Bytes::from(v.to_string())));
        let work = async {
            let response = self.send(method.clone(), path, accept, encoded).await?;
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|source| Error::Http {
                    method: method.clone(),
                    path: path.to_string(),
                    source,
                })?
                .to_bytes();
            serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
                method: method.clone(),
                path: path.to_string(),
                source,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                method,
                path: path.to_string(),
                timeout: REQUEST_TIMEOUT,
            }),
        }
    }

    /// GET any path (discovery documents, `/version`).
    pub async fn get_path(&self, path: &str) -> Result<Value> {
        self.request(Method::GET, path, None).await
    }

    pub async fn get(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<Value> {
        self.get_path(&r.object_path(namespace, name)).await
    }

    /// One page of a list; `metadata.continue` in the result names the next.
    pub async fn list(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<Value> {
        let path = params.query().append_to(r.collection_path(namespace));
        self.get_path(&path).await
    }

    /// Every page of a list, as one list: the items, and the list's resourceVersion (every
    /// page is read at the first page's revision).
    pub async fn list_all(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<(Vec<Value>, String)> {
        self.list_all_as(r, namespace, params, "application/json")
            .await
    }

    /// `list_all` with the items as `PartialObjectMetadata` (only their `metadata`), as
    /// client-go's metadata client lists.
    pub async fn list_all_metadata(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<(Vec<Value>, String)> {
        self.list_all_as(r, namespace, params, METADATA_LIST).await
    }

    /// One object as a `PartialObjectMetadata` (only its `metadata`).
    pub async fn get_metadata(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value> {
        self.request_as(Method::GET, &r.object_path(namespace, name), METADATA, None)
            .await
    }

    async fn list_all_as(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        params: &ListParams,
        accept: &str,
    ) -> Result<(Vec<Value>, String)> {
        let mut params = params.clone();
        let mut items = Vec::new();
        loop {
            let path = params.query().append_to(r.collection_path(namespace));
            let mut page = self.request_as(Method::GET, &path, accept, None).await?;
            if let Some(Value::Array(page_items)) = page.get_mut("items").map(Value::take) {
                items.extend(page_items);
            }
            let meta = page.get("metadata");
            let text = |field: &str| {
                meta.and_then(|m| m.get(field))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            match text("continue") {
                Some(token) => {
                    params.continue_token = Some(token);
                    params.resource_version = None;
                }
                None => return Ok((items, text("resourceVersion").unwrap_or_default())),
            }
        }
    }

    /// Start a watch: newline-delimited JSON events until the server ends it.
    pub async fn watch(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        params: &WatchParams,
    ) -> Result<WatchStream> {
        self.watch_as(r, namespace, params, "application/json")
            .await
    }

    /// `watch` with each event's object as a `PartialObjectMetadata` (only its `metadata`).
    pub async fn watch_metadata(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        params: &WatchParams,
    ) -> Result<WatchStream> {
        self.watch_as(r, namespace, params, METADATA).await
    }

    async fn watch_as(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        params: &WatchParams,
        accept: &str,
    ) -> Result<WatchStream> {
        let mut q = Query::default();
        q.push("watch", "true");
        q.opt("labelSelector", params.label_selector.as_deref());
        q.opt("fieldSelector", params.field_selector.as_deref());
        q.opt("resourceVersion", params.resource_version.as_deref());
        if params.allow_bookmarks {
            q.push("allowWatchBookmarks", "true");
        }
        q.opt("timeoutSeconds", params.timeout_seconds);
        let path = q.append_to(r.collection_path(namespace));
        let response =
            tokio::time::timeout(REQUEST_TIMEOUT, self.send(Method::GET, &path, accept, None))
                .await
                .map_err(|_| Error::Timeout {
                    method: Method::GET,
                    path: path.clone(),
                    timeout: REQUEST_TIMEOUT,
                })??;
        Ok(WatchStream::new(path, response.into_body()))
    }

    pub async fn create(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        object: &Value,
    ) -> Result<Value> {
        let path = r.collection_path(namespace);
        self.request(Method::POST, &path, Some(("application/json", object)))
            .await
    }

    /// PUT the whole object (its `metadata.resourceVersion`, when set, must be current).
    pub async fn update(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        object: &Value,
    ) -> Result<Value> {
        let path = r.object_path(namespace, name);
        self.request(Method::PUT, &path, Some(("application/json", object)))
            .await
    }

    /// PUT to a subresource: `status`, or `finalize` for namespaces.
    pub async fn update_subresource(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        object: &Value,
    ) -> Result<Value> {
        let path = format!("{}/{subresource}", r.object_path(namespace, name));
        self.request(Method::PUT, &path, Some(("application/json", object)))
            .await
    }

    pub async fn patch(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
    ) -> Result<Value> {
        let path = r.object_path(namespace, name);
        self.request(
            Method::PATCH,
            &path,
            Some((patch_type.content_type(), patch)),
        )
        .await
    }

    /// PATCH a subresource (`status`).
    pub async fn patch_subresource(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        patch_type: PatchType,
        patch: &Value,
    ) -> Result<Value> {
        let path = format!("{}/{subresource}", r.object_path(namespace, name));
        self.request(
            Method::PATCH,
            &path,
            Some((patch_type.content_type(), patch)),
        )
        .await
    }

    /// DELETE one object: the object as last stored (or marked for deletion), or a `Status`.
    pub async fn delete(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Value> {
        let path = r.object_path(namespace, name);
        self.request(
            Method::DELETE,
            &path,
            Some(("application/json", &params.body())),
        )
        .await
    }

    /// DELETE a collection (every object `list` selects): the list of deleted objects.
    pub async fn delete_collection(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        list: &ListParams,
        params: &DeleteParams,
    ) -> Result<Value> {
        let path = list.query().append_to(r.collection_path(namespace));
        self.request(
            Method::DELETE,
            &path,
            Some(("application/json", &params.body())),
        )
        .await
    }

    /// What the server serves (legacy discovery).
    pub async fn discover(&self) -> Discovery {
        discovery::discover(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries() {
        let pods = Resource::core("pods", true);
        assert_eq!(pods.collection_path(None), "/api/v1/pods");
        assert_eq!(
            pods.object_path(Some("kube-system"), "a.b"),
            "/api/v1/namespaces/kube-system/pods/a.b"
        );
        let ns = Resource::core("namespaces", false);
        assert_eq!(ns.object_path(Some("ignored"), "x"), "/api/v1/namespaces/x");
        let leases = Resource::new("coordination.k8s.io", "v1", "leases", true);
        assert_eq!(
            leases.collection_path(Some("a")),
            "/apis/coordination.k8s.io/v1/namespaces/a/leases"
        );
        assert_eq!(leases.to_string(), "leases.v1.coordination.k8s.io");
        let params = ListParams {
            label_selector: Some("app in (a,b),tier=web".into()),
            limit: Some(500),
            ..Default::default()
        };
        assert_eq!(
            params.query().append_to("/api/v1/pods".into()),
            "/api/v1/pods?labelSelector=app%20in%20%28a%2Cb%29%2Ctier%3Dweb&limit=500"
        );
    }

    #[test]
    fn error_statuses() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"namespaces \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"namespaces"},"code":404}"#;
        let status = Status::from_response(StatusCode::NOT_FOUND, body);
        assert_eq!(status.code, 404);
        assert_eq!(status.reason, "NotFound");
        let err = Error::Api {
            method: Method::GET,
            path: "/api/v1/namespaces/x".into(),
            status: Box::new(status),
        };
        assert!(err.is_not_found() && !err.is_conflict() && !err.is_gone());
        assert_eq!(
            err.to_string(),
            r#"GET /api/v1/namespaces/x: namespaces "x" not found (404 NotFound)"#
        );
        let plain = Status::from_response(StatusCode::METHOD_NOT_ALLOWED, b"not allowed\n");
        assert_eq!(
            (plain.code, plain.reason.as_str(), plain.message.as_str()),
            (405, "MethodNotAllowed", "not allowed")
        );
    }

    #[test]
    fn delete_options_body() {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            precondition_uid: Some("u".into()),
            ..Default::default()
        };
        assert_eq!(
            params.body(),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background", "preconditions": {"uid": "u"}})
        );
    }
}
