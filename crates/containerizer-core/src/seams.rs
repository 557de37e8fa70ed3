//! The fetcher and logger seams: [`Fetch`] and [`Logs`].
//!
//! The containerizer only needs "fetch these URIs into that sandbox, cancellable by drop" and
//! "write this output stream into that sandbox, and tell me when it is all on disk". Adapters
//! over `berth-fetcher` and `berth-logger` implement them; unit tests use in-memory ones.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::engine::{BoxFut, BoxStream, EngineError, OutputChunk};
use crate::id::ContainerId;
use crate::spec::Uri;

/// Fetches a container's URIs into its sandbox.
pub trait Fetch: Send + Sync + 'static {
    /// Fetches every URI into `sandbox`, as `user` when set. The error text becomes the launch
    /// failure's cause. Dropping the future cancels the fetch and must leave no partial file.
    fn fetch<'a>(
        &'a self,
        container: &'a ContainerId,
        uris: &'a [Uri],
        sandbox: &'a Path,
        user: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), String>>;

    /// Removes what a fetch killed with its process (an agent SIGKILLed mid-fetch) left in
    /// `sandbox`. A fetch cancelled by dropping it cleans up after itself; this is for recovery.
    fn discard_partials(&self, _sandbox: &Path) {}
}

/// What the logger needs to know about a container.
#[derive(Debug, Clone)]
pub struct LogTarget {
    /// The container.
    pub container: ContainerId,
    /// Its sandbox on the host.
    pub sandbox: std::path::PathBuf,
    /// The user that should own the files.
    pub user: Option<String>,
    /// The container's environment (per-container logger settings live there).
    pub env: BTreeMap<String, String>,
}

/// Opens the container's output from a Docker log timestamp (`None`: from the start). Called
/// again to reconnect after a stream error.
pub type OpenOutput = Arc<
    dyn Fn(Option<SystemTime>) -> BoxStream<'static, Result<OutputChunk, EngineError>>
        + Send
        + Sync,
>;

/// Writes a container's output into its sandbox.
pub trait Logs: Send + Sync + 'static {
    /// Checks the per-container settings before anything is launched; the error text becomes the
    /// launch failure's cause (e.g. an unknown `CONTAINER_LOGGER_*` variable).
    fn prepare(&self, target: &LogTarget) -> Result<(), String>;

    /// Writes the output until it ends (the container stopped), reconnecting with `open` after
    /// stream errors, then drains and syncs; resolves only once everything is on disk, so the
    /// containerizer reports the termination after the logs are complete. `resume` is set after
    /// an agent restart: continue where the previous agent stopped.
    fn run(
        &self,
        target: LogTarget,
        resume: bool,
        open: OpenOutput,
    ) -> BoxFut<'static, Result<(), String>>;

    /// Forgets a removed container's logging state (not its log files, which are the sandbox's).
    fn forget(&self, container: &ContainerId);
}

/// A [`Fetch`] for containerizers that never get URIs: any URI fails the launch.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFetch;

impl Fetch for NoFetch {
    fn fetch<'a>(
        &'a self,
        _container: &'a ContainerId,
        uris: &'a [Uri],
        _sandbox: &'a Path,
        _user: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            Err(format!(
                "no fetcher is configured; cannot fetch '{}'",
                uris[0].value
            ))
        })
    }
}
