//! The blocking half of a container's log: writes batches into the files, rotates, retries or
//! drops on write errors, and checkpoints. It runs on Tokio's blocking threads, one batch at a
//! time, so the async runtime never waits on the disk.
//!
//! Checkpoints go to the logger's shared journal ([`crate::checkpoint`]): lazily (written, not
//! fsynced) at the start and every checkpoint interval while output flows; durably at
//! [`Writer::finish`], after `keep` rotations of a stream since the last durable one, and always
//! with [`LoggerConfig::durable_checkpoints`](crate::LoggerConfig). The log files are synced
//! before the final checkpoint (and before every one with `durable_checkpoints`), but only the
//! files with bytes not synced yet: a container without output costs no file sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_journal::Durability;

use crate::batch::Batch;
use crate::checkpoint::{Checkpoint, CheckpointStore, FileRecord, Phase, Totals, FORMAT_VERSION};
use crate::file::StreamFile;
use crate::metrics::LoggerMetrics;
use crate::position::Position;
use crate::{LogReport, OutputStream};

/// Timing knobs of the writer (see [`crate::LoggerConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub checkpoint_interval: Duration,
    pub retry_window: Duration,
    pub durable_checkpoints: bool,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How writing is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// The last write succeeded.
    Healthy,
    /// Writes have been failing since `since`; the same bytes are retried until the retry window
    /// has passed.
    Retrying { since: Instant, attempt: u32 },
    /// The retry window passed: every write is tried once and its bytes dropped if it fails,
    /// until one succeeds.
    Dropping { since: Instant, dropped: u64 },
}

/// What to do with bytes whose write failed.
enum Verdict {
    Retry,
    Drop,
}

/// A checkpoint ready to be stored, and what storing it reports on.
struct PreparedCheckpoint {
    checkpoint: Checkpoint,
    durability: Durability,
    /// Whether syncing the files (if done) went well.
    files_ok: bool,
    since_last: std::time::Duration,
}

