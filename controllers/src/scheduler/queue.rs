//! The scheduling queue, as upstream's: an active queue ordered by priority then arrival, a backoff queue (1 s doubling to 10 s per failed attempt), and a pool of unschedulable pods moved back when the cluster changes in a way that may help (or after 5 minutes).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often (upstream's
/// `podMaxInUnschedulablePodsDuration`).
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq, Eq)]
struct Active {
    priority: i64,
    seq: u64,
    key: String,
}

impl Ord for Active {
    /// Higher priority first, then earlier arrival (a max-heap).
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Active {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What the queue remembers of a pod between attempts.
#[derive(Debug)]
struct Meta {
    priority: i64,
    /// Arrival order, kept across attempts (upstream's queue timestamp).
    seq: u64,
    attempts: u32,
    last_failure: Option<Instant>,
}

/// What kept a pod from fitting, so only cluster changes that may help retry it (a coarse
/// form of upstream's queueing hints).
pub mod hint {
    /// Node labels, taints, cordons, capacity, or no nodes at all.
    pub const NODE: u8 = 1;
    /// Resources or host ports: freed when a pod goes.
    pub const RESOURCES: u8 = 2;
    /// Required pod affinity: helped by a pod arriving.
    pub const POD_AFFINITY: u8 = 4;
    /// Pod anti-affinity (its own or existing pods'): helped by a pod leaving.
    pub const POD_ANTI_AFFINITY: u8 = 8;
    /// Topology spread: pods arriving or leaving.
    pub const SPREAD: u8 = 16;
    pub const ALL: u8 = u8::MAX;

    /// What a node change may help.
    pub const NODE_CHANGED: u8 = ALL;
    /// What a pod newly bound to a node may help.
    pub const POD_ADDED: u8 = POD_AFFINITY | SPREAD;
    /// What a pod leaving a node may help.
    pub const POD_DELETED: u8 = RESOURCES | POD_ANTI_AFFINITY | SPREAD;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant, u64),
    /// Since when, and the [`hint`]s of what kept it out.
    Unschedulable(Instant, u8),
    InFlight,
}

#[derive(Default)]
struct State {
    active: BinaryHeap<Active>,
    backoff: BTreeMap<(Instant, u64), String>,
    places: HashMap<String, Place>,
    /// The keys whose place is `Unschedulable` (so moves look only at them).
    parked: HashSet<String>,
    meta: HashMap<String, Meta>,
    /// Keys that changed while being scheduled: requeued at once if that attempt fails.
    touched: HashSet<String>,
    next_seq: u64,
    /// Scheduling cycles started, and the cycle of the last move request.
    cycle: u64,
    move_cycle: u64,
    closed: bool,
}

impl State {
    fn backoff_until(&self, key: &str) -> Option<Instant> {
        let meta = self.meta.get(key)?;
        let last = meta.last_failure?;
        let shift = meta.attempts.saturating_sub(1).min(16);
        let wait = INITIAL_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF);
        Some(last + wait)
    }

    fn push_active(&mut self, key: &str) {
        let meta = &self.meta[key];
        self.active.push(Active {
            priority: meta.priority,
            seq: meta.seq,
            key: key.to_string(),
        });
        self.places.insert(key.to_string(), Place::Active);
    }

    /// Into the backoff queue if its backoff has not passed, else active.
    fn push_backoff_or_active(&mut self, key: &str, now: Instant) {
        match self.backoff_until(key) {
            Some(until) if until > now => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.backoff.insert((until, seq), key.to_string());
                self.places
                    .insert(key.to_string(), Place::Backoff(until, seq));
            }
            _ => self.push_active(key),
        }
    }

    /// Take `key` out of wherever it waits (the active heap drops stale entries lazily).
    fn unplace(&mut self, key: &str) -> Option<Place> {
        let place = self.places.remove(key)?;
        match place {
            Place::Backoff(until, seq) => {
                self.backoff.remove(&(until, seq));
            }
            Place::Unschedulable(..) => {
                self.parked.remove(key);
            }
            Place::Active | Place::InFlight => {}
        }
        Some(place)
    }

    /// Move parked keys matching `pick` to backoff or active; how many moved.
    fn unpark(&mut self, now: Instant, pick: impl Fn(&Place) -> bool) -> usize {
        let moving: Vec<String> = self
            .parked
            .iter()
            .filter(|k| self.places.get(*k).is_some_and(&pick))
            .cloned()
            .collect();
        for key in &moving {
            self.unplace(key);
            self.push_backoff_or_active(key, now);
        }
        moving.len()
    }

    fn flush_backoff(&mut self, now: Instant) {
        while let Some(entry) = self.backoff.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.places.remove(&key);
            self.push_active(&key);
        }
    }
}

