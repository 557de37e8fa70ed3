//! The v1 agent `Call`s Berth answers, and [`parse_call`]: request bytes to a typed [`Call`],
//! or a 400 naming the field.

use std::time::Duration;

use serde_json::Value;

use super::json::Obj;
use super::launch::{
    parse_command, parse_container, parse_duration_info, parse_health_check, parse_limits,
    parse_resources, LaunchRequest, LimitSpec, ResourceSpec,
};
use berth_containerizer::ContainerId;

use crate::error::ApiError;

/// Call types Berth answers, as sent in `type`.
pub const SUPPORTED_CALLS: &[&str] = &[
    "GET_HEALTH",
    "GET_FLAGS",
    "GET_VERSION",
    "GET_METRICS",
    "GET_CONTAINERS",
    "LAUNCH_CONTAINER",
    "WAIT_CONTAINER",
    "KILL_CONTAINER",
    "REMOVE_CONTAINER",
    "UPDATE_CONTAINER",
    "LIST_FILES",
    "READ_FILE",
    "SUBSCRIBE",
    "LAUNCH_NESTED_CONTAINER_SESSION",
    "WAIT_NESTED_CONTAINER",
    "KILL_NESTED_CONTAINER",
    "ATTACH_CONTAINER_INPUT",
    "ATTACH_CONTAINER_OUTPUT",
];

/// A `SUBSCRIBE` stream's heartbeat when the call names none (a Mesos master's).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// The shortest heartbeat a subscriber may ask for.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
/// The longest.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);

/// Other Mesos agent call types: recognised, so the answer can say "not supported" instead of
/// "unknown".
const MESOS_ONLY_CALLS: &[&str] = &[
    "GET_LOGGING_LEVEL",
    "SET_LOGGING_LEVEL",
    "GET_STATE",
    "GET_FRAMEWORKS",
    "GET_EXECUTORS",
    "GET_OPERATIONS",
    "GET_TASKS",
    "GET_AGENT",
    "GET_RESOURCE_PROVIDERS",
    "LAUNCH_NESTED_CONTAINER",
    "REMOVE_NESTED_CONTAINER",
    "ADD_RESOURCE_PROVIDER_CONFIG",
    "UPDATE_RESOURCE_PROVIDER_CONFIG",
    "REMOVE_RESOURCE_PROVIDER_CONFIG",
    "MARK_RESOURCE_PROVIDER_GONE",
    "PRUNE_IMAGES",
];

/// What a `WAIT`/`KILL` call names: a container, or a session in one (`container_id.parent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A top-level container.
    Container(ContainerId),
    /// A session (a nested container) of a running container.
    Session {
        /// The container it runs in.
        parent: ContainerId,
        /// The session's own id.
        id: ContainerId,
    },
}

/// A parsed `LAUNCH_NESTED_CONTAINER_SESSION`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRequest {
    /// The container the session runs in.
    pub parent: ContainerId,
    /// The session's id.
    pub id: ContainerId,
    /// The command (its `uris` are refused: a session fetches nothing).
    pub command: super::launch::Command,
    /// A TTY, with its window size when given (`container.tty_info`).
    pub tty: Option<Option<berth_containerizer::WindowSize>>,
}

