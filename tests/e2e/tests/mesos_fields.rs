//! Issue 14, item 1: Mesos's own fields for rlimits, TTYs, capabilities and the volume driver
//! reach Docker with their Mesos meaning (the oracle is `docker inspect`, and for the TTY's
//! window size the kernel inside the container), under the same
//! operator policy as the docker parameters that say the same thing; fields Berth cannot honour
//! are refused by name with the reason, and no container is made.

use std::time::Duration;

use berth_e2e::{docker_inspect as inspect, remove_test_containers, Agent, Resp};
use serde_json::{json, Value};

async fn launch(agent: &Agent, id: &str, edit: impl FnOnce(&mut Value)) -> Resp {
    let mut body = agent.launch_body(id, json!({"value": "true"}), None);
    edit(&mut body["container"]);
    agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await
}

/// A 400 containing every one of `wanted`, with no Docker container made, and the agent healthy.
async fn assert_refused(agent: &Agent, id: &str, r: &Resp, wanted: &[&str]) {
    assert_eq!(r.status, 400, "{id}: {r:?}");
    for w in wanted {
        assert!(r.body.contains(w), "{id}: {w:?} not in {:?}", r.body);
    }
    assert!(
        inspect("container", &agent.docker_name(id)).await.is_none(),
        "{id}: a refused launch left a Docker container"
    );
    let h = tokio::time::timeout(Duration::from_secs(1), agent.get("/health"))
        .await
        .expect("/health answers within 1s");
    assert_eq!(h.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn mesos_linux_rlimit_tty_and_volume_driver_fields_reach_docker() {
    const T: &str = "e2e-mesos-fields";
    let volume = "berth-e2e-mesos-fields-vol";
    remove_test_containers(T).await;
    let _ = tokio::process::Command::new("docker")
        .args(["volume", "rm", "-f", volume])
        .output()
        .await;
    let agent = Agent::start(T, &[]).await;

    let r = launch(&agent, "all", |c| {
        c["rlimit_info"] = json!({"rlimits": [
            {"type": "RLMT_NOFILE", "soft": 1024, "hard": 2048},
            {"type": "RLMT_CORE", "soft": "0", "hard": "0"}
        ]});
        c["tty_info"] = json!({});
        c["linux_info"] = json!({
            "effective_capabilities": {"capabilities": ["CHOWN", "NET_BIND_SERVICE"]},
            "bounding_capabilities": {"capabilities": ["CHOWN", "NET_BIND_SERVICE", "KILL"]}
        });
        c["docker"]["volume_driver"] = json!("local");
        c["volumes"] = json!([{"container_path": "/data", "mode": "RW",
            "source": {"type": "DOCKER_VOLUME", "docker_volume": {"name": volume}}}]);
    })
    .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let i = inspect("container", &agent.docker_name("all"))
        .await
        .expect("the launched container exists");
    let host = &i["HostConfig"];
    assert_eq!(
        host["Ulimits"],
        json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048},
               {"Name": "core", "Soft": 0, "Hard": 0}]),
        "{host}"
    );
    assert_eq!(host["CapDrop"], json!(["ALL"]), "{host}");
    assert_eq!(
        host["CapAdd"],
        json!(["CHOWN", "NET_BIND_SERVICE"]),
        "{host}"
    );
    assert_eq!(i["Config"]["Tty"], json!(true));
    let mount = i["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/data")
        .unwrap_or_else(|| panic!("no /data mount: {}", i["Mounts"]));
    assert_eq!(
        (&mount["Name"], &mount["Driver"]),
        (&json!(volume), &json!("local"))
    );
    let v = inspect("volume", volume)
        .await
        .expect("Docker made the volume");
    assert_eq!(v["Driver"], "local");

    // The operator's policy judges the Mesos fields as it judges the parameters.
    let r = launch(&agent, "rtprio", |c| {
        c["rlimit_info"] = json!({"rlimits": [{"type": "RLMT_RTPRIO", "soft": 5, "hard": 5}]});
    })
    .await;
    assert_refused(
        &agent,
        "rtprio",
        &r,
        &["ulimit=rtprio=5:5", "--allow-privileged"],
    )
    .await;
    let r = launch(&agent, "sysadmin", |c| {
        c["linux_info"] = json!({"effective_capabilities": {"capabilities": ["SYS_ADMIN"]}});
    })
    .await;
    assert_refused(
        &agent,
        "sysadmin",
        &r,
        &["SYS_ADMIN", "--allowed-capability SYS_ADMIN"],
    )
    .await;
    let r = launch(&agent, "driver", |c| {
        c["docker"]["volume_driver"] = json!("berth-e2e-no-such-driver");
        c["volumes"] = json!([{"container_path": "/data", "mode": "RW",
            "source": {"type": "DOCKER_VOLUME", "docker_volume": {"name": "berth-e2e-fields-other"}}}]);
    })
    .await;
    assert_refused(
        &agent,
        "driver",
        &r,
        &["berth-e2e-no-such-driver", "--allowed-volume-driver"],
    )
    .await;

    // Mesos fields Berth cannot honour: named, with the reason; never "unknown field".
    for (id, field, value, path) in [(
        "pidns",
        "linux_info",
        json!({"share_pid_namespace": true}),
        "launch_container.container.linux_info.share_pid_namespace",
    )] {
        let r = launch(&agent, id, |c| c[field] = value).await;
        assert_refused(
            &agent,
            id,
            &r,
            &[&format!("field '{path}': Berth does not support Mesos's")],
        )
        .await;
        assert!(!r.body.contains("unknown field"), "{r:?}");
    }

    remove_test_containers(T).await;
    let _ = tokio::process::Command::new("docker")
        .args(["volume", "rm", "-f", volume])
        .output()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mesos_tty_window_size_is_the_terminals_size_inside() {
    const T: &str = "e2e-mesos-winsize";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;

    // The sleep lets the resize (right after the start) land before busybox's stty asks the
    // kernel; 42x123 is nobody's default.
    let mut body = agent.launch_body("winsize", json!({"value": "sleep 1; stty size"}), None);
    body["container"]["tty_info"] = json!({"window_size": {"rows": 42, "columns": 123}});
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let w = agent.wait("winsize").await;
    assert_eq!(w["exit_status"], 0, "{w}\n{}", agent.logs());
    let out = agent.read_text("/containers/winsize/stdout").await;
    assert!(out.contains("42 123"), "stty size printed {out:?}");

    // Out of range: named, and nothing made.
    for (id, ws, field) in [
        (
            "rows0",
            json!({"rows": 0, "columns": 80}),
            "window_size.rows",
        ),
        (
            "cols-big",
            json!({"rows": 24, "columns": 65536}),
            "window_size.columns",
        ),
    ] {
        let r = launch(&agent, id, |c| c["tty_info"] = json!({"window_size": ws})).await;
        assert_refused(
            &agent,
            id,
            &r,
            &[&format!(
                "field 'launch_container.container.tty_info.{field}'"
            )],
        )
        .await;
    }

    remove_test_containers(T).await;
}

