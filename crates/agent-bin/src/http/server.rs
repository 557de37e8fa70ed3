//! The HTTP/1.1 server: accepts connections, runs each request through routing, auth and the
//! body limit, hands it to the [`Agent`], and shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{header, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::auth::{unauthorized, Auth};
use super::body::{error, Body};
use super::route::{check_api_headers, resolve, too_large, Route, MAX_BODY};
use crate::agent::Agent;
use crate::error::ApiError;

/// How long in-flight requests get to finish after a shutdown starts (a `WAIT_CONTAINER` can
/// block for hours; it is cut off then, and the client can wait again on the next agent).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers one request.
pub async fn handle(agent: Arc<Agent>, auth: Arc<Auth>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::debug_span!("request", %method, %path);
    let response = AssertUnwindSafe(dispatch(&agent, &auth, req).instrument(span))
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
    agent.counters().response(response.status().as_u16());
    tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "answered");
    response
}

async fn dispatch(agent: &Arc<Agent>, auth: &Auth, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
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
    if route.needs_auth() {
        if let Err(denied) = auth.check(&parts.headers) {
            return unauthorized(denied);
        }
    }
    let body = if route == Route::Api {
        if let Err(e) = check_api_headers(&parts.headers) {
            if e.status == http::StatusCode::PAYLOAD_TOO_LARGE {
                drain(body).await;
            }
            return error(&e);
        }
        match read_body(body).await {
            Ok(b) => b,
            Err(e) => return error(&e),
        }
    } else {
        Bytes::new()
    };
    agent.serve(route, &parts.headers, body).await
}

/// Reads a body of at most [`MAX_BODY`] bytes (413 beyond, whatever Content-Length said).
async fn read_body(mut body: Incoming) -> Result<Bytes, ApiError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("failed to read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_BODY {
                drain(body).await;
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Most bytes read and dropped from an oversized body before answering 413.
const DRAIN_LIMIT: usize = 16 << 20;

/// Reads and drops the rest of an oversized body (up to [`DRAIN_LIMIT`] bytes, 5 s), so the 413
/// reaches a client that is still sending instead of a reset connection.
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
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
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
                let _ = stream.set_nodelay(true);
                let agent = agent.clone();
                let auth = auth.clone();
                let service = service_fn(move |req| {
                    let agent = agent.clone();
                    let auth = auth.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(agent, auth, req).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
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
