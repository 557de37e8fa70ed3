//! Checkpoints: each container's launch spec and progress, on disk, so an agent restarted after
//! SIGKILL can recover.
//!
//! One directory per container, `<work_dir>/containers/<id>/`, holding two slots,
//! `state.0.json` and `state.1.json`: versioned JSON records with a sequence number. A write
//! overwrites, in place, the slot that does not hold the last durable record; a reader takes
//! the valid record with the highest sequence number. So a write cut short (the agent killed
//! mid-write, or a host crash before a lazy write reached the disk) leaves the other slot's
//! record, never nothing, and no write creates, renames or deletes a file once both slots exist
//! (on ext4, inode churn was the cost of the older temp-file-and-rename scheme). A
//! [`Durability::Durable`] write also fsyncs the slot (and the directory the first time the slot
//! appears), so that record survives a host crash; lazy writes never overwrite it. A
//! `state.json` from older Berth versions is read as sequence 0 and removed after the first write.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;
use crate::id::{AgentId, ContainerId};
use crate::spec::LaunchSpec;
use crate::state::Phase;
use crate::termination::Termination;

/// The checkpoint format this build writes (and the newest it reads).
pub const VERSION: u32 = 1;

/// The two slots.
const SLOTS: [&str; 2] = ["state.0.json", "state.1.json"];
/// The single file of Berth before the slots (read, then removed).
const LEGACY: &str = "state.json";
/// The legacy writer's temporary file (removed when found).
const LEGACY_TMP: &str = "state.json.tmp";

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

/// How a checkpoint write guards against crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Durability {
    /// Written into the slot: it outlives the agent process (the page cache does), but a host
    /// crash may lose it (the last durable record then remains).
    Lazy,
    /// Also fsynced: it outlives a host crash.
    Durable,
}

/// Where a container's next checkpoint goes: the writer keeps this between writes (and gets it
/// from [`Store::load_all`] after a restart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    /// Sequence number of the newest record written or found.
    seq: u64,
    /// The slot holding the last durable record (never overwritten by a lazy write).
    durable: Option<usize>,
    /// Which slot files exist.
    exists: [bool; 2],
    /// Which slots' directory entries were fsynced.
    entry_synced: [bool; 2],
    /// A legacy `state.json` to remove after the first write.
    legacy: bool,
}

/// The checkpoint directory of an agent.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    writes: Arc<[AtomicUsize; 2]>,
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
            writes: Arc::default(),
        }
    }

    /// Checkpoints written so far by this store and its clones: `(durable, lazy)`.
    pub fn writes(&self) -> (usize, usize) {
        (
            self.writes[0].load(Ordering::Relaxed),
            self.writes[1].load(Ordering::Relaxed),
        )
    }

    /// The directory holding the checkpoints.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Writes `record` into the slot `slots` says is free (see the module documentation),
    /// fsynced with [`Durability::Durable`], and updates `slots`.
    pub fn save(
        &self,
        record: &Record,
        durability: Durability,
        slots: &mut Slots,
    ) -> Result<(), CheckpointError> {
        let dir = self.dir(&record.container_id);
        let target = slots.durable.map_or(0, |d| 1 - d);
        let path = dir.join(SLOTS[target]);
        let seq = slots.seq + 1;
        let mut value =
            serde_json::to_value(record).expect("a checkpoint record always serialises");
        value["seq"] = seq.into();
        let json = serde_json::to_vec_pretty(&value).expect("JSON values serialise");
        let open = || {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
                open()
            }
            other => other,
        }
        .map_err(io("open", &path))?;
        // In place: no new inode. The length is set after the bytes, so a write cut short leaves
        // either the old record or an invalid one (the other slot is then used), never a valid
        // record with the wrong content.
        f.write_all_at(&json, 0).map_err(io("write", &path))?;
        f.set_len(json.len() as u64)
            .map_err(io("truncate", &path))?;
        slots.exists[target] = true;
        if durability == Durability::Durable {
            f.sync_all().map_err(io("fsync", &path))?;
            if !slots.entry_synced[target] {
                fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io("fsync directory", &dir))?;
                slots.entry_synced[target] = true;
            }
            slots.durable = Some(target);
        }
        slots.seq = seq;
        if std::mem::take(&mut slots.legacy) {
            let _ = fs::remove_file(dir.join(LEGACY));
        }
        let counter = match durability {
            Durability::Durable => 0,
            Durability::Lazy => 1,
        };
        self.writes[counter].fetch_add(1, Ordering::Relaxed);
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
        Ok(read_dir_slots(&self.dir(id))?.map(|(r, _)| r))
    }

    /// Reads every checkpoint, with where each container's next write goes. Unreadable ones are
    /// returned as errors beside the good ones so one bad file does not hide the others. A
    /// leftover temporary file of the older format (a crash mid-write) is deleted.
    #[allow(clippy::type_complexity)]
    pub fn load_all(
        &self,
    ) -> Result<(Vec<(Record, Slots)>, Vec<CheckpointError>), CheckpointError> {
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
            let _ = fs::remove_file(dir.join(LEGACY_TMP));
            match read_dir_slots(&dir) {
                Ok(Some((r, slots))) => {
                    if dir.file_name().and_then(|n| n.to_str()) != Some(r.container_id.as_str()) {
                        errors.push(CheckpointError::Corrupt {
                            path: dir.clone(),
                            reason: format!(
                                "it names container '{}' but lives in another directory",
                                r.container_id
                            ),
                        });
                        continue;
                    }
                    records.push((r, slots));
                }
                // A directory without a checkpoint: a crash before the first write.
                Ok(None) => {
                    let _ = fs::remove_dir(&dir);
                }
                Err(e) => errors.push(e),
            }
        }
        records.sort_by(|a, b| a.0.container_id.cmp(&b.0.container_id));
        Ok((records, errors))
    }
}

