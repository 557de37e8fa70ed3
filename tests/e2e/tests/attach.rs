//! `ATTACH_CONTAINER_OUTPUT` and `berth attach`, against the real agent and daemon. Oracles:
//! the sandbox files the logger wrote (the attached bytes must be a contiguous run of them),
//! the container's own progress while a client does not read, and the agent's resident memory
//! from `/proc`.

use std::time::Duration;

use base64::Engine as _;
use berth_e2e::{eventually, remove_test_containers, Agent};
use futures_util::StreamExt as _;
use serde_json::{json, Value};

async fn attach(agent: &Agent, id: &str) -> reqwest::Response {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1", agent.url))
        .header("content-type", "application/json")
        .header("accept", "application/recordio")
        .header("message-accept", "application/json")
        .body(
            json!({"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {
                "container_id": {"value": id}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// Splits RecordIO bytes into whole records; returns them and the unfinished rest.
fn split(mut buf: &[u8]) -> (Vec<Value>, Vec<u8>) {
    let mut out = Vec::new();
    while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
        let len: usize = std::str::from_utf8(&buf[..nl]).unwrap().parse().unwrap();
        if buf.len() < nl + 1 + len {
            break;
        }
        out.push(serde_json::from_slice(&buf[nl + 1..nl + 1 + len]).unwrap());
        buf = &buf[nl + 1 + len..];
    }
    (out, buf.to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn attached_output_is_the_sandboxs_bytes_and_a_slow_client_holds_nothing() {
    const T: &str = "e2e-attach";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let line =
        "i=0; while [ $i -lt 300 ]; do printf 'o%04d\\000\\n' $i; printf 'e%04d\\n' $i >&2; \
                i=$((i+1)); sleep 0.01; done; sleep 600";
    assert_eq!(agent.launch_shell("talk", line).await.status, 200);
    let mut body = attach(&agent, "talk").await.bytes_stream();
    let (mut out, mut err, mut buf) = (Vec::new(), Vec::new(), Vec::new());
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(until, body.next()).await {
        buf.extend_from_slice(&chunk.unwrap());
        let (records, rest) = split(&buf);
        buf = rest;
        for r in records {
            assert_eq!(r["type"], "DATA", "{r}");
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["data"]["data"].as_str().unwrap())
                .unwrap();
            match r["data"]["type"].as_str().unwrap() {
                "STDOUT" => out.extend(data),
                "STDERR" => err.extend(data),
                other => panic!("{other}"),
            }
        }
    }
    drop(body);
    assert!(
        out.len() > 100 && err.len() > 100,
        "{} / {} bytes attached",
        out.len(),
        err.len()
    );
    // Every attached byte is in the sandbox files, in one run, NULs and all.
    eventually(
        Duration::from_secs(20),
        "the loop's last line logged",
        || async {
            let r = agent.read_file("/containers/talk/stderr").await;
            (r.status == 200 && r.json()["read_file"]["size"].as_u64() == Some(300 * 6))
                .then_some(())
        },
    )
    .await;
    let read = |p: &'static str| {
        let agent = &agent;
        async move {
            let r = agent.read_file(p).await;
            base64::engine::general_purpose::STANDARD
                .decode(r.json()["read_file"]["data"].as_str().unwrap())
                .unwrap()
        }
    };
    assert!(
        contains(&read("/containers/talk/stdout").await, &out),
        "stdout is a run of the sandbox's"
    );
    assert!(
        contains(&read("/containers/talk/stderr").await, &err),
        "stderr is a run of the sandbox's"
    );

    // A client that reads nothing: the container goes on writing (the sandbox file grows to its
    // end) and the agent holds no more than a bounded buffer for it.
    let size: u64 = 64 << 20;
    let writer = format!("sleep 1; head -c {size} /dev/zero | tr '\\0' x; sleep 600");
    assert_eq!(agent.launch_shell("flood", &writer).await.status, 200);
    let before = rss_kib(agent.pid());
    let stalled = attach(&agent, "flood").await;
    eventually(
        Duration::from_secs(60),
        "the flood logged while the client reads nothing",
        || async {
            let r = agent.read_file("/containers/flood/stdout").await;
            (r.json()["read_file"]["size"].as_u64() == Some(size)).then_some(())
        },
    )
    .await;
    let after = rss_kib(agent.pid());
    assert!(
        after < before + 32 * 1024,
        "the agent grew from {before} KiB to {after} KiB for a client that reads nothing"
    );
    drop(stalled);

    // A session is not attached to: its output is its launch's answer.
    let r = agent
        .call(
            json!({"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {
            "container_id": {"value": "s", "parent": {"value": "talk"}}}}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    for id in ["talk", "flood"] {
        agent.kill(id, Some(9)).await;
        agent.wait(id).await;
    }
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn berth_attach_follows_until_the_container_ends() {
    const T: &str = "e2e-attach-cli";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(
        agent
            .launch_shell("job", "sleep 1.5; echo out; echo err >&2; exit 4")
            .await
            .status,
        200
    );
    let out = agent.cli(&["attach", "job"]).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        berth_e2e::describe_output(&out)
    );
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    // An ended container has no output to attach to.
    let out = agent.cli(&["attach", "job"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        berth_e2e::describe_output(&out)
    );
    remove_test_containers(T).await;
}

/// `berth attach -i` to a container launched with a TTY, in a real terminal: our keys reach its
/// shell (raw mode), and its exit ends the CLI with its code. A container without a TTY has no
/// stdin to attach to.
#[tokio::test(flavor = "multi_thread")]
async fn berth_attach_i_types_into_a_tty_container() {
    const T: &str = "e2e-attach-tty";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let mut body = agent.launch_body("shell", json!({"value": "sh"}), None);
    body["container"]["tty_info"] = json!({"window_size": {"rows": 25, "columns": 80}});
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut term = berth_e2e::Terminal::open(33, 99);
    let mut cli = term.spawn(
        &berth_e2e::berth_bin(),
        &["attach", "-i", "--agent", &agent.url, "shell"],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    term.send(b"stty size; echo hi$((1+1))\r");
    term.expect("33 99", "the container's TTY took our size")
        .await;
    term.expect("hi2", "the shell ran our line").await;
    term.send(b"exit 5\r");
    let status = tokio::task::spawn_blocking(move || cli.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(5));
    assert_eq!(agent.wait("shell").await["exit_status"], 5 << 8);

    // No TTY, no stdin: refused, naming why.
    assert_eq!(agent.launch_shell("plain", "sleep 600").await.status, 200);
    let out = agent.cli(&["attach", "-i", "plain"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        berth_e2e::describe_output(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no open stdin"),
        "{}",
        berth_e2e::describe_output(&out)
    );
    agent.kill("plain", Some(9)).await;
    agent.wait("plain").await;
    remove_test_containers(T).await;
}

/// `berth run -it` in a real terminal: an interactive shell in a fresh container through the
/// whole pipeline (a pull-free launch on an agent), its first prompt shown, our keys typed
/// into it, its exit code ours, and with `--rm` the container gone.
#[tokio::test(flavor = "multi_thread")]
async fn berth_run_it_is_a_shell_in_a_new_container() {
    const T: &str = "e2e-run-it";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let image = berth_e2e::testbed().images.busybox.clone();
    let label = format!("{}={}", berth_testbed::TEST_LABEL, agent.test);
    let mut term = berth_e2e::Terminal::open(28, 96);
    let mut cli = term.spawn(
        &berth_e2e::berth_bin(),
        &[
            "run", "-it", "--rm", "--agent", &agent.url, "--name", "itsh", "--image", &image,
            "--label", &label, "--", "sh",
        ],
    );
    term.expect("# ", "the shell's first prompt").await;
    term.send(b"stty size; echo run$((2+3))\r");
    term.expect("28 96", "the container's terminal has our size")
        .await;
    term.expect("run5", "the shell ran our line").await;
    term.send(b"exit 6\r");
    let status = tokio::task::spawn_blocking(move || cli.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(6));
    berth_e2e::eventually(Duration::from_secs(10), "--rm removed it", || async {
        agent.container("itsh").await.is_none().then_some(())
    })
    .await;
    // -i alone: no stdin without a terminal, said before anything runs.
    let out = agent
        .cli(&["run", "-i", "--image", &image, "--", "cat"])
        .await;
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        berth_e2e::describe_output(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tty"));
    remove_test_containers(T).await;
}
