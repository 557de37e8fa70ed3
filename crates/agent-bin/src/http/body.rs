//! Response bodies and the small response constructors every handler uses.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

use crate::error::ApiError;

/// The body type of every response: whole buffers or streamed files.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// The records of a streaming request after its first, as they arrive.
pub type RecordStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<Bytes, crate::api::recordio::RecordIoError>> + Send>,
>;

/// An API request's body: read whole (within the body limits), or for a streaming request
/// (`application/recordio`) its first record and the rest as they come.
pub enum RequestBody {
    /// The whole body.
    Whole(Bytes),
    /// A streaming request.
    Records {
        /// The first record (the call).
        first: Bytes,
        /// The records after it.
        rest: RecordStream,
    },
}

impl RequestBody {
    /// No body (the plain endpoints).
    pub fn empty() -> RequestBody {
        RequestBody::Whole(Bytes::new())
    }
}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty response with `status`.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A plain-text response (a trailing newline is added).
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{message}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// An error as Mesos answers it: the status and the message as text.
pub fn error(e: &ApiError) -> Response<Body> {
    text(e.status, &e.message)
}
