//! Local sources (file://, absolute and relative paths), naming, executable/extract, every archive
//! format, and the safety rules of extraction. Mesos's FetcherTest list is the floor.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_fetcher::{ExtractLimits, FetchError, FetchRequest, Fetcher, LocalSources, UriSpec};
use common::*;

fn fetcher() -> Fetcher {
    Fetcher::builder()
        .local_sources(LocalSources::Anywhere)
        .build()
        .unwrap()
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

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn file_uri_is_copied_under_its_basename() {
    let src = sandbox();
    let p = write_file(src.path(), "hello.txt", b"hello");
    let sb = sandbox();
    let r = fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new(format!("file://{}", p.display())),
    )
    .await
    .unwrap();
    assert_eq!(r.path, sb.path().join("hello.txt"));
    assert_eq!(fs::read(sb.path().join("hello.txt")).unwrap(), b"hello");
    assert_eq!(r.digest.to_string(), sha256(b"hello"));
    assert_eq!(listing(sb.path()), vec!["hello.txt"]);
}

#[tokio::test]
async fn absolute_path_and_localhost_uri_work() {
    let src = sandbox();
    let p = write_file(src.path(), "a.txt", b"A");
    let sb = sandbox();
    fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
        .await
        .unwrap();
    fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new(format!("file://localhost{}", p.display())).output_file("b.txt"),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(sb.path().join("a.txt")).unwrap(), b"A");
    assert_eq!(fs::read(sb.path().join("b.txt")).unwrap(), b"A");
}

#[tokio::test]
async fn relative_path_needs_frameworks_home() {
    let home = sandbox();
    fs::create_dir(home.path().join("sub")).unwrap();
    write_file(&home.path().join("sub"), "r.txt", b"rel");
    let sb = sandbox();
    let e = fetch_one(&fetcher(), sb.path(), UriSpec::new("sub/r.txt"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::RelativePathWithoutHome { .. }),
        "{e}"
    );
    let f = Fetcher::builder()
        .frameworks_home(home.path())
        .local_sources(LocalSources::Within(vec![home.path().to_path_buf()]))
        .build()
        .unwrap();
    fetch_one(&f, sb.path(), UriSpec::new("sub/r.txt"))
        .await
        .unwrap();
    assert_eq!(fs::read(sb.path().join("r.txt")).unwrap(), b"rel");
}

#[tokio::test]
async fn missing_file_fails_and_leaves_nothing() {
    let sb = sandbox();
    let e = fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new("/nonexistent/dir/x.tar.gz"),
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/dir/x.tar.gz") && msg.contains("No such file"),
        "{msg}"
    );
    assert!(listing(sb.path()).is_empty());
}

#[tokio::test]
async fn malformed_and_unsupported_uris_fail_clearly() {
    let sb = sandbox();
    let e = fetch_one(&fetcher(), sb.path(), UriSpec::new("http://hostonly"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("missing path"), "{e}");
    let e = fetch_one(&fetcher(), sb.path(), UriSpec::new("ftp://host/file"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("'ftp'") && msg.contains("http://, https://, file://"),
        "{msg}"
    );
    let e = fetch_one(&fetcher(), sb.path(), UriSpec::new("   "))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(listing(sb.path()).is_empty());
}

#[tokio::test]
async fn custom_output_file_with_subdirectory() {
    let src = sandbox();
    let p = write_file(src.path(), "x.bin", b"data");
    let sb = sandbox();
    let r = fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new(p.display().to_string()).output_file("sub/dir/y.bin"),
    )
    .await
    .unwrap();
    assert_eq!(r.path, sb.path().join("sub/dir/y.bin"));
    assert_eq!(fs::read(&r.path).unwrap(), b"data");
}

#[tokio::test]
async fn escaping_output_files_are_refused() {
    let src = sandbox();
    let p = write_file(src.path(), "x.bin", b"data");
    let sb = sandbox();
    for bad in ["/tmp/abs.bin", "../up.bin", "a/../../up.bin", ""] {
        let e = fetch_one(
            &fetcher(),
            sb.path(),
            UriSpec::new(p.display().to_string()).output_file(bad),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, FetchError::InvalidOutputFile { .. }),
            "{bad}: {e}"
        );
        assert!(e.to_string().contains("within the sandbox"), "{e}");
    }
    assert!(listing(sb.path()).is_empty());
}

