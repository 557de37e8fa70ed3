//! Removal guards: partial files and staging trees vanish when their owner goes away, whether
//! the fetch succeeded, failed, or its future was dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use berth_safe_fs::Dir;

/// Removes a file or directory tree when dropped.
///
/// Shared through `Arc` between the async side and the blocking worker writing into it, so the
/// removal happens only after the last writer is gone (no file can appear after cleanup).
#[derive(Debug)]
pub(crate) enum Cleanup {
    /// A path in a directory only this process writes (the cache's temporary files).
    Path(PathBuf),
    /// A name in a directory someone else may write (a staging directory in a sandbox):
    /// removed beneath the directory opened once, following no link.
    Beneath {
        /// The directory holding the name.
        dir: Dir,
        /// The name.
        name: OsString,
        /// For messages only.
        path: PathBuf,
    },
}

impl Cleanup {
    pub(crate) fn new(path: PathBuf) -> Self {
        Cleanup::Path(path)
    }

    pub(crate) fn beneath(dir: Dir, name: OsString) -> Self {
        let path = dir.path().join(&name);
        Cleanup::Beneath { dir, name, path }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Cleanup::Path(p) => p,
            Cleanup::Beneath { path, .. } => path,
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Path(path) => match std::fs::symlink_metadata(&*path) {
                Ok(m) if m.is_dir() => {
                    if let Err(e) = std::fs::remove_dir_all(&*path) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove staging directory");
                    }
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(&*path);
                }
                Err(_) => {}
            },
            Cleanup::Beneath { dir, name, path } => match dir.remove_all(&*name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove staging directory")
                }
            },
        }
    }
}

/// A random suffix for temporary names.
pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}
