//! The [`ContainerLogger`] trait and its two implementations.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_safe_fs::Dir;

use crate::checkpoint::{check_container_id, CheckpointStore, Phase, Totals};
use crate::docker_log::DockerLogConfig;
use crate::error::LoggerError;
use crate::file::StreamFile;
use crate::log::ContainerLog;
use crate::metrics::LoggerMetrics;
use crate::position::Position;
use crate::recovery::{reconcile, Reconciled};
use crate::settings::{apply_overrides, Rotation, StreamRotations, DEFAULT_KEEP, DEFAULT_MAX_SIZE};
use crate::user::{self, Owner};
use crate::writer::{Tuning, Writer};
use crate::OutputStream;

/// What the logger needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogSpec {
    /// The container's id; keys its checkpoint (and named its checkpoint file in earlier
    /// versions), so it may only contain ASCII letters, digits, `-`, `_` and `.` (not first).
    pub container_id: String,
    /// The sandbox directory, which must exist (as a directory, not a link to one); the log
    /// files go directly in it. The container may write there: the logger opens it once and
    /// reaches its files without following links or opening anything but regular files (see
    /// the crate documentation, "A hostile sandbox").
    pub sandbox: PathBuf,
    /// Who should own the log files (`name`, `uid`, `name:group`, `uid:gid`); `None` leaves them
    /// to the agent's user.
    pub user: Option<String>,
    /// The container's environment; only `CONTAINER_LOGGER_*` variables are looked at (see
    /// [`crate::settings`]).
    pub env: BTreeMap<String, String>,
}

impl ContainerLogSpec {
    /// A spec with no user and no environment.
    pub fn new(container_id: impl Into<String>, sandbox: impl Into<PathBuf>) -> Self {
        ContainerLogSpec {
            container_id: container_id.into(),
            sandbox: sandbox.into(),
            user: None,
            env: BTreeMap::new(),
        }
    }

    /// Sets the user who should own the files.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Adds environment variables given Docker's way, as `KEY=value` entries (later ones win;
    /// an entry without `=` is a variable with an empty value).
    pub fn with_env_entries<S: AsRef<str>>(mut self, entries: impl IntoIterator<Item = S>) -> Self {
        for e in entries {
            let e = e.as_ref();
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            self.env.insert(k.to_owned(), v.to_owned());
        }
        self
    }

    /// Adds environment variables (later ones win).
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
}

/// Settings shared by all containers of one logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerConfig {
    /// Directory of the logger's checkpoints: one journal, `<state_dir>/checkpoints.journal`,
    /// holding every container's checkpoint (`<container_id>.json` files of earlier versions are
    /// still read, then removed). It should be the agent's own, outside any sandbox, so a
    /// container cannot tamper with it, and only one logger may use it at a time (the agent's
    /// lock on its work directory ensures that).
    pub state_dir: PathBuf,
    /// Largest batch gathered while the previous one is written (default 256 KiB). The logger
    /// holds at most two, so this bounds its memory per container.
    pub batch_bytes: usize,
    /// How long a small batch waits for more output before it is written (default 5 ms). Output
    /// reaches the files at most this late, and a container printing in small pieces costs one
    /// hand-over to the writer thread per this interval instead of one per piece. A batch of a
    /// quarter of `batch_bytes` is written at once.
    pub flush_delay: Duration,
    /// How often the position is checkpointed while output flows (default 1 s). Also after each
    /// rotation and at [`ContainerLog::finish`].
    pub checkpoint_interval: Duration,
    /// How long a failing write is retried before its bytes are dropped (default 10 s).
    pub retry_window: Duration,
    /// Sync the log files' data to disk before every checkpoint and store every checkpoint
    /// durably (default off). Off, an agent restart loses nothing, but a host crash may lose the
    /// last seconds of output and the checkpoints of the last seconds (recovery then falls back
    /// to an older checkpoint, or to none; see the crate documentation); on, costs an
    /// `fdatasync` of each file written to and a (shared) one of the journal per checkpoint.
    pub durable_checkpoints: bool,
    /// The Docker log driver settings reported by [`ContainerLogger::docker_log_config`].
    pub docker_log: DockerLogConfig,
}

