//! `POST /api/v1`: each [`Call`] carried out on the containerizer, with Mesos's status codes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_containerizer::{ContainerId, Error as CzError, Launched};
use http::{Response, StatusCode};
use serde_json::json;

use super::convert;
use super::Agent;
use crate::api::negotiate::{self, media_types, Media};
use crate::api::response::{self, typed};
use crate::api::{parse_call, proto, recordio, Call, ContainerType, LaunchRequest};
use crate::error::ApiError;
use crate::files::{self, SandboxPath};
use crate::http::body::{empty, json as json_response, Body, RequestBody};

/// Signal numbers used by a graceful kill.
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// A containerizer error as an HTTP answer.
pub(super) fn cz_error(e: CzError) -> ApiError {
    use berth_containerizer::EngineErrorKind as K;
    match e {
        CzError::UnknownContainer { id } => {
            ApiError::not_found(format!("Container {id} cannot be found"))
        }
        e @ (CzError::BeingDestroyed { .. }
        | CzError::Terminated { .. }
        | CzError::NotRunning { .. }
        | CzError::NotTerminated { .. }) => ApiError::conflict(e.to_string()),
        e @ (CzError::LaunchFailed { .. }
        | CzError::UriRefused { .. }
        | CzError::Spec(_)
        | CzError::Id(_)) => ApiError::bad_request(e.to_string()),
        e @ CzError::ShuttingDown => ApiError::unavailable(e.to_string()),
        e @ (CzError::SessionExists { .. }
        | CzError::InputTaken { .. }
        | CzError::NoStdin { .. }) => ApiError::conflict(e.to_string()),
        e @ CzError::TooManySessions { .. } => ApiError::unavailable(e.to_string()),
        e @ CzError::Config(_) => ApiError::bad_request(e.to_string()),
        CzError::DestroyedDuringLaunch { message, .. } => {
            ApiError::bad_request(format!("Failed to launch container: {message}"))
        }
        CzError::Engine { what, source } => {
            let text = format!("{what}: {source}");
            match source.kind {
                K::NotFound => ApiError::not_found(text),
                K::Conflict => ApiError::conflict(text),
                K::Transient => ApiError::unavailable(text),
                // The daemon refused the values themselves (e.g. a memory limit below its minimum).
                _ => ApiError::bad_request(text),
            }
        }
        e => ApiError::internal(e.to_string()),
    }
}

/// A JSON answer re-encoded as Mesos's binary `agent.Response` (an empty answer stays
/// empty, as Mesos's are).
async fn in_protobuf(answer: Response<Body>) -> Result<Response<Body>, ApiError> {
    use http_body_util::BodyExt as _;
    let is_json = answer
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == negotiate::JSON.as_bytes());
    if !is_json {
        return Ok(answer);
    }
    let (mut parts, body) = answer.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| ApiError::internal(format!("building the answer: {e}")))?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("building the answer: {e}")))?;
    let wire = proto::encode_response(&json).map_err(|e| ApiError::internal(e.to_string()))?;
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(negotiate::PROTOBUF),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, crate::http::body::full(wire)))
}

