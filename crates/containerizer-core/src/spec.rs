//! What a launch asks for: Mesos's `CommandInfo`, `ContainerInfo` (type DOCKER), resources and
//! limits, gathered in a [`LaunchSpec`].
//!
//! These are plain data, serialisable so the launch can be checkpointed and recovered. Field
//! names and defaults follow Mesos's protobufs (`shell` defaults to true, a URI's `extract` to
//! true); the agent's HTTP layer converts Mesos JSON into them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// Everything one launch needs (Mesos `ContainerConfig` plus the agent's per-container inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// The command to run.
    pub command: CommandInfo,
    /// How to containerize it; `None` or a non-Docker type is answered with
    /// [`Launched::NotSupported`](crate::Launched::NotSupported).
    #[serde(default)]
    pub container: Option<ContainerInfo>,
    /// Requested resources (reservations).
    #[serde(default)]
    pub resources: Resources,
    /// Limits above the requests (Mesos 1.9+).
    #[serde(default)]
    pub limits: Limits,
    /// Mesos's `HealthCheck`, run once the container runs (see [`crate::health`]).
    #[serde(default)]
    pub health_check: Option<crate::health::HealthCheck>,
    /// The sandbox directory on the host (created if missing).
    pub sandbox: PathBuf,
    /// The user the container runs as (overrides the command's user when set).
    #[serde(default)]
    pub user: Option<String>,
    /// The allocation role, exported as `MESOS_ALLOCATION_ROLE` when set.
    #[serde(default)]
    pub role: Option<String>,
    /// Grace between the stop signal and SIGKILL when the container is destroyed; the
    /// containerizer's default when `None`.
    #[serde(default)]
    pub kill_grace: Option<Duration>,
    /// The launch's resources as its caller named them (Mesos `Resource` objects, validated by
    /// the API layer): roles, reservations and revocability included. The containerizer does
    /// not read them (the amounts it enforces are in `resources`); they are checkpointed with
    /// the launch so that they are reported the same after an agent restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported_resources: Vec<serde_json::Value>,
}

impl LaunchSpec {
    /// A spec running `command` in `image` with the sandbox at `sandbox`, host networking and no
    /// resources (the shape most tests start from).
    pub fn docker(
        image: impl Into<String>,
        command: CommandInfo,
        sandbox: impl Into<PathBuf>,
    ) -> LaunchSpec {
        LaunchSpec {
            command,
            container: Some(ContainerInfo::docker(DockerInfo::new(image))),
            resources: Resources::default(),
            limits: Limits::default(),
            health_check: None,
            sandbox: sandbox.into(),
            user: None,
            role: None,
            kill_grace: None,
            reported_resources: Vec::new(),
        }
    }

    /// The Docker part of the container info, if this is a Docker launch.
    pub fn docker_info(&self) -> Option<&DockerInfo> {
        let c = self.container.as_ref()?;
        match c.kind {
            ContainerKind::Docker => c.docker.as_ref(),
            ContainerKind::Mesos => None,
        }
    }

    /// The user the container runs as: the launch's, else the command's.
    pub fn effective_user(&self) -> Option<&str> {
        self.user.as_deref().or(self.command.user.as_deref())
    }
}

/// Mesos `CommandInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The command (a shell line when `shell`, else the first CMD word).
    #[serde(default)]
    pub value: Option<String>,
    /// Run `value` through `/bin/sh -c` (default true, as in Mesos). When false the image's
    /// ENTRYPOINT is kept and `value` + `arguments` become its CMD.
    #[serde(default = "yes")]
    pub shell: bool,
    /// Arguments (only used when `shell` is false).
    #[serde(default)]
    pub arguments: Vec<String>,
    /// Environment variables, in order; a later duplicate wins.
    #[serde(default)]
    pub environment: Vec<EnvVar>,
    /// URIs fetched into the sandbox before the container starts.
    #[serde(default)]
    pub uris: Vec<Uri>,
    /// The user to run as.
    #[serde(default)]
    pub user: Option<String>,
}

impl CommandInfo {
    /// `/bin/sh -c <line>`.
    pub fn shell(line: impl Into<String>) -> CommandInfo {
        CommandInfo {
            value: Some(line.into()),
            ..CommandInfo::image_default()
        }
        .with_shell(true)
    }

