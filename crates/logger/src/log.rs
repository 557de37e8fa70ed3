//! The async half of a container's log: reads the output stream, applies back-pressure, and
//! hands batches to the blocking [`Writer`](crate::writer::Writer).

use std::error::Error as StdError;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::batch::Batch;
use crate::error::LoggerError;
use crate::metrics::LoggerMetrics;
use crate::position::Position;
use crate::writer::Writer;
use crate::OutputChunk;

/// What a finished log reports. Byte counts cover the container's whole life, across agent
/// restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReport {
    /// The container.
    pub container_id: String,
    /// Bytes written to the stdout files (including any since deleted by rotation).
    pub stdout_bytes: u64,
    /// Bytes written to the stderr files (including any since deleted by rotation).
    pub stderr_bytes: u64,
    /// Bytes given up because writes kept failing (see the crate's fault policy).
    pub dropped_bytes: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Failed write, rotate or sync attempts.
    pub write_errors: u64,
    /// Whether the files were synced to disk and the final checkpoint stored.
    pub complete: bool,
}

/// Where the writer is.
#[derive(Debug)]
enum Slot {
    /// Waiting for work.
    Idle(Box<Writer>),
    /// Writing a batch on a blocking thread; gives the writer and the emptied batch back.
    Busy(JoinHandle<(Box<Writer>, Batch)>),
    /// Gone: it panicked, or the log was finished.
    Gone(String),
}

/// The log of one container, returned by [`ContainerLogger::prepare`](crate::ContainerLogger::prepare)
/// or [`ContainerLogger::recover`](crate::ContainerLogger::recover).
///
/// Feed it the container's output with [`consume`](Self::consume) (again after a stream error,
/// from [`resume_since`](Self::resume_since)), then call [`finish`](Self::finish) once the
/// container has exited. Memory use is bounded by two batches of
/// [`LoggerConfig::batch_bytes`](crate::LoggerConfig::batch_bytes) plus one chunk.
#[derive(Debug)]
pub struct ContainerLog {
    container_id: String,
    slot: Slot,
    pending: Batch,
    spare: Option<Batch>,
    /// Everything handed to the writer, written or not yet.
    accepted: Position,
    batch_bytes: usize,
    flush_delay: Duration,
    checkpoint_interval: Duration,
    was_finished: bool,
    metrics: Arc<LoggerMetrics>,
    open: bool,
    regression_reported: bool,
}

impl ContainerLog {
    pub(crate) fn new(
        writer: Writer,
        batch_bytes: usize,
        flush_delay: Duration,
        checkpoint_interval: Duration,
        was_finished: bool,
        metrics: Arc<LoggerMetrics>,
    ) -> Self {
        metrics.log_opened();
        ContainerLog {
            container_id: writer_id(&writer),
            accepted: writer.position().clone(),
            slot: Slot::Idle(Box::new(writer)),
            pending: Batch::with_capacity(batch_bytes),
            spare: None,
            batch_bytes,
            flush_delay,
            checkpoint_interval,
            was_finished,
            metrics,
            open: true,
            regression_reported: false,
        }
    }

    /// The container this log belongs to.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// Whether this log was recovered from a checkpoint written by [`finish`](Self::finish): the
    /// container's output had been completely consumed before the agent restarted.
    pub fn was_finished(&self) -> bool {
        self.was_finished
    }

