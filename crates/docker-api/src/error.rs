//! The crate's error type and the mapping from daemon responses to it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::version::ApiVersion;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How much of an offending response body an error keeps.
const MAX_TEXT: usize = 512;

/// The kind of object a request was about, so "not found" can say what was missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A container (by ID or name).
    Container,
    /// An image (by reference or ID).
    Image,
    /// An exec instance.
    Exec,
    /// A named volume.
    Volume,
    /// Anything else (an unknown endpoint, a plugin, ...).
    Other,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Container => "container",
            ResourceKind::Image => "image",
            ResourceKind::Exec => "exec instance",
            ResourceKind::Volume => "volume",
            ResourceKind::Other => "object",
        })
    }
}

/// Everything that can go wrong talking to the Docker daemon.
///
/// Variants separate what a caller acts on; [`Error::is_transient`] says whether retrying the same
/// call may succeed. A container's non-zero exit code is never an error: it is data in
/// [`WaitResponse`](crate::WaitResponse) and [`ContainerState`](crate::ContainerState).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon answered 404 for the object the request named.
    #[error("no such {kind} `{name}`{}: {message}", in_registry(.registry))]
    NotFound {
        /// What kind of object was missing.
        kind: ResourceKind,
        /// The name, ID or reference the request used.
        name: String,
        /// For images, the registry that was asked (`docker.io` when the reference names none).
        registry: Option<String>,
        /// The daemon's own message.
        message: String,
    },
    /// The daemon answered 409: the request conflicts with the object's state (a name in use, a
    /// running container to remove without force, an image in use ...).
    #[error("{request} conflicts with the current state: {message}")]
    Conflict {
        /// The request, e.g. `DELETE /containers/web`.
        request: String,
        /// The daemon's message.
        message: String,
    },
    /// The daemon answered 304: the request had nothing to do (starting a running container,
    /// stopping a stopped one).
    #[error("{request} had nothing to do (the object is already in the requested state)")]
    NotModified {
        /// The request, e.g. `POST /containers/web/start`.
        request: String,
    },
    /// Any other non-success HTTP status, with the daemon's message.
    #[error("the Docker daemon refused {request} with HTTP {status}: {message}")]
    Api {
        /// The request, e.g. `POST /containers/create`.
        request: String,
        /// The HTTP status code.
        status: u16,
        /// The daemon's message (or the raw body, truncated, when it was not Docker's JSON shape).
        message: String,
    },
    /// The daemon answered 200 and then reported a failure inside the streamed body (an
    /// `errorDetail` in a pull/push/import, or an error frame in a log stream).
    #[error("{request} failed while streaming: {message}")]
    Stream {
        /// The request, e.g. `POST /images/create`.
        request: String,
        /// The error message from the stream.
        message: String,
        /// The error code from `errorDetail.code`, when the daemon sent one.
        code: Option<i64>,
    },
    /// The Unix socket does not exist: the daemon is not running, or lives elsewhere.
    #[error(
        "the Docker socket {} does not exist: is the Docker daemon running? \
         (set DOCKER_HOST=unix:///path/to/docker.sock to use another socket)",
        .path.display()
    )]
    SocketMissing {
        /// The socket path that was tried.
        path: PathBuf,
    },
    /// The Unix socket exists but this process may not connect to it.
    #[error(
        "permission denied connecting to the Docker socket {}: run as root, add this user to the \
         group owning the socket (usually `docker`: `usermod -aG docker $USER`, then log in again), \
         or set DOCKER_HOST to a socket this user may use",
        .path.display()
    )]
    PermissionDenied {
        /// The socket path that was tried.
        path: PathBuf,
    },
    /// Connecting to the daemon failed for another reason (refused, unreachable, ...).
    #[error("cannot connect to the Docker daemon at {endpoint}: {source}")]
    Connect {
        /// The endpoint, e.g. `unix:///var/run/docker.sock` or `tcp://10.0.0.1:2375`.
        endpoint: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A short call did not finish within its deadline.
    #[error("{request} did not finish within {after:?}")]
    Timeout {
        /// The request that timed out.
        request: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The connection broke before the response was complete.
    #[error("the connection to the Docker daemon was lost during {request}: {reason}")]
    ConnectionLost {
        /// The request that was in flight.
        request: String,
        /// What the transport reported.
        reason: String,
    },
    /// The daemon's response could not be decoded.
    #[error(
        "cannot decode the response to {request} as {expected}: {reason}; the response was: {text}"
    )]
    Decode {
        /// The request whose response was undecodable.
        request: String,
        /// What the response should have been.
        expected: &'static str,
        /// Why decoding failed.
        reason: String,
        /// The offending text, truncated.
        text: String,
    },
    /// The daemon's API is older than this crate supports.
    #[error(
        "the Docker daemon speaks API {daemon}, older than the minimum {minimum} this client \
         supports: upgrade Docker to 19.03 or later"
    )]
    UnsupportedApiVersion {
        /// The daemon's API version.
        daemon: ApiVersion,
        /// The oldest version this crate accepts.
        minimum: ApiVersion,
    },
    /// An argument was rejected before anything was sent.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidInput {
        /// What the argument was (e.g. `DOCKER_HOST`).
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Reading a request body supplied by the caller (an import tarball) failed.
    #[error("reading the body of {request} failed: {source}")]
    Body {
        /// The request being sent.
        request: String,
        /// The reader's error.
        source: io::Error,
    },
    /// Registry credentials could not be read from a Docker `config.json`.
    #[error("cannot use registry credentials from {}: {reason}", .path.display())]
    Credentials {
        /// The configuration file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// Writing to an attached container's stdin failed.
    #[error("writing to the attached stdin failed: {0}")]
    Attach(#[source] io::Error),
}

fn in_registry(registry: &Option<String>) -> String {
    match registry {
        Some(r) => format!(" in registry {r}"),
        None => String::new(),
    }
}

impl Error {
    /// Whether retrying the same call may succeed: timeouts, lost or refused connections, and the
    /// gateway statuses (502, 503, 504). Everything else (not found, conflicts, bad requests, stream
    /// errors, daemon 500s, which Docker uses for many permanent failures) is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::ConnectionLost { .. } | Error::Connect { .. } => true,
            Error::Api { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Whether this is a 404 for the object the request named.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether this is a 304 (the object was already in the requested state).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Error::NotModified { .. })
    }

    /// Whether this is a 409 conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// The HTTP status the daemon answered with, for errors that came from a status code.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::NotModified { .. } => Some(304),
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a request is about, so that a 404 names the right object.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A container by ID or name.
    Container(String),
    /// An image, and the registry it lives in when that matters (pulls, pushes).
    Image {
        name: String,
        registry: Option<String>,
    },
    /// An exec instance.
    Exec(String),
    /// A named volume.
    Volume(String),
    /// Nothing in particular (system calls, lists).
    None,
}

