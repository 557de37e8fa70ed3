//! Resuming a container's log when the logger's checkpoint cannot be used (deleted, corrupt,
//! from an incompatible version): what the sandbox files already hold decides where to go on.
//!
//! Replaying the whole log from Docker would write everything the files hold a second time.
//! Instead the output is resumed from the files' last modification: every entry in them was
//! written after Docker stamped it, so none is stamped later than the newest file's mtime, and
//! a replay from there repeats nothing. File systems stamp mtimes from a coarse clock (Linux:
//! the last timer tick, up to 10 ms behind the precise clock Docker stamps entries with), so
//! the resume point is that much after the mtime; without the margin the last line written
//! could come back a second time (seen in the e2e test). Entries stamped before that instant which the previous
//! agent had not yet written are not replayed: a possible gap of at most the logger's write
//! delay at the moment the agent stopped, which is reported (tracing and
//! [`LogResumeMetrics`]) rather than hidden.
//!
//! The container may have replaced those names with links or special files: they are looked
//! at with `lstat` beneath the sandbox opened once (never followed, never opened), and only
//! regular files count.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Counts of logs resumed without a usable logger checkpoint.
#[derive(Debug, Default)]
pub struct LogResumeMetrics {
    fallbacks: AtomicU64,
    possible_gaps: AtomicU64,
}

impl LogResumeMetrics {
    /// Logs whose checkpoint could not be used, resumed from the sandbox files' state.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Of those, the ones whose files already held output: output stamped shortly before the
    /// restart may be missing from them.
    pub fn possible_gaps(&self) -> u64 {
        self.possible_gaps.load(Ordering::Relaxed)
    }

    pub(super) fn record(&self, since: Option<SystemTime>) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if since.is_some() {
            self.possible_gaps.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The files a logger writes in a sandbox that tell how far it got: the current files, and the
/// newest rotated ones (a rotation may have just emptied a current file).
const LOG_FILES: [&str; 4] = ["stdout", "stderr", "stdout.1", "stderr.1"];

/// How far a file's mtime may lag the precise time of the write that set it: one timer tick
/// at the lowest common kernel tick rate (100 Hz).
const MTIME_GRANULARITY: Duration = Duration::from_millis(10);

/// Where to resume a container's output from, judging by its sandbox files: just after the
/// newest modification time among log files that hold bytes (see the module documentation),
/// or `None` when none does (nothing was written, so replaying everything duplicates nothing).
pub(super) fn resume_point(sandbox: &Path) -> Option<SystemTime> {
    let dir = berth_safe_fs::Dir::open(sandbox).ok()?;
    LOG_FILES
        .iter()
        .filter_map(|name| dir.metadata(name).ok())
        .filter(|st| berth_safe_fs::Kind::from_mode(st.st_mode) == berth_safe_fs::Kind::File)
        .filter(|st| st.st_size > 0)
        .filter_map(|st| {
            let nanos = u32::try_from(st.st_mtime_nsec).ok()?;
            let secs = u64::try_from(st.st_mtime).ok()?;
            Some(std::time::UNIX_EPOCH + Duration::new(secs, nanos))
        })
        .max()
        .map(|newest| newest + MTIME_GRANULARITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_non_empty_log_file_decides() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(resume_point(tmp.path()), None, "no files");
        std::fs::write(tmp.path().join("stdout"), b"").unwrap();
        std::fs::write(tmp.path().join("stderr"), b"").unwrap();
        assert_eq!(resume_point(tmp.path()), None, "empty files");
        let out = tmp.path().join("stdout");
        std::fs::write(&out, b"a\n").unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&out)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(resume_point(tmp.path()), Some(old + MTIME_GRANULARITY));
        let rotated = tmp.path().join("stderr.1");
        std::fs::write(&rotated, b"b\n").unwrap();
        let newer = std::fs::metadata(&rotated).unwrap().modified().unwrap();
        assert_eq!(resume_point(tmp.path()), Some(newer + MTIME_GRANULARITY));
        // A link to a newer host file, a FIFO: looked at without following or opening.
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("f"), b"host").unwrap();
        std::fs::remove_file(&rotated).unwrap();
        std::os::unix::fs::symlink(host.path().join("f"), &rotated).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("stdout.1"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(resume_point(tmp.path()), Some(old + MTIME_GRANULARITY));
    }

    #[test]
    fn metrics_count_fallbacks_and_possible_gaps() {
        let m = LogResumeMetrics::default();
        m.record(None);
        m.record(Some(SystemTime::now()));
        assert_eq!((m.fallbacks(), m.possible_gaps()), (2, 1));
    }
}
