//! One stream's log file in the sandbox, with size-based rotation under Mesos' names.
//!
//! `stdout` is the file being written; `stdout.1` is the newest rotated file and `stdout.N` the
//! oldest kept. Bytes are only ever appended, and a rotation only renames, so the rotated files
//! from oldest to newest followed by the current file are exactly the stream, minus the files
//! rotation deleted.
//!
//! # A hostile sandbox
//! The sandbox is writable by the container, whose payload may replace any of these names with a
//! symbolic link (to a host file), a hard link, a FIFO, a socket, a device node or a directory,
//! at any moment, and the agent runs as root. So every operation goes through a
//! [`Dir`](berth_safe_fs::Dir) opened once: no link is ever followed, only regular files with a
//! single link are opened for writing, and nothing blocks (a FIFO is never opened). When the
//! logger finds its name taken by anything else, it removes that name (only the name: a link's
//! target is never touched) and starts a new regular file there, with a warning naming the
//! container — Mesos users expect the task's output in `stdout`/`stderr`, and the output keeps
//! going there. Only if the container keeps winning the race for the name does a write fail; the
//! writer then retries and, after its retry window, drops (and counts) that stream's output
//! until a new file can be made; Docker still holds it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_safe_fs::{is_refused, Dir, Kind, OpenOptions};

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

/// The name of a stream's file with rotation index `index` (0 is the current file).
pub(crate) fn indexed_name(stream: OutputStream, index: u32) -> String {
    if index == 0 {
        stream.file_name().to_owned()
    } else {
        format!("{}.{index}", stream.file_name())
    }
}

/// The path of a stream's file with rotation index `index` (0 is the current file), for
/// messages and tests; the files themselves are reached through the sandbox's [`Dir`].
pub(crate) fn indexed_path(dir: &Path, stream: OutputStream, index: u32) -> PathBuf {
    dir.join(indexed_name(stream, index))
}

/// How often one open tries to take its name back from a container that keeps replacing it.
const REPLACE_ATTEMPTS: u32 = 8;

/// The error of an open whose name the container holds and the logger could not take back
/// (see [`open_current`]): the stream goes on without a file rather than failing the log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NameTaken {
    /// The container won every attempt.
    #[error("'{name}' keeps being replaced (by the container) with something the logger does not write through, {REPLACE_ATTEMPTS} times in a row; this stream's output is not written until a regular file can be made there")]
    KeepsReplaced {
        /// The name.
        name: String,
    },
    /// What holds the name cannot be removed (a mount point, an immutable file: only a
    /// privileged container can make these).
    #[error("'{name}' is held by something the logger does not write through and cannot remove ({source}); this stream's output is not written until a regular file can be made there")]
    Unremovable {
        /// The name.
        name: String,
        /// Why the removal failed.
        source: io::Error,
    },
}

/// An open, appending log file for one stream.
#[derive(Debug)]
pub(crate) struct StreamFile {
    /// The sandbox, opened once.
    dir: Arc<Dir>,
    /// For warnings.
    container_id: Arc<str>,
    stream: OutputStream,
    rotation: Rotation,
    owner: Option<Owner>,
    /// `None` while the name is held by something the logger will not write through and the
    /// last attempt to replace it lost the race; each write tries again.
    file: Option<File>,
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
    /// Names taken back from the container since [`StreamFile::take_replaced`] was last called.
    replaced: u64,
}

/// Rotated files whose sync may wait; beyond this the oldest is synced at once, so the logger
/// holds only a few extra descriptors.
const MAX_UNSYNCED: usize = 4;

