//! The real `berth-fetch` binary: single URI, --info from a file and from stdin, exit codes and
//! one error line per failed URI.

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

fn berth_fetch(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth-fetch"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("berth-fetch runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

async fn run(args: Vec<String>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        berth_fetch(&a, stdin.as_deref())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_uri_with_checksum_cache_and_output_file() {
    let srv = Server::start().await;
    let tgz = gzip(&tar_bytes(&[TarEntry::File("x/y.txt", b"why", 0o644)]));
    let url = srv.route("/pkg.tgz", Behavior::Ok(tgz.clone()));
    let sb = sandbox();
    let cache = sandbox();
    let sum = sha256(&tgz);
    let args = |sb: &std::path::Path| {
        vec![
            "--sandbox".to_string(),
            sb.display().to_string(),
            "--cache-dir".into(),
            cache.path().display().to_string(),
            "--cache-size".into(),
            "64M".into(),
            "--checksum".into(),
            sum.clone(),
            "--output-file".into(),
            "sub/pkg.tgz".into(),
            url.clone(),
        ]
    };
    let out = run(args(sb.path()), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(sb.path().join("sub/x/y.txt")).unwrap(), b"why");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("fetched {url}")), "{stdout}");
    // Not a terminal: plain progress lines.
    assert!(stdout.contains("downloading"), "{stdout}");

    // A second run is served from the cache kept on disk.
    let sb2 = sandbox();
    let out = run(args(sb2.path()), None).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("from cache"));
    assert_eq!(srv.hits("/pkg.tgz"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executable_and_no_extract_flags() {
    let srv = Server::start().await;
    let url = srv.route(
        "/tool.tar",
        Behavior::Ok(tar_bytes(&[TarEntry::File("t", b"t", 0o644)])),
    );
    let sb = sandbox();
    let out = run(
        vec![
            "--sandbox".into(),
            sb.path().display().to_string(),
            "--no-extract".into(),
            url.clone(),
        ],
        None,
    )
    .await;
    assert!(out.status.success());
    assert_eq!(listing(sb.path()), vec!["tool.tar"]);
    let sb = sandbox();
    let out = run(
        vec![
            "--sandbox".into(),
            sb.path().display().to_string(),
            "--executable".into(),
            url,
        ],
        None,
    )
    .await;
    assert!(out.status.success());
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(sb.path().join("tool.tar"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_list_reports_one_error_line_per_failed_uri() {
    let srv = Server::start().await;
    let good = srv.route("/good.txt", Behavior::Ok(b"good".to_vec()));
    let missing = srv.url("/missing.txt");
    let sb = sandbox();
    let info = serde_json::json!([
        {"value": good, "output_file": "renamed.txt"},
        {"value": missing},
        {"value": good, "checksum": sha256(b"other"), "output_file": "bad.txt"},
        {"value": "/no/such/file", "extract": false},
    ])
    .to_string();
    let info_file = sandbox();
    let path = write_file(info_file.path(), "info.json", info.as_bytes());
    for (arg, stdin) in [
        (path.display().to_string(), None),
        ("-".to_string(), Some(info.clone())),
    ] {
        let out = run(
            vec![
                "--sandbox".into(),
                sb.path().display().to_string(),
                "--info".into(),
                arg,
            ],
            stdin,
        )
        .await;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{stderr}");
        assert!(
            lines[0].contains("/missing.txt") && lines[0].contains("404"),
            "{stderr}"
        );
        assert!(lines[1].contains("checksum mismatch"), "{stderr}");
        assert!(lines[2].contains("/no/such/file"), "{stderr}");
        assert_eq!(fs::read(sb.path().join("renamed.txt")).unwrap(), b"good");
        assert!(!sb.path().join("bad.txt").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_are_clear() {
    let sb = sandbox();
    let s = sb.path().display().to_string();
    // Neither a URI nor --info.
    let out = run(vec!["--sandbox".into(), s.clone()], None).await;
    assert!(!out.status.success());
    // Bad checksum and bad size are refused before anything happens.
    let out = run(
        vec![
            "--sandbox".into(),
            s.clone(),
            "--checksum".into(),
            "md5:00".into(),
            "/x".into(),
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown algorithm 'md5'"));
    let out = run(
        vec![
            "--sandbox".into(),
            s.clone(),
            "--cache-dir".into(),
            s.clone(),
            "--cache-size".into(),
            "12Q".into(),
            "/x".into(),
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown size unit"));
    // Malformed --info.
    let out = run(
        vec!["--sandbox".into(), s, "--info".into(), "-".into()],
        Some("{\"value\": 1}".into()),
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid --info JSON"), "{stderr}");
    assert!(listing(sb.path()).is_empty());
}

#[test]
fn local_sources_as_root_need_an_allowed_directory() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test checks berth-fetch's default when run as root"
    );
    let src = sandbox();
    let p = write_file(src.path(), "app.txt", b"app");
    let sb = sandbox();
    let s = sb.path().display().to_string();
    let out = berth_fetch(&["--sandbox", &s, &p.display().to_string()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused") && err.contains("--allowed-fetch-path"),
        "{err}"
    );
    assert!(listing(sb.path()).is_empty());

    let allowed = src.path().display().to_string();
    let out = berth_fetch(
        &[
            "--sandbox",
            &s,
            "--allowed-fetch-path",
            &allowed,
            &p.display().to_string(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(sb.path().join("app.txt")).unwrap(), b"app");

    // Allowed or not, a device is never read and a size limit holds.
    let big = write_file(src.path(), "big.bin", &[7u8; 4096]);
    for (uri, want) in [
        ("/dev/zero", "not beneath"),
        (big.to_str().unwrap(), "raise it with --max-size"),
    ] {
        let sb = sandbox();
        let out = berth_fetch(
            &[
                "--sandbox",
                &sb.path().display().to_string(),
                "--allowed-fetch-path",
                &allowed,
                "--max-size",
                "1K",
                uri,
            ],
            None,
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{uri}: {err}");
        assert!(listing(sb.path()).is_empty());
    }
}

/// Mesos's fetcher creates the sandbox (and its parents) when it does not exist yet; so does
/// berth-fetch, entering each directory it made without following a link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_sandbox_and_its_parents_are_created() {
    let srv = Server::start().await;
    let url = srv.route("/a.txt", Behavior::Ok(b"made".to_vec()));
    let base = sandbox();
    let sb = base.path().join("new/deeper/sandbox");
    let out = run(
        vec![
            "--sandbox".into(),
            sb.display().to_string(),
            "--no-extract".into(),
            url.clone(),
        ],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(sb.join("a.txt")).unwrap(), b"made");

    // A missing path below a dangling link is not created through it: the link's target (here a
    // path that must stay absent) is never made.
    let target = base.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, base.path().join("link")).unwrap();
    let through = base.path().join("link/sandbox");
    let out = run(
        vec![
            "--sandbox".into(),
            through.display().to_string(),
            "--no-extract".into(),
            url,
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create sandbox"), "{err}");
    assert!(!target.exists(), "nothing is created through a link");
}
