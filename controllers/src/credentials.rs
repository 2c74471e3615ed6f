//! One identity per controller, as kube-controller-manager's `--use-service-account-credentials` (its dynamic client builder): the controller manager's own client makes sure each controller's ServiceAccount exists in kube-system, asks the TokenRequest API for its token, and keeps that token fresh (at 80% of its lifetime, and at once after a 401) behind the controller's client.

use std::future::Future;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{self, BearerToken, Client, ClientConfig, Credentials, Resource};

/// Where the controllers' service accounts live (upstream's `metav1.NamespaceSystem`).
pub const NAMESPACE: &str = "kube-system";
/// The lifetime asked of every token (upstream's `defaultExpirationSeconds`).
const EXPIRATION: Duration = Duration::from_secs(3600);
/// The share of a token's lifetime left when it is replaced (upstream's
/// `defaultLeewayPercent`).
const LEEWAY_PERCENT: u32 = 20;
/// A lifetime shorter than this is taken for clock skew and counted as this (upstream's
/// floor; the API server never issues shorter tokens).
const MIN_LIFETIME: Duration = Duration::from_secs(600);
/// Retries of a failed token request: the first after this, doubling up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Attempts at a controller's first token before its start fails (upstream's four-step
/// backoff, one step longer).
const START_ATTEMPTS: u32 = 5;
/// A 401 replaces the token no sooner than this after the last one was issued, so a server
/// that rejects every token is not asked for one per failed request.
const REJECTED_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Why a controller's client cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or creating the controller's ServiceAccount failed.
    #[error("cannot get or create service account {NAMESPACE}/{name}")]
    ServiceAccount {
        name: String,
        #[source]
        source: client::Error,
    },
    /// The TokenRequest failed.
    #[error("cannot request a token for service account {NAMESPACE}/{name}")]
    TokenRequest {
        name: String,
        #[source]
        source: client::Error,
    },
    /// The TokenRequest answered without a token.
    #[error("the token request for service account {NAMESPACE}/{name} returned no token")]
    NoToken { name: String },
    /// The controller's client cannot be built.
    #[error("cannot build the client of service account {NAMESPACE}/{name}")]
    Client {
        name: String,
        #[source]
        source: client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The user a controller's service account authenticates as.
pub fn username(service_account: &str) -> String {
    format!("system:serviceaccount:{NAMESPACE}:{service_account}")
}

/// Builds each controller's client: its own service account's token over the controller
/// manager's connection settings (server, CA), with no client certificate.
pub struct ClientBuilder {
    /// The controller manager's own client: creates the service accounts and requests tokens.
    core: Client,
    server: String,
    ca_pem: String,
    user_agent: String,
    shutdown: CancellationToken,
    refreshers: TaskTracker,
}

impl ClientBuilder {
    /// A builder whose own requests use `config` (the controller manager's identity); its
    /// token refreshers stop at `shutdown`.
    pub fn new(config: &ClientConfig, shutdown: CancellationToken) -> client::Result<Self> {
        let core = Client::new(&ClientConfig {
            user_agent: format!("{}/kube-controller-manager", config.user_agent),
            ..config.clone()
        })?;
        Ok(ClientBuilder {
            core,
            server: config.server.clone(),
            ca_pem: config.ca_pem.clone(),
            user_agent: config.user_agent.clone(),
            shutdown,
            refreshers: TaskTracker::new(),
        })
    }

    /// The client of the controller that acts as `service_account` (in kube-system): the
    /// account is created if missing, and the client's token is kept fresh until shutdown.
    /// Its user agent is the controller manager's followed by `/` and the account's user name,
    /// as upstream's client builder sets it.
    pub async fn client(&self, service_account: &str) -> Result<Client> {
        let mut wait = RETRY_FIRST;
        let mut attempt = 1;
        let issued = loop {
            match issue(&self.core, service_account).await {
                Ok(issued) => break issued,
                Err(e) if attempt < START_ATTEMPTS && !self.shutdown.is_cancelled() => {
                    tracing::info!(
                        service_account,
                        error = %crate::error_chain(&e),
                        "cannot get a token yet; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let client_error = |source| Error::Client {
            name: service_account.to_string(),
            source,
        };
        let token = BearerToken::new(&issued.token).map_err(client_error)?;
        let client = Client::new(&ClientConfig {
            server: self.server.clone(),
            ca_pem: self.ca_pem.clone(),
            credentials: Credentials::Token(token.clone()),
            user_agent: format!("{}/{}", self.user_agent, username(service_account)),
        })
        .map_err(client_error)?;
        let core = self.core.clone();
        let name = service_account.to_string();
        self.refreshers.spawn(keep_fresh(
            name.clone(),
            move || {
                let core = core.clone();
                let name = name.clone();
                async move { issue(&core, &name).await }
            },
            token,
            refresh_delay(issued.lifetime),
            self.shutdown.clone(),
        ));
        tracing::debug!(service_account, "controller credentials ready");
        Ok(client)
    }

    /// Wait for the token refreshers to stop (they stop at shutdown).
    pub async fn stopped(&self) {
        self.refreshers.close();
        self.refreshers.wait().await;
    }
}

/// A token and how long it is good for.
#[derive(Clone, Debug, PartialEq)]
struct Issued {
    token: String,
    lifetime: Duration,
}

/// Make sure service account `name` exists, then get a token for it (upstream's
/// `getOrCreateServiceAccount` and `tokenSourceImpl.Token`).
async fn issue(core: &Client, name: &str) -> Result<Issued> {
    let accounts = Resource::core("serviceaccounts", true);
    let account_error = |source| Error::ServiceAccount {
        name: name.to_string(),
        source,
    };
    match core.get(&accounts, Some(NAMESPACE), name).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            let account = json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": NAMESPACE},
            });
            match core.create(&accounts, Some(NAMESPACE), &account).await {
                Ok(_) => {
                    tracing::info!(service_account = name, "created controller service account")
                }
                // Someone else created it since: just as good.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(account_error(e)),
            }
        }
        Err(e) => return Err(account_error(e)),
    }
    let path = format!("{}/token", accounts.object_path(Some(NAMESPACE), name));
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": EXPIRATION.as_secs()},
    });
    let response = core
        .request(Method::POST, &path, Some(("application/json", &request)))
        .await
        .map_err(|source| Error::TokenRequest {
            name: name.to_string(),
            source,
        })?;
    let token = response
        .pointer("/status/token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::NoToken {
            name: name.to_string(),
        })?;
    let expires = response
        .pointer("/status/expirationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
    let lifetime = match expires {
        Some(at) => Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or_default(),
        None => EXPIRATION,
    };
    Ok(Issued {
        token: token.to_string(),
        lifetime,
    })
}

