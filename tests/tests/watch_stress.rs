//! Watch under churn: 8 writers make 10,000 creates, updates and deletes over 100 ConfigMaps while clients re-watch from their last resourceVersion every ~50 events; each concatenated stream must equal the history the writers were answered, with and without a label selector whose matches change, and once through a 410 after compaction and a relist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k1s_tests::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

const NAMESPACE: &str = "stress";
const WRITERS: usize = 8;
const WRITES: usize = 10_000;
const KEYS: usize = 100;
/// The last write, made once the writers are done; every watcher stops when it sees it.
const SENTINEL: &str = "zz-end";
/// The selector the selecting watchers use; writers flip `sel` between `a` and `b`.
const SELECTOR: &str = "sel=a";
/// How long a watcher may wait for its next line before the test fails.
const STEP: Duration = Duration::from_secs(30);
/// The watchers: their label selector, and whether they stop once until their revision is
/// compacted, get a 410 and relist.
const WATCHERS: [(Option<&str>, bool); 4] = [
    (None, false),
    (Some(SELECTOR), false),
    (None, true),
    (Some(SELECTOR), true),
];

/// One object as a watcher or a writer saw it: enough to tell versions and incarnations apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    name: String,
    uid: String,
    rv: u64,
    labels: Value,
    data: Value,
}

impl State {
    fn of(object: &Value) -> Result<State> {
        let meta = &object["metadata"];
        Ok(State {
            name: meta["name"].as_str().context("no name")?.to_string(),
            uid: meta["uid"].as_str().context("no uid")?.to_string(),
            rv: meta["resourceVersion"]
                .as_str()
                .context("no resourceVersion")?
                .parse()
                .context("resourceVersion is not a number")?,
            labels: meta.get("labels").cloned().unwrap_or(json!({})),
            data: object.get("data").cloned().unwrap_or(json!({})),
        })
    }

    fn selected(&self) -> bool {
        self.labels["sel"] == "a"
    }

    /// The same content at another revision, as a DELETED event carries it.
    fn at(&self, rv: u64) -> State {
        State { rv, ..self.clone() }
    }
}

/// A watch event, reduced to what the comparison needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: String,
    state: State,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.state;
        write!(
            f,
            "{} {} rv={} uid={} labels={} data={}",
            self.kind, s.name, s.rv, s.uid, s.labels, s.data
        )
    }
}

/// One acknowledged write, from the writer's own response: the revision it was made at and
/// the state it left (for a delete, the deleted state).
#[derive(Debug, Clone)]
struct Write {
    deleted: bool,
    state: State,
}

/// The store's history for the namespace, reconstructed from the writers' responses alone.
struct History {
    writes: Vec<Write>,
}

impl History {
    fn new(mut writes: Vec<Write>) -> Result<History> {
        writes.sort_by_key(|w| w.state.rv);
        for pair in writes.windows(2) {
            ensure!(
                pair[0].state.rv != pair[1].state.rv,
                "two writes were answered with resourceVersion {}: {:?} and {:?}",
                pair[0].state.rv,
                pair[0],
                pair[1]
            );
        }
        // Each write must make sense after the one before it on the same key.
        let mut live: BTreeMap<&str, &State> = BTreeMap::new();
        for w in &writes {
            let s = &w.state;
            match (live.get(s.name.as_str()), w.deleted) {
                (None, true) => bail!("a delete of absent {} was acknowledged at {}", s.name, s.rv),
                (Some(prev), true) => {
                    ensure!(
                        prev.at(s.rv) == *s,
                        "the delete of {} at {} answered {s:?}, not its last state {prev:?}",
                        s.name,
                        s.rv
                    );
                    live.remove(s.name.as_str());
                }
                (Some(prev), false) => {
                    ensure!(
                        prev.uid == s.uid,
                        "{} changed uid without a delete at {}",
                        s.name,
                        s.rv
                    );
                    live.insert(&s.name, s);
                }
                (None, false) => {
                    live.insert(&s.name, s);
                }
            }
        }
        Ok(History { writes })
    }

