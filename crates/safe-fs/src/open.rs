//! How [`Dir::open_file`](crate::Dir::open_file) opens a file.

use rustix::fs::OFlags;

/// Options for [`Dir::open_file`](crate::Dir::open_file), in the manner of
/// [`std::fs::OpenOptions`]. Whatever is chosen, the file opened is a regular file reached
/// without following a link; the mode of a new file is `0o644` unless [`mode`](Self::mode) says
/// otherwise (the umask applies).
///
/// ```
/// use berth_safe_fs::OpenOptions;
/// let appending = OpenOptions::new().append(true).create(true).single_link(true);
/// # let _ = appending;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) append: bool,
    pub(crate) truncate: bool,
    pub(crate) create: bool,
    pub(crate) create_new: bool,
    pub(crate) mode: u32,
    pub(crate) single_link: bool,
    pub(crate) follow_beneath: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Nothing chosen yet (read-only, as [`std::fs::OpenOptions::new`] then `read(true)`).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o644,
            single_link: false,
            follow_beneath: false,
        }
    }

    /// Open for reading.
    pub fn read(mut self, yes: bool) -> Self {
        self.read = yes;
        self
    }

    /// Open for writing.
    pub fn write(mut self, yes: bool) -> Self {
        self.write = yes;
        self
    }

    /// Open for appending (implies writing).
    pub fn append(mut self, yes: bool) -> Self {
        self.append = yes;
        self
    }

    /// Truncate an existing file to length 0.
    pub fn truncate(mut self, yes: bool) -> Self {
        self.truncate = yes;
        self
    }

    /// Create the file if it does not exist.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Create the file, failing with `AlreadyExists` if anything has the name (even a link).
    pub fn create_new(mut self, yes: bool) -> Self {
        self.create_new = yes;
        self
    }

    /// Permission bits of a new file.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Refuse an existing file with more than one hard link: a writer must not reach another
    /// name (a hard link made by the directory's owner) through this one.
    pub fn single_link(mut self, yes: bool) -> Self {
        self.single_link = yes;
        self
    }

    /// Follow symbolic links on the way, as long as every step stays beneath the directory
    /// (`RESOLVE_BENEATH`: a link leading out gives `EXDEV`, which [`is_refused`](crate::is_refused)
    /// reports). For reading what the directory's writer links to inside it (a files API); the
    /// file reached must still be a regular file, checked before it is opened for real. Only
    /// for existing files: with [`create`](Self::create) or [`create_new`](Self::create_new)
    /// the open fails. Where `openat2` is unavailable no link is followed.
    pub fn follow_links_beneath(mut self, yes: bool) -> Self {
        self.follow_beneath = yes;
        self
    }

    /// The access flags: what the file is opened for, without creation flags.
    pub(crate) fn access(&self) -> OFlags {
        let writes = self.write || self.append;
        let mut f = match (self.read || !writes, writes) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        if self.append {
            f |= OFlags::APPEND;
        }
        // Not blocking matters for the file opened before it is checked; for a regular file it
        // changes nothing.
        f | OFlags::NONBLOCK
    }
}
