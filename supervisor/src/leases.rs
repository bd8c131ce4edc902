//! Placement applied: source leases (given, renewed by heartbeats, moved once certainly
//! ended) and the checkpoints sources share through the supervisor, saved only under the
//! current lease. The rules themselves are in [`crate::placement`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{ConnectorType, LeaseGrant, SourceCheckpoint};
use crate::instances::not_found;
use crate::placement::{decide_lease, sink_nodes, wanted_nodes, LeaseDecision, LeaseRecord};
use crate::problem::ApiError;
use crate::store::{InstanceRecord, NodeRecord, StoreError};
use crate::supervisor::now_ms;
use crate::{validate, Supervisor};

/// Where each instance of a deployment runs.
#[derive(Debug, Default)]
pub struct Placement {
    /// Assigned nodes by instance id (in id order).
    pub nodes: BTreeMap<u64, Vec<String>>,
    /// Source leases by instance id.
    pub leases: BTreeMap<u64, LeaseRecord>,
    /// When a lease ends for certain (its end plus the grace), which may move a source
    /// without any request: a long poll re-checks then.
    pub next_change: Option<Duration>,
}

impl Supervisor {
    fn lease_ttl_ms(&self) -> u64 {
        self.config().node_ttl.as_millis() as u64
    }

    /// Time the holder of an ended lease gets to stop its source before another node is
    /// given it; the holder starts stopping a quarter of the lease before its own end.
    fn lease_grace_ms(&self) -> u64 {
        self.lease_ttl_ms() / 4 + 500
    }

    /// A lease's end as this process may assume it: a lease renewed before a restart of
    /// the supervisor may have been renewed again without the renewal reaching the disk,
    /// so every lease counts as renewed at the start.
    fn lease_end(&self, lease: &LeaseRecord) -> u64 {
        lease
            .expires_at_ms
            .max(self.started_ms() + self.lease_ttl_ms())
    }

    /// Places the deployment's instances on its live nodes; stores the leases that
    /// changed (a new source, or one whose holder's lease ended for certain).
    pub fn place(
        &self,
        deployment_id: u64,
        instances: &[InstanceRecord],
        nodes: &[NodeRecord],
    ) -> Result<Placement, StoreError> {
        let _guard = self.write_lock();
        let now = now_ms();
        let live: Vec<&NodeRecord> = nodes.iter().filter(|n| self.is_live(n)).collect();
        let mut leases = self.store().leases(deployment_id)?;
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for lease in leases.values() {
            *load.entry(lease.node_id.clone()).or_default() += 1;
        }
        let grace = self.lease_grace_ms();
        let mut placement = Placement::default();
        for record in instances {
            // Nodes that have the plugin; when none has it, every live node, so the
            // instance fails visibly ("no plugin provides ...") rather than waits unseen.
            let with_plugin: Vec<&str> = live
                .iter()
                .filter(|n| {
                    n.plugins.iter().any(|p| {
                        p.key == record.connector_key && p.connector_type == record.connector_type
                    })
                })
                .map(|n| n.node_id.as_str())
                .collect();
            let candidates: Vec<&str> = if with_plugin.is_empty() {
                live.iter().map(|n| n.node_id.as_str()).collect()
            } else {
                with_plugin
            };
            match record.connector_type {
                ConnectorType::Sink => {
                    let wanted = wanted_nodes(&record.config.values);
                    placement
                        .nodes
                        .insert(record.id, sink_nodes(record.id, &candidates, wanted));
                }
                ConnectorType::Source => {
                    let current = leases.get(&record.id).map(|l| LeaseRecord {
                        expires_at_ms: self.lease_end(l),
                        ..l.clone()
                    });
                    match decide_lease(
                        current.as_ref(),
                        &candidates,
                        &load,
                        now,
                        grace,
                        self.lease_ttl_ms(),
                    ) {
                        LeaseDecision::Keep | LeaseDecision::Vacant => {}
                        LeaseDecision::Grant(lease) => {
                            if let Some(old) = &current {
                                if let Some(n) = load.get_mut(&old.node_id) {
                                    *n = n.saturating_sub(1);
                                }
                                tracing::warn!(
                                    deployment_id,
                                    id = record.id,
                                    from = %old.node_id,
                                    to = %lease.node_id,
                                    epoch = lease.epoch,
                                    "source lease ended; moving the source"
                                );
                            } else {
                                tracing::info!(deployment_id, id = record.id, node = %lease.node_id, "source placed");
                            }
                            *load.entry(lease.node_id.clone()).or_default() += 1;
                            self.store()
                                .put_lease(deployment_id, record.id, &lease, true)?;
                            leases.insert(record.id, lease);
                        }
                    }
                    if let Some(lease) = leases.get(&record.id) {
                        let certain_end = self.lease_end(lease) + grace + 1;
                        if certain_end > now {
                            let wait = Duration::from_millis(certain_end - now);
                            placement.next_change =
                                Some(placement.next_change.map_or(wait, |w| w.min(wait)));
                        }
                        placement
                            .nodes
                            .insert(record.id, vec![lease.node_id.clone()]);
                        placement.leases.insert(record.id, lease.clone());
                    }
                }
            }
        }
        Ok(placement)
    }

