//! Moving verified results from a staging directory into their place in the sandbox.
//!
//! Staging lives inside the sandbox (same filesystem), so placing is a rename: readers see
//! either nothing or the complete result.
//!
//! The sandbox is a directory someone else may write (a container's payload, before or after
//! this fetch). So it is opened once ([`Dir`]) and every name in it is resolved beneath that
//! handle with no symbolic link followed: a link planted where a result goes, or on the way to
//! it, makes the fetch fail instead of writing outside the sandbox.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_safe_fs::{Dir, Kind, OpenOptions};

use crate::cleanup::{random_suffix, Cleanup};
use crate::error::{FetchError, Result};
use crate::owner::Owner;

/// Names of staging directories in a sandbox start with this; [`remove_leftover_staging`]
/// relies on it.
pub(crate) const STAGING_PREFIX: &str = ".berth-fetch-";

/// Removes staging directories a fetch left in `sandbox` when its process died mid-fetch (a
/// dropped fetch removes its own; a SIGKILLed one cannot). Returns how many were removed.
///
/// Call it only when no fetch into `sandbox` is running: it cannot tell a live staging
/// directory from a dead one.
///
/// ```
/// let sandbox = tempfile::tempdir()?;
/// std::fs::create_dir(sandbox.path().join(".berth-fetch-x1y2"))?;
/// std::fs::write(sandbox.path().join("kept.txt"), b"user data")?;
/// assert_eq!(berth_fetcher::remove_leftover_staging(sandbox.path())?, 1);
/// assert!(sandbox.path().join("kept.txt").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// When the sandbox cannot be listed or a staging directory cannot be removed, naming the path.
pub fn remove_leftover_staging(sandbox: &Path) -> Result<usize> {
    let dir = match Dir::open(sandbox) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(FetchError::io("cannot open sandbox", sandbox, e)),
    };
    let entries = dir
        .entries()
        .map_err(|e| FetchError::io("cannot list sandbox", sandbox, e))?;
    let mut removed = 0;
    for entry in entries {
        // Only directories we made: a user's file that happens to share the prefix stays, and a
        // link is never followed.
        let ours =
            entry.name.to_string_lossy().starts_with(STAGING_PREFIX) && entry.kind == Kind::Dir;
        if ours {
            dir.remove_all(&entry.name).map_err(|e| {
                FetchError::io(
                    "cannot remove leftover staging directory",
                    sandbox.join(&entry.name),
                    e,
                )
            })?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A private directory in the sandbox for one URI's work in progress; removed when the last
/// holder lets go. Everything in it is reached through the sandbox opened once.
pub(crate) struct Staging {
    pub(crate) guard: Arc<Cleanup>,
    /// Its name in the sandbox.
    name: PathBuf,
    dir: Dir,
}

impl Staging {
    pub(crate) fn new(sandbox: &Dir) -> Result<Staging> {
        let name = format!("{STAGING_PREFIX}{}", random_suffix());
        let path = sandbox.path().join(&name);
        sandbox
            .create_dir(&name, 0o700)
            .map_err(|e| FetchError::io("cannot create staging directory", &path, e))?;
        let dir = sandbox
            .open_dir(&name)
            .map_err(|e| FetchError::io("cannot open staging directory", &path, e))?;
        let owner = sandbox
            .try_clone()
            .map_err(|e| FetchError::io("cannot open", sandbox.path(), e))?;
        Ok(Staging {
            guard: Arc::new(Cleanup::beneath(owner, name.clone().into())),
            name: name.into(),
            dir,
        })
    }

    /// Where a single downloaded or decompressed file goes, relative to the sandbox.
    pub(crate) fn data_rel(&self) -> PathBuf {
        self.name.join(DATA)
    }

    /// Creates the data file, empty, for writing.
    pub(crate) fn create_data(&self) -> Result<File> {
        self.dir
            .open_file(
                DATA,
                OpenOptions::new().write(true).create_new(true).mode(0o600),
            )
            .map_err(|e| FetchError::io("cannot create", self.dir.path().join(DATA), e))
    }

    /// Opens the data file for reading.
    pub(crate) fn open_data(&self) -> Result<File> {
        self.dir
            .open_file(DATA, OpenOptions::new().read(true))
            .map_err(|e| FetchError::io("cannot open", self.dir.path().join(DATA), e))
    }

    /// Where an archive is extracted, relative to the sandbox.
    pub(crate) fn tree_rel(&self) -> PathBuf {
        self.name.join(TREE)
    }

    /// The extraction directory (created on first call).
    pub(crate) fn tree(&self) -> Result<Dir> {
        let path = self.dir.path().join(TREE);
        match self.dir.create_dir(TREE, 0o700) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(FetchError::io("cannot create", &path, e)),
        }
        self.dir
            .open_dir(TREE)
            .map_err(|e| FetchError::io("cannot open", &path, e))
    }
}

const DATA: &str = "data";
const TREE: &str = "tree";

fn refused(action: &'static str, sandbox: &Dir, rel: &Path, e: std::io::Error) -> FetchError {
    let e = if berth_safe_fs::is_refused(&e) {
        std::io::Error::other(format!(
            "a symbolic link or special file is on the way, and none is followed: {e}"
        ))
    } else {
        e
    };
    FetchError::io(action, sandbox.path().join(rel), e)
}

/// Creates `dir` (relative) and any missing parents in the sandbox, refusing to go through
/// symlinks, and gives what it created to `owner`.
pub(crate) fn ensure_dir(sandbox: &Dir, dir: &Path, owner: Option<Owner>) -> Result<()> {
    let mut cur = PathBuf::new();
    for comp in dir.components() {
        cur.push(comp);
        match sandbox.metadata(&cur) {
            Ok(st) => match Kind::from_mode(st.st_mode) {
                Kind::Dir => {}
                Kind::Symlink => {
                    return Err(FetchError::io(
                        "refusing to go through symlink",
                        sandbox.path().join(&cur),
                        std::io::Error::other("output paths may not traverse symlinks"),
                    ))
                }
                _ => {
                    return Err(FetchError::io(
                        "cannot create directory",
                        sandbox.path().join(&cur),
                        std::io::Error::other("a file of that name exists"),
                    ))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                sandbox
                    .create_dir(&cur, 0o755)
                    .map_err(|e| refused("cannot create directory", sandbox, &cur, e))?;
                if let Some(o) = owner {
                    chown_at(sandbox, &cur, o)?;
                }
            }
            Err(e) => return Err(refused("cannot create directory", sandbox, &cur, e)),
        }
    }
    Ok(())
}

/// Renames a staged file to `dest` (both relative to the sandbox), after setting its mode and
/// owner when asked.
pub(crate) fn place_file(
    sandbox: &Dir,
    src: &Path,
    dest: &Path,
    mode: Option<u32>,
    owner: Option<Owner>,
) -> Result<()> {
    if mode.is_some() || owner.is_some() {
        let f = sandbox
            .open_file(src, OpenOptions::new().read(true))
            .map_err(|e| refused("cannot open", sandbox, src, e))?;
        if let Some(mode) = mode {
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| FetchError::io("cannot set mode of", sandbox.path().join(src), e))?;
        }
        if let Some(o) = owner {
            fchown(&f, o).map_err(|e| {
                FetchError::io("cannot change owner of", sandbox.path().join(src), e)
            })?;
        }
    }
    if let Some(parent) = dest.parent() {
        ensure_dir(sandbox, parent, owner)?;
    }
    if let Ok(st) = sandbox.metadata(dest) {
        if Kind::from_mode(st.st_mode) == Kind::Dir {
            return Err(FetchError::io(
                "cannot replace",
                sandbox.path().join(dest),
                std::io::Error::other("a directory of that name exists"),
            ));
        }
    }
    sandbox
        .rename(src, dest)
        .map_err(|e| refused("cannot move result to", sandbox, dest, e))
}

/// Moves the contents of a staged extraction tree (relative to the sandbox) into `dest_dir`,
/// merging with directories already there and replacing files.
pub(crate) fn place_tree(
    sandbox: &Dir,
    tree: &Path,
    dest_dir: &Path,
    owner: Option<Owner>,
) -> Result<()> {
    ensure_dir(sandbox, dest_dir, owner)?;
    let entries = sandbox
        .open_dir(tree)
        .and_then(|d| d.entries())
        .map_err(|e| refused("cannot list", sandbox, tree, e))?;
    for entry in entries {
        let src = tree.join(&entry.name);
        if let Some(o) = owner {
            chown_tree(sandbox, &src, o)?;
        }
        merge_move(sandbox, &src, &dest_dir.join(&entry.name))?;
    }
    Ok(())
}

fn merge_move(sandbox: &Dir, src: &Path, dst: &Path) -> Result<()> {
    let src_is_dir = sandbox
        .metadata(src)
        .is_ok_and(|st| Kind::from_mode(st.st_mode) == Kind::Dir);
    match sandbox.metadata(dst) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(refused("cannot move result to", sandbox, dst, e)),
        Ok(st) => match Kind::from_mode(st.st_mode) {
            Kind::Dir if src_is_dir => {
                let entries = sandbox
                    .open_dir(src)
                    .and_then(|d| d.entries())
                    .map_err(|e| refused("cannot list", sandbox, src, e))?;
                for entry in entries {
                    merge_move(sandbox, &src.join(&entry.name), &dst.join(&entry.name))?;
                }
                return Ok(());
            }
            Kind::Dir => sandbox
                .remove_all(dst)
                .map_err(|e| refused("cannot replace", sandbox, dst, e))?,
            _ => sandbox
                .remove_file(dst)
                .map_err(|e| refused("cannot replace", sandbox, dst, e))?,
        },
    }
    sandbox
        .rename(src, dst)
        .map_err(|e| refused("cannot move result to", sandbox, dst, e))
}

