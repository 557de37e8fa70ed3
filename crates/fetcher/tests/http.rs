//! HTTP sources against a real server started by each test: success paths, stalls, retries,
//! deadlines, non-200 answers, unknown lengths and cancellation.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_fetcher::{FetchError, FetchRequest, Fetcher, Phase, RetryPolicy, UriSpec};
use common::*;

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

async fn fetch_one(
    f: &Fetcher,
    sandbox: &Path,
    spec: UriSpec,
) -> Result<berth_fetcher::Fetched, FetchError> {
    match f.fetch(FetchRequest::new(sandbox).uri(spec)).await {
        Ok(mut r) => Ok(r.fetched.remove(0)),
        Err(mut e) => Err(e.failures.remove(0).error),
    }
}

#[tokio::test]
async fn http_download_with_query_string_and_leading_whitespace() {
    let srv = Server::start().await;
    let body = noise(1 << 20, 3);
    let url = srv.route("/files/blob.bin", Behavior::Ok(body.clone()));
    let sb = sandbox();
    let f = Fetcher::builder().build().unwrap();
    let r = fetch_one(
        &f,
        sb.path(),
        UriSpec::new(format!("  {url}?token=abc&x=1")),
    )
    .await
    .unwrap();
    assert_eq!(r.path, sb.path().join("blob.bin"));
    assert_eq!(fs::read(&r.path).unwrap(), body);
    assert_eq!(r.digest.to_string(), sha256(&body));
    assert_eq!(listing(sb.path()), vec!["blob.bin"]);
    assert_eq!(f.metrics().bytes_transferred, body.len() as u64);
    assert_eq!(f.metrics().uris_succeeded, 1);
    assert_eq!(f.metrics().fetches_succeeded, 1);
}

#[tokio::test]
async fn streamed_tar_gz_over_http_with_checksum_and_progress() {
    let srv = Server::start().await;
    let payload = noise(3 << 20, 4);
    let tgz = gzip(&tar_bytes(&[TarEntry::File(
        "big/payload",
        &payload,
        0o644,
    )]));
    let url = srv.route("/pkg.tar.gz", Behavior::Ok(tgz.clone()));
    let sb = sandbox();
    let phases = Arc::new(std::sync::Mutex::new(Vec::new()));
    let p2 = phases.clone();
    let f = Fetcher::builder().build().unwrap();
    let report = f
        .fetch(
            FetchRequest::new(sb.path())
                .uri(UriSpec::new(url).checksum(sha256(&tgz).parse().unwrap()))
                .on_progress(move |ev| {
                    p2.lock()
                        .unwrap()
                        .push((ev.phase, ev.bytes_done, ev.bytes_total))
                }),
        )
        .await
        .unwrap();
    assert!(report.fetched[0].extracted);
    assert_eq!(fs::read(sb.path().join("big/payload")).unwrap(), payload);
    let phases = phases.lock().unwrap();
    assert_eq!(phases.first().unwrap().0, Phase::Downloading);
    assert!(phases
        .iter()
        .any(|p| p.0 == Phase::Downloading && p.1 > 0 && p.2 == Some(tgz.len() as u64)));
    assert!(phases.iter().any(|p| p.0 == Phase::Verifying));
    assert_eq!(phases.last().unwrap().0, Phase::Done);
}

#[tokio::test]
async fn checksum_mismatch_over_http_leaves_nothing_and_is_not_retried() {
    let srv = Server::start().await;
    let tgz = gzip(&tar_bytes(&[TarEntry::File(
        "f",
        &noise(500_000, 5),
        0o644,
    )]));
    let url = srv.route("/x.tgz", Behavior::Ok(tgz.clone()));
    let sb = sandbox();
    let f = Fetcher::builder().retry(quick_retry()).build().unwrap();
    let wrong = sha256(b"nope");
    let e = fetch_one(
        &f,
        sb.path(),
        UriSpec::new(&url).checksum(wrong.parse().unwrap()),
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&wrong) && msg.contains(&sha256(&tgz)) && msg.contains(&url),
        "{msg}"
    );
    assert!(listing(sb.path()).is_empty(), "{:?}", listing(sb.path()));
    assert_eq!(srv.hits("/x.tgz"), 1);
}

