//! The narrow Docker seam the containerizer is written against: [`Engine`].
//!
//! Only the operations the containerizer needs, in its own types. The real implementation over
//! the Engine API is [`DockerEngine`](crate::DockerEngine); unit tests use an in-memory engine, so
//! every state x event interleaving can be driven deterministically without a daemon.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::mapping::CreateSpec;
use crate::spec::WindowSize;

/// A boxed, sendable future.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed, sendable stream.
pub type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = T> + Send + 'a>>;

/// What kind of Docker failure happened; decides retries and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineErrorKind {
    /// The container or image does not exist.
    NotFound,
    /// A conflict (name in use, container running, ...).
    Conflict,
    /// Retrying may help (connection lost, timeout, daemon 5xx).
    Transient,
    /// Retrying will not help.
    Permanent,
}

/// A Docker operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    /// The kind.
    pub kind: EngineErrorKind,
    /// The message (the daemon's text, with what was being done).
    pub message: String,
}

impl EngineError {
    /// An error of `kind`.
    pub fn new(kind: EngineErrorKind, message: impl Into<String>) -> EngineError {
        EngineError {
            kind,
            message: message.into(),
        }
    }

    /// Whether the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == EngineErrorKind::NotFound
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.kind == EngineErrorKind::Transient
    }
}

/// What `inspect` tells about a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspected {
    /// Docker's id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `State.Status`: `created`, `running`, `exited`, ...
    pub status: String,
    /// `State.Running`.
    pub running: bool,
    /// `State.Pid` (None when 0).
    pub pid: Option<u32>,
    /// `State.ExitCode`.
    pub exit_code: i64,
    /// `State.OOMKilled`.
    pub oom_killed: bool,
    /// Whether it was ever started (`State.StartedAt` is not the zero time).
    pub ever_started: bool,
    /// `Config.Tty` (decides how its logs are framed).
    pub tty: bool,
    /// IP addresses of its networks.
    pub ip_addresses: Vec<String>,
    /// `HostConfig.Memory` (0 when unlimited).
    pub memory_limit: Option<u64>,
    /// The CPU and memory limits `HostConfig` says are in force.
    pub enforced: Enforced,
    /// `Config.StopSignal`.
    pub stop_signal: Option<String>,
    /// When it was created.
    pub created: Option<SystemTime>,
    /// `State.Health`: the image's or the create's own Docker `HEALTHCHECK`, when it has one.
    pub health: Option<DockerHealth>,
}

/// Docker's own health-check state of a container (`State.Health` in inspect).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerHealth {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures (`FailingStreak`).
    pub failing_streak: u64,
    /// The output of the latest run, if Docker kept one.
    pub last_output: Option<String>,
    /// The latest run's exit code.
    pub last_exit_code: Option<i64>,
    /// When the latest run ended.
    pub last_end: Option<SystemTime>,
}

/// A command to run inside a running container (`docker exec`), for a health check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Extra environment, `NAME=value`.
    pub env: Vec<String>,
    /// The user to run as (Docker's `--user`, resolved in the container); the container's own
    /// user when `None`.
    pub user: Option<String>,
    /// How long it may run once started: then its process is killed (SIGKILL), so a hung
    /// command does not stay behind in the container. Unbounded when `None`.
    pub timeout: Option<Duration>,
}

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecResult {
    /// Its exit code (137 when it was killed for its timeout).
    pub exit_code: i64,
    /// Whether it ran past its [`ExecSpec::timeout`] and was killed.
    pub timed_out: bool,
    /// The last [`EXEC_OUTPUT_LIMIT`] bytes of its stdout and stderr, interleaved as received.
    pub output: Vec<u8>,
}

/// How much of an exec's output is kept: the tail, so a chatty check cannot grow the agent.
pub const EXEC_OUTPUT_LIMIT: usize = 512;

/// The CPU and memory limits in force for a container, as its cgroup files or Docker's
/// `HostConfig` report them. `None` is "no such limit" (or, for the shares, not readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Enforced {
    /// CPU shares (`cpu.shares`; Docker's 0 is the kernel's 1024).
    pub cpu_shares: Option<u64>,
    /// CFS quota in µs per period; `None` when there is no quota.
    pub cpu_quota_us: Option<u64>,
    /// CFS period in µs.
    pub cpu_period_us: Option<u64>,
    /// Memory hard limit in bytes; `None` when unlimited.
    pub memory: Option<u64>,
    /// Memory reservation (soft limit) in bytes; `None` when there is none.
    pub memory_reservation: Option<u64>,
}

