//! A crash-safe key → record store in one append-only file, for state that must outlive the
//! process (and, when asked, the host): Berth's container checkpoints and log checkpoints.
//!
//! Every change is a record appended to the file; opening the journal replays them. Writes
//! from many tasks are committed together by one writer thread: everything queued while the
//! previous batch was being written goes out in one `write` and, if any of it asked for
//! [`Durability::Durable`], one `fdatasync` (group commit). So a hundred containers
//! checkpointing at once cost a handful of fsyncs rather than a hundred, and no write creates a
//! file (per-record files cost an inode each, and on ext4 inode churn is slow).
//!
//! Crash safety: a record is valid only when it is whole and its CRC-32 matches, and replay
//! stops at the first invalid one, dropping the tail (a write cut short by a crash). A durable
//! record's fsync covers everything before it, so no durable record is ever behind a dropped
//! tail. When dead records (overwritten or removed keys) outweigh live ones by
//! [`Options::compact_ratio`], the writer rewrites the file with the live records only
//! (temporary file, fsync, rename, directory fsync). The file is readable by its owner only:
//! records may hold secrets.
//!
//! ```
//! use berth_journal::{Durability, Journal};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), berth_journal::JournalError> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.journal");
//! let (journal, replay) = Journal::open(&path)?;
//! assert!(replay.entries.is_empty());
//! journal.put("c1", b"launched".to_vec(), Durability::Durable).await?;
//! journal.put("c2", b"pulling".to_vec(), Durability::Lazy).await?;
//! journal.remove("c2", Durability::Lazy).await?;
//! drop(journal);
//!
//! let (_journal, replay) = Journal::open(&path)?;
//! assert_eq!(replay.entries.len(), 1);
//! assert_eq!(replay.entries["c1"], b"launched");
//! # Ok(())
//! # }
//! ```

mod error;
mod format;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

pub use error::JournalError;
pub use format::MAX_RECORD;

use format::{Op, HEADER};
use writer::{Reply, Request, Writer};

/// How far a write must get before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Durability {
    /// Written to the file: it survives the process being killed (the page cache keeps it), but
    /// a host crash may lose it.
    Lazy,
    /// Also fsynced: it survives a host crash.
    Durable,
}

/// Tuning of a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The file is never compacted below this size. Default 1 MiB.
    pub compact_min_bytes: u64,
    /// Compact when the file is this many times the size of its live records. Default 4.
    pub compact_ratio: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compact_min_bytes: 1 << 20,
            compact_ratio: 4,
        }
    }
}

/// What opening a journal found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Every live key with its newest value.
    pub entries: BTreeMap<String, Vec<u8>>,
    /// Valid records read (including ones later overwritten or removed).
    pub records: u64,
    /// Set when the file ended in an invalid record (a write cut short by a crash): what was
    /// wrong and how many bytes were dropped. Those bytes were cut off the file.
    pub dropped_tail: Option<String>,
}

/// Counters of a journal since it was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Records appended.
    pub records: u64,
    /// Batches written (one `write` each).
    pub batches: u64,
    /// Fsyncs done for durable writes.
    pub syncs: u64,
    /// Compactions done.
    pub compactions: u64,
    /// The file's size.
    pub file_bytes: u64,
    /// The size the file would have with live records only.
    pub live_bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    records: AtomicU64,
    batches: AtomicU64,
    syncs: AtomicU64,
    compactions: AtomicU64,
    file_len: AtomicU64,
    live_bytes: AtomicU64,
}

/// A handle on an open journal; clones share it. The writer thread ends when the last handle
/// is dropped, after writing everything queued.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: Sender<Request>,
    path: Arc<PathBuf>,
    shared: Arc<Shared>,
}

