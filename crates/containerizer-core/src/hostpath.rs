//! Host paths a caller may bind into a container, resolved so no link leads out of the operator's
//! allowed root, and pinned so nothing can redirect them between the check and Docker's mount.
//!
//! Docker passes a bind source to runc as text, and runc's `mount(2)` follows every symlink in it
//! when the container starts. A container that can write under an allowed root (it has that root
//! mounted read-write) can therefore plant `<root>/escape -> /`, or swap a checked directory for
//! such a link after the check. So:
//!
//! 1. each allowed root is opened once, when the containerizer is built (a later rename or link
//!    of the root's own path changes nothing);
//! 2. the asked path is opened beneath its root with `openat2(RESOLVE_BENEATH |
//!    RESOLVE_NO_MAGICLINKS)`: a link that stays inside the root works, one that leaves it (an
//!    absolute link, `..` past the root, a `/proc` magic link) fails;
//! 3. the opened directory (or file) is bind-mounted, through `/proc/self/fd/N`, onto a mount
//!    point under `<work_dir>/host-binds/<container>/` that only the agent can write, and Docker
//!    gets that path. A bind mount refers to the directory itself, not to a path, so renaming or
//!    replacing anything under the root afterwards cannot change what the container gets (the
//!    technique Kubernetes uses for `subPath`, CVE-2021-25741);
//! 4. once the container has started (runc has made its own copy in the container's mount
//!    namespace, with private propagation) or the launch is abandoned, the pin is unmounted;
//!    recovery sweeps pins left by an agent that died in between.
//!
//! Needs the agent to share its mount namespace with the Docker daemon (the default: both on
//! the host). If it does not, Docker sees an empty directory at the pin: the container gets
//! nothing, never the wrong thing.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::mount::UnmountFlags;

use crate::id::ContainerId;

/// The directory under the work directory holding the pins.
pub const PINS_DIR: &str = "host-binds";

/// One allowed root, opened when the containerizer was built.
#[derive(Debug)]
struct Root {
    /// As the operator wrote it (paths are matched against this text).
    configured: PathBuf,
    /// The open directory, or why it could not be opened.
    fd: Result<OwnedFd, String>,
}

/// The operator's allowed host roots, each opened once.
#[derive(Debug, Default)]
pub(crate) struct HostRoots {
    roots: Vec<Root>,
}

impl HostRoots {
    /// Opens every root (following links in the operator's own path: it is trusted). A root that
    /// cannot be opened is logged and refuses every path under it.
    pub fn open(roots: &[PathBuf]) -> HostRoots {
        let roots = roots
            .iter()
            .map(|configured| {
                // Not `O_DIRECTORY`: a root may be a single file (`berth run -v FILE:...`).
                let fd = rustix::fs::open(configured, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| {
                    tracing::error!(root = %configured.display(), error = %e, "allowed host path cannot be opened; host paths under it will be refused");
                    format!(
                        "the allowed root '{}' could not be opened when the agent started ({e}); \
                         create it and restart the agent",
                        configured.display()
                    )
                });
                Root {
                    configured: configured.clone(),
                    fd,
                }
            })
            .collect();
        HostRoots { roots }
    }

    /// Opens `asked` (absolute, without `..`) beneath the most specific root that contains it.
    pub fn resolve(&self, asked: &Path) -> Result<OwnedFd, String> {
        let root = self
            .roots
            .iter()
            .filter(|r| asked.starts_with(&r.configured))
            .max_by_key(|r| r.configured.components().count())
            .ok_or_else(|| {
                format!(
                    "host path '{}' is not under an allowed root",
                    asked.display()
                )
            })?;
        let fd = root.fd.as_ref().map_err(Clone::clone)?;
        let rel = asked
            .strip_prefix(&root.configured)
            .expect("checked by starts_with");
        open_beneath(fd.as_fd(), rel).map_err(|e| {
            format!(
                "host path '{}' cannot be used beneath the allowed root '{}': {}",
                asked.display(),
                root.configured.display(),
                describe(&e)
            )
        })
    }
}

fn describe(e: &io::Error) -> String {
    match rustix::io::Errno::from_io_error(e) {
        Some(rustix::io::Errno::XDEV) => {
            "a symbolic link (or '..') in it leads out of the root".to_owned()
        }
        Some(rustix::io::Errno::LOOP) => {
            "it goes through a symbolic link (refused on kernels without openat2, before 5.6)"
                .to_owned()
        }
        _ => e.to_string(),
    }
}

