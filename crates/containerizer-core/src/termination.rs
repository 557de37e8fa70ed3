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
    /// The raw wait(2) status as Mesos reports it for a Docker container: Docker's exit code
    /// `<< 8` (see [`wait_status`]); `None` when the container never ran.
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
    /// `Some(false)` when the agent killed it for failing its health check (Mesos sets
    /// `TaskStatus.healthy` false on the terminal update of a task its health check killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
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
            healthy: None,
        }
    }

    /// Whether the process exited by itself with `code` (wait status decoded).
    pub fn exited_with(&self) -> Option<i32> {
        let s = self.status?;
        (s & 0x7f == 0).then_some((s >> 8) & 0xff)
    }
}

/// Converts Docker's exit code to the wait(2) status Mesos reports: always a normal exit,
/// `(code & 0xff) << 8`, never a death by signal.
///
/// Why: Mesos's Docker executor runs the container through an attached `docker run` and takes
/// the wait status of that CLI process (`Docker::run` returns the subprocess's status; the
/// executor's `_reaped` turns it into the task's state and "Container exited with status N").
/// The CLI itself exits normally with the container's code, so a container killed by SIGKILL
/// (Docker: 137) or ended by SIGTERM (143) is reported as exited with 137 or 143. Docker cannot
/// tell `exit(137)` from SIGKILL either, so this loses nothing Docker knew.
pub fn wait_status(exit_code: i64) -> i32 {
    ((exit_code & 0xff) as i32) << 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_is_always_a_normal_exit_with_dockers_code() {
        // Docker's code for an exit, a SIGKILL (137), a SIGTERM (143), the top of the signal
        // range (192) and beyond it: each is an exit with that code, as `docker run` reports.
        for code in [0, 1, 42, 128, 129, 137, 143, 192, 193, 255] {
            let s = wait_status(code);
            assert_eq!(s, (code as i32) << 8, "code {code}");
            let t = Termination {
                status: Some(s),
                ..Termination::launch_failed("x")
            };
            assert_eq!(t.exited_with(), Some(code as i32), "code {code}");
            // WIFSIGNALED is false: the low 7 bits are 0.
            assert_eq!(s & 0x7f, 0, "code {code}");
        }
        // Only the low byte survives, as for any exit status.
        assert_eq!(wait_status(256 + 3), 3 << 8);
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
