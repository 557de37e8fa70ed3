//! Issue 13 items 3, 4, 5 on the real daemon and the real binary: what the agent answers about a
//! container's end, a pull's deadline and an orphan is what Docker and the host show.
//!
//! - The remove delay removes the Docker container only (Mesos's `--docker_remove_delay`); WAIT,
//!   READ_FILE and `/files/read` keep answering until REMOVE_CONTAINER or garbage collection,
//!   which removes the sandbox and the history together (then WAIT answers 404).
//! - A pull ends at its deadline, retries included, and the error names the deadline.
//! - A container with this agent's labels that appears after the start is reaped once its grace
//!   is over, not before; a dry run only logs and counts it.
//!
//! The oracles are `docker inspect` and the host's file system.

use std::time::{Duration, Instant};

use berth_e2e::{
    docker_container_exists, eventually, remove_test_containers, test_label, testbed, Agent,
    ThrottledProxy,
};
use serde_json::{json, Value};

/// `/health` answers 200 within a second.
async fn assert_healthy(agent: &Agent) {
    let r = tokio::time::timeout(Duration::from_secs(1), agent.get("/health"))
        .await
        .unwrap_or_else(|_| panic!("/health did not answer within 1s\n{}", agent.logs()));
    assert_eq!(r.status, 200, "/health: {r:?}");
}

