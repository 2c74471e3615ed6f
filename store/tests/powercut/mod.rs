//! Power-cut simulator: an `LD_PRELOAD` shim journals undo records that `rollback` applies.
#![allow(
    dead_code,
    reason = "each crash test uses a different part of this module"
)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail, ensure};

/// Environment variable naming the directory whose changes the shim journals: absolute,
/// symlink-free and already existing when the child starts.
pub const ROOT_ENV: &str = "POWERCUT_ROOT";
/// Environment variable naming the journal file: outside the root, on the same filesystem
/// (unlink backups are hard links beside it), fresh for every run of the child.
pub const JOURNAL_ENV: &str = "POWERCUT_JOURNAL";

/// Compiles the shim into `out_dir` and returns the path of the shared library, to be set as
/// the child's `LD_PRELOAD` along with [`ROOT_ENV`] and [`JOURNAL_ENV`].
pub fn build_shim(out_dir: &Path) -> anyhow::Result<PathBuf> {
    // Tests may build concurrently into the same directory: compile under a private name, then
    // move it into place atomically.
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/powercut/shim.c");
    let lib = out_dir.join("libpowercut.so");
    let partial = out_dir.join(format!(
        "libpowercut.so.{}.{}",
        process::id(),
        BUILDS.fetch_add(1, Ordering::Relaxed)
    ));
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&partial)
        .arg(&source)
        .args(["-ldl", "-lpthread"])
        .output()
        .context("running cc to build the power-cut shim")?;
    ensure!(
        output.status.success(),
        "cc failed to build {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    fs::rename(&partial, &lib).with_context(|| format!("moving the shim to {}", lib.display()))?;
    Ok(lib)
}

/// What [`rollback`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollbackStats {
    /// Complete records in the journal.
    pub records: usize,
    /// Whether the journal ended in a torn record (the child died mid-append); it was ignored.
    pub torn_tail: bool,
    /// Writes, truncations and fallocate calls rolled back.
    pub writes_undone: usize,
    /// Bytes written, or cut off, by the rolled-back writes and truncations.
    pub bytes_undone: u64,
    /// Creations, unlinks, renames, mkdirs and rmdirs rolled back.
    pub entries_undone: usize,
    /// Undo records with nothing left to undo: the child died between journaling the operation
    /// and performing it, or a later durable operation removed or replaced the target.
    pub skipped: usize,
}

/// Rolls the journaled root back to what a power cut at the moment the child died would leave:
/// undoes, newest first, every change no later sync made durable. File data and sizes are
/// durable once the file was fsync'd/fdatasync'd; creations, unlinks, renames and directory
/// changes once their parent directory was; everything before a `sync()` is. Call it once, after
/// the child is dead, and give the next run a fresh journal.
pub fn rollback(journal: &Path) -> anyhow::Result<RollbackStats> {
    let bytes = fs::read(journal).with_context(|| format!("reading {}", journal.display()))?;
    let (records, torn_tail) = parse(&bytes)?;
    let mut undo = Undo::default();
    undo.stats.records = records.len();
    undo.stats.torn_tail = torn_tail;
    // Everything before the last sync() is durable.
    let first_undoable = records
        .iter()
        .rposition(|record| matches!(record, Record::SyncAll))
        .map_or(0, |i| i + 1);
    for record in records[first_undoable..].iter().rev() {
        undo.step(record)?;
    }
    Ok(undo.stats)
}

/// A file's identity, `(st_dev, st_ino)`: data syncs are matched by file, not by name.
type FileId = (u64, u64);

