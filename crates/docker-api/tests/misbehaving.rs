//! The client against a daemon that misbehaves on demand: a real HTTP server on a real Unix
//! socket inside the test, answering with malformed JSON, hanging, hanging up, or sending errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_docker_api::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// What the fake daemon does with one request.
enum Reply {
    /// Write these bytes and keep the connection for more requests.
    Send(Vec<u8>),
    /// Write these bytes, then close.
    SendAndClose(Vec<u8>),
    /// Close without answering.
    Close,
    /// Never answer (until the client goes away).
    Hang,
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn json(status: &str, body: &str) -> Vec<u8> {
    response(status, "application/json", body.as_bytes())
}

/// A chunked 200 response whose chunks are `parts`, ended properly when `end` is set.
fn chunked(parts: &[&[u8]], end: bool) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for p in parts {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    if end {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

struct FakeDaemon {
    path: PathBuf,
    _dir: tempfile::TempDir,
    /// Request lines received, in order.
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
    /// Receives a message when a connection is closed by the client.
    closed: mpsc::UnboundedReceiver<String>,
}

impl FakeDaemon {
    fn start(script: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeDaemon {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let script = Arc::new(script);
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let (reqs, conns) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(
                    stream,
                    script.clone(),
                    reqs.clone(),
                    closed_tx.clone(),
                ));
            }
        });
        FakeDaemon {
            path,
            _dir: dir,
            requests,
            connections,
            closed,
        }
    }

