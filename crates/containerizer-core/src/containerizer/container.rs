//! One tracked container: its state machine behind a lock, and the channels waiters listen on.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, Record};
use crate::engine::PullProgress;
use crate::id::{AgentId, ContainerId};
use crate::seams::FetchProgress;
use crate::spec::LaunchSpec;
use crate::state::{Action, Event, Phase, State};
use crate::termination::Termination;

/// How far `launch()` has got, for its caller.
#[derive(Debug, Clone)]
pub(crate) enum LaunchStatus {
    Pending,
    Running,
    Ended(Arc<Termination>),
}

/// Mutable runtime data, guarded by one lock with the state.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub state: State,
    pub spec: LaunchSpec,
    pub pid: Option<u32>,
    pub ips: Vec<String>,
    pub pull: Option<PullProgress>,
    pub fetch: FetchTable,
    pub created_dirs: Vec<PathBuf>,
    pub terminated_at: Option<SystemTime>,
    pub log_task: Option<JoinHandle<Result<(), String>>>,
    /// Docker's id once known; kept after the termination (the state forgets it).
    pub docker_id: Option<String>,
    /// A graceful kill's deadline, checkpointed so it outlives the agent.
    pub kill_deadline: Option<checkpoint::KillDeadline>,
    /// Cancels the task waiting for `kill_deadline` (one per container: a sooner deadline
    /// replaces it, so repeated kills cannot pile up timers).
    pub kill_timer: Option<CancellationToken>,
    /// The latest health, once a check (Berth's or Docker's) is known.
    pub health: Option<crate::health::Health>,
    /// Fired when the process stops running (any event out of started): the health checker
    /// ends with it. Set only while started.
    pub health_stop: Option<CancellationToken>,
    /// Set while a client holds the container's stdin (`ATTACH_CONTAINER_INPUT`).
    pub stdin_attached: Arc<std::sync::atomic::AtomicBool>,
    /// Why the health checker is killing the container; the termination says it.
    pub health_kill: Option<String>,
}

/// What is on disk of a container's checkpoint, as far as this agent wrote it.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// The container was removed: a late write must not bring its checkpoint back.
    pub removed: bool,
    /// The record last written (a write of the same record is skipped).
    pub last: Option<Record>,
    /// Whether that write was durable.
    pub durable: bool,
}

/// The latest progress of each URI being fetched, for status. Bounded: a launch may list many
/// URIs, but only a few are fetched at once, so finished ones make room first.
#[derive(Debug, Default)]
pub(crate) struct FetchTable {
    /// Entries by URI index, each with when it was last updated (for eviction).
    entries: Vec<(u64, FetchProgress)>,
    updates: u64,
}

impl FetchTable {
    /// Most URIs whose progress is kept.
    pub const LIMIT: usize = 16;

    /// Records `p` as the latest for its URI.
    pub fn update(&mut self, p: FetchProgress) {
        self.updates += 1;
        let seq = self.updates;
        if let Some(e) = self.entries.iter_mut().find(|(_, e)| e.index == p.index) {
            *e = (seq, p);
            return;
        }
        if self.entries.len() >= Self::LIMIT {
            // A finished URI goes first; else the one quiet for longest.
            let victim = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, (seq, e))| (!e.phase.is_finished(), *seq))
                .map(|(i, _)| i)
                .expect("the table is full, so not empty");
            self.entries.swap_remove(victim);
        }
        self.entries.push((seq, p));
    }

    /// The entries, by URI index.
    pub fn snapshot(&self) -> Vec<FetchProgress> {
        let mut out: Vec<FetchProgress> = self.entries.iter().map(|(_, e)| e.clone()).collect();
        out.sort_by_key(|e| e.index);
        out
    }
}

pub(crate) struct Container {
    pub id: ContainerId,
    pub name: String,
    rt: Mutex<Runtime>,
    /// Fired by destroy/kill before the process exists; the pipeline drops its current stage.
    pub cancel: CancellationToken,
    launched: watch::Sender<LaunchStatus>,
    terminated: watch::Sender<Option<Arc<Termination>>>,
    /// Serialises checkpoint writes; each write snapshots the latest state. Shared so a write's
    /// guard can travel with it onto the blocking thread.
    pub checkpoint_lock: Arc<tokio::sync::Mutex<Written>>,
    /// A background write is queued: 0 none, else 1 + the strongest durability asked for. The
    /// next write takes it over, so a burst of state changes costs one write.
    pub checkpoint_queued: std::sync::atomic::AtomicU8,
}

impl Container {
    pub fn new(id: ContainerId, name: String, spec: LaunchSpec, state: State) -> Container {
        let term = state.termination().cloned();
        let launched = match &term {
            Some(t) => LaunchStatus::Ended(t.clone()),
            None if state.phase() == Phase::Fetching => LaunchStatus::Pending,
            None => LaunchStatus::Running,
        };
        Container {
            id,
            name,
            rt: Mutex::new(Runtime {
                state,
                spec,
                pid: None,
                ips: Vec::new(),
                pull: None,
                fetch: FetchTable::default(),
                created_dirs: Vec::new(),
                terminated_at: None,
                log_task: None,
                docker_id: None,
                kill_deadline: None,
                kill_timer: None,
                health: None,
                health_stop: None,
                stdin_attached: Arc::default(),
                health_kill: None,
            }),
            cancel: CancellationToken::new(),
            launched: watch::channel(launched).0,
            terminated: watch::channel(term).0,
            checkpoint_lock: Arc::new(tokio::sync::Mutex::new(Written::default())),
            checkpoint_queued: std::sync::atomic::AtomicU8::new(0),
        }
    }

