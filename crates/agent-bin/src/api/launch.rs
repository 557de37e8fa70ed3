//! The typed form of `LAUNCH_CONTAINER` and `UPDATE_CONTAINER` payloads (Mesos `CommandInfo`,
//! `ContainerInfo`, `Resource`s and limits), and their strict parsing.
//!
//! These mirror Mesos's protobufs field for field; the wiring layer converts them into the
//! containerizer's launch spec. Everything a request can get wrong is caught here, with the path
//! of the offending field.

// Mesos's `RLimitInfo.RLimit.Type` names, lowercased and without `RLMT_`, are Docker's ulimit names.
use berth_containerizer::mapping::ULIMITS as RLIMITS;
use std::time::Duration;

use berth_containerizer::WindowSize;
use serde_json::Value;

use super::json::{float_value, int_value, str_value, Obj};
use super::schema;
use crate::error::ApiError;

/// Mesos `CommandInfo`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Command {
    /// The command line (with `shell`) or the first CMD word.
    pub value: Option<String>,
    /// Run `value` through `/bin/sh -c` (Mesos default: true).
    pub shell: bool,
    /// Arguments (with `shell = false`).
    pub arguments: Vec<String>,
    /// Environment variables in order.
    pub environment: Vec<(String, String)>,
    /// URIs to fetch.
    pub uris: Vec<UriInfo>,
    /// User to run as.
    pub user: Option<String>,
}

/// Mesos `CommandInfo.URI` plus Berth's `checksum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriInfo {
    /// Source.
    pub value: String,
    /// chmod 755 (no extraction).
    pub executable: bool,
    /// Extract archives (default true).
    pub extract: bool,
    /// Use the fetcher cache.
    pub cache: bool,
    /// Name in the sandbox.
    pub output_file: Option<String>,
    /// `sha256:<64 hex>`.
    pub checksum: Option<String>,
}

/// Mesos `ContainerInfo.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerType {
    /// Docker (what Berth runs).
    Docker,
    /// The Mesos containerizer's (not supported).
    Mesos,
}

/// Mesos `ContainerInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// The type.
    pub kind: ContainerType,
    /// Docker settings.
    pub docker: Option<DockerSpec>,
    /// Volumes.
    pub volumes: Vec<VolumeSpec>,
    /// Hostname.
    pub hostname: Option<String>,
    /// `tty_info.window_size`: the size the TTY is set to once the container runs.
    pub tty_window_size: Option<WindowSize>,
}

/// Mesos `DockerInfo.Network`, with the user network's name (from `network_infos[0].name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Host network (Mesos default).
    Host,
    /// Docker bridge.
    Bridge,
    /// No network.
    None,
    /// A user-defined network.
    User(String),
}

/// Mesos `DockerInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSpec {
    /// Image reference.
    pub image: String,
    /// Network.
    pub network: NetworkMode,
    /// `(host_port, container_port, protocol)`.
    pub port_mappings: Vec<(u16, u16, Option<String>)>,
    /// Privileged.
    pub privileged: bool,
    /// docker-run style `(key, value)` options.
    pub parameters: Vec<(String, String)>,
    /// Pull even when present.
    pub force_pull_image: bool,
    /// Mesos's `volume_driver`: moved onto the named volumes by [`parse_container`], so always
    /// `None` in a parsed request.
    pub volume_driver: Option<String>,
}

/// A named Docker volume of a `Volume.source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerVolumeSpec {
    /// The volume's name.
    pub name: String,
    /// Its driver (Docker's `local` when `None`).
    pub driver: Option<String>,
    /// Driver options.
    pub options: Vec<(String, String)>,
}

/// Mesos `Volume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Path in the container.
    pub container_path: String,
    /// Path on the host.
    pub host_path: Option<String>,
    /// Read-only.
    pub read_only: bool,
    /// A named Docker volume.
    pub docker_volume: Option<DockerVolumeSpec>,
}

/// Requested resources.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceSpec {
    /// CPUs.
    pub cpus: Option<f64>,
    /// Memory, MiB.
    pub mem_mb: Option<f64>,
    /// Disk, MiB (accepted and reported; Docker does not enforce it).
    pub disk_mb: Option<f64>,
    /// Port ranges `(begin, end)`, inclusive.
    pub ports: Vec<(u16, u16)>,
    /// The role every resource is allocated to (`allocation_info.role`), exported to the
    /// container as `MESOS_ALLOCATION_ROLE`.
    pub allocation_role: Option<String>,
    /// The resources as given (validated), kept and reported with the container.
    pub requested: Vec<Value>,
}

/// A limit above the request: a value or infinity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitValue {
    /// At most this much.
    Finite(f64),
    /// Unlimited.
    Infinite,
}

