//! The agent: the containerizer plus everything the HTTP API needs around it (sandboxes, the
//! files API, metrics, state), answering [`Route`]s.

mod calls;
pub mod convert;
pub mod disk;
mod endpoints;
mod events;
pub mod gc;
mod mesos_endpoints;
mod sessions;
pub mod workdir;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_containerizer::{AgentId, ContainerId, Containerizer};
use http::{HeaderMap, Response};

use crate::config::Config;
use crate::error::ApiError;
use crate::http::body::{error, Body};
use crate::http::route::Route;
use crate::metrics::Counters;
use workdir::WorkDirLock;

/// What a started agent is made of (see [`crate::runtime`] for how it is put together).
pub struct AgentParts {
    /// The settings.
    pub config: Config,
    /// The address the HTTP listener is bound to.
    pub bound: std::net::SocketAddr,
    /// This agent's id.
    pub agent_id: AgentId,
    /// The containerizer, already recovered.
    pub containerizer: Containerizer,
    /// The Docker daemon's version (for `/version` and `/state`).
    pub docker_version: String,
    /// The negotiated Engine API version.
    pub docker_api_version: String,
    /// The fetcher's and logger's counters.
    pub observed: Observed,
    /// The work directory lock, held for the agent's life.
    pub lock: WorkDirLock,
}

/// Parts of the containerizer's collaborators the agent reports metrics of.
#[derive(Default)]
pub struct Observed {
    /// The fetcher.
    pub fetcher: Option<Arc<berth_fetcher::Fetcher>>,
    /// The container logger's counters.
    pub logger: Option<Arc<berth_logger::LoggerMetrics>>,
    /// Logs resumed without their checkpoint.
    pub log_resume: Option<Arc<berth_containerizer::LogResumeMetrics>>,
}

/// A running agent. Shared by every connection.
pub struct Agent {
    config: Config,
    bound: std::net::SocketAddr,
    agent_id: AgentId,
    containerizer: Containerizer,
    docker_version: String,
    docker_api_version: String,
    counters: Counters,
    started: SystemTime,
    observed: Observed,
    disk: disk::DiskState,
    /// Ends the open `SUBSCRIBE` streams when the agent stops serving.
    streams_end: tokio_util::sync::CancellationToken,
    _lock: WorkDirLock,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.agent_id)
            .field("listen", &self.config.listen)
            .finish()
    }
}

impl Agent {
    /// Wraps started parts.
    pub fn new(parts: AgentParts) -> Arc<Agent> {
        let disk = disk::DiskState::new(parts.config.work_dir.clone());
        Arc::new(Agent {
            config: parts.config,
            bound: parts.bound,
            agent_id: parts.agent_id,
            containerizer: parts.containerizer,
            docker_version: parts.docker_version,
            docker_api_version: parts.docker_api_version,
            counters: Counters::default(),
            started: SystemTime::now(),
            observed: parts.observed,
            disk,
            streams_end: tokio_util::sync::CancellationToken::new(),
            _lock: parts.lock,
        })
    }

