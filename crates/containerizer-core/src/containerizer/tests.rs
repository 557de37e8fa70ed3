//! The containerizer against the in-memory engine: every stage x destroy, races with each
//! stage's completion, kills, failures, deadlines, pulls, recovery and orphans.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::*;
use crate::engine::{EngineError, EngineErrorKind};
use crate::labels;
use crate::spec::{CommandInfo, Uri, Volume, VolumeMode, WindowSize};
use crate::termination::{messages, wait_status, Reason, TaskState};
use crate::testing::{FakeEngine, FakeFetch, FakeLogs, Gates, Life, Op, PullStep};

struct Harness {
    engine: Arc<FakeEngine>,
    fetch: Arc<FakeFetch>,
    logs: Arc<FakeLogs>,
    mount: Arc<Gates>,
    cz: Containerizer,
    dir: Arc<tempfile::TempDir>,
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(crate::AgentId::new("agent-1").unwrap(), dir.join("work"));
    c.remove_delay = Duration::from_secs(365 * 24 * 3600);
    c.retry_backoff = Duration::from_millis(5);
    c.kill_grace = Duration::from_secs(1);
    c.orphans.grace = Duration::from_secs(60);
    c.host_memory = Some(8 << 30);
    c.host_cpus = Some(4.0);
    c
}

impl Harness {
    fn new() -> Harness {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Harness::with(FakeEngine::new(), dir, config)
    }

    fn with(
        engine: Arc<FakeEngine>,
        dir: Arc<tempfile::TempDir>,
        cfg: impl FnOnce(&std::path::Path) -> Config,
    ) -> Harness {
        let fetch = Arc::new(FakeFetch::default());
        let logs = Arc::new(FakeLogs::default());
        let cz = Containerizer::new(cfg(dir.path()), engine.clone(), fetch.clone(), logs.clone())
            .unwrap();
        let mount = Arc::new(Gates::default());
        cz.inner.mount_gate.set(mount.clone()).ok();
        Harness {
            engine,
            fetch,
            logs,
            mount,
            cz,
            dir,
        }
    }

    /// A second containerizer on the same engine and work dir (an agent restart). The first
    /// one's checkpoint journal is closed, as a dead agent's is: it writes nothing more.
    fn restart(&self, cfg: impl FnOnce(&std::path::Path) -> Config) -> Harness {
        let _ = self.cz.inner.store.close();
        Harness::with(self.engine.clone(), self.dir.clone(), cfg)
    }

    fn sandbox(&self, name: &str) -> PathBuf {
        self.dir.path().join("sandboxes").join(name)
    }

    fn spec(&self, name: &str) -> LaunchSpec {
        LaunchSpec::docker(
            "busybox",
            CommandInfo::shell("sleep 1000"),
            self.sandbox(name),
        )
    }

    fn id(name: &str) -> ContainerId {
        ContainerId::new(name).unwrap()
    }

    fn assert_clean(&self) {
        assert_eq!(
            self.cz.illegal_transitions(),
            0,
            "the state machine refused an event"
        );
    }
}

fn rt() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn paused_rt() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn transient(msg: &str) -> EngineError {
    EngineError::new(EngineErrorKind::Transient, msg)
}

/// A COMMAND health check of `sh -c true` with no delay and no grace, every second.
fn health_check(consecutive_failures: u32) -> crate::health::HealthCheck {
    crate::health::HealthCheck {
        delay: Duration::ZERO,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        grace_period: Duration::ZERO,
        consecutive_failures,
        ..crate::health::HealthCheck::new(crate::health::Check::Command(CommandInfo::shell("true")))
    }
}

/// Lets the runtime run every task that can run (the paused clock does not move).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn health_check_kills_after_exactly_consecutive_failures() {
    paused_rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("hc");
        h.engine
            .state
            .lock()
            .unwrap()
            .exec_codes
            .extend([0, 1, 1, 1, 0, 0]);
        let mut spec = h.spec("hc");
        spec.health_check = Some(health_check(3));
        h.cz.launch(&id, spec).await.unwrap();
        let t = tokio::time::timeout(Duration::from_secs(60), h.cz.wait(&id))
            .await
            .expect("killed for its health")
            .unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(t.healthy, Some(false));
        assert!(
            t.message.starts_with(
                "Container killed: unhealthy: COMMAND health check failed 3 consecutive times"
            ),
            "{}",
            t.message
        );
        // One pass, then exactly three failures: the kill came with the third.
        assert_eq!(h.engine.calls(Op::Exec).len(), 4);
        assert_eq!(h.engine.calls(Op::Exec)[0], "d0:sh -c true");
        let health = h.cz.status(&id).unwrap().health.unwrap();
        assert_eq!(health.state, crate::health::HealthState::Unhealthy);
        assert_eq!(health.consecutive_failures, 3);
        assert_eq!((health.checks_passed, health.checks_failed), (1, 3));
        assert!(health.killed);
        settle().await;
        let counts = h.cz.health_counts();
        assert_eq!((counts.passed, counts.failed, counts.killed), (1, 3, 1));
        assert_eq!(counts.checkers, 0, "the checker ended with the container");
        h.assert_clean();
    });
}

#[test]
fn failures_within_the_grace_period_do_not_kill() {
    paused_rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("grace");
        h.engine.state.lock().unwrap().exec_codes.extend([1; 20]);
        let mut spec = h.spec("grace");
        spec.health_check = Some(crate::health::HealthCheck {
            grace_period: Duration::from_millis(5500),
            ..health_check(1)
        });
        h.cz.launch(&id, spec).await.unwrap();
        // Checks at 0..=5 s fail within the grace period: not counted.
        tokio::time::sleep(Duration::from_millis(5200)).await;
        let health = h.cz.status(&id).unwrap().health.unwrap();
        assert_eq!(health.state, crate::health::HealthState::Starting);
        assert_eq!(health.checks_failed, 6);
        assert_eq!(health.consecutive_failures, 0);
        assert_eq!(h.cz.status(&id).unwrap().phase, Phase::Running);
        // The one at 6 s counts, and one is the limit.
        let t = tokio::time::timeout(Duration::from_secs(5), h.cz.wait(&id))
            .await
            .expect("killed after the grace period")
            .unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(h.engine.calls(Op::Exec).len(), 7);
        h.assert_clean();
    });
}

#[test]
fn without_kill_on_unhealthy_the_container_keeps_running_unhealthy() {
    paused_rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("keep");
        h.engine.state.lock().unwrap().exec_codes.extend([1; 10]);
        let mut spec = h.spec("keep");
        spec.health_check = Some(crate::health::HealthCheck {
            kill_on_unhealthy: false,
            ..health_check(2)
        });
        h.cz.launch(&id, spec).await.unwrap();
        tokio::time::sleep(Duration::from_millis(4500)).await;
        let st = h.cz.status(&id).unwrap();
        assert_eq!(st.phase, Phase::Running);
        let health = st.health.unwrap();
        assert_eq!(health.state, crate::health::HealthState::Unhealthy);
        assert_eq!(health.consecutive_failures, 5);
        assert!(!health.killed);
        assert_eq!(h.cz.health_counts().killed, 0);
        h.cz.destroy(&id).await.unwrap();
    });
}

#[test]
fn the_health_checker_ends_when_the_container_stops_and_never_outlives_it() {
    paused_rt().block_on(async {
        let h = Harness::new();
        for (name, end_by_destroy) in [("by-destroy", true), ("by-exit", false)] {
            let id = Harness::id(name);
            let mut spec = h.spec(name);
            spec.health_check = Some(health_check(3));
            h.cz.launch(&id, spec).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2500)).await;
            assert_eq!(h.cz.health_counts().checkers, 1, "{name}");
            let health = h.cz.status(&id).unwrap().health.unwrap();
            assert_eq!(health.state, crate::health::HealthState::Healthy, "{name}");
            if end_by_destroy {
                h.cz.destroy(&id).await.unwrap();
            } else {
                h.engine.exit(&format!("berth-{name}"), 0, false);
                h.cz.wait(&id).await.unwrap();
            }
            settle().await;
            assert_eq!(
                h.cz.health_counts().checkers,
                0,
                "{name}: the checker ended"
            );
            // No check runs after the end, however long the agent goes on.
            let execs = h.engine.calls(Op::Exec).len();
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert_eq!(h.engine.calls(Op::Exec).len(), execs, "{name}");
        }
        // A container without a health check (and no Docker one) gets no checker at all.
        let id = Harness::id("none");
        h.cz.launch(&id, h.spec("none")).await.unwrap();
        settle().await;
        assert_eq!(h.cz.health_counts().checkers, 0);
        assert!(h.cz.status(&id).unwrap().health.is_none());
        h.assert_clean();
    });
}

#[test]
fn a_check_that_hangs_is_a_failure_after_its_timeout() {
    paused_rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("hang");
        h.engine.gates.hold(Op::Exec);
        let mut spec = h.spec("hang");
        spec.health_check = Some(crate::health::HealthCheck {
            timeout: Duration::from_secs(2),
            ..health_check(2)
        });
        h.cz.launch(&id, spec).await.unwrap();
        // Two checks of 2 s each, a second apart: killed after about 5 s.
        let t = tokio::time::timeout(Duration::from_secs(30), h.cz.wait(&id))
            .await
            .expect("a hung check does not hang the checker")
            .unwrap();
        assert_eq!(t.state, TaskState::Killed);
        let health = h.cz.status(&id).unwrap().health.unwrap();
        assert!(
            health
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("did not finish within its timeout of 2s")),
            "{health:?}"
        );
        h.engine.gates.release_all();
        h.assert_clean();
    });
}

