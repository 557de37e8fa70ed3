//! [`Containerizer`]: Mesos's `Containerizer` interface over Docker.
//!
//! Each container is driven by one pipeline task (see `pipeline`) that walks the state machine
//! in [`crate::state`]; API calls apply events to the same machine and carry out the action it
//! answers (cancel the launch, stop or signal the process). Every call is implemented; none
//! answers "unsupported".

mod container;
mod health;
mod pipeline;
mod recovery;
mod sessions;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use recovery::{OrphanAction, OrphanOutcome, RecoveryReport};
pub use sessions::{
    AttachedOutput, SessionEnd, SessionInput, SessionIo, SessionOutput, SessionStatus,
    LIVE_OUTPUT_BUFFER, MAX_SESSIONS, MAX_SESSIONS_PER_CONTAINER,
};

use crate::changes::{Change, ChangeKind};
use crate::checkpoint::{Durability, Store};
use crate::config::{host_totals, Config};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::ContainerId;
use crate::mapping::{cgroup_settings, container_name};
use crate::pull::Puller;
use crate::seams::{Fetch, Logs};
use crate::spec::{ContainerKind, LaunchSpec, Limits, Resources};
use crate::state::{Action, Event, Phase, State};
use crate::termination::Termination;
use crate::usage::{self, ContainerStatus, HostTotals, ResourceStatistics};
use container::{Container, LaunchStatus};

/// What `launch` did (Mesos's `LaunchResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launched {
    /// The container runs.
    Launched,
    /// A container with this id is already known; nothing was done.
    AlreadyLaunched,
    /// Not a Docker launch; another containerizer should take it.
    NotSupported,
}

/// What [`Containerizer::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Containers known at shutdown; running ones keep running, for the next start to recover.
    pub containers: usize,
    /// Checkpoints written by the final flush.
    pub checkpoints_written: usize,
    /// Checkpoints that could not be written (logged; recovery reconciles with Docker).
    pub checkpoint_failures: usize,
    /// Whether every background task (pipelines, loggers, timers) ended in time.
    pub tasks_ended: bool,
}

/// What [`Containerizer::flush`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Checkpoints written.
    pub written: usize,
    /// Checkpoints that failed (logged).
    pub failed: usize,
}

/// The Docker containerizer. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Containerizer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: Config,
    pub host: HostTotals,
    pub engine: Arc<dyn Engine>,
    pub fetcher: Arc<dyn Fetch>,
    pub logs: Arc<dyn Logs>,
    pub puller: Puller,
    pub store: Store,
    pub containers: Mutex<HashMap<ContainerId, Arc<Container>>>,
    /// Events the state machine refused (bugs); tests assert it stays zero.
    pub illegal: AtomicUsize,
    /// Sessions by (parent, session id).
    pub sessions: Mutex<HashMap<(ContainerId, ContainerId), Arc<sessions::Session>>>,
    /// Where changes are announced to subscribers ([`Containerizer::subscribe`]).
    pub changes: tokio::sync::broadcast::Sender<Change>,
    /// Terminations decided (one per container, ever).
    pub resolutions: AtomicUsize,
    /// Fired by `shutdown`: background tasks end, loggers flush, launches are refused.
    pub stopping: CancellationToken,
    /// Every background task, so `shutdown` can wait for them to have ended.
    pub tasks: TaskTracker,
    /// Where usage is read from the host's cgroup files; `None` always asks Docker.
    pub cgroup_roots: Option<crate::cgroup::Roots>,
    /// Usage samples taken from the cgroup files and from Docker's stats.
    pub usage_samples: [AtomicUsize; 2],
    /// The operator's allowed host roots, opened once.
    pub roots: crate::hostpath::HostRoots,
    /// Where host paths are pinned for Docker.
    pub pins: crate::hostpath::Pins,
    /// The health checkers' counters.
    pub health: crate::health::Counters,
    /// Lets unit tests hold the MOUNTING stage and checkpoint writes, which otherwise only touch
    /// local files.
    #[cfg(test)]
    pub mount_gate: std::sync::OnceLock<Arc<crate::testing::Gates>>,
}

impl std::fmt::Debug for Containerizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerizer")
            .field("agent_id", &self.inner.config.agent_id)
            .field("containers", &self.inner.map().len())
            .finish()
    }
}

