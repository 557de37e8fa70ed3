//! The [`Fetcher`]: configuration, requests, and the per-URI flow (plan, download or cache,
//! verify, place).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_safe_fs::Dir;
use futures_util::stream::{self, StreamExt};

use crate::cache::{Acquire, Cache, CacheKey, Lease, Owner as CacheOwner};
use crate::checksum::Checksum;
use crate::cleanup::Cleanup;
use crate::error::{FetchError, Result};
use crate::extract::{self, ArchiveKind, ExtractLimits, Extractor};
use crate::local::{LocalPolicy, LocalSources};
use crate::metrics::{Counters, Metrics};
use crate::net::{self, Cidr, NetPolicy};
use crate::owner::{self, Account, Owner};
use crate::place::{place_file, place_tree, Staging};
use crate::progress::{Phase, ProgressEvent, ProgressFn};
use crate::transfer::{self, Report, Sinks, StallPolicy, Target};
use crate::uri::{output_path, Source, UriSpec};

/// Default cache size limit: 2 GiB.
pub const DEFAULT_CACHE_SIZE: u64 = 2 << 30;

/// Default limit on the bytes of one URI (downloaded or read): 4 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 30;

/// Bounded retries with exponential backoff, for transient failures only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (default 4).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled each time (default 500 ms).
    pub initial_backoff: Duration,
    /// Longest wait between attempts (default 10 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, failed_attempts: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << failed_attempts.saturating_sub(1).min(16));
        exp.min(self.max_backoff)
    }
}

/// Builds a [`Fetcher`]; every setting has a default.
#[derive(Clone, Debug)]
pub struct FetcherBuilder {
    cache_dir: Option<PathBuf>,
    cache_size: u64,
    frameworks_home: Option<PathBuf>,
    stall_timeout: Duration,
    stall_min_bytes_per_sec: u64,
    deadline: Option<Duration>,
    retry: RetryPolicy,
    limits: ExtractLimits,
    concurrency: usize,
    root_certificates: Vec<Vec<u8>>,
    local_sources: LocalSources,
    local_hint: Option<String>,
    max_size: u64,
    max_size_hint: Option<String>,
    denied_networks: Vec<Cidr>,
    allowed_networks: Vec<Cidr>,
    network_hint: Option<String>,
}

impl Default for FetcherBuilder {
    fn default() -> Self {
        FetcherBuilder {
            cache_dir: None,
            cache_size: DEFAULT_CACHE_SIZE,
            frameworks_home: None,
            stall_timeout: Duration::from_secs(60),
            stall_min_bytes_per_sec: 1,
            deadline: None,
            retry: RetryPolicy::default(),
            limits: ExtractLimits::default(),
            concurrency: 4,
            root_certificates: Vec::new(),
            local_sources: LocalSources::Refused,
            local_hint: None,
            max_size: DEFAULT_MAX_SIZE,
            max_size_hint: None,
            denied_networks: Vec::new(),
            allowed_networks: Vec::new(),
            network_hint: None,
        }
    }
}

