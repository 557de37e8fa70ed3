//! The container is hostile: it replaces the names the logger writes in its sandbox (`stdout`,
//! `stderr`, the rotated `stdout.N`) with links to host files, hard links, FIFOs, sockets,
//! device nodes and directories — before the log is prepared, while it is written, before a
//! rotation, while the agent is down, and racing the logger. The logger runs as root in the agent.
//!
//! The oracle is outside the logger: files in a "host" directory beside the sandbox must never
//! be created or changed, and every call must return within a few seconds (a FIFO opened for
//! real blocks forever). The output itself must keep landing in regular files in the sandbox.

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_logger::{
    ContainerLog, ContainerLogSpec, ContainerLogger, LoggerConfig, OutputChunk, OutputStream,
    RotatingLogger, Rotation, SandboxLogger, StreamRotations,
};
use futures_util::stream;
use rustix::fs::{FileType, Mode};

struct Bed {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    sandbox: PathBuf,
    host: PathBuf,
}

/// A sandbox, the logger's state dir, and a "host" directory holding `secret`, which no log
/// write may reach.
fn bed() -> Bed {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = tmp.path().join("sandbox");
    let host = tmp.path().join("host");
    fs::create_dir(&sandbox).unwrap();
    fs::create_dir(&host).unwrap();
    fs::write(host.join("secret"), b"host bytes").unwrap();
    Bed {
        state: tmp.path().join("state"),
        sandbox,
        host,
        _tmp: tmp,
    }
}

impl Bed {
    /// The host directory is exactly as made: `secret` unchanged, nothing created.
    fn assert_host_untouched(&self) {
        let mut names: Vec<_> = fs::read_dir(&self.host)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["secret"], "a file was created on the host");
        assert_eq!(fs::read(self.host.join("secret")).unwrap(), b"host bytes");
        assert_eq!(
            fs::metadata(self.host.join("secret")).unwrap().mode() & 0o7777,
            0o644,
            "the host file's mode changed"
        );
    }

    fn spec(&self) -> ContainerLogSpec {
        ContainerLogSpec::new("c1", &self.sandbox)
    }

    fn regular(&self, name: &str) -> Vec<u8> {
        let p = self.sandbox.join(name);
        let m = fs::symlink_metadata(&p).unwrap();
        assert!(
            m.file_type().is_file() && m.nlink() == 1,
            "{name} is not a regular file with one link: {m:?}"
        );
        fs::read(p).unwrap()
    }
}

fn config(state: &Path) -> LoggerConfig {
    let mut c = LoggerConfig::new(state);
    c.checkpoint_interval = Duration::from_millis(10);
    c.flush_delay = Duration::from_millis(1);
    c.retry_window = Duration::from_millis(200);
    c
}

fn rotating(state: &Path, max: u64, keep: u32) -> RotatingLogger {
    let rot = Rotation::by_size(max, keep).unwrap().with_newline_window(0);
    RotatingLogger::new(config(state), StreamRotations::both(rot)).unwrap()
}

fn chunk(stream: OutputStream, text: &str) -> Result<OutputChunk, std::io::Error> {
    Ok(OutputChunk::new(
        stream,
        Some(SystemTime::now()),
        text.to_owned(),
    ))
}

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        FileType::Fifo,
        Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
}

/// A character device with /dev/null's numbers: opening it would reach a host device (a
/// container with Docker's default CAP_MKNOD can make one for a host disk).
fn mknod_device(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
}

/// Runs `f` and fails if it takes longer than 10 s: a FIFO opened for real never returns.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} blocked for 10 s"))
}

async fn write(log: &mut ContainerLog, items: Vec<Result<OutputChunk, std::io::Error>>) {
    bounded("consume", log.consume(stream::iter(items)))
        .await
        .unwrap();
}

/// Every kind of name a container can put where the logger's file goes.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    LinkToHostFile,
    DanglingLinkIntoHost,
    LinkToHostDir,
    HardLink,
    Fifo,
    Device,
    Socket,
    Directory,
}

const ALL: [Hostile; 8] = [
    Hostile::LinkToHostFile,
    Hostile::DanglingLinkIntoHost,
    Hostile::LinkToHostDir,
    Hostile::HardLink,
    Hostile::Fifo,
    Hostile::Device,
    Hostile::Socket,
    Hostile::Directory,
];

