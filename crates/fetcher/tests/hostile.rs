//! The fetcher against hostile input: URIs naming host files, special files and links, sources
//! without end, archives that try to write outside, and sandboxes already planted with links and
//! FIFOs. Every case checks an oracle outside the fetcher (the host file system) and that the
//! fetch answered quickly (nothing blocked).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_fetcher::{FetchError, FetchRequest, Fetcher, LocalSources, UriSpec};
use common::*;

async fn fetch_one(
    f: &Fetcher,
    sandbox: &Path,
    spec: UriSpec,
) -> Result<berth_fetcher::Fetched, FetchError> {
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        f.fetch(FetchRequest::new(sandbox).uri(spec)),
    )
    .await
    .expect("a fetch never blocks");
    assert!(started.elapsed() < Duration::from_secs(5));
    match r {
        Ok(mut r) => Ok(r.fetched.remove(0)),
        Err(mut e) => Err(e.failures.remove(0).error),
    }
}

fn within(dir: &Path) -> Fetcher {
    Fetcher::builder()
        .local_sources(LocalSources::Within(vec![dir.to_path_buf()]))
        .local_sources_hint("HINT: allow it with --allowed-fetch-path")
        .build()
        .unwrap()
}

fn anywhere() -> Fetcher {
    Fetcher::builder()
        .local_sources(LocalSources::Anywhere)
        .build()
        .unwrap()
}

fn mkfifo(p: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o666)).unwrap();
}

fn refused(e: &FetchError, want: &str) {
    assert!(
        matches!(e, FetchError::LocalSourceRefused { .. }),
        "not a refusal: {e}"
    );
    assert!(e.to_string().contains(want), "{want:?} not in: {e}");
}

#[tokio::test]
async fn host_files_are_refused_by_default() {
    let f = Fetcher::builder()
        .local_sources_hint("HINT: --allowed-fetch-path DIR")
        .build()
        .unwrap();
    for uri in [
        "/etc/shadow",
        "file:///etc/shadow",
        "file://localhost/etc/passwd",
        "  /etc/hostname",
    ] {
        let sb = sandbox();
        let e = fetch_one(&f, sb.path(), UriSpec::new(uri))
            .await
            .unwrap_err();
        refused(&e, "HINT: --allowed-fetch-path DIR");
        assert!(e.to_string().contains(uri.trim()), "{e}");
        assert!(
            listing(sb.path()).is_empty(),
            "{uri}: {:?}",
            listing(sb.path())
        );
        let e = f.check_uri(&UriSpec::new(uri)).unwrap_err();
        refused(&e, "not allowed");
    }
    // Refused before anything is read: a missing file is refused the same way.
    let e = f.check_uri(&UriSpec::new("/no/such/file")).unwrap_err();
    refused(&e, "not allowed");
}

