//! The cache, against a real HTTP server and real files: hits and misses, LRU eviction,
//! concurrent dedupe, vanished entries, fallbacks, checksums in the key, and restarts.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use berth_fetcher::{CacheUse, FetchError, FetchRequest, Fetcher, UriSpec};
use common::*;

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

fn cached(url: &str) -> UriSpec {
    UriSpec::new(url).cache(true)
}

fn entry_files(cache: &Path) -> usize {
    fs::read_dir(cache.join("entries")).unwrap().count()
}

#[tokio::test]
async fn miss_then_hits_download_once_and_copy() {
    let srv = Server::start().await;
    let body = noise(500_000, 1);
    let url = srv.route("/app.bin", Behavior::Ok(body.clone()));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    let mut sandboxes = Vec::new();
    for i in 0..3 {
        let sb = sandbox();
        let r = fetch_one(&f, sb.path(), cached(&url)).await.unwrap();
        assert_eq!(
            r.cache,
            if i == 0 {
                CacheUse::Miss
            } else {
                CacheUse::Hit
            }
        );
        assert_eq!(r.digest.to_string(), sha256(&body));
        assert_eq!(fs::read(sb.path().join("app.bin")).unwrap(), body);
        assert_eq!(listing(sb.path()), vec!["app.bin"]);
        sandboxes.push(sb);
    }
    assert_eq!(srv.hits("/app.bin"), 1);
    // Each sandbox has its own copy: a container writing its file (it may: the sandbox is
    // mounted read-write) changes neither the cache entry nor another sandbox's copy.
    let entry = fs::read_dir(cache.path().join("entries"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let entry_ino = fs::metadata(&entry).unwrap().ino();
    for sb in &sandboxes {
        let m = fs::metadata(sb.path().join("app.bin")).unwrap();
        assert_eq!(m.nlink(), 1, "a sandbox file is never a link to the cache");
        assert_ne!(m.ino(), entry_ino);
    }
    fs::write(
        sandboxes[1].path().join("app.bin"),
        b"written by the container",
    )
    .unwrap();
    assert_eq!(fs::read(&entry).unwrap(), body);
    assert_eq!(fs::read(sandboxes[2].path().join("app.bin")).unwrap(), body);
    let sb = sandbox();
    let r = fetch_one(&f, sb.path(), cached(&url)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Hit);
    assert_eq!(fs::read(sb.path().join("app.bin")).unwrap(), body);
    assert_eq!(entry_files(cache.path()), 1);
    let m = f.metrics();
    assert_eq!((m.cache_misses, m.cache_hits), (1, 3));
    assert_eq!(m.cache_bytes_used, body.len() as u64);
    assert_eq!(m.cache_bytes_total, berth_fetcher::DEFAULT_CACHE_SIZE);
    assert_eq!(f.cache_entries(), 1);
}

#[tokio::test]
async fn uncached_uris_leave_no_cache_entry() {
    let srv = Server::start().await;
    let url = srv.route("/plain.txt", Behavior::Ok(b"p".to_vec()));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    let sb = sandbox();
    let r = fetch_one(&f, sb.path(), UriSpec::new(&url)).await.unwrap();
    assert_eq!(r.cache, CacheUse::NotCached);
    assert_eq!(entry_files(cache.path()), 0);
}

#[tokio::test]
async fn cached_executable_and_custom_output_file_with_subdirectory() {
    let srv = Server::start().await;
    let url = srv.route("/tool", Behavior::Ok(b"#!/bin/sh\n".to_vec()));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    use std::os::unix::fs::PermissionsExt;
    for _ in 0..2 {
        let sb = sandbox();
        fetch_one(
            &f,
            sb.path(),
            cached(&url).executable(true).output_file("bin/x/tool"),
        )
        .await
        .unwrap();
        let m = fs::metadata(sb.path().join("bin/x/tool")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
    }
    // The entry itself keeps its plain mode: executables are copies, not links.
    let entry = fs::read_dir(cache.path().join("entries"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.metadata().unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(srv.hits("/tool"), 1);
    assert_eq!(f.cache_entries(), 1);
}

#[tokio::test]
async fn cached_archives_put_only_their_contents_in_the_sandbox() {
    let srv = Server::start().await;
    let tgz = gzip(&tar_bytes(&[TarEntry::File("inside.txt", b"in", 0o644)]));
    let zip = zip_bytes(&[("z.txt", b"zz")]);
    let gz = gzip(b"bare");
    let u1 = srv.route("/a.tgz", Behavior::Ok(tgz));
    let u2 = srv.route("/b.zip", Behavior::Ok(zip));
    let u3 = srv.route("/c.txt.gz", Behavior::Ok(gz));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    for round in 0..2 {
        let sb = sandbox();
        let r = f
            .fetch(
                FetchRequest::new(sb.path())
                    .uri(cached(&u1))
                    .uri(cached(&u2))
                    .uri(cached(&u3)),
            )
            .await
            .unwrap();
        let want = if round == 0 {
            CacheUse::Miss
        } else {
            CacheUse::Hit
        };
        assert!(r.fetched.iter().all(|x| x.cache == want), "{r:?}");
        assert_eq!(listing(sb.path()), vec!["c.txt", "inside.txt", "z.txt"]);
        assert_eq!(fs::read(sb.path().join("c.txt")).unwrap(), b"bare");
    }
    for p in ["/a.tgz", "/b.zip", "/c.txt.gz"] {
        assert_eq!(srv.hits(p), 1, "{p}");
    }
}

#[tokio::test]
async fn lru_eviction_with_capacity_for_two() {
    let srv = Server::start().await;
    let size = 100_000;
    let urls: Vec<String> = (0..3)
        .map(|i| srv.route(&format!("/cmd{i}"), Behavior::Ok(noise(size, i as u64))))
        .collect();
    let cache = sandbox();
    let f = Fetcher::builder()
        .cache_dir(cache.path())
        .cache_size(2 * size as u64)
        .build()
        .unwrap();
    // cmd0, cmd1, cmd1 again, then cmd2: cmd0 is the least recently used and goes.
    for i in [0usize, 1, 1, 2] {
        let sb = sandbox();
        fetch_one(&f, sb.path(), cached(&urls[i])).await.unwrap();
        assert!(entry_files(cache.path()) <= 2);
    }
    assert_eq!(f.cache_entries(), 2);
    assert_eq!(f.metrics().cache_bytes_used, 2 * size as u64);
    let sb = sandbox();
    assert_eq!(
        fetch_one(&f, sb.path(), cached(&urls[1]))
            .await
            .unwrap()
            .cache,
        CacheUse::Hit
    );
    assert_eq!(
        fetch_one(&f, sb.path(), cached(&urls[2]))
            .await
            .unwrap()
            .cache,
        CacheUse::Hit
    );
    assert_eq!(
        fetch_one(&f, sb.path(), cached(&urls[0]))
            .await
            .unwrap()
            .cache,
        CacheUse::Miss
    );
    assert_eq!(srv.hits("/cmd0"), 2);
    assert_eq!(srv.hits("/cmd1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_of_one_uri_share_one_download() {
    let srv = Server::start().await;
    let body = noise(400_000, 2);
    let url = srv.route(
        "/shared.bin",
        Behavior::Slow {
            body: body.clone(),
            chunk: 40_000,
            delay: Duration::from_millis(20),
        },
    );
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    let boxes: Vec<_> = (0..5).map(|_| sandbox()).collect();
    let futs = boxes.iter().map(|sb| {
        let f = f.clone();
        let spec = cached(&url);
        let p = sb.path().to_path_buf();
        async move { fetch_one(&f, &p, spec).await }
    });
    let results = futures_util::future::join_all(futs).await;
    assert_eq!(srv.hits("/shared.bin"), 1);
    let misses = results
        .iter()
        .filter(|r| r.as_ref().unwrap().cache == CacheUse::Miss)
        .count();
    assert_eq!(misses, 1);
    for sb in &boxes {
        assert_eq!(fs::read(sb.path().join("shared.bin")).unwrap(), body);
    }
}

#[tokio::test]
async fn duplicate_cached_uris_in_one_request_are_fetched_once() {
    let srv = Server::start().await;
    let url = srv.route("/d.txt", Behavior::Ok(b"dup".to_vec()));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    let sb = sandbox();
    f.fetch(
        FetchRequest::new(sb.path())
            .uri(cached(&url).output_file("a"))
            .uri(cached(&url).output_file("b"))
            .uri(cached(&url).output_file("c")),
    )
    .await
    .unwrap();
    assert_eq!(listing(sb.path()), vec!["a", "b", "c"]);
    assert_eq!(srv.hits("/d.txt"), 1);
    assert_eq!(f.cache_entries(), 1);
}

#[tokio::test]
async fn entry_deleted_behind_the_caches_back_is_fetched_again() {
    let srv = Server::start().await;
    let url = srv.route("/gone.bin", Behavior::Ok(noise(10_000, 3)));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    fetch_one(&f, sandbox().path(), cached(&url)).await.unwrap();
    for e in fs::read_dir(cache.path().join("entries")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    let sb = sandbox();
    let r = fetch_one(&f, sb.path(), cached(&url)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Miss);
    assert_eq!(srv.hits("/gone.bin"), 2);
    assert_eq!(entry_files(cache.path()), 1);
    // A modified entry is not trusted either.
    let entry = fs::read_dir(cache.path().join("entries"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::write(&entry, b"tampered").unwrap();
    let r = fetch_one(&f, sandbox().path(), cached(&url)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Miss);
    assert_eq!(srv.hits("/gone.bin"), 3);
}

#[tokio::test]
async fn unknown_size_falls_back_to_a_direct_download() {
    let srv = Server::start().await;
    let body = noise(50_000, 4);
    let url = srv.route("/nolength.bin", Behavior::Chunked(body.clone()));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    let sb = sandbox();
    let r = fetch_one(&f, sb.path(), cached(&url)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Bypassed);
    assert_eq!(fs::read(sb.path().join("nolength.bin")).unwrap(), body);
    assert_eq!(entry_files(cache.path()), 0);
    assert_eq!(f.cache_entries(), 0);
}

#[tokio::test]
async fn too_big_or_no_space_falls_back_to_a_direct_download() {
    let srv = Server::start().await;
    let big = srv.route("/big.bin", Behavior::Ok(noise(300_000, 5)));
    let small = srv.route(
        "/held.bin",
        Behavior::Slow {
            body: noise(150_000, 6),
            chunk: 15_000,
            delay: Duration::from_millis(30),
        },
    );
    let other = srv.route("/other.bin", Behavior::Ok(noise(150_000, 7)));
    let cache = sandbox();
    let f = Fetcher::builder()
        .cache_dir(cache.path())
        .cache_size(200_000)
        .build()
        .unwrap();
    let r = fetch_one(&f, sandbox().path(), cached(&big)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Bypassed);
    // While /held.bin downloads it holds its space; /other.bin cannot evict it.
    let sb1 = sandbox();
    let sb2 = sandbox();
    let (a, b) = tokio::join!(fetch_one(&f, sb1.path(), cached(&small)), async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        fetch_one(&f, sb2.path(), cached(&other)).await
    });
    assert_eq!(a.unwrap().cache, CacheUse::Miss);
    assert_eq!(b.unwrap().cache, CacheUse::Bypassed);
    assert!(sb2.path().join("other.bin").exists());
    assert_eq!(f.cache_entries(), 1);
}

#[tokio::test]
async fn a_new_checksum_is_a_new_entry_and_a_mismatch_caches_nothing() {
    let srv = Server::start().await;
    let v1 = b"version one".to_vec();
    let url = srv.route("/art.txt", Behavior::Ok(v1.clone()));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    fetch_one(
        &f,
        sandbox().path(),
        cached(&url).checksum(sha256(&v1).parse().unwrap()),
    )
    .await
    .unwrap();
    // The artifact changes at the same URL; the new checksum misses the old entry.
    let v2 = b"version two".to_vec();
    srv.route("/art.txt", Behavior::Ok(v2.clone()));
    let sb = sandbox();
    let r = fetch_one(
        &f,
        sb.path(),
        cached(&url).checksum(sha256(&v2).parse().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(r.cache, CacheUse::Miss);
    assert_eq!(fs::read(sb.path().join("art.txt")).unwrap(), v2);
    assert_eq!(f.cache_entries(), 2);
    // Asking for v1 again when the server has v2: a mismatch, nothing new in the cache... but
    // the v1 entry is still there and serves it.
    let r = fetch_one(
        &f,
        sandbox().path(),
        cached(&url).checksum(sha256(&v1).parse().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(r.cache, CacheUse::Hit);
    let sb = sandbox();
    let e = fetch_one(
        &f,
        sb.path(),
        cached(&url).checksum(sha256(b"v3").parse().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::ChecksumMismatch { .. }), "{e}");
    assert!(listing(sb.path()).is_empty());
    assert_eq!(entry_files(cache.path()), 2);
    assert!(fs::read_dir(cache.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[tokio::test]
async fn cache_survives_a_restart_and_revalidates_its_index() {
    let srv = Server::start().await;
    let a = srv.route("/keep.bin", Behavior::Ok(noise(20_000, 8)));
    let b = srv.route("/lose.bin", Behavior::Ok(noise(20_000, 9)));
    let cache = sandbox();
    {
        let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
        fetch_one(&f, sandbox().path(), cached(&a)).await.unwrap();
        fetch_one(&f, sandbox().path(), cached(&b)).await.unwrap();
        // A second fetcher cannot use the directory while the first holds it.
        let e = Fetcher::builder()
            .cache_dir(cache.path())
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
    }
    assert!(cache.path().join("index.json").exists());
    // Damage one entry and leave junk behind, as a crash might.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(cache.path().join("index.json")).unwrap()).unwrap();
    let lose_file = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"]["uri"].as_str().unwrap().ends_with("/lose.bin"))
        .unwrap()["file"]
        .as_str()
        .unwrap()
        .to_string();
    fs::write(cache.path().join("entries").join(&lose_file), b"x").unwrap();
    fs::write(cache.path().join("entries/stray"), b"junk").unwrap();
    fs::write(cache.path().join("tmp/partial"), b"junk").unwrap();

    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    assert_eq!(f.cache_entries(), 1);
    assert!(!cache.path().join("entries/stray").exists());
    assert!(!cache.path().join("tmp/partial").exists());
    let r = fetch_one(&f, sandbox().path(), cached(&a)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Hit);
    let r = fetch_one(&f, sandbox().path(), cached(&b)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Miss);
    assert_eq!(srv.hits("/keep.bin"), 1);
    assert_eq!(srv.hits("/lose.bin"), 2);
}

#[tokio::test]
async fn unreadable_index_starts_empty() {
    let srv = Server::start().await;
    let a = srv.route("/i.bin", Behavior::Ok(noise(1000, 10)));
    let cache = sandbox();
    {
        let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
        fetch_one(&f, sandbox().path(), cached(&a)).await.unwrap();
    }
    fs::write(cache.path().join("index.json"), b"{ not json").unwrap();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    assert_eq!(f.cache_entries(), 0);
    assert_eq!(
        entry_files(cache.path()),
        0,
        "orphaned entry files are removed"
    );
    let r = fetch_one(&f, sandbox().path(), cached(&a)).await.unwrap();
    assert_eq!(r.cache, CacheUse::Miss);
}

#[tokio::test]
async fn local_files_are_cached_too() {
    let src = sandbox();
    let p = write_file(src.path(), "local.bin", &noise(5000, 11));
    let cache = sandbox();
    let f = Fetcher::builder()
        .cache_dir(cache.path())
        .local_sources(berth_fetcher::LocalSources::Within(vec![src
            .path()
            .to_path_buf()]))
        .build()
        .unwrap();
    let uri = format!("file://{}", p.display());
    assert_eq!(
        fetch_one(&f, sandbox().path(), cached(&uri))
            .await
            .unwrap()
            .cache,
        CacheUse::Miss
    );
    assert_eq!(
        fetch_one(&f, sandbox().path(), cached(&uri))
            .await
            .unwrap()
            .cache,
        CacheUse::Hit
    );
}

#[tokio::test]
async fn cache_is_keyed_by_user_and_entries_belong_to_them() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it checks chown)"
    );
    let srv = Server::start().await;
    let url = srv.route("/u.bin", Behavior::Ok(noise(1000, 12)));
    let cache = sandbox();
    let f = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    let run = |user: Option<&str>| {
        let f = f.clone();
        let url = url.clone();
        let user = user.map(str::to_string);
        async move {
            let sb = sandbox();
            let mut req = FetchRequest::new(sb.path()).uri(cached(&url));
            if let Some(u) = user {
                req = req.user(u);
            }
            let r = f.fetch(req).await.unwrap();
            let uid = fs::metadata(sb.path().join("u.bin")).unwrap().uid();
            (r.fetched[0].cache, uid)
        }
    };
    let (c, root_uid) = run(None).await;
    assert_eq!((c, root_uid), (CacheUse::Miss, 0));
    let (c, uid) = run(Some("nobody")).await;
    assert_eq!(c, CacheUse::Miss);
    assert_ne!(uid, 0);
    let (c, uid2) = run(Some("nobody")).await;
    assert_eq!((c, uid2), (CacheUse::Hit, uid));
    assert_eq!(srv.hits("/u.bin"), 2);
}