#[test]
fn dockers_own_health_is_reported_and_acted_on_only_when_asked() {
    paused_rt().block_on(async {
        let h = Harness::new();
        let docker = |status: &str, streak| crate::engine::DockerHealth {
            status: status.into(),
            failing_streak: streak,
            last_output: Some("out".into()),
            last_exit_code: Some(if streak > 0 { 1 } else { 0 }),
            last_end: None,
        };
        for name in ["reported", "asked"] {
            h.engine
                .state
                .lock()
                .unwrap()
                .docker_health
                .insert(format!("berth-{name}"), docker("starting", 0));
        }
        h.cz.launch(&Harness::id("reported"), h.spec("reported"))
            .await
            .unwrap();
        let mut spec = h.spec("asked");
        spec.health_check = Some(crate::health::HealthCheck::new(
            crate::health::Check::Docker,
        ));
        h.cz.launch(&Harness::id("asked"), spec).await.unwrap();
        for name in ["reported", "asked"] {
            let health = h.cz.status(&Harness::id(name)).unwrap().health.unwrap();
            assert_eq!(health.source, crate::health::HealthSource::Docker);
            assert_eq!(health.state, crate::health::HealthState::Starting);
            h.engine
                .state
                .lock()
                .unwrap()
                .docker_health
                .insert(format!("berth-{name}"), docker("unhealthy", 3));
        }
        // The one that asked is killed at Docker's verdict; the other is only told about it.
        let t = tokio::time::timeout(Duration::from_secs(10), h.cz.wait(&Harness::id("asked")))
            .await
            .expect("killed for Docker's verdict")
            .unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(t.healthy, Some(false));
        assert!(
            t.message.contains(
                "Docker HEALTHCHECK failed 3 consecutive times (last: exited with status 1)"
            ),
            "{}",
            t.message
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        let st = h.cz.status(&Harness::id("reported")).unwrap();
        assert_eq!(st.phase, Phase::Running);
        let health = st.health.unwrap();
        assert_eq!(health.state, crate::health::HealthState::Unhealthy);
        assert_eq!(health.consecutive_failures, 3);
        assert!(!health.killed);
        assert_eq!(h.cz.health_counts().killed, 1);
        // No Berth check ran for either.
        assert!(h.engine.calls(Op::Exec).is_empty());
        h.cz.destroy(&Harness::id("reported")).await.unwrap();
        settle().await;
        assert_eq!(h.cz.health_counts().checkers, 0);
        h.assert_clean();
    });
}

#[test]
fn launch_runs_then_natural_exit_terminates_after_logs_drain() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        assert_eq!(
            h.cz.launch(&id, h.spec("c1")).await.unwrap(),
            Launched::Launched
        );
        let st = h.cz.status(&id).unwrap();
        assert_eq!(st.phase, Phase::Running);
        assert_eq!(st.pid, Some(4242));
        assert_eq!(st.ip_addresses, ["172.17.0.2"]);
        assert_eq!(st.name, "berth-c1");
        assert!(h.cz.containers().contains(&id));
        h.engine.exit("berth-c1", 0, false);
        let t = h.cz.wait(&id).await.unwrap();
        assert_eq!(t.state, TaskState::Finished);
        assert_eq!(t.message, messages::TERMINATED);
        assert_eq!(t.status, Some(0));
        assert!(
            h.logs.drained.lock().unwrap().contains(&id),
            "logs drained before the termination"
        );
        let out = h.logs.output.lock().unwrap()[&id].clone();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].kind, crate::OutputKind::Stdout);
        assert_eq!(out[1].kind, crate::OutputKind::Stderr);
        // The create body carried the mapping: labels, shell command, capped local driver.
        {
            let st = h.engine.state.lock().unwrap();
            let c = st.containers.values().next().unwrap();
            assert_eq!(c.spec.labels[labels::AGENT_ID], "agent-1");
            assert_eq!(c.spec.labels[labels::CONTAINER_ID], "c1");
            assert_eq!(c.spec.cmd, Some(vec!["sleep 1000".to_owned()]));
            assert_eq!(c.spec.host.log_config.as_ref().unwrap().driver, "local");
        }
        assert_eq!(h.cz.terminations_decided(), 1);
        // A second wait and a destroy give the same termination.
        assert_eq!(h.cz.wait(&id).await.unwrap(), t);
        assert_eq!(h.cz.destroy(&id).await.unwrap(), t);
        h.assert_clean();
    });
}

#[test]
fn already_launched_and_not_supported() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        h.cz.launch(&id, h.spec("c1")).await.unwrap();
        assert_eq!(
            h.cz.launch(&id, h.spec("c1")).await.unwrap(),
            Launched::AlreadyLaunched
        );
        let mut mesos = h.spec("c2");
        mesos.container.as_mut().unwrap().kind = crate::spec::ContainerKind::Mesos;
        assert_eq!(
            h.cz.launch(&Harness::id("c2"), mesos).await.unwrap(),
            Launched::NotSupported
        );
        let mut none = h.spec("c3");
        none.container = None;
        assert_eq!(
            h.cz.launch(&Harness::id("c3"), none).await.unwrap(),
            Launched::NotSupported
        );
        assert_eq!(h.cz.containers().len(), 1);
        h.assert_clean();
    });
}

#[test]
fn wait_destroy_and_usage_of_unknown_containers() {
    rt().block_on(async {
        let h = Harness::new();
        let id = ContainerId::random();
        assert!(h.cz.wait(&id).await.is_none());
        assert!(h.cz.destroy(&id).await.is_none());
        assert!(!h.cz.kill(&id, 9).await);
        let e = h.cz.usage(&id).await.unwrap_err();
        assert_eq!(e.to_string(), format!("Unknown container: {id}"));
        assert!(matches!(
            h.cz.status(&id),
            Err(Error::UnknownContainer { .. })
        ));
        assert!(matches!(
            h.cz.remove(&id).await,
            Err(Error::UnknownContainer { .. })
        ));
        assert!(matches!(
            h.cz.update(&id, Resources::default(), Limits::default())
                .await,
            Err(Error::UnknownContainer { .. })
        ));
    });
}

/// Destroy caught in each launch stage: the stage is cancelled, nothing is started, the message
/// is Mesos's, and nothing is left behind.
#[test]
fn destroy_in_each_launch_stage() {
    for (stage, message) in [
        (Op::Fetch, messages::DESTROYED_WHILE_FETCHING),
        (Op::Pull, messages::DESTROYED_WHILE_PULLING),
        (Op::Mount, messages::DESTROYED_WHILE_MOUNTING),
        (Op::Create, messages::KILLED),
        (Op::Start, messages::KILLED),
    ] {
        rt().block_on(async {
            let h = Harness::new();
            let id = Harness::id("c1");
            let mut spec = h.spec("c1");
            spec.command
                .uris
                .push(Uri::new("http://example.invalid/a.txt"));
            spec.container.as_mut().unwrap().volumes.push(Volume {
                container_path: "/data".into(),
                host_path: Some("vol/inner".into()),
                mode: VolumeMode::Rw,
                source: None,
            });
            if stage == Op::Pull {
                spec.container
                    .as_mut()
                    .unwrap()
                    .docker
                    .as_mut()
                    .unwrap()
                    .image = "missing".into();
            }
            let gates: &Gates = match stage {
                Op::Fetch => &h.fetch.gates,
                Op::Mount => &h.mount,
                _ => &h.engine.gates,
            };
            gates.hold(stage);
            let launch = tokio::spawn({
                let cz = h.cz.clone();
                let id = id.clone();
                async move { cz.launch(&id, spec).await }
            });
            gates.entered(stage, 1).await;
            let destroy = tokio::spawn({
                let cz = h.cz.clone();
                let id = id.clone();
                async move { cz.destroy(&id).await }
            });
            tokio::task::yield_now().await;
            gates.release(stage);
            let t = destroy.await.unwrap().unwrap();
            assert_eq!(t.message, message, "{stage:?}");
            // TASK_KILLED in every stage, as Mesos's agent reports a task killed during its
            // launch; before the container exists the reason says so.
            assert_eq!(t.state, TaskState::Killed, "{stage:?}");
            match stage {
                Op::Create | Op::Start => {}
                _ => assert_eq!(t.reason, Some(Reason::TaskKilledDuringLaunch), "{stage:?}"),
            }
            let err = launch.await.unwrap().unwrap_err();
            assert!(
                matches!(err, Error::DestroyedDuringLaunch { .. }),
                "{stage:?}: {err}"
            );
            assert_eq!(err.to_string(), message);
            if stage != Op::Start {
                assert!(
                    h.engine.calls(Op::Start).is_empty(),
                    "{stage:?}: started after destroy"
                );
            }
            assert_eq!(
                h.engine.container_count(),
                0,
                "{stage:?}: Docker container left behind"
            );
            assert!(
                !h.sandbox("c1").join(".fetch.partial").exists(),
                "{stage:?}: partial fetch left"
            );
            assert!(
                !h.sandbox("c1").join("vol").exists(),
                "{stage:?}: volume directory left"
            );
            if stage == Op::Pull {
                for _ in 0..100 {
                    tokio::task::yield_now().await;
                }
                assert_eq!(
                    h.engine
                        .pulls_aborted
                        .load(std::sync::atomic::Ordering::SeqCst),
                    1,
                    "pull aborted in the daemon"
                );
            }
            assert_eq!(h.cz.terminations_decided(), 1);
            h.assert_clean();
        });
    }
}

/// The stage completes in the same instant the destroy arrives (released and destroyed with no
/// scheduling point between): the container is never started, whichever wins.
#[test]
fn destroy_racing_each_stage_completion_never_starts() {
    for stage in [Op::Fetch, Op::Pull, Op::Mount, Op::Create] {
        rt().block_on(async {
            let h = Harness::new();
            let id = Harness::id("c1");
            let mut spec = h.spec("c1");
            spec.command
                .uris
                .push(Uri::new("http://example.invalid/a.txt"));
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = "missing".into();
            let gates: &Gates = match stage {
                Op::Fetch => &h.fetch.gates,
                Op::Mount => &h.mount,
                _ => &h.engine.gates,
            };
            gates.hold(stage);
            let launch = tokio::spawn({
                let cz = h.cz.clone();
                let id = id.clone();
                async move { cz.launch(&id, spec).await }
            });
            gates.entered(stage, 1).await;
            gates.release(stage);
            // No await between the release and the destroy's state change.
            let t = h.cz.destroy(&id).await.unwrap();
            assert!(launch.await.unwrap().is_err());
            assert!(
                h.engine.calls(Op::Start).is_empty(),
                "{stage:?}: started after destroy"
            );
            assert_eq!(h.engine.container_count(), 0);
            assert!(t.status.is_none());
            h.assert_clean();
        });
    }
}

/// Checkpoint writes run beside the Docker calls, but `launch` returns only once the RUNNING
/// checkpoint is on disk: a container it reports is always known to a restarted agent.
#[test]
fn launch_returns_only_after_the_running_checkpoint() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        h.mount.hold(Op::Persist);
        let launch = tokio::spawn({
            let (cz, id, spec) = (h.cz.clone(), id.clone(), h.spec("c1"));
            async move { cz.launch(&id, spec).await }
        });
        while h.engine.calls(Op::Start).is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !launch.is_finished(),
            "launch returned before any checkpoint was written"
        );
        assert!(h.cz.inner.store.load(&id).unwrap().is_none());
        h.mount.release(Op::Persist);
        assert_eq!(launch.await.unwrap().unwrap(), Launched::Launched);
        let rec = h.cz.inner.store.load(&id).unwrap().unwrap();
        assert_eq!(rec.phase, Phase::Running);
        assert!(rec.docker_id.is_some());
        h.assert_clean();
    });
}

#[test]
fn destroy_running_container_stops_it_and_reports_killed() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        h.cz.launch(&id, h.spec("c1")).await.unwrap();
        let t = h.cz.destroy(&id).await.unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(t.message, messages::KILLED);
        assert_eq!(t.status, Some(wait_status(143)));
        assert_eq!(t.exited_with(), Some(143));
        assert_eq!(h.engine.calls(Op::Stop).len(), 1);
        assert!(h.logs.drained.lock().unwrap().contains(&id));
        // Containers are never auto-removed: it exists until the remove delay.
        assert_eq!(h.engine.life("berth-c1"), Some(Life::Exited(143)));
        assert!(matches!(
            h.cz.usage(&id).await,
            Err(Error::BeingDestroyed { .. })
        ));
        h.assert_clean();
    });
}

#[test]
fn destroy_during_a_grace_period_can_be_cut_short_with_sigkill() {
    paused_rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        let mut spec = h.spec("c1");
        spec.kill_grace = Some(Duration::from_secs(600));
        h.cz.launch(&id, spec).await.unwrap();
        let docker_id = h.cz.status(&id).unwrap().docker_id.unwrap();
        h.engine
            .state
            .lock()
            .unwrap()
            .ignores_sigterm
            .insert(docker_id);
        let destroy = tokio::spawn({
            let cz = h.cz.clone();
            let id = id.clone();
            async move { cz.destroy(&id).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.cz.status(&id).unwrap().phase, Phase::Destroying);
        assert!(h.cz.kill(&id, 9).await);
        let t = destroy.await.unwrap().unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(t.exited_with(), Some(137));
        h.assert_clean();
    });
}

