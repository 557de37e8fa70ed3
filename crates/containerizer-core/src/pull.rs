//! Image pulls: one pull per image shared by every launch that needs it, a limit on parallel
//! pulls, two clocks (a total deadline and a no-progress deadline fed by the progress stream),
//! retries with backoff for transient registry errors, and abort when nobody waits any more.
//!
//! The shared pull runs in its own task. Each waiter holds an `Arc` of it; when the last waiter
//! goes (every launch that wanted the image was destroyed) the task is aborted, which drops the
//! pull stream and so aborts the pull in the daemon.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
// Tokio's clock, so deadlines follow a paused test clock too.
use tokio::time::Instant;

use crate::engine::{Engine, EngineErrorKind, PullProgress};

/// How pulls are bounded.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// The most a pull may take from the start of its first attempt, retries and the waits
    /// between them included (Nomad's `image_pull_timeout` idea). Time spent queued for a
    /// parallel-pull slot does not count.
    pub total_deadline: Duration,
    /// The most a pull may go without progress (bytes downloaded or extracted, layers announced
    /// or done, a new status) in any attempt. Retries do not reset it, nor does the wait before
    /// one: a registry that stalls every attempt fails the pull this long after its last
    /// progress, not once per attempt.
    pub inactivity_deadline: Duration,
    /// How many pulls run at once; further ones queue.
    pub max_parallel: usize,
    /// How many times a transient failure is retried (within the deadlines).
    pub retries: u32,
    /// The first retry delay; doubled each time.
    pub backoff: Duration,
    /// How often progress is logged while pulling.
    pub report_every: Duration,
}

impl Default for PullConfig {
    fn default() -> PullConfig {
        PullConfig {
            total_deadline: Duration::from_secs(30 * 60),
            inactivity_deadline: Duration::from_secs(2 * 60),
            max_parallel: 3,
            retries: 3,
            backoff: Duration::from_secs(1),
            report_every: Duration::from_secs(10),
        }
    }
}

/// Normalises an image reference the way Mesos does before inspecting: `:latest` is added when
/// the last path component has no tag and there is no digest.
pub fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

struct Shared {
    progress: watch::Receiver<PullProgress>,
    done: watch::Receiver<Option<Result<(), String>>>,
    task: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Last waiter gone: abort the pull (dropping its stream aborts it in the daemon).
        self.task.abort();
    }
}

/// Coordinates pulls.
pub(crate) struct Puller {
    engine: Arc<dyn Engine>,
    config: PullConfig,
    slots: Arc<Semaphore>,
    inflight: Mutex<HashMap<String, Weak<Shared>>>,
}

