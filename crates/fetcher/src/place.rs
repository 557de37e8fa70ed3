//! Moving verified results from a staging directory into their place in the sandbox.
//!
//! Staging lives inside the sandbox (same filesystem), so placing is a rename: readers see
//! either nothing or the complete result.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cleanup::{random_suffix, Cleanup};
use crate::error::{FetchError, Result};
use crate::owner::{chown, chown_tree, Owner};

/// A private directory in the sandbox for one URI's work in progress; removed when the last
/// holder lets go.
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
    let entries = match fs::read_dir(sandbox) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(FetchError::io("cannot list sandbox", sandbox, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| FetchError::io("cannot list sandbox", sandbox, e))?;
        let name = entry.file_name();
        // Only directories we made: a user's file that happens to share the prefix stays.
        let ours = name.to_string_lossy().starts_with(STAGING_PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if ours {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| {
                FetchError::io("cannot remove leftover staging directory", &path, e)
            })?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub(crate) struct Staging {
    pub(crate) guard: Arc<Cleanup>,
}

impl Staging {
    pub(crate) fn new(sandbox: &Path) -> Result<Staging> {
        let path = sandbox.join(format!("{STAGING_PREFIX}{}", random_suffix()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| FetchError::io("cannot create staging directory", &path, e))?;
        Ok(Staging {
            guard: Arc::new(Cleanup::new(path)),
        })
    }

    /// Where a single downloaded or decompressed file goes.
    pub(crate) fn data(&self) -> PathBuf {
        self.guard.path().join("data")
    }

    /// Where an archive is extracted (created on first call).
    pub(crate) fn tree(&self) -> Result<PathBuf> {
        let p = self.guard.path().join("tree");
        if !p.exists() {
            fs::create_dir(&p).map_err(|e| FetchError::io("cannot create", &p, e))?;
        }
        Ok(p)
    }
}

/// Creates `dir` and any missing parents below `sandbox`, refusing to go through symlinks, and
/// gives what it created to `owner`.
pub(crate) fn ensure_dir(sandbox: &Path, dir: &Path, owner: Option<Owner>) -> Result<()> {
    let rel = dir.strip_prefix(sandbox).unwrap_or(Path::new(""));
    let mut cur = sandbox.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(FetchError::io(
                    "refusing to go through symlink",
                    &cur,
                    std::io::Error::other("output paths may not traverse symlinks"),
                ))
            }
            Ok(_) => {
                return Err(FetchError::io(
                    "cannot create directory",
                    &cur,
                    std::io::Error::other("a file of that name exists"),
                ))
            }
            Err(_) => {
                fs::create_dir(&cur)
                    .map_err(|e| FetchError::io("cannot create directory", &cur, e))?;
                if let Some(o) = owner {
                    chown(&cur, o)?;
                }
            }
        }
    }
    Ok(())
}

/// Renames a staged file to `dest`, after setting its mode and owner when asked (not for a hard
/// link into the cache, whose inode is shared).
pub(crate) fn place_file(
    sandbox: &Path,
    src: &Path,
    dest: &Path,
    mode: Option<u32>,
    owner: Option<Owner>,
) -> Result<()> {
    if let Some(mode) = mode {
        fs::set_permissions(src, fs::Permissions::from_mode(mode))
            .map_err(|e| FetchError::io("cannot set mode of", src, e))?;
    }
    if let Some(o) = owner {
        chown(src, o)?;
    }
    if let Some(parent) = dest.parent() {
        ensure_dir(sandbox, parent, owner)?;
    }
    if let Ok(m) = fs::symlink_metadata(dest) {
        if m.is_dir() {
            return Err(FetchError::io(
                "cannot replace",
                dest,
                std::io::Error::other("a directory of that name exists"),
            ));
        }
    }
    fs::rename(src, dest).map_err(|e| FetchError::io("cannot move result to", dest, e))
}

/// Moves the contents of a staged extraction tree into `dest_dir`, merging with directories
/// already there and replacing files.
pub(crate) fn place_tree(
    sandbox: &Path,
    tree: &Path,
    dest_dir: &Path,
    owner: Option<Owner>,
) -> Result<()> {
    ensure_dir(sandbox, dest_dir, owner)?;
    for entry in fs::read_dir(tree).map_err(|e| FetchError::io("cannot list", tree, e))? {
        let entry = entry.map_err(|e| FetchError::io("cannot list", tree, e))?;
        if let Some(o) = owner {
            chown_tree(&entry.path(), o)?;
        }
        merge_move(&entry.path(), &dest_dir.join(entry.file_name()))?;
    }
    Ok(())
}

fn merge_move(src: &Path, dst: &Path) -> Result<()> {
    let src_is_dir = fs::symlink_metadata(src)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    match fs::symlink_metadata(dst) {
        Err(_) => {}
        Ok(m) if m.is_dir() && src_is_dir => {
            for entry in fs::read_dir(src).map_err(|e| FetchError::io("cannot list", src, e))? {
                let entry = entry.map_err(|e| FetchError::io("cannot list", src, e))?;
                merge_move(&entry.path(), &dst.join(entry.file_name()))?;
            }
            return Ok(());
        }
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(dst).map_err(|e| FetchError::io("cannot replace", dst, e))?
        }
        Ok(_) => fs::remove_file(dst).map_err(|e| FetchError::io("cannot replace", dst, e))?,
    }
    fs::rename(src, dst).map_err(|e| FetchError::io("cannot move result to", dst, e))
}
