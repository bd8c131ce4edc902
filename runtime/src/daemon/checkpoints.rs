//! Source checkpoints shared through the supervisor (`.../instances/{id}/checkpoint`).

use async_trait::async_trait;
use ld_protocol::{ClientError, SourceCheckpoint};

use std::sync::Arc;

use super::{client::SupervisorClient, leases::Leases, now_ms};
use crate::instance::{SharedCheckpointError, SharedCheckpoints, SharedState};

/// The supervisor as the store of this node's shared checkpoints.
pub struct SupervisorCheckpoints {
    /// The client.
    pub client: SupervisorClient,
    /// This node.
    pub node_id: String,
    /// Its leases (whether it may go on without sharing).
    pub leases: Arc<Leases>,
}

fn unavailable(e: ClientError) -> SharedCheckpointError {
    match &e {
        ClientError::Refused { problem, .. } if problem.code == "fenced" => {
            SharedCheckpointError::Fenced(problem.reason.clone())
        }
        _ => SharedCheckpointError::Unavailable(e.to_string()),
    }
}

#[async_trait]
impl SharedCheckpoints for SupervisorCheckpoints {
    async fn load(&self, instance_id: u64) -> Result<Option<SharedState>, SharedCheckpointError> {
        let Some(checkpoint) = self
            .client
            .checkpoint(instance_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let state = checkpoint
            .state_bytes()
            .map_err(SharedCheckpointError::Unavailable)?;
        Ok(Some(SharedState {
            node_id: checkpoint.node_id,
            epoch: checkpoint.epoch,
            state,
        }))
    }

    fn may_go_on_unshared(&self, instance_id: u64) -> bool {
        self.leases.sole(instance_id)
    }

    async fn save(
        &self,
        instance_id: u64,
        epoch: u64,
        state: &[u8],
    ) -> Result<(), SharedCheckpointError> {
        let checkpoint = SourceCheckpoint::new(&self.node_id, epoch, state, now_ms());
        self.client
            .save_checkpoint(instance_id, &checkpoint)
            .await
            .map_err(unavailable)
    }
}
