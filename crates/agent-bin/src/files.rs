//! Container sandboxes as seen through the files API: virtual paths
//! (`/containers/<id>/<path in the sandbox>`), confinement, listing and reading.
//!
//! The container writes its sandbox and the agent runs as root, so everything goes through
//! `berth-safe-fs`: the sandbox is opened once (not through a link), and after `..` is refused
//! syntactically, paths are resolved beneath it with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)`: links the container made inside its sandbox are followed, any
//! resolution that leaves it is refused by the kernel (403), with no window between a check and
//! the open. A file is opened as `O_PATH` first and only a regular file is opened for real, so a
//! FIFO never blocks and a device node the container made (Docker's default capabilities include
//! `MKNOD`) is never opened from the host (400). Where `openat2` is unavailable, no link is
//! followed at all. Listings show links as links, never following them.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth_safe_fs::{Dir, Kind, OpenOptions, Refused};
use rustix::fs::{AtFlags, FileType};

use berth_containerizer::ContainerId;

use crate::error::ApiError;

/// The most bytes one `READ_FILE` returns; larger files are read in pages (the answer carries
/// the size).
pub const MAX_READ: u64 = 4 << 20;

/// The most bytes one `/files/read` returns: 16 memory pages, Mesos's own cap for that endpoint
/// (64 KiB with 4 KiB pages). Its web UI pages through logs in steps of this size.
pub fn files_read_cap() -> u64 {
    16 * rustix::param::page_size() as u64
}

/// A virtual path split into the container and the path inside its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPath {
    /// The container id.
    pub container_id: ContainerId,
    /// Components inside the sandbox (empty for the sandbox itself); no `.`, `..` or empties.
    pub components: Vec<String>,
}

impl SandboxPath {
    /// Parses `/containers/<id>[/...]`. `..` and NUL are refused (400); a path outside
    /// `/containers/` is not found (404).
    pub fn parse(path: &str) -> Result<SandboxPath, ApiError> {
        if path.contains('\0') {
            return Err(ApiError::bad_request("path: must not contain NUL bytes"));
        }
        let mut parts = path.split('/').filter(|c| !c.is_empty() && *c != ".");
        let parts_vec: Vec<&str> = parts.by_ref().collect();
        if parts_vec.contains(&"..") {
            return Err(ApiError::bad_request(format!(
                "path '{path}': '..' is not allowed; paths stay inside a container's sandbox"
            )));
        }
        match parts_vec.as_slice() {
            ["containers", id, rest @ ..] => {
                let container_id = ContainerId::new(*id)
                    .map_err(|e| ApiError::bad_request(format!("path '{path}': {e}")))?;
                Ok(SandboxPath {
                    container_id,
                    components: rest.iter().map(|s| (*s).to_owned()).collect(),
                })
            }
            _ => Err(ApiError::not_found(format!(
                "path '{path}' does not exist: files are served under /containers/<container_id>/"
            ))),
        }
    }

    /// The virtual path of this location.
    pub fn virtual_path(&self) -> String {
        let mut p = format!("/containers/{}", self.container_id);
        for c in &self.components {
            p.push('/');
            p.push_str(c);
        }
        p
    }

    fn relative(&self) -> PathBuf {
        if self.components.is_empty() {
            PathBuf::from(".")
        } else {
            self.components.iter().collect()
        }
    }
}

/// One entry of a listing (Mesos `FileInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Virtual path.
    pub path: String,
    /// Hard links.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_nanos: i128,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner's name (or number).
    pub uid: String,
    /// Group's name (or number).
    pub gid: String,
}

