//! A typed async client for the Docker Engine API.
//!
//! `berth-docker-api` talks HTTP/1.1 to the daemon over its Unix socket (or plain TCP), with
//! the API version negotiated at connect time (the lower of the daemon's and
//! [`ApiVersion::CLIENT`]; daemons below API 1.40 are refused). It works with Docker 20.10
//! (API 1.41) through current releases.
//!
//! * **Types** ([`ContainerConfig`], [`HostConfig`], [`ContainerInspect`], ...) are plain serde
//!   structs, separate from the transport; unknown response fields are ignored.
//! * **Streams** (pull progress, logs, events, stats, attach) are [`futures_core::Stream`]s that
//!   start when first polled. Dropping one closes its connection, which cancels the request in
//!   the daemon; dropping a [`PullStream`] aborts the pull.
//! * **Deadlines**: short calls run under a per-client deadline ([`ClientOptions::timeout`],
//!   [`Docker::with_timeout`]); long-poll calls (wait, followed logs, events, pull, push,
//!   attach, streamed stats) are untimed and cancelled by dropping them.
//! * **Errors** are one [`Error`] enum separating not found, conflict, not modified, daemon
//!   errors, errors inside a 200 stream, socket problems, timeouts, lost connections and
//!   undecodable responses; [`Error::is_transient`] says what to retry. A container's non-zero
//!   exit code is data ([`WaitResponse::status_code`]), never an error.
//!
//! # Example
//!
//! ```no_run
//! use berth_docker_api::{ContainerConfig, Docker, LogsOptions, RemoveContainerOptions, WaitCondition};
//! use futures_util::StreamExt;
//!
//! # async fn run() -> berth_docker_api::Result<()> {
//! let docker = Docker::from_env().await?;
//! let config = ContainerConfig {
//!     image: Some("busybox:latest".into()),
//!     cmd: Some(vec!["sh".into(), "-c".into(), "echo hello; exit 3".into()]),
//!     ..Default::default()
//! };
//! let created = docker.containers().create(None, &config).await?;
//! docker.containers().start(&created.id).await?;
//! let exit = docker.containers().wait(&created.id, WaitCondition::NotRunning).await?;
//! assert_eq!(exit.status_code, 3); // data, not an error
//!
//! let mut logs = docker.containers().logs(&created.id, &LogsOptions::default());
//! while let Some(frame) = logs.next().await {
//!     let frame = frame?;
//!     println!("{:?}: {}", frame.stream, String::from_utf8_lossy(&frame.data));
//! }
//! docker.containers().remove(&created.id, RemoveContainerOptions { force: true, ..Default::default() }).await?;
//! # Ok(()) }
//! ```

/// The README's example, compiled as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod auth;
mod client;
mod containers;
pub mod decode;
mod endpoint;
mod error;
mod exec;
mod images;
mod query;
mod reference;
mod serde_util;
mod stream;
mod system;
pub mod time;
mod transport;
mod version;
mod volumes;

pub use auth::{DockerConfig, RegistryAuth};
pub use client::{ClientOptions, Docker};
pub use containers::*;
pub use decode::frames::{LogFrame, LogStream};
pub use endpoint::{Endpoint, DEFAULT_SOCKET};
pub use error::{Error, ResourceKind, Result};
pub use exec::{ExecConfig, ExecInspect, ExecOutput, ExecProcessConfig, Execs};
pub use images::*;
pub use query::Filters;
pub use reference::ImageReference;
pub use stream::{JsonStream, LogFrames};
pub use system::{
    Event, EventActor, EventsOptions, Info, Ping, RegistryConfig, Version, VersionComponent,
};
pub use transport::body::RequestBody;
pub use version::ApiVersion;
pub use volumes::{Volume, Volumes};
