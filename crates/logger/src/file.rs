//! One stream's log file in the sandbox, with size-based rotation under Mesos' names.
//!
//! `stdout` is the file being written; `stdout.1` is the newest rotated file and `stdout.N` the
//! oldest kept. Bytes are only ever appended, and a rotation only renames, so the rotated files
//! from oldest to newest followed by the current file are exactly the stream, minus the files
//! rotation deleted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::settings::Rotation;
use crate::user::Owner;
use crate::OutputStream;

/// Whether the current file can take more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Below the limit and not cut.
    Open,
    /// Cut (at the limit or at a newline near it): the next write rotates first.
    Full,
}

/// The result of one [`StreamFile::write_some`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// Bytes of the input now in the file (at least 1).
    pub bytes: usize,
    /// Whether the file was rotated before they were written.
    pub rotated: bool,
}

/// The path of a stream's file with rotation index `index` (0 is the current file).
pub(crate) fn indexed_path(dir: &Path, stream: OutputStream, index: u32) -> PathBuf {
    if index == 0 {
        dir.join(stream.file_name())
    } else {
        dir.join(format!("{}.{index}", stream.file_name()))
    }
}

/// An open, appending log file for one stream.
#[derive(Debug)]
pub(crate) struct StreamFile {
    dir: PathBuf,
    stream: OutputStream,
    rotation: Rotation,
    owner: Option<Owner>,
    file: File,
    inode: u64,
    len: u64,
    fill: Fill,
    /// Whether the current file may hold bytes not synced to disk: bytes were written to it
    /// since its last sync, or it had bytes when opened (written before, synced or not).
    dirty: bool,
    /// Rotated files not synced to disk yet, oldest first (see [`StreamFile::rotate`]).
    unsynced: VecDeque<File>,
    /// Files synced since [`StreamFile::take_syncs`] was last called.
    syncs: u64,
}

/// Rotated files whose sync may wait; beyond this the oldest is synced at once, so the logger
/// holds only a few extra descriptors.
const MAX_UNSYNCED: usize = 4;

impl StreamFile {
    /// Opens (creating if needed) `<dir>/<stream>` for appending.
    pub fn open(
        dir: &Path,
        stream: OutputStream,
        rotation: Rotation,
        owner: Option<Owner>,
    ) -> io::Result<Self> {
        let (file, inode, len) = open_current(dir, stream, owner)?;
        let fill = match rotation {
            Rotation::BySize { max_size, .. } if len >= max_size => Fill::Full,
            _ => Fill::Open,
        };
        Ok(StreamFile {
            dir: dir.to_owned(),
            stream,
            rotation,
            owner,
            file,
            inode,
            len,
            fill,
            dirty: len > 0,
            unsynced: match rotation {
                Rotation::Never => VecDeque::new(),
                Rotation::BySize { keep, .. } => rotated_left_over(dir, stream, keep),
            },
            syncs: 0,
        })
    }

    /// Path of the current file.
    pub fn path(&self) -> PathBuf {
        indexed_path(&self.dir, self.stream, 0)
    }

    /// Inode of the current file.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// How many rotated files are kept (`u32::MAX` for a file that never rotates).
    pub fn keep(&self) -> u32 {
        match self.rotation {
            Rotation::Never => u32::MAX,
            Rotation::BySize { keep, .. } => keep,
        }
    }