/// The files, position and checkpoint of one container.
#[derive(Debug)]
pub(crate) struct Writer {
    container_id: String,
    files: [StreamFile; 2],
    position: Position,
    totals: Totals,
    checkpoints: Arc<CheckpointStore>,
    last_checkpoint: Instant,
    bytes_at_last_checkpoint: u64,
    dirty: bool,
    /// Rotations per stream since the last durable checkpoint.
    rotations_since_durable: [u32; 2],
    health: Health,
    tuning: Tuning,
    metrics: Arc<LoggerMetrics>,
    /// When the files were last checked for removal or replacement (see
    /// [`Writer::check_files`]).
    last_file_check: Instant,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        container_id: String,
        stdout: StreamFile,
        stderr: StreamFile,
        position: Position,
        totals: Totals,
        checkpoints: Arc<CheckpointStore>,
        tuning: Tuning,
        metrics: Arc<LoggerMetrics>,
    ) -> Self {
        Writer {
            container_id,
            files: [stdout, stderr],
            position,
            totals,
            checkpoints,
            last_checkpoint: Instant::now(),
            bytes_at_last_checkpoint: totals.stdout_bytes + totals.stderr_bytes,
            dirty: true,
            rotations_since_durable: [0, 0],
            health: Health::Healthy,
            tuning,
            metrics,
            last_file_check: Instant::now(),
        }
    }

    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    /// See [`Position::give_up_offsets`].
    pub fn give_up_offsets(&mut self) {
        self.position.give_up_offsets();
    }

    /// Writes a whole batch (retrying or dropping per the fault policy), then checkpoints if one
    /// is due or `force_checkpoint` is set.
    pub fn write_batch(&mut self, batch: &Batch, force_checkpoint: bool) {
        // Output after a quiet spell must not go to a file the container removed meanwhile
        // (it would be lost with it): look once per checkpoint interval, before writing. The
        // stream's tick submits an empty batch when it is quiet, so this also runs then.
        if self.last_file_check.elapsed() >= self.tuning.checkpoint_interval {
            self.check_files();
        }
        let mut offset = 0;
        for seg in &batch.segments {
            // Bytes a replay delivered again are in the files already: only their time counts.
            self.position
                .record_replayed(seg.stream, seg.timestamp, seg.replayed);
            self.write_segment(
                seg.stream,
                seg.timestamp,
                &batch.data[offset..offset + seg.len],
            );
            offset += seg.len;
        }
        if force_checkpoint || self.checkpoint_due() {
            self.checkpoint(Phase::Running, false);
        }
    }

    fn write_segment(
        &mut self,
        stream: OutputStream,
        timestamp: Option<std::time::SystemTime>,
        data: &[u8],
    ) {
        let i = stream.index();
        let mut rest = data;
        while !rest.is_empty() {
            match self.files[i].write_some(rest) {
                Ok(w) => {
                    let n = w.bytes as u64;
                    self.position.record(stream, timestamp, &rest[..w.bytes]);
                    match stream {
                        OutputStream::Stdout => self.totals.stdout_bytes += n,
                        OutputStream::Stderr => self.totals.stderr_bytes += n,
                    }
                    self.metrics.add_written(n);
                    self.dirty = true;
                    rest = &rest[w.bytes..];
                    self.healed();
                    if w.rotated {
                        self.totals.rotations += 1;
                        self.metrics.rotation();
                        self.rotations_since_durable[i] += 1;
                        // Recovery finds the checkpointed file among the rotated ones by inode; the
                        // next rotation would delete it (and a new file may then get its inode
                        // number), so name the new one now, durably: no checkpoint a host crash
                        // can leave names a deleted file. Lazy checkpoints in between do not
                        // count, as a host crash may lose them.
                        if self.rotations_since_durable[i] >= self.files[i].keep() {
                            self.checkpoint(Phase::Running, true);
                        }
                    }
                }
                Err(e) => match self.on_write_error(stream, &e) {
                    Verdict::Retry => {}
                    Verdict::Drop => {
                        let n = rest.len() as u64;
                        // Dropped bytes count as consumed: a replay after a restart must not bring
                        // them back out of order.
                        self.position.record(stream, timestamp, rest);
                        self.totals.dropped_bytes += n;
                        self.metrics.add_dropped(n);
                        if let Health::Dropping { dropped, .. } = &mut self.health {
                            *dropped += n;
                        }
                        self.dirty = true;
                        rest = &[];
                    }
                },
            }
        }
    }

    fn on_write_error(&mut self, stream: OutputStream, error: &std::io::Error) -> Verdict {
        self.metrics.write_error();
        self.totals.write_errors += 1;
        let path = self.files[stream.index()].path();
        match self.health {
            Health::Healthy => {
                tracing::warn!(
                    container_id = %self.container_id, path = %path.display(), %error,
                    retry_window_s = self.tuning.retry_window.as_secs_f64(),
                    "writing container log failed; retrying"
                );
                self.health = Health::Retrying {
                    since: Instant::now(),
                    attempt: 0,
                };
                self.on_write_error_retrying()
            }
            Health::Retrying { .. } => self.on_write_error_retrying(),
            Health::Dropping { .. } => Verdict::Drop,
        }
    }

    fn on_write_error_retrying(&mut self) -> Verdict {
        let Health::Retrying { since, attempt } = self.health else {
            return Verdict::Drop;
        };
        let elapsed = since.elapsed();
        if elapsed >= self.tuning.retry_window {
            tracing::error!(
                container_id = %self.container_id, failing_for_s = elapsed.as_secs_f64(),
                "container log writes still failing after the retry window; dropping output until a write succeeds"
            );
            self.health = Health::Dropping {
                since: Instant::now(),
                dropped: 0,
            };
            return Verdict::Drop;
        }
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << attempt.min(16))
            .min(MAX_BACKOFF);
        std::thread::sleep(backoff.min(self.tuning.retry_window - elapsed));
        self.health = Health::Retrying {
            since,
            attempt: attempt + 1,
        };
        Verdict::Retry
    }

    fn healed(&mut self) {
        match self.health {
            Health::Healthy => {}
            Health::Retrying { since, .. } => {
                tracing::info!(
                    container_id = %self.container_id, failed_for_s = since.elapsed().as_secs_f64(),
                    "container log writes succeed again; nothing was dropped"
                );
            }
            Health::Dropping { since, dropped } => {
                tracing::warn!(
                    container_id = %self.container_id, dropped_bytes = dropped,
                    dropped_for_s = since.elapsed().as_secs_f64(),
                    "container log writes succeed again after dropping output"
                );
            }
        }
        self.health = Health::Healthy;
    }

    fn checkpoint_due(&self) -> bool {
        self.dirty && self.last_checkpoint.elapsed() >= self.tuning.checkpoint_interval
    }

    /// Recreates deleted files, syncs the files' unsynced bytes (at the finish, or always with
    /// `durable_checkpoints`), then stores a checkpoint: durably if the files were synced or
    /// `durable` is set, else lazily. Failures are reported, counted and retried at the next
    /// checkpoint; they never stop the logging.
    fn checkpoint(&mut self, phase: Phase, durable: bool) -> bool {
        let prepared = self.prepare_checkpoint(phase, durable, true);
        let stored = self
            .checkpoints
            .store(&prepared.checkpoint, prepared.durability);
        self.after_store(prepared, stored)
    }

    /// Everything of [`checkpoint`](Self::checkpoint) before the record is stored: recreating
    /// deleted files, syncing them when due, and the record itself.
    ///
    /// `recreate` false skips recreating (on the async runtime, which must not wait on the
    /// disk: a file removed since [`finish_blocks`](Self::finish_blocks) looked stays gone).
    fn prepare_checkpoint(
        &mut self,
        phase: Phase,
        durable: bool,
        recreate: bool,
    ) -> PreparedCheckpoint {
        let mut files_ok = true;
        if recreate {
            self.check_files();
        }
        let sync_files = self.tuning.durable_checkpoints || phase == Phase::Finished;
        if sync_files {
            for f in &mut self.files {
                let synced = if phase == Phase::Finished {
                    f.sync_all()
                } else {
                    f.sync_data()
                };
                if let Err(error) = synced {
                    files_ok = false;
                    self.metrics.write_error();
                    self.totals.write_errors += 1;
                    tracing::warn!(container_id = %self.container_id, path = %f.path().display(), %error, "cannot sync container log file");
                }
            }
        }
        for f in &mut self.files {
            self.metrics.add_file_syncs(f.take_syncs());
            self.metrics.add_names_replaced(f.take_replaced());
        }
        let durability = if sync_files || durable {
            Durability::Durable
        } else {
            Durability::Lazy
        };
        let since_last = self.last_checkpoint.elapsed();
        self.last_checkpoint = Instant::now();
        PreparedCheckpoint {
            checkpoint: self.snapshot(phase),
            durability,
            files_ok,
            since_last,
        }
    }

    /// Recreates a current file the container removed (or replaced: the new name is never
    /// written through, see [`crate::file`]). An `fstat` of each file when nothing happened.
    fn check_files(&mut self) {
        self.last_file_check = Instant::now();
        for f in &mut self.files {
            match f.reopen_if_removed() {
                Ok(false) => {}
                Ok(true) => {
                    self.metrics.file_recreated();
                    tracing::warn!(
                        container_id = %self.container_id, path = %f.path().display(),
                        "container log file was deleted while in use; created it anew"
                    );
                }
                Err(error) => {
                    self.metrics.write_error();
                    tracing::warn!(
                        container_id = %self.container_id, path = %f.path().display(), %error,
                        "cannot check or recreate container log file"
                    );
                }
            }
        }
    }

    /// Accounts for a stored (or failed) checkpoint; returns whether all of it went well.
    fn after_store(
        &mut self,
        prepared: PreparedCheckpoint,
        stored: Result<(), crate::LoggerError>,
    ) -> bool {
        let PreparedCheckpoint {
            durability,
            files_ok,
            since_last,
            ..
        } = prepared;
        match stored {
            Ok(()) => {
                self.stored(durability);
                let total = self.totals.stdout_bytes + self.totals.stderr_bytes;
                let delta = total - self.bytes_at_last_checkpoint;
                self.bytes_at_last_checkpoint = total;
                tracing::debug!(
                    container_id = %self.container_id,
                    stdout_bytes = self.totals.stdout_bytes,
                    stderr_bytes = self.totals.stderr_bytes,
                    dropped_bytes = self.totals.dropped_bytes,
                    rate_bytes_per_s = (delta as f64 / since_last.as_secs_f64().max(1e-3)) as u64,
                    durable = durability == Durability::Durable,
                    "container log checkpoint"
                );
                files_ok
            }
            Err(error) => {
                self.metrics.checkpoint_error();
                tracing::warn!(container_id = %self.container_id, %error, "cannot store container log checkpoint");
                false
            }
        }
    }

    /// The checkpoint describing the current state.
    pub fn snapshot(&self, phase: Phase) -> Checkpoint {
        let rec = |f: &StreamFile| FileRecord {
            inode: f.inode(),
            len: f.len(),
        };
        Checkpoint {
            version: FORMAT_VERSION,
            container_id: self.container_id.clone(),
            phase,
            position: self.position.clone(),
            stdout: rec(&self.files[0]),
            stderr: rec(&self.files[1]),
            totals: self.totals,
        }
    }

    /// Bookkeeping after a checkpoint was stored.
    fn stored(&mut self, durability: Durability) {
        let durable = durability == Durability::Durable;
        self.metrics.checkpoint_stored(durable);
        self.dirty = false;
        if durable {
            self.rotations_since_durable = [0, 0];
        }
    }

    /// Stores the first checkpoint of a log, durably if `durable` (or `durable_checkpoints`) is
    /// set, else lazily; unlike later ones, failing it is an error (the container should not
    /// start with a log that cannot be recovered).
    pub fn initial_checkpoint(&mut self, durable: bool) -> Result<(), crate::LoggerError> {
        let durability = if durable || self.tuning.durable_checkpoints {
            Durability::Durable
        } else {
            Durability::Lazy
        };
        self.checkpoints
            .store(&self.snapshot(Phase::Running), durability)?;
        self.stored(durability);
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Syncs the files that have unsynced bytes and stores the final checkpoint, durably.
    pub fn finish(&mut self) -> LogReport {
        let complete = self.checkpoint(Phase::Finished, true);
        self.report(complete)
    }

    /// Whether [`finish`](Self::finish) would sync a log file (bytes written and not synced yet,
    /// by this run or, for rotated files, an earlier one) or make one anew (the container
    /// removed or replaced it: taking the name back may mean removing a whole directory tree the
    /// container put there): then it belongs on a blocking thread. Otherwise
    /// [`finish_async`](Self::finish_async) does the same without one. Costs an `fstat` of each
    /// file the writer holds open.
    pub fn finish_blocks(&self) -> bool {
        self.files
            .iter()
            .any(|f| f.needs_sync() || f.is_removed().unwrap_or(true))
    }

    /// [`finish`](Self::finish) for a log whose files need no sync and none made anew (see
    /// [`finish_blocks`](Self::finish_blocks)): what is left is a couple of `fstat`s and the
    /// durable final checkpoint, whose fsync is awaited, not blocked on.
    pub async fn finish_async(&mut self) -> LogReport {
        let prepared = self.prepare_checkpoint(Phase::Finished, true, false);
        let stored = self
            .checkpoints
            .store_async(&prepared.checkpoint, prepared.durability)
            .await;
        let complete = self.after_store(prepared, stored);
        self.report(complete)
    }

    fn report(&self, complete: bool) -> LogReport {
        LogReport {
            container_id: self.container_id.clone(),
            stdout_bytes: self.totals.stdout_bytes,
            stderr_bytes: self.totals.stderr_bytes,
            dropped_bytes: self.totals.dropped_bytes,
            rotations: self.totals.rotations,
            write_errors: self.totals.write_errors,
            complete,
        }
    }
}