/// Puts `kind` at `name` in the sandbox (removing what was there). Returns a guard to keep alive
/// (a socket's listener).
fn plant(bed: &Bed, name: &str, kind: Hostile) -> Option<std::os::unix::net::UnixListener> {
    let p = bed.sandbox.join(name);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&p).unwrap(),
        Ok(_) => fs::remove_file(&p).unwrap(),
        Err(_) => {}
    }
    match kind {
        Hostile::LinkToHostFile => symlink(bed.host.join("secret"), &p).unwrap(),
        Hostile::DanglingLinkIntoHost => symlink(bed.host.join("created"), &p).unwrap(),
        Hostile::LinkToHostDir => symlink(&bed.host, &p).unwrap(),
        Hostile::HardLink => {
            let keep = bed.sandbox.join(format!("{name}.keep"));
            fs::write(&keep, b"the container's own file").unwrap();
            fs::hard_link(&keep, &p).unwrap();
        }
        Hostile::Fifo => mkfifo(&p),
        Hostile::Device => mknod_device(&p),
        Hostile::Socket => return Some(std::os::unix::net::UnixListener::bind(&p).unwrap()),
        Hostile::Directory => {
            fs::create_dir(&p).unwrap();
            fs::write(p.join("inner"), b"x").unwrap();
            symlink(bed.host.join("secret"), p.join("to-host")).unwrap();
            symlink(&bed.host, p.join("to-host-dir")).unwrap();
        }
    }
    None
}

/// A hard link's other name keeps the container's bytes: writing through the link would have
/// changed them.
fn assert_other_names_untouched(bed: &Bed, name: &str, kind: Hostile) {
    if let Hostile::HardLink = kind {
        let keep = bed.sandbox.join(format!("{name}.keep"));
        assert_eq!(fs::read(keep).unwrap(), b"the container's own file");
    }
}

/// The container replaced `stdout` and `stderr` before the log was prepared (the issue's
/// `ln -s /some/host/path stdout; ln -s /existing/host/file stderr`, and every other kind): the
/// logger writes through none of them, and the output lands in new regular files.
#[tokio::test]
async fn names_taken_before_prepare_are_replaced_never_written_through() {
    for kind in ALL {
        for logger_kind in ["sandbox", "rotating"] {
            let bed = bed();
            let _g1 = plant(&bed, "stdout", kind);
            let _g2 = plant(&bed, "stderr", kind);
            let logger: Box<dyn ContainerLogger> = match logger_kind {
                "sandbox" => Box::new(SandboxLogger::new(config(&bed.state)).unwrap()),
                _ => Box::new(rotating(&bed.state, 1 << 20, 3)),
            };
            let mut log = logger.prepare(&bed.spec()).unwrap();
            write(
                &mut log,
                vec![
                    chunk(OutputStream::Stdout, "out\n"),
                    chunk(OutputStream::Stderr, "err\n"),
                ],
            )
            .await;
            let report = bounded("finish", log.finish()).await.unwrap();
            assert!(report.complete, "{kind:?} {logger_kind}: {report:?}");
            bed.assert_host_untouched();
            assert_eq!(bed.regular("stdout"), b"out\n", "{kind:?} {logger_kind}");
            assert_eq!(bed.regular("stderr"), b"err\n", "{kind:?} {logger_kind}");
            assert_other_names_untouched(&bed, "stdout", kind);
            assert_eq!(
                logger.metrics().snapshot().names_replaced,
                2,
                "{kind:?} {logger_kind}"
            );
        }
    }
}

