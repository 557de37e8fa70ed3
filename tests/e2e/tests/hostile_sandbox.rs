//! The container is hostile, and its sandbox is a directory the agent (root) writes and reads.
//! Each test plays an attack from issue 11 with a real busybox container under the real agent:
//! the payload replaces the names the agent's logger writes (`stdout`, `stderr`, `stdout.N`)
//! with links to host files, FIFOs, device nodes, hard links and directories, before and while
//! the agent is killed and restarted.
//!
//! Oracles outside Berth: host files in the test's own directory (never created, never
//! changed), the sandbox as the host sees it (regular files hold the output), and `/health`,
//! which must answer within a second all along, while another container's log keeps flowing.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_e2e::{eventually, remove_test_containers, Agent};

/// Probes `GET /health` every 100 ms with a one-second limit until stopped; counts the probes
/// that failed or took longer.
struct HealthProbe {
    stop: Arc<AtomicBool>,
    probes: Arc<AtomicU64>,
    slow: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthProbe {
    fn start(agent: &Agent) -> HealthProbe {
        let url = format!("{}/health", agent.url);
        let stop = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(AtomicU64::new(0));
        let slow = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = {
            let (stop, probes, slow) = (stop.clone(), probes.clone(), slow.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(1))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = http.get(&url).send().await;
                    let took = t.elapsed();
                    probes.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(r) if r.status() == 200 && took < Duration::from_secs(1) => {}
                        Ok(r) => slow
                            .lock()
                            .unwrap()
                            .push(format!("status {} after {took:?}", r.status())),
                        Err(e) => {
                            // The whole chain: reqwest's message alone hides the cause.
                            let mut why = e.to_string();
                            let mut source = std::error::Error::source(&e);
                            while let Some(s) = source {
                                why.push_str(&format!(": {s}"));
                                source = s.source();
                            }
                            slow.lock().unwrap().push(format!("{why} after {took:?}"))
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        HealthProbe {
            stop,
            probes,
            slow,
            task,
        }
    }

    /// Stops probing; asserts every probe answered 200 within a second, and there were some.
    async fn finish(self, agent: &Agent, during: &str) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let slow = self.slow.lock().unwrap().clone();
        let n = self.probes.load(Ordering::Relaxed);
        assert!(n >= 5, "only {n} health probes {during}");
        assert!(
            slow.is_empty(),
            "/health did not answer within a second {during}: {slow:?} (of {n})\n{}",
            agent.logs()
        );
    }
}

/// A host directory the containers aim at: `existing` with known bytes; `created` must never
/// appear. Root-owned like the host files an attacker wants.
struct HostOracle {
    dir: PathBuf,
}

impl HostOracle {
    fn new(agent: &Agent) -> HostOracle {
        let dir = agent.dir().join("host-oracle");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("existing"), b"host bytes\n").unwrap();
        HostOracle { dir }
    }

    fn existing(&self) -> String {
        self.dir.join("existing").display().to_string()
    }

    fn created(&self) -> String {
        self.dir.join("created").display().to_string()
    }

    fn assert_untouched(&self, agent: &Agent, when: &str) {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["existing"],
            "{when}: the agent created a host file through a container's link\n{}",
            agent.logs()
        );
        assert_eq!(
            std::fs::read(self.dir.join("existing")).unwrap(),
            b"host bytes\n",
            "{when}: the agent wrote into a host file through a container's link"
        );
    }
}

fn sandbox(agent: &Agent, id: &str) -> PathBuf {
    agent.work_dir.join("sandboxes").join(id)
}

/// Lines `tick N` in the host's view of the ticker's stdout (all files, rotated ones too).
fn ticks(sandbox: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(sandbox).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if (name == "stdout" || name.starts_with("stdout.")) && entry.file_type().unwrap().is_file()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            n += text.lines().filter(|l| l.starts_with("tick ")).count();
        }
    }
    n
}

/// Asserts the ticker's log grows within a few seconds (its logger is not stalled).
async fn assert_ticker_flows(agent: &Agent, when: &str) {
    let sb = sandbox(agent, "ticker");
    let before = ticks(&sb);
    eventually(
        Duration::from_secs(10),
        &format!("the ticker's log to grow {when}"),
        || {
            let sb = sb.clone();
            async move { (ticks(&sb) >= before + 5).then_some(()) }
        },
    )
    .await;
}

/// Launches `sh -c <line>`; asserts 200 with the answer and the agent's log otherwise.
async fn launch(agent: &Agent, id: &str, line: &str) {
    let r = agent.launch_shell(id, line).await;
    assert_eq!(r.status, 200, "launch {id}: {r:?}\n{}", agent.logs());
}

const TICKER: &str = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done";

