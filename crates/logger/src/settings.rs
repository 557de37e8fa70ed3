//! Rotation limits and their per-container overrides from the container's environment.
//!
//! As in Mesos, a container may override the logger's limits with environment variables that
//! start with [`ENV_PREFIX`]. Any other variable with that prefix is a launch error that names it,
//! so a typo is never silently ignored.

use std::collections::BTreeMap;

use crate::error::LoggerError;
use crate::OutputStream;

/// Prefix of the environment variables that configure the logger per container.
pub const ENV_PREFIX: &str = "CONTAINER_LOGGER_";
/// Maximum size of `stdout` before it is rotated (bytes, or with a `K`/`M`/`G` suffix).
pub const ENV_MAX_STDOUT_SIZE: &str = "CONTAINER_LOGGER_MAX_STDOUT_SIZE";
/// Maximum size of `stderr` before it is rotated (bytes, or with a `K`/`M`/`G` suffix).
pub const ENV_MAX_STDERR_SIZE: &str = "CONTAINER_LOGGER_MAX_STDERR_SIZE";
/// Number of rotated `stdout` files kept (`stdout.1` .. `stdout.N`), like logrotate's `rotate N`.
pub const ENV_STDOUT_ROTATE: &str = "CONTAINER_LOGGER_STDOUT_ROTATE";
/// Number of rotated `stderr` files kept (`stderr.1` .. `stderr.N`), like logrotate's `rotate N`.
pub const ENV_STDERR_ROTATE: &str = "CONTAINER_LOGGER_STDERR_ROTATE";

/// Every variable the logger understands.
pub const KNOWN_VARIABLES: [&str; 4] = [
    ENV_MAX_STDOUT_SIZE,
    ENV_MAX_STDERR_SIZE,
    ENV_STDOUT_ROTATE,
    ENV_STDERR_ROTATE,
];

/// Default maximum size of one log file: 10 MiB, as in Mesos.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Default number of rotated files kept per stream.
pub const DEFAULT_KEEP: u32 = 5;
/// Smallest size a container may ask for: one page, as in Mesos. Smaller files would rotate on
/// nearly every write.
pub const MIN_OVERRIDE_SIZE: u64 = 4096;
/// Largest number of rotated files: each rotation renames every kept file.
pub const MAX_KEEP: u32 = 1000;
/// How far before the size limit a file may be cut early so it ends at a newline.
pub const DEFAULT_NEWLINE_WINDOW: u64 = 4096;

/// How one stream's file is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// One file that grows without limit (the sandbox logger).
    Never,
    /// Rotate when the file would exceed `max_size` bytes; keep `keep` rotated files.
    BySize {
        /// Largest size of any one file, in bytes (at least 1).
        max_size: u64,
        /// Number of rotated files kept (`stdout.1` newest .. `stdout.<keep>` oldest); 0 keeps
        /// none, so a full file is simply discarded.
        keep: u32,
        /// A file may be cut up to this many bytes before `max_size` so that it ends with a
        /// newline; if no newline is that close, the cut is at exactly `max_size`.
        newline_window: u64,
    },
}

impl Rotation {
    /// Size-based rotation with the default newline window (at most half of `max_size`).
    pub fn by_size(max_size: u64, keep: u32) -> Result<Rotation, LoggerError> {
        if max_size == 0 {
            return Err(LoggerError::InvalidConfig {
                what: "max_size",
                reason: "must be at least 1 byte".into(),
            });
        }
        if keep > MAX_KEEP {
            return Err(LoggerError::InvalidConfig {
                what: "keep",
                reason: format!("{keep} rotated files is more than the limit of {MAX_KEEP}"),
            });
        }
        Ok(Rotation::BySize {
            max_size,
            keep,
            newline_window: DEFAULT_NEWLINE_WINDOW.min(max_size / 2),
        })
    }

    /// The same rotation with another newline window (clamped to half of `max_size`; 0 always
    /// cuts at exactly `max_size`). No effect on [`Rotation::Never`].
    pub fn with_newline_window(self, window: u64) -> Rotation {
        match self {
            Rotation::Never => Rotation::Never,
            Rotation::BySize { max_size, keep, .. } => Rotation::BySize {
                max_size,
                keep,
                newline_window: window.min(max_size / 2),
            },
        }
    }
}

/// The rotation of both streams of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRotations {
    /// Rotation of `stdout`.
    pub stdout: Rotation,
    /// Rotation of `stderr`.
    pub stderr: Rotation,
}

impl StreamRotations {
    /// The same rotation for both streams.
    pub fn both(rotation: Rotation) -> Self {
        StreamRotations {
            stdout: rotation,
            stderr: rotation,
        }
    }