/// The container removes the file the logger is writing and puts something else at its name
/// (the issue: `rm stdout stderr; ln -s ... stdout`; `rm stdout; mkfifo stdout`): the logger
/// notices at its next checkpoint, takes the name back, and goes on — also at `finish`, which
/// must not block on a FIFO.
#[tokio::test]
async fn names_taken_while_writing_are_replaced_never_written_through() {
    for kind in ALL {
        let bed = bed();
        let logger = rotating(&bed.state, 1 << 20, 3);
        let mut log = logger.prepare(&bed.spec()).unwrap();
        write(&mut log, vec![chunk(OutputStream::Stdout, "before\n")]).await;
        let _g1 = plant(&bed, "stdout", kind);
        let _g2 = plant(&bed, "stderr", kind);
        // Past a checkpoint interval: the next batch looks at the files before it is written,
        // so output after a quiet spell is not lost with the file the container removed.
        tokio::time::sleep(Duration::from_millis(20)).await;
        write(&mut log, vec![chunk(OutputStream::Stdout, "quiet\n")]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        write(
            &mut log,
            vec![
                chunk(OutputStream::Stdout, "after\n"),
                chunk(OutputStream::Stderr, "err\n"),
            ],
        )
        .await;
        let report = bounded("finish", log.finish()).await.unwrap();
        assert!(report.complete, "{kind:?}: {report:?}");
        bed.assert_host_untouched();
        assert_eq!(bed.regular("stdout"), b"quiet\nafter\n", "{kind:?}");
        assert_eq!(bed.regular("stderr"), b"err\n", "{kind:?}");
        assert_other_names_untouched(&bed, "stdout", kind);

        // Taken again right before `finish`, with nothing left to write: finish still returns,
        // and writes through nothing.
        let mut log = logger.recover(&bed.spec()).unwrap();
        write(&mut log, vec![]).await;
        let _g3 = plant(&bed, "stdout", kind);
        let report = bounded("finish", log.finish()).await.unwrap();
        assert!(report.complete, "{kind:?}: {report:?}");
        bed.assert_host_untouched();
    }
}

/// The rotated names (`stdout.1` .. `stdout.N`) replaced before rotations: rotation moves and
/// removes names without following or opening them, and the output stays in regular files.
#[tokio::test]
async fn rotated_names_taken_before_a_rotation_are_moved_or_removed_never_followed() {
    for kind in ALL {
        let bed = bed();
        // Each line fills a file exactly.
        let logger = rotating(&bed.state, 7, 3);
        let mut log = logger.prepare(&bed.spec()).unwrap();
        let mut guards = Vec::new();
        for i in 1..=3 {
            guards.push(plant(&bed, &format!("stdout.{i}"), kind));
        }
        // 5 files' worth: every rotated name is shifted and the oldest removed, twice over.
        let items = (0..5)
            .map(|i| chunk(OutputStream::Stdout, &format!("line {i}\n")))
            .collect();
        write(&mut log, items).await;
        let report = bounded("finish", log.finish()).await.unwrap();
        assert!(report.complete, "{kind:?}: {report:?}");
        assert_eq!(report.dropped_bytes, 0, "{kind:?}");
        bed.assert_host_untouched();
        assert_eq!(bed.regular("stdout"), b"line 4\n", "{kind:?}");
        for (i, want) in [(1, "line 3\n"), (2, "line 2\n"), (3, "line 1\n")] {
            assert_eq!(
                bed.regular(&format!("stdout.{i}")),
                want.as_bytes(),
                "{kind:?}"
            );
        }
    }
}

/// The agent is down (killed after a checkpoint); meanwhile the container replaces the current
/// and the rotated names. Recovery must not hang on a FIFO (the issue: "a FIFO left at `stdout`
/// or `stdout.1` makes the next start hang"), must not cut or write a host file, and the log
/// goes on in a new regular file.
#[tokio::test]
async fn names_taken_while_the_agent_is_down_are_left_alone_by_recovery() {
    for kind in ALL {
        for rotated_too in [false, true] {
            let bed = bed();
            {
                let logger = rotating(&bed.state, 8, 3);
                let mut log = logger.prepare(&bed.spec()).unwrap();
                let items = (0..3)
                    .map(|i| chunk(OutputStream::Stdout, &format!("line {i}\n")))
                    .collect();
                write(&mut log, items).await;
                write(&mut log, vec![chunk(OutputStream::Stdout, "tail")]).await;
                // Dropped without finish: an agent killed mid-log.
            }
            let _g1 = plant(&bed, "stdout", kind);
            let _g2 = rotated_too.then(|| plant(&bed, "stdout.1", kind));
            let _g3 = plant(&bed, "stderr", kind);
            let logger = rotating(&bed.state, 8, 3);
            let spec = bed.spec();
            let recovered = bounded("recover", async {
                tokio::task::spawn_blocking(move || logger.recover(&spec).map(|l| (logger, l)))
                    .await
                    .unwrap()
            })
            .await;
            let (logger, mut log) = recovered.unwrap();
            write(&mut log, vec![chunk(OutputStream::Stdout, "resumed\n")]).await;
            let report = bounded("finish", log.finish()).await.unwrap();
            assert!(report.complete, "{kind:?}: {report:?}");
            bed.assert_host_untouched();
            assert!(
                bed.regular("stdout").ends_with(b"resumed\n"),
                "{kind:?} rotated {rotated_too}"
            );
            assert_other_names_untouched(&bed, "stdout", kind);
            drop(logger);
        }
    }
}

/// A container swaps `stdout` between a regular file, a link to a host file, a dangling link
/// into the host and a FIFO as fast as it can, while the logger writes and checkpoints every
/// few milliseconds, many times over: nothing reaches the host, nothing blocks, the log never
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_swapped_continuously_never_reaches_the_host() {
    let bed = bed();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (sandbox, host) = (bed.sandbox.clone(), bed.host.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tmp = sandbox.join("swap.tmp");
                let _ = fs::remove_file(&tmp);
                match i % 4 {
                    0 => drop(fs::write(&tmp, b"")),
                    1 => drop(symlink(host.join("secret"), &tmp)),
                    2 => drop(symlink(host.join("created"), &tmp)),
                    _ => mkfifo(&tmp),
                }
                for name in ["stdout", "stdout.1"] {
                    let _ = fs::rename(&tmp, sandbox.join(name));
                }
                i += 1;
            }
            i
        })
    };
    let logger = rotating(&bed.state, 64, 2);
    let mut log = logger.prepare(&bed.spec()).unwrap();
    for round in 0..400 {
        let items = (0..4)
            .map(|i| chunk(OutputStream::Stdout, &format!("round {round} line {i}\n")))
            .collect();
        write(&mut log, items).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = bounded("finish", log.finish()).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 1000, "only {swaps} swaps: the race did not happen");
    bed.assert_host_untouched();
    assert!(
        logger.metrics().snapshot().names_replaced > 0,
        "the logger never met a swapped name: the race did not happen ({report:?})"
    );
    // What is at the names now is the swapper's last move or the logger's file; neither is a
    // host file (checked above), and nothing was left open on a FIFO.
    let m = fs::symlink_metadata(bed.sandbox.join("stdout")).unwrap();
    assert!(!m.file_type().is_block_device());
}

