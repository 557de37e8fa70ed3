//! A crash-safe key → record store in one append-only file, for state that must outlive the
//! process (and, when asked, the host): Berth's container checkpoints and log checkpoints.
//!
//! Every change is a record appended to the file; opening the journal replays them. A record
//! is written by the caller's own thread (a write to the page cache costs microseconds; handing
//! it to another thread and being woken back costs more). A [`Durability::Durable`] write then
//! waits for an fsync done by one background thread: every durable write queued while the
//! previous fsync ran is covered by the next one (group commit). So a hundred containers
//! checkpointing at once cost a handful of fsyncs rather than a hundred, and no write creates a
//! file (per-record files cost an inode each, and on ext4 inode churn is slow).
//!
//! The background thread also keeps zeroed space reserved after the records
//! ([`Options::reserve_bytes`]): appending then overwrites blocks the file already has, its
//! size does not change, and an `fdatasync` writes the data alone instead of the data and the
//! inode (a quarter less CPU and wall time per fsync on ext4, measured here). Databases
//! pre-zero their write-ahead logs for the same reason.
//!
//! Crash safety: a record is valid only when it is whole and its CRC-32 matches, and replay
//! stops at the first invalid one, dropping the tail (a write cut short by a crash); zeros after
//! the records are reserved space. A durable record's fsync covers everything before it, so no
//! durable record is ever behind a dropped tail. When dead records (overwritten or removed
//! keys) outweigh live ones by [`Options::compact_ratio`], the background thread rewrites the
//! file with the live records only (temporary file, fsync, rename, directory fsync). The file
//! is readable by its owner only: records may hold secrets.
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
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

pub use error::JournalError;
pub use format::MAX_RECORD;

use format::{Op, HEADER};
use writer::{Counters, Inner, Job, Reply, State};

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
    /// Zeroed space kept reserved after the records, topped up when less than half is left.
    /// Default 256 KiB; 0 turns reserving off (every append then grows the file).
    pub reserve_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compact_min_bytes: 1 << 20,
            compact_ratio: 4,
            reserve_bytes: 256 << 10,
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
    /// Records appended (one `write` each).
    pub records: u64,
    /// Fsyncs done for durable writes (shared by those queued together).
    pub syncs: u64,
    /// Times zeroed space was reserved after the records: one write of zeros and one fsync
    /// each (that fsync also makes the records before it durable).
    pub reserves: u64,
    /// Compactions done.
    pub compactions: u64,
    /// Where the records end. The file itself is longer by the space reserved after them.
    pub file_bytes: u64,
    /// The size the file would have with live records only.
    pub live_bytes: u64,
}

