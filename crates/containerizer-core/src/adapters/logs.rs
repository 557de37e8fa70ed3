//! [`LoggerAdapter`]: the [`Logs`] seam over a `berth-logger` [`ContainerLogger`].

use std::sync::Arc;
use std::time::Duration;

use berth_logger::{ContainerLogSpec, ContainerLogger, DockerLogConfig, OutputStream};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::engine::{BoxFut, EngineError, OutputChunk, OutputKind};
use crate::id::ContainerId;
use crate::mapping::LogConfigSpec;
use crate::seams::{LiveOutput, LogTarget, Logs, OpenOutput};

use super::resume::{resume_point, LogResumeMetrics};

/// [`Logs`] over a `berth-logger` [`ContainerLogger`].
#[derive(Debug)]
pub struct LoggerAdapter<L> {
    logger: Arc<L>,
    reconnects: u32,
    resume: Arc<LogResumeMetrics>,
}

impl<L: ContainerLogger + 'static> LoggerAdapter<L> {
    /// Logs with `logger`; a broken output stream is reopened up to 5 times.
    pub fn new(logger: Arc<L>) -> LoggerAdapter<L> {
        LoggerAdapter {
            logger,
            reconnects: 5,
            resume: Arc::default(),
        }
    }

    /// How often a log had to be resumed without its checkpoint (for the agent's metrics).
    pub fn resume_metrics(&self) -> Arc<LogResumeMetrics> {
        self.resume.clone()
    }

    /// Docker's log driver settings the logger asks for, for [`Config::docker_log`](crate::Config).
    pub fn docker_log_config(&self) -> LogConfigSpec {
        log_config_spec(&self.logger.docker_log_config())
    }
}

