//! Types of the system calls: ping, version, info, events.

use std::collections::HashMap;

use serde::Deserialize;

use crate::query::Filters;
use crate::version::ApiVersion;

/// What `/_ping` reports in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ping {
    /// The daemon's (maximum) API version, from the `API-Version` header.
    pub api_version: Option<ApiVersion>,
    /// The daemon's OS (`linux`, `windows`), from `OSType`.
    pub os_type: Option<String>,
    /// Whether experimental features are on, from `Docker-Experimental`.
    pub experimental: bool,
    /// The default builder (`1` or `2`), from `Builder-Version`.
    pub builder_version: Option<String>,
}

/// The daemon's version (`GET /version`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Version {
    /// Engine version, e.g. `20.10.24+dfsg1`.
    #[serde(default)]
    pub version: String,
    /// Maximum API version, e.g. `1.41`.
    #[serde(default)]
    pub api_version: String,
    /// Minimum API version the daemon accepts.
    #[serde(default, rename = "MinAPIVersion")]
    pub min_api_version: Option<String>,
    /// Git commit of the build.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Go version of the build.
    #[serde(default)]
    pub go_version: Option<String>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub arch: Option<String>,
    /// Host kernel version.
    #[serde(default)]
    pub kernel_version: Option<String>,
    /// Build time.
    #[serde(default)]
    pub build_time: Option<String>,
    /// Versions of the engine's components (containerd, runc, ...).
    #[serde(default)]
    pub components: Option<Vec<VersionComponent>>,
}

/// One component in [`Version::components`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct VersionComponent {
    /// Component name (`Engine`, `containerd`, `runc`, ...).
    pub name: String,
    /// Its version.
    pub version: String,
}

/// System-wide information (`GET /info`). Only commonly used fields are typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Info {
    /// Daemon ID.
    #[serde(default, rename = "ID")]
    pub id: Option<String>,
    /// Host name.
    #[serde(default)]
    pub name: Option<String>,
    /// Engine version.
    #[serde(default)]
    pub server_version: Option<String>,
    /// Number of containers.
    #[serde(default)]
    pub containers: u64,
    /// Running containers.
    #[serde(default)]
    pub containers_running: u64,
    /// Paused containers.
    #[serde(default)]
    pub containers_paused: u64,
    /// Stopped containers.
    #[serde(default)]
    pub containers_stopped: u64,
    /// Number of images.
    #[serde(default)]
    pub images: u64,
    /// Storage driver.
    #[serde(default)]
    pub driver: Option<String>,
    /// Root of the daemon's data.
    #[serde(default)]
    pub docker_root_dir: Option<String>,
    /// Default logging driver.
    #[serde(default)]
    pub logging_driver: Option<String>,
    /// Cgroup driver (`cgroupfs`, `systemd`).
    #[serde(default)]
    pub cgroup_driver: Option<String>,
    /// Cgroup version (`1`, `2`).
    #[serde(default)]
    pub cgroup_version: Option<String>,
    /// Host kernel version.
    #[serde(default)]
    pub kernel_version: Option<String>,
    /// Host operating system.
    #[serde(default)]
    pub operating_system: Option<String>,
    /// OS type (`linux`).
    #[serde(default, rename = "OSType")]
    pub os_type: Option<String>,
    /// Host architecture.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Number of CPUs.
    #[serde(default, rename = "NCPU")]
    pub ncpu: u64,
    /// Total memory in bytes.
    #[serde(default)]
    pub mem_total: u64,
    /// Whether memory limits are supported.
    #[serde(default)]
    pub memory_limit: bool,
    /// Whether swap limits are supported.
    #[serde(default)]
    pub swap_limit: bool,
    /// Whether CFS quotas are supported.
    #[serde(default)]
    pub cpu_cfs_quota: bool,
    /// Whether PID limits are supported.
    #[serde(default)]
    pub pids_limit: bool,
    /// Default OCI runtime.
    #[serde(default)]
    pub default_runtime: Option<String>,
    /// Security options (`name=seccomp,profile=default`, ...).
    #[serde(default)]
    pub security_options: Option<Vec<String>>,
    /// Registry settings (insecure CIDRs, mirrors).
    #[serde(default)]
    pub registry_config: Option<RegistryConfig>,
    /// Warnings about the daemon's setup.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

/// Registry settings of the daemon.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RegistryConfig {
    /// Networks whose registries are used over plain HTTP.
    #[serde(default, rename = "InsecureRegistryCIDRs")]
    pub insecure_registry_cidrs: Option<Vec<String>>,
    /// Registry mirrors.
    #[serde(default)]
    pub mirrors: Option<Vec<String>>,
}

/// Options of [`Docker::events`](crate::Docker::events).
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    /// Only events at or after this time (sub-second precision is kept).
    pub since: Option<std::time::SystemTime>,
    /// Stop at this time (the stream ends then).
    pub until: Option<std::time::SystemTime>,
    /// Filters such as `type=container`, `label=k=v`, `event=die`, `container=<id>`.
    pub filters: Filters,
}

/// One daemon event.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// Object type: `container`, `image`, `network`, `volume`, ...
    #[serde(default, rename = "Type")]
    pub kind: String,
    /// What happened: `create`, `start`, `die`, `pull`, `exec_start: sh -c ...`, ...
    #[serde(default, rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(default, rename = "Actor")]
    pub actor: EventActor,
    /// `local` or `swarm`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Unix time in seconds.
    #[serde(default)]
    pub time: i64,
    /// Unix time in nanoseconds.
    #[serde(default, rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// The event's time.
    pub fn timestamp(&self) -> std::time::SystemTime {
        let nanos = if self.time_nano > 0 {
            self.time_nano
        } else {
            self.time.saturating_mul(1_000_000_000)
        };
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos.max(0) as u64)
    }
}

/// The object an [`Event`] is about.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventActor {
    /// Its ID.
    #[serde(default, rename = "ID")]
    pub id: String,
    /// Its attributes (for containers: labels, `name`, `image`, `exitCode` on `die`, ...).
    #[serde(default, rename = "Attributes")]
    pub attributes: HashMap<String, String>,
}
