//! The writer thread: takes every request queued since its last write as one batch, appends
//! them with one write, fsyncs once if any asked for it (group commit), answers each, and
//! compacts the file when dead records outweigh live ones.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use crate::format::{self, Op, HEADER};
use crate::{Durability, JournalError, Options, Shared};

/// Most requests taken into one batch (bounds the write buffer).
const MAX_BATCH: usize = 1024;

/// Where a request's answer goes.
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

/// One queued request: a record to append (none for a plain sync) and how durable it must be
/// before the answer.
pub(crate) struct Request {
    pub record: Option<(Op, String, Vec<u8>)>,
    /// Close the journal after this batch.
    pub close: bool,
    pub durability: Durability,
    pub reply: Reply,
}

/// The writer's view of the file.
pub(crate) struct Writer {
    pub path: PathBuf,
    pub file: File,
    /// Where the valid records end: the next batch is written here.
    pub len: u64,
    /// Bytes beyond `len` may hold a failed batch's partial write: cut them off first.
    pub dirty_tail: bool,
    /// Encoded size of each live key's newest record (for the live-bytes count).
    pub live: HashMap<String, u64>,
    pub live_bytes: u64,
    pub options: Options,
    /// No compaction is tried before the file reaches this size (raised after a failed one).
    pub next_compaction_at: u64,
    pub shared: Arc<Shared>,
    pub buf: Vec<u8>,
}

fn io_error(action: &'static str, path: &Path, e: &std::io::Error) -> JournalError {
    JournalError::Io {
        action,
        path: path.to_path_buf(),
        // io::Error is not Clone: every waiter of a batch gets its own copy.
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let close = batch.iter().any(|r| r.close);
            self.commit(batch);
            if close {
                // Requests queued behind the close get no answer: their callers see `Closed`.
                break;
            }
        }
    }

    fn commit(&mut self, batch: Vec<Request>) {
        self.buf.clear();
        let mut durable = false;
        for r in &batch {
            if let Some((op, key, value)) = &r.record {
                format::encode(&mut self.buf, *op, key, value);
            }
            durable |= r.durability == Durability::Durable;
        }
        let written = self.append();
        let synced = match &written {
            Ok(()) if durable => self.file.sync_data().map_err(|e| ("fsync", e)),
            Ok(()) => Ok(()),
            Err(_) => Ok(()),
        };
        if synced.is_ok() && durable {
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        if written.is_ok() {
            for r in &batch {
                if let Some((op, key, value)) = &r.record {
                    self.account(*op, key, value);
                    self.shared.records.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Before the answers, so a caller sees the stats and file its write left.
        self.maybe_compact();
        self.publish();
        for r in batch {
            let result = match (&written, &synced, r.durability) {
                (Err((action, e)), _, _) => Err(io_error(action, &self.path, e)),
                (Ok(()), Err((action, e)), Durability::Durable) => {
                    Err(io_error(action, &self.path, e))
                }
                _ => Ok(()),
            };
            r.reply.send(result);
        }
    }

    /// Writes the buffer at the end of the valid records.
    fn append(&mut self) -> Result<(), (&'static str, std::io::Error)> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.dirty_tail {
            self.file
                .set_len(self.len)
                .map_err(|e| ("cut a failed write off", e))?;
            self.dirty_tail = false;
        }
        match self.file.write_all_at(&self.buf, self.len) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // Part of the batch may be on disk; none of it was acknowledged, so none of it
                // may ever be replayed.
                self.dirty_tail = true;
                if self.file.set_len(self.len).is_ok() {
                    self.dirty_tail = false;
                }
                Err(("write", e))
            }
        }
    }

    fn account(&mut self, op: Op, key: &str, value: &[u8]) {
        let old = match op {
            Op::Put => {
                let size = format::encoded_len(key, value) as u64;
                self.live_bytes += size;
                self.live.insert(key.to_owned(), size)
            }
            Op::Remove => self.live.remove(key),
        };
        self.live_bytes -= old.unwrap_or(0);
    }

    fn publish(&self) {
        self.shared.file_len.store(self.len, Ordering::Relaxed);
        self.shared
            .live_bytes
            .store(self.live_bytes + HEADER.len() as u64, Ordering::Relaxed);
    }

    fn maybe_compact(&mut self) {
        let live = self.live_bytes + HEADER.len() as u64;
        if self.len < self.next_compaction_at
            || self.len < self.options.compact_ratio.saturating_mul(live)
        {
            return;
        }
        match self.compact() {
            Ok(()) => {
                self.shared.compactions.fetch_add(1, Ordering::Relaxed);
                self.next_compaction_at = self.options.compact_min_bytes;
                tracing::debug!(journal = %self.path.display(), bytes = self.len, "journal compacted");
            }
            Err(e) => {
                // Not retried on every batch: the file keeps working, only larger.
                self.next_compaction_at = self.len + self.options.compact_min_bytes;
                tracing::warn!(journal = %self.path.display(), error = %e, "journal compaction failed; will retry once it has grown");
            }
        }
    }

    /// Rewrites the file with one record per live key: a temporary file, fsynced, renamed over
    /// the journal, the directory fsynced. A crash at any point leaves the old or the new file,
    /// both complete.
    fn compact(&mut self) -> Result<(), JournalError> {
        let mut bytes = vec![0; self.len as usize];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| io_error("read back", &self.path, &e))?;
        let decoded = format::decode(&bytes);
        let mut out = HEADER.to_vec();
        for (key, value) in &decoded.entries {
            format::encode(&mut out, Op::Put, key, value);
        }
        let tmp = compaction_path(&self.path);
        let written = (|| {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all_at(&out, 0)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("write the compacted", &self.path, &e));
        }
        sync_dir(&self.path)?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| io_error("reopen", &self.path, &e))?;
        self.len = out.len() as u64;
        self.dirty_tail = false;
        Ok(())
    }
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
