//! End-to-end tests of the `berth` binary live in `tests/`; this library holds their shared
//! helpers: starting the real binary as an agent process against the test bed, talking to it
//! over HTTP, and running its CLI.
//!
//! The binary is `$BERTH_BIN`, else `berth` next to the test executable's directory (where
//! `cargo test --workspace` builds it). Every container a test makes carries the label
//! `io.berth.test=<test name>-<pid>` ([`run_label`]) and every agent names its Docker containers
//! `berth-<pid>-<n>-<id>` ([`Agent::docker_name`]), so neither two agents of a run nor two runs
//! of the suite on one daemon collide; [`remove_test_containers`] cleans up this run's containers and those of runs that
//! died.
//!
//! ```no_run
//! # async fn example() {
//! use berth_e2e::{remove_test_containers, Agent};
//!
//! remove_test_containers("my-test").await;
//! let agent = Agent::start("my-test", &["--docker-remove-delay", "0"]).await;
//! assert_eq!(agent.launch_shell("c1", "echo hi").await.status, 200);
//! assert_eq!(agent.wait("c1").await["state"], "TASK_FINISHED");
//! assert_eq!(agent.read_text("/containers/c1/stdout").await, "hi\n");
//! remove_test_containers("my-test").await;
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

pub use berth_testbed::{exclusive, testbed, ThrottledProxy, TEST_LABEL};

/// This run's value of the [`TEST_LABEL`] for test `test`: `<test>-<pid>`, so a concurrent run
/// of the same test (another process) has its own containers.
pub fn run_label(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// `--label` text for this run's containers of `test`: `io.berth.test=<test>-<pid>`.
pub fn test_label(test: &str) -> String {
    format!("{TEST_LABEL}={}", run_label(test))
}

/// A Docker name prefix no other agent of this run or of another run uses.
fn name_prefix() -> String {
    static AGENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = AGENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("berth-{}-{n}", std::process::id())
}

/// Removes this run's containers of `test`, and those of earlier runs of it whose process is
/// gone (a run that crashed before cleaning up); a concurrent live run's are left alone.
/// Returns how many of this run's were removed.
pub async fn remove_test_containers(test: &str) -> usize {
    let removed = berth_testbed::remove_test_containers(&run_label(test)).await;
    for value in labelled_values().await {
        let Some(pid) = value
            .strip_prefix(test)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            berth_testbed::remove_test_containers(&value).await;
        }
    }
    removed
}

/// Every value of the test label on the daemon's containers.
async fn labelled_values() -> Vec<String> {
    let docker = berth_docker_api::Docker::from_env()
        .await
        .expect("the Docker daemon");
    let options = berth_docker_api::ListContainersOptions {
        all: true,
        filters: berth_docker_api::Filters::new().label(TEST_LABEL),
        ..Default::default()
    };
    let mut values: Vec<String> = docker
        .containers()
        .list(&options)
        .await
        .unwrap_or_else(|e| panic!("test cleanup: cannot list labelled containers: {e}"))
        .into_iter()
        .filter_map(|c| c.labels.get(TEST_LABEL).cloned())
        .collect();
    values.sort();
    values.dedup();
    values
}

/// The `berth` binary under test.
///
/// # Panics
/// When it cannot be found, with how to build it.
pub fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "BERTH_BIN={} does not exist; build it with `cargo build -p berth`",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/berth
    let candidate = exe.parent().and_then(Path::parent).map(|d| d.join("berth"));
    match candidate {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "the berth binary was not found next to {} (looked for {:?}); build it with \
             `cargo build -p berth` (same profile and target dir) or set BERTH_BIN",
            exe.display(),
            candidate
        ),
    }
}

