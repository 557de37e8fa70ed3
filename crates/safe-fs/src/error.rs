//! Why an operation on a hostile directory was refused.

use std::io;

use crate::dir::Kind;

/// A refusal: the name exists but is not what the operation may touch.
///
/// Carried inside an [`io::Error`] (kind [`io::ErrorKind::InvalidInput`]) so callers keep one
/// error type; [`is_refused`] tells a refusal from an ordinary I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A regular file was expected; something else (a FIFO, a device, ...) is there.
    #[error("'{name}' is a {kind}, not a regular file: it is left alone (it may have been put there to block or redirect the agent)")]
    NotRegular {
        /// The name, relative to the directory.
        name: String,
        /// What is there instead.
        kind: Kind,
    },
    /// A regular file with more than one hard link, where the operation asked for one.
    #[error("'{name}' has {links} hard links: it is left alone (writing it would write another name too)")]
    Linked {
        /// The name, relative to the directory.
        name: String,
        /// Its link count.
        links: u64,
    },
    /// The path is not relative, or climbs out with `..`.
    #[error("'{name}' leaves the directory (absolute, or with '..')")]
    Escapes {
        /// The path as given.
        name: String,
    },
}

impl Refused {
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, self)
    }
}

/// Whether `err` means the name was refused — a link (`ELOOP`/`EXDEV` from the kernel's path
/// walk), a special file, a multiply-linked file or an escaping path — rather than an I/O failure.
pub fn is_refused(err: &io::Error) -> bool {
    if err.get_ref().is_some_and(|e| e.is::<Refused>()) {
        return true;
    }
    matches!(
        rustix::io::Errno::from_io_error(err),
        Some(rustix::io::Errno::LOOP) | Some(rustix::io::Errno::XDEV)
    )
}
