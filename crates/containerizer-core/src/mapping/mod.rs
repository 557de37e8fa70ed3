//! The Docker mapping: a [`LaunchSpec`] to a [`CreateSpec`], Mesos's `RunOptions` done on the API.
//!
//! Errors are [`SpecError`]s; their texts follow Mesos's `RunOptions::create` where Mesos has one,
//! and always name the offending value.

pub mod create;
pub mod params;
pub mod policy;
pub mod resources;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use create::{
    CreateSpec, DeviceSpec, HostSpec, LogConfigSpec, MountKind, MountSpec, UlimitSpec,
};
pub use params::{SUPPORTED_PARAMETERS, ULIMITS};
pub use policy::Allowances;
pub use resources::{cgroup_settings, check_memory, CgroupSettings};
pub use volumes::VolumePlan;

use crate::id::{AgentId, ContainerId};
use crate::labels;
use crate::spec::{LaunchSpec, Network, WindowSize};

/// A launch spec that cannot be mapped onto Docker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The user to run as cannot be resolved on the agent's host, so the sandbox cannot be
    /// given to it.
    #[error("field 'command.user': user '{user}' cannot be resolved on the agent host ({reason}); the sandbox and its log files are given to this user, so give a name from the host's /etc/passwd or a numeric uid[:gid]")]
    UnknownUser {
        /// The user given.
        user: String,
        /// Why it cannot be resolved.
        reason: String,
    },
    /// A DOCKER container info without its docker part.
    #[error("No docker info found in container info")]
    NoDockerInfo,
    /// The image reference is empty.
    #[error("the Docker image name is empty")]
    EmptyImage,
    /// `shell=true` with no command.
    #[error("Shell specified but no command value provided")]
    ShellWithoutCommand,
    /// A volume with two relative paths.
    #[error("Both host_path '{host}' and container_path '{container}' of a volume are relative")]
    BothPathsRelative {
        /// The host path.
        host: String,
        /// The container path.
        container: String,
    },
    /// A volume with neither host path nor source.
    #[error("Host path or volume source is required (volume at '{container_path}')")]
    NoVolumeSource {
        /// The container path.
        container_path: String,
    },
    /// A bad volume path.
    #[error("volume path '{path}': {reason}")]
    BadVolume {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An absolute host path outside the allowed roots.
    #[error("host path '{path}' is not under a root this agent allows; allowed roots: {allowed}")]
    HostPathNotAllowed {
        /// The path.
        path: String,
        /// The allowed roots.
        allowed: String,
    },
    /// One Docker volume name with two drivers.
    #[error("Docker volume '{name}' is used with two drivers: '{first}' and '{second}'")]
    ConflictingVolumeDrivers {
        /// The volume.
        name: String,
        /// The first driver.
        first: String,
        /// The second driver.
        second: String,
    },
    /// One Docker volume name with two sets of driver options.
    #[error(
        "Docker volume '{name}' is used with two sets of driver options: '{first}' and '{second}'"
    )]
    ConflictingVolumeOptions {
        /// The volume.
        name: String,
        /// The first options.
        first: String,
        /// The second options.
        second: String,
    },
    /// A hostname with host networking.
    #[error("Unable to set hostname with host network mode")]
    HostnameWithHostNetwork,
    /// A TTY window size without a TTY, or with a zero dimension.
    #[error("field 'container.tty_info.{field}': {reason}")]
    BadWindowSize {
        /// `window_size`, `window_size.rows` or `window_size.columns`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Port mappings with host or none networking.
    #[error("Port mappings are only supported for bridge and user-defined networks (the network is '{network}')")]
    PortMappingNetwork {
        /// The network mode.
        network: String,
    },
    /// A host port outside the `ports` resources.
    #[error("Port [{port}] not included in resources")]
    PortNotInResources {
        /// The host port.
        port: u16,
    },
    /// A port mapping protocol other than tcp/udp/sctp.
    #[error("port mapping protocol '{protocol}' is not one of tcp, udp, sctp")]
    BadProtocol {
        /// The protocol.
        protocol: String,
    },
    /// `privileged` on an agent that does not allow it.
    #[error("privileged containers are not allowed on this agent")]
    PrivilegedNotAllowed,
    /// An unknown `parameters` key.
    #[error("unknown Docker parameter '{key}'; supported parameters: {supported}")]
    UnknownParameter {
        /// The key.
        key: String,
        /// The supported keys.
        supported: String,
    },
    /// A parameter with a bad value.
    #[error("Docker parameter '{key}={value}': {reason}")]
    BadParameter {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An attempt to set one of Berth's ownership labels.
    #[error("label '{key}' is reserved for Berth's own use")]
    ReservedLabel {
        /// The label key.
        key: String,
    },
    /// Something only the operator may allow (a capability, a device, a security option, a
    /// volume that reaches the host, ...).
    #[error("{what} is not allowed on this agent: {why}; the operator can allow it with {flag}")]
    NotAllowed {
        /// What was asked for, e.g. `Docker parameter 'cap-add=SYS_ADMIN'`.
        what: String,
        /// Why it needs the operator.
        why: String,
        /// The flag that would allow it.
        flag: String,
    },
    /// A memory request or limit below Berth's minimum.
    #[error(
        "{field} 'mem' is {mb} MiB, below the minimum of {min} MiB (Mesos's smallest memory \
         limit; Docker refuses limits below 6 MiB): ask for at least {min} MiB, or leave 'mem' out"
    )]
    MemoryBelowMinimum {
        /// `resources` or `limits`.
        field: &'static str,
        /// The value asked for, in MiB (as text: a float is not `Eq`).
        mb: String,
        /// The minimum, in MiB.
        min: u64,
    },
    /// A bad environment variable name.
    #[error("environment variable name '{name}' is invalid: {reason}")]
    BadEnv {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The agent-wide inputs of the mapping.
#[derive(Debug, Clone)]
pub struct MappingContext<'a> {
    /// The owning agent.
    pub agent_id: &'a AgentId,
    /// The container.
    pub container_id: &'a ContainerId,
    /// The Docker container name, `<prefix>-<container id>`.
    pub name: &'a str,
    /// Where the sandbox is mounted in the container (Mesos: `/mnt/mesos/sandbox`).
    pub mapped_sandbox: &'a str,
    /// Roots under which absolute host paths may be mounted.
    pub allowed_host_roots: &'a [PathBuf],
    /// Whether `privileged` (and everything it implies) is allowed.
    pub allow_privileged: bool,
    /// The operator's finer allow-lists (capabilities, devices, volume drivers and types).
    pub allowances: &'a Allowances,
    /// Mesos's `cgroups_enable_cfs`: a CPU quota from the request when there is no limit.
    pub cfs: bool,
    /// The host's memory in bytes (for the OOM score adjustment).
    pub host_memory: Option<u64>,
    /// Docker's own log driver settings.
    pub log_config: &'a LogConfigSpec,
    /// Labels added to every container (e.g. a test marker).
    pub extra_labels: &'a BTreeMap<String, String>,
}

