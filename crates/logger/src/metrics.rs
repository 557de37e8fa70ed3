//! Counters the agent can export: what every container logger wrote, dropped and failed at.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by all containers of one logger. Cheap to update (relaxed atomics); read them
/// with [`LoggerMetrics::snapshot`].
#[derive(Debug, Default)]
pub struct LoggerMetrics {
    bytes_written: AtomicU64,
    bytes_dropped: AtomicU64,
    write_errors: AtomicU64,
    rotations: AtomicU64,
    files_recreated: AtomicU64,
    names_replaced: AtomicU64,
    checkpoint_errors: AtomicU64,
    checkpoints_stored: AtomicU64,
    checkpoints_durable: AtomicU64,
    file_syncs: AtomicU64,
    timestamp_regressions: AtomicU64,
    replays_short: AtomicU64,
    active_logs: AtomicU64,
}

/// A point-in-time copy of [`LoggerMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Bytes written into log files.
    pub bytes_written: u64,
    /// Bytes given up after write errors outlasted the retry window.
    pub bytes_dropped: u64,
    /// Failed write, rotate or sync attempts (each retry counts).
    pub write_errors: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Log files found deleted while in use and created anew.
    pub files_recreated: u64,
    /// Log file names the container had taken over (with a symbolic or hard link, a FIFO, a
    /// socket, a device node or a directory) that the logger removed and replaced with a new
    /// regular file, never writing through them.
    pub names_replaced: u64,
    /// Checkpoints that could not be written.
    pub checkpoint_errors: u64,
    /// Checkpoints stored (records appended to the logger's checkpoint journal).
    pub checkpoints_stored: u64,
    /// Of those, the ones stored durably (each waits for an fsync of the journal, which
    /// concurrent ones share; see the crate documentation on durability).
    pub checkpoints_durable: u64,
    /// Log files (current or rotated) synced to disk. A file is synced only if bytes were written
    /// to it since its last sync, so a container without output costs none. Syncs of rotated
    /// files done while writing are counted at the container's next checkpoint.
    pub file_syncs: u64,
    /// Chunks stamped before output already written from their stream (a source that repeats
    /// output, or a clock step): written anyway, counted here.
    pub timestamp_regressions: u64,
    /// Replays from the output's first byte that ended before reaching the bytes already
    /// written: the source had lost the output's beginning (Docker's capped copy rotated while
    /// the agent was away), so output written meanwhile may be missing.
    pub replays_short: u64,
    /// Container logs prepared or recovered and not yet finished or dropped.
    pub active_logs: u64,
}

impl LoggerMetrics {
    /// Reads all counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            bytes_written: r(&self.bytes_written),
            bytes_dropped: r(&self.bytes_dropped),
            write_errors: r(&self.write_errors),
            rotations: r(&self.rotations),
            files_recreated: r(&self.files_recreated),
            names_replaced: r(&self.names_replaced),
            checkpoint_errors: r(&self.checkpoint_errors),
            checkpoints_stored: r(&self.checkpoints_stored),
            checkpoints_durable: r(&self.checkpoints_durable),
            file_syncs: r(&self.file_syncs),
            timestamp_regressions: r(&self.timestamp_regressions),
            replays_short: r(&self.replays_short),
            active_logs: r(&self.active_logs),
        }
    }

    pub(crate) fn add_written(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_dropped(&self, n: u64) {
        self.bytes_dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn write_error(&self) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rotation(&self) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_names_replaced(&self, n: u64) {
        self.names_replaced.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn file_recreated(&self) {
        self.files_recreated.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn checkpoint_error(&self) {
        self.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn checkpoint_stored(&self, durable: bool) {
        self.checkpoints_stored.fetch_add(1, Ordering::Relaxed);
        if durable {
            self.checkpoints_durable.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn add_file_syncs(&self, n: u64) {
        if n > 0 {
            self.file_syncs.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub(crate) fn replay_short(&self) {
        self.replays_short.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn timestamp_regression(&self) {
        self.timestamp_regressions.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn log_opened(&self) {
        self.active_logs.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn log_closed(&self) {
        self.active_logs.fetch_sub(1, Ordering::Relaxed);
    }
}