    /// Length of the current file (as far as this writer knows).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Writes a prefix of `data` (at least one byte unless it fails), rotating first if the
    /// current file is full, and cutting where the size limit (or a newline near it) requires.
    pub fn write_some(&mut self, data: &[u8]) -> io::Result<Written> {
        debug_assert!(!data.is_empty());
        let mut rotated = false;
        let limit = match self.rotation {
            Rotation::Never => data.len(),
            Rotation::BySize {
                max_size,
                keep,
                newline_window,
            } => {
                if self.fill == Fill::Full || self.len >= max_size {
                    self.rotate(keep)?;
                    rotated = true;
                }
                let room = max_size - self.len;
                if (data.len() as u64) <= room {
                    data.len()
                } else {
                    let room = room as usize;
                    let start = room.saturating_sub(newline_window as usize);
                    match data[start..room].iter().rposition(|&b| b == b'\n') {
                        Some(p) => start + p + 1,
                        None => room,
                    }
                }
            }
        };
        let n = self.file.write(&data[..limit])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the file accepted no bytes",
            ));
        }
        self.len += n as u64;
        self.dirty = true;
        if n == limit && limit < data.len() {
            // The rest belongs in the next file.
            self.fill = Fill::Full;
        }
        Ok(Written { bytes: n, rotated })
    }

    /// Shifts `stdout.k` to `stdout.k+1` (dropping what falls beyond `keep`), renames the
    /// current file to `stdout.1` and starts a new current file.
    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        let current = self.path();
        if keep == 0 {
            remove_if_exists(&current)?;
        } else {
            remove_if_exists(&indexed_path(&self.dir, self.stream, keep))?;
            for k in (1..keep).rev() {
                rename_if_exists(
                    &indexed_path(&self.dir, self.stream, k),
                    &indexed_path(&self.dir, self.stream, k + 1),
                )?;
            }
            fs::rename(&current, indexed_path(&self.dir, self.stream, 1))?;
        }
        let old = std::mem::replace(
            &mut self.file,
            open_current(&self.dir, self.stream, self.owner)?.0,
        );
        let old_dirty = self.dirty;
        self.reset_to_current()?;
        // The rotated file is synced later, with the current one (`sync_all`): syncing it now
        // would stall the writer on the disk in the middle of a burst. A few may wait. One with
        // nothing unsynced (synced, then cut before more came) needs no sync.
        if old_dirty {
            self.unsynced.push_back(old);
        }
        while self.unsynced.len() > MAX_UNSYNCED {
            let oldest = self.unsynced.pop_front().expect("non-empty");
            match oldest.sync_data() {
                Ok(()) => self.syncs += 1,
                Err(error) => {
                    tracing::warn!(dir = %self.dir.display(), stream = %self.stream, %error, "cannot sync rotated log file")
                }
            }
        }
        tracing::debug!(stream = %self.stream, dir = %self.dir.display(), keep, "rotated log file");
        Ok(())
    }

    /// If the current file was deleted behind the logger's back, starts a new one; returns
    /// whether it did.
    pub fn reopen_if_removed(&mut self) -> io::Result<bool> {
        if self.file.metadata()?.nlink() > 0 {
            return Ok(false);
        }
        self.reset(open_current(&self.dir, self.stream, self.owner)?);
        Ok(true)
    }

    fn reset(&mut self, (file, inode, len): (File, u64, u64)) {
        self.file = file;
        self.inode = inode;
        self.len = len;
        self.fill = Fill::Open;
        self.dirty = len > 0;
    }

    /// Takes inode and length from the (just opened) current file.
    fn reset_to_current(&mut self) -> io::Result<()> {
        let meta = self.file.metadata()?;
        self.inode = meta.ino();
        self.len = meta.len();
        self.fill = Fill::Open;
        self.dirty = meta.len() > 0;
        Ok(())
    }

    /// Whether a sync would do anything: the current file or a rotated one holds bytes not
    /// synced yet.
    pub fn needs_sync(&self) -> bool {
        self.dirty || !self.unsynced.is_empty()
    }

    /// Flushes the data of rotated files not synced yet and, if it has unsynced bytes, of the
    /// current file to the device. A file without unsynced bytes costs nothing.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.sync_rotated()?;
        if self.dirty {
            self.file.sync_data()?;
            self.synced();
        }
        Ok(())
    }

    /// [`sync_data`](Self::sync_data), with the current file's metadata too.
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.sync_rotated()?;
        if self.dirty {
            self.file.sync_all()?;
            self.synced();
        }
        Ok(())
    }

    fn synced(&mut self) {
        self.dirty = false;
        self.syncs += 1;
    }

    fn sync_rotated(&mut self) -> io::Result<()> {
        while let Some(f) = self.unsynced.front() {
            f.sync_all()?;
            self.unsynced.pop_front();
            self.syncs += 1;
        }
        Ok(())
    }

    /// How many files were synced since the last call (for the metrics).
    pub fn take_syncs(&mut self) -> u64 {
        std::mem::take(&mut self.syncs)
    }
}