#[test]
fn kill_signals_and_a_kill_that_fails_is_retried() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        h.cz.launch(&id, h.spec("c1")).await.unwrap();
        h.engine.fail_next(Op::Kill, transient("connection reset"));
        h.engine.fail_next(Op::Kill, transient("connection reset"));
        assert!(h.cz.kill(&id, 15).await);
        let t = h.cz.wait(&id).await.unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(t.message, messages::KILLED);
        assert_eq!(t.exited_with(), Some(143));
        assert_eq!(h.engine.calls(Op::Kill).len(), 3, "retried until delivered");
        assert!(!h.cz.kill(&id, 15).await, "already terminated");
        h.assert_clean();
    });
}

#[test]
fn a_stop_that_fails_is_retried_until_the_container_is_down() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        h.cz.launch(&id, h.spec("c1")).await.unwrap();
        for _ in 0..3 {
            h.engine.fail_next(Op::Stop, transient("daemon busy"));
        }
        let t = h.cz.destroy(&id).await.unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(h.engine.calls(Op::Stop).len(), 4);
        h.assert_clean();
    });
}

#[test]
fn fetch_and_pull_failures_use_mesos_text() {
    rt().block_on(async {
        let h = Harness::new();
        *h.fetch.failure.lock().unwrap() = Some("some error from fetch".into());
        let id = Harness::id("c1");
        let mut spec = h.spec("c1");
        spec.command
            .uris
            .push(Uri::new("http://example.invalid/a.txt"));
        let err = h.cz.launch(&id, spec).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to launch container: some error from fetch"
        );
        let t = h.cz.wait(&id).await.unwrap();
        assert_eq!(
            t.message,
            "Failed to launch container: some error from fetch"
        );
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(t.reason, Some(Reason::ContainerLaunchFailed));

        let id = Harness::id("c2");
        let mut spec = h.spec("c2");
        spec.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .image = "missing".into();
        h.engine.state.lock().unwrap().pull_scripts.insert(
            "missing:latest".into(),
            vec![PullStep::Fail(EngineError::new(
                EngineErrorKind::Permanent,
                "some error from docker pull",
            ))],
        );
        h.cz.launch(&id, spec).await.unwrap_err();
        let t = h.cz.wait(&id).await.unwrap();
        assert_eq!(
            t.message,
            "Failed to launch container: some error from docker pull"
        );
        assert!(h.engine.calls(Op::Create).is_empty());
        h.assert_clean();
    });
}

#[test]
fn bad_specs_and_logger_settings_fail_the_launch_with_a_termination() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        let mut spec = h.spec("c1");
        spec.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .parameters
            .push(crate::spec::Parameter {
                key: "volumes-from".into(),
                value: "x".into(),
            });
        let err = h.cz.launch(&id, spec).await.unwrap_err().to_string();
        assert!(
            err.starts_with("Failed to launch container: unknown Docker parameter 'volumes-from'"),
            "{err}"
        );
        assert!(h
            .cz
            .wait(&id)
            .await
            .unwrap()
            .message
            .contains("supported parameters"));

        let id = Harness::id("c2");
        let mut spec = h.spec("c2");
        spec.command = spec.command.env("CONTAINER_LOGGER_TYPO", "1");
        let err = h.cz.launch(&id, spec).await.unwrap_err().to_string();
        assert!(err.contains("CONTAINER_LOGGER_TYPO"), "{err}");
        assert!(h.fetch.calls.lock().unwrap().is_empty());
        assert!(h.engine.calls(Op::Create).is_empty());
        h.assert_clean();
    });
}

#[test]
fn create_and_start_failures_roll_back() {
    rt().block_on(async {
        let h = Harness::new();
        h.engine.fail_next(
            Op::Create,
            EngineError::new(EngineErrorKind::Permanent, "invalid mount config"),
        );
        let err =
            h.cz.launch(&Harness::id("c1"), h.spec("c1"))
                .await
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("failed to create container 'berth-c1': invalid mount config"),
            "{err}"
        );
        h.engine.fail_next(
            Op::Start,
            EngineError::new(EngineErrorKind::Permanent, "exec format error"),
        );
        let err =
            h.cz.launch(&Harness::id("c2"), h.spec("c2"))
                .await
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("failed to start container 'berth-c2': exec format error"),
            "{err}"
        );
        assert_eq!(
            h.engine.container_count(),
            0,
            "the created container was removed"
        );
        h.assert_clean();
    });
}

/// Mesos's `TTYInfo.window_size`: set on the running container right after the start; a failed
/// resize does not fail the launch; without a TTY it is a spec error naming the field.
#[test]
fn tty_window_size_is_set_after_the_start() {
    rt().block_on(async {
        let h = Harness::new();
        let tty_spec = |name: &str, size: Option<WindowSize>| {
            let mut spec = h.spec(name);
            let c = spec.container.as_mut().unwrap();
            c.tty_window_size = size;
            c.docker
                .as_mut()
                .unwrap()
                .parameters
                .push(crate::spec::Parameter {
                    key: "tty".into(),
                    value: "true".into(),
                });
            spec
        };
        let size = WindowSize {
            rows: 42,
            columns: 123,
        };
        h.cz.launch(&Harness::id("c1"), tty_spec("c1", Some(size)))
            .await
            .unwrap();
        let resizes = h.engine.state.lock().unwrap().resizes.clone();
        assert_eq!(resizes.len(), 1, "{resizes:?}");
        assert_eq!(resizes[0].1, size);

        // No size asked: no resize.
        h.cz.launch(&Harness::id("c2"), tty_spec("c2", None))
            .await
            .unwrap();
        assert_eq!(h.engine.state.lock().unwrap().resizes.len(), 1);

        h.engine.fail_next(
            Op::Resize,
            EngineError::new(EngineErrorKind::Transient, "connection reset"),
        );
        h.cz.launch(&Harness::id("c3"), tty_spec("c3", Some(size)))
            .await
            .unwrap();
        assert_eq!(
            h.cz.status(&Harness::id("c3")).unwrap().phase,
            Phase::Running
        );

        let mut no_tty = h.spec("c4");
        no_tty.container.as_mut().unwrap().tty_window_size = Some(size);
        let err =
            h.cz.launch(&Harness::id("c4"), no_tty)
                .await
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("field 'container.tty_info.window_size': a window size needs a TTY"),
            "{err}"
        );
        let zero = tty_spec(
            "c5",
            Some(WindowSize {
                rows: 24,
                columns: 0,
            }),
        );
        let err =
            h.cz.launch(&Harness::id("c5"), zero)
                .await
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("field 'container.tty_info.window_size.columns': 0 is out of range"),
            "{err}"
        );
        h.assert_clean();
    });
}

#[test]
fn launch_deadline_bounds_everything_but_the_pull() {
    paused_rt().block_on(async {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let h = Harness::with(FakeEngine::new(), dir, |d| Config { launch_timeout: Duration::from_secs(60), ..config(d) });
        // A slow pull does not count against the launch deadline.
        h.engine.state.lock().unwrap().pull_scripts.insert(
            "slow:latest".into(),
            vec![PullStep::Progress(1), PullStep::Sleep(Duration::from_secs(90)), PullStep::Progress(20)],
        );
        let mut spec = h.spec("c1");
        spec.container.as_mut().unwrap().docker.as_mut().unwrap().image = "slow".into();
        h.cz.launch(&Harness::id("c1"), spec).await.unwrap();
        // A hung create does.
        h.engine.gates.hold(Op::Create);
        let err = h.cz.launch(&Harness::id("c2"), h.spec("c2")).await.unwrap_err().to_string();
        assert_eq!(err, "Failed to launch container: the launch did not finish within 60s (timed out while creating the container)");
        h.engine.gates.release(Op::Create);
        h.assert_clean();
    });
}

/// Issue 13 item 4: a deadline is a deadline. Each pull ends at its deadline, retries
/// included, and the error names the deadline that fired.
#[test]
fn pull_deadlines_inactivity_and_total() {
    paused_rt().block_on(async {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let h = Harness::with(FakeEngine::new(), dir, |d| {
            let mut c = config(d);
            c.pull.inactivity_deadline = Duration::from_secs(120);
            c.pull.total_deadline = Duration::from_secs(300);
            c.pull.retries = 3;
            c.pull.backoff = Duration::from_secs(1);
            c
        });
        let scripts = [
            // Stalls for good after a first byte.
            (
                "stalled:latest",
                vec![
                    PullStep::Progress(1),
                    PullStep::Sleep(Duration::from_secs(3600)),
                ],
            ),
            // Every attempt hangs 100 s without progress, then fails transiently: retries must
            // not reset the inactivity clock (before, 4 attempts took 407 s).
            (
                "flaky:latest",
                vec![
                    PullStep::Sleep(Duration::from_secs(100)),
                    PullStep::Fail(transient("registry 503")),
                ],
            ),
            // Progress every minute, never done: only the total deadline can end it.
            (
                "trickle:latest",
                (1..100)
                    .flat_map(|i| {
                        [
                            PullStep::Progress(i),
                            PullStep::Sleep(Duration::from_secs(60)),
                        ]
                    })
                    .collect(),
            ),
            // Fails fast every time but makes progress first: retried until the retries run
            // out, each attempt's progress resetting the inactivity clock.
            (
                "failing:latest",
                vec![
                    PullStep::Progress(5),
                    PullStep::Sleep(Duration::from_secs(90)),
                    PullStep::Fail(transient("registry 503")),
                ],
            ),
        ];
        for (image, script) in scripts {
            h.engine
                .state
                .lock()
                .unwrap()
                .pull_scripts
                .insert(image.into(), script);
        }
        for (name, image, want, after) in [
            (
                "c1",
                "stalled",
                "pull of image 'stalled:latest' made no progress for 120s and hit its inactivity deadline (the image pull inactivity timeout) (0/1 layers, 1/",
                120,
            ),
            (
                "c2",
                "flaky",
                "pull of image 'flaky:latest' made no progress for 120s and hit its inactivity deadline (the image pull inactivity timeout) after 2 attempts (",
                120,
            ),
            (
                "c3",
                "trickle",
                "pull of image 'trickle:latest' did not finish within its total deadline of 300s (the image pull timeout) (",
                300,
            ),
            (
                "c4",
                "failing",
                "pull of image 'failing:latest' did not finish within its total deadline of 300s (the image pull timeout) after 4 attempts (",
                300,
            ),
        ] {
            let mut spec = h.spec(name);
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = image.into();
            let started = tokio::time::Instant::now();
            let err =
                h.cz.launch(&Harness::id(name), spec)
                    .await
                    .unwrap_err()
                    .to_string();
            let took = started.elapsed();
            assert!(
                err.starts_with(&format!("Failed to launch container: {want}")),
                "{err}"
            );
            assert!(
                took >= Duration::from_secs(after) && took < Duration::from_secs(after + 1),
                "{image}: failed after {took:?}, not at its {after}s deadline"
            );
        }
        assert_eq!(
            h.engine
                .pulls_aborted
                .load(std::sync::atomic::Ordering::SeqCst),
            4,
            "each pull's attempt in flight at its deadline is aborted in the daemon"
        );
        h.assert_clean();
    });
}

