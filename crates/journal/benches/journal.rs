//! `cargo bench -p berth-journal --bench journal` (`cargo xtask bench journal`).
//!
//! The checkpoint pattern of an agent launching many containers at once: C writers (default
//! 50), each storing R records of ~1 KiB (default 6) one after another, every third durable.
//! Measured two ways in the same run, alternating for several rounds, in a directory on the
//! file system of `TMPDIR`:
//!
//! - **journal**: `Journal::put`, one journal shared by all writers (group commit);
//! - **files**: the scheme before the journal — a file per writer, each record written to a
//!   temporary file, fsynced when durable, renamed over the file (directory fsynced), on
//!   Tokio's blocking threads.
//!
//! Prints the median wall time and process CPU (user + system) per record for both, their
//! ratio, and how many fsyncs each did. Environment: `BERTH_BENCH_WRITERS`,
//! `BERTH_BENCH_RECORDS`, `BERTH_BENCH_ROUNDS` (default 5). `BERTH_BENCH_SHORT=1` (CI) makes
//! the defaults 8 writers, 3 records, 2 rounds.
//!
//! Every round checks its outcome, whatever the sizes: every record written, the journal empty
//! when read back after the removals, at least one and at most one fsync per durable write
//! (the files scheme exactly two), and no file left behind.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use berth_journal::{Durability, Journal};

/// `BERTH_BENCH_SHORT=1`: small sizes and few rounds, to check the benchmark still works.
fn short() -> bool {
    std::env::var("BERTH_BENCH_SHORT").is_ok_and(|v| v == "1")
}

/// `name` from the environment, else `full` (or `small` in the short mode).
fn env_usize(name: &str, full: usize, small: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short() { small } else { full })
}

/// How many of a writer's `records` are durable.
fn durable_count(records: usize) -> u64 {
    (0..records)
        .filter(|i| durability(*i) == Durability::Durable)
        .count() as u64
}

/// CPU seconds of this process (all threads, user + system), to the nanosecond.
fn cpu_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn record(writer: usize, i: usize) -> Vec<u8> {
    let mut r = format!("{{\"writer\":{writer},\"seq\":{i},\"pad\":\"").into_bytes();
    r.resize(1000, b'x');
    r.extend_from_slice(b"\"}");
    r
}

fn durability(i: usize) -> Durability {
    if i.is_multiple_of(3) {
        Durability::Durable
    } else {
        Durability::Lazy
    }
}

