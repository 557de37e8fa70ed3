//! The fetcher and logger seams: [`Fetch`] and [`Logs`].
//!
//! The containerizer only needs "fetch these URIs into that sandbox, cancellable by drop" and
//! "write this output stream into that sandbox, and tell me when it is all on disk". Adapters
//! over `berth-fetcher` and `berth-logger` implement them; unit tests use in-memory ones.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::engine::{BoxFut, BoxStream, EngineError, OutputChunk};
use crate::id::ContainerId;
use crate::spec::Uri;

/// What a URI's fetch is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchPhase {
    /// Bytes are arriving.
    Downloading,
    /// All bytes arrived; the digest and result are being checked.
    Verifying,
    /// An archive is being unpacked.
    Extracting,
    /// Served from the cache without a download.
    Cached,
    /// In place in the sandbox.
    Done,
}

impl FetchPhase {
    /// Lower-case name, as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchPhase::Downloading => "downloading",
            FetchPhase::Verifying => "verifying",
            FetchPhase::Extracting => "extracting",
            FetchPhase::Cached => "cached",
            FetchPhase::Done => "done",
        }
    }

    /// Whether the URI is finished (in place, or from the cache).
    pub fn is_finished(self) -> bool {
        matches!(self, FetchPhase::Cached | FetchPhase::Done)
    }
}

/// The latest progress of one URI of a fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchProgress {
    /// Position of the URI in the launch's `uris`.
    pub index: usize,
    /// The URI as given.
    pub uri: String,
    /// What is happening.
    pub phase: FetchPhase,
    /// Bytes received (or read) so far.
    pub bytes_done: u64,
    /// Total bytes, when known.
    pub bytes_total: Option<u64>,
    /// Time since this URI's fetch started.
    pub elapsed: Duration,
}

impl FetchProgress {
    /// Average rate so far, bytes per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes_done as f64 / secs
        } else {
            0.0
        }
    }

    /// Time left at the average rate, when the total is known and bytes flow.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.bytes_total?;
        let rate = self.rate();
        (rate > 0.0 && !self.phase.is_finished())
            .then(|| Duration::from_secs_f64(total.saturating_sub(self.bytes_done) as f64 / rate))
    }
}

/// Receives a fetch's progress events; called on the fetching task, so it must be quick.
pub type FetchProgressFn = Arc<dyn Fn(FetchProgress) + Send + Sync>;

/// Fetches a container's URIs into its sandbox.
pub trait Fetch: Send + Sync + 'static {
    /// Fetches every URI into `sandbox`, as `user` when set, reporting each URI's progress to
    /// `progress`. The error text becomes the launch failure's cause. Dropping the future
    /// cancels the fetch and must leave no partial file.
    fn fetch<'a>(
        &'a self,
        container: &'a ContainerId,
        uris: &'a [Uri],
        sandbox: &'a Path,
        user: Option<&'a str>,
        progress: FetchProgressFn,
    ) -> BoxFut<'a, Result<(), String>>;

    /// Removes what a fetch killed with its process (an agent SIGKILLed mid-fetch) left in
    /// `sandbox`. A fetch cancelled by dropping it cleans up after itself; this is for recovery.
    fn discard_partials(&self, _sandbox: &Path) {}

    /// Checks, before a launch is accepted, what can be checked of its URIs without fetching
    /// them (a local source the operator did not allow, an `output_file` leaving the sandbox).
    /// The error text names the URI and says why; the launch is refused with it. The fetch
    /// checks everything again.
    fn check(&self, _uris: &[Uri]) -> Result<(), String> {
        Ok(())
    }
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

/// Opens the container's output from Docker's copy, from a Docker log timestamp (`None`: from
/// the start), following it until the container exits when the flag is set, else reading what
/// the copy holds now. Called again to reconnect after a stream error, and once more after the
/// followed stream ended (Docker 20.10's follower can miss the last messages).
pub type OpenOutput = Arc<
    dyn Fn(Option<SystemTime>, bool) -> BoxStream<'static, Result<OutputChunk, EngineError>>
        + Send
        + Sync,
>;

/// The container's output attached before it started (raw, untimed, from its first byte).
pub type LiveOutput = BoxStream<'static, Result<OutputChunk, EngineError>>;

/// Writes a container's output into its sandbox.
pub trait Logs: Send + Sync + 'static {
    /// Checks the per-container settings before anything is launched; the error text becomes the
    /// launch failure's cause (e.g. an unknown `CONTAINER_LOGGER_*` variable).
    fn prepare(&self, target: &LogTarget) -> Result<(), String>;

    /// Writes the output until it ends (the container stopped), reconnecting with `open` after
    /// stream errors, then drains and syncs; resolves only once everything is on disk, so the
    /// containerizer reports the termination after the logs are complete. `resume` is set after
    /// an agent restart: continue where the previous agent stopped. `live`, when given, is the
    /// output attached before the container started: read it first, and turn to `open` only if
    /// it breaks.
    ///
    /// When `stop` fires (the agent shuts down, the container keeps running), stop reading,
    /// write and sync what was received, store the position a restarted agent resumes from, and
    /// resolve.
    fn run(
        &self,
        target: LogTarget,
        resume: bool,
        live: Option<LiveOutput>,
        open: OpenOutput,
        stop: CancellationToken,
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
        _progress: FetchProgressFn,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            Err(format!(
                "no fetcher is configured; cannot fetch '{}'",
                uris[0].value
            ))
        })
    }
}
