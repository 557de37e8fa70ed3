use super::*;
use std::path::PathBuf;

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.journal");
    (dir, path)
}

/// Options without reserved space, for tests that count fsyncs or compare sizes exactly.
fn unreserved() -> Options {
    Options {
        reserve_bytes: 0,
        ..Options::default()
    }
}

#[tokio::test]
async fn values_overwrite_and_removals_survive_a_reopen() {
    let (_d, path) = tmp();
    let (j, replay) = Journal::open_with(&path, unreserved()).unwrap();
    assert_eq!(replay, Replay::default());
    j.put("a", b"1".to_vec(), Durability::Lazy).await.unwrap();
    j.put("b", b"2".to_vec(), Durability::Durable)
        .await
        .unwrap();
    j.put("a", b"3".to_vec(), Durability::Lazy).await.unwrap();
    j.remove("b", Durability::Lazy).await.unwrap();
    j.remove("never-there", Durability::Lazy).await.unwrap();
    j.put("c", vec![], Durability::Lazy).await.unwrap();
    let stats = j.stats();
    assert_eq!(stats.records, 6);
    assert_eq!(stats.syncs, 1, "only the durable write was fsynced");
    drop(j);
    let (j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.records, 6);
    assert_eq!(replay.dropped_tail, None);
    let entries: Vec<(&str, &[u8])> = replay
        .entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(entries, [("a", &b"3"[..]), ("c", &b""[..])]);
    assert_eq!(
        j.stats().file_bytes,
        std::fs::metadata(&path).unwrap().len()
    );
}

/// Appends land in zeroed space reserved ahead of them, so the file's size stays put between
/// top-ups (an fsync then writes the data alone); the reserve is topped up in the background
/// when less than half is left; replay reads the zeros as free space, not as a torn write.
#[test]
fn appends_go_into_reserved_space_that_is_topped_up() {
    let (_d, path) = tmp();
    let reserve = 8192;
    let options = Options {
        reserve_bytes: reserve,
        ..Options::default()
    };
    let (j, _) = Journal::open_with(&path, options).unwrap();
    let file_len = || std::fs::metadata(&path).unwrap().len();
    let record = format::encoded_len("b", &[1; 100]) as u64;
    j.put_blocking("a", vec![1; 100], Durability::Durable)
        .unwrap();
    let first = j.stats().file_bytes;
    assert_eq!(
        file_len(),
        first + reserve,
        "reserved after the first record"
    );
    let stats = j.stats();
    assert_eq!(
        (stats.reserves, stats.syncs),
        (1, 0),
        "the reserve's fsync covered the record"
    );
    // 30 more records fill under half of the reserve: the size does not move.
    for _ in 0..30 {
        j.put_blocking("b", vec![2; 100], Durability::Lazy).unwrap();
    }
    j.sync_blocking().unwrap();
    assert_eq!(j.stats().file_bytes, first + 30 * record);
    assert_eq!(file_len(), first + reserve, "appends did not grow the file");
    // Ten more leave under half: topped up to a full reserve after the records again.
    for _ in 0..10 {
        j.put_blocking("b", vec![3; 100], Durability::Lazy).unwrap();
    }
    j.sync_blocking().unwrap();
    let end = j.stats().file_bytes;
    assert!(
        file_len() > first + reserve && file_len() - end >= reserve / 2,
        "records end at {end}, file is {} bytes",
        file_len()
    );
    drop(j);
    let (j, replay) = Journal::open(&path).unwrap();
    assert_eq!(
        replay.dropped_tail, None,
        "reserved zeros are not a torn write"
    );
    assert_eq!(replay.records, 41);
    assert_eq!(replay.entries["b"], vec![3; 100]);
    assert_eq!(
        j.stats().file_bytes,
        end,
        "the next record goes where the last ended"
    );
    drop(j);

    // Without reserving, every append grows the file.
    let (_d2, path) = tmp();
    let (j, _) = Journal::open_with(&path, unreserved()).unwrap();
    j.put_blocking("a", vec![1; 100], Durability::Durable)
        .unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        j.stats().file_bytes
    );
}