/// Opens `rel` beneath `base` as an `O_PATH` descriptor: symlinks that stay beneath `base` are
/// followed, anything leaving it (absolute links, `..` past `base`, magic links) fails with
/// `EXDEV`. Without `openat2` (Linux < 5.6) every component is opened with `O_NOFOLLOW` and any
/// symlink fails with `ELOOP`.
pub(crate) fn open_beneath(base: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    if rel.as_os_str().is_empty() {
        // The root itself (a directory or a single file).
        return Ok(rustix::io::fcntl_dupfd_cloexec(base, 0)?);
    }
    match rustix::fs::openat2(
        base,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(rustix::io::Errno::NOSYS) => open_walk(base, rel),
        other => other.map_err(Into::into),
    }
}

/// The fallback of [`open_beneath`]: a component-by-component walk that refuses every symlink.
fn open_walk(base: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let mut cur = rustix::io::fcntl_dupfd_cloexec(base, 0)?;
    for c in rel.components() {
        let name = match c {
            Component::Normal(n) => n,
            Component::CurDir => continue,
            _ => return Err(rustix::io::Errno::XDEV.into()),
        };
        let next = rustix::fs::openat(
            &cur,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if FileType::from_raw_mode(rustix::fs::fstat(&next)?.st_mode) == FileType::Symlink {
            return Err(rustix::io::Errno::LOOP.into());
        }
        cur = next;
    }
    Ok(cur)
}

/// The pins of every container: `<work_dir>/host-binds/<container>/<n>`.
#[derive(Debug, Clone)]
pub(crate) struct Pins {
    dir: PathBuf,
}

impl Pins {
    /// Pins under `<work_dir>/host-binds`.
    pub fn new(work_dir: &Path) -> Pins {
        Pins {
            dir: work_dir.join(PINS_DIR),
        }
    }

    fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// Bind-mounts the directory or regular file `fd` refers to at the container's pin `n`, and
    /// returns the pin's path (what Docker is given).
    pub fn pin(&self, id: &ContainerId, n: usize, fd: &OwnedFd) -> Result<PathBuf, String> {
        let fail = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
            format!("failed to {what} '{}': {e}", path.display())
        };
        let dir = self.container_dir(id);
        for d in [&self.dir, &dir] {
            match std::fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail("create the pin directory", d, &e)),
            }
        }
        let kind = rustix::fs::fstat(fd)
            .map(|st| FileType::from_raw_mode(st.st_mode))
            .map_err(|e| fail("inspect the host path for", &dir, &e))?;
        let point = dir.join(n.to_string());
        match kind {
            FileType::Directory => std::fs::create_dir(&point),
            FileType::RegularFile => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&point)
                .map(drop),
            other => {
                return Err(format!(
                    "the host path is a {other:?}; only directories and regular files can be \
                     mounted (mount the directory holding it instead)"
                ))
            }
        }
        .map_err(|e| fail("create the mount point", &point, &e))?;
        let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
        if let Err(e) = rustix::mount::mount_bind_recursive(source.as_str(), &point) {
            let _ = remove_point(&point);
            return Err(format!(
                "failed to pin the host path at '{}': {e} (the agent needs CAP_SYS_ADMIN in the \
                 Docker daemon's mount namespace to mount host paths)",
                point.display()
            ));
        }
        Ok(point)
    }

    /// Unmounts and removes the container's pins. Never deletes through a mount: a pin that
    /// cannot be unmounted is left in place (and logged).
    pub fn release(&self, id: &ContainerId) {
        release_dir(&self.container_dir(id));
    }

    /// Releases every pin (at recovery: a running container has its own copy of its mounts, and
    /// a launch caught half-way is rolled back).
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            release_dir(&e.path());
        }
    }
}

