//! The download cache: a directory of verified files with a size limit, LRU eviction among
//! entries nobody is using, one download per key however many fetches want it, and an index
//! that survives restarts.
//!
//! Layout: `<dir>/index.json` (the index), `<dir>/entries/<id>` (the files), `<dir>/tmp/`
//! (downloads in flight, wiped at start), `<dir>/lock` (held while a fetcher uses the directory).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::{FetchError, Result};

const INDEX_VERSION: u32 = 1;

/// What identifies a cache entry: who fetched what, expecting which digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct CacheKey {
    pub(crate) user: Option<String>,
    pub(crate) uri: String,
    pub(crate) checksum: Option<String>,
}

impl CacheKey {
    fn file_id(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..16])
    }
}

#[derive(Debug)]
enum EntryState {
    /// A fetch is downloading it; waiters watch for the sender to go away.
    Downloading { done: watch::Sender<bool> },
    /// On disk and verified.
    Ready { mtime_ns: i128, digest: String },
}

#[derive(Debug)]
struct Entry {
    file: String,
    /// Actual size when ready, reserved size while downloading (0 if nothing reserved yet).
    size: u64,
    last_used: u64,
    /// Fetches currently using the entry (the downloader included); such entries are not evicted.
    refs: usize,
    state: EntryState,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<CacheKey, Entry>,
    used: u64,
    clock: u64,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    entries: Vec<IndexEntry>,
}

#[derive(Serialize, Deserialize)]
struct IndexEntry {
    key: CacheKey,
    file: String,
    size: u64,
    last_used: u64,
    mtime_ns: i128,
    digest: String,
}

/// A cache directory in use by one fetcher.
#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
    capacity: u64,
    state: Mutex<State>,
    /// Serialises index writes (they happen outside the state lock).
    persist: Mutex<()>,
    _lock: File,
}

/// How a lookup went.
pub(crate) enum Acquire {
    /// A valid entry; the lease keeps it from eviction while it is placed.
    Hit(Lease),
    /// Another fetch is downloading it: wait, then look again.
    Wait(watch::Receiver<bool>),
    /// Nobody has it: the caller downloads it.
    Miss(Owner),
}

/// Use of a ready entry; dropping it makes the entry evictable again.
#[derive(Debug)]
pub(crate) struct Lease {
    cache: Arc<Cache>,
    key: CacheKey,
    path: PathBuf,
    digest: String,
}

impl Lease {
    /// The entry's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The entry's digest, `sha256:<hex>`.
    pub(crate) fn digest(&self) -> &str {
        &self.digest
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = self.cache.lock();
        if let Some(e) = st.entries.get_mut(&self.key) {
            e.refs = e.refs.saturating_sub(1);
        }
    }
}

