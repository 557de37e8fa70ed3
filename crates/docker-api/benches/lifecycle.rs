//! Container lifecycle benchmark: create, start, wait and remove a container running `true`,
//! repeated N times (`BERTH_BENCH_N`, default 30), timed four ways in the same run with the
//! iterations interleaved (so load from other processes hits every method alike):
//!
//! 1. berth-docker-api;
//! 2. raw HTTP/1.1 written by hand on the socket, in this process (the floor);
//! 3. raw HTTP with `curl --unix-socket` (one process per request, four per lifecycle);
//! 4. the `docker` CLI: `docker create`, `docker start`, `docker wait`, `docker rm` (the same four
//!    API calls; `docker run --rm` would attach and auto-remove, which is other work).
//!
//! Prints median/p10/p90 wall time per lifecycle, the ratios, and client-side CPU per lifecycle
//! from `/proc/self/stat` (utime+stime for this process, cutime+cstime for the curl and docker
//! children; 10 ms ticks), refined for the in-process methods by `/proc/self/sched`
//! (nanoseconds). Needs the test bed (`cargo xtask testbed up`) for the busybox image.
//!
//! `BERTH_BENCH_SHORT=1` (CI) makes the default 3 iterations. Every lifecycle checks the exit
//! code, every inspect the id, and at the end no container of the benchmark but the probe may
//! be left: each method removed all it created.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_docker_api::{
    ContainerConfig, Docker, Endpoint, Filters, ListContainersOptions, RemoveContainerOptions,
    WaitCondition,
};

const LABEL: &str = "io.berth.test=bench-lifecycle";

/// CPU times of this process, in clock ticks: (own, reaped children).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name may contain spaces; fields after its closing parenthesis are plain.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<u64> = rest.split(' ').map(|f| f.parse().unwrap_or(0)).collect();
    // After `)`: state(0) ppid(1) ... utime is field 14 overall, i.e. index 11 here.
    (fields[11] + fields[12], fields[13] + fields[14])
}

