//! SIGKILL of a real agent process mid-launch, in each state that lasts long enough to catch
//! (FETCHING, PULLING, RUNNING), then recovery by a new agent: nothing half-made, nothing leaked.
//!
//! This test binary is its own helper: run with `BERTH_CORE_HELPER` set, it is the agent that
//! gets killed (it launches one container, prints each phase it reaches, and waits forever).
//! Needs the test bed (`cargo xtask testbed up`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_containerizer::{ContainerId, LaunchSpec, Phase, TaskState, Uri};
use berth_docker_api as api;
use common::Agent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEST: &str = "core_sigkill";
const AGENT: &str = "sigkill-agent";
const ENV: &str = "BERTH_CORE_HELPER";

fn main() {
    if let Ok(job) = std::env::var(ENV) {
        helper(&job);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut failed = 0;
    for (name, scenario) in [
        ("fetching", Scenario::Fetching),
        ("pulling", Scenario::Pulling),
        ("running", Scenario::Running),
    ] {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(run(scenario))));
        match result {
            Ok(()) => println!("test sigkill_mid_launch::{name} ... ok"),
            Err(_) => {
                println!("test sigkill_mid_launch::{name} ... FAILED");
                failed += 1;
            }
        }
    }
    rt.block_on(common::cleanup(TEST));
    if failed > 0 {
        eprintln!("{failed} scenario(s) failed");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Fetching,
    Pulling,
    Running,
}

/// The agent to be killed: `<root>\n<spec json>`.
fn helper(job: &str) -> ! {
    let (root, spec) = job.split_once('\n').expect("root and spec");
    let spec: LaunchSpec = serde_json::from_str(spec).expect("a launch spec");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let a = Agent::new(TEST, AGENT, Path::new(root), |_| {}).await;
        a.cz.recover().await.unwrap();
        let id = ContainerId::new("victim").unwrap();
        let cz = a.cz.clone();
        let id2 = id.clone();
        tokio::spawn(async move { cz.launch(&id2, spec).await });
        let mut last = None;
        loop {
            if let Ok(s) = a.cz.status(&id) {
                let progressed = s.pull.as_ref().is_some_and(|p| p.downloaded > 0);
                let phase = (s.phase, progressed);
                if last != Some(phase) {
                    last = Some(phase);
                    println!(
                        "PHASE {} {}",
                        s.phase,
                        if progressed { "progress" } else { "" }
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// A server that sends headers and a little body, then stalls.
async fn stalling_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\npartial")
                    .await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
        }
    });
    addr
}

fn spawn_helper(root: &Path, spec: &LaunchSpec) -> (Child, std::sync::mpsc::Receiver<String>) {
    let job = format!(
        "{}\n{}",
        root.display(),
        serde_json::to_string(spec).unwrap()
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ENV, job)
        // The helper is this run's agent: same agent id, names and labels.
        .env(common::RUN_ENV, common::run_id())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the helper agent starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn await_line(rx: &std::sync::mpsc::Receiver<String>, want: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let left = limit
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("the helper never printed '{want}'"));
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the helper never printed '{want}'"));
        if line.starts_with(want) {
            return;
        }
    }
}

async fn run(scenario: Scenario) {
    common::cleanup(TEST).await;
    let tb = berth_testbed::testbed();
    let root: PathBuf = tempfile::tempdir().unwrap().keep();
    let id = ContainerId::new("victim").unwrap();
    let docker = common::docker().await;
    let sandbox = root.join("sandboxes").join("victim");
    let mut spec = LaunchSpec::docker(
        tb.images.busybox.clone(),
        berth_containerizer::CommandInfo::shell("sleep 1000"),
        &sandbox,
    );
    let mut _lock = None;
    let mut _proxy = None;
    let mut pulled_image = None;
    let wait_for = match scenario {
        Scenario::Fetching => {
            let addr = stalling_server().await;
            spec.command.uris.push(Uri {
                extract: false,
                ..Uri::new(format!("http://{addr}/big.bin"))
            });
            "PHASE FETCHING"
        }
        Scenario::Pulling => {
            _lock = Some(berth_testbed::exclusive("large-image"));
            let proxy = berth_testbed::ThrottledProxy::start(tb.registry.parse().unwrap(), 2 << 20);
            let image = format!("{}/{}", proxy.addr(), tb.images.large);
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
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = image.clone();
            pulled_image = Some(image);
            _proxy = Some(proxy);
            "PHASE PULLING progress"
        }
        Scenario::Running => "PHASE RUNNING",
    };
    let (mut child, rx) = spawn_helper(&root, &spec);
    await_line(&rx, wait_for, Duration::from_secs(60));
    // Let the phase's checkpoint land, then SIGKILL.
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().expect("SIGKILL the helper agent");
    child.wait().unwrap();

    let b = Agent::new(TEST, AGENT, &root, |_| {}).await;
    let report = b.cz.recover().await.unwrap();
    match scenario {
        Scenario::Fetching | Scenario::Pulling => {
            assert_eq!(
                report.rolled_back.as_slice(),
                std::slice::from_ref(&id),
                "{scenario:?}: {report:?}"
            );
            let t = b.cz.wait(&id).await.unwrap();
            let doing = if scenario == Scenario::Fetching {
                "fetching"
            } else {
                "pulling the image"
            };
            assert_eq!(
                t.message,
                format!("Failed to launch container: the agent restarted while {doing}")
            );
            assert_eq!(t.state, TaskState::Failed);
            assert!(
                b.labelled().await.is_empty(),
                "{scenario:?}: a Docker container was made"
            );
        }
        Scenario::Running => {
            assert_eq!(
                report.reattached.as_slice(),
                std::slice::from_ref(&id),
                "{report:?}"
            );
            assert_eq!(b.cz.status(&id).unwrap().phase, Phase::Running);
            let t = b.cz.destroy(&id).await.unwrap();
            assert_eq!(t.state, TaskState::Killed);
        }
    }
    assert!(report.orphans.is_empty(), "{report:?}");
    if scenario == Scenario::Fetching {
        let left: Vec<_> = std::fs::read_dir(&sandbox)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.iter().all(|n| !n.to_string_lossy().contains("big.bin")
                && !n.to_string_lossy().starts_with(".berth-fetch")),
            "partial download left: {left:?}"
        );
    }
    if let Some(image) = pulled_image {
        // The daemon aborted the pull when the killed agent's connection closed.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let found = docker.images().inspect(&image).await;
        assert!(
            matches!(&found, Err(e) if e.is_not_found()),
            "the pull survived the agent: {found:?}"
        );
    }
    b.cz.remove(&id).await.unwrap();
    assert!(
        b.labelled().await.is_empty(),
        "{scenario:?}: containers left after removal"
    );
    assert!(
        berth_containerizer::checkpoint::Store::read_one(&root.join("work"), &id)
            .unwrap()
            .is_none(),
        "checkpoint left after removal"
    );
    let _ = std::fs::remove_dir_all(&root);
}