/// The longest a test waits for a container to end.
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: String,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// An HTTP answer whose body is kept as bytes.
#[derive(Debug, Clone)]
pub struct BytesResp {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl BytesResp {
    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A `berth serve` process.
pub struct Agent {
    /// The test's label value for this run (`<test name>-<pid>`, see [`run_label`]).
    pub test: String,
    /// The base URL, e.g. `http://127.0.0.1:34567`.
    pub url: String,
    /// The work directory (kept across restarts).
    pub work_dir: PathBuf,
    /// Extra `serve` arguments (kept across restarts).
    pub args: Vec<String>,
    /// The bearer token sent with every request, if any.
    pub token: Option<String>,
    /// `--docker-name-prefix` (unique to this agent).
    pub prefix: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: usize,
    http: reqwest::Client,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("test", &self.test)
            .field("url", &self.url)
            .finish()
    }
}

impl Agent {
    /// Starts an agent with a fresh work directory and `args` added to `berth serve` (after a
    /// `--docker-name-prefix` unique to the agent).
    pub async fn start(test: &str, args: &[&str]) -> Agent {
        testbed();
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-e2e-{test}-"))
            .tempdir()
            .expect("a temp dir");
        let work_dir = dir.path().join("work");
        let prefix = name_prefix();
        let mut all_args = vec!["--docker-name-prefix".to_owned(), prefix.clone()];
        all_args.extend(args.iter().map(|s| (*s).to_owned()));
        let mut agent = Agent {
            test: run_label(test),
            url: String::new(),
            work_dir,
            args: all_args,
            token: None,
            prefix,
            dir,
            child: None,
            starts: 0,
            http: reqwest::Client::new(),
        };
        agent.spawn().await;
        agent
    }

    /// The temporary directory holding the work dir and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("agent-{n}.log"))
    }