/// Limits above the requests (Mesos 1.9+ `limits`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LimitSpec {
    /// CPU limit.
    pub cpus: Option<LimitValue>,
    /// Memory limit, MiB.
    pub mem_mb: Option<LimitValue>,
}

/// A whole `LAUNCH_CONTAINER`.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    /// The container id.
    pub container_id: berth_containerizer::ContainerId,
    /// The command; `None` runs the image's ENTRYPOINT/CMD.
    pub command: Option<Command>,
    /// Requests.
    pub resources: ResourceSpec,
    /// Limits.
    pub limits: LimitSpec,
    /// The container info; `None` is answered as unsupported, as Mesos does.
    pub container: Option<ContainerSpec>,
    /// Berth's `health_check`: Mesos's `HealthCheck`, which Mesos carries in `TaskInfo`.
    pub health_check: Option<HealthCheckSpec>,
}

/// Mesos `HealthCheck`, with Berth's `kill_on_unhealthy`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckSpec {
    /// What is checked.
    pub kind: HealthCheckKind,
    /// `delay_seconds` (default 15).
    pub delay: Duration,
    /// `interval_seconds` (default 10).
    pub interval: Duration,
    /// `timeout_seconds` (default 20).
    pub timeout: Duration,
    /// `grace_period_seconds` (default 10).
    pub grace_period: Duration,
    /// `consecutive_failures` (default 3).
    pub consecutive_failures: u32,
    /// `kill_on_unhealthy` (Berth's; default true).
    pub kill_on_unhealthy: bool,
}

/// Mesos `HealthCheck.Type` with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheckKind {
    /// `COMMAND`: the `command`.
    Command(Command),
    /// `HTTP`: the `http` settings.
    Http {
        /// `http` (default) or `https`.
        scheme: String,
        /// The container's port.
        port: u16,
        /// The path, beginning with `/` (default `/`).
        path: String,
        /// Passing statuses (empty: 200..=399).
        statuses: Vec<u16>,
        /// `protocol: IPv6`.
        ipv6: bool,
    },
    /// `TCP`: the `tcp` settings.
    Tcp {
        /// The container's port.
        port: u16,
        /// `protocol: IPv6`.
        ipv6: bool,
    },
    /// `DOCKER` (Berth's): the image's own Docker `HEALTHCHECK`, acted on.
    Docker,
}

/// The `HealthCheck` fields a DOCKER check takes from the image's `HEALTHCHECK` instead.
const DOCKER_OWN: &[&str] = &[
    "delay_seconds",
    "interval_seconds",
    "timeout_seconds",
    "grace_period_seconds",
    "consecutive_failures",
];

