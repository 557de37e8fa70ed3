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
    /// The most a pull may take, retries included (Nomad's `image_pull_timeout` idea).
    pub total_deadline: Duration,
    /// The most a pull may go without progress (bytes, layers, extraction) before it is
    /// aborted.
    pub inactivity_deadline: Duration,
    /// How many pulls run at once; further ones queue.
    pub max_parallel: usize,
    /// How many times a transient failure is retried.
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
}

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
    let deadline = started + config.total_deadline;
    let mut backoff = config.backoff;
    let mut attempt = 0;
    tracing::info!(%image, "pulling image");
    let result = loop {
        match once(&*engine, &image, &config, started, deadline, &progress).await {
            Ok(()) => break Ok(()),
            Err(Failure::Permanent(m)) => break Err(m),
            Err(Failure::Transient(m)) => {
                if attempt >= config.retries || Instant::now() + backoff >= deadline {
                    break Err(m);
                }
                attempt += 1;
                tracing::warn!(%image, attempt, error = %m, retry_in = ?backoff, "image pull failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    };
    match &result {
        Ok(()) => tracing::info!(%image, elapsed = ?started.elapsed(), "image pulled"),
        Err(e) => tracing::warn!(%image, error = %e, "image pull failed"),
    }
    done.send_replace(Some(result));
}

async fn once(
    engine: &dyn Engine,
    image: &str,
    config: &PullConfig,
    started: Instant,
    deadline: Instant,
    progress: &watch::Sender<PullProgress>,
) -> Result<(), Failure> {
    let mut stream = engine.pull(image);
    let mut last = PullProgress::default();
    let mut idle_until = Instant::now() + config.inactivity_deadline;
    let mut next_report = Instant::now() + config.report_every;
    loop {
        let wake = idle_until.min(deadline);
        let item = tokio::select! {
            item = stream.next() => item,
            _ = tokio::time::sleep_until(wake) => {
                return Err(if Instant::now() >= deadline {
                    Failure::Permanent(format!(
                        "pull of image '{image}' did not finish within its deadline of {}s ({last})",
                        config.total_deadline.as_secs()
                    ))
                } else {
                    Failure::Transient(format!(
                        "pull of image '{image}' made no progress for {}s ({last})",
                        config.inactivity_deadline.as_secs()
                    ))
                });
            }
        };
        match item {
            None => return Ok(()),
            Some(Ok(p)) => {
                let now = Instant::now();
                if p.advanced_from(&last) {
                    idle_until = now + config.inactivity_deadline;
                }
                if now >= next_report {
                    next_report = now + config.report_every;
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
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