impl Agent {
    pub(super) async fn api(
        self: &Arc<Self>,
        body: RequestBody,
        headers: &http::HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let media = media_types(headers)?;
        let record_call = |record: &[u8]| match media.message_content {
            Some(Media::Protobuf) => proto::parse_call(record),
            _ => parse_call(record),
        };
        // The call is parsed before its media are judged against it, as in Mesos: a malformed
        // or unsupported call (the streaming ones included) gets its own answer first.
        let (call, rest) = match body {
            RequestBody::Whole(bytes) => {
                let call = match media.content {
                    Media::Json => parse_call(&bytes)?,
                    Media::Protobuf => proto::parse_call(&bytes)?,
                    // A streaming request read whole (the server streams them; kept for
                    // callers of `serve` that hand a whole body): its first record is the call.
                    Media::RecordIo => {
                        record_call(&recordio::first_record(&bytes).map_err(|e| {
                            ApiError::bad_request(format!(
                                "reading the request's RecordIO stream: {e}"
                            ))
                        })?)?
                    }
                };
                // The body's share of the server's body-memory budget goes back now, not when
                // a launch that pulls for minutes ends.
                drop(bytes);
                (call, None)
            }
            RequestBody::Records { first, rest } => (record_call(&first)?, Some(rest)),
        };
        negotiate::check_call(&media, call.type_name())?;
        match call {
            Call::Subscribe { heartbeat } => {
                self.counters.call(call.type_name());
                return Ok(self.subscribe(heartbeat, &media));
            }
            Call::LaunchSession(req) => {
                self.counters.call("LAUNCH_NESTED_CONTAINER_SESSION");
                return self.launch_session(&req, &media).await;
            }
            Call::AttachOutput { container_id } => {
                self.counters.call("ATTACH_CONTAINER_OUTPUT");
                return self.attach_output(&container_id, &media).await;
            }
            Call::AttachInput(target) => {
                self.counters.call("ATTACH_CONTAINER_INPUT");
                let Some(rest) = rest else {
                    return Err(ApiError::internal(
                        "ATTACH_CONTAINER_INPUT without its stream",
                    ));
                };
                return self
                    .attach_input(&target, rest, media.message_content)
                    .await;
            }
            _ => {}
        }
        let answer = self.answer(call).await?;
        if media.accept == Media::Protobuf {
            return in_protobuf(answer).await;
        }
        Ok(answer)
    }

