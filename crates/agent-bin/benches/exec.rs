//! `cargo bench -p berth --bench exec` (`cargo xtask bench exec`).
//!
//! The start-to-end latency of a short command run inside a running container, three ways, in
//! the same run, their order rotating every round: `docker exec NAME echo hi` (the baseline),
//! `berth exec ID -- echo hi` (the CLI through a real `berth serve` on loopback), and
//! `LAUNCH_NESTED_CONTAINER_SESSION` read to the end of its RecordIO stream (the API, from
//! this process). Each sample is one command from the request to its end; each checks its
//! output (`hi`) and exit code. Prints the medians, the 90th percentiles and the ratios
//! berth/docker.
//!
//! Environment: `BERTH_BENCH_ROUNDS` (default 30; `BERTH_BENCH_SHORT=1`, as CI runs it: 5).
//! Needs the Docker daemon and its `docker` CLI; the image is Berth's offline default image.

use std::process::Stdio;
use std::time::Instant;

use serde_json::json;
use tokio::process::Command;

mod support;
use support::{call, env_usize, median, percentile, start_agent, AgentProcess};

const LABEL: &str = "io.berth.bench=exec";
const PARENT: &str = "exec-bench";

/// One way of running `echo hi` in the container; returns the seconds it took.
#[derive(Clone, Copy)]
enum Way {
    DockerCli,
    BerthCli,
    BerthApi,
}

impl Way {
    const ALL: [Way; 3] = [Way::DockerCli, Way::BerthCli, Way::BerthApi];

    fn name(self) -> &'static str {
        match self {
            Way::DockerCli => "docker exec CLI",
            Way::BerthCli => "berth exec CLI",
            Way::BerthApi => "berth API session",
        }
    }

    async fn run(self, agent: &AgentProcess, docker_name: &str, session: usize) -> f64 {
        let started = Instant::now();
        match self {
            Way::DockerCli => {
                let out = Command::new("docker")
                    .args(["exec", docker_name, "echo", "hi"])
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .expect("docker exec runs");
                check_cli("docker exec", &out);
            }
            Way::BerthCli => {
                let out = Command::new(env!("CARGO_BIN_EXE_berth"))
                    .args(["exec", "--agent", &agent.url, PARENT, "--", "echo", "hi"])
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .expect("berth exec runs");
                check_cli("berth exec", &out);
            }
            Way::BerthApi => {
                let body = json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION",
                    "launch_nested_container_session": {
                        "container_id": {"value": format!("s{session}"), "parent": {"value": PARENT}},
                        "command": {"value": "echo", "arguments": ["echo", "hi"], "shell": false}}});
                let r = reqwest::Client::new()
                    .post(format!("{}/api/v1", agent.url))
                    .header("content-type", "application/json")
                    .header("accept", "application/recordio")
                    .header("message-accept", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("the session request");
                assert_eq!(r.status(), 200, "session {session}");
                let text = r.text().await.expect("the session's stream");
                // "hi\n" in base64, in a STDOUT record.
                assert!(
                    text.contains("\"STDOUT\"") && text.contains("\"aGkK\""),
                    "session {session} answered {text}"
                );
            }
        }
        started.elapsed().as_secs_f64()
    }
}

fn check_cli(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success() && out.stdout == b"hi\n",
        "{what}: {:?}, stdout {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::selected("exec") {
        return;
    }
    let rounds = env_usize("BERTH_BENCH_ROUNDS", 30, 5);
    support::cleanup(LABEL).await;
    let image = support::default_image().await;
    let mut agent = start_agent(env!("CARGO_BIN_EXE_berth")).await;
    let client = reqwest::Client::new();
    let (status, text) = call(
        &client,
        &agent.url,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": {"value": PARENT},
            "command": {"value": "sleep", "arguments": ["3600"], "shell": false},
            "container": {"type": "DOCKER", "docker": {"image": image,
                "parameters": [{"key": "label", "value": LABEL}]}}}}),
    )
    .await;
    assert_eq!(status, 200, "launch: {text}");
    let docker_name = support::leftovers(LABEL)
        .await
        .pop()
        .expect("the launched container in Docker");

    // Warm-up: each way once, outside the measurements.
    let mut session = 0;
    for way in Way::ALL {
        session += 1;
        way.run(&agent, &docker_name, session).await;
    }
    println!("exec benchmark: `echo hi` in a running container, {rounds} rounds, order rotating");
    let mut samples: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for k in 0..Way::ALL.len() {
            let i = (round + k) % Way::ALL.len();
            session += 1;
            samples[i].push(Way::ALL[i].run(&agent, &docker_name, session).await);
        }
    }
    let mut summary = Vec::new();
    for (way, s) in Way::ALL.iter().zip(samples.iter_mut()) {
        let (m, p90) = (median(s), percentile(s, 90.0));
        println!(
            "{:<18} median {:6.1} ms  p90 {:6.1} ms",
            way.name(),
            m * 1e3,
            p90 * 1e3
        );
        summary.push(m);
    }
    println!(
        "ratio berth/docker (medians): CLI {:.2}, API {:.2} (target <= 1.0)",
        summary[1] / summary[0],
        summary[2] / summary[0]
    );
    let (status, text) = call(
        &client,
        &agent.url,
        json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": PARENT}}}),
    )
    .await;
    assert_eq!(status, 200, "kill: {text}");
    let _ = call(
        &client,
        &agent.url,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": PARENT}}}),
    )
    .await;
    let (status, text) = call(
        &client,
        &agent.url,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": PARENT}}}),
    )
    .await;
    assert_eq!(status, 200, "remove: {text}");
    let left = support::leftovers(LABEL).await;
    assert!(left.is_empty(), "Docker still holds {left:?}");
    let _ = agent.child.kill().await;
}
