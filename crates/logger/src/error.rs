//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the logger. Each variant names what failed and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggerError {
    /// A logger-wide setting is out of range.
    #[error("invalid logger configuration: {what} {reason}")]
    InvalidConfig {
        /// The setting.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The container's environment has a `CONTAINER_LOGGER_*` variable the logger does not know.
    #[error("unknown container logger variable `{name}` in the container's environment (known: {known}){hint}")]
    UnknownVariable {
        /// The variable's name.
        name: String,
        /// The variables that are understood.
        known: String,
        /// An extra hint, empty or starting with "; ".
        hint: String,
    },

    /// A known `CONTAINER_LOGGER_*` variable has a value that cannot be used.
    #[error("invalid value `{value}` for {variable}: {reason}")]
    InvalidSetting {
        /// The variable's name.
        variable: String,
        /// Its value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A container id that cannot key a checkpoint.
    #[error("invalid container id `{id}`: {reason}")]
    InvalidContainerId {
        /// The id given.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The user the log files should belong to does not exist.
    #[error("unknown user `{user}` for the log files: {reason}")]
    UnknownUser {
        /// The user name or id given.
        user: String,
        /// What the lookup found.
        reason: String,
    },

    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "open log file".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The logger's checkpoint journal (`<state_dir>/checkpoints.journal`) failed: it could not
    /// be opened, or a checkpoint could not be stored or removed.
    #[error("cannot {action}: {source}")]
    Journal {
        /// What was being done, e.g. "store the log checkpoint of container c1".
        action: String,
        /// The journal file.
        path: PathBuf,
        /// What the journal reported (it names the file and the operation that failed).
        #[source]
        source: berth_journal::JournalError,
    },

    /// There is no checkpoint to recover a container's log from.
    #[error("no log checkpoint for container {container_id} in {}: it was never prepared, or it was forgotten, or a host crash lost it before it was stored durably", path.display())]
    NoCheckpoint {
        /// The container.
        container_id: String,
        /// Where the checkpoint was looked for (the logger's checkpoint journal).
        path: PathBuf,
    },

    /// A stored checkpoint exists but cannot be used.
    #[error("unusable log checkpoint {}: {reason}", path.display())]
    BadCheckpoint {
        /// The file holding it: the checkpoint journal (or, for a checkpoint stored by an earlier
        /// version, its `<container_id>.json` file).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The output stream itself failed (for example the connection to Docker dropped). The log
    /// is still usable: open a new stream from [`ContainerLog::resume_since`](crate::ContainerLog::resume_since)
    /// and consume it.
    #[error("output stream of container {container_id} failed: {source}")]
    Source {
        /// The container.
        container_id: String,
        /// The stream's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The background writer of a container's log stopped unexpectedly (it panicked or its
    /// runtime shut down); the log cannot be written any more.
    #[error("log writer of container {container_id} stopped unexpectedly: {reason}")]
    WriterLost {
        /// The container.
        container_id: String,
        /// What the runtime reported.
        reason: String,
    },
}

impl LoggerError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        LoggerError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