fn release_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let point = e.path();
        match rustix::mount::unmount(&point, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(err) => {
                tracing::warn!(pin = %point.display(), error = %err, "failed to unmount a host path pin; left in place");
                continue;
            }
        }
        if let Err(err) = remove_point(&point) {
            tracing::warn!(pin = %point.display(), error = %err, "failed to remove a host path pin");
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes an (unmounted) mount point: `rmdir` for a directory (fails on anything not empty),
/// `unlink` for a file.
fn remove_point(point: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(point)?.is_dir() {
        std::fs::remove_dir(point)
    } else {
        std::fs::remove_file(point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn resolve_in(roots: &HostRoots, p: &Path) -> Result<PathBuf, String> {
        let fd = roots.resolve(p)?;
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|e| e.to_string())
    }

    #[test]
    fn links_may_not_leave_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink("/", root.join("escape")).unwrap();
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../outside", root.join("up")).unwrap();
        symlink("data/sub", root.join("inside")).unwrap();
        symlink("/proc/self/root", root.join("magic")).unwrap();
        std::fs::write(root.join("file"), b"x").unwrap();
        let roots = HostRoots::open(std::slice::from_ref(&root));
        let canon = std::fs::canonicalize(&root).unwrap();
        assert_eq!(
            resolve_in(&roots, &root.join("data")).unwrap(),
            canon.join("data")
        );
        assert_eq!(
            resolve_in(&roots, &root.join("inside")).unwrap(),
            canon.join("data/sub"),
            "a relative link that stays inside works"
        );
        assert_eq!(resolve_in(&roots, &root).unwrap(), canon, "the root itself");
        // A root may be a single file (`berth run -v FILE:...`): it, and nothing under it.
        let file_root = HostRoots::open(&[root.join("file")]);
        assert_eq!(
            resolve_in(&file_root, &root.join("file")).unwrap(),
            canon.join("file")
        );
        assert!(resolve_in(&file_root, &root.join("file/x")).is_err());
        resolve_in(&roots, &root.join("file")).unwrap();
        for bad in [
            "escape",
            "abs",
            "up",
            "escape/etc",
            "magic",
            "inside/../../../outside",
        ] {
            let err = resolve_in(&roots, &root.join(bad)).unwrap_err();
            assert!(err.contains("leads out of the root"), "{bad}: {err}");
        }
        let err = resolve_in(&roots, Path::new("/etc")).unwrap_err();
        assert!(err.contains("not under an allowed root"), "{err}");
        let err = resolve_in(&roots, &root.join("missing")).unwrap_err();
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn the_fallback_walk_refuses_every_link() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        symlink("a", t.path().join("l")).unwrap();
        let base =
            rustix::fs::open(t.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        open_walk(base.as_fd(), Path::new("a/b")).unwrap();
        let e = open_walk(base.as_fd(), Path::new("l/b")).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
        let e = open_walk(base.as_fd(), Path::new("a/../..")).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::XDEV.raw_os_error())
        );
    }

    /// A pin keeps what was checked even when the path is swapped for a link afterwards.
    /// Needs CAP_SYS_ADMIN (the agent runs as root; so do these tests).
    #[test]
    fn a_pin_survives_a_swap_of_its_path() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/INSIDE"), b"in").unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        std::fs::write(t.path().join("outside/SECRET"), b"s").unwrap();
        let roots = HostRoots::open(std::slice::from_ref(&root));
        let pins = Pins::new(&t.path().join("work"));
        std::fs::create_dir_all(t.path().join("work")).unwrap();
        let id = ContainerId::new("c1").unwrap();
        let fd = roots.resolve(&root.join("d")).unwrap();
        let pin = pins.pin(&id, 0, &fd).unwrap();
        drop(fd);
        std::fs::rename(root.join("d"), root.join("d.moved")).unwrap();
        symlink(t.path().join("outside"), root.join("d")).unwrap();
        assert!(
            pin.join("INSIDE").exists(),
            "the pin holds the checked directory"
        );
        assert!(!pin.join("SECRET").exists());
        pins.release(&id);
        assert!(!pin.exists(), "released");
        assert!(
            root.join("d.moved/INSIDE").exists(),
            "nothing deleted through the pin"
        );
        // A file can be pinned too; a left-over pin is swept.
        std::fs::write(root.join("f"), b"file").unwrap();
        let fd = roots.resolve(&root.join("f")).unwrap();
        let pin = pins.pin(&id, 1, &fd).unwrap();
        assert_eq!(std::fs::read(&pin).unwrap(), b"file");
        pins.sweep();
        assert!(!pin.exists());
        assert_eq!(std::fs::read(root.join("f")).unwrap(), b"file");
    }
}
