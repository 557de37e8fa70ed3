//! The containerizer against the real Docker daemon, registries, fetcher and logger: Mesos's
//! Docker containerizer test list, plus OOM, two agents on one daemon, and many launches.
//!
//! Needs the test bed (`cargo xtask testbed up`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use berth_containerizer::{
    labels, termination::messages, AgentId, CommandInfo, ContainerId, Error, Launched, Limit,
    Limits, OrphanAction, Phase, Reason, Resources, TaskState, Uri,
};
use berth_docker_api as api;
use common::{eventually, Agent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn uuid() -> String {
    ContainerId::random().to_string()
}

async fn inspect(agent: &Agent, id: &ContainerId) -> api::ContainerInspect {
    let docker_id = agent
        .cz
        .status(id)
        .unwrap()
        .docker_id
        .expect("a Docker container exists");
    agent.docker.containers().inspect(&docker_id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_maps_labels_and_host_config_and_ends_terminated() {
    const TEST: &str = "core_launch";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "launch-agent", root.path(), |_| {}).await;
    let id = ContainerId::new("launch-1").unwrap();
    let mut spec = a.spec("launch-1", "echo hello; sleep 1; exit 3");
    spec.resources.cpus = Some(0.5);
    spec.resources.mem_mb = Some(64.0);
    spec.command = spec.command.env("GREETING", "hi");
    assert_eq!(a.cz.launch(&id, spec).await.unwrap(), Launched::Launched);
    let status = a.cz.status(&id).unwrap();
    assert_eq!(status.phase, Phase::Running);
    assert!(status.pid.unwrap() > 1);
    let i = inspect(&a, &id).await;
    assert_eq!(i.short_name(), a.name("launch-1"));
    let labels = i.config.labels.clone().unwrap();
    assert_eq!(labels[labels::AGENT_ID], a.agent_id);
    assert_eq!(labels[labels::CONTAINER_ID], "launch-1");
    assert_eq!(labels[labels::VERSION], labels::BERTH_VERSION);
    assert_eq!(labels[berth_testbed::TEST_LABEL], a.test);
    let env = i.config.env.clone().unwrap();
    for want in [
        "GREETING=hi".to_owned(),
        "MESOS_SANDBOX=/mnt/mesos/sandbox".to_owned(),
        format!("MESOS_CONTAINER_NAME={}", a.name("launch-1")),
    ] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert_eq!(i.host_config.auto_remove, Some(false));
    assert_eq!(i.host_config.cpu_shares, Some(512));
    assert_eq!(i.host_config.memory, Some(64 << 20));
    assert_eq!(i.host_config.network_mode.as_deref(), Some("host"));
    let log = i.host_config.log_config.clone().unwrap();
    assert_eq!(log.kind.as_deref(), Some("local"), "the byte-exact driver");
    assert!(
        log.config.unwrap().contains_key("max-size"),
        "Docker's copy is capped"
    );
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.exited_with(), Some(3));
    assert_eq!(t.message, messages::TERMINATED);
    assert_eq!(
        std::fs::read_to_string(a.sandbox("launch-1").join("stdout")).unwrap(),
        "hello\n"
    );
    // Never auto-removed: still there to inspect after the exit.
    let i = inspect(&a, &id).await;
    assert_eq!(i.state.exit_code, 3);
    a.cz.remove(&id).await.unwrap();
    assert!(a.labelled().await.is_empty());
    assert_eq!(a.cz.illegal_transitions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_destroy_report_killed_even_with_exit_zero() {
    const TEST: &str = "core_kill";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "kill-agent", root.path(), |_| {}).await;
    // Exits 0 on SIGTERM: still KILLED, not FINISHED (NoTransitionFromKillingToFinished).
    let id = ContainerId::new("graceful").unwrap();
    let spec = a.spec(
        "graceful",
        "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    );
    a.cz.launch(&id, spec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = a.cz.destroy(&id).await.unwrap();
    assert_eq!(t.state, TaskState::Killed);
    assert_eq!(t.message, messages::KILLED);
    assert_eq!(t.exited_with(), Some(0), "the executor exited gracefully");
    assert_eq!(
        std::fs::read_to_string(a.sandbox("graceful").join("stdout")).unwrap(),
        "bye\n"
    );
    let i = inspect(&a, &id).await;
    assert!(!i.state.running);

    // kill(signal) delivers the signal.
    let id = ContainerId::new("signalled").unwrap();
    a.cz.launch(&id, a.spec("signalled", "sleep 1000"))
        .await
        .unwrap();
    assert!(a.cz.kill(&id, 9).await);
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.state, TaskState::Killed);
    assert_eq!(t.exited_with(), Some(137));
    assert!(!a.cz.kill(&id, 9).await, "already terminated");
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_with_requests_and_limits_and_live_update() {
    const TEST: &str = "core_usage";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "usage-agent", root.path(), |_| {}).await;
    let id = ContainerId::new("busy").unwrap();
    let mut spec = a.spec(
        "busy",
        "x=$(head -c 4000000 /dev/zero | tr '\\0' a); while :; do :; done",
    );
    spec.resources.cpus = Some(1.0);
    spec.resources.mem_mb = Some(1024.0);
    spec.limits = Limits {
        cpus: Some(Limit::Finite(2.0)),
        mem_mb: Some(Limit::Finite(2048.0)),
    };
    a.cz.launch(&id, spec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let u = a.cz.usage(&id).await.unwrap();
    // Read from the cgroup files at once, not Docker's stats (which wait for its collector);
    // the numbers agree with Docker's: its CPU times fall between two of ours.
    assert_eq!(
        a.cz.usage_samples(),
        (1, 0),
        "sampled from the cgroup files"
    );
    let docker_id = a.cz.status(&id).unwrap().docker_id.unwrap();
    let d = a
        .docker
        .containers()
        .stats_snapshot(&docker_id)
        .await
        .unwrap();
    let u2 = a.cz.usage(&id).await.unwrap();
    let cpu = |s: &berth_containerizer::ResourceStatistics| {
        s.cpus_user_time_secs.unwrap() + s.cpus_system_time_secs.unwrap()
    };
    let docker_cpu = (d.cpu_stats.cpu_usage.usage_in_usermode
        + d.cpu_stats.cpu_usage.usage_in_kernelmode) as f64
        / 1e9;
    assert!(
        cpu(&u) <= docker_cpu + 0.02 && docker_cpu <= cpu(&u2) + 0.02,
        "ours {} then {}, Docker's {docker_cpu}",
        cpu(&u),
        cpu(&u2)
    );
    assert_eq!(u2.mem_limit_bytes, u.mem_limit_bytes);
    assert_eq!(a.cz.usage_samples(), (2, 0));
    assert_eq!(u.cpus_soft_limit, Some(1.0));
    assert_eq!(u.cpus_limit, Some(2.0));
    assert_eq!(u.mem_soft_limit_bytes, Some(1 << 30));
    assert_eq!(u.mem_limit_bytes, Some(2 << 30));
    assert!(
        u.cpus_user_time_secs.unwrap() + u.cpus_system_time_secs.unwrap() > 0.1,
        "{u:?}"
    );
    assert!(u.mem_rss_bytes.unwrap() > 1 << 20, "{u:?}");
    assert!(
        u.processes.unwrap() >= 1 && u.threads.unwrap() >= 1,
        "{u:?}"
    );
    assert!(
        u.cpus_nr_periods.unwrap() > 0,
        "CFS is on with a CPU limit: {u:?}"
    );
    let i = inspect(&a, &id).await;
    assert_eq!(
        (i.host_config.cpu_quota, i.host_config.cpu_period),
        (Some(200_000), Some(100_000))
    );
    assert_eq!(i.host_config.memory_reservation, Some(1 << 30));

    // Raise then lower the memory limit live (Mesos could only raise it).
    let res = |mem| Resources {
        cpus: Some(0.5),
        mem_mb: Some(mem),
        ports: vec![],
    };
    a.cz.update(&id, res(3072.0), Limits::default())
        .await
        .unwrap();
    assert_eq!(inspect(&a, &id).await.host_config.memory, Some(3 << 30));
    a.cz.update(&id, res(256.0), Limits::default())
        .await
        .unwrap();
    let i = inspect(&a, &id).await;
    assert_eq!(i.host_config.memory, Some(256 << 20));
    assert_eq!(i.host_config.cpu_shares, Some(512));
    assert_eq!(
        a.cz.usage(&id).await.unwrap().mem_limit_bytes,
        Some(256 << 20)
    );

    a.cz.destroy(&id).await.unwrap();
    let e = a.cz.usage(&id).await.unwrap_err();
    assert_eq!(e.to_string(), "Container is being removed: busy");
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfs_quota_reaches_the_cgroup() {
    const TEST: &str = "core_cfs";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "cfs-agent", root.path(), |c| c.cfs = true).await;
    let id = ContainerId::new("cfs").unwrap();
    let mut spec = a.spec("cfs", "sleep 1000");
    spec.resources.cpus = Some(0.5);
    a.cz.launch(&id, spec).await.unwrap();
    let pid = a.cz.status(&id).unwrap().pid.unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "cpu")
                .then(|| path.to_owned())
        })
        .expect("the container has a cpu cgroup (cgroup v1)");
    let dir = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .map(|root| format!("{root}{path}"))
        .find(|d| std::path::Path::new(d).exists())
        .expect("the cpu cgroup directory exists");
    let read = |f: &str| {
        std::fs::read_to_string(format!("{dir}/{f}"))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read("cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu.cfs_period_us"), "100000");
    assert_eq!(read("cpu.shares"), "512");
    a.cz.destroy(&id).await.unwrap();
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_is_reported_as_a_memory_limitation() {
    const TEST: &str = "core_oom";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "oom-agent", root.path(), |_| {}).await;
    let id = ContainerId::new("hog").unwrap();
    let mut spec = a.spec(
        "hog",
        "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived",
    );
    spec.resources.mem_mb = Some(32.0);
    a.cz.launch(&id, spec).await.unwrap();
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.reason, Some(Reason::ContainerLimitationMemory), "{t:?}");
    assert_eq!(t.state, TaskState::Failed);
    assert!(t
        .limitation
        .as_ref()
        .unwrap()
        .message
        .contains(&(32u64 << 20).to_string()));
    // Exit code 137 without OOMKilled is not an OOM.
    let id = ContainerId::new("killed").unwrap();
    a.cz.launch(&id, a.spec("killed", "exit 137"))
        .await
        .unwrap();
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.exit_code, Some(137));
    assert_eq!(t.reason, None);
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_separated_and_sandbox_with_colon_works() {
    const TEST: &str = "core_logs";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "logs-agent", root.path(), |_| {}).await;
    let (out, err) = (uuid(), uuid());
    let id = ContainerId::new("logs").unwrap();
    let mut spec = a.spec(
        "logs",
        &format!("echo out{out}; echo err{err} 1>&2; cat $MESOS_SANDBOX/marker"),
    );
    // LaunchSandboxWithColon: a sandbox path with ':' needs no symlink trick.
    spec.sandbox = a.sandbox("test:colon");
    std::fs::create_dir_all(&spec.sandbox).unwrap();
    std::fs::write(spec.sandbox.join("marker"), "seen-through-the-mount\n").unwrap();
    a.cz.launch(&id, spec).await.unwrap();
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.state, TaskState::Finished, "{t:?}");
    let sandbox = a.sandbox("test:colon");
    assert_eq!(
        std::fs::read_to_string(sandbox.join("stdout")).unwrap(),
        format!("out{out}\nseen-through-the-mount\n")
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.join("stderr")).unwrap(),
        format!("err{err}\n")
    );
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_cmd_override_and_args() {
    const TEST: &str = "core_default_cmd";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "cmd-agent", root.path(), |_| {}).await;
    let tb = berth_testbed::testbed();
    let u = uuid();
    for (name, command, want) in [
        ("default", CommandInfo::exec(None, &[]), "inky\n".to_owned()),
        (
            "override",
            CommandInfo::exec(Some(&u), &[]),
            format!("{u}\n"),
        ),
        ("args", CommandInfo::exec(None, &[&u]), format!("{u}\n")),
    ] {
        let id = ContainerId::new(name).unwrap();
        let spec = berth_containerizer::LaunchSpec::docker(
            tb.images.echo.clone(),
            command,
            a.sandbox(name),
        );
        a.cz.launch(&id, spec).await.unwrap();
        let t = a.cz.wait(&id).await.unwrap();
        assert_eq!(t.state, TaskState::Finished, "{name}: {t:?}");
        assert_eq!(
            std::fs::read_to_string(a.sandbox(name).join("stdout")).unwrap(),
            want,
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(a.sandbox(name).join("stderr")).unwrap(),
            "",
            "{name}"
        );
    }
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_and_destroy_of_unknown_containers_give_none() {
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new("core_unknown", "unknown-agent", root.path(), |_| {}).await;
    let id = ContainerId::random();
    assert!(a.cz.wait(&id).await.is_none());
    assert!(a.cz.destroy(&id).await.is_none());
    assert!(matches!(
        a.cz.usage(&id).await,
        Err(Error::UnknownContainer { .. })
    ));
}

