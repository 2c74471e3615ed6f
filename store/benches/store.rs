//! Store benchmarks: durable writes against a local etcd in the same run, range reads, watch fan-out, disk space after compaction and memory.
//!
//! Run with `cargo bench -p k1s-store --features etcd --bench store` (needs `etcd` and `protoc`
//! on PATH; `scripts/bench-store` installs them). Prints a Markdown table for BENCHMARKS.md.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use hdrhistogram::Histogram;
use k1s_store::{
    BackendConfig, Bytes, Config, RangeRequest, SledConfig, Store, WatchMessage, WatchStart,
    WriteOutcome,
};

const VALUE_1K: usize = 1024;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("rss-child") {
        return rss_child(&args[2], Path::new(&args[3]));
    }
    let quick = std::env::var("K1S_BENCH_QUICK").is_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(quick))
}

fn sled_store(dir: &Path) -> Result<Store> {
    Ok(k1s_store::open(Config {
        backend: BackendConfig::Sled(SledConfig::new(dir)),
        ..Default::default()
    })?)
}

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn from(hist: &Histogram<u64>, ops: u64, elapsed: Duration) -> Self {
        Stats {
            per_sec: ops as f64 / elapsed.as_secs_f64(),
            p50: Duration::from_micros(hist.value_at_quantile(0.5)),
            p99: Duration::from_micros(hist.value_at_quantile(0.99)),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

async fn run(quick: bool) -> Result<()> {
    let scale = if quick { 10 } else { 1 };
    let tmp = tempfile::Builder::new()
        .prefix("k1s-bench")
        .tempdir_in(std::env::var("K1S_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))?;
    let etcd = Etcd::start(&tmp.path().join("etcd"))?;
    let client = etcd.client().await?;

    // K1S_BENCH_ONLY=writes|range|fanout|space|rss runs one workload.
    let only = std::env::var("K1S_BENCH_ONLY").ok();
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    println!("| workload | k1s (sled) | etcd | k1s / etcd |");
    println!("|---|---|---|---|");
    for (writers, total) in [(1usize, 4_000u64), (8, 16_000), (32, 40_000)] {
        if !want("writes") {
            break;
        }
        let total = total / scale;
        let dir = tmp.path().join(format!("writes-{writers}"));
        let store = sled_store(&dir)?;
        let ours = k1s_writes(&store, writers, total).await?;
        store.close().await?;
        drop(store);
        let theirs = etcd_writes(&client, writers, total).await?;
        println!(
            "| durable creates, {writers} writer(s), 1 KiB | {:.0}/s, p50 {}, p99 {} | {:.0}/s, p50 {}, p99 {} | {:.2}× throughput |",
            ours.per_sec,
            ms(ours.p50),
            ms(ours.p99),
            theirs.per_sec,
            ms(theirs.p50),
            ms(theirs.p99),
            ours.per_sec / theirs.per_sec
        );
    }

    // Range of 10,000 keys of 2 KiB.
    if want("range") {
        let dir = tmp.path().join("range");
        let store = sled_store(&dir)?;
        let keys = 10_000 / scale;
        fill(&store, "/range/", keys as usize, 2048).await?;
        etcd_fill(&client, "/range/", keys as usize, 2048).await?;
        let (ours, theirs) = (
            k1s_ranges(&store, keys as usize).await?,
            etcd_ranges(&client, keys as usize).await?,
        );
        println!(
            "| range of {keys} keys × 2 KiB | p50 {}, p99 {} | p50 {}, p99 {} | {:.2}× p99 latency |",
            ms(ours.p50),
            ms(ours.p99),
            ms(theirs.p50),
            ms(theirs.p99),
            ours.p99.as_secs_f64() / theirs.p99.as_secs_f64()
        );
        store.close().await?;
        drop(store);
    }

    // Watch fan-out: 1,000 watchers on one prefix.
    if want("fanout") {
        let dir = tmp.path().join("fanout");
        let store = sled_store(&dir)?;
        let fan = watch_fanout(&store, 1000, 200 / scale as usize).await?;
        println!(
            "| watch fan-out, 1000 watchers, write → delivery | p50 {}, p99 {} | — | — |",
            ms(fan.p50),
            ms(fan.p99)
        );
        store.close().await?;
        drop(store);
    }

    // Space: 100,000 updates to 1,000 keys, then compaction, then as many again (a store at
    // steady state reuses the space compaction freed).
    if want("space") {
        let dir = tmp.path().join("space");
        let updates = 100_000 / scale;
        let ours = space(&dir, updates).await?;
        let theirs = etcd_space(&client, updates).await?;
        println!(
            "| disk after {updates} updates to 1,000 keys of 1 KiB, compacted (live data {:.1} MiB) | {:.1} MiB ({:.1}× live); {:.1} MiB after another {updates} updates and compaction | {:.1} MiB ({:.1}× live); {:.1} MiB | {:.2}× |",
            mib(ours.live),
            mib(ours.compacted),
            ours.compacted as f64 / ours.live as f64,
            mib(ours.steady),
            mib(theirs.compacted),
            theirs.compacted as f64 / ours.live as f64,
            mib(theirs.steady),
            ours.compacted as f64 / theirs.compacted as f64,
        );
    }

    // Memory: RSS of a process holding 100,000 keys.
    for backend in ["sled", "memory"] {
        if !want("rss") {
            break;
        }
        let (empty, full) = rss(
            backend,
            &tmp.path().join(format!("rss-{backend}")),
            100_000 / scale,
        )?;
        println!(
            "| RSS holding {} keys of 1 KiB ({backend}) | {:.1} MiB ({:.1} MiB empty) | — | — |",
            100_000 / scale,
            mib(full),
            mib(empty)
        );
    }
    drop(etcd);
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn payload(len: usize) -> Bytes {
    Bytes::from(vec![b'x'; len])
}

async fn k1s_writes(store: &Store, writers: usize, total: u64) -> Result<Stats> {
    let per = total / writers as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let value = payload(VALUE_1K);
            for i in 0..per {
                let key = format!("/bench/{writers}/{w}/{i}");
                let t = Instant::now();
                let out = store.create(key.as_bytes(), value.clone(), None).await?;
                anyhow::ensure!(
                    matches!(out, WriteOutcome::Committed { .. }),
                    "create conflicted"
                );
                h.record(t.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(h)
        }));
    }
    merge(tasks, per * writers as u64, start).await
}

/// The same creates against etcd, as Kubernetes does them: a transaction that puts only if the
/// key does not exist.
async fn etcd_writes(client: &Client, writers: usize, total: u64) -> Result<Stats> {
    let per = total / writers as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut kv = client.kv_client();
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let value = vec![b'x'; VALUE_1K];
            for i in 0..per {
                let key = format!("/bench/{writers}/{w}/{i}");
                let t = Instant::now();
                let txn = Txn::new()
                    .when([Compare::mod_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, value.clone(), None)]);
                let resp = kv.txn(txn).await?;
                anyhow::ensure!(resp.succeeded(), "etcd create conflicted");
                h.record(t.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(h)
        }));
    }
    merge(tasks, per * writers as u64, start).await
}