impl LoggerConfig {
    /// Defaults, with checkpoints in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        LoggerConfig {
            state_dir: state_dir.into(),
            batch_bytes: 256 * 1024,
            flush_delay: Duration::from_millis(5),
            checkpoint_interval: Duration::from_secs(1),
            retry_window: Duration::from_secs(10),
            durable_checkpoints: false,
            docker_log: DockerLogConfig::default(),
        }
    }

    fn validate(&self) -> Result<(), LoggerError> {
        let bad = |what, reason: &str| {
            Err(LoggerError::InvalidConfig {
                what,
                reason: reason.into(),
            })
        };
        if self.batch_bytes == 0 {
            return bad("batch_bytes", "must be at least 1");
        }
        if self.checkpoint_interval.is_zero() {
            return bad("checkpoint_interval", "must be longer than zero");
        }
        Ok(())
    }
}

/// A container logger: turns a container's output stream into files in its sandbox.
///
/// The containerizer holds one (`Arc<dyn ContainerLogger>`) for all containers:
///
/// 1. before creating a container, [`prepare`](Self::prepare) it: this validates the container's
///    `CONTAINER_LOGGER_*` settings (an unknown variable fails the launch), opens the files and
///    stores the first checkpoint; create the container with
///    [`docker_log_config`](Self::docker_log_config);
/// 2. stream its logs (follow, stdout, stderr, timestamps, `since` =
///    [`ContainerLog::resume_since`]) into [`ContainerLog::consume`];
/// 3. when it exits, [`ContainerLog::finish`] — drain and fsync — and only then report the
///    termination;
/// 4. after an agent restart, [`recover`](Self::recover) each known container and go to 2;
/// 5. when the container is gone for good, [`forget`](Self::forget) it.
///
/// `prepare`, `recover` and `forget` do a few small file operations synchronously, including
/// appending their record to the logger's checkpoint journal (a `write` on the calling thread),
/// and wait for an fsync for `recover` (and for a `prepare` that replaces an earlier checkpoint
/// of the same id). `prepare` and `recover` work in the sandbox, which the container writes:
/// nothing there can block them (no FIFO is opened), but taking back a name the container
/// filled (a directory tree) or a slow disk can take time, so call them from a blocking thread
/// (`tokio::task::spawn_blocking`), as Berth's containerizer does.
pub trait ContainerLogger: Send + Sync + fmt::Debug {
    /// The rotation a container with environment `env` gets, or the error naming a bad or
    /// unknown `CONTAINER_LOGGER_*` variable.
    fn rotations(&self, env: &BTreeMap<String, String>) -> Result<StreamRotations, LoggerError>;

    /// Opens a new container's log: files `<sandbox>/stdout` and `<sandbox>/stderr` (appended to
    /// if they exist), and a fresh checkpoint (replacing any earlier one for this id). The
    /// checkpoint is written but not fsynced: after a host crash before the container's first
    /// durable checkpoint, [`recover`](Self::recover) may find none.
    fn prepare(&self, spec: &ContainerLogSpec) -> Result<ContainerLog, LoggerError>;

    /// Reopens the log of a container that was being logged before the agent restarted: cuts
    /// the files back to the last checkpoint (undoing later rotations) so that consuming from
    /// [`ContainerLog::resume_since`] continues without gap or duplicate. Without a checkpoint
    /// (never prepared, forgotten, or lost in a host crash before it was durable) it returns
    /// [`LoggerError::NoCheckpoint`] and touches nothing.
    fn recover(&self, spec: &ContainerLogSpec) -> Result<ContainerLog, LoggerError>;

    /// Removes a container's checkpoint (not its log files, which belong to the sandbox). The
    /// removal is not fsynced: after a host crash the checkpoint may be back (harmless, it
    /// takes a few hundred bytes).
    fn forget(&self, container_id: &str) -> Result<(), LoggerError>;

    /// The log driver settings to create every container with.
    fn docker_log_config(&self) -> DockerLogConfig;

    /// The logger's counters.
    fn metrics(&self) -> Arc<LoggerMetrics>;
}

/// The default logger, as Mesos' sandbox logger: `<sandbox>/stdout` and `<sandbox>/stderr`
/// grow without limit. Known `CONTAINER_LOGGER_*` size variables are accepted and ignored (with a
/// warning); unknown ones are still errors.
#[derive(Debug)]
pub struct SandboxLogger {
    core: Core,
}