#[tokio::test]
async fn unknown_length_chunked_body() {
    let srv = Server::start().await;
    let body = noise(200_000, 6);
    let url = srv.route("/chunked.bin", Behavior::Chunked(body.clone()));
    let sb = sandbox();
    let f = Fetcher::builder().build().unwrap();
    fetch_one(&f, sb.path(), UriSpec::new(url)).await.unwrap();
    assert_eq!(fs::read(sb.path().join("chunked.bin")).unwrap(), body);
}

#[tokio::test]
async fn stalled_server_hits_the_stall_timeout() {
    let srv = Server::start().await;
    let url = srv.route(
        "/stall.bin",
        Behavior::Stall {
            body: noise(100_000, 8),
            after: 1000,
        },
    );
    let sb = sandbox();
    let f = Fetcher::builder()
        .stall_timeout(Duration::from_millis(400))
        .retry(RetryPolicy {
            max_attempts: 2,
            ..quick_retry()
        })
        .build()
        .unwrap();
    let start = Instant::now();
    let e = fetch_one(&f, sb.path(), UriSpec::new(url))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Stalled { .. }), "{e}");
    assert!(e.to_string().contains("stalled"), "{e}");
    // Two attempts of about one window each, well short of anything like a default timeout.
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        srv.hits("/stall.bin"),
        2,
        "a stall is transient and retried"
    );
    assert!(listing(sb.path()).is_empty());
}

#[tokio::test]
async fn slow_but_steady_body_is_not_a_stall() {
    let srv = Server::start().await;
    let body = noise(20_000, 9);
    let url = srv.route(
        "/slow.bin",
        Behavior::Slow {
            body: body.clone(),
            chunk: 2000,
            delay: Duration::from_millis(60),
        },
    );
    let sb = sandbox();
    // The window is shorter than the whole transfer but every window sees bytes.
    let f = Fetcher::builder()
        .stall_timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    fetch_one(&f, sb.path(), UriSpec::new(url)).await.unwrap();
    assert_eq!(fs::read(sb.path().join("slow.bin")).unwrap(), body);
}

#[tokio::test]
async fn rate_floor_aborts_a_trickle() {
    let srv = Server::start().await;
    let url = srv.route(
        "/trickle.bin",
        Behavior::Slow {
            body: noise(4000, 10),
            chunk: 10,
            delay: Duration::from_millis(50),
        },
    );
    let sb = sandbox();
    let f = Fetcher::builder()
        .stall_timeout(Duration::from_millis(300))
        .stall_min_bytes_per_sec(10_000)
        .retry(RetryPolicy {
            max_attempts: 1,
            ..quick_retry()
        })
        .build()
        .unwrap();
    let e = fetch_one(&f, sb.path(), UriSpec::new(url))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Stalled { .. }), "{e}");
    assert!(listing(sb.path()).is_empty());
}

#[tokio::test]
async fn flaky_server_is_retried_until_200() {
    let srv = Server::start().await;
    let body = b"finally".to_vec();
    let url = srv.route(
        "/flaky.txt",
        Behavior::FailThenOk {
            fails: 2,
            status: 503,
            body: body.clone(),
        },
    );
    let sb = sandbox();
    let f = Fetcher::builder().retry(quick_retry()).build().unwrap();
    fetch_one(&f, sb.path(), UriSpec::new(url)).await.unwrap();
    assert_eq!(fs::read(sb.path().join("flaky.txt")).unwrap(), body);
    assert_eq!(srv.hits("/flaky.txt"), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let srv = Server::start().await;
    let url = srv.route("/down.txt", Behavior::Status(502));
    let sb = sandbox();
    let f = Fetcher::builder().retry(quick_retry()).build().unwrap();
    let e = fetch_one(&f, sb.path(), UriSpec::new(url))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("HTTP status 502"), "{e}");
    assert_eq!(srv.hits("/down.txt"), 3);
}