impl Journal {
    /// Opens (or creates) the journal at `path` with default [`Options`], replays it, and
    /// starts its writer thread. The parent directory is created if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<(Journal, Replay), JournalError> {
        Journal::open_with(path, Options::default())
    }

    /// [`open`](Self::open) with explicit options.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: Options,
    ) -> Result<(Journal, Replay), JournalError> {
        let path = path.as_ref().to_path_buf();
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io {
                action,
                path,
                source,
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io("create the directory of", &path))?;
        }
        // A compaction interrupted before its rename: the journal itself is intact.
        let _ = std::fs::remove_file(writer::compaction_path(&path));
        // Records may hold secrets (a container's environment): owner only, like Docker's own
        // container configs.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io("open", &path))?;
        lock(&file, &path)?;
        let mode = file
            .metadata()
            .map_err(io("stat", &path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(io("restrict the permissions of", &path))?;
        }
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes).map_err(io("read", &path))?;
        let (replay, valid_len) = match parse(&path, &bytes)? {
            None => {
                // New, or created by a process killed before the header was complete.
                file.set_len(0).map_err(io("truncate", &path))?;
                file.write_all_at(HEADER, 0).map_err(io("write", &path))?;
                file.sync_all().map_err(io("fsync", &path))?;
                writer::sync_dir(&path)?;
                (Replay::default(), HEADER.len() as u64)
            }
            Some(decoded) => {
                if let Some(why) = &decoded.invalid_tail {
                    tracing::warn!(journal = %path.display(), "journal ends in {why}: a write cut short by a crash; dropped");
                    file.set_len(decoded.valid_len)
                        .map_err(io("cut the invalid tail off", &path))?;
                    file.sync_all().map_err(io("fsync", &path))?;
                }
                let valid_len = decoded.valid_len;
                (Replay::from(decoded), valid_len)
            }
        };
        let live: HashMap<String, u64> = replay
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), format::encoded_len(k, v) as u64))
            .collect();
        let live_bytes = live.values().sum();
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            path: path.clone(),
            file,
            len: valid_len,
            dirty_tail: false,
            live,
            live_bytes,
            options,
            next_compaction_at: options.compact_min_bytes,
            shared: shared.clone(),
            buf: Vec::new(),
        };
        shared.file_len.store(valid_len, Ordering::Relaxed);
        shared
            .live_bytes
            .store(live_bytes + HEADER.len() as u64, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("berth-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(io("start the writer thread of", &path))?;
        Ok((
            Journal {
                tx,
                path: Arc::new(path),
                shared,
            },
            replay,
        ))
    }

    /// Reads the journal at `path` without opening it for writing: a snapshot for tools and
    /// tests while another process may be writing it (a record being written then is not
    /// seen). A missing file reads as empty; nothing is created, cut or removed.
    pub fn read(path: impl AsRef<Path>) -> Result<Replay, JournalError> {
        let path = path.as_ref();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay::default()),
            Err(source) => {
                return Err(JournalError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Ok(parse(path, &bytes)?.map(Replay::from).unwrap_or_default())
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters since the journal was opened.
    pub fn stats(&self) -> JournalStats {
        let s = &self.shared;
        JournalStats {
            records: s.records.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            compactions: s.compactions.load(Ordering::Relaxed),
            file_bytes: s.file_len.load(Ordering::Relaxed),
            live_bytes: s.live_bytes.load(Ordering::Relaxed),
        }
    }

    /// Sets `key` to `value`; returns once written (and fsynced, for
    /// [`Durability::Durable`]). Dropping the future does not withdraw the write.
    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        durability: Durability,
    ) -> Result<(), JournalError> {
        let record = self.record(Op::Put, key, value)?;
        self.submit_async(Some(record), durability).await
    }

    /// Removes `key` (a key that is not there is fine).
    pub async fn remove(&self, key: &str, durability: Durability) -> Result<(), JournalError> {
        let record = self.record(Op::Remove, key, Vec::new())?;
        self.submit_async(Some(record), durability).await
    }

    /// Returns once everything written before is fsynced.
    pub async fn sync(&self) -> Result<(), JournalError> {
        self.submit_async(None, Durability::Durable).await
    }

    /// [`put`](Self::put) for threads outside an async runtime (it blocks the thread).
    pub fn put_blocking(
        &self,
        key: &str,
        value: Vec<u8>,
        durability: Durability,
    ) -> Result<(), JournalError> {
        let record = self.record(Op::Put, key, value)?;
        self.submit_blocking(Some(record), durability, false)
    }

    /// [`remove`](Self::remove) for threads outside an async runtime.
    pub fn remove_blocking(&self, key: &str, durability: Durability) -> Result<(), JournalError> {
        let record = self.record(Op::Remove, key, Vec::new())?;
        self.submit_blocking(Some(record), durability, false)
    }

    /// Syncs, then closes the journal for every handle: the file is closed (its lock released,
    /// so it can be opened again) and later writes fail with [`JournalError::Closed`]. For a
    /// process about to exit or hand the file over; blocks until done.
    pub fn close(&self) -> Result<(), JournalError> {
        self.submit_blocking(None, Durability::Durable, true)
    }

    /// [`sync`](Self::sync) for threads outside an async runtime.
    pub fn sync_blocking(&self) -> Result<(), JournalError> {
        self.submit_blocking(None, Durability::Durable, false)
    }

    fn record(
        &self,
        op: Op,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(Op, String, Vec<u8>), JournalError> {
        let invalid = |reason| JournalError::InvalidKey {
            key: key.chars().take(100).collect(),
            reason,
        };
        if key.is_empty() {
            return Err(invalid("it is empty"));
        }
        if key.len() > u16::MAX as usize {
            return Err(invalid("it is longer than 65535 bytes"));
        }
        let len = format::encoded_len(key, &value);
        if len > MAX_RECORD {
            return Err(JournalError::TooLarge {
                key: key.chars().take(100).collect(),
                len,
                max: MAX_RECORD,
            });
        }
        Ok((op, key.to_owned(), value))
    }

    fn closed(&self) -> JournalError {
        JournalError::Closed {
            path: self.path.to_path_buf(),
        }
    }

    async fn submit_async(
        &self,
        record: Option<(Op, String, Vec<u8>)>,
        durability: Durability,
    ) -> Result<(), JournalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Request {
                record,
                close: false,
                durability,
                reply: Reply::Async(tx),
            })
            .map_err(|_| self.closed())?;
        rx.await.map_err(|_| self.closed())?
    }

    fn submit_blocking(
        &self,
        record: Option<(Op, String, Vec<u8>)>,
        durability: Durability,
        close: bool,
    ) -> Result<(), JournalError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Request {
                record,
                close,
                durability,
                reply: Reply::Blocking(tx),
            })
            .map_err(|_| self.closed())?;
        rx.recv().map_err(|_| self.closed())?
    }
}

