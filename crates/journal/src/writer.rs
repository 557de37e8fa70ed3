//! The journal's shared state and its background thread.
//!
//! Records are appended by the caller's own thread under a mutex: a write to the page cache
//! costs a few microseconds, far less than handing it to another thread and waking the caller
//! back. What must not run on a caller's thread goes to one background thread:
//!
//! - **fsync** for durable writes. Every sync request queued while the previous fsync ran is
//!   answered by one `fdatasync` covering all records written so far (group commit).
//! - **reserving space**: zeros written ahead of the records (see [`crate::Options`]), so an
//!   append does not grow the file and its `fdatasync` does not also write the inode.
//! - **compaction**, when dead records outweigh live ones.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::format::{self, Op, HEADER};
use crate::{JournalError, Options};

/// Where a sync request's answer goes.
pub(crate) enum Reply {
    Async(tokio::sync::oneshot::Sender<Result<(), JournalError>>),
    Blocking(std::sync::mpsc::SyncSender<Result<(), JournalError>>),
}

impl Reply {
    fn send(self, result: Result<(), JournalError>) {
        // A requester that went away does not want its answer.
        let _ = match self {
            Reply::Async(tx) => tx.send(result).map_err(drop),
            Reply::Blocking(tx) => tx.send(result).map_err(drop),
        };
    }
}

/// Work for the background thread.
pub(crate) enum Job {
    /// Answer once every record up to sequence number `upto` is fsynced.
    Sync { upto: u64, reply: Reply },
    /// Reserve more zeroed space after the records.
    Reserve,
    /// Rewrite the file with live records only.
    Compact,
    /// Sync everything, close the file and stop.
    Close { reply: Reply },
}

/// Counters, readable without the lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub records: AtomicU64,
    pub syncs: AtomicU64,
    pub reserves: AtomicU64,
    pub compactions: AtomicU64,
    pub file_len: AtomicU64,
    pub live_bytes: AtomicU64,
}

/// The file and what is known about it. Only ever touched under [`Inner::state`].
#[derive(Debug)]
pub(crate) struct State {
    /// `None` once closed.
    pub file: Option<Arc<File>>,
    /// Where the valid records end: the next record is written here.
    pub len: u64,
    /// The file's length: `len` plus the zeroed space reserved after it.
    pub reserved_to: u64,
    /// Bytes beyond `len` may hold a failed write's partial record: cut them off first.
    pub dirty_tail: bool,
    /// Encoded size of each live key's newest record (for the live-bytes count).
    pub live: HashMap<String, u64>,
    pub live_bytes: u64,
    /// Sequence number of the last record written (records are numbered from 1).
    pub written: u64,
    /// No compaction is tried before the records reach this size (raised after a failed one).
    pub next_compaction_at: u64,
    pub compaction_queued: bool,
    pub reserve_queued: bool,
    /// Reserving space failed (a full disk, say): appends grow the file instead.
    pub reserve_failed: bool,
    pub buf: Vec<u8>,
}

/// What every handle and the background thread share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub path: PathBuf,
    pub options: Options,
    pub state: Mutex<State>,
    /// Every record up to this sequence number is fsynced.
    pub synced: AtomicU64,
    pub counters: Counters,
}

