//! The work queue behind every controller, as client-go's rate-limited delaying queue: keys are deduplicated, one key is never handed out twice at once (a key added while it runs runs again afterwards), and retries wait for the larger of a per-key exponential backoff and an overall token bucket.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// client-go's `DefaultTypedControllerRateLimiter`: 5 ms doubling to 1000 s per key, and
/// 10 retries per second with bursts of 100 overall.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(5);
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(1000);
pub const DEFAULT_QPS: f64 = 10.0;
pub const DEFAULT_BURST: u32 = 100;

/// When a failed key may run again: the larger of its own exponential backoff and the delay
/// the shared token bucket imposes.
#[derive(Debug)]
pub struct RateLimiter {
    base: Duration,
    max: Duration,
    failures: HashMap<String, u32>,
    bucket: TokenBucket,
}

impl Default for RateLimiter {
    fn default() -> RateLimiter {
        RateLimiter::new(
            DEFAULT_BASE_DELAY,
            DEFAULT_MAX_DELAY,
            DEFAULT_QPS,
            DEFAULT_BURST,
        )
    }
}

impl RateLimiter {
    pub fn new(base: Duration, max: Duration, qps: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            base,
            max,
            failures: HashMap::new(),
            bucket: TokenBucket::new(qps, burst),
        }
    }

    /// The delay before `key`'s next retry; counts one more failure of it.
    pub fn when(&mut self, key: &str, now: Instant) -> Duration {
        let failures = self.failures.entry(key.to_string()).or_insert(0);
        let exponent = *failures;
        *failures = failures.saturating_add(1);
        let backoff = 2u32
            .checked_pow(exponent)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.max, |d| d.min(self.max));
        backoff.max(self.bucket.reserve(now))
    }

    /// How many times `key` has failed since it last succeeded.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// `key` succeeded: its backoff starts again from the base delay.
    pub fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