impl SandboxLogger {
    /// A sandbox logger with the given settings. Opens (creating it if needed) the checkpoint
    /// journal in [`LoggerConfig::state_dir`] and reads it.
    pub fn new(config: LoggerConfig) -> Result<Self, LoggerError> {
        Ok(SandboxLogger {
            core: Core::new(config, StreamRotations::both(Rotation::Never))?,
        })
    }
}

/// A logger that rotates each stream by size, in-process: `stdout` is current, `stdout.1` the
/// newest rotated file, up to `stdout.<keep>`; older ones are deleted. Containers may override
/// size and keep count per stream through their environment (see [`crate::settings`]).
#[derive(Debug)]
pub struct RotatingLogger {
    core: Core,
}

impl RotatingLogger {
    /// A rotating logger with the given default rotation. Opens (creating it if needed) the
    /// checkpoint journal in [`LoggerConfig::state_dir`] and reads it.
    pub fn new(config: LoggerConfig, defaults: StreamRotations) -> Result<Self, LoggerError> {
        Ok(RotatingLogger {
            core: Core::new(config, defaults)?,
        })
    }

    /// A rotating logger with Mesos' default size (10 MiB per file) and
    /// [`DEFAULT_KEEP`] rotated files per stream.
    pub fn with_defaults(config: LoggerConfig) -> Result<Self, LoggerError> {
        Self::new(
            config,
            StreamRotations::both(Rotation::by_size(DEFAULT_MAX_SIZE, DEFAULT_KEEP)?),
        )
    }
}

macro_rules! delegate_to_core {
    ($t:ty) => {
        impl ContainerLogger for $t {
            fn rotations(
                &self,
                env: &BTreeMap<String, String>,
            ) -> Result<StreamRotations, LoggerError> {
                apply_overrides(self.core.defaults, env)
            }
            fn prepare(&self, spec: &ContainerLogSpec) -> Result<ContainerLog, LoggerError> {
                self.core.prepare(spec)
            }
            fn recover(&self, spec: &ContainerLogSpec) -> Result<ContainerLog, LoggerError> {
                self.core.recover(spec)
            }
            fn forget(&self, container_id: &str) -> Result<(), LoggerError> {
                self.core.forget(container_id)
            }
            fn docker_log_config(&self) -> DockerLogConfig {
                self.core.config.docker_log.clone()
            }
            fn metrics(&self) -> Arc<LoggerMetrics> {
                self.core.metrics.clone()
            }
        }
    };
}
delegate_to_core!(SandboxLogger);
delegate_to_core!(RotatingLogger);

/// What both loggers share: only the default rotation differs.
#[derive(Debug)]
struct Core {
    config: LoggerConfig,
    defaults: StreamRotations,
    metrics: Arc<LoggerMetrics>,
    /// Every container's checkpoint, in one journal.
    checkpoints: Arc<CheckpointStore>,
}

/// A spec checked and resolved.
struct Resolved {
    rotations: StreamRotations,
    owner: Option<Owner>,
    /// The sandbox, opened once.
    sandbox: Arc<Dir>,
}

impl Core {
    fn new(config: LoggerConfig, defaults: StreamRotations) -> Result<Self, LoggerError> {
        config.validate()?;
        let checkpoints = Arc::new(CheckpointStore::open(&config.state_dir)?);
        Ok(Core {
            config,
            defaults,
            metrics: Arc::default(),
            checkpoints,
        })
    }

    fn tuning(&self) -> Tuning {
        Tuning {
            checkpoint_interval: self.config.checkpoint_interval,
            retry_window: self.config.retry_window,
            durable_checkpoints: self.config.durable_checkpoints,
        }
    }

    fn resolve(&self, spec: &ContainerLogSpec) -> Result<Resolved, LoggerError> {
        check_container_id(&spec.container_id)?;
        let rotations = apply_overrides(self.defaults, &spec.env)?;
        let owner = spec.user.as_deref().map(user::resolve).transpose()?;
        let sandbox = Dir::open(&spec.sandbox)
            .map_err(|e| LoggerError::io("use sandbox", &spec.sandbox, e))?;
        Ok(Resolved {
            rotations,
            owner,
            sandbox: Arc::new(sandbox),
        })
    }

