//! Crash tests: a child process writes with many concurrent writers and is killed at a random point; every write it acknowledged must survive.
//!
//! `sigkill_*` kills the child (the page cache survives, as after a process crash). `power_cut_*`
//! also runs the child under an LD_PRELOAD shim that journals how to undo every write not yet
//! fsync'd; after the kill the journal is rolled back, leaving the directory as a power cut
//! would. The mutation check runs the same power cut with the store's sync switched off and
//! must see acknowledged writes vanish, proving the test can see a missing fsync.

mod powercut;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use k1s_store::{BackendConfig, Bytes, Config, SledConfig, Store, WriteOutcome};
use rand::Rng;

const CYCLES: usize = 20;
const WRITERS: usize = 32;
const KEYS_PER_WRITER: usize = 4;
/// One write in this many carries a value above sled's blob threshold (128 KiB).
const LARGE_EVERY: u64 = 6;
const SMALL: usize = 1024;
const LARGE: usize = 200 * 1024;
const CHILD_ENV: &str = "K1S_CRASH_CHILD_DIR";
const NO_SYNC_ENV: &str = "K1S_CRASH_CHILD_NO_SYNC";

/// The child compacts as it goes (a zero history window), so crashes land in compaction too.
fn store_config(dir: &Path, no_sync: bool) -> Config {
    let mut sled = SledConfig::new(dir);
    sled.unsafe_no_sync = no_sync;
    Config {
        backend: BackendConfig::Sled(sled),
        history_window: Duration::ZERO,
        history_min_revisions: 50,
        maintenance_interval: Duration::from_millis(50),
        ..Default::default()
    }
}

/// A value that says who wrote it: `writer seq` then filler, long enough to test both sides of
/// the blob threshold.
fn value(writer: usize, seq: u64) -> Bytes {
    let len = if seq.is_multiple_of(LARGE_EVERY) {
        LARGE
    } else {
        SMALL
    };
    let mut v = format!("{writer} {seq} ").into_bytes();
    v.resize(len, b'a' + (seq % 26) as u8);
    Bytes::from(v)
}

fn parse_value(v: &[u8]) -> (usize, u64, usize) {
    let s = String::from_utf8_lossy(&v[..v.len().min(40)]);
    let mut parts = s.split(' ');
    let w = parts.next().unwrap().parse().unwrap();
    let seq = parts.next().unwrap().parse().unwrap();
    (w, seq, v.len())
}

/// The child: write until killed, printing `ACK <key> <revision> <seq>` after each acknowledged
/// write. Does nothing when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let no_sync = std::env::var(NO_SYNC_ENV).is_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = k1s_store::open(store_config(Path::new(&dir), no_sync)).unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
        println!("READY {}", store.current_revision());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (store, out) = (store.clone(), out.clone());
            tasks.push(tokio::spawn(
                async move { child_writer(store, w, out).await },
            ));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

async fn child_writer(
    store: Store,
    w: usize,
    out: std::sync::Arc<std::sync::Mutex<std::io::Stdout>>,
) {
    let mut seq = 0u64;
    loop {
        for k in 0..KEYS_PER_WRITER {
            let key = format!("/crash/{w:02}/{k}");
            let (_, current) = store.get(key.as_bytes(), None).await.unwrap();
            // Continue the sequence from what survived the previous crash.
            if let Some(kv) = &current {
                seq = seq.max(parse_value(&kv.value).1 + 1);
            }
            seq += 1;
            let outcome = match current {
                None => store
                    .create(key.as_bytes(), value(w, seq), None)
                    .await
                    .unwrap(),
                Some(kv) => store
                    .update(key.as_bytes(), value(w, seq), kv.mod_revision, None)
                    .await
                    .unwrap(),
            };
            if let WriteOutcome::Committed { revision, .. } = outcome {
                let mut out = out.lock().unwrap();
                writeln!(out, "ACK {key} {revision} {seq}").unwrap();
                out.flush().unwrap();
            }
        }
    }
}

#[derive(Default)]
struct Acked {
    /// Per key: the newest acknowledged (revision, seq).
    latest: BTreeMap<String, (u64, u64)>,
    max_revision: u64,
    count: usize,
}

