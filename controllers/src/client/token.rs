//! A bearer token a client sends with every request, replaceable while the client (and its open watches) live, and which tells its owner when the server rejected it.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use parking_lot::RwLock;
use tokio::sync::Notify;

use super::{Error, Result};

/// A shared, replaceable `Authorization: Bearer` credential. Clones share one value: whoever
/// refreshes it calls `set`, and every client holding it sends the new token from its next
/// request on (requests in flight, and watches already open, keep the one they started with).
#[derive(Clone)]
pub struct BearerToken {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Bearer <token>`, marked sensitive (kept out of debug output).
    header: RwLock<HeaderValue>,
    /// Signalled when the server answered 401 to the current token; a signal nobody waits for
    /// yet is kept for the next wait.
    rejected: Notify,
}

/// The token stays out of logs.
impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken").finish_non_exhaustive()
    }
}

fn header(token: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| Error::Config("the bearer token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

impl BearerToken {
    pub fn new(token: &str) -> Result<BearerToken> {
        Ok(BearerToken {
            inner: Arc::new(Inner {
                header: RwLock::new(header(token)?),
                rejected: Notify::new(),
            }),
        })
    }

    /// Replace the token every holder sends.
    pub fn set(&self, token: &str) -> Result<()> {
        *self.inner.header.write() = header(token)?;
        Ok(())
    }

    /// The `Authorization` header value to send now.
    pub fn header(&self) -> HeaderValue {
        self.inner.header.read().clone()
    }

    /// The server answered 401 to a request sent with `sent` (the client reports it). Only a rejection of the current
    /// token is passed on: one of a token since replaced says nothing new.
    pub fn reject(&self, sent: &HeaderValue) {
        if *self.inner.header.read() == *sent {
            self.inner.rejected.notify_one();
        }
    }

    /// Wait until the server rejects the current token (at once if it already did since the
    /// last wait).
    pub async fn rejected(&self) {
        self.inner.rejected.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn replacing_and_rejecting() {
        let token = BearerToken::new("one").unwrap();
        let first = token.header();
        assert_eq!(first.to_str().unwrap(), "Bearer one");
        assert!(first.is_sensitive());
        token.set("two").unwrap();
        assert_eq!(token.header().to_str().unwrap(), "Bearer two");

        // A 401 to the replaced token is old news; one to the current token is kept until
        // someone waits.
        token.reject(&first);
        let waited = tokio::time::timeout(Duration::from_secs(1), token.rejected()).await;
        assert!(waited.is_err(), "a stale rejection is ignored");
        token.reject(&token.header());
        tokio::time::timeout(Duration::from_secs(1), token.rejected())
            .await
            .expect("a rejection of the current token is passed on");

        assert!(token.set("bad\ntoken").is_err());
        assert_eq!(token.header().to_str().unwrap(), "Bearer two");
        assert_eq!(format!("{token:?}"), "BearerToken { .. }");
    }
}
