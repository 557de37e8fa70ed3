//! System calls against the test bed's daemon: ping, version, info, events.

mod common;

use std::time::{Duration, SystemTime};

use berth_docker_api::*;
use futures_util::StreamExt;

#[tokio::test]
async fn connects_negotiates_and_reports() {
    let docker = common::docker().await;
    let ping = docker.ping().await.unwrap();
    let daemon = ping.api_version.expect("the daemon names its API version");
    assert_eq!(docker.api_version(), daemon.min(ApiVersion::CLIENT));
    assert_eq!(ping.os_type.as_deref(), Some("linux"));

    let version = docker.version().await.unwrap();
    assert_eq!(version.api_version.parse::<ApiVersion>().unwrap(), daemon);
    assert!(!version.version.is_empty());

    let info = docker.info().await.unwrap();
    assert!(info.ncpu >= 1 && info.mem_total > 0);
    assert_eq!(info.os_type.as_deref(), Some("linux"));
    assert!(info.server_version.is_some());

    let endpoint = Endpoint::parse(&common::testbed().docker_host).unwrap();
    assert_eq!(docker.endpoint(), &endpoint);
    // An explicit endpoint and a pinned version skip negotiation.
    let pinned = Docker::connect_with(
        endpoint,
        ClientOptions {
            api_version: Some(ApiVersion::MINIMUM),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(pinned.api_version(), ApiVersion::MINIMUM);
    assert!(pinned.info().await.unwrap().ncpu >= 1);
}

#[tokio::test]
async fn events_stream_with_filters_and_sub_second_since() {
    const TEST: &str = "events_stream_with_filters";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let before = SystemTime::now();
    let created = docker
        .containers()
        .create(None, &common::busybox(TEST, &["true"]))
        .await
        .unwrap();
    docker.containers().start(&created.id).await.unwrap();
    docker
        .containers()
        .wait(&created.id, WaitCondition::NotRunning)
        .await
        .unwrap();
    docker
        .containers()
        .remove(&created.id, RemoveContainerOptions::default())
        .await
        .unwrap();

    // Replay from a sub-second `since`, only this test's container events, until now + 1 s.
    let options = EventsOptions {
        since: Some(before),
        until: Some(SystemTime::now() + Duration::from_secs(1)),
        filters: Filters::new()
            .add("type", "container")
            .label(format!("{}={TEST}", common::TEST_LABEL)),
    };
    let events: Vec<Event> = docker.events(&options).map(|e| e.unwrap()).collect().await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for wanted in ["create", "start", "die", "destroy"] {
        assert!(actions.contains(&wanted), "missing {wanted} in {actions:?}");
    }
    assert!(events
        .iter()
        .all(|e| e.actor.id == created.id && e.kind == "container"));
    let die = events.iter().find(|e| e.action == "die").unwrap();
    assert_eq!(die.actor.attributes["exitCode"], "0");
    assert!(events
        .iter()
        .all(|e| e.timestamp() >= before - Duration::from_millis(1)));

    // A `since` after everything yields none of them (sub-second precision is honoured).
    let after = SystemTime::now();
    let options = EventsOptions {
        since: Some(after),
        until: Some(after + Duration::from_millis(300)),
        ..options
    };
    let later: Vec<_> = docker.events(&options).collect().await;
    assert!(later.is_empty(), "{later:?}");
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn a_live_event_stream_sees_new_events_and_stops_when_dropped() {
    const TEST: &str = "a_live_event_stream";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let filters = Filters::new()
        .add("type", "container")
        .label(format!("{}={TEST}", common::TEST_LABEL));
    let mut events = docker.events(&EventsOptions {
        filters,
        ..Default::default()
    });
    // The stream starts when polled; poll it once so the subscription exists before the create.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.next())
            .await
            .is_err()
    );
    let created = docker
        .containers()
        .create(None, &common::busybox(TEST, &["true"]))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.action.as_str(), event.actor.id.as_str()),
        ("create", created.id.as_str())
    );
    drop(events);
    common::cleanup(TEST).await;
}

/// A user who may not use the socket gets an error naming the socket and the fix. The test runs
/// itself again as `nobody` (with `setpriv`) for the part that must lack the permission.
#[test]
fn permission_denied_on_the_socket_names_it() {
    const CHILD: &str = "BERTH_PERMISSION_CHILD";
    let socket = match Endpoint::parse(&common::testbed().docker_host).unwrap() {
        Endpoint::Unix(path) => path,
        other => panic!("this test needs a Unix socket, the test bed uses {other}"),
    };
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(Docker::connect(Endpoint::Unix(socket.clone())))
            .unwrap_err();
        assert!(
            matches!(&err, Error::PermissionDenied { path } if *path == socket),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&socket.display().to_string()) && text.contains("group"),
            "{text}"
        );
        assert!(!err.is_transient());
        return;
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(
        mode & 0o007,
        0,
        "the socket {} is open to everyone; nothing to test",
        socket.display()
    );
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args([
            "--exact",
            "permission_denied_on_the_socket_names_it",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("setpriv (util-linux) to run the check as nobody");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the unprivileged run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the unprivileged run did not run the check:\n{text}"
    );
}
