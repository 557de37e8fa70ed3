//! Progress of pulls, pushes and imports: the daemon's JSON messages, per-layer state, totals.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use serde::Deserialize;

use crate::error::{Error, ResourceKind, Result};
use crate::stream::JsonStream;

/// One progress message as the daemon sends it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProgressMessage {
    /// What happened (`Downloading`, `Pull complete`, `Pushed`, ...).
    #[serde(default)]
    pub status: Option<String>,
    /// The layer ID, or the tag for whole-image messages.
    #[serde(default)]
    pub id: Option<String>,
    /// The daemon's rendered progress bar.
    #[serde(default)]
    pub progress: Option<String>,
    /// Bytes done and total.
    #[serde(default, rename = "progressDetail")]
    pub progress_detail: Option<ProgressDetail>,
    /// An error message (the request failed).
    #[serde(default)]
    pub error: Option<String>,
    /// The structured error.
    #[serde(default, rename = "errorDetail")]
    pub error_detail: Option<ErrorDetail>,
    /// Extra data, e.g. a push's `{"Tag","Digest","Size"}`.
    #[serde(default)]
    pub aux: Option<serde_json::Value>,
}

/// Bytes done and total of a layer step.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProgressDetail {
    /// Bytes done.
    #[serde(default)]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(default)]
    pub total: Option<u64>,
}

/// An error inside a progress stream.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorDetail {
    /// Error code, when any.
    #[serde(default)]
    pub code: Option<i64>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
}

impl ProgressMessage {
    /// The failure this message reports, if it reports one.
    pub fn failure(&self) -> Option<(String, Option<i64>)> {
        let detail = self.error_detail.as_ref();
        let message = detail
            .and_then(|d| d.message.clone())
            .or_else(|| self.error.clone())?;
        Some((message, detail.and_then(|d| d.code)))
    }
}

/// Turns a failure inside a 200 stream into an error; missing images become
/// [`Error::NotFound`] naming the image and its registry.
pub(crate) fn stream_failure(
    request: &str,
    message: String,
    code: Option<i64>,
    image: Option<(&str, String)>,
) -> Error {
    let lower = message.to_ascii_lowercase();
    if let Some((name, registry)) = image {
        if lower.contains("manifest unknown")
            || lower.contains("not found")
            || lower.contains("does not exist")
        {
            return Error::NotFound {
                kind: ResourceKind::Image,
                name: name.to_owned(),
                registry: Some(registry),
                message,
            };
        }
    }
    Error::Stream {
        request: request.to_owned(),
        message,
        code,
    }
}

/// A stream of progress messages (push, import) that fails on the daemon's in-stream errors.
#[must_use = "streams do nothing unless polled"]
pub struct ProgressStream {
    inner: JsonStream<ProgressMessage>,
    request: String,
    image: Option<(String, String)>,
    done: bool,
}

impl ProgressStream {
    pub(crate) fn new(
        inner: JsonStream<ProgressMessage>,
        request: String,
        image: Option<(String, String)>,
    ) -> ProgressStream {
        ProgressStream {
            inner,
            request,
            image,
            done: false,
        }
    }
}

impl Stream for ProgressStream {
    type Item = Result<ProgressMessage>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<ProgressMessage>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        Poll::Ready(match item {
            Some(Ok(message)) => match message.failure() {
                Some((text, code)) => {
                    this.done = true;
                    let image = this.image.as_ref().map(|(n, r)| (n.as_str(), r.clone()));
                    Some(Err(stream_failure(&this.request, text, code, image)))
                }
                None => Some(Ok(message)),
            },
            Some(Err(e)) => {
                this.done = true;
                Some(Err(e))
            }
            None => None,
        })
    }
}

/// Where a layer is in a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerPhase {
    /// Announced (`Pulling fs layer`).
    Queued,
    /// Waiting for a download slot.
    Waiting,
    /// Bytes arriving.
    Downloading,
    /// Checking the digest.
    Verifying,
    /// Downloaded, not yet extracted.
    Downloaded,
    /// Being unpacked.
    Extracting,
    /// Done.
    Complete,
    /// Present locally; nothing to fetch.
    AlreadyExists,
    /// A download failed and will be retried.
    Retrying,
}

impl LayerPhase {
    fn from_status(status: &str) -> Option<LayerPhase> {
        Some(match status {
            "Pulling fs layer" => LayerPhase::Queued,
            "Waiting" => LayerPhase::Waiting,
            "Downloading" => LayerPhase::Downloading,
            "Verifying Checksum" => LayerPhase::Verifying,
            "Download complete" => LayerPhase::Downloaded,
            "Extracting" => LayerPhase::Extracting,
            "Pull complete" => LayerPhase::Complete,
            "Already exists" => LayerPhase::AlreadyExists,
            s if s.starts_with("Retrying") => LayerPhase::Retrying,
            _ => return None,
        })
    }

