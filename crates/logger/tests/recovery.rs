//! Restart and reconnect tests against a simulated Docker json-file log: the logger must end up
//! with every byte exactly once, whatever point it was stopped at.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_logger::{
    ContainerLogSpec, ContainerLogger, LoggerConfig, LoggerError, OutputChunk, OutputStream,
    RotatingLogger, Rotation, SandboxLogger, StreamRotations,
};
use common::stream_contents;
use futures_util::stream::{self, StreamExt};
use proptest::prelude::*;

/// One entry of the simulated json-file log, in file order.
#[derive(Debug, Clone)]
struct Entry {
    stream: OutputStream,
    ts: SystemTime,
    data: Vec<u8>,
}

type Item = Result<OutputChunk, std::io::Error>;

/// What Docker's logs endpoint returns for `since`: the entries stamped at or after it, in order.
fn replay(entries: &[Entry], since: Option<SystemTime>) -> Vec<Item> {
    entries
        .iter()
        .filter(|e| since.is_none_or(|s| e.ts >= s))
        .map(|e| Ok(OutputChunk::new(e.stream, Some(e.ts), e.data.clone())))
        .collect()
}

/// A stream that yields its items slowly (so checkpoints fall between them), then maybe fails.
fn trickle(items: Vec<Item>, fail_at_end: bool) -> impl futures_core::Stream<Item = Item> {
    let tail = fail_at_end.then(|| Err(std::io::Error::other("connection reset")));
    stream::iter(items.into_iter().chain(tail)).then(|item| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        item
    })
}

fn expected(entries: &[Entry], stream: OutputStream) -> Vec<u8> {
    entries
        .iter()
        .filter(|e| e.stream == stream)
        .flat_map(|e| e.data.iter().copied())
        .collect()
}

/// Builds a log where per-stream timestamps never decrease but stderr and stdout entries may be
/// up to `max_skew_ms` out of order with each other, spread over several seconds.
fn entries_from(spec: &[(bool, u16, u16, u8)], max_skew_ms: u64) -> Vec<Entry> {
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut write_ms = 0u64;
    let mut last = [base, base];
    spec.iter()
        .enumerate()
        .map(|(i, &(err, step, skew, len))| {
            write_ms += u64::from(step % 400);
            let skew = u64::from(skew) % (max_skew_ms + 1);
            let stream = if err {
                OutputStream::Stderr
            } else {
                OutputStream::Stdout
            };
            let s = stream_index(stream);
            let ts = (base + Duration::from_millis(write_ms.saturating_sub(skew))).max(last[s]);
            last[s] = ts;
            // Every entry is distinct, so a duplicate or a gap cannot go unnoticed.
            let mut data = format!("<{i}:{stream}>").into_bytes();
            data.extend(std::iter::repeat_n(b'x', usize::from(len)));
            if i % 3 == 0 {
                data.push(b'\n');
            }
            Entry { stream, ts, data }
        })
        .collect()
}