/// The WAIT_CONTAINER answer's status code, without asserting it.
async fn wait_status(agent: &Agent, id: &str) -> u16 {
    agent
        .call(json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": id}}}))
        .await
        .status
}

/// One metric from `/metrics/snapshot`.
async fn metric(agent: &Agent, name: &str) -> f64 {
    let snap = agent.get("/metrics/snapshot").await.json();
    snap[name]
        .as_f64()
        .unwrap_or_else(|| panic!("metric {name} missing from {snap}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remove_delay_removes_the_docker_container_and_keeps_the_history() {
    const T: &str = "e2e-truth-remove-delay";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-remove-delay", "2s"]).await;
    let r = agent
        .launch_shell("kept", "echo kept-output; echo data > $MESOS_SANDBOX/note")
        .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let ended = agent.wait("kept").await;
    let ended_at = Instant::now();
    assert_eq!(ended["state"], "TASK_FINISHED", "{ended}");
    let name = agent.docker_name("kept");
    assert!(
        docker_container_exists(&name).await,
        "the Docker container stays for the remove delay"
    );
    eventually(
        Duration::from_secs(20),
        "docker inspect to answer 404 after the remove delay",
        || async { (!docker_container_exists(&name).await).then_some(()) },
    )
    .await;
    assert!(
        ended_at.elapsed() >= Duration::from_millis(1500),
        "removed before its delay: {:?}",
        ended_at.elapsed()
    );
    // Some time after the removal: every answer about the container is still there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_healthy(&agent).await;
    let again = agent.wait("kept").await;
    assert_eq!(again, ended, "WAIT answers the same termination");
    assert_eq!(
        agent.read_text("/containers/kept/stdout").await,
        "kept-output\n"
    );
    let r = agent
        .get("/files/read?path=/containers/kept/note&offset=0")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("data"), "{r:?}");
    let sandbox = agent.work_dir.join("sandboxes/kept");
    assert!(sandbox.join("note").is_file(), "the sandbox is on disk");
    let c = agent.container("kept").await.expect("still listed");
    assert_eq!(c["berth"]["state"], "TERMINATED", "{c}");
    // REMOVE works on a container whose Docker container is gone, and removes everything.
    let r = agent.remove("kept").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(wait_status(&agent, "kept").await, 404);
    assert_eq!(agent.read_file("/containers/kept/stdout").await.status, 404);
    assert!(!sandbox.exists(), "REMOVE deletes the sandbox");
    assert_healthy(&agent).await;
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_remove_delay_a_late_wait_still_answers() {
    const T: &str = "e2e-truth-remove-zero";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-remove-delay", "0"]).await;
    let r = agent.launch_shell("brief", "echo brief").await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let name = agent.docker_name("brief");
    // The client comes back only after the task ended and its Docker container went.
    eventually(
        Duration::from_secs(30),
        "the Docker container to be removed at once",
        || async { (!docker_container_exists(&name).await).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = agent.wait("brief").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}");
    assert_eq!(w["exit_status"], 0, "{w}");
    assert_eq!(agent.read_text("/containers/brief/stdout").await, "brief\n");
    assert_eq!(agent.remove("brief").await.status, 200);
    assert_eq!(wait_status(&agent, "brief").await, 404);
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collection_removes_the_sandbox_and_the_history_together() {
    const T: &str = "e2e-truth-gc-age";
    remove_test_containers(T).await;
    let agent = Agent::start(
        T,
        &[
            "--docker-remove-delay",
            "1h",
            "--gc-delay",
            "3s",
            // No disk pressure below 100 % use: only the age counts.
            "--gc-disk-headroom",
            "0",
            "--disk-watch-interval",
            "1s",
        ],
    )
    .await;
    // gc-delay × (1 − 0 − usage): the kept age shrinks with the disk's use, as in Mesos.
    let usage = eventually(
        Duration::from_secs(10),
        "the first collection pass",
        || async {
            let u = metric(&agent, "gc/disk_usage").await;
            (u > 0.0).then_some(u)
        },
    )
    .await;
    let kept_for = Duration::from_secs_f64(3.0 * (1.0 - usage));
    let r = agent.launch_shell("old", "echo old").await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    assert_eq!(agent.wait("old").await["state"], "TASK_FINISHED");
    let ended_at = Instant::now();
    let sandbox = agent.work_dir.join("sandboxes/old");
    let name = agent.docker_name("old");
    assert!(sandbox.is_dir());
    eventually(
        Duration::from_secs(20),
        "garbage collection of the ended container",
        || async { (wait_status(&agent, "old").await == 404).then_some(()) },
    )
    .await;
    let took = ended_at.elapsed();
    assert!(
        took + Duration::from_millis(300) >= kept_for,
        "collected after {took:?}, before its age {kept_for:?}"
    );
    assert!(!sandbox.exists(), "the sandbox went with the history");
    assert!(
        !docker_container_exists(&name).await,
        "and the Docker container, although its remove delay had not passed"
    );
    assert_eq!(agent.read_file("/containers/old/stdout").await.status, 404);
    assert_eq!(agent.remove("old").await.status, 404);
    assert!(agent.container("old").await.is_none());
    assert!(metric(&agent, "gc/containers_removed").await >= 1.0);
    assert_healthy(&agent).await;
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_pressure_shortens_the_kept_age_to_nothing() {
    const T: &str = "e2e-truth-gc-pressure";
    remove_test_containers(T).await;
    // A headroom of the whole disk: whatever the usage, max(0, 1 − 1 − u) = 0.
    let agent = Agent::start(
        T,
        &[
            "--gc-delay",
            "1w",
            "--gc-disk-headroom",
            "1",
            "--disk-watch-interval",
            "1s",
        ],
    )
    .await;
    let r = agent.launch_shell("pressed", "echo x").await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let w = agent.wait("pressed").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}");
    let sandbox = agent.work_dir.join("sandboxes/pressed");
    eventually(
        Duration::from_secs(10),
        "garbage collection under disk pressure",
        || async {
            (!sandbox.exists() && wait_status(&agent, "pressed").await == 404).then_some(())
        },
    )
    .await;
    assert_eq!(
        metric(&agent, "gc/container_max_allowed_age_secs").await,
        0.0
    );
    assert!(!docker_container_exists(&agent.docker_name("pressed")).await);
    remove_test_containers(T).await;
}

/// A launch of `image` that must fail; returns the error text and how long it took.
async fn failed_launch(agent: &Agent, id: &str, image: &str) -> (String, Duration) {
    let body = agent.launch_body(id, json!({"value": "true"}), Some(image));
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(90),
        agent.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body})),
    )
    .await
    .unwrap_or_else(|_| panic!("the launch did not answer within 90s\n{}", agent.logs()));
    let took = started.elapsed();
    assert!(r.status >= 400, "the launch must fail: {r:?}");
    (r.body, took)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_registry_fails_the_pull_at_its_inactivity_deadline_not_per_retry() {
    const T: &str = "e2e-truth-pull-inactivity";
    remove_test_containers(T).await;
    let tb = testbed();
    // One byte a second: the registry answers nothing useful, so no attempt makes progress.
    let proxy = ThrottledProxy::start(tb.registry.parse().expect("registry address"), 1);
    let image = format!("{}/{}", proxy.addr(), tb.images.busybox);
    let agent = Agent::start(
        T,
        &[
            "--image-pull-inactivity-timeout",
            "3s",
            "--image-pull-timeout",
            "60s",
        ],
    )
    .await;
    let (text, took) = failed_launch(&agent, "stalled", &image).await;
    assert!(
        text.contains("made no progress for 3s and hit its inactivity deadline"),
        "{text}"
    );
    // Before: 4 attempts of 3 s plus 7 s of backoff. Now 3 s and a little slack.
    assert!(
        took < Duration::from_secs(3 + 3),
        "the pull ended {took:?} after it began, its inactivity deadline is 3s"
    );
    let w = agent.wait("stalled").await;
    assert_eq!(w["state"], "TASK_FAILED", "{w}");
    assert!(
        w["message"]
            .as_str()
            .unwrap_or_default()
            .contains("inactivity deadline"),
        "{w}"
    );
    assert_healthy(&agent).await;
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_ends_at_its_total_deadline_and_says_so() {
    const T: &str = "e2e-truth-pull-total";
    remove_test_containers(T).await;
    let tb = testbed();
    let proxy = ThrottledProxy::start(tb.registry.parse().expect("registry address"), 1);
    let image = format!("{}/{}", proxy.addr(), tb.images.busybox);
    let agent = Agent::start(
        T,
        &[
            "--image-pull-inactivity-timeout",
            "60s",
            "--image-pull-timeout",
            "3s",
        ],
    )
    .await;
    let (text, took) = failed_launch(&agent, "slow", &image).await;
    assert!(
        text.contains("did not finish within its total deadline of 3s"),
        "{text}"
    );
    assert!(
        took < Duration::from_secs(3 + 3),
        "the pull ended {took:?} after it began, its total deadline is 3s"
    );
    assert_healthy(&agent).await;
    remove_test_containers(T).await;
}

/// Creates a container with this agent's ownership labels (as a launch of a dead agent
/// instance would have left, or a `docker run` by hand) and the test label; returns its name.
async fn plant_orphan(test: &str, agent_id: &str, id: &str) -> String {
    let name = format!("{}-orphan-{id}", agent_id);
    let o = tokio::process::Command::new("docker")
        .args(["run", "-d", "--name", &name, "--label"])
        .arg(format!("io.berth.agent-id={agent_id}"))
        .arg("--label")
        .arg(format!("io.berth.container-id={id}"))
        .arg("--label")
        .arg(test_label(test))
        .args([&testbed().images.busybox, "sleep", "1000"])
        .output()
        .await
        .expect("the docker CLI runs");
    assert!(
        o.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    name
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orphan_that_appears_after_the_start_is_reaped_after_its_grace() {
    const T: &str = "e2e-truth-orphan-late";
    remove_test_containers(T).await;
    let agent_id = format!("truth-orphans-{}", std::process::id());
    let agent = Agent::start(
        T,
        &[
            "--agent-id",
            &agent_id,
            "--docker-orphan-grace",
            "4s",
            "--docker-orphan-reconcile-interval",
            "1s",
            "--docker-stop-timeout",
            "1s",
        ],
    )
    .await;
    let name = plant_orphan(T, &agent_id, "late").await;
    let planted = Instant::now();
    // Several passes see it during its grace; none touches it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        docker_container_exists(&name).await,
        "reaped within its grace\n{}",
        agent.logs()
    );
    assert_healthy(&agent).await;
    eventually(
        Duration::from_secs(20),
        "the late orphan to be reaped",
        || async { (!docker_container_exists(&name).await).then_some(()) },
    )
    .await;
    let took = planted.elapsed();
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(metric(&agent, "containerizer/docker/orphans_removed").await >= 1.0);
    assert!(
        agent.container("late").await.is_none(),
        "an orphan is never adopted"
    );
    assert_healthy(&agent).await;
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orphan_dry_run_only_logs_and_counts() {
    const T: &str = "e2e-truth-orphan-dry";
    remove_test_containers(T).await;
    let agent_id = format!("truth-dry-{}", std::process::id());
    let agent = Agent::start(
        T,
        &[
            "--agent-id",
            &agent_id,
            "--docker-orphan-grace",
            "1s",
            "--docker-orphan-reconcile-interval",
            "1s",
            "--docker-orphan-dry-run",
        ],
    )
    .await;
    let name = plant_orphan(T, &agent_id, "dry").await;
    eventually(
        Duration::from_secs(20),
        "the dry run to count the orphan",
        || async {
            (metric(&agent, "containerizer/docker/orphans_would_remove").await >= 2.0).then_some(())
        },
    )
    .await;
    assert!(
        docker_container_exists(&name).await,
        "a dry run removes nothing"
    );
    let inspect: Value = {
        let o = tokio::process::Command::new("docker")
            .args(["inspect", "--format", "{{json .State}}", &name])
            .output()
            .await
            .expect("the docker CLI runs");
        serde_json::from_slice(&o.stdout).expect("inspect JSON")
    };
    assert_eq!(inspect["Running"], true, "nor stops it: {inspect}");
    assert!(
        agent.logs().contains("orphan would be removed (dry run)"),
        "{}",
        agent.logs()
    );
    assert_eq!(
        metric(&agent, "containerizer/docker/orphans_removed").await,
        0.0
    );
    remove_test_containers(T).await;
}

/// A KILL is recorded, the agent is SIGKILLed, and the Docker container is gone when it comes
/// back (as when its own roll-back of a killed launch removed it just before the agent died:
/// here the test removes it, which is the only way to hit that moment every time). The kill
/// is in the checkpoint, so the answer is TASK_KILLED, as Mesos reports it — not TASK_LOST.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_container_gone_after_an_agent_sigkill_is_reported_killed_not_lost() {
    const T: &str = "e2e-truth-kill-sigkill";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &["--docker-remove-delay", "1h"]).await;
    // PID 1 ignores SIGTERM: the kill is recorded and delivered, the process goes on.
    let r = agent.launch_shell("k", "sleep 1000").await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    assert_eq!(agent.kill("k", Some(15)).await.status, 200);
    agent.sigkill().await;
    let name = agent.docker_name("k");
    let o = tokio::process::Command::new("docker")
        .args(["rm", "-f", &name])
        .output()
        .await
        .expect("the docker CLI runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agent.restart().await;
    assert_healthy(&agent).await;
    let w = agent.wait("k").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}\n{}", agent.logs());
    assert_eq!(w["message"], "Container killed", "{w}");
    assert_eq!(agent.remove("k").await.status, 200);
    remove_test_containers(T).await;
}
