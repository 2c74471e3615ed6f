//! The HTTPS front door: TLS accept loop (HTTP/2 and HTTP/1.1 with upgrades), client-certificate identity, and dispatch of each request to discovery or the REST handlers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, ClientCert, Decision, UserInfo};
use crate::discovery;
use crate::metrics::{Metrics, RequestKind, RequestLabels};
use crate::request::{Endpoint, Query, Verb, route};
use crate::rest::{Reply, Rest};
use crate::status::ApiError;
use crate::tls::ClientVerifier;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Responses larger than this are gzip-compressed for clients that accept it (upstream's
/// `defaultGzipThresholdBytes`); smaller ones and watches never are.
const GZIP_THRESHOLD_BYTES: u64 = 128 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs.
pub struct Api {
    pub rest: Rest,
    pub verifier: ClientVerifier,
    /// Authentication and authorization.
    pub auth: auth::Auth,
    /// The cluster CA bundle, served unauthenticated at `/cacerts` so agents can pin it
    /// against the join token's hash.
    pub ca_bundle: String,
    /// `host:port` clients reach us at (for legacy `/api`).
    pub server_address: String,
    pub git_version: String,
    pub metrics: Arc<Metrics>,
    /// The audit log (`--audit-log-path`), if any.
    pub audit: Option<crate::audit::Auditor>,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: StatusCode, body: &Value, content_type: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, content_type)
        .body(full(bytes))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status(), "application/json")
}

fn stream_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// Whether the client accepts gzip: a `gzip` token in `Accept-Encoding`, as upstream checks.
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim() == "gzip")
}

/// Gzip a complete response body larger than [`GZIP_THRESHOLD_BYTES`] (at level 1, as upstream
/// does: nearly the ratio of higher levels for much less CPU), off the async threads.
async fn compress(response: Response<Body>) -> Response<Body> {
    use hyper::body::Body as _;
    let large = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n > GZIP_THRESHOLD_BYTES);
    if !large || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let plain = bytes.clone();
    let compressed = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(bytes.len() / 4),
            flate2::Compression::fast(),
        );
        encoder.write_all(&bytes)?;
        encoder.finish()
    })
    .await;
    match compressed {
        Ok(Ok(compressed)) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
            parts.headers.append(
                header::VARY,
                http::HeaderValue::from_static("Accept-Encoding"),
            );
            Response::from_parts(parts, full(compressed))
        }
        _ => Response::from_parts(parts, full(plain)),
    }
}

/// How the request metrics label a request; `None` for requests they do not count (paths
/// that name nothing served, `/version`, OpenAPI and `/metrics`).
fn request_labels(
    endpoint: &Endpoint,
    path: &str,
    query: &Query,
    content_type: &str,
) -> Option<RequestLabels> {
    match endpoint {
        Endpoint::Resource(req) => Some(RequestLabels::resource(req, query, content_type)),
        Endpoint::CoreDiscovery
        | Endpoint::GroupsDiscovery
        | Endpoint::Group(_)
        | Endpoint::Resources { .. } => Some(RequestLabels::path(path, "apiserver")),
        // Upstream's health checks carry no component.
        Endpoint::Health(_) => Some(RequestLabels::path(path, "")),
        _ => None,
    }
}

