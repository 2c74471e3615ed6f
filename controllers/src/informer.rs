//! Shared informers: one list+watch per resource for the whole process, feeding an in-memory cache indexed by namespace and the event handlers that enqueue keys; the watch resumes from the last resourceVersion when it ends and lists again after 410 Gone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Client, ListParams, Resource, WatchEvent, WatchParams, WatchStream};

/// Page size of the lists that fill a cache.
const LIST_PAGE: u32 = 500;
/// Watches last a random 5 to 10 minutes (client-go's `minWatchTimeout` doubled at random), so
/// that reconnections of many informers spread out.
const WATCH_TIMEOUT_MIN: u32 = 300;
/// Retry delays after a failed list or watch (client-go's reflector: 800 ms doubling to 30 s).
const BACKOFF_BASE: Duration = Duration::from_millis(800);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A watch that ends sooner than this without delivering anything counts as a failure.
const MIN_WATCH: Duration = Duration::from_millis(100);

/// `namespace/name`, or `name` for cluster-scoped objects (client-go's
/// `MetaNamespaceKeyFunc`).
pub fn key_of(object: &Value) -> Option<String> {
    let meta = object.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => Some(format!("{ns}/{name}")),
        _ => Some(name.to_string()),
    }
}

/// Split a key into namespace (empty for cluster-scoped) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

fn resource_version(object: &Value) -> Option<&str> {
    object.pointer("/metadata/resourceVersion")?.as_str()
}

/// A change the cache went through, as handlers see it (after the cache holds it).
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Added(&'a Arc<Value>),
    Updated {
        old: &'a Arc<Value>,
        new: &'a Arc<Value>,
    },
    /// The object's last known state.
    Deleted(&'a Arc<Value>),
}

type Handler = Box<dyn Fn(Event<'_>) + Send + Sync>;

/// The objects of one resource, by key, with a namespace index.
#[derive(Default)]
struct Cache {
    objects: HashMap<String, Arc<Value>>,
    by_namespace: HashMap<String, BTreeSet<String>>,
}

/// A change to apply to the cache and announce to handlers.
enum Change {
    Upsert(String, Arc<Value>),
    Delete(String, Option<Arc<Value>>),
}

impl Cache {
    fn insert(&mut self, key: String, object: Arc<Value>) -> Option<Arc<Value>> {
        let (ns, _) = split_key(&key);
        self.by_namespace
            .entry(ns.to_string())
            .or_default()
            .insert(key.clone());
        self.objects.insert(key, object)
    }

    fn remove(&mut self, key: &str) -> Option<Arc<Value>> {
        let removed = self.objects.remove(key)?;
        let (ns, _) = split_key(key);
        if let Some(keys) = self.by_namespace.get_mut(ns) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_namespace.remove(ns);
            }
        }
        Some(removed)
    }

    /// Replace the whole content with a fresh list, returning the changes as events would
    /// describe them: new keys added, changed ones (by resourceVersion) updated, missing ones
    /// deleted.
    fn replace(&mut self, items: Vec<Value>) -> Vec<(Option<Arc<Value>>, Change)> {
        let mut fresh = Cache::default();
        for item in items {
            if let Some(key) = key_of(&item) {
                fresh.insert(key, Arc::new(item));
            }
        }
        let mut changes = Vec::new();
        for (key, new) in &fresh.objects {
            match self.objects.get(key) {
                Some(old) if resource_version(old) == resource_version(new) => {}
                old => changes.push((old.cloned(), Change::Upsert(key.clone(), new.clone()))),
            }
        }
        for (key, old) in &self.objects {
            if !fresh.objects.contains_key(key) {
                changes.push((Some(old.clone()), Change::Delete(key.clone(), None)));
            }
        }
        *self = fresh;
        changes
    }
}

struct Shared {
    resource: Resource,
    cache: RwLock<Cache>,
    handlers: RwLock<Vec<Handler>>,
    synced: tokio::sync::watch::Sender<bool>,
    /// Full lists done so far (a resumed watch does not list).
    lists: std::sync::atomic::AtomicU64,
}

/// A cache of one resource kept current by a list+watch, and the handlers it notifies. Cheap
/// to clone; clones share it.
#[derive(Clone)]
pub struct Informer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Informer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("resource", &self.shared.resource)
            .finish_non_exhaustive()
    }
}

