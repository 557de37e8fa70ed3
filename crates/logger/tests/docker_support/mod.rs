//! The containerizer's side of logging, in miniature: run a container on the test bed's daemon
//! with the logger's Docker log settings, and feed its log frames to a `ContainerLog`.
//! Shared by the Docker integration tests and the benchmark (included with `#[path]`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::SystemTime;

use berth_docker_api::{
    ContainerConfig, Docker, Endpoint, HostConfig, LogConfig, LogFrame, LogStream, LogsOptions,
    WaitCondition,
};
use berth_logger::{ContainerLog, DockerLogConfig, LoggerError, OutputChunk, OutputStream};
use futures_core::Stream;
use futures_util::StreamExt;

/// A client for the test bed's daemon.
pub async fn docker() -> Docker {
    let tb = berth_testbed::testbed();
    let endpoint = Endpoint::parse(&tb.docker_host).expect("test bed docker_host parses");
    Docker::connect(endpoint).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the test bed's daemon at {}: {e}",
            tb.docker_host
        )
    })
}

/// What a test container runs.
pub struct Run<'a> {
    /// Label value (the test's name) for cleanup.
    pub test: &'a str,
    /// `sh -c` script.
    pub script: &'a str,
    /// Allocate a TTY.
    pub tty: bool,
    /// Environment (`K=V`).
    pub env: Vec<String>,
    /// Docker log driver settings.
    pub log_config: DockerLogConfig,
}

/// Creates and starts a busybox container running `run.script`; returns its id.
pub async fn start(docker: &Docker, run: Run<'_>) -> String {
    let id = create(docker, run).await;
    docker
        .containers()
        .start(&id)
        .await
        .expect("start test container");
    id
}

/// Creates (does not start) a busybox container running `run.script`; returns its id.
#[allow(dead_code)] // not every user of this module starts containers separately
pub async fn create(docker: &Docker, run: Run<'_>) -> String {
    let tb = berth_testbed::testbed();
    let config = ContainerConfig {
        image: Some(tb.images.busybox.clone()),
        cmd: Some(vec!["sh".into(), "-c".into(), run.script.into()]),
        env: Some(run.env),
        tty: Some(run.tty),
        labels: Some(HashMap::from([(
            berth_testbed::TEST_LABEL.to_owned(),
            run.test.to_owned(),
        )])),
        host_config: Some(HostConfig {
            log_config: Some(LogConfig {
                kind: Some(run.log_config.driver.clone()),
                config: Some(run.log_config.options.clone().into_iter().collect()),
            }),
            ..HostConfig::default()
        }),
        ..ContainerConfig::default()
    };
    let created = docker
        .containers()
        .create(None, &config)
        .await
        .expect("create test container");
    created.id
}

/// Maps Docker's frames onto the logger's chunks (a TTY's console and stdin echo count as stdout).
pub fn chunks(
    frames: impl Stream<Item = berth_docker_api::Result<LogFrame>>,
) -> impl Stream<Item = berth_docker_api::Result<OutputChunk>> {
    frames.map(|f| {
        f.map(|f| {
            let stream = match f.stream {
                LogStream::Stderr => OutputStream::Stderr,
                LogStream::Stdout | LogStream::Console | LogStream::Stdin => OutputStream::Stdout,
            };
            OutputChunk {
                stream,
                timestamp: f.timestamp,
                data: f.data,
            }
        })
    })
}

/// The followed log stream from where `log` says to resume.
pub fn follow_from(
    docker: &Docker,
    id: &str,
    since: Option<SystemTime>,
) -> impl Stream<Item = berth_docker_api::Result<OutputChunk>> {
    let options = LogsOptions {
        follow: true,
        timestamps: true,
        since,
        ..LogsOptions::default()
    };
    chunks(docker.containers().logs(id, &options))
}

/// Consumes the container's output until its log stream ends, reconnecting after stream
/// errors; returns the number of reconnects.
pub async fn consume_until_exit(docker: &Docker, id: &str, log: &mut ContainerLog) -> usize {
    let mut reconnects = 0;
    loop {
        match log
            .consume(follow_from(docker, id, log.resume_since()))
            .await
        {
            Ok(()) => return reconnects,
            Err(LoggerError::Source { source, .. }) if reconnects < 5 => {
                eprintln!("log stream failed, reconnecting: {source}");
                reconnects += 1;
            }
            Err(e) => panic!("logging container {id}: {e}"),
        }
    }
}

/// Waits for the container to stop; returns its exit code.
pub async fn wait_exit(docker: &Docker, id: &str) -> i64 {
    docker
        .containers()
        .wait(id, WaitCondition::NotRunning)
        .await
        .expect("wait for test container")
        .status_code
}
