//! The health checker task of one running container: runs its `health_check` on Mesos's
//! schedule and kills it when the [`Tracker`] says so, or reports Docker's own `HEALTHCHECK`.
//!
//! The task lives only while the process runs: it ends when the container leaves the started
//! state (its `health_stop` token fires on that transition), when the container terminates, and
//! when the agent shuts down (it is spawned on the containerizer's tracker). Every await inside
//! a check is bounded by the check's timeout.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::container::Container;
use super::Inner;
use crate::changes::ChangeKind;
use crate::checkpoint::Durability;
use crate::health::{
    run_check, Check, Health, HealthCheck, HealthSource, HealthState, Outcome, Target, Tracker,
    Vantage, Verdict,
};
use crate::state::Event;

/// How often Docker's own health state is read while a container runs.
const DOCKER_POLL: Duration = Duration::from_secs(1);

/// How long past its timeout a check may take to kill its command and learn its end.
const KILL_ALLOWANCE: Duration = Duration::from_secs(15);

/// Counts a live checker task for as long as it lives.
struct Live(Arc<Inner>);

impl Live {
    fn new(inner: &Arc<Inner>) -> Live {
        inner.health.checkers.fetch_add(1, Ordering::SeqCst);
        Live(inner.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.health.checkers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts the health checker of `c`, which runs as `docker_id` since `started_at`: its launch's
/// `health_check`, else a reporter of Docker's health when `docker_health` (the container has a
/// Docker `HEALTHCHECK`, as its inspect showed: `Some`), else nothing. Does nothing if the
/// process is not running (any more).
pub(super) fn spawn(
    inner: &Arc<Inner>,
    c: &Arc<Container>,
    docker_id: &str,
    started_at: SystemTime,
    docker_health: Option<&crate::engine::DockerHealth>,
) {
    let stop = CancellationToken::new();
    let check = {
        let mut rt = c.rt();
        // Under the lock that the state changes under: the token set here is fired by the
        // first transition out of started, and none can have happened unseen.
        if !rt.state.is_started() {
            return;
        }
        let check = rt.spec.health_check.clone();
        match (&check, docker_health) {
            (Some(hc), h) if hc.check == Check::Docker => {
                rt.health = Some(match h {
                    Some(h) => Health::from_docker(h),
                    None => Health {
                        last_error: Some(NO_DOCKER_HEALTHCHECK.to_owned()),
                        ..Health::starting(HealthSource::Docker, "CMD")
                    },
                });
            }
            (Some(hc), _) => {
                // Checked before an agent restart: go on from there (see `check_loop`).
                let type_name = hc.check.type_name();
                rt.health = Some(match rt.health.take() {
                    Some(h) if h.source == HealthSource::Berth && h.check_type == type_name => h,
                    _ => Health::starting(HealthSource::Berth, type_name),
                });
            }
            (None, Some(h)) => rt.health = Some(Health::from_docker(h)),
            (None, None) => return,
        }
        if let Some(old) = rt.health_stop.replace(stop.clone()) {
            old.cancel();
        }
        check
    };
    // Its first health ("starting", or Docker's word) is a change too.
    inner.announce(&c.id, ChangeKind::Health);
    let (inner2, c2, docker_id) = (inner.clone(), c.clone(), docker_id.to_owned());
    inner.spawn(async move {
        let _live = Live::new(&inner2);
        let kill = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            _ = c2.wait_terminated() => None,
            kill = async {
                match &check {
                    Some(hc) if hc.check == Check::Docker => {
                        report_docker(&inner2, &c2, &docker_id, hc.kill_on_unhealthy).await
                    }
                    Some(hc) => check_loop(&inner2, &c2, &docker_id, hc, started_at).await,
                    None => report_docker(&inner2, &c2, &docker_id, false).await,
                }
            } => kill,
        };
        if let Some(why) = kill {
            kill_unhealthy(&inner2, &c2, why).await;
        }
    });
}

/// Runs `hc` until the container must be killed; returns why. (Ends early only by being
/// dropped, when the process stops.)
async fn check_loop(
    inner: &Arc<Inner>,
    c: &Arc<Container>,
    docker_id: &str,
    hc: &HealthCheck,
    started_at: SystemTime,
) -> Option<String> {
    // Wall-clock time up to now (the start may be from before an agent restart), the
    // runtime's clock from here on.
    let (already, base) = (
        started_at.elapsed().unwrap_or_default(),
        tokio::time::Instant::now(),
    );
    let since_start = || already + base.elapsed();
    // After an agent restart the delay may have passed already, and the checks go on from
    // what the last agent found, on their schedule: the next one an interval after the last.
    let resumed = c.rt().health.clone().filter(|h| h.last_check.is_some());
    let mut tracker = match &resumed {
        Some(h) => Tracker::resume(hc, h),
        None => Tracker::new(hc),
    };
    let next = resumed
        .and_then(|h| h.last_check)
        .map(|last| {
            (last + hc.interval)
                .duration_since(SystemTime::now())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    tokio::time::sleep(hc.delay.saturating_sub(since_start()).max(next)).await;
    // Opened once: the process is the container's for as long as this checker runs.
    let target = {
        let rt = c.rt();
        let network = rt
            .spec
            .docker_info()
            .map(|d| d.network.clone())
            .unwrap_or_default();
        Target {
            docker_id: docker_id.to_owned(),
            vantage: match hc.check {
                Check::Http { .. } | Check::Tcp { .. } => Vantage::of(&network, rt.pid),
                Check::Command(_) | Check::Docker => Vantage::Host,
            },
            user: rt.spec.effective_user().map(str::to_owned),
        }
    };
    loop {
        // The check bounds itself (and kills a hung command); this bounds a hung daemon.
        let outcome = tokio::time::timeout(
            hc.timeout + KILL_ALLOWANCE,
            run_check(&*inner.engine, &hc.check, &target, hc.timeout),
        )
        .await
        .unwrap_or_else(|_| Outcome {
            passed: false,
            output: None,
            error: Some(crate::health::timed_out(hc.timeout)),
        });
        let verdict = tracker.record(outcome.passed, since_start());
        let counter = if outcome.passed {
            &inner.health.passed
        } else {
            &inner.health.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let (before, changed) = {
            let mut rt = c.rt();
            let h = rt
                .health
                .get_or_insert_with(|| Health::starting(HealthSource::Berth, hc.check.type_name()));
            let before = h.state;
            let failures_before = h.consecutive_failures;
            h.state = tracker.state();
            h.consecutive_failures = tracker.consecutive_failures();
            if outcome.passed {
                h.checks_passed += 1;
            } else {
                h.checks_failed += 1;
            }
            h.last_check = Some(SystemTime::now());
            h.last_output = outcome.output.clone();
            h.last_error = outcome.error.clone();
            (
                before,
                h.state != before || h.consecutive_failures != failures_before,
            )
        };
        if changed {
            inner.announce(&c.id, ChangeKind::Health);
            // For a restarted agent to go on from here. (A kill below writes its own.)
            inner.persist_soon(c, Durability::Lazy);
        }
        match verdict {
            Verdict::Healthy if before != HealthState::Healthy => {
                tracing::info!(container_id = %c.id, check = hc.check.type_name(), "container is healthy");
            }
            Verdict::InGrace => {
                tracing::debug!(container_id = %c.id, error = ?outcome.error, "health check failed within the grace period; not counted");
            }
            Verdict::Unhealthy { consecutive } => {
                tracing::warn!(container_id = %c.id, consecutive, limit = hc.consecutive_failures, error = ?outcome.error, "health check failed");
            }
            Verdict::Kill { consecutive } => {
                tracing::warn!(container_id = %c.id, consecutive, error = ?outcome.error, "health check failed too many times in a row; killing the container");
                let last = outcome.error.unwrap_or_default();
                return Some(format!(
                    "{} health check failed {consecutive} consecutive times (last: {last})",
                    hc.check.type_name()
                ));
            }
            Verdict::Healthy => {}
        }
        tokio::time::sleep(hc.interval).await;
    }
}

/// Destroys the container for failing its health check: stopped as a destroy stops it (its
/// stop signal, SIGKILL after the kill grace), then TASK_KILLED with `healthy: false`.
async fn kill_unhealthy(inner: &Arc<Inner>, c: &Arc<Container>, why: String) {
    {
        let mut rt = c.rt();
        if !rt.state.is_started() {
            // It stopped or is being destroyed already: its end is not the checker's doing.
            return;
        }
        rt.health_kill = Some(format!("unhealthy: {why}"));
        if let Some(h) = rt.health.as_mut() {
            h.killed = true;
        }
    }
    inner.health.killed.fetch_add(1, Ordering::Relaxed);
    let action = inner.apply(c, Event::Destroy);
    inner.clone().carry_out(c, action);
    // As `destroy` does: a restarted agent must know the container was being destroyed.
    inner.persist(c, Durability::Lazy).await;
}

/// What a DOCKER health check of a container without a Docker `HEALTHCHECK` reports.
const NO_DOCKER_HEALTHCHECK: &str =
    "the container has no Docker HEALTHCHECK (neither its image nor its create set one)";

/// Keeps the container's health as Docker reports it (its own `HEALTHCHECK`) until the
/// container is gone; with `kill`, returns why once Docker says it is unhealthy (the launch
/// asked for it with a DOCKER health check). Otherwise Berth never acts on Docker's verdict.
async fn report_docker(
    inner: &Arc<Inner>,
    c: &Arc<Container>,
    docker_id: &str,
    kill: bool,
) -> Option<String> {
    loop {
        tokio::time::sleep(DOCKER_POLL).await;
        match inner.engine.inspect(docker_id).await {
            Ok(info) => {
                let Some(h) = info.health else { continue };
                let health = Health::from_docker(&h);
                let unhealthy = health.state == HealthState::Unhealthy;
                let last = health.last_error.clone().unwrap_or_default();
                let streak = health.consecutive_failures;
                let changed = {
                    let mut rt = c.rt();
                    let changed = rt.health.as_ref().is_none_or(|old| {
                        old.state != health.state || old.consecutive_failures != streak
                    });
                    rt.health = Some(health);
                    changed
                };
                if changed {
                    inner.announce(&c.id, ChangeKind::Health);
                }
                if kill && unhealthy {
                    tracing::warn!(container_id = %c.id, streak, "Docker says the container is unhealthy; killing it");
                    return Some(format!(
                        "Docker HEALTHCHECK failed {streak} consecutive times (last: {last})"
                    ));
                }
            }
            Err(e) if e.is_not_found() => return None,
            Err(e) => {
                tracing::debug!(container_id = %c.id, error = %e, "reading Docker's health state failed; trying again");
            }
        }
    }
}
