//! A client of an agent's HTTP API, used by the CLI (and by the embedded agent of `berth run`).

use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{ApiError, Error};

fn find(entries: Vec<Value>, id: &str) -> Result<Value, Error> {
    entries
        .into_iter()
        .find(|c| c["container_id"]["value"] == id)
        .ok_or_else(|| {
            Error::Api(ApiError::not_found(format!(
                "Container {id} cannot be found"
            )))
        })
}

/// The agent the CLI talks to unless told otherwise.
pub const DEFAULT_AGENT: &str = "http://127.0.0.1:5051";

/// How a launch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchOutcome {
    /// 200: launched.
    Launched,
    /// 202: a container with that id already existed.
    AlreadyExists,
}

/// What a client sends to a session's stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionInput {
    /// Bytes for the command.
    Data(bytes::Bytes),
    /// The terminal's new size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        columns: u16,
    },
}

/// A connection to one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    connect_hint: Option<&'static str>,
}

impl AgentClient {
    /// A client of the agent at `base` (e.g. `http://127.0.0.1:5051`), sending `token` as a bearer
    /// token when set.
    pub fn new(base: &str, token: Option<String>) -> Result<AgentClient, Error> {
        let base = base.trim_end_matches('/').to_owned();
        let url = url::Url::parse(&base).map_err(|e| Error::Agent {
            url: base.clone(),
            reason: format!("not a URL: {e}"),
        })?;
        if url.scheme() != "http" {
            return Err(Error::Agent {
                url: base,
                reason: "only http:// agents are supported (put TLS in front with a proxy)".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Agent {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(AgentClient {
            base,
            token,
            http,
            connect_hint: None,
        })
    }

    /// This client with `hint` added to the message when the agent cannot be reached (e.g.
    /// `berth run`'s "or omit --agent to run an embedded agent", which only `run` can do).
    pub fn with_connect_hint(mut self, hint: &'static str) -> AgentClient {
        self.connect_hint = Some(hint);
        self
    }

    /// The agent's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        let reason = if e.is_connect() {
            match self.connect_hint {
                Some(hint) => format!("cannot connect; is `berth serve` running there? ({hint})"),
                None => "cannot connect; is `berth serve` running there? (start it, or name the \
                         right agent with --agent or BERTH_AGENT)"
                    .to_owned(),
            }
        } else {
            e.to_string()
        };
        Error::Agent {
            url: self.base.clone(),
            reason,
        }
    }

    /// The answer when it is a success, else the agent's error (its status and message).
    async fn succeeded(&self, resp: reqwest::Response) -> Result<reqwest::Response, Error> {
        let status = StatusCode::from_u16(resp.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        Err(Error::Api(ApiError::new(
            status,
            String::from_utf8_lossy(&body).trim().to_owned(),
        )))
    }

    /// Posts a `Call`; returns the status and body of a success, or the agent's error.
    pub async fn call(&self, call: &Value) -> Result<(StatusCode, Vec<u8>), Error> {
        let resp = self
            .request(reqwest::Method::POST, "/api/v1")
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(call.to_string())
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = StatusCode::from_u16(resp.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.bytes().await.map_err(|e| self.transport(e))?.to_vec();
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(Error::Api(ApiError::new(
                status,
                String::from_utf8_lossy(&body).trim().to_owned(),
            )))
        }
    }

    /// Opens a `SUBSCRIBE` stream: its events (protobuf-JSON), as they come. The stream ends
    /// when the agent ends it; a record that is not an event is an error.
    pub async fn subscribe(
        &self,
        heartbeat: Option<Duration>,
    ) -> Result<impl futures_util::Stream<Item = Result<Value, Error>> + use<>, Error> {
        let mut call = serde_json::json!({"type": "SUBSCRIBE"});
        if let Some(h) = heartbeat {
            call["subscribe"] =
                serde_json::json!({"heartbeat_interval": {"nanoseconds": h.as_nanos() as u64}});
        }
        self.stream_call(&call).await
    }

    /// Starts session `id` running `argv` in container `parent`
    /// (`LAUNCH_NESTED_CONTAINER_SESSION`), on a TTY of `tty` rows and columns when given: its
    /// `ProcessIO` records, as they come, ending with the command.
    pub async fn launch_session(
        &self,
        parent: &str,
        id: &str,
        argv: &[String],
        tty: Option<(u16, u16)>,
    ) -> Result<impl futures_util::Stream<Item = Result<Value, Error>> + use<>, Error> {
        let mut call = serde_json::json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION",
            "launch_nested_container_session": {
                "container_id": {"value": id, "parent": {"value": parent}},
                "command": {"shell": false, "value": argv.first(), "arguments": argv}}});
        if let Some((rows, columns)) = tty {
            call["launch_nested_container_session"]["container"] = serde_json::json!({
                "type": "DOCKER",
                "tty_info": {"window_size": {"rows": rows, "columns": columns}}});
        }
        self.stream_call(&call).await
    }

    /// Feeds the stdin of session `id` of `parent`, or of container `id` (launched with a TTY),
    /// with `input` as it comes — bytes, and TTY resizes — then end-of-file
    /// (`ATTACH_CONTAINER_INPUT`); returns once the agent has taken it all.
    pub async fn attach_input(
        &self,
        parent: Option<&str>,
        id: &str,
        input: impl futures_util::Stream<Item = std::io::Result<SessionInput>> + Send + 'static,
    ) -> Result<(), Error> {
        use base64::Engine as _;
        use futures_util::StreamExt as _;
        let frame = |v: Value| {
            Ok::<_, std::io::Error>(crate::api::recordio::frame(v.to_string().as_bytes()))
        };
        let process_io = |pio: Value| {
            serde_json::json!({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
                "type": "PROCESS_IO", "process_io": pio}})
        };
        let data = move |b: &[u8]| {
            process_io(serde_json::json!({"type": "DATA", "data": {
                "type": "STDIN",
                "data": base64::engine::general_purpose::STANDARD.encode(b)}}))
        };
        let mut container_id = serde_json::json!({"value": id});
        if let Some(p) = parent {
            container_id["parent"] = serde_json::json!({"value": p});
        }
        let first = frame(serde_json::json!({"type": "ATTACH_CONTAINER_INPUT",
            "attach_container_input": {"type": "CONTAINER_ID", "container_id": container_id}}));
        let body = futures_util::stream::once(async move { first })
            .chain(input.map(move |event| {
                event.and_then(|e| {
                    frame(match e {
                        SessionInput::Data(b) => data(&b),
                        SessionInput::Resize { rows, columns } => process_io(serde_json::json!({
                            "type": "CONTROL", "control": {"type": "TTY_INFO", "tty_info": {
                                "window_size": {"rows": rows, "columns": columns}}}})),
                    })
                })
            }))
            // Empty data: end-of-file, as Mesos's clients send it.
            .chain(futures_util::stream::once(async move { frame(data(b"")) }));
        let resp = self
            .request(reqwest::Method::POST, "/api/v1")
            .header("content-type", "application/recordio")
            .header("message-content-type", "application/json")
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.succeeded(resp).await.map(drop)
    }