#[test]
fn transient_pull_errors_are_retried() {
    paused_rt().block_on(async {
        let h = Harness::new();
        h.engine.fail_next(Op::Pull, transient("registry 503"));
        let mut spec = h.spec("c1");
        spec.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .image = "missing".into();
        h.cz.launch(&Harness::id("c1"), spec).await.unwrap();
        assert_eq!(
            h.engine
                .pulls_started
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        h.assert_clean();
    });
}

#[test]
fn one_pull_per_image_shared_and_aborted_only_when_nobody_waits() {
    rt().block_on(async {
        let h = Harness::new();
        h.engine.gates.hold(Op::Pull);
        let mut launches = Vec::new();
        for name in ["c1", "c2", "c3"] {
            let mut spec = h.spec(name);
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = "shared".into();
            let cz = h.cz.clone();
            let id = Harness::id(name);
            launches.push(tokio::spawn(async move { cz.launch(&id, spec).await }));
        }
        h.engine.gates.entered(Op::Pull, 1).await;
        for name in ["c1", "c2", "c3"] {
            while h.cz.status(&Harness::id(name)).unwrap().phase != Phase::Pulling {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // Past the PULLING checkpoint write and into the shared pull.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            h.engine
                .pulls_started
                .load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one pull for three launches"
        );
        // Destroying one waiter leaves the pull to the others.
        h.cz.destroy(&Harness::id("c1")).await.unwrap();
        assert_eq!(
            h.engine
                .pulls_aborted
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        h.engine.gates.release(Op::Pull);
        let results: Vec<_> = futures_util::future::join_all(launches)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert!(results[0].is_err());
        assert_eq!(results[1].as_ref().unwrap(), &Launched::Launched);
        assert_eq!(results[2].as_ref().unwrap(), &Launched::Launched);

        // Every waiter destroyed: the pull is aborted.
        h.engine.gates.hold(Op::Pull);
        for name in ["c4", "c5"] {
            let mut spec = h.spec(name);
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = "other".into();
            let cz = h.cz.clone();
            let id = Harness::id(name);
            tokio::spawn(async move { cz.launch(&id, spec).await });
        }
        h.engine.gates.entered(Op::Pull, 1).await;
        for name in ["c4", "c5"] {
            while h.cz.status(&Harness::id(name)).unwrap().phase != Phase::Pulling {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            h.engine
                .pulls_started
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        h.cz.destroy(&Harness::id("c4")).await.unwrap();
        assert_eq!(
            h.engine
                .pulls_aborted
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        h.cz.destroy(&Harness::id("c5")).await.unwrap();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            h.engine
                .pulls_aborted
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        h.engine.gates.release(Op::Pull);
        h.assert_clean();
    });
}

#[test]
fn parallel_pulls_are_limited() {
    rt().block_on(async {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let h = Harness::with(FakeEngine::new(), dir, |d| {
            let mut c = config(d);
            c.pull.max_parallel = 1;
            c
        });
        h.engine.gates.hold(Op::Pull);
        let mut launches = Vec::new();
        for (name, image) in [("c1", "a"), ("c2", "b")] {
            let mut spec = h.spec(name);
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = image.into();
            let cz = h.cz.clone();
            let id = Harness::id(name);
            launches.push(tokio::spawn(async move { cz.launch(&id, spec).await }));
        }
        h.engine.gates.entered(Op::Pull, 1).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            h.engine
                .pulls_started
                .load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the second pull waits for a slot"
        );
        h.engine.gates.release(Op::Pull);
        for l in launches {
            l.await.unwrap().unwrap();
        }
        assert_eq!(
            h.engine
                .pulls_started
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
    });
}

#[test]
fn status_shows_pull_progress() {
    rt().block_on(async {
        let h = Harness::new();
        h.engine.state.lock().unwrap().pull_scripts.insert(
            "img:latest".into(),
            vec![
                PullStep::Progress(7),
                PullStep::Sleep(Duration::from_secs(3600)),
            ],
        );
        let mut spec = h.spec("c1");
        spec.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .image = "img".into();
        let id = Harness::id("c1");
        let cz = h.cz.clone();
        let id2 = id.clone();
        tokio::spawn(async move { cz.launch(&id2, spec).await });
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if let Some(p) = h.cz.status(&id).unwrap().pull {
                assert_eq!(p.downloaded, 7);
                break;
            }
        }
        assert_eq!(h.cz.status(&id).unwrap().phase, Phase::Pulling);
        h.cz.destroy(&id).await.unwrap();
    });
}

#[test]
fn oom_is_a_memory_limitation() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        let mut spec = h.spec("c1");
        spec.resources.mem_mb = Some(64.0);
        h.cz.launch(&id, spec).await.unwrap();
        h.engine.exit("berth-c1", 137, true);
        let t = h.cz.wait(&id).await.unwrap();
        assert_eq!(t.reason, Some(Reason::ContainerLimitationMemory));
        assert_eq!(t.state, TaskState::Failed);
        assert!(t
            .limitation
            .as_ref()
            .unwrap()
            .message
            .contains(&(64u64 << 20).to_string()));
        // Exit 137 without OOMKilled is not an OOM.
        let id = Harness::id("c2");
        h.cz.launch(&id, h.spec("c2")).await.unwrap();
        h.engine.exit("berth-c2", 137, false);
        assert_eq!(h.cz.wait(&id).await.unwrap().reason, None);
    });
}

#[test]
fn usage_update_and_remove() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        let mut spec = h.spec("c1");
        spec.resources.cpus = Some(1.0);
        spec.resources.mem_mb = Some(1024.0);
        spec.limits.cpus = Some(crate::Limit::Finite(2.0));
        spec.limits.mem_mb = Some(crate::Limit::Finite(2048.0));
        h.cz.launch(&id, spec).await.unwrap();
        let u = h.cz.usage(&id).await.unwrap();
        assert_eq!((u.cpus_soft_limit, u.cpus_limit), (Some(1.0), Some(2.0)));
        assert_eq!(
            (u.mem_soft_limit_bytes, u.mem_limit_bytes),
            (Some(1 << 30), Some(2 << 30))
        );
        assert_eq!(u.cpus_user_time_secs, Some(1.0));
        assert_eq!(u.mem_rss_bytes, Some(5 << 20));
        assert!(u.timestamp > 1.0e9);

        // Raise, then lower memory: both go to Docker, with the swap limit alongside.
        let res = |mem| Resources {
            cpus: Some(0.5),
            mem_mb: Some(mem),
            ports: vec![],
        };
        h.cz.update(&id, res(512.0), Limits::default())
            .await
            .unwrap();
        h.cz.update(&id, res(128.0), Limits::default())
            .await
            .unwrap();
        let updates = h.engine.state.lock().unwrap().updates.clone();
        assert_eq!(updates.len(), 2);
        assert_eq!(
            (updates[0].1.memory, updates[0].1.memory_swap),
            (Some(512 << 20), Some(512 << 20))
        );
        assert_eq!(
            (updates[1].1.memory, updates[1].1.cpu_shares),
            (Some(128 << 20), Some(512))
        );
        assert_eq!(
            (updates[1].1.cpu_quota, updates[1].1.memory_reservation),
            (Some(-1), Some(-1)),
            "the launch's CPU limit and memory reservation are cleared"
        );
        let u = h.cz.usage(&id).await.unwrap();
        assert_eq!(
            u.mem_limit_bytes,
            Some(128 << 20),
            "usage reports the updated limits"
        );
        assert_eq!(u.mem_soft_limit_bytes, None);
        assert_eq!(
            u.cpus_limit, h.cz.inner.host.cpus,
            "no quota: the host's CPUs"
        );

        assert!(matches!(
            h.cz.remove(&id).await,
            Err(Error::NotTerminated { .. })
        ));
        h.cz.destroy(&id).await.unwrap();
        let e = h.cz.usage(&id).await.unwrap_err();
        assert_eq!(e.to_string(), "Container is being removed: c1");
        let e =
            h.cz.update(&id, res(64.0), Limits::default())
                .await
                .unwrap_err();
        assert!(matches!(e, Error::Terminated { .. }), "{e}");
        assert!(e.to_string().contains("has terminated"), "{e}");
        assert!(h.cz.inner.store.load(&id).unwrap().is_some());
        h.cz.remove(&id).await.unwrap();
        assert!(h.cz.inner.store.load(&id).unwrap().is_none());
        assert_eq!(
            h.logs.forgotten.lock().unwrap().as_slice(),
            std::slice::from_ref(&id)
        );
        assert_eq!(h.engine.container_count(), 0);
        assert!(h.cz.containers().is_empty());
        assert!(h.cz.wait(&id).await.is_none());
        h.assert_clean();
    });
}

#[test]
fn usage_before_running_says_so() {
    rt().block_on(async {
        let h = Harness::new();
        h.engine.gates.hold(Op::Create);
        let id = Harness::id("c1");
        let cz = h.cz.clone();
        let (id2, spec) = (id.clone(), h.spec("c1"));
        tokio::spawn(async move { cz.launch(&id2, spec).await });
        h.engine.gates.entered(Op::Create, 1).await;
        let e = h.cz.usage(&id).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Container c1 has no running process yet (it is RUNNING)"
        );
        h.engine.gates.release(Op::Create);
    });
}

/// Issue 13 item 3: the remove delay removes the Docker container only (Mesos's
/// `--docker_remove_delay`); the termination and the checkpoint stay until `remove`.
#[test]
fn remove_delay_zero_removes_only_the_docker_container() {
    rt().block_on(async {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let h = Harness::with(FakeEngine::new(), dir, |d| Config {
            remove_delay: Duration::ZERO,
            ..config(d)
        });
        let id = Harness::id("c1");
        h.cz.launch(&id, h.spec("c1")).await.unwrap();
        h.cz.destroy(&id).await.unwrap();
        for _ in 0..200 {
            if h.engine.container_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(
            h.engine.container_count(),
            0,
            "the Docker container is removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            h.cz.containers().contains(&id),
            "the container is still known"
        );
        assert_eq!(
            h.cz.wait(&id).await.unwrap().state,
            TaskState::Killed,
            "WAIT still answers"
        );
        assert!(h.cz.terminated_at(&id).is_some());
        assert!(
            h.cz.inner.store.load(&id).unwrap().is_some(),
            "checkpoint kept"
        );
        // A restart keeps it too (and removing the gone Docker container again is no error).
        let h2 = h.restart(|d| Config {
            remove_delay: Duration::ZERO,
            ..config(d)
        });
        let report = h2.cz.recover().await.unwrap();
        assert_eq!(report.terminated, std::slice::from_ref(&id));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(h2.cz.wait(&id).await.unwrap().state, TaskState::Killed);
        h2.cz.remove(&id).await.unwrap();
        assert!(h2.cz.wait(&id).await.is_none());
        assert!(h2.cz.inner.store.load(&id).unwrap().is_none());
        h2.assert_clean();
    });
}

/// Runs `f` on a runtime that is then dropped with every task in flight: the agent's SIGKILL.
fn crash<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) {
    let rt = rt();
    rt.block_on(f());
    drop(rt);
}

