//! Every field Mesos defines in the request messages Berth reads, with what Berth does with it.
//!
//! One table per message, read by the strict walker ([`super::json::Obj::schema`]). The
//! message's names, numbers and types are its definition in `proto/mesos/v1/` (what the
//! protobuf medium is built from); a table adds only Berth's disposition, and a test checks that
//! each table names exactly the fields of its definition. A field the parser reads is honoured; a field marked [`Disposition::Ignored`] is accepted and dropped; a
//! field marked [`Disposition::Refused`] is answered with a 400 naming it and giving the reason;
//! anything else is an unknown field. `docs/api.md` carries the same table for people (a test
//! keeps the two in step).

/// What Berth does with one Mesos field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Read and applied with its Mesos meaning.
    Honoured,
    /// Accepted and dropped, for this reason.
    Ignored(&'static str),
    /// Validated, kept with the container and reported back (GET_CONTAINERS' `berth.resources`),
    /// but not enforced, for this reason.
    Kept(&'static str),
    /// Refused with a 400, for this reason.
    Refused(&'static str),
}

/// One field of a Mesos message. Its number and type are in the definitions
/// (`proto/mesos/v1/`, see [`Message::descriptor`]); a test keeps the two in step.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The field's Mesos (protobuf-JSON) name.
    pub name: &'static str,
    /// What Berth does with it.
    pub disposition: Disposition,
}

/// A Mesos message: its name and all its fields.
#[derive(Debug)]
pub struct Message {
    /// The Mesos message name (`ContainerInfo.DockerInfo`).
    pub name: &'static str,
    /// Every field Mesos defines in it.
    pub fields: &'static [Field],
}

impl Message {
    /// The field called `name`, if Mesos defines one.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The message's definition (names, numbers, types), from `proto/mesos/v1/`.
    pub fn descriptor(&self) -> prost_reflect::MessageDescriptor {
        super::proto::message(&format!("mesos.v1.{}", self.name))
    }
}

use Disposition::{Honoured as H, Ignored, Kept, Refused};

const fn f(name: &'static str, disposition: Disposition) -> Field {
    Field { name, disposition }
}

const NO_SECRETS: &str = "Berth has no secret resolver";
const NO_MESOS_CONTAINERIZER: &str =
    "Berth is a Docker containerizer; the Mesos containerizer's settings have no Docker meaning";

/// `ContainerID`.
pub static CONTAINER_ID: Message = Message {
    name: "ContainerID",
    fields: &[f("value", H), f("parent", H)],
};

/// `agent.Call.LaunchContainer`.
pub static LAUNCH_CONTAINER: Message = Message {
    name: "agent.Call.LaunchContainer",
    fields: &[
        f("container_id", H),
        f("command", H),
        f("resources", H),
        f("container", H),
        f("limits", H),
        f("health_check", H),
    ],
};

/// `CommandInfo`.
pub static COMMAND_INFO: Message = Message {
    name: "CommandInfo",
    fields: &[
        f("uris", H),
        f("environment", H),
        f("shell", H),
        f("value", H),
        f("arguments", H),
        f("user", H),
    ],
};

/// `CommandInfo.URI` (plus Berth's `checksum`, documented as an extension).
pub static URI: Message = Message {
    name: "CommandInfo.URI",
    fields: &[
        f("value", H),
        f("executable", H),
        f("extract", H),
        f("cache", H),
        f("output_file", H),
        f("checksum", H),
    ],
};

/// `Environment`.
pub static ENVIRONMENT: Message = Message {
    name: "Environment",
    fields: &[f("variables", H)],
};

/// `Environment.Variable`.
pub static VARIABLE: Message = Message {
    name: "Environment.Variable",
    fields: &[
        f("name", H),
        f("type", H),
        f("value", H),
        f("secret", Refused(NO_SECRETS)),
    ],
};

/// `ContainerInfo`.
pub static CONTAINER_INFO: Message = Message {
    name: "ContainerInfo",
    fields: &[
        f("type", H),
        f("volumes", H),
        f("hostname", H),
        f("docker", H),
        f("mesos", Ignored(NO_MESOS_CONTAINERIZER)),
        f("network_infos", H),
        f("linux_info", H),
        f("rlimit_info", H),
        f("tty_info", H),
    ],
};

/// `ContainerInfo.DockerInfo`.
pub static DOCKER_INFO: Message = Message {
    name: "ContainerInfo.DockerInfo",
    fields: &[
        f("image", H),
        f("network", H),
        f("port_mappings", H),
        f("privileged", H),
        f("parameters", H),
        f("force_pull_image", H),
        f("volume_driver", H),
    ],
};

/// `ContainerInfo.DockerInfo.PortMapping`.
pub static DOCKER_PORT_MAPPING: Message = Message {
    name: "ContainerInfo.DockerInfo.PortMapping",
    fields: &[f("host_port", H), f("container_port", H), f("protocol", H)],
};

/// `Parameter`.
pub static PARAMETER: Message = Message {
    name: "Parameter",
    fields: &[f("key", H), f("value", H)],
};

/// `Parameters`.
pub static PARAMETERS: Message = Message {
    name: "Parameters",
    fields: &[f("parameter", H)],
};

/// `NetworkInfo`.
pub static NETWORK_INFO: Message = Message {
    name: "NetworkInfo",
    fields: &[
        f(
            "ip_addresses",
            Ignored("Docker assigns addresses; Mesos's IP requests are for CNI"),
        ),
        f("name", H),
        f(
            "groups",
            Ignored("network groups are a Mesos network-isolator setting"),
        ),
        f(
            "labels",
            Ignored("labels for CNI plugins; Docker networks take none"),
        ),
        f(
            "port_mappings",
            Ignored("CNI port mappings; Docker's come from DockerInfo.port_mappings"),
        ),
    ],
};

/// `Volume`.
pub static VOLUME: Message = Message {
    name: "Volume",
    fields: &[
        f("mode", H),
        f("container_path", H),
        f("host_path", H),
        f(
            "image",
            Refused("image volumes need the Mesos containerizer's provisioner"),
        ),
        f("source", H),
    ],
};

/// `Volume.Source`.
pub static VOLUME_SOURCE: Message = Message {
    name: "Volume.Source",
    fields: &[
        f("type", H),
        f("docker_volume", H),
        f(
            "host_path",
            Refused("only DOCKER_VOLUME sources are supported"),
        ),
        f(
            "sandbox_path",
            Refused("only DOCKER_VOLUME sources are supported"),
        ),
        f("secret", Refused(NO_SECRETS)),
        f("csi_volume", Refused("Berth has no CSI support")),
    ],
};

/// `Volume.Source.DockerVolume`.
pub static DOCKER_VOLUME: Message = Message {
    name: "Volume.Source.DockerVolume",
    fields: &[f("driver", H), f("name", H), f("driver_options", H)],
};

/// `LinuxInfo`.
pub static LINUX_INFO: Message = Message {
    name: "LinuxInfo",
    fields: &[
        f("capability_info", H),
        f("bounding_capabilities", H),
        f("effective_capabilities", H),
        f("share_pid_namespace",
            Refused(
                "true is refused (false, the default, is accepted): for a top-level container \
                 it means the agent's PID namespace, which Berth does not give callers \
                 (Docker's --pid host is the host's, not a parent's)",
            ),
        ),
        f("seccomp",
            Refused("Mesos seccomp profiles name files of the agent's profile directory, which Berth does not have"),
        ),
        f("ipc_mode",
            Refused("Docker gives every container a private IPC namespace; sharing the agent's is not offered"),
        ),
        f("shm_size",
            Refused("it applies only with ipc_mode PRIVATE; use the shm-size docker parameter"),
        ),
        f("share_cgroups",
            Refused(
                "false is refused (true, the default, is accepted): it concerns nested \
                 containers, which are not supported",
            ),
        ),
    ],
};

/// `CapabilityInfo`.
pub static CAPABILITY_INFO: Message = Message {
    name: "CapabilityInfo",
    fields: &[f("capabilities", H)],
};

/// `RLimitInfo`.
pub static RLIMIT_INFO: Message = Message {
    name: "RLimitInfo",
    fields: &[f("rlimits", H)],
};

/// `RLimitInfo.RLimit`.
pub static RLIMIT: Message = Message {
    name: "RLimitInfo.RLimit",
    fields: &[f("type", H), f("hard", H), f("soft", H)],
};

/// `TTYInfo`.
pub static TTY_INFO: Message = Message {
    name: "TTYInfo",
    fields: &[f("window_size", H)],
};

/// `TTYInfo.WindowSize`.
pub static WINDOW_SIZE: Message = Message {
    name: "TTYInfo.WindowSize",
    fields: &[f("rows", H), f("columns", H)],
};

/// `Resource`.
pub static RESOURCE: Message = Message {
    name: "Resource",
    fields: &[
        f("provider_id",
            Refused("Berth has no resource providers; resources come from the agent itself"),
        ),
        f("name", H),
        f("type", H),
        f("scalar", H),
        f("ranges", H),
        f("set",
            Refused("no resource Berth supports (cpus, mem, disk, ports) is a SET"),
        ),
        f("role", Kept(NO_ALLOCATION)),
        f("allocation_info", H),
        f("reservation", Kept(NO_ALLOCATION)),
        f("reservations", Kept(NO_ALLOCATION)),
        f("disk", H),
        f(
            "revocable",
            Kept("a standalone agent never revokes: the container runs as with any other resource"),
        ),
        f("shared",
            Refused("Mesos allows shared resources only for persistent volumes, which Berth does not support"),
        ),
    ],
};

const NO_ALLOCATION: &str = "roles and reservations are a Mesos master's allocation bookkeeping; \
     a standalone agent has no allocator to enforce them";

/// `Resource.AllocationInfo`: its role is the container's `MESOS_ALLOCATION_ROLE`.
pub static ALLOCATION_INFO: Message = Message {
    name: "Resource.AllocationInfo",
    fields: &[f("role", H)],
};

/// `Resource.ReservationInfo` (kept and reported).
pub static RESERVATION_INFO: Message = Message {
    name: "Resource.ReservationInfo",
    fields: &[
        f("type", H),
        f("role", H),
        f("principal", H),
        f("labels", H),
    ],
};

/// `Labels`.
pub static LABELS: Message = Message {
    name: "Labels",
    fields: &[f("labels", H)],
};

/// `Label`.
pub static LABEL: Message = Message {
    name: "Label",
    fields: &[f("key", H), f("value", H)],
};

/// `Resource.RevocableInfo` (no fields).
pub static REVOCABLE_INFO: Message = Message {
    name: "Resource.RevocableInfo",
    fields: &[],
};

/// `Resource.DiskInfo`.
pub static DISK_INFO: Message = Message {
    name: "Resource.DiskInfo",
    fields: &[
        f("persistence",
            Refused("Berth has no persistent volumes"),
        ),
        f("volume",
            Refused("disk volumes belong to persistent volumes, which Berth does not have"),
        ),
        f("source",
            Refused("Berth has one disk, the agent's; PATH/MOUNT/BLOCK/RAW sources come from resource providers"),
        ),
    ],
};

/// `Value.Scalar`.
pub static SCALAR: Message = Message {
    name: "Value.Scalar",
    fields: &[f("value", H)],
};

/// `Value.Ranges`.
pub static RANGES: Message = Message {
    name: "Value.Ranges",
    fields: &[f("range", H)],
};

/// `Value.Range`.
pub static RANGE: Message = Message {
    name: "Value.Range",
    fields: &[f("begin", H), f("end", H)],
};

/// `HealthCheck` (Mesos carries it in `TaskInfo`; Berth in `LaunchContainer.health_check`),
/// plus Berth's `kill_on_unhealthy`.
pub static HEALTH_CHECK: Message = Message {
    name: "HealthCheck",
    fields: &[
        f("http", H),
        f("delay_seconds", H),
        f("interval_seconds", H),
        f("timeout_seconds", H),
        f("consecutive_failures", H),
        f("grace_period_seconds", H),
        f("command", H),
        f("type", H),
        f("tcp", H),
        f("kill_on_unhealthy", H),
    ],
};

/// `HealthCheck.HTTPCheckInfo`.
pub static HTTP_CHECK_INFO: Message = Message {
    name: "HealthCheck.HTTPCheckInfo",
    fields: &[
        f("port", H),
        f("path", H),
        f("scheme", H),
        f("statuses", H),
        f("protocol", H),
    ],
};

/// `HealthCheck.TCPCheckInfo`.
pub static TCP_CHECK_INFO: Message = Message {
    name: "HealthCheck.TCPCheckInfo",
    fields: &[f("port", H), f("protocol", H)],
};

/// Every table, for the docs check.
pub static ALL: &[&Message] = &[
    &CONTAINER_ID,
    &LAUNCH_CONTAINER,
    &COMMAND_INFO,
    &URI,
    &ENVIRONMENT,
    &VARIABLE,
    &CONTAINER_INFO,
    &DOCKER_INFO,
    &DOCKER_PORT_MAPPING,
    &PARAMETER,
    &PARAMETERS,
    &NETWORK_INFO,
    &VOLUME,
    &VOLUME_SOURCE,
    &DOCKER_VOLUME,
    &LINUX_INFO,
    &CAPABILITY_INFO,
    &RLIMIT_INFO,
    &RLIMIT,
    &TTY_INFO,
    &WINDOW_SIZE,
    &RESOURCE,
    &ALLOCATION_INFO,
    &RESERVATION_INFO,
    &LABELS,
    &LABEL,
    &REVOCABLE_INFO,
    &DISK_INFO,
    &SCALAR,
    &RANGES,
    &RANGE,
    &HEALTH_CHECK,
    &HTTP_CHECK_INFO,
    &TCP_CHECK_INFO,
];

#[cfg(test)]
mod tests {
    use super::super::call::{parse_call, Call};
    use super::super::launch::LaunchRequest;
    use super::*;
    use serde_json::{json, Value};

    /// A launch whose `launch_container` is the base one with `edit` applied.
    fn launch(edit: impl FnOnce(&mut Value)) -> Result<LaunchRequest, String> {
        let mut l = json!({
            "container_id": {"value": "c1"},
            "command": {"value": "true"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
            "container": {
                "type": "DOCKER",
                "docker": {"image": "alpine"},
                "volumes": [{"container_path": "/data", "mode": "RW",
                             "source": {"type": "DOCKER_VOLUME", "docker_volume": {"name": "v1"}}}]
            }
        });
        edit(&mut l);
        let call = json!({"type": "LAUNCH_CONTAINER", "launch_container": l});
        match parse_call(call.to_string().as_bytes()) {
            Ok(Call::LaunchContainer(l)) => Ok(*l),
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                assert_eq!(e.status, 400);
                Err(e.message)
            }
        }
    }

    type Edit = Box<dyn FnOnce(&mut Value)>;

    fn params(l: &LaunchRequest) -> Vec<(String, String)> {
        l.container
            .as_ref()
            .unwrap()
            .docker
            .as_ref()
            .unwrap()
            .parameters
            .clone()
    }

    fn container(l: &LaunchRequest) -> &super::super::launch::ContainerSpec {
        l.container.as_ref().unwrap()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn refused_mesos_fields_are_named_with_the_reason_never_unknown() {
        let cases: Vec<(&str, Edit)> = vec![
            (
                "launch_container.resources[0].shared",
                Box::new(|l| l["resources"][0]["shared"] = json!({})),
            ),
            (
                "launch_container.resources[0].provider_id",
                Box::new(|l| l["resources"][0]["provider_id"] = json!({"value": "p"})),
            ),
            (
                "launch_container.resources[0].set",
                Box::new(|l| l["resources"][0]["set"] = json!({"item": ["a"]})),
            ),
            (
                "launch_container.resources[0].disk.persistence",
                Box::new(|l| l["resources"][0]["disk"] = json!({"persistence": {"id": "x"}})),
            ),
            (
                "launch_container.resources[0].disk.source",
                Box::new(|l| l["resources"][0]["disk"] = json!({"source": {"type": "PATH"}})),
            ),
            (
                "launch_container.container.linux_info.share_pid_namespace",
                Box::new(|l| l["container"]["linux_info"] = json!({"share_pid_namespace": true})),
            ),
            (
                "launch_container.container.linux_info.seccomp",
                Box::new(|l| {
                    l["container"]["linux_info"] = json!({"seccomp": {"unconfined": true}})
                }),
            ),
            (
                "launch_container.container.linux_info.ipc_mode",
                Box::new(|l| l["container"]["linux_info"] = json!({"ipc_mode": "SHARE_PARENT"})),
            ),
            (
                "launch_container.container.linux_info.shm_size",
                Box::new(|l| l["container"]["linux_info"] = json!({"shm_size": 64})),
            ),
            (
                "launch_container.container.linux_info.share_cgroups",
                Box::new(|l| l["container"]["linux_info"] = json!({"share_cgroups": false})),
            ),
            (
                "launch_container.container.volumes[0].image",
                Box::new(|l| l["container"]["volumes"][0]["image"] = json!({"type": "DOCKER"})),
            ),
            (
                "launch_container.container.volumes[0].source.secret",
                Box::new(|l| l["container"]["volumes"][0]["source"]["secret"] = json!({})),
            ),
            (
                "launch_container.command.environment.variables[0].secret",
                Box::new(|l| {
                    l["command"]["environment"] =
                        json!({"variables": [{"name": "A", "value": "b", "secret": {}}]})
                }),
            ),
        ];
        for (path, edit) in cases {
            let err = launch(edit).unwrap_err();
            assert!(
                err.contains(&format!("field '{path}': Berth does not support Mesos's "))
                    && !err.contains("unknown field"),
                "{path}: {err}"
            );
        }
        // Each reason is said: spot-check one.
        let err = launch(|l| l["resources"][0]["disk"] = json!({"persistence": {"id": "x"}}))
            .unwrap_err();
        assert!(
            err.contains("Resource.DiskInfo.persistence: Berth has no persistent volumes"),
            "{err}"
        );
    }

    #[test]
    fn ignored_mesos_fields_are_accepted() {
        let l = launch(|l| {
            let r = &mut l["resources"][0];
            r["role"] = json!("*");
            r["reservation"] = json!({"principal": "p"});
            r["reservations"] = json!([{"type": "DYNAMIC", "role": "eng"}]);
            r["allocation_info"] = json!({"role": "eng"});
            r["revocable"] = json!({});
            r["disk"] = json!({});
            l["container"]["mesos"] = json!({"image": {"type": "DOCKER"}});
            l["container"]["network_infos"] = json!([{"groups": ["g"], "labels": {"labels": []},
                "ip_addresses": [{"protocol": "IPv4"}], "port_mappings": []}]);
            // Mesos's defaults are Docker's; protobuf-JSON null is absence, even for a refused field.
            l["container"]["linux_info"] =
                json!({"share_pid_namespace": false, "share_cgroups": true, "seccomp": null});
        })
        .unwrap();
        assert_eq!(l.resources.cpus, Some(0.5));
        assert!(params(&l).is_empty());
        // Roles and reservations are kept as given, the allocation role taken for the container.
        assert_eq!(l.resources.allocation_role.as_deref(), Some("eng"));
        assert_eq!(l.resources.requested[0]["reservations"][0]["role"], "eng");
        assert_eq!(l.resources.requested[0]["revocable"], json!({}));
    }

    #[test]
    fn accounting_is_validated() {
        let bad = |edit: fn(&mut Value), field: &str| {
            let e = launch(edit).unwrap_err();
            assert!(e.contains(field), "{field}: {e}");
        };
        bad(
            |l| l["resources"][0]["allocation_info"] = json!({"role": "a b"}),
            "resources[0].allocation_info.role",
        );
        bad(
            |l| l["resources"][0]["reservations"] = json!([{"type": "SOMETIMES"}]),
            "resources[0].reservations[0].type",
        );
        bad(
            |l| {
                l["resources"][0]["reservations"] =
                    json!([{"labels": {"labels": [{"value": "v"}]}}])
            },
            "labels[0].key",
        );
        bad(
            |l| l["resources"][0]["revocable"] = json!({"x": 1}),
            "revocable.x",
        );
        bad(
            |l| {
                l["resources"] = json!([
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "allocation_info": {"role": "a"}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}, "allocation_info": {"role": "b"}}]);
            },
            "resources[1].allocation_info.role",
        );
        for role in ["*", "web", "eng/backend", "a-b_c.d"] {
            let edit =
                move |l: &mut Value| l["resources"][0]["allocation_info"] = json!({"role": role});
            let l = launch(edit).unwrap_or_else(|e| panic!("{role}: {e}"));
            assert_eq!(l.resources.allocation_role.as_deref(), Some(role));
        }
        for role in ["", "..", "a/./b", "-x", "a*"] {
            let edit =
                move |l: &mut Value| l["resources"][0]["allocation_info"] = json!({"role": role});
            assert!(launch(edit).is_err(), "{role:?} is not a Mesos role");
        }
    }

    #[test]
    fn truly_unknown_fields_stay_unknown_and_list_mesos_names() {
        let err =
            launch(|l| l["container"]["linux_info"] = json!({"share_pid": true})).unwrap_err();
        assert!(
            err.starts_with("unknown field 'launch_container.container.linux_info.share_pid'")
                && err.contains("share_pid_namespace"),
            "{err}"
        );
        let err = launch(|l| l["resources"][0]["revokable"] = json!({})).unwrap_err();
        assert!(
            err.contains("unknown field 'launch_container.resources[0].revokable'"),
            "{err}"
        );
        // A Mesos field of another form of the message: named, not dropped.
        let err = launch(|l| l["resources"][0]["ranges"] = json!({"range": []})).unwrap_err();
        assert!(
            err.contains("field 'launch_container.resources[0].ranges': does not apply here"),
            "{err}"
        );
    }

    #[test]
    fn rlimits_become_ulimit_parameters() {
        let l = launch(|l| {
            l["container"]["docker"]["parameters"] = json!([{"key": "ulimit", "value": "core=0"}]);
            l["container"]["rlimit_info"] = json!({"rlimits": [
                {"type": "RLMT_NOFILE", "soft": 1024, "hard": "4096"},
                {"type": "RLMT_CORE"},
                {"type": "RLMT_RTPRIO", "soft": 5, "hard": 5}
            ]});
        })
        .unwrap();
        // After the caller's parameters; rtprio travels and meets the same policy as the parameter.
        assert_eq!(
            params(&l),
            [
                p("ulimit", "core=0"),
                p("ulimit", "nofile=1024:4096"),
                p("ulimit", "core=-1:-1"),
                p("ulimit", "rtprio=5:5")
            ]
        );
        for (rl, want) in [
            (
                json!({"type": "RLMT_NOFILES", "soft": 1, "hard": 1}),
                "rlimits[0].type': unknown value \"RLMT_NOFILES\"",
            ),
            (
                json!({"type": "RLMT_NOFILE", "soft": 9, "hard": 1}),
                "rlimits[0].soft': the soft limit 9 is above the hard limit 1",
            ),
            (
                json!({"type": "RLMT_NOFILE", "soft": 9}),
                "give both 'soft' and 'hard'",
            ),
            (
                json!({"type": "RLMT_NOFILE", "soft": -1, "hard": 1}),
                "rlimits[0].soft': -1 is out of range",
            ),
            (
                json!({"soft": 1, "hard": 1}),
                "missing required field 'launch_container.container.rlimit_info.rlimits[0].type'",
            ),
        ] {
            let err =
                launch(|l| l["container"]["rlimit_info"] = json!({"rlimits": [rl]})).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn tty_info_asks_for_a_tty() {
        let l = launch(|l| l["container"]["tty_info"] = json!({})).unwrap();
        assert_eq!(params(&l), [p("tty", "true")]);
        assert_eq!(container(&l).tty_window_size, None);
    }

    #[test]
    fn window_size_is_carried_with_the_tty() {
        let l = launch(|l| {
            l["container"]["tty_info"] = json!({"window_size": {"rows": 42, "columns": "123"}})
        })
        .unwrap();
        assert_eq!(params(&l), [p("tty", "true")]);
        assert_eq!(
            container(&l).tty_window_size,
            Some(berth_containerizer::WindowSize {
                rows: 42,
                columns: 123
            })
        );
        for (ws, want) in [
            (
                json!({"rows": 0, "columns": 80}),
                "field 'launch_container.container.tty_info.window_size.rows': 0 is out of range",
            ),
            (
                json!({"rows": 24, "columns": 65536}),
                "field 'launch_container.container.tty_info.window_size.columns': 65536 is out of range",
            ),
            (
                json!({"rows": 24}),
                "missing required field 'launch_container.container.tty_info.window_size.columns'",
            ),
            (
                json!({"rows": 24, "columns": 80, "pixels": 1}),
                "launch_container.container.tty_info.window_size.pixels",
            ),
        ] {
            let err = launch(|l| l["container"]["tty_info"] = json!({"window_size": ws})).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn capabilities_become_exactly_the_containers_set() {
        let l = launch(|l| {
            l["container"]["linux_info"] = json!({
                "effective_capabilities": {"capabilities": ["NET_ADMIN", "CHOWN", "CHOWN"]},
                "bounding_capabilities": {"capabilities": ["NET_ADMIN", "CHOWN", "KILL"]}
            })
        })
        .unwrap();
        assert_eq!(
            params(&l),
            [
                p("cap-drop", "ALL"),
                p("cap-add", "NET_ADMIN"),
                p("cap-add", "CHOWN")
            ]
        );
        // The bounding set alone, and the deprecated capability_info, are the set too.
        let l = launch(|l| {
            l["container"]["linux_info"] =
                json!({"bounding_capabilities": {"capabilities": ["KILL"]}})
        })
        .unwrap();
        assert_eq!(params(&l), [p("cap-drop", "ALL"), p("cap-add", "KILL")]);
        let l = launch(|l| {
            l["container"]["linux_info"] = json!({"capability_info": {"capabilities": []}})
        })
        .unwrap();
        assert_eq!(params(&l), [p("cap-drop", "ALL")]);
        for (li, want) in [
            (
                json!({"effective_capabilities": {"capabilities": ["SYS_ADMIN"]}, "bounding_capabilities": {"capabilities": ["KILL"]}}),
                "effective capability SYS_ADMIN is not in the bounding set",
            ),
            (
                json!({"effective_capabilities": {"capabilities": ["CAP_KILL"]}}),
                "effective_capabilities.capabilities[0]': unknown value \"CAP_KILL\"",
            ),
            (
                json!({"effective_capabilities": {"capabilities": []}, "capability_info": {"capabilities": []}}),
                "not both",
            ),
        ] {
            let err = launch(|l| l["container"]["linux_info"] = li).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn volume_driver_drives_the_named_volumes_that_name_none() {
        let l = launch(|l| {
            l["container"]["docker"]["volume_driver"] = json!("local");
            l["container"]["volumes"].as_array_mut().unwrap().push(json!({
                "container_path": "/b", "mode": "RO",
                "source": {"type": "DOCKER_VOLUME", "docker_volume": {"name": "v2", "driver": "other"}}}));
        })
        .unwrap();
        let c = l.container.unwrap();
        let drivers: Vec<_> = c
            .volumes
            .iter()
            .map(|v| v.docker_volume.as_ref().unwrap().driver.as_deref())
            .collect();
        assert_eq!(drivers, [Some("local"), Some("other")]);
        assert_eq!(c.docker.unwrap().volume_driver, None);
    }

    #[test]
    fn health_checks_parse_with_mesos_defaults() {
        use super::super::launch::{HealthCheckKind, HealthCheckSpec};
        use std::time::Duration;
        let hc = |l: &LaunchRequest| -> HealthCheckSpec { l.health_check.clone().unwrap() };
        let l = launch(|l| {
            l["health_check"] = json!({"type": "COMMAND", "command": {"value": "test -f /ok"}})
        })
        .unwrap();
        let h = hc(&l);
        assert!(
            matches!(&h.kind, HealthCheckKind::Command(c) if c.value.as_deref() == Some("test -f /ok") && c.shell)
        );
        assert_eq!(
            (h.delay, h.interval, h.timeout, h.grace_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(20),
                Duration::from_secs(10)
            )
        );
        assert_eq!((h.consecutive_failures, h.kill_on_unhealthy), (3, true));
        let l = launch(|l| {
            l["health_check"] = json!({"type": "HTTP",
                "http": {"port": 8080, "path": "/health", "scheme": "https", "statuses": [200, 204], "protocol": "IPv6"},
                "delay_seconds": 0, "interval_seconds": 0.5, "timeout_seconds": "2",
                "grace_period_seconds": 0, "consecutive_failures": 1, "kill_on_unhealthy": false})
        })
        .unwrap();
        let h = hc(&l);
        assert_eq!(
            h.kind,
            HealthCheckKind::Http {
                scheme: "https".into(),
                port: 8080,
                path: "/health".into(),
                statuses: vec![200, 204],
                ipv6: true
            }
        );
        assert_eq!(h.interval, Duration::from_millis(500));
        assert_eq!(h.timeout, Duration::from_secs(2));
        assert_eq!((h.consecutive_failures, h.kill_on_unhealthy), (1, false));
        let l =
            launch(|l| l["health_check"] = json!({"type": "TCP", "tcp": {"port": 80}})).unwrap();
        assert_eq!(
            hc(&l).kind,
            HealthCheckKind::Tcp {
                port: 80,
                ipv6: false
            }
        );
        assert_eq!(launch(|_| {}).unwrap().health_check, None);
        // Berth's DOCKER: the image's HEALTHCHECK, acted on unless told otherwise.
        let l = launch(|l| l["health_check"] = json!({"type": "DOCKER"})).unwrap();
        assert_eq!(
            (hc(&l).kind, hc(&l).kill_on_unhealthy),
            (HealthCheckKind::Docker, true)
        );
        let l =
            launch(|l| l["health_check"] = json!({"type": "DOCKER", "kill_on_unhealthy": false}))
                .unwrap();
        assert!(!hc(&l).kill_on_unhealthy);
    }

    #[test]
    fn bad_health_checks_are_400s_naming_the_field() {
        let p = "launch_container.health_check";
        let cases: Vec<(Value, String)> = vec![
            (json!({}), format!("missing required field '{p}.type'")),
            (json!({"type": "UNKNOWN"}), format!("field '{p}.type': UNKNOWN is not a valid")),
            (json!({"type": "GRPC"}), format!("field '{p}.type': unknown value \"GRPC\"")),
            (json!({"type": "COMMAND"}), format!("missing required field '{p}.command'")),
            (json!({"type": "HTTP"}), format!("missing required field '{p}.http'")),
            (json!({"type": "TCP"}), format!("missing required field '{p}.tcp'")),
            (
                json!({"type": "COMMAND", "command": {"shell": false}}),
                format!("missing required field '{p}.command.value'"),
            ),
            (
                json!({"type": "COMMAND", "command": {"value": "true", "uris": [{"value": "http://h/x"}]}}),
                format!("field '{p}.command.uris': a health check's command fetches nothing"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 0}}),
                format!("field '{p}.tcp.port': 0 is out of range"),
            ),
            (
                json!({"type": "HTTP", "http": {"port": 65536}}),
                format!("field '{p}.http.port': 65536 is out of range"),
            ),
            (
                json!({"type": "HTTP", "http": {"port": 80, "scheme": "ftp"}}),
                format!("field '{p}.http.scheme': unknown value \"ftp\""),
            ),
            (
                json!({"type": "HTTP", "http": {"port": 80, "path": "health"}}),
                format!("field '{p}.http.path': \"health\" must begin with '/'"),
            ),
            (
                json!({"type": "HTTP", "http": {"port": 80, "statuses": [99]}}),
                format!("field '{p}.http.statuses[0]': 99 is out of range"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80, "protocol": "IPv5"}}),
                format!("field '{p}.tcp.protocol': unknown value \"IPv5\""),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "delay_seconds": -1}),
                format!("field '{p}.delay_seconds': -1 is not a valid number of seconds"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "grace_period_seconds": -0.5}),
                format!("field '{p}.grace_period_seconds': -0.5 is not a valid"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "interval_seconds": 0}),
                format!("field '{p}.interval_seconds': 0 is not a valid number of seconds (expected > 0"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "timeout_seconds": "NaN"}),
                format!("field '{p}.timeout_seconds': expected a number"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "timeout_seconds": "Infinity"}),
                format!("field '{p}.timeout_seconds': inf is not a valid"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "consecutive_failures": -1}),
                format!("field '{p}.consecutive_failures': -1 is out of range"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "kill_on_unhealthy": "no"}),
                format!("field '{p}.kill_on_unhealthy'"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "http": {"port": 80}}),
                format!("field '{p}.http': does not apply here"),
            ),
            (
                json!({"type": "DOCKER", "interval_seconds": 1}),
                format!("field '{p}.interval_seconds': a DOCKER health check runs on the image's own HEALTHCHECK"),
            ),
            (
                json!({"type": "DOCKER", "command": {"value": "true"}}),
                format!("field '{p}.command': does not apply here"),
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 80}, "intervall_seconds": 1}),
                format!("unknown field '{p}.intervall_seconds'"),
            ),
        ];
        for (hc, want) in cases {
            let err = launch(|l| l["health_check"] = hc.clone()).unwrap_err();
            assert!(err.contains(&want), "{hc}: want {want:?}, got {err:?}");
        }
        // Checks over the network run inside the container's namespace: NONE has one too.
        launch(|l| {
            l["container"]["docker"]["network"] = json!("NONE");
            l["health_check"] = json!({"type": "TCP", "tcp": {"port": 80}});
        })
        .expect("a TCP check of a container without a network");
    }

    #[test]
    fn every_field_is_in_the_docs_table() {
        let docs = include_str!("../../../../docs/api.md");
        let mut want = String::new();
        for m in ALL {
            let desc = m.descriptor();
            for f in m.fields {
                let number = desc.get_field_by_name(f.name).unwrap().number();
                let number = if number >= 1000 {
                    format!("{number} (Berth's extension)")
                } else {
                    number.to_string()
                };
                let (what, why) = match f.disposition {
                    Disposition::Honoured => ("honoured", ""),
                    Disposition::Kept(why) => ("kept and reported, not enforced", why),
                    Disposition::Ignored(why) => ("accepted, ignored", why),
                    Disposition::Refused(why) => ("refused (400)", why),
                };
                want.push_str(&format!(
                    "| `{}.{}` | {number} | {what} | {why} |\n",
                    m.name, f.name
                ));
            }
        }
        let missing: Vec<&str> = want.lines().filter(|row| !docs.contains(row)).collect();
        assert!(
            missing.is_empty(),
            "docs/api.md's field table lacks {missing:#?}\nthe whole table is:\n{want}"
        );
    }

    #[test]
    fn every_table_names_exactly_the_fields_of_its_definition() {
        for m in ALL {
            let desc = m.descriptor();
            let mut defined: Vec<String> = desc.fields().map(|f| f.name().to_owned()).collect();
            let mut tabled: Vec<String> = m.fields.iter().map(|f| f.name.to_owned()).collect();
            defined.sort_unstable();
            tabled.sort_unstable();
            assert_eq!(tabled, defined, "{}: table vs proto/ definition", m.name);
        }
    }
}
