//! Path resolution beneath a directory fd that follows no link and never climbs out.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::Refused;

/// Set once `openat2` turned out to be unavailable (kernel before 5.6, or a seccomp filter).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The components of `rel`, checked: relative, no `..`; `.` and empty components dropped.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Refused::Escapes {
                    name: rel.display().to_string(),
                }
                .into_io())
            }
        }
    }
    Ok(out)
}

/// Opens `rel` beneath `dir` with `flags` (and `mode` for `O_CREAT`), following no symbolic link
/// in any component: a link anywhere gives `ELOOP`. An empty path or `.` opens `dir` itself.
pub(crate) fn open_beneath(
    dir: impl AsFd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    open_beneath_with(
        dir,
        rel,
        flags,
        mode,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens `rel` beneath `dir` with `flags`, following symbolic links as long as every step of
/// the resolution stays beneath `dir` (`RESOLVE_BENEATH`: a link that leads out, absolute or
/// through `..`, gives `EXDEV`; magic links are refused). Where `openat2` is unavailable, no
/// link is followed at all, as in [`open_beneath`].
pub(crate) fn open_beneath_following(
    dir: impl AsFd,
    rel: &Path,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    open_beneath_with(
        dir,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
}

fn open_beneath_with(
    dir: impl AsFd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    let parts = components(rel)?;
    // openat2 refuses O_PATH with any flag but these few, where openat ignores them.
    let flags = if flags.contains(OFlags::PATH) {
        flags | OFlags::CLOEXEC
    } else {
        flags | OFlags::CLOEXEC | OFlags::NOCTTY
    };
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let joined: std::path::PathBuf = if parts.is_empty() {
            ".".into()
        } else {
            parts.iter().collect()
        };
        match rustix::fs::openat2(&dir, &joined, flags, mode, resolve) {
            Err(Errno::NOSYS) | Err(Errno::PERM) if openat2_unavailable(&dir) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            other => return other.map_err(Into::into),
        }
    }
    walk(dir, &parts, flags, mode)
}

/// Whether `openat2` itself is refused, as opposed to this path failing with `EPERM`.
fn openat2_unavailable(dir: impl AsFd) -> bool {
    matches!(
        rustix::fs::openat2(
            dir,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH
        ),
        Err(Errno::NOSYS) | Err(Errno::PERM)
    )
}

/// The fallback: one `O_NOFOLLOW` open per component.
fn walk(dir: impl AsFd, parts: &[&OsStr], flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let Some((last, parents)) = parts.split_last() else {
        return rustix::fs::openat(&dir, ".", flags, mode).map_err(Into::into);
    };
    let mut cur: Option<OwnedFd> = None;
    for p in parents {
        let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir.as_fd());
        let next = rustix::fs::openat(
            base,
            *p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| link_as_loop(base, p, e))?;
        cur = Some(next);
    }
    let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir.as_fd());
    let fd = rustix::fs::openat(base, *last, flags | OFlags::NOFOLLOW, mode)
        .map_err(|e| link_as_loop(base, last, e))?;
    // With O_PATH, O_NOFOLLOW opens a final link itself instead of failing.
    if flags.contains(OFlags::PATH)
        && FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) == FileType::Symlink
    {
        return Err(Errno::LOOP.into());
    }
    Ok(fd)
}

/// `O_DIRECTORY | O_NOFOLLOW` on a link fails with `ENOTDIR`; report it as the link it is.
fn link_as_loop(base: impl AsFd, name: &OsStr, e: Errno) -> io::Error {
    if e == Errno::NOTDIR
        && rustix::fs::statat(base, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    {
        return Errno::LOOP.into();
    }
    e.into()
}

/// Splits `rel` into its parent directory, opened beneath `dir` (as `O_PATH`), and its last
/// name, which the caller's `*at` call must treat without following.
pub(crate) fn parent_and_name(dir: impl AsFd, rel: &Path) -> io::Result<(OwnedFd, &OsStr)> {
    let parts = components(rel)?;
    let Some((last, parents)) = parts.split_last() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an empty path names the directory itself, not an entry in it",
        ));
    };
    let parent: std::path::PathBuf = parents.iter().collect();
    let fd = open_beneath(
        dir,
        &parent,
        OFlags::PATH | OFlags::DIRECTORY,
        Mode::empty(),
    )?;
    Ok((fd, last))
}

/// A name for messages.
pub(crate) fn display(name: &OsStr) -> String {
    String::from_utf8_lossy(name.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback walk (kernels without `openat2`) refuses links exactly as `openat2` does.
    #[test]
    fn the_fallback_walk_follows_no_link() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("up")).unwrap();
        std::os::unix::fs::symlink("d", root.join("inside")).unwrap();
        std::os::unix::fs::symlink("f", root.join("d/lf")).unwrap();
        let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let open = |rel: &str, flags: OFlags| {
            let parts = components(Path::new(rel)).unwrap();
            walk(&dir, &parts, flags | OFlags::CLOEXEC, Mode::empty())
        };
        assert!(open("d/f", OFlags::RDONLY).is_ok());
        assert!(open("d/f", OFlags::PATH).is_ok());
        for rel in ["up/passwd", "inside/f", "d/lf", "up", "inside"] {
            for flags in [
                OFlags::RDONLY,
                OFlags::PATH,
                OFlags::PATH | OFlags::DIRECTORY,
            ] {
                let e = open(rel, flags).unwrap_err();
                assert_eq!(
                    Errno::from_io_error(&e),
                    Some(Errno::LOOP),
                    "{rel} {flags:?}: {e}"
                );
            }
        }
        assert!(components(Path::new("a/../b")).is_err());
    }
}
