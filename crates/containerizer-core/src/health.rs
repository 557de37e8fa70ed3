//! Health checks: Mesos's `HealthCheck`, run by the agent against a running container, and the
//! report of Docker's own `HEALTHCHECK`.
//!
//! The rules are those of Mesos's `HealthChecker` (`src/checks/health_checker.cpp`), which its
//! Docker executor runs: the first check runs `delay` after the container started, the next one
//! `interval` after the previous one ended, each bounded by `timeout`. A failure does not count
//! while the check has never passed and the container is still within its `grace_period` (from
//! its start); any other failure does. A counted failure makes the container unhealthy;
//! `consecutive_failures` of them in a row get it killed (Mesos's Docker executor kills the
//! task), unless `kill_on_unhealthy` (Berth's) is false. A pass resets the count.
//!
//! [`Tracker`] is that rule alone, pure; the containerizer's checker task feeds it the outcome of
//! each [`run_check`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::engine::{DockerHealth, Engine, ExecSpec};
use crate::spec::{CommandInfo, Network};

/// Mesos `HealthCheck`, with Berth's `kill_on_unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// What is checked.
    pub check: Check,
    /// From the container's start to the first check (Mesos `delay_seconds`, default 15 s).
    pub delay: Duration,
    /// From the end of one check to the start of the next (`interval_seconds`, default 10 s).
    pub interval: Duration,
    /// The most one check may take; longer is a failure (`timeout_seconds`, default 20 s).
    pub timeout: Duration,
    /// From the container's start: failures before the first pass do not count
    /// (`grace_period_seconds`, default 10 s).
    pub grace_period: Duration,
    /// Counted failures in a row that get the container killed (`consecutive_failures`,
    /// default 3; 0 acts as 1, as in Mesos).
    pub consecutive_failures: u32,
    /// Kill the container once it reaches `consecutive_failures` (Berth's; default true, what
    /// Mesos's Docker executor does). False only reports it unhealthy.
    pub kill_on_unhealthy: bool,
}

impl HealthCheck {
    /// `check` with Mesos's defaults for everything else.
    pub fn new(check: Check) -> HealthCheck {
        HealthCheck {
            check,
            delay: Duration::from_secs(15),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(20),
            grace_period: Duration::from_secs(10),
            consecutive_failures: 3,
            kill_on_unhealthy: true,
        }
    }
}

/// What a health check does (Mesos `HealthCheck.Type` with its settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check {
    /// Runs the command inside the container (Docker exec); exit code 0 passes. A shell
    /// command runs as `sh -c <value>`; otherwise `value` followed by `arguments`. It runs as
    /// the command's `user`, else the container's.
    Command(CommandInfo),
    /// `GET <scheme>://127.0.0.1:<port><path>` from inside the container's network namespace
    /// (see [`Vantage`]), following redirects and accepting any TLS certificate (as Mesos's
    /// `curl -L -k`); passes when the final status is in `statuses`, or within 200..=399 when
    /// none are given.
    Http {
        /// `http` or `https`.
        scheme: String,
        /// The container's port.
        port: u16,
        /// Begins with `/`.
        path: String,
        /// Statuses that pass; empty for 200..=399.
        statuses: Vec<u16>,
        /// Check over IPv6 (Mesos `protocol: IPv6`).
        ipv6: bool,
    },
    /// A TCP connection to `127.0.0.1:<port>` in the container's network namespace that is
    /// accepted passes.
    Tcp {
        /// The container's port.
        port: u16,
        /// Check over IPv6.
        ipv6: bool,
    },
    /// Berth's: the image's own Docker `HEALTHCHECK`, run by Docker on its own schedule; the
    /// container is killed when Docker says it is unhealthy (with `kill_on_unhealthy`). The
    /// timing fields and `consecutive_failures` are Docker's (`--interval`, `--retries`, ...).
    Docker,
}

impl Check {
    /// Mesos's type name: `COMMAND`, `HTTP`, `TCP`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Check::Command(_) => "COMMAND",
            Check::Http { .. } => "HTTP",
            Check::Tcp { .. } => "TCP",
            Check::Docker => "DOCKER",
        }
    }
}

