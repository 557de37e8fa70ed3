//! Cross-process locks for tests that share one daemon-wide resource.

use std::fs::{File, OpenOptions};

/// Holds an exclusive lock until dropped.
#[derive(Debug)]
pub struct ExclusiveGuard {
    _file: File,
}

/// Takes the lock named `name`, waiting for any other test (in any process) that holds it.
///
/// Tests that pull or remove the large image hold `exclusive("large-image")`: the daemon has one image
/// store, so two of them at once would see each other's layers. The locks live in the system's temporary
/// folder, not in the test bed's, because every test bed on a machine shares its one daemon.
///
/// # Panics
/// When the lock file cannot be created or locked: a test cannot run safely without it.
pub fn exclusive(name: &str) -> ExclusiveGuard {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create lock folder {}: {e}", dir.display()));
    let path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    ExclusiveGuard { _file: file }
}

/// `$BERTH_TESTBED_LOCKS`, else `berth-testbed-locks` in the temporary folder.
fn lock_dir() -> std::path::PathBuf {
    std::env::var_os("BERTH_TESTBED_LOCKS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("berth-testbed-locks"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn lock_excludes_a_second_holder() {
        let dir = tempdir();
        std::env::set_var("BERTH_TESTBED_LOCKS", &dir);
        let inside = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (inside, max_seen) = (inside.clone(), max_seen.clone());
                std::thread::spawn(move || {
                    let _g = exclusive("unit");
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-testbed-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
