//! Checkpoints: each container's launch spec and progress, on disk, so an agent restarted after
//! SIGKILL (or a host crash) can recover.
//!
//! All of an agent's checkpoints live in one journal, `<work_dir>/checkpoints.journal`
//! (see [`berth_journal`]): a container's checkpoint is a versioned JSON record appended under
//! its id, the newest record wins, and a removal appends a tombstone. Writes never create a
//! file (per-container files cost an inode each, and inode churn was most of the agent's
//! per-container CPU on ext4), and concurrent durable writes share one fsync. A
//! [`Durability::Durable`] write is fsynced before it returns, so it survives a host crash; a
//! [`Durability::Lazy`] one survives the agent being killed (the page cache keeps it), and a
//! host crash falls back to the container's last durable record.
//!
//! Checkpoints of Berth versions before the journal (`<work_dir>/containers/<id>/` holding
//! `state.0.json`/`state.1.json`, or an older `state.json`) are read when the store opens,
//! moved into the journal durably, and then removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use berth_journal::Journal;
use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;
use crate::id::{AgentId, ContainerId};
use crate::spec::LaunchSpec;
use crate::state::Phase;
use crate::termination::Termination;

pub use berth_journal::{Durability, JournalStats};

/// The checkpoint format this build writes (and the newest it reads).
pub const VERSION: u32 = 1;

/// The journal's file name in the work directory.
pub const JOURNAL_FILE: &str = "checkpoints.journal";

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
    /// A graceful kill in progress: a restarted agent still sends SIGKILL at its deadline.
    #[serde(default)]
    pub kill_deadline: Option<KillDeadline>,
    /// The health Berth's own checker found (written lazily when it changes), so a restarted
    /// agent goes on counting where the last one stopped, as Mesos's checker, which lives in
    /// the executor, does across agent restarts. Docker's own health is read from Docker.
    #[serde(default)]
    pub health: Option<crate::health::Health>,
}

/// A graceful kill's intent: the first signal, its grace, and the wall-clock moment SIGKILL is
/// due (wall clock, so it means the same to the agent after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillDeadline {
    /// The first signal sent (e.g. 15).
    pub signal: i32,
    /// The grace asked for.
    pub grace: std::time::Duration,
    /// When the kill was asked for.
    pub asked_at: SystemTime,
    /// When SIGKILL is due: `asked_at + grace`.
    pub deadline: SystemTime,
    /// The first signal reached the daemon (written lazily after delivery). A restarted agent
    /// finding it false before the deadline sends the first signal again: the agent may have
    /// died between this record's durable write and the signal, and the process must still get
    /// its warning before SIGKILL. At least once, so a process may see it twice.
    #[serde(default)]
    pub delivered: bool,
}

/// Every checkpoint found: the readable records (sorted by container id) and, beside them, an
/// error for each unreadable one, so one bad record does not hide the others.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records.
    pub records: Vec<Record>,
    /// What could not be read, each naming the container and why.
    pub errors: Vec<CheckpointError>,
}

/// The checkpoint journal of an agent. Clones share it.
#[derive(Debug, Clone)]
pub struct Store {
    journal: Journal,
    work_dir: PathBuf,
    writes: Arc<[AtomicUsize; 2]>,
}

impl Store {
    /// Opens (or creates) `<work_dir>/checkpoints.journal` and moves checkpoints of older Berth
    /// versions into it. Blocks on file I/O (call it at startup).
    pub fn open(work_dir: &Path) -> Result<Store, CheckpointError> {
        let path = work_dir.join(JOURNAL_FILE);
        let (journal, replay) = Journal::open(&path)?;
        if let Some(tail) = replay.dropped_tail {
            tracing::warn!(journal = %path.display(), %tail, "checkpoint journal ended in a write cut short; its last records were dropped");
        }
        let store = Store {
            journal,
            work_dir: work_dir.to_path_buf(),
            writes: Arc::default(),
        };
        store.migrate_legacy(&replay.entries)?;
        Ok(store)
    }

