//! Options of the logs call.

use std::time::SystemTime;

/// Options of [`Containers::logs`](crate::Containers::logs).
#[derive(Debug, Clone)]
pub struct LogsOptions {
    /// Keep the stream open and deliver new output as it is written.
    pub follow: bool,
    /// Include stdout. Default: true.
    pub stdout: bool,
    /// Include stderr. Default: true.
    pub stderr: bool,
    /// Only entries after this time; sub-second precision is kept (sent as
    /// `seconds.nanoseconds`).
    pub since: Option<SystemTime>,
    /// Only entries before this time.
    pub until: Option<SystemTime>,
    /// Ask for each entry's time; it is parsed into [`LogFrame::timestamp`](crate::LogFrame)
    /// and removed from the data.
    pub timestamps: bool,
    /// Only the last this many lines (before following).
    pub tail: Option<u64>,
    /// The container's `Config.Tty`, when the caller knows it (say, it created the
    /// container): it decides whether the body is multiplexed. `None` (the default) asks the
    /// daemon with one inspect first. A wrong value garbles the frames, so pass only what is
    /// known.
    pub tty: Option<bool>,
}

impl Default for LogsOptions {
    fn default() -> LogsOptions {
        LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since: None,
            until: None,
            timestamps: false,
            tail: None,
            tty: None,
        }
    }
}