#[tokio::test]
async fn not_found_and_other_non_200_are_not_retried() {
    let srv = Server::start().await;
    let sb = sandbox();
    let f = Fetcher::builder().retry(quick_retry()).build().unwrap();
    let e = fetch_one(&f, sb.path(), UriSpec::new(srv.url("/missing.txt")))
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::HttpStatus { status: 404, .. }),
        "{e}"
    );
    assert_eq!(srv.hits("/missing.txt"), 1);
    srv.route("/partial.txt", Behavior::Status(206));
    let e = fetch_one(&f, sb.path(), UriSpec::new(srv.url("/partial.txt")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only 200 counts"), "{e}");
    assert_eq!(srv.hits("/partial.txt"), 1);
    assert!(listing(sb.path()).is_empty());
}

#[tokio::test]
async fn truncated_body_is_retried() {
    let srv = Server::start().await;
    let body = noise(300_000, 11);
    let url = srv.route(
        "/cut.bin",
        Behavior::Truncate {
            body: body.clone(),
            after: 100_000,
            times: 1,
        },
    );
    let sb = sandbox();
    let f = Fetcher::builder().retry(quick_retry()).build().unwrap();
    fetch_one(&f, sb.path(), UriSpec::new(url)).await.unwrap();
    assert_eq!(fs::read(sb.path().join("cut.bin")).unwrap(), body);
    assert_eq!(srv.hits("/cut.bin"), 2);
}

#[tokio::test]
async fn connection_refused_is_reported() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sb = sandbox();
    let f = Fetcher::builder().retry(quick_retry()).build().unwrap();
    let e = fetch_one(
        &f,
        sb.path(),
        UriSpec::new(format!("http://127.0.0.1:{port}/x")),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::Http { .. }), "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}

#[tokio::test]
async fn deadline_bounds_the_whole_fetch() {
    let srv = Server::start().await;
    let url = srv.route(
        "/forever.bin",
        Behavior::Slow {
            body: noise(100_000, 12),
            chunk: 1000,
            delay: Duration::from_millis(50),
        },
    );
    let sb = sandbox();
    let f = Fetcher::builder()
        .deadline(Duration::from_millis(500))
        .build()
        .unwrap();
    let start = Instant::now();
    let e = fetch_one(&f, sb.path(), UriSpec::new(url))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::DeadlineExceeded { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));
    wait_until_empty(sb.path()).await;
}