fn fchown(fd: impl std::os::fd::AsFd, o: Owner) -> std::io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(o.uid)),
        Some(rustix::fs::Gid::from_raw(o.gid)),
    )
    .map_err(Into::into)
}

/// Gives the name `rel` (not followed) to `owner`.
fn chown_at(sandbox: &Dir, rel: &Path, o: Owner) -> Result<()> {
    let parent = sandbox
        .open_dir(rel.parent().unwrap_or(Path::new("")))
        .map_err(|e| refused("cannot change owner of", sandbox, rel, e))?;
    let name = rel.file_name().unwrap_or(rel.as_os_str());
    rustix::fs::chownat(
        &parent,
        name,
        Some(rustix::fs::Uid::from_raw(o.uid)),
        Some(rustix::fs::Gid::from_raw(o.gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| FetchError::io("cannot change owner of", sandbox.path().join(rel), e.into()))
}

/// Gives a whole staged tree to `owner`, following no link.
fn chown_tree(sandbox: &Dir, rel: &Path, o: Owner) -> Result<()> {
    chown_at(sandbox, rel, o)?;
    let is_dir = sandbox
        .metadata(rel)
        .is_ok_and(|st| Kind::from_mode(st.st_mode) == Kind::Dir);
    if is_dir {
        let entries = sandbox
            .open_dir(rel)
            .and_then(|d| d.entries())
            .map_err(|e| refused("cannot list", sandbox, rel, e))?;
        for entry in entries {
            chown_tree(sandbox, &rel.join(&entry.name), o)?;
        }
    }
    Ok(())
}
