//! The directory's writer is hostile: every name may be a link, a FIFO, a device or a socket,
//! and may change between two calls. The host files outside it are the oracle: they must never
//! change, and no call may block.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use berth_safe_fs::{is_refused, Dir, Kind, OpenOptions};

fn append() -> OpenOptions {
    OpenOptions::new().append(true).create(true)
}

/// Runs `f` on a thread and fails the test if it has not returned within 5 s (a FIFO open that
/// blocks would hang forever).
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the call blocked for 5 s")
}

struct Setup {
    _tmp: tempfile::TempDir,
    sandbox: Dir,
    sandbox_path: std::path::PathBuf,
    host: std::path::PathBuf,
}

/// A sandbox and, beside it, a "host" directory with a file the sandbox's writer must not reach.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox_path = tmp.path().join("sandbox");
    let host = tmp.path().join("host");
    fs::create_dir(&sandbox_path).unwrap();
    fs::create_dir(&host).unwrap();
    fs::write(host.join("secret"), b"host bytes").unwrap();
    Setup {
        sandbox: Dir::open(&sandbox_path).unwrap(),
        sandbox_path,
        host,
        _tmp: tmp,
    }
}

#[test]
fn a_link_to_an_existing_host_file_is_not_written() {
    let s = setup();
    symlink(s.host.join("secret"), s.sandbox_path.join("stdout")).unwrap();
    let err = s.sandbox.open_file("stdout", append()).unwrap_err();
    assert!(is_refused(&err), "{err}");
    assert_eq!(fs::read(s.host.join("secret")).unwrap(), b"host bytes");
}

#[test]
fn a_dangling_link_does_not_create_a_host_file() {
    let s = setup();
    symlink(s.host.join("new"), s.sandbox_path.join("stdout")).unwrap();
    let err = s.sandbox.open_file("stdout", append()).unwrap_err();
    assert!(is_refused(&err), "{err}");
    assert!(!s.host.join("new").exists());
    // create_new refuses it too (EEXIST), and creates nothing either.
    let err = s
        .sandbox
        .open_file("stdout", OpenOptions::new().write(true).create_new(true))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(!s.host.join("new").exists());
}

#[test]
fn a_linked_parent_directory_is_not_followed() {
    let s = setup();
    symlink(&s.host, s.sandbox_path.join("logs")).unwrap();
    for rel in ["logs/secret", "logs/new"] {
        let err = s.sandbox.open_file(rel, append()).unwrap_err();
        assert!(is_refused(&err), "{rel}: {err}");
    }
    assert!(is_refused(&s.sandbox.open_dir("logs").unwrap_err()));
    assert!(is_refused(
        &s.sandbox.remove_file("logs/secret").unwrap_err()
    ));
    assert!(is_refused(
        &s.sandbox.create_dir("logs/d", 0o755).unwrap_err()
    ));
    assert!(is_refused(
        &s.sandbox.rename("logs/secret", "x").unwrap_err()
    ));
    assert!(!s.host.join("new").exists() && !s.host.join("d").exists());
    assert_eq!(fs::read(s.host.join("secret")).unwrap(), b"host bytes");
}

#[test]
fn escaping_paths_are_refused() {
    let s = setup();
    for rel in ["../host/secret", "/etc/passwd", "a/../../host/secret"] {
        let err = s
            .sandbox
            .open_file(rel, OpenOptions::new().read(true))
            .unwrap_err();
        assert!(is_refused(&err), "{rel}: {err}");
    }
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let s = setup();
    let fifo = s.sandbox_path.join("stdout");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let sandbox = Arc::new(s.sandbox);
    for opts in [
        append(),
        OpenOptions::new().read(true),
        OpenOptions::new().write(true),
    ] {
        let d = sandbox.clone();
        let err = within_5s(move || d.open_file("stdout", opts).unwrap_err());
        assert!(is_refused(&err), "{err}");
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
    // Listing, stat and removal do not block either.
    let d = sandbox.clone();
    let kinds = within_5s(move || d.entries().unwrap());
    assert_eq!(kinds[0].kind, Kind::Fifo);
    let d = sandbox.clone();
    within_5s(move || d.remove_file("stdout").unwrap());
}

#[test]
fn a_device_node_is_never_opened() {
    let s = setup();
    // A container with CAP_MKNOD (Docker's default) can make a node for a host disk; opening it
    // for real from the host would reach the disk. /dev/null's numbers stand in for it.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.sandbox_path.join("stdout"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let err = s.sandbox.open_file("stdout", append()).unwrap_err();
    assert!(is_refused(&err), "{err}");
    assert!(err.to_string().contains("character device"), "{err}");
}

#[test]
fn a_socket_or_directory_is_refused() {
    let s = setup();
    let _listener = std::os::unix::net::UnixListener::bind(s.sandbox_path.join("stdout")).unwrap();
    assert!(is_refused(
        &s.sandbox.open_file("stdout", append()).unwrap_err()
    ));
    fs::create_dir(s.sandbox_path.join("stderr")).unwrap();
    assert!(is_refused(
        &s.sandbox.open_file("stderr", append()).unwrap_err()
    ));
}

#[test]
fn a_hard_link_is_refused_where_asked() {
    let s = setup();
    fs::write(s.sandbox_path.join("a"), b"x").unwrap();
    fs::hard_link(s.sandbox_path.join("a"), s.sandbox_path.join("stdout")).unwrap();
    let err = s
        .sandbox
        .open_file("stdout", append().single_link(true))
        .unwrap_err();
    assert!(is_refused(&err), "{err}");
    assert!(s.sandbox.open_file("stdout", append()).is_ok());
}

#[test]
fn a_regular_file_is_appended_and_read() {
    let s = setup();
    fs::create_dir(s.sandbox_path.join("d")).unwrap();
    let mut f = s.sandbox.open_file("d/out", append()).unwrap();
    f.write_all(b"one ").unwrap();
    let mut f = s.sandbox.open_file("d/out", append()).unwrap();
    f.write_all(b"two").unwrap();
    let mut text = String::new();
    s.sandbox
        .open_file("d/out", OpenOptions::new().read(true))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "one two");
    let t = s
        .sandbox
        .open_file("d/out", OpenOptions::new().write(true).truncate(true))
        .unwrap();
    assert_eq!(t.metadata().unwrap().len(), 0);
    s.sandbox.rename("d/out", "moved").unwrap();
    assert_eq!(s.sandbox.metadata("moved").unwrap().st_size, 0);
}

