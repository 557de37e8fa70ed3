//! The settings for Docker's own log driver on every container the agent creates.
//!
//! Docker keeps a container's output in its `json-file` log whatever Berth does with it, and
//! uncapped that file grows without limit (a known way for agents to fill disks). It only needs to
//! hold what the logger has not consumed yet, plus what accumulates while the agent restarts.

use std::collections::BTreeMap;

/// Docker's log driver name and options (`HostConfig.LogConfig`), as plain data: the
/// containerizer copies `driver` into `Type` and `options` into `Config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLogConfig {
    /// The log driver: always `json-file`, the driver the logs endpoint can read back.
    pub driver: String,
    /// Driver options, e.g. `max-size` and `max-file`.
    pub options: BTreeMap<String, String>,
}

/// Default cap of one Docker json-file log file: 32 MiB.
///
/// Larger than it strictly needs to be, because Docker 20.10 mishandles a followed log when the
/// json-file rotates while the follower is behind: it skips the unread rest of the old file or
/// repeats the start of the new one (moby/moby#37646 and related; the `docker logs -f` CLI does the
/// same). Rarer rotations make that rarer; the logger counts the repeats it sees
/// ([`MetricsSnapshot::timestamp_regressions`](crate::MetricsSnapshot::timestamp_regressions)).
pub const DEFAULT_DOCKER_MAX_SIZE: u64 = 32 * 1024 * 1024;
/// Default number of Docker json-file log files per container.
pub const DEFAULT_DOCKER_MAX_FILE: u32 = 2;

impl DockerLogConfig {
    /// `json-file` capped at `max_file` files of `max_size` bytes each (Docker's `max-size` and
    /// `max-file`). `max_file` is at least 1 and `max_size` at least 1 byte; smaller values are
    /// raised to those.
    pub fn json_file(max_size: u64, max_file: u32) -> Self {
        let mut options = BTreeMap::new();
        options.insert("max-size".to_owned(), docker_size(max_size.max(1)));
        options.insert("max-file".to_owned(), max_file.max(1).to_string());
        DockerLogConfig {
            driver: "json-file".to_owned(),
            options,
        }
    }

    /// The most bytes Docker keeps for one container: what can pile up unconsumed (for example
    /// while the agent restarts) before Docker itself starts discarding.
    pub fn retained_bytes(&self) -> Option<u64> {
        let size = parse_docker_size(self.options.get("max-size")?)?;
        let files: u64 = self
            .options
            .get("max-file")
            .map_or(Some(1), |f| f.parse().ok())?;
        size.checked_mul(files)
    }
}

impl Default for DockerLogConfig {
    /// `json-file`, `max-size=32m`, `max-file=2`.
    fn default() -> Self {
        DockerLogConfig::json_file(DEFAULT_DOCKER_MAX_SIZE, DEFAULT_DOCKER_MAX_FILE)
    }
}

/// Docker's size notation: the largest exact unit of k, m, g (powers of 1024), else bytes.
fn docker_size(bytes: u64) -> String {
    for (unit, shift) in [("g", 30), ("m", 20), ("k", 10)] {
        if bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn parse_docker_size(text: &str) -> Option<u64> {
    let (num, mult) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&text[..text.len() - 1], 1 << 20),
        b'g' | b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_caps_json_file() {
        let c = DockerLogConfig::default();
        assert_eq!(c.driver, "json-file");
        assert_eq!(c.options["max-size"], "32m");
        assert_eq!(c.options["max-file"], "2");
        assert_eq!(c.retained_bytes(), Some(64 << 20));
    }

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(
            DockerLogConfig::json_file(1 << 30, 3).options["max-size"],
            "1g"
        );
        assert_eq!(
            DockerLogConfig::json_file(3 << 10, 1).options["max-size"],
            "3k"
        );
        assert_eq!(
            DockerLogConfig::json_file(1000, 0).options["max-size"],
            "1000"
        );
        assert_eq!(DockerLogConfig::json_file(1000, 0).options["max-file"], "1");
        assert_eq!(
            DockerLogConfig::json_file(1000, 0).retained_bytes(),
            Some(1000)
        );
    }
}
