//! The logrotate container logger through the real agent: `stdout`, `stdout.1`..`stdout.N`,
//! each within the size, together the tail of the stream in order.

use berth_e2e::{remove_test_containers, Agent};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn output_is_rotated_by_size_keeping_n_files() {
    const T: &str = "e2e-logrotate";
    remove_test_containers(T).await;
    let agent = Agent::start(
        T,
        &[
            "--container-logger",
            "logrotate",
            "--logrotate-max-size",
            "64KiB",
            "--logrotate-max-files",
            "2",
        ],
    )
    .await;
    // 6000 lines of 100 bytes: about 600 KB, far more than 3 x 64 KiB.
    let line = "i=0; while [ $i -lt 6000 ]; do printf 'line %05d %088d\\n' $i 0; i=$((i+1)); done; echo to-stderr >&2";
    assert_eq!(
        agent.launch_shell("chatty", line).await.status,
        200,
        "{}",
        agent.logs()
    );
    assert_eq!(agent.wait("chatty").await["state"], "TASK_FINISHED");

    let r = agent
        .call(json!({"type": "LIST_FILES", "list_files": {"path": "/containers/chatty"}}))
        .await;
    let infos = r.json()["list_files"]["file_infos"]
        .as_array()
        .unwrap()
        .clone();
    let size = |name: &str| {
        infos
            .iter()
            .find(|i| i["path"] == format!("/containers/chatty/{name}"))
            .map(|i| i["size"].as_u64().unwrap())
    };
    for name in ["stdout", "stdout.1", "stdout.2"] {
        let s = size(name).unwrap_or_else(|| panic!("{name} missing: {infos:?}"));
        assert!(s <= 64 * 1024, "{name} is {s} bytes, over the 64 KiB limit");
    }
    assert!(
        size("stdout.1").unwrap() > 32 * 1024,
        "rotated files are nearly full"
    );
    assert_eq!(
        size("stdout.3"),
        None,
        "only 2 rotated files are kept: {infos:?}"
    );

    let text = format!(
        "{}{}{}",
        agent.read_text("/containers/chatty/stdout.2").await,
        agent.read_text("/containers/chatty/stdout.1").await,
        agent.read_text("/containers/chatty/stdout").await
    );
    let numbers: Vec<u32> = text.lines().map(|l| l[5..10].parse().unwrap()).collect();
    assert_eq!(*numbers.last().unwrap(), 5999);
    for pair in numbers.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "the kept files are one contiguous tail of the stream"
        );
    }
    assert!(
        text.lines().all(|l| l.len() == 99),
        "no line is cut or mixed"
    );
    assert_eq!(
        agent.read_text("/containers/chatty/stderr").await,
        "to-stderr\n",
        "streams stay apart"
    );
    remove_test_containers(T).await;
}