/// A container's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// No check has passed or counted as failed yet (before the first check, or failures
    /// within the grace period).
    Starting,
    /// The latest counted check passed.
    Healthy,
    /// The latest counted check failed.
    Unhealthy,
}

impl HealthState {
    /// `starting`, `healthy`, `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
    }
}

/// Who checks the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthSource {
    /// Berth, from the launch's `health_check`.
    Berth,
    /// Docker, from the image's (or the create's) `HEALTHCHECK`; Berth only reports it.
    Docker,
}

impl HealthSource {
    /// `berth`, `docker`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthSource::Berth => "berth",
            HealthSource::Docker => "docker",
        }
    }
}

/// What is known of a container's health, for status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Who checks.
    pub source: HealthSource,
    /// The check's type (`COMMAND`, `HTTP`, `TCP`; `CMD` for Docker's).
    pub check_type: String,
    /// The state.
    pub state: HealthState,
    /// Counted failures in a row (Docker's `FailingStreak` for Docker's checks).
    pub consecutive_failures: u32,
    /// Checks that passed (Berth's checks only).
    pub checks_passed: u64,
    /// Checks that failed, counted or within the grace period (Berth's checks only).
    pub checks_failed: u64,
    /// When the latest check ended.
    pub last_check: Option<SystemTime>,
    /// The latest check's output: the tail of a command's output, the HTTP status line.
    pub last_output: Option<String>,
    /// Why the latest check failed, if it did.
    pub last_error: Option<String>,
    /// Whether Berth killed the container for failing it.
    pub killed: bool,
}

impl Health {
    /// Before the first check of `check_type` by `source`.
    pub fn starting(source: HealthSource, check_type: &str) -> Health {
        Health {
            source,
            check_type: check_type.to_owned(),
            state: HealthState::Starting,
            consecutive_failures: 0,
            checks_passed: 0,
            checks_failed: 0,
            last_check: None,
            last_output: None,
            last_error: None,
            killed: false,
        }
    }

    /// Docker's own health state, as inspect reports it.
    pub fn from_docker(h: &DockerHealth) -> Health {
        let state = match h.status.as_str() {
            "healthy" => HealthState::Healthy,
            "unhealthy" => HealthState::Unhealthy,
            _ => HealthState::Starting,
        };
        let failed = h.last_exit_code.is_some_and(|c| c != 0);
        Health {
            state,
            consecutive_failures: u32::try_from(h.failing_streak).unwrap_or(u32::MAX),
            last_check: h.last_end,
            last_output: h.last_output.as_deref().map(tail_text),
            last_error: failed.then(|| {
                format!(
                    "exited with status {}",
                    h.last_exit_code.expect("checked by `failed`")
                )
            }),
            ..Health::starting(HealthSource::Docker, "CMD")
        }
    }
}

/// The health checks' counters since the agent started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthCounts {
    /// Berth's checks that passed.
    pub passed: u64,
    /// Berth's checks that failed (within the grace period or not).
    pub failed: u64,
    /// Containers Berth killed for failing their health check.
    pub killed: u64,
    /// Checker tasks running now (Berth's checks and Docker health reporters).
    pub checkers: u64,
}

/// The counters behind [`HealthCounts`], shared by the checker tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub passed: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub killed: std::sync::atomic::AtomicU64,
    pub checkers: std::sync::atomic::AtomicU64,
}

impl Counters {
    /// A snapshot.
    pub fn snapshot(&self) -> HealthCounts {
        use std::sync::atomic::Ordering::Relaxed;
        HealthCounts {
            passed: self.passed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            killed: self.killed.load(Relaxed),
            checkers: self.checkers.load(Relaxed),
        }
    }
}

/// What one check result means, by Mesos's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed: healthy, the failure count is reset.
    Healthy,
    /// Failed before any pass, within the grace period: not counted.
    InGrace,
    /// Failed and counted; `consecutive` in a row so far.
    Unhealthy {
        /// Counted failures in a row.
        consecutive: u32,
    },
    /// Failed, counted, and the count reached `consecutive_failures`: kill the container.
    Kill {
        /// Counted failures in a row.
        consecutive: u32,
    },
}