/// Unmounts (lazily) on drop, so a failing test leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A name the logger cannot take back (a mount point at `stdout`: only a privileged container
/// can make one, but the agent must not fail on it) does not fail the log: `prepare` succeeds,
/// the stream's output is retried, then dropped and counted, the other stream is written, and
/// once the name is free again the output lands in a new regular file. Needs root (mount), as
/// the agent does.
#[tokio::test]
async fn a_name_that_cannot_be_taken_back_leaves_the_stream_waiting_not_the_log_failed() {
    let bed = bed();
    let mountpoint = bed.sandbox.join("stdout");
    fs::create_dir(&mountpoint).unwrap();
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mountpoint)
        .output()
        .expect("run mount(8)");
    assert!(
        out.status.success(),
        "cannot mount a tmpfs at {} (this test needs root): {}",
        mountpoint.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mounted = Mounted(mountpoint.clone());
    fs::write(mountpoint.join("inner"), b"x").unwrap();
    let logger = rotating(&bed.state, 1 << 20, 3);
    let mut log = bounded("prepare", async { logger.prepare(&bed.spec()) })
        .await
        .unwrap();
    write(
        &mut log,
        vec![
            chunk(OutputStream::Stdout, "held\n"),
            chunk(OutputStream::Stderr, "err\n"),
        ],
    )
    .await;
    // The name is freed (the mount goes); past a checkpoint interval the next batch takes it.
    drop(mounted);
    tokio::time::sleep(Duration::from_millis(20)).await;
    write(&mut log, vec![chunk(OutputStream::Stdout, "free\n")]).await;
    let report = bounded("finish", log.finish()).await.unwrap();
    assert_eq!(report.dropped_bytes, 5, "{report:?}");
    assert_eq!(bed.regular("stdout"), b"free\n");
    assert_eq!(bed.regular("stderr"), b"err\n");
    bed.assert_host_untouched();
}