fn stream_index(s: OutputStream) -> usize {
    match s {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

fn setup(tmp: &Path) -> std::path::PathBuf {
    let sandbox = tmp.join("sandbox");
    fs::create_dir(&sandbox).unwrap();
    sandbox
}

fn rotating(tmp: &Path, interval: Duration, max_size: u64) -> RotatingLogger {
    let mut config = LoggerConfig::new(tmp.join("state"));
    config.checkpoint_interval = interval;
    config.batch_bytes = 512;
    RotatingLogger::new(
        config,
        StreamRotations::both(Rotation::by_size(max_size, 1000).unwrap()),
    )
    .unwrap()
}

fn assert_exact(sandbox: &Path, entries: &[Entry]) {
    for s in OutputStream::ALL {
        let (got, _) = stream_contents(sandbox, s.file_name());
        let want = expected(entries, s);
        assert!(
            got == want,
            "{s}: got {} bytes, want {}\n got: {}\nwant: {}",
            got.len(),
            want.len(),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Stop at a random point (after a random stream error and reconnect), recover, replay: every
    /// byte exactly once, with checkpoints falling at random points and cross-stream skew.
    #[test]
    fn crash_anywhere_then_recover_is_exact(
        spec in prop::collection::vec((any::<bool>(), any::<u16>(), any::<u16>(), 0u8..40), 1..50),
        crash_frac in 0.0f64..=1.0,
        error_frac in 0.0f64..=1.0,
        max_size in 40u64..400,
    ) {
        let entries = entries_from(&spec, 900);
        let crash = (entries.len() as f64 * crash_frac) as usize;
        let error = (crash as f64 * error_frac) as usize;
        let tmp = tempfile::tempdir().unwrap();
        let sandbox = setup(tmp.path());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let id = ContainerLogSpec::new("c", &sandbox);
            {
                let logger = rotating(tmp.path(), Duration::from_millis(15), max_size);
                let mut log = logger.prepare(&id).unwrap();
                // The connection drops after `error` entries...
                let r = log.consume(trickle(replay(&entries[..error], None), true)).await;
                assert!(matches!(r, Err(LoggerError::Source { .. })), "{r:?}");
                // ...and is reopened from where the log says, up to the crash.
                let since = log.resume_since();
                log.consume(trickle(replay(&entries[..crash], since), false)).await.unwrap();
                // The agent dies here: no finish.
            }
            let logger = rotating(tmp.path(), Duration::from_millis(15), max_size);
            let mut log = logger.recover(&id).unwrap();
            let since = log.resume_since();
            log.consume(stream::iter(replay(&entries, since))).await.unwrap();
            let report = log.finish().await.unwrap();
            assert!(report.complete);
        });
        assert_exact(&sandbox, &entries);
    }
}

/// What Docker's attach stream gives: the same bytes, untimed, framed differently (each entry
/// in two pieces).
fn live(entries: &[Entry]) -> Vec<Item> {
    entries
        .iter()
        .flat_map(|e| {
            let (a, b) = e.data.split_at(e.data.len() / 2);
            [a.to_vec(), b.to_vec()]
        })
        .zip(entries.iter().flat_map(|e| [e.stream, e.stream]))
        .filter(|(d, _)| !d.is_empty())
        .map(|(d, s)| Ok(OutputChunk::new(s, None, d)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Read live without timestamps, killed; recovered by a replay of the timed copy from the
    /// start (skipping the offsets), killed again; recovered from the anchor the replay left:
    /// every byte exactly once.
    #[test]
    fn live_untimed_then_two_crashes_is_exact(
        spec in prop::collection::vec((any::<bool>(), any::<u16>(), any::<u16>(), 0u8..40), 1..50),
        crash1_frac in 0.0f64..=1.0,
        crash2_frac in 0.0f64..=1.0,
        max_size in 40u64..400,
    ) {
        let entries = entries_from(&spec, 900);
        let crash1 = (entries.len() as f64 * crash1_frac) as usize;
        let crash2 = crash1 + ((entries.len() - crash1) as f64 * crash2_frac) as usize;
        let tmp = tempfile::tempdir().unwrap();
        let sandbox = setup(tmp.path());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let id = ContainerLogSpec::new("c", &sandbox);
            {
                let logger = rotating(tmp.path(), Duration::from_millis(15), max_size);
                let mut log = logger.prepare(&id).unwrap();
                log.consume(trickle(live(&entries[..crash1]), false)).await.unwrap();
                // Killed: no finish.
            }
            {
                let logger = rotating(tmp.path(), Duration::from_millis(15), max_size);
                let mut log = logger.recover(&id).unwrap();
                let since = log.resume_since();
                log.consume(trickle(replay(&entries[..crash2], since), false)).await.unwrap();
            }
            let logger = rotating(tmp.path(), Duration::from_millis(15), max_size);
            let mut log = logger.recover(&id).unwrap();
            let since = log.resume_since();
            log.consume(stream::iter(replay(&entries, since))).await.unwrap();
            let report = log.finish().await.unwrap();
            assert!(report.complete);
            assert_eq!(report.stdout_bytes, expected(&entries, OutputStream::Stdout).len() as u64);
        });
        assert_exact(&sandbox, &entries);
    }
}

/// A replay from the start that holds fewer bytes than were written (Docker's copy lost its
/// beginning) is counted, not silently accepted.
#[tokio::test]
async fn a_short_replay_from_the_start_is_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let logger = SandboxLogger::new(LoggerConfig::new(tmp.path().join("state"))).unwrap();
    let spec = ContainerLogSpec::new("c", &sandbox);
    let mut log = logger.prepare(&spec).unwrap();
    let live: Vec<Item> = vec![Ok(OutputChunk::new(OutputStream::Stdout, None, "abcdef"))];
    log.consume(stream::iter(live)).await.unwrap();
    assert_eq!(log.resume_since(), None);
    assert_eq!(log.offsets(), [6, 0]);
    let t = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let short: Vec<Item> = vec![Ok(OutputChunk::new(OutputStream::Stdout, t, "abc"))];
    log.consume(stream::iter(short)).await.unwrap();
    log.finish().await.unwrap();
    assert_eq!(logger.metrics().snapshot().replays_short, 1);
    assert_eq!(fs::read(sandbox.join("stdout")).unwrap(), b"abcdef");
}

/// Entries spread over a few seconds, 1 KiB each.
fn simple_entries(n: usize) -> Vec<Entry> {
    let spec: Vec<_> = (0..n)
        .map(|i| (i % 4 == 1, 150u16, (i * 37 % 500) as u16, 30u8))
        .collect();
    entries_from(&spec, 400)
}

fn checkpointed_len(state: &Path, stream: &str) -> u64 {
    common::journal_checkpoints(state)["c"][stream]["len"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn bytes_written_after_the_checkpoint_are_cut_and_replayed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let entries = simple_entries(60);
    let spec = ContainerLogSpec::new("c", &sandbox);
    {
        // A checkpoint interval longer than the test: only the initial checkpoint exists.
        let logger = rotating(tmp.path(), Duration::from_secs(3600), 1 << 20);
        let mut log = logger.prepare(&spec).unwrap();
        log.consume(stream::iter(replay(&entries[..40], None)))
            .await
            .unwrap();
    }
    assert_eq!(checkpointed_len(&tmp.path().join("state"), "stdout"), 0);
    assert!(fs::metadata(sandbox.join("stdout")).unwrap().len() > 0);
    let logger = rotating(tmp.path(), Duration::from_secs(3600), 1 << 20);
    let mut log = logger.recover(&spec).unwrap();
    assert_eq!(
        fs::metadata(sandbox.join("stdout")).unwrap().len(),
        0,
        "cut back to the checkpoint"
    );
    assert_eq!(log.resume_since(), None);
    log.consume(stream::iter(replay(&entries, None)))
        .await
        .unwrap();
    log.finish().await.unwrap();
    assert_exact(&sandbox, &entries);
}

#[tokio::test]
async fn rotations_after_the_checkpoint_are_undone() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let entries = simple_entries(60);
    let spec = ContainerLogSpec::new("c", &sandbox);
    {
        let logger = rotating(tmp.path(), Duration::from_secs(3600), 100);
        let mut log = logger.prepare(&spec).unwrap();
        log.consume(stream::iter(replay(&entries[..50], None)))
            .await
            .unwrap();
    }
    assert!(
        sandbox.join("stdout.5").exists(),
        "several rotations happened after the checkpoint"
    );
    let logger = rotating(tmp.path(), Duration::from_secs(3600), 100);
    let mut log = logger.recover(&spec).unwrap();
    assert!(!sandbox.join("stdout.1").exists(), "rotations undone");
    log.consume(stream::iter(replay(&entries, log.resume_since())))
        .await
        .unwrap();
    log.finish().await.unwrap();
    assert_exact(&sandbox, &entries);
}

#[tokio::test]
async fn resume_after_a_checkpoint_replays_from_one_second_back_and_skips_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let entries = simple_entries(60);
    let spec = ContainerLogSpec::new("c", &sandbox);
    let logger = rotating(tmp.path(), Duration::from_secs(3600), 1 << 20);
    let mut log = logger.prepare(&spec).unwrap();
    log.consume(stream::iter(replay(&entries[..45], None)))
        .await
        .unwrap();
    let newest = log.newest_timestamp().unwrap();
    // finish() checkpoints everything; then the agent restarts.
    assert!(log.finish().await.unwrap().complete);
    drop(logger);

    let logger = rotating(tmp.path(), Duration::from_secs(3600), 1 << 20);
    let mut log = logger.recover(&spec).unwrap();
    let since = log.resume_since().unwrap();
    let newest_sec = newest.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(since, UNIX_EPOCH + Duration::from_secs(newest_sec - 1));
    let replayed = replay(&entries, Some(since));
    assert!(
        replayed.len() > entries.len() - 45,
        "the replay starts before the stop point"
    );
    log.consume(stream::iter(replayed)).await.unwrap();
    log.finish().await.unwrap();
    assert_exact(&sandbox, &entries);
}