/// The right (and duty) to download an entry. Dropped without [`Owner::commit`], the entry
/// disappears and waiters look again.
#[derive(Debug)]
pub(crate) struct Owner {
    cache: Arc<Cache>,
    key: CacheKey,
    file: String,
    reserved: u64,
    committed: bool,
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

impl Cache {
    /// Opens (or creates) a cache directory, taking its lock and re-validating its index.
    pub(crate) fn open(dir: &Path, capacity: u64) -> Result<Arc<Cache>> {
        let err = |reason: String| FetchError::Cache {
            dir: dir.to_path_buf(),
            reason,
        };
        for sub in ["entries", "tmp"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| err(format!("cannot create '{sub}': {e}")))?;
        }
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| err(format!("cannot open lock file: {e}")))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => {
                err("in use by another fetcher (its lock file is held)".into())
            }
            fs::TryLockError::Error(e) => err(format!("cannot lock: {e}")),
        })?;
        // Downloads that were in flight when a previous process died are useless now.
        if let Ok(rd) = fs::read_dir(dir.join("tmp")) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        let cache = Cache {
            dir: dir.to_path_buf(),
            capacity,
            state: Mutex::new(State::default()),
            persist: Mutex::new(()),
            _lock: lock,
        };
        let changed = cache.load();
        let cache = Arc::new(cache);
        if changed {
            cache.persist()?;
        }
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry_path(&self, file: &str) -> PathBuf {
        self.dir.join("entries").join(file)
    }

    /// Reads the index, keeping only entries whose file is still there unchanged, and deletes
    /// files no entry refers to. Returns whether the index on disk needs rewriting.
    fn load(&self) -> bool {
        let mut changed = false;
        let mut st = self.lock();
        let index_path = self.dir.join("index.json");
        let index: Option<IndexFile> = match fs::read(&index_path) {
            Ok(bytes) => match serde_json::from_slice::<IndexFile>(&bytes) {
                Ok(i) if i.version == INDEX_VERSION => Some(i),
                Ok(i) => {
                    tracing::warn!(
                        version = i.version,
                        "cache index has an unknown version; starting empty"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %index_path.display(), "cache index is unreadable; starting empty");
                    None
                }
            },
            Err(_) => None,
        };
        changed |= index.is_none();
        for ie in index.map(|i| i.entries).unwrap_or_default() {
            let valid = fs::symlink_metadata(self.entry_path(&ie.file))
                .map(|m| m.is_file() && m.len() == ie.size && mtime_ns(&m) == ie.mtime_ns)
                .unwrap_or(false);
            if !valid || ie.key.file_id() != ie.file {
                tracing::info!(uri = %ie.key.uri, "dropping cache entry whose file is missing or changed");
                changed = true;
                continue;
            }
            st.clock = st.clock.max(ie.last_used + 1);
            st.used += ie.size;
            st.entries.insert(
                ie.key,
                Entry {
                    file: ie.file,
                    size: ie.size,
                    last_used: ie.last_used,
                    refs: 0,
                    state: EntryState::Ready {
                        mtime_ns: ie.mtime_ns,
                        digest: ie.digest,
                    },
                },
            );
        }
        let known: std::collections::HashSet<String> =
            st.entries.values().map(|e| e.file.clone()).collect();
        if let Ok(rd) = fs::read_dir(self.dir.join("entries")) {
            for e in rd.flatten() {
                if !known.contains(&*e.file_name().to_string_lossy()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if st.used > self.capacity {
            // The capacity shrank since last time.
            self.evict(&mut st, 0);
            changed = true;
        }
        changed
    }

    /// Writes the index atomically: temp file, fsync, rename, fsync of the directory.
    fn persist(&self) -> Result<()> {
        let _guard = self.persist.lock().unwrap_or_else(|p| p.into_inner());
        let index = {
            let st = self.lock();
            let mut entries: Vec<IndexEntry> = st
                .entries
                .iter()
                .filter_map(|(k, e)| match &e.state {
                    EntryState::Ready { mtime_ns, digest } => Some(IndexEntry {
                        key: k.clone(),
                        file: e.file.clone(),
                        size: e.size,
                        last_used: e.last_used,
                        mtime_ns: *mtime_ns,
                        digest: digest.clone(),
                    }),
                    EntryState::Downloading { .. } => None,
                })
                .collect();
            entries.sort_by_key(|e| e.last_used);
            IndexFile {
                version: INDEX_VERSION,
                entries,
            }
        };
        let tmp = self.dir.join("index.json.tmp");
        let fin = self.dir.join("index.json");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&index).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            fs::rename(&tmp, &fin)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| FetchError::Cache {
            dir: self.dir.clone(),
            reason: format!("cannot write index: {e}"),
        })
    }

    fn persist_logged(&self) {
        if let Err(e) = self.persist() {
            tracing::warn!(error = %e, "cache index not saved");
        }
    }

    /// Looks a key up, validating a ready entry's file (a vanished or changed file is dropped).
    pub(crate) fn acquire(self: &Arc<Self>, key: &CacheKey) -> Acquire {
        let mut st = self.lock();
        let clock = st.clock;
        let mut dropped = false;
        if let Some(e) = st.entries.get_mut(key) {
            match &e.state {
                EntryState::Downloading { done } => return Acquire::Wait(done.subscribe()),
                EntryState::Ready {
                    mtime_ns: want,
                    digest,
                } => {
                    let path = self.entry_path(&e.file);
                    let ok = fs::symlink_metadata(&path)
                        .map(|m| m.is_file() && m.len() == e.size && mtime_ns(&m) == *want)
                        .unwrap_or(false);
                    if ok {
                        e.refs += 1;
                        e.last_used = clock;
                        let lease = Lease {
                            cache: self.clone(),
                            key: key.clone(),
                            path,
                            digest: digest.clone(),
                        };
                        st.clock += 1;
                        drop(st);
                        self.persist_logged();
                        return Acquire::Hit(lease);
                    }
                    tracing::info!(uri = %key.uri, "cache entry's file vanished or changed; fetching again");
                    if e.refs == 0 {
                        let _ = fs::remove_file(&path);
                    }
                    dropped = true;
                }
            }
        }
        if dropped {
            if let Some(e) = st.entries.remove(key) {
                st.used = st.used.saturating_sub(e.size);
            }
        }
        let (tx, _) = watch::channel(false);
        let file = key.file_id();
        st.entries.insert(
            key.clone(),
            Entry {
                file: file.clone(),
                size: 0,
                last_used: clock,
                refs: 1,
                state: EntryState::Downloading { done: tx },
            },
        );
        st.clock += 1;
        drop(st);
        if dropped {
            self.persist_logged();
        }
        Acquire::Miss(Owner {
            cache: self.clone(),
            key: key.clone(),
            file,
            reserved: 0,
            committed: false,
        })
    }

    /// Evicts least recently used entries nobody uses until `need` more bytes fit. Evicts
    /// nothing when that is impossible. Returns whether the bytes fit.
    fn evict(&self, st: &mut State, need: u64) -> bool {
        if st.used + need <= self.capacity {
            return true;
        }
        let mut victims: Vec<(u64, CacheKey, u64)> = st
            .entries
            .iter()
            .filter(|(_, e)| e.refs == 0 && matches!(e.state, EntryState::Ready { .. }))
            .map(|(k, e)| (e.last_used, k.clone(), e.size))
            .collect();
        victims.sort_by_key(|v| v.0);
        let mut freed = 0u64;
        let mut chosen = Vec::new();
        for (_, k, size) in victims {
            if st.used - freed + need <= self.capacity {
                break;
            }
            freed += size;
            chosen.push(k);
        }
        if st.used - freed + need > self.capacity {
            return false;
        }
        for k in chosen {
            if let Some(e) = st.entries.remove(&k) {
                tracing::info!(uri = %k.uri, size = e.size, "evicting cache entry");
                let _ = fs::remove_file(self.entry_path(&e.file));
                st.used -= e.size;
            }
        }
        true
    }

    /// Bytes in use or reserved.
    pub(crate) fn used(&self) -> u64 {
        self.lock().used
    }

    /// The size limit.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Number of ready entries.
    pub(crate) fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| matches!(e.state, EntryState::Ready { .. }))
            .count()
    }
}

