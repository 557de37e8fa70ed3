//! Finding the Docker daemon, and on CI starting one when the machine has none running.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_docker_api::Docker;

use crate::util::{self, Result};

/// The daemon address as `DOCKER_HOST` spells it.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

async fn ping() -> Result<Docker> {
    let docker = Docker::from_env().await.map_err(|e| e.to_string())?;
    docker.ping().await.map_err(|e| e.to_string())?;
    Ok(docker)
}

/// A client for a daemon that answers; on CI, installs Debian's `docker.io` and starts `dockerd` first
/// when nothing answers. Elsewhere it says what is missing and how to fix it.
pub async fn ensure(state: &Path) -> Result<Docker> {
    let host = docker_host();
    let first = match ping().await {
        Ok(docker) => {
            util::step(format!("docker daemon answers at {host}"));
            return Ok(docker);
        }
        Err(e) => e,
    };
    if !util::in_ci() {
        return Err(format!(
            "the Docker daemon does not answer at {host}: {first}\n  \
             start it (`sudo systemctl start docker`, or `sudo dockerd &`), or point DOCKER_HOST at one; \
             under CI=true the test bed installs and starts it by itself"
        ));
    }
    if !host.starts_with("unix://") {
        return Err(format!(
            "the Docker daemon does not answer at {host}: {first}; CI only starts a local one"
        ));
    }
    util::step(format!(
        "no daemon answers at {host} ({first}); starting one (CI=true)"
    ));
    if !util::have("dockerd") {
        util::apt_install(&["docker.io"])?;
    }
    start_dockerd(state)?;
    let mut last = String::new();
    for _ in 0..600 {
        match ping().await {
            Ok(docker) => {
                util::step(format!("dockerd started; answers at {host}"));
                return Ok(docker);
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(state.join("dockerd.log")).unwrap_or_default();
    Err(format!(
        "dockerd did not answer within 60s: {last}\n-- dockerd.log (tail):\n{}",
        tail(&log, 30)
    ))
}

fn start_dockerd(state: &Path) -> Result<()> {
    std::fs::create_dir_all(state).map_err(|e| e.to_string())?;
    let log_path = state.join("dockerd.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("dockerd");
    // vfs works on every file system these machines have; a daemon.json that names a driver wins,
    // since dockerd refuses a setting given both as a flag and in its file.
    let configured = std::fs::read_to_string("/etc/docker/daemon.json").unwrap_or_default();
    if !configured.contains("storage-driver") {
        cmd.arg("--storage-driver=vfs");
    }
    use std::os::unix::process::CommandExt;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start dockerd: {e}"))?;
    std::fs::write(state.join("dockerd.pid"), child.id().to_string()).map_err(|e| e.to_string())?;
    Ok(())
}

/// Stops a dockerd the test bed started (never one it found running).
pub fn stop_ours(state: &Path) {
    let Ok(pid) = std::fs::read_to_string(state.join("dockerd.pid")) else {
        return;
    };
    let pid = pid.trim();
    if pid
        .parse::<u32>()
        .is_ok_and(|p| util::process_alive(p, "dockerd"))
    {
        let _ = Command::new("kill").arg(pid).status();
        util::step("stopped the dockerd the test bed had started");
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