impl Containerizer {
    /// A containerizer over `engine`, fetching with `fetcher` and logging with `logs`.
    /// Call [`recover`](Self::recover) before launching anything.
    pub fn new(
        config: Config,
        engine: Arc<dyn Engine>,
        fetcher: Arc<dyn Fetch>,
        logs: Arc<dyn Logs>,
    ) -> Result<Containerizer> {
        config.validate()?;
        let (cpus, memory) = host_totals();
        let host = HostTotals {
            cpus: config.host_cpus.or(cpus),
            memory: config.host_memory.or(memory),
        };
        let store = Store::open(&config.work_dir)?;
        let roots = crate::hostpath::HostRoots::open(&config.allowed_host_roots);
        let pins = crate::hostpath::Pins::new(&config.work_dir);
        let puller = Puller::new(engine.clone(), config.pull.clone());
        Ok(Containerizer {
            inner: Arc::new(Inner {
                config,
                host,
                engine,
                fetcher,
                logs,
                puller,
                store,
                containers: Mutex::new(HashMap::new()),
                illegal: AtomicUsize::new(0),
                changes: tokio::sync::broadcast::channel(crate::changes::CHANNEL_CAPACITY).0,
                sessions: Mutex::new(HashMap::new()),
                resolutions: AtomicUsize::new(0),
                stopping: CancellationToken::new(),
                tasks: TaskTracker::new(),
                cgroup_roots: Some(crate::cgroup::Roots::default()),
                usage_samples: Default::default(),
                roots,
                pins,
                health: Default::default(),
                #[cfg(test)]
                mount_gate: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Launches a container and returns once it runs. A failed launch destroys its own
    /// container (the caller need not) and returns [`Error::LaunchFailed`]; a destroy during the
    /// launch returns [`Error::DestroyedDuringLaunch`]. Either way `wait` gives the termination.
    pub async fn launch(&self, id: &ContainerId, spec: LaunchSpec) -> Result<Launched> {
        if spec
            .container
            .as_ref()
            .is_none_or(|c| c.kind != ContainerKind::Docker)
        {
            return Ok(Launched::NotSupported);
        }
        // Refused before anything exists: a URI naming a host file the operator did not allow
        // fails here with a 400, not after a container record and a sandbox were made.
        self.inner
            .fetcher
            .check(&spec.command.uris)
            .map_err(|cause| Error::UriRefused {
                id: id.clone(),
                cause,
            })?;
        // An unknown user is refused before anything exists: the sandbox could not be given to it.
        pipeline::sandbox_owner(&spec)?;
        let c = {
            let mut map = self.inner.map();
            if self.inner.stopping.is_cancelled() {
                return Err(Error::ShuttingDown);
            }
            if map.contains_key(id) {
                return Ok(Launched::AlreadyLaunched);
            }
            let name = container_name(&self.inner.config.name_prefix, id);
            let c = Arc::new(Container::new(id.clone(), name, spec, State::Fetching));
            map.insert(id.clone(), c.clone());
            c
        };
        self.inner.announce(id, ChangeKind::Added);
        tracing::info!(container_id = %id, "launching container");
        pipeline::spawn_launch(self.inner.clone(), c.clone());
        let status = tokio::select! {
            s = c.wait_launched() => s,
            // The pipeline stopped with the agent; the next start finishes or rolls it back.
            () = self.inner.stopping.cancelled() => return Err(Error::ShuttingDown),
        };
        match status {
            LaunchStatus::Running => Ok(Launched::Launched),
            LaunchStatus::Ended(t) => Err(launch_error(id, &t)),
            LaunchStatus::Pending => unreachable!("wait_launched returns a decided status"),
        }
    }

    /// Waits for the container's termination; `None` for an unknown container.
    pub async fn wait(&self, id: &ContainerId) -> Option<Arc<Termination>> {
        let c = self.inner.get(id)?;
        Some(c.wait_terminated().await)
    }

    /// The termination if the container has ended, without waiting.
    pub fn termination(&self, id: &ContainerId) -> Option<Arc<Termination>> {
        self.inner.get(id)?.termination()
    }

    /// When the container's termination was decided (kept across restarts); `None` for an
    /// unknown container or one that has not ended. The agent's sandbox garbage collection
    /// measures a container's age from it.
    pub fn terminated_at(&self, id: &ContainerId) -> Option<SystemTime> {
        let c = self.inner.get(id)?;
        c.termination()?;
        let at = c.rt().terminated_at;
        at
    }

    /// Destroys the container in whatever state it is and returns its termination (the same one
    /// `wait` gives); `None` for an unknown container. Idempotent.
    pub async fn destroy(&self, id: &ContainerId) -> Option<Arc<Termination>> {
        let Some(c) = self.inner.get(id) else {
            tracing::warn!(container_id = %id, "Attempted to destroy unknown container");
            return None;
        };
        let action = self.inner.apply(&c, Event::Destroy);
        self.inner.clone().carry_out(&c, action);
        // Before answering: a restarted agent must know the destroy was asked for. Not fsynced:
        // the termination's write will be.
        self.inner.persist(&c, Durability::Lazy).await;
        Some(c.wait_terminated().await)
    }

    /// Sends `signal` to the container's process; before the process exists, a kill destroys
    /// the launch. Returns false if the container is unknown or already terminated. A signal
    /// that fails to reach the daemon is retried until delivered or the container is gone.
    pub async fn kill(&self, id: &ContainerId, signal: i32) -> bool {
        let Some(c) = self.inner.get(id) else {
            return false;
        };
        if c.phase() == Phase::Terminated {
            return false;
        }
        let action = self.inner.apply(&c, Event::Kill(signal));
        self.inner.clone().carry_out(&c, action);
        // A restarted agent reports the end as KILLED only if it knows of the kill.
        self.inner.persist(&c, Durability::Lazy).await;
        true
    }

    /// Sends `signal` to the container's process, and SIGKILL if it has not ended `grace` later
    /// (Mesos's kill policy). The intent and its wall-clock deadline are checkpointed durably
    /// before the signal is sent, so an agent killed meanwhile still sends SIGKILL at the
    /// deadline after its restart, or at once if the deadline passed while it was down; the
    /// container ends KILLED either way. Returns false if the container is unknown or already
    /// terminated. A kill of a container still launching destroys the launch.
    pub async fn kill_gracefully(
        &self,
        id: &ContainerId,
        signal: i32,
        grace: std::time::Duration,
    ) -> bool {
        let Some(c) = self.inner.get(id) else {
            return false;
        };
        if c.phase() == Phase::Terminated {
            return false;
        }
        let asked_at = SystemTime::now();
        let intent = crate::checkpoint::KillDeadline {
            signal,
            grace,
            asked_at,
            deadline: asked_at + grace,
            delivered: false,
        };
        let sooner = {
            // A second graceful kill never postpones the first one's SIGKILL.
            let mut rt = c.rt();
            let sooner = rt
                .kill_deadline
                .is_none_or(|d| d.deadline > intent.deadline);
            if sooner {
                rt.kill_deadline = Some(intent);
            }
            sooner
        };
        let action = self.inner.apply(&c, Event::Kill(signal));
        if self.inner.persist(&c, Durability::Durable).await == Some(false) {
            // Logged by `persist`; the kill still goes ahead (refusing it would be worse), but
            // only this agent's timer will send SIGKILL.
            tracing::warn!(container_id = %c.id, "graceful kill not checkpointed; a restart before its deadline would forget it");
        }
        self.inner.clone().send_first_signal(&c, action);
        if sooner {
            self.inner.clone().escalate_at_deadline(&c);
        }
        true
    }

    /// Removes a terminated container: its Docker container (if the remove delay has not
    /// removed it already), its checkpoint and its runtime state; `wait` then answers `None`.
    /// Unknown: [`Error::UnknownContainer`]; not terminated: [`Error::NotTerminated`].
    pub async fn remove(&self, id: &ContainerId) -> Result<()> {
        let c = self
            .inner
            .get(id)
            .ok_or_else(|| Error::UnknownContainer { id: id.clone() })?;
        let phase = c.phase();
        if phase != Phase::Terminated {
            return Err(Error::NotTerminated {
                id: id.clone(),
                phase,
            });
        }
        self.inner.remove_terminated(&c).await
    }

    /// Changes the container's resources live (raising and lowering memory both work). The new
    /// `resources` and `limits` replace the old ones: every cgroup setting is recomputed from them
    /// as a launch computes it, and Docker is given all of them, clearing those that no longer
    /// apply (see [`crate::mapping::resources::resource_update`]). A terminated container is
    /// [`Error::Terminated`].
    pub async fn update(
        &self,
        id: &ContainerId,
        resources: Resources,
        limits: Limits,
    ) -> Result<()> {
        crate::mapping::check_memory(&resources, &limits)?;
        let c = self
            .inner
            .get(id)
            .ok_or_else(|| Error::UnknownContainer { id: id.clone() })?;
        if c.phase() == Phase::Terminated {
            return Err(Error::Terminated { id: id.clone() });
        }
        let c = self.inner.running(id)?;
        let docker_id = c.docker_id().expect("a started container has a Docker id");
        let (cfs, host_mem) = (self.inner.config.cfs, self.inner.host.memory);
        let old = {
            let rt = c.rt();
            cgroup_settings(&rt.spec.resources, &rt.spec.limits, cfs, host_mem)
        };
        let new = cgroup_settings(&resources, &limits, cfs, host_mem);
        let update = crate::mapping::resources::resource_update(&new, &old, host_mem);
        self.inner
            .engine
            .update(&docker_id, &update)
            .await
            .map_err(|e| Error::engine(format!("failed to update container '{id}'"), e))?;
        {
            let mut rt = c.rt();
            rt.spec.resources = resources;
            rt.spec.limits = limits;
        }
        self.inner.persist(&c, Durability::Lazy).await;
        Ok(())
    }

    /// Resource usage, sampled at once: from the container's cgroup files when the agent runs
    /// on the Docker host (Docker 20.10 answers even a one-shot stats request only at its
    /// collector's next tick, up to a second later), else from one-shot Docker stats. Unknown,
    /// destroying or not yet running containers are errors that say which.
    pub async fn usage(&self, id: &ContainerId) -> Result<ResourceStatistics> {
        let c = self.inner.running(id)?;
        let docker_id = c.docker_id().expect("a started container has a Docker id");
        let pid = c.rt().pid;
        let local = match (&self.inner.cgroup_roots, pid) {
            (Some(roots), Some(pid)) => {
                let (roots, did) = (roots.clone(), docker_id.clone());
                match tokio::task::spawn_blocking(move || crate::cgroup::sample(&roots, pid, &did))
                    .await
                {
                    Ok(Ok(s)) => Some(s),
                    Ok(Err(e)) => {
                        tracing::debug!(container_id = %id, error = %e, "cgroup files unusable; asking Docker for stats");
                        None
                    }
                    Err(e) => {
                        tracing::debug!(container_id = %id, error = %e, "cgroup sampling task failed");
                        None
                    }
                }
            }
            _ => None,
        };
        let (sample, processes, enforced) = match local {
            Some((sample, processes, enforced)) => {
                self.inner.usage_samples[0].fetch_add(1, Ordering::Relaxed);
                (sample, Some(processes), Some(enforced))
            }
            None => {
                let engine = &self.inner.engine;
                // The limits in force from Docker's HostConfig, as the cgroup files are not ours.
                let (sample, processes, inspected) = tokio::join!(
                    engine.stats(&docker_id),
                    engine.processes(&docker_id),
                    engine.inspect(&docker_id)
                );
                let sample = sample.map_err(|e| {
                    Error::engine(
                        format!("failed to collect statistics of container '{id}'"),
                        e,
                    )
                })?;
                self.inner.usage_samples[1].fetch_add(1, Ordering::Relaxed);
                (sample, processes.ok(), inspected.ok().map(|i| i.enforced))
            }
        };
        let mut stats = ResourceStatistics {
            timestamp: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            ..ResourceStatistics::default()
        };
        usage::measured(&sample, processes, &mut stats);
        // Limits only from what is enforced; when that cannot be read, none are reported rather
        // than the request.
        if let Some(enforced) = enforced {
            usage::limits(&enforced, self.inner.host, &mut stats);
        }
        Ok(stats)
    }

    /// Usage samples taken since start: `(from cgroup files, from Docker's stats)`.
    pub fn usage_samples(&self) -> (usize, usize) {
        (
            self.inner.usage_samples[0].load(Ordering::Relaxed),
            self.inner.usage_samples[1].load(Ordering::Relaxed),
        )
    }

    /// The health checks' counters since start (checks passed and failed, containers killed
    /// for failing them, checkers running now).
    pub fn health_counts(&self) -> crate::health::HealthCounts {
        self.inner.health.snapshot()
    }

    /// The container's status; unknown ids are an error.
    pub fn status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let c = self
            .inner
            .get(id)
            .ok_or_else(|| Error::UnknownContainer { id: id.clone() })?;
        let rt = c.rt();
        Ok(ContainerStatus {
            container_id: id.clone(),
            phase: rt.state.phase(),
            name: c.name.clone(),
            image: rt.spec.docker_info().map(|d| d.image.clone()),
            docker_id: rt
                .state
                .docker_id()
                .map(str::to_owned)
                .or_else(|| rt.docker_id.clone()),
            pid: rt.pid,
            ip_addresses: rt.ips.clone(),
            health: rt.health.clone(),
            pull: (rt.state.phase() == Phase::Pulling)
                .then(|| rt.pull.clone())
                .flatten(),
            fetch: if rt.state.phase() == Phase::Fetching {
                rt.fetch.snapshot()
            } else {
                Vec::new()
            },
            termination: rt.state.termination().map(|t| (**t).clone()),
            requested_resources: rt.spec.reported_resources.clone(),
        })
    }

    /// Follows every change of every container from now on (see [`crate::changes`]): a
    /// subscriber reads the state it starts from with [`status`](Self::status), then applies
    /// the changes as they come, and reads everything afresh if it is told it lagged.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// Every known container, launching, running or terminated-but-not-removed.
    pub fn containers(&self) -> HashSet<ContainerId> {
        self.inner.map().keys().cloned().collect()
    }

    /// Recovers after a restart: re-attaches to running containers, reports the ones that
    /// exited meanwhile, rolls back launches caught half-way, and handles orphans. Call once,
    /// before launching.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        recovery::recover(&self.inner).await
    }

    /// Looks for orphans (containers with this agent's labels that no checkpoint knows) and
    /// handles them by the orphan policy. `recover` does this; agents may also call it
    /// periodically.
    pub async fn reap_orphans(&self) -> Result<Vec<OrphanOutcome>> {
        recovery::reap_orphans(&self.inner).await
    }

    /// Stops for an agent restart, leaving containers as they are (running ones keep running):
    /// refuses new launches (in-flight `launch` calls return [`Error::ShuttingDown`]), ends the
    /// background tasks (pipelines, exit watchers, retries, timers), lets every container's
    /// logger write, sync and checkpoint what it received, then [`flush`](Self::flush)es the
    /// checkpoints. The next start recovers everything. Idempotent.
    pub async fn shutdown(&self) -> ShutdownReport {
        let inner = &self.inner;
        inner.stopping.cancel();
        inner.tasks.close();
        let containers = inner.map().len();
        // Loggers flush within the drain timeout (they only write what they already received).
        let tasks_ended = tokio::time::timeout(inner.config.log_drain_timeout, inner.tasks.wait())
            .await
            .is_ok();
        if !tasks_ended {
            tracing::warn!(timeout = ?inner.config.log_drain_timeout, "background tasks did not end in time; flushing checkpoints anyway");
        }
        let flushed = self.flush().await;
        let report = ShutdownReport {
            containers,
            checkpoints_written: flushed.written,
            checkpoint_failures: flushed.failed,
            tasks_ended,
        };
        tracing::info!(
            containers,
            checkpoints = flushed.written,
            failures = flushed.failed,
            tasks_ended,
            "containerizer stopped; checkpoints flushed, containers left running"
        );
        report
    }

    /// Writes every container's latest state to its checkpoint, after the writes in flight
    /// (each container's writes are serialised, so this waits for them).
    pub async fn flush(&self) -> FlushReport {
        let containers: Vec<Arc<Container>> = self.inner.map().values().cloned().collect();
        let mut report = FlushReport::default();
        // All at once: the journal commits them with a shared fsync.
        let writes = containers
            .iter()
            .map(|c| self.inner.persist(c, Durability::Durable));
        for outcome in futures_util::future::join_all(writes).await {
            match outcome {
                Some(true) => report.written += 1,
                Some(false) => report.failed += 1,
                None => {}
            }
        }
        report
    }

    /// How many events the state machine refused since start (always zero unless there is a
    /// bug; exposed for tests and metrics).
    pub fn illegal_transitions(&self) -> usize {
        self.inner.illegal.load(Ordering::SeqCst)
    }

    /// Checkpoint writes since start: `(durable, lazy)` (see [`crate::checkpoint::Durability`]).
    pub fn checkpoint_writes(&self) -> (usize, usize) {
        self.inner.store.writes()
    }

    /// The checkpoint journal's counters (records, fsyncs, compactions, size).
    pub fn checkpoint_journal(&self) -> crate::checkpoint::JournalStats {
        self.inner.store.journal_stats()
    }

    /// How many terminations were decided since start (one per container that ended).
    pub fn terminations_decided(&self) -> usize {
        self.inner.resolutions.load(Ordering::SeqCst)
    }
}

/// The signal a graceful kill ends with.
const SIGKILL: i32 = 9;

fn launch_error(id: &ContainerId, t: &Termination) -> Error {
    match t
        .message
        .strip_prefix(crate::termination::messages::LAUNCH_FAILED_PREFIX)
    {
        Some(cause) => Error::LaunchFailed {
            id: id.clone(),
            cause: cause.to_owned(),
        },
        None => Error::DestroyedDuringLaunch {
            id: id.clone(),
            message: t.message.clone(),
        },
    }
}

impl Inner {
    pub fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerId, Arc<Container>>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &ContainerId) -> Option<Arc<Container>> {
        self.map().get(id).cloned()
    }

    /// A container whose process runs, or the error saying why not.
    fn running(&self, id: &ContainerId) -> Result<Arc<Container>> {
        let c = self
            .get(id)
            .ok_or_else(|| Error::UnknownContainer { id: id.clone() })?;
        let rt = c.rt();
        match rt.state.phase() {
            Phase::Destroying | Phase::Terminated => Err(Error::BeingDestroyed { id: id.clone() }),
            phase if !rt.state.is_started() => Err(Error::NotRunning {
                id: id.clone(),
                phase,
            }),
            _ => {
                drop(rt);
                Ok(c)
            }
        }
    }

    pub fn apply(&self, c: &Container, event: Event) -> Action {
        let before = c.phase();
        let (action, illegal) = c.apply(event, &self.resolutions);
        if illegal {
            self.illegal.fetch_add(1, Ordering::SeqCst);
        }
        let after = c.phase();
        if after != before {
            self.announce(&c.id, ChangeKind::Phase(after));
        }
        action
    }

    /// Tells subscribers about a change (nothing happens without subscribers).
    pub fn announce(&self, id: &ContainerId, kind: ChangeKind) {
        let _no_subscribers = self.changes.send(Change {
            container_id: id.clone(),
            kind,
        });
    }

    /// Carries out an action an API call got back.
    pub fn carry_out(self: Arc<Self>, c: &Arc<Container>, action: Action) {
        match action {
            Action::Cancel => c.cancel.cancel(),
            Action::Stop { docker_id } => {
                let grace = c.rt().spec.kill_grace.unwrap_or(self.config.kill_grace);
                let task = pipeline::stop_until_down(self.clone(), c.clone(), docker_id, grace);
                self.spawn(task);
            }
            Action::Signal { docker_id, signal } => {
                let task =
                    pipeline::signal_until_delivered(self.clone(), c.clone(), docker_id, signal);
                self.spawn(task);
            }
            Action::None | Action::Proceed | Action::Abort | Action::Resolved(_) => {}
        }
    }

    /// Carries out a graceful kill's first `action` and, once its signal reached the daemon,
    /// records the delivery (lazily) so a restarted agent does not send it again.
    pub fn send_first_signal(self: Arc<Self>, c: &Arc<Container>, action: Action) {
        let Action::Signal { docker_id, signal } = action else {
            // Nothing to deliver (a launch being destroyed, or already going down).
            return self.carry_out(c, action);
        };
        let (inner, c) = (self.clone(), c.clone());
        self.spawn(async move {
            pipeline::signal_until_delivered(inner.clone(), c.clone(), docker_id, signal).await;
            let changed = {
                let mut rt = c.rt();
                match rt.kill_deadline.as_mut() {
                    Some(d) if d.signal == signal && !d.delivered => {
                        d.delivered = true;
                        true
                    }
                    _ => false,
                }
            };
            if changed {
                inner.persist(&c, Durability::Lazy).await;
            }
        });
    }

    /// Sends SIGKILL at the container's kill deadline (at once if it has passed) unless the
    /// container has ended by then.
    pub fn escalate_at_deadline(self: Arc<Self>, c: &Arc<Container>) {
        let Some(deadline) = c.rt().kill_deadline else {
            return;
        };
        let timer = CancellationToken::new();
        if let Some(earlier) = c.rt().kill_timer.replace(timer.clone()) {
            // Its deadline was later: this one fires first.
            earlier.cancel();
        }
        let (inner, c) = (self.clone(), c.clone());
        self.spawn(async move {
            let left = deadline
                .deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::select! {
                _ = c.wait_terminated() => return,
                () = timer.cancelled() => return,
                () = tokio::time::sleep(left) => {}
            }
            if c.phase() != Phase::Terminated {
                tracing::info!(container_id = %c.id, grace = ?deadline.grace, "grace period over; sending SIGKILL");
                let action = inner.apply(&c, Event::Kill(SIGKILL));
                inner.clone().carry_out(&c, action);
            }
        });
    }

    /// Spawns a background task that ends when the containerizer shuts down (at its next await
    /// point: a task never runs on after `shutdown`).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stopping.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                biased;
                () = stop.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Writes the container's checkpoint (the latest state, whoever calls), with at least
    /// `durability` (more if a queued background write asked for more: this write serves it).
    /// A write of what is already on disk is skipped. Failures are logged: the container goes
    /// on, and recovery reconciles with Docker anyway. Returns whether the checkpoint is
    /// current; `None` once the container was removed (nothing to write).
    pub async fn persist(&self, c: &Container, durability: Durability) -> Option<bool> {
        #[cfg(test)]
        if let Some(gate) = self.mount_gate.get() {
            gate.pass(crate::testing::Op::Persist).await;
        }
        let mut written = c.checkpoint_lock.clone().lock_owned().await;
        // Taken over before the snapshot: a change after it queues a new write.
        let durability = match c.checkpoint_queued.swap(0, Ordering::SeqCst) {
            2 => Durability::Durable,
            _ => durability,
        };
        if written.removed {
            return None;
        }
        let record = c.record(&self.config.agent_id);
        let current = written.last.as_ref() == Some(&record)
            && (written.durable || durability == Durability::Lazy);
        if current {
            return Some(true);
        }
        // The guard is held across the write, so two writes of one container never overtake
        // each other; a dropped future leaves the queued write to complete on its own.
        match self.store.save(&record, durability).await {
            Ok(()) => {
                written.last = Some(record);
                written.durable = durability == Durability::Durable;
                Some(true)
            }
            Err(e) => {
                tracing::error!(container_id = %c.id, error = %e, "failed to write checkpoint");
                Some(false)
            }
        }
    }

    /// Checkpoints in the background: one queued write per container at a time, taking the
    /// latest state when it runs, so a burst of changes (a fast launch) costs one write.
    pub fn persist_soon(self: &Arc<Self>, c: &Arc<Container>, durability: Durability) {
        let level = match durability {
            Durability::Lazy => 1,
            Durability::Durable => 2,
        };
        if c.checkpoint_queued.fetch_max(level, Ordering::SeqCst) == 0 {
            let (inner, c) = (self.clone(), c.clone());
            self.spawn(async move {
                inner.persist(&c, Durability::Lazy).await;
            });
        }
    }

    /// Removes a terminated container everywhere. Only the container's own Docker container is
    /// removed (by its id, or by name after checking its labels).
    pub async fn remove_terminated(&self, c: &Arc<Container>) -> Result<()> {
        pipeline::remove_docker_container(self, c).await?;
        let mut written = c.checkpoint_lock.lock().await;
        self.store.remove(&c.id).await?;
        written.removed = true;
        drop(written);
        self.logs.forget(&c.id);
        let mut map = self.map();
        if map
            .get(&c.id)
            .is_some_and(|current| Arc::ptr_eq(current, c))
        {
            map.remove(&c.id);
        }
        drop(map);
        self.forget_sessions(&c.id);
        self.announce(&c.id, ChangeKind::Removed);
        tracing::info!(container_id = %c.id, "container removed");
        Ok(())
    }
}