/// The mapped launch: the create body and the volume preparation.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The create body.
    pub create: CreateSpec,
    /// What MOUNTING prepares.
    pub volumes: VolumePlan,
    /// The size the container's TTY is set to right after it starts (Docker cannot take it at
    /// create).
    pub tty_window_size: Option<WindowSize>,
}

/// Maps `spec` onto Docker. The spec must be a Docker launch.
pub fn map_launch(spec: &LaunchSpec, ctx: &MappingContext<'_>) -> Result<Mapped, SpecError> {
    let container = spec.container.as_ref().ok_or(SpecError::NoDockerInfo)?;
    let docker = spec.docker_info().ok_or(SpecError::NoDockerInfo)?;
    if docker.image.trim().is_empty() {
        return Err(SpecError::EmptyImage);
    }
    let mut create = CreateSpec {
        image: docker.image.clone(),
        ..CreateSpec::default()
    };

    // Command: shell runs `/bin/sh -c value`; otherwise keep the image's ENTRYPOINT and replace
    // its CMD with value + arguments (Mesos's Default_CMD semantics).
    let cmd = &spec.command;
    if cmd.shell {
        let value = cmd
            .value
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or(SpecError::ShellWithoutCommand)?;
        create.entrypoint = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
        create.cmd = Some(vec![value.to_owned()]);
    } else {
        let argv: Vec<String> = cmd
            .value
            .iter()
            .chain(cmd.arguments.iter())
            .cloned()
            .collect();
        create.cmd = (!argv.is_empty()).then_some(argv);
    }

    // Environment: the command's (a later duplicate wins), then Mesos's own variables.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: &str| {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_owned(), v.to_owned()));
    };
    for var in &cmd.environment {
        if var.name.is_empty() || var.name.contains('=') || var.name.contains('\0') {
            return Err(SpecError::BadEnv {
                name: var.name.clone(),
                reason: "a name must be non-empty without '=' or NUL".into(),
            });
        }
        put(&var.name, &var.value);
    }
    put("MESOS_SANDBOX", ctx.mapped_sandbox);
    put("MESOS_CONTAINER_NAME", ctx.name);
    if let Some(role) = &spec.role {
        put("MESOS_ALLOCATION_ROLE", role);
    }
    create.env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    create.user = spec.effective_user().map(str::to_owned);
    create.hostname = container.hostname.clone();

    // Labels: the caller's extras, then ours (which nothing may override).
    for (k, v) in ctx.extra_labels {
        if labels::is_reserved(k) {
            return Err(SpecError::ReservedLabel { key: k.clone() });
        }
        create.labels.insert(k.clone(), v.clone());
    }
    create
        .labels
        .extend(labels::own_labels(ctx.agent_id, ctx.container_id));

    // Parameters last, so they win over the fields above as `--key=value` did on the CLI.
    let effects = params::apply(
        &docker.parameters,
        &mut create,
        ctx.allow_privileged,
        ctx.allowances,
    )?;

    let network = match effects.network {
        Some(mode) => match mode.as_str() {
            "host" => Network::Host,
            "bridge" | "default" => Network::Bridge,
            "none" => Network::None,
            other => Network::User(other.to_owned()),
        },
        None => docker.network.clone(),
    };
    policy::check_network(network.docker_mode(), ctx.allow_privileged)?;
    create.host.network_mode = network.docker_mode().to_owned();
    if network == Network::Host && create.hostname.is_some() {
        return Err(SpecError::HostnameWithHostNetwork);
    }
    let tty_window_size = container.tty_window_size;
    if let Some(ws) = tty_window_size {
        for (field, v) in [
            ("window_size.rows", ws.rows),
            ("window_size.columns", ws.columns),
        ] {
            if v == 0 {
                return Err(SpecError::BadWindowSize {
                    field,
                    reason: "0 is out of range (1..=65535)".into(),
                });
            }
        }
        // Checked after the parameters: a `tty=false` parameter leaves nothing to size.
        if !create.tty {
            return Err(SpecError::BadWindowSize {
                field: "window_size",
                reason: "a window size needs a TTY, and the container has none".into(),
            });
        }
    }
    if !docker.port_mappings.is_empty() && matches!(network, Network::Host | Network::None) {
        return Err(SpecError::PortMappingNetwork {
            network: network.docker_mode().to_owned(),
        });
    }
    for pm in &docker.port_mappings {
        let proto = pm.protocol.as_deref().unwrap_or("tcp").to_ascii_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(SpecError::BadProtocol { protocol: proto });
        }
        if !spec.resources.has_port(pm.host_port) {
            return Err(SpecError::PortNotInResources { port: pm.host_port });
        }
        let key = format!("{}/{proto}", pm.container_port);
        create.exposed_ports.insert(key.clone());
        create
            .host
            .port_bindings
            .entry(key)
            .or_default()
            .push(pm.host_port);
    }

    if docker.privileged && !ctx.allow_privileged {
        return Err(SpecError::PrivilegedNotAllowed);
    }
    create.host.privileged = docker.privileged;

    check_memory(&spec.resources, &spec.limits)?;
    let cg = cgroup_settings(&spec.resources, &spec.limits, ctx.cfs, ctx.host_memory);
    create.host.cpu_shares = cg.cpu_shares;
    create.host.cpu_quota = cg.cpu_quota;
    create.host.cpu_period = cg.cpu_period;
    create.host.memory = cg.memory;
    create.host.memory_reservation = cg.memory_reservation;
    create.host.oom_score_adj = cg.oom_score_adj;
    create.host.log_config = Some(ctx.log_config.clone());

    let volumes = volumes::plan(
        &container.volumes,
        &spec.sandbox,
        ctx.mapped_sandbox,
        ctx.allowed_host_roots,
        ctx.allow_privileged,
        ctx.allowances,
    )?;
    create.host.mounts = volumes.mounts.clone();
    // A volume Docker creates on first use says which agent (and, in tests, which test) made
    // it; not which container: other containers may share it.
    let mut volume_labels = ctx.extra_labels.clone();
    volume_labels.insert(labels::AGENT_ID.to_owned(), ctx.agent_id.to_string());
    for m in &mut create.host.mounts {
        if m.kind == MountKind::Volume {
            m.volume_labels = volume_labels.clone();
        }
    }
    Ok(Mapped {
        create,
        volumes,
        tty_window_size,
    })
}

