//! Restart safety of the real binary: SIGKILL and SIGTERM of the agent, recovery of running and
//! exited containers, and orphan cleanup.

use std::collections::HashMap;
use std::time::Duration;

use berth_docker_api::{ContainerConfig, Docker};
use berth_e2e::{
    docker_container_exists, eventually, remove_test_containers, testbed, Agent, TEST_LABEL,
};

async fn running(docker_id: &str) -> bool {
    let docker = Docker::from_env().await.unwrap();
    docker
        .containers()
        .inspect(docker_id)
        .await
        .map(|c| c.state.running)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_and_restart_recovers_running_and_exited_containers() {
    const T: &str = "e2e-recovery-sigkill";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &[]).await;
    let ticker = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done";
    assert_eq!(
        agent.launch_shell("keeps", ticker).await.status,
        200,
        "{}",
        agent.logs()
    );
    assert_eq!(
        agent
            .launch_shell("ends", "sleep 1; echo bye; exit 5")
            .await
            .status,
        200
    );
    let docker_id = agent.container("keeps").await.unwrap()["berth"]["docker_id"]
        .as_str()
        .unwrap()
        .to_owned();

    agent.sigkill().await;
    // While the agent is down: one container keeps running, the other exits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        running(&docker_id).await,
        "SIGKILL of the agent leaves containers running"
    );
    agent.restart().await;

    let keeps = agent.container("keeps").await.expect("recovered");
    assert_eq!(keeps["berth"]["state"], "RUNNING", "{keeps}");
    assert_eq!(keeps["berth"]["docker_id"], docker_id.as_str());
    let w = agent.wait("ends").await;
    assert_eq!(
        w["exit_status"],
        5 << 8,
        "the real exit status from while the agent was down: {w}"
    );
    assert_eq!(agent.read_text("/containers/ends/stdout").await, "bye\n");

    // The log of the re-attached container continues, without a gap or a repeat.
    let before = agent
        .read_text("/containers/keeps/stdout")
        .await
        .lines()
        .count();
    eventually(
        Duration::from_secs(10),
        "output after the restart",
        || async {
            (agent
                .read_text("/containers/keeps/stdout")
                .await
                .lines()
                .count()
                > before + 5)
                .then_some(())
        },
    )
    .await;
    assert_eq!(agent.kill("keeps", None).await.status, 200);
    let w = agent.wait("keeps").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    let text = agent.read_text("/containers/keeps/stdout").await;
    for (n, line) in text.lines().enumerate() {
        assert_eq!(
            line,
            format!("tick {n}"),
            "line {n} of the log across the restart"
        );
    }
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_serving_promptly_and_leaves_containers_running() {
    const T: &str = "e2e-recovery-sigterm";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &[]).await;
    assert_eq!(
        agent.launch_shell("stay", "sleep 600").await.status,
        200,
        "{}",
        agent.logs()
    );
    let docker_id = agent.container("stay").await.unwrap()["berth"]["docker_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A long-poll WAIT in flight must not hold the shutdown up for long.
    let waiting = {
        let url = format!("{}/api/v1", agent.url);
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(r#"{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"stay"}}}"#)
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let code = agent.sigterm().await;
    assert_eq!(code, Some(0), "{}", agent.logs());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        agent.logs().contains("no longer accepting requests"),
        "{}",
        agent.logs()
    );
    let _ = waiting.await;
    assert!(
        running(&docker_id).await,
        "SIGTERM leaves containers running"
    );

    agent.restart().await;
    assert_eq!(
        agent.container("stay").await.unwrap()["berth"]["state"],
        "RUNNING"
    );
    assert_eq!(agent.kill("stay", None).await.status, 200);
    assert_eq!(agent.wait("stay").await["state"], "TASK_KILLED");
    remove_test_containers(T).await;
}

/// SIGTERM while containers print, launch and exit: the agent stops its background work,
/// flushes logs and checkpoints and exits on its own (not cut off by the runtime's timeout),
/// and the restarted agent has lost nothing: every accepted launch ends with its real status
/// and output, the busy log continues without a gap or a repeat, and nothing is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_activity_flushes_and_recovery_loses_nothing() {
    const T: &str = "e2e-recovery-sigterm-busy";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &["--docker-remove-delay", "1h"]).await;
    let ticker = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.005; done";
    assert_eq!(
        agent.launch_shell("ticker", ticker).await.status,
        200,
        "{}",
        agent.logs()
    );
    let ticker_docker = agent.container("ticker").await.unwrap()["berth"]["docker_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Launches in flight and containers ending around the SIGTERM.
    let mut launches = Vec::new();
    for n in 1..=6 {
        let body = agent.launch_body(
            &format!("end-{n}"),
            serde_json::json!({"value": format!("sleep 0.{n}; echo done {n}; exit {n}")}),
            None,
        );
        let call = serde_json::json!({"type": "LAUNCH_CONTAINER", "launch_container": body});
        let url = format!("{}/api/v1", agent.url);
        launches.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(call.to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let started = std::time::Instant::now();
    let code = agent.sigterm().await;
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{}", agent.logs());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let logs = agent.logs();
    assert!(
        logs.contains("checkpoints flushed, containers left running")
            && logs.contains("tasks_ended=true"),
        "the agent stopped its tasks and flushed:\n{logs}"
    );
    let mut accepted = Vec::new();
    for (i, l) in launches.into_iter().enumerate() {
        if l.await.unwrap() == Some(200) {
            accepted.push(i + 1);
        }
    }
    assert!(
        !accepted.is_empty(),
        "no launch was accepted before the SIGTERM"
    );
    assert!(
        running(&ticker_docker).await,
        "SIGTERM leaves containers running"
    );

    agent.restart().await;
    for n in 1..=6 {
        let id = format!("end-{n}");
        if accepted.contains(&n) {
            let w = agent.wait(&id).await;
            assert_eq!(w["exit_status"], n << 8, "{id}: {w}\n{}", agent.logs());
            assert_eq!(
                agent.read_text(&format!("/containers/{id}/stdout")).await,
                format!("done {n}\n"),
                "{id}'s output, exactly once"
            );
        } else if agent.container(&id).await.is_some() {
            // Caught mid-launch: finished or rolled back, but ended either way.
            agent.wait(&id).await;
        }
    }
    let before = agent
        .read_text("/containers/ticker/stdout")
        .await
        .lines()
        .count();
    eventually(
        Duration::from_secs(10),
        "ticker output after the restart",
        || async {
            (agent
                .read_text("/containers/ticker/stdout")
                .await
                .lines()
                .count()
                > before + 20)
                .then_some(())
        },
    )
    .await;
    assert_eq!(agent.kill("ticker", None).await.status, 200);
    assert_eq!(agent.wait("ticker").await["state"], "TASK_KILLED");
    let text = agent.read_text("/containers/ticker/stdout").await;
    for (n, line) in text.lines().enumerate() {
        assert_eq!(
            line,
            format!("tick {n}"),
            "line {n} of the log across the SIGTERM"
        );
    }
    // Everything the agent knows is removable, and then nothing of the test is left.
    let all = agent
        .call(serde_json::json!({"type": "GET_CONTAINERS"}))
        .await
        .json();
    for c in all["get_containers"]["containers"].as_array().unwrap() {
        let id = c["container_id"]["value"].as_str().unwrap();
        agent.wait(id).await;
        assert_eq!(agent.remove(id).await.status, 200, "{id}");
    }
    assert_eq!(
        remove_test_containers(T).await,
        0,
        "a Docker container outlived its removal or was never known"
    );
}

/// A restarted agent that finds a container's logger checkpoint gone goes on after what the
/// sandbox files hold: no line is written twice (a few may be missing: that is reported in the
/// metrics).
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_logger_checkpoint_resumes_without_duplicates() {
    const T: &str = "e2e-recovery-lost-log-checkpoint";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &[]).await;
    let ticker = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.02; done";
    assert_eq!(agent.launch_shell("ticker", ticker).await.status, 200);
    eventually(Duration::from_secs(10), "ticker output", || async {
        (agent
            .read_text("/containers/ticker/stdout")
            .await
            .lines()
            .count()
            > 20)
            .then_some(())
    })
    .await;
    agent.sigkill().await;
    // The logger keeps every container's checkpoint in one journal: this one is the only one.
    let checkpoint = agent.work_dir.join("logger/checkpoints.journal");
    std::fs::remove_file(&checkpoint).unwrap_or_else(|e| panic!("{}: {e}", checkpoint.display()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.restart().await;
    let before = agent
        .read_text("/containers/ticker/stdout")
        .await
        .lines()
        .count();
    eventually(
        Duration::from_secs(10),
        "output after the restart",
        || async {
            (agent
                .read_text("/containers/ticker/stdout")
                .await
                .lines()
                .count()
                > before + 20)
                .then_some(())
        },
    )
    .await;
    assert_eq!(agent.kill("ticker", None).await.status, 200);
    agent.wait("ticker").await;
    let text = agent.read_text("/containers/ticker/stdout").await;
    let numbers: Vec<u64> = text
        .lines()
        .map(|l| {
            l.strip_prefix("tick ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a tick line: {l:?}"))
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "a line was written twice or out of order: {numbers:?}"
    );
    let m = agent.get("/metrics/snapshot").await.json();
    assert_eq!(m["containerizer/logger/resume_fallbacks"], 1.0, "{m}");
    assert_eq!(m["containerizer/logger/resume_possible_gaps"], 1.0, "{m}");
    assert!(
        agent
            .logs()
            .contains("cannot resume the log from its checkpoint"),
        "{}",
        agent.logs()
    );
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_are_removed_and_other_agents_containers_are_left_alone() {
    const T: &str = "e2e-recovery-orphans";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &["--docker-orphan-grace", "0"]).await;
    let agent_id = std::fs::read_to_string(agent.work_dir.join("agent-id"))
        .unwrap()
        .trim()
        .to_owned();
    agent.sigkill().await;

    let docker = Docker::from_env().await.unwrap();
    let make = |owner: &str, id: &str| ContainerConfig {
        image: Some(testbed().images.busybox.clone()),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        labels: Some(HashMap::from([
            ("io.berth.agent-id".to_owned(), owner.to_owned()),
            ("io.berth.container-id".to_owned(), id.to_owned()),
            (TEST_LABEL.to_owned(), agent.test.clone()),
        ])),
        ..ContainerConfig::default()
    };
    let orphan = docker
        .containers()
        .create(None, &make(&agent_id, "orphan"))
        .await
        .unwrap()
        .id;
    docker.containers().start(&orphan).await.unwrap();
    let foreign = docker
        .containers()
        .create(None, &make("some-other-agent", "theirs"))
        .await
        .unwrap()
        .id;
    docker.containers().start(&foreign).await.unwrap();

    agent.restart().await;
    eventually(
        Duration::from_secs(30),
        "the orphan to be removed",
        || async { (!docker_container_exists(&orphan).await).then_some(()) },
    )
    .await;
    assert!(
        running(&foreign).await,
        "another agent's container is never touched"
    );
    assert!(
        agent.container("orphan").await.is_none(),
        "an orphan is not adopted"
    );
    assert!(agent.logs().contains("orphans=1"), "{}", agent.logs());
    remove_test_containers(T).await;
}

/// A sandbox no container owns (left by a removal a crash interrupted, or an earlier agent's)
/// is deleted by the next garbage collection pass, through safe-fs; a known container's is not.
#[tokio::test(flavor = "multi_thread")]
async fn sandboxes_of_removed_containers_are_collected() {
    const T: &str = "e2e-recovery-sandbox-gc";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &["--docker-remove-delay", "0"]).await;
    assert_eq!(
        agent.launch_shell("brief", "echo short-lived").await.status,
        200,
        "{}",
        agent.logs()
    );
    let sandbox = agent.work_dir.join("sandboxes/brief");
    assert!(sandbox.is_dir());
    agent.wait("brief").await;
    let stray = agent.work_dir.join("sandboxes/stray");
    std::fs::create_dir_all(stray.join("deep/er")).unwrap();
    std::fs::write(stray.join("deep/file"), b"x").unwrap();
    std::os::unix::fs::symlink("/etc", stray.join("deep/link-to-etc")).unwrap();
    agent.sigterm().await;
    agent.restart().await;
    eventually(
        Duration::from_secs(10),
        "the stale sandbox to be deleted",
        || async { (!stray.exists()).then_some(()) },
    )
    .await;
    assert!(
        std::path::Path::new("/etc/passwd").exists(),
        "nothing followed out"
    );
    assert!(
        sandbox.is_dir(),
        "an ended container keeps its sandbox until REMOVE_CONTAINER or its gc delay"
    );
    assert_eq!(agent.remove("brief").await.status, 200);
    assert!(!sandbox.exists());
    remove_test_containers(T).await;
}
