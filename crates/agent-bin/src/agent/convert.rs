//! Between the wire types of [`crate::api`] and the containerizer's: a launch request into a
//! `LaunchSpec`, a `Termination` into `WAIT_CONTAINER`'s view, a status into
//! `GET_CONTAINERS`' entry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_containerizer::spec::{
    ContainerKind, EnvVar, Parameter, PortMapping, PortRange, VolumeMode, VolumeSource,
};
use berth_containerizer::{
    Check, CommandInfo, ContainerInfo, ContainerStatus, DockerInfo, FetchProgress, Health,
    HealthCheck, HealthSource, LaunchSpec, Limit, Limits, Network, PullProgress,
    ResourceStatistics, Resources, Termination, Uri, Volume,
};
use serde_json::{json, Map, Value};

use crate::api::launch::{
    Command, ContainerSpec, ContainerType, HealthCheckKind, HealthCheckSpec, LimitSpec, LimitValue,
    NetworkMode, ResourceSpec,
};
use crate::api::response::{container_id, TerminationView};
use crate::api::LaunchRequest;

/// The containerizer's resources from the wire's.
pub fn resources(r: &ResourceSpec) -> Resources {
    Resources {
        cpus: r.cpus,
        mem_mb: r.mem_mb,
        ports: r
            .ports
            .iter()
            .map(|&(begin, end)| PortRange { begin, end })
            .collect(),
    }
}

/// The containerizer's limits from the wire's.
pub fn limits(l: &LimitSpec) -> Limits {
    let one = |v: Option<LimitValue>| {
        v.map(|v| match v {
            LimitValue::Finite(f) => Limit::Finite(f),
            LimitValue::Infinite => Limit::Infinite,
        })
    };
    Limits {
        cpus: one(l.cpus),
        mem_mb: one(l.mem_mb),
    }
}

fn command(c: Option<&Command>) -> CommandInfo {
    let Some(c) = c else {
        return CommandInfo::image_default();
    };
    CommandInfo {
        value: c.value.clone(),
        shell: c.shell,
        arguments: c.arguments.clone(),
        environment: c
            .environment
            .iter()
            .map(|(n, v)| EnvVar {
                name: n.clone(),
                value: v.clone(),
            })
            .collect(),
        uris: c
            .uris
            .iter()
            .map(|u| Uri {
                value: u.value.clone(),
                executable: u.executable,
                extract: u.extract,
                cache: u.cache,
                output_file: u.output_file.clone(),
                checksum: u.checksum.clone(),
            })
            .collect(),
        user: c.user.clone(),
    }
}

