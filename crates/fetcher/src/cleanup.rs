//! Removal guards: partial files and staging trees vanish when their owner goes away, whether
//! the fetch succeeded, failed, or its future was dropped.

use std::path::{Path, PathBuf};

/// Removes a file or directory tree when dropped.
///
/// Shared through `Arc` between the async side and the blocking worker writing into it, so the
/// removal happens only after the last writer is gone (no file can appear after cleanup).
#[derive(Debug)]
pub(crate) struct Cleanup {
    path: PathBuf,
}

impl Cleanup {
    pub(crate) fn new(path: PathBuf) -> Self {
        Cleanup { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_dir() => {
                if let Err(e) = std::fs::remove_dir_all(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove staging directory");
                }
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&self.path);
            }
            Err(_) => {}
        }
    }
}

/// A random suffix for temporary names.
pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}
