//! The revision engine shared by the embedded backends: one writer assigns revisions, a group-commit thread makes them durable and publishes them, readers see only durable revisions.
//!
//! Write path: validate → queue the request → the commit thread takes every queued request,
//! compares each against the in-memory [`Index`], appends the record to the [`Log`] and updates
//! the index → one sync for the whole batch (group commit) → publish the new durable revision,
//! which is what readers read at → events to the watch hub → answer the writers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::oneshot;

use crate::error::show_key;
use crate::index::{Index, Version};
use crate::log::{Log, Meta};
use crate::record::Record;
use crate::watch::{Hub, Item, Subscription, WatchSource, Watcher};
use crate::{
    Backend, Error, Event, EventKind, KeyValue, MAX_KEY_BYTES, MAX_RANGE_LIMIT, MAX_VALUE_BYTES,
    RangeRequest, RangeResponse, Result, Revision, Stats, WatchMessage, WatchStart, WriteOutcome,
};

/// Keys visited per compaction step; the index lock is released between steps.
const COMPACT_BATCH: usize = 1000;
/// Records read per step when replaying history to a watcher or recovering the index.
const REPLAY_BATCH: usize = 512;
/// Ranges larger than this read their values on the blocking pool...
const BLOCKING_RANGE: usize = 256;
/// ...and ranges larger than this with two threads.
const PARALLEL_RANGE: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub history_window: Duration,
    pub history_min_revisions: u64,
    pub maintenance_interval: Duration,
    pub watch_buffer: usize,
}

pub(crate) struct Engine<L: Log> {
    inner: Arc<Inner<L>>,
    commit_thread: Mutex<Option<JoinHandle<()>>>,
}

struct Inner<L: Log> {
    log: L,
    index: RwLock<Index>,
    /// Writes waiting for the commit thread.
    queue: Mutex<Queue>,
    /// Signalled when a write is queued or the store closes.
    queued: Condvar,
    /// Held while the log changes or syncs: by the commit thread for a whole batch, by
    /// compaction for one step. No log write ever overlaps a sync.
    log_lock: Mutex<()>,
    /// The newest durable revision: what readers read at.
    durable: AtomicU64,
    compact_revision: AtomicU64,
    /// Serialises compactions.
    compacting: tokio::sync::Mutex<()>,
    hub: Hub,
    expiries: Mutex<BinaryHeap<Reverse<(u64, Revision, Bytes)>>>,
    closing: AtomicBool,
    opts: Options,
}

#[derive(Default)]
struct Queue {
    requests: Vec<Request>,
    closed: bool,
    /// Why the commit thread stopped, if it failed.
    failure: Option<Arc<str>>,
}

/// One conditional write, answered once it is durable.
struct Request {
    key: Bytes,
    value: Bytes,
    op: Op,
    ttl: Option<Duration>,
    reply: oneshot::Sender<Result<WriteOutcome>>,
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Update(Revision),
    Delete(Option<Revision>),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            limit: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

fn check_value(key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge {
            key: show_key(key),
            len: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    if ttl.is_some_and(|t| t < Duration::from_secs(1)) {
        return Err(Error::InvalidTtl { key: show_key(key) });
    }
    Ok(())
}

impl<L: Log> Engine<L> {
    /// Recover the index from the log and start the commit thread and background maintenance.
    pub fn open(log: L, opts: Options) -> Result<Self> {
        let meta = log.load_meta()?;
        let mut index = Index::default();
        let mut expiries = BinaryHeap::new();
        let mut last = 0;
        let mut next = 1;
        loop {
            let batch = log.read_range(next, Revision::MAX, REPLAY_BATCH)?;
            let Some(tail) = batch.last() else { break };
            next = tail.revision + 1;
            for record in batch {
                index.push(
                    &record.key,
                    Version {
                        revision: record.revision,
                        tombstone: record.is_tombstone(),
                    },
                );
                if record.expires_at_ms > 0 && !record.is_tombstone() {
                    expiries.push(Reverse((
                        record.expires_at_ms,
                        record.revision,
                        record.key.clone(),
                    )));
                }
                last = record.revision;
            }
        }
        // Compaction may have removed the newest record (a tombstone), so the compact revision
        // is a floor for the counter too: revisions are never reused.
        let revision = last.max(meta.compact_revision);
        tracing::debug!(
            revision,
            keys = index.key_count(),
            compact_revision = meta.compact_revision,
            "store recovered"
        );
        let inner = Arc::new(Inner {
            log,
            index: RwLock::new(index),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            log_lock: Mutex::new(()),
            durable: AtomicU64::new(revision),
            compact_revision: AtomicU64::new(meta.compact_revision),
            compacting: tokio::sync::Mutex::new(()),
            hub: Hub::new(revision, opts.watch_buffer),
            expiries: Mutex::new(expiries),
            closing: AtomicBool::new(false),
            opts,
        });
        let thread_inner = inner.clone();
        let commit_thread = std::thread::Builder::new()
            .name("k1s-store-commit".into())
            .spawn(move || thread_inner.commit_loop(revision))
            .map_err(|e| Error::storage("starting the commit thread", e))?;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(maintenance(Arc::downgrade(&inner)));
        }
        Ok(Engine {
            inner,
            commit_thread: Mutex::new(Some(commit_thread)),
        })
    }

    /// Refuse new writes, commit the queued ones, stop the commit thread and end every watch.
    fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.queue.lock().closed = true;
        self.inner.queued.notify_all();
        if let Some(thread) = self.commit_thread.lock().take() {
            let _ = thread.join();
        }
        self.inner.hub.close();
    }
}