impl Puller {
    pub fn new(engine: Arc<dyn Engine>, config: PullConfig) -> Puller {
        let slots = Arc::new(Semaphore::new(config.max_parallel.max(1)));
        Puller {
            engine,
            config,
            slots,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure `image` is present: inspects it (unless `force`), else joins or starts its
    /// pull and waits for it, passing each progress snapshot to `on_progress`. Dropping the
    /// future leaves the pull; the pull is aborted when no one is left.
    pub async fn ensure(
        &self,
        image: &str,
        force: bool,
        on_progress: impl Fn(&PullProgress),
    ) -> Result<(), String> {
        let image = normalize_image(image);
        if !force {
            match self.engine.image_present(&image).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                // An inspect failure is not fatal: the pull will say what is wrong.
                Err(e) => tracing::debug!(%image, error = %e, "image inspect failed; pulling"),
            }
        }
        let shared = self.join(&image);
        let mut progress = shared.progress.clone();
        let mut done = shared.done.clone();
        loop {
            if let Some(result) = done.borrow_and_update().clone() {
                return result;
            }
            tokio::select! {
                changed = done.changed() => {
                    if changed.is_err() {
                        return Err(format!("the pull of '{image}' was abandoned"));
                    }
                }
                changed = progress.changed() => {
                    if changed.is_ok() {
                        on_progress(&progress.borrow_and_update());
                    }
                }
            }
        }
    }

    fn join(&self, image: &str) -> Arc<Shared> {
        let mut inflight = self.inflight.lock().expect("pull map lock");
        if let Some(shared) = inflight.get(image).and_then(Weak::upgrade) {
            // A pull that already ended is not reused: the image may have been removed since.
            if shared.done.borrow().is_none() {
                tracing::debug!(%image, "joining the pull in flight");
                return shared;
            }
        }
        let (progress_tx, progress_rx) = watch::channel(PullProgress::default());
        let (done_tx, done_rx) = watch::channel(None);
        let task = tokio::spawn(run(
            self.engine.clone(),
            image.to_owned(),
            self.config.clone(),
            self.slots.clone(),
            progress_tx,
            done_tx,
        ));
        let shared = Arc::new(Shared {
            progress: progress_rx,
            done: done_rx,
            task,
        });
        inflight.retain(|_, w| w.strong_count() > 0);
        inflight.insert(image.to_owned(), Arc::downgrade(&shared));
        shared
    }
}

enum Failure {
    Transient(String),
    Permanent(String),
    /// A deadline passed: the pull ends, not retried.
    Deadline(Fired),
}

/// The two clocks of one pull, shared by all its attempts.
struct Clocks<'a> {
    config: &'a PullConfig,
    /// When the pull started (its parallel-pull slot was granted).
    started: Instant,
    /// The last progress of any attempt (or the start).
    last_progress: Instant,
}

/// Which deadline ended a pull.
enum Fired {
    Total,
    Inactivity,
}

