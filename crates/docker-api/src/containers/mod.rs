//! Container calls: create, start, inspect, list, wait, kill, stop, restart, remove, logs,
//! attach, stats, update, top, resize.

mod attach;
mod config;
mod inspect;
mod logs;
mod stats;

pub use attach::{AttachInput, AttachOptions, Attached};
pub use config::{
    BindOptions, ContainerConfig, DeviceMapping, Empty, EndpointSettings, HealthConfig, HostConfig,
    LogConfig, Mount, NetworkingConfig, PortBinding, RestartPolicy, TmpfsOptions, Ulimit,
    VolumeDriver, VolumeOptions,
};
pub use inspect::{
    ContainerInspect, ContainerState, ContainerStatus, ContainerSummary, CreatedContainer, Health,
    HealthResult, ListContainersOptions, MountPoint, NetworkSettings, RemoveContainerOptions, Top,
    UpdateResources, UpdateResult, WaitCondition, WaitError, WaitResponse,
};
pub use logs::LogsOptions;

pub(crate) use attach::hijack as attach_hijack;
pub use stats::{CpuStats, CpuUsage, MemoryStats, NetworkStats, PidsStats, Stats, ThrottlingData};

use std::sync::Arc;
use std::time::Duration;

use crate::client::{Call, Docker};
use crate::decode::frames::FrameMode;
use crate::error::{Result, Target};
use crate::query::PathAndQuery;
use crate::stream::{ByteSource, JsonStream, LogFrames};
use crate::time::unix_seconds_nanos;

/// Container calls; get one from [`Docker::containers`].
#[derive(Debug, Clone, Copy)]
pub struct Containers<'a> {
    docker: &'a Docker,
}

impl Docker {
    /// Container calls.
    pub fn containers(&self) -> Containers<'_> {
        Containers { docker: self }
    }
}

fn container_path(id: &str, suffix: &str) -> PathAndQuery {
    PathAndQuery::new("/containers").segment(id).literal(suffix)
}

fn target(id: &str) -> Target {
    Target::Container(id.to_owned())
}