/// The longest health-check duration accepted: a year (more is surely a unit mistake).
const MAX_HEALTH_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// A `HealthCheck` `*_seconds` field: `default` when absent; finite, `>= 0` (`> 0` unless
/// `zero_ok`: an interval or timeout of 0 would check without pause or fail every check).
fn health_seconds(
    o: &mut Obj<'_>,
    key: &'static str,
    default: f64,
    zero_ok: bool,
) -> Result<Duration, ApiError> {
    let v = o.opt_f64(key)?.unwrap_or(default);
    let ok = v.is_finite() && v <= MAX_HEALTH_SECONDS && if zero_ok { v >= 0.0 } else { v > 0.0 };
    if !ok {
        return Err(ApiError::bad_request(format!(
            "field '{}': {v} is not a valid number of seconds (expected {} and at most {MAX_HEALTH_SECONDS})",
            o.field_path(key),
            if zero_ok { ">= 0" } else { "> 0" }
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `NetworkInfo.Protocol` of an HTTP or TCP check: whether it is IPv6.
fn health_protocol(o: &mut Obj<'_>) -> Result<bool, ApiError> {
    let path = o.field_path("protocol");
    Ok(match o.opt_str("protocol")? {
        None => false,
        Some(p) => enum_value(&path, p, &["IPv4", "IPv6"])? == "IPv6",
    })
}

/// Parses a `HealthCheck` object (Mesos's validation: `validateHealthCheck`).
pub fn parse_health_check(mut o: Obj<'_>) -> Result<HealthCheckSpec, ApiError> {
    o.schema(&schema::HEALTH_CHECK);
    let type_path = o.field_path("type");
    let kind = match o.opt_str("type")? {
        None => {
            return Err(ApiError::bad_request(format!(
                "missing required field '{type_path}' (COMMAND, HTTP or TCP)"
            )))
        }
        Some(t) => enum_value(
            &type_path,
            t,
            &["COMMAND", "HTTP", "TCP", "DOCKER", "UNKNOWN"],
        )?,
    };
    let kind = match kind {
        "COMMAND" => {
            let c = o.req_obj("command")?;
            let value_path = c.field_path("value");
            let uris_path = c.field_path("uris");
            let command = parse_command(c)?;
            if command.value.is_none() {
                return Err(ApiError::bad_request(format!(
                    "missing required field '{value_path}': a COMMAND health check runs it \
                     (a shell command, or the executable with shell false)"
                )));
            }
            if !command.uris.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "field '{uris_path}': a health check's command fetches nothing (it runs \
                     in the container, whose sandbox has the launch's URIs)"
                )));
            }
            HealthCheckKind::Command(command)
        }
        "HTTP" => {
            let mut h = o.req_obj("http")?;
            h.schema(&schema::HTTP_CHECK_INFO);
            let port = h.req_int("port", 1, 65535)? as u16;
            let scheme_path = h.field_path("scheme");
            let scheme = match h.opt_str("scheme")? {
                None => "http",
                Some(s) => enum_value(&scheme_path, s, &["http", "https"])?,
            }
            .to_owned();
            let path = h.opt_str("path")?.unwrap_or("/").to_owned();
            if !path.starts_with('/') {
                return Err(ApiError::bad_request(format!(
                    "field '{}': \"{path}\" must begin with '/'",
                    h.field_path("path")
                )));
            }
            let mut statuses = Vec::new();
            for (spath, v) in h.arr("statuses")? {
                statuses.push(super::json::int_value(&spath, v, 100, 599)? as u16);
            }
            let ipv6 = health_protocol(&mut h)?;
            h.finish()?;
            HealthCheckKind::Http {
                scheme,
                port,
                path,
                statuses,
                ipv6,
            }
        }
        "TCP" => {
            let mut t = o.req_obj("tcp")?;
            t.schema(&schema::TCP_CHECK_INFO);
            let port = t.req_int("port", 1, 65535)? as u16;
            let ipv6 = health_protocol(&mut t)?;
            t.finish()?;
            HealthCheckKind::Tcp { port, ipv6 }
        }
        "DOCKER" => {
            for key in DOCKER_OWN {
                if o.get(key).is_some() {
                    return Err(ApiError::bad_request(format!(
                        "field '{}': a DOCKER health check runs on the image's own HEALTHCHECK \
                         settings (--start-period, --interval, --timeout, --retries); set it there",
                        o.field_path(key)
                    )));
                }
            }
            let kill_on_unhealthy = o.opt_bool("kill_on_unhealthy")?.unwrap_or(true);
            o.finish()?;
            // Docker keeps the schedule; these are unused.
            return Ok(HealthCheckSpec {
                kind: HealthCheckKind::Docker,
                delay: Duration::ZERO,
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
                grace_period: Duration::ZERO,
                consecutive_failures: 0,
                kill_on_unhealthy,
            });
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "field '{type_path}': UNKNOWN is not a valid health check type (COMMAND, HTTP, \
                 TCP, or Berth's DOCKER)"
            )))
        }
    };
    let spec = HealthCheckSpec {
        kind,
        delay: health_seconds(&mut o, "delay_seconds", 15.0, true)?,
        interval: health_seconds(&mut o, "interval_seconds", 10.0, false)?,
        timeout: health_seconds(&mut o, "timeout_seconds", 20.0, false)?,
        grace_period: health_seconds(&mut o, "grace_period_seconds", 10.0, true)?,
        consecutive_failures: o
            .opt_int("consecutive_failures", 0, i64::from(u32::MAX))?
            .map_or(3, |n| n as u32),
        kill_on_unhealthy: o.opt_bool("kill_on_unhealthy")?.unwrap_or(true),
    };
    o.finish()?;
    Ok(spec)
}

fn enum_value<'a>(path: &str, v: &'a str, allowed: &[&'a str]) -> Result<&'a str, ApiError> {
    if allowed.contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::bad_request(format!(
            "field '{path}': unknown value \"{v}\" (expected one of {})",
            allowed.join(", ")
        )))
    }
}