/// One journal record (format documented at the top of `shim.c`), borrowing from the journal.
enum Record<'a> {
    Data(DataUndo<'a>),
    Create(&'a Path),
    Unlink {
        path: &'a Path,
        backup: &'a Path,
    },
    Rename {
        from: &'a Path,
        to: &'a Path,
        backup: Option<&'a Path>,
    },
    Mkdir(&'a Path),
    Rmdir(&'a Path),
    Sync(FileId),
    DirSync(&'a Path),
    SyncAll,
}

/// How to undo a write, truncation or fallocate: put `old` back at `offset`, then the size.
struct DataUndo<'a> {
    file: FileId,
    path: &'a Path,
    old_size: u64,
    offset: u64,
    /// Bytes the operation wrote or cut off.
    len: u64,
    old: &'a [u8],
}

/// Splits the journal into records; the flag says whether a torn trailing record was dropped.
fn parse(mut journal: &[u8]) -> anyhow::Result<(Vec<Record<'_>>, bool)> {
    let mut records = Vec::new();
    while !journal.is_empty() {
        let Some((len, rest)) = journal.split_first_chunk::<8>() else {
            return Ok((records, true));
        };
        let len = usize::try_from(u64::from_le_bytes(*len))?;
        let Some((body, rest)) = rest.split_at_checked(len) else {
            return Ok((records, true));
        };
        let record = parse_record(body)
            .with_context(|| format!("journal record {} is malformed", records.len()))?;
        records.push(record);
        journal = rest;
    }
    Ok((records, false))
}

fn parse_record(body: &[u8]) -> anyhow::Result<Record<'_>> {
    let mut fields = Fields(body);
    let kind = fields.take(1)?[0];
    let record = match kind {
        b'W' => Record::Data(DataUndo {
            file: (fields.u64()?, fields.u64()?),
            path: fields.path()?,
            old_size: fields.u64()?,
            offset: fields.u64()?,
            len: fields.u64()?,
            old: std::mem::take(&mut fields.0),
        }),
        b'C' => Record::Create(fields.path()?),
        b'U' => Record::Unlink {
            path: fields.path()?,
            backup: fields.path()?,
        },
        b'R' => Record::Rename {
            from: fields.path()?,
            to: fields.path()?,
            backup: Some(fields.path()?).filter(|backup| !backup.as_os_str().is_empty()),
        },
        b'M' => Record::Mkdir(fields.path()?),
        b'D' => Record::Rmdir(fields.path()?),
        b'S' => {
            let file = (fields.u64()?, fields.u64()?);
            fields.path()?;
            Record::Sync(file)
        }
        b'Y' => Record::DirSync(fields.path()?),
        b'A' => Record::SyncAll,
        other => bail!("unknown record kind {other:#04x}"),
    };
    ensure!(
        fields.0.is_empty(),
        "{} unexpected trailing bytes",
        fields.0.len()
    );
    Ok(record)
}

/// The unread fields of one record.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .context("a field runs past the record")?;
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> anyhow::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    fn path(&mut self) -> anyhow::Result<&'a Path> {
        let len = u32::from_le_bytes(self.take(4)?.try_into()?);
        Ok(Path::new(OsStr::from_bytes(
            self.take(usize::try_from(len)?)?,
        )))
    }
}

/// A durable rename or removal that happened after the records still to be undone: it moved
/// or removed entries those records name.
enum Kept<'a> {
    Moved { from: &'a Path, to: &'a Path },
    Removed(&'a Path),
}

/// State of the newest-first walk over the journal.
#[derive(Default)]
struct Undo<'a> {
    synced_files: HashSet<FileId>,
    synced_dirs: HashSet<&'a Path>,
    /// Newest first, like the walk.
    kept: Vec<Kept<'a>>,
    stats: RollbackStats,
}

impl<'a> Undo<'a> {
    fn step(&mut self, record: &Record<'a>) -> anyhow::Result<()> {
        match *record {
            Record::Sync(file) => {
                self.synced_files.insert(file);
            }
            Record::DirSync(dir) => {
                self.synced_dirs.insert(dir);
            }
            Record::SyncAll => {}
            Record::Data(ref data) if self.synced_files.contains(&data.file) => {}
            Record::Data(ref data) => self.undo_data(data)?,
            ref entry if self.entry_durable(entry) => self.keep(entry),
            Record::Create(path) => {
                let result = self.locate(path).map(fs::remove_file);
                self.count_entry("creation", path, result)?;
            }
            Record::Mkdir(path) => {
                let result = self.locate(path).map(fs::remove_dir_all);
                self.count_entry("mkdir", path, result)?;
            }
            Record::Rmdir(path) => {
                let result = self.locate(path).map(fs::create_dir);
                self.count_entry("rmdir", path, result)?;
            }
            Record::Unlink { path, backup } => {
                let result = self.locate(path).map(|path| undo_unlink(&path, backup));
                self.count_entry("unlink", path, result)?;
            }
            Record::Rename { from, to, backup } => {
                let result = self
                    .locate(from)
                    .zip(self.locate(to))
                    .map(|(from, to)| undo_rename(&from, &to, backup));
                self.count_entry("rename", to, result)?;
            }
        }
        Ok(())
    }