#[test]
fn remove_all_removes_links_not_their_targets() {
    let s = setup();
    fs::create_dir_all(s.sandbox_path.join("a/b")).unwrap();
    fs::write(s.sandbox_path.join("a/b/f"), b"x").unwrap();
    symlink(&s.host, s.sandbox_path.join("a/hostdir")).unwrap();
    symlink(s.host.join("secret"), s.sandbox_path.join("a/b/hostfile")).unwrap();
    s.sandbox.remove_all("a").unwrap();
    assert!(!s.sandbox_path.join("a").exists());
    assert_eq!(fs::read(s.host.join("secret")).unwrap(), b"host bytes");
    // The directory itself swapped for a link: the link goes, the host dir stays.
    symlink(&s.host, s.sandbox_path.join("b")).unwrap();
    s.sandbox.remove_all("b").unwrap();
    assert!(s.host.join("secret").exists());
}

#[test]
fn opening_the_directory_itself_through_a_link_is_refused() {
    let s = setup();
    let link = s.sandbox_path.parent().unwrap().join("link");
    symlink(&s.host, &link).unwrap();
    assert!(is_refused(&Dir::open(&link).unwrap_err()));
}

/// A writer swaps `stdout` between a regular file, a link to a host file and a FIFO as fast as
/// it can while the agent opens and appends to it: the host file never changes, no open blocks.
#[test]
fn a_name_swapped_between_check_and_use_never_reaches_the_host() {
    let s = setup();
    let stop = Arc::new(AtomicBool::new(false));
    let sandbox_path = s.sandbox_path.clone();
    let secret = s.host.join("secret");
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tmp = sandbox_path.join(format!("t{}", i % 2));
                let _ = fs::remove_file(&tmp);
                match i % 3 {
                    0 => drop(fs::write(&tmp, b"")),
                    1 => drop(symlink(&secret, &tmp)),
                    _ => drop(rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &tmp,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(0o644),
                        0,
                    )),
                }
                let _ = fs::rename(&tmp, sandbox_path.join("stdout"));
                i += 1;
            }
        })
    };
    let sandbox = Arc::new(s.sandbox);
    let d = sandbox.clone();
    let (opened, refused) = within_5s(move || {
        let (mut opened, mut refused) = (0, 0);
        for _ in 0..20_000 {
            match d.open_file("stdout", append()) {
                Ok(mut f) => {
                    f.write_all(b"x").unwrap();
                    opened += 1;
                }
                Err(e) if is_refused(&e) || e.kind() == std::io::ErrorKind::NotFound => {
                    refused += 1
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        (opened, refused)
    });
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(fs::read(s.host.join("secret")).unwrap(), b"host bytes");
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}: the race did not happen"
    );
}

