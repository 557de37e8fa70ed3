//! Safe archive extraction into a private staging directory.
//!
//! Nothing here ever writes outside the staging root: entry names are sanitised, symlinks must
//! point inside, no entry is written through a symlink, device nodes are refused and
//! setuid/setgid bits stripped. Limits on bytes and entries stop archive bombs. The caller moves
//! the staged tree into place only after the whole archive extracted and the digest matched.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_safe_fs::{Dir, Kind, OpenOptions};

use crate::paths::{check_symlink_target, sanitize_relative};

/// Limits that stop archive bombs; exceeding one fails the fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Most bytes all extracted files may hold together (default 16 GiB).
    pub max_bytes: u64,
    /// Most entries an archive may have (default 1,000,000).
    pub max_entries: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_bytes: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// Compression wrapped around a tar stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// What a file is, judged by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArchiveKind {
    /// A (possibly compressed) tar archive: extractable while streaming.
    Tar(Compression),
    /// A zip archive: needs the whole file (its directory is at the end).
    Zip,
    /// A single gzip-compressed file, decompressed to the name without `.gz`.
    Gz,
}

impl ArchiveKind {
    /// Detects the kind from a file name's extension; `None` means "copy as is".
    pub(crate) fn from_name(name: &str) -> Option<ArchiveKind> {
        let n = name.to_ascii_lowercase();
        let table: &[(&str, ArchiveKind)] = &[
            (".tar.gz", ArchiveKind::Tar(Compression::Gzip)),
            (".tgz", ArchiveKind::Tar(Compression::Gzip)),
            (".tar.bz2", ArchiveKind::Tar(Compression::Bzip2)),
            (".tbz2", ArchiveKind::Tar(Compression::Bzip2)),
            (".tbz", ArchiveKind::Tar(Compression::Bzip2)),
            (".tar.xz", ArchiveKind::Tar(Compression::Xz)),
            (".txz", ArchiveKind::Tar(Compression::Xz)),
            (".tar.zst", ArchiveKind::Tar(Compression::Zstd)),
            (".tzst", ArchiveKind::Tar(Compression::Zstd)),
            (".tar", ArchiveKind::Tar(Compression::None)),
            (".zip", ArchiveKind::Zip),
            (".gz", ArchiveKind::Gz),
        ];
        table
            .iter()
            .find(|(ext, _)| n.ends_with(ext) && n.len() > ext.len())
            .map(|(_, k)| *k)
    }
}

/// Writes archive entries under a root directory, enforcing the safety rules and limits.
///
/// Every operation is relative to the root opened once ([`Dir`]): names are resolved beneath
/// it with no symbolic link followed, so neither an entry of the archive nor anyone else
/// writing the directory can redirect a write outside it.
pub(crate) struct Extractor {
    root: Dir,
    limits: ExtractLimits,
    bytes: u64,
    entries: u64,
    /// Directories (relative) known to be real directories we made or checked.
    real_dirs: HashSet<PathBuf>,
    /// Directory modes applied at the end, so a read-only directory does not block its files.
    dir_modes: Vec<(PathBuf, u32)>,
    buf: Vec<u8>,
}

type ExResult<T = ()> = Result<T, String>;

/// The last name of a sanitised relative path (never empty).
fn last_name(rel: &Path) -> &std::ffi::OsStr {
    rel.file_name().unwrap_or(rel.as_os_str())
}

fn parent_of(rel: &Path) -> &Path {
    rel.parent().unwrap_or(Path::new(""))
}

/// Copies `content` into `f`, counting against `bytes`/`limit`.
fn copy_limited(
    content: &mut dyn Read,
    f: &mut File,
    buf: &mut [u8],
    bytes: &mut u64,
    limit: u64,
    rel: &Path,
) -> ExResult {
    loop {
        let n = match content.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading entry '{}': {e}", rel.display())),
        };
        *bytes += n as u64;
        if *bytes > limit {
            return Err(format!(
                "more than {limit} bytes of content (limit reached in '{}')",
                rel.display()
            ));
        }
        f.write_all(&buf[..n])
            .map_err(|e| format!("cannot write '{}': {e}", rel.display()))?;
    }
}

