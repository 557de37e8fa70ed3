//! `cargo bench -p berth-logger --bench logger` (or `cargo xtask bench logger`): a container writes
//! 512 MiB to stdout; its log is collected into a sandbox by the logger (running in a child
//! process, this binary re-executed, so its peak memory and CPU time can be read) and by
//! `docker logs -f <id> > file`, in the same run. Prints medians, the throughput ratio,
//! byte-exactness, the collector's peak memory (VmHWM) and its CPU time per MiB logged.
//!
//! Three phases:
//! * **live** (the agent's path for a new container): a fresh container per round; the logger
//!   reads its attach stream, attached before the start, while `docker logs -f` follows it side
//!   by side. The throughput ratio is taken here (target >= 1.0).
//! * **replay** (the agent's path after a restart): the container has exited; each collector
//!   reads the whole finished log from Docker's copy (`follow` ends at its end), in turn.
//! * **binary**: random bytes, through the attach stream; the container prints the SHA-256 of
//!   what it wrote to stderr, and the file must match it (exactness on data that is not text).
//!
//! Docker's copy is the `local` driver (the agent's) set to 1 GiB so that it does not rotate
//! mid-read (Docker 20.10 mishandles that for any follower).
//!
//! Environment: `BERTH_LOGGER_BENCH_MIB` (default 512), `BERTH_LOGGER_BENCH_ROUNDS` (default 7;
//! live rounds are at most 3). `BERTH_BENCH_SHORT=1` (CI) makes the defaults 8 MiB and 1 round.
//! Whatever the sizes, a collector's file that is not byte-exact fails the benchmark; the
//! throughput and memory targets are only reported.

#[path = "../tests/docker_support/mod.rs"]
mod docker_support;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_docker_api::LogsOptions;
use berth_logger::{
    ContainerLogSpec, ContainerLogger, DockerLogConfig, LoggerConfig, SandboxLogger,
};
use docker_support::{chunks, consume_until_exit, create, docker, start, wait_exit, Run};

const CHILD_ENV: &str = "BERTH_LOGGER_BENCH_COLLECT";
/// `logger` (the collector on Docker's copy), `attach` (the collector on the attach stream,
/// attached before the start) or `drain-ts` (docker-api stream with timestamps, no files).
const MODE_ENV: &str = "BERTH_LOGGER_BENCH_MODE";
const TEST: &str = "logger-bench";
/// The container prints this 1023-byte word and a newline, over and over.
const WORD_LEN: usize = 1023;

fn word() -> String {
    (0..WORD_LEN)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect()
}