fn is_regular_with_one_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file() && m.nlink() == 1)
}

/// Issue 11, item 1: `rm stdout stderr; ln -s /some/host/path stdout; ln -s /existing/host/file
/// stderr; echo ...`, under both loggers, then the agent is SIGKILLed and restarted while the
/// container keeps its links in place. No host file is created or written, the output goes on in
/// regular sandbox files, `/health` answers within a second, the other container's log flows.
#[tokio::test(flavor = "multi_thread")]
async fn links_to_host_files_in_place_of_stdout_and_stderr_are_never_written_through() {
    for logger in ["sandbox", "logrotate"] {
        let t = format!("e2e-hostile-links-{logger}");
        remove_test_containers(&t).await;
        let mut agent = Agent::start(&t, &["--container-logger", logger]).await;
        let host = HostOracle::new(&agent);
        launch(&agent, "ticker", TICKER).await;
        let probe = HealthProbe::start(&agent);
        // The script, then the links put back whenever the agent takes the names back
        // (until the test says stop), with output all along.
        let attack = format!(
            "cd $MESOS_SANDBOX; sleep 1; rm stdout stderr; ln -s {created} stdout; \
             ln -s {existing} stderr; i=0; while true; do echo out $i; echo err $i >&2; \
             if [ ! -e stop ]; then \
             [ -L stdout ] || {{ rm -rf stdout; ln -s {created} stdout; }}; \
             [ -L stderr ] || {{ rm -rf stderr; ln -s {existing} stderr; }}; fi; \
             i=$((i+1)); sleep 0.1; done",
            created = host.created(),
            existing = host.existing(),
        );
        launch(&agent, "attacker", &attack).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        host.assert_untouched(&agent, "while the container fights for its names");
        assert_ticker_flows(&agent, "during the attack").await;
        probe.finish(&agent, "during the attack").await;

        // The agent dies with the links in place (the container re-plants them every 100 ms).
        agent.sigkill().await;
        let sb = sandbox(&agent, "attacker");
        for name in ["stdout", "stderr"] {
            let p = sb.join(name);
            eventually(
                Duration::from_secs(5),
                "the container to re-plant its link",
                || {
                    let p = p.clone();
                    async move {
                        std::fs::symlink_metadata(&p)
                            .is_ok_and(|m| m.is_symlink())
                            .then_some(())
                    }
                },
            )
            .await;
        }
        agent.restart().await;
        let probe = HealthProbe::start(&agent);
        tokio::time::sleep(Duration::from_secs(3)).await;
        host.assert_untouched(&agent, "after the restart");
        assert_ticker_flows(&agent, "after the restart").await;
        probe.finish(&agent, "after the restart").await;

        // The container stops fighting: its output is back in regular sandbox files (the agent
        // took the names back), and stays there until it ends.
        std::fs::write(sb.join("stop"), b"").unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(agent.kill("attacker", Some(9)).await.status, 200);
        agent.wait("attacker").await;
        host.assert_untouched(&agent, "after the container ended");
        for (name, prefix) in [("stdout", "out "), ("stderr", "err ")] {
            assert!(
                is_regular_with_one_link(&sb.join(name)),
                "{name}\n{}",
                agent.logs()
            );
            let text = std::fs::read_to_string(sb.join(name)).unwrap();
            let lines = text.lines().filter(|l| l.starts_with(prefix)).count();
            assert!(
                lines >= 10,
                "{name} holds {lines} lines: {text:?}\n{}",
                agent.logs()
            );
        }
        let m = agent.get("/metrics/snapshot").await.json();
        let replaced = m["containerizer/logger/names_replaced"].as_f64();
        assert!(
            replaced.is_some_and(|n| n >= 2.0),
            "names_replaced: {replaced:?}"
        );
        assert!(
            agent.logs().contains("the container replaced its log file"),
            "no warning about the replaced names\n{}",
            agent.logs()
        );
        assert_eq!(agent.remove("attacker").await.status, 200);
        remove_test_containers(&t).await;
    }
}

