//! Where records live: an append-only log keyed by revision, with the few operations the revision engine needs.

mod memory;
mod sled;

pub(crate) use self::sled::SledLog;
pub(crate) use memory::MemoryLog;

use crate::record::Record;
use crate::{Result, Revision};

/// Durable bookkeeping that is not a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// History before this revision has been dropped.
    pub compact_revision: Revision,
}

/// An append-only log of records keyed by revision. Appends come from one writer in revision
/// order; reads may run concurrently.
pub(crate) trait Log: Send + Sync + 'static {
    /// Store `record` under its revision. Not yet durable: see [`Log::sync`].
    fn append(&self, record: &Record) -> Result<()>;
    /// The record at `revision`, if retained.
    fn read(&self, revision: Revision) -> Result<Option<Record>>;
    /// Up to `limit` records with revisions in `from..=to`, in revision order.
    fn read_range(&self, from: Revision, to: Revision, limit: usize) -> Result<Vec<Record>>;
    /// Drop the records at these revisions (compaction).
    fn remove(&self, revisions: &[Revision]) -> Result<()>;
    /// Make every append so far durable.
    fn sync(&self) -> Result<()>;
    fn load_meta(&self) -> Result<Meta>;
    /// Store bookkeeping durably (syncs before returning).
    fn store_meta(&self, meta: Meta) -> Result<()>;
    /// Bytes this log occupies on disk (0 for memory).
    fn disk_bytes(&self) -> u64;
}
