//! The plain endpoints (`/version`, `/state`, `/metrics*`, `/files/*`) and what `GET_*` calls
//! share with them.

use std::sync::Arc;

use berth_containerizer::Phase;
use futures_util::StreamExt;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use serde_json::{json, Value};

use super::calls::blocking;
use super::convert;
use super::Agent;
use crate::api::response::{self, file_info_browse};
use crate::error::ApiError;
use crate::files::{self, SandboxPath};
use crate::http::body::{json as json_response, Body};
use crate::metrics::{self, Sample};

/// Berth's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Agent {
    /// The flags with the effective agent id.
    pub(super) fn flags(&self) -> Vec<(&'static str, String)> {
        let mut flags = self.config.flags();
        for (k, v) in flags.iter_mut() {
            if *k == "agent_id" {
                *v = self.agent_id.to_string();
            }
        }
        flags
    }

    /// `GET_VERSION`: Mesos's `VersionInfo` holds Berth's version; the Docker versions go in
    /// the `berth` object beside it (a Mesos message carries only Mesos's fields).
    pub(super) fn get_version(&self) -> Value {
        response::version(
            VERSION,
            json!({
                "docker_version": self.docker_version,
                "docker_api_version": self.docker_api_version,
            }),
        )
    }

    /// `GET /version`: Berth's own endpoint (flat, with the Docker versions).
    pub(super) fn version(&self) -> Response<Body> {
        json_response(
            StatusCode::OK,
            // Mesos's shape (its build-info object: only `version` is Berth's to give), with
            // the Docker daemon's versions under `berth`.
            &json!({
                "version": VERSION,
                "berth": {
                    "docker_version": self.docker_version,
                    "docker_api_version": self.docker_api_version,
                },
            }),
        )
    }

    /// Every sample: counters, the agent process, and the containers by state.
    pub(super) fn samples(&self) -> Vec<Sample> {
        let mut out = self.counters.samples();
        out.extend(metrics::process_samples());
        out.push(Sample::gauge(
            "agent/uptime_secs",
            "Seconds since the agent started",
            self.uptime().as_secs_f64(),
        ));
        let mut by_phase = [0u64; 6];
        let phases = [
            Phase::Fetching,
            Phase::Pulling,
            Phase::Mounting,
            Phase::Running,
            Phase::Destroying,
            Phase::Terminated,
        ];
        for id in self.containerizer.containers() {
            if let Ok(s) = self.containerizer.status(&id) {
                if let Some(i) = phases.iter().position(|p| *p == s.phase) {
                    by_phase[i] += 1;
                }
            }
        }
        for (phase, n) in phases.iter().zip(by_phase) {
            out.push(Sample::gauge(
                format!(
                    "containerizer/docker/containers_{}",
                    phase.to_string().to_ascii_lowercase()
                ),
                "Containers by state",
                n as f64,
            ));
        }
        if let Some(f) = &self.observed.fetcher {
            let m = f.metrics();
            out.extend([
                Sample::counter(
                    "containerizer/fetcher/task_fetches_succeeded",
                    "Fetches of all of a container's URIs that succeeded",
                    m.fetches_succeeded as f64,
                ),
                Sample::counter(
                    "containerizer/fetcher/task_fetches_failed",
                    "Fetches of a container's URIs that failed",
                    m.fetches_failed as f64,
                ),
                Sample::counter(
                    "containerizer/fetcher/cache_hits",
                    "URIs served from the fetcher cache",
                    m.cache_hits as f64,
                ),
                Sample::counter(
                    "containerizer/fetcher/cache_misses",
                    "Cacheable URIs downloaded",
                    m.cache_misses as f64,
                ),
                Sample::counter(
                    "containerizer/fetcher/bytes_transferred",
                    "Bytes downloaded or copied by the fetcher",
                    m.bytes_transferred as f64,
                ),
                Sample::gauge(
                    "containerizer/fetcher/cache_size_used_bytes",
                    "Bytes held in the fetcher cache",
                    m.cache_bytes_used as f64,
                ),
                Sample::gauge(
                    "containerizer/fetcher/cache_size_total_bytes",
                    "Capacity of the fetcher cache",
                    m.cache_bytes_total as f64,
                ),
            ]);
        }
        if let Some(l) = &self.observed.logger {
            let m = l.snapshot();
            out.extend([
                Sample::counter(
                    "containerizer/logger/bytes_written",
                    "Container output bytes written to sandboxes",
                    m.bytes_written as f64,
                ),
                Sample::counter(
                    "containerizer/logger/bytes_dropped",
                    "Container output bytes dropped after write failures",
                    m.bytes_dropped as f64,
                ),
                Sample::counter(
                    "containerizer/logger/write_errors",
                    "Failed log writes",
                    m.write_errors as f64,
                ),
                Sample::counter(
                    "containerizer/logger/rotations",
                    "Log file rotations",
                    m.rotations as f64,
                ),
                Sample::gauge(
                    "containerizer/logger/active_logs",
                    "Containers being logged",
                    m.active_logs as f64,
                ),
                Sample::counter(
                    "containerizer/logger/checkpoints_stored",
                    "Log checkpoints written to the logger's journal",
                    m.checkpoints_stored as f64,
                ),
                Sample::counter(
                    "containerizer/logger/checkpoints_durable",
                    "Of those, fsynced (finish, after a recovery, every few rotations)",
                    m.checkpoints_durable as f64,
                ),
                Sample::counter(
                    "containerizer/logger/file_syncs",
                    "Log files fsynced (only files holding unsynced bytes)",
                    m.file_syncs as f64,
                ),
                Sample::counter(
                    "containerizer/logger/names_replaced",
                    "Log file names a container had replaced (link, FIFO, device, socket, directory, hard link), removed and made anew; never written through",
                    m.names_replaced as f64,
                ),
                Sample::counter(
                    "containerizer/logger/timestamp_regressions",
                    "Output chunks stamped before output already written from their stream (a source repeating output, or a clock step): written anyway",
                    m.timestamp_regressions as f64,
                ),
                Sample::counter(
                    "containerizer/logger/replays_short",
                    "Replays of Docker's copy from its start that ended before the bytes already written (the copy had lost its beginning)",
                    m.replays_short as f64,
                ),
            ]);
        }
        if let Some(r) = &self.observed.log_resume {
            out.extend([
                Sample::counter(
                    "containerizer/logger/resume_fallbacks",
                    "Logs resumed after what the sandbox files hold: no usable logger checkpoint, or Docker's copy no longer started at the output's first byte",
                    r.fallbacks() as f64,
                ),
                Sample::counter(
                    "containerizer/logger/resume_possible_gaps",
                    "Of those, logs whose output stamped shortly before the restart may be missing",
                    r.possible_gaps() as f64,
                ),
            ]);
        }
        let (from_cgroups, from_docker) = self.containerizer.usage_samples();
        out.extend([
            Sample::counter(
                "containerizer/usage/cgroup_samples",
                "Usage samples read from the containers' cgroup files (immediate)",
                from_cgroups as f64,
            ),
            Sample::counter(
                "containerizer/usage/docker_samples",
                "Usage samples asked from Docker's stats (up to a second each on Docker 20.10)",
                from_docker as f64,
            ),
        ]);
        let health = self.containerizer.health_counts();
        out.extend([
            Sample::counter(
                "containerizer/health/checks_passed",
                "Health checks (launch health_check) that passed",
                health.passed as f64,
            ),
            Sample::counter(
                "containerizer/health/checks_failed",
                "Health checks that failed, within the grace period or not",
                health.failed as f64,
            ),
            Sample::counter(
                "containerizer/health/containers_killed",
                "Containers killed for failing consecutive_failures health checks in a row",
                health.killed as f64,
            ),
            Sample::gauge(
                "containerizer/health/checkers",
                "Health checkers running: containers with a health_check, or a Docker HEALTHCHECK being reported",
                health.checkers as f64,
            ),
        ]);
        let (durable, lazy) = self.containerizer.checkpoint_writes();
        out.extend([
            Sample::counter(
                "containerizer/checkpoints/durable_writes",
                "Container checkpoints written and fsynced (launch accepted, running, ended)",
                durable as f64,
            ),
            Sample::counter(
                "containerizer/checkpoints/lazy_writes",
                "Container checkpoints written without fsync (coalesced intermediate states)",
                lazy as f64,
            ),
        ]);
        let j = self.containerizer.checkpoint_journal();
        out.extend([
            Sample::counter(
                "containerizer/checkpoints/journal_fsyncs",
                "fdatasyncs of the checkpoint journal (durable writes queued together share one)",
                j.syncs as f64,
            ),
            Sample::counter(
                "containerizer/checkpoints/journal_compactions",
                "Rewrites of the checkpoint journal down to its live records",
                j.compactions as f64,
            ),
            Sample::gauge(
                "containerizer/checkpoints/journal_bytes",
                "Size of the checkpoint journal file",
                j.file_bytes as f64,
            ),
        ]);
        out.push(Sample::counter(
            "containerizer/docker/terminations",
            "Terminations decided since start",
            self.containerizer.terminations_decided() as f64,
        ));
        out.push(Sample::counter(
            "containerizer/docker/illegal_transitions",
            "State machine events refused (a bug if not zero)",
            self.containerizer.illegal_transitions() as f64,
        ));
        out
    }

    pub(super) fn metrics_snapshot(&self) -> Response<Body> {
        json_response(StatusCode::OK, &metrics::snapshot_json(&self.samples()))
    }

    pub(super) fn prometheus(&self) -> Response<Body> {
        let mut r = Response::new(crate::http::body::full(metrics::prometheus_text(
            &self.samples(),
        )));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }

    /// `GET_CONTAINERS` entries, sorted by id; with usage for running containers when asked,
    /// sampled for all of them at once (each sample is immediate from the cgroup files).
    /// A container's `GET_CONTAINERS` entry (its sessions included), with `usage` as its
    /// statistics when given.
    pub(super) fn container_entry(
        &self,
        status: &berth_containerizer::ContainerStatus,
        usage: Option<&berth_containerizer::ResourceStatistics>,
    ) -> Value {
        let mut entry = convert::container_entry(status, status.image.as_deref(), usage);
        let sessions = self.containerizer.sessions(&status.container_id);
        if !sessions.is_empty() {
            entry["berth"]["sessions"] = convert::sessions_json(&status.container_id, &sessions);
        }
        entry
    }

    pub(super) async fn container_entries(&self, with_usage: bool) -> Vec<Value> {
        let mut ids: Vec<_> = self.containerizer.containers().into_iter().collect();
        ids.sort();
        let futures = ids.into_iter().map(|id| async move {
            let status = self.containerizer.status(&id).ok()?;
            let usage = if with_usage
                && status.phase == Phase::Running
                && status.docker_id.is_some()
            {
                match self.containerizer.usage(&id).await {
                    Ok(u) => Some(u),
                    Err(e) => {
                        tracing::debug!(container_id = %id, error = %e, "no usage for GET_CONTAINERS");
                        None
                    }
                }
            } else {
                None
            };
            Some(self.container_entry(&status, usage.as_ref()))
        });
        futures_util::future::join_all(futures)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    pub(super) async fn files_browse(&self, path: &str) -> Result<Response<Body>, ApiError> {
        let at = SandboxPath::parse(path)?;
        self.known(&at.container_id)?;
        let sandbox = self.sandbox_of(&at.container_id);
        let entries = blocking(move || files::list(&sandbox, &at)).await?;
        Ok(json_response(
            StatusCode::OK,
            &Value::Array(entries.iter().map(file_info_browse).collect()),
        ))
    }

    pub(super) async fn files_read(
        &self,
        path: &str,
        offset: i64,
        length: Option<u64>,
    ) -> Result<Response<Body>, ApiError> {
        let at = SandboxPath::parse(path)?;
        self.known(&at.container_id)?;
        let sandbox = self.sandbox_of(&at.container_id);
        if offset < 0 {
            let size = blocking(move || files::open_file(&sandbox, &at).map(|f| f.size)).await?;
            return Ok(json_response(
                StatusCode::OK,
                &json!({ "data": "", "offset": size }),
            ));
        }
        // Up to the end when no length is given, capped as Mesos caps it (16 pages): a caller
        // pages on from `offset` + the bytes it got.
        let cap = files::files_read_cap();
        let (_, data) =
            blocking(move || files::read_capped(&sandbox, &at, offset as u64, length, cap)).await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({ "data": String::from_utf8_lossy(&data), "offset": offset }),
        ))
    }

    pub(super) async fn files_download(
        self: &Arc<Self>,
        path: &str,
    ) -> Result<Response<Body>, ApiError> {
        let at = SandboxPath::parse(path)?;
        self.known(&at.container_id)?;
        let sandbox = self.sandbox_of(&at.container_id);
        let name = at
            .components
            .last()
            .cloned()
            .unwrap_or_else(|| at.container_id.to_string());
        let open = blocking(move || files::open_file(&sandbox, &at)).await?;
        let size = open.size;
        // Sends what the file held when opened: a log that grows meanwhile is cut at that size.
        // Streamed with backpressure: a chunk is read only when hyper has sent the previous
        // ones, so a download holds one chunk (plus hyper's buffer) whatever the file's size;
        // a client that stops reading is cut off by --http-send-timeout.
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(open.file), size);
        let stream = tokio_util::io::ReaderStream::with_capacity(
            reader,
            crate::http::server::DOWNLOAD_CHUNK,
        )
        .map(|r| r.map(hyper::body::Frame::data));
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        let disposition = format!(
            "attachment; filename=\"{}\"",
            name.replace(['"', '\\'], "_")
        );
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(r)
    }
}