    /// The rotation of one stream.
    pub fn get(&self, stream: OutputStream) -> Rotation {
        match stream {
            OutputStream::Stdout => self.stdout,
            OutputStream::Stderr => self.stderr,
        }
    }
}

/// Rejects any `CONTAINER_LOGGER_*` variable the logger does not know, naming the first one.
pub fn check_variable_names(env: &BTreeMap<String, String>) -> Result<(), LoggerError> {
    for name in env.keys().filter(|k| k.starts_with(ENV_PREFIX)) {
        if !KNOWN_VARIABLES.contains(&name.as_str()) {
            let hint = if name.contains("LOGROTATE") {
                format!(
                    "; Berth rotates in-process and takes no logrotate options: use {ENV_STDOUT_ROTATE} / \
                     {ENV_STDERR_ROTATE} for the number of rotated files"
                )
            } else {
                String::new()
            };
            return Err(LoggerError::UnknownVariable {
                name: name.clone(),
                known: KNOWN_VARIABLES.join(", "),
                hint,
            });
        }
    }
    Ok(())
}

/// Applies a container's overrides to the logger's default rotation.
///
/// Overrides change the size and keep count of a stream that rotates; they cannot turn rotation
/// on for a logger configured without it (the sandbox logger). Unknown `CONTAINER_LOGGER_*`
/// variables and unparsable values are errors naming the variable.
pub fn apply_overrides(
    defaults: StreamRotations,
    env: &BTreeMap<String, String>,
) -> Result<StreamRotations, LoggerError> {
    check_variable_names(env)?;
    let mut out = defaults;
    for (stream, size_var, keep_var) in [
        (OutputStream::Stdout, ENV_MAX_STDOUT_SIZE, ENV_STDOUT_ROTATE),
        (OutputStream::Stderr, ENV_MAX_STDERR_SIZE, ENV_STDERR_ROTATE),
    ] {
        let size = env
            .get(size_var)
            .map(|v| parse_size(size_var, v))
            .transpose()?;
        let keep = env
            .get(keep_var)
            .map(|v| parse_keep(keep_var, v))
            .transpose()?;
        let slot = match stream {
            OutputStream::Stdout => &mut out.stdout,
            OutputStream::Stderr => &mut out.stderr,
        };
        match *slot {
            Rotation::Never => {
                if size.is_some() || keep.is_some() {
                    tracing::warn!(
                        stream = %stream,
                        "{size_var} / {keep_var} ignored: this logger does not rotate"
                    );
                }
            }
            Rotation::BySize {
                max_size,
                keep: default_keep,
                newline_window,
            } => {
                let max_size = size.unwrap_or(max_size);
                *slot = Rotation::BySize {
                    max_size,
                    keep: keep.unwrap_or(default_keep),
                    newline_window: newline_window.min(max_size / 2),
                };
            }
        }
    }
    Ok(out)
}

/// Parses a size such as `2097152`, `2048K`, `2MB`, `2MiB` or `1G` (binary multiples, case
/// insensitive, as Mesos' `Bytes`), of at least [`MIN_OVERRIDE_SIZE`].
pub fn parse_size(variable: &str, value: &str) -> Result<u64, LoggerError> {
    let invalid = |reason: String| LoggerError::InvalidSetting {
        variable: variable.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid(
            "expected a number of bytes, optionally followed by B, K, M or G".into(),
        ));
    }
    let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => {
            return Err(invalid(format!(
                "unknown unit `{other}` (use B, K, M or G)"
            )))
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| invalid("number too large".into()))?;
    let bytes = n
        .checked_mul(multiplier)
        .ok_or_else(|| invalid("size too large".into()))?;
    if bytes < MIN_OVERRIDE_SIZE {
        return Err(invalid(format!(
            "{bytes} bytes is below the minimum of {MIN_OVERRIDE_SIZE}"
        )));
    }
    Ok(bytes)
}

