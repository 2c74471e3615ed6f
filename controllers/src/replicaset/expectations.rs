//! Controller expectations (upstream's `ControllerExpectations`): the creates and deletes a controller has issued and not yet seen in its cache, so it never acts twice on a stale view.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Expectations older than this are considered met (a lost watch event must not wedge a
/// controller forever).
pub const TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Pending {
    add: i64,
    del: i64,
    since: Instant,
}

/// Outstanding creates and deletes per controller key.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    /// Whether the cache has caught up with what `key` did (or nothing is recorded, or the
    /// record expired).
    pub fn satisfied(&self, key: &str) -> bool {
        match self.pending.lock().get(key) {
            None => true,
            Some(p) => (p.add <= 0 && p.del <= 0) || p.since.elapsed() > TTL,
        }
    }

    pub fn expect_creations(&self, key: &str, count: usize) {
        self.set(key, count as i64, 0);
    }

    pub fn expect_deletions(&self, key: &str, count: usize) {
        self.set(key, 0, count as i64);
    }

    fn set(&self, key: &str, add: i64, del: i64) {
        self.pending.lock().insert(
            key.to_string(),
            Pending {
                add,
                del,
                since: Instant::now(),
            },
        );
    }

    /// A create of `key` was seen (or will never happen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(p) = self.pending.lock().get_mut(key) {
            p.add -= 1;
        }
    }

    /// A delete of `key` was seen (or will never happen).
    pub fn deletion_observed(&self, key: &str) {
        if let Some(p) = self.pending.lock().get_mut(key) {
            p.del -= 1;
        }
    }

    pub fn forget(&self, key: &str) {
        self.pending.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn satisfied_when_observed_or_expired() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        e.expect_deletions("ns/rs", 1);
        assert!(!e.satisfied("ns/rs"));
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        assert!(e.satisfied("ns/rs"));
    }
}
