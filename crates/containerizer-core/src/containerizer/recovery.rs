//! Recovery after an agent restart, and orphan reaping.
//!
//! The checkpoint says what the agent knew; Docker (listed by this agent's label) says what
//! exists. For each checkpointed container of this agent:
//! - already terminated: kept with its termination until removed;
//! - its Docker container runs: re-attached (wait, logger resumes where it stopped);
//! - its Docker container exited meanwhile: reported with the real exit status from inspect;
//! - caught mid-launch (no Docker container, or one created but never started): rolled back,
//!   nothing left half-made;
//! - its Docker container is gone: reported lost.
//!
//! Containers labelled with this agent's id that no checkpoint knows are orphans, handled by the
//! [`OrphanPolicy`](crate::OrphanPolicy). Containers of other agents, unlabelled ones, and ones
//! whose container-id label is malformed are never touched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::container::Container;
use super::pipeline;
use super::Inner;
use crate::checkpoint::Record;
use crate::engine::ContainerSummary;
use crate::error::{Error, Result};
use crate::id::ContainerId;
use crate::labels::{self, ownership, Ownership};
use crate::state::{Cause, Event, Phase, State, Step, Teardown};

/// What recovery found and did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Running containers re-attached.
    pub reattached: Vec<ContainerId>,
    /// Containers that exited while the agent was down (their termination has the real status).
    pub exited_while_down: Vec<ContainerId>,
    /// Launches caught half-way and rolled back.
    pub rolled_back: Vec<ContainerId>,
    /// Containers already terminated before the restart, kept until removed.
    pub terminated: Vec<ContainerId>,
    /// Containers whose Docker container vanished while the agent was down (TASK_LOST, or
    /// TASK_KILLED when a kill was checkpointed first).
    pub lost: Vec<ContainerId>,
    /// Checkpoints of another agent id, ignored (never adopted).
    pub foreign_checkpoints: Vec<ContainerId>,
    /// Unreadable checkpoints, with the reason.
    pub checkpoint_errors: Vec<String>,
    /// Docker containers with this agent's label but a malformed container id, left alone.
    pub malformed: Vec<String>,
    /// Orphans found and what was done with them.
    pub orphans: Vec<OrphanOutcome>,
}

/// An orphan and what was done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanOutcome {
    /// Docker's id.
    pub docker_id: String,
    /// The container id from its label.
    pub container_id: ContainerId,
    /// What happened.
    pub action: OrphanAction,
}

/// What was done with an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanAction {
    /// Stopped and removed.
    Removed,
    /// Younger than the grace period; it will be looked at again after this long.
    Deferred(Duration),
    /// Dry run: it would have been removed.
    WouldRemove,
    /// Orphan killing is disabled.
    Kept,
    /// Removal failed.
    Failed(String),
}

pub(super) async fn recover(inner: &Arc<Inner>) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    // Host path pins of launches the last agent did not finish (a started container has its
    // own copy of its mounts; an unstarted one is rolled back below).
    let pins = inner.pins.clone();
    let _ = tokio::task::spawn_blocking(move || pins.sweep()).await;
    let store = inner.store.clone();
    let loaded = tokio::task::spawn_blocking(move || store.load_all())
        .await
        .map_err(|e| Error::Config(format!("checkpoint loading task failed: {e}")))??;
    let (records, errors) = (loaded.records, loaded.errors);
    report.checkpoint_errors = errors.iter().map(ToString::to_string).collect();
    for e in &errors {
        tracing::error!(error = %e, "unreadable checkpoint skipped");
    }
    let listed = inner
        .engine
        .list_labelled(labels::AGENT_ID)
        .await
        .map_err(|e| Error::engine("failed to list Docker containers during recovery", e))?;
    let mut ours: HashMap<ContainerId, Vec<ContainerSummary>> = HashMap::new();
    for s in listed {
        match ownership(&s.labels, &inner.config.agent_id) {
            Ownership::Ours(id) => ours.entry(id).or_default().push(s),
            Ownership::Malformed(why) => {
                tracing::warn!(docker_id = %s.id, names = ?s.names, reason = %why, "skipping container with a malformed container id");
                report.malformed.push(s.id);
            }
            Ownership::Foreign => {}
        }
    }

    for record in records {
        if record.agent_id != inner.config.agent_id {
            tracing::warn!(container_id = %record.container_id, agent = %record.agent_id, "checkpoint of another agent; not adopted");
            report.foreign_checkpoints.push(record.container_id);
            continue;
        }
        if inner.get(&record.container_id).is_some() {
            continue;
        }
        let mut candidates = ours.remove(&record.container_id).unwrap_or_default();
        // The checkpointed Docker id if known, else the only candidate.
        let pick = match &record.docker_id {
            Some(d) => candidates.iter().position(|s| &s.id == d),
            None => (!candidates.is_empty()).then_some(0),
        };
        let docker = pick.map(|i| candidates.remove(i));
        // Any other container with this id is a duplicate: treat as an orphan.
        if !candidates.is_empty() {
            ours.insert(record.container_id.clone(), candidates);
        }
        recover_one(inner, record, docker, &mut report).await;
    }

    let orphans: Vec<(ContainerId, ContainerSummary)> = ours
        .into_iter()
        .flat_map(|(id, list)| list.into_iter().map(move |s| (id.clone(), s)))
        .collect();
    report.orphans = handle_orphans(inner, orphans).await;
    tracing::info!(
        reattached = report.reattached.len(),
        exited = report.exited_while_down.len(),
        rolled_back = report.rolled_back.len(),
        lost = report.lost.len(),
        orphans = report.orphans.len(),
        "recovery done"
    );
    Ok(report)
}