#[test]
fn recovery_reattaches_running_and_reports_exited_ones() {
    let h = Harness::new();
    crash(|| async {
        h.cz.launch(&Harness::id("run"), h.spec("run"))
            .await
            .unwrap();
        h.cz.launch(&Harness::id("gone"), h.spec("gone"))
            .await
            .unwrap();
    });
    // While the agent is down, one exits with 3.
    h.engine.exit("berth-gone", 3, false);
    rt().block_on(async {
        let h2 = h.restart(config);
        let report = h2.cz.recover().await.unwrap();
        assert_eq!(report.reattached, [Harness::id("run")]);
        assert_eq!(report.exited_while_down, [Harness::id("gone")]);
        assert!(report.orphans.is_empty());
        let t = h2.cz.wait(&Harness::id("gone")).await.unwrap();
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(
            t.exited_with(),
            Some(3),
            "the real exit status from inspect"
        );
        assert_eq!(t.message, messages::TERMINATED);
        assert_eq!(
            h2.cz.status(&Harness::id("run")).unwrap().phase,
            Phase::Running
        );
        assert!(
            h2.logs
                .resumed
                .lock()
                .unwrap()
                .contains(&Harness::id("run")),
            "the logger resumes"
        );
        h2.engine.exit("berth-run", 0, false);
        let t = h2.cz.wait(&Harness::id("run")).await.unwrap();
        assert_eq!(t.state, TaskState::Finished);
        h2.assert_clean();
    });
}

/// SIGKILL of the agent with a launch held in each stage, then recovery: rolled back, nothing
/// left half-made.
#[test]
fn recovery_rolls_back_launches_caught_in_each_stage() {
    for stage in [Op::Fetch, Op::Pull, Op::Mount, Op::Create, Op::Start] {
        let h = Harness::new();
        crash(|| async {
            let mut spec = h.spec("c1");
            spec.command
                .uris
                .push(Uri::new("http://example.invalid/a.txt"));
            spec.container
                .as_mut()
                .unwrap()
                .docker
                .as_mut()
                .unwrap()
                .image = "missing".into();
            spec.container.as_mut().unwrap().volumes.push(Volume {
                container_path: "/data".into(),
                host_path: Some("vol".into()),
                mode: VolumeMode::Rw,
                source: None,
            });
            let gates: &Gates = match stage {
                Op::Fetch => &h.fetch.gates,
                Op::Mount => &h.mount,
                _ => &h.engine.gates,
            };
            gates.hold(stage);
            let cz = h.cz.clone();
            tokio::spawn(async move { cz.launch(&Harness::id("c1"), spec).await });
            gates.entered(stage, 1).await;
            // Let the checkpoint of this stage land.
            tokio::time::sleep(Duration::from_millis(20)).await;
        });
        h.engine.gates.release_all();
        rt().block_on(async {
            let h2 = h.restart(config);
            let report = h2.cz.recover().await.unwrap();
            assert_eq!(
                report.rolled_back,
                [Harness::id("c1")],
                "{stage:?}: {report:?}"
            );
            let t = h2.cz.wait(&Harness::id("c1")).await.unwrap();
            assert!(
                t.message
                    .starts_with("Failed to launch container: the agent restarted while"),
                "{stage:?}: {}",
                t.message
            );
            assert_eq!(
                h2.engine.container_count(),
                0,
                "{stage:?}: half-made container left"
            );
            if stage == Op::Create || stage == Op::Start || stage == Op::Mount {
                assert!(
                    !h.sandbox("c1").join("vol").exists(),
                    "{stage:?}: volume dir left"
                );
            }
            h2.assert_clean();
        });
    }
}

#[test]
fn recovery_finishes_a_destroy_in_progress_and_keeps_terminations() {
    let h = Harness::new();
    crash(|| async {
        h.cz.launch(&Harness::id("done"), h.spec("done"))
            .await
            .unwrap();
        h.cz.destroy(&Harness::id("done")).await.unwrap();
        h.cz.launch(&Harness::id("dying"), h.spec("dying"))
            .await
            .unwrap();
        h.engine.gates.hold(Op::Stop);
        let cz = h.cz.clone();
        tokio::spawn(async move { cz.destroy(&Harness::id("dying")).await });
        h.engine.gates.entered(Op::Stop, 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    h.engine.gates.release_all();
    rt().block_on(async {
        let h2 = h.restart(config);
        let report = h2.cz.recover().await.unwrap();
        assert_eq!(report.terminated, [Harness::id("done")]);
        assert_eq!(report.reattached, [Harness::id("dying")]);
        let t = h2.cz.wait(&Harness::id("dying")).await.unwrap();
        assert_eq!(t.message, messages::KILLED);
        assert_eq!(t.state, TaskState::Killed);
        let t = h2.cz.wait(&Harness::id("done")).await.unwrap();
        assert_eq!(t.state, TaskState::Killed);
        h2.assert_clean();
    });
}

#[test]
fn recovery_reports_a_vanished_container_as_lost() {
    let h = Harness::new();
    crash(|| async {
        h.cz.launch(&Harness::id("c1"), h.spec("c1")).await.unwrap();
    });
    let docker_id = h
        .engine
        .state
        .lock()
        .unwrap()
        .containers
        .keys()
        .next()
        .unwrap()
        .clone();
    h.engine.state.lock().unwrap().containers.remove(&docker_id);
    rt().block_on(async {
        let h2 = h.restart(config);
        let report = h2.cz.recover().await.unwrap();
        assert_eq!(report.lost, [Harness::id("c1")]);
        let t = h2.cz.wait(&Harness::id("c1")).await.unwrap();
        assert_eq!(t.state, TaskState::Lost);
        assert_eq!(t.status, None);
    });
}

/// Issue 13 item 5: KILL during the launch, then the agent dies after its roll-back removed
/// the Docker container but before the termination was written. Berth removed the container
/// itself: the container was killed, not lost.
#[test]
fn recovery_reports_a_killed_launch_whose_container_is_gone_as_killed() {
    let h = Harness::new();
    crash(|| async {
        h.engine.gates.hold(Op::Start);
        let (cz, spec) = (h.cz.clone(), h.spec("c1"));
        let launch = tokio::spawn(async move { cz.launch(&Harness::id("c1"), spec).await });
        h.engine.gates.entered(Op::Start, 1).await;
        assert!(h.cz.kill(&Harness::id("c1"), 9).await);
        // The checkpoint says DESTROYING, killed, with the Docker id; then the roll-back
        // removes the container and the agent dies before the termination is written.
        h.cz.flush().await;
        drop(launch);
    });
    h.engine.gates.release_all();
    h.engine.state.lock().unwrap().containers.clear();
    rt().block_on(async {
        let h2 = h.restart(config);
        let report = h2.cz.recover().await.unwrap();
        assert_eq!(report.lost, [Harness::id("c1")], "{report:?}");
        let t = h2.cz.wait(&Harness::id("c1")).await.unwrap();
        assert_eq!(t.state, TaskState::Killed, "{t:?}");
        assert_eq!(t.message, messages::KILLED);
        h2.assert_clean();
    });
}

/// Issue 13 item 5: with periodic reconciliation a young orphan gets no timer; a later pass
/// after its grace removes it, and a dry run only reports it.
#[test]
fn periodic_orphan_passes_respect_the_grace_and_the_dry_run() {
    rt().block_on(async {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let h = Harness::with(FakeEngine::new(), dir, |d| {
            let mut c = config(d);
            c.orphans.grace = Duration::from_millis(300);
            c.orphans.reconcile_interval = Duration::from_secs(1);
            c
        });
        h.cz.recover().await.unwrap();
        let me = crate::AgentId::new("agent-1").unwrap();
        let young = h.engine.add_container(
            "berth-late",
            labels::own_labels(&me, &Harness::id("late")),
            Life::Running,
            Duration::ZERO,
        );
        let first = h.cz.reap_orphans().await.unwrap();
        assert!(
            matches!(first[0].action, OrphanAction::Deferred(_)),
            "{first:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            h.engine.life(&young),
            Some(Life::Running),
            "no timer removes it between passes"
        );
        let dry = h.restart(|d| {
            let mut c = config(d);
            c.orphans.grace = Duration::from_millis(300);
            c.orphans.dry_run = true;
            c
        });
        assert_eq!(
            dry.cz.reap_orphans().await.unwrap()[0].action,
            OrphanAction::WouldRemove
        );
        assert_eq!(h.engine.life(&young), Some(Life::Running));
        let later = h.cz.reap_orphans().await.unwrap();
        assert_eq!(later[0].action, OrphanAction::Removed);
        assert_eq!(h.engine.life(&young), None);
    });
}

#[test]
fn orphans_foreign_and_malformed_containers() {
    rt().block_on(async {
        let h = Harness::new();
        let me = crate::AgentId::new("agent-1").unwrap();
        let other = crate::AgentId::new("agent-2").unwrap();
        let hour = Duration::from_secs(3600);
        let old_orphan = h.engine.add_container(
            "berth-orphan",
            labels::own_labels(&me, &Harness::id("orphan")),
            Life::Running,
            hour,
        );
        let young_orphan = h.engine.add_container(
            "berth-young",
            labels::own_labels(&me, &Harness::id("young")),
            Life::Running,
            Duration::ZERO,
        );
        let foreign = h.engine.add_container(
            "berth-x",
            labels::own_labels(&other, &Harness::id("x")),
            Life::Running,
            hour,
        );
        let mut bad = labels::own_labels(&me, &Harness::id("y"));
        bad.insert(labels::CONTAINER_ID.into(), "not/a valid id".into());
        let malformed = h
            .engine
            .add_container("berth-bad", bad, Life::Running, hour);
        let unlabelled =
            h.engine
                .add_container("berth-plain", BTreeMap::new(), Life::Running, hour);
        // A checkpoint written by another agent id is never adopted.
        let rec = crate::checkpoint::Record {
            version: crate::checkpoint::VERSION,
            container_id: Harness::id("x"),
            agent_id: other.clone(),
            name: "berth-x".into(),
            spec: h.spec("x"),
            phase: Phase::Running,
            teardown_from: None,
            docker_id: Some(foreign.clone()),
            killed: false,
            created_dirs: vec![],
            termination: None,
            terminated_at: None,
            kill_deadline: None,
            health: None,
        };
        h.cz.inner
            .store
            .save(&rec, crate::checkpoint::Durability::Durable)
            .await
            .unwrap();

        let report = h.cz.recover().await.unwrap();
        assert_eq!(report.foreign_checkpoints, [Harness::id("x")]);
        assert_eq!(
            report.malformed.as_slice(),
            std::slice::from_ref(&malformed)
        );
        let mut actions: Vec<(String, OrphanAction)> = report
            .orphans
            .iter()
            .map(|o| (o.docker_id.clone(), o.action.clone()))
            .collect();
        actions.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(
            actions.contains(&(old_orphan.clone(), OrphanAction::Removed)),
            "{actions:?}"
        );
        assert!(
            actions.iter().any(|(d, a)| d == &young_orphan
                && matches!(a, OrphanAction::Deferred(w) if *w <= Duration::from_secs(60))),
            "{actions:?}"
        );
        assert_eq!(h.engine.life(&old_orphan), None, "old orphan removed");
        assert_eq!(
            h.engine.life(&young_orphan),
            Some(Life::Running),
            "young orphan waits for its grace"
        );
        for untouched in [&foreign, &malformed, &unlabelled] {
            assert_eq!(h.engine.life(untouched), Some(Life::Running));
        }
        assert!(h.cz.containers().is_empty());
    });
}

#[test]
fn orphan_dry_run_and_disabled_policy_touch_nothing() {
    rt().block_on(async {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let h = Harness::with(FakeEngine::new(), dir, |d| {
            let mut c = config(d);
            c.orphans.dry_run = true;
            c
        });
        let me = crate::AgentId::new("agent-1").unwrap();
        let id = h.engine.add_container(
            "berth-o",
            labels::own_labels(&me, &Harness::id("o")),
            Life::Running,
            Duration::from_secs(3600),
        );
        let report = h.cz.recover().await.unwrap();
        assert_eq!(report.orphans[0].action, OrphanAction::WouldRemove);
        assert_eq!(h.engine.life(&id), Some(Life::Running));
        let h2 = h.restart(|d| {
            let mut c = config(d);
            c.orphans.kill = false;
            c
        });
        assert_eq!(
            h2.cz.reap_orphans().await.unwrap()[0].action,
            OrphanAction::Kept
        );
        assert_eq!(h.engine.life(&id), Some(Life::Running));
        let h3 = h2.restart(config);
        assert_eq!(
            h3.cz.reap_orphans().await.unwrap()[0].action,
            OrphanAction::Removed
        );
        assert_eq!(h.engine.life(&id), None);
    });
}

#[test]
fn two_agents_on_one_engine_leave_each_other_alone() {
    rt().block_on(async {
        let engine = FakeEngine::new();
        let a = Harness::with(
            engine.clone(),
            Arc::new(tempfile::tempdir().unwrap()),
            config,
        );
        let b = Harness::with(
            engine.clone(),
            Arc::new(tempfile::tempdir().unwrap()),
            |d| {
                let mut c = config(d);
                c.agent_id = crate::AgentId::new("agent-2").unwrap();
                c.name_prefix = "berth2".into();
                c
            },
        );
        a.cz.launch(&Harness::id("c1"), a.spec("c1")).await.unwrap();
        b.cz.launch(&Harness::id("c1"), b.spec("c1")).await.unwrap();
        let a2 = a.restart(config);
        let report = a2.cz.recover().await.unwrap();
        assert_eq!(report.reattached, [Harness::id("c1")]);
        assert!(report.orphans.is_empty());
        assert_eq!(b.cz.reap_orphans().await.unwrap(), vec![]);
        assert_eq!(engine.life("berth2-c1"), Some(Life::Running));
        assert_eq!(engine.life("berth-c1"), Some(Life::Running));
    });
}

#[test]
fn checkpoints_follow_the_phases() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        h.engine.gates.hold(Op::Start);
        let cz = h.cz.clone();
        let (id2, spec) = (id.clone(), h.spec("c1"));
        let launch = tokio::spawn(async move { cz.launch(&id2, spec).await });
        h.engine.gates.entered(Op::Start, 1).await;
        // Background writes: the created container's id reaches the file while start runs.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rec = h.cz.inner.store.load(&id).unwrap().unwrap();
        assert_eq!(rec.phase, Phase::Running);
        assert!(
            rec.docker_id.is_some(),
            "the Docker id is checkpointed before start"
        );
        h.engine.gates.release(Op::Start);
        launch.await.unwrap().unwrap();
        h.engine.exit("berth-c1", 0, false);
        h.cz.wait(&id).await.unwrap();
        // The termination is checkpointed right after it is published.
        let mut rec = h.cz.inner.store.load(&id).unwrap().unwrap();
        for _ in 0..500 {
            if rec.termination.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            rec = h.cz.inner.store.load(&id).unwrap().unwrap();
        }
        assert_eq!(rec.termination.unwrap().state, TaskState::Finished);
        assert!(rec.terminated_at.is_some());
    });
}