impl Enforced {
    /// From Docker's `HostConfig` values, where 0 or a negative number means "not set".
    pub fn from_host_config(
        cpu_shares: Option<i64>,
        cpu_quota: Option<i64>,
        cpu_period: Option<i64>,
        memory: Option<i64>,
        memory_reservation: Option<i64>,
    ) -> Enforced {
        let set = |v: Option<i64>| v.filter(|v| *v > 0).map(|v| v as u64);
        Enforced {
            // Docker leaves the kernel's default when told 0.
            cpu_shares: Some(set(cpu_shares).unwrap_or(1024)),
            cpu_quota_us: set(cpu_quota),
            cpu_period_us: Some(set(cpu_period).unwrap_or(100_000)),
            memory: set(memory),
            memory_reservation: set(memory_reservation),
        }
    }
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Docker's id.
    pub id: String,
    /// Names without the leading `/`.
    pub names: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `State`: `created`, `running`, `exited`, ...
    pub state: String,
    /// Creation time.
    pub created: Option<SystemTime>,
}

/// A snapshot of a pull's progress, summed over layers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PullProgress {
    /// Layers announced.
    pub layers: usize,
    /// Layers finished (pulled or already present).
    pub layers_done: usize,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes to download, as far as known.
    pub download_total: u64,
    /// Bytes extracted.
    pub extracted: u64,
    /// The latest status line.
    pub status: String,
}

impl PullProgress {
    /// Whether `self` shows any progress over `before` (bytes, layers, or a new status; Extracting
    /// counts, so a long unpack is not mistaken for a hung pull).
    pub fn advanced_from(&self, before: &PullProgress) -> bool {
        self.downloaded != before.downloaded
            || self.extracted != before.extracted
            || self.layers_done != before.layers_done
            || self.layers != before.layers
            || self.status != before.status
    }
}

impl fmt::Display for PullProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} layers, {}/{} bytes downloaded, {} extracted",
            self.layers_done, self.layers, self.downloaded, self.download_total, self.extracted
        )
    }
}

/// Which output stream a log chunk is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// stdout (and everything of a TTY container).
    Stdout,
    /// stderr.
    Stderr,
}

/// A piece of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Which stream.
    pub kind: OutputKind,
    /// Docker's timestamp for the entry (logs requested with timestamps).
    pub timestamp: Option<SystemTime>,
    /// The bytes.
    pub data: Bytes,
}

/// A container's output as a stream of chunks.
pub type OutputStreamBox = BoxStream<'static, Result<OutputChunk, EngineError>>;

/// One-shot statistics of a running container, in the daemon's terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsSample {
    /// Time in user mode, nanoseconds.
    pub cpu_user_ns: Option<u64>,
    /// Time in kernel mode, nanoseconds.
    pub cpu_system_ns: Option<u64>,
    /// CFS periods.
    pub cfs_periods: Option<u64>,
    /// Throttled CFS periods.
    pub cfs_throttled_periods: Option<u64>,
    /// Throttled time, nanoseconds.
    pub cfs_throttled_ns: Option<u64>,
    /// Memory usage as Docker reports it.
    pub mem_usage: Option<u64>,
    /// `memory_stats.stats` (cgroup v1: `rss`, `cache`, ...; v2: `anon`, `file`, ...).
    pub mem_stats: BTreeMap<String, u64>,
    /// `pids_stats.current`: tasks (threads) in the cgroup.
    pub tasks: Option<u64>,
    /// Network counters summed over interfaces: rx/tx bytes, packets, errors, dropped.
    pub net: Option<NetCounters>,
}

/// Network counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    /// Received bytes.
    pub rx_bytes: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Received packets.
    pub rx_packets: u64,
    /// Sent packets.
    pub tx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Dropped on receive, when the daemon reports it.
    pub rx_dropped: Option<u64>,
    /// Dropped on send, when the daemon reports it.
    pub tx_dropped: Option<u64>,
}

/// A live resource change (`POST /containers/{id}/update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceUpdate {
    /// `CpuShares`.
    pub cpu_shares: Option<i64>,
    /// `CpuQuota` (-1 removes it).
    pub cpu_quota: Option<i64>,
    /// `CpuPeriod`.
    pub cpu_period: Option<i64>,
    /// `Memory` (hard limit).
    pub memory: Option<i64>,
    /// `MemoryReservation`.
    pub memory_reservation: Option<i64>,
    /// `MemorySwap`; sent with `memory` so raising and lowering both work.
    pub memory_swap: Option<i64>,
}