#[tokio::test]
async fn a_finished_log_recovers_as_finished_and_replays_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let entries = simple_entries(30);
    let spec = ContainerLogSpec::new("c", &sandbox);
    let logger = SandboxLogger::new(LoggerConfig::new(tmp.path().join("state"))).unwrap();
    let mut log = logger.prepare(&spec).unwrap();
    assert!(!log.was_finished());
    log.consume(stream::iter(replay(&entries, None)))
        .await
        .unwrap();
    log.finish().await.unwrap();
    let mut log = logger.recover(&spec).unwrap();
    assert!(log.was_finished());
    log.consume(stream::iter(replay(&entries, log.resume_since())))
        .await
        .unwrap();
    let report = log.finish().await.unwrap();
    assert_eq!(
        report.stdout_bytes,
        expected(&entries, OutputStream::Stdout).len() as u64
    );
    assert_exact(&sandbox, &entries);
}

#[tokio::test]
async fn recover_without_checkpoint_and_forget() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let logger = SandboxLogger::new(LoggerConfig::new(tmp.path().join("state"))).unwrap();
    let spec = ContainerLogSpec::new("never-prepared", &sandbox);
    let e = logger.recover(&spec).unwrap_err();
    assert!(matches!(e, LoggerError::NoCheckpoint { .. }), "{e}");
    assert!(e.to_string().contains("never-prepared"), "{e}");
    let spec = ContainerLogSpec::new("c", &sandbox);
    drop(logger.prepare(&spec).unwrap());
    drop(logger.recover(&spec).unwrap());
    logger.forget("c").unwrap();
    assert!(matches!(
        logger.recover(&spec),
        Err(LoggerError::NoCheckpoint { .. })
    ));
    // Forgotten in the journal too.
    drop(logger);
    assert!(common::journal_checkpoints(&tmp.path().join("state")).is_empty());
    let logger = SandboxLogger::new(LoggerConfig::new(tmp.path().join("state"))).unwrap();
    let e = logger.recover(&spec).unwrap_err();
    assert!(
        matches!(&e, LoggerError::NoCheckpoint { path, .. } if path.ends_with("checkpoints.journal")),
        "{e}"
    );
}

