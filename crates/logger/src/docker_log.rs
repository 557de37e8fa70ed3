//! The settings for Docker's own log driver on every container the agent creates.
//!
//! The logger reads a new container's output live from Docker's attach stream; Docker's own copy
//! is what an agent restart resumes from (and what `docker logs` shows an operator). It must
//! hold the bytes exactly, so the driver is `local` (raw bytes in protobuf frames; `json-file`
//! stores text and turns bytes that are not UTF-8 into U+FFFD), and it must be capped: uncapped
//! it grows without limit (a known way for agents to fill disks).

use std::collections::BTreeMap;

/// Docker's log driver name and options (`HostConfig.LogConfig`), as plain data: the
/// containerizer copies `driver` into `Type` and `options` into `Config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLogConfig {
    /// The log driver: `local` by default (the logs endpoint reads it back byte for byte).
    pub driver: String,
    /// Driver options, e.g. `max-size` and `max-file`.
    pub options: BTreeMap<String, String>,
}

/// Default cap of one file of Docker's copy: 32 MiB.
///
/// A recovery from a checkpoint taken while reading the attach stream replays Docker's copy from
/// its first byte, which must still be there: the container's output up to the agent's restart
/// has to fit in the copy (see the crate README). Larger caps make that hold for chattier
/// containers, at that much disk per container.
pub const DEFAULT_DOCKER_MAX_SIZE: u64 = 32 * 1024 * 1024;
/// Default number of files of Docker's copy per container (3 x 32 MiB = 96 MiB).
pub const DEFAULT_DOCKER_MAX_FILE: u32 = 3;

impl DockerLogConfig {
    /// Docker's `local` driver capped at `max_file` files of `max_size` bytes each, rotated
    /// files not compressed (a recovery reads them back). `max_file` is at least 1 and
    /// `max_size` at least 1 byte; smaller values are raised to those.
    pub fn local(max_size: u64, max_file: u32) -> Self {
        let mut c = DockerLogConfig::json_file(max_size, max_file);
        c.driver = "local".to_owned();
        c.options.insert("compress".to_owned(), "false".to_owned());
        c
    }

    /// `json-file` capped at `max_file` files of `max_size` bytes each (Docker's `max-size` and
    /// `max-file`). `max_file` is at least 1 and `max_size` at least 1 byte; smaller values are
    /// raised to those. Not byte-exact (it stores text): kept for comparisons.
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
    /// `local`, `max-size=32m`, `max-file=3`, `compress=false`.
    fn default() -> Self {
        DockerLogConfig::local(DEFAULT_DOCKER_MAX_SIZE, DEFAULT_DOCKER_MAX_FILE)
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
    fn default_is_a_capped_local_driver() {
        let c = DockerLogConfig::default();
        assert_eq!(c.driver, "local");
        assert_eq!(c.options["max-size"], "32m");
        assert_eq!(c.options["max-file"], "3");
        assert_eq!(c.options["compress"], "false");
        assert_eq!(c.retained_bytes(), Some(96 << 20));
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
