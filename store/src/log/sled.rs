//! The durable log on sled: records keyed by big-endian revision, made durable by flush + fdatasync of sled's `db` file.
//!
//! Two facts about sled 0.34 shape this file (see ARCHITECTURE.md):
//! - `Db::flush` writes with `sync_file_range`, which is not durable; [`SledLog::sync`] follows
//!   it with an fdatasync of the `db` file. sled's own periodic flusher is off: the engine's
//!   group-commit thread is the only flusher.
//! - sled writes values over a quarter of its segment size (128 KiB by default) as separate
//!   `blobs/` files that it never syncs. Records are therefore split into chunks of at most
//!   [`CHUNK`] bytes so every byte goes through the one log file we sync.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Log, Meta};
use crate::error::Error;
use crate::record::Record;
use crate::{Result, Revision, SledConfig};

/// Largest sled value we write; well under sled's blob threshold (segment_size / 4).
const CHUNK: usize = 64 * 1024;
const META_COMPACT: &[u8] = b"compact_revision";

pub(crate) struct SledLog {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    /// sled's log file, held open for fdatasync.
    log_file: File,
    path: PathBuf,
    sync_enabled: bool,
}

/// The sled key of a record's first chunk: its revision, big-endian so keys sort by revision.
fn head_key(revision: Revision) -> [u8; 8] {
    revision.to_be_bytes()
}

/// The sled key of a record's continuation chunk `n` (n ≥ 1): sorts right after the head.
fn chunk_key(revision: Revision, n: u16) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..8].copy_from_slice(&revision.to_be_bytes());
    key[8..].copy_from_slice(&n.to_be_bytes());
    key
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
        // sled 0.34 panics on some corruptions instead of returning an error; a damaged data
        // directory must be a clear startup error, not a crash.
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sled_config.open()))
            .map_err(|panic| {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled panicked while opening".to_string());
                open_err(format!("data is corrupt: {msg}").into())
            })?
            .map_err(|e| open_err(Box::new(e)))?;
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
        };
        // sled created its files without syncing the directory: make their names durable.
        log.sync().map_err(|e| open_err(Box::new(e)))?;
        if log.sync_enabled {
            File::open(&path)
                .and_then(|d| d.sync_all())
                .map_err(|e| open_err(Box::new(e)))?;
        }
        Ok(log)
    }

    fn read_chunked(&self, revision: Revision, head: &[u8]) -> Result<Record> {
        let corrupt = |reason: &str| Error::Corrupt {
            revision,
            reason: reason.to_string(),
        };
        let total = head
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| corrupt("missing length prefix"))?;
        let mut data = Vec::with_capacity(total);
        data.extend_from_slice(&head[4..]);
        let mut n = 1u16;
        while data.len() < total {
            let chunk = self
                .records
                .get(chunk_key(revision, n))
                .map_err(|e| Error::storage("reading a record chunk", e))?
                .ok_or_else(|| corrupt(&format!("chunk {n} is missing")))?;
            data.extend_from_slice(&chunk);
            n = n.checked_add(1).ok_or_else(|| corrupt("too many chunks"))?;
        }
        if data.len() != total {
            return Err(corrupt("chunks are longer than the record"));
        }
        Record::decode(revision, data.into())
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
        let encoded = record.encode();
        let first = encoded.len().min(CHUNK);
        let mut head = Vec::with_capacity(4 + first);
        head.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        head.extend_from_slice(&encoded[..first]);
        let insert_err = |e| Error::storage("appending a record", e);
        if encoded.len() <= CHUNK {
            self.records
                .insert(head_key(record.revision), head)
                .map_err(insert_err)?;
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        batch.insert(&head_key(record.revision), head);
        for (i, chunk) in encoded[CHUNK..].chunks(CHUNK).enumerate() {
            batch.insert(&chunk_key(record.revision, i as u16 + 1), chunk);
        }
        self.records.apply_batch(batch).map_err(insert_err)
    }

    fn read(&self, revision: Revision) -> Result<Option<Record>> {
        let head = self
            .records
            .get(head_key(revision))
            .map_err(|e| Error::storage("reading a record", e))?;
        head.map(|head| self.read_chunked(revision, &head))
            .transpose()
    }

    fn read_range(&self, from: Revision, to: Revision, limit: usize) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        for item in self.records.range(head_key(from)..=head_key(to)) {
            let (key, head) = item.map_err(|e| Error::storage("scanning records", e))?;
            if key.len() != 8 {
                continue; // a continuation chunk, read with its head
            }
            let revision = u64::from_be_bytes(key.as_ref().try_into().expect("8 bytes"));
            out.push(self.read_chunked(revision, &head)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn remove(&self, revisions: &[Revision]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for &revision in revisions {
            let upper = chunk_key(revision, u16::MAX);
            for item in self
                .records
                .range(head_key(revision).as_slice()..=upper.as_slice())
            {
                let (key, _) =
                    item.map_err(|e| Error::storage("scanning records to compact", e))?;
                batch.remove(key);
            }
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