/// The scheme the journal replaced: temp file, fsync when durable, rename, directory fsync.
fn store_file(dir: &Path, key: &str, value: &[u8], d: Durability, fsyncs: &AtomicU64) {
    let tmp = dir.join(format!("{key}.tmp"));
    let path = dir.join(format!("{key}.json"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .expect("create temp file");
    f.write_all(value).expect("write");
    if d == Durability::Durable {
        f.sync_all().expect("fsync");
        fsyncs.fetch_add(1, Ordering::Relaxed);
    }
    drop(f);
    fs::rename(&tmp, &path).expect("rename");
    if d == Durability::Durable {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .expect("fsync dir");
        fsyncs.fetch_add(1, Ordering::Relaxed);
    }
}

async fn journal_round(dir: &Path, writers: usize, records: usize) -> (f64, f64, u64) {
    let (journal, _) = Journal::open(dir.join("bench.journal")).expect("open journal");
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let j = journal.clone();
            tokio::spawn(async move {
                for i in 0..records {
                    j.put(&format!("c{w}"), record(w, i), durability(i))
                        .await
                        .expect("journal put");
                }
                j.remove(&format!("c{w}"), Durability::Lazy)
                    .await
                    .expect("journal remove");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - cpu0);
    let stats = journal.stats();
    journal.close().expect("close");
    // What was measured must have happened: every record appended, every key gone when the
    // file is read back, and the durable writes fsynced (shared, so at most one each).
    let appended = (writers * (records + 1)) as u64;
    assert_eq!(stats.records, appended, "records appended to the journal");
    let replay = Journal::read(dir.join("bench.journal")).expect("read the journal back");
    assert!(
        replay.entries.is_empty(),
        "keys left in the journal after every writer removed its own: {:?}",
        replay.entries.keys().collect::<Vec<_>>()
    );
    let durable = writers as u64 * durable_count(records);
    // A reserve's fsync also makes the records before it durable, so it may stand in for one.
    assert!(
        stats.syncs <= durable && stats.syncs + stats.reserves >= 1,
        "{} fsyncs and {} reserves for {durable} durable writes",
        stats.syncs,
        stats.reserves
    );
    (wall, cpu, stats.syncs)
}

async fn files_round(dir: &Path, writers: usize, records: usize) -> (f64, f64, u64) {
    let root = Arc::new(dir.join("files"));
    fs::create_dir_all(&*root).expect("files dir");
    let fsyncs = Arc::new(AtomicU64::new(0));
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (root, fsyncs) = (root.clone(), fsyncs.clone());
            tokio::spawn(async move {
                for i in 0..records {
                    let (root, fsyncs) = (root.clone(), fsyncs.clone());
                    tokio::task::spawn_blocking(move || {
                        store_file(
                            &root,
                            &format!("c{w}"),
                            &record(w, i),
                            durability(i),
                            &fsyncs,
                        )
                    })
                    .await
                    .expect("file write");
                }
                let root = root.clone();
                tokio::task::spawn_blocking(move || {
                    fs::remove_file(root.join(format!("c{w}.json"))).expect("remove")
                })
                .await
                .expect("file remove");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - cpu0);
    let fsyncs = fsyncs.load(Ordering::Relaxed);
    // File and directory fsync for each durable write, and every file removed.
    assert_eq!(fsyncs, 2 * writers as u64 * durable_count(records));
    let left: Vec<_> = fs::read_dir(&*root)
        .expect("read the files directory")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    (wall, cpu, fsyncs)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name us means "not this one".
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "journal".contains(a.as_str())) {
        return;
    }
    let writers = env_usize("BERTH_BENCH_WRITERS", 50, 8);
    let records = env_usize("BERTH_BENCH_RECORDS", 6, 3);
    let rounds = env_usize("BERTH_BENCH_ROUNDS", 5, 2);
    let n = (writers * (records + 1)) as f64;
    let base: PathBuf = std::env::temp_dir();
    println!(
        "journal benchmark: {writers} writers x {records} records of ~1 KiB (every third durable) + a removal; {rounds} rounds, in {}",
        base.display()
    );
    let (mut jw, mut jc, mut fw, mut fc) = (vec![], vec![], vec![], vec![]);
    let (mut jsyncs, mut fsyncs) = (0, 0);
    for round in 0..rounds {
        let dir = tempfile::tempdir_in(&base).expect("temp dir");
        let (w, c, s) = journal_round(dir.path(), writers, records).await;
        jw.push(w);
        jc.push(c);
        jsyncs = s;
        let (w2, c2, s2) = files_round(dir.path(), writers, records).await;
        fw.push(w2);
        fc.push(c2);
        fsyncs = s2;
        println!(
            "  round {round}: journal {:.1} ms wall, {:.1} ms CPU, {s} fsyncs; files {:.1} ms wall, {:.1} ms CPU, {s2} fsyncs",
            w * 1e3,
            c * 1e3,
            w2 * 1e3,
            c2 * 1e3
        );
    }
    let (jw, jc, fw, fc) = (
        median(&mut jw),
        median(&mut jc),
        median(&mut fw),
        median(&mut fc),
    );
    println!(
        "median per record: journal {:.1} us wall, {:.1} us CPU; files {:.1} us wall, {:.1} us CPU",
        jw * 1e6 / n,
        jc * 1e6 / n,
        fw * 1e6 / n,
        fc * 1e6 / n
    );
    println!(
        "ratio journal/files: wall {:.2}, CPU {:.2}; fsyncs per round {jsyncs} vs {fsyncs}",
        jw / fw,
        jc / fc
    );
}
