//! The container lifecycle through the v1 API of a real `berth serve`: launch, duplicate
//! launch, wait, kill (with and without a grace), remove, update, GET_CONTAINERS.

use std::time::Duration;

use berth_e2e::{docker_container_exists, remove_test_containers, testbed, Agent};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn launch_wait_and_remove_report_what_mesos_reports() {
    const T: &str = "e2e-lifecycle-basic";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-remove-delay", "1h"]).await;

    let r = agent
        .launch_shell("basic", "echo out-line; echo err-line >&2; exit 3")
        .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    assert_eq!(r.body, "");
    let dup = agent.launch_shell("basic", "true").await;
    assert_eq!(dup.status, 202, "a second launch of the same id: {dup:?}");

    let w = agent.wait("basic").await;
    assert_eq!(w["exit_status"], 3 << 8, "{w}");
    assert_eq!(w["state"], "TASK_FAILED");
    assert_eq!(w["message"], "Container terminated");
    // Waiting again gives the same answer.
    assert_eq!(agent.wait("basic").await, w);

    assert_eq!(
        agent.read_text("/containers/basic/stdout").await,
        "out-line\n"
    );
    assert_eq!(
        agent.read_text("/containers/basic/stderr").await,
        "err-line\n"
    );

    let entry = agent.container("basic").await.expect("listed");
    assert_eq!(entry["berth"]["state"], "TERMINATED");
    // Named with this run's prefix (`--docker-name-prefix`): concurrent runs never collide.
    assert_eq!(entry["berth"]["name"], agent.docker_name("basic").as_str());
    assert_eq!(entry["berth"]["image"], testbed().images.busybox);
    assert_eq!(entry["berth"]["termination"]["state"], "TASK_FAILED");
    let docker_id = entry["berth"]["docker_id"]
        .as_str()
        .expect("an ended container keeps its Docker id")
        .to_owned();
    assert!(
        docker_container_exists(&docker_id).await,
        "kept until removed (remove delay 1h)"
    );

    let r = agent.remove("basic").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(agent.container("basic").await.is_none());
    assert!(
        !docker_container_exists(&agent.docker_name("basic")).await,
        "REMOVE removes the Docker container"
    );
    assert!(
        !agent.work_dir.join("sandboxes/basic").exists(),
        "REMOVE removes the sandbox"
    );
    let again = agent.remove("basic").await;
    assert_eq!(again.status, 404, "{again:?}");
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_stops_a_running_container_and_remove_refuses_until_then() {
    const T: &str = "e2e-lifecycle-kill";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let r = agent.launch_shell("sleeper", "sleep 600").await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());

    let entry = agent.container("sleeper").await.expect("listed");
    assert_eq!(entry["berth"]["state"], "RUNNING");
    let docker_id = entry["berth"]["docker_id"]
        .as_str()
        .expect("a Docker id while running")
        .to_owned();
    assert!(
        entry["container_status"]["executor_pid"].as_u64().is_some(),
        "{entry}"
    );
    let stats = &entry["resource_statistics"];
    assert!(
        stats["timestamp"].as_f64().is_some(),
        "usage of a running container: {entry}"
    );
    assert!(
        stats["mem_total_bytes"].as_u64().is_some() || stats["mem_rss_bytes"].as_u64().is_some(),
        "{stats}"
    );

    let r = agent.remove("sleeper").await;
    assert_eq!(r.status, 409, "removing a running container: {r:?}");
    assert!(r.body.contains("has not terminated"), "{r:?}");

    let r = agent.kill("sleeper", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let w = agent.wait("sleeper").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    assert_eq!(
        w["exit_status"],
        137 << 8,
        "SIGKILL by default: Docker says 137, reported as an exit with 137 as Mesos does: {w}"
    );
    let r = agent.kill("sleeper", None).await;
    assert_eq!(r.status, 404, "killing an ended container: {r:?}");
    assert!(r.body.contains("cannot be found"), "{r:?}");

    assert_eq!(agent.remove("sleeper").await.status, 200);
    assert!(!docker_container_exists(&docker_id).await);
    remove_test_containers(T).await;
}

/// exit_status as Mesos's Docker executor reports it: the wait status of the `docker run` CLI,
/// which exits normally with the container's code. So a code above 128 (what Docker reports for
/// a death by signal, and what `exit 143` gives too) is an exit with that code, never a signal.
#[tokio::test(flavor = "multi_thread")]
async fn exit_status_is_dockers_code_as_a_normal_exit_as_mesos_reports_it() {
    const T: &str = "e2e-lifecycle-exit-status";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    for (id, script, code) in [
        ("c3", "exit 3", 3),
        ("c143", "exit 143", 143),
        ("c192", "exit 192", 192),
    ] {
        let r = agent.launch_shell(id, script).await;
        assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
        let w = agent.wait(id).await;
        let s = w["exit_status"]
            .as_i64()
            .unwrap_or_else(|| panic!("{id}: {w}"));
        assert_eq!(s, code << 8, "{id}: {w}");
        assert_eq!(s & 0x7f, 0, "{id}: WIFSIGNALED must be false: {w}");
        assert_eq!((s >> 8) & 0xff, code, "{id}: WEXITSTATUS: {w}");
        assert_eq!(w["state"], "TASK_FAILED", "{id}: {w}");
    }
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_policy_grace_sends_sigterm_then_sigkill() {
    const T: &str = "e2e-lifecycle-grace";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    // Ignores SIGTERM, so only the SIGKILL after the grace ends it.
    let r = agent
        .launch_shell(
            "stubborn",
            "trap 'echo got-term' TERM; while true; do sleep 0.1; done",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let started = std::time::Instant::now();
    let r = agent
        .call(json!({"type": "KILL_CONTAINER", "kill_container": {
            "container_id": {"value": "stubborn"},
            "kill_policy": {"grace_period": {"nanoseconds": 1_500_000_000u64}}}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let w = agent.wait("stubborn").await;
    let took = started.elapsed();
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    assert_eq!(
        w["exit_status"],
        137 << 8,
        "ended by the SIGKILL after the grace (Docker: 137): {w}"
    );
    assert!(
        took >= Duration::from_millis(1400),
        "SIGKILL came before the grace was over: {took:?}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(
        agent
            .read_text("/containers/stubborn/stdout")
            .await
            .contains("got-term"),
        "SIGTERM came first"
    );

    // A process that exits on SIGTERM ends at once; it was killed even though it exited with 0.
    assert_eq!(
        agent
            .launch_shell(
                "polite",
                "trap 'exit 0' TERM; while true; do sleep 0.1; done"
            )
            .await
            .status,
        200
    );
    let started = std::time::Instant::now();
    let r = agent
        .call(json!({"type": "KILL_CONTAINER", "kill_container": {
            "container_id": {"value": "polite"}, "signal": 15,
            "kill_policy": {"grace_period": {"nanoseconds": 30_000_000_000u64}}}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let w = agent.wait("polite").await;
    assert_eq!(
        (w["exit_status"].as_i64(), w["state"].as_str()),
        (Some(0), Some("TASK_KILLED")),
        "{w}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it did not wait for the 30s grace"
    );
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_launches_answer_400_with_mesos_text_and_default_cmd_works() {
    const T: &str = "e2e-lifecycle-fail";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--image-pull-inactivity-timeout", "20s"]).await;
    let tb = testbed();
    let missing = tb.registry_image(&tb.registry, "berth-test/does-not-exist:latest");
    let body = agent.launch_body("nope", json!({"value": "true"}), Some(&missing));
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.starts_with("Failed to launch container: "), "{r:?}");
    assert!(r.body.contains("does-not-exist"), "names the image: {r:?}");
    let w = agent.wait("nope").await;
    assert_eq!(w["state"], "TASK_FAILED");
    assert_eq!(w["reason"], "REASON_CONTAINER_LAUNCH_FAILED");

    // Unknown docker parameter: refused naming the key.
    let mut body = agent.launch_body("badparam", json!({"value": "true"}), None);
    body["container"]["docker"]["parameters"] = json!([{"key": "no-such-option", "value": "1"}]);
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("no-such-option"), "{r:?}");

    // The image's ENTRYPOINT ["echo"] and CMD ["inky"] (Mesos's Default_CMD tests).
    let body = agent.launch_body("inky", json!({"shell": false}), Some(&tb.images.echo));
    assert_eq!(
        agent
            .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
            .await
            .status,
        200
    );
    assert_eq!(agent.wait("inky").await["state"], "TASK_FINISHED");
    assert_eq!(agent.read_text("/containers/inky/stdout").await, "inky\n");
    let body = agent.launch_body(
        "override",
        json!({"shell": false, "arguments": ["other"]}),
        Some(&tb.images.echo),
    );
    assert_eq!(
        agent
            .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
            .await
            .status,
        200
    );
    agent.wait("override").await;
    assert_eq!(
        agent.read_text("/containers/override/stdout").await,
        "other\n"
    );
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn update_changes_a_running_containers_limits() {
    const T: &str = "e2e-lifecycle-update";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let mut body = agent.launch_body("upd", json!({"value": "sleep 600"}), None);
    body["resources"] = json!([{"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}]);
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let limit = |e: &serde_json::Value| e["resource_statistics"]["mem_limit_bytes"].as_u64();
    assert_eq!(
        limit(&agent.container("upd").await.unwrap()),
        Some(64 << 20)
    );

    for mb in [128u64, 48] {
        let r = agent
            .call(json!({"type": "UPDATE_CONTAINER", "update_container": {
                "container_id": {"value": "upd"},
                "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": mb}}]}}))
            .await;
        assert_eq!(r.status, 200, "update to {mb} MiB: {r:?}");
        let docker = berth_docker_api::Docker::from_env().await.unwrap();
        let id = agent.container("upd").await.unwrap()["berth"]["docker_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let inspected = docker.containers().inspect(&id).await.unwrap();
        assert_eq!(
            inspected.host_config.memory,
            Some((mb << 20) as i64),
            "the daemon has the new limit (raised and lowered)"
        );
    }
    let r = agent
        .call(json!({"type": "UPDATE_CONTAINER", "update_container": {
            "container_id": {"value": "ghost"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}}))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    agent.kill("upd", None).await;
    agent.wait("upd").await;
    let r = agent
        .call(json!({"type": "UPDATE_CONTAINER", "update_container": {
            "container_id": {"value": "upd"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}}))
        .await;
    assert_eq!(r.status, 409, "updating an ended container: {r:?}");
    remove_test_containers(T).await;
}
