//! Which local files a fetcher may read, and opening them without following a link out of an
//! allowed directory or blocking on a special file.
//!
//! A fetcher that runs as root reads whatever path a URI names; the caller who wrote the URI is
//! usually not the operator. So local sources are refused unless the fetcher was built with
//! [`LocalSources::Anywhere`] (a user's own command-line tool) or [`LocalSources::Within`] a list
//! of directories. Within directories, the directory is opened once when the fetcher is built,
//! and every source is resolved beneath it with no symbolic link followed
//! (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`), so a link planted in an allowed directory
//! cannot lead out of it. Whatever the policy, only regular files are read: the file is opened
//! `O_PATH`, checked with `fstat`, and only then reopened for reading, so a FIFO never blocks a
//! thread and a device (`/dev/zero`) is never read.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use berth_safe_fs::{Dir, OpenOptions, Refused};

use crate::error::{FetchError, Result};

/// Which local sources (absolute paths, `file://` URIs, paths relative to the frameworks home)
/// a fetcher may read. In every case only regular files are read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LocalSources {
    /// Every local source is refused (the default).
    #[default]
    Refused,
    /// Any regular file this process can read, links followed. For a tool a user runs as
    /// themselves on their own command line; never for a service that runs other people's
    /// requests as root.
    Anywhere,
    /// Regular files beneath these absolute directories, reached without following any
    /// symbolic link below the directory (a link inside it is refused, even one that stays
    /// inside). The directories themselves may be reached through links: they are the
    /// operator's, resolved once when the fetcher is built.
    Within(Vec<PathBuf>),
}

/// One allowed directory, opened.
#[derive(Debug)]
struct Root {
    /// As the operator gave it.
    given: PathBuf,
    /// With links resolved.
    real: PathBuf,
    dir: Dir,
}

/// [`LocalSources`] made ready: the allowed directories opened once.
#[derive(Debug)]
pub(crate) struct LocalPolicy {
    mode: Mode,
    /// Appended to a refusal: how whoever runs the fetcher allows a source.
    hint: Option<String>,
}

#[derive(Debug)]
enum Mode {
    Refused,
    Anywhere(Dir),
    Within(Vec<Root>),
}

/// A local source, open for reading, with its size.
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) len: u64,
}

impl LocalPolicy {
    /// Opens the allowed directories. A directory that does not exist or is not a directory is
    /// an error now, not a surprise at the first fetch.
    pub(crate) fn new(sources: &LocalSources, hint: Option<String>) -> Result<LocalPolicy> {
        let mode = match sources {
            LocalSources::Refused => Mode::Refused,
            LocalSources::Anywhere => {
                Mode::Anywhere(Dir::open("/").map_err(|e| FetchError::io("cannot open", "/", e))?)
            }
            LocalSources::Within(dirs) => {
                let mut roots = Vec::new();
                for given in dirs {
                    let bad = |reason: String| FetchError::AllowedRoot {
                        path: given.clone(),
                        reason,
                    };
                    if !given.is_absolute() {
                        return Err(bad("it must be an absolute path".into()));
                    }
                    let real = std::fs::canonicalize(given)
                        .map_err(|e| bad(format!("cannot resolve it: {e}")))?;
                    let dir = Dir::open(&real).map_err(|e| {
                        bad(format!(
                            "cannot open '{}' as a directory: {e}",
                            real.display()
                        ))
                    })?;
                    roots.push(Root {
                        given: given.clone(),
                        real,
                        dir,
                    });
                }
                Mode::Within(roots)
            }
        };
        Ok(LocalPolicy { mode, hint })
    }

    fn refused(&self, uri: &str, path: &Path, reason: String) -> FetchError {
        let reason = match &self.hint {
            Some(h) => format!("{reason}; {h}"),
            None => reason,
        };
        FetchError::LocalSourceRefused {
            uri: uri.to_string(),
            path: path.to_path_buf(),
            reason,
        }
    }

