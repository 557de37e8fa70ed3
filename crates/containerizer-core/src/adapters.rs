//! Adapters from the fetcher and logger crates to the [`Fetch`] and [`Logs`] seams.

use std::sync::Arc;
use std::time::Duration;

use berth_fetcher::{Checksum, FetchRequest, Fetcher, UriSpec};
use berth_logger::{ContainerLogSpec, ContainerLogger, DockerLogConfig, OutputStream};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::engine::{BoxFut, OutputKind};
use crate::id::ContainerId;
use crate::mapping::LogConfigSpec;
use crate::seams::{
    Fetch, FetchPhase, FetchProgress, FetchProgressFn, LogTarget, Logs, OpenOutput,
};
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

/// A fetcher event in the seam's terms.
fn fetch_progress(ev: &berth_fetcher::ProgressEvent) -> FetchProgress {
    use berth_fetcher::Phase as P;
    FetchProgress {
        index: ev.index,
        uri: ev.uri.to_string(),
        phase: match ev.phase {
            P::Downloading => FetchPhase::Downloading,
            P::Verifying => FetchPhase::Verifying,
            P::Extracting => FetchPhase::Extracting,
            P::Cached => FetchPhase::Cached,
            P::Done => FetchPhase::Done,
            // A phase this build does not know yet: still work in progress.
            _ => FetchPhase::Downloading,
        },
        bytes_done: ev.bytes_done,
        bytes_total: ev.bytes_total,
        elapsed: ev.elapsed,
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
        progress: FetchProgressFn,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            let mut request = FetchRequest::new(sandbox);
            for u in uris {
                request = request.uri(uri_spec(u)?);
            }
            if let Some(user) = user {
                request = request.user(user);
            }
            // The fetcher traces every event itself; here they only become the container's status.
            request = request.on_progress(move |ev| progress(fetch_progress(ev)));
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
        // The fetcher owns the naming of its staging entries; it removes what a fetch killed
        // with its process left behind.
        match berth_fetcher::remove_leftover_staging(sandbox) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(sandbox = %sandbox.display(), removed = n, "removed partial fetches left by a killed agent")
            }
            Err(e) => {
                tracing::warn!(sandbox = %sandbox.display(), error = %e, "cannot remove partial fetches")
            }
        }
    }
}

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

/// The logger's name for a container. The logger names its checkpoint after the id and refuses a
/// leading `.`, which the id rule allows; ids starting with `.` or `_` get a `_` in front. The
/// mapping is one-to-one (mapped names start with `_.` or `__`, which no unmapped id does) and
/// leaves every id that starts with a letter or digit as it is.
fn logger_key(id: &ContainerId) -> std::borrow::Cow<'_, str> {
    let s = id.as_str();
    if s.starts_with(['.', '_']) {
        std::borrow::Cow::Owned(format!("_{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn log_spec(target: &LogTarget) -> ContainerLogSpec {
    let mut spec = ContainerLogSpec::new(logger_key(&target.container), &target.sandbox)
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
        stop: CancellationToken,
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
                // Ends the stream when the agent stops: `consume` then returns with everything
                // read so far handed to the writer.
                let stream = open(log.resume_since())
                    .take_until(stop.clone().cancelled_owned())
                    .map(|item| {
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
                    Err(e) if attempt < reconnects && !stop.is_cancelled() => {
                        attempt += 1;
                        tracing::warn!(container = %id, error = %e, attempt, "container output stream broke; reopening");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(200) * attempt) => {}
                            () = stop.cancelled() => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "container output stream keeps breaking; giving up");
                        break;
                    }
                }
            }
            // Also on a stop: the files are synced and the checkpoint holds the exact position,
            // so the next agent resumes without a gap or a repeat.
            let report = log.finish().await.map_err(|e| e.to_string())?;
            if stop.is_cancelled() {
                tracing::debug!(container = %id, ?report, "container log flushed for an agent restart");
            } else {
                tracing::debug!(container = %id, ?report, "container log finished");
            }
            Ok(())
        })
    }

    fn forget(&self, container: &ContainerId) {
        if let Err(e) = self.logger.forget(&logger_key(container)) {
            tracing::warn!(container = %container, error = %e, "failed to forget the container's log state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineError, OutputChunk};
    use berth_logger::{LoggerConfig, SandboxLogger};
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    fn target(id: &str, sandbox: &std::path::Path) -> LogTarget {
        LogTarget {
            container: ContainerId::new(id).unwrap(),
            sandbox: sandbox.to_path_buf(),
            user: None,
            env: BTreeMap::new(),
        }
    }

    fn chunk(at: SystemTime, text: &str) -> OutputChunk {
        OutputChunk {
            kind: OutputKind::Stdout,
            timestamp: Some(at),
            data: bytes::Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    /// An output source like Docker's: every entry stamped at or after `since`.
    fn source(entries: Vec<OutputChunk>) -> OpenOutput {
        Arc::new(move |since| {
            let items: Vec<Result<OutputChunk, EngineError>> = entries
                .iter()
                .filter(|c| since.is_none_or(|s| c.timestamp.is_some_and(|t| t >= s)))
                .cloned()
                .map(Ok)
                .collect();
            Box::pin(futures_util::stream::iter(items))
        })
    }

    #[test]
    fn discarding_partials_removes_only_the_fetchers_staging() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(".berth-fetch-x1/inner")).unwrap();
        std::fs::write(tmp.path().join(".berth-fetch-x1/inner/part"), b"half").unwrap();
        std::fs::write(tmp.path().join("kept.txt"), b"user data").unwrap();
        let fetcher = Arc::new(berth_fetcher::Fetcher::builder().build().unwrap());
        FetcherAdapter::new(fetcher).discard_partials(tmp.path());
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["kept.txt"]);
    }

    #[test]
    fn logger_keys_are_one_to_one_and_keep_ordinary_ids() {
        let key = |s: &str| logger_key(&ContainerId::new(s).unwrap()).into_owned();
        assert_eq!(key("task-1"), "task-1");
        assert_eq!(key(".a"), "_.a");
        assert_eq!(key("_a"), "__a");
        assert_eq!(key("-a"), "-a");
        assert_eq!(key("..."), "_...");
        let ids = ["a", ".a", "_a", "_.a", "__a", "-", "_", ".", "x._"];
        let keys: std::collections::HashSet<String> =
            ids.iter().filter(|s| **s != ".").map(|s| key(s)).collect();
        assert_eq!(keys.len(), ids.len() - 1, "{keys:?}");
    }

    #[tokio::test]
    async fn ids_with_a_leading_dot_or_dash_are_logged() {
        let tmp = tempfile::tempdir().unwrap();
        let logger =
            Arc::new(SandboxLogger::new(LoggerConfig::new(tmp.path().join("logger"))).unwrap());
        let adapter = LoggerAdapter::new(logger);
        let now = SystemTime::now();
        for id in [".a", "-", "_"] {
            let sandbox = tmp.path().join(format!("sb{id}"));
            std::fs::create_dir_all(&sandbox).unwrap();
            let t = target(id, &sandbox);
            adapter.prepare(&t).unwrap();
            adapter
                .run(
                    t,
                    false,
                    source(vec![chunk(now, &format!("hi {id}\n"))]),
                    CancellationToken::new(),
                )
                .await
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(
                std::fs::read_to_string(sandbox.join("stdout")).unwrap(),
                format!("hi {id}\n")
            );
            adapter.forget(&ContainerId::new(id).unwrap());
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("logger"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "checkpoints left after forget: {left:?}");
    }
}