pub(crate) fn io_error(action: &'static str, path: &Path, e: &std::io::Error) -> JournalError {
    JournalError::Io {
        action,
        path: path.to_path_buf(),
        // io::Error is not Clone: every waiter of a sync gets its own copy.
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

impl State {
    /// Cuts the file right after the records, dropping a failed write's partial bytes (and the
    /// reserved space with them); `dirty_tail` stays set if that fails.
    fn cut_after_records(&mut self, file: &File) -> std::io::Result<()> {
        file.set_len(self.len)?;
        self.dirty_tail = false;
        self.reserved_to = self.len;
        Ok(())
    }
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the file inconsistent (a record is either
        // counted in `len` or not), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn closed(&self) -> JournalError {
        JournalError::Closed {
            path: self.path.clone(),
        }
    }

    /// Appends one record on the caller's thread and returns its sequence number. Queues
    /// reserving space and compaction on the background thread when they are due.
    pub fn append(
        &self,
        jobs: &Sender<Job>,
        op: Op,
        key: &str,
        value: &[u8],
    ) -> Result<u64, JournalError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let file = st.file.clone().ok_or_else(|| self.closed())?;
        if st.dirty_tail {
            st.cut_after_records(&file)
                .map_err(|e| io_error("cut a failed write off", &self.path, &e))?;
        }
        st.buf.clear();
        format::encode(&mut st.buf, op, key, value);
        if let Err(e) = file.write_all_at(&st.buf, st.len) {
            // Part of the record may be on disk; it was not acknowledged, so it may never be
            // replayed.
            st.dirty_tail = true;
            let _ = st.cut_after_records(&file);
            return Err(io_error("write", &self.path, &e));
        }
        st.len += st.buf.len() as u64;
        st.reserved_to = st.reserved_to.max(st.len);
        st.written += 1;
        let old = match op {
            Op::Put => {
                let size = st.buf.len() as u64;
                st.live_bytes += size;
                st.live.insert(key.to_owned(), size)
            }
            Op::Remove => st.live.remove(key),
        };
        st.live_bytes -= old.unwrap_or(0);
        self.counters.records.fetch_add(1, Ordering::Relaxed);
        self.publish(st);

        let reserve = self.options.reserve_bytes;
        if reserve > 0
            && !st.reserve_failed
            && !st.reserve_queued
            && st.reserved_to - st.len < reserve / 2
        {
            st.reserve_queued = jobs.send(Job::Reserve).is_ok();
        }
        let live = st.live_bytes + HEADER.len() as u64;
        if !st.compaction_queued
            && st.len >= st.next_compaction_at
            && st.len >= self.options.compact_ratio.saturating_mul(live)
        {
            st.compaction_queued = jobs.send(Job::Compact).is_ok();
        }
        Ok(st.written)
    }

    /// Makes the file length and live bytes readable without the lock ([`crate::Journal::stats`]).
    pub fn publish(&self, st: &State) {
        self.counters.file_len.store(st.len, Ordering::Relaxed);
        self.counters
            .live_bytes
            .store(st.live_bytes + HEADER.len() as u64, Ordering::Relaxed);
    }
}

/// The background thread's loop; it ends when every handle is gone or on [`Job::Close`].
pub(crate) fn run(inner: Arc<Inner>, jobs: Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let mut syncs = Vec::new();
        let mut close = None;
        for job in batch {
            match job {
                Job::Sync { upto, reply } => syncs.push((upto, reply)),
                Job::Reserve => reserve(&inner),
                Job::Compact => compact(&inner),
                Job::Close { reply } => close = Some(reply),
            }
        }
        let want = syncs.iter().map(|(upto, _)| *upto).max().unwrap_or(0);
        if want > inner.synced.load(Ordering::Acquire) || close.is_some() {
            let result = sync(&inner);
            let answer = || match &result {
                Ok(()) => Ok(()),
                Err(Some(e)) => Err(io_error("fsync", &inner.path, e)),
                Err(None) => Err(inner.closed()),
            };
            for (_, reply) in syncs {
                reply.send(answer());
            }
            if let Some(reply) = close {
                inner.lock().file = None;
                reply.send(answer());
                // Jobs queued behind the close get no answer: their callers see `Closed`.
                return;
            }
        } else {
            // An fsync since those records were written (a compaction's, say) covered them.
            for (_, reply) in syncs {
                reply.send(Ok(()));
            }
        }
    }
}

/// One `fdatasync` covering every record written so far. `Err(None)`: the journal is closed.
fn sync(inner: &Inner) -> Result<(), Option<std::io::Error>> {
    let (file, upto) = {
        let st = inner.lock();
        (st.file.clone(), st.written)
    };
    let Some(file) = file else {
        return Err(None);
    };
    file.sync_data().map_err(Some)?;
    inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
    inner.synced.fetch_max(upto, Ordering::AcqRel);
    Ok(())
}

/// Zeros a stretch after the records and makes the new length durable, so that the next
/// appends overwrite allocated blocks of a file whose size does not change.
fn reserve(inner: &Inner) {
    let (file, upto) = {
        let mut st = inner.lock();
        st.reserve_queued = false;
        let Some(file) = st.file.clone() else { return };
        let want = inner.options.reserve_bytes;
        if st.reserve_failed || st.reserved_to - st.len >= want / 2 {
            return;
        }
        let start = st.reserved_to;
        let end = st.len + want;
        if let Err(e) = write_zeros(&file, start, end) {
            // Leave no half-reserved stretch; appends simply grow the file from now on.
            let _ = file.set_len(start);
            st.reserve_failed = true;
            tracing::warn!(journal = %inner.path.display(), error = %e, "cannot reserve space ahead of the journal's records; appending without");
            return;
        }
        st.reserved_to = end;
        (file, st.written)
    };
    // Outside the lock: appends go on while the new length reaches the disk.
    match file.sync_data() {
        Ok(()) => {
            inner.counters.reserves.fetch_add(1, Ordering::Relaxed);
            inner.synced.fetch_max(upto, Ordering::AcqRel);
        }
        Err(e) => {
            tracing::warn!(journal = %inner.path.display(), error = %e, "cannot fsync the journal's reserved space")
        }
    }
}