    /// Every checkpoint now in the journal, plus an error for each unreadable one (including
    /// an older version's checkpoint directory that could not be moved into the journal).
    pub fn load_all(&self) -> Result<Loaded, CheckpointError> {
        let mut loaded = Store::read(&self.work_dir)?;
        let root = self.work_dir.join(legacy::DIR);
        if let Ok(entries) = fs::read_dir(&root) {
            // What migration left: unreadable ones (a readable one is in the journal already,
            // its directory only failed to go).
            for dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
                if let Err(e) = legacy::read_dir(&dir) {
                    loaded.errors.push(e);
                }
            }
        }
        Ok(loaded)
    }

    /// Reads the checkpoints of `work_dir` without opening the journal for writing (another
    /// process may own it): a snapshot for tools and tests. Older versions' files are not read.
    pub fn read(work_dir: &Path) -> Result<Loaded, CheckpointError> {
        let path = work_dir.join(JOURNAL_FILE);
        let replay = Journal::read(&path)?;
        let mut loaded = decode_all(&path, replay.entries);
        loaded
            .records
            .sort_by(|a, b| a.container_id.cmp(&b.container_id));
        Ok(loaded)
    }

    /// One container's checkpoint from a [`read`](Self::read) snapshot.
    pub fn read_one(work_dir: &Path, id: &ContainerId) -> Result<Option<Record>, CheckpointError> {
        let path = work_dir.join(JOURNAL_FILE);
        let replay = Journal::read(&path)?;
        replay
            .entries
            .get(id.as_str())
            .map(|bytes| decode_entry(&path, id.as_str(), bytes))
            .transpose()
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        self.journal.path()
    }

    /// One container's checkpoint as it is now in the journal (every acknowledged write is
    /// seen). Reads the whole journal: for tools and tests, not for hot paths.
    pub fn load(&self, id: &ContainerId) -> Result<Option<Record>, CheckpointError> {
        Store::read_one(&self.work_dir, id)
    }

    /// Checkpoints written so far by this store and its clones: `(durable, lazy)`.
    pub fn writes(&self) -> (usize, usize) {
        (
            self.writes[0].load(Ordering::Relaxed),
            self.writes[1].load(Ordering::Relaxed),
        )
    }

    /// The journal's counters (records, fsyncs, compactions, where the records end).
    pub fn journal_stats(&self) -> JournalStats {
        self.journal.stats()
    }

    /// Writes `record` as its container's checkpoint; with [`Durability::Durable`] it is
    /// fsynced (together with whatever else is queued) before this returns.
    pub async fn save(
        &self,
        record: &Record,
        durability: Durability,
    ) -> Result<(), CheckpointError> {
        let json = serde_json::to_vec(record).expect("a checkpoint record always serialises");
        self.journal
            .put(record.container_id.as_str(), json, durability)
            .await?;
        let counter = match durability {
            Durability::Durable => 0,
            Durability::Lazy => 1,
        };
        self.writes[counter].fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes a container's checkpoint (missing is fine). Not fsynced: after a host crash the
    /// record of a removed container may come back, and recovery then finds its Docker
    /// container gone and removes it again.
    pub async fn remove(&self, id: &ContainerId) -> Result<(), CheckpointError> {
        Ok(self.journal.remove(id.as_str(), Durability::Lazy).await?)
    }

    /// Syncs and closes the journal (later writes fail): for an agent about to exit, and
    /// for tests that restart an agent in the same process. Blocks.
    pub fn close(&self) -> Result<(), CheckpointError> {
        Ok(self.journal.close()?)
    }

    /// Moves `<work_dir>/containers/<id>/` checkpoints of older versions into the journal
    /// (durably), then removes them. A record already in the journal is newer (a migration
    /// cut short by a crash) and wins. Unreadable ones are left for an operator (and reported
    /// by [`load_all`](Self::load_all)).
    fn migrate_legacy(
        &self,
        in_journal: &std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Result<(), CheckpointError> {
        let root = self.work_dir.join(legacy::DIR);
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("read directory", &root)(e)),
        };
        let mut moved = Vec::new();
        for entry in entries {
            let dir = entry.map_err(io("read directory", &root))?.path();
            if !dir.is_dir() {
                continue;
            }
            match legacy::read_dir(&dir) {
                Ok(Some(r)) => {
                    if !in_journal.contains_key(r.container_id.as_str()) {
                        let json = serde_json::to_vec(&r).expect("records serialise");
                        self.journal.put_blocking(
                            r.container_id.as_str(),
                            json,
                            Durability::Lazy,
                        )?;
                    }
                    moved.push(dir);
                }
                // A directory without a checkpoint: a crash before the first write.
                Ok(None) => moved.push(dir),
                Err(_) => {}
            }
        }
        if !moved.is_empty() {
            self.journal.sync_blocking()?;
            tracing::info!(
                count = moved.len(),
                "checkpoints of an older Berth moved into the journal"
            );
        }
        for dir in moved {
            let _ = fs::remove_dir_all(&dir);
        }
        let _ = fs::remove_dir(&root);
        Ok(())
    }
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

