//! The HTTP/1.1 server: accepts connections, runs each request through auth, routing and the
//! body limit, hands it to the [`Agent`], and shuts down gracefully.
//!
//! It bounds what any caller can make the agent hold ([`Limits`], from the `--http-*` flags):
//! the time to send a request head (hyper's header timeout) and body (a total deadline, 408),
//! the memory all bodies hold together (a semaphore of bytes, 503 with `Retry-After`), the
//! connections served at once (503 and close beyond), the time a response may wait on a client
//! that does not read it (`SendDeadline`), and the downloads at once. The token is checked
//! before routing and before a byte of body is read. The crate README says why these are not
//! tower layers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::auth::Auth;
use super::body::RequestBody;
use super::body::{error, Body};
use super::route::{check_api_headers, resolve, too_large, Route, MAX_BODY};
use crate::agent::Agent;
use crate::error::ApiError;

/// How long in-flight requests get to finish after a shutdown starts (a `WAIT_CONTAINER` can
/// block for hours; it is cut off then, and the client can wait again on the next agent).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a request waits for its share of the body memory budget before it is refused 503.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// Largest buffer hyper keeps per connection (and so the longest request head accepted):
/// hyper's default (~400 KiB) times the connection cap would be hundreds of MiB.
const MAX_CONNECTION_BUFFER: usize = 64 << 10;

/// Chunk size of `/files/download` reads: one blocking-thread hop per chunk.
pub const DOWNLOAD_CHUNK: usize = 64 << 10;

/// The server's limits (from the `--http-*` and `--files-*` flags).
pub type Limits = crate::config::HttpConfig;

/// What every connection shares: the limits and the budgets they are counted against.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    /// One permit per byte of request body held.
    body_bytes: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    downloads: Arc<Semaphore>,
}

impl Gate {
    /// Budgets sized by `limits`.
    pub fn new(limits: Limits) -> Gate {
        Gate {
            body_bytes: Arc::new(Semaphore::new(
                usize::try_from(limits.body_memory)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            )),
            connections: Arc::new(Semaphore::new(
                limits.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            downloads: Arc::new(Semaphore::new(
                limits.max_downloads.min(Semaphore::MAX_PERMITS),
            )),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `n` more bytes of body budget, waiting at most [`BUDGET_WAIT`]; 503 when it stays taken.
    async fn reserve(&self, n: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(n).map_err(|_| too_large())?;
        if u64::from(n) > self.limits.body_memory {
            return Err(busy(format!(
                "the request body needs {n} bytes, more than --http-body-memory ({} bytes) allows",
                self.limits.body_memory
            )));
        }
        match tokio::time::timeout(BUDGET_WAIT, self.body_bytes.clone().acquire_many_owned(n))
            .await
        {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy(
                "the agent is reading too many request bodies at once (--http-body-memory); retry shortly",
            )),
        }
    }
}

/// A 503 with `Retry-After`: the agent is at a limit, not broken.
fn busy(message: impl Into<String>) -> ApiError {
    ApiError::unavailable(message)
}

/// Answers one request.
pub async fn handle(
    agent: Arc<Agent>,
    auth: Arc<Auth>,
    gate: Arc<Gate>,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::debug_span!("request", %method, %path);
    let mut response = AssertUnwindSafe(dispatch(&agent, &auth, &gate, req).instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%method, %path, panic = %what, "request handler panicked");
            error(&ApiError::internal(
                "internal error (the agent logged the details)",
            ))
        });
    match response.status() {
        StatusCode::SERVICE_UNAVAILABLE => {
            response
                .headers_mut()
                .entry(header::RETRY_AFTER)
                .or_insert(HeaderValue::from_static("1"));
        }
        StatusCode::REQUEST_TIMEOUT => {
            // The rest of the body is not read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    agent.counters().response(response.status().as_u16());
    tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "answered");
    response
}

async fn dispatch(
    agent: &Arc<Agent>,
    auth: &Auth,
    gate: &Gate,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    // The token first, before routing says which paths exist and before a byte of the body is
    // read: a caller without it learns nothing and costs nothing. The body is dropped unread;
    // hyper then closes the connection instead of reading it.
    // Which paths need it: the path's realm and the --authenticate-http-* flags.
    if let Err(denied) = auth.check_path(parts.uri.path(), &parts.headers) {
        return auth.unauthorized(denied, parts.uri.path());
    }
    let route = match resolve(&parts.method, parts.uri.path(), parts.uri.query()) {
        Ok(r) => r,
        Err(refused) => {
            let mut r = error(&refused.error);
            if let Some(allow) = refused.allow {
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            return r;
        }
    };
    debug_assert!(!route.needs_auth() || !is_public(parts.uri.path()));
    let body = if route == Route::Api {
        if let Err(e) = check_api_headers(&parts.headers) {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                drain(body).await;
            }
            return error(&e);
        }
        if crate::api::negotiate::media_types(&parts.headers)
            .is_ok_and(|m| m.content == crate::api::negotiate::Media::RecordIo)
        {
            match first_record(body, gate.limits.body_timeout).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            }
        } else {
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let limit = gate.limits.body_timeout;
            match tokio::time::timeout(limit, read_body(body, declared, gate)).await {
                Ok(Ok(b)) => RequestBody::Whole(b),
                Ok(Err(e)) => return error(&e),
                Err(_) => {
                    agent
                        .counters()
                        .http_body_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    return error(&ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request body did not arrive within {} (--http-body-timeout)",
                            crate::units::format_duration(limit)
                        ),
                    ));
                }
            }
        }
    } else {
        RequestBody::empty()
    };
    if matches!(route, Route::FilesDownload { .. }) {
        let Ok(permit) = gate.downloads.clone().try_acquire_owned() else {
            return error(&busy(format!(
                "{} downloads are in progress, the most --files-max-downloads allows; retry shortly",
                gate.limits.max_downloads
            )));
        };
        let response = agent.serve(route, &parts.headers, body).await;
        // The permit lives as long as the response body is being sent.
        return response.map(|b| {
            BodyExt::boxed(b.map_frame(move |f| {
                let _held = &permit;
                f
            }))
        });
    }
    agent.serve(route, &parts.headers, body).await
}