    pub fn rt(&self) -> MutexGuard<'_, Runtime> {
        self.rt.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn phase(&self) -> Phase {
        self.rt().state.phase()
    }

    pub fn docker_id(&self) -> Option<String> {
        let rt = self.rt();
        rt.state
            .docker_id()
            .map(str::to_owned)
            .or_else(|| rt.docker_id.clone())
    }

    pub fn termination(&self) -> Option<Arc<Termination>> {
        self.terminated.borrow().clone()
    }

    /// Applies `event` to the state machine and publishes a termination it decides. An illegal
    /// transition is a bug: it is logged and answered with [`Action::None`]; the returned flag
    /// says so (counted by the containerizer).
    pub fn apply(
        &self,
        event: Event,
        resolutions: &std::sync::atomic::AtomicUsize,
    ) -> (Action, bool) {
        let mut rt = self.rt();
        let result = rt.state.apply(event);
        if let Some(d) = rt.state.docker_id() {
            if rt.docker_id.as_deref() != Some(d) {
                rt.docker_id = Some(d.to_owned());
            }
        }
        if !rt.state.is_started() {
            // Out of started (exited, being destroyed): nothing is left to check.
            if let Some(stop) = rt.health_stop.take() {
                stop.cancel();
            }
        }
        match result {
            Ok(mut action) => {
                if let Action::Resolved(t) = &action {
                    if let Some(why) = rt.health_kill.take() {
                        if t.state == crate::termination::TaskState::Killed {
                            // Mesos's Docker executor reports such a task TASK_KILLED with
                            // `healthy: false`; the message says why it was killed.
                            let t = Arc::new(Termination {
                                message: format!("{}: {why}", t.message),
                                healthy: Some(false),
                                ..(**t).clone()
                            });
                            rt.state = State::Terminated(t.clone());
                            action = Action::Resolved(t);
                        }
                    }
                }
                if let Action::Resolved(t) = &action {
                    // Counted before anyone can see the termination.
                    resolutions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    rt.terminated_at = Some(SystemTime::now());
                    rt.pid = None;
                    drop(rt);
                    tracing::info!(container_id = %self.id, state = t.state.as_str(), message = %t.message, "container terminated");
                    self.terminated.send_replace(Some(t.clone()));
                    let t = t.clone();
                    self.launched.send_if_modified(|s| {
                        if matches!(s, LaunchStatus::Pending) {
                            *s = LaunchStatus::Ended(t);
                            true
                        } else {
                            false
                        }
                    });
                }
                (action, false)
            }
            Err(e) => {
                tracing::error!(container_id = %self.id, error = %e, "state machine refused an event (bug)");
                (Action::None, true)
            }
        }
    }

    pub fn set_running(&self) {
        self.launched.send_if_modified(|s| {
            if matches!(s, LaunchStatus::Pending) {
                *s = LaunchStatus::Running;
                true
            } else {
                false
            }
        });
    }

    pub async fn wait_launched(&self) -> LaunchStatus {
        let mut rx = self.launched.subscribe();
        let status = rx.wait_for(|s| !matches!(s, LaunchStatus::Pending)).await;
        match status {
            Ok(s) => s.clone(),
            // The sender lives as long as `self`.
            Err(_) => unreachable!("launch status sender dropped while borrowed"),
        }
    }

    pub async fn wait_terminated(&self) -> Arc<Termination> {
        let mut rx = self.terminated.subscribe();
        let t = rx.wait_for(Option::is_some).await;
        match t {
            Ok(t) => t.clone().expect("checked by wait_for"),
            Err(_) => unreachable!("termination sender dropped while borrowed"),
        }
    }

    /// The checkpoint record of the current state.
    pub fn record(&self, agent_id: &AgentId) -> Record {
        let rt = self.rt();
        let (killed, teardown_from) = match &rt.state {
            State::Running { killed, .. } => (*killed, None),
            State::Destroying(t) => (t.killed, Some(t.from)),
            _ => (false, None),
        };
        Record {
            version: checkpoint::VERSION,
            container_id: self.id.clone(),
            agent_id: agent_id.clone(),
            name: self.name.clone(),
            spec: rt.spec.clone(),
            phase: rt.state.phase(),
            teardown_from,
            docker_id: rt
                .state
                .docker_id()
                .map(str::to_owned)
                .or_else(|| rt.docker_id.clone()),
            killed,
            created_dirs: rt.created_dirs.clone(),
            termination: rt.state.termination().map(|t| (**t).clone()),
            terminated_at: rt.terminated_at,
            // Done with once the container has ended.
            kill_deadline: rt
                .kill_deadline
                .filter(|_| rt.state.termination().is_none()),
            health: rt
                .health
                .clone()
                .filter(|h| h.source == crate::health::HealthSource::Berth),
        }
    }
}

/// Aborts a task when dropped (a reader that lives as long as its consumer).
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
