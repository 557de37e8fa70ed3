//! The `berth` command line: `run` (embedded and against an agent), the client commands, and
//! `serve`'s flag errors and startup checks.

use std::process::Stdio;
use std::time::Duration;

use berth_e2e::{
    berth_bin, describe_output, eventually, remove_test_containers, test_label, testbed, Agent,
};
use tokio::process::Command;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The Docker daemon's view of a container (by name): `None` when it does not exist.
async fn docker_state(name: &str) -> Option<berth_docker_api::ContainerState> {
    let docker = berth_docker_api::Docker::from_env()
        .await
        .expect("the Docker daemon");
    match docker.containers().inspect(name).await {
        Ok(c) => Some(c.state),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("inspect {name}: {e}"),
    }
}

async fn berth(args: &[&str]) -> std::process::Output {
    Command::new(berth_bin())
        .args(args)
        .env_remove("BERTH_AGENT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run berth")
}

#[tokio::test(flavor = "multi_thread")]
async fn run_embedded_uses_the_offline_default_image_and_exits_with_the_code() {
    const T: &str = "e2e-cli-run";
    remove_test_containers(T).await;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_str().unwrap();
    let label = test_label(T);
    let o = berth(&[
        "run",
        "--work-dir",
        work,
        "--label",
        &label,
        "--",
        "sh",
        "-c",
        "echo hello from berth; echo oops >&2; exit 4",
    ])
    .await;
    assert_eq!(o.status.code(), Some(4), "{}", describe_output(&o));
    assert_eq!(stdout(&o), "hello from berth\n", "{}", describe_output(&o));
    assert!(stderr(&o).contains("oops"), "{}", describe_output(&o));
    // The embedded agent removed its container and sandbox.
    assert_eq!(
        remove_test_containers(T).await,
        0,
        "berth run leaves no container behind"
    );
    let slot = dir.path().join("slot-0");
    assert!(slot.join("agent-id").is_file());
    assert_eq!(
        std::fs::read_dir(slot.join("sandboxes")).unwrap().count(),
        0
    );

    // Environment, volumes and the image's defaults.
    let host = dir.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from the host").unwrap();
    let vol = format!("{}:/shared:ro", host.display());
    let o = berth(&[
        "run",
        "--work-dir",
        work,
        "--label",
        &label,
        "-e",
        "GREETING=hi there",
        "-v",
        &vol,
        "--",
        "sh",
        "-c",
        "echo \"$GREETING\"; cat /shared/in.txt; touch /shared/x 2>/dev/null || echo read-only",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", describe_output(&o));
    assert_eq!(
        stdout(&o),
        "hi there\nfrom the hostread-only\n",
        "{}",
        describe_output(&o)
    );

    // A reader that goes away (`| head -n 1`) ends the run, and the container with it.
    let line = format!("{} run --work-dir {work} --label {label} -- sh -c 'while true; do echo y; sleep 0.01; done' | head -n 1", berth_bin().display());
    let o = Command::new("sh")
        .args(["-c", &line])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(stdout(&o), "y\n", "{}", describe_output(&o));
    assert_eq!(
        remove_test_containers(T).await,
        0,
        "no container outlives its berth run: {}",
        describe_output(&o)
    );

    // A launch that fails exits 125 with the agent's message.
    let tb = testbed();
    let missing = tb.registry_image(&tb.registry, "berth-test/absent:latest");
    let o = berth(&[
        "run",
        "--work-dir",
        work,
        "--label",
        &label,
        "--image",
        &missing,
        "--",
        "true",
    ])
    .await;
    assert_eq!(o.status.code(), Some(125), "{}", describe_output(&o));
    assert!(
        stderr(&o).contains("Failed to launch container"),
        "{}",
        describe_output(&o)
    );
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_commands_drive_an_agent() {
    const T: &str = "e2e-cli-client";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let label = test_label(T);
    let busybox = testbed().images.busybox.clone();

    let o = agent
        .cli(&[
            "run",
            "--image",
            &busybox,
            "--label",
            &label,
            "--name",
            "quick",
            "--",
            "sh",
            "-c",
            "echo quick",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", describe_output(&o));
    assert_eq!(stdout(&o), "quick\n");
    let o = agent.cli(&["ps"]).await;
    assert!(o.status.success(), "{}", describe_output(&o));
    assert!(
        stdout(&o).contains("quick") && stdout(&o).contains("TERMINATED"),
        "{}",
        describe_output(&o)
    );
    let o = agent.cli(&["wait", "quick"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("TASK_FINISHED"),
        "{}",
        describe_output(&o)
    );
    let o = agent.cli(&["logs", "quick"]).await;
    assert_eq!(stdout(&o), "quick\n");
    let o = agent.cli(&["rm", "quick"]).await;
    assert!(o.status.success(), "{}", describe_output(&o));
    let o = agent.cli(&["wait", "quick"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot be found"),
        "{}",
        describe_output(&o)
    );

    // --rm with an agent removes the container once it ended.
    let o = agent
        .cli(&[
            "run", "--image", &busybox, "--label", &label, "--name", "gone", "--rm", "--", "true",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", describe_output(&o));
    assert!(agent.container("gone").await.is_none());

    // A long runner: follow its logs, read its stats, stop it gracefully.
    let line = "trap 'echo stopping; exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
    let body = agent.launch_body("ticker", serde_json::json!({"value": line}), None);
    assert_eq!(
        agent
            .call(serde_json::json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
            .await
            .status,
        200
    );
    let follower = {
        let mut cmd = Command::new(berth_bin());
        cmd.args(["logs", "-f", "ticker"])
            .env("BERTH_AGENT", &agent.url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        cmd.spawn().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let o = agent.cli(&["stats", "ticker"]).await;
    assert!(o.status.success(), "{}", describe_output(&o));
    assert!(stdout(&o).contains("timestamp"), "{}", describe_output(&o));
    let o = agent.cli(&["stats", "--json", "ticker"]).await;
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stats JSON");
    assert!(
        stats["threads"].as_u64().is_some() || stats["mem_total_bytes"].as_u64().is_some(),
        "{stats}"
    );
    let o = agent
        .cli(&["kill", "ticker", "--signal", "TERM", "--grace", "10s"])
        .await;
    assert!(o.status.success(), "{}", describe_output(&o));
    let followed = tokio::time::timeout(Duration::from_secs(20), follower.wait_with_output())
        .await
        .expect("logs -f ends")
        .unwrap();
    let text = stdout(&followed);
    assert!(text.starts_with("tick 0\ntick 1\n"), "{text}");
    assert!(
        text.ends_with("stopping\n"),
        "logs -f prints everything up to the end: {text}"
    );
    let o = agent.cli(&["wait", "ticker"]).await;
    assert_eq!(o.status.code(), Some(7), "{}", describe_output(&o));
    assert!(
        stdout(&o).contains("TASK_KILLED"),
        "{}",
        describe_output(&o)
    );
    let o = agent.cli(&["stats", "ticker"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not running"),
        "{}",
        describe_output(&o)
    );
    let o = agent.cli(&["rm", "--force", "ticker"]).await;
    assert!(o.status.success(), "{}", describe_output(&o));

    let o = agent.cli(&["version"]).await;
    assert!(
        stdout(&o).contains(&format!("berth {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        describe_output(&o)
    );
    assert!(
        stdout(&o).contains("Docker 20.10"),
        "{}",
        describe_output(&o)
    );
    let o = berth(&["ps", "--agent", "http://127.0.0.1:9"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot connect"),
        "{}",
        describe_output(&o)
    );
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_bad_flags_and_failed_startup_checks_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let work = work.to_str().unwrap();

    let o = berth(&["serve", "--work-dir", work, "--docker-remove-delay", "6x"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", describe_output(&o));
    assert!(
        stderr(&o).contains("--docker-remove-delay") && stderr(&o).contains("unknown unit"),
        "{}",
        describe_output(&o)
    );

    let o = berth(&["serve", "--work-dir", work, "--listen", "0.0.0.0:0"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--auth-token-file"),
        "{}",
        describe_output(&o)
    );

    let o = berth(&[
        "serve",
        "--work-dir",
        work,
        "--listen",
        "127.0.0.1:0",
        "--docker-socket",
        "unix:///nonexistent/docker.sock",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/docker.sock") && stderr(&o).contains("fix:"),
        "{}",
        describe_output(&o)
    );

    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let bad_work = format!("{}/sub", file.display());
    let o = berth(&["serve", "--work-dir", &bad_work, "--listen", "127.0.0.1:0"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("work directory") && stderr(&o).contains("fix:"),
        "{}",
        describe_output(&o)
    );

    let config = dir.path().join("berth.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nno-such-setting = 1\n").unwrap();
    let o = berth(&["serve", "--config", config.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("berth.toml") && stderr(&o).contains("no-such-setting"),
        "{}",
        describe_output(&o)
    );

    // A taken port, and a work directory another agent holds — with a container running on it,
    // which the refused agent must neither adopt, reap as an orphan, nor stop.
    const T: &str = "e2e-cli-serve";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(
        agent.launch_shell("held", "sleep 600").await.status,
        200,
        "{}",
        agent.logs()
    );
    let port = agent.url.rsplit(':').next().unwrap();
    let o = berth(&[
        "serve",
        "--work-dir",
        work,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot listen") && stderr(&o).contains("fix:"),
        "{}",
        describe_output(&o)
    );
    let o = berth(&[
        "serve",
        "--work-dir",
        agent.work_dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("another berth agent"),
        "{}",
        describe_output(&o)
    );
    let held = docker_state(&agent.docker_name("held"))
        .await
        .expect("the held agent's container still exists");
    assert!(
        held.running,
        "the refused agent stopped a container of the agent holding the work directory"
    );
    assert_eq!(
        agent.container("held").await.expect("still listed")["berth"]["state"],
        "RUNNING"
    );
    remove_test_containers(T).await;
}

/// A daemon too old to use cannot be made on demand, so a Unix-socket server in the test plays
/// one: it answers `/_ping` with API version 1.24.
#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_docker_daemon_that_is_too_old() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("old-docker.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = "OK";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nApi-Version: 1.24\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    let work = dir.path().join("w");
    let o = berth(&[
        "serve",
        "--work-dir",
        work.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--docker-socket",
        &format!("unix://{}", socket.display()),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", describe_output(&o));
    let err = stderr(&o);
    assert!(
        err.contains("1.24") && err.contains("fix: upgrade Docker"),
        "{}",
        describe_output(&o)
    );
}

/// Without a Docker daemon (or an agent) to launch on, `berth run` could not launch: it exits
/// 125, as documented (and as `docker run` does), naming what it could not reach. Nothing here
/// needs the daemon: the sockets do not exist.
#[tokio::test(flavor = "multi_thread")]
async fn run_without_docker_or_agent_exits_125_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let work = work.to_str().unwrap();
    let missing = "unix:///nonexistent/docker.sock";

    // No --image: the default image's build needs the daemon of DOCKER_HOST.
    let o = Command::new(berth_bin())
        .args(["run", "--work-dir", work, "--", "true"])
        .env("DOCKER_HOST", missing)
        .env_remove("BERTH_AGENT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", describe_output(&o));
    assert!(
        stderr(&o).contains("/nonexistent/docker.sock") && stderr(&o).contains("fix:"),
        "{}",
        describe_output(&o)
    );

    // An image given: the embedded agent cannot start on the daemon of --docker-socket.
    let o = berth(&[
        "run",
        "--work-dir",
        work,
        "--docker-socket",
        missing,
        "--image",
        "any:latest",
        "--",
        "true",
    ])
    .await;
    assert_eq!(o.status.code(), Some(125), "{}", describe_output(&o));
    assert!(
        stderr(&o).contains("/nonexistent/docker.sock") && stderr(&o).contains("fix:"),
        "{}",
        describe_output(&o)
    );

    // An agent that does not answer: 125, and the way out only `run` has.
    let o = berth(&[
        "run",
        "--agent",
        "http://127.0.0.1:9",
        "--image",
        "any:latest",
        "--",
        "true",
    ])
    .await;
    assert_eq!(o.status.code(), Some(125), "{}", describe_output(&o));
    assert!(
        stderr(&o).contains("cannot connect") && stderr(&o).contains("omit --agent"),
        "{}",
        describe_output(&o)
    );
    // `ps` has no embedded agent to offer.
    let o = berth(&["ps", "--agent", "http://127.0.0.1:9"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot connect") && !stderr(&o).contains("omit --agent"),
        "{}",
        describe_output(&o)
    );
}

/// `berth run --agent URL ...` started as a child process, its container running.
async fn spawn_run(
    agent: &Agent,
    id: &str,
    label: &str,
    extra: &[&str],
    line: &str,
) -> tokio::process::Child {
    let busybox = testbed().images.busybox.clone();
    let mut args = vec![
        "run", "--agent", &agent.url, "--image", &busybox, "--label", label, "--name", id,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", line]);
    Command::new(berth_bin())
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("berth run starts")
}

fn signal(child: &tokio::process::Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id().expect("running") as i32).unwrap();
    rustix::process::kill_process(pid, sig).expect("signal berth run");
}

/// SIGTERM and SIGHUP to `berth run --agent` stop its container as Ctrl-C does — checked with
/// the Docker daemon, not with Berth: the container got the stop signal and is no longer running,
/// and `berth run` itself ended normally with the container's exit code.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sighup_to_run_stop_its_container() {
    const T: &str = "e2e-cli-signals";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let label = test_label(T);
    for (id, sig) in [
        ("by-term", rustix::process::Signal::TERM),
        ("by-hup", rustix::process::Signal::HUP),
    ] {
        // The container ends with 3 when the agent's stop (SIGTERM) reaches it.
        let child = spawn_run(
            &agent,
            id,
            &label,
            &[],
            "trap 'exit 3' TERM; echo up; while true; do sleep 0.1; done",
        )
        .await;
        let name = agent.docker_name(id);
        eventually(Duration::from_secs(60), "the container runs", || async {
            docker_state(&name).await.filter(|s| s.running).map(|_| ())
        })
        .await;
        signal(&child, sig);
        let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{id}: berth run did not end after {sig:?}"))
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(3),
            "{id}: berth run ends with the container's code, not by the signal: {}",
            describe_output(&o)
        );
        assert!(
            stderr(&o).contains("stopping container"),
            "{}",
            describe_output(&o)
        );
        let state = docker_state(&name)
            .await
            .expect("kept for the remove delay");
        assert!(
            !state.running && state.exit_code == 3,
            "{id}: Docker says running={} exit={}",
            state.running,
            state.exit_code
        );
    }
    remove_test_containers(T).await;
}

/// A stop signal while the launch is still fetching destroys the launch: `berth run` exits
/// normally (125: it could not launch), the agent reports the kill as Mesos does (TASK_KILLED,
/// REASON_TASK_KILLED_DURING_LAUNCH), and no container appears even when the stalled download
/// completes afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_launch_destroys_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const T: &str = "e2e-cli-signal-launch";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--fetcher-allowed-network", "127.0.0.1/32"]).await;
    let label = test_label(T);
    // A file server that sends half of the file, then waits to be released.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/app.txt", listener.local_addr().unwrap());
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let server = {
        let release = release.clone();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhalf")
                .await;
            release.notified().await;
            let _ = s.write_all(b"done").await;
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
    };
    let child = spawn_run(&agent, "mid-fetch", &label, &["--uri", &url], "sleep 600").await;
    eventually(Duration::from_secs(30), "the launch fetching", || async {
        agent
            .container("mid-fetch")
            .await
            .filter(|c| c["berth"]["state"] == "FETCHING")
    })
    .await;
    signal(&child, rustix::process::Signal::TERM);
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("berth run ends")
        .unwrap();
    release.notify_one();
    assert_eq!(o.status.code(), Some(125), "{}", describe_output(&o));
    assert!(
        stderr(&o).contains("Container destroyed while fetching"),
        "{}",
        describe_output(&o)
    );
    let w = agent.wait("mid-fetch").await;
    assert_eq!(w["state"], "TASK_KILLED", "{w}");
    assert_eq!(w["reason"], "REASON_TASK_KILLED_DURING_LAUNCH", "{w}");
    // The download could finish now; the destroyed launch must not go on to make a container.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        docker_state(&agent.docker_name("mid-fetch"))
            .await
            .is_none(),
        "a container was made for a launch stopped by SIGTERM"
    );
    server.abort();
    remove_test_containers(T).await;
}

/// `--config` takes the global settings too (`log-level`, `log-format`, `worker-threads`), as
/// docs/operations.md says, instead of refusing them as unknown keys.
#[tokio::test(flavor = "multi_thread")]
async fn serve_takes_the_global_settings_from_its_config_file() {
    const T: &str = "e2e-cli-config";
    remove_test_containers(T).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "log-level = \"debug\"\nlog-format = \"json\"\nworker-threads = 2\nmax-parallel-pulls = 3\n",
    )
    .unwrap();
    let agent = Agent::start(T, &["--config", config.to_str().unwrap()]).await;
    let r = agent.call(serde_json::json!({"type": "GET_FLAGS"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body
            .contains(r#""name":"max_parallel_pulls","value":"3""#),
        "the file's serve settings apply too: {}",
        r.body
    );
    let logs = agent.logs();
    let first = logs.lines().next().expect("a log line");
    let line: serde_json::Value = serde_json::from_str(first)
        .unwrap_or_else(|e| panic!("log-format = \"json\" from the file: {e}: {first}"));
    assert!(
        line["fields"].is_object() || line["message"].is_string() || line["level"].is_string(),
        "{line}"
    );
    remove_test_containers(T).await;
}
