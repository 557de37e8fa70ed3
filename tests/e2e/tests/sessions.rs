//! Sessions (`LAUNCH_NESTED_CONTAINER_SESSION`): commands run in a running container on
//! Docker's exec, against the real daemon. Oracles: the bytes the command wrote (known to the
//! test), the kernel's idea of the TTY's size inside the container, and `docker top`'s process
//! list for what still runs after a kill or a dropped client.

use std::time::Duration;

use base64::Engine as _;
use berth_docker_api::Docker;
use berth_e2e::{eventually, remove_test_containers, Agent};
use futures_util::StreamExt as _;
use prost::Message as _;
use serde_json::{json, Value};

fn session_call(parent: &str, id: &str, line: &str, tty: Option<(u32, u32)>) -> Value {
    let mut s = json!({
        "container_id": {"value": id, "parent": {"value": parent}},
        "command": {"value": line},
    });
    if let Some((rows, columns)) = tty {
        s["container"] = json!({"type": "MESOS", "tty_info": {"window_size": {"rows": rows, "columns": columns}}});
    }
    json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": s})
}

async fn start(agent: &Agent, call: &Value, message_accept: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1", agent.url))
        .header("content-type", "application/json")
        .header("accept", "application/recordio")
        .header("message-accept", message_accept)
        .body(call.to_string())
        .send()
        .await
        .unwrap()
}

/// Splits a whole RecordIO body into its records (by hand, not with Berth's codec).
fn records(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let nl = body
            .iter()
            .position(|b| *b == b'\n')
            .expect("a length line");
        let len: usize = std::str::from_utf8(&body[..nl]).unwrap().parse().unwrap();
        out.push(body[nl + 1..nl + 1 + len].to_vec());
        body = &body[nl + 1 + len..];
    }
    out
}

/// The stdout and stderr bytes of JSON `ProcessIO` records.
fn outputs(body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for r in records(body) {
        let v: Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["type"], "DATA", "{v}");
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["data"]["data"].as_str().unwrap())
            .unwrap();
        match v["data"]["type"].as_str().unwrap() {
            "STDOUT" => out.extend(data),
            "STDERR" => err.extend(data),
            other => panic!("{other}"),
        }
    }
    (out, err)
}