/// A tiny HTTP server: `stall` sends headers and part of the body, then nothing; otherwise 404.
async fn http_server(stall: bool) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if stall {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\npartial")
                        .await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                } else {
                    let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                }
            });
        }
    });
    addr
}

/// What a fetch left in `sandbox`: its staging entries (`.berth-fetch-*`, where partial downloads
/// live) and anything named after the URI.
fn partials(sandbox: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(sandbox)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".berth-fetch-") || n.contains("big.bin"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_while_fetching_and_fetch_failure() {
    const TEST: &str = "core_fetch";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "fetch-agent", root.path(), |_| {}).await;
    let stalling = http_server(true).await;
    let id = ContainerId::new("fetching").unwrap();
    let spec = a.spec("fetching", "true");
    let mut spec = spec;
    spec.command.uris.push(Uri {
        extract: false,
        ..Uri::new(format!("http://{stalling}/big.bin"))
    });
    let launch = tokio::spawn({
        let (cz, id) = (a.cz.clone(), id.clone());
        async move { cz.launch(&id, spec).await }
    });
    eventually(Duration::from_secs(10), "FETCHING", || {
        a.cz.status(&id)
            .map(|s| s.phase == Phase::Fetching)
            .unwrap_or(false)
    })
    .await;
    // The fetcher stages a download in `.berth-fetch-*` inside the sandbox and renames it into
    // place only when complete: the partial to look for after the destroy is there now.
    eventually(Duration::from_secs(10), "a partial download", || {
        !partials(&a.sandbox("fetching")).is_empty()
    })
    .await;
    let t = a.cz.destroy(&id).await.unwrap();
    assert_eq!(t.message, "Container destroyed while fetching");
    // As Mesos reports a task killed during its launch.
    assert_eq!(t.state, TaskState::Killed);
    assert_eq!(t.reason, Some(Reason::TaskKilledDuringLaunch));
    assert!(matches!(
        launch.await.unwrap(),
        Err(Error::DestroyedDuringLaunch { .. })
    ));
    assert!(
        a.labelled().await.is_empty(),
        "no Docker container was made"
    );
    let left = partials(&a.sandbox("fetching"));
    assert!(left.is_empty(), "partial download left: {left:?}");

    let missing = http_server(false).await;
    let id = ContainerId::new("fetch-404").unwrap();
    let mut spec = a.spec("fetch-404", "true");
    spec.command
        .uris
        .push(Uri::new(format!("http://{missing}/nope.tar.gz")));
    let err = a.cz.launch(&id, spec).await.unwrap_err().to_string();
    assert!(err.starts_with("Failed to launch container: "), "{err}");
    assert!(err.contains("nope.tar.gz") && err.contains("404"), "{err}");
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.message, err);
    assert_eq!(t.reason, Some(Reason::ContainerLaunchFailed));
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_failure_names_image_and_registry() {
    const TEST: &str = "core_pull_fail";
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "pullfail-agent", root.path(), |_| {}).await;
    let tb = berth_testbed::testbed();
    let image = tb.registry_image(&tb.registry, "berth-test/does-not-exist:latest");
    let id = ContainerId::new("nope").unwrap();
    let mut spec = a.spec("nope", "true");
    spec.container
        .as_mut()
        .unwrap()
        .docker
        .as_mut()
        .unwrap()
        .image = image.clone();
    let started = std::time::Instant::now();
    let err = a.cz.launch(&id, spec).await.unwrap_err().to_string();
    assert!(err.starts_with("Failed to launch container: "), "{err}");
    assert!(
        err.contains("berth-test/does-not-exist") && err.contains(&tb.registry),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a missing image fails fast, not after retries"
    );
    assert_eq!(a.cz.wait(&id).await.unwrap().message, err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_the_authenticated_registry_with_a_docker_config() {
    const TEST: &str = "core_pull_auth";
    common::cleanup(TEST).await;
    let tb = berth_testbed::testbed();
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config.json");
    let auth = base64_encode(&format!("{}:{}", tb.auth_username, tb.auth_password));
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            tb.auth_registry
        ),
    )
    .unwrap();
    let docker = common::docker().await;
    let engine = berth_containerizer::DockerEngine::new(docker.clone())
        .with_registry_config(&config)
        .unwrap();
    let image = tb.registry_image(&tb.auth_registry, &tb.images.busybox);
    let _ = docker
        .images()
        .remove(
            &image,
            api::RemoveImageOptions {
                force: true,
                ..Default::default()
            },
        )
        .await;
    use berth_containerizer::Engine;
    let mut stream = engine.pull(&image);
    use futures_util::StreamExt;
    let mut items = 0;
    while let Some(item) = stream.next().await {
        item.unwrap();
        items += 1;
    }
    assert!(items > 0);
    assert!(engine.image_present(&image).await.unwrap());
    // Without credentials the same pull is refused.
    let _ = docker
        .images()
        .remove(
            &image,
            api::RemoveImageOptions {
                force: true,
                ..Default::default()
            },
        )
        .await;
    let anonymous = berth_containerizer::DockerEngine::new(docker.clone());
    let mut stream = anonymous.pull(&image);
    let mut failed = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            failed = Some(e);
        }
    }
    let e = failed.expect("an anonymous pull from the authenticated registry fails");
    assert!(e.message.contains(&tb.auth_registry), "{e}");
}

