//! Health checks (issue 15 item 3) on the real daemon and the real binary: Mesos's
//! `HealthCheck` on `LAUNCH_CONTAINER` (COMMAND, HTTP, TCP), the kill after exactly
//! `consecutive_failures` failures, the grace period, an image's own Docker `HEALTHCHECK`
//! (reported; acted on with Berth's DOCKER type), and bad input.
//!
//! Oracles outside Berth: what each check recorded in the container's sandbox (a COMMAND check
//! appends its verdict to a file there, so the number of checks run is counted by the container
//! itself), `docker inspect` (the container stopped; Docker's own `State.Health`), and the
//! container's state changed from outside with `docker exec` (a file removed, a server killed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_e2e::{
    docker_cli, docker_inspect, eventually, remove_test_containers, testbed, Agent, TEST_LABEL,
};
use serde_json::{json, Value};

/// Launches `sh -c <line>` in the test bed's busybox with `health_check`, on `network`
/// (`HOST` when `None`); returns the answer.
async fn launch(
    agent: &Agent,
    id: &str,
    line: &str,
    network: Option<&str>,
    image: Option<&str>,
    health_check: Option<Value>,
) -> berth_e2e::Resp {
    let mut body = agent.launch_body(id, json!({ "value": line }), image);
    if let Some(n) = network {
        body["container"]["docker"]["network"] = json!(n);
    }
    if let Some(h) = health_check {
        body["health_check"] = h;
    }
    agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await
}

/// The container's `berth.health` object (`Null` without one).
async fn health(agent: &Agent, id: &str) -> Value {
    let c = agent.container(id).await.expect("the container is listed");
    c["berth"]["health"].clone()
}

