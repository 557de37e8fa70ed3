//! HTTP/1.1 over the daemon's socket, with a small pool of idle keep-alive connections.
//!
//! Connections are driven by hyper's low-level client (`hyper::client::conn::http1`) so that
//! connect failures keep their `io::ErrorKind` (missing socket vs. permission denied), a request
//! that never reached a stale pooled connection is retried on a fresh one, and dropping a
//! response body closes its connection at once: that is how the daemon learns a pull, a log
//! follow or an event stream was abandoned.

pub(crate) mod body;
pub(crate) mod io;

use std::sync::{Arc, Mutex, Weak};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use body::RequestBody;
use io::Socket;

/// At most this many idle connections are kept for reuse.
const MAX_IDLE: usize = 8;

type Sender = SendRequest<RequestBody>;

/// Connections to one endpoint.
pub(crate) struct Transport {
    endpoint: Endpoint,
    idle: Mutex<Vec<Sender>>,
}

/// The connection a response arrived on; returned to the pool once its body was read to the end.
pub(crate) struct Slot {
    sender: Option<Sender>,
    transport: Weak<Transport>,
}

impl Slot {
    /// Offers the connection for reuse. Only call this after the whole body was received.
    pub(crate) fn release(&mut self) {
        let (Some(sender), Some(transport)) = (self.sender.take(), self.transport.upgrade()) else {
            return;
        };
        let mut idle = transport.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push(sender);
        }
    }

    /// A slot that returns nothing to any pool (upgraded connections).
    pub(crate) fn none() -> Slot {
        Slot {
            sender: None,
            transport: Weak::new(),
        }
    }
}

impl Transport {
    pub(crate) fn new(endpoint: Endpoint) -> Arc<Transport> {
        Arc::new(Transport {
            endpoint,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn open(&self, request: &str, upgrades: bool) -> Result<Sender> {
        let socket = Socket::connect(&self.endpoint).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(socket))
            .await
            .map_err(|e| send_error(request, &e))?;
        // The connection task ends when the connection closes: after the last sender and body
        // are dropped, or when the daemon hangs up.
        if upgrades {
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::trace!(error = %e, "docker connection ended");
                }
            });
        } else {
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::trace!(error = %e, "docker connection ended");
                }
            });
        }
        Ok(sender)
    }

    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Sends `req` on a pooled or new connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
        request: &str,
    ) -> Result<(Response<Incoming>, Slot)> {
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(sender) => (sender, true),
                None => (self.open(request, false).await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(send_error(request, &e));
            }
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let slot = Slot {
                        sender: Some(sender),
                        transport: Arc::downgrade(self),
                    };
                    return Ok((response, slot));
                }
                Err(mut err) => match err.take_message() {
                    // The daemon closed an idle connection before the request was written:
                    // nothing reached it, so sending again on a new connection is safe.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(send_error(request, err.error())),
                },
            }
        }
    }

    /// Sends `req` on a new connection that may be upgraded (attach, exec start).
    pub(crate) async fn send_upgradable(
        &self,
        req: Request<RequestBody>,
        request: &str,
    ) -> Result<Response<Incoming>> {
        let mut sender = self.open(request, true).await?;
        sender.ready().await.map_err(|e| send_error(request, &e))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| send_error(request, &e))
    }
}

/// Maps a hyper failure: the caller's body stream failing, or the connection breaking.
pub(crate) fn send_error(request: &str, err: &hyper::Error) -> Error {
    if err.is_user() {
        if let Some(io) =
            std::error::Error::source(err).and_then(|s| s.downcast_ref::<std::io::Error>())
        {
            return Error::Body {
                request: request.to_owned(),
                source: std::io::Error::new(io.kind(), io.to_string()),
            };
        }
    }
    Error::ConnectionLost {
        request: request.to_owned(),
        reason: error_chain(err),
    }
}

/// `error: cause: cause` in one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