    /// Whether nothing more will happen to the layer.
    pub fn is_finished(self) -> bool {
        matches!(self, LayerPhase::Complete | LayerPhase::AlreadyExists)
    }
}

/// One layer's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerProgress {
    /// Short layer ID as the daemon reports it.
    pub id: String,
    /// Phase.
    pub phase: LayerPhase,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Compressed size, once the daemon reported it.
    pub size: Option<u64>,
    /// Bytes extracted (of `size`).
    pub extracted: u64,
}

/// The whole pull so far: what a caller needs for "X of Y bytes, Z/s, N s left".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullTotals {
    /// Layers announced.
    pub layers: usize,
    /// Layers finished (pulled or already present).
    pub layers_finished: usize,
    /// Bytes downloaded across layers.
    pub downloaded: u64,
    /// Sum of the layer sizes known so far.
    pub known_size: u64,
    /// Whether every layer that must be downloaded has reported its size (then `known_size` is
    /// the full download).
    pub size_complete: bool,
    /// Time since the pull started.
    pub elapsed: Duration,
}

impl PullTotals {
    /// Average download rate since the start, bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.downloaded as f64 / secs
        } else {
            0.0
        }
    }

    /// Time left at the average rate, when the size is complete and bytes are flowing.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.bytes_per_second();
        if !self.size_complete || rate <= 0.0 {
            return None;
        }
        let left = self.known_size.saturating_sub(self.downloaded) as f64;
        Some(Duration::from_secs_f64(left / rate))
    }
}

/// One item of a pull: the message, the layer it changed, and the totals after it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PullProgress {
    /// The daemon's message.
    pub message: ProgressMessage,
    /// The layer the message was about, after applying it.
    pub layer: Option<LayerProgress>,
    /// The pull so far.
    pub totals: PullTotals,
}

/// Folds pull messages into per-layer state and totals.
#[derive(Debug, Clone)]
pub struct PullTracker {
    started: Instant,
    layers: HashMap<String, LayerProgress>,
}

impl PullTracker {
    /// A tracker whose clock starts now.
    pub fn new() -> PullTracker {
        PullTracker {
            started: Instant::now(),
            layers: HashMap::new(),
        }
    }

    /// Applies one message; returns the layer it changed, if it was about a layer.
    pub fn apply(&mut self, message: &ProgressMessage) -> Option<LayerProgress> {
        let phase = LayerPhase::from_status(message.status.as_deref()?)?;
        let id = message.id.clone()?;
        let layer = self.layers.entry(id.clone()).or_insert(LayerProgress {
            id,
            phase,
            downloaded: 0,
            size: None,
            extracted: 0,
        });
        layer.phase = phase;
        let detail = message.progress_detail.unwrap_or_default();
        match phase {
            LayerPhase::Downloading => {
                layer.downloaded = detail.current.unwrap_or(layer.downloaded);
                layer.size = detail.total.filter(|t| *t > 0).or(layer.size);
            }
            LayerPhase::Verifying | LayerPhase::Downloaded => {
                layer.downloaded = layer.size.unwrap_or(layer.downloaded);
            }
            LayerPhase::Extracting => {
                layer.extracted = detail.current.unwrap_or(layer.extracted);
                layer.size = layer.size.or(detail.total.filter(|t| *t > 0));
                layer.downloaded = layer.size.unwrap_or(layer.downloaded);
            }
            LayerPhase::Complete => {
                layer.downloaded = layer.size.unwrap_or(layer.downloaded);
                layer.extracted = layer.size.unwrap_or(layer.extracted);
            }
            LayerPhase::Retrying => layer.downloaded = 0,
            LayerPhase::Queued | LayerPhase::Waiting | LayerPhase::AlreadyExists => {}
        }
        Some(layer.clone())
    }

    /// The totals now.
    pub fn totals(&self) -> PullTotals {
        let mut totals = PullTotals {
            layers: self.layers.len(),
            layers_finished: 0,
            downloaded: 0,
            known_size: 0,
            size_complete: true,
            elapsed: self.started.elapsed(),
        };
        for layer in self.layers.values() {
            if layer.phase.is_finished() {
                totals.layers_finished += 1;
            }
            if layer.phase == LayerPhase::AlreadyExists {
                continue;
            }
            totals.downloaded += layer.downloaded;
            match layer.size {
                Some(size) => totals.known_size += size,
                None => totals.size_complete = false,
            }
        }
        totals
    }

    /// The layers seen so far.
    pub fn layers(&self) -> impl Iterator<Item = &LayerProgress> {
        self.layers.values()
    }
}

impl Default for PullTracker {
    fn default() -> PullTracker {
        PullTracker::new()
    }
}

/// The progress of a pull. Ends when the pull is done; ends with an error when it fails.
///
/// Dropping it before the end closes the connection, and the daemon aborts the pull.
#[must_use = "streams do nothing unless polled; a dropped pull is aborted"]
pub struct PullStream {
    inner: ProgressStream,
    tracker: PullTracker,
    image: String,
    last_report: Option<Instant>,
}