/// Rotated files an earlier run left (`stdout.1`, `stdout.2`, ...), oldest first. An agent
/// killed mid-log may have written them without syncing them, so they are synced with the
/// current file at the next durable checkpoint (the first one after a recovery is). A new
/// sandbox has none: that costs one failed open per stream.
fn rotated_left_over(dir: &Path, stream: OutputStream, keep: u32) -> VecDeque<File> {
    let mut files = VecDeque::new();
    for k in 1..=keep {
        match File::open(indexed_path(dir, stream, k)) {
            Ok(f) => {
                if f.metadata().is_ok_and(|m| m.len() > 0) {
                    files.push_front(f);
                }
            }
            // Rotation keeps them numbered without gaps.
            Err(_) => break,
        }
    }
    files
}

fn open_current(
    dir: &Path,
    stream: OutputStream,
    owner: Option<Owner>,
) -> io::Result<(File, u64, u64)> {
    let path = indexed_path(dir, stream, 0);
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(&path)?;
    if let Some(owner) = owner {
        std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))?;
    }
    let meta = file.metadata()?;
    Ok((file, meta.ino(), meta.len()))
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(crate) fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_all(f: &mut StreamFile, mut data: &[u8]) -> usize {
        let mut rotations = 0;
        while !data.is_empty() {
            let w = f.write_some(data).unwrap();
            rotations += usize::from(w.rotated);
            data = &data[w.bytes..];
        }
        rotations
    }

    fn read(dir: &Path, name: &str) -> Vec<u8> {
        fs::read(dir.join(name)).unwrap()
    }

    #[test]
    fn never_rotating_file_appends() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("stdout"), b"old\n").unwrap();
        let mut f =
            StreamFile::open(dir.path(), OutputStream::Stdout, Rotation::Never, None).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(write_all(&mut f, b"new"), 0);
        assert_eq!(read(dir.path(), "stdout"), b"old\nnew");
    }

    #[test]
    fn rotation_uses_mesos_names_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let rot = Rotation::by_size(10, 2).unwrap().with_newline_window(0);
        let mut f = StreamFile::open(dir.path(), OutputStream::Stderr, rot, None).unwrap();
        let data: Vec<u8> = (0..45u8).collect();
        assert_eq!(write_all(&mut f, &data), 4);
        assert_eq!(read(dir.path(), "stderr"), &data[40..]);
        assert_eq!(read(dir.path(), "stderr.1"), &data[30..40]);
        assert_eq!(read(dir.path(), "stderr.2"), &data[20..30]);
        assert!(!dir.path().join("stderr.3").exists());
    }

    #[test]
    fn cuts_at_a_newline_near_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let rot = Rotation::by_size(10, 3).unwrap().with_newline_window(4);
        let mut f = StreamFile::open(dir.path(), OutputStream::Stdout, rot, None).unwrap();
        write_all(&mut f, b"aaaaaaa\nbbbbbbbbbbbb\nc");
        // first file ends at the newline 2 bytes before the limit; the second has no newline in
        // its window and is cut at exactly 10 bytes
        assert_eq!(read(dir.path(), "stdout.2"), b"aaaaaaa\n");
        assert_eq!(read(dir.path(), "stdout.1"), b"bbbbbbbbbb");
        assert_eq!(read(dir.path(), "stdout"), b"bb\nc");
    }

    #[test]
    fn an_exactly_full_file_is_rotated_only_when_more_comes() {
        let dir = tempfile::tempdir().unwrap();
        let rot = Rotation::by_size(4, 1).unwrap();
        let mut f = StreamFile::open(dir.path(), OutputStream::Stdout, rot, None).unwrap();
        assert_eq!(write_all(&mut f, b"abcd"), 0);
        assert!(!dir.path().join("stdout.1").exists());
        assert_eq!(write_all(&mut f, b"e"), 1);
        assert_eq!(read(dir.path(), "stdout.1"), b"abcd");
        assert_eq!(read(dir.path(), "stdout"), b"e");
    }

    #[test]
    fn keep_zero_discards_full_files() {
        let dir = tempfile::tempdir().unwrap();
        let rot = Rotation::by_size(3, 0).unwrap();
        let mut f = StreamFile::open(dir.path(), OutputStream::Stdout, rot, None).unwrap();
        write_all(&mut f, b"abcdefg");
        assert_eq!(read(dir.path(), "stdout"), b"g");
        assert!(!dir.path().join("stdout.1").exists());
    }

    #[test]
    fn only_files_with_unsynced_bytes_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut f =
            StreamFile::open(dir.path(), OutputStream::Stdout, Rotation::Never, None).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 0, "a new, empty file");
        write_all(&mut f, b"x");
        f.sync_data().unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 1, "synced once, then clean");
        // A file with bytes when opened may hold unsynced ones (written before a restart).
        let mut g =
            StreamFile::open(dir.path(), OutputStream::Stdout, Rotation::Never, None).unwrap();
        g.sync_all().unwrap();
        assert_eq!(g.take_syncs(), 1);

        let rot = Rotation::by_size(4, 3).unwrap().with_newline_window(0);
        let mut r = StreamFile::open(dir.path(), OutputStream::Stderr, rot, None).unwrap();
        write_all(&mut r, b"abcdefghij"); // two rotated files and a current one
        r.sync_all().unwrap();
        assert_eq!(r.take_syncs(), 3);
        r.sync_all().unwrap();
        assert_eq!(r.take_syncs(), 0);
        // Full and synced, then rotated by the next write: the rotated file needs no sync.
        write_all(&mut r, b"kl");
        r.sync_all().unwrap();
        assert_eq!(r.take_syncs(), 1);
        write_all(&mut r, b"mnop");
        r.sync_all().unwrap();
        assert_eq!(r.take_syncs(), 1, "only the new current file");
    }

    /// An agent killed mid-log may leave rotated files it never synced: the log that takes
    /// over syncs them with its first durable checkpoint, once.
    #[test]
    fn rotated_files_left_by_an_earlier_run_are_synced_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stdout.1"), b"newer").unwrap();
        std::fs::write(dir.path().join("stdout.2"), b"older").unwrap();
        std::fs::write(dir.path().join("stdout.3"), b"").unwrap();
        let rot = Rotation::by_size(1024, 3).unwrap();
        let mut f = StreamFile::open(dir.path(), OutputStream::Stdout, rot, None).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 2, "the two rotated files with bytes");
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 0);
        // Not for files that do not rotate, and not for other streams' files.
        let mut g = StreamFile::open(dir.path(), OutputStream::Stderr, rot, None).unwrap();
        g.sync_all().unwrap();
        assert_eq!(g.take_syncs(), 0);
    }

    #[test]
    fn a_removed_file_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let mut f =
            StreamFile::open(dir.path(), OutputStream::Stdout, Rotation::Never, None).unwrap();
        write_all(&mut f, b"lost");
        assert!(!f.reopen_if_removed().unwrap());
        fs::remove_file(dir.path().join("stdout")).unwrap();
        assert!(f.reopen_if_removed().unwrap());
        write_all(&mut f, b"kept");
        assert_eq!(read(dir.path(), "stdout"), b"kept");
    }
}