/// Mesos's health rule over a stream of check results (pure: time is passed in).
#[derive(Debug, Clone)]
pub struct Tracker {
    limit: u32,
    grace: Duration,
    kill: bool,
    /// No check has passed yet (Mesos's `initializing`): only then does the grace period apply.
    initializing: bool,
    failures: u32,
}

impl Tracker {
    /// A tracker for `check`'s thresholds.
    pub fn new(check: &HealthCheck) -> Tracker {
        Tracker {
            limit: check.consecutive_failures,
            grace: check.grace_period,
            kill: check.kill_on_unhealthy,
            initializing: true,
            failures: 0,
        }
    }

    /// A tracker for `check`'s thresholds that goes on from `health`, what an earlier checker
    /// of the same check found (before an agent restart).
    pub fn resume(check: &HealthCheck, health: &Health) -> Tracker {
        Tracker {
            initializing: health.checks_passed == 0,
            failures: health.consecutive_failures,
            ..Tracker::new(check)
        }
    }

    /// Records a check that `passed` or not, `since_start` after the container started.
    pub fn record(&mut self, passed: bool, since_start: Duration) -> Verdict {
        if passed {
            self.initializing = false;
            self.failures = 0;
            return Verdict::Healthy;
        }
        // As Mesos: the grace period forgives failures only until the first pass, so a
        // container that was healthy once is judged at once, grace period or not.
        if self.initializing && !self.grace.is_zero() && since_start <= self.grace {
            return Verdict::InGrace;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.limit && self.kill {
            Verdict::Kill {
                consecutive: self.failures,
            }
        } else {
            Verdict::Unhealthy {
                consecutive: self.failures,
            }
        }
    }

    /// The state the results so far give.
    pub fn state(&self) -> HealthState {
        if self.failures > 0 {
            HealthState::Unhealthy
        } else if self.initializing {
            HealthState::Starting
        } else {
            HealthState::Healthy
        }
    }

    /// Counted failures in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }
}

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it passed.
    pub passed: bool,
    /// What it said (the tail of a command's output, an HTTP status).
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Outcome {
    fn failed(error: impl Into<String>) -> Outcome {
        Outcome {
            passed: false,
            output: None,
            error: Some(error.into()),
        }
    }
}

/// Where a check reaches the container.
#[derive(Debug, Clone)]
pub struct Target {
    /// Docker's id of the container (for exec).
    pub docker_id: String,
    /// Where HTTP and TCP checks connect from.
    pub vantage: Vantage,
    /// The container's user (a command check's default).
    pub user: Option<String>,
}

/// Where HTTP and TCP checks connect from; they dial the loopback address there, as Mesos's
/// checker does from inside the container's network namespace.
#[derive(Debug, Clone)]
pub enum Vantage {
    /// The host's network, which the container shares (`HOST` networking).
    Host,
    /// The network namespace of the container's process, entered through this pidfd of it
    /// (a pidfd, not a pid: it cannot come to name another process).
    Namespace(Arc<OwnedFd>),
    /// The namespace cannot be entered: why.
    Unreachable(String),
}

impl Vantage {
    /// The vantage of a container on `network` whose process is `pid`.
    pub fn of(network: &Network, pid: Option<u32>) -> Vantage {
        if *network == Network::Host {
            return Vantage::Host;
        }
        let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) else {
            return Vantage::Unreachable("the container's process is not known".to_owned());
        };
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => Vantage::Namespace(Arc::new(fd)),
            Err(e) => Vantage::Unreachable(format!(
                "cannot open the container's process {}: {e}",
                pid.as_raw_nonzero()
            )),
        }
    }
}

