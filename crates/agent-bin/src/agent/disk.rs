//! Degraded mode: the work directory's file system is full (or otherwise refuses writes).
//!
//! A full disk must not stop the agent from starting or serving: the way to free space is
//! `REMOVE_CONTAINER`, which needs a running agent. So the agent starts anyway and serves
//! everything that needs no new space (the `GET_*` calls, the files API, `KILL_CONTAINER`,
//! `REMOVE_CONTAINER`), refuses launches with a 503 saying why, reports it in `/health` and
//! `GET_HEALTH`, and leaves degraded mode as soon as a write succeeds again (checked
//! periodically and before each launch).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::workdir;
use crate::units::format_size;

/// How often a degraded (or healthy) agent checks whether it can write its work directory.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Whether the agent is degraded, and why.
#[derive(Debug)]
pub struct DiskState {
    work_dir: PathBuf,
    reason: Mutex<Option<String>>,
}

impl DiskState {
    /// The state of `work_dir`, checked once now.
    pub fn new(work_dir: PathBuf) -> DiskState {
        let state = DiskState {
            work_dir,
            reason: Mutex::new(None),
        };
        state.check();
        state
    }

    /// Why the agent is degraded, as last checked; `None` when it is not.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Checks now by writing a small file (blocking; use a blocking thread on the runtime),
    /// logs a change, and returns the new reason.
    pub fn check(&self) -> Option<String> {
        let now = workdir::check_space(&self.work_dir).err().map(|e| {
            let dir = self.work_dir.display();
            let free = rustix::fs::statvfs(&self.work_dir)
                .map(|s| {
                    format!(
                        "; {} free of {}",
                        format_size(s.f_bavail.saturating_mul(s.f_frsize)),
                        format_size(s.f_blocks.saturating_mul(s.f_frsize))
                    )
                })
                .unwrap_or_default();
            let what = if workdir::is_out_of_space(&e) {
                "is full"
            } else {
                "cannot be written"
            };
            format!(
                "the work directory '{dir}' {what} ({e}{free}): launches are refused until it can \
                 be written again; REMOVE_CONTAINER of ended containers frees their sandboxes"
            )
        });
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        match (&*reason, &now) {
            (None, Some(why)) => {
                tracing::warn!(reason = %why, "agent degraded: serving reads, KILL and REMOVE; refusing launches")
            }
            (Some(_), None) => {
                tracing::info!(work_dir = %self.work_dir.display(), "the work directory can be written again; no longer degraded")
            }
            _ => {}
        }
        reason.clone_from(&now);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_work_dir_degrades_and_a_writable_one_recovers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("work");
        std::fs::create_dir(&dir).unwrap();
        let state = DiskState::new(dir.clone());
        assert_eq!(state.reason(), None);
        // A work directory that vanished cannot be written: degraded, saying where and why.
        std::fs::remove_dir(&dir).unwrap();
        let why = state.check().unwrap();
        assert!(
            why.contains("cannot be written") && why.contains(&*dir.to_string_lossy()),
            "{why}"
        );
        assert_eq!(state.reason().as_deref(), Some(why.as_str()));
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(state.check(), None);
        assert_eq!(state.reason(), None);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "the probe file is removed"
        );
    }
}