/// Parses a `CommandInfo` object.
pub fn parse_command(mut o: Obj<'_>) -> Result<Command, ApiError> {
    o.schema(&schema::COMMAND_INFO);
    let value = o.opt_str("value")?.map(str::to_owned);
    let shell = o.opt_bool("shell")?.unwrap_or(true);
    let mut arguments = Vec::new();
    for (path, v) in o.arr("arguments")? {
        arguments.push(str_value(&path, v)?.to_owned());
    }
    let mut environment = Vec::new();
    if let Some(mut env) = o.opt_obj("environment")? {
        env.schema(&schema::ENVIRONMENT);
        for (path, v) in env.arr("variables")? {
            let mut var = Obj::of(path, v, &schema::VARIABLE)?;
            let name = var.req_str("name")?;
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "field '{}': \"{name}\" is not a valid variable name (non-empty, no '=' or NUL)",
                    var.field_path("name")
                )));
            }
            if let Some(t) = var.opt_str("type")? {
                if enum_value(&var.field_path("type"), t, &["VALUE", "SECRET", "UNKNOWN"])?
                    != "VALUE"
                {
                    return Err(ApiError::bad_request(format!(
                        "field '{}': only VALUE variables are supported (secrets are not)",
                        var.field_path("type")
                    )));
                }
            }
            let value = var.req_str("value")?;
            var.finish()?;
            environment.push((name.to_owned(), value.to_owned()));
        }
        env.finish()?;
    }
    let mut uris = Vec::new();
    for (path, v) in o.arr("uris")? {
        uris.push(parse_uri(Obj::of(path, v, &schema::URI)?)?);
    }
    let user = o.opt_str("user")?.map(str::to_owned);
    if shell && value.is_none() {
        return Err(ApiError::bad_request(format!(
            "field '{}': shell is true (the default) but no command value is given; set 'value', or \
             set 'shell' to false to run the image's entrypoint",
            o.field_path("value")
        )));
    }
    o.finish()?;
    Ok(Command {
        value,
        shell,
        arguments,
        environment,
        uris,
        user,
    })
}

fn parse_uri(mut o: Obj<'_>) -> Result<UriInfo, ApiError> {
    let value = o.req_str("value")?.to_owned();
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "field '{}': must not be empty",
            o.field_path("value")
        )));
    }
    let checksum = o.opt_str("checksum")?.map(str::to_owned);
    if let Some(c) = &checksum {
        let hex = c.strip_prefix("sha256:");
        if !hex.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(ApiError::bad_request(format!(
                "field '{}': \"{c}\" is not a checksum; expected sha256:<64 hex digits>",
                o.field_path("checksum")
            )));
        }
    }
    let output_file = o.opt_str("output_file")?.map(str::to_owned);
    if let Some(f) = &output_file {
        if f.is_empty() || f.starts_with('/') || f.split('/').any(|c| c == "..") {
            return Err(ApiError::bad_request(format!(
                "field '{}': \"{f}\" must be a non-empty relative path inside the sandbox",
                o.field_path("output_file")
            )));
        }
    }
    let uri = UriInfo {
        value,
        executable: o.opt_bool("executable")?.unwrap_or(false),
        extract: o.opt_bool("extract")?.unwrap_or(true),
        cache: o.opt_bool("cache")?.unwrap_or(false),
        output_file,
        checksum,
    };
    o.finish()?;
    Ok(uri)
}

/// Parses a `ContainerInfo` object.
pub fn parse_container(mut o: Obj<'_>) -> Result<ContainerSpec, ApiError> {
    o.schema(&schema::CONTAINER_INFO);
    let type_path = o.field_path("type");
    let kind = match enum_value(&type_path, o.req_str("type")?, &["DOCKER", "MESOS"])? {
        "DOCKER" => ContainerType::Docker,
        _ => ContainerType::Mesos,
    };
    let hostname = o.opt_str("hostname")?.map(str::to_owned);
    let mut network_names = Vec::new();
    for (path, v) in o.arr("network_infos")? {
        let mut ni = Obj::of(path, v, &schema::NETWORK_INFO)?;
        network_names.push((
            ni.field_path("name"),
            ni.opt_str("name")?.map(str::to_owned),
        ));
        ni.finish()?;
    }
    let mut volumes = Vec::new();
    for (path, v) in o.arr("volumes")? {
        volumes.push(parse_volume(Obj::of(path, v, &schema::VOLUME)?)?);
    }
    let mut docker = match o.opt_obj("docker")? {
        Some(d) => Some(parse_docker(d, &network_names)?),
        None => None,
    };
    // Mesos's Linux, rlimit and TTY settings reach Docker as the docker-run parameters that say
    // the same thing, after the caller's own: one place (the parameter mapping) applies the
    // operator's policy to both.
    let mut extra = Vec::new();
    if let Some(l) = o.opt_obj("linux_info")? {
        extra.extend(parse_linux_info(l)?);
    }
    if let Some(r) = o.opt_obj("rlimit_info")? {
        extra.extend(parse_rlimit_info(r)?);
    }
    let mut tty_window_size = None;
    if let Some(t) = o.opt_obj("tty_info")? {
        tty_window_size = parse_tty_info(t)?;
        // Pushed after the caller's parameters, so the TTY the window size needs is always there.
        extra.push(("tty".to_owned(), "true".to_owned()));
    }
    let volume_driver = docker.as_mut().and_then(|d| d.volume_driver.take());
    if let Some(d) = docker.as_mut() {
        d.parameters.extend(extra);
    }
    // Mesos's deprecated `DockerInfo.volume_driver`: the driver of the container's named volumes
    // that do not name their own.
    if let Some(driver) = volume_driver {
        for v in volumes.iter_mut() {
            if let Some(dv) = v.docker_volume.as_mut() {
                dv.driver.get_or_insert_with(|| driver.clone());
            }
        }
    }
    if kind == ContainerType::Docker && docker.is_none() {
        return Err(ApiError::bad_request(format!(
            "missing required field '{}' (an object with at least 'image') for a DOCKER container",
            o.field_path("docker")
        )));
    }
    o.finish()?;
    Ok(ContainerSpec {
        kind,
        docker,
        volumes,
        hostname,
        tty_window_size,
    })
}