impl FetcherBuilder {
    /// Enables the cache in `dir` (created if missing). Without it, `cache: true` URIs are
    /// downloaded directly.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The cache's size limit in bytes (default [`DEFAULT_CACHE_SIZE`]).
    pub fn cache_size(mut self, bytes: u64) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Where relative paths are resolved; without it they are refused.
    pub fn frameworks_home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.frameworks_home = Some(dir.into());
        self
    }

    /// Abort a transfer whose rate stays below the floor for this long (default 60 s, as in
    /// Mesos). Also bounds connecting and waiting for response headers.
    pub fn stall_timeout(mut self, window: Duration) -> Self {
        self.stall_timeout = window;
        self
    }

    /// The rate floor for stall detection, in bytes per second (default 1).
    pub fn stall_min_bytes_per_sec(mut self, rate: u64) -> Self {
        self.stall_min_bytes_per_sec = rate;
        self
    }

    /// Longest time one URI may take, retries included (default: none).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retry policy for transient failures.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Limits on extracted archives.
    pub fn extract_limits(mut self, limits: ExtractLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How many URIs of one request are fetched at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Trusts an extra certificate authority (PEM) for `https://`, besides the built-in web
    /// roots; for artifact servers behind an internal CA.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Which local files URIs may name (default [`LocalSources::Refused`]: none). A fetcher
    /// that runs as root for callers who are not its operator must keep the default or name
    /// the directories with [`LocalSources::Within`]: otherwise a URI of `/etc/shadow` copies
    /// that file into the sandbox.
    pub fn local_sources(mut self, sources: LocalSources) -> Self {
        self.local_sources = sources;
        self
    }

    /// Text appended to the message of a refused local source, saying how whoever runs the
    /// fetcher allows one (e.g. the flag of the program around it).
    pub fn local_sources_hint(mut self, hint: impl Into<String>) -> Self {
        self.local_hint = Some(hint.into());
        self
    }

    /// The most bytes one URI may have, downloaded or read (default [`DEFAULT_MAX_SIZE`]). A
    /// source announcing more is refused before a byte is read; one sending more is cut off.
    /// Extracted archives are bounded separately by [`ExtractLimits`].
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Text ending the message of a source over [`max_size`](Self::max_size): how whoever runs
    /// the fetcher raises the limit (e.g. the flag of the program around it).
    pub fn max_size_hint(mut self, hint: impl Into<String>) -> Self {
        self.max_size_hint = Some(hint.into());
        self
    }

    /// Networks `http(s)://` sources may not reach (default: none). A fetcher serving callers
    /// who are not its operator should deny at least [`Cidr::host_local`]: otherwise a URI of
    /// `http://127.0.0.1:…/` reads the host's own services into the sandbox. Names are checked
    /// on the addresses they resolve to (through the HTTP client's resolver), literal addresses
    /// before the request and on every redirect. A proxy configured through the environment
    /// resolves names itself, so set none where this matters.
    pub fn denied_networks(mut self, networks: Vec<Cidr>) -> Self {
        self.denied_networks = networks;
        self
    }

    /// Exceptions to [`denied_networks`](Self::denied_networks): addresses in these networks are
    /// reached even when a denied network contains them.
    pub fn allowed_networks(mut self, networks: Vec<Cidr>) -> Self {
        self.allowed_networks = networks;
        self
    }

    /// Text appended to a network refusal: how whoever runs the fetcher allows a network.
    pub fn network_hint(mut self, hint: impl Into<String>) -> Self {
        self.network_hint = Some(hint.into());
        self
    }

    fn size_hint(&self) -> String {
        self.max_size_hint.clone().unwrap_or_else(|| {
            "raise the fetcher's size limit (FetcherBuilder::max_size) if it is expected".into()
        })
    }

    /// Creates the fetcher, opening (and locking) the cache directory if one is set, and the
    /// allowed local source directories.
    ///
    /// # Errors
    /// When the cache cannot be opened, an allowed directory is not an existing absolute
    /// directory, or a root certificate is not valid PEM.
    pub fn build(self) -> Result<Fetcher> {
        let local = Arc::new(LocalPolicy::new(
            &self.local_sources,
            self.local_hint.clone(),
        )?);
        let cache = match &self.cache_dir {
            Some(dir) => Some(Cache::open(dir, self.cache_size)?),
            None => None,
        };
        let network = Arc::new(NetPolicy {
            denied: self.denied_networks.clone(),
            allowed: self.allowed_networks.clone(),
            hint: self.network_hint.clone(),
        });
        let mut client = reqwest::Client::builder().connect_timeout(self.stall_timeout);
        if network.active() {
            client = client
                .dns_resolver(Arc::new(net::Resolver {
                    policy: network.clone(),
                }))
                .redirect(net::redirect_policy(network.clone()));
        }
        for (i, pem) in self.root_certificates.iter().enumerate() {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| FetchError::Tls {
                    reason: format!("root certificate #{} is not valid PEM: {e}", i + 1),
                })?;
            if certs.is_empty() {
                return Err(FetchError::Tls {
                    reason: format!("root certificate #{} contains no PEM certificate", i + 1),
                });
            }
            for cert in certs {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client.build().map_err(|e| FetchError::Tls {
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Fetcher {
            inner: Arc::new(Inner {
                cfg: self,
                client,
                local,
                network,
                cache,
                counters: Counters::default(),
            }),
        })
    }
}

/// Fetches URIs into sandboxes. Cheap to clone; clones share the cache and metrics.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: FetcherBuilder,
    client: reqwest::Client,
    local: Arc<LocalPolicy>,
    network: Arc<NetPolicy>,
    cache: Option<Arc<Cache>>,
    counters: Counters,
}

/// One fetch: a sandbox, the URIs to put in it, and optionally a user and a progress callback.
#[derive(Clone)]
pub struct FetchRequest {
    sandbox: PathBuf,
    uris: Vec<UriSpec>,
    user: Option<String>,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchRequest")
            .field("sandbox", &self.sandbox)
            .field("uris", &self.uris)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl FetchRequest {
    /// A request for `sandbox`, an existing directory.
    pub fn new(sandbox: impl Into<PathBuf>) -> Self {
        FetchRequest {
            sandbox: sandbox.into(),
            uris: Vec::new(),
            user: None,
            progress: None,
        }
    }

    /// Adds a URI.
    pub fn uri(mut self, spec: UriSpec) -> Self {
        self.uris.push(spec);
        self
    }

    /// Adds several URIs.
    pub fn uris(mut self, specs: impl IntoIterator<Item = UriSpec>) -> Self {
        self.uris.extend(specs);
        self
    }

    /// The user the files are for: when the fetcher runs as root they are given to this user,
    /// and local sources must be readable by it. A name from `/etc/passwd` or `uid[:gid]`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Calls `f` with progress events for every URI.
    pub fn on_progress(mut self, f: impl Fn(&ProgressEvent) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// How the cache took part in fetching a URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// The URI was not marked `cache`, or the fetcher has no cache.
    NotCached,
    /// Served from the cache.
    Hit,
    /// Downloaded and added to the cache.
    Miss,
    /// Marked `cache`, but downloaded directly: the size was unknown or no space could be freed.
    Bypassed,
}

/// A URI that is now in the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Position of the URI in the request.
    pub index: usize,
    /// The URI as given.
    pub uri: String,
    /// The resulting file, or for archives the directory they were extracted into.
    pub path: PathBuf,
    /// Digest of the fetched bytes (the archive itself for archives).
    pub digest: Checksum,
    /// Bytes fetched (0 for a cache hit).
    pub bytes: u64,
    /// Whether an archive was extracted.
    pub extracted: bool,
    /// The cache's part in it.
    pub cache: CacheUse,
}

/// Every URI of a request succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchReport {
    /// One per URI, in request order.
    pub fetched: Vec<Fetched>,
}

/// A URI that failed, with why.
#[derive(Debug)]
pub struct UriFailure {
    /// Position of the URI in the request.
    pub index: usize,
    /// The URI as given.
    pub uri: String,
    /// What went wrong.
    pub error: FetchError,
}

/// At least one URI failed. URIs that succeeded stay in the sandbox; failed ones left nothing.
#[derive(Debug)]
pub struct FetchFailure {
    /// The URIs that failed, in request order.
    pub failures: Vec<UriFailure>,
    /// The URIs that succeeded.
    pub fetched: Vec<Fetched>,
}

impl fmt::Display for FetchFailure {
    /// One line per failed URI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fail) in self.failures.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "failed to fetch '{}': {}", fail.uri, fail.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for FetchFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures.first().map(|f| &f.error as _)
    }
}