/// Run one child to a random kill point and collect what it acknowledged.
fn run_child(dir: &Path, shim: Option<(&Path, &Path)>, no_sync: bool, acked: &mut Acked) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "crash_child",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD_ENV, dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if no_sync {
        cmd.env(NO_SYNC_ENV, "1");
    }
    if let Some((lib, journal)) = shim {
        cmd.env("LD_PRELOAD", lib)
            // The parent directory, so that the store directory's own creation is journaled.
            .env("POWERCUT_ROOT", dir.parent().unwrap())
            .env("POWERCUT_JOURNAL", journal);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the child has opened the store (libtest may print on the same line), then let
    // it write for a random while.
    let ready = rx.iter().any(|line| line.contains("READY "));
    assert!(
        ready,
        "crash child exited before opening the store:\n{}",
        std::fs::read_to_string(dir.with_extension("child-stderr")).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(rand::rng().random_range(20..400)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    for line in rx.try_iter() {
        let Some(at) = line.find("ACK ") else {
            continue;
        };
        let mut parts = line[at..].split(' ');
        parts.next();
        let key = parts.next().unwrap().to_string();
        let rev: u64 = parts.next().unwrap().parse().unwrap();
        let seq: u64 = parts.next().unwrap().parse().unwrap();
        let entry = acked.latest.entry(key).or_default();
        if rev > entry.0 {
            *entry = (rev, seq);
        }
        acked.max_revision = acked.max_revision.max(rev);
        acked.count += 1;
    }
}

/// Open the store after a crash and check every acknowledged write is there.
/// Returns the store's compact revision, to show the child was compacting when it died.
fn verify(dir: &Path, acked: &Acked) -> Result<u64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = k1s_store::open(store_config(dir, false)).map_err(|e| format!("reopen failed: {e:#}"))?;
        let current = store.current_revision();
        if current < acked.max_revision {
            return Err(format!("revision went back: {current} < acknowledged {}", acked.max_revision));
        }
        for (key, &(rev, seq)) in &acked.latest {
            let (_, kv) = store.get(key.as_bytes(), None).await.map_err(|e| e.to_string())?;
            let Some(kv) = kv else { return Err(format!("{key}: acknowledged revision {rev} lost, key missing")) };
            let (_, got_seq, len) = parse_value(&kv.value);
            if kv.mod_revision < rev || got_seq < seq {
                return Err(format!("{key}: acknowledged revision {rev} (seq {seq}) lost, found revision {} (seq {got_seq})", kv.mod_revision));
            }
            let expected_len = value(0, got_seq).len();
            if len != expected_len {
                return Err(format!("{key}: value of {len} bytes, expected {expected_len}"));
            }
        }
        // The revision counter continues: the next write is exactly one past the current.
        let outcome = store.create(b"/crash/probe", Bytes::from_static(b"x"), None).await.map_err(|e| e.to_string())?;
        match outcome {
            WriteOutcome::Committed { revision, .. } if revision == current + 1 => {}
            other => return Err(format!("probe write after revision {current}: {other:?}")),
        }
        store.delete(b"/crash/probe", None).await.map_err(|e| e.to_string())?;
        let compacted = store.compact_revision();
        store.close().await.map_err(|e| e.to_string())?;
        Ok(compacted)
    })
}

/// Run `cycles` kill/verify cycles on one data directory; returns the failures seen.
fn cycles(power_cut: bool, no_sync: bool, stop_at_first_failure: bool) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let dir = root.join("data");
    let shim = power_cut.then(|| powercut::build_shim(tmp.path()).unwrap());
    let mut acked = Acked::default();
    let mut failures = Vec::new();
    let mut max_compacted = 0;
    for cycle in 0..CYCLES {
        let journal = tmp.path().join(format!("journal-{cycle}"));
        run_child(
            &dir,
            shim.as_deref().map(|lib| (lib, journal.as_path())),
            no_sync,
            &mut acked,
        );
        if power_cut {
            let stats = powercut::rollback(&journal).unwrap();
            if std::env::var("K1S_CRASH_DEBUG").is_ok() {
                eprintln!("cycle {cycle}: rollback {stats:?}");
            }
        }
        match verify(&dir, &acked) {
            Ok(compacted) => max_compacted = max_compacted.max(compacted),
            Err(e) => {
                failures.push(format!("cycle {cycle}: {e}"));
                if std::env::var("K1S_CRASH_DEBUG").is_ok() {
                    eprintln!("cycle {cycle}: {e}; keeping {}", tmp.keep().display());
                    return failures;
                }
                if stop_at_first_failure {
                    break;
                }
                // Start the next cycle from what actually survived.
                acked = Acked::default();
            }
        }
    }
    assert!(
        acked.count > 0 || !failures.is_empty(),
        "the child acknowledged nothing"
    );
    eprintln!(
        "{} acknowledged writes checked over {CYCLES} cycles; compacted up to revision {max_compacted}",
        acked.count
    );
    if failures.is_empty() {
        assert!(
            max_compacted > 0,
            "the child never compacted: no crash landed in compaction"
        );
    }
    failures
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let failures = cycles(false, false, true);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn power_cut_loses_no_acknowledged_write() {
    let failures = cycles(true, false, true);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn power_cut_without_sync_is_caught() {
    let failures = cycles(true, true, true);
    eprintln!("expected failure: {failures:?}");
    assert!(
        failures
            .iter()
            .any(|f| f.contains("lost") || f.contains("went back")),
        "with fsync switched off the power-cut test saw no lost write, so it cannot detect a missing sync: {failures:?}"
    );
}