/// Decodes every journal entry; a record under the wrong key, of a future version or not
/// parsing is an error naming the journal and the key.
fn decode_all(path: &Path, entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> Loaded {
    let mut loaded = Loaded::default();
    for (key, bytes) in entries {
        match decode_entry(path, &key, &bytes) {
            Ok(r) => loaded.records.push(r),
            Err(e) => loaded.errors.push(e),
        }
    }
    loaded
}

/// Decodes the journal entry under `key`; a record naming another container is an error.
fn decode_entry(path: &Path, key: &str, bytes: &[u8]) -> Result<Record, CheckpointError> {
    let where_ = path.join(key);
    let r = decode(&where_, bytes)?;
    if r.container_id.as_str() != key {
        return Err(CheckpointError::Corrupt {
            path: where_,
            reason: format!("the record names container '{}'", r.container_id),
        });
    }
    Ok(r)
}

/// Parses one record, checking its version first so a newer format says so instead of
/// failing on a field.
fn decode(path: &Path, bytes: &[u8]) -> Result<Record, CheckpointError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let corrupt = |e: serde_json::Error| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let v: Versioned = serde_json::from_slice(bytes).map_err(corrupt)?;
    if v.version > VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: v.version,
            supported: VERSION,
        });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// Reading the per-container files of Berth versions before the journal.
mod legacy {
    use super::*;

    /// Their directory under the work directory.
    pub const DIR: &str = "containers";
    /// Two slots with a sequence number each, and the single file before them.
    const FILES: [&str; 3] = ["state.0.json", "state.1.json", "state.json"];