fn parse_docker(
    mut o: Obj<'_>,
    network_names: &[(String, Option<String>)],
) -> Result<DockerSpec, ApiError> {
    o.schema(&schema::DOCKER_INFO);
    let image = o.req_str("image")?.trim().to_owned();
    if image.is_empty() {
        return Err(ApiError::bad_request(format!(
            "field '{}': must not be empty",
            o.field_path("image")
        )));
    }
    let network_path = o.field_path("network");
    let network = match o.opt_str("network")? {
        None => NetworkMode::Host,
        Some(n) => match enum_value(&network_path, n, &["HOST", "BRIDGE", "NONE", "USER"])? {
            "HOST" => NetworkMode::Host,
            "BRIDGE" => NetworkMode::Bridge,
            "NONE" => NetworkMode::None,
            _ => match network_names {
                [(_, Some(name))] if !name.is_empty() => NetworkMode::User(name.clone()),
                [(path, _)] => {
                    return Err(ApiError::bad_request(format!(
                        "missing required field '{path}': a USER network needs its name"
                    )))
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "field '{network_path}': USER networking needs exactly one entry in \
                         'network_infos' carrying the network's name (found {})",
                        network_names.len()
                    )))
                }
            },
        },
    };
    let mut port_mappings = Vec::new();
    for (path, v) in o.arr("port_mappings")? {
        let mut pm = Obj::of(path, v, &schema::DOCKER_PORT_MAPPING)?;
        let host = pm.req_int("host_port", 1, 65535)? as u16;
        let container = pm.req_int("container_port", 1, 65535)? as u16;
        let proto_path = pm.field_path("protocol");
        let protocol = match pm.opt_str("protocol")? {
            None => None,
            Some(p) => {
                Some(enum_value(&proto_path, &p.to_ascii_lowercase(), &["tcp", "udp"])?.to_owned())
            }
        };
        pm.finish()?;
        port_mappings.push((host, container, protocol));
    }
    let mut parameters = Vec::new();
    for (path, v) in o.arr("parameters")? {
        let mut p = Obj::of(path, v, &schema::PARAMETER)?;
        let key = p.req_str("key")?.to_owned();
        let value = p.req_str("value")?.to_owned();
        p.finish()?;
        parameters.push((key, value));
    }
    let volume_driver = match o.opt_str("volume_driver")? {
        Some(d) if d.trim().is_empty() => None,
        d => d.map(|d| d.trim().to_owned()),
    };
    let spec = DockerSpec {
        volume_driver,
        image,
        network,
        port_mappings,
        privileged: o.opt_bool("privileged")?.unwrap_or(false),
        parameters,
        force_pull_image: o.opt_bool("force_pull_image")?.unwrap_or(false),
    };
    o.finish()?;
    Ok(spec)
}

fn parse_volume(mut o: Obj<'_>) -> Result<VolumeSpec, ApiError> {
    let container_path = o.req_str("container_path")?.to_owned();
    let host_path = o.opt_str("host_path")?.map(str::to_owned);
    let mode_path = o.field_path("mode");
    let read_only = match o.opt_str("mode")? {
        None => false,
        Some(m) => enum_value(&mode_path, m, &["RW", "RO"])? == "RO",
    };
    let mut docker_volume = None;
    if let Some(mut source) = o.opt_obj("source")? {
        source.schema(&schema::VOLUME_SOURCE);
        let type_path = source.field_path("type");
        let kind = source.req_str("type")?;
        if kind != "DOCKER_VOLUME" {
            return Err(ApiError::bad_request(format!(
                "field '{type_path}': volume source \"{kind}\" is not supported (only DOCKER_VOLUME)"
            )));
        }
        let mut dv = source.req_obj("docker_volume")?;
        dv.schema(&schema::DOCKER_VOLUME);
        let name = dv.req_str("name")?.to_owned();
        let driver = dv.opt_str("driver")?.map(str::to_owned);
        let mut options = Vec::new();
        if let Some(mut opts) = dv.opt_obj("driver_options")? {
            opts.schema(&schema::PARAMETERS);
            for (path, v) in opts.arr("parameter")? {
                let mut p = Obj::of(path, v, &schema::PARAMETER)?;
                options.push((p.req_str("key")?.to_owned(), p.req_str("value")?.to_owned()));
                p.finish()?;
            }
            opts.finish()?;
        }
        dv.finish()?;
        source.finish()?;
        docker_volume = Some(DockerVolumeSpec {
            name,
            driver,
            options,
        });
    }
    if host_path.is_none() && docker_volume.is_none() {
        return Err(ApiError::bad_request(format!(
            "field '{}': a volume needs 'host_path' or a DOCKER_VOLUME 'source'",
            o.path()
        )));
    }
    o.finish()?;
    Ok(VolumeSpec {
        container_path,
        host_path,
        read_only,
        docker_volume,
    })
}