impl Target {
    pub(crate) fn image(name: &str) -> Target {
        Target::Image {
            name: name.to_owned(),
            registry: None,
        }
    }
}

/// Maps a non-success status and its body to an [`Error`].
pub(crate) fn from_status(status: u16, request: &str, target: &Target, body: &[u8]) -> Error {
    let message = daemon_message(body);
    match status {
        304 => Error::NotModified {
            request: request.to_owned(),
        },
        404 => {
            let (kind, name, registry) = match target {
                Target::Container(id) => (ResourceKind::Container, id.clone(), None),
                Target::Image { name, registry } => {
                    (ResourceKind::Image, name.clone(), registry.clone())
                }
                Target::Exec(id) => (ResourceKind::Exec, id.clone(), None),
                Target::Volume(name) => (ResourceKind::Volume, name.clone(), None),
                Target::None => (ResourceKind::Other, request.to_owned(), None),
            };
            // A container create answers 404 when its *image* is missing: the target is the image.
            Error::NotFound {
                kind,
                name,
                registry,
                message,
            }
        }
        409 => Error::Conflict {
            request: request.to_owned(),
            message,
        },
        _ => Error::Api {
            request: request.to_owned(),
            status,
            message,
        },
    }
}

/// Docker error bodies are `{"message": "..."}`; anything else is reported verbatim (truncated).
pub(crate) fn daemon_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    match serde_json::from_slice::<Message>(body) {
        Ok(m) => m.message,
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => "(empty response body)".to_owned(),
        Err(_) => truncate_text(body),
    }
}

/// The first [`MAX_TEXT`] bytes of `body` as text, marking how much was cut.
pub(crate) fn truncate_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_end();
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// Maps an error from connecting to a Unix socket.
pub(crate) fn from_unix_connect(path: &std::path::Path, endpoint: &str, err: io::Error) -> Error {
    match err.kind() {
        io::ErrorKind::NotFound => Error::SocketMissing {
            path: path.to_owned(),
        },
        io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            path: path.to_owned(),
        },
        _ => Error::Connect {
            endpoint: endpoint.to_owned(),
            source: err,
        },
    }
}

