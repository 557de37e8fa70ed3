//! Response bodies as `Stream`s: raw chunks, JSON lines, and container output frames.
//!
//! Every stream here starts its request when first polled and owns its connection: dropping the
//! stream drops the connection, which the daemon sees as a cancelled request.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::ReadHalf;
use tokio_util::io::ReaderStream;

use crate::decode::frames::{FrameDecoder, FrameError, FrameMode, LogFrame};
use crate::decode::json_lines::JsonLinesDecoder;
use crate::error::{decode_error, Error, Result};
use crate::transport::{error_chain, Slot};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// A response body as a stream of chunks; gives its connection back to the pool at the end.
pub(crate) struct BodyStream {
    body: Incoming,
    slot: Slot,
    request: Arc<str>,
}

impl BodyStream {
    pub(crate) fn new(body: Incoming, slot: Slot, request: Arc<str>) -> BodyStream {
        BodyStream {
            body,
            slot,
            request,
        }
    }

    pub(crate) fn request(&self) -> &Arc<str> {
        &self.request
    }

    /// Reads the whole body (at most `limit` bytes are kept; the rest is read and dropped so the
    /// connection stays reusable).
    pub(crate) async fn collect(mut self, limit: usize) -> Result<Bytes> {
        let mut first: Option<Bytes> = None;
        let mut more: Option<BytesMut> = None;
        while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut self).poll_next(cx)).await {
            let chunk = chunk?;
            match (&mut first, &mut more) {
                (None, _) => first = Some(chunk),
                (Some(f), None) => {
                    let mut buf = BytesMut::with_capacity(f.len() + chunk.len());
                    buf.extend_from_slice(f);
                    buf.extend_from_slice(&chunk);
                    more = Some(buf);
                }
                (Some(_), Some(buf)) if buf.len() < limit => buf.extend_from_slice(&chunk),
                _ => {}
            }
        }
        let mut bytes = match more {
            Some(buf) => buf.freeze(),
            None => first.unwrap_or_default(),
        };
        bytes.truncate(limit);
        Ok(bytes)
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        let this = self.get_mut();
        loop {
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                    _ => continue,
                },
                Some(Err(e)) => {
                    return Poll::Ready(Some(Err(Error::ConnectionLost {
                        request: this.request.to_string(),
                        reason: error_chain(&e),
                    })))
                }
                None => {
                    this.slot.release();
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Where container output comes from: a response body, or an upgraded (hijacked) connection.
pub(crate) enum ByteSource {
    Body(BodyStream),
    Upgraded(ReaderStream<ReadHalf<TokioIo<Upgraded>>>, Arc<str>),
}

impl Stream for ByteSource {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        match self.get_mut() {
            ByteSource::Body(body) => Pin::new(body).poll_next(cx),
            ByteSource::Upgraded(reader, request) => Pin::new(reader).poll_next(cx).map(|item| {
                item.map(|r| {
                    r.map_err(|e| Error::ConnectionLost {
                        request: request.to_string(),
                        reason: e.to_string(),
                    })
                })
            }),
        }
    }
}

/// A stream whose request is sent when it is first polled.
enum State<S> {
    Pending(BoxFuture<S>),
    Open(S),
    Done,
}

