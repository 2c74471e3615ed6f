//! API server benchmarks against the real release binary: start to ready, idle RSS, durable creates over HTTP/2, large lists, watch fan-out, binary size.
//!
//! Run with `./scripts/bench-api` (builds `k1s` in release first). Prints a Markdown table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k1s_tests::{Server, k1s_bin};

mod common;

use common::{HttpsClient, base, client_for, get, https_client, ms, percentile, rss_mib, send};

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let quick = std::env::var("K1S_BENCH_QUICK").is_ok();
    let scale = if quick { 10 } else { 1 };
    println!("| workload | result |");
    println!("|---|---|");
    if std::env::var("K1S_BENCH_ONLY").as_deref() == Ok("chain") {
        return chain_overhead(scale).await;
    }

    // Start to ready, timed from spawning the process to the first 200 from /readyz (public,
    // so the client needs no credentials; it cannot know the new CA yet either).
    let insecure = insecure_client()?;
    for (label, args) in [("ephemeral", &["--ephemeral"][..]), ("on disk", &[][..])] {
        let mut times = Vec::new();
        for _ in 0..10 {
            let tmp = tempfile::tempdir()?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let started = Instant::now();
            let mut child = std::process::Command::new(k1s_bin())
                .args([
                    "server",
                    "--disable-agent",
                    "--bind-address",
                    "127.0.0.1",
                    "--https-listen-port",
                    &port.to_string(),
                    "--data-dir",
                ])
                .arg(tmp.path().join("data"))
                .args(args)
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let ready = wait_ready(&insecure, &format!("https://127.0.0.1:{port}")).await;
            times.push(started.elapsed());
            let _ = child.kill();
            let _ = child.wait();
            ready?;
        }
        times.sort();
        println!(
            "| spawn → /readyz 200, {label} (fresh data dir: CA and certificates created, 10 runs) | median {}, max {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 1.0))
        );
    }

    let tmp = tempfile::tempdir()?;
    let server = Server::start(tmp.path().join("data"), &[])?;
    let client = client_for(&server)?;
    let url = base(&server)?;
    wait_ready(&client, &url).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "| idle RSS, no agent, sled store | {:.1} MiB |",
        rss_mib(server.child.id())?
    );

    // Durable ConfigMap creates from 32 concurrent HTTP/2 clients.
    let clients = 32;
    let per = 10_000 / scale / clients;
    let body = |w: usize, i: usize| {
        Bytes::from(format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c-{w}-{i}"}},"data":{{"k":"{}"}}}}"#,
            "v".repeat(512)
        ))
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let (client, url) = (client_for(&server)?, url.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                let status = send(
                    &client,
                    "POST",
                    &format!("{url}/api/v1/namespaces/default/configmaps"),
                    Some(body(w, i)),
                )
                .await?;
                anyhow::ensure!(status == 201, "create answered {status}");
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!(
        "| durable ConfigMap creates, 32 HTTP/2 clients | {:.0}/s, p50 {}, p99 {} |",
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    // LIST of 10,000 ConfigMaps of ~0.6 KiB.
    let listed = clients * per;
    let mut lat = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let (status, body) = get(
            &client,
            &format!("{url}/api/v1/namespaces/default/configmaps"),
        )
        .await?;
        anyhow::ensure!(
            status == 200 && body.len() > listed * 500,
            "list answered {status} with {} bytes",
            body.len()
        );
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "| LIST of {listed} ConfigMaps, JSON | p50 {}, p99 {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    // LIST of 10,000 pods (each ~2 KiB stored after defaulting), whole and by label selector
    // (served from the watch cache), created by 32 HTTP/2 clients.
    let pods = 10_000 / scale;
    let per = pods / clients;
    let pod = |w: usize, i: usize| {
        Bytes::from(format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p-{w}-{i}","namespace":"pods","labels":{{"app":"bench","shard":"s{}"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.local/app:1.0","ports":[{{"containerPort":8080}}],"env":[{{"name":"MODE","value":"bench"}}],"resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}},"limits":{{"cpu":"500m","memory":"128Mi"}}}}}}]}}}}"#,
            i % 10
        ))
    };
    send(
        &client,
        "POST",
        &format!("{url}/api/v1/namespaces"),
        Some(Bytes::from_static(
            br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"pods"}}"#,
        )),
    )
    .await?;
    let mut tasks = Vec::new();
    for w in 0..clients {
        let (client, url) = (client_for(&server)?, url.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let status = send(
                    &client,
                    "POST",
                    &format!("{url}/api/v1/namespaces/pods/pods"),
                    Some(pod(w, i)),
                )
                .await?;
                anyhow::ensure!(status == 201, "pod create answered {status}");
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let created = clients * per;
    for (label, query, expect) in [
        ("", "", created),
        (
            ", labelSelector=shard=s3",
            "?labelSelector=shard%3Ds3",
            clients * (0..per).filter(|i| i % 10 == 3).count(),
        ),
    ] {
        let mut lat = Vec::new();
        let mut bytes = 0;
        for _ in 0..21 {
            let t = Instant::now();
            let (status, body) = get(
                &client,
                &format!("{url}/api/v1/namespaces/pods/pods{query}"),
            )
            .await?;
            lat.push(t.elapsed());
            anyhow::ensure!(status == 200, "pod list answered {status}");
            bytes = body.len();
            let list: serde_json::Value = serde_json::from_slice(&body)?;
            let items = list["items"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(items == expect, "listed {items} pods, expected {expect}");
        }
        // The first list after the creates is cold: the watch cache decodes each object once,
        // the first time a selector needs it.
        let first = lat.remove(0);
        lat.sort();
        println!(
            "| LIST of {created} pods{label}, JSON ({:.1} MiB, {expect} items) | first {}; then p50 {}, p99 {} |",
            bytes as f64 / (1024.0 * 1024.0),
            ms(first),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        );
    }

    // 1,000 concurrent watches seeing one change.
    let watchers = 1000;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let ready = Arc::new(tokio::sync::Barrier::new(watchers + 1));
    let connections: Vec<HttpsClient> = (0..10)
        .map(|_| client_for(&server))
        .collect::<Result<_>>()?;
    for w in 0..watchers {
        let (client, url, tx, ready) = (
            connections[w % 10].clone(),
            url.clone(),
            tx.clone(),
            ready.clone(),
        );
        tokio::spawn(async move {
            let req = hyper::Request::get(format!(
                "{url}/api/v1/namespaces/watched/configmaps?watch=true&resourceVersion=0&fieldSelector=metadata.name%3Dc-0-0"
            ))
            .body(Full::new(Bytes::new()))?;
            let mut resp = client.request(req).await?;
            ready.wait().await;
            while let Some(frame) = resp.body_mut().frame().await {
                if frame?
                    .data_ref()
                    .is_some_and(|d| d.windows(5).any(|w| w == b"ADDED"))
                {
                    let _ = tx.send(Instant::now());
                    break;
                }
            }
            anyhow::Ok(())
        });
    }
    send(
        &client,
        "POST",
        &format!("{url}/api/v1/namespaces"),
        Some(Bytes::from_static(
            br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"watched"}}"#,
        )),
    )
    .await?;
    ready.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    send(
        &client,
        "POST",
        &format!("{url}/api/v1/namespaces/watched/configmaps"),
        Some(body(0, 0)),
    )
    .await?;
    let mut lat = Vec::new();
    while lat.len() < watchers {
        let at = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await?
            .context("watchers ended")?;
        lat.push(at.duration_since(start));
    }
    lat.sort();
    println!(
        "| 1,000 concurrent watches, one change (write start → event) | p50 {}, p99 {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    chain_overhead(scale).await?;

    let size = std::fs::metadata(k1s_bin())?.len();
    let stripped = tmp.path().join("k1s-stripped");
    let stripped_size = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(k1s_bin())
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&stripped).ok())
        .map(|m| format!("{:.1} MiB stripped", m.len() as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "strip unavailable".into());
    println!(
        "| release binary size | {:.1} MiB with line tables; {stripped_size} |",
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The security chain's cost: the same authenticated GET (a bearer token for a user RBAC
/// allows through one of 1,001 RoleBindings) against a server with authorization on and one
/// with `--disable-authorization`, interleaved so both see the same machine.
async fn chain_overhead(scale: usize) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let tokens = tmp.path().join("tokens.csv");
    std::fs::write(&tokens, "bench-token,bench,uid-bench,\n")?;
    let tokens = tokens.display().to_string();
    let on = Server::start(
        tmp.path().join("on"),
        &["--ephemeral", "--token-auth-file", &tokens],
    )?;
    let off = Server::start(
        tmp.path().join("off"),
        &[
            "--ephemeral",
            "--token-auth-file",
            &tokens,
            "--disable-authorization",
        ],
    )?;
    let mut targets = Vec::new();
    for server in [&on, &off] {
        let admin = client_for(server)?;
        let url = base(server)?;
        wait_ready(&admin, &url).await?;
        let status = send(
            &admin,
            "POST",
            &format!("{url}/api/v1/namespaces/default/configmaps"),
            Some(Bytes::from_static(
                br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"}}"#,
            )),
        )
        .await?;
        anyhow::ensure!(status == 201, "configmap create answered {status}");
        for i in 0..=1000 {
            let user = if i == 1000 {
                "bench".to_string()
            } else {
                format!("u{i}")
            };
            let body = format!(
                r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"rb-{i}"}},"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"}},"subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"{user}"}}]}}"#
            );
            let status = send(
                &admin,
                "POST",
                &format!("{url}/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"),
                Some(Bytes::from(body)),
            )
            .await?;
            anyhow::ensure!(status == 201, "rolebinding create answered {status}");
        }
        targets.push((
            token_client(server)?,
            format!("{url}/api/v1/namespaces/default/configmaps/target"),
        ));
    }
    // The RBAC index follows its watch: wait until the bench user is allowed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_with_token(&targets[0].0, &targets[0].1, "bench-token").await? != 200 {
        anyhow::ensure!(Instant::now() < deadline, "the bench user never got access");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..(40 / scale).max(2) {
        for (i, (client, url)) in targets.iter().enumerate() {
            for _ in 0..250 {
                let t = Instant::now();
                let status = get_with_token(client, url, "bench-token").await?;
                let elapsed = t.elapsed();
                anyhow::ensure!(status == 200, "authenticated GET answered {status}");
                if i == 0 {
                    with.push(elapsed)
                } else {
                    without.push(elapsed)
                }
            }
        }
    }
    with.sort();
    without.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "| authenticated GET, RBAC with 1,001 RoleBindings vs `--disable-authorization` ({} each, interleaved) | p50 {:.0} µs vs {:.0} µs (+{:.0} µs), p99 {:.0} µs vs {:.0} µs (+{:.0} µs) |",
        with.len(),
        us(percentile(&with, 0.5)),
        us(percentile(&without, 0.5)),
        us(percentile(&with, 0.5)) - us(percentile(&without, 0.5)),
        us(percentile(&with, 0.99)),
        us(percentile(&without, 0.99)),
        us(percentile(&with, 0.99)) - us(percentile(&without, 0.99)),
    );
    drop(on);
    drop(off);
    Ok(())
}

/// An HTTP/2 client trusting the cluster CA and presenting no certificate (it authenticates
/// with a bearer token per request).
fn token_client(server: &Server) -> Result<HttpsClient> {
    use rustls_pki_types::pem::PemObject;
    let ca = std::fs::read(
        server
            .kubeconfig()
            .parent()
            .context("no data dir")?
            .join("tls/ca.crt"),
    )?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(https_client(config))
}

async fn get_with_token(client: &HttpsClient, url: &str, token: &str) -> Result<u16> {
    let req = hyper::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

async fn wait_ready(client: &HttpsClient, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, _)) = get(client, &format!("{url}/readyz")).await {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "server never became ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A client that accepts any server certificate, for the public health endpoints only.
fn insecure_client() -> Result<HttpsClient> {
    #[derive(Debug)]
    struct AnyServer(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &rustls_pki_types::CertificateDer<'_>,
            _: &[rustls_pki_types::CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    Ok(https_client(config))
}