mod interleavings {
    //! Random interleavings of launch, kill, destroy, exit and stage holds: exactly one
    //! termination per launch, never a start after a destroy, nothing left after removal.

    use super::*;
    use proptest::prelude::*;

    const N: usize = 3;

    #[derive(Debug, Clone)]
    enum Step {
        Launch(usize),
        Kill(usize, i32),
        Destroy(usize),
        Exit(usize, i64),
        Hold(Op),
        Release(Op),
        Pause(u8),
    }

    fn stage() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Fetch),
            Just(Op::Pull),
            Just(Op::Mount),
            Just(Op::Persist),
            Just(Op::Create),
            Just(Op::Start),
            Just(Op::Stop),
            Just(Op::Kill),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0..N).prop_map(Step::Launch),
            2 => ((0..N), prop_oneof![Just(9), Just(15)]).prop_map(|(i, s)| Step::Kill(i, s)),
            2 => (0..N).prop_map(Step::Destroy),
            2 => ((0..N), prop_oneof![Just(0i64), Just(1), Just(137)]).prop_map(|(i, c)| Step::Exit(i, c)),
            2 => stage().prop_map(Step::Hold),
            2 => stage().prop_map(Step::Release),
            3 => (0u8..4).prop_map(Step::Pause),
        ]
    }

    fn gates(h: &Harness, op: Op) -> &Gates {
        match op {
            Op::Fetch => &h.fetch.gates,
            Op::Mount | Op::Persist => &h.mount,
            _ => &h.engine.gates,
        }
    }

    fn release_everything(h: &Harness) {
        h.fetch.gates.release_all();
        h.mount.release_all();
        h.engine.gates.release_all();
    }

    fn run(steps: Vec<Step>) {
        rt().block_on(async {
            let h = Harness::new();
            let name = |i: usize| format!("p{i}");
            let mut launched = [false; N];
            let mut tasks = Vec::new();
            for step in steps {
                match step {
                    Step::Launch(i) if !launched[i] => {
                        launched[i] = true;
                        let mut spec = h.spec(&name(i));
                        spec.command.uris.push(Uri::new("http://example.invalid/a"));
                        // Two containers share an image that must be pulled; one has it.
                        let image = if i == 2 { "busybox" } else { "shared" };
                        spec.container
                            .as_mut()
                            .unwrap()
                            .docker
                            .as_mut()
                            .unwrap()
                            .image = image.into();
                        let (cz, id) = (h.cz.clone(), Harness::id(&name(i)));
                        tasks.push(tokio::spawn(async move {
                            let _ = cz.launch(&id, spec).await;
                        }));
                    }
                    Step::Launch(_) => {}
                    Step::Kill(i, sig) => {
                        let (cz, id, engine) =
                            (h.cz.clone(), Harness::id(&name(i)), h.engine.clone());
                        tasks.push(tokio::spawn(async move {
                            // Marked and applied in the same poll: nothing runs in between.
                            if cz.status(&id).is_ok() {
                                engine
                                    .log
                                    .lock()
                                    .unwrap()
                                    .push((Op::Destroy, format!("berth-{id}")));
                            }
                            cz.kill(&id, sig).await;
                        }));
                    }
                    Step::Destroy(i) => {
                        let (cz, id, engine) =
                            (h.cz.clone(), Harness::id(&name(i)), h.engine.clone());
                        tasks.push(tokio::spawn(async move {
                            if cz.status(&id).is_ok() {
                                engine
                                    .log
                                    .lock()
                                    .unwrap()
                                    .push((Op::Destroy, format!("berth-{id}")));
                            }
                            cz.destroy(&id).await;
                        }));
                    }
                    Step::Exit(i, code) => {
                        h.engine
                            .exit(&format!("berth-{}", name(i)), code, code == 137)
                    }
                    Step::Hold(op) => gates(&h, op).hold(op),
                    Step::Release(op) => gates(&h, op).release(op),
                    Step::Pause(n) => {
                        for _ in 0..n {
                            tokio::task::yield_now().await;
                        }
                        if n == 3 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            }
            // Let everything finish: release all holds, destroy everything launched.
            release_everything(&h);
            // Every spawned call has registered by now.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let mut terminations = Vec::new();
            for i in (0..N).filter(|i| launched[*i]) {
                let id = Harness::id(&name(i));
                let t = tokio::time::timeout(Duration::from_secs(10), h.cz.destroy(&id))
                    .await
                    .expect("destroy finished")
                    .expect("a launched container is known");
                terminations.push((id, t));
            }
            for t in tasks {
                tokio::time::timeout(Duration::from_secs(10), t)
                    .await
                    .expect("task finished")
                    .unwrap();
            }
            assert_eq!(h.cz.illegal_transitions(), 0);
            let count = launched.iter().filter(|l| **l).count();
            assert_eq!(
                h.cz.terminations_decided(),
                count,
                "exactly one termination per launch"
            );
            for (id, t) in &terminations {
                assert_eq!(
                    &h.cz.wait(id).await.unwrap(),
                    t,
                    "every waiter sees the same termination"
                );
            }
            // Never a start after a destroy or kill of the same container.
            let log = h.engine.log.lock().unwrap().clone();
            for (pos, (op, who)) in log.iter().enumerate() {
                if *op == Op::Destroy {
                    let late = log[pos..].iter().any(|(o, w)| *o == Op::Start && w == who);
                    assert!(!late, "{who} was started after a destroy/kill: {log:?}");
                }
            }
            for (id, _) in &terminations {
                h.cz.remove(id).await.unwrap();
            }
            assert_eq!(
                h.engine.container_count(),
                0,
                "Docker containers left behind"
            );
            assert!(h.cz.containers().is_empty());
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn random_interleavings_end_exactly_once_and_never_start_after_destroy(steps in proptest::collection::vec(step(), 1..40)) {
            run(steps);
        }
    }
}

fn fetch_event(index: usize, phase: crate::FetchPhase, done: u64) -> crate::FetchProgress {
    crate::FetchProgress {
        index,
        uri: format!("http://example.invalid/{index}.bin"),
        phase,
        bytes_done: done,
        bytes_total: Some(1000),
        elapsed: Duration::from_secs(2),
    }
}

/// The fetcher's events become the container's status while it fetches: the latest per URI,
/// with rate and ETA; they go away once the launch moves on.
#[test]
fn fetch_progress_shows_in_the_status_while_fetching() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        let mut spec = h.spec("c1");
        spec.command
            .uris
            .push(Uri::new("http://example.invalid/0.bin"));
        spec.command
            .uris
            .push(Uri::new("http://example.invalid/1.bin"));
        *h.fetch.progress.lock().unwrap() = vec![
            fetch_event(0, crate::FetchPhase::Downloading, 100),
            fetch_event(1, crate::FetchPhase::Downloading, 50),
            fetch_event(0, crate::FetchPhase::Downloading, 400),
            fetch_event(1, crate::FetchPhase::Done, 1000),
        ];
        h.fetch.gates.hold(Op::Fetch);
        let launch = tokio::spawn({
            let (cz, id) = (h.cz.clone(), id.clone());
            async move { cz.launch(&id, spec).await }
        });
        h.fetch.gates.entered(Op::Fetch, 1).await;
        let st = h.cz.status(&id).unwrap();
        assert_eq!(st.phase, Phase::Fetching);
        assert_eq!(st.fetch.len(), 2, "{:?}", st.fetch);
        assert_eq!(
            (st.fetch[0].index, st.fetch[0].bytes_done),
            (0, 400),
            "the latest event of URI 0"
        );
        assert_eq!(st.fetch[0].rate(), 200.0);
        assert_eq!(st.fetch[0].eta(), Some(Duration::from_secs(3)));
        assert_eq!(st.fetch[1].phase, crate::FetchPhase::Done);
        assert_eq!(st.fetch[1].eta(), None, "a finished URI has no ETA");
        h.fetch.gates.release(Op::Fetch);
        assert_eq!(launch.await.unwrap().unwrap(), Launched::Launched);
        assert!(h.cz.status(&id).unwrap().fetch.is_empty());
        h.assert_clean();
    });
}