#[tokio::test]
async fn repeated_output_is_written_but_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let logger = SandboxLogger::new(LoggerConfig::new(tmp.path().join("state"))).unwrap();
    let mut log = logger
        .prepare(&ContainerLogSpec::new("c", &sandbox))
        .unwrap();
    let t = |ms: u64| Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms));
    let chunks = vec![
        Ok::<_, std::io::Error>(OutputChunk::new(OutputStream::Stdout, t(10), "a\n")),
        Ok(OutputChunk::new(OutputStream::Stdout, t(20), "b\n")),
        // Docker repeats "b" (stamped 20) after a json-file rotation, then goes on.
        Ok(OutputChunk::new(OutputStream::Stdout, t(20), "b\n")),
        Ok(OutputChunk::new(OutputStream::Stdout, t(15), "a2\n")),
        Ok(OutputChunk::new(OutputStream::Stderr, t(5), "e\n")),
        Ok(OutputChunk::new(OutputStream::Stdout, t(30), "c\n")),
    ];
    log.consume(stream::iter(chunks)).await.unwrap();
    log.finish().await.unwrap();
    assert_eq!(
        fs::read_to_string(sandbox.join("stdout")).unwrap(),
        "a\nb\nb\na2\nc\n"
    );
    assert_eq!(
        logger.metrics().snapshot().timestamp_regressions,
        1,
        "only the chunk stamped earlier than its stream's newest"
    );
}

#[tokio::test]
async fn durable_checkpoints_sync_before_checkpointing_and_recover_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let entries = simple_entries(40);
    let spec = ContainerLogSpec::new("c", &sandbox);
    let config = || {
        let mut c = LoggerConfig::new(tmp.path().join("state"));
        c.durable_checkpoints = true;
        c.checkpoint_interval = Duration::from_millis(1);
        c.batch_bytes = 256;
        c
    };
    {
        let logger = RotatingLogger::new(
            config(),
            StreamRotations::both(Rotation::by_size(300, 1000).unwrap()),
        )
        .unwrap();
        let mut log = logger.prepare(&spec).unwrap();
        log.consume(trickle(replay(&entries[..25], None), false))
            .await
            .unwrap();
        assert_eq!(logger.metrics().snapshot().checkpoint_errors, 0);
    }
    let logger = RotatingLogger::new(
        config(),
        StreamRotations::both(Rotation::by_size(300, 1000).unwrap()),
    )
    .unwrap();
    let mut log = logger.recover(&spec).unwrap();
    log.consume(stream::iter(replay(&entries, log.resume_since())))
        .await
        .unwrap();
    assert!(log.finish().await.unwrap().complete);
    assert_exact(&sandbox, &entries);
}

