//! The fetcher as the attacker uses it, through the real agent: URIs naming host files
//! (`/etc/shadow`, `file:///etc/shadow`), special files (a FIFO, `/dev/zero`), a link in an
//! allowed directory pointing out of it, sources over the size limit, archives that try to
//! write outside the sandbox, and a container writing a file the cache served. Each case checks
//! the host file system (the oracle outside Berth) and that the agent kept answering `/health`
//! within a second, during and after.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_e2e::{remove_test_containers, Agent, Resp};
use serde_json::{json, Value};

/// Polls `/health` every 100 ms with a 1 s limit until stopped; counts the misses.
struct HealthWatch {
    misses: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthWatch {
    fn start(url: &str) -> HealthWatch {
        let (misses, polls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (m, p, url) = (misses.clone(), polls.clone(), format!("{url}/health"));
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let ok = tokio::time::timeout(Duration::from_secs(1), http.get(&url).send())
                    .await
                    .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
                p.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    m.fetch_add(1, Ordering::SeqCst);
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        HealthWatch {
            misses,
            polls,
            stop,
            task,
        }
    }

    /// Stops, then asserts every poll was answered within a second, and one more is.
    async fn assert_healthy(self, agent: &Agent, what: &str) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        let (misses, polls) = (
            self.misses.load(Ordering::SeqCst),
            self.polls.load(Ordering::SeqCst),
        );
        assert!(polls > 0, "{what}: /health was never polled");
        assert_eq!(
            misses,
            0,
            "{what}: /health missed {misses} of {polls} polls\n{}",
            agent.logs()
        );
        let r = tokio::time::timeout(Duration::from_secs(1), agent.get("/health"))
            .await
            .unwrap_or_else(|_| panic!("{what}: /health did not answer within 1s afterwards"));
        assert_eq!(r.status, 200, "{what}: {r:?}");
    }
}

/// The agent's thread count, from `/proc/<pid>/status`.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("agent status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Threads line")
}