impl Informer {
    fn new(resource: Resource) -> Informer {
        Informer {
            shared: Arc::new(Shared {
                resource,
                cache: RwLock::new(Cache::default()),
                handlers: RwLock::new(Vec::new()),
                synced: tokio::sync::watch::Sender::new(false),
                lists: Default::default(),
            }),
        }
    }

    pub fn resource(&self) -> &Resource {
        &self.shared.resource
    }

    /// The cached object with this key (`namespace/name` or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.shared.cache.read().objects.get(key).cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<Value>> {
        self.shared.cache.read().objects.values().cloned().collect()
    }

    /// The cached objects in `namespace`, by name.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        let cache = self.shared.cache.read();
        cache
            .by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|key| cache.objects.get(key).cloned())
            .collect()
    }

    /// Whether the first full list has reached the cache (and its handlers).
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Wait until `has_synced`; false if `shutdown` came first.
    pub async fn wait_synced(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.shared.synced.subscribe();
        tokio::select! {
            r = rx.wait_for(|synced| *synced) => r.is_ok(),
            _ = shutdown.cancelled() => false,
        }
    }

    /// How many full lists this informer has done.
    pub fn lists(&self) -> u64 {
        self.shared.lists.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Call `handler` for every change from now on, after first announcing every cached
    /// object as `Added`. Handlers run on the informer's task and must be quick (enqueue a
    /// key); they must not add handlers themselves.
    pub fn add_handler(&self, handler: impl Fn(Event<'_>) + Send + Sync + 'static) {
        let mut handlers = self.shared.handlers.write();
        for object in self.list() {
            handler(Event::Added(&object));
        }
        handlers.push(Box::new(handler));
    }

    /// Apply changes to the cache, then tell the handlers. Handlers are held for the whole
    /// step, so one added meanwhile sees either the cache before (and then the events) or
    /// after.
    fn apply(&self, changes: Vec<(Option<Arc<Value>>, Change)>) {
        let handlers = self.shared.handlers.read();
        for (known, change) in changes {
            match change {
                Change::Upsert(key, new) => {
                    let old = self.shared.cache.write().insert(key, new.clone()).or(known);
                    let event = match &old {
                        Some(old) => Event::Updated { old, new: &new },
                        None => Event::Added(&new),
                    };
                    handlers.iter().for_each(|h| h(event));
                }
                Change::Delete(key, last) => {
                    let removed = self.shared.cache.write().remove(&key);
                    if let Some(last) = last.or(removed).or(known) {
                        handlers.iter().for_each(|h| h(Event::Deleted(&last)));
                    }
                }
            }
        }
    }

    /// Swap a fresh list in at once, then announce the differences.
    fn replace(&self, items: Vec<Value>) {
        let handlers = self.shared.handlers.read();
        let changes = self.shared.cache.write().replace(items);
        for (old, change) in &changes {
            match (old, change) {
                (None, Change::Upsert(_, new)) => {
                    handlers.iter().for_each(|h| h(Event::Added(new)))
                }
                (Some(old), Change::Upsert(_, new)) => {
                    handlers.iter().for_each(|h| h(Event::Updated { old, new }))
                }
                (Some(old), Change::Delete(..)) => {
                    handlers.iter().for_each(|h| h(Event::Deleted(old)))
                }
                (None, Change::Delete(..)) => {}
            }
        }
        drop(handlers);
        self.shared
            .lists
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.synced.send_replace(true);
    }
}

/// Where the reflector is: the watcher state machine.
enum State {
    /// Nothing listed, or the version we had is gone: list everything.
    Empty,
    /// The cache is current at this version: open a watch from it.
    Listed { resource_version: String },
    /// A watch is open; its events advance the version.
    Watching {
        resource_version: String,
        stream: WatchStream,
        /// When the watch opened and whether it has delivered anything: one that ends at once
        /// and empty backs off, so a server that closes watches cannot make us spin.
        opened: Instant,
        delivered: bool,
    },
}

/// What one watch event means for the reflector.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Keep watching.
    Continue,
    /// The version is gone (410): list again.
    Relist,
    /// The server reported another error: back off, then watch again from the last version.
    Rewatch(String),
}

/// Keeps one informer's cache current.
struct Reflector {
    informer: Informer,
    client: Client,
    /// List and watch `PartialObjectMetadata` (only `metadata`, without `managedFields`).
    metadata_only: bool,
    /// Server-side watch timeout, in seconds (a random one of 5–10 minutes by default).
    watch_timeout: Option<u32>,
    failures: u32,
}