/// On-CPU time of this process's main thread in ms, with nanosecond precision, from
/// `/proc/self/sched` (`se.sum_exec_runtime`) when the kernel provides it. The benchmark runs all
/// client work on that thread, so this refines the tick-granular `/proc/self/stat` figure.
fn sched_ms() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/sched").ok()?;
    text.lines()
        .find(|l| l.starts_with("se.sum_exec_runtime"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One hand-written HTTP/1.1 request on a fresh connection; returns the body.
fn raw_request(socket: &Path, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut stream = UnixStream::connect(socket).expect("connect to the docker socket");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().expect("a status code");
    assert!((200..300).contains(&status), "{method} {path}: {head}");
    let body = &response[head_end..];
    if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
}

/// A kept-alive connection for hand-written requests whose responses carry a Content-Length.
struct KeepAlive {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    fn connect(socket: &Path) -> KeepAlive {
        KeepAlive {
            stream: UnixStream::connect(socket).expect("connect to the docker socket"),
            buf: Vec::new(),
        }
    }

    fn get(&mut self, path: &str) -> Vec<u8> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n");
        self.stream
            .write_all(request.as_bytes())
            .expect("write request");
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let body_start = end + 4;
                if head.contains("transfer-encoding: chunked") {
                    // JSON never contains the terminating sequence, so look for it.
                    if let Some(pos) = self.buf[body_start..]
                        .windows(5)
                        .position(|w| w == b"0\r\n\r\n")
                    {
                        let body_end = body_start + pos + 5;
                        let body = dechunk(&self.buf[body_start..body_end]);
                        self.buf.drain(..body_end);
                        return body;
                    }
                } else {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .expect("a Content-Length or chunked body")
                        .trim()
                        .parse()
                        .expect("a length");
                    if self.buf.len() >= body_start + length {
                        let body = self.buf[body_start..body_start + length].to_vec();
                        self.buf.drain(..body_start + length);
                        return body;
                    }
                }
            }
            let n = self.stream.read(&mut chunk).expect("read response");
            assert!(n > 0, "the daemon closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn json_id(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).expect("create returns JSON");
    value["Id"].as_str().expect("an Id").to_owned()
}

fn create_body(image: &str) -> String {
    serde_json::json!({ "Image": image, "Cmd": ["true"], "Labels": { "io.berth.test": "bench-lifecycle" } }).to_string()
}

fn lifecycle_raw(socket: &Path, version: &str, image: &str) {
    let id = json_id(&raw_request(
        socket,
        "POST",
        &format!("/v{version}/containers/create"),
        Some(&create_body(image)),
    ));
    raw_request(
        socket,
        "POST",
        &format!("/v{version}/containers/{id}/start"),
        None,
    );
    let wait = raw_request(
        socket,
        "POST",
        &format!("/v{version}/containers/{id}/wait"),
        None,
    );
    assert!(String::from_utf8_lossy(&wait).contains("\"StatusCode\":0"));
    raw_request(
        socket,
        "DELETE",
        &format!("/v{version}/containers/{id}"),
        None,
    );
}

fn curl(socket: &Path, method: &str, url: &str, body: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--unix-socket"])
        .arg(socket)
        .args(["-X", method, url]);
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = cmd.output().expect("curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn lifecycle_curl(socket: &Path, version: &str, image: &str) {
    let base = format!("http://docker/v{version}/containers");
    let id = json_id(&curl(
        socket,
        "POST",
        &format!("{base}/create"),
        Some(&create_body(image)),
    ));
    curl(socket, "POST", &format!("{base}/{id}/start"), None);
    let wait = curl(socket, "POST", &format!("{base}/{id}/wait"), None);
    assert!(String::from_utf8_lossy(&wait).contains("\"StatusCode\":0"));
    curl(socket, "DELETE", &format!("{base}/{id}"), None);
}

fn docker_cli(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn lifecycle_cli(image: &str) {
    let id = docker_cli(&["create", "--label", LABEL, image, "true"]);
    docker_cli(&["start", &id]);
    assert_eq!(docker_cli(&["wait", &id]), "0");
    docker_cli(&["rm", &id]);
}

async fn lifecycle_api(docker: &Docker, config: &ContainerConfig) {
    let c = docker.containers();
    let created = c.create(None, config).await.expect("create");
    c.start(&created.id).await.expect("start");
    let exit = c
        .wait(&created.id, WaitCondition::NotRunning)
        .await
        .expect("wait");
    assert_eq!(exit.status_code, 0);
    c.remove(&created.id, RemoveContainerOptions::default())
        .await
        .expect("remove");
}

async fn cleanup(docker: &Docker) {
    let options = ListContainersOptions {
        all: true,
        filters: Filters::new().label(LABEL),
        ..Default::default()
    };
    for c in docker.containers().list(&options).await.expect("list") {
        let _ = docker
            .containers()
            .remove(
                &c.id,
                RemoveContainerOptions {
                    force: true,
                    volumes: true,
                },
            )
            .await;
    }
}

#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu_ticks: u64,
    /// Precise CPU ms of the main thread (in-process methods only).
    sched_ms: Option<f64>,
}

impl Samples {
    fn stat(&self, q: f64) -> Duration {
        let mut sorted = self.wall.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let short = std::env::var("BERTH_BENCH_SHORT").is_ok_and(|v| v == "1");
    let n: usize = std::env::var("BERTH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short { 3 } else { 30 });
    let tb = berth_testbed::testbed();
    let image = tb.images.busybox.clone();
    let socket: PathBuf = match Endpoint::parse(&tb.docker_host).expect("test bed DOCKER_HOST") {
        Endpoint::Unix(path) => path,
        other => panic!("the benchmark needs a Unix socket, the test bed uses {other}"),
    };
    let tick = 1.0 / clock_ticks_per_second();

    // One thread: all client work (including hyper's connection tasks) is this process's CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let docker = runtime
        .block_on(Docker::from_env())
        .expect("the test bed's daemon");
    let version = docker.api_version().to_string();
    let config = ContainerConfig {
        image: Some(image.clone()),
        cmd: Some(vec!["true".into()]),
        labels: Some([("io.berth.test".to_owned(), "bench-lifecycle".to_owned())].into()),
        ..Default::default()
    };
    runtime.block_on(cleanup(&docker));

    // Warm up every path once (page cache, daemon caches, connection pool).
    runtime.block_on(lifecycle_api(&docker, &config));
    lifecycle_raw(&socket, &version, &image);
    lifecycle_curl(&socket, &version, &image);
    lifecycle_cli(&image);

    let mut samples: [Samples; 4] = Default::default();
    for i in 0..n {
        // Rotate the order so no method always follows the same other one.
        for k in 0..4 {
            let method = (i + k) % 4;
            let before = cpu_ticks();
            let sched_before = sched_ms();
            let started = Instant::now();
            match method {
                0 => runtime.block_on(lifecycle_api(&docker, &config)),
                1 => lifecycle_raw(&socket, &version, &image),
                2 => lifecycle_curl(&socket, &version, &image),
                _ => lifecycle_cli(&image),
            }
            let wall = started.elapsed();
            let after = cpu_ticks();
            let sched_after = sched_ms();
            let s = &mut samples[method];
            if method < 2 {
                if let (Some(a), Some(b)) = (sched_before, sched_after) {
                    s.sched_ms = Some(s.sched_ms.unwrap_or(0.0) + (b - a));
                }
            }
            s.wall.push(wall);
            // In-process methods use this process's CPU; the others their children's.
            s.cpu_ticks += if method < 2 {
                after.0 - before.0
            } else {
                after.1 - before.1
            };
        }
    }
    let [api, raw, curl_s, cli] = samples;

    // Client overhead per request, without container start-up noise: inspect one container,
    // interleaved, through the client and through a kept-alive hand-written connection.
    let probe = runtime
        .block_on(docker.containers().create(None, &config))
        .expect("create the probe container");
    let requests = n * 20;
    let mut keep_alive = KeepAlive::connect(&socket);
    let inspect_path = format!("/v{version}/containers/{}/json", probe.id);
    let (mut api_inspect, mut raw_inspect) = (Samples::default(), Samples::default());
    for i in 0..requests {
        for k in 0..2 {
            let started = Instant::now();
            if (i + k) % 2 == 0 {
                let inspect = runtime
                    .block_on(docker.containers().inspect(&probe.id))
                    .expect("inspect");
                assert_eq!(inspect.id, probe.id);
                api_inspect.wall.push(started.elapsed());
            } else {
                let body = keep_alive.get(&inspect_path);
                let value: serde_json::Value = serde_json::from_slice(&body).expect("inspect JSON");
                assert_eq!(value["Id"].as_str(), Some(probe.id.as_str()));
                raw_inspect.wall.push(started.elapsed());
            }
        }
    }
    let left: Vec<String> = runtime
        .block_on(docker.containers().list(&ListContainersOptions {
            all: true,
            filters: Filters::new().label(LABEL),
            ..Default::default()
        }))
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        left,
        vec![probe.id.clone()],
        "every lifecycle removes its container; only the probe may be left"
    );
    runtime.block_on(cleanup(&docker));

    println!("container lifecycle of `true` (create, start, wait, remove), {n} iterations each, interleaved");
    println!(
        "daemon API {version}, image {image}, socket {}",
        socket.display()
    );
    println!();
    println!(
        "{:<46} {:>10} {:>9} {:>9} {:>15} {:>12}",
        "method", "median ms", "p10 ms", "p90 ms", "CPU ms (stat)", "CPU ms (ns)"
    );
    let rows = [
        ("berth-docker-api", &api),
        ("raw HTTP/1.1 in-process (hand-written)", &raw),
        ("raw HTTP, curl --unix-socket (4 procs)", &curl_s),
        ("docker CLI create/start/wait/rm (4 procs)", &cli),
    ];
    for (name, s) in rows {
        let cpu = s.cpu_ticks as f64 * tick * 1000.0 / n as f64;
        let precise = s
            .sched_ms
            .map_or_else(|| "-".to_owned(), |v| format!("{:.3}", v / n as f64));
        println!(
            "{name:<46} {:>10.2} {:>9.2} {:>9.2} {:>15.2} {:>12}",
            ms(s.stat(0.5)),
            ms(s.stat(0.1)),
            ms(s.stat(0.9)),
            cpu,
            precise
        );
    }
    let ratio = |a: &Samples, b: &Samples| ms(a.stat(0.5)) / ms(b.stat(0.5));
    // Iteration i of every method ran back to back, so pairs share the daemon's load.
    let paired = |a: &Samples, b: &Samples| {
        let mut d: Vec<f64> = a
            .wall
            .iter()
            .zip(&b.wall)
            .map(|(x, y)| ms(*x) - ms(*y))
            .collect();
        d.sort_by(f64::total_cmp);
        d[d.len() / 2]
    };
    println!();
    println!(
        "median paired difference berth-docker-api - raw in-process: {:+.2} ms ({:+.2}% of the raw median)",
        paired(&api, &raw),
        paired(&api, &raw) / ms(raw.stat(0.5)) * 100.0
    );
    println!(
        "wall ratio berth-docker-api / raw in-process : {:.3}",
        ratio(&api, &raw)
    );
    println!(
        "wall ratio berth-docker-api / curl           : {:.3}",
        ratio(&api, &curl_s)
    );
    println!(
        "wall ratio docker CLI / berth-docker-api     : {:.3}",
        ratio(&cli, &api)
    );
    let api_cpu = api.cpu_ticks as f64 * tick * 1000.0 / n as f64;
    println!(
        "client CPU per lifecycle, berth-docker-api: {api_cpu:.2} ms (resolution {:.2} ms: {} ticks of {:.0} ms over {n} lifecycles)",
        tick * 1000.0 / n as f64,
        api.cpu_ticks,
        tick * 1000.0
    );
    println!(
        "peak RSS of this process (all methods): {} KiB",
        peak_rss_kib()
    );
    println!();
    let per_request = ms(api_inspect.stat(0.5)) - ms(raw_inspect.stat(0.5));
    println!("per-request client overhead: GET /containers/{{id}}/json x {requests}, interleaved");
    println!(
        "  berth-docker-api (typed, pooled)             median {:>7.3} ms   p90 {:>7.3} ms",
        ms(api_inspect.stat(0.5)),
        ms(api_inspect.stat(0.9))
    );
    println!(
        "  hand-written, kept-alive, serde_json::Value  median {:>7.3} ms   p90 {:>7.3} ms",
        ms(raw_inspect.stat(0.5)),
        ms(raw_inspect.stat(0.9))
    );
    let overhead = 4.0 * per_request / ms(raw.stat(0.5)) * 100.0;
    println!(
        "  difference: {per_request:+.3} ms per request, {:+.3} ms per 4-request lifecycle = {overhead:+.3}% of the raw lifecycle median",
        4.0 * per_request
    );
    println!();
    println!(
        "target: wall within 2% of raw HTTP, from the client's own per-request cost ({overhead:+.3}%): {}",
        if overhead <= 2.0 { "met" } else { "NOT met" }
    );
    println!(
        "        direct lifecycle medians (dominated by the daemon's variance): {:.3} vs in-process, {:.3} vs curl",
        ratio(&api, &raw),
        ratio(&api, &curl_s)
    );
    let api_cpu = api.sched_ms.map_or(api_cpu, |v| v / n as f64);
    println!(
        "target: client CPU under 2 ms per lifecycle ({api_cpu:.3} ms): {}",
        if api_cpu < 2.0 { "met" } else { "NOT met" }
    );
}
