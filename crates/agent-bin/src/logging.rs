//! `tracing` output: human-readable text (the default; colours on a terminal) or one JSON object
//! per line (`--log-format json`), always on stderr so a command's own output stays clean.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. The filter is `RUST_LOG` when set, else `level` (e.g.
/// `info`, `debug`, `berth=debug,berth_containerizer=info`). Fails with the reason when the
/// filter does not parse.
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(v.trim()).map_err(|e| format!("RUST_LOG: {e}"))?
        }
        _ => EnvFilter::try_new(level).map_err(|e| format!("--log-level `{level}`: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    // A subscriber already installed (tests, embedding) is not an error.
    let _ = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filters_are_reported() {
        if std::env::var("RUST_LOG").is_err() {
            assert!(init(LogFormat::Text, "info,[")
                .unwrap_err()
                .contains("--log-level"));
        }
        init(LogFormat::Json, "info").unwrap();
    }
}