/// Reads a journal file's bytes: `None` for a file that is empty or holds only the start of
/// the header (created by a process killed before the header was complete), an error for one
/// that is not a journal.
fn parse(path: &Path, bytes: &[u8]) -> Result<Option<format::Decoded>, JournalError> {
    if bytes.len() < HEADER.len() && HEADER.starts_with(bytes) {
        return Ok(None);
    }
    if !bytes.starts_with(HEADER) {
        return Err(JournalError::NotAJournal {
            path: path.to_path_buf(),
            expected: "BERTHJ01",
        });
    }
    Ok(Some(format::decode(bytes)))
}

impl From<format::Decoded> for Replay {
    fn from(d: format::Decoded) -> Replay {
        Replay {
            entries: d.entries,
            records: d.records,
            dropped_tail: d.invalid_tail,
        }
    }
}

/// How long `open` waits for a previous writer to let go (its thread finishing after the last
/// handle was dropped).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes the exclusive lock that keeps a second writer out. The lock belongs to the open file,
/// so it is released when the writer thread closes it.
fn lock(file: &std::fs::File, path: &Path) -> Result<(), JournalError> {
    use rustix::fs::{flock, FlockOperation};
    let started = std::time::Instant::now();
    loop {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(JournalError::InUse {
                    path: path.to_path_buf(),
                    waited_ms: started.elapsed().as_millis() as u64,
                })
            }
            Err(e) => {
                return Err(JournalError::Io {
                    action: "lock",
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
