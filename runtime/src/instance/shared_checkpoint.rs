//! Source checkpoints shared between nodes: after a source's batch is in the stream and
//! its state saved locally, the state is also shared (with the supervisor), so the node
//! that takes the source over after a failure resumes from it. A save is accepted only
//! under the source's current lease: a node that lost the source is fenced off.

use std::sync::Arc;

use async_trait::async_trait;

/// A checkpoint as shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedState {
    /// The node that saved it.
    pub node_id: String,
    /// The lease epoch it was saved under.
    pub epoch: u64,
    /// The plugin's state.
    pub state: Vec<u8>,
}

/// Why a shared checkpoint could not be read or saved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SharedCheckpointError {
    /// Another node holds the source's lease now: this node must stop the source.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The store could not be reached or answered badly (the lease decides whether the
    /// source may go on meanwhile).
    #[error("{0}")]
    Unavailable(String),
}

/// Where source checkpoints are shared.
#[async_trait]
pub trait SharedCheckpoints: Send + Sync {
    /// The checkpoint shared last for a source instance.
    async fn load(&self, instance_id: u64) -> Result<Option<SharedState>, SharedCheckpointError>;
    /// Whether the source may go on producing while its checkpoints cannot be shared:
    /// true when no other node could take it over (one node alone); otherwise it waits
    /// for the share, so that a node taking over produces at most one batch again.
    fn may_go_on_unshared(&self, instance_id: u64) -> bool;
    /// Shares a checkpoint, saved under lease `epoch`.
    async fn save(
        &self,
        instance_id: u64,
        epoch: u64,
        state: &[u8],
    ) -> Result<(), SharedCheckpointError>;
}

/// A source task's way to share its checkpoints: the store and its lease.
#[derive(Clone)]
pub struct LeasedCheckpoints {
    /// The store.
    pub store: Arc<dyn SharedCheckpoints>,
    /// The source instance.
    pub instance_id: u64,
    /// The lease epoch the task runs under.
    pub epoch: u64,
}