fn insert(inner: &Inner, record: &Record, state: State) -> Arc<Container> {
    let c = Arc::new(Container::new(
        record.container_id.clone(),
        record.name.clone(),
        record.spec.clone(),
        state,
    ));
    {
        let mut rt = c.rt();
        rt.created_dirs = record.created_dirs.clone();
        rt.terminated_at = record.terminated_at;
        rt.docker_id = record.docker_id.clone();
        rt.kill_deadline = record.kill_deadline;
    }
    if let Ok(mut written) = c.checkpoint_lock.try_lock() {
        // What is on disk (maybe not fsynced: it may have been a lazy write).
        written.last = Some(record.clone());
    }
    inner.map().insert(record.container_id.clone(), c.clone());
    c
}

async fn recover_one(
    inner: &Arc<Inner>,
    record: Record,
    docker: Option<ContainerSummary>,
    report: &mut RecoveryReport,
) {
    let id = record.container_id.clone();
    if let Some(t) = &record.termination {
        let c = insert(inner, &record, State::Terminated(Arc::new(t.clone())));
        if record.terminated_at.is_none() {
            c.rt().terminated_at = Some(SystemTime::now());
        }
        pipeline::schedule_removal(inner.clone(), c);
        report.terminated.push(id);
        return;
    }
    let info = match &docker {
        Some(s) => match inner.engine.inspect(&s.id).await {
            Ok(info) => Some(info),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                // Cannot tell its state: treat it as running and let wait sort it out.
                tracing::warn!(container_id = %id, error = %e, "inspect failed during recovery");
                Some(crate::engine::Inspected {
                    id: s.id.clone(),
                    running: true,
                    ever_started: true,
                    ..Default::default()
                })
            }
        },
        None => None,
    };
    let interrupted = match record.phase {
        Phase::Destroying => record.teardown_from.unwrap_or(Phase::Running),
        p => p,
    };
    match info {
        Some(info) if info.running || info.ever_started => {
            let destroying = record.phase == Phase::Destroying;
            let state = State::Running {
                step: Step::Started {
                    docker_id: info.id.clone(),
                },
                killed: record.killed,
            };
            let c = insert(inner, &record, state);
            c.rt().pid = info.pid;
            c.rt().ips = info.ip_addresses.clone();
            c.rt().health = record.health.clone();
            if info.running {
                report.reattached.push(id.clone());
            } else {
                report.exited_while_down.push(id.clone());
            }
            let target = pipeline::log_target(&c, &record.spec);
            pipeline::attach_logger(inner, &c, &info.id, info.tty, target, true, None);
            if destroying && info.running {
                // A destroy was in progress: finish it.
                let action = inner.apply(&c, Event::Destroy);
                inner.clone().carry_out(&c, action);
            }
            if let Some(kill) = record.kill_deadline.filter(|_| info.running) {
                // A graceful kill was in progress. Its first signal may never have left the dead
                // agent (the intent is written before the signal): send it again while the grace
                // lasts. Then SIGKILL at the deadline, or now if it passed.
                if !kill.delivered && !destroying && kill.deadline > SystemTime::now() {
                    tracing::info!(container_id = %id, signal = kill.signal, "resending the first signal of a graceful kill interrupted by the restart");
                    let action = inner.apply(&c, Event::Kill(kill.signal));
                    inner.clone().send_first_signal(&c, action);
                }
                inner.clone().escalate_at_deadline(&c);
            }
            if info.running {
                // The checks go on where the last agent left them; the delay and the grace
                // period count from the container's creation (its start is a moment later).
                let started_at = info.created.unwrap_or_else(SystemTime::now);
                super::health::spawn(inner, &c, &info.id, started_at, info.health.as_ref());
            }
            let (inner2, c2, docker_id) = (inner.clone(), c.clone(), info.id.clone());
            pipeline::spawn_supervised(inner.clone(), c, async move {
                let exit = pipeline::watch_exit(&inner2, &c2, &docker_id).await;
                pipeline::finish(&inner2, &c2, exit).await;
            });
        }
        Some(info) => {
            // Created but never started: roll the launch back.
            let cause = restart_cause(&record, interrupted);
            let state = State::Destroying(Teardown {
                from: interrupted,
                cause,
                docker_id: Some(info.id),
                started: false,
                killed: record.killed,
            });
            spawn_rollback(inner, insert(inner, &record, state), false);
            report.rolled_back.push(id);
        }
        None if record.docker_id.is_some() && interrupted == Phase::Running => {
            // Killed (or destroyed) before the restart: Berth's own teardown removed the
            // container, so it is not lost but killed, as Mesos reports it.
            let cause = if record.killed {
                Cause::Destroyed
            } else {
                Cause::Lost
            };
            let state = State::Destroying(Teardown {
                from: Phase::Running,
                cause,
                docker_id: None,
                started: true,
                killed: record.killed,
            });
            let c = insert(inner, &record, state);
            let inner2 = inner.clone();
            pipeline::spawn_supervised(inner.clone(), c.clone(), async move {
                pipeline::finish(&inner2, &c, None).await
            });
            report.lost.push(id);
        }
        None => {
            let cause = restart_cause(&record, interrupted);
            let state = State::Destroying(Teardown {
                from: interrupted,
                cause,
                docker_id: None,
                started: false,
                killed: record.killed,
            });
            // If the agent died inside `create`, a container may exist under our name.
            spawn_rollback(
                inner,
                insert(inner, &record, state),
                interrupted == Phase::Running,
            );
            report.rolled_back.push(id);
        }
    }
}

