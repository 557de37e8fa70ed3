//! An exec's process as the host sees it, through Docker's view of the exec instance: a pidfd
//! to signal it by (a pid Docker reported can be reused once its process is gone; a pidfd
//! cannot), its process group to kill with it, and its exit code once Docker has recorded it.
//! Sessions and health checks share it.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal};

use crate::engine::{Engine, EngineError, ExecState};

/// An exec's process on the host. Docker (runc) starts an exec as the leader of a session and
/// a process group of its own, so its pid is also its group's id: a shell's children are in
/// the group, and go with it.
#[derive(Debug)]
pub(crate) struct ExecProcess {
    pidfd: OwnedFd,
    pid: u32,
}

impl ExecProcess {
    /// Sends `signal` to the process alone (a client's `KILL` with a signal, as Mesos sends it
    /// to a nested container's process); one that has just exited is not an error.
    pub(crate) fn signal(&self, signal: Signal) -> std::io::Result<()> {
        send(&self.pidfd, signal)
    }

    /// SIGKILLs the process and every process of its group, so that a check's
    /// `sh -c 'curl ... || exit 1'` does not leave its `curl` behind. The leader dies last:
    /// while it lives no other process can have its pid, so the group's id names this group
    /// only. Each member is signalled through a pidfd, opened before its group is read again,
    /// so a pid reused meanwhile is never hit. A member forked during the sweep may escape it;
    /// a second sweep narrows that.
    pub(crate) fn kill_group(&self) -> std::io::Result<()> {
        for _ in 0..2 {
            for pid in group_members(self.pid) {
                let Some(raw) = Pid::from_raw(pid as i32) else {
                    continue;
                };
                let Ok(fd) = rustix::process::pidfd_open(raw, PidfdFlags::empty()) else {
                    continue;
                };
                if process_group(pid) == Some(self.pid) {
                    let _ = send(&fd, Signal::KILL);
                }
            }
        }
        send(&self.pidfd, Signal::KILL)
    }
}

/// The pids of the processes in process group `pgid`, its leader aside.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != pgid && process_group(pid) == Some(pgid))
        .collect()
}

/// The process group of `pid`, from `/proc/<pid>/stat` (the kernel's, so neither a link nor a
/// FIFO a container could plant).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_group(&stat)
}

/// The fields after the command name, which ends at the last `)` whatever name a process gave
/// itself, are `state ppid pgrp ...`.
fn parse_process_group(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Exec `exec_id`'s process, its pidfd opened while Docker reports it running, so the pid is
/// still its own. Docker reports an exec running (and then its pid) only a moment after its
/// start returns; `None` if it ended first, or never started within about a second.
pub(crate) async fn find(engine: &dyn Engine, exec_id: &str) -> Option<ExecProcess> {
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
                let pid = Pid::from_raw(raw_pid as i32)?;
                let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
                    Ok(fd) => fd,
                    Err(e) => {
                        tracing::debug!(exec_id, pid = ?pid, error = %e, "cannot open the exec's process");
                        return None;
                    }
                };
                // Still running after the open: the pid was not reused in between.
                return match engine.exec_state(exec_id).await {
                    Ok(again) if again.running && again.pid == Some(raw_pid) => Some(ExecProcess {
                        pidfd,
                        pid: raw_pid,
                    }),
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
fn send(pidfd: &OwnedFd, signal: Signal) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_read_after_the_last_parenthesis_of_any_name() {
        assert_eq!(parse_process_group("7 (sh) S 0 7 7 0 -1"), Some(7));
        // A process may name itself anything, parentheses and numbers included.
        assert_eq!(
            parse_process_group("9 (a) S 1 2 (x) R 3 44 44 0 -1"),
            Some(44)
        );
        assert_eq!(parse_process_group("garbage"), None);
    }

    #[test]
    fn a_group_is_killed_with_its_leader_and_nothing_else() {
        use std::os::unix::process::CommandExt as _;
        // A leader of its own group with children in it (one that lives on, and the loop's),
        // and a bystander outside it. The leader outlives its children, so only the kill ends
        // it.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & while :; do sleep 1; done"])
            .process_group(0)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut bystander = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = leader.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let child = loop {
            let long = group_members(pid).into_iter().find(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.starts_with("sleep\x0060"))
            });
            if let Some(child) = long {
                break child;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the child never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let child_fd =
            rustix::process::pidfd_open(Pid::from_raw(child as i32).unwrap(), PidfdFlags::empty())
                .unwrap();
        let process = ExecProcess {
            pidfd: rustix::process::pidfd_open(
                Pid::from_raw(pid as i32).unwrap(),
                PidfdFlags::empty(),
            )
            .unwrap(),
            pid,
        };
        process.kill_group().unwrap();
        assert!(
            leader.wait().unwrap().code().is_none(),
            "the leader was killed"
        );
        // The child's pidfd turns readable once it has exited (it is not ours to reap).
        let mut fds = [rustix::event::PollFd::new(
            &child_fd,
            rustix::event::PollFlags::IN,
        )];
        let ready = rustix::event::poll(
            &mut fds,
            Some(&rustix::event::Timespec {
                tv_sec: 10,
                tv_nsec: 0,
            }),
        )
        .unwrap();
        assert_eq!(ready, 1, "the child in the group lives on");
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "the bystander was hit"
        );
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }
}