/// Roles, reservations and revocability are kept with the container and reported back as given,
/// across an agent restart; the allocation role is the container's `MESOS_ALLOCATION_ROLE`
/// (oracles: the environment Docker holds and the one the container itself recorded).
#[tokio::test(flavor = "multi_thread")]
async fn mesos_roles_and_reservations_are_kept_and_reported() {
    const T: &str = "e2e-mesos-roles";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &[]).await;
    let resources = json!([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}, "role": "eng",
         "allocation_info": {"role": "eng"},
         "reservations": [{"type": "STATIC", "role": "eng"},
                          {"type": "DYNAMIC", "role": "eng", "principal": "ops",
                           "labels": {"labels": [{"key": "team", "value": "db"}]}}]},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}, "allocation_info": {"role": "eng"},
         "revocable": {}}
    ]);
    let mut body = agent.launch_body(
        "roles",
        json!({"value": "echo \"$MESOS_ALLOCATION_ROLE\" > $MESOS_SANDBOX/role; sleep 600"}),
        None,
    );
    body["resources"] = resources.clone();
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let c = agent.container("roles").await.expect("listed");
    assert_eq!(c["berth"]["resources"], resources, "{c}");
    let env = inspect("container", &agent.docker_name("roles"))
        .await
        .expect("created")["Config"]["Env"]
        .clone();
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!("MESOS_ALLOCATION_ROLE=eng")),
        "{env}"
    );
    berth_e2e::eventually(Duration::from_secs(20), "the role file", || async {
        let r = agent.read_file("/containers/roles/role").await;
        (r.status == 200 && r.json()["read_file"]["size"].as_u64() > Some(0)).then_some(())
    })
    .await;
    assert_eq!(agent.read_text("/containers/roles/role").await, "eng\n");

    // Kept across a restart: the launch is checkpointed with them.
    agent.sigkill().await;
    agent.restart().await;
    let c = agent.container("roles").await.expect("recovered");
    assert_eq!(c["berth"]["resources"], resources, "{c}");

    // Two allocation roles for one container: refused by name, nothing made.
    let mut body = agent.launch_body("roles-2", json!({"value": "true"}), None);
    body["resources"] = json!([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}, "allocation_info": {"role": "a"}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}, "allocation_info": {"role": "b"}}]);
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_refused(
        &agent,
        "roles-2",
        &r,
        &["resources[1].allocation_info.role", "one role"],
    )
    .await;

    agent.kill("roles", Some(9)).await;
    agent.wait("roles").await;
    remove_test_containers(T).await;
}
