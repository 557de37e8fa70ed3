//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can make a fetch fail.
///
/// Each variant carries the context needed to act on it: the URI, the path, the status or the
/// digests involved. [`FetchError::is_transient`] tells the retry loop which failures are worth
/// another attempt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URI string could not be understood.
    #[error("malformed URI '{uri}': {reason}")]
    MalformedUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The URI uses a scheme the fetcher does not handle.
    #[error("unsupported scheme '{scheme}' in URI '{uri}': supported are http://, https://, file:// and absolute paths")]
    UnsupportedScheme {
        /// The URI as given.
        uri: String,
        /// The scheme found in it.
        scheme: String,
    },

    /// A relative path was given but no frameworks-home directory is configured.
    #[error("relative path '{path}' needs a frameworks home directory, and none is configured")]
    RelativePathWithoutHome {
        /// The relative path as given.
        path: String,
    },

    /// The `output_file` would land outside the sandbox or is otherwise unusable.
    #[error("output file '{output_file}' for URI '{uri}' is refused: {reason}")]
    InvalidOutputFile {
        /// The URI the output file belongs to.
        uri: String,
        /// The output file as given.
        output_file: String,
        /// Why it is refused.
        reason: String,
    },

    /// The checksum string could not be parsed.
    #[error("invalid checksum '{value}': {reason}")]
    InvalidChecksum {
        /// The checksum as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The downloaded bytes do not match the expected checksum.
    #[error("checksum mismatch for '{uri}': expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The URI fetched.
        uri: String,
        /// The digest that was asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },

    /// The server answered with a status other than 200.
    #[error("HTTP status {status} fetching '{uri}' (only 200 counts as success)")]
    HttpStatus {
        /// The URI fetched.
        uri: String,
        /// The status code received.
        status: u16,
    },

    /// The HTTP transfer failed (connection refused or reset, body cut short, TLS...).
    #[error("HTTP transfer of '{uri}' failed: {message}")]
    Http {
        /// The URI fetched.
        uri: String,
        /// The transport error, with its causes.
        message: String,
        /// Whether another attempt may succeed.
        transient: bool,
    },

    /// The transfer stayed below the minimum rate for the whole stall window.
    #[error("download of '{uri}' stalled: fewer than {min_bytes} bytes in {window:?}")]
    Stalled {
        /// The URI fetched.
        uri: String,
        /// The stall window.
        window: Duration,
        /// Bytes that had to arrive within the window.
        min_bytes: u64,
    },

    /// The URI did not finish within the overall deadline.
    #[error("fetching '{uri}' exceeded the deadline of {deadline:?}")]
    DeadlineExceeded {
        /// The URI fetched.
        uri: String,
        /// The configured deadline.
        deadline: Duration,
    },

    /// The local source file cannot be read.
    #[error("cannot read source '{}' for URI '{uri}': {source}", path.display())]
    Source {
        /// The URI fetched.
        uri: String,
        /// The local path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A local source the fetcher may not read: local sources are not allowed, the path is not
    /// beneath an allowed directory, a link is on its way, or it is not a regular file.
    #[error("local source {} is refused: {reason}", local_name(.uri, .path))]
    LocalSourceRefused {
        /// The URI as given.
        uri: String,
        /// The local path it names.
        path: PathBuf,
        /// Why, and how to allow it where that is possible.
        reason: String,
    },

    /// An `http(s)://` source whose host is (or resolves only to) an address in a network the
    /// fetcher may not reach.
    #[error("URI '{uri}' is refused: {reason}")]
    NetworkRefused {
        /// The URI as given.
        uri: String,
        /// The host, the addresses and why (with how to allow it).
        reason: String,
    },

    /// A directory given as an allowed root for local sources cannot be used.
    #[error("allowed local source directory '{}': {reason}", path.display())]
    AllowedRoot {
        /// The directory as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The source is bigger than the fetcher's size limit.
    #[error("'{uri}' is refused: {what} the limit of {limit} bytes per URI; {hint}")]
    TooLarge {
        /// The URI fetched.
        uri: String,
        /// What exceeded it ("it is 5000000 bytes, over" / "more than ... bytes arrived, over").
        what: String,
        /// The limit in bytes.
        limit: u64,
        /// How to raise the limit.
        hint: String,
    },

    /// The target user may not read the local source file.
    #[error("user '{user}' may not read '{}' (URI '{uri}')", path.display())]
    PermissionDenied {
        /// The URI fetched.
        uri: String,
        /// The local path.
        path: PathBuf,
        /// The user the fetch runs for.
        user: String,
    },

    /// The archive is corrupt, unsafe, or exceeds the extraction limits.
    #[error("cannot extract '{uri}': {reason}")]
    Extract {
        /// The URI fetched.
        uri: String,
        /// What went wrong, naming the archive entry where there is one.
        reason: String,
    },

    /// A filesystem operation in the sandbox or the cache failed.
    #[error("{action} '{}': {source}", path.display())]
    Io {
        /// What was being done ("cannot create", "cannot rename to" ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The user name cannot be resolved, or ownership cannot be given to it.
    #[error("user '{user}': {reason}")]
    User {
        /// The user as given.
        user: String,
        /// What went wrong.
        reason: String,
    },

    /// The cache directory or its index cannot be used.
    #[error("cache at '{}': {reason}", dir.display())]
    Cache {
        /// The cache directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The URI shared one download with identical URIs of the same request, and it failed.
    #[error(
        "'{uri}' shared its download with an identical URI of the request, which failed: {reason}"
    )]
    SharedDownloadFailed {
        /// The URI fetched.
        uri: String,
        /// The failure of the shared download.
        reason: String,
    },

    /// The HTTP/TLS client cannot be set up (a bad root certificate).
    #[error("TLS setup: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },

    /// A worker task died unexpectedly (a panic in extraction code).
    #[error("internal error while fetching '{uri}': {reason}")]
    Internal {
        /// The URI fetched.
        uri: String,
        /// What happened.
        reason: String,
    },
}

impl FetchError {
    /// True when the failure may go away on its own (connection reset, 5xx, timeouts), so a retry
    /// is worthwhile. Permanent failures (4xx, checksum mismatch, bad archives) return false.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::HttpStatus { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            FetchError::Http { transient, .. } => *transient,
            FetchError::Stalled { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        FetchError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `'/path'`, or `'/path' (URI 'file:///path')` when the URI is written otherwise.
fn local_name(uri: &str, path: &std::path::Path) -> String {
    let shown = path.display().to_string();
    if uri.trim_start() == shown {
        format!("'{shown}'")
    } else {
        format!("'{shown}' (URI '{uri}')")
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = FetchError> = std::result::Result<T, E>;
