//! The v1 agent `Call`s Berth answers, and [`parse_call`]: request bytes to a typed [`Call`],
//! or a 400 naming the field.

use std::time::Duration;

use serde_json::Value;

use super::json::Obj;
use super::launch::{
    parse_command, parse_container, parse_duration_info, parse_limits, parse_resources,
    LaunchRequest, LimitSpec, ResourceSpec,
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
];

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
    "WAIT_NESTED_CONTAINER",
    "KILL_NESTED_CONTAINER",
    "REMOVE_NESTED_CONTAINER",
    "LAUNCH_NESTED_CONTAINER_SESSION",
    "ATTACH_CONTAINER_INPUT",
    "ATTACH_CONTAINER_OUTPUT",
    "ADD_RESOURCE_PROVIDER_CONFIG",
    "UPDATE_RESOURCE_PROVIDER_CONFIG",
    "REMOVE_RESOURCE_PROVIDER_CONFIG",
    "MARK_RESOURCE_PROVIDER_GONE",
    "PRUNE_IMAGES",
];

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
    let mut top = Obj::new("", &value)?;
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
        "WAIT_CONTAINER" => {
            let mut w = top.req_obj("wait_container")?;
            let container_id = container_id(&mut w)?;
            w.finish()?;
            Call::WaitContainer { container_id }
        }
        "KILL_CONTAINER" => {
            let mut k = top.req_obj("kill_container")?;
            let container_id = container_id(&mut k)?;
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

/// Reads `container_id` (a Mesos `ContainerID`: `{"value": ..}`), validated by the
/// containerizer's one id rule ([`ContainerId::new`]).
fn container_id(o: &mut Obj<'_>) -> Result<ContainerId, ApiError> {
    let mut id = o.req_obj("container_id")?;
    id.schema(&super::schema::CONTAINER_ID);
    let value_path = id.field_path("value");
    let value = id.req_str("value")?;
    if id.get("parent").is_some() {
        return Err(ApiError::bad_request(format!(
            "field '{}': nested containers are not supported",
            id.field_path("parent")
        )));
    }
    id.finish()?;
    ContainerId::new(value).map_err(|e| ApiError::bad_request(format!("field '{value_path}': {e}")))
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
    o.finish()?;
    Ok(LaunchRequest {
        container_id,
        command,
        resources,
        limits,
        container,
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
                json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "x", "parent": {"value": "p"}}}}),
                "nested containers",
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
}
