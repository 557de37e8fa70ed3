//! The work directory: its layout, the lock that keeps two agents out of one directory, the
//! persisted agent id, and the startup check that it is writable.
//!
//! Layout: `agent-id`, `.lock`, `checkpoints.journal` (the containerizer's checkpoints),
//! `sandboxes/<id>/` (container sandboxes), `logger/` (log positions), `fetch-cache/`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use berth_containerizer::AgentId;
use rustix::fs::FlockOperation;

use crate::error::Error;

/// `<work_dir>/sandboxes`.
pub fn sandboxes_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("sandboxes")
}

/// Held while an agent uses a work directory; released when dropped (or when the process dies,
/// since it is an `flock`).
#[derive(Debug)]
pub struct WorkDirLock {
    _file: File,
    path: PathBuf,
}

impl WorkDirLock {
    /// The work directory this lock holds.
    pub fn work_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// Creates the work directory if needed, checks that it is writable, and locks it. Fails with
/// the fix when another process holds it.
pub fn prepare(work_dir: &Path) -> Result<WorkDirLock, Error> {
    std::fs::create_dir_all(work_dir).map_err(|e| {
        Error::startup(
            format!(
                "cannot create the work directory '{}': {e}",
                work_dir.display()
            ),
            "pass a writable --work-dir, or create it and give this user access",
        )
    })?;
    match check_space(work_dir) {
        Ok(()) => {}
        // A full disk does not stop the start: the agent serves degraded (reads, KILL, REMOVE,
        // which frees space) instead of refusing to start and leaving no way to free it.
        Err(e) if is_out_of_space(&e) => {}
        Err(e) => {
            return Err(Error::startup(
                format!(
                    "the work directory '{}' is not writable: {e}",
                    work_dir.display()
                ),
                "pass a writable --work-dir, or fix its permissions",
            ));
        }
    }
    for dir in [sandboxes_dir(work_dir), work_dir.join("logger")] {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    }
    let path = work_dir.join(".lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))?;
    if let Err(e) = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(Error::startup(
            format!(
                "another berth agent{} is using the work directory '{}' ({e})",
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                },
                work_dir.display()
            ),
            "stop that agent, or give this one a different --work-dir",
        ));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(WorkDirLock { _file: file, path })
}

/// Writes and removes a small file in `work_dir`: whether the agent can write there now.
pub fn check_space(work_dir: &Path) -> std::io::Result<()> {
    let probe = work_dir.join(format!(".write-test-{}", std::process::id()));
    let written = std::fs::write(&probe, b"ok");
    // Removed even when the write failed half-way (created, then no block for the data).
    let removed = std::fs::remove_file(&probe);
    written?;
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether `e` says the file system (or the user's quota) is full.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || code == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

/// Tries to lock `work_dir` without waiting; `None` if another process holds it.
pub fn try_prepare(work_dir: &Path) -> Result<Option<WorkDirLock>, Error> {
    match prepare(work_dir) {
        Ok(l) => Ok(Some(l)),
        Err(Error::Startup { problem, .. }) if problem.starts_with("another berth agent") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The agent id: `given` if set (and then persisted), else the persisted one, else a new one
/// (persisted).
pub fn agent_id(work_dir: &Path, given: Option<&str>) -> Result<AgentId, Error> {
    let path = work_dir.join("agent-id");
    let stored = match std::fs::read_to_string(&path) {
        Ok(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("read agent id", &path, e)),
    };
    let id = match (given, &stored) {
        (Some(g), Some(s)) if g != s => {
            tracing::warn!(old = %s, new = %g, "--agent-id differs from the work directory's; containers of the old id will not be recovered");
            g.to_owned()
        }
        (Some(g), _) => g.to_owned(),
        (None, Some(s)) => s.clone(),
        (None, None) => AgentId::random().to_string(),
    };
    let id = AgentId::new(&id).map_err(|e| {
        Error::startup(
            format!("agent id from '{}': {e}", path.display()),
            "delete the file to generate a new id, or pass a valid --agent-id",
        )
    })?;
    if stored.as_deref() != Some(id.as_str()) {
        let tmp = work_dir.join("agent-id.tmp");
        std::fs::write(&tmp, format!("{id}\n"))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::io("write agent id", &path, e))?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_agent_cannot_take_the_work_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let first = prepare(tmp.path()).unwrap();
        assert_eq!(first.work_dir(), tmp.path());
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just like another process would.
        let e = prepare(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("another berth agent") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        assert!(e.contains("fix: stop that agent"), "{e}");
        assert!(try_prepare(tmp.path()).unwrap().is_none());
        drop(first);
        prepare(tmp.path()).unwrap();
    }

    #[test]
    fn unwritable_work_dirs_fail_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let e = prepare(&file.join("sub")).unwrap_err().to_string();
        assert!(
            e.contains("cannot create the work directory") && e.contains("fix:"),
            "{e}"
        );
    }

    #[test]
    fn the_agent_id_is_generated_once_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let a = agent_id(tmp.path(), None).unwrap();
        assert_eq!(agent_id(tmp.path(), None).unwrap(), a);
        let b = agent_id(tmp.path(), Some("agent-7")).unwrap();
        assert_eq!(b.as_str(), "agent-7");
        assert_eq!(agent_id(tmp.path(), None).unwrap().as_str(), "agent-7");
        std::fs::write(tmp.path().join("agent-id"), "bad/id\n").unwrap();
        assert!(agent_id(tmp.path(), None)
            .unwrap_err()
            .to_string()
            .contains("fix:"));
    }
}
