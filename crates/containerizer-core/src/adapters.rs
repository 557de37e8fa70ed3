//! Adapters from the fetcher and logger crates to the [`Fetch`] and [`Logs`] seams.

use std::sync::Arc;
use std::time::Duration;

use berth_fetcher::{Checksum, FetchRequest, Fetcher, UriSpec};
use berth_logger::{ContainerLogSpec, ContainerLogger, DockerLogConfig, OutputStream};
use futures_util::StreamExt;

use crate::engine::{BoxFut, OutputKind};
use crate::id::ContainerId;
use crate::mapping::LogConfigSpec;
use crate::seams::{Fetch, LogTarget, Logs, OpenOutput};
use crate::spec::Uri;

/// [`Fetch`] over `berth-fetcher`.
#[derive(Debug, Clone)]
pub struct FetcherAdapter {
    fetcher: Arc<Fetcher>,
}

impl FetcherAdapter {
    /// Fetches with `fetcher`.
    pub fn new(fetcher: Arc<Fetcher>) -> FetcherAdapter {
        FetcherAdapter { fetcher }
    }
}

fn uri_spec(u: &Uri) -> Result<UriSpec, String> {
    let mut spec = UriSpec::new(u.value.clone())
        .executable(u.executable)
        .extract(u.extract)
        .cache(u.cache);
    if let Some(out) = &u.output_file {
        spec = spec.output_file(out.clone());
    }
    if let Some(sum) = &u.checksum {
        let parsed: Checksum = sum
            .parse()
            .map_err(|e| format!("URI '{}' has an invalid checksum '{sum}': {e}", u.value))?;
        spec = spec.checksum(parsed);
    }
    Ok(spec)
}

impl Fetch for FetcherAdapter {
    fn fetch<'a>(
        &'a self,
        container: &'a ContainerId,
        uris: &'a [Uri],
        sandbox: &'a std::path::Path,
        user: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            let mut request = FetchRequest::new(sandbox);
            for u in uris {
                request = request.uri(uri_spec(u)?);
            }
            if let Some(user) = user {
                request = request.user(user);
            }
            let id = container.clone();
            request = request.on_progress(move |ev| {
                tracing::debug!(container = %id, uri = %ev.uri, phase = ev.phase.as_str(), bytes = ev.bytes_done, "fetching");
            });
            match self.fetcher.fetch(request).await {
                Ok(report) => {
                    tracing::info!(container = %container, uris = report.fetched.len(), "fetched URIs");
                    Ok(())
                }
                // One line per failed URI, joined so the launch failure stays one line.
                Err(failure) => Err(failure.to_string().replace('\n', "; ")),
            }
        })
    }

    fn discard_partials(&self, sandbox: &std::path::Path) {
        // The fetcher stages every download under this prefix and renames it into place only
        // when complete; a staging entry that survived its process is garbage.
        let Ok(entries) = std::fs::read_dir(sandbox) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(FETCH_STAGING_PREFIX)
            {
                let path = entry.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed a partial fetch left by a killed agent")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove a partial fetch")
                    }
                }
            }
        }
    }
}

/// Prefix of `berth-fetcher`'s staging entries in a sandbox.
const FETCH_STAGING_PREFIX: &str = ".berth-fetch-";

/// [`Logs`] over a `berth-logger` [`ContainerLogger`].
#[derive(Debug)]
pub struct LoggerAdapter<L> {
    logger: Arc<L>,
    reconnects: u32,
}

impl<L: ContainerLogger + 'static> LoggerAdapter<L> {
    /// Logs with `logger`; a broken output stream is reopened up to 5 times.
    pub fn new(logger: Arc<L>) -> LoggerAdapter<L> {
        LoggerAdapter {
            logger,
            reconnects: 5,
        }
    }

    /// Docker's log driver settings the logger asks for, for [`Config::docker_log`](crate::Config).
    pub fn docker_log_config(&self) -> LogConfigSpec {
        log_config_spec(&self.logger.docker_log_config())
    }
}

/// The logger's Docker log driver settings in the mapping's type.
pub fn log_config_spec(c: &DockerLogConfig) -> LogConfigSpec {
    LogConfigSpec {
        driver: c.driver.clone(),
        options: c.options.clone(),
    }
}

fn log_spec(target: &LogTarget) -> ContainerLogSpec {
    let mut spec = ContainerLogSpec::new(target.container.as_str(), &target.sandbox)
        .with_env(target.env.clone());
    if let Some(user) = &target.user {
        spec = spec.with_user(user.clone());
    }
    spec
}

impl<L: ContainerLogger + 'static> Logs for LoggerAdapter<L> {
    fn prepare(&self, target: &LogTarget) -> Result<(), String> {
        self.logger
            .rotations(&target.env)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn run(
        &self,
        target: LogTarget,
        resume: bool,
        open: OpenOutput,
    ) -> BoxFut<'static, Result<(), String>> {
        let logger = self.logger.clone();
        let reconnects = self.reconnects;
        Box::pin(async move {
            let spec = log_spec(&target);
            let id = target.container.clone();
            let opened = if resume {
                logger.recover(&spec).or_else(|e| {
                    tracing::warn!(container = %id, error = %e, "cannot resume the log; starting it anew");
                    logger.prepare(&spec)
                })
            } else {
                logger.prepare(&spec)
            };
            let mut log = opened.map_err(|e| e.to_string())?;
            let mut attempt = 0;
            loop {
                let stream = open(log.resume_since()).map(|item| {
                    item.map(|c| {
                        let stream = match c.kind {
                            OutputKind::Stdout => OutputStream::Stdout,
                            OutputKind::Stderr => OutputStream::Stderr,
                        };
                        berth_logger::OutputChunk::new(stream, c.timestamp, c.data)
                    })
                });
                match log.consume(stream).await {
                    Ok(()) => break,
                    Err(e) if attempt < reconnects => {
                        attempt += 1;
                        tracing::warn!(container = %id, error = %e, attempt, "container output stream broke; reopening");
                        tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                    }
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "container output stream keeps breaking; giving up");
                        break;
                    }
                }
            }
            let report = log.finish().await.map_err(|e| e.to_string())?;
            tracing::debug!(container = %id, ?report, "container log finished");
            Ok(())
        })
    }

    fn forget(&self, container: &ContainerId) {
        if let Err(e) = self.logger.forget(container.as_str()) {
            tracing::warn!(container = %container, error = %e, "failed to forget the container's log state");
        }
    }
}