/// A token bucket that, like Go's `rate.Limiter.Reserve`, always grants the request and
/// answers how long the caller must wait for its token (tokens may go negative).
#[derive(Debug)]
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(qps: f64, burst: u32) -> TokenBucket {
        TokenBucket {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: None,
        }
    }

    fn reserve(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

#[derive(Default)]
struct State {
    /// Keys ready to run, in order.
    ready: VecDeque<String>,
    /// Keys that need a run: queued, or added again while running.
    dirty: HashSet<String>,
    /// Keys a worker is running now.
    processing: HashSet<String>,
    /// Keys with a delayed add pending, and when it fires.
    waiting: HashMap<String, Instant>,
    shut_down: bool,
}

struct Shared {
    name: &'static str,
    state: Mutex<State>,
    limiter: Mutex<RateLimiter>,
    notify: Notify,
    closed: CancellationToken,
}

/// A rate-limited, delaying, deduplicating queue of keys. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct WorkQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl WorkQueue {
    pub fn new(name: &'static str, limiter: RateLimiter) -> WorkQueue {
        WorkQueue {
            shared: Arc::new(Shared {
                name,
                state: Mutex::new(State::default()),
                limiter: Mutex::new(limiter),
                notify: Notify::new(),
                closed: CancellationToken::new(),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Queue `key` unless it is already queued; a key that is running is queued again when
    /// its run is done.
    pub fn add(&self, key: &str) {
        let mut state = self.shared.state.lock();
        if state.shut_down || !state.dirty.insert(key.to_string()) {
            return;
        }
        if !state.processing.contains(key) {
            state.ready.push_back(key.to_string());
            drop(state);
            self.shared.notify.notify_one();
        }
    }

    /// Queue `key` after `delay`. Of several pending delays for one key the earliest wins.
    pub fn add_after(&self, key: &str, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        {
            let mut state = self.shared.state.lock();
            if state.shut_down || state.waiting.get(key).is_some_and(|t| *t <= at) {
                return;
            }
            state.waiting.insert(key.to_string(), at);
        }
        let queue = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = queue.shared.closed.cancelled() => return,
            }
            let due = {
                let mut state = queue.shared.state.lock();
                // Superseded by an earlier delay for the same key, which has fired already.
                let due = state.waiting.get(&key) == Some(&at);
                if due {
                    state.waiting.remove(&key);
                }
                due
            };
            if due {
                queue.add(&key);
            }
        });
    }

    /// Queue `key` once the rate limiter allows (a retry after a failure).
    pub fn add_rate_limited(&self, key: &str) {
        let delay = self.shared.limiter.lock().when(key, Instant::now());
        self.add_after(key, delay);
    }

    /// `key` succeeded: reset its backoff.
    pub fn forget(&self, key: &str) {
        self.shared.limiter.lock().forget(key);
    }

    /// How many times `key` has been retried since it last succeeded.
    pub fn requeues(&self, key: &str) -> u32 {
        self.shared.limiter.lock().failures(key)
    }

    /// The next key to run, marked as running until `done`; `None` once the queue is shut
    /// down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.shared.state.lock();
                if state.shut_down {
                    return None;
                }
                if let Some(key) = state.ready.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    // Another key may be ready for another worker.
                    if !state.ready.is_empty() {
                        self.shared.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// The run of `key` is over; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &str) {
        let mut state = self.shared.state.lock();
        state.processing.remove(key);
        if state.dirty.contains(key) && !state.shut_down {
            state.ready.push_back(key.to_string());
            drop(state);
            self.shared.notify.notify_one();
        }
    }

    /// Keys queued and not running (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shared.state.lock().ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stop handing out keys: `get` returns `None`, pending delays are dropped.
    pub fn shut_down(&self) {
        self.shared.state.lock().shut_down = true;
        self.shared.closed.cancel();
        self.shared.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const LIVENESS: Duration = Duration::from_secs(5);

    async fn get(queue: &WorkQueue) -> String {
        tokio::time::timeout(LIVENESS, queue.get())
            .await
            .expect("likely deadlocked")
            .expect("queue shut down")
    }

    #[tokio::test(start_paused = true)]
    async fn dedupes_keys_and_keeps_order() {
        let q = WorkQueue::new("test", RateLimiter::default());
        for key in ["a", "b", "a", "c", "b"] {
            q.add(key);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(get(&q).await, "a");
        assert_eq!(get(&q).await, "b");
        assert_eq!(get(&q).await, "c");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_not_handed_out_again_until_done() {
        let q = WorkQueue::new("test", RateLimiter::default());
        q.add("a");
        assert_eq!(get(&q).await, "a");
        // Added twice while running: not handed out, and queued once afterwards.
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(get(&q).await, "b");
        assert!(
            tokio::time::timeout(Duration::from_secs(1), q.get())
                .await
                .is_err(),
            "a key ran twice at once"
        );
        q.done("a");
        assert_eq!(get(&q).await, "a");
        q.done("a");
        q.done("b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_workers_never_share_a_key() {
        let q = WorkQueue::new("test", RateLimiter::default());
        let running = Arc::new(Mutex::new(HashSet::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (q, running, runs) = (q.clone(), running.clone(), runs.clone());
            workers.spawn(async move {
                while let Some(key) = q.get().await {
                    assert!(
                        running.lock().insert(key.clone()),
                        "{key} ran twice at once"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    running.lock().remove(&key);
                    runs.fetch_add(1, Ordering::SeqCst);
                    q.done(&key);
                }
            });
        }
        for round in 0..20 {
            q.add(&format!("k{}", round % 3));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.shut_down();
        while let Some(r) = workers.join_next().await {
            r.unwrap();
        }
        let runs = runs.load(Ordering::SeqCst);
        assert!((3..20).contains(&runs), "{runs} runs");
    }

    #[test]
    fn backoff_doubles_from_5ms_to_1000s_and_forget_resets_it() {
        let mut limiter = RateLimiter::new(DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, 1e9, 1_000_000);
        let now = Instant::now();
        let delays: Vec<Duration> = (0..20).map(|_| limiter.when("a", now)).collect();
        assert_eq!(delays[0], Duration::from_millis(5));
        assert_eq!(delays[1], Duration::from_millis(10));
        assert_eq!(delays[10], Duration::from_millis(5 * 1024));
        assert_eq!(delays[17], Duration::from_millis(5 << 17));
        assert_eq!(delays[18], Duration::from_secs(1000));
        assert_eq!(limiter.when("a", now), Duration::from_secs(1000));
        assert_eq!(limiter.failures("a"), 21);
        // Keys back off independently.
        assert_eq!(limiter.when("b", now), Duration::from_millis(5));
        limiter.forget("a");
        assert_eq!(limiter.failures("a"), 0);
        assert_eq!(limiter.when("a", now), Duration::from_millis(5));
        // The exponent never overflows.
        for _ in 0..100 {
            limiter.when("c", now);
        }
        assert_eq!(limiter.when("c", now), Duration::from_secs(1000));
    }

    #[test]
    fn token_bucket_limits_retries_overall() {
        let mut limiter = RateLimiter::default();
        let now = Instant::now();
        // The burst of 100 goes at each key's own backoff...
        for i in 0..100 {
            assert_eq!(limiter.when(&format!("k{i}"), now), DEFAULT_BASE_DELAY);
        }
        // ...then one more per 100 ms (10 qps), whatever the key.
        assert_eq!(limiter.when("x", now), Duration::from_millis(100));
        assert_eq!(limiter.when("y", now), Duration::from_millis(200));
        // Refilled over time, up to the burst.
        let later = now + Duration::from_secs(60);
        assert_eq!(limiter.when("z", later), DEFAULT_BASE_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_and_rate_limited_adds() {
        let q = WorkQueue::new(
            "test",
            RateLimiter::new(Duration::from_secs(1), Duration::from_secs(60), 100.0, 100),
        );
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(2)); // the earlier delay wins
        q.add_after("a", Duration::from_secs(5)); // already covered by the 2 s one
        assert!(q.is_empty());
        assert_eq!(get(&q).await, "a");
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        q.done("a");
        // The superseded timers do not add it again.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(q.is_empty());

        // Failures back off 1 s, 2 s, 4 s; success resets.
        for expected in [1, 2, 4] {
            let t = Instant::now();
            q.add_rate_limited("b");
            assert_eq!(get(&q).await, "b");
            assert_eq!(t.elapsed(), Duration::from_secs(expected));
            q.done("b");
        }
        assert_eq!(q.requeues("b"), 3);
        q.forget("b");
        let t = Instant::now();
        q.add_rate_limited("b");
        assert_eq!(get(&q).await, "b");
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn shut_down_releases_workers() {
        let q = WorkQueue::new("test", RateLimiter::default());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.add_after("late", Duration::from_secs(1));
        q.shut_down();
        let got = tokio::time::timeout(LIVENESS, waiter)
            .await
            .expect("likely deadlocked")
            .unwrap();
        assert_eq!(got, None);
        q.add("a");
        assert_eq!(q.get().await, None);
    }
}