/// A crash mid-write leaves a partial record: it is dropped (and cut off the file), the
/// records before it are kept, and writes after the reopen replay normally.
#[tokio::test]
async fn a_torn_tail_is_dropped_and_the_journal_goes_on() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open(&path).unwrap();
    j.put("kept", b"yes".to_vec(), Durability::Durable)
        .await
        .unwrap();
    j.put("torn", vec![7; 100], Durability::Lazy).await.unwrap();
    let end = j.stats().file_bytes as usize;
    j.close().unwrap();
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..end - 40]).unwrap();

    let (j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.entries.keys().collect::<Vec<_>>(), ["kept"]);
    let why = replay.dropped_tail.expect("the torn record is reported");
    assert!(why.contains("cut short"), "{why}");
    j.put("after", b"1".to_vec(), Durability::Durable)
        .await
        .unwrap();
    drop(j);
    let (_j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.dropped_tail, None);
    assert_eq!(replay.entries.keys().collect::<Vec<_>>(), ["after", "kept"]);
}

/// Zeroed blocks after the records (reserved space, or blocks a host crash left zeroed) are
/// free space: nothing is reported or cut, and the next record is written where the last ended.
#[test]
fn zeroed_blocks_after_the_records_are_free_space() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open_with(&path, unreserved()).unwrap();
    j.put_blocking("a", b"1".to_vec(), Durability::Durable)
        .unwrap();
    drop(j);
    let mut bytes = std::fs::read(&path).unwrap();
    let valid = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&path, &bytes).unwrap();
    let (j, replay) = Journal::open_with(&path, unreserved()).unwrap();
    assert_eq!(replay.entries.len(), 1);
    assert_eq!(replay.dropped_tail, None);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), valid + 4096);
    j.put_blocking("b", b"2".to_vec(), Durability::Durable)
        .unwrap();
    assert_eq!(
        j.stats().file_bytes,
        valid + format::encoded_len("b", b"2") as u64
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), valid + 4096);
    drop(j);
    let (_j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.entries.keys().collect::<Vec<_>>(), ["a", "b"]);
}

/// Durable writes queued together share one fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_durable_writes_share_fsyncs() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open(&path).unwrap();
    let n = 200;
    let writes = (0..n).map(|i| {
        let j = j.clone();
        async move {
            j.put(&format!("c{i}"), vec![1; 500], Durability::Durable)
                .await
        }
    });
    for r in futures_join_all(writes).await {
        r.unwrap();
    }
    let stats = j.stats();
    assert_eq!(stats.records, n);
    assert!(
        stats.syncs < n / 2,
        "{} fsyncs for {n} concurrent durable writes: they were not grouped",
        stats.syncs
    );
    drop(j);
    assert_eq!(Journal::open(&path).unwrap().1.entries.len(), n as usize);
}

/// Polls every future together (the crate does not depend on futures-util).
async fn futures_join_all<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[test]
fn blocking_writers_on_many_threads() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let j = j.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let d = if i % 10 == 0 {
                        Durability::Durable
                    } else {
                        Durability::Lazy
                    };
                    j.put_blocking(&format!("t{t}"), format!("{i}").into_bytes(), d)
                        .unwrap();
                }
            });
        }
    });
    drop(j);
    let (_j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.records, 200);
    for t in 0..4 {
        assert_eq!(replay.entries[&format!("t{t}")], b"49");
    }
}

/// Overwriting one key many times keeps the file near its live size.
#[test]
fn dead_records_are_compacted_away() {
    let (_d, path) = tmp();
    let options = Options {
        compact_min_bytes: 4096,
        compact_ratio: 2,
        reserve_bytes: 1024,
    };
    let (j, _) = Journal::open_with(&path, options).unwrap();
    j.put_blocking("other", vec![9; 100], Durability::Lazy)
        .unwrap();
    // Compaction runs in the background while writes go on; a sync every 100 writes waits for
    // one that is due, which bounds how far the file can outgrow the threshold.
    for i in 0u32..2000 {
        j.put_blocking("hot", i.to_le_bytes().to_vec(), Durability::Lazy)
            .unwrap();
        if i % 100 == 99 {
            j.sync_blocking().unwrap();
        }
    }
    j.remove_blocking("gone", Durability::Lazy).unwrap();
    j.sync_blocking().unwrap();
    let stats = j.stats();
    let record = format::encoded_len("hot", &[0; 4]) as u64;
    assert!(stats.compactions >= 5, "{stats:?}");
    assert!(stats.file_bytes <= 4096 + 101 * record, "{stats:?}");
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert!(
        file_len >= stats.file_bytes && file_len <= stats.file_bytes + 1024,
        "{file_len} bytes for {stats:?}"
    );
    // Writes after a compaction go to the new file.
    j.put_blocking("last", b"x".to_vec(), Durability::Durable)
        .unwrap();
    drop(j);
    let (_j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.entries["hot"], 1999u32.to_le_bytes());
    assert_eq!(replay.entries["other"], vec![9; 100]);
    assert_eq!(replay.entries["last"], b"x");
    assert_eq!(replay.entries.len(), 3);
}