impl<L: Log> Drop for Engine<L> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl<L: Log> Inner<L> {
    fn current(&self) -> Revision {
        self.durable.load(Ordering::Acquire)
    }

    /// Queue a write and wait until it is durable (or refused).
    async fn write(
        &self,
        key: &[u8],
        value: Bytes,
        op: Op,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome> {
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = self.queue.lock();
            if queue.closed {
                return Err(match &queue.failure {
                    Some(reason) => Error::Storage {
                        action: "committing a write",
                        source: reason.to_string().into(),
                    },
                    None => Error::Closed,
                });
            }
            queue.requests.push(Request {
                key: Bytes::copy_from_slice(key),
                value,
                op,
                ttl,
                reply,
            });
        }
        self.queued.notify_one();
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The single writer. Each round takes every queued write, applies them in order (compare,
    /// append, index), syncs the log once for all of them (group commit), hands their events to
    /// the watch hub, publishes the new durable revision and only then answers the writers.
    ///
    /// Appends never overlap a sync: a sync point is always a completely flushed log. (With
    /// appends racing the sync, a power cut could keep a log page that points at a sled blob
    /// file written after the blobs were synced, which sled cannot recover from.) Writers that
    /// arrive during a sync wait in the queue and share the next one. Writers never hold a lock
    /// across a sync, so async tasks never block on one.
    fn commit_loop(&self, mut last_revision: Revision) {
        loop {
            let batch = {
                let mut queue = self.queue.lock();
                while queue.requests.is_empty() && !queue.closed {
                    self.queued.wait(&mut queue);
                }
                if queue.requests.is_empty() {
                    return; // closed, and everything queued was committed
                }
                std::mem::take(&mut queue.requests)
            };
            let log_guard = self.log_lock.lock();
            let mut events = Vec::new();
            let mut answers = Vec::with_capacity(batch.len());
            for request in batch {
                let result = self.apply(&request, last_revision + 1, &mut events);
                if let Ok(WriteOutcome::Committed { revision, .. }) = &result {
                    last_revision = *revision;
                }
                answers.push((request.reply, result));
            }
            if let Err(e) = self.log.sync() {
                drop(log_guard);
                tracing::error!(error = %e, "store sync failed; refusing further writes");
                let failure: Arc<str> = e.to_string().into();
                let mut queue = self.queue.lock();
                queue.closed = true;
                queue.failure = Some(failure.clone());
                for (reply, _) in answers {
                    let _ = reply.send(Err(Error::Storage {
                        action: "committing a write",
                        source: failure.to_string().into(),
                    }));
                }
                return;
            }
            drop(log_guard);
            // Readers first, then watchers: an event is never seen before its revision is
            // readable.
            self.durable.store(last_revision, Ordering::Release);
            self.hub.dispatch(&events, last_revision);
            for (reply, result) in answers {
                let _ = reply.send(result); // the writer may have gone away
            }
        }
    }

    /// Apply one write at `revision` if its precondition holds (on the commit thread, with the
    /// log lock held).
    fn apply(
        &self,
        request: &Request,
        revision: Revision,
        events: &mut Vec<Arc<Event>>,
    ) -> Result<WriteOutcome> {
        let key = &request.key;
        let live = self
            .index
            .read()
            .latest(key)
            .filter(|v| !v.tombstone)
            .map(|v| v.revision);
        let holds = match request.op {
            Op::Create => live.is_none(),
            Op::Update(expected) => live == Some(expected),
            Op::Delete(expected) => live.is_some() && expected.is_none_or(|e| live == Some(e)),
        };
        let prev = live.map(|r| self.read_record(r, r)).transpose()?;
        if !holds {
            return Ok(WriteOutcome::Conflict {
                current: prev.map(|r| r.to_kv()),
            });
        }
        let record = match request.op {
            Op::Create | Op::Update(_) => Record {
                revision,
                kind: EventKind::Put,
                key: key.clone(),
                value: request.value.clone(),
                create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                version: prev.as_ref().map_or(1, |p| p.version + 1),
                prev_revision: live.unwrap_or(0),
                expires_at_ms: request.ttl.map_or(0, |t| now_ms() + t.as_millis() as u64),
            },
            Op::Delete(_) => Record {
                revision,
                kind: EventKind::Delete,
                key: key.clone(),
                value: Bytes::new(),
                create_revision: 0,
                version: 0,
                prev_revision: live.unwrap_or(0),
                expires_at_ms: 0,
            },
        };
        self.log.append(&record)?;
        self.index.write().push(
            key,
            Version {
                revision,
                tombstone: record.is_tombstone(),
            },
        );
        if record.expires_at_ms > 0 {
            self.expiries
                .lock()
                .push(Reverse((record.expires_at_ms, revision, key.clone())));
        }
        let prev_kv = prev.map(|p| p.to_kv());
        let kv = match request.op {
            Op::Delete(_) => prev_kv.clone().expect("a delete has a previous version"),
            _ => record.to_kv(),
        };
        events.push(Arc::new(Event {
            kind: record.kind,
            kv: record.to_kv(),
            prev: prev_kv.clone(),
        }));
        Ok(WriteOutcome::Committed {
            revision,
            kv,
            prev: prev_kv,
        })
    }

    fn read_record(&self, revision: Revision, at: Revision) -> Result<Record> {
        match self.log.read(revision)? {
            Some(record) => Ok(record),
            None => Err(self.missing(revision, at)),
        }
    }

    /// A record the index pointed at is gone: compaction raced the read, or the data is damaged.
    fn missing(&self, revision: Revision, at: Revision) -> Error {
        let compacted = self.compact_revision.load(Ordering::Acquire);
        if at < compacted {
            Error::Compacted {
                requested: at,
                compacted,
            }
        } else {
            Error::Corrupt {
                revision,
                reason: "record referenced by the index is missing".into(),
            }
        }
    }

    fn read_revision(&self, requested: Option<Revision>) -> Result<Revision> {
        let current = self.current();
        let at = requested.unwrap_or(current);
        if at > current {
            return Err(Error::FutureRevision {
                requested: at,
                current,
            });
        }
        let compacted = self.compact_revision.load(Ordering::Acquire);
        if at < compacted {
            return Err(Error::Compacted {
                requested: at,
                compacted,
            });
        }
        Ok(at)
    }

    /// Fetch the records of a range page. Large pages are read by two threads: point reads
    /// from sled's cache are CPU-bound, and a 10,000-key list should not take one core's time.
    fn read_page(&self, at: Revision, page: &[(Bytes, Revision)]) -> Result<Vec<KeyValue>> {
        let read = |part: &[(Bytes, Revision)]| -> Result<Vec<KeyValue>> {
            part.iter()
                .map(|(_, rev)| self.read_record(*rev, at).map(|r| r.to_kv()))
                .collect()
        };
        if page.len() < PARALLEL_RANGE {
            return read(page);
        }
        let (first, second) = page.split_at(page.len() / 2);
        let (kvs, rest) = std::thread::scope(|scope| {
            let helper = scope.spawn(|| read(second));
            let mine = read(first);
            (
                mine,
                helper.join().unwrap_or_else(|_| {
                    Err(Error::storage(
                        "reading a range",
                        std::io::Error::other("reader thread panicked"),
                    ))
                }),
            )
        });
        let mut kvs = kvs?;
        kvs.extend(rest?);
        Ok(kvs)
    }

    /// Delete every TTL'd key whose time has come (each one only if not rewritten since).
    async fn expire_due(self: &Arc<Self>) -> Result<()> {
        let now = now_ms();
        loop {
            let due = {
                let mut heap = self.expiries.lock();
                match heap.peek() {
                    Some(Reverse((at, _, _))) if *at <= now => heap.pop().map(|Reverse(e)| e),
                    _ => None,
                }
            };
            let Some((_, revision, key)) = due else {
                return Ok(());
            };
            let outcome = self
                .write(&key, Bytes::new(), Op::Delete(Some(revision)), None)
                .await?;
            if matches!(outcome, WriteOutcome::Committed { .. }) {
                tracing::debug!(key = %show_key(&key), "ttl expired");
            }
        }
    }

    /// Drop history before `revision`: first make it unreachable (durably), then remove the
    /// superseded records in bounded batches.
    async fn compact(self: &Arc<Self>, revision: Revision) -> Result<()> {
        let _serial = self.compacting.lock().await;
        let current = self.current();
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        let compacted = self.compact_revision.load(Ordering::Acquire);
        if revision <= compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted,
            });
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            {
                let _log = this.log_lock.lock();
                this.log.store_meta(Meta {
                    compact_revision: revision,
                })?;
            }
            this.compact_revision.store(revision, Ordering::Release);
            let mut cursor = None;
            let mut removed = 0usize;
            loop {
                // Under the log lock, like every other change to the log, so that no log write
                // overlaps a sync; one batch at a time keeps the pause short.
                let _log = this.log_lock.lock();
                let (dropped, next) =
                    this.index
                        .write()
                        .compact_batch(revision, cursor.as_ref(), COMPACT_BATCH);
                removed += dropped.len();
                this.log.remove(&dropped)?;
                match next {
                    Some(key) => cursor = Some(key),
                    None => break,
                }
            }
            tracing::debug!(revision, removed, "store compacted");
            Ok(())
        })
        .await
        .map_err(|e| Error::storage("running compaction", e))?
    }
}

