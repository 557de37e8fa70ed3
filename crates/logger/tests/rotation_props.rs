//! Property tests: rotation is byte-exact whatever the chunking, sizes and keep counts.

mod common;

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_logger::{
    ContainerLogSpec, ContainerLogger, LoggerConfig, OutputChunk, OutputStream, RotatingLogger,
    Rotation, StreamRotations,
};
use common::{rotated_sizes, stream_contents};
use futures_util::stream;
use proptest::prelude::*;

fn fast_tempdir() -> tempfile::TempDir {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) => dir,
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

fn chunk_strategy() -> impl Strategy<Value = (bool, Vec<u8>)> {
    // Bytes from a small alphabet so newlines are common; chunk sizes from 1 to 300 bytes.
    (
        any::<bool>(),
        prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b'\n', 0u8, 0xff]),
            1..300,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn rotated_files_are_the_stream_minus_deleted_files(
        chunks in prop::collection::vec(chunk_strategy(), 1..60),
        max_size in 1u64..400,
        keep in 0u32..6,
        window in 0u64..100,
        batch_bytes in 1usize..700,
    ) {
        // On tmpfs when there is one: this property is about bytes, not durability, and the many
        // rotation checkpoints would otherwise wait on fsync for most of the run.
        let tmp = fast_tempdir();
        let sandbox = tmp.path().join("sandbox");
        fs::create_dir(&sandbox).unwrap();
        let mut config = LoggerConfig::new(tmp.path().join("state"));
        config.batch_bytes = batch_bytes;
        let rotation = Rotation::by_size(max_size, keep).unwrap().with_newline_window(window);
        let logger = RotatingLogger::new(config, StreamRotations::both(rotation)).unwrap();

        let mut expected = [Vec::new(), Vec::new()];
        let items: Vec<Result<OutputChunk, std::io::Error>> = chunks
            .iter()
            .enumerate()
            .map(|(i, (err, data))| {
                let s = if *err { OutputStream::Stderr } else { OutputStream::Stdout };
                expected[usize::from(*err)].extend_from_slice(data);
                let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + 7 * i as u64);
                Ok(OutputChunk::new(s, Some(t), data.clone()))
            })
            .collect();

        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let report = rt.block_on(async {
            let mut log = logger.prepare(&ContainerLogSpec::new("c", &sandbox)).unwrap();
            log.consume(stream::iter(items)).await.unwrap();
            log.finish().await.unwrap()
        });
        prop_assert!(report.complete);
        prop_assert_eq!(report.stdout_bytes, expected[0].len() as u64);
        prop_assert_eq!(report.stderr_bytes, expected[1].len() as u64);

        let Rotation::BySize { newline_window, .. } = rotation else { unreachable!() };
        for (s, name) in [(0, "stdout"), (1, "stderr")] {
            let (got, rotated) = stream_contents(&sandbox, name);
            prop_assert!(rotated <= keep as usize, "{} rotated files, keep {}", rotated, keep);
            prop_assert!(expected[s].ends_with(&got), "{}: files are not a suffix of the stream", name);
            if rotated < keep as usize {
                // Nothing can have been deleted yet.
                prop_assert_eq!(&got, &expected[s]);
            }
            for (i, size) in rotated_sizes(&sandbox, name).into_iter().enumerate() {
                let content = fs::read(sandbox.join(format!("{name}.{}", i + 1))).unwrap();
                prop_assert!(size <= max_size && size >= max_size - newline_window, "{}.{} has {} bytes", name, i + 1, size);
                if size < max_size {
                    prop_assert_eq!(content.last(), Some(&b'\n'), "an early cut ends at a newline");
                }
            }
            prop_assert!(fs::metadata(sandbox.join(name)).unwrap().len() <= max_size);
        }
    }
}

#[tokio::test]
async fn eleven_mib_with_a_two_mib_limit_keeps_four_files() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = tmp.path().join("sandbox");
    fs::create_dir(&sandbox).unwrap();
    let logger =
        RotatingLogger::with_defaults(LoggerConfig::new(tmp.path().join("state"))).unwrap();
    let spec = ContainerLogSpec::new("c", &sandbox).with_env([
        ("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "2MB"),
        ("CONTAINER_LOGGER_STDOUT_ROTATE", "4"),
    ]);
    let mut log = logger.prepare(&spec).unwrap();
    // 11 MiB in lines of 1 KiB (1023 bytes + newline), in 16 KiB chunks as Docker sends them.
    let line: Vec<u8> = (0..1023)
        .map(|i| b'a' + (i % 26) as u8)
        .chain([b'\n'])
        .collect();
    let all: Vec<u8> = line.iter().copied().cycle().take(11 << 20).collect();
    let chunks: Vec<Result<OutputChunk, std::io::Error>> = all
        .chunks(16 << 10)
        .map(|c| {
            Ok(OutputChunk::new(
                OutputStream::Stdout,
                Some(SystemTime::now()),
                c.to_vec(),
            ))
        })
        .collect();
    log.consume(stream::iter(chunks)).await.unwrap();
    let report = log.finish().await.unwrap();
    assert_eq!(report.stdout_bytes, 11 << 20);
    assert_eq!(report.rotations, 5);
    assert_eq!(rotated_sizes(&sandbox, "stdout"), vec![2 << 20; 4]);
    assert!(!sandbox.join("stdout.5").exists());
    assert_eq!(fs::metadata(sandbox.join("stdout")).unwrap().len(), 1 << 20);
    let (got, _) = stream_contents(&sandbox, "stdout");
    assert_eq!(
        got,
        all[2 << 20..],
        "the first 2 MiB were rotated away, the rest is exact"
    );
}