    /// Ends every open event stream (the agent is stopping: the server drains in-flight
    /// requests, and a stream would otherwise hold it until the drain times out).
    pub fn end_streams(&self) {
        self.streams_end.cancel();
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This agent's id.
    pub fn agent_id(&self) -> &AgentId {
        &self.agent_id
    }

    /// The containerizer.
    pub fn containerizer(&self) -> &Containerizer {
        &self.containerizer
    }

    /// Whether the work directory can be written (degraded mode when it cannot).
    pub fn disk(&self) -> &disk::DiskState {
        &self.disk
    }

    /// `/health`: 200 with `{"status":"ok"}`, or while degraded `{"status":"degraded",
    /// "reason":...}` (still 200: the agent serves, and taking it out of service would block the
    /// REMOVE_CONTAINER calls that free space).
    fn health(&self) -> Response<Body> {
        let body = match self.disk.reason() {
            None => serde_json::json!({ "status": "ok" }),
            Some(reason) => serde_json::json!({ "status": "degraded", "reason": reason }),
        };
        crate::http::body::json(http::StatusCode::OK, &body)
    }

    /// The counters (the HTTP layer counts answers).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Where container `id`'s sandbox lives on the host.
    pub fn sandbox_of(&self, id: &ContainerId) -> PathBuf {
        workdir::sandboxes_dir(&self.config.work_dir).join(id.as_str())
    }

    /// The known container with this id, or 404.
    fn known(&self, id: &ContainerId) -> Result<(), ApiError> {
        if self.containerizer.status(id).is_ok() {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "Container {id} cannot be found"
            )))
        }
    }

    /// How long the agent has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed().unwrap_or_default()
    }

    /// Answers a routed request whose checks (auth, content type, size) have passed.
    pub async fn serve(
        self: &Arc<Self>,
        route: Route,
        headers: &HeaderMap,
        body: crate::http::body::RequestBody,
    ) -> Response<Body> {
        let jsonp = route.jsonp().cloned();
        let result = match route {
            Route::Api => self.api(body, headers).await,
            Route::Health => Ok(self.health()),
            Route::Version { .. } => Ok(self.version()),
            Route::State { .. } => Ok(self.state().await),
            Route::Flags { .. } => Ok(self.flags_endpoint()),
            Route::Containers { container_id, .. } => {
                Ok(self.containers_endpoint(container_id.as_deref()).await)
            }
            Route::MonitorStatistics { .. } => Ok(self.monitor_statistics().await),
            Route::MetricsSnapshot { .. } => Ok(self.metrics_snapshot()),
            Route::Prometheus => Ok(self.prometheus()),
            Route::FilesBrowse { path, .. } => self.files_browse(&path).await,
            Route::FilesRead {
                path,
                offset,
                length,
                ..
            } => self.files_read(&path, offset, length).await,
            Route::FilesDownload { path } => self.files_download(&path).await,
        };
        let response = result.unwrap_or_else(|e| error(&e));
        crate::jsonp::wrap(jsonp.as_ref(), response).await
    }

    /// Deletes sandboxes whose container the containerizer no longer knows (a removal
    /// interrupted by a crash, or an earlier agent's); returns how many. The directory is listed before
    /// the containers are, and a launch registers its container before creating its sandbox, so
    /// a launch in flight is never mistaken for a leftover.
    pub async fn collect_sandboxes(&self) -> usize {
        let dir = workdir::sandboxes_dir(&self.config.work_dir);
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return 0;
        };
        let mut names = Vec::new();
        while let Ok(Some(e)) = entries.next_entry().await {
            names.push(e.file_name());
        }
        let known = self.containerizer.containers();
        let mut removed = 0;
        for name in names {
            let Some(id) = name.to_str().and_then(|n| ContainerId::new(n).ok()) else {
                continue;
            };
            if known.contains(&id) {
                continue;
            }
            // Through safe-fs, on a blocking thread: a gone container's sandbox may hold
            // anything it made (links to host paths, FIFOs, device nodes, a huge tree).
            let path = dir.join(&name);
            let removed_one = tokio::task::spawn_blocking(move || calls::remove_tree(&path))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match removed_one {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(container_id = %id, "removed the sandbox of a container that is gone");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(container_id = %id, error = %e, "failed to remove a stale sandbox")
                }
            }
        }
        removed
    }

    /// Stops for a restart once the HTTP server has stopped: nothing is destroyed (containers
    /// keep running and are recovered by the next start). The containerizer ends its background
    /// tasks, its loggers write and checkpoint what they received, and every checkpoint is
    /// flushed, so the process can exit without relying on the runtime's shutdown timeout.
    pub async fn shutdown(&self) -> berth_containerizer::ShutdownReport {
        let report = self.containerizer.shutdown().await;
        tracing::info!(agent_id = %self.agent_id, containers = report.containers,
            checkpoints = report.checkpoints_written, checkpoint_failures = report.checkpoint_failures,
            tasks_ended = report.tasks_ended,
            "agent stopped; containers keep running and will be recovered on the next start");
        report
    }
}
