//! Counters a fetcher keeps over its lifetime.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a fetcher's counters (compare Mesos's `containerizer/fetcher/*` metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Fetch requests whose URIs all succeeded.
    pub fetches_succeeded: u64,
    /// Fetch requests with at least one failed URI.
    pub fetches_failed: u64,
    /// URIs placed in a sandbox.
    pub uris_succeeded: u64,
    /// URIs that failed.
    pub uris_failed: u64,
    /// Cached URIs served from the cache.
    pub cache_hits: u64,
    /// Cached URIs that had to be downloaded.
    pub cache_misses: u64,
    /// Bytes received from sources (HTTP bodies and local files), over all attempts.
    pub bytes_transferred: u64,
    /// Bytes the cache holds or has reserved.
    pub cache_bytes_used: u64,
    /// The cache's capacity (0 without a cache).
    pub cache_bytes_total: u64,
}

#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) fetches_succeeded: AtomicU64,
    pub(crate) fetches_failed: AtomicU64,
    pub(crate) uris_succeeded: AtomicU64,
    pub(crate) uris_failed: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) bytes_transferred: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            fetches_succeeded: g(&self.fetches_succeeded),
            fetches_failed: g(&self.fetches_failed),
            uris_succeeded: g(&self.uris_succeeded),
            uris_failed: g(&self.uris_failed),
            cache_hits: g(&self.cache_hits),
            cache_misses: g(&self.cache_misses),
            bytes_transferred: g(&self.bytes_transferred),
            cache_bytes_used: 0,
            cache_bytes_total: 0,
        }
    }
}