impl Owner {
    /// Reserves `size` bytes, evicting unused entries as needed. False means the entry cannot be
    /// cached (too big, or everything else is in use): download directly instead.
    pub(crate) fn reserve(&mut self, size: u64) -> bool {
        let cache = self.cache.clone();
        let mut st = cache.lock();
        st.used -= self.reserved;
        self.reserved = 0;
        let fits = size <= cache.capacity && cache.evict(&mut st, size);
        if fits {
            st.used += size;
            self.reserved = size;
            if let Some(e) = st.entries.get_mut(&self.key) {
                e.size = size;
            }
        }
        drop(st);
        fits
    }

    /// Where the download goes before it is committed.
    pub(crate) fn temp_path(&self) -> PathBuf {
        self.cache.dir.join("tmp").join(format!(
            "{}.{}",
            self.file,
            crate::cleanup::random_suffix()
        ))
    }

    /// Moves a verified download into the cache and returns a lease on it.
    pub(crate) fn commit(mut self, temp: &Path, digest: String) -> Result<Lease> {
        let cache = self.cache.clone();
        let path = cache.entry_path(&self.file);
        let meta = fs::metadata(temp).map_err(|e| FetchError::io("cannot stat", temp, e))?;
        let mut perms = meta.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        fs::set_permissions(temp, perms).map_err(|e| FetchError::io("cannot chmod", temp, e))?;
        fs::rename(temp, &path).map_err(|e| FetchError::io("cannot rename into", &path, e))?;
        let meta = fs::metadata(&path).map_err(|e| FetchError::io("cannot stat", &path, e))?;
        {
            let mut st = cache.lock();
            let clock = st.clock;
            st.clock += 1;
            // A local source may have changed size since it was measured; account the truth.
            st.used = st.used - self.reserved + meta.len();
            self.reserved = 0;
            if let Some(e) = st.entries.get_mut(&self.key) {
                e.size = meta.len();
                e.last_used = clock;
                e.state = EntryState::Ready {
                    mtime_ns: mtime_ns(&meta),
                    digest: digest.clone(),
                };
            }
        }
        self.committed = true;
        cache.persist_logged();
        Ok(Lease {
            cache: self.cache.clone(),
            key: self.key.clone(),
            path,
            digest,
        })
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let mut st = self.cache.lock();
        st.used -= self.reserved;
        if let Some(e) = st.entries.remove(&self.key) {
            // Dropping the watch sender wakes every waiter; they look the key up again.
            drop(e);
        }
    }
}