/// Parses an array of Mesos `Resource`s.
pub fn parse_resources(items: Vec<(String, &Value)>) -> Result<ResourceSpec, ApiError> {
    let mut out = ResourceSpec::default();
    for (path, v) in items {
        let mut r = Obj::of(path, v, &schema::RESOURCE)?;
        let name_path = r.field_path("name");
        let name = r.req_str("name")?;
        let kind = r.opt_str("type")?;
        parse_accounting(&mut r, &mut out.allocation_role)?;
        out.requested.push(v.clone());
        if let Some(mut disk) = r.opt_obj("disk")? {
            // An empty DiskInfo is the agent's own disk, which is what Berth has; its parts are
            // refused by the table.
            disk.schema(&schema::DISK_INFO);
            disk.finish()?;
        }
        match name {
            "cpus" | "mem" | "disk" => {
                if kind.is_some_and(|k| k != "SCALAR") {
                    return Err(ApiError::bad_request(format!("field '{}': '{name}' must be SCALAR", r.field_path("type"))));
                }
                let mut scalar = r.req_obj("scalar")?;
                scalar.schema(&schema::SCALAR);
                let value = scalar.opt_f64("value")?.ok_or_else(|| {
                    ApiError::bad_request(format!("missing required field '{}' (a number)", scalar.field_path("value")))
                })?;
                if !(value.is_finite() && value >= 0.0) {
                    return Err(ApiError::bad_request(format!(
                        "field '{}': {value} must be a finite number >= 0",
                        scalar.field_path("value")
                    )));
                }
                scalar.finish()?;
                let slot = match name {
                    "cpus" => &mut out.cpus,
                    "mem" => &mut out.mem_mb,
                    _ => &mut out.disk_mb,
                };
                *slot = Some(slot.unwrap_or(0.0) + value);
            }
            "ports" => {
                if kind.is_some_and(|k| k != "RANGES") {
                    return Err(ApiError::bad_request(format!("field '{}': 'ports' must be RANGES", r.field_path("type"))));
                }
                let mut ranges = r.req_obj("ranges")?;
                ranges.schema(&schema::RANGES);
                for (rpath, rv) in ranges.arr("range")? {
                    let mut range = Obj::of(rpath, rv, &schema::RANGE)?;
                    let begin = range.req_int("begin", 1, 65535)? as u16;
                    let end = range.req_int("end", 1, 65535)? as u16;
                    if end < begin {
                        return Err(ApiError::bad_request(format!(
                            "field '{}': range {begin}-{end} ends before it begins",
                            range.path()
                        )));
                    }
                    range.finish()?;
                    out.ports.push((begin, end));
                }
                ranges.finish()?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "field '{name_path}': resource \"{other}\" is not supported (supported: cpus, mem, disk, ports)"
                )))
            }
        }
        r.finish()?;
    }
    Ok(out)
}

/// Reads a `TTYInfo`: the window size, if it gives one.
pub fn parse_tty_info(mut t: Obj<'_>) -> Result<Option<WindowSize>, ApiError> {
    t.schema(&schema::TTY_INFO);
    let mut size = None;
    if let Some(mut w) = t.opt_obj("window_size")? {
        w.schema(&schema::WINDOW_SIZE);
        // Linux keeps each dimension in 16 bits; 0 would be no terminal at all.
        let mut dim = |key| {
            w.req_int(key, 1, i64::from(u16::MAX))
                .map(|v| u16::try_from(v).expect("checked range"))
        };
        let rows = dim("rows")?;
        let columns = dim("columns")?;
        w.finish()?;
        size = Some(WindowSize { rows, columns });
    }
    t.finish()?;
    Ok(size)
}