/// A parsed agent call.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `GET_HEALTH`.
    GetHealth,
    /// `GET_FLAGS`.
    GetFlags,
    /// `GET_VERSION`.
    GetVersion,
    /// `GET_METRICS` (the timeout is accepted; Berth's metrics are always immediate).
    GetMetrics,
    /// `GET_CONTAINERS`.
    GetContainers,
    /// `LAUNCH_CONTAINER`.
    LaunchContainer(Box<LaunchRequest>),
    /// `WAIT_CONTAINER`.
    WaitContainer {
        /// The container.
        container_id: ContainerId,
    },
    /// `WAIT_CONTAINER` or `WAIT_NESTED_CONTAINER` of a session.
    WaitSession {
        /// The parent container.
        parent: ContainerId,
        /// The session.
        id: ContainerId,
        /// Sent as the deprecated `WAIT_NESTED_CONTAINER` (answered in its shape).
        nested_call: bool,
    },
    /// `KILL_CONTAINER` or `KILL_NESTED_CONTAINER` of a session.
    KillSession {
        /// The parent container.
        parent: ContainerId,
        /// The session.
        id: ContainerId,
        /// The signal (SIGKILL when none is given, as Mesos).
        signal: i32,
    },
    /// `LAUNCH_NESTED_CONTAINER_SESSION`.
    LaunchSession(Box<SessionRequest>),
    /// `ATTACH_CONTAINER_OUTPUT` of a top-level container.
    AttachOutput {
        /// The container.
        container_id: ContainerId,
    },
    /// `ATTACH_CONTAINER_INPUT`'s first record: whose stdin the stream feeds (a session, or a
    /// container launched with a TTY).
    AttachInput(Target),
    /// `KILL_CONTAINER`.
    KillContainer {
        /// The container.
        container_id: ContainerId,
        /// The signal, if given (SIGKILL by default; SIGTERM first when a grace is given).
        signal: Option<i32>,
        /// Berth's `kill_policy.grace_period`: stop (SIGTERM, then SIGKILL after it).
        grace: Option<Duration>,
    },
    /// `REMOVE_CONTAINER`.
    RemoveContainer {
        /// The container.
        container_id: ContainerId,
    },
    /// `UPDATE_CONTAINER` (Berth's).
    UpdateContainer {
        /// The container.
        container_id: ContainerId,
        /// New requests.
        resources: ResourceSpec,
        /// New limits.
        limits: LimitSpec,
    },
    /// `LIST_FILES`.
    ListFiles {
        /// Virtual path (`/containers/<id>/...`).
        path: String,
    },
    /// `SUBSCRIBE` (Berth's): a stream of every container's changes.
    Subscribe {
        /// How often a heartbeat is sent while nothing changes.
        heartbeat: Duration,
    },
    /// `READ_FILE`.
    ReadFile {
        /// Virtual path.
        path: String,
        /// Byte offset.
        offset: u64,
        /// Bytes wanted (all, up to the agent's cap, when `None`).
        length: Option<u64>,
    },
}

impl Call {
    /// The `type` this call was sent as.
    pub fn type_name(&self) -> &'static str {
        match self {
            Call::GetHealth => "GET_HEALTH",
            Call::GetFlags => "GET_FLAGS",
            Call::GetVersion => "GET_VERSION",
            Call::GetMetrics => "GET_METRICS",
            Call::GetContainers => "GET_CONTAINERS",
            Call::LaunchContainer(_) => "LAUNCH_CONTAINER",
            Call::WaitContainer { .. } => "WAIT_CONTAINER",
            Call::KillContainer { .. } => "KILL_CONTAINER",
            Call::RemoveContainer { .. } => "REMOVE_CONTAINER",
            Call::UpdateContainer { .. } => "UPDATE_CONTAINER",
            Call::ListFiles { .. } => "LIST_FILES",
            Call::ReadFile { .. } => "READ_FILE",
            Call::Subscribe { .. } => "SUBSCRIBE",
            Call::WaitSession {
                nested_call: true, ..
            } => "WAIT_NESTED_CONTAINER",
            Call::WaitSession { .. } => "WAIT_CONTAINER",
            Call::KillSession { .. } => "KILL_CONTAINER",
            Call::LaunchSession(_) => "LAUNCH_NESTED_CONTAINER_SESSION",
            Call::AttachInput(_) => "ATTACH_CONTAINER_INPUT",
            Call::AttachOutput { .. } => "ATTACH_CONTAINER_OUTPUT",
        }
    }
}

/// Parses a request body into a [`Call`]; every failure is a 400 naming the field.
pub fn parse_call(body: &[u8]) -> Result<Call, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    parse_call_value(&value)
}