/// A handle on an open journal; clones share it. The background thread ends, and the file is
/// closed, when the last handle is dropped.
#[derive(Clone)]
pub struct Journal {
    jobs: Sender<Job>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` with default [`Options`], replays it, and
    /// starts its background thread. The parent directory is created if missing.
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
        let file = open_locked(&path)?;
        // A compaction interrupted before its rename: the journal itself is intact. Only the
        // lock holder may remove it (another writer's compaction may be writing it).
        let _ = std::fs::remove_file(writer::compaction_path(&path));
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
        let (replay, len, file_len) = match parse(&path, &bytes)? {
            None => {
                // New, or created by a process killed before the header was complete.
                file.set_len(0).map_err(io("truncate", &path))?;
                file.write_all_at(HEADER, 0).map_err(io("write", &path))?;
                file.sync_all().map_err(io("fsync", &path))?;
                writer::sync_dir(&path)?;
                (Replay::default(), HEADER.len() as u64, HEADER.len() as u64)
            }
            Some(decoded) => {
                let mut file_len = bytes.len() as u64;
                if let Some(why) = &decoded.invalid_tail {
                    tracing::warn!(journal = %path.display(), "journal ends in {why}: a write cut short by a crash; dropped");
                    file.set_len(decoded.valid_len)
                        .map_err(io("cut the invalid tail off", &path))?;
                    file.sync_all().map_err(io("fsync", &path))?;
                    file_len = decoded.valid_len;
                }
                let len = decoded.valid_len;
                (Replay::from(decoded), len, file_len)
            }
        };
        let live: HashMap<String, u64> = replay
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), format::encoded_len(k, v) as u64))
            .collect();
        let live_bytes = live.values().sum();
        let inner = Arc::new(Inner {
            path: path.clone(),
            options,
            state: Mutex::new(State {
                file: Some(Arc::new(file)),
                len,
                reserved_to: file_len,
                dirty_tail: false,
                live,
                live_bytes,
                written: 0,
                next_compaction_at: options.compact_min_bytes,
                compaction_queued: false,
                reserve_queued: false,
                reserve_failed: false,
                buf: Vec::new(),
            }),
            synced: AtomicU64::new(0),
            counters: Counters::default(),
        });
        inner.publish(&inner.lock());
        let (jobs, rx) = std::sync::mpsc::channel();
        let background = inner.clone();
        std::thread::Builder::new()
            .name("berth-journal".into())
            .spawn(move || writer::run(background, rx))
            .map_err(io("start the background thread of", &path))?;
        Ok((Journal { jobs, inner }, replay))
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
        &self.inner.path
    }

    /// Counters since the journal was opened.
    pub fn stats(&self) -> JournalStats {
        let c = &self.inner.counters;
        JournalStats {
            records: c.records.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            reserves: c.reserves.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            file_bytes: c.file_len.load(Ordering::Relaxed),
            live_bytes: c.live_bytes.load(Ordering::Relaxed),
        }
    }

    /// Sets `key` to `value`. The record is written before this returns to the caller's
    /// thread; a [`Durability::Durable`] write then waits for its fsync. Dropping the future
    /// does not withdraw the write.
    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        durability: Durability,
    ) -> Result<(), JournalError> {
        let seq = self.append(Op::Put, key, &value)?;
        self.settle_async(seq, durability).await
    }

    /// Removes `key` (a key that is not there is fine).
    pub async fn remove(&self, key: &str, durability: Durability) -> Result<(), JournalError> {
        let seq = self.append(Op::Remove, key, &[])?;
        self.settle_async(seq, durability).await
    }

    /// Returns once everything written before is fsynced.
    pub async fn sync(&self) -> Result<(), JournalError> {
        let seq = self.written()?;
        self.settle_async(seq, Durability::Durable).await
    }

    /// [`put`](Self::put) for threads outside an async runtime (a durable write blocks the
    /// thread until its fsync).
    pub fn put_blocking(
        &self,
        key: &str,
        value: Vec<u8>,
        durability: Durability,
    ) -> Result<(), JournalError> {
        let seq = self.append(Op::Put, key, &value)?;
        self.settle_blocking(seq, durability)
    }

    /// [`remove`](Self::remove) for threads outside an async runtime.
    pub fn remove_blocking(&self, key: &str, durability: Durability) -> Result<(), JournalError> {
        let seq = self.append(Op::Remove, key, &[])?;
        self.settle_blocking(seq, durability)
    }

    /// [`sync`](Self::sync) for threads outside an async runtime.
    pub fn sync_blocking(&self) -> Result<(), JournalError> {
        let seq = self.written()?;
        self.settle_blocking(seq, Durability::Durable)
    }

    /// Syncs, then closes the journal for every handle: the file is closed (its lock released,
    /// so it can be opened again) and later writes fail with [`JournalError::Closed`]. For a
    /// process about to exit or hand the file over; blocks until done.
    pub fn close(&self) -> Result<(), JournalError> {
        self.ask_blocking(|reply| Job::Close { reply })
    }

    /// Checks the key and size, then appends the record; returns its sequence number.
    fn append(&self, op: Op, key: &str, value: &[u8]) -> Result<u64, JournalError> {
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
        let len = format::encoded_len(key, value);
        if len > MAX_RECORD {
            return Err(JournalError::TooLarge {
                key: key.chars().take(100).collect(),
                len,
                max: MAX_RECORD,
            });
        }
        self.inner.append(&self.jobs, op, key, value)
    }

    /// The sequence number of the last record written, or `Closed`.
    fn written(&self) -> Result<u64, JournalError> {
        let st = self.inner.lock();
        match st.file {
            Some(_) => Ok(st.written),
            None => Err(self.inner.closed()),
        }
    }

    /// Whether a write of this durability, numbered `seq`, still needs an fsync.
    fn needs_sync(&self, seq: u64, durability: Durability) -> bool {
        durability == Durability::Durable && self.inner.synced.load(Ordering::Acquire) < seq
    }

    async fn settle_async(&self, seq: u64, durability: Durability) -> Result<(), JournalError> {
        if !self.needs_sync(seq, durability) {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Sync {
            upto: seq,
            reply: Reply::Async(tx),
        })?;
        rx.await.map_err(|_| self.inner.closed())?
    }

    fn settle_blocking(&self, seq: u64, durability: Durability) -> Result<(), JournalError> {
        if !self.needs_sync(seq, durability) {
            return Ok(());
        }
        self.ask_blocking(|reply| Job::Sync { upto: seq, reply })
    }

    /// Hands a job to the background thread and blocks until it answers.
    fn ask_blocking(&self, job: impl FnOnce(Reply) -> Job) -> Result<(), JournalError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(job(Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| self.inner.closed())?
    }

    /// Hands a job to the background thread; `Closed` if it has stopped.
    fn send(&self, job: Job) -> Result<(), JournalError> {
        self.jobs.send(job).map_err(|_| self.inner.closed())
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

/// Opens the journal file and takes the exclusive lock that keeps a second writer out. The
/// lock belongs to the open file, so it lasts until the file is closed. A compaction replaces
/// the file under its name: a lock won on the replaced file guards nothing, so the name is
/// checked to still lead to the locked file, and opened again if not.
fn open_locked(path: &Path) -> Result<std::fs::File, JournalError> {
    let io = |action: &'static str| {
        move |source| JournalError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let started = std::time::Instant::now();
    loop {
        // Records may hold secrets (a container's environment): owner only, like Docker's own
        // container configs.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io("open"))?;
        loop {
            match try_lock(&file) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(JournalError::InUse {
                            path: path.to_path_buf(),
                            waited_ms: started.elapsed().as_millis() as u64,
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(io("lock")(e)),
            }
        }
        let locked = file.metadata().map_err(io("stat"))?;
        match std::fs::metadata(path) {
            Ok(named) if named.dev() == locked.dev() && named.ino() == locked.ino() => {
                return Ok(file)
            }
            // Replaced (or removed) while we waited: try the file the name leads to now.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("stat")(e)),
        }
    }
}

/// The exclusive, non-blocking `flock`; `WouldBlock` when another open file holds it.
pub(crate) fn try_lock(file: &std::fs::File) -> std::io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    flock(file, FlockOperation::NonBlockingLockExclusive).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests;
