//! The watch cache: per resource, the current objects held in memory and kept current by one store watch, so lists need no store read and decode each object version once.
//!
//! Consistency is upstream's: a list without a resourceVersion is consistent (the cache first
//! catches up to the store's current revision, confirmed by a progress notification, or the
//! caller reads the store); `resourceVersion=0` takes the cache as it is; a resourceVersion
//! the cache has not reached is waited for up to [`FRESHNESS_WAIT`], then answered 504.
//! Historical reads (`resourceVersionMatch=Exact`, continue pages) go to the store, which keeps
//! history.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use k1s_store::{
    Error as StoreError, EventKind, RangeRequest, Revision, Store, WatchMessage, WatchStart,
};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::status::ApiError;

/// How long a read waits for the cache to reach a resourceVersion before answering 504.
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// How fresh a cached list must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Whatever the cache holds (`resourceVersion=0`).
    Any,
    /// At least the store's current revision (no resourceVersion).
    Consistent,
    /// At least this revision (`resourceVersion=N`, NotOlderThan).
    NotOlderThan(Revision),
}

/// One cached object version: the stored bytes, decoded at most once.
#[derive(Clone, Debug)]
pub struct CachedItem {
    pub key: Bytes,
    pub value: Bytes,
    pub mod_revision: Revision,
    decoded: Arc<OnceLock<Value>>,
}

impl CachedItem {
    fn new(key: Bytes, value: Bytes, mod_revision: Revision) -> Self {
        CachedItem {
            key,
            value,
            mod_revision,
            decoded: Arc::new(OnceLock::new()),
        }
    }

    /// The stored JSON, parsed (without resourceVersion); `Null` if it is not JSON.
    pub fn object(&self) -> &Value {
        self.decoded
            .get_or_init(|| serde_json::from_slice(&self.value).unwrap_or(Value::Null))
    }
}

/// The cached objects under a prefix at one revision, in key order.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: Revision,
    pub items: Vec<CachedItem>,
}

#[derive(Default)]
struct State {
    items: BTreeMap<Bytes, CachedItem>,
}

struct PrefixCache {
    state: RwLock<State>,
    /// The revision the cache has seen everything up to (0 until the first list is in).
    revision: watch::Sender<Revision>,
    /// Ask the feeding watch for a progress notification.
    progress: Notify,
}

/// Every resource's cache, created on first use.
pub struct WatchCache {
    store: Store,
    caches: Mutex<HashMap<String, Arc<PrefixCache>>>,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("prefixes", &self.caches.lock().len())
            .finish()
    }
}

/// 504 `Too large resource version`, as upstream's `NewTooLargeResourceVersionError`.
pub fn too_large(wanted: Revision, current: Revision) -> ApiError {
    ApiError::timeout(format!(
        "Timeout: Too large resource version: {wanted}, current: {current}"
    ))
    .with_details(json!({
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    }))
}

