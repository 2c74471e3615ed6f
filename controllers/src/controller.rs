//! The reconcile contract every controller follows, and the workers that drive a `Reconciler` from its work queue: success forgets the key's backoff, an error retries it rate limited, `RequeueAfter` runs it again later.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::queue::WorkQueue;

/// How long reconciles in flight may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What to do with a key after a successful reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the key is added again.
    Done,
    /// Run again after this long (waiting on something that events will not announce). The
    /// key's failure count is left as it is.
    RequeueAfter(Duration),
}

/// One controller's reconcile: idempotent, run for one key at a time.
pub trait Reconciler: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    fn reconcile(&self, key: &str) -> impl Future<Output = Result<Action, Self::Error>> + Send;
}

/// Run `workers` concurrent workers over `queue` until `shutdown`; then shut the queue down
/// and wait (a few seconds at most) for the reconciles in flight.
pub async fn run_workers<R: Reconciler>(
    reconciler: Arc<R>,
    queue: WorkQueue,
    workers: usize,
    shutdown: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    for _ in 0..workers.max(1) {
        let (reconciler, queue) = (reconciler.clone(), queue.clone());
        tasks.spawn(async move {
            while let Some(key) = queue.get().await {
                process(&*reconciler, &queue, &key).await;
                queue.done(&key);
            }
        });
    }
    shutdown.cancelled().await;
    queue.shut_down();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(result) = tasks.join_next().await {
            if let Err(e) = result {
                tracing::error!(controller = queue.name(), error = %e, "controller worker panicked");
            }
        }
    })
    .await;
    if drained.is_err() {
        // Reconciles are idempotent: one cut short is redone by the next run.
        tracing::warn!(
            controller = queue.name(),
            "reconciles still running at shutdown; aborted"
        );
        tasks.shutdown().await;
    }
}

async fn process<R: Reconciler>(reconciler: &R, queue: &WorkQueue, key: &str) {
    let started = Instant::now();
    let result = reconciler.reconcile(key).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(Action::Done) => {
            queue.forget(key);
            tracing::debug!(controller = queue.name(), key, elapsed_ms, "synced");
        }
        Ok(Action::RequeueAfter(delay)) => {
            tracing::debug!(
                controller = queue.name(),
                key,
                elapsed_ms,
                ?delay,
                "synced; requeued"
            );
            queue.add_after(key, delay);
        }
        Err(e) => {
            tracing::warn!(
                controller = queue.name(),
                key,
                elapsed_ms,
                retries = queue.requeues(key),
                error = %crate::error_chain(&e),
                "sync failed; retrying with backoff"
            );
            queue.add_rate_limited(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::RateLimiter;
    use parking_lot::Mutex;

    #[derive(Debug, thiserror::Error)]
    #[error("failure {0}")]
    struct Failure(u32);

    /// Fails each key `failures` times, then asks for one requeue, then is done; records
    /// when each run started.
    struct Flaky {
        failures: u32,
        runs: Mutex<Vec<(String, tokio::time::Instant)>>,
    }

    impl Reconciler for Flaky {
        type Error = Failure;

        async fn reconcile(&self, key: &str) -> Result<Action, Failure> {
            let n = {
                let mut runs = self.runs.lock();
                runs.push((key.to_string(), tokio::time::Instant::now()));
                runs.iter().filter(|(k, _)| k == key).count() as u32
            };
            tokio::time::sleep(Duration::from_millis(1)).await;
            match n {
                n if n <= self.failures => Err(Failure(n)),
                n if n == self.failures + 1 => Ok(Action::RequeueAfter(Duration::from_secs(3))),
                _ => Ok(Action::Done),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_requeues_wait_and_success_forgets() {
        let queue = WorkQueue::new("test", RateLimiter::default());
        let flaky = Arc::new(Flaky {
            failures: 3,
            runs: Mutex::new(Vec::new()),
        });
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(run_workers(
            flaky.clone(),
            queue.clone(),
            2,
            shutdown.clone(),
        ));
        let start = tokio::time::Instant::now();
        queue.add("a");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let offsets: Vec<u128> = flaky
            .runs
            .lock()
            .iter()
            .map(|(_, t)| (*t - start).as_millis())
            .collect();
        // Runs at 0; failures retried after 5, 10, 20 ms (each run takes 1 ms); then the
        // requested 3 s; then done, with the backoff forgotten.
        assert_eq!(offsets, [0, 6, 17, 38, 3039]);
        assert_eq!(queue.requeues("a"), 0);
        assert!(queue.is_empty());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), runner)
            .await
            .expect("likely deadlocked")
            .unwrap();
    }
}
