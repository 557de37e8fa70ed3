//! An exec's process as the host sees it, through Docker's view of the exec instance: a pidfd
//! to signal it by (a pid Docker reported can be reused once its process is gone; a pidfd
//! cannot), and its exit code once Docker has recorded it. Sessions and health checks share it.

use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::engine::{Engine, EngineError, ExecState};

/// A pidfd of exec `exec_id`'s process, opened while Docker reports it running, so the pid is
/// still its own. Docker reports an exec running (and then its pid) only a moment after its
/// start returns; `None` if it ended first, or never started within about a second.
pub(crate) async fn pidfd(engine: &dyn Engine, exec_id: &str) -> Option<OwnedFd> {
    let mut delay = Duration::from_millis(2);
    for _ in 0..20 {
        let state = engine.exec_state(exec_id).await;
        tracing::trace!(exec_id, ?state, "the exec's state");
        match state {
            // Docker reads "running" a moment before it knows the pid.
            Ok(ExecState {
                running: true,
                pid: Some(raw_pid),
                ..
            }) => {
                let pid = rustix::process::Pid::from_raw(raw_pid as i32)?;
                let fd = match rustix::process::pidfd_open(
                    pid,
                    rustix::process::PidfdFlags::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(e) => {
                        tracing::debug!(exec_id, pid = ?pid, error = %e, "cannot open the exec's process");
                        return None;
                    }
                };
                // Still running after the open: the pid was not reused in between.
                return match engine.exec_state(exec_id).await {
                    Ok(again) if again.running && again.pid == Some(raw_pid) => Some(fd),
                    _ => None,
                };
            }
            // Started and already ended.
            Ok(ExecState {
                running: false,
                pid: Some(_),
                ..
            }) => return None,
            // Not started yet (or its start failed: its output says so and ends).
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(exec_id, error = %e, "cannot inspect the exec");
                return None;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
    None
}

/// Sends `signal` to the process behind `pidfd`; one that has just exited is not an error.
pub(crate) fn signal(pidfd: &OwnedFd, signal: rustix::process::Signal) -> std::io::Result<()> {
    match rustix::process::pidfd_send_signal(pidfd, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Exec `exec_id`'s state once Docker no longer reports it running, for an exec whose output
/// has ended: Docker records the exit a moment after. `None` when it still reads "running"
/// after about ten seconds.
pub(crate) async fn ended(
    engine: &dyn Engine,
    exec_id: &str,
) -> Result<Option<ExecState>, EngineError> {
    let mut delay = Duration::from_millis(10);
    for _ in 0..50 {
        let state = engine.exec_state(exec_id).await?;
        if !state.running {
            return Ok(Some(state));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
    Ok(None)
}
