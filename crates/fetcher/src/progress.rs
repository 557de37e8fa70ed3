//! Progress events, reported per URI while a fetch runs.

use std::sync::Arc;
use std::time::Duration;

/// What a URI's fetch is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Bytes are arriving (and, for streamable archives, being extracted as they come).
    Downloading,
    /// All bytes arrived; the digest is being compared and the result checked.
    Verifying,
    /// An archive is being unpacked from a local file (zip, or a cache hit).
    Extracting,
    /// The result came from the cache without a download.
    Cached,
    /// The URI is in place in the sandbox.
    Done,
}

impl Phase {
    /// A lower-case name for logs and plain-text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Downloading => "downloading",
            Phase::Verifying => "verifying",
            Phase::Extracting => "extracting",
            Phase::Cached => "cached",
            Phase::Done => "done",
        }
    }
}

/// One progress report for one URI of a fetch request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressEvent {
    /// Position of the URI in the request.
    pub index: usize,
    /// The URI as given.
    pub uri: Arc<str>,
    /// What is happening now.
    pub phase: Phase,
    /// Bytes received (or read) so far.
    pub bytes_done: u64,
    /// Total bytes when known (HTTP Content-Length, file size).
    pub bytes_total: Option<u64>,
    /// Time since this URI's fetch started.
    pub elapsed: Duration,
}

impl ProgressEvent {
    /// Average rate so far, in bytes per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes_done as f64 / secs
        } else {
            0.0
        }
    }

    /// Estimated time left at the average rate, when the total is known.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.bytes_total?;
        let rate = self.rate();
        if rate <= 0.0 {
            return None;
        }
        Some(Duration::from_secs_f64(
            total.saturating_sub(self.bytes_done) as f64 / rate,
        ))
    }
}

/// A progress callback; it runs on the fetching task, so it should be quick.
pub type ProgressFn = Arc<dyn Fn(&ProgressEvent) + Send + Sync>;
