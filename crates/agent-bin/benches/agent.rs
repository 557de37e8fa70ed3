//! `cargo bench -p berth --bench agent` (`cargo xtask bench agent`).
//!
//! N containers (default 50) launched through the HTTP API of a real `berth serve` process at
//! once, run to completion (`true`) and removed, against N `docker run --rm` CLI processes doing
//! the same, in the same run, alternating, for several rounds. Prints the median wall times and
//! their ratio, the agent's CPU per container lifecycle (utime + stime from /proc), and its peak
//! memory (VmHWM).
//!
//! The peer line: the same N lifecycles, bare, through `bollard` (a dev-dependency used only
//! here) — create, start, wait, remove, on a one-thread runtime as the agent's — in rounds
//! alternating with the agent's. The bench process's own CPU during those rounds is bollard's
//! cost; the agent's CPU per lifecycle is printed as a ratio to it (target <= 2).
//!
//! Environment: `BERTH_BENCH_CONTAINERS` (default 50), `BERTH_BENCH_ROUNDS` (default 3);
//! `BERTH_BENCH_SHORT=1` (CI) makes them 5 and 2. In every mode each lifecycle checks its
//! answers (TASK_FINISHED, exit code 0), and at the end the agent must know no container and
//! Docker must hold none of the benchmark's.
//! `BERTH_BENCH_BASELINE=/path/to/berth` also runs that binary (say, a build of the previous
//! commit) as a second agent, its rounds alternating with this build's, and prints the ratio of
//! their CPU: on a VM whose speed drifts by tens of percent over minutes, comparing runs made
//! at different times cannot show a 10% change, comparing within one run can.
//! Needs the Docker daemon and its `docker` CLI; the image is Berth's offline default image.

use std::process::Stdio;
use std::time::Instant;

use berth::metrics::{cpu_ticks, status_kb};
use serde_json::json;
use tokio::process::Command;

mod support;
use support::{call, env_usize, median, start_agent, AgentProcess};

const LABEL: &str = "io.berth.bench=agent";

/// CPU seconds of this process (all threads, user + system), to the nanosecond.
fn own_cpu_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The peer: bollard on a runtime of its own with one thread, as the agent runs its async work
/// on one thread by default (a second thread would add cross-thread wake-ups to bollard's
/// side, and flatter the ratio).
struct Bollard {
    runtime: std::sync::Arc<tokio::runtime::Runtime>,
    docker: bollard::Docker,
}

impl Bollard {
    async fn connect() -> Bollard {
        // Its runtime is driven from a blocking thread: a runtime cannot block in another's.
        tokio::task::spawn_blocking(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for bollard");
            let host = std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| format!("unix://{}", berth_docker_api::DEFAULT_SOCKET));
            let docker = runtime
                .block_on(async {
                    bollard::Docker::connect_with_unix(&host, 120, bollard::API_DEFAULT_VERSION)?
                        .negotiate_version()
                        .await
                })
                .expect("bollard connects to the Docker daemon");
            Bollard {
                runtime: std::sync::Arc::new(runtime),
                docker,
            }
        })
        .await
        .expect("bollard's runtime")
    }

    /// N bare lifecycles at once; returns the wall time and this process's CPU seconds.
    async fn round(&self, n: usize, image: &str) -> (f64, f64) {
        let (runtime, docker, image) =
            (self.runtime.clone(), self.docker.clone(), image.to_owned());
        tokio::task::spawn_blocking(move || {
            let cpu0 = own_cpu_secs();
            let started = Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = (0..n)
                    .map(|_| tokio::spawn(bollard_lifecycle(docker.clone(), image.clone())))
                    .collect();
                for t in tasks {
                    t.await.expect("bollard lifecycle task");
                }
            });
            (started.elapsed().as_secs_f64(), own_cpu_secs() - cpu0)
        })
        .await
        .expect("bollard round")
    }
}

