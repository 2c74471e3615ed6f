//! Helpers the benchmarks share: an HTTP/2 client with the admin credentials, requests, percentiles, RSS.

#![allow(dead_code, reason = "each bench uses a part")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k1s_tests::Server;

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches(" kB")
        .parse()?;
    Ok(kb / 1024.0)
}

/// `https://127.0.0.1:<port>` from the server's kubeconfig.
pub fn base(server: &Server) -> Result<String> {
    let url = server.url();
    anyhow::ensure!(!url.is_empty(), "no server in the kubeconfig");
    Ok(url)
}

/// An HTTP/2-only client over `config`, with Nagle off (Nagle plus delayed ACKs would add
/// ~40 ms to every small request).
pub fn https_client(config: rustls::ClientConfig) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(https)
}

/// An HTTP/2 client presenting the admin certificate and trusting the cluster CA.
pub fn client_for(server: &Server) -> Result<HttpsClient> {
    use base64::Engine;
    use rustls_pki_types::pem::PemObject;
    let kubeconfig = std::fs::read_to_string(server.kubeconfig())?;
    let field = |name: &str| -> Result<Vec<u8>> {
        let line = kubeconfig
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .with_context(|| format!("no {name}"))?;
        let value = line
            .split_once(':')
            .map(|(_, v)| v.trim().trim_matches('"'))
            .unwrap_or_default();
        Ok(base64::engine::general_purpose::STANDARD.decode(value)?)
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_slice_iter(&field("certificate-authority-data")?)
    {
        roots.add(cert?)?;
    }
    let certs =
        rustls_pki_types::CertificateDer::pem_slice_iter(&field("client-certificate-data")?)
            .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&field("client-key-data")?)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)?;
    Ok(https_client(config))
}

pub async fn get(client: &HttpsClient, url: &str) -> Result<(u16, Bytes)> {
    let resp = client
        .request(hyper::Request::get(url).body(Full::new(Bytes::new()))?)
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

pub async fn send(
    client: &HttpsClient,
    method: &str,
    url: &str,
    body: Option<Bytes>,
) -> Result<u16> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body.unwrap_or_default()))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}
