//! `SUBSCRIBE` (Berth's): every container's state as a stream, so that clients never poll
//! `GET_CONTAINERS`. Framed as a Mesos master's `SUBSCRIBE` stream: RecordIO records, the first
//! `SUBSCRIBED` with every container (the `GET_CONTAINERS` entries, without statistics), then a
//! `CONTAINER_UPDATED` per change, `CONTAINER_REMOVED` when one is removed, and `HEARTBEAT`s at
//! the asked interval.
//!
//! Bounded whatever the client does: records wait in a small channel, and a client that reads
//! slower than containers change makes the containerizer's change channel overflow for this
//! subscriber only; it then gets a fresh `SUBSCRIBED` instead of the changes it missed. Fetch
//! and pull progress is sent at most every [`PROGRESS_INTERVAL`] per container; phase changes
//! go at once, after the progress they follow. A record's `berth.state` is the phase the stream
//! has announced for the container — each phase once, in order, even when the container has
//! already moved on by the time the record is read — and its other fields are read when the
//! record is sent.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use berth_containerizer::{ChangeKind, ContainerId};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::Agent;
use crate::api::negotiate::{Media, MediaTypes};
use crate::api::recordio::answer_record;
use crate::api::response::container_id;
use crate::http::body::Body;

/// The most often one container's progress is sent.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Records waiting for a slow client before the stream stops reading changes.
const BUFFERED_RECORDS: usize = 16;

/// The protobuf message of each record.
const EVENT: &str = "mesos.v1.agent.Event";

impl Agent {
    /// Answers `SUBSCRIBE`: the stream's response, fed by a task that ends when the client goes,
    /// the agent stops, or a record cannot be encoded.
    pub(super) fn subscribe(
        self: &Arc<Self>,
        heartbeat: Duration,
        media: &MediaTypes,
    ) -> Response<Body> {
        let records = media.record_media();
        // Subscribed before the snapshot is read, so no change falls between the two.
        let changes = self.containerizer().subscribe();
        let (tx, rx) = mpsc::channel(BUFFERED_RECORDS);
        let stream = Stream {
            agent: self.clone(),
            tx,
            records,
            heartbeat,
        };
        tokio::spawn(stream.run(changes));
        self.counters
            .subscribers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut r = Response::new(ChannelBody(rx).boxed());
        *r.status_mut() = StatusCode::OK;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media.accept.as_str()),
        );
        r
    }

    /// The `GET_CONTAINERS` entry of one container, without statistics; `None` once removed.
    fn event_entry(&self, id: &ContainerId) -> Option<Value> {
        let status = self.containerizer().status(id).ok()?;
        Some(self.container_entry(&status, None))
    }

    fn subscribed(&self, heartbeat: Duration) -> Value {
        let mut ids: Vec<ContainerId> = self.containerizer().containers().into_iter().collect();
        ids.sort();
        let containers: Vec<Value> = ids.iter().filter_map(|id| self.event_entry(id)).collect();
        json!({"type": "SUBSCRIBED", "subscribed": {
            "containers": containers,
            "heartbeat_interval_seconds": heartbeat.as_secs_f64(),
        }})
    }
}

struct Stream {
    agent: Arc<Agent>,
    tx: mpsc::Sender<Bytes>,
    records: Media,
    heartbeat: Duration,
}

impl Stream {
    async fn run(self, mut changes: tokio::sync::broadcast::Receiver<berth_containerizer::Change>) {
        let end = self.agent.streams_end.clone();
        let mut dirty: BTreeSet<ContainerId> = BTreeSet::new();
        // The phase announced to this subscriber, per container.
        let mut phases: HashMap<ContainerId, String> = HashMap::new();
        let mut flush = tokio::time::interval(PROGRESS_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start = tokio::time::Instant::now() + self.heartbeat;
        let mut beat = tokio::time::interval_at(start, self.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if !self.snapshot(&mut phases).await {
            return;
        }
        loop {
            let sent = tokio::select! {
                // Changes before the progress flush and heartbeats, so a flush never shows a
                // phase the changes have not announced yet.
                biased;
                () = self.tx.closed() => break,
                () = end.cancelled() => break,
                change = changes.recv() => match change {
                    Ok(c) => match c.kind {
                        ChangeKind::Progress => {
                            dirty.insert(c.container_id);
                            true
                        }
                        ChangeKind::Health => {
                            dirty.remove(&c.container_id);
                            self.updated(&c.container_id, &phases).await
                        }
                        ChangeKind::Removed => {
                            dirty.remove(&c.container_id);
                            phases.remove(&c.container_id);
                            self.send(json!({"type": "CONTAINER_REMOVED", "container_removed": {
                                "container_id": container_id(c.container_id.as_str())}})).await
                        }
                        ChangeKind::Added | ChangeKind::Phase(_) => {
                            let phase = match c.kind {
                                ChangeKind::Phase(p) => p,
                                _ => berth_containerizer::Phase::Fetching,
                            };
                            dirty.remove(&c.container_id);
                            phases.insert(c.container_id.clone(), phase.to_string());
                            self.updated(&c.container_id, &phases).await
                        }
                    },
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "an event subscriber fell behind; it gets a fresh snapshot");
                        dirty.clear();
                        self.snapshot(&mut phases).await
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = flush.tick(), if !dirty.is_empty() => {
                    let mut ok = true;
                    for id in std::mem::take(&mut dirty) {
                        ok = ok && self.updated(&id, &phases).await;
                    }
                    ok
                }
                _ = beat.tick() => self.send(json!({"type": "HEARTBEAT"})).await,
            };
            if !sent {
                break;
            }
        }
        self.agent
            .counters
            .subscribers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sends `SUBSCRIBED` and takes the phases it shows as announced.
    async fn snapshot(&self, phases: &mut HashMap<ContainerId, String>) -> bool {
        let event = self.agent.subscribed(self.heartbeat);
        phases.clear();
        for c in event["subscribed"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(state)) = (
                c["container_id"]["value"].as_str(),
                c["berth"]["state"].as_str(),
            ) {
                if let Ok(id) = ContainerId::new(id) {
                    phases.insert(id, state.to_owned());
                }
            }
        }
        self.send(event).await
    }

    async fn updated(&self, id: &ContainerId, phases: &HashMap<ContainerId, String>) -> bool {
        match self.agent.event_entry(id) {
            Some(mut entry) => {
                if let Some(phase) = phases.get(id) {
                    entry["berth"]["state"] = json!(phase);
                }
                self.send(
                    json!({"type": "CONTAINER_UPDATED", "container_updated": {"container": entry}}),
                )
                .await
            }
            // Removed meanwhile: its CONTAINER_REMOVED follows.
            None => true,
        }
    }

    /// Sends one record; false once the client is gone (or the record has no protobuf form,
    /// a bug that ends the stream rather than send a wrong record).
    async fn send(&self, event: Value) -> bool {
        match answer_record(EVENT, &event, self.records) {
            Ok(record) => self.tx.send(record).await.is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "an event has no protobuf form (bug); ending the stream");
                false
            }
        }
    }
}

/// A response body fed by a channel: it ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|r| r.map(|b| Ok(Frame::data(b))))
    }
}