async fn wait_session(agent: &Agent, parent: &str, id: &str) -> Value {
    let r = agent
        .call(json!({"type": "WAIT_CONTAINER", "wait_container": {
            "container_id": {"value": id, "parent": {"value": parent}}}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["wait_container"].clone()
}

/// Whether `docker top` lists a process whose command line contains `needle`.
async fn runs(name: &str, needle: &str) -> bool {
    let docker = Docker::from_env().await.unwrap();
    match docker.containers().top(name, None).await {
        Ok(top) => format!("{:?}", top.processes).contains(needle),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_stream_output_end_with_their_command_and_obey_kills() {
    const T: &str = "e2e-sessions";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(agent.launch_shell("web", "sleep 600").await.status, 200);
    let name = agent.docker_name("web");

    // Output, byte-exact per stream, and the exit code as a wait status (Mesos's encoding).
    let r = start(
        &agent,
        &session_call(
            "web",
            "s1",
            "printf 'out\\000put'; printf err >&2; exit 7",
            None,
        ),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/recordio");
    let (out, err) = outputs(&r.bytes().await.unwrap());
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"out\0put"[..], &b"err"[..])
    );
    let w = wait_session(&agent, "web", "s1").await;
    assert_eq!(w["exit_status"], 7 << 8, "{w}");
    let r = agent
        .call(
            json!({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {
            "container_id": {"value": "s1", "parent": {"value": "web"}}}}),
        )
        .await;
    assert_eq!(r.json()["wait_nested_container"]["exit_status"], 7 << 8);
    let web = agent.container("web").await.unwrap();
    assert_eq!(web["berth"]["sessions"][0]["container_id"]["value"], "s1");
    assert_eq!(web["berth"]["sessions"][0]["exit_status"], 7 << 8);

    // A TTY of the asked size, as the kernel inside the container sees it.
    let r = start(
        &agent,
        &session_call("web", "tty", "sleep 0.3; stty size", Some((33, 101))),
        "application/json",
    )
    .await;
    let (out, _) = outputs(&r.bytes().await.unwrap());
    assert_eq!(String::from_utf8_lossy(&out).trim(), "33 101");

    // Protobuf records: Mesos's ProcessIO, DATA (1) / STDOUT (2).
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/agent-bin/proto");
    let set = protox::compile(["mesos/v1/agent/agent.proto"], [proto]).unwrap();
    let pool = prost_reflect::DescriptorPool::decode(set.encode_to_vec().as_slice()).unwrap();
    let pio = pool
        .get_message_by_name("mesos.v1.agent.ProcessIO")
        .unwrap();
    let r = start(
        &agent,
        &session_call("web", "pb", "printf hello", None),
        "application/x-protobuf",
    )
    .await;
    let recs = records(&r.bytes().await.unwrap());
    assert_eq!(recs.len(), 1);
    let m = prost_reflect::DynamicMessage::decode(pio, recs[0].as_slice()).unwrap();
    assert_eq!(m.unknown_fields().count(), 0);
    // type=DATA, data={type=STDOUT, data="hello"}: 08 01 12 09 08 02 12 05 h e l l o
    assert_eq!(recs[0], b"\x08\x01\x12\x09\x08\x02\x12\x05hello");

    // KILL_CONTAINER with the parent signals the session's command: its stream ends.
    let r = start(
        &agent,
        &session_call("web", "s2", "exec sleep 601", None),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);
    let body = tokio::spawn(r.bytes());
    eventually(Duration::from_secs(10), "sleep 601 runs", || async {
        runs(&name, "sleep 601").await.then_some(())
    })
    .await;
    let k = agent
        .call(json!({"type": "KILL_CONTAINER", "kill_container": {
            "container_id": {"value": "s2", "parent": {"value": "web"}}, "signal": 15}}))
        .await;
    assert_eq!(k.status, 200, "{k:?}");
    tokio::time::timeout(Duration::from_secs(10), body)
        .await
        .expect("the stream ends with the command")
        .unwrap()
        .unwrap();
    assert_eq!(
        wait_session(&agent, "web", "s2").await["exit_status"],
        (128 + 15) << 8
    );
    assert!(!runs(&name, "sleep 601").await);

    // A client that goes away takes its session's command with it.
    let r = start(
        &agent,
        &session_call("web", "s3", "exec sleep 602", None),
        "application/json",
    )
    .await;
    eventually(Duration::from_secs(10), "sleep 602 runs", || async {
        runs(&name, "sleep 602").await.then_some(())
    })
    .await;
    let mut stream = r.bytes_stream();
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    drop(stream);
    eventually(Duration::from_secs(10), "sleep 602 killed", || async {
        (!runs(&name, "sleep 602").await).then_some(())
    })
    .await;
    assert_eq!(
        wait_session(&agent, "web", "s3").await["exit_status"],
        (128 + 9) << 8
    );
    // And all of it: a shell's children too, as Mesos destroys a nested container whole.
    let r = start(
        &agent,
        &session_call("web", "s3b", "sleep 604 & sleep 605; true", None),
        "application/json",
    )
    .await;
    eventually(Duration::from_secs(10), "sleep 604 and 605 run", || async {
        (runs(&name, "sleep 604").await && runs(&name, "sleep 605").await).then_some(())
    })
    .await;
    drop(r);
    eventually(
        Duration::from_secs(10),
        "the session's processes killed",
        || async {
            (!runs(&name, "sleep 604").await && !runs(&name, "sleep 605").await).then_some(())
        },
    )
    .await;

    // Refusals: an unknown parent, a taken id, a session that fetches, a nested call with no
    // parent, a session of a session.
    let cases = [
        (session_call("nope", "x", "true", None), 404, "nope"),
        (
            session_call("web", "s1", "true", None),
            409,
            "already exists",
        ),
        (
            json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
                "container_id": {"value": "u", "parent": {"value": "web"}},
                "command": {"value": "true", "uris": [{"value": "http://x/y"}]}}}),
            400,
            "command.uris",
        ),
        (
            json!({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {"container_id": {"value": "s1"}}}),
            400,
            "wait_nested_container.container_id.parent",
        ),
        (
            json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
                "container_id": {"value": "n", "parent": {"value": "s1", "parent": {"value": "web"}}},
                "command": {"value": "true"}}}),
            400,
            "one level",
        ),
    ];
    for (call, status, needle) in cases {
        let r = agent.call(call.clone()).await;
        assert_eq!(r.status, status, "{call}: {r:?}");
        assert!(r.body.contains(needle), "{call}: {r:?}");
    }

    // The parent's end ends its sessions.
    let r = start(
        &agent,
        &session_call("web", "s4", "exec sleep 603", None),
        "application/json",
    )
    .await;
    let body = tokio::spawn(r.bytes());
    eventually(Duration::from_secs(10), "sleep 603 runs", || async {
        runs(&name, "sleep 603").await.then_some(())
    })
    .await;
    agent.kill("web", Some(9)).await;
    agent.wait("web").await;
    tokio::time::timeout(Duration::from_secs(10), body)
        .await
        .expect("the session's stream ends with its container")
        .unwrap()
        .unwrap();
    let w = wait_session(&agent, "web", "s4").await;
    assert!(w["message"].is_string(), "{w}");
    // An ended container takes no session.
    let r = agent.call(session_call("web", "late", "true", None)).await;
    assert_eq!(r.status, 409, "{r:?}");
    remove_test_containers(T).await;
}