impl Reflector {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut state = State::Empty;
        loop {
            state = tokio::select! {
                next = self.step(state) => next,
                _ = shutdown.cancelled() => return,
            };
        }
    }

    /// The one transition function.
    async fn step(&mut self, state: State) -> State {
        let r = self.informer.resource().clone();
        match state {
            State::Empty => {
                let params = ListParams {
                    limit: Some(LIST_PAGE),
                    ..Default::default()
                };
                let listed = if self.metadata_only {
                    self.client.list_all_metadata(&r, None, &params).await
                } else {
                    self.client.list_all(&r, None, &params).await
                };
                match listed {
                    Ok((mut items, resource_version)) => {
                        if self.metadata_only {
                            items.iter_mut().for_each(trim_managed_fields);
                        }
                        tracing::debug!(resource = %r, objects = items.len(), resource_version, "listed");
                        self.informer.replace(items);
                        self.failures = 0;
                        State::Listed { resource_version }
                    }
                    Err(e) => {
                        self.back_off("list", &e.to_string()).await;
                        State::Empty
                    }
                }
            }
            State::Listed { resource_version } => {
                let params = WatchParams {
                    resource_version: Some(resource_version.clone()),
                    allow_bookmarks: true,
                    timeout_seconds: Some(self.watch_timeout.unwrap_or_else(|| {
                        rand::rng().random_range(WATCH_TIMEOUT_MIN..2 * WATCH_TIMEOUT_MIN)
                    })),
                    ..Default::default()
                };
                let watch = if self.metadata_only {
                    self.client.watch_metadata(&r, None, &params).await
                } else {
                    self.client.watch(&r, None, &params).await
                };
                match watch {
                    Ok(stream) => State::Watching {
                        resource_version,
                        stream,
                        opened: Instant::now(),
                        delivered: false,
                    },
                    Err(e) if e.is_gone() => {
                        tracing::info!(resource = %r, resource_version, "watch version gone; listing again");
                        State::Empty
                    }
                    Err(e) => {
                        self.back_off("watch", &e.to_string()).await;
                        State::Listed { resource_version }
                    }
                }
            }
            State::Watching {
                mut resource_version,
                mut stream,
                opened,
                delivered,
            } => match stream.next().await {
                Some(Ok(mut event)) => {
                    if self.metadata_only
                        && let WatchEvent::Added(o)
                        | WatchEvent::Modified(o)
                        | WatchEvent::Deleted(o) = &mut event
                    {
                        trim_managed_fields(o);
                    }
                    match handle(&self.informer, event, &mut resource_version) {
                        Next::Continue => {
                            self.failures = 0;
                            State::Watching {
                                resource_version,
                                stream,
                                opened,
                                delivered: true,
                            }
                        }
                        Next::Relist => {
                            tracing::info!(resource = %r, resource_version, "watch version gone; listing again");
                            State::Empty
                        }
                        Next::Rewatch(message) => {
                            self.back_off("watch", &message).await;
                            State::Listed { resource_version }
                        }
                    }
                }
                Some(Err(e)) => {
                    self.back_off("watch", &e.to_string()).await;
                    State::Listed { resource_version }
                }
                None => {
                    if !delivered && opened.elapsed() < MIN_WATCH {
                        self.back_off("watch", "ended at once without an event")
                            .await;
                    } else {
                        self.failures = 0;
                    }
                    tracing::trace!(resource = %r, resource_version, "watch ended; resuming");
                    State::Listed { resource_version }
                }
            },
        }
    }

    async fn back_off(&mut self, what: &str, error: &str) {
        let delay = BACKOFF_BASE
            .checked_mul(2u32.saturating_pow(self.failures.min(16)))
            .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX));
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(
            resource = %self.informer.resource(),
            error,
            retry_in_ms = delay.as_millis() as u64,
            "{what} failed"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Apply one watch event; advance `resource_version` past it.
fn handle(informer: &Informer, event: WatchEvent, resource_version: &mut String) -> Next {
    let mut advance = |object: &Value| {
        if let Some(rv) = resource_version_of(object) {
            *resource_version = rv.to_string();
        }
    };
    match event {
        WatchEvent::Added(object) | WatchEvent::Modified(object) => {
            advance(&object);
            if let Some(key) = key_of(&object) {
                informer.apply(vec![(None, Change::Upsert(key, Arc::new(object)))]);
            }
            Next::Continue
        }
        WatchEvent::Deleted(object) => {
            advance(&object);
            if let Some(key) = key_of(&object) {
                informer.apply(vec![(None, Change::Delete(key, Some(Arc::new(object))))]);
            }
            Next::Continue
        }
        WatchEvent::Bookmark {
            resource_version: rv,
            ..
        } => {
            if !rv.is_empty() {
                *resource_version = rv;
            }
            Next::Continue
        }
        WatchEvent::Error(status) if status.code == 410 => Next::Relist,
        WatchEvent::Error(status) => Next::Rewatch(format!(
            "{} ({} {})",
            status.message, status.code, status.reason
        )),
    }
}

/// Drop `metadata.managedFields`, which metadata-only caches never need (kube-controller-manager
/// trims them from its informers too).
fn trim_managed_fields(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

fn resource_version_of(object: &Value) -> Option<&str> {
    resource_version(object).filter(|rv| !rv.is_empty())
}

/// The process's informers, one per resource, started on first request.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    shutdown: CancellationToken,
    informers: Arc<Mutex<HashMap<Resource, Informer>>>,
    /// Metadata-only informers, each with the token that stops it alone.
    metadata: Arc<Mutex<HashMap<Resource, (Informer, CancellationToken)>>>,
    tasks: TaskTracker,
    watch_timeout: Option<u32>,
}

impl std::fmt::Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers").finish_non_exhaustive()
    }
}