/// Reads a resource's accounting (deprecated `role`, `allocation_info`, `reservation(s)`,
/// `revocable`): validated so that what is kept and reported is well-formed, and the
/// allocation role checked to be one for the whole container, as Mesos allocates a task's
/// resources to one role.
fn parse_accounting(r: &mut Obj<'_>, allocation_role: &mut Option<String>) -> Result<(), ApiError> {
    r.opt_str("role")?;
    if let Some(mut a) = r.opt_obj("allocation_info")? {
        a.schema(&schema::ALLOCATION_INFO);
        let role_path = a.field_path("role");
        if let Some(role) = a.opt_str("role")? {
            check_role(&role_path, role)?;
            match allocation_role {
                Some(first) if first != role => {
                    return Err(ApiError::bad_request(format!(
                        "field '{role_path}': \"{role}\" differs from \"{first}\" of an earlier \
                         resource; a container's resources are allocated to one role"
                    )))
                }
                _ => *allocation_role = Some(role.to_owned()),
            }
        }
        a.finish()?;
    }
    if let Some(mut legacy) = r.opt_obj("reservation")? {
        legacy.schema(&schema::RESERVATION_INFO);
        parse_reservation(legacy)?;
    }
    for (path, v) in r.arr("reservations")? {
        parse_reservation(Obj::of(path, v, &schema::RESERVATION_INFO)?)?;
    }
    if let Some(mut revocable) = r.opt_obj("revocable")? {
        revocable.schema(&schema::REVOCABLE_INFO);
        revocable.finish()?;
    }
    Ok(())
}

fn parse_reservation(mut o: Obj<'_>) -> Result<(), ApiError> {
    let type_path = o.field_path("type");
    if let Some(t) = o.opt_str("type")? {
        if !matches!(t, "UNKNOWN" | "STATIC" | "DYNAMIC") {
            return Err(ApiError::bad_request(format!(
                "field '{type_path}': \"{t}\" is not a reservation type (STATIC, DYNAMIC)"
            )));
        }
    }
    let role_path = o.field_path("role");
    if let Some(role) = o.opt_str("role")? {
        check_role(&role_path, role)?;
    }
    o.opt_str("principal")?;
    if let Some(mut labels) = o.opt_obj("labels")? {
        labels.schema(&schema::LABELS);
        for (path, v) in labels.arr("labels")? {
            let mut label = Obj::of(path, v, &schema::LABEL)?;
            label.req_str("key")?;
            label.opt_str("value")?;
            label.finish()?;
        }
        labels.finish()?;
    }
    o.finish()
}

/// A Mesos role name: `*`, or path segments of printable characters that are not `.`, `..`,
/// and do not start with `-` (Mesos's role validation).
fn check_role(path: &str, role: &str) -> Result<(), ApiError> {
    let bad_segment = |seg: &str| {
        seg.is_empty()
            || seg == "."
            || seg == ".."
            || seg.starts_with('-')
            || seg
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    };
    if role == "*" || (!role.split('/').any(bad_segment) && !role.contains('*')) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "field '{path}': \"{}\" is not a Mesos role (`*`, or '/'-separated names without \
         whitespace, '*', '\\', '.' or '..' segments or a leading '-')",
        role.escape_debug()
    )))
}

/// Parses a `limits` map (`{"cpus": {"value": 2}, "mem": {"value": "Infinity"}}`).
pub fn parse_limits(o: Option<Obj<'_>>, raw: Option<&Value>) -> Result<LimitSpec, ApiError> {
    let mut out = LimitSpec::default();
    let (Some(o), Some(Value::Object(map))) = (o, raw) else {
        return Ok(out);
    };
    for (name, v) in map {
        let path = o.field_path(name);
        let slot = match name.as_str() {
            "cpus" => &mut out.cpus,
            "mem" => &mut out.mem_mb,
            other => {
                return Err(ApiError::bad_request(format!(
                    "field '{path}': limit \"{other}\" is not supported (supported: cpus, mem)"
                )))
            }
        };
        let mut scalar = Obj::of(path.clone(), v, &schema::SCALAR)?;
        let value = match scalar.get("value") {
            None => {
                return Err(ApiError::bad_request(format!(
                    "missing required field '{path}.value' (a number)"
                )))
            }
            Some(v) => float_value(&format!("{path}.value"), v)?,
        };
        scalar.finish()?;
        *slot = Some(if value.is_infinite() {
            LimitValue::Infinite
        } else if value > 0.0 {
            LimitValue::Finite(value)
        } else {
            return Err(ApiError::bad_request(format!(
                "field '{path}.value': {value} must be > 0"
            )));
        });
    }
    Ok(out)
}

/// A Mesos `DurationInfo` (`{"nanoseconds": N}`).
pub fn parse_duration_info(mut o: Obj<'_>) -> Result<std::time::Duration, ApiError> {
    let n = o.req_int("nanoseconds", 0, i64::MAX)?;
    o.finish()?;
    Ok(std::time::Duration::from_nanos(n as u64))
}