fn restart_cause(record: &Record, interrupted: Phase) -> Cause {
    if record.killed {
        Cause::Destroyed
    } else {
        let doing = match interrupted {
            Phase::Fetching => "fetching",
            Phase::Pulling => "pulling the image",
            Phase::Mounting => "mounting volumes",
            _ => "starting the container",
        };
        Cause::LaunchFailed(format!("the agent restarted while {doing}"))
    }
}

fn spawn_rollback(inner: &Arc<Inner>, c: Arc<Container>, maybe_created: bool) {
    let inner2 = inner.clone();
    let c2 = c.clone();
    pipeline::spawn_supervised(inner.clone(), c, async move {
        let exit = pipeline::rollback(&inner2, &c2, maybe_created).await;
        pipeline::finish(&inner2, &c2, exit).await;
    });
}

pub(super) async fn reap_orphans(inner: &Arc<Inner>) -> Result<Vec<OrphanOutcome>> {
    let listed = inner
        .engine
        .list_labelled(labels::AGENT_ID)
        .await
        .map_err(|e| Error::engine("failed to list Docker containers", e))?;
    let orphans = listed
        .into_iter()
        .filter_map(|s| match ownership(&s.labels, &inner.config.agent_id) {
            Ownership::Ours(id) if is_orphan(inner, &id, &s.id) => Some((id, s)),
            _ => None,
        })
        .collect();
    Ok(handle_orphans(inner, orphans).await)
}

/// Whether no tracked container owns Docker container `docker_id`.
fn is_orphan(inner: &Inner, id: &ContainerId, docker_id: &str) -> bool {
    match inner.get(id) {
        None => true,
        Some(c) => match c.docker_id() {
            Some(d) => d != docker_id,
            // Launching: its container may be this one, just created.
            None => false,
        },
    }
}

async fn handle_orphans(
    inner: &Arc<Inner>,
    orphans: Vec<(ContainerId, ContainerSummary)>,
) -> Vec<OrphanOutcome> {
    let policy = inner.config.orphans.clone();
    let mut out = Vec::new();
    for (id, s) in orphans {
        let age = s
            .created
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(Duration::MAX);
        // The grace applies to a dry run too: it reports what a real run would remove now.
        let action = if !policy.kill {
            OrphanAction::Kept
        } else if age < policy.grace {
            let wait = policy.grace - age;
            // With periodic reconciliation the first pass after the grace removes it.
            if policy.reconcile_interval.is_zero() && !policy.dry_run {
                let (inner2, id2, docker_id) = (inner.clone(), id.clone(), s.id.clone());
                inner.spawn(async move {
                    tokio::time::sleep(wait).await;
                    if is_orphan(&inner2, &id2, &docker_id) {
                        let _ = remove_orphan(&inner2, &id2, &docker_id).await;
                    }
                });
            }
            OrphanAction::Deferred(wait)
        } else if policy.dry_run {
            tracing::info!(container_id = %id, docker_id = %s.id, "orphan would be removed (dry run)");
            OrphanAction::WouldRemove
        } else {
            match remove_orphan(inner, &id, &s.id).await {
                Ok(()) => OrphanAction::Removed,
                Err(e) => OrphanAction::Failed(e),
            }
        };
        out.push(OrphanOutcome {
            docker_id: s.id,
            container_id: id,
            action,
        });
    }
    out
}

async fn remove_orphan(
    inner: &Inner,
    id: &ContainerId,
    docker_id: &str,
) -> std::result::Result<(), String> {
    tracing::info!(container_id = %id, docker_id, "stopping and removing orphan container");
    if let Err(e) = inner.engine.stop(docker_id, inner.config.kill_grace).await {
        if !e.is_not_found() {
            tracing::warn!(container_id = %id, docker_id, error = %e, "failed to stop orphan; removing it by force");
        }
    }
    inner.engine.remove(docker_id).await.map_err(|e| {
        tracing::warn!(container_id = %id, docker_id, error = %e, "failed to remove orphan");
        e.to_string()
    })
}