    fn open_files(
        &self,
        spec: &ContainerLogSpec,
        r: &Resolved,
    ) -> Result<[StreamFile; 2], LoggerError> {
        let id: Arc<str> = spec.container_id.as_str().into();
        let open = |s: OutputStream| {
            StreamFile::open(
                r.sandbox.clone(),
                id.clone(),
                s,
                r.rotations.get(s),
                r.owner,
            )
            .map_err(|e| LoggerError::io("open log file", spec.sandbox.join(s.file_name()), e))
        };
        Ok([open(OutputStream::Stdout)?, open(OutputStream::Stderr)?])
    }

    fn prepare(&self, spec: &ContainerLogSpec) -> Result<ContainerLog, LoggerError> {
        let r = self.resolve(spec)?;
        let [stdout, stderr] = self.open_files(spec, &r)?;
        // Replacing an earlier checkpoint of this id durably: a host crash must not bring back
        // the earlier one, which describes other files.
        let replaces = self.checkpoints.contains(&spec.container_id);
        let mut writer = Writer::new(
            spec.container_id.clone(),
            stdout,
            stderr,
            Position::default(),
            Totals::default(),
            self.checkpoints.clone(),
            self.tuning(),
            self.metrics.clone(),
        );
        writer.initial_checkpoint(replaces)?;
        tracing::debug!(container_id = %spec.container_id, sandbox = %spec.sandbox.display(), rotations = ?r.rotations, "container log prepared");
        Ok(ContainerLog::new(
            writer,
            self.config.batch_bytes,
            self.config.flush_delay,
            self.config.checkpoint_interval,
            false,
            self.metrics.clone(),
        ))
    }

    fn recover(&self, spec: &ContainerLogSpec) -> Result<ContainerLog, LoggerError> {
        let r = self.resolve(spec)?;
        let cp = self
            .checkpoints
            .load(&spec.container_id)?
            .ok_or_else(|| self.checkpoints.missing(&spec.container_id))?;
        for (stream, record) in [
            (OutputStream::Stdout, cp.stdout),
            (OutputStream::Stderr, cp.stderr),
        ] {
            let scan = match r.rotations.get(stream) {
                Rotation::Never => 0,
                Rotation::BySize { keep, .. } => keep,
            };
            let outcome = reconcile(&r.sandbox, stream, scan, record)
                .map_err(|e| LoggerError::io("restore log files in", &spec.sandbox, e))?;
            let id = &spec.container_id;
            match outcome {
                Reconciled::Restored {
                    index,
                    truncated,
                    missing,
                } => {
                    tracing::info!(container_id = %id, %stream, undone_rotations = index, truncated, "log files restored to the last checkpoint");
                    if missing > 0 {
                        tracing::warn!(container_id = %id, %stream, missing, "log file is shorter than checkpointed: those bytes are lost");
                    }
                }
                Reconciled::NotFound => tracing::warn!(
                    container_id = %id, %stream,
                    "checkpointed log file is gone; output written after the last checkpoint will appear twice"
                ),
            }
        }
        let [stdout, stderr] = self.open_files(spec, &r)?;
        let mut writer = Writer::new(
            spec.container_id.clone(),
            stdout,
            stderr,
            cp.position,
            cp.totals,
            self.checkpoints.clone(),
            self.tuning(),
            self.metrics.clone(),
        );
        // Durably: the files were just cut back, and counting rotations towards the next
        // durable checkpoint starts here (see `crate::checkpoint`).
        writer.initial_checkpoint(true)?;
        Ok(ContainerLog::new(
            writer,
            self.config.batch_bytes,
            self.config.flush_delay,
            self.config.checkpoint_interval,
            cp.phase == Phase::Finished,
            self.metrics.clone(),
        ))
    }

    fn forget(&self, container_id: &str) -> Result<(), LoggerError> {
        check_container_id(container_id)?;
        self.checkpoints.remove(container_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_checked() {
        assert!(check_container_id("0f1e-uuid_x.1").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "..", &"x".repeat(201)] {
            assert!(check_container_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn docker_style_env_entries_are_split_at_the_first_equals() {
        let spec =
            ContainerLogSpec::new("c", "/tmp").with_env_entries(["A=1", "B=x=y", "C", "A=2"]);
        let got: Vec<_> = spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, [("A", "2"), ("B", "x=y"), ("C", "")]);
    }

    #[test]
    fn config_is_validated() {
        let mut c = LoggerConfig::new("/tmp/x");
        c.batch_bytes = 0;
        assert!(SandboxLogger::new(c)
            .unwrap_err()
            .to_string()
            .contains("batch_bytes"));
    }
}
