//! Berth: a Mesos-compatible agent for Docker containers.
//!
//! One binary, `berth`: `berth serve` runs the agent (the Mesos v1 agent operator API over
//! HTTP, on top of `berth-containerizer`), and the other subcommands are its command-line client
//! (`berth run` can also embed an agent in-process).
//!
//! The modules, from the wire inwards: [`api`] parses `Call`s strictly and shapes answers;
//! [`http`] routes, authenticates and serves; [`agent`] carries calls out on the containerizer
//! and serves sandboxes through [`files`]; [`runtime`] starts it all; [`cli`] and [`client`]
//! are the command line.
//!
//! # Example
//!
//! ```
//! use berth::api::{parse_call, Call};
//! use berth_containerizer::ContainerId;
//!
//! let call = parse_call(br#"{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"c1"}}}"#)?;
//! assert_eq!(call, Call::WaitContainer { container_id: ContainerId::new("c1").unwrap() });
//!
//! // Bad input is a 400 whose message names the field.
//! let err = parse_call(br#"{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"a/b"}}}"#).unwrap_err();
//! assert_eq!(err.status, 400);
//! assert!(err.message.contains("wait_container.container_id.value"));
//! # Ok::<(), berth::ApiError>(())
//! ```

pub mod agent;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod files;
pub mod http;
pub mod image;
pub mod jsonp;
pub mod logging;
pub mod mesos_schema;
pub mod metrics;
pub mod runtime;
pub mod units;

pub use error::{ApiError, ConfigError, Error, Result};
