//! The per-container state machine: one enum, every legal transition in [`State::apply`].
//!
//! `FETCHING -> PULLING -> MOUNTING -> RUNNING -> DESTROYING -> TERMINATED`, as in Mesos's
//! `DockerContainerizer`, with the termination decided in exactly one place: the transition from
//! DESTROYING on [`Event::Finished`]. Every other path into TERMINATED goes through DESTROYING, so
//! a termination is resolved once, whatever the interleaving of launch progress, kills, destroys
//! and exits.
//!
//! The machine is pure: applying an event changes the state and returns the [`Action`] the caller
//! must carry out. Two kinds of callers apply events:
//! - the container's pipeline task (stage results, create/start results, the observed exit, and
//!   finally `Finished`), which is the only one that ever creates or starts a Docker container,
//!   and does so only when the machine answers [`Action::Proceed`];
//! - API calls (`destroy`, `kill`) and the launch deadline, which get `Cancel`, `Stop` or
//!   `Signal` back.
//!
//! Because the pipeline asks before each side effect, a container destroyed at any moment is
//! never started afterwards: once DESTROYING, every launch event answers [`Action::Abort`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::termination::{messages, wait_status, Limitation, Reason, TaskState, Termination};

/// The phase of a container, as reported to callers (Mesos's `Container::State` plus the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Fetching URIs into the sandbox.
    Fetching,
    /// Pulling the image.
    Pulling,
    /// Preparing volumes.
    Mounting,
    /// Creating, starting, or running the Docker container.
    Running,
    /// Being torn down (stop, roll back, or collect the exit).
    Destroying,
    /// Ended; the termination is known.
    Terminated,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Fetching => "FETCHING",
            Phase::Pulling => "PULLING",
            Phase::Mounting => "MOUNTING",
            Phase::Running => "RUNNING",
            Phase::Destroying => "DESTROYING",
            Phase::Terminated => "TERMINATED",
        })
    }
}

/// Where a RUNNING container is in its Docker life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `create` is in flight.
    Creating,
    /// Created; `start` is in flight.
    Starting {
        /// Docker's container id.
        docker_id: String,
    },
    /// Started; the process runs.
    Started {
        /// Docker's container id.
        docker_id: String,
    },
}

/// Why a container is being torn down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// `destroy` (or a `kill` before the process existed).
    Destroyed,
    /// A launch stage failed, or the launch deadline passed.
    LaunchFailed(String),
    /// The process exited (by itself, or after a signal).
    Exited,
    /// Found gone after an agent restart: the exit status cannot be known.
    Lost,
}

/// What is known while DESTROYING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Teardown {
    /// The phase the teardown interrupted.
    pub from: Phase,
    /// Why.
    pub cause: Cause,
    /// The Docker container, once one was created.
    pub docker_id: Option<String>,
    /// Whether the Docker container was started.
    pub started: bool,
    /// Whether a kill or destroy was requested (the task state becomes KILLED).
    pub killed: bool,
}

/// How the process ended, from `wait` and `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Docker's exit code.
    pub exit_code: i64,
    /// Inspect's `State.OOMKilled`.
    pub oom_killed: bool,
    /// The memory limit in force, for the limitation message.
    pub memory_limit: Option<u64>,
}

/// The container's state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Fetching,
    Pulling,
    Mounting,
    Running {
        step: Step,
        /// A `kill` was delivered to the process.
        killed: bool,
    },
    Destroying(Teardown),
    Terminated(Arc<Termination>),
}

/// Something that happened to a container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// The pipeline finished its current stage (fetch, pull or mount).
    StageDone,
    /// A launch step failed, with its cause.
    StageFailed(String),
    /// `create` returned.
    Created { docker_id: String },
    /// `start` returned.
    Started,
    /// The process was seen to stop.
    ExitObserved,
    /// `destroy` was called.
    Destroy,
    /// `kill(signal)` was called.
    Kill(i32),
    /// The pipeline finished every step of the teardown.
    Finished(Option<ExitInfo>),
    /// The pipeline died (a bug); end the container with this cause rather than hang waiters.
    Abandoned(String),
}