async fn wait_until_empty(dir: &Path) {
    // The blocking worker removes its staging directory as soon as it sees the stream end.
    for _ in 0..100 {
        if listing(dir).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("left behind: {:?}", listing(dir));
}

#[tokio::test]
async fn dropping_the_future_cancels_and_cleans_up() {
    let srv = Server::start().await;
    let tgz = gzip(&tar_bytes(&[TarEntry::File(
        "payload",
        &noise(2 << 20, 13),
        0o644,
    )]));
    let url = srv.route(
        "/cancel.tar.gz",
        Behavior::Slow {
            body: tgz,
            chunk: 16 * 1024,
            delay: Duration::from_millis(20),
        },
    );
    let plain = srv.route(
        "/cancel.bin",
        Behavior::Slow {
            body: noise(2 << 20, 14),
            chunk: 16 * 1024,
            delay: Duration::from_millis(20),
        },
    );
    let sb = sandbox();
    let f = Fetcher::builder().build().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let req = FetchRequest::new(sb.path())
        .uri(UriSpec::new(url))
        .uri(UriSpec::new(plain))
        .on_progress(move |ev| {
            s2.fetch_max(ev.bytes_done, Ordering::SeqCst);
        });
    let handle = tokio::spawn(async move { f.fetch(req).await });
    while seen.load(Ordering::SeqCst) < 1 << 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !listing(sb.path()).is_empty(),
        "staging exists mid-download"
    );
    handle.abort();
    let _ = handle.await;
    wait_until_empty(sb.path()).await;
    // Both server responses saw the client go away.
    for _ in 0..100 {
        if srv.aborted() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(srv.aborted(), 2);
    assert_eq!(srv.open_connections(), 0);
}

#[tokio::test]
async fn duplicate_uris_with_different_output_files_are_fetched_once() {
    let srv = Server::start().await;
    let url = srv.route("/dup.txt", Behavior::Ok(b"same".to_vec()));
    let sb = sandbox();
    let f = Fetcher::builder().build().unwrap();
    let r = f
        .fetch(
            FetchRequest::new(sb.path())
                .uri(UriSpec::new(&url).output_file("one"))
                .uri(UriSpec::new(&url).output_file("two/deep"))
                .uri(UriSpec::new(&url).output_file("three").executable(true)),
        )
        .await
        .unwrap();
    assert_eq!(r.fetched.len(), 3);
    assert_eq!(srv.hits("/dup.txt"), 1);
    assert_eq!(listing(sb.path()), vec!["one", "three", "two", "two/deep"]);
    for p in ["one", "two/deep", "three"] {
        assert_eq!(fs::read(sb.path().join(p)).unwrap(), b"same");
    }
    use std::os::unix::fs::PermissionsExt;
    let m = |p: &str| {
        fs::metadata(sb.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(m("three"), 0o755);
    assert_eq!(m("one"), 0o644);
}

#[tokio::test]
async fn failed_shared_download_fails_every_duplicate_once() {
    let srv = Server::start().await;
    let url = srv.url("/absent.txt");
    let sb = sandbox();
    let f = Fetcher::builder().build().unwrap();
    let e = f
        .fetch(
            FetchRequest::new(sb.path())
                .uri(UriSpec::new(&url).output_file("a"))
                .uri(UriSpec::new(&url).output_file("b")),
        )
        .await
        .unwrap_err();
    assert_eq!(srv.hits("/absent.txt"), 1);
    assert_eq!(e.failures.len(), 2);
    assert!(matches!(
        e.failures[0].error,
        FetchError::HttpStatus { status: 404, .. }
    ));
    let second = e.failures[1].error.to_string();
    assert!(
        second.contains("shared its download") && second.contains("404"),
        "{second}"
    );
    assert!(listing(sb.path()).is_empty());
    let m = f.metrics();
    assert_eq!(
        (m.fetches_failed, m.uris_failed, m.uris_succeeded),
        (1, 2, 0)
    );
}

#[tokio::test]
async fn mixed_request_with_cache_executable_and_extract() {
    let srv = Server::start().await;
    let tgz = gzip(&tar_bytes(&[TarEntry::File("lib/x.so", b"elf", 0o755)]));
    let u1 = srv.route("/bundle.tgz", Behavior::Ok(tgz));
    let u2 = srv.route("/start.sh", Behavior::Ok(b"#!/bin/sh\n".to_vec()));
    let u3 = srv.route("/conf.json", Behavior::Ok(b"{}".to_vec()));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    for round in 0..2 {
        let sb = sandbox();
        let r = f
            .fetch(
                FetchRequest::new(sb.path())
                    .uri(UriSpec::new(&u1).cache(true))
                    .uri(UriSpec::new(&u2).executable(true).cache(true))
                    .uri(UriSpec::new(&u3)),
            )
            .await
            .unwrap();
        assert_eq!(r.fetched.len(), 3, "round {round}");
        assert_eq!(
            listing(sb.path()),
            vec!["conf.json", "lib", "lib/x.so", "start.sh"]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(sb.path().join("start.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
    assert_eq!(srv.hits("/bundle.tgz"), 1);
    assert_eq!(srv.hits("/start.sh"), 1);
    assert_eq!(srv.hits("/conf.json"), 2);
}

#[tokio::test]
async fn cancelling_a_cached_download_leaves_no_entry_and_no_partial_file() {
    let srv = Server::start().await;
    let body = noise(2 << 20, 15);
    let url = srv.route(
        "/cached-cancel.bin",
        Behavior::Slow {
            body: body.clone(),
            chunk: 16 * 1024,
            delay: Duration::from_millis(10),
        },
    );
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    let sb = sandbox();
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let req = FetchRequest::new(sb.path())
        .uri(UriSpec::new(&url).cache(true))
        .on_progress(move |ev| {
            s2.fetch_max(ev.bytes_done, Ordering::SeqCst);
        });
    let f2 = f.clone();
    let handle = tokio::spawn(async move { f2.fetch(req).await });
    while seen.load(Ordering::SeqCst) < 1 << 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.abort();
    let _ = handle.await;
    wait_until_empty(sb.path()).await;
    wait_until_empty(&cache.path().join("tmp")).await;
    assert_eq!(f.cache_entries(), 0);
    assert_eq!(f.metrics().cache_bytes_used, 0);
    // The key is free again: the next fetch downloads and caches it.
    let sb = sandbox();
    let r = f
        .fetch(FetchRequest::new(sb.path()).uri(UriSpec::new(&url).cache(true)))
        .await
        .unwrap();
    assert_eq!(r.fetched[0].cache, berth_fetcher::CacheUse::Miss);
    assert_eq!(fs::read(sb.path().join("cached-cancel.bin")).unwrap(), body);
}
