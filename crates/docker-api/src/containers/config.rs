//! What a container is created with: its configuration and [`HostConfig`].
//!
//! Every field is optional and omitted when `None`, so the daemon's (or the image's) default
//! applies. The same types come back from inspect.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// An empty JSON object, the value type of `ExposedPorts` and `Volumes` maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A container's configuration: the body of `POST /containers/create`, and `Config` in inspect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Image reference or ID.
    #[serde(rename = "Image", default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Command (arguments to the entrypoint); `None` keeps the image's `CMD`.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint; `None` keeps the image's; `Some(vec!["".into()])` clears it.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// Environment, `KEY=value` each.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Labels.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<HashMap<String, String>>,
    /// User (`name`, `uid`, `uid:gid`).
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// Host name.
    #[serde(rename = "Hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Domain name.
    #[serde(
        rename = "Domainname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub domainname: Option<String>,
    /// Allocate a TTY (output is then one raw stream, not multiplexed).
    #[serde(rename = "Tty", default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Keep stdin open for attach.
    #[serde(rename = "OpenStdin", default, skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    /// Close stdin after the first attach disconnects.
    #[serde(rename = "StdinOnce", default, skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    /// Attach stdin (used by `docker run -i`).
    #[serde(
        rename = "AttachStdin",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub attach_stdin: Option<bool>,
    /// Attach stdout.
    #[serde(
        rename = "AttachStdout",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub attach_stdout: Option<bool>,
    /// Attach stderr.
    #[serde(
        rename = "AttachStderr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub attach_stderr: Option<bool>,
    /// Exposed ports, `80/tcp` → `{}`.
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<HashMap<String, Empty>>,
    /// Anonymous volumes, path → `{}`.
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<HashMap<String, Empty>>,
    /// Signal that stops the container (`SIGTERM`).
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Seconds between the stop signal and SIGKILL.
    #[serde(
        rename = "StopTimeout",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_timeout: Option<i64>,
    /// Health check.
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<HealthConfig>,
    /// Disable networking.
    #[serde(
        rename = "NetworkDisabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_disabled: Option<bool>,
    /// Shell for shell-form instructions.
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Host-side settings (create only; inspect reports them beside `Config`).
    #[serde(
        rename = "HostConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub host_config: Option<HostConfig>,
    /// Networks to connect at create (create only).
    #[serde(
        rename = "NetworkingConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub networking_config: Option<NetworkingConfig>,
}

/// A health check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["CMD", args...]`, `["CMD-SHELL", command]` or `["NONE"]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Nanoseconds between checks.
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Nanoseconds before a check counts as failed.
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Failures before unhealthy.
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Nanoseconds of start-up grace.
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_period: Option<i64>,
}