    /// The events a watch from `after` (exclusive) sees, as upstream defines them: with a
    /// selector, entering it is ADDED, staying MODIFIED, and leaving it (or a delete) DELETED
    /// carrying the last state that matched, at the revision of the change.
    fn events(&self, after: u64, selector: bool) -> Vec<Seen> {
        let mut live: BTreeMap<&str, &State> = BTreeMap::new();
        let mut out = Vec::new();
        for w in &self.writes {
            let s = &w.state;
            let prev = live.get(s.name.as_str()).copied();
            let was = prev.is_some_and(|p| !selector || p.selected());
            let is = !w.deleted && (!selector || s.selected());
            let event = match (was, is) {
                (false, true) => Some(("ADDED", s.clone())),
                (true, true) => Some(("MODIFIED", s.clone())),
                (true, false) => prev.map(|p| ("DELETED", p.at(s.rv))),
                (false, false) => None,
            };
            if w.deleted {
                live.remove(s.name.as_str());
            } else {
                live.insert(&s.name, s);
            }
            if s.rv > after
                && let Some((kind, state)) = event
            {
                out.push(Seen {
                    kind: kind.into(),
                    state,
                });
            }
        }
        out
    }

    /// The objects that exist at revision `at`, sorted by name.
    fn state_at(&self, at: u64, selector: bool) -> Vec<State> {
        let mut live: BTreeMap<&str, &State> = BTreeMap::new();
        for w in self.writes.iter().take_while(|w| w.state.rv <= at) {
            if w.deleted {
                live.remove(w.state.name.as_str());
            } else {
                live.insert(&w.state.name, &w.state);
            }
        }
        live.into_values()
            .filter(|s| !selector || s.selected())
            .cloned()
            .collect()
    }

    fn last_revision(&self) -> u64 {
        self.writes.last().map_or(0, |w| w.state.rv)
    }
}