fn base64_encode(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_while_pulling_aborts_the_pull() {
    const TEST: &str = "core_pulling";
    let _lock = berth_testbed::exclusive("large-image");
    common::cleanup(TEST).await;
    let tb = berth_testbed::testbed();
    let docker = common::docker().await;
    let upstream: std::net::SocketAddr = tb.registry.parse().unwrap();
    let proxy = berth_testbed::ThrottledProxy::start(upstream, 2 << 20);
    let image = format!("{}/{}", proxy.addr(), tb.images.large);
    // Only an absent image is pulled, and only absent layers move bytes.
    berth_testbed::remove_pulled_copies(&tb.images.large).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "pulling-agent", root.path(), |_| {}).await;
    let id = ContainerId::new("pulling").unwrap();
    let mut spec = a.spec("pulling", "true");
    spec.container
        .as_mut()
        .unwrap()
        .docker
        .as_mut()
        .unwrap()
        .image = image.clone();
    let launch = tokio::spawn({
        let (cz, id) = (a.cz.clone(), id.clone());
        async move { cz.launch(&id, spec).await }
    });
    eventually(Duration::from_secs(60), "pull progress", || {
        a.cz.status(&id)
            .ok()
            .and_then(|s| s.pull)
            .is_some_and(|p| p.downloaded > 0)
    })
    .await;
    let progress = a.cz.status(&id).unwrap().pull.unwrap();
    assert!(
        progress.download_total > 100 << 20 && progress.download_total > progress.downloaded,
        "caught mid-pull of the large image: {progress}"
    );
    let t = a.cz.destroy(&id).await.unwrap();
    assert_eq!(t.message, "Container destroyed while pulling image");
    // As Mesos reports a task killed during its launch.
    assert_eq!(t.state, TaskState::Killed);
    assert_eq!(t.reason, Some(Reason::TaskKilledDuringLaunch));
    assert!(launch.await.unwrap().is_err());
    // The daemon-side pull was aborted: nothing more comes through the proxy.
    let moved = proxy.assert_download_stopped(progress.download_total).await;
    // Nor did the image appear (it could not have: fewer bytes than the image moved).
    let found = docker.images().inspect(&image).await;
    assert!(
        matches!(&found, Err(e) if e.is_not_found()),
        "the aborted image exists ({moved} bytes moved): {found:?}"
    );
    assert!(a.labelled().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_reattaches_reports_exits_and_kills_orphans_only() {
    const TEST: &str = "core_recover";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let (run, gone) = (
        ContainerId::new("run").unwrap(),
        ContainerId::new("gone").unwrap(),
    );
    {
        // The first agent runs on its own runtime, which is dropped mid-flight: its SIGKILL.
        let root = root.path().to_owned();
        let (run, gone) = (run.clone(), gone.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let a = Agent::new(TEST, "recover-agent", &root, |_| {}).await;
                a.cz.launch(
                    &run,
                    a.spec("run", "echo before; sleep 10; echo after; exit 7"),
                )
                .await
                .unwrap();
                a.cz.launch(&gone, a.spec("gone", "sleep 1; exit 5"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            });
            drop(rt);
        })
        .join()
        .unwrap();
    }
    let docker = common::docker().await;
    let run_label = common::run_label(TEST);
    let label = |agent: &str, cid: &str| {
        let mut l = labels::own_labels(
            &AgentId::new(common::agent_id(agent)).unwrap(),
            &ContainerId::new(cid).unwrap(),
        );
        l.insert(berth_testbed::TEST_LABEL.to_owned(), run_label.clone());
        l
    };
    let mut malformed = label("recover-agent", "x");
    malformed.insert(labels::CONTAINER_ID.to_owned(), "not a valid id".to_owned());
    let mut unlabelled = BTreeMap::new();
    unlabelled.insert(berth_testbed::TEST_LABEL.to_owned(), run_label.clone());
    let by_name = |what: &str| format!("berth-{}-{what}", common::agent_id("recover-agent"));
    let orphan_name = by_name("orphan");
    let mut by_hand = Vec::new();
    for (name, labels) in [
        (orphan_name.clone(), label("recover-agent", "orphan")),
        (by_name("foreign"), label("other-agent", "foreign")),
        (by_name("malformed"), malformed),
        (by_name("plain"), unlabelled),
    ] {
        let config = api::ContainerConfig {
            image: Some(berth_testbed::testbed().images.busybox.clone()),
            cmd: Some(vec!["sleep".into(), "1000".into()]),
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        let c = docker
            .containers()
            .create(Some(&name), &config)
            .await
            .unwrap();
        docker.containers().start(&c.id).await.unwrap();
        by_hand.push((name, c.id));
    }

    // "gone" exits a second after its start, while no agent runs: wait for Docker to say so
    // (the containers made by hand above may take less than that on a fast daemon).
    let gone_name = by_name("gone");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let running = docker
            .containers()
            .inspect(&gone_name)
            .await
            .map(|i| i.state.running)
            .unwrap_or(false);
        if !running {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{gone_name} still runs 20 s later"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let b = Agent::new(TEST, "recover-agent", root.path(), |_| {}).await;
    let report = b.cz.recover().await.unwrap();
    assert_eq!(
        report.reattached.as_slice(),
        std::slice::from_ref(&run),
        "{report:?}"
    );
    assert_eq!(
        report.exited_while_down.as_slice(),
        std::slice::from_ref(&gone),
        "{report:?}"
    );
    assert_eq!(report.malformed.len(), 1, "{report:?}");
    assert_eq!(report.orphans.len(), 1, "{report:?}");
    assert_eq!(report.orphans[0].container_id.as_str(), "orphan");
    assert_eq!(report.orphans[0].action, OrphanAction::Removed);
    for (name, docker_id) in &by_hand {
        let exists = docker.containers().inspect(docker_id).await;
        if *name == orphan_name {
            assert!(matches!(&exists, Err(e) if e.is_not_found()), "orphan left")
        } else {
            assert!(exists.unwrap().state.running, "{name} was touched");
        }
    }
    let t = b.cz.wait(&gone).await.unwrap();
    assert_eq!(
        t.exited_with(),
        Some(5),
        "real exit status of a container that exited while down"
    );
    let t = b.cz.wait(&run).await.unwrap();
    assert_eq!(t.exited_with(), Some(7));
    // The logger resumed: both lines are in the sandbox, once each.
    assert_eq!(
        std::fs::read_to_string(b.sandbox("run").join("stdout")).unwrap(),
        "before\nafter\n"
    );
    common::cleanup(TEST).await;
}

/// An orphan found at the start but younger than the grace is left alone, then removed when
/// its grace ends, with no periodic reconciliation to do it (the start's own timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_younger_than_the_grace_is_removed_when_it_ends() {
    const TEST: &str = "core_orphan_grace";
    const GRACE: Duration = Duration::from_secs(4);
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let docker = common::docker().await;
    let agent = "grace-agent";
    let mut labels = labels::own_labels(
        &AgentId::new(common::agent_id(agent)).unwrap(),
        &ContainerId::new("young").unwrap(),
    );
    labels.insert(
        berth_testbed::TEST_LABEL.to_owned(),
        common::run_label(TEST),
    );
    let config = api::ContainerConfig {
        image: Some(berth_testbed::testbed().images.busybox.clone()),
        cmd: Some(vec!["sleep".into(), "1000".into()]),
        labels: Some(labels.into_iter().collect()),
        ..Default::default()
    };
    let name = format!("berth-{}-young", common::agent_id(agent));
    let made = docker
        .containers()
        .create(Some(&name), &config)
        .await
        .unwrap();
    docker.containers().start(&made.id).await.unwrap();
    let planted = std::time::Instant::now();

    let a = Agent::new(TEST, agent, root.path(), |c| {
        c.orphans.grace = GRACE;
        c.orphans.reconcile_interval = Duration::ZERO;
    })
    .await;
    let report = a.cz.recover().await.unwrap();
    assert_eq!(report.orphans.len(), 1, "{report:?}");
    assert_eq!(report.orphans[0].docker_id, made.id);
    let OrphanAction::Deferred(left) = &report.orphans[0].action else {
        panic!("an orphan in its grace is deferred: {report:?}");
    };
    assert!(*left <= GRACE && *left > GRACE / 2, "{left:?}");
    // Well inside the grace: untouched, still running.
    tokio::time::sleep(GRACE / 2).await;
    let state = docker.containers().inspect(&made.id).await.unwrap().state;
    assert!(state.running, "stopped within its grace: {state:?}");
    loop {
        match docker.containers().inspect(&made.id).await {
            Err(e) if e.is_not_found() => break,
            Ok(_) => {}
            Err(e) => panic!("inspect: {e}"),
        }
        assert!(
            planted.elapsed() < GRACE + Duration::from_secs(15),
            "the orphan outlived its grace by more than 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = planted.elapsed();
    // Docker lists creation times in whole seconds: the age may be read up to 1 s high.
    assert!(
        took >= GRACE - Duration::from_millis(1100),
        "removed after {took:?}, before its grace of {GRACE:?}"
    );
    assert!(
        a.cz.status(&ContainerId::new("young").unwrap()).is_err(),
        "an orphan is never adopted"
    );
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_on_one_daemon_leave_each_other_alone() {
    const TEST: &str = "core_two_agents";
    common::cleanup(TEST).await;
    let (ra, rb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Agent::new(TEST, "agent-a", ra.path(), |_| {}).await;
    let b = Agent::new(TEST, "agent-b", rb.path(), |_| {}).await;
    let id = ContainerId::new("same-id").unwrap();
    a.cz.launch(&id, a.spec("same-id", "sleep 1000"))
        .await
        .unwrap();
    b.cz.launch(&id, b.spec("same-id", "sleep 1000"))
        .await
        .unwrap();
    // Each agent restarts; neither sees the other's container as an orphan. (An agent's
    // checkpoint journals admit one writer: the old agent is gone before the new one starts.)
    for old in [a, b] {
        old.cz.shutdown().await;
        drop(old);
    }
    let a2 = Agent::new(TEST, "agent-a", ra.path(), |_| {}).await;
    let b2 = Agent::new(TEST, "agent-b", rb.path(), |_| {}).await;
    let (ra2, rb2) = (
        a2.cz.recover().await.unwrap(),
        b2.cz.recover().await.unwrap(),
    );
    assert!(
        ra2.orphans.is_empty() && rb2.orphans.is_empty(),
        "{ra2:?} {rb2:?}"
    );
    assert_eq!(ra2.reattached.as_slice(), std::slice::from_ref(&id));
    assert_eq!(rb2.reattached.as_slice(), std::slice::from_ref(&id));
    assert!(a2.cz.status(&id).unwrap().docker_id != b2.cz.status(&id).unwrap().docker_id);
    a2.cz.destroy(&id).await.unwrap();
    assert_eq!(
        b2.cz.status(&id).unwrap().phase,
        Phase::Running,
        "b's container untouched"
    );
    b2.cz.destroy(&id).await.unwrap();
    common::cleanup(TEST).await;
}

/// The remove delay removes the Docker container only (Mesos's `--docker_remove_delay`): the
/// termination and the checkpoint stay until `remove`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_delay_zero_removes_the_docker_container_and_keeps_the_termination() {
    const TEST: &str = "core_remove_delay";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "rm-agent", root.path(), |c| {
        c.remove_delay = Duration::ZERO
    })
    .await;
    let id = ContainerId::new("short").unwrap();
    a.cz.launch(&id, a.spec("short", "exit 0")).await.unwrap();
    let t = a.cz.wait(&id).await.unwrap();
    let start = std::time::Instant::now();
    while !a.labelled().await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the Docker container was not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.cz.wait(&id).await.unwrap(), t, "the termination stays");
    let work = root.path().join("work");
    let left = berth_containerizer::checkpoint::Store::read_one(&work, &id);
    assert!(left.unwrap().is_some(), "the checkpoint stays");
    a.cz.remove(&id).await.unwrap();
    assert!(a.cz.wait(&id).await.is_none());
    let left = berth_containerizer::checkpoint::Store::read_one(&work, &id);
    assert!(left.unwrap().is_none(), "checkpoint left after removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_launches_with_random_kills_leave_nothing_behind() {
    const TEST: &str = "core_many";
    const N: usize = 100;
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "many-agent", root.path(), |_| {}).await;
    let mut tasks = Vec::new();
    for i in 0..N {
        let (cz, id, spec) = (
            a.cz.clone(),
            ContainerId::new(format!("m{i}")).unwrap(),
            a.spec(&format!("m{i}"), "sleep 1000"),
        );
        tasks.push(tokio::spawn(async move {
            let launch = tokio::spawn({
                let (cz, id) = (cz.clone(), id.clone());
                async move { cz.launch(&id, spec).await }
            });
            // Random kills: some right away (mid-launch), some after a while, some never.
            let delay = rand_delay(i);
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
                cz.destroy(&id).await;
            }
            let _ = launch.await.unwrap();
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    for id in &ids {
        let t = a.cz.destroy(id).await.expect("every launch is known");
        assert!(
            matches!(t.state, TaskState::Killed | TaskState::Failed),
            "{id}: {t:?}"
        );
    }
    assert_eq!(a.cz.terminations_decided(), N);
    assert_eq!(a.cz.illegal_transitions(), 0);
    for id in &ids {
        a.cz.remove(id).await.unwrap();
    }
    assert!(a.labelled().await.is_empty(), "containers left behind");
    assert!(a.cz.containers().is_empty());
}

/// A deterministic spread of kill delays: a third never, the rest between 0 and ~2 s.
fn rand_delay(i: usize) -> Option<Duration> {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    (!i.is_multiple_of(3)).then(|| Duration::from_millis(h % 2000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_mapping_on_the_bridge_reaches_the_container() {
    const TEST: &str = "core_ports";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "ports-agent", root.path(), |_| {}).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let id = ContainerId::new("nc").unwrap();
    let message = format!("hello-{}", uuid());
    // Listens until the message arrives: a connection the proxy accepts before nc listens is
    // lost, so the test keeps sending until the container has it.
    let mut spec = a.spec(
        "nc",
        &format!("until nc -l -p 1000 | grep -q {message}; do :; done; echo received {message}"),
    );
    let docker_info = spec.container.as_mut().unwrap().docker.as_mut().unwrap();
    docker_info.network = berth_containerizer::Network::Bridge;
    docker_info
        .port_mappings
        .push(berth_containerizer::spec::PortMapping {
            host_port: port,
            container_port: 1000,
            protocol: None,
        });
    // Without the port in the resources the launch is refused, naming the port.
    let err =
        a.cz.launch(&id, spec.clone())
            .await
            .unwrap_err()
            .to_string();
    assert_eq!(
        err,
        format!("Failed to launch container: Port [{port}] not included in resources")
    );
    let id = ContainerId::new("nc2").unwrap();
    spec.sandbox = a.sandbox("nc2");
    spec.resources
        .ports
        .push(berth_containerizer::spec::PortRange {
            begin: port,
            end: port,
        });
    a.cz.launch(&id, spec).await.unwrap();
    let status = a.cz.status(&id).unwrap();
    assert_eq!(
        status.ip_addresses.len(),
        1,
        "a bridge container has an address: {status:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let t = loop {
        if let Some(t) = a.cz.termination(&id) {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the message never reached the container through host port {port}"
        );
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(format!("{message}\n").as_bytes()).await;
            let _ = s.shutdown().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(t.state, TaskState::Finished, "{t:?}");
    let out = std::fs::read_to_string(a.sandbox("nc2").join("stdout")).unwrap();
    assert_eq!(out, format!("received {message}\n"));
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_relative_host_path_and_parameters() {
    const TEST: &str = "core_volumes";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "volumes-agent", root.path(), |_| {}).await;
    let id = ContainerId::new("vol").unwrap();
    let mut spec = a.spec(
        "vol",
        "echo data > /data/file; cat /etc/hosts | grep -c berth-db; id -u; ulimit -n; echo $EXTRA",
    );
    let container = spec.container.as_mut().unwrap();
    container.volumes.push(berth_containerizer::Volume {
        container_path: "/data".into(),
        host_path: Some("persist/dir".into()),
        mode: berth_containerizer::spec::VolumeMode::Rw,
        source: None,
    });
    let docker_info = container.docker.as_mut().unwrap();
    docker_info.network = berth_containerizer::Network::Bridge;
    *docker_info = docker_info
        .clone()
        .parameter("add-host", "berth-db:10.1.2.3")
        .parameter("user", "1234")
        .parameter("ulimit", "nofile=512:1024")
        .parameter("env", "EXTRA=from-parameters");
    // The user must be able to write the volume directory.
    std::fs::create_dir_all(a.sandbox("vol").join("persist/dir")).unwrap();
    std::os::unix::fs::chown(a.sandbox("vol").join("persist/dir"), Some(1234), None).unwrap();
    a.cz.launch(&id, spec).await.unwrap();
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.state, TaskState::Finished, "{t:?}");
    let data = std::fs::read_to_string(a.sandbox("vol").join("persist/dir/file")).unwrap();
    assert_eq!(data, "data\n", "the volume is the sandbox directory");
    let out = std::fs::read_to_string(a.sandbox("vol").join("stdout")).unwrap();
    assert_eq!(out, "1\n1234\n512\nfrom-parameters\n");
    // Unknown parameters are refused, naming the key and the supported ones.
    let id = ContainerId::new("bad").unwrap();
    let mut spec = a.spec("bad", "true");
    let d = spec.container.as_mut().unwrap().docker.as_mut().unwrap();
    *d = d.clone().parameter("volumes-from", "other");
    let err = a.cz.launch(&id, spec).await.unwrap_err().to_string();
    assert!(
        err.contains("'volumes-from'") && err.contains("cap-add"),
        "{err}"
    );
    assert!(a
        .labelled()
        .await
        .iter()
        .all(|c| !c.names.iter().any(|n| n.contains("bad"))));
    common::cleanup(TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_volume_with_local_driver_options() {
    const TEST: &str = "core_named_volume";
    common::cleanup(TEST).await;
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(TEST, "namedvol-agent", root.path(), |_| {}).await;
    // Unique per run: a volume outlives its containers, and runs may overlap.
    let volume = format!("berth-test-tmpfs-{}", std::process::id());
    let _ = a.docker.volumes().remove(&volume, true).await;
    let id = ContainerId::new("nv").unwrap();
    let mut spec = a.spec(
        "nv",
        "grep ' /scratch ' /proc/mounts | cut -d' ' -f1,3; echo kept > /scratch/f; cat /scratch/f",
    );
    spec.container
        .as_mut()
        .unwrap()
        .volumes
        .push(berth_containerizer::Volume {
            container_path: "/scratch".into(),
            host_path: None,
            mode: berth_containerizer::spec::VolumeMode::Rw,
            source: Some(berth_containerizer::spec::VolumeSource::DockerVolume {
                name: volume.clone(),
                driver: Some("local".into()),
                driver_options: [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=4m")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            }),
        });
    a.cz.launch(&id, spec).await.unwrap();
    let t = a.cz.wait(&id).await.unwrap();
    assert_eq!(t.state, TaskState::Finished, "{t:?}");
    let out = std::fs::read_to_string(a.sandbox("nv").join("stdout")).unwrap();
    assert_eq!(
        out, "tmpfs tmpfs\nkept\n",
        "the volume is a tmpfs from the local driver"
    );
    let v = a.docker.volumes().inspect(&volume).await.unwrap();
    assert_eq!(v.driver, "local");
    assert_eq!(v.options.get("type").map(String::as_str), Some("tmpfs"));
    assert_eq!(v.options.get("o").map(String::as_str), Some("size=4m"));
    assert_eq!(
        v.labels.get(berth_testbed::TEST_LABEL).map(String::as_str),
        Some(a.test.as_str()),
        "{v:?}"
    );
    assert_eq!(
        v.labels.get("io.berth.agent-id").map(String::as_str),
        Some(a.agent_id.as_str()),
        "{v:?}"
    );
    a.cz.remove(&id).await.unwrap();
    a.docker.volumes().remove(&volume, false).await.unwrap();
    common::cleanup(TEST).await;
}