/// What the daemon waits before SIGKILL when neither the call nor the container names a grace.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Whole seconds for the daemon's `t` parameter, rounded up so a grace period is never cut.
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Containers<'_> {
    /// Creates a container (`POST /containers/create`), named `name` when given.
    ///
    /// A missing image is [`Error::NotFound`](crate::Error::NotFound) with kind `Image`; a name
    /// in use is [`Error::Conflict`](crate::Error::Conflict).
    pub async fn create(
        &self,
        name: Option<&str>,
        config: &ContainerConfig,
    ) -> Result<CreatedContainer> {
        let path = PathAndQuery::new("/containers/create")
            .opt("name", name)
            .into_string();
        let image = config.image.clone().unwrap_or_default();
        self.docker
            .json(
                Call::post(path)
                    .json_body(config)
                    .target(Target::image(&image)),
            )
            .await
    }

    /// Starts a container. Already running: [`Error::NotModified`](crate::Error::NotModified).
    pub async fn start(&self, id: &str) -> Result<()> {
        let path = container_path(id, "/start").into_string();
        self.docker.unit(Call::post(path).target(target(id))).await
    }

    /// A container's details.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspect> {
        let path = container_path(id, "/json").into_string();
        self.docker.json(Call::get(path).target(target(id))).await
    }

    /// Lists containers (running only unless `all`).
    pub async fn list(&self, options: &ListContainersOptions) -> Result<Vec<ContainerSummary>> {
        let path = PathAndQuery::new("/containers/json")
            .flag("all", options.all)
            .opt("limit", options.limit)
            .filters(&options.filters)
            .into_string();
        self.docker.json(Call::get(path)).await
    }

    /// Waits for `condition` and returns the exit code (as data, also when non-zero).
    ///
    /// Untimed: it returns when the container exits; drop the future to stop waiting.
    pub async fn wait(&self, id: &str, condition: WaitCondition) -> Result<WaitResponse> {
        let path = container_path(id, "/wait")
            .param("condition", condition.as_str())
            .into_string();
        self.docker
            .json_untimed(Call::post(path).target(target(id)))
            .await
    }

    /// Sends a signal (`SIGKILL` when `None`). Not running: [`Error::Conflict`](crate::Error::Conflict).
    pub async fn kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let path = container_path(id, "/kill")
            .opt("signal", signal)
            .into_string();
        self.docker.unit(Call::post(path).target(target(id))).await
    }

    /// Stops a container: its stop signal, then SIGKILL after `grace` (the container's
    /// `StopTimeout`, else 10 s, when `None`). Already stopped:
    /// [`Error::NotModified`](crate::Error::NotModified). The call's deadline is extended by the
    /// grace the daemon will wait.
    pub async fn stop(&self, id: &str, grace: Option<Duration>) -> Result<()> {
        self.stop_like(id, "/stop", grace).await
    }

    /// Restarts a container (stop with `grace`, then start).
    pub async fn restart(&self, id: &str, grace: Option<Duration>) -> Result<()> {
        self.stop_like(id, "/restart", grace).await
    }

    /// `stop` and `restart`: both wait up to the grace before SIGKILL, so the call's deadline must
    /// outlast it. Without an explicit grace the daemon uses the container's `StopTimeout`, which
    /// only inspect can tell (one extra short call, only in that case).
    async fn stop_like(&self, id: &str, action: &str, grace: Option<Duration>) -> Result<()> {
        let wait = match grace {
            Some(g) => g,
            None => self
                .inspect(id)
                .await?
                .config
                .stop_timeout
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_STOP_GRACE, Duration::from_secs),
        };
        let path = container_path(id, action)
            .opt("t", grace.map(seconds))
            .into_string();
        let docker = self.docker.with_timeout(self.docker.timeout() + wait);
        docker.unit(Call::post(path).target(target(id))).await
    }

    /// Removes a container. Running without `force`: [`Error::Conflict`](crate::Error::Conflict).
    pub async fn remove(&self, id: &str, options: RemoveContainerOptions) -> Result<()> {
        let path = PathAndQuery::new("/containers")
            .segment(id)
            .flag("force", options.force)
            .flag("v", options.volumes)
            .into_string();
        self.docker
            .unit(Call::delete(path).target(target(id)))
            .await
    }

    /// The container's output as frames.
    ///
    /// Whether the body is multiplexed follows the container's `Config.Tty`: from
    /// [`LogsOptions::tty`] when given, else from one inspect before the logs request; never
    /// guessed from the bytes. The stream is untimed (with
    /// `follow` it runs as long as the container does; a large log takes as long as it takes);
    /// drop it to stop.
    pub fn logs(&self, id: &str, options: &LogsOptions) -> LogFrames {
        let docker = self.docker.clone();
        let id = id.to_owned();
        let path = container_path(&id, "/logs")
            .flag("follow", options.follow)
            .flag("stdout", options.stdout)
            .flag("stderr", options.stderr)
            .opt("since", options.since.map(unix_seconds_nanos))
            .opt("until", options.until.map(unix_seconds_nanos))
            .flag("timestamps", options.timestamps)
            .param(
                "tail",
                options
                    .tail
                    .map_or_else(|| "all".to_owned(), |n| n.to_string()),
            )
            .into_string();
        let known_tty = options.tty;
        let start = async move {
            let tty = match known_tty {
                Some(tty) => tty,
                None => docker.containers().inspect(&id).await?.tty(),
            };
            let body = docker
                .open(Call::get(path).target(Target::Container(id)))
                .await?
                .body;
            let request = Arc::clone(body.request());
            let mode = if tty {
                FrameMode::Raw
            } else {
                FrameMode::Multiplexed
            };
            Ok((ByteSource::Body(body), mode, request))
        };
        LogFrames::new(Box::pin(start), options.timestamps)
    }

    /// Attaches to a running container's stdio (`POST /containers/{id}/attach`, upgraded).
    /// Output framing follows the container's `Config.Tty`: from [`AttachOptions::tty`] when
    /// given, else from one inspect before the attach. Untimed once attached.
    pub async fn attach(&self, id: &str, options: AttachOptions) -> Result<Attached> {
        let tty = match options.tty {
            Some(tty) => tty,
            None => self.inspect(id).await?.tty(),
        };
        let path = container_path(id, "/attach")
            .flag("stream", true)
            .flag("stdin", options.stdin)
            .flag("stdout", options.stdout)
            .flag("stderr", options.stderr)
            .flag("logs", options.logs)
            .into_string();
        let mode = if tty {
            FrameMode::Raw
        } else {
            FrameMode::Multiplexed
        };
        attach::hijack(self.docker, Call::post(path).target(target(id)), mode).await
    }

    /// One resource usage sample with the previous one filled in (the daemon takes ~1 s to
    /// gather two), so [`Stats::cpu_percent`] works.
    pub async fn stats(&self, id: &str) -> Result<Stats> {
        let path = container_path(id, "/stats")
            .flag("stream", false)
            .into_string();
        self.docker.json(Call::get(path).target(target(id))).await
    }

    /// One sample at once, without the previous one (cheap polling; `precpu_stats` is empty).
    pub async fn stats_snapshot(&self, id: &str) -> Result<Stats> {
        let path = container_path(id, "/stats")
            .flag("stream", false)
            .param("one-shot", "true")
            .into_string();
        self.docker.json(Call::get(path).target(target(id))).await
    }

    /// A sample about every second until the container stops or the stream is dropped. Untimed.
    pub fn stats_stream(&self, id: &str) -> JsonStream<Stats> {
        let path = container_path(id, "/stats")
            .flag("stream", true)
            .into_string();
        let docker = self.docker.clone();
        let call = Call::get(path).target(target(id));
        JsonStream::new(
            Box::pin(async move { Ok(docker.open(call).await?.body) }),
            "a stats sample",
        )
    }

    /// Changes resources of a live container (memory can go up and down).
    pub async fn update(&self, id: &str, resources: &UpdateResources) -> Result<UpdateResult> {
        let path = container_path(id, "/update").into_string();
        self.docker
            .json(Call::post(path).json_body(resources).target(target(id)))
            .await
    }

    /// Sets the window size of a running container's TTY (the kernel's `TIOCSWINSZ`; the
    /// processes get SIGWINCH). Not running: [`Error::Conflict`](crate::Error::Conflict).
    pub async fn resize(&self, id: &str, size: TtySize) -> Result<()> {
        let path = container_path(id, "/resize")
            .param("h", size.rows)
            .param("w", size.columns)
            .into_string();
        self.docker.unit(Call::post(path).target(target(id))).await
    }

    /// The processes in a running container; `ps_args` defaults to `-ef`.
    pub async fn top(&self, id: &str, ps_args: Option<&str>) -> Result<Top> {
        let path = container_path(id, "/top")
            .opt("ps_args", ps_args)
            .into_string();
        self.docker.json(Call::get(path).target(target(id))).await
    }
}

/// A TTY window size, in character cells (what [`Containers::resize`] sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    /// Height (Docker's `h`).
    pub rows: u16,
    /// Width (Docker's `w`).
    pub columns: u16,
}