/// Runs `work` on a thread of its own that has entered the network namespace of the process
/// behind `pidfd`, on a runtime of that thread: every socket it opens, and every name it
/// resolves, is the namespace's. The rest of the agent stays in the host's.
async fn in_namespace<F, Fut>(pidfd: Arc<OwnedFd>, work: F) -> std::io::Result<Outcome>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Outcome>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-check".to_owned())
        .spawn(move || {
            let result = rustix::thread::move_into_thread_name_spaces(
                pidfd.as_fd(),
                rustix::thread::ThreadNameSpaceType::NETWORK,
            )
            .map_err(std::io::Error::from)
            .and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            })
            .map(|runtime| runtime.block_on(work()));
            let _ = tx.send(result);
        })?;
    rx.await.unwrap_or_else(|_| {
        Err(std::io::Error::other(
            "the check's thread ended without an answer",
        ))
    })
}

/// The loopback address HTTP and TCP checks dial.
fn loopback(ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// The exec a command check runs.
pub fn exec_spec(command: &CommandInfo, container_user: Option<&str>) -> ExecSpec {
    let value = command.value.clone().unwrap_or_default();
    let argv = if command.shell {
        vec!["sh".to_owned(), "-c".to_owned(), value]
    } else {
        std::iter::once(value)
            .chain(command.arguments.iter().cloned())
            .collect()
    };
    ExecSpec {
        argv,
        env: command
            .environment
            .iter()
            .map(|v| format!("{}={}", v.name, v.value))
            .collect(),
        user: command
            .user
            .clone()
            .or_else(|| container_user.map(str::to_owned)),
        timeout: None,
    }
}

/// Most of a check's text kept for status.
const TEXT_LIMIT: usize = 512;

/// The last [`TEXT_LIMIT`] bytes of `s` (cut at a character boundary).
fn tail_text(s: &str) -> String {
    let mut start = s.len().saturating_sub(TEXT_LIMIT);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

/// Runs one check of `check` against `target`, bounded by `timeout`: a command still running
/// then is killed, so hung checks do not pile up in the container.
pub async fn run_check(
    engine: &dyn Engine,
    check: &Check,
    target: &Target,
    timeout: Duration,
) -> Outcome {
    let Check::Command(command) = check else {
        let check = check.clone();
        let work = move || async move { reach(&http_client(timeout), &check).await };
        let run = async {
            match &target.vantage {
                Vantage::Host => work().await,
                Vantage::Namespace(pidfd) => {
                    in_namespace(pidfd.clone(), work).await.unwrap_or_else(|e| {
                        Outcome::failed(format!(
                            "cannot enter the container's network namespace: {e}"
                        ))
                    })
                }
                Vantage::Unreachable(why) => Outcome::failed(why.clone()),
            }
        };
        return tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| Outcome::failed(timed_out(timeout)));
    };
    let spec = ExecSpec {
        timeout: Some(timeout),
        ..exec_spec(command, target.user.as_deref())
    };
    match engine.exec(&target.docker_id, &spec).await {
        Ok(r) => {
            let output = Some(tail_text(&String::from_utf8_lossy(&r.output)));
            let error = if r.timed_out {
                Some(format!("{}; it was killed", timed_out(timeout)))
            } else {
                (r.exit_code != 0)
                    .then(|| format!("the command exited with status {}", r.exit_code))
            };
            Outcome {
                passed: r.exit_code == 0 && !r.timed_out,
                error,
                output,
            }
        }
        Err(e) => Outcome::failed(format!("the command could not run: {e}")),
    }
}

/// Why a check that ran past its `timeout` failed.
pub fn timed_out(timeout: Duration) -> String {
    format!("the check did not finish within its timeout of {timeout:?}")
}

/// An HTTP or TCP check (the network ones) against the loopback address of wherever it runs;
/// not bounded in time.
async fn reach(http: &reqwest::Client, check: &Check) -> Outcome {
    match check {
        Check::Command(_) => Outcome::failed("a COMMAND check runs in the container"),
        Check::Http {
            scheme,
            port,
            path,
            statuses,
            ipv6,
        } => {
            let ip = loopback(*ipv6);
            let url = format!("{scheme}://{}{path}", SocketAddr::new(ip, *port));
            match http.get(&url).send().await {
                Ok(r) => {
                    let code = r.status().as_u16();
                    let passed = if statuses.is_empty() {
                        (200..400).contains(&code)
                    } else {
                        statuses.contains(&code)
                    };
                    Outcome {
                        passed,
                        output: Some(format!("GET {url}: {}", r.status())),
                        error: (!passed).then(|| {
                            format!("GET {url} answered {}, which is not a passing status", code)
                        }),
                    }
                }
                Err(e) => Outcome::failed(format!("GET {url} failed: {}", with_causes(&e))),
            }
        }
        // Docker runs it; the checker reads Docker's verdict instead (see `Health::from_docker`).
        Check::Docker => Outcome::failed("a DOCKER health check is run by Docker, not by Berth"),
        Check::Tcp { port, ipv6 } => {
            let ip = loopback(*ipv6);
            let addr = SocketAddr::new(ip, *port);
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => Outcome {
                    passed: true,
                    output: Some(format!("connected to {addr}")),
                    error: None,
                },
                Err(e) => Outcome::failed(format!("connecting to {addr} failed: {e}")),
            }
        }
    }
}