/// A container nests directories far deeper than any stack or fd limit allows a recursive walk
/// (each level of one holds a frame and a descriptor): removal must still take it all, on a
/// thread with a small stack, without running out of descriptors, and leave the host alone.
#[test]
fn remove_all_takes_a_tree_nested_deeper_than_a_stack_or_fd_limit() {
    use rustix::fs::{Mode, OFlags};
    let s = setup();
    const DEPTH: usize = 30_000;
    let mut cur = rustix::fs::open(
        &s.sandbox_path,
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    rustix::fs::mkdirat(&cur, "deep", Mode::from_raw_mode(0o755)).unwrap();
    cur = rustix::fs::openat(
        &cur,
        "deep",
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    for i in 0..DEPTH {
        rustix::fs::mkdirat(&cur, "d", Mode::from_raw_mode(0o755)).unwrap();
        if i % 1000 == 0 {
            fs::write(
                format!("/proc/self/fd/{}/f", std::os::fd::AsRawFd::as_raw_fd(&cur)),
                b"x",
            )
            .unwrap();
            symlink(
                &s.host,
                format!("/proc/self/fd/{}/l", std::os::fd::AsRawFd::as_raw_fd(&cur)),
            )
            .unwrap();
        }
        cur = rustix::fs::openat(&cur, "d", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .unwrap();
    }
    drop(cur);
    let fds_before = fs::read_dir("/proc/self/fd").unwrap().count();
    let sandbox = Arc::new(s.sandbox);
    let d = sandbox.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let r = d.remove_all("deep");
            let fds = fs::read_dir("/proc/self/fd").unwrap().count();
            let _ = tx.send((r.map_err(|e| e.to_string()), fds));
        })
        .unwrap();
    let (r, fds_during) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("remove_all did not finish (or its thread died)");
    r.unwrap();
    assert!(fds_during <= fds_before + 2, "{fds_before} -> {fds_during}");
    assert!(!s.sandbox_path.join("deep").exists());
    assert_eq!(fs::read(s.host.join("secret")).unwrap(), b"host bytes");
}

/// A files API may follow the links a container makes inside its own directory, never one that
/// leads out, and still opens nothing but regular files.
#[test]
fn following_links_beneath_stays_beneath_and_opens_only_regular_files() {
    let s = setup();
    let read = OpenOptions::new().read(true).follow_links_beneath(true);
    fs::create_dir(s.sandbox_path.join("sub")).unwrap();
    fs::write(s.sandbox_path.join("sub/data"), b"inside").unwrap();
    symlink("sub/data", s.sandbox_path.join("fine")).unwrap();
    symlink("sub", s.sandbox_path.join("subdir")).unwrap();
    symlink(s.host.join("secret"), s.sandbox_path.join("abs")).unwrap();
    symlink("../host/secret", s.sandbox_path.join("rel")).unwrap();
    symlink(&s.host, s.sandbox_path.join("hostdir")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.sandbox_path.join("sub/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    symlink("sub/fifo", s.sandbox_path.join("to-fifo")).unwrap();
    let mut text = String::new();
    s.sandbox
        .open_file("fine", read)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "inside");
    assert!(s.sandbox.open_file("subdir/data", read).is_ok());
    let listed = s.sandbox.open_dir_following_beneath("subdir").unwrap();
    assert_eq!(listed.entries().unwrap().len(), 2);
    for out in ["abs", "rel", "hostdir/secret"] {
        let e = s.sandbox.open_file(out, read).unwrap_err();
        assert!(is_refused(&e), "{out}: {e}");
        assert!(is_refused(
            &s.sandbox.metadata_following_beneath(out).unwrap_err()
        ));
    }
    assert!(is_refused(
        &s.sandbox.open_dir_following_beneath("hostdir").unwrap_err()
    ));
    let sandbox = Arc::new(s.sandbox);
    let d = sandbox.clone();
    let e = within_5s(move || d.open_file("to-fifo", read).unwrap_err());
    assert!(e.to_string().contains("FIFO"), "{e}");
    let d = sandbox.clone();
    let st = within_5s(move || d.metadata_following_beneath("to-fifo").unwrap());
    assert_eq!(Kind::from_mode(st.st_mode), Kind::Fifo);
    let e = sandbox.open_file("new", read.create(true)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(fs::read(s.host.join("secret")).unwrap(), b"host bytes");
}

/// Removing an empty directory never follows a link at its name or on the way there.
#[test]
fn remove_dir_removes_only_an_empty_directory_reached_without_links() {
    let s = setup();
    fs::create_dir(s.host.join("empty")).unwrap();
    symlink(s.host.join("empty"), s.sandbox_path.join("link")).unwrap();
    symlink(&s.host, s.sandbox_path.join("hostdir")).unwrap();
    assert!(s.sandbox.remove_dir("link").is_err());
    assert!(is_refused(
        &s.sandbox.remove_dir("hostdir/empty").unwrap_err()
    ));
    assert!(s.host.join("empty").is_dir());
    fs::create_dir_all(s.sandbox_path.join("a/b")).unwrap();
    assert!(s.sandbox.remove_dir("a").is_err(), "not empty");
    s.sandbox.remove_dir("a/b").unwrap();
    s.sandbox.remove_dir("a").unwrap();
}

#[test]
fn set_owner_changes_the_opened_directory_not_what_replaced_it() {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        panic!("this test gives a directory away, which needs root");
    }
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = tmp.path().join("sandbox");
    fs::create_dir(&sandbox).unwrap();
    let dir = Dir::open(&sandbox).unwrap();
    // The path is swapped for a link to a host directory after it was opened.
    let host = tmp.path().join("host");
    fs::create_dir(&host).unwrap();
    fs::rename(&sandbox, tmp.path().join("moved")).unwrap();
    symlink(&host, &sandbox).unwrap();
    dir.set_owner(65534, 65534).unwrap();
    let moved = fs::metadata(tmp.path().join("moved")).unwrap();
    assert_eq!((moved.uid(), moved.gid()), (65534, 65534));
    let host = fs::metadata(&host).unwrap();
    assert_eq!(
        (host.uid(), host.gid()),
        (0, 0),
        "the link's target is untouched"
    );
}