/// Launches `sh -c <line>` with `uris`; returns the answer within `limit`.
async fn launch_with_uris(agent: &Agent, id: &str, line: &str, uris: Value) -> Resp {
    let body = agent.launch_body(id, json!({"value": line, "uris": uris}), None);
    let call = agent.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}));
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .unwrap_or_else(|_| panic!("launch of {id} did not answer within 60s\n{}", agent.logs()))
}

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Asserts a launch was refused with a 400 naming `uri` and containing every `want`, and that
/// no container was created for it.
async fn assert_refused(agent: &Agent, id: &str, r: &Resp, uri: &str, want: &[&str]) {
    assert_eq!(r.status, 400, "{id}: {r:?}\n{}", agent.logs());
    assert!(
        r.body.contains(uri),
        "{id}: the answer names the URI: {}",
        r.body
    );
    for w in want {
        assert!(r.body.contains(w), "{id}: {w:?} not in: {}", r.body);
    }
    assert!(
        agent.container(id).await.is_none(),
        "{id}: a refused launch leaves no container"
    );
    let sandbox = agent.work_dir.join("sandboxes").join(id);
    assert!(
        !sandbox.exists() || std::fs::read_dir(&sandbox).unwrap().next().is_none(),
        "{id}: nothing was fetched into {}",
        sandbox.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_files_named_by_uris_are_refused_without_an_allow_list() {
    const T: &str = "e2e-hostile-fetch-host";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let shadow_before = sha(Path::new("/etc/shadow"));
    let watch = HealthWatch::start(&agent.url);
    for (i, uri) in [
        "/etc/shadow",
        "file:///etc/shadow",
        "file://localhost/etc/shadow",
        "/dev/zero",
        "/proc/self/environ",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("host-{i}");
        let r =
            launch_with_uris(&agent, &id, "cat $MESOS_SANDBOX/*", json!([{"value": uri}])).await;
        assert_refused(
            &agent,
            &id,
            &r,
            uri,
            &[
                "Failed to launch container",
                "refused",
                "--allowed-fetch-path",
            ],
        )
        .await;
        let rf = agent.read_file(&format!("/containers/{id}/shadow")).await;
        assert_ne!(rf.status, 200, "{rf:?}");
    }
    watch.assert_healthy(&agent, "host files").await;
    assert_eq!(sha(Path::new("/etc/shadow")), shadow_before);
}

/// An allowed directory holding a regular file, a FIFO, links out of it and a big file.
struct Allowed {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn allowed_dir() -> Allowed {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("artifacts");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"host secret").unwrap();
    std::fs::write(root.join("app.txt"), b"hello from an allowed file\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", root.join("shadow-link")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("outside-dir")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        root.join("fifo").as_path(),
        rustix::fs::Mode::from_raw_mode(0o666),
    )
    .unwrap();
    Allowed {
        _tmp: tmp,
        root,
        outside,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn within_an_allowed_directory_only_regular_files_are_fetched() {
    const T: &str = "e2e-hostile-fetch-allowed";
    remove_test_containers(T).await;
    let a = allowed_dir();
    let root = a.root.display().to_string();
    let agent = Agent::start(T, &["--allowed-fetch-path", &root]).await;
    let watch = HealthWatch::start(&agent.url);

    // The allowed case works.
    let ok = format!("{root}/app.txt");
    let r = launch_with_uris(
        &agent,
        "ok",
        "cat $MESOS_SANDBOX/app.txt",
        json!([{"value": ok}]),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    assert_eq!(agent.wait("ok").await["state"], "TASK_FINISHED");
    assert_eq!(
        agent.read_text("/containers/ok/stdout").await,
        "hello from an allowed file\n"
    );

    let cases = [
        (format!("{root}/shadow-link"), "symbolic link"),
        (format!("file://{root}/outside-dir/secret"), "symbolic link"),
        (format!("{root}/zero"), "symbolic link"),
        (format!("{root}/../outside/secret"), "'..'"),
        (format!("{root}/fifo"), "FIFO"),
        (
            a.outside.join("secret").display().to_string(),
            "not beneath an allowed directory",
        ),
        (
            "/etc/shadow".to_string(),
            "not beneath an allowed directory",
        ),
    ];
    for (i, (uri, want)) in cases.iter().enumerate() {
        let id = format!("bad-{i}");
        let started = Instant::now();
        let r = launch_with_uris(&agent, &id, "true", json!([{"value": uri}])).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{uri} answered late"
        );
        assert_refused(&agent, &id, &r, uri, &[want, "--allowed-fetch-path"]).await;
    }

    // A FIFO, again and again, several at once: no launch waits on it, and no thread stays
    // behind blocked in open(2).
    let fifo = format!("{root}/fifo");
    let before = threads(agent.pid());
    for round in 0..5 {
        let launches = (0..8).map(|k| {
            let id = format!("fifo-{round}-{k}");
            let agent = &agent;
            let fifo = fifo.clone();
            async move {
                let r = launch_with_uris(agent, &id, "true", json!([{"value": fifo}])).await;
                (id, r)
            }
        });
        for (id, r) in futures_util::future::join_all(launches).await {
            assert_refused(&agent, &id, &r, &fifo, &["FIFO"]).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = threads(agent.pid());
    assert!(
        after <= before + 4,
        "the agent's threads went from {before} to {after} after 40 FIFO launches"
    );
    watch.assert_healthy(&agent, "allowed directory").await;
    assert_eq!(sha(&a.outside.join("secret")), b"host secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_over_the_size_limit_is_refused() {
    const T: &str = "e2e-hostile-fetch-size";
    remove_test_containers(T).await;
    let a = allowed_dir();
    let big = a.root.join("big.bin");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    // A sparse terabyte: refused from its size, never read.
    std::fs::File::create(a.root.join("sparse.bin"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let root = a.root.display().to_string();
    let agent = Agent::start(
        T,
        &["--allowed-fetch-path", &root, "--fetcher-max-size", "1MiB"],
    )
    .await;
    let watch = HealthWatch::start(&agent.url);
    for (id, name) in [("big", "big.bin"), ("sparse", "sparse.bin")] {
        let uri = format!("{root}/{name}");
        let r = launch_with_uris(&agent, id, "true", json!([{"value": uri}])).await;
        assert_refused(
            &agent,
            id,
            &r,
            &uri,
            &["limit of 1048576 bytes", "--fetcher-max-size"],
        )
        .await;
    }
    watch.assert_healthy(&agent, "size limit").await;
}

/// One ustar header block (names and link targets under 100 bytes).
fn tar_header(name: &str, kind: u8, size: usize, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"14000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// A tar of (name, kind, data, link target) entries.
fn tar(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data, link) in entries {
        out.extend_from_slice(&tar_header(name, *kind, data.len(), link));
        out.extend_from_slice(data);
        out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn archives_that_write_outside_the_sandbox_fail_the_launch_cleanly() {
    const T: &str = "e2e-hostile-fetch-slip";
    remove_test_containers(T).await;
    let a = allowed_dir();
    let out = a.outside.display().to_string();
    let archives: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "link-then-write.tar",
            tar(&[
                ("link", b'2', b"", &out),
                ("link/pwned", b'0', b"pwned", ""),
            ]),
            "absolute",
        ),
        (
            "dotdot.tar",
            tar(&[(
                "../../../../../../../../tmp/pwned-berth",
                b'0',
                b"pwned",
                "",
            )]),
            "'..'",
        ),
        (
            "hardlink-out.tar",
            tar(&[("h", b'1', b"", &format!("{out}/secret"))]),
            "absolute",
        ),
        ("device.tar", tar(&[("zero", b'3', b"", "")]), "device node"),
        ("fifo.tar", tar(&[("pipe", b'6', b"", "")]), "FIFO"),
    ];
    for (name, bytes, _) in &archives {
        std::fs::write(a.root.join(name), bytes).unwrap();
    }
    let root = a.root.display().to_string();
    let agent = Agent::start(T, &["--allowed-fetch-path", &root]).await;
    let watch = HealthWatch::start(&agent.url);
    for (i, (name, _, want)) in archives.iter().enumerate() {
        let id = format!("slip-{i}");
        let uri = format!("{root}/{name}");
        let r = launch_with_uris(&agent, &id, "true", json!([{"value": uri}])).await;
        assert_eq!(r.status, 400, "{name}: {r:?}");
        assert!(
            r.body.contains("Failed to launch container")
                && r.body.contains(&uri)
                && r.body.contains(want),
            "{name}: {}",
            r.body
        );
        let w = agent.wait(&id).await;
        assert_eq!(w["state"], "TASK_FAILED", "{name}: {w}");
        // The oracle: nothing appeared outside, and the host file is unchanged.
        let mut left: Vec<String> = std::fs::read_dir(&a.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["secret"], "{name}");
        assert_eq!(sha(&a.outside.join("secret")), b"host secret", "{name}");
        assert!(!Path::new("/tmp/pwned-berth").exists(), "{name}");
    }
    watch.assert_healthy(&agent, "archives").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_cannot_change_the_cache_through_the_file_it_was_given() {
    const T: &str = "e2e-hostile-fetch-cache";
    remove_test_containers(T).await;
    let a = allowed_dir();
    let root = a.root.display().to_string();
    let agent = Agent::start(T, &["--allowed-fetch-path", &root]).await;
    let uri = json!([{"value": format!("{root}/app.txt"), "cache": true}]);
    // The first launch fills the cache; the second is served from it and overwrites its copy
    // in place (same inode, same size), as a hostile payload would.
    for id in ["fill", "poison"] {
        let line = "printf 'POISONED BY A CONTAINER!!!\\n' 1<> $MESOS_SANDBOX/app.txt; \
                    cat $MESOS_SANDBOX/app.txt";
        let r = launch_with_uris(&agent, id, line, uri.clone()).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(agent.wait(id).await["state"], "TASK_FINISHED");
        let given = agent.work_dir.join("sandboxes").join(id).join("app.txt");
        let m = std::fs::metadata(&given).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(&m),
            1,
            "{id}: the sandbox file is a copy, not a link into the cache"
        );
    }
    let cache_entries = agent.work_dir.join("fetch-cache").join("entries");
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache_entries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(sha(&entries[0]), b"hello from an allowed file\n");
    let r = launch_with_uris(&agent, "third", "cat $MESOS_SANDBOX/app.txt", uri).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(agent.wait("third").await["state"], "TASK_FINISHED");
    assert_eq!(
        agent.read_text("/containers/third/stdout").await,
        "hello from an allowed file\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn berth_run_fetches_the_local_files_its_command_line_names_and_nothing_else() {
    const T: &str = "e2e-hostile-fetch-run";
    remove_test_containers(T).await;
    let a = allowed_dir();
    let work = tempfile::tempdir().unwrap();
    let label = berth_e2e::test_label(T);
    let image = berth_e2e::testbed().images.busybox.clone();
    let run = |uri: String, line: &'static str| {
        let (work, label, image) = (
            work.path().display().to_string(),
            label.clone(),
            image.clone(),
        );
        async move {
            tokio::process::Command::new(berth_e2e::berth_bin())
                .args([
                    "run",
                    "--work-dir",
                    &work,
                    "--label",
                    &label,
                    "--image",
                    &image,
                ])
                .args(["--uri", &uri, "--", "sh", "-c", line])
                .env_remove("BERTH_AGENT")
                .env_remove("RUST_LOG")
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .expect("run berth")
        }
    };
    // The embedded agent is the user's own: the file named on the command line is fetched.
    let o = run(
        format!("{}/app.txt", a.root.display()),
        "cat $MESOS_SANDBOX/app.txt",
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        berth_e2e::describe_output(&o)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello from an allowed file\n"
    );
    // Still only a regular file, reached without links: a link beside it is refused.
    let o = run(
        format!("{}/shadow-link", a.root.display()),
        "cat $MESOS_SANDBOX/shadow-link",
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(125),
        "{}",
        berth_e2e::describe_output(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("root:"));
    remove_test_containers(T).await;
}

/// A one-route HTTP server on loopback: the "host-only service" a caller must not read.
async fn loopback_service(body: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body).await;
        }
    });
    (format!("127.0.0.1:{port}"), hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hosts_own_services_and_the_metadata_address_are_not_fetched() {
    const T: &str = "e2e-hostile-fetch-ssrf";
    remove_test_containers(T).await;
    let (addr, hits) = loopback_service(b"host-only secret\n").await;
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let agent = Agent::start(T, &[]).await;
    let agent_port = agent.url.rsplit(':').next().unwrap().to_owned();
    let watch = HealthWatch::start(&agent.url);
    let cases = [
        format!("http://{addr}/secret.txt"),
        format!("http://localhost:{port}/secret.txt"),
        format!("http://[::ffff:127.0.0.1]:{port}/secret.txt"),
        format!("http://127.0.0.1:{agent_port}/health"),
        "http://169.254.169.254/latest/meta-data/iam".to_owned(),
    ];
    for (i, uri) in cases.iter().enumerate() {
        let id = format!("ssrf-{i}");
        let r =
            launch_with_uris(&agent, &id, "cat $MESOS_SANDBOX/*", json!([{"value": uri}])).await;
        assert_eq!(r.status, 400, "{uri}: {r:?}");
        assert!(
            r.body.contains(uri.as_str()) && r.body.contains("--fetcher-allowed-network"),
            "{uri}: {}",
            r.body
        );
        let rf = agent
            .read_file(&format!("/containers/{id}/secret.txt"))
            .await;
        assert_ne!(rf.status, 200, "{uri}: {rf:?}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the service was never reached"
    );
    watch.assert_healthy(&agent, "host services").await;

    // The operator allows the host's artifact server: it is fetched.
    let agent = Agent::start(T, &["--fetcher-allowed-network", "127.0.0.1/32"]).await;
    let uri = format!("http://{addr}/secret.txt");
    let r = launch_with_uris(
        &agent,
        "allowed",
        "cat $MESOS_SANDBOX/secret.txt",
        json!([{"value": uri}]),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    assert_eq!(agent.wait("allowed").await["state"], "TASK_FINISHED");
    assert_eq!(
        agent.read_text("/containers/allowed/stdout").await,
        "host-only secret\n"
    );
}
