//! Preparing a container's log: settings from its environment, file ownership, bad input.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use berth_logger::settings::{ENV_MAX_STDERR_SIZE, ENV_MAX_STDOUT_SIZE, ENV_STDOUT_ROTATE};
use berth_logger::{
    ContainerLogSpec, ContainerLogger, LoggerConfig, LoggerError, OutputChunk, OutputStream,
    RotatingLogger, Rotation, SandboxLogger,
};
use common::rotated_sizes;
use futures_util::stream;

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = tmp.path().join("sandbox");
    fs::create_dir(&sandbox).unwrap();
    let state = tmp.path().join("state");
    (tmp, sandbox, state)
}

#[test]
fn an_unknown_variable_fails_prepare_and_leaves_nothing_behind() {
    let (_tmp, sandbox, state) = dirs();
    let logger = RotatingLogger::with_defaults(LoggerConfig::new(&state)).unwrap();
    let spec = ContainerLogSpec::new("c", &sandbox).with_env([
        ("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "2MB"),
        ("CONTAINER_LOGGER_KEEP", "3"),
    ]);
    let e = logger.prepare(&spec).unwrap_err();
    assert!(
        matches!(&e, LoggerError::UnknownVariable { name, .. } if name == "CONTAINER_LOGGER_KEEP"),
        "{e:?}"
    );
    assert!(e.to_string().contains("CONTAINER_LOGGER_KEEP"));
    assert_eq!(
        fs::read_dir(&sandbox).unwrap().count(),
        0,
        "no log files created"
    );
    let e = logger
        .recover(&ContainerLogSpec::new("c", &sandbox))
        .unwrap_err();
    assert!(
        matches!(e, LoggerError::NoCheckpoint { .. }),
        "no checkpoint created: {e}"
    );
    assert_eq!(common::file_names(&state), ["checkpoints.journal"]);
}

#[test]
fn bad_values_name_the_variable() {
    let (_tmp, sandbox, state) = dirs();
    let logger = RotatingLogger::with_defaults(LoggerConfig::new(&state)).unwrap();
    let spec = ContainerLogSpec::new("c", &sandbox).with_env([(ENV_MAX_STDERR_SIZE, "lots")]);
    let e = logger.prepare(&spec).unwrap_err().to_string();
    assert!(e.contains(ENV_MAX_STDERR_SIZE) && e.contains("lots"), "{e}");
}

#[test]
fn rotations_reflect_the_overrides() {
    let (_tmp, _sandbox, state) = dirs();
    let logger = RotatingLogger::with_defaults(LoggerConfig::new(&state)).unwrap();
    let env = [
        (ENV_MAX_STDOUT_SIZE.to_owned(), "8K".to_owned()),
        (ENV_STDOUT_ROTATE.to_owned(), "2".to_owned()),
    ]
    .into();
    let r = logger.rotations(&env).unwrap();
    assert_eq!(
        r.stdout,
        Rotation::BySize {
            max_size: 8192,
            keep: 2,
            newline_window: 4096
        }
    );
    assert_eq!(r.stderr, Rotation::by_size(10 << 20, 5).unwrap());
}

#[tokio::test]
async fn overrides_drive_the_files() {
    let (_tmp, sandbox, state) = dirs();
    let logger = RotatingLogger::with_defaults(LoggerConfig::new(&state)).unwrap();
    let spec = ContainerLogSpec::new("c", &sandbox)
        .with_env([(ENV_MAX_STDOUT_SIZE, "4096"), (ENV_STDOUT_ROTATE, "2")]);
    let mut log = logger.prepare(&spec).unwrap();
    let data = vec![b'x'; 5 * 4096 + 10];
    let t = Some(SystemTime::now());
    let chunks = vec![
        Ok::<_, std::io::Error>(OutputChunk::new(OutputStream::Stdout, t, data.clone())),
        Ok(OutputChunk::new(OutputStream::Stderr, t, data.clone())),
    ];
    log.consume(stream::iter(chunks)).await.unwrap();
    log.finish().await.unwrap();
    assert_eq!(rotated_sizes(&sandbox, "stdout"), vec![4096, 4096]);
    assert_eq!(fs::metadata(sandbox.join("stdout")).unwrap().len(), 10);
    // stderr keeps the 10 MiB default.
    assert_eq!(
        fs::metadata(sandbox.join("stderr")).unwrap().len(),
        data.len() as u64
    );
    assert!(!sandbox.join("stderr.1").exists());
}

#[tokio::test]
async fn files_belong_to_the_containers_user() {
    let (_tmp, sandbox, state) = dirs();
    let logger = SandboxLogger::new(LoggerConfig::new(&state)).unwrap();
    let spec = ContainerLogSpec::new("c", &sandbox).with_user("4321:4322");
    let log = logger.prepare(&spec).unwrap();
    log.finish().await.unwrap();
    for name in ["stdout", "stderr"] {
        let m = fs::metadata(sandbox.join(name)).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322), "{name}");
    }
    let e = logger
        .prepare(&ContainerLogSpec::new("c", &sandbox).with_user("no-such-user-berth"))
        .unwrap_err();
    assert!(e.to_string().contains("no-such-user-berth"), "{e}");
}

#[test]
fn a_missing_sandbox_or_bad_id_is_a_clear_error() {
    let (tmp, sandbox, state) = dirs();
    let logger = SandboxLogger::new(LoggerConfig::new(&state)).unwrap();
    let missing = tmp.path().join("nope");
    let e = logger
        .prepare(&ContainerLogSpec::new("c", &missing))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sandbox") && e.contains("nope"), "{e}");
    let e = logger
        .prepare(&ContainerLogSpec::new("../escape", &sandbox))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid container id `../escape`"), "{e}");
}

#[test]
fn docker_log_config_is_a_capped_local_driver() {
    let (_tmp, _sandbox, state) = dirs();
    let logger = SandboxLogger::new(LoggerConfig::new(&state)).unwrap();
    let c = logger.docker_log_config();
    assert_eq!(c.driver, "local");
    assert_eq!(c.options.get("max-size").map(String::as_str), Some("32m"));
    assert_eq!(c.options.get("max-file").map(String::as_str), Some("3"));
    assert_eq!(c.options.get("compress").map(String::as_str), Some("false"));
}