#[tokio::test]
async fn executable_and_extract_flags() {
    let src = sandbox();
    let tgz = gzip(&tar_bytes(&[TarEntry::File("inner.txt", b"inner", 0o644)]));
    let archive = write_file(src.path(), "pkg.tar.gz", &tgz);
    let script = write_file(src.path(), "run.sh", b"#!/bin/sh\necho hi\n");
    let f = fetcher();

    // No extract, not executable: copied as is, no x bits.
    let sb = sandbox();
    fetch_one(
        &f,
        sb.path(),
        UriSpec::new(archive.display().to_string()).extract(false),
    )
    .await
    .unwrap();
    assert_eq!(listing(sb.path()), vec!["pkg.tar.gz"]);
    assert_eq!(mode(&sb.path().join("pkg.tar.gz")) & 0o111, 0);

    // Executable: mode 755 and no extraction even for an archive.
    let sb = sandbox();
    fetch_one(
        &f,
        sb.path(),
        UriSpec::new(archive.display().to_string()).executable(true),
    )
    .await
    .unwrap();
    assert_eq!(listing(sb.path()), vec!["pkg.tar.gz"]);
    assert_eq!(mode(&sb.path().join("pkg.tar.gz")), 0o755);
    fetch_one(
        &f,
        sb.path(),
        UriSpec::new(script.display().to_string()).executable(true),
    )
    .await
    .unwrap();
    assert_eq!(mode(&sb.path().join("run.sh")), 0o755);

    // Extract: the contents land in the sandbox, the archive is not kept nor made executable.
    let sb = sandbox();
    let r = fetch_one(&f, sb.path(), UriSpec::new(archive.display().to_string()))
        .await
        .unwrap();
    assert!(r.extracted);
    assert_eq!(listing(sb.path()), vec!["inner.txt"]);
    assert_eq!(fs::read(sb.path().join("inner.txt")).unwrap(), b"inner");
}

fn sample_tar() -> Vec<u8> {
    tar_bytes(&[
        TarEntry::Dir("d/"),
        TarEntry::File("d/a.txt", b"alpha", 0o644),
        TarEntry::File("d/run", b"#!/bin/sh", 0o755),
        TarEntry::Symlink("d/link", "a.txt"),
        TarEntry::HardLink("d/hard", "d/a.txt"),
    ])
}

#[tokio::test]
async fn every_archive_format_extracts() {
    let src = sandbox();
    let tar = sample_tar();
    let formats: Vec<(&str, Vec<u8>)> = vec![
        ("a.tar", tar.clone()),
        ("a.tar.gz", gzip(&tar)),
        ("a.tgz", gzip(&tar)),
        ("a.tar.bz2", bzip2(&tar)),
        ("a.tbz2", bzip2(&tar)),
        ("a.tar.xz", xz(&tar)),
        ("a.txz", xz(&tar)),
        ("a.tar.zst", zstd(&tar)),
    ];
    for (name, bytes) in formats {
        let p = write_file(src.path(), name, &bytes);
        let sb = sandbox();
        fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            listing(sb.path()),
            vec!["d", "d/a.txt", "d/hard", "d/link", "d/run"],
            "{name}"
        );
        assert_eq!(
            fs::read(sb.path().join("d/link")).unwrap(),
            b"alpha",
            "{name}"
        );
        assert_eq!(
            fs::read(sb.path().join("d/hard")).unwrap(),
            b"alpha",
            "{name}"
        );
        assert_eq!(mode(&sb.path().join("d/run")), 0o755, "{name}");
    }
    let zip = zip_bytes(&[("z/one.txt", b"1"), ("two.txt", b"22")]);
    let p = write_file(src.path(), "a.zip", &zip);
    let sb = sandbox();
    fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
        .await
        .unwrap();
    assert_eq!(listing(sb.path()), vec!["two.txt", "z", "z/one.txt"]);
    assert_eq!(fs::read(sb.path().join("z/one.txt")).unwrap(), b"1");
}

