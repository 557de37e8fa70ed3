//! Mesos's HTTP authentication against a real `berth serve`: HTTP Basic with a Mesos credentials
//! file (`--http-credentials`), as `curl -u` and Mesos's own tooling send it, alone and next to
//! the bearer token, on every endpoint the token protects; `--authenticate-http-readonly=false`
//! and `--authenticate-http-readwrite=false` each opening one of Mesos's two realms; and the
//! starts that are refused (a credentials file others can read, /api/v1 left open on a
//! non-loopback address).

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
    refused_start_on(dir, "127.0.0.1:0", args).await
}

/// [`refused_start`] listening on `listen`.
async fn refused_start_on(dir: &Path, listen: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(berth_e2e::berth_bin())
            .args(["serve", "--listen", listen, "--work-dir"])
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

/// A `Call` to `/api/v1` with HTTP Basic as `user` (principal, secret), or with no credentials:
/// the status and the JSON answer (`null` when the answer is not JSON).
async fn api(
    agent: &Agent,
    call: serde_json::Value,
    user: Option<(&str, &str)>,
) -> (u16, serde_json::Value) {
    let mut r = reqwest::Client::new()
        .post(format!("{}/api/v1", agent.url))
        .header("content-type", "application/json")
        .body(call.to_string());
    if let Some((principal, secret)) = user {
        r = r.basic_auth(principal, Some(secret));
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Launches `echo <line>` as `id` and waits for it to end, with Basic as `user` (or none).
async fn run_echo(agent: &Agent, id: &str, line: &str, user: Option<(&str, &str)>) {
    let body = agent.launch_body(id, json!({"value": format!("echo {line}")}), None);
    let (status, v) = api(
        agent,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": body}),
        user,
    )
    .await;
    assert_eq!(status, 200, "launch {id}: {v}\n{}", agent.logs());
    let wait = api(
        agent,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": id}}}),
        user,
    );
    let (status, v) = tokio::time::timeout(Duration::from_secs(120), wait)
        .await
        .expect("the container ends");
    assert_eq!(status, 200, "wait {id}: {v}");
    assert_eq!(v["wait_container"]["exit_status"], 0, "{v}");
}

/// The status and body of `GET path` with no credentials at all.
async fn anonymous_get(agent: &Agent, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("{}{path}", agent.url)).await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticate_http_readonly_false_opens_the_read_only_endpoints_and_not_api_v1() {
    const T: &str = "e2e-mesos-auth-readonly-open";
    let dir = tempfile::tempdir().unwrap();
    let creds = private_file(dir.path(), "credentials.json", CREDENTIALS);
    // `--credentials` (the issue's name for the flag) is `--http-credentials`.
    let agent = Agent::start(
        T,
        &[
            "--credentials",
            creds.to_str().unwrap(),
            "--authenticate-http-readonly=false",
        ],
    )
    .await;
    // /api/v1 still needs credentials, and says which realm.
    let (status, challenges, body) = challenge(&agent, "POST", "/api/v1").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(challenges, ["Basic realm=\"mesos-agent-readwrite\""]);
    let ops = Some(("ops", "s3cr:et-ops"));
    assert_eq!(api(&agent, json!({"type": "GET_HEALTH"}), ops).await.0, 200);
    run_echo(&agent, "ro-open", "read-by-anyone", ops).await;
    // The read-only realm answers anyone, as a Mesos agent with the same flag does.
    let (status, body) = anonymous_get(
        &agent,
        "/files/read?path=/containers/ro-open/stdout&offset=0",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"], "read-by-anyone\n", "{v}");
    let (status, body) = anonymous_get(&agent, "/state").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("ro-open"),
        "/state shows the container: {body}"
    );
    for path in [
        "/flags",
        "/containers",
        "/monitor/statistics",
        "/metrics/snapshot",
        "/metrics",
        "/version",
        "/files/browse?path=/containers/ro-open",
    ] {
        let (status, body) = anonymous_get(&agent, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // /flags reports the flags under Mesos's names.
    let (_, flags) = anonymous_get(&agent, "/flags").await;
    let flags: serde_json::Value = serde_json::from_str(&flags).unwrap();
    assert_eq!(
        flags["flags"]["authenticate_http_readonly"], "false",
        "{flags}"
    );
    assert_eq!(
        flags["flags"]["authenticate_http_readwrite"], "true",
        "{flags}"
    );
    // Removing the container is read-write: refused without credentials.
    let remove = json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": "ro-open"}}});
    assert_eq!(api(&agent, remove.clone(), None).await.0, 401);
    assert_eq!(api(&agent, remove, Some(("ops", "wrong"))).await.0, 401);
    assert!(
        agent.logs().contains("--authenticate-http-readonly=false"),
        "the start warns about the open realm:\n{}",
        agent.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticate_http_readwrite_false_opens_api_v1_and_not_the_read_only_endpoints() {
    const T: &str = "e2e-mesos-auth-readwrite-open";
    let dir = tempfile::tempdir().unwrap();
    let creds = private_file(dir.path(), "credentials.json", CREDENTIALS);
    let agent = Agent::start(
        T,
        &[
            "--http-credentials",
            creds.to_str().unwrap(),
            "--authenticate-http-readwrite=false",
        ],
    )
    .await;
    // /api/v1 answers anyone: launching and waiting need no credentials.
    run_echo(&agent, "rw-open", "needs-a-principal", None).await;
    let path = "/files/read?path=/containers/rw-open/stdout&offset=0";
    for (method, path) in [
        ("GET", path),
        ("GET", "/state"),
        ("GET", "/files/browse?path=/containers/rw-open"),
        ("GET", "/metrics/snapshot"),
        ("GET", "/version"),
    ] {
        let (status, challenges, body) = challenge(&agent, method, path).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(
            challenges,
            ["Basic realm=\"mesos-agent-readonly\""],
            "{path}"
        );
    }
    let url = format!("{}{path}", agent.url);
    assert_eq!(
        curl("GET", &url, Some("monitor:m0n-secret"), &[]).await,
        200
    );
    assert_eq!(curl("GET", &url, Some("monitor:wrong"), &[]).await, 401);
    let r = reqwest::Client::new()
        .get(&url)
        .basic_auth("monitor", Some("m0n-secret"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["data"], "needs-a-principal\n", "{v}");
    let remove = json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": "rw-open"}}});
    assert_eq!(api(&agent, remove, None).await.0, 200);
    assert_eq!(
        curl("GET", &format!("{}/health", agent.url), None, &[]).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_api_v1_off_loopback_or_authentication_without_a_secret_stops_the_start() {
    berth_e2e::testbed();
    let dir = tempfile::tempdir().unwrap();
    let creds = private_file(dir.path(), "credentials.json", CREDENTIALS);
    let arg = creds.to_str().unwrap();
    let err = refused_start_on(
        dir.path(),
        "0.0.0.0:0",
        &[
            "--http-credentials",
            arg,
            "--authenticate-http-readwrite=false",
        ],
    )
    .await;
    assert!(
        err.contains("--authenticate-http-readwrite=false leaves /api/v1")
            && err.contains("--insecure-no-auth"),
        "{err}"
    );
    // With nothing configured, off loopback: refused as before.
    let err = refused_start_on(dir.path(), "0.0.0.0:0", &[]).await;
    assert!(
        err.contains("--auth-token-file FILE") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    // Asking for authentication without a token or credentials to check it against.
    for flag in [
        "--authenticate-http-readwrite",
        "--authenticate-http-readonly=true",
    ] {
        let err = refused_start(dir.path(), &[flag]).await;
        assert!(
            err.contains(flag.split('=').next().unwrap())
                && err.contains("--auth-token-file FILE or --http-credentials FILE"),
            "{flag}: {err}"
        );
    }
}
