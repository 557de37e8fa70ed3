//! Container stdout/stderr into sandbox files: byte-exact, bounded in memory, rotated, and
//! resumable after an agent restart.
//!
//! The logger knows nothing of Docker. It takes a `Stream` of [`OutputChunk`]s (stream, optional
//! Docker timestamp, bytes) and writes each stream into its own file in the container's sandbox:
//!
//! * [`SandboxLogger`] appends to `<sandbox>/stdout` and `<sandbox>/stderr`, like Mesos' default.
//! * [`RotatingLogger`] also rotates by size, in-process: `stdout` is current, `stdout.1` the
//!   newest rotated file, up to `stdout.N`. The rotated files from oldest to newest followed by
//!   the current file are exactly the stream, minus the files rotation deleted. A file is cut
//!   at a newline when one lies within a few KiB of the limit. Containers override the limits
//!   with `CONTAINER_LOGGER_MAX_STDOUT_SIZE`, `CONTAINER_LOGGER_MAX_STDERR_SIZE`,
//!   `CONTAINER_LOGGER_STDOUT_ROTATE` and `CONTAINER_LOGGER_STDERR_ROTATE` (see [`settings`]).
//!
//! Both implement [`ContainerLogger`], whose life cycle is prepare → consume → finish (drain and
//! fsync, so a termination is reported only once the logs are complete), plus recover after an
//! agent restart.
//!
//! # Memory and latency
//! A container's log holds at most two batches ([`LoggerConfig::batch_bytes`], 256 KiB by
//! default) plus one chunk: while one batch is written on a blocking thread the other fills, and
//! when both are full the output stream is not read until the disk catches up. The back-pressure
//! reaches the source, never the agent's memory: with Docker's attach stream the container's
//! writes block once Docker's per-attach buffer is full, as on a pipe, while Docker's own copy
//! ([`DockerLogConfig`]) is written meanwhile. Output reaches the files at most
//! [`LoggerConfig::flush_delay`] (5 ms) after it arrives, newline or not.
//!
//! # Durability
//! [`ContainerLog::finish`] syncs the files (current and rotated) that have bytes not synced
//! yet, then stores the final checkpoint durably; once it returns, the container's output is on
//! disk. A container without output costs no file sync. While output flows, data and
//! checkpoints are left to the kernel's writeback (enough for an agent restart, see
//! [`ContainerLog::resume_since`]) unless [`LoggerConfig::durable_checkpoints`] is set.
//!
//! # Recovery
//! Each log checkpoints its position — per stream the bytes consumed since the output's first
//! byte, a time to replay from (Docker's `since`) and how many bytes of the replay were already
//! written — and which files hold it. An untimed live source (Docker's attach stream) resumes by
//! a replay from the start that skips the consumed bytes by count. All containers of a
//! logger share one checkpoint journal, `<state_dir>/checkpoints.journal`: a checkpoint is an
//! appended record, so it creates no file, and the fsyncs durable ones need are shared between
//! containers. After a restart, [`ContainerLogger::recover`] cuts the files back to the
//! checkpoint and [`ContainerLog::resume_since`] says where to reopen the stream; the replayed
//! bytes already written are skipped. The exact guarantee (no gap beyond what Docker dropped, no
//! duplicates under stated conditions) is on [`ContainerLog::resume_since`].
//!
//! An agent restart (even `kill -9`) loses no checkpoint: each is written to the journal before
//! the logger goes on. A host crash can lose the ones not fsynced yet: then recovery starts from
//! the newest checkpoint that reached the disk or, for a container none of whose checkpoints did
//! (prepared less than the kernel's writeback delay, about 30 s, before the crash, and not
//! finished), [`ContainerLogger::recover`] returns [`LoggerError::NoCheckpoint`]. See
//! [`ContainerLog::resume_since`] for what that costs.
//!
//! # Faults
//! A failing write (disk full, I/O error) is reported through `tracing` (one warning when it
//! starts, one message when it ends) and counted in [`LoggerMetrics`], and retried with backoff
//! for [`LoggerConfig::retry_window`] (10 s by default) while the stream waits. If it still fails
//! then, its bytes are dropped (counted in `bytes_dropped`), and from then on each write is tried
//! once and dropped on failure, until one succeeds: the log never blocks a container's termination
//! for longer than the retry window, and never crashes the agent. A log file deleted while in use
//! is created anew (within a checkpoint interval). Write errors never surface as `Err` from
//! [`ContainerLog::consume`]; only the stream's own errors do.
//!
//! # A hostile sandbox
//! The container may replace any of the names the logger writes with a symbolic or hard link, a
//! FIFO, a socket, a device node or a directory, at any moment; the agent runs as root. Every
//! file operation goes through a [`berth_safe_fs::Dir`] for the sandbox, opened once: no link
//! is followed, nothing but a regular file with a single link is opened, and nothing blocks. A
//! taken name is removed (only the name) and a new regular file made in its place, with a
//! warning naming the container and the `names_replaced` metric; see the README's "A hostile
//! sandbox".
//!
//! # Example
//! ```
//! use berth_logger::{ContainerLogSpec, ContainerLogger, LoggerConfig, OutputChunk, OutputStream, RotatingLogger};
//! use futures_util::stream;
//! use std::time::SystemTime;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let (state_dir, sandbox) = (tmp.path().join("state"), tmp.path().join("sandbox"));
//! # std::fs::create_dir(&sandbox)?;
//! let logger = RotatingLogger::with_defaults(LoggerConfig::new(&state_dir))?;
//! let spec = ContainerLogSpec::new("c1", &sandbox)
//!     .with_env([("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "2MB"), ("CONTAINER_LOGGER_STDOUT_ROTATE", "4")]);
//! let mut log = logger.prepare(&spec)?;
//! assert_eq!(log.resume_since(), None); // new container: read its output from the start
//!
//! // The containerizer maps Docker's log frames onto chunks.
//! let now = Some(SystemTime::now());
//! let frames = vec![
//!     Ok::<_, std::io::Error>(OutputChunk::new(OutputStream::Stdout, now, "hello\n")),
//!     Ok(OutputChunk::new(OutputStream::Stderr, now, "oops\n")),
//! ];
//! log.consume(stream::iter(frames)).await?;
//! let report = log.finish().await?; // drained and synced: now report the termination
//!
//! assert_eq!(std::fs::read(sandbox.join("stdout"))?, b"hello\n");
//! assert_eq!(std::fs::read(sandbox.join("stderr"))?, b"oops\n");
//! assert_eq!((report.stdout_bytes, report.stderr_bytes, report.complete), (6, 5, true));
//! # Ok(())
//! # }
//! ```

mod batch;
mod checkpoint;
mod chunk;
mod docker_log;
mod error;
mod file;
mod log;
mod logger;
mod metrics;
mod position;
mod recovery;
pub mod settings;
mod user;
mod writer;

pub use chunk::{OutputChunk, OutputStream};
pub use docker_log::{DockerLogConfig, DEFAULT_DOCKER_MAX_FILE, DEFAULT_DOCKER_MAX_SIZE};
pub use error::LoggerError;
pub use log::{ContainerLog, LogReport};
pub use logger::{ContainerLogSpec, ContainerLogger, LoggerConfig, RotatingLogger, SandboxLogger};
pub use metrics::{LoggerMetrics, MetricsSnapshot};
pub use settings::{Rotation, StreamRotations};
pub use user::{resolve as resolve_user, Owner};
