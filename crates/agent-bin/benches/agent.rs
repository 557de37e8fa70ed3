//! `cargo bench -p berth --bench agent` (`cargo xtask bench agent`).
//!
//! N containers (default 50) launched through the HTTP API of a real `berth serve` process at
//! once, run to completion (`true`) and removed, against N `docker run --rm` CLI processes doing
//! the same, in the same run, alternating, for several rounds. Prints the median wall times and
//! their ratio, the agent's CPU per container lifecycle (utime + stime from /proc), and its peak
//! memory (VmHWM).
//!
//! Environment: `BERTH_BENCH_CONTAINERS` (default 50), `BERTH_BENCH_ROUNDS` (default 3).
//! Needs the Docker daemon and its `docker` CLI; the image is Berth's offline default image.

use std::process::Stdio;
use std::time::{Duration, Instant};

use berth::metrics::{cpu_ticks, status_kb};
use serde_json::json;
use tokio::process::Command;

const LABEL: &str = "io.berth.bench=agent";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) of a process.
fn cpu_secs(pid: u32) -> f64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read the agent's /proc stat");
    let (u, s) = cpu_ticks(&stat).expect("parse /proc stat");
    (u + s) as f64 / rustix::param::clock_ticks_per_second() as f64
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read the agent's /proc status");
    status_kb(&status, "VmHWM:").expect("VmHWM")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

struct AgentProcess {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_agent() -> AgentProcess {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("agent.log");
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn,berth::runtime=info",
            "--work-dir",
        ])
        .arg(dir.path().join("work"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start berth serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("serving the v1 API at http://") {
            let rest = &text[at + "serving the v1 API at ".len()..];
            let url = rest[..rest.find("/api/v1").expect("API path")].to_owned();
            return AgentProcess {
                child,
                url,
                _dir: dir,
            };
        }
        assert!(
            Instant::now() < deadline,
            "berth serve did not start:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(client: &reqwest::Client, url: &str, body: serde_json::Value) -> (u16, String) {
    let r = client
        .post(format!("{url}/api/v1"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("agent request");
    (r.status().as_u16(), r.text().await.expect("agent answer"))
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

async fn cleanup() {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={LABEL}")])
        .output()
        .await;
    if let Ok(out) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output()
                .await;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name us means "not this one".
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "agent".contains(a.as_str())) {
        return;
    }
    let n = env_usize("BERTH_BENCH_CONTAINERS", 50);
    let rounds = env_usize("BERTH_BENCH_ROUNDS", 3);
    cleanup().await;
    let docker = berth::runtime::connect_docker(
        &std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| berth_docker_api::DEFAULT_SOCKET.to_owned()),
    )
    .await
    .expect("the Docker daemon");
    let image = berth::image::ensure_default_image(&docker)
        .await
        .expect("the default image");
    let mut agent = start_agent().await;
    let pid = agent.child.id().expect("agent pid");

    // Warm-up: one lifecycle each way, outside the measurements.
    lifecycle(
        reqwest::Client::new(),
        agent.url.clone(),
        "bench-warmup".into(),
        image.clone(),
    )
    .await;
    docker_round(1, &image).await;

    println!("agent benchmark: {n} containers at once, `true` to completion and removed; {rounds} rounds");
    let (mut berth_times, mut docker_times, mut cpu_per) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let cpu_before = cpu_secs(pid);
        let b = berth_round(&agent, n, round, &image).await;
        let cpu = cpu_secs(pid) - cpu_before;
        let d = docker_round(n, &image).await;
        println!(
            "  round {round}: berth API {b:.2} s, docker run CLI {d:.2} s, agent CPU {:.3} ms/container",
            cpu * 1000.0 / n as f64
        );
        berth_times.push(b);
        docker_times.push(d);
        cpu_per.push(cpu * 1000.0 / n as f64);
    }
    let (b, d, c) = (
        median(&mut berth_times),
        median(&mut docker_times),
        median(&mut cpu_per),
    );
    let peak = peak_rss_kib(pid);
    println!(
        "median wall time: berth API {b:.2} s, docker run CLI {d:.2} s, ratio berth/docker {:.2}",
        b / d
    );
    println!("agent CPU per container lifecycle (median): {c:.3} ms (target < 1 ms)");
    println!("agent peak memory (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    println!(
        "verdict: {} as fast as the CLI; {} the 1 ms CPU target",
        if b <= d { "at least" } else { "NOT" },
        if c < 1.0 { "within" } else { "ABOVE" }
    );
    let _ = agent.child.kill().await;
    cleanup().await;
}
