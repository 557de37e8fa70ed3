//! The stored checkpoints of the containers' logs: for each container, how far its output was
//! consumed and which files hold it.
//!
//! All containers of one logger share one journal, `<state_dir>/checkpoints.journal`
//! ([`berth_journal`]): a checkpoint is a record keyed by the container id whose value is the
//! JSON [`Checkpoint`] (format version 1, as the per-container files of earlier versions held).
//! Storing one appends a few hundred bytes to that file, written by the storing thread; it
//! creates no file and is fsynced (by the journal's thread, one fsync for the durable records
//! queued together) only when it must be durable. The journal is replayed once, when the logger is built; the entries are then kept in
//! memory and updated on every store, so [`CheckpointStore::load`] reads no file.
//!
//! A checkpoint is only ever stored at a point where everything it claims is in the files, so
//! after an agent restart the files can be cut back to exactly the checkpointed lengths and the
//! output replayed from the checkpointed position (see [`crate::recovery`]).
//!
//! # Durability
//! A [`Durability::Lazy`] store is written to the file before it returns, so it survives the
//! agent being killed (the page cache keeps it), but a host crash can lose it; a
//! [`Durability::Durable`] one is fsynced (which also makes every record before it durable). The
//! writer ([`crate::writer`]) stores durably:
//!
//! * the final checkpoint ([`Phase::Finished`]), after syncing the log files;
//! * every checkpoint, when [`LoggerConfig::durable_checkpoints`](crate::LoggerConfig) is set;
//! * the checkpoint it takes once a stream has rotated `keep` times since the last durable one.
//!   Recovery finds the checkpointed file by inode, and the next rotation deletes it, after
//!   which a new file may get the same inode number: a checkpoint naming a deleted file must
//!   never be the newest one a host crash leaves, or recovery could cut an unrelated file;
//! * the first checkpoint of a recovered log (recovery just rewrote the files), and the first
//!   one of a prepared log that replaces an earlier checkpoint of the same id (else a host crash
//!   could bring the earlier one back);
//! * the first store for an id that still has a legacy file (below), before that file is removed.
//!
//! The others — a new log's first checkpoint and the periodic ones while output flows — are
//! lazy. After a host crash a log recovers from the newest checkpoint that reached the disk (the
//! kernel writes dirty pages back within about 30 s, and any durable store of any container
//! fsyncs everything before it); a log whose every checkpoint was lazy and lost has none, and
//! [`ContainerLogger::recover`](crate::ContainerLogger::recover) reports
//! [`LoggerError::NoCheckpoint`].
//!
//! # Checkpoints of older versions
//! Versions before the journal stored `<state_dir>/<id>.json` (temporary `<id>.json.tmp`, fsync,
//! rename). The state directory is listed once when the logger is built: such a file is read
//! when the journal has no entry for its id, and the first store for that id (durable) or
//! [`CheckpointStore::remove`] deletes it and any temporary file. When the journal does have an
//! entry, the newer of the two wins by modification time: normally the journal's (the file is a
//! leftover whose removal a crash undid; it is removed at once); the file's only if an older
//! version ran again after this one (its entry in the journal is then stale and is removed).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use berth_journal::{Durability, Journal, JournalError};
use serde::{Deserialize, Serialize};

use crate::error::LoggerError;
use crate::position::Position;

/// The journal's file name in the state directory.
pub(crate) const JOURNAL_FILE: &str = "checkpoints.journal";

/// Where an unreadable journal is moved, so that the logger can start with a new one.
pub(crate) const UNREADABLE_JOURNAL_FILE: &str = "checkpoints.journal.unreadable";

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

impl Checkpoint {
    /// Parses a stored checkpoint of `container_id`; `bad` turns what is wrong into an error.
    fn decode(
        bytes: &[u8],
        container_id: &str,
        bad: impl Fn(String) -> LoggerError,
    ) -> Result<Checkpoint, LoggerError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
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
        Ok(cp)
    }
}