/// Parses a keep count: an integer from 0 to [`MAX_KEEP`].
pub fn parse_keep(variable: &str, value: &str) -> Result<u32, LoggerError> {
    let invalid = |reason: String| LoggerError::InvalidSetting {
        variable: variable.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let n: u32 = value
        .trim()
        .parse()
        .map_err(|_| invalid(format!("expected a whole number from 0 to {MAX_KEEP}")))?;
    if n > MAX_KEEP {
        return Err(invalid(format!("{n} is more than the limit of {MAX_KEEP}")));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rotating() -> StreamRotations {
        StreamRotations::both(Rotation::by_size(DEFAULT_MAX_SIZE, DEFAULT_KEEP).unwrap())
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("V", "4096").unwrap(), 4096);
        assert_eq!(parse_size("V", "2MB").unwrap(), 2 << 20);
        assert_eq!(parse_size("V", "2mib").unwrap(), 2 << 20);
        assert_eq!(parse_size("V", "2048K").unwrap(), 2 << 20);
        assert_eq!(parse_size("V", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("V", " 8 KB ").unwrap(), 8192);
    }

    #[test]
    fn bad_sizes_name_the_variable_and_the_reason() {
        let e = parse_size(ENV_MAX_STDOUT_SIZE, "10XB")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(ENV_MAX_STDOUT_SIZE) && e.contains("10XB") && e.contains("unit"),
            "{e}"
        );
        let e = parse_size(ENV_MAX_STDOUT_SIZE, "100")
            .unwrap_err()
            .to_string();
        assert!(e.contains("below the minimum"), "{e}");
        let e = parse_size(ENV_MAX_STDOUT_SIZE, "MB")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a number"), "{e}");
        let e = parse_size(ENV_MAX_STDOUT_SIZE, "99999999999999999999")
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        let e = parse_size(ENV_MAX_STDOUT_SIZE, "99999999999G")
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn keep_counts_are_bounded() {
        assert_eq!(parse_keep(ENV_STDOUT_ROTATE, "0").unwrap(), 0);
        assert_eq!(parse_keep(ENV_STDOUT_ROTATE, "12").unwrap(), 12);
        let e = parse_keep(ENV_STDOUT_ROTATE, "1001")
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_STDOUT_ROTATE) && e.contains("limit"), "{e}");
        let e = parse_keep(ENV_STDOUT_ROTATE, "-1").unwrap_err().to_string();
        assert!(e.contains("whole number"), "{e}");
    }

    #[test]
    fn overrides_apply_per_stream() {
        let got = apply_overrides(
            rotating(),
            &env(&[
                (ENV_MAX_STDOUT_SIZE, "2MB"),
                (ENV_STDOUT_ROTATE, "4"),
                (ENV_STDERR_ROTATE, "0"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(
            got.stdout,
            Rotation::BySize {
                max_size: 2 << 20,
                keep: 4,
                newline_window: 4096
            }
        );
        assert_eq!(
            got.stderr,
            Rotation::BySize {
                max_size: DEFAULT_MAX_SIZE,
                keep: 0,
                newline_window: 4096
            }
        );
    }

    #[test]
    fn small_override_shrinks_the_newline_window() {
        let got = apply_overrides(rotating(), &env(&[(ENV_MAX_STDERR_SIZE, "4096")])).unwrap();
        assert_eq!(
            got.stderr,
            Rotation::BySize {
                max_size: 4096,
                keep: DEFAULT_KEEP,
                newline_window: 2048
            }
        );
    }

    #[test]
    fn unknown_variable_is_named() {
        let e = apply_overrides(
            rotating(),
            &env(&[("CONTAINER_LOGGER_MAX_STDOUT_SIZ", "2MB")]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, LoggerError::UnknownVariable { ref name, .. } if name == "CONTAINER_LOGGER_MAX_STDOUT_SIZ")
        );
        assert!(
            text.contains("CONTAINER_LOGGER_MAX_STDOUT_SIZ") && text.contains(ENV_MAX_STDOUT_SIZE),
            "{text}"
        );
    }

    #[test]
    fn mesos_logrotate_options_get_a_hint() {
        let e = apply_overrides(
            rotating(),
            &env(&[("CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS", "rotate 4")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS")
                && e.contains(ENV_STDOUT_ROTATE),
            "{e}"
        );
    }

    #[test]
    fn non_rotating_logger_ignores_known_overrides_but_rejects_unknown() {
        let never = StreamRotations::both(Rotation::Never);
        assert_eq!(
            apply_overrides(never, &env(&[(ENV_MAX_STDOUT_SIZE, "2MB")])).unwrap(),
            never
        );
        assert!(apply_overrides(never, &env(&[("CONTAINER_LOGGER_X", "1")])).is_err());
    }

    #[test]
    fn rotation_constructor_validates() {
        assert!(Rotation::by_size(0, 1).is_err());
        assert!(Rotation::by_size(1, MAX_KEEP + 1).is_err());
        assert_eq!(
            Rotation::by_size(10, 1).unwrap(),
            Rotation::BySize {
                max_size: 10,
                keep: 1,
                newline_window: 5
            }
        );
        assert_eq!(
            Rotation::by_size(100, 1).unwrap().with_newline_window(0),
            Rotation::BySize {
                max_size: 100,
                keep: 1,
                newline_window: 0
            }
        );
    }
}
