//! Mesos's HTTP authentication against a real `berth serve`: HTTP Basic with a Mesos credentials
//! file (`--http-credentials`), as `curl -u` and Mesos's own tooling send it, alone and next to
//! the bearer token, on every endpoint the token protects; and a credentials file others can
//! read stops the start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_e2e::Agent;
use serde_json::json;

const TOKEN: &str = "e2e-mesos-auth-token-0123456789";
const CREDENTIALS: &str = r#"{"credentials":[{"principal":"ops","secret":"s3cr:et-ops"},{"principal":"monitor","secret":"m0n-secret"}]}"#;

fn private_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

/// Every endpoint the bearer token protects, with the Mesos realm its Basic challenge names and
/// its answer once authenticated (the files endpoints: 404 for a container that does not exist,
/// which only an authenticated caller learns).
const PROTECTED: &[(&str, &str, &str, u16)] = &[
    ("POST", "/api/v1", "mesos-agent-readwrite", 200),
    ("GET", "/state", "mesos-agent-readonly", 200),
    ("GET", "/version", "mesos-agent-readonly", 200),
    ("GET", "/metrics/snapshot", "mesos-agent-readonly", 200),
    ("GET", "/metrics", "mesos-agent-readonly", 200),
    (
        "GET",
        "/files/browse?path=/containers/none",
        "mesos-agent-readonly",
        404,
    ),
    (
        "GET",
        "/files/read?path=/containers/none/stdout",
        "mesos-agent-readonly",
        404,
    ),
];