    async fn client(&self, timeout: Duration) -> Docker {
        let options = ClientOptions {
            timeout,
            api_version: Some(ApiVersion::new(1, 41)),
        };
        Docker::connect_with(Endpoint::Unix(self.path.clone()), options)
            .await
            .unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: UnixStream,
    script: Arc<dyn Fn(&str) -> Reply + Send + Sync>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    closed: mpsc::UnboundedSender<String>,
) {
    let mut buf = Vec::new();
    let mut last = String::new();
    loop {
        // Read one request: head, then a Content-Length body if any.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    let _ = closed.send(last);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + length);
        let line = head.lines().next().unwrap_or_default().to_owned();
        requests.lock().unwrap().push(line.clone());
        last = line.clone();
        match script(&line) {
            Reply::Send(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return;
            }
            Reply::Close => return,
            Reply::Hang => {
                // Wait for the client to hang up, then report it.
                let mut chunk = [0u8; 64];
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = closed.send(line);
                return;
            }
        }
    }
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_with_the_text() {
    let daemon =
        FakeDaemon::start(|_| Reply::Send(json("200 OK", r#"{"Id": "abc", "Warnings": [oops"#)));
    let docker = daemon.client(Duration::from_secs(5)).await;
    let err = docker
        .containers()
        .create(None, &ContainerConfig::default())
        .await
        .unwrap_err();
    match &err {
        Error::Decode { request, text, .. } => {
            assert_eq!(request, "POST /containers/create");
            assert!(text.contains("[oops"), "{text}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_dropped_connection_is_connection_lost_and_transient() {
    let daemon = FakeDaemon::start(|_| Reply::Close);
    let docker = daemon.client(Duration::from_secs(5)).await;
    let err = docker.info().await.unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost { ref request, .. } if request == "GET /info"),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out_and_the_connection_is_closed() {
    let mut daemon = FakeDaemon::start(|_| Reply::Hang);
    let docker = daemon.client(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let err = docker.containers().inspect("web").await.unwrap_err();
    let elapsed = started.elapsed();
    match &err {
        Error::Timeout { request, after } => {
            assert_eq!(request, "GET /containers/web/json");
            assert_eq!(*after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    // Giving up on the call hung up on the daemon too.
    let closed = tokio::time::timeout(Duration::from_secs(3), daemon.closed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed, "GET /v1.41/containers/web/json HTTP/1.1");
}

#[tokio::test]
async fn long_poll_calls_have_no_deadline() {
    // wait is a long poll: the 100 ms deadline of short calls must not apply to it.
    let daemon = FakeDaemon::start(|line| {
        if line.contains("/wait") {
            std::thread::sleep(Duration::from_millis(400));
            Reply::Send(json("200 OK", r#"{"StatusCode":3,"Error":null}"#))
        } else {
            Reply::Hang
        }
    });
    let docker = daemon.client(Duration::from_millis(100)).await;
    let exit = docker
        .containers()
        .wait("web", WaitCondition::NotRunning)
        .await
        .unwrap();
    assert_eq!(exit.status_code, 3);
}

#[tokio::test]
async fn error_statuses_map_to_variants_with_daemon_messages() {
    let daemon = FakeDaemon::start(|line| {
        Reply::Send(if line.contains("/containers/gone/") {
            json("404 Not Found", r#"{"message":"No such container: gone"}"#)
        } else if line.contains("/start") {
            response("304 Not Modified", "text/plain", b"")
        } else if line.contains("DELETE") {
            json(
                "409 Conflict",
                r#"{"message":"You cannot remove a running container"}"#,
            )
        } else if line.contains("/images/create") {
            json(
                "404 Not Found",
                r#"{"message":"manifest for 127.0.0.1:9/a/b:latest not found: manifest unknown"}"#,
            )
        } else if line.contains("/kill") {
            json("503 Service Unavailable", r#"{"message":"try later"}"#)
        } else {
            response(
                "500 Internal Server Error",
                "text/plain",
                b"plain text failure\n",
            )
        })
    });
    let docker = daemon.client(Duration::from_secs(5)).await;
    let c = docker.containers();
    let err = c.inspect("gone").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { kind: ResourceKind::Container, name, .. } if name == "gone"),
        "{err:?}"
    );
    assert!(c.start("web").await.unwrap_err().is_not_modified());
    let err = c
        .remove("web", RemoveContainerOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { message, .. } if message.contains("running container")),
        "{err:?}"
    );
    let err = c.kill("web", None).await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 503, .. }) && err.is_transient());
    let err = c.top("web", None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 500, message, .. } if message == "plain text failure"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    let mut pull = docker
        .images()
        .pull("127.0.0.1:9/a/b", &PullOptions::default());
    let err = pull.next().await.unwrap().unwrap_err();
    match &err {
        Error::NotFound {
            kind,
            name,
            registry,
            ..
        } => {
            assert_eq!(
                (*kind, name.as_str(), registry.as_deref()),
                (
                    ResourceKind::Image,
                    "127.0.0.1:9/a/b:latest",
                    Some("127.0.0.1:9")
                )
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(pull.next().await.is_none());
}

#[tokio::test]
async fn errors_inside_a_200_stream_fail_the_stream() {
    let daemon = FakeDaemon::start(|line| {
        Reply::Send(if line.contains("/push") {
            chunked(
                &[
                    b"{\"status\":\"The push refers to repository [127.0.0.1:9/a]\"}\r\n",
                    b"{\"errorDetail\":{\"message\":\"unauthorized: authentication required\"},\"error\":\"unauthorized: authentication required\"}\r\n",
                ],
                true,
            )
        } else {
            chunked(
                &[
                    b"{\"status\":\"Pulling from a\",\"id\":\"latest\"}\r\n",
                    b"{\"error\":\"read: connection reset\"}\r\n",
                ],
                true,
            )
        })
    });
    let docker = daemon.client(Duration::from_secs(5)).await;
    let mut push = docker.images().push("127.0.0.1:9/a:latest", None);
    assert!(push.next().await.unwrap().is_ok());
    let err = push.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Stream { message, .. } if message.contains("unauthorized")),
        "{err:?}"
    );
    assert!(push.next().await.is_none());
    // The push carried an X-Registry-Auth header even without credentials (checked by the daemon).
    let err = docker
        .images()
        .push_and_wait("127.0.0.1:9/a:latest", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Stream { .. }));

    let mut pull = docker
        .images()
        .pull("127.0.0.1:9/a", &PullOptions::default());
    assert!(pull.next().await.unwrap().is_ok());
    let err = pull.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Stream { message, .. } if message == "read: connection reset"),
        "{err:?}"
    );
}

#[tokio::test]
async fn streams_that_break_or_carry_garbage_end_with_an_error() {
    let daemon = FakeDaemon::start(|line| {
        if line.contains("type%22%3A%5B%22broken") {
            // Two events, then the daemon dies mid-stream.
            Reply::SendAndClose(chunked(
                &[
                    b"{\"Type\":\"container\",\"Action\":\"start\"}\n",
                    b"{\"Type\":\"cont",
                ],
                false,
            ))
        } else {
            Reply::Send(chunked(
                &[
                    b"{\"Type\":\"container\",\"Action\":\"start\"}\n",
                    b"not json\n",
                ],
                true,
            ))
        }
    });
    let docker = daemon.client(Duration::from_secs(5)).await;
    let options = EventsOptions {
        filters: Filters::new().add("type", "broken"),
        ..Default::default()
    };
    let mut events = docker.events(&options);
    assert_eq!(events.next().await.unwrap().unwrap().action, "start");
    let err = events.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    assert!(events.next().await.is_none());

    let mut events = docker.events(&EventsOptions::default());
    assert!(events.next().await.unwrap().is_ok());
    let err = events.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Decode { text, .. } if text == "not json"),
        "{err:?}"
    );
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn logs_follow_the_tty_setting_and_surface_error_frames() {
    let daemon = FakeDaemon::start(|line| {
        Reply::Send(if line.contains("/tty/json") {
            json("200 OK", r#"{"Id":"tty","Config":{"Tty":true}}"#)
        } else if line.contains("/json") {
            json("200 OK", r#"{"Id":"plain","Config":{"Tty":false}}"#)
        } else if line.contains("/tty/logs") {
            // Bytes that would be a frame header if it were multiplexed.
            response(
                "200 OK",
                "application/vnd.docker.raw-stream",
                b"\x01\x00\x00\x00\x00\x00\x00\x02hi",
            )
        } else {
            let mut body = vec![1, 0, 0, 0, 0, 0, 0, 3];
            body.extend_from_slice(b"ok\n");
            body.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 11]);
            body.extend_from_slice(b"disk full\n\n");
            response("200 OK", "application/vnd.docker.raw-stream", &body)
        })
    });
    let docker = daemon.client(Duration::from_secs(5)).await;
    let frames: Vec<_> = docker
        .containers()
        .logs("tty", &LogsOptions::default())
        .collect()
        .await;
    let data: Vec<u8> = frames
        .into_iter()
        .flat_map(|f| f.unwrap().data.to_vec())
        .collect();
    assert_eq!(
        data, b"\x01\x00\x00\x00\x00\x00\x00\x02hi",
        "a TTY body is passed through raw"
    );

    let mut logs = docker.containers().logs("plain", &LogsOptions::default());
    let frame = logs.next().await.unwrap().unwrap();
    assert_eq!(
        (frame.stream, &frame.data[..]),
        (LogStream::Stdout, &b"ok\n"[..])
    );
    let err = logs.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Stream { message, .. } if message == "disk full"),
        "{err:?}"
    );
    assert!(logs.next().await.is_none());
    // The request carried the decision's inputs: inspect first, then logs with both streams.
    let requests = daemon.requests();
    assert!(
        requests.iter().any(|r| r.starts_with(
            "GET /v1.41/containers/plain/logs?follow=0&stdout=1&stderr=1&timestamps=0&tail=all"
        )),
        "{requests:?}"
    );
}

#[tokio::test]
async fn attach_with_a_known_tty_mode_skips_the_inspect() {
    // The body after the upgrade would be a frame header if it were read as multiplexed.
    let raw = b"\x01\x00\x00\x00\x00\x00\x00\x02hi";
    let daemon = FakeDaemon::start(move |line| {
        if line.contains("/attach") {
            let mut out = b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".to_vec();
            out.extend_from_slice(raw);
            Reply::SendAndClose(out)
        } else {
            // An inspect would say the opposite of what the caller knows.
            Reply::Send(json("200 OK", r#"{"Id":"c1","Config":{"Tty":false}}"#))
        }
    });
    let docker = daemon.client(Duration::from_secs(5)).await;
    let attached = docker
        .containers()
        .attach(
            "c1",
            AttachOptions {
                tty: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let frames: Vec<LogFrame> = attached.output.map(|f| f.unwrap()).collect().await;
    let data: Vec<u8> = frames.iter().flat_map(|f| f.data.to_vec()).collect();
    assert!(frames.iter().all(|f| f.stream == LogStream::Console));
    assert_eq!(data, raw, "framed as the caller said: raw");
    let requests = daemon.requests();
    assert_eq!(requests.len(), 1, "only the attach: {requests:?}");
    assert!(requests[0].starts_with("POST /v1.41/containers/c1/attach?"));
}

#[tokio::test]
async fn dropping_a_stream_closes_its_connection() {
    let mut daemon = FakeDaemon::start(|line| {
        if line.contains("/events") {
            Reply::Hang
        } else {
            Reply::Send(json("200 OK", "{}"))
        }
    });
    let docker = daemon.client(Duration::from_secs(5)).await;
    let mut events = docker.events(&EventsOptions::default());
    // Start the request, then give up on it.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.next())
            .await
            .is_err()
    );
    drop(events);
    let closed = tokio::time::timeout(Duration::from_secs(3), daemon.closed.recv())
        .await
        .expect("the daemon saw the hang-up");
    assert!(closed.unwrap().starts_with("GET /v1.41/events"));
}

#[tokio::test]
async fn connections_are_reused_and_stale_ones_retried() {
    let daemon = FakeDaemon::start(|line| {
        if line.contains("/info") {
            // Answer, then close without telling the client (as an idle timeout would).
            Reply::SendAndClose(json("200 OK", r#"{"NCPU":2}"#))
        } else {
            Reply::Send(json("200 OK", r#"{"Version":"x","ApiVersion":"1.41"}"#))
        }
    });
    let docker = daemon.client(Duration::from_secs(5)).await;
    for _ in 0..3 {
        docker.version().await.unwrap();
    }
    assert_eq!(
        daemon.connections.load(Ordering::SeqCst),
        1,
        "keep-alive reuses one connection"
    );
    assert_eq!(docker.info().await.unwrap().ncpu, 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The pooled connection is dead now; the next calls must still succeed.
    for _ in 0..3 {
        assert_eq!(docker.info().await.unwrap().ncpu, 2);
    }
}

#[tokio::test]
async fn version_negotiation() {
    async fn negotiate(path: &Path) -> Result<Docker> {
        Docker::connect(Endpoint::Unix(path.to_owned())).await
    }
    let old = FakeDaemon::start(|_| {
        Reply::Send(
            response("200 OK", "text/plain", b"OK")
                .replace_header("Api-Version: 1.41", "Api-Version: 1.39"),
        )
    });
    let err = negotiate(&old.path).await.unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedApiVersion { daemon, .. } if daemon == ApiVersion::new(1, 39)),
        "{err:?}"
    );

    let new = FakeDaemon::start(|_| {
        Reply::Send(
            response("200 OK", "text/plain", b"OK")
                .replace_header("Api-Version: 1.41", "Api-Version: 1.50"),
        )
    });
    assert_eq!(
        negotiate(&new.path).await.unwrap().api_version(),
        ApiVersion::CLIENT
    );

    // No header on /_ping: the version comes from /version.
    let quiet = FakeDaemon::start(|line| {
        Reply::Send(if line.starts_with("GET /_ping") {
            response("200 OK", "text/plain", b"OK").replace_header("Api-Version: 1.41\r\n", "")
        } else {
            json("200 OK", r#"{"Version":"20.10.24","ApiVersion":"1.41"}"#)
        })
    });
    let docker = negotiate(&quiet.path).await.unwrap();
    assert_eq!(docker.api_version(), ApiVersion::new(1, 41));
    assert_eq!(
        quiet.requests(),
        vec!["GET /_ping HTTP/1.1", "GET /version HTTP/1.1"]
    );
}

#[tokio::test]
async fn a_missing_socket_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.sock");
    let err = Docker::connect(Endpoint::Unix(path.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::SocketMissing { path: p } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.sock"));
}

trait ReplaceHeader {
    fn replace_header(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceHeader for Vec<u8> {
    fn replace_header(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replacen(from, to, 1)
            .into_bytes()
    }
}

/// Plain HTTP over TCP (`tcp://` / `http://` DOCKER_HOST) against a fake daemon on a TCP port.
#[tokio::test]
async fn tcp_endpoints_and_docker_host() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hosts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let host = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("host: ")
                                    .or_else(|| l.strip_prefix("Host: "))
                            })
                            .unwrap_or("")
                            .to_owned();
                        seen.lock().unwrap().push(host);
                        let reply = if head.starts_with("GET /_ping") {
                            response("200 OK", "text/plain", b"OK")
                        } else {
                            json("200 OK", r#"{"NCPU":3}"#)
                        };
                        if stream.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let docker = Docker::connect(Endpoint::parse(&format!("tcp://{addr}")).unwrap())
        .await
        .unwrap();
    assert_eq!(docker.info().await.unwrap().ncpu, 3);
    assert_eq!(docker.endpoint().to_string(), format!("tcp://{addr}"));
    assert_eq!(hosts.lock().unwrap().last().unwrap(), &addr.to_string());

    // DOCKER_HOST is read by from_env (no other test in this binary reads it).
    std::env::set_var("DOCKER_HOST", format!("http://{addr}"));
    let from_env = Docker::from_env().await.unwrap();
    std::env::remove_var("DOCKER_HOST");
    assert_eq!(from_env.info().await.unwrap().ncpu, 3);

    // A closed TCP port: a connect error naming the endpoint, worth retrying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Docker::connect(Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: closed.port(),
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Connect { endpoint, .. } if endpoint == &format!("tcp://{closed}")),
        "{err:?}"
    );
    assert!(err.is_transient());
}
