//! Putting a stream's files back to the state a checkpoint describes, after an agent restart.
//!
//! The writer may have got further than its last checkpoint before the agent stopped. Those
//! bytes will be replayed from Docker, so they are cut off here: the current file is truncated to
//! the checkpointed length, and if rotations happened after the checkpoint, the files they
//! created are removed and the checkpointed file becomes current again. The file is found by its
//! inode, so a rename never confuses it with another.
//!
//! That needs the checkpointed file to still exist: a file rotation deleted may have passed its
//! inode number on to a new file. The writer sees to it (see [`crate::checkpoint`]): once a
//! stream has rotated `keep` times since the last *durable* checkpoint, before the next rotation
//! would delete that checkpoint's file, it stores a durable one. So the newest checkpoint names
//! an existing file after an agent restart, and also after a host crash, which may lose the
//! lazily stored checkpoints since the last durable one. (With a keep count of 0 rotation
//! deletes the current file itself: the file is not found, and output is repeated.)
//!
//! After a host crash the file may also be shorter than checkpointed (its last bytes were only in
//! the page cache): those bytes are reported as missing; Docker's replay does not bring them back.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::checkpoint::FileRecord;
use crate::file::{indexed_path, remove_if_exists};
use crate::OutputStream;

/// What [`reconcile`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconciled {
    /// The checkpointed file was found at rotation index `index` (0: still current) and is the
    /// current file again.
    Restored {
        /// Where it was found.
        index: u32,
        /// Bytes written after the checkpoint that were cut off (they will be replayed).
        truncated: u64,
        /// Bytes the checkpoint counted that the file no longer has (lost with the host's page
        /// cache, or truncated by someone else): they will not be replayed.
        missing: u64,
    },
    /// The checkpointed file no longer exists. The files are left alone; output written after
    /// the checkpoint will appear twice.
    NotFound,
}

/// Restores `<dir>/<stream>*` to the checkpointed state, looking at rotation indices up to `scan`.
pub(crate) fn reconcile(
    dir: &Path,
    stream: OutputStream,
    scan: u32,
    record: FileRecord,
) -> io::Result<Reconciled> {
    let mut found = None;
    let mut last_existing = 0;
    for index in 0..=scan {
        match fs::metadata(indexed_path(dir, stream, index)) {
            Ok(meta) => {
                last_existing = index;
                if found.is_none() && meta.ino() == record.inode {
                    found = Some((index, meta.len()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let Some((index, len)) = found else {
        return Ok(Reconciled::NotFound);
    };
    let path = indexed_path(dir, stream, index);
    let truncated = len.saturating_sub(record.len);
    if truncated > 0 {
        OpenOptions::new()
            .write(true)
            .open(&path)?
            .set_len(record.len)?;
    }
    if index > 0 {
        // Files newer than the checkpointed one were all created after the checkpoint.
        for newer in 0..index {
            remove_if_exists(&indexed_path(dir, stream, newer))?;
        }
        for from in index..=last_existing {
            let from_path = indexed_path(dir, stream, from);
            if from_path.exists() {
                fs::rename(&from_path, indexed_path(dir, stream, from - index))?;
            }
        }
    }
    Ok(Reconciled::Restored {
        index,
        truncated,
        missing: record.len.saturating_sub(len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(p: &Path) -> u64 {
        fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn current_file_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let cur = dir.path().join("stdout");
        fs::write(&cur, b"checkpointed+later").unwrap();
        let rec = FileRecord {
            inode: inode(&cur),
            len: 12,
        };
        let got = reconcile(dir.path(), OutputStream::Stdout, 3, rec).unwrap();
        assert_eq!(
            got,
            Reconciled::Restored {
                index: 0,
                truncated: 6,
                missing: 0
            }
        );
        assert_eq!(fs::read(&cur).unwrap(), b"checkpointed");
    }

    #[test]
    fn rotations_after_the_checkpoint_are_undone() {
        let dir = tempfile::tempdir().unwrap();
        let p = |i| indexed_path(dir.path(), OutputStream::Stderr, i);
        // at checkpoint: stderr = "B" (len 1), stderr.1 = "A"; then two rotations happened
        fs::write(p(0), b"D").unwrap();
        fs::write(p(1), b"C").unwrap();
        fs::write(p(2), b"B+").unwrap();
        fs::write(p(3), b"A").unwrap();
        let rec = FileRecord {
            inode: inode(&p(2)),
            len: 1,
        };
        let got = reconcile(dir.path(), OutputStream::Stderr, 3, rec).unwrap();
        assert_eq!(
            got,
            Reconciled::Restored {
                index: 2,
                truncated: 1,
                missing: 0
            }
        );
        assert_eq!(fs::read(p(0)).unwrap(), b"B");
        assert_eq!(fs::read(p(1)).unwrap(), b"A");
        assert!(!p(2).exists() && !p(3).exists());
    }

    #[test]
    fn a_shorter_file_reports_missing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cur = dir.path().join("stdout");
        fs::write(&cur, b"ab").unwrap();
        let rec = FileRecord {
            inode: inode(&cur),
            len: 5,
        };
        assert_eq!(
            reconcile(dir.path(), OutputStream::Stdout, 0, rec).unwrap(),
            Reconciled::Restored {
                index: 0,
                truncated: 0,
                missing: 3
            }
        );
    }

    #[test]
    fn a_vanished_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("stdout"), b"x").unwrap();
        let rec = FileRecord {
            inode: u64::MAX,
            len: 1,
        };
        assert_eq!(
            reconcile(dir.path(), OutputStream::Stdout, 2, rec).unwrap(),
            Reconciled::NotFound
        );
        assert_eq!(fs::read(dir.path().join("stdout")).unwrap(), b"x");
    }
}
