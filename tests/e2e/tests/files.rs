//! The files API of a real agent: LIST_FILES, READ_FILE, `/files/browse|read|download`, and
//! confinement to the sandbox against paths and symlinks made by the container itself.

use base64::Engine as _;
use berth_e2e::{remove_test_containers, Agent};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_files_are_listed_read_and_downloaded() {
    const T: &str = "e2e-files";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let line = "printf 'abcdefghij' > $MESOS_SANDBOX/data.txt; mkdir $MESOS_SANDBOX/sub; \
                printf '\\000\\001\\377' > $MESOS_SANDBOX/sub/bin; echo done";
    assert_eq!(agent.launch_shell("files", line).await.status, 200);
    assert_eq!(agent.wait("files").await["state"], "TASK_FINISHED");

    let r = agent
        .call(json!({"type": "LIST_FILES", "list_files": {"path": "/containers/files"}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let infos = r.json()["list_files"]["file_infos"]
        .as_array()
        .unwrap()
        .clone();
    let paths: Vec<&str> = infos.iter().map(|i| i["path"].as_str().unwrap()).collect();
    for p in [
        "/containers/files/data.txt",
        "/containers/files/stdout",
        "/containers/files/stderr",
        "/containers/files/sub",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    let data = infos
        .iter()
        .find(|i| i["path"] == "/containers/files/data.txt")
        .unwrap();
    assert_eq!(data["size"], 10);
    assert!(data["mtime"]["nanoseconds"].as_i64().unwrap() > 0);
    assert_eq!(
        data["mode"].as_u64().unwrap() & 0o170000,
        0o100000,
        "a regular file: {data}"
    );

    let r = agent
        .call(json!({"type": "READ_FILE", "read_file": {"path": "/containers/files/data.txt", "offset": 3, "length": 4}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rf = &r.json()["read_file"];
    assert_eq!(rf["size"], 10);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(rf["data"].as_str().unwrap())
            .unwrap(),
        b"defg"
    );
    let r = agent.read_file("/containers/files/sub/bin").await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r.json()["read_file"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, [0, 1, 0xff], "bytes come back exactly");

    let r = agent
        .get("/files/read?path=/containers/files/data.txt&offset=-1")
        .await;
    assert_eq!(r.json(), json!({"data": "", "offset": 10}));
    let r = agent
        .get("/files/read?path=/containers/files/data.txt&offset=2&length=3")
        .await;
    assert_eq!(r.json(), json!({"data": "cde", "offset": 2}));
    let r = agent.get("/files/browse?path=/containers/files/sub").await;
    assert_eq!(r.status, 200, "{r:?}");
    let browse = r.json();
    assert_eq!(browse[0]["path"], "/containers/files/sub/bin");
    assert_eq!(browse[0]["mode"].as_str().unwrap().len(), 10);
    let r = agent
        .get("/files/download?path=/containers/files/data.txt")
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "abcdefghij"));
    assert_eq!(r.content_type, "application/octet-stream");
    let r = agent
        .get("/files/download?path=/containers/files/sub")
        .await;
    assert_eq!(r.status, 400, "a directory cannot be downloaded: {r:?}");
    let r = agent.get("/files/read?path=/containers/files/nope").await;
    assert_eq!(r.status, 404, "{r:?}");
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_never_leave_the_sandbox() {
    const T: &str = "e2e-files-escape";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    // The container plants links pointing out of its sandbox (on the host, the absolute ones
    // name host files) and a FIFO that would block a careless reader.
    let line =
        "cd $MESOS_SANDBOX; ln -s /etc/passwd abs; ln -s ../../../../../../../etc/passwd rel; \
                ln -s / root; ln -s data.txt fine; echo inside > data.txt; mkfifo fifo";
    assert_eq!(agent.launch_shell("esc", line).await.status, 200);
    assert_eq!(agent.wait("esc").await["state"], "TASK_FINISHED");
    // Another container's sandbox is just as out of reach.
    assert_eq!(
        agent
            .launch_shell("other", "echo secret > $MESOS_SANDBOX/secret")
            .await
            .status,
        200
    );
    agent.wait("other").await;

    for path in [
        "/containers/esc/abs",
        "/containers/esc/rel",
        "/containers/esc/root/etc/passwd",
    ] {
        let r = agent.read_file(path).await;
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert!(
            r.body.contains("outside the container's sandbox"),
            "{path}: {r:?}"
        );
        let r = agent.get(&format!("/files/download?path={path}")).await;
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert!(!r.body.contains("root:x:0:0"), "leaked /etc/passwd");
        let r = agent
            .call(json!({"type": "LIST_FILES", "list_files": {"path": path}}))
            .await;
        assert_eq!(r.status, 403, "{path}: {r:?}");
    }
    for path in [
        "/containers/esc/../other/secret",
        "/containers/esc/%2e%2e/other/secret",
        "/containers/esc/sub/../../other/secret",
    ] {
        let r = agent.read_file(path).await;
        assert!(r.status == 400 || r.status == 404, "{path}: {r:?}");
        assert!(!r.body.contains("secret\n"), "{path}");
    }
    let r = agent
        .get("/files/read?path=/containers/esc/..%2fother%2fsecret")
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = agent.get("/files/read?path=/etc/passwd").await;
    assert_eq!(r.status, 404, "{r:?}");
    // A FIFO is refused without blocking the agent.
    let r = agent.read_file("/containers/esc/fifo").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("not a regular file"), "{r:?}");
    // A link that stays inside is followed; the listing shows links as links.
    assert_eq!(agent.read_text("/containers/esc/fine").await, "inside\n");
    let r = agent.get("/files/browse?path=/containers/esc").await;
    let abs = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/containers/esc/abs")
        .cloned()
        .unwrap();
    assert!(abs["mode"].as_str().unwrap().starts_with('l'), "{abs}");
    remove_test_containers(T).await;
}
