//! `cargo bench -p berth-containerizer --bench containerizer` (needs the test bed):
//!
//! 1. launch-to-RUNNING latency of the containerizer against the raw API's create+start of the
//!    same body, interleaved in one run (target: within 5%);
//! 2. 100 containers launched concurrently to RUNNING, then destroyed: total time and agent
//!    CPU per container;
//! 3. memory per tracked running container with 200 `sleep` containers (target: under 64 KiB
//!    each; Mesos attaches a `docker run` CLI and an executor, 25+ MiB, per container).
//!
//! `BERTH_BENCH_ROUNDS` (default 15), `BERTH_BENCH_CONCURRENT` (100) and `BERTH_BENCH_TRACKED`
//! (200) scale the three parts; `BERTH_BENCH_SHORT=1` (CI) makes them 2, 5 and 5. In every mode
//! the outcomes are checked: each launched container RUNNING with a pid, each destroyed one
//! terminated as killed, none left known or in Docker after removal, no illegal transition.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_containerizer::mapping::{map_launch, MappingContext};
use berth_containerizer::{
    create_body, log_config_spec, AgentId, CommandInfo, Config, ContainerId, Containerizer,
    DockerEngine, FetcherAdapter, LaunchSpec, LoggerAdapter, Phase, TaskState,
};
use berth_docker_api as api;
use berth_logger::{ContainerLogger, LoggerConfig, SandboxLogger};

const TEST: &str = "core_bench";
const AGENT: &str = "bench-agent";

/// `name` from the environment, else `full` (or `small` with `BERTH_BENCH_SHORT=1`).
fn env_usize(name: &str, full: usize, small: usize) -> usize {
    let short = std::env::var("BERTH_BENCH_SHORT").is_ok_and(|v| v == "1");
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short { small } else { full })
}

