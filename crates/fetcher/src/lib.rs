//! Fetches URIs into a container sandbox: verified, extracted, cached.
//!
//! A [`Fetcher`] takes a [`FetchRequest`] (a sandbox directory and a list of [`UriSpec`]s) and
//! puts every URI's result in the sandbox:
//!
//! * sources are `http://`, `https://` (rustls), `file://` and absolute paths (relative paths
//!   with a configured frameworks home); local sources only as [`LocalSources`] allows (none by
//!   default), and only regular files, never through a link below an allowed directory;
//! * every write into the sandbox goes through the sandbox opened once, following no link, so
//!   a sandbox someone else writes cannot redirect it; each URI is bounded by a size limit;
//! * the SHA-256 of the bytes is computed while they stream in and checked against the URI's
//!   [`Checksum`] before anything becomes visible;
//! * archives (`.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`/`.tbz2`, `.tar.xz`/`.txz`, `.tar.zst`,
//!   `.zip`, bare `.gz`) are extracted safely, tar formats while downloading;
//! * with a cache directory, `cache: true` URIs are kept (LRU, size-limited, surviving
//!   restarts) and later fetches are served by a copy (never a hard link a container could
//!   write through);
//! * stalls, deadlines and transient failures are handled with bounded retries;
//! * dropping the future returned by [`Fetcher::fetch`] stops everything and removes partial
//!   files.
//!
//! ```no_run
//! use berth_fetcher::{Fetcher, FetchRequest, LocalSources, UriSpec};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let fetcher = Fetcher::builder()
//!     .cache_dir("/var/lib/berth/fetcher-cache")
//!     .cache_size(2 << 30)
//!     // Local sources are refused unless allowed: here, regular files beneath /opt/tools.
//!     .local_sources(LocalSources::Within(vec!["/opt/tools".into()]))
//!     .build()?;
//! let report = fetcher
//!     .fetch(
//!         FetchRequest::new("/var/lib/berth/sandboxes/task-1")
//!             .uri(
//!                 UriSpec::new("https://example.invalid/app.tar.gz")
//!                     .cache(true)
//!                     .checksum("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".parse()?),
//!             )
//!             .uri(UriSpec::new("/opt/tools/run.sh").executable(true))
//!             .on_progress(|ev| eprintln!("{} {} {}", ev.uri, ev.phase.as_str(), ev.bytes_done)),
//!     )
//!     .await?;
//! for f in &report.fetched {
//!     println!("{} -> {} ({})", f.uri, f.path.display(), f.digest);
//! }
//! # Ok(()) }
//! ```

mod cache;
mod checksum;
mod cleanup;
mod error;
mod extract;
mod fetcher;
mod local;
mod metrics;
mod net;
mod owner;
mod paths;
mod place;
mod progress;
mod transfer;
mod uri;

pub use checksum::Checksum;
pub use error::{FetchError, Result};
pub use extract::ExtractLimits;
pub use fetcher::{
    CacheUse, FetchFailure, FetchReport, FetchRequest, Fetched, Fetcher, FetcherBuilder,
    RetryPolicy, UriFailure, DEFAULT_CACHE_SIZE, DEFAULT_MAX_SIZE,
};
pub use local::LocalSources;
pub use metrics::Metrics;
pub use net::Cidr;
pub use place::remove_leftover_staging;
pub use progress::{Phase, ProgressEvent, ProgressFn};
pub use uri::UriSpec;
