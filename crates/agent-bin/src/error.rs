//! The crate's errors: [`ConfigError`] (a flag and why), [`ApiError`] (an HTTP status and a
//! message), and [`Error`] for everything the binary can fail with.

use std::path::PathBuf;

use http::StatusCode;

/// A bad flag or config value: names the flag and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {reason}")]
pub struct ConfigError {
    /// The flag, e.g. `--listen`.
    pub flag: String,
    /// Why the value is refused, and what would be accepted.
    pub reason: String,
}

impl ConfigError {
    /// A new error for `flag`.
    pub fn new(flag: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            flag: flag.into(),
            reason: reason.into(),
        }
    }
}

/// An HTTP API failure: the status and a text naming what failed (sent as the body, as Mesos
/// does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 503: the agent cannot serve this right now (e.g. the Docker daemon is unreachable).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: a failure of the agent or its host, never of the request.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// Everything `berth` can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad flag or config value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A startup check failed; `fix` says what to do.
    #[error("{problem}\n  fix: {fix}")]
    Startup {
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A file system operation failed.
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
    /// The Docker daemon failed.
    #[error("docker: {0}")]
    Docker(#[from] berth_docker_api::Error),
    /// Talking to a Berth agent failed (CLI).
    #[error("agent at {url}: {reason}")]
    Agent {
        /// The agent's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The agent answered a CLI request with an error status.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The containerizer failed.
    #[error("{0}")]
    Containerizer(String),
}

impl Error {
    /// An I/O error with the path and action.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A failed startup check.
    pub fn startup(problem: impl Into<String>, fix: impl Into<String>) -> Error {
        Error::Startup {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
