//! Metrics, flags, version and state of a real agent, in Mesos's JSON and Prometheus text.

use berth_e2e::{remove_test_containers, Agent};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_happened_in_both_formats() {
    const T: &str = "e2e-metrics";
    remove_test_containers(T).await;
    let agent = Agent::start(
        T,
        &["--docker-remove-delay", "30m", "--max-parallel-pulls", "2"],
    )
    .await;
    assert_eq!(agent.launch_shell("m1", "echo hi").await.status, 200);
    agent.wait("m1").await;
    assert_eq!(agent.launch_shell("m1", "echo hi").await.status, 202);
    assert_eq!(agent.launch_shell("run", "sleep 600").await.status, 200);
    assert_eq!(agent.call(json!({"type": "NOPE"})).await.status, 400);

    let snap = agent.get("/metrics/snapshot").await;
    assert_eq!(snap.status, 200);
    let s = snap.json();
    assert_eq!(s["containerizer/docker/launches_succeeded"], 2.0, "{s}");
    assert_eq!(s["containerizer/docker/launches_duplicate"], 1.0, "{s}");
    assert_eq!(s["containerizer/docker/containers_running"], 1.0, "{s}");
    assert_eq!(s["containerizer/docker/containers_terminated"], 1.0, "{s}");
    assert_eq!(s["containerizer/docker/illegal_transitions"], 0.0, "{s}");
    assert!(
        s["agent/http/responses_4xx"].as_f64().unwrap() >= 1.0,
        "{s}"
    );
    assert!(
        s["agent/process/mem_peak_rss_bytes"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    assert!(s["agent/process/cpu_user_secs"].as_f64().is_some(), "{s}");
    assert!(
        s["containerizer/fetcher/task_fetches_succeeded"]
            .as_f64()
            .is_some(),
        "{s}"
    );
    assert!(
        s["containerizer/logger/bytes_written"].as_f64().unwrap() >= 3.0,
        "{s}"
    );
    assert_eq!(s["agent/api/calls/LAUNCH_CONTAINER"], 3.0, "{s}");
    // Checkpoints: durable writes share journal fsyncs, never need more of them.
    let num = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {s}"));
    let (durable, fsyncs) = (
        num("containerizer/checkpoints/durable_writes"),
        num("containerizer/checkpoints/journal_fsyncs"),
    );
    assert!(
        fsyncs >= 1.0 && fsyncs <= durable,
        "{fsyncs} fsyncs for {durable} durable writes"
    );
    assert!(num("containerizer/checkpoints/journal_bytes") > 8.0, "{s}");
    // m1 finished: its last log checkpoint was fsynced, and its stdout (it printed) too.
    assert!(
        num("containerizer/logger/checkpoints_durable") >= 1.0,
        "{s}"
    );
    assert!(num("containerizer/logger/checkpoints_stored") >= 2.0, "{s}");
    assert!(num("containerizer/logger/file_syncs") >= 1.0, "{s}");

    let prom = agent.get("/metrics").await;
    assert_eq!(prom.status, 200);
    assert!(prom.content_type.starts_with("text/plain"), "{prom:?}");
    assert!(prom
        .body
        .contains("# TYPE berth_containerizer_docker_launches_succeeded counter"));
    assert!(
        prom.body
            .contains("\nberth_containerizer_docker_launches_succeeded 2\n"),
        "{}",
        prom.body
    );
    assert!(prom
        .body
        .contains("\nberth_containerizer_docker_containers_running 1\n"));
    for line in prom
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.split_once(' ').unwrap();
        assert!(
            name.starts_with("berth_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }

    let m = agent
        .call(json!({"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 1000000}}}))
        .await
        .json();
    let list = m["get_metrics"]["metrics"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|x| x["name"] == "containerizer/docker/launches_succeeded" && x["value"] == 2.0),
        "{m}"
    );

    let f = agent.call(json!({"type": "GET_FLAGS"})).await.json();
    let flags = f["get_flags"]["flags"].as_array().unwrap();
    let flag = |n: &str| {
        flags
            .iter()
            .find(|x| x["name"] == n)
            .map(|x| x["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(flag("docker_remove_delay").as_deref(), Some("30m"));
    assert_eq!(flag("max_parallel_pulls").as_deref(), Some("2"));
    assert_eq!(
        flag("sandbox_directory").as_deref(),
        Some("/mnt/mesos/sandbox")
    );
    assert!(flag("agent_id").is_some_and(|id| !id.is_empty()));

    let v = agent.call(json!({"type": "GET_VERSION"})).await.json();
    assert_eq!(
        v["get_version"]["version_info"]["version"],
        env!("CARGO_PKG_VERSION")
    );
    let v = agent.get("/version").await.json();
    assert!(
        v["berth"]["docker_version"]
            .as_str()
            .unwrap()
            .starts_with("20.10"),
        "{v}"
    );
    assert_eq!(
        agent.call(json!({"type": "GET_HEALTH"})).await.json()["get_health"]["healthy"],
        true
    );

    let state = agent.get("/state").await.json();
    assert_eq!(
        state["berth"]["containers"].as_array().unwrap().len(),
        2,
        "{state}"
    );
    assert_eq!(state["flags"]["docker_remove_delay"], "30m");
    assert!(state["id"].as_str().unwrap().len() > 8);
    agent.kill("run", None).await;
    agent.wait("run").await;
    remove_test_containers(T).await;
}

/// `GET_CONTAINERS` samples every running container at once from its cgroup files (Docker's
/// stats would take up to a second each): statistics for all of them, none asked of Docker.
#[tokio::test(flavor = "multi_thread")]
async fn get_containers_samples_running_containers_from_their_cgroups() {
    const T: &str = "e2e-usage-fast-path";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    for id in ["u1", "u2", "u3"] {
        assert_eq!(agent.launch_shell(id, "sleep 600").await.status, 200);
    }
    let r = agent
        .call(serde_json::json!({"type": "GET_CONTAINERS"}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    let entries = body["get_containers"]["containers"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{body}");
    for e in entries {
        let s = &e["resource_statistics"];
        assert_eq!(s["processes"], 1, "{e}");
        assert!(s["mem_total_bytes"].as_f64().unwrap() > 0.0, "{e}");
        assert!(s["cpus_user_time_secs"].is_number(), "{e}");
    }
    let m = agent.get("/metrics/snapshot").await.json();
    assert_eq!(m["containerizer/usage/cgroup_samples"], 3.0, "{m}");
    assert_eq!(m["containerizer/usage/docker_samples"], 0.0, "{m}");
    for id in ["u1", "u2", "u3"] {
        assert_eq!(agent.kill(id, None).await.status, 200);
        agent.wait(id).await;
    }
    remove_test_containers(T).await;
}