/// `e` and its sources: reqwest's own text names only the request ("error sending request"),
/// the cause (connection refused, a TLS failure) is in its sources.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The HTTP client of a check: redirects followed and any certificate accepted, as Mesos's
/// `curl -L -k`; no proxy (the container is local).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|e| {
            // Only a TLS backend that fails to initialise gets here; checks then fail with
            // the default client's errors rather than the agent stopping.
            tracing::warn!(error = %e, "building the health check HTTP client failed; using the default one");
            reqwest::Client::new()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(limit: u32, grace_secs: u64) -> HealthCheck {
        HealthCheck {
            consecutive_failures: limit,
            grace_period: Duration::from_secs(grace_secs),
            ..HealthCheck::new(Check::Tcp {
                port: 80,
                ipv6: false,
            })
        }
    }

    const AFTER_GRACE: Duration = Duration::from_secs(100);

    #[test]
    fn kill_comes_at_exactly_the_consecutive_failure_count() {
        let mut t = Tracker::new(&check(3, 0));
        assert_eq!(t.state(), HealthState::Starting);
        assert_eq!(
            t.record(false, AFTER_GRACE),
            Verdict::Unhealthy { consecutive: 1 }
        );
        assert_eq!(t.state(), HealthState::Unhealthy);
        assert_eq!(
            t.record(false, AFTER_GRACE),
            Verdict::Unhealthy { consecutive: 2 }
        );
        assert_eq!(
            t.record(false, AFTER_GRACE),
            Verdict::Kill { consecutive: 3 }
        );
        assert_eq!(t.consecutive_failures(), 3);
    }

    #[test]
    fn a_pass_resets_the_count() {
        let mut t = Tracker::new(&check(2, 0));
        assert_eq!(
            t.record(false, AFTER_GRACE),
            Verdict::Unhealthy { consecutive: 1 }
        );
        assert_eq!(t.record(true, AFTER_GRACE), Verdict::Healthy);
        assert_eq!(t.state(), HealthState::Healthy);
        assert_eq!(t.consecutive_failures(), 0);
        // Two more are needed again, not one.
        assert_eq!(
            t.record(false, AFTER_GRACE),
            Verdict::Unhealthy { consecutive: 1 }
        );
        assert_eq!(
            t.record(false, AFTER_GRACE),
            Verdict::Kill { consecutive: 2 }
        );
    }

    #[test]
    fn failures_in_the_grace_period_do_not_count_until_the_first_pass() {
        let mut t = Tracker::new(&check(1, 10));
        for s in [0, 5, 10] {
            assert_eq!(t.record(false, Duration::from_secs(s)), Verdict::InGrace);
            assert_eq!(t.state(), HealthState::Starting);
        }
        // Past the grace period, the first failure counts (and with a limit of 1, kills).
        assert_eq!(
            t.record(false, Duration::from_secs(11)),
            Verdict::Kill { consecutive: 1 }
        );

        // A container that passed once is judged at once, even within the grace period.
        let mut t = Tracker::new(&check(2, 10));
        assert_eq!(t.record(true, Duration::from_secs(1)), Verdict::Healthy);
        assert_eq!(
            t.record(false, Duration::from_secs(2)),
            Verdict::Unhealthy { consecutive: 1 }
        );
    }

    #[test]
    fn a_resumed_tracker_goes_on_counting_where_the_last_stopped() {
        // Two counted failures before an agent restart: the third kills, not a fifth.
        let found = Health {
            state: HealthState::Unhealthy,
            consecutive_failures: 2,
            checks_passed: 7,
            ..Health::starting(HealthSource::Berth, "COMMAND")
        };
        let mut t = Tracker::resume(&check(3, 10), &found);
        assert_eq!(t.state(), HealthState::Unhealthy);
        // It had passed before: the grace period no longer forgives.
        assert_eq!(
            t.record(false, Duration::from_secs(1)),
            Verdict::Kill { consecutive: 3 }
        );
        // Never passed and within the grace period: still forgiven after the restart.
        let mut t = Tracker::resume(&check(3, 10), &Health::starting(HealthSource::Berth, "TCP"));
        assert_eq!(t.state(), HealthState::Starting);
        assert_eq!(t.record(false, Duration::from_secs(1)), Verdict::InGrace);
    }

    #[test]
    fn without_kill_on_unhealthy_it_stays_unhealthy_and_counts_on() {
        let mut hc = check(2, 0);
        hc.kill_on_unhealthy = false;
        let mut t = Tracker::new(&hc);
        for n in 1..=5 {
            assert_eq!(
                t.record(false, AFTER_GRACE),
                Verdict::Unhealthy { consecutive: n }
            );
        }
    }

    #[test]
    fn zero_consecutive_failures_kills_at_the_first_counted_failure_as_mesos() {
        let mut t = Tracker::new(&check(0, 0));
        assert_eq!(
            t.record(false, AFTER_GRACE),
            Verdict::Kill { consecutive: 1 }
        );
    }

    #[test]
    fn checks_connect_from_the_host_only_with_host_networking() {
        assert!(matches!(Vantage::of(&Network::Host, None), Vantage::Host));
        // Any other network: from inside the namespace of the container's process.
        let own = Some(std::process::id());
        for network in [Network::Bridge, Network::None] {
            assert!(matches!(Vantage::of(&network, own), Vantage::Namespace(_)));
        }
        let Vantage::Unreachable(why) = Vantage::of(&Network::Bridge, None) else {
            panic!("a namespace without a process");
        };
        assert!(why.contains("not known"), "{why}");
    }

    #[test]
    fn command_checks_run_as_launch_commands_do() {
        let shell = exec_spec(&CommandInfo::shell("test -f /tmp/ok"), Some("nobody"));
        assert_eq!(shell.argv, ["sh", "-c", "test -f /tmp/ok"]);
        assert_eq!(shell.user.as_deref(), Some("nobody"));
        let mut argv = CommandInfo::exec(Some("/bin/test"), &["-f", "/tmp/ok"]).env("A", "1");
        argv.user = Some("1000".into());
        let spec = exec_spec(&argv, Some("nobody"));
        assert_eq!(spec.argv, ["/bin/test", "-f", "/tmp/ok"]);
        assert_eq!(spec.env, ["A=1"]);
        assert_eq!(spec.user.as_deref(), Some("1000"));
    }

    #[test]
    fn docker_health_is_reported_as_docker_says() {
        let h = Health::from_docker(&DockerHealth {
            status: "unhealthy".into(),
            failing_streak: 4,
            last_output: Some("x".repeat(2000)),
            last_exit_code: Some(1),
            last_end: None,
        });
        assert_eq!(h.source, HealthSource::Docker);
        assert_eq!(h.state, HealthState::Unhealthy);
        assert_eq!(h.consecutive_failures, 4);
        assert_eq!(h.last_output.as_ref().unwrap().len(), TEXT_LIMIT);
        assert_eq!(h.last_error.as_deref(), Some("exited with status 1"));
    }
}
