//! `LAUNCH_NESTED_CONTAINER_SESSION` and the `WAIT`/`KILL` calls on sessions: a command run in a
//! running container on Docker's exec, its output streamed back as Mesos's `ProcessIO` records
//! while it runs. The client's connection is the session's life: when it closes before the end,
//! the command is killed (the containerizer does it when the output is dropped), as Mesos
//! destroys a session whose connection closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use berth_containerizer::{ContainerId, OutputKind, SessionExec};
use bytes::Bytes;
use futures_util::Stream;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};

use super::calls::cz_error;
use super::Agent;
use crate::api::negotiate::{Media, MediaTypes};
use crate::api::recordio::answer_record;
use crate::api::{proto, SessionRequest, Target};
use crate::error::ApiError;
use crate::http::body::{empty, json as json_response, Body, RecordStream};

/// The protobuf message of each output record.
const PROCESS_IO: &str = "mesos.v1.agent.ProcessIO";

impl Agent {
    /// Starts a session and answers its output as a stream.
    pub(super) async fn launch_session(
        self: &Arc<Self>,
        req: &SessionRequest,
        media: &MediaTypes,
    ) -> Result<Response<Body>, ApiError> {
        let c = &req.command;
        let value = c.value.clone().unwrap_or_default();
        let argv = if c.shell {
            vec!["/bin/sh".to_owned(), "-c".to_owned(), value]
        } else {
            // Docker runs argv as given: the executable, then Mesos's arguments after argv[0].
            std::iter::once(value)
                .chain(c.arguments.iter().skip(1).cloned())
                .collect()
        };
        let exec = SessionExec {
            argv,
            env: c
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            user: c.user.clone(),
            tty: req.tty.is_some(),
            // Always open, as a Mesos session's is: a client may attach to it
            // (ATTACH_CONTAINER_INPUT); until one does, the command waits for input.
            stdin: true,
        };
        let io = self
            .containerizer()
            .launch_session(&req.parent, &req.id, exec, req.tty.flatten())
            .await
            .map_err(cz_error)?;
        Ok(output_answer(
            Box::pin(io.output),
            media,
            req.parent.clone(),
            req.id.clone(),
        ))
    }

    /// How a session ended, as `WAIT_CONTAINER` (or the deprecated `WAIT_NESTED_CONTAINER`)
    /// answers it.
    pub(super) async fn wait_session(
        &self,
        parent: &ContainerId,
        id: &ContainerId,
        nested_call: bool,
    ) -> Result<Response<Body>, ApiError> {
        let end = self
            .containerizer()
            .wait_session(parent, id)
            .await
            .map_err(cz_error)?;
        let mut payload = json!({ "message": end.message });
        if let Some(code) = end.exit_code {
            // As a container's: Docker's exit code in a wait(2) status's exit byte.
            payload["exit_status"] = json!(berth_containerizer::termination::wait_status(code));
        }
        let call = if nested_call {
            "WAIT_NESTED_CONTAINER"
        } else {
            "WAIT_CONTAINER"
        };
        Ok(json_response(
            StatusCode::OK,
            &crate::api::response::typed(call, payload),
        ))
    }
}

impl Agent {
    /// `ATTACH_CONTAINER_INPUT`: feeds the stream's `ProcessIO` records to the session's
    /// stdin — `DATA` (`STDIN`) bytes as they come, `CONTROL` `TTY_INFO` as a resize,
    /// heartbeats ignored — and closes it (end-of-file) when the stream ends or sends empty
    /// data. Answers once the input is done.
    pub(super) async fn attach_input(
        &self,
        target: &Target,
        mut records: RecordStream,
        record_media: Option<Media>,
    ) -> Result<Response<Body>, ApiError> {
        use futures_util::StreamExt as _;
        use tokio::io::AsyncWriteExt as _;
        let (log_id, session) = match target {
            Target::Session { parent, id } => (parent, Some(id)),
            Target::Container(id) => (id, None),
        };
        let mut input = match target {
            Target::Session { parent, id } => self
                .containerizer()
                .attach_session_input(parent, id)
                .map_err(cz_error)?,
            Target::Container(id) => self
                .containerizer()
                .attach_container_input(id)
                .await
                .map_err(cz_error)?,
        };
        let mut index = 0u64;
        let mut result = Ok(());
        while let Some(record) = records.next().await {
            index += 1;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    result = Err(ApiError::bad_request(format!(
                        "reading the input stream: {e}"
                    )));
                    break;
                }
            };
            let step = match input_record(index, &record, record_media) {
                Ok(s) => s,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            match step {
                Input::Data(bytes) if bytes.is_empty() => break,
                Input::Data(bytes) => {
                    if let Err(e) = input.write_all(&bytes).await {
                        // The command is gone (it closed its stdin or ended).
                        tracing::debug!(container_id = %log_id, session = ?session, error = %e, "the stdin closed");
                        break;
                    }
                    let _ = input.flush().await;
                }
                Input::Resize(size) => {
                    let resized = match target {
                        Target::Session { parent, id } => {
                            self.containerizer().resize_session(parent, id, size).await
                        }
                        Target::Container(id) => {
                            self.containerizer().resize_container(id, size).await
                        }
                    };
                    if let Err(e) = resized {
                        tracing::warn!(container_id = %log_id, session = ?session, error = %e, "could not resize the TTY");
                    }
                }
                Input::Heartbeat => {}
            }
        }
        let _ = input.shutdown().await;
        tracing::info!(container_id = %log_id, session = ?session, records = index, "input ended");
        result.map(|()| empty(StatusCode::OK))
    }
}