/// Parses a `Call` already read as protobuf-JSON (from a JSON body, or transcoded from
/// protobuf by [`super::proto::parse_call`]); every failure is a 400 naming the field.
pub fn parse_call_value(value: &Value) -> Result<Call, ApiError> {
    let mut top = Obj::new("", value)?;
    let call_type = top.req_str("type")?;
    if !SUPPORTED_CALLS.contains(&call_type) {
        let supported = SUPPORTED_CALLS.join(", ");
        return Err(ApiError::bad_request(
            if MESOS_ONLY_CALLS.contains(&call_type) {
                format!("field 'type': call type \"{call_type}\" is not supported by Berth (supported: {supported})")
            } else {
                format!("field 'type': unknown call type \"{call_type}\" (supported: {supported})")
            },
        ));
    }
    let call = match call_type {
        "GET_HEALTH" => Call::GetHealth,
        "GET_FLAGS" => Call::GetFlags,
        "GET_VERSION" => Call::GetVersion,
        "GET_METRICS" => {
            if let Some(mut m) = top.opt_obj("get_metrics")? {
                if let Some(t) = m.opt_obj("timeout")? {
                    parse_duration_info(t)?;
                }
                m.finish()?;
            }
            Call::GetMetrics
        }
        "GET_CONTAINERS" => {
            if let Some(mut g) = top.opt_obj("get_containers")? {
                g.opt_bool("show_nested")?;
                g.opt_bool("show_standalone")?;
                g.finish()?;
            }
            Call::GetContainers
        }
        "LAUNCH_CONTAINER" => {
            Call::LaunchContainer(Box::new(parse_launch(top.req_obj("launch_container")?)?))
        }
        "WAIT_CONTAINER" | "WAIT_NESTED_CONTAINER" => {
            let nested_call = call_type == "WAIT_NESTED_CONTAINER";
            let mut w = top.req_obj(if nested_call {
                "wait_nested_container"
            } else {
                "wait_container"
            })?;
            let target = target(&mut w, nested_call)?;
            w.finish()?;
            match target {
                Target::Container(container_id) => Call::WaitContainer { container_id },
                Target::Session { parent, id } => Call::WaitSession {
                    parent,
                    id,
                    nested_call,
                },
            }
        }
        "KILL_NESTED_CONTAINER" => {
            let mut k = top.req_obj("kill_nested_container")?;
            let Target::Session { parent, id } = target(&mut k, true)? else {
                unreachable!("target() requires a parent for nested calls")
            };
            let signal = k.opt_int("signal", 1, 64)?.map_or(SIGKILL, |s| s as i32);
            k.finish()?;
            Call::KillSession { parent, id, signal }
        }
        "ATTACH_CONTAINER_OUTPUT" => {
            let mut a = top.req_obj("attach_container_output")?;
            let container_id = match target(&mut a, false)? {
                Target::Container(id) => id,
                Target::Session { .. } => {
                    return Err(ApiError::bad_request(format!(
                        "field '{}': a session's output is the answer to its \
                         LAUNCH_NESTED_CONTAINER_SESSION; attach to a top-level container",
                        a.field_path("container_id.parent")
                    )))
                }
            };
            a.finish()?;
            Call::AttachOutput { container_id }
        }
        "ATTACH_CONTAINER_INPUT" => {
            let mut a = top.req_obj("attach_container_input")?;
            let type_path = a.field_path("type");
            match a.req_str("type")? {
                "CONTAINER_ID" => {}
                other => {
                    return Err(ApiError::bad_request(format!(
                        "field '{type_path}': the stream's first record names the container \
                         (CONTAINER_ID), not \"{other}\""
                    )))
                }
            }
            let target = target(&mut a, false)?;
            a.finish()?;
            Call::AttachInput(target)
        }
        "LAUNCH_NESTED_CONTAINER_SESSION" => Call::LaunchSession(Box::new(parse_session(
            top.req_obj("launch_nested_container_session")?,
        )?)),
        "KILL_CONTAINER" => {
            let mut k = top.req_obj("kill_container")?;
            let container_id = match target(&mut k, false)? {
                Target::Container(id) => id,
                Target::Session { parent, id } => {
                    let signal = k.opt_int("signal", 1, 64)?.map_or(SIGKILL, |s| s as i32);
                    if k.get("kill_policy").is_some() {
                        return Err(ApiError::bad_request(format!(
                            "field '{}': a session's command is signalled at once; kill_policy is for containers",
                            k.field_path("kill_policy")
                        )));
                    }
                    k.finish()?;
                    top.finish()?;
                    return Ok(Call::KillSession { parent, id, signal });
                }
            };
            let signal = k.opt_int("signal", 1, 64)?.map(|s| s as i32);
            let mut grace = None;
            if let Some(mut policy) = k.opt_obj("kill_policy")? {
                if let Some(g) = policy.opt_obj("grace_period")? {
                    grace = Some(parse_duration_info(g)?);
                }
                policy.finish()?;
            }
            k.finish()?;
            Call::KillContainer {
                container_id,
                signal,
                grace,
            }
        }
        "REMOVE_CONTAINER" => {
            let mut r = top.req_obj("remove_container")?;
            let container_id = container_id(&mut r)?;
            r.finish()?;
            Call::RemoveContainer { container_id }
        }
        "UPDATE_CONTAINER" => {
            let mut u = top.req_obj("update_container")?;
            let container_id = container_id(&mut u)?;
            let resources = parse_resources(u.arr("resources")?)?;
            let raw_limits = u.get("limits");
            let limits = parse_limits(u.opt_obj("limits")?, raw_limits)?;
            u.finish()?;
            if resources == ResourceSpec::default() && limits == LimitSpec::default() {
                return Err(ApiError::bad_request(
                    "field 'update_container': give 'resources' (cpus, mem) or 'limits' to change",
                ));
            }
            Call::UpdateContainer {
                container_id,
                resources,
                limits,
            }
        }
        "SUBSCRIBE" => {
            let mut heartbeat = DEFAULT_HEARTBEAT;
            if let Some(mut sub) = top.opt_obj("subscribe")? {
                let path = sub.field_path("heartbeat_interval");
                if let Some(h) = sub.opt_obj("heartbeat_interval")? {
                    heartbeat = parse_duration_info(h)?;
                    if !(MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&heartbeat) {
                        return Err(ApiError::bad_request(format!(
                            "field '{path}': {heartbeat:?} is outside {MIN_HEARTBEAT:?}..={MAX_HEARTBEAT:?}"
                        )));
                    }
                }
                sub.finish()?;
            }
            Call::Subscribe { heartbeat }
        }
        "LIST_FILES" => {
            let mut l = top.req_obj("list_files")?;
            let path = l.req_str("path")?.to_owned();
            l.finish()?;
            Call::ListFiles { path }
        }
        "READ_FILE" => {
            let mut r = top.req_obj("read_file")?;
            let path = r.req_str("path")?.to_owned();
            let offset = r.opt_int("offset", 0, i64::MAX)?.unwrap_or(0) as u64;
            let length = r.opt_int("length", 0, i64::MAX)?.map(|l| l as u64);
            r.finish()?;
            Call::ReadFile {
                path,
                offset,
                length,
            }
        }
        _ => unreachable!("every supported call type is matched above"),
    };
    top.finish()?;
    Ok(call)
}