    /// No command: the image's ENTRYPOINT and CMD run as they are.
    pub fn image_default() -> CommandInfo {
        CommandInfo {
            value: None,
            shell: false,
            arguments: Vec::new(),
            environment: Vec::new(),
            uris: Vec::new(),
            user: None,
        }
    }

    /// Keeps the image's ENTRYPOINT and replaces its CMD with `value` followed by `arguments`.
    pub fn exec(value: Option<&str>, arguments: &[&str]) -> CommandInfo {
        CommandInfo {
            value: value.map(str::to_owned),
            arguments: arguments.iter().map(|s| (*s).to_owned()).collect(),
            ..CommandInfo::image_default()
        }
    }

    fn with_shell(mut self, shell: bool) -> CommandInfo {
        self.shell = shell;
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> CommandInfo {
        self.environment.push(EnvVar {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a URI to fetch.
    pub fn uri(mut self, uri: Uri) -> CommandInfo {
        self.uris.push(uri);
        self
    }
}

/// One environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Mesos `CommandInfo.URI`, plus a checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uri {
    /// The source (`http(s)://`, `file://`, or an absolute path).
    pub value: String,
    /// Make the fetched file executable (turns extraction off).
    #[serde(default)]
    pub executable: bool,
    /// Extract archives (default true).
    #[serde(default = "yes")]
    pub extract: bool,
    /// Use the fetcher's cache.
    #[serde(default)]
    pub cache: bool,
    /// Name in the sandbox (relative), instead of the URI's basename.
    #[serde(default)]
    pub output_file: Option<String>,
    /// Expected digest, `sha256:<64 hex>`.
    #[serde(default)]
    pub checksum: Option<String>,
}

impl Uri {
    /// A URI with Mesos's defaults (extract on, everything else off).
    pub fn new(value: impl Into<String>) -> Uri {
        Uri {
            value: value.into(),
            executable: false,
            extract: true,
            cache: false,
            output_file: None,
            checksum: None,
        }
    }
}

/// Mesos `ContainerInfo.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerKind {
    /// Docker: handled here.
    Docker,
    /// The Mesos containerizer's type: not supported by this containerizer.
    Mesos,
}

/// Mesos `ContainerInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The container type.
    #[serde(rename = "type")]
    pub kind: ContainerKind,
    /// Docker settings (required for type DOCKER).
    #[serde(default)]
    pub docker: Option<DockerInfo>,
    /// Volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// The container's hostname (not allowed with host networking).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Mesos `TTYInfo.window_size`: the size the container's TTY starts with (only with a TTY).
    #[serde(default)]
    pub tty_window_size: Option<WindowSize>,
}

/// Mesos `TTYInfo.WindowSize`, in character cells (each 1..=65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    /// Height.
    pub rows: u16,
    /// Width.
    pub columns: u16,
}

impl ContainerInfo {
    /// A DOCKER container info.
    pub fn docker(docker: DockerInfo) -> ContainerInfo {
        ContainerInfo {
            kind: ContainerKind::Docker,
            docker: Some(docker),
            volumes: Vec::new(),
            hostname: None,
            tty_window_size: None,
        }
    }
}

/// Mesos `ContainerInfo.DockerInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerInfo {
    /// The image reference.
    pub image: String,
    /// The network (default host, as in Mesos).
    #[serde(default)]
    pub network: Network,
    /// Port mappings (bridge and user networks only).
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// Run privileged (only when the containerizer allows it).
    #[serde(default)]
    pub privileged: bool,
    /// docker-run style options, mapped onto typed API fields.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Pull even when the image is present.
    #[serde(default)]
    pub force_pull_image: bool,
}

impl DockerInfo {
    /// Host networking, nothing else set.
    pub fn new(image: impl Into<String>) -> DockerInfo {
        DockerInfo {
            image: image.into(),
            network: Network::Host,
            port_mappings: Vec::new(),
            privileged: false,
            parameters: Vec::new(),
            force_pull_image: false,
        }
    }

    /// Adds a docker-run style parameter.
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> DockerInfo {
        self.parameters.push(Parameter {
            key: key.into(),
            value: value.into(),
        });
        self
    }
}

/// Mesos `DockerInfo.Network`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Network {
    /// The host's network namespace (Mesos's default).
    #[default]
    Host,
    /// Docker's default bridge.
    Bridge,
    /// No networking.
    None,
    /// A user-defined Docker network, by name.
    User(String),
}

