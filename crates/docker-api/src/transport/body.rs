//! Request bodies: nothing, a buffer, or a caller's stream (an image tarball of any size).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Frame, SizeHint};
use tokio::io::AsyncRead;

type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The body of a request, e.g. the tarball of an image import.
///
/// Streams are sent as they are read, so a large tarball is never held in memory.
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(ByteStream),
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> RequestBody {
        RequestBody {
            kind: Kind::Full(None),
        }
    }

    /// A body sent as the stream yields chunks; an `Err` from the stream aborts the request.
    pub fn from_stream<S>(stream: S) -> RequestBody
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        RequestBody {
            kind: Kind::Stream(Box::pin(stream)),
        }
    }

    /// A body read from `reader` in chunks (a file, a pipe, a decompressor ...).
    pub fn from_reader<R>(reader: R) -> RequestBody
    where
        R: AsyncRead + Send + 'static,
    {
        RequestBody::from_stream(tokio_util::io::ReaderStream::with_capacity(
            reader,
            64 * 1024,
        ))
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> RequestBody {
        RequestBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> RequestBody {
        RequestBody::from(Bytes::from(bytes))
    }
}

impl From<&'static [u8]> for RequestBody {
    fn from(bytes: &'static [u8]) -> RequestBody {
        RequestBody::from(Bytes::from_static(bytes))
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(b) => write!(f, "RequestBody({} bytes)", b.as_ref().map_or(0, Bytes::len)),
            Kind::Stream(_) => f.write_str("RequestBody(stream)"),
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(stream) => loop {
                match stream.as_mut().poll_next(cx) {
                    // Empty chunks would be sent as chunk terminators; skip them.
                    Poll::Ready(Some(Ok(b))) if b.is_empty() => continue,
                    other => return other.map(|item| item.map(|r| r.map(Frame::data))),
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}