#[tokio::test]
async fn archive_extracts_next_to_its_output_file() {
    let src = sandbox();
    let p = write_file(src.path(), "a.tgz", &gzip(&sample_tar()));
    let sb = sandbox();
    let r = fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new(p.display().to_string()).output_file("sub/pkg.tgz"),
    )
    .await
    .unwrap();
    assert_eq!(r.path, sb.path().join("sub"));
    assert_eq!(fs::read(sb.path().join("sub/d/a.txt")).unwrap(), b"alpha");
}

#[tokio::test]
async fn bare_gz_is_decompressed_with_and_without_output_file() {
    let src = sandbox();
    let p = write_file(src.path(), "notes.txt.gz", &gzip(b"plain text"));
    let sb = sandbox();
    let r = fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
        .await
        .unwrap();
    assert_eq!(r.path, sb.path().join("notes.txt"));
    assert_eq!(listing(sb.path()), vec!["notes.txt"]);
    assert_eq!(
        fs::read(sb.path().join("notes.txt")).unwrap(),
        b"plain text"
    );

    let r = fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new(p.display().to_string()).output_file("custom.gz"),
    )
    .await
    .unwrap();
    assert_eq!(r.path, sb.path().join("custom"));
    assert_eq!(fs::read(sb.path().join("custom")).unwrap(), b"plain text");
}

#[tokio::test]
async fn corrupt_archives_fail_and_leave_nothing() {
    let src = sandbox();
    let mut tgz = gzip(&tar_bytes(&[
        TarEntry::File("first.txt", &noise(100_000, 1), 0o644),
        TarEntry::File("second.txt", &noise(100_000, 2), 0o644),
    ]));
    let mid = tgz.len() / 2;
    for b in &mut tgz[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let cases = [
        ("bad.tar.gz", tgz),
        (
            "bad.zip",
            b"PK\x03\x04 this is not really a zip file at all".to_vec(),
        ),
        ("bad.gz", b"\x1f\x8b\x08\x00garbage".to_vec()),
        ("bad.tar.xz", b"not xz".to_vec()),
    ];
    for (name, bytes) in cases {
        let p = write_file(src.path(), name, &bytes);
        let sb = sandbox();
        let e = fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Extract { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name), "{name}: {e}");
        assert!(
            listing(sb.path()).is_empty(),
            "{name}: {:?}",
            listing(sb.path())
        );
    }
}

#[tokio::test]
async fn zip_with_duplicated_entries_last_wins() {
    let src = sandbox();
    let p = write_file(
        src.path(),
        "dup.zip",
        &zip_with_duplicate("abc.txt", b"1", b"2"),
    );
    let sb = sandbox();
    fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
        .await
        .unwrap();
    assert_eq!(fs::read(sb.path().join("abc.txt")).unwrap(), b"2");
}

#[tokio::test]
async fn hostile_archives_are_refused_without_touching_anything() {
    let outside = sandbox();
    let src = sandbox();
    let target_abs = outside.path().join("pwned");
    let abs_name = target_abs.display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot.tar",
            tar_bytes(&[TarEntry::File("../../pwned", b"x", 0o644)]),
            "'..'",
        ),
        (
            "abs.tar",
            tar_bytes(&[TarEntry::File(&abs_name, b"x", 0o644)]),
            "absolute",
        ),
        (
            "symlink-out.tar",
            tar_bytes(&[TarEntry::Symlink("l", "../../../etc")]),
            "outside",
        ),
        (
            "symlink-abs.tar",
            tar_bytes(&[TarEntry::Symlink("l", "/etc/passwd")]),
            "absolute",
        ),
        (
            "through-link.tar",
            tar_bytes(&[
                TarEntry::Dir("d/"),
                TarEntry::Symlink("l", "d"),
                TarEntry::File("l/f", b"x", 0o644),
            ]),
            "through the symlink",
        ),
        (
            "dotdot-after-link.tar",
            tar_bytes(&[
                TarEntry::Symlink("self", "."),
                TarEntry::Symlink("esc", "self/.."),
            ]),
            "'..' after a name",
        ),
        (
            "hardlink-out.tar",
            tar_bytes(&[TarEntry::HardLink("h", "../../etc/passwd")]),
            "'..'",
        ),
        (
            "device.tar",
            tar_bytes(&[TarEntry::CharDevice("null")]),
            "device node",
        ),
        ("zip-slip.zip", zip_bytes(&[("../../pwned", b"x")]), "'..'"),
    ];
    for (name, bytes, expect) in cases {
        let p = write_file(src.path(), name, &bytes);
        let sb = sandbox();
        let e = fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Extract { .. }), "{name}: {e}");
        assert!(e.to_string().contains(expect), "{name}: {e}");
        assert!(
            listing(sb.path()).is_empty(),
            "{name}: {:?}",
            listing(sb.path())
        );
        assert!(!target_abs.exists(), "{name} wrote outside");
    }
}