/// What the one who applied an event must do now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Nothing.
    None,
    /// Pipeline: go on with the next step.
    Proceed,
    /// Pipeline: stop launching, roll back what was made, then send [`Event::Finished`].
    Abort,
    /// Caller: cancel the pipeline's current step (it will roll back and finish).
    Cancel,
    /// Caller: stop the running container (grace, then SIGKILL), retrying until it is down.
    Stop { docker_id: String },
    /// Caller: send `signal` to the running container, retrying until delivered.
    Signal { docker_id: String, signal: i32 },
    /// The termination was just decided.
    Resolved(Arc<Termination>),
}

/// An event that makes no sense in the current state: a bug in the caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("illegal transition: event {event} in state {state}")]
pub(crate) struct IllegalTransition {
    pub state: Phase,
    pub event: String,
}

impl State {
    /// The public phase.
    pub fn phase(&self) -> Phase {
        match self {
            State::Fetching => Phase::Fetching,
            State::Pulling => Phase::Pulling,
            State::Mounting => Phase::Mounting,
            State::Running { .. } => Phase::Running,
            State::Destroying(_) => Phase::Destroying,
            State::Terminated(_) => Phase::Terminated,
        }
    }

    /// The termination, once decided.
    pub fn termination(&self) -> Option<&Arc<Termination>> {
        match self {
            State::Terminated(t) => Some(t),
            _ => None,
        }
    }

    /// Docker's container id, once created.
    pub fn docker_id(&self) -> Option<&str> {
        match self {
            State::Running {
                step: Step::Starting { docker_id } | Step::Started { docker_id },
                ..
            } => Some(docker_id),
            State::Destroying(t) => t.docker_id.as_deref(),
            _ => None,
        }
    }

    /// Whether the pipeline may send `create` now (nothing destroyed the launch meanwhile).
    pub fn may_create(&self) -> bool {
        matches!(
            self,
            State::Running {
                step: Step::Creating,
                ..
            }
        )
    }

    /// Whether the pipeline may send `start` now.
    pub fn may_start(&self) -> bool {
        matches!(
            self,
            State::Running {
                step: Step::Starting { .. },
                ..
            }
        )
    }

    /// Whether the process runs (started and not yet seen to stop).
    pub fn is_started(&self) -> bool {
        matches!(
            self,
            State::Running {
                step: Step::Started { .. },
                ..
            }
        )
    }

    fn teardown(&mut self, cause: Cause, killed: bool) -> Teardown {
        let from = self.phase();
        let (docker_id, started, was_killed) = match self {
            State::Running { step, killed } => match step {
                Step::Creating => (None, false, *killed),
                Step::Starting { docker_id } => (Some(docker_id.clone()), false, *killed),
                Step::Started { docker_id } => (Some(docker_id.clone()), true, *killed),
            },
            _ => (None, false, false),
        };
        Teardown {
            from,
            cause,
            docker_id,
            started,
            killed: killed || was_killed,
        }
    }

