//! SIGKILL of a real agent process in every state of a container (FETCHING, PULLING, MOUNTING,
//! RUNNING, DESTROYING), then recovery by a new agent: nothing half-made, nothing leaked, a
//! destroy in progress finished.
//!
//! FETCHING (a stalled server), PULLING (a throttled registry) and RUNNING last long enough to
//! catch on their own. MOUNTING does not: there the killed agent's engine is the real one with
//! its volume inspect stalled. DESTROYING is a container whose PID 1 ignores SIGTERM, destroyed
//! with a long stop grace.
//!
//! This test binary is its own helper: run with `BERTH_CORE_HELPER` set, it is the agent that
//! gets killed (it launches one container, prints each phase it reaches, and waits forever).
//! Needs the test bed (`cargo xtask testbed up`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use berth_containerizer::engine::{
    ContainerSummary, Inspected, OutputStreamBox, ResourceUpdate, StatsSample, VolumeInfo,
};
use berth_containerizer::mapping::CreateSpec;
use berth_containerizer::termination::messages;
use berth_containerizer::{
    BoxFut, BoxStream, ContainerId, Engine, EngineError, LaunchSpec, OutputChunk, Phase,
    PullProgress, TaskState, Uri, WindowSize,
};
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
    // Like libtest: `cargo test --test sigkill -- destroying` runs the scenarios so named.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for scenario in [
        Scenario::Fetching,
        Scenario::Pulling,
        Scenario::Mounting,
        Scenario::Running,
        Scenario::Destroying,
    ] {
        let name = scenario.name();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
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
    Mounting,
    Running,
    Destroying,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Fetching => "fetching",
            Scenario::Pulling => "pulling",
            Scenario::Mounting => "mounting",
            Scenario::Running => "running",
            Scenario::Destroying => "destroying",
        }
    }
}

/// The real engine with every named-volume inspect stalled forever: a launch that has one
/// stays in MOUNTING (the stage that inspects them) until its agent dies.
struct StalledVolumes(Arc<dyn Engine>);

impl Engine for StalledVolumes {
    fn image_present<'a>(&'a self, image: &'a str) -> BoxFut<'a, Result<bool, EngineError>> {
        self.0.image_present(image)
    }
    fn pull(&self, image: &str) -> BoxStream<'static, Result<PullProgress, EngineError>> {
        self.0.pull(image)
    }
    fn create<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CreateSpec,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        self.0.create(name, spec)
    }
    fn start<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        self.0.start(id)
    }
    fn inspect<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Inspected, EngineError>> {
        self.0.inspect(id)
    }
    fn wait<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<i64, EngineError>> {
        self.0.wait(id)
    }
    fn exec<'a>(
        &'a self,
        id: &'a str,
        exec: &'a berth_containerizer::engine::ExecSpec,
    ) -> BoxFut<'a, Result<berth_containerizer::engine::ExecResult, EngineError>> {
        self.0.exec(id, exec)
    }
    fn kill<'a>(&'a self, id: &'a str, signal: i32) -> BoxFut<'a, Result<(), EngineError>> {
        self.0.kill(id, signal)
    }
    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFut<'a, Result<(), EngineError>> {
        self.0.stop(id, grace)
    }
    fn remove<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        self.0.remove(id)
    }
    fn list_labelled<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFut<'a, Result<Vec<ContainerSummary>, EngineError>> {
        self.0.list_labelled(key)
    }
    fn logs(
        &self,
        id: &str,
        tty: bool,
        since: Option<SystemTime>,
        follow: bool,
    ) -> BoxStream<'static, Result<OutputChunk, EngineError>> {
        self.0.logs(id, tty, since, follow)
    }
    fn attach_output<'a>(
        &'a self,
        id: &'a str,
        tty: bool,
    ) -> BoxFut<'a, Result<OutputStreamBox, EngineError>> {
        self.0.attach_output(id, tty)
    }
    fn stats<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<StatsSample, EngineError>> {
        self.0.stats(id)
    }
    fn processes<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<u64, EngineError>> {
        self.0.processes(id)
    }
    fn update<'a>(
        &'a self,
        id: &'a str,
        update: &'a ResourceUpdate,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        self.0.update(id, update)
    }
    fn resize_tty<'a>(
        &'a self,
        id: &'a str,
        size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        self.0.resize_tty(id, size)
    }
    fn attach_input<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFut<'a, Result<berth_containerizer::engine::InputBox, EngineError>> {
        self.0.attach_input(id)
    }
    fn start_exec<'a>(
        &'a self,
        id: &'a str,
        exec: &'a berth_containerizer::SessionExec,
    ) -> BoxFut<'a, Result<berth_containerizer::StartedExec, EngineError>> {
        self.0.start_exec(id, exec)
    }
    fn exec_state<'a>(
        &'a self,
        exec_id: &'a str,
    ) -> BoxFut<'a, Result<berth_containerizer::ExecState, EngineError>> {
        self.0.exec_state(exec_id)
    }
    fn resize_exec<'a>(
        &'a self,
        exec_id: &'a str,
        size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        self.0.resize_exec(exec_id, size)
    }
    fn volume<'a>(&'a self, _name: &'a str) -> BoxFut<'a, Result<Option<VolumeInfo>, EngineError>> {
        Box::pin(std::future::pending())
    }
}