/// A URI's outcome: its index, the URI, and the result.
type UriResult = (usize, Arc<str>, Result<Fetched>);

/// What to do with a URI's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Copy { executable: bool },
    Extract(ArchiveKind),
}

/// A URI, understood and checked, with where its result goes.
struct Job {
    index: usize,
    spec: UriSpec,
    uri: Arc<str>,
    source: Source,
    action: Action,
    /// The result file (copies, bare gzip) or extraction directory (archives), relative to the
    /// sandbox (empty: the sandbox itself).
    dest: PathBuf,
    /// The sandbox's path, for reports.
    sandbox: PathBuf,
}

impl Job {
    fn plan(index: usize, spec: UriSpec, sandbox: &Path, home: Option<&Path>) -> Result<Job> {
        let source = Source::parse(&spec.value, home)?;
        let rel = output_path(&spec, &source)?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let action = if spec.executable {
            Action::Copy { executable: true }
        } else if spec.extract {
            ArchiveKind::from_name(&name)
                .map(Action::Extract)
                .unwrap_or(Action::Copy { executable: false })
        } else {
            Action::Copy { executable: false }
        };
        let dest = match action {
            Action::Copy { .. } => rel,
            Action::Extract(ArchiveKind::Gz) => rel.with_file_name(&name[..name.len() - 3]),
            Action::Extract(_) => rel.parent().unwrap_or(Path::new("")).to_path_buf(),
        };
        Ok(Job {
            index,
            uri: Arc::from(spec.value.as_str()),
            spec,
            source,
            action,
            dest,
            sandbox: sandbox.to_path_buf(),
        })
    }