/// Combine the latency histograms of finished workers.
async fn merge(
    tasks: Vec<tokio::task::JoinHandle<Result<Histogram<u64>>>>,
    ops: u64,
    start: Instant,
) -> Result<Stats> {
    let mut all = hist();
    for t in tasks {
        all.add(t.await??)?;
    }
    Ok(Stats::from(&all, ops, start.elapsed()))
}

async fn fill(store: &Store, prefix: &str, keys: usize, len: usize) -> Result<()> {
    let writers = 32;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, prefix) = (store.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            for i in (w..keys).step_by(writers) {
                store
                    .create(format!("{prefix}{i:06}").as_bytes(), payload(len), None)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn etcd_fill(client: &Client, prefix: &str, keys: usize, len: usize) -> Result<()> {
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (mut kv, prefix) = (client.kv_client(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            for i in (w..keys).step_by(32) {
                kv.put(format!("{prefix}{i:06}"), vec![b'x'; len], None)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

const RANGE_ROUNDS: u64 = 40;

async fn k1s_ranges(store: &Store, keys: usize) -> Result<Stats> {
    let mut h = hist();
    let start = Instant::now();
    for _ in 0..RANGE_ROUNDS {
        let t = Instant::now();
        let resp = store
            .range(RangeRequest {
                prefix: Bytes::from_static(b"/range/"),
                ..Default::default()
            })
            .await?;
        anyhow::ensure!(
            resp.kvs.len() == keys,
            "range returned {} keys",
            resp.kvs.len()
        );
        h.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(Stats::from(&h, RANGE_ROUNDS, start.elapsed()))
}

async fn etcd_ranges(client: &Client, keys: usize) -> Result<Stats> {
    let mut kv = client.kv_client().max_decoding_message_size(256 << 20);
    let mut h = hist();
    let start = Instant::now();
    for _ in 0..RANGE_ROUNDS {
        let t = Instant::now();
        let resp = kv
            .get("/range/", Some(GetOptions::new().with_prefix()))
            .await?;
        anyhow::ensure!(
            resp.kvs().len() == keys,
            "etcd range returned {} keys",
            resp.kvs().len()
        );
        h.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(Stats::from(&h, RANGE_ROUNDS, start.elapsed()))
}

async fn watch_fanout(store: &Store, watchers: usize, writes: usize) -> Result<Stats> {
    let starts = Arc::new(Starts::new(writes));
    let mut tasks = Vec::new();
    let first = store.current_revision();
    for _ in 0..watchers {
        let mut w = store.watch(b"/fan/", WatchStart::Now).await?;
        let starts = starts.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let mut seen = 0;
            while seen < writes {
                match w.next().await? {
                    WatchMessage::Event(e) => {
                        let i = (e.revision() - first - 1) as usize;
                        h.record(starts.get(i).elapsed().as_micros() as u64)?;
                        seen += 1;
                    }
                    WatchMessage::Progress(_) => {}
                }
            }
            anyhow::Ok(h)
        }));
    }
    let begin = Instant::now();
    for i in 0..writes {
        starts.set(i, Instant::now());
        store
            .create(format!("/fan/{i}").as_bytes(), payload(VALUE_1K), None)
            .await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    merge(tasks, (writes * watchers) as u64, begin).await
}

/// Write-start instants shared with the watcher tasks.
struct Starts(std::sync::Mutex<Vec<Instant>>);

impl Starts {
    fn new(n: usize) -> Self {
        Starts(std::sync::Mutex::new(vec![Instant::now(); n]))
    }
    fn set(&self, i: usize, at: Instant) {
        self.0.lock().unwrap()[i] = at;
    }
    fn get(&self, i: usize) -> Instant {
        self.0.lock().unwrap()[i]
    }
}

struct Space {
    live: u64,
    /// Disk bytes after the updates and a compaction.
    compacted: u64,
    /// The same after a second round of updates and compaction.
    steady: u64,
}

async fn space(dir: &Path, updates: u64) -> Result<Space> {
    let store = sled_store(dir)?;
    fill(&store, "/space/", 1000, VALUE_1K).await?;
    let mut rounds = Vec::new();
    for _ in 0..2 {
        update_all(&store, updates).await?;
        store.compact(store.current_revision()).await?;
        rounds.push(store.stats().disk_bytes);
    }
    store.close().await?;
    Ok(Space {
        live: 1000 * (VALUE_1K as u64 + 14),
        compacted: rounds[0],
        steady: rounds[1],
    })
}

/// `updates` compare-and-swap updates spread over the 1,000 `/space/` keys by 32 writers.
async fn update_all(store: &Store, updates: u64) -> Result<()> {
    let writers = 32u64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..updates / writers {
                let key = format!("/space/{:06}", (w + writers * i) % 1000);
                let (_, kv) = store.get(key.as_bytes(), None).await?;
                let kv = kv.context("key missing")?;
                store
                    .update(key.as_bytes(), payload(VALUE_1K), kv.mod_revision, None)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The same on etcd: its database size (bbolt does not shrink without a defrag).
async fn etcd_space(client: &Client, updates: u64) -> Result<Space> {
    etcd_fill(client, "/space/", 1000, VALUE_1K).await?;
    let mut rounds = Vec::new();
    for _ in 0..2 {
        let mut tasks = Vec::new();
        for w in 0..32u64 {
            let mut kv = client.kv_client();
            tasks.push(tokio::spawn(async move {
                for i in 0..updates / 32 {
                    kv.put(
                        format!("/space/{:06}", (w + 32 * i) % 1000),
                        vec![b'x'; VALUE_1K],
                        None,
                    )
                    .await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let mut kv = client.kv_client();
        let rev = kv
            .get("/space/000000", None)
            .await?
            .header()
            .context("no header")?
            .revision();
        kv.compact(rev, None).await?;
        // Let etcd's batched backend commit the compaction before reading the size.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut maintenance = client.maintenance_client();
        rounds.push(maintenance.status().await?.db_size() as u64);
    }
    Ok(Space {
        live: 1000 * (VALUE_1K as u64 + 14),
        compacted: rounds[0],
        steady: rounds[1],
    })
}

fn rss(backend: &str, dir: &Path, keys: u64) -> Result<(u64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .args([
            "rss-child",
            backend,
            &dir.to_string_lossy(),
            &keys.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        bail!("rss child failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    let mut nums = text.split_whitespace().map(|n| n.parse::<u64>());
    Ok((
        nums.next().context("no output")??,
        nums.next().context("no output")??,
    ))
}

fn rss_child(backend: &str, dir: &Path) -> Result<()> {
    let keys: usize = std::env::args().nth(4).context("key count")?.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let backend = match backend {
            "memory" => BackendConfig::Memory,
            _ => BackendConfig::Sled(SledConfig::new(dir)),
        };
        let store = k1s_store::open(Config {
            backend,
            ..Default::default()
        })?;
        let empty = rss_bytes()?;
        fill(&store, "/rss/", keys, VALUE_1K).await?;
        let full = rss_bytes()?;
        println!("{empty} {full}");
        store.close().await?;
        anyhow::Ok(())
    })
}

fn rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches(" kB")
        .parse::<u64>()?;
    Ok(kb * 1024)
}

/// A throwaway etcd on loopback, killed on drop.
struct Etcd {
    child: Child,
    port: u16,
}

impl Etcd {
    fn start(dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let peer = free_port()?;
        let child = Command::new("etcd")
            .args([
                "--data-dir",
                &dir.to_string_lossy(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{port}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{port}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer}"),
                "--quota-backend-bytes",
                &(8u64 << 30).to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?;
        Ok(Etcd { child, port })
    }

    async fn client(&self) -> Result<Client> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = async {
                let mut c =
                    Client::connect([format!("http://127.0.0.1:{}", self.port)], None).await?;
                c.status().await?;
                Ok::<_, etcd_client::Error>(c)
            };
            match attempt.await {
                Ok(c) => return Ok(c),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(e).context("etcd did not become healthy"),
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