    /// Everything the agent processes wrote to stderr, in order.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    async fn spawn(&mut self) {
        self.starts += 1;
        let log = self.log_path(self.starts);
        let file = std::fs::File::create(&log).expect("agent log file");
        let mut cmd = Command::new(berth_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--work-dir"])
            .arg(&self.work_dir)
            .args(&self.args)
            .env("RUST_LOG", "info,berth=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", berth_bin().display()));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|l| l.contains("serving the v1 API at http://"))
            {
                let start = line.find("http://").expect("a URL");
                let url = &line[start..];
                let end = url.find("/api/v1").expect("the API path");
                self.url = url[..end].to_owned();
                break;
            }
            if let Some(status) = child.try_wait().expect("agent status") {
                panic!("berth serve exited ({status}) before serving:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "berth serve did not start within 60s:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = Some(child);
    }

    /// The Docker name of this agent's container `id`.
    pub fn docker_name(&self, id: &str) -> String {
        format!("{}-{id}", self.prefix)
    }

    /// The agent process's id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("a running agent")
    }

    /// Kills the agent with SIGKILL (no chance to clean up), and reaps it.
    pub async fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.expect("SIGKILL the agent");
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for the agent to exit; returns its exit code.
    pub async fn sigterm(&mut self) -> Option<i32> {
        let mut c = self.child.take().expect("a running agent");
        let pid =
            rustix::process::Pid::from_raw(c.id().expect("a pid") as i32).expect("a valid pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .expect("SIGTERM the agent");
        let status = tokio::time::timeout(Duration::from_secs(30), c.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the agent did not exit within 30s of SIGTERM:\n{}",
                    self.logs()
                )
            })
            .expect("agent exit status");
        status.code()
    }

    /// Starts the agent again on the same work directory (after [`sigkill`](Self::sigkill) or
    /// [`sigterm`](Self::sigterm)).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the agent before restarting it");
        self.spawn().await;
    }

    fn authorize(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Resp {
        let resp = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to the agent failed: {e}\n{}", self.logs()));
        let (status, content_type) = status_and_type(&resp);
        let body = resp.text().await.expect("a response body");
        Resp {
            status,
            content_type,
            body,
        }
    }

    /// Posts a raw body to `/api/v1` with `content_type`.
    pub async fn post_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> Resp {
        let r = self
            .http
            .post(format!("{}/api/v1", self.url))
            .header("content-type", content_type)
            .body(body);
        self.send(self.authorize(r)).await
    }

    /// Posts a raw body to `/api/v1` with these headers; the answer's body as bytes (for
    /// binary protobuf answers).
    pub async fn post_bytes(&self, headers: &[(&str, &str)], body: Vec<u8>) -> BytesResp {
        let mut r = self.http.post(format!("{}/api/v1", self.url));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = self
            .authorize(r.body(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to the agent failed: {e}\n{}", self.logs()));
        let (status, content_type) = status_and_type(&resp);
        let body = resp.bytes().await.expect("a response body").to_vec();
        BytesResp {
            status,
            content_type,
            body,
        }
    }

    /// Posts a `Call`.
    pub async fn call(&self, call: Value) -> Resp {
        self.post_raw("application/json", call.to_string()).await
    }

    /// `GET <path>`.
    pub async fn get(&self, path: &str) -> Resp {
        let r = self.http.get(format!("{}{path}", self.url));
        self.send(self.authorize(r)).await
    }

    /// Starts `LAUNCH_CONTAINER` of `sh -c <line>` in `image` in the background (a launch that
    /// waits on a pull or a fetch the test holds); the task answers the status code and body.
    pub fn spawn_launch(
        &self,
        id: &str,
        line: &str,
        image: &str,
    ) -> tokio::task::JoinHandle<(u16, String)> {
        let body = self.launch_body(id, json!({"value": line}), Some(image));
        let request = self
            .authorize(reqwest::Client::new().post(format!("{}/api/v1", self.url)))
            .header("content-type", "application/json")
            .body(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}).to_string());
        tokio::spawn(async move {
            let r = request.send().await.expect("the launch is answered");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    }

    /// A `launch_container` payload: `command` in `image` (the test bed's busybox when `None`),
    /// labelled for cleanup.
    pub fn launch_body(&self, id: &str, command: Value, image: Option<&str>) -> Value {
        let image = image
            .map(str::to_owned)
            .unwrap_or_else(|| testbed().images.busybox.clone());
        json!({
            "container_id": {"value": id},
            "command": command,
            "container": {"type": "DOCKER", "docker": {
                "image": image,
                "parameters": [{"key": "label", "value": format!("{TEST_LABEL}={}", self.test)}]
            }}
        })
    }

    /// Launches `sh -c <line>` in the busybox image; returns the answer.
    pub async fn launch_shell(&self, id: &str, line: &str) -> Resp {
        let body = self.launch_body(id, json!({"value": line}), None);
        self.call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
            .await
    }

    /// `WAIT_CONTAINER`; asserts 200 within [`WAIT_LIMIT`] and returns the `wait_container` object.
    pub async fn wait(&self, id: &str) -> Value {
        let call = self.call(
            json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": id}}}),
        );
        let r = tokio::time::timeout(WAIT_LIMIT, call)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "container {id} did not end within {WAIT_LIMIT:?}\n{}",
                    self.logs()
                )
            });
        assert_eq!(r.status, 200, "WAIT_CONTAINER {id}: {r:?}\n{}", self.logs());
        r.json()["wait_container"].clone()
    }

    /// `KILL_CONTAINER` with an optional signal.
    pub async fn kill(&self, id: &str, signal: Option<i32>) -> Resp {
        let mut k = json!({"container_id": {"value": id}});
        if let Some(s) = signal {
            k["signal"] = json!(s);
        }
        self.call(json!({"type": "KILL_CONTAINER", "kill_container": k}))
            .await
    }

    /// `REMOVE_CONTAINER`.
    pub async fn remove(&self, id: &str) -> Resp {
        self.call(json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": id}}})).await
    }

    /// This container's `GET_CONTAINERS` entry, if any.
    pub async fn container(&self, id: &str) -> Option<Value> {
        let r = self.call(json!({"type": "GET_CONTAINERS"})).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["get_containers"]["containers"]
            .as_array()
            .expect("a containers array")
            .iter()
            .find(|c| c["container_id"]["value"] == id)
            .cloned()
    }

    /// `READ_FILE` of a whole file (decoded).
    pub async fn read_file(&self, path: &str) -> Resp {
        self.call(json!({"type": "READ_FILE", "read_file": {"path": path, "offset": 0}}))
            .await
    }

    /// The decoded data of a successful `READ_FILE`.
    pub async fn read_text(&self, path: &str) -> String {
        use base64::Engine as _;
        let r = self.read_file(path).await;
        assert_eq!(r.status, 200, "READ_FILE {path}: {r:?}");
        let data = base64::engine::general_purpose::STANDARD
            .decode(r.json()["read_file"]["data"].as_str().expect("data"))
            .expect("base64 data");
        String::from_utf8(data).expect("UTF-8 file")
    }

    /// Runs `berth <args>` against this agent (`--agent` and the token are passed through the
    /// environment).
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(berth_bin());
        cmd.args(args)
            .env("BERTH_AGENT", &self.url)
            .env_remove("BERTH_TOKEN_FILE")
            .stdin(Stdio::null());
        match &self.token {
            Some(t) => cmd.env("BERTH_TOKEN", t),
            None => cmd.env_remove("BERTH_TOKEN"),
        };
        cmd.output().await.expect("run the berth CLI")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `timeout`.
///
/// # Panics
/// On timeout, with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The decoded output of a CLI run, for assertion messages.
pub fn describe_output(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether a Docker container exists (by name or id).
pub async fn docker_container_exists(name: &str) -> bool {
    let docker = berth_docker_api::Docker::from_env()
        .await
        .expect("the Docker daemon");
    match docker.containers().inspect(name).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("inspect {name}: {e}"),
    }
}

/// An answer's status code and `Content-Type` (empty when it has none).
fn status_and_type(resp: &reqwest::Response) -> (u16, String) {
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (resp.status().as_u16(), content_type)
}

/// `docker <args>` through the docker CLI (the oracle outside Berth); asserts that it
/// succeeded and returns its stdout.
pub async fn docker_cli(args: &[&str]) -> String {
    let o = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("the docker CLI runs");
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

/// `docker inspect --type <kind> <name>` through the docker CLI (the oracle outside Berth) as
/// JSON; `None` when there is no such object.
pub async fn docker_inspect(kind: &str, name: &str) -> Option<Value> {
    let out = tokio::process::Command::new("docker")
        .args(["inspect", "--type", kind, name])
        .output()
        .await
        .expect("the docker CLI (the oracle) runs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No such"), "docker inspect {name}: {err}");
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("docker inspect prints JSON");
    Some(v[0].clone())
}

/// A real pseudo-terminal for CLI tests: a program runs with the terminal as its controlling
/// terminal (`setsid -c`), as it would in a user's shell; the test types into it and reads
/// what it shows.
pub struct Terminal {
    master: std::fs::File,
    slave: std::fs::File,
    shown: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Terminal {
    /// A terminal of `rows` x `columns`.
    pub fn open(rows: u16, columns: u16) -> Terminal {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        use std::io::Read as _;
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("a pty");
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let path = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(std::ffi::OsStr::new(
                std::str::from_utf8(path.as_bytes()).unwrap(),
            ))
            .expect("the pty's slave");
        let master = std::fs::File::from(master);
        let t = Terminal {
            master: master.try_clone().unwrap(),
            slave,
            shown: {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let mut reader = master;
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = reader.read(&mut buf) {
                        if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                });
                rx
            },
            seen: Vec::new(),
        };
        t.resize(rows, columns);
        t
    }

    /// Runs `program args` on this terminal, as its controlling terminal.
    pub fn spawn(&self, program: &Path, args: &[&str]) -> std::process::Child {
        std::process::Command::new("setsid")
            .arg("-c")
            .arg(program)
            .args(args)
            .stdin(self.slave.try_clone().unwrap())
            .stdout(self.slave.try_clone().unwrap())
            .stderr(self.slave.try_clone().unwrap())
            .spawn()
            .expect("setsid (util-linux) runs")
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write as _;
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    /// Resizes the terminal (its foreground programs get SIGWINCH).
    pub fn resize(&self, rows: u16, columns: u16) {
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&self.master, size).unwrap();
    }

    /// Waits (20 s at most) until the terminal has shown `needle`; what came after it stays
    /// for the next wait.
    ///
    /// # Panics
    /// On timeout, with `what` and what the terminal showed.
    pub async fn expect(&mut self, needle: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            match tokio::time::timeout_at(deadline, self.shown.recv()).await {
                Ok(Some(b)) => self.seen.extend(b),
                _ => panic!(
                    "{what}: {needle:?} never came; the terminal showed {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
        let text = String::from_utf8_lossy(&self.seen).into_owned();
        let at = text.find(needle).unwrap() + needle.len();
        self.seen = text.as_bytes()[at..].to_vec();
    }

    /// What the terminal showed since the last [`expect`](Self::expect).
    pub fn since_last(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// The terminal's local modes (echo, canonical, signals), to check a program restored them.
    pub fn local_modes(&self) -> String {
        format!(
            "{:?}",
            rustix::termios::tcgetattr(&self.slave).unwrap().local_modes
        )
    }
}
