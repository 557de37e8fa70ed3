//! A real agent answers as a Mesos agent does: every JSON answer checked strictly against
//! Mesos's field tables (Berth's additions only in `berth` objects), `/files/read` with Mesos's
//! parameter rules and cap, `jsonp` where Mesos has it (with the callback validated), and the
//! endpoints monitoring scrapes (`/state`, `/flags`, `/containers`, `/monitor/statistics`).

#[path = "../../../crates/agent-bin/src/mesos_schema.rs"]
mod mesos_schema;

use berth_e2e::{remove_test_containers, Agent, Resp};
use mesos_schema::check;
use serde_json::{json, Value};

fn strict(message: &str, what: &str, r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    let v = r.json();
    check(message, &v).unwrap_or_else(|e| panic!("{what} is not a valid {message}: {e}\n{v}"));
    v
}

/// Every call and endpoint Berth answers in a Mesos shape, against a running and an ended
/// container, parsed strictly: a field Mesos's message does not have fails the test.
#[tokio::test(flavor = "multi_thread")]
async fn every_answer_is_strictly_mesos_shaped() {
    const T: &str = "e2e-mesos-strict";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(agent.launch_shell("run", "sleep 600").await.status, 200);
    assert_eq!(
        agent.launch_shell("done", "echo hi; exit 3").await.status,
        200
    );
    agent.wait("done").await;

    for call in ["GET_HEALTH", "GET_FLAGS", "GET_METRICS", "GET_CONTAINERS"] {
        strict(
            "agent.Response",
            call,
            &agent.call(json!({ "type": call })).await,
        );
    }
    let v = strict(
        "agent.Response",
        "GET_VERSION",
        &agent.call(json!({"type": "GET_VERSION"})).await,
    );
    assert_eq!(
        v["get_version"]["version_info"],
        json!({"version": env!("CARGO_PKG_VERSION")})
    );
    assert!(
        v["berth"]["docker_version"]
            .as_str()
            .unwrap()
            .starts_with("20.10"),
        "{v}"
    );
    let wait =
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "done"}}});
    strict("agent.Response", "WAIT_CONTAINER", &agent.call(wait).await);
    let list = json!({"type": "LIST_FILES", "list_files": {"path": "/containers/done"}});
    strict("agent.Response", "LIST_FILES", &agent.call(list).await);
    strict(
        "agent.Response",
        "READ_FILE",
        &agent.read_file("/containers/done/stdout").await,
    );

    let state = strict("endpoint./state", "/state", &agent.get("/state").await);
    assert_eq!(state["berth"]["containers"].as_array().unwrap().len(), 2);
    assert!(state["pid"]
        .as_str()
        .unwrap()
        .starts_with("slave(1)@127.0.0.1:"));
    assert!(
        state["resources"]["cpus"].as_f64().unwrap() >= 1.0,
        "{state}"
    );
    assert_eq!(state["frameworks"], json!([]));
    let version = strict(
        "endpoint./version",
        "/version",
        &agent.get("/version").await,
    );
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        version["berth"]["docker_version"],
        v["berth"]["docker_version"]
    );
    let flags = strict("endpoint./flags", "/flags", &agent.get("/flags").await);
    assert_eq!(flags["flags"], state["flags"]);
    assert_eq!(flags["flags"]["docker_remove_delay"], "6h", "{flags}");

    // Only the live container, with its statistics sampled now.
    let containers = strict(
        "endpoint./containers",
        "/containers",
        &agent.get("/containers").await,
    );
    let list = containers.as_array().unwrap();
    assert_eq!(list.len(), 1, "{containers}");
    assert_eq!(list[0]["container_id"], "run");
    assert_eq!(list[0]["statistics"]["processes"], 1, "{containers}");
    assert!(list[0]["status"]["executor_pid"].as_u64().unwrap() > 0);
    let one = agent.get("/containers?container_id=run").await.json();
    assert_eq!(one.as_array().unwrap().len(), 1);
    let none = agent.get("/containers?container_id=done").await.json();
    assert_eq!(none, json!([]));
    let r = agent.get("/containers?framework_id=f").await;
    assert!(
        r.status == 400 && r.body.contains("'framework_id'"),
        "{r:?}"
    );

    let stats = strict(
        "endpoint./monitor/statistics",
        "/monitor/statistics",
        &agent.get("/monitor/statistics").await,
    );
    let stats = stats.as_array().unwrap();
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0]["executor_id"], "run");
    assert!(stats[0]["statistics"]["mem_total_bytes"].as_u64().unwrap() > 0);

    let browse = strict(
        "endpoint./files/browse",
        "/files/browse",
        &agent.get("/files/browse?path=/containers/done").await,
    );
    assert!(!browse.as_array().unwrap().is_empty());

    agent.kill("run", None).await;
    agent.wait("run").await;
    remove_test_containers(T).await;
}

