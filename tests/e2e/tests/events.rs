//! `SUBSCRIBE`, Berth's event stream, against the real agent and daemon: a snapshot first, then
//! every change of a full lifecycle in order — a fetch, a pull through a registry proxy, the
//! start, the exit, the removal — with heartbeats between; in JSON and in protobuf records; ended
//! by the agent when it stops; and followed by `berth events`. The RecordIO framing is decoded
//! here by hand, not with Berth's codec.

use std::time::Duration;

use berth_e2e::{remove_test_containers, testbed, Agent, ThrottledProxy};
use futures_util::StreamExt as _;
use prost::Message as _;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt as _;

/// A RecordIO reader over a response body: `<decimal length>\n<bytes>` records.
struct Records {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buf: Vec<u8>,
}

impl Records {
    fn new(r: reqwest::Response) -> Records {
        Records {
            body: Box::pin(r.bytes_stream().map(|c| c.map(|b| b.to_vec()))),
            buf: Vec::new(),
        }
    }

    /// The next record, or `None` at the end of the stream; panics after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Vec<u8>> {
        tokio::time::timeout(limit, async {
            loop {
                if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                    let len: usize = std::str::from_utf8(&self.buf[..nl])
                        .unwrap()
                        .parse()
                        .unwrap_or_else(|e| panic!("bad record length {:?}: {e}", &self.buf[..nl]));
                    if self.buf.len() >= nl + 1 + len {
                        let record = self.buf[nl + 1..nl + 1 + len].to_vec();
                        self.buf.drain(..nl + 1 + len);
                        return Some(record);
                    }
                }
                match self.body.next().await {
                    Some(chunk) => self
                        .buf
                        .extend_from_slice(&chunk.expect("the stream reads")),
                    None => {
                        assert!(self.buf.is_empty(), "the stream ended inside a record");
                        return None;
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event within {limit:?}"))
    }

    async fn next_json(&mut self, limit: Duration) -> Option<Value> {
        let r = self.next(limit).await?;
        Some(serde_json::from_slice(&r).expect("a JSON record"))
    }
}

async fn subscribe(agent: &Agent, message_accept: &str, heartbeat_ms: u64) -> reqwest::Response {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1", agent.url))
        .header("content-type", "application/json")
        .header("accept", "application/recordio")
        .header("message-accept", message_accept)
        .body(
            json!({"type": "SUBSCRIBE", "subscribe": {"heartbeat_interval": {"nanoseconds": heartbeat_ms * 1_000_000}}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/recordio");
    r
}

fn entry_state(e: &Value) -> (&str, &str) {
    (
        e["container_id"]["value"].as_str().unwrap(),
        e["berth"]["state"].as_str().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_lifecycle_streams_in_order() {
    const T: &str = "e2e-events";
    remove_test_containers(T).await;
    let artifacts = tempfile::tempdir().unwrap();
    std::fs::write(artifacts.path().join("blob"), vec![b'x'; 1 << 20]).unwrap();
    let allowed = artifacts.path().to_str().unwrap().to_owned();
    let agent = Agent::start(T, &["--allowed-fetch-path", &allowed]).await;
    assert_eq!(agent.launch_shell("before", "sleep 600").await.status, 200);

    let mut events = Records::new(subscribe(&agent, "application/json", 300).await);
    let first = events.next_json(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first["type"], "SUBSCRIBED", "{first}");
    assert_eq!(first["subscribed"]["heartbeat_interval_seconds"], 0.3);
    let snapshot: Vec<(&str, &str)> = first["subscribed"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(entry_state)
        .collect();
    assert_eq!(snapshot, [("before", "RUNNING")]);

    // A launch that fetches a file and pulls its image through a proxy (a name Docker has not
    // seen, so it is pulled), then exits 3.
    let tb = testbed();
    let proxy = ThrottledProxy::start(tb.registry.parse().unwrap(), 50 << 20);
    let image = format!("{}/{}", proxy.addr(), tb.images.echo);
    let mut body = agent.launch_body(
        "ev",
        json!({"value": "sleep 1; exit 3",
               "uris": [{"value": format!("file://{allowed}/blob"), "extract": false}]}),
        Some(&image),
    );
    body["container"]["docker"]["force_pull_image"] = json!(true);
    let launch = tokio::spawn({
        let url = agent.url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/api/v1"))
                .header("content-type", "application/json")
                .body(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}).to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    });

    let mut states: Vec<String> = Vec::new();
    let mut heartbeats = 0;
    let mut pull_progress = 0;
    let mut ended = None;
    while ended.is_none() {
        let e = events
            .next_json(Duration::from_secs(60))
            .await
            .expect("open");
        match e["type"].as_str().unwrap() {
            "HEARTBEAT" => heartbeats += 1,
            "CONTAINER_UPDATED" => {
                let c = &e["container_updated"]["container"];
                let (id, state) = entry_state(c);
                assert_eq!(id, "ev", "only ev changes: {e}");
                if c["berth"]["pull"].is_object() {
                    pull_progress += 1;
                }
                if states.last().map(String::as_str) != Some(state) {
                    states.push(state.to_owned());
                }
                if state == "TERMINATED" {
                    ended = Some(c["berth"]["termination"].clone());
                }
            }
            other => panic!("unexpected {other}: {e}"),
        }
    }
    assert_eq!(launch.await.unwrap(), 200);
    assert_eq!(
        states,
        [
            "FETCHING",
            "PULLING",
            "MOUNTING",
            "RUNNING",
            "DESTROYING",
            "TERMINATED"
        ],
        "the phases in order, each once"
    );
    // (A pull this small may end within one progress interval: its progress is tested with a
    // slow pull below.)
    let _ = pull_progress;
    assert!(
        heartbeats >= 2,
        "heartbeats while the container ran ({heartbeats})"
    );
    // The stream's termination is WAIT_CONTAINER's.
    assert_eq!(ended.unwrap(), agent.wait("ev").await);

    assert_eq!(agent.remove("ev").await.status, 200);
    loop {
        let e = events.next_json(Duration::from_secs(5)).await.unwrap();
        if e["type"] == "CONTAINER_REMOVED" {
            assert_eq!(e["container_removed"]["container_id"]["value"], "ev");
            break;
        }
        assert_eq!(e["type"], "HEARTBEAT", "{e}");
    }
    agent.kill("before", Some(9)).await;
    agent.wait("before").await;
    remove_test_containers(T).await;
}

/// A slow pull's progress streams, at most every 250 ms, with the bytes growing; a kill during
/// it streams DESTROYING and the termination.
#[tokio::test(flavor = "multi_thread")]
async fn pull_progress_streams_rate_limited() {
    const T: &str = "e2e-events-pull";
    let _large = berth_e2e::exclusive("large-image");
    remove_test_containers(T).await;
    let tb = testbed();
    let proxy = ThrottledProxy::start(tb.registry.parse().unwrap(), 1 << 20);
    let image = format!("{}/{}", proxy.addr(), tb.images.large);
    berth_testbed::remove_pulled_copies(&tb.images.large).await;
    let agent = Agent::start(T, &["--image-pull-inactivity-timeout", "60s"]).await;
    let mut events = Records::new(subscribe(&agent, "application/json", 60_000).await);
    assert_eq!(
        events.next_json(Duration::from_secs(5)).await.unwrap()["type"],
        "SUBSCRIBED"
    );
    let launch = agent.spawn_launch("big", "true", &image);
    let mut pulls: Vec<(std::time::Instant, u64)> = Vec::new();
    while pulls.len() < 6 {
        let e = events.next_json(Duration::from_secs(60)).await.unwrap();
        let c = &e["container_updated"]["container"];
        if c["berth"]["state"] == "PULLING" {
            if let Some(bytes) = c["berth"]["pull"]["downloaded_bytes"].as_u64() {
                pulls.push((std::time::Instant::now(), bytes));
            }
        }
    }
    for w in pulls.windows(2) {
        assert!(
            w[1].1 >= w[0].1,
            "downloaded bytes never go back: {pulls:?}"
        );
    }
    assert!(
        pulls.last().unwrap().1 > pulls[0].1,
        "the bytes grew: {pulls:?}"
    );
    // At most one record per 250 ms (less a little for the network's jitter).
    let span = pulls.last().unwrap().0 - pulls[1].0;
    assert!(
        span >= Duration::from_millis(4 * 200),
        "5 progress records in {span:?}: not rate-limited"
    );
    agent.kill("big", Some(9)).await;
    let mut after = Vec::new();
    while after.last().map(String::as_str) != Some("TERMINATED") {
        let e = events.next_json(Duration::from_secs(30)).await.unwrap();
        let state = e["container_updated"]["container"]["berth"]["state"]
            .as_str()
            .unwrap()
            .to_owned();
        if after.last() != Some(&state) {
            after.push(state);
        }
    }
    assert!(
        after
            .iter()
            .all(|s| ["PULLING", "DESTROYING", "TERMINATED"].contains(&s.as_str())),
        "{after:?}"
    );
    assert_eq!(
        &after[after.len() - 2..],
        ["DESTROYING", "TERMINATED"],
        "{after:?}"
    );
    let (status, _) = launch.await.unwrap();
    assert_eq!(status, 400, "a launch killed during its pull fails");
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_records_the_cli_and_the_end_of_the_stream() {
    const T: &str = "e2e-events-pb";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &[]).await;

    // Protobuf records decode as Mesos-style Events with Berth's definitions, nothing unknown.
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/agent-bin/proto");
    let set = protox::compile(["mesos/v1/agent/agent.proto"], [proto]).unwrap();
    let pool = prost_reflect::DescriptorPool::decode(set.encode_to_vec().as_slice()).unwrap();
    let event = pool.get_message_by_name("mesos.v1.agent.Event").unwrap();
    let mut pb = Records::new(subscribe(&agent, "application/x-protobuf", 200).await);
    let first = pb.next(Duration::from_secs(5)).await.unwrap();
    let m = prost_reflect::DynamicMessage::decode(event.clone(), first.as_slice()).unwrap();
    assert_eq!(m.unknown_fields().count(), 0);
    assert_eq!(
        m.get_field_by_name("type").unwrap().as_enum_number(),
        Some(1),
        "SUBSCRIBED"
    );
    let beat = pb.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(beat, [0x08, 0x04], "HEARTBEAT: Event{{type (1) = 4}}");

    // `berth events --json` prints the same stream, a line per event.
    let mut cli = tokio::process::Command::new(berth_e2e::berth_bin())
        .args(["events", "--json", "--agent", &agent.url])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(cli.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap()["type"],
        "SUBSCRIBED"
    );
    assert_eq!(agent.launch_shell("cli", "exit 0").await.status, 200);
    let mut seen = Vec::new();
    while !seen.iter().any(|s| s == "TERMINATED") {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a line")
            .unwrap()
            .expect("the CLI runs");
        let e: Value = serde_json::from_str(&line).unwrap();
        assert_ne!(e["type"], "HEARTBEAT", "heartbeats only with --heartbeats");
        seen.push(
            e["container_updated"]["container"]["berth"]["state"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen.first().map(String::as_str), Some("FETCHING"));

    // A stopping agent ends its streams at once (not at the drain's 5 s timeout), and the CLI
    // with them.
    let started = std::time::Instant::now();
    agent.sigterm().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the agent stopped in {:?}: its streams held the drain",
        started.elapsed()
    );
    // (The protobuf stream saw the CLI's container too: updates and heartbeats, then its end.)
    while let Some(r) = pb.next(Duration::from_secs(4)).await {
        let m = prost_reflect::DynamicMessage::decode(event.clone(), r.as_slice()).unwrap();
        let kind = m.get_field_by_name("type").unwrap().as_enum_number();
        assert!(
            matches!(kind, Some(2 | 4)),
            "an update or a heartbeat: {m:?}"
        );
    }
    while let Some(line) = tokio::time::timeout(Duration::from_secs(4), lines.next_line())
        .await
        .expect("the CLI's output ends")
        .unwrap()
    {
        let e: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(e["type"], "CONTAINER_UPDATED", "{e}");
    }
    let status = tokio::time::timeout(Duration::from_secs(4), cli.wait())
        .await
        .expect("the CLI ends with the stream")
        .unwrap();
    assert!(status.success(), "{status:?}");
    remove_test_containers(T).await;
}

/// Health changes stream as they happen: starting → healthy → unhealthy (the container removes
/// the file its check tests), each with the health object GET_CONTAINERS shows.
#[tokio::test(flavor = "multi_thread")]
async fn health_changes_stream() {
    const T: &str = "e2e-events-health";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let mut events = Records::new(subscribe(&agent, "application/json", 60_000).await);
    assert_eq!(
        events.next_json(Duration::from_secs(5)).await.unwrap()["type"],
        "SUBSCRIBED"
    );
    let mut body = agent.launch_body(
        "hc",
        json!({"value": "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 600"}),
        None,
    );
    body["health_check"] = json!({"type": "COMMAND", "command": {"value": "test -f /tmp/ok"},
        "delay_seconds": 0.2, "interval_seconds": 0.3, "timeout_seconds": 5,
        "grace_period_seconds": 0, "consecutive_failures": 2, "kill_on_unhealthy": false});
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut statuses: Vec<String> = Vec::new();
    while statuses.last().map(String::as_str) != Some("unhealthy") {
        let e = events.next_json(Duration::from_secs(30)).await.unwrap();
        let h = &e["container_updated"]["container"]["berth"]["health"];
        if let Some(s) = h["status"].as_str() {
            if statuses.last().map(String::as_str) != Some(s) {
                statuses.push(s.to_owned());
            }
        }
    }
    assert_eq!(statuses, ["starting", "healthy", "unhealthy"]);
    let c = agent.container("hc").await.unwrap();
    assert_eq!(c["berth"]["health"]["status"], "unhealthy", "{c}");
    agent.kill("hc", Some(9)).await;
    agent.wait("hc").await;
    remove_test_containers(T).await;
}
