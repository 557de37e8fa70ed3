//! Image calls against the test bed's daemon and registries.

mod common;

use std::io;
use std::time::Duration;

use berth_docker_api::*;
use bytes::Bytes;
use futures_util::StreamExt;

/// Runs `image` with `cmd` (None: the image's) and returns its stdout.
async fn run(docker: &Docker, test: &str, image: &str, cmd: Option<&[&str]>) -> String {
    let config = ContainerConfig {
        image: Some(image.to_owned()),
        cmd: cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
        labels: Some(common::labels(test)),
        ..Default::default()
    };
    let created = docker.containers().create(None, &config).await.unwrap();
    docker.containers().start(&created.id).await.unwrap();
    let exit = docker
        .containers()
        .wait(&created.id, WaitCondition::NotRunning)
        .await
        .unwrap();
    assert_eq!(exit.status_code, 0);
    let frames: Vec<_> = docker
        .containers()
        .logs(&created.id, &LogsOptions::default())
        .collect()
        .await;
    docker
        .containers()
        .remove(&created.id, RemoveContainerOptions::default())
        .await
        .unwrap();
    frames
        .into_iter()
        .map(|f| String::from_utf8(f.unwrap().data.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn import_from_a_stream_and_a_reader_with_changes() {
    const TEST: &str = "import_from_a_stream";
    common::cleanup(TEST).await;
    let docker = common::docker().await;
    let tar = common::busybox_tar();

    // A stream of small chunks: the body is sent as it is produced.
    let chunks: Vec<io::Result<Bytes>> = tar
        .chunks(7_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let options = ImportOptions {
        repo: Some("berth-api-test/import-stream".into()),
        tag: Some("v1".into()),
        changes: vec![
            r#"ENTRYPOINT ["echo"]"#.into(),
            r#"CMD ["inky"]"#.into(),
            "ENV GREETING=hi".into(),
        ],
        message: Some("imported by a test".into()),
        ..Default::default()
    };
    let imported = docker
        .images()
        .import(
            RequestBody::from_stream(futures_util::stream::iter(chunks)),
            &options,
        )
        .await
        .unwrap();
    assert!(imported.id.starts_with("sha256:"));
    let inspect = docker
        .images()
        .inspect("berth-api-test/import-stream:v1")
        .await
        .unwrap();
    assert_eq!(inspect.id, imported.id);
    assert_eq!(inspect.comment.as_deref(), Some("imported by a test"));
    let config = inspect.config.unwrap();
    assert_eq!(config.entrypoint.as_deref(), Some(&["echo".to_owned()][..]));
    assert_eq!(config.cmd.as_deref(), Some(&["inky".to_owned()][..]));
    assert!(config.env.contains(&"GREETING=hi".to_owned()));
    assert_eq!(
        run(&docker, TEST, "berth-api-test/import-stream:v1", None).await,
        "inky\n"
    );
    assert_eq!(
        run(
            &docker,
            TEST,
            "berth-api-test/import-stream:v1",
            Some(&["hello", "world"])
        )
        .await,
        "hello world\n"
    );

    // From an AsyncRead (a file), untagged changes-free image.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootfs.tar");
    std::fs::write(&path, &tar).unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();
    let options = ImportOptions {
        repo: Some("berth-api-test/import-reader".into()),
        tag: Some("latest".into()),
        ..Default::default()
    };
    let from_file = docker
        .images()
        .import(RequestBody::from_reader(file), &options)
        .await
        .unwrap();
    let inspect = docker
        .images()
        .inspect("berth-api-test/import-reader")
        .await
        .unwrap();
    assert_eq!(inspect.id, from_file.id);
    assert!(inspect.config.unwrap().entrypoint.is_none());

    common::remove_image(&docker, "berth-api-test/import-stream:v1").await;
    common::remove_image(&docker, "berth-api-test/import-reader:latest").await;
    common::cleanup(TEST).await;
}

#[tokio::test]
async fn import_errors_are_reported() {
    let docker = common::docker().await;
    // Not a tarball: the daemon fails inside its 200 stream or with a status; either way an error.
    let err = docker
        .images()
        .import(
            Bytes::from_static(b"this is not a tar archive at all"),
            &ImportOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Stream { .. } | Error::Api { .. }),
        "{err:?}"
    );
    // The caller's body failing aborts the request with that error.
    let failing = futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(io::Error::other("disk on fire")),
    ]);
    let err = docker
        .images()
        .import(RequestBody::from_stream(failing), &ImportOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::Body { source, .. } => assert!(source.to_string().contains("disk on fire")),
        Error::ConnectionLost { reason, .. } => {
            assert!(reason.contains("disk on fire"), "{reason}")
        }
        other => panic!("expected the body's error, got {other:?}"),
    }
}

#[tokio::test]
async fn tag_inspect_list_remove_prune() {
    let docker = common::docker().await;
    let tb = common::testbed();
    let source = &tb.images.busybox;
    docker
        .images()
        .tag(source, "berth-api-test/tagged", "one")
        .await
        .unwrap();
    docker
        .images()
        .tag(source, "berth-api-test/tagged", "two")
        .await
        .unwrap();
    let original = docker.images().inspect(source).await.unwrap();
    let tagged = docker
        .images()
        .inspect("berth-api-test/tagged:one")
        .await
        .unwrap();
    assert_eq!(tagged.id, original.id);
    assert!(tagged
        .repo_tags
        .contains(&"berth-api-test/tagged:two".to_owned()));

    let listed = docker
        .images()
        .list(&ListImagesOptions {
            filters: Filters::new().add("reference", "berth-api-test/tagged:*"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, original.id);

    // Removing a tag untags only; the image stays.
    let removed = docker
        .images()
        .remove("berth-api-test/tagged:one", RemoveImageOptions::default())
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (
            removed[0].untagged.as_deref(),
            removed[0].deleted.as_deref()
        ),
        (Some("berth-api-test/tagged:one"), None)
    );
    docker
        .images()
        .remove("berth-api-test/tagged:two", RemoveImageOptions::default())
        .await
        .unwrap();
    assert!(docker.images().inspect(source).await.is_ok());

    let err = docker
        .images()
        .inspect("berth-api-test/tagged:one")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { kind: ResourceKind::Image, name, .. } if name == "berth-api-test/tagged:one"),
        "{err:?}"
    );
    let err = docker
        .images()
        .tag("berth-api-test/missing:x", "a", "b")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    // A dangling image (imported without a name, labelled) is pruned.
    let options = ImportOptions {
        changes: vec!["LABEL io.berth.test=prune".into()],
        ..Default::default()
    };
    let dangling = docker
        .images()
        .import(common::busybox_tar(), &options)
        .await
        .unwrap();
    let report = docker
        .images()
        .prune(&Filters::new().label("io.berth.test=prune"))
        .await
        .unwrap();
    assert!(
        report
            .images_deleted
            .iter()
            .any(|d| d.deleted.as_deref() == Some(dangling.id.as_str())),
        "{report:?}"
    );
    assert!(docker
        .images()
        .inspect(&dangling.id)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn push_and_pull_through_the_open_registry() {
    let docker = common::docker().await;
    let tb = common::testbed();
    let name = tb.registry_image(&tb.registry, "berth-api-test/pushed:latest");
    docker
        .images()
        .tag(
            &tb.images.echo,
            &format!("{}/berth-api-test/pushed", tb.registry),
            "latest",
        )
        .await
        .unwrap();
    let messages: Vec<_> = docker.images().push(&name, None).collect().await;
    let messages: Vec<ProgressMessage> = messages.into_iter().map(|m| m.unwrap()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.aux.as_ref().and_then(|a| a.get("Digest")).is_some()),
        "{messages:?}"
    );

    // Pull it back under its registry name after removing the local tag.
    common::remove_image(&docker, &name).await;
    let mut pull = docker.images().pull(&name, &PullOptions::default());
    let mut last = None;
    let mut statuses = Vec::new();
    while let Some(progress) = pull.next().await {
        let progress = progress.unwrap();
        statuses.extend(progress.message.status.clone());
        last = Some(progress.totals);
    }
    let totals = last.unwrap();
    assert_eq!(totals.layers, totals.layers_finished, "{statuses:?}");
    assert!(
        statuses.iter().any(|s| s.starts_with("Status: ")),
        "{statuses:?}"
    );
    let pulled = docker.images().inspect(&name).await.unwrap();
    assert!(pulled
        .repo_digests
        .iter()
        .any(|d| d.starts_with(&format!("{}/berth-api-test/pushed@sha256:", tb.registry))));
    common::remove_image(&docker, &name).await;
}

#[tokio::test]
async fn pulling_a_missing_image_names_image_and_registry() {
    let docker = common::docker().await;
    let tb = common::testbed();
    let name = tb.registry_image(&tb.registry, "berth-api-test/does-not-exist");
    let results: Vec<_> = docker
        .images()
        .pull(&name, &PullOptions::default())
        .collect()
        .await;
    assert_eq!(results.len(), 1, "{results:?}");
    let err = results.into_iter().next().unwrap().unwrap_err();
    match &err {
        Error::NotFound {
            kind,
            name: image,
            registry,
            ..
        } => {
            assert_eq!(*kind, ResourceKind::Image);
            assert_eq!(image, &format!("{name}:latest"));
            assert_eq!(registry.as_deref(), Some(tb.registry.as_str()));
        }
        other => panic!("expected not found, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("berth-api-test/does-not-exist") && text.contains(&tb.registry),
        "{text}"
    );
    assert!(!err.is_transient());
    // A malformed reference fails before anything is sent.
    let err = docker
        .images()
        .pull("Not A Reference", &PullOptions::default())
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn registry_auth_success_and_failure() {
    let docker = common::docker().await;
    let tb = common::testbed();
    let repo = format!("{}/berth-api-test/authed", tb.auth_registry);
    let name = format!("{repo}:latest");
    docker
        .images()
        .tag(&tb.images.busybox, &repo, "latest")
        .await
        .unwrap();

    // Without credentials, and with a wrong password: the failure arrives inside the 200 stream.
    let err = docker
        .images()
        .push_and_wait(&name, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Stream { message, .. } if message.contains("auth") || message.contains("unauthorized")),
        "{err:?}"
    );
    let wrong = RegistryAuth::basic(&tb.auth_username, "wrong-password", &tb.auth_registry);
    let err = docker
        .images()
        .push_and_wait(&name, Some(&wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Stream { .. } | Error::Api { .. }),
        "{err:?}"
    );

    // With the right credentials it goes through.
    let auth = RegistryAuth::basic(&tb.auth_username, &tb.auth_password, &tb.auth_registry);
    let digest = docker
        .images()
        .push_and_wait(&name, Some(&auth))
        .await
        .unwrap();
    assert!(digest.unwrap().starts_with("sha256:"));

    // Pull: refused anonymously, accepted with credentials read from a Docker config.json.
    common::remove_image(&docker, &name).await;
    let err = docker
        .images()
        .pull(&name, &PullOptions::default())
        .collect::<Vec<_>>()
        .await
        .pop()
        .unwrap()
        .unwrap_err();
    assert!(
        !matches!(err, Error::NotFound { .. }) || err.to_string().contains(&tb.auth_registry),
        "{err:?}"
    );
    assert!(docker
        .images()
        .inspect(&name)
        .await
        .unwrap_err()
        .is_not_found());

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.json");
    let encoded = base64_encode(&format!("{}:{}", tb.auth_username, tb.auth_password));
    std::fs::write(
        &config_path,
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{encoded}"}}}}}}"#,
            tb.auth_registry
        ),
    )
    .unwrap();
    let from_file = DockerConfig::load(&config_path)
        .unwrap()
        .auth_for(&tb.auth_registry)
        .unwrap()
        .expect("an auths entry");
    let results: Vec<_> = docker
        .images()
        .pull(
            &name,
            &PullOptions {
                auth: Some(from_file),
                ..Default::default()
            },
        )
        .collect()
        .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(docker.images().inspect(&name).await.is_ok());
    common::remove_image(&docker, &name).await;
}

fn base64_encode(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A TCP forwarder counting the bytes it delivers from upstream, to see whether the daemon is
/// still downloading.
struct CountingForwarder {
    addr: std::net::SocketAddr,
    delivered: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingForwarder {
    async fn start(upstream: std::net::SocketAddr) -> CountingForwarder {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let delivered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = delivered.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = server_read.read(&mut buf).await {
                        if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    up.abort();
                });
            }
        });
        CountingForwarder { addr, delivered }
    }

    fn delivered(&self) -> u64 {
        self.delivered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Dropping a pull in flight must abort it in the daemon. The pull goes daemon → counting
/// forwarder → throttled proxy → registry. After the drop the throttle is lifted: a download
/// that kept going would then move megabytes per second through the forwarder. None may move,
/// and the image must not exist afterwards.
#[test]
fn dropping_a_pull_aborts_it_in_the_daemon() {
    let tb = common::testbed();
    let _lock = berth_testbed::exclusive("large-image");
    let upstream: std::net::SocketAddr = tb.registry.parse().unwrap();
    let proxy = berth_testbed::ThrottledProxy::start(upstream, 1024 * 1024);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let forwarder = CountingForwarder::start(proxy.addr()).await;
        let name = format!("{}/{}", forwarder.addr, tb.images.large);
        let docker = common::docker().await;
        // A copy left by a failed earlier run (under another port) would make the layer
        // "Already exists" and the pull instant.
        for image in docker
            .images()
            .list(&ListImagesOptions::default())
            .await
            .unwrap()
        {
            for tag in image.repo_tags.iter().filter(|t| {
                t.starts_with("127.0.0.1:") && t.ends_with(&format!("/{}", tb.images.large))
            }) {
                common::remove_image(&docker, tag).await;
            }
        }

        let mut pull = docker.images().pull(&name, &PullOptions::default());
        let mut seen = None;
        while seen.is_none() {
            let progress = tokio::time::timeout(Duration::from_secs(60), pull.next())
                .await
                .expect("the pull makes progress")
                .expect("the pull is still running")
                .unwrap();
            if progress
                .layer
                .as_ref()
                .is_some_and(|l| l.phase == LayerPhase::Downloading)
            {
                seen = Some(progress.totals);
            }
        }
        let totals = seen.unwrap();
        assert!(
            totals.downloaded > 0 && totals.known_size > 100 * 1024 * 1024,
            "{totals:?}"
        );
        assert!(
            totals.known_size > totals.downloaded + 50 * 1024 * 1024,
            "caught in flight: {totals:?}"
        );

        drop(pull);
        proxy.set_rate(u64::MAX / 4);
        // Let the cancellation reach the daemon, then watch the wire.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = forwarder.delivered();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let moved = forwarder.delivered() - before;
        assert!(
            moved < 256 * 1024,
            "the daemon kept downloading after the pull was dropped: {moved} bytes in 5 s"
        );
        let err = docker
            .images()
            .inspect(&name)
            .await
            .expect_err("the aborted pull must not produce the image");
        assert!(err.is_not_found(), "{err:?}");
    });
}