    fn fetched(&self, digest: Checksum, bytes: u64, cache: CacheUse) -> Fetched {
        Fetched {
            index: self.index,
            uri: self.spec.value.clone(),
            path: self.sandbox.join(&self.dest),
            digest,
            bytes,
            extracted: matches!(self.action, Action::Extract(_)),
            cache,
        }
    }
}

/// Everything a request's URIs share.
struct Ctx<'a> {
    /// The sandbox, opened once: every name in it is resolved beneath this handle.
    sandbox: Arc<Dir>,
    user: Option<&'a str>,
    account: Option<&'a Account>,
    /// Set when running as root for a user: files are given away.
    owner: Option<Owner>,
    progress: Option<ProgressFn>,
}

/// Sends progress events for one URI and mirrors them into tracing.
struct JobReporter {
    index: usize,
    uri: Arc<str>,
    started: Instant,
    cb: Option<ProgressFn>,
}

impl Report for JobReporter {
    fn report(&mut self, phase: Phase, done: u64, total: Option<u64>) {
        let ev = ProgressEvent {
            index: self.index,
            uri: self.uri.clone(),
            phase,
            bytes_done: done,
            bytes_total: total,
            elapsed: self.started.elapsed(),
        };
        tracing::debug!(uri = %self.uri, phase = phase.as_str(), bytes_done = done, bytes_total = ?total,
            rate = ev.rate(), eta_secs = ?ev.eta().map(|d| d.as_secs()), "fetch progress");
        if let Some(cb) = &self.cb {
            cb(&ev);
        }
    }
}

/// Moves an extracted tree into place on a blocking thread: a large archive means many renames
/// and (for a target user) many chowns, which must not stall the async runtime.
async fn place_tree_blocking(ctx: &Ctx<'_>, job: &Job, tree: PathBuf) -> Result<()> {
    let (sandbox, dest, owner) = (ctx.sandbox.clone(), job.dest.clone(), ctx.owner);
    tokio::task::spawn_blocking(move || place_tree(&sandbox, &tree, &dest, owner))
        .await
        .map_err(|e| FetchError::Internal {
            uri: job.spec.value.clone(),
            reason: format!("placing the extracted tree failed: {e}"),
        })?
}

impl Fetcher {
    /// A builder with default settings (no cache).
    pub fn builder() -> FetcherBuilder {
        FetcherBuilder::default()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.inner.counters.snapshot();
        if let Some(c) = &self.inner.cache {
            m.cache_bytes_used = c.used();
            m.cache_bytes_total = c.capacity();
        }
        m
    }

    /// Number of entries in the cache (0 without one).
    pub fn cache_entries(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Fetches every URI of `request` into its sandbox.
    ///
    /// URIs are fetched concurrently; all are attempted even when one fails. Dropping the
    /// returned future stops every transfer and removes partial files.
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchReport, FetchFailure> {
        let FetchRequest {
            sandbox,
            uris,
            user,
            progress,
        } = request;
        let c = &self.inner.counters;
        let fail_all = |mk: &dyn Fn() -> FetchError, uris: &[UriSpec]| FetchFailure {
            failures: uris
                .iter()
                .enumerate()
                .map(|(index, s)| UriFailure {
                    index,
                    uri: s.value.clone(),
                    error: mk(),
                })
                .collect(),
            fetched: Vec::new(),
        };
        let finish = |res: Result<FetchReport, FetchFailure>| {
            match &res {
                Ok(r) => {
                    Counters::inc(&c.fetches_succeeded);
                    c.uris_succeeded
                        .fetch_add(r.fetched.len() as u64, Ordering::Relaxed);
                }
                Err(f) => {
                    Counters::inc(&c.fetches_failed);
                    c.uris_failed
                        .fetch_add(f.failures.len() as u64, Ordering::Relaxed);
                    c.uris_succeeded
                        .fetch_add(f.fetched.len() as u64, Ordering::Relaxed);
                }
            }
            res
        };
        if uris.is_empty() {
            return finish(Ok(FetchReport { fetched: vec![] }));
        }
        let sandbox_dir = match Dir::open(&sandbox) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                let (p, msg) = (sandbox.clone(), e.to_string());
                return finish(Err(fail_all(
                    &|| {
                        FetchError::io(
                            "sandbox is not a directory",
                            &p,
                            std::io::Error::new(e.kind(), msg.clone()),
                        )
                    },
                    &uris,
                )));
            }
        };
        let account = match &user {
            Some(u) => match Account::lookup(u) {
                Ok(a) => Some(a),
                Err(e) => {
                    let msg = e.to_string();
                    return finish(Err(fail_all(
                        &|| FetchError::User {
                            user: u.clone(),
                            reason: msg.clone(),
                        },
                        &uris,
                    )));
                }
            },
            None => None,
        };
        let owner = match &account {
            Some(a) if owner::is_root() => Some(Owner {
                uid: a.uid,
                gid: a.gid,
            }),
            Some(a) if a.uid != rustix::process::geteuid().as_raw() => {
                let name = a.name.clone();
                return finish(Err(fail_all(
                    &|| FetchError::User {
                        user: name.clone(),
                        reason: "giving files to another user needs root".into(),
                    },
                    &uris,
                )));
            }
            _ => None,
        };
        let ctx = Ctx {
            sandbox: sandbox_dir,
            user: user.as_deref(),
            account: account.as_ref(),
            owner,
            progress,
        };