fn container(c: &ContainerSpec) -> ContainerInfo {
    ContainerInfo {
        kind: match c.kind {
            ContainerType::Docker => ContainerKind::Docker,
            ContainerType::Mesos => ContainerKind::Mesos,
        },
        docker: c.docker.as_ref().map(|d| DockerInfo {
            image: d.image.clone(),
            network: match &d.network {
                NetworkMode::Host => Network::Host,
                NetworkMode::Bridge => Network::Bridge,
                NetworkMode::None => Network::None,
                NetworkMode::User(n) => Network::User(n.clone()),
            },
            port_mappings: d
                .port_mappings
                .iter()
                .map(|(h, c, p)| PortMapping {
                    host_port: *h,
                    container_port: *c,
                    protocol: p.clone(),
                })
                .collect(),
            privileged: d.privileged,
            parameters: d
                .parameters
                .iter()
                .map(|(k, v)| Parameter {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            force_pull_image: d.force_pull_image,
        }),
        volumes: c
            .volumes
            .iter()
            .map(|v| Volume {
                container_path: v.container_path.clone(),
                host_path: v.host_path.clone(),
                mode: if v.read_only {
                    VolumeMode::Ro
                } else {
                    VolumeMode::Rw
                },
                source: v
                    .docker_volume
                    .as_ref()
                    .map(|dv| VolumeSource::DockerVolume {
                        name: dv.name.clone(),
                        driver: dv.driver.clone(),
                        driver_options: dv.options.iter().cloned().collect::<BTreeMap<_, _>>(),
                    }),
            })
            .collect(),
        hostname: c.hostname.clone(),
        tty_window_size: c.tty_window_size,
    }
}

/// The containerizer's health check from the wire's.
fn health_check(h: &HealthCheckSpec) -> HealthCheck {
    HealthCheck {
        check: match &h.kind {
            HealthCheckKind::Command(c) => Check::Command(command(Some(c))),
            HealthCheckKind::Http {
                scheme,
                port,
                path,
                statuses,
                ipv6,
            } => Check::Http {
                scheme: scheme.clone(),
                port: *port,
                path: path.clone(),
                statuses: statuses.clone(),
                ipv6: *ipv6,
            },
            HealthCheckKind::Tcp { port, ipv6 } => Check::Tcp {
                port: *port,
                ipv6: *ipv6,
            },
            HealthCheckKind::Docker => Check::Docker,
        },
        delay: h.delay,
        interval: h.interval,
        timeout: h.timeout,
        grace_period: h.grace_period,
        consecutive_failures: h.consecutive_failures,
        kill_on_unhealthy: h.kill_on_unhealthy,
    }
}

/// The `berth.health` object of a container's entry (times in seconds since the epoch).
pub fn health_json(h: &Health) -> Value {
    let mut v = json!({
        "source": h.source.as_str(),
        "type": h.check_type,
        "status": h.state.as_str(),
        "consecutive_failures": h.consecutive_failures,
    });
    if h.source == HealthSource::Berth {
        v["checks_passed"] = json!(h.checks_passed);
        v["checks_failed"] = json!(h.checks_failed);
        v["killed"] = json!(h.killed);
    }
    if let Some(t) = h.last_check {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        v["last_check"] = json!(secs);
    }
    if let Some(o) = &h.last_output {
        v["last_output"] = json!(o);
    }
    if let Some(e) = &h.last_error {
        v["last_error"] = json!(e);
    }
    v
}

/// The launch spec for `req`, with its sandbox at `sandbox`.
pub fn launch_spec(req: &LaunchRequest, sandbox: PathBuf) -> LaunchSpec {
    LaunchSpec {
        command: command(req.command.as_ref()),
        container: req.container.as_ref().map(container),
        resources: resources(&req.resources),
        limits: limits(&req.limits),
        health_check: req.health_check.as_ref().map(health_check),
        sandbox,
        user: None,
        role: req.resources.allocation_role.clone(),
        kill_grace: None,
        reported_resources: req.resources.requested.clone(),
    }
}

/// `WAIT_CONTAINER`'s view of a termination.
pub fn termination(t: &Termination) -> TerminationView {
    TerminationView {
        exit_status: t.status,
        state: t.state.as_str().to_owned(),
        reason: t.reason.map(|r| r.as_str().to_owned()),
        limitation: t.limitation.as_ref().map(|l| l.resource.clone()),
        message: t.message.clone(),
    }
}

/// The `berth` extension's view of a pull in progress.
pub fn pull_json(p: &PullProgress) -> Value {
    json!({
        "layers": p.layers,
        "layers_done": p.layers_done,
        "downloaded_bytes": p.downloaded,
        "download_total_bytes": p.download_total,
        "extracted_bytes": p.extracted,
        "status": p.status,
    })
}

/// The `berth` extension's view of one URI being fetched (rates in bytes per second, times in
/// seconds; `total_bytes` and `eta_secs` only when the size is known).
pub fn fetch_json(p: &FetchProgress) -> Value {
    let mut v = json!({
        "index": p.index,
        "uri": p.uri,
        "phase": p.phase.as_str(),
        "done_bytes": p.bytes_done,
        "rate_bytes_per_sec": p.rate().round(),
        "elapsed_secs": p.elapsed.as_secs_f64(),
    });
    if let Some(total) = p.bytes_total {
        v["total_bytes"] = json!(total);
    }
    if let Some(eta) = p.eta() {
        v["eta_secs"] = json!(eta.as_secs_f64().ceil());
    }
    v
}

/// Mesos `ResourceStatistics` JSON (unset fields left out).
pub fn statistics_json(s: &ResourceStatistics) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        m.retain(|_, v| !v.is_null());
    }
    v
}

