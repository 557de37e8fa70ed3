//! What the daemon reports about containers: inspect, list, wait, top, create and update results.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize};

use super::config::{ContainerConfig, EndpointSettings, HostConfig, PortBinding};
use crate::query::Filters;
use crate::serde_util::null_default;
use crate::time::parse_rfc3339;

/// A container's details (`GET /containers/{id}/json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ContainerInspect {
    /// Full ID.
    #[serde(default)]
    pub id: String,
    /// Name, with Docker's leading `/`.
    #[serde(default)]
    pub name: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// Process path.
    #[serde(default)]
    pub path: Option<String>,
    /// Process arguments.
    #[serde(default, deserialize_with = "null_default")]
    pub args: Vec<String>,
    /// Runtime state.
    #[serde(default)]
    pub state: ContainerState,
    /// Image ID.
    #[serde(default)]
    pub image: String,
    /// Path of the json-file log, when that driver is used.
    #[serde(default)]
    pub log_path: Option<String>,
    /// Times the daemon restarted it.
    #[serde(default)]
    pub restart_count: i64,
    /// Storage driver.
    #[serde(default)]
    pub driver: Option<String>,
    /// IDs of its exec instances.
    #[serde(default, rename = "ExecIDs", deserialize_with = "null_default")]
    pub exec_ids: Vec<String>,
    /// Configuration.
    #[serde(default)]
    pub config: ContainerConfig,
    /// Host settings.
    #[serde(default)]
    pub host_config: HostConfig,
    /// Network settings and addresses.
    #[serde(default)]
    pub network_settings: NetworkSettings,
    /// Mounts.
    #[serde(default, deserialize_with = "null_default")]
    pub mounts: Vec<MountPoint>,
}

impl ContainerInspect {
    /// The name without Docker's leading `/`.
    pub fn short_name(&self) -> &str {
        self.name.strip_prefix('/').unwrap_or(&self.name)
    }

    /// Whether the container has a TTY (its output is then raw, not multiplexed).
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
}

/// A container's lifecycle status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContainerStatus {
    /// Created, never started.
    #[default]
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited.
    Exited,
    /// Dead (removal failed half-way).
    Dead,
    /// A status this crate does not know.
    Other(String),
}

impl<'de> Deserialize<'de> for ContainerStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ContainerStatus, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "created" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "paused" => ContainerStatus::Paused,
            "restarting" => ContainerStatus::Restarting,
            "removing" => ContainerStatus::Removing,
            "exited" => ContainerStatus::Exited,
            "dead" => ContainerStatus::Dead,
            _ => ContainerStatus::Other(s),
        })
    }
}

/// A container's runtime state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ContainerState {
    /// Status.
    #[serde(default)]
    pub status: ContainerStatus,
    /// Whether it runs (paused containers run too).
    #[serde(default)]
    pub running: bool,
    /// Whether it is paused.
    #[serde(default)]
    pub paused: bool,
    /// Whether it is restarting.
    #[serde(default)]
    pub restarting: bool,
    /// Whether the kernel's OOM killer killed a process of it. Read this after it exits; never
    /// infer OOM from exit code 137 (any SIGKILL gives 137).
    #[serde(default, rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Whether it is dead.
    #[serde(default)]
    pub dead: bool,
    /// Host PID of its main process (0 when not running).
    #[serde(default)]
    pub pid: i64,
    /// Exit code of the last run.
    #[serde(default)]
    pub exit_code: i64,
    /// Why the daemon could not start or run it, e.g. a missing executable.
    #[serde(default)]
    pub error: String,
    /// Start time of the last run (RFC 3339; Go's zero time when never started).
    #[serde(default)]
    pub started_at: String,
    /// End time of the last run (RFC 3339; Go's zero time while running).
    #[serde(default)]
    pub finished_at: String,
    /// Health, when the container has a health check.
    #[serde(default)]
    pub health: Option<Health>,
}

impl ContainerState {
    /// [`started_at`](Self::started_at) parsed; `None` if it never started.
    pub fn started(&self) -> Option<SystemTime> {
        parse_rfc3339(&self.started_at)
    }

    /// [`finished_at`](Self::finished_at) parsed; `None` if it has not finished.
    pub fn finished(&self) -> Option<SystemTime> {
        parse_rfc3339(&self.finished_at)
    }
}

/// Health-check state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    #[serde(default)]
    pub status: String,
    /// Consecutive failures.
    #[serde(default)]
    pub failing_streak: i64,
    /// Recent results.
    #[serde(default, deserialize_with = "null_default")]
    pub log: Vec<HealthResult>,
}

/// One health-check run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct HealthResult {
    /// Start (RFC 3339).
    #[serde(default)]
    pub start: String,
    /// End (RFC 3339).
    #[serde(default)]
    pub end: String,
    /// Exit code.
    #[serde(default)]
    pub exit_code: i64,
    /// Output.
    #[serde(default)]
    pub output: String,
}