#[tokio::test]
async fn within_an_allowed_directory_links_and_special_files_are_refused() {
    let host = sandbox();
    let secret = write_file(host.path(), "secret", b"host secret");
    let allowed = sandbox();
    let root = allowed.path();
    fs::create_dir(root.join("sub")).unwrap();
    write_file(root, "sub/app.txt", b"allowed");
    std::os::unix::fs::symlink(&secret, root.join("to-secret")).unwrap();
    std::os::unix::fs::symlink(host.path(), root.join("to-host")).unwrap();
    std::os::unix::fs::symlink("sub/app.txt", root.join("inside-link")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
    mkfifo(&root.join("fifo"));
    let sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let f = within(root);
    let p = |n: &str| root.join(n).display().to_string();

    let sb = sandbox();
    let r = fetch_one(&f, sb.path(), UriSpec::new(p("sub/app.txt")))
        .await
        .unwrap();
    assert_eq!(fs::read(&r.path).unwrap(), b"allowed");
    f.check_uri(&UriSpec::new(format!("file://{}", p("sub/app.txt"))))
        .unwrap();

    let cases = [
        (p("to-secret"), "symbolic link"),
        (format!("{}/secret", p("to-host")), "symbolic link"),
        (p("inside-link"), "symbolic link"),
        (p("zero"), "symbolic link"),
        (p("fifo"), "FIFO"),
        (p("sock"), "socket"),
        (p("sub"), "directory"),
        (format!("{}/../{}", p("sub"), "x"), "'..'"),
        (format!("{}/sub/../../etc/passwd", root.display()), "'..'"),
        (
            secret.display().to_string(),
            "not beneath an allowed directory",
        ),
        ("/etc/shadow".into(), "not beneath an allowed directory"),
    ];
    for (uri, want) in &cases {
        let sb = sandbox();
        let e = fetch_one(&f, sb.path(), UriSpec::new(uri.clone()))
            .await
            .unwrap_err();
        refused(&e, want);
        assert!(e.to_string().contains("HINT"), "{e}");
        assert!(
            listing(sb.path()).is_empty(),
            "{uri}: {:?}",
            listing(sb.path())
        );
        refused(&f.check_uri(&UriSpec::new(uri.clone())).unwrap_err(), want);
    }
    // A FIFO never blocks a thread: many fetches of it answer at once, and nothing waits on it.
    for _ in 0..20 {
        let sb = sandbox();
        let e = fetch_one(&f, sb.path(), UriSpec::new(p("fifo")))
            .await
            .unwrap_err();
        refused(&e, "FIFO");
    }
    drop(sock);
}

#[tokio::test]
async fn devices_are_never_read_even_when_any_local_file_is_allowed() {
    let f = anywhere();
    for dev in ["/dev/zero", "/dev/urandom", "file:///dev/null"] {
        let sb = sandbox();
        let e = fetch_one(&f, sb.path(), UriSpec::new(dev))
            .await
            .unwrap_err();
        refused(&e, "character device");
        assert!(listing(sb.path()).is_empty());
    }
    let dir = sandbox();
    mkfifo(&dir.path().join("fifo"));
    let sb = sandbox();
    let e = fetch_one(
        &f,
        sb.path(),
        UriSpec::new(dir.path().join("fifo").display().to_string()),
    )
    .await
    .unwrap_err();
    refused(&e, "FIFO");
}

#[tokio::test]
async fn sources_bigger_than_the_limit_are_refused_or_cut_off() {
    let src = sandbox();
    let big = write_file(src.path(), "big.bin", &noise(300_000, 3));
    // A sparse file announcing far more than it holds: refused from its size, not read.
    let sparse = fs::File::create(src.path().join("sparse.bin")).unwrap();
    sparse.set_len(1 << 40).unwrap();
    let f = Fetcher::builder()
        .local_sources(LocalSources::Within(vec![src.path().to_path_buf()]))
        .max_size(100_000)
        .build()
        .unwrap();
    for p in [big.clone(), src.path().join("sparse.bin")] {
        let sb = sandbox();
        let e = fetch_one(&f, sb.path(), UriSpec::new(p.display().to_string()))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("100000 bytes"), "{e}");
        assert!(listing(sb.path()).is_empty());
        assert!(f.check_uri(&UriSpec::new(p.display().to_string())).is_err());
    }

    let srv = Server::start().await;
    let announced = srv.route("/announced.bin", Behavior::Ok(noise(300_000, 4)));
    let endless = srv.route("/endless.bin", Behavior::Chunked(noise(300_000, 5)));
    let archive = srv.route(
        "/a.tar",
        Behavior::Chunked(tar_bytes(&[TarEntry::File("f", &noise(300_000, 6), 0o644)])),
    );
    for url in [announced, endless, archive] {
        let sb = sandbox();
        let e = fetch_one(&f, sb.path(), UriSpec::new(url.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::TooLarge { .. }), "{url}: {e}");
        assert!(!e.is_transient(), "a size refusal is not retried");
        assert!(
            listing(sb.path()).is_empty(),
            "{url}: {:?}",
            listing(sb.path())
        );
    }
    assert_eq!(srv.hits("/endless.bin"), 1);
}