/// Checks that `id` can key a checkpoint and name a legacy checkpoint file.
pub(crate) fn check_container_id(id: &str) -> Result<(), LoggerError> {
    let bad = |reason| {
        Err(LoggerError::InvalidContainerId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > 200 {
        return bad("it is longer than 200 bytes");
    }
    if id.starts_with('.') {
        return bad("it starts with `.`");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return bad("only ASCII letters, digits, `-`, `_` and `.` are allowed");
    }
    Ok(())
}

/// The checkpoints of all containers of one logger (see the module documentation).
#[derive(Debug)]
pub(crate) struct CheckpointStore {
    journal: Journal,
    state_dir: PathBuf,
    /// Set when the journal found at start was unreadable and moved aside: where to, and why.
    set_aside: Option<(PathBuf, String)>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The stored checkpoint (JSON) of each container, as in the journal.
    entries: HashMap<String, Vec<u8>>,
    /// Ids with a legacy `<id>.json` or `<id>.json.tmp` file not removed yet.
    legacy: HashSet<String>,
}

/// The legacy checkpoint file of a container, and its temporary file.
fn legacy_paths(state_dir: &Path, container_id: &str) -> [PathBuf; 2] {
    [
        state_dir.join(format!("{container_id}.json")),
        state_dir.join(format!("{container_id}.json.tmp")),
    ]
}

fn remove_file(path: &Path) -> Result<bool, LoggerError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(LoggerError::io("remove legacy checkpoint", path, e)),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl CheckpointStore {
    /// Opens (creating if needed) the journal in `state_dir`, replays it and looks for legacy
    /// checkpoint files. A file there that is not a journal (or one of a newer format) is moved
    /// to [`UNREADABLE_JOURNAL_FILE`] with an error logged, and a new journal is started: the
    /// containers it knew then recover without a checkpoint, as after losing their files.
    pub fn open(state_dir: &Path) -> Result<CheckpointStore, LoggerError> {
        fs::create_dir_all(state_dir)
            .map_err(|e| LoggerError::io("create logger state directory", state_dir, e))?;
        let path = state_dir.join(JOURNAL_FILE);
        // Before opening: opening may write to the file.
        let journal_mtime = modified(&path);
        let journal_error = |action: &str| {
            let action = action.to_owned();
            let path = path.clone();
            move |source| LoggerError::Journal {
                action,
                path,
                source,
            }
        };
        let mut set_aside = None;
        let (journal, replay) = match Journal::open(&path) {
            Err(e @ JournalError::NotAJournal { .. }) => {
                let aside = state_dir.join(UNREADABLE_JOURNAL_FILE);
                fs::rename(&path, &aside)
                    .map_err(|err| LoggerError::io("move aside unreadable journal", &path, err))?;
                tracing::error!(
                    journal = %path.display(), moved_to = %aside.display(), error = %e,
                    "the log checkpoint journal is unreadable: moved it aside and started a new one; \
                     the containers' logs will resume without their checkpoints"
                );
                set_aside = Some((aside, e.to_string()));
                Journal::open(&path).map_err(journal_error("open the log checkpoint journal"))?
            }
            opened => opened.map_err(journal_error("open the log checkpoint journal"))?,
        };
        if let Some(why) = &replay.dropped_tail {
            tracing::warn!(journal = %path.display(), dropped = %why, "log checkpoint journal ended in a torn write (a crash); its newest checkpoints may be older");
        }
        let mut state = State {
            entries: replay.entries.into_iter().collect(),
            legacy: HashSet::new(),
        };
        let list_error = |e| LoggerError::io("list logger state directory", state_dir, e);
        for entry in fs::read_dir(state_dir).map_err(list_error)? {
            let name = entry.map_err(list_error)?.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(id) = name
                .strip_suffix(".json")
                .or_else(|| name.strip_suffix(".json.tmp"))
            else {
                continue;
            };
            if check_container_id(id).is_ok() {
                state.legacy.insert(id.to_owned());
            }
        }
        let store = CheckpointStore {
            journal,
            state_dir: state_dir.to_owned(),
            set_aside,
            state: Mutex::new(State::default()),
        };
        let both: Vec<String> = state
            .legacy
            .iter()
            .filter(|id| state.entries.contains_key(*id))
            .cloned()
            .collect();
        for id in both {
            let [file, _] = legacy_paths(state_dir, &id);
            let file_is_newer = matches!(
                (modified(&file), journal_mtime),
                (Some(f), Some(j)) if f > j
            );
            if file_is_newer {
                // An older version ran after this one: the journal's entry is stale.
                tracing::warn!(container_id = %id, file = %file.display(), "legacy log checkpoint is newer than the journal (an older agent ran since): using it");
                store
                    .journal
                    .remove_blocking(&id, Durability::Durable)
                    .map_err(store.journal_error(format!(
                        "remove the stale log checkpoint of container {id}"
                    )))?;
                state.entries.remove(&id);
            } else if store.remove_legacy(&id) {
                // A leftover of a migration whose removal a crash undid.
                state.legacy.remove(&id);
            }
        }
        tracing::debug!(
            journal = %path.display(), checkpoints = state.entries.len(),
            legacy_files = state.legacy.len(), "log checkpoints loaded"
        );
        *store.lock() = state;
        Ok(store)
    }

    /// The journal file.
    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement: a panic elsewhere does not spoil it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn journal_error(&self, action: String) -> impl FnOnce(JournalError) -> LoggerError + '_ {
        move |source| LoggerError::Journal {
            action,
            path: self.journal.path().to_owned(),
            source,
        }
    }

    /// Whether a checkpoint of `container_id` is stored (in the journal or a legacy file).
    pub fn contains(&self, container_id: &str) -> bool {
        let state = self.lock();
        state.entries.contains_key(container_id) || state.legacy.contains(container_id)
    }

    /// Stores `cp` as its container's checkpoint, replacing the previous one; returns once it is
    /// written (and fsynced, if `durability` is durable). A reader sees the previous checkpoint or
    /// this one, never a mix.
    pub fn store(&self, cp: &Checkpoint, durability: Durability) -> Result<(), LoggerError> {
        let (json, durability) = self.record(cp, durability);
        let id = cp.container_id.as_str();
        self.journal
            .put_blocking(id, json.clone(), durability)
            .map_err(self.journal_error(format!("store the log checkpoint of container {id}")))?;
        self.stored(id, json);
        Ok(())
    }

    /// [`store`](Self::store) for async code: a durable record's fsync is awaited instead of
    /// blocking the thread.
    pub async fn store_async(
        &self,
        cp: &Checkpoint,
        durability: Durability,
    ) -> Result<(), LoggerError> {
        let (json, durability) = self.record(cp, durability);
        let id = cp.container_id.as_str();
        self.journal
            .put(id, json.clone(), durability)
            .await
            .map_err(self.journal_error(format!("store the log checkpoint of container {id}")))?;
        self.stored(id, json);
        Ok(())
    }

    /// The record of a checkpoint, and how durable it must be: always durable while a legacy
    /// file of the container exists, since that file goes once the record is durable and a
    /// crash must leave one or the other.
    fn record(&self, cp: &Checkpoint, durability: Durability) -> (Vec<u8>, Durability) {
        let json = serde_json::to_vec(cp).expect("checkpoint serializes");
        if self.lock().legacy.contains(cp.container_id.as_str()) {
            (json, Durability::Durable)
        } else {
            (json, durability)
        }
    }

    /// Keeps a stored record in memory and removes the container's legacy file, if any.
    fn stored(&self, id: &str, json: Vec<u8>) {
        let legacy = {
            let mut state = self.lock();
            state.entries.insert(id.to_owned(), json);
            state.legacy.contains(id)
        };
        if legacy && self.remove_legacy(id) {
            self.lock().legacy.remove(id);
        }
    }

    /// The last stored checkpoint of `container_id`; `Ok(None)` if there is none.
    pub fn load(&self, container_id: &str) -> Result<Option<Checkpoint>, LoggerError> {
        let (entry, legacy) = {
            let state = self.lock();
            (
                state.entries.get(container_id).cloned(),
                state.legacy.contains(container_id),
            )
        };
        if let Some(bytes) = entry {
            let bad = |reason: String| LoggerError::BadCheckpoint {
                path: self.journal_path().to_owned(),
                reason: format!("the record of container {container_id} is unusable: {reason}"),
            };
            return Checkpoint::decode(&bytes, container_id, bad).map(Some);
        }
        if legacy {
            return self.load_legacy(container_id);
        }
        Ok(None)
    }

    /// What to say about a missing checkpoint of `container_id`: where it was looked for, or, if
    /// the journal was unreadable at start, that error.
    pub fn missing(&self, container_id: &str) -> LoggerError {
        match &self.set_aside {
            Some((aside, why)) => LoggerError::BadCheckpoint {
                path: aside.clone(),
                reason: format!(
                    "no checkpoint of container {container_id} since the logger started: the \
                     journal it found then, which may have held one, could not be read ({why}) \
                     and was moved here"
                ),
            },
            None => LoggerError::NoCheckpoint {
                container_id: container_id.to_owned(),
                path: self.journal_path().to_owned(),
            },
        }
    }

    /// Reads a legacy checkpoint file. A leftover temporary file (a write interrupted before its
    /// rename) is removed: the committed file is older but consistent with the log files, which
    /// is all recovery needs.
    fn load_legacy(&self, container_id: &str) -> Result<Option<Checkpoint>, LoggerError> {
        let [path, tmp] = legacy_paths(&self.state_dir, container_id);
        if remove_file(&tmp)? {
            tracing::debug!(path = %tmp.display(), "removed an interrupted checkpoint write");
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Only a temporary file was left.
                self.lock().legacy.remove(container_id);
                return Ok(None);
            }
            Err(e) => return Err(LoggerError::io("read checkpoint", &path, e)),
        };
        let bad = |reason: String| LoggerError::BadCheckpoint {
            path: path.clone(),
            reason,
        };
        Checkpoint::decode(&bytes, container_id, bad).map(Some)
    }

    /// Removes the legacy files of `container_id` once the journal has superseded them;
    /// returns whether they are gone. A failure is only logged: the journal's entry wins
    /// anyway, and the next store (durable again) or `remove` tries again.
    fn remove_legacy(&self, container_id: &str) -> bool {
        self.try_remove_legacy(container_id)
            .inspect_err(|error| tracing::warn!(container_id, %error, "cannot remove legacy log checkpoint file; will retry"))
            .is_ok()
    }

    fn try_remove_legacy(&self, container_id: &str) -> Result<(), LoggerError> {
        for path in legacy_paths(&self.state_dir, container_id) {
            if remove_file(&path)? {
                tracing::debug!(path = %path.display(), "removed legacy log checkpoint file");
            }
        }
        Ok(())
    }

    /// Removes the checkpoint of `container_id` (journal entry and legacy files); one that is not
    /// there is not an error. The removal is lazy: after a host crash the entry may be back, which
    /// costs a few hundred bytes of journal and memory, nothing else.
    pub fn remove(&self, container_id: &str) -> Result<(), LoggerError> {
        let legacy = {
            let mut state = self.lock();
            state.entries.remove(container_id);
            state.legacy.contains(container_id)
        };
        self.journal
            .remove_blocking(container_id, Durability::Lazy)
            .map_err(self.journal_error(format!(
                "remove the log checkpoint of container {container_id}"
            )))?;
        if legacy {
            self.try_remove_legacy(container_id)?;
            self.lock().legacy.remove(container_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutputStream;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample(id: &str, len: u64) -> Checkpoint {
        let mut position = Position::default();
        position.record(
            OutputStream::Stdout,
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 42)),
            &vec![b'x'; len as usize],
        );
        Checkpoint {
            version: FORMAT_VERSION,
            container_id: id.into(),
            phase: Phase::Running,
            position,
            stdout: FileRecord { inode: 7, len },
            stderr: FileRecord { inode: 8, len: 0 },
            totals: Totals {
                stdout_bytes: len,
                ..Totals::default()
            },
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn write_legacy(dir: &Path, cp: &Checkpoint) {
        let path = dir.join(format!("{}.json", cp.container_id));
        fs::write(path, serde_json::to_vec(cp).unwrap()).unwrap();
    }

    #[test]
    fn checkpoints_round_trip_through_one_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("c1").unwrap(), None);
        store.store(&sample("c1", 9), Durability::Lazy).unwrap();
        store.store(&sample("c2", 3), Durability::Durable).unwrap();
        store.store(&sample("c1", 12), Durability::Lazy).unwrap();
        assert_eq!(store.load("c1").unwrap(), Some(sample("c1", 12)));
        assert!(store.contains("c2") && !store.contains("c3"));
        drop(store);
        assert_eq!(names(dir.path()), [JOURNAL_FILE]);

        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("c1").unwrap(), Some(sample("c1", 12)));
        assert_eq!(store.load("c2").unwrap(), Some(sample("c2", 3)));
        store.remove("c1").unwrap();
        store.remove("never-there").unwrap();
        assert_eq!(store.load("c1").unwrap(), None);
        drop(store);
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("c1").unwrap(), None);
        assert_eq!(store.load("c2").unwrap(), Some(sample("c2", 3)));
    }

    #[test]
    fn a_legacy_file_is_read_and_removed_by_the_first_store() {
        let dir = tempfile::tempdir().unwrap();
        write_legacy(dir.path(), &sample("c1", 5));
        // An interrupted write of the old format: ignored and removed.
        fs::write(dir.path().join("c1.json.tmp"), b"{\"version\":1,\"contai").unwrap();
        fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert!(store.contains("c1"));
        assert_eq!(store.load("c1").unwrap(), Some(sample("c1", 5)));
        assert!(!dir.path().join("c1.json.tmp").exists());
        assert!(
            dir.path().join("c1.json").exists(),
            "kept until the journal has c1"
        );
        // Another container's record first, then a sync: the journal's first write reserves
        // space, and the fsync that does so would hide the one counted below.
        store.store(&sample("c0", 1), Durability::Lazy).unwrap();
        store.journal.sync_blocking().unwrap();
        let syncs = store.journal.stats().syncs;
        store.store(&sample("c1", 8), Durability::Lazy).unwrap();
        assert_eq!(
            store.journal.stats().syncs,
            syncs + 1,
            "the store replacing a legacy file is durable"
        );
        assert_eq!(names(dir.path()), [JOURNAL_FILE, "notes.txt"]);
        assert_eq!(store.load("c1").unwrap(), Some(sample("c1", 8)));
        drop(store);
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("c1").unwrap(), Some(sample("c1", 8)));
    }

    #[test]
    fn remove_deletes_a_legacy_file() {
        let dir = tempfile::tempdir().unwrap();
        write_legacy(dir.path(), &sample("c1", 5));
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.remove("c1").unwrap();
        assert_eq!(store.load("c1").unwrap(), None);
        assert_eq!(names(dir.path()), [JOURNAL_FILE]);
    }

    #[test]
    fn journal_and_legacy_file_the_newer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store
            .store(&sample("old-file", 2), Durability::Durable)
            .unwrap();
        store
            .store(&sample("new-file", 2), Durability::Durable)
            .unwrap();
        drop(store);
        let journal_time = modified(&dir.path().join(JOURNAL_FILE)).unwrap();
        // A migration whose file removal a crash undid: the file is older than the journal.
        write_legacy(dir.path(), &sample("old-file", 1));
        // An older agent ran again after this one: its file is newer than the journal.
        write_legacy(dir.path(), &sample("new-file", 3));
        let set = |name: &str, t: SystemTime| {
            fs::File::options()
                .write(true)
                .open(dir.path().join(name))
                .unwrap()
                .set_modified(t)
                .unwrap()
        };
        set("old-file.json", journal_time - Duration::from_secs(60));
        set("new-file.json", journal_time + Duration::from_secs(60));

        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("old-file").unwrap(), Some(sample("old-file", 2)));
        assert!(
            !dir.path().join("old-file.json").exists(),
            "leftover removed"
        );
        assert_eq!(store.load("new-file").unwrap(), Some(sample("new-file", 3)));
        drop(store);
        // The stale journal entry was removed: the file still wins once the journal is newer.
        let store = CheckpointStore::open(dir.path()).unwrap();
        store
            .store(&sample("other", 1), Durability::Durable)
            .unwrap();
        drop(store);
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("new-file").unwrap(), Some(sample("new-file", 3)));
    }

    #[test]
    fn unusable_checkpoints_say_why() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("c1.json"), b"garbage").unwrap();
        fs::write(dir.path().join("c2.json"), br#"{"version":9}"#).unwrap();
        write_legacy(
            dir.path(),
            &Checkpoint {
                container_id: "other".into(),
                ..sample("x", 1)
            },
        );
        fs::rename(dir.path().join("other.json"), dir.path().join("c3.json")).unwrap();
        {
            let (journal, _) = Journal::open(dir.path().join(JOURNAL_FILE)).unwrap();
            journal
                .put_blocking("c4", b"{torn".to_vec(), Durability::Lazy)
                .unwrap();
        }
        let store = CheckpointStore::open(dir.path()).unwrap();
        let err = |id| store.load(id).unwrap_err().to_string();
        assert!(
            err("c1").contains("c1.json") && err("c1").contains("not JSON"),
            "{}",
            err("c1")
        );
        assert!(err("c2").contains("format version 9"), "{}", err("c2"));
        assert!(
            err("c3").contains("belongs to container other"),
            "{}",
            err("c3")
        );
        let e = err("c4");
        assert!(
            e.contains(JOURNAL_FILE)
                && e.contains("record of container c4")
                && e.contains("not JSON"),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_journal_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(JOURNAL_FILE), b"something else entirely").unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(
            fs::read(dir.path().join(UNREADABLE_JOURNAL_FILE)).unwrap(),
            b"something else entirely"
        );
        assert_eq!(store.load("c1").unwrap(), None);
        let e = store.missing("c1");
        assert!(
            matches!(&e, LoggerError::BadCheckpoint { path, .. } if path.ends_with(UNREADABLE_JOURNAL_FILE)),
            "{e:?}"
        );
        assert!(e.to_string().contains("not a Berth journal"), "{e}");
        // The new journal works.
        store.store(&sample("c1", 1), Durability::Lazy).unwrap();
        drop(store);
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("c1").unwrap(), Some(sample("c1", 1)));
        assert!(matches!(
            store.missing("c2"),
            LoggerError::NoCheckpoint { .. }
        ));
    }

    #[test]
    fn a_journal_that_cannot_be_opened_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(JOURNAL_FILE)).unwrap();
        let e = CheckpointStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(&e, LoggerError::Journal { path, .. } if path.ends_with(JOURNAL_FILE)),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("open the log checkpoint journal") && text.contains(JOURNAL_FILE),
            "{text}"
        );
    }
}