/// Fail with the first difference and a little context, not ten thousand lines.
fn assert_same(what: &str, got: &[Seen], want: &[Seen]) {
    let first = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    if first == got.len() && got.len() == want.len() {
        return;
    }
    let around = |events: &[Seen]| {
        events
            .iter()
            .enumerate()
            .skip(first.saturating_sub(3))
            .take(7)
            .map(|(i, e)| format!("  #{i}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "{what}: the stream differs from the history at event #{first} ({} events seen, {} expected)\nseen:\n{}\nexpected:\n{}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concatenated_watches_equal_the_history_through_rewatches_a_410_and_a_relist() {
    let tmp = tempfile::tempdir().unwrap();
    // Test-sized history: compaction checks every 5 s and keeps at least 1,000 revisions, so
    // only a watcher that stops for a while falls out of it.
    let server = Server::start(
        tmp.path().join("data"),
        &[
            "--ephemeral",
            "--history-window",
            "1s",
            "--history-min-revisions",
            "1000",
        ],
    )
    .unwrap();
    if let Err(e) = run(&server).await {
        panic!("{e:?}");
    }
}

async fn run(server: &Server) -> Result<()> {
    let api = Api::new(server)?;
    let (status, namespace) = api
        .send(
            "POST",
            &format!("{}/api/v1/namespaces", api.url),
            Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})),
        )
        .await?;
    ensure!(
        status == 201,
        "creating the namespace: {status} {namespace}"
    );
    let start: u64 = namespace["metadata"]["resourceVersion"]
        .as_str()
        .context("namespace resourceVersion")?
        .parse()?;
    let seed: u64 = rand::random();
    eprintln!("watch stress: seed {seed}, watching from {start}");
    // How many watchers have had their 410; the writers hold their last fifth until one has, so
    // the watches after the relists (and the second relist) meet writes in flight.
    let (expired_tx, expired) = tokio::sync::watch::channel(0);
    let expired_tx = Arc::new(expired_tx);

    let watchers = WATCHERS
        .into_iter()
        .enumerate()
        .map(|(i, (selector, expire))| {
            let watcher = Watcher {
                api: Api::new(server)?,
                selector,
                expire,
                expired: expired_tx.clone(),
                rng: StdRng::seed_from_u64(seed.wrapping_add(100 + i as u64)),
            };
            Ok(tokio::spawn(watcher.run(start)))
        })
        .collect::<Result<Vec<_>>>()?;

    let started = Instant::now();
    let writers = (0..WRITERS)
        .map(|w| {
            let api = Api::new(server)?;
            let rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64));
            Ok(tokio::spawn(write(api, w, rng, expired.clone())))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(writer.await??);
    }
    eprintln!(
        "watch stress: {} writes in {:.1?}",
        writes.len(),
        started.elapsed()
    );
    let (status, end) = api
        .send(
            "POST",
            &api.collection(""),
            Some(configmap(SENTINEL, "a", json!({"end": "true"}))),
        )
        .await?;
    ensure!(status == 201, "creating the sentinel: {status} {end}");
    writes.push(Write {
        deleted: false,
        state: State::of(&end)?,
    });
    let history = History::new(writes)?;
    let count = |events: &[Seen], kind: &str| events.iter().filter(|e| e.kind == kind).count();
    let (all, selected) = (history.events(start, false), history.events(start, true));
    eprintln!(
        "watch stress: history of {} events ({} creates, {} deletes); {} through {SELECTOR} ({} ADDED, {} DELETED)",
        all.len(),
        count(&all, "ADDED"),
        count(&all, "DELETED"),
        selected.len(),
        count(&selected, "ADDED"),
        count(&selected, "DELETED"),
    );
    // The selector's matches must really change: more objects enter and leave it than are
    // created and deleted.
    ensure!(
        count(&selected, "ADDED") > count(&all, "ADDED") / 2 + 100
            && count(&selected, "DELETED") > count(&all, "DELETED") / 2 + 100,
        "the writers hardly moved objects in and out of {SELECTOR}"
    );

    // The store agrees with the history its writers were told.
    let (status, list) = api.send("GET", &api.collection(""), None).await?;
    ensure!(status == 200, "final list: {status} {list}");
    let listed = items(&list)?;
    let at: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list resourceVersion")?
        .parse()?;
    ensure!(
        at >= history.last_revision(),
        "the final list at {at} is older than the last write {}",
        history.last_revision()
    );
    ensure!(
        listed == history.state_at(at, false),
        "the final list differs from the history's final state"
    );

    for (watcher, (selector, expire)) in watchers.into_iter().zip(WATCHERS) {
        let seen = watcher.await??;
        let selected = selector.is_some();
        let name = format!(
            "watch{}{}",
            selector.map_or(String::new(), |s| format!(" with labelSelector={s}")),
            if expire { " through a 410" } else { "" }
        );
        let want = history.events(start, selected);
        eprintln!(
            "{name}: {} events over {} watches",
            seen.events.len(),
            seen.watches
        );
        ensure!(
            seen.watches > seen.events.len() / 70,
            "{name}: {} events in only {} watches",
            seen.events.len(),
            seen.watches
        );
        ensure!(
            seen.relist.is_some() == expire,
            "{name}: relisted {:?}",
            seen.relist.as_ref().map(|r| r.1)
        );
        match seen.relist {
            None => assert_same(&name, &seen.events, &want),
            Some((expired_at, relisted_at, relisted)) => {
                // Before the 410: everything up to where it stopped. The relist: the state at
                // its revision. After: everything since.
                let before: Vec<Seen> = want
                    .iter()
                    .filter(|e| e.state.rv <= expired_at)
                    .cloned()
                    .collect();
                let after = history.events(relisted_at, selected);
                let (got_before, got_after) = seen.events.split_at(seen.split);
                assert_same(&format!("{name}, before the 410"), got_before, &before);
                ensure!(
                    relisted == history.state_at(relisted_at, selected),
                    "{name}: the relist at {relisted_at} differs from the history's state there"
                );
                assert_same(&format!("{name}, after the relist"), got_after, &after);
                // The combined view converges to the store's final state.
                let mut view: BTreeMap<String, State> =
                    relisted.into_iter().map(|s| (s.name.clone(), s)).collect();
                for e in got_after {
                    match e.kind.as_str() {
                        "DELETED" => drop(view.remove(&e.state.name)),
                        _ => drop(view.insert(e.state.name.clone(), e.state.clone())),
                    }
                }
                let view: Vec<State> = view.into_values().collect();
                ensure!(
                    view == history.state_at(at, selected),
                    "{name}: the relisted and watched view does not converge to the final state"
                );
                eprintln!(
                    "{name}: 410 for {expired_at}, relisted at {relisted_at}, {} events",
                    seen.events.len()
                );
            }
        }
    }
    Ok(())
}