    /// Follows container `id`'s output from now on (`ATTACH_CONTAINER_OUTPUT`): its
    /// `ProcessIO` records, as they come, ending when the container ends.
    pub async fn attach_output(
        &self,
        id: &str,
    ) -> Result<impl futures_util::Stream<Item = Result<Value, Error>> + use<>, Error> {
        self.stream_call(&serde_json::json!({"type": "ATTACH_CONTAINER_OUTPUT",
            "attach_container_output": {"container_id": {"value": id}}}))
            .await
    }

    /// Posts a call whose answer is a stream of JSON records (RecordIO).
    async fn stream_call(
        &self,
        call: &Value,
    ) -> Result<impl futures_util::Stream<Item = Result<Value, Error>> + use<>, Error> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let resp = self
            .request(reqwest::Method::POST, "/api/v1")
            .header("content-type", "application/json")
            .header("accept", "application/recordio")
            .header("message-accept", "application/json")
            .body(call.to_string())
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let resp = self.succeeded(resp).await?;
        let url = self.base.clone();
        let bytes = resp.bytes_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(bytes);
        let records =
            tokio_util::codec::FramedRead::new(reader, crate::api::recordio::RecordIo::default());
        Ok(records.map(move |r| {
            let bad = |reason: String| Error::Agent {
                url: url.clone(),
                reason,
            };
            let record = r.map_err(|e| bad(format!("the stream broke: {e}")))?;
            serde_json::from_slice(&record).map_err(|e| bad(format!("a record is not JSON: {e}")))
        }))
    }

    /// Posts a `Call` and parses the JSON answer.
    pub async fn call_json(&self, call: &Value) -> Result<Value, Error> {
        let (_, body) = self.call(call).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Agent {
            url: self.base.clone(),
            reason: format!("bad JSON answer: {e}"),
        })
    }

    /// A plain `GET` returning JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, Error> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        if !(200..300).contains(&status) {
            return Err(Error::Api(ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                String::from_utf8_lossy(&body).trim().to_owned(),
            )));
        }
        serde_json::from_slice(&body).map_err(|e| Error::Agent {
            url: self.base.clone(),
            reason: format!("bad JSON answer: {e}"),
        })
    }

    /// `LAUNCH_CONTAINER` with the given payload.
    pub async fn launch(&self, launch_container: Value) -> Result<LaunchOutcome, Error> {
        let (status, _) = self
            .call(&json!({"type": "LAUNCH_CONTAINER", "launch_container": launch_container}))
            .await?;
        Ok(if status == StatusCode::ACCEPTED {
            LaunchOutcome::AlreadyExists
        } else {
            LaunchOutcome::Launched
        })
    }

    /// `WAIT_CONTAINER`: the `wait_container` object.
    pub async fn wait(&self, id: &str) -> Result<Value, Error> {
        let v = self.call_json(&json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": id}}})).await?;
        Ok(v["wait_container"].clone())
    }

    /// `KILL_CONTAINER`, with an optional grace (stop).
    pub async fn kill(
        &self,
        id: &str,
        signal: Option<i32>,
        grace: Option<Duration>,
    ) -> Result<(), Error> {
        let mut k = json!({"container_id": {"value": id}});
        if let Some(s) = signal {
            k["signal"] = json!(s);
        }
        if let Some(g) = grace {
            k["kill_policy"] = json!({"grace_period": {"nanoseconds": g.as_nanos() as u64}});
        }
        self.call(&json!({"type": "KILL_CONTAINER", "kill_container": k}))
            .await
            .map(|_| ())
    }

    /// `REMOVE_CONTAINER`.
    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        self.call(&json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": id}}}))
            .await
            .map(|_| ())
    }

    /// `GET_CONTAINERS`: the entries.
    pub async fn containers(&self) -> Result<Vec<Value>, Error> {
        let v = self.call_json(&json!({"type": "GET_CONTAINERS"})).await?;
        Ok(v["get_containers"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// One container's entry without resource statistics (from `/state`, which does not sample
    /// usage and so answers at once), or a 404-style error.
    pub async fn container(&self, id: &str) -> Result<Value, Error> {
        let state = self.get_json("/state").await?;
        find(
            state["berth"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            id,
        )
    }

    /// One container's `GET_CONTAINERS` entry, with resource statistics when it runs.
    pub async fn container_with_usage(&self, id: &str) -> Result<Value, Error> {
        find(self.containers().await?, id)
    }

    /// `READ_FILE`: the file's size and the bytes read.
    pub async fn read_file(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<(u64, Vec<u8>), Error> {
        let mut r = json!({"path": path, "offset": offset});
        if let Some(l) = length {
            r["length"] = json!(l);
        }
        let v = self
            .call_json(&json!({"type": "READ_FILE", "read_file": r}))
            .await?;
        let size = v["read_file"]["size"].as_u64().unwrap_or(0);
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["read_file"]["data"].as_str().unwrap_or(""))
            .map_err(|e| Error::Agent {
                url: self.base.clone(),
                reason: format!("bad READ_FILE data: {e}"),
            })?;
        Ok((size, data))
    }
}
