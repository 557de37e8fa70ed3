//! The [`Docker`] client: connection, version negotiation, deadlines, and the request plumbing
//! every API module uses.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::error::{decode_error, from_status, Error, Result, Target};
use crate::stream::BodyStream;
use crate::transport::body::RequestBody;
use crate::transport::Transport;
use crate::version::ApiVersion;

/// The largest response body a short call buffers (inspect of a big container is ~10 KiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// How a [`Docker`] client is set up.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The deadline of each short call (inspect, create, start, remove, ...). Long-poll calls
    /// (wait, followed logs, events, pull, push, attach, streamed stats) have none; drop them to
    /// cancel. Default: 60 s.
    pub timeout: Duration,
    /// Use this API version instead of negotiating one with the daemon.
    pub api_version: Option<ApiVersion>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(60),
            api_version: None,
        }
    }
}

/// A client for one Docker daemon. Cheap to clone; clones share connections.
///
/// Calls are grouped: system calls are methods of `Docker`; [`Docker::images`],
/// [`Docker::containers`] and [`Docker::exec`] give the rest.
#[derive(Clone)]
pub struct Docker {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    transport: Arc<Transport>,
    version: ApiVersion,
    /// `/v1.41`, prepended to every versioned path.
    prefix: String,
    host: HeaderValue,
}

impl fmt::Debug for Docker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Docker")
            .field("endpoint", &self.endpoint().to_string())
            .field("api_version", &self.inner.version)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Docker {
    /// Connects to the daemon `DOCKER_HOST` names (else `/var/run/docker.sock`) and negotiates
    /// the API version.
    pub async fn from_env() -> Result<Docker> {
        Docker::connect(Endpoint::from_env()?).await
    }

    /// Connects to `endpoint` with default options and negotiates the API version.
    pub async fn connect(endpoint: Endpoint) -> Result<Docker> {
        Docker::connect_with(endpoint, ClientOptions::default()).await
    }

    /// Connects to `endpoint`. Unless `options.api_version` pins one, asks the daemon for its API
    /// version (`/_ping`, else `/version`) and uses the lower of it and [`ApiVersion::CLIENT`];
    /// daemons older than [`ApiVersion::MINIMUM`] are refused.
    pub async fn connect_with(endpoint: Endpoint, options: ClientOptions) -> Result<Docker> {
        let host =
            HeaderValue::from_str(&endpoint.host_header()).map_err(|_| Error::InvalidInput {
                what: "Docker endpoint",
                value: endpoint.to_string(),
                reason: "the host is not valid in an HTTP Host header".to_owned(),
            })?;
        let make = |version: ApiVersion| Docker {
            inner: Arc::new(Inner {
                transport: Transport::new(endpoint.clone()),
                version,
                prefix: format!("/v{version}"),
                host: host.clone(),
            }),
            timeout: options.timeout,
        };
        if let Some(version) = options.api_version {
            return Ok(make(version));
        }
        // Unversioned calls work before the version is known; use a provisional client.
        let probe = make(ApiVersion::MINIMUM);
        let daemon = probe.daemon_api_version().await?;
        let version = ApiVersion::negotiate(daemon)?;
        tracing::debug!(endpoint = %endpoint, %daemon, negotiated = %version, "connected to docker");
        // Keep the probe's pooled connection.
        Ok(Docker {
            inner: Arc::new(Inner {
                transport: probe.inner.transport.clone(),
                version,
                prefix: format!("/v{version}"),
                host,
            }),
            timeout: options.timeout,
        })
    }

    async fn daemon_api_version(&self) -> Result<ApiVersion> {
        let ping = self.ping().await?;
        if let Some(version) = ping.api_version {
            return Ok(version);
        }
        #[derive(serde::Deserialize)]
        struct V {
            #[serde(rename = "ApiVersion")]
            api_version: String,
        }
        let v: V = self.json(Call::get("/version").unversioned()).await?;
        v.api_version.parse()
    }

    /// The API version requests use.
    pub fn api_version(&self) -> ApiVersion {
        self.inner.version
    }

    /// The daemon's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.transport.endpoint()
    }

    /// The deadline of short calls made through this handle.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A handle sharing this client's connections whose short calls have deadline `timeout`.
    ///
    /// ```no_run
    /// # async fn f(docker: berth_docker_api::Docker) -> berth_docker_api::Result<()> {
    /// use std::time::Duration;
    /// let info = docker.with_timeout(Duration::from_secs(2)).info().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Docker {
        Docker {
            inner: self.inner.clone(),
            timeout,
        }
    }

    // ---- plumbing shared by the API modules ----

    /// Sends `call` and checks its status; the body is left unread.
    pub(crate) async fn open(&self, call: Call) -> Result<Opened> {
        let request: Arc<str> = Arc::from(call.name());
        let req = self.build(
            &call.method,
            &call.path,
            call.versioned,
            call.content_type,
            call.auth.as_deref(),
            call.body,
            &request,
        )?;
        let (response, slot) = self.inner.transport.send(req, &request).await?;
        let (parts, body) = response.into_parts();
        tracing::trace!(request = %request, status = parts.status.as_u16(), "docker response");
        let body = BodyStream::new(body, slot, request.clone());
        if parts.status.is_success() {
            return Ok(Opened {
                status: parts.status,
                headers: parts.headers,
                body,
            });
        }
        let text = body.collect(64 * 1024).await?;
        Err(from_status(
            parts.status.as_u16(),
            &request,
            &call.target,
            &text,
        ))
    }

    /// Sends `call` on a connection that may be upgraded (attach, exec start).
    pub(crate) async fn open_upgradable(
        &self,
        call: Call,
    ) -> Result<(http::Response<hyper::body::Incoming>, Arc<str>)> {
        let request: Arc<str> = Arc::from(call.name());
        let mut req = self.build(
            &call.method,
            &call.path,
            call.versioned,
            call.content_type,
            call.auth.as_deref(),
            call.body,
            &request,
        )?;
        let headers = req.headers_mut();
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("tcp"));
        let response = self.inner.transport.send_upgradable(req, &request).await?;
        let status = response.status();
        if status == StatusCode::SWITCHING_PROTOCOLS || status.is_success() {
            return Ok((response, request));
        }
        let (_, body) = response.into_parts();
        let text = BodyStream::new(body, crate::transport::Slot::none(), request.clone())
            .collect(64 * 1024)
            .await?;
        Err(from_status(status.as_u16(), &request, &call.target, &text))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        method: &Method,
        path: &str,
        versioned: bool,
        content_type: Option<&'static str>,
        auth: Option<&str>,
        body: RequestBody,
        request: &str,
    ) -> Result<Request<RequestBody>> {
        let uri = if versioned {
            let mut full = String::with_capacity(self.inner.prefix.len() + path.len());
            full.push_str(&self.inner.prefix);
            full.push_str(path);
            full
        } else {
            path.to_owned()
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(HOST, self.inner.host.clone());
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if let Some(auth) = auth {
            builder = builder.header("X-Registry-Auth", auth);
        }
        builder.body(body).map_err(|e| Error::InvalidInput {
            what: "request",
            value: request.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Runs a short call under this handle's deadline.
    pub(crate) async fn timed<T>(
        &self,
        request: impl FnOnce() -> String,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                request: request(),
                after: self.timeout,
            }),
        }
    }

    /// A short call whose response is JSON.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let name = call.name_fn();
        self.timed(name, self.json_untimed(call)).await
    }

    /// A call whose JSON response may take as long as it takes (wait).
    pub(crate) async fn json_untimed<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let opened = self.open(call).await?;
        let request = opened.body.request().clone();
        let bytes = opened.body.collect(MAX_BODY).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| decode_error(&request, std::any::type_name::<T>(), &e, &bytes))
    }

    /// A short call whose response body is ignored.
    pub(crate) async fn unit(&self, call: Call) -> Result<()> {
        let name = call.name_fn();
        self.timed(name, async {
            self.open(call).await?.body.collect(64 * 1024).await?;
            Ok(())
        })
        .await
    }

    /// A short call whose raw response body is returned.
    pub(crate) async fn bytes(&self, call: Call) -> Result<(HeaderMap, Bytes)> {
        let name = call.name_fn();
        self.timed(name, async {
            let opened = self.open(call).await?;
            let bytes = opened.body.collect(MAX_BODY).await?;
            Ok((opened.headers, bytes))
        })
        .await
    }
}

