//! The store conformance suite: etcd semantics with exact revision numbers, run against every backend.

use std::sync::Arc;
use std::time::Duration;

use k1s_store::{
    BackendConfig, Bytes, Config, Error, EventKind, RangeRequest, Revision, SledConfig, Store,
    WatchMessage, WatchStart, Watcher, WriteOutcome,
};
use tempfile::TempDir;
use tokio::time::timeout;

/// A backend under test, reopenable when it is durable.
struct Harness {
    dir: Option<TempDir>,
    watch_buffer: usize,
}

impl Harness {
    fn memory() -> Self {
        Harness {
            dir: None,
            watch_buffer: 10_000,
        }
    }

    fn sled() -> Self {
        Harness {
            dir: Some(tempfile::tempdir().unwrap()),
            watch_buffer: 10_000,
        }
    }

    fn durable(&self) -> bool {
        self.dir.is_some()
    }

    fn open(&self) -> Store {
        let backend = match &self.dir {
            None => BackendConfig::Memory,
            Some(dir) => BackendConfig::Sled(SledConfig::new(dir.path().join("data"))),
        };
        k1s_store::open(Config {
            backend,
            history_window: Duration::from_secs(3600),
            history_min_revisions: 1_000_000,
            maintenance_interval: Duration::from_millis(100),
            watch_buffer: self.watch_buffer,
        })
        .unwrap()
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn create(store: &Store, key: &str, value: &str) -> Revision {
    match store.create(key.as_bytes(), b(value), None).await.unwrap() {
        WriteOutcome::Committed { revision, .. } => revision,
        other => panic!("create {key} conflicted: {other:?}"),
    }
}

async fn update(store: &Store, key: &str, value: &str, expected: Revision) -> Revision {
    match store
        .update(key.as_bytes(), b(value), expected, None)
        .await
        .unwrap()
    {
        WriteOutcome::Committed { revision, .. } => revision,
        other => panic!("update {key} conflicted: {other:?}"),
    }
}

async fn delete(store: &Store, key: &str, expected: Option<Revision>) -> Revision {
    match store.delete(key.as_bytes(), expected).await.unwrap() {
        WriteOutcome::Committed { revision, .. } => revision,
        other => panic!("delete {key} conflicted: {other:?}"),
    }
}

async fn value_at(store: &Store, key: &str, at: Option<Revision>) -> Option<String> {
    let (_, kv) = store.get(key.as_bytes(), at).await.unwrap();
    kv.map(|kv| String::from_utf8(kv.value.to_vec()).unwrap())
}

/// The next event, as (kind, key, value, revision, previous value).
async fn next_event(w: &mut Watcher) -> (EventKind, String, String, Revision, Option<String>) {
    let msg = timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch stalled (likely deadlocked)")
        .unwrap();
    match msg {
        WatchMessage::Event(e) => (
            e.kind,
            String::from_utf8(e.kv.key.to_vec()).unwrap(),
            String::from_utf8(e.kv.value.to_vec()).unwrap(),
            e.revision(),
            e.prev
                .as_ref()
                .map(|p| String::from_utf8(p.value.to_vec()).unwrap()),
        ),
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn lifecycle_revisions(h: Harness) {
    let s = h.open();
    assert_eq!(s.current_revision(), 0);
    assert_eq!(create(&s, "/a", "1").await, 1);
    assert_eq!(create(&s, "/b", "1").await, 2);
    assert_eq!(update(&s, "/a", "2", 1).await, 3);
    let (rev, kv) = s.get(b"/a", None).await.unwrap();
    let kv = kv.unwrap();
    assert_eq!(
        (rev, kv.create_revision, kv.mod_revision, kv.version),
        (3, 1, 3, 2)
    );
    assert_eq!(value_at(&s, "/a", Some(1)).await.as_deref(), Some("1"));
    assert_eq!(value_at(&s, "/a", Some(2)).await.as_deref(), Some("1"));
    assert_eq!(delete(&s, "/a", Some(3)).await, 4);
    assert_eq!(value_at(&s, "/a", None).await, None);
    assert_eq!(value_at(&s, "/a", Some(3)).await.as_deref(), Some("2"));
    // Create after delete starts a new generation.
    assert_eq!(create(&s, "/a", "3").await, 5);
    let kv = s.get(b"/a", None).await.unwrap().1.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    assert_eq!(s.current_revision(), 5);
    assert!(matches!(
        s.get(b"/a", Some(6)).await,
        Err(Error::FutureRevision {
            requested: 6,
            current: 5
        })
    ));
}

async fn compare_failures_return_the_current_value(h: Harness) {
    let s = h.open();
    create(&s, "/k", "v1").await;
    let conflict = s.create(b"/k", b("again"), None).await.unwrap();
    let WriteOutcome::Conflict { current: Some(cur) } = conflict else {
        panic!("{conflict:?}")
    };
    assert_eq!((cur.mod_revision, &cur.value[..]), (1, &b"v1"[..]));
    let conflict = s.update(b"/k", b("v2"), 7, None).await.unwrap();
    assert!(
        matches!(conflict, WriteOutcome::Conflict { current: Some(ref c) } if c.mod_revision == 1)
    );
    assert!(matches!(
        s.update(b"/missing", b("x"), 1, None).await.unwrap(),
        WriteOutcome::Conflict { current: None }
    ));
    assert!(matches!(
        s.delete(b"/missing", None).await.unwrap(),
        WriteOutcome::Conflict { current: None }
    ));
    assert!(matches!(
        s.delete(b"/k", Some(9)).await.unwrap(),
        WriteOutcome::Conflict { current: Some(_) }
    ));
    // Nothing above consumed a revision.
    assert_eq!(s.current_revision(), 1);
    let WriteOutcome::Committed { revision, kv, prev } = s.delete(b"/k", Some(1)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (revision, kv.mod_revision, prev.unwrap().mod_revision),
        (2, 1, 1)
    );
}

async fn range_pages_are_consistent_at_the_first_pages_revision(h: Harness) {
    let s = h.open();
    for i in 0..5 {
        create(&s, &format!("/r/{i}"), "a").await; // revisions 1..=5
    }
    create(&s, "/s/x", "a").await; // 6
    update(&s, "/r/1", "b", 2).await; // 7
    delete(&s, "/r/2", None).await; // 8
    let req = |start_after: Option<&str>, revision, limit| RangeRequest {
        prefix: b("/r/"),
        start_after: start_after.map(b),
        revision,
        limit,
        count_only: false,
    };
    let page1 = s.range(req(None, None, 2)).await.unwrap();
    let keys = |r: &k1s_store::RangeResponse| {
        r.kvs
            .iter()
            .map(|kv| (String::from_utf8(kv.key.to_vec()).unwrap(), kv.mod_revision))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&page1), vec![("/r/0".into(), 1), ("/r/1".into(), 7)]);
    assert_eq!((page1.revision, page1.remaining, page1.count), (8, 2, 4));
    assert_eq!(page1.continue_after(), Some(b("/r/1")));
    // A write between pages is invisible to the second page, read at the first page's revision.
    create(&s, "/r/5", "a").await; // 9
    update(&s, "/r/3", "b", 4).await; // 10
    let page2 = s
        .range(req(Some("/r/1"), Some(page1.revision), 2))
        .await
        .unwrap();
    assert_eq!(keys(&page2), vec![("/r/3".into(), 4), ("/r/4".into(), 5)]);
    assert_eq!((page2.revision, page2.remaining), (8, 0));
    assert_eq!(page2.continue_after(), None);
    // At revision 5 the original five keys are there with their first versions.
    let old = s.range(req(None, Some(5), 0)).await.unwrap();
    assert_eq!(
        keys(&old),
        (0..5)
            .map(|i| (format!("/r/{i}"), i + 1))
            .collect::<Vec<_>>()
    );
    let count = s
        .range(RangeRequest {
            prefix: b("/"),
            count_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((count.count, count.kvs.len(), count.revision), (6, 0, 10));
    assert!(matches!(
        s.range(req(None, Some(11), 0)).await,
        Err(Error::FutureRevision { .. })
    ));
}

async fn ttl_expiry_is_a_delete_watchers_see(h: Harness) {
    let s = h.open();
    let mut w = s.watch(b"/events/", WatchStart::Now).await.unwrap();
    s.create(b"/events/e1", b("x"), Some(Duration::from_secs(1)))
        .await
        .unwrap(); // 1
    create(&s, "/events/keep", "y").await; // 2
    assert_eq!(next_event(&mut w).await.3, 1);
    assert_eq!(next_event(&mut w).await.3, 2);
    let (kind, key, _, rev, prev) = next_event(&mut w).await;
    assert_eq!(
        (kind, key.as_str(), rev, prev.as_deref()),
        (EventKind::Delete, "/events/e1", 3, Some("x"))
    );
    assert_eq!(value_at(&s, "/events/e1", None).await, None);
    assert_eq!(
        value_at(&s, "/events/keep", None).await.as_deref(),
        Some("y")
    );
    // A key rewritten without a TTL is not expired by its old lease.
    s.create(b"/events/e2", b("1"), Some(Duration::from_secs(1)))
        .await
        .unwrap(); // 4
    update(&s, "/events/e2", "2", 4).await; // 5
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(value_at(&s, "/events/e2", None).await.as_deref(), Some("2"));
}

async fn watch_from_zero_replays_history_then_follows(h: Harness) {
    let s = h.open();
    create(&s, "/w/a", "1").await; // 1
    create(&s, "/other", "1").await; // 2
    update(&s, "/w/a", "2", 1).await; // 3
    let mut w = s.watch(b"/w/", WatchStart::After(0)).await.unwrap();
    delete(&s, "/w/a", None).await; // 4
    create(&s, "/w/b", "1").await; // 5
    assert_eq!(
        next_event(&mut w).await,
        (EventKind::Put, "/w/a".into(), "1".into(), 1, None)
    );
    assert_eq!(
        next_event(&mut w).await,
        (
            EventKind::Put,
            "/w/a".into(),
            "2".into(),
            3,
            Some("1".into())
        )
    );
    assert_eq!(
        next_event(&mut w).await,
        (
            EventKind::Delete,
            "/w/a".into(),
            "".into(),
            4,
            Some("2".into())
        )
    );
    assert_eq!(
        next_event(&mut w).await,
        (EventKind::Put, "/w/b".into(), "1".into(), 5, None)
    );
    w.request_progress();
    let progress = timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(progress, WatchMessage::Progress(5));
}

async fn watch_from_now_sees_only_new_events(h: Harness) {
    let s = h.open();
    create(&s, "/n/a", "1").await;
    let mut w = s.watch(b"/n/", WatchStart::Now).await.unwrap();
    create(&s, "/n/b", "1").await;
    assert_eq!(next_event(&mut w).await.3, 2);
    // An idle watcher learns the current revision on request, even for writes it does not match.
    create(&s, "/elsewhere", "1").await;
    w.request_progress();
    assert_eq!(
        timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .unwrap(),
        WatchMessage::Progress(3)
    );
}

async fn watch_and_reads_from_a_compacted_revision_fail_distinctly(h: Harness) {
    let s = h.open();
    for i in 1..=4 {
        create(&s, &format!("/c/{i}"), "v").await;
    }
    update(&s, "/c/1", "v2", 1).await; // 5
    s.compact(3).await.unwrap();
    assert_eq!(s.compact_revision(), 3);
    assert!(matches!(
        s.watch(b"/c/", WatchStart::After(2)).await,
        Err(Error::Compacted {
            requested: 2,
            compacted: 3
        })
    ));
    assert!(matches!(
        s.get(b"/c/1", Some(2)).await,
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(
        s.range(RangeRequest {
            prefix: b("/c/"),
            revision: Some(1),
            ..Default::default()
        })
        .await,
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(s.compact(3).await, Err(Error::Compacted { .. })));
    assert!(matches!(
        s.compact(9).await,
        Err(Error::FutureRevision { .. })
    ));
    // At the compact revision itself everything is still readable.
    assert_eq!(value_at(&s, "/c/1", Some(3)).await.as_deref(), Some("v"));
    let mut w = s.watch(b"/c/", WatchStart::After(3)).await.unwrap();
    assert_eq!(next_event(&mut w).await.3, 4);
    let (_, _, value, rev, prev) = next_event(&mut w).await;
    assert_eq!((value.as_str(), rev, prev.as_deref()), ("v2", 5, Some("v")));
}

async fn watch_continues_across_compaction(h: Harness) {
    let s = h.open();
    let mut w = s.watch(b"/x/", WatchStart::After(0)).await.unwrap();
    for i in 1..=10u64 {
        create(&s, &format!("/x/{i}"), "v").await;
    }
    for i in 1..=5u64 {
        assert_eq!(next_event(&mut w).await.3, i);
    }
    delete(&s, "/x/1", None).await; // 11
    s.compact(11).await.unwrap();
    create(&s, "/x/11", "v").await; // 12
    for i in 6..=12u64 {
        assert_eq!(next_event(&mut w).await.3, i);
    }
}

async fn lagging_watcher_is_closed_and_resumes_without_gap(mut h: Harness) {
    h.watch_buffer = 4;
    let s = h.open();
    let mut slow = s.watch(b"/l/", WatchStart::Now).await.unwrap();
    // The writer never waits for the slow watcher: all twelve writes complete while it sleeps.
    for i in 1..=12 {
        create(&s, &format!("/l/{i:02}"), "v").await;
    }
    let mut got = Vec::new();
    let last = loop {
        match timeout(Duration::from_secs(5), slow.next()).await.unwrap() {
            Ok(WatchMessage::Event(e)) => got.push(e.revision()),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(Error::Lagged { last_revision }) => break last_revision,
            Err(e) => panic!("expected Lagged, got {e}"),
        }
    };
    assert!(!got.is_empty() && got.len() < 12, "{got:?}");
    assert_eq!(last, *got.last().unwrap());
    let mut resumed = s.watch(b"/l/", WatchStart::After(last)).await.unwrap();
    for rev in last + 1..=12 {
        got.push(next_event(&mut resumed).await.3);
        assert_eq!(*got.last().unwrap(), rev);
    }
    assert_eq!(got, (1..=12).collect::<Vec<_>>());
}

async fn concurrent_writers_get_gapless_revisions(h: Harness) {
    let s = h.open();
    let mut w = s.watch(b"/cw/", WatchStart::Now).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..20 {
                revs.push(create(&s, &format!("/cw/{t}/{i}"), "v").await);
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=320).collect::<Vec<_>>());
    for rev in 1..=320 {
        assert_eq!(next_event(&mut w).await.3, rev);
    }
}

async fn bad_input_is_a_typed_error(h: Harness) {
    let s = h.open();
    assert!(matches!(
        s.create(b"", b("v"), None).await,
        Err(Error::EmptyKey)
    ));
    let long = vec![b'k'; k1s_store::MAX_KEY_BYTES + 1];
    assert!(matches!(
        s.create(&long, b("v"), None).await,
        Err(Error::KeyTooLarge { .. })
    ));
    let big = Bytes::from(vec![0u8; k1s_store::MAX_VALUE_BYTES + 1]);
    assert!(matches!(
        s.create(b"/big", big, None).await,
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(matches!(
        s.create(b"/t", b("v"), Some(Duration::ZERO)).await,
        Err(Error::InvalidTtl { .. })
    ));
    let req = RangeRequest {
        prefix: b("/"),
        limit: k1s_store::MAX_RANGE_LIMIT + 1,
        ..Default::default()
    };
    assert!(matches!(
        s.range(req).await,
        Err(Error::LimitTooLarge { .. })
    ));
    assert_eq!(s.current_revision(), 0);
}

async fn large_values_round_trip(h: Harness) {
    let big = |n: usize, seed: u8| {
        Bytes::from(
            (0..n)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect::<Vec<_>>(),
        )
    };
    let sizes = [100, 64 * 1024, 200 * 1024, k1s_store::MAX_VALUE_BYTES];
    {
        let s = h.open();
        for (i, n) in sizes.iter().enumerate() {
            s.create(format!("/big/{i}").as_bytes(), big(*n, i as u8), None)
                .await
                .unwrap();
        }
        for (i, n) in sizes.iter().enumerate() {
            let kv = s
                .get(format!("/big/{i}").as_bytes(), None)
                .await
                .unwrap()
                .1
                .unwrap();
            assert_eq!(kv.value, big(*n, i as u8));
        }
        if !h.durable() {
            return;
        }
        s.close().await.unwrap();
    }
    let s = h.open();
    for (i, n) in sizes.iter().enumerate() {
        let kv = s
            .get(format!("/big/{i}").as_bytes(), None)
            .await
            .unwrap()
            .1
            .unwrap();
        assert_eq!(kv.value, big(*n, i as u8), "value {i} after restart");
    }
}

async fn restart_keeps_the_revision(h: Harness) {
    if !h.durable() {
        return; // an ephemeral store starts empty by design
    }
    {
        let s = h.open();
        create(&s, "/p/a", "1").await; // 1
        create(&s, "/p/b", "1").await; // 2
        s.create(b"/p/ttl", b("x"), Some(Duration::from_secs(1)))
            .await
            .unwrap(); // 3
        delete(&s, "/p/b", None).await; // 4: the newest record is a tombstone...
        s.compact(4).await.unwrap(); // ...which compaction removes
        s.close().await.unwrap();
    }
    let s = h.open();
    assert_eq!(s.current_revision(), 4);
    assert_eq!(s.compact_revision(), 4);
    assert_eq!(value_at(&s, "/p/a", None).await.as_deref(), Some("1"));
    assert_eq!(value_at(&s, "/p/b", None).await, None);
    // The TTL survives the restart.
    let mut w = s.watch(b"/p/ttl", WatchStart::After(4)).await.unwrap();
    assert_eq!(next_event(&mut w).await.0, EventKind::Delete);
    assert_eq!(create(&s, "/p/c", "1").await, 6);
}

async fn a_store_held_by_another_instance_is_waited_for(h: Harness) {
    if !h.durable() {
        return;
    }
    let first = h.open();
    create(&first, "/lock/a", "1").await;
    // A second open waits for the first instance to let go of the files (as a restarted
    // server waits for its predecessor) instead of failing at once.
    let dir = h.dir.as_ref().unwrap().path().join("data");
    let second = std::thread::spawn(move || {
        let backend = BackendConfig::Sled(SledConfig::new(dir));
        k1s_store::open(Config {
            backend,
            ..Default::default()
        })
        .map(|s| s.current_revision())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.close().await.unwrap();
    drop(first);
    assert_eq!(second.join().unwrap().unwrap(), 1);
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Harness::memory()).await })*
        }
        mod sled {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Harness::sled()).await })*
        }
    };
}

conformance!(
    lifecycle_revisions,
    compare_failures_return_the_current_value,
    range_pages_are_consistent_at_the_first_pages_revision,
    ttl_expiry_is_a_delete_watchers_see,
    watch_from_zero_replays_history_then_follows,
    watch_from_now_sees_only_new_events,
    watch_and_reads_from_a_compacted_revision_fail_distinctly,
    watch_continues_across_compaction,
    lagging_watcher_is_closed_and_resumes_without_gap,
    concurrent_writers_get_gapless_revisions,
    bad_input_is_a_typed_error,
    large_values_round_trip,
    restart_keeps_the_revision,
    a_store_held_by_another_instance_is_waited_for,
);

#[allow(dead_code)]
fn _assert_store_is_shareable(s: Store) -> Arc<dyn k1s_store::Backend> {
    s
}