/// `berth exec`: the command's output on the CLI's stdout and stderr, byte for byte, and its
/// exit code as the CLI's.
#[tokio::test(flavor = "multi_thread")]
async fn berth_exec_runs_a_command_in_a_container() {
    const T: &str = "e2e-sessions-cli";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(agent.launch_shell("box", "sleep 600").await.status, 200);
    let out = agent
        .cli(&[
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "printf 'a\\000b'; printf err >&2; exit 5",
        ])
        .await;
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        berth_e2e::describe_output(&out)
    );
    assert_eq!(out.stdout, b"a\0b");
    assert_eq!(out.stderr, b"err");
    // Arguments reach the command as given, spaces and all (no shell in between).
    let out = agent
        .cli(&["exec", "box", "--", "printf", "%s|", "x y", "z"])
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        berth_e2e::describe_output(&out)
    );
    assert_eq!(out.stdout, b"x y|z|");
    // An unknown container: the CLI's error code and the agent's message.
    // A command that cannot start: 126, as Docker reports it (`docker exec` too); an unknown
    // container: 1 (as `docker exec`) and the agent's message.
    let out = agent.cli(&["exec", "box", "--", "/no/such/command"]).await;
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        berth_e2e::describe_output(&out)
    );
    let out = agent.cli(&["exec", "nope", "--", "true"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        berth_e2e::describe_output(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    agent.kill("box", Some(9)).await;
    agent.wait("box").await;
    remove_test_containers(T).await;
}

/// A RecordIO record of JSON.
fn record(v: Value) -> Vec<u8> {
    let text = v.to_string();
    format!("{}\n{text}", text.len()).into_bytes()
}

fn input_data(data: &[u8]) -> Vec<u8> {
    record(
        json!({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "PROCESS_IO", "process_io": {"type": "DATA", "data": {
            "type": "STDIN", "data": base64::engine::general_purpose::STANDARD.encode(data)}}}}),
    )
}

/// Opens `ATTACH_CONTAINER_INPUT` for a session; the records sent into the channel follow the
/// first (the container id) as they come; dropping the sender ends the request.
fn attach(
    agent: &Agent,
    parent: &str,
    id: &str,
) -> (
    tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    tokio::task::JoinHandle<(u16, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tx.send(record(
        json!({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "CONTAINER_ID", "container_id": {"value": id, "parent": {"value": parent}}}}),
    ))
    .unwrap();
    let records = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|v| (Ok::<_, std::io::Error>(v), rx))
    });
    let body = reqwest::Body::wrap_stream(records);
    let request = reqwest::Client::new()
        .post(format!("{}/api/v1", agent.url))
        .header("content-type", "application/recordio")
        .header("message-content-type", "application/json")
        .body(body);
    let task = tokio::spawn(async move {
        let r = request.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    (tx, task)
}

/// Input: records reach the command's stdin in order, empty data is end-of-file, a TTY
/// follows resizes, one client at a time; and `berth exec -i` pipes the CLI's stdin.
#[tokio::test(flavor = "multi_thread")]
async fn session_input_streams_to_stdin() {
    const T: &str = "e2e-sessions-input";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(agent.launch_shell("box", "sleep 600").await.status, 200);

    let out = start(
        &agent,
        &session_call("box", "cat", "cat; printf '|done'", None),
        "application/json",
    )
    .await;
    assert_eq!(out.status(), 200);
    let output = tokio::spawn(out.bytes());
    let (tx, input) = attach(&agent, "box", "cat");
    tx.send(input_data(b"hello ")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(input_data(b"w\0rld")).unwrap();
    // A second client for the same stdin: refused while the first has it.
    let (_tx2, second) = attach(&agent, "box", "cat");
    let (status, body) = second.await.unwrap();
    assert_eq!(status, 409, "{body}");
    tx.send(input_data(b"")).unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), input)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{body}");
    drop(tx);
    let (out, _) = outputs(
        &tokio::time::timeout(Duration::from_secs(10), output)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    );
    assert_eq!(out, b"hello w\0rld|done");
    assert_eq!(wait_session(&agent, "box", "cat").await["exit_status"], 0);

    // A TTY resized by a CONTROL record, then a line that lets the command look.
    let out = start(
        &agent,
        &session_call("box", "tty", "read x; stty size", Some((10, 20))),
        "application/json",
    )
    .await;
    let output = tokio::spawn(out.bytes());
    let (tx, input) = attach(&agent, "box", "tty");
    tx.send(record(
        json!({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "PROCESS_IO", "process_io": {"type": "CONTROL", "control": {
            "type": "TTY_INFO", "tty_info": {"window_size": {"rows": 40, "columns": 120}}}}}}),
    ))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(input_data(b"go\n")).unwrap();
    let (out, _) = outputs(
        &tokio::time::timeout(Duration::from_secs(10), output)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    );
    assert!(
        String::from_utf8_lossy(&out).contains("40 120"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    drop(tx);
    let _ = input.await;

    // berth exec -i: the CLI's stdin to the command; without -i, end-of-file at once.
    let mut cli = tokio::process::Command::new(berth_e2e::berth_bin())
        .args([
            "exec", "-i", "--agent", &agent.url, "box", "--", "tr", "a-z", "A-Z",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = cli.stdin.take().unwrap();
        stdin.write_all(b"abc\n").await.unwrap();
    }
    let done = tokio::time::timeout(Duration::from_secs(20), cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(done.stdout, b"ABC\n");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        agent.cli(&["exec", "box", "--", "cat"]),
    )
    .await
    .expect("cat reads end-of-file at once without -i");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        berth_e2e::describe_output(&out)
    );
    assert!(out.stdout.is_empty());

    agent.kill("box", Some(9)).await;
    agent.wait("box").await;
    remove_test_containers(T).await;
}

/// `berth exec -i -t` in a real pseudo-terminal (its controlling terminal, via `setsid -c`):
/// the remote shell sees a terminal of our size, follows our resize (SIGWINCH), gets Ctrl-C as a
/// byte (it interrupts the remote command, not the CLI), and the CLI exits with the shell's code
/// with our terminal's settings restored.
#[tokio::test(flavor = "multi_thread")]
async fn berth_exec_tty_in_a_real_terminal() {
    const T: &str = "e2e-sessions-tty";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(agent.launch_shell("box", "sleep 600").await.status, 200);
    let mut term = berth_e2e::Terminal::open(30, 90);
    let before = term.local_modes();
    let mut cli = term.spawn(
        &berth_e2e::berth_bin(),
        &["exec", "-i", "-t", "--agent", &agent.url, "box", "--", "sh"],
    );
    term.send(b"stty size; echo mark$((40+2))\r");
    term.expect("30 90", "the remote terminal has our size")
        .await;
    term.expect("mark42", "the shell ran the line").await;
    // Our terminal resized: the CLI's SIGWINCH becomes a TTY_INFO record.
    term.resize(41, 101);
    tokio::time::sleep(Duration::from_millis(500)).await;
    term.send(b"stty size\r");
    term.expect("41 101", "the remote terminal followed the resize")
        .await;
    // Ctrl-C interrupts the remote command; the CLI and the shell live on.
    term.send(b"sleep 100; echo after$((1+1))\r");
    tokio::time::sleep(Duration::from_millis(500)).await;
    term.send(b"\x03");
    term.send(b"echo alive$((2+2))\r");
    term.expect("alive4", "the shell after Ctrl-C").await;
    assert!(!term.since_last().contains("after2"));
    term.send(b"exit 3\r");
    let status = tokio::task::spawn_blocking(move || cli.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(term.local_modes(), before, "raw mode undone");

    agent.kill("box", Some(9)).await;
    agent.wait("box").await;
    remove_test_containers(T).await;
}

/// The answer's headers come before Docker knows the command's pid (its output does not wait
/// for it): a kill sent at once, or a client gone at once, must still reach the command.
/// Raced many times; the oracle is the exit status Docker recorded for the exec.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_or_a_drop_right_after_the_start_reaches_the_command() {
    const T: &str = "e2e-sessions-race";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    assert_eq!(agent.launch_shell("web", "sleep 600").await.status, 200);
    for i in 0..8 {
        let (killed, dropped) = (format!("k{i}"), format!("d{i}"));
        let r = start(
            &agent,
            &session_call("web", &killed, "exec sleep 700", None),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 200);
        let k = agent
            .call(json!({"type": "KILL_CONTAINER", "kill_container": {
                "container_id": {"value": killed, "parent": {"value": "web"}}, "signal": 15}}))
            .await;
        assert_eq!(k.status, 200, "{k:?}");
        tokio::time::timeout(Duration::from_secs(10), r.bytes())
            .await
            .expect("the stream ends with the command")
            .unwrap();
        assert_eq!(
            wait_session(&agent, "web", &killed).await["exit_status"],
            (128 + 15) << 8,
            "round {i}"
        );

        let r = start(
            &agent,
            &session_call("web", &dropped, "exec sleep 700", None),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 200);
        drop(r);
        let end = tokio::time::timeout(
            Duration::from_secs(10),
            wait_session(&agent, "web", &dropped),
        )
        .await
        .expect("the dropped session ends");
        assert_eq!(end["exit_status"], (128 + 9) << 8, "round {i}: {end}");
    }
    assert!(!runs(&agent.docker_name("web"), "sleep 700").await);
    remove_test_containers(T).await;
}

/// `--session-idle-timeout`: a session with neither output nor input for that long is ended;
/// one that keeps writing lives on.
#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_end_busy_ones_live() {
    const T: &str = "e2e-sessions-idle";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--session-idle-timeout", "1s"]).await;
    assert_eq!(agent.launch_shell("box", "sleep 600").await.status, 200);
    let quiet = start(
        &agent,
        &session_call("box", "quiet", "exec sleep 100", None),
        "application/json",
    )
    .await;
    let quiet = tokio::spawn(quiet.bytes());
    let busy = start(
        &agent,
        &session_call("box", "busy", "while :; do echo x; sleep 0.2; done", None),
        "application/json",
    )
    .await;
    let mut busy = busy.bytes_stream();
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), quiet)
        .await
        .expect("the idle session ended")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        wait_session(&agent, "box", "quiet").await["exit_status"],
        (128 + 9) << 8
    );
    // The busy one still streams after three idle timeouts.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let chunk = tokio::time::timeout(Duration::from_secs(2), busy.next())
            .await
            .expect("output keeps coming")
            .expect("the busy session lives");
        chunk.unwrap();
    }
    let r = agent
        .call(json!({"type": "KILL_CONTAINER", "kill_container": {
            "container_id": {"value": "busy", "parent": {"value": "box"}}}}))
        .await;
    assert_eq!(r.status, 200);
    agent.kill("box", Some(9)).await;
    agent.wait("box").await;
    remove_test_containers(T).await;
}