    /// Opens the local source `path` for reading if the policy allows it and it is a regular
    /// file. Never blocks on a FIFO, never opens a device.
    pub(crate) fn open(&self, uri: &str, path: &Path) -> Result<Opened> {
        let (dir, rel) = match &self.mode {
            Mode::Refused => {
                return Err(self.refused(
                    uri,
                    path,
                    "this fetcher reads no local files (local sources are not allowed)".into(),
                ))
            }
            Mode::Anywhere(root) => {
                // Links are the user's own here: resolve them, then insist on a regular file.
                let real = std::fs::canonicalize(path).map_err(|e| source_error(uri, path, e))?;
                let rel = real.strip_prefix("/").unwrap_or(&real).to_path_buf();
                (root, rel)
            }
            Mode::Within(roots) => {
                let found = roots.iter().find_map(|r| {
                    path.strip_prefix(&r.given)
                        .or_else(|_| path.strip_prefix(&r.real))
                        .ok()
                        .map(|rel| (&r.dir, rel.to_path_buf()))
                });
                match found {
                    Some(f) => f,
                    None => {
                        let allowed: Vec<String> = roots
                            .iter()
                            .map(|r| format!("'{}'", r.given.display()))
                            .collect();
                        return Err(self.refused(
                            uri,
                            path,
                            format!(
                                "it is not beneath an allowed directory (allowed: {})",
                                if allowed.is_empty() {
                                    "none".to_string()
                                } else {
                                    allowed.join(", ")
                                }
                            ),
                        ));
                    }
                }
            }
        };
        if rel.as_os_str().is_empty() {
            return Err(self.refused(uri, path, "it names an allowed directory itself".into()));
        }
        let file = dir
            .open_file(&rel, OpenOptions::new().read(true))
            .map_err(|e| self.open_error(uri, path, e))?;
        let meta = file.metadata().map_err(|e| source_error(uri, path, e))?;
        Ok(Opened {
            file,
            len: meta.len(),
        })
    }

    fn open_error(&self, uri: &str, path: &Path, e: io::Error) -> FetchError {
        if let Some(r) = e.get_ref().and_then(|r| r.downcast_ref::<Refused>()) {
            let reason = match r {
                Refused::Escapes { .. } => {
                    "its path climbs out of the allowed directory with '..'".to_string()
                }
                Refused::NotRegular { kind, .. } => {
                    format!("it is a {kind}, and only regular files are fetched")
                }
                other => format!("only single regular files are fetched: {other}"),
            };
            return self.refused(uri, path, reason);
        }
        match rustix::io::Errno::from_io_error(&e) {
            Some(rustix::io::Errno::LOOP) | Some(rustix::io::Errno::XDEV) => self.refused(
                uri,
                path,
                "a symbolic link is on its path, and links are not followed below an allowed \
                 directory (name the link's target instead)"
                    .into(),
            ),
            Some(rustix::io::Errno::NOTDIR) => self.refused(
                uri,
                path,
                "a component of its path is not a directory".into(),
            ),
            _ => source_error(uri, path, e),
        }
    }
}

fn source_error(uri: &str, path: &Path, e: io::Error) -> FetchError {
    FetchError::Source {
        uri: uri.to_string(),
        path: path.to_path_buf(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(sources: LocalSources) -> LocalPolicy {
        LocalPolicy::new(&sources, Some("HINT".into())).unwrap()
    }

    #[test]
    fn refused_by_default_and_the_hint_is_shown() {
        let p = policy(LocalSources::default());
        let e = p
            .open("/etc/hostname", Path::new("/etc/hostname"))
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(matches!(e, FetchError::LocalSourceRefused { .. }), "{msg}");
        assert!(
            msg.contains("'/etc/hostname'") && msg.contains("HINT"),
            "{msg}"
        );
    }

    #[test]
    fn within_a_root_only_regular_files_beneath_it_without_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("allowed");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/ok.txt"), b"fine").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/ok.txt", root.join("inside")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            root.join("fifo").as_path(),
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        let p = policy(LocalSources::Within(vec![root.clone()]));
        let ok = p.open("u", &root.join("sub/ok.txt")).unwrap();
        assert_eq!(ok.len, 4);
        for (name, want) in [
            ("out", "symbolic link"),
            ("inside", "symbolic link"),
            ("etc/passwd", "symbolic link"),
            ("fifo", "FIFO"),
            ("sub/../../x", "'..'"),
            ("sub", "directory"),
        ] {
            let started = std::time::Instant::now();
            let e = p.open("u", &root.join(name)).err().unwrap();
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
            let msg = e.to_string();
            assert!(
                matches!(e, FetchError::LocalSourceRefused { .. }) && msg.contains(want),
                "{name}: {msg}"
            );
        }
        let e = p
            .open("u", Path::new("/etc/passwd"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not beneath an allowed directory"), "{e}");
        // /dev/zero is not a regular file, even when allowed anywhere.
        let any = policy(LocalSources::Anywhere);
        let e = any
            .open("u", Path::new("/dev/zero"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("character device"), "{e}");
        assert!(any.open("u", &root.join("inside")).is_ok());
    }

    #[test]
    fn a_root_that_is_not_a_directory_fails_at_build() {
        let e = LocalPolicy::new(&LocalSources::Within(vec!["/no/such/dir".into()]), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/no/such/dir"), "{e}");
        let e = LocalPolicy::new(&LocalSources::Within(vec!["rel".into()]), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
    }
}