/// SIGKILL, what Mesos sends when a kill names no signal.
const SIGKILL: i32 = 9;

/// Reads `container_id` (a Mesos `ContainerID`: `{"value": ..}`) of a call on top-level
/// containers, validated by the containerizer's one id rule ([`ContainerId::new`]).
fn container_id(o: &mut Obj<'_>) -> Result<ContainerId, ApiError> {
    match target(o, false)? {
        Target::Container(id) => Ok(id),
        Target::Session { .. } => Err(ApiError::bad_request(format!(
            "field '{}': this call is for top-level containers; a nested container (a session) \
             is launched with LAUNCH_NESTED_CONTAINER_SESSION and waited for or killed with \
             WAIT_CONTAINER / KILL_CONTAINER",
            o.field_path("container_id.parent")
        ))),
    }
}

/// Reads `container_id`, which may name a session (`parent` = the container it runs in); a
/// nested call requires the parent. Nesting goes one level deep: sessions run in top-level
/// containers.
fn target(o: &mut Obj<'_>, parent_required: bool) -> Result<Target, ApiError> {
    let mut id = o.req_obj("container_id")?;
    id.schema(&super::schema::CONTAINER_ID);
    let value_path = id.field_path("value");
    let value = id.req_str("value")?;
    let value = ContainerId::new(value)
        .map_err(|e| ApiError::bad_request(format!("field '{value_path}': {e}")))?;
    let parent_path = id.field_path("parent");
    let parent = match id.opt_obj("parent")? {
        None if parent_required => {
            return Err(ApiError::bad_request(format!(
            "missing required field '{parent_path}': a nested container is named with its parent"
        )))
        }
        None => None,
        Some(mut p) => {
            p.schema(&super::schema::CONTAINER_ID);
            let pv_path = p.field_path("value");
            let pv = p.req_str("value")?;
            if p.get("parent").is_some() {
                return Err(ApiError::bad_request(format!(
                    "field '{}': sessions run in top-level containers; Berth nests one level",
                    p.field_path("parent")
                )));
            }
            p.finish()?;
            Some(
                ContainerId::new(pv)
                    .map_err(|e| ApiError::bad_request(format!("field '{pv_path}': {e}")))?,
            )
        }
    };
    id.finish()?;
    Ok(match parent {
        None => Target::Container(value),
        Some(parent) => Target::Session { parent, id: value },
    })
}