#[test]
fn fetch_progress_is_bounded_and_finished_uris_make_room_first() {
    use super::container::FetchTable;
    let mut t = FetchTable::default();
    let n = FetchTable::LIMIT;
    for i in 0..n {
        let phase = if i == 3 {
            crate::FetchPhase::Done
        } else {
            crate::FetchPhase::Downloading
        };
        t.update(fetch_event(i, phase, i as u64));
    }
    // Full: the finished URI 3 makes room.
    t.update(fetch_event(n, crate::FetchPhase::Downloading, 0));
    let idx: Vec<usize> = t.snapshot().iter().map(|e| e.index).collect();
    assert_eq!(idx.len(), n);
    assert!(!idx.contains(&3) && idx.contains(&n), "{idx:?}");
    // No finished one left: the one quiet for longest (URI 0) goes; updating URI 1 keeps it.
    t.update(fetch_event(1, crate::FetchPhase::Downloading, 5));
    t.update(fetch_event(n + 1, crate::FetchPhase::Downloading, 0));
    let idx: Vec<usize> = t.snapshot().iter().map(|e| e.index).collect();
    assert_eq!(idx.len(), n);
    assert!(
        !idx.contains(&0) && idx.contains(&1) && idx.contains(&(n + 1)),
        "{idx:?}"
    );
    // Sorted by index.
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
}

/// `shutdown` for an agent restart: containers keep running, loggers are stopped (not
/// drained), launches are refused (one in flight returns), every checkpoint is written, and
/// the next start recovers it all.
#[test]
fn shutdown_leaves_containers_running_flushes_checkpoints_and_refuses_launches() {
    let h = Harness::new();
    rt().block_on(async {
        h.cz.launch(&Harness::id("run"), h.spec("run"))
            .await
            .unwrap();
        h.cz.launch(&Harness::id("ended"), h.spec("ended"))
            .await
            .unwrap();
        h.engine.exit("berth-ended", 2, false);
        h.cz.wait(&Harness::id("ended")).await.unwrap();
        let mut spec = h.spec("mid");
        spec.command
            .uris
            .push(Uri::new("http://example.invalid/a.txt"));
        h.fetch.gates.hold(Op::Fetch);
        let mid = tokio::spawn({
            let cz = h.cz.clone();
            async move { cz.launch(&Harness::id("mid"), spec).await }
        });
        h.fetch.gates.entered(Op::Fetch, 1).await;

        let report = h.cz.shutdown().await;
        assert_eq!(report.containers, 3, "{report:?}");
        assert!(report.tasks_ended, "{report:?}");
        assert_eq!(
            (report.checkpoints_written, report.checkpoint_failures),
            (3, 0)
        );
        assert!(matches!(mid.await.unwrap(), Err(Error::ShuttingDown)));
        assert!(matches!(
            h.cz.launch(&Harness::id("late"), h.spec("late")).await,
            Err(Error::ShuttingDown)
        ));
        assert_eq!(h.engine.life("berth-run"), Some(Life::Running));
        assert!(h.logs.stopped.lock().unwrap().contains(&Harness::id("run")));
        assert!(!h.logs.drained.lock().unwrap().contains(&Harness::id("run")));
        let work = h.dir.path().join("work");
        let read = |id| crate::checkpoint::Store::read_one(&work, &Harness::id(id));
        let run = read("run").unwrap().unwrap();
        assert_eq!(run.phase, Phase::Running);
        assert!(run.docker_id.is_some());
        let ended = read("ended").unwrap().unwrap();
        assert_eq!(ended.termination.unwrap().exited_with(), Some(2));
        // Idempotent.
        assert!(h.cz.shutdown().await.tasks_ended);
    });
    h.fetch.gates.release_all();
    rt().block_on(async {
        let h2 = h.restart(config);
        let report = h2.cz.recover().await.unwrap();
        assert_eq!(report.reattached, [Harness::id("run")]);
        assert_eq!(report.terminated, [Harness::id("ended")]);
        assert_eq!(report.rolled_back, [Harness::id("mid")]);
        h2.engine.exit("berth-run", 0, false);
        let t = h2.cz.wait(&Harness::id("run")).await.unwrap();
        assert_eq!(t.state, TaskState::Finished);
        h2.assert_clean();
    });
}

/// A whole life costs at most three durable checkpoint writes (launch accepted, RUNNING with the
/// Docker id, the termination; the first is written in the background and merges into the
/// second when the launch outruns it); the stages between are coalesced lazy writes, and
/// writing what is already on disk is skipped.
#[test]
fn a_lifecycle_writes_three_durable_checkpoints() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("c1");
        let mut spec = h.spec("c1");
        spec.container.as_mut().unwrap().volumes.push(Volume {
            container_path: "/data".into(),
            host_path: Some("vol".into()),
            mode: VolumeMode::Rw,
            source: None,
        });
        h.cz.launch(&id, spec).await.unwrap();
        let (launch_durable, _) = h.cz.checkpoint_writes();
        assert!(
            (1..=2).contains(&launch_durable),
            "{launch_durable} durable writes: accepted and RUNNING, or the two merged"
        );
        let on_disk = h.cz.inner.store.load(&id).unwrap().unwrap();
        assert_eq!(on_disk.phase, Phase::Running);
        assert!(on_disk.docker_id.is_some());
        assert_eq!(on_disk.created_dirs, [h.sandbox("c1").join("vol")]);
        h.engine.exit("berth-c1", 0, false);
        h.cz.wait(&id).await.unwrap();
        // The termination is written right after it is published.
        for _ in 0..100 {
            if h.cz.checkpoint_writes().0 == launch_durable + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (durable, lazy) = h.cz.checkpoint_writes();
        assert_eq!(durable, launch_durable + 1, "plus the termination");
        assert!(lazy <= 4, "{lazy} lazy writes for four intermediate stages");
        // Nothing changed: a flush writes nothing new.
        assert_eq!(h.cz.flush().await.written, 1);
        assert_eq!(h.cz.checkpoint_writes(), (durable, lazy));
        h.assert_clean();
    });
}

/// A launch that fails because another run's Docker container holds the name is resolved by
/// the state machine like any other failure: counted once, before `launch` returns, and the
/// other container is left alone.
#[test]
fn a_name_conflict_is_one_counted_termination() {
    rt().block_on(async {
        let h = Harness::new();
        let theirs = h.engine.add_container(
            "berth-c1",
            BTreeMap::from([(labels::AGENT_ID.to_owned(), "another-run".to_owned())]),
            Life::Running,
            Duration::from_secs(60),
        );
        let err =
            h.cz.launch(&Harness::id("c1"), h.spec("c1"))
                .await
                .unwrap_err()
                .to_string();
        assert!(err.contains("the name is taken"), "{err}");
        assert_eq!(h.cz.terminations_decided(), 1);
        let t = h.cz.wait(&Harness::id("c1")).await.unwrap();
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(
            h.cz.terminations_decided(),
            1,
            "waiting decides nothing new"
        );
        assert_eq!(
            h.engine.life(&theirs),
            Some(Life::Running),
            "theirs untouched"
        );
        h.assert_clean();
    });
}

/// Every termination is counted before anyone can see it: whenever a `destroy` returns, the
/// count already includes its container, however the destroys interleave.
#[test]
fn terminations_are_counted_before_they_are_seen() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = Harness::new();
        let n = 40;
        for i in 0..n {
            let id = Harness::id(&format!("c{i}"));
            h.cz.launch(&id, h.spec(&format!("c{i}"))).await.unwrap();
        }
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..n {
            let (cz, seen) = (h.cz.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                cz.destroy(&Harness::id(&format!("c{i}"))).await.unwrap();
                let seen_now = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                assert!(
                    cz.terminations_decided() >= seen_now,
                    "{seen_now} terminations seen, {} counted",
                    cz.terminations_decided()
                );
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(h.cz.terminations_decided(), n);
        h.assert_clean();
    });
}

/// A sandbox-relative volume whose path goes through a symbolic link in the sandbox (a fetched
/// archive can hold one): the directory is not created through it on the host, and the launch
/// fails naming the link instead of binding whatever it points at.
#[test]
fn a_volume_path_through_a_link_in_the_sandbox_is_refused() {
    rt().block_on(async {
        let h = Harness::new();
        let host = tempfile::tempdir().unwrap();
        for (name, target) in [("c1", "cache"), ("c2", "cache/dir")] {
            let id = Harness::id(name);
            let sandbox = h.sandbox(name);
            std::fs::create_dir_all(&sandbox).unwrap();
            std::os::unix::fs::symlink(host.path(), sandbox.join("cache")).unwrap();
            let mut spec = h.spec(name);
            spec.container.as_mut().unwrap().volumes.push(Volume {
                container_path: "/data".into(),
                host_path: Some(target.into()),
                mode: VolumeMode::Rw,
                source: None,
            });
            let _ = h.cz.launch(&id, spec).await;
            let t = h.cz.wait(&id).await.unwrap();
            assert!(t.message.contains("symbolic link"), "{name}: {}", t.message);
            assert_eq!(
                h.engine.container_count(),
                0,
                "{name}: a container was made"
            );
            assert_eq!(
                std::fs::read_dir(host.path()).unwrap().count(),
                0,
                "{name}: a directory was created through the link"
            );
        }
    });
}