/// The stop grace of the agent that is killed while destroying: far longer than the test, so
/// only the recovered agent can have finished the destroy.
const DYING_AGENT_GRACE: Duration = Duration::from_secs(600);

/// The agent to be killed: `<scenario>\n<root>\n<spec json>`. It prints `PHASE <phase>` for each
/// phase the container reaches (`PHASE PULLING progress <total bytes>` once bytes arrive) and
/// `LAUNCHED` when its launch returned (the process runs); in the destroying scenario it then
/// destroys the container.
fn helper(job: &str) -> ! {
    let mut parts = job.splitn(3, '\n');
    let (scenario, root, spec) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(r), Some(j)) => (s.to_owned(), r.to_owned(), j.to_owned()),
        _ => panic!("a helper job is scenario, root and spec: {job:?}"),
    };
    let spec: LaunchSpec = serde_json::from_str(&spec).expect("a launch spec");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let root = Path::new(&root);
        let a = match scenario.as_str() {
            "mounting" => {
                Agent::with_engine(
                    TEST,
                    AGENT,
                    root,
                    |_| {},
                    |real| Arc::new(StalledVolumes(real)),
                )
                .await
            }
            "destroying" => {
                Agent::new(TEST, AGENT, root, |c| c.kill_grace = DYING_AGENT_GRACE).await
            }
            _ => Agent::new(TEST, AGENT, root, |_| {}).await,
        };
        a.cz.recover().await.unwrap();
        let id = ContainerId::new("victim").unwrap();
        let cz = a.cz.clone();
        let id2 = id.clone();
        let launch = tokio::spawn(async move { cz.launch(&id2, spec).await });
        let mut last = None;
        let mut launched = false;
        loop {
            if let Ok(s) = a.cz.status(&id) {
                let total = s
                    .pull
                    .as_ref()
                    .filter(|p| p.downloaded > 0)
                    .map(|p| p.download_total);
                let phase = (s.phase, total.is_some());
                if last != Some(phase) {
                    last = Some(phase);
                    match total {
                        Some(total) => println!("PHASE {} progress {total}", s.phase),
                        None => println!("PHASE {}", s.phase),
                    }
                }
                // Once the launch returned, the process runs (RUNNING begins at the create, so
                // the phase alone does not tell).
                if launch.is_finished() && !launched {
                    launched = true;
                    println!("LAUNCHED");
                    if scenario == "destroying" {
                        let (cz, id) = (a.cz.clone(), id.clone());
                        tokio::spawn(async move { cz.destroy(&id).await });
                    }
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

fn spawn_helper(
    scenario: Scenario,
    root: &Path,
    spec: &LaunchSpec,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let job = format!(
        "{}\n{}\n{}",
        scenario.name(),
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

/// Waits for the helper's first line starting with `want`, and returns it.
fn await_line(rx: &std::sync::mpsc::Receiver<String>, want: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let left = limit
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("the helper never printed '{want}'"));
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the helper never printed '{want}'"));
        if line.starts_with(want) {
            return line;
        }
    }
}

/// The names in `dir` that start with the fetcher's staging prefix (its partial downloads).
fn staging_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".berth-fetch-") || n.contains("big.bin"))
                .collect()
        })
        .unwrap_or_default()
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
    let mut proxy = None;
    let mut pulled_image = None;
    // A named volume only the mounting scenario uses; unique to the run, never created.
    let volume = format!("berth-test-sigkill-{}", common::run_id());
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
            let p = berth_testbed::ThrottledProxy::start(tb.registry.parse().unwrap(), 2 << 20);
            let image = format!("{}/{}", p.addr(), tb.images.large);
            // Only an absent image is pulled, and only absent layers move bytes.
            berth_testbed::remove_pulled_copies(&tb.images.large).await;
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = image.clone();
            pulled_image = Some(image);
            proxy = Some(p);
            "PHASE PULLING progress"
        }
        Scenario::Mounting => {
            let _ = docker.volumes().remove(&volume, true).await;
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
                        driver_options: Default::default(),
                    }),
                });
            // And a sandbox directory, which MOUNTING creates before it inspects the volume.
            spec.container
                .as_mut()
                .unwrap()
                .volumes
                .push(berth_containerizer::Volume {
                    container_path: "/data".into(),
                    host_path: Some("vol/inner".into()),
                    mode: berth_containerizer::spec::VolumeMode::Rw,
                    source: None,
                });
            "PHASE MOUNTING"
        }
        Scenario::Running => "LAUNCHED",
        Scenario::Destroying => "PHASE DESTROYING",
    };
    let (mut child, rx) = spawn_helper(scenario, &root, &spec);
    let line = await_line(&rx, wait_for, Duration::from_secs(60));
    // Let the phase's checkpoint land, then SIGKILL.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if scenario == Scenario::Fetching {
        // The check below looks where partial downloads live: here is one.
        assert!(
            staging_entries(&sandbox)
                .iter()
                .any(|n| n.starts_with(".berth-fetch-")),
            "no partial download in the sandbox to leak: {:?}",
            std::fs::read_dir(&sandbox).map(|rd| rd.count())
        );
    }
    if scenario == Scenario::Mounting {
        assert!(
            sandbox.join("vol/inner").is_dir(),
            "MOUNTING made the volume directory before it stalled"
        );
    }
    child.kill().expect("SIGKILL the helper agent");
    child.wait().unwrap();
    // The daemon aborted the pull when the killed agent's connection closed: nothing more comes
    // through the registry's proxy.
    let pulled = match (&pulled_image, &proxy) {
        (Some(image), Some(proxy)) => {
            let total: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("a progress line with the total: {line}"));
            assert!(total > 100 << 20, "the large image's size: {line}");
            let moved = proxy.assert_download_stopped(total).await;
            Some((image.clone(), proxy, moved, proxy.connections()))
        }
        _ => None,
    };

    let b = Agent::new(TEST, AGENT, &root, |_| {}).await;
    let recovered_at = Instant::now();
    let report = b.cz.recover().await.unwrap();
    match scenario {
        Scenario::Fetching | Scenario::Pulling | Scenario::Mounting => {
            assert_eq!(
                report.rolled_back.as_slice(),
                std::slice::from_ref(&id),
                "{scenario:?}: {report:?}"
            );
            let t = b.cz.wait(&id).await.unwrap();
            let doing = match scenario {
                Scenario::Fetching => "fetching",
                Scenario::Pulling => "pulling the image",
                _ => "mounting volumes",
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
        Scenario::Destroying => {
            // Still running (PID 1 ignores the dying agent's SIGTERM): re-attached, and the
            // destroy the checkpoint records is finished with this agent's short grace.
            let t = tokio::time::timeout(Duration::from_secs(30), b.cz.wait(&id))
                .await
                .expect("the recovered agent finishes the destroy")
                .unwrap();
            assert_eq!(
                report.reattached.as_slice(),
                std::slice::from_ref(&id),
                "{report:?} {t:?}"
            );
            assert_eq!(t.state, TaskState::Killed, "{t:?}");
            assert_eq!(t.message, messages::KILLED, "{t:?}");
            let took = recovered_at.elapsed();
            assert!(
                took < DYING_AGENT_GRACE / 10,
                "finished only after {took:?}: by the dead agent's stop, not the recovery"
            );
            let state = docker
                .containers()
                .inspect(&b.name("victim"))
                .await
                .unwrap()
                .state;
            assert!(!state.running, "{state:?}");
            assert_eq!(state.exit_code, 137, "SIGKILLed after the grace: {state:?}");
        }
    }
    assert!(report.orphans.is_empty(), "{report:?}");
    if scenario == Scenario::Fetching {
        let left = staging_entries(&sandbox);
        assert!(left.is_empty(), "partial download left: {left:?}");
    }
    if scenario == Scenario::Mounting {
        // The roll-back removed the directories MOUNTING made.
        assert!(
            !sandbox.join("vol").exists(),
            "a volume directory of the rolled-back launch is left"
        );
        // Docker makes a named volume when it creates the container: none was created.
        let found = docker.volumes().inspect(&volume).await;
        assert!(
            matches!(&found, Err(e) if e.is_not_found()),
            "the volume of a launch rolled back in MOUNTING exists: {found:?}"
        );
    }
    if let Some((image, proxy, moved, connections)) = pulled {
        // The recovered agent rolled the launch back without pulling again.
        assert_eq!(
            (proxy.delivered(), proxy.connections()),
            (moved, connections),
            "the recovered agent went back to the registry"
        );
        let found = docker.images().inspect(&image).await;
        assert!(
            matches!(&found, Err(e) if e.is_not_found()),
            "the pull survived the agent ({moved} bytes moved): {found:?}"
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