/// A streaming request's first record (its call), read within `limit`; the rest of the body
/// stays unread, to be read as records by the call. A record is at most [`MAX_BODY`] bytes.
async fn first_record(body: Incoming, limit: Duration) -> Result<RequestBody, ApiError> {
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let frames = http_body_util::BodyStream::new(body)
        // A trailers frame reads as no bytes.
        .map_ok(|f| f.into_data().unwrap_or_default())
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(frames);
    let mut records = tokio_util::codec::FramedRead::new(
        reader,
        crate::api::recordio::RecordIo::with_max_record(MAX_BODY),
    );
    let first = match tokio::time::timeout(limit, records.next()).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the streaming request's first record did not arrive within {} (--http-body-timeout)",
                    crate::units::format_duration(limit)
                ),
            ))
        }
        Ok(None) => return Err(ApiError::bad_request("Received EOF while reading request body")),
        Ok(Some(Err(e))) => {
            return Err(ApiError::bad_request(format!(
                "reading the request's RecordIO stream: {e}"
            )))
        }
        Ok(Some(Ok(r))) => r,
    };
    Ok(RequestBody::Records {
        first,
        rest: Box::pin(records),
    })
}

/// Reads a body of at most [`MAX_BODY`] bytes (413 beyond, whatever Content-Length said) into
/// memory counted against the body budget; the returned bytes give their budget back when the
/// last reference to them is dropped.
async fn read_body(
    mut body: Incoming,
    declared: Option<usize>,
    gate: &Gate,
) -> Result<Bytes, ApiError> {
    // With a declared length the whole budget is taken up front and the buffer allocated once;
    // a chunked body grows its buffer (and budget) by doubling, so the budget counts what the
    // allocation really holds.
    let first = declared.unwrap_or(8 << 10).clamp(1, MAX_BODY);
    let mut permit = match gate.reserve(first).await {
        Ok(p) => p,
        Err(e) => {
            // Read and dropped (no memory held), so the client sees the 503.
            drain(body).await;
            return Err(e);
        }
    };
    let mut buf: Vec<u8> = Vec::with_capacity(first);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("failed to read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buf.len() + data.len();
        if needed > MAX_BODY {
            drop(buf);
            drop(permit);
            drain(body).await;
            return Err(too_large());
        }
        if needed > buf.capacity() {
            let cap = needed.max(buf.capacity() * 2).min(MAX_BODY);
            match gate.reserve(cap - buf.capacity()).await {
                Ok(more) => permit.merge(more),
                Err(e) => {
                    drop(buf);
                    drop(permit);
                    drain(body).await;
                    return Err(e);
                }
            }
            buf.reserve_exact(cap - buf.len());
        }
        // Copied out of hyper's read buffer, so holding the body does not hold that buffer.
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from_owner(Held {
        bytes: buf,
        _permit: permit,
    }))
}