impl Clocks<'_> {
    fn total_deadline(&self) -> Instant {
        self.started + self.config.total_deadline
    }

    fn inactivity_deadline(&self) -> Instant {
        self.last_progress + self.config.inactivity_deadline
    }

    /// The sooner deadline.
    fn next(&self) -> Instant {
        self.total_deadline().min(self.inactivity_deadline())
    }

    /// The deadline that has passed at `now`, if any (the total one first).
    fn fired(&self, now: Instant) -> Option<Fired> {
        if now >= self.total_deadline() {
            Some(Fired::Total)
        } else if now >= self.inactivity_deadline() {
            Some(Fired::Inactivity)
        } else {
            None
        }
    }

    /// The error of a pull ended by `fired`: which deadline, its length, and what was reached.
    fn message(
        &self,
        fired: &Fired,
        image: &str,
        attempts: u32,
        last_error: Option<&str>,
        progress: &PullProgress,
    ) -> String {
        let what = match fired {
            Fired::Total => format!(
                "did not finish within its total deadline of {} (the image pull timeout)",
                secs(self.config.total_deadline)
            ),
            Fired::Inactivity => format!(
                "made no progress for {} and hit its inactivity deadline (the image pull \
                 inactivity timeout)",
                secs(self.config.inactivity_deadline)
            ),
        };
        let tries = if attempts > 1 {
            format!(" after {attempts} attempts")
        } else {
            String::new()
        };
        let last = last_error
            .map(|e| format!("; the last attempt failed: {e}"))
            .unwrap_or_default();
        format!("pull of image '{image}' {what}{tries} ({progress}){last}")
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// One pull, retried on transient failures with doubling backoff, all within the two deadlines:
/// the total deadline counts from the start of the first attempt, retries and their backoff
/// included; the inactivity deadline from the last progress of any attempt, so neither a retry
/// nor the wait before it resets it. Whichever passes first ends the pull at once, without a
/// further retry, with an error naming it.
async fn run(
    engine: Arc<dyn Engine>,
    image: String,
    config: PullConfig,
    slots: Arc<Semaphore>,
    progress: watch::Sender<PullProgress>,
    done: watch::Sender<Option<Result<(), String>>>,
) {
    let _slot = slots
        .acquire_owned()
        .await
        .expect("the pull semaphore is never closed");
    let started = Instant::now();
    let mut clocks = Clocks {
        config: &config,
        started,
        last_progress: started,
    };
    let mut backoff = crate::retry::Backoff::new(config.backoff, config.backoff * 64);
    let mut attempts = 0;
    let mut last_error: Option<String> = None;
    let mut last = PullProgress::default();
    tracing::info!(%image, "pulling image");
    let result = loop {
        attempts += 1;
        match once(&*engine, &image, &mut clocks, &progress, &mut last).await {
            Ok(()) => break Ok(()),
            Err(Failure::Permanent(m)) => break Err(m),
            Err(Failure::Deadline(fired)) => {
                break Err(clocks.message(&fired, &image, attempts, last_error.as_deref(), &last))
            }
            Err(Failure::Transient(m)) if attempts > config.retries => break Err(m),
            Err(Failure::Transient(m)) => {
                let retry_in = backoff.next_delay();
                tracing::warn!(%image, attempt = attempts, error = %m, ?retry_in, "image pull failed; retrying");
                last_error = Some(m);
                let wake = (Instant::now() + retry_in).min(clocks.next());
                tokio::time::sleep_until(wake).await;
                if let Some(fired) = clocks.fired(Instant::now()) {
                    break Err(clocks.message(
                        &fired,
                        &image,
                        attempts,
                        last_error.as_deref(),
                        &last,
                    ));
                }
            }
        }
    };
    match &result {
        Ok(()) => tracing::info!(%image, elapsed = ?started.elapsed(), "image pulled"),
        Err(e) => tracing::warn!(%image, error = %e, "image pull failed"),
    }
    done.send_replace(Some(result));
}

/// One attempt. A deadline passing ends it (and the pull) with [`Failure::Deadline`].
async fn once(
    engine: &dyn Engine,
    image: &str,
    clocks: &mut Clocks<'_>,
    progress: &watch::Sender<PullProgress>,
    latest: &mut PullProgress,
) -> Result<(), Failure> {
    let config = clocks.config;
    let mut stream = engine.pull(image);
    // This attempt's own progress: a retry starts from nothing, but its start is not progress.
    let mut last = PullProgress::default();
    let mut next_report = Instant::now() + config.report_every;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            _ = tokio::time::sleep_until(clocks.next()) => {
                let fired = clocks.fired(Instant::now()).unwrap_or(Fired::Inactivity);
                return Err(Failure::Deadline(fired));
            }
        };
        match item {
            None => return Ok(()),
            Some(Ok(p)) => {
                let now = Instant::now();
                if p.advanced_from(&last) {
                    clocks.last_progress = now;
                }
                if now >= next_report {
                    next_report = now + config.report_every;
                    let secs = clocks.started.elapsed().as_secs_f64().max(1e-3);
                    let rate = p.downloaded as f64 / secs;
                    let eta = (rate > 0.0 && p.download_total > p.downloaded)
                        .then(|| (p.download_total - p.downloaded) as f64 / rate);
                    tracing::info!(
                        %image,
                        layers = p.layers,
                        layers_done = p.layers_done,
                        bytes = p.downloaded,
                        total_bytes = p.download_total,
                        extracted = p.extracted,
                        bytes_per_sec = rate as u64,
                        eta_secs = eta.map(|e| e as u64),
                        "pulling image"
                    );
                }
                progress.send_replace(p.clone());
                latest.clone_from(&p);
                last = p;
            }
            Some(Err(e)) => {
                return Err(match e.kind {
                    EngineErrorKind::Transient => Failure::Transient(e.message),
                    _ => Failure::Permanent(e.message),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_mesos() {
        assert_eq!(normalize_image("busybox"), "busybox:latest");
        assert_eq!(normalize_image("busybox:1"), "busybox:1");
        assert_eq!(
            normalize_image("127.0.0.1:5000/a/b"),
            "127.0.0.1:5000/a/b:latest"
        );
        assert_eq!(
            normalize_image("127.0.0.1:5000/a/b:v2"),
            "127.0.0.1:5000/a/b:v2"
        );
        assert_eq!(normalize_image("a@sha256:abc"), "a@sha256:abc");
    }
}
