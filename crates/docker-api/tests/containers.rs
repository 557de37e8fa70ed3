//! Container calls against the test bed's daemon: every operation, and HostConfig settings
//! checked both in inspect and from inside the container.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use berth_docker_api::*;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

async fn output(docker: &Docker, id: &str) -> (String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut logs = docker.containers().logs(id, &LogsOptions::default());
    while let Some(frame) = logs.next().await {
        let frame = frame.unwrap();
        let text = String::from_utf8_lossy(&frame.data).to_string();
        match frame.stream {
            LogStream::Stderr => stderr.push_str(&text),
            _ => stdout.push_str(&text),
        }
    }
    (stdout, stderr)
}

async fn run_to_end(
    docker: &Docker,
    name: Option<&str>,
    config: &ContainerConfig,
) -> (String, i64, String, String) {
    let created = docker.containers().create(name, config).await.unwrap();
    docker.containers().start(&created.id).await.unwrap();
    let exit = docker
        .containers()
        .wait(&created.id, WaitCondition::NotRunning)
        .await
        .unwrap();
    let (out, err) = output(docker, &created.id).await;
    (created.id, exit.status_code, out, err)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn lifecycle_exit_codes_are_data() {
    const TEST: &str = "lifecycle_exit_codes_are_data";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let name = "berth-api-test-lifecycle";
    let config = ContainerConfig {
        env: Some(s(&["GREETING=hello"])),
        working_dir: Some("/tmp".into()),
        user: Some("1234:5678".into()),
        ..common::busybox(
            TEST,
            &[
                "sh",
                "-c",
                "echo $GREETING $(pwd) $(id -u):$(id -g); echo oops >&2; exit 7",
            ],
        )
    };
    let (id, code, out, err) = run_to_end(&docker, Some(name), &config).await;
    assert_eq!(code, 7);
    assert_eq!(out, "hello /tmp 1234:5678\n");
    assert_eq!(err, "oops\n");

    let inspect = c.inspect(name).await.unwrap();
    assert_eq!(
        (inspect.id.as_str(), inspect.short_name()),
        (id.as_str(), name)
    );
    assert_eq!(
        (
            inspect.state.status.clone(),
            inspect.state.exit_code,
            inspect.state.oom_killed
        ),
        (ContainerStatus::Exited, 7, false)
    );
    // Both parse. Docker stamps StartedAt when the start call returns and FinishedAt from the
    // exit event, so a process that exits at once can be stamped as finishing a little before
    // it started (moby/moby#45445; seen here once in a CI run): allow a second of that.
    let (started, finished) = (
        inspect.state.started().unwrap(),
        inspect.state.finished().unwrap(),
    );
    assert!(
        finished + Duration::from_secs(1) >= started,
        "{started:?} .. {finished:?}"
    );
    let age = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(600), "started {age:?} ago");
    assert_eq!(
        inspect.config.labels.as_ref().unwrap()[common::TEST_LABEL],
        TEST
    );

    // A second container with the same name conflicts; a missing image is "not found: image".
    let err = c.create(Some(name), &config).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let missing = ContainerConfig {
        image: Some("berth-api-test/no-such-image:latest".into()),
        ..config.clone()
    };
    let err = c.create(None, &missing).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { kind: ResourceKind::Image, name, .. } if name == "berth-api-test/no-such-image:latest"),
        "{err:?}"
    );

    // An executable that does not exist: start fails with the daemon's reason; inspect has it.
    let bad = common::busybox(TEST, &["/no/such/binary"]);
    let created = c.create(None, &bad).await.unwrap();
    let err = c.start(&created.id).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { message, .. } if message.contains("/no/such/binary")),
        "{err:?}"
    );
    assert!(c
        .inspect(&created.id)
        .await
        .unwrap()
        .state
        .error
        .contains("/no/such/binary"));

    c.remove(&id, RemoveContainerOptions::default())
        .await
        .unwrap();
    let err = c.inspect(&id).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { kind: ResourceKind::Container, name, .. } if *name == id),
        "{err:?}"
    );
    let err = c
        .remove(&id, RemoveContainerOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn kill_stop_restart_and_states() {
    const TEST: &str = "kill_stop_restart_and_states";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    // A shell that reports SIGTERM and exits 42 on it.
    let config = common::busybox(
        TEST,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; while true; do sleep 0.1; done",
        ],
    );
    let created = c.create(None, &config).await.unwrap();
    c.start(&created.id).await.unwrap();
    assert!(c.start(&created.id).await.unwrap_err().is_not_modified());
    let running = c.inspect(&created.id).await.unwrap();
    assert!(running.state.running && running.state.pid > 0);

    let err = c
        .remove(&created.id, RemoveContainerOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");

    // Stop: SIGTERM first, the trap exits 42.
    c.stop(&created.id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let stopped = c.inspect(&created.id).await.unwrap();
    assert_eq!(
        (stopped.state.running, stopped.state.exit_code),
        (false, 42)
    );
    assert!(output(&docker, &created.id).await.0.contains("got-term"));
    assert!(c
        .stop(&created.id, None)
        .await
        .unwrap_err()
        .is_not_modified());

    // Restart runs it again; kill with a chosen signal.
    c.restart(&created.id, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(c.inspect(&created.id).await.unwrap().state.running);
    let waiter = {
        let docker = docker.clone();
        let id = created.id.clone();
        tokio::spawn(async move {
            docker
                .containers()
                .wait(&id, WaitCondition::NotRunning)
                .await
        })
    };
    c.kill(&created.id, Some("SIGKILL")).await.unwrap();
    let exit = waiter.await.unwrap().unwrap();
    assert_eq!(exit.status_code, 137);
    assert!(
        !c.inspect(&created.id).await.unwrap().state.oom_killed,
        "137 from a kill is not an OOM"
    );
    let err = c.kill(&created.id, None).await.unwrap_err();
    assert!(err.is_conflict(), "killing a stopped container: {err:?}");

    // Stop with a grace shorter than the process takes: SIGKILL after 1 s.
    let stubborn = common::busybox(
        TEST,
        &["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
    );
    let created = c.create(None, &stubborn).await.unwrap();
    c.start(&created.id).await.unwrap();
    let started = std::time::Instant::now();
    c.stop(&created.id, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(c.inspect(&created.id).await.unwrap().state.exit_code, 137);

    c.remove(
        &created.id,
        RemoveContainerOptions {
            force: true,
            volumes: true,
        },
    )
    .await
    .unwrap();
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn list_with_all_and_label_and_name_filters() {
    const TEST: &str = "list_with_all_and_label";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let running = c
        .create(
            Some("berth-api-test-list-running"),
            &common::busybox(TEST, &["sleep", "60"]),
        )
        .await
        .unwrap();
    c.start(&running.id).await.unwrap();
    let stopped = c
        .create(
            Some("berth-api-test-list-created"),
            &common::busybox(TEST, &["true"]),
        )
        .await
        .unwrap();

    let label = Filters::new().label(format!("{}={TEST}", common::TEST_LABEL));
    let only_running = c
        .list(&ListContainersOptions {
            filters: label.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        only_running
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec![running.id.as_str()]
    );
    assert_eq!(only_running[0].state, ContainerStatus::Running);
    let all = c
        .list(&ListContainersOptions {
            all: true,
            filters: label.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let by_name = c
        .list(&ListContainersOptions {
            all: true,
            filters: label.name("berth-api-test-list-created"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(
        (by_name[0].id.as_str(), by_name[0].state.clone()),
        (stopped.id.as_str(), ContainerStatus::Created)
    );
    assert_eq!(by_name[0].names, vec!["/berth-api-test-list-created"]);
    let limited = c
        .list(&ListContainersOptions {
            all: true,
            limit: Some(1),
            filters: Filters::new().label(format!("{}={TEST}", common::TEST_LABEL)),
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn host_config_settings_reach_the_container() {
    const TEST: &str = "host_config_settings";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("marker"), "from-the-host").unwrap();
    let bind_dir = tempfile::tempdir().unwrap();
    std::fs::write(bind_dir.path().join("second"), "via-mounts").unwrap();

    let script = [
        "cat /hostdir/marker; echo",
        "cat /mounted/second; echo",
        "grep inky /etc/hosts",
        "grep nameserver /etc/resolv.conf",
        "echo nofile=$(ulimit -n)",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        "cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes",
        "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
        "cat /sys/fs/cgroup/pids/pids.max",
        "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
        "cat /sys/fs/cgroup/cpuset/cpuset.cpus",
        "cat /proc/self/oom_score_adj",
        "df -k /dev/shm | tail -1 | awk '{print \"shm=\" $2}'",
        "df -k /scratch | tail -1 | awk '{print \"scratch=\" $2}'",
        "df -k /run | tail -1 | awk '{print \"run=\" $2}'",
        "test -c /dev/mynull && echo device-ok",
        "touch /rootfs-write 2>/dev/null && echo rootfs-writable || echo rootfs-readonly",
        "touch /scratch/x && echo tmpfs-writable",
        "grep CapEff /proc/self/status",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo",
    ]
    .join("; ");
    let host = HostConfig {
        binds: Some(vec![format!("{}:/hostdir:ro", dir.path().display())]),
        mounts: Some(vec![
            Mount {
                kind: Some("bind".into()),
                source: Some(bind_dir.path().display().to_string()),
                target: Some("/mounted".into()),
                read_only: Some(true),
                ..Default::default()
            },
            Mount {
                kind: Some("tmpfs".into()),
                target: Some("/scratch".into()),
                tmpfs_options: Some(TmpfsOptions {
                    size_bytes: Some(2 * 1024 * 1024),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        port_bindings: Some(HashMap::from([(
            "8080/tcp".to_owned(),
            vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(String::new()),
            }],
        )])),
        network_mode: Some("bridge".into()),
        cap_add: Some(s(&["NET_ADMIN"])),
        cap_drop: Some(s(&["MKNOD"])),
        devices: Some(vec![DeviceMapping {
            path_on_host: Some("/dev/null".into()),
            path_in_container: Some("/dev/mynull".into()),
            cgroup_permissions: Some("rwm".into()),
        }]),
        dns: Some(s(&["10.9.8.7"])),
        extra_hosts: Some(s(&["inky:10.1.2.3"])),
        ulimits: Some(vec![Ulimit {
            name: Some("nofile".into()),
            soft: Some(1000),
            hard: Some(2000),
        }]),
        shm_size: Some(8 * 1024 * 1024),
        pids_limit: Some(64),
        memory: Some(64 * 1024 * 1024),
        memory_reservation: Some(32 * 1024 * 1024),
        memory_swap: Some(128 * 1024 * 1024),
        oom_score_adj: Some(123),
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0".into()),
        log_config: Some(LogConfig {
            kind: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_owned(), "1m".to_owned()),
                ("max-file".to_owned(), "2".to_owned()),
            ])),
        }),
        init: Some(true),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/run".to_owned(), "size=1m".to_owned())])),
        ..Default::default()
    };
    let config = ContainerConfig {
        host_config: Some(host),
        exposed_ports: Some(HashMap::from([("8080/tcp".to_owned(), Empty {})])),
        stop_signal: Some("SIGUSR1".into()),
        stop_timeout: Some(4),
        hostname: Some("berthbox".into()),
        ..common::busybox(TEST, &["sh", "-c", &script])
    };
    let (id, code, out, err) = run_to_end(&docker, None, &config).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    let expect = |needle: &str| {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "missing {needle:?} in:\n{out}"
        )
    };
    expect("from-the-host");
    expect("via-mounts");
    expect("10.1.2.3\tinky");
    expect("nameserver 10.9.8.7");
    expect("nofile=1000");
    expect(&(64 * 1024 * 1024).to_string());
    expect(&(32 * 1024 * 1024).to_string());
    expect(&(128 * 1024 * 1024).to_string());
    expect("64");
    expect("512");
    expect("50000");
    expect("100000");
    expect("123");
    expect("shm=8192");
    expect("scratch=2048");
    expect("run=1024");
    expect("device-ok");
    expect("rootfs-readonly");
    expect("tmpfs-writable");
    expect("docker-init");
    // NET_ADMIN is bit 12 of the effective set; MKNOD (bit 27) is gone.
    let cap_eff = lines
        .iter()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    let caps = u64::from_str_radix(cap_eff, 16).unwrap();
    assert!(
        caps & (1 << 12) != 0 && caps & (1 << 27) == 0,
        "CapEff {cap_eff}"
    );

    let inspect = docker.containers().inspect(&id).await.unwrap();
    let h = &inspect.host_config;
    assert_eq!(
        (h.memory, h.memory_reservation, h.memory_swap),
        (Some(64 << 20), Some(32 << 20), Some(128 << 20))
    );
    assert_eq!(
        (
            h.cpu_shares,
            h.cpu_quota,
            h.cpu_period,
            h.cpuset_cpus.as_deref()
        ),
        (Some(512), Some(50_000), Some(100_000), Some("0"))
    );
    assert_eq!(
        (h.pids_limit, h.shm_size, h.oom_score_adj),
        (Some(64), Some(8 << 20), Some(123))
    );
    assert_eq!(
        (h.init, h.readonly_rootfs, h.network_mode.as_deref()),
        (Some(true), Some(true), Some("bridge"))
    );
    assert_eq!(
        h.log_config.as_ref().unwrap().config.as_ref().unwrap()["max-file"],
        "2"
    );
    assert_eq!(inspect.config.stop_signal.as_deref(), Some("SIGUSR1"));
    assert_eq!(
        (
            inspect.config.stop_timeout,
            inspect.config.hostname.as_deref()
        ),
        (Some(4), Some("berthbox"))
    );
    assert!(inspect
        .log_path
        .as_deref()
        .is_some_and(|p| p.ends_with("-json.log")));
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn networks_ports_and_privileged() {
    const TEST: &str = "networks_ports_and_privileged";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let config = ContainerConfig {
        exposed_ports: Some(HashMap::from([("8080/tcp".to_owned(), Empty {})])),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                "8080/tcp".to_owned(),
                vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }],
            )])),
            ..Default::default()
        }),
        ..common::busybox(TEST, &["sleep", "60"])
    };
    let created = c.create(None, &config).await.unwrap();
    c.start(&created.id).await.unwrap();
    let inspect = c.inspect(&created.id).await.unwrap();
    let ips = inspect.network_settings.ip_addresses();
    assert_eq!(ips.len(), 1, "{:?}", inspect.network_settings);
    assert!(ips[0].parse::<std::net::Ipv4Addr>().is_ok());
    let bound = inspect.network_settings.ports["8080/tcp"]
        .as_ref()
        .expect("published");
    let port: u16 = bound[0].host_port.as_deref().unwrap().parse().unwrap();
    assert!(port > 0);
    assert_eq!(bound[0].host_ip.as_deref(), Some("127.0.0.1"));

    let none = ContainerConfig {
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..common::busybox(TEST, &["sleep", "60"])
    };
    let created = c.create(None, &none).await.unwrap();
    c.start(&created.id).await.unwrap();
    let inspect = c.inspect(&created.id).await.unwrap();
    assert!(inspect.network_settings.ip_addresses().is_empty());
    assert_eq!(inspect.host_config.network_mode.as_deref(), Some("none"));

    // Privileged is accepted and recorded. (This machine's daemon itself runs without the
    // capabilities a privileged container needs, so it is created, not started.)
    let privileged = ContainerConfig {
        host_config: Some(HostConfig {
            privileged: Some(true),
            ..Default::default()
        }),
        ..common::busybox(TEST, &["true"])
    };
    let created = c.create(None, &privileged).await.unwrap();
    assert_eq!(
        c.inspect(&created.id).await.unwrap().host_config.privileged,
        Some(true)
    );
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn logs_multiplexed_tty_timestamps_since_tail_follow() {
    const TEST: &str = "logs_multiplexed_tty";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();

    // Multiplexed (no TTY): streams kept apart, data exact, including binary bytes.
    let config = common::busybox(TEST, &["sh", "-c", "printf 'one\\n'; printf 'two\\n' >&2; printf '\\001\\002\\003\\n'; sleep 0.3; echo three"]);
    let (id, _, _, _) = run_to_end(&docker, None, &config).await;
    let frames: Vec<LogFrame> = c
        .logs(
            &id,
            &LogsOptions {
                timestamps: true,
                ..Default::default()
            },
        )
        .map(|f| f.unwrap())
        .collect()
        .await;
    let stdout: Vec<u8> = frames
        .iter()
        .filter(|f| f.stream == LogStream::Stdout)
        .flat_map(|f| f.data.to_vec())
        .collect();
    let stderr: Vec<u8> = frames
        .iter()
        .filter(|f| f.stream == LogStream::Stderr)
        .flat_map(|f| f.data.to_vec())
        .collect();
    assert_eq!(stdout, b"one\n\x01\x02\x03\nthree\n");
    assert_eq!(stderr, b"two\n");
    assert!(frames.iter().all(|f| f.timestamp.is_some()));
    let times: Vec<SystemTime> = frames.iter().map(|f| f.timestamp.unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    // `since` with sub-second precision: just after the third entry's time leaves only "three".
    let third = times[2];
    let since = third + Duration::from_nanos(1);
    let later: Vec<LogFrame> = c
        .logs(
            &id,
            &LogsOptions {
                since: Some(since),
                ..Default::default()
            },
        )
        .map(|f| f.unwrap())
        .collect()
        .await;
    assert_eq!(
        later
            .iter()
            .flat_map(|f| f.data.to_vec())
            .collect::<Vec<u8>>(),
        b"three\n"
    );
    let only_stderr: Vec<LogFrame> = c
        .logs(
            &id,
            &LogsOptions {
                stdout: false,
                ..Default::default()
            },
        )
        .map(|f| f.unwrap())
        .collect()
        .await;
    assert_eq!(only_stderr.len(), 1);
    let known_mode: Vec<LogFrame> = c
        .logs(
            &id,
            &LogsOptions {
                stdout: false,
                tty: Some(false),
                ..Default::default()
            },
        )
        .map(|f| f.unwrap())
        .collect()
        .await;
    assert_eq!(known_mode, only_stderr);
    let tail: Vec<LogFrame> = c
        .logs(
            &id,
            &LogsOptions {
                tail: Some(1),
                ..Default::default()
            },
        )
        .map(|f| f.unwrap())
        .collect()
        .await;
    assert_eq!(&tail[0].data[..], b"three\n");

    // TTY: raw, one console stream; with timestamps, parsed per line.
    let tty = ContainerConfig {
        tty: Some(true),
        ..common::busybox(TEST, &["sh", "-c", "echo tty-one; echo tty-two >&2"])
    };
    let (id, _, _, _) = run_to_end(&docker, None, &tty).await;
    let frames: Vec<LogFrame> = c
        .logs(
            &id,
            &LogsOptions {
                timestamps: true,
                ..Default::default()
            },
        )
        .map(|f| f.unwrap())
        .collect()
        .await;
    assert!(
        frames
            .iter()
            .all(|f| f.stream == LogStream::Console && f.timestamp.is_some()),
        "{frames:?}"
    );
    let text: String = frames
        .iter()
        .map(|f| String::from_utf8_lossy(&f.data).to_string())
        .collect();
    assert_eq!(text, "tty-one\r\ntty-two\r\n");
    // A caller that knows the mode skips the inspect and gets the same frames.
    let known: Vec<LogFrame> = c
        .logs(
            &id,
            &LogsOptions {
                timestamps: true,
                tty: Some(true),
                ..Default::default()
            },
        )
        .map(|f| f.unwrap())
        .collect()
        .await;
    assert_eq!(known, frames);

    // Follow: frames arrive while the container runs; the stream ends when it exits.
    let slow = common::busybox(
        TEST,
        &[
            "sh",
            "-c",
            "for i in 1 2 3; do echo tick$i; sleep 0.3; done",
        ],
    );
    let created = c.create(None, &slow).await.unwrap();
    c.start(&created.id).await.unwrap();
    let mut follow = c.logs(
        &created.id,
        &LogsOptions {
            follow: true,
            ..Default::default()
        },
    );
    let first = tokio::time::timeout(Duration::from_secs(10), follow.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first.data[..], b"tick1\n");
    let rest: Vec<LogFrame> = tokio::time::timeout(
        Duration::from_secs(10),
        follow.map(|f| f.unwrap()).collect(),
    )
    .await
    .unwrap();
    assert_eq!(
        rest.iter()
            .flat_map(|f| f.data.to_vec())
            .collect::<Vec<u8>>(),
        b"tick2\ntick3\n"
    );

    let err = c
        .logs("berth-api-test-no-such-container", &LogsOptions::default())
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn dropping_a_followed_log_stream_frees_the_call() {
    const TEST: &str = "dropping_a_followed_log";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let created = c
        .create(
            None,
            &common::busybox(
                TEST,
                &["sh", "-c", "while true; do echo x; sleep 0.1; done"],
            ),
        )
        .await
        .unwrap();
    c.start(&created.id).await.unwrap();
    for _ in 0..3 {
        let mut follow = c.logs(
            &created.id,
            &LogsOptions {
                follow: true,
                ..Default::default()
            },
        );
        assert!(follow.next().await.unwrap().is_ok());
        drop(follow);
    }
    // The client still works and the container is unaffected.
    assert!(c.inspect(&created.id).await.unwrap().state.running);
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn attach_with_stdin() {
    const TEST: &str = "attach_with_stdin";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let config = ContainerConfig {
        open_stdin: Some(true),
        stdin_once: Some(true),
        ..common::busybox(
            TEST,
            &[
                "sh",
                "-c",
                "while read line; do echo got:$line; echo err:$line >&2; done; echo bye",
            ],
        )
    };
    let created = c.create(None, &config).await.unwrap();
    c.start(&created.id).await.unwrap();
    let mut attached = c
        .attach(
            &created.id,
            AttachOptions {
                stdin: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    attached.input.write_all(b"alpha\nbeta\n").await.unwrap();
    attached.input.flush().await.unwrap();
    attached.input.shutdown().await.unwrap();
    let frames: Vec<LogFrame> = tokio::time::timeout(
        Duration::from_secs(20),
        attached.output.map(|f| f.unwrap()).collect(),
    )
    .await
    .unwrap();
    let stdout: String = frames
        .iter()
        .filter(|f| f.stream == LogStream::Stdout)
        .map(|f| String::from_utf8_lossy(&f.data).to_string())
        .collect();
    let stderr: String = frames
        .iter()
        .filter(|f| f.stream == LogStream::Stderr)
        .map(|f| String::from_utf8_lossy(&f.data).to_string())
        .collect();
    assert_eq!(stdout, "got:alpha\ngot:beta\nbye\n");
    assert_eq!(stderr, "err:alpha\nerr:beta\n");
    let exit = c
        .wait(&created.id, WaitCondition::NotRunning)
        .await
        .unwrap();
    assert_eq!(exit.status_code, 0);
    common::cleanup(TEST).await;
}

/// Attached before the start with the mode given by the caller (as the containerizer does,
/// from its create body): every byte arrives, framed as the container was created.
#[tokio::test]
async fn attach_with_a_known_tty_mode() {
    const TEST: &str = "attach_with_a_known_tty_mode";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    for tty in [false, true] {
        let config = ContainerConfig {
            tty: Some(tty),
            ..common::busybox(TEST, &["sh", "-c", "echo out; echo err >&2"])
        };
        let created = c.create(None, &config).await.unwrap();
        let attached = c
            .attach(
                &created.id,
                AttachOptions {
                    tty: Some(tty),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        c.start(&created.id).await.unwrap();
        let frames: Vec<LogFrame> = tokio::time::timeout(
            Duration::from_secs(20),
            attached.output.map(|f| f.unwrap()).collect(),
        )
        .await
        .unwrap();
        let text = |stream: LogStream| -> String {
            frames
                .iter()
                .filter(|f| f.stream == stream)
                .map(|f| String::from_utf8_lossy(&f.data).to_string())
                .collect()
        };
        if tty {
            assert_eq!(text(LogStream::Console), "out\r\nerr\r\n", "{frames:?}");
        } else {
            assert_eq!(
                (text(LogStream::Stdout), text(LogStream::Stderr)),
                ("out\n".to_owned(), "err\n".to_owned()),
                "{frames:?}"
            );
        }
    }
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn stats_one_shot_and_streaming() {
    const TEST: &str = "stats_one_shot_and_streaming";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let config = ContainerConfig {
        host_config: Some(HostConfig {
            memory: Some(64 << 20),
            ..Default::default()
        }),
        ..common::busybox(TEST, &["sh", "-c", "while true; do :; done"])
    };
    let created = c.create(None, &config).await.unwrap();
    c.start(&created.id).await.unwrap();

    let stats = c.stats(&created.id).await.unwrap();
    assert_eq!(stats.memory_stats.limit, Some(64 << 20));
    assert!(stats.pids_stats.current.unwrap() >= 1);
    let cpu = stats.cpu_percent().expect("two samples");
    assert!(cpu > 10.0, "a busy loop uses CPU: {cpu}");

    let snapshot = c.stats_snapshot(&created.id).await.unwrap();
    assert!(snapshot.cpu_stats.cpu_usage.total_usage > 0);

    let samples: Vec<Stats> = c
        .stats_stream(&created.id)
        .take(2)
        .map(|s| s.unwrap())
        .collect()
        .await;
    assert_eq!(samples.len(), 2);
    assert!(
        samples[1].cpu_stats.cpu_usage.total_usage > samples[0].cpu_stats.cpu_usage.total_usage
    );
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn update_raises_and_lowers_memory() {
    const TEST: &str = "update_raises_and_lowers_memory";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let config = ContainerConfig {
        host_config: Some(HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(64 << 20),
            ..Default::default()
        }),
        ..common::busybox(TEST, &["sleep", "60"])
    };
    let created = c.create(None, &config).await.unwrap();
    c.start(&created.id).await.unwrap();
    let limit = || async {
        c.stats_snapshot(&created.id)
            .await
            .unwrap()
            .memory_stats
            .limit
    };

    // Raising past the current memory+swap needs both together.
    c.update(
        &created.id,
        &UpdateResources {
            memory: Some(256 << 20),
            memory_swap: Some(512 << 20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(limit().await, Some(256 << 20));
    let h = c.inspect(&created.id).await.unwrap().host_config;
    assert_eq!(
        (h.memory, h.memory_swap),
        (Some(256 << 20), Some(512 << 20))
    );

    c.update(
        &created.id,
        &UpdateResources {
            memory: Some(48 << 20),
            memory_swap: Some(96 << 20),
            cpu_shares: Some(256),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(limit().await, Some(48 << 20));
    assert_eq!(
        c.inspect(&created.id).await.unwrap().host_config.cpu_shares,
        Some(256)
    );

    // Memory above memory+swap is refused by the daemon (a conflict with the current limits).
    let err = c
        .update(
            &created.id,
            &UpdateResources {
                memory: Some(200 << 20),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { message, .. } if message.contains("memoryswap")),
        "{err:?}"
    );
    let err = c
        .update(
            "berth-api-test-no-such-container",
            &UpdateResources::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn top_and_exec() {
    const TEST: &str = "top_and_exec";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    let created = c
        .create(None, &common::busybox(TEST, &["sleep", "60"]))
        .await
        .unwrap();
    c.start(&created.id).await.unwrap();

    let top = c.top(&created.id, None).await.unwrap();
    assert!(
        top.column("CMD")
            .unwrap()
            .iter()
            .any(|cmd| cmd.contains("sleep 60")),
        "{top:?}"
    );
    let top = c.top(&created.id, Some("-o pid,comm")).await.unwrap();
    assert_eq!(top.titles, vec!["PID", "COMMAND"]);

    // Exec: create, start attached, inspect.
    let exec = docker.exec();
    let config = ExecConfig {
        env: Some(s(&["WHO=exec"])),
        working_dir: Some("/tmp".into()),
        ..ExecConfig::command(["sh", "-c", "echo $WHO $(pwd); echo e >&2; exit 5"])
    };
    let id = exec.create(&created.id, &config).await.unwrap();
    let before = exec.inspect(&id).await.unwrap();
    assert_eq!(
        (
            before.running,
            before.exit_code,
            before.container_id.as_str()
        ),
        (false, None, created.id.as_str())
    );
    let attached = exec.start(&id).await.unwrap();
    let frames: Vec<LogFrame> = attached.output.map(|f| f.unwrap()).collect().await;
    assert!(
        frames
            .iter()
            .any(|f| f.stream == LogStream::Stdout && &f.data[..] == b"exec /tmp\n"),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.stream == LogStream::Stderr && &f.data[..] == b"e\n"),
        "{frames:?}"
    );

    // The convenience run: output and exit code (non-zero is data).
    let out = exec
        .run(
            &created.id,
            &ExecConfig::command(["sh", "-c", "echo healthy; exit 3"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice(), out.stderr.as_slice()),
        (3, &b"healthy\n"[..], &b""[..])
    );
    let tty = ExecConfig {
        tty: true,
        ..ExecConfig::command(["sh", "-c", "echo in-a-tty"])
    };
    let out = exec
        .run(&created.id, &tty, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice()),
        (0, &b"in-a-tty\r\n"[..])
    );

    // Detached: runs in the background; its effect shows up.
    let id = exec
        .create(
            &created.id,
            &ExecConfig::command(["touch", "/tmp/detached"]),
        )
        .await
        .unwrap();
    exec.start_detached(&id).await.unwrap();
    let mut done = false;
    for _ in 0..100 {
        let state = exec.inspect(&id).await.unwrap();
        if !state.running && state.exit_code.is_some() {
            assert_eq!(state.exit_code, Some(0));
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done);
    let check = exec
        .run(
            &created.id,
            &ExecConfig::command(["test", "-f", "/tmp/detached"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(check.exit_code, 0);

    let err = exec
        .inspect("berth-api-test-no-such-exec")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: ResourceKind::Exec,
                ..
            }
        ),
        "{err:?}"
    );
    c.stop(&created.id, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    let err = exec
        .create(&created.id, &ExecConfig::command(["true"]))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "exec in a stopped container: {err:?}");
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn short_call_deadline_applies_and_wait_is_untimed() {
    const TEST: &str = "short_call_deadline";
    common::cleanup(TEST).await;
    // Create and start (which can take over a second on a loaded machine) go through a client
    // with the default deadlines; the calls under test through one whose short calls get 500 ms.
    let setup = common::docker().await;
    let setup = setup.containers();
    let docker = common::docker()
        .await
        .with_timeout(Duration::from_millis(500));
    let c = docker.containers();
    let created = setup
        .create(None, &common::busybox(TEST, &["sleep", "2"]))
        .await
        .unwrap();
    setup.start(&created.id).await.unwrap();
    // wait takes ~2 s, longer than the 500 ms deadline of short calls: it must not time out.
    let exit = c
        .wait(&created.id, WaitCondition::NotRunning)
        .await
        .unwrap();
    assert_eq!(exit.status_code, 0);
    // A short call that takes longer than its deadline (a two-sample stats call takes ~1 s).
    let running = setup
        .create(None, &common::busybox(TEST, &["sleep", "60"]))
        .await
        .unwrap();
    setup.start(&running.id).await.unwrap();
    let started = std::time::Instant::now();
    let err = c.stats(&running.id).await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { after, .. } if *after == Duration::from_millis(500)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(900));
    // The client is still usable afterwards.
    assert!(c.inspect(&running.id).await.unwrap().state.running);
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn named_volume_with_driver_options() {
    const TEST: &str = "named_volume_driver";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let volume = format!("berth-test-vol-{}", std::process::id());
    let mut config = common::busybox(TEST, &["sh", "-c", "grep ' /scratch ' /proc/mounts"]);
    config.host_config = Some(HostConfig {
        mounts: Some(vec![Mount {
            kind: Some("volume".into()),
            source: Some(volume.clone()),
            target: Some("/scratch".into()),
            volume_options: Some(VolumeOptions {
                driver_config: Some(VolumeDriver {
                    name: Some("local".into()),
                    options: HashMap::from([
                        ("type".to_owned(), "tmpfs".to_owned()),
                        ("device".to_owned(), "tmpfs".to_owned()),
                    ]),
                }),
                labels: common::labels(TEST),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..HostConfig::default()
    });
    let (id, code, out, err) = run_to_end(&docker, None, &config).await;
    // The local driver made the volume on first use, backed by a tmpfs as its options asked.
    assert_eq!(code, 0, "stdout: {out} stderr: {err}");
    assert!(out.contains("tmpfs /scratch tmpfs"), "{out}");
    docker
        .containers()
        .remove(
            &id,
            RemoveContainerOptions {
                force: true,
                volumes: true,
            },
        )
        .await
        .unwrap();
    // A named volume outlives its container; it carries the labels and options it was made with.
    let made = docker.volumes().inspect(&volume).await.unwrap();
    assert_eq!(made.driver, "local");
    assert_eq!(made.options.get("type").map(String::as_str), Some("tmpfs"));
    assert_eq!(
        made.labels.get(common::TEST_LABEL).map(String::as_str),
        Some(TEST)
    );
    let listed = docker
        .volumes()
        .list(&Filters::new().label(format!("{}={TEST}", common::TEST_LABEL)))
        .await
        .unwrap();
    assert!(listed.iter().any(|v| v.name == volume), "{listed:?}");
    docker.volumes().remove(&volume, false).await.unwrap();
    let gone = docker.volumes().inspect(&volume).await.unwrap_err();
    assert!(
        matches!(&gone, Error::NotFound { kind: ResourceKind::Volume, name, .. } if *name == volume),
        "{gone:?}"
    );
    assert!(gone.to_string().contains(&volume), "{gone}");
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn stop_without_grace_waits_out_the_containers_stop_timeout() {
    const TEST: &str = "stop_timeout_deadline";
    common::cleanup(TEST).await;
    // Short calls get 1 s; the container ignores SIGTERM and asks for 12 s before SIGKILL,
    // longer than the 10 s the daemon's default would be.
    let docker = common::docker().await.with_timeout(Duration::from_secs(1));
    let mut config = common::busybox(
        TEST,
        &["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
    );
    config.stop_timeout = Some(12);
    // Create and start can take over a second on a loaded machine: default deadlines for them.
    let setup = common::docker().await;
    let created = setup.containers().create(None, &config).await.unwrap();
    setup.containers().start(&created.id).await.unwrap();
    let started = std::time::Instant::now();
    docker
        .containers()
        .stop(&created.id, None)
        .await
        .expect("stop must outlast the container's StopTimeout, not give up at 1 s + 10 s");
    assert!(
        started.elapsed() >= Duration::from_secs(11),
        "stopped too soon: the signal was not ignored?"
    );
    let state = docker
        .containers()
        .inspect(&created.id)
        .await
        .unwrap()
        .state;
    assert!(!state.running);
    assert_eq!(state.exit_code, 137);
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn resize_sets_the_kernels_tty_size() {
    const TEST: &str = "resize_sets_the_kernels_tty_size";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let c = docker.containers();
    // The sleep lets the resize land before the shell asks the kernel for the size.
    let config = ContainerConfig {
        tty: Some(true),
        ..common::busybox(TEST, &["sh", "-c", "sleep 1; stty size"])
    };
    let created = c.create(None, &config).await.unwrap();
    c.start(&created.id).await.unwrap();
    c.resize(
        &created.id,
        TtySize {
            rows: 42,
            columns: 123,
        },
    )
    .await
    .unwrap();
    let exit = c
        .wait(&created.id, WaitCondition::NotRunning)
        .await
        .unwrap();
    assert_eq!(exit.status_code, 0);
    let (out, _) = output(&docker, &created.id).await;
    assert_eq!(out, "42 123\r\n");

    // A stopped container has no TTY to resize.
    let err = c
        .resize(
            &created.id,
            TtySize {
                rows: 1,
                columns: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    common::cleanup(TEST).await;
}