    /// Applies `event`, returning what to do. The single place where states change.
    pub fn apply(&mut self, event: Event) -> Result<Action, IllegalTransition> {
        use Event as E;
        let illegal = |state: &State, event: &Event| IllegalTransition {
            state: state.phase(),
            event: format!("{event:?}"),
        };
        let next_stage = |s: &State| match s {
            State::Fetching => Some(State::Pulling),
            State::Pulling => Some(State::Mounting),
            State::Mounting => Some(State::Running {
                step: Step::Creating,
                killed: false,
            }),
            _ => None,
        };
        let (next, action) = match (&*self, event) {
            // The launch stages.
            (State::Fetching | State::Pulling | State::Mounting, E::StageDone) => {
                (next_stage(self), Action::Proceed)
            }
            (
                State::Running {
                    step: Step::Creating,
                    killed,
                },
                E::Created { docker_id },
            ) => (
                Some(State::Running {
                    step: Step::Starting { docker_id },
                    killed: *killed,
                }),
                Action::Proceed,
            ),
            (
                State::Running {
                    step: Step::Starting { docker_id },
                    killed,
                },
                E::Started,
            ) => (
                Some(State::Running {
                    step: Step::Started {
                        docker_id: docker_id.clone(),
                    },
                    killed: *killed,
                }),
                Action::Proceed,
            ),
            (
                State::Fetching
                | State::Pulling
                | State::Mounting
                | State::Running {
                    step: Step::Creating | Step::Starting { .. },
                    ..
                },
                E::StageFailed(cause),
            ) => (
                Some(State::Destroying(
                    self.teardown(Cause::LaunchFailed(cause), false),
                )),
                Action::Abort,
            ),

            // Destroy, kill and the deadline before the process exists: cancel the launch.
            (
                State::Fetching
                | State::Pulling
                | State::Mounting
                | State::Running {
                    step: Step::Creating | Step::Starting { .. },
                    ..
                },
                E::Destroy | E::Kill(_),
            ) => (
                Some(State::Destroying(self.teardown(Cause::Destroyed, true))),
                Action::Cancel,
            ),

            // A running process.
            (
                State::Running {
                    step: Step::Started { docker_id },
                    ..
                },
                E::Destroy,
            ) => {
                let docker_id = docker_id.clone();
                (
                    Some(State::Destroying(self.teardown(Cause::Destroyed, true))),
                    Action::Stop { docker_id },
                )
            }
            (
                State::Running {
                    step: Step::Started { docker_id },
                    ..
                },
                E::Kill(signal),
            ) => (
                Some(State::Running {
                    step: Step::Started {
                        docker_id: docker_id.clone(),
                    },
                    killed: true,
                }),
                Action::Signal {
                    docker_id: docker_id.clone(),
                    signal,
                },
            ),
            (
                State::Running {
                    step: Step::Started { .. },
                    ..
                },
                E::ExitObserved,
            ) => (
                Some(State::Destroying(self.teardown(Cause::Exited, false))),
                Action::None,
            ),

            // Tearing down: launch progress is refused, the rest waits for `Finished`.
            (State::Destroying(_), E::StageDone | E::StageFailed(_)) => (None, Action::Abort),
            (State::Destroying(t), E::Created { docker_id }) => {
                let mut t = t.clone();
                t.docker_id = Some(docker_id);
                (Some(State::Destroying(t)), Action::Abort)
            }
            (State::Destroying(t), E::Started) => {
                let mut t = t.clone();
                t.started = true;
                (Some(State::Destroying(t)), Action::Abort)
            }
            (State::Destroying(_), E::Destroy | E::ExitObserved) => (None, Action::None),
            (State::Destroying(t), E::Kill(signal)) => match (&t.docker_id, t.started) {
                // Lets a caller cut a graceful stop short with SIGKILL.
                (Some(docker_id), true) if t.cause != Cause::Exited => (
                    None,
                    Action::Signal {
                        docker_id: docker_id.clone(),
                        signal,
                    },
                ),
                _ => (None, Action::None),
            },
            (State::Destroying(t), E::Finished(exit)) => {
                let term = Arc::new(conclude(t, exit.as_ref()));
                (
                    Some(State::Terminated(term.clone())),
                    Action::Resolved(term),
                )
            }

            // The end.
            (State::Terminated(_), E::Destroy | E::Kill(_)) => (None, Action::None),

            (s, E::Abandoned(cause)) if !matches!(s, State::Terminated(_)) => {
                let term = Arc::new(Termination::launch_failed(&cause));
                (
                    Some(State::Terminated(term.clone())),
                    Action::Resolved(term),
                )
            }

            (s, event) => return Err(illegal(s, &event)),
        };
        if let Some(next) = next {
            *self = next;
        }
        Ok(action)
    }
}