impl Extractor {
    /// An extractor writing under `root`, which must be empty.
    pub(crate) fn new(root: Dir, limits: ExtractLimits) -> Self {
        Extractor {
            root,
            limits,
            bytes: 0,
            entries: 0,
            real_dirs: HashSet::new(),
            dir_modes: Vec::new(),
            buf: vec![0; 256 * 1024],
        }
    }

    fn count_entry(&mut self, name: &Path) -> ExResult {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(format!(
                "more than {} entries (limit reached at '{}')",
                self.limits.max_entries,
                name.display()
            ));
        }
        Ok(())
    }

    fn kind(&self, rel: &Path) -> Option<Kind> {
        self.root
            .metadata(rel)
            .ok()
            .map(|st| Kind::from_mode(st.st_mode))
    }

    /// Makes sure every parent of `rel` is a real directory (never a symlink), creating what is
    /// missing, and clears the way for `rel` itself (an earlier file of that name goes).
    fn prepare(&mut self, rel: &Path) -> ExResult {
        let mut cur = PathBuf::new();
        for comp in parent_of(rel).components() {
            cur.push(comp);
            if self.real_dirs.contains(&cur) {
                continue;
            }
            match self.root.metadata(&cur) {
                Ok(st) => match Kind::from_mode(st.st_mode) {
                    Kind::Dir => {}
                    Kind::Symlink => {
                        return Err(format!(
                            "entry '{}' would be written through the symlink '{}'",
                            rel.display(),
                            cur.display()
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "entry '{}' needs '{}' to be a directory, but it is a file",
                            rel.display(),
                            cur.display()
                        ))
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => self
                    .root
                    .create_dir(&cur, 0o700)
                    .map_err(|e| format!("cannot create '{}': {e}", cur.display()))?,
                Err(e) => return Err(format!("entry '{}' refused: {e}", rel.display())),
            }
            self.real_dirs.insert(cur.clone());
        }
        // Later entries replace earlier ones (zip duplicates: last wins), but never a directory
        // through a file or the other way round silently.
        match self.kind(rel) {
            None | Some(Kind::Dir) => Ok(()),
            Some(_) => self
                .root
                .remove_file(rel)
                .map_err(|e| format!("cannot replace '{}': {e}", rel.display())),
        }
    }

    /// A regular file with the given mode (setuid/setgid/sticky stripped).
    pub(crate) fn file(
        &mut self,
        rel: &Path,
        mode: u32,
        mtime: Option<u64>,
        content: &mut dyn Read,
    ) -> ExResult {
        self.count_entry(rel)?;
        self.prepare(rel)?;
        if self.kind(rel) == Some(Kind::Dir) {
            return Err(format!(
                "entry '{}' is a file but a directory of that name exists",
                rel.display()
            ));
        }
        let mut f = self
            .root
            .open_file(
                rel,
                OpenOptions::new().write(true).create_new(true).mode(0o600),
            )
            .map_err(|e| format!("cannot create '{}': {e}", rel.display()))?;
        copy_limited(
            content,
            &mut f,
            &mut self.buf,
            &mut self.bytes,
            self.limits.max_bytes,
            rel,
        )?;
        f.set_permissions(fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| format!("cannot set mode of '{}': {e}", rel.display()))?;
        if let Some(t) = mtime {
            // Best effort, like tar: a wrong mtime is not worth failing a fetch.
            let _ = f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(t));
        }
        Ok(())
    }

    /// A directory; its mode is applied by [`Extractor::finish`].
    pub(crate) fn dir(&mut self, rel: &Path, mode: u32) -> ExResult {
        self.count_entry(rel)?;
        self.prepare(rel)?;
        if self.kind(rel) != Some(Kind::Dir) {
            self.root
                .create_dir(rel, 0o700)
                .map_err(|e| format!("cannot create directory '{}': {e}", rel.display()))?;
        }
        self.real_dirs.insert(rel.to_path_buf());
        // Owner keeps rwx so later entries can go inside and cleanup can remove it.
        self.dir_modes
            .push((rel.to_path_buf(), (mode & 0o777) | 0o700));
        Ok(())
    }

    /// A symlink, whose target must stay inside the root.
    pub(crate) fn symlink(&mut self, rel: &Path, target: &Path) -> ExResult {
        self.count_entry(rel)?;
        check_symlink_target(parent_of(rel), target)
            .map_err(|e| format!("symlink '{}' refused: {e}", rel.display()))?;
        self.prepare(rel)?;
        if self.kind(rel) == Some(Kind::Dir) {
            return Err(format!(
                "symlink '{}' would replace a directory",
                rel.display()
            ));
        }
        let parent = self
            .root
            .open_dir(parent_of(rel))
            .map_err(|e| format!("cannot create symlink '{}': {e}", rel.display()))?;
        rustix::fs::symlinkat(target, &parent, last_name(rel))
            .map_err(|e| format!("cannot create symlink '{}': {e}", rel.display()))
    }

    /// A hard link to an earlier regular file of the same archive.
    pub(crate) fn hardlink(&mut self, rel: &Path, target: &Path) -> ExResult {
        self.count_entry(rel)?;
        let target = sanitize_relative(target)
            .map_err(|e| format!("hard link '{}' refused: target {e}", rel.display()))?;
        let refuse = |why: &str| {
            format!(
                "hard link '{}' to '{}' refused: {why}",
                rel.display(),
                target.display()
            )
        };
        // Resolved beneath the root with no link followed: the target is a file this archive
        // wrote, never one outside.
        match self.root.metadata(&target) {
            Ok(st) if Kind::from_mode(st.st_mode) == Kind::File => {}
            Ok(_) => return Err(refuse("the target is not a regular file")),
            Err(e) if berth_safe_fs::is_refused(&e) => {
                return Err(refuse("the target goes through a symlink"))
            }
            Err(_) => return Err(refuse("the target is not an earlier entry of the archive")),
        }
        self.prepare(rel)?;
        let from = self
            .root
            .open_dir(parent_of(&target))
            .map_err(|e| refuse(&e.to_string()))?;
        let to = self
            .root
            .open_dir(parent_of(rel))
            .map_err(|e| refuse(&e.to_string()))?;
        // No AT_SYMLINK_FOLLOW: the link is made to the name itself, checked above.
        rustix::fs::linkat(
            &from,
            last_name(&target),
            &to,
            last_name(rel),
            rustix::fs::AtFlags::empty(),
        )
        .map_err(|e| format!("cannot create hard link '{}': {e}", rel.display()))
    }

    /// Applies the directory modes collected while extracting.
    pub(crate) fn finish(self) -> ExResult {
        for (rel, mode) in self.dir_modes.iter().rev() {
            let d = self
                .root
                .open_dir(rel)
                .map_err(|e| format!("cannot open '{}': {e}", rel.display()))?;
            rustix::fs::fchmod(&d, rustix::fs::Mode::from_raw_mode(*mode))
                .map_err(|e| format!("cannot set mode of '{}': {e}", rel.display()))?;
        }
        Ok(())
    }
}

