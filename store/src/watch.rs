//! Watch fan-out: the hub that hands committed events to every matching watcher without ever blocking the writer.
//!
//! Each watcher owns a bounded channel. The commit thread dispatches events in revision order
//! with `try_send`; a watcher whose channel is full is dropped from the hub and ends with
//! [`Error::Lagged`], carrying the last revision it received so its consumer can resume (from
//! history) without a gap. Writers and other watchers never wait for a slow consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{Error, Event, Result, Revision, WatchMessage};

/// What a backend's watch implementation provides; [`Watcher`] wraps it.
#[async_trait]
pub(crate) trait WatchSource: Send {
    async fn next(&mut self) -> Result<WatchMessage>;
    fn request_progress(&self);
}

/// A stream of changes under a prefix, in revision order, without gaps or duplicates.
pub struct Watcher {
    source: Box<dyn WatchSource>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

impl Watcher {
    pub(crate) fn new(source: Box<dyn WatchSource>) -> Self {
        Watcher { source }
    }

    /// The next event or progress notification. Ends with [`Error::Lagged`] if this watcher fell
    /// too far behind, [`Error::Compacted`] if the history it still had to replay was compacted
    /// away, or [`Error::Closed`] when the store shuts down.
    pub async fn next(&mut self) -> Result<WatchMessage> {
        self.source.next().await
    }

    /// Ask for a [`WatchMessage::Progress`] carrying the newest revision this watcher is
    /// guaranteed to have seen every matching event up to. Delivered after the events before it.
    pub fn request_progress(&self) {
        self.source.request_progress()
    }
}

pub(crate) enum Item {
    Event(Arc<Event>),
    Progress(Revision),
}

struct Slot {
    id: u64,
    prefix: Bytes,
    tx: mpsc::Sender<Item>,
    lagged: Arc<AtomicBool>,
}

struct HubState {
    /// Every event up to this revision has been offered to the registered watchers.
    dispatched: Revision,
    next_id: u64,
    slots: Vec<Slot>,
    closed: bool,
}

pub(crate) struct Hub {
    state: Mutex<HubState>,
    capacity: usize,
}

/// A watcher's live feed from the hub.
pub(crate) struct Subscription {
    pub id: u64,
    pub rx: mpsc::Receiver<Item>,
    pub lagged: Arc<AtomicBool>,
    /// Events after this revision arrive on `rx`; the ones at or before it come from history.
    pub from: Revision,
}

impl Hub {
    pub fn new(dispatched: Revision, capacity: usize) -> Self {
        Hub {
            state: Mutex::new(HubState {
                dispatched,
                next_id: 0,
                slots: Vec::new(),
                closed: false,
            }),
            capacity,
        }
    }

    pub fn subscribe(&self, prefix: Bytes) -> Result<Subscription> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        state.next_id += 1;
        let id = state.next_id;
        state.slots.push(Slot {
            id,
            prefix,
            tx,
            lagged: lagged.clone(),
        });
        Ok(Subscription {
            id,
            rx,
            lagged,
            from: state.dispatched,
        })
    }

    pub fn unsubscribe(&self, id: u64) {
        self.state.lock().slots.retain(|s| s.id != id);
    }

    /// Offer `events` (in revision order, all at or below `up_to`) to every matching watcher.
    pub fn dispatch(&self, events: &[Arc<Event>], up_to: Revision) {
        let mut state = self.state.lock();
        state.slots.retain(|slot| {
            for event in events.iter().filter(|e| e.kv.key.starts_with(&slot.prefix)) {
                match slot.tx.try_send(Item::Event(event.clone())) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        slot.lagged.store(true, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
        state.dispatched = state.dispatched.max(up_to);
    }

    /// Queue a progress notification for one watcher, behind every event already dispatched.
    pub fn request_progress(&self, id: u64) {
        let state = self.state.lock();
        if let Some(slot) = state.slots.iter().find(|s| s.id == id) {
            // A full channel means the watcher is about to lag anyway.
            let _ = slot.tx.try_send(Item::Progress(state.dispatched));
        }
    }

    pub fn watcher_count(&self) -> usize {
        self.state.lock().slots.len()
    }

    /// End every watch with [`Error::Closed`] and refuse new ones.
    pub fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.slots.clear();
    }
}