/// Whether Docker's copy (read from its start, without follow) still starts with each stream's
/// first bytes (`prefixes`); reads only as far as the comparison needs. A stream the copy holds
/// fewer bytes of (Docker still holds a partial line back) is not held against it.
async fn copy_starts_with(
    copy: impl futures_util::Stream<Item = Result<OutputChunk, EngineError>>,
    prefixes: &[Vec<u8>; 2],
) -> Result<bool, EngineError> {
    let mut seen: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut copy = std::pin::pin!(copy);
    while (0..2).any(|i| seen[i].len() < prefixes[i].len()) {
        let Some(chunk) = copy.next().await else {
            break;
        };
        let chunk = chunk?;
        let i = match chunk.kind {
            OutputKind::Stdout => 0,
            OutputKind::Stderr => 1,
        };
        let want = prefixes[i].len().saturating_sub(seen[i].len());
        seen[i].extend_from_slice(&chunk.data[..want.min(chunk.data.len())]);
        if !prefixes[i].starts_with(&seen[i]) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// An engine output chunk as the logger's.
fn to_logger_chunk(
    item: Result<OutputChunk, EngineError>,
) -> Result<berth_logger::OutputChunk, EngineError> {
    item.map(|c| {
        let stream = match c.kind {
            OutputKind::Stdout => OutputStream::Stdout,
            OutputKind::Stderr => OutputStream::Stderr,
        };
        berth_logger::OutputChunk::new(stream, c.timestamp, c.data)
    })
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
        live: Option<LiveOutput>,
        open: OpenOutput,
        stop: CancellationToken,
    ) -> BoxFut<'static, Result<(), String>> {
        let logger = self.logger.clone();
        let reconnects = self.reconnects;
        let metrics = self.resume.clone();
        Box::pin(async move {
            let spec = log_spec(&target);
            let id = target.container.clone();
            // Opening the sandbox and its files (and, on resume, cutting them back to the
            // checkpoint) is file system work in a directory the container writes: a blocking
            // thread, so a slow disk or an NFS sandbox never stalls the runtime.
            let sandbox = target.sandbox.clone();
            let open_metrics = metrics.clone();
            let opened = tokio::task::spawn_blocking(move || {
                let metrics = open_metrics;
                // Without a usable checkpoint the output resumes after what the sandbox files
                // hold, never from the start (that would write it all twice).
                let mut fallback_since = None;
                let opened = if resume {
                    logger.recover(&spec).or_else(|e| {
                        let since = resume_point(&sandbox);
                        metrics.record(since);
                        match since {
                            Some(since) => tracing::warn!(container_id = %id, error = %e, since = ?since,
                                "cannot resume the log from its checkpoint; continuing after the newest output in the sandbox files (output stamped shortly before the restart may be missing)"),
                            None => tracing::warn!(container_id = %id, error = %e,
                                "cannot resume the log from its checkpoint; the sandbox files hold no output, so it is read from the start"),
                        }
                        fallback_since = since;
                        logger.prepare(&spec)
                    })
                } else {
                    logger.prepare(&spec)
                };
                opened.map(|log| (log, fallback_since))
            })
            .await
            .map_err(|e| format!("opening the container's log failed: {e}"))?;
            let id = target.container.clone();
            let (mut log, mut fallback_since) = opened.map_err(|e| e.to_string())?;
            // The live output, attached before the start, has every byte as it was written and
            // ends when the container's output does. Docker's copy is read only if it breaks,
            // and after an agent restart.
            let mut from_copy = true;
            if let Some(live) = live {
                let stream = live
                    .take_until(stop.clone().cancelled_owned())
                    .map(to_logger_chunk);
                match log.consume(stream).await {
                    Ok(()) => from_copy = false,
                    Err(e) => tracing::warn!(container_id = %id, error = %e,
                        "the container's attached output broke; reading the rest from Docker's copy of it"),
                }
            }
            if from_copy && !stop.is_cancelled() {
                if let Some(prefixes) = log.start_prefixes() {
                    // The copy is to be replayed from its first byte, skipping what was written
                    // by count: only right if it still starts there. Docker rotates it (its cap),
                    // and then the skip would land too far and lose output.
                    let copy = open(None, false).take_until(stop.clone().cancelled_owned());
                    match copy_starts_with(copy, &prefixes).await {
                        Ok(true) => {}
                        Ok(false) => {
                            let sandbox = target.sandbox.clone();
                            let since = tokio::task::spawn_blocking(move || resume_point(&sandbox))
                                .await
                                .ok()
                                .flatten();
                            metrics.record(since);
                            tracing::warn!(container_id = %id, since = ?since,
                                "Docker's copy of the output no longer starts at its first byte (it rotated past its cap while the agent was away); continuing after the newest output in the sandbox files (output written just before the restart may be missing)");
                            log.give_up_offsets();
                            fallback_since = since;
                        }
                        Err(e) => {
                            tracing::warn!(container_id = %id, error = %e, "cannot check the start of Docker's copy of the output; replaying it as it is");
                        }
                    }
                }
            }
            let mut attempt = 0;
            // Where Docker's copy is to be read from: the log's own position once it has one,
            // but never before the fallback point (what lies before that is in the files
            // already). `None`: from the start, the bytes already written skipped by count.
            let since =
                |log: &berth_logger::ContainerLog| match (log.resume_since(), fallback_since) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            let mut followed = false;
            while from_copy && !stop.is_cancelled() {
                // Ends the stream when the agent stops: `consume` then returns with everything
                // read so far handed to the writer.
                let stream = open(since(&log), true)
                    .take_until(stop.clone().cancelled_owned())
                    .map(to_logger_chunk);
                match log.consume(stream).await {
                    Ok(()) => {
                        followed = true;
                        break;
                    }
                    Err(e) if attempt < reconnects && !stop.is_cancelled() => {
                        attempt += 1;
                        tracing::warn!(container_id = %id, error = %e, attempt, "container output stream broke; reopening");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(200) * attempt) => {}
                            () = stop.cancelled() => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(container_id = %id, error = %e, "container output stream keeps breaking; giving up");
                        break;
                    }
                }
            }
            if followed && !stop.is_cancelled() {
                // Docker 20.10 ends a followed stream as soon as the container's log driver
                // closes, racing the last writes (its final unterminated line on each stream):
                // read the copy once more, from the position, now that nothing is added to it.
                // What the follow did deliver is skipped.
                let stream = open(since(&log), false).map(to_logger_chunk);
                if let Err(e) = log.consume(stream).await {
                    tracing::warn!(container_id = %id, error = %e, "the final read of the container's output failed; its last output may be missing");
                }
            }
            // Also on a stop: the files are synced and the checkpoint holds the exact position,
            // so the next agent resumes without a gap or a repeat.
            let report = log.finish().await.map_err(|e| e.to_string())?;
            if stop.is_cancelled() {
                tracing::debug!(container_id = %id, ?report, "container log flushed for an agent restart");
            } else {
                tracing::debug!(container_id = %id, ?report, "container log finished");
            }
            Ok(())
        })
    }

    fn forget(&self, container: &ContainerId) {
        if let Err(e) = self.logger.forget(&logger_key(container)) {
            tracing::warn!(container_id = %container, error = %e, "failed to forget the container's log state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// An adapter over a sandbox logger keeping its state in `state_dir` (a fresh agent's).
    fn sandbox_adapter(state_dir: &std::path::Path) -> LoggerAdapter<SandboxLogger> {
        LoggerAdapter::new(Arc::new(
            SandboxLogger::new(LoggerConfig::new(state_dir)).unwrap(),
        ))
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
        Arc::new(move |since, _follow| {
            let items: Vec<Result<OutputChunk, EngineError>> = entries
                .iter()
                .filter(|c| since.is_none_or(|s| c.timestamp.is_some_and(|t| t >= s)))
                .cloned()
                .map(Ok)
                .collect();
            Box::pin(futures_util::stream::iter(items))
        })
    }

    fn untimed(kind: OutputKind, text: &str) -> Result<OutputChunk, EngineError> {
        Ok(OutputChunk {
            kind,
            timestamp: None,
            data: bytes::Bytes::copy_from_slice(text.as_bytes()),
        })
    }

    /// Docker 20.10's follow: the copy without its last entry (the race at exit); the non-follow
    /// read has everything.
    fn racy_source(entries: Vec<OutputChunk>) -> OpenOutput {
        Arc::new(move |since, follow| {
            let mut items: Vec<Result<OutputChunk, EngineError>> = entries
                .iter()
                .filter(|c| since.is_none_or(|s| c.timestamp.is_some_and(|t| t >= s)))
                .cloned()
                .map(Ok)
                .collect();
            if follow {
                items.pop();
            }
            Box::pin(futures_util::stream::iter(items))
        })
    }

    /// The live output is all that is read when it lasts to its end.
    #[tokio::test]
    async fn live_output_is_written_as_is_and_the_copy_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let adapter = sandbox_adapter(&tmp.path().join("logger"));
        let sandbox = tmp.path().join("sb");
        std::fs::create_dir_all(&sandbox).unwrap();
        let live: LiveOutput = Box::pin(futures_util::stream::iter(vec![
            untimed(OutputKind::Stdout, "\u{0}\r"),
            untimed(OutputKind::Stderr, "err no newline"),
            untimed(OutputKind::Stdout, "tail"),
        ]));
        let never: OpenOutput = Arc::new(|_, _| panic!("the copy must not be read"));
        adapter
            .run(
                target("c1", &sandbox),
                false,
                Some(live),
                never,
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(std::fs::read(sandbox.join("stdout")).unwrap(), b"\0\rtail");
        assert_eq!(
            std::fs::read(sandbox.join("stderr")).unwrap(),
            b"err no newline"
        );
    }

    /// The live output breaks: the rest comes from the copy, read from the start with what was
    /// written skipped, and its last entry (which the follow misses) from the final read.
    #[tokio::test]
    async fn a_broken_live_output_goes_on_from_the_copy_without_gap_or_repeat() {
        let tmp = tempfile::tempdir().unwrap();
        let adapter = sandbox_adapter(&tmp.path().join("logger"));
        let sandbox = tmp.path().join("sb");
        std::fs::create_dir_all(&sandbox).unwrap();
        let live: LiveOutput = Box::pin(futures_util::stream::iter(vec![
            untimed(OutputKind::Stdout, "one\ntw"),
            Err(EngineError::new(
                crate::engine::EngineErrorKind::Transient,
                "connection reset",
            )),
        ]));
        let t0 = SystemTime::now();
        let copy = vec![
            chunk(t0, "one\n"),
            chunk(t0 + Duration::from_millis(1), "two\n"),
            chunk(t0 + Duration::from_millis(2), "three"),
        ];
        adapter
            .run(
                target("c1", &sandbox),
                false,
                Some(live),
                racy_source(copy),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(sandbox.join("stdout")).unwrap(),
            "one\ntwo\nthree"
        );
    }

    /// Written from the live output, then the agent stops; while it is away Docker's copy
    /// rotates past its cap and loses its beginning. The resume notices (the copy does not start
    /// with the stream's first bytes) and goes on after the files' last write instead of
    /// skipping by count from the wrong start, which would lose output.
    #[tokio::test]
    async fn a_copy_that_lost_its_start_is_not_skipped_by_count() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("logger");
        let sandbox = tmp.path().join("sb");
        std::fs::create_dir_all(&sandbox).unwrap();
        let t = target("c1", &sandbox);
        let live: LiveOutput = Box::pin(futures_util::stream::iter(vec![
            untimed(OutputKind::Stdout, "one\n"),
            untimed(OutputKind::Stdout, "two\n"),
        ]));
        let stop = CancellationToken::new();
        let run = sandbox_adapter(&state).run(
            t.clone(),
            false,
            Some(futures_util::StreamExt::boxed(
                live.chain(futures_util::stream::pending()),
            )),
            Arc::new(|_, _| panic!("not read while the live output lasts")),
            stop.clone(),
        );
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        };
        let (r, ()) = tokio::join!(run, stopper);
        r.unwrap();
        // After the restart: the copy kept only from "two" on, then "three" was written.
        let mtime = std::fs::metadata(sandbox.join("stdout"))
            .unwrap()
            .modified()
            .unwrap();
        let copy = vec![
            chunk(mtime - Duration::from_secs(1), "two\n"),
            chunk(mtime + Duration::from_secs(1), "three\n"),
        ];
        let adapter = sandbox_adapter(&state);
        adapter
            .run(t, true, None, racy_source(copy), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(sandbox.join("stdout")).unwrap(),
            "one\ntwo\nthree\n"
        );
        assert_eq!(adapter.resume_metrics().fallbacks(), 1);
    }

    /// Read from the copy only (after a restart): the entry the follow missed at the end is
    /// read once more afterwards.
    #[tokio::test]
    async fn the_final_read_after_the_follow_brings_the_last_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let adapter = sandbox_adapter(&tmp.path().join("logger"));
        let sandbox = tmp.path().join("sb");
        std::fs::create_dir_all(&sandbox).unwrap();
        let t0 = SystemTime::now();
        let copy = vec![chunk(t0, "line\n"), chunk(t0, "TAIL-NO-NL")];
        adapter
            .run(
                target("c1", &sandbox),
                false,
                None,
                racy_source(copy),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(sandbox.join("stdout")).unwrap(),
            "line\nTAIL-NO-NL"
        );
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
        let adapter = sandbox_adapter(&tmp.path().join("logger"));
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
                    None,
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
        assert_eq!(left, ["checkpoints.journal"], "no per-container files");
        let journal = berth_journal::Journal::read(tmp.path().join("logger/checkpoints.journal"));
        let entries = journal.unwrap().entries;
        assert!(
            entries.is_empty(),
            "checkpoints left after forget: {entries:?}"
        );
    }

    /// The logger's checkpoint is gone (or corrupt) after a restart: the log goes on after what
    /// the files hold, without writing any of it twice, and the fallback is counted.
    #[tokio::test]
    async fn a_lost_checkpoint_resumes_after_the_files_without_duplicates() {
        for damage in ["delete", "corrupt"] {
            let tmp = tempfile::tempdir().unwrap();
            let state = tmp.path().join("logger");
            let mut adapter = sandbox_adapter(&state);
            let sandbox = tmp.path().join("sb");
            std::fs::create_dir_all(&sandbox).unwrap();
            let t0 = SystemTime::now();
            let early = vec![
                chunk(t0 - Duration::from_secs(3), "one\n"),
                chunk(t0 - Duration::from_secs(2), "two\n"),
            ];
            let t = target("c1", &sandbox);
            adapter.prepare(&t).unwrap();
            adapter
                .run(
                    t.clone(),
                    false,
                    None,
                    source(early.clone()),
                    CancellationToken::new(),
                )
                .await
                .unwrap();
            // The agent stops; its logger's checkpoints are lost or damaged; it restarts.
            drop(adapter);
            let journal = state.join("checkpoints.journal");
            match damage {
                "delete" => std::fs::remove_file(&journal).unwrap(),
                _ => std::fs::write(&journal, b"{torn").unwrap(),
            }
            adapter = sandbox_adapter(&state);
            // After the restart Docker has the old entries and one stamped after the files'
            // last write.
            let mut all = early;
            all.push(chunk(SystemTime::now() + Duration::from_secs(1), "three\n"));
            adapter
                .run(t, true, None, source(all), CancellationToken::new())
                .await
                .unwrap();
            assert_eq!(
                std::fs::read_to_string(sandbox.join("stdout")).unwrap(),
                "one\ntwo\nthree\n",
                "{damage}: nothing written twice"
            );
            let m = adapter.resume_metrics();
            assert_eq!((m.fallbacks(), m.possible_gaps()), (1, 1), "{damage}");
        }
    }

    /// Nothing in the files yet: the fallback reads the output from the start (all of it, once).
    #[tokio::test]
    async fn a_lost_checkpoint_with_empty_files_replays_everything_once() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("logger");
        let adapter = sandbox_adapter(&state);
        let sandbox = tmp.path().join("sb");
        std::fs::create_dir_all(&sandbox).unwrap();
        let t = target("c1", &sandbox);
        adapter.prepare(&t).unwrap();
        let t0 = SystemTime::now();
        let all = vec![
            chunk(t0 - Duration::from_secs(3), "one\n"),
            chunk(t0 - Duration::from_secs(2), "two\n"),
        ];
        adapter
            .run(t, true, None, source(all), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(sandbox.join("stdout")).unwrap(),
            "one\ntwo\n"
        );
        let m = adapter.resume_metrics();
        assert_eq!((m.fallbacks(), m.possible_gaps()), (1, 0));
    }
}
