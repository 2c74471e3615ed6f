//! Embedded revisioned key-value store with etcd semantics: one global revision, compare-and-swap, TTLs, watch and compaction.
//!
//! The store knows nothing of HTTP, JSON or Kubernetes types: keys and values are bytes. Every
//! backend implements [`Backend`]; [`open`] picks one from a [`Config`]. The embedded backends
//! (sled and in-memory) share one revision engine (`engine`) over a small append-only log
//! abstraction (`log`), so they differ only in where records live.

mod engine;
mod error;
mod index;
mod log;
mod record;
mod watch;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use bytes::Bytes;

pub use error::{Error, Result};
pub use watch::Watcher;

/// A position in the store's history. Revision 0 is the empty store; the first write is 1.
pub type Revision = u64;

/// The largest value accepted, in bytes (etcd's default request limit is 1.5 MiB; Kubernetes
/// objects stay well below this).
pub const MAX_VALUE_BYTES: usize = 3 * 1024 * 1024;
/// The largest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 2048;
/// The largest page a range request may ask for.
pub const MAX_RANGE_LIMIT: usize = 100_000;

/// A stored key at one of its versions.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Bytes,
    /// The revision that created this generation of the key.
    pub create_revision: Revision,
    /// The revision of the write that produced this version.
    pub mod_revision: Revision,
    /// How many writes this generation of the key has seen (1 after create).
    pub version: u64,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .finish()
    }
}

/// What a write did to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as a watcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For `Put`, the new version; for `Delete`, the key with `mod_revision` set to the
    /// deleting revision and an empty value (as etcd reports it).
    pub kv: KeyValue,
    /// The version this write replaced (updates and deletes).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision at which this event happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The result of a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write happened at `revision`; `kv` is the new version (for a delete, the deleted one)
    /// and `prev` the version it replaced.
    Committed {
        revision: Revision,
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// The precondition did not hold; nothing was written. `current` is the key's current
    /// version (`None` if absent) so the caller can retry without another read.
    Conflict { current: Option<KeyValue> },
}

/// A read of keys under a prefix, consistent at one revision.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    pub prefix: Bytes,
    /// Resume strictly after this key (a continuation from an earlier page).
    pub start_after: Option<Bytes>,
    /// Read at this revision; `None` reads at the current revision.
    pub revision: Option<Revision>,
    /// Page size; 0 means no limit.
    pub limit: usize,
    /// Return only the count, not the values.
    pub count_only: bool,
}

/// One page of a range read.
#[derive(Clone, Debug, Default)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at; pass it back with the next page.
    pub revision: Revision,
    /// Keys under the prefix after this page (0 when this page is the last).
    pub remaining: u64,
    /// Total keys matching (this page and the rest), valid when `count_only` was set and also
    /// for every page.
    pub count: u64,
}

impl RangeResponse {
    /// The key to pass as `start_after` for the next page, if there is one.
    pub fn continue_after(&self) -> Option<Bytes> {
        if self.remaining > 0 {
            self.kvs.last().map(|kv| kv.key.clone())
        } else {
            None
        }
    }
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// Only changes after the current revision.
    Now,
    /// Every change after this revision (0 = the whole retained history).
    After(Revision),
}

/// One message from a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    Event(Arc<Event>),
    /// The watcher has seen every event up to this revision (a progress notification, sent on
    /// [`Watcher::request_progress`]).
    Progress(Revision),
}

/// What the store can do; every backend implements this contract (see the conformance tests).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The latest version of `key`, or its version at `revision`.
    async fn get(
        &self,
        key: &[u8],
        revision: Option<Revision>,
    ) -> Result<(Revision, Option<KeyValue>)>;
    /// A page of keys under a prefix.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;
    /// Create `key`; conflicts if it exists.
    async fn create(&self, key: &[u8], value: Bytes, ttl: Option<Duration>)
    -> Result<WriteOutcome>;
    /// Replace `key` if its current `mod_revision` is `expected`.
    async fn update(
        &self,
        key: &[u8],
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome>;
    /// Delete `key`, if its current `mod_revision` is `expected` (when given).
    async fn delete(&self, key: &[u8], expected: Option<Revision>) -> Result<WriteOutcome>;
    /// Watch every key under `prefix`.
    async fn watch(&self, prefix: &[u8], start: WatchStart) -> Result<Watcher>;
    /// The newest revision readers can see.
    fn current_revision(&self) -> Revision;
    /// The oldest revision still readable (everything before it is compacted).
    fn compact_revision(&self) -> Revision;
    /// Drop history before `revision`; returns once the history is unreachable (disk space is
    /// reclaimed in the background).
    async fn compact(&self, revision: Revision) -> Result<()>;
    /// Stop background work and make everything acknowledged durable.
    async fn close(&self) -> Result<()>;
    /// Figures for metrics and benchmarks.
    fn stats(&self) -> Stats;
}

/// A snapshot of the store's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub revision: Revision,
    pub compact_revision: Revision,
    /// Keys with retained versions (live or awaiting compaction).
    pub keys: u64,
    pub watchers: u64,
    /// Bytes allocated on disk (0 for memory).
    pub disk_bytes: u64,
}

/// A handle to whichever backend is configured.
pub type Store = Arc<dyn Backend>;

/// Which backend to open, and how long to keep history.
#[derive(Clone, Debug)]
pub struct Config {
    pub backend: BackendConfig,
    /// Keep history for at least this long...
    pub history_window: Duration,
    /// ...and at least this many revisions.
    pub history_min_revisions: u64,
    /// How often the background compactor and TTL sweeper look for work.
    pub maintenance_interval: Duration,
    /// Events a watcher may fall behind by before it is closed with [`Error::Lagged`].
    pub watch_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: BackendConfig::Memory,
            history_window: Duration::from_secs(300),
            history_min_revisions: 10_000,
            maintenance_interval: Duration::from_secs(5),
            watch_buffer: 10_000,
        }
    }
}

#[derive(Clone, Debug)]
pub enum BackendConfig {
    /// Nothing survives the process (`--ephemeral`).
    Memory,
    /// Durable, in a sled database at this directory.
    Sled(SledConfig),
}

#[derive(Clone, Debug)]
pub struct SledConfig {
    pub path: PathBuf,
    /// sled's page cache size in bytes.
    pub cache_capacity: u64,
    /// Test only: skip the fsync that makes a write durable before it is acknowledged. The
    /// power-cut test turns this on to prove it would notice a missing sync.
    #[doc(hidden)]
    pub unsafe_no_sync: bool,
}

impl SledConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SledConfig {
            path: path.into(),
            cache_capacity: 64 * 1024 * 1024,
            unsafe_no_sync: false,
        }
    }
}

/// Open the configured backend, recover its state and start its background tasks (which need a
/// tokio runtime).
pub fn open(config: Config) -> Result<Store> {
    let opts = engine::Options {
        history_window: config.history_window,
        history_min_revisions: config.history_min_revisions,
        maintenance_interval: config.maintenance_interval,
        watch_buffer: config.watch_buffer.max(1),
    };
    Ok(match config.backend {
        BackendConfig::Memory => Arc::new(engine::Engine::open(log::MemoryLog::default(), opts)?),
        BackendConfig::Sled(sled) => {
            Arc::new(engine::Engine::open(log::SledLog::open(&sled)?, opts)?)
        }
    })
}
