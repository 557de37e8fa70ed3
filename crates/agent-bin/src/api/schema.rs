//! Every field Mesos defines in the request messages Berth reads, with what Berth does with it.
//!
//! One table per message, read by the strict walker ([`super::json::Obj::schema`]): a field the
//! parser reads is honoured; a field marked [`Disposition::Ignored`] is accepted and dropped; a
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
    /// Refused with a 400, for this reason.
    Refused(&'static str),
}

/// One field of a Mesos message.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The field's Mesos (protobuf-JSON) name.
    pub name: &'static str,
    /// Its Mesos field number.
    pub number: u32,
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
}

use Disposition::{Honoured as H, Ignored, Refused};

const fn f(name: &'static str, number: u32, disposition: Disposition) -> Field {
    Field {
        name,
        number,
        disposition,
    }
}

const NO_NESTED: &str = "nested containers are not supported";
const NO_SECRETS: &str = "Berth has no secret resolver";
const NO_MESOS_CONTAINERIZER: &str =
    "Berth is a Docker containerizer; the Mesos containerizer's settings have no Docker meaning";

/// `ContainerID`.
pub static CONTAINER_ID: Message = Message {
    name: "ContainerID",
    fields: &[f("value", 1, H), f("parent", 2, Refused(NO_NESTED))],
};

/// `agent.Call.LaunchContainer`.
pub static LAUNCH_CONTAINER: Message = Message {
    name: "agent.Call.LaunchContainer",
    fields: &[
        f("container_id", 1, H),
        f("command", 2, H),
        f("resources", 3, H),
        f("container", 4, H),
        f("limits", 5, H),
    ],
};

/// `CommandInfo`.
pub static COMMAND_INFO: Message = Message {
    name: "CommandInfo",
    fields: &[
        f("uris", 1, H),
        f("environment", 2, H),
        f("shell", 6, H),
        f("value", 3, H),
        f("arguments", 7, H),
        f("user", 5, H),
    ],
};

/// `CommandInfo.URI` (plus Berth's `checksum`, documented as an extension).
pub static URI: Message = Message {
    name: "CommandInfo.URI",
    fields: &[
        f("value", 1, H),
        f("executable", 2, H),
        f("extract", 3, H),
        f("cache", 4, H),
        f("output_file", 5, H),
        f("checksum", 0, H),
    ],
};

/// `Environment`.
pub static ENVIRONMENT: Message = Message {
    name: "Environment",
    fields: &[f("variables", 1, H)],
};

/// `Environment.Variable`.
pub static VARIABLE: Message = Message {
    name: "Environment.Variable",
    fields: &[
        f("name", 1, H),
        f("type", 3, H),
        f("value", 2, H),
        f("secret", 4, Refused(NO_SECRETS)),
    ],
};

/// `ContainerInfo`.
pub static CONTAINER_INFO: Message = Message {
    name: "ContainerInfo",
    fields: &[
        f("type", 1, H),
        f("volumes", 2, H),
        f("hostname", 4, H),
        f("docker", 3, H),
        f("mesos", 5, Ignored(NO_MESOS_CONTAINERIZER)),
        f("network_infos", 7, H),
        f("linux_info", 8, H),
        f("rlimit_info", 9, H),
        f("tty_info", 10, H),
    ],
};

/// `ContainerInfo.DockerInfo`.
pub static DOCKER_INFO: Message = Message {
    name: "ContainerInfo.DockerInfo",
    fields: &[
        f("image", 1, H),
        f("network", 2, H),
        f("port_mappings", 3, H),
        f("privileged", 4, H),
        f("parameters", 5, H),
        f("force_pull_image", 6, H),
        f("volume_driver", 7, H),
    ],
};

/// `ContainerInfo.DockerInfo.PortMapping`.
pub static DOCKER_PORT_MAPPING: Message = Message {
    name: "ContainerInfo.DockerInfo.PortMapping",
    fields: &[
        f("host_port", 1, H),
        f("container_port", 2, H),
        f("protocol", 3, H),
    ],
};

/// `Parameter`.
pub static PARAMETER: Message = Message {
    name: "Parameter",
    fields: &[f("key", 1, H), f("value", 2, H)],
};

/// `Parameters`.
pub static PARAMETERS: Message = Message {
    name: "Parameters",
    fields: &[f("parameter", 1, H)],
};

/// `NetworkInfo`.
pub static NETWORK_INFO: Message = Message {
    name: "NetworkInfo",
    fields: &[
        f(
            "ip_addresses",
            5,
            Ignored("Docker assigns addresses; Mesos's IP requests are for CNI"),
        ),
        f("name", 6, H),
        f(
            "groups",
            3,
            Ignored("network groups are a Mesos network-isolator setting"),
        ),
        f(
            "labels",
            4,
            Ignored("labels for CNI plugins; Docker networks take none"),
        ),
        f(
            "port_mappings",
            7,
            Ignored("CNI port mappings; Docker's come from DockerInfo.port_mappings"),
        ),
    ],
};

/// `Volume`.
pub static VOLUME: Message = Message {
    name: "Volume",
    fields: &[
        f("mode", 3, H),
        f("container_path", 1, H),
        f("host_path", 2, H),
        f(
            "image",
            4,
            Refused("image volumes need the Mesos containerizer's provisioner"),
        ),
        f("source", 5, H),
    ],
};

