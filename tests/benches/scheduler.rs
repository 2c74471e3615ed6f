//! Scheduler benchmarks against the real release binary with 5,000 simulated nodes: plain pods, required pod anti-affinity on hostname, and zone topology spread, each timed from the first create to the last bind seen on a watch; server RSS.
//!
//! Run with `./scripts/bench-scheduler` (builds `k1s` in release first). Prints a Markdown
//! table. `K1S_BENCH_QUICK=1` runs a tenth of the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k1s_tests::Server;
use serde_json::{Value, json};

mod common;

use common::{HttpsClient, base, client_for, get, rss_mib, send};

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

/// Upstream's scheduler_perf floors for the same shapes (pods/s), for the ratio column.
const UPSTREAM_PLAIN_FLOOR: f64 = 270.0;
const UPSTREAM_ANTI_FLOOR: f64 = 60.0;

async fn run() -> Result<()> {
    let quick = std::env::var("K1S_BENCH_QUICK").is_ok();
    let scale = if quick { 10 } else { 1 };
    let nodes = 5000 / scale;
    let tmp = tempfile::tempdir()?;
    let started = Instant::now();
    let server = Server::start(
        tmp.path().join("data"),
        &[
            "--ephemeral",
            "--simulated-nodes",
            &nodes.to_string(),
            "--cluster-cidr",
            "10.0.0.0/8",
            "--node-cidr-mask-size",
            "24",
        ],
    )?;
    let client = client_for(&server)?;
    let url = base(&server)?;
    let ready = wait_nodes_ready(&client, &url, nodes).await?;
    println!("| workload | result |");
    println!("|---|---|");
    println!(
        "| {nodes} simulated nodes registered and Ready | {:.1} s after start |",
        ready.duration_since(started).as_secs_f64()
    );
    let pid = server.child.id();
    println!(
        "| server RSS with {nodes} simulated nodes, idle | {:.0} MiB |",
        rss_mib(pid)?
    );

    let plain = 10_000 / scale;
    let rate = measure(&client, &url, "plain", 0, plain, |_| json!({})).await?;
    println!(
        "| {plain} plain pods, first create → last bind | {rate:.0} pods/s ({:.2}× upstream's CI floor of {UPSTREAM_PLAIN_FLOOR:.0}) |",
        rate / UPSTREAM_PLAIN_FLOOR
    );

    let anti_spec = |_: usize| {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "anti"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}}})
    };
    let rate = measure(&client, &url, "anti", 1000 / scale, 2000 / scale, anti_spec).await?;
    println!(
        "| required pod anti-affinity on hostname: {} existing + {} measured pods | {rate:.0} pods/s ({:.2}× upstream's CI floor of {UPSTREAM_ANTI_FLOOR:.0}) |",
        1000 / scale,
        2000 / scale,
        rate / UPSTREAM_ANTI_FLOOR
    );

    let spread_spec = |_: usize| {
        json!({"topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}},
        }]})
    };
    let rate = measure(
        &client,
        &url,
        "spread",
        5000 / scale,
        2000 / scale,
        spread_spec,
    )
    .await?;
    println!(
        "| topology spread DoNotSchedule over 3 zones: {} existing + {} measured pods | {rate:.0} pods/s |",
        5000 / scale,
        2000 / scale
    );
    println!(
        "| server RSS after the runs ({} pods on {nodes} nodes) | {:.0} MiB |",
        plain + 3000 / scale + 7000 / scale,
        rss_mib(pid)?
    );
    Ok(())
}

async fn wait_nodes_ready(client: &HttpsClient, url: &str, nodes: usize) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (code, body) = get(client, &format!("{url}/api/v1/nodes")).await?;
        if code == 200 {
            let list: Value = serde_json::from_slice(&body)?;
            let ready = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| {
                    n["spec"]["podCIDR"].is_string()
                        && n["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .count();
            if ready >= nodes {
                return Ok(Instant::now());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "nodes never became ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn pod(namespace: &str, name: &str, spec_extra: &Value) -> Bytes {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    Bytes::from(
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": namespace}},
            "spec": spec,
        })
        .to_string(),
    )
}

/// Create `existing` pods and wait for them to be bound, then create `measured` more and
/// return the binds per second from their first create to their last bind.
async fn measure(
    client: &HttpsClient,
    url: &str,
    namespace: &str,
    existing: usize,
    measured: usize,
    spec: impl Fn(usize) -> Value,
) -> Result<f64> {
    let ns = Bytes::from(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            .to_string(),
    );
    let code = send(
        client,
        "POST",
        &format!("{url}/api/v1/namespaces"),
        Some(ns),
    )
    .await?;
    anyhow::ensure!(code == 201, "creating namespace {namespace}: {code}");
    if existing > 0 {
        let watch = bound_watch(client, url, namespace, existing).await?;
        create_pods(client, url, namespace, "existing", existing, &spec).await?;
        watch.await??;
    }
    let watch = bound_watch(client, url, namespace, measured).await?;
    let first = Instant::now();
    create_pods(client, url, namespace, "measured", measured, &spec).await?;
    let last = watch.await??;
    Ok(measured as f64 / last.duration_since(first).as_secs_f64())
}

async fn create_pods(
    client: &HttpsClient,
    url: &str,
    namespace: &str,
    prefix: &str,
    count: usize,
    spec: &impl Fn(usize) -> Value,
) -> Result<()> {
    const CONCURRENCY: usize = 64;
    let collection = Arc::new(format!("{url}/api/v1/namespaces/{namespace}/pods"));
    let bodies: Vec<Bytes> = (0..count)
        .map(|i| pod(namespace, &format!("{prefix}-{i}"), &spec(i)))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, body) in bodies.into_iter().enumerate() {
        if tasks.len() >= CONCURRENCY {
            tasks.join_next().await.context("task")???;
        }
        let (client, collection) = (client.clone(), collection.clone());
        tasks.spawn(async move {
            let code = send(&client, "POST", &collection, Some(body)).await?;
            anyhow::ensure!(code == 201, "pod {i}: {code}");
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// A watch (started now) of the namespace's pods that resolves to the moment the `want`-th
/// distinct pod is seen bound.
async fn bound_watch(
    client: &HttpsClient,
    url: &str,
    namespace: &str,
    want: usize,
) -> Result<tokio::task::JoinHandle<Result<Instant>>> {
    let (code, body) = get(
        client,
        &format!("{url}/api/v1/namespaces/{namespace}/pods?limit=1"),
    )
    .await?;
    anyhow::ensure!(code == 200, "listing {namespace}: {code}");
    let list: Value = serde_json::from_slice(&body)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let request = hyper::Request::get(format!(
        "{url}/api/v1/namespaces/{namespace}/pods?watch=1&resourceVersion={rv}&timeoutSeconds=1800"
    ))
    .body(Full::new(Bytes::new()))?;
    let response = client.request(request).await?;
    anyhow::ensure!(response.status() == 200, "watch: {}", response.status());
    Ok(tokio::spawn(async move {
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line)?;
                let object = &event["object"];
                if object["spec"]["nodeName"].is_string()
                    && let Some(name) = object["metadata"]["name"].as_str()
                    && seen.insert(name.to_string())
                    && seen.len() >= want
                {
                    return Ok(Instant::now());
                }
            }
        }
        anyhow::bail!("watch ended after {} bound pods", seen.len())
    }))
}