/// Waits until the container's health status is `status`; returns the health object.
async fn health_becomes(agent: &Agent, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = agent.container(id).await.expect("the container is listed");
        let h = c["berth"]["health"].clone();
        if h["status"] == status {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not become {status} within {within:?}; its entry: {c}\n{}",
            agent.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The verdicts the container's COMMAND check recorded in its sandbox, one per check run.
fn recorded(agent: &Agent, id: &str) -> Vec<String> {
    let path: PathBuf = agent.work_dir.join("sandboxes").join(id).join("checks");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A COMMAND check that passes while `/tmp/ok` exists and records each verdict in the sandbox.
fn file_check() -> Value {
    json!({"type": "COMMAND", "command": {"value":
        "if test -f /tmp/ok; then echo pass >> \"$MESOS_SANDBOX/checks\"; echo ok; \
         else echo fail >> \"$MESOS_SANDBOX/checks\"; echo missing >&2; exit 1; fi"}})
}

/// Launches `id`, whose [`file_check`] passes at first, checked every `interval` seconds from
/// its start, killed after `consecutive_failures` (no grace period).
async fn launch_file_checked(agent: &Agent, id: &str, interval: f64, consecutive_failures: u32) {
    let mut hc = file_check();
    hc["delay_seconds"] = json!(0);
    hc["interval_seconds"] = json!(interval);
    hc["grace_period_seconds"] = json!(0);
    hc["consecutive_failures"] = json!(consecutive_failures);
    let line = "touch /tmp/ok; exec sleep 3600";
    let r = launch(agent, id, line, None, None, Some(hc)).await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
}

/// The agent's metric `name`.
async fn metric(agent: &Agent, name: &str) -> f64 {
    let r = agent.call(json!({"type": "GET_METRICS"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["get_metrics"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn command_check_starting_healthy_then_killed_after_exactly_consecutive_failures() {
    const T: &str = "e2e-health-command";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    let mut hc = file_check();
    hc["delay_seconds"] = json!(1.5);
    hc["interval_seconds"] = json!(0.3);
    hc["timeout_seconds"] = json!(5);
    hc["grace_period_seconds"] = json!(0);
    hc["consecutive_failures"] = json!(3);
    let r = launch(
        &agent,
        "c",
        "touch /tmp/ok; exec sleep 3600",
        None,
        None,
        Some(hc),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    // Before the delay is over: starting, nothing checked yet.
    let h = health(&agent, "c").await;
    assert_eq!(h["status"], "starting", "{h}");
    assert_eq!(
        (h["source"].as_str(), h["type"].as_str()),
        (Some("berth"), Some("COMMAND"))
    );
    assert!(recorded(&agent, "c").is_empty());
    let h = health_becomes(&agent, "c", "healthy", Duration::from_secs(20)).await;
    assert_eq!(h["consecutive_failures"], 0, "{h}");
    assert_eq!(h["last_output"], "ok\n", "{h}");
    assert!(h["last_check"].as_f64().is_some(), "{h}");
    // `berth ps` shows it.
    let ps = agent.cli(&["ps"]).await;
    let out = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(out.lines().next().unwrap_or("").contains("HEALTH"), "{out}");
    assert!(
        out.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.first() == Some(&"c") && cells.contains(&"healthy")
        }),
        "{out}"
    );

    // The container's check starts failing: three failures in a row and it is killed.
    let name = agent.docker_name("c");
    docker_cli(&["exec", &name, "rm", "/tmp/ok"]).await;
    let w = agent.wait("c").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    assert!(
        w["message"].as_str().unwrap_or("").starts_with(
            "Container killed: unhealthy: COMMAND health check failed 3 consecutive times \
             (last: the command exited with status 1)"
        ),
        "{w}"
    );
    // What the container recorded: passes, then exactly three failures, and no check after.
    let checks = recorded(&agent, "c");
    let passes = checks.iter().take_while(|c| *c == "pass").count();
    assert!(passes >= 1, "{checks:?}");
    assert_eq!(&checks[passes..], ["fail", "fail", "fail"], "{checks:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(recorded(&agent, "c"), checks, "a check ran after the kill");
    // Docker says the container was stopped, not that it ended by itself.
    let inspect = docker_inspect("container", &name)
        .await
        .expect("kept until removed");
    assert_eq!(inspect["State"]["Running"], false, "{inspect}");
    let c = agent.container("c").await.unwrap();
    assert_eq!(c["berth"]["termination"]["healthy"], false, "{c}");
    let h = &c["berth"]["health"];
    assert_eq!(
        (
            h["status"].as_str(),
            h["consecutive_failures"].as_u64(),
            h["killed"].as_bool()
        ),
        (Some("unhealthy"), Some(3), Some(true)),
        "{h}"
    );
    assert_eq!(h["last_error"], "the command exited with status 1", "{h}");
    assert_eq!(h["last_output"], "missing\n", "{h}");
    assert_eq!(
        metric(&agent, "containerizer/health/containers_killed").await,
        1.0
    );
    assert_eq!(
        metric(&agent, "containerizer/health/checks_failed").await,
        3.0
    );
    assert_eq!(
        metric(&agent, "containerizer/health/checks_passed").await,
        passes as f64
    );
    assert_eq!(metric(&agent, "containerizer/health/checkers").await, 0.0);
    assert_eq!(agent.remove("c").await.status, 200);
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checks_go_on_after_an_agent_restart_and_stop_while_it_is_down() {
    const T: &str = "e2e-health-restart";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    launch_file_checked(&agent, "r", 0.3, 2).await;
    health_becomes(&agent, "r", "healthy", Duration::from_secs(20)).await;
    // A killed agent checks nothing: no check runs while it is down (the checker is the
    // agent's, it does not outlive it).
    agent.sigkill().await;
    // A check's exec started just before the kill may still be finishing in the container.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = recorded(&agent, "r").len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        recorded(&agent, "r").len(),
        before,
        "a check ran with no agent"
    );
    // The restarted agent recovers the container and checks it again, with the same rules
    // (healthy at once: it goes on from what the last agent found).
    agent.restart().await;
    assert_eq!(health(&agent, "r").await["status"], "healthy");
    eventually(
        Duration::from_secs(20),
        "a check after the restart",
        || async { (recorded(&agent, "r").len() > before).then_some(()) },
    )
    .await;
    docker_cli(&["exec", &agent.docker_name("r"), "rm", "/tmp/ok"]).await;
    let w = agent.wait("r").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    let checks = recorded(&agent, "r");
    assert_eq!(
        &checks[checks.len() - 3..],
        ["pass", "fail", "fail"],
        "{checks:?}"
    );
    assert_eq!(agent.remove("r").await.status, 200);
    remove_test_containers(T).await;
}

/// Mesos's checker lives in the executor and keeps its count across agent restarts; Berth's
/// checkpoints what its checker found. Two failures counted before a restart, a limit of four:
/// the restarted agent kills after two more. The oracle is the container's own record of the
/// checks it ran (a fifth "fail" at most: one check may have been in flight, uncounted, when the
/// agent was killed; a checker starting from zero would need six or seven).
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_agent_goes_on_counting_failures_where_the_last_one_stopped() {
    const T: &str = "e2e-health-resume";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    launch_file_checked(&agent, "r", 0.5, 4).await;
    let healthy = health_becomes(&agent, "r", "healthy", Duration::from_secs(20)).await;
    docker_cli(&["exec", &agent.docker_name("r"), "rm", "/tmp/ok"]).await;
    eventually(Duration::from_secs(20), "two counted failures", || async {
        (health(&agent, "r").await["consecutive_failures"] == 2).then_some(())
    })
    .await;
    agent.sigkill().await;
    agent.restart().await;
    // At once, before any check of the new agent: what the last one found, not "starting".
    let h = health(&agent, "r").await;
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert!(
        h["checks_passed"].as_u64() >= healthy["checks_passed"].as_u64(),
        "{h} after {healthy}"
    );
    let w = agent.wait("r").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    let checks = recorded(&agent, "r");
    let fails = checks.iter().rev().take_while(|v| *v == "fail").count();
    assert!(
        (4..=5).contains(&fails),
        "{fails} failures in a row before the kill: {checks:?}"
    );
    assert_eq!(agent.remove("r").await.status, 200);
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chatty_check_keeps_its_tail_and_a_hung_one_times_out() {
    const T: &str = "e2e-health-output";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    let report_only = |command: &str, timeout: f64| {
        json!({"type": "COMMAND", "command": {"value": command},
               "delay_seconds": 0, "interval_seconds": 0.5, "timeout_seconds": timeout,
               "grace_period_seconds": 0, "kill_on_unhealthy": false})
    };
    // A megabyte of output: only its last 512 bytes are kept.
    let chatty = report_only("head -c 1000000 /dev/zero | tr '\\0' x; echo END", 10.0);
    // A check that never ends within its timeout: a shell with children (a check's usual
    // `sh -c 'curl ... || exit 1'`), all of which must go when it is killed.
    let hung = report_only("echo started; sleep 31 & sleep 32; echo never", 1.0);
    for (id, hc) in [("chatty", chatty), ("hung", hung)] {
        let r = launch(&agent, id, "exec sleep 3600", None, None, Some(hc)).await;
        assert_eq!(r.status, 200, "{id}: {r:?}\n{}", agent.logs());
    }
    let h = health_becomes(&agent, "chatty", "healthy", Duration::from_secs(20)).await;
    let out = h["last_output"].as_str().expect("its output");
    assert_eq!(out.len(), 512, "{h}");
    assert!(out.ends_with("xxxxEND\n"), "{h}");
    // Each hung check fails at its 1 s timeout and the next one runs on schedule.
    let started = Instant::now();
    let h = eventually(
        Duration::from_secs(20),
        "three timed-out checks",
        || async {
            let h = health(&agent, "hung").await;
            (h["consecutive_failures"].as_u64() >= Some(3)).then_some(h)
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert_eq!(
        h["last_error"], "the check did not finish within its timeout of 1s; it was killed",
        "{h}"
    );
    assert_eq!(h["last_output"], "started\n", "{h}");
    // Each timed-out command was killed with its children: Docker lists at most the one check
    // in flight, not one left behind per check (Docker has no call to kill an exec).
    let top = docker_cli(&["top", &agent.docker_name("hung"), "-o", "pid,args"]).await;
    for child in ["sleep 31", "sleep 32"] {
        let left = top
            .lines()
            .filter(|l| l.trim_end().ends_with(child))
            .count();
        assert!(left <= 1, "hung checks left running:\n{top}");
    }
    // The agent answers meanwhile, and destroys both at once.
    for id in ["chatty", "hung"] {
        assert_eq!(agent.kill(id, Some(9)).await.status, 200);
        assert_eq!(agent.wait(id).await["state"], "TASK_KILLED");
        assert_eq!(agent.remove(id).await.status, 200);
    }
    assert_eq!(metric(&agent, "containerizer/health/checkers").await, 0.0);
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_within_the_grace_period_do_not_kill() {
    const T: &str = "e2e-health-grace";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    let mut hc = file_check();
    hc["delay_seconds"] = json!(0);
    hc["interval_seconds"] = json!(0.3);
    hc["grace_period_seconds"] = json!(4);
    hc["consecutive_failures"] = json!(1);
    let started = Instant::now();
    // No /tmp/ok: every check fails from the start.
    let r = launch(&agent, "g", "exec sleep 3600", None, None, Some(hc)).await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let c = agent.container("g").await.unwrap();
    assert_eq!(c["berth"]["state"], "RUNNING", "{c}");
    let h = &c["berth"]["health"];
    assert_eq!(h["status"], "starting", "{h}");
    assert_eq!(h["consecutive_failures"], 0, "{h}");
    let failed = recorded(&agent, "g").len();
    assert!(failed >= 4, "the checks ran and failed meanwhile: {failed}");
    assert_eq!(h["checks_failed"].as_u64(), Some(failed as u64), "{h}");
    // The first failure after the grace period kills it (one is the limit).
    let w = agent.wait("g").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "killed {:?} after the launch, within its grace period",
        started.elapsed()
    );
    assert_eq!(agent.remove("g").await.status, 200);
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_and_tcp_checks_reach_the_container_on_the_bridge_network() {
    const T: &str = "e2e-health-network";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    // A web server on 8080 and a TCP server on 9000, on the bridge network. Reporting only:
    // the checks are seen going unhealthy without a kill.
    let line = "mkdir -p /www && echo hi > /www/index.html && httpd -p 8080 -h /www \
                && nc -ll -p 9000 -e true & exec sleep 3600";
    let common = json!({"delay_seconds": 0, "interval_seconds": 0.3, "timeout_seconds": 2,
                        "grace_period_seconds": 0, "consecutive_failures": 2,
                        "kill_on_unhealthy": false});
    let with = |mut extra: Value| {
        for (k, v) in common.as_object().unwrap() {
            extra[k] = v.clone();
        }
        extra
    };
    let checks = [
        (
            "web",
            with(json!({"type": "HTTP", "http": {"port": 8080, "path": "/index.html"}})),
        ),
        ("tcp", with(json!({"type": "TCP", "tcp": {"port": 9000}}))),
        // A status outside 200..=399 passes when it is listed.
        (
            "notfound",
            with(
                json!({"type": "HTTP", "http": {"port": 8080, "path": "/nope", "statuses": [404]}}),
            ),
        ),
    ];
    for (id, hc) in &checks {
        let r = launch(&agent, id, line, Some("BRIDGE"), None, Some(hc.clone())).await;
        assert_eq!(r.status, 200, "{id}: {r:?}\n{}", agent.logs());
    }
    for (id, _) in &checks {
        let h = health_becomes(&agent, id, "healthy", Duration::from_secs(20)).await;
        // Dialled from inside the container's network namespace, as Mesos does.
        let out = h["last_output"].as_str().unwrap_or("");
        let want = match *id {
            "web" => "GET http://127.0.0.1:8080/index.html: 200 OK",
            "tcp" => "connected to 127.0.0.1:9000",
            _ => "GET http://127.0.0.1:8080/nope: 404 Not Found",
        };
        assert_eq!(out, want, "{id}: {h}");
    }
    // The servers die: the checks fail, and the containers run on (no kill asked for).
    for (id, _) in &checks {
        docker_cli(&["exec", &agent.docker_name(id), "killall", "httpd", "nc"]).await;
    }
    for (id, _) in &checks {
        let h = eventually(
            Duration::from_secs(20),
            "unhealthy and counting",
            || async {
                let h = health(&agent, id).await;
                (h["status"] == "unhealthy" && h["consecutive_failures"].as_u64() >= Some(3))
                    .then_some(h)
            },
        )
        .await;
        assert!(
            h["last_error"].as_str().unwrap_or("").contains("refused"),
            "{id}: {h}"
        );
        assert_eq!(h["killed"], false, "{id}: {h}");
        let c = agent.container(id).await.unwrap();
        assert_eq!(c["berth"]["state"], "RUNNING", "{id}: {c}");
    }
    for (id, _) in &checks {
        assert_eq!(agent.kill(id, Some(9)).await.status, 200);
        assert_eq!(agent.wait(id).await["state"], "TASK_KILLED");
        assert_eq!(agent.remove(id).await.status, 200);
    }
    remove_test_containers(T).await;
}

/// HTTP and TCP checks run inside the container's network namespace against its loopback
/// address, as Mesos's checker does (it enters the namespace; `curl` and `mesos-tcp-connect`
/// dial 127.0.0.1). So the agent, root on the host, reaches no further than the container
/// itself could: a health endpoint redirecting to a server on the host's loopback address
/// (the agent's own API, a local admin port) leads the check nowhere. And a server listening
/// only on the container's loopback address, or in a container with no network, is checked.
/// Oracles: the host server's count of connections, and the servers the container runs.
#[tokio::test(flavor = "multi_thread")]
async fn http_and_tcp_checks_run_in_the_containers_network_namespace() {
    const T: &str = "e2e-health-netns";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    // The host-only server a hostile redirect aims at.
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let canary_port = canary.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let hits = hits.clone();
        tokio::spawn(async move {
            while let Ok((_conn, _)) = canary.accept().await {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let redirect = format!(
        "mkdir -p /www/cgi-bin && echo '#!/bin/sh' > /www/cgi-bin/go \
         && echo 'printf \"HTTP/1.0 302 Found\\r\\nLocation: http://127.0.0.1:{canary_port}/\\r\\n\\r\\n\"' \
            >> /www/cgi-bin/go && chmod +x /www/cgi-bin/go && httpd -p 8080 -h /www \
         && exec sleep 3600"
    );
    let local_only =
        "mkdir -p /www && echo hi > /www/index.html && httpd -p 127.0.0.1:8080 -h /www \
                      && httpd -p 127.0.0.1:9000 -h /www && exec sleep 3600";
    let report = |check: Value| {
        let mut hc = check;
        for (k, v) in [
            ("delay_seconds", json!(0)),
            ("interval_seconds", json!(0.3)),
            ("timeout_seconds", json!(2)),
            ("grace_period_seconds", json!(0)),
            ("kill_on_unhealthy", json!(false)),
        ] {
            hc[k] = v;
        }
        hc
    };
    let http = |path: &str| report(json!({"type": "HTTP", "http": {"port": 8080, "path": path}}));
    let tcp = report(json!({"type": "TCP", "tcp": {"port": 9000}}));
    let launches = [
        ("redirect", redirect.as_str(), "BRIDGE", http("/cgi-bin/go")),
        ("local-http", local_only, "BRIDGE", http("/index.html")),
        ("local-tcp", local_only, "BRIDGE", tcp.clone()),
        ("none-http", local_only, "NONE", http("/index.html")),
        ("none-tcp", local_only, "NONE", tcp),
    ];
    for (id, line, network, hc) in &launches {
        let r = launch(&agent, id, line, Some(network), None, Some(hc.clone())).await;
        assert_eq!(r.status, 200, "{id}: {r:?}\n{}", agent.logs());
    }
    for id in ["local-http", "none-http"] {
        let h = health_becomes(&agent, id, "healthy", Duration::from_secs(20)).await;
        assert_eq!(
            h["last_output"], "GET http://127.0.0.1:8080/index.html: 200 OK",
            "{id}: {h}"
        );
    }
    for id in ["local-tcp", "none-tcp"] {
        let h = health_becomes(&agent, id, "healthy", Duration::from_secs(20)).await;
        assert_eq!(h["last_output"], "connected to 127.0.0.1:9000", "{id}: {h}");
    }
    // The redirect is followed inside the container, where nothing listens on that port.
    let h = eventually(
        Duration::from_secs(20),
        "failed redirected checks",
        || async {
            let h = health(&agent, "redirect").await;
            (h["consecutive_failures"].as_u64() >= Some(3)).then_some(h)
        },
    )
    .await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the check followed the redirect to the host's loopback server: {h}"
    );
    assert!(
        h["last_error"].as_str().unwrap_or("").contains("refused"),
        "{h}"
    );
    for (id, ..) in &launches {
        assert_eq!(agent.kill(id, Some(9)).await.status, 200);
        assert_eq!(agent.wait(id).await["state"], "TASK_KILLED");
        assert_eq!(agent.remove(id).await.status, 200);
    }
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_images_docker_healthcheck_is_reported_and_acted_on_only_when_asked() {
    const T: &str = "e2e-health-docker";
    remove_test_containers(T).await;
    // Images an earlier run made and could not remove (it died): their process is gone.
    for stale in docker_cli(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await
        .lines()
        .filter(|i| {
            i.strip_prefix("berth-test/health-")
                .and_then(|rest| rest.strip_suffix(":latest"))
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        })
    {
        docker_cli(&["image", "rm", "--force", stale]).await;
    }
    // An image with its own HEALTHCHECK, made from the test bed's busybox with `docker commit`.
    let image = format!("berth-test/health-{}:latest", std::process::id());
    let base = docker_cli(&[
        "create",
        "--label",
        &format!("{TEST_LABEL}={T}-{}", std::process::id()),
        &testbed().images.busybox,
    ])
    .await;
    docker_cli(&[
        "commit",
        "--change",
        "HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD test -f /tmp/ok",
        base.trim(),
        &image,
    ])
    .await;
    docker_cli(&["rm", base.trim()]).await;
    let agent = Agent::start(T, &["--docker-stop-timeout", "1s"]).await;
    // "d" only reports Docker's verdict; "k" asks Berth to act on it (Berth's DOCKER type).
    for (id, hc) in [("d", None), ("k", Some(json!({"type": "DOCKER"})))] {
        let r = launch(
            &agent,
            id,
            "touch /tmp/ok; exec sleep 3600",
            None,
            Some(&image),
            hc,
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    }
    let name = agent.docker_name("d");
    for id in ["d", "k"] {
        let h = health_becomes(&agent, id, "healthy", Duration::from_secs(20)).await;
        assert_eq!(
            (h["source"].as_str(), h["type"].as_str()),
            (Some("docker"), Some("CMD")),
            "{h}"
        );
        docker_cli(&["exec", &agent.docker_name(id), "rm", "/tmp/ok"]).await;
    }
    // Asked for: killed once Docker says unhealthy (after its --retries=2 failures).
    let w = agent.wait("k").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    assert!(
        w["message"].as_str().unwrap_or("").starts_with(
            "Container killed: unhealthy: Docker HEALTHCHECK failed 2 consecutive times"
        ),
        "{w}"
    );
    let k = docker_inspect("container", &agent.docker_name("k"))
        .await
        .expect("kept until removed");
    assert_eq!(k["State"]["Running"], false, "{k}");
    assert_eq!(k["State"]["Health"]["Status"], "unhealthy", "{k}");
    let h = health_becomes(&agent, "d", "unhealthy", Duration::from_secs(20)).await;
    // Berth says what Docker says.
    let state = docker_inspect("container", &name).await.expect("running")["State"].clone();
    assert_eq!(state["Health"]["Status"], "unhealthy", "{state}");
    assert!(h["consecutive_failures"].as_u64() >= Some(2), "{h}");
    assert_eq!(h["last_error"], "exited with status 1", "{h}");
    // Docker's verdict is only reported: the container runs on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = agent.container("d").await.unwrap();
    assert_eq!(c["berth"]["state"], "RUNNING", "{c}");
    assert_eq!(state["Running"], true, "{state}");
    assert_eq!(agent.kill("d", Some(9)).await.status, 200);
    agent.wait("d").await;
    assert_eq!(
        metric(&agent, "containerizer/health/containers_killed").await,
        1.0
    );
    for id in ["d", "k"] {
        assert_eq!(agent.remove(id).await.status, 200);
    }
    remove_test_containers(T).await;
    let _ = tokio::process::Command::new("docker")
        .args(["image", "rm", "--force", &image])
        .output()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_health_checks_are_400s_naming_the_field() {
    const T: &str = "e2e-health-bad";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let p = "launch_container.health_check";
    for (hc, want) in [
        (
            json!({"type": "TCP", "tcp": {"port": 0}}),
            format!("field '{p}.tcp.port': 0 is out of range"),
        ),
        (
            json!({"type": "COMMAND"}),
            format!("missing required field '{p}.command'"),
        ),
        (
            json!({"type": "HTTP"}),
            format!("missing required field '{p}.http'"),
        ),
        (
            json!({"type": "TCP", "tcp": {"port": 80}, "interval_seconds": -1}),
            format!("field '{p}.interval_seconds': -1 is not a valid number of seconds"),
        ),
        (
            json!({"type": "TCP", "tcp": {"port": 80}, "timeout_seconds": "NaN"}),
            format!("field '{p}.timeout_seconds': expected a number"),
        ),
    ] {
        let r = launch(&agent, "bad", "true", None, None, Some(hc.clone())).await;
        assert_eq!(r.status, 400, "{hc}: {r:?}");
        assert!(
            r.body.contains(&want),
            "{hc}: want {want:?}, got {:?}",
            r.body
        );
    }
    // Nothing was made.
    assert!(agent.container("bad").await.is_none());
    remove_test_containers(T).await;
}