/// Reads `launch_nested_container_session`: the session's id (with its parent), the command,
/// and of `container` only what a session in a running container can have: its type and a TTY.
fn parse_session(mut o: Obj<'_>) -> Result<SessionRequest, ApiError> {
    let Target::Session { parent, id } = target(&mut o, true)? else {
        unreachable!("target() requires a parent for nested calls")
    };
    let command = match o.opt_obj("command")? {
        Some(c) => super::launch::parse_command(c)?,
        None => {
            return Err(ApiError::bad_request(format!(
                "missing required field '{}': a session runs a command",
                o.field_path("command")
            )))
        }
    };
    if !command.uris.is_empty() {
        return Err(ApiError::bad_request(format!(
            "field '{}': a session runs in its parent's sandbox and fetches nothing",
            o.field_path("command.uris")
        )));
    }
    if command.value.is_none() {
        return Err(ApiError::bad_request(format!(
            "missing required field '{}': the session's command",
            o.field_path("command.value")
        )));
    }
    let mut tty = None;
    if let Some(mut c) = o.opt_obj("container")? {
        c.schema(&super::schema::CONTAINER_INFO);
        let type_path = c.field_path("type");
        match c.opt_str("type")? {
            None | Some("DOCKER" | "MESOS") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "field '{type_path}': \"{other}\" is not a container type (DOCKER, MESOS)"
                )))
            }
        }
        if let Some(t) = c.opt_obj("tty_info")? {
            tty = Some(super::launch::parse_tty_info(t)?);
        }
        // Everything else describes a container of its own; a session has its parent's.
        for key in [
            "volumes",
            "hostname",
            "docker",
            "mesos",
            "network_infos",
            "linux_info",
            "rlimit_info",
        ] {
            if c.get(key).is_some() {
                return Err(ApiError::bad_request(format!(
                    "field '{}': a session runs in its parent's container; of ContainerInfo it takes only 'type' and 'tty_info'",
                    c.field_path(key)
                )));
            }
        }
        c.finish()?;
    }
    o.finish()?;
    Ok(SessionRequest {
        parent,
        id,
        command,
        tty,
    })
}

fn parse_launch(mut o: Obj<'_>) -> Result<LaunchRequest, ApiError> {
    o.schema(&super::schema::LAUNCH_CONTAINER);
    let container_id = container_id(&mut o)?;
    let command = match o.opt_obj("command")? {
        Some(c) => Some(parse_command(c)?),
        None => None,
    };
    let resources = parse_resources(o.arr("resources")?)?;
    let raw_limits = o.get("limits");
    let limits = parse_limits(o.opt_obj("limits")?, raw_limits)?;
    let container = match o.opt_obj("container")? {
        Some(c) => Some(parse_container(c)?),
        None => None,
    };
    let health_check = match o.opt_obj("health_check")? {
        Some(h) => Some(parse_health_check(h)?),
        None => None,
    };
    o.finish()?;
    Ok(LaunchRequest {
        container_id,
        command,
        resources,
        limits,
        container,
        health_check,
    })
}

#[cfg(test)]
mod tests {
    use super::super::launch::{ContainerType, LimitValue, NetworkMode};
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Call, String> {
        parse_call(v.to_string().as_bytes()).map_err(|e| {
            assert_eq!(e.status, 400);
            e.message
        })
    }