    /// The `since` to open the next output stream with (Docker's `since`, which takes
    /// nanoseconds; this value is always a whole second), or `None` to read the output from the
    /// beginning. [`consume`](Self::consume) expects its stream to start there, and skips what
    /// was already written.
    ///
    /// **Guarantee.** If every chunk carries Docker's timestamp, the files end up holding each
    /// byte Docker replays exactly once — no gap, no duplicate — across stream errors and agent
    /// restarts, as long as (a) Docker still has the bytes (its copy's caps,
    /// [`DockerLogConfig`](crate::DockerLogConfig), may have discarded output while the agent was
    /// down: that is the only gap), (b) Docker did not hold back an entry for more than a second
    /// relative to an entry of the other stream stamped later (a replay from one second back
    /// covers that), and (c) the host clock did not step backwards. Bytes written after the last
    /// checkpoint are cut from the files on recovery and written again from the replay. If the
    /// checkpointed file disappeared (deleted, or rotated away with a keep count of 0), recovery
    /// cannot cut, and at most the bytes of one checkpoint interval (1 s by default) are
    /// repeated.
    ///
    /// **Untimed chunks** (Docker's attach stream) are counted per stream from the output's first
    /// byte ([`offsets`](Self::offsets)). While a stream's consumed bytes are all untimed this
    /// returns `None`: the replay starts at the output's first byte and the offsets are skipped,
    /// which is exact as long as Docker's copy still starts there (the container's output up to
    /// the restart fits in the copy's caps). A replay that ends before the offsets is counted
    /// (`replays_short`): its source had lost the beginning.
    ///
    /// **Host crash.** The above holds for an agent restart, however abrupt. A host crash (power
    /// loss, kernel panic) also loses what was only in the page cache, unless
    /// [`LoggerConfig::durable_checkpoints`](crate::LoggerConfig::durable_checkpoints) is set
    /// (then every checkpoint is durable and the files are synced before it):
    /// * output written to the files but not yet on disk is lost (recovery logs it as missing);
    /// * checkpoints are fsynced only at [`finish`](Self::finish), at recovery and every `keep`
    ///   rotations of a stream, so recovery may start from an older one: up to the kernel's writeback delay
    ///   (about 30 s) older, or less, as any durable checkpoint of any container makes all
    ///   earlier ones durable. The files are cut back to it and Docker replays more; what its
    ///   copy's caps no longer hold is lost. No checkpoint that can survive a crash names a
    ///   file rotation deleted, so the cut never hits an unrelated file;
    /// * a container none of whose checkpoints reached the disk (prepared within that delay of
    ///   the crash and not finished) has none: [`recover`](crate::ContainerLogger::recover)
    ///   returns [`LoggerError::NoCheckpoint`] and the caller
    ///   decides where to resume (Berth's containerizer: after the newest output in the files).
    pub fn resume_since(&self) -> Option<SystemTime> {
        self.accepted.resume_since()
    }

    /// Bytes consumed so far per stream (stdout, stderr) since the output's first byte, across
    /// agent restarts.
    pub fn offsets(&self) -> [u64; 2] {
        self.accepted.offsets()
    }

    /// The first bytes of each stream (stdout, stderr; up to 32) when the next stream must replay
    /// the output from its first byte and skip what was written ([`resume_since`] is `None`):
    /// the replay has to begin with them. A source that may have lost the output's beginning
    /// (Docker's copy rotates) can be checked against them before it is consumed; if it does not
    /// match, call [`give_up_offsets`](Self::give_up_offsets). `None` when there is nothing to
    /// check.
    ///
    /// [`resume_since`]: Self::resume_since
    pub fn start_prefixes(&self) -> Option<[Vec<u8>; 2]> {
        self.accepted
            .start_prefixes()
            .map(|[o, e]| [o.to_vec(), e.to_vec()])
    }

    /// The source no longer holds the output's first byte: stop resuming by offsets. The next
    /// stream may start anywhere (the caller chooses a `since` that repeats nothing, e.g. after
    /// the files' last write); nothing of it is skipped until it carries timestamps that place
    /// it. Must not be called while [`consume`](Self::consume) runs.
    pub fn give_up_offsets(&mut self) {
        self.accepted.give_up_offsets();
        if let Slot::Idle(writer) = &mut self.slot {
            writer.give_up_offsets();
        }
    }

    /// The newest Docker timestamp among the bytes consumed so far.
    pub fn newest_timestamp(&self) -> Option<SystemTime> {
        self.accepted.newest()
    }