    /// Whether a later sync of the parent directories made a namespace change durable.
    fn entry_durable(&self, entry: &Record<'a>) -> bool {
        let parent_synced = |path: &Path| {
            path.parent()
                .is_some_and(|dir| self.synced_dirs.contains(dir))
        };
        match *entry {
            Record::Create(path)
            | Record::Mkdir(path)
            | Record::Rmdir(path)
            | Record::Unlink { path, .. } => parent_synced(path),
            Record::Rename { from, to, .. } => parent_synced(from) && parent_synced(to),
            _ => false,
        }
    }

    fn keep(&mut self, entry: &Record<'a>) {
        match *entry {
            Record::Unlink { path, .. } | Record::Rmdir(path) => {
                self.kept.push(Kept::Removed(path));
            }
            Record::Rename { from, to, .. } => self.kept.push(Kept::Moved { from, to }),
            _ => {}
        }
    }

    /// Where the entry that `path` named right after an older record is now, given the kept
    /// renames and removals since; `None` if one of them removed or replaced it.
    fn locate(&self, path: &Path) -> Option<PathBuf> {
        let mut path = path.to_path_buf();
        for kept in self.kept.iter().rev() {
            match *kept {
                Kept::Moved { from, to } => {
                    if let Ok(rest) = path.strip_prefix(from) {
                        path = if rest.as_os_str().is_empty() {
                            to.to_path_buf()
                        } else {
                            to.join(rest)
                        };
                    } else if path.starts_with(to) {
                        return None;
                    }
                }
                Kept::Removed(gone) if path.starts_with(gone) => return None,
                Kept::Removed(_) => {}
            }
        }
        Some(path)
    }

    fn undo_data(&mut self, data: &DataUndo<'_>) -> anyhow::Result<()> {
        let Some(now) = self.locate(data.path) else {
            self.stats.skipped += 1;
            return Ok(());
        };
        let handle = match OpenOptions::new().write(true).open(&now) {
            Ok(handle) => handle,
            Err(e) if is_gone(&e) => {
                self.stats.skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", now.display())),
        };
        let meta = handle.metadata()?;
        if (meta.dev(), meta.ino()) != data.file {
            // The name now belongs to another file; this one is gone.
            self.stats.skipped += 1;
            return Ok(());
        }
        handle
            .write_all_at(data.old, data.offset)
            .and_then(|()| handle.set_len(data.old_size))
            .with_context(|| format!("restoring {}", now.display()))?;
        self.stats.writes_undone += 1;
        self.stats.bytes_undone += data.len;
        Ok(())
    }

    /// Counts one namespace undo; `None` or a missing target means there was nothing to undo.
    fn count_entry(
        &mut self,
        what: &str,
        path: &Path,
        result: Option<io::Result<()>>,
    ) -> anyhow::Result<()> {
        match result {
            Some(Ok(())) => self.stats.entries_undone += 1,
            None => self.stats.skipped += 1,
            Some(Err(e)) if is_gone(&e) || e.kind() == ErrorKind::AlreadyExists => {
                self.stats.skipped += 1;
            }
            Some(Err(e)) => {
                return Err(e).with_context(|| format!("undoing the {what} of {}", path.display()));
            }
        }
        Ok(())
    }
}

/// Puts the unlinked file back, unless the child died before the unlink happened.
fn undo_unlink(path: &Path, backup: &Path) -> io::Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(ErrorKind::AlreadyExists.into());
    }
    fs::rename(backup, path)
}

/// Moves `to` back to `from` and restores the file it replaced, unless the child died before
/// the rename happened (then `from` still exists).
fn undo_rename(from: &Path, to: &Path, backup: Option<&Path>) -> io::Result<()> {
    if from.symlink_metadata().is_ok() {
        return Err(ErrorKind::AlreadyExists.into());
    }
    fs::rename(to, from)?;
    backup.map_or(Ok(()), |backup| fs::rename(backup, to))
}

/// The target of an undo no longer exists (or a path component is no longer a directory).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    )
}
