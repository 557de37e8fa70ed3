//! How a container ended: Mesos's `ContainerTermination` with a wait(2)-style status, the task
//! state, the reason and the message.

use serde::{Deserialize, Serialize};

/// Mesos `TaskState` (the subset a containerizer reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Exited with status 0.
    #[serde(rename = "TASK_FINISHED")]
    Finished,
    /// Exited with a non-zero status, or never started.
    #[serde(rename = "TASK_FAILED")]
    Failed,
    /// Killed on request (even if it then exited with 0).
    #[serde(rename = "TASK_KILLED")]
    Killed,
    /// Its fate is unknown (the Docker container vanished while the agent was down).
    #[serde(rename = "TASK_LOST")]
    Lost,
}

impl TaskState {
    /// The Mesos name, e.g. `TASK_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Finished => "TASK_FINISHED",
            TaskState::Failed => "TASK_FAILED",
            TaskState::Killed => "TASK_KILLED",
            TaskState::Lost => "TASK_LOST",
        }
    }
}

/// Mesos `TaskStatus.Reason` (the subset a containerizer reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// The launch failed (fetch, pull, create, start, deadline).
    #[serde(rename = "REASON_CONTAINER_LAUNCH_FAILED")]
    ContainerLaunchFailed,
    /// The container was destroyed before it started.
    #[serde(rename = "REASON_TASK_KILLED_DURING_LAUNCH")]
    TaskKilledDuringLaunch,
    /// The container ran out of memory.
    #[serde(rename = "REASON_CONTAINER_LIMITATION_MEMORY")]
    ContainerLimitationMemory,
    /// The container terminated (Mesos's default reason).
    #[serde(rename = "REASON_EXECUTOR_TERMINATED")]
    ExecutorTerminated,
    /// The agent restarted and the container's end could not be observed.
    #[serde(rename = "REASON_CONTAINER_LIMITATION")]
    ContainerLimitation,
}

impl Reason {
    /// The Mesos name, e.g. `REASON_CONTAINER_LAUNCH_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ContainerLaunchFailed => "REASON_CONTAINER_LAUNCH_FAILED",
            Reason::TaskKilledDuringLaunch => "REASON_TASK_KILLED_DURING_LAUNCH",
            Reason::ContainerLimitationMemory => "REASON_CONTAINER_LIMITATION_MEMORY",
            Reason::ExecutorTerminated => "REASON_EXECUTOR_TERMINATED",
            Reason::ContainerLimitation => "REASON_CONTAINER_LIMITATION",
        }
    }
}

/// A resource limit the container hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limitation {
    /// The resource, e.g. `mem`.
    pub resource: String,
    /// What happened, e.g. "Memory limit exceeded: Requested: 64MB Maximum Used: ...".
    pub message: String,
}

/// Mesos's termination messages, exactly.
pub mod messages {
    /// Destroyed in FETCHING.
    pub const DESTROYED_WHILE_FETCHING: &str = "Container destroyed while fetching";
    /// Destroyed in PULLING.
    pub const DESTROYED_WHILE_PULLING: &str = "Container destroyed while pulling image";
    /// Destroyed in MOUNTING.
    pub const DESTROYED_WHILE_MOUNTING: &str = "Container destroyed while mounting volumes";
    /// Destroyed (or killed) in RUNNING.
    pub const KILLED: &str = "Container killed";
    /// Exited on its own.
    pub const TERMINATED: &str = "Container terminated";
    /// Gone while the agent was down.
    pub const LOST: &str =
        "Container terminated while the agent was down and its Docker container is gone; its exit status is unknown";
    /// Prefix of a launch failure: `Failed to launch container: <cause>`.
    pub const LAUNCH_FAILED_PREFIX: &str = "Failed to launch container: ";
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// The raw wait(2) status: `exit_code << 8` for an exit, the signal number for a death by
    /// signal; `None` when the container never ran.
    pub status: Option<i32>,
    /// Docker's exit code as reported (128 + N for a death by signal N).
    pub exit_code: Option<i64>,
    /// The task state this termination implies.
    pub state: TaskState,
    /// Why, when there is more to say than the state.
    pub reason: Option<Reason>,
    /// Human-readable text (Mesos's messages, see [`messages`]).
    pub message: String,
    /// The limit the container hit, if one killed it.
    pub limitation: Option<Limitation>,
}

impl Termination {
    /// A launch failure: FAILED, `REASON_CONTAINER_LAUNCH_FAILED`, "Failed to launch container:
    /// <cause>".
    pub fn launch_failed(cause: &str) -> Termination {
        Termination {
            status: None,
            exit_code: None,
            state: TaskState::Failed,
            reason: Some(Reason::ContainerLaunchFailed),
            message: format!("{}{cause}", messages::LAUNCH_FAILED_PREFIX),
            limitation: None,
        }
    }

    /// Whether the process exited by itself with `code` (wait status decoded).
    pub fn exited_with(&self) -> Option<i32> {
        let s = self.status?;
        (s & 0x7f == 0).then_some((s >> 8) & 0xff)
    }

    /// The signal that ended the process, if it was one.
    pub fn signaled_by(&self) -> Option<i32> {
        let s = self.status?;
        let sig = s & 0x7f;
        (sig != 0).then_some(sig)
    }
}

/// Highest real-time signal number on Linux.
const MAX_SIGNAL: i64 = 64;

/// Converts Docker's exit code to a wait(2) status. Docker reports a death by signal N as exit
/// code 128 + N, so codes 129..=192 become a signal status; a process that really called
/// `exit(137)` is indistinguishable from one killed by SIGKILL (Docker does not say).
pub fn wait_status(exit_code: i64) -> i32 {
    if exit_code > 128 && exit_code <= 128 + MAX_SIGNAL {
        (exit_code - 128) as i32
    } else {
        ((exit_code & 0xff) as i32) << 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_encodes_exits_and_signals() {
        assert_eq!(wait_status(0), 0);
        assert_eq!(wait_status(1), 256);
        assert_eq!(wait_status(42), 42 << 8);
        assert_eq!(wait_status(137), 9);
        assert_eq!(wait_status(143), 15);
        assert_eq!(wait_status(128), 128 << 8);
        let t = Termination {
            status: Some(wait_status(3)),
            ..Termination::launch_failed("x")
        };
        assert_eq!(t.exited_with(), Some(3));
        assert_eq!(t.signaled_by(), None);
        let t = Termination {
            status: Some(wait_status(137)),
            ..t
        };
        assert_eq!(t.exited_with(), None);
        assert_eq!(t.signaled_by(), Some(9));
    }

    #[test]
    fn launch_failed_uses_mesos_text_and_reason() {
        let t = Termination::launch_failed("some error from fetch");
        assert_eq!(
            t.message,
            "Failed to launch container: some error from fetch"
        );
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(t.reason, Some(Reason::ContainerLaunchFailed));
        assert_eq!(serde_json::to_value(t.state).unwrap(), "TASK_FAILED");
        assert_eq!(
            serde_json::to_value(t.reason).unwrap(),
            "REASON_CONTAINER_LAUNCH_FAILED"
        );
    }
}