impl<S> State<S> {
    /// Drives a pending start; `Ready(Err)` when the start failed (the state is then `Done`).
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let State::Pending(fut) = self {
            match ready!(fut.as_mut().poll(cx)) {
                Ok(s) => *self = State::Open(s),
                Err(e) => {
                    *self = State::Done;
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// A stream of JSON values, one per line of the response (events, streamed stats, progress).
///
/// A line that does not decode as `T` ends the stream with [`Error::Decode`].
#[must_use = "streams do nothing unless polled"]
pub struct JsonStream<T> {
    state: State<BodyStream>,
    decoder: JsonLinesDecoder,
    expected: &'static str,
    _item: PhantomData<fn() -> T>,
}

impl<T> JsonStream<T> {
    pub(crate) fn new(start: BoxFuture<BodyStream>, expected: &'static str) -> JsonStream<T> {
        JsonStream {
            state: State::Pending(start),
            decoder: JsonLinesDecoder::new(),
            expected,
            _item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Stream for JsonStream<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        if let Err(e) = ready!(this.state.poll_open(cx)) {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            let State::Open(body) = &mut this.state else {
                return Poll::Ready(None);
            };
            if let Some(line) = this.decoder.next_line() {
                return Poll::Ready(Some(this.parse(&line)));
            }
            match ready!(Pin::new(&mut *body).poll_next(cx)) {
                Some(Ok(chunk)) => this.decoder.push(&chunk),
                Some(Err(e)) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    let last = this.decoder.finish();
                    let result = last.map(|line| this.parse(&line));
                    this.state = State::Done;
                    return Poll::Ready(result);
                }
            }
        }
    }
}

impl<T: DeserializeOwned> JsonStream<T> {
    fn parse(&mut self, line: &[u8]) -> Result<T> {
        serde_json::from_slice(line).map_err(|e| {
            let request = match &self.state {
                State::Open(body) => body.request().to_string(),
                _ => String::from("a streamed request"),
            };
            self.state = State::Done;
            decode_error(&request, self.expected, &e, line)
        })
    }
}

/// Container output decoded into [`LogFrame`]s (from `logs`, `attach` or an exec).
///
/// Ends with [`Error::Stream`] when the daemon sends an error frame, and with
/// [`Error::Decode`] when the body is not framed as the container's TTY setting says.
#[must_use = "streams do nothing unless polled"]
pub struct LogFrames {
    state: State<(ByteSource, FrameMode, Arc<str>)>,
    decoder: Option<FrameDecoder>,
    timestamps: bool,
    /// The source ended; only what the decoder holds is left.
    eof: bool,
}

impl std::fmt::Debug for LogFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogFrames")
    }
}

impl LogFrames {
    pub(crate) fn new(
        start: BoxFuture<(ByteSource, FrameMode, Arc<str>)>,
        timestamps: bool,
    ) -> LogFrames {
        LogFrames {
            state: State::Pending(start),
            decoder: None,
            timestamps,
            eof: false,
        }
    }

    pub(crate) fn open(source: ByteSource, mode: FrameMode, request: Arc<str>) -> LogFrames {
        LogFrames {
            state: State::Open((source, mode, request)),
            decoder: Some(FrameDecoder::new(mode, false)),
            timestamps: false,
            eof: false,
        }
    }

    fn fail(&mut self, err: FrameError) -> Error {
        let request = match &self.state {
            State::Open((_, _, request)) => request.to_string(),
            _ => String::new(),
        };
        self.state = State::Done;
        match err {
            FrameError::Daemon(message) => Error::Stream {
                request,
                message,
                code: None,
            },
            other => Error::Decode {
                request,
                expected: "Docker's multiplexed stream frames",
                reason: other.to_string(),
                text: String::new(),
            },
        }
    }
}

impl Stream for LogFrames {
    type Item = Result<LogFrame>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<LogFrame>>> {
        let this = self.get_mut();
        if let Err(e) = ready!(this.state.poll_open(cx)) {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            let State::Open((source, mode, _)) = &mut this.state else {
                return Poll::Ready(None);
            };
            let decoder = this
                .decoder
                .get_or_insert_with(|| FrameDecoder::new(*mode, this.timestamps));
            let next = if this.eof {
                decoder.finish()
            } else {
                decoder.next_frame()
            };
            match next {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) if this.eof => {
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(this.fail(e)))),
            }
            match ready!(Pin::new(source).poll_next(cx)) {
                Some(Ok(chunk)) => decoder.push(&chunk),
                Some(Err(e)) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                None => this.eof = true,
            }
        }
    }
}
