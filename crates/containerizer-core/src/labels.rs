//! The labels Berth puts on every container it creates, and how ownership is read back.
//!
//! Ownership is decided by these labels and the agent id, never by a name prefix alone (Mesos's
//! weakness: every `mesos-*` container was treated as its own, so two agents on one daemon
//! killed each other's containers).

use std::collections::BTreeMap;

use crate::id::{AgentId, ContainerId};

/// The owning agent's id.
pub const AGENT_ID: &str = "io.berth.agent-id";
/// The Mesos container id.
pub const CONTAINER_ID: &str = "io.berth.container-id";
/// The Berth version that created the container.
pub const VERSION: &str = "io.berth.version";

/// The Berth version written into [`VERSION`].
pub const BERTH_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether a user may not set `key` (it would forge ownership).
pub fn is_reserved(key: &str) -> bool {
    matches!(key, AGENT_ID | CONTAINER_ID | VERSION)
}

/// Berth's own labels for a container.
pub fn own_labels(agent: &AgentId, container: &ContainerId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (AGENT_ID.to_owned(), agent.to_string()),
        (CONTAINER_ID.to_owned(), container.to_string()),
        (VERSION.to_owned(), BERTH_VERSION.to_owned()),
    ])
}

/// Who a Docker container belongs to, judged from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Created by this agent for this container id.
    Ours(ContainerId),
    /// Labelled by this agent, but the container id label is missing or not a valid id: left
    /// alone (Mesos's SkipRecoverMalformedUUID).
    Malformed(String),
    /// Another agent's, or not Berth's at all: never touched.
    Foreign,
}

/// Reads ownership from `labels` for agent `me`.
pub fn ownership(labels: &BTreeMap<String, String>, me: &AgentId) -> Ownership {
    if labels.get(AGENT_ID).map(String::as_str) != Some(me.as_str()) {
        return Ownership::Foreign;
    }
    match labels.get(CONTAINER_ID) {
        Some(id) => match ContainerId::new(id.as_str()) {
            Ok(id) => Ownership::Ours(id),
            Err(e) => Ownership::Malformed(e.to_string()),
        },
        None => Ownership::Malformed(format!("label {CONTAINER_ID} is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_by_agent_label_and_valid_id() {
        let me = AgentId::new("agent-1").unwrap();
        let cid = ContainerId::new("c1").unwrap();
        let ours = own_labels(&me, &cid);
        assert_eq!(ownership(&ours, &me), Ownership::Ours(cid.clone()));
        let other = AgentId::new("agent-2").unwrap();
        assert_eq!(ownership(&ours, &other), Ownership::Foreign);
        assert_eq!(ownership(&BTreeMap::new(), &me), Ownership::Foreign);
        let mut bad = ours.clone();
        bad.insert(CONTAINER_ID.into(), "not/valid".into());
        assert!(matches!(ownership(&bad, &me), Ownership::Malformed(_)));
        bad.remove(CONTAINER_ID);
        assert!(matches!(ownership(&bad, &me), Ownership::Malformed(m) if m.contains("missing")));
        assert_eq!(ours[VERSION], BERTH_VERSION);
    }
}
