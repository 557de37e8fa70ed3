//! The on-disk checkpoint of one container's log: how far the output was consumed and which
//! files hold it, written atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! A checkpoint is only ever written at a point where everything it claims is in the files, so
//! after an agent restart the files can be cut back to exactly the checkpointed lengths and the
//! output replayed from the checkpointed position (see [`crate::recovery`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LoggerError;
use crate::position::Position;

/// The only format version this crate writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Whether the container's output was completely consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// The logger was still consuming output.
    Running,
    /// The output stream ended and the files were synced.
    Finished,
}

/// The file holding a stream's newest bytes when the checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    /// Inode number of the current file (`stdout`/`stderr`).
    pub inode: u64,
    /// Its length.
    pub len: u64,
}

/// Running totals, kept across restarts for the final report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    /// Bytes written to stdout files.
    pub stdout_bytes: u64,
    /// Bytes written to stderr files.
    pub stderr_bytes: u64,
    /// Bytes dropped after write errors outlasted the retry window.
    pub dropped_bytes: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Failed write, rotate or sync attempts.
    pub write_errors: u64,
}

/// A checkpoint, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Always [`FORMAT_VERSION`].
    pub version: u32,
    /// The container this belongs to.
    pub container_id: String,
    /// Running or finished.
    pub phase: Phase,
    /// The consumed position.
    pub position: Position,
    /// The current stdout file.
    pub stdout: FileRecord,
    /// The current stderr file.
    pub stderr: FileRecord,
    /// Totals so far.
    pub totals: Totals,
}

/// Where a container's checkpoint lives.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl CheckpointFile {
    pub fn new(state_dir: &Path, container_id: &str) -> Self {
        CheckpointFile {
            path: state_dir.join(format!("{container_id}.json")),
            tmp: state_dir.join(format!("{container_id}.json.tmp")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `cp` atomically: a reader sees the previous checkpoint or this one, never a mix.
    pub fn store(&self, cp: &Checkpoint) -> Result<(), LoggerError> {
        let json = serde_json::to_vec(cp).expect("checkpoint serializes");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.tmp)
            .map_err(|e| LoggerError::io("create checkpoint", &self.tmp, e))?;
        f.write_all(&json)
            .map_err(|e| LoggerError::io("write checkpoint", &self.tmp, e))?;
        f.sync_all()
            .map_err(|e| LoggerError::io("sync checkpoint", &self.tmp, e))?;
        drop(f);
        fs::rename(&self.tmp, &self.path)
            .map_err(|e| LoggerError::io("rename checkpoint into", &self.path, e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        // The rename is durable only once the directory entry is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LoggerError::io("sync checkpoint directory", dir, e))
    }

    /// Reads the last committed checkpoint; `Ok(None)` if there is none. A leftover temporary
    /// file (a write interrupted before its rename) is ignored and removed: the committed file is
    /// older but consistent with the log files, which is all recovery needs.
    pub fn load(&self, container_id: &str) -> Result<Option<Checkpoint>, LoggerError> {
        match fs::remove_file(&self.tmp) {
            Ok(()) => {
                tracing::debug!(path = %self.tmp.display(), "removed an interrupted checkpoint write")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LoggerError::io("remove stale checkpoint", &self.tmp, e)),
        }
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LoggerError::io("read checkpoint", &self.path, e)),
        };
        let bad = |reason: String| LoggerError::BadCheckpoint {
            path: self.path.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(bad(format!(
                    "format version {v}, this agent reads version {FORMAT_VERSION}"
                )))
            }
            None => return Err(bad("no format version".into())),
        }
        let cp: Checkpoint = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        if cp.container_id != container_id {
            return Err(bad(format!(
                "it belongs to container {}, not {container_id}",
                cp.container_id
            )));
        }
        Ok(Some(cp))
    }

    /// Removes the checkpoint (and any temporary file); absent files are not an error.
    pub fn remove(&self) -> Result<(), LoggerError> {
        for p in [&self.tmp, &self.path] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LoggerError::io("remove checkpoint", p, e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutputStream;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample(id: &str) -> Checkpoint {
        let mut position = Position::default();
        position.record(
            OutputStream::Stdout,
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 42)),
            9,
        );
        Checkpoint {
            version: FORMAT_VERSION,
            container_id: id.into(),
            phase: Phase::Running,
            position,
            stdout: FileRecord { inode: 7, len: 9 },
            stderr: FileRecord { inode: 8, len: 0 },
            totals: Totals {
                stdout_bytes: 9,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn store_then_load_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let f = CheckpointFile::new(dir.path(), "c1");
        assert_eq!(f.load("c1").unwrap(), None);
        f.store(&sample("c1")).unwrap();
        assert_eq!(f.load("c1").unwrap(), Some(sample("c1")));
        assert!(!dir.path().join("c1.json.tmp").exists());
        f.remove().unwrap();
        assert_eq!(f.load("c1").unwrap(), None);
    }

    #[test]
    fn interrupted_write_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = CheckpointFile::new(dir.path(), "c1");
        f.store(&sample("c1")).unwrap();
        fs::write(dir.path().join("c1.json.tmp"), b"{\"version\":1,\"contai").unwrap();
        assert_eq!(f.load("c1").unwrap(), Some(sample("c1")));
        assert!(!dir.path().join("c1.json.tmp").exists());
    }

    #[test]
    fn unusable_checkpoints_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let f = CheckpointFile::new(dir.path(), "c1");
        fs::write(f.path(), b"garbage").unwrap();
        assert!(f.load("c1").unwrap_err().to_string().contains("not JSON"));
        fs::write(f.path(), br#"{"version":9}"#).unwrap();
        assert!(f
            .load("c1")
            .unwrap_err()
            .to_string()
            .contains("format version 9"));
        f.store(&sample("other")).unwrap();
        let e = f.load("c1").unwrap_err().to_string();
        assert!(e.contains("belongs to container other"), "{e}");
    }
}
