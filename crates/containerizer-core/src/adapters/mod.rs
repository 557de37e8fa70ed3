//! Adapters from the fetcher and logger crates to the [`Fetch`](crate::Fetch) and
//! [`Logs`](crate::Logs) seams.

mod fetch;
mod logs;
mod resume;

pub use fetch::FetcherAdapter;
pub use logs::{log_config_spec, LoggerAdapter};
pub use resume::LogResumeMetrics;