impl FileInfo {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        FileType::from_raw_mode(self.mode) == FileType::Directory
    }

    /// `ls -l` style mode string (`drwxr-xr-x`), as Mesos's `/files/browse` shows it.
    pub fn mode_string(&self) -> String {
        let kind = match FileType::from_raw_mode(self.mode) {
            FileType::Directory => 'd',
            FileType::Symlink => 'l',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
            FileType::CharacterDevice => 'c',
            FileType::BlockDevice => 'b',
            _ => '-',
        };
        let mut s = String::with_capacity(10);
        s.push(kind);
        for shift in [6, 3, 0] {
            let bits = (self.mode >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        s
    }
}

fn io_error(vpath: &str, e: io::Error) -> ApiError {
    use rustix::io::Errno;
    if let Some(refused) = e.get_ref().and_then(|e| e.downcast_ref::<Refused>()) {
        return match refused {
            Refused::NotRegular {
                kind: Kind::Dir, ..
            } => ApiError::bad_request(format!("'{vpath}' is a directory; list it instead")),
            Refused::NotRegular { kind, .. } => ApiError::bad_request(format!(
                "'{vpath}' is not a regular file (it is a {kind}); only regular files are read"
            )),
            Refused::Linked { .. } | Refused::Escapes { .. } => {
                ApiError::bad_request(format!("'{vpath}' is refused: {refused}"))
            }
        };
    }
    match Errno::from_io_error(&e) {
        Some(Errno::NOENT) => ApiError::not_found(format!("'{vpath}' does not exist")),
        Some(Errno::NOTDIR) => ApiError::not_found(format!("'{vpath}' does not exist (a parent is not a directory)")),
        Some(Errno::XDEV) | Some(Errno::LOOP) => ApiError::forbidden(format!(
            "'{vpath}' is refused: it resolves (through a symbolic link) outside the container's sandbox"
        )),
        Some(Errno::ACCESS) | Some(Errno::PERM) => ApiError::forbidden(format!("'{vpath}': permission denied")),
        _ => ApiError::internal(format!("'{vpath}': {e}")),
    }
}

/// Opens the sandbox directory itself (not through a link).
fn open_sandbox(sandbox: &Path, vpath: &str) -> Result<Dir, ApiError> {
    Dir::open(sandbox).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ApiError::not_found(format!(
            "'{vpath}' does not exist (the container has no sandbox yet)"
        )),
        _ => io_error(vpath, e),
    })
}

fn names() -> &'static (HashMap<u32, String>, HashMap<u32, String>) {
    static NAMES: OnceLock<(HashMap<u32, String>, HashMap<u32, String>)> = OnceLock::new();
    NAMES.get_or_init(|| {
        let read = |file: &str| -> HashMap<u32, String> {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let id = f.nth(1)?.parse().ok()?;
                    Some((id, name.to_owned()))
                })
                .collect()
        };
        (read("/etc/passwd"), read("/etc/group"))
    })
}

fn info_from_stat(path: String, st: &rustix::fs::Stat) -> FileInfo {
    let (users, groups) = names();
    FileInfo {
        path,
        nlink: st.st_nlink,
        size: st.st_size.max(0) as u64,
        mtime_nanos: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
        mode: st.st_mode,
        uid: users
            .get(&st.st_uid)
            .cloned()
            .unwrap_or_else(|| st.st_uid.to_string()),
        gid: groups
            .get(&st.st_gid)
            .cloned()
            .unwrap_or_else(|| st.st_gid.to_string()),
    }
}