    /// Writes the container's output until the stream ends.
    ///
    /// The stream must start at [`resume_since`](Self::resume_since) (Docker's `since`; with
    /// `timestamps` so chunks carry their times). Bytes it starts with that were already written
    /// are skipped; a chunk stamped after everything consumed from its stream ends the skipping
    /// early, so a stream that starts later than `resume_since` loses nothing.
    ///
    /// While a stream's consumed bytes all came without timestamps (a live source such as
    /// Docker's attach stream, read from the container's first byte), `resume_since` is `None`
    /// and the stream must start at the output's first byte: the bytes already consumed of
    /// each stream ([`offsets`](Self::offsets)) are skipped by count, and the timestamps of the
    /// skipped bytes recorded, so that once every stream has been placed in time later
    /// resumptions use the anchor. Returns `Ok(())` when it ends, once every byte
    /// received is in the files (not yet synced: that is [`finish`](Self::finish)). A stream
    /// error returns [`LoggerError::Source`]; the log stays usable, so reconnect from
    /// `resume_since` and call `consume` again.
    ///
    /// The stream is read only while the writer keeps up: when two batches are in hand it is not
    /// polled until the disk has taken one. Cancelling this future (e.g. with a timeout) loses
    /// nothing that was read from the stream.
    pub async fn consume<S, E>(&mut self, stream: S) -> Result<(), LoggerError>
    where
        S: Stream<Item = Result<OutputChunk, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let by_offset = self.accepted.resumes_from_start();
        let mut skip = self.accepted.replayed_bytes();
        let result = self.consume_inner(stream, &mut skip, by_offset).await;
        if result.is_ok() && by_offset && skip.iter().any(|&n| n > 0) {
            // A replay from the start that ended before reaching what was already written: the
            // source no longer has the output's beginning (Docker's capped copy rotated), so
            // the bytes of that replay were not where the offsets say.
            self.metrics.replay_short();
            tracing::warn!(
                container_id = %self.container_id, stdout_short = skip[0], stderr_short = skip[1],
                "the replay from the start held fewer bytes than were already written: the \
                 source no longer has the output's beginning (Docker's log cap); output written \
                 while the agent was away may be missing"
            );
        }
        result
    }

    async fn consume_inner<S, E>(
        &mut self,
        stream: S,
        skip: &mut [u64; 2],
        by_offset: bool,
    ) -> Result<(), LoggerError>
    where
        S: Stream<Item = Result<OutputChunk, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let mut stream = pin!(stream);
        let mut tick = interval_at(
            Instant::now() + self.checkpoint_interval,
            self.checkpoint_interval,
        );
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When a small batch is due to be written whatever else arrives (see `flush_delay`).
        let mut flush_at: Option<Instant> = None;
        let mut flush_timer = pin!(tokio::time::sleep(Duration::from_secs(3600)));
        let mut ended = false;
        loop {
            let busy = match &self.slot {
                Slot::Idle(_) if !self.pending.is_empty() => {
                    let due = flush_at.is_some_and(|t| t <= Instant::now());
                    if ended || due || self.pending.len() >= self.flush_bytes() {
                        flush_at = None;
                        self.submit(false);
                        true
                    } else {
                        if flush_at.is_none() {
                            // Output trickles in: wait a moment for more rather than paying a
                            // thread hand-over per chunk.
                            let at = Instant::now() + self.flush_delay;
                            flush_at = Some(at);
                            flush_timer.as_mut().reset(at);
                        }
                        false
                    }
                }
                Slot::Idle(_) if ended => return Ok(()),
                Slot::Idle(_) => false,
                Slot::Busy(_) => true,
                Slot::Gone(reason) => return Err(self.lost(reason.clone())),
            };
            let room = self.pending.len() < self.batch_bytes;
            tokio::select! {
                // Finish the writer's job first: it frees the batch the stream may be waiting for.
                biased;
                joined = self.join(), if busy => joined?,
                item = stream.next(), if room && !ended => {
                    let mut item = Some(item);
                    // Take whatever else is ready without another trip through `select!`.
                    while let Some(next) = item {
                        match next {
                            None => ended = true,
                            Some(Ok(chunk)) => self.accept(chunk, skip, by_offset),
                            Some(Err(e)) => {
                                return Err(LoggerError::Source { container_id: self.container_id.clone(), source: e.into() });
                            }
                        }
                        item = if ended || self.pending.len() >= self.batch_bytes {
                            None
                        } else {
                            stream.next().now_or_never()
                        };
                    }
                }
                () = &mut flush_timer, if !busy && flush_at.is_some() => {}
                // Quiet stream: give the writer a chance to checkpoint what it has.
                _ = tick.tick(), if !busy && self.pending.is_empty() => self.submit(false),
            }
        }
    }

    /// A batch this big is handed to an idle writer at once, without waiting for more.
    fn flush_bytes(&self) -> usize {
        (self.batch_bytes / 4).max(1)
    }

    /// Drains what is still buffered, syncs the files to disk and stores the final checkpoint.
    ///
    /// Call it when the container has exited and [`consume`](Self::consume) has returned (or has
    /// been given up on): once it returns, the sandbox files hold everything that was read, so
    /// the termination can be reported. It takes at most the retry window of
    /// [`LoggerConfig`](crate::LoggerConfig) if the disk is failing.
    pub async fn finish(mut self) -> Result<LogReport, LoggerError> {
        self.settle().await?;
        let Slot::Idle(mut writer) =
            std::mem::replace(&mut self.slot, Slot::Gone("finished".into()))
        else {
            unreachable!("settle leaves the writer idle");
        };
        // A sync of the log files blocks, and so does making a file anew (the container removed
        // or replaced it), so those go to a blocking thread; a log with nothing to sync (no
        // output, or all of it synced) only awaits its final checkpoint's fsync.
        let report = if writer.finish_blocks() {
            tokio::task::spawn_blocking(move || writer.finish())
                .await
                .map_err(|e| self.lost(e.to_string()))?
        } else {
            writer.finish_async().await
        };
        self.close();
        tracing::info!(
            container_id = %report.container_id, stdout_bytes = report.stdout_bytes,
            stderr_bytes = report.stderr_bytes, dropped_bytes = report.dropped_bytes,
            complete = report.complete, "container log finished"
        );
        Ok(report)
    }

    /// Accounts for a chunk and adds it to the pending batch, minus replayed bytes.
    /// `by_offset`: the stream replays the output from its first byte and `skip` counts bytes
    /// already consumed (see [`consume`](Self::consume)); else `skip` counts the bytes of the
    /// anchor's buckets.
    fn accept(&mut self, chunk: OutputChunk, skip: &mut [u64; 2], by_offset: bool) {
        let i = chunk.stream.index();
        let mut data = &chunk.data[..];
        if by_offset && skip[i] > 0 {
            let k = skip[i].min(data.len() as u64);
            skip[i] -= k;
            data = &data[k as usize..];
            self.accepted
                .record_replayed(chunk.stream, chunk.timestamp, k);
            self.pending.push_replayed(chunk.stream, chunk.timestamp, k);
            if data.is_empty() {
                return;
            }
        }
        if skip[i] == 0 && self.accepted.is_older(chunk.stream, chunk.timestamp) {
            self.note_regression(chunk.stream, data.len());
        }
        if skip[i] > 0 && self.accepted.is_new(chunk.stream, chunk.timestamp) {
            // Stamped after everything consumed from this stream: the replay part is over (the
            // source did not start at `resume_since`, or Docker no longer had those bytes).
            skip[i] = 0;
        }
        if skip[i] > 0 {
            let k = skip[i].min(data.len() as u64);
            skip[i] -= k;
            data = &data[k as usize..];
        }
        if data.is_empty() {
            return;
        }
        self.accepted.record(chunk.stream, chunk.timestamp, data);
        self.pending.push(chunk.stream, chunk.timestamp, data);
    }

    /// A chunk stamped before output already written from its stream: written all the same (the
    /// logger never drops output on a guess), but reported (once per log) and counted.
    fn note_regression(&mut self, stream: crate::OutputStream, len: usize) {
        self.metrics.timestamp_regression();
        if !std::mem::replace(&mut self.regression_reported, true) {
            tracing::warn!(
                container_id = %self.container_id, %stream, bytes = len,
                "output stamped before output already written: the source repeated output \
                 (Docker 20.10 does this when its log file rotates under a lagging follower) \
                 or the host clock stepped back"
            );
        }
    }

    /// Hands the pending batch (possibly empty: then the writer only checkpoints if due) to the
    /// writer. The writer must be idle.
    fn submit(&mut self, force_checkpoint: bool) {
        let Slot::Idle(mut writer) =
            std::mem::replace(&mut self.slot, Slot::Gone("in transition".into()))
        else {
            unreachable!("submit needs an idle writer");
        };
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Batch::with_capacity(self.batch_bytes));
        let batch = std::mem::replace(&mut self.pending, next);
        self.slot = Slot::Busy(tokio::task::spawn_blocking(move || {
            writer.write_batch(&batch, force_checkpoint);
            (writer, batch)
        }));
    }

    /// Waits for the writer's current job; never completes if it has none.
    async fn join(&mut self) -> Result<(), LoggerError> {
        let Slot::Busy(handle) = &mut self.slot else {
            return std::future::pending().await;
        };
        match handle.await {
            Ok((writer, mut batch)) => {
                batch.clear();
                self.spare = Some(batch);
                self.slot = Slot::Idle(writer);
                Ok(())
            }
            Err(e) => {
                self.slot = Slot::Gone(e.to_string());
                Err(self.lost(e.to_string()))
            }
        }
    }

    /// Writes everything pending and waits until the writer is idle.
    async fn settle(&mut self) -> Result<(), LoggerError> {
        loop {
            match &self.slot {
                Slot::Busy(_) => self.join().await?,
                Slot::Idle(_) if !self.pending.is_empty() => self.submit(false),
                Slot::Idle(_) => return Ok(()),
                Slot::Gone(reason) => return Err(self.lost(reason.clone())),
            }
        }
    }

    fn lost(&self, reason: String) -> LoggerError {
        LoggerError::WriterLost {
            container_id: self.container_id.clone(),
            reason,
        }
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            self.metrics.log_closed();
        }
    }
}

impl Drop for ContainerLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_id(w: &Writer) -> String {
    w.container_id().to_owned()
}