impl WatchCache {
    pub fn new(store: Store) -> Self {
        WatchCache {
            store,
            caches: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self, prefix: &str) -> Arc<PrefixCache> {
        let mut caches = self.caches.lock();
        if let Some(cache) = caches.get(prefix) {
            return cache.clone();
        }
        let cache = Arc::new(PrefixCache {
            state: RwLock::new(State::default()),
            revision: watch::Sender::new(0),
            progress: Notify::new(),
        });
        caches.insert(prefix.to_string(), cache.clone());
        tokio::spawn(feed(
            self.store.clone(),
            Bytes::from(prefix.to_string()),
            cache.clone(),
        ));
        cache
    }

    /// Wait until the store itself has reached `revision` (a write in flight), up to
    /// [`FRESHNESS_WAIT`]; then 504.
    pub async fn wait_for_store(&self, revision: Revision) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
        while self.store.current_revision() < revision {
            if tokio::time::Instant::now() >= deadline {
                return Err(too_large(revision, self.store.current_revision()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The objects whose keys start with `key_prefix`, from the cache of `resource_prefix`.
    /// `None` when a consistent read could not be confirmed in time: read the store instead.
    pub async fn list(
        &self,
        resource_prefix: &str,
        key_prefix: &str,
        freshness: Freshness,
    ) -> Result<Option<Snapshot>, ApiError> {
        let cache = self.cache(resource_prefix);
        let target = match freshness {
            // The first list must be in.
            Freshness::Any => 1,
            Freshness::Consistent => self.store.current_revision().max(1),
            Freshness::NotOlderThan(n) => {
                self.wait_for_store(n).await?;
                n.max(1)
            }
        };
        let mut seen = cache.revision.subscribe();
        if *seen.borrow() < target {
            cache.progress.notify_one();
            let reached =
                tokio::time::timeout(FRESHNESS_WAIT, seen.wait_for(|r| *r >= target)).await;
            if !matches!(reached, Ok(Ok(_))) {
                return match freshness {
                    Freshness::NotOlderThan(n) => Err(too_large(n, *cache.revision.borrow())),
                    _ => Ok(None),
                };
            }
        }
        let state = cache.state.read();
        let revision = *cache.revision.borrow();
        let start = Bytes::from(key_prefix.to_string());
        let items = state
            .items
            .range(start..)
            .take_while(|(k, _)| k.starts_with(key_prefix.as_bytes()))
            .map(|(_, item)| item.clone())
            .collect();
        Ok(Some(Snapshot { revision, items }))
    }
}

/// Keep one prefix's cache current: list, then watch from the list's revision; start over
/// after the watch ends (lagged, compacted, or the store restarting its hub).
async fn feed(store: Store, prefix: Bytes, cache: Arc<PrefixCache>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match feed_once(&store, &prefix, &cache).await {
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::debug!(prefix = %String::from_utf8_lossy(&prefix), error = %e, "watch cache restarts its watch");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Ok(()) => return,
        }
    }
}

async fn feed_once(store: &Store, prefix: &Bytes, cache: &PrefixCache) -> Result<(), StoreError> {
    let mut items = BTreeMap::new();
    let mut start_after = None;
    let revision = loop {
        let page = store
            .range(RangeRequest {
                prefix: prefix.clone(),
                start_after: start_after.clone(),
                revision: None,
                limit: 0,
                count_only: false,
            })
            .await?;
        let last = page.kvs.last().map(|kv| kv.key.clone());
        for kv in page.kvs {
            items.insert(
                kv.key.clone(),
                CachedItem::new(kv.key, kv.value, kv.mod_revision),
            );
        }
        if page.remaining == 0 {
            break page.revision;
        }
        start_after = last;
    };
    let mut watcher = store.watch(prefix, WatchStart::After(revision)).await?;
    {
        // Items and revision change together: a reader never sees one without the other.
        let mut state = cache.state.write();
        state.items = items;
        cache.revision.send_replace(revision);
    }
    loop {
        tokio::select! {
            message = watcher.next() => match message? {
                WatchMessage::Event(event) => {
                    let revision = event.revision();
                    {
                        let mut state = cache.state.write();
                        match event.kind {
                            EventKind::Put => {
                                let kv = &event.kv;
                                state.items.insert(
                                    kv.key.clone(),
                                    CachedItem::new(kv.key.clone(), kv.value.clone(), kv.mod_revision),
                                );
                            }
                            EventKind::Delete => {
                                state.items.remove(&event.kv.key);
                            }
                        }
                        cache.revision.send_replace(revision);
                    }
                }
                WatchMessage::Progress(revision) => {
                    cache.revision.send_if_modified(|r| {
                        let newer = revision > *r;
                        if newer {
                            *r = revision;
                        }
                        newer
                    });
                }
            },
            () = cache.progress.notified() => watcher.request_progress(),
        }
    }
}
