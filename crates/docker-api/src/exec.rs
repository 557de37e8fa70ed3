//! Exec instances: run a command in a running container (health checks, debugging).

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Docker};
use crate::containers::Attached;
use crate::decode::frames::{FrameMode, LogStream};
use crate::error::{Error, Result, Target};
use crate::query::PathAndQuery;
use crate::serde_util::null_default;

/// What to run (`POST /containers/{id}/exec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Extra environment, `KEY=value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// User (`name`, `uid[:gid]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Allocate a TTY.
    pub tty: bool,
    /// Attach stdin.
    pub attach_stdin: bool,
    /// Attach stdout.
    pub attach_stdout: bool,
    /// Attach stderr.
    pub attach_stderr: bool,
    /// Run with extended privileges.
    pub privileged: bool,
}

impl ExecConfig {
    /// Runs `cmd` with stdout and stderr attached.
    pub fn command<S: Into<String>>(cmd: impl IntoIterator<Item = S>) -> ExecConfig {
        ExecConfig {
            cmd: cmd.into_iter().map(Into::into).collect(),
            attach_stdout: true,
            attach_stderr: true,
            ..ExecConfig::default()
        }
    }
}

/// An exec instance's state (`GET /exec/{id}/json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ExecInspect {
    /// Exec ID.
    #[serde(default, rename = "ID")]
    pub id: String,
    /// Whether the command runs.
    #[serde(default)]
    pub running: bool,
    /// Exit code, once it exited.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Host PID.
    #[serde(default)]
    pub pid: i64,
    /// The container.
    #[serde(default, rename = "ContainerID")]
    pub container_id: String,
    /// What runs.
    #[serde(default)]
    pub process_config: ExecProcessConfig,
}

/// The process of an exec.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct ExecProcessConfig {
    /// Executable.
    #[serde(default)]
    pub entrypoint: String,
    /// Arguments.
    #[serde(default, deserialize_with = "null_default")]
    pub arguments: Vec<String>,
    /// Whether it has a TTY.
    #[serde(default)]
    pub tty: bool,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Privileged.
    #[serde(default)]
    pub privileged: bool,
}

/// What [`Execs::run`] collected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecOutput {
    /// Exit code (data, also when non-zero).
    pub exit_code: i64,
    /// Standard output (everything, with a TTY).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

/// Exec calls; get one from [`Docker::exec`].
#[derive(Debug, Clone, Copy)]
pub struct Execs<'a> {
    docker: &'a Docker,
}

impl Docker {
    /// Exec calls.
    pub fn exec(&self) -> Execs<'_> {
        Execs { docker: self }
    }
}

impl Execs<'_> {
    /// Creates an exec instance in a running container; returns its ID.
    pub async fn create(&self, container: &str, config: &ExecConfig) -> Result<String> {
        let path = PathAndQuery::new("/containers")
            .segment(container)
            .literal("/exec")
            .into_string();
        let call = Call::post(path)
            .json_body(config)
            .target(Target::Container(container.to_owned()));
        Ok(self.docker.json::<Created>(call).await?.id)
    }

    /// Starts an exec instance and attaches to it; output framing follows the exec's TTY
    /// setting (read from inspect). Untimed once attached.
    pub async fn start(&self, id: &str) -> Result<Attached> {
        let tty = self.inspect(id).await?.process_config.tty;
        let path = PathAndQuery::new("/exec")
            .segment(id)
            .literal("/start")
            .into_string();
        let body = serde_json::json!({ "Detach": false, "Tty": tty });
        let call = Call::post(path)
            .json_body(&body)
            .target(Target::Exec(id.to_owned()));
        let mode = if tty {
            FrameMode::Raw
        } else {
            FrameMode::Multiplexed
        };
        crate::containers::attach_hijack(self.docker, call, mode).await
    }

    /// Starts an exec instance in the background.
    pub async fn start_detached(&self, id: &str) -> Result<()> {
        let path = PathAndQuery::new("/exec")
            .segment(id)
            .literal("/start")
            .into_string();
        let body = serde_json::json!({ "Detach": true, "Tty": false });
        self.docker
            .unit(
                Call::post(path)
                    .json_body(&body)
                    .target(Target::Exec(id.to_owned())),
            )
            .await
    }

    /// Sets the window size of a running exec instance's TTY (`POST /exec/{id}/resize`).
    pub async fn resize(&self, id: &str, size: crate::containers::TtySize) -> Result<()> {
        let path = PathAndQuery::new("/exec")
            .segment(id)
            .literal("/resize")
            .param("h", size.rows)
            .param("w", size.columns)
            .into_string();
        self.docker
            .unit(Call::post(path).target(Target::Exec(id.to_owned())))
            .await
    }

    /// An exec instance's state (exit code once done).
    pub async fn inspect(&self, id: &str) -> Result<ExecInspect> {
        let path = PathAndQuery::new("/exec")
            .segment(id)
            .literal("/json")
            .into_string();
        self.docker
            .json(Call::get(path).target(Target::Exec(id.to_owned())))
            .await
    }

    /// Runs a command to completion and collects its output and exit code; the whole run is
    /// bounded by `deadline`.
    pub async fn run(
        &self,
        container: &str,
        config: &ExecConfig,
        deadline: Duration,
    ) -> Result<ExecOutput> {
        let work = async {
            let id = self.create(container, config).await?;
            let mut attached = self.start(&id).await?;
            drop(attached.input);
            let mut output = ExecOutput::default();
            while let Some(frame) = attached.output.next().await {
                let frame = frame?;
                match frame.stream {
                    LogStream::Stderr => output.stderr.extend_from_slice(&frame.data),
                    _ => output.stdout.extend_from_slice(&frame.data),
                }
            }
            // The output can end a moment before the daemon records the exit code.
            loop {
                let state = self.inspect(&id).await?;
                if let (false, Some(code)) = (state.running, state.exit_code) {
                    output.exit_code = code;
                    return Ok(output);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                request: format!("exec {:?} in container {container}", config.cmd),
                after: deadline,
            }),
        }
    }
}