/// Extracts a tar stream (with the given compression) from `reader` and then reads the reader
/// to its end, so trailers (gzip CRC) are checked and every byte passes through.
pub(crate) fn extract_tar(
    reader: &mut dyn Read,
    compression: Compression,
    mut ex: Extractor,
) -> ExResult {
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(&mut *reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut *reader)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(&mut *reader)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(&mut *reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&mut *reader)
                .map_err(|e| format!("cannot start zstd decoder: {e}"))?,
        ),
    };
    let mut archive = tar::Archive::new(decoder);
    let corrupt = |e: io::Error| format!("corrupt archive: {e}");
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path().map_err(corrupt)?.into_owned();
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644);
        let mtime = header.mtime().ok();
        use tar::EntryType as T;
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            continue;
        }
        let rel = match sanitize_relative(&raw) {
            Ok(p) => p,
            // "./" and similar name the root itself: nothing to create.
            Err(_) if kind == T::Directory && is_root_alias(&raw) => continue,
            Err(e) => return Err(format!("entry '{}' refused: {e}", raw.display())),
        };
        match kind {
            T::Regular | T::Continuous => ex.file(&rel, mode, mtime, &mut entry)?,
            T::Directory => ex.dir(&rel, mode)?,
            T::Symlink | T::Link => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| format!("link '{}' has no target", rel.display()))?
                    .into_owned();
                if kind == T::Symlink {
                    ex.symlink(&rel, &target)?
                } else {
                    ex.hardlink(&rel, &target)?
                }
            }
            T::Char | T::Block => {
                return Err(format!(
                    "entry '{}' is a device node; refused",
                    rel.display()
                ))
            }
            T::Fifo => return Err(format!("entry '{}' is a FIFO; refused", rel.display())),
            other => {
                return Err(format!(
                    "entry '{}' has unsupported type {:?}",
                    rel.display(),
                    other
                ))
            }
        }
    }
    let mut decoder = archive.into_inner();
    io::copy(&mut decoder, &mut io::sink()).map_err(corrupt)?;
    drop(decoder);
    io::copy(reader, &mut io::sink()).map_err(corrupt)?;
    ex.finish()
}