impl Network {
    /// Docker's `NetworkMode` value.
    pub fn docker_mode(&self) -> &str {
        match self {
            Network::Host => "host",
            Network::Bridge => "bridge",
            Network::None => "none",
            Network::User(name) => name,
        }
    }
}

/// A port mapping from a host port to a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host port (must be in the container's `ports` resources).
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A docker-run style `--key=value` option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// The option name without dashes, e.g. `cap-add`.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Mesos `Volume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Path in the container; a relative path is under the mapped sandbox.
    pub container_path: String,
    /// Path on the host; a relative path is inside the sandbox, an absolute one must be under a
    /// root the containerizer allows.
    #[serde(default)]
    pub host_path: Option<String>,
    /// Read-write or read-only.
    #[serde(default)]
    pub mode: VolumeMode,
    /// A named Docker volume instead of a host path.
    #[serde(default)]
    pub source: Option<VolumeSource>,
}

/// Volume access mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VolumeMode {
    /// Read-write.
    #[default]
    Rw,
    /// Read-only.
    Ro,
}

/// Mesos `Volume.Source` (only the DOCKER_VOLUME kind is meaningful here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VolumeSource {
    /// A named Docker volume, created by Docker on first use with `driver`.
    DockerVolume {
        /// The volume name.
        name: String,
        /// The volume driver (Docker's `local` when `None`).
        #[serde(default)]
        driver: Option<String>,
        /// Driver options.
        #[serde(default)]
        driver_options: BTreeMap<String, String>,
    },
}

/// Requested resources.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory in MiB (Mesos's `mem` unit).
    #[serde(default)]
    pub mem_mb: Option<f64>,
    /// Host port ranges (inclusive) the container may map.
    #[serde(default)]
    pub ports: Vec<PortRange>,
}

impl Resources {
    /// Memory in bytes.
    pub fn mem_bytes(&self) -> Option<u64> {
        self.mem_mb.map(mb_to_bytes)
    }

    /// Whether `port` is in one of the `ports` ranges.
    pub fn has_port(&self, port: u16) -> bool {
        self.ports.iter().any(|r| r.begin <= port && port <= r.end)
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub begin: u16,
    /// Last port (inclusive).
    pub end: u16,
}

/// Limits above the requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// CPU limit.
    #[serde(default)]
    pub cpus: Option<Limit>,
    /// Memory limit in MiB.
    #[serde(default)]
    pub mem_mb: Option<Limit>,
}

/// One resource limit: a value, or explicitly none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// At most this much.
    Finite(f64),
    /// No limit at all (Mesos's infinite limit).
    Infinite,
}

/// MiB (Mesos `mem`) to bytes, rounding down.
pub(crate) fn mb_to_bytes(mb: f64) -> u64 {
    (mb * 1024.0 * 1024.0).max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_defaults_apply_when_fields_are_missing() {
        let c: CommandInfo = serde_json::from_str(r#"{"value":"true"}"#).unwrap();
        assert!(c.shell, "shell defaults to true as in Mesos");
        let u: Uri = serde_json::from_str(r#"{"value":"http://x/a.tgz"}"#).unwrap();
        assert!(u.extract && !u.executable && !u.cache);
        let d: DockerInfo = serde_json::from_str(r#"{"image":"busybox"}"#).unwrap();
        assert_eq!(d.network, Network::Host);
    }

    #[test]
    fn launch_spec_round_trips_through_json() {
        let mut spec = LaunchSpec::docker(
            "busybox",
            CommandInfo::shell("sleep 1").env("A", "b"),
            "/tmp/s",
        );
        spec.limits.mem_mb = Some(Limit::Infinite);
        spec.limits.cpus = Some(Limit::Finite(2.0));
        spec.resources.ports.push(PortRange {
            begin: 31000,
            end: 31010,
        });
        let json = serde_json::to_string(&spec).unwrap();
        let back: LaunchSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        assert!(back.resources.has_port(31005) && !back.resources.has_port(31011));
    }

    #[test]
    fn only_docker_specs_have_docker_info() {
        let mut spec = LaunchSpec::docker("busybox", CommandInfo::shell("true"), "/tmp/s");
        assert!(spec.docker_info().is_some());
        spec.container.as_mut().unwrap().kind = ContainerKind::Mesos;
        assert!(spec.docker_info().is_none());
        spec.container = None;
        assert!(spec.docker_info().is_none());
    }
}