/// Issue 11 item 8: a graceful kill outlives the agent. The intent is durable before the call
/// returns; after a restart SIGKILL comes at the deadline, or at once when the deadline passed
/// while the agent was down, and the container ends KILLED. (The in-memory engine stands in for
/// a dead agent whose tasks stopped; the e2e test `hostile_caller::graceful_kill_survives_an_agent_sigkill`
/// plays it with the real daemon.)
#[test]
fn a_graceful_kill_survives_an_agent_restart() {
    rt().block_on(async {
        let h = Harness::new();
        let (slow, late) = (Harness::id("slow"), Harness::id("late"));
        for id in [&slow, &late] {
            h.cz.launch(id, h.spec(id.as_str())).await.unwrap();
            let docker_id = h.cz.status(id).unwrap().docker_id.unwrap();
            h.engine
                .state
                .lock()
                .unwrap()
                .ignores_sigterm
                .insert(docker_id);
        }
        let asked = std::time::Instant::now();
        assert!(
            h.cz.kill_gracefully(&slow, 15, Duration::from_millis(600))
                .await
        );
        assert!(
            h.cz.kill_gracefully(&late, 15, Duration::from_millis(50))
                .await
        );
        let on_disk = Store::read(&h.dir.path().join("work")).unwrap();
        for r in &on_disk.records {
            let d = r
                .kill_deadline
                .expect("the intent is checkpointed before the answer");
            assert_eq!(d.signal, 15);
            assert!(r.killed);
        }
        // Both SIGTERMs reach the daemon and their delivery is recorded (lazily).
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(h.engine.calls(Op::Kill).len(), 2);
        // The agent dies: none of its tasks sends anything more.
        h.cz.inner.stopping.cancel();
        tokio::time::sleep(Duration::from_millis(150)).await;
        for id in [&slow, &late] {
            assert_eq!(h.engine.life(&format!("berth-{id}")), Some(Life::Running));
        }
        let h2 = h.restart(config);
        h2.cz.recover().await.unwrap();
        let t = tokio::time::timeout(Duration::from_millis(500), h2.cz.wait(&late))
            .await
            .expect("the passed deadline is honoured at once")
            .unwrap();
        assert_eq!((t.state, t.exited_with()), (TaskState::Killed, Some(137)));
        assert_eq!(
            h2.engine.life("berth-slow"),
            Some(Life::Running),
            "not before its deadline"
        );
        let t = tokio::time::timeout(Duration::from_secs(2), h2.cz.wait(&slow))
            .await
            .expect("SIGKILL at the deadline")
            .unwrap();
        assert!(asked.elapsed() >= Duration::from_millis(600));
        assert_eq!((t.state, t.exited_with()), (TaskState::Killed, Some(137)));
        let rec = h2.cz.inner.store.load(&slow).unwrap().unwrap();
        assert_eq!(rec.kill_deadline, None, "done with once terminated");
        let kills = h2.engine.calls(Op::Kill);
        assert_eq!(
            kills.iter().filter(|k| k.ends_with(":15")).count(),
            2,
            "a delivered first signal is not sent again: {kills:?}"
        );
        h2.assert_clean();
    });
}

/// A caller repeating KILL with a grace (sooner or later deadlines) cannot pile up timers or
/// postpone the first deadline: one waiting task per container.
#[test]
fn repeated_graceful_kills_keep_one_timer_and_the_soonest_deadline() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("spam");
        h.cz.launch(&id, h.spec("spam")).await.unwrap();
        let docker_id = h.cz.status(&id).unwrap().docker_id.unwrap();
        h.engine
            .state
            .lock()
            .unwrap()
            .ignores_sigterm
            .insert(docker_id);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = h.cz.inner.tasks.len();
        let asked = std::time::Instant::now();
        for i in 0..200u64 {
            // Alternately sooner and later than everything before.
            let grace = if i % 2 == 0 {
                Duration::from_millis(2_000 - i)
            } else {
                Duration::from_secs(3600)
            };
            assert!(h.cz.kill_gracefully(&id, 15, grace).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            h.cz.inner.tasks.len() <= before + 1,
            "{} tasks before, {} after",
            before,
            h.cz.inner.tasks.len()
        );
        let t = tokio::time::timeout(Duration::from_secs(4), h.cz.wait(&id))
            .await
            .expect("SIGKILL at the soonest deadline, not an hour later")
            .unwrap();
        assert!(asked.elapsed() >= Duration::from_millis(1_800));
        assert_eq!((t.state, t.exited_with()), (TaskState::Killed, Some(137)));
        h.assert_clean();
    });
}

/// Issue 11 item 8, the narrow case: the agent dies after the intent is durable but before the
/// first signal reached the daemon. The restarted agent sends it (the process gets its warning),
/// then SIGKILL at the deadline; the end is KILLED.
#[test]
fn a_graceful_kills_first_signal_is_resent_if_the_agent_died_before_it() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("warned");
        h.cz.launch(&id, h.spec("warned")).await.unwrap();
        let docker_id = h.cz.status(&id).unwrap().docker_id.unwrap();
        h.engine
            .state
            .lock()
            .unwrap()
            .ignores_sigterm
            .insert(docker_id.clone());
        h.engine.gates.hold(Op::Kill);
        let asked = std::time::Instant::now();
        assert!(
            h.cz.kill_gracefully(&id, 15, Duration::from_millis(700))
                .await
        );
        h.engine.gates.entered(Op::Kill, 1).await;
        let rec = h.cz.inner.store.load(&id).unwrap().unwrap();
        let d = rec.kill_deadline.expect("durable before the signal");
        assert!(!d.delivered);
        // The agent dies with the SIGTERM still on its way.
        h.cz.inner.stopping.cancel();
        tokio::time::sleep(Duration::from_millis(20)).await;
        h.engine.gates.release_all();
        assert!(h.engine.calls(Op::Kill).is_empty(), "nothing was delivered");
        let h2 = h.restart(config);
        h2.cz.recover().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            h2.engine.calls(Op::Kill),
            [format!("{docker_id}:15")],
            "the first signal is sent again, and SIGKILL waits for the deadline"
        );
        let rec = h2.cz.inner.store.load(&id).unwrap().unwrap();
        assert!(
            rec.kill_deadline.unwrap().delivered,
            "its delivery recorded"
        );
        let t = tokio::time::timeout(Duration::from_secs(2), h2.cz.wait(&id))
            .await
            .expect("SIGKILL at the deadline")
            .unwrap();
        assert!(asked.elapsed() >= Duration::from_millis(700));
        assert_eq!((t.state, t.exited_with()), (TaskState::Killed, Some(137)));
        assert_eq!(
            h2.engine.calls(Op::Kill),
            [format!("{docker_id}:15"), format!("{docker_id}:9")]
        );
        h2.assert_clean();
    });
}

/// Issue 11 item 5: existing named volumes. One this agent's launches made (its label) with
/// options the policy allows may be attached again; the operator's (or one made before options
/// were checked, binding a host path) needs `--allowed-volume`.
#[test]
fn existing_volumes_need_this_agents_label_or_the_operator() {
    rt().block_on(async {
        let volume = |name: &str| Volume {
            container_path: "/v".into(),
            host_path: None,
            mode: VolumeMode::Rw,
            source: Some(crate::spec::VolumeSource::DockerVolume {
                name: name.into(),
                driver: None,
                driver_options: BTreeMap::new(),
            }),
        };
        let ours = BTreeMap::from([(labels::AGENT_ID.to_owned(), "agent-1".to_owned())]);
        let bind = BTreeMap::from([
            ("type".to_owned(), "none".to_owned()),
            ("o".to_owned(), "bind".to_owned()),
            ("device".to_owned(), "/etc".to_owned()),
        ]);
        let h = Harness::new();
        {
            let mut st = h.engine.state.lock().unwrap();
            for (name, labels, options) in [
                ("mine", ours.clone(), BTreeMap::new()),
                ("operators", BTreeMap::new(), bind.clone()),
                ("old-bind", ours.clone(), bind.clone()),
            ] {
                st.volumes.insert(
                    name.to_owned(),
                    crate::engine::VolumeInfo {
                        driver: "local".into(),
                        options,
                        labels,
                    },
                );
            }
        }
        for (name, ok) in [
            ("new", true),
            ("mine", true),
            ("operators", false),
            ("old-bind", false),
        ] {
            let id = Harness::id(name);
            let mut spec = h.spec(name);
            spec.container.as_mut().unwrap().volumes.push(volume(name));
            let r = h.cz.launch(&id, spec).await;
            assert_eq!(r.is_ok(), ok, "{name}: {r:?}");
            if let Err(e) = r {
                let e = e.to_string();
                assert!(e.contains(&format!("--allowed-volume {name}")), "{e}");
            }
        }
        assert_eq!(
            h.engine.calls(Op::Create).len(),
            2,
            "no container for the refused ones"
        );
        let h2 = h.restart(|dir| {
            let mut c = config(dir);
            c.allowances.volumes.insert("operators".into());
            c
        });
        let mut spec = h2.spec("op2");
        spec.container
            .as_mut()
            .unwrap()
            .volumes
            .push(volume("operators"));
        h2.cz.launch(&Harness::id("op2"), spec).await.unwrap();
        h2.assert_clean();
    });
}

/// A relative `host_path` goes through no link: a sandbox holding a planted `vol -> <outside>`
/// (an archive the fetcher extracted) fails the launch, and nothing is created outside.
#[test]
fn a_relative_host_path_does_not_follow_links_out_of_the_sandbox() {
    rt().block_on(async {
        let h = Harness::new();
        let outside = h.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(h.sandbox("c1")).unwrap();
        std::os::unix::fs::symlink(&outside, h.sandbox("c1").join("vol")).unwrap();
        let mut spec = h.spec("c1");
        spec.container.as_mut().unwrap().volumes.push(Volume {
            container_path: "/data".into(),
            host_path: Some("vol/inner".into()),
            mode: VolumeMode::Rw,
            source: None,
        });
        let err = h.cz.launch(&Harness::id("c1"), spec).await.unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(
            !outside.join("inner").exists(),
            "nothing made through the link"
        );
        assert!(h.engine.calls(Op::Create).is_empty());
        h.assert_clean();
    });
}

#[test]
fn an_unknown_user_is_refused_before_anything_exists() {
    rt().block_on(async {
        let h = Harness::new();
        let id = Harness::id("who");
        let mut spec = h.spec("who");
        spec.command.user = Some("no-such-user-on-any-host".into());
        let sandbox = spec.sandbox.clone();
        let e = h.cz.launch(&id, spec).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("field 'command.user': user 'no-such-user-on-any-host'"),
            "{e}"
        );
        assert!(h.cz.status(&id).is_err(), "no container record");
        assert!(!sandbox.exists(), "no sandbox");
        assert!(h.engine.state.lock().unwrap().containers.is_empty());
    });
}

#[test]
fn subscribers_see_every_phase_in_order_and_the_removal() {
    rt().block_on(async {
        let h = Harness::new();
        let mut changes = h.cz.subscribe();
        let id = Harness::id("c1");
        h.cz.launch(&id, h.spec("c1")).await.unwrap();
        h.engine.exit("berth-c1", 3, false);
        h.cz.wait(&id).await.unwrap();
        h.cz.remove(&id).await.unwrap();
        let mut seen = Vec::new();
        while let Ok(c) = changes.try_recv() {
            assert_eq!(c.container_id, id);
            if c.kind != ChangeKind::Progress {
                seen.push(c.kind);
            }
        }
        assert_eq!(
            seen,
            [
                ChangeKind::Added,
                ChangeKind::Phase(Phase::Pulling),
                ChangeKind::Phase(Phase::Mounting),
                ChangeKind::Phase(Phase::Running),
                // A natural exit tears down too (the logs drain) before the termination.
                ChangeKind::Phase(Phase::Destroying),
                ChangeKind::Phase(Phase::Terminated),
                ChangeKind::Removed,
            ]
        );
        h.assert_clean();
    });
}

#[test]
fn a_lagging_subscriber_is_told_so_and_the_containerizer_holds_no_more() {
    rt().block_on(async {
        let h = Harness::new();
        let mut changes = h.cz.subscribe();
        let id = Harness::id("c1");
        for _ in 0..crate::changes::CHANNEL_CAPACITY + 10 {
            h.cz.inner.announce(&id, ChangeKind::Progress);
        }
        assert!(matches!(
            changes.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(10))
        ));
        assert_eq!(h.cz.inner.changes.len(), crate::changes::CHANNEL_CAPACITY);
    });
}