fn configmap(name: &str, sel: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"sel": sel}},
        "data": data,
    })
}

/// The states of a list's items, sorted by name (the API lists in key order), ours only.
fn items(list: &Value) -> Result<Vec<State>> {
    list["items"]
        .as_array()
        .context("no items")?
        .iter()
        .map(State::of)
        .filter(|s| s.as_ref().map_or(true, |s| ours(&s.name)))
        .collect()
}

/// The objects this test writes (a controller may add its own to any namespace).
fn ours(name: &str) -> bool {
    name.starts_with("cm-") || name == SENTINEL
}

/// One writer: `WRITES / WRITERS` acknowledged writes of random kinds over all the keys, each
/// recorded from its response. Races with the other writers (a create of a key that exists,
/// an update of one that is gone) are answered 409 or 404 and are not writes. The last fifth
/// waits until an expiring watcher has had its 410.
async fn write(
    api: Api,
    writer: usize,
    mut rng: StdRng,
    mut expired: tokio::sync::watch::Receiver<usize>,
) -> Result<Vec<Write>> {
    let mut writes = Vec::with_capacity(WRITES / WRITERS);
    let mut attempt = 0;
    while writes.len() < WRITES / WRITERS {
        if writes.len() == WRITES / WRITERS * 4 / 5 {
            tokio::time::timeout(Duration::from_secs(60), expired.wait_for(|n| *n >= 1))
                .await
                .context("no expiring watcher got its 410 (or every one failed)")??;
        }
        attempt += 1;
        ensure!(
            attempt < 10 * WRITES,
            "writer {writer} made no progress: {} writes",
            writes.len()
        );
        let name = format!("cm-{:02}", rng.random_range(0..KEYS));
        let sel = if rng.random_bool(0.5) { "a" } else { "b" };
        // Unique to this attempt, so no write leaves an object as it was (which upstream
        // answers with the unchanged object and no new revision).
        let stamp = format!("{writer}-{attempt}");
        let data = json!({"writer": writer.to_string(), "attempt": stamp});
        let url = api.collection(&name);
        let (expect, deleted, status, body) = match rng.random_range(0..10) {
            // Replace, unconditionally.
            0..=2 => {
                let (status, body) = api
                    .send("PUT", &url, Some(configmap(&name, sel, data)))
                    .await?;
                (200, false, status, body)
            }
            // Merge-patch the label and one data key.
            3..=5 => {
                let patch =
                    json!({"metadata": {"labels": {"sel": sel}}, "data": {"attempt": stamp}});
                let (status, body) = api.patch(&url, patch).await?;
                (200, false, status, body)
            }
            6..=7 => {
                // DELETE answers the deleted object at the delete's revision.
                let (status, body) = api.send("DELETE", &url, None).await?;
                (200, true, status, body)
            }
            _ => {
                let (status, body) = api
                    .send(
                        "POST",
                        &api.collection(""),
                        Some(configmap(&name, sel, data)),
                    )
                    .await?;
                (201, false, status, body)
            }
        };
        match status {
            s if s == expect => writes.push(Write {
                deleted,
                state: State::of(&body)
                    .with_context(|| format!("writer {writer}: response {body}"))?,
            }),
            404 | 409 => continue,
            other => bail!("writer {writer}: {name} answered {other}: {body}"),
        }
    }
    Ok(writes)
}