/// `curl` itself, so the header is exactly what an operator's `curl -u` sends; answers the HTTP
/// status.
async fn curl(method: &str, url: &str, user: Option<&str>, extra: &[&str]) -> u16 {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method]);
    if method == "POST" {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"type":"GET_HEALTH"}"#,
        ]);
    }
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    cmd.args(extra).arg(url);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("curl finished")
        .expect("curl runs");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    code.parse().unwrap_or_else(|_| {
        panic!(
            "curl printed {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The status and `WWW-Authenticate` challenges of an unauthenticated request.
async fn challenge(agent: &Agent, method: &str, path: &str) -> (u16, Vec<String>, String) {
    let http = reqwest::Client::new();
    let mut r = http.request(method.parse().unwrap(), format!("{}{path}", agent.url));
    if method == "POST" {
        r = r
            .header("content-type", "application/json")
            .body(r#"{"type":"GET_HEALTH"}"#);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let challenges = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (status, challenges, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_with_a_mesos_credentials_file_guards_every_endpoint_the_token_would() {
    const T: &str = "e2e-mesos-auth-basic";
    let dir = tempfile::tempdir().unwrap();
    let creds = private_file(dir.path(), "credentials.json", CREDENTIALS);
    let agent = Agent::start(T, &["--http-credentials", creds.to_str().unwrap()]).await;
    for &(method, path, realm, ok) in PROTECTED {
        let url = format!("{}{path}", agent.url);
        let (status, challenges, body) = challenge(&agent, method, path).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(
            challenges,
            [format!("Basic realm=\"{realm}\"")],
            "{method} {path}"
        );
        assert!(
            body.contains("Basic") && body.contains("--http-credentials"),
            "{body}"
        );
        // Both principals pass; a secret with a ':' in it works (the principal ends at the
        // first ':').
        assert_eq!(
            curl(method, &url, Some("ops:s3cr:et-ops"), &[]).await,
            ok,
            "{method} {path}"
        );
        assert_eq!(
            curl(method, &url, Some("monitor:m0n-secret"), &[]).await,
            ok,
            "{method} {path}"
        );
        for bad in [
            "ops:s3cr:et-op",    // one character short
            "ops:m0n-secret",    // another principal's secret
            "nobody:m0n-secret", // no such principal
            "ops:",              // empty secret
        ] {
            assert_eq!(
                curl(method, &url, Some(bad), &[]).await,
                401,
                "{method} {path} as {bad}"
            );
        }
        assert_eq!(curl(method, &url, None, &[]).await, 401, "{method} {path}");
        // A bearer token is no credential this agent knows.
        let bearer = format!("Authorization: Bearer {TOKEN}");
        assert_eq!(
            curl(method, &url, None, &["-H", &bearer]).await,
            401,
            "{method} {path}"
        );
    }
    // /health stays open, as in Mesos.
    assert_eq!(
        curl("GET", &format!("{}/health", agent.url), None, &[]).await,
        200
    );
    // A call made with Basic reaches the agent and is answered in full.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1", agent.url))
        .basic_auth("ops", Some("s3cr:et-ops"))
        .header("content-type", "application/json")
        .body(json!({"type": "GET_HEALTH"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["type"], "GET_HEALTH", "{v}");
    assert!(
        !agent.logs().contains("s3cr:et-ops") && !agent.logs().contains("m0n-secret"),
        "a secret reached the log:\n{}",
        agent.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_and_basic_together_either_passes() {
    const T: &str = "e2e-mesos-auth-both";
    let dir = tempfile::tempdir().unwrap();
    let creds = private_file(dir.path(), "credentials.json", CREDENTIALS);
    let token = private_file(dir.path(), "token", &format!("{TOKEN}\n"));
    let agent = Agent::start(
        T,
        &[
            "--http-credentials",
            creds.to_str().unwrap(),
            "--auth-token-file",
            token.to_str().unwrap(),
        ],
    )
    .await;
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let wrong_bearer = format!("Authorization: Bearer {TOKEN}x");
    for &(method, path, realm, ok) in PROTECTED {
        let url = format!("{}{path}", agent.url);
        let (status, challenges, _) = challenge(&agent, method, path).await;
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(
            challenges,
            [
                format!("Basic realm=\"{realm}\""),
                "Bearer realm=\"berth\"".to_owned()
            ],
            "{method} {path}: one challenge per accepted scheme"
        );
        assert_eq!(
            curl(method, &url, None, &["-H", &bearer]).await,
            ok,
            "{method} {path}"
        );
        assert_eq!(
            curl(method, &url, Some("ops:s3cr:et-ops"), &[]).await,
            ok,
            "{method} {path}"
        );
        assert_eq!(
            curl(method, &url, None, &["-H", &wrong_bearer]).await,
            401,
            "{method} {path}"
        );
        assert_eq!(
            curl(method, &url, Some("ops:nope"), &[]).await,
            401,
            "{method} {path}"
        );
        // The token is not a Basic secret.
        let token_as_secret = format!("ops:{TOKEN}");
        assert_eq!(
            curl(method, &url, Some(&token_as_secret), &[]).await,
            401,
            "{method} {path}"
        );
        assert_eq!(curl(method, &url, None, &[]).await, 401, "{method} {path}");
    }
    assert_eq!(
        curl("GET", &format!("{}/health", agent.url), None, &[]).await,
        200
    );
}

/// `berth serve` with `args`, expected to refuse to start: its stderr.
async fn refused_start(dir: &Path, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(berth_e2e::berth_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--work-dir"])
            .arg(dir.join("work"))
            .args(args)
            .env("RUST_LOG", "info")
            .output(),
    )
    .await
    .expect("berth serve ended")
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("serving the v1 API"), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credentials_file_others_can_read_or_not_in_mesos_json_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    berth_e2e::testbed();
    let dir = tempfile::tempdir().unwrap();
    let creds = private_file(dir.path(), "credentials.json", CREDENTIALS);
    let arg = creds.to_str().unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = refused_start(dir.path(), &["--http-credentials", arg]).await;
        assert!(
            err.contains("--http-credentials")
                && err.contains(arg)
                && err.contains(&format!("mode {mode:04o}"))
                && err.contains("chmod 600"),
            "mode {mode:o}: {err}"
        );
    }
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    for (text, says) in [
        ("ops s3cret\n", "line form is not accepted"),
        (r#"{"credentials":[{"principal":"ops"}]}"#, "has no secret"),
        (r#"{"credentials":[]}"#, "at least one principal"),
        (
            r#"{"credentials":[{"principal":"ops","secrett":"x"}]}"#,
            "unknown field `secrett`",
        ),
    ] {
        std::fs::write(&creds, text).unwrap();
        let err = refused_start(dir.path(), &["--http-credentials", arg]).await;
        assert!(err.contains(arg) && err.contains(says), "{text:?}: {err}");
    }
    let err = refused_start(
        dir.path(),
        &["--http-credentials", arg, "--insecure-no-auth"],
    )
    .await;
    assert!(err.contains("conflicts with --http-credentials"), "{err}");
}