fn compact(inner: &Inner) {
    match compact_file(inner) {
        Ok(true) => {
            inner.counters.compactions.fetch_add(1, Ordering::Relaxed);
            let mut st = inner.lock();
            st.compaction_queued = false;
            st.next_compaction_at = inner.options.compact_min_bytes;
            tracing::debug!(journal = %inner.path.display(), bytes = st.len, "journal compacted");
        }
        Ok(false) => inner.lock().compaction_queued = false,
        Err(e) => {
            // Not retried on every write: the file keeps working, only larger.
            let mut st = inner.lock();
            st.compaction_queued = false;
            st.next_compaction_at = st.len + inner.options.compact_min_bytes;
            tracing::warn!(journal = %inner.path.display(), error = %e, "journal compaction failed; will retry once it has grown");
        }
    }
}

/// Rewrites the file with one record per live key: a temporary file, fsynced, renamed over
/// the journal, the directory fsynced. A crash at any point leaves the old or the new file,
/// both complete. The long part (reading and rewriting the file) runs without the lock;
/// records appended meanwhile are copied over under it, just before the switch. Returns
/// whether it compacted (not if the journal was closed meanwhile).
fn compact_file(inner: &Inner) -> Result<bool, JournalError> {
    let path = &inner.path;
    let (file, snapshot_len) = {
        let st = inner.lock();
        match &st.file {
            Some(f) => (f.clone(), st.len),
            None => return Ok(false),
        }
    };
    let mut bytes = vec![0; snapshot_len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| io_error("read back", path, &e))?;
    drop(file);
    let decoded = format::decode(&bytes);
    let mut out = HEADER.to_vec();
    for (key, value) in &decoded.entries {
        format::encode(&mut out, Op::Put, key, value);
    }
    let tmp = compaction_path(path);
    let fail = |e: std::io::Error| {
        let _ = fs::remove_file(&tmp);
        io_error("write the compacted", path, &e)
    };
    let new = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    // The new file takes over the single-writer lock before it takes over the name.
    crate::try_lock(&new).map_err(fail)?;
    new.write_all_at(&out, 0).map_err(fail)?;

    let mut st = inner.lock();
    let Some(file) = st.file.clone() else {
        let _ = fs::remove_file(&tmp);
        return Ok(false);
    };
    let mut tail = vec![0; (st.len - snapshot_len) as usize];
    file.read_exact_at(&mut tail, snapshot_len).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error("read back", path, &e)
    })?;
    new.write_all_at(&tail, out.len() as u64).map_err(fail)?;
    let len = (out.len() + tail.len()) as u64;
    let reserved_to = if st.reserve_failed {
        len
    } else {
        len + inner.options.reserve_bytes
    };
    write_zeros(&new, len, reserved_to).map_err(fail)?;
    new.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)?;
    // From here the name leads to the new file: later records must go there, whatever the
    // directory fsync says.
    st.file = Some(Arc::new(new));
    st.len = len;
    st.reserved_to = reserved_to;
    st.dirty_tail = false;
    inner.publish(&st);
    sync_dir(path)?;
    // Everything written so far is in the new file, fsynced, and its name is durable.
    inner.synced.fetch_max(st.written, Ordering::AcqRel);
    Ok(true)
}

/// Writes zeros over `from..to`: real blocks, not a hole (`set_len` or `fallocate` would leave
/// blocks to allocate, or extents to convert, at the first write into them, and that metadata
/// change is exactly what reserving space avoids).
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(ZEROS.len());
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The temporary file a compaction writes.
pub(crate) fn compaction_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".compact");
    path.with_file_name(name)
}

/// Fsyncs the directory holding `path`, so a file created or renamed there stays.
pub(crate) fn sync_dir(path: &Path) -> Result<(), JournalError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // Some file systems cannot fsync a directory; the file itself was synced.
        Err(e) if e.kind() == ErrorKind::InvalidInput => Ok(()),
        Err(e) => Err(io_error("fsync the directory of", path, &e)),
    }
}