    /// Renews every source lease `node_id` holds; the grants go back in its heartbeat's
    /// answer.
    pub(crate) fn renew_leases(
        &self,
        deployment_id: u64,
        node_id: &str,
    ) -> Result<Vec<LeaseGrant>, StoreError> {
        let _guard = self.write_lock();
        let ttl = self.lease_ttl_ms();
        let expires_at_ms = now_ms() + ttl;
        let others_live = self
            .store()
            .nodes(deployment_id)?
            .iter()
            .any(|n| n.node_id != node_id && self.is_live(n));
        let mut grants = Vec::new();
        for (id, mut lease) in self.store().leases(deployment_id)? {
            if lease.node_id != node_id {
                continue;
            }
            lease.expires_at_ms = expires_at_ms;
            self.store().put_lease(deployment_id, id, &lease, false)?;
            grants.push(LeaseGrant {
                instance_id: id,
                epoch: lease.epoch,
                valid_for_ms: ttl,
                sole: !others_live,
            });
        }
        Ok(grants)
    }

    /// The checkpoint a source's lease holders shared last.
    pub fn checkpoint(
        &self,
        deployment_id: u64,
        id: u64,
    ) -> Result<Option<SourceCheckpoint>, ApiError> {
        if self.store().instance(deployment_id, id)?.is_none() {
            return Err(not_found(deployment_id, id));
        }
        Ok(self.store().checkpoint(deployment_id, id)?)
    }

    /// Stores a source's checkpoint if its saver holds the current lease at the same
    /// epoch; otherwise refuses it (`fenced`): a node that lost the source must not move
    /// the checkpoint of the node that took it over.
    pub fn save_checkpoint(
        &self,
        deployment_id: u64,
        id: u64,
        checkpoint: SourceCheckpoint,
    ) -> Result<(), ApiError> {
        validate::key_like("node_id", &checkpoint.node_id)?;
        checkpoint
            .state_bytes()
            .map_err(|reason| ApiError::invalid_field("state", reason))?;
        let _guard = self.write_lock();
        let record = self
            .store()
            .instance(deployment_id, id)?
            .ok_or_else(|| not_found(deployment_id, id))?;
        if record.connector_type != ConnectorType::Source {
            return Err(ApiError::Conflict {
                reason: format!("instance {id} is a sink; only sources have checkpoints"),
                field: None,
            });
        }
        // One lookup: this runs for every batch of every leased source.
        let lease = self.store().lease(deployment_id, id)?;
        match lease {
            Some(l) if l.node_id == checkpoint.node_id && l.epoch == checkpoint.epoch => {}
            Some(l) => {
                return Err(ApiError::Fenced(format!(
                    "node {} saved under lease epoch {}, but the lease is node {}'s at epoch {}: \
                     stop the source",
                    checkpoint.node_id, checkpoint.epoch, l.node_id, l.epoch
                )))
            }
            None => {
                return Err(ApiError::Fenced(format!(
                    "instance {id} has no lease yet; node {} may not save its checkpoint",
                    checkpoint.node_id
                )))
            }
        }
        self.store()
            .put_checkpoint(deployment_id, id, &checkpoint)?;
        Ok(())
    }
}