/// Lists a directory of a sandbox (or describes a single file), entries sorted by name. Links
/// inside the sandbox are followed on the way to the directory; the entries are listed as they
/// are (a link as a link, never followed), and nothing is opened but the directories.
pub fn list(sandbox: &Path, at: &SandboxPath) -> Result<Vec<FileInfo>, ApiError> {
    let vpath = at.virtual_path();
    let root = open_sandbox(sandbox, &vpath)?;
    let rel = at.relative();
    let st = root
        .metadata_following_beneath(&rel)
        .map_err(|e| io_error(&vpath, e))?;
    if Kind::from_mode(st.st_mode) != Kind::Dir {
        return Ok(vec![info_from_stat(vpath, &st)]);
    }
    let dir = root
        .open_dir_following_beneath(&rel)
        .map_err(|e| io_error(&vpath, e))?;
    let entries = dir.entries().map_err(|e| io_error(&vpath, e))?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        // The entry may vanish between readdir and stat; a listing is a snapshot.
        let Ok(st) = rustix::fs::statat(&dir, &entry.name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        out.push(info_from_stat(
            format!("{vpath}/{}", entry.name.to_string_lossy()),
            &st,
        ));
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A regular file of a sandbox, opened for reading.
#[derive(Debug)]
pub struct OpenFile {
    /// The file.
    pub file: File,
    /// Its size when opened.
    pub size: u64,
}

/// Opens a regular file of a sandbox; directories and special files are refused (400) before
/// they are opened, links leading out of the sandbox too (403).
pub fn open_file(sandbox: &Path, at: &SandboxPath) -> Result<OpenFile, ApiError> {
    let vpath = at.virtual_path();
    if at.components.is_empty() {
        return Err(ApiError::bad_request(format!(
            "'{vpath}' is a directory; list it instead"
        )));
    }
    let root = open_sandbox(sandbox, &vpath)?;
    let file = root
        .open_file(
            at.relative(),
            OpenOptions::new().read(true).follow_links_beneath(true),
        )
        .map_err(|e| io_error(&vpath, e))?;
    let size = file.metadata().map_err(|e| io_error(&vpath, e))?.len();
    Ok(OpenFile { file, size })
}

/// Reads up to `length` (capped at [`MAX_READ`]) bytes from `offset`; returns the file's size
/// and the bytes. An offset past the end gives no bytes.
pub fn read(
    sandbox: &Path,
    at: &SandboxPath,
    offset: u64,
    length: Option<u64>,
) -> Result<(u64, Vec<u8>), ApiError> {
    read_capped(sandbox, at, offset, length, MAX_READ)
}

/// [`read`] with another cap (`/files/read` follows Mesos's, [`files_read_cap`]).
pub fn read_capped(
    sandbox: &Path,
    at: &SandboxPath,
    offset: u64,
    length: Option<u64>,
    cap: u64,
) -> Result<(u64, Vec<u8>), ApiError> {
    let open = open_file(sandbox, at)?;
    let want = length
        .unwrap_or(cap)
        .min(cap)
        .min(open.size.saturating_sub(offset));
    let mut buf = vec![0u8; want as usize];
    let mut filled = 0usize;
    while filled < buf.len() {
        match open
            .file
            .read_at(&mut buf[filled..], offset + filled as u64)
        {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(&at.virtual_path(), e)),
        }
    }
    buf.truncate(filled);
    Ok((open.size, buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn p(s: &str) -> SandboxPath {
        SandboxPath::parse(s).unwrap()
    }

    fn sandbox() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let sb = tmp.path().join("sandboxes/c1");
        std::fs::create_dir_all(sb.join("sub")).unwrap();
        std::fs::write(sb.join("stdout"), b"hello world").unwrap();
        std::fs::write(sb.join("sub/inner"), b"x").unwrap();
        std::fs::write(tmp.path().join("secret"), b"top secret").unwrap();
        (tmp, sb)
    }

    #[test]
    fn virtual_paths_parse_and_refuse_dotdot() {
        assert_eq!(p("/containers/c1").components, Vec::<String>::new());
        assert_eq!(
            p("/containers/c1//sub/./inner").components,
            vec!["sub", "inner"]
        );
        assert_eq!(
            p("containers/c1/stdout").virtual_path(),
            "/containers/c1/stdout"
        );
        let e = SandboxPath::parse("/containers/c1/../c2/stdout").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("'..'"));
        assert_eq!(SandboxPath::parse("/etc/passwd").unwrap_err().status, 404);
        assert_eq!(SandboxPath::parse("/containers").unwrap_err().status, 404);
        assert_eq!(
            SandboxPath::parse("/containers/a b/x").unwrap_err().status,
            400
        );
        assert_eq!(
            SandboxPath::parse("/containers/c1/a\0b")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn lists_and_reads_inside_the_sandbox() {
        let (_tmp, sb) = sandbox();
        let entries = list(&sb, &p("/containers/c1")).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/containers/c1/stdout", "/containers/c1/sub"]);
        assert_eq!(entries[0].size, 11);
        assert!(entries[1].is_dir() && entries[1].mode_string().starts_with('d'));
        assert_eq!(entries[0].mode_string().len(), 10);
        let single = list(&sb, &p("/containers/c1/stdout")).unwrap();
        assert_eq!(single.len(), 1);
        assert_eq!(
            read(&sb, &p("/containers/c1/stdout"), 6, None).unwrap(),
            (11, b"world".to_vec())
        );
        assert_eq!(
            read(&sb, &p("/containers/c1/stdout"), 0, Some(5))
                .unwrap()
                .1,
            b"hello"
        );
        assert_eq!(
            read(&sb, &p("/containers/c1/stdout"), 100, Some(5)).unwrap(),
            (11, vec![])
        );
        assert_eq!(
            read_capped(&sb, &p("/containers/c1/stdout"), 2, None, 4).unwrap(),
            (11, b"llo ".to_vec())
        );
        assert_eq!(files_read_cap() % 4096, 0);
        assert_eq!(
            read(&sb, &p("/containers/c1/sub/inner"), 0, None)
                .unwrap()
                .1,
            b"x"
        );
    }

    #[test]
    fn symlinks_out_of_the_sandbox_are_refused() {
        let (tmp, sb) = sandbox();
        symlink(tmp.path().join("secret"), sb.join("abs-link")).unwrap();
        symlink("../../secret", sb.join("rel-link")).unwrap();
        symlink("/", sb.join("root-link")).unwrap();
        symlink("stdout", sb.join("ok-link")).unwrap();
        for bad in ["abs-link", "rel-link", "root-link/etc/passwd"] {
            let e = read(&sb, &p(&format!("/containers/c1/{bad}")), 0, None).unwrap_err();
            assert_eq!(e.status, 403, "{bad}: {e}");
            assert!(e.message.contains("outside the container's sandbox"), "{e}");
            let e = list(&sb, &p(&format!("/containers/c1/{bad}"))).unwrap_err();
            assert_eq!(e.status, 403, "{bad}: {e}");
        }
        // A link that stays inside is followed; listings show links as links.
        assert_eq!(
            read(&sb, &p("/containers/c1/ok-link"), 0, None).unwrap().1,
            b"hello world"
        );
        let entries = list(&sb, &p("/containers/c1")).unwrap();
        let link = entries
            .iter()
            .find(|e| e.path.ends_with("/abs-link"))
            .unwrap();
        assert!(link.mode_string().starts_with('l'));
    }

    #[test]
    fn missing_directories_fifos_and_dirs_are_clear_errors() {
        let (_tmp, sb) = sandbox();
        assert_eq!(
            read(&sb, &p("/containers/c1/nope"), 0, None)
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            read(&sb, &p("/containers/c1/stdout/x"), 0, None)
                .unwrap_err()
                .status,
            404
        );
        let e = read(&sb, &p("/containers/c1/sub"), 0, None).unwrap_err();
        assert!(e.status == 400 && e.message.contains("is a directory"));
        let e = list(&sb.with_file_name("nosuch"), &p("/containers/nosuch")).unwrap_err();
        assert_eq!(e.status, 404);
        let fifo = sb.join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read(&sb, &p("/containers/c1/fifo"), 0, None).unwrap_err();
        assert!(
            e.status == 400 && e.message.contains("not a regular file"),
            "{e}"
        );
    }

    /// A device node the container made (Docker's default capabilities include MKNOD) is
    /// described, never opened: a node for a device that does not exist would fail to open with
    /// ENXIO (an internal error) if it were opened. Links to it, and to a FIFO, neither.
    #[test]
    fn device_nodes_are_never_opened() {
        let (_tmp, sb) = sandbox();
        for (name, kind) in [
            ("chr", FileType::CharacterDevice),
            ("blk", FileType::BlockDevice),
        ] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                sb.join(name),
                kind,
                rustix::fs::Mode::from_raw_mode(0o666),
                rustix::fs::makedev(511, 7),
            )
            .unwrap();
            symlink(name, sb.join(format!("{name}-link"))).unwrap();
            for path in [name.to_owned(), format!("{name}-link")] {
                let e = read(&sb, &p(&format!("/containers/c1/{path}")), 0, None).unwrap_err();
                assert!(
                    e.status == 400 && e.message.contains("not a regular file"),
                    "{path}: {e}"
                );
                let e = open_file(&sb, &p(&format!("/containers/c1/{path}"))).unwrap_err();
                assert_eq!(e.status, 400, "{path}: {e}");
                let listed = list(&sb, &p(&format!("/containers/c1/{path}"))).unwrap();
                assert_eq!(listed.len(), 1);
            }
        }
        let entries = list(&sb, &p("/containers/c1")).unwrap();
        let chr = entries.iter().find(|e| e.path.ends_with("/chr")).unwrap();
        assert!(chr.mode_string().starts_with('c'));
    }

    /// A link to a directory inside is listed through; one leading out is refused.
    #[test]
    fn listing_through_links_stays_inside() {
        let (tmp, sb) = sandbox();
        symlink("sub", sb.join("sub-link")).unwrap();
        symlink(tmp.path(), sb.join("out-link")).unwrap();
        let inner = list(&sb, &p("/containers/c1/sub-link")).unwrap();
        assert_eq!(inner.len(), 1);
        assert!(inner[0].path.ends_with("/sub-link/inner"));
        assert_eq!(
            list(&sb, &p("/containers/c1/out-link")).unwrap_err().status,
            403
        );
        assert_eq!(
            read(&sb, &p("/containers/c1/out-link/secret"), 0, None)
                .unwrap_err()
                .status,
            403
        );
    }
}
