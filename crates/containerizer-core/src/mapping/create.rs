//! [`CreateSpec`]: the Docker container-create body, in this crate's own types.
//!
//! The mapping produces this; the engine adapter converts it to the Docker client's body. Keeping
//! it here lets unit tests assert the mapping without a daemon, and lets the in-memory engine used
//! by the state-machine tests record what would have been created.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The body of `POST /containers/create`, as far as Berth sets it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateSpec {
    /// Image reference.
    pub image: String,
    /// `Entrypoint`; `None` keeps the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`; `None` keeps the image's.
    pub cmd: Option<Vec<String>>,
    /// `Env` as `KEY=value`.
    pub env: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `User`.
    pub user: Option<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `Hostname`.
    pub hostname: Option<String>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
    /// `ExposedPorts`, e.g. `80/tcp`.
    pub exposed_ports: BTreeSet<String>,
    /// `Tty`: the process's stdout and stderr are one console (the `tty` parameter).
    #[serde(default)]
    pub tty: bool,
    /// `HostConfig`.
    pub host: HostSpec,
}

/// `HostConfig`, as far as Berth sets it. `AutoRemove` is deliberately absent: a container must
/// survive its exit so it can be inspected (exit code, OOMKilled).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostSpec {
    /// `Mounts` (never `Binds`: the `-v` syntax breaks on ':' in paths).
    pub mounts: Vec<MountSpec>,
    /// `NetworkMode`.
    pub network_mode: String,
    /// `PortBindings`: `"<port>/<proto>"` to host ports.
    pub port_bindings: BTreeMap<String, Vec<u16>>,
    /// `Privileged`.
    pub privileged: bool,
    /// `CapAdd`.
    pub cap_add: Vec<String>,
    /// `CapDrop`.
    pub cap_drop: Vec<String>,
    /// `Devices`.
    pub devices: Vec<DeviceSpec>,
    /// `Dns`.
    pub dns: Vec<String>,
    /// `DnsSearch`.
    pub dns_search: Vec<String>,
    /// `DnsOptions`.
    pub dns_options: Vec<String>,
    /// `ExtraHosts` as `host:ip`.
    pub extra_hosts: Vec<String>,
    /// `Ulimits`.
    pub ulimits: Vec<UlimitSpec>,
    /// `SecurityOpt`.
    pub security_opt: Vec<String>,
    /// `Tmpfs`: path to mount options.
    pub tmpfs: BTreeMap<String, String>,
    /// `ShmSize` in bytes.
    pub shm_size: Option<i64>,
    /// `PidsLimit`.
    pub pids_limit: Option<i64>,
    /// `Init`.
    pub init: Option<bool>,
    /// `ReadonlyRootfs`.
    pub read_only_rootfs: bool,
    /// `Memory` (hard limit) in bytes; 0 means unlimited.
    pub memory: Option<i64>,
    /// `MemoryReservation` (soft limit) in bytes.
    pub memory_reservation: Option<i64>,
    /// `MemorySwap` in bytes (-1 unlimited).
    pub memory_swap: Option<i64>,
    /// `OomScoreAdj`.
    pub oom_score_adj: Option<i64>,
    /// `CpuShares`.
    pub cpu_shares: Option<i64>,
    /// `CpuQuota` in microseconds (-1 none).
    pub cpu_quota: Option<i64>,
    /// `CpuPeriod` in microseconds.
    pub cpu_period: Option<i64>,
    /// `LogConfig`.
    pub log_config: Option<LogConfigSpec>,
}

/// One entry of `Mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Bind or named volume.
    pub kind: MountKind,
    /// Host path (bind) or volume name (volume).
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// Volume driver (volume mounts only).
    pub driver: Option<String>,
    /// Volume driver options (volume mounts only).
    pub driver_options: BTreeMap<String, String>,
    /// Labels Docker puts on a volume it creates for this mount (volume mounts only; an existing
    /// volume keeps its own).
    #[serde(default)]
    pub volume_labels: BTreeMap<String, String>,
}

/// The `Type` of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A named Docker volume.
    Volume,
}

/// One entry of `Devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// `PathOnHost`.
    pub path_on_host: String,
    /// `PathInContainer`.
    pub path_in_container: String,
    /// `CgroupPermissions`, e.g. `rwm`.
    pub cgroup_permissions: String,
}

/// One entry of `Ulimits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UlimitSpec {
    /// Name, e.g. `nofile`.
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// `LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfigSpec {
    /// `Type`, e.g. `json-file`.
    pub driver: String,
    /// `Config`, e.g. `max-size`.
    pub options: BTreeMap<String, String>,
}

impl LogConfigSpec {
    /// `json-file` capped at `max_file` files of `max_size` bytes (Docker's own copy of the output
    /// must not fill the disk while Berth's sandbox copies rotate).
    pub fn json_file(max_size: u64, max_file: u32) -> LogConfigSpec {
        let mut options = BTreeMap::new();
        options.insert("max-size".to_owned(), max_size.max(1).to_string());
        options.insert("max-file".to_owned(), max_file.max(1).to_string());
        LogConfigSpec {
            driver: "json-file".to_owned(),
            options,
        }
    }
}

impl LogConfigSpec {
    /// `local` (raw bytes, so `docker logs` and a log resumed from Docker's copy are byte-exact)
    /// capped at `max_file` files of `max_size` bytes, rotated files not compressed.
    pub fn local(max_size: u64, max_file: u32) -> LogConfigSpec {
        let mut c = LogConfigSpec::json_file(max_size, max_file);
        c.driver = "local".to_owned();
        c.options.insert("compress".to_owned(), "false".to_owned());
        c
    }
}

impl Default for LogConfigSpec {
    /// `local`, 32 MiB x 3, uncompressed (what the logger asks for).
    fn default() -> Self {
        LogConfigSpec::local(32 << 20, 3)
    }
}
