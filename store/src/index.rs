//! The in-memory key index: for every key, the revisions of its retained versions (as etcd's treeIndex).
//!
//! Values live in the log; the index answers "which revision holds this key as of revision R"
//! for gets, ranges and compare-and-swap without touching storage.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::Revision;

/// One retained version of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub revision: Revision,
    pub tombstone: bool,
}

#[derive(Default)]
pub(crate) struct Index {
    /// Versions per key, oldest first.
    keys: BTreeMap<Bytes, Vec<Version>>,
}

impl Index {
    /// Record a write (revisions arrive in increasing order).
    pub fn push(&mut self, key: &Bytes, version: Version) {
        match self.keys.get_mut(key) {
            Some(versions) => versions.push(version),
            None => {
                self.keys.insert(key.clone(), vec![version]);
            }
        }
    }

    /// The live version of `key` as of `at`, if any.
    pub fn live_at(&self, key: &[u8], at: Revision) -> Option<Revision> {
        self.keys
            .get(key)
            .and_then(|versions| visible(versions, at))
    }

    /// The newest version of `key` regardless of readers (for writers).
    pub fn latest(&self, key: &[u8]) -> Option<Version> {
        self.keys
            .get(key)
            .and_then(|versions| versions.last().copied())
    }

    /// Keys under `prefix` strictly after `start_after`, live as of `at`: up to `limit` of them
    /// (0 = all) with their revisions, and how many more there are.
    pub fn range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        at: Revision,
        limit: usize,
    ) -> (Vec<(Bytes, Revision)>, u64) {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut page = Vec::new();
        let mut remaining = 0u64;
        let iter = self
            .keys
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        for (key, versions) in iter {
            if let Some(revision) = visible(versions, at) {
                if limit == 0 || page.len() < limit {
                    page.push((key.clone(), revision));
                } else {
                    remaining += 1;
                }
            }
        }
        (page, remaining)
    }

    /// Forget every version superseded as of `at`, and tombstones that are the newest version as
    /// of `at`, starting at `cursor` and stopping once `batch` keys were visited or `batch`
    /// revisions dropped. Returns the revisions dropped and the cursor to continue from (`None`
    /// when the whole index was visited).
    pub fn compact_batch(
        &mut self,
        at: Revision,
        cursor: Option<&Bytes>,
        batch: usize,
    ) -> (Vec<Revision>, Option<Bytes>) {
        let lower = match cursor {
            Some(key) => Bound::Included(key.clone()),
            None => Bound::Unbounded,
        };
        let mut dropped = Vec::new();
        let mut emptied = Vec::new();
        let mut next = None;
        for (visited, (key, versions)) in self.keys.range_mut((lower, Bound::Unbounded)).enumerate()
        {
            if visited == batch || dropped.len() >= batch {
                next = Some(key.clone());
                break;
            }
            // Index of the newest version at or below `at`: it stays unless it is a tombstone.
            let keep_from = versions.partition_point(|v| v.revision <= at);
            if keep_from > 0 {
                let newest = versions[keep_from - 1];
                let cut = if newest.tombstone {
                    keep_from
                } else {
                    keep_from - 1
                };
                dropped.extend(versions.drain(..cut).map(|v| v.revision));
                if versions.is_empty() {
                    emptied.push(key.clone());
                }
            }
        }
        for key in emptied {
            self.keys.remove(&key);
        }
        (dropped, next)
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// The newest version at or below `at`, unless it is a tombstone.
fn visible(versions: &[Version], at: Revision) -> Option<Revision> {
    let n = versions.partition_point(|v| v.revision <= at);
    match n.checked_sub(1).map(|i| versions[i]) {
        Some(v) if !v.tombstone => Some(v.revision),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(r: Revision) -> Version {
        Version {
            revision: r,
            tombstone: false,
        }
    }
    fn del(r: Revision) -> Version {
        Version {
            revision: r,
            tombstone: true,
        }
    }
    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn visibility_follows_revisions() {
        let mut idx = Index::default();
        idx.push(&key("/a"), put(1));
        idx.push(&key("/a"), put(3));
        idx.push(&key("/a"), del(5));
        idx.push(&key("/a"), put(7));
        assert_eq!(idx.live_at(b"/a", 0), None);
        assert_eq!(idx.live_at(b"/a", 2), Some(1));
        assert_eq!(idx.live_at(b"/a", 4), Some(3));
        assert_eq!(idx.live_at(b"/a", 6), None);
        assert_eq!(idx.live_at(b"/a", 9), Some(7));
    }

    #[test]
    fn range_pages_and_counts() {
        let mut idx = Index::default();
        for (i, k) in ["/p/a", "/p/b", "/p/c", "/q/a"].iter().enumerate() {
            idx.push(&key(k), put(i as u64 + 1));
        }
        let (page, rest) = idx.range(b"/p/", None, 10, 2);
        assert_eq!(page, vec![(key("/p/a"), 1), (key("/p/b"), 2)]);
        assert_eq!(rest, 1);
        let (page, rest) = idx.range(b"/p/", Some(b"/p/b"), 10, 2);
        assert_eq!(page, vec![(key("/p/c"), 3)]);
        assert_eq!(rest, 0);
        // At revision 2, /p/c does not exist yet.
        assert_eq!(idx.range(b"/p/", None, 2, 0).0.len(), 2);
    }

    #[test]
    fn compaction_keeps_the_version_visible_at_the_compact_revision() {
        let mut idx = Index::default();
        idx.push(&key("/a"), put(1));
        idx.push(&key("/a"), put(2));
        idx.push(&key("/a"), put(4));
        idx.push(&key("/b"), put(3));
        idx.push(&key("/b"), del(5));
        let (dropped, next) = idx.compact_batch(3, None, 100);
        assert_eq!(dropped, vec![1]);
        assert_eq!(next, None);
        assert_eq!(idx.live_at(b"/a", 3), Some(2));
        let (dropped, _) = idx.compact_batch(5, None, 100);
        assert_eq!(dropped, vec![2, 3, 5]);
        assert_eq!(idx.key_count(), 1);
    }

    #[test]
    fn compaction_walks_in_batches() {
        let mut idx = Index::default();
        for k in ["/a", "/b", "/c"] {
            idx.push(&key(k), put(1));
            idx.push(&key(k), put(2));
        }
        let (d1, c1) = idx.compact_batch(2, None, 2);
        assert_eq!((d1.len(), c1.clone()), (2, Some(key("/c"))));
        let (d2, c2) = idx.compact_batch(2, c1.as_ref(), 2);
        assert_eq!((d2.len(), c2), (1, None));
        // A key with many versions ends a batch early: the pause stays bounded.
        let mut idx = Index::default();
        for r in 1..=10 {
            idx.push(&key("/busy"), put(r));
        }
        idx.push(&key("/z"), put(11));
        idx.push(&key("/z"), put(12));
        let (d, next) = idx.compact_batch(12, None, 3);
        assert_eq!((d.len(), next), (9, Some(key("/z"))));
    }
}