/// Background work: TTL expiry and history compaction by window and minimum revision count.
async fn maintenance<L: Log>(inner: std::sync::Weak<Inner<L>>) {
    let interval = match inner.upgrade() {
        Some(i) => i.opts.maintenance_interval,
        None => return,
    };
    let tick = interval.min(Duration::from_secs(1));
    let mut samples: VecDeque<(Instant, Revision)> = VecDeque::new();
    let mut last_compact_check = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closing.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = inner.expire_due().await {
            tracing::warn!(error = %e, "ttl expiry failed");
        }
        if last_compact_check.elapsed() < interval {
            continue;
        }
        last_compact_check = Instant::now();
        let now = Instant::now();
        let current = inner.current();
        samples.push_back((now, current));
        // The newest revision that is both older than the window and more than the minimum
        // number of revisions behind.
        let mut by_age = None;
        while let Some(&(at, rev)) = samples.front() {
            if now.duration_since(at) >= inner.opts.history_window {
                by_age = Some(rev);
                samples.pop_front();
            } else {
                break;
            }
        }
        if let Some(rev) = by_age {
            // Keep the sample: it bounds the next window too.
            samples.push_front((now - inner.opts.history_window, rev));
            let target = rev.min(current.saturating_sub(inner.opts.history_min_revisions));
            if target > inner.compact_revision.load(Ordering::Acquire)
                && let Err(e) = inner.compact(target).await
            {
                tracing::warn!(error = %e, revision = target, "background compaction failed");
            }
        }
    }
}