#[tokio::test]
async fn archives_cannot_write_through_links_or_make_special_files() {
    let outside = sandbox();
    let out = outside.path().display().to_string();
    let passwd = write_file(outside.path(), "passwd", b"root:x:0:0");
    let src = sandbox();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "slip-through-abs-link.tar",
            tar_bytes(&[
                TarEntry::Symlink("link", &out),
                TarEntry::File("link/passwd", b"pwned", 0o644),
            ]),
            "absolute",
        ),
        (
            "slip-through-up-link.tar",
            tar_bytes(&[
                TarEntry::Dir("d/"),
                TarEntry::Symlink("d/up", ".."),
                TarEntry::File("d/up/x", b"pwned", 0o644),
            ]),
            "through the symlink",
        ),
        (
            "hardlink-abs.tar",
            tar_bytes(&[TarEntry::HardLink("h", &format!("{out}/passwd"))]),
            "absolute",
        ),
        (
            "hardlink-through-link.tar",
            tar_bytes(&[
                TarEntry::Dir("d/"),
                TarEntry::File("d/f", b"x", 0o644),
                TarEntry::Symlink("l", "d"),
                TarEntry::HardLink("h", "l/f"),
            ]),
            "through a symlink",
        ),
        (
            "hardlink-to-link.tar",
            tar_bytes(&[TarEntry::Symlink("l", "x"), TarEntry::HardLink("h", "l")]),
            "not a regular file",
        ),
        (
            "device.tar.gz",
            gzip(&tar_bytes(&[TarEntry::CharDevice("zero")])),
            "device node",
        ),
        ("fifo.tar", fifo_tar("pipe"), "FIFO"),
    ];
    for (name, bytes, expect) in cases {
        let p = write_file(src.path(), name, &bytes);
        let sb = sandbox();
        let e = fetch_one(
            &anywhere(),
            sb.path(),
            UriSpec::new(p.display().to_string()),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FetchError::Extract { .. }), "{name}: {e}");
        assert!(e.to_string().contains(expect), "{name}: {e}");
        assert!(
            listing(sb.path()).is_empty(),
            "{name}: {:?}",
            listing(sb.path())
        );
        assert_eq!(fs::read(&passwd).unwrap(), b"root:x:0:0", "{name}");
        assert_eq!(listing(outside.path()), vec!["passwd"], "{name}");
    }
    // A zip whose symlink entry points out, then a file through it.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.add_symlink("link", &out, opts).unwrap();
    w.start_file("link/passwd", opts).unwrap();
    std::io::Write::write_all(&mut w, b"pwned").unwrap();
    let p = write_file(src.path(), "slip.zip", &w.finish().unwrap().into_inner());
    let sb = sandbox();
    let e = fetch_one(
        &anywhere(),
        sb.path(),
        UriSpec::new(p.display().to_string()),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("absolute"), "{e}");
    assert_eq!(fs::read(&passwd).unwrap(), b"root:x:0:0");
    assert!(listing(sb.path()).is_empty());
}

/// A tar with one FIFO entry.
fn fifo_tar(name: &str) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_mode(0o644);
    h.set_size(0);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