/// The newest valid record of a container directory and its slots; `None` when no slot (nor a
/// legacy file) exists. An error only when files exist and none holds a valid record.
fn read_dir_slots(dir: &Path) -> Result<Option<(Record, Slots)>, CheckpointError> {
    let mut slots = Slots::default();
    let mut best: Option<(u64, Record, Option<usize>)> = None;
    let mut first_error = None;
    let candidates = [
        (dir.join(SLOTS[0]), Some(0)),
        (dir.join(SLOTS[1]), Some(1)),
        (dir.join(LEGACY), None),
    ];
    for (path, slot) in candidates {
        match read(&path) {
            Ok(None) => continue,
            Ok(Some((seq, record))) => {
                if best.as_ref().is_none_or(|(s, _, _)| seq > *s) {
                    best = Some((seq, record, slot));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        match slot {
            Some(i) => {
                slots.exists[i] = true;
                slots.entry_synced[i] = true;
            }
            None => slots.legacy = true,
        }
    }
    match best {
        Some((seq, record, slot)) => {
            slots.seq = seq;
            // Not known to be synced: the next write goes to the other slot, keeping this one.
            slots.durable = Some(slot.unwrap_or(1));
            Ok(Some((record, slots)))
        }
        None => match first_error {
            Some(e) => Err(e),
            None => Ok(None),
        },
    }
}

fn read(path: &Path) -> Result<Option<(u64, Record)>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
        #[serde(default)]
        seq: u64,
    }
    let corrupt = |e: serde_json::Error| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let v: Versioned = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if v.version > VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: v.version,
            supported: VERSION,
        });
    }
    let record = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(Some((v.seq, record)))
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

    fn slots(dir: &Path) -> Vec<(String, u64, Phase)> {
        SLOTS
            .iter()
            .filter_map(|name| {
                let (seq, r) = read(&dir.join(name)).ok()??;
                Some(((*name).to_owned(), seq, r.phase))
            })
            .collect()
    }

    #[test]
    fn save_load_overwrite_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let mut s = Slots::default();
        let mut r = record("c1");
        store.save(&r, Durability::Durable, &mut s).unwrap();
        assert_eq!(store.load(&r.container_id).unwrap().unwrap(), r);
        r.phase = Phase::Running;
        r.docker_id = Some("abc".into());
        store.save(&r, Durability::Durable, &mut s).unwrap();
        assert_eq!(
            store
                .load(&r.container_id)
                .unwrap()
                .unwrap()
                .docker_id
                .as_deref(),
            Some("abc")
        );
        r.phase = Phase::Terminated;
        store.save(&r, Durability::Lazy, &mut s).unwrap();
        assert_eq!(
            store.load(&r.container_id).unwrap().unwrap().phase,
            Phase::Terminated
        );
        assert_eq!(store.writes(), (2, 1));
        store.remove(&r.container_id).unwrap();
        assert!(store.load(&r.container_id).unwrap().is_none());
        store.remove(&r.container_id).unwrap();
    }

    /// Lazy writes never overwrite the last durable record; a durable write goes to the other
    /// slot and becomes the one kept.
    #[test]
    fn writes_alternate_and_spare_the_last_durable_record() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let dir = tmp.path().join("containers/c1");
        let mut s = Slots::default();
        let mut r = record("c1");
        r.phase = Phase::Fetching;
        store.save(&r, Durability::Durable, &mut s).unwrap();
        for phase in [Phase::Pulling, Phase::Mounting] {
            r.phase = phase;
            store.save(&r, Durability::Lazy, &mut s).unwrap();
        }
        assert_eq!(
            slots(&dir),
            [
                ("state.0.json".into(), 1, Phase::Fetching),
                ("state.1.json".into(), 3, Phase::Mounting)
            ]
        );
        r.phase = Phase::Running;
        store.save(&r, Durability::Durable, &mut s).unwrap();
        r.phase = Phase::Destroying;
        store.save(&r, Durability::Lazy, &mut s).unwrap();
        assert_eq!(
            slots(&dir),
            [
                ("state.0.json".into(), 5, Phase::Destroying),
                ("state.1.json".into(), 4, Phase::Running)
            ]
        );
        // A restart goes on from what it finds: the next write spares the newest record.
        let (found, mut s2) = store.load_all().unwrap().0.remove(0);
        assert_eq!(found.phase, Phase::Destroying);
        r.phase = Phase::Terminated;
        store.save(&r, Durability::Lazy, &mut s2).unwrap();
        assert_eq!(
            slots(&dir),
            [
                ("state.0.json".into(), 5, Phase::Destroying),
                ("state.1.json".into(), 6, Phase::Terminated)
            ]
        );
    }

    /// A write cut short (torn slot, or a longer old record's tail left behind) is not a valid
    /// record: the other slot's is used.
    #[test]
    fn a_torn_slot_falls_back_to_the_other() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let dir = tmp.path().join("containers/c1");
        let mut s = Slots::default();
        let mut r = record("c1");
        store.save(&r, Durability::Durable, &mut s).unwrap();
        r.phase = Phase::Running;
        r.docker_id = Some("d".repeat(64));
        store.save(&r, Durability::Lazy, &mut s).unwrap();
        // The newer slot torn in the middle.
        let newer = dir.join("state.1.json");
        let bytes = fs::read(&newer).unwrap();
        fs::write(&newer, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(
            store.load(&r.container_id).unwrap().unwrap().phase,
            Phase::Pulling
        );
        // A shorter record written over a longer one, cut before the truncation.
        let older = dir.join("state.0.json");
        let mut tail = fs::read(&older).unwrap();
        tail.extend_from_slice(b"\n  \"leftover\": 1\n}");
        fs::write(&older, &tail).unwrap();
        let err = store.load(&r.container_id).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "no valid slot left: {err}");
    }

    #[test]
    fn the_legacy_single_file_is_read_and_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let dir = tmp.path().join("containers/c1");
        fs::create_dir_all(&dir).unwrap();
        let mut r = record("c1");
        fs::write(dir.join(LEGACY), serde_json::to_vec(&r).unwrap()).unwrap();
        fs::write(dir.join(LEGACY_TMP), b"{partial").unwrap();
        let (mut all, errors) = store.load_all().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!dir.join(LEGACY_TMP).exists());
        let (found, mut s) = all.remove(0);
        assert_eq!(found, r);
        r.phase = Phase::Running;
        store.save(&r, Durability::Durable, &mut s).unwrap();
        assert!(!dir.join(LEGACY).exists());
        assert_eq!(
            store.load(&r.container_id).unwrap().unwrap().phase,
            Phase::Running
        );
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
        store
            .save(&record("good"), Durability::Lazy, &mut Slots::default())
            .unwrap();
        let bad = store.root().join("bad");
        fs::create_dir_all(&bad).unwrap();
        fs::write(bad.join(SLOTS[0]), b"{not json").unwrap();
        let future = store.root().join("future");
        fs::create_dir_all(&future).unwrap();
        fs::write(future.join(SLOTS[1]), br#"{"version": 99}"#).unwrap();
        // A crash before the first write leaves an empty directory.
        fs::create_dir_all(store.root().join("empty")).unwrap();
        let (records, errors) = store.load_all().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].0.container_id.as_str(), "good");
        assert_eq!(errors.len(), 2);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("corrupt") && t.contains("bad")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("version 99")), "{text:?}");
        assert!(!store.root().join("empty").exists());
    }
}