/// Every container of `ids` is RUNNING with a host pid.
fn assert_running(cz: &Containerizer, ids: &[ContainerId]) {
    for id in ids {
        let status = cz.status(id).expect("a launched container is known");
        assert!(
            status.phase == Phase::Running && status.pid.is_some(),
            "{id} after its launch: {} with pid {:?}",
            status.phase,
            status.pid
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// User + system CPU seconds of this process.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (3).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A `/proc/self/status` value in KiB.
fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn containerizer(docker: &api::Docker, root: &Path) -> Containerizer {
    let mut config = Config::new(AgentId::new(AGENT).unwrap(), root.join("work"));
    config.name_prefix = "berth-bench".into();
    config
        .extra_labels
        .insert(berth_testbed::TEST_LABEL.to_owned(), TEST.to_owned());
    config.kill_grace = Duration::from_secs(1);
    config.remove_delay = Duration::from_secs(3600);
    config.launch_timeout = Duration::from_secs(600);
    let logger = SandboxLogger::new(LoggerConfig::new(root.join("logger"))).unwrap();
    config.docker_log = log_config_spec(&logger.docker_log_config());
    let fetcher = berth_fetcher::Fetcher::builder().build().unwrap();
    Containerizer::new(
        config,
        Arc::new(DockerEngine::new(docker.clone())),
        Arc::new(FetcherAdapter::new(Arc::new(fetcher))),
        Arc::new(LoggerAdapter::new(Arc::new(logger))),
    )
    .unwrap()
}

fn spec(root: &Path, name: &str) -> LaunchSpec {
    let tb = berth_testbed::testbed();
    LaunchSpec::docker(
        tb.images.busybox.clone(),
        CommandInfo::shell("sleep 1000"),
        root.join("sandboxes").join(name),
    )
}

async fn cleanup(cz: &Containerizer, ids: &[ContainerId]) {
    for id in ids {
        cz.destroy(id).await;
        cz.remove(id).await.unwrap();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tb = berth_testbed::testbed();
    berth_testbed::remove_test_containers(TEST).await;
    let endpoint = api::Endpoint::parse(&tb.docker_host).unwrap();
    let docker = api::Docker::connect(endpoint).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let cz = containerizer(&docker, root.path()).await;
    cz.recover().await.unwrap();

    // 1. Launch latency vs raw create+start of the same body, interleaved.
    let rounds = env_usize("BERTH_BENCH_ROUNDS", 15, 2);
    let agent = AgentId::new(AGENT).unwrap();
    let labels = BTreeMap::from([(berth_testbed::TEST_LABEL.to_owned(), TEST.to_owned())]);
    let log = cz.config().docker_log.clone();
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for i in 0..rounds + 1 {
        let id = ContainerId::new(format!("lat-{i}")).unwrap();
        let s = spec(root.path(), id.as_str());
        let raw_id = ContainerId::new(format!("raw-{i}")).unwrap();
        let name = format!("berth-bench-{raw_id}");
        std::fs::create_dir_all(&s.sandbox).unwrap();
        let ctx = MappingContext {
            agent_id: &agent,
            container_id: &raw_id,
            name: &name,
            mapped_sandbox: "/mnt/mesos/sandbox",
            allowed_host_roots: &[],
            allow_privileged: false,
            allowances: &Default::default(),
            cfs: false,
            host_memory: None,
            log_config: &log,
            extra_labels: &labels,
        };
        let body = create_body(&map_launch(&s, &ctx).unwrap().create).unwrap();
        let ours_first = i % 2 == 0;
        let mut launch = 0.0;
        let mut direct = 0.0;
        let mut created_id = String::new();
        for turn in 0..2 {
            if (turn == 0) == ours_first {
                let t = Instant::now();
                cz.launch(&id, s.clone()).await.unwrap();
                launch = t.elapsed().as_secs_f64() * 1e3;
            } else {
                let t = Instant::now();
                let created = docker
                    .containers()
                    .create(Some(&name), &body)
                    .await
                    .unwrap();
                docker.containers().start(&created.id).await.unwrap();
                direct = t.elapsed().as_secs_f64() * 1e3;
                created_id = created.id;
            }
        }
        // The first round warms caches and connections.
        if i > 0 {
            ours.push(launch);
            raw.push(direct);
        }
        cleanup(&cz, &[id]).await;
        let rm = api::RemoveContainerOptions {
            force: true,
            volumes: true,
        };
        docker.containers().remove(&created_id, rm).await.unwrap();
    }
    let (m_ours, m_raw) = (median(&mut ours), median(&mut raw));
    println!("launch-to-RUNNING, {rounds} rounds interleaved (order alternating):");
    println!("  containerizer launch   median {m_ours:8.1} ms");
    println!("  raw API create+start   median {m_raw:8.1} ms");
    println!(
        "  ratio                         {:8.3} (target <= 1.05)",
        m_ours / m_raw
    );

    // 2. Many containers at once.
    let n = env_usize("BERTH_BENCH_CONCURRENT", 100, 5);
    let ids: Vec<ContainerId> = (0..n)
        .map(|i| ContainerId::new(format!("many-{i}")).unwrap())
        .collect();
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let launches: Vec<_> = ids
        .iter()
        .map(|id| {
            let (cz, id, s) = (cz.clone(), id.clone(), spec(root.path(), id.as_str()));
            tokio::spawn(async move { cz.launch(&id, s).await.unwrap() })
        })
        .collect();
    for l in launches {
        l.await.unwrap();
    }
    let up = t.elapsed();
    assert_running(&cz, &ids);
    let destroys: Vec<_> = ids
        .iter()
        .map(|id| {
            let (cz, id) = (cz.clone(), id.clone());
            tokio::spawn(async move { cz.destroy(&id).await.unwrap() })
        })
        .collect();
    for d in destroys {
        let termination = d.await.unwrap();
        assert_eq!(
            termination.state,
            TaskState::Killed,
            "a destroyed container ends killed: {termination:?}"
        );
    }
    let total = t.elapsed();
    let cpu = cpu_secs() - cpu0;
    println!("{n} concurrent launches to RUNNING, then destroyed:");
    println!("  all RUNNING after      {:8.2} s", up.as_secs_f64());
    println!("  all destroyed after    {:8.2} s", total.as_secs_f64());
    println!("  agent CPU per container{:8.2} ms", cpu * 1e3 / n as f64);
    for id in &ids {
        cz.remove(id).await.unwrap();
    }

    // 3. Memory per tracked running container.
    let n = env_usize("BERTH_BENCH_TRACKED", 200, 5);
    let ids: Vec<ContainerId> = (0..n)
        .map(|i| ContainerId::new(format!("mem-{i}")).unwrap())
        .collect();
    let (rss0, hwm0) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    for chunk in ids.chunks(20) {
        let launches: Vec<_> = chunk
            .iter()
            .map(|id| {
                let (cz, id, s) = (cz.clone(), id.clone(), spec(root.path(), id.as_str()));
                tokio::spawn(async move { cz.launch(&id, s).await.unwrap() })
            })
            .collect();
        for l in launches {
            l.await.unwrap();
        }
    }
    assert_running(&cz, &ids);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = status_kib("VmRSS:");
    let per = (rss1.saturating_sub(rss0)) as f64 / n as f64;
    println!("{n} tracked running containers:");
    println!(
        "  agent RSS before {rss0} KiB, with {n} running {rss1} KiB (VmHWM {hwm0} -> {} KiB)",
        status_kib("VmHWM:")
    );
    println!("  memory per tracked container {per:8.1} KiB (target < 64 KiB; Mesos: 25+ MiB)");
    cleanup(&cz, &ids).await;
    assert!(
        cz.containers().is_empty(),
        "containers still known after their removal: {:?}",
        cz.containers()
    );
    assert_eq!(cz.illegal_transitions(), 0, "illegal state transitions");
    let left = docker
        .containers()
        .list(&api::ListContainersOptions {
            all: true,
            filters: api::Filters::new().label(format!("{}={TEST}", berth_testbed::TEST_LABEL)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "Docker containers left after every removal: {:?}",
        left.iter().map(|c| &c.names).collect::<Vec<_>>()
    );
    berth_testbed::remove_test_containers(TEST).await;
}
