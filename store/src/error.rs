//! The store's error type.

use std::path::PathBuf;

use crate::Revision;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a store operation can fail with. Conflicts are not errors: see
/// [`crate::WriteOutcome::Conflict`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key must have at least one byte.
    #[error("key is empty")]
    EmptyKey,
    /// The key is longer than [`crate::MAX_KEY_BYTES`].
    #[error("key of {len} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge { len: usize, limit: usize },
    /// The value is larger than [`crate::MAX_VALUE_BYTES`].
    #[error("value for key {key} is {len} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        key: String,
        len: usize,
        limit: usize,
    },
    /// A TTL must be at least one second.
    #[error("ttl for key {key} must be at least one second")]
    InvalidTtl { key: String },
    /// A range page larger than [`crate::MAX_RANGE_LIMIT`] was requested.
    #[error("range limit {limit} exceeds the maximum of {max}")]
    LimitTooLarge { limit: usize, max: usize },
    /// The requested revision is older than the retained history (the API maps this to 410 Gone).
    #[error("revision {requested} has been compacted; the oldest retained revision is {compacted}")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision has not happened yet.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// A watcher fell too far behind and was closed; resume from `last_revision`.
    #[error("watch fell behind and was closed after revision {last_revision}")]
    Lagged { last_revision: Revision },
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The data directory could not be opened.
    #[error("cannot open store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record at revision {revision}: {reason}")]
    Corrupt { revision: Revision, reason: String },
    /// The storage engine failed underneath us.
    #[error("storage i/o failed while {action}")]
    Storage {
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub(crate) fn storage(
        action: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            action,
            source: Box::new(source),
        }
    }
}

/// A key in messages: lossy UTF-8, which Kubernetes keys always are.
pub(crate) fn show_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}