/// The Docker container name for `id`: `<prefix>-<id>`.
pub fn container_name(prefix: &str, id: &ContainerId) -> String {
    format!("{prefix}-{id}")
}

/// Whether `path` is absolute (the mapped sandbox must be).
pub(crate) fn is_absolute(path: &str) -> bool {
    Path::new(path).is_absolute()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CommandInfo, ContainerInfo, DockerInfo, Limit, PortMapping, PortRange};

    struct Ctx {
        agent: AgentId,
        cid: ContainerId,
        roots: Vec<PathBuf>,
        log: LogConfigSpec,
        extra: BTreeMap<String, String>,
        allow: Allowances,
    }

    impl Ctx {
        fn new() -> Ctx {
            Ctx {
                agent: AgentId::new("agent-1").unwrap(),
                cid: ContainerId::new("c1").unwrap(),
                roots: vec![],
                log: LogConfigSpec::default(),
                extra: BTreeMap::from([("io.berth.test".to_owned(), "unit".to_owned())]),
                allow: Allowances::default(),
            }
        }

        fn ctx(&self, privileged: bool) -> MappingContext<'_> {
            MappingContext {
                agent_id: &self.agent,
                container_id: &self.cid,
                name: "berth-c1",
                mapped_sandbox: "/mnt/mesos/sandbox",
                allowed_host_roots: &self.roots,
                allow_privileged: privileged,
                allowances: &self.allow,
                cfs: true,
                host_memory: Some(8 << 30),
                log_config: &self.log,
                extra_labels: &self.extra,
            }
        }
    }

    fn spec(cmd: CommandInfo) -> LaunchSpec {
        LaunchSpec::docker("berth-test/busybox:latest", cmd, "/var/sb:with:colons")
    }

    #[test]
    fn shell_command_runs_through_sh() {
        let c = Ctx::new();
        let m = map_launch(&spec(CommandInfo::shell("echo hi; exit 3")), &c.ctx(false)).unwrap();
        assert_eq!(
            m.create.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into()])
        );
        assert_eq!(m.create.cmd, Some(vec!["echo hi; exit 3".into()]));
    }

    #[test]
    fn shell_without_value_is_refused() {
        let c = Ctx::new();
        let mut s = spec(CommandInfo::shell(""));
        assert_eq!(
            map_launch(&s, &c.ctx(false)).unwrap_err(),
            SpecError::ShellWithoutCommand
        );
        s.command.value = None;
        assert_eq!(
            map_launch(&s, &c.ctx(false)).unwrap_err(),
            SpecError::ShellWithoutCommand
        );
    }

    #[test]
    fn non_shell_keeps_entrypoint_and_sets_cmd() {
        let c = Ctx::new();
        let none = map_launch(&spec(CommandInfo::exec(None, &[])), &c.ctx(false)).unwrap();
        assert_eq!(
            (none.create.entrypoint, none.create.cmd),
            (None, None),
            "image default CMD"
        );
        let value =
            map_launch(&spec(CommandInfo::exec(Some("uuid1"), &[])), &c.ctx(false)).unwrap();
        assert_eq!(
            (value.create.entrypoint, value.create.cmd),
            (None, Some(vec!["uuid1".into()]))
        );
        let args = map_launch(&spec(CommandInfo::exec(None, &["uuid2"])), &c.ctx(false)).unwrap();
        assert_eq!(args.create.cmd, Some(vec!["uuid2".into()]));
        let both = map_launch(
            &spec(CommandInfo::exec(Some("a"), &["b", "c"])),
            &c.ctx(false),
        )
        .unwrap();
        assert_eq!(
            both.create.cmd,
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
    }

    #[test]
    fn env_labels_name_and_sandbox() {
        let c = Ctx::new();
        let mut s = spec(
            CommandInfo::shell("env")
                .env("A", "1")
                .env("B", "x y")
                .env("A", "2"),
        );
        s.role = Some("role1".into());
        let m = map_launch(&s, &c.ctx(false)).unwrap();
        assert_eq!(
            m.create.env,
            [
                "B=x y",
                "A=2",
                "MESOS_SANDBOX=/mnt/mesos/sandbox",
                "MESOS_CONTAINER_NAME=berth-c1",
                "MESOS_ALLOCATION_ROLE=role1"
            ]
        );
        assert_eq!(m.create.labels[labels::AGENT_ID], "agent-1");
        assert_eq!(m.create.labels[labels::CONTAINER_ID], "c1");
        assert_eq!(m.create.labels[labels::VERSION], labels::BERTH_VERSION);
        assert_eq!(m.create.labels["io.berth.test"], "unit");
        assert_eq!(m.create.host.mounts[0].source, "/var/sb:with:colons");
        assert_eq!(m.create.host.mounts[0].target, "/mnt/mesos/sandbox");
        assert_eq!(
            m.create.host.network_mode, "host",
            "Mesos's default network"
        );
        let log = m.create.host.log_config.as_ref().unwrap();
        assert_eq!(
            (log.driver.as_str(), log.options["max-file"].as_str()),
            ("local", "3")
        );
    }

    #[test]
    fn ports_are_checked_against_resources() {
        let c = Ctx::new();
        let mut s = spec(CommandInfo::shell("nc -l -p 1000"));
        let docker = s.container.as_mut().unwrap().docker.as_mut().unwrap();
        docker.port_mappings.push(PortMapping {
            host_port: 10000,
            container_port: 1000,
            protocol: None,
        });
        let err = map_launch(&s, &c.ctx(false)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Port mappings are only supported"),
            "{err}"
        );
        s.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .network = Network::Bridge;
        assert_eq!(
            map_launch(&s, &c.ctx(false)).unwrap_err(),
            SpecError::PortNotInResources { port: 10000 }
        );
        assert_eq!(
            map_launch(&s, &c.ctx(false)).unwrap_err().to_string(),
            "Port [10000] not included in resources"
        );
        s.resources.ports.push(PortRange {
            begin: 10000,
            end: 10000,
        });
        let m = map_launch(&s, &c.ctx(false)).unwrap();
        assert_eq!(m.create.host.port_bindings["1000/tcp"], [10000]);
        assert!(m.create.exposed_ports.contains("1000/tcp"));
        assert_eq!(m.create.host.network_mode, "bridge");
    }

    #[test]
    fn hostname_needs_a_non_host_network() {
        let c = Ctx::new();
        let mut s = spec(CommandInfo::shell("true"));
        s.container.as_mut().unwrap().hostname = Some("box".into());
        assert_eq!(
            map_launch(&s, &c.ctx(false)).unwrap_err(),
            SpecError::HostnameWithHostNetwork
        );
        s.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .parameters
            .push(crate::spec::Parameter {
                key: "network".into(),
                value: "bridge".into(),
            });
        assert_eq!(
            map_launch(&s, &c.ctx(false))
                .unwrap()
                .create
                .hostname
                .as_deref(),
            Some("box")
        );
    }

    #[test]
    fn privileged_is_gated() {
        let c = Ctx::new();
        let mut s = spec(CommandInfo::shell("true"));
        s.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .privileged = true;
        assert_eq!(
            map_launch(&s, &c.ctx(false)).unwrap_err(),
            SpecError::PrivilegedNotAllowed
        );
        assert!(map_launch(&s, &c.ctx(true)).unwrap().create.host.privileged);
    }

    #[test]
    fn resources_reach_the_host_config() {
        let c = Ctx::new();
        let mut s = spec(CommandInfo::shell("true"));
        s.resources.cpus = Some(1.0);
        s.resources.mem_mb = Some(1024.0);
        s.limits.cpus = Some(Limit::Finite(2.0));
        s.limits.mem_mb = Some(Limit::Finite(2048.0));
        let h = map_launch(&s, &c.ctx(false)).unwrap().create.host;
        assert_eq!(
            (h.cpu_shares, h.cpu_quota, h.cpu_period),
            (Some(1024), Some(200_000), Some(100_000))
        );
        assert_eq!(
            (h.memory, h.memory_reservation),
            (Some(2 << 30), Some(1 << 30))
        );
        assert_eq!(h.oom_score_adj, Some(875));
    }

    #[test]
    fn not_a_docker_spec_and_reserved_extra_labels() {
        let mut c = Ctx::new();
        let mut s = spec(CommandInfo::shell("true"));
        s.container = Some(ContainerInfo {
            docker: None,
            ..ContainerInfo::docker(DockerInfo::new("x"))
        });
        assert_eq!(
            map_launch(&s, &c.ctx(false)).unwrap_err(),
            SpecError::NoDockerInfo
        );
        c.extra.insert(labels::CONTAINER_ID.into(), "forged".into());
        let err = map_launch(&spec(CommandInfo::shell("true")), &c.ctx(false)).unwrap_err();
        assert!(matches!(err, SpecError::ReservedLabel { .. }));
    }

    #[test]
    fn joining_another_containers_network_needs_the_operator() {
        let c = Ctx::new();
        for network in [Network::User("container:victim".into()), Network::Bridge] {
            let mut s = spec(CommandInfo::shell("true"));
            let docker = s.container.as_mut().unwrap().docker.as_mut().unwrap();
            docker.network = Network::Bridge;
            docker.parameters.push(crate::spec::Parameter {
                key: "net".into(),
                value: network.docker_mode().to_owned(),
            });
            let refused = network != Network::Bridge;
            assert_eq!(
                map_launch(&s, &c.ctx(false)).is_err(),
                refused,
                "{network:?}"
            );
            s.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .parameters
                .clear();
            s.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .network = network.clone();
            let err = map_launch(&s, &c.ctx(false));
            assert_eq!(err.is_err(), refused, "{network:?}");
            if refused {
                assert!(err.unwrap_err().to_string().contains("--allow-privileged"));
                map_launch(&s, &c.ctx(true)).unwrap();
            }
        }
    }

    #[test]
    fn memory_below_the_minimum_is_refused_at_launch() {
        let c = Ctx::new();
        let mut s = spec(CommandInfo::shell("true"));
        s.resources.mem_mb = Some(4.0);
        let err = map_launch(&s, &c.ctx(false)).unwrap_err();
        assert!(
            matches!(
                err,
                SpecError::MemoryBelowMinimum {
                    field: "resources",
                    min: 32,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_env_names_are_refused() {
        let c = Ctx::new();
        let err = map_launch(
            &spec(CommandInfo::shell("true").env("A=B", "c")),
            &c.ctx(false),
        )
        .unwrap_err();
        assert!(err.to_string().contains("'A=B'"), "{err}");
    }
}