fn main() {
    if let Ok(id) = std::env::var(CHILD_ENV) {
        let sandbox = PathBuf::from(std::env::args().nth(1).expect("sandbox argument"));
        child_collect(&id, &sandbox);
        return;
    }
    let short = std::env::var("BERTH_BENCH_SHORT").is_ok_and(|v| v == "1");
    let mib: u64 = env_or("BERTH_LOGGER_BENCH_MIB", if short { 8 } else { 512 });
    let rounds: usize = env_or("BERTH_LOGGER_BENCH_ROUNDS", if short { 1 } else { 7 });
    let bytes = mib << 20;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let docker = rt.block_on(docker());
    rt.block_on(berth_testbed::remove_test_containers(TEST));
    let work = tempfile::Builder::new()
        .prefix("berth-logger-bench")
        .tempdir()
        .unwrap();
    let script = format!("yes {} | head -c {bytes}", word());
    let log_config = DockerLogConfig::local(1 << 30, 1);

    println!(
        "logger benchmark: {mib} MiB of stdout in {} B lines, {rounds} rounds",
        WORD_LEN + 1
    );

    // Replay phase: one finished container, read by each collector in turn.
    let id = rt.block_on(async {
        let run = Run {
            test: TEST,
            script: &script,
            tty: false,
            env: vec![],
            log_config: log_config.clone(),
        };
        let id = start(&docker, run).await;
        let started = Instant::now();
        assert_eq!(
            wait_exit(&docker, &id).await,
            0,
            "the bench container failed"
        );
        println!(
            "container wrote {mib} MiB in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        id
    });
    // Contestants: the logger; the CLI; and, to show what the daemon itself costs when asked for
    // timestamps (which the logger needs for its checkpoints), the bare docker-api stream with
    // timestamps, writing nothing.
    let mut ours = Vec::new();
    let mut cli = Vec::new();
    let mut api = Vec::new();
    let mut exact = true;
    let mut peak_kib = 0;
    let mut cpu = Vec::new();
    for round in 0..rounds {
        // Rotate who goes first, so page-cache warmth and load drift favour no one.
        let mut order = [Who::Logger, Who::Cli, Who::Api];
        order.rotate_left(round % 3);
        for who in order {
            let dir = work.path().join(format!("r{round}-{who:?}"));
            fs::create_dir(&dir).unwrap();
            match who {
                Who::Logger => {
                    let r = run_child(&id, &dir, "logger");
                    let ok = verify(&dir.join("stdout"), bytes);
                    println!(
                        "  round {round} logger: {:.2} s, {:.0} MiB/s, peak {} KiB, cpu {:.2} s, finish (drain+fsync) {:.3} s, exact {ok}",
                        r.wall.as_secs_f64(),
                        mib_per_s(bytes, r.wall),
                        r.vm_hwm_kib,
                        r.cpu_s,
                        r.finish_s
                    );
                    exact &= ok;
                    peak_kib = peak_kib.max(r.vm_hwm_kib);
                    cpu.push(r.cpu_s);
                    ours.push(r.wall);
                }
                Who::Cli => {
                    let out = dir.join("stdout");
                    let wall = run_cli(&id, &out);
                    let ok = verify(&out, bytes);
                    println!(
                        "  round {round} docker logs -f: {:.2} s, {:.0} MiB/s, exact {ok}",
                        wall.as_secs_f64(),
                        mib_per_s(bytes, wall)
                    );
                    cli.push(wall);
                }
                Who::Api => {
                    let r = run_child(&id, &dir, "drain-ts");
                    println!("  round {round} docker-api stream (timestamps, no files): {:.2} s, {:.0} MiB/s", r.wall.as_secs_f64(), mib_per_s(bytes, r.wall));
                    api.push(r.wall);
                }
            }
            fs::remove_dir_all(&dir).unwrap();
        }
    }
    rt.block_on(berth_testbed::remove_test_containers(TEST));

    // Live phase: a new container per round; the logger on its attach stream (attached before
    // the start, as the agent does), `docker logs -f` following it side by side.
    let mut live_ours = Vec::new();
    let mut live_cli = Vec::new();
    let mut live_exact = true;
    let mut live_peak = 0;
    let mut live_cpu = Vec::new();
    for round in 0..rounds.min(3) {
        let id = rt.block_on(create(
            &docker,
            Run {
                test: TEST,
                script: &script,
                tty: false,
                env: vec![],
                log_config: log_config.clone(),
            },
        ));
        let dir = work.path().join(format!("live-{round}"));
        fs::create_dir(&dir).unwrap();
        let child = spawn_attached(&id, &dir);
        let started = Instant::now();
        rt.block_on(docker.containers().start(&id)).expect("start");
        let cli_out = work.path().join(format!("live-cli-{round}"));
        // Both timed from the container's start: they follow the same writer.
        let cli_thread = std::thread::spawn({
            let (id, out) = (id.clone(), cli_out.clone());
            move || {
                run_cli(&id, &out);
                started.elapsed()
            }
        });
        let r = finish_child(child, started, "attach");
        let cli_wall = cli_thread.join().unwrap();
        let ok = (verify(&dir.join("stdout"), bytes), verify(&cli_out, bytes));
        println!(
            "  live round {round} logger (attach): {:.2} s, {:.0} MiB/s, peak {} KiB, cpu {:.2} s ({:.1} ms/MiB), finish {:.3} s, exact {}; docker logs -f: {:.2} s, {:.0} MiB/s, exact {}",
            r.wall.as_secs_f64(),
            mib_per_s(bytes, r.wall),
            r.vm_hwm_kib,
            r.cpu_s,
            r.cpu_s * 1000.0 / mib as f64,
            r.finish_s,
            ok.0,
            cli_wall.as_secs_f64(),
            mib_per_s(bytes, cli_wall),
            ok.1
        );
        live_exact &= ok.0;
        live_peak = live_peak.max(r.vm_hwm_kib);
        live_cpu.push(r.cpu_s);
        live_ours.push(r.wall);
        live_cli.push(cli_wall);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_file(&cli_out).unwrap();
        rt.block_on(berth_testbed::remove_test_containers(TEST));
    }

    // Binary round: random bytes through the attach stream, checked against the SHA-256 the
    // container computed of what it wrote.
    let bin_mib = mib.min(128);
    let bin_script = format!(
        "head -c {} /dev/urandom > /tmp/x; cat /tmp/x; sha256sum /tmp/x >&2",
        bin_mib << 20
    );
    let id = rt.block_on(create(
        &docker,
        Run {
            test: TEST,
            script: &bin_script,
            tty: false,
            env: vec![],
            log_config: log_config.clone(),
        },
    ));
    let dir = work.path().join("binary");
    fs::create_dir(&dir).unwrap();
    let child = spawn_attached(&id, &dir);
    let started = Instant::now();
    rt.block_on(docker.containers().start(&id)).expect("start");
    let bin = finish_child(child, started, "attach");
    let bin_exact = verify_sha(&dir.join("stdout"), &dir.join("stderr"), bin_mib << 20);
    println!(
        "  binary {bin_mib} MiB of /dev/urandom (attach): {:.2} s, cpu {:.2} s ({:.1} ms/MiB), peak {} KiB, exact {bin_exact}",
        bin.wall.as_secs_f64(),
        bin.cpu_s,
        bin.cpu_s * 1000.0 / bin_mib as f64,
        bin.vm_hwm_kib
    );
    rt.block_on(berth_testbed::remove_test_containers(TEST));

    let (m_ours, m_cli, m_api) = (median(&mut ours), median(&mut cli), median(&mut api));
    let ratio = m_cli.as_secs_f64() / m_ours.as_secs_f64();
    println!();
    println!(
        "replay  logger          median {:.2} s  {:.0} MiB/s",
        m_ours.as_secs_f64(),
        mib_per_s(bytes, m_ours)
    );
    println!(
        "replay  docker logs -f  median {:.2} s  {:.0} MiB/s",
        m_cli.as_secs_f64(),
        mib_per_s(bytes, m_cli)
    );
    println!("replay  docker-api    median {:.2} s  {:.0} MiB/s (stream with timestamps, nothing written)", m_api.as_secs_f64(), mib_per_s(bytes, m_api));
    println!("replay  throughput ratio logger/cli: {ratio:.2}x");
    println!(
        "replay  throughput ratio docker-api-with-timestamps/cli: {:.2}x (the ceiling for a collector that checkpoints Docker timestamps)",
        m_cli.as_secs_f64() / m_api.as_secs_f64()
    );
    println!("replay  byte-exact: {exact}");
    println!(
        "replay  collector peak memory (VmHWM): {peak_kib} KiB = {:.1} MiB (target < 16 MiB)",
        peak_kib as f64 / 1024.0
    );
    let replay_cpu = median_f(&mut cpu);
    println!(
        "replay  collector cpu time median: {replay_cpu:.2} s = {:.1} ms per MiB logged",
        replay_cpu * 1000.0 / mib as f64
    );
    let (l_ours, l_cli) = (median(&mut live_ours), median(&mut live_cli));
    let live_ratio = l_cli.as_secs_f64() / l_ours.as_secs_f64();
    let live_cpu = median_f(&mut live_cpu);
    println!(
        "live    logger (attach) median {:.2} s  {:.0} MiB/s; docker logs -f median {:.2} s  {:.0} MiB/s (both following the writing container)",
        l_ours.as_secs_f64(),
        mib_per_s(bytes, l_ours),
        l_cli.as_secs_f64(),
        mib_per_s(bytes, l_cli)
    );
    println!("live    throughput ratio logger/cli: {live_ratio:.2}x (target >= 1.0)");
    println!(
        "live    collector cpu time median: {live_cpu:.2} s = {:.1} ms per MiB logged (the agent's CPU per MiB)",
        live_cpu * 1000.0 / mib as f64
    );
    println!(
        "live    byte-exact: {live_exact}; collector peak memory {live_peak} KiB = {:.1} MiB (target < 16 MiB)",
        live_peak as f64 / 1024.0
    );
    println!(
        "binary  {bin_mib} MiB random: byte-exact {bin_exact}, cpu {:.1} ms per MiB, peak {} KiB",
        bin.cpu_s * 1000.0 / bin_mib as f64,
        bin.vm_hwm_kib
    );
    let worst_peak = peak_kib.max(live_peak).max(bin.vm_hwm_kib);
    let pass = live_ratio >= 1.0 && exact && live_exact && bin_exact && worst_peak < 16 * 1024;
    println!(
        "result: {}",
        if pass {
            "all targets met"
        } else {
            "TARGET MISSED"
        }
    );
    // A wrong log is a bug, not a missed target: it fails the benchmark (and CI's short run).
    assert!(
        exact && live_exact && bin_exact,
        "the collector's log files are not byte-exact: replay {exact}, live {live_exact}, binary {bin_exact}"
    );
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Logger,
    Cli,
    Api,
}

struct ChildResult {
    wall: Duration,
    vm_hwm_kib: u64,
    cpu_s: f64,
    /// Time spent in `ContainerLog::finish` (drain and fsync), logger mode only.
    finish_s: f64,
}

/// Runs this binary as the collector for container `id` into `sandbox`, timing it from spawn
/// to exit (start-up included, as for the CLI).
fn run_child(id: &str, sandbox: &Path, mode: &str) -> ChildResult {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .arg(sandbox)
        .env(CHILD_ENV, id)
        .env(MODE_ENV, mode)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the collector child");
    let wall = started.elapsed();
    assert!(out.status.success(), "collector failed: {}", out.status);
    parse_child(&out.stdout, wall, mode)
}

/// Starts the attach collector for created container `id` and returns once it is attached.
fn spawn_attached(id: &str, sandbox: &Path) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(sandbox)
        .env(CHILD_ENV, id)
        .env(MODE_ENV, "attach")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the collector child");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "attached", "the collector did not attach");
    child
}

