//! Bad input to a real agent: every malformed request gets a 4xx naming what is wrong, never a
//! 500, and the agent keeps serving.

use berth_e2e::{remove_test_containers, Agent};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn malformed_calls_get_400s_that_name_the_field() {
    const T: &str = "e2e-bad-input";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let cases: Vec<(String, u16, &str)> = vec![
        ("{\"type\": ".into(), 400, "malformed JSON at line 1"),
        ("[1,2]".into(), 400, "must be a JSON object"),
        ("{}".into(), 400, "missing required field 'type'"),
        (json!({"type": 7}).to_string(), 400, "field 'type': expected a string"),
        (json!({"type": "MAKE_COFFEE"}).to_string(), 400, "unknown call type \"MAKE_COFFEE\""),
        (json!({"type": "GET_TASKS"}).to_string(), 400, "not supported by Berth"),
        (json!({"type": "GET_HEALTH", "get_health": {}, "x": 1}).to_string(), 400, "unknown field"),
        (json!({"type": "WAIT_CONTAINER"}).to_string(), 400, "missing required field 'wait_container'"),
        (
            json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "a/b"}}}).to_string(),
            400,
            "field 'wait_container.container_id.value': invalid container id",
        ),
        (
            json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": ".."}}}).to_string(),
            400,
            "invalid container id",
        ),
        (
            json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "x".repeat(129)}}}).to_string(),
            400,
            "at most 128",
        ),
        (
            json!({"type": "LAUNCH_CONTAINER", "launch_container": {"container_id": {"value": "c"},
                "command": {"value": ["echo"]}}})
            .to_string(),
            400,
            "field 'launch_container.command.value': expected a string, found an array",
        ),
        (
            json!({"type": "LAUNCH_CONTAINER", "launch_container": {"container_id": {"value": "c"},
                "container": {"type": "DOCKER", "docker": {"image": "x", "network": "WIFI"}}}})
            .to_string(),
            400,
            "launch_container.container.docker.network",
        ),
        (
            json!({"type": "LAUNCH_CONTAINER", "launch_container": {"container_id": {"value": "c"},
                "container": {"type": "MESOS"}}})
            .to_string(),
            400,
            "The provided ContainerInfo is not supported",
        ),
        (
            json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "c"}, "signal": 0}}).to_string(),
            400,
            "field 'kill_container.signal'",
        ),
        (
            json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "ghost"}}}).to_string(),
            404,
            "Container ghost cannot be found",
        ),
        (
            json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "ghost"}}}).to_string(),
            404,
            "cannot be found",
        ),
        (
            json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": "ghost"}}}).to_string(),
            404,
            "cannot be found",
        ),
        (
            json!({"type": "READ_FILE", "read_file": {"path": "/containers/ghost/stdout"}}).to_string(),
            404,
            "cannot be found",
        ),
        (
            json!({"type": "LIST_FILES", "list_files": {"path": "/etc"}}).to_string(),
            404,
            "/containers/<container_id>/",
        ),
        (
            json!({"type": "LIST_FILES", "list_files": {"path": "/containers/x/../../etc"}}).to_string(),
            400,
            "'..' is not allowed",
        ),
    ];
    for (body, status, needle) in &cases {
        let r = agent.post_raw("application/json", body.clone()).await;
        assert_eq!(r.status, *status, "{body}: {r:?}");
        assert!(
            r.body.contains(needle),
            "{body}: wanted {needle:?} in {:?}",
            r.body
        );
    }

    // Protobuf is a Mesos medium (tests/mesos_protobuf.rs); bytes that are no Call are a 400.
    let r = agent
        .post_raw("application/x-protobuf", vec![0xffu8, 0xff, 0xff])
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("Call protobuf"), "{r:?}");
    let r = agent
        .post_raw("text/plain", json!({"type": "GET_HEALTH"}).to_string())
        .await;
    assert_eq!(r.status, 415, "{r:?}");
    assert!(r.body.contains("application/x-protobuf"), "{r:?}");

    let big = format!(
        "{{\"type\":\"GET_HEALTH\",\"pad\":\"{}\"}}",
        "x".repeat(1 << 20)
    );
    let r = agent.post_raw("application/json", big).await;
    assert_eq!(r.status, 413, "{r:?}");
    // A chunked body (no Content-Length) over the limit is cut off the same way.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let r = agent
        .post_raw(
            "application/json",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_eq!(r.status, 413, "{r:?}");

    let r = agent.get("/api/v1").await;
    assert_eq!(r.status, 405, "{r:?}");
    let r = agent.get("/no/such/endpoint").await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = agent
        .get("/files/read?path=/containers/x/stdout&offset=abc")
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("'offset'"), "{r:?}");

    // Still healthy after all that.
    let r = agent.call(json!({"type": "GET_HEALTH"})).await;
    assert_eq!(r.json()["get_health"]["healthy"], true);
    let logs = agent.logs();
    assert!(!logs.contains("panicked"), "the agent panicked:\n{logs}");
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_required_on_every_endpoint_but_health() {
    const T: &str = "e2e-auth";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "e2e-secret-token-0123456789\n").unwrap();
    // Only the agent's user may read it (issue 11: a token file others can read is refused).
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut agent = Agent::start(T, &["--auth-token-file", token_file.to_str().unwrap()]).await;

    for path in [
        "/state",
        "/metrics",
        "/metrics/snapshot",
        "/version",
        "/files/browse?path=/containers/x",
    ] {
        let r = agent.get(path).await;
        assert_eq!(r.status, 401, "{path}: {r:?}");
    }
    let r = agent.call(json!({"type": "GET_HEALTH"})).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("Authorization: Bearer"), "{r:?}");
    assert_eq!(
        agent.get("/health").await.status,
        200,
        "/health needs no token"
    );

    agent.token = Some("wrong-token-wrong-token".into());
    let r = agent.get("/state").await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("invalid bearer token"), "{r:?}");

    agent.token = Some("e2e-secret-token-0123456789".into());
    assert_eq!(agent.get("/state").await.status, 200);
    assert_eq!(agent.call(json!({"type": "GET_HEALTH"})).await.status, 200);
    // The CLI passes it along too.
    let out = agent.cli(&["ps"]).await;
    assert!(out.status.success(), "{}", berth_e2e::describe_output(&out));
    let snap = agent.get("/metrics/snapshot").await.json();
    assert!(
        snap["agent/http/unauthorized"].as_f64().unwrap() >= 6.0,
        "{snap}"
    );
}