/// Mesos `CapabilityInfo.Capability` names (without `CAP_`; Docker takes the same names).
const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn parse_capabilities(mut o: Obj<'_>) -> Result<Vec<String>, ApiError> {
    o.schema(&schema::CAPABILITY_INFO);
    let mut caps = Vec::new();
    for (path, v) in o.arr("capabilities")? {
        let name = str_value(&path, v)?;
        if !CAPABILITIES.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "field '{path}': unknown value \"{name}\" (expected a Mesos capability name such as \
                 NET_ADMIN or CHOWN)"
            )));
        }
        if !caps.iter().any(|c| c == name) {
            caps.push(name.to_owned());
        }
    }
    o.finish()?;
    Ok(caps)
}

/// Mesos `LinuxInfo` as docker-run parameters. The container's capabilities become exactly the
/// effective set (else the bounding set): `cap-drop ALL` and a `cap-add` per capability, so the
/// operator's capability allow-list judges each one. Docker has one set per container, so a
/// bounding set wider than the effective one cannot be kept; one narrower is refused.
fn parse_linux_info(mut o: Obj<'_>) -> Result<Vec<(String, String)>, ApiError> {
    o.schema(&schema::LINUX_INFO);
    let deprecated = o
        .opt_obj("capability_info")?
        .map(parse_capabilities)
        .transpose()?;
    let bounding = o
        .opt_obj("bounding_capabilities")?
        .map(parse_capabilities)
        .transpose()?;
    let mut effective = o
        .opt_obj("effective_capabilities")?
        .map(parse_capabilities)
        .transpose()?;
    if effective.is_some() && deprecated.is_some() {
        return Err(ApiError::bad_request(format!(
            "field '{}': give either 'capability_info' (deprecated) or 'effective_capabilities', not both",
            o.field_path("capability_info")
        )));
    }
    effective = effective.or(deprecated);
    // Mesos's defaults are what Docker does (own PID namespace, own cgroups); only the other
    // value asks for something Berth does not give.
    if o.opt_bool("share_pid_namespace")? == Some(true) {
        return Err(o.refusal("share_pid_namespace"));
    }
    if o.opt_bool("share_cgroups")? == Some(false) {
        return Err(o.refusal("share_cgroups"));
    }
    if let (Some(e), Some(b)) = (&effective, &bounding) {
        if let Some(c) = e.iter().find(|c| !b.contains(c)) {
            return Err(ApiError::bad_request(format!(
                "field '{}': effective capability {c} is not in the bounding set",
                o.field_path("effective_capabilities")
            )));
        }
    }
    o.finish()?;
    let Some(caps) = effective.or(bounding) else {
        return Ok(Vec::new());
    };
    let mut out = vec![("cap-drop".to_owned(), "ALL".to_owned())];
    out.extend(caps.into_iter().map(|c| ("cap-add".to_owned(), c)));
    Ok(out)
}

/// Mesos `RLimitInfo` as docker-run `ulimit` parameters (so the operator's ulimit policy applies).
/// Mesos: both limits or neither (unlimited), and `soft <= hard`.
fn parse_rlimit_info(mut o: Obj<'_>) -> Result<Vec<(String, String)>, ApiError> {
    o.schema(&schema::RLIMIT_INFO);
    let mut out = Vec::new();
    for (path, v) in o.arr("rlimits")? {
        let mut r = Obj::of(path, v, &schema::RLIMIT)?;
        let type_path = r.field_path("type");
        let kind = r.req_str("type")?;
        let name = kind
            .strip_prefix("RLMT_")
            .map(str::to_ascii_lowercase)
            .filter(|n| RLIMITS.contains(&n.as_str()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "field '{type_path}': unknown value \"{kind}\" (expected one of RLMT_{})",
                    RLIMITS.join(", RLMT_").to_ascii_uppercase()
                ))
            })?;
        // uint64 in Mesos; Docker's limits are int64, where -1 is unlimited.
        let limit = |r: &mut Obj<'_>, key: &'static str| -> Result<Option<i64>, ApiError> {
            match r.get(key) {
                None => Ok(None),
                Some(v) => int_value(&r.field_path(key), v, 0, i64::MAX).map(Some),
            }
        };
        let hard = limit(&mut r, "hard")?;
        let soft = limit(&mut r, "soft")?;
        let (soft, hard) = match (soft, hard) {
            (None, None) => (-1, -1),
            (Some(s), Some(h)) if s <= h => (s, h),
            (Some(s), Some(h)) => {
                return Err(ApiError::bad_request(format!(
                    "field '{}': the soft limit {s} is above the hard limit {h}",
                    r.field_path("soft")
                )))
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "field '{}': give both 'soft' and 'hard', or neither for unlimited",
                    r.path()
                )))
            }
        };
        r.finish()?;
        out.push(("ulimit".to_owned(), format!("{name}={soft}:{hard}")));
    }
    o.finish()?;
    Ok(out)
}
