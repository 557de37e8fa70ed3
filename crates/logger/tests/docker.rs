//! The logger against the real Docker daemon of the test bed (`cargo xtask testbed up`).
//!
//! Each test runs busybox containers labelled `io.berth.test=<test>` and removes them at start
//! and end.

mod common;
mod docker_support;

use std::fs;
use std::time::Duration;

use berth_logger::{
    ContainerLogSpec, ContainerLogger, LoggerConfig, RotatingLogger, SandboxLogger,
};
use common::{rotated_sizes, stream_contents};
use docker_support::{consume_until_exit, docker, follow_from, start, wait_exit, Run};

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = tmp.path().join("sandbox");
    fs::create_dir(&sandbox).unwrap();
    let state = tmp.path().join("state");
    (tmp, sandbox, state)
}

fn lines(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix} {i}\n")).collect()
}

#[tokio::test]
async fn stdout_and_stderr_land_in_their_own_files() {
    const TEST: &str = "logger-own-files";
    berth_testbed::remove_test_containers(TEST).await;
    let (_tmp, sandbox, state) = dirs();
    let logger = SandboxLogger::new(LoggerConfig::new(&state)).unwrap();
    let mut log = logger
        .prepare(&ContainerLogSpec::new("own-files", &sandbox))
        .unwrap();
    let docker = docker().await;
    let script = "i=0; while [ $i -lt 200 ]; do echo \"OUT-MARKER $i\"; echo \"ERR-MARKER $i\" >&2; i=$((i+1)); done";
    let id = start(
        &docker,
        Run {
            test: TEST,
            script,
            tty: false,
            env: vec![],
            log_config: logger.docker_log_config(),
        },
    )
    .await;
    consume_until_exit(&docker, &id, &mut log).await;
    assert_eq!(wait_exit(&docker, &id).await, 0);
    let report = log.finish().await.unwrap();
    assert!(report.complete);
    assert_eq!(
        fs::read_to_string(sandbox.join("stdout")).unwrap(),
        lines("OUT-MARKER", 200)
    );
    assert_eq!(
        fs::read_to_string(sandbox.join("stderr")).unwrap(),
        lines("ERR-MARKER", 200)
    );
    berth_testbed::remove_test_containers(TEST).await;
}