/// How long a token that is good for `lifetime` is used before it is replaced: 80% of it,
/// a lifetime under ten minutes counting as ten (upstream's leeway and clock-skew floor).
fn refresh_delay(lifetime: Duration) -> Duration {
    let lifetime = lifetime.max(MIN_LIFETIME);
    lifetime - lifetime * LEEWAY_PERCENT / 100
}

/// Replace `token` after `first_delay`, then whenever the one `issue` gave last reaches its
/// refresh time or the server rejects it, until `shutdown`. A failed request keeps the old
/// token (still good until it expires) and is retried with a growing delay.
async fn keep_fresh<F, Fut>(
    name: String,
    mut issue: F,
    token: BearerToken,
    first_delay: Duration,
    shutdown: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Issued>>,
{
    let mut issued_at = Instant::now();
    let mut refresh_at = issued_at + first_delay;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(refresh_at) => {}
            _ = token.rejected() => {
                tracing::info!(service_account = name, "token rejected; replacing it");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(issued_at + REJECTED_MIN_INTERVAL) => {}
                }
            }
        }
        let mut wait = RETRY_FIRST;
        loop {
            let result = issue().await.and_then(|issued| {
                token.set(&issued.token).map_err(|source| Error::Client {
                    name: name.clone(),
                    source,
                })?;
                Ok(issued)
            });
            match result {
                Ok(issued) => {
                    issued_at = Instant::now();
                    refresh_at = issued_at + refresh_delay(issued.lifetime);
                    tracing::debug!(service_account = name, "token replaced");
                    break;
                }
                Err(e) => {
                    tracing::warn!(
                        service_account = name,
                        error = %crate::error_chain(&e),
                        retry_in = ?wait,
                        "cannot replace the token; keeping the current one"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn refreshes_at_eighty_percent_of_the_lifetime() {
        let check = |lifetime_secs: u64, expect_secs: u64| {
            assert_eq!(
                refresh_delay(Duration::from_secs(lifetime_secs)),
                Duration::from_secs(expect_secs),
                "lifetime {lifetime_secs}s"
            );
        };
        check(3600, 2880);
        check(7200, 5760);
        check(600, 480);
        // Shorter than ten minutes (clock skew), or already past: as if ten minutes.
        check(599, 480);
        check(0, 480);
    }

    #[test]
    fn user_names() {
        assert_eq!(
            username("namespace-controller"),
            "system:serviceaccount:kube-system:namespace-controller"
        );
    }

    /// A token source answering from `script` (a token, or an error), recording when it was
    /// asked.
    struct Fake {
        script: Arc<Mutex<VecDeque<Option<&'static str>>>>,
        calls: mpsc::UnboundedReceiver<Instant>,
        token: BearerToken,
    }

    fn start(script: &[Option<&'static str>], shutdown: &CancellationToken) -> Fake {
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (tx, calls) = mpsc::unbounded_channel();
        let token = BearerToken::new("t0").unwrap();
        let answers = script.clone();
        tokio::spawn(keep_fresh(
            "sa".into(),
            move || {
                tx.send(Instant::now()).unwrap();
                let next = answers.lock().unwrap().pop_front().flatten();
                async move {
                    match next {
                        Some(token) => Ok(Issued {
                            token: token.to_string(),
                            lifetime: EXPIRATION,
                        }),
                        None => Err(Error::NoToken { name: "sa".into() }),
                    }
                }
            },
            token.clone(),
            refresh_delay(EXPIRATION),
            shutdown.clone(),
        ));
        Fake {
            script,
            calls,
            token,
        }
    }

    impl Fake {
        /// How long after `since` the next token request came.
        async fn next_call(&mut self, since: Instant) -> Duration {
            let at = tokio::time::timeout(24 * 60 * MINUTE, self.calls.recv())
                .await
                .expect("likely deadlocked")
                .unwrap();
            at - since
        }

        fn current(&self) -> String {
            self.token.header().to_str().unwrap().to_string()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_replaced_at_eighty_percent_of_its_life() {
        let shutdown = CancellationToken::new();
        let start_at = Instant::now();
        let mut fake = start(&[Some("t1"), Some("t2")], &shutdown);
        assert_eq!(fake.current(), "Bearer t0");
        assert_eq!(fake.next_call(start_at).await, 48 * MINUTE);
        assert_eq!(fake.current(), "Bearer t1");
        assert_eq!(fake.next_call(start_at).await, 96 * MINUTE);
        assert_eq!(fake.current(), "Bearer t2");
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_token_is_replaced_at_once() {
        let shutdown = CancellationToken::new();
        let start_at = Instant::now();
        let mut fake = start(&[Some("t1"), Some("t2"), Some("t3")], &shutdown);
        tokio::time::sleep(10 * MINUTE).await;
        let t0 = fake.token.header();
        fake.token.reject(&t0);
        assert_eq!(fake.next_call(start_at).await, 10 * MINUTE);
        assert_eq!(fake.current(), "Bearer t1");

        // Straight after a new token, a rejection waits a moment before asking again.
        let issued = Instant::now();
        fake.token.reject(&fake.token.header());
        assert_eq!(fake.next_call(issued).await, REJECTED_MIN_INTERVAL);
        assert_eq!(fake.current(), "Bearer t2");

        // A 401 to a token already replaced changes nothing: the next request is the
        // scheduled one.
        let issued = Instant::now();
        fake.token.reject(&t0);
        assert_eq!(fake.next_call(issued).await, 48 * MINUTE);
        assert_eq!(fake.current(), "Bearer t3");
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_token_and_retries_with_backoff() {
        let shutdown = CancellationToken::new();
        let start_at = Instant::now();
        let mut fake = start(&[None, None, None, Some("t1")], &shutdown);
        let refresh = 48 * MINUTE;
        assert_eq!(fake.next_call(start_at).await, refresh);
        assert_eq!(fake.current(), "Bearer t0");
        let retries = [500, 1500, 3500].map(Duration::from_millis);
        for after in retries {
            assert_eq!(fake.next_call(start_at).await, refresh + after);
        }
        assert_eq!(fake.current(), "Bearer t1");
        assert!(fake.script.lock().unwrap().is_empty());

        // Shutdown ends the refresher: nothing asks for tokens any more.
        shutdown.cancel();
        let ended = tokio::time::timeout(24 * 60 * MINUTE, fake.calls.recv()).await;
        assert!(matches!(ended, Ok(None)), "the refresher stopped");
    }
}
