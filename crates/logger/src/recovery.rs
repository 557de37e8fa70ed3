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
//!
//! The container may have replaced any of these names with a link, FIFO, device, socket,
//! directory or hard link while the agent was down. Everything goes through the sandbox's
//! [`Dir`]: names are looked at with `lstat`, only a regular file with a single link can be the
//! checkpointed one (and be cut), and renames and removals treat names as names. A name that is
//! anything else is moved or removed like a file would be (never followed, never opened), and
//! the writer replaces it with a new file when it opens the current one.

use std::io;
use std::os::unix::fs::MetadataExt;

use berth_safe_fs::{is_refused, Dir, Kind, OpenOptions};

use crate::checkpoint::FileRecord;
use crate::file::{indexed_name, remove_entry, rename_over};
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
    dir: &Dir,
    stream: OutputStream,
    scan: u32,
    record: FileRecord,
) -> io::Result<Reconciled> {
    let name = |k| indexed_name(stream, k);
    let mut found = None;
    let mut last_existing = 0;
    for index in 0..=scan {
        match dir.metadata(name(index)) {
            Ok(st) => {
                last_existing = index;
                let regular = Kind::from_mode(st.st_mode) == Kind::File && st.st_nlink == 1;
                if found.is_none() && regular && st.st_ino == record.inode {
                    found = Some((index, st.st_size.max(0) as u64));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let Some((index, len)) = found else {
        return Ok(Reconciled::NotFound);
    };
    let truncated = len.saturating_sub(record.len);
    if truncated > 0 {
        let opts = OpenOptions::new().write(true).single_link(true);
        match dir.open_file(name(index), opts) {
            // The same file (the container may have swapped the name since the lstat).
            Ok(f) if f.metadata()?.ino() == record.inode => f.set_len(record.len)?,
            Ok(_) => return Ok(Reconciled::NotFound),
            Err(e) if is_refused(&e) || e.kind() == io::ErrorKind::NotFound => {
                return Ok(Reconciled::NotFound)
            }
            Err(e) => return Err(e),
        }
    }
    if index > 0 {
        // Files newer than the checkpointed one were all created after the checkpoint.
        for newer in 0..index {
            remove_entry(dir, &name(newer))?;
        }
        for from in index..=last_existing {
            rename_over(dir, &name(from), &name(from - index))?;
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
    use crate::file::indexed_path;
    use std::fs;
    use std::path::Path;

    fn reconcile(
        dir: &Path,
        stream: OutputStream,
        scan: u32,
        record: FileRecord,
    ) -> io::Result<Reconciled> {
        super::reconcile(&Dir::open(dir).unwrap(), stream, scan, record)
    }

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