/// Host-side settings of a container: mounts, ports, network, privileges, resources, logging.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostConfig {
    /// Bind mounts, `host:container[:ro]`.
    #[serde(rename = "Binds", default, skip_serializing_if = "Option::is_none")]
    pub binds: Option<Vec<String>>,
    /// Mounts (bind, volume, tmpfs).
    #[serde(rename = "Mounts", default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    /// Port bindings, `80/tcp` → host addresses.
    #[serde(
        rename = "PortBindings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub port_bindings: Option<HashMap<String, Vec<PortBinding>>>,
    /// Publish all exposed ports on random host ports.
    #[serde(
        rename = "PublishAllPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub publish_all_ports: Option<bool>,
    /// `bridge`, `host`, `none`, `container:<id>` or a network name.
    #[serde(
        rename = "NetworkMode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_mode: Option<String>,
    /// Give extended privileges.
    #[serde(
        rename = "Privileged",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub privileged: Option<bool>,
    /// Capabilities to add (`NET_ADMIN`).
    #[serde(rename = "CapAdd", default, skip_serializing_if = "Option::is_none")]
    pub cap_add: Option<Vec<String>>,
    /// Capabilities to drop (`ALL`).
    #[serde(rename = "CapDrop", default, skip_serializing_if = "Option::is_none")]
    pub cap_drop: Option<Vec<String>>,
    /// Devices to expose.
    #[serde(rename = "Devices", default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<DeviceMapping>>,
    /// DNS servers.
    #[serde(rename = "Dns", default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<String>>,
    /// DNS options.
    #[serde(
        rename = "DnsOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_options: Option<Vec<String>>,
    /// DNS search domains.
    #[serde(rename = "DnsSearch", default, skip_serializing_if = "Option::is_none")]
    pub dns_search: Option<Vec<String>>,
    /// Extra `/etc/hosts` lines, `name:ip`.
    #[serde(
        rename = "ExtraHosts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub extra_hosts: Option<Vec<String>>,
    /// Resource limits.
    #[serde(rename = "Ulimits", default, skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Ulimit>>,
    /// Size of `/dev/shm` in bytes.
    #[serde(rename = "ShmSize", default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Maximum number of processes (0 or -1: unlimited).
    #[serde(rename = "PidsLimit", default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Memory limit in bytes.
    #[serde(rename = "Memory", default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Soft memory limit in bytes.
    #[serde(
        rename = "MemoryReservation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit in bytes; -1 for unlimited swap.
    #[serde(
        rename = "MemorySwap",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_swap: Option<i64>,
    /// Swappiness, 0-100.
    #[serde(
        rename = "MemorySwappiness",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_swappiness: Option<i64>,
    /// OOM score adjustment, -1000 to 1000.
    #[serde(
        rename = "OomScoreAdj",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub oom_score_adj: Option<i64>,
    /// Disable the OOM killer.
    #[serde(
        rename = "OomKillDisable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub oom_kill_disable: Option<bool>,
    /// Relative CPU weight (1024 = one CPU's share).
    #[serde(rename = "CpuShares", default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CFS quota in microseconds per period.
    #[serde(rename = "CpuQuota", default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[serde(rename = "CpuPeriod", default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// CPU limit in billionths of a CPU.
    #[serde(rename = "NanoCpus", default, skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    /// CPUs allowed (`0-1`).
    #[serde(
        rename = "CpusetCpus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[serde(
        rename = "CpusetMems",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpuset_mems: Option<String>,
    /// Logging driver and options.
    #[serde(rename = "LogConfig", default, skip_serializing_if = "Option::is_none")]
    pub log_config: Option<LogConfig>,
    /// Run an init process (tini) as PID 1.
    #[serde(rename = "Init", default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Mount the root filesystem read-only.
    #[serde(
        rename = "ReadonlyRootfs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub readonly_rootfs: Option<bool>,
    /// tmpfs mounts, path → options (`size=64m`).
    #[serde(rename = "Tmpfs", default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<HashMap<String, String>>,
    /// What the daemon does when the container exits.
    #[serde(
        rename = "RestartPolicy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_policy: Option<RestartPolicy>,
    /// Remove the container when it exits (its exit state is then lost).
    #[serde(
        rename = "AutoRemove",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_remove: Option<bool>,
    /// Security options (`no-new-privileges`, `seccomp=...`).
    #[serde(
        rename = "SecurityOpt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub security_opt: Option<Vec<String>>,
    /// Namespaced kernel parameters.
    #[serde(rename = "Sysctls", default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<HashMap<String, String>>,
    /// IPC namespace mode.
    #[serde(rename = "IpcMode", default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    /// PID namespace mode.
    #[serde(rename = "PidMode", default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    /// UTS namespace mode.
    #[serde(rename = "UTSMode", default, skip_serializing_if = "Option::is_none")]
    pub uts_mode: Option<String>,
    /// User namespace mode.
    #[serde(
        rename = "UsernsMode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub userns_mode: Option<String>,
    /// Extra groups for the process.
    #[serde(rename = "GroupAdd", default, skip_serializing_if = "Option::is_none")]
    pub group_add: Option<Vec<String>>,
    /// OCI runtime.
    #[serde(rename = "Runtime", default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Containers to take volumes from.
    #[serde(
        rename = "VolumesFrom",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub volumes_from: Option<Vec<String>>,
}

/// A mount in [`HostConfig::mounts`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Host path (bind) or volume name.
    #[serde(rename = "Source", default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Path in the container.
    #[serde(rename = "Target", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Mount read-only.
    #[serde(rename = "ReadOnly", default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Options of bind mounts.
    #[serde(
        rename = "BindOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bind_options: Option<BindOptions>,
    /// Options of tmpfs mounts.
    #[serde(
        rename = "TmpfsOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tmpfs_options: Option<TmpfsOptions>,
    /// Options of volume mounts: the driver that creates a named volume on first use, and its
    /// options.
    #[serde(
        rename = "VolumeOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub volume_options: Option<VolumeOptions>,
}