impl Api {
    /// Serve one request from `peer`, recording it in the audit log.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        cert: ClientCert,
        peer: std::net::SocketAddr,
    ) -> Response<Body> {
        let mut audit = crate::audit::Record::begin(self.audit.as_ref(), &req, peer);
        let (response, annotations) =
            crate::audit::collecting(self.respond(req, cert, &mut audit)).await;
        audit.annotations(annotations);
        audit.finish(response).await
    }

    async fn respond(
        self: Arc<Self>,
        req: Request<Incoming>,
        cert: ClientCert,
        audit: &mut crate::audit::Record,
    ) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = Query::parse(req.uri().query());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let gzip = accepts_gzip(req.headers());
        let started = std::time::Instant::now();
        if path == "/cacerts" && method == http::Method::GET {
            // As k3s: outside authentication, so an agent can fetch and pin the CA.
            let response = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(full(self.ca_bundle.clone()))
                .unwrap_or_else(|_| Response::new(full(Bytes::new())));
            return self.finish(&method, &path, started, response);
        }
        // Authentication, impersonation and authorization come before routing, as upstream's
        // filters do.
        let requester = match self
            .auth
            .authenticate(&cert, req.headers(), &self.rest)
            .await
        {
            Ok(user) => user,
            Err(e) => return self.finish(&method, &path, started, error_response(&e)),
        };
        audit.authenticated(&requester);
        let user = match self
            .auth
            .impersonate(requester, req.headers(), &self.rest)
            .await
        {
            Ok(user) => user,
            Err(e) => return self.finish(&method, &path, started, error_response(&e)),
        };
        audit.impersonated(&user);
        let attrs = auth::request_attributes(&method, &path, &query, &user);
        let decision = if self.auth.authorize {
            self.auth.authorize(&attrs, &self.rest).await
        } else {
            Decision::Allow(String::new())
        };
        audit.decision(&decision);
        if let Decision::Deny(reason) = decision {
            return self.finish(
                &method,
                &path,
                started,
                error_response(&attrs.forbidden(&reason)),
            );
        }
        match path.as_str() {
            "/.well-known/openid-configuration" => {
                let doc = auth::token::openid_configuration();
                let response = json_response(StatusCode::OK, &doc, "application/json");
                return self.finish(&method, &path, started, response);
            }
            "/openid/v1/jwks" => {
                let doc = self.auth.signer.jwks();
                let response = json_response(StatusCode::OK, &doc, "application/jwk-set+json");
                return self.finish(&method, &path, started, response);
            }
            _ => {}
        }
        let endpoint = match route(&method, &path, &query) {
            Ok(endpoint) => endpoint,
            Err(e) => return self.finish(&method, &path, started, error_response(&e)),
        };
        let public = matches!(endpoint, Endpoint::Version | Endpoint::Health(_));
        if !self.auth.authorize && !public && user.name == auth::ANONYMOUS {
            // Without authorization, anonymous requests reach only the public endpoints.
            return self.finish(
                &method,
                &path,
                started,
                error_response(&ApiError::unauthorized()),
            );
        }
        let raw_query = req.uri().query().map(str::to_string);
        let labels = request_labels(&endpoint, &path, &query, &content_type);
        let watch = matches!(&endpoint, Endpoint::Resource(r) if r.verb == Verb::Watch);
        let _inflight = (!watch).then(|| self.metrics.inflight(RequestKind::of(&method)));
        let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return self.finish(
                    &method,
                    &path,
                    started,
                    error_response(&ApiError::too_large(MAX_BODY_BYTES)),
                );
            }
        };
        audit.request_body(&body, &content_type);
        let response = match self
            .dispatch(
                endpoint,
                &query,
                raw_query.as_deref(),
                &accept,
                &content_type,
                &user_agent,
                &body,
                &user,
            )
            .await
        {
            Ok(response) => response,
            Err(e) => error_response(&e),
        };
        let streaming = watch && response.status() == StatusCode::OK;
        let response = match labels {
            // A watch counts as open until its body is dropped (stream ended or client gone),
            // then as one request lasting that long.
            Some(labels) if streaming => {
                let open = self.metrics.long_running(labels, started);
                response.map(|body| {
                    body.map_frame(move |frame| {
                        let _open = &open;
                        frame
                    })
                    .boxed_unsync()
                })
            }
            labels => {
                let response = if gzip && !streaming {
                    compress(response).await
                } else {
                    response
                };
                let code = response.status().as_u16();
                // A path naming nothing served (`/apis/<unknown group>`) would add a series per
                // path: not counted.
                if let Some(labels) = labels.filter(|l| !(l.resource.is_empty() && code == 404)) {
                    self.metrics.observe(&labels, code, started.elapsed());
                }
                response
            }
        };
        self.finish(&method, &path, started, response)
    }

    fn finish(
        &self,
        method: &http::Method,
        path: &str,
        started: std::time::Instant,
        response: Response<Body>,
    ) -> Response<Body> {
        tracing::debug!(%method, path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
        response
    }

    /// Escalation prevention for RBAC writes: a dry run yields the object the write would
    /// store, which must grant nothing the user does not hold (unless it may `escalate` or
    /// `bind`).
    #[allow(clippy::too_many_arguments)]
    async fn check_escalation(
        &self,
        req: &crate::request::ResourceRequest,
        raw_query: Option<&str>,
        body: &Bytes,
        media: &str,
        user_agent: &str,
        user: &UserInfo,
    ) -> Result<(), ApiError> {
        let r = req.resource;
        let rbac = r.group == "rbac.authorization.k8s.io"
            && req.subresource.is_none()
            && matches!(req.verb, Verb::Create | Verb::Update | Verb::Patch);
        if !rbac || user.in_group(auth::MASTERS) {
            return Ok(());
        }
        let dry = Query::parse(Some(&format!("{}&dryRun=All", raw_query.unwrap_or(""))));
        let output = crate::table::Output::negotiate("application/json", None)?;
        let object = match self
            .rest
            .handle(req, &dry, body, media, output, user_agent, user)
            .await?
        {
            Reply::Json(_, object, _) => object,
            _ => return Ok(()),
        };
        self.auth
            .confirm_no_escalation(
                r.plural,
                req.namespace.as_deref(),
                &object,
                user,
                &self.rest,
            )
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn dispatch(
        &self,
        endpoint: Endpoint,
        query: &Query,
        raw_query: Option<&str>,
        accept: &str,
        content_type: &str,
        user_agent: &str,
        body: &Bytes,
        user: &UserInfo,
    ) -> Result<Response<Body>, ApiError> {
        let ok_json = |v: Value| json_response(StatusCode::OK, &v, "application/json");
        Ok(match endpoint {
            Endpoint::Version => ok_json(self.version()),
            Endpoint::Metrics => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
                .body(full(self.metrics.render(&self.rest.store).await))
                .unwrap_or_else(|_| Response::new(full(Bytes::new()))),
            Endpoint::OpenApiV2 => {
                let v2 = self.rest.openapi.v2();
                let (doc, content_type) = v2.negotiate(accept)?;
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::ETAG, v2.etag())
                    .header(header::VARY, "Accept")
                    .body(full(doc))
                    .unwrap_or_else(|_| Response::new(full(Bytes::new())))
            }
            Endpoint::OpenApiIndex => ok_json(self.rest.openapi.index()),
            Endpoint::OpenApiDocument(path) => {
                let (doc, immutable) = self
                    .rest
                    .openapi
                    .document(&path, query.get("hash"))
                    .ok_or_else(ApiError::path_not_found)?;
                let cache = if immutable {
                    "public, immutable"
                } else {
                    "no-cache, private"
                };
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, cache)
                    .body(full(doc))
                    .unwrap_or_else(|_| Response::new(full(Bytes::new())))
            }
            Endpoint::Health(name) => {
                let text = if query.has("verbose") {
                    format!("[+]ping ok\n[+]log ok\n[+]etcd ok\n{name} check passed\n")
                } else {
                    "ok".to_string()
                };
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(full(text))
                    .unwrap_or_else(|_| Response::new(full(Bytes::new())))
            }
            Endpoint::CoreDiscovery => match discovery::aggregated_version(accept) {
                Some(v) => json_response(
                    StatusCode::OK,
                    &discovery::aggregated(true, v),
                    &discovery::aggregated_content_type(v),
                ),
                None => ok_json(discovery::core_versions(&self.server_address)),
            },
            Endpoint::GroupsDiscovery => match discovery::aggregated_version(accept) {
                Some(v) => json_response(
                    StatusCode::OK,
                    &discovery::aggregated(false, v),
                    &discovery::aggregated_content_type(v),
                ),
                None => ok_json(discovery::group_list()),
            },
            Endpoint::Group(name) => {
                ok_json(discovery::group(&name).ok_or_else(ApiError::path_not_found)?)
            }
            Endpoint::Resources { group, version } => ok_json(
                discovery::resource_list(&group, &version).ok_or_else(ApiError::path_not_found)?,
            ),
            Endpoint::Resource(req) => {
                let media = content_type.split(';').next().unwrap_or("").trim();
                if auth::reviews::serves(&req) {
                    let (code, object) =
                        auth::reviews::handle(&self.auth, &self.rest, user, &req, body, media)
                            .await?;
                    return Ok(json_response(code, &object, "application/json"));
                }
                let output = crate::table::Output::negotiate(accept, query.get("includeObject"))?;
                if self.auth.authorize {
                    self.check_escalation(&req, raw_query, body, media, user_agent, user)
                        .await?;
                }
                match self
                    .rest
                    .handle(&req, query, body, media, output, user_agent, user)
                    .await?
                {
                    Reply::Json(code, value, warnings) => {
                        let mut response = json_response(code, &value, "application/json");
                        for warning in warnings {
                            // RFC 7234 warn-code 299, as upstream sends them.
                            let text = format!("299 - {}", serde_json::Value::String(warning));
                            if let Ok(value) = http::HeaderValue::from_str(&text) {
                                response.headers_mut().append(header::WARNING, value);
                            }
                        }
                        response
                    }
                    Reply::Stream(rx) => stream_response(rx),
                    Reply::Raw(code, bytes) => Response::builder()
                        .status(code)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(full(bytes))
                        .unwrap_or_else(|_| Response::new(full(Bytes::new()))),
                }
            }
        })
    }

    fn version(&self) -> Value {
        json!({
            "major": "1",
            "minor": crate::KUBERNETES_MINOR,
            "gitVersion": self.git_version,
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": format!("rust{}", env!("CARGO_PKG_RUST_VERSION")),
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else if cfg!(target_arch = "aarch64") { "arm64" } else { std::env::consts::ARCH }),
        })
    }
}

/// Accept TLS connections until `shutdown`, serving each on its own task.
pub async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    api: Arc<Api>,
    shutdown: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (acceptor, api, shutdown) = (acceptor.clone(), api.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let cert = match tls.get_ref().1.peer_certificates() {
                None => ClientCert::None,
                Some([]) => ClientCert::None,
                Some(chain) => match api.verifier.verify_client(chain) {
                    Some(identity) => ClientCert::Valid(identity),
                    None => ClientCert::Invalid,
                },
            };
            let service = hyper::service::service_fn(move |req| {
                let (api, cert) = (api.clone(), cert.clone());
                async move { Ok::<_, Infallible>(api.handle(req, cert, peer).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::select! {
                result = conn => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
