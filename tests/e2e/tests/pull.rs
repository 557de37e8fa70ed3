//! A slow pull of a large image through the real agent: its progress is visible in
//! `GET_CONTAINERS`, and a kill during the pull destroys the container and aborts the pull: the
//! registry's proxy counts the bytes it delivers, and they stop.

use std::time::{Duration, Instant};

use berth_docker_api::Docker;
use berth_e2e::{eventually, exclusive, remove_test_containers, testbed, Agent, ThrottledProxy};
use berth_testbed::remove_pulled_copies;

#[tokio::test(flavor = "multi_thread")]
async fn kill_during_a_pull_destroys_the_container_and_aborts_the_pull() {
    const T: &str = "e2e-pull-destroy";
    let _large = exclusive("large-image");
    remove_test_containers(T).await;
    let tb = testbed();
    let proxy = ThrottledProxy::start(tb.registry.parse().expect("registry address"), 2 << 20);
    let image = format!("{}/{}", proxy.addr(), tb.images.large);
    let docker = Docker::from_env().await.unwrap();
    // Only an absent image is pulled, and only absent layers move bytes; a previous run (under
    // another proxy port) may have left it.
    remove_pulled_copies(&tb.images.large).await;

    let agent = Agent::start(T, &["--image-pull-inactivity-timeout", "60s"]).await;
    let launch = agent.spawn_launch("big", "true", &image);
    let progress = eventually(
        Duration::from_secs(60),
        "pull progress in GET_CONTAINERS",
        || async {
            let c = agent.container("big").await?;
            let pull = &c["berth"]["pull"];
            (c["berth"]["state"] == "PULLING" && pull["downloaded_bytes"].as_u64().unwrap_or(0) > 0)
                .then(|| c.clone())
        },
    )
    .await;
    assert_eq!(progress["berth"]["image"], image.as_str());
    let total = progress["berth"]["pull"]["download_total_bytes"]
        .as_u64()
        .unwrap();
    assert!(total > 100 << 20, "{progress}");

    let killed_at = Instant::now();
    assert_eq!(agent.kill("big", None).await.status, 200);
    let (status, text) = tokio::time::timeout(Duration::from_secs(30), launch)
        .await
        .expect("the launch answers")
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("Container destroyed while pulling image"),
        "{text}"
    );
    let w = agent.wait("big").await;
    assert_eq!(
        w["message"], "Container destroyed while pulling image",
        "{w}"
    );
    assert!(w.get("exit_status").is_none(), "it never ran: {w}");
    assert!(
        killed_at.elapsed() < Duration::from_secs(20),
        "the pull was not cut short: {:?}",
        killed_at.elapsed()
    );
    // The daemon-side pull was aborted: nothing more comes through the registry's proxy.
    let moved = proxy.assert_download_stopped(total).await;
    assert!(
        docker.images().inspect(&image).await.is_err(),
        "the aborted pull left no image ({moved} bytes moved)"
    );
    assert_eq!(agent.remove("big").await.status, 200);
    remove_test_containers(T).await;
}