fn page_size() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `/files/read` as Mesos's: no offset answers the size, `length=-1` or none reads to the end
/// capped at 16 pages, and `jsonp` wraps the answer (`callback(json)`) on every JSON endpoint
/// Mesos wraps, refusing a callback that is not a JavaScript name.
#[tokio::test(flavor = "multi_thread")]
async fn files_read_and_jsonp_follow_mesos() {
    const T: &str = "e2e-mesos-files-read";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    // 100000 bytes: more than the 16-page cap with 4 KiB pages.
    let line = "head -c 100000 /dev/zero | tr '\\0' a > $MESOS_SANDBOX/big; \
                printf 'abcdefghij' > $MESOS_SANDBOX/small";
    assert_eq!(agent.launch_shell("f", line).await.status, 200);
    assert_eq!(agent.wait("f").await["state"], "TASK_FINISHED");
    let read = |q: &str| {
        let path = format!("/files/read?path=/containers/f/{q}");
        let agent = &agent;
        async move { agent.get(&path).await }
    };

    let v = strict("endpoint./files/read", "no offset", &read("big").await);
    assert_eq!(v, json!({"data": "", "offset": 100000}));
    let cap = (16 * page_size()).min(100000);
    for q in ["big&offset=0", "big&offset=0&length=-1"] {
        let v = strict("endpoint./files/read", q, &read(q).await);
        assert_eq!(v["data"].as_str().unwrap().len() as u64, cap, "{q}");
        assert_eq!(v["offset"], 0);
    }
    let v = read("small&offset=3&length=4").await.json();
    assert_eq!(v, json!({"data": "defg", "offset": 3}));
    let v = read("small&offset=10").await.json();
    assert_eq!(v, json!({"data": "", "offset": 10}));
    let v = read("small&offset=2&length=0").await.json();
    assert_eq!(v, json!({"data": "", "offset": 2}));
    for (q, field) in [
        ("small&length=-2", "'length'"),
        ("small&offset=-2", "'offset'"),
        ("small&offset=", "'offset'"),
        ("small&jsonp=alert(1)//", "'jsonp'"),
        ("small&jsonp=%3Cscript%3E", "'jsonp'"),
    ] {
        let r = read(q).await;
        assert!(r.status == 400 && r.body.contains(field), "{q}: {r:?}");
    }

    let r = read("small&offset=0&jsonp=angular.callbacks._0").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "text/javascript")
    );
    assert_eq!(
        r.body,
        r#"angular.callbacks._0({"data":"abcdefghij","offset":0})"#
    );
    for path in [
        "/state",
        "/flags",
        "/containers",
        "/monitor/statistics",
        "/version",
        "/metrics/snapshot",
        "/files/browse?path=/containers/f",
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = agent.get(&format!("{path}{sep}jsonp=cb")).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.content_type, "text/javascript", "{path}");
        let inner = r
            .body
            .strip_prefix("cb(")
            .and_then(|b| b.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{path}: not wrapped: {}", r.body));
        serde_json::from_str::<Value>(inner).unwrap_or_else(|e| panic!("{path}: {e}"));
        let r = agent.get(&format!("{path}{sep}jsonp=x%22y")).await;
        assert!(
            r.status == 400 && r.body.contains("'jsonp'"),
            "{path}: {r:?}"
        );
    }
    for q in ["/files/browse?path=", "/files/read?path="] {
        let r = agent.get(q).await;
        assert!(r.status == 400 && r.body.contains("'path'"), "{q}: {r:?}");
    }
    // An error is not wrapped.
    let r = agent
        .get("/files/read?path=/containers/f/nope&jsonp=cb")
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!r.body.starts_with("cb("));
    remove_test_containers(T).await;
}

/// The new endpoints need the token like every other but `/health`, and the token is checked
/// before the query: without it a bad `jsonp` is a 401, not a 400.
#[tokio::test(flavor = "multi_thread")]
async fn mesos_endpoints_need_the_token() {
    const T: &str = "e2e-mesos-endpoints-auth";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "e2e-secret-token-0123456789\n").unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut agent = Agent::start(T, &["--auth-token-file", token_file.to_str().unwrap()]).await;
    let paths = [
        "/flags",
        "/containers",
        "/monitor/statistics",
        "/state?jsonp=cb",
        "/state?jsonp=%3Cx%3E",
    ];
    for path in paths {
        assert_eq!(agent.get(path).await.status, 401, "{path}");
    }
    agent.token = Some("e2e-secret-token-0123456789".into());
    for path in paths {
        let want = if path.contains("%3C") { 400 } else { 200 };
        assert_eq!(agent.get(path).await.status, want, "{path}");
    }
}