impl Informers {
    pub fn new(client: Client, shutdown: CancellationToken) -> Informers {
        Informers {
            client,
            shutdown,
            informers: Default::default(),
            metadata: Default::default(),
            tasks: TaskTracker::new(),
            watch_timeout: None,
        }
    }

    /// End every watch after `seconds` (tests of resumption).
    pub fn with_watch_timeout(mut self, seconds: u32) -> Informers {
        self.watch_timeout = Some(seconds);
        self
    }

    /// The informer of `resource`, started (list, then watch) if it was not yet.
    pub fn informer(&self, resource: &Resource) -> Informer {
        let mut informers = self.informers.lock();
        if let Some(informer) = informers.get(resource) {
            return informer.clone();
        }
        let informer = Informer::new(resource.clone());
        informers.insert(resource.clone(), informer.clone());
        let reflector = Reflector {
            informer: informer.clone(),
            client: self.client.clone(),
            metadata_only: false,
            watch_timeout: self.watch_timeout,
            failures: 0,
        };
        self.tasks.spawn(reflector.run(self.shutdown.clone()));
        informer
    }

    /// An informer of `resource` for clients that read only metadata (the garbage
    /// collector): the full informer if one is running, else one that lists and watches
    /// `PartialObjectMetadata` (client-go's metadata informer), started if it was not yet.
    /// Metadata-only informers are not among those `wait_synced` waits for, and can be
    /// stopped (`stop_metadata_informer`) when their resource is no longer served.
    pub fn metadata_informer(&self, resource: &Resource) -> Informer {
        if let Some(full) = self.informers.lock().get(resource) {
            return full.clone();
        }
        let mut metadata = self.metadata.lock();
        if let Some((informer, _)) = metadata.get(resource) {
            return informer.clone();
        }
        let informer = Informer::new(resource.clone());
        let stop = self.shutdown.child_token();
        metadata.insert(resource.clone(), (informer.clone(), stop.clone()));
        let reflector = Reflector {
            informer: informer.clone(),
            client: self.client.clone(),
            metadata_only: true,
            watch_timeout: self.watch_timeout,
            failures: 0,
        };
        self.tasks.spawn(reflector.run(stop));
        informer
    }

    /// Whether a metadata-only informer of `resource` runs.
    pub fn has_metadata_informer(&self, resource: &Resource) -> bool {
        self.metadata.lock().contains_key(resource)
    }

    /// Stop the metadata-only informer of `resource`, if one runs (a full one is left alone).
    pub fn stop_metadata_informer(&self, resource: &Resource) {
        if let Some((_, stop)) = self.metadata.lock().remove(resource) {
            stop.cancel();
        }
    }

    /// Wait until every informer started so far has synced; false on shutdown.
    pub async fn wait_synced(&self) -> bool {
        let all: Vec<Informer> = self.informers.lock().values().cloned().collect();
        for informer in all {
            if !informer.wait_synced(&self.shutdown).await {
                return false;
            }
        }
        true
    }