/// One input record's meaning.
enum Input {
    Data(Vec<u8>),
    Resize(berth_containerizer::WindowSize),
    Heartbeat,
}

/// Reads input record `index` (a `Call` of type `ATTACH_CONTAINER_INPUT` with a `PROCESS_IO`
/// payload).
fn input_record(index: u64, record: &[u8], media: Option<Media>) -> Result<Input, ApiError> {
    use base64::Engine as _;
    let bad = |what: String| ApiError::bad_request(format!("input record {index}: {what}"));
    let call: Value = match media {
        Some(Media::Protobuf) => proto::decode(proto::CALL, record)
            .map_err(|e| bad(format!("not a Call protobuf: {e}")))?,
        _ => serde_json::from_slice(record).map_err(|e| bad(format!("malformed JSON: {e}")))?,
    };
    if call["type"] != "ATTACH_CONTAINER_INPUT"
        || call["attach_container_input"]["type"] != "PROCESS_IO"
    {
        return Err(bad(
            "expected an ATTACH_CONTAINER_INPUT call of type PROCESS_IO".to_owned(),
        ));
    }
    let pio = &call["attach_container_input"]["process_io"];
    match pio["type"].as_str() {
        Some("DATA") => {
            if pio["data"]["type"] != "STDIN" {
                return Err(bad(format!(
                    "field 'attach_container_input.process_io.data.type': input is STDIN, not {}",
                    pio["data"]["type"]
                )));
            }
            let data = pio["data"]["data"].as_str().unwrap_or("");
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map(Input::Data)
                .map_err(|e| {
                    bad(format!(
                        "field 'attach_container_input.process_io.data.data': not base64: {e}"
                    ))
                })
        }
        Some("CONTROL") => match pio["control"]["type"].as_str() {
            Some("HEARTBEAT") => Ok(Input::Heartbeat),
            Some("TTY_INFO") => {
                let w = &pio["control"]["tty_info"]["window_size"];
                let dim = |k: &str| {
                    w[k].as_u64()
                        .filter(|v| (1..=u64::from(u16::MAX)).contains(v))
                        .map(|v| v as u16)
                        .ok_or_else(|| {
                            bad(format!(
                                "field 'attach_container_input.process_io.control.tty_info.window_size.{k}': 1..=65535 expected"
                            ))
                        })
                };
                Ok(Input::Resize(berth_containerizer::WindowSize {
                    rows: dim("rows")?,
                    columns: dim("columns")?,
                }))
            }
            other => Err(bad(format!(
                "field 'attach_container_input.process_io.control.type': {other:?} is not TTY_INFO or HEARTBEAT"
            ))),
        },
        other => Err(bad(format!(
            "field 'attach_container_input.process_io.type': {other:?} is not DATA or CONTROL"
        ))),
    }
}

/// A session's or a container's output.
type OutputStream = Pin<
    Box<
        dyn Stream<
                Item = Result<berth_containerizer::OutputChunk, berth_containerizer::EngineError>,
            > + Send,
    >,
>;

/// Output as a streaming answer of RecordIO-framed `ProcessIO` records, in `media`'s record
/// medium, labelled with `parent`/`id` in the logs.
fn output_answer(
    output: OutputStream,
    media: &MediaTypes,
    parent: ContainerId,
    id: ContainerId,
) -> Response<Body> {
    let records = media.record_media();
    let body = OutputBody {
        output: std::sync::Mutex::new(output),
        records,
        parent,
        id,
    };
    let mut r = Response::new(body.boxed());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.accept.as_str()),
    );
    r
}

impl Agent {
    /// `ATTACH_CONTAINER_OUTPUT` of a top-level container: its output from now on, as it comes.
    pub(super) async fn attach_output(
        &self,
        id: &ContainerId,
        media: &MediaTypes,
    ) -> Result<Response<Body>, ApiError> {
        let output = self
            .containerizer()
            .attach_output(id)
            .await
            .map_err(cz_error)?;
        tracing::info!(container_id = %id, "client attached to the container's output");
        Ok(output_answer(
            Box::pin(output),
            media,
            id.clone(),
            id.clone(),
        ))
    }
}

/// The session's output as RecordIO-framed `ProcessIO` records; ends with the command.
struct OutputBody {
    /// In a mutex only to be `Sync`, as response bodies must be; polling has it exclusively.
    output: std::sync::Mutex<OutputStream>,
    records: Media,
    parent: ContainerId,
    id: ContainerId,
}

impl OutputBody {
    fn record(&self, kind: OutputKind, data: &[u8]) -> Result<Bytes, String> {
        use base64::Engine as _;
        let event: Value = json!({"type": "DATA", "data": {
            "type": match kind { OutputKind::Stdout => "STDOUT", OutputKind::Stderr => "STDERR" },
            "data": base64::engine::general_purpose::STANDARD.encode(data),
        }});
        answer_record(PROCESS_IO, &event, self.records).map_err(|e| e.to_string())
    }
}

impl http_body::Body for OutputBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            let output = this.output.get_mut().unwrap_or_else(|p| p.into_inner());
            return match output.as_mut().poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(container_id = %this.parent, session = %this.id, error = %e, "the session's output broke");
                    Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
                }
                Poll::Ready(Some(Ok(chunk))) if chunk.data.is_empty() => continue,
                Poll::Ready(Some(Ok(chunk))) => match this.record(chunk.kind, &chunk.data) {
                    Ok(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    Err(e) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
                },
            };
        }
    }
}
