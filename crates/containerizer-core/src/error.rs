//! The crate's errors: one [`Error`] enum, with module errors rolled up through `#[from]`.

use std::path::PathBuf;

use crate::engine::EngineError;
use crate::id::ContainerId;
use crate::mapping::SpecError;
use crate::state::Phase;

/// An identifier that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    /// What kind of identifier (`container id`, `agent id`).
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Reading or writing a checkpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file system operation failed.
    #[error("checkpoint {action} '{path}': {source}")]
    Io {
        /// What was being done (`write`, `read`, `rename`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file does not parse.
    #[error("checkpoint '{path}' is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint journal failed (its message names the file and the operation).
    #[error(transparent)]
    Journal(#[from] berth_journal::JournalError),
    /// A checkpoint was written by a newer Berth.
    #[error("checkpoint '{path}' has version {found}; this Berth reads up to version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
}

/// Everything the containerizer can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad identifier.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The launch spec cannot be mapped onto Docker (bad volume, port, parameter, ...).
    #[error("invalid launch spec: {0}")]
    Spec(#[from] SpecError),
    /// No container with this id is known.
    #[error("Unknown container: {id}")]
    UnknownContainer {
        /// The id asked for.
        id: ContainerId,
    },
    /// The container is being destroyed (Mesos: "Container is being removed").
    #[error("Container is being removed: {id}")]
    BeingDestroyed {
        /// The container.
        id: ContainerId,
    },
    /// The container has terminated; it can only be waited for, read and removed.
    #[error("Container {id} has terminated; its resources cannot be changed (remove it with REMOVE_CONTAINER)")]
    Terminated {
        /// The container.
        id: ContainerId,
    },
    /// The call needs a running process and there is none.
    #[error("Container {id} has no running process yet (it is {phase})")]
    NotRunning {
        /// The container.
        id: ContainerId,
        /// Its phase.
        phase: Phase,
    },
    /// `remove` of a container that has not terminated.
    #[error("Container {id} has not terminated (it is {phase}); destroy it first")]
    NotTerminated {
        /// The container.
        id: ContainerId,
        /// Its phase.
        phase: Phase,
    },
    /// The launch failed; the container was destroyed and its termination carries the same text.
    #[error("Failed to launch container: {cause}")]
    LaunchFailed {
        /// The container.
        id: ContainerId,
        /// The cause (the termination message without the prefix).
        cause: String,
    },
    /// The launch was refused before it was accepted: a URI cannot be fetched (a local source
    /// the operator did not allow, ...). Nothing was created.
    #[error("Failed to launch container: {cause}")]
    UriRefused {
        /// The container.
        id: ContainerId,
        /// Which URI, and why.
        cause: String,
    },
    /// The container was destroyed before the launch finished.
    #[error("{message}")]
    DestroyedDuringLaunch {
        /// The container.
        id: ContainerId,
        /// The termination message, e.g. "Container destroyed while pulling image".
        message: String,
    },
    /// A Docker operation failed.
    #[error("{what}: {source}")]
    Engine {
        /// What was attempted, e.g. "failed to update container 'x'".
        what: String,
        /// The Docker error.
        #[source]
        source: EngineError,
    },
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A file system operation outside checkpoints failed.
    #[error("{action} '{path}': {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A session with this id already exists in the container.
    #[error("Session {id} already exists")]
    SessionExists {
        /// The session, as `parent.session`.
        id: ContainerId,
    },
    /// The session's stdin is not there to attach: a client already has it, or it was not asked
    /// for.
    #[error("Session {id} has no stdin to attach: another client has it, or the session has none")]
    InputTaken {
        /// The session, as `parent.session`.
        id: ContainerId,
    },
    /// The container has no open stdin: only a container launched with a TTY has one.
    #[error("Container {id} has no open stdin: only a container launched with a TTY (container.tty_info) has one")]
    NoStdin {
        /// The container.
        id: ContainerId,
    },
    /// The container, or the agent, has as many sessions open as it allows.
    #[error("Container {id} has as many sessions open as Berth allows ({per_container} per container, {total} in all); end one first")]
    TooManySessions {
        /// The parent container.
        id: ContainerId,
        /// The limit per container.
        per_container: usize,
        /// The limit in all.
        total: usize,
    },
    /// The containerizer is shutting down (the agent stops); nothing new is launched.
    #[error("the agent is shutting down; launch again once it has restarted")]
    ShuttingDown,
    /// Bad containerizer configuration.
    #[error("invalid containerizer configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn engine(what: impl Into<String>, source: EngineError) -> Error {
        Error::Engine {
            what: what.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