/// The termination a teardown ends in.
fn conclude(t: &Teardown, exit: Option<&ExitInfo>) -> Termination {
    let status = exit.map(|e| wait_status(e.exit_code));
    let exit_code = exit.map(|e| e.exit_code);
    let (state, reason, message) = match (&t.cause, t.from) {
        (Cause::LaunchFailed(cause), _) => (
            TaskState::Failed,
            Some(Reason::ContainerLaunchFailed),
            format!("{}{cause}", messages::LAUNCH_FAILED_PREFIX),
        ),
        // Killed, as Mesos's agent reports a task killed before it was launched (slave.cpp,
        // `killPendingTask`: TASK_KILLED with REASON_TASK_KILLED_DURING_LAUNCH).
        (Cause::Destroyed, Phase::Fetching) => (
            TaskState::Killed,
            Some(Reason::TaskKilledDuringLaunch),
            messages::DESTROYED_WHILE_FETCHING.to_owned(),
        ),
        (Cause::Destroyed, Phase::Pulling) => (
            TaskState::Killed,
            Some(Reason::TaskKilledDuringLaunch),
            messages::DESTROYED_WHILE_PULLING.to_owned(),
        ),
        (Cause::Destroyed, Phase::Mounting) => (
            TaskState::Killed,
            Some(Reason::TaskKilledDuringLaunch),
            messages::DESTROYED_WHILE_MOUNTING.to_owned(),
        ),
        (Cause::Destroyed, _) => (TaskState::Killed, None, messages::KILLED.to_owned()),
        (Cause::Lost, _) => (TaskState::Lost, None, messages::LOST.to_owned()),
        (Cause::Exited, _) if t.killed => (TaskState::Killed, None, messages::KILLED.to_owned()),
        (Cause::Exited, _) => {
            let state = if exit_code == Some(0) {
                TaskState::Finished
            } else {
                TaskState::Failed
            };
            (state, None, messages::TERMINATED.to_owned())
        }
    };
    let mut term = Termination {
        status,
        exit_code,
        state,
        reason,
        message,
        limitation: None,
        healthy: None,
    };
    if let Some(e) = exit.filter(|e| e.oom_killed) {
        // Read from inspect's OOMKilled, never guessed from exit code 137.
        term.state = TaskState::Failed;
        term.reason = Some(Reason::ContainerLimitationMemory);
        term.limitation = Some(Limitation {
            resource: "mem".to_owned(),
            message: match e.memory_limit {
                Some(limit) => format!("Memory limit exceeded: the container was OOM-killed at its limit of {limit} bytes"),
                None => "Memory limit exceeded: the container was OOM-killed".to_owned(),
            },
        });
    }
    term
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i64) -> Option<ExitInfo> {
        Some(ExitInfo {
            exit_code: code,
            oom_killed: false,
            memory_limit: None,
        })
    }

    fn started() -> State {
        State::Running {
            step: Step::Started {
                docker_id: "d1".into(),
            },
            killed: false,
        }
    }

    fn starting() -> State {
        State::Running {
            step: Step::Starting {
                docker_id: "d1".into(),
            },
            killed: false,
        }
    }

    fn creating() -> State {
        State::Running {
            step: Step::Creating,
            killed: false,
        }
    }

    /// Every state the machine can be in before the end, with a name for messages.
    fn live_states() -> Vec<(&'static str, State)> {
        let td = |cause| Teardown {
            from: Phase::Running,
            cause,
            docker_id: Some("d1".into()),
            started: true,
            killed: false,
        };
        vec![
            ("fetching", State::Fetching),
            ("pulling", State::Pulling),
            ("mounting", State::Mounting),
            ("creating", creating()),
            ("starting", starting()),
            ("started", started()),
            (
                "destroying(destroyed)",
                State::Destroying(Teardown {
                    killed: true,
                    ..td(Cause::Destroyed)
                }),
            ),
            ("destroying(exited)", State::Destroying(td(Cause::Exited))),
            (
                "destroying(failed)",
                State::Destroying(td(Cause::LaunchFailed("x".into()))),
            ),
        ]
    }

    fn events() -> Vec<Event> {
        vec![
            Event::StageDone,
            Event::StageFailed("boom".into()),
            Event::Created {
                docker_id: "d2".into(),
            },
            Event::Started,
            Event::ExitObserved,
            Event::Destroy,
            Event::Kill(15),
            Event::Finished(exit(0)),
            Event::Abandoned("bug".into()),
        ]
    }

    #[test]
    fn happy_path_walks_every_phase_in_order() {
        let mut s = State::Fetching;
        let mut phases = vec![s.phase()];
        for ev in [Event::StageDone, Event::StageDone, Event::StageDone] {
            assert_eq!(s.apply(ev).unwrap(), Action::Proceed);
            phases.push(s.phase());
        }
        assert_eq!(
            s.apply(Event::Created {
                docker_id: "d".into()
            })
            .unwrap(),
            Action::Proceed
        );
        assert_eq!(s.docker_id(), Some("d"));
        assert_eq!(s.apply(Event::Started).unwrap(), Action::Proceed);
        assert!(s.is_started());
        assert_eq!(s.apply(Event::ExitObserved).unwrap(), Action::None);
        phases.push(s.phase());
        let Action::Resolved(t) = s.apply(Event::Finished(exit(0))).unwrap() else {
            panic!()
        };
        phases.push(s.phase());
        assert_eq!(
            phases,
            [
                Phase::Fetching,
                Phase::Pulling,
                Phase::Mounting,
                Phase::Running,
                Phase::Destroying,
                Phase::Terminated
            ]
        );
        assert_eq!(t.state, TaskState::Finished);
        assert_eq!(t.message, "Container terminated");
        assert_eq!(t.status, Some(0));
    }

    #[test]
    fn destroy_in_each_launch_phase_cancels_and_ends_with_mesos_message() {
        let cases = [
            (
                State::Fetching,
                "Container destroyed while fetching",
                TaskState::Killed,
            ),
            (
                State::Pulling,
                "Container destroyed while pulling image",
                TaskState::Killed,
            ),
            (
                State::Mounting,
                "Container destroyed while mounting volumes",
                TaskState::Killed,
            ),
            (creating(), "Container killed", TaskState::Killed),
            (starting(), "Container killed", TaskState::Killed),
        ];
        for (mut s, message, state) in cases {
            let from = s.phase();
            assert_eq!(s.apply(Event::Destroy).unwrap(), Action::Cancel, "{from}");
            assert_eq!(s.phase(), Phase::Destroying);
            // The stage finishing in the same instant is refused: no start after destroy.
            assert_eq!(s.apply(Event::StageDone).unwrap(), Action::Abort, "{from}");
            assert_eq!(
                s.apply(Event::Created {
                    docker_id: "late".into()
                })
                .unwrap(),
                Action::Abort
            );
            assert_eq!(
                s.docker_id(),
                Some("late"),
                "the rollback must know the late container"
            );
            assert_eq!(s.apply(Event::Started).unwrap(), Action::Abort);
            // A second destroy changes nothing.
            assert_eq!(s.apply(Event::Destroy).unwrap(), Action::None);
            let Action::Resolved(t) = s.apply(Event::Finished(None)).unwrap() else {
                panic!()
            };
            assert_eq!(t.message, message, "{from}");
            assert_eq!(t.state, state, "{from}");
            assert_eq!(t.status, None);
        }
    }

    #[test]
    fn destroy_of_a_running_process_stops_it_and_reports_killed_with_the_real_status() {
        let mut s = started();
        assert_eq!(
            s.apply(Event::Destroy).unwrap(),
            Action::Stop {
                docker_id: "d1".into()
            }
        );
        assert_eq!(s.apply(Event::Destroy).unwrap(), Action::None);
        // SIGKILL during the grace period goes through.
        assert_eq!(
            s.apply(Event::Kill(9)).unwrap(),
            Action::Signal {
                docker_id: "d1".into(),
                signal: 9
            }
        );
        assert_eq!(s.apply(Event::ExitObserved).unwrap(), Action::None);
        let Action::Resolved(t) = s.apply(Event::Finished(exit(0))).unwrap() else {
            panic!()
        };
        assert_eq!(
            t.state,
            TaskState::Killed,
            "killed even though the exit code is 0"
        );
        assert_eq!(t.message, "Container killed");
        assert_eq!(t.status, Some(0));
    }

    #[test]
    fn kill_signals_a_running_process_and_marks_it_killed() {
        let mut s = started();
        assert_eq!(
            s.apply(Event::Kill(15)).unwrap(),
            Action::Signal {
                docker_id: "d1".into(),
                signal: 15
            }
        );
        assert_eq!(s.phase(), Phase::Running);
        s.apply(Event::ExitObserved).unwrap();
        let Action::Resolved(t) = s.apply(Event::Finished(exit(143))).unwrap() else {
            panic!()
        };
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(t.message, "Container killed");
        assert_eq!(t.exited_with(), Some(143));
    }

    #[test]
    fn kill_before_the_process_exists_destroys_the_launch() {
        let mut s = State::Pulling;
        assert_eq!(s.apply(Event::Kill(9)).unwrap(), Action::Cancel);
        let Action::Resolved(t) = s.apply(Event::Finished(None)).unwrap() else {
            panic!()
        };
        assert_eq!(t.message, "Container destroyed while pulling image");
    }

    #[test]
    fn natural_exit_states() {
        for (code, state) in [
            (0, TaskState::Finished),
            (1, TaskState::Failed),
            (137, TaskState::Failed),
        ] {
            let mut s = started();
            s.apply(Event::ExitObserved).unwrap();
            // A destroy after the exit was seen neither stops nor changes the outcome.
            assert_eq!(s.apply(Event::Destroy).unwrap(), Action::None);
            assert_eq!(s.apply(Event::Kill(9)).unwrap(), Action::None);
            let Action::Resolved(t) = s.apply(Event::Finished(exit(code))).unwrap() else {
                panic!()
            };
            assert_eq!(t.state, state, "exit {code}");
            assert_eq!(t.message, "Container terminated");
            assert_eq!(t.reason, None, "137 alone is not an OOM");
        }
    }

    #[test]
    fn oom_comes_from_inspect_only() {
        let mut s = started();
        s.apply(Event::ExitObserved).unwrap();
        let info = ExitInfo {
            exit_code: 137,
            oom_killed: true,
            memory_limit: Some(64 << 20),
        };
        let Action::Resolved(t) = s.apply(Event::Finished(Some(info))).unwrap() else {
            panic!()
        };
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(t.reason, Some(Reason::ContainerLimitationMemory));
        let l = t.limitation.as_ref().unwrap();
        assert_eq!(l.resource, "mem");
        assert!(l.message.contains("67108864"), "{}", l.message);
    }

    #[test]
    fn stage_failure_and_deadline_are_launch_failures() {
        for (mut s, ev, action) in [
            (
                State::Fetching,
                Event::StageFailed("some error from fetch".into()),
                Action::Abort,
            ),
            (
                State::Pulling,
                Event::StageFailed("some error from docker pull".into()),
                Action::Abort,
            ),
            (
                creating(),
                Event::StageFailed("create refused".into()),
                Action::Abort,
            ),
            (
                starting(),
                Event::StageFailed("start refused".into()),
                Action::Abort,
            ),
        ] {
            let cause = match &ev {
                Event::StageFailed(c) => c.clone(),
                _ => unreachable!(),
            };
            assert_eq!(s.apply(ev).unwrap(), action);
            let Action::Resolved(t) = s.apply(Event::Finished(None)).unwrap() else {
                panic!()
            };
            assert_eq!(t.message, format!("Failed to launch container: {cause}"));
            assert_eq!(t.reason, Some(Reason::ContainerLaunchFailed));
            assert_eq!(t.state, TaskState::Failed);
        }
    }

    /// Every state x every event: either a defined action or an illegal transition, and a
    /// termination only ever comes from `Finished` in DESTROYING (or `Abandoned`).
    #[test]
    fn every_state_times_every_event() {
        for (name, state) in live_states() {
            for ev in events() {
                let mut s = state.clone();
                let before = s.phase();
                let result = s.apply(ev.clone());
                match &result {
                    Ok(Action::Resolved(t)) => {
                        assert!(
                            matches!(ev, Event::Finished(_) if before == Phase::Destroying)
                                || matches!(ev, Event::Abandoned(_)),
                            "{name} x {ev:?} resolved {t:?}"
                        );
                        assert_eq!(s.termination(), Some(t));
                    }
                    Ok(Action::Proceed) => {
                        assert!(
                            matches!(
                                ev,
                                Event::StageDone | Event::Created { .. } | Event::Started
                            ),
                            "{name} x {ev:?}"
                        );
                        assert_ne!(
                            before,
                            Phase::Destroying,
                            "{name}: no progress once destroying"
                        );
                    }
                    Ok(_) => assert!(s.termination().is_none(), "{name} x {ev:?}"),
                    Err(e) => {
                        assert_eq!(s, state, "an illegal event must not change the state");
                        assert!(e.to_string().contains("illegal transition"), "{e}");
                    }
                }
                // Once destroying, the machine never goes back.
                if before == Phase::Destroying {
                    assert!(
                        matches!(s.phase(), Phase::Destroying | Phase::Terminated),
                        "{name} x {ev:?}"
                    );
                }
            }
        }
        // Terminated absorbs destroy/kill and refuses the rest.
        let done = State::Terminated(Arc::new(Termination::launch_failed("x")));
        for ev in events() {
            let mut s = done.clone();
            let r = s.apply(ev.clone());
            match ev {
                Event::Destroy | Event::Kill(_) => assert_eq!(r.unwrap(), Action::None),
                _ => assert!(r.is_err(), "{ev:?} after the end"),
            }
            assert_eq!(s, done);
        }
    }

    #[test]
    fn illegal_events_are_reported() {
        let mut s = State::Fetching;
        let e = s.apply(Event::Started).unwrap_err();
        assert_eq!(e.state, Phase::Fetching);
        let e = State::Pulling.apply(Event::Finished(None)).unwrap_err();
        assert!(e.to_string().contains("PULLING"), "{e}");
        assert!(started().apply(Event::StageDone).is_err());
        assert!(State::Mounting.apply(Event::ExitObserved).is_err());
    }
}