/// create, start, wait, remove: what any client needs to run a container to its end.
async fn bollard_lifecycle(docker: bollard::Docker, image: String) {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use futures_util::StreamExt;
    let (key, value) = LABEL.split_once('=').expect("a key=value label");
    let body = ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec!["true".into()]),
        labels: Some([(key.to_owned(), value.to_owned())].into()),
        // The agent's default, and the CLI's here.
        host_config: Some(HostConfig {
            network_mode: Some("host".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(None, body)
        .await
        .expect("bollard create")
        .id;
    docker
        .start_container(&id, None)
        .await
        .expect("bollard start");
    let exit = docker
        .wait_container(&id, None)
        .next()
        .await
        .expect("a wait answer")
        .expect("bollard wait (an exit code other than 0 is an error)");
    assert_eq!(exit.status_code, 0, "bollard wait {id}");
    docker
        .remove_container(&id, None)
        .await
        .expect("bollard remove");
}

/// What the agent has spent so far: CPU split into user and kernel time, and how often its
/// threads were switched out. The split shows how much of a lifecycle is the agent's own code and
/// how much the kernel work its syscalls cause (file systems, sockets, wake-ups).
#[derive(Clone, Copy, Default)]
struct Usage {
    user_secs: f64,
    system_secs: f64,
    context_switches: u64,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .expect("read the agent's /proc stat");
        let (u, s) = cpu_ticks(&stat).expect("parse /proc stat");
        let hz = rustix::param::clock_ticks_per_second() as f64;
        // Per live thread: a blocking-pool thread that exited mid-round drops its share, so this
        // undercounts slightly; it is a guide to wake-ups, not an exact figure.
        let mut context_switches = 0;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let status =
                    std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
                for key in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
                    context_switches += status
                        .lines()
                        .find_map(|l| l.strip_prefix(key))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        Usage {
            user_secs: u as f64 / hz,
            system_secs: s as f64 / hz,
            context_switches,
        }
    }

    fn since(self, before: Usage) -> Usage {
        Usage {
            user_secs: self.user_secs - before.user_secs,
            system_secs: self.system_secs - before.system_secs,
            context_switches: self
                .context_switches
                .saturating_sub(before.context_switches),
        }
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read the agent's /proc status");
    status_kb(&status, "VmHWM:").expect("VmHWM")
}

/// One container's whole life through the API: launch, wait, remove.
async fn lifecycle(client: reqwest::Client, url: String, id: String, image: String) {
    let launch = json!({"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": {"value": id},
        "command": {"value": "true", "shell": false},
        "container": {"type": "DOCKER", "docker": {"image": image,
            "parameters": [{"key": "label", "value": LABEL}]}}}});
    let (status, text) = call(&client, &url, launch).await;
    assert_eq!(status, 200, "launch {id}: {text}");
    let (status, text) = call(
        &client,
        &url,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": id}}}),
    )
    .await;
    assert!(
        status == 200 && text.contains("TASK_FINISHED"),
        "wait {id}: {status} {text}"
    );
    let (status, text) = call(
        &client,
        &url,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": id}}}),
    )
    .await;
    assert_eq!(status, 200, "remove {id}: {text}");
}

async fn berth_round(agent: &AgentProcess, n: usize, round: usize, image: &str) -> f64 {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(lifecycle(
                client.clone(),
                agent.url.clone(),
                format!("bench-{round}-{i}"),
                image.to_owned(),
            ))
        })
        .collect();
    for t in tasks {
        t.await.expect("lifecycle task");
    }
    started.elapsed().as_secs_f64()
}