#[test]
fn a_file_that_is_not_a_journal_is_refused_and_left_alone() {
    let (_d, path) = tmp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{\"version\": 1}").unwrap();
    let err = Journal::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, JournalError::NotAJournal { .. }));
    assert!(
        text.contains("state.journal") && text.contains("BERTHJ01"),
        "{text}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"version\": 1}");
}

/// A process killed while creating the journal leaves part of the header: that is a new
/// journal, not an error. A compaction's leftover temporary file is removed.
#[test]
fn a_partial_header_and_a_leftover_compaction_are_cleaned_up() {
    let (_d, path) = tmp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &HEADER[..3]).unwrap();
    let leftover = writer::compaction_path(&path);
    std::fs::write(&leftover, b"partial").unwrap();
    let (j, replay) = Journal::open(&path).unwrap();
    assert!(replay.entries.is_empty());
    assert!(!leftover.exists());
    j.put_blocking("k", b"v".to_vec(), Durability::Durable)
        .unwrap();
    drop(j);
    assert_eq!(Journal::open(&path).unwrap().1.entries["k"], b"v");
}

#[test]
fn bad_keys_and_huge_values_are_refused_with_their_reason() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open(&path).unwrap();
    let e = j
        .put_blocking("", b"v".to_vec(), Durability::Lazy)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("invalid journal key ``: it is empty"),
        "{e}"
    );
    let long = "k".repeat(70_000);
    let e = j.remove_blocking(&long, Durability::Lazy).unwrap_err();
    assert!(e.to_string().contains("longer than 65535"), "{e}");
    let e = j
        .put_blocking("big", vec![0; MAX_RECORD], Durability::Lazy)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("journal record for `big` is 16777230 bytes, over the limit"),
        "{e}"
    );
    assert_eq!(j.stats().records, 0);
}

#[tokio::test]
async fn sync_makes_earlier_lazy_writes_durable() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open_with(&path, unreserved()).unwrap();
    j.put("a", b"1".to_vec(), Durability::Lazy).await.unwrap();
    assert_eq!(j.stats().syncs, 0);
    j.sync().await.unwrap();
    assert_eq!(j.stats().syncs, 1);
    assert_eq!(j.path(), path);
}

#[tokio::test]
async fn a_read_only_snapshot_sees_written_records_and_changes_nothing() {
    let (_d, path) = tmp();
    assert_eq!(Journal::read(&path).unwrap(), Replay::default());
    assert!(!path.exists(), "read creates nothing");
    let (j, _) = Journal::open(&path).unwrap();
    j.put("a", b"1".to_vec(), Durability::Lazy).await.unwrap();
    // Lets the background reserving of space finish before the file is changed under it.
    j.sync().await.unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"partial");
    std::fs::write(&path, &bytes).unwrap();
    let snap = Journal::read(&path).unwrap();
    assert_eq!(snap.entries["a"], b"1");
    assert!(snap.dropped_tail.is_some());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the tail is not cut by a reader"
    );
}

/// Two writers would corrupt the file: the second open waits for the first to let go, and
/// says who holds it if it does not.
#[test]
fn a_second_writer_is_kept_out_until_the_first_is_gone() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open(&path).unwrap();
    let started = std::time::Instant::now();
    let err = Journal::open(&path).unwrap_err();
    assert!(started.elapsed() >= LOCK_WAIT);
    assert!(matches!(err, JournalError::InUse { .. }));
    assert!(
        err.to_string().contains("in use by another writer"),
        "{err}"
    );
    j.put_blocking("k", b"v".to_vec(), Durability::Lazy)
        .unwrap();
    // Dropping the last handle ends the writer; an open right after waits for that.
    drop(j);
    let (_j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.entries["k"], b"v");
}

