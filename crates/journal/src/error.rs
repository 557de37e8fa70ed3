//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong with a journal. Each variant names the journal file and what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A file system operation on the journal failed.
    #[error("cannot {action} journal {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "write", "fsync", ...).
        action: &'static str,
        /// The journal file (or its directory).
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The file exists but does not start with the journal header: it is not a journal (or not
    /// one this version can read), and is left untouched.
    #[error("{} is not a Berth journal: it does not start with the header {expected:?}", path.display())]
    NotAJournal {
        /// The file.
        path: PathBuf,
        /// The header a journal of this version starts with.
        expected: &'static str,
    },

    /// Another handle (in this process or another) has the journal open for writing: two
    /// writers would corrupt it.
    #[error("journal {} is in use by another writer (waited {waited_ms} ms for its lock); is another agent running with this work directory?", path.display())]
    InUse {
        /// The journal file.
        path: PathBuf,
        /// How long the lock was waited for.
        waited_ms: u64,
    },

    /// A key that cannot be stored: empty, or longer than 65535 bytes.
    #[error("invalid journal key `{key}`: {reason}")]
    InvalidKey {
        /// The key (cut to 100 characters).
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A value too large for one record.
    #[error("journal record for `{key}` is {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// The record's key.
        key: String,
        /// The encoded record's size.
        len: usize,
        /// The largest record allowed.
        max: usize,
    },

    /// The journal was closed ([`Journal::close`](crate::Journal::close)), or its background
    /// thread is gone (it could not be started, or panicked).
    #[error("journal {} is closed: it was closed or its background thread has stopped", path.display())]
    Closed {
        /// The journal file.
        path: PathBuf,
    },
}