impl PullStream {
    pub(crate) fn new(inner: ProgressStream, image: String) -> PullStream {
        PullStream {
            inner,
            tracker: PullTracker::new(),
            image,
            last_report: None,
        }
    }

    /// The per-layer state so far.
    pub fn tracker(&self) -> &PullTracker {
        &self.tracker
    }
}

/// How often a pull logs its progress.
const REPORT_EVERY: Duration = Duration::from_secs(2);

impl Stream for PullStream {
    type Item = Result<PullProgress>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<PullProgress>>> {
        let this = self.get_mut();
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        Poll::Ready(item.map(|result| {
            result.map(|message| {
                let layer = this.tracker.apply(&message);
                let totals = this.tracker.totals();
                if !matches!(this.last_report, Some(t) if t.elapsed() < REPORT_EVERY) {
                    this.last_report = Some(Instant::now());
                    tracing::debug!(
                        image = %this.image,
                        layers = totals.layers,
                        layers_finished = totals.layers_finished,
                        downloaded = totals.downloaded,
                        known_size = totals.known_size,
                        bytes_per_second = totals.bytes_per_second() as u64,
                        eta_seconds = totals.eta().map(|d| d.as_secs()),
                        "pulling image"
                    );
                }
                PullProgress {
                    message,
                    layer,
                    totals,
                }
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: &str) -> ProgressMessage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn tracks_layers_and_totals() {
        let mut t = PullTracker::new();
        assert!(t
            .apply(&msg(
                r#"{"status":"Pulling from berth-test/large","id":"latest"}"#
            ))
            .is_none());
        t.apply(&msg(
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"a"}"#,
        ));
        t.apply(&msg(
            r#"{"status":"Already exists","progressDetail":{},"id":"b"}"#,
        ));
        let totals = t.totals();
        assert_eq!(
            (totals.layers, totals.layers_finished, totals.size_complete),
            (2, 1, false)
        );
        let layer = t.apply(&msg(r#"{"status":"Downloading","progressDetail":{"current":100,"total":1000},"progress":"[>  ]","id":"a"}"#)).unwrap();
        assert_eq!(
            (layer.phase, layer.downloaded, layer.size),
            (LayerPhase::Downloading, 100, Some(1000))
        );
        let totals = t.totals();
        assert_eq!(
            (totals.downloaded, totals.known_size, totals.size_complete),
            (100, 1000, true)
        );
        t.apply(&msg(
            r#"{"status":"Verifying Checksum","progressDetail":{},"id":"a"}"#,
        ));
        t.apply(&msg(
            r#"{"status":"Download complete","progressDetail":{},"id":"a"}"#,
        ));
        assert_eq!(t.totals().downloaded, 1000);
        let layer = t
            .apply(&msg(
                r#"{"status":"Extracting","progressDetail":{"current":500,"total":1000},"id":"a"}"#,
            ))
            .unwrap();
        assert_eq!(layer.extracted, 500);
        t.apply(&msg(
            r#"{"status":"Pull complete","progressDetail":{},"id":"a"}"#,
        ));
        let totals = t.totals();
        assert_eq!((totals.layers_finished, totals.downloaded), (2, 1000));
        assert!(t
            .apply(&msg(r#"{"status":"Digest: sha256:abc"}"#))
            .is_none());
    }

    #[test]
    fn rate_and_eta() {
        let totals = PullTotals {
            layers: 1,
            layers_finished: 0,
            downloaded: 1000,
            known_size: 3000,
            size_complete: true,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(totals.bytes_per_second(), 500.0);
        assert_eq!(totals.eta(), Some(Duration::from_secs(4)));
        assert_eq!(
            PullTotals {
                size_complete: false,
                ..totals
            }
            .eta(),
            None
        );
        assert_eq!(
            PullTotals {
                elapsed: Duration::ZERO,
                ..totals
            }
            .eta(),
            None
        );
    }

    #[test]
    fn failures_map_to_stream_or_not_found() {
        let m = msg(
            r#"{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}"#,
        );
        let (text, code) = m.failure().unwrap();
        let err = stream_failure(
            "POST /images/x/push",
            text,
            code,
            Some(("r/x:latest", "r".into())),
        );
        assert!(matches!(&err, Error::Stream { message, .. } if message.contains("unauthorized")));
        let m = msg(
            r#"{"error":"manifest for 127.0.0.1:5301/nope:latest not found: manifest unknown"}"#,
        );
        let (text, code) = m.failure().unwrap();
        let err = stream_failure(
            "POST /images/create",
            text,
            code,
            Some(("127.0.0.1:5301/nope:latest", "127.0.0.1:5301".into())),
        );
        assert!(
            matches!(&err, Error::NotFound { kind: ResourceKind::Image, registry: Some(r), .. } if r == "127.0.0.1:5301"),
            "{err:?}"
        );
        assert!(msg(r#"{"status":"ok"}"#).failure().is_none());
    }
}