#[tokio::test]
async fn setuid_and_setgid_bits_are_stripped() {
    let src = sandbox();
    let p = write_file(
        src.path(),
        "suid.tar",
        &tar_bytes(&[
            TarEntry::File("suid", b"x", 0o6755),
            TarEntry::File("sticky", b"y", 0o1777),
        ]),
    );
    let sb = sandbox();
    fetch_one(&fetcher(), sb.path(), UriSpec::new(p.display().to_string()))
        .await
        .unwrap();
    assert_eq!(mode(&sb.path().join("suid")), 0o755);
    assert_eq!(mode(&sb.path().join("sticky")), 0o777);
}

#[tokio::test]
async fn archive_bombs_hit_the_limits() {
    let src = sandbox();
    // 64 MiB of zeros compresses to a few KiB.
    let big = gzip(&tar_bytes(&[TarEntry::File(
        "zeros",
        &vec![0u8; 64 << 20],
        0o644,
    )]));
    assert!(big.len() < 1 << 20);
    let p = write_file(src.path(), "bomb.tar.gz", &big);
    let f = Fetcher::builder()
        .local_sources(LocalSources::Anywhere)
        .extract_limits(ExtractLimits {
            max_bytes: 8 << 20,
            max_entries: 100,
        })
        .build()
        .unwrap();
    let sb = sandbox();
    let e = fetch_one(&f, sb.path(), UriSpec::new(p.display().to_string()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than 8388608 bytes"), "{e}");
    assert!(listing(sb.path()).is_empty());

    let gz = write_file(src.path(), "bomb.gz", &gzip(&vec![0u8; 16 << 20]));
    let e = fetch_one(&f, sb.path(), UriSpec::new(gz.display().to_string()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than 8388608 bytes"), "{e}");
    assert!(listing(sb.path()).is_empty());

    let names: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    let entries: Vec<TarEntry<'_>> = names
        .iter()
        .map(|n| TarEntry::File(n, b"", 0o644))
        .collect();
    let p = write_file(src.path(), "many.tar", &tar_bytes(&entries));
    let e = fetch_one(&f, sb.path(), UriSpec::new(p.display().to_string()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than 100 entries"), "{e}");
    assert!(listing(sb.path()).is_empty());
}

#[tokio::test]
async fn checksum_match_and_mismatch() {
    let src = sandbox();
    let data = noise(300_000, 7);
    let tgz = gzip(&tar_bytes(&[TarEntry::File("payload", &data, 0o644)]));
    let p = write_file(src.path(), "p.tar.gz", &tgz);
    let sb = sandbox();
    let good = sha256(&tgz).parse().unwrap();
    fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new(p.display().to_string()).checksum(good),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(sb.path().join("payload")).unwrap(), data);

    let sb = sandbox();
    let wrong = sha256(b"something else");
    let e = fetch_one(
        &fetcher(),
        sb.path(),
        UriSpec::new(p.display().to_string()).checksum(wrong.parse().unwrap()),
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&wrong) && msg.contains(&sha256(&tgz)) && msg.contains("p.tar.gz"),
        "{msg}"
    );
    assert!(listing(sb.path()).is_empty(), "{:?}", listing(sb.path()));
}

#[tokio::test]
async fn later_files_replace_earlier_ones_and_directories_merge() {
    let src = sandbox();
    let a = write_file(
        src.path(),
        "a.tar",
        &tar_bytes(&[
            TarEntry::File("d/one", b"1", 0o644),
            TarEntry::File("d/same", b"old", 0o644),
        ]),
    );
    let b = write_file(
        src.path(),
        "b.tar",
        &tar_bytes(&[
            TarEntry::File("d/two", b"2", 0o644),
            TarEntry::File("d/same", b"new", 0o644),
        ]),
    );
    let sb = sandbox();
    let f = fetcher();
    fetch_one(&f, sb.path(), UriSpec::new(a.display().to_string()))
        .await
        .unwrap();
    fetch_one(&f, sb.path(), UriSpec::new(b.display().to_string()))
        .await
        .unwrap();
    assert_eq!(listing(sb.path()), vec!["d", "d/one", "d/same", "d/two"]);
    assert_eq!(fs::read(sb.path().join("d/same")).unwrap(), b"new");
}

#[tokio::test]
async fn files_are_given_to_the_target_user() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it checks chown)"
    );
    let src = sandbox();
    let p = write_file(src.path(), "owned.tgz", &gzip(&sample_tar()));
    let q = write_file(src.path(), "plain.txt", b"p");
    let sb = sandbox();
    let req = FetchRequest::new(sb.path())
        .user("nobody")
        .uri(UriSpec::new(p.display().to_string()).output_file("x/owned.tgz"))
        .uri(UriSpec::new(q.display().to_string()));
    fetcher().fetch(req).await.unwrap();
    let nobody = fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .map(|l| l.split(':').nth(2).unwrap().parse::<u32>().unwrap())
        .unwrap();
    for rel in ["x", "x/d", "x/d/a.txt", "x/d/link", "plain.txt"] {
        let m = fs::symlink_metadata(sb.path().join(rel)).unwrap();
        assert_eq!(m.uid(), nobody, "{rel}");
    }
}

#[tokio::test]
async fn unknown_user_and_unreadable_sources_fail() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it checks access as another user)"
    );
    let src = sandbox();
    let p = write_file(src.path(), "secret.txt", b"root only");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    let sb = sandbox();
    let e = fetcher()
        .fetch(
            FetchRequest::new(sb.path())
                .user("no-such-user-xyz")
                .uri(UriSpec::new(p.display().to_string())),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-user-xyz"), "{e}");
    let e = fetcher()
        .fetch(
            FetchRequest::new(sb.path())
                .user("nobody")
                .uri(UriSpec::new(p.display().to_string())),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.failures[0].error, FetchError::PermissionDenied { .. }),
        "{e}"
    );
    assert!(listing(sb.path()).is_empty());
    // Root itself may read it.
    fetcher()
        .fetch(FetchRequest::new(sb.path()).uri(UriSpec::new(p.display().to_string())))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_failure_does_not_stop_the_others() {
    let src = sandbox();
    let p = write_file(src.path(), "ok.txt", b"ok");
    let sb = sandbox();
    let e = fetcher()
        .fetch(
            FetchRequest::new(sb.path())
                .uri(UriSpec::new("/missing/one"))
                .uri(UriSpec::new(p.display().to_string()))
                .uri(UriSpec::new("gopher://x/y")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.failures.len(), 2);
    assert_eq!(e.fetched.len(), 1);
    let text = e.to_string();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().next().unwrap().contains("/missing/one"));
    assert_eq!(listing(sb.path()), vec!["ok.txt"]);
    let m = fetcher().metrics();
    assert_eq!(m.fetches_failed, 0, "metrics are per fetcher instance");
}

#[test]
fn leftover_staging_is_swept_and_nothing_else() {
    let sandbox = tempfile::tempdir().unwrap();
    let dead = sandbox.path().join(".berth-fetch-dead1");
    std::fs::create_dir_all(dead.join("tree/sub")).unwrap();
    std::fs::write(dead.join("tree/sub/partial.bin"), b"half").unwrap();
    // A user's file and directory that merely look alike are not ours.
    std::fs::write(sandbox.path().join(".berth-fetch-notes"), b"mine").unwrap();
    std::fs::create_dir(sandbox.path().join("berth-fetch-x")).unwrap();
    assert_eq!(
        berth_fetcher::remove_leftover_staging(sandbox.path()).unwrap(),
        1
    );
    assert!(!dead.exists());
    assert!(sandbox.path().join(".berth-fetch-notes").exists());
    assert!(sandbox.path().join("berth-fetch-x").exists());
    // A sandbox that is already gone has nothing to sweep.
    let gone = sandbox.path().join("missing");
    assert_eq!(berth_fetcher::remove_leftover_staging(&gone).unwrap(), 0);
}