/// Issue 11, item 2: `sleep 2; rm stdout; mkfifo stdout; sleep 3; exit 0` while another
/// container logs: the agent must not open the FIFO (which blocks until a reader comes), so the
/// container's end is reported, `/health` answers within a second all along, and SIGTERM is
/// handled. Then FIFOs left at `stdout` and `stdout.1` by a running container must not hang the
/// next start's recovery.
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_in_place_of_stdout_never_blocks_the_agent() {
    const T: &str = "e2e-hostile-fifo";
    remove_test_containers(T).await;
    let mut agent = Agent::start(
        T,
        &[
            "--container-logger",
            "logrotate",
            "--logrotate-max-size",
            "4096",
        ],
    )
    .await;
    launch(&agent, "ticker", TICKER).await;
    let probe = HealthProbe::start(&agent);
    // The script as it is: no output at all, so at the container's end the old logger
    // found nothing to sync and finished on the runtime thread, reopening `stdout` there.
    let attack = "cd $MESOS_SANDBOX; sleep 2; rm stdout; mkfifo stdout; sleep 3; exit 0";
    launch(&agent, "fifo", attack).await;
    let w = agent.wait("fifo").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}\n{}", agent.logs());
    assert_ticker_flows(&agent, "after the FIFO container ended").await;
    probe
        .finish(&agent, "while a container swapped its stdout for a FIFO")
        .await;

    // A running container keeps FIFOs at stdout and stdout.1 (and writes enough to rotate);
    // the agent is killed and restarted with them in place, then stopped with SIGTERM.
    let keeper = "cd $MESOS_SANDBOX; i=0; while true; do \
                  [ -p stdout ] || { rm -rf stdout; mkfifo stdout; }; \
                  [ -p stdout.1 ] || { rm -rf stdout.1; mkfifo stdout.1; }; \
                  echo line $i; i=$((i+1)); sleep 0.05; done";
    launch(&agent, "keeper", keeper).await;
    let sb = sandbox(&agent, "keeper");
    tokio::time::sleep(Duration::from_secs(3)).await;
    agent.sigkill().await;
    for name in ["stdout", "stdout.1"] {
        let p = sb.join(name);
        eventually(
            Duration::from_secs(5),
            "the container to re-plant its FIFO",
            || {
                let p = p.clone();
                async move {
                    std::fs::symlink_metadata(&p)
                        .is_ok_and(|m| m.file_type().is_fifo())
                        .then_some(())
                }
            },
        )
        .await;
    }
    let started = Instant::now();
    agent.restart().await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the restart took {:?}",
        started.elapsed()
    );
    let probe = HealthProbe::start(&agent);
    assert_ticker_flows(&agent, "after a restart with FIFOs in place").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    probe
        .finish(&agent, "after a restart with FIFOs in place")
        .await;
    let t = Instant::now();
    agent.sigterm().await;
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "SIGTERM took {:?}\n{}",
        t.elapsed(),
        agent.logs()
    );
    agent.restart().await;
    for id in ["keeper", "ticker"] {
        assert_eq!(agent.kill(id, Some(9)).await.status, 200);
        agent.wait(id).await;
        assert_eq!(agent.remove(id).await.status, 200);
    }
    remove_test_containers(T).await;
}

/// The other kinds of names a container can put in place of its log files: a device node
/// (Docker's default capabilities include MKNOD; /dev/null's numbers stand in for a host disk),
/// a hard link to another of its files, a directory holding links to host paths. The agent
/// writes through none: the device stays a device nobody wrote to, the hard link's other name
/// keeps its bytes, nothing on the host changes; the output lands in new regular files.
#[tokio::test(flavor = "multi_thread")]
async fn devices_hard_links_and_directories_in_place_of_log_files_are_replaced() {
    const T: &str = "e2e-hostile-kinds";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--container-logger", "logrotate"]).await;
    let host = HostOracle::new(&agent);
    let probe = HealthProbe::start(&agent);
    let attack = format!(
        "cd $MESOS_SANDBOX; echo mine > keep; echo first; echo first >&2; sleep 1.5; \
         rm stdout stderr; mknod stdout c 1 3; mkdir stderr; ln -s {existing} stderr/x; \
         ln -s / stderr/root; ln keep stdout.1; sleep 2; \
         echo second; echo second >&2; sleep 2; \
         rm -rf stdout; ln keep stdout; sleep 2; echo third; sleep 2",
        existing = host.existing(),
    );
    launch(&agent, "kinds", &attack).await;
    let w = agent.wait("kinds").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}\n{}", agent.logs());
    probe
        .finish(&agent, "while a container planted devices and links")
        .await;
    host.assert_untouched(&agent, "after devices, hard links and directories");
    let sb = sandbox(&agent, "kinds");
    assert_eq!(
        std::fs::read(sb.join("keep")).unwrap(),
        b"mine\n",
        "the agent wrote through a hard link\n{}",
        agent.logs()
    );
    for name in ["stdout", "stderr"] {
        assert!(
            is_regular_with_one_link(&sb.join(name)),
            "{name} is not a regular file with one link\n{}",
            agent.logs()
        );
    }
    let out = std::fs::read_to_string(sb.join("stdout")).unwrap();
    assert!(out.contains("third"), "stdout: {out:?}\n{}", agent.logs());
    let err = std::fs::read_to_string(sb.join("stderr")).unwrap();
    assert!(err.contains("second"), "stderr: {err:?}\n{}", agent.logs());
    // The files API reads the new files and refuses what is not a regular file.
    assert!(agent
        .read_text("/containers/kinds/stdout")
        .await
        .contains("third"));
    assert_eq!(agent.remove("kinds").await.status, 200);
    assert!(!sb.exists(), "REMOVE left the sandbox");
    host.assert_untouched(&agent, "after REMOVE");
    remove_test_containers(T).await;
}