fn is_root_alias(p: &Path) -> bool {
    p.components().all(|c| {
        matches!(
            c,
            std::path::Component::CurDir | std::path::Component::RootDir
        )
    })
}

/// Extracts a zip file. Duplicate names: the last entry wins.
pub(crate) fn extract_zip(file: File, mut ex: Extractor) -> ExResult {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("corrupt zip archive: {e}"))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format!("corrupt zip archive (entry {i}): {e}"))?;
        let raw = PathBuf::from(entry.name());
        let is_dir = entry.is_dir();
        let rel = match sanitize_relative(&raw) {
            Ok(p) => p,
            Err(_) if is_dir && is_root_alias(&raw) => continue,
            Err(e) => return Err(format!("entry '{}' refused: {e}", raw.display())),
        };
        let mode = entry
            .unix_mode()
            .unwrap_or(if is_dir { 0o755 } else { 0o644 });
        if is_dir {
            ex.dir(&rel, mode)?;
        } else if entry.is_symlink() {
            let mut target = Vec::new();
            (&mut entry)
                .take(4096)
                .read_to_end(&mut target)
                .map_err(|e| format!("corrupt zip entry '{}': {e}", rel.display()))?;
            use std::os::unix::ffi::OsStrExt;
            ex.symlink(&rel, Path::new(std::ffi::OsStr::from_bytes(&target)))?;
        } else {
            let kind = (mode >> 12) & 0o17;
            if kind != 0 && kind != 0o10 {
                return Err(format!(
                    "entry '{}' is a special file (mode {mode:o}); refused",
                    rel.display()
                ));
            }
            ex.file(&rel, mode, None, &mut entry)
                .map_err(|e| e.replace("reading entry", "corrupt zip entry"))?;
        }
    }
    ex.finish()
}

/// Decompresses a bare gzip stream into `dest` (a new, empty file), within the byte limit,
/// then reads `reader` to its end.
pub(crate) fn gunzip(reader: &mut dyn Read, dest: &mut File, limits: ExtractLimits) -> ExResult {
    let mut dec = flate2::read::MultiGzDecoder::new(&mut *reader);
    let mut buf = vec![0; 256 * 1024];
    let mut bytes = 0;
    copy_limited(
        &mut dec,
        dest,
        &mut buf,
        &mut bytes,
        limits.max_bytes,
        Path::new("the decompressed file"),
    )
    .map_err(|e| e.replace("reading entry", "corrupt gzip data in"))?;
    drop(dec);
    io::copy(reader, &mut io::sink()).map_err(|e| format!("corrupt gzip data: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        use ArchiveKind as K;
        assert_eq!(K::from_name("a.TAR.GZ"), Some(K::Tar(Compression::Gzip)));
        assert_eq!(K::from_name("a.tbz2"), Some(K::Tar(Compression::Bzip2)));
        assert_eq!(K::from_name("a.txz"), Some(K::Tar(Compression::Xz)));
        assert_eq!(K::from_name("a.tar.zst"), Some(K::Tar(Compression::Zstd)));
        assert_eq!(K::from_name("a.tar"), Some(K::Tar(Compression::None)));
        assert_eq!(K::from_name("a.zip"), Some(K::Zip));
        assert_eq!(K::from_name("a.gz"), Some(K::Gz));
        assert_eq!(K::from_name(".gz"), None);
        assert_eq!(K::from_name("a.txt"), None);
    }
}