/// Waits for a collector child; its wall time counts from `started`.
fn finish_child(child: std::process::Child, started: Instant, mode: &str) -> ChildResult {
    let out = child.wait_with_output().expect("wait for the collector");
    let wall = started.elapsed();
    assert!(out.status.success(), "collector failed: {}", out.status);
    parse_child(&out.stdout, wall, mode)
}

fn parse_child(stdout: &[u8], wall: Duration, mode: &str) -> ChildResult {
    let text = String::from_utf8_lossy(stdout);
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_else(|| panic!("collector printed no {name}: {text}"))
            .parse()
            .unwrap()
    };
    ChildResult {
        wall,
        vm_hwm_kib: field("vm_hwm_kib") as u64,
        cpu_s: field("cpu_s"),
        finish_s: if mode == "drain-ts" {
            0.0
        } else {
            field("finish_s")
        },
    }
}

/// Whether `out` holds `len` bytes whose SHA-256 is the one `sha256sum` printed into `err`.
fn verify_sha(out: &Path, err: &Path, len: u64) -> bool {
    use sha2::Digest;
    let Ok(mut f) = File::open(out) else {
        return false;
    };
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f, &mut h).unwrap();
    let got = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let want = fs::read_to_string(err).unwrap_or_default();
    n == len && want.split_whitespace().next() == Some(got.as_str())
}