/// A response whose status was a success, with its body unread.
pub(crate) struct Opened {
    #[allow(dead_code)]
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: BodyStream,
}

/// One request to make.
pub(crate) struct Call {
    pub(crate) method: Method,
    /// Path and query, without the version prefix.
    pub(crate) path: String,
    pub(crate) target: Target,
    pub(crate) body: RequestBody,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) auth: Option<String>,
    pub(crate) versioned: bool,
}

impl Call {
    fn new(method: Method, path: impl Into<String>) -> Call {
        Call {
            method,
            path: path.into(),
            target: Target::None,
            body: RequestBody::empty(),
            content_type: None,
            auth: None,
            versioned: true,
        }
    }

    pub(crate) fn get(path: impl Into<String>) -> Call {
        Call::new(Method::GET, path)
    }

    pub(crate) fn post(path: impl Into<String>) -> Call {
        Call::new(Method::POST, path)
    }

    pub(crate) fn delete(path: impl Into<String>) -> Call {
        Call::new(Method::DELETE, path)
    }

    pub(crate) fn target(mut self, target: Target) -> Call {
        self.target = target;
        self
    }

    pub(crate) fn json_body<T: Serialize + ?Sized>(mut self, value: &T) -> Call {
        let bytes = serde_json::to_vec(value).expect("request types serialize");
        self.body = RequestBody::from(Bytes::from(bytes));
        self.content_type = Some("application/json");
        self
    }

    pub(crate) fn body(mut self, body: RequestBody, content_type: &'static str) -> Call {
        self.body = body;
        self.content_type = Some(content_type);
        self
    }

    pub(crate) fn auth(mut self, header: Option<String>) -> Call {
        self.auth = header;
        self
    }

    pub(crate) fn unversioned(mut self) -> Call {
        self.versioned = false;
        self
    }

    /// `METHOD /path` (no query): how errors name the request.
    pub(crate) fn name(&self) -> String {
        let path = self.path.split('?').next().unwrap_or(&self.path);
        format!("{} {}", self.method, path)
    }

    fn name_fn(&self) -> impl FnOnce() -> String {
        let name = self.name();
        move || name
    }
}