#[tokio::test]
async fn close_releases_the_file_and_refuses_later_writes() {
    let (_d, path) = tmp();
    let (j, _) = Journal::open(&path).unwrap();
    let other = j.clone();
    j.put("a", b"1".to_vec(), Durability::Lazy).await.unwrap();
    j.close().unwrap();
    let e = other
        .put("b", b"2".to_vec(), Durability::Lazy)
        .await
        .unwrap_err();
    assert!(matches!(e, JournalError::Closed { .. }), "{e}");
    // Reopened while the closed handles still exist.
    let started = std::time::Instant::now();
    let (_j2, replay) = Journal::open(&path).unwrap();
    assert!(started.elapsed() < LOCK_WAIT);
    assert_eq!(replay.entries.keys().collect::<Vec<_>>(), ["a"]);
}

/// Records may hold secrets: the file is the owner's only, also after a compaction, and a
/// journal left readable by an older version is tightened at open.
#[test]
fn the_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, path) = tmp();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let options = Options {
        compact_min_bytes: 256,
        compact_ratio: 2,
        ..Options::default()
    };
    let (j, _) = Journal::open_with(&path, options).unwrap();
    assert_eq!(mode(&path), 0o600);
    for i in 0u32..100 {
        j.put_blocking("k", i.to_le_bytes().to_vec(), Durability::Lazy)
            .unwrap();
    }
    j.sync_blocking().unwrap();
    assert!(j.stats().compactions > 0);
    assert_eq!(mode(&path), 0o600, "after compaction");
    drop(j);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_j, _) = Journal::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600, "tightened at open");
}

/// A compaction puts a new file under the journal's name: the lock must move with it, and an
/// open that was waiting on the old file must not take the journal over when the old file is
/// let go.
#[test]
fn the_writer_lock_survives_compactions() {
    let (_d, path) = tmp();
    let options = Options {
        compact_min_bytes: 256,
        compact_ratio: 2,
        ..Options::default()
    };
    let (j, _) = Journal::open_with(&path, options).unwrap();
    j.put_blocking("k", b"first".to_vec(), Durability::Durable)
        .unwrap();
    let waiting = {
        let path = path.clone();
        std::thread::spawn(move || Journal::open(&path).map(|_| ()))
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    for i in 0u32..200 {
        j.put_blocking("k", i.to_le_bytes().to_vec(), Durability::Lazy)
            .unwrap();
    }
    j.sync_blocking().unwrap();
    assert!(j.stats().compactions > 0);
    let err = waiting.join().unwrap().unwrap_err();
    assert!(matches!(err, JournalError::InUse { .. }), "{err}");
    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err, JournalError::InUse { .. }), "{err}");
    drop(j);
    let (_j, replay) = Journal::open(&path).unwrap();
    assert_eq!(replay.entries["k"], 199u32.to_le_bytes());
}

/// Writers on several threads race the background thread's compactions and top-ups: every
/// key's last acknowledged record survives, and the file replays without a torn tail. Run three
/// times, as a lost record shows only when it was its key's last and a compaction overlapped.
#[test]
fn writes_racing_compactions_and_reserving_lose_nothing() {
    const THREADS: u32 = 4;
    const WRITES: u32 = 4000;
    const KEYS: u32 = 50;
    for _ in 0..3 {
        let (_d, path) = tmp();
        let options = Options {
            compact_min_bytes: 4096,
            compact_ratio: 2,
            reserve_bytes: 2048,
        };
        let (j, _) = Journal::open_with(&path, options).unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let j = j.clone();
                std::thread::spawn(move || {
                    for i in 0..WRITES {
                        let durability = if i % 50 == 0 {
                            Durability::Durable
                        } else {
                            Durability::Lazy
                        };
                        let key = format!("t{t}-k{}", i % KEYS);
                        j.put_blocking(&key, i.to_le_bytes().to_vec(), durability)
                            .unwrap();
                        if i % 500 == 499 {
                            j.remove_blocking(&format!("t{t}-gone"), Durability::Lazy)
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        j.sync_blocking().unwrap();
        let stats = j.stats();
        assert!(stats.compactions >= 5, "{stats:?}");
        assert_eq!(stats.records, u64::from(THREADS * (WRITES + WRITES / 500)));
        drop(j);
        let (_j, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.dropped_tail, None);
        assert_eq!(replay.entries.len(), (THREADS * KEYS) as usize);
        for t in 0..THREADS {
            for k in 0..KEYS {
                let last = (0..WRITES).rev().find(|i| i % KEYS == k).unwrap();
                assert_eq!(
                    replay.entries[&format!("t{t}-k{k}")],
                    last.to_le_bytes(),
                    "t{t}-k{k}"
                );
            }
        }
    }
}