/// Options of a volume mount (`Mount.VolumeOptions`).
///
/// ```
/// use berth_docker_api::{Mount, VolumeOptions, VolumeDriver};
///
/// // A named volume the `local` driver backs with a tmpfs, created on first use.
/// let mount = Mount {
///     kind: Some("volume".into()),
///     source: Some("scratch".into()),
///     target: Some("/scratch".into()),
///     volume_options: Some(VolumeOptions {
///         driver_config: Some(VolumeDriver {
///             name: Some("local".into()),
///             options: [("type", "tmpfs"), ("device", "tmpfs")]
///                 .into_iter()
///                 .map(|(k, v)| (k.to_owned(), v.to_owned()))
///                 .collect(),
///         }),
///         ..Default::default()
///     }),
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&mount).unwrap();
/// assert_eq!(json["VolumeOptions"]["DriverConfig"]["Options"]["type"], "tmpfs");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeOptions {
    /// Do not copy the image's files at the mount point into a new volume.
    #[serde(rename = "NoCopy", default, skip_serializing_if = "Option::is_none")]
    pub no_copy: Option<bool>,
    /// Labels of a volume created by this mount.
    #[serde(rename = "Labels", default, skip_serializing_if = "HashMap::is_empty")]
    pub labels: HashMap<String, String>,
    /// The driver that creates the volume, and its options.
    #[serde(
        rename = "DriverConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub driver_config: Option<VolumeDriver>,
}

/// A volume driver and its options (`Mount.VolumeOptions.DriverConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeDriver {
    /// Driver name, e.g. `local`.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver-specific options, e.g. `type=tmpfs`, `device=tmpfs` for `local`.
    #[serde(rename = "Options", default, skip_serializing_if = "HashMap::is_empty")]
    pub options: HashMap<String, String>,
}

/// Options of a bind mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindOptions {
    /// `private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`.
    #[serde(
        rename = "Propagation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub propagation: Option<String>,
}

/// Options of a tmpfs mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TmpfsOptions {
    /// Size limit in bytes.
    #[serde(rename = "SizeBytes", default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Permission bits.
    #[serde(rename = "Mode", default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<i64>,
}

/// A host address a container port is published on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortBinding {
    /// Host IP (empty: all).
    #[serde(rename = "HostIp", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Host port (empty: chosen by the daemon).
    #[serde(rename = "HostPort", default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<String>,
}

/// A host device made visible in the container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceMapping {
    /// Device path on the host.
    #[serde(
        rename = "PathOnHost",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub path_on_host: Option<String>,
    /// Path in the container.
    #[serde(
        rename = "PathInContainer",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub path_in_container: Option<String>,
    /// `rwm` subset.
    #[serde(
        rename = "CgroupPermissions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cgroup_permissions: Option<String>,
}

/// A resource limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Limit name (`nofile`, `nproc`, ...).
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Soft limit.
    #[serde(rename = "Soft", default, skip_serializing_if = "Option::is_none")]
    pub soft: Option<i64>,
    /// Hard limit.
    #[serde(rename = "Hard", default, skip_serializing_if = "Option::is_none")]
    pub hard: Option<i64>,
}

/// Logging driver settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Driver (`json-file`, `local`, `none`, ...).
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Driver options (`max-size`, `max-file`, ...).
    #[serde(rename = "Config", default, skip_serializing_if = "Option::is_none")]
    pub config: Option<HashMap<String, String>>,
}

/// A restart policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped` or `on-failure`.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Retries for `on-failure`.
    #[serde(
        rename = "MaximumRetryCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub maximum_retry_count: Option<i64>,
}

/// Networks to connect a container to at create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkingConfig {
    /// Network name → endpoint settings.
    #[serde(
        rename = "EndpointsConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoints_config: Option<HashMap<String, EndpointSettings>>,
}

/// A container's endpoint on one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSettings {
    /// DNS aliases.
    #[serde(rename = "Aliases", default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// Network ID.
    #[serde(rename = "NetworkID", default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Endpoint ID.
    #[serde(
        rename = "EndpointID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint_id: Option<String>,
    /// Gateway address.
    #[serde(rename = "Gateway", default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// IPv4 address.
    #[serde(rename = "IPAddress", default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// IPv4 prefix length.
    #[serde(
        rename = "IPPrefixLen",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_prefix_len: Option<i64>,
    /// IPv6 address.
    #[serde(
        rename = "GlobalIPv6Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub global_ipv6_address: Option<String>,
    /// MAC address.
    #[serde(
        rename = "MacAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_address: Option<String>,
}