/// The Docker operations the containerizer uses.
///
/// Futures borrow `self` and their arguments; streams are `'static` so they can outlive the call
/// (dropping a pull stream must abort the daemon-side pull).
pub trait Engine: Send + Sync + 'static {
    /// Whether `image` exists locally.
    fn image_present<'a>(&'a self, image: &'a str) -> BoxFut<'a, Result<bool, EngineError>>;
    /// Pulls `image`; the stream ends when the pull is complete. Dropping it aborts the pull.
    fn pull(&self, image: &str) -> BoxStream<'static, Result<PullProgress, EngineError>>;
    /// Creates a container named `name`; returns Docker's id.
    fn create<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CreateSpec,
    ) -> BoxFut<'a, Result<String, EngineError>>;
    /// Starts a created container.
    fn start<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>>;
    /// Inspects a container by id or name.
    fn inspect<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Inspected, EngineError>>;
    /// Waits until the container is not running; returns its exit code.
    fn wait<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<i64, EngineError>>;
    /// Sends `signal` (a number) to the container's main process.
    fn kill<'a>(&'a self, id: &'a str, signal: i32) -> BoxFut<'a, Result<(), EngineError>>;
    /// Stops the container: its stop signal, then SIGKILL after `grace`.
    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFut<'a, Result<(), EngineError>>;
    /// Removes the container (forced, with its anonymous volumes); a missing one is success.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>>;
    /// Every container (running or not) that carries the label `key` (any value).
    fn list_labelled<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFut<'a, Result<Vec<ContainerSummary>, EngineError>>;
    /// The container's output from Docker's copy, timestamped, from `since` (the start when
    /// `None`): with `follow` until it exits, else what the copy holds now.
    fn logs(
        &self,
        id: &str,
        tty: bool,
        since: Option<SystemTime>,
        follow: bool,
    ) -> BoxStream<'static, Result<OutputChunk, EngineError>>;
    /// Attaches to the container's stdout and stderr (the console of a TTY container): once the
    /// future resolves every byte the container writes from then on is in the stream, raw and
    /// untimed, as it is written; the stream ends when the container's output ends (it exited).
    /// Attach before starting the container to get all of it. `tty`: whether it was created
    /// with a TTY (its output is then one raw stream, not multiplexed).
    fn attach_output<'a>(
        &'a self,
        id: &'a str,
        tty: bool,
    ) -> BoxFut<'a, Result<OutputStreamBox, EngineError>>;
    /// One-shot statistics.
    fn stats<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<StatsSample, EngineError>>;
    /// Number of processes in the container.
    fn processes<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<u64, EngineError>>;
    /// Runs `exec` in the running container `id` to its end: its exit code and the tail of its
    /// output. Bounded by `exec.timeout`, after which the process is killed (Docker has no call
    /// to kill an exec: dropping the future instead leaves the command running in the
    /// container).
    fn exec<'a>(
        &'a self,
        id: &'a str,
        exec: &'a ExecSpec,
    ) -> BoxFut<'a, Result<ExecResult, EngineError>>;
    /// Changes resources live.
    fn update<'a>(
        &'a self,
        id: &'a str,
        update: &'a ResourceUpdate,
    ) -> BoxFut<'a, Result<(), EngineError>>;
    /// The named volume `name`, or `None` when it does not exist.
    fn volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<VolumeInfo>, EngineError>>;
    /// Sets the window size of a running TTY container's terminal.
    fn resize_tty<'a>(
        &'a self,
        id: &'a str,
        size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>>;
    /// Attaches to the stdin of the running container `id` (created with it open: a TTY
    /// container).
    fn attach_input<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<InputBox, EngineError>>;
    /// Starts `exec` in the running container `id`, attached: every byte it writes is in the
    /// output stream.
    fn start_exec<'a>(
        &'a self,
        id: &'a str,
        exec: &'a SessionExec,
    ) -> BoxFut<'a, Result<StartedExec, EngineError>>;
    /// The state of the exec instance `exec_id`.
    fn exec_state<'a>(&'a self, exec_id: &'a str) -> BoxFut<'a, Result<ExecState, EngineError>>;
    /// Sets the window size of a running exec instance's TTY.
    fn resize_exec<'a>(
        &'a self,
        exec_id: &'a str,
        size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>>;
}

/// A command to start in a running container for an interactive session (`docker exec`, for
/// Mesos's `LAUNCH_NESTED_CONTAINER_SESSION`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionExec {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Extra environment, `NAME=value`.
    pub env: Vec<String>,
    /// The user to run as; the container's own when `None`.
    pub user: Option<String>,
    /// Run it on a TTY (its output is then one console stream).
    pub tty: bool,
    /// Attach its stdin (else it reads end-of-file).
    pub stdin: bool,
}

/// A writable stdin (a session's or a container's): shutting it down sends end-of-file.
pub type InputBox = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// A started session exec.
pub struct StartedExec {
    /// Docker's id of the exec instance.
    pub exec_id: String,
    /// Its output, as it is written; ends when the command ends.
    pub output: OutputStreamBox,
    /// Its stdin, when attached (shutting it down sends end-of-file).
    pub input: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
}

impl fmt::Debug for StartedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartedExec")
            .field("exec_id", &self.exec_id)
            .field("input", &self.input.is_some())
            .finish()
    }
}

/// An exec instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecState {
    /// Whether its command runs.
    pub running: bool,
    /// Its exit code once it exited (128 + the signal when a signal ended it), as Docker
    /// reports it. Before the process starts Docker also reads "not running" (with code 0):
    /// only a `pid` (or the end of its output) says it has started.
    pub exit_code: Option<i64>,
    /// Its process on the host, once started.
    pub pid: Option<u32>,
}

/// An existing named volume, as far as the caller policy needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Its driver, e.g. `local`.
    pub driver: String,
    /// The driver options it was created with.
    pub options: std::collections::BTreeMap<String, String>,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
}