#[async_trait]
impl<L: Log> Backend for Engine<L> {
    async fn get(
        &self,
        key: &[u8],
        revision: Option<Revision>,
    ) -> Result<(Revision, Option<KeyValue>)> {
        check_key(key)?;
        let at = self.inner.read_revision(revision)?;
        let found = self.inner.index.read().live_at(key, at);
        let kv = found
            .map(|rev| self.inner.read_record(rev, at).map(|r| r.to_kv()))
            .transpose()?;
        Ok((at, kv))
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        if req.limit > MAX_RANGE_LIMIT {
            return Err(Error::LimitTooLarge {
                limit: req.limit,
                max: MAX_RANGE_LIMIT,
            });
        }
        let at = self.inner.read_revision(req.revision)?;
        let (page, remaining) =
            self.inner
                .index
                .read()
                .range(&req.prefix, req.start_after.as_deref(), at, req.limit);
        let count = page.len() as u64 + remaining;
        if req.count_only {
            return Ok(RangeResponse {
                kvs: Vec::new(),
                revision: at,
                remaining: 0,
                count,
            });
        }
        let kvs = if page.len() > BLOCKING_RANGE {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || inner.read_page(at, &page))
                .await
                .map_err(|e| Error::storage("reading a range", e))??
        } else {
            self.inner.read_page(at, &page)?
        };
        Ok(RangeResponse {
            kvs,
            revision: at,
            remaining,
            count,
        })
    }

    async fn create(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome> {
        check_key(key)?;
        check_value(key, &value, ttl)?;
        self.inner.write(key, value, Op::Create, ttl).await
    }

    async fn update(
        &self,
        key: &[u8],
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome> {
        check_key(key)?;
        check_value(key, &value, ttl)?;
        self.inner
            .write(key, value, Op::Update(expected), ttl)
            .await
    }

    async fn delete(&self, key: &[u8], expected: Option<Revision>) -> Result<WriteOutcome> {
        check_key(key)?;
        self.inner
            .write(key, Bytes::new(), Op::Delete(expected), None)
            .await
    }

    async fn watch(&self, prefix: &[u8], start: WatchStart) -> Result<Watcher> {
        let sub = self.inner.hub.subscribe(Bytes::copy_from_slice(prefix))?;
        let after = match start {
            // The durable revision is published before its events are dispatched, so it is at
            // or past the subscription point: nothing to replay, and nothing already readable
            // will be delivered.
            WatchStart::Now => self.inner.current().max(sub.from),
            WatchStart::After(rev) => {
                let compacted = self.inner.compact_revision.load(Ordering::Acquire);
                if rev < compacted {
                    self.inner.hub.unsubscribe(sub.id);
                    return Err(Error::Compacted {
                        requested: rev,
                        compacted,
                    });
                }
                rev
            }
        };
        Ok(Watcher::new(Box::new(EngineWatch {
            inner: self.inner.clone(),
            prefix: Bytes::copy_from_slice(prefix),
            replay_next: after + 1,
            replay_end: sub.from,
            last: after,
            buffer: VecDeque::new(),
            sub,
        })))
    }

    fn current_revision(&self) -> Revision {
        self.inner.current()
    }

    fn compact_revision(&self) -> Revision {
        self.inner.compact_revision.load(Ordering::Acquire)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn close(&self) -> Result<()> {
        self.shutdown();
        Ok(())
    }

    fn stats(&self) -> Stats {
        Stats {
            revision: self.inner.current(),
            compact_revision: self.inner.compact_revision.load(Ordering::Acquire),
            keys: self.inner.index.read().key_count() as u64,
            watchers: self.inner.hub.watcher_count() as u64,
            disk_bytes: self.inner.log.disk_bytes(),
        }
    }
}

/// A watch on the embedded engine: replays history up to the revision it subscribed at, then
/// follows its live channel, dropping anything it already replayed.
struct EngineWatch<L: Log> {
    inner: Arc<Inner<L>>,
    prefix: Bytes,
    sub: Subscription,
    /// Next revision to replay from the log, while `replay_next <= replay_end`.
    replay_next: Revision,
    replay_end: Revision,
    /// The newest revision delivered.
    last: Revision,
    buffer: VecDeque<Arc<Event>>,
}

impl<L: Log> EngineWatch<L> {
    fn replay_batch(&mut self) -> Result<()> {
        let records = self
            .inner
            .log
            .read_range(self.replay_next, self.replay_end, REPLAY_BATCH)?;
        let compacted = self.inner.compact_revision.load(Ordering::Acquire);
        if compacted >= self.replay_next {
            // History we still had to send was compacted under us.
            return Err(Error::Compacted {
                requested: self.replay_next - 1,
                compacted,
            });
        }
        self.replay_next = records
            .last()
            .map_or(self.replay_end + 1, |r| r.revision + 1);
        for record in records
            .into_iter()
            .filter(|r| r.key.starts_with(&self.prefix))
        {
            let prev = match record.prev_revision {
                0 => None,
                r => Some(self.inner.read_record(r, record.revision - 1)?.to_kv()),
            };
            self.buffer.push_back(Arc::new(Event {
                kind: record.kind,
                kv: record.to_kv(),
                prev,
            }));
        }
        Ok(())
    }
}

#[async_trait]
impl<L: Log> WatchSource for EngineWatch<L> {
    async fn next(&mut self) -> Result<WatchMessage> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.last = event.revision();
                return Ok(WatchMessage::Event(event));
            }
            if self.replay_next <= self.replay_end {
                self.replay_batch()?;
                continue;
            }
            match self.sub.rx.recv().await {
                Some(Item::Event(event)) if event.revision() <= self.last => continue,
                Some(Item::Event(event)) => {
                    self.last = event.revision();
                    return Ok(WatchMessage::Event(event));
                }
                Some(Item::Progress(rev)) => return Ok(WatchMessage::Progress(rev.max(self.last))),
                None if self.sub.lagged.load(Ordering::Acquire) => {
                    return Err(Error::Lagged {
                        last_revision: self.last,
                    });
                }
                None => return Err(Error::Closed),
            }
        }
    }

    fn request_progress(&self) {
        self.inner.hub.request_progress(self.sub.id);
    }
}

impl<L: Log> Drop for EngineWatch<L> {
    fn drop(&mut self) {
        self.inner.hub.unsubscribe(self.sub.id);
    }
}
