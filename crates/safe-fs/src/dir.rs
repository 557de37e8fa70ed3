//! [`Dir`]: a directory opened once, and every operation on names beneath it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

use crate::error::Refused;
use crate::open::OpenOptions;
use crate::resolve::{display, open_beneath, open_beneath_following, parent_and_name};

/// What a name in a directory is, read without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// The kernel did not say.
    Unknown,
}

impl Kind {
    /// The kind of a `st_mode`.
    pub fn from_mode(mode: u32) -> Kind {
        Kind::from(FileType::from_raw_mode(mode))
    }
}

impl From<FileType> for Kind {
    fn from(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            _ => Kind::Unknown,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::File => "regular file",
            Kind::Dir => "directory",
            Kind::Symlink => "symbolic link",
            Kind::Fifo => "FIFO",
            Kind::Socket => "socket",
            Kind::CharDevice => "character device",
            Kind::BlockDevice => "block device",
            Kind::Unknown => "file of unknown type",
        })
    }
}

/// One entry of [`Dir::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name in the directory.
    pub name: OsString,
    /// What it is (not followed).
    pub kind: Kind,
}

/// A directory opened once; every path given to its methods is resolved beneath it without
/// following any symbolic link, and no method blocks on a FIFO or opens a device.
///
/// The directory's own path is only kept for messages: after [`Dir::open`], renaming or
/// replacing that path does not change which directory this is.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Dir {
    /// Opens the directory at `path`. The path's parents are trusted (they are the operator's);
    /// its last component must be a directory, not a link to one.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Dir> {
        let path = path.as_ref();
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| link_as_loop_at(path, e))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The path this directory was opened at (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` beneath this one.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> io::Result<Dir> {
        let rel = rel.as_ref();
        let fd = open_beneath(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// Opens the regular file `rel` as `opts` says. A link anywhere on the way gives `ELOOP`;
    /// anything but a regular file is refused before it is opened for real ([`Refused`]).
    pub fn open_file(&self, rel: impl AsRef<Path>, opts: OpenOptions) -> io::Result<File> {
        let rel = rel.as_ref();
        if opts.follow_beneath {
            return self.open_file_following(rel, opts);
        }
        let (parent, name) = parent_and_name(&self.fd, rel)?;
        let create = Mode::from_raw_mode(opts.mode);
        if opts.create_new {
            // O_EXCL never follows a link and makes the file: nothing to check.
            return openat_name(
                &parent,
                name,
                opts.access() | OFlags::CREATE | OFlags::EXCL,
                create,
            )
            .map(File::from);
        }
        // An existing name can be swapped between two calls; a few rounds settle it.
        for _ in 0..8 {
            let path_fd = match openat_name(&parent, name, OFlags::PATH, Mode::empty()) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && opts.create => {
                    match openat_name(
                        &parent,
                        name,
                        opts.access() | OFlags::CREATE | OFlags::EXCL,
                        create,
                    ) {
                        Ok(fd) => return Ok(File::from(fd)),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            let st = rustix::fs::fstat(&path_fd)?;
            check_regular(&st, name, opts.single_link)?;
            let mut flags = opts.access();
            if opts.truncate {
                flags |= OFlags::TRUNC;
            }
            return reopen(&path_fd, &parent, name, &st, flags).map(File::from);
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            format!(
                "'{}' kept changing while it was being opened",
                rel.display()
            ),
        ))
    }

    /// [`open_file`](Self::open_file) with [`OpenOptions::follow_links_beneath`].
    fn open_file_following(&self, rel: &Path, opts: OpenOptions) -> io::Result<File> {
        if opts.create || opts.create_new {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "follow_links_beneath opens existing files only; it cannot create one",
            ));
        }
        let path_fd = open_beneath_following(&self.fd, rel, OFlags::PATH)?;
        let st = rustix::fs::fstat(&path_fd)?;
        check_regular(&st, rel.as_os_str(), opts.single_link)?;
        let mut flags = opts.access();
        if opts.truncate {
            flags |= OFlags::TRUNC;
        }
        match reopen_proc(&path_fd, flags) {
            Ok(fd) => Ok(File::from(fd)),
            // No /proc: without it the checked inode cannot be reopened safely through a
            // path with links; follow none.
            Err(Errno::NOENT) => self.open_file(rel, opts.follow_links_beneath(false)),
            Err(e) => Err(e.into()),
        }
    }

    /// The directory `rel` beneath this one, following symbolic links that stay beneath it (see
    /// [`OpenOptions::follow_links_beneath`]); a link leading out gives `EXDEV`.
    pub fn open_dir_following_beneath(&self, rel: impl AsRef<Path>) -> io::Result<Dir> {
        let rel = rel.as_ref();
        let fd = open_beneath_following(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK,
        )?;
        Ok(Dir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// What `rel` is, following symbolic links that stay beneath this directory (see
    /// [`OpenOptions::follow_links_beneath`]); nothing is opened but as `O_PATH`, so a FIFO or
    /// device is described, never opened.
    pub fn metadata_following_beneath(&self, rel: impl AsRef<Path>) -> io::Result<Stat> {
        let fd = open_beneath_following(&self.fd, rel.as_ref(), OFlags::PATH)?;
        rustix::fs::fstat(&fd).map_err(Into::into)
    }

    /// What `rel` is, without following it (`lstat`).
    pub fn metadata(&self, rel: impl AsRef<Path>) -> io::Result<Stat> {
        let (parent, name) = parent_and_name(&self.fd, rel.as_ref())?;
        rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
    }

    /// Gives this directory itself to `uid`:`gid` (`fchown` on the handle: the directory that
    /// was opened, whatever has since been renamed or linked at its path). Needs root to give
    /// it to another user.
    pub fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        rustix::fs::fchown(
            &self.fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(Into::into)
    }

    /// Makes the directory `rel` (its parent must exist).
    pub fn create_dir(&self, rel: impl AsRef<Path>, mode: u32) -> io::Result<()> {
        let (parent, name) = parent_and_name(&self.fd, rel.as_ref())?;
        rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode)).map_err(Into::into)
    }

    /// Removes the name `rel` (a file, link, FIFO, ...; not a directory). A link is removed,
    /// never what it points at.
    pub fn remove_file(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let (parent, name) = parent_and_name(&self.fd, rel.as_ref())?;
        rustix::fs::unlinkat(&parent, name, AtFlags::empty()).map_err(Into::into)
    }

    /// Removes the empty directory `rel` (`unlinkat(AT_REMOVEDIR)`): a link there is not
    /// followed (`ENOTDIR`), a directory with entries is left (`ENOTEMPTY`).
    pub fn remove_dir(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let (parent, name) = parent_and_name(&self.fd, rel.as_ref())?;
        rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR).map_err(Into::into)
    }

    /// Removes `rel` and, if it is a directory, everything beneath it, following no link.
    pub fn remove_all(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let (parent, name) = parent_and_name(&self.fd, rel.as_ref())?;
        remove_all_at(&parent, name)
    }

    /// Renames `from` to `to`, both beneath this directory; replaces a file at `to`. Neither
    /// last name is followed.
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let (pf, nf) = parent_and_name(&self.fd, from.as_ref())?;
        let (pt, nt) = parent_and_name(&self.fd, to.as_ref())?;
        rustix::fs::renameat_with(&pf, nf, &pt, nt, RenameFlags::empty()).map_err(Into::into)
    }

    /// The entries of this directory (without `.` and `..`), unsorted, kinds not followed.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        entries_of(&self.fd)
    }
}

fn openat_name(dir: impl AsFd, name: &OsStr, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        mode,
    )
    .map_err(Into::into)
    .and_then(|fd| {
        // With O_PATH, O_NOFOLLOW opens a link itself rather than failing.
        if flags.contains(OFlags::PATH)
            && FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) == FileType::Symlink
        {
            return Err(Errno::LOOP.into());
        }
        Ok(fd)
    })
}

fn check_regular(st: &Stat, name: &OsStr, single_link: bool) -> io::Result<()> {
    let kind = Kind::from_mode(st.st_mode);
    if kind != Kind::File {
        return Err(Refused::NotRegular {
            name: display(name),
            kind,
        }
        .into_io());
    }
    if single_link && st.st_nlink > 1 {
        return Err(Refused::Linked {
            name: display(name),
            links: st.st_nlink,
        }
        .into_io());
    }
    Ok(())
}

/// Opens for real the inode `path_fd` holds (checked to be a regular file): through
/// `/proc/self/fd`, which reaches exactly that inode; without `/proc`, by name again, keeping the
/// result only if it is the same inode.
fn reopen(
    path_fd: &OwnedFd,
    parent: &OwnedFd,
    name: &OsStr,
    st: &Stat,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    match reopen_proc(path_fd, flags) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) => {
            let fd = openat_name(parent, name, flags, Mode::empty())?;
            let now = rustix::fs::fstat(&fd)?;
            if now.st_dev != st.st_dev || now.st_ino != st.st_ino {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    format!("'{}' was replaced while it was being opened", display(name)),
                ));
            }
            Ok(fd)
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens for real, through `/proc/self/fd`, the inode `path_fd` (an `O_PATH` fd) holds.
fn reopen_proc(path_fd: &OwnedFd, flags: OFlags) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", path_fd.as_raw_fd());
    rustix::fs::open(
        proc_path.as_str(),
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

fn entries_of(fd: impl AsFd) -> io::Result<Vec<Entry>> {
    let dir = rustix::fs::Dir::read_from(&fd)?;
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name).to_owned();
        let mut kind = Kind::from(entry.file_type());
        if kind == Kind::Unknown {
            if let Ok(st) = rustix::fs::statat(&fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                kind = Kind::from_mode(st.st_mode);
            }
        }
        out.push(Entry { name, kind });
    }
    Ok(out)
}

/// One directory on the way down of [`remove_all_at`].
struct Level {
    /// Its name in the level above (or in the starting parent).
    name: OsString,
    /// Its identity, to check the way back up (`..`) leads where the way down came from.
    dev: u64,
    ino: u64,
    /// Subdirectories still to remove; `None` until it has been listed.
    pending: Option<Vec<OsString>>,
}

fn open_subdir(dir: impl AsFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Removes `name` in `parent` and everything beneath it, following no link. Iterative, holding
/// one directory fd at a time (plus `parent`): a container can nest directories a million deep,
/// which would overflow a recursive walk's stack (killing the whole agent) or its fd limit. The
/// way back up is `..`, checked against the device and inode noted on the way down.
fn remove_all_at(parent: impl AsFd, name: &OsStr) -> io::Result<()> {
    let mut cur = match open_subdir(&parent, name) {
        Ok(fd) => fd,
        // Not a directory (or a link to one): the name alone goes.
        Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
            return rustix::fs::unlinkat(&parent, name, AtFlags::empty()).map_err(Into::into)
        }
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&cur)?;
    let mut stack = vec![Level {
        name: name.to_owned(),
        dev: st.st_dev,
        ino: st.st_ino,
        pending: None,
    }];
    loop {
        let level = stack.last_mut().expect("never empty here");
        let pending = match &mut level.pending {
            Some(p) => p,
            None => {
                let mut subdirs = Vec::new();
                for entry in entries_of(&cur)? {
                    if entry.kind == Kind::Dir {
                        subdirs.push(entry.name);
                        continue;
                    }
                    match rustix::fs::unlinkat(&cur, &entry.name, AtFlags::empty()) {
                        // Gone meanwhile: what was wanted.
                        Ok(()) | Err(Errno::NOENT) => {}
                        // A directory with a file's d_type: walk it.
                        Err(Errno::ISDIR) => subdirs.push(entry.name),
                        Err(e) => return Err(e.into()),
                    }
                }
                level.pending.insert(subdirs)
            }
        };
        if let Some(sub) = pending.pop() {
            match open_subdir(&cur, &sub) {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd)?;
                    stack.push(Level {
                        name: sub,
                        dev: st.st_dev,
                        ino: st.st_ino,
                        pending: None,
                    });
                    cur = fd;
                }
                Err(Errno::NOENT) => {}
                // Swapped for something else since it was listed: the name alone goes.
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    match rustix::fs::unlinkat(&cur, &sub, AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        // Everything beneath `cur` is gone: go up and remove it.
        let done = stack.pop().expect("never empty here");
        let Some(up_level) = stack.last_mut() else {
            drop(cur);
            return rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR).map_err(Into::into);
        };
        let up = open_subdir(&cur, OsStr::new(".."))?;
        let st = rustix::fs::fstat(&up)?;
        if st.st_dev != up_level.dev || st.st_ino != up_level.ino {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                format!(
                    "'{}' was moved while it was being removed; left where it is now",
                    display(&done.name)
                ),
            ));
        }
        cur = up;
        match rustix::fs::unlinkat(&cur, &done.name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            // Something was added meanwhile: walk it again.
            Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => {
                if let Some(p) = up_level.pending.as_mut() {
                    p.push(done.name);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `O_DIRECTORY | O_NOFOLLOW` on a link fails with `ENOTDIR`; say `ELOOP` when it is a link.
fn link_as_loop_at(path: &Path, e: Errno) -> io::Error {
    if e == Errno::NOTDIR && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) {
        return Errno::LOOP.into();
    }
    e.into()
}
