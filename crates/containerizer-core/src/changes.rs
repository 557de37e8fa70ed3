//! Notifications of what changes in the containers, for subscribers that follow them live (the
//! agent's event stream) instead of polling [`Containerizer::status`](crate::Containerizer).
//!
//! A notification says only *which* container changed and how; the subscriber reads the
//! container's status for the details. That keeps the channel's items small and lets a slow
//! subscriber fall behind safely: the broadcast channel is bounded, and a subscriber that lags
//! is told so ([`tokio::sync::broadcast::error::RecvError::Lagged`]) and reads everyone's
//! status afresh, so no subscriber makes the containerizer hold more memory.

use crate::id::ContainerId;
use crate::state::Phase;

/// How a container changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// It was launched (it is now known, in [`Phase::Fetching`]).
    Added,
    /// It entered this phase ([`Phase::Terminated`] once its termination is decided).
    Phase(Phase),
    /// Its fetch or pull progressed (frequent: subscribers rate-limit these).
    Progress,
    /// Its health changed: its state (starting, healthy, unhealthy) or its count of
    /// consecutive failures.
    Health,
    /// It was removed; it is no longer known.
    Removed,
}

/// One change of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The container.
    pub container_id: ContainerId,
    /// What happened.
    pub kind: ChangeKind,
}

/// How many changes a subscriber may be behind before it is told it lagged.
pub const CHANNEL_CAPACITY: usize = 1024;
