//! Write faults on a real, small tmpfs: disk full (recovered from, and not), back-pressure while
//! the disk refuses writes, and a log file deleted while in use.
//!
//! These tests mount tmpfs file systems, so they need root (as the agent itself does).

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use berth_logger::{
    ContainerLogSpec, ContainerLogger, LoggerConfig, OutputChunk, OutputStream, SandboxLogger,
};
use futures_util::stream::{self, StreamExt};

/// A tmpfs mounted on a temporary directory for the test's lifetime.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "berth-logger-test",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs at {} (the disk-full tests need root): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system, then frees `free` bytes (page granular) again.
    fn fill_leaving(&self, free: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&filler)
            .unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let len = fs::metadata(&filler).unwrap().len();
        f.set_len(len.saturating_sub(free)).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 100 == 99 {
                b'\n'
            } else {
                b'a' + ((i / 100 + seed as usize) % 26) as u8
            }
        })
        .collect()
}

type Item = Result<OutputChunk, std::io::Error>;

fn chunks(data: &[u8], size: usize) -> Vec<Item> {
    data.chunks(size)
        .map(|c| {
            Ok(OutputChunk::new(
                OutputStream::Stdout,
                Some(SystemTime::now()),
                c.to_vec(),
            ))
        })
        .collect()
}

fn config(state: &Path, retry_window: Duration) -> LoggerConfig {
    let mut c = LoggerConfig::new(state);
    c.retry_window = retry_window;
    c.batch_bytes = 16 * 1024;
    c.checkpoint_interval = Duration::from_millis(50);
    c
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_retried_and_nothing_is_lost_when_space_returns() {
    let fs_ = Tmpfs::mount("1m");
    let state = tempfile::tempdir().unwrap();
    let logger = SandboxLogger::new(config(state.path(), Duration::from_secs(60))).unwrap();
    let mut log = logger
        .prepare(&ContainerLogSpec::new("c", fs_.path()))
        .unwrap();
    let filler = fs_.fill_leaving(12 * 1024);

    // An endless stream that counts what the logger pulled from it.
    let pulled = Arc::new(AtomicU64::new(0));
    let data = pattern(400 * 1024, 0);
    let source = {
        let pulled = pulled.clone();
        stream::iter(chunks(&data, 4096)).inspect(move |c| {
            pulled.fetch_add(c.as_ref().unwrap().data.len() as u64, Ordering::SeqCst);
        })
    };
    let metrics = logger.metrics();
    let task = tokio::spawn(async move {
        log.consume(source).await.unwrap();
        log
    });

    wait_for("the first write error", || {
        metrics.snapshot().write_errors > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Back-pressure: while the disk refuses writes the stream is not drained into memory.
    let written = fs::metadata(fs_.path().join("stdout")).unwrap().len();
    let held = pulled.load(Ordering::SeqCst) - written;
    assert!(
        held <= 2 * 16 * 1024 + 4096,
        "{held} bytes held in memory while the disk is full"
    );
    assert!(!task.is_finished());

    fs::remove_file(filler).unwrap();
    let log = task.await.unwrap();
    let report = log.finish().await.unwrap();
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(report.stdout_bytes, data.len() as u64);
    assert!(report.write_errors > 0);
    assert!(report.complete);
    assert_eq!(
        fs::read(fs_.path().join("stdout")).unwrap(),
        data,
        "byte-exact after the disk-full episode"
    );
    let m = metrics.snapshot();
    assert!(
        m.write_errors > 0 && m.bytes_dropped == 0 && m.bytes_written == data.len() as u64,
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_stays_full_drops_output_after_the_retry_window_and_recovers_later() {
    let fs_ = Tmpfs::mount("1m");
    let state = tempfile::tempdir().unwrap();
    let logger = SandboxLogger::new(config(state.path(), Duration::from_millis(300))).unwrap();
    let mut log = logger
        .prepare(&ContainerLogSpec::new("c", fs_.path()))
        .unwrap();
    let filler = fs_.fill_leaving(8 * 1024);

    let data = pattern(300 * 1024, 1);
    let started = Instant::now();
    log.consume(stream::iter(chunks(&data, 4096)))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a full disk held the stream for {took:?}"
    );

    let on_disk = fs::read(fs_.path().join("stdout")).unwrap();
    assert!(
        !on_disk.is_empty() && data.starts_with(&on_disk),
        "what was written is an exact prefix"
    );
    let m = logger.metrics().snapshot();
    assert_eq!(
        m.bytes_written + m.bytes_dropped,
        data.len() as u64,
        "{m:?}"
    );
    assert!(m.bytes_dropped > 0 && m.write_errors > 0, "{m:?}");

    // Space comes back: the next output is written again.
    fs::remove_file(filler).unwrap();
    let after = b"after the disk was freed\n".to_vec();
    log.consume(stream::iter(chunks(&after, 4096)))
        .await
        .unwrap();
    let report = log.finish().await.unwrap();
    assert_eq!(report.dropped_bytes, m.bytes_dropped);
    let text = fs::read(fs_.path().join("stdout")).unwrap();
    assert!(
        text.ends_with(&after),
        "{report:?} {:?}",
        String::from_utf8_lossy(&text[text.len().saturating_sub(200)..])
    );
}

#[tokio::test]
async fn a_deleted_log_file_is_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let logger =
        SandboxLogger::new(config(&tmp.path().join("state"), Duration::from_secs(10))).unwrap();
    let mut log = logger
        .prepare(&ContainerLogSpec::new("c", tmp.path()))
        .unwrap();
    log.consume(stream::iter(chunks(b"before\n", 4096)))
        .await
        .unwrap();
    fs::remove_file(tmp.path().join("stdout")).unwrap();
    // Output keeps coming for a while: the next checkpoint notices the deletion.
    let slow = stream::iter(0..20).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, std::io::Error>(OutputChunk::new(
            OutputStream::Stdout,
            Some(SystemTime::now()),
            format!("line {i}\n"),
        ))
    });
    log.consume(slow).await.unwrap();
    log.finish().await.unwrap();
    let text = fs::read_to_string(tmp.path().join("stdout")).unwrap();
    assert!(text.ends_with("line 19\n"), "{text}");
    assert_eq!(logger.metrics().snapshot().files_recreated, 1);
}
