//! One webhook call: resolving `clientConfig` (a URL, or a Service the apiserver resolves to a ready endpoint itself) and POSTing an AdmissionReview over HTTPS checked against the webhook's `caBundle`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::admission::{Lookup, resource};

/// Largest AdmissionReview response read (a mutating webhook may patch a large object).
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// Where the system's CA certificates are, for webhooks without a `caBundle`.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The trust roots a `caBundle` (base64 of PEM certificates, as JSON carries `[]byte`) holds.
pub fn ca_roots(bundle: &str) -> Result<rustls::RootCertStore, String> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .map_err(|e| format!("caBundle is not base64: {e}"))?;
    roots_from_pem(&pem)
}

fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("caBundle holds invalid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("caBundle holds an invalid certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("data does not contain any valid RSA or ECDSA certificates".into());
    }
    Ok(roots)
}

/// A resolved webhook: where to connect and what to present.
pub struct Target {
    /// The URL as upstream's client names it in errors (`https://svc.ns.svc:443/path?timeout=10s`).
    pub url: String,
    /// Host (name or IP) and port to dial.
    connect: (String, u16),
    server_name: ServerName<'static>,
    host_header: String,
    path_and_query: String,
    roots: Arc<rustls::RootCertStore>,
}

/// Why a call did not produce a response (upstream's `ErrCallingWebhook` reasons).
pub type Reason = String;

fn timeout_query(timeout: Duration) -> String {
    format!("timeout={}s", timeout.as_secs().max(1))
}

fn server_name(host: &str) -> Result<ServerName<'static>, Reason> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string()).map_err(|e| format!("invalid host {host:?}: {e}"))
}

/// Resolve a webhook's `clientConfig`: a URL is dialled as written; a Service is resolved to
/// a ready address of its Endpoints (upstream's endpoint resolver), while TLS checks the
/// certificate for `<service>.<namespace>.svc`.
pub async fn resolve(
    client_config: &Value,
    timeout: Duration,
    cluster: &dyn Lookup,
) -> Result<Target, Reason> {
    let roots = match client_config.get("caBundle").and_then(Value::as_str) {
        Some(bundle) if !bundle.is_empty() => ca_roots(bundle)?,
        _ => {
            let pem = std::fs::read(SYSTEM_ROOTS)
                .map_err(|e| format!("no caBundle and cannot read {SYSTEM_ROOTS}: {e}"))?;
            roots_from_pem(&pem)?
        }
    };
    let roots = Arc::new(roots);
    if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid webhook URL {url:?}: {e}"))?;
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16().unwrap_or(443);
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let path_and_query = format!("{path}?{}", timeout_query(timeout));
        let authority = uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.as_str().to_string());
        return Ok(Target {
            url: format!("https://{authority}{path_and_query}"),
            connect: (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            ),
            server_name: server_name(&host)?,
            host_header: authority,
            path_and_query,
            roots,
        });
    }
    let service = client_config.get("service").cloned().unwrap_or(Value::Null);
    let name = service.get("name").and_then(Value::as_str).unwrap_or("");
    let namespace = service
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let port = service.get("port").and_then(Value::as_u64).unwrap_or(443) as u16;
    let path = service.get("path").and_then(Value::as_str).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    let host = format!("{name}.{namespace}.svc");
    let path_and_query = format!("{path}?{}", timeout_query(timeout));
    let url = format!("https://{host}:{port}{path_and_query}");
    let fail = |reason: String| format!("Post {url:?}: {reason}");
    let connect = resolve_service(cluster, namespace, name, port)
        .await
        .map_err(fail)?;
    Ok(Target {
        connect,
        server_name: server_name(&host)?,
        host_header: format!("{host}:{port}"),
        path_and_query,
        roots,
        url,
    })
}

/// Upstream's `ResolveEndpoint`: the Service's port numbered `port`, then a ready address of
/// the Endpoints subset serving that port's name.
async fn resolve_service(
    cluster: &dyn Lookup,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<(String, u16), Reason> {
    let services = resource("", "services");
    let Some(svc) = cluster
        .get(services, Some(namespace), name)
        .await
        .map_err(|e| e.message)?
    else {
        return Err(format!("service \"{name}\" not found"));
    };
    let svc_type = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if svc_type == "ExternalName" {
        let external = svc
            .pointer("/spec/externalName")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Ok((external.to_string(), port));
    }
    let svc_port = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    let endpoints = resource("", "endpoints");
    let eps = cluster
        .get(endpoints, Some(namespace), name)
        .await
        .map_err(|e| e.message)?
        .unwrap_or(Value::Null);
    let no_endpoints = || format!("no endpoints available for service \"{name}\"");
    let subsets: Vec<&Value> = eps
        .get("subsets")
        .and_then(Value::as_array)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    if subsets.is_empty() {
        return Err(no_endpoints());
    }
    let start = rand::random::<u32>() as usize % subsets.len();
    for i in 0..subsets.len() {
        let subset = subsets[(start + i) % subsets.len()];
        let addresses: Vec<&str> = subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("ip").and_then(Value::as_str))
            .collect();
        if addresses.is_empty() {
            continue;
        }
        let found = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name);
        if let Some(p) = found {
            let ip = addresses[rand::random::<u32>() as usize % addresses.len()];
            let port = p.get("port").and_then(Value::as_u64).unwrap_or(0) as u16;
            return Ok((ip.to_string(), port));
        }
    }
    Err(no_endpoints())
}

/// Go's text for a failed dial, which is what users search for.
fn dial_error(host: &str, port: u16, e: &std::io::Error) -> String {
    let addr = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        _ => format!("dial tcp {addr}: {e}"),
    }
}

/// POST `body` to the target within `timeout`; the response body of a 2xx answer.
pub async fn post(target: &Target, body: Vec<u8>, timeout: Duration) -> Result<Bytes, Reason> {
    let url = &target.url;
    match tokio::time::timeout(timeout, exchange(target, body)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(reason)) => Err(format!("Post {url:?}: {reason}")),
        Err(_) => Err(format!("Post {url:?}: context deadline exceeded")),
    }
}

async fn exchange(target: &Target, body: Vec<u8>) -> Result<Bytes, Reason> {
    let (host, port) = &target.connect;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
        .await
        .map_err(|e| dial_error(host, *port, &e))?;
    let _ = tcp.set_nodelay(true);
    let provider = Arc::new(crate::tls::ring_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(target.roots.clone())
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::post(target.path_and_query.as_str())
        .header(http::header::HOST, target.host_header.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .header(http::header::USER_AGENT, "kube-apiserver-admission")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    if !status.is_success() {
        // client-go's text for an unexpected status: the Status message if the body is one.
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                format!(
                    "the server responded with the status code {} but did not return more information",
                    status.as_u16()
                )
            });
        return Err(message);
    }
    Ok(bytes)
}