/// The `berth.sessions` of a container's `GET_CONTAINERS` entry: each session's Mesos id (with
/// its parent), Docker's exec id, and once it ended, its `exit_status` and message.
pub fn sessions_json(
    parent: &berth_containerizer::ContainerId,
    sessions: &[berth_containerizer::SessionStatus],
) -> Value {
    Value::Array(
        sessions
            .iter()
            .map(|s| {
                let mut v = json!({
                    "container_id": {"value": s.id.as_str(), "parent": {"value": parent.as_str()}},
                    "exec_id": s.exec_id,
                    "running": s.end.is_none(),
                });
                if let Some(end) = &s.end {
                    if let Some(code) = end.exit_code {
                        v["exit_status"] =
                            json!(berth_containerizer::termination::wait_status(code));
                    }
                    v["message"] = json!(end.message);
                }
                v
            })
            .collect(),
    )
}

/// One `GET_CONTAINERS` entry: Mesos's fields plus the `berth` extension object.
pub fn container_entry(
    status: &ContainerStatus,
    image: Option<&str>,
    usage: Option<&ResourceStatistics>,
) -> Value {
    let id = status.container_id.as_str();
    let mut cs = Map::new();
    cs.insert("container_id".into(), container_id(id));
    if let Some(pid) = status.pid {
        cs.insert("executor_pid".into(), json!(pid));
    }
    if !status.ip_addresses.is_empty() {
        let ips: Vec<Value> = status
            .ip_addresses
            .iter()
            .map(|ip| json!({ "protocol": if ip.contains(':') { "IPv6" } else { "IPv4" }, "ip_address": ip }))
            .collect();
        cs.insert("network_infos".into(), json!([{ "ip_addresses": ips }]));
    }
    let mut berth = Map::new();
    berth.insert("state".into(), json!(status.phase.to_string()));
    berth.insert("name".into(), json!(status.name));
    if let Some(image) = image {
        berth.insert("image".into(), json!(image));
    }
    if let Some(d) = &status.docker_id {
        berth.insert("docker_id".into(), json!(d));
    }
    if let Some(p) = &status.pull {
        berth.insert("pull".into(), pull_json(p));
    }
    if !status.fetch.is_empty() {
        berth.insert(
            "fetch".into(),
            Value::Array(status.fetch.iter().map(fetch_json).collect()),
        );
    }
    if let Some(h) = &status.health {
        berth.insert("health".into(), health_json(h));
    }
    if let Some(t) = &status.termination {
        let mut view = termination(t).to_json();
        // Mesos's `TaskStatus.healthy` of the terminal update; WAIT_CONTAINER's Mesos
        // message has no such field, Berth's extension carries it.
        if let Some(healthy) = t.healthy {
            view["healthy"] = json!(healthy);
        }
        berth.insert("termination".into(), view);
    }
    if !status.requested_resources.is_empty() {
        berth.insert(
            "resources".into(),
            Value::Array(status.requested_resources.clone()),
        );
    }
    let mut entry = Map::new();
    entry.insert("container_id".into(), container_id(id));
    entry.insert("container_status".into(), Value::Object(cs));
    if let Some(u) = usage {
        entry.insert("resource_statistics".into(), statistics_json(u));
    }
    entry.insert("berth".into(), Value::Object(berth));
    Value::Object(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{parse_call, Call};
    use berth_containerizer::{ContainerId, FetchPhase, Phase, Reason, TaskState};

    fn req(body: Value) -> LaunchRequest {
        match parse_call(
            json!({"type": "LAUNCH_CONTAINER", "launch_container": body})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
        {
            Call::LaunchContainer(l) => *l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wire_launch_becomes_the_same_launch_spec() {
        let r = req(json!({
            "container_id": {"value": "c1"},
            "command": {"value": "echo", "shell": false, "arguments": ["a"],
                        "environment": {"variables": [{"name": "K", "value": "v"}]},
                        "uris": [{"value": "/x.tgz", "extract": false}]},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}},
                          {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 8000, "end": 8001}]}}],
            "limits": {"mem": {"value": "Infinity"}},
            "container": {"type": "DOCKER", "docker": {"image": "busybox", "network": "BRIDGE",
                          "port_mappings": [{"host_port": 8000, "container_port": 80}]},
                          "volumes": [{"container_path": "/d", "host_path": "data", "mode": "RO"}]}
        }));
        let spec = launch_spec(&r, "/w/sandboxes/c1".into());
        assert_eq!(spec.sandbox, PathBuf::from("/w/sandboxes/c1"));
        assert_eq!(spec.command.value.as_deref(), Some("echo"));
        assert!(!spec.command.shell);
        assert_eq!(spec.command.arguments, ["a"]);
        assert_eq!(spec.command.environment[0].name, "K");
        assert!(!spec.command.uris[0].extract);
        assert_eq!(spec.resources.cpus, Some(0.25));
        assert!(spec.resources.has_port(8001));
        assert_eq!(spec.limits.mem_mb, Some(Limit::Infinite));
        let d = spec.docker_info().unwrap();
        assert_eq!(
            (d.image.as_str(), &d.network),
            ("busybox", &Network::Bridge)
        );
        assert_eq!(d.port_mappings[0].container_port, 80);
        let v = &spec.container.as_ref().unwrap().volumes[0];
        assert_eq!(
            (v.mode, v.host_path.as_deref()),
            (VolumeMode::Ro, Some("data"))
        );
    }

    #[test]
    fn no_command_runs_the_image_default() {
        let r = req(
            json!({"container_id": {"value": "c"}, "container": {"type": "DOCKER", "docker": {"image": "i"}}}),
        );
        let spec = launch_spec(&r, "/s".into());
        assert_eq!(spec.command, CommandInfo::image_default());
    }

    #[test]
    fn entries_have_mesos_fields_and_the_berth_extension() {
        let status = ContainerStatus {
            container_id: ContainerId::new("c1").unwrap(),
            phase: Phase::Pulling,
            name: "berth-c1".into(),
            image: Some("busybox".into()),
            docker_id: None,
            pid: Some(42),
            ip_addresses: vec!["172.17.0.2".into()],
            health: None,
            pull: Some(PullProgress {
                layers: 2,
                layers_done: 1,
                downloaded: 10,
                download_total: 20,
                ..Default::default()
            }),
            fetch: vec![FetchProgress {
                index: 0,
                uri: "http://h/a.tgz".into(),
                phase: FetchPhase::Downloading,
                bytes_done: 300,
                bytes_total: Some(1000),
                elapsed: std::time::Duration::from_secs(3),
            }],
            termination: None,
            requested_resources: vec![json!({"name": "cpus", "role": "web"})],
        };
        let e = container_entry(&status, Some("busybox:latest"), None);
        let f = &e["berth"]["fetch"][0];
        assert_eq!(f["uri"], "http://h/a.tgz");
        assert_eq!(f["phase"], "downloading");
        assert_eq!(
            (f["done_bytes"].as_u64(), f["total_bytes"].as_u64()),
            (Some(300), Some(1000))
        );
        assert_eq!(f["rate_bytes_per_sec"], 100.0);
        assert_eq!(f["eta_secs"], 7.0);
        assert_eq!(e["container_id"]["value"], "c1");
        assert_eq!(e["container_status"]["executor_pid"], 42);
        assert_eq!(
            e["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"],
            "172.17.0.2"
        );
        assert_eq!(e["berth"]["state"], "PULLING");
        assert_eq!(e["berth"]["image"], "busybox:latest");
        assert_eq!(e["berth"]["resources"][0]["role"], "web");
        assert_eq!(e["berth"]["pull"]["downloaded_bytes"], 10);
        assert!(e.get("resource_statistics").is_none());
        let stats = ResourceStatistics {
            timestamp: 1.0,
            mem_rss_bytes: Some(5),
            ..Default::default()
        };
        let e = container_entry(&status, None, Some(&stats));
        assert_eq!(
            e["resource_statistics"],
            json!({"timestamp": 1.0, "mem_rss_bytes": 5})
        );
    }

    #[test]
    fn health_is_in_the_berth_object_and_a_health_kill_in_its_termination() {
        let mut health = Health::starting(HealthSource::Berth, "COMMAND");
        health.state = berth_containerizer::HealthState::Unhealthy;
        health.consecutive_failures = 3;
        health.checks_passed = 1;
        health.checks_failed = 3;
        health.killed = true;
        health.last_check = Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(10));
        health.last_error = Some("the command exited with status 1".into());
        let status = ContainerStatus {
            requested_resources: Vec::new(),
            container_id: ContainerId::new("c1").unwrap(),
            phase: Phase::Terminated,
            name: "berth-c1".into(),
            image: None,
            docker_id: None,
            pid: None,
            ip_addresses: Vec::new(),
            pull: None,
            fetch: Vec::new(),
            termination: Some(Termination {
                status: Some(137 << 8),
                exit_code: Some(137),
                state: TaskState::Killed,
                reason: None,
                message: "Container killed: unhealthy".into(),
                limitation: None,
                healthy: Some(false),
            }),
            health: Some(health),
        };
        let e = container_entry(&status, None, None);
        assert_eq!(
            e["berth"]["health"],
            json!({"source": "berth", "type": "COMMAND", "status": "unhealthy",
                   "consecutive_failures": 3, "checks_passed": 1, "checks_failed": 3,
                   "killed": true, "last_check": 10.0,
                   "last_error": "the command exited with status 1"})
        );
        assert_eq!(e["berth"]["termination"]["healthy"], false);
        assert_eq!(e["berth"]["termination"]["state"], "TASK_KILLED");
        // WAIT_CONTAINER's view keeps to Mesos's fields.
        let wait = termination(status.termination.as_ref().unwrap()).to_json();
        assert!(wait.get("healthy").is_none(), "{wait}");
    }

    #[test]
    fn a_wire_health_check_becomes_the_containerizers() {
        let r = req(json!({
            "container_id": {"value": "c1"},
            "container": {"type": "DOCKER", "docker": {"image": "busybox"}},
            "health_check": {"type": "COMMAND", "command": {"value": "test -f /ok", "user": "nobody",
                "environment": {"variables": [{"name": "A", "value": "1"}]}},
                "delay_seconds": 1, "consecutive_failures": 2}}));
        let spec = launch_spec(&r, PathBuf::from("/sb"));
        let hc = spec.health_check.unwrap();
        let Check::Command(c) = &hc.check else {
            panic!("{hc:?}")
        };
        assert_eq!(c.value.as_deref(), Some("test -f /ok"));
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.environment[0].name, "A");
        assert_eq!(hc.delay, std::time::Duration::from_secs(1));
        assert_eq!(hc.consecutive_failures, 2);
        assert!(hc.kill_on_unhealthy);
    }

    #[test]
    fn terminations_map_to_wait_views() {
        let t = Termination {
            status: Some(137 << 8),
            exit_code: Some(137),
            state: TaskState::Failed,
            reason: Some(Reason::ContainerLimitationMemory),
            message: "Memory limit exceeded".into(),
            limitation: Some(berth_containerizer::termination::Limitation {
                resource: "mem".into(),
                message: "x".into(),
            }),
            healthy: None,
        };
        let v = termination(&t);
        assert_eq!(v.exit_status, Some(137 << 8));
        assert_eq!(v.state, "TASK_FAILED");
        assert_eq!(
            v.reason.as_deref(),
            Some("REASON_CONTAINER_LIMITATION_MEMORY")
        );
        assert_eq!(v.limitation.as_deref(), Some("mem"));
    }
}