/// A container's network settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NetworkSettings {
    /// Published ports, `80/tcp` → host addresses (`None` when exposed but not published).
    #[serde(default, deserialize_with = "null_default")]
    pub ports: HashMap<String, Option<Vec<PortBinding>>>,
    /// Sandbox key (network namespace path).
    #[serde(default)]
    pub sandbox_key: Option<String>,
    /// IPv4 address on the default bridge (deprecated by Docker in favour of `networks`).
    #[serde(default, rename = "IPAddress")]
    pub ip_address: Option<String>,
    /// Gateway on the default bridge (deprecated by Docker in favour of `networks`).
    #[serde(default)]
    pub gateway: Option<String>,
    /// The networks it is connected to, by name.
    #[serde(default, deserialize_with = "null_default")]
    pub networks: HashMap<String, EndpointSettings>,
}

impl NetworkSettings {
    /// The container's IPv4 addresses across networks (non-empty ones).
    pub fn ip_addresses(&self) -> Vec<&str> {
        let mut ips: Vec<&str> = self
            .networks
            .values()
            .filter_map(|n| n.ip_address.as_deref())
            .filter(|ip| !ip.is_empty())
            .collect();
        ips.sort_unstable();
        ips
    }
}

/// A mount as inspect reports it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(default, rename = "Type")]
    pub kind: String,
    /// Volume name.
    #[serde(default)]
    pub name: Option<String>,
    /// Host path.
    #[serde(default)]
    pub source: String,
    /// Path in the container.
    #[serde(default)]
    pub destination: String,
    /// Writable.
    #[serde(default, rename = "RW")]
    pub rw: bool,
}

/// One container of a list (`GET /containers/json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ContainerSummary {
    /// Full ID.
    #[serde(default)]
    pub id: String,
    /// Names, each with a leading `/`.
    #[serde(default, deserialize_with = "null_default")]
    pub names: Vec<String>,
    /// Image as given at create.
    #[serde(default)]
    pub image: String,
    /// Image ID.
    #[serde(default, rename = "ImageID")]
    pub image_id: String,
    /// Command.
    #[serde(default)]
    pub command: String,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// Status.
    #[serde(default)]
    pub state: ContainerStatus,
    /// Human-readable status (`Exited (0) 2 seconds ago`).
    #[serde(default)]
    pub status: String,
    /// Labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: HashMap<String, String>,
}

/// Options of [`Containers::list`](crate::Containers::list).
#[derive(Debug, Clone, Default)]
pub struct ListContainersOptions {
    /// Include stopped containers.
    pub all: bool,
    /// At most this many, newest first.
    pub limit: Option<u32>,
    /// Filters: `label=k=v`, `name=`, `status=exited`, `id=`, `ancestor=` ...
    pub filters: Filters,
}

/// What create reports.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CreatedContainer {
    /// The new container's ID.
    pub id: String,
    /// Warnings (e.g. a limit the kernel cannot enforce).
    #[serde(default, deserialize_with = "null_default")]
    pub warnings: Vec<String>,
}

/// What [`Containers::wait`](crate::Containers::wait) waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WaitCondition {
    /// Until it is not running (returns at once for a stopped container).
    #[default]
    NotRunning,
    /// Until its next exit.
    NextExit,
    /// Until it is removed.
    Removed,
}

impl WaitCondition {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WaitCondition::NotRunning => "not-running",
            WaitCondition::NextExit => "next-exit",
            WaitCondition::Removed => "removed",
        }
    }
}

/// How a container ended. A non-zero `status_code` is data, not an error.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct WaitResponse {
    /// Exit code.
    pub status_code: i64,
    /// Set when the daemon failed to wait (not when the process failed).
    #[serde(default)]
    pub error: Option<WaitError>,
}

/// The daemon's failure to wait.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct WaitError {
    /// Message.
    #[serde(default)]
    pub message: String,
}

/// Options of [`Containers::remove`](crate::Containers::remove).
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveContainerOptions {
    /// Kill it first if it runs.
    pub force: bool,
    /// Remove its anonymous volumes too.
    pub volumes: bool,
}

/// Processes in a container (`GET /containers/{id}/top`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Top {
    /// Column titles (`UID`, `PID`, `CMD`, ...).
    #[serde(default, deserialize_with = "null_default")]
    pub titles: Vec<String>,
    /// One row per process.
    #[serde(default, deserialize_with = "null_default")]
    pub processes: Vec<Vec<String>>,
}

impl Top {
    /// The values of column `title`, one per process.
    pub fn column(&self, title: &str) -> Option<Vec<&str>> {
        let i = self.titles.iter().position(|t| t == title)?;
        Some(
            self.processes
                .iter()
                .filter_map(|p| p.get(i).map(String::as_str))
                .collect(),
        )
    }
}

/// Resources to change on a live container (`POST /containers/{id}/update`).
///
/// When raising memory past the current swap limit, set `memory_swap` too (or -1): the kernel
/// refuses a memory limit above memory+swap.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateResources {
    /// Memory limit in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Soft memory limit in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap in bytes; -1 for unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// CPU weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CFS quota (µs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// CFS period (µs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// CPU limit in billionths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    /// CPUs allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// Process limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Restart policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<super::config::RestartPolicy>,
}

/// What update reports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct UpdateResult {
    /// Warnings.
    #[serde(default, deserialize_with = "null_default")]
    pub warnings: Vec<String>,
}