    fn launch(body: Value) -> Result<LaunchRequest, String> {
        match parse(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))? {
            Call::LaunchContainer(l) => Ok(*l),
            other => panic!("{other:?}"),
        }
    }

    fn docker(image: &str) -> Value {
        json!({"type": "DOCKER", "docker": {"image": image}})
    }

    #[test]
    fn a_full_mesos_launch_parses() {
        let l = launch(json!({
            "container_id": {"value": "c1"},
            "command": {
                "value": "echo hi", "shell": true,
                "environment": {"variables": [{"name": "A", "value": "1", "type": "VALUE"}]},
                "uris": [{"value": "http://h/a.tgz", "cache": true,
                          "checksum": format!("sha256:{}", "ab".repeat(32))}],
                "user": "nobody"
            },
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "*"},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
                {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31005}]}}
            ],
            "limits": {"cpus": {"value": 1}, "mem": {"value": "Infinity"}},
            "container": {
                "type": "DOCKER",
                "docker": {"image": "busybox", "network": "USER", "privileged": false,
                           "port_mappings": [{"host_port": 31000, "container_port": 80, "protocol": "tcp"}],
                           "parameters": [{"key": "cap-add", "value": "NET_ADMIN"}], "force_pull_image": true},
                "network_infos": [{"name": "mynet"}],
                "volumes": [{"container_path": "/data", "host_path": "/srv", "mode": "RO"},
                            {"container_path": "/v", "mode": "RW",
                             "source": {"type": "DOCKER_VOLUME", "docker_volume": {"name": "vol", "driver": "local"}}}]
            }
        }))
        .unwrap();
        assert_eq!(l.container_id.as_str(), "c1");
        let cmd = l.command.unwrap();
        assert_eq!(cmd.environment, vec![("A".into(), "1".into())]);
        assert!(cmd.uris[0].cache && cmd.uris[0].extract);
        assert_eq!(l.resources.cpus, Some(0.5));
        assert_eq!(l.resources.ports, vec![(31000, 31005)]);
        assert_eq!(l.limits.mem_mb, Some(LimitValue::Infinite));
        assert_eq!(l.limits.cpus, Some(LimitValue::Finite(1.0)));
        let c = l.container.unwrap();
        assert_eq!(c.kind, ContainerType::Docker);
        let d = c.docker.unwrap();
        assert_eq!(d.network, NetworkMode::User("mynet".into()));
        assert!(d.force_pull_image);
        assert!(c.volumes[0].read_only);
        assert_eq!(c.volumes[1].docker_volume.as_ref().unwrap().name, "vol");
    }

    #[test]
    fn simple_calls_parse() {
        assert_eq!(
            parse(json!({"type": "GET_HEALTH"})).unwrap(),
            Call::GetHealth
        );
        assert_eq!(
            parse(json!({"type": "GET_CONTAINERS", "get_containers": {"show_nested": false}}))
                .unwrap(),
            Call::GetContainers
        );
        assert_eq!(
            parse(json!({"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 5}}}))
                .unwrap(),
            Call::GetMetrics
        );
        assert_eq!(
            parse(json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "x"}}})).unwrap(),
            Call::KillContainer { container_id: ContainerId::new("x").unwrap(), signal: None, grace: None }
        );
        assert_eq!(
            parse(json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "x"}, "signal": 15,
                   "kill_policy": {"grace_period": {"nanoseconds": 2_000_000_000u64}}}}))
            .unwrap(),
            Call::KillContainer { container_id: ContainerId::new("x").unwrap(), signal: Some(15), grace: Some(Duration::from_secs(2)) }
        );
        assert_eq!(
            parse(json!({"type": "READ_FILE", "read_file": {"path": "/containers/x/stdout", "offset": "3", "length": 10}}))
                .unwrap(),
            Call::ReadFile { path: "/containers/x/stdout".into(), offset: 3, length: Some(10) }
        );
    }

    #[test]
    fn container_ids_follow_the_containerizer_rule_and_name_the_field() {
        let wait = |id: &str| {
            parse(
                json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": id}}}),
            )
        };
        let longest = "x".repeat(128);
        for ok in ["a", ".a", "-", "_x", "...", longest.as_str()] {
            match wait(ok) {
                Ok(Call::WaitContainer { container_id }) => assert_eq!(container_id.as_str(), ok),
                other => panic!("{ok:?}: {other:?}"),
            }
        }
        for (bad, why) in [
            ("", "it is empty"),
            (".", "\".\" is not allowed"),
            ("..", "\"..\" is not allowed"),
            ("a/b", "it contains '/'"),
        ] {
            let e = wait(bad).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "field 'wait_container.container_id.value': invalid container id {bad:?}: "
                )),
                "{bad:?}: {e}"
            );
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let e = wait(&"x".repeat(129)).unwrap_err();
        assert!(e.contains("129 bytes long; at most 128"), "{e}");
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({}), "missing required field 'type'"),
            (
                json!({"type": 3}),
                "field 'type': expected a string, found a number",
            ),
            (json!({"type": "FOO"}), "unknown call type \"FOO\""),
            (
                json!({"type": "GET_TASKS"}),
                "\"GET_TASKS\" is not supported by Berth",
            ),
            (
                json!({"type": "GET_HEALTH", "extra": 1}),
                "unknown field 'extra'",
            ),
            (
                json!({"type": "WAIT_CONTAINER"}),
                "missing required field 'wait_container'",
            ),
            (
                json!({"type": "WAIT_CONTAINER", "wait_container": {}}),
                "missing required field 'wait_container.container_id'",
            ),
            (
                json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": "x"}}),
                "field 'wait_container.container_id': expected an object, found a string",
            ),
            (
                json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "../x"}}}),
                "field 'wait_container.container_id.value': invalid container id \"../x\"",
            ),
            (
                json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": ".."}}}),
                "invalid container id \"..\"",
            ),
            (
                json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "a".repeat(129)}}}),
                "129 bytes",
            ),
            (
                json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": "x", "parent": {"value": "p"}}}}),
                "remove_container.container_id.parent': this call is for top-level containers",
            ),
            (
                json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "x"}, "signal": 99}}),
                "field 'kill_container.signal': 99 is out of range",
            ),
            (
                json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "x"}, "signal": "TERM"}}),
                "field 'kill_container.signal': expected an integer",
            ),
            (
                json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "x"}, "kill_policy": {"grace_period": {"nanoseconds": -1}}}}),
                "kill_container.kill_policy.grace_period.nanoseconds",
            ),
            (
                json!({"type": "READ_FILE", "read_file": {"path": "/x", "offset": -2}}),
                "field 'read_file.offset'",
            ),
            (
                json!({"type": "UPDATE_CONTAINER", "update_container": {"container_id": {"value": "x"}}}),
                "give 'resources'",
            ),
        ];
        for (body, expected) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert!(
                e.contains(expected),
                "{body}: got {e:?}, wanted {expected:?}"
            );
        }
    }

    #[test]
    fn bad_launches_name_their_field() {
        let id = json!({"value": "c"});
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"container_id": id, "command": {"value": 5}}),
                "field 'launch_container.command.value': expected a string, found a number",
            ),
            (
                json!({"container_id": id, "command": {"shell": true}}),
                "no command value",
            ),
            (
                json!({"container_id": id, "command": {"value": "x", "arguments": [1]}}),
                "launch_container.command.arguments[0]",
            ),
            (
                json!({"container_id": id, "command": {"value": "x", "uris": [{"value": "http://a", "checksum": "md5:00"}]}}),
                "launch_container.command.uris[0].checksum",
            ),
            (
                json!({"container_id": id, "command": {"value": "x", "uris": [{"value": "http://a", "output_file": "../x"}]}}),
                "launch_container.command.uris[0].output_file",
            ),
            (
                json!({"container_id": id, "command": {"value": "x", "environment": {"variables": [{"name": "A=B", "value": "1"}]}}}),
                "launch_container.command.environment.variables[0].name",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER"}}),
                "missing required field 'launch_container.container.docker'",
            ),
            (
                json!({"container_id": id, "container": {"type": "LXC"}}),
                "field 'launch_container.container.type': unknown value \"LXC\"",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {}}}),
                "missing required field 'launch_container.container.docker.image'",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {"image": "b", "network": "OVERLAY"}}}),
                "launch_container.container.docker.network",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {"image": "b", "network": "USER"}}}),
                "exactly one entry in 'network_infos'",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {"image": "b", "port_mappings": [{"host_port": 70000, "container_port": 1}]}}}),
                "launch_container.container.docker.port_mappings[0].host_port",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {"image": "b", "privileged": "yes"}}}),
                "launch_container.container.docker.privileged': expected a boolean",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {"image": "b", "imagee": "x"}}}),
                "unknown field 'launch_container.container.docker.imagee'",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {"image": "b"}, "volumes": [{"container_path": "/x"}]}}),
                "launch_container.container.volumes[0]",
            ),
            (
                json!({"container_id": id, "container": {"type": "DOCKER", "docker": {"image": "b"}, "volumes": [{"container_path": "/x", "host_path": "/y", "mode": "RX"}]}}),
                "launch_container.container.volumes[0].mode",
            ),
            (
                json!({"container_id": id, "resources": [{"name": "gpus", "type": "SCALAR", "scalar": {"value": 1}}]}),
                "launch_container.resources[0].name",
            ),
            (
                json!({"container_id": id, "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]}),
                "launch_container.resources[0].scalar.value",
            ),
            (
                json!({"container_id": id, "resources": [{"name": "ports", "ranges": {"range": [{"begin": 9, "end": 3}]}}]}),
                "ends before it begins",
            ),
            (
                json!({"container_id": id, "resources": {"cpus": 1}}),
                "field 'launch_container.resources': expected an array",
            ),
            (
                json!({"container_id": id, "limits": {"disk": {"value": 1}}}),
                "launch_container.limits.disk",
            ),
            (
                json!({"container_id": id, "limits": {"mem": {"value": 0}}}),
                "launch_container.limits.mem.value",
            ),
            (
                json!({"container_id": id, "limits": {"mem": {}}}),
                "missing required field 'launch_container.limits.mem.value'",
            ),
        ];
        for (body, expected) in cases {
            let e = launch(body.clone()).unwrap_err();
            assert!(
                e.contains(expected),
                "{body}: got {e:?}, wanted {expected:?}"
            );
        }
    }

    #[test]
    fn malformed_json_is_a_400_with_the_position() {
        let e = parse_call(b"{\"type\": ").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with("malformed JSON at line 1 column"),
            "{}",
            e.message
        );
        let e = parse_call(&[0xff, 0xfe]).unwrap_err();
        assert!(e.message.contains("malformed JSON"));
        let e = parse_call(b"[]").unwrap_err();
        assert!(e.message.contains("must be a JSON object"));
    }

    #[test]
    fn mesos_container_type_is_parsed_for_the_not_supported_answer() {
        let l = launch(json!({"container_id": {"value": "c"}, "container": {"type": "MESOS", "mesos": {"image": {}}}})).unwrap();
        assert_eq!(l.container.unwrap().kind, ContainerType::Mesos);
        let l = launch(json!({"container_id": {"value": "c"}, "container": docker("b")})).unwrap();
        assert!(l.command.is_none());
    }

    #[test]
    fn subscribe_takes_a_bounded_heartbeat() {
        let parse = |v: serde_json::Value| parse_call(v.to_string().as_bytes());
        assert_eq!(
            parse(json!({"type": "SUBSCRIBE"})).unwrap(),
            Call::Subscribe {
                heartbeat: DEFAULT_HEARTBEAT
            }
        );
        assert_eq!(
            parse(json!({"type": "SUBSCRIBE", "subscribe": {"heartbeat_interval": {"nanoseconds": 500_000_000}}}))
                .unwrap(),
            Call::Subscribe {
                heartbeat: Duration::from_millis(500)
            }
        );
        for bad in [1_000u64, 7_200_000_000_000] {
            let e = parse(json!({"type": "SUBSCRIBE", "subscribe": {"heartbeat_interval": {"nanoseconds": bad}}}))
                .unwrap_err();
            assert!(
                e.message.contains("subscribe.heartbeat_interval"),
                "{}",
                e.message
            );
        }
        let e = parse(json!({"type": "SUBSCRIBE", "subscribe": {"every": 1}})).unwrap_err();
        assert!(e.message.contains("every"), "{}", e.message);
    }

    #[test]
    fn every_supported_call_type_is_parsed_never_unreachable() {
        for t in SUPPORTED_CALLS {
            let r =
                std::panic::catch_unwind(|| parse_call(json!({"type": t}).to_string().as_bytes()));
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => assert_eq!(e.status, 400, "{t}: {}", e.message),
                Err(_) => panic!("{t} has no arm in parse_call"),
            }
        }
    }
}