/// Maps a decode failure of `body`, expected to be `expected`.
pub(crate) fn decode_error(
    request: &str,
    expected: &'static str,
    err: &serde_json::Error,
    body: &[u8],
) -> Error {
    Error::Decode {
        request: request.to_owned(),
        expected,
        reason: err.to_string(),
        text: truncate_text(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "POST /containers/web/start";

    #[test]
    fn status_404_names_the_container() {
        let body = br#"{"message":"No such container: web"}"#;
        let err = from_status(404, REQ, &Target::Container("web".into()), body);
        match &err {
            Error::NotFound {
                kind,
                name,
                registry,
                message,
            } => {
                assert_eq!(*kind, ResourceKind::Container);
                assert_eq!(name, "web");
                assert!(registry.is_none());
                assert_eq!(message, "No such container: web");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.is_not_found() && !err.is_transient());
        assert_eq!(
            err.to_string(),
            "no such container `web`: No such container: web"
        );
    }

    #[test]
    fn status_404_for_an_image_names_the_registry() {
        let target = Target::Image {
            name: "127.0.0.1:5301/nope:latest".into(),
            registry: Some("127.0.0.1:5301".into()),
        };
        let err = from_status(
            404,
            "POST /images/create",
            &target,
            br#"{"message":"manifest unknown"}"#,
        );
        let text = err.to_string();
        assert!(
            text.contains("image `127.0.0.1:5301/nope:latest` in registry 127.0.0.1:5301"),
            "{text}"
        );
        assert_eq!(err.status(), Some(404));
    }

    #[test]
    fn status_404_for_an_exec_and_for_nothing() {
        let err = from_status(
            404,
            "GET /exec/abc/json",
            &Target::Exec("abc".into()),
            b"{}",
        );
        assert!(matches!(
            err,
            Error::NotFound {
                kind: ResourceKind::Exec,
                ..
            }
        ));
        let err = from_status(404, "GET /nope", &Target::None, b"page not found");
        assert!(
            matches!(&err, Error::NotFound { kind: ResourceKind::Other, message, .. } if message == "page not found")
        );
    }

    #[test]
    fn status_409_is_conflict() {
        let err = from_status(409, REQ, &Target::None, br#"{"message":"name in use"}"#);
        assert!(err.is_conflict() && !err.is_transient());
        assert!(err.to_string().contains("name in use"));
    }

    #[test]
    fn status_304_is_not_modified() {
        let err = from_status(304, REQ, &Target::Container("web".into()), b"");
        assert!(err.is_not_modified());
        assert_eq!(err.status(), Some(304));
    }

    #[test]
    fn other_statuses_keep_status_and_message() {
        for (status, transient) in [
            (400, false),
            (500, false),
            (501, false),
            (502, true),
            (503, true),
            (504, true),
        ] {
            let err = from_status(status, REQ, &Target::None, br#"{"message":"boom"}"#);
            match &err {
                Error::Api {
                    status: s,
                    message,
                    request,
                } => {
                    assert_eq!(*s, status);
                    assert_eq!(message, "boom");
                    assert_eq!(request, REQ);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(err.is_transient(), transient, "status {status}");
        }
    }

    #[test]
    fn non_json_bodies_are_kept_truncated() {
        let body = vec![b'x'; 2000];
        let message = daemon_message(&body);
        assert!(
            message.starts_with("xxx") && message.ends_with("(1488 more bytes)"),
            "{message}"
        );
        assert_eq!(daemon_message(b"  \n"), "(empty response body)");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let body = "é".repeat(400); // 800 bytes, 2 per char
        let text = truncate_text(body.as_bytes());
        assert!(text.contains("more bytes"));
    }

    #[test]
    fn unix_connect_errors_name_the_socket() {
        let path = std::path::Path::new("/run/x.sock");
        let err = from_unix_connect(path, "unix:///run/x.sock", io::ErrorKind::NotFound.into());
        assert!(matches!(err, Error::SocketMissing { .. }));
        assert!(err.to_string().contains("/run/x.sock"));
        assert!(!err.is_transient());
        let err = from_unix_connect(
            path,
            "unix:///run/x.sock",
            io::ErrorKind::PermissionDenied.into(),
        );
        assert!(matches!(err, Error::PermissionDenied { .. }));
        let text = err.to_string();
        assert!(
            text.contains("/run/x.sock") && text.contains("docker"),
            "{text}"
        );
        let err = from_unix_connect(
            path,
            "unix:///run/x.sock",
            io::ErrorKind::ConnectionRefused.into(),
        );
        assert!(matches!(err, Error::Connect { .. }) && err.is_transient());
    }

    #[test]
    fn decode_errors_carry_the_text() {
        let body = b"{not json";
        let json_err = serde_json::from_slice::<serde_json::Value>(body).unwrap_err();
        let err = decode_error("GET /info", "Info", &json_err, body);
        let text = err.to_string();
        assert!(
            text.contains("{not json") && text.contains("Info") && text.contains("GET /info"),
            "{text}"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn transient_classification() {
        assert!(Error::Timeout {
            request: REQ.into(),
            after: Duration::from_secs(1)
        }
        .is_transient());
        assert!(Error::ConnectionLost {
            request: REQ.into(),
            reason: "eof".into()
        }
        .is_transient());
        assert!(!Error::Stream {
            request: REQ.into(),
            message: "x".into(),
            code: None
        }
        .is_transient());
        assert!(!Error::SocketMissing { path: "/x".into() }.is_transient());
        assert!(!Error::PermissionDenied { path: "/x".into() }.is_transient());
    }
}
