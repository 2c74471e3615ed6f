//! The durable log on sled: records keyed by big-endian revision, made durable by flush + fdatasync of sled's `db` file.
//!
//! Two facts about sled 0.34 shape this file (see ARCHITECTURE.md):
//! - `Db::flush` writes with `sync_file_range`, which is not durable; [`SledLog::sync`] follows
//!   it with an fdatasync of the `db` file. sled's own periodic flusher is off: the engine's
//!   group-commit thread is the only flusher.
//! - sled writes any page over a quarter of its segment size (128 KiB by default) as a separate
//!   file under `blobs/` that it never syncs. A page is a whole B-tree node (up to 16 values), so
//!   even modest values end up there. [`SledLog::sync`] fsyncs each new blob file and the
//!   directory before the log that points at them.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::{Log, Meta};
use crate::error::Error;
use crate::record::Record;
use bytes::Bytes;

use crate::{Result, Revision, SledConfig};

const META_COMPACT: &[u8] = b"compact_revision";
const META_FORMAT: &[u8] = b"format";
/// The on-disk format version of the records tree.
const FORMAT_VERSION: u32 = 1;
/// Created beside sled's files once the store is initialised.
const MARKER_FILE: &str = "k1s-store";

pub(crate) struct SledLog {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    /// sled's log file, held open for fdatasync.
    log_file: File,
    path: PathBuf,
    sync_enabled: bool,
    /// Names of the blob files already fsync'd.
    synced_blobs: Mutex<HashSet<OsString>>,
}

/// The sled key of a record: its revision, big-endian so keys sort by revision.
fn record_key(revision: Revision) -> [u8; 8] {
    revision.to_be_bytes()
}

impl SledLog {
    pub fn open(config: &SledConfig) -> Result<SledLog> {
        let path = config.path.clone();
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Open {
            path: path.clone(),
            source,
        };
        ensure_dir(&path).map_err(|e| open_err(Box::new(e)))?;
        let sled_config = sled::Config::new()
            .path(&path)
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(None)
            .mode(sled::Mode::LowSpace);
        let db = open_sled(&sled_config, &path).map_err(open_err)?;
        let records = db.open_tree("records").map_err(|e| open_err(Box::new(e)))?;
        let meta = db.open_tree("meta").map_err(|e| open_err(Box::new(e)))?;
        let log_file = File::open(path.join("db")).map_err(|e| open_err(Box::new(e)))?;
        let log = SledLog {
            db,
            records,
            meta,
            log_file,
            path: path.clone(),
            sync_enabled: !config.unsafe_no_sync,
            synced_blobs: Mutex::new(HashSet::new()),
        };
        log.check_initialised().map_err(open_err)?;
        Ok(log)
    }

    /// sled opens a damaged log as an empty database. A marker file beside it, written once the
    /// database holds its format key, tells a fresh store from one that lost its data.
    fn check_initialised(
        &self,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let marker = self.path.join(MARKER_FILE);
        let has_format = self.meta.get(META_FORMAT)?.is_some();
        if !has_format && marker.exists() {
            return Err(
                "data is corrupt: the store was initialised here but sled's log holds none of it"
                    .into(),
            );
        }
        if !has_format {
            self.meta
                .insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
        }
        // sled created its files without syncing the directory: make data and names durable.
        self.sync()?;
        if !marker.exists() {
            let file = File::create(&marker)?;
            if self.sync_enabled {
                file.sync_all()?;
            }
        }
        if self.sync_enabled {
            File::open(&self.path)?.sync_all()?;
        }
        Ok(())
    }

    /// fsync every blob file sled wrote since the last sync, then the `blobs/` directory.
    /// Blob files are written once and never modified, so each is synced once.
    fn sync_new_blobs(&self) -> std::io::Result<()> {
        let dir = self.path.join("blobs");
        let mut synced = self.synced_blobs.lock();
        let mut present = HashSet::with_capacity(synced.len());
        let mut new = false;
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                File::open(dir.join(&name))?.sync_all()?;
                new = true;
            }
            present.insert(name);
        }
        let removed = present.len() != synced.len() || new;
        *synced = present;
        if removed {
            File::open(&dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// How long to wait for another process (or this one's previous instance, whose background
/// truncation may briefly outlive it) to release sled's file lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Open sled, waiting for its file lock, and turning a panic on a damaged log into an error.
fn open_sled(
    config: &sled::Config,
    path: &Path,
) -> std::result::Result<sled::Db, Box<dyn std::error::Error + Send + Sync>> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut warned = false;
    loop {
        // sled 0.34 panics on some corruptions instead of returning an error; a damaged data
        // directory must be a clear startup error, not a crash.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|panic| {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled panicked while opening".to_string());
                format!("data is corrupt: {msg}")
            })?;
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                if !warned {
                    tracing::warn!(path = %path.display(), "store is locked by another process; waiting");
                    warned = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// Create the data directory if needed, syncing its parent so the new name survives a power cut.
fn ensure_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl Log for SledLog {
    fn append(&self, record: &Record) -> Result<()> {
        self.records
            .insert(record_key(record.revision), record.encode().as_ref())
            .map_err(|e| Error::storage("appending a record", e))?;
        Ok(())
    }

    fn read(&self, revision: Revision) -> Result<Option<Record>> {
        let data = self
            .records
            .get(record_key(revision))
            .map_err(|e| Error::storage("reading a record", e))?;
        data.map(|d| Record::decode(revision, Bytes::from_owner(d)))
            .transpose()
    }

    fn read_range(&self, from: Revision, to: Revision, limit: usize) -> Result<Vec<Record>> {
        if from > to {
            return Ok(Vec::new());
        }
        self.records
            .range(record_key(from)..=record_key(to))
            .take(limit)
            .map(|item| {
                let (key, data) = item.map_err(|e| Error::storage("scanning records", e))?;
                let revision =
                    u64::from_be_bytes(key.as_ref().try_into().map_err(|_| Error::Corrupt {
                        revision: 0,
                        reason: format!("record key of {} bytes", key.len()),
                    })?);
                Record::decode(revision, Bytes::from_owner(data))
            })
            .collect()
    }

    fn remove(&self, revisions: &[Revision]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for &revision in revisions {
            batch.remove(&record_key(revision));
        }
        self.records
            .apply_batch(batch)
            .map_err(|e| Error::storage("removing compacted records", e))
    }

    fn sync(&self) -> Result<()> {
        self.db
            .flush()
            .map_err(|e| Error::storage("flushing sled", e))?;
        if self.sync_enabled {
            // Blobs first: the log records that point at them must not become durable before
            // the blobs do.
            self.sync_new_blobs()
                .map_err(|e| Error::storage("syncing sled's blob files", e))?;
            self.log_file
                .sync_data()
                .map_err(|e| Error::storage("syncing sled's log file", e))?;
        }
        Ok(())
    }

    fn load_meta(&self) -> Result<Meta> {
        let compact = self
            .meta
            .get(META_COMPACT)
            .map_err(|e| Error::storage("reading store metadata", e))?;
        let compact_revision = match compact {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| Error::Corrupt {
                revision: 0,
                reason: "bad compact revision".into(),
            })?),
            None => 0,
        };
        Ok(Meta { compact_revision })
    }

    fn store_meta(&self, meta: Meta) -> Result<()> {
        self.meta
            .insert(META_COMPACT, &meta.compact_revision.to_be_bytes())
            .map_err(|e| Error::storage("writing store metadata", e))?;
        self.sync()
    }

    fn disk_bytes(&self) -> u64 {
        dir_size(&self.path)
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
            Err(_) => 0,
        })
        .sum()
}