async fn docker_round(n: usize, image: &str) -> f64 {
    let started = Instant::now();
    let runs: Vec<_> = (0..n)
        .map(|_| {
            Command::new("docker")
                .args([
                    "run",
                    "--rm",
                    "--network",
                    "host",
                    "--label",
                    LABEL,
                    image,
                    "true",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn docker run (is the docker CLI installed?)")
        })
        .collect();
    for r in runs {
        let out = r.wait_with_output().await.expect("docker run");
        assert!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    started.elapsed().as_secs_f64()
}

/// One agent's rounds: wall time, CPU and context switches per container.
#[derive(Default)]
struct Measured {
    wall: Vec<f64>,
    cpu_ms: Vec<f64>,
    user_ms: Vec<f64>,
    switches: Vec<f64>,
    last: Usage,
    /// CPU seconds and containers over all rounds: /proc counts CPU in clock ticks (10 ms), a
    /// step of 0.2 ms per container in a round of 50, so small differences show only in the
    /// mean over every round.
    total_cpu_secs: f64,
    total_containers: usize,
}

impl Measured {
    async fn round(&mut self, agent: &AgentProcess, n: usize, round: usize, image: &str) -> f64 {
        let pid = agent.child.id().expect("agent pid");
        let before = Usage::of(pid);
        let wall = berth_round(agent, n, round, image).await;
        let used = Usage::of(pid).since(before);
        let per = |x: f64| x * 1000.0 / n as f64;
        self.wall.push(wall);
        self.cpu_ms.push(per(used.user_secs + used.system_secs));
        self.user_ms.push(per(used.user_secs));
        self.switches.push(used.context_switches as f64 / n as f64);
        self.last = used;
        self.total_cpu_secs += used.user_secs + used.system_secs;
        self.total_containers += n;
        wall
    }

    fn describe(&self, n: usize, wall: f64) -> String {
        let per = |x: f64| x * 1000.0 / n as f64;
        let u = self.last;
        format!(
            "{wall:.2} s, agent CPU {:.3} ms/container (user {:.3}, kernel {:.3}), {:.1} context switches/container",
            per(u.user_secs + u.system_secs),
            per(u.user_secs),
            per(u.system_secs),
            u.context_switches as f64 / n as f64,
        )
    }

    /// CPU per container over every round, in ms.
    fn mean_cpu_ms(&self) -> f64 {
        self.total_cpu_secs * 1000.0 / self.total_containers.max(1) as f64
    }

    /// Medians of wall time, CPU, user CPU and context switches.
    fn medians(&mut self) -> (f64, f64, f64, f64) {
        (
            median(&mut self.wall),
            median(&mut self.cpu_ms),
            median(&mut self.user_ms),
            median(&mut self.switches),
        )
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::selected("agent") {
        return;
    }
    let n = env_usize("BERTH_BENCH_CONTAINERS", 50, 5);
    let rounds = env_usize("BERTH_BENCH_ROUNDS", 3, 2);
    support::cleanup(LABEL).await;
    let image = support::default_image().await;
    let mut agent = start_agent(env!("CARGO_BIN_EXE_berth")).await;
    let mut baseline = match std::env::var("BERTH_BENCH_BASELINE") {
        Ok(binary) => Some(start_agent(&binary).await),
        Err(_) => None,
    };

    // Warm-up: one lifecycle each way, outside the measurements.
    for a in std::iter::once(&agent).chain(baseline.as_ref()) {
        lifecycle(
            reqwest::Client::new(),
            a.url.clone(),
            "bench-warmup".into(),
            image.clone(),
        )
        .await;
    }
    docker_round(1, &image).await;
    let bollard = Bollard::connect().await;
    bollard.round(1, &image).await;

    println!("agent benchmark: {n} containers at once, `true` to completion and removed; {rounds} rounds");
    let mut this = Measured::default();
    let mut base = Measured::default();
    let mut docker_times = Vec::new();
    let (mut bollard_wall, mut bollard_cpu_ms) = (Vec::new(), Vec::new());
    let mut bollard_cpu_secs = 0.0;
    for round in 0..rounds {
        // The peer goes first in every other round too.
        let peer_first = round % 2 == 0;
        let peer = || async {
            let (wall, cpu) = bollard.round(n, &image).await;
            println!(
                "  round {round}: bollard   {wall:.2} s, client CPU {:.3} ms/container",
                cpu * 1000.0 / n as f64
            );
            (wall, cpu)
        };
        let mut record = |(wall, cpu): (f64, f64)| {
            bollard_wall.push(wall);
            bollard_cpu_ms.push(cpu * 1000.0 / n as f64);
            bollard_cpu_secs += cpu;
        };
        if peer_first {
            record(peer().await);
        }
        // The baseline goes first in every other round, so neither gains from its place.
        if let Some(a) = baseline.as_ref().filter(|_| round % 2 == 1) {
            let b = base.round(a, n, round, &image).await;
            println!("  round {round}: baseline  {}", base.describe(n, b));
        }
        let b = this.round(&agent, n, round, &image).await;
        println!("  round {round}: berth API {}", this.describe(n, b));
        if let Some(a) = baseline.as_ref().filter(|_| round % 2 == 0) {
            let b = base.round(a, n, round, &image).await;
            println!("  round {round}: baseline  {}", base.describe(n, b));
        }
        if !peer_first {
            record(peer().await);
        }
        let d = docker_round(n, &image).await;
        println!("  round {round}: docker run CLI {d:.2} s");
        docker_times.push(d);
    }
    let d = median(&mut docker_times);
    let (b, c, user, switches) = this.medians();
    let peak = peak_rss_kib(agent.child.id().expect("agent pid"));
    println!(
        "median wall time: berth API {b:.2} s, docker run CLI {d:.2} s, ratio berth/docker {:.2}",
        b / d
    );
    println!(
        "agent CPU per container lifecycle (median): {c:.3} ms (target < 1 ms); in user space {user:.3} ms; \
         {switches:.1} context switches"
    );
    if baseline.is_some() {
        let (bb, bc, buser, bswitches) = base.medians();
        println!(
            "baseline (median): wall {bb:.2} s, CPU {bc:.3} ms, user {buser:.3} ms, {bswitches:.1} context switches; \
             this build / baseline: CPU {:.2}, context switches {:.2}",
            c / bc,
            switches / bswitches
        );
        println!(
            "mean over all rounds: this build {:.3} ms, baseline {:.3} ms of CPU per container; ratio {:.3}",
            this.mean_cpu_ms(),
            base.mean_cpu_ms(),
            this.mean_cpu_ms() / base.mean_cpu_ms()
        );
    }
    // Means over every round for the ratio: the agent's CPU comes in 10 ms ticks.
    let bollard_mean = bollard_cpu_secs * 1000.0 / (n * rounds) as f64;
    let berth_mean = this.mean_cpu_ms();
    println!(
        "peer: bollard create/start/wait/remove, median wall {:.2} s, client CPU {:.3} ms/container (median), {bollard_mean:.3} ms (mean)",
        median(&mut bollard_wall),
        median(&mut bollard_cpu_ms),
    );
    println!(
        "agent CPU per lifecycle / bollard's (means over all rounds): {berth_mean:.3} / {bollard_mean:.3} ms = {:.2}x (target <= 2x)",
        berth_mean / bollard_mean
    );
    println!("agent peak memory (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    println!(
        "verdict: {} as fast as the CLI; {} the 1 ms CPU target",
        if b <= d { "at least" } else { "NOT" },
        if c < 1.0 { "within" } else { "ABOVE" }
    );
    // Every lifecycle removed what it made: the agent knows no container, Docker holds none.
    let (status, text) = call(
        &reqwest::Client::new(),
        &agent.url,
        json!({"type": "GET_CONTAINERS"}),
    )
    .await;
    assert_eq!(status, 200, "GET_CONTAINERS: {text}");
    let known: serde_json::Value = serde_json::from_str(&text).expect("GET_CONTAINERS JSON");
    assert_eq!(
        known["get_containers"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "containers the agent still knows after every REMOVE: {text}"
    );
    let left = support::leftovers(LABEL).await;
    assert!(left.is_empty(), "Docker still holds {left:?}");
    if let Some(a) = baseline.as_mut() {
        let _ = a.child.kill().await;
    }
    let _ = agent.child.kill().await;
    // A runtime may not be dropped where blocking is not allowed.
    tokio::task::spawn_blocking(move || drop(bollard))
        .await
        .expect("drop bollard's runtime");
    support::cleanup(LABEL).await;
}