/// `docker logs -f <id> > out`.
fn run_cli(id: &str, out: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new("docker")
        .args(["logs", "-f", id])
        .stdout(File::create(out).unwrap())
        .stderr(Stdio::null())
        .status()
        .expect("run the docker CLI");
    assert!(status.success(), "docker logs failed: {status}");
    started.elapsed()
}

/// The collector: what the containerizer does for one container, in a process of its own.
fn child_collect(id: &str, sandbox: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let docker = docker().await;
        if std::env::var(MODE_ENV).as_deref() == Ok("drain-ts") {
            use futures_util::StreamExt;
            let options = LogsOptions {
                follow: true,
                timestamps: true,
                ..LogsOptions::default()
            };
            let mut frames = docker.containers().logs(id, &options);
            while let Some(frame) = frames.next().await {
                frame.expect("log stream");
            }
            return;
        }
        let logger = SandboxLogger::new(LoggerConfig::new(sandbox.join(".state"))).unwrap();
        let mut log = logger
            .prepare(&ContainerLogSpec::new("bench", sandbox))
            .unwrap();
        if std::env::var(MODE_ENV).as_deref() == Ok("attach") {
            use std::io::Write;
            let attached = docker
                .containers()
                .attach(id, berth_docker_api::AttachOptions::default())
                .await
                .expect("attach");
            drop(attached.input);
            println!("attached");
            std::io::stdout().flush().unwrap();
            log.consume(chunks(attached.output))
                .await
                .expect("the attach stream");
        } else {
            consume_until_exit(&docker, id, &mut log).await;
        }
        let finishing = Instant::now();
        let report = log.finish().await.unwrap();
        println!("finish_s={:.3}", finishing.elapsed().as_secs_f64());
        assert!(report.complete && report.dropped_bytes == 0, "{report:?}");
    });
    drop(rt);
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("0");
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second).
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    println!("vm_hwm_kib={hwm} cpu_s={:.2}", ticks / 100.0);
}

/// Whether `path` holds exactly `bytes` bytes of the container's pattern.
fn verify(path: &Path, bytes: u64) -> bool {
    let line: Vec<u8> = word().into_bytes().into_iter().chain([b'\n']).collect();
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    loop {
        let buf = r.fill_buf().unwrap();
        if buf.is_empty() {
            break;
        }
        for (i, b) in buf.iter().enumerate() {
            if *b != line[((offset + i as u64) % line.len() as u64) as usize] {
                return false;
            }
        }
        let n = buf.len();
        offset += n as u64;
        r.consume(n);
    }
    let _ = r.read(&mut []);
    offset == bytes
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_f(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
