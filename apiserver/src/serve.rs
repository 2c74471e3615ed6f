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

use crate::discovery;
use crate::request::{Endpoint, Query, route};
use crate::rest::{Reply, Rest};
use crate::status::ApiError;
use crate::tls::{ClientVerifier, Identity};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs.
pub struct Api {
    pub rest: Rest,
    pub verifier: ClientVerifier,
    /// `host:port` clients reach us at (for legacy `/api`).
    pub server_address: String,
    pub git_version: String,
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

impl Api {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        identity: Option<Identity>,
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
        let started = std::time::Instant::now();
        let endpoint = match route(&method, &path, &query) {
            Ok(endpoint) => endpoint,
            Err(e) => return self.finish(&method, &path, started, error_response(&e)),
        };
        let public = matches!(endpoint, Endpoint::Version | Endpoint::Health(_));
        if !public && identity.is_none() {
            return self.finish(
                &method,
                &path,
                started,
                error_response(&ApiError::unauthorized()),
            );
        }
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
        let response = match self
            .dispatch(endpoint, &query, &accept, &content_type, &user_agent, &body)
            .await
        {
            Ok(response) => response,
            Err(e) => error_response(&e),
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

    async fn dispatch(
        &self,
        endpoint: Endpoint,
        query: &Query,
        accept: &str,
        content_type: &str,
        user_agent: &str,
        body: &Bytes,
    ) -> Result<Response<Body>, ApiError> {
        let ok_json = |v: Value| json_response(StatusCode::OK, &v, "application/json");
        Ok(match endpoint {
            Endpoint::Version => ok_json(self.version()),
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
                let table = accept
                    .split(',')
                    .next()
                    .is_some_and(|first| first.contains("as=Table"));
                match self
                    .rest
                    .handle(&req, query, body, media, table, user_agent)
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
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| api.verifier.verify_client(chain));
            let service = hyper::service::service_fn(move |req| {
                let (api, identity) = (api.clone(), identity.clone());
                async move { Ok::<_, Infallible>(api.handle(req, identity).await) }
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