    /// Wait for every reflector to stop (after shutdown).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(ns: &str, name: &str, rv: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "resourceVersion": rv}})
    }

    /// Events as `kind key@rv` lines.
    fn recorder(informer: &Informer) -> Arc<Mutex<Vec<String>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        informer.add_handler(move |event| {
            let describe = |o: &Value| {
                format!(
                    "{}@{}",
                    key_of(o).unwrap(),
                    resource_version(o).unwrap_or("")
                )
            };
            let line = match event {
                Event::Added(o) => format!("added {}", describe(o)),
                Event::Updated { old, new } => {
                    format!("updated {} -> {}", describe(old), describe(new))
                }
                Event::Deleted(o) => format!("deleted {}", describe(o)),
            };
            sink.lock().push(line);
        });
        seen
    }

    #[test]
    fn keys() {
        assert_eq!(key_of(&object("a", "b", "1")).unwrap(), "a/b");
        assert_eq!(key_of(&json!({"metadata": {"name": "n"}})).unwrap(), "n");
        assert_eq!(split_key("a/b"), ("a", "b"));
        assert_eq!(split_key("n"), ("", "n"));
    }

    #[test]
    fn relist_replaces_the_cache_and_announces_the_difference() {
        let informer = Informer::new(Resource::core("configmaps", true));
        let seen = recorder(&informer);
        informer.replace(vec![
            object("a", "x", "1"),
            object("a", "y", "2"),
            object("b", "z", "3"),
        ]);
        assert!(informer.has_synced());
        let mut names: Vec<String> = informer
            .list_namespace("a")
            .iter()
            .map(|o| key_of(o).unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a/x", "a/y"]);
        assert_eq!(informer.list().len(), 3);

        seen.lock().clear();
        // x unchanged, y changed, z gone, w new.
        informer.replace(vec![
            object("a", "x", "1"),
            object("a", "y", "5"),
            object("c", "w", "6"),
        ]);
        let mut events = seen.lock().clone();
        events.sort();
        assert_eq!(
            events,
            ["added c/w@6", "deleted b/z@3", "updated a/y@2 -> a/y@5"]
        );
        assert!(informer.list_namespace("b").is_empty());
        assert!(!informer.shared.cache.read().by_namespace.contains_key("b"));
        assert_eq!(
            informer.get("c/w").unwrap()["metadata"]["resourceVersion"],
            "6"
        );
    }

    #[test]
    fn late_handlers_see_the_cache_first() {
        let informer = Informer::new(Resource::core("configmaps", true));
        informer.replace(vec![object("a", "x", "1")]);
        let seen = recorder(&informer);
        assert_eq!(*seen.lock(), ["added a/x@1"]);
    }

    #[test]
    fn watch_events_update_the_cache_and_the_version() {
        let informer = Informer::new(Resource::core("configmaps", true));
        let seen = recorder(&informer);
        let mut rv = "1".to_string();
        let steps = [
            (
                WatchEvent::Added(object("a", "x", "2")),
                Next::Continue,
                "2",
            ),
            (
                WatchEvent::Modified(object("a", "x", "3")),
                Next::Continue,
                "3",
            ),
            (
                WatchEvent::Bookmark {
                    resource_version: "7".into(),
                    initial_events_end: false,
                },
                Next::Continue,
                "7",
            ),
            (
                WatchEvent::Deleted(object("a", "x", "8")),
                Next::Continue,
                "8",
            ),
        ];
        for (event, next, expect_rv) in steps {
            assert_eq!(handle(&informer, event, &mut rv), next);
            assert_eq!(rv, expect_rv);
        }
        assert_eq!(
            *seen.lock(),
            ["added a/x@2", "updated a/x@2 -> a/x@3", "deleted a/x@8"]
        );
        assert!(informer.get("a/x").is_none());
        let gone = crate::client::Status {
            code: 410,
            reason: "Expired".into(),
            message: "too old resource version: 8 (20)".into(),
            details: None,
        };
        assert_eq!(
            handle(&informer, WatchEvent::Error(gone), &mut rv),
            Next::Relist
        );
        let other = crate::client::Status {
            code: 500,
            reason: "InternalError".into(),
            message: "boom".into(),
            details: None,
        };
        assert_eq!(
            handle(&informer, WatchEvent::Error(other), &mut rv),
            Next::Rewatch("boom (500 InternalError)".into())
        );
        assert_eq!(rv, "8");
    }
}