#[tokio::test]
async fn links_and_fifos_planted_in_the_sandbox_are_never_followed() {
    let outside = sandbox();
    let host_file = write_file(outside.path(), "host.txt", b"host data");
    let src = sandbox();
    let plain = write_file(src.path(), "app.txt", b"app");
    let tar = write_file(
        src.path(),
        "lib.tar",
        &tar_bytes(&[
            TarEntry::Dir("lib/"),
            TarEntry::File("lib/evil.so", b"x", 0o644),
        ]),
    );
    let f = anywhere();
    let oracle = |what: &str| {
        assert_eq!(fs::read(&host_file).unwrap(), b"host data", "{what}");
        assert_eq!(listing(outside.path()), vec!["host.txt"], "{what}");
        assert_eq!(fs::metadata(&host_file).unwrap().nlink(), 1, "{what}");
    };

    // A link where the output file's directory goes: refused.
    let sb = sandbox();
    std::os::unix::fs::symlink(outside.path(), sb.path().join("out")).unwrap();
    let e = fetch_one(
        &f,
        sb.path(),
        UriSpec::new(plain.display().to_string()).output_file("out/app.txt"),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    oracle("link as the output directory");

    // A link deeper on the way: refused too.
    let sb = sandbox();
    fs::create_dir(sb.path().join("a")).unwrap();
    std::os::unix::fs::symlink(outside.path(), sb.path().join("a/b")).unwrap();
    let e = fetch_one(
        &f,
        sb.path(),
        UriSpec::new(plain.display().to_string()).output_file("a/b/c/app.txt"),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    oracle("link deeper on the way");

    // A link, a hard link or a FIFO at the result's own name: replaced, never written through.
    for plant in ["symlink", "hardlink", "fifo"] {
        let sb = sandbox();
        let at = sb.path().join("app.txt");
        match plant {
            "symlink" => std::os::unix::fs::symlink(&host_file, &at).unwrap(),
            "hardlink" => fs::hard_link(&host_file, &at).unwrap(),
            _ => mkfifo(&at),
        }
        fetch_one(&f, sb.path(), UriSpec::new(plain.display().to_string()))
            .await
            .unwrap();
        let m = fs::symlink_metadata(&at).unwrap();
        assert!(m.is_file() && m.nlink() == 1, "{plant}");
        assert_eq!(fs::read(&at).unwrap(), b"app", "{plant}");
        oracle(plant);
    }

    // An archive's directory merging where a link to the host stands: the link is replaced.
    let sb = sandbox();
    std::os::unix::fs::symlink(outside.path(), sb.path().join("lib")).unwrap();
    fetch_one(&f, sb.path(), UriSpec::new(tar.display().to_string()))
        .await
        .unwrap();
    assert!(fs::symlink_metadata(sb.path().join("lib"))
        .unwrap()
        .is_dir());
    assert_eq!(fs::read(sb.path().join("lib/evil.so")).unwrap(), b"x");
    oracle("archive directory over a link");

    // The sandbox itself replaced by a link: refused, nothing written at the link's target.
    let parent = sandbox();
    std::os::unix::fs::symlink(outside.path(), parent.path().join("sandbox")).unwrap();
    let e = fetch_one(
        &f,
        &parent.path().join("sandbox"),
        UriSpec::new(plain.display().to_string()),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("sandbox"), "{e}");
    oracle("sandbox replaced by a link");
}

#[test]
fn leftover_staging_sweep_never_follows_a_link() {
    let outside = sandbox();
    write_file(outside.path(), "keep", b"k");
    let sb = sandbox();
    std::os::unix::fs::symlink(outside.path(), sb.path().join(".berth-fetch-0000")).unwrap();
    fs::create_dir(sb.path().join(".berth-fetch-1111")).unwrap();
    std::os::unix::fs::symlink(outside.path(), sb.path().join(".berth-fetch-1111/l")).unwrap();
    assert_eq!(
        berth_fetcher::remove_leftover_staging(sb.path()).unwrap(),
        1
    );
    assert_eq!(listing(outside.path()), vec!["keep"]);
    assert_eq!(listing(sb.path()), vec![".berth-fetch-0000"]);
}

#[tokio::test]
async fn a_cached_local_source_is_checked_again_before_the_cache_serves_it() {
    let src = sandbox();
    let p = write_file(src.path(), "tool.bin", b"tool");
    let cache = sandbox();
    let uri = UriSpec::new(p.display().to_string()).cache(true);
    {
        let allowed = Fetcher::builder()
            .cache_dir(cache.path())
            .local_sources(LocalSources::Within(vec![src.path().to_path_buf()]))
            .build()
            .unwrap();
        let sb = sandbox();
        fetch_one(&allowed, sb.path(), uri.clone()).await.unwrap();
        assert_eq!(allowed.cache_entries(), 1);
    }
    // The operator withdrew the directory: the entry on disk must not be served.
    let refusing = Fetcher::builder().cache_dir(cache.path()).build().unwrap();
    assert_eq!(refusing.cache_entries(), 1);
    let sb = sandbox();
    let e = fetch_one(&refusing, sb.path(), uri).await.unwrap_err();
    refused(&e, "not allowed");
    assert!(listing(sb.path()).is_empty());
}

/// A container (or anyone else writing the sandbox) swaps names while fetches run: a directory
/// on the output path becomes a link to a host directory and back, and an allowed source
/// becomes a FIFO or a link and back. No fetch writes outside, reads the host file, or blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_swapped_during_fetches_never_lead_outside() {
    let outside = sandbox();
    let host_secret = write_file(outside.path(), "secret", b"host secret");
    let allowed = sandbox();
    let src = allowed.path().join("app.txt");
    fs::write(&src, b"app").unwrap();
    let sb = sandbox();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swaps = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, sbp, src, out, secret) = (
            stop.clone(),
            swaps.clone(),
            sb.path().to_path_buf(),
            src.clone(),
            outside.path().to_path_buf(),
            host_secret.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let d = sbp.join("out");
                let _ = fs::remove_dir_all(&d).or_else(|_| fs::remove_file(&d));
                if n.is_multiple_of(2) {
                    let _ = std::os::unix::fs::symlink(&out, &d);
                } else {
                    let _ = fs::create_dir(&d);
                }
                let tmp = src.with_extension("new");
                let _ = fs::remove_file(&tmp);
                match n % 3 {
                    0 => mkfifo(&tmp),
                    1 => {
                        let _ = std::os::unix::fs::symlink(&secret, &tmp);
                    }
                    _ => {
                        let _ = fs::write(&tmp, b"app");
                    }
                }
                let _ = fs::rename(&tmp, &src);
                n += 1;
                swaps.store(n, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let f = within(allowed.path());
    let (mut ok, mut refused_n) = (0, 0);
    let started = Instant::now();
    while swaps.load(std::sync::atomic::Ordering::SeqCst) < 600
        && started.elapsed() < Duration::from_secs(30)
    {
        let r = fetch_one(
            &f,
            sb.path(),
            UriSpec::new(src.display().to_string()).output_file("out/app.txt"),
        )
        .await;
        match r {
            Ok(_) => ok += 1,
            Err(_) => refused_n += 1,
        }
        assert_eq!(listing(outside.path()), vec!["secret"]);
        assert_eq!(fs::read(&host_secret).unwrap(), b"host secret");
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    swapper.join().unwrap();
    let swaps = swaps.load(std::sync::atomic::Ordering::SeqCst);
    assert!(swaps >= 600, "the swapper ran {swaps} times");
    assert!(
        ok + refused_n >= 50 && refused_n > 0,
        "{ok} fetches succeeded, {refused_n} met a swapped name"
    );
    // Whatever got placed is the allowed file's content, never the host's.
    if let Ok(data) = fs::read(sb.path().join("out/app.txt")) {
        assert_eq!(data, b"app");
    }
}

fn loopback_denied(allowed: &[&str]) -> Fetcher {
    Fetcher::builder()
        .denied_networks(berth_fetcher::Cidr::host_local())
        .allowed_networks(allowed.iter().map(|a| a.parse().unwrap()).collect())
        .network_hint("HINT: --fetcher-allowed-network")
        .retry(berth_fetcher::RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        })
        .build()
        .unwrap()
}

fn network_refused(e: &FetchError, want: &str) {
    assert!(
        matches!(e, FetchError::NetworkRefused { .. }),
        "not a network refusal: {e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(want) && msg.contains("HINT"),
        "{want:?} not in: {msg}"
    );
    assert!(!e.is_transient(), "a refusal is not retried: {msg}");
}

#[tokio::test]
async fn the_hosts_own_services_are_refused_when_its_networks_are_denied() {
    let srv = Server::start().await;
    let url = srv.route("/secret", Behavior::Ok(b"host-only service".to_vec()));
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let f = loopback_denied(&[]);
    for uri in [
        url.clone(),
        format!("http://localhost:{port}/secret"),
        format!("http://[::ffff:127.0.0.1]:{port}/secret"),
        format!("http://0.0.0.0:{port}/secret"),
        "http://169.254.169.254/latest/meta-data/iam".to_string(),
        "http://[::1]:1/x".to_string(),
    ] {
        let sb = sandbox();
        let e = fetch_one(&f, sb.path(), UriSpec::new(uri.clone()))
            .await
            .unwrap_err();
        network_refused(&e, "may not connect to");
        assert!(listing(sb.path()).is_empty(), "{uri}");
    }
    assert_eq!(srv.hits("/secret"), 0, "the service was never reached");
    // Literal addresses are refused before anything is sent, also by the launch-time check.
    network_refused(
        &f.check_uri(&UriSpec::new("http://169.254.169.254/x"))
            .unwrap_err(),
        "169.254.169.254",
    );
    f.check_uri(&UriSpec::new("http://localhost:1/x")).unwrap();

    // An allowed network is reached.
    let f = loopback_denied(&["127.0.0.1/32"]);
    let sb = sandbox();
    let r = fetch_one(&f, sb.path(), UriSpec::new(url)).await.unwrap();
    assert_eq!(fs::read(r.path).unwrap(), b"host-only service");
}

#[tokio::test]
async fn a_redirect_to_a_denied_network_is_refused() {
    let inner = Server::start_on("127.0.0.2").await;
    let secret = inner.route("/secret", Behavior::Ok(b"host-only service".to_vec()));
    let outer = Server::start().await;
    let hop = outer.route("/hop", Behavior::Redirect(secret.clone()));
    let via_name = secret.replace("127.0.0.2", "localhost");
    let hop_name = outer.route("/hop-name", Behavior::Redirect(via_name));
    // The first server is allowed; what it redirects to is not.
    let f = loopback_denied(&["127.0.0.1/32"]);
    let sb = sandbox();
    let e = fetch_one(&f, sb.path(), UriSpec::new(hop))
        .await
        .unwrap_err();
    network_refused(&e, "127.0.0.2");
    let e = fetch_one(&f, sb.path(), UriSpec::new(hop_name))
        .await
        .unwrap_err();
    // `localhost` resolves to 127.0.0.1 (allowed, but nothing listens there on that port) or ::1.
    assert!(!e.to_string().contains("host-only service"), "{e}");
    assert_eq!(inner.hits("/secret"), 0);
    assert!(listing(sb.path()).is_empty());
}
