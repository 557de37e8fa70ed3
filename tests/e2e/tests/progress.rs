//! Live fetch progress: a slow HTTP server started by the test serves a URI; while the agent
//! fetches it, `GET_CONTAINERS` shows the URI's bytes, total, phase, rate and ETA in the `berth`
//! object, and `berth run` (stderr not a terminal) prints plain progress lines.

use std::net::SocketAddr;
use std::time::Duration;

use berth_e2e::{describe_output, eventually, remove_test_containers, testbed, Agent, TEST_LABEL};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Size of the slowly served file (the fetcher reports progress every MiB).
const SIZE: usize = 4 << 20;

/// Serves `SIZE` bytes for any GET, 64 KiB every `pause` (1 MiB/s at 62.5 ms).
async fn slow_server(pause: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\nContent-Type: application/octet-stream\r\n\r\n"
                );
                if s.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..SIZE / chunk.len() {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            });
        }
    });
    addr
}

fn fetch_of(entry: &Value) -> Option<Value> {
    (entry["berth"]["state"] == "FETCHING")
        .then(|| entry["berth"]["fetch"][0].clone())
        .filter(|f| f["done_bytes"].as_u64().is_some_and(|d| d > 0))
}

#[tokio::test(flavor = "multi_thread")]
async fn get_containers_shows_live_fetch_progress() {
    const T: &str = "e2e-fetch-progress";
    remove_test_containers(T).await;
    let server = slow_server(Duration::from_micros(62_500)).await;
    let uri = format!("http://{server}/blob.bin");
    // The test's HTTP server listens on loopback, which the agent refuses unless allowed.
    let agent = Agent::start(T, &["--fetcher-allowed-network", "127.0.0.1/32"]).await;
    let body = agent.launch_body(
        "fetcher",
        json!({"value": "wc -c < $MESOS_SANDBOX/blob.bin", "uris": [{"value": uri, "extract": false}]}),
        None,
    );
    let launch = {
        let call = json!({"type": "LAUNCH_CONTAINER", "launch_container": body});
        let url = format!("{}/api/v1", agent.url);
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(call.to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let first = eventually(Duration::from_secs(30), "fetch progress", || async {
        fetch_of(&agent.container("fetcher").await?)
    })
    .await;
    assert_eq!(first["uri"], uri.as_str(), "{first}");
    assert_eq!(first["index"], 0);
    assert_eq!(first["phase"], "downloading", "{first}");
    assert_eq!(first["total_bytes"], SIZE as u64, "{first}");
    assert!(
        first["rate_bytes_per_sec"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    assert!(first["eta_secs"].as_f64().is_some(), "{first}");
    // The numbers move while the bytes arrive.
    let done = first["done_bytes"].as_u64().unwrap();
    eventually(Duration::from_secs(30), "more fetched bytes", || async {
        let f = fetch_of(&agent.container("fetcher").await?)?;
        (f["done_bytes"].as_u64()? > done).then_some(())
    })
    .await;
    assert_eq!(launch.await.unwrap().unwrap(), 200, "{}", agent.logs());
    let after = agent.container("fetcher").await.unwrap();
    assert!(
        after["berth"].get("fetch").is_none(),
        "fetch progress is shown only while fetching: {after}"
    );
    let w = agent.wait("fetcher").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}");
    assert_eq!(
        agent.read_text("/containers/fetcher/stdout").await.trim(),
        SIZE.to_string()
    );
    remove_test_containers(T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn berth_run_prints_plain_fetch_progress_lines_when_not_on_a_terminal() {
    const T: &str = "e2e-fetch-progress-cli";
    remove_test_containers(T).await;
    let server = slow_server(Duration::from_micros(62_500)).await;
    let uri = format!("http://{server}/blob.bin");
    // The test's HTTP server listens on loopback, which the agent refuses unless allowed.
    let agent = Agent::start(T, &["--fetcher-allowed-network", "127.0.0.1/32"]).await;
    let label = format!("{TEST_LABEL}={}", agent.test);
    let busybox = testbed().images.busybox.clone();
    let o = agent
        .cli(&[
            "run",
            "--image",
            &busybox,
            "--label",
            &label,
            "--uri",
            &uri,
            "--rm",
            "--",
            "sh",
            "-c",
            "wc -c < $MESOS_SANDBOX/blob.bin",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", describe_output(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        SIZE.to_string(),
        "{}",
        describe_output(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with(&format!("berth: fetch {uri}: ")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(": downloading ") && l.contains(" of 4.00 MiB")),
        "{}",
        describe_output(&o)
    );
    assert_eq!(
        lines.last().copied(),
        Some(format!("berth: fetch {uri}: done (4.00 MiB)").as_str()),
        "{}",
        describe_output(&o)
    );
    // Throttled: a 4 s download gives a handful of lines, not one per poll.
    assert!(lines.len() <= 5, "{}", describe_output(&o));
    remove_test_containers(T).await;
}