    /// Carries out one call; the answer is JSON (or empty).
    async fn answer(self: &Arc<Self>, call: Call) -> Result<Response<Body>, ApiError> {
        self.counters.call(call.type_name());
        match call {
            Call::GetHealth => Ok(json_response(
                StatusCode::OK,
                &response::health(self.disk.reason().is_none()),
            )),
            Call::GetFlags => Ok(json_response(
                StatusCode::OK,
                &response::flags(&self.flags()),
            )),
            Call::GetVersion => Ok(json_response(StatusCode::OK, &self.get_version())),
            Call::GetMetrics => {
                let samples: Vec<(String, f64)> = self
                    .samples()
                    .into_iter()
                    .map(|s| (s.name, s.value))
                    .collect();
                Ok(json_response(StatusCode::OK, &response::metrics(&samples)))
            }
            Call::GetContainers => {
                let entries = self.container_entries(true).await;
                Ok(json_response(
                    StatusCode::OK,
                    &typed("GET_CONTAINERS", json!({ "containers": entries })),
                ))
            }
            Call::LaunchContainer(req) => self.launch(&req).await,
            Call::WaitContainer { container_id: id } => match self.containerizer.wait(&id).await {
                Some(t) => Ok(json_response(
                    StatusCode::OK,
                    &response::wait(&convert::termination(&t)),
                )),
                None => Err(ApiError::not_found(format!(
                    "Container {id} cannot be found"
                ))),
            },
            Call::KillContainer {
                container_id,
                signal,
                grace,
            } => self.kill(container_id, signal, grace).await,
            Call::RemoveContainer { container_id: id } => {
                self.containerizer.remove(&id).await.map_err(cz_error)?;
                let sandbox = self.sandbox_of(&id);
                if let Err(e) = remove_sandbox(sandbox.clone()).await {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(container_id = %id, sandbox = %sandbox.display(), error = %e, "failed to remove the sandbox");
                    }
                }
                self.counters.removes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(container_id = %id, "container removed");
                Ok(empty(StatusCode::OK))
            }
            Call::UpdateContainer {
                container_id: id,
                resources,
                limits,
            } => {
                self.containerizer
                    .update(
                        &id,
                        convert::resources(&resources),
                        convert::limits(&limits),
                    )
                    .await
                    .map_err(cz_error)?;
                self.counters.updates.fetch_add(1, Ordering::Relaxed);
                tracing::info!(container_id = %id, "container resources updated");
                Ok(empty(StatusCode::OK))
            }
            Call::WaitSession {
                parent,
                id,
                nested_call,
            } => self.wait_session(&parent, &id, nested_call).await,
            Call::KillSession { parent, id, signal } => {
                self.containerizer
                    .kill_session(&parent, &id, signal)
                    .await
                    .map_err(cz_error)?;
                Ok(empty(StatusCode::OK))
            }
            Call::LaunchSession(_) | Call::AttachInput(_) | Call::AttachOutput { .. } => Err(
                ApiError::internal("a streaming call reached the non-streaming answers"),
            ),
            // Answered as a stream by `api`, which knows the media.
            Call::Subscribe { .. } => Err(ApiError::internal(
                "SUBSCRIBE reached the non-streaming answers",
            )),
            Call::ListFiles { path } => {
                let at = SandboxPath::parse(&path)?;
                self.known(&at.container_id)?;
                let sandbox = self.sandbox_of(&at.container_id);
                let entries = blocking(move || files::list(&sandbox, &at)).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &response::list_files(&entries),
                ))
            }
            Call::ReadFile {
                path,
                offset,
                length,
            } => {
                let at = SandboxPath::parse(&path)?;
                self.known(&at.container_id)?;
                let sandbox = self.sandbox_of(&at.container_id);
                let (size, data) =
                    blocking(move || files::read(&sandbox, &at, offset, length)).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &response::read_file(size, &data),
                ))
            }
        }
    }

    async fn launch(self: &Arc<Self>, req: &LaunchRequest) -> Result<Response<Body>, ApiError> {
        let id = req.container_id.clone();
        if self.disk.reason().is_some() {
            // Checked again first: space may have been freed since the last periodic check.
            let agent = self.clone();
            let still = tokio::task::spawn_blocking(move || agent.disk.check())
                .await
                .unwrap_or_else(|e| Some(format!("the disk check failed: {e}")));
            if let Some(why) = still {
                self.counters
                    .launches_failed
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::unavailable(format!(
                    "launch of container {id} refused: the agent is degraded: {why}"
                )));
            }
        }
        match &req.container {
            Some(c) if c.kind == ContainerType::Docker => {}
            other => {
                let why = match other {
                    None => "'launch_container.container' is missing".to_owned(),
                    Some(_) => "'launch_container.container.type' is MESOS".to_owned(),
                };
                return Err(ApiError::bad_request(format!(
                    "The provided ContainerInfo is not supported: {why}; Berth runs containers of type DOCKER"
                )));
            }
        }
        let spec = convert::launch_spec(req, self.sandbox_of(&id));
        match self.containerizer.launch(&id, spec).await {
            Ok(Launched::Launched) => {
                self.counters
                    .launches_succeeded
                    .fetch_add(1, Ordering::Relaxed);
                Ok(empty(StatusCode::OK))
            }
            Ok(Launched::AlreadyLaunched) => {
                self.counters
                    .launches_duplicate
                    .fetch_add(1, Ordering::Relaxed);
                Ok(empty(StatusCode::ACCEPTED))
            }
            Ok(Launched::NotSupported) => Err(ApiError::bad_request(
                "The provided ContainerInfo is not supported",
            )),
            Err(e) => {
                self.counters
                    .launches_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(container_id = %id, error = %e, "launch failed");
                Err(cz_error(e))
            }
        }
    }

    async fn kill(
        self: &Arc<Self>,
        id: ContainerId,
        signal: Option<i32>,
        grace: Option<Duration>,
    ) -> Result<Response<Body>, ApiError> {
        let first = signal.unwrap_or(if grace.is_some() { SIGTERM } else { SIGKILL });
        let grace = grace.filter(|_| first != SIGKILL);
        // With a grace, the containerizer checkpoints the deadline before signalling, so the
        // SIGKILL comes even if this agent dies first.
        let delivered = match grace {
            Some(grace) => self.containerizer.kill_gracefully(&id, first, grace).await,
            None => self.containerizer.kill(&id, first).await,
        };
        if !delivered {
            return Err(ApiError::not_found(format!(
                "Container {id} cannot be found (or is already killed)"
            )));
        }
        self.counters.kills.fetch_add(1, Ordering::Relaxed);
        tracing::info!(container_id = %id, signal = first, grace = ?grace, "kill delivered");
        Ok(empty(StatusCode::OK))
    }
}