impl StreamFile {
    /// Opens (creating if needed) `<dir>/<stream>` for appending. A name the container took
    /// over (a link, FIFO, device, socket, directory or hard link) is replaced by a new regular
    /// file; if the container keeps winning that race the stream starts without a file (each
    /// write tries again) rather than failing.
    pub fn open(
        dir: Arc<Dir>,
        container_id: Arc<str>,
        stream: OutputStream,
        rotation: Rotation,
        owner: Option<Owner>,
    ) -> io::Result<Self> {
        let mut replaced = 0;
        let opened = match open_current(&dir, &container_id, stream, owner, &mut replaced) {
            Ok(o) => Some(o),
            Err(e) if e.get_ref().is_some_and(|e| e.is::<NameTaken>()) => {
                tracing::warn!(container_id = %container_id, path = %indexed_path(dir.path(), stream, 0).display(), error = %e, "cannot open container log file");
                None
            }
            Err(e) => return Err(e),
        };
        let (file, inode, len) = match opened {
            Some((f, i, l)) => (Some(f), i, l),
            None => (None, 0, 0),
        };
        let fill = match rotation {
            Rotation::BySize { max_size, .. } if len >= max_size => Fill::Full,
            _ => Fill::Open,
        };
        let unsynced = match rotation {
            Rotation::Never => VecDeque::new(),
            Rotation::BySize { keep, .. } => rotated_left_over(&dir, stream, keep),
        };
        Ok(StreamFile {
            dir,
            container_id,
            stream,
            rotation,
            owner,
            file,
            inode,
            len,
            fill,
            dirty: len > 0,
            unsynced,
            syncs: 0,
            replaced,
        })
    }

    /// Path of the current file.
    pub fn path(&self) -> PathBuf {
        indexed_path(self.dir.path(), self.stream, 0)
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
        if self.file.is_none() {
            // The container held the name at the last attempt: try again.
            let opened = self.open_current()?;
            self.reset(opened);
        }
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
                // Saturating: a container racing the rotation may have put a full file at the
                // new name; it is written to once, and rotated again by the next write.
                let room = max_size.saturating_sub(self.len);
                if (data.len() as u64) <= room || room == 0 {
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
        let file = self.file.as_mut().expect("opened above");
        let n = file.write(&data[..limit])?;
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
        let name = |k| indexed_name(self.stream, k);
        // By name, never followed: whatever the container put at these names is moved or
        // removed as a name, its target untouched. The current file may have been moved away
        // or removed by the container; then only the new file is started.
        if keep == 0 {
            remove_entry(&self.dir, &name(0))?;
        } else {
            remove_entry(&self.dir, &name(keep))?;
            for k in (1..keep).rev() {
                rename_over(&self.dir, &name(k), &name(k + 1))?;
            }
            rename_over(&self.dir, &name(0), &name(1))?;
        }
        let opened = self.open_current()?;
        let old = self.file.replace(opened.0);
        // Take inode and length from the file just opened.
        let (inode, len) = (opened.1, opened.2);
        let old_dirty = self.dirty;
        self.inode = inode;
        self.len = len;
        self.fill = Fill::Open;
        self.dirty = len > 0;
        // The rotated file is synced later, with the current one (`sync_all`): syncing it now
        // would stall the writer on the disk in the middle of a burst. A few may wait. One with
        // nothing unsynced (synced, then cut before more came) needs no sync.
        if let Some(old) = old.filter(|_| old_dirty) {
            self.unsynced.push_back(old);
        }
        while self.unsynced.len() > MAX_UNSYNCED {
            let oldest = self.unsynced.pop_front().expect("non-empty");
            match oldest.sync_data() {
                Ok(()) => self.syncs += 1,
                Err(error) => {
                    tracing::warn!(container_id = %self.container_id, dir = %self.dir.path().display(), stream = %self.stream, %error, "cannot sync rotated log file")
                }
            }
        }
        tracing::debug!(container_id = %self.container_id, stream = %self.stream, dir = %self.dir.path().display(), keep, "rotated log file");
        Ok(())
    }

    /// If the current file was deleted behind the logger's back (or there is none, see
    /// [`StreamFile::open`]), starts a new one; returns whether it did.
    pub fn reopen_if_removed(&mut self) -> io::Result<bool> {
        if !self.is_removed()? {
            return Ok(false);
        }
        let opened = self.open_current()?;
        self.reset(opened);
        Ok(true)
    }

    /// Whether the current file is gone (no name links to it any more, or there is none): an
    /// `fstat` of a descriptor the logger holds, which never blocks on what the container does.
    pub fn is_removed(&self) -> io::Result<bool> {
        match &self.file {
            Some(f) => Ok(f.metadata()?.nlink() == 0),
            None => Ok(true),
        }
    }

    fn open_current(&mut self) -> io::Result<(File, u64, u64)> {
        open_current(
            &self.dir,
            &self.container_id,
            self.stream,
            self.owner,
            &mut self.replaced,
        )
    }

    fn reset(&mut self, (file, inode, len): (File, u64, u64)) {
        self.file = Some(file);
        self.inode = inode;
        self.len = len;
        self.fill = Fill::Open;
        self.dirty = len > 0;
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
            if let Some(f) = &self.file {
                f.sync_data()?;
            }
            self.synced();
        }
        Ok(())
    }