#[tokio::test]
async fn eleven_mib_with_a_two_mib_limit_and_keep_four() {
    const TEST: &str = "logger-rotate-in-sandbox";
    berth_testbed::remove_test_containers(TEST).await;
    let (_tmp, sandbox, state) = dirs();
    let logger = RotatingLogger::with_defaults(LoggerConfig::new(&state)).unwrap();
    let env = [
        ("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "2MB"),
        ("CONTAINER_LOGGER_STDOUT_ROTATE", "4"),
    ];
    let spec = ContainerLogSpec::new("rotate", &sandbox).with_env(env);
    let mut log = logger.prepare(&spec).unwrap();
    let docker = docker().await;
    // 11 MiB of 1 KiB lines: `yes` repeats a 1023-byte word and a newline.
    let word = "x".repeat(1023);
    let script = format!("yes {word} | head -c {}", 11 << 20);
    let env = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let id = start(
        &docker,
        Run {
            test: TEST,
            script: &script,
            tty: false,
            env,
            log_config: logger.docker_log_config(),
        },
    )
    .await;
    consume_until_exit(&docker, &id, &mut log).await;
    assert_eq!(wait_exit(&docker, &id).await, 0);
    let report = tokio::time::timeout(Duration::from_secs(5), log.finish())
        .await
        .expect("finish within 5 s")
        .unwrap();
    assert_eq!(report.stdout_bytes, 11 << 20);
    assert_eq!(report.dropped_bytes, 0);

    let sizes = rotated_sizes(&sandbox, "stdout");
    assert_eq!(sizes.len(), 4, "stdout.1..stdout.4, no stdout.5: {sizes:?}");
    assert!(!sandbox.join("stdout.5").exists());
    for s in &sizes {
        assert!(
            (2 << 20) - 4096 <= *s && *s <= 2 << 20,
            "rotated file of {s} bytes: {sizes:?}"
        );
    }
    let current = fs::metadata(sandbox.join("stdout")).unwrap().len();
    assert_eq!(
        current + sizes.iter().sum::<u64>() + report_deleted(&report, &sizes, current),
        11 << 20
    );
    assert!(
        ((1 << 20)..=(1 << 20) + 4 * 4096).contains(&current),
        "current stdout has {current} bytes"
    );
    let (kept, _) = stream_contents(&sandbox, "stdout");
    let line = format!("{word}\n");
    assert!(
        kept.starts_with(line.as_bytes()) && kept.len() % 1024 == 0,
        "files were cut at line ends"
    );
    assert!(
        kept.chunks(1024).all(|l| l == line.as_bytes()),
        "every kept line is intact"
    );
    berth_testbed::remove_test_containers(TEST).await;
}

/// Bytes in the deleted oldest file: what the report counts minus what is kept.
fn report_deleted(report: &berth_logger::LogReport, sizes: &[u64], current: u64) -> u64 {
    let deleted = report.stdout_bytes - current - sizes.iter().sum::<u64>();
    assert!(
        ((2 << 20) - 4096..=2 << 20).contains(&deleted),
        "{deleted} bytes rotated away"
    );
    deleted
}

#[tokio::test]
async fn a_tty_container_is_logged_as_stdout() {
    const TEST: &str = "logger-tty";
    berth_testbed::remove_test_containers(TEST).await;
    let (_tmp, sandbox, state) = dirs();
    let logger = SandboxLogger::new(LoggerConfig::new(&state)).unwrap();
    let mut log = logger
        .prepare(&ContainerLogSpec::new("tty", &sandbox))
        .unwrap();
    let docker = docker().await;
    let script = "i=0; while [ $i -lt 50 ]; do echo \"tty out $i\"; echo \"tty err $i\" >&2; i=$((i+1)); done";
    let id = start(
        &docker,
        Run {
            test: TEST,
            script,
            tty: true,
            env: vec![],
            log_config: logger.docker_log_config(),
        },
    )
    .await;
    consume_until_exit(&docker, &id, &mut log).await;
    assert_eq!(wait_exit(&docker, &id).await, 0);
    log.finish().await.unwrap();
    // One console: both streams in order, with the terminal's CR LF line ends.
    let want: String = (0..50)
        .map(|i| format!("tty out {i}\r\ntty err {i}\r\n"))
        .collect();
    assert_eq!(fs::read_to_string(sandbox.join("stdout")).unwrap(), want);
    assert_eq!(fs::read_to_string(sandbox.join("stderr")).unwrap(), "");
    berth_testbed::remove_test_containers(TEST).await;
}

#[tokio::test]
async fn an_agent_restart_neither_loses_nor_repeats_output() {
    const TEST: &str = "logger-restart";
    berth_testbed::remove_test_containers(TEST).await;
    let (_tmp, sandbox, state) = dirs();
    let config = || {
        let mut c = LoggerConfig::new(&state);
        c.checkpoint_interval = Duration::from_millis(200);
        c
    };
    let spec = ContainerLogSpec::new("restart", &sandbox);
    let docker = docker().await;
    // ~4 s of interleaved output, 40 lines per stream every 0.1 s.
    let script =
        "i=0; while [ $i -lt 1600 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); \
                  [ $((i % 40)) -eq 0 ] && sleep 0.1; done";
    let (id, first_since) = {
        let logger = RotatingLogger::with_defaults(config()).unwrap();
        let mut log = logger.prepare(&spec).unwrap();
        let id = start(
            &docker,
            Run {
                test: TEST,
                script,
                tty: false,
                env: vec![],
                log_config: logger.docker_log_config(),
            },
        )
        .await;
        // The agent dies mid-stream: the consume future and the log are dropped, no finish.
        let r = tokio::time::timeout(
            Duration::from_millis(1500),
            log.consume(follow_from(&docker, &id, None)),
        )
        .await;
        assert!(r.is_err(), "the container was still writing");
        (id, log.resume_since())
    };
    assert!(
        first_since.is_some(),
        "output was consumed before the restart"
    );
    // A dropped writer job may still be finishing; the "new agent" starts a moment later, while
    // the container keeps writing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let logger = RotatingLogger::with_defaults(config()).unwrap();
    let mut log = logger.recover(&spec).unwrap();
    let since = log.resume_since();
    assert!(since.is_some());
    consume_until_exit(&docker, &id, &mut log).await;
    assert_eq!(wait_exit(&docker, &id).await, 0);
    log.finish().await.unwrap();
    assert_eq!(
        fs::read_to_string(sandbox.join("stdout")).unwrap(),
        lines("out", 1600),
        "stdout exactly once"
    );
    assert_eq!(
        fs::read_to_string(sandbox.join("stderr")).unwrap(),
        lines("err", 1600),
        "stderr exactly once"
    );
    berth_testbed::remove_test_containers(TEST).await;
}