/// Removes a sandbox, through `berth-safe-fs`: the sandbox is opened without following a link,
/// and nothing the container left in it is followed or opened (a link to a host file or
/// directory goes as a link; FIFOs and device nodes as names), however deep it nested its
/// directories. A small one (a few small files and no directories, like most: stdout, stderr, a
/// fetched script) goes at once, on this thread: handing it to a blocking thread and being woken
/// back costs more CPU than its few unlinks. A larger one, whose unlinks could hold up the
/// runtime (big fetched files, whole trees), goes to a blocking thread.
pub(super) async fn remove_sandbox(dir: std::path::PathBuf) -> std::io::Result<()> {
    if is_small_flat_dir(&dir) {
        remove_tree(&dir)
    } else {
        tokio::task::spawn_blocking(move || remove_tree(&dir))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Removes `path` and everything beneath it, following no link (see [`remove_sandbox`]). Its
/// parent is the agent's own directory.
pub(super) fn remove_tree(path: &std::path::Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("'{}' names no directory entry", path.display()),
        ));
    };
    berth_safe_fs::Dir::open(parent)?.remove_all(name)
}

/// Whether `dir` holds at most a handful of regular files of at most 1 MiB each, and nothing
/// else. Anything unexpected (an error, a directory, a symlink) says no.
fn is_small_flat_dir(dir: &std::path::Path) -> bool {
    const MAX_ENTRIES: usize = 8;
    const MAX_FILE_BYTES: u64 = 1 << 20;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut n = 0;
    for entry in entries {
        n += 1;
        let small_file = entry
            .and_then(|e| e.metadata())
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_FILE_BYTES);
        if n > MAX_ENTRIES || !small_file {
            return false;
        }
    }
    true
}

/// Runs blocking file work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("file operation failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn sandboxes_small_and_large_are_removed_whole() {
        let root = tempfile::tempdir().unwrap();
        let small = root.path().join("small");
        std::fs::create_dir(&small).unwrap();
        std::fs::write(small.join("stdout"), b"hello").unwrap();
        std::fs::write(small.join("stderr"), b"").unwrap();
        assert!(is_small_flat_dir(&small));
        remove_sandbox(small.clone()).await.unwrap();
        assert!(!small.exists());

        // A subdirectory, a big file, too many files or a symlink: not small.
        let nested = root.path().join("nested");
        std::fs::create_dir_all(nested.join("a/b")).unwrap();
        std::fs::write(nested.join("a/b/f"), b"x").unwrap();
        assert!(!is_small_flat_dir(&nested));
        let big = root.path().join("big");
        std::fs::create_dir(&big).unwrap();
        std::fs::write(big.join("artifact"), vec![0; (1 << 20) + 1]).unwrap();
        assert!(!is_small_flat_dir(&big));
        let many = root.path().join("many");
        std::fs::create_dir(&many).unwrap();
        for i in 0..9 {
            std::fs::write(many.join(format!("f{i}")), b"").unwrap();
        }
        assert!(!is_small_flat_dir(&many));
        let linked = root.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(root.path(), linked.join("out")).unwrap();
        assert!(!is_small_flat_dir(&linked));
        for dir in [&nested, &big, &many, &linked] {
            remove_sandbox(dir.clone()).await.unwrap();
            assert!(!dir.exists(), "{}", dir.display());
        }
        // The symlink's target is not followed.
        assert!(root.path().exists());
        // What else a container leaves: a FIFO, a device node, a link to a host directory
        // deep down, a tree nested deeper than a recursive walk survives on a small stack.
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("keep"), b"host").unwrap();
        let hostile = root.path().join("hostile");
        let mut deep = hostile.join("d");
        std::fs::create_dir_all(&deep).unwrap();
        for _ in 0..200 {
            deep = deep.join("d");
            std::fs::create_dir(&deep).unwrap();
        }
        std::os::unix::fs::symlink(host.path(), deep.join("host")).unwrap();
        for (name, kind, dev) in [
            ("fifo", rustix::fs::FileType::Fifo, 0),
            (
                "disk",
                rustix::fs::FileType::BlockDevice,
                rustix::fs::makedev(8, 0),
            ),
        ] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                hostile.join(name),
                kind,
                rustix::fs::Mode::from_raw_mode(0o600),
                dev,
            )
            .unwrap();
        }
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            remove_sandbox(hostile.clone()),
        )
        .await
        .expect("removal blocked")
        .unwrap();
        assert!(!hostile.exists());
        assert_eq!(std::fs::read(host.path().join("keep")).unwrap(), b"host");
        let missing = remove_sandbox(root.path().join("never")).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