/// `Volume.Source`.
pub static VOLUME_SOURCE: Message = Message {
    name: "Volume.Source",
    fields: &[
        f("type", 1, H),
        f("docker_volume", 2, H),
        f(
            "host_path",
            5,
            Refused("only DOCKER_VOLUME sources are supported"),
        ),
        f(
            "sandbox_path",
            3,
            Refused("only DOCKER_VOLUME sources are supported"),
        ),
        f("secret", 4, Refused(NO_SECRETS)),
        f("csi_volume", 6, Refused("Berth has no CSI support")),
    ],
};

/// `Volume.Source.DockerVolume`.
pub static DOCKER_VOLUME: Message = Message {
    name: "Volume.Source.DockerVolume",
    fields: &[
        f("driver", 1, H),
        f("name", 2, H),
        f("driver_options", 3, H),
    ],
};

/// `LinuxInfo`.
pub static LINUX_INFO: Message = Message {
    name: "LinuxInfo",
    fields: &[
        f("capability_info", 1, H),
        f("bounding_capabilities", 2, H),
        f("effective_capabilities", 3, H),
        f(
            "share_pid_namespace",
            4,
            Refused(
                "true is refused (false, the default, is accepted): for a top-level container \
                 it means the agent's PID namespace, which Berth does not give callers \
                 (Docker's --pid host is the host's, not a parent's)",
            ),
        ),
        f(
            "seccomp",
            5,
            Refused("Mesos seccomp profiles name files of the agent's profile directory, which Berth does not have"),
        ),
        f(
            "ipc_mode",
            6,
            Refused("Docker gives every container a private IPC namespace; sharing the agent's is not offered"),
        ),
        f(
            "shm_size",
            7,
            Refused("it applies only with ipc_mode PRIVATE; use the shm-size docker parameter"),
        ),
        f(
            "share_cgroups",
            8,
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
    fields: &[f("capabilities", 1, H)],
};

/// `RLimitInfo`.
pub static RLIMIT_INFO: Message = Message {
    name: "RLimitInfo",
    fields: &[f("rlimits", 1, H)],
};

/// `RLimitInfo.RLimit`.
pub static RLIMIT: Message = Message {
    name: "RLimitInfo.RLimit",
    fields: &[f("type", 1, H), f("hard", 2, H), f("soft", 3, H)],
};

/// `TTYInfo`.
pub static TTY_INFO: Message = Message {
    name: "TTYInfo",
    fields: &[f("window_size", 1, H)],
};

/// `TTYInfo.WindowSize`.
pub static WINDOW_SIZE: Message = Message {
    name: "TTYInfo.WindowSize",
    fields: &[f("rows", 1, H), f("columns", 2, H)],
};

/// `Resource`.
pub static RESOURCE: Message = Message {
    name: "Resource",
    fields: &[
        f(
            "provider_id",
            12,
            Refused("Berth has no resource providers; resources come from the agent itself"),
        ),
        f("name", 1, H),
        f("type", 2, H),
        f("scalar", 3, H),
        f("ranges", 4, H),
        f(
            "set",
            5,
            Refused("no resource Berth supports (cpus, mem, disk, ports) is a SET"),
        ),
        f("role", 6, Ignored(NO_ALLOCATION)),
        f("allocation_info", 11, Ignored(NO_ALLOCATION)),
        f("reservation", 8, Ignored(NO_ALLOCATION)),
        f("reservations", 13, Ignored(NO_ALLOCATION)),
        f("disk", 7, H),
        f(
            "revocable",
            9,
            Ignored("a standalone agent never revokes: the container runs as with any other resource"),
        ),
        f(
            "shared",
            10,
            Refused("Mesos allows shared resources only for persistent volumes, which Berth does not support"),
        ),
    ],
};

const NO_ALLOCATION: &str = "roles and reservations are a Mesos master's allocation bookkeeping; \
     a standalone agent has no allocator to enforce them";

/// `Resource.DiskInfo`.
pub static DISK_INFO: Message = Message {
    name: "Resource.DiskInfo",
    fields: &[
        f(
            "persistence",
            1,
            Refused("Berth has no persistent volumes"),
        ),
        f(
            "volume",
            2,
            Refused("disk volumes belong to persistent volumes, which Berth does not have"),
        ),
        f(
            "source",
            3,
            Refused("Berth has one disk, the agent's; PATH/MOUNT/BLOCK/RAW sources come from resource providers"),
        ),
    ],
};

/// `Value.Scalar`.
pub static SCALAR: Message = Message {
    name: "Value.Scalar",
    fields: &[f("value", 1, H)],
};

/// `Value.Ranges`.
pub static RANGES: Message = Message {
    name: "Value.Ranges",
    fields: &[f("range", 1, H)],
};

/// `Value.Range`.
pub static RANGE: Message = Message {
    name: "Value.Range",
    fields: &[f("begin", 1, H), f("end", 2, H)],
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
    &DISK_INFO,
    &SCALAR,
    &RANGES,
    &RANGE,
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
    fn every_field_is_in_the_docs_table() {
        let docs = include_str!("../../../../docs/api.md");
        for m in ALL {
            for f in m.fields {
                let row = format!("| `{}.{}` |", m.name, f.name);
                assert!(docs.contains(&row), "docs/api.md lacks the row {row}");
            }
        }
    }
}
