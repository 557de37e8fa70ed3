//! Checkpoints: each container's launch spec and progress, on disk, so an agent restarted after
//! SIGKILL can recover.
//!
//! One file per container, `<work_dir>/containers/<id>/state.json`: versioned JSON written to a
//! temporary file, fsynced, renamed over the old one, and the directory fsynced, so a crash leaves
//! either the old or the new checkpoint, never a torn one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;
use crate::id::{AgentId, ContainerId};
use crate::spec::LaunchSpec;
use crate::state::Phase;
use crate::termination::Termination;

/// The checkpoint format this build writes (and the newest it reads).
pub const VERSION: u32 = 1;

const FILE: &str = "state.json";
const TMP: &str = "state.json.tmp";

/// What is saved about one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Format version.
    pub version: u32,
    /// The container.
    pub container_id: ContainerId,
    /// The agent that launched it.
    pub agent_id: AgentId,
    /// The Docker container name.
    pub name: String,
    /// The launch spec, with resources as last updated.
    pub spec: LaunchSpec,
    /// The phase when written.
    pub phase: Phase,
    /// While DESTROYING: the phase the teardown interrupted.
    #[serde(default)]
    pub teardown_from: Option<Phase>,
    /// Docker's id, once created.
    pub docker_id: Option<String>,
    /// Whether a kill or destroy was requested.
    pub killed: bool,
    /// Sandbox directories MOUNTING created (removed on roll-back).
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// The termination, once decided.
    pub termination: Option<Termination>,
    /// When the termination was decided (for the remove delay across restarts).
    pub terminated_at: Option<SystemTime>,
}

/// The checkpoint directory of an agent.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

fn io<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'p {
    move |source| CheckpointError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// A store under `<work_dir>/containers`.
    pub fn new(work_dir: &Path) -> Store {
        Store {
            root: work_dir.join("containers"),
        }
    }

    /// The directory holding the checkpoints.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Writes `record` atomically (temp, fsync, rename, fsync of the directory).
    pub fn save(&self, record: &Record) -> Result<(), CheckpointError> {
        let dir = self.dir(&record.container_id);
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let tmp = dir.join(TMP);
        let file = dir.join(FILE);
        let json =
            serde_json::to_vec_pretty(record).expect("a checkpoint record always serialises");
        let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&json).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &file).map_err(io("rename", &file))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory", &dir))?;
        Ok(())
    }

    /// Removes a container's checkpoint directory (missing is fine).
    pub fn remove(&self, id: &ContainerId) -> Result<(), CheckpointError> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &dir)(e)),
            _ => Ok(()),
        }
    }

    /// Reads one checkpoint.
    pub fn load(&self, id: &ContainerId) -> Result<Option<Record>, CheckpointError> {
        read(&self.dir(id).join(FILE))
    }

    /// Reads every checkpoint. Unreadable ones are returned as errors beside the good ones so
    /// one bad file does not hide the others. A leftover temp file (a crash mid-write) is
    /// deleted: the renamed file is the last complete checkpoint.
    pub fn load_all(&self) -> Result<(Vec<Record>, Vec<CheckpointError>), CheckpointError> {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((records, errors)),
            Err(e) => return Err(io("read directory", &self.root)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io("read directory", &self.root))?;
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let _ = fs::remove_file(dir.join(TMP));
            match read(&dir.join(FILE)) {
                Ok(Some(r)) => {
                    if dir.file_name().and_then(|n| n.to_str()) != Some(r.container_id.as_str()) {
                        errors.push(CheckpointError::Corrupt {
                            path: dir.join(FILE),
                            reason: format!(
                                "it names container '{}' but lives in another directory",
                                r.container_id
                            ),
                        });
                        continue;
                    }
                    records.push(r);
                }
                // A directory without a checkpoint: a crash before the first write.
                Ok(None) => {
                    let _ = fs::remove_dir(&dir);
                }
                Err(e) => errors.push(e),
            }
        }
        records.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        Ok((records, errors))
    }
}

fn read(path: &Path) -> Result<Option<Record>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned = serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if v.version > VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: v.version,
            supported: VERSION,
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::CommandInfo;

    fn record(id: &str) -> Record {
        Record {
            version: VERSION,
            container_id: ContainerId::new(id).unwrap(),
            agent_id: AgentId::new("agent").unwrap(),
            name: format!("berth-{id}"),
            spec: LaunchSpec::docker("busybox", CommandInfo::shell("true"), "/tmp/sb"),
            phase: Phase::Pulling,
            teardown_from: None,
            docker_id: None,
            killed: false,
            created_dirs: vec![],
            termination: None,
            terminated_at: None,
        }
    }

    #[test]
    fn save_load_overwrite_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let mut r = record("c1");
        store.save(&r).unwrap();
        assert_eq!(store.load(&r.container_id).unwrap().unwrap(), r);
        r.phase = Phase::Running;
        r.docker_id = Some("abc".into());
        store.save(&r).unwrap();
        assert_eq!(
            store
                .load(&r.container_id)
                .unwrap()
                .unwrap()
                .docker_id
                .as_deref(),
            Some("abc")
        );
        assert!(!tmp.path().join("containers/c1/state.json.tmp").exists());
        store.remove(&r.container_id).unwrap();
        assert!(store.load(&r.container_id).unwrap().is_none());
        store.remove(&r.container_id).unwrap();
    }

    #[test]
    fn load_all_reports_corrupt_and_future_files_but_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        assert_eq!(
            store.load_all().unwrap().0.len(),
            0,
            "no directory yet is fine"
        );
        store.save(&record("good")).unwrap();
        let bad = store.root().join("bad");
        fs::create_dir_all(&bad).unwrap();
        fs::write(bad.join(FILE), b"{not json").unwrap();
        let future = store.root().join("future");
        fs::create_dir_all(&future).unwrap();
        fs::write(future.join(FILE), br#"{"version": 99}"#).unwrap();
        // A crash mid-write leaves a temp file and maybe an empty directory.
        fs::write(store.root().join("good").join(TMP), b"{partial").unwrap();
        fs::create_dir_all(store.root().join("empty")).unwrap();
        let (records, errors) = store.load_all().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].container_id.as_str(), "good");
        assert_eq!(errors.len(), 2);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("corrupt") && t.contains("bad")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("version 99")), "{text:?}");
        assert!(!store.root().join("good").join(TMP).exists());
        assert!(!store.root().join("empty").exists());
    }
}
