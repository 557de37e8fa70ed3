//! Files in a directory that someone else can write — a container's sandbox — opened by a
//! privileged process without ever following a link out of it and without ever blocking.
//!
//! The agent runs as root; a container's payload can replace any name in its sandbox with a
//! symbolic link, a hard link, a FIFO, a socket, a device node or a directory, at any moment.
//! Every operation here therefore:
//!
//! - is relative to a [`Dir`] opened once, so the directory itself cannot be swapped later;
//! - resolves paths with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or, where the kernel
//!   lacks it, a walk of `O_NOFOLLOW` opens one component at a time): no symbolic link is
//!   followed, not even one that stays inside, and `..` is refused;
//! - opens an existing file as `O_PATH` first, checks that it is a regular file, and only then
//!   reopens that very inode for reading or writing, so a FIFO, socket or device is never opened
//!   for real (opening a FIFO blocks; opening a device reaches the host's hardware);
//! - never follows a link in its last component (`unlinkat`, `renameat` and `mkdirat` do not).
//!
//! ```
//! use berth_safe_fs::{Dir, OpenOptions};
//! use std::io::Write;
//!
//! let tmp = tempfile::tempdir()?;
//! let sandbox = Dir::open(tmp.path())?;
//! let mut out = sandbox.open_file("stdout", OpenOptions::new().append(true).create(true))?;
//! out.write_all(b"hello\n")?;
//!
//! // A container swaps the file for a link to a host file: the next open refuses it.
//! sandbox.remove_file("stdout")?;
//! std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("stdout"))?;
//! let err = sandbox.open_file("stdout", OpenOptions::new().append(true).create(true)).unwrap_err();
//! assert!(berth_safe_fs::is_refused(&err));
//! # Ok::<(), std::io::Error>(())
//! ```

mod dir;
mod error;
mod open;
mod resolve;

pub use dir::{Dir, Entry, Kind};
pub use error::{is_refused, Refused};
pub use open::OpenOptions;