        let mut failures = Vec::new();
        let mut jobs = Vec::new();
        for (index, spec) in uris.into_iter().enumerate() {
            let uri = spec.value.clone();
            match Job::plan(
                index,
                spec,
                &sandbox,
                self.inner.cfg.frameworks_home.as_deref(),
            ) {
                Ok(j) => jobs.push(j),
                Err(error) => failures.push(UriFailure { index, uri, error }),
            }
        }
        // Uncached duplicates share one download; cached ones share through the cache.
        let use_cache = self.inner.cache.is_some();
        let mut groups: Vec<Vec<Job>> = Vec::new();
        let mut by_source: HashMap<(String, Option<String>), usize> = HashMap::new();
        for job in jobs {
            if job.spec.cache && use_cache {
                groups.push(vec![job]);
                continue;
            }
            let key = (
                job.source.canonical(),
                job.spec.checksum.as_ref().map(|c| c.to_string()),
            );
            match by_source.get(&key) {
                Some(&g) => groups[g].push(job),
                None => {
                    by_source.insert(key, groups.len());
                    groups.push(vec![job]);
                }
            }
        }
        let ctx = &ctx;
        let results: Vec<Vec<UriResult>> = stream::iter(groups)
            .map(|g| self.run_group(ctx, g))
            .buffered(self.inner.cfg.concurrency)
            .collect()
            .await;
        let mut fetched = Vec::new();
        for (index, uri, r) in results.into_iter().flatten() {
            match r {
                Ok(f) => fetched.push(f),
                Err(error) => failures.push(UriFailure {
                    index,
                    uri: uri.to_string(),
                    error,
                }),
            }
        }
        fetched.sort_by_key(|f| f.index);
        failures.sort_by_key(|f| f.index);
        for f in &failures {
            tracing::warn!(uri = %f.uri, error = %f.error, "fetch failed");
        }
        finish(if failures.is_empty() {
            Ok(FetchReport { fetched })
        } else {
            Err(FetchFailure { failures, fetched })
        })
    }

    async fn run_group(&self, ctx: &Ctx<'_>, group: Vec<Job>) -> Vec<UriResult> {
        if group.len() == 1 {
            let job = &group[0];
            let r = self.with_deadline(job, self.run_job(ctx, job)).await;
            return vec![(job.index, job.uri.clone(), r)];
        }
        // Download once (raw bytes, verified), then place a copy for every member.
        let first = &group[0];
        let shared = self
            .with_deadline(first, async {
                self.check_access(ctx, first)?;
                let mut rep = self.reporter(ctx, first);
                let raw = Job {
                    action: Action::Copy { executable: false },
                    index: first.index,
                    spec: first.spec.clone(),
                    uri: first.uri.clone(),
                    source: first.source.clone(),
                    dest: PathBuf::new(),
                    sandbox: first.sandbox.clone(),
                };
                let (t, staging, _) = self.download(ctx, &raw, None, &mut rep).await?;
                Ok((t, staging))
            })
            .await;
        let mut out = Vec::new();
        match shared {
            Ok((t, staging)) => {
                for job in &group {
                    let mut rep = self.reporter(ctx, job);
                    let r = match staging.open_data() {
                        Ok(src) => self.place_from_file(ctx, job, src, &mut rep).await,
                        Err(e) => Err(e),
                    }
                    .map(|()| job.fetched(t.digest.clone(), t.bytes, CacheUse::NotCached));
                    out.push((job.index, job.uri.clone(), r));
                }
            }
            Err(e) => {
                // The first member reports the original error; the others refer to it.
                let msg = e.to_string();
                let mut first_err = Some(e);
                for job in &group {
                    let err =
                        first_err
                            .take()
                            .unwrap_or_else(|| FetchError::SharedDownloadFailed {
                                uri: job.spec.value.clone(),
                                reason: msg.clone(),
                            });
                    out.push((job.index, job.uri.clone(), Err(err)));
                }
            }
        }
        out
    }

    async fn with_deadline<T>(
        &self,
        job: &Job,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.inner.cfg.deadline {
            Some(d) => {
                tokio::time::timeout(d, fut)
                    .await
                    .map_err(|_| FetchError::DeadlineExceeded {
                        uri: job.spec.value.clone(),
                        deadline: d,
                    })?
            }
            None => fut.await,
        }
    }

    fn reporter(&self, ctx: &Ctx<'_>, job: &Job) -> JobReporter {
        JobReporter {
            index: job.index,
            uri: job.uri.clone(),
            started: Instant::now(),
            cb: ctx.progress.clone(),
        }
    }

    /// A local source must be allowed, a regular file and within the size limit, even when the
    /// cache would serve it (the entry may predate the policy); and a root fetcher must not
    /// hand a user a local file that user could not read.
    fn check_access(&self, ctx: &Ctx<'_>, job: &Job) -> Result<()> {
        if let Source::File(path) = &job.source {
            self.check_local(&job.spec.value, path)?;
        }
        if let (Source::File(path), Some(acct), Some(_)) = (&job.source, ctx.account, ctx.owner) {
            if !acct.can_read(path) {
                return Err(FetchError::PermissionDenied {
                    uri: job.spec.value.clone(),
                    path: path.clone(),
                    user: acct.name.clone(),
                });
            }
        }
        Ok(())
    }

    async fn run_job(&self, ctx: &Ctx<'_>, job: &Job) -> Result<Fetched> {
        self.check_access(ctx, job)?;
        let mut rep = self.reporter(ctx, job);
        let cache = match (&self.inner.cache, job.spec.cache) {
            (Some(c), true) => c.clone(),
            _ => {
                let (t, staging, _) = self.download(ctx, job, None, &mut rep).await?;
                self.finish_download(ctx, job, &staging, None, &mut rep)
                    .await?;
                rep.report(Phase::Done, t.bytes, Some(t.bytes));
                return Ok(job.fetched(t.digest, t.bytes, CacheUse::NotCached));
            }
        };
        let key = CacheKey {
            user: ctx.user.map(str::to_string),
            uri: job.source.canonical(),
            checksum: job.spec.checksum.as_ref().map(|c| c.to_string()),
        };
        let c = &self.inner.counters;
        loop {
            match cache.acquire(&key) {
                Acquire::Hit(lease) => {
                    Counters::inc(&c.cache_hits);
                    rep.report(Phase::Cached, 0, None);
                    tracing::info!(uri = %job.uri, "cache hit");
                    self.place_from_file(ctx, job, open_cached(&lease)?, &mut rep)
                        .await?;
                    let digest =
                        lease
                            .digest()
                            .parse()
                            .map_err(|e: FetchError| FetchError::Cache {
                                dir: PathBuf::new(),
                                reason: e.to_string(),
                            })?;
                    rep.report(Phase::Done, 0, None);
                    return Ok(job.fetched(digest, 0, CacheUse::Hit));
                }
                Acquire::Wait(mut rx) => {
                    // Wakes when the downloader commits or gives up; then look again.
                    let _ = rx.changed().await;
                }
                Acquire::Miss(owner) => {
                    Counters::inc(&c.cache_misses);
                    let (t, staging, lease) =
                        self.download(ctx, job, Some(owner), &mut rep).await?;
                    let used = if lease.is_some() {
                        CacheUse::Miss
                    } else {
                        CacheUse::Bypassed
                    };
                    self.finish_download(ctx, job, &staging, lease.as_ref(), &mut rep)
                        .await?;
                    rep.report(Phase::Done, t.bytes, Some(t.bytes));
                    return Ok(job.fetched(t.digest, t.bytes, used));
                }
            }
        }
    }

    /// Downloads with retries. With a cache owner the bytes are also written to the cache and
    /// committed once verified; the returned lease keeps that entry while it is placed.
    async fn download(
        &self,
        ctx: &Ctx<'_>,
        job: &Job,
        mut owner: Option<CacheOwner>,
        rep: &mut JobReporter,
    ) -> Result<(transfer::Transferred, Staging, Option<Lease>)> {
        let cfg = &self.inner.cfg;
        let stall = StallPolicy {
            window: cfg.stall_timeout,
            min_bytes_per_sec: cfg.stall_min_bytes_per_sec,
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res: Result<_> = async {
                let opened = transfer::open(
                    &self.inner.client,
                    &self.inner.local,
                    &self.inner.network,
                    &job.uri,
                    &job.source,
                    stall,
                )
                .await?;
                if let Some(len) = opened.len.filter(|&l| l > cfg.max_size) {
                    return Err(self.too_large(&job.spec.value, format!("it is {len} bytes, over")));
                }
                let mut cache_tmp = None;
                if let Some(o) = owner.as_mut() {
                    match opened.len {
                        Some(len) if len > 0 && o.reserve(len) => {
                            cache_tmp = Some(Arc::new(Cleanup::new(o.temp_path())));
                        }
                        len => {
                            tracing::info!(uri = %job.uri, size = ?len,
                                "size unknown or no cache space can be freed; downloading directly");
                            owner = None;
                        }
                    }
                }
                let cached = cache_tmp.is_some();
                let staging = Staging::new(&ctx.sandbox)?;
                let target = match job.action {
                    Action::Copy { .. } | Action::Extract(ArchiveKind::Zip) if cached => {
                        Target::Discard
                    }
                    Action::Copy { .. } | Action::Extract(ArchiveKind::Zip) => {
                        Target::File(staging.create_data()?)
                    }
                    Action::Extract(ArchiveKind::Gz) => Target::Gunzip(staging.create_data()?),
                    Action::Extract(ArchiveKind::Tar(c)) => Target::Tar(c, staging.tree()?),
                };
                let mut keep_alive = vec![staging.guard.clone()];
                keep_alive.extend(cache_tmp.iter().cloned());
                let sinks = Sinks {
                    target,
                    cache_file: cache_tmp.as_ref().map(|c| c.path().to_path_buf()),
                    limits: cfg.limits,
                    keep_alive,
                };
                let pass = transfer::Pass {
                    uri: &job.uri,
                    source: &job.source,
                    expected: job.spec.checksum.as_ref(),
                    stall,
                    counter: &self.inner.counters.bytes_transferred,
                    max_size: cfg.max_size,
                    size_hint: cfg.size_hint(),
                };
                let t = transfer::run(pass, opened, sinks, rep).await?;
                Ok((t, staging, cache_tmp))
            }
            .await;
            match res {
                Ok((t, staging, cache_tmp)) => {
                    let lease = match (owner, cache_tmp) {
                        // The entry stays the agent's: sandboxes get copies, never a link to it.
                        (Some(o), Some(tmp)) => Some(o.commit(tmp.path(), t.digest.to_string())?),
                        _ => None,
                    };
                    return Ok((t, staging, lease));
                }
                Err(e) if e.is_transient() && attempt < cfg.retry.max_attempts => {
                    let wait = cfg.retry.backoff(attempt);
                    tracing::warn!(uri = %job.uri, attempt, error = %e, wait_ms = wait.as_millis() as u64,
                        "transient fetch failure; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Places a verified download: staged results are moved in, cached entries are copied,
    /// zips are extracted from their file.
    async fn finish_download(
        &self,
        ctx: &Ctx<'_>,
        job: &Job,
        staging: &Staging,
        lease: Option<&Lease>,
        rep: &mut JobReporter,
    ) -> Result<()> {
        match (job.action, lease) {
            (Action::Copy { .. }, Some(l)) | (Action::Extract(ArchiveKind::Zip), Some(l)) => {
                self.place_from_file(ctx, job, open_cached(l)?, rep).await
            }
            (Action::Extract(ArchiveKind::Zip), None) => {
                self.place_from_file(ctx, job, staging.open_data()?, rep)
                    .await
            }
            (Action::Copy { executable }, None) => place_file(
                &ctx.sandbox,
                &staging.data_rel(),
                &job.dest,
                Some(if executable { 0o755 } else { 0o644 }),
                ctx.owner,
            ),
            (Action::Extract(ArchiveKind::Gz), _) => place_file(
                &ctx.sandbox,
                &staging.data_rel(),
                &job.dest,
                Some(0o644),
                ctx.owner,
            ),
            (Action::Extract(ArchiveKind::Tar(_)), _) => {
                place_tree_blocking(ctx, job, staging.tree_rel()).await
            }
        }
    }

    /// Places a URI's result from a verified file (a cache entry, or a shared download) open
    /// for reading. Plain files are copied, never hard-linked: a link would let the container
    /// write the cache entry (or another sandbox's copy) through its own sandbox.
    async fn place_from_file(
        &self,
        ctx: &Ctx<'_>,
        job: &Job,
        src: std::fs::File,
        rep: &mut JobReporter,
    ) -> Result<()> {
        let staging = Staging::new(&ctx.sandbox)?;
        let limits = self.inner.cfg.limits;
        let uri = job.spec.value.clone();
        let internal = |e: tokio::task::JoinError| FetchError::Internal {
            uri: uri.clone(),
            reason: e.to_string(),
        };
        match job.action {
            Action::Copy { executable } => {
                let mut dst = staging.create_data()?;
                let mut src = src;
                let data = ctx.sandbox.path().join(staging.data_rel());
                tokio::task::spawn_blocking(move || std::io::copy(&mut src, &mut dst))
                    .await
                    .map_err(internal)?
                    .map_err(|e| FetchError::io("cannot copy to", &data, e))?;
                place_file(
                    &ctx.sandbox,
                    &staging.data_rel(),
                    &job.dest,
                    Some(if executable { 0o755 } else { 0o644 }),
                    ctx.owner,
                )
            }
            Action::Extract(kind) => {
                rep.report(Phase::Extracting, 0, None);
                let out = match kind {
                    ArchiveKind::Gz => Err(staging.create_data()?),
                    _ => Ok(staging.tree()?),
                };
                let guard = staging.guard.clone();
                let res = tokio::task::spawn_blocking(move || {
                    let _keep = guard;
                    let mut src = src;
                    match (kind, out) {
                        (ArchiveKind::Gz, Err(mut dst)) => {
                            extract::gunzip(&mut src, &mut dst, limits)
                        }
                        (ArchiveKind::Zip, Ok(t)) => {
                            extract::extract_zip(src, Extractor::new(t, limits))
                        }
                        (ArchiveKind::Tar(c), Ok(t)) => {
                            let mut r = std::io::BufReader::with_capacity(256 * 1024, src);
                            extract::extract_tar(&mut r, c, Extractor::new(t, limits))
                        }
                        _ => Err("no extraction directory".to_string()),
                    }
                })
                .await
                .map_err(internal)?;
                res.map_err(|reason| FetchError::Extract {
                    uri: uri.clone(),
                    reason,
                })?;
                match kind {
                    ArchiveKind::Gz => place_file(
                        &ctx.sandbox,
                        &staging.data_rel(),
                        &job.dest,
                        Some(0o644),
                        ctx.owner,
                    ),
                    _ => place_tree_blocking(ctx, job, staging.tree_rel()).await,
                }
            }
        }
    }

    /// Checks what can be checked of a URI without fetching it: that it parses, that its
    /// `output_file` stays in the sandbox, and for a local source that this fetcher may read it
    /// (allowed, a regular file, within the size limit). For a caller that wants to refuse a
    /// request before accepting it; [`Fetcher::fetch`] checks all of it again.
    ///
    /// # Errors
    /// The [`FetchError`] the fetch would fail with.
    pub fn check_uri(&self, spec: &UriSpec) -> Result<()> {
        let source = Source::parse(&spec.value, self.inner.cfg.frameworks_home.as_deref())?;
        output_path(spec, &source)?;
        match &source {
            Source::File(path) => self.check_local(&spec.value, path)?,
            // Names are checked when they are resolved; a literal address can be checked now.
            Source::Http(url) => {
                if let Some(host) = url.host() {
                    self.inner.network.check_literal(&host).map_err(|d| {
                        FetchError::NetworkRefused {
                            uri: spec.value.clone(),
                            reason: d.to_string(),
                        }
                    })?;
                }
            }
        }
        Ok(())
    }

    fn too_large(&self, uri: &str, what: String) -> FetchError {
        FetchError::TooLarge {
            uri: uri.to_string(),
            what,
            limit: self.inner.cfg.max_size,
            hint: self.inner.cfg.size_hint(),
        }
    }

    /// Whether the local source `path` may be read: allowed, a regular file, not too big.
    fn check_local(&self, uri: &str, path: &Path) -> Result<()> {
        let opened = self.inner.local.open(uri, path)?;
        if opened.len > self.inner.cfg.max_size {
            return Err(self.too_large(uri, format!("it is {} bytes, over", opened.len)));
        }
        Ok(())
    }
}

/// Opens a cache entry for reading (the cache directory is the fetcher's own).
fn open_cached(lease: &Lease) -> Result<std::fs::File> {
    std::fs::File::open(lease.path()).map_err(|e| FetchError::io("cannot open", lease.path(), e))
}