/// What one watcher saw.
struct Watched {
    events: Vec<Seen>,
    /// Where the events after the relist start.
    split: usize,
    /// How many watch requests it took.
    watches: usize,
    /// With a 410: the revision it was refused, the relist's revision and its items.
    relist: Option<(u64, u64, Vec<State>)>,
}

struct Watcher {
    api: Api,
    selector: Option<&'static str>,
    /// Stop for a while once, come back to a 410, relist and carry on.
    expire: bool,
    /// Counts the 410s.
    expired: Arc<tokio::sync::watch::Sender<usize>>,
    rng: StdRng,
}

impl Watcher {
    fn url(&self, rv: u64) -> String {
        let mut url = format!(
            "{}?watch=true&resourceVersion={rv}",
            self.api.collection("")
        );
        if let Some(s) = self.selector {
            url.push_str(&format!("&labelSelector={}", s.replace('=', "%3D")));
        }
        url
    }

    async fn run(mut self, start: u64) -> Result<Watched> {
        let mut rv = start;
        let mut events = Vec::new();
        let mut relist = None;
        let mut split = 0;
        let mut watches = 0;
        // The watchers that expire stop after about a tenth of the writes.
        let stop_at = start + (WRITES / 10) as u64;
        loop {
            let budget = self.rng.random_range(40..=60);
            let mut stream = self.api.watch(&self.url(rv)).await?;
            watches += 1;
            let mut taken = 0;
            while taken < budget {
                let Some(event) = stream
                    .next()
                    .await
                    .with_context(|| format!("watch from {rv}: {} events so far", events.len()))?
                else {
                    // The server ended the stream; resume from where it stopped.
                    break;
                };
                let kind = event["type"].as_str().unwrap_or_default().to_string();
                if kind == "ERROR" {
                    bail!("watch from {rv} sent an ERROR: {event}");
                }
                let state = State::of(&event["object"])?;
                rv = state.rv;
                taken += 1;
                if !ours(&state.name) {
                    continue;
                }
                let done = state.name == SENTINEL;
                events.push(Seen { kind, state });
                if done {
                    return Ok(Watched {
                        events,
                        split,
                        watches,
                        relist,
                    });
                }
            }
            drop(stream);
            if self.expire && relist.is_none() && rv >= stop_at {
                let (listed_at, items) = self.expire_and_relist(rv).await?;
                // Relisted after the last write: nothing is left to watch.
                let done = items.iter().any(|s| s.name == SENTINEL);
                relist = Some((rv, listed_at, items));
                split = events.len();
                rv = listed_at;
                if done {
                    return Ok(Watched {
                        events,
                        split,
                        watches,
                        relist,
                    });
                }
            }
        }
    }