    /// The newest valid record of a container directory; `None` when it has no checkpoint
    /// file, an error when files exist and none holds a valid record, or when the record names
    /// a container other than the directory's.
    pub fn read_dir(dir: &Path) -> Result<Option<Record>, CheckpointError> {
        let mut best: Option<(u64, Record)> = None;
        let mut first_error = None;
        for name in FILES {
            let path = dir.join(name);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    first_error.get_or_insert(io("read", &path)(e));
                    continue;
                }
            };
            #[derive(Deserialize)]
            struct Seq {
                #[serde(default)]
                seq: u64,
            }
            let seq = serde_json::from_slice::<Seq>(&bytes).map(|s| s.seq);
            match (seq, decode(&path, &bytes)) {
                (Ok(seq), Ok(r)) => {
                    if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                        best = Some((seq, r));
                    }
                }
                (_, Err(e)) => {
                    first_error.get_or_insert(e);
                }
                (Err(e), _) => {
                    first_error.get_or_insert(CheckpointError::Corrupt {
                        path,
                        reason: e.to_string(),
                    });
                }
            }
        }
        match (best, first_error) {
            (Some((_, r)), _)
                if dir.file_name().and_then(|n| n.to_str()) != Some(r.container_id.as_str()) =>
            {
                Err(CheckpointError::Corrupt {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "it names container '{}' but lives in another directory",
                        r.container_id
                    ),
                })
            }
            (Some((_, r)), _) => Ok(Some(r)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }
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
            kill_deadline: None,
            health: None,
        }
    }

    fn ids(loaded: &Loaded) -> Vec<&str> {
        loaded
            .records
            .iter()
            .map(|r| r.container_id.as_str())
            .collect()
    }

    #[tokio::test]
    async fn save_overwrite_remove_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let loaded = store.load_all().unwrap();
        assert!(loaded.records.is_empty() && loaded.errors.is_empty());
        let mut r = record("c1");
        store.save(&r, Durability::Durable).await.unwrap();
        store.save(&record("c2"), Durability::Lazy).await.unwrap();
        r.phase = Phase::Running;
        r.docker_id = Some("abc".into());
        store.save(&r, Durability::Lazy).await.unwrap();
        assert_eq!(store.writes(), (1, 2));
        // One fsync: the durable write's own, or the one that reserved the journal's space
        // right after its first record (which covers that record).
        let stats = store.journal_stats();
        assert_eq!(stats.syncs + stats.reserves, 1, "{stats:?}");
        // A snapshot while the store is open sees every write.
        assert_eq!(
            Store::read_one(tmp.path(), &r.container_id).unwrap(),
            Some(r.clone())
        );
        store
            .remove(&ContainerId::new("c2").unwrap())
            .await
            .unwrap();
        store
            .remove(&ContainerId::new("never").unwrap())
            .await
            .unwrap();
        drop(store);
        let loaded = Store::open(tmp.path()).unwrap().load_all().unwrap();
        assert_eq!(loaded.records, [r]);
        assert!(tmp.path().join(JOURNAL_FILE).is_file());
        assert!(
            !tmp.path().join("containers").exists(),
            "no per-container files"
        );
    }

    /// Checkpoints of the slot-file versions move into the journal: the newest slot wins, a
    /// directory without a checkpoint goes, an unreadable one stays and is reported.
    #[tokio::test]
    async fn older_versions_files_are_moved_into_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("containers");
        let write = |id: &str, file: &str, seq: u64, phase: Phase| {
            let mut r = record(id);
            r.phase = phase;
            let mut v = serde_json::to_value(&r).unwrap();
            v["seq"] = seq.into();
            fs::create_dir_all(root.join(id)).unwrap();
            fs::write(
                root.join(id).join(file),
                serde_json::to_vec_pretty(&v).unwrap(),
            )
            .unwrap();
        };
        write("slots", "state.0.json", 5, Phase::Destroying);
        write("slots", "state.1.json", 4, Phase::Running);
        write("single", "state.json", 0, Phase::Running);
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::create_dir_all(root.join("bad")).unwrap();
        fs::write(root.join("bad/state.0.json"), b"{not json").unwrap();

        let store = Store::open(tmp.path()).unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(ids(&loaded), ["single", "slots"]);
        assert_eq!(
            loaded.records[1].phase,
            Phase::Destroying,
            "the higher sequence wins"
        );
        assert_eq!(loaded.errors.len(), 1);
        let e = loaded.errors[0].to_string();
        assert!(e.contains("corrupt") && e.contains("bad"), "{e}");
        assert!(!root.join("slots").exists() && !root.join("single").exists());
        assert!(!root.join("empty").exists());
        assert!(
            root.join("bad/state.0.json").exists(),
            "kept for an operator"
        );
        let stats = store.journal_stats();
        assert!(
            stats.syncs + stats.reserves >= 1,
            "the move is durable: {stats:?}"
        );
        drop(store);
        let again = Store::open(tmp.path()).unwrap().load_all().unwrap();
        assert_eq!(ids(&again), ["single", "slots"]);
        assert_eq!(again.errors.len(), 1, "still reported");
    }

    /// A migration cut short leaves the record in both places: the journal's is newer.
    #[tokio::test]
    async fn the_journal_wins_over_a_leftover_older_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let mut r = record("c1");
        r.phase = Phase::Running;
        store.save(&r, Durability::Durable).await.unwrap();
        drop(store);
        let old = tmp.path().join("containers/c1");
        fs::create_dir_all(&old).unwrap();
        fs::write(
            old.join("state.json"),
            serde_json::to_vec(&record("c1")).unwrap(),
        )
        .unwrap();
        let loaded = Store::open(tmp.path()).unwrap().load_all().unwrap();
        assert_eq!(loaded.records, [r]);
        assert!(!old.exists());
    }

    /// An older checkpoint naming another container is left in place and reported; a readable
    /// one whose directory merely outlived its move (the journal holds it) is not an error.
    #[tokio::test]
    async fn misfiled_older_checkpoints_are_reported_and_moved_ones_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("containers");
        fs::create_dir_all(root.join("wrong")).unwrap();
        fs::write(
            root.join("wrong/state.json"),
            serde_json::to_vec(&record("c9")).unwrap(),
        )
        .unwrap();
        fs::create_dir_all(root.join("c1")).unwrap();
        fs::write(
            root.join("c1/state.json"),
            serde_json::to_vec(&record("c1")).unwrap(),
        )
        .unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert!(!root.join("c1").exists(), "moved");
        // As if removing the moved directory had failed.
        fs::create_dir_all(root.join("c1")).unwrap();
        fs::write(
            root.join("c1/state.json"),
            serde_json::to_vec(&record("c1")).unwrap(),
        )
        .unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(ids(&loaded), ["c1"]);
        let text: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].contains("wrong") && text[0].contains("names container 'c9'"),
            "{text:?}"
        );
        assert!(root.join("wrong/state.json").exists(), "left in place");
    }

    #[tokio::test]
    async fn bad_records_are_reported_beside_the_good_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(JOURNAL_FILE);
        {
            let (j, _) = Journal::open(&path).unwrap();
            let good = serde_json::to_vec(&record("good")).unwrap();
            j.put("good", good.clone(), Durability::Lazy).await.unwrap();
            j.put("misfiled", good, Durability::Lazy).await.unwrap();
            j.put("broken", b"{not json".to_vec(), Durability::Lazy)
                .await
                .unwrap();
            j.put("future", br#"{"version": 99}"#.to_vec(), Durability::Lazy)
                .await
                .unwrap();
        }
        let loaded = Store::open(tmp.path()).unwrap().load_all().unwrap();
        assert_eq!(ids(&loaded), ["good"]);
        let text: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.contains("broken") && t.contains("corrupt")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("version 99")), "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.contains("misfiled") && t.contains("names container 'good'")),
            "{text:?}"
        );
    }

    #[test]
    fn a_work_dir_file_that_is_not_a_journal_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(JOURNAL_FILE), b"hello").unwrap();
        let e = Store::open(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("checkpoints.journal") && e.contains("not a Berth journal"),
            "{e}"
        );
    }
}