    /// [`sync_data`](Self::sync_data), with the current file's metadata too.
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.sync_rotated()?;
        if self.dirty {
            if let Some(f) = &self.file {
                f.sync_all()?;
            }
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

    /// How many names were taken back from the container since the last call (for the metrics).
    pub fn take_replaced(&mut self) -> u64 {
        std::mem::take(&mut self.replaced)
    }
}

/// Rotated files an earlier run left (`stdout.1`, `stdout.2`, ...), oldest first. An agent
/// killed mid-log may have written them without syncing them, so they are synced with the
/// current file at the next durable checkpoint (the first one after a recovery is). A new
/// sandbox has none: that costs one failed open per stream. A name the container replaced with
/// anything but a regular file is skipped (opened only as `O_PATH`, never for real).
fn rotated_left_over(dir: &Dir, stream: OutputStream, keep: u32) -> VecDeque<File> {
    let mut files = VecDeque::new();
    for k in 1..=keep {
        match dir.open_file(indexed_name(stream, k), OpenOptions::new().read(true)) {
            Ok(f) => {
                if f.metadata().is_ok_and(|m| m.len() > 0) {
                    files.push_front(f);
                }
            }
            Err(e) if is_refused(&e) => {}
            // Rotation keeps them numbered without gaps.
            Err(_) => break,
        }
    }
    files
}

/// Opens the current file of `stream` for appending: a regular file with one link, reached
/// without following a link, created `0o644` if missing, owned by `owner` if given. A name the
/// container took over is removed (as a name) and a new file made in its place, up to
/// [`REPLACE_ATTEMPTS`] times; each replacement is warned about and counted in `replaced`.
fn open_current(
    dir: &Dir,
    container_id: &str,
    stream: OutputStream,
    owner: Option<Owner>,
    replaced: &mut u64,
) -> io::Result<(File, u64, u64)> {
    let name = indexed_name(stream, 0);
    let opts = OpenOptions::new()
        .append(true)
        .create(true)
        .single_link(true)
        .mode(0o644);
    for _ in 0..REPLACE_ATTEMPTS {
        let file = match dir.open_file(&name, opts) {
            Ok(f) => f,
            Err(e) if is_refused(&e) => {
                let what = dir
                    .metadata(&name)
                    .map(|st| describe(Kind::from_mode(st.st_mode), st.st_nlink))
                    .unwrap_or_else(|_| "something else".to_owned());
                tracing::warn!(
                    container_id = %container_id, path = %indexed_path(dir.path(), stream, 0).display(),
                    found = %what, refused = %e,
                    "the container replaced its log file; removed that name (a link's target is never touched) and started a new file there"
                );
                if let Err(source) = remove_entry(dir, &name) {
                    return Err(io::Error::other(NameTaken::Unremovable { name, source }));
                }
                *replaced += 1;
                match dir.open_file(&name, opts.create_new(true)) {
                    Ok(f) => f,
                    // Taken again between the removal and the creation.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            // Swapped while it was being opened.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(owner) = owner {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))?;
        }
        let meta = file.metadata()?;
        return Ok((file, meta.ino(), meta.len()));
    }
    Err(io::Error::other(NameTaken::KeepsReplaced { name }))
}

/// "a symbolic link", "a regular file with 2 hard links", ...
fn describe(kind: Kind, nlink: u64) -> String {
    match kind {
        Kind::File => format!("a regular file with {nlink} hard links"),
        other => format!("a {other}"),
    }
}

/// Removes the name `name` in `dir` if it exists, whatever it is: a directory with everything
/// beneath it, anything else as a name (a link, never its target). Nothing is followed.
pub(crate) fn remove_entry(dir: &Dir, name: &str) -> io::Result<()> {
    let r = match dir.metadata(name) {
        Ok(st) if Kind::from_mode(st.st_mode) == Kind::Dir => dir.remove_all(name),
        Ok(_) => dir.remove_file(name),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Renames `from` to `to` in `dir` if `from` exists; whatever sits at `to` and cannot simply be
/// replaced (a directory the container made there) is removed first. Nothing is followed.
pub(crate) fn rename_over(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
    match dir.rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            remove_entry(dir, to)?;
            match dir.rename(from, to) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn open(dir: &Path, stream: OutputStream, rotation: Rotation) -> StreamFile {
        let dir = Arc::new(Dir::open(dir).unwrap());
        StreamFile::open(dir, "c1".into(), stream, rotation, None).unwrap()
    }

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
        let mut f = open(dir.path(), OutputStream::Stdout, Rotation::Never);
        assert_eq!(f.len(), 4);
        assert_eq!(write_all(&mut f, b"new"), 0);
        assert_eq!(read(dir.path(), "stdout"), b"old\nnew");
    }

    #[test]
    fn rotation_uses_mesos_names_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let rot = Rotation::by_size(10, 2).unwrap().with_newline_window(0);
        let mut f = open(dir.path(), OutputStream::Stderr, rot);
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
        let mut f = open(dir.path(), OutputStream::Stdout, rot);
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
        let mut f = open(dir.path(), OutputStream::Stdout, rot);
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
        let mut f = open(dir.path(), OutputStream::Stdout, rot);
        write_all(&mut f, b"abcdefg");
        assert_eq!(read(dir.path(), "stdout"), b"g");
        assert!(!dir.path().join("stdout.1").exists());
    }

    #[test]
    fn only_files_with_unsynced_bytes_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open(dir.path(), OutputStream::Stdout, Rotation::Never);
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 0, "a new, empty file");
        write_all(&mut f, b"x");
        f.sync_data().unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 1, "synced once, then clean");
        // A file with bytes when opened may hold unsynced ones (written before a restart).
        let mut g = open(dir.path(), OutputStream::Stdout, Rotation::Never);
        g.sync_all().unwrap();
        assert_eq!(g.take_syncs(), 1);

        let rot = Rotation::by_size(4, 3).unwrap().with_newline_window(0);
        let mut r = open(dir.path(), OutputStream::Stderr, rot);
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
        let mut f = open(dir.path(), OutputStream::Stdout, rot);
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 2, "the two rotated files with bytes");
        f.sync_all().unwrap();
        assert_eq!(f.take_syncs(), 0);
        // Not for files that do not rotate, and not for other streams' files.
        let mut g = open(dir.path(), OutputStream::Stderr, rot);
        g.sync_all().unwrap();
        assert_eq!(g.take_syncs(), 0);
    }

    #[test]
    fn a_removed_file_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open(dir.path(), OutputStream::Stdout, Rotation::Never);
        write_all(&mut f, b"lost");
        assert!(!f.reopen_if_removed().unwrap());
        fs::remove_file(dir.path().join("stdout")).unwrap();
        assert!(f.reopen_if_removed().unwrap());
        write_all(&mut f, b"kept");
        assert_eq!(read(dir.path(), "stdout"), b"kept");
    }
}