/// The queue of pods waiting for a node.
#[derive(Default)]
pub struct SchedulingQueue {
    state: Mutex<State>,
    wake: Notify,
}

impl SchedulingQueue {
    /// A pod to schedule, new or changed. A changed pod waiting as unschedulable is retried
    /// (after its backoff); one being scheduled is retried if that attempt fails.
    pub fn add(&self, key: &str, priority: i64) {
        let mut s = self.state.lock();
        let now = Instant::now();
        if !s.meta.contains_key(key) {
            let seq = s.next_seq;
            s.next_seq += 1;
            s.meta.insert(
                key.to_string(),
                Meta {
                    priority,
                    seq,
                    attempts: 0,
                    last_failure: None,
                },
            );
        } else if let Some(meta) = s.meta.get_mut(key) {
            meta.priority = priority;
        }
        match s.places.get(key).copied() {
            None => s.push_active(key),
            Some(Place::InFlight) => {
                s.touched.insert(key.to_string());
            }
            Some(Place::Unschedulable(..)) => {
                s.unplace(key);
                s.push_backoff_or_active(key, now);
            }
            Some(Place::Active | Place::Backoff(..)) => {}
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Forget a pod (deleted, bound by someone else, or no longer ours).
    pub fn remove(&self, key: &str) {
        let mut s = self.state.lock();
        s.unplace(key);
        s.meta.remove(key);
        s.touched.remove(key);
    }

    /// The next pod to schedule and its scheduling cycle; waits for one. `None` once closed.
    pub async fn pop(&self) -> Option<(String, u64)> {
        loop {
            let notified = self.wake.notified();
            let next_backoff = {
                let mut s = self.state.lock();
                if s.closed {
                    return None;
                }
                let now = Instant::now();
                s.flush_backoff(now);
                while let Some(top) = s.active.pop() {
                    // Entries whose key was removed or moved since are stale.
                    if s.places.get(&top.key) == Some(&Place::Active) {
                        s.places.insert(top.key.clone(), Place::InFlight);
                        s.cycle += 1;
                        return Some((top.key, s.cycle));
                    }
                }
                s.backoff.keys().next().map(|(until, _)| *until)
            };
            let deadline = next_backoff.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// A pod that was scheduled (or dropped): forget its attempts.
    pub fn done(&self, key: &str) {
        let mut s = self.state.lock();
        if s.places.get(key) == Some(&Place::InFlight) {
            s.places.remove(key);
            s.meta.remove(key);
        }
        s.touched.remove(key);
    }

    /// A pod no node fits in attempt `cycle`: it waits for a cluster change, unless one
    /// happened while it was being scheduled (then it backs off and retries).
    pub fn unschedulable(&self, key: &str, cycle: u64, hints: u8) {
        let mut s = self.state.lock();
        if s.places.get(key) != Some(&Place::InFlight) {
            return;
        }
        let now = Instant::now();
        if let Some(meta) = s.meta.get_mut(key) {
            meta.attempts += 1;
            meta.last_failure = Some(now);
        }
        s.places.remove(key);
        let touched = s.touched.remove(key);
        if touched || s.move_cycle >= cycle {
            s.push_backoff_or_active(key, now);
        } else {
            s.places
                .insert(key.to_string(), Place::Unschedulable(now, hints));
            s.parked.insert(key.to_string());
        }
        drop(s);
        self.wake.notify_one();
    }

    /// A pod whose attempt failed for another reason (a failed bind, an API error): it
    /// retries after its backoff. Also for a pod bound elsewhere meanwhile (then `remove`
    /// follows from the informer).
    pub fn retry(&self, key: &str) {
        let mut s = self.state.lock();
        if !s.meta.contains_key(key) {
            return;
        }
        let now = Instant::now();
        if let Some(meta) = s.meta.get_mut(key) {
            meta.attempts += 1;
            meta.last_failure = Some(now);
        }
        s.unplace(key);
        s.touched.remove(key);
        s.push_backoff_or_active(key, now);
        drop(s);
        self.wake.notify_one();
    }

    /// The cluster changed in a way that may help the pods kept out for one of `hints`: they
    /// retry (after their backoff), and pods being scheduled now retry if they fail.
    pub fn move_all(&self, hints: u8) {
        let mut s = self.state.lock();
        s.move_cycle = s.cycle;
        if s.parked.is_empty() {
            return;
        }
        let now = Instant::now();
        let moved = s.unpark(
            now,
            |p| matches!(p, Place::Unschedulable(_, h) if h & hints != 0),
        );
        drop(s);
        if moved > 0 {
            self.wake.notify_one();
        }
    }

    /// Retry the pods unschedulable for longer than [`MAX_UNSCHEDULABLE`].
    pub fn flush_stale(&self) {
        let mut s = self.state.lock();
        let now = Instant::now();
        let moved = s.unpark(
            now,
            |p| matches!(p, Place::Unschedulable(since, _) if now - *since >= MAX_UNSCHEDULABLE),
        );
        drop(s);
        if moved > 0 {
            self.wake.notify_one();
        }
    }

    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Pods waiting: (active, backoff, unschedulable), for metrics and tests.
    pub fn lengths(&self) -> (usize, usize, usize) {
        let s = self.state.lock();
        let mut out = (0, 0, 0);
        for place in s.places.values() {
            match place {
                Place::Active => out.0 += 1,
                Place::Backoff(..) => out.1 += 1,
                Place::Unschedulable(..) => out.2 += 1,
                Place::InFlight => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pop(q: &SchedulingQueue) -> (String, u64) {
        tokio::time::timeout(Duration::from_secs(60), q.pop())
            .await
            .expect("a pod within a minute")
            .expect("queue open")
    }

    #[tokio::test(start_paused = true)]
    async fn priority_then_arrival() {
        let q = SchedulingQueue::default();
        q.add("ns/low", 0);
        q.add("ns/high", 100);
        q.add("ns/low2", 0);
        assert_eq!(pop(&q).await.0, "ns/high");
        assert_eq!(pop(&q).await.0, "ns/low");
        assert_eq!(pop(&q).await.0, "ns/low2");
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_waits_for_a_move_then_backs_off() {
        let q = SchedulingQueue::default();
        q.add("ns/p", 0);
        let (key, cycle) = pop(&q).await;
        q.unschedulable(&key, cycle, hint::ALL);
        assert_eq!(q.lengths(), (0, 0, 1));
        let start = Instant::now();
        q.move_all(hint::ALL);
        // First failure: 1 s of backoff.
        let (key, cycle) = pop(&q).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        q.unschedulable(&key, cycle, hint::ALL);
        q.move_all(hint::ALL);
        let start = Instant::now();
        let (key, cycle) = pop(&q).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        // A move during the attempt sends it to backoff rather than the pool.
        q.move_all(hint::ALL);
        q.unschedulable(&key, cycle, hint::ALL);
        assert_eq!(q.lengths(), (0, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn only_helpful_changes_move_a_pod() {
        let q = SchedulingQueue::default();
        q.add("ns/p", 0);
        let (key, cycle) = pop(&q).await;
        q.unschedulable(&key, cycle, hint::NODE);
        q.move_all(hint::POD_ADDED);
        assert_eq!(q.lengths(), (0, 0, 1));
        q.move_all(hint::NODE_CHANGED);
        assert_eq!(q.lengths(), (0, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_caps_at_ten_seconds() {
        let q = SchedulingQueue::default();
        q.add("ns/p", 0);
        for _ in 0..6 {
            let (key, _) = pop(&q).await;
            q.retry(&key);
        }
        let start = Instant::now();
        pop(&q).await;
        assert_eq!(Instant::now() - start, MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn updates_and_removals() {
        let q = SchedulingQueue::default();
        q.add("ns/a", 0);
        q.remove("ns/a");
        q.add("ns/b", 0);
        assert_eq!(pop(&q).await.0, "ns/b");
        // Changed while in flight, then unschedulable: retried rather than parked.
        q.add("ns/b", 0);
        q.unschedulable("ns/b", 1, hint::ALL);
        assert_eq!(q.lengths(), (0, 1, 0));
        q.remove("ns/b");
        q.add("ns/c", 0);
        let (key, cycle) = pop(&q).await;
        q.unschedulable(&key, cycle, hint::ALL);
        tokio::time::advance(MAX_UNSCHEDULABLE).await;
        q.flush_stale();
        assert_eq!(pop(&q).await.0, "ns/c");
    }
}