/// A checkpoint file of an earlier version (`<id>.json`, from before the journal) is recovered
/// exactly, and removed (with any temporary file) once the journal has the container.
#[tokio::test]
async fn a_checkpoint_file_of_an_earlier_version_is_recovered_then_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let state = tmp.path().join("state");
    let entries = simple_entries(60);
    let spec = ContainerLogSpec::new("c", &sandbox);
    {
        let logger = rotating(tmp.path(), Duration::from_millis(20), 300);
        let mut log = logger.prepare(&spec).unwrap();
        log.consume(trickle(replay(&entries[..40], None), false))
            .await
            .unwrap();
        // The agent dies here: no finish.
    }
    // Turn the state into what an earlier version left: `c.json` holding the same checkpoint,
    // an interrupted write of the next one, and no journal.
    let checkpoint = common::journal_checkpoints(&state).remove("c").unwrap();
    fs::remove_file(state.join("checkpoints.journal")).unwrap();
    fs::write(
        state.join("c.json"),
        serde_json::to_vec(&checkpoint).unwrap(),
    )
    .unwrap();
    fs::write(state.join("c.json.tmp"), b"{\"version\":1,\"cont").unwrap();

    let logger = rotating(tmp.path(), Duration::from_millis(20), 300);
    let mut log = logger.recover(&spec).unwrap();
    assert_eq!(
        common::file_names(&state),
        ["checkpoints.journal"],
        "the old files are gone once the journal has the checkpoint"
    );
    log.consume(stream::iter(replay(&entries, log.resume_since())))
        .await
        .unwrap();
    assert!(log.finish().await.unwrap().complete);
    assert_exact(&sandbox, &entries);
    drop(logger);
    assert_eq!(
        common::journal_checkpoints(&state)["c"]["phase"],
        "finished"
    );
}

/// The checkpoint format of earlier versions, written out by hand: still understood, and
/// `forget` removes the file.
#[tokio::test]
async fn a_hand_written_version_1_checkpoint_file_is_understood_and_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let state = tmp.path().join("state");
    fs::create_dir(&state).unwrap();
    let json = r#"{"version":1,"container_id":"old-1","phase":"finished",
        "position":{"buckets":[{"sec":1700000000,"stdout":6,"stderr":0}],
                    "newest":[{"secs":1700000000,"nanos":5},null]},
        "stdout":{"inode":1,"len":6},"stderr":{"inode":2,"len":0},
        "totals":{"stdout_bytes":6,"stderr_bytes":0,"dropped_bytes":0,"rotations":0,"write_errors":0}}"#;
    fs::write(state.join("old-1.json"), json).unwrap();
    fs::write(state.join("old-2.json"), json.replace("old-1", "old-2")).unwrap();
    let logger = SandboxLogger::new(LoggerConfig::new(&state)).unwrap();
    let log = logger
        .recover(&ContainerLogSpec::new("old-1", &sandbox))
        .unwrap();
    assert!(log.was_finished());
    assert_eq!(
        log.resume_since(),
        Some(UNIX_EPOCH + Duration::from_secs(1_699_999_999))
    );
    assert!(!state.join("old-1.json").exists());
    logger.forget("old-2").unwrap();
    assert_eq!(common::file_names(&state), ["checkpoints.journal"]);
    assert!(matches!(
        logger.recover(&ContainerLogSpec::new("old-2", &sandbox)),
        Err(LoggerError::NoCheckpoint { .. })
    ));
}