    /// Wait until compaction has passed `rv`, check that a watch from it gets an ERROR event
    /// with a 410 Expired Status inside a 200, then relist: the revision to watch from and
    /// the items listed.
    async fn expire_and_relist(&self, rv: u64) -> Result<(u64, Vec<State>)> {
        let exact = format!(
            "{}?resourceVersion={rv}&resourceVersionMatch=Exact&limit=1",
            self.api.collection("")
        );
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let (status, body) = self.api.send("GET", &exact, None).await?;
            match status {
                410 => break,
                200 => ensure!(
                    Instant::now() < deadline,
                    "revision {rv} was never compacted (history window 1s, 1,000 revisions)"
                ),
                other => bail!("list at exactly {rv}: {other} {body}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut stream = self.api.watch(&self.url(rv)).await?;
        let event = stream
            .next()
            .await?
            .context("the watch from a compacted revision ended without an event")?;
        ensure!(
            event["type"] == "ERROR"
                && event["object"]["kind"] == "Status"
                && event["object"]["code"] == 410
                && event["object"]["reason"] == "Expired",
            "a watch from compacted {rv} sent {event}"
        );
        let message = event["object"]["message"].as_str().unwrap_or_default();
        ensure!(
            message.starts_with(&format!("too old resource version: {rv} (")),
            "410 message: {message}"
        );
        ensure!(
            stream.next().await?.is_none(),
            "the watch went on after its 410"
        );
        self.expired.send_modify(|n| *n += 1);
        let mut list = self.api.collection("");
        if let Some(s) = self.selector {
            list.push_str(&format!("?labelSelector={}", s.replace('=', "%3D")));
        }
        let (status, body) = self.api.send("GET", &list, None).await?;
        ensure!(status == 200, "relist: {status} {body}");
        let at = body["metadata"]["resourceVersion"]
            .as_str()
            .context("relist resourceVersion")?
            .parse()?;
        Ok((at, items(&body)?))
    }
}

/// An HTTP/2 connection to the server as the admin.
struct Api {
    client: HttpsClient,
    url: String,
}

impl Api {
    fn new(server: &Server) -> Result<Api> {
        let url = server.url();
        ensure!(!url.is_empty(), "no server in the kubeconfig");
        Ok(Api {
            client: client_for(server)?,
            url,
        })
    }

    fn collection(&self, name: &str) -> String {
        let base = format!("{}/api/v1/namespaces/{NAMESPACE}/configmaps", self.url);
        if name.is_empty() {
            base
        } else {
            format!("{base}/{name}")
        }
    }

    async fn send(&self, method: &str, url: &str, body: Option<Value>) -> Result<(u16, Value)> {
        self.request(method, url, "application/json", body).await
    }

    async fn patch(&self, url: &str, body: Value) -> Result<(u16, Value)> {
        self.request("PATCH", url, "application/merge-patch+json", Some(body))
            .await
    }

    async fn request(
        &self,
        method: &str,
        url: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))?;
        let resp = tokio::time::timeout(STEP, self.client.request(req))
            .await
            .with_context(|| format!("{method} {url}: no answer within {STEP:?}"))??;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{method} {url}: {status} {}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        Ok((status, value))
    }

    async fn watch(&self, url: &str) -> Result<Events> {
        let req = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
        let resp = tokio::time::timeout(STEP, self.client.request(req))
            .await
            .with_context(|| format!("GET {url}: no answer within {STEP:?}"))??;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.into_body().collect().await?.to_bytes();
            bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(Events {
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

/// A watch response as raw newline-delimited JSON events.
struct Events {
    body: Incoming,
    buf: Vec<u8>,
}

impl Events {
    /// The next event, or `None` when the server ended the stream.
    async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(Some(serde_json::from_slice(&line).with_context(|| {
                    format!("watch line {:?}", String::from_utf8_lossy(&line))
                })?));
            }
            let frame = tokio::time::timeout(STEP, self.body.frame())
                .await
                .with_context(|| format!("no watch event within {STEP:?}"))?;
            match frame {
                None => {
                    ensure!(
                        self.buf.is_empty(),
                        "the watch ended inside an event: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return Ok(None);
                }
                Some(frame) => {
                    if let Some(data) = frame?.data_ref() {
                        self.buf.extend_from_slice(data);
                    }
                }
            }
        }
    }
}

/// An HTTP/2 client presenting the admin certificate and trusting the cluster CA, both from
/// the kubeconfig the server wrote (as `benches/api.rs` builds it). Nagle is off.
fn client_for(server: &Server) -> Result<HttpsClient> {
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
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(https))
}