/// A request body and the budget it holds.
struct Held {
    bytes: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Whether `path` is served without a token: only `/health`, as in Mesos (whose `/version` is
/// also open; Berth's names the Docker daemon's version, so it keeps it behind the token).
pub fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/health/")
}

/// Most bytes read and dropped from an oversized body before answering 413.
const DRAIN_LIMIT: usize = 16 << 20;

/// Reads and drops the rest of an oversized body (up to [`DRAIN_LIMIT`] bytes, 5 s), so the 413
/// reaches a client that is still sending instead of a reset connection. Holds no memory
/// beyond hyper's connection buffer.
async fn drain(mut body: Incoming) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// A connection's socket that fails its writes once they have waited on the client for
/// `timeout`: a client that stops reading a response (a download, a long answer) frees its
/// connection instead of holding it, its file and its buffers forever.
struct SendDeadline {
    io: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SendDeadline {
    fn new(io: TcpStream, timeout: Duration) -> SendDeadline {
        SendDeadline {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Passes `result` on, arming the stall timer while it is pending and failing once the timer
    /// fires.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?} (--http-send-timeout)"),
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for SendDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// The body of the answer to a connection over `--http-max-connections`.
const TOO_MANY_CONNECTIONS: &str =
    "the agent is serving as many connections as --http-max-connections allows; retry later\n";

/// That answer, written without hyper.
fn too_many_connections() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\n\
         content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n{TOO_MANY_CONNECTIONS}",
        TOO_MANY_CONNECTIONS.len()
    )
}

/// Answers a connection over the cap with [`too_many_connections`] and closes it, within 2 s.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        // The client's request first: a client (hyper's among them) takes an answer that comes
        // before its request for a protocol error.
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
        stream.write_all(too_many_connections().as_bytes()).await?;
        stream.shutdown().await?;
        // What else it sent is read, so closing does not reset the connection under the answer.
        while stream.read(&mut buf).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Refusals (of connections over the cap) answered at once; more are closed unanswered.
const MAX_REFUSALS: usize = 64;

/// Binds `addr`, failing with the fix when it is taken or not ours to bind.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::Error> {
    TcpListener::bind(addr).await.map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::AddrInUse => "another process listens there (a running agent?); stop it or choose another --listen",
            std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges; choose another --listen",
            _ => "choose an address of this host for --listen",
        };
        crate::Error::startup(format!("cannot listen on {addr}: {e}"), fix)
    })
}

/// Serves until `shutdown` resolves, then stops accepting, gives in-flight requests
/// [`DRAIN_TIMEOUT`] to finish, and returns.
pub async fn serve(
    listener: TcpListener,
    agent: Arc<Agent>,
    auth: Arc<Auth>,
    shutdown: impl Future<Output = ()>,
) {
    let gate = Arc::new(Gate::new(agent.config().http.clone()));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(gate.limits.header_timeout)
        .max_buf_size(MAX_CONNECTION_BUFFER);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = gate.connections.clone().try_acquire_owned() else {
                    agent.counters().http_connections_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "connection refused: --http-max-connections reached");
                    // Answered and closed rather than left in the backlog, so the client learns
                    // why. A few refusals at a time: beyond that the connection is just closed,
                    // so a flood cannot hold file descriptors through the refusals either.
                    if let Ok(refusal) = gate.refusals.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            refuse(stream).await;
                            drop(refusal);
                        });
                    }
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let io = SendDeadline::new(stream, gate.limits.send_timeout);
                let agent = agent.clone();
                let auth = auth.clone();
                let gate = gate.clone();
                let counters_agent = agent.clone();
                let service = service_fn(move |req| {
                    let agent = agent.clone();
                    let auth = auth.clone();
                    let gate = gate.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(agent, auth, gate, req).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
                tokio::spawn(async move {
                    let open = &counters_agent.counters().http_open_connections;
                    open.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("no longer accepting requests; draining");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(timeout = ?DRAIN_TIMEOUT, "in-flight requests cut off");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(body_memory: u64) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            max_connections: 8,
            body_memory,
            max_downloads: 1,
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_body_budget_is_shared_and_waits_briefly_before_refusing() {
        let gate = Gate::new(limits(MAX_BODY as u64));
        let all = gate.reserve(MAX_BODY).await.unwrap();
        let started = tokio::time::Instant::now();
        let e = gate.reserve(1).await.unwrap_err();
        assert_eq!(started.elapsed(), BUDGET_WAIT);
        assert!(
            e.status == 503 && e.message.contains("--http-body-memory"),
            "{e:?}"
        );
        // A held body gives its budget back when its last reference goes.
        let body = Bytes::from_owner(Held {
            bytes: vec![1, 2, 3],
            _permit: all,
        });
        let copy = body.clone();
        drop(body);
        assert!(gate.reserve(1).await.is_err());
        drop(copy);
        let _all = gate.reserve(MAX_BODY).await.unwrap();
        let e = gate.reserve(MAX_BODY + 1).await.unwrap_err();
        assert!(e.message.contains("more than --http-body-memory"), "{e:?}");
    }

    #[test]
    fn the_refusal_of_a_connection_is_well_formed() {
        let text = too_many_connections();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(body.contains("--http-max-connections"));
    }

    #[test]
    fn only_health_is_public() {
        assert!(is_public("/health") && is_public("/health/"));
        for p in ["/", "/version", "/api/v1", "/healthz", "/health/x", "/nope"] {
            assert!(!is_public(p), "{p}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_that_waits_on_the_client_too_long_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut io = SendDeadline::new(server, Duration::from_millis(300));
        // The client never reads: the socket buffers fill, then the write waits and fails.
        let chunk = vec![0u8; 64 << 10];
        let started = Instant::now();
        let e = loop {
            if let Err(e) = io.write_all(&chunk).await {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never blocked");
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("--http-send-timeout"), "{e}");
        drop(client);
    }
}