/// A container swaps `stdout` and `stdout.1` between a regular file, a link to an existing host
/// file and a dangling link into the host as fast as it can (thousands of swaps), while it
/// writes enough to rotate every few lines: the agent's opens, renames and removals race it
/// the whole time, and none reaches the host.
#[tokio::test(flavor = "multi_thread")]
async fn a_link_swapped_in_between_two_operations_never_reaches_the_host() {
    const T: &str = "e2e-hostile-race";
    remove_test_containers(T).await;
    let agent = Agent::start(
        T,
        &[
            "--container-logger",
            "logrotate",
            "--logrotate-max-size",
            "4096",
            "--logrotate-max-files",
            "3",
        ],
    )
    .await;
    let host = HostOracle::new(&agent);
    launch(&agent, "ticker", TICKER).await;
    let probe = HealthProbe::start(&agent);
    // One process writes ~40 KiB/s (a rotation every 0.1 s); another swaps names.
    let attack = format!(
        "cd $MESOS_SANDBOX; \
         (while true; do head -c 4000 /dev/zero | tr '\\0' 'x'; echo; sleep 0.1; done) & \
         n=0; end=$(( $(date +%s) + 12 )); while [ $(date +%s) -lt $end ]; do \
           for name in stdout stdout.1; do \
             ln -sf {existing} swap && mv -f swap $name; \
             ln -sf {created} swap && mv -f swap $name; \
             : > swap && mv -f swap $name; \
           done; n=$((n+1)); done; echo $n > swaps; kill %1; exit 0",
        existing = host.existing(),
        created = host.created(),
    );
    launch(&agent, "racer", &attack).await;
    let w = agent.wait("racer").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}\n{}", agent.logs());
    let swaps: u64 = std::fs::read_to_string(sandbox(&agent, "racer").join("swaps"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        swaps >= 200,
        "only {swaps} swap rounds: the race hardly happened"
    );
    host.assert_untouched(&agent, &format!("after {swaps} swap rounds"));
    assert_ticker_flows(&agent, "after the race").await;
    probe.finish(&agent, "during the race").await;
    for id in ["racer", "ticker"] {
        if id == "ticker" {
            assert_eq!(agent.kill(id, Some(9)).await.status, 200);
            agent.wait(id).await;
        }
        assert_eq!(agent.remove(id).await.status, 200);
    }
    host.assert_untouched(&agent, "after REMOVE");
    remove_test_containers(T).await;
}

/// The files API on what a container made: a device node is described, never opened (400); a
/// link out of the sandbox is refused (403); a FIFO never blocks; REMOVE takes a tree nested
/// thousands deep with links to host paths in it, removing the links and not their targets.
#[tokio::test(flavor = "multi_thread")]
async fn the_files_api_and_remove_touch_nothing_a_container_points_at() {
    const T: &str = "e2e-hostile-files";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let host = HostOracle::new(&agent);
    let probe = HealthProbe::start(&agent);
    let line = format!(
        "cd $MESOS_SANDBOX; mknod disk b 8 0; mknod nothing c 511 7; mkfifo fifo; \
         ln -s {existing} out; mkdir -p t; cd t; i=0; while [ $i -lt 3000 ]; do mkdir d; cd d; \
         i=$((i+1)); done; ln -s {dir} host; echo done",
        existing = host.existing(),
        dir = host.dir.display(),
    );
    launch(&agent, "maker", &line).await;
    let w = agent.wait("maker").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}\n{}", agent.logs());
    for name in ["disk", "nothing", "fifo"] {
        let r = agent.read_file(&format!("/containers/maker/{name}")).await;
        assert_eq!(r.status, 400, "{name}: {r:?}");
        assert!(r.body.contains("not a regular file"), "{name}: {r:?}");
        let r = agent
            .get(&format!("/files/download?path=/containers/maker/{name}"))
            .await;
        assert_eq!(r.status, 400, "{name}: {r:?}");
    }
    let r = agent.read_file("/containers/maker/out").await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = agent.get("/files/browse?path=/containers/maker").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(agent.remove("maker").await.status, 200);
    assert!(
        !sandbox(&agent, "maker").exists(),
        "REMOVE left the sandbox"
    );
    host.assert_untouched(&agent, "after REMOVE");
    probe
        .finish(&agent, "while the files API met special files")
        .await;
    remove_test_containers(T).await;
}