/// Many containers: every checkpoint lands in the one journal (no file per container), each
/// finished log is one durable checkpoint, and after the agent is killed each log recovers
/// exactly from its own entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_containers_share_one_journal_and_recover_exactly() {
    const N: usize = 24;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let entries = simple_entries(30);
    let specs: Vec<_> = (0..N)
        .map(|i| {
            let sandbox = tmp.path().join(format!("sandbox-{i}"));
            fs::create_dir(&sandbox).unwrap();
            ContainerLogSpec::new(format!("c-{i}"), sandbox)
        })
        .collect();
    {
        let logger = Arc::new(rotating(tmp.path(), Duration::from_millis(10), 200));
        let tasks: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let (logger, spec, entries) = (logger.clone(), spec.clone(), entries.clone());
                tokio::spawn(async move {
                    let mut log = logger.prepare(&spec).unwrap();
                    let stop = [0, 10, 20, 30][i % 4];
                    log.consume(trickle(replay(&entries[..stop], None), false))
                        .await
                        .unwrap();
                    // Half finish; the others are cut off by the agent's death.
                    if i % 2 == 0 {
                        assert!(log.finish().await.unwrap().complete);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(common::file_names(&state), ["checkpoints.journal"]);
        let m = logger.metrics().snapshot();
        assert_eq!(m.checkpoint_errors, 0, "{m:?}");
        assert!(m.checkpoints_stored >= N as u64, "{m:?}");
        assert!(m.checkpoints_durable >= (N / 2) as u64, "{m:?}");
    }
    let stored = common::journal_checkpoints(&state);
    assert_eq!(stored.len(), N);
    for (i, spec) in specs.iter().enumerate() {
        let phase = &stored[&spec.container_id]["phase"];
        assert_eq!(phase, if i % 2 == 0 { "finished" } else { "running" });
    }
    let logger = rotating(tmp.path(), Duration::from_millis(10), 200);
    for spec in &specs {
        let mut log = logger.recover(spec).unwrap();
        log.consume(stream::iter(replay(&entries, log.resume_since())))
            .await
            .unwrap();
        assert!(log.finish().await.unwrap().complete);
        assert_exact(&spec.sandbox, &entries);
        logger.forget(&spec.container_id).unwrap();
    }
    drop(logger);
    assert!(common::journal_checkpoints(&state).is_empty());
    assert_eq!(common::file_names(&state), ["checkpoints.journal"]);
}

/// Finishing syncs only the files that were written to: a container without output costs no
/// file sync, one writing only to stdout costs one; each finish is one durable checkpoint.
#[tokio::test]
async fn finish_syncs_only_files_with_output() {
    let tmp = tempfile::tempdir().unwrap();
    let logger = SandboxLogger::new(LoggerConfig::new(tmp.path().join("state"))).unwrap();
    let sandbox = |name: &str| {
        let p = tmp.path().join(name);
        fs::create_dir(&p).unwrap();
        p
    };
    let silent = logger
        .prepare(&ContainerLogSpec::new("silent", sandbox("silent")))
        .unwrap();
    assert!(silent.finish().await.unwrap().complete);
    let m = logger.metrics().snapshot();
    assert_eq!(m.file_syncs, 0, "{m:?}");
    assert_eq!(
        (m.checkpoints_stored, m.checkpoints_durable),
        (2, 1),
        "{m:?}"
    );

    let mut talker = logger
        .prepare(&ContainerLogSpec::new("talker", sandbox("talker")))
        .unwrap();
    let t = Some(SystemTime::now());
    talker
        .consume(stream::iter([Ok::<_, std::io::Error>(OutputChunk::new(
            OutputStream::Stdout,
            t,
            "hi\n",
        ))]))
        .await
        .unwrap();
    assert!(talker.finish().await.unwrap().complete);
    let m = logger.metrics().snapshot();
    assert_eq!(m.file_syncs, 1, "stdout only: {m:?}");
    assert_eq!(m.checkpoints_durable, 2, "{m:?}");
}

/// Rotations: a checkpoint is stored durably at least every `keep` rotations of a stream, so the
/// newest checkpoint a host crash can leave never names a file rotation deleted.
#[tokio::test]
async fn a_durable_checkpoint_comes_at_least_every_keep_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = setup(tmp.path());
    let mut config = LoggerConfig::new(tmp.path().join("state"));
    config.checkpoint_interval = Duration::from_secs(3600);
    let keep = 3;
    let logger = RotatingLogger::new(
        config,
        StreamRotations::both(Rotation::by_size(4096, keep).unwrap()),
    )
    .unwrap();
    let mut log = logger
        .prepare(&ContainerLogSpec::new("c", &sandbox))
        .unwrap();
    let t = Some(SystemTime::now());
    let chunks: Vec<_> = (0..64)
        .map(|_| {
            Ok::<_, std::io::Error>(OutputChunk::new(OutputStream::Stdout, t, vec![b'x'; 1000]))
        })
        .collect();
    log.consume(stream::iter(chunks)).await.unwrap();
    let m = logger.metrics().snapshot();
    assert!(m.rotations >= 15, "{m:?}");
    assert!(
        m.checkpoints_durable >= m.rotations / u64::from(keep),
        "{m:?}"
    );
    assert!(
        m.checkpoints_durable <= m.rotations,
        "not one per rotation: {m:?}"
    );
    log.finish().await.unwrap();
}
