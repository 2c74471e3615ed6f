//! The in-memory log behind `--ephemeral`: a map from revision to record, gone with the process.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use super::{Log, Meta};
use crate::record::Record;
use crate::{Result, Revision};

#[derive(Default)]
pub(crate) struct MemoryLog {
    records: RwLock<BTreeMap<Revision, Record>>,
    meta: RwLock<Meta>,
}

impl Log for MemoryLog {
    fn append(&self, record: &Record) -> Result<()> {
        self.records.write().insert(record.revision, record.clone());
        Ok(())
    }

    fn read(&self, revision: Revision) -> Result<Option<Record>> {
        Ok(self.records.read().get(&revision).cloned())
    }

    fn read_range(&self, from: Revision, to: Revision, limit: usize) -> Result<Vec<Record>> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .records
            .read()
            .range(from..=to)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn remove(&self, revisions: &[Revision]) -> Result<()> {
        let mut records = self.records.write();
        for r in revisions {
            records.remove(r);
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn load_meta(&self) -> Result<Meta> {
        Ok(*self.meta.read())
    }

    fn store_meta(&self, meta: Meta) -> Result<()> {
        *self.meta.write() = meta;
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
