//! What the agent's benchmarks share: a real `berth serve` process to measure, its API, and
//! the arithmetic of their reports. Each benchmark uses part of it.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

/// `name` from the environment, else `full` (or `small` with `BERTH_BENCH_SHORT=1`).
pub fn env_usize(name: &str, full: usize, small: usize) -> usize {
    let short = std::env::var("BERTH_BENCH_SHORT").is_ok_and(|v| v == "1");
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short { small } else { full })
}

/// Whether this benchmark, `name`, is to run: `cargo bench` passes its filter (and `--bench`);
/// a filter that does not name it means "not this one".
pub fn selected(name: &str) -> bool {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    args.is_empty() || args.iter().any(|a| name.contains(a.as_str()))
}

/// Berth's offline default image, built into the daemon if it is not there yet.
pub async fn default_image() -> String {
    let docker = berth::runtime::connect_docker(
        &std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| berth_docker_api::DEFAULT_SOCKET.to_owned()),
    )
    .await
    .expect("the Docker daemon");
    berth::image::ensure_default_image(&docker)
        .await
        .expect("the default image")
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// The `p`th percentile of `v` (sorted in place), nearest rank.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A `berth serve` on a loopback port of its own, in a temporary work directory.
pub struct AgentProcess {
    pub child: tokio::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// Starts `binary serve` and waits until it answers.
pub async fn start_agent(binary: &str) -> AgentProcess {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("agent.log");
    let child = Command::new(binary)
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

/// One v1 API call in JSON: the status and the body.
pub async fn call(client: &reqwest::Client, url: &str, body: serde_json::Value) -> (u16, String) {
    let r = client
        .post(format!("{url}/api/v1"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("agent request");
    (r.status().as_u16(), r.text().await.expect("agent answer"))
}

/// The containers Docker holds with `label`, running or not.
pub async fn leftovers(label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .await;
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Removes every container with `label`.
pub async fn cleanup(label: &str) {
    let ids = leftovers(label).await;
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&ids)
            .output()
            .await;
    }
}
