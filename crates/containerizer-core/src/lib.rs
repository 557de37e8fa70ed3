//! The Docker containerizer: Mesos's `Containerizer` interface and `DockerContainerizer`,
//! rebuilt on the Docker Engine API.
//!
//! - [`Containerizer`]: `recover`, `launch`, `wait`, `destroy`, `kill`, `remove`, `update`,
//!   `usage`, `status`, `containers`; every call implemented; `shutdown` for an agent restart.
//! - [`state`]: the per-container state machine (FETCHING, PULLING, MOUNTING, RUNNING,
//!   DESTROYING, then terminated), one enum with every transition in one place.
//! - [`mapping`]: a [`LaunchSpec`] to a Docker create body (Mesos's `RunOptions`, done right).
//! - [`Engine`], [`Fetch`], [`Logs`]: the seams to Docker, the fetcher and the logger.
//! - [`checkpoint`]: versioned, atomically written per-container checkpoints for recovery.
//!
//! # Example
//!
//! Mapping a Mesos-style launch onto a Docker create body:
//!
//! ```
//! use std::collections::BTreeMap;
//! use berth_containerizer::mapping::{map_launch, LogConfigSpec, MappingContext};
//! use berth_containerizer::{AgentId, CommandInfo, ContainerId, LaunchSpec};
//!
//! let agent = AgentId::new("agent-1")?;
//! let id = ContainerId::new("task-42")?;
//! let mut spec = LaunchSpec::docker("busybox:latest", CommandInfo::shell("echo hello"), "/var/sandboxes/task-42");
//! spec.resources.cpus = Some(0.5);
//! spec.resources.mem_mb = Some(64.0);
//! let ctx = MappingContext {
//!     agent_id: &agent,
//!     container_id: &id,
//!     name: "berth-task-42",
//!     mapped_sandbox: "/mnt/mesos/sandbox",
//!     allowed_host_roots: &[],
//!     allow_privileged: false,
//!     allowances: &Default::default(),
//!     cfs: true,
//!     host_memory: None,
//!     log_config: &LogConfigSpec::default(),
//!     extra_labels: &BTreeMap::new(),
//! };
//! let mapped = map_launch(&spec, &ctx)?;
//! assert_eq!(mapped.create.cmd, Some(vec!["echo hello".to_owned()]));
//! assert_eq!(mapped.create.host.cpu_shares, Some(512));
//! assert_eq!(mapped.create.host.cpu_quota, Some(50_000));
//! assert!(mapped.create.env.contains(&"MESOS_SANDBOX=/mnt/mesos/sandbox".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adapters;
mod cgroup;
pub mod changes;
pub mod checkpoint;
mod config;
mod containerizer;
mod docker_engine;
pub mod engine;
mod error;
mod exec_process;
pub mod health;
mod hostpath;
mod id;
pub mod labels;
pub mod mapping;
pub mod pull;
mod retry;
mod seams;
pub mod spec;
pub mod state;
pub mod termination;
pub mod usage;

#[cfg(test)]
mod testing;

pub use adapters::{log_config_spec, FetcherAdapter, LogResumeMetrics, LoggerAdapter};
pub use changes::{Change, ChangeKind};
pub use config::{Config, OrphanPolicy};
pub use containerizer::{
    AttachedOutput, Containerizer, FlushReport, Launched, OrphanAction, OrphanOutcome,
    RecoveryReport, SessionEnd, SessionInput, SessionIo, SessionOutput, SessionStatus,
    ShutdownReport, LIVE_OUTPUT_BUFFER, MAX_SESSIONS, MAX_SESSIONS_PER_CONTAINER,
};
pub use docker_engine::{create_body, DockerEngine};
pub use engine::{
    BoxFut, BoxStream, Engine, EngineError, EngineErrorKind, ExecState, OutputChunk, OutputKind,
    PullProgress, SessionExec, StartedExec,
};
pub use error::{CheckpointError, Error, IdError, Result};
pub use health::{Check, Health, HealthCheck, HealthSource, HealthState};
pub use id::{AgentId, ContainerId};
pub use seams::{
    Fetch, FetchPhase, FetchProgress, FetchProgressFn, LiveOutput, LogTarget, Logs, NoFetch,
    OpenOutput,
};
pub use spec::{
    CommandInfo, ContainerInfo, DockerInfo, LaunchSpec, Limit, Limits, Network, Resources, Uri,
    Volume, WindowSize,
};
pub use state::Phase;
pub use termination::{Reason, TaskState, Termination};
pub use usage::{ContainerStatus, ResourceStatistics};
